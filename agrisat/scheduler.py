"""Where a run's dask work goes: local threads, a local cluster of worker processes, or an
existing distributed cluster (:func:`choose_scheduler` decides from ``run.scheduler``).

All get the run's GDAL options for odc-stac's reads (the direct reader,
:mod:`agrisat.reader`, passes them into its tasks instead), a fresh GDAL ``/vsicurl/`` cache
and, on a cluster, the workers' allocator tuning and log redaction.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dask
import dask.threaded

from .allocator import tune_worker_malloc
from .errors import ConfigError
from .net import clear_gdal_http_cache, install_log_redaction
from .zonal import release_shipped

__all__ = [
    "SchedulerChoice",
    "available_cpus",
    "choose_scheduler",
    "scheduler",
    "threads_unless_client",
    "tune_worker_malloc",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchedulerChoice:
    """Where a run's dask work goes."""

    #: ``"threads"`` (this process), ``"local"`` (a LocalCluster of ``workers`` single-thread
    #: worker processes started for the run) or ``"address"`` (a running cluster)
    kind: str
    workers: int = 0
    address: str | None = None


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def choose_scheduler(
    spec: str | None, *, cpus: int, farms: int, min_cpus: int = 8, min_farms: int = 50_000
) -> SchedulerChoice:
    """Resolve ``run.scheduler``: ``None``/``"auto"``, ``"threads"``, ``"local"``,
    ``"local:N"`` or a scheduler address.

    ``auto`` starts a LocalCluster of one single-thread worker per CPU only with at least
    ``min_cpus`` CPUs and ``min_farms`` farms, else uses threads. Why: the pixel path's
    Python glue and exactextract's weights hold the GIL, so threads stop scaling after a few
    cores (measured on 2 cores: 2 threads 1.35x one), while worker processes pay start-up
    (~2 s) and data shipping and share the cores with the client (2 cores: threads 8.6 s, a
    2-worker cluster 11.3 s for 20,000 plots x 8 dates). The crossover on many cores is a
    projection from those figures, not a measurement: hence a setting.
    """
    text = (spec or "auto").strip()
    if text == "auto":
        if cpus >= min_cpus and farms >= min_farms:
            return SchedulerChoice("local", workers=cpus)
        return SchedulerChoice("threads")
    if text == "threads":
        return SchedulerChoice("threads")
    if text == "local" or text.startswith("local:"):
        n = text.partition(":")[2] or str(cpus)
        if not n.isdigit() or int(n) < 1:
            raise ConfigError(
                f"scheduler {text!r}: write local:N with N a number of worker processes >= 1"
            )
        return SchedulerChoice("local", workers=int(n))
    return SchedulerChoice("address", address=_check_address(text))


def _check_address(text: str) -> str:
    """``text`` when it reads as a dask scheduler address (``[scheme://]host:port``), else a
    ConfigError: distributed would otherwise fail deep inside with its own ValueError."""
    from urllib.parse import urlsplit

    scheme = text.partition("://")[0] if "://" in text else "tcp"
    parts = urlsplit(text if "://" in text else f"tcp://{text}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if scheme == "inproc" or (
        scheme in ("tcp", "tls", "ws", "wss", "ucx") and parts.hostname and port is not None
    ):
        return text
    raise ConfigError(
        f"--scheduler {text!r}: use threads, local, local:N or a dask scheduler address like "
        "tcp://10.0.0.5:8786"
    )


@contextlib.contextmanager
def threads_unless_client() -> Iterator[None]:
    """Run the block's dask work (``dask.delayed`` tasks) on local threads, as dask would, but
    without dask importing ``distributed`` to look for a client that cannot exist.

    When no scheduler is configured dask imports ``distributed`` (0.2-0.3 s) to ask for a
    current client before it falls back to a delayed collection's default, the threaded
    scheduler. A client exists only once ``distributed`` is imported: until then the threaded
    scheduler is named directly. With ``distributed`` imported or a scheduler configured
    (an analyst's client in a notebook), dask decides as before.
    """
    import sys

    if "distributed" in sys.modules or dask.config.get("scheduler", None) is not None:
        yield
        return
    with dask.config.set(scheduler=dask.threaded.get):
        yield


@contextlib.contextmanager
def scheduler(
    spec: str | None,
    gdal: dict[str, Any],
    *,
    mmap_mb: int = 0,
    farms: int = 0,
    min_cpus: int = 8,
    min_farms: int = 50_000,
) -> Iterator[Any]:
    """Run dask work where :func:`choose_scheduler` says; GDAL set on each (and, on a
    cluster, the workers' allocator: :func:`tune_worker_malloc`). Yields the distributed
    client, or ``None`` on local threads."""
    import odc.stac

    choice = choose_scheduler(
        spec, cpus=available_cpus(), farms=farms, min_cpus=min_cpus, min_farms=min_farms
    )
    if choice.kind == "threads":
        clear_gdal_http_cache()  # GDAL remembers failed URLs for the life of the process
        odc.stac.configure_rio(**gdal)
        # the threaded scheduler itself, not its name: dask resolves a name by first
        # importing distributed to look for a client (0.2-0.3 s of a run that starts none)
        with dask.config.set(scheduler=dask.threaded.get):
            yield None
        return
    from distributed import Client

    cluster = None
    try:
        if choice.kind == "local":
            from distributed import LocalCluster

            log.info("starting a local dask cluster of %d worker process(es)", choice.workers)
            cluster = LocalCluster(
                n_workers=choice.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.WARNING,
            )
            client = Client(cluster)
        else:
            client = Client(choice.address, timeout="20s")
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        where = choice.address or "a local cluster"
        raise ConfigError(
            f"cannot reach the dask scheduler at {where}: {exc}; check --scheduler"
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
        if cluster is not None:
            cluster.close()
