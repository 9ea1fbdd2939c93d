"""Write the demo archive: COGs + static STAC catalog, loan book, truth and metadata.

Layout of ``out_dir``::

    catalog/catalog.json                               root catalog
    catalog/sentinel-2-l2a/collection.json
    catalog/sentinel-2-l2a/<item_id>/<item_id>.json    one item per tile and date (+ reprocessings)
    catalog/sentinel-2-l2a/<item_id>/{blue,green,red,nir}.tif   10 m uint16 COGs
    catalog/sentinel-2-l2a/<item_id>/{swir16,scl}.tif           20 m COGs (SCL uint8)
    book.geojson                                       loan book, EPSG:4326
    truth.csv                                          injected events
    demo.json                                          spec, tiles, counts, non-events
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..testing.cog import write_cog
from ..testing.stac import item_dir, make_s2_item, reflectance_to_dn, write_static_catalog
from .outputs import book_geojson, meta_json, truth_csv
from .phenology import BANDS
from .scene import TileCanvas, draw_atmosphere, make_canvases, nodata_mask, render, to_20m
from .spec import DemoArchive, DemoSpec
from .world import DemoWorld, build_world

__all__ = ["book_geojson", "cloud_schedule", "generate_demo", "truth_csv"]

log = logging.getLogger(__name__)

#: how likely a date is mostly cloudy, by month (Shandong: wet July-August), before scaling
_MONTHLY_CLOUD = np.array([0.7, 0.7, 0.8, 0.8, 0.85, 1.0, 1.7, 1.6, 1.0, 0.75, 0.75, 0.8])
_REPROCESSED = ("earthsearch_v1", "05.11")
#: fast, still well-compressed DEFLATE for the reflectance COGs
_COG_OPTIONS: dict[str, Any] = {"predictor": 2, "level": 1}

# State shared with forked workers (set by generate_demo before the pool starts).
_STATE: dict[str, Any] = {}


def cloud_schedule(spec: DemoSpec, dates: tuple[dt.date, ...]) -> np.ndarray:
    """Cloud cover (0..1) per date: ~``cloudy_share`` mostly cloudy, the rest mostly clear."""
    rng = np.random.default_rng([spec.seed, 8])
    p = _MONTHLY_CLOUD[[d.month - 1 for d in dates]]
    p = np.clip(p / p.mean() * spec.cloudy_share, 0, 0.95)
    cloudy = rng.random(len(dates)) < p
    cover = np.where(
        cloudy,
        np.where(rng.random(len(dates)) < 0.35, 1.0, rng.uniform(0.7, 0.98, len(dates))),
        np.where(rng.random(len(dates)) < 0.45, 0.0, rng.uniform(0.02, 0.3, len(dates))),
    )
    lo, hi = spec.cloudy_weeks
    cover[[lo <= d <= hi for d in dates]] = 1.0
    return cover


def _platform(date: dt.date, i: int) -> str:
    if i % 2:
        return "S2B"
    return "S2C" if date >= dt.date(2025, 1, 21) else "S2A"


def _render_date(d: int) -> list[dict[str, Any]]:
    """Render and write every item of date index ``d`` (both tiles, reprocessings too)."""
    world: DemoWorld = _STATE["world"]
    canvases: list[TileCanvas] = _STATE["canvases"]
    spec = world.spec
    date = world.dates[d]
    atmos = draw_atmosphere(spec.seed, date, float(_STATE["cover"][d]), _STATE["wshape"])
    records = []
    for canvas in canvases:
        grid = canvas.grid
        rng = np.random.default_rng([spec.seed, 6, date.toordinal(), canvas.index])
        nodata = nodata_mask(rng, canvas, spec.nodata_strip_share)
        versions = [(0, *spec.convention_for(date))]
        if (grid.tile_id, date) in _STATE["duplicates"]:
            versions.append((1, *_REPROCESSED))
        for k, convention, baseline in versions:
            noise = np.random.default_rng([spec.seed, 7, date.toordinal(), canvas.index, k])
            refl, scl20, valid = render(world, canvas, d, atmos, noise, nodata)
            item_id = f"{_platform(date, d)}_{grid.tile_id}_{date:%Y%m%d}_{k}_L2A"
            folder = item_dir(_STATE["cat_root"], item_id, collection_id=spec.collection_id)
            valid20 = scl20 != 0
            hrefs = {}
            for b, band in enumerate(BANDS):
                if band == "swir16":
                    arr = reflectance_to_dn(to_20m(refl[b]), convention, valid=valid20)
                    aff, shape = grid.transform20, grid.shape20
                else:
                    arr = reflectance_to_dn(refl[b], convention, valid=valid)
                    aff, shape = grid.transform, grid.shape
                path = write_cog(
                    folder / f"{band}.tif", arr, transform=aff, crs=grid.epsg, **_COG_OPTIONS
                )
                hrefs[band] = (str(path), tuple(aff)[:6], shape)
            path = write_cog(
                folder / "scl.tif",
                scl20,
                transform=grid.transform20,
                crs=grid.epsg,
                overview_resampling="nearest",
            )
            hrefs["scl"] = (str(path), tuple(grid.transform20)[:6], grid.shape20)
            n_valid = max(int(valid20.sum()), 1)
            share = {c: 100.0 * float((scl20 == c).sum()) / n_valid for c in (3, 4, 6, 8, 9, 10)}
            records.append(
                {
                    "item_id": item_id,
                    "tile": canvas.index,
                    "d": d,
                    "k": k,
                    "convention": convention,
                    "baseline": baseline,
                    "hrefs": hrefs,
                    "cloud_cover": share[8] + share[9] + share[10],
                    "scl_share": share,
                    "nodata_pct": 100.0 * (1.0 - valid20.mean()),
                }
            )
    return records


def _choose_duplicates(spec: DemoSpec, world: DemoWorld) -> set[tuple[str, dt.date]]:
    rng = np.random.default_rng([spec.seed, 9])
    season = [d for d in world.dates if spec.season_start <= d <= spec.season_end]
    out: set[tuple[str, dt.date]] = set()
    for tile in spec.tiles:
        n = min(spec.n_duplicates, len(season))
        for i in rng.choice(len(season), size=n, replace=False):
            out.add((tile.tile_id, season[int(i)]))
    return out


def _item(spec: DemoSpec, world: DemoWorld, rec: dict[str, Any]) -> Any:
    grid = world.land.tiles[rec["tile"]]
    date = world.dates[rec["d"]]
    when = dt.datetime(date.year, date.month, date.day, 2, 56, 31, 24000, tzinfo=dt.UTC)
    created = when + dt.timedelta(hours=3, minutes=7)
    if rec["k"]:
        created += dt.timedelta(days=30 + rec["d"] % 7)
    baseline = rec["baseline"]
    share = rec["scl_share"]
    props = {
        "s2:sequence": str(rec["k"]),
        "s2:nodata_pixel_percentage": round(rec["nodata_pct"], 4),
        "s2:cloud_shadow_percentage": round(share[3], 4),
        "s2:vegetation_percentage": round(share[4], 4),
        "s2:water_percentage": round(share[6], 4),
        "s2:high_proba_clouds_percentage": round(share[9], 4),
        "s2:medium_proba_clouds_percentage": round(share[8], 4),
        "s2:thin_cirrus_percentage": round(share[10], 4),
        "s2:product_uri": (
            f"{rec['item_id'][:3]}_MSIL2A_{date:%Y%m%d}T025631_N{baseline.replace('.', '')}"
            f"_R032_T{grid.tile_id}_{created:%Y%m%dT%H%M%S}.SAFE"
        ),
    }
    return make_s2_item(
        rec["item_id"],
        datetime=when,
        epsg=grid.epsg,
        assets=rec["hrefs"],
        tile=grid.tile_id,
        baseline=baseline,
        convention=rec["convention"],
        cloud_cover=rec["cloud_cover"],
        created=created,
        proj_key="proj:code" if date >= spec.proj_code_from else "proj:epsg",
        collection=spec.collection_id,
        properties=props,
    )


def generate_demo(
    out_dir: str | Path, *, spec: DemoSpec | None = None, workers: int | None = None
) -> DemoArchive:
    """Generate the demo archive into ``out_dir`` (created; existing files are overwritten).

    Parameters
    ----------
    out_dir
        Target folder.
    spec
        What to generate (default :class:`DemoSpec`); the same spec gives the same book and
        truth bytes.
    workers
        Processes used to render scenes (default: up to 2 / the CPU count; 1 renders inline).

    Returns
    -------
    DemoArchive
        Paths of the root ``catalog.json``, ``book.geojson`` (columns ``farm_id``,
        ``loan_id``, ``borrower_id``, ``crop``, ``exposure`` (CNY), ``region``),
        ``truth.csv`` (``event_id, farm_id, hazard, start, end, crop, note``; one row per
        event and farm, dates inside the monitored season) and ``demo.json`` (keys
        ``spec``, ``crop_year``, ``season``, ``tiles``, ``n_farms``, ``n_parcels``,
        ``farms_in_both_tiles``, ``n_dates``, ``n_items``, ``items_by_convention``,
        ``duplicates``, ``events``, ``non_events``, ``files``).

    Notes
    -----
    Which offset convention each item uses is fixed by ``spec.conventions`` (see
    :mod:`agrisat.demo.spec`); reprocessed ``_1`` items are ``earthsearch_v1`` at 05.11.
    Rendering uses forked worker processes where the platform has ``fork``.
    """
    spec = spec or DemoSpec()
    t0 = time.perf_counter()
    root = Path(out_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    cat_root = root / "catalog"
    if cat_root.exists():
        # only ever delete a catalog this generator wrote: stale items would stay linked-less
        # on disk and confuse anyone globbing the folder
        if not (cat_root / "catalog.json").is_file():
            raise ConfigError(
                f"{cat_root} exists but is not a demo catalog; choose another out_dir or remove it"
            )
        shutil.rmtree(cat_root)
    world = build_world(spec)
    (_, wshape), canvases = make_canvases(world)
    _STATE.update(
        world=world,
        canvases=canvases,
        wshape=wshape,
        cover=cloud_schedule(spec, world.dates),
        duplicates=_choose_duplicates(spec, world),
        cat_root=cat_root,
    )
    n_workers = workers or min(2, os.cpu_count() or 1)
    indices = list(range(len(world.dates)))
    try:
        if n_workers > 1 and "fork" in mp.get_all_start_methods():
            # fork shares the world with the workers without pickling it
            with cf.ProcessPoolExecutor(n_workers, mp_context=mp.get_context("fork")) as pool:
                batches = list(pool.map(_render_date, indices, chunksize=4))
        else:
            batches = [_render_date(d) for d in indices]
        records = [r for batch in batches for r in batch]
        duplicates = sorted(_STATE["duplicates"], key=lambda x: (x[1], x[0]))
    finally:
        _STATE.clear()
    t1 = time.perf_counter()
    items = [_item(spec, world, rec) for rec in records]
    catalog = write_static_catalog(
        cat_root,
        items,
        collection_id=spec.collection_id,
        title="agrisat demo: synthetic Sentinel-2 L2A over Shandong",
    )
    book = root / "book.geojson"
    book.write_text(book_geojson(world.land), encoding="utf-8")
    truth = root / "truth.csv"
    truth.write_text(truth_csv(world), encoding="utf-8")
    meta = root / "demo.json"
    meta.write_text(json.dumps(meta_json(spec, world, records, duplicates), indent=1) + "\n")
    log.info(
        "demo archive: %d farms, %d items, %d truth rows; scenes %.1f s, catalog %.1f s",
        world.land.n_book,
        len(items),
        len(world.plan.truth),
        t1 - t0,
        time.perf_counter() - t1,
    )
    return DemoArchive(root=root, catalog=catalog, book=book, truth=truth, meta=meta)
