"""Per-farm, per-item zonal statistics with exact pixel coverage weights.

Farms do not move between dates, so the expensive geometry work is done once per farm and grid:
:func:`coverage_weights` turns every farm into a sparse row of exact pixel coverage fractions
(exactextract's algorithm: the share of each pixel's area inside the polygon), grouped by
spatial block. :func:`zonal_stats` then applies those matrices to each item's index arrays — a
sparse matrix product per block and date — inside dask tasks, so each image block is read once
per date for all the farms on it.

Statistics for farm *f* and item *t*, with coverage weights *w_p*, clear mask *c_p* and finite
index value *v_p* of pixel *p*:

- ``clear_fraction`` = Σ w c / Σ w (0–1, coverage-weighted);
- ``clear_pixels`` = Σ w c (clear area in pixel units, rounded to 0.01);
- ``water_fraction`` = Σ w c water / Σ w c;
- ``<index>_mean`` = Σ w c v / Σ w c, ``<index>_std`` the weighted population std;
- ``status``: ``no_data`` if the item has no valid pixel on the farm, ``too_small`` if the farm
  covers fewer than ``min_pixels`` pixels, ``cloudy`` if ``clear_fraction`` <
  ``min_clear_fraction``, else ``ok``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
import xarray as xr
from dask.delayed import Delayed
from odc.geo.geobox import GeoBox

from .config import ZonalSettings
from .cube import zone_of_lon

__all__ = [
    "STATUS_ORDER",
    "FarmGroup",
    "ZoneWeights",
    "assign_zones",
    "coverage_weights",
    "resolve_same_day",
    "zonal_stats",
    "zonal_stats_stack",
]

#: Preference when one farm has several looks on one day (best first).
STATUS_ORDER = ("ok", "cloudy", "too_small", "no_data")


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
    own = np.array(
        [
            zone_of_lon(x, y)
            for x, y in zip(shapely.get_x(centroids), shapely.get_y(centroids), strict=True)
        ]
    )
    epsgs = sorted(footprints)
    if not epsgs:
        return {}
    cover = np.zeros((len(epsgs), len(geoms)))
    for i, code in enumerate(epsgs):
        fp = footprints[code]
        shapely.prepare(fp)
        inter = shapely.intersection(geoms, fp)
        cover[i] = np.where(areas > 0, shapely.area(inter) / np.where(areas > 0, areas, 1), 0.0)
    best = cover.max(axis=0)
    out: dict[int, list[int]] = {code: [] for code in epsgs}
    for j in range(len(geoms)):
        if best[j] <= 0:
            continue
        near = [i for i in range(len(epsgs)) if cover[i, j] >= best[j] - 1e-3]
        pick = next((i for i in near if epsgs[i] == own[j]), near[0])
        out[epsgs[pick]].append(j)
    return {code: np.array(idx, dtype=np.int64) for code, idx in out.items() if idx}


def coverage_weights(farms: gpd.GeoDataFrame, geobox: GeoBox, *, block: int = 1024) -> ZoneWeights:
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
    """
    from exactextract import exact_extract
    from exactextract.raster import NumPyRasterSource

    crs_wkt = _wkt(geobox)
    local = farms[["farm_id", "geometry"]].to_crs(crs_wkt)
    a = geobox.affine
    res, x0, y0 = a.a, a.c, a.f
    ny, nx = geobox.shape.y, geobox.shape.x
    b = local.geometry.bounds.to_numpy()
    col0 = np.clip(np.floor((b[:, 0] - x0) / res).astype(int), 0, nx - 1)
    col1 = np.clip(np.ceil((b[:, 2] - x0) / res).astype(int), 1, nx)
    row0 = np.clip(np.floor((y0 - b[:, 3]) / res).astype(int), 0, ny - 1)
    row1 = np.clip(np.ceil((y0 - b[:, 1]) / res).astype(int), 1, ny)
    key = (row0 // block) * (nx // block + 1) + (col0 // block)
    groups: list[FarmGroup] = []
    for k in np.unique(key):
        sel = np.flatnonzero(key == k)
        r0, r1 = int(row0[sel].min()), int(row1[sel].max())
        c0, c1 = int(col0[sel].min()), int(col1[sel].max())
        h, w = r1 - r0, c1 - c0
        wx0, wy1 = x0 + c0 * res, y0 - r0 * res
        src = NumPyRasterSource(
            np.zeros((h, w), dtype=np.uint8),
            wx0,
            wy1 - h * res,
            wx0 + w * res,
            wy1,
            srs_wkt=crs_wkt,
        )
        sub = local.iloc[sel].reset_index(drop=True)
        sub["_pos"] = np.arange(len(sub))
        res_df = exact_extract(
            src, sub, ["cell_id", "coverage"], include_cols=["_pos"], output="pandas"
        )
        # one concatenation for all farms, not a Python loop per farm (100k farms: seconds)
        lengths = np.fromiter(
            (len(c) for c in res_df["cell_id"]), dtype=np.int64, count=len(res_df)
        )
        none = np.zeros(0)
        cells = np.concatenate([none, *(np.asarray(c, np.float64) for c in res_df["cell_id"])])
        cover = np.concatenate([none, *(np.asarray(c, np.float64) for c in res_df["coverage"])])
        rows = np.repeat(res_df["_pos"].to_numpy(dtype=np.int64), lengths)
        mat = sp.csr_matrix((cover, (rows, cells.astype(np.int64))), shape=(len(sel), h * w))
        groups.append(
            FarmGroup(
                window=(r0, r1, c0, c1),
                farm_ids=sub["farm_id"].to_numpy(dtype=object),
                weights=mat,
                total=np.asarray(mat.sum(axis=1)).ravel(),
            )
        )
    return ZoneWeights(geobox=geobox, groups=tuple(groups))


def _wkt(geobox: GeoBox) -> str:
    if geobox.crs is None:
        raise ValueError("the grid has no CRS")  # grids come from grid_for, always with a CRS
    return str(geobox.crs.to_wkt())


def _group_stats(
    weights: sp.csr_matrix,
    total: np.ndarray,
    valid: np.ndarray,
    clear: np.ndarray,
    water: np.ndarray,
    *values: np.ndarray,
) -> np.ndarray:
    """Stats of one group for a batch of items: array (T, n_farms, 4 + 2 × n_indices)."""
    t = valid.shape[0]
    n = weights.shape[0]
    out = np.full((t, n, 4 + 2 * len(values)), np.nan)
    for i in range(t):
        v = valid[i].reshape(-1).astype(np.float64)
        c = clear[i].reshape(-1).astype(np.float64)
        wsum_valid = weights @ v
        wsum_clear = weights @ c
        wsum_water = weights @ (c * water[i].reshape(-1))
        out[i, :, 0] = wsum_valid
        out[i, :, 1] = wsum_clear
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i, :, 2] = np.where(wsum_clear > 0, wsum_water / wsum_clear, np.nan)
        out[i, :, 3] = total
        for j, arr in enumerate(values):
            x = arr[i].reshape(-1).astype(np.float64)
            m = c * np.isfinite(x)
            x = np.where(m > 0, x, 0.0)
            s0 = weights @ m
            s1 = weights @ (m * x)
            s2 = weights @ (m * x * x)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(s0 > 0, s1 / s0, np.nan)
                var = np.where(s0 > 0, s2 / s0 - mean * mean, np.nan)
            out[i, :, 4 + 2 * j] = mean
            out[i, :, 5 + 2 * j] = np.sqrt(np.clip(var, 0.0, None))
    return out


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
    :func:`agrisat.cube.prepared_stack`. The array is turned into one delayed object per chunk
    (its graph optimised as a whole, so reads are shared), and each farm group's task gets
    just the chunks under its window: every chunk is read once per date for all its farms.
    """
    if stack.numblocks[0] != 1:
        stack = stack.rechunk({0: stack.shape[0]})
    blocks = stack.to_delayed()
    tb, yb, xb = (np.cumsum((0, *c)) for c in stack.chunks[1:])
    nt = stack.shape[1]
    a = weights.geobox.affine
    out = []
    for gi, g in enumerate(weights.groups):
        r0, r1, c0, c1 = g.window
        # one graph key per group's weights: shipped to a worker once, not once per task
        w_key = dask.delayed(g.weights, name=f"agrisat-weights-{id(weights):x}-{gi}", pure=False)
        times = np.arange(nt)
        if footprints is not None:
            box = shapely.box(a.c + c0 * a.a, a.f - r1 * a.a, a.c + c1 * a.a, a.f - r0 * a.a)
            times = np.flatnonzero(shapely.intersects(np.asarray(footprints, dtype=object), box))
        iys = range(int(np.searchsorted(yb, r0, "right")) - 1, int(np.searchsorted(yb, r1, "left")))
        ixs = range(int(np.searchsorted(xb, c0, "right")) - 1, int(np.searchsorted(xb, c1, "left")))
        for b0 in range(0, len(times), time_batch):
            sel = times[b0 : b0 + time_batch]
            layout, args = [], []
            for j, t in enumerate(sel):
                it = int(np.searchsorted(tb, t, "right")) - 1
                for iy in iys:
                    for ix in ixs:
                        layout.append((j, int(t - tb[it]), int(yb[iy]), int(xb[ix])))
                        args.append(blocks[0, it, iy, ix])
            stats = dask.delayed(_group_from_blocks, pure=True)(
                w_key, g.total, g.window, len(sel), layout, *args
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
    return out


def _group_from_blocks(
    weights: sp.csr_matrix,
    total: np.ndarray,
    window: tuple[int, int, int, int],
    n_times: int,
    layout: list[tuple[int, int, int, int]],
    *blocks: np.ndarray,
) -> np.ndarray:
    """Assemble a group's window from the chunks under it, then compute its statistics."""
    r0, r1, c0, c1 = window
    nvar = blocks[0].shape[0]
    win = np.zeros((nvar, n_times, r1 - r0, c1 - c0), dtype=np.float32)
    for (j, tl, y0, x0), blk in zip(layout, blocks, strict=True):
        _, _, by, bx = blk.shape
        ya, yz = max(r0, y0), min(r1, y0 + by)
        xa, xz = max(c0, x0), min(c1, x0 + bx)
        win[:, j, ya - r0 : yz - r0, xa - c0 : xz - c0] = blk[
            :, tl, ya - y0 : yz - y0, xa - x0 : xz - x0
        ]
    return _group_stats(weights, total, win[0], win[1], win[2], *win[3:])


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
