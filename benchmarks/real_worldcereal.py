"""WorldCereal's public test extractions as an agrisat evaluation set (MIT, read in place).

``../shared/data/evaluation/worldcereal/test_public_extractions.parquet``: 500 labelled crop
samples of 2017 (Uganda and South Sudan field surveys), each one Sentinel-2 L2A pixel as 12
monthly composites from December 2016 (bands as DN × 10,000; 65535 where the month had no
valid observation). No events are documented: these are surveyed crops, so every alert is
counted as a false alert -- an upper bound, since a surveyed field may still have failed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agrisat.errors import AgrisatError
from benchmarks.real_series import RealSet, shared_data

__all__ = ["worldcereal_extractions"]

NODATA = 65535
MONTHS = 12


def _band(raw: pd.DataFrame, band: str, res: str) -> np.ndarray:
    cols = [f"OPTICAL-{band}-ts{k}-{res}" for k in range(MONTHS)]
    dn = raw[cols].to_numpy(dtype=float)
    return np.where(dn == NODATA, np.nan, dn / 10_000.0)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return (a - b) / (a + b)


def worldcereal_extractions(root: Path | None = None) -> RealSet:
    """500 surveyed 2017 crop pixels (one farm each) of WorldCereal's public extractions.

    Each composite is dated the 15th of its month. A farm's peers are the samples of the same
    WorldCereal crop code (``ewoc_code``, as the book's crop: no built-in calendar, so
    detection runs at any time of year) in the same Sentinel-2 tile (the book's region). One
    season each: there is no own history, so peers carry the detection.
    """
    f = (root or shared_data()) / "evaluation" / "worldcereal" / "test_public_extractions.parquet"
    if not f.exists():
        raise AgrisatError(f"{f} is absent: WorldCereal's extractions are needed for this set")
    raw = pd.read_parquet(f).sort_values("sample_id", kind="stable").reset_index(drop=True)
    ids = [f"WC{k:03d}" for k in range(len(raw))]
    red, nir, swir = _band(raw, "B04", "10m"), _band(raw, "B08", "10m"), _band(raw, "B11", "20m")
    ndvi, ndmi = _ratio(nir, red), _ratio(nir, swir)
    ok = np.isfinite(ndvi)
    start = pd.to_datetime(raw["start_date"])
    frames = []
    for k in range(MONTHS):
        day = (start + pd.DateOffset(months=k)).dt.to_period("M").dt.start_time
        day = (day + pd.Timedelta(days=14)).dt.strftime("%Y-%m-%d")
        frames.append(
            pd.DataFrame(
                {
                    "farm_id": ids,
                    "date": day.to_numpy(),
                    "item_id": [f"WC_{d}" for d in day],
                    # a monthly composite of valid observations is a look, but no per-look
                    # quality band says how clear its month was: clear share unknown (NaN)
                    "status": np.where(ok[:, k], "ok", "no_data"),
                    "clear_fraction": np.where(ok[:, k], np.nan, 0.0),
                    "clear_pixels": np.where(ok[:, k], 1.0, 0.0),
                    "water_fraction": np.nan,
                    "ndvi_mean": ndvi[:, k],
                    "ndvi_std": np.nan,
                    "ndmi_mean": np.where(ok[:, k], ndmi[:, k], np.nan),
                    "ndmi_std": np.nan,
                }
            )
        )
    obs = pd.concat(frames, ignore_index=True).sort_values(["farm_id", "date"], kind="stable")
    farms = pd.DataFrame(
        {
            "farm_id": ids,
            "loan_id": [f"L-{i}" for i in ids],
            "borrower_id": [f"B-{i}" for i in ids],
            "crop": [f"ewoc{c}" for c in raw["ewoc_code"]],
            "region": raw["tile"].astype(str).to_list(),
            "exposure": 1.0,
        }
    )
    note = (
        f"{len(ids)} surveyed crop pixels (2017, Uganda / South Sudan), {MONTHS} monthly S2 L2A "
        f"composites each, {int(ok.sum())} valid; peers: same crop code in the same S2 tile; "
        "no documented events (every alert counts as false)"
    )
    return RealSet(
        "worldcereal", obs.reset_index(drop=True), farms, note=note,
        extra={"sample_id": dict(zip(ids, raw["sample_id"], strict=True))},
    )  # fmt: skip
