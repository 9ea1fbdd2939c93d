"""Tests for agrisat.book: formats, reject reasons, repair, CRS handling, real parcel files."""

from __future__ import annotations

import csv
import functools
import io
import logging
import math
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import CRS, Transformer
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from agrisat.book import (
    REJECT_REASONS,
    Farms,
    load_book,
    parse_exposure,
    reason_category,
    write_rejects,
)
from agrisat.book._columns import ALIASES, normalise_name
from agrisat.config import BookSettings
from agrisat.errors import BookError

pytestmark = [
    # Known noise from writing test inputs (Shapefile name truncation is what we test).
    pytest.mark.filterwarnings("ignore:Column names longer than 10 characters:UserWarning"),
    pytest.mark.filterwarnings("ignore:Normalized/laundered field name:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:'crs' was not provided:UserWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Field with same name:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Measured \\(M\\) geometry types:UserWarning"),
]

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PARCELS = DATA / "parcels"

UTM50 = "EPSG:32650"  # Shandong lies in UTM zone 50N
X0, Y0 = 500_000.0, 3_985_000.0  # about 117.0 E, 36.0 N


def _square(i: int, side: float = 100.0, dx: float = 0.0) -> Polygon:
    """A side x side metre square in UTM 50N; farm i sits 500 m east of farm i-1."""
    x = X0 + 500.0 * i + dx
    return box(x, Y0, x + side, Y0 + side)


def _row(i: int, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "farm_id": f"F{i}",
        "loan_id": f"L{i}",
        "borrower_id": f"B{i}",
        "crop": "winter_wheat",
        "exposure": 1000.0 + i,
        "region": "Dezhou",
        "geometry": _square(i),
    }
    row.update(over)
    return row


def _gdf(rows: list[dict[str, Any]], crs: str | None = UTM50) -> gpd.GeoDataFrame:
    frame = pd.DataFrame(rows)
    geoms = frame.pop("geometry")
    return gpd.GeoDataFrame(frame, geometry=list(geoms), crs=crs)


def _good(n: int = 3) -> list[dict[str, Any]]:
    return [_row(i) for i in range(n)]


def _category(farms: Farms) -> list[str]:
    return [reason_category(r) for r in farms.rejects["reason"]]


def _write_csv(path: Path, rows: list[list[str]], header: list[str], delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL)
        w.writerow(header)
        w.writerows(rows)
    return path


# --------------------------------------------------------------------------- formats


def _zip_shapefile(
    gdf: gpd.GeoDataFrame, tmp: Path, *, subdir: str = "", suffix: str = ".zip"
) -> Path:
    folder = tmp / "shp"
    folder.mkdir()
    gdf.to_file(folder / "book.shp")
    target = tmp / f"book{suffix}"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for part in sorted(folder.iterdir()):
            zf.write(part, f"{subdir}{part.name}")
    return target


def _write(gdf: gpd.GeoDataFrame, tmp: Path, fmt: str) -> Path:
    if fmt == "gpkg":
        gdf.to_file(tmp / "book.gpkg")
        return tmp / "book.gpkg"
    if fmt == "geojson":
        gdf.to_file(tmp / "book.geojson")
        return tmp / "book.geojson"
    if fmt in ("parquet", "geoparquet"):
        gdf.to_parquet(tmp / f"book.{fmt}")
        return tmp / f"book.{fmt}"
    if fmt == "fgb":
        gdf.to_file(tmp / "book.fgb")
        return tmp / "book.fgb"
    if fmt == "shp":
        gdf.to_file(tmp / "book.shp")
        return tmp / "book.shp"
    if fmt == "shp.zip":
        return _zip_shapefile(gdf, tmp)
    if fmt == "shp.zip-subdir":
        return _zip_shapefile(gdf, tmp, subdir="export/")
    if fmt == "shp-zip-no-suffix":
        return _zip_shapefile(gdf, tmp, suffix="")
    if fmt == "csv":
        frame = pd.DataFrame(gdf.drop(columns="geometry"))
        frame["geometry"] = gdf.geometry.to_crs(4326).to_wkt(rounding_precision=-1)
        frame.to_csv(tmp / "book.csv", index=False)
        return tmp / "book.csv"
    if fmt == "csv-crs-column":
        frame = pd.DataFrame(gdf.drop(columns="geometry"))
        frame["WKT"] = gdf.geometry.to_wkt()
        frame["crs"] = UTM50
        frame.to_csv(tmp / "book.csv", index=False, sep=";")
        return tmp / "book.csv"
    raise AssertionError(fmt)


