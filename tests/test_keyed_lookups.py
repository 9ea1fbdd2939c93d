"""The vectorised per-look lookups equal the pandas operations they replace.

Each test builds small random frames (crops, regions, peer levels incl. radius and none,
dates with gaps, several farms) and compares the fast path with a pandas reference written
here (``merge_asof``, ``merge``, ``map``, ``sort_values``), value for value and dtype for
dtype.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

from agrisat.anomaly import history, lagged, seasonal
from agrisat.anomaly.features import look_base
from agrisat.anomaly.keyed import asof_backward, first_rows, joint_codes, nanos
from agrisat.anomaly.settings import DEFAULT_SETTINGS, HAZARD_PRIORITY
from agrisat.arrowops import code_labels, label_codes, pick_labels
from agrisat.series import clear_looks

LEVELS = ["region", "radius", "crop", "none"]


def _looks(seed: int, n_farms: int = 40, n_dates: int = 25) -> pd.DataFrame:
    """Random looks sorted by farm and date, with the columns the lookups read."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_farms):
        days = np.sort(rng.choice(np.arange(0, 5 * n_dates * 3, 5), n_dates, replace=False))
        for d in days:
            rows.append((f"F{i:03d}", pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(d))))
    f = pd.DataFrame(rows, columns=["farm_id", "date"])
    n = len(f)
    f["crop"] = rng.choice(["wheat", "maize"], n)
    f["region"] = rng.choice(["", "A", "B"], n)
    f["peer_level"] = rng.choice(LEVELS, n, p=[0.5, 0.2, 0.2, 0.1])
    f["peer_median"] = np.round(rng.uniform(0.1, 0.9, n), 3)
    f["radius_median"] = np.where(rng.random(n) < 0.3, np.nan, rng.uniform(0.1, 0.9, n))
    f["prev_date"] = f.groupby("farm_id", sort=False)["date"].shift(1)
    return f


def _merge_asof_reference(f: pd.DataFrame, lag_days: int) -> pd.Series:
    """The peers' lagged median as ``merge_asof`` gives it (the pre-vectorisation code)."""
    return lagged._peer_lagged_pandas(f, lag_days, len(f))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lag", [7, 20, 45])
def test_peer_lagged_equals_merge_asof(seed: int, lag: int) -> None:
    f = _looks(seed)
    want = _merge_asof_reference(f, lag)
    got = lagged.peer_lagged(f, lag)
    assert got.notna().any() and got.isna().any()  # both outcomes exercised
    assert_series_equal(got, want, check_exact=True)
    # asked for the first rows only: theirs
    n = len(f) // 3
    assert_series_equal(
        lagged.peer_lagged(f, lag, rows=n), lagged._peer_lagged_pandas(f, lag, n), check_exact=True
    )


def test_peer_lagged_against_an_independent_loop() -> None:
    f = _looks(5, n_farms=8, n_dates=10)
    lag, tol = 20, pd.Timedelta(days=20)
    got = lagged.peer_lagged(f, lag)
    for i, r in f.iterrows():
        at = r["date"] - pd.Timedelta(days=lag)
        if r["peer_level"] == "radius":
            cand = f[(f["farm_id"] == r["farm_id"]) & f["radius_median"].notna()]
            col = "radius_median"
        else:
            cand = f[
                (f["crop"] == r["crop"])
                & (f["region"] == r["region"])
                & (f["peer_level"] == r["peer_level"])
                & (f["peer_level"] != "none")
            ]
            col = "peer_median"
        cand = cand[(cand["date"] <= at) & (cand["date"] >= at - tol)]
        if r["peer_level"] == "none" or cand.empty:
            assert np.isnan(got[i])
        else:
            latest = cand[cand["date"] == cand["date"].max()].iloc[0]
            assert got[i] == latest[col]


