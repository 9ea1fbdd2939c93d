"""Incremental nightly detection (issue #5) gives exactly what a full recomputation gives."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agrisat import monitor
from agrisat.anomaly import DetectSettings, classify_looks, look_features
from agrisat.anomaly.incremental import context_from_looks, extend_looks, full_looks
from agrisat.config import Settings
from agrisat.lookrun import date_steps
from agrisat.looks import look_tables, read_looks
from agrisat.monitor import alert_history, detect_and_update
from agrisat.store import Store
from agrisat.testing_series import Event, feed_store, make_farms, make_observations

EVENTS = [
    Event("F0003", "abrupt_loss", "2026-04-22", "2026-06-10"),
    Event("F0005", "drought", "2026-03-20", "2026-05-30"),
    Event("F0011", "flood", "2026-05-01", "2026-05-20"),
]
ALL = [(pd.Timestamp("1900-01-01"), pd.Timestamp("2200-01-01"))]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    farms = make_farms(20)
    obs = make_observations(farms, events=EVENTS, start="2024-10-01", end="2026-06-30", seed=11)
    obs["date"] = pd.to_datetime(obs["date"]).dt.strftime("%Y-%m-%d")
    return farms, obs


def _nights(obs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Nightly deliveries: every 8 days the new dates; one date arrives in two halves on two
    nights (a late tile), and one look turns cloudy when a reprocessed scene supersedes it."""
    out = []
    prev = "0000"
    dates = sorted(obs["date"].unique())
    late_day = next(d for d in dates if d > "2026-04-01")
    gone_day = next(d for d in dates if d > "2026-03-25")
    for night in pd.date_range("2026-03-05", "2026-06-30", freq="8D").strftime("%Y-%m-%d"):
        rows = obs[(obs["date"] > prev) & (obs["date"] <= night)]
        if prev < late_day <= night:
            half = rows["date"].eq(late_day) & rows["farm_id"].isin(["F0001", "F0002", "F0003"])
            out.append((night, rows[~half]))
            late = rows[half]
        elif prev < "2026-04-10" <= night:
            gone = obs[(obs["date"] == gone_day) & (obs["farm_id"] == "F0004")].copy()
            gone["status"] = "cloudy"
            gone["ndvi_mean"] = np.nan
            out.append((night, pd.concat([rows, late, gone], ignore_index=True)))
        else:
            out.append((night, rows))
        prev = night
    return out


def _looks(store: Store) -> pd.DataFrame:
    return read_looks(store, store.manifest(), ALL)