FORMATS = [
    "gpkg",
    "geojson",
    "parquet",
    "geoparquet",
    "fgb",
    "shp",
    "shp.zip",
    "shp.zip-subdir",
    "shp-zip-no-suffix",
    "csv",
    "csv-crs-column",
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_round_trip(tmp_path: Path, fmt: str) -> None:
    sides = [100.0, 200.0, 50.0]  # 1 ha, 4 ha, 0.25 ha
    rows = [_row(i, geometry=_square(i, side)) for i, side in enumerate(sides)]
    path = _write(_gdf(rows), tmp_path, fmt)
    before = sorted(tmp_path.rglob("*"))
    farms = load_book(path)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written beside the book
    assert farms.source == path.name
    assert len(farms) == 3 and len(farms.rejects) == 0
    assert isinstance(farms.gdf.index, pd.RangeIndex)
    # FlatGeobuf stores features in spatial-index order, so compare by id.
    gdf = farms.gdf.sort_values("farm_id")
    assert gdf.crs == CRS.from_epsg(4326)
    assert list(gdf.columns) == [
        "farm_id",
        "loan_id",
        "borrower_id",
        "crop",
        "exposure",
        "region",
        "area_ha",
        "repaired",
        "geometry",
    ]
    assert list(gdf["farm_id"]) == ["F0", "F1", "F2"]
    assert list(gdf["borrower_id"]) == ["B0", "B1", "B2"]  # also from a Shapefile's "borrower_i"
    assert list(gdf["exposure"]) == [1000.0, 1001.0, 1002.0]
    assert set(gdf["region"]) == {"Dezhou"}
    # UTM's scale factor near the central meridian (117 E) is 0.9996: areas agree to 0.1 %.
    np.testing.assert_allclose(gdf["area_ha"], [s * s / 1e4 for s in sides], rtol=1e-3)
    assert not gdf["repaired"].any()
    lon0, lat0, lon1, lat1 = farms.bounds
    assert 116.99 < lon0 < lon1 < 117.03 and 35.99 < lat0 < lat1 < 36.02


def test_csv_crs_keyword_and_conflicts(tmp_path: Path) -> None:
    gdf = _gdf(_good())
    frame = pd.DataFrame(gdf.drop(columns="geometry"))
    frame["geometry"] = gdf.geometry.to_wkt()  # UTM metres, no crs column
    path = tmp_path / "utm.csv"
    frame.to_csv(path, index=False)
    assert len(load_book(path, crs=UTM50)) == 3
    # Read as the default EPSG:4326, metre coordinates fall outside the world.
    assert set(_category(load_book(path))) == {"coordinates outside the CRS area of use"}
    frame["crs"] = ["EPSG:32650", "EPSG:32650", "EPSG:32651"]
    frame.to_csv(path, index=False)
    with pytest.raises(BookError, match=r"utm\.csv.*several CRSs"):
        load_book(path)
    frame["crs"] = "EPSG:32650"
    frame.to_csv(path, index=False)
    with pytest.raises(BookError, match="drop --crs"):
        load_book(path, crs="EPSG:4326")


# --------------------------------------------------------------------------- reject reasons

with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # shapely warns when building it
    NAN_SQUARE = Polygon([(X0, Y0), (X0 + 100, Y0), (X0 + 100, math.nan), (X0, Y0 + 100)])
# A hole poking 2 m x 60 m... out of its shell: the two make_valid methods disagree by >5 %.
HOLE_OUTSIDE = Polygon(
    [(X0, Y0), (X0 + 100, Y0), (X0 + 100, Y0 + 100), (X0, Y0 + 100)],
    [[(X0 + 60, Y0 + 60), (X0 + 130, Y0 + 60), (X0 + 130, Y0 + 90), (X0 + 60, Y0 + 90)]],
)
COLLAPSED = Polygon([(X0, Y0), (X0 + 50, Y0 + 50), (X0 + 100, Y0 + 100), (X0, Y0)])

# (row overrides, book CRS, expected reason category)
ROW_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "no farm_id": ({"farm_id": None}, "missing farm_id"),
    "blank loan_id": ({"loan_id": "  "}, "missing loan_id"),
    "null-token borrower": ({"borrower_id": "NULL"}, "missing borrower_id"),
    "no crop": ({"crop": None}, "missing crop"),
    "junk crop": ({"crop": "???"}, "unparseable crop"),
    "no exposure": ({"exposure": None}, "missing exposure"),
    "text exposure": ({"exposure": "twelve"}, "exposure not a number"),
    "inf exposure": ({"exposure": math.inf}, "exposure not a number"),
    "negative exposure": ({"exposure": -5.0}, "negative exposure"),
    "accounting negative": ({"exposure": "(1,200.00)"}, "negative exposure"),
    "null geometry": ({"geometry": None}, "empty geometry"),
    "empty polygon": ({"geometry": Polygon()}, "empty geometry"),
    "point": ({"geometry": Point(X0, Y0)}, "not a polygon"),
    "line": ({"geometry": LineString([(X0, Y0), (X0 + 100, Y0 + 100)])}, "not a polygon"),
    "nan coordinate": ({"geometry": NAN_SQUARE}, "non-finite coordinates"),
    "far outside zone": (
        {"geometry": box(X0 + 5e6, Y0, X0 + 5e6 + 100, Y0 + 100)},
        "coordinates outside the CRS area of use",
    ),
    "x/y swapped": (
        {"geometry": box(Y0, X0, Y0 + 100, X0 + 100)},
        "coordinates look swapped (x/y)",
    ),
    "hole outside shell": ({"geometry": HOLE_OUTSIDE}, "invalid geometry, not repairable"),
    "collapsed ring": ({"geometry": COLLAPSED}, "zero area"),
    "sliver": ({"geometry": _square(9, 5.0)}, "area too small"),  # 25 m2
    "huge": ({"geometry": _square(9, 5000.0)}, "area too large"),  # 2500 ha
}


