"""GCJ-02 / BD-09 conversion and loan books declared in them."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod

from agrisat.book import load_book
from agrisat.errors import BookError
from agrisat.gcj02 import (
    CHINA_BBOX,
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    offset_system,
    to_wgs84_geometries,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

GEOD = Geod(ellps="WGS84")

# Published WGS84 -> GCJ-02 pairs (lon, lat, gcj_lon, gcj_lat):
# - googollee/eviltransform, python/test.py, TESTS (Shanghai, Shenzhen, Beijing; given there as
#   lat, lng and checked to 6 decimals);
# - wandergis/coordtransform, README.md example: wgs84togcj02(116.404, 39.915).
FORWARD = [
    (121.5272106, 31.1774276, 121.531541859215, 31.17530398364597),
    (113.912316, 22.543847, 113.9171764808363, 22.540796131694766),
    (116.377817, 39.911954, 116.38404722455657, 39.91334545536069),
    (116.404, 39.915, 116.41024449916938, 39.91640428150164),
]
# Published inverse values (gcj_lon, gcj_lat, lon, lat). hujiulong/gcoord,
# test/unit/crs/GCJ02.spec.ts: GCJ02 -> WGS84 of (123, 45), checked there to 5 decimals; gcoord
# iterates to 1e-6 degrees, so it agrees with an exact inverse to ~1e-6.
INVERSE = [(123.0, 45.0, 122.99395597, 44.99804071)]
# GCJ-02 -> BD-09 forward (exact formula): gcoord GCJ02.spec.ts, coordtransform README.
TO_BD09 = [
    (123.0, 45.0, 123.00636499, 45.00636899),
    (116.404, 39.915, 116.41036949371029, 39.92133699351021),
]
# BD-09 -> GCJ-02 / WGS84 from references that use the closed-form approximate BD inverse
# (off by ~5 cm): coordtransform README bd09togcj02(116.404, 39.915); gcoord BD09.spec.ts.
FROM_BD09 = [
    ("gcj02", 116.404, 39.915, 116.39762729119315, 39.90865673957631),
    ("gcj02", 123.0, 45.0, 122.99363304, 44.99365430),
    ("wgs84", 123.0, 45.0, 122.98762210, 44.99171540),
]


def _metres(lon1: object, lat1: object, lon2: object, lat2: object) -> np.ndarray:
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2], dtype=float)


@pytest.mark.parametrize(("lon", "lat", "glon", "glat"), FORWARD)
def test_forward_matches_published_values(lon: float, lat: float, glon: float, glat: float) -> None:
    x, y = wgs84_to_gcj02(lon, lat)
    assert abs(float(x) - glon) < 1e-9 and abs(float(y) - glat) < 1e-9


@pytest.mark.parametrize(("lon", "lat", "glon", "glat"), FORWARD)
def test_inverse_of_published_gcj_point_is_the_wgs_point(
    lon: float, lat: float, glon: float, glat: float
) -> None:
    x, y = gcj02_to_wgs84(glon, glat)
    assert _metres(x, y, lon, lat) < 1e-3  # exact inverse: under a millimetre
    # The one-step approximation (subtract the offset taken at the GCJ point) is visibly worse,
    # which is why it is not used.
    shifted_lon, shifted_lat = wgs84_to_gcj02(glon, glat)
    one_step = (2 * glon - shifted_lon, 2 * glat - shifted_lat)
    assert _metres(*one_step, lon, lat) > 0.1  # 0.2-1.9 m on these four points


@pytest.mark.parametrize(("glon", "glat", "lon", "lat"), INVERSE)
def test_inverse_matches_published_values(glon: float, glat: float, lon: float, lat: float) -> None:
    x, y = gcj02_to_wgs84(glon, glat)
    assert abs(float(x) - lon) < 2e-6 and abs(float(y) - lat) < 2e-6


@pytest.mark.parametrize(("glon", "glat", "blon", "blat"), TO_BD09)
def test_bd09_forward_matches_published_values(
    glon: float, glat: float, blon: float, blat: float
) -> None:
    x, y = gcj02_to_bd09(glon, glat)
    assert abs(float(x) - blon) < 1e-8 and abs(float(y) - blat) < 1e-8


@pytest.mark.parametrize(("target", "blon", "blat", "lon", "lat"), FROM_BD09)
def test_bd09_inverse_is_within_the_references_approximation(
    target: str, blon: float, blat: float, lon: float, lat: float
) -> None:
    x, y = bd09_to_gcj02(blon, blat) if target == "gcj02" else bd09_to_wgs84(blon, blat)
    assert _metres(x, y, lon, lat) < 0.2
    back = gcj02_to_bd09(x, y) if target == "gcj02" else wgs84_to_bd09(x, y)
    assert _metres(*back, blon, blat) < 1e-3  # ours is exact: forward lands on the input


def test_round_trip_over_china_is_sub_millimetre() -> None:
    lon, lat = np.meshgrid(np.linspace(73.6, 134.7, 120), np.linspace(18.2, 53.5, 90))
    glon, glat = wgs84_to_gcj02(lon, lat)
    offset = _metres(lon, lat, glon, glat)
    assert offset.min() > 10 and offset.max() > 300  # the shift is real and large
    errors = _metres(lon, lat, *gcj02_to_wgs84(glon, glat))
    assert errors.max() < 1e-3, f"max round-trip error {errors.max():.2e} m"
    errors_bd = _metres(lon, lat, *bd09_to_wgs84(*wgs84_to_bd09(lon, lat)))
    assert errors_bd.max() < 1e-3, f"max BD-09 round-trip error {errors_bd.max():.2e} m"


def test_outside_china_and_nan_pass_through() -> None:
    lon = np.array([2.35, -74.0, 139.7, 116.4, np.nan, CHINA_BBOX[0] - 1e-6])
    lat = np.array([48.85, 40.7, 35.7, 56.0, 39.9, 30.0])
    for fn in (wgs84_to_gcj02, gcj02_to_wgs84, wgs84_to_bd09, bd09_to_wgs84):
        x, y = fn(lon, lat)
        np.testing.assert_array_equal(x, lon)
        np.testing.assert_array_equal(y, lat)
    x, y = wgs84_to_gcj02(lon, lat)
    assert x is not lon  # new arrays; the input is not changed in place


def test_offset_system_spellings() -> None:
    for text in ("gcj02", "GCJ-02", "gcj_02", " Gcj02 "):
        assert offset_system(text) == "gcj02"
    for text in ("bd09", "BD-09", "bd09ll"):
        assert offset_system(text) == "bd09"
    for text in ("EPSG:4326", "wgs84", "", None, 4326):
        assert offset_system(text) is None


def test_geometries_keep_structure_none_and_z() -> None:
    poly = shapely.Polygon(
        [(116.40, 39.90, 7.0), (116.41, 39.90, 7.0), (116.41, 39.91, 7.0), (116.40, 39.90, 7.0)],
        holes=[],
    )
    out = to_wgs84_geometries([poly, None])
    assert out[1] is None
    coords = shapely.get_coordinates(out[0], include_z=True)
    np.testing.assert_array_equal(coords[:, 2], 7.0)
    expect = np.column_stack(gcj02_to_wgs84(*shapely.get_coordinates(poly).T))
    np.testing.assert_allclose(coords[:, :2], expect, rtol=0, atol=1e-12)
    series = to_wgs84_geometries(gpd.GeoSeries([poly], index=[5], crs="EPSG:4326"))
    assert list(series.index) == [5] and series.crs == "EPSG:4326"
    with pytest.raises(ValueError, match="gcj02"):
        to_wgs84_geometries([poly], source="utm")


# --- loan books ------------------------------------------------------------------------------

# WGS84 truth: three ~1-3 ha plots in Shandong (Dezhou area) and one at the edge of a field.
TRUTH = [
    shapely.box(116.300, 37.400, 116.3015, 37.4010),
    shapely.box(116.320, 37.410, 116.3230, 37.4105),
    shapely.Polygon([(116.35, 37.42), (116.352, 37.42), (116.351, 37.4215)]),
]


def _forward(geom: shapely.Geometry, system: str = "gcj02") -> shapely.Geometry:
    fn = wgs84_to_gcj02 if system == "gcj02" else wgs84_to_bd09

    def apply(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(fn(xy[:, 0], xy[:, 1]))

    return shapely.transform(geom, apply)


def _frame(geoms: list[shapely.Geometry]) -> pd.DataFrame:
    n = len(geoms)
    return pd.DataFrame(
        {
            "farm_id": [f"F{i}" for i in range(n)],
            "loan_id": [f"L{i}" for i in range(n)],
            "borrower_id": [f"B{i}" for i in range(n)],
            "crop": ["winter_wheat"] * n,
            "exposure": [10000.0] * n,
            "geometry": [g.wkt for g in geoms],
        }
    )


def _max_vertex_error(farms_gdf: gpd.GeoDataFrame, truth: list[shapely.Geometry]) -> float:
    worst = 0.0
    for got, want in zip(farms_gdf.geometry, truth, strict=True):
        a, b = shapely.get_coordinates(got), shapely.get_coordinates(want)
        assert a.shape == b.shape
        worst = max(worst, float(_metres(a[:, 0], a[:, 1], b[:, 0], b[:, 1]).max()))
    return worst


def _assert_off_without_declaration(path: Path) -> None:
    plain = load_book(path)
    assert _max_vertex_error(plain.gdf, TRUTH) > 100  # read as WGS84 it lands far off


@pytest.mark.parametrize("spelling", ["gcj02", "GCJ-02"])
def test_book_with_crs_argument_lands_on_the_truth(
    tmp_path: Path, spelling: str, caplog: pytest.LogCaptureFixture
) -> None:
    gdf = gpd.GeoDataFrame(
        _frame(TRUTH).drop(columns="geometry"),
        geometry=[_forward(g) for g in TRUTH],
        crs="EPSG:4326",  # what Amap exports are labelled with
    )
    path = tmp_path / "book.gpkg"
    gdf.to_file(path)
    with caplog.at_level(logging.INFO, logger="agrisat.book"):
        farms = load_book(path, crs=spelling)
    assert len(farms) == 3 and len(farms.rejects) == 0
    assert _max_vertex_error(farms.gdf, TRUTH) < 1.0
    assert any(
        "GCJ-02" in r.getMessage() and "3 geometries" in r.getMessage() for r in caplog.records
    )
    assert not any("116.3" in r.getMessage() for r in caplog.records)  # no coordinates logged
    _assert_off_without_declaration(path)
    truth_area = gpd.GeoSeries(TRUTH, crs=4326).to_crs(32650).area.to_numpy() / 1e4
    np.testing.assert_allclose(farms.gdf["area_ha"], truth_area, rtol=1e-3)


def test_csv_with_crs_column_gcj02(tmp_path: Path) -> None:
    frame = _frame([_forward(g) for g in TRUTH])
    frame["crs"] = "gcj02"
    path = tmp_path / "book.csv"
    frame.to_csv(path, index=False)
    farms = load_book(path)
    assert len(farms) == 3
    assert _max_vertex_error(farms.gdf, TRUTH) < 1.0
    # Rejects keep the geometry as submitted (GCJ-02), not the converted one.
    frame.loc[3] = ["F0", "L9", "B9", "maize", 1.0, frame.loc[0, "geometry"], "gcj02"]
    frame.to_csv(path, index=False)
    farms = load_book(path)
    assert set(farms.rejects["geometry_wkt"]) == {frame.loc[0, "geometry"]}


def test_csv_bd09_and_per_row_coord_sys_flags(tmp_path: Path) -> None:
    frame = _frame([_forward(TRUTH[0]), _forward(TRUTH[1], "bd09"), TRUTH[2]])
    frame["Coord Sys"] = ["GCJ-02", "bd09", "wgs84"]
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)
    assert _max_vertex_error(load_book(path).gdf, TRUTH) < 1.0
    frame["Coord Sys"] = ["", "", ""]
    frame["geometry"] = [_forward(g, "bd09").wkt for g in TRUTH]
    frame.to_csv(path, index=False)
    assert _max_vertex_error(load_book(path, crs="BD-09").gdf, TRUTH) < 1.0


def test_blank_flags_beside_offset_rows_are_warned_not_silent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a blank flag is WGS84 by the documented rule; beside GCJ-02 rows it may be a forgotten
    # flag (hundreds of metres off): said, with counts only
    frame = _frame([_forward(TRUTH[0]), _forward(TRUTH[1]), TRUTH[2]])
    frame["coord_sys"] = ["gcj02", "gcj02", ""]
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="agrisat.book"):
        farms = load_book(path)
    said = [r.getMessage() for r in caplog.records if "empty while" in r.getMessage()]
    assert len(said) == 1 and "1 row(s)" in said[0] and "2 row(s)" in said[0]
    assert _max_vertex_error(farms.gdf, TRUTH) < 1.0  # the blank row read as WGS84
    caplog.clear()
    frame["coord_sys"] = ["gcj02", "gcj02", "wgs84"]  # every row says: nothing to warn
    frame.to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="agrisat.book"):
        load_book(path)
    assert not [r for r in caplog.records if "empty while" in r.getMessage()]


def test_conflicting_or_impossible_declarations_are_book_errors(tmp_path: Path) -> None:
    frame = _frame([_forward(g) for g in TRUTH])
    frame["crs"] = "gcj02"
    path = tmp_path / "book.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(BookError, match="GCJ-02 but BD-09 was given"):
        load_book(path, crs="bd09")
    frame["crs"] = ""
    frame["coord_sys"] = ["gcj02", "gcj02", "mars-ish"]
    frame.to_csv(path, index=False)
    with pytest.raises(BookError, match=r"row 3.*coord_sys.*gcj02, bd09 or wgs84"):
        load_book(path)
    frame["coord_sys"] = ["gcj02", "wgs84", ""]
    frame.to_csv(path, index=False)
    with pytest.raises(BookError, match=r"row 2.*declared GCJ-02"):
        load_book(path, crs="gcj02")
    utm = gpd.GeoDataFrame(
        _frame(TRUTH).drop(columns="geometry"), geometry=TRUTH, crs="EPSG:4326"
    ).to_crs(32650)
    upath = tmp_path / "utm.gpkg"
    utm.to_file(upath)
    with pytest.raises(BookError, match="must be EPSG:4326"):
        load_book(upath, crs="gcj02")
    utm["coord_sys"] = "gcj02"
    utm.to_file(upath)
    with pytest.raises(BookError, match="longitude/latitude only"):
        load_book(upath)


def test_swapped_gcj_rows_are_still_caught(tmp_path: Path) -> None:
    geoms = [_forward(g) for g in TRUTH]
    geoms[1] = shapely.transform(geoms[1], lambda xy: xy[:, ::-1])
    frame = _frame(geoms)
    path = tmp_path / "book.csv"
    frame.to_csv(path, index=False)
    farms = load_book(path, crs="gcj02")
    assert list(farms.gdf["farm_id"]) == ["F0", "F2"]
    assert farms.rejects["reason"].str.startswith("coordinates look swapped").all()
