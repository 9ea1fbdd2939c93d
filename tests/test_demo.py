"""The demo archive generator: contents, conventions, truth, determinism."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import re
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
import shapely
from rasterio.features import geometry_mask
from shapely.geometry import shape

from agrisat.demo import DemoArchive, DemoSpec, build_world, generate_demo
from agrisat.demo.archive import book_geojson
from agrisat.demo.layout import lay_out

REPO = Path(__file__).resolve().parents[1]
HAZARDS = {"drought", "flood", "abrupt_loss", "no_planting"}
CONVENTIONS = {"earthsearch_v1", "baseline_offset", "boa_applied", "legacy", "scale_only"}


def _rule(item: pystac.Item, key: str) -> tuple[float, float]:
    """design.md's scale/offset rule, written out independently of the generator."""
    bands = item.assets[key].extra_fields.get("raster:bands")
    if bands and ("scale" in bands[0] or "offset" in bands[0]):
        return bands[0].get("scale", 1e-4), bands[0].get("offset", 0.0)
    major, minor = item.properties["s2:processing_baseline"].split(".")
    new = (int(major), int(minor)) >= (4, 0)
    boa = item.properties.get("earthsearch:boa_offset_applied", False)
    return 1e-4, -0.1 if new and not boa else 0.0


def _convention(item: pystac.Item) -> str:
    """Name the convention from the metadata alone (module docstring of agrisat.testing.stac)."""
    rb = item.assets["red"].extra_fields.get("raster:bands")
    if rb:
        return "earthsearch_v1" if "offset" in rb[0] else "scale_only"
    major = int(item.properties["s2:processing_baseline"].split(".")[0])
    if major < 4:
        return "legacy"
    if item.properties.get("earthsearch:boa_offset_applied"):
        return "boa_applied"
    return "baseline_offset"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoArchive, float]:
    start = time.perf_counter()
    archive = generate_demo(tmp_path_factory.mktemp("demo"), spec=DemoSpec.small())
    return archive, time.perf_counter() - start


@pytest.fixture(scope="module")
def items(small: tuple[DemoArchive, float]) -> list[pystac.Item]:
    cat = pystac.Catalog.from_file(str(small[0].catalog))
    return sorted(cat.get_items(recursive=True), key=lambda i: i.id)


def test_small_spec_is_quick_and_writes_every_file(small: tuple[DemoArchive, float]) -> None:
    archive, seconds = small
    assert seconds < 30, f"small demo took {seconds:.1f} s"
    for path in (archive.catalog, archive.book, archive.truth, archive.meta):
        assert path.is_file()
    assert archive.catalog.name == "catalog.json"


def test_item_count_and_duplicates(small: tuple[DemoArchive, float], items) -> None:
    spec = DemoSpec.small()
    n_dates = (dt.date(2026, 9, 30) - dt.date(2025, 3, 1)).days // 10 + 1  # by hand
    assert len(items) == 2 * n_dates + 2 * spec.n_duplicates
    by_key: dict[tuple[str, dt.date], list[pystac.Item]] = {}
    for it in items:
        by_key.setdefault((it.properties["grid:code"], it.datetime.date()), []).append(it)
    dups = {k: v for k, v in by_key.items() if len(v) > 1}
    assert len(dups) == 2 * spec.n_duplicates
    for group in dups.values():
        first, second = sorted(group, key=lambda i: i.id)
        assert first.id.endswith("_0_L2A") and second.id.endswith("_1_L2A")
        assert second.properties["updated"] > first.properties["updated"]
        assert Path(second.assets["red"].get_absolute_href()).is_file()
    meta = json.loads(small[0].meta.read_text())
    assert meta["n_items"] == len(items)
    assert len(meta["duplicates"]) == 2 * spec.n_duplicates


