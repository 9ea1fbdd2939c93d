"""The zone grid: aligned to the tiles' pixels and, when asked, to their COG blocks; the
coarse (20 m) read path gives exactly the nearest-neighbour 10 m values."""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pytest
from shapely.geometry import box

from agrisat.catalog import find_scenes
from agrisat.config import CubeSettings
from agrisat.cube import grid_anchor, grid_for, load_cube
from agrisat.stack import prepared_stack
from agrisat.testing import SyntheticFarm, make_archive

X0, Y0 = 600000.0, 4040000.0


def test_grid_for_snaps_to_pixels_and_blocks() -> None:
    g = grid_for((600013.0, 4039007.0, 600991.0, 4039995.0), 32650)
    a = g.affine
    assert a.c == 600010.0 and a.f == 4040000.0  # outward to the 10 m lattice
    assert g.shape.x == 99 and g.shape.y == 100
    # anchored on a tile origin with 512-pixel blocks: the corner moves out to a block edge
    anchored = grid_for(
        (605200.0, 4030000.0, 606000.0, 4034000.0), 32650, anchor=(600000.0, 4040000.0), block=512
    )
    b = anchored.affine
    assert (b.c - 600000.0) % 5120 == 0 and (4040000.0 - b.f) % 5120 == 0
    assert b.c <= 605200.0 and b.f >= 4034000.0  # still covers the bounds
    assert b.c + anchored.shape.x * 10 >= 606000.0 and b.f - anchored.shape.y * 10 <= 4030000.0


def test_grid_anchor_reads_the_items_grid(tmp_path: Path) -> None:
    farm = SyntheticFarm("F1", box(X0 + 40, Y0 - 140, X0 + 140, Y0 - 40), {"red": 0.05, "nir": 0.4})
    arc = make_archive(tmp_path, [farm], dates=["2026-05-01", "2026-05-06"], origin=(X0, Y0))
    items = find_scenes(str(arc.catalog), bbox=(-180, -90, 180, 90))
    assert grid_anchor(items, resolution=10.0) == pytest.approx((X0, Y0))


def test_coarse_read_path_equals_warped_nearest(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    farms = [
        SyntheticFarm(
            f"F{i}",
            box(X0 + 20 * i, Y0 - 20 * i - 40, X0 + 20 * i + 60, Y0 - 20 * i),
            {
                "red": float(rng.uniform(0.03, 0.1)),
                "nir": float(rng.uniform(0.2, 0.5)),
                "swir16": float(rng.uniform(0.1, 0.3)),
            },
        )
        for i in range(6)
    ]
    scl = np.full((20, 20), 4, np.uint8)
    scl[3:9, 5:12] = 9
    scl[12:15, 2:6] = 6
    arc = make_archive(tmp_path, farms, dates=["2026-05-01"], scl={"2026-05-01": scl})
    items = find_scenes(str(arc.catalog), bbox=(-180, -90, 180, 90))
    grid = grid_for((X0, Y0 - 400, X0 + 400, Y0), 32650)
    settings = CubeSettings(chunk_size=16)
    stack, names = prepared_stack(items, grid, indices=["ndvi", "ndmi"], settings=settings)
    cube = load_cube(items, grid, bands=["red", "nir", "swir16"], settings=settings)  # warp path
    got = dask.compute(stack)[0]
    ndmi = ((cube.nir - cube.swir16) / (cube.nir + cube.swir16)).values
    clear = cube.clear.values
    np.testing.assert_array_equal(got[names.index("clear")], clear.astype(np.float32))
    np.testing.assert_array_equal(got[names.index("water")], cube.water.values.astype(np.float32))
    np.testing.assert_allclose(got[names.index("ndmi")], ndmi, rtol=0, atol=1e-6)


def test_several_dates_per_read_task_give_the_same_stack(tmp_path: Path) -> None:
    """A cluster reads several dates per task (fewer tasks); the arrays are the same."""
    farm = SyntheticFarm("F1", box(X0 + 40, Y0 - 140, X0 + 140, Y0 - 40), {"red": 0.05, "nir": 0.4})
    days = ["2026-05-01", "2026-05-06", "2026-05-11"]
    scl = {d: np.full((20, 20), 4 if k != 1 else 9, np.uint8) for k, d in enumerate(days)}
    arc = make_archive(tmp_path, [farm], dates=days, scl=scl)
    items = find_scenes(str(arc.catalog), bbox=(-180, -90, 180, 90))
    grid = grid_for((X0, Y0 - 400, X0 + 400, Y0), 32650)
    settings = CubeSettings(chunk_size=16)
    one, _ = prepared_stack(items, grid, indices=["ndvi"], settings=settings)
    two, names = prepared_stack(items, grid, indices=["ndvi"], settings=settings, time_chunk=2)
    assert one.chunks[1] == (1, 1, 1) and two.chunks[1] == (2, 1)
    a, b = dask.compute(one, two)
    np.testing.assert_array_equal(a, b)
    assert np.nanmax(b[names.index("ndvi")]) > 0.5  # the farm is there
    assert b[names.index("clear"), 1].max() == 0.0  # the cloudy date stays cloudy