@pytest.mark.parametrize("case", sorted(ROW_CASES))
def test_each_reject_reason(case: str) -> None:
    over, expected = ROW_CASES[case]
    assert expected in REJECT_REASONS
    rows = [*_good(3), _row(7, **over)]
    farms = load_book(_gdf(rows))
    assert list(farms.gdf["farm_id"]) == ["F0", "F1", "F2"]
    assert len(farms.gdf) + len(farms.rejects) == len(rows)
    assert _category(farms) == [expected]
    assert farms.rejects["source_row"].tolist() == [4]
    assert farms.rejects["farm_id"].tolist() == ["" if "farm_id" in over else "F7"]


def test_every_reject_reason_has_a_test() -> None:
    covered = {reason for _, reason in ROW_CASES.values()}
    covered |= {"duplicate farm_id", "malformed CSV row", "unparseable WKT"}  # tests below
    covered |= {"ambiguous exposure"}  # a whole column's evidence: tests/test_book_aliases.py
    assert covered == set(REJECT_REASONS)


def test_swapped_lat_lon_in_epsg4326() -> None:
    good = [_row(i, geometry=box(117 + i / 100, 36.0, 117.001 + i / 100, 36.001)) for i in range(3)]
    # |y| > 90 while |x| <= 90: latitude and longitude were written the wrong way round.
    bad = _row(8, geometry=box(36.0, 117.0, 36.001, 117.001))
    farms = load_book(_gdf([*good, bad], crs="EPSG:4326"))
    assert _category(farms) == ["coordinates look swapped (x/y)"]
    assert len(farms) == 3


def test_swap_that_lands_on_earth_is_caught_by_distance_to_the_book() -> None:
    # Farms near (5 E, 50 N); one written as (50, 5): a real place (off Somalia), but 5000 km
    # away from the book while its swapped reading is among the others.
    good = [_row(i, geometry=box(5 + i / 100, 50.0, 5.001 + i / 100, 50.001)) for i in range(4)]
    bad = _row(8, geometry=box(50.0, 5.0, 50.001, 5.001))
    farms = load_book(_gdf([*good, bad], crs="EPSG:4326"))
    assert _category(farms) == ["coordinates look swapped (x/y)"]


def test_duplicate_farm_ids_reject_every_copy() -> None:
    rows = [*_good(3), _row(5, farm_id="F1"), _row(6, farm_id=" F1 ")]
    farms = load_book(_gdf(rows))
    assert list(farms.gdf["farm_id"]) == ["F0", "F2"]
    assert farms.rejects["source_row"].tolist() == [2, 4, 5]
    assert set(farms.rejects["farm_id"]) == {"F1"}
    assert all(r == "duplicate farm_id: 3 rows share it" for r in farms.rejects["reason"])


def test_first_failing_check_names_the_row() -> None:
    # Missing key beats everything else; exposure beats geometry.
    rows = [*_good(2), _row(3, loan_id=None, geometry=None), _row(4, exposure="x", geometry=None)]
    assert _category(load_book(_gdf(rows))) == ["missing loan_id", "exposure not a number"]


def test_csv_only_reasons(tmp_path: Path) -> None:
    header = ["farm_id", "loan_id", "borrower_id", "crop", "exposure", "geometry"]
    ok = "POLYGON ((117 36, 117.001 36, 117.001 36.001, 117 36.001, 117 36))"
    rows = [
        ["1", "L", "B", "maize", "10", ok],
        ["2", "L", "B", "maize", "10", "POLYGON ((117 36, 117.001"],
        ["3", "L", "B", "maize", "10", ok, "an extra cell"],
        ["4", "L", "B", "maize", "10", ""],
        ["5", "L", "B", "maize", "10", "POINT (117 36)"],
        ["6", "L", "B", "maize", "10", shapely.to_wkb(shapely.from_wkt(ok), hex=True)],
    ]
    farms = load_book(_write_csv(tmp_path / "b.csv", rows, header))
    assert list(farms.gdf["farm_id"]) == ["1", "6"]  # hex WKB is read too
    assert _category(farms) == [
        "unparseable WKT",
        "malformed CSV row",
        "empty geometry",
        "not a polygon",
    ]
    # The raw cell is kept, so the bank sees what it sent.
    assert farms.rejects["geometry_wkt"].iloc[0] == "POLYGON ((117 36, 117.001"


def test_an_unbalanced_quote_names_the_lines_it_swallowed(tmp_path: Path) -> None:
    # row 2's geometry quote is never closed: the csv reader runs the cell over row 3's line
    # (until the next quote). Row 3 must not vanish without a word: the reject says which
    # lines of the file the broken row covers.
    ok = '"POLYGON ((117 36, 117.001 36, 117.001 36.001, 117 36.001, 117 36))"'
    lines = [
        "farm_id,loan_id,borrower_id,crop,exposure,geometry",
        f"1,L,B,maize,10,{ok}",
        '2,L,B,maize,10,"POLYGON ((117 36, 117.001 36, 117.001 36.001, 117 36))',
        f"3,L,B,maize,10,{ok}",
        f"4,L,B,maize,10,{ok}",
    ]
    path = tmp_path / "quote.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    farms = load_book(path)
    assert "3" not in set(farms.gdf["farm_id"])  # inside the broken row
    assert "1" in set(farms.gdf["farm_id"])
    why = farms.rejects.set_index("farm_id")["reason"]
    assert reason_category(why["2"]) == "malformed CSV row"
    assert "lines 3-4" in why["2"] and "unbalanced quote" in why["2"]


