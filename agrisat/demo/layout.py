"""The demo landscape: tile grids, field parcels, villages, a canal, and the loan book.

All geometry is laid out in the first tile's UTM zone (the "world" frame, metres); the book is
stored in EPSG:4326 (7 decimals) and every tile burns the book's own polygons reprojected to
its zone, so the pixels and the book agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from pyproj import Transformer
from shapely.geometry import LineString, Point, Polygon, box
from shapely.ops import unary_union

from .spec import DemoSpec

__all__ = [
    "BG_MARGIN",
    "BG_TREES",
    "BG_VILLAGE",
    "BG_WATER",
    "Landscape",
    "TileGrid",
    "lay_out",
    "tile_grids",
    "tile_polygon",
]

REGION_NAMES = ("Jiaozhou", "Gaomi", "Pingdu", "Zhucheng", "Anqiu", "Changyi")
#: background classes, numbered after the parcels (label = n_parcels + code)
BG_MARGIN, BG_VILLAGE, BG_WATER, BG_TREES = 0, 1, 2, 3
BOOK_CROPS = (("wheat_maize", 0.72), ("winter_wheat", 0.12), ("maize", 0.11), ("other", 0.05))
PEER_CROPS = (("wheat_maize", 0.78), ("winter_wheat", 0.08), ("maize", 0.10), ("other", 0.04))
MARGIN_M = 4.0  # field margin between neighbouring strips


@dataclass(frozen=True)
class TileGrid:
    """A tile's 10 m grid in its own UTM zone (origin on a multiple of 60 m)."""

    tile_id: str
    epsg: int
    transform: Affine
    shape: tuple[int, int]

    @property
    def transform20(self) -> Affine:
        """Transform of the 20 m grid (same origin)."""
        return self.transform * Affine.scale(2)

    @property
    def shape20(self) -> tuple[int, int]:
        """Shape of the 20 m grid."""
        return self.shape[0] // 2, self.shape[1] // 2

    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in the tile's CRS."""
        x0, y1 = self.transform.c, self.transform.f
        return x0, y1 - 10 * self.shape[0], x0 + 10 * self.shape[1], y1


@dataclass(frozen=True)
class Landscape:
    """Parcels (fields, some in the book), background features and the book's attributes."""

    world_epsg: int
    tiles: tuple[TileGrid, ...]
    #: parcel polygons in EPSG:4326 (rounded to 7 decimals), book farms first
    parcels_ll: np.ndarray
    #: parcel polygons in the world frame (metres)
    parcels_world: np.ndarray
    parcel_crop: np.ndarray  # str per parcel
    parcel_region: np.ndarray  # int per parcel
    #: number of book farms (parcels 0 .. n_book-1 are the book's farms, in farm_id order)
    n_book: int
    farm_id: tuple[str, ...]
    loan_id: tuple[str, ...]
    borrower_id: tuple[str, ...]
    exposure: np.ndarray
    region_names: tuple[str, ...]
    #: background polygons in the world frame: code -> geometry
    background: dict[int, object]
    canal: LineString


def tile_grids(spec: DemoSpec) -> tuple[TileGrid, ...]:
    """Grids of the two tiles: west tile in zone 50, east tile in zone 51, overlapping."""
    lon, lat = spec.center_lonlat
    grids = []
    for side, tile in enumerate(spec.tiles):
        cx, cy = Transformer.from_crs(4326, tile.epsg, always_xy=True).transform(lon, lat)
        half = spec.overlap_m / 2
        far = spec.tile_width_m - half
        xmin, xmax = (cx - far, cx + half) if side == 0 else (cx - half, cx + far)
        ymin, ymax = cy - spec.tile_height_m / 2, cy + spec.tile_height_m / 2
        xmin, ymin = 60 * math.floor(xmin / 60), 60 * math.floor(ymin / 60)
        xmax, ymax = 60 * math.ceil(xmax / 60), 60 * math.ceil(ymax / 60)
        shape = (round((ymax - ymin) / 10), round((xmax - xmin) / 10))
        grids.append(TileGrid(tile.tile_id, tile.epsg, Affine(10, 0, xmin, 0, -10, ymax), shape))
    return tuple(grids)


def tile_polygon(grid: TileGrid, world_epsg: int) -> Polygon:
    """The tile's raster extent as a polygon in ``world_epsg``."""
    poly = box(*grid.bounds()).segmentize(100.0)
    if grid.epsg == world_epsg:
        return poly
    tr = Transformer.from_crs(grid.epsg, world_epsg, always_xy=True)
    return shapely.transform(poly, lambda xy: np.column_stack(tr.transform(*xy.T)))  # type: ignore[no-any-return]


def _blob(rng: np.random.Generator, center: tuple[float, float], radius: float) -> Polygon:
    angles = np.linspace(0, 2 * np.pi, 14, endpoint=False)
    radii = radius * rng.uniform(0.7, 1.25, angles.size)
    xs = center[0] + radii * np.cos(angles)
    ys = center[1] + radii * np.sin(angles)
    return Polygon(zip(xs, ys, strict=True)).buffer(0)


