"""A direct windowed COG reader for items already on the zone's pixel grid.

:func:`agrisat.stack.prepared_stack` goes through odc-stac, which plans a reprojection and
builds a reader, a task and a nodata fill per band and chunk. When every needed asset of every
item is a north-up grid in the zone's CRS whose pixels coincide with the zone grid's (10 m
bands) or with its 2 × 2 blocks (20 m bands, SCL) — the normal case for Sentinel-2 tiles of one
UTM zone — none of that is needed: :func:`agrisat.pixels.direct_source` plans one task per
(time chunk, y chunk, x chunk) that reads each band's window on its own grid (here:
:func:`_read_dn`). :func:`_read_block` hands the DN to :func:`agrisat.stack._prepare_block`
(``DirectSource.stack``: the same arithmetic as the odc-stac path); the fused path
(:mod:`agrisat.pixels`) reduces them to the farms' partial sums in the same task, from the
pixels under farms only. Anything else (another CRS, a grid offset by a fraction of
a pixel, another resolution) returns ``None`` and the caller falls back to odc-stac.

I/O goes through a :class:`Reader` (the one swappable seam; tests count calls with a fake).
The default :class:`RasterioReader` opens datasets inside ``rasterio.Env(**gdal)`` with the
run's GDAL options, passed into each task (a dask worker needs no global configuration).
"""

from __future__ import annotations

import logging
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .errors import AgrisatError, SceneError
from .net import redact_text

__all__ = ["RasterioReader", "Reader", "close_handles"]

log = logging.getLogger(__name__)

#: (row0, row1, col0, col1) on an asset's own pixel grid, ends exclusive; may reach outside it
Window = tuple[int, int, int, int]
#: an asset's declared grid (``proj:transform``): pixel size, upper-left x, upper-left y
Grid = tuple[float, float, float]
#: pixel types read as digital numbers (anything else would be cast to uint16 and lost)
_DN_DTYPES = frozenset({"uint8", "uint16"})


class Reader(Protocol):
    """Reads one window of one single-band raster as uint16 DN."""

    def read(
        self, href: str, window: Window, *, gdal: Mapping[str, Any], grid: Grid | None = None
    ) -> np.ndarray:
        """DN of ``window`` (rows ``row0:row1``, columns ``col0:col1`` of the asset's grid).

        Returns a uint16 array of the window's shape, 0 (nodata) where the window lies
        outside the raster. ``gdal`` are the GDAL configuration options of the read;
        ``grid`` the grid the item declares for the asset, which the file must have (the
        window was computed from it).
        """
        ...


class _Handles:
    """One thread's open datasets: a small LRU, dropped when another reader token arrives.

    Its lock is held by the owning thread while it reads, so :func:`close_handles` (called by
    another thread at the end of a run, perhaps while a failed run's last tasks still read)
    waits for the read instead of closing a dataset under it.
    """

    def __init__(self) -> None:
        self.token = ""
        self.open: OrderedDict[str, Any] = OrderedDict()
        self.lock = threading.Lock()

    def close_all(self) -> None:
        while self.open:
            self.open.popitem(last=False)[1].close()


_LOCAL = threading.local()
#: every thread's handle cache in this process, so a run can close them all when it ends
_ALL: weakref.WeakSet[_Handles] = weakref.WeakSet()
_ALL_LOCK = threading.Lock()


def close_handles() -> int:
    """Close every dataset a :class:`RasterioReader` keeps open in this process.

    Call it when a run's reads are done (:mod:`agrisat.ingest` does after each batch): a file
    replaced later (a scene retried after a fault) is then opened anew. Returns how many
    datasets were closed.
    """
    with _ALL_LOCK:
        caches = list(_ALL)
    closed = 0
    for h in caches:
        with h.lock:
            closed += len(h.open)
            h.close_all()
            h.token = ""
    return closed


def _thread_handles() -> _Handles:
    handles: _Handles | None = getattr(_LOCAL, "handles", None)
    if handles is None:
        handles = _LOCAL.handles = _Handles()
        with _ALL_LOCK:
            _ALL.add(handles)
    return handles


