"""Looks whose canopy was not measured sound: standing water (floods) and abrupt losses.

Split from :mod:`.detectors` (which re-exports the detectors): the drought detector's pace
reference skips these looks (:func:`agrisat.anomaly.detectors.keeping_pace`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .robust import own_abrupt
from .settings import DEFAULT_SETTINGS, DetectSettings

if TYPE_CHECKING:
    from .carry import Earlier

__all__ = [
    "detect_abrupt_loss",
    "detect_flood",
    "held_losses",
    "loss_looks",
    "loss_reference",
    "unsound_looks",
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


def _abrupt_mask(
    f: pd.DataFrame,
    s: DetectSettings,
    *,
    earlier: Earlier | None = None,
    own: pd.Series | None = None,
) -> pd.Series:
    """Looks :func:`detect_abrupt_loss` reports (see there); ``own``: the
    :func:`~agrisat.anomaly.robust.own_abrupt` mask when known."""
    drop = f["prev_value"] - f["value"]
    gap = (f["date"] - f["prev_date"]).dt.days
    peer_drop = f["prev_peer_median"] - f["peer_median"]
    harvest = _harvest(f, s)
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
        same = _same_season_as_previous(f, check, earlier=earlier)
        mask &= ~pd.Series(check, index=f.index) | same
    if own is None:
        own = own_abrupt(f, s, earlier=earlier)[0]
    return mask | (own & ~harvest)


def _harvest(f: pd.DataFrame, s: DetectSettings) -> pd.Series:
    """Looks inside the harvest window while the peers are ripening too (a drop there is
    a harvest, see :func:`detect_abrupt_loss`)."""
    with np.errstate(all="ignore"):
        peer_decline = 1.0 - f["peer_median"] / f["peer_season_max"]
    # Before the peers ripen, only a canopy gone (bare soil) is unambiguous: an early crop
    # ripening ahead of its peers drops too, but to a half-green canopy.
    ripening = _nan_or(peer_decline >= s.ripening_decline, peer_decline)
    return f["in_harvest"] & (ripening | (f["value"] > s.green_min))


def _same_season_as_previous(
    f: pd.DataFrame, rows: np.ndarray, *, earlier: Earlier | None = None
) -> pd.Series:
    """Whether each of ``rows`` (a mask) and the farm's previous look are of one crop season.

    The previous look is the previous row (features are sorted by farm and date), or for a
    farm's first row the latest look of ``earlier`` when given."""
    out = np.zeros(len(f), dtype=bool)
    season = f["season_id"].to_numpy()
    if earlier is not None:
        first = np.flatnonzero(rows & (earlier.pos == 0))
        prev = earlier.rows["season_1"].to_numpy()
        known = pd.notna(season[first]) & pd.notna(prev[first])
        out[first[known]] = season[first[known]] == prev[first[known]]
        rows = rows & (earlier.pos > 0)
    i = np.flatnonzero(rows)
    i = i[i > 0]
    farm = f["farm_id"].to_numpy()
    same = (farm[i] == farm[i - 1]) & (season[i] == season[i - 1]) & pd.notna(season[i])
    out[i[same]] = True
    return pd.Series(out, index=f.index)