def test_a_quoted_line_break_inside_a_cell_is_not_a_broken_row(tmp_path: Path) -> None:
    ok = '"POLYGON ((117 36, 117.001 36, 117.001 36.001, 117 36.001, 117 36))"'
    text = (
        "farm_id,loan_id,borrower_id,crop,exposure,region,geometry\n"
        f'1,L,B,maize,10,"Dezhou\nnorth",{ok}\n'
    )
    path = tmp_path / "nl.csv"
    path.write_text(text, encoding="utf-8")
    farms = load_book(path)
    assert list(farms.gdf["farm_id"]) == ["1"] and len(farms.rejects) == 0


# --------------------------------------------------------------------------- repair, Z, ids


def test_bow_tie_is_repaired_and_flagged() -> None:
    # A 100 m bow-tie: two triangles of 0.25 ha each meeting at the centre.
    bow = Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100)])
    assert not bow.is_valid
    farms = load_book(_gdf([*_good(2), _row(2, geometry=bow)]))
    assert len(farms.rejects) == 0
    farm = farms.gdf.iloc[2]
    assert farm["repaired"] and not farms.gdf["repaired"].iloc[:2].any()
    assert farm.geometry.is_valid and isinstance(farm.geometry, MultiPolygon)
    assert farm["area_ha"] == pytest.approx(0.5, rel=2e-3)


def test_repair_tolerance_is_a_setting() -> None:
    rows = [*_good(2), _row(2, geometry=HOLE_OUTSIDE)]
    assert len(load_book(_gdf(rows))) == 2
    loose = load_book(_gdf(rows), settings=BookSettings(repair_area_tolerance=0.5))
    assert len(loose) == 3 and bool(loose.gdf["repaired"].iloc[2])


def test_z_is_dropped_and_collections_of_polygons_accepted() -> None:
    z = Polygon([(X0, Y0, 5), (X0 + 100, Y0, 5), (X0 + 100, Y0 + 100, 6), (X0, Y0 + 100, 5)])
    coll = shapely.GeometryCollection([_square(4), _square(5)])
    farms = load_book(_gdf([*_good(2), _row(3, geometry=z), _row(4, geometry=coll)]))
    assert len(farms) == 4
    assert not farms.gdf.has_z.any()
    assert farms.gdf.geom_type.iloc[3] == "MultiPolygon"
    assert farms.gdf["area_ha"].iloc[3] == pytest.approx(2.0, rel=2e-3)


def test_ids_are_strings_and_hostile_ids_are_only_data(tmp_path: Path) -> None:
    rows = [
        _row(0, farm_id=12, loan_id=7.0),
        _row(1, farm_id="  ../../x  ", borrower_id=np.int64(3)),
        _row(2, farm_id="0012", crop="  Winter-Wheat "),
    ]
    workdir = tmp_path / "work"
    farms = load_book(_gdf(rows))
    write_rejects(farms, workdir)
    assert list(farms.gdf["farm_id"]) == ["12", "../../x", "0012"]
    assert farms.gdf["loan_id"].iloc[0] == "7"
    assert farms.gdf["borrower_id"].iloc[1] == "3"
    assert farms.gdf["crop"].iloc[2] == "winter_wheat"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["rejects.csv", "work"]


def test_geodataframe_input_is_not_modified_and_farms_pass_through() -> None:
    gdf = _gdf([*_good(2), _row(5, geometry=None)])
    gdf.index = [10, 20, 30]
    before = gdf.copy()
    farms = load_book(gdf)
    pd.testing.assert_frame_equal(gdf, before)
    assert farms.source == "<GeoDataFrame>"
    assert list(farms.gdf.index) == [0, 1]
    assert farms.rejects["source_row"].tolist() == [3]
    assert load_book(farms) is farms


EXPOSURES = [
    (1500, 1500.0),
    (np.float32(2.5), 2.5),
    ("1500", 1500.0),
    (" 1,234,567.89 ", 1234567.89),
    ("1.234.567,89", 1234567.89),
    ("1 234,5", 1234.5),
    ("12,34,567", 1234567.0),
    ("1,234", 1234.0),
    ("2,5", 2.5),
    ("¥3,000", 3000.0),
    ("3000 CNY", 3000.0),
    ("1e5", 100000.0),
    ("0", 0.0),
    ("-0", 0.0),
]


@pytest.mark.parametrize(("cell", "expected"), EXPOSURES)
def test_exposure_parsing(cell: Any, expected: float) -> None:
    assert parse_exposure(cell) == (expected, None)


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        (None, "missing exposure"),
        (math.nan, "missing exposure"),
        ("", "missing exposure"),
        ("n/a", "missing exposure"),
        ("abc", "exposure not a number"),
        ("1,2,3", "exposure not a number"),
        ("nan", "missing exposure"),
        ("inf", "exposure not a number"),
        (True, "exposure not a number"),
        ("0x10", "exposure not a number"),
        (-1, "negative exposure"),
        ("-1,000", "negative exposure"),
        ("(5)", "negative exposure"),
    ],
)
def test_exposure_rejections(cell: Any, reason: str) -> None:
    assert parse_exposure(cell) == (None, reason)


