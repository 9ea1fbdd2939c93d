"""The test factories: real COGs, Earth Search / Planetary Computer style items, catalogs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
from pyproj import Transformer
from shapely.geometry import Point, box, shape

from agrisat.testing import (
    SyntheticFarm,
    make_archive,
    make_s2_item,
    reflectance_to_dn,
    write_cog,
    write_static_catalog,
)

T10 = (10.0, 0.0, 600000.0, 0.0, -10.0, 4040000.0)
T20 = (20.0, 0.0, 600000.0, 0.0, -20.0, 4040000.0)


def _assets(root: Path, shape10: tuple[int, int] = (40, 40)) -> dict:
    shape20 = (shape10[0] // 2, shape10[1] // 2)
    out = {}
    for band in ("blue", "green", "red", "nir", "swir16", "scl"):
        is20 = band in ("swir16", "scl")
        out[band] = (str(root / f"{band}.tif"), T20 if is20 else T10, shape20 if is20 else shape10)
    return out


def _rule(item: pystac.Item, key: str) -> tuple[float, float]:
    """design.md's scale/offset rule, written out independently of the factories."""
    bands = item.assets[key].extra_fields.get("raster:bands")
    if bands and ("scale" in bands[0] or "offset" in bands[0]):
        return bands[0].get("scale", 1e-4), bands[0].get("offset", 0.0)
    major, minor = item.properties["s2:processing_baseline"].split(".")
    new = (int(major), int(minor)) >= (4, 0)
    boa = item.properties.get("earthsearch:boa_offset_applied", False)
    return 1e-4, -0.1 if new and not boa else 0.0


def test_write_cog_is_a_tiled_cog_with_overviews(tmp_path: Path) -> None:
    arr = (np.arange(600 * 520) % 5000 + 1).astype(np.uint16).reshape(600, 520)
    path = write_cog(tmp_path / "a.tif", arr, transform=T10, crs=32650)
    with rasterio.open(path) as ds:
        assert ds.profile["tiled"] is True
        assert ds.block_shapes == [(256, 256)]
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ds.overviews(1) == [2, 4]
        assert ds.nodata == 0
        assert ds.crs.to_epsg() == 32650
        assert tuple(ds.transform)[:6] == T10
        np.testing.assert_array_equal(ds.read(1), arr)


def test_write_cog_multiband_float_and_uint8(tmp_path: Path) -> None:
    cube = np.random.default_rng(0).random((2, 64, 48), dtype=np.float32)
    with rasterio.open(write_cog(tmp_path / "f.tif", cube, transform=T10, crs="EPSG:32651")) as ds:
        assert (ds.count, ds.dtypes[0]) == (2, "float32")
        np.testing.assert_array_equal(ds.read(), cube)
    scl = np.full((32, 32), 4, dtype=np.uint8)
    out = write_cog(
        tmp_path / "s.tif", scl, transform=T20, crs=32650, overview_resampling="nearest"
    )
    with rasterio.open(out) as ds:
        assert ds.dtypes[0] == "uint8"


def test_write_cog_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="int64"):
        write_cog(tmp_path / "x.tif", np.zeros((8, 8), np.int64), transform=T10, crs=32650)
    with pytest.raises(ValueError, match="2-D or 3-D"):
        write_cog(tmp_path / "x.tif", np.zeros(8, np.uint16), transform=T10, crs=32650)


def test_reflectance_to_dn_by_hand() -> None:
    refl = np.array([0.05, 0.0, -0.5, np.nan, 0.3])
    np.testing.assert_array_equal(
        reflectance_to_dn(refl, "earthsearch_v1"), [1500, 1000, 1, 0, 4000]
    )
    np.testing.assert_array_equal(reflectance_to_dn(refl, "legacy"), [500, 1, 1, 0, 3000])
    valid = np.array([True, True, True, True, False])
    np.testing.assert_array_equal(
        reflectance_to_dn(refl, "baseline_offset", valid=valid), [1500, 1000, 1, 0, 0]
    )
    with pytest.raises(ValueError, match="unknown convention"):
        reflectance_to_dn(refl, "nope")


