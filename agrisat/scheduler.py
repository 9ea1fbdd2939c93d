"""Where a run's dask work goes: local threads or an existing distributed cluster.

Both get the run's GDAL options for odc-stac's reads (the direct reader,
:mod:`agrisat.reader`, passes them into its tasks instead), a fresh GDAL ``/vsicurl/`` cache
and, on a cluster, the workers' allocator tuning and log redaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import dask

from .errors import ConfigError
from .net import clear_gdal_http_cache, install_log_redaction
from .zonal import release_shipped

__all__ = ["scheduler", "tune_worker_malloc"]


def tune_worker_malloc(mmap_mb: int) -> bool:
    """Let glibc keep blocks under ``mmap_mb`` MB on its heap for reuse (a dask worker's).

    Called on each worker through ``Client.run``; a no-op (False) where glibc is absent.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers
    ok = mallopt(m_mmap_threshold, int(mmap_mb) << 20) == 1
    return ok and mallopt(m_trim_threshold, 4 * int(mmap_mb) << 20) == 1


@contextlib.contextmanager
def scheduler(address: str | None, gdal: dict[str, Any], *, mmap_mb: int = 0) -> Iterator[Any]:
    """Run dask work on the cluster at ``address``, else on local threads; GDAL set on each
    (and, on a cluster, the workers' allocator: :func:`tune_worker_malloc`)."""
    import odc.stac

    if not address:
        clear_gdal_http_cache()  # GDAL remembers failed URLs for the life of the process
        odc.stac.configure_rio(**gdal)
        with dask.config.set(scheduler="threads"):
            yield None
        return
    from distributed import Client

    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise ConfigError(
            f"cannot reach the dask scheduler at {address}: {exc}; check --scheduler"
        ) from None
    try:
        client.run(clear_gdal_http_cache)
        client.run(install_log_redaction)
        client.run(odc.stac.configure_rio, **gdal)
        if mmap_mb > 0:
            client.run(tune_worker_malloc, mmap_mb)
        with dask.config.set(scheduler=client.get):
            yield client
    finally:
        release_shipped()
        client.close()
