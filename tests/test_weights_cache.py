"""The coverage-weights cache: reused when nothing changed, recomputed where anything did,
never trusted when its file is damaged or belongs to another key."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import box

from agrisat.config import Settings
from agrisat.cube import grid_for
from agrisat.observations import read_observations
from agrisat.pipeline import run
from agrisat.store import Store
from agrisat.testing import SyntheticFarm, make_archive
from agrisat.zonal import WeightsCache, ZoneWeights, coverage_weights

X0, Y1, RES, EPSG = 600000.0, 4000000.0, 10.0, 32650
BLOCK = 16  # pixels: farms below sit in four different blocks, i.e. four groups


def _geoms() -> list[shapely.Geometry]:
    out = []
    for by in (0, 1):
        for bx in (0, 1):
            x = X0 + bx * BLOCK * RES + 13.3
            y = Y1 - by * BLOCK * RES - 17.1
            out.append(box(x, y - 52.4, x + 71.9, y))  # fractional edges: partial coverage
            out.append(shapely.Polygon([(x + 80, y), (x + 120, y - 5), (x + 95, y - 60)]))
    return out


def _farms(geoms: list[shapely.Geometry]) -> gpd.GeoDataFrame:
    ids = [f"f{i}" for i in range(len(geoms))]
    return gpd.GeoDataFrame({"farm_id": ids}, geometry=geoms, crs=f"EPSG:{EPSG}").to_crs(4326)


def _grid():  # type: ignore[no-untyped-def]
    return grid_for((X0, Y1 - 2 * BLOCK * RES, X0 + 2 * BLOCK * RES, Y1), EPSG)


def _dense(w: ZoneWeights) -> dict[str, np.ndarray]:
    """Farm id → its weights as a dense row over its group's window, plus the window."""
    out = {}
    for g in w.groups:
        dense = g.weights.toarray()
        for i, fid in enumerate(g.farm_ids):
            out[str(fid)] = np.r_[np.asarray(g.window, float), dense[i]]
    return out


def _assert_same(a: ZoneWeights, b: ZoneWeights) -> None:
    da, db = _dense(a), _dense(b)
    assert sorted(da) == sorted(db)
    for fid in da:
        np.testing.assert_array_equal(da[fid], db[fid])


def test_second_computation_loads_every_group_and_is_identical(
    tmp_path: Path, measured_farms: list[int]
) -> None:
    farms, grid = _farms(_geoms()), _grid()
    plain = coverage_weights(farms, grid, block=BLOCK)
    assert len(plain.groups) == 4
    measured_farms.clear()
    cache = WeightsCache(tmp_path / "w")
    first = coverage_weights(farms, grid, block=BLOCK, cache=cache)
    assert sum(measured_farms) == len(farms) and cache.misses == 4 and cache.hits == 0
    assert len(list((tmp_path / "w").glob("*.npz"))) == 4
    measured_farms.clear()
    cache2 = WeightsCache(tmp_path / "w")
    second = coverage_weights(farms, grid, block=BLOCK, cache=cache2)
    assert measured_farms == []  # exactextract not called at all
    assert cache2.hits == 4 and cache2.misses == 0
    _assert_same(first, plain)
    _assert_same(second, plain)
    for g1, g2 in zip(first.groups, second.groups, strict=True):
        np.testing.assert_array_equal(g1.total, g2.total)


def test_a_changed_farm_recomputes_only_its_group(
    tmp_path: Path, measured_farms: list[int]
) -> None:
    geoms = _geoms()
    grid = _grid()
    cache = WeightsCache(tmp_path / "w")
    coverage_weights(_farms(geoms), grid, block=BLOCK, cache=cache)
    moved = list(geoms)
    moved[5] = shapely.affinity.translate(geoms[5], 3.7, -2.1)  # same group, new shape
    measured_farms.clear()
    cache = WeightsCache(tmp_path / "w")
    got = coverage_weights(_farms(moved), grid, block=BLOCK, cache=cache)
    assert cache.misses == 1 and cache.hits == 3
    assert sum(measured_farms) == 2  # the changed farm's group: itself and its neighbour
    _assert_same(got, coverage_weights(_farms(moved), grid, block=BLOCK))
    # a renamed farm (same geometry) is a change too: ids are part of the key
    renamed = _farms(geoms)
    renamed.loc[0, "farm_id"] = "other"
    cache = WeightsCache(tmp_path / "w")
    got = coverage_weights(renamed, grid, block=BLOCK, cache=cache)
    assert cache.misses == 1 and cache.hits == 3
    assert "other" in set(got.farm_ids)


def test_a_grown_grid_still_finds_unchanged_groups(tmp_path: Path) -> None:
    farms = _farms(_geoms())
    cache = WeightsCache(tmp_path / "w")
    small = coverage_weights(farms, _grid(), block=BLOCK, cache=cache)
    # the grid reaches 2 blocks further left and down: windows keep their place on the ground
    big = grid_for((X0 - 2 * BLOCK * RES, Y1 - 4 * BLOCK * RES, X0 + 2 * BLOCK * RES, Y1), EPSG)
    cache = WeightsCache(tmp_path / "w")
    moved = coverage_weights(farms, big, block=BLOCK, cache=cache)
    assert cache.hits == 4 and cache.misses == 0
    for a, b in zip(small.groups, moved.groups, strict=True):
        assert (b.window[0] - a.window[0], b.window[2] - a.window[2]) == (0, 2 * BLOCK)
        assert (a.weights != b.weights).nnz == 0