def test_earthsearch_item_fields(tmp_path: Path) -> None:
    item = make_s2_item(
        "S2B_50SQF_20260412_0_L2A",
        datetime=dt.date(2026, 4, 12),
        epsg=32650,
        assets=_assets(tmp_path),
        tile="50SQF",
        cloud_cover=12.5,
    )
    d = item.to_dict(include_self_link=False)
    for key in ("type", "stac_version", "id", "geometry", "bbox", "assets", "links"):
        assert key in d
    p = d["properties"]
    assert p["datetime"].startswith("2026-04-12T")
    assert p["proj:epsg"] == 32650
    assert p["s2:processing_baseline"] == "05.10"
    assert p["earthsearch:boa_offset_applied"] is True
    assert (p["mgrs:utm_zone"], p["mgrs:latitude_band"], p["mgrs:grid_square"]) == (50, "S", "QF")
    assert p["eo:cloud_cover"] == 12.5
    assert p["platform"] == "sentinel-2b"
    assert p["created"] <= p["updated"]
    assert set(d["assets"]) == {"blue", "green", "red", "nir", "swir16", "scl"}
    red = d["assets"]["red"]
    assert red["raster:bands"][0]["scale"] == 0.0001
    assert red["raster:bands"][0]["offset"] == -0.1
    assert red["raster:bands"][0]["nodata"] == 0
    assert red["proj:shape"] == [40, 40] and red["proj:transform"] == list(T10)
    assert red["eo:bands"][0]["common_name"] == "red"
    assert "data" in red["roles"]
    scl = d["assets"]["scl"]["raster:bands"][0]
    assert "scale" not in scl and "offset" not in scl
    assert d["assets"]["swir16"]["proj:shape"] == [20, 20]


def test_item_footprint_is_the_raster_extent(tmp_path: Path) -> None:
    item = make_s2_item(
        "S2A_50SQF_20260412_0_L2A",
        datetime="2026-04-12T02:56:31Z",
        epsg=32650,
        assets=_assets(tmp_path),
        tile="50SQF",
    )
    footprint = shape(item.geometry)
    to_ll = Transformer.from_crs(32650, 4326, always_xy=True)
    for x, y in [(600000, 4040000), (600400, 4040000), (600000, 4039600), (600400, 4039600)]:
        lon, lat = to_ll.transform(x, y)
        assert footprint.exterior.distance(Point(lon, lat)) < 1e-6
    centre = Point(*to_ll.transform(600200, 4039800))
    assert footprint.contains(centre)
    assert item.bbox == pytest.approx(list(footprint.bounds))


@pytest.mark.parametrize(
    ("convention", "baseline", "expected"),
    [
        # (scale, offset) the design rule gives, written by hand from design.md
        ("earthsearch_v1", "05.10", (1e-4, -0.1)),
        ("baseline_offset", "04.00", (1e-4, -0.1)),
        ("baseline_offset", "05.09", (1e-4, -0.1)),
        ("boa_applied", "05.09", (1e-4, 0.0)),
        ("legacy", "03.01", (1e-4, 0.0)),
        ("scale_only", "05.10", (1e-4, 0.0)),
    ],
)
def test_conventions_metadata(tmp_path: Path, convention: str, baseline: str, expected) -> None:
    item = make_s2_item(
        "S2B_50SQF_20260412_0_L2A",
        datetime=dt.date(2026, 4, 12),
        epsg=32650,
        assets=_assets(tmp_path),
        tile="50SQF",
        baseline=baseline,
        convention=convention,
    )
    assert _rule(item, "red") == pytest.approx(expected)
    # the DN the factory writes decode back to the reflectance under that rule
    scale, offset = _rule(item, "nir")
    dn = reflectance_to_dn(np.array([0.4321]), convention)
    assert dn[0] * scale + offset == pytest.approx(0.4321, abs=1e-9)
    has_rb = "raster:bands" in item.assets["red"].extra_fields
    assert has_rb == (convention in ("earthsearch_v1", "scale_only"))


