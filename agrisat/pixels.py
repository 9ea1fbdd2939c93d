"""From DN straight to per-farm partial sums, at the pixels under farms only.

:func:`direct_source` plans the direct reads of a zone (items already on the zone grid, read
window by window through :mod:`agrisat.reader`): one task per (time chunk, y chunk, x chunk).
Two things can be made of those tasks (:class:`DirectSource`):

- :meth:`DirectSource.stack`: the whole chunk's float32 layers (``valid``, ``clear``,
  ``water``, one per index), by :func:`agrisat.stack._prepare_block`, for any consumer;
- :meth:`DirectSource.chunk_sums`: the chunk's per-farm partial sums, as
  :func:`agrisat.zonal.chunks._chunk_sums` makes them from those layers, but computed in the
  read task from the DN of the pixels under some farm (a quarter to a half of a chunk at
  100,000 plots on a tile): no chunk-sized float32 layers, no second gather.

The fused kernel (:func:`fused_sums`) does, per used pixel, exactly the float32 arithmetic of
``_prepare_block`` (reflectance = DN × scale + offset with NaN at DN 0, the SCL class lookup,
:func:`agrisat.indices.compute_index`) and the float64 cells and sparse product of
``_chunk_sums``, so the observations are identical, not merely close. Bands on the 2 × 2
coarser grid (20 m bands, SCL) are gathered at each used pixel's coarse pixel (precomputed
with the chunk's weights) instead of being upsampled.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import pystac
from dask.delayed import Delayed
from odc.geo.geobox import GeoBox

from .config import CubeSettings
from .cube import SCL, _declared_shape, _factor, _native_grid, item_epsg, masked_read
from .errors import ConfigError
from .reader import Grid, RasterioReader, Reader, Window, _Block, _read_block, _read_dn
from .stack import pixel_layers, scl_lut
from .zonal.chunks import ChunkWeights

__all__ = ["DirectSource", "direct_source", "fused_sums"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class DirectSource:
    """The planned reads of one zone: a dask array of layers, or per-chunk partial sums.

    Shaped like the stacked array it stands for: ``chunks`` and ``shape`` as a dask array
    (variable, time, y, x) would have them, ``names`` the variables.
    """

    #: graph name prefix, unique per source
    name: str
    #: (time chunk, y chunk, x chunk) → the task's reads
    blocks: Mapping[tuple[int, int, int], _Block]
    chunks: tuple[tuple[int, ...], ...]
    names: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        """(variables, dates, rows, columns)."""
        return tuple(sum(c) for c in self.chunks)

    def stack(self) -> Any:
        """A dask array (variable, time, y, x) of float32: every chunk's layers, one task each."""
        import dask.array as da
        from dask.highlevelgraph import HighLevelGraph

        name = f"{self.name}-stack"
        dsk: dict[Any, Any] = {(name, 0, *k): (_read_block, b) for k, b in self.blocks.items()}
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
        return da.Array(
            graph,
            name,
            chunks=self.chunks,
            dtype=np.float32,
            meta=np.empty((0, 0, 0, 0), dtype=np.float32),
        )

    def chunk_sums(self, it: int, iy: int, ix: int, weights: Any, n_indices: int) -> Delayed:
        """One task: read chunk (``it``, ``iy``, ``ix``) and reduce it to per-farm partial sums.

        ``weights`` is the chunk's :data:`agrisat.zonal.chunks.ChunkWeights`, or a graph node
        or cluster handle of them (scattered once per zone, passed to every date's task).
        Returns what :func:`agrisat.zonal.chunks._chunk_sums` returns for the chunk's layers.
        """
        block = self.blocks[it, iy, ix]
        if n_indices != len(self.names) - 3:
            raise ConfigError(
                f"{n_indices} index(es) asked of a source planned for {list(self.names[3:])}; "
                "plan the direct reads with the indices the statistics use"
            )
        # unique per call: the same chunk summed with other weights is another task
        key = f"{self.name}-sums-{it}-{iy}-{ix}-{uuid.uuid4().hex[:12]}"
        # the block rides in the function: dask would otherwise walk the dataclass's fields
        # (every read spec) looking for collections, for each task
        task = functools.partial(_read_sums, block)
        return dask.delayed(task, name=f"{key}-fn", pure=False)(weights, dask_key_name=key)


