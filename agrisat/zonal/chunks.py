"""Each chunk's slice of a zone's coverage weights, and the per-chunk partial sums.

:func:`agrisat.zonal.zonal_stats_stack` reduces every chunk of pixels to per-farm partial
sums right after it is read. This module holds what that needs per chunk: the split of the
zone's weights by chunk (cached for the zone, shipped once to a cluster), the reduction of a
chunk of finished layers (:func:`_chunk_sums`) and the interface of a source that computes
the partial sums itself (:class:`SumsSource`, e.g. :class:`agrisat.pixels.DirectSource`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
from dask.delayed import Delayed

from ..allocator import trim_heap
from .weights import ZoneWeights

__all__ = ["ChunkWeights", "SumsSource", "release_shipped", "release_zone"]


class SumsSource(Protocol):
    """Pixels that reduce themselves to per-farm partial sums, chunk by chunk.

    Shaped like the stacked array it replaces (variable, time, y, x): ``chunks`` and
    ``shape`` as a dask array's.
    """

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...]: ...

    @property
    def shape(self) -> tuple[int, ...]: ...

    def chunk_sums(self, it: int, iy: int, ix: int, weights: Any, n_indices: int) -> Delayed:
        """Graph node of chunk (``it``, ``iy``, ``ix``)'s partial sums, as :func:`_chunk_sums`
        returns them, given the chunk's :data:`ChunkWeights` (or a handle of them)."""
        ...


#: (weights id, chunk edges) → (weights, split): the split is reused by every batch of a zone
_SPLIT_CACHE: dict[tuple[int, bytes, bytes], tuple[ZoneWeights, dict]] = {}

#: A chunk's weights: the chunk's pixels under any farm (flat indices into the chunk, sorted),
#: the same pixels' flat indices into the chunk's 2 × 2-coarser grid (20 m bands and SCL are
#: gathered there, not upsampled) and the CSR matrix farms × those pixels.
ChunkWeights = tuple[np.ndarray, np.ndarray, sp.csr_matrix]