def test_peer_lagged_falls_back_on_missing_keys_and_ties() -> None:
    f = _looks(3)
    f.loc[f.index[4], "region"] = np.nan
    assert_series_equal(lagged.peer_lagged(f, 20), _merge_asof_reference(f, 20), check_exact=True)
    g = _looks(4)
    g.loc[g.index[2], "date"] = g.loc[g.index[1], "date"]  # one farm seen twice a day
    g.loc[g.index[1:3], "peer_level"] = "radius"
    assert_series_equal(lagged.peer_lagged(g, 20), _merge_asof_reference(g, 20), check_exact=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_prev_peer_median_equals_merge(seed: int) -> None:
    f = _looks(seed)

    def prev_radius() -> pd.Series:
        return f.groupby("farm_id", sort=False)["radius_median"].shift(1)

    want = lagged._prev_peer_median_pandas(f, f, prev_radius)
    got = lagged.prev_peer_median(f, f, prev_radius)
    assert got.notna().sum() > len(f) // 4
    assert_series_equal(got, want, check_exact=True)
    # another frame's groups (an incremental night's recent window)
    groups = _looks(seed + 10).iloc[::2]
    assert_series_equal(
        lagged.prev_peer_median(f, groups, prev_radius),
        lagged._prev_peer_median_pandas(f, groups, prev_radius),
        check_exact=True,
    )


def test_asof_backward_equals_merge_asof() -> None:
    rng = np.random.default_rng(9)
    tk = rng.integers(0, 5, 200)
    tt = rng.integers(0, 1000, 200)
    keep = first_rows(tk, tt)
    tk, tt = tk[keep], tt[keep]
    tv = rng.random(tk.size)
    qk, qt = rng.integers(0, 6, 300), rng.integers(-50, 1100, 300)
    got = asof_backward(tk, tt, tv, qk, qt, 30)
    left = pd.DataFrame({"k": qk, "t": qt, "row": np.arange(qt.size)}).sort_values("t")
    right = pd.DataFrame({"k": tk, "t": tt, "v": tv}).sort_values("t")
    want = pd.merge_asof(left, right, on="t", by="k", tolerance=30).sort_values("row")["v"]
    np.testing.assert_array_equal(got, want.to_numpy())
    assert asof_backward(np.array([1, 1]), np.array([5, 5]), np.ones(2), qk, qt, None) is None


def test_first_rows_and_joint_codes() -> None:
    rng = np.random.default_rng(2)
    a = pd.DataFrame({"x": rng.choice(list("abc"), 300), "y": rng.choice(list("pq"), 300)})
    b = pd.DataFrame({"x": rng.choice(list("abd"), 50), "y": rng.choice(list("pq"), 50)})
    ca, cb = joint_codes([[a["x"], a["y"]], [b["x"], b["y"]]])
    keys_a = (a["x"] + "|" + a["y"]).to_numpy()
    keys_b = (b["x"] + "|" + b["y"]).to_numpy()
    assert ((ca[:, None] == cb[None, :]) == (keys_a[:, None] == keys_b[None, :])).all()
    t = rng.integers(0, 4, 300)
    want = a.assign(t=t).drop_duplicates(["x", "y", "t"]).index.to_numpy()
    np.testing.assert_array_equal(first_rows(ca, t), want)
    a.loc[3, "x"] = None
    assert joint_codes([[a["x"], a["y"]]]) is None
    assert nanos(pd.Series(pd.to_datetime(["1970-01-02", None])))[0] == 86_400 * 10**9


def test_pick_labels_equals_an_object_array_series() -> None:
    names = ["systemic", "idiosyncratic", "unknown"]
    code = np.random.default_rng(0).integers(0, 3, 500)
    index = pd.RangeIndex(7, 507)
    want = pd.Series(np.array(names, dtype=object)[code], index=index)
    assert_series_equal(pick_labels(names, code, index), want, check_exact=True)
    empty = pick_labels(names, code[:0], index[:0])
    assert_series_equal(empty, pd.Series(np.array(names, dtype=object)[:0], index=index[:0]))


def test_hazard_lookups_equal_map() -> None:
    rank = {h: len(HAZARD_PRIORITY) - i for i, h in enumerate(HAZARD_PRIORITY)}
    rng = np.random.default_rng(1)
    hazard = pd.Series(rng.choice([*HAZARD_PRIORITY, "none"], 400), index=pd.RangeIndex(3, 403))
    want = hazard.map(rank).fillna(0).astype(int)
    assert_series_equal(label_codes(hazard, rank, 0), want, check_exact=True)
    with_nan = hazard.where(rng.random(400) < 0.8)
    assert_series_equal(
        label_codes(with_nan, rank, 0), with_nan.map(rank).fillna(0).astype(int), check_exact=True
    )
    code = pd.Series(rng.integers(0, len(rank) + 1, 400), index=hazard.index)
    inverse = {v: k for k, v in rank.items()}
    assert_series_equal(
        code_labels(code, inverse, "none"), code.map(inverse).fillna("none"), check_exact=True
    )


def _history_looks(n_farms: int) -> pd.DataFrame:
    """Three seasons of looks (own history and seasonal gaps have something to find)."""
    rng = np.random.default_rng(4)
    rows = []
    for i in range(n_farms):
        for d in range(0, 3 * 365, 9):
            if rng.random() < 0.7:
                rows.append((f"F{i:03d}", pd.Timestamp("2021-01-01") + pd.Timedelta(days=d)))
    f = pd.DataFrame(rows, columns=["farm_id", "date"])
    n = len(f)
    doy = f["date"].dt.day_of_year.to_numpy()
    f["value"] = 0.5 + 0.3 * np.sin(doy / 58.0) + rng.normal(0, 0.05, n)
    f["water_fraction"] = np.where(rng.random(n) < 0.1, np.nan, rng.random(n) * 0.05)
    g = f.groupby("farm_id", sort=False)
    f["prev_value"] = g["value"].shift(1)
    f["prev_date"] = g["date"].shift(1)
    f["peer_median"] = f["value"] + rng.normal(0, 0.05, n)
    f["peer_level"] = rng.choice(["region", "crop", "none"], n, p=[0.7, 0.2, 0.1])
    return f


@pytest.mark.parametrize("eval_from", [None, pd.Timestamp("2023-03-01")])
def test_history_tasks_equal_one_chunk(
    monkeypatch: pytest.MonkeyPatch, eval_from: pd.Timestamp | None
) -> None:
    f = _history_looks(12)
    s = dataclasses.replace(DEFAULT_SETTINGS, parallel_min_farms=2, chunk_farms=2)
    one_own = history.own_history(f, s, eval_from=eval_from, parallel=False)
    one_gap = seasonal.seasonal_gap(f, s, eval_from=eval_from, parallel=False)
    assert one_own["expected"].notna().sum() > 50 and one_gap.notna().sum() > 50
    for rows in (1, 150, 10**6):  # a task per 2 farms, several farms per task, one task
        monkeypatch.setattr(history, "TASK_ROWS", rows)
        assert_frame_equal(history.own_history(f, s, eval_from=eval_from), one_own)
        assert_series_equal(seasonal.seasonal_gap(f, s, eval_from=eval_from), one_gap)


def test_task_chunks_cover_every_row_once() -> None:
    codes = pd.factorize(_history_looks(9)["farm_id"])[0]
    parts = history.task_chunks(codes, 2)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(codes.size))
    assert all(np.unique(codes[p]).size >= 2 for p in parts[:-1])