def test_items_look_like_earth_search(items) -> None:
    epsgs = set()
    for it in items:
        p = it.properties
        assert re.fullmatch(r"S2[ABC]_(50SQF|51STA)_\d{8}_[01]_L2A", it.id)
        assert {"blue", "green", "red", "nir", "swir16", "scl"} <= set(it.assets)
        assert "scale" not in str(it.assets["scl"].extra_fields.get("raster:bands", ""))
        epsg = int(str(p.get("proj:code", p.get("proj:epsg"))).removeprefix("EPSG:"))
        epsgs.add(epsg)
        assert it.assets["red"].extra_fields["proj:transform"][2] % 60 == 0
        assert 0 <= p["eo:cloud_cover"] <= 100
    assert epsgs == {32650, 32651}


def test_every_convention_present_and_baseline_changes(items) -> None:
    found = {_convention(it) for it in items}
    assert found == CONVENTIONS
    # the first items are legacy, the last Earth Search v1: the archive crosses a change
    originals = sorted((it for it in items if it.id.endswith("_0_L2A")), key=lambda i: i.datetime)
    assert _convention(originals[0]) == "legacy"
    assert _convention(originals[-1]) == "earthsearch_v1"


def test_truth_csv(small: tuple[DemoArchive, float]) -> None:
    archive = small[0]
    with archive.truth.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["event_id", "farm_id", "hazard", "start", "end", "crop", "note"]
    assert {r["hazard"] for r in rows} == HAZARDS
    book = gpd.read_file(archive.book)
    spec = DemoSpec.small()
    farms_by_hazard: dict[str, set[str]] = {}
    for r in rows:
        start, end = dt.date.fromisoformat(r["start"]), dt.date.fromisoformat(r["end"])
        assert spec.season_start <= start <= end <= spec.season_end
        assert r["farm_id"] in set(book.farm_id)
        farms_by_hazard.setdefault(r["hazard"], set()).add(r["farm_id"])
    all_farms = [f for s in farms_by_hazard.values() for f in s]
    assert len(all_farms) == len(set(all_farms)), "event farms must be disjoint"


def test_book(small: tuple[DemoArchive, float]) -> None:
    book = gpd.read_file(small[0].book)
    assert book.crs.to_epsg() == 4326
    assert book.farm_id.is_unique and len(book) == 40
    assert book.borrower_id.str.fullmatch(r"B\d{4}").all()
    assert set(book.crop) <= {"wheat_maize", "winter_wheat", "maize", "other"}
    area_ha = book.to_crs(32650).area / 10_000
    assert area_ha.between(0.1, 5.0).all()
    assert book.exposure.between(20_000, 2_000_000).all()
    assert book.groupby("loan_id").size().between(1, 4).all()
    assert book.groupby("borrower_id").loan_id.nunique().between(1, 3).all()
    utm = book.to_crs(32650).geometry.to_numpy()
    left, right = shapely.STRtree(utm).query(utm, predicate="intersects")
    assert (left == right).all(), "farms must not overlap"


def test_some_farms_lie_in_both_tiles(items, small: tuple[DemoArchive, float]) -> None:
    book = gpd.read_file(small[0].book)
    date = items[0].datetime.date()
    prints = [shape(it.geometry) for it in items if it.datetime.date() == date]
    assert len(prints) == 2
    in_both = book.within(prints[0]) & book.within(prints[1])
    assert 0 < in_both.sum() < len(book)
    assert (book.within(prints[0]) | book.within(prints[1])).all()


def _farm_mean(item: pystac.Item, key: str, geom_ll, clear_scl) -> float | None:
    """Mean decoded reflectance over pixels well inside a farm and clear in SCL."""
    asset = item.assets[key]
    with rasterio.open(asset.get_absolute_href()) as ds:
        farm = gpd.GeoSeries([geom_ll], crs=4326).to_crs(ds.crs).buffer(-12).iloc[0]
        if farm.is_empty:
            return None
        inside = ~geometry_mask([farm], out_shape=ds.shape, transform=ds.transform)
        dn = ds.read(1).astype(float)
    scale, offset = _rule(item, key)
    ok = inside & (dn > 0) & clear_scl(ds.shape)
    if ok.sum() < 4:
        return None
    return float((dn[ok] * scale + offset).mean())