def _split_by_chunk(
    weights: ZoneWeights, yb: np.ndarray, xb: np.ndarray
) -> dict[tuple[int, int], tuple[np.ndarray, ChunkWeights]]:
    """Each chunk's slice of the weights: (global farm rows, :data:`ChunkWeights`)."""
    key = (id(weights), yb.tobytes(), xb.tobytes())
    hit = _SPLIT_CACHE.get(key)
    if hit is not None and hit[0] is weights:
        return hit[1]
    nxb = len(xb) - 1

    def entries(g: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel row, column and chunk of each entry of a group's matrix."""
        r0, _, c0, c1 = g.window
        ys = r0 + g.weights.indices // (c1 - c0)
        xs = c0 + g.weights.indices % (c1 - c0)
        return ys, xs, _chunk_of(ys, yb) * nxb + _chunk_of(xs, xb)

    # two passes, so that each chunk's arrays are allocated once at their final size: the
    # entries are not collected in pieces first (that peaked at twice the weights' memory)
    sizes = np.zeros(nxb * (len(yb) - 1), dtype=np.int64)
    for g in weights.groups:
        cid = entries(g)[2]
        sizes[: cid.max() + 1 if len(cid) else 0] += np.bincount(cid)
    rows_of = {int(c): np.empty(sizes[c], np.int32) for c in np.flatnonzero(sizes)}
    cell_of = {c: np.empty(sizes[c], np.int32) for c in rows_of}
    data_of = {c: np.empty(sizes[c], np.float64) for c in rows_of}
    filled = dict.fromkeys(rows_of, 0)
    offset = 0
    for g in weights.groups:
        m = g.weights
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int32), np.diff(m.indptr)) + offset
        ys, xs, cid = entries(g)
        # a group spans a few chunks: count them instead of sorting its entries
        for c in np.flatnonzero(np.bincount(cid)).tolist():
            sel = np.flatnonzero(cid == c)
            cy, cx = divmod(c, nxb)
            a, b = filled[c], filled[c] + len(sel)
            rows_of[c][a:b] = rows[sel]
            cell_of[c][a:b] = (ys[sel] - yb[cy]) * int(xb[cx + 1] - xb[cx]) + (xs[sel] - xb[cx])
            data_of[c][a:b] = m.data[sel]
            filled[c] = b
        offset += len(g.farm_ids)
    split: dict[tuple[int, int], tuple[np.ndarray, ChunkWeights]] = {}
    for k in list(rows_of):
        cy, cx = divmod(k, nxb)
        # rows are sorted: CSR order within a group, groups in order of their row offsets
        rows = rows_of.pop(k)
        cell = cell_of.pop(k)
        new_row = np.r_[True, rows[1:] != rows[:-1]]
        indptr = np.r_[0, np.cumsum(np.bincount(np.cumsum(new_row) - 1))]
        bw = int(xb[cx + 1] - xb[cx])
        bh = int(yb[cy + 1] - yb[cy])
        # only the pixels under some farm are gathered per date (a quarter to a half of a
        # chunk): a mark per pixel gives them, sorted, and each one's column without a sort
        used = np.zeros(bh * bw, dtype=bool)
        used[cell] = True
        cols = np.flatnonzero(used).astype(np.int32)  # < 2³¹ pixels in a chunk
        column = np.cumsum(used, dtype=np.int32) - 1
        mat = sp.csr_matrix(
            (data_of.pop(k), column[cell], indptr), shape=(len(indptr) - 1, len(cols))
        )
        # the coarse pixel of each: (row // 2) * coarse width + col // 2, once per zone rather
        # than once per chunk and date
        coarse = (cols // bw // 2) * ((bw + 1) // 2) + (cols % bw) // 2
        split[cy, cx] = (rows[new_row].astype(np.int64), (cols, coarse.astype(np.int32), mat))
    _SPLIT_CACHE.clear()  # one zone at a time: keep memory bounded
    _SPLIT_CACHE[key] = (weights, split)
    # the statistics (fused, unfused, odc-stac, cluster) read only the split from here on: the
    # groups let their matrices go (90-150 MB at 100,000 plots) and can rebuild them from it
    offset = freed = 0
    for g in weights.groups:
        if g.holds_weights:
            m = g.weights
            freed += m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
        g.let_go(functools.partial(_rebuild, split, yb, xb, offset, len(g.farm_ids), g.window))
        offset += len(g.farm_ids)
    if freed >= _TRIM_BYTES:
        # glibc keeps the freed pages in the process and the read batches do not reuse those
        # holes: without a trim the ingestion peak stayed at 811 MB (100,000 plots x 8 dates,
        # 5490² tile), with it 725 MB (10980²: 965 -> 835 MB)
        trim_heap()
    return split


#: Let-go group matrices at least this large are handed back to the OS at once.
_TRIM_BYTES = 16 << 20


def _rebuild(
    split: dict[tuple[int, int], tuple[np.ndarray, ChunkWeights]],
    yb: np.ndarray,
    xb: np.ndarray,
    offset: int,
    n: int,
    window: tuple[int, int, int, int],
) -> sp.csr_matrix:
    """A group's farm × window-pixel matrix again, from the zone's split (the same arrays:
    every entry is in exactly one chunk, and CSR order is restored by the constructor)."""
    r0, r1, c0, c1 = window
    rows_p, cells_p, data_p = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
    for (cy, cx), (rows, (cols, _, mat)) in split.items():
        if yb[cy + 1] <= r0 or yb[cy] >= r1 or xb[cx + 1] <= c0 or xb[cx] >= c1:
            continue
        mine = np.flatnonzero((rows >= offset) & (rows < offset + n))
        if not len(mine):
            continue
        sub = mat[mine].tocoo()
        pix = cols[sub.col].astype(np.int64)
        bw = int(xb[cx + 1] - xb[cx])
        ys, xs = yb[cy] + pix // bw, xb[cx] + pix % bw
        rows_p.append(rows[mine][sub.row] - offset)
        cells_p.append((ys - r0) * (c1 - c0) + (xs - c0))
        data_p.append(sub.data)
    return sp.csr_matrix(
        (np.concatenate(data_p), (np.concatenate(rows_p), np.concatenate(cells_p))),
        shape=(n, (r1 - r0) * (c1 - c0)),
    )


#: handles from ``ship`` for the zone in _SPLIT_CACHE: (weights, ship, {chunk: handle})
_SHIPPED: list[tuple[ZoneWeights, Callable[..., Any], dict[tuple[int, int], Any]]] = []


def _shipped(
    weights: ZoneWeights, split: dict[tuple[int, int], Any], ship: Callable[..., Any]
) -> dict[tuple[int, int], Any]:
    if _SHIPPED and _SHIPPED[0][0] is weights and _SHIPPED[0][1] is ship:
        return _SHIPPED[0][2]
    keys = sorted(split)
    handles = dict(zip(keys, ship([split[k][1] for k in keys]), strict=True))
    _SHIPPED[:] = [(weights, ship, handles)]
    return handles


def release_shipped() -> None:
    """Forget the handles of shipped weights (call before closing the client that made them)."""
    _SHIPPED.clear()


def release_zone() -> None:
    """Forget the current zone's per-chunk weights and their handles (call when a zone is
    done: the split is as large as the weights and would stay alive into detection)."""
    _SPLIT_CACHE.clear()
    _SHIPPED.clear()


def _chunk_of(pos: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Index of the chunk holding each pixel position (``edges``: cumulative chunk bounds)."""
    sizes = np.diff(edges)
    if len(sizes) > 1 and np.all(sizes[:-1] == sizes[0]) and sizes[-1] <= sizes[0]:
        # regular chunks (the usual case): a division, not a binary search per entry
        return np.minimum(pos // int(sizes[0]), len(sizes) - 1)
    return np.searchsorted(edges, pos, "right") - 1


def _chunk_sums(weights: ChunkWeights, n_indices: int, block: np.ndarray) -> np.ndarray:
    """Per-farm partial sums over one chunk: array (t, n_farms, 3 + 3 × n_indices).

    Columns: Σ w valid, Σ w clear, Σ w clear water, then per index Σ w m, Σ w m x, Σ w m x²
    with m = clear and x finite. Only the pixels under a farm are taken out of the block, the
    products are float64 (the sums of squares need it), and one sparse × dense product per
    date gives every column at once.
    """
    cols, _, mat = weights
    nv, t = block.shape[0], block.shape[1]
    px = block.reshape(nv, t, -1)[:, :, cols]
    k = 3 + 3 * n_indices
    out = np.empty((t, mat.shape[0], k))
    cells = np.empty((len(cols), k))
    for i in range(t):
        c = px[1, i]
        cells[:, 0] = px[0, i]
        cells[:, 1] = c
        cells[:, 2] = c * px[2, i]
        for j in range(n_indices):
            x = px[3 + j, i].astype(np.float64)
            m = c * np.isfinite(x)
            x = np.where(m > 0, x, 0.0)
            cells[:, 3 + 3 * j] = m
            cells[:, 4 + 3 * j] = m * x
            cells[:, 5 + 3 * j] = m * x * x
        out[i] = mat @ cells
    return out
