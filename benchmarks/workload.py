"""Seeded generator of the province-scale benchmark workload (issue 5), cached on disk.

One Sentinel-2-like tile (5490² or 10980² pixels of 10 m, EPSG:32650, origin on a multiple of
60 m) written as T dates of Earth-Search-style items with real COGs (``red``/``nir`` at 10 m,
``scl`` at 20 m; uint16/uint8, DEFLATE, 512² blocks) under a static STAC catalog built with
:mod:`agrisat.testing`, plus a loan book of N plots (0.1–3 ha rotated rectangles on a jittered
lattice, never overlapping) as GeoParquet with the book columns.

Everything is keyed by its parameters under ``benchmarks/out/`` so reruns reuse it: the COGs of
date *d* depend only on (tile, seed, d), so T=8 reuses the dates written for T=2.

Usage::

    .venv/bin/python benchmarks/workload.py --tile 5490 --plots 20000 --dates 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from scipy import ndimage

from agrisat.testing import make_s2_item, write_cog, write_static_catalog

OUT = Path(__file__).resolve().parent / "out"
EPSG = 32650
TILE_NAME = "50SQF"
X0, Y0 = 600000.0, 4100040.0  # multiples of 60 m, in Shandong's UTM zone 50
FIRST_DAY = dt.date(2026, 4, 1)
CROPS = ("winter_wheat", "maize", "wheat_maize", "rice", "cotton", "other")
REGIONS = ("Shouguang", "Qingzhou", "Linqu", "Changle", "Anqiu", "Zhucheng")

__all__ = ["Workload", "make_book", "make_imagery", "workload"]


@dataclass(frozen=True)
class Workload:
    """Paths and parameters of one generated workload."""

    tile: int
    plots: int
    dates: int
    seed: int
    catalog: Path
    book: Path
    item_ids: tuple[str, ...]
    cogs: tuple[dict[str, Path], ...]  # per date: asset key -> COG path (red, nir, scl)
    ndvi_cog: Path  # NDVI of the first date as a float32 COG (NaN where not clear)


def _smooth(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """A smooth random field in [0, 1] with features about ``cell`` pixels wide."""
    coarse = rng.random((shape[0] // cell + 2, shape[1] // cell + 2)).astype(np.float32)
    fine = ndimage.zoom(coarse, cell, order=1, prefilter=False)[: shape[0], : shape[1]]
    lo, hi = float(fine.min()), float(fine.max())
    return (fine - lo) / max(hi - lo, 1e-6)


def _date_arrays(tile: int, seed: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DN of red and nir (10 m) and the SCL map (20 m) of date index ``d``."""
    shape = (tile, tile)
    # field structure fixed per tile: the same fields every date, crops greening over time
    base = np.random.default_rng([seed, 0])
    vigour = 0.5 * _smooth(base, shape, 40) + 0.5 * _smooth(base, shape, 9)
    rng = np.random.default_rng([seed, 1, d])
    ndvi = 0.12 + 0.7 * vigour * (0.7 + 0.05 * d) + 0.08 * (_smooth(rng, shape, 150) - 0.5)
    ndvi += rng.normal(0.0, 0.03, shape).astype(np.float32)
    ndvi = np.clip(ndvi, 0.02, 0.93).astype(np.float32)
    nir = (0.22 + 0.2 * _smooth(rng, shape, 25) + rng.normal(0, 0.01, shape)).astype(np.float32)
    red = nir * (1 - ndvi) / (1 + ndvi)
    # Earth Search v1 encoding: DN = reflectance × 10000 + 1000 (offset -0.1 declared)
    red_dn = np.clip(np.rint(red * 10000 + 1000), 1, 65535).astype(np.uint16)
    nir_dn = np.clip(np.rint(nir * 10000 + 1000), 1, 65535).astype(np.uint16)
    half = (tile // 2, tile // 2)
    scl = np.where(_smooth(rng, half, 60) > 0.55, 4, 5).astype(np.uint8)  # vegetation / bare
    scl[_smooth(base, half, 30) > 0.985] = 6  # a few ponds, the same every date
    clouds = _smooth(rng, half, 200)
    cut = np.quantile(clouds, 0.85 if d % 3 else 0.7)  # 15 % cloud, 30 % every third date
    scl[clouds > cut] = 9
    scl[(clouds > cut - 0.04) & (clouds <= cut)] = 8
    shadow = np.roll(clouds, (12, -12), axis=(0, 1))
    scl[(shadow > cut) & (scl != 9) & (scl != 8)] = 3
    return red_dn, nir_dn, scl


def make_imagery(tile: int, dates: int, *, seed: int = 0) -> tuple[Path, list[dict[str, Path]]]:
    """Write (or reuse) the COGs of ``dates`` dates and a static catalog over them."""
    if tile not in (5490, 10980):
        raise SystemExit(f"--tile must be 5490 or 10980, got {tile}")
    root = OUT / "workloads" / f"tile{tile}-seed{seed}"
    cat_root = root / f"catalog-T{dates}"
    aff10 = Affine(10.0, 0.0, X0, 0.0, -10.0, Y0)
    aff20 = Affine(20.0, 0.0, X0, 0.0, -20.0, Y0)
    items, cogs = [], []
    for d in range(dates):
        day = FIRST_DAY + dt.timedelta(days=5 * d)
        folder = root / "cogs" / f"{day:%Y%m%d}"
        paths = {k: folder / f"{k}.tif" for k in ("red", "nir", "scl")}
        if not (folder / "done").exists():
            t0 = time.perf_counter()
            red, nir, scl = _date_arrays(tile, seed, d)
            for key, arr, resampling in (
                ("red", red, "average"),
                ("nir", nir, "average"),
                ("scl", scl, "nearest"),
            ):
                write_cog(
                    paths[key],
                    arr,
                    transform=aff20 if key == "scl" else aff10,
                    crs=EPSG,
                    blocksize=512,
                    compress="DEFLATE",
                    overview_resampling=resampling,
                )
            (folder / "done").write_text("ok")
            print(f"  wrote date {day} COGs in {time.perf_counter() - t0:.1f} s", flush=True)
        half = tile // 2
        assets = {
            "red": (str(paths["red"]), aff10, (tile, tile)),
            "nir": (str(paths["nir"]), aff10, (tile, tile)),
            "scl": (str(paths["scl"]), aff20, (half, half)),
        }
        items.append(
            make_s2_item(
                f"S2B_{TILE_NAME}_{day:%Y%m%d}_0_L2A",
                datetime=day,
                epsg=EPSG,
                assets=assets,
                tile=TILE_NAME,
                convention="earthsearch_v1",
                cloud_cover=15.0,
            )
        )
        cogs.append(paths)
    # the COGs live outside the catalog folder (shared by every T): hrefs are relative paths
    catalog = cat_root / "catalog.json"
    if not catalog.exists():
        catalog = write_static_catalog(cat_root, items)
    return catalog, cogs


def make_book(tile: int, plots: int, *, seed: int = 0) -> Path:
    """Write (or reuse) a GeoParquet loan book of ``plots`` non-overlapping rotated rectangles.

    Plots sit one per cell of a k × k lattice (k = ⌈√N⌉, cells picked at random), centred with
    jitter; areas are log-uniform in 0.1–3 ha with aspect 1–3, shrunk where needed so that the
    rectangle's circumscribed circle stays inside its cell (at 100,000 plots on a 5490² tile
    the cells are ~170 m wide, which caps plots at ~1.3 ha).
    """
    path = OUT / "books" / f"tile{tile}-n{plots}-seed{seed}.parquet"
    if path.exists():
        return path
    rng = np.random.default_rng([seed, 2, plots])
    margin = 100.0
    extent = tile * 10.0 - 2 * margin
    k = math.ceil(math.sqrt(plots))
    cell = extent / k
    idx = rng.choice(k * k, size=plots, replace=False)
    cy, cx = np.divmod(idx, k)
    area = np.exp(rng.uniform(math.log(1e3), math.log(3e4), plots))  # m², 0.1–3 ha
    aspect = rng.uniform(1.0, 3.0, plots)
    w = np.sqrt(area / aspect)
    h = w * aspect
    half_diag = 0.5 * np.hypot(w, h)
    shrink = np.minimum(1.0, 0.45 * cell / half_diag)
    w, h, half_diag = w * shrink, h * shrink, half_diag * shrink
    slack = np.maximum(0.5 * cell - half_diag - 1.0, 0.0)
    x = X0 + margin + (cx + 0.5) * cell + rng.uniform(-1, 1, plots) * slack
    y = Y0 - margin - (cy + 0.5) * cell + rng.uniform(-1, 1, plots) * slack
    theta = rng.uniform(0, math.pi, plots)
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    local = corners[None, :, :] * np.stack([w, h], axis=1)[:, None, :]
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    rx = local[..., 0] * cos - local[..., 1] * sin + x[:, None]
    ry = local[..., 0] * sin + local[..., 1] * cos + y[:, None]
    geoms = shapely.polygons(np.stack([rx, ry], axis=-1))
    n_loans = max(1, plots * 2 // 3)
    loan = rng.integers(0, n_loans, plots)
    book = gpd.GeoDataFrame(
        {
            "farm_id": [f"F{i:07d}" for i in range(plots)],
            "loan_id": [f"L{v:07d}" for v in loan],
            "borrower_id": [f"B{v // 2:07d}" for v in loan],
            "crop": rng.choice(CROPS, plots),
            "exposure": np.round(rng.uniform(5e3, 3e5, plots), 2),
            "region": rng.choice(REGIONS, plots),
        },
        geometry=geoms,
        crs=EPSG,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    book.to_parquet(path)
    return path


def _ndvi_cog(tile: int, seed: int, cogs: dict[str, Path]) -> Path:
    """NDVI of one date as a float32 COG (NaN where SCL is not clear), for rasterstats."""
    from approaches import ndvi_of_date

    path = OUT / "workloads" / f"tile{tile}-seed{seed}" / "ndvi-first-date.tif"
    if not path.exists():
        ndvi, transform = ndvi_of_date(cogs)
        write_cog(path, ndvi, transform=transform, crs=EPSG, nodata=float("nan"), blocksize=512)
    return path


def workload(tile: int, plots: int, dates: int, *, seed: int = 0) -> Workload:
    """Generate (or reuse) the workload for ``tile`` pixels, ``plots`` plots, ``dates`` dates."""
    catalog, cogs = make_imagery(tile, dates, seed=seed)
    book = make_book(tile, plots, seed=seed)
    items = [
        json.loads(p.read_text())["id"]
        for p in sorted(catalog.parent.glob("sentinel-2-l2a/*/*.json"))
    ]
    return Workload(
        tile=tile,
        plots=plots,
        dates=dates,
        seed=seed,
        catalog=catalog,
        book=book,
        item_ids=tuple(items),
        cogs=tuple(cogs),
        ndvi_cog=_ndvi_cog(tile, seed, cogs[0]),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tile", type=int, default=5490)
    p.add_argument("--plots", type=int, default=20000)
    p.add_argument("--dates", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    t0 = time.perf_counter()
    wl = workload(a.tile, a.plots, a.dates, seed=a.seed)
    print(f"catalog {wl.catalog}\nbook    {wl.book}\n({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
