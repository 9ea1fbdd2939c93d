"""The first night (a full recomputation) in farm partitions equals the one-pass
``full_looks`` exactly (issue #5, memory bounded on a first night)."""

from __future__ import annotations

import itertools
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from agrisat.anomaly import DetectSettings
from agrisat.anomaly.firstnight import look_base, partitioned_looks
from agrisat.anomaly.incremental import full_looks, group_summary
from agrisat.config import Settings
from agrisat.looks import farm_state, read_looks
from agrisat.monitor import alert_history, detect_and_update
from agrisat.store import Store
from agrisat.testing_series import PEER_EVENTS, Event, feed_store, peer_case

ALL = [(pd.Timestamp("1900-01-01"), pd.Timestamp("2200-01-01"))]
NIGHT = "2026-06-30"


EVENTS = [
    *PEER_EVENTS,
    Event("A0009", "flood", "2026-05-01", "2026-05-20"),
    Event("B0002", "no_planting", "2026-03-01", "2026-06-30"),
]


@pytest.fixture(scope="module")
def data() -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    return peer_case((11, 6, 3, 5), EVENTS, start="2024-09-01", seed=11, clouds=0.2, cloud_seed=4)


def _dated(obs: pd.DataFrame) -> pd.DataFrame:
    return obs.assign(date=pd.to_datetime(obs["date"]))


def test_partitioned_looks_equal_full_looks(data) -> None:  # type: ignore[no-untyped-def]
    farms, obs = data
    obs = _dated(obs)
    assert (obs["date"].max() - obs["date"].min()).days > 400  # own history has a year
    want = full_looks(obs, farms)
    parts = list(partitioned_looks(look_base(obs, farms), farms, partition=3))
    assert len(parts) == int(np.ceil(farms["farm_id"].nunique() / 3))
    # each partition is whole farms, in farm order
    ids = [set(p["farm_id"]) for p in parts]
    assert all(not (a & b) for a, b in itertools.pairwise(ids))
    got = pd.concat(parts, ignore_index=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    # the case is not trivial: every hazard's detector fired somewhere, peers of every level
    assert {"drought", "flood", "abrupt_loss"} <= set(want["hazard"])
    assert {"region", "radius", "crop"} <= set(want["peer_level"])
    assert want["own_n"].fillna(0).gt(0).any()


def test_partition_size_does_not_change_the_looks(data) -> None:  # type: ignore[no-untyped-def]
    farms, obs = data
    base = look_base(_dated(obs), farms)
    one = pd.concat(list(partitioned_looks(base, farms, partition=0)), ignore_index=True)
    for size in (1, 7):
        got = pd.concat(list(partitioned_looks(base, farms, partition=size)), ignore_index=True)
        pd.testing.assert_frame_equal(got, one, check_exact=True)


def _settings(partition: int, step_rows: int = 10**9) -> Settings:
    s = Settings().replace("detect", partition_farms=partition)
    return s.replace("run", step_rows=step_rows, first_step_rows=step_rows)


def test_partitioned_first_night_stores_what_full_looks_gives(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Looks, group summaries and farm state of the partitioned first night are those of
    ``full_looks`` on every observation; the alerts those of one partition."""
    farms, obs = data
    tiny, one = Store(tmp_path / "tiny"), Store(tmp_path / "one")
    for st in (tiny, one):
        feed_store(st, obs, "a")
    summary = detect_and_update(tiny, farms, run_date=NIGHT, settings=_settings(3))
    detect_and_update(one, farms, run_date=NIGHT, settings=_settings(0))
    assert summary.detection == "full"
    full = full_looks(_dated(obs), farms)
    m = tiny.manifest()
    assert max(len(m["tables"][t]) for t in m["tables"] if t.startswith("looks_")) > 1
    looks = read_looks(tiny, m, ALL)
    pd.testing.assert_frame_equal(looks, full, check_exact=True)
    groups = tiny.read("look_groups")
    pd.testing.assert_frame_equal(groups, group_summary(full), check_exact=True)
    state = tiny.read("look_farms")
    pd.testing.assert_frame_equal(state, farm_state(_dated(obs), full), check_exact=True)
    a, b = alert_history(tiny), alert_history(one)
    assert len(a) and a.to_csv(index=False) == b.to_csv(index=False)
    assert {"A0003", "A0005"} <= set(a["farm_id"])


def test_stepped_first_night_in_partitions_equals_one_pass(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A long history in steps (the first one partitioned, from scratch) with tiny
    partitions gives the looks and alerts of one pass in one partition."""
    farms, obs = data
    steps, one = Store(tmp_path / "steps"), Store(tmp_path / "one")
    for st in (steps, one):
        feed_store(st, obs, "a")
    detect_and_update(steps, farms, run_date=NIGHT, settings=_settings(4, step_rows=300))
    detect_and_update(one, farms, run_date=NIGHT, settings=_settings(0))
    pd.testing.assert_frame_equal(
        read_looks(steps, steps.manifest(), ALL), read_looks(one, one.manifest(), ALL),
        check_exact=True,
    )  # fmt: skip
    a, b = alert_history(steps), alert_history(one)
    assert len(a) and a.to_csv(index=False) == b.to_csv(index=False)


def test_first_night_without_a_clear_look(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    farms, obs = data
    cloudy = obs[obs["date"] >= "2026-06-01"].assign(status="cloudy", clear_fraction=0.0)
    for col in [c for c in cloudy.columns if c.endswith("_mean")]:
        cloudy[col] = np.nan
    store = Store(tmp_path / "w")
    feed_store(store, cloudy, "a")
    detect_and_update(store, farms, run_date=NIGHT, settings=_settings(3))
    assert read_looks(store, store.manifest(), ALL).empty
    state = store.read("look_farms")
    assert set(state["farm_id"]) == set(cloudy["farm_id"])
    assert state["last_clear"].isna().all() and state["last_status"].eq("cloudy").all()


def test_look_base_is_sorted_clear_looks_of_book_farms(data) -> None:  # type: ignore[no-untyped-def]
    farms, obs = data
    extra = obs.iloc[:3].assign(farm_id="not-in-book")
    obs = obs.copy()
    cloudy = obs.index[::5]
    obs.loc[cloudy, ["clear_fraction", "ndvi_mean"]] = [0.0, np.nan]
    obs.loc[cloudy, "status"] = "cloudy"
    base = look_base(_dated(pd.concat([obs, extra], ignore_index=True)), farms)
    assert "not-in-book" not in set(base["farm_id"])
    assert base.equals(base.sort_values(["farm_id", "date"], kind="stable"))
    assert base["value"].notna().all()
    assert len(base) == len(obs) - len(cloudy)  # cloudy observations are not looks
    assert DetectSettings().partition_farms > 0
