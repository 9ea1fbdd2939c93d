"""A farm's usual standing against its peers at this time of year (own history of the peer gap).

A farm with a phenology of its own (a different variety, a shaded or wetter plot, a block of
another vegetation in a mixed peer group) stands at its own distance from its peers' median,
and that distance follows the season: a farm that senesces earlier than its peers is 0.10-0.15
below them every September. Being there again this September is its normal, not a drought.

:func:`seasonal_gap` gives each look that usual distance -- the median of ``value -
peer_median`` over the farm's looks of earlier seasons near the same day of year, judged by the
same peer level -- and :func:`seasonal_standing` the peer z and deficit measured from it, which
the drought detector reads where the peer gap decides (see
:func:`agrisat.anomaly.detectors.season_peer`: looks without an own baseline, and the change
route's level check; where own history gives a baseline it already says what is normal).

How it relates to :func:`agrisat.anomaly.features.standing_change`: that one takes the usual
standing over the farm's *recent weeks* (10-45 days back, this season) and asks whether the
farm is *losing* standing now -- a change, fast, blind to a gap the farm always has at this
stage and to a deficit that built up more than 45 days ago. This one takes it at the *same time
of year in earlier seasons* and asks whether the farm's *level* against its peers is unusual
for the date -- the yardstick of the peer-deficit routes. A farm that senesces early every
year loses standing each September (a change the recent reference sees) yet is at its usual
September level (which only the seasonal reference knows); so the level checks use the
seasonal one and the change route keeps the recent one.

Causal: only looks ``history_min_gap_days`` or more before the look count, so the full and the
incremental paths give the same values from the same persisted looks.
"""

from __future__ import annotations

import logging
from functools import partial

import dask
import numpy as np
import pandas as pd

from .history import (
    _YEAR,
    SERIAL_FARMS,
    SLICE_ROWS,
    _candidates,
    _masked_median,
    chunk_rows,
    task_chunks,
)
from .settings import DEFAULT_SETTINGS, DetectSettings

__all__ = ["seasonal_gap", "seasonal_standing"]

log = logging.getLogger(__name__)


def _gap_rows(
    bs: np.ndarray, ts: np.ndarray, gs: np.ndarray, ev: np.ndarray, s: DetectSettings
) -> np.ndarray:
    """The usual gap of the looks ``ev`` (positions in the block x day sorted ``bs``/``ts``,
    gaps ``gs``); NaN where there are too few history looks or seasons."""
    idx, ok = _candidates(bs, ts, ev, s)
    tt, ti = ts[idx], ts[ev]
    hist = ok & (tt <= ti[:, None] - s.history_min_gap_days)
    dist = np.abs(((tt - ti[:, None] + _YEAR / 2) % _YEAR) - _YEAR / 2)
    # The window of the own history widened by its phenology tolerance: a farm's gap moves
    # fast through a transition (green-up, senescence), so its usual value is taken over the
    # whole stretch own history searches rather than one lag of it.
    mask = hist & (dist <= s.history_window_days + s.phenology_tolerance_days)
    med, n = _masked_median(gs[idx], mask)
    # distinct earlier seasons among those looks: a gap seen in one season only may be that
    # season's own event (a drought, a late sowing), not the farm's habit
    years = np.where(mask, np.rint((ti[:, None] - tt) / _YEAR), np.inf)
    years.sort(axis=1)
    fin = np.isfinite(years)
    with np.errstate(invalid="ignore"):  # inf - inf past the last one: masked by ``fin``
        steps = fin[:, 1:] & (np.diff(years, axis=1) > 0)
    seasons = fin[:, :1].sum(axis=1) + steps.sum(axis=1)
    enough = (n >= s.seasonal_gap_min_looks) & (seasons >= s.seasonal_gap_min_seasons)
    return np.where(enough, med, np.nan)


def _gap_inputs(looks: pd.DataFrame, eval_from: pd.Timestamp | None) -> tuple[np.ndarray, ...]:
    """What :func:`_gap_values` reads of ``looks``, taken once for a whole table: the rows
    with a usable peer gap, and of those their farm code, block (farm x peer level), day,
    gap and whether they are evaluated."""
    gap = (looks["value"] - looks["peer_median"]).to_numpy(dtype=float)
    level = looks["peer_level"].astype(str)
    lv = level.to_numpy()
    usable = np.flatnonzero(np.isfinite(gap) & (lv != "none") & (lv != "nan"))
    farm = pd.factorize(looks["farm_id"].iloc[usable], sort=False)[0]
    # Blocks are farm x peer level: a gap to the region's median and one to the crop's
    # elsewhere are different yardsticks (as for the recent standing).
    lcode, lvls = pd.factorize(level.iloc[usable], sort=False)
    block = farm * max(len(lvls), 1) + lcode
    t = (looks["date"].iloc[usable] - pd.Timestamp("1970-01-01")).dt.days.to_numpy(dtype=float)
    em = (
        np.ones(usable.size, dtype=bool)
        if eval_from is None
        else (looks["date"].iloc[usable] >= eval_from).to_numpy()
    )
    return usable, farm, block, t, gap[usable], em


