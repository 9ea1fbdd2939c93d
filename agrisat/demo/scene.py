"""Render one acquisition (tile x date) of the demo: reflectances, clouds, SCL, nodata.

Weather (clouds, their shadows, cirrus) is drawn once per date on a common "world" grid in
the first tile's zone and sampled by both tiles, so the overlap strip sees the same clouds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.features import rasterize
from scipy.ndimage import gaussian_filter, zoom

from .layout import BG_TREES, BG_VILLAGE, BG_WATER, TileGrid
from .phenology import canopy_cover, mix_bands
from .world import DemoWorld

__all__ = ["CLOUD", "Atmosphere", "TileCanvas", "draw_atmosphere", "make_canvases", "render"]

CLOUD = np.array([0.48, 0.47, 0.46, 0.52, 0.36])
#: SCL priority when four 10 m classes are merged into one 20 m pixel (higher wins)
_SCL_RANK = np.zeros(256, dtype=np.uint8)
for _rank, _cls in enumerate((5, 4, 6, 3, 10, 8, 9, 0)):
    _SCL_RANK[_cls] = _rank
_RANK_SCL = np.array((5, 4, 6, 3, 10, 8, 9, 0), dtype=np.uint8)


@dataclass(frozen=True)
class TileCanvas:
    """Static per-tile rasters: class labels, texture, and where each pixel sits in the world."""

    grid: TileGrid
    index: int
    labels: np.ndarray
    texture: np.ndarray
    world_flat: np.ndarray


@dataclass(frozen=True)
class Atmosphere:
    """Per-date weather on the world grid (flattened): cloud opacity, shadow, cirrus haze."""

    cover: float
    alpha: np.ndarray
    shadow: np.ndarray
    cirrus: np.ndarray


def _world_grid(world: DemoWorld) -> tuple[Affine, tuple[int, int]]:
    """A 10 m grid in the world zone covering both tiles."""
    epsg = world.land.world_epsg
    xs, ys = [], []
    for g in world.land.tiles:
        x0, y0, x1, y1 = g.bounds()
        cx = np.array([x0, x1, x0, x1, (x0 + x1) / 2, (x0 + x1) / 2])
        cy = np.array([y0, y0, y1, y1, y0, y1])
        if g.epsg != epsg:
            cx, cy = Transformer.from_crs(g.epsg, epsg, always_xy=True).transform(cx, cy)
        xs += list(cx)
        ys += list(cy)
    x0, y1 = np.floor(min(xs) / 10) * 10 - 20, np.ceil(max(ys) / 10) * 10 + 20
    shape = (int((y1 - min(ys)) / 10) + 4, int((max(xs) - x0) / 10) + 4)
    return Affine(10, 0, x0, 0, -10, y1), shape


def make_canvases(world: DemoWorld) -> tuple[tuple[Affine, tuple[int, int]], list[TileCanvas]]:
    """Burn parcels and background into each tile's grid (by pixel centre)."""
    land = world.land
    n_parcels = len(land.parcels_world)
    wt, wshape = _world_grid(world)
    rng = np.random.default_rng([world.spec.seed, 4])
    texture_world = gaussian_filter(rng.standard_normal(wshape), 1.0)
    texture_world = (texture_world / texture_world.std()).astype(np.float32)
    canvases = []
    for i, grid in enumerate(land.tiles):
        to_tile = Transformer.from_crs(4326, grid.epsg, always_xy=True)
        parcels = shapely.transform(
            land.parcels_ll, lambda xy, t=to_tile: np.column_stack(t.transform(*xy.T))
        )
        shapes: list[tuple[object, int]] = []
        bg_to_tile = Transformer.from_crs(land.world_epsg, grid.epsg, always_xy=True)
        for code in (BG_TREES, BG_VILLAGE, BG_WATER):
            geom = land.background[code]
            if grid.epsg != land.world_epsg:
                geom = shapely.transform(
                    geom, lambda xy, t=bg_to_tile: np.column_stack(t.transform(*xy.T))
                )
            shapes.append((geom, n_parcels + code))
        shapes += [(g, k) for k, g in enumerate(parcels)]
        labels = rasterize(
            shapes, out_shape=grid.shape, transform=grid.transform, fill=n_parcels, dtype="int32"
        )
        rows, cols = np.indices(grid.shape)
        x, y = grid.transform * (cols.ravel() + 0.5, rows.ravel() + 0.5)  # type: ignore[operator]
        if grid.epsg != land.world_epsg:
            x, y = Transformer.from_crs(grid.epsg, land.world_epsg, always_xy=True).transform(x, y)
        wc, wr = ~wt * (np.asarray(x), np.asarray(y))
        wr = np.clip(np.floor(wr).astype(np.int64), 0, wshape[0] - 1)
        wc = np.clip(np.floor(wc).astype(np.int64), 0, wshape[1] - 1)
        flat = (wr * wshape[1] + wc).reshape(grid.shape)
        canvases.append(TileCanvas(grid, i, labels, texture_world.ravel()[flat], flat))
    return (wt, wshape), canvases


