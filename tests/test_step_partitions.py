"""Long steps of a stepped recomputation made a farm partition at a time (issue #5, target
3: a backfill's time linear in farms): the looks of many new dates come out partition by
partition, each staged as made, equal to the one-pass looks; a run killed between two
partitions of a step loses nothing."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from agrisat.anomaly import DetectSettings
from agrisat.anomaly.extend import extend_partitions
from agrisat.anomaly.incremental import context_from_looks, extend_looks, full_looks
from agrisat.config import Settings
from agrisat.lookrun import date_steps
from agrisat.looks import look_tables, read_looks
from agrisat.monitor import alert_history, detect_and_update
from agrisat.store import Store
from agrisat.testing_series import feed_store, step_case

ALL = [(pd.Timestamp("1900-01-01"), pd.Timestamp("2200-01-01"))]
NIGHT = "2026-06-30"


@pytest.fixture(scope="module")
def data() -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    return step_case()


def _settings(partition: int, step_rows: int, first_rows: int | None = None) -> Settings:
    s = Settings().replace("detect", partition_farms=partition)
    return s.replace("run", step_rows=step_rows, first_step_rows=first_rows or step_rows)


def test_partitions_of_many_dates_are_extend_looks_rows(data) -> None:  # type: ignore[no-untyped-def]
    farms, obs = data
    obs = obs.assign(date=pd.to_datetime(obs["date"]))
    full = full_looks(obs, farms)
    dates = sorted(full["date"].unique())
    for d0 in (dates[len(dates) // 3], dates[-20]):  # ~100 and ~200 days of new dates
        d0 = pd.Timestamp(d0)
        ctx = context_from_looks(full, d0=d0, d1=obs["date"].max())
        new = obs[obs["date"] >= d0]
        one = extend_looks(new, farms, ctx, d0=d0, settings=DetectSettings(partition_farms=0))
        parts = list(
            extend_partitions(new, farms, ctx, d0=d0, settings=DetectSettings(partition_farms=3))
        )
        assert len(parts) > 3  # several partitions, each of whole farms
        ids = [set(p["farm_id"]) for p in parts]
        assert all(not (a & b) for i, a in enumerate(ids) for b in ids[i + 1 :])
        got = pd.concat(parts).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, one, check_exact=True)
        want = full[full["date"] >= d0].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want[list(got.columns)], check_exact=True)


def _one_pass(tmp_path: Path, farms: gpd.GeoDataFrame, obs: pd.DataFrame) -> Store:
    one = Store(tmp_path / "one")
    feed_store(one, obs, "a")
    detect_and_update(one, farms, run_date=NIGHT, settings=_settings(0, 10**9))
    return one


def _same(got: Store, want: Store) -> None:
    pd.testing.assert_frame_equal(
        read_looks(got, got.manifest(), ALL), read_looks(want, want.manifest(), ALL),
        check_exact=True,
    )  # fmt: skip
    keys = ["crop", "region", "date", "peer_level"]
    a, b = (st.read("look_groups").sort_values(keys).reset_index(drop=True) for st in (got, want))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for t in ("look_farms", "look_last"):
        pd.testing.assert_frame_equal(got.read(t), want.read(t), check_exact=True)
    a, b = alert_history(got), alert_history(want)
    assert len(a) and a.to_csv(index=False) == b.to_csv(index=False)


def test_long_steps_staged_partition_by_partition_store_one_pass(  # type: ignore[no-untyped-def]
    data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agrisat.lookstage as lookstage

    farms, obs = data
    one = _one_pass(tmp_path, farms, obs)
    per_date = obs.groupby("date").size()
    step_rows = int(per_date.max()) * 25  # ~25 dates a step: longer than the context window
    st = Store(tmp_path / "long")
    feed_store(st, obs, "a")
    planned = date_steps(st, st.manifest(), step_rows, first_rows=int(per_date.max()) * 8)
    assert len(planned) >= 4 and min((hi - lo).days for lo, hi in planned[1:-1]) > 61
    staged: list[tuple[str, int]] = []
    real = lookstage.LookAppender.__call__

    def counting(self, part):  # type: ignore[no-untyped-def]
        staged.append((str(part["date"].min()), part["farm_id"].nunique()))
        real(self, part)

    monkeypatch.setattr(lookstage.LookAppender, "__call__", counting)
    settings = _settings(3, step_rows, int(per_date.max()) * 8)
    assert detect_and_update(st, farms, run_date=NIGHT, settings=settings).detection == "full"
    # every later step (the last one too) staged its looks in partitions of a few farms
    assert len(staged) >= 4 * (len(planned) - 1)
    assert max(n for _, n in staged) <= 3
    _same(st, one)
    # not trivial: open runs crossed step boundaries (the carry of confirmation runs)
    looks = read_looks(st, st.manifest(), ALL)
    crossed = [
        lo for lo, _ in planned[1:]
        if ((looks["date"] >= lo) & (pd.to_datetime(looks["onset"]) < lo)
            & (looks["run_looks"] >= 2)).any()
    ]  # fmt: skip
    assert crossed
    assert {"drought", "abrupt_loss"} <= set(looks["hazard"])


def test_a_run_killed_between_partitions_of_a_step_loses_nothing(  # type: ignore[no-untyped-def]
    data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agrisat.lookstage as lookstage

    farms, obs = data
    one = _one_pass(tmp_path, farms, obs)
    per_date = obs.groupby("date").size()
    settings = _settings(3, int(per_date.max()) * 25, int(per_date.max()) * 8)
    st = Store(tmp_path / "killed")
    feed_store(st, obs, "a")
    real = lookstage.LookAppender.__call__
    calls = [0]

    class Killed(RuntimeError):
        pass

    def dying(self, part):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == 7:  # amid the second step's partitions (of a farm or a few)
            raise Killed
        real(self, part)

    monkeypatch.setattr(lookstage.LookAppender, "__call__", dying)
    with pytest.raises(Killed):
        detect_and_update(st, farms, run_date=NIGHT, settings=settings)
    through = st.manifest()["meta"]["looks"]["through"]
    assert pd.Timestamp(through) < pd.Timestamp(NIGHT)  # earlier steps committed, not this one
    before = set(look_tables(st.manifest()))
    monkeypatch.setattr(lookstage.LookAppender, "__call__", real)
    summary = detect_and_update(st, farms, run_date=NIGHT, settings=settings)
    assert summary.detection == "incremental"  # continued from the committed steps
    assert before < set(look_tables(st.manifest()))
    _same(st, one)
