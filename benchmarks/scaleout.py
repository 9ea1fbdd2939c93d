"""A throw-away dask distributed cluster on 127.0.0.1: one scheduler and k single-thread workers.

Every process is started by us as a subprocess and stopped by its own pid at the end.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from approaches import VENV_BIN, _tmp


@contextlib.contextmanager
def local_cluster(workers: int, *, timeout: float = 60.0) -> Iterator[str]:
    """Start ``dask scheduler`` + ``workers`` × ``dask worker --nthreads 1``; yield the address."""
    folder = Path(tempfile.mkdtemp(prefix="cluster-", dir=_tmp()))
    sched_file = folder / "scheduler.json"
    log = (folder / "scheduler.log").open("w")
    procs = [
        subprocess.Popen(
            [
                str(VENV_BIN / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    ]
    try:
        t0 = time.monotonic()
        while not sched_file.exists() or not sched_file.read_text().strip():
            if time.monotonic() - t0 > timeout or procs[0].poll() is not None:
                raise RuntimeError(f"dask scheduler did not start; see {folder}")
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        for k in range(workers):
            wlog = (folder / f"worker{k}.log").open("w")
            procs.append(
                subprocess.Popen(
                    [
                        str(VENV_BIN / "dask"),
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "1",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                        "--memory-limit",
                        "0",
                    ],
                    stdout=wlog,
                    stderr=subprocess.STDOUT,
                )
            )
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=timeout)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
