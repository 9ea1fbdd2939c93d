"""Scenes without SCL beside scenes with SCL: each keeps what it knows about the sky.

A read loads SCL for all its scenes or for none. One scene without SCL in a batch must not
switch the cloud mask off for the batch's other scenes (their cloudy looks would become ``ok``
looks of a cloud's NDVI), and a same-day tile of unknown sky must not replace a look the
cloud mask found cloudy: two tiles of one day see the farm under the same sky.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import pytest
from shapely.geometry import box

from agrisat.catalog import find_scenes
from agrisat.config import Settings
from agrisat.cube import grid_for, masked_read
from agrisat.errors import CatalogError
from agrisat.observations import read_observations
from agrisat.pipeline import run
from agrisat.pixels import direct_source
from agrisat.stack import prepared_stack
from agrisat.testing import SyntheticFarm, make_archive, write_static_catalog
from agrisat.zonal import resolve_same_day

X0, Y0 = 600000.0, 4040000.0
DAYS = ["2026-05-01", "2026-05-06", "2026-05-11"]
GREEN = {"blue": 0.04, "green": 0.08, "red": 0.05, "nir": 0.40, "swir16": 0.20}
BARE = {"blue": 0.10, "green": 0.14, "red": 0.20, "nir": 0.25, "swir16": 0.30}


def _ndvi(refl: dict[str, float]) -> float:
    return (refl["nir"] - refl["red"]) / (refl["nir"] + refl["red"])


def _f2(date: dt.date) -> dict[str, float]:
    """Farm F2: bare on the first date only (each scene's values land on its own rows)."""
    return BARE if date.isoformat() == DAYS[0] else GREEN


WORLD = (-180.0, -90.0, 180.0, 90.0)


def _farms() -> list[SyntheticFarm]:
    return [
        SyntheticFarm(
            f"F{i}",
            box(X0 + 40 + 120 * i, Y0 - 200, X0 + 120 + 120 * i, Y0 - 60),
            _f2 if i == 2 else GREEN,
        )
        for i in range(3)
    ]


def _cloud() -> np.ndarray:
    cloud = np.full((20, 20), 4, np.uint8)
    cloud[:, :8] = 9  # F0 under cloud (20 m grid: x < 160 m)
    return cloud


def _items(catalog: Path) -> list[pystac.Item]:
    """The catalog's items, asset hrefs absolute (ready for another static catalog)."""
    items = [i.clone() for i in pystac.Catalog.from_file(str(catalog)).get_items(recursive=True)]
    for it in items:
        for asset in it.assets.values():
            asset.href = asset.get_absolute_href() or asset.href
    return items


def _without_scl(items: list[pystac.Item], days: set[str]) -> list[pystac.Item]:
    """``items`` with the SCL asset removed from those acquired on ``days``."""
    for it in items:
        if it.datetime is not None and it.datetime.date().isoformat() in days:
            it.assets.pop("scl")
    return items


def _looks(work: Path) -> pd.DataFrame:
    obs = read_observations(work)
    obs["date"] = pd.to_datetime(obs["date"]).dt.strftime("%Y-%m-%d")
    return obs.sort_values(["farm_id", "date"]).reset_index(drop=True)


def _settings(**cube: object) -> Settings:
    # one batch for every scene: the mixed batch of the finding
    s = Settings().replace("run", indices=("ndvi",), batch_items=24, end=DAYS[-1])
    return s.replace("cube", **cube) if cube else s


# --- a batch mixing scenes with and without SCL ----------------------------------------------


@pytest.mark.parametrize(
    "cube",
    [{}, {"direct_read": False}],
    ids=["direct-fused", "odc-stac"],
)
def test_scenes_with_scl_keep_their_mask_in_a_mixed_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cube: dict[str, object]
) -> None:
    arc = make_archive(tmp_path / "arc", _farms(), dates=DAYS, scl={DAYS[1]: _cloud()})
    items = _without_scl(_items(arc.catalog), {DAYS[0]})
    catalog = write_static_catalog(tmp_path / "mixed", items)
    with caplog.at_level(logging.WARNING, logger="agrisat.ingest"):
        res = run(arc.book, str(catalog), tmp_path / "w", settings=_settings(**cube), detect=False)
    assert res.exit_code == 0
    obs = _looks(tmp_path / "w")
    assert len(obs) == 3 * len(DAYS)
    # the scene with SCL still masks the cloud over F0: a cloudy look with a measured share
    f0 = obs[(obs["farm_id"] == "F0") & (obs["date"] == DAYS[1])].iloc[0]
    assert f0["status"] == "cloudy"
    assert np.isfinite(f0["clear_fraction"]) and f0["clear_fraction"] < 0.5
    assert np.isnan(f0["ndvi_mean"])  # no clear pixel: no index value from the cloud
    masked = obs[obs["date"] != DAYS[0]]
    assert masked["clear_fraction"].notna().all()
    assert (masked.loc[masked["farm_id"] != "F0", "clear_fraction"] > 0.99).all()
    # only the scene without SCL has an unknown sky (its looks are still ok looks)
    blind = obs[obs["date"] == DAYS[0]]
    assert blind["clear_fraction"].isna().all() and blind["clear_pixels"].isna().all()
    assert (blind["status"] == "ok").all() and blind["ndvi_mean"].notna().all()
    # the two reads' rows carry their own scenes' values (F2 is bare on the first date only)
    f2 = obs[obs["farm_id"] == "F2"].set_index("date")["ndvi_mean"]
    assert f2[DAYS[0]] == pytest.approx(_ndvi(BARE), abs=0.01)
    assert f2[DAYS[1]] == pytest.approx(_ndvi(GREEN), abs=0.01)
    assert f2[DAYS[2]] == pytest.approx(_ndvi(GREEN), abs=0.01)
    said = [r.getMessage() for r in caplog.records if "carry no SCL" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"1 of {len(DAYS)} scene(s)")