def test_convention_must_match_baseline(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"04\.00"):
        make_s2_item(
            "x",
            datetime=dt.date(2026, 1, 1),
            epsg=32650,
            assets=_assets(tmp_path),
            tile="50SQF",
            baseline="05.10",
            convention="legacy",
        )
    with pytest.raises(ValueError, match=r"04\.00"):
        make_s2_item(
            "x",
            datetime=dt.date(2026, 1, 1),
            epsg=32650,
            assets=_assets(tmp_path),
            tile="50SQF",
            baseline="03.01",
            convention="baseline_offset",
        )


def test_planetary_style_and_proj_code(tmp_path: Path) -> None:
    item = make_s2_item(
        "S2A_MSIL2A_20260412",
        datetime=dt.date(2026, 4, 12),
        epsg=32651,
        assets=_assets(tmp_path),
        tile="51STA",
        baseline="04.00",
        convention="baseline_offset",
        style="planetary",
        proj_key="proj:code",
    )
    d = item.to_dict(include_self_link=False)
    assert set(d["assets"]) == {"B02", "B03", "B04", "B08", "B11", "SCL"}
    assert all("raster:bands" not in a for a in d["assets"].values())
    assert d["properties"]["proj:code"] == "EPSG:32651"
    assert "proj:epsg" not in d["properties"]
    assert d["properties"]["s2:mgrs_tile"] == "51STA"
    assert _rule(item, "B04") == pytest.approx((1e-4, -0.1))
    with pytest.raises(ValueError, match="raster:bands"):
        make_s2_item(
            "x",
            datetime=dt.date(2026, 1, 1),
            epsg=32650,
            assets=_assets(tmp_path),
            tile="50SQF",
            style="planetary",
            convention="earthsearch_v1",
        )


@pytest.mark.network
def test_item_validates_against_stac_schemas(tmp_path: Path) -> None:
    pytest.importorskip("jsonschema")
    item = make_s2_item(
        "S2B_50SQF_20260412_0_L2A",
        datetime=dt.date(2026, 4, 12),
        epsg=32650,
        assets=_assets(tmp_path),
        tile="50SQF",
    )
    item.validate()


def test_static_catalog_reloads_and_is_relocatable(tmp_path: Path) -> None:
    src = tmp_path / "cogs"
    items = []
    for day in (1, 6, 11):
        assets = {}
        for band, t, s in (("red", T10, (40, 40)), ("scl", T20, (20, 20))):
            arr = np.full(s, 4 if band == "scl" else 1500, np.uint8 if band == "scl" else np.uint16)
            p = write_cog(src / f"{day}" / f"{band}.tif", arr, transform=t, crs=32650)
            assets[band] = (str(p), t, s)
        items.append(
            make_s2_item(
                f"S2B_50SQF_202604{day:02d}_0_L2A",
                datetime=dt.date(2026, 4, day),
                epsg=32650,
                assets=assets,
                tile="50SQF",
            )
        )
    root = write_static_catalog(tmp_path / "cat", items, collection_id="sentinel-2-l2a")
    assert root == (tmp_path / "cat" / "catalog.json").resolve()
    raw = json.loads(root.read_text())
    assert all(not link["href"].startswith("/") for link in raw["links"])
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path / "cat", moved)
    shutil.rmtree(tmp_path / "cat")
    cat = pystac.Catalog.from_file(str(moved / "catalog.json"))
    found = sorted(cat.get_items(recursive=True), key=lambda i: i.id)
    assert [i.id for i in found] == sorted(i.id for i in items)
    assert [c.id for c in cat.get_children()] == ["sentinel-2-l2a"]
    for it in found:
        assert it.collection_id == "sentinel-2-l2a"
        # COGs outside the catalog folder keep a path that still resolves from the copy
        assert Path(it.assets["red"].get_absolute_href()).is_file()