def _gap_values(
    block: np.ndarray, t: np.ndarray, g: np.ndarray, em: np.ndarray, s: DetectSettings
) -> np.ndarray:
    """:func:`seasonal_gap` of the usable rows of a chunk of farms (vectorised across
    farms; NaN on rows not evaluated)."""
    vals = np.full(t.size, np.nan)
    order = np.lexsort((t, block))
    bs, ts, gs = block[order], t[order], g[order]
    ev = np.flatnonzero(em[order])
    # evaluated looks in slices: the padded candidate matrices stay small (row-wise values)
    for a in range(0, ev.size, SLICE_ROWS):
        rows = ev[a : a + SLICE_ROWS]
        vals[order[rows]] = _gap_rows(bs, ts, gs, rows, s)
    return vals


def _gap_chunk(looks: pd.DataFrame, eval_from: pd.Timestamp | None, s: DetectSettings) -> pd.Series:
    """:func:`seasonal_gap` of one chunk of farms (vectorised across farms)."""
    out = np.full(len(looks), np.nan)
    usable, _, block, t, g, em = _gap_inputs(looks, eval_from)
    if usable.size:
        out[usable] = _gap_values(block, t, g, em, s)
    return pd.Series(out, index=looks.index)


def seasonal_gap(
    looks: pd.DataFrame,
    settings: DetectSettings = DEFAULT_SETTINGS,
    *,
    eval_from: pd.Timestamp | None = None,
    parallel: bool = True,
) -> pd.Series:
    """The farm's usual standing against its peers at each look's time of year.

    Parameters
    ----------
    looks
        Clear looks with ``farm_id``, ``date``, ``value``, ``peer_median`` and
        ``peer_level`` (earlier seasons' looks included: they are the history).
    settings
        ``seasonal_gap_min_looks`` (0 disables), ``seasonal_gap_min_seasons``, and the own
        history's ``history_min_gap_days``, ``history_window_days`` and
        ``phenology_tolerance_days``.
    eval_from
        Only looks from this date on get a value (the others NaN).
    parallel
        Farm chunks as Dask tasks (from ``parallel_min_farms`` farms); false: a few large
        chunks of ``SERIAL_FARMS`` farms one after the other (an incremental night's few
        evaluated looks do not pay for the tasks).

    Returns
    -------
    pandas.Series
        ``usual_gap`` indexed like ``looks``: the median of ``value - peer_median`` over the
        farm's looks judged by the same peer level, at least ``history_min_gap_days`` earlier
        and within ``history_window_days + phenology_tolerance_days`` of the same day of year,
        where there are ``seasonal_gap_min_looks`` of them from ``seasonal_gap_min_seasons``
        seasons; NaN otherwise (then the raw peer gap is judged, as without history).
    """
    s = settings
    nothing = eval_from is not None and not (looks["date"] >= eval_from).any()
    if s.seasonal_gap_min_looks <= 0 or looks.empty or nothing:
        return pd.Series(np.nan, index=looks.index, name="usual_gap")
    # only the columns the gap reads: each chunk is a copy, of every column it carries
    looks = looks[["farm_id", "date", "value", "peer_median", "peer_level"]]
    farms = looks["farm_id"].unique()
    if not parallel and len(farms) > SERIAL_FARMS:
        # a few large chunks one after the other, each copied only while it is computed
        parts = [_gap_chunk(looks.iloc[i], eval_from, s) for i in chunk_rows(looks, SERIAL_FARMS)]
        return pd.concat(parts).reindex(looks.index).rename("usual_gap")
    if not parallel or len(farms) < s.parallel_min_farms:
        return _gap_chunk(looks, eval_from, s).rename("usual_gap")
    # The table's arrays once, then farm chunks of them as Dask tasks (a chunk's own copy
    # of its rows and their pandas calls cost more than its medians)
    out = np.full(len(looks), np.nan)
    usable, farm, *arrays = _gap_inputs(looks, eval_from)
    parts = task_chunks(farm, s.chunk_farms) if usable.size else []
    # the settings bound once: as a task argument Dask walks the dataclass for every task
    task = dask.delayed(partial(_gap_values, s=s))
    tasks = [task(*(a[idx] for a in arrays)) for idx in parts]
    log.debug("seasonal peer gap over %d farms in %d dask tasks", len(farms), len(tasks))
    for idx, vals in zip(parts, dask.compute(*tasks), strict=True):
        out[usable[idx]] = vals
    return pd.Series(out, index=looks.index, name="usual_gap")


def seasonal_standing(f: pd.DataFrame) -> pd.DataFrame:
    """Peer z and peer deficit of each look measured from its usual standing.

    ``season_peer_z`` = (``value - peer_median - usual_gap``) / ``peer_scale`` and
    ``season_peer_deficit`` = -(``value - peer_median - usual_gap``) / ``peer_median``: what
    the look lost against its peers beyond the gap it usually has at this time of year. Where
    ``usual_gap`` is unknown they equal ``peer_z`` and ``peer_deficit``.
    """
    usual = f["usual_gap"].fillna(0.0) if "usual_gap" in f.columns else 0.0
    excess = f["value"] - f["peer_median"] - usual
    out = pd.DataFrame(index=f.index)
    with np.errstate(all="ignore"):
        out["season_peer_z"] = excess / f["peer_scale"]
        out["season_peer_deficit"] = -excess / f["peer_median"]
    return out