def test_a_read_refuses_to_mix_scenes_with_and_without_scl(tmp_path: Path) -> None:
    arc = make_archive(tmp_path / "arc", _farms(), dates=DAYS[:2])
    items = find_scenes(str(arc.catalog), bbox=WORLD)
    assert masked_read(items) is True
    assert masked_read([]) is True
    items[0].assets.pop("scl")
    assert masked_read(items[:1]) is False
    grid = grid_for((X0, Y0 - 400, X0 + 400, Y0), 32650, resolution=10.0)
    for read in (
        lambda: masked_read(items),
        lambda: direct_source(items, grid, indices=["ndvi"]),
        lambda: prepared_stack(items, grid, indices=["ndvi"]),
    ):
        with pytest.raises(CatalogError, match=f"1 of 2 items.*{items[0].id}"):
            read()


# --- two tiles of one day, one without SCL ---------------------------------------------------


def _two_tiles(root: Path) -> tuple[Path, list[pystac.Item], list[pystac.Item]]:
    """Tile A (SCL, F0 under cloud on DAYS[1]) and tile B of the same days without SCL."""
    a = make_archive(root / "A", _farms(), dates=DAYS, scl={DAYS[1]: _cloud()}, tile="50SQF")
    b = make_archive(root / "B", _farms(), dates=DAYS, tile="50SQG")
    return a.book, _items(a.catalog), _without_scl(_items(b.catalog), set(DAYS))


def _assert_cloud_kept(obs: pd.DataFrame) -> None:
    assert len(obs) == 3 * len(DAYS)  # one row per farm and day
    f0 = obs[(obs["farm_id"] == "F0") & (obs["date"] == DAYS[1])].iloc[0]
    assert f0["item_id"].startswith("S2B_50SQF_")
    assert f0["status"] == "cloudy" and f0["clear_fraction"] < 0.5
    # elsewhere tile A's clear looks (known sky) beat tile B's looks of unknown sky
    assert obs["item_id"].str.startswith("S2B_50SQF_").all()
    assert obs["clear_fraction"].notna().all()