def _choice(rng: np.random.Generator, table: tuple[tuple[str, float], ...], n: int) -> np.ndarray:
    names = np.array([t[0] for t in table])
    weights = np.array([t[1] for t in table])
    return rng.choice(names, size=n, p=weights / weights.sum())


def _rotate_xy(coords: np.ndarray, angle: float, origin: tuple[float, float]) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    x = coords[:, 0] - origin[0]
    y = coords[:, 1] - origin[1]
    return np.column_stack([origin[0] + c * x - s * y, origin[1] + s * x + c * y])


def _strips(
    rng: np.random.Generator, region: Polygon, angle: float
) -> list[tuple[float, float, float, float]]:
    """Field strips (local u0, v0, u1, v1) filling ``region`` rotated by ``-angle``."""
    cx, cy = region.centroid.x, region.centroid.y
    local = shapely.transform(region, lambda c: _rotate_xy(c, -angle, (cx, cy)))
    u_min, v_min, u_max, v_max = local.bounds
    cells = []
    v = v_min
    while v < v_max:
        length = rng.uniform(80, 240)
        u = u_min
        while u < u_max:
            if rng.random() < 0.04:  # a larger operation
                width = rng.uniform(120, 320)
            else:
                width = float(np.clip(rng.lognormal(math.log(40), 0.55), 12, 220))
            width = min(width, 50000.0 / length)  # no parcel above 5 ha
            cells.append((u, v, u + width, v + length))
            u += width + MARGIN_M
        # a farm track every row, a wider road now and then
        v += length + (14.0 if rng.random() < 0.25 else 8.0)
    return cells


