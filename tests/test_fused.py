"""The fused pixel path (agrisat.pixels): identical observations to the unfused paths.

The fused kernel computes masks, indices and per-farm sums only at the pixels under farms,
straight from the DN. Every check here compares it with the two other paths on the same
items, grid and weights — the direct reader's full-chunk layers summed by ``_chunk_sums``,
and odc-stac (``[cube] direct_read = false``) — and asks for equality, not closeness.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import pytest
import scipy.sparse as sp
import shapely
from shapely.geometry import box

from agrisat.catalog import find_scenes
from agrisat.config import CubeSettings, Settings, load_settings
from agrisat.cube import grid_for
from agrisat.errors import SceneError
from agrisat.observations import read_observations
from agrisat.pipeline import gdal_options, run
from agrisat.pixels import direct_source, fused_sums
from agrisat.stack import _prepare_block, prepared_stack
from agrisat.testing import SyntheticFarm, make_archive
from agrisat.zonal import coverage_weights, release_zone, zonal_stats_stack
from agrisat.zonal.chunks import _chunk_sums

X0, Y0 = 600000.0, 4040000.0
WORLD = (-180.0, -90.0, 180.0, 90.0)
DAYS = ["2026-05-01", "2026-05-06", "2026-05-11", "2026-05-16", "2026-05-21"]
GDAL = gdal_options(Settings())
INDICES = ["ndvi", "ndmi", "evi", "ndwi"]


def _farms(n: int, *, seed: int = 7, dx: float = 0.0, dy: float = 0.0) -> list[SyntheticFarm]:
    """Rotated plots off the pixel grid (mixed edge pixels), some across chunk edges and the
    tile's edge, one whose EVI is out of range (NaN) everywhere."""
    rng = np.random.default_rng(seed)
    farms = []
    for i in range(n):
        x, y = X0 + dx + rng.uniform(-40, 380), Y0 + dy - rng.uniform(-40, 380)
        w, h = rng.uniform(25, 90), rng.uniform(25, 90)
        geom = shapely.affinity.rotate(box(x, y - h, x + w, y), float(rng.uniform(0, 60)))
        values = {
            "blue": float(rng.uniform(0.02, 0.08)),
            "green": float(rng.uniform(0.04, 0.12)),
            "red": float(rng.uniform(0.03, 0.1)),
            "nir": float(rng.uniform(0.2, 0.5)),
            "swir16": float(rng.uniform(0.1, 0.3)),
        }
        if i == 0:  # 2.5 (nir - red) / (nir + 6 red - 7.5 blue + 1) = -2.5: outside [-1, 2.5]
            values.update(blue=0.3, red=0.01, nir=0.6)
        farms.append(SyntheticFarm(f"F{i:02d}", geom, values))
    return farms


def _scl(days: list[str], size: int = 20) -> dict[str, np.ndarray]:
    out = {}
    for k, d in enumerate(days):
        scl = np.full((size, size), 4, np.uint8)
        scl[3 + k : 9 + k, 5:12] = 9  # a cloud that moves
        scl[12:15, 2 + k : 6 + k] = 6  # water
        scl[16:18, 10:14] = 3  # cloud shadow
        scl[0, 0] = 0  # no data
        out[d] = scl
    return out


def _items(root: Path, farms: list[SyntheticFarm], days: list[str], **kw: Any) -> Any:
    arc = make_archive(root, farms, dates=days, **kw)
    return arc, find_scenes(str(arc.catalog), bbox=WORLD)


