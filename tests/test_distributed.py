"""The same run on a real Dask distributed cluster (a `dask scheduler` and two `dask worker`
processes on 127.0.0.1) gives the same observations as the local threaded run."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from shapely.geometry import box

from agrisat.config import Settings
from agrisat.observations import read_observations
from agrisat.pipeline import run
from agrisat.testing import SyntheticFarm, make_archive, strip_archive

X0, Y0 = 600000.0, 4040000.0
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_workers(address: str, n: int, timeout: float = 60) -> None:
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(n, timeout=timeout)


@pytest.fixture
def cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        subprocess.Popen(
            [
                str(BIN / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    time.sleep(1.0)
    for i in range(2):
        procs.append(
            subprocess.Popen(
                [
                    str(BIN / "dask"),
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--local-directory",
                    str(tmp_path / f"worker{i}"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        _wait_for_workers(address, 2)
        yield address
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def test_cluster_run_equals_local_run(cluster: str, tmp_path: Path) -> None:
    dates = [f"2026-05-{d:02d}" for d in (1, 6, 11, 16, 21, 26)]
    cloud = {dates[2]: __import__("numpy").full((20, 20), 9, "uint8")}
    arc = strip_archive(tmp_path / "a", dates=dates, farms=5, scl=cloud)
    local = run(arc.book, str(arc.catalog), tmp_path / "local", detect=False)
    remote = run(
        arc.book,
        str(arc.catalog),
        tmp_path / "remote",
        detect=False,
        settings=Settings().replace("run", scheduler=cluster),
    )
    assert remote.items_ingested == local.items_ingested == len(dates)
    a, b = read_observations(tmp_path / "local"), read_observations(tmp_path / "remote")
    assert len(a) == 5 * len(dates)
    pd.testing.assert_frame_equal(a, b)


def test_unreachable_scheduler_is_a_clear_error(tmp_path: Path) -> None:
    from agrisat.errors import ConfigError

    arc = make_archive(
        tmp_path / "a",
        [SyntheticFarm("F1", box(X0 + 40, Y0 - 140, X0 + 140, Y0 - 40), {"red": 0.05, "nir": 0.4})],
        dates=["2026-05-01"],
    )
    bad = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(ConfigError, match="cannot reach the dask scheduler"):
        run(
            arc.book,
            str(arc.catalog),
            tmp_path / "w",
            detect=False,
            settings=Settings().replace("run", scheduler=bad),
        )


def test_cluster_gets_each_zones_weights_once_across_batches(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import Client

    import agrisat.zonal.weights as weights_mod

    scattered: list[int] = []
    real_scatter = Client.scatter

    def counting(self, data, *args, **kwargs):  # type: ignore[no-untyped-def]
        scattered.append(len(data))
        return real_scatter(self, data, *args, **kwargs)

    monkeypatch.setattr(Client, "scatter", counting)
    # farms spread over several 16-pixel chunks and groups; 2 items per batch: 3 batches
    farms = [
        SyntheticFarm(
            f"F{i}",
            box(X0 + 20 + 90 * i, Y0 - 60 - 90 * (i % 3), X0 + 95 + 90 * i, Y0 - 5 - 90 * (i % 3)),
            {"red": 0.04 + 0.01 * i, "nir": 0.4 - 0.02 * i},
        )
        for i in range(4)
    ]
    dates = [f"2026-05-{d:02d}" for d in (1, 6, 11, 16, 21, 26)]
    arc = make_archive(tmp_path / "a", farms, dates=dates, shape=(40, 40))
    s = Settings().replace("run", batch_items=2).replace("cube", chunk_size=16)
    local = run(arc.book, str(arc.catalog), tmp_path / "local", detect=False, settings=s)
    measured: list[int] = []
    real_measure = weights_mod._measure

    def spy(*args):  # type: ignore[no-untyped-def]
        measured.append(1)
        return real_measure(*args)

    monkeypatch.setattr(weights_mod, "_measure", spy)
    remote = run(
        arc.book,
        str(arc.catalog),
        tmp_path / "remote",
        detect=False,
        settings=s.replace("run", scheduler=cluster),
    )
    assert remote.items_ingested == local.items_ingested == len(dates)
    assert len(scattered) == 1 and scattered[0] > 1  # one scatter of every chunk's weights
    assert measured == []  # the groups were measured by tasks on the workers, not here
    a, b = read_observations(tmp_path / "local"), read_observations(tmp_path / "remote")
    assert len(a) == 4 * len(dates)
    pd.testing.assert_frame_equal(a, b)


def test_worker_allocator_tuning_applies_on_glibc_and_is_harmless_elsewhere(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import ctypes
    import platform

    from agrisat.scheduler import tune_worker_malloc

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert tune_worker_malloc(64) is True  # mallopt accepted both settings

    def no_libc(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("no C library here")

    import agrisat.allocator as alloc

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    alloc._libc.cache_clear()  # the C library is looked up once per process
    try:
        assert tune_worker_malloc(64) is False  # e.g. macOS or musl: the run goes on untuned
    finally:
        alloc._libc.cache_clear()
