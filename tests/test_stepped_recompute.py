"""A full recomputation in tiny steps (a few dates each, far shorter than the 61-day context
window) and tiny farm partitions stores exactly what one pass stores: looks, peer-group
summaries, farm state and alerts (issue #5: a long first night's memory bounded by a step
of ``run.step_rows`` observations, whatever the number of farms)."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from agrisat.config import Settings
from agrisat.lookrun import date_steps
from agrisat.looks import read_looks, stored_look_rows
from agrisat.monitor import alert_history, detect_and_update
from agrisat.store import Store
from agrisat.testing_series import feed_store, step_case

ALL = [(pd.Timestamp("1900-01-01"), pd.Timestamp("2200-01-01"))]
NIGHT = "2026-06-30"


@pytest.fixture(scope="module")
def data() -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    return step_case()


def _settings(partition: int, step_rows: int, alert_rows: int = 0) -> Settings:
    s = Settings().replace("detect", partition_farms=partition)
    return s.replace("run", step_rows=step_rows, first_step_rows=step_rows, alert_rows=alert_rows)


def test_tiny_steps_and_partitions_store_what_one_pass_stores(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    farms, obs = data
    tiny, one = Store(tmp_path / "tiny"), Store(tmp_path / "one")
    for st in (tiny, one):
        feed_store(st, obs, "a")
    per_date = obs.groupby("date").size()
    step_rows = int(per_date.max()) * 3  # three or four dates a step
    planned = date_steps(tiny, tiny.manifest(), step_rows)
    assert len(planned) > 15  # many steps, each far shorter than the context window
    assert max((hi - lo).days for lo, hi in planned) < 25
    tiny_settings = _settings(2, step_rows, alert_rows=2)
    summary = detect_and_update(tiny, farms, run_date=NIGHT, settings=tiny_settings)
    detect_and_update(one, farms, run_date=NIGHT, settings=_settings(0, 10**9, alert_rows=0))
    assert summary.detection == "full"
    want = read_looks(one, one.manifest(), ALL)
    pd.testing.assert_frame_equal(read_looks(tiny, tiny.manifest(), ALL), want, check_exact=True)
    # the steps append their groups date range by date range: the same rows, in step order
    keys = ["crop", "region", "date", "peer_level"]
    a, b = (st.read("look_groups").sort_values(keys).reset_index(drop=True) for st in (tiny, one))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(tiny.read("look_farms"), one.read("look_farms"), check_exact=True)
    a, b = alert_history(tiny), alert_history(one)
    assert len(a) and a.to_csv(index=False) == b.to_csv(index=False)
    # not trivial: the detectors fired and every peer level was used
    assert {"drought", "abrupt_loss"} <= set(want["hazard"])
    assert {"region", "radius", "crop"} <= set(want["peer_level"])


def test_the_first_step_has_its_own_larger_budget(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # the first step is computed from scratch a farm partition at a time, lighter per row
    # than a later step: a first night of a few dates stays one step (at 100,000 farms x 8
    # dates, four 2-date steps took 15.6 s where one took 4.7 s)
    _, obs = data
    st = Store(tmp_path / "s")
    feed_store(st, obs, "a")
    per_date = obs.groupby("date").size()
    step = int(per_date.max()) * 3
    plain = date_steps(st, st.manifest(), step)
    wide = date_steps(st, st.manifest(), step, first_rows=step * 10)
    days = sorted(pd.to_datetime(per_date.index))
    for steps in (plain, wide):  # whole dates, in order, every date once
        assert steps[0][0] == days[0] and steps[-1][1] == days[-1]
        assert all(a[1] < b[0] for a, b in itertools.pairwise(steps))
    when = pd.to_datetime(per_date.index)
    rows = [int(per_date[(when >= lo) & (when <= hi)].sum()) for lo, hi in wide]
    assert step < rows[0] <= step * 10 and max(rows[1:]) <= step
    # the first step takes dates while they fit: the next date would not have
    after = per_date[when > wide[0][1]]
    assert rows[0] + int(after.iloc[0]) > step * 10
    assert len(wide) < len(plain)


def test_alert_lifecycle_in_farm_groups_equals_one_group(  # type: ignore[no-untyped-def]
    data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nightly runs whose alert lifecycle goes a few farms at a time (``run.alert_rows``)
    keep the alert history of one group: new, ongoing and resolved alerts, ids, order."""
    import agrisat.monitor as monitor_mod

    farms, obs = data
    nights = pd.date_range("2026-03-01", NIGHT, freq="20D").strftime("%Y-%m-%d").tolist()
    budgets = (0, 1, 200)  # one group; one farm a group; a few farms a group
    stores = {k: Store(tmp_path / str(k)) for k in budgets}
    sizes: dict[int, list[int]] = {k: [] for k in budgets}
    real = monitor_mod.update_alerts
    current = [0]

    def counting(history, anomalies, farms, **kw):  # type: ignore[no-untyped-def]
        sizes[current[0]].append(int(anomalies["farm_id"].nunique()))
        return real(history, anomalies, farms, **kw)

    monkeypatch.setattr(monitor_mod, "update_alerts", counting)
    prev = "0000"
    for night in [*nights, NIGHT]:
        rows = obs[(obs["date"] > prev) & (obs["date"] <= night)]
        prev = night
        for k, st in stores.items():
            if len(rows):
                feed_store(st, rows, f"n{night}")
            current[0] = k
            detect_and_update(st, farms, run_date=night, settings=_settings(0, 10**9, k))
    one = alert_history(stores[0])
    for k in budgets[1:]:
        got = alert_history(stores[k])
        pd.testing.assert_frame_equal(got, one, check_exact=True)
    # not trivial: alerts of several farms opened and closed over the nights, in groups of
    # one farm and of several
    assert one["farm_id"].nunique() >= 3
    assert {"new", "ongoing", "resolved"} <= set(one["status"])
    assert max(sizes[1]) == 1 and len(sizes[1]) > len(sizes[0])
    assert max(sizes[200]) > 1
    # the group size comes from the stored looks per farm over the window
    st = stores[0]
    m = st.manifest()
    lo, end = pd.Timestamp("2025-06-01"), pd.Timestamp("2026-07-01")
    stored = read_looks(st, m, ALL)
    months = pd.to_datetime(stored["date"]).dt.to_period("M")
    overlap = (months >= lo.to_period("M")) & (months < end.to_period("M"))
    assert stored_look_rows(st, m, lo, end) == int(overlap.sum())
    per_farm = int(overlap.sum()) / len(farms)
    assert monitor_mod._group_farms(st, m, None, lo, end, len(farms), int(per_farm * 3)) == 2
    assert monitor_mod._group_farms(st, m, None, lo, end, len(farms), int(per_farm * 3) + 1) == 3
    assert monitor_mod._group_farms(st, m, None, lo, end, len(farms), 0) == len(farms)


