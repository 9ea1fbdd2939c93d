"""Coverage-weighted per-farm statistics from chunked pixel stacks (see the package)."""

from __future__ import annotations

from collections.abc import Sequence

import dask
import dask.array as da
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
import xarray as xr
from dask.delayed import Delayed

from ..config import ZonalSettings
from .weights import ZoneWeights

__all__ = ["STATUS_ORDER", "resolve_same_day", "zonal_stats", "zonal_stats_stack"]

#: Preference when one farm has several looks on one day (best first).
STATUS_ORDER = ("ok", "cloudy", "too_small", "no_data")


def _frame(
    stats: np.ndarray,
    farm_ids: np.ndarray,
    item_ids: Sequence[str],
    days: Sequence[str],
    indices: Sequence[str],
    settings: ZonalSettings,
) -> pd.DataFrame:
    t, n, _ = stats.shape
    flat = stats.reshape(t * n, -1)
    wvalid, wclear, waterf, total = flat[:, 0], flat[:, 1], flat[:, 2], flat[:, 3]
    with np.errstate(invalid="ignore", divide="ignore"):
        clear_fraction = np.where(total > 0, wclear / total, 0.0)
    status = np.where(
        wvalid <= 1e-9,
        "no_data",
        np.where(
            total < settings.min_pixels,
            "too_small",
            np.where(clear_fraction < settings.min_clear_fraction, "cloudy", "ok"),
        ),
    )
    df = pd.DataFrame(
        {
            "farm_id": np.tile(farm_ids, t),
            "date": np.repeat(np.asarray(days, dtype=object), n),
            "item_id": np.repeat(np.asarray(item_ids, dtype=object), n),
            "status": status,
            "clear_fraction": np.round(clear_fraction, 6),
            "clear_pixels": np.round(wclear, 2),
            "water_fraction": np.round(waterf, 6),
        }
    )
    for j, name in enumerate(indices):
        df[f"{name}_mean"] = flat[:, 4 + 2 * j]
        df[f"{name}_std"] = flat[:, 5 + 2 * j]
    return df


def zonal_stats(
    cube: xr.Dataset,
    weights: ZoneWeights,
    *,
    indices: Sequence[str],
    settings: ZonalSettings = ZonalSettings(),
    time_batch: int = 8,
    footprints: Sequence[shapely.Geometry] | None = None,
) -> list[Delayed]:
    """Lazy per-farm statistics of every item of ``cube``.

    Parameters
    ----------
    cube
        Output of :func:`agrisat.cube.load_cube` with the index variables added (``indices``).
    weights
        Output of :func:`coverage_weights` on the cube's grid.
    indices
        Index variable names in ``cube``.
    time_batch
        Items per task: larger batches mean fewer tasks, smaller ones less memory per task.
    footprints
        Optional footprint of each item in the grid's CRS: a group is only measured on the
        items whose footprint touches its window (no reads, no ``no_data`` rows elsewhere).

    Returns
    -------
    list of dask.delayed
        Each computes to a DataFrame with one row per (farm, item) of one group and time batch;
        columns as in the observations export (``date`` as YYYY-MM-DD).
    """
    names = ("valid", "clear", "water", *indices)
    layers = [cube[v].data.astype(np.float32) for v in names]
    stack = da.stack(layers, axis=0).rechunk({0: len(names)})
    item_ids = [str(i) for i in cube["item_id"].values]
    if "day" in cube.coords:
        days = [str(d) for d in cube["day"].values]
    else:
        days = [str(np.datetime_as_string(t, unit="D")) for t in cube["time"].values]
    return zonal_stats_stack(
        stack,
        weights,
        indices=indices,
        item_ids=item_ids,
        days=days,
        settings=settings,
        time_batch=time_batch,
        footprints=footprints,
    )


