"""The detectors. Each reads the per-look features and returns the anomalous looks.

Every detector returns rows ``farm_id, date, hazard, score, value, expected`` plus its own
evidence columns, indexed like the features (so :mod:`.core` can combine them per look).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .features import farm_attributes
from .settings import DEFAULT_SETTINGS, DetectSettings

__all__ = [
    "detect_abrupt_loss",
    "detect_drought",
    "detect_flood",
    "detect_no_planting",
    "detect_stale",
    "normal_looks",
    "peer_state",
]

_BASE = ["farm_id", "date", "hazard", "score", "value", "expected"]


def _rows(
    f: pd.DataFrame,
    mask: pd.Series,
    hazard: str,
    score: pd.Series,
    expected: pd.Series,
    extra: list[str],
) -> pd.DataFrame:
    out = f.loc[mask, ["farm_id", "date", "value", *extra]].copy()
    out["hazard"] = hazard
    out["score"] = score[mask].astype(float)
    out["expected"] = expected[mask].astype(float)
    return out[[*_BASE, *extra]]


def _nan_or(cond: pd.Series, values: pd.Series) -> pd.Series:
    """``cond`` where ``values`` is known, True where it is NaN (missing evidence does not veto)."""
    return cond | values.isna()


def peer_state(f: pd.DataFrame) -> pd.Series:
    """``systemic`` when the peers share at least half of the farm's own deficit, else
    ``idiosyncratic``; ``unknown`` without peers or without history."""
    share = f["peer_deficit_median"] >= 0.5 * f["own_deficit"]
    state = np.where(share, "systemic", "idiosyncratic")
    unknown = f["peer_deficit_median"].isna() | f["own_deficit"].isna()
    return pd.Series(np.where(unknown, "unknown", state), index=f.index)


def drought_mask(f: pd.DataFrame, s: DetectSettings) -> pd.Series:
    """Looks with a drought-type deficit (without looking at the calendar's watch stages).

    Two routes: (1) well below the peers (robust z and ``drought_deficit``) and below the
    farm's own same-date median by ``drought_peer_deficit`` -- fast on steep green-up slopes,
    where the lag-tolerant own baseline is slack; (2) below the lag-tolerant own baseline
    (robust z and ``drought_deficit``) and either somewhat below the peers (idiosyncratic) or
    by at least ``systemic_deficit`` (a deficit the peers share must be large), or no peers.
    """
    has_own = f["expected"].notna() & (f["expected"] >= s.green_min)
    own = has_own & (f["own_deficit"] >= s.drought_deficit) & (f["own_z"] <= -s.drought_z)
    has_peers = f["peer_median"].notna() & (f["peer_median"] >= s.green_min)
    below_peers = has_peers & (f["peer_z"] <= -s.drought_peer_z)
    with np.errstate(all="ignore"):
        own_mid_def = (f["expected_mid"] - f["value"]) / f["expected_mid"]
    mid_ok = f["expected_mid"].isna() | (own_mid_def >= s.drought_peer_deficit)
    by_peers = below_peers & (f["peer_deficit"] >= s.drought_deficit) & mid_ok
    idio = below_peers & (f["peer_deficit"] >= s.drought_peer_deficit)
    systemic = own & (f["own_deficit"] >= s.systemic_deficit)
    by_own = own & (idio | systemic | f["peer_median"].isna())
    return by_peers | by_own | change_mask(f, s)


def change_mask(f: pd.DataFrame, s: DetectSettings) -> pd.Series:
    """Route (3), the fast one: the farm lost standing against its same-date peers (vegetation
    index down by ``drought_peer_deficit`` of the peers' level and ``drought_z`` robust z of
    the peers' own changes) and its canopy water fell with it (moisture-index change z below
    ``-drought_z``): green-up stalling *and* drying, which is what water stress looks like.
    It must also be ``drought_peer_deficit`` below the peers now. A farm still greening and at
    or above the level its peers had ``change_lag_guard_days`` ago is only late.
    Off without the moisture index (the slower routes still run).
    """
    if "change_z" not in f.columns or not s.moisture_index:
        return pd.Series(False, index=f.index)
    green = f["peer_median"] >= s.green_min
    veg = (f["change_rel"] <= -s.drought_peer_deficit) & (f["change_z"] <= -s.drought_z)
    water = f["moist_change_z"] <= -s.drought_z
    # and actually below its peers: a farm that led them at green-up and is caught up at the
    # plateau (an early crop) loses standing without any deficit
    below = f["peer_deficit"] >= s.drought_peer_deficit
    # Late, not failing: still greening, and already where the peers were a while ago.
    greening = f["value"] > f["prev_value"]
    late = greening & (f["value"] >= f["peer_lagged"]).fillna(False)
    not_late = ~late
    return (green & veg & water & below & not_late).fillna(False)


def keeping_pace(f: pd.DataFrame, s: DetectSettings) -> pd.Series:
    """Looks of a farm greening at its peers' pace: since its previous clear look (within
    ``abrupt_max_gap_days``) it rose at least ``late_pace_share`` of what its peers' median
    rose over the same interval, while the peers were greening, and it is at its highest value of
    the season (within ``scale_floor``), and it is at or above its peers' median of
    ``late_max_lag_days`` before. Such a farm is late (sown or emerged later), not
    stressed: water stress stalls or sets back the green-up. ``late_pace_share`` <= 0
    disables."""
    if s.late_pace_share <= 0:
        return pd.Series(False, index=f.index)
    rise = f["value"] - f["prev_value"]
    peer_rise = f["peer_median"] - f["prev_peer_median"]
    gap = (f["date"] - f["prev_date"]).dt.days
    pace = (
        (peer_rise > 0) & (rise >= s.late_pace_share * peer_rise) & (gap <= s.abrupt_max_gap_days)
    )
    # ... and never set back: a late crop greens monotonically (at its season's high, within
    # look-to-look noise); a stressed one that regrows after a setback is below its high
    unbroken = f["value"] >= f["season_max"] - s.scale_floor
    # ... and no further behind than a crop ``late_max_lag_days`` late would be
    within_lag = f["value"] >= f["peer_lagged_max"] if "peer_lagged_max" in f.columns else False
    return (pace & unbroken & within_lag).fillna(False)


def detect_drought(f: pd.DataFrame, settings: DetectSettings = DEFAULT_SETTINGS) -> pd.DataFrame:
    """Sustained-deficit looks: below own history (robust z and relative deficit) in a watch
    stage (any time for crops without a calendar), and either below the peers too
    (idiosyncratic) or so far below that a shared deficit is still a drought (systemic).

    ``score`` is the relative deficit (own history, or peers when there is no history).
    """
    s = settings
    stage_ok = f["watch"] | ~f["has_calendar"]
    mask = drought_mask(f, s) & stage_ok & ~f["in_harvest"] & ~keeping_pace(f, s)
    score = f["own_deficit"].fillna(f["peer_deficit"])
    expected = f["expected"].fillna(f["peer_median"])
    out = _rows(f, mask, "drought", score, expected, ["own_z", "peer_z", "vci", "peer_median"])
    out["peer_state"] = peer_state(f)[mask]
    return out


def detect_abrupt_loss(
    f: pd.DataFrame, settings: DetectSettings = DEFAULT_SETTINGS
) -> pd.DataFrame:
    """A large drop between consecutive clear looks, not a harvest, that the peers did not
    share. A harvest is a drop inside the calendar's harvest window while the peers are
    ripening (their median ``ripening_decline`` below its season peak; no peers: the window
    alone). Crops without a calendar need peers (their drop is the harvest test).

    ``score`` is the relative drop; ``expected`` the previous look's value.
    """
    s = settings
    drop = f["prev_value"] - f["value"]
    gap = (f["date"] - f["prev_date"]).dt.days
    peer_drop = f["prev_peer_median"] - f["peer_median"]
    # Inside the harvest window a drop is a harvest only if the peers are ripening too.
    with np.errstate(all="ignore"):
        peer_decline = 1.0 - f["peer_median"] / f["peer_season_max"]
    # Before the peers ripen, only a canopy gone (bare soil) is unambiguous: an early crop
    # ripening ahead of its peers drops too, but to a half-green canopy.
    ripening = _nan_or(peer_decline >= s.ripening_decline, peer_decline)
    harvest = f["in_harvest"] & (ripening | (f["value"] > s.green_min))
    mask = (
        (gap <= s.abrupt_max_gap_days)
        & (f["prev_value"] >= s.abrupt_min_before)
        & (drop >= s.abrupt_drop)
        & (drop / f["prev_value"] >= s.abrupt_drop_rel)
        & ~harvest
        & _nan_or(peer_drop <= s.abrupt_peer_share * drop, peer_drop)
        & _nan_or(f["peer_z"] <= -s.abrupt_peer_z, f["peer_z"])
        & (f["has_calendar"] | f["peer_median"].notna())
        # below its own history too, when known (an early harvest is within the tolerance)
        & _nan_or(f["own_deficit"] >= s.drought_deficit, f["own_deficit"])
    )
    out = _rows(
        f,
        mask.fillna(False),
        "abrupt_loss",
        drop / f["prev_value"],
        f["prev_value"],
        ["prev_date", "peer_z", "peer_median"],
    )
    return out


def _water_excess(f: pd.DataFrame, s: DetectSettings) -> tuple[pd.Series, pd.Series]:
    wf = f["water_fraction"]
    by_wf = (
        (wf >= s.flood_water)
        & _nan_or(wf - f["peer_water"] >= s.flood_margin, f["peer_water"])
        & _nan_or(wf - f["hist_water"] >= s.flood_margin, f["hist_water"])
    )
    by_ndwi = (
        wf.isna()
        & (f["ndwi"] >= s.flood_ndwi)
        & _nan_or(f["ndwi"] - f["peer_ndwi"] >= s.flood_ndwi_margin, f["peer_ndwi"])
    )
    return by_wf | by_ndwi, wf.fillna(f["ndwi"])


def detect_flood(f: pd.DataFrame, settings: DetectSettings = DEFAULT_SETTINGS) -> pd.DataFrame:
    """Standing water where the crop should be: SCL-water share of the clear area above
    ``flood_water`` and above both the peers' and the farm's own usual share by
    ``flood_margin`` (so paddy rice or a pond in the parcel is not a flood). NDWI is the
    fallback when no water share is given. ``score`` is the water share.
    """
    s = settings
    excess, score = _water_excess(f, s)
    mask = excess & (f["green"] | ~f["has_calendar"])
    expected = f["peer_water"].fillna(f["hist_water"]).fillna(0.0)
    return _rows(
        f, mask.fillna(False), "flood", score, expected, ["water_fraction", "ndwi", "peer_median"]
    )


def detect_no_planting(
    f: pd.DataFrame, settings: DetectSettings = DEFAULT_SETTINGS
) -> pd.DataFrame:
    """No green-up while the peers have greened: in a green stage, the peers' median is above
    ``no_planting_peer_green`` and the farm's highest value this season stays
    ``no_planting_gap`` below it and under ``no_planting_max`` (a crop that greened and then
    failed is drought or loss, not "no planting"). Without peers the farm's own history stands in.
    ``score`` is the gap to the peers (or history).
    """
    s = settings
    ref = f["peer_median"].fillna(f["expected_mid"])
    zok = _nan_or(f["peer_z"] <= -s.drought_peer_z, f["peer_z"])
    mask = (
        f["green"]
        & (ref >= s.no_planting_peer_green)
        & (f["season_max"] <= ref - s.no_planting_gap)
        & (f["season_max"] <= s.no_planting_max)
        & zok
    )
    return _rows(
        f,
        mask.fillna(False),
        "no_planting",
        ref - f["value"],
        ref,
        ["season_max", "peer_z", "peer_median"],
    )


def normal_looks(f: pd.DataFrame, settings: DetectSettings = DEFAULT_SETTINGS) -> pd.Series:
    """Looks that are clearly back in the normal range (what recovery is counted on):
    deficit against own history under ``recover_deficit`` (or the field is bare in history
    too), not far below peers, and no standing water."""
    s = settings
    own_ok = (
        f["expected"].isna()
        | (f["expected"] < s.green_min)
        | (f["own_deficit"] < s.recover_deficit)
    )
    peer_ok = (
        f["peer_z"].isna() | (f["peer_z"] > -s.recover_peer_z) | (f["peer_median"] < s.green_min)
    )
    wf = f["water_fraction"]
    dry = wf.isna() | (wf < s.flood_water / 2)
    return own_ok & peer_ok & dry


def detect_stale(
    f: pd.DataFrame,
    farms: pd.DataFrame,
    observations: pd.DataFrame,
    *,
    asof: pd.Timestamp,
    settings: DetectSettings = DEFAULT_SETTINGS,
    calendars: object = None,
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
    from ..calendar import stage_table

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
    cal = stage_table(book["crop"], pd.Series(asof, index=book.index), calendars=calendars)  # type: ignore[arg-type]
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