def _observations(
    items: list[pystac.Item],
    grid: Any,
    book: gpd.GeoDataFrame,
    *,
    path: str,
    chunk: int = 16,
    tc: int = 1,
) -> pd.DataFrame:
    """Observations by one path: "fused", "unfused" (direct reader's layers) or "odc"."""
    settings = CubeSettings(chunk_size=chunk)
    weights = coverage_weights(book, grid, block=chunk)
    pixels: Any
    if path == "odc":
        pixels = prepared_stack(items, grid, indices=INDICES, settings=settings, time_chunk=tc)[0]
    else:
        src = direct_source(
            items, grid, indices=INDICES, settings=settings, time_chunk=tc, gdal=GDAL
        )
        assert src is not None, "the direct path should apply to items on the zone grid"
        pixels = src if path == "fused" else src.stack()
    try:
        parts = zonal_stats_stack(
            pixels,
            weights,
            indices=INDICES,
            item_ids=[i.id for i in items],
            days=[str(i.datetime.date()) for i in items],
        )
        frames = dask.compute(*parts)
    finally:
        release_zone()
    return pd.concat(frames).sort_values(["farm_id", "item_id"]).reset_index(drop=True)


def _assert_three_equal(items: list[pystac.Item], grid: Any, book: Any, **kw: Any) -> Any:
    fused = _observations(items, grid, book, path="fused", **kw)
    unfused = _observations(items, grid, book, path="unfused", **kw)
    odc = _observations(items, grid, book, path="odc", **kw)
    pd.testing.assert_frame_equal(fused, unfused, check_exact=True)
    pd.testing.assert_frame_equal(fused, odc, check_exact=True)
    return fused


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[pystac.Item]]:
    root = tmp_path_factory.mktemp("fused")
    nodata = {DAYS[2]: np.zeros((40, 40), bool)}
    nodata[DAYS[2]][25:, :9] = True  # a scene edge inside the tile, odd 10 m columns
    conv = {d: ("legacy" if k % 2 else "earthsearch_v1") for k, d in enumerate(DAYS)}
    return _items(root, _farms(14), DAYS, scl=_scl(DAYS), nodata=nodata, convention=conv)


@pytest.mark.parametrize("tc", [1, 4])
def test_fused_equals_unfused_and_odc_stac(archive: Any, tc: int) -> None:
    arc, items = archive
    book = gpd.read_file(arc.book)
    # the grid reaches past the tile on every side and its size is odd: edge chunks with
    # partial windows, 20 m windows cut at odd columns, chunks wholly outside the tile
    grid = grid_for((X0 - 200, Y0 - 610, X0 + 510, Y0 + 100), 32650)
    obs = _assert_three_equal(items, grid, book, tc=tc)
    # the cases the comparison is meant to cover really occur
    assert len(obs) == 14 * len(DAYS)
    assert {"ok", "cloudy"} <= set(obs["status"])
    assert (obs["water_fraction"] > 0).any()
    # F00's own pixels have EVI -2.5, out of range (NaN): only its mixed edge pixels count
    assert obs.loc[obs["farm_id"] == "F00", "evi_mean"].between(-1, 2.5).all()
    assert (obs["ndvi_std"] > 1e-3).any()  # mixed edge pixels: not constant fields
    geoms = book.to_crs(32650).geometry
    assert geoms.intersects(box(X0, Y0 - 400, X0 + 90, Y0 - 250)).any()  # the nodata edge
    assert (~geoms.within(box(X0, Y0 - 400, X0 + 400, Y0))).any()  # past the tile's edge
    assert geoms.intersects(box(X0 + 155, Y0 - 400, X0 + 165, Y0)).any()  # across chunks


def test_fused_equals_others_on_two_tiles_60_m_apart(tmp_path: Path) -> None:
    arc_a, one = _items(tmp_path / "a", _farms(6), DAYS[:2], scl=_scl(DAYS[:2]))
    arc_b, two = _items(
        tmp_path / "b",
        _farms(6, seed=5, dx=60, dy=-60),
        DAYS[1:3],
        origin=(X0 + 60, Y0 - 60),
        tile="50SQG",
        scl=_scl(DAYS[1:3]),
    )
    items = one + two
    book = pd.concat(
        [
            gpd.read_file(arc_a.book),
            gpd.read_file(arc_b.book).assign(farm_id=lambda d: "B" + d["farm_id"]),
        ]
    )
    grid = grid_for((X0 - 60, Y0 - 520, X0 + 520, Y0 + 60), 32650)
    for tc in (1, 4):
        obs = _assert_three_equal(items, grid, book, chunk=32, tc=tc)
        assert len(obs) == 12 * 4 and (obs["status"] == "ok").any()


