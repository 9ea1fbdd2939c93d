"""Farms → exact pixel coverage weights on a zone grid, grouped by block (see the package)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import scipy.sparse as sp
import shapely
from odc.geo.geobox import GeoBox

from ..config import CubeSettings
from .cache import WeightsCache, group_key
from .measure import _cells, measure
from .pool import cpu_count, measure_groups

__all__ = ["FarmGroup", "ZoneWeights", "assign_zones", "coverage_weights"]


@dataclass(frozen=True, eq=False, init=False)
class FarmGroup:
    """Farms whose pixels fall in one window of the grid.

    ``weights`` has one row per farm and one column per window pixel (row-major). Once the
    zone's weights are split by chunk (:mod:`agrisat.zonal.chunks`, all that the statistics
    use) the group lets its matrix go and ``weights`` rebuilds it from the split on demand
    (the same arrays): at 100,000 plots the matrices are 90–150 MB that nothing reads.
    """

    window: tuple[int, int, int, int]  # row0, row1, col0, col1 on the zone grid
    farm_ids: np.ndarray
    total: np.ndarray  # Σ w per farm (farm area in pixels)
    #: one slot: the matrix, or a function that rebuilds it
    _held: list[sp.csr_matrix | Callable[[], sp.csr_matrix]] = field(repr=False)

    def __init__(
        self,
        window: tuple[int, int, int, int],
        farm_ids: np.ndarray,
        weights: sp.csr_matrix,
        total: np.ndarray,
    ) -> None:
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "farm_ids", farm_ids)
        object.__setattr__(self, "total", total)
        object.__setattr__(self, "_held", [weights])

    @property
    def weights(self) -> sp.csr_matrix:
        """Coverage weights, farms × window pixels (rebuilt when the group let them go)."""
        held = self._held[0]
        return held if isinstance(held, sp.csr_matrix) else held()

    @property
    def holds_weights(self) -> bool:
        """Whether the matrix is held (False once it was let go for a rebuild function)."""
        return isinstance(self._held[0], sp.csr_matrix)

    def let_go(self, rebuild: Callable[[], sp.csr_matrix]) -> None:
        """Drop the matrix; ``rebuild`` must return the same one (see :mod:`.chunks`)."""
        self._held[0] = rebuild


@dataclass(frozen=True)
class ZoneWeights:
    """Coverage weights of the farms measured on one grid."""

    geobox: GeoBox
    groups: tuple[FarmGroup, ...]

    @property
    def farm_ids(self) -> np.ndarray:
        """All farm ids on this grid."""
        if not self.groups:
            return np.array([], dtype=object)
        return np.concatenate([g.farm_ids for g in self.groups])


def assign_zones(
    farms: gpd.GeoDataFrame, footprints: dict[int, shapely.Geometry]
) -> dict[int, np.ndarray]:
    """Choose the one grid (UTM zone) each farm is measured on.

    The rule: a farm goes to the zone whose imagery footprint covers the largest share of it;
    when two zones cover it equally (within 0.1 %), to the zone of its centroid's longitude,
    i.e. the projection in which it is least distorted. Farms that no footprint touches are
    left out (they get no observations and are reported by the run).

    Parameters
    ----------
    farms
        EPSG:4326 farms with a ``farm_id`` column.
    footprints
        EPSG code → union of the lon/lat footprints of that zone's items.

    Returns
    -------
    dict
        EPSG code → positional indices into ``farms``.
    """
    geoms = farms.geometry.values
    areas = shapely.area(geoms)
    centroids = shapely.centroid(geoms)
    lon, lat = shapely.get_x(centroids), shapely.get_y(centroids)
    # zone_of_lon, vectorised (NaN centroids of empty geometries get no own zone)
    with np.errstate(invalid="ignore"):
        strip = np.floor((np.nan_to_num(lon) + 180.0) / 6.0).astype(np.int64) % 60 + 1
    own = np.where(lat < 0, 32700, 32600) + strip
    epsgs = sorted(footprints)
    if not epsgs:
        return {}
    cover = np.zeros((len(epsgs), len(geoms)))
    for i, code in enumerate(epsgs):
        fp = footprints[code]
        shapely.prepare(fp)
        # farms well inside the footprint are fully covered: no polygon intersection needed
        inside = shapely.contains_properly(fp, geoms)
        cover[i, inside] = 1.0
        rest = np.flatnonzero(~inside)
        inter = shapely.intersection(geoms[rest], fp)
        ar = areas[rest]
        cover[i, rest] = np.where(ar > 0, shapely.area(inter) / np.where(ar > 0, ar, 1), 0.0)
    best = cover.max(axis=0)
    near = cover >= best - 1e-3
    # the zone of the centroid's longitude among the near-best ones, else the first near-best
    is_own = near & (np.asarray(epsgs)[:, None] == own[None, :])
    pick = np.where(is_own.any(axis=0), is_own.argmax(axis=0), near.argmax(axis=0))
    seen = best > 0
    return {
        code: np.flatnonzero(seen & (pick == i)).astype(np.int64)
        for i, code in enumerate(epsgs)
        if np.any(seen & (pick == i))
    }


def coverage_weights(
    farms: gpd.GeoDataFrame,
    geobox: GeoBox,
    *,
    block: int = 1024,
    cache: WeightsCache | None = None,
    parallel: bool = False,
    processes: int | None = None,
    pool_min_farms: int | None = None,
) -> ZoneWeights:
    """Exact coverage weights of ``farms`` on ``geobox``, grouped by ``block`` × ``block`` cells.

    A farm belongs to the block holding its bounding box's upper-left corner; a group's window is
    the union of its farms' pixel footprints (it may reach into the next block).

    Parameters
    ----------
    farms
        Farms with ``farm_id``, any CRS (reprojected to the grid's).
    geobox
        The grid (north-up, as made by :func:`agrisat.cube.grid_for`).
    block
        Block size in pixels; the cube's chunk size, so a group mostly reads one chunk.
    cache
        Optional disk cache: a group whose farms, geometries and window are unchanged is
        loaded from it instead of measured again (see :mod:`agrisat.zonal.cache`).
    parallel
        Measure the groups as dask tasks on the active scheduler (worth it on a distributed
        cluster: exactextract holds the GIL, so local threads would gain nothing).
    processes
        Without ``parallel``: processes measuring groups (this one included) when at least
        ``pool_min_farms`` farms are to be measured; 0 means one per CPU, 1 measures here
        only. None takes :class:`agrisat.config.CubeSettings`'s ``weights_processes``.
    pool_min_farms
        Fewer farms to measure are measured here (a worker's start-up would cost more than
        it saves). None takes ``CubeSettings.weights_pool_min_farms``.
    """
    crs_wkt = _wkt(geobox)
    local = farms[["farm_id", "geometry"]]
    if local.crs is None or not local.crs.equals(crs_wkt):
        # farms already in the grid's CRS (as the pipeline passes them) are not reprojected
        # again: 100,000 polygons take a third of a second
        local = local.to_crs(crs_wkt)
    # geometries go to exactextract as WKB, not as GeoJSON text built feature by feature
    wkbs = shapely.to_wkb(local.geometry.values)
    farm_ids = local["farm_id"].to_numpy(dtype=object)
    a = geobox.affine
    res, x0, y0 = a.a, a.c, a.f
    ny, nx = geobox.shape.y, geobox.shape.x
    b = local.geometry.bounds.to_numpy()
    col0 = np.clip(np.floor((b[:, 0] - x0) / res).astype(int), 0, nx - 1)
    col1 = np.clip(np.ceil((b[:, 2] - x0) / res).astype(int), 1, nx)
    row0 = np.clip(np.floor((y0 - b[:, 3]) / res).astype(int), 0, ny - 1)
    row1 = np.clip(np.ceil((y0 - b[:, 1]) / res).astype(int), 1, ny)
    key = (row0 // block) * (nx // block + 1) + (col0 // block)
    groups: list[FarmGroup | None] = []
    todo: list[tuple[int, tuple[int, int, int, int], np.ndarray, str]] = []
    for k in np.unique(key):
        sel = np.flatnonzero(key == k)
        r0, r1 = int(row0[sel].min()), int(row1[sel].max())
        c0, c1 = int(col0[sel].min()), int(col1[sel].max())
        h, w = r1 - r0, c1 - c0
        ids = farm_ids[sel]
        ckey = ""
        if cache is not None:
            ckey = group_key(
                crs_wkt=crs_wkt,
                resolution=float(res),
                origin=(float(x0 + c0 * res), float(y0 - r0 * res)),
                shape=(h, w),
                farm_ids=ids,
                wkbs=wkbs[sel],
            )
            mat = cache.load(ckey, ids, h * w)
            if mat is not None:
                groups.append(_group((r0, r1, c0, c1), ids, mat))
                continue
        todo.append((len(groups), (r0, r1, c0, c1), sel, ckey))
        groups.append(None)
    args = [
        ((x0 + c0 * res, y0 - r0 * res, res), (r1 - r0, c1 - c0), wkbs[sel], crs_wkt)
        for _, (r0, r1, c0, c1), sel, _ in todo
    ]
    if parallel and len(todo) > 1:
        import dask

        # exactextract holds the GIL: on a cluster each group is a task, measured in parallel
        mats = dask.compute(*[dask.delayed(_measure, pure=True)(*a) for a in args])
    else:
        workers = _pool_workers(todo, processes=processes, pool_min_farms=pool_min_farms)
        mats = tuple(measure_groups(args, workers=workers, local=_measure))
    for (pos, window, sel, ckey), mat in zip(todo, mats, strict=True):
        ids = farm_ids[sel]
        if cache is not None:
            cache.save(ckey, ids, mat)
        groups[pos] = _group(window, ids, mat)
    return ZoneWeights(geobox=geobox, groups=tuple(g for g in groups if g is not None))


def _measure(
    corner: tuple[float, float, float], shape: tuple[int, int], wkbs: np.ndarray, crs_wkt: str
) -> sp.csr_matrix:
    """:func:`agrisat.zonal.measure.measure` in this process, through this module's ``_cells``
    (looked up per call, so a test can count what exactextract is asked to measure)."""
    return measure(corner, shape, wkbs, crs_wkt, cells=_cells)


def _group(window: tuple[int, int, int, int], ids: np.ndarray, mat: sp.csr_matrix) -> FarmGroup:
    return FarmGroup(window, ids, mat, np.asarray(mat.sum(axis=1)).ravel())


def _pool_workers(
    todo: list[tuple[int, tuple[int, int, int, int], np.ndarray, str]],
    *,
    processes: int | None,
    pool_min_farms: int | None,
) -> int:
    """Worker processes to start besides this one for the groups in ``todo``.

    ``processes`` 0 means one process per CPU (this one included); an explicit count is taken
    as given. The machine's load is not consulted: a run's speed should not depend on what
    ran the minute before (a 1-minute load average kept the pool off after any benchmark).
    Measured on 2 cores at 100,000 plots: idle, 2.8 -> 1.7 s; with one core taken by another
    job a worker made it slower, 2.9 -> 3.3 s.
    """
    defaults = CubeSettings()
    procs = defaults.weights_processes if processes is None else processes
    least = defaults.weights_pool_min_farms if pool_min_farms is None else pool_min_farms
    n_farms = sum(len(sel) for _, _, sel, _ in todo)
    if len(todo) < 2 or n_farms < least:
        return 0
    return max(0, (procs if procs > 0 else cpu_count()) - 1)


def _wkt(geobox: GeoBox) -> str:
    if geobox.crs is None:
        raise ValueError("the grid has no CRS")  # grids come from grid_for, always with a CRS
    return str(geobox.crs.to_wkt())
