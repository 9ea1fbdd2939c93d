"""Measure farm groups in worker processes beside the calling one (first nights, local runs).

exactextract holds the GIL, so threads gain nothing; processes do. The workers are plain
subprocesses running :mod:`agrisat.zonal.measure` as a script — not ``multiprocessing``
children: those re-import the parent's ``__main__`` (the ``agrisat`` console script, i.e. the
whole package: 1.3–1.7 s and 220 MB per worker, measured), and the run has threads, so it must
not fork. A worker imports numpy, scipy.sparse and exactextract only (~0.3 s, ~55 MB).

The calling thread measures groups too, and between two of its groups hands the workers their
next jobs and collects their answers (no helper threads: a thread reading a pipe would queue
for the GIL behind exactextract's per-farm callbacks at every 64 KB; measured, that made
100,000 plots slower than measuring them in process). Each worker keeps two jobs queued, so it
never waits for the caller. Jobs go out largest first; each result lands at its job's
position, so the output does not depend on the scheduling. A worker that fails (cannot start,
dies, or reports an error) is stopped and its jobs are measured here: the pool can be slower
than planned, never wrong.
"""

from __future__ import annotations

import collections
import logging
import os
import pickle
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..scratch import scratch_dir
from . import measure as _measure_mod
from .measure import measure

__all__ = ["cpu_count", "measure_groups"]

log = logging.getLogger(__name__)

#: One job: (window corner (x, y, pixel size), window shape, WKBs, CRS WKT), as for measure().
Job = tuple[tuple[float, float, float], tuple[int, int], np.ndarray, str]

#: Jobs queued per worker: one in progress, one waiting, so a worker never idles between two
#: of the caller's own groups.
_DEPTH = 2


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Worker:
    """One worker process, its queued jobs and the unread part of its answers."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.queued: collections.deque[int] = collections.deque()
        self.buffer = b""

    def fileno(self) -> int:
        assert self.proc.stdout is not None  # piped by _start
        return self.proc.stdout.fileno()


def measure_groups(
    jobs: Sequence[Job],
    *,
    workers: int,
    local: Callable[..., sp.csr_matrix] = measure,
) -> list[sp.csr_matrix]:
    """:func:`agrisat.zonal.measure.measure` of every job, here and in ``workers`` processes.

    Parameters
    ----------
    jobs
        One per farm group.
    workers
        Worker processes besides this one (0: all measured here).
    local
        Measures a job in this process.

    Returns
    -------
    list of scipy.sparse.csr_matrix
        In the order of ``jobs``; identical to measuring them one by one here.
    """
    results: list[sp.csr_matrix | None] = [None] * len(jobs)
    # largest groups first: the last ones to finish are small, the load stays balanced
    todo = collections.deque(sorted(range(len(jobs)), key=lambda i: -len(jobs[i][2])))
    # select() on pipes and the worker's fd handling are POSIX only
    n_workers = max(0, min(workers, len(jobs) - 1)) if os.name == "posix" else 0
    if not n_workers:
        for i in todo:
            results[i] = local(*jobs[i])
        return [r for r in results if r is not None]
    # the jobs hold farm polygons: a later run removes the folder of a run killed outright
    folder = scratch_dir(Path(tempfile.gettempdir()), "agrisat-weights-")
    try:
        pool = [w for w in (_start() for _ in range(n_workers)) if w is not None]
        try:
            while todo or any(w.queued for w in pool):
                for w in list(pool):
                    if not _feed(w, todo, jobs, folder):
                        _drop(w, pool, todo, "cannot send it a job")
                # answers ready now; wait for them only when nothing is left to do here
                _collect(pool, todo, results, folder, wait=not todo)
                if todo:
                    i = todo.popleft()
                    results[i] = local(*jobs[i])
        finally:
            for w in pool:
                _stop(w.proc)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return [r for r in results if r is not None]


def _start() -> _Worker | None:
    try:
        proc = subprocess.Popen(
            [sys.executable, "-u", _measure_mod.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
    except OSError as exc:
        log.warning("cannot start a weights worker process (%s); measuring in process", exc)
        return None
    return _Worker(proc)


def _feed(w: _Worker, todo: collections.deque[int], jobs: Sequence[Job], folder: Path) -> bool:
    """Queue jobs on ``w`` up to :data:`_DEPTH`; False when its stdin is gone."""
    assert w.proc.stdin is not None  # piped by _start
    while len(w.queued) < _DEPTH and todo:
        i = todo.popleft()
        path = folder / f"job-{i}"
        path.write_bytes(pickle.dumps(jobs[i], protocol=5))
        w.queued.append(i)
        try:
            w.proc.stdin.write(f"{path}\n".encode())
            w.proc.stdin.flush()
        except OSError:
            return False
    return True


def _collect(
    pool: list[_Worker],
    todo: collections.deque[int],
    results: list[sp.csr_matrix | None],
    folder: Path,
    *,
    wait: bool,
) -> None:
    """Read the answers the workers have written (waiting for one when ``wait``)."""
    busy = [w for w in pool if w.queued]
    if not busy:
        return
    ready, _, _ = select.select(busy, [], [], None if wait else 0)
    for w in ready:
        chunk = os.read(w.fileno(), 65536)
        if not chunk:  # EOF: the worker died
            _drop(w, pool, todo, f"it exited with {w.proc.poll()}")
            continue
        w.buffer += chunk
        *lines, w.buffer = w.buffer.split(b"\n")
        for line in lines:
            i = w.queued.popleft()
            job = folder / f"job-{i}"
            if line != b"ok":
                w.queued.appendleft(i)
                _drop(w, pool, todo, line.decode(errors="replace")[:300])
                break
            n, m, indptr, indices, data = pickle.loads(Path(f"{job}.out").read_bytes())
            results[i] = sp.csr_matrix((data, indices, indptr), shape=(n, m))
            job.unlink(missing_ok=True)
            Path(f"{job}.out").unlink(missing_ok=True)


def _drop(w: _Worker, pool: list[_Worker], todo: collections.deque[int], why: str) -> None:
    """Stop a failed worker; its queued jobs go back to the front of ``todo``."""
    log.warning("a weights worker process failed (%s); measuring its groups in process", why)
    todo.extendleft(reversed(w.queued))
    w.queued.clear()
    pool.remove(w)
    _stop(w.proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        if proc.stdin is not None:
            proc.stdin.close()  # EOF: the worker returns
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