def _field(rng: np.random.Generator, shape: tuple[int, int], cell: int, sigma: float) -> np.ndarray:
    coarse = rng.standard_normal((shape[0] // cell + 3, shape[1] // cell + 3))
    smooth = gaussian_filter(coarse, sigma)
    fine = zoom(smooth, cell, order=1)[: shape[0], : shape[1]]
    return ((fine - fine.mean()) / (fine.std() + 1e-9)).astype(np.float32)


def draw_atmosphere(seed: int, date: dt.date, cover: float, wshape: tuple[int, int]) -> Atmosphere:
    """Clouds covering about ``cover`` (0..1) of the world grid, their shadows and cirrus."""
    rng = np.random.default_rng([seed, 5, date.toordinal()])
    n = wshape[0] * wshape[1]
    zeros = np.zeros(n, dtype=np.float32)
    if cover <= 0.0:
        alpha = zeros
    elif cover >= 0.999:
        alpha = np.ones(n, dtype=np.float32)
    else:
        f = _field(rng, wshape, 16, 1.3)
        thr = np.quantile(f[::3, ::3], 1.0 - cover)
        alpha = (np.clip((f - thr) / 0.8, 0, 1) ** 0.7).ravel()
    shadow = zeros
    if 0.0 < cover < 0.999:
        # morning sun in the south-east: shadows fall north-west of their clouds
        dy, dx = int(rng.integers(15, 45)), int(rng.integers(10, 35))
        a2 = alpha.reshape(wshape)
        shifted = np.zeros_like(a2)
        shifted[:-dy, :-dx] = a2[dy:, dx:]
        shadow = ((shifted > 0.25) & (a2 < 0.06)).astype(np.float32).ravel()
    cirrus = zeros
    if cover < 0.7 and rng.random() < 0.15:
        g = _field(rng, wshape, 24, 1.5)
        cirrus = (np.clip(g - 0.3, 0, 1) * 0.06).astype(np.float32).ravel()
    return Atmosphere(float(cover), alpha, shadow, cirrus)


def nodata_mask(rng: np.random.Generator, canvas: TileCanvas, share: float) -> np.ndarray | None:
    """A slanted nodata strip along the tile's outer edge (swath edge), or None."""
    if rng.random() >= share:
        return None
    h20, w20 = canvas.grid.shape20
    width = rng.uniform(0.12, 0.35) * w20
    slope = rng.uniform(-0.15, 0.15)
    rows, cols = np.indices((h20, w20))
    edge = width + slope * (rows - h20 / 2)
    mask20 = cols < edge if canvas.index == 0 else cols >= w20 - edge
    return np.repeat(np.repeat(mask20, 2, axis=0), 2, axis=1)


def render(
    world: DemoWorld,
    canvas: TileCanvas,
    d: int,
    atmos: Atmosphere,
    rng: np.random.Generator,
    nodata: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reflectance ``(5, y, x)`` at 10 m, SCL at 20 m, and the 10 m validity mask."""
    labels = canvas.labels
    tex = canvas.texture
    cover = canopy_cover(world.ndvi[:, d]).astype(np.float32)
    fc = np.clip(cover[labels] * (1.0 + 0.05 * tex), 0.0, 1.0)
    wf = np.clip(world.water[:, d].astype(np.float32)[labels] * (1.0 + 0.25 * tex), 0.0, 1.0)
    sb = world.soil_brightness.astype(np.float32)[labels] * (1.0 + 0.03 * tex)
    ms = world.moisture[:, d].astype(np.float32)[labels]
    refl = np.stack(mix_bands(fc, soil_brightness=sb, moisture_stress=ms, water=wf)).astype(
        np.float32, copy=False
    )
    refl += rng.standard_normal(refl.shape, dtype=np.float32) * (0.002 + 0.008 * refl)

    flat = canvas.world_flat
    alpha = atmos.alpha[flat]
    shadow = atmos.shadow[flat]
    cirrus = atmos.cirrus[flat]
    refl = refl * (1.0 - alpha) + CLOUD[:, None, None].astype(np.float32) * alpha
    refl *= 1.0 - 0.55 * shadow
    refl += cirrus

    scl = np.full(labels.shape, 5, dtype=np.uint8)
    scl[fc > 0.35] = 4
    scl[wf > 0.5] = 6
    scl[cirrus > 0.02] = 10
    scl[shadow > 0] = 3
    scl[alpha > 0.06] = 8
    scl[alpha > 0.6] = 9
    valid = np.ones(labels.shape, dtype=bool) if nodata is None else ~nodata
    scl[~valid] = 0
    h, w = labels.shape
    ranks = _SCL_RANK[scl].reshape(h // 2, 2, w // 2, 2).max(axis=(1, 3))
    return refl, _RANK_SCL[ranks], valid


def to_20m(band: np.ndarray) -> np.ndarray:
    """2x2 block mean (a 20 m pixel sees its four 10 m pixels)."""
    h, w = band.shape
    return band.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
