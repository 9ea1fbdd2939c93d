"""One batch of scenes → farm observations: the reads, the zonal sums, a failing scene isolated.

Split from :mod:`agrisat.ingest`, which commits what :func:`observe_batch` returns. The GDAL
options of every read are chosen here, deliberately (:func:`gdal_options`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import shapely

from .config import Settings
from .cube import SCL
from .errors import CatalogError
from .ledger import scene_day
from .net import clear_gdal_http_cache, gdal_http_options, redact_text
from .observations import observation_columns
from .pixels import direct_source
from .reader import close_handles
from .stack import prepared_stack
from .zonal import ZoneWeights, release_shipped, zonal_stats_stack

__all__ = ["footprint", "gdal_options", "observe_batch"]

log = logging.getLogger(__name__)


def gdal_options(settings: Settings) -> dict[str, Any]:
    """GDAL settings for every read, chosen deliberately (see the README's performance notes).

    The HTTP retry and timeout options follow the run's :class:`agrisat.net.RetryPolicy`
    (``settings.net`` when present, else :data:`agrisat.net.DEFAULT_POLICY`), so catalog JSON
    and COG pixels are retried alike; see :func:`agrisat.net.gdal_http_options`.
    """
    policy = settings.net
    return {
        # COGs have no side-car files: do not list remote folders on open
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.jp2,.JP2",
        # in bytes: rasterio.Env applies this one with GDALSetCacheMax64 (a bare 256 was a
        # 256-byte cache)
        "GDAL_CACHEMAX": int(settings.cube.gdal_cache_mb) << 20,
        # GDAL_HTTP_MAX_RETRY / _RETRY_DELAY / _RETRY_CODES / _TIMEOUT / _CONNECTTIMEOUT:
        # bounded retries of 408/425/429/502/503/504 and of curl time-outs and resets, with
        # exponential backoff; a stalled range request is cut after the read timeout
        **gdal_http_options(policy),
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "GDAL_HTTP_MULTIPLEX": "YES",
        "VSI_CACHE": "TRUE",
        # one decode thread per dask thread: dask already uses the cores
        "GDAL_NUM_THREADS": 1,
    }


def footprint(item: pystac.Item) -> shapely.Geometry:
    if item.geometry:
        return shapely.geometry.shape(item.geometry)
    if item.bbox:
        return shapely.box(*item.bbox[:2], *item.bbox[-2:])
    raise CatalogError(f"item {item.id} has neither geometry nor bbox; it cannot be placed")


def _observe(
    items: list[pystac.Item],
    epsg: int,
    weights: ZoneWeights,
    indices: Sequence[str],
    settings: Settings,
    ship: Callable[[list[Any]], list[Any]] | None = None,
) -> pd.DataFrame:
    """Compute the observations of ``items`` (one zone) for the farms of ``weights``.

    Scenes with SCL and scenes without are read apart (computed together): a read loads SCL
    for all its scenes or for none, so one scene without SCL would unmask every other scene.
    A farm's two rows of one day from the two reads are resolved by the caller.
    """
    unmasked = [i for i in items if SCL not in i.assets]
    parts: list[Any] = []
    for group in ([i for i in items if SCL in i.assets], unmasked):
        parts += _parts(group, epsg, weights, indices, settings, ship) if group else []
    try:
        frames = [f for f in dask.compute(*parts) if len(f)]
    finally:
        close_handles()  # a file replaced before the next run is opened anew
    if not frames:
        return pd.DataFrame(columns=observation_columns(indices))
    df = pd.concat(frames, ignore_index=True)
    if unmasked:
        # no cloud mask: the clear share is unknown on every path (the fused kernel says so
        # itself; the layer paths count every valid pixel clear), and detection makes a
        # single-look hazard wait for a second look (DetectSettings.unknown_sky_looks)
        blind = df["item_id"].isin([i.id for i in unmasked]).to_numpy()
        df.loc[blind, ["clear_fraction", "clear_pixels"]] = np.nan
    return df


def _parts(
    items: list[pystac.Item],
    epsg: int,
    weights: ZoneWeights,
    indices: Sequence[str],
    settings: Settings,
    ship: Callable[[list[Any]], list[Any]] | None,
) -> list[Any]:
    """Lazy observation frames of ``items``, which all carry SCL or all lack it."""
    # on a cluster a task reads several dates: per-task costs matter more than memory there
    tc = 1 if ship is None else settings.cube.cluster_time_chunk
    box, cube = weights.geobox, settings.cube
    # the direct reader keeps each file open per thread and reads each block once: GDAL's
    # per-handle VSI cache (up to 25 MB per open file) would only cost memory (+0.8 GB at
    # 20,000 plots x 8 dates, measured)
    gdal = {**gdal_options(settings), "VSI_CACHE": "FALSE"}
    # items on the zone grid are read window by window; anything else goes through odc-stac
    source = (
        direct_source(items, box, indices=indices, settings=cube, time_chunk=tc, gdal=gdal)
        if cube.direct_read
        else None
    )
    pixels: Any
    if source is None:
        pixels = prepared_stack(items, box, indices=indices, settings=cube, time_chunk=tc)[0]
    else:  # fused: each read task sums its pixels under farms (no full-chunk layers)
        pixels = source if cube.fused_sums else source.stack()
    footprints = list(gpd.GeoSeries([footprint(i) for i in items], crs=4326).to_crs(epsg).values)
    return zonal_stats_stack(
        pixels,
        weights,
        indices=indices,
        item_ids=[i.id for i in items],
        days=[scene_day(i) for i in items],
        settings=settings.zonal,
        footprints=footprints,
        ship=ship,
    )


def observe_batch(
    batch: list[pystac.Item],
    epsg: int,
    weights: ZoneWeights,
    indices: Sequence[str],
    settings: Settings,
    *,
    ship: Callable[[list[Any]], list[Any]] | None = None,
) -> tuple[pd.DataFrame, set[str]]:
    """Observe a batch; when it fails, isolate the failing scenes one by one."""
    try:
        return _observe(batch, epsg, weights, indices, settings, ship), set()
    except (
        Exception
    ) as exc:  # any failure of a scene's read (GDAL, odc-geo asserts on a cut header...)
        # must not stop the night: isolate it, report it, retry it next run
        clear_gdal_http_cache()
        release_shipped()  # a lost worker may have held scattered weights: scatter them again
        if len(batch) == 1:
            log.error("scene %s failed: %s", batch[0].id, _short(exc))
            return pd.DataFrame(columns=observation_columns(indices)), {batch[0].id}
        log.warning(
            "batch of %d scenes failed (%s); retrying scene by scene", len(batch), _short(exc)
        )
    frames, failed = [], set()
    for item in batch:
        obs, bad = observe_batch([item], epsg, weights, indices, settings, ship=ship)
        frames.append(obs)
        failed |= bad
    frames = [f for f in frames if len(f)]
    df = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=observation_columns(indices))
    )
    return df, failed


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {redact_text(text)[:300]}"