def detect_abrupt_loss(
    f: pd.DataFrame,
    settings: DetectSettings = DEFAULT_SETTINGS,
    *,
    earlier: Earlier | None = None,
    mask: pd.Series | None = None,
    own: tuple[pd.Series, pd.Series] | None = None,
    held: tuple[pd.Series, pd.Series] | None = None,
) -> pd.DataFrame:
    """A large drop between consecutive clear looks, not a harvest, that the peers did not
    share. A harvest is a drop inside the calendar's harvest window while the peers are
    ripening (their median ``ripening_decline`` below its season peak; no peers: the window
    alone). Crops without a calendar need peers (their drop is the harvest test). The looks
    are at most ``abrupt_max_gap_days`` apart, unless the canopy is gone (at or below
    ``no_planting_max``) while the peers stand green (``green_min``) and both looks are of the
    same crop season: a crop seen green and found bare after a long cloud gap was lost.
    The look after a loss that stays down is the loss still (:func:`held_losses`).

    ``score`` is the relative drop; ``expected`` the level before it (the previous look's
    value, or the reference look a loss judged against own history or a kept loss quotes).
    ``earlier``: the farm's looks before the frame (see :mod:`.carry`); ``mask``, ``own``
    (the looks and :func:`~agrisat.anomaly.robust.own_abrupt`) and ``held``
    (:func:`held_losses`) when known.
    """
    s = settings
    own_mask, own_ref = own_abrupt(f, s, earlier=earlier) if own is None else own
    if mask is None:
        mask = _abrupt_mask(f, s, earlier=earlier, own=own_mask)
    before = loss_reference(f, own_mask, own_ref)
    if held is None:
        held = held_losses(f, s, loss=mask & ~_flood_mask(f, s), before=before, earlier=earlier)
    kept, kept_ref = held
    before = before.where(mask, kept_ref)
    drop = before - f["value"]
    return _rows(
        f,
        mask | kept,
        "abrupt_loss",
        drop / before,
        before,
        ["prev_date", "peer_z", "peer_median"],
    )


def loss_reference(f: pd.DataFrame, own_mask: pd.Series, own_ref: pd.Series) -> pd.Series:
    """The level before each look's drop: the previous look's value, or for a loss judged
    against own history over two looks (``own_mask``) the higher of it and the reference
    look's (``own_ref``, :func:`~agrisat.anomaly.robust.own_abrupt`)."""
    return f["prev_value"].where(~own_mask, np.fmax(own_ref, f["prev_value"]))


def held_losses(
    f: pd.DataFrame,
    settings: DetectSettings = DEFAULT_SETTINGS,
    *,
    loss: pd.Series,
    before: pd.Series,
    earlier: Earlier | None = None,
) -> tuple[pd.Series, pd.Series]:
    """Looks that keep the loss of the look before them: the loss stands, the crop did not
    come back.

    The previous look (within ``abrupt_max_gap_days``) is labelled abrupt loss and opened
    its run of losses (the look before it was no loss, or more than
    ``abrupt_max_gap_days`` earlier), and this look is still ``abrupt_drop`` below the level
    before that loss and kept at least ``abrupt_hold_share`` of it; not a harvest (as
    :func:`detect_abrupt_loss`), still far below its peers (``abrupt_peer_z``, when it has
    peers) and outside its normal range (own deficit ``recover_deficit``, when known). Such
    a look is labelled abrupt loss too, so a loss that waits for a second look (a look of
    unknown sky, a hazy date: see :func:`agrisat.anomaly.core.confirmation_runs`) is
    confirmed by the next look when the loss persists and not when it was a dip that came
    back. A 16-day composite series shows a clear-fell as one drop and then a floor that
    wobbles (0.84, 0.73, 0.62, 0.66): the second low look is no new drop, but the loss.

    Parameters
    ----------
    f
        Looks sorted by farm and date (the detectors' inputs).
    settings
        Thresholds; ``abrupt_hold_share`` 0 disables (no look is returned).
    loss
        The looks labelled abrupt loss by the drop rules (:func:`detect_abrupt_loss`'s
        mask, without the looks a flood outranks).
    before
        The level before each of those looks' drop (:func:`loss_reference`).
    earlier
        The farm's looks before ``f`` (:mod:`.carry`: whether its latest two were labelled
        abrupt loss, the latest one's level before the loss).

    Returns
    -------
    tuple of pandas.Series
        The mask, and the level before the loss each such look keeps (NaN elsewhere).
    """
    s = settings
    none = pd.Series(False, index=f.index)
    ref_none = pd.Series(np.nan, index=f.index)
    if s.abrupt_hold_share <= 0 or f.empty:
        return none, ref_none
    farm = pd.Series(pd.factorize(f["farm_id"])[0], index=f.index)
    gap = (f["date"] - f["prev_date"]).dt.days
    # what the look must show on its own, whatever the labels before it
    down = (
        (gap <= s.abrupt_max_gap_days)
        & ~_harvest(f, s)
        & _nan_or(f["peer_z"] <= -s.abrupt_peer_z, f["peer_z"])
        & _nan_or(f["own_deficit"] >= s.recover_deficit, f["own_deficit"])
    ).fillna(False)
    lost = loss.fillna(False).astype(bool)
    if not (down & lost.groupby(farm, sort=False).shift(1, fill_value=False)).any() and (
        earlier is None or not (earlier.rows["loss_1"] == 1).any()
    ):
        return none, ref_none
    held, ref = none, ref_none
    # A held look's label depends on the labels of the two looks before it, which may be
    # held looks themselves: iterate to the fixed point (each round settles one more look
    # of a farm's consecutive losses; two rounds unless losses follow each other).
    for _ in range(len(f) + 1):
        labelled = lost | held
        frame = pd.DataFrame(
            {
                "loss": labelled.astype(float),
                "loss_ref": before.where(lost, ref),
                "date": f["date"],
            }
        )
        if earlier is None:
            prev = frame.groupby(farm, sort=False).shift(1)
            prev2 = frame[["loss", "date"]].groupby(farm, sort=False).shift(2)
        else:
            prev = earlier.shifted(frame, ["loss", "loss_ref", "date"], 1, farm)
            prev2 = earlier.shifted(frame, ["loss", "date"], 2, farm)
        run_before = (prev2["loss"] == 1) & (
            (prev["date"] - prev2["date"]).dt.days <= s.abrupt_max_gap_days
        )
        level = prev["loss_ref"]
        now = level - f["value"]
        new = (
            down
            & (prev["loss"] == 1)
            & ~run_before
            & (now >= s.abrupt_drop)
            & (now >= s.abrupt_hold_share * (level - f["prev_value"]))
        ).fillna(False)
        new_ref = level.where(new)
        if new.equals(held):
            return held, new_ref
        held, ref = new, new_ref
    return held, ref  # pragma: no cover (the loop settles within len(f) rounds)