class RasterioReader:
    """:class:`Reader` with rasterio; reads only the part of a window inside the raster.

    Datasets stay open per thread for the life of this reader (``cache`` handles at most,
    least recently used closed first), so a COG's header is parsed once per thread and run
    rather than once per chunk and date. Each reader has its own token: a thread that meets
    a new reader closes what it holds first, so a file replaced between runs (a scene retried
    after a fault) is always opened anew. Opening the same handles in every thread keeps reads
    thread-safe (a GDAL dataset must not be shared between threads).
    """

    def __init__(self, *, cache: int = 32) -> None:
        self.cache = max(1, int(cache))
        self.token = uuid.uuid4().hex

    def read(
        self, href: str, window: Window, *, gdal: Mapping[str, Any], grid: Grid | None = None
    ) -> np.ndarray:
        import rasterio
        from rasterio.windows import Window as RioWindow

        r0, r1, c0, c1 = window
        handles = _thread_handles()
        with rasterio.Env(**gdal), handles.lock:
            src = self._dataset(handles, href, grid)
            # the intersection only: a boundless read is slow (a VRT per call)
            y0, y1 = max(r0, 0), min(r1, src.height)
            x0, x1 = max(c0, 0), min(c1, src.width)
            if (y0, y1, x0, x1) == (r0, r1, c0, c1):  # inside (the usual case): no copy
                return src.read(1, window=RioWindow(c0, r0, c1 - c0, r1 - r0), out_dtype="uint16")
            out = np.zeros((r1 - r0, c1 - c0), dtype=np.uint16)
            if y1 > y0 and x1 > x0:
                part = src.read(1, window=RioWindow(x0, y0, x1 - x0, y1 - y0))
                out[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = part
        return out

    def _dataset(self, handles: _Handles, href: str, grid: Grid | None = None) -> Any:
        import rasterio

        if handles.token != self.token:
            handles.close_all()
            handles.token = self.token
        src = handles.open.get(href)
        if src is not None:
            handles.open.move_to_end(href)
            return src
        src = rasterio.open(href)
        if src.crs is None or src.transform.is_identity:
            src.close()  # a cut header reads as an ungeoreferenced image: not pixels to trust
            raise ValueError("the file has no georeferencing (truncated or not a GeoTIFF?)")
        if src.dtypes[0] not in _DN_DTYPES:
            kind = src.dtypes[0]
            src.close()  # read as uint16, 0-1 reflectances would all become 0 (nodata): silent loss
            raise ValueError(
                f"the file's pixels are {kind}; agrisat reads digital numbers (uint8 or uint16, "
                "as Sentinel-2 L2A assets are) and scales them with the item's scale/offset -- "
                "fix the asset (or its item) at the source"
            )
        if grid is not None and not _same_grid(src.transform, grid):
            t = src.transform
            src.close()  # the window was computed from the declared grid: it would be wrong
            raise ValueError(
                f"the file's grid (pixel {t.a:g} m, origin {t.c:.1f}, {t.f:.1f}) is not the "
                f"item's proj:transform (pixel {grid[0]:g} m, origin {grid[1]:.1f}, "
                f"{grid[2]:.1f}); fix the item's metadata or set [cube] direct_read = false"
            )
        handles.open[href] = src
        while len(handles.open) > self.cache:
            handles.open.popitem(last=False)[1].close()
        return src


def _same_grid(t: Any, grid: Grid) -> bool:
    """Whether a dataset's affine transform is the north-up ``grid`` (to a thousandth of a
    pixel)."""
    res, x0, y0 = grid
    tol = 1e-3 * res
    return bool(
        abs(t.a - res) < tol
        and abs(t.e + res) < tol
        and abs(t.b) < tol
        and abs(t.d) < tol
        and abs(t.c - x0) < tol
        and abs(t.f - y0) < tol
    )


@dataclass(frozen=True, eq=False)
class _Block:
    """Everything one task needs: per input layer and date the href and window, or None."""

    #: [layer][t] (item id, href, window, declared grid), None where the asset misses it
    reads: tuple[tuple[tuple[str, str, Window, Grid] | None, ...], ...]
    shapes: tuple[tuple[int, int], ...]  # per layer: window shape on its own grid
    names: tuple[str, ...]  # per layer: asset key
    scale: np.ndarray  # (n_bands, t) float32
    offset: np.ndarray
    gdal: tuple[tuple[str, Any], ...]
    reader: Reader
    kwargs: tuple[tuple[str, Any], ...]  # keyword arguments of _prepare_block


def _read_dn(block: _Block) -> list[np.ndarray]:
    """Every layer's DN for the block's dates: per layer (t, rows, columns) uint16.

    Any failure of a read becomes a :class:`SceneError` naming the item and the asset.
    """
    gdal = dict(block.gdal)
    dn = []
    for name, shape, reads in zip(block.names, block.shapes, block.reads, strict=True):
        layers = []
        for spec in reads:
            if spec is None:  # the asset's declared extent misses this window: all nodata
                layers.append(np.zeros(shape, dtype=np.uint16))
                continue
            item_id, href, window, grid = spec
            try:
                layers.append(block.reader.read(href, window, gdal=gdal, grid=grid))
            except AgrisatError:
                raise
            except Exception as exc:  # any failure of the read (GDAL, OS, a
                # reader's own) must reach the batch's fault isolation as this scene's error
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise SceneError(
                    f"scene {item_id}: asset {name!r} could not be read "
                    f"({type(exc).__name__}: {redact_text(first)[:200]}); the scene is skipped "
                    "and retried next run — check the file or the server if it keeps failing"
                ) from None
        # one date per task (local threads): a view, not a copy
        dn.append(layers[0][None] if len(layers) == 1 else np.stack(layers))
    return dn


def _read_block(block: _Block) -> np.ndarray:
    """One task: every layer's DN for the block's dates, then masks and indices."""
    from .stack import _prepare_block

    return _prepare_block(block.scale, block.offset, *_read_dn(block), **dict(block.kwargs))
