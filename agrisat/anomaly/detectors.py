"""The detectors. Each reads the per-look features and returns the anomalous looks.

Every detector returns rows ``farm_id, date, hazard, score, value, expected`` plus its own
evidence columns, indexed like the features (so :mod:`.core` can combine them per look).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .robust import dormant_peers, own_abrupt, record_low
from .settings import DEFAULT_SETTINGS, DetectSettings
from .stale import _count_later as _count_later
from .stale import detect_stale

__all__ = [
    "detect_abrupt_loss",
    "detect_drought",
    "detect_flood",
    "detect_no_planting",
    "detect_stale",
    "normal_looks",
    "peer_state",
    "season_peer",
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
    share = (f["peer_deficit_median"] >= 0.5 * f["own_deficit"]).to_numpy()
    unknown = (f["peer_deficit_median"].isna() | f["own_deficit"].isna()).to_numpy()
    # labels picked by code from three shared strings: a fixed-width "<U13" array per
    # np.where is 30 MB at 586,000 looks
    code = np.where(unknown, 2, np.where(share, 0, 1))
    return pd.Series(_PEER_STATES[code], index=f.index)


_PEER_STATES = np.array(["systemic", "idiosyncratic", "unknown"], dtype=object)


def season_peer(f: pd.DataFrame, *, gated: bool = True) -> tuple[pd.Series, pd.Series]:
    """Peer z and peer deficit of each look, judged against the farm's usual standing at this
    time of year where that is what decides.

    Where the farm has no own baseline at this date (``expected_mid`` NaN: a sparse record,
    the first seasons) the gap to its peers is the only evidence, and a habitual gap (a farm
    that senesces before its peers every year) would read as a deficit: there the gap is
    measured from its usual standing (``season_peer_z``, ``season_peer_deficit``, see
    :mod:`.seasonal`; the raw values where it has none). Where the farm has its own
    baseline, own history already says whether its level is normal (the peer routes require
    a deficit against it) and the raw same-date comparison says whether the peers share the
    deficit -- measuring that from a usual gap that varies between seasons too would blunt
    it (seed11's late farm F0018: its April gap was -0.19 and -0.10 in its two earlier
    seasons; in the drought it was 17 % below its own history but only 0.10 beyond its
    usual gap, and was missed). ``gated=False`` always uses the usual standing: for the
    change route's level check, which reads no own history.
    """
    z = f["season_peer_z"] if "season_peer_z" in f.columns else f["peer_z"]
    d = f["season_peer_deficit"] if "season_peer_deficit" in f.columns else f["peer_deficit"]
    if gated and "expected_mid" in f.columns:
        no_own = f["expected_mid"].isna()
        z, d = z.where(no_own, f["peer_z"]), d.where(no_own, f["peer_deficit"])
    return z, d


def drought_mask(f: pd.DataFrame, s: DetectSettings) -> pd.Series:
    """Looks with a drought-type deficit (without looking at the calendar's watch stages).

    Two routes: (1) well below the peers (robust z and ``drought_deficit``) and below the
    farm's own same-date median by ``drought_peer_deficit`` -- fast on steep green-up slopes,
    where the lag-tolerant own baseline is slack; (2) below the lag-tolerant own baseline
    (robust z and ``drought_deficit``) and either somewhat below the peers (idiosyncratic) or
    by at least ``systemic_deficit`` (a deficit the peers share must be large), or no peers.
    Without an own baseline, "below the peers" is measured from the farm's usual standing
    against them at this time of year where its earlier seasons give one
    (:func:`season_peer`): a farm that is always 0.12 below its peers in September is not in
    drought for being there again.
    """
    has_own = f["expected"].notna() & (f["expected"] >= s.green_min)
    own = (
        has_own
        & (f["own_deficit"] >= s.drought_deficit)
        & ((f["own_z"] <= -s.drought_z) | record_low(f, s))
    )
    dormant = dormant_peers(f, s)
    has_peers = f["peer_median"].notna() & (f["peer_median"] >= s.green_min) & ~dormant
    peer_z, peer_deficit = season_peer(f)
    below_peers = has_peers & (peer_z <= -s.drought_peer_z)
    with np.errstate(all="ignore"):
        own_mid_def = (f["expected_mid"] - f["value"]) / f["expected_mid"]
    mid_ok = f["expected_mid"].isna() | (own_mid_def >= s.drought_peer_deficit)
    by_peers = below_peers & (peer_deficit >= s.drought_deficit) & mid_ok
    idio = below_peers & (peer_deficit >= s.drought_peer_deficit)
    systemic = own & (f["own_deficit"] >= s.systemic_deficit)
    by_own = own & (idio | systemic | f["peer_median"].isna() | dormant)
    return by_peers | by_own | (change_mask(f, s) & ~dormant)


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
    # and actually below its peers (beyond its usual standing at this time of year): a farm
    # that led them at green-up and is caught up at the plateau (an early crop), or one that
    # senesces ahead of them every year, loses standing without any deficit
    below = season_peer(f, gated=False)[1] >= s.drought_peer_deficit
    # Late, not failing: still greening, and already where the peers were a while ago.
    greening = f["value"] > f["prev_value"]
    late = greening & (f["value"] >= f["peer_lagged"]).fillna(False)
    not_late = ~late
    return (green & veg & water & below & not_late).fillna(False)


def _pace(
    f: pd.DataFrame,
    s: DetectSettings,
    ref_value: pd.Series,
    ref_peer: pd.Series,
    ref_date: pd.Series,
) -> pd.Series:
    """Rose since the reference look (within ``abrupt_max_gap_days``) by at least
    ``late_pace_share`` of the peers' rise over the same interval, while the peers greened."""
    rise = f["value"] - ref_value
    peer_rise = f["peer_median"] - ref_peer
    gap = (f["date"] - ref_date).dt.days
    return (
        (peer_rise > 0) & (rise >= s.late_pace_share * peer_rise) & (gap <= s.abrupt_max_gap_days)
    )


def keeping_pace(f: pd.DataFrame, s: DetectSettings) -> pd.Series:
    """Looks of a farm greening at its peers' pace: since its last *sound* clear look (within
    ``abrupt_max_gap_days``) it rose at least ``late_pace_share`` of what its peers' median
    rose over the same interval, while the peers were greening, and it is at its highest value of
    the season (within ``scale_floor``), and it is at or above its peers' median of
    ``late_max_lag_days`` before. Such a farm is late (sown or emerged later), not
    stressed: water stress stalls or sets back the green-up. ``late_pace_share`` <= 0
    disables.

    The pace is measured from the farm's last *sound* look: one without standing water or an
    abrupt drop. Lateness is a property of a farm that has been normal but behind: the rise
    out of a flooded or damaged look measures the water receding or the debris, not the crop
    greening (a look of a late farm that merely stalled is a sound canopy measurement and
    stays a reference).
    """
    if s.late_pace_share <= 0:
        return pd.Series(False, index=f.index)
    base = _pace(f, s, f["prev_value"], f["prev_peer_median"], f["prev_date"])
    unsound = _flood_mask(f, s) | _abrupt_mask(f, s)
    if unsound.any():
        # The farm's last sound look before each look (looks are sorted by farm and date).
        farm = pd.Series(pd.factorize(f["farm_id"])[0], index=f.index)
        ref = f[["value", "peer_median", "date"]].where(~unsound, axis=0)
        ref = ref.groupby(farm, sort=False).shift(1).groupby(farm, sort=False).ffill()
        same = ref["date"] == f["prev_date"]
        # the peers' median at the reference date as seen now (same level) when it is the
        # previous look, else as the farm saw it then
        ref_peer = f["prev_peer_median"].where(same, ref["peer_median"])
        pace = _pace(f, s, ref["value"], ref_peer, ref["date"])
    else:
        pace = base
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

    ``score`` is the relative deficit (own history, or when there is none the peers
    beyond the farm's usual standing against them); ``expected`` the matching value.
    """
    s = settings
    stage_ok = f["watch"] | ~f["has_calendar"]
    mask = drought_mask(f, s) & stage_ok & ~f["in_harvest"] & ~keeping_pace(f, s)
    score = f["own_deficit"].fillna(season_peer(f)[1])
    usual = f["usual_gap"].fillna(0.0) if "usual_gap" in f.columns else 0.0
    expected = f["expected"].fillna(f["peer_median"] + usual)
    out = _rows(f, mask, "drought", score, expected, ["own_z", "peer_z", "vci", "peer_median"])
    out["peer_state"] = peer_state(f)[mask]
    return out


def _abrupt_mask(f: pd.DataFrame, s: DetectSettings) -> pd.Series:
    """Looks :func:`detect_abrupt_loss` reports (see there)."""
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
    # After a long cloud gap a drop is still a loss when the canopy is gone (bare-soil level)
    # while the peers stand green and the farm was seen green earlier this same season:
    # drought thins a canopy, it does not clear it while the neighbours stay green.
    long_gap = gap > s.abrupt_max_gap_days
    gone = long_gap & (f["value"] <= s.no_planting_max) & (f["peer_median"] >= s.green_min)
    mask = (
        (~long_gap | gone)
        & (f["prev_value"] >= s.abrupt_min_before)
        & (drop >= s.abrupt_drop)
        & (drop / f["prev_value"] >= s.abrupt_drop_rel)
        & ~harvest
        & _nan_or(peer_drop <= s.abrupt_peer_share * drop, peer_drop)
        & _nan_or(f["peer_z"] <= -s.abrupt_peer_z, f["peer_z"])
        & (f["has_calendar"] | f["peer_median"].notna())
        # below its own history too, when known (an early harvest is within the tolerance)
        & _nan_or(f["own_deficit"] >= s.drought_deficit, f["own_deficit"])
    ).fillna(False)
    check = (mask & long_gap).to_numpy()
    if check.any():
        mask &= ~pd.Series(check, index=f.index) | _same_season_as_previous(f, check)
    return mask | (own_abrupt(f, s)[0] & ~harvest)


def _same_season_as_previous(f: pd.DataFrame, rows: np.ndarray) -> pd.Series:
    """Whether each of ``rows`` (a mask) and the farm's previous look are of one crop season.

    The previous look is the previous row (features are sorted by farm and date)."""
    out = np.zeros(len(f), dtype=bool)
    i = np.flatnonzero(rows)
    i = i[i > 0]
    farm, season = f["farm_id"].to_numpy(), f["season_id"].to_numpy()
    same = (farm[i] == farm[i - 1]) & (season[i] == season[i - 1]) & pd.notna(season[i])
    out[i[same]] = True
    return pd.Series(out, index=f.index)


def detect_abrupt_loss(
    f: pd.DataFrame, settings: DetectSettings = DEFAULT_SETTINGS
) -> pd.DataFrame:
    """A large drop between consecutive clear looks, not a harvest, that the peers did not
    share. A harvest is a drop inside the calendar's harvest window while the peers are
    ripening (their median ``ripening_decline`` below its season peak; no peers: the window
    alone). Crops without a calendar need peers (their drop is the harvest test). The looks
    are at most ``abrupt_max_gap_days`` apart, unless the canopy is gone (at or below
    ``no_planting_max``) while the peers stand green (``green_min``) and both looks are of the
    same crop season: a crop seen green and found bare after a long cloud gap was lost.

    ``score`` is the relative drop; ``expected`` the previous look's value.
    """
    s = settings
    mask = _abrupt_mask(f, s)
    # a loss judged against own history over two looks quotes its reference look
    own, own_ref = own_abrupt(f, s)
    before = f["prev_value"].where(~own, np.fmax(own_ref, f["prev_value"]))
    drop = before - f["value"]
    return _rows(
        f,
        mask,
        "abrupt_loss",
        drop / before,
        before,
        ["prev_date", "peer_z", "peer_median"],
    )


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


def _flood_mask(f: pd.DataFrame, s: DetectSettings) -> pd.Series:
    excess, _ = _water_excess(f, s)
    # Water where a crop should stand: the calendar's green stages, or for crops without a
    # calendar any time their own history does not say the field is bare now (snowmelt on
    # a field that is brown every spring is not a flooded crop).
    bare_now = f["expected_mid"] < s.green_min
    return (excess & (f["green"] | (~f["has_calendar"] & ~bare_now))).fillna(False)


def detect_flood(f: pd.DataFrame, settings: DetectSettings = DEFAULT_SETTINGS) -> pd.DataFrame:
    """Standing water where the crop should be (crops without a calendar: unless their own
    history says the field is bare now): SCL-water share of the clear area above
    ``flood_water`` and above both the peers' and the farm's own usual share by
    ``flood_margin`` (so paddy rice or a pond in the parcel is not a flood). NDWI is the
    fallback when no water share is given. ``score`` is the water share.
    """
    s = settings
    _, score = _water_excess(f, s)
    expected = f["peer_water"].fillna(f["hist_water"]).fillna(0.0)
    return _rows(
        f, _flood_mask(f, s), "flood", score, expected, ["water_fraction", "ndwi", "peer_median"]
    )


def _no_planting_mask(f: pd.DataFrame, s: DetectSettings) -> pd.Series:
    ref = f["peer_median"].fillna(f["expected_mid"])
    zok = _nan_or(f["peer_z"] <= -s.drought_peer_z, f["peer_z"])
    mask = (
        f["green"]
        & (ref >= s.no_planting_peer_green)
        & (f["season_max"] <= ref - s.no_planting_gap)
        & (f["season_max"] <= s.no_planting_max)
        & zok
    )
    return mask.fillna(False)


def detect_no_planting(
    f: pd.DataFrame, settings: DetectSettings = DEFAULT_SETTINGS
) -> pd.DataFrame:
    """No green-up while the peers have greened: in a green stage, the peers' median is above
    ``no_planting_peer_green`` and the farm's highest value this season stays
    ``no_planting_gap`` below it and under ``no_planting_max`` (a crop seen green earlier this
    season that then failed is drought or loss, not "no planting"). Without peers the farm's
    own history stands in. ``score`` is the gap to the peers (or history).
    """
    s = settings
    ref = f["peer_median"].fillna(f["expected_mid"])
    return _rows(
        f,
        _no_planting_mask(f, s),
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
    # measured from the farm's usual standing among its peers at this time of year (the raw
    # peer z where it has none): a farm usually a little below its peers is back to normal
    # when it is back at that gap, not only when it reaches the peers' median
    z = f["season_peer_z"] if "season_peer_z" in f.columns else f["peer_z"]
    peer_ok = z.isna() | (z > -s.recover_peer_z) | (f["peer_median"] < s.green_min)
    wf = f["water_fraction"]
    dry = wf.isna() | (wf < s.flood_water / 2)
    return own_ok & peer_ok & dry
