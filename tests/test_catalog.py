"""Tests of agrisat.catalog: band maps and offsets of real items, static and API search, dedupe.

Expected values below were read by hand from the JSON files in tests/data/stac (see SOURCES.md).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pystac
import pytest

from agrisat.catalog import (
    BANDS,
    dedupe_items,
    find_scenes,
    find_scenes_with_report,
    normalize_item,
    parse_baseline,
    redact_text,
    redact_url,
    search_items,
)
from agrisat.errors import CatalogError, ConfigError
from tests.stac_server import StacServer

pytestmark = pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning")

DATA = Path(__file__).parent / "data" / "stac"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
WORLD = (-180.0, -90.0, 180.0, 90.0)


def shared_dir(sub: str) -> Path:
    path = SHARED / sub
    if not path.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{path} is missing; CI must provide the shared data folder")
        pytest.skip(f"{path} is missing (the repo is not beside shared/)")
    return path


def load_items(path: Path) -> list[pystac.Item]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    features = doc["features"] if doc.get("type") == "FeatureCollection" else [doc]
    return [pystac.Item.from_dict(f) for f in features]


def item_by_id(name: str, item_id: str) -> pystac.Item:
    return next(it for it in load_items(DATA / name) if it.id == item_id)


def scaling(item: pystac.Item, band: str) -> tuple[float, float]:
    extra = item.assets[band].extra_fields
    return extra["agrisat:scale"], extra["agrisat:offset"]


# --- 1. real items --------------------------------------------------------------------------

# (file, item id, {band: source key}, tile, epsg, baseline, day, reflectance offset)
REAL_L2A = [
    pytest.param(
        "earthsearch_v1_search_filter_page1.json", "S2B_20EPT_20250731_0_L2A",
        {"red": "red", "nir": "nir", "nir08": "nir08", "scl": "scl", "coastal": "coastal"},
        "20EPT", 32720, "05.11", "2025-07-31", -0.1, id="earthsearch-v1-l2a-declared",
    ),
    pytest.param(
        "earthsearch_v1_search_filter_page1.json", "S2B_T20EPT_20250731T131905_L2A",
        {"red": "red", "swir16": "swir16", "scl": "scl"},
        "20EPT", 32720, "05.11", "2025-07-31", -0.1, id="earthsearch-v1-c1-l2a",
    ),
    pytest.param(
        "earthsearch_v1_search_multiple_collections.json", "S2A_13TDE_20231008_0_L2A",
        {"red": "red", "rededge1": "rededge1", "scl": "scl"},
        "13TDE", 32613, "05.09", "2023-10-08", -0.1, id="earthsearch-v1-2023",
    ),
    pytest.param(
        # no raster:bands; baseline 05.11 with sentinel:boa_offset_applied true -> 0
        "earthsearch_v0_sentinel-s2-l2a-cogs_search.json", "S2B_20EPT_20250731_0_L2A",
        {"red": "B04", "nir": "B08", "nir08": "B8A", "swir16": "B11", "scl": "SCL"},
        "20EPT", 32720, "05.11", "2025-07-31", 0.0, id="earthsearch-v0-boa-applied",
    ),
    pytest.param(
        # tile and baseline only in sentinel:product_id (..._N0214_R123_T28QCH_...)
        "S2A_28QCH_20200714_0_L2A.json", "S2A_28QCH_20200714_0_L2A",
        {"red": "B04", "nir": "B08", "scl": "SCL", "coastal": "B01"},
        "28QCH", 32628, "02.14", "2020-07-14", 0.0, id="earthsearch-v0-odc",
    ),
    pytest.param(
        "planetarycomputer_sentinel-2-l2a_search_page1_2items.json",
        "S2A_MSIL2A_20190101T000001_R116_T60VUK_20201007T214652",
        {"red": "B04", "nir": "B08", "nir08": "B8A", "rededge3": "B07", "scl": "SCL"},
        "60VUK", 32660, "02.12", "2019-01-01", 0.0, id="planetary-computer-02.12",
    ),
    pytest.param(
        # raster:bands present but without scale/offset -> the baseline (02.12) decides
        "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531_raster_ext.json",
        "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531",
        {"red": "B04", "nir": "B08", "scl": "SCL"},
        "06VVN", 32606, "02.12", "2019-06-29", 0.0, id="planetary-computer-raster-ext",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "item_id", "keys", "tile", "epsg", "baseline", "day", "offset"), REAL_L2A
)
def test_real_l2a_items_are_normalised(name, item_id, keys, tile, epsg, baseline, day, offset):
    raw = item_by_id(name, item_id)
    item = normalize_item(raw)
    assert set(item.assets) <= set(BANDS)
    for band, key in keys.items():
        assert item.assets[band].extra_fields["agrisat:source_key"] == key
        assert item.assets[band].href == raw.assets[key].href
    assert item.properties["agrisat:tile"] == tile
    assert item.properties["agrisat:epsg"] == epsg
    assert item.properties["agrisat:baseline"] == baseline
    assert item.properties["agrisat:day"] == day
    assert scaling(item, "red") == pytest.approx((1e-4, offset))
    assert scaling(item, "nir") == pytest.approx((1e-4, offset))
    assert scaling(item, "scl") == (1.0, 0.0)  # a class map: never scaled
    assert "agrisat:tile" not in raw.properties  # the input is not modified


def test_all_thirteen_bands_found_and_auxiliary_layers_dropped():
    item = normalize_item(
        item_by_id("earthsearch_v0_sentinel-s2-l2a-cogs_search.json", "S2B_20EPT_20250731_0_L2A")
    )
    assert list(item.assets) == list(BANDS)
    v1 = normalize_item(
        item_by_id("earthsearch_v1_search_filter_page1.json", "S2B_20EPT_20250731_0_L2A")
    )
    assert list(v1.assets) == list(BANDS)
    # the COG keys win over their "-jp2" twins
    assert v1.assets["red"].href.endswith(".tif")


def test_pc_item_with_baseline_04_gets_the_offset():
    raw = item_by_id(
        "planetarycomputer_sentinel-2-l2a_search_page1_2items.json",
        "S2A_MSIL2A_20190101T000001_R116_T59VPE_20201007T214658",
    )
    # the recorded PC items are all 02.12; the same item relabelled as reprocessed under 04.00
    for label, expected in [("04.00", -0.1), ("05.10", -0.1), ("03.01", 0.0), ("N0400", -0.1)]:
        copy_ = raw.clone()
        copy_.properties["s2:processing_baseline"] = label
        assert scaling(normalize_item(copy_), "red") == pytest.approx((1e-4, expected)), label
    copy_ = raw.clone()
    copy_.properties["s2:processing_baseline"] = "05.10"
    copy_.properties["earthsearch:boa_offset_applied"] = True
    assert scaling(normalize_item(copy_), "red") == pytest.approx((1e-4, 0.0))
    copy_ = raw.clone()
    del copy_.properties["s2:processing_baseline"]  # falls back to "_N0212_" in s2:product_uri
    assert normalize_item(copy_).properties["agrisat:baseline"] == "02.12"


def test_declared_scale_or_offset_alone_completes_with_defaults():
    raw = item_by_id("S2A_28QCH_20200714_0_L2A.json", "S2A_28QCH_20200714_0_L2A")
    raw.properties["s2:processing_baseline"] = "05.00"
    raw.assets["B04"].extra_fields["raster:bands"] = [{"offset": -0.2}]
    raw.assets["B08"].extra_fields["raster:bands"] = [{"scale": 2e-4}]
    item = normalize_item(raw)
    assert scaling(item, "red") == pytest.approx((1e-4, -0.2))
    assert scaling(item, "nir") == pytest.approx((2e-4, 0.0))
    assert scaling(item, "green") == pytest.approx((1e-4, -0.1))  # undeclared: baseline rule


@pytest.mark.parametrize(
    ("name", "item_id", "words"),
    [
        ("earthsearch_v1_search_filter_page1.json", "S2B_20EPT_20250731_0_L1C", "Level-1C"),
        ("earthsearch_v1_search_filter_page2.json", "S2B_24MVV_20250731_0_L1C", "Level-1C"),
        (
            "earthsearch_v1_search_filter_page1.json",
            "S1A_IW_GRDH_1SSH_20250731T135702_20250731T135722_060328_077F7E",
            "not a Sentinel-2",
        ),
        ("earthsearch_v1_search_multiple_collections.json", "LC08_L2SP_033032_20231008_02_T1", "not a Sentinel-2"),
        ("LC08_L2SP_028030_20200114_20200824_02_T1_SR.json", "LC08_L2SP_028030_20200114_20200824_02_T1_SR", "not a Sentinel-2"),
        # the "fields" search dropped geometry and assets: nothing to read
        ("earthsearch_v1_search_fields_c1-l2a.json", "S2C_T13TDE_20250729T180310_L2A", "no red"),
    ],
)  # fmt: skip
def test_unusable_real_items_are_rejected_by_id(name, item_id, words):
    with pytest.raises(CatalogError) as info:
        normalize_item(item_by_id(name, item_id))
    assert item_id in str(info.value)
    assert words in str(info.value)


# per file of shared/data/stac-items, counted by hand: (normalised, rejected, red offset of the
# normalised ones). Earth Search v1 declares -0.1; the others are 02.xx, or v0 with the offset
# already removed (sentinel:boa_offset_applied), so 0.
SHARED_COUNTS = {
    "earthsearch_v0_sentinel-s2-l2a-cogs_search.json": (1, 0, 0.0),
    "earthsearch_v1_search_fields_c1-l2a.json": (0, 10, None),
    "earthsearch_v1_search_filter_page1.json": (5, 5, -0.1),  # 3 S1 + 2 L1C
    "earthsearch_v1_search_filter_page2.json": (7, 3, -0.1),  # 3 L1C
    "earthsearch_v1_search_multiple_collections.json": (1, 1, -0.1),  # Landsat
    "planetarycomputer_sentinel-2-l2a_search_page1.json": (33, 0, 0.0),
    "odc-stac/LC08_L2SP_028030_20200114_20200824_02_T1_SR.json": (0, 1, None),
    "odc-stac/LC08_L2SR_081119_20200101_20200823_02_T2.json": (0, 1, None),
    "odc-stac/LE07_L2SP_044033_20210329_20210424_02_T1_SR.json": (0, 1, None),
    "odc-stac/S2A_28QCH_20200714_0_L2A.json": (1, 0, 0.0),
    "odc-stac/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json": (1, 0, 0.0),
    "odc-stac/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531_raster_ext.json": (1, 0, 0.0),
    "odc-stac/ga_ls8c_ard_3-1-0_088080_2020-05-25_final.stac-item.json": (0, 1, None),
    "odc-stac/lidar_dem.json": (0, 1, None),
    "odc-stac/only_crs_proj.json": (0, 1, None),
    "odc-stac/site1-20200606-tall-strip-africa.geojson": (9, 0, 0.0),
    "odc-stac/site2-2020_jun_jul-35MNM.geojson": (13, 0, 0.0),
}


def test_every_shared_item_is_normalised_or_rejected_by_name():
    root = shared_dir("stac-items")
    files = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.suffix in {".json", ".geojson"} and p.name != "sentinel-2-l2a.collection.json"
    )
    assert files == sorted(SHARED_COUNTS)
    for name, (n_ok, n_bad, offset) in SHARED_COUNTS.items():
        ok, bad = 0, 0
        for raw in load_items(root / name):
            try:
                item = normalize_item(raw)
            except CatalogError as exc:
                assert raw.id in str(exc)
                bad += 1
                continue
            ok += 1
            assert {"red", "nir", "scl"} <= set(item.assets), raw.id
            assert scaling(item, "red") == pytest.approx((1e-4, offset)), raw.id
            assert scaling(item, "scl") == (1.0, 0.0)
        assert (ok, bad) == (n_ok, n_bad), name


# --- synthetic vocabularies and helpers -------------------------------------------------------


def make_item(
    item_id: str,
    *,
    day: str = "2024-05-01T03:00:00Z",
    tile: str | None = "50SQF",
    keys: tuple[str, ...] = ("red", "nir", "scl"),
    bbox: tuple[float, float, float, float] = (118.0, 36.0, 119.0, 37.0),
    collection: str | None = "sentinel-2-l2a",
    **props: object,
) -> pystac.Item:
    properties: dict[str, object] = {"proj:epsg": 32650, **props}
    if tile:
        properties["s2:mgrs_tile"] = tile
    west, south, east, north = bbox
    geometry = {
        "type": "Polygon",
        "coordinates": [
            [[west, south], [east, south], [east, north], [west, north], [west, south]]
        ],
    }
    item = pystac.Item(
        item_id,
        geometry,
        list(bbox),
        dt.datetime.fromisoformat(day),
        properties,
        collection=collection,
    )
    for key in keys:
        item.add_asset(key, pystac.Asset(f"./{item_id}/{key}.tif", media_type=pystac.MediaType.COG))
    return item


def test_copernicus_keys_prefer_the_finest_resolution():
    keys = (
        "B04_60m",
        "B04_20m",
        "B04_10m",
        "B08_10m",
        "B8A_20m",
        "SCL_60m",
        "SCL_20m",
        "TCI_10m",
        "AOT_20m",
    )
    item = normalize_item(make_item("cdse", keys=keys, **{"processing:version": "05.10"}))
    src = {band: a.extra_fields["agrisat:source_key"] for band, a in item.assets.items()}
    assert src == {"red": "B04_10m", "nir": "B08_10m", "nir08": "B8A_20m", "scl": "SCL_20m"}
    assert scaling(item, "red") == pytest.approx((1e-4, -0.1))


def test_eo_bands_common_names_are_a_fallback():
    item = make_item("eo", keys=())
    for key, band in [
        ("band4", {"name": "x4", "common_name": "red"}),
        ("band8", {"name": "x8", "common_name": "nir"}),
        ("band5", {"name": "x5", "common_name": "rededge", "center_wavelength": 0.704}),
        ("band8a", {"name": "x8a", "common_name": "rededge", "center_wavelength": 0.865}),
    ]:
        item.add_asset(key, pystac.Asset(f"{key}.tif", extra_fields={"eo:bands": [band]}))
    out = normalize_item(item)
    src = {band: a.extra_fields["agrisat:source_key"] for band, a in out.assets.items()}
    assert src == {"red": "band4", "rededge1": "band5", "nir": "band8", "nir08": "band8a"}  # fmt: skip


def test_crs_from_proj_code_on_an_asset_or_the_mgrs_tile():
    item = make_item("code", tile=None)
    del item.properties["proj:epsg"]
    item.assets["red"].extra_fields["proj:code"] = "EPSG:32650"
    assert normalize_item(item).properties["agrisat:epsg"] == 32650
    south = make_item("south", tile="35MNM")
    del south.properties["proj:epsg"]
    assert normalize_item(south).properties["agrisat:epsg"] == 32735


def test_item_without_crs_is_rejected_by_id():
    item = make_item("S2X_NO_CRS_ITEM", tile=None)
    del item.properties["proj:epsg"]
    with pytest.raises(CatalogError, match=r"S2X_NO_CRS_ITEM.*no CRS"):
        normalize_item(item)


def test_day_is_the_utc_date():
    item = make_item("tz", day="2024-05-02T01:30:00+08:00")  # 2024-05-01T17:30Z
    assert normalize_item(item).properties["agrisat:day"] == "2024-05-01"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("05.10", (5, 10)),
        ("04.00", (4, 0)),
        ("3.1", (3, 1)),
        ("N0400", (4, 0)),
        ("0212", (2, 12)),
        ("x", None),
        (None, None),
    ],
)
def test_parse_baseline(text, parsed):
    assert parse_baseline(text) == parsed
    assert (parse_baseline("3.1") < parse_baseline("04.00")) and parse_baseline(
        "N0510"
    ) > parse_baseline("4.0")


def test_redact_url_strips_signatures():
    signed = (
        "https://sentinel2l2a01.blob.core.windows.net/x/B04.tif?st=2024&se=2025&sig=AbC%2Bsecret"
    )
    assert redact_url(signed) == "https://sentinel2l2a01.blob.core.windows.net/x/B04.tif"
    assert redact_url("https://user:pw@host:8080/a?token=1#frag") == "https://host:8080/a"
    assert redact_url("/data/catalog.json") == "/data/catalog.json"
    # requests' messages quote the path and query without the host
    message = "Max retries exceeded with url: /api/stac/v1/search?token=SECRET&x=1 (Caused by ...)"
    assert "SECRET" not in redact_text(message) and "/api/stac/v1/search" in redact_text(message)
    assert redact_text(f"failed on {signed} - retry") == (
        "failed on https://sentinel2l2a01.blob.core.windows.net/x/B04.tif - retry"
    )


# --- 2. static catalogs ------------------------------------------------------------------------


def write_catalog(root: Path, items: list[pystac.Item]) -> Path:
    catalog = pystac.Catalog("test-archive", "synthetic S2 archive")
    collections: dict[str, pystac.Collection] = {}
    for item in items:
        name = item.collection_id or "none"
        if name not in collections:
            extent = pystac.Extent(
                pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
                pystac.TemporalExtent([[dt.datetime(2015, 1, 1, tzinfo=dt.UTC), None]]),
            )
            collections[name] = pystac.Collection(name, name, extent)
            catalog.add_child(collections[name])
        collections[name].add_item(item)
    catalog.normalize_hrefs(str(root))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def archive_items() -> list[pystac.Item]:
    es = ("red", "nir", "scl", "green")
    pc = ("B04", "B08", "SCL", "B03")
    return [
        make_item("A_es_0501_50SQF", keys=es, **{"s2:processing_baseline": "05.10"}),
        make_item("B_es_0510_late", day="2024-05-10T23:59:30Z", keys=es),
        make_item("C_es_0511_early", day="2024-05-11T00:00:10Z", keys=es),
        # same tile and day as A, older baseline: loses to A
        make_item("D_pc_0501_50SQF", keys=pc, **{"s2:processing_baseline": "02.12"}),
        # same day, another tile: kept beside A
        make_item("E_pc_0501_50SQG", tile="50SQG", keys=pc, bbox=(118.9, 36.0, 120.0, 37.0)),
        make_item("F_far_away", tile="31UDQ", keys=es, bbox=(2.0, 48.0, 3.0, 49.0)),
        make_item("G_other_collection", day="2024-05-03T03:00:00Z", keys=es, collection="other"),
    ]


SHANDONG = (118.85, 36.5, 118.95, 36.6)  # on tiles 50SQF and 50SQG


def test_static_catalog_filters_bbox_dates_collection(tmp_path):
    path = write_catalog(tmp_path / "arch", archive_items())
    ids = {
        it.id for it in search_items(str(path), bbox=SHANDONG, start="2024-05-01", end="2024-05-10")
    }
    # F is elsewhere, C is acquired after the (inclusive) end day
    assert ids == {
        "A_es_0501_50SQF",
        "B_es_0510_late",
        "D_pc_0501_50SQF",
        "E_pc_0501_50SQG",
        "G_other_collection",
    }
    ids = {
        it.id
        for it in search_items(
            str(path), bbox=SHANDONG, collection="sentinel-2-l2a", start=dt.date(2024, 5, 2)
        )
    }
    assert ids == {"B_es_0510_late", "C_es_0511_early"}
    # a bbox touching only tile 50SQG
    # the folder stands for its catalog.json
    ids = {it.id for it in search_items(str(path.parent), bbox=(119.5, 36.2, 119.6, 36.3))}
    assert ids == {"E_pc_0501_50SQG"}
    assert search_items(str(path), bbox=SHANDONG, end="2024-04-30") == []


@pytest.mark.parametrize("reverse", [False, True])
def test_static_find_scenes_dedupes_regardless_of_order(tmp_path, reverse):
    items = archive_items()[::-1] if reverse else archive_items()
    path = write_catalog(tmp_path / "arch", items)
    result = find_scenes_with_report(
        str(path), bbox=SHANDONG, end="2024-05-10", collection="sentinel-2-l2a"
    )
    assert [it.id for it in result.items] == [
        "A_es_0501_50SQF",
        "E_pc_0501_50SQG",
        "B_es_0510_late",
    ]
    assert [i for i, _ in result.duplicates] == ["D_pc_0501_50SQF"]
    assert "A_es_0501_50SQF" in result.duplicates[0][1] and "baseline" in result.duplicates[0][1]
    # relative asset hrefs come out absolute, inside the catalog folder
    href = result.items[0].assets["red"].href
    assert Path(href).is_absolute() and Path(href).is_relative_to(tmp_path / "arch")
    pc = result.items[1]
    assert pc.assets["red"].extra_fields["agrisat:source_key"] == "B04"
    again = find_scenes(str(path), bbox=SHANDONG, end="2024-05-10", collection="sentinel-2-l2a")
    assert [it.id for it in again] == [it.id for it in result.items]


def test_static_item_collection_and_single_item_files():
    ids = [
        it.id
        for it in search_items(str(DATA / "earthsearch_v1_search_filter_page2.json"), bbox=WORLD)
    ]
    assert len(ids) == 10 and ids[0] == "S2B_24MVV_20250731_0_L2A"
    l1c = search_items(
        str(DATA / "earthsearch_v1_search_filter_page2.json"),
        bbox=WORLD,
        collection="sentinel-2-l1c",
    )
    assert len(l1c) == 3
    one = search_items(str(DATA / "S2A_28QCH_20200714_0_L2A.json"), bbox=(-17.0, 20.0, -16.0, 21.0))
    assert [it.id for it in one] == ["S2A_28QCH_20200714_0_L2A"]


def test_bad_catalog_path_and_dates(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        search_items(str(tmp_path / "nope.json"), bbox=SHANDONG)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CatalogError, match=r"bad\.json"):
        search_items(str(tmp_path / "bad.json"), bbox=SHANDONG)
    with pytest.raises(ConfigError):
        search_items(str(tmp_path / "bad.json"), bbox=SHANDONG, start="2024-13-45")
    with pytest.raises(ConfigError):
        search_items(
            str(tmp_path / "bad.json"), bbox=SHANDONG, start="2024-05-02", end="2024-05-01"
        )


# --- dedupe rule, criterion by criterion ----------------------------------------------------------


@pytest.mark.parametrize(
    ("winner", "loser", "why"),
    [
        (make_item("w", keys=("red", "nir", "scl")), make_item("z", keys=("red", "nir")), "SCL"),
        (make_item("a", **{"s2:processing_baseline": "4.0"}), make_item("z", **{"s2:processing_baseline": "03.01"}), "baseline"),
        (make_item("a", **{"s2:nodata_pixel_percentage": 10.0}), make_item("z", **{"s2:nodata_pixel_percentage": 60.0}), "covers more"),
        (make_item("a", updated="2024-05-02T00:00:00Z"), make_item("z", updated="2024-05-01T00:00:00Z"), "processed later"),
        (make_item("b"), make_item("a"), "id"),
    ],
)  # fmt: skip
def test_dedupe_rule(winner, loser, why):
    for order in ([winner, loser], [loser, winner]):
        kept, dropped = dedupe_items([normalize_item(it) for it in order])
        assert [it.id for it in kept] == [winner.id]
        assert [it.id for it, _ in dropped] == [loser.id]
        assert why in dropped[0][1]


def test_dedupe_sorts_by_day_tile_id_and_keeps_other_tiles():
    items = [
        make_item("x2", day="2024-05-02T03:00:00Z", tile="50SQF"),
        make_item("x1", tile="50SQG"),
        make_item("x0", tile="50SQF"),
    ]
    kept, dropped = dedupe_items([normalize_item(it) for it in items])
    assert [it.id for it in kept] == ["x0", "x1", "x2"] and dropped == []


# --- 3. STAC API ----------------------------------------------------------------------------------


@pytest.fixture
def stac_server() -> Iterator[StacServer]:
    server = StacServer().start()
    yield server
    server.stop()


PAGE1_IDS = [
    f["id"]
    for f in json.loads((DATA / "earthsearch_v1_search_filter_page1.json").read_text())["features"]
]
PAGE2_IDS = [
    f["id"]
    for f in json.loads((DATA / "earthsearch_v1_search_filter_page2.json").read_text())["features"]
]


def test_api_search_pages_through_all_pages(stac_server):
    items = search_items(stac_server.url, bbox=WORLD, start="2025-07-01", end="2025-07-31")
    assert [it.id for it in items] == PAGE1_IDS + PAGE2_IDS
    requests_ = stac_server.search_requests()
    assert len(requests_) == 2  # paging really happened
    first, second = (body for _, body in requests_)
    assert first["collections"] == ["sentinel-2-l2a"] and first["bbox"] == list(WORLD)
    assert (
        first["datetime"].startswith("2025-07-01T00:00:00")
        and "2025-07-31T23:59:59" in first["datetime"]
    )
    assert second == {"next": stac_server.token}


def test_api_max_items_stops_paging(stac_server):
    items = search_items(stac_server.url, bbox=WORLD, max_items=4)
    assert [it.id for it in items] == PAGE1_IDS[:4]
    assert len(stac_server.search_requests()) == 1


def test_api_find_scenes_normalises_and_dedupes(stac_server):
    result = find_scenes_with_report(stac_server.url, bbox=WORLD)
    # by hand: 12 L2A items (6 sentinel-2-l2a, 6 sentinel-2-c1-l2a) over 6 tiles, all 2025-07-31;
    # in each pair the sentinel-2-l2a item was updated later; 3 S1 + 5 L1C are unusable
    assert [it.id for it in result.items] == [
        "S2B_20EPT_20250731_0_L2A", "S2B_24MUA_20250731_0_L2A", "S2B_24MUV_20250731_0_L2A",
        "S2B_24MVV_20250731_0_L2A", "S2B_24MWV_20250731_0_L2A", "S2B_24MXV_20250731_0_L2A",
    ]  # fmt: skip
    assert len(result.rejected) == 8 and len(result.duplicates) == 6
    assert all(i.startswith("S2B_T") for i, _ in result.duplicates)
    for item in result.items:
        assert scaling(item, "red") == pytest.approx((1e-4, -0.1))
        assert item.properties["agrisat:day"] == "2025-07-31"


def test_api_http_500_is_a_catalog_error(stac_server):
    with pytest.raises(CatalogError, match=r"fail500.*failed") as info:
        search_items(stac_server.base + "/fail500/", bbox=WORLD)
    assert "500" in str(info.value)
    with pytest.raises(CatalogError, match="HTTP 500"):
        search_items(stac_server.base + "/down/", bbox=WORLD)


def test_api_timeout_does_not_hang(stac_server):
    started = time.monotonic()
    with pytest.raises(CatalogError, match="slow"):
        search_items(stac_server.base + "/slow/", bbox=WORLD, timeout=0.5)
    assert time.monotonic() - started < 2.5


def test_unreachable_api_is_a_catalog_error():
    with pytest.raises(CatalogError, match="cannot reach"):
        search_items("http://127.0.0.1:9/stac/", bbox=WORLD, timeout=1)


# --- 5. Planetary Computer signing ----------------------------------------------------------------


def test_planetary_computer_items_are_signed(stac_server, monkeypatch, caplog):
    import planetary_computer
    import pystac_client

    from agrisat.catalog import search as search_module

    pc_url = "https://planetarycomputer.microsoft.com/api/stac/v1"
    real_open = pystac_client.Client.open
    opened: list[tuple[str, object]] = []
    signed: list[str] = []

    def fake_open(url, **kwargs):  # PC's landing page -> the local server
        opened.append((url, kwargs.get("modifier")))
        return real_open(stac_server.url, **kwargs)

    def fake_sign(obj):  # pystac-client hands over each page as a dict, like the real one takes
        features = obj["features"] if isinstance(obj, dict) else list(obj)
        for feature in features:
            signed.append(feature["id"])
            for asset in feature["assets"].values():
                asset["href"] += "?st=2025&sig=TOPSECRET"

    monkeypatch.setattr(search_module, "_fetch_json", lambda url, timeout: stac_server.landing("/"))
    monkeypatch.setattr(pystac_client.Client, "open", staticmethod(fake_open))
    monkeypatch.setattr(planetary_computer, "sign_inplace", fake_sign)
    caplog.set_level(logging.DEBUG)
    scenes = find_scenes(pc_url, bbox=WORLD)
    assert opened and opened[0][0] == pc_url and opened[0][1] is not None
    assert sorted(signed) == sorted(PAGE1_IDS + PAGE2_IDS)
    assert scenes and all("sig=TOPSECRET" in a.href for it in scenes for a in it.assets.values())
    assert "TOPSECRET" not in caplog.text

    # any other host: no modifier
    opened.clear()
    search_items(stac_server.url, bbox=WORLD, max_items=1)
    assert opened[0][1] is None


@pytest.mark.network
def test_planetary_computer_live():
    items = find_scenes(
        "https://planetarycomputer.microsoft.com/api/stac/v1",
        bbox=(117.0, 36.6, 117.05, 36.65),
        start="2024-05-01",
        end="2024-05-20",
    )
    assert items
    assert all("sig=" in it.assets["red"].href for it in items)
    assert all(it.properties["agrisat:tile"] for it in items)


def test_an_item_without_acquisition_time_is_a_clear_error() -> None:
    """A STAC item may carry only a start/end range; agrisat names the item and what to add."""
    from agrisat.errors import CatalogError
    from agrisat.ledger import scene_day

    start, end = dt.datetime(2026, 5, 1, tzinfo=dt.UTC), dt.datetime(2026, 5, 2, tzinfo=dt.UTC)
    item = pystac.Item(
        "S2_RANGE_ONLY", None, None, None, {}, start_datetime=start, end_datetime=end
    )
    with pytest.raises(CatalogError, match=r"S2_RANGE_ONLY.*agrisat:day"):
        scene_day(item)
    item.properties["agrisat:day"] = "2026-05-01"
    assert scene_day(item) == "2026-05-01"