@pytest.mark.parametrize(
    "damage", ["truncate", "garbage", "flipped_byte", "other_key", "bad_values"]
)
def test_a_damaged_cache_file_is_recomputed_with_a_log_line(
    tmp_path: Path, measured_farms: list[int], caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    farms, grid = _farms(_geoms()), _grid()
    folder = tmp_path / "w"
    good = coverage_weights(farms, grid, block=BLOCK, cache=WeightsCache(folder))
    files = sorted(folder.glob("*.npz"))
    victim = files[0]
    if damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:200])
    elif damage == "garbage":
        victim.write_bytes(b"\x00" * 1000)
    elif damage == "flipped_byte":  # a torn write: the zip CRC of the member no longer matches
        raw = bytearray(victim.read_bytes())
        with np.load(victim) as z:
            data = z["data"]
        at = bytes(raw).find(data.tobytes()) + data.nbytes // 2
        raw[at] ^= 0x40
        victim.write_bytes(bytes(raw))
    elif damage == "other_key":  # another group's (valid) file under this name
        victim.write_bytes(files[1].read_bytes())
    else:  # a well-formed file whose coverage fractions are impossible
        with np.load(victim) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["data"] = arrays["data"] * 7.0
        np.savez(victim, **arrays)
    measured_farms.clear()
    cache = WeightsCache(folder)
    with caplog.at_level(logging.WARNING, logger="agrisat.zonal.cache"):
        again = coverage_weights(farms, grid, block=BLOCK, cache=cache)
    assert cache.misses == 1 and cache.hits == 3
    assert len(measured_farms) == 1  # only the damaged group was measured again
    assert any(
        victim.name in r.getMessage() and "recomput" in r.getMessage() for r in caplog.records
    )
    _assert_same(again, good)
    # the file was rewritten: a third pass loads everything
    cache = WeightsCache(folder)
    coverage_weights(farms, grid, block=BLOCK, cache=cache)
    assert cache.hits == 4


def test_prune_deletes_only_files_unused_for_long(tmp_path: Path) -> None:
    import os
    import time

    farms, grid = _farms(_geoms()), _grid()
    cache = WeightsCache(tmp_path / "w")
    coverage_weights(farms, grid, block=BLOCK, cache=cache)
    files = sorted((tmp_path / "w").glob("*.npz"))
    old = time.time() - 40 * 86400
    os.utime(files[0], (old, old))
    assert cache.prune(max_age_days=14) == 1
    assert sorted((tmp_path / "w").glob("*.npz")) == files[1:]
    # loading a file marks it used
    os.utime(files[1], (old, old))
    coverage_weights(farms, grid, block=BLOCK, cache=WeightsCache(tmp_path / "w"))
    assert cache.prune(max_age_days=14) == 0


def test_pipeline_night_after_night_reuses_the_weights(
    tmp_path: Path, measured_farms: list[int]
) -> None:
    x0, y0 = 600000.0, 4040000.0
    a = {"red": 0.05, "nir": 0.45, "green": 0.08, "blue": 0.04, "swir16": 0.20}
    farms = [
        SyntheticFarm("F1", box(x0 + 43, y0 - 137, x0 + 141, y0 - 41), a),
        SyntheticFarm("F2", box(x0 + 203, y0 - 297, x0 + 283, y0 - 238), a, crop="maize"),
    ]
    dates = ["2026-04-01", "2026-04-06", "2026-04-11"]
    arc = make_archive(tmp_path / "arc", farms, dates=dates)
    s = Settings().replace("run", indices=("ndvi",))
    inc = tmp_path / "inc"
    run(arc.book, str(arc.catalog), inc, settings=s.replace("run", end=dates[0]), detect=False)
    assert sum(measured_farms) == 2
    assert list(Store(inc).weights_cache_dir.glob("*.npz"))
    measured_farms.clear()
    for day in dates[1:]:
        r = run(arc.book, str(arc.catalog), inc, settings=s.replace("run", end=day), detect=False)
        assert r.items_ingested == 1
    assert measured_farms == []  # later nights measured no farm again
    one = tmp_path / "one"
    run(arc.book, str(arc.catalog), one, settings=s.replace("run", end=dates[-1]), detect=False)
    pd.testing.assert_frame_equal(read_observations(inc), read_observations(one))


def test_an_unchanged_book_is_not_rewritten_a_changed_one_is(tmp_path: Path) -> None:
    x0, y0 = 600000.0, 4040000.0
    a = {"red": 0.05, "nir": 0.45, "green": 0.08, "blue": 0.04, "swir16": 0.20}
    farms = [SyntheticFarm("F1", box(x0 + 43, y0 - 137, x0 + 141, y0 - 41), a)]
    arc = make_archive(tmp_path / "arc", farms, dates=["2026-04-01"])
    wd = tmp_path / "wd"
    run(arc.book, str(arc.catalog), wd, detect=False)
    store = Store(wd)
    part = store.parts("farms")
    stamp = part[0].stat().st_mtime_ns
    run(arc.book, str(arc.catalog), wd, detect=False)
    assert store.parts("farms") == part and part[0].stat().st_mtime_ns == stamp
    book = gpd.read_file(arc.book)
    book.loc[0, "exposure"] = float(book.loc[0, "exposure"]) + 1.0
    changed = tmp_path / "book2.gpkg"
    book.to_file(changed)
    run(changed, str(arc.catalog), wd, detect=False)
    stored = store.read("farms")
    assert store.parts("farms") != part
    assert float(stored.loc[0, "exposure"]) == float(book.loc[0, "exposure"])
