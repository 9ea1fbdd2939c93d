"""GDAL ``/vsicurl/`` (COG reads): retry and timeout options, and its per-process cache."""

from __future__ import annotations

import logging
import re
from typing import Any

from .policy import DEFAULT_POLICY, RetryPolicy

__all__ = ["clear_gdal_http_cache", "gdal_http_options"]

log = logging.getLogger(__name__)


def gdal_http_options(policy: RetryPolicy = DEFAULT_POLICY) -> dict[str, Any]:
    """GDAL ``/vsicurl/`` retry and timeout options that follow ``policy`` (GDAL >= 3.10).

    GDAL retries a range request on the statuses of ``GDAL_HTTP_RETRY_CODES`` and on curl
    time-outs and connection resets, waiting ``GDAL_HTTP_RETRY_DELAY`` then about twice as long
    each time (with its own jitter); it does not read ``Retry-After``. A read still failing
    after that raises in rasterio, odc-stac (``fail_on_error``) passes it on, and the pipeline
    fails that scene alone.
    """
    return {
        # tries after the first one, as for catalog JSON
        "GDAL_HTTP_MAX_RETRY": max(0, policy.max_attempts - 1),
        # first wait in seconds; GDAL doubles it (plus jitter) at each retry
        "GDAL_HTTP_RETRY_DELAY": policy.base_delay,
        # the same transient statuses as catalog calls (GDAL's own list also has 500)
        "GDAL_HTTP_RETRY_CODES": ",".join(str(s) for s in policy.retry_statuses),
        # seconds to open a connection: a dead host is given up on quickly, then retried
        "GDAL_HTTP_CONNECTTIMEOUT": _seconds(policy.connect_timeout),
        # seconds for one whole range request (curl's total timeout): a server that accepts
        # and never answers, or trickles, cannot hold a dask thread longer than this
        "GDAL_HTTP_TIMEOUT": _seconds(policy.read_timeout),
    }


def _seconds(value: float) -> int:
    # GDAL parses these two as integers (curl's *_TIMEOUT options); never 0, which means "none"
    return max(1, round(value))


def clear_gdal_http_cache() -> bool:
    """Forget what GDAL's ``/vsicurl/`` remembers of remote files (in this process only).

    GDAL caches, per process and for its whole life, each URL's size and existence and the
    byte ranges it downloaded, failures included: after a 404 or a transfer cut short, reading
    the same URL again in the same process fails again *without a request*. Call this at the
    start of a run (on every dask worker: long-lived workers would otherwise never retry a
    scene) and before re-reading a failed scene. rasterio does not expose
    ``VSICurlClearCache``, so it is called through ctypes on the GDAL library already loaded
    by rasterio (found in ``/proc/self/maps``); returns False where that is not possible.
    """
    import ctypes

    import rasterio  # noqa: F401  (loads GDAL, so its library is mapped)

    path = _loaded_gdal_library()
    if path is None:
        log.debug("GDAL library not found among the loaded ones; /vsicurl/ cache not cleared")
        return False
    try:
        ctypes.CDLL(path).VSICurlClearCache()
    except (OSError, AttributeError) as exc:
        log.debug("cannot clear GDAL's /vsicurl/ cache: %s", exc)
        return False
    return True


def _loaded_gdal_library() -> str | None:
    # the very library rasterio uses (a wheel bundles its own copy); loading another GDAL into
    # the process would clear nothing and could do harm
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            for line in fh:
                path = line.rsplit(" ", 1)[-1].strip()
                if re.search(r"/libgdal[^/]*\.so", path):
                    return path
    except OSError:
        return None
    return None
