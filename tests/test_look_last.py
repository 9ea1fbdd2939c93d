"""The per-farm latest look (``look_last``) kept by each commit of the looks (issue #5: an
incremental night reads no month of looks to continue each farm), never stale: after a
recomputation of past dates, a farm dropped from the book, a workdir written by an agrisat
that did not keep the table, a run killed between steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agrisat import looklast, monitor
from agrisat.anomaly.context import LAST_COLUMNS
from agrisat.config import Settings
from agrisat.looklast import LAST_TABLE, LAST_VERSION, last_looks_before
from agrisat.looks import read_looks
from agrisat.monitor import alert_history, detect_and_update
from agrisat.store import Store, Transaction
from agrisat.testing_series import Event, feed_store, make_farms, make_observations

ALL = [(pd.Timestamp("1900-01-01"), pd.Timestamp("2200-01-01"))]
EVENTS = [
    Event("F0003", "abrupt_loss", "2026-04-22", "2026-06-10"),
    Event("F0005", "drought", "2026-03-20", "2026-05-30"),
]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    farms = make_farms(12)
    obs = make_observations(farms, events=EVENTS, start="2025-03-01", end="2026-06-30", seed=4)
    obs["date"] = pd.to_datetime(obs["date"]).dt.strftime("%Y-%m-%d")
    return farms, obs


def _latest(store: Store) -> pd.DataFrame:
    """Each farm's latest stored look, from the look tables (the table's expected rows)."""
    looks = read_looks(store, store.manifest(), ALL)
    looks = looks.sort_values(["farm_id", "date"], kind="stable")
    return looks.groupby("farm_id").tail(1)[list(LAST_COLUMNS)].reset_index(drop=True)


def _assert_kept(store: Store) -> None:
    m = store.manifest()
    assert m["meta"]["looks"].get("last") == LAST_VERSION
    got = store.read(LAST_TABLE, manifest=m)
    want = _latest(store)
    assert len(want) > 0
    pd.testing.assert_frame_equal(got, want, check_exact=True, check_dtype=False)


def _nights(obs: pd.DataFrame, start: str = "2026-03-01") -> list[tuple[str, pd.DataFrame]]:
    nights = pd.date_range(start, "2026-06-30", freq="12D").strftime("%Y-%m-%d").tolist()
    out, prev = [], "0000"
    for night in nights:
        out.append((night, obs[(obs["date"] > prev) & (obs["date"] <= night)]))
        prev = night
    return out


def _reprocessed(obs: pd.DataFrame, day: str, factor: float) -> pd.DataFrame:
    """The observations of ``day`` again (a reprocessed scene), every clear value scaled: the
    same farms' latest looks on the same date, with other values."""
    rows = obs[obs["date"] == day].copy()
    rows["ndvi_mean"] = rows["ndvi_mean"] * factor
    return rows


def _both(
    farms: pd.DataFrame, inc: Store, ref: Store, rows: pd.DataFrame, tag: str, night: str
) -> None:
    """Feed ``rows`` to both stores; ``inc`` runs as a night does, ``ref`` recomputes all."""
    for st in (inc, ref):
        feed_store(st, rows, tag)
    detect_and_update(inc, farms, run_date=night, settings=Settings())
    detect_and_update(ref, farms, run_date=night, settings=Settings(), full=True)


def _equal(inc: Store, ref: Store) -> None:
    pd.testing.assert_frame_equal(
        read_looks(inc, inc.manifest(), ALL), read_looks(ref, ref.manifest(), ALL),
        check_exact=True,
    )  # fmt: skip
    assert alert_history(inc).to_csv(index=False) == alert_history(ref).to_csv(index=False)


def test_an_ordinary_night_reads_no_month_for_the_latest_looks(  # type: ignore[no-untyped-def]
    data, tmp_path: Path, monkeypatch
) -> None:
    """Each commit keeps every farm's latest look; a night after the latest stored date takes
    them from it (no read of the look tables), a night that goes back in time (a reprocessed
    scene) searches the look tables and keeps the table right."""
    farms, obs = data
    inc, ref = Store(tmp_path / "inc"), Store(tmp_path / "ref")
    reads: list[int] = []
    real = looklast.read_looks

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(looklast, "read_looks", counting)
    days = sorted(obs["date"].unique())
    back = days[-4]
    # a farm first seen on the last dates, whose looks all turn cloudy when reprocessed
    late = (obs["farm_id"] == "F0011") & (obs["date"] < back)
    obs = obs[~late]
    nights = _nights(obs)
    for i, (night, rows) in enumerate(nights):
        reads.clear()
        _both(farms, inc, ref, rows, f"n{i}", night)
        if i:  # an incremental night on new dates only
            assert not reads
        _assert_kept(inc)
    assert "F0011" in set(inc.read(LAST_TABLE)["farm_id"])
    # a reprocessed scene of an earlier date: the farms' looks from that date on change
    gone = obs[(obs["farm_id"] == "F0011") & (obs["date"] >= back)].copy()
    gone["status"] = "cloudy"
    gone["ndvi_mean"] = np.nan
    again = pd.concat([_reprocessed(obs, back, 0.6), gone]).drop_duplicates(
        ["farm_id", "date"], keep="last"
    )
    reads.clear()
    _both(farms, inc, ref, again, "again", nights[-1][0])
    assert reads  # searched: the latest looks of those farms were recomputed
    _assert_kept(inc)
    assert "F0011" not in set(inc.read(LAST_TABLE)["farm_id"])  # no look left
    _equal(inc, ref)