def test_dn_decodes_to_the_phenology_under_each_convention(items) -> None:
    spec = DemoSpec.small()
    world = build_world(spec)
    checked: dict[str, int] = {}
    for it in sorted(items, key=lambda i: i.properties["eo:cloud_cover"]):
        conv = _convention(it)
        if checked.get(conv, 0) >= 1 or it.properties["eo:cloud_cover"] > 5:
            continue
        with rasterio.open(it.assets["scl"].get_absolute_href()) as ds:
            scl = ds.read(1)

        def clear(shape_: tuple[int, int], scl: np.ndarray = scl) -> np.ndarray:
            up = np.kron(scl, np.ones((2, 2), scl.dtype)) if shape_[0] == 2 * scl.shape[0] else scl
            return np.isin(up, (4, 5))

        date = it.datetime.date()
        n_ok = 0
        for p in range(world.land.n_book):
            farm_id = world.land.farm_id[p]
            expected = world.expected_reflectance(farm_id, date)
            for key in ("red", "nir"):
                got = _farm_mean(it, key, world.land.parcels_ll[p], clear)
                if got is None:
                    continue
                # texture and noise average out; a wrong offset would be off by 0.1
                assert got == pytest.approx(expected[key], abs=0.02), (it.id, farm_id, key)
                n_ok += 1
        assert n_ok >= 10, it.id
        checked[conv] = checked.get(conv, 0) + 1
    assert set(checked) == CONVENTIONS, checked


def test_committed_book_is_the_default_spec_book(small: tuple[DemoArchive, float]) -> None:
    # generate_demo writes book_geojson(lay_out(spec)) ...
    assert small[0].book.read_text(encoding="utf-8") == book_geojson(lay_out(DemoSpec.small()))
    # ... and the committed loan book is that text for the default spec
    committed = REPO / "aoi" / "shandong_demo_book.geojson"
    assert committed.read_bytes() == book_geojson(lay_out(DemoSpec())).encode("utf-8")
    assert len(gpd.read_file(committed)) == 300


def test_same_seed_same_bytes_other_seed_other_book(tmp_path: Path) -> None:
    tiny = dataclasses.replace(DemoSpec.small(), revisit_days=40, n_duplicates=1)
    a = generate_demo(tmp_path / "a", spec=tiny, workers=2)
    b = generate_demo(tmp_path / "b", spec=tiny, workers=1)
    assert a.book.read_bytes() == b.book.read_bytes()
    assert a.truth.read_bytes() == b.truth.read_bytes()
    cogs = sorted((a.root / "catalog").glob("sentinel-2-l2a/*_50SQF_20250301_0_L2A/nir.tif"))
    assert len(cogs) == 1
    twin = b.root / cogs[0].relative_to(a.root)
    assert cogs[0].read_bytes() == twin.read_bytes()
    c = generate_demo(tmp_path / "c", spec=dataclasses.replace(tiny, seed=tiny.seed + 1))
    assert c.book.read_bytes() != a.book.read_bytes()


def test_demo_json(small: tuple[DemoArchive, float]) -> None:
    meta = json.loads(small[0].meta.read_text())
    for key in ("spec", "tiles", "season", "n_farms", "n_items", "non_events", "events"):
        assert key in meta
    assert meta["n_farms"] == 40
    assert [t["epsg"] for t in meta["tiles"]] == [32650, 32651]
    kinds = {n["kind"] for n in meta["non_events"]}
    assert {"regional_stress", "early_harvest", "cloudy_weeks", "baseline_change"} <= kinds
    assert meta["season"] == {"start": "2025-10-01", "end": "2026-09-30"}


def test_spec_rejects_nonsense() -> None:
    from agrisat.errors import ConfigError

    with pytest.raises(ConfigError):
        DemoSpec(season_start=dt.date(2027, 1, 1))
    with pytest.raises(ConfigError):
        DemoSpec(overlap_m=10_000)
