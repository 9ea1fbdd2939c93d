"""Zonal statistics against references computed independently (by hand, or with shapely)."""

from __future__ import annotations

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr

from agrisat.config import ZonalSettings
from agrisat.cube import grid_for
from agrisat.zonal import assign_zones, coverage_weights, resolve_same_day, zonal_stats

X0, Y1, RES = 600000.0, 4000000.0, 10.0
H, W = 40, 50
EPSG = 32650


def _cube(
    ndvi: np.ndarray,
    clear: np.ndarray,
    water: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> xr.Dataset:
    """An in-memory cube shaped like load_cube's output (the zonal stage's input)."""
    t = ndvi.shape[0]
    valid = np.ones_like(clear) if valid is None else valid
    water = np.zeros_like(clear) if water is None else water
    coords = {
        "time": pd.date_range("2024-05-01", periods=t, freq="5D"),
        "y": Y1 - RES * (np.arange(H) + 0.5),
        "x": X0 + RES * (np.arange(W) + 0.5),
    }
    dims = ("time", "y", "x")
    ds = xr.Dataset(
        {
            "ndvi": (dims, da.from_array(ndvi.astype("float32"), chunks=(1, 16, 16))),
            "clear": (dims, da.from_array(clear.astype(bool), chunks=(1, 16, 16))),
            "water": (dims, da.from_array(water.astype(bool), chunks=(1, 16, 16))),
            "valid": (dims, da.from_array(valid.astype(bool), chunks=(1, 16, 16))),
        },
        coords=coords,
    )
    return ds.assign_coords(item_id=("time", [f"item{i}" for i in range(t)]))


def _farms(geoms: list[shapely.Geometry]) -> gpd.GeoDataFrame:
    ids = [f"f{i}" for i in range(len(geoms))]
    return gpd.GeoDataFrame({"farm_id": ids}, geometry=geoms, crs=f"EPSG:{EPSG}").to_crs(4326)


def _run(cube: xr.Dataset, farms: gpd.GeoDataFrame, **kw) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    grid = grid_for((X0, Y1 - H * RES, X0 + W * RES, Y1), EPSG)
    weights = coverage_weights(farms, grid, block=16)
    parts = zonal_stats(cube, weights, indices=["ndvi"], **kw)
    return pd.concat(dask.compute(*parts), ignore_index=True).sort_values(["farm_id", "date"])


def _pixel_boxes() -> np.ndarray:
    rr, cc = np.mgrid[0:H, 0:W]
    return shapely.box(X0 + cc * RES, Y1 - (rr + 1) * RES, X0 + (cc + 1) * RES, Y1 - rr * RES)


def test_farm_on_pixel_edges_constant_field() -> None:
    ndvi = np.full((1, H, W), 0.2)
    ndvi[0, 10:20, 5:15] = 0.7  # the farm's 10 x 10 pixels
    clear = np.ones((1, H, W))
    farm = shapely.box(X0 + 5 * RES, Y1 - 20 * RES, X0 + 15 * RES, Y1 - 10 * RES)
    df = _run(_cube(ndvi, clear), _farms([farm]))
    row = df.iloc[0]
    assert row.ndvi_mean == pytest.approx(0.7, abs=1e-6)
    assert row.ndvi_std == pytest.approx(0.0, abs=1e-4)  # slivers from the lon/lat round trip
    assert row.clear_pixels == pytest.approx(100.0)
    assert row.clear_fraction == pytest.approx(1.0)
    assert row.status == "ok"


def test_half_cloudy_farm_is_weighted_by_clear_coverage() -> None:
    ndvi = np.zeros((1, H, W))
    ndvi[0, 10:15, 5:15] = 0.8  # upper half of the farm: clear, 0.8
    ndvi[0, 15:20, 5:15] = 0.1  # lower half: under cloud, must not count
    clear = np.ones((1, H, W))
    clear[0, 15:20, :] = 0
    farm = shapely.box(X0 + 5 * RES, Y1 - 20 * RES, X0 + 15 * RES, Y1 - 10 * RES)
    row = _run(_cube(ndvi, clear), _farms([farm])).iloc[0]
    assert row.ndvi_mean == pytest.approx(0.8, abs=1e-6)
    assert row.clear_fraction == pytest.approx(0.5)
    assert row.status == "ok"  # 0.5 is the default threshold, inclusive
    row = _run(
        _cube(ndvi, clear), _farms([farm]), settings=ZonalSettings(min_clear_fraction=0.6)
    ).iloc[0]
    assert row.status == "cloudy"
    assert row.ndvi_mean == pytest.approx(0.8, abs=1e-6)  # stats still given for the clear part


def test_irregular_small_plots_match_shapely_reference() -> None:
    rng = np.random.default_rng(42)
    ndvi = rng.uniform(0.1, 0.9, (3, H, W))
    clear = rng.uniform(size=(3, H, W)) > 0.2
    # a rotated 0.1 ha plot, a triangle and an L-shaped plot, none aligned with pixels
    rect = shapely.affinity.rotate(
        shapely.box(X0 + 103.3, Y1 - 141.7, X0 + 143.3, Y1 - 116.7), 23, origin="centroid"
    )
    tri = shapely.Polygon(
        [(X0 + 251.2, Y1 - 50.5), (X0 + 390.9, Y1 - 77.3), (X0 + 300.1, Y1 - 210.4)]
    )
    ell = shapely.Polygon(
        [
            (X0 + 20.5, Y1 - 250.2),
            (X0 + 180.2, Y1 - 250.2),
            (X0 + 180.2, Y1 - 300.7),
            (X0 + 70.4, Y1 - 300.7),
            (X0 + 70.4, Y1 - 380.3),
            (X0 + 20.5, Y1 - 380.3),
        ]
    )
    geoms = [rect, tri, ell]
    df = _run(_cube(ndvi, clear), _farms(geoms))
    boxes = _pixel_boxes()
    worst = 0.0
    for i, g in enumerate(geoms):
        # the reference uses the geometry as the pipeline sees it after the 4326 round trip
        g_utm = _farms([g]).to_crs(EPSG).geometry.iloc[0]
        cov = shapely.area(shapely.intersection(boxes, g_utm)) / RES**2
        assert cov.sum() == pytest.approx(g.area / RES**2, rel=1e-6)
        for t in range(3):
            wc = cov * clear[t]
            ref_mean = (wc * ndvi[t]).sum() / wc.sum()
            ref_std = np.sqrt((wc * (ndvi[t] - ref_mean) ** 2).sum() / wc.sum())
            row = df[(df.farm_id == f"f{i}") & (df.item_id == f"item{t}")].iloc[0]
            worst = max(worst, abs(row.ndvi_mean - ref_mean))
            assert row.ndvi_std == pytest.approx(ref_std, abs=1e-4)
            assert row.clear_fraction == pytest.approx(wc.sum() / cov.sum(), abs=1e-6)
    assert worst < 1e-4  # float32 NDVI in the cube: about 1e-7 in practice


def test_statuses_no_data_too_small_and_water() -> None:
    ndvi = np.full((2, H, W), 0.5)
    clear = np.ones((2, H, W))
    valid = np.ones((2, H, W))
    valid[1] = 0  # the second scene has no data here
    water = np.zeros((2, H, W))
    water[0, 0:5, 0:10] = 1
    big = shapely.box(X0, Y1 - 10 * RES, X0 + 10 * RES, Y1)  # half of it is water on scene 0
    tiny = shapely.box(X0 + 300, Y1 - 310, X0 + 310, Y1 - 300)  # one pixel
    df = _run(
        _cube(ndvi, clear * valid, water, valid),
        _farms([big, tiny]),
        settings=ZonalSettings(min_pixels=2.0),
    )
    b0 = df[(df.farm_id == "f0") & (df.item_id == "item0")].iloc[0]
    assert b0.water_fraction == pytest.approx(0.5)
    assert b0.status == "ok"
    assert df[(df.farm_id == "f0") & (df.item_id == "item1")].iloc[0].status == "no_data"
    assert np.isnan(df[(df.farm_id == "f0") & (df.item_id == "item1")].iloc[0].ndvi_mean)
    assert df[(df.farm_id == "f1") & (df.item_id == "item0")].iloc[0].status == "too_small"


def test_footprints_skip_items_that_miss_a_group() -> None:
    ndvi = np.full((2, H, W), 0.5)
    clear = np.ones((2, H, W))
    farm = shapely.box(X0 + 50, Y1 - 100, X0 + 100, Y1 - 50)
    inside = shapely.box(X0, Y1 - 200, X0 + 200, Y1)
    far = shapely.box(X0 + 10000, Y1 - 200, X0 + 10200, Y1)
    df = _run(_cube(ndvi, clear), _farms([farm]), footprints=[inside, far])
    assert list(df.item_id) == ["item0"]


def test_resolve_same_day_prefers_clear_look() -> None:
    df = pd.DataFrame(
        {
            "farm_id": ["a", "a", "a", "b"],
            "date": ["2024-05-01"] * 4,
            "item_id": ["t1", "t2", "t3", "t1"],
            "status": ["cloudy", "ok", "ok", "no_data"],
            "clear_pixels": [50.0, 30.0, 40.0, 0.0],
        }
    )
    out = resolve_same_day(df)
    assert list(out.item_id) == ["t3", "t1"]
    # order of input does not matter
    assert list(resolve_same_day(df.iloc[::-1]).item_id) == ["t3", "t1"]


def test_assign_zones_rule() -> None:
    # footprints: zone 50 up to 120.02E, zone 51 from 119.98E
    fp50 = shapely.box(119.0, 36.0, 120.02, 37.0)
    fp51 = shapely.box(119.98, 36.0, 121.0, 37.0)
    farms = gpd.GeoDataFrame(
        {"farm_id": ["west", "overlap_w", "overlap_e", "east", "edge", "nowhere"]},
        geometry=[
            shapely.box(119.5, 36.5, 119.501, 36.501),
            shapely.box(119.99, 36.5, 119.991, 36.501),  # both cover: centroid in zone 50
            shapely.box(120.005, 36.5, 120.006, 36.501),  # both cover: centroid in zone 51
            shapely.box(120.5, 36.5, 120.501, 36.501),
            shapely.box(120.015, 36.5, 120.025, 36.501),  # zone 50 covers only half: 51 wins
            shapely.box(130.0, 36.5, 130.001, 36.501),
        ],
        crs=4326,
    )
    zones = assign_zones(farms, {32650: fp50, 32651: fp51})
    got = {code: set(farms.farm_id.iloc[idx]) for code, idx in zones.items()}
    assert got == {32650: {"west", "overlap_w"}, 32651: {"overlap_e", "east", "edge"}}
