"""The stale-data detector: farms we have lost sight of while the crop should stand.

Split from :mod:`.detectors` (which re-exports :func:`detect_stale`): it reads the book and
the observations, not the per-look features of the vegetation detectors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .features import farm_attributes
from .settings import DEFAULT_SETTINGS, DetectSettings

if TYPE_CHECKING:
    from ..calendar import Calendar

__all__ = ["detect_stale", "stale_from_state", "stale_rows"]


def detect_stale(
    f: pd.DataFrame,
    farms: pd.DataFrame,
    observations: pd.DataFrame,
    *,
    asof: pd.Timestamp,
    settings: DetectSettings = DEFAULT_SETTINGS,
    calendars: Mapping[str, Calendar] | None = None,
) -> pd.DataFrame:
    """Farms we have lost sight of while the crop should stand (any time for crops without a
    calendar). One row per stale farm dated ``asof``; ``score`` is the number of days without
    a clear look, ``onset`` the last clear look (or the first scene), ``peer_state``:

    - ``idiosyncratic``: unseen for ``stale_days`` although its region (all farms when no
      region is given) was seen clearly -- at least ``stale_peer_share`` of its farms had a
      clear look -- on ``stale_missed_looks`` dates since: the gap is the farm's own (tile
      edge, no-data strip, a polygon that misses the field) and someone should look;
    - ``regional``: the region shares the gap (monsoon cloud): only after
      ``stale_regional_days``, when the team is blind on the whole area.
    """

    s = settings
    cols = ["farm_id", "date", "hazard", "score", "value", "expected", "onset", "stage"]
    seen = observations.assign(farm_id=observations["farm_id"].astype(str))
    first_seen = pd.to_datetime(seen.groupby("farm_id")["date"].min()).dt.normalize()
    last_clear = f.groupby("farm_id")["date"].max() if len(f) else pd.Series(dtype="datetime64[ns]")
    book = farm_attributes(farms)
    book = book[book["farm_id"].isin(first_seen.index)].reset_index(drop=True)
    if book.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in [*cols, "peer_state"]})
    ids = book["farm_id"].to_numpy()
    book["last_clear"] = pd.to_datetime(last_clear.reindex(ids).to_numpy())
    book["since"] = book["last_clear"].fillna(
        pd.Series(pd.to_datetime(first_seen.reindex(ids).to_numpy()))
    )
    book["days"] = (asof - book["since"]).dt.days
    # Dates on which the farm's region was seen clearly (most of its farms had a clear look)
    # and this farm was not, since its last clear look: missing several of those is the
    # farm's own problem; a partly cloudy date or two is chance.
    idio = _missed_region_looks(book, f, s) >= s.stale_missed_looks
    return stale_rows(book, idio, asof, settings=s, calendars=calendars)


def stale_rows(
    book: pd.DataFrame,
    idio: pd.Series,
    asof: pd.Timestamp,
    *,
    settings: DetectSettings,
    calendars: Mapping[str, Calendar] | None = None,
) -> pd.DataFrame:
    """The ``stale_data`` rows of ``book`` (``farm_id``, ``crop``, ``since``, ``days``): a gap
    of ``stale_days`` that is the farm's own (``idio``), or of ``stale_regional_days``
    whatever the region did, while the crop should stand (any time without a calendar)."""
    from ..calendar import stage_table

    s = settings
    cal = stage_table(book["crop"], pd.Series(asof, index=book.index), calendars=calendars)
    in_season = cal["green"] | ~cal["has_calendar"]
    long_gap = (book["days"] >= s.stale_days) & idio
    blind = book["days"] >= s.stale_regional_days
    mask = (long_gap | blind) & in_season
    out = book.loc[mask, ["farm_id"]].copy()
    out["date"] = asof
    out["hazard"] = "stale_data"
    out["score"] = book.loc[mask, "days"].astype(float)
    out["value"] = np.nan
    out["expected"] = np.nan
    out["onset"] = book.loc[mask, "since"]
    out["stage"] = cal.loc[mask, "stage"]
    out["peer_state"] = np.where(idio[mask], "idiosyncratic", "regional")
    return out.reset_index(drop=True)


def _missed_region_looks(book: pd.DataFrame, f: pd.DataFrame, s: DetectSettings) -> pd.Series:
    """Per book farm: dates after its last clear look on which its region was seen clearly."""
    region = book.set_index("farm_id")["region"]
    n_farms = region.groupby(region).size()
    clear = f[["farm_id", "date"]].assign(region=f["farm_id"].map(region)) if len(f) else None
    if clear is None or clear["region"].isna().all():
        return pd.Series(0, index=book.index)
    clear = clear.dropna(subset=["region"]).drop_duplicates()
    n_clear = clear.groupby(["region", "date"]).size()
    share = n_clear / n_clear.index.get_level_values(0).map(n_farms).to_numpy()
    good = share[share >= s.stale_peer_share].reset_index()[["region", "date"]]
    counted = _count_later(book, good)
    if counted is not None:
        return pd.Series(counted, index=book.index)
    merged = book[["farm_id", "region", "since"]].merge(good, on="region", how="left")
    after = merged["date"] > merged["since"]
    missed = after.groupby(merged["farm_id"]).sum()
    return pd.Series(missed.reindex(book["farm_id"]).fillna(0).to_numpy(), index=book.index)


_DAY_NS = 86_400 * 10**9


def _count_later(book: pd.DataFrame, good: pd.DataFrame) -> np.ndarray | None:
    """Per book farm, the number of its region's ``good`` dates after its ``since``.

    Binary search on region x day keys instead of a farm x date cross join (millions of rows
    for a large book). Dates must be whole days (they are: looks are day-stamped); returns
    None otherwise, or when farm ids repeat, and the caller falls back to the join.
    """
    if not book["farm_id"].is_unique or book["since"].isna().any():
        return None
    since = book["since"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    dates = good["date"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    if (since % _DAY_NS).any() or (dates % _DAY_NS).any():
        return None
    cats = pd.Index(pd.unique(pd.concat([book["region"], good["region"]], ignore_index=True)))
    rb = cats.get_indexer(book["region"]).astype(np.int64)
    rg = cats.get_indexer(good["region"]).astype(np.int64)
    db, dg = since // _DAY_NS, dates // _DAY_NS
    base = min(db.min(), dg.min()) if dg.size else db.min()
    span = max(db.max(), dg.max() if dg.size else db.max()) - base + 2
    key = np.sort(rg * span + (dg - base))
    after = np.searchsorted(key, rb * span + (db - base), "right")
    end = np.searchsorted(key, rb * span + span - 1, "right")
    return (end - after).astype(np.int64)


def stale_from_state(
    state: pd.DataFrame,
    farms: pd.DataFrame,
    region_looks: pd.DataFrame,
    *,
    asof: pd.Timestamp,
    settings: DetectSettings = DEFAULT_SETTINGS,
    calendars: Mapping[str, Calendar] | None = None,
) -> pd.DataFrame:
    """:func:`agrisat.anomaly.detect_stale` from per-farm summaries instead of every look.

    ``state`` has ``farm_id``, ``first_seen`` (first observation) and ``last_clear`` (latest
    clear look), both as of ``asof``; ``region_looks`` has ``region``, ``date``, ``n_looks``
    (clear looks per region and date, dates <= ``asof``).
    """
    s = settings
    cols = ["farm_id", "date", "hazard", "score", "value", "expected", "onset", "stage"]
    book = farm_attributes(farms)
    st = state.set_index("farm_id")
    seen = pd.to_datetime(book["farm_id"].map(st["first_seen"]))
    book = book[seen.notna().to_numpy() & (seen <= asof).to_numpy()].reset_index(drop=True)
    if book.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in [*cols, "peer_state"]})
    last = pd.to_datetime(book["farm_id"].map(st["last_clear"]))
    book["since"] = last.fillna(pd.to_datetime(book["farm_id"].map(st["first_seen"])))
    book["days"] = (asof - book["since"]).dt.days
    n_farms = book.groupby("region").size()  # farms seen so far, per region
    rl = region_looks[region_looks["region"].isin(n_farms.index)]
    share = rl["n_looks"].to_numpy() / rl["region"].map(n_farms).to_numpy()
    good = rl.loc[share >= s.stale_peer_share, ["region", "date"]].reset_index(drop=True)
    # Only farms unseen long enough can be stale: the region counts and the calendar are
    # looked up for them alone (the same rows as for the whole book).
    book = book[book["days"] >= min(s.stale_days, s.stale_regional_days)].reset_index(drop=True)
    if book.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in [*cols, "peer_state"]})
    good = good[good["date"] > book["since"].min()].reset_index(drop=True)
    counted = _count_later(book, good)
    if counted is None:
        merged = book[["farm_id", "region", "since"]].merge(good, on="region", how="left")
        after = (merged["date"] > merged["since"]).groupby(merged["farm_id"]).sum()
        counted = after.reindex(book["farm_id"]).fillna(0).to_numpy()
    idio = pd.Series(counted >= s.stale_missed_looks, index=book.index)
    return stale_rows(book, idio, asof, settings=s, calendars=calendars)
