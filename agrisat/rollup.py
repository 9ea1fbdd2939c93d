"""Roll-up of alerts by loan, borrower and region: farms alerted and exposure at risk."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .alerts import OPEN, SEVERITIES
from .alerts_book import book_keys

__all__ = ["rollup"]


def rollup(alerts: pd.DataFrame, farms: pd.DataFrame, *, open_only: bool = True) -> pd.DataFrame:
    """Exposure at risk by loan, borrower and region.

    One row per (``level``, ``key``) with ``n_farms``, ``exposure``, ``farms_alerted``,
    ``exposure_at_risk`` (each alerted farm counted once), and ``exposure_<hazard>`` /
    ``exposure_<severity>`` columns (a farm counts under each hazard it has, and under its
    highest severity). ``open_only`` keeps alerts with status new/ongoing.
    """
    a = alerts[alerts["status"].isin(OPEN)] if open_only else alerts
    book = book_keys(farms).drop(columns="crop")
    book = book.rename(columns={"loan_id": "loan", "borrower_id": "borrower"})
    rank = a["severity"].map({s: i for i, s in enumerate(SEVERITIES)})
    worst = a.assign(rank=rank).sort_values("rank").groupby("farm_id")["severity"].last()
    hazards = sorted(a["hazard"].dropna().unique())
    book["alerted"] = book["farm_id"].isin(a["farm_id"])
    book["at_risk"] = np.where(book["alerted"], book["exposure"], 0.0)
    for hz in hazards:
        farms_hz = set(a.loc[a["hazard"] == hz, "farm_id"])
        book[f"exposure_{hz}"] = np.where(book["farm_id"].isin(farms_hz), book["exposure"], 0.0)
    sev = book["farm_id"].map(worst)
    for level in SEVERITIES:
        book[f"exposure_{level}"] = np.where(sev == level, book["exposure"], 0.0)
    value_cols = [f"exposure_{h}" for h in hazards] + [f"exposure_{s}" for s in SEVERITIES]
    parts = []
    for level in ("loan", "borrower", "region"):
        g = book.groupby(level, sort=True)
        part = pd.DataFrame(
            {
                "n_farms": g.size(),
                "exposure": g["exposure"].sum(),
                "farms_alerted": g["alerted"].sum().astype(int),
                "exposure_at_risk": g["at_risk"].sum(),
            }
        )
        part = part.join(g[value_cols].sum())
        part.insert(0, "key", part.index.astype(str))
        part.insert(0, "level", level)
        parts.append(part.reset_index(drop=True))
    out = pd.concat(parts, ignore_index=True)
    out["share_at_risk"] = np.where(
        out["exposure"] > 0, out["exposure_at_risk"] / out["exposure"], 0.0
    )
    return out
