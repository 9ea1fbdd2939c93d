"""Own-history baselines: each clear look against the same time of year in earlier seasons.

Vectorised across farms: a look is compared only with its farm's looks that can fall in a
history window, found by binary search on farm x day keys, so the work per look does not grow
with the length of the history; farm chunks run as Dask tasks for large books.
"""

from __future__ import annotations

import logging
from functools import partial

import dask
import numpy as np
import pandas as pd

from .settings import DEFAULT_SETTINGS, DetectSettings

__all__ = ["SERIAL_FARMS", "chunk_rows", "farm_chunks", "own_history"]

log = logging.getLogger(__name__)

_YEAR = 365.25


def _masked_median(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise median of ``values`` (2-D, finite) where ``mask``; returns (median, count)."""
    arr = np.where(mask, values, np.inf)
    arr.sort(axis=1)
    n = mask.sum(axis=1)
    rows = np.arange(arr.shape[0])
    lo = arr[rows, np.maximum((n - 1) // 2, 0)]
    hi = arr[rows, np.maximum(n // 2, 0)] if arr.shape[1] else lo
    med = np.where(n > 0, (lo + hi) / 2, np.nan)
    return med, n


def _own_stats(
    vv: np.ndarray,
    tt: np.ndarray,
    ww: np.ndarray,
    cc: np.ndarray,
    valid: np.ndarray,
    ti: np.ndarray,
    vi: np.ndarray,
    s: DetectSettings,
) -> dict[str, np.ndarray]:
    """Own-history statistics of looks (rows) against candidate history looks (columns).

    ``vv``/``tt``/``ww``/``cc`` are the candidates' value, day, water share (NaN as 0) and
    change since their previous look (NaN when unknown or longer ago than
    ``abrupt_own_window_days``); ``valid``
    marks real candidates. Any superset of the looks that can fall in a history window gives
    the same result (medians, MAD, min and max are taken over masked sets).
    """
    hist = valid & (tt <= ti[:, None] - s.history_min_gap_days)
    tol = s.phenology_tolerance_days
    lags = sorted({-tol, -tol // 2, 0, tol // 2, tol})
    meds = []
    mask0 = hist
    for lag in lags:
        dist = np.abs(((tt - ti[:, None] - lag + _YEAR / 2) % _YEAR) - _YEAR / 2)
        m = hist & (dist <= s.history_window_days)
        med, n = _masked_median(vv, m)
        meds.append(np.where(n >= s.min_history_looks, med, np.nan))
        if lag == 0:
            mask0, n0, med0 = m, n, med
    enough = n0 >= s.min_history_looks
    mad, _ = _masked_median(np.abs(vv - med0[:, None]), mask0)
    # look-to-look changes of the same time of year (how fast the farm moves then)
    cok = mask0 & np.isfinite(cc)
    cfill = np.where(cok, cc, 0.0)
    cmed, cn = _masked_median(cfill, cok)
    cmad, _ = _masked_median(np.abs(cfill - cmed[:, None]), cok)
    stacked = np.vstack(meds)
    with np.errstate(all="ignore"):
        low = np.nanmin(np.where(np.isfinite(stacked), stacked, np.inf), axis=0)
    low = np.where(np.isfinite(low), low, np.nan)
    vmin = np.where(mask0, vv, np.inf).min(axis=1)
    vmax = np.where(mask0, vv, -np.inf).max(axis=1)
    wmax = np.where(mask0, ww, -np.inf).max(axis=1)
    span = np.where(vmax - vmin > 1e-6, vmax - vmin, np.nan)
    return {
        "expected": np.where(enough, np.minimum(low, med0), np.nan),
        "expected_mid": np.where(enough, med0, np.nan),
        "own_scale": np.where(enough, np.maximum(1.4826 * mad, s.scale_floor), np.nan),
        "own_n": n0.astype(float),
        "vci": np.where(enough, (vi - vmin) / span, np.nan),
        "hist_water": np.where(enough, wmax, np.nan),
        "own_min": np.where(enough, vmin, np.nan),
        "own_change_scale": np.where(
            cn >= s.min_history_looks, np.maximum(1.4826 * cmad, s.scale_floor), np.nan
        ),
    }


_OWN_COLS = [
    "expected", "expected_mid", "own_scale", "own_n", "vci", "hist_water", "own_min",
    "own_change_scale",
]  # fmt: skip


def _look_change(chunk: pd.DataFrame, s: DetectSettings) -> np.ndarray:
    """Each look's change since the farm's previous look (``prev_value``/``prev_date``
    columns; NaN without them or when that look is over ``abrupt_own_window_days`` back)."""
    if "prev_value" not in chunk.columns or "prev_date" not in chunk.columns:
        return np.full(len(chunk), np.nan)
    gap = (chunk["date"] - pd.to_datetime(chunk["prev_date"])).dt.days
    chg = chunk["value"].astype(float) - chunk["prev_value"].astype(float)
    return chg.where(gap <= max(s.abrupt_own_window_days, 0)).to_numpy(dtype=float)


def _range_columns(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index matrix of the ranges ``[lo, hi)`` (one per row, padded) and its validity mask."""
    width = int((hi - lo).max()) if lo.size else 0
    off = np.arange(max(width, 1))
    idx = lo[:, None] + off[None, :]
    ok = off[None, :] < (hi - lo)[:, None]
    return np.where(ok, idx, 0), ok


def _candidates(
    cs: np.ndarray, ts: np.ndarray, evh: np.ndarray, s: DetectSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate history looks of the looks ``evh`` (positions in the block x day sorted
    ``cs``/``ts``): an index matrix (one row per look, padded) and its validity mask.

    The candidates are the block's looks within ``phenology_tolerance_days +
    history_window_days`` (+1) of the same day of year in each earlier year, found by binary
    search on block x day keys -- a superset of every history window, whatever the history's
    length.
    """
    half = s.phenology_tolerance_days + s.history_window_days + 1.0
    rel = ts - ts.min()
    # Block keys far enough apart that no query range reaches a neighbouring block.
    big = 2 * float(rel.max()) + 2 * half + 2 * _YEAR + 10.0
    key = cs * big + rel
    ce, re_ = cs[evh], rel[evh]
    if s.history_min_gap_days < 0 or 2 * half >= _YEAR:
        # Windows overlap across years: every look of the block is a candidate.
        lo = np.searchsorted(key, ce * big - 1.0, "left")
        hi = np.searchsorted(key, ce * big + big - 1.0, "left")
        return _range_columns(lo, hi)
    parts = []
    first = 0 if s.history_min_gap_days <= half else 1
    for m in range(first, int(rel.max() // _YEAR) + 2):
        centre = re_ - m * _YEAR
        lo = np.searchsorted(key, ce * big + centre - half, "left")
        hi = np.searchsorted(key, ce * big + centre + half, "right")
        parts.append(_range_columns(lo, hi))
    return np.hstack([p[0] for p in parts]), np.hstack([p[1] for p in parts])


def _own_inputs(
    looks: pd.DataFrame, eval_from: pd.Timestamp | None, s: DetectSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The arrays :func:`_own_arrays` reads, per row of ``looks``: farm code (in order of
    first appearance), day, value, water share (NaN as 0), change since the previous look
    (:func:`_look_change`) and whether the look is evaluated. Taken once for a whole table:
    per farm chunk of a few hundred farms the pandas calls cost more than the statistics."""
    code, _ = pd.factorize(looks["farm_id"], sort=False)
    t = (looks["date"] - pd.Timestamp("1970-01-01")).dt.days.to_numpy(dtype=float)
    v = looks["value"].to_numpy(dtype=float)
    w = np.nan_to_num(looks["water_fraction"].to_numpy(dtype=float), nan=0.0)
    c = _look_change(looks, s)
    em = (
        np.ones(len(looks), dtype=bool)
        if eval_from is None
        else (looks["date"] >= eval_from).to_numpy()
    )
    return code, t, v, w, c, em


def _own_arrays(
    code: np.ndarray,
    t: np.ndarray,
    v: np.ndarray,
    w: np.ndarray,
    c: np.ndarray,
    em: np.ndarray,
    s: DetectSettings,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Own-history statistics of the evaluated looks of a chunk of farms (the arrays of
    :func:`_own_inputs`, restricted to the chunk's rows in their order), vectorised across
    farms: (the evaluated rows' positions, farms in code order then rows in order; each
    statistic of those rows).

    Each evaluated look is compared only with its farm's looks that can fall in a history
    window (same day of year in earlier years, found by binary search on farm x day keys)
    instead of with all of the farm's looks: the statistics are identical, the work is a
    few dozen candidates per look however long the history.
    """
    if code.size == 0:
        return np.zeros(0, dtype=np.intp), {k: np.zeros(0) for k in _OWN_COLS}
    # codes of a chunk of farms are a contiguous range (:func:`chunk_rows`): from 0
    code = code - code.min()
    order = np.lexsort((t, code))
    cs, ts, vs, ws, chs = code[order], t[order], v[order], w[order], c[order]
    ev = np.flatnonzero(em[order])
    if ev.size == 0:
        return np.zeros(0, dtype=np.intp), {k: np.zeros(0) for k in _OWN_COLS}
    n_farms = int(code.max()) + 1
    # A farm whose earliest look is not history for its latest evaluated look has no
    # history at all: all NaN (also own_n), as for a farm without earlier seasons.
    tmin = np.full(n_farms, np.inf)
    np.minimum.at(tmin, cs, ts)
    tev = np.full(n_farms, -np.inf)
    np.maximum.at(tev, cs[ev], ts[ev])
    has_hist = (tmin <= tev - s.history_min_gap_days)[cs[ev]]
    out = {k: np.full(ev.size, np.nan) for k in _OWN_COLS}
    at = np.flatnonzero(has_hist)
    # Evaluated looks go in slices: the padded candidate matrices (looks x candidates, a
    # dozen of them) then stay small however many looks a chunk evaluates (an incremental
    # step's partition of 20,000 farms x 20 dates, in one serial chunk). Each look's
    # statistics are its own row's, so the slicing changes no value.
    for a in range(0, at.size, SLICE_ROWS):
        rows = at[a : a + SLICE_ROWS]
        evh = ev[rows]
        idx, ok = _candidates(cs, ts, evh, s)
        res = _own_stats(vs[idx], ts[idx], ws[idx], chs[idx], ok, ts[evh], vs[evh], s)
        for k, arr in res.items():
            out[k][rows] = arr
        del idx, ok, res
    # Rows in the order of the per-farm loop this replaces: farms by first appearance.
    pos = order[ev]
    back = np.lexsort((pos, code[pos]))
    return pos[back], {k: a[back] for k, a in out.items()}


def _own_frame(looks: pd.DataFrame, pos: np.ndarray, stats: dict[str, np.ndarray]) -> pd.DataFrame:
    """:func:`_own_arrays`' result as the rows of ``looks`` it is about."""
    if pos.size == 0:
        return pd.DataFrame(columns=_OWN_COLS, dtype=float)
    return pd.DataFrame(stats, index=looks.index[pos])


def _own_chunk(
    chunk: pd.DataFrame, eval_from: pd.Timestamp | None, s: DetectSettings
) -> pd.DataFrame:
    """Own-history statistics of a chunk of farms (:func:`_own_arrays` of its rows)."""
    if chunk.empty:
        return pd.DataFrame(columns=_OWN_COLS, dtype=float)
    return _own_frame(chunk, *_own_arrays(*_own_inputs(chunk, eval_from, s), s))


#: evaluated looks per slice of the candidate matrices (:func:`_own_chunk`, and the seasonal
#: peer gap's): ~8,000 x a few dozen candidates x 8 bytes is a few MB per matrix
SLICE_ROWS = 8_192

#: the columns :func:`own_history` reads
_READS = ("farm_id", "date", "value", "water_fraction", "prev_value", "prev_date")


def chunk_rows(looks: pd.DataFrame, chunk_farms: int) -> list[np.ndarray]:
    """Row positions of ``looks`` in chunks of ``chunk_farms`` farms (in order of first
    appearance), each chunk's rows in their original order. One stable sort, then slices:
    selecting each chunk with a mask over every row would cost chunks x rows."""
    return code_chunks(pd.factorize(looks["farm_id"])[0], chunk_farms)


def code_chunks(codes: np.ndarray, chunk_farms: int) -> list[np.ndarray]:
    """:func:`chunk_rows` of the rows' farm codes (``pandas.factorize`` of their ids)."""
    chunk_of = codes // max(1, int(chunk_farms))
    order = np.argsort(chunk_of, kind="stable")
    bounds = np.flatnonzero(np.diff(chunk_of[order])) + 1
    return np.split(order, bounds)


def farm_chunks(looks: pd.DataFrame, chunk_farms: int) -> list[pd.DataFrame]:
    """The rows of ``looks`` in chunks of ``chunk_farms`` farms (:func:`chunk_rows`)."""
    return [looks.iloc[idx] for idx in chunk_rows(looks, chunk_farms)]


#: looks per Dask task at least (:func:`task_chunks`): a task of ``chunk_farms`` farms of a
#: first night (250 x 8 looks) cost more to schedule than its numpy work
TASK_ROWS = 20_000


def task_chunks(codes: np.ndarray, chunk_farms: int) -> list[np.ndarray]:
    """:func:`code_chunks` of at least ``chunk_farms`` farms and about :data:`TASK_ROWS`
    rows each (farms of a few looks go several hundred to a task)."""
    n_farms = int(codes.max()) + 1 if codes.size else 0
    per_task = -(-TASK_ROWS * n_farms // max(codes.size, 1))  # farms for TASK_ROWS rows
    return code_chunks(codes, max(int(chunk_farms), per_task, 1))


#: farms per chunk of the serial path (``parallel=False``): a few large vectorised chunks,
#: each copied only while it is computed, so the arrays of a long incremental step (20,000
#: farms x years of history looks) are never all in memory at once
SERIAL_FARMS = 5_000


def own_history(
    looks: pd.DataFrame,
    settings: DetectSettings = DEFAULT_SETTINGS,
    *,
    eval_from: pd.Timestamp | None = None,
    parallel: bool = True,
) -> pd.DataFrame:
    """Own-history baseline of each clear look: robust expected value, scale and VCI.

    ``looks`` has ``farm_id``, ``date``, ``value``, ``water_fraction`` (one farm's rows
    together). For each look, earlier-season looks within ``history_window_days`` of the same
    day of year give the median (``expected_mid``) and MAD (``own_scale``, floored); the
    ``expected`` used for deficits is the lowest such median over lags of up to
    ``phenology_tolerance_days`` (an early or late season is not a deficit). ``vci`` is the
    Vegetation Condition Index against the min/max of the same window. Farm chunks run as Dask
    tasks when there are at least ``parallel_min_farms`` farms and ``parallel`` is true; with
    ``parallel`` false they run one after the other in a few large chunks (``SERIAL_FARMS``
    farms): an incremental night evaluates one look per farm and new date, and 400 tasks of
    ``chunk_farms`` farms cost it more than the work.
    """
    if eval_from is not None and not (looks["date"] >= eval_from).any():
        # nothing to evaluate (the incremental path's first pass): skip the chunking
        return pd.DataFrame(columns=_OWN_COLS, dtype=float)
    if not parallel:
        # only the columns the baseline reads: each chunk is a copy, of every column it carries
        looks = looks[[c for c in _READS if c in looks.columns]]
        if len(looks["farm_id"].unique()) <= SERIAL_FARMS:
            return _own_chunk(looks, eval_from, settings)
        parts = chunk_rows(looks, SERIAL_FARMS)
        return pd.concat([_own_chunk(looks.iloc[idx], eval_from, settings) for idx in parts])
    if looks.empty:
        return pd.DataFrame(columns=_OWN_COLS, dtype=float)
    # The table's arrays once (a farm chunk's own copy of its rows and their pandas calls
    # cost more than its statistics: at 100,000 farms x 8 dates, 1.3 s of the night's 1.5 s
    # of own history), then farm chunks of them as Dask tasks.
    arrays = _own_inputs(looks, eval_from, settings)
    n_farms = int(arrays[0].max()) + 1
    if n_farms < settings.parallel_min_farms:
        return _own_frame(looks, *_own_arrays(*arrays, settings))
    parts = task_chunks(arrays[0], settings.chunk_farms)
    # the settings bound once: as a task argument Dask walks the dataclass for every task
    task = dask.delayed(partial(_own_arrays, s=settings))
    tasks = [task(*(a[idx] for a in arrays)) for idx in parts]
    log.debug("own history over %d farms in %d dask tasks", n_farms, len(tasks))
    done = dask.compute(*tasks)
    pos = np.concatenate([idx[p] for idx, (p, _) in zip(parts, done, strict=True)])
    stats = {k: np.concatenate([d[k] for _, d in done]) for k in _OWN_COLS}
    return _own_frame(looks, pos, stats)