def loss_looks(
    f: pd.DataFrame, settings: DetectSettings = DEFAULT_SETTINGS, *, earlier: Earlier | None = None
) -> tuple[tuple[pd.Series, pd.Series], pd.Series, pd.Series, tuple[pd.Series, pd.Series]]:
    """The looks the flood and abrupt-loss detectors report, computed once (the drought
    detector's pace reference skips them): :func:`~agrisat.anomaly.robust.own_abrupt`, the
    flood mask, the drop mask and :func:`held_losses` (mask and level before the loss)."""
    s = settings
    own = own_abrupt(f, s, earlier=earlier)
    flood = _flood_mask(f, s)
    abrupt = _abrupt_mask(f, s, earlier=earlier, own=own[0])
    before = loss_reference(f, *own)
    held = held_losses(f, s, loss=abrupt & ~flood, before=before, earlier=earlier)
    return own, flood, abrupt, held


def unsound_looks(
    f: pd.DataFrame, settings: DetectSettings = DEFAULT_SETTINGS, *, earlier: Earlier | None = None
) -> pd.Series:
    """Looks whose canopy was not measured sound: flood or abrupt loss (a drop, or a look
    keeping a loss: :func:`held_losses`)."""
    _, flood, abrupt, held = loss_looks(f, settings, earlier=earlier)
    return flood | abrupt | held[0]


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


def detect_flood(
    f: pd.DataFrame, settings: DetectSettings = DEFAULT_SETTINGS, *, mask: pd.Series | None = None
) -> pd.DataFrame:
    """Standing water where the crop should be (crops without a calendar: unless their own
    history says the field is bare now): SCL-water share of the clear area above
    ``flood_water`` and above both the peers' and the farm's own usual share by
    ``flood_margin`` (so paddy rice or a pond in the parcel is not a flood). NDWI is the
    fallback when no water share is given. ``score`` is the water share; ``mask``: the
    flood looks when known.
    """
    s = settings
    _, score = _water_excess(f, s)
    expected = f["peer_water"].fillna(f["hist_water"]).fillna(0.0)
    mask = _flood_mask(f, s) if mask is None else mask
    return _rows(f, mask, "flood", score, expected, ["water_fraction", "ndwi", "peer_median"])
