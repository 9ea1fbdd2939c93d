"""The direct windowed reader: the same arrays as the odc-stac path, odc-stac kept for the rest.

Every comparison is against :func:`agrisat.stack.prepared_stack` (odc-stac) on the same items
and grid, never against numbers this module computes.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import pytest
from affine import Affine
from shapely.geometry import box

from agrisat.catalog import find_scenes
from agrisat.config import CubeSettings, Settings, load_settings
from agrisat.cube import grid_for
from agrisat.errors import SceneError
from agrisat.observations import read_observations
from agrisat.pipeline import gdal_options, run
from agrisat.pixels import direct_source
from agrisat.reader import RasterioReader, close_handles
from agrisat.stack import prepared_stack
from agrisat.testing import SyntheticFarm, make_archive, write_cog
from agrisat.zonal import coverage_weights, release_zone, zonal_stats_stack

X0, Y0 = 600000.0, 4040000.0
WORLD = (-180.0, -90.0, 180.0, 90.0)
DAYS = ["2026-05-01", "2026-05-06", "2026-05-11", "2026-05-16", "2026-05-21"]
GDAL = gdal_options(Settings())


def _farms(n: int, *, seed: int = 3, dx: float = 0.0, dy: float = 0.0) -> list[SyntheticFarm]:
    rng = np.random.default_rng(seed)
    return [
        SyntheticFarm(
            f"F{i}",
            box(X0 + dx + 30 * i, Y0 + dy - 30 * i - 50, X0 + dx + 30 * i + 70, Y0 + dy - 30 * i),
            {
                "red": float(rng.uniform(0.03, 0.1)),
                "nir": float(rng.uniform(0.2, 0.5)),
                "swir16": float(rng.uniform(0.1, 0.3)),
            },
        )
        for i in range(n)
    ]


def _scl(days: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for k, d in enumerate(days):
        scl = np.full((20, 20), 4, np.uint8)
        scl[3 + k : 9 + k, 5:12] = 9  # a cloud that moves
        scl[12:15, 2 + k : 6 + k] = 6  # water
        scl[0, 0] = 0  # no data
        out[d] = scl
    return out


def _items(root: Path, farms: list[SyntheticFarm], days: list[str], **kw: Any) -> list[pystac.Item]:
    arc = make_archive(root, farms, dates=days, **kw)
    return find_scenes(str(arc.catalog), bbox=WORLD)


def _both(
    items: list[pystac.Item], grid: Any, indices: list[str], *, chunk: int = 16, tc: int = 1
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    settings = CubeSettings(chunk_size=chunk)
    src = direct_source(items, grid, indices=indices, settings=settings, time_chunk=tc, gdal=GDAL)
    assert src is not None, "the direct path should apply to items on the zone grid"
    fast, names = src.stack(), src.names
    slow, slow_names = prepared_stack(
        items, grid, indices=indices, settings=settings, time_chunk=tc
    )
    assert names == slow_names
    assert fast.chunks == slow.chunks  # the zonal stage sees the same chunk grid
    a, b = dask.compute(fast, slow)
    return a, b, names


@pytest.fixture(scope="module")
def archive_items(tmp_path_factory: pytest.TempPathFactory) -> list[pystac.Item]:
    root = tmp_path_factory.mktemp("reader")
    nodata = {DAYS[2]: np.zeros((40, 40), bool)}
    nodata[DAYS[2]][30:, :7] = True  # a scene edge inside the tile
    conv = {d: ("legacy" if k % 2 else "earthsearch_v1") for k, d in enumerate(DAYS)}
    return _items(root, _farms(8), DAYS, scl=_scl(DAYS), nodata=nodata, convention=conv)


@pytest.mark.parametrize("tc", [1, 4])
def test_equal_to_odc_stac_with_20m_bands_scl_and_edges(
    archive_items: list[pystac.Item], tc: int
) -> None:
    items = archive_items
    offsets = {float(it.assets["red"].extra_fields["agrisat:offset"]) for it in items}
    assert len(offsets) == 2  # per-item offsets really differ (-0.1 and 0)
    # the grid reaches 200 m left and 100 m above the tile and past its other edges: edge
    # chunks, partial overlap and chunks wholly outside (nodata)
    grid = grid_for((X0 - 200, Y0 - 610, X0 + 510, Y0 + 100), 32650)  # 71 x 71: odd edges
    a, b, names = _both(items, grid, ["ndvi", "ndmi"], tc=tc)
    np.testing.assert_array_equal(a, b)  # NaN where both are NaN
    assert np.isnan(a[names.index("ndvi")]).any() and np.nanmax(a[names.index("ndvi")]) > 0.4
    assert a[names.index("water")].max() == 1.0 and a[names.index("valid")].min() == 0.0


def test_equal_to_odc_stac_on_two_tiles_60_m_apart(tmp_path: Path) -> None:
    one = _items(tmp_path / "a", _farms(4), DAYS[:2], scl=_scl(DAYS[:2]))
    two = _items(
        tmp_path / "b",
        _farms(4, seed=5, dx=60, dy=-60),
        DAYS[1:3],
        origin=(X0 + 60, Y0 - 60),
        tile="50SQG",
        scl=_scl(DAYS[1:3]),
    )
    items = one + two
    assert len({it.id for it in items}) == 4
    grid = grid_for((X0 - 20, Y0 - 480, X0 + 480, Y0 + 20), 32650)
    a, b, _ = _both(items, grid, ["ndvi", "ndmi"], chunk=32, tc=2)
    np.testing.assert_array_equal(a, b)


def test_misaligned_grid_or_other_crs_fall_back(tmp_path: Path) -> None:
    grid = grid_for((X0, Y0 - 400, X0 + 400, Y0), 32650)
    settings = CubeSettings(chunk_size=16)
    shifted = _items(tmp_path / "s", _farms(2), DAYS[:1], origin=(X0 + 5, Y0))
    assert direct_source(shifted, grid, indices=["ndvi"], settings=settings) is None
    other = _items(tmp_path / "o", _farms(2), DAYS[:1], epsg=32651)
    assert direct_source(other, grid, indices=["ndvi"], settings=settings) is None
    # 20 m bands whose pixels straddle the zone grid's 2 x 2 blocks (origin 10 m off): the
    # 10 m bands alone would do (ndvi), ndmi needs swir16 and so falls back
    odd = _items(tmp_path / "d", _farms(2), DAYS[:1], origin=(X0 + 10, Y0))
    assert direct_source(odd, grid, indices=["ndmi"], settings=settings) is None
    assert direct_source(odd, grid, indices=["ndvi"], settings=settings) is None  # SCL is 20 m


def test_corrupt_or_missing_cog_is_a_scene_error_naming_the_item(tmp_path: Path) -> None:
    items = _items(tmp_path, _farms(2), DAYS[:2])
    grid = grid_for((X0, Y0 - 400, X0 + 400, Y0), 32650)
    settings = CubeSettings(chunk_size=16)
    red = Path(items[0].assets["red"].href)
    data = red.read_bytes()
    red.write_bytes(data[: len(data) // 2])  # truncated: the header is there, tiles are not
    src = direct_source(items, grid, indices=["ndvi"], settings=settings, gdal=GDAL)
    assert src is not None
    with pytest.raises(SceneError, match=items[0].id) as info:
        dask.compute(src.stack())
    assert "red" in str(info.value) and "Traceback" not in str(info.value)
    os.remove(items[1].assets["nir"].href)
    src = direct_source(items[1:], grid, indices=["ndvi"], settings=settings, gdal=GDAL)
    assert src is not None
    with pytest.raises(SceneError, match=items[1].id):
        dask.compute(src.stack())


def test_a_file_off_its_declared_grid_is_a_scene_error(tmp_path: Path) -> None:
    # the item says the red band starts 60 m further east than the file does: the window
    # computed from the metadata would read the wrong pixels, so the read refuses it
    items = _items(tmp_path, _farms(2), DAYS[:2])
    grid = grid_for((X0, Y0 - 400, X0 + 400, Y0), 32650)
    settings = CubeSettings(chunk_size=16)
    asset = items[1].assets["red"]
    t = list(asset.extra_fields["proj:transform"])
    t[2] += 60.0
    asset.extra_fields["proj:transform"] = t
    src = direct_source(items, grid, indices=["ndvi"], settings=settings, gdal=GDAL)
    assert src is not None  # still on the zone grid by its metadata
    with pytest.raises(SceneError, match=items[1].id) as info:
        dask.compute(src.stack())
    assert "proj:transform" in str(info.value) and "'red'" in str(info.value)
    close_handles()


def test_a_float_band_is_a_scene_error_not_nodata(tmp_path: Path) -> None:
    # a band rewritten as 0-1 float reflectance on the same grid: read as uint16 DN every
    # value would become 0 (nodata) and a clear scene would silently count as no data
    import rasterio

    items = _items(tmp_path, _farms(2), DAYS[:2])
    grid = grid_for((X0, Y0 - 400, X0 + 400, Y0), 32650)
    nir = Path(items[1].assets["nir"].href)
    with rasterio.open(nir) as src:
        profile, dn = src.profile, src.read(1)
    profile.update(dtype="float32", nodata=None)
    nir.unlink()
    with rasterio.open(nir, "w", **profile) as dst:
        dst.write((dn * 1e-4).astype("float32"), 1)
    src = direct_source(items, grid, indices=["ndvi"], settings=CubeSettings(chunk_size=16))
    assert src is not None
    with pytest.raises(SceneError, match=items[1].id) as info:
        dask.compute(src.stack())
    assert "'nir'" in str(info.value) and "float32" in str(info.value)
    close_handles()


class CountingReader(RasterioReader):
    """Records each (href, window) it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[tuple[str, tuple[int, int, int, int]]] = Counter()
        self.lock = threading.Lock()

    def read(
        self,
        href: str,
        window: tuple[int, int, int, int],
        *,
        gdal: Mapping[str, Any],
        grid: tuple[float, float, float] | None = None,
    ) -> np.ndarray:
        with self.lock:
            self.calls[href, window] += 1
        return super().read(href, window, gdal=gdal, grid=grid)


