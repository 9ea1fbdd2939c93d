"""Coverage weights measured in worker processes equal the in-process ones, a failing worker
costs time but never a result, and the zone's group matrices are let go once the per-chunk
split exists (rebuilt, identical, when asked for)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

import agrisat.zonal.pool as pool_mod
import agrisat.zonal.weights as weights_mod
from agrisat.cube import grid_for
from agrisat.zonal import ZoneWeights, coverage_weights
from agrisat.zonal.chunks import _split_by_chunk, release_zone

X0, Y1, RES, EPSG = 600000.0, 4000000.0, 10.0, 32650
BLOCK = 16  # pixels: one farm group per 16 x 16 block


def _boxes() -> list[tuple[float, float, float, float]]:
    """Axis-aligned farms with fractional edges, three per block in a 3 x 3 block layout."""
    out = []
    for by in range(3):
        for bx in range(3):
            x = X0 + bx * BLOCK * RES + 13.3 + 2.1 * bx
            y = Y1 - by * BLOCK * RES - 17.1 - 1.7 * by
            out += [(x, y - 52.4, x + 71.9, y), (x + 80.5, y - 40.2, x + 121.3, y - 3.3)]
            out.append((x + 5.5, y - 120.8, x + 44.4, y - 66.6))
    return out


def _farms() -> gpd.GeoDataFrame:
    boxes = _boxes()
    return gpd.GeoDataFrame(
        {"farm_id": [f"f{i}" for i in range(len(boxes))]},
        geometry=[box(*b) for b in boxes],
        crs=f"EPSG:{EPSG}",
    )


def _grid():  # type: ignore[no-untyped-def]
    return grid_for((X0, Y1 - 3 * BLOCK * RES, X0 + 3 * BLOCK * RES, Y1), EPSG)


def _expected(b: tuple[float, float, float, float], ny: int, nx: int) -> np.ndarray:
    """Exact share of each grid pixel inside an axis-aligned box, by interval overlap."""
    x0, y0, x1, y1 = b
    left = X0 + RES * np.arange(nx)
    top = Y1 - RES * np.arange(ny)
    ox = np.clip(np.minimum(x1, left + RES) - np.maximum(x0, left), 0, None) / RES
    oy = np.clip(np.minimum(y1, top) - np.maximum(y0, top - RES), 0, None) / RES
    return oy[:, None] * ox[None, :]


def _arrays(w: ZoneWeights) -> list[tuple[object, ...]]:
    return [
        (g.window, list(g.farm_ids), g.weights.indptr, g.weights.indices, g.weights.data, g.total)
        for g in w.groups
    ]


def _assert_identical(a: ZoneWeights, b: ZoneWeights) -> None:
    assert len(a.groups) == len(b.groups)
    for ga, gb in zip(_arrays(a), _arrays(b), strict=True):
        assert ga[0] == gb[0] and ga[1] == gb[1]
        for x, y in zip(ga[2:], gb[2:], strict=True):
            assert x.dtype == y.dtype  # type: ignore[attr-defined]
            np.testing.assert_array_equal(x, y)


def test_worker_processes_give_the_in_process_arrays_and_the_exact_coverage(
    measured_farms: list[int],
) -> None:
    farms, grid = _farms(), _grid()
    here = coverage_weights(farms, grid, block=BLOCK, processes=1)
    assert sum(measured_farms) == len(farms)
    measured_farms.clear()
    pooled = coverage_weights(farms, grid, block=BLOCK, processes=2, pool_min_farms=0)
    # the worker measured the jobs queued on it, this process the rest
    assert 0 < sum(measured_farms) < len(farms)
    assert len(pooled.groups) == 9
    _assert_identical(pooled, here)
    # and the numbers are the true areas, not merely the same as the other path's
    ny, nx = grid.shape.y, grid.shape.x
    boxes = dict(zip(farms["farm_id"], _boxes(), strict=True))
    for g in pooled.groups:
        r0, r1, c0, c1 = g.window
        dense = g.weights.toarray().reshape(len(g.farm_ids), r1 - r0, c1 - c0)
        for fid, row in zip(g.farm_ids, dense, strict=True):
            full = _expected(boxes[fid], ny, nx)
            np.testing.assert_allclose(row, full[r0:r1, c0:c1], atol=1e-9)
            assert full[r0:r1, c0:c1].sum() == pytest.approx(full.sum())  # window holds it


def test_small_books_start_no_worker(
    monkeypatch: pytest.MonkeyPatch, measured_farms: list[int]
) -> None:
    started: list[int] = []
    monkeypatch.setattr(pool_mod, "_start", lambda: started.append(1))
    farms = _farms()
    coverage_weights(farms, _grid(), block=BLOCK, processes=2, pool_min_farms=len(farms) + 1)
    assert started == [] and sum(measured_farms) == len(farms)
    coverage_weights(farms, _grid(), block=BLOCK, processes=1, pool_min_farms=0)
    assert started == []  # one process asked for: this one
    coverage_weights(farms, _grid(), block=BLOCK)  # the settings' defaults: 50,000 farms
    assert started == []


_DIES = "import sys; sys.stdin.buffer.read(1)"
_FAILS = "import sys; sys.stdin.readline(); print('error boom', flush=True); sys.stdin.read()"


@pytest.mark.parametrize("script", [_DIES, _FAILS], ids=["worker dies", "worker reports"])
def test_a_failing_worker_costs_time_not_results(
    monkeypatch: pytest.MonkeyPatch,
    measured_farms: list[int],
    caplog: pytest.LogCaptureFixture,
    script: str,
) -> None:
    farms, grid = _farms(), _grid()
    here = coverage_weights(farms, grid, block=BLOCK, processes=1)
    measured_farms.clear()

    def broken() -> pool_mod._Worker:
        return pool_mod._Worker(
            subprocess.Popen(
                [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
        )

    monkeypatch.setattr(pool_mod, "_start", broken)
    with caplog.at_level(logging.WARNING, logger="agrisat.zonal.pool"):
        pooled = coverage_weights(farms, grid, block=BLOCK, processes=2, pool_min_farms=0)
    _assert_identical(pooled, here)
    assert sum(measured_farms) == len(farms)  # all measured here after the workers gave up
    assert "weights worker process failed" in caplog.text


def test_groups_let_their_matrices_go_after_the_split_and_rebuild_them_identically() -> None:
    farms, grid = _farms(), _grid()
    fresh = coverage_weights(farms, grid, block=BLOCK, processes=1)
    kept = _arrays(coverage_weights(farms, grid, block=BLOCK, processes=1))
    ny, nx = grid.shape.y, grid.shape.x
    try:
        yb, xb = np.arange(0, ny + 1, BLOCK), np.arange(0, nx + 1, BLOCK)
        assert all(g.holds_weights for g in fresh.groups)
        _split_by_chunk(fresh, yb, xb)
        assert not any(g.holds_weights for g in fresh.groups)
        for g, k in zip(fresh.groups, kept, strict=True):
            m = g.weights  # rebuilt from the split
            for x, y in zip((m.indptr, m.indices, m.data), k[2:5], strict=True):
                assert x.dtype == y.dtype  # type: ignore[attr-defined]
                np.testing.assert_array_equal(x, y)
        # other chunk edges: split again from the let-go groups, same as from fresh ones
        yb2, xb2 = np.r_[0, 10, 30, ny], np.r_[0, 7, 20, 41, nx]
        again = _split_by_chunk(fresh, yb2, xb2)
        other = _split_by_chunk(coverage_weights(farms, grid, block=BLOCK, processes=1), yb2, xb2)
        assert sorted(again) == sorted(other)
        for k in again:
            (ra, (ca, qa, ma)), (rb, (cb, qb, mb)) = again[k], other[k]
            for x, y in ((ra, rb), (ca, cb), (qa, qb)):
                np.testing.assert_array_equal(x, y)
            assert (ma != mb).nnz == 0 and ma.shape == mb.shape
    finally:
        release_zone()


def test_worker_script_imports_no_agrisat() -> None:
    # the worker's start-up is what the pool pays for: the package costs 1.3 s and 220 MB
    code = (
        "import runpy, sys; "
        f"runpy.run_path({pool_mod._measure_mod.__file__!r}, run_name='__main__'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'agrisat'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,  # EOF at once: the worker loop returns
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    # the worker points fd 1 at stderr (its answers go to a copy of the original stdout)
    assert out.stderr.strip().splitlines()[-1] == "[]"


def test_let_go_matrices_are_handed_back_to_the_os_when_large(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import agrisat.zonal.chunks as chunks_mod

    trims: list[int] = []
    monkeypatch.setattr(chunks_mod, "trim_heap", lambda: trims.append(1) or True)
    farms, grid = _farms(), _grid()
    ny, nx = grid.shape.y, grid.shape.x
    yb, xb = np.arange(0, ny + 1, BLOCK), np.arange(0, nx + 1, BLOCK)
    try:
        monkeypatch.setattr(chunks_mod, "_TRIM_BYTES", 1 << 40)  # tiny zone: not worth a trim
        _split_by_chunk(coverage_weights(farms, grid, block=BLOCK, processes=1), yb, xb)
        assert trims == []
        monkeypatch.setattr(chunks_mod, "_TRIM_BYTES", 1)
        w = coverage_weights(farms, grid, block=BLOCK, processes=1)
        _split_by_chunk(w, yb, xb)
        assert trims == [1]
        _split_by_chunk(w, yb, xb)  # the same split again: cached, nothing more to free
        assert trims == [1]
    finally:
        release_zone()


@pytest.mark.parametrize(
    ("cpus", "processes", "expected"),
    [
        (4, 0, 3),  # a worker per other CPU
        (2, 0, 1),
        (1, 0, 0),  # one CPU: measured here
        (4, 3, 2),  # an explicit count is taken as given
        (4, 1, 0),
    ],
)
def test_auto_workers_one_per_cpu_whatever_the_load(
    monkeypatch: pytest.MonkeyPatch, cpus: int, processes: int, expected: int
) -> None:
    import os

    monkeypatch.setattr(weights_mod, "cpu_count", lambda: cpus)
    # a busy machine does not change the count: the run is the same whatever ran before
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    todo = [(0, (0, 1, 0, 1), np.arange(30_000), ""), (1, (0, 1, 0, 1), np.arange(30_000), "")]
    got = weights_mod._pool_workers(todo, processes=processes, pool_min_farms=50_000)
    assert got == expected
    assert weights_mod._pool_workers(todo, processes=processes, pool_min_farms=60_001) == 0


def test_job_folders_of_killed_runs_are_removed_and_live_ones_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the job files hold farm polygons: a run killed outright must not leave them for good
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"agrisat-weights-{dead.pid}-abc"
    (stale / "sub").mkdir(parents=True)
    (stale / "job-0").write_bytes(b"polygons")
    alive = tmp_path / f"agrisat-weights-{os.getppid()}-def"  # our parent: alive
    alive.mkdir()
    other = tmp_path / "agrisat-weights-notapid"
    other.mkdir()
    farms, grid = _farms(), _grid()
    here = coverage_weights(farms, grid, block=BLOCK, processes=1)
    pooled = coverage_weights(farms, grid, block=BLOCK, processes=2, pool_min_farms=0)
    _assert_identical(pooled, here)
    assert not stale.exists()
    assert alive.is_dir() and other.is_dir()
    # and this run's own folder is gone with it
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name])