def _farm_shape(
    rng: np.random.Generator, cell: tuple[float, float, float, float], irregular: bool
) -> Polygon:
    """The book farm inside a local cell: slightly rotated, sometimes with a corner cut."""
    u0, v0, u1, v1 = cell
    rect = box(u0, v0, u1, v1)
    if irregular:
        w, h = u1 - u0, v1 - v0
        a, b = rng.uniform(0.25, 0.6) * w, rng.uniform(0.15, 0.45) * h
        corner = int(rng.integers(4))
        ux, vy = (u0, u1)[corner % 2], (v0, v1)[corner // 2]
        sx, sy = (1, -1)[corner % 2], (1, -1)[corner // 2]
        rect = rect.difference(Polygon([(ux, vy), (ux + sx * a, vy), (ux, vy + sy * b)]))
    allowed = box(u0, v0, u1, v1).buffer(MARGIN_M / 2 - 0.1, join_style="mitre")
    delta = math.radians(rng.uniform(-1.5, 1.5))
    c = rect.centroid
    shape = shapely.transform(rect, lambda xy: _rotate_xy(xy, delta, (c.x, c.y)))
    for _ in range(40):
        if shape.within(allowed):
            return shape  # type: ignore[no-any-return]
        shape = shapely.affinity.scale(shape, 0.99, 0.99, origin=c)
    return rect  # type: ignore[no-any-return]


def lay_out(spec: DemoSpec) -> Landscape:
    """Lay out the landscape and the loan book for ``spec`` (deterministic for its seed)."""
    rng = np.random.default_rng([spec.seed, 1])
    grids = tile_grids(spec)
    world_epsg = grids[0].epsg
    tile_polys = [tile_polygon(g, world_epsg) for g in grids]
    inner = [p.buffer(-80.0) for p in tile_polys]
    area = unary_union(inner)
    xmin, ymin, xmax, ymax = area.bounds

    # a canal crossing the whole area west to east, ponds, villages and orchards
    xs = np.linspace(xmin - 200, xmax + 200, 40)
    y_mid = ymin + (ymax - ymin) * rng.uniform(0.3, 0.7)
    ys = y_mid + 0.08 * (ymax - ymin) * np.sin((xs - xmin) / (xmax - xmin) * 2.5 * np.pi)
    canal = LineString(zip(xs, ys, strict=True))
    water = [canal.buffer(12.0)]
    nrows = 2 if spec.n_regions > 3 else 1
    ncols = math.ceil(spec.n_regions / nrows)
    regions = []
    for r in range(spec.n_regions):
        col, row = r % ncols, r // ncols
        cell = box(
            xmin + (xmax - xmin) * col / ncols,
            ymin + (ymax - ymin) * row / nrows,
            xmin + (xmax - xmin) * (col + 1) / ncols,
            ymin + (ymax - ymin) * (row + 1) / nrows,
        )
        regions.append(cell.intersection(area))
    villages, trees = [], []
    for region in regions:
        rx0, ry0, rx1, ry1 = region.bounds
        scale = min(rx1 - rx0, ry1 - ry0)
        for _ in range(2 if scale > 1500 else 1):
            pt = (rng.uniform(rx0, rx1), rng.uniform(ry0, ry1))
            villages.append(_blob(rng, pt, rng.uniform(0.05, 0.09) * scale + 40))
        pt = (rng.uniform(rx0, rx1), rng.uniform(ry0, ry1))
        trees.append(box(pt[0], pt[1], pt[0] + rng.uniform(80, 200), pt[1] + rng.uniform(60, 150)))
        pt = (rng.uniform(rx0, rx1), rng.uniform(ry0, ry1))
        water.append(Point(pt).buffer(rng.uniform(25, 45)))
    background = {
        BG_VILLAGE: unary_union(villages),
        BG_WATER: unary_union(water),
        BG_TREES: unary_union(trees),
    }
    obstacles = shapely.prepared.prep(unary_union(list(background.values())).buffer(10.0))

    parcels: list[Polygon] = []
    parcel_region: list[int] = []
    cells_local: list[tuple[tuple[float, float, float, float], float, tuple[float, float]]] = []
    for r, region in enumerate(regions):
        angle = math.radians(rng.uniform(-12, 12))
        c = (region.centroid.x, region.centroid.y)
        strips = _strips(rng, region, angle)
        if not strips:
            continue
        geoms = shapely.box(*np.array(strips).T)
        geoms = shapely.transform(geoms, lambda xy, a=angle, o=c: _rotate_xy(xy, a, o))
        keep = shapely.within(geoms, region) & ~np.array([obstacles.intersects(g) for g in geoms])
        # each parcel must lie wholly inside one tile, so every farm is seen whole somewhere
        keep &= np.logical_or.reduce([shapely.within(geoms, t) for t in inner])
        for k in np.flatnonzero(keep):
            parcels.append(geoms[k])
            parcel_region.append(r)
            cells_local.append((strips[k], angle, c))
    n_parcels = len(parcels)
    n_book = min(spec.n_farms, n_parcels // 3)
    book_idx = np.sort(rng.choice(n_parcels, size=n_book, replace=False))
    # book farms first, ordered west to east within region so loans group neighbouring farms
    order = sorted(
        book_idx.tolist(), key=lambda k: (parcel_region[k], round(parcels[k].centroid.x, -2))
    )
    rest = [k for k in range(n_parcels) if k not in set(order)]
    perm = order + rest
    irregular = rng.random(n_book) < 0.15
    final = []
    for i, k in enumerate(perm):
        if i < n_book:
            cell, angle, c = cells_local[k]
            local = _farm_shape(rng, cell, bool(irregular[i]))
            final.append(shapely.transform(local, lambda xy, a=angle, o=c: _rotate_xy(xy, a, o)))
        else:
            final.append(parcels[k])
    world = np.array(final, dtype=object)
    region_arr = np.array([parcel_region[k] for k in perm])
    crops = np.concatenate(
        [_choice(rng, BOOK_CROPS, n_book), _choice(rng, PEER_CROPS, n_parcels - n_book)]
    )
    to_ll = Transformer.from_crs(world_epsg, 4326, always_xy=True)
    ll = shapely.transform(world, lambda xy: np.round(np.column_stack(to_ll.transform(*xy.T)), 7))

    farm_ids, loan_ids, borrower_ids = _loans(rng, n_book)
    area_ha = shapely.area(world[:n_book]) / 10000.0
    rate = rng.lognormal(math.log(90000), 0.7, n_book)
    exposure = np.round(np.clip(20000 + area_ha * rate, 20000, 2_000_000), -2)
    return Landscape(
        world_epsg=world_epsg,
        tiles=grids,
        parcels_ll=ll,
        parcels_world=world,
        parcel_crop=crops,
        parcel_region=region_arr,
        n_book=n_book,
        farm_id=farm_ids,
        loan_id=loan_ids,
        borrower_id=borrower_ids,
        exposure=exposure,
        region_names=REGION_NAMES[: spec.n_regions],
        background=background,
        canal=canal,
    )


def _loans(
    rng: np.random.Generator, n_book: int
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Farm, loan and borrower ids: loans of 1-4 neighbouring farms, borrowers of 1-3 loans."""
    farm_ids = tuple(f"F{i + 1:04d}" for i in range(n_book))
    loan_of: list[int] = []
    while len(loan_of) < n_book:
        size = int(rng.choice([1, 2, 3, 4], p=[0.45, 0.3, 0.15, 0.1]))
        loan_of.extend([len(set(loan_of))] * size)
    loan_of = loan_of[:n_book]
    n_loans = loan_of[-1] + 1
    borrower_of: list[int] = []
    while len(borrower_of) < n_loans:
        size = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
        borrower_of.extend([len(set(borrower_of))] * size)
    loan_ids = tuple(f"L{loan_of[i] + 1:04d}" for i in range(n_book))
    borrower_ids = tuple(f"B{borrower_of[loan_of[i]] + 1:04d}" for i in range(n_book))
    return farm_ids, loan_ids, borrower_ids