@pytest.mark.parametrize("fused", [True, False])
def test_each_chunk_read_once_per_date_and_band_and_only_under_farms(
    tmp_path: Path, fused: bool
) -> None:
    # two farms in the top-left 16 x 16 chunk of a 4 x 4 chunk grid: no other chunk is read
    farms = [
        SyntheticFarm("A", box(X0 + 20, Y0 - 60, X0 + 80, Y0 - 20), {"red": 0.05, "nir": 0.4}),
        SyntheticFarm("B", box(X0 + 90, Y0 - 150, X0 + 140, Y0 - 100), {"red": 0.08, "nir": 0.3}),
    ]
    arc = make_archive(tmp_path, farms, dates=DAYS[:3], shape=(64, 64))
    items = find_scenes(str(arc.catalog), bbox=WORLD)
    grid = grid_for((X0, Y0 - 640, X0 + 640, Y0), 32650)
    settings = CubeSettings(chunk_size=16)
    reader = CountingReader()
    src = direct_source(items, grid, indices=["ndvi"], settings=settings, gdal=GDAL, reader=reader)
    assert src is not None
    book = gpd.read_file(arc.book)
    weights = coverage_weights(book, grid, block=16)
    try:
        parts = zonal_stats_stack(
            src if fused else src.stack(),
            weights,
            indices=["ndvi"],
            item_ids=[i.id for i in items],
            days=DAYS[:3],
        )
        frames = dask.compute(*parts)
    finally:
        release_zone()
    obs = pd.concat(frames)
    assert len(obs) == 6 and (obs["status"] == "ok").all()
    assert max(reader.calls.values()) == 1  # each (asset, window) read once
    # 3 dates x (red, nir at 10 m, SCL at 20 m) for the one chunk under the farms
    assert len(reader.calls) == 9
    windows = {w for _, w in reader.calls}
    assert windows == {(0, 16, 0, 16), (0, 8, 0, 8)}


