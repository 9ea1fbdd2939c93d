"""End to end through the real path: COGs + static STAC catalog → pipeline → store → export."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import pytest
from shapely.geometry import box

from agrisat.config import Settings
from agrisat.observations import read_observations
from agrisat.pipeline import run
from agrisat.store import Store
from agrisat.testing import SyntheticFarm, make_archive

X0, Y0 = 600000.0, 4040000.0
DATES = ["2026-04-01", "2026-04-06", "2026-04-11", "2026-04-16", "2026-04-21"]
CONVENTIONS = {  # one offset convention per date, each must give back the same reflectance
    "2026-04-01": "earthsearch_v1",
    "2026-04-06": "baseline_offset",
    "2026-04-11": "boa_applied",
    "2026-04-16": "legacy",
    "2026-04-21": "scale_only",
}
A = {"red": 0.05, "nir": 0.45, "green": 0.08, "blue": 0.04, "swir16": 0.20}
B = {"red": 0.10, "nir": 0.30, "green": 0.09, "blue": 0.05, "swir16": 0.25}


def _ndvi(r: dict[str, float]) -> float:
    return (r["nir"] - r["red"]) / (r["nir"] + r["red"])


def _archive(root: Path):  # type: ignore[no-untyped-def]
    farms = [
        # laid on pixel edges: 10 x 10 and 6 x 8 pixels
        SyntheticFarm("F1", box(X0 + 40, Y0 - 140, X0 + 140, Y0 - 40), A),
        SyntheticFarm("F2", box(X0 + 200, Y0 - 300, X0 + 280, Y0 - 240), B, crop="maize"),
    ]
    scl = {}
    # 2026-04-06: cloud (SCL 9) over the left half of F1 (20 m pixels 2..6 of rows 2..6)
    cloud = np.full((20, 20), 4, np.uint8)
    cloud[2:7, 2:5] = 9
    scl["2026-04-06"] = cloud
    # 2026-04-11: F2 under standing water (SCL 6) in its top half
    water = np.full((20, 20), 4, np.uint8)
    water[12:13, 10:14] = 6
    scl["2026-04-11"] = water
    # 2026-04-16: fully cloudy
    scl["2026-04-16"] = np.full((20, 20), 8, np.uint8)
    return make_archive(root, farms, dates=DATES, convention=CONVENTIONS, scl=scl)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return _archive(tmp_path_factory.mktemp("archive"))


def test_every_offset_convention_gives_the_true_ndvi(archive, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run(archive.book, str(archive.catalog), tmp_path / "w")
    assert result.exit_code == 0
    assert result.items_ingested == len(DATES)
    obs = read_observations(tmp_path / "w").set_index(["farm_id", "date"])
    for day in ("2026-04-01", "2026-04-06", "2026-04-11", "2026-04-21"):
        assert obs.loc[("F1", day), "ndvi_mean"] == pytest.approx(_ndvi(A), abs=1e-4), day
        assert obs.loc[("F2", day), "ndvi_mean"] == pytest.approx(_ndvi(B), abs=1e-4), day
        ndmi = (A["nir"] - A["swir16"]) / (A["nir"] + A["swir16"])
        assert obs.loc[("F1", day), "ndmi_mean"] == pytest.approx(ndmi, abs=1e-4), day


def test_scl_masking_water_and_cloudy_dates(archive, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run(archive.book, str(archive.catalog), tmp_path / "w")
    obs = read_observations(tmp_path / "w").set_index(["farm_id", "date"])
    # F1 spans 20 m columns 2..6 (x 40..140 m): cloud over columns 2..4 → 60 of 100 m wide... by hand:
    # F1 covers x in [40, 140); cloud covers 20 m columns 2,3,4 = x in [40, 100) → 60 % of F1
    f1 = obs.loc[("F1", "2026-04-06")]
    assert f1.clear_fraction == pytest.approx(0.4, abs=1e-6)
    assert f1.status == "cloudy"
    assert f1.ndvi_mean == pytest.approx(_ndvi(A), abs=1e-4)  # the clear part still measured
    # F2 rows y in [240, 300) m = 20 m rows 12..14; water in row 12 → a third of F2
    f2 = obs.loc[("F2", "2026-04-11")]
    assert f2.water_fraction == pytest.approx(1 / 3, abs=1e-6)
    assert f2.status == "ok"
    for farm in ("F1", "F2"):
        row = obs.loc[(farm, "2026-04-16")]
        assert row.status == "cloudy"
        assert row.clear_fraction == 0.0
        assert np.isnan(row.ndvi_mean)


def test_rerun_is_idempotent_and_incremental_matches_one_shot(archive, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import agrisat.book as book_mod

    one = tmp_path / "one"
    run(archive.book, str(archive.catalog), one)
    manifest = (one / "store" / "manifest.json").read_bytes()
    checked: list[object] = []
    real = book_mod._check

    def counting(*a: object, **k: object) -> object:
        checked.append(a[0])
        return real(*a, **k)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(book_mod, "_check", counting)
        again = run(archive.book, str(archive.catalog), one)
    assert checked == []  # the unchanged book's checks were reused, not redone
    assert again.farms > 0
    assert again.items_new == 0
    assert again.observations_added == 0
    obs_parts = json.loads((one / "store" / "manifest.json").read_bytes())["tables"]["observations"]
    assert obs_parts == json.loads(manifest)["tables"]["observations"]

    inc = tmp_path / "inc"
    first = run(
        archive.book,
        str(archive.catalog),
        inc,
        settings=Settings().replace("run", end="2026-04-06"),
    )
    assert first.items_ingested == 2
    second = run(
        archive.book,
        str(archive.catalog),
        inc,
        settings=Settings().replace("run", end="2026-04-21"),
    )
    assert second.items_new == 3  # only the new scenes are read
    assert second.items_ingested == 3
    pd.testing.assert_frame_equal(read_observations(inc), read_observations(one))
    ledger = Store(inc).read("ledger")
    assert sorted(ledger.item_id) == sorted(archive.item_ids)


def test_same_day_duplicate_keeps_one_row(tmp_path: Path) -> None:
    arc = _archive(tmp_path / "a")
    # re-publish the first item as a reprocessing "_1" with a later `updated`: one row per farm/day
    cat = pystac.Catalog.from_file(str(arc.catalog))
    first = next(i for i in cat.get_items(recursive=True) if i.id.endswith("20260401_0_L2A"))
    dup = first.full_copy()
    dup.id = first.id.replace("_0_L2A", "_1_L2A")
    dup.properties["updated"] = "2026-05-01T00:00:00Z"
    for asset in dup.assets.values():  # same COGs, absolute so the copy can live elsewhere
        asset.href = asset.get_absolute_href()
    coll = next(iter(cat.get_children()))
    coll.add_item(dup)
    cat.normalize_hrefs(str(arc.catalog.parent))
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    result = run(arc.book, str(arc.catalog), tmp_path / "w")
    obs = read_observations(tmp_path / "w")
    assert not obs.duplicated(["farm_id", "date"]).any()
    day1 = obs[obs.date == "2026-04-01"]
    assert set(day1.item_id) == {dup.id}  # the reprocessing wins
    assert result.items_found == len(DATES)


def test_two_utm_zones_and_the_overlap(tmp_path: Path) -> None:
    """Two tiles either side of 120°E; farms in each zone and in the overlap, measured once."""
    from pyproj import Transformer

    # the 120°E meridian at 36.5°N in each zone's coordinates
    t50 = Transformer.from_crs(4326, 32650, always_xy=True)
    t51 = Transformer.from_crs(4326, 32651, always_xy=True)
    x50, y50 = t50.transform(120.0, 36.5)
    x51, y51 = t51.transform(120.0, 36.5)
    o50 = (np.floor((x50 - 1000) / 60) * 60, np.ceil((y50 + 600) / 60) * 60)
    o51 = (np.floor((x51 - 1000) / 60) * 60, np.ceil((y51 + 600) / 60) * 60)
    west = {"red": 0.05, "nir": 0.45, "green": 0.08, "blue": 0.04, "swir16": 0.2}
    east = {"red": 0.10, "nir": 0.30, "green": 0.08, "blue": 0.04, "swir16": 0.2}
    # each tile's raster shows its own constant field, so the value tells which grid measured it
    a50 = make_archive(
        tmp_path / "z50",
        [],
        dates=DATES[:2],
        epsg=32650,
        origin=o50,
        shape=(120, 200),
        background=west,
        tile="50SQF",
    )
    a51 = make_archive(
        tmp_path / "z51",
        [],
        dates=DATES[:2],
        epsg=32651,
        origin=o51,
        shape=(120, 200),
        background=east,
        tile="51STA",
    )
    root = pystac.Catalog("both", "two zones")
    for name, sub in (("z50", a50), ("z51", a51)):
        child = pystac.Catalog.from_file(str(sub.catalog))
        child.id = name  # distinct ids: normalize_hrefs lays children out by id
        root.add_child(child)
    root.normalize_hrefs(str(tmp_path / "root"))
    root.save(pystac.CatalogType.SELF_CONTAINED)

    def farm(lon: float) -> object:
        x, y = t50.transform(lon, 36.5)
        return gpd.GeoSeries([box(x - 30, y - 30, x + 30, y + 30)], crs=32650).to_crs(4326).iloc[0]

    book = gpd.GeoDataFrame(
        {
            "farm_id": ["W", "OW", "OE", "E"],
            "loan_id": ["L1"] * 4,
            "borrower_id": ["B1"] * 4,
            "crop": ["maize"] * 4,
            "exposure": [1.0] * 4,
        },
        geometry=[farm(119.992), farm(119.998), farm(120.002), farm(120.008)],
        crs=4326,
    )
    result = run(book, str(tmp_path / "root" / "catalog.json"), tmp_path / "w")
    assert result.items_ingested == 4
    obs = read_observations(tmp_path / "w")
    assert not obs.duplicated(["farm_id", "date"]).any()
    assert len(obs) == 4 * 2
    got = obs.groupby("farm_id")["ndvi_mean"].first()
    # W lies only in tile 50's raster, E only in 51's; OW/OE are in both: centroid zone decides
    assert got["OW"] == pytest.approx(_ndvi(west), abs=1e-4)
    assert got["OE"] == pytest.approx(_ndvi(east), abs=1e-4)
    assert got["W"] == pytest.approx(_ndvi(west), abs=1e-4)
    assert got["E"] == pytest.approx(_ndvi(east), abs=1e-4)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agrisat", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_end_to_end(archive, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    w = tmp_path / "w"
    res = _cli(
        "run",
        "--book",
        str(archive.book),
        "--catalog",
        str(archive.catalog),
        "--workdir",
        str(w),
        "--end",
        "2026-04-21",
        "--indices",
        "ndvi",
    )
    assert res.returncode == 0, res.stderr
    out = tmp_path / "obs.csv"
    res = _cli("observations", "--workdir", str(w), "--out", str(out))
    assert res.returncode == 0, res.stderr
    df = pd.read_csv(out)
    assert list(df.columns) == [
        "farm_id",
        "date",
        "item_id",
        "status",
        "clear_fraction",
        "clear_pixels",
        "water_fraction",
        "ndvi_mean",
        "ndvi_std",
    ]
    assert len(df) == 2 * len(DATES)
    dt.date.fromisoformat(df.date.iloc[0])  # YYYY-MM-DD


def test_cli_user_errors_are_one_line_exit_2(archive, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = _cli(
        "run",
        "--book",
        str(tmp_path / "missing.gpkg"),
        "--catalog",
        str(archive.catalog),
        "--workdir",
        str(tmp_path / "w"),
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "missing.gpkg" in res.stderr
    res = _cli(
        "run",
        "--book",
        str(archive.book),
        "--catalog",
        str(archive.catalog),
        "--workdir",
        str(tmp_path / "w"),
        "--end",
        "31/12/2026",
    )
    assert res.returncode == 2 and "--end" in res.stderr and "Traceback" not in res.stderr
    res = _cli(
        "observations", "--workdir", str(tmp_path / "nothing"), "--out", str(tmp_path / "o.csv")
    )
    assert res.returncode == 2 and "no agrisat store" in res.stderr


def _add_item(catalog_path: Path, item: pystac.Item) -> None:
    cat = pystac.Catalog.from_file(str(catalog_path))
    for asset in item.assets.values():
        asset.href = asset.get_absolute_href()
    next(iter(cat.get_children())).add_item(item)
    cat.normalize_hrefs(str(catalog_path.parent))
    cat.save(pystac.CatalogType.SELF_CONTAINED)


def test_reprocessed_scene_replaces_the_stored_one(tmp_path: Path) -> None:
    f1 = box(X0 + 40, Y0 - 140, X0 + 140, Y0 - 40)
    arc = make_archive(tmp_path / "a", [SyntheticFarm("F1", f1, A)], dates=DATES[:2])
    redo = make_archive(tmp_path / "b", [SyntheticFarm("F1", f1, B)], dates=DATES[:1])
    w = tmp_path / "w"
    run(arc.book, str(arc.catalog), w, settings=Settings().replace("run", end=DATES[1]))
    obs = read_observations(w).set_index("date")
    assert obs.loc[DATES[0], "ndvi_mean"] == pytest.approx(_ndvi(A), abs=1e-4)

    # the scene of DATES[0] is re-published as a reprocessing with other pixels
    item = next(pystac.Catalog.from_file(str(redo.catalog)).get_items(recursive=True))
    item.id = item.id.replace("_0_L2A", "_1_L2A")
    item.properties["updated"] = "2026-06-01T00:00:00Z"
    _add_item(arc.catalog, item)
    again = run(arc.book, str(arc.catalog), w, settings=Settings().replace("run", end=DATES[1]))
    assert again.items_new == 1
    obs = read_observations(w).set_index("date")
    assert obs.loc[DATES[0], "item_id"] == item.id
    assert obs.loc[DATES[0], "ndvi_mean"] == pytest.approx(_ndvi(B), abs=1e-4)
    assert obs.loc[DATES[1], "ndvi_mean"] == pytest.approx(_ndvi(A), abs=1e-4)
    ledger = Store(w).read("ledger").set_index("item_id")
    assert ledger.loc[item.id.replace("_1_L2A", "_0_L2A"), "status"] == "superseded"
    # a third run changes nothing
    assert (
        run(
            arc.book, str(arc.catalog), w, settings=Settings().replace("run", end=DATES[1])
        ).items_new
        == 0
    )


def test_late_scene_within_lookback_is_picked_up(tmp_path: Path) -> None:
    f1 = box(X0 + 40, Y0 - 140, X0 + 140, Y0 - 40)
    arc = make_archive(tmp_path / "a", [SyntheticFarm("F1", f1, A)], dates=[DATES[0], DATES[2]])
    late = make_archive(tmp_path / "b", [SyntheticFarm("F1", f1, A)], dates=[DATES[1]])
    w = tmp_path / "w"
    run(arc.book, str(arc.catalog), w, settings=Settings().replace("run", end=DATES[2]))
    assert list(read_observations(w).date) == [DATES[0], DATES[2]]
    # DATES[1]'s scene is published after the night of DATES[2]: the next night reads it
    _add_item(
        arc.catalog, next(pystac.Catalog.from_file(str(late.catalog)).get_items(recursive=True))
    )
    nxt = run(arc.book, str(arc.catalog), w, settings=Settings().replace("run", end=DATES[3]))
    assert nxt.items_new == 1
    assert list(read_observations(w).date) == DATES[:3]


def test_run_record_keeps_an_absolute_catalog_path(archive, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(archive.catalog.parent.parent)
    run(archive.book, "catalog/catalog.json", tmp_path / "w", detect=False)
    recorded = Store(tmp_path / "w").read("runs")["catalog"].iloc[-1]
    assert Path(recorded).is_absolute() and Path(recorded) == archive.catalog.resolve()


def test_redetect_recomputes_every_look_with_the_same_result(archive, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """First night: every look computed; next night: only the new dates; ``--redetect``:
    everything again -- and the stored looks and alerts do not change."""
    w = tmp_path / "w"
    base = ["run", "--book", str(archive.book), "--catalog", str(archive.catalog)]
    base += ["--workdir", str(w)]
    for end, extra, mode in (
        ("2026-04-11", [], "full"),
        ("2026-04-21", [], "incremental"),
        ("2026-04-21", ["--redetect"], "full"),
    ):
        if mode == "full" and extra:
            store = Store(w)
            looks_before = {
                t: store.read(t) for t in store.manifest()["tables"] if t.startswith("looks_")
            }
            alerts_before = store.read("alerts")
        res = _cli(*base, "--end", end, *extra)
        assert res.returncode == 0, res.stderr
        assert f"(detection {mode})" in res.stdout
    runs = Store(w).read("runs")
    assert list(runs["detection"]) == ["full", "incremental", "full"]
    store = Store(w)
    looks_after = {t: store.read(t) for t in store.manifest()["tables"] if t.startswith("looks_")}
    assert looks_after.keys() == looks_before.keys() and looks_before
    for t, df in looks_before.items():  # incremental nights append, a full one sorts by farm

        def order(x: pd.DataFrame) -> pd.DataFrame:
            return x.sort_values(["farm_id", "date"]).reset_index(drop=True)

        pd.testing.assert_frame_equal(order(df), order(looks_after[t]))
    pd.testing.assert_frame_equal(alerts_before, store.read("alerts"))