def zonal_stats_stack(
    stack: da.Array,
    weights: ZoneWeights,
    *,
    indices: Sequence[str],
    item_ids: Sequence[str],
    days: Sequence[str],
    settings: ZonalSettings = ZonalSettings(),
    time_batch: int = 8,
    footprints: Sequence[shapely.Geometry] | None = None,
) -> list[Delayed]:
    """:func:`zonal_stats` on a stacked array (variable, time, y, x).

    The layers are ``valid``, ``clear``, ``water`` (0/1) then one per index, as made by
    :func:`agrisat.stack.prepared_stack`. The statistics are sums, so they are taken chunk by
    chunk: one task per chunk reduces it to per-farm partial sums for every farm with pixels in
    it (the chunk's slice of the coverage weights), right after it is read; each farm group's
    task then adds up the partial sums of the chunks under its window. A chunk is read once per
    date and has exactly one consumer, so it is freed at once (memory stays flat with the
    number of chunks).
    """
    if stack.numblocks[0] != 1:
        stack = stack.rechunk({0: stack.shape[0]})
    blocks = stack.to_delayed()
    tb, yb, xb = (np.cumsum((0, *c)) for c in stack.chunks[1:])
    split = _split_by_chunk(weights, yb, xb)
    nt = stack.shape[1]
    a = weights.geobox.affine
    tag = f"{id(weights):x}-{len(yb)}-{len(xb)}"
    chunk_w: dict[tuple[int, int], Delayed] = {}
    sums: dict[tuple[int, int, int], Delayed] = {}

    def chunk_sums(it: int, iy: int, ix: int) -> Delayed:
        if (it, iy, ix) not in sums:
            if (iy, ix) not in chunk_w:
                # one graph key per chunk's weights: shipped to a worker once, not once per date
                chunk_w[iy, ix] = dask.delayed(
                    split[iy, ix][1], name=f"agrisat-weights-{tag}-{iy}-{ix}", pure=False
                )
            sums[it, iy, ix] = dask.delayed(_chunk_sums, pure=True)(
                chunk_w[iy, ix], len(indices), blocks[0, it, iy, ix]
            )
        return sums[it, iy, ix]

    out = []
    offset = 0
    for g in weights.groups:
        r0, r1, c0, c1 = g.window
        n = len(g.farm_ids)
        times = np.arange(nt)
        if footprints is not None:
            box = shapely.box(a.c + c0 * a.a, a.f - r1 * a.a, a.c + c1 * a.a, a.f - r0 * a.a)
            times = np.flatnonzero(shapely.intersects(np.asarray(footprints, dtype=object), box))
        iys = range(int(np.searchsorted(yb, r0, "right")) - 1, int(np.searchsorted(yb, r1, "left")))
        ixs = range(int(np.searchsorted(xb, c0, "right")) - 1, int(np.searchsorted(xb, c1, "left")))
        under = [(iy, ix) for iy in iys for ix in ixs if (iy, ix) in split]
        for b0 in range(0, len(times), time_batch):
            sel = times[b0 : b0 + time_batch]
            layout, args = [], []
            for j, t in enumerate(sel):
                it = int(np.searchsorted(tb, t, "right")) - 1
                for iy, ix in under:
                    rows = split[iy, ix][0]
                    mine = (rows >= offset) & (rows < offset + n)
                    if not mine.any():
                        continue
                    layout.append((j, int(t - tb[it]), np.flatnonzero(mine), rows[mine] - offset))
                    args.append(chunk_sums(it, iy, ix))
            stats = dask.delayed(_group_from_sums, pure=True)(
                g.total, n, len(sel), len(indices), layout, *args
            )
            out.append(
                dask.delayed(_frame, pure=True)(
                    stats,
                    g.farm_ids,
                    [item_ids[i] for i in sel],
                    [days[i] for i in sel],
                    list(indices),
                    settings,
                )
            )
        offset += n
    return out


#: (weights id, chunk edges) → (weights, split): the split is reused by every batch of a zone
_SPLIT_CACHE: dict[tuple[int, bytes, bytes], tuple[ZoneWeights, dict]] = {}


def _split_by_chunk(
    weights: ZoneWeights, yb: np.ndarray, xb: np.ndarray
) -> dict[tuple[int, int], tuple[np.ndarray, sp.csr_matrix]]:
    """Each chunk's slice of the weights: (global farm rows, CSR farms × chunk pixels)."""
    key = (id(weights), yb.tobytes(), xb.tobytes())
    hit = _SPLIT_CACHE.get(key)
    if hit is not None and hit[0] is weights:
        return hit[1]
    pieces: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    offset = 0
    # group by group (a few hundred thousand entries each), so no zone-sized temporaries
    for g in weights.groups:
        r0, _, c0, c1 = g.window
        m = g.weights
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) + offset
        ys = r0 + m.indices // (c1 - c0)
        xs = c0 + m.indices % (c1 - c0)
        iy = np.searchsorted(yb, ys, "right") - 1
        ix = np.searchsorted(xb, xs, "right") - 1
        for cy in np.unique(iy):
            in_y = iy == cy
            for cx in np.unique(ix[in_y]):
                sel = np.flatnonzero(in_y & (ix == cx))
                bw = int(xb[cx + 1] - xb[cx])
                cell = (ys[sel] - yb[cy]) * bw + (xs[sel] - xb[cx])
                pieces.setdefault((int(cy), int(cx)), []).append((rows[sel], cell, m.data[sel]))
        offset += len(g.farm_ids)
    split: dict[tuple[int, int], tuple[np.ndarray, sp.csr_matrix]] = {}
    for (cy, cx), parts in pieces.items():
        # rows are sorted: CSR order within a group, groups in order of their row offsets
        rows = np.concatenate([q[0] for q in parts])
        new_row = np.r_[True, rows[1:] != rows[:-1]]
        local = np.cumsum(new_row) - 1
        indptr = np.r_[0, np.cumsum(np.bincount(local))]
        bw = int(xb[cx + 1] - xb[cx])
        bh = int(yb[cy + 1] - yb[cy])
        mat = sp.csr_matrix(
            (
                np.concatenate([q[2] for q in parts]),
                np.concatenate([q[1] for q in parts]).astype(np.int64),
                indptr,
            ),
            shape=(len(indptr) - 1, bh * bw),
        )
        split[cy, cx] = (rows[new_row], mat)
    _SPLIT_CACHE.clear()  # one zone at a time: keep memory bounded
    _SPLIT_CACHE[key] = (weights, split)
    return split


