"""Robustness rules found on real series: record lows against a variable own history, peer
groups out of their growing season, and losses judged against own history without peers.

Split from :mod:`.detectors`, which applies them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .settings import DetectSettings

if TYPE_CHECKING:
    from .carry import Earlier

__all__ = ["dormant_peers", "own_abrupt", "record_low"]


def record_low(f: pd.DataFrame, s: DetectSettings) -> pd.Series:
    """Looks below every earlier same-stage look of the farm (VCI < 0) by more than the
    look-to-look noise (``scale_floor``), with at least ``drought_vci_min_history`` of them:
    the lowest on record for the time of year."""
    if s.drought_vci_min_history <= 0 or "own_min" not in f.columns:
        return pd.Series(False, index=f.index)
    low = f["value"] <= f["own_min"] - s.scale_floor
    return (low & (f["own_n"] >= s.drought_vci_min_history)).fillna(False)


def dormant_peers(f: pd.DataFrame, s: DetectSettings) -> pd.Series:
    """Looks of crops without a calendar whose peers' median is ``dormant_peer_decline``
    below its highest so far: the peer group is out of its growing season (senesced,
    dormant, snow-covered), so it is no yardstick of water stress. Calendar crops have
    their watch stages instead."""
    if s.dormant_peer_decline <= 0:
        return pd.Series(False, index=f.index)
    low = f["peer_median"] < (1.0 - s.dormant_peer_decline) * f["peer_season_max"]
    return (low & ~f["has_calendar"]).fillna(False)


def own_abrupt(
    f: pd.DataFrame, s: DetectSettings, *, earlier: Earlier | None = None
) -> tuple[pd.Series, pd.Series]:
    """Abrupt loss judged against the farm's own history, for looks without peers.

    A reference look among the farm's previous two within ``abrupt_own_window_days``, in
    its normal range (own deficit under ``recover_deficit``, at least
    ``abrupt_min_before``), and the look now far below its own history (``drought_z``
    and ``drought_deficit``), having lost at least ``abrupt_drop`` against what its own
    history expects over the interval (the change of deficit, so a seasonal decline the
    farm shows every year is not counted) and ``abrupt_own_z`` times the robust spread of its
    look-to-look changes at this time of year in earlier seasons (a rangeland browning fast
    at the end of every rainy season is not a loss). Drought builds over weeks against a variable
    baseline; a stand going from normal to far below normal within two composites, with
    no peers to say the weather did it, was lost. Returns the mask and the reference value.
    Reads the farm's earlier rows (looks sorted by farm and date), continued into
    ``earlier`` (the farm's looks before the frame) when given.
    """
    none = pd.Series(False, index=f.index)
    if s.abrupt_own_window_days <= 0 or f.empty:
        return none, pd.Series(np.nan, index=f.index)
    farm = pd.Series(pd.factorize(f["farm_id"])[0], index=f.index)
    g = f[["value", "date", "expected"]].groupby(farm, sort=False)
    now_dev = f["value"] - f["expected"]
    best_drop = pd.Series(-np.inf, index=f.index)
    ref_value = pd.Series(np.nan, index=f.index)
    for k in (1, 2):
        if earlier is None:
            ref = g.shift(k)
        else:
            ref = earlier.shifted(f, ["value", "date", "expected"], k, farm)
        with np.errstate(all="ignore"):
            ref_def = (ref["expected"] - ref["value"]) / ref["expected"]
        ok = (
            ((f["date"] - ref["date"]).dt.days <= s.abrupt_own_window_days)
            & (ref["value"] >= s.abrupt_min_before)
            & (ref_def < s.recover_deficit)
        ).fillna(False)
        drop = ((ref["value"] - ref["expected"]) - now_dev).where(ok, -np.inf).fillna(-np.inf)
        better = drop > best_drop
        best_drop = best_drop.where(~better, drop)
        ref_value = ref_value.where(~better, ref["value"])
    # ... and far outside how fast the farm moves at this time of year in earlier seasons
    fast = best_drop >= s.abrupt_own_z * f["own_change_scale"] if "own_change_scale" in f else False
    mask = (
        f["peer_median"].isna()
        & (best_drop >= s.abrupt_drop)
        # the canopy actually fell (a green-up that fails to come is drought, not loss)
        & (ref_value - f["value"] >= s.abrupt_drop)
        & fast
        & (f["own_z"] <= -s.drought_z)
        & (f["own_deficit"] >= s.drought_deficit)
    ).fillna(False)
    return mask, ref_value