def test_make_archive_farm_on_pixel_edges_gives_exact_ndvi(tmp_path: Path) -> None:
    x0, y0 = 600000.0, 4040000.0
    farm = SyntheticFarm(
        "F1", box(x0 + 100, y0 - 200, x0 + 200, y0 - 100), {"red": 0.05, "nir": 0.45}
    )
    cloudy = np.full((20, 20), 9, np.uint8)
    arc = make_archive(
        tmp_path,
        [farm],
        dates=["2026-04-01", "2026-04-06", "2026-04-11"],
        convention={
            "2026-04-01": "earthsearch_v1",
            "2026-04-06": "legacy",
            "2026-04-11": "boa_applied",
        },
        scl={"2026-04-11": cloudy},
    )
    assert arc.item_ids == (
        "S2B_50SQF_20260401_0_L2A",
        "S2B_50SQF_20260406_0_L2A",
        "S2B_50SQF_20260411_0_L2A",
    )
    cat = pystac.Catalog.from_file(str(arc.catalog))
    items = {i.id: i for i in cat.get_items(recursive=True)}
    for item_id in arc.item_ids:
        item = items[item_id]
        bands = {}
        for key in ("red", "nir"):
            with rasterio.open(item.assets[key].get_absolute_href()) as ds:
                scale, offset = _rule(item, key)
                bands[key] = ds.read(1) * scale + offset
        rows, cols = slice(10, 20), slice(10, 20)  # the farm's 10 x 10 pixels, by hand
        ndvi = (bands["nir"] - bands["red"]) / (bands["nir"] + bands["red"])
        np.testing.assert_allclose(ndvi[rows, cols], (0.45 - 0.05) / (0.45 + 0.05), atol=1e-9)
        mask = np.zeros((40, 40), bool)
        mask[rows, cols] = True
        np.testing.assert_allclose(bands["red"][~mask], 0.13, atol=1e-9)  # bare-soil background
    with rasterio.open(items[arc.item_ids[2]].assets["scl"].get_absolute_href()) as ds:
        assert (ds.read(1) == 9).all()
    with rasterio.open(items[arc.item_ids[0]].assets["swir16"].get_absolute_href()) as ds:
        assert ds.res == (20.0, 20.0) and ds.shape == (20, 20)
    book = gpd.read_file(arc.book)
    assert book.crs.to_epsg() == 32650
    assert list(book.farm_id) == ["F1"] and book.geometry.iloc[0].area == pytest.approx(10000.0)


def test_make_archive_nodata_and_time_varying_values(tmp_path: Path) -> None:
    x0, y0 = 600000.0, 4040000.0
    farm = SyntheticFarm(
        "F1",
        box(x0, y0 - 100, x0 + 100, y0),
        lambda d: {"nir": 0.2 if d.day == 1 else 0.5},
    )
    hole = np.zeros((40, 40), bool)
    hole[:, 30:] = True
    arc = make_archive(
        tmp_path,
        [farm],
        dates=["2026-04-01", "2026-04-06"],
        nodata={"2026-04-06": hole},
        style="planetary",
        convention="legacy",
    )
    cat = pystac.Catalog.from_file(str(arc.catalog))
    items = sorted(cat.get_items(recursive=True), key=lambda i: i.id)
    with rasterio.open(items[0].assets["B08"].get_absolute_href()) as ds:
        assert ds.read(1)[0, 0] == 2000
    with rasterio.open(items[1].assets["B08"].get_absolute_href()) as ds:
        nir = ds.read(1)
    assert nir[0, 0] == 5000
    assert (nir[:, 30:] == 0).all() and (nir[:, :30] > 0).all()
    with rasterio.open(items[1].assets["SCL"].get_absolute_href()) as ds:
        scl = ds.read(1)
    assert (scl[:, 15:] == 0).all() and (scl[:, :15] == 4).all()