@pytest.mark.parametrize("t", [1, 3])
def test_kernel_equals_prepare_block_then_chunk_sums_on_random_dn(t: int) -> None:
    # a partial chunk at the grid's edge: 13 x 11 fine pixels, 7 x 6 coarse ones
    rng = np.random.default_rng(t)
    h, w = 13, 11
    bands = ("blue", "green", "red", "nir", "swir16")
    factors = (1, 1, 1, 1, 2, 2)  # swir16 and SCL at 20 m
    shapes = [(h, w) if f == 1 else (-(-h // 2), -(-w // 2)) for f in factors]
    dn = [rng.integers(0, 4000, (t, *s)).astype(np.uint16) for s in shapes[:-1]]
    for d in dn:
        d[rng.uniform(size=d.shape) < 0.1] = 0  # nodata pixels
    dn[2][:, 0, :3] = 1000  # with offset -0.1: reflectance 0 for red and nir, 0 / 0 = NaN
    dn[3][:, 0, :3] = 1000
    dn.append(rng.integers(0, 12, (t, *shapes[-1])).astype(np.uint16))  # every SCL class
    scale = np.full((len(bands), t), 1e-4, np.float32)
    offset = np.where(rng.uniform(size=(len(bands), t)) < 0.5, -0.1, 0.0).astype(np.float32)
    offset[:, 0] = -0.1
    kw: dict[str, Any] = {
        "bands": bands,
        "has_scl": True,
        "indices": tuple(INDICES),
        "not_clear": (0, 1, 3, 8, 9, 10, 11),
        "water_class": 6,
        "factors": factors,
    }
    cols = np.sort(rng.choice(h * w, size=90, replace=False)).astype(np.int32)
    coarse = ((cols // w // 2) * ((w + 1) // 2) + (cols % w) // 2).astype(np.int32)
    mat = sp.random(9, len(cols), density=0.3, random_state=1, format="csr")
    block = _prepare_block(scale, offset, *dn, **kw)
    expected = _chunk_sums((cols, coarse, mat), len(INDICES), block)
    got = fused_sums((cols, coarse, mat), scale, offset, *dn, **kw)
    assert got.shape == (t, 9, 3 + 3 * len(INDICES))
    assert np.array_equal(got, expected)
    assert (expected[..., 3] > 0).any() and (expected[..., 3] < expected[..., 1]).any()


def test_run_with_and_without_fused_sums_gives_the_same_observations(tmp_path: Path) -> None:
    arc = make_archive(tmp_path / "a", _farms(6), dates=DAYS[:3], scl=_scl(DAYS[:3]))
    base = Settings().replace("run", indices=("ndvi", "evi"))
    out = {}
    for fused in (True, False):
        settings = base.replace("cube", fused_sums=fused)
        result = run(
            arc.book, str(arc.catalog), tmp_path / f"w{fused}", settings=settings, detect=False
        )
        assert result.exit_code == 0
        out[fused] = read_observations(tmp_path / f"w{fused}")
    assert len(out[True]) == 18
    pd.testing.assert_frame_equal(out[True], out[False], check_exact=True)


def test_fused_sums_can_be_switched_off_in_toml(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text("[cube]\nfused_sums = false\n", encoding="utf-8")
    assert load_settings(toml).cube.fused_sums is False
    assert Settings().cube.fused_sums is True


def test_a_failed_read_in_the_fused_task_is_a_scene_error(tmp_path: Path) -> None:
    arc, items = _items(tmp_path, _farms(4), DAYS[:2])
    nir = Path(items[1].assets["nir"].href)
    data = nir.read_bytes()
    nir.write_bytes(data[: len(data) // 2])  # truncated: the header is there, tiles are not
    grid = grid_for((X0, Y0 - 400, X0 + 400, Y0), 32650)
    with pytest.raises(SceneError, match=items[1].id) as info:
        _observations(items, grid, gpd.read_file(arc.book), path="fused")
    assert "'nir'" in str(info.value)
