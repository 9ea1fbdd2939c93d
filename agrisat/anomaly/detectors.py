"""The detectors. Each reads the per-look features and returns the anomalous looks.

Every detector returns rows ``farm_id, date, hazard, score, value, expected`` plus its own
evidence columns, indexed like the features (so :mod:`.core` can combine them per look).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..arrowops import pick_labels
from .losses import _abrupt_mask as _abrupt_mask  # re-exported (tests import it here)
from .losses import _flood_mask as _flood_mask
from .losses import (
    _nan_or,
    _rows,
    detect_abrupt_loss,
    detect_flood,
    unsound_looks,
)
from .robust import dormant_peers, record_low
from .settings import DEFAULT_SETTINGS, DetectSettings
from .stale import _count_later as _count_later
from .stale import detect_stale

if TYPE_CHECKING:
    from .carry import Earlier

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


def peer_state(f: pd.DataFrame) -> pd.Series:
    """``systemic`` when the peers share at least half of the farm's own deficit, else
    ``idiosyncratic``; ``unknown`` without peers or without history."""
    share = (f["peer_deficit_median"] >= 0.5 * f["own_deficit"]).to_numpy()
    unknown = (f["peer_deficit_median"].isna() | f["own_deficit"].isna()).to_numpy()
    # labels picked by code from three shared strings: a fixed-width "<U13" array per
    # np.where is 30 MB at 586,000 looks
    code = np.where(unknown, 2, np.where(share, 0, 1))
    return pick_labels(_PEER_STATES, code, f.index)


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


def keeping_pace(
    f: pd.DataFrame,
    s: DetectSettings,
    *,
    earlier: Earlier | None = None,
    unsound: pd.Series | None = None,
) -> pd.Series:
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

    ``earlier`` carries the farm's looks before the frame (the last sound one for a look
    with none before it here); ``unsound``: the flood or abrupt-loss looks, when known.
    """
    if s.late_pace_share <= 0:
        return pd.Series(False, index=f.index)
    base = _pace(f, s, f["prev_value"], f["prev_peer_median"], f["prev_date"])
    if unsound is None:
        unsound = unsound_looks(f, s, earlier=earlier)
    # With a carry always the sound-look reference: on a frame without an unsound look it is
    # the previous look (the base), except on a farm's first row, whose previous look may be
    # an unsound one of the carry.
    if earlier is not None or unsound.any():
        # The farm's last sound look before each look (looks are sorted by farm and date).
        farm = pd.Series(pd.factorize(f["farm_id"])[0], index=f.index)
        ref = f[["value", "peer_median", "date"]].where(~unsound, axis=0)
        ref = ref.groupby(farm, sort=False).shift(1).groupby(farm, sort=False).ffill()
        if earlier is not None:
            # none of the farm's sound looks here (per column): the carry's
            for col in ("value", "peer_median", "date"):
                ref[col] = ref[col].fillna(earlier.rows[f"sound_{col}"])
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


def detect_drought(
    f: pd.DataFrame,
    settings: DetectSettings = DEFAULT_SETTINGS,
    *,
    earlier: Earlier | None = None,
    unsound: pd.Series | None = None,
) -> pd.DataFrame:
    """Sustained-deficit looks: below own history (robust z and relative deficit) in a watch
    stage (any time for crops without a calendar), and either below the peers too
    (idiosyncratic) or so far below that a shared deficit is still a drought (systemic).

    ``score`` is the relative deficit (own history, or when there is none the peers
    beyond the farm's usual standing against them); ``expected`` the matching value.
    ``earlier``: the farm's looks before the frame (see :mod:`.carry`); ``unsound``: the
    flood or abrupt-loss looks when known (:func:`keeping_pace`).
    """
    s = settings
    stage_ok = f["watch"] | ~f["has_calendar"]
    mask = (
        drought_mask(f, s)
        & stage_ok
        & ~f["in_harvest"]
        & ~keeping_pace(f, s, earlier=earlier, unsound=unsound)
    )
    score = f["own_deficit"].fillna(season_peer(f)[1])
    usual = f["usual_gap"].fillna(0.0) if "usual_gap" in f.columns else 0.0
    expected = f["expected"].fillna(f["peer_median"] + usual)
    out = _rows(f, mask, "drought", score, expected, ["own_z", "peer_z", "vci", "peer_median"])
    out["peer_state"] = peer_state(f)[mask]
    return out


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