def test_handles_are_not_reused_by_a_later_reader(tmp_path: Path) -> None:
    """A file replaced between runs (a scene retried) is read anew, not from an open handle."""
    path = tmp_path / "b.tif"
    t = Affine(10, 0, X0, 0, -10, Y0)
    write_cog(path, np.full((32, 32), 7, np.uint16), transform=t, crs=32650)
    first = RasterioReader()
    assert (first.read(str(path), (0, 4, 0, 4), gdal=GDAL) == 7).all()
    fresh = tmp_path / "new.tif"
    write_cog(fresh, np.full((32, 32), 9, np.uint16), transform=t, crs=32650)
    os.replace(fresh, path)
    assert (RasterioReader().read(str(path), (0, 4, 0, 4), gdal=GDAL) == 9).all()
    # the end of a run closes every thread's handles: the same reader then opens anew too
    assert close_handles() >= 1 and close_handles() == 0
    write_cog(fresh, np.full((32, 32), 5, np.uint16), transform=t, crs=32650)
    os.replace(fresh, path)
    assert (first.read(str(path), (0, 4, 0, 4), gdal=GDAL) == 5).all()
    # outside the raster: zeros, and only the overlap is taken from the file
    got = RasterioReader().read(str(path), (-2, 2, 30, 34), gdal=GDAL)
    np.testing.assert_array_equal(got, np.pad(np.full((2, 2), 5), ((2, 0), (0, 2))))


def test_run_with_and_without_the_direct_reader_gives_the_same_observations(
    tmp_path: Path,
) -> None:
    arc = make_archive(tmp_path / "a", _farms(6), dates=DAYS[:3], scl=_scl(DAYS[:3]))
    base = Settings().replace("run", indices=("ndvi", "ndmi"))
    out = {}
    for direct in (True, False):
        settings = base.replace("cube", direct_read=direct)
        result = run(
            arc.book, str(arc.catalog), tmp_path / f"w{direct}", settings=settings, detect=False
        )
        assert result.exit_code == 0
        out[direct] = read_observations(tmp_path / f"w{direct}")
    assert len(out[True]) == 18
    pd.testing.assert_frame_equal(out[True], out[False])


def test_direct_read_can_be_switched_off_in_toml(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text("[cube]\ndirect_read = false\n", encoding="utf-8")
    assert load_settings(toml).cube.direct_read is False
    assert Settings().cube.direct_read is True
