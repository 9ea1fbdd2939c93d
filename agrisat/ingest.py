"""Ingestion: new scenes → farm observations, committed to the store batch by batch.

Everything here that touches pixels builds lazy dask graphs (:mod:`agrisat.cube`,
:mod:`agrisat.zonal`); :func:`ingest` computes them in batches of whole days of one UTM zone
and commits each batch with its ledger entries in one atomic transaction, so a run killed at
any moment loses at most the batch in flight and a rerun picks up where it stopped.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import pandas as pd
import pystac
import shapely

from .book import Farms
from .config import Settings
from .cube import SCL, grid_anchor, grid_for, item_epsg
from .ledger import (
    CATCHUP_TABLE,
    catchup_rows,
    ledger_rows,
    merge_with_store,
    scene_day,
    superseded_rows,
)
from .observations import observation_columns
from .observe import footprint as _footprint
from .observe import gdal_options
from .observe import observe_batch as _observe_batch
from .scheduler import scheduler as _scheduler
from .store import Store
from .zonal import (
    WeightsCache,
    ZoneWeights,
    assign_zones,
    coverage_weights,
    release_zone,
    resolve_same_day,
)

__all__ = ["IngestResult", "gdal_options", "ingest"]

log = logging.getLogger(__name__)

#: Called after each committed batch with (done, total, description).
ProgressFn = Callable[[int, int, str], None]


@dataclass
class IngestResult:
    """What :func:`ingest` did."""

    items_ingested: int = 0
    items_failed: list[str] = field(default_factory=list)
    observations_added: int = 0
    farms_unseen: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def ingest(
    farms: Farms,
    items: Sequence[pystac.Item],
    new: Sequence[pystac.Item],
    store: Store,
    *,
    indices: Sequence[str],
    settings: Settings,
    run_id: str,
    replaced: dict[str, str] | None = None,
    ledger: pd.DataFrame | None = None,
    batch_items: int = 24,
    progress: ProgressFn | None = None,
    history: str | None = None,
) -> IngestResult:
    """Observe the ``new`` items over ``farms`` and commit them batch by batch.

    Parameters
    ----------
    farms
        The validated book.
    items
        Every scene the catalog returned (their footprints decide each farm's grid).
    new
        The scenes to read (not yet in the ledger, or re-published).
    store
        The workdir's store, locked by the caller.
    indices
        Index names to compute.
    settings
        All settings.
    run_id
        Written into the ledger.
    replaced
        New item id → id of the stored item it re-publishes (its rows are replaced).
    ledger
        The store's ledger when the caller has read it already (read here otherwise).
    batch_items
        Items computed and committed together (whole days are never split); fewer when
        ``settings.run.batch_rows`` observations would be exceeded.
    progress
        Optional callback after each committed batch.
    history
        Read scenes the ledger holds already, for ``farms`` that lack them (farms that
        joined the book or were redrawn; :mod:`agrisat.catchup`): each batch is recorded in
        the ``catchup`` table under this pending set's id instead of the ledger, and its rows
        are not resolved against stored rows (they supersede the old polygon's).
    """
    replaced = replaced or {}
    result = IngestResult()
    if ledger is None:
        ledger = store.read("ledger")
    stored_days = set(ledger["day"]) if len(ledger) and history is None else set()
    t0 = time.perf_counter()
    by_zone: dict[int, list[pystac.Item]] = {}
    for it in items:
        by_zone.setdefault(item_epsg(it), []).append(it)
    footprints = {
        code: shapely.union_all([_footprint(i) for i in zitems]) for code, zitems in by_zone.items()
    }
    zones = assign_zones(farms.gdf, footprints)
    result.farms_unseen = len(farms) - sum(len(v) for v in zones.values())
    if result.farms_unseen:
        log.warning("%d farm(s) lie outside every scene footprint", result.farms_unseen)
    new_by_zone = {code: [i for i in new if item_epsg(i) == code] for code in zones}
    no_scl = [i.id for i in new if SCL not in i.assets]
    if no_scl:
        log.warning(
            "%d of %d scene(s) to read carry no SCL (e.g. %s): they are read without a cloud "
            "mask, their looks' clear fraction is unknown and single-look alerts wait for a "
            "second look",
            len(no_scl),
            len(new),
            no_scl[0],
        )
    total = sum(len(v) for v in new_by_zone.values())
    done_count = 0
    result.seconds["zones"] = time.perf_counter() - t0
    t_obs = t_weights = 0.0
    cache = WeightsCache(store.weights_cache_dir)
    with _scheduler(
        settings.run.scheduler,
        gdal_options(settings),
        mmap_mb=settings.cube.worker_mmap_threshold_mb,
        farms=len(farms) if total else 0,  # auto starts no local cluster for nothing to read
        min_cpus=settings.run.local_cluster_min_cpus,
        min_farms=settings.run.local_cluster_min_farms,
    ) as client:
        # on a cluster each chunk's weights are scattered once per zone, not sent per batch
        ship = None if client is None else functools.partial(client.scatter, hash=False)
        for code, zitems in new_by_zone.items():
            if not zitems:
                continue
            t0 = time.perf_counter()
            _, weights = _zone_grid(
                farms.gdf.iloc[zones[code]],
                code,
                settings,
                by_zone[code],
                cache=cache,
                parallel=client is not None,
            )
            t_weights += time.perf_counter() - t0
            log.info(
                "EPSG:%d: weights of %d farm group(s) loaded, %d computed",
                code,
                cache.hits,
                cache.misses,
            )
            cache.hits = cache.misses = 0
            # a batch's observations (farms x scenes) stay under run.batch_rows in memory
            size = max(1, min(batch_items, settings.run.batch_rows // max(1, len(zones[code]))))
            for batch in _batches(zitems, size):
                t0 = time.perf_counter()
                obs, failed = _observe_batch(batch, code, weights, indices, settings, ship=ship)
                if stored_days & {scene_day(i) for i in batch}:
                    # a day already stored (a late tile, a reprocessing): resolve against it
                    obs = merge_with_store(store, obs, replaced=replaced)
                elif len({scene_day(i) for i in batch}) < len(batch):
                    obs = resolve_same_day(obs)  # two tiles of one day: one row per farm
                # else one scene per day: each farm has one row per date already
                ok_items = [i for i in batch if i.id not in failed]
                gone = sorted({replaced[i.id] for i in ok_items if i.id in replaced})
                with store.transaction() as txn:
                    txn.append("observations", obs[observation_columns(indices)])
                    if history is not None:  # the ledger has these scenes: record the catch-up
                        txn.append(CATCHUP_TABLE, catchup_rows(ok_items, history, run_id))
                    else:
                        txn.append("ledger", ledger_rows(ok_items, code, run_id))
                    if gone:
                        txn.append("ledger", superseded_rows(ledger, gone, run_id))
                    # failed scenes: the next run searches back to retry them (a catch-up's
                    # are retried because the catchup table does not hold them)
                    if failed and history is None:
                        bad = [i for i in batch if i.id in failed]
                        txn.append("ledger", ledger_rows(bad, code, run_id, status="failed"))
                t_obs += time.perf_counter() - t0
                result.items_ingested += len(ok_items)
                result.items_failed += sorted(failed)
                result.observations_added += len(obs)
                done_count += len(batch)
                if progress:
                    progress(done_count, total, f"EPSG:{code} up to {scene_day(batch[-1])}")
            del weights
            release_zone()
    cache.prune()
    result.seconds["weights"] = t_weights
    result.seconds["observe"] = t_obs
    return result


def _batches(items: Sequence[pystac.Item], size: int) -> Iterator[list[pystac.Item]]:
    """Batches of about ``size`` items that never split a day (same-day looks resolve together)."""
    batch: list[pystac.Item] = []
    for day, group in pd.Series(list(items)).groupby([scene_day(i) for i in items], sort=True):
        del day
        batch.extend(group.tolist())
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _zone_grid(
    farms: gpd.GeoDataFrame,
    epsg: int,
    settings: Settings,
    items: Sequence[pystac.Item] = (),
    *,
    cache: WeightsCache | None = None,
    parallel: bool = False,
) -> tuple[Any, ZoneWeights]:
    local = farms.to_crs(epsg=epsg)
    x0, y0, x1, y1 = local.total_bounds
    pad = 2 * settings.cube.resolution
    # when the zone's scenes share one pixel grid (one tile), chunks start on its COG blocks;
    # else at least on the 20 m grid, so 20 m bands and SCL are read unwarped (cube.load_raw)
    res, block = settings.cube.resolution, settings.cube.chunk_size
    anchor = grid_anchor(items, resolution=res, block=block) if items else None
    if anchor is None and items:
        anchor, block = grid_anchor(items, resolution=res, block=2), 2
    grid = grid_for(
        (x0 - pad, y0 - pad, x1 + pad, y1 + pad), epsg, resolution=res, anchor=anchor, block=block
    )
    weights = coverage_weights(
        local,
        grid,
        block=settings.cube.chunk_size,
        cache=cache,
        parallel=parallel,
        processes=settings.cube.weights_processes,
        pool_min_farms=settings.cube.weights_pool_min_farms,
    )
    return grid, weights