def test_a_workdir_last_written_without_the_table_rebuilds_it(  # type: ignore[no-untyped-def]
    data, tmp_path: Path, monkeypatch
) -> None:
    """An agrisat that does not keep the table (an older version) commits looks on a workdir
    that has one: the table it leaves behind is stale (a reprocessed latest date changed the
    looks of the same dates), and the next night must not continue from it."""
    farms, obs = data
    inc, ref = Store(tmp_path / "inc"), Store(tmp_path / "ref")
    nights = _nights(obs, "2026-04-01")
    for i, (night, rows) in enumerate(nights[:-2]):
        _both(farms, inc, ref, rows, f"n{i}", night)
    stale = inc.read(LAST_TABLE)
    last_day = max(obs.loc[obs["date"] <= nights[-3][0], "date"])
    # the older agrisat: no look_last write, its meta without the mark
    real_replace = Transaction.replace

    def old_replace(self, table, df, **kw):  # type: ignore[no-untyped-def]
        if table != LAST_TABLE:
            real_replace(self, table, df, **kw)

    monkeypatch.setattr(Transaction, "replace", old_replace)
    _both(farms, inc, ref, _reprocessed(obs, last_day, 0.5), "old", nights[-3][0])
    monkeypatch.undo()
    m = inc.manifest()
    assert "last" not in m["meta"]["looks"]
    pd.testing.assert_frame_equal(inc.read(LAST_TABLE, manifest=m), stale)  # left behind
    # the stale rows are on the farms' latest dates: only the mark tells them apart
    latest = _latest(inc).set_index("farm_id")
    old = stale.set_index("farm_id")
    assert (old["date"] == latest["date"]).all() and not np.allclose(old["value"], latest["value"])
    for i, (night, rows) in enumerate(nights[-2:]):
        _both(farms, inc, ref, rows, f"m{i}", night)
        _assert_kept(inc)
    _equal(inc, ref)


def test_a_farm_dropped_from_the_book(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    farms, obs = data
    inc, ref = Store(tmp_path / "inc"), Store(tmp_path / "ref")
    nights = _nights(obs, "2026-04-01")
    for i, (night, rows) in enumerate(nights[:3]):
        _both(farms, inc, ref, rows, f"n{i}", night)
    assert "F0002" in set(inc.read(LAST_TABLE)["farm_id"])
    book = farms[farms["farm_id"] != "F0002"]
    for i, (night, rows) in enumerate(nights[3:]):
        rows = rows[rows["farm_id"] != "F0002"]
        for st in (inc, ref):
            feed_store(st, rows, f"m{i}")
        detect_and_update(inc, book, run_date=night, settings=Settings())
        detect_and_update(ref, book, run_date=night, settings=Settings(), full=True)
        _assert_kept(inc)
    assert "F0002" not in set(inc.read(LAST_TABLE)["farm_id"])
    _equal(inc, ref)


def test_a_run_killed_between_steps_leaves_the_table_of_its_last_step(  # type: ignore[no-untyped-def]
    data, tmp_path: Path
) -> None:
    farms, obs = data
    store = Store(tmp_path / "w")
    feed_store(store, obs, "a")
    night = obs["date"].max()
    stepped = Settings().replace("run", step_rows=12 * 7, first_step_rows=12 * 7)
    real_commit = store.commit
    done: list[dict] = []

    def dies_on_fourth(txn):  # type: ignore[no-untyped-def]
        if len(done) == 3:
            raise KeyboardInterrupt("killed during the fourth step")
        real_commit(txn)
        _assert_kept(store)  # each step's commit: the table of the looks it committed
        done.append(store.manifest())
        return None

    store.commit = dies_on_fourth  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        detect_and_update(store, farms, run_date=night, settings=stepped)
    assert store.manifest() == done[-1]
    _assert_kept(store)
    store.commit = real_commit  # type: ignore[method-assign]
    detect_and_update(store, farms, run_date=night, settings=stepped)
    _assert_kept(store)
    assert store.read(LAST_TABLE)["date"].max() == pd.Timestamp(night)


def test_latest_looks_from_the_table_equal_the_look_tables(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Served from the table or read from the look tables, the same frame (values, dtypes,
    order); a farm whose table row is not its latest look is read from the look tables."""
    farms, obs = data
    store = Store(tmp_path / "w")
    for i, (night, rows) in enumerate(_nights(obs, "2026-05-01")):
        feed_store(store, rows, f"n{i}")
        detect_and_update(store, farms, run_date=night, settings=Settings())
    m = store.manifest()
    state, table = store.read("look_farms", manifest=m), store.read(LAST_TABLE, manifest=m)
    ids = sorted(farms["farm_id"])
    d0 = pd.Timestamp(obs["date"].max()) + pd.Timedelta(days=1)
    plain = last_looks_before(store, m, state, ids, d0, LAST_COLUMNS)
    served = last_looks_before(store, m, state, ids, d0, LAST_COLUMNS, table=table)
    pd.testing.assert_frame_equal(served, plain, check_exact=True)
    # a row of an older date (not the farm's latest look) is not served
    older = read_looks(store, m, ALL, farms=["F0001"], columns=LAST_COLUMNS).iloc[[-3]]
    wrong = pd.concat([table[table["farm_id"] != "F0001"], older]).sort_values("farm_id")
    mixed = last_looks_before(store, m, state, ids, d0, LAST_COLUMNS, table=wrong)
    pd.testing.assert_frame_equal(mixed, plain, check_exact=True)
    # and a recomputation from an earlier date reads before it
    back = pd.Timestamp(sorted(obs["date"].unique())[-3])
    want = last_looks_before(store, m, state, ids, back, LAST_COLUMNS)
    got = last_looks_before(store, m, state, ids, back, LAST_COLUMNS, table=table)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert (pd.to_datetime(got["date"]) < back).all() and len(got) == len(ids)
    assert monitor.LOOKS_VERSION  # the monitor's import of the looks is intact
