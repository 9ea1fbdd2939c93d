"""Farms that join the book, or are redrawn, after the first night get their history read.

The ledger records scenes, not farms: without the catch-up a loan added to the book on a
later night had no observation before that night (no own history, no baseline), and a
redrawn farm kept the old polygon's series. The reference for every check here is a fresh
workdir that had the final book from the start.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pystac
import pytest
from shapely.geometry import box

import agrisat.ingest
from agrisat.catchup import META_KEY
from agrisat.config import Settings
from agrisat.ledger import CATCHUP_TABLE
from agrisat.pipeline import run
from agrisat.store import Store
from agrisat.testing import SyntheticArchive, SyntheticFarm, make_archive, write_static_catalog

DATES = [(dt.date(2026, 4, 1) + dt.timedelta(days=5 * k)).isoformat() for k in range(8)]
CROP = {"red": 0.05, "nir": 0.45}
X0, Y0 = 600000.0, 4040000.0


def _lost(date: dt.date) -> dict[str, float]:
    """Dense crop, then bare from the sixth date: an abrupt loss the alerts must show."""
    return CROP if date < dt.date.fromisoformat(DATES[5]) else {"red": 0.16, "nir": 0.19}


def _plot(i: int) -> box:
    col, row = i % 3, i // 3
    return box(X0 + 40 + 120 * col, Y0 - 140 - 120 * row, X0 + 120 + 120 * col, Y0 - 60 - 120 * row)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> SyntheticArchive:
    farms = [SyntheticFarm(f"P{i}", _plot(i), CROP, crop="other") for i in range(5)]
    farms.append(SyntheticFarm("J", _plot(5), _lost, crop="other"))
    return make_archive(tmp_path_factory.mktemp("arc"), farms, dates=DATES, shape=(40, 40))


SETTINGS = Settings().replace("run", indices=("ndvi",), end=DATES[-1], batch_items=2)


def _without(book: Path, farm: str, out: Path) -> Path:
    gdf = gpd.read_file(book)
    gdf[gdf["farm_id"] != farm].to_file(out)
    return out


def _observations(work: Path) -> pd.DataFrame:
    obs = Store(work).read("observations")
    return obs.sort_values(["farm_id", "date"]).reset_index(drop=True)


def _alerts(work: Path) -> pd.DataFrame:
    alerts = Store(work).read("alerts")
    keep = [c for c in alerts.columns if c not in ("run_id",)]
    return alerts[keep].sort_values(["alert_id", "run_date"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def fresh(archive: SyntheticArchive, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the whole book from the first night."""
    work = tmp_path_factory.mktemp("fresh") / "w"
    assert run(archive.book, str(archive.catalog), work, settings=SETTINGS).exit_code == 0
    return work


def test_the_reference_sees_the_joined_farms_loss(fresh: Path) -> None:
    alerts = _alerts(fresh)
    assert set(alerts.loc[alerts["farm_id"] == "J", "hazard"]) & {"abrupt_loss", "drought"}
    assert (_observations(fresh)["farm_id"] == "J").sum() == len(DATES)


def test_a_farm_that_joins_the_book_gets_its_history(
    archive: SyntheticArchive, fresh: Path, tmp_path: Path
) -> None:
    work = tmp_path / "w"
    first = _without(archive.book, "J", tmp_path / "first.gpkg")
    run(first, str(archive.catalog), work, settings=SETTINGS)
    assert not (_observations(work)["farm_id"] == "J").any()
    # the loan is granted: the same night again, with J in the book
    result = run(archive.book, str(archive.catalog), work, settings=SETTINGS)
    assert result.exit_code == 0 and result.farms_history == 1
    pd.testing.assert_frame_equal(_observations(work), _observations(fresh), check_exact=True)
    pd.testing.assert_frame_equal(_alerts(work), _alerts(fresh), check_exact=True)
    store = Store(work)
    assert store.manifest()["meta"].get(META_KEY) is None  # done: nothing pending
    read = store.read(CATCHUP_TABLE)
    assert sorted(read["item_id"]) == sorted(archive.item_ids)  # each stored scene once
    again = run(archive.book, str(archive.catalog), work, settings=SETTINGS)
    assert again.farms_history == 0 and again.observations_added == 0


