from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agrisat.series import clear_looks, day_of_season, savgol_fill, to_regular, whittaker

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _obs() -> pd.DataFrame:
    dates = pd.date_range("2026-03-01", periods=12, freq="5D")
    truth = np.linspace(0.3, 0.85, 12)
    status = ["ok"] * 12
    status[4] = status[5] = "cloudy"
    status[8] = "no_data"
    ndvi = np.where(np.array(status) == "ok", truth, np.nan)
    ndvi[4] = 0.1  # a cloudy row may carry stats from a small clear part: must be ignored
    return pd.DataFrame(
        {"farm_id": "F1", "date": dates, "status": status, "clear_fraction": 1.0, "ndvi_mean": ndvi}
    )


def test_clear_looks_keeps_only_ok_finite() -> None:
    looks = clear_looks(_obs())
    assert len(looks) == 9
    assert 0.1 not in looks["ndvi_mean"].to_list()


def test_regular_series_flags_gaps_and_interpolation() -> None:
    ds = to_regular(_obs(), step_days=5)
    obs = ds["observed"].sel(farm_id="F1").to_numpy()
    assert np.isnan(obs[4]) and np.isnan(obs[5]) and np.isnan(obs[8])
    assert bool(ds["cloud_gap"].sel(farm_id="F1")[4]) and bool(ds["cloud_gap"].sel(farm_id="F1")[8])
    interp = ds["interpolated"].sel(farm_id="F1").to_numpy()
    assert interp[[4, 5, 8]].all() and not interp[[0, 1, 2, 3]].any()
    sm = ds["smoothed"].sel(farm_id="F1").to_numpy()
    # the gap is filled on the line through the clear looks, not pulled down by the cloudy 0.1
    assert abs(sm[4] - np.linspace(0.3, 0.85, 12)[4]) < 0.03


def test_long_cloud_gaps_stay_empty() -> None:
    o = _obs()
    o.loc[2:9, "status"] = "cloudy"
    ds = to_regular(o, step_days=5, max_gap_days=20)
    assert np.isnan(ds["smoothed"].sel(farm_id="F1").to_numpy()[5])


def test_smoothers_remove_noise() -> None:
    rng = np.random.default_rng(0)
    x = np.linspace(0, np.pi, 60)
    truth = 0.2 + 0.6 * np.sin(x)
    y = truth + rng.normal(0, 0.05, x.size)
    y[10:14] = np.nan
    for sm in (whittaker(y, lam=20), savgol_fill(y, window=9)):
        assert np.sqrt(np.nanmean((sm - truth) ** 2)) < 0.035


def test_day_of_season() -> None:
    d = day_of_season("winter_wheat", pd.to_datetime(["2025-10-11", "2026-01-01", "2026-08-01"]))
    assert d.iloc[0] == 10 and d.iloc[1] == 92 and np.isnan(d.iloc[2])


def test_smoothing_on_real_eolearn_ndvi() -> None:
    base = SHARED / "evaluation" / "eolearn-testeopatch"
    if not base.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{base} missing on CI")
        pytest.skip(f"real evaluation data not found at {base}")
    ndvi = np.load(base / "data" / "NDVI.npy")[..., 0]
    valid = np.load(base / "mask" / "IS_VALID.npy")[..., 0]
    dates = pd.to_datetime(json.loads((base / "timestamps.json").read_text())).normalize()
    # a 10x10 px block as one "farm": mean over valid pixels; a date is clear if most are valid
    blk_v, blk_m = ndvi[:, 40:50, 40:50], valid[:, 40:50, 40:50]
    frac = blk_m.mean(axis=(1, 2))
    mean = np.where(
        blk_m.sum(axis=(1, 2)) > 0,
        (blk_v * blk_m).sum(axis=(1, 2)) / np.maximum(blk_m.sum(axis=(1, 2)), 1),
        np.nan,
    )
    obs = pd.DataFrame(
        {
            "farm_id": "blk",
            "date": dates,
            "status": np.where(frac >= 0.5, "ok", "cloudy"),
            "clear_fraction": frac,
            "ndvi_mean": mean,
        }
    ).drop_duplicates(["farm_id", "date"])
    ds = to_regular(obs, step_days=5, max_gap_days=60)
    o, s = ds["observed"].to_numpy()[0], ds["smoothed"].to_numpy()[0]
    both = np.isfinite(o) & np.isfinite(s)
    assert both.sum() > 20
    assert np.all((s[np.isfinite(s)] > -0.3) & (s[np.isfinite(s)] < 1.0))
    # smoothing follows the real signal closely (median residual small) but is smoother
    assert np.median(np.abs(o[both] - s[both])) < 0.08
    assert np.nanstd(np.diff(s)) < np.nanstd(np.diff(o[both]))