def test_column_aliases_and_ambiguity() -> None:
    gdf = _gdf(_good(2)).rename(
        columns={"farm_id": "Farm ID", "loan_id": "LOANID", "borrower_id": "borrower_i"}
    )
    assert list(load_book(gdf).gdf["farm_id"]) == ["F0", "F1"]
    gdf["parcel_id"] = ["x", "y"]  # an alias loses to the canonical name ...
    assert list(load_book(gdf).gdf["farm_id"]) == ["F0", "F1"]
    gdf = gdf.rename(columns={"Farm ID": "FarmID"})  # ... but two aliases are a question
    with pytest.raises(BookError, match=r"could all be 'farm_id'"):
        load_book(gdf)


# --------------------------------------------------------------------------- whole-file errors


def test_missing_crs_is_an_error_that_says_how_to_declare_it(tmp_path: Path) -> None:
    path = tmp_path / "nocrs.gpkg"
    _gdf(_good(), crs=None).to_file(path)
    with pytest.raises(BookError, match=r"nocrs\.gpkg.*--crs EPSG:xxxx"):
        load_book(path)
    assert len(load_book(path, crs=UTM50)) == 3
    with pytest.raises(BookError, match="not a CRS"):
        load_book(path, crs="EPSG:nonsense")


def test_declared_crs_must_agree_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "b.gpkg"
    _gdf(_good()).to_file(path)
    assert len(load_book(path, crs="EPSG:32650")) == 3
    with pytest.raises(BookError, match="declares CRS"):
        load_book(path, crs="EPSG:4326")


def test_missing_columns_are_all_named(tmp_path: Path) -> None:
    path = tmp_path / "book.gpkg"
    _gdf(_good()).drop(columns=["exposure", "crop"]).to_file(path)
    with pytest.raises(BookError, match=r"book\.gpkg lacks required column\(s\): crop, exposure"):
        load_book(path)
    header = ["farm_id", "loan_id", "borrower_id", "crop", "exposure"]
    csv_path = _write_csv(tmp_path / "b.csv", [["1", "L", "B", "maize", "1"]], header)
    with pytest.raises(BookError, match=r"column\(s\): geometry"):
        load_book(csv_path)


def test_zero_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty.gpkg"
    _gdf(_good()).iloc[:0].to_file(path)
    with pytest.raises(BookError, match=r"empty\.gpkg has no rows"):
        load_book(path)
    header = "farm_id,loan_id,borrower_id,crop,exposure,geometry\n"
    (tmp_path / "h.csv").write_text(header)
    with pytest.raises(BookError, match="has no rows"):
        load_book(tmp_path / "h.csv")
    (tmp_path / "e.csv").write_text("\n\n")
    with pytest.raises(BookError, match="is empty"):
        load_book(tmp_path / "e.csv")


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("book.gpkg", b"this is not a geopackage at all", "not a readable vector file"),
        ("book.vrt", b"<OGRVRTDataSource/>", "vrt files are refused"),
        ("book.gpkg", b'<OGRVRTDataSource><OGRVRTLayer name="x"/></OGRVRTDataSource>', "VRT"),
        ("book.tif", b"II*\x00" + b"\x00" * 64, "raster image"),
        ("book.geojson", b"II*\x00" + b"\x00" * 64, "raster image"),
        ("book.xlsx", b"PK", "unsupported file type .xlsx"),
        ("book.gml", b"<gml:FeatureCollection/>", "unsupported file type .gml"),
        ("book.zip", b"PK\x03\x04 truncated", "not a readable zip"),
        ("book.parquet", b"PAR1 nonsense PAR1", "not a readable GeoParquet"),
    ],
)
def test_unreadable_and_refused_files(
    tmp_path: Path, name: str, content: bytes, match: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BookError, match=match) as info:
        load_book(path)
    assert name in str(info.value)


def test_refused_sources(tmp_path: Path) -> None:
    with pytest.raises(BookError, match="does not exist"):
        load_book(tmp_path / "nope.gpkg")
    with pytest.raises(BookError, match="only local files"):
        load_book("https://example.com/book.gpkg")
    with pytest.raises(BookError, match="only local files"):
        load_book("/vsicurl/https://example.com/book.gpkg")
    with pytest.raises(BookError, match="cannot read a loan book from a dict"):
        load_book({"farm_id": [1]})  # type: ignore[arg-type]
    path = tmp_path / "big.gpkg"
    _gdf(_good()).to_file(path)
    with pytest.raises(BookError, match=r"above the 0\.001 MB limit"):
        load_book(path, max_file_mb=0.001)
    # A zip is judged by what it unpacks to.
    zipped = _zip_shapefile(_gdf(_good()), tmp_path)
    unpacked = sum(p.stat().st_size for p in (tmp_path / "shp").iterdir())
    assert zipped.stat().st_size < unpacked
    with pytest.raises(BookError, match="unpacks to"):
        load_book(zipped, max_file_mb=(zipped.stat().st_size + unpacked) / 2e6)
    plain = pd.DataFrame({"a": [1]})
    plain.to_parquet(tmp_path / "plain.parquet")
    with pytest.raises(BookError, match="without GeoParquet metadata"):
        load_book(tmp_path / "plain.parquet")


