"""The change of a look's standing against its peers (a difference in differences).

Standing is the index minus the peers' same-date median; its usual level is the farm's median
standing over its looks ``change_ref_min_days``..``change_ref_max_days`` before. The work has a
per-farm half (:func:`reference_standing`: each look against its own farm's earlier looks) and
a peer half (:func:`change_columns`: the change standardised among same-date peers), so an
incremental night can do the first farm partition by farm partition
(:mod:`agrisat.anomaly.partition`) and the second once over every farm's new looks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .features import _group_codes, _radius_robust, _robust_by
from .history import _masked_median, _range_columns
from .radius import RadiusPeers
from .settings import DEFAULT_SETTINGS, DetectSettings

__all__ = ["CHANGE_PAIRS", "change_columns", "reference_standing", "standing_change"]


#: The standing change's residuals: (name, index column, peers' median column)
CHANGE_PAIRS = (("change", "value", "peer_median"), ("moist_change", "moist", "peer_moist"))


def standing_change(
    f: pd.DataFrame,
    settings: DetectSettings = DEFAULT_SETTINGS,
    *,
    radius: RadiusPeers | None = None,
) -> pd.DataFrame:
    """Change of each look's standing against its peers (a difference in differences).

    Standing is the index minus the peers' same-date median; its usual level is the farm's
    median standing over its looks ``change_ref_min_days``..``change_ref_max_days`` before.
    A farm that keeps a constant offset to its peers (soil, variety, management) has zero
    change; weather shared by the region cancels. The reference looks are those judged by the
    same peer level (region, radius or crop) as the current one. The change is standardised
    by the robust spread of the same change among the peers on the same date (floored).
    Computed for the vegetation index (``change``, ``change_rel``, ``change_z``) and the
    moisture index (``moist_change``, ``moist_change_z``). Causal: only earlier looks and same-date peers.
    """
    return change_columns(f, reference_standing(f, settings), settings, radius=radius)


def reference_standing(
    f: pd.DataFrame, settings: DetectSettings, *, evaluate: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The per-farm half of :func:`standing_change`: per row of ``f`` (sorted by farm and
    date) ``change`` and ``moist_change`` (standing minus its usual level) and
    ``change_ref_n`` (how many reference looks). A row reads its own farm's rows only.

    ``evaluate`` (a boolean mask over ``f``'s rows) computes only those rows (the others get
    NaN and 0): an incremental night needs its new looks' values, not those of the recent
    window's looks it reads as their reference."""
    s = settings
    t_all = (f["date"] - pd.Timestamp("1970-01-01")).dt.days.to_numpy(dtype=float)
    # Integer codes, not the ids: ``to_numpy`` of a string column is an object array of
    # Python strings (40 MB each for farm and level at 586,000 looks, at the night's peak).
    codes = pd.factorize(f["farm_id"])[0]
    farm = np.cumsum(np.r_[False, codes[1:] != codes[:-1]])  # contiguous runs of one farm
    del codes
    # The usual standing is taken over the farm's looks judged by the same peer group (a
    # switch from the region's median to the crop's elsewhere on a partly cloudy date is a
    # change of yardstick, not of the farm): blocks are farm x peer level.
    block = (farm * 4 + pd.factorize(f["peer_level"])[0]).astype(float)
    residuals = [(f[col] - f[peer]).to_numpy(dtype=float) for _, col, peer in CHANGE_PAIRS]
    *refs, n_ref = _ref_standing(
        block, t_all, residuals, s.change_ref_min_days, s.change_ref_max_days, rows=evaluate
    )
    out = {
        name: res - ref
        for (name, _, _), res, ref in zip(CHANGE_PAIRS, residuals, refs, strict=True)
    }
    out["change_ref_n"] = n_ref
    return out


def change_columns(
    f: pd.DataFrame,
    ref: Mapping[str, np.ndarray],
    settings: DetectSettings,
    *,
    radius: RadiusPeers | None = None,
) -> pd.DataFrame:
    """The peer half of :func:`standing_change`: each row's change (``ref``, per row of
    ``f``, from :func:`reference_standing`) standardised by the robust spread of the same
    change among its same-date peers (region, crop-wide yardstick or radius group)."""
    s = settings
    out = pd.DataFrame(index=f.index)
    level = f["peer_level"]
    regional, radial = (level == "region").to_numpy(), (level == "radius").to_numpy()
    by_region = _group_codes(f, ["crop", "region", "date"])
    # crop level: the same change among the looks judged by the crop-wide yardstick that date
    # (other looks of the crop are measured against their region or radius medians)
    by_crop = _group_codes(f, ["crop", "date", "peer_level"])
    out["change_ref_n"] = ref["change_ref_n"]
    for name, _, _ in CHANGE_PAIRS:
        d = pd.Series(ref[name], index=f.index)
        med1, mad1, _ = _robust_by(d, by_region)
        med2, mad2, _ = _robust_by(d, by_crop)
        medr, madr, _ = _radius_robust(d, radius if radial.any() else None)
        med = np.where(regional, med1, np.where(radial, medr, med2))
        mad = np.where(regional, mad1, np.where(radial, madr, mad2))
        scale = np.maximum(1.4826 * mad, s.change_scale_floor)
        out[name] = d
        with np.errstate(all="ignore"):
            out[f"{name}_z"] = np.where(level != "none", (d - med) / scale, np.nan)
    with np.errstate(all="ignore"):
        out["change_rel"] = out["change"] / f["peer_median"]
    return out


def _ref_standing(
    block: np.ndarray,
    t: np.ndarray,
    residuals: list[np.ndarray],
    lo: int,
    hi: int,
    *,
    rows: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Median of each of ``residuals`` over each look's looks of the same block ``lo``..``hi``
    days back, and (last) the number of those looks with the first residual known; only
    for the looks marked in ``rows`` when given (NaN and 0 elsewhere).

    Vectorised across blocks (farms): a look's candidates are a contiguous range of the
    block x day sorted looks, found by binary search; rows go in slices so the padded
    candidate matrices stay small.
    """
    outs = [np.full(t.size, np.nan) for _ in residuals]
    count = np.zeros(t.size)
    outs.append(count)
    if t.size == 0:
        return outs
    order = np.lexsort((t, block))
    bs, ts = block[order], t[order]
    rel = ts - ts.min()
    big = float(rel.max()) + abs(lo) + abs(hi) + 10.0
    key = bs * big + rel
    a_all = np.searchsorted(key, key - hi, "left")
    b_all = np.searchsorted(key, key - lo, "right")
    sorted_res = [r[order] for r in residuals]
    oks = [np.isfinite(r) for r in sorted_res]
    filled = [np.where(ok, r, 0.0) for r, ok in zip(sorted_res, oks, strict=True)]
    # positions (in the sorted order) of the looks evaluated
    todo = np.arange(t.size) if rows is None else np.flatnonzero(np.asarray(rows)[order])
    for start in range(0, todo.size, _SLICE_ROWS):
        sl = todo[start : start + _SLICE_ROWS]
        idx, valid = _range_columns(a_all[sl], b_all[sl])
        age = ts[sl, None] - ts[idx]
        window = valid & (age >= lo) & (age <= hi)
        for k, (out, ok, val) in enumerate(zip(outs, oks, filled, strict=False)):
            med, n = _masked_median(val[idx], window & ok[idx])
            out[order[sl]] = np.where(n > 0, med, np.nan)
            if k == 0:
                count[order[sl]] = n
    return outs


#: rows per slice of the vectorised reference-window medians (bounds their memory)
_SLICE_ROWS = 25_000