def _observations(ids: list[object]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    rows = [(fid, f"2024-05-{d:02d}") for fid in ids for d in rng.choice(np.arange(1, 29), 6)]
    obs = pd.DataFrame(rows, columns=["farm_id", "date"])
    n = len(obs)
    obs["status"] = rng.choice(["ok", "ok", "ok", "cloudy"], n)
    obs["ndvi_mean"] = np.where(rng.random(n) < 0.1, np.nan, rng.random(n))
    obs["clear_fraction"] = rng.random(n)
    obs["water_fraction"] = rng.random(n) * 0.1
    obs = obs.sample(frac=1.0, random_state=1).reset_index(drop=True)  # not in order
    farms = pd.DataFrame(
        {"farm_id": ids[:-1], "crop": "wheat", "region": ["A", None] * ((len(ids) - 1) // 2)}
    )
    return obs, farms


def _look_base_reference(obs: pd.DataFrame, farms: pd.DataFrame) -> pd.DataFrame:
    """look_base by merge and sort (the pre-vectorisation code)."""
    looks = obs[(obs["status"] == "ok") & np.isfinite(obs["ndvi_mean"])].copy()
    looks["date"] = pd.to_datetime(looks["date"]).dt.normalize()
    looks = looks.sort_values(["farm_id", "date"], kind="stable").reset_index(drop=True)
    attrs = pd.DataFrame(
        {
            "farm_id": farms["farm_id"].astype(str),
            "crop": farms["crop"].astype(str),
            "region": farms["region"].fillna("").astype(str),
        }
    )
    looks = looks.assign(farm_id=looks["farm_id"].astype(str)).merge(attrs, on="farm_id")
    looks = looks.sort_values(["farm_id", "date"], kind="stable").reset_index(drop=True)
    return pd.DataFrame(
        {
            "farm_id": looks["farm_id"],
            "date": looks["date"],
            "crop": looks["crop"],
            "region": looks["region"],
            "value": looks["ndvi_mean"].astype(float),
            "clear_fraction": looks["clear_fraction"].astype(float),
            "water_fraction": looks["water_fraction"].astype(float),
            "ndwi": pd.Series(np.nan, index=looks.index),
            "moist": pd.Series(np.nan, index=looks.index),
        }
    )


@pytest.mark.parametrize("kind", ["str", "int"])
def test_look_base_equals_merge_and_sort(kind: str) -> None:
    ids: list[object] = [f"F{i}" for i in (3, 11, 2, 25, 7)] if kind == "str" else [3, 11, 2, 25, 7]
    obs, farms = _observations(ids)
    s = dataclasses.replace(DEFAULT_SETTINGS, moisture_index="")
    got = look_base(obs, farms, settings=s)
    assert set(got["farm_id"]) == {str(i) for i in ids[:-1]}  # the unbooked farm dropped
    assert_frame_equal(got, _look_base_reference(obs, farms), check_exact=True)


def test_clear_looks_sorted_copy() -> None:
    obs, _ = _observations(["b", "a", "c"])
    got = clear_looks(obs, index="ndvi")
    want = obs[(obs["status"] == "ok") & np.isfinite(obs["ndvi_mean"])].copy()
    want["date"] = pd.to_datetime(want["date"]).dt.normalize()
    want = want.sort_values(["farm_id", "date"], kind="stable").reset_index(drop=True)
    assert_frame_equal(got, want, check_exact=True)
    got.loc[0, "ndvi_mean"] = -1.0  # a copy: the observations are not touched
    assert (obs["ndvi_mean"] != -1.0).all()
