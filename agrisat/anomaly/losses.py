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

__all__ = ["detect_abrupt_loss", "detect_flood"]

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
        same = _same_season_as_previous(f, check, earlier=earlier)
        mask &= ~pd.Series(check, index=f.index) | same
    if own is None:
        own = own_abrupt(f, s, earlier=earlier)[0]
    return mask | (own & ~harvest)


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
) -> pd.DataFrame:
    """A large drop between consecutive clear looks, not a harvest, that the peers did not
    share. A harvest is a drop inside the calendar's harvest window while the peers are
    ripening (their median ``ripening_decline`` below its season peak; no peers: the window
    alone). Crops without a calendar need peers (their drop is the harvest test). The looks
    are at most ``abrupt_max_gap_days`` apart, unless the canopy is gone (at or below
    ``no_planting_max``) while the peers stand green (``green_min``) and both looks are of the
    same crop season: a crop seen green and found bare after a long cloud gap was lost.

    ``score`` is the relative drop; ``expected`` the previous look's value. ``earlier``:
    the farm's looks before the frame (see :mod:`.carry`); ``mask`` and ``own`` (the
    looks and :func:`~agrisat.anomaly.robust.own_abrupt`) when known.
    """
    s = settings
    own_mask, own_ref = own_abrupt(f, s, earlier=earlier) if own is None else own
    if mask is None:
        mask = _abrupt_mask(f, s, earlier=earlier, own=own_mask)
    # a loss judged against own history over two looks quotes its reference look
    before = f["prev_value"].where(~own_mask, np.fmax(own_ref, f["prev_value"]))
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
