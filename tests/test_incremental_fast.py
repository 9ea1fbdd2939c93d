"""The incremental night's shortcuts give the same answers as the long way round.

Each shortcut (serial own history, evaluating only the new looks' reference standing, the
integer-coded farm x date sort, the one-off farm lookup, the same year's history window left
unread) is checked against the computation it replaces on small synthetic looks.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from agrisat.anomaly.change import reference_standing
from agrisat.anomaly.history import own_history
from agrisat.anomaly.incremental import _picker, context_windows
from agrisat.anomaly.seasonal import seasonal_gap
from agrisat.anomaly.settings import DEFAULT_SETTINGS
from agrisat.arrowops import farm_date_order

#: few farms per Dask task, so that the parallel path really splits the farms
SMALL = dataclasses.replace(DEFAULT_SETTINGS, parallel_min_farms=10, chunk_farms=7)


def _looks(n_farms: int = 60, seed: int = 3) -> pd.DataFrame:
    """Three seasons of looks every ~10 days for ``n_farms`` farms, sorted by farm and date,
    with the columns own history, the peer gap and the standing change read."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_farms):
        days = np.cumsum(rng.integers(5, 16, size=110))
        days = days[days < 3 * 365]
        dates = pd.Timestamp("2023-01-01") + pd.to_timedelta(days, unit="D")
        season = 0.3 + 0.4 * np.sin(2 * np.pi * days / 365.25) ** 2
        value = season + rng.normal(0, 0.05, days.size)
        peer = season + rng.normal(0, 0.02, days.size)
        rows.append(
            pd.DataFrame(
                {
                    "farm_id": f"f{k:03d}",
                    "date": dates,
                    "value": value,
                    "water_fraction": rng.uniform(0, 0.1, days.size),
                    "peer_median": np.where(rng.random(days.size) < 0.1, np.nan, peer),
                    "peer_level": rng.choice(["region", "crop", "radius", "none"], days.size),
                    "moist": rng.normal(0, 0.1, days.size),
                    "peer_moist": rng.normal(0, 0.05, days.size),
                }
            )
        )
    f = pd.concat(rows, ignore_index=True)
    f["farm_id"] = f["farm_id"].astype("str")
    g = f.groupby("farm_id", sort=False)
    f["prev_value"] = g["value"].shift(1)
    f["prev_date"] = g["date"].shift(1)
    return f


def test_own_history_serial_equals_dask_chunks() -> None:
    f = _looks()
    d0 = pd.Timestamp("2025-06-01")
    par = own_history(f, SMALL, eval_from=d0)
    ser = own_history(f, SMALL, eval_from=d0, parallel=False)
    assert len(par) == int((f["date"] >= d0).sum()) > 0
    assert par["expected"].notna().any()  # there is history to compare
    pd.testing.assert_frame_equal(ser.sort_index(), par.sort_index(), check_exact=True)


def test_seasonal_gap_serial_equals_dask_chunks() -> None:
    f = _looks()
    d0 = pd.Timestamp("2025-06-01")
    par = seasonal_gap(f, SMALL, eval_from=d0)
    ser = seasonal_gap(f, SMALL, eval_from=d0, parallel=False)
    assert par.notna().any()
    pd.testing.assert_series_equal(ser, par, check_exact=True)


def test_reference_standing_of_some_rows_equals_all_rows() -> None:
    f = _looks(n_farms=25)
    some = (f["date"] >= pd.Timestamp("2025-03-01")).to_numpy()
    full = reference_standing(f, DEFAULT_SETTINGS)
    part = reference_standing(f, DEFAULT_SETTINGS, evaluate=some)
    assert np.isfinite(full["change"][some]).any()
    for name, vals in full.items():
        np.testing.assert_array_equal(part[name][some], vals[some])
        # the rows not evaluated carry no value
        assert not np.isfinite(part[name][~some]).any() or name == "change_ref_n"
    assert (part["change_ref_n"][~some] == 0).all()


