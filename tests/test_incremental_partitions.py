"""An incremental night in farm partitions (issue #5, memory) equals the one-pass night."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from agrisat.anomaly import DetectSettings
from agrisat.anomaly.detectors import _abrupt_mask, _flood_mask
from agrisat.anomaly.incremental import context_from_looks, extend_looks, full_looks
from agrisat.anomaly.partition import farm_partitions, partition_farms
from agrisat.config import Settings
from agrisat.looks import read_looks
from agrisat.monitor import alert_history, detect_and_update
from agrisat.store import Store
from agrisat.testing_series import (
    PEER_EVENTS,
    Event,
    feed_store,
    make_observations,
    mixed_peer_book,
    peer_case,
)

ALL = [(pd.Timestamp("1900-01-01"), pd.Timestamp("2200-01-01"))]
#: the farm without clear looks for ~80 days before GAP_END (no recent-window looks then)
GAP_FARM, GAP_START, GAP_END = "A0007", "2026-02-01", "2026-04-22"


EVENTS = [*PEER_EVENTS, Event("A0011", "flood", "2026-05-01", "2026-05-20")]


@pytest.fixture(scope="module")
def data() -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    def gap(obs: pd.DataFrame) -> pd.Series:
        d = pd.to_datetime(obs["date"])
        return (obs["farm_id"] == GAP_FARM) & (d >= GAP_START) & (d < GAP_END)

    return peer_case(
        (13, 7, 3, 6), EVENTS, start="2024-10-01", seed=5, clouds=0.2, cloud_seed=3, drop=gap
    )


def test_partitions_are_whole_farms() -> None:
    ids = pd.Series(["a", "a", "b", "c", "c", "c", "d"])
    assert farm_partitions(ids, 2) == [slice(0, 3), slice(3, 7)]
    assert farm_partitions(ids, 3) == [slice(0, 6), slice(6, 7)]
    assert farm_partitions(ids, 0) == [slice(0, 7)]
    assert farm_partitions(ids.iloc[:0], 2) == [slice(0, 0)]


def test_one_partition_when_the_recent_window_is_within_the_pace_gap() -> None:
    s = DetectSettings(partition_farms=3)
    assert partition_farms(s, s.abrupt_max_gap_days + 1) == 3
    # a new look could then be a farm's first labelled row and still have a pace reference
    assert partition_farms(s, s.abrupt_max_gap_days) == 0
    assert partition_farms(DetectSettings(partition_farms=0), 61) == 0


def test_partitioned_extend_equals_one_pass_and_full(data) -> None:  # type: ignore[no-untyped-def]
    farms, obs = data
    obs = obs.assign(date=pd.to_datetime(obs["date"]))
    full = full_looks(obs, farms)
    assert set(full["peer_level"]) >= {"region", "radius"}
    assert {"flood", "abrupt_loss", "drought"} <= set(full["hazard"])
    dates = sorted(full["date"].unique())
    tiny, one = DetectSettings(partition_farms=3), DetectSettings(partition_farms=0)
    first_after_gap = min(d for d in dates if d >= pd.Timestamp(GAP_END))
    for d0 in (first_after_gap, dates[-1], dates[-12], dates[len(dates) // 2]):
        d0 = pd.Timestamp(d0)
        ctx = context_from_looks(full, d0=d0, d1=obs["date"].max())
        new = obs[obs["date"] >= d0]
        got = extend_looks(new, farms, ctx, d0=d0, settings=tiny)
        ref = extend_looks(new, farms, ctx, d0=d0, settings=one)
        pd.testing.assert_frame_equal(got, ref, check_exact=True)
        want = full[full["date"] >= d0].reset_index(drop=True)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False)


def test_a_partition_without_unsound_looks_labels_as_the_whole_frame(data) -> None:  # type: ignore[no-untyped-def]
    """``keeping_pace`` switches its reference on *any* unsound look of the frame: the
    partitions of the night after the gap include some with and some without one, and the
    farm back from the gap has its first new look as its first labelled row."""
    farms, obs = data
    obs = obs.assign(date=pd.to_datetime(obs["date"]))
    full = full_looks(obs, farms)
    s = DetectSettings()
    d0 = min(d for d in full["date"].unique() if d >= pd.Timestamp(GAP_END))
    lo = d0 - pd.Timedelta(days=61)
    frame = full[(full["date"] >= lo)].reset_index(drop=True)
    unsound = (_flood_mask(frame, s) | _abrupt_mask(frame, s)).to_numpy()
    by_farm = pd.Series(unsound).groupby(frame["farm_id"].to_numpy()).any()
    spans = farm_partitions(pd.Series(sorted(by_farm.index)), 3)
    flags = [bool(by_farm.iloc[sp].any()) for sp in spans]
    assert any(flags) and not all(flags)  # the case the partitioned labelling must survive
    gap_rows = frame[frame["farm_id"] == GAP_FARM]
    assert gap_rows["date"].min() >= pd.Timestamp(GAP_END)  # nothing in the recent window
    ctx = context_from_looks(full, d0=d0, d1=obs["date"].max())
    new = obs[obs["date"] >= d0]
    got = extend_looks(new, farms, ctx, d0=d0, settings=DetectSettings(partition_farms=3))
    want = full[full["date"] >= d0].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_partitioned_nights_equal_one_pass_nights(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    farms, obs = data
    stores = {"tiny": Store(tmp_path / "tiny"), "one": Store(tmp_path / "one")}
    settings = {
        "tiny": Settings().replace("detect", partition_farms=3),
        "one": Settings().replace("detect", partition_farms=0),
    }
    prev = "0000"
    nights = pd.date_range("2026-03-05", "2026-06-30", freq="9D").strftime("%Y-%m-%d")
    for i, night in enumerate(nights):
        rows = obs[(obs["date"] > prev) & (obs["date"] <= night)]
        prev = night
        for k, store in stores.items():
            feed_store(store, rows, f"r{i}")
            detect_and_update(store, farms, run_date=night, settings=settings[k])
    tiny, one = stores["tiny"], stores["one"]
    looks = read_looks(tiny, tiny.manifest(), ALL)
    pd.testing.assert_frame_equal(looks, read_looks(one, one.manifest(), ALL), check_exact=True)
    assert (looks["state"] == "anomalous").sum() >= 5
    for table in ("look_groups", "look_farms"):
        pd.testing.assert_frame_equal(tiny.read(table), one.read(table), check_exact=True)
    a, b = alert_history(tiny), alert_history(one)
    assert len(a) and a.to_csv(index=False) == b.to_csv(index=False)
    assert np.isin(["A0003", "A0005"], a["farm_id"]).all()


@pytest.mark.parametrize(
    "filters",
    [
        [[("farm_id", "in", ["F03", "F11", "F12"]), ("farm_id", ">=", "F03")]],
        [[("date", ">=", pd.Timestamp("2026-01-03"))], [("farm_id", "==", "F00")]],
        [[("farm_id", "in", ["nobody"])]],
    ],
)
@pytest.mark.parametrize("columns", [None, ["state", "farm_id", "value"]])
def test_sliced_read_equals_the_plain_read(tmp_path: Path, filters, columns) -> None:  # type: ignore[no-untyped-def]
    """The store's filtered read of a part with several row groups (a row group and a few
    columns at a time) gives exactly pyarrow's one-call read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from agrisat.looks import _read

    n = 60
    df = pd.DataFrame(
        {
            "farm_id": [f"F{i // 4:02d}" for i in range(n)],
            "date": pd.date_range("2026-01-01", periods=4).repeat(1).tolist() * (n // 4),
            "value": np.linspace(0, 1, n),
            "state": np.where(np.arange(n) % 3 == 0, "anomalous", "normal"),
            "run_looks": np.arange(n) % 5,
            "confirmed": np.arange(n) % 2 == 0,
            "onset": [pd.NaT if i % 2 else pd.Timestamp("2025-12-30") for i in range(n)],
            "peer_level": [None if i % 7 == 0 else "region" for i in range(n)],
        }
    )
    path = tmp_path / "part.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=7)
    assert pq.ParquetFile(path).metadata.num_row_groups > 2
    want = pq.read_table(path, columns=columns, filters=filters).to_pandas()
    got = _read(pq, path, columns, filters)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert list(got.dtypes) == list(want.dtypes)


def test_season_key_gives_each_off_season_stretch_its_own_run() -> None:
    from agrisat.anomaly.features import season_key

    f = pd.DataFrame(
        {
            "farm_id": ["a"] * 7 + ["b"] * 2,
            "season_id": [None, "S1", "S1", None, None, "S2", None, None, None],
        }
    )
    assert season_key(f).tolist() == [
        "none@start", "S1", "S1", "none@S1", "none@S1", "S2", "none@S2",
        "none@start", "none@start",
    ]  # fmt: skip
    # continuing a history: the farm's latest earlier key says which season came before
    before = pd.Series(["S0"] * 7 + ["none@S9"] * 2)
    keys = season_key(f, before).tolist()
    assert keys[0] == "none@S0" and keys[7:] == ["none@S9", "none@S9"]
    assert keys[1:7] == ["S1", "S1", "none@S1", "none@S1", "S2", "none@S2"]


def test_a_loss_after_a_cloudy_winter_is_labelled_as_the_whole_history_does() -> None:
    # A wheat farm seen green until late November, then not clearly until late April, bare:
    # its previous look (same season, 145 days back) is outside the night's recent window.
    # The whole history calls that look an abrupt loss (canopy gone while the peers stand
    # green); the incremental night must too, not a drought.
    farms = mixed_peer_book()
    events = [Event("A0003", "abrupt_loss", "2026-04-10", "2026-06-10")]
    obs = make_observations(farms, events=events, start="2024-10-01", end="2026-05-31", seed=5)
    d = pd.to_datetime(obs["date"])
    gap = (obs["farm_id"] == "A0003") & (d >= "2025-12-01") & (d < "2026-04-20")
    obs = obs[~gap].reset_index(drop=True).assign(date=lambda o: pd.to_datetime(o["date"]))
    full = full_looks(obs, farms)
    farm = full[full["farm_id"] == "A0003"]
    d0 = farm.loc[farm["date"] >= "2026-04-20", "date"].min()
    back = farm.loc[farm["date"] == d0].iloc[0]
    assert back["hazard"] == "abrupt_loss"  # the case: after the long gap, same season
    assert (d0 - back["prev_date"]).days > 61  # ... its previous look beyond the window
    ctx = context_from_looks(full, d0=d0, d1=obs["date"].max())
    for size in (0, 3):
        got = extend_looks(
            obs[obs["date"] >= d0], farms, ctx, d0=d0, settings=DetectSettings(partition_farms=size)
        )
        want = full[full["date"] >= d0].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