def test_zip_with_two_books_and_multi_layer_files(tmp_path: Path) -> None:
    gdf = _gdf(_good())
    gdf.to_file(tmp_path / "a.gpkg")
    gdf.to_file(tmp_path / "b.gpkg")
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as zf:
        zf.write(tmp_path / "a.gpkg", "a.gpkg")
        zf.write(tmp_path / "b.gpkg", "b.gpkg")
    with pytest.raises(BookError, match="several vector files"):
        load_book(tmp_path / "two.zip")
    multi = tmp_path / "multi.gpkg"
    gdf.to_file(multi, layer="farms")
    gdf.iloc[:2].to_file(multi, layer="other")
    with pytest.raises(BookError, match=r"several vector layers \(farms, other\)"):
        load_book(multi)
    assert len(load_book(multi, layer="other")) == 2
    with pytest.raises(BookError, match="no vector layer 'x'"):
        load_book(multi, layer="x")


# --------------------------------------------------------------------------- rejects file, log


def test_write_rejects_content(tmp_path: Path) -> None:
    rows = [*_good(2), _row(2, crop=None, note='=HYPERLINK("http://x")'), _row(3, exposure=-1)]
    rows[0]["note"] = rows[1]["note"] = "fine"
    rows[3]["note"] = "-12.5"
    farms = load_book(_gdf(rows))
    path = write_rejects(farms, tmp_path)
    assert path == tmp_path / "rejects.csv"
    assert [p.name for p in tmp_path.iterdir()] == ["rejects.csv"]  # no temp file left
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(table.columns) == [
        "source_row",
        "farm_id",
        "reason",
        "loan_id",
        "borrower_id",
        "crop",
        "exposure",
        "region",
        "note",
        "geometry_wkt",
    ]
    assert table["source_row"].tolist() == ["3", "4"]
    assert table["reason"].tolist() == ["missing crop", "negative exposure"]
    assert table["note"].tolist() == ['\'=HYPERLINK("http://x")', "-12.5"]
    back = shapely.from_wkt(table["geometry_wkt"].iloc[0])
    assert back.equals(_square(2))  # the geometry as submitted, in the source CRS


def test_write_rejects_header_only_when_nothing_rejected(tmp_path: Path) -> None:
    path = write_rejects(load_book(_gdf(_good())), tmp_path / "new" / "dir")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    assert lines[0].split(",")[:3] == ["source_row", "farm_id", "reason"]


def test_log_line_has_counts_only(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    rows = [*_good(3), _row(3, geometry=None), _row(4, geometry=None), _row(5, crop=None)]
    path = tmp_path / "secret-bank.gpkg"
    _gdf(rows).to_file(path)
    with caplog.at_level(logging.INFO, logger="agrisat.book"):
        load_book(path)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("agrisat.book")]
    assert messages == [
        "book secret-bank.gpkg: 3 farms accepted, 3 rejected "
        "(reasons: empty geometry=2, missing crop=1)"
    ]
    assert str(tmp_path) not in messages[0]


# --------------------------------------------------------------------------- hypothesis

_finite = st.floats(-1e6, 1e6, allow_nan=False)
_coord = st.one_of(_finite, st.sampled_from([math.nan, math.inf, -math.inf, 1e300, 0.0]))


@st.composite
def _ugly_geometry(draw: st.DrawFn) -> shapely.Geometry | None:
    kind = draw(
        st.sampled_from(["box", "random", "bowtie", "empty", "none", "point", "line", "coll"])
    )
    x = X0 + draw(st.floats(-1e4, 1e4))
    y = Y0 + draw(st.floats(-1e4, 1e4))
    size = draw(st.sampled_from([1e-9, 0.1, 3.0, 100.0, 3000.0, 1e7]))
    if kind == "box":
        return box(x, y, x + size, y + size)
    if kind == "random":  # the first vertex stays finite so that shapely can close the ring
        pts = draw(st.lists(st.tuples(_coord, _coord), min_size=2, max_size=6))
        return Polygon([(x, y), *((x + a, y + b) for a, b in pts)])
    if kind == "bowtie":
        return Polygon([(x, y), (x + size, y + size), (x + size, y), (x, y + size)])
    if kind == "empty":
        return Polygon()
    if kind == "point":
        return Point(x, y)
    if kind == "line":
        return LineString([(x, y), (x + size, y)])
    if kind == "coll":
        return shapely.GeometryCollection([box(x, y, x + size, y + size), Point(x, y)])
    return None


_ugly_text = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["", " ", "NULL", "-", "12", "1,5", "(3)", "../../x", "=1+1", "\n", '"']),
)


def _check_accounting(farms: Farms, n: int) -> None:
    assert len(farms.gdf) + len(farms.rejects) == n
    assert farms.gdf.crs == CRS.from_epsg(4326)
    assert farms.gdf.is_valid.all()
    assert not farms.gdf.is_empty.any()
    assert set(farms.gdf.geom_type) <= {"Polygon", "MultiPolygon"}
    assert all(reason_category(r) in REJECT_REASONS for r in farms.rejects["reason"])
    assert farms.gdf["farm_id"].is_unique
    assert sorted(farms.rejects["source_row"]) == farms.rejects["source_row"].tolist()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.one_of(st.integers(0, 8), st.none(), st.text(max_size=5)),
            _ugly_text,
            st.one_of(_ugly_text, st.floats(allow_nan=True), st.integers()),
            _ugly_geometry(),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_ugly_geodataframes_are_accounted_for(cells: list[tuple[Any, Any, Any, Any]]) -> None:
    rows = [
        _row(0, farm_id=fid, crop=crop, exposure=exp, geometry=geom)
        for fid, crop, exp, geom in cells
    ]
    _check_accounting(load_book(_gdf(rows)), len(rows))