def direct_source(
    items: Sequence[pystac.Item],
    geobox: GeoBox,
    *,
    indices: Sequence[str],
    settings: CubeSettings = CubeSettings(),
    time_chunk: int = 1,
    gdal: Mapping[str, Any] | None = None,
    reader: Reader | None = None,
) -> DirectSource | None:
    """The direct reads of ``items`` on ``geobox``, when the items allow it, else None.

    Parameters
    ----------
    items
        Normalised items of one zone (unique ids, ``agrisat:scale``/``agrisat:offset``).
    geobox
        The zone grid.
    indices
        Index names; their bands (and SCL when the items carry it) are read.
    settings
        Chunk size and SCL classes.
    time_chunk
        Dates per task.
    gdal
        GDAL configuration options of every read (passed into the tasks).
    reader
        The I/O seam; a new :class:`agrisat.reader.RasterioReader` by default.

    Returns
    -------
    DirectSource or None
        One planned task per (time chunk, y chunk, x chunk): as the stacked array of
        ``prepared_stack`` (:meth:`DirectSource.stack`) or as per-chunk
        partial sums of the farms' statistics (:meth:`DirectSource.chunk_sums`,
        the fused path); ``None`` when some needed asset is not on the zone grid (other CRS,
        fractional pixel offset, other resolution, no ``proj:transform``), so the caller uses
        odc-stac.

    Raises
    ------
    CatalogError
        When some items carry SCL and others do not (:func:`agrisat.cube.masked_read`).
    """
    import dask.array as da

    from .indices import bands_for

    items = list(items)
    bands = tuple(bands_for(indices))
    a = geobox.affine
    epsg = geobox.crs.epsg if geobox.crs is not None else None
    chunk = int(settings.chunk_size)
    if not items or not bands or epsg is None or a.b != 0 or a.d != 0 or a.a <= 0:
        return None
    if not np.isclose(a.e, -a.a) or len({it.id for it in items}) != len(items):
        return None
    has_scl = masked_read(items)  # a mix of items with and without SCL is refused
    names_in = (*bands, *((SCL,) if has_scl else ()))
    # per layer: the factor (same for every item) and per item (row, column) offsets
    factors: list[int] = []
    offsets: list[list[tuple[int, int]]] = []
    for name in names_in:
        item_offsets, ks = [], set()
        for it in items:
            asset = it.assets.get(name)
            if asset is None or item_epsg(it) != epsg:
                return None
            f = _factor(asset, epsg, a.a, a.c, a.f)
            if f is None:
                return None
            ks.add(f[0])
            item_offsets.append((f[1], f[2]))
        if len(ks) != 1:
            return None
        factors.append(ks.pop())
        offsets.append(item_offsets)
    if 1 not in factors or (2 in factors and chunk % 2):
        return None  # the output shape comes from a fine layer; coarse chunks need halves

    ny, nx = geobox.shape.y, geobox.shape.x
    tc = max(1, int(time_chunk))
    tchunks = da.core.normalize_chunks(tc, (len(items),))[0]
    ychunks = da.core.normalize_chunks(chunk, (ny,))[0]
    xchunks = da.core.normalize_chunks(chunk, (nx,))[0]
    tb, yb, xb = (np.cumsum((0, *c)).tolist() for c in (tchunks, ychunks, xchunks))
    shapes = [_declared_shape(it.assets[n]) for n in names_in for it in items]

    def per_item(key: str, default: float) -> np.ndarray:
        return np.array(
            [[float(it.assets[b].extra_fields.get(key, default)) for it in items] for b in bands],
            dtype="float32",
        )

    scale, offset = per_item("agrisat:scale", 1e-4), per_item("agrisat:offset", 0.0)
    kwargs = (
        ("bands", bands),
        ("has_scl", has_scl),
        ("indices", tuple(indices)),
        ("not_clear", tuple(settings.scl_not_clear)),
        ("water_class", int(settings.scl_water)),
        ("factors", tuple(factors)),
    )
    io = reader if reader is not None else RasterioReader()
    gdal_items = tuple((gdal or {}).items())
    blocks: dict[tuple[int, int, int], _Block] = {}
    for it_ in range(len(tchunks)):
        t0, t1 = tb[it_], tb[it_ + 1]
        for iy in range(len(ychunks)):
            for ix in range(len(xchunks)):
                reads, wshapes = [], []
                for li, (lname, k) in enumerate(zip(names_in, factors, strict=True)):
                    r0, r1 = -(-yb[iy] // k), -(-yb[iy + 1] // k)  # ceil: coarse chunk edges
                    c0, c1 = -(-xb[ix] // k), -(-xb[ix + 1] // k)
                    wshapes.append((r1 - r0, c1 - c0))
                    row: list[tuple[str, str, Window, Grid] | None] = []
                    for t in range(t0, t1):
                        dy, dx = offsets[li][t]
                        w = (r0 + dy, r1 + dy, c0 + dx, c1 + dx)
                        sh = shapes[li * len(items) + t]
                        outside = sh is not None and (
                            w[1] <= 0 or w[3] <= 0 or w[0] >= sh[0] or w[2] >= sh[1]
                        )
                        asset = items[t].assets[lname]
                        grid = _native_grid(asset)  # not None: _factor checked it
                        spec = (items[t].id, asset.href, w, grid) if grid is not None else None
                        row.append(None if outside else spec)
                    reads.append(tuple(row))
                blocks[it_, iy, ix] = _Block(
                    reads=tuple(reads),
                    shapes=tuple(wshapes),
                    names=names_in,
                    scale=scale[:, t0:t1],
                    offset=offset[:, t0:t1],
                    gdal=gdal_items,
                    reader=io,
                    kwargs=kwargs,
                )
    out_names = ("valid", "clear", "water", *indices)
    log.debug("direct read: %d item(s), %d task(s)", len(items), len(blocks))
    return DirectSource(
        name=f"agrisat-direct-{uuid.uuid4().hex}",
        blocks=blocks,
        chunks=((len(out_names),), tuple(tchunks), tuple(ychunks), tuple(xchunks)),
        names=out_names,
    )


def _read_sums(block: _Block, weights: ChunkWeights) -> np.ndarray:
    """One task: the block's DN (SceneError on a failed read), then :func:`fused_sums`."""
    return fused_sums(weights, block.scale, block.offset, *_read_dn(block), **dict(block.kwargs))


def fused_sums(
    weights: ChunkWeights,
    scale: np.ndarray,
    offset: np.ndarray,
    *dn: np.ndarray,
    bands: tuple[str, ...],
    has_scl: bool,
    indices: tuple[str, ...],
    not_clear: tuple[int, ...],
    water_class: int,
    factors: tuple[int, ...],
) -> np.ndarray:
    """A chunk's per-farm partial sums from its DN windows: array (t, n_farms, 3 + 3 × n_idx).

    Parameters
    ----------
    weights
        The chunk's (used pixels, their coarse pixels, farms × used pixels matrix).
    scale, offset
        (band, time) float32: reflectance = DN × scale + offset.
    *dn
        Per band, then SCL: (t, rows, columns) uint16 DN on the layer's own grid (the chunk's,
        or the 2 × 2 coarser one where ``factors`` says 2), 0 = nodata.
    bands, has_scl, indices, not_clear, water_class, factors
        As for :func:`agrisat.stack._prepare_block`.

    Returns
    -------
    numpy.ndarray
        Columns Σ w valid, Σ w clear, Σ w clear water, then per index Σ w m, Σ w m x,
        Σ w m x² (m = clear and x finite), as :func:`agrisat.zonal.chunks._chunk_sums`.
    """
    cols, coarse, mat = weights
    t = dn[0].shape[0]
    # the used pixels' DN: one gather per layer, on its own grid
    # (np.take: a third faster than fancy indexing for this)
    picked = [
        np.take(d.reshape(t, -1), cols if f == 1 else coarse, axis=1)
        for d, f in zip(dn, factors, strict=True)
    ]
    # SCL looked up on the gathered codes; then the float32 steps of _prepare_block
    code = np.take(scl_lut(not_clear, water_class), picked[len(bands)]) if has_scl else None
    valid, clear, water, values = pixel_layers(
        picked[: len(bands)], code, scale, offset, bands=bands, indices=indices
    )
    out = np.empty((t, mat.shape[0], 3 + 3 * len(indices)))
    for i in range(t):
        # the float64 cells of _chunk_sums: with m = 0 or 1, m·x is x or 0 and m·x·x is x·x
        # or 0, so x and x² at the pixels where m is 1 are the same numbers
        c = clear[i]
        cells: list[np.ndarray] = [valid[i], c, water[i]]
        for v in values:
            x = v[i].astype(np.float64)
            m = c & np.isfinite(x)
            x = np.where(m, x, 0.0)
            cells += [m, x, x * x]
        for j, cell in enumerate(cells):
            out[i, :, j] = _product(mat, cell)
    if not has_scl:
        # Without a cloud mask every valid pixel stands in for the index (clear = valid, as
        # in _prepare_block), but nobody knows the sky: Σ w clear is NaN, so the look's
        # clear_fraction (and clear_pixels) say "unknown" instead of a confident 1.0, and
        # detection makes a single-look hazard wait for a second look.
        out[:, :, 1] = np.nan
    return out


def _product(mat: Any, cell: np.ndarray) -> np.ndarray:
    """``mat @ cell`` in float64, one column at a time.

    scipy's CSR × vector adds each row's terms in the order of its entries, as its CSR ×
    matrix does for every column: the same numbers as ``mat @ cells`` of ``_chunk_sums``,
    without building the (pixels × columns) array first (the column writes into it cost
    more than the product). A column with no nonzero gives 0 without a product (the
    weights are finite: the product would be +0 too).
    """
    if not cell.any():
        return np.zeros(mat.shape[0])
    return np.asarray(mat @ cell.astype(np.float64, copy=False))