def test_step_observations_are_the_stores_filtered_reads(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Each step's observations split in one pass equal the store's date-filtered read,
    across parts (a later part's row of a farm and date wins)."""
    from agrisat.lookrun import OBS_KEYS, obs_columns
    from agrisat.looks import read_filtered
    from agrisat.stepobs import StepObservations

    _, obs = data
    store = Store(tmp_path / "w")
    feed_store(store, obs[obs["date"] < "2026-01-01"], "a")
    redo = obs[(obs["date"] >= "2025-12-01") & (obs["date"] < "2026-02-01")]
    feed_store(store, redo.assign(clear_fraction=redo["clear_fraction"] * 0.5), "b")  # supersedes
    feed_store(store, obs[obs["date"] >= "2026-01-01"], "c")
    m = store.manifest()
    assert len(store.parts("observations", m)) == 3
    # a run killed outright left its split (borrowers' rows) behind: the next one removes it
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / "w" / f".detect-steps-{dead.pid}-x"
    left.mkdir()
    (left / "00000-0000.parquet").write_bytes(b"rows")
    steps = date_steps(store, m, int(obs.groupby("date").size().max()) * 4)
    cols = obs_columns(store, m)
    with StepObservations(store, m, steps, columns=cols, keys=OBS_KEYS) as split:
        for k, (lo, hi) in enumerate(steps):
            want = read_filtered(
                store, m, "observations", columns=cols, keys=OBS_KEYS,
                filters=[[("date", ">=", f"{lo:%Y-%m-%d}"), ("date", "<=", f"{hi:%Y-%m-%d}")]],
            )  # fmt: skip
            got = split.read(k)
            assert got is not None
            pd.testing.assert_frame_equal(got, want, check_exact=True)
        folder = split.dir
        assert folder is not None and folder.exists()
        assert not left.exists()
    assert not folder.exists()  # the split files go with the context