_wkt_cell = st.one_of(
    _ugly_geometry().map(lambda g: "" if g is None else shapely.to_wkt(g)),
    st.text(max_size=30),
    st.sampled_from(["POLYGON ((", "POLYGON EMPTY", "POINT (nan nan)", "01030000", "ZZ"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(_ugly_text, _ugly_text, _ugly_text, _wkt_cell, st.booleans()),
        min_size=1,
        max_size=10,
    ),
    st.sampled_from([",", ";", "\t"]),
)
def test_ugly_csv_cells_are_accounted_for(
    cells: list[tuple[Any, Any, Any, str, bool]], delimiter: str
) -> None:
    header = ["farm_id", "loan_id", "borrower_id", "crop", "exposure", "crs_note", "geometry"]
    rows = []
    for fid, crop, exp, wkt, extra in cells:
        row = ["" if v is None else str(v) for v in (fid, "L", "B", crop, exp, "x")] + [wkt]
        rows.append([*row, "spill"] if extra else row)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    writer.writerows(rows)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"agrisat-book-hyp-{os.getpid()}.csv"
    try:
        path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
        farms = load_book(path, crs=UTM50)
    finally:
        path.unlink(missing_ok=True)
    _check_accounting(farms, len(rows))


# --------------------------------------------------------------------------- real parcel files

_VECTOR = (".shp", ".gpkg", ".gml", ".geojson", ".json", ".fgb", ".xml")
_SIDE_FILES = (".dbf", ".shx", ".prj", ".cpg", ".gfs", ".csv", ".md", ".txt", ".rar", ".001")


def _require_parcels() -> Path:
    if not PARCELS.is_dir():
        msg = f"real parcel files not found at {PARCELS} (the repo must sit beside shared/)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return PARCELS


def _parcel_files() -> list[str]:
    if not PARCELS.is_dir():
        return ["<absent>"]
    return sorted(
        str(p.relative_to(PARCELS))
        for p in PARCELS.rglob("*")
        if p.is_file() and not p.name.lower().endswith(_SIDE_FILES)
    )


@functools.cache
def _read_sources(path: Path) -> list[tuple[str, gpd.GeoDataFrame]]:
    """Every non-empty vector layer in ``path`` (zips opened member by member); callers copy."""
    out: list[tuple[str, gpd.GeoDataFrame]] = []
    datasets: list[str] = []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            for member in names:
                if member.lower().endswith((".parquet", ".geoparquet")):
                    out.append((member, gpd.read_parquet(io.BytesIO(zf.read(member)))))
        gdbs = sorted({n.split(".gdb/")[0] + ".gdb" for n in names if ".gdb/" in n})
        plain = [n for n in names if ".gdb/" not in n and n.lower().endswith(_VECTOR)]
        datasets = [f"/vsizip/{{{path}}}/{m}" for m in (*gdbs, *plain)]
    elif path.suffix == ".parquet":
        out.append((path.name, gpd.read_parquet(path)))
    elif path.suffix.lower() in _VECTOR:
        datasets = [str(path)]
    for ds in datasets:
        for layer, gtype in pyogrio.list_layers(ds):
            if gtype is not None:
                out.append((f"{Path(ds).name}:{layer}", gpd.read_file(ds, layer=layer)))
    return [(name, gdf) for name, gdf in out if len(gdf)]


_REAL_FORMATS = ["gpkg", "parquet", "fgb", "shp.zip", "geojson", "csv"]


def _write_real(book: gpd.GeoDataFrame, tmp: Path, fmt: str) -> Path:
    """Write the book; GPKG and GeoParquet keep the source's own columns, the rest only ours."""
    if fmt == "csv":
        frame = pd.DataFrame(book.drop(columns=book.geometry.name))
        frame["geometry"] = book.geometry.to_wkt(rounding_precision=-1)
        frame["crs"] = book.crs.to_wkt()  # WKT2 with commas and quotes, inside a CSV cell
        frame.to_csv(tmp / "real.csv", index=False)
        return tmp / "real.csv"
    synthetic = book[["farm_id", "loan_id", "borrower_id", "crop", "exposure", book.geometry.name]]
    if fmt == "shp.zip":
        return _zip_shapefile(synthetic, tmp)
    if fmt == "parquet":
        book.to_parquet(tmp / "real.parquet")
        return tmp / "real.parquet"
    target = tmp / f"real.{fmt}"
    (book if fmt == "gpkg" else synthetic).to_file(target)
    return target


@pytest.mark.parametrize("relpath", _parcel_files())
def test_real_parcel_files(relpath: str, tmp_path: Path) -> None:
    root = _require_parcels()
    sources = _read_sources(root / relpath)
    if not sources:
        pytest.skip(
            f"{relpath} holds no vector layer (attribute table or archive GDAL cannot open)"
        )
    fmt = _REAL_FORMATS[sum(map(ord, relpath)) % len(_REAL_FORMATS)]
    for k, (layer, src) in enumerate(sources):
        n = len(src)
        canon = {normalise_name(a) for names in ALIASES.values() for a in names}
        keep = [
            c
            for c in src.columns
            if c == src.geometry.name
            or (
                normalise_name(c) not in canon | {"geometry", "wkt", "geom", "crs"}
                and src[c].dtype.kind in "iufbO"
            )
        ]
        book = src[keep].copy()
        book["farm_id"] = [f"{k}-{i}" for i in range(n)]
        book["loan_id"] = [f"L{i // 3}" for i in range(n)]
        book["borrower_id"] = [f"B{i // 7}" for i in range(n)]
        book["crop"] = "Winter Wheat"
        book["exposure"] = np.linspace(0, 1e6, n)
        sub = tmp_path / str(k)
        sub.mkdir()
        path = _write_real(book, sub, fmt)
        farms = load_book(path)
        what = f"{relpath} [{layer}] via {fmt}"
        gdf, rej = farms.gdf, farms.rejects
        assert len(gdf) + len(rej) == n, what
        assert set(gdf["farm_id"]) | set(rej["farm_id"]) == set(book["farm_id"]), what
        assert gdf.crs == CRS.from_epsg(4326), what
        assert gdf.is_valid.all() and not gdf.has_z.any(), what
        assert set(gdf["crop"]) <= {"winter_wheat"}, what

        # Where the source says it is: its own bounds transformed by pyproj.
        to_ll = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
        region = np.array(to_ll.transform_bounds(*src.total_bounds, densify_pts=21))
        tol = 1e-3
        b = gdf.bounds
        assert (b["minx"] >= region[0] - tol).all() and (b["maxx"] <= region[2] + tol).all(), what
        assert (b["miny"] >= region[1] - tol).all() and (b["maxy"] <= region[3] + tol).all(), what

        # Areas: an independent equal-area projection (EASE-Grid 2.0, cylindrical), straight
        # from the source CRS.
        truth = pd.Series(
            src.geometry.force_2d().to_crs("EPSG:6933").area.to_numpy() / 1e4,
            index=book["farm_id"],
        )
        plain = gdf[~gdf["repaired"]]
        np.testing.assert_allclose(
            plain["area_ha"], truth[plain["farm_id"]].to_numpy(), rtol=0.01, err_msg=what
        )
        # Real rejects here can only be area limits; check them against the independent area.
        limits = BookSettings()
        for fid, reason in zip(rej["farm_id"], rej["reason"], strict=True):
            cat = reason_category(reason)
            assert cat in ("area too small", "area too large"), f"{what}: {fid} {reason}"
            a = truth[fid]
            assert (
                a < limits.min_area_ha * 1.01
                if cat == "area too small"
                else a > limits.max_area_ha * 0.99
            )
        accepted = truth[gdf["farm_id"]]
        assert (accepted > limits.min_area_ha * 0.99).all() and (
            accepted < limits.max_area_ha * 1.01
        ).all()


def test_real_parcel_files_were_found() -> None:
    _require_parcels()
    readable = [f for f in _parcel_files() if _read_sources(PARCELS / f)]
    # 36 vector files from 20+ countries at the time of writing; a drop means data went missing.
    assert len(readable) >= 30, readable


# -- whole-column normalisation equals the per-cell rules -------------------------------------

_CELLS = [
    " F-01 ",
    "0012",
    "NaN",
    "n/a",
    "",
    "  -  ",
    None,
    math.nan,
    7,
    12.0,
    12.5,
    True,
    b"b\xc3\xa9",
    "Winter  Wheat",
    "maize/soy",
    "1,234.50",
    "(12)",
    "-3",
    "¥ 1 000",
    math.inf,
    -0.0,
]


def _columns_for_equivalence() -> list[pd.Series]:
    text = [c for c in _CELLS if isinstance(c, str)]
    return [
        pd.Series(_CELLS, dtype=object),  # mixed: the per-cell path
        pd.Series([*text, None], dtype=object),  # text with a missing cell: the fast path
        pd.Series(text, dtype="str"),  # pandas string dtype
        pd.Series([1, 20, -3, 0], dtype="int64"),
        pd.Series([1, None, 3], dtype="Int64"),  # nullable ints: NA is missing, not "<NA>"
        pd.Series([1.0, -2.5, math.nan, math.inf, -0.0, 3e9], dtype="float64"),
        pd.Series([True, False], dtype=bool),
    ]


@pytest.mark.parametrize("col", range(7))
def test_column_normalisation_matches_the_cell_rules(col: int) -> None:
    from agrisat.book._amounts import parse_exposure, parse_exposures
    from agrisat.book._columns import (
        normalise_crop,
        normalise_crops,
        normalise_id,
        normalise_ids,
    )

    s = _columns_for_equivalence()[col]
    cells = list(s.astype(object).where(s.notna(), None))
    assert list(normalise_ids(s)) == [normalise_id(v) for v in cells]
    crops, why = normalise_crops(s)
    assert list(zip(crops, why, strict=True)) == [normalise_crop(v) for v in cells]
    amounts, why = parse_exposures(s)
    expected = [parse_exposure(v) for v in cells]
    assert list(why) == [e[1] for e in expected]
    for got, (want, _) in zip(amounts, expected, strict=True):
        assert (got is None and want is None) or (got == want and math.copysign(1, got) == 1)
