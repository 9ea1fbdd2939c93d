"""Farms → exact pixel coverage weights on a zone grid, grouped by block (see the package)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import scipy.sparse as sp
import shapely
from odc.geo.geobox import GeoBox

from .cache import WeightsCache, group_key

__all__ = ["FarmGroup", "ZoneWeights", "assign_zones", "coverage_weights"]


@dataclass(frozen=True)
class FarmGroup:
    """Farms whose pixels fall in one window of the grid.

    ``weights`` has one row per farm and one column per window pixel (row-major).
    """

    window: tuple[int, int, int, int]  # row0, row1, col0, col1 on the zone grid
    farm_ids: np.ndarray
    weights: sp.csr_matrix
    total: np.ndarray  # Σ w per farm (farm area in pixels)


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
        mats = tuple(_measure(*a) for a in args)
    for (pos, window, sel, ckey), mat in zip(todo, mats, strict=True):
        ids = farm_ids[sel]
        if cache is not None:
            cache.save(ckey, ids, mat)
        groups[pos] = _group(window, ids, mat)
    return ZoneWeights(geobox=geobox, groups=tuple(g for g in groups if g is not None))


def _measure(
    corner: tuple[float, float, float], shape: tuple[int, int], wkbs: np.ndarray, crs_wkt: str
) -> sp.csr_matrix:
    """Coverage weights of ``wkbs`` on a window: upper-left (x, y, pixel size) and shape."""
    from exactextract.raster import NumPyRasterSource

    wx0, wy1, res = corner
    h, w = shape
    src = NumPyRasterSource(
        np.zeros((h, w), dtype=np.uint8),
        wx0,
        wy1 - h * res,
        wx0 + w * res,
        wy1,
        srs_wkt=crs_wkt,
    )
    cells, cover, rows = _cells(src, wkbs, crs_wkt)
    return sp.csr_matrix((cover, (rows, cells)), shape=(len(wkbs), h * w))


def _group(window: tuple[int, int, int, int], ids: np.ndarray, mat: sp.csr_matrix) -> FarmGroup:
    return FarmGroup(
        window=window, farm_ids=ids, weights=mat, total=np.asarray(mat.sum(axis=1)).ravel()
    )


def _cells(src: object, wkbs: np.ndarray, crs_wkt: str) -> tuple[np.ndarray, ...]:
    """Cell ids, coverage fractions and row (position in ``wkbs``) of every covered pixel."""
    from exactextract import exact_extract

    _, source_cls, writer_cls = _ee_classes()
    writer = writer_cls()
    exact_extract(
        src,
        source_cls(wkbs, crs_wkt),
        ["cell_id", "coverage"],
        include_cols=["_pos"],
        output=writer,
    )
    none_i, none_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
    # one concatenation for all farms, not a Python loop per farm (100k farms: seconds)
    lengths = np.fromiter((len(c) for c in writer.cells), dtype=np.int64, count=len(writer.cells))
    cells = np.concatenate([none_i, *(np.asarray(c, np.int64) for c in writer.cells)])
    cover = np.concatenate([none_f, *(np.asarray(c, np.float64) for c in writer.cover)])
    rows = np.repeat(np.asarray(writer.pos, dtype=np.int64), lengths)
    return cells, cover, rows


@functools.cache
def _ee_classes() -> tuple[Any, Any, Any]:
    """exactextract feature, source and writer classes that skip GeoJSON and pandas."""
    from exactextract.feature import Feature, FeatureSource
    from exactextract.writer import Writer

    class WkbFeature(Feature):  # type: ignore[misc]
        def __init__(self, pos: int = -1, wkb: bytes | None = None) -> None:
            Feature.__init__(self)
            self.pos, self.wkb = pos, wkb
            self.props: dict[str, Any] = {}

        def geometry(self) -> bytes | None:
            return self.wkb

        def set_geometry(self, wkb: bytes | None) -> None:
            self.wkb = wkb

        def set_geometry_format(self) -> str:
            return "wkb"

        def get(self, name: str) -> object:
            return self.pos if name == "_pos" else self.props[name]

        def set(self, name: str, value: object) -> None:
            if name == "_pos":
                self.pos = int(value)  # type: ignore[call-overload]
            else:
                self.props[name] = value

        def fields(self) -> list[str]:
            return ["_pos"]

    class WkbSource(FeatureSource):  # type: ignore[misc]
        def __init__(self, wkbs: np.ndarray, crs_wkt: str) -> None:
            super().__init__()
            self.wkbs, self.crs_wkt = wkbs, crs_wkt

        def count(self) -> int:
            return len(self.wkbs)

        def __iter__(self):  # type: ignore[no-untyped-def]
            for i, w in enumerate(self.wkbs):
                yield WkbFeature(i, w)

        def srs_wkt(self) -> str:
            return self.crs_wkt

    class CellWriter(Writer):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.pos: list[int] = []
            self.cells: list[np.ndarray] = []
            self.cover: list[np.ndarray] = []

        def add_operation(self, op: object) -> None:
            pass

        def add_column(self, name: str) -> None:
            pass

        def add_geometry(self) -> None:
            pass

        def write(self, feature: object) -> None:
            f = WkbFeature()
            feature.copy_to(f)  # type: ignore[attr-defined]
            self.pos.append(f.pos)
            self.cells.append(f.props["cell_id"])
            self.cover.append(f.props["coverage"])

        def features(self) -> None:
            return None

    return WkbFeature, WkbSource, CellWriter


def _wkt(geobox: GeoBox) -> str:
    if geobox.crs is None:
        raise ValueError("the grid has no CRS")  # grids come from grid_for, always with a CRS
    return str(geobox.crs.to_wkt())