def test_extend_looks_equals_full_recompute_from_any_date(data) -> None:  # type: ignore[no-untyped-def]
    farms, obs = data
    obs = obs.assign(date=pd.to_datetime(obs["date"]))
    full = full_looks(obs, farms)
    # the reference is the plain feature pipeline (classified), not the incremental code
    ref = classify_looks(look_features(obs, farms))
    pd.testing.assert_series_equal(full["state"], ref["state"])
    assert (full["state"] == "anomalous").sum() >= 5
    dates = sorted(full["date"].unique())
    for d0 in (dates[-1], dates[-7], dates[len(dates) // 2], dates[30]):
        d0 = pd.Timestamp(d0)
        ctx = context_from_looks(full, d0=d0, d1=obs["date"].max())
        got = extend_looks(obs[obs["date"] >= d0], farms, ctx, d0=d0).reset_index(drop=True)
        want = full[full["date"] >= d0].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_nightly_incremental_equals_full_recompute(data, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    farms, obs = data
    inc, ref = Store(tmp_path / "inc"), Store(tmp_path / "ref")
    modes: list[str] = []
    plan = monitor.plan

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = plan(*args, **kwargs)
        modes.append(out[0])
        return out

    monkeypatch.setattr(monitor, "plan", spy)
    for i, (night, rows) in enumerate(_nights(obs)):
        feed_store(inc, rows, f"r{i}")
        feed_store(ref, rows, f"r{i}")
        detect_and_update(inc, farms, run_date=night, settings=Settings())
        detect_and_update(ref, farms, run_date=night, settings=Settings(), full=True)
        if i % 6 == 0:
            pd.testing.assert_frame_equal(_looks(inc), _looks(ref))
    inc_modes = modes[::2]
    assert inc_modes[0] == "full" and set(inc_modes[1:]) == {"incremental"}
    pd.testing.assert_frame_equal(_looks(inc), _looks(ref))
    hist_inc, hist_ref = alert_history(inc), alert_history(ref)
    assert hist_inc.to_csv(index=False) == hist_ref.to_csv(index=False)
    raised = set(hist_inc.loc[hist_inc["hazard"] != "stale_data", "farm_id"])
    assert {"F0003", "F0005"} <= raised
    # the superseded look is gone, the late half-date is there
    looks = _looks(inc)
    days = sorted(obs["date"].unique())
    gone_day = pd.Timestamp(next(d for d in days if d > "2026-03-25"))
    late_day = pd.Timestamp(next(d for d in days if d > "2026-04-01"))
    assert not ((looks["farm_id"] == "F0004") & (looks["date"] == gone_day)).any()
    assert ((looks["farm_id"] == "F0001") & (looks["date"] == late_day)).any()


def test_rerun_changes_nothing_and_settings_change_recomputes(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    farms, obs = data
    store = Store(tmp_path / "w")
    feed_store(store, obs[obs["date"] <= "2026-05-01"], "a")
    detect_and_update(store, farms, run_date="2026-05-01", settings=Settings())
    before = store.manifest()
    detect_and_update(store, farms, run_date="2026-05-01", settings=Settings())
    after = store.manifest()
    for name in look_tables(after):
        assert after["tables"][name] == before["tables"][name]  # nothing recomputed
    assert after["tables"]["alerts"] == before["tables"]["alerts"]  # byte-identical alerts

    strict = Settings(detect=dataclasses.replace(DetectSettings(), drought_z=1.5))
    detect_and_update(store, farms, run_date="2026-05-01", settings=strict)
    meta = store.manifest()["meta"]["looks"]
    assert meta["fingerprint"] == monitor.looks_fingerprint(strict, farms, None)
    o = obs[obs["date"] <= "2026-05-01"].assign(date=lambda d: pd.to_datetime(d["date"]))
    want = full_looks(o, farms, settings=strict.detect).reset_index(drop=True)
    got = _looks(store)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert (got["state"] == "anomalous").sum() > (
        full_looks(o, farms)["state"] == "anomalous"
    ).sum()


def test_a_failed_detection_commit_leaves_a_state_the_next_run_repairs(
    data, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    farms, obs = data
    clean, broken = Store(tmp_path / "clean"), Store(tmp_path / "broken")
    for st in (clean, broken):
        feed_store(st, obs[obs["date"] <= "2026-04-01"], "a")
        detect_and_update(st, farms, run_date="2026-04-01", settings=Settings())
        feed_store(st, obs[(obs["date"] > "2026-04-01") & (obs["date"] <= "2026-05-15")], "b")
    detect_and_update(clean, farms, run_date="2026-05-15", settings=Settings())

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt("killed after the looks were computed")

    kept = broken.manifest()
    monkeypatch.setattr(monitor, "update_alerts", boom)
    with pytest.raises(KeyboardInterrupt):
        detect_and_update(broken, farms, run_date="2026-05-15", settings=Settings())
    # looks and alerts go in one commit: nothing of the failed night is visible
    assert json.dumps(broken.manifest(), sort_keys=True) == json.dumps(kept, sort_keys=True)
    monkeypatch.undo()
    detect_and_update(broken, farms, run_date="2026-05-15", settings=Settings())
    assert alert_history(broken).equals(alert_history(clean))
    pd.testing.assert_frame_equal(_looks(broken), _looks(clean))


def _stepped(step_rows: int) -> Settings:
    return Settings().replace("run", step_rows=step_rows, first_step_rows=step_rows)


def test_a_full_recompute_in_steps_equals_one_pass(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A long history is recomputed in steps of whole dates (memory bounded by a step);
    the looks and the alerts are those of the one-pass recomputation."""
    farms, obs = data
    one, steps = Store(tmp_path / "one"), Store(tmp_path / "steps")
    for st in (one, steps):
        feed_store(st, obs, "a")
    n_dates = obs["date"].nunique()
    night = obs["date"].max()
    detect_and_update(one, farms, run_date=night, settings=_stepped(10**9))
    commits = []
    real_commit = steps.commit

    def counting(txn):  # type: ignore[no-untyped-def]
        commits.append(txn)
        return real_commit(txn)

    steps.commit = counting  # type: ignore[method-assign]
    # 20 farms x 7 dates a step: steps of ~35 days, shorter than the 61-day context window
    # the later steps read (a step is bounded by its rows only)
    planned = date_steps(steps, steps.manifest(), 140)
    assert max((hi - lo).days for lo, hi in planned) < 61
    summary = detect_and_update(steps, farms, run_date=night, settings=_stepped(140))
    assert len(commits) == len(planned) >= n_dates // 7  # one commit per step
    assert summary.detection == "full"
    pd.testing.assert_frame_equal(_looks(steps), _looks(one))
    assert alert_history(steps).to_csv(index=False) == alert_history(one).to_csv(index=False)
    assert (_looks(one)["state"] == "anomalous").any()


def test_a_recompute_killed_between_steps_is_finished_by_the_next_run(
    data, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    farms, obs = data
    ref, killed = Store(tmp_path / "ref"), Store(tmp_path / "killed")
    for st in (ref, killed):
        feed_store(st, obs, "a")
    night = obs["date"].max()
    detect_and_update(ref, farms, run_date=night, settings=_stepped(10**9))
    real_commit = killed.commit
    done: list[int] = []

    def dies_on_third(txn):  # type: ignore[no-untyped-def]
        if len(done) == 2:
            raise KeyboardInterrupt("killed during the third step")
        done.append(1)
        return real_commit(txn)

    killed.commit = dies_on_third  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        detect_and_update(killed, farms, run_date=night, settings=_stepped(140))
    meta = killed.manifest()["meta"]["looks"]
    assert meta["through"] < night  # two steps landed, the rest did not
    assert alert_history(killed).empty
    killed.commit = real_commit  # type: ignore[method-assign]
    modes = []
    plan = monitor.plan
    monkeypatch.setattr(monitor, "plan", lambda *a, **k: modes.append(plan(*a, **k)) or modes[-1])
    detect_and_update(killed, farms, run_date=night, settings=_stepped(140))
    assert modes[0][0] == "incremental"  # continued, not started over
    pd.testing.assert_frame_equal(_looks(killed), _looks(ref))
    assert alert_history(killed).to_csv(index=False) == alert_history(ref).to_csv(index=False)


def test_date_steps_are_whole_dates_bounded_by_rows(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, obs = data
    store = Store(tmp_path / "w")
    feed_store(store, obs, "a")
    per_date = obs.groupby("date").size()
    steps = date_steps(store, store.manifest(), 140)
    days = pd.to_datetime(per_date.index)
    assert steps[0][0] == days.min() and steps[-1][1] == days.max()
    for (lo, hi), (nxt, _) in itertools.pairwise(steps):
        assert days[days > hi].min() == nxt  # consecutive, no date lost or repeated
        rows = per_date[(days >= lo) & (days <= hi)].sum()
        # at most 140 rows (one date may hold more alone), and full: the next date would not fit
        assert rows <= 140 or lo == hi
        assert rows + per_date[days == nxt].sum() > 140
    assert len(date_steps(store, store.manifest(), 10**9)) == 1