def _chunk_sums(weights: sp.csr_matrix, n_indices: int, block: np.ndarray) -> np.ndarray:
    """Per-farm partial sums over one chunk: array (t, n_farms, 3 + 3 × n_indices).

    Columns: Σ w valid, Σ w clear, Σ w clear water, then per index Σ w m, Σ w m x, Σ w m x²
    with m = clear and x finite.
    """
    t = block.shape[1]
    out = np.empty((t, weights.shape[0], 3 + 3 * n_indices))
    for i in range(t):
        v = block[0, i].reshape(-1).astype(np.float64)
        c = block[1, i].reshape(-1).astype(np.float64)
        out[i, :, 0] = weights @ v
        out[i, :, 1] = weights @ c
        out[i, :, 2] = weights @ (c * block[2, i].reshape(-1))
        for j in range(n_indices):
            x = block[3 + j, i].reshape(-1).astype(np.float64)
            m = c * np.isfinite(x)
            x = np.where(m > 0, x, 0.0)
            out[i, :, 3 + 3 * j] = weights @ m
            out[i, :, 4 + 3 * j] = weights @ (m * x)
            out[i, :, 5 + 3 * j] = weights @ (m * x * x)
    return out


def _group_from_sums(
    total: np.ndarray,
    n_farms: int,
    n_times: int,
    n_indices: int,
    layout: list[tuple[int, int, np.ndarray, np.ndarray]],
    *parts: np.ndarray,
) -> np.ndarray:
    """Add a group's partial sums up; stats array (T, n_farms, 4 + 2 × n_indices)."""
    acc = np.zeros((n_times, n_farms, 3 + 3 * n_indices))
    for (j, tl, src, dest), part in zip(layout, parts, strict=True):
        acc[j, dest] += part[tl, src]  # a farm appears once per chunk: no repeated index
    out = np.full((n_times, n_farms, 4 + 2 * n_indices), np.nan)
    wsum_valid, wsum_clear, wsum_water = acc[..., 0], acc[..., 1], acc[..., 2]
    out[..., 0] = wsum_valid
    out[..., 1] = wsum_clear
    with np.errstate(invalid="ignore", divide="ignore"):
        out[..., 2] = np.where(wsum_clear > 0, wsum_water / wsum_clear, np.nan)
    out[..., 3] = total
    for j in range(n_indices):
        s0, s1, s2 = acc[..., 3 + 3 * j], acc[..., 4 + 3 * j], acc[..., 5 + 3 * j]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(s0 > 0, s1 / s0, np.nan)
            var = np.where(s0 > 0, s2 / s0 - mean * mean, np.nan)
        out[..., 4 + 2 * j] = mean
        out[..., 5 + 2 * j] = np.sqrt(np.clip(var, 0.0, None))
    return out


def resolve_same_day(df: pd.DataFrame) -> pd.DataFrame:
    """Keep one row per farm and date: the best status, then the clearest look, then item id."""
    if df.empty:
        return df
    rank = df["status"].map({s: i for i, s in enumerate(STATUS_ORDER)})
    ordered = df.assign(_rank=rank, _neg_clear=-df["clear_pixels"].fillna(0)).sort_values(
        ["farm_id", "date", "_rank", "_neg_clear", "item_id"], kind="mergesort"
    )
    kept = ordered.drop_duplicates(["farm_id", "date"], keep="first")
    return (
        kept.drop(columns=["_rank", "_neg_clear"])
        .sort_values(["farm_id", "date"])
        .reset_index(drop=True)
    )