def test_a_redrawn_farm_is_read_again_over_its_new_polygon(
    archive: SyntheticArchive, fresh: Path, tmp_path: Path
) -> None:
    # J's polygon first drawn over P4's field: its series is P4's healthy crop
    gdf = gpd.read_file(archive.book)
    wrong = gdf.copy()
    j = wrong["farm_id"] == "J"
    wrong.loc[j, "geometry"] = gdf.loc[gdf["farm_id"] == "P4", "geometry"].to_numpy()
    wrong.to_file(tmp_path / "wrong.gpkg")
    work = tmp_path / "w"
    run(tmp_path / "wrong.gpkg", str(archive.catalog), work, settings=SETTINGS)
    assert not _alerts(work)["farm_id"].eq("J").any()
    # the bank corrects the polygon: J's stored rows are measured again over the right field
    result = run(archive.book, str(archive.catalog), work, settings=SETTINGS)
    assert result.farms_history == 1
    pd.testing.assert_frame_equal(_observations(work), _observations(fresh), check_exact=True)
    pd.testing.assert_frame_equal(_alerts(work), _alerts(fresh), check_exact=True)


def test_a_catch_up_killed_half_way_is_finished_by_the_next_run(
    archive: SyntheticArchive, fresh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "w"
    run(_without(archive.book, "J", tmp_path / "first.gpkg"), str(archive.catalog), work,
        settings=SETTINGS)  # fmt: skip
    real = agrisat.ingest._observe_batch
    calls = {"n": 0}

    def dies_on_the_third_batch(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the process is killed: nothing after this runs
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(agrisat.ingest, "_observe_batch", dies_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        run(archive.book, str(archive.catalog), work, settings=SETTINGS)
    monkeypatch.undo()
    store = Store(work)
    assert store.manifest()["meta"][META_KEY]["farms"] == ["J"]  # remembered with the book
    half = store.read(CATCHUP_TABLE)
    assert len(half) == 4  # two batches of two scenes were committed before the kill
    result = run(archive.book, str(archive.catalog), work, settings=SETTINGS)
    assert result.exit_code == 0
    assert sorted(store.read(CATCHUP_TABLE)["item_id"]) == sorted(archive.item_ids)
    assert store.manifest()["meta"].get(META_KEY) is None
    pd.testing.assert_frame_equal(_observations(work), _observations(fresh), check_exact=True)
    pd.testing.assert_frame_equal(_alerts(work), _alerts(fresh), check_exact=True)


def test_a_pending_farm_that_leaves_the_book_is_forgotten(
    archive: SyntheticArchive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "w"
    without = _without(archive.book, "J", tmp_path / "first.gpkg")
    run(without, str(archive.catalog), work, settings=SETTINGS)

    def killed(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(agrisat.ingest, "_observe_batch", killed)
    with pytest.raises(KeyboardInterrupt):
        run(archive.book, str(archive.catalog), work, settings=SETTINGS)
    monkeypatch.undo()
    assert Store(work).manifest()["meta"][META_KEY]["farms"] == ["J"]
    result = run(without, str(archive.catalog), work, settings=SETTINGS)  # J withdrawn
    assert result.farms_history == 0
    assert Store(work).manifest()["meta"].get(META_KEY) is None
    assert not (_observations(work)["farm_id"] == "J").any()


def test_a_polygon_redrawn_back_and_forth_ends_as_a_fresh_workdir(
    archive: SyntheticArchive, fresh: Path, tmp_path: Path
) -> None:
    # v1 draws J over P4's field, v2 is right; the bank goes v1, v2, v1, v2 on four nights.
    # The second v2 night must read J's history again (a new pending set, not the first v2
    # night's), and rows equal to the first v2 night's must win over v1's again.
    gdf = gpd.read_file(archive.book)
    wrong = gdf.copy()
    wrong.loc[wrong["farm_id"] == "J", "geometry"] = gdf.loc[
        gdf["farm_id"] == "P4", "geometry"
    ].to_numpy()
    v1, v2 = tmp_path / "v1.gpkg", archive.book
    wrong.to_file(v1)
    work = tmp_path / "w"
    for k, book in ((3, v1), (4, v2), (5, v1), (7, v2)):
        s = Settings().replace("run", indices=("ndvi",), end=DATES[k], batch_items=2)
        assert run(book, str(archive.catalog), work, settings=s).exit_code == 0
    pd.testing.assert_frame_equal(_observations(work), _observations(fresh), check_exact=True)


def test_farms_that_join_on_a_tile_the_book_never_reached_get_every_date(
    tmp_path: Path,
) -> None:
    # The old book lies on tile A only; the joined farms on tile B, 50 km east. Tile B's
    # scenes are in no ledger and older than the nightly look-back.
    far = X0 + 50_000.0

    def at(i: int, x0: float) -> box:
        return box(x0 + 40 + 120 * i, Y0 - 140, x0 + 120 + 120 * i, Y0 - 60)

    a = make_archive(
        tmp_path / "A",
        [SyntheticFarm(f"P{i}", at(i, X0), CROP, crop="other") for i in range(3)],
        dates=DATES,
        tile="50SQF",
    )
    b = make_archive(
        tmp_path / "B",
        [SyntheticFarm("Q", at(0, far), _lost, crop="other"), SyntheticFarm("R", at(1, far), CROP, crop="other")],
        dates=DATES,
        tile="50SQG",
        origin=(far, Y0),
    )  # fmt: skip
    items = [
        i.clone()
        for c in (a.catalog, b.catalog)
        for i in pystac.Catalog.from_file(str(c)).get_items(recursive=True)
    ]
    catalog = str(write_static_catalog(tmp_path / "cat", items))
    both = pd.concat([gpd.read_file(a.book), gpd.read_file(b.book)], ignore_index=True)
    both.to_file(tmp_path / "both.gpkg")
    fresh = tmp_path / "fresh"
    run(tmp_path / "both.gpkg", catalog, fresh, settings=SETTINGS)
    work = tmp_path / "w"
    run(a.book, catalog, work, settings=SETTINGS)
    result = run(tmp_path / "both.gpkg", catalog, work, settings=SETTINGS)
    assert result.farms_history == 2
    grown, ref = _observations(work), _observations(fresh)
    assert (ref["farm_id"] == "Q").sum() == len(DATES)
    pd.testing.assert_frame_equal(grown, ref, check_exact=True)
    pd.testing.assert_frame_equal(_alerts(work), _alerts(fresh), check_exact=True)


def test_a_farm_that_joins_with_new_scenes_reads_only_the_older_ones_again(
    archive: SyntheticArchive, fresh: Path, tmp_path: Path
) -> None:
    # J joins on a night that also brings two new scenes: the night's ingestion reads those
    # with J in the book already, so the catch-up reads only the six stored before
    work = tmp_path / "w"
    early = Settings().replace("run", indices=("ndvi",), end=DATES[5], batch_items=2)
    run(_without(archive.book, "J", tmp_path / "first.gpkg"), str(archive.catalog), work,
        settings=early)  # fmt: skip
    result = run(archive.book, str(archive.catalog), work, settings=SETTINGS)
    assert result.exit_code == 0 and result.farms_history == 1
    read = Store(work).read(CATCHUP_TABLE)
    assert sorted(read["day"]) == DATES[:6]
    pd.testing.assert_frame_equal(_observations(work), _observations(fresh), check_exact=True)
    pd.testing.assert_frame_equal(_alerts(work)[_alerts(work)["run_date"] == DATES[-1]]
        .reset_index(drop=True), _alerts(fresh)[_alerts(fresh)["run_date"] == DATES[-1]]
        .reset_index(drop=True), check_exact=True)  # fmt: skip