def test_same_day_tile_without_scl_in_one_batch(tmp_path: Path) -> None:
    book, tile_a, tile_b = _two_tiles(tmp_path)
    catalog = write_static_catalog(tmp_path / "both", tile_a + tile_b)
    res = run(book, str(catalog), tmp_path / "w", settings=_settings(), detect=False)
    assert res.exit_code == 0
    _assert_cloud_kept(_looks(tmp_path / "w"))


def test_late_tile_without_scl_does_not_replace_a_stored_cloudy_look(tmp_path: Path) -> None:
    book, tile_a, tile_b = _two_tiles(tmp_path)
    first = write_static_catalog(tmp_path / "first", [i.clone() for i in tile_a])
    both = write_static_catalog(tmp_path / "both", tile_a + tile_b)
    work = tmp_path / "w"
    assert run(book, str(first), work, settings=_settings(), detect=False).exit_code == 0
    res = run(book, str(both), work, settings=_settings(), detect=False)  # tile B comes late
    assert res.exit_code == 0 and res.items_new == len(tile_b)
    obs = _looks(work)
    _assert_cloud_kept(obs)


# --- resolve_same_day ------------------------------------------------------------------------


def _rows(*rows: tuple[str, str, float, float]) -> pd.DataFrame:
    """Rows of farm ``a`` on one day: (item_id, status, clear_fraction, clear_pixels)."""
    return pd.DataFrame(
        {
            "farm_id": ["a"] * len(rows),
            "date": ["2024-05-01"] * len(rows),
            "item_id": [r[0] for r in rows],
            "status": [r[1] for r in rows],
            "clear_fraction": [r[2] for r in rows],
            "clear_pixels": [r[3] for r in rows],
        }
    )


def _winner(df: pd.DataFrame) -> list[str]:
    out = resolve_same_day(df)
    # the input order does not matter
    assert list(resolve_same_day(df.iloc[::-1]).item_id) == list(out.item_id)
    return list(out.item_id)


def test_resolve_prefers_a_cloudy_look_of_known_sky_to_an_ok_look_of_unknown_sky() -> None:
    nan = float("nan")
    # "t0" sorts first by id: only the sky decides
    assert _winner(_rows(("t0", "ok", nan, nan), ("t1", "cloudy", 0.1, 5.0))) == ["t1"]
    assert _winner(_rows(("t0", "ok", nan, nan), ("t1", "ok", 0.9, 45.0))) == ["t1"]


def test_resolve_keeps_the_old_order_between_looks_of_known_sky() -> None:
    assert _winner(_rows(("t0", "cloudy", 0.3, 60.0), ("t1", "ok", 0.7, 30.0))) == ["t1"]
    assert _winner(_rows(("t0", "ok", 0.7, 30.0), ("t1", "ok", 0.8, 40.0))) == ["t1"]
    assert _winner(_rows(("t1", "ok", 0.8, 40.0), ("t0", "ok", 0.8, 40.0))) == ["t0"]
    assert _winner(_rows(("t0", "no_data", 0.0, 0.0), ("t1", "too_small", 1.0, 3.0))) == ["t1"]


def test_resolve_ranks_rows_that_judged_no_sky_after_an_unknown_sky() -> None:
    nan = float("nan")
    # no pixel, or too few to count, says nothing about the sky over the farm: the look of
    # unknown sky still has the farm's index value
    assert _winner(_rows(("t0", "no_data", 0.0, 0.0), ("t1", "ok", nan, nan))) == ["t1"]
    assert _winner(_rows(("t0", "too_small", 1.0, 3.0), ("t1", "ok", nan, nan))) == ["t1"]
    # two looks of unknown sky: status, then item id, as before
    assert _winner(_rows(("t1", "ok", nan, nan), ("t0", "ok", nan, nan))) == ["t0"]
    assert _winner(_rows(("t0", "no_data", nan, nan), ("t1", "ok", nan, nan))) == ["t1"]