@pytest.mark.parametrize("dtype", ["str", object])
def test_farm_date_order_is_pandas_stable_sort(dtype: object) -> None:
    rng = np.random.default_rng(7)
    ids = rng.choice(["b", "a", "c10", "c2", "Z", "é", "ab", "a b"], 3000)
    keys = pd.DataFrame(
        {
            "farm_id": pd.Series(ids).astype(dtype),
            "date": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 9, 3000), "D"),
        }
    )
    keys = pd.concat([keys, keys.iloc[::3]], ignore_index=True)  # ties: stability matters
    want = keys.sort_values(["farm_id", "date"], kind="stable").index.to_numpy()
    np.testing.assert_array_equal(farm_date_order(keys), want)


def test_farm_date_order_with_missing_keys_falls_back() -> None:
    keys = pd.DataFrame(
        {
            "farm_id": pd.Series(["b", None, "a", "b"], dtype="str"),
            "date": pd.to_datetime(["2026-01-02", "2026-01-01", None, "2026-01-01"]),
        }
    )
    want = keys.sort_values(["farm_id", "date"], kind="stable").index.to_numpy()
    np.testing.assert_array_equal(farm_date_order(keys), want)
    assert farm_date_order(keys.iloc[:0]).size == 0


def test_picker_equals_reindex_by_farm() -> None:
    last = pd.DataFrame(
        {
            "farm_id": pd.Series(["c", "a", "d"], dtype="str"),
            "value": [0.5, 0.25, np.nan],
            "date": pd.to_datetime(["2026-01-03", "2026-01-01", "2026-01-02"]),
            "season_key": pd.Series(["s1", None, "s2"], dtype="str"),
        }
    ).set_index("farm_id")
    f = pd.DataFrame({"farm_id": pd.Series(["a", "a", "b", "c", "d"], dtype="str")})
    f.index = pd.RangeIndex(10, 15)
    pick = _picker(f, last.index)
    for col in last.columns:
        want = pd.Series(last[col].reindex(f["farm_id"].to_numpy()).to_numpy(), index=f.index)
        pd.testing.assert_series_equal(pick(last[col]), want, check_exact=True)
    assert np.isnan(pick(last["value"]).loc[12])  # farm "b" has no earlier look


def test_history_windows_skip_the_same_year_only_when_it_cannot_hold_history() -> None:
    d0 = pd.Timestamp("2026-05-05")
    s = DEFAULT_SETTINGS
    wins = context_windows(d0, d0, s)["history"]
    # looks count as history only history_min_gap_days back: nothing of the last weeks
    assert s.history_min_gap_days > 60
    assert all(hi <= d0 - pd.Timedelta(days=300) for _, hi in wins)
    assert len(wins) >= 50  # every earlier year still has its window
    near = dataclasses.replace(s, history_min_gap_days=0)
    lo, hi = context_windows(d0, d0, near)["history"][0]
    assert hi == d0 and lo > d0 - pd.Timedelta(days=30)  # the same year's window is read


def test_candidate_slices_and_serial_chunks_change_no_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agrisat.anomaly import history, seasonal

    f = _looks(n_farms=30)
    d0 = pd.Timestamp("2024-06-01")  # many evaluated looks per farm, as in a long step
    own = own_history(f, SMALL, eval_from=d0, parallel=False)
    gap = seasonal_gap(f, SMALL, eval_from=d0, parallel=False)
    assert len(own) > 300 and own["expected"].notna().any() and gap.notna().any()
    monkeypatch.setattr(history, "SLICE_ROWS", 37)
    monkeypatch.setattr(seasonal, "SLICE_ROWS", 37)
    # and the serial path in chunks of a few farms
    monkeypatch.setattr(history, "SERIAL_FARMS", 4)
    monkeypatch.setattr(seasonal, "SERIAL_FARMS", 4)
    pd.testing.assert_frame_equal(
        own_history(f, SMALL, eval_from=d0, parallel=False), own, check_exact=True
    )
    pd.testing.assert_series_equal(
        seasonal_gap(f, SMALL, eval_from=d0, parallel=False), gap, check_exact=True
    )
