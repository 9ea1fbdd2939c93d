"""Robustness rules found on real series (crops without a calendar, shared drops, dormant
peers) and the usual standing against the peers at this time of year, on constructed series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agrisat.anomaly import (
    DetectSettings,
    classify_looks,
    look_features,
    normal_looks,
)

# --- robustness rules for crops without a calendar (real-series findings) ---------------------


def _other_obs(series: dict[str, list[tuple[str, float]]], water: float = 0.0) -> pd.DataFrame:
    """Clear looks of crop-``other`` farms from ``farm -> [(date, ndvi), ...]``."""
    rows = [
        {"farm_id": fid, "date": d, "item_id": f"S_{d}", "status": "ok", "clear_fraction": 1.0,
         "clear_pixels": 100.0, "water_fraction": water, "ndvi_mean": v, "ndvi_std": 0.02}
        for fid, looks in series.items()
        for d, v in looks
    ]  # fmt: skip
    return pd.DataFrame(rows)


def _other_book(ids: list[str], region: str = "r") -> pd.DataFrame:
    return pd.DataFrame(
        {"farm_id": ids, "loan_id": ids, "borrower_id": ids, "crop": "other",
         "region": region, "exposure": 1.0}
    )  # fmt: skip


def _classified(obs: pd.DataFrame, book: pd.DataFrame) -> pd.DataFrame:
    return classify_looks(look_features(obs, book)).set_index(["farm_id", "date"])


def _stand(years: int, *, swing: float = 0.0) -> list[tuple[str, float]]:
    """16-day looks of an evergreen stand (NDVI ~0.85); ``swing`` makes earlier seasons jump
    up and down by that much around August (a rangeland's fast moves)."""
    out = []
    for i, d in enumerate(pd.date_range("2000-01-01", periods=23 * years, freq="16D")):
        jump = swing * (1 if (i % 2) else -1) if d.month in (8, 9) else 0.0
        out.append((f"{d:%Y-%m-%d}", 0.85 + 0.01 * np.sin(i) + jump))
    return out


def test_loss_over_two_composites_without_peers_is_abrupt_loss() -> None:
    """A stand felled over two composites (-0.11, -0.11) with no peers and no calendar is an
    abrupt loss on the second look; the same fall on a farm whose earlier seasons moved that
    fast at this time of year is not."""
    book = _other_book(["STAND"], region="")
    stand = _stand(5)
    fell = [d for d, _ in stand if d >= "2004-08-10"][:3]
    felled = [(d, v) for d, v in stand if d < fell[0]] + [
        (fell[0], 0.84), (fell[1], 0.73), (fell[2], 0.62)
    ]  # fmt: skip
    c = _classified(_other_obs({"STAND": felled}), book).loc["STAND"]
    assert c.loc[pd.Timestamp(fell[2]), "hazard"] == "abrupt_loss"
    assert c.loc[pd.Timestamp(fell[2]), "confirmed"]
    assert not (c.loc[: pd.Timestamp(fell[1]), "hazard"] == "abrupt_loss").any()
    swinging = _stand(5, swing=0.2)
    moved = [(d, v) for d, v in swinging if d < fell[0]] + [
        (fell[0], 0.84), (fell[1], 0.73), (fell[2], 0.62)
    ]  # fmt: skip
    c2 = _classified(_other_obs({"STAND": moved}), book).loc["STAND"]
    assert (c2["hazard"] != "abrupt_loss").all()


def _peer_series(dates: list[str], peers: list[float], farm: list[float]) -> pd.DataFrame:
    series = {f"P{k}": [(d, v + 0.01 * k) for d, v in zip(dates, peers, strict=True)]
              for k in range(6)}  # fmt: skip
    series["F"] = list(zip(dates, farm, strict=True))
    return _other_obs(series)


def test_drop_on_a_date_the_peers_share_waits_for_a_second_look() -> None:
    """Haze over the whole group (peers' median 0.72 -> 0.56, back five days later) does not
    confirm a one-look abrupt loss on a farm that fell further; the same fall while its peers
    stay green does."""
    dates = ["2017-06-20", "2017-07-05", "2017-07-10", "2017-07-15", "2017-07-20"]
    book = _other_book([*(f"P{k}" for k in range(6)), "F"])
    farm = [0.72, 0.73, 0.72, 0.37, 0.70]
    hazy = _classified(_peer_series(dates, [0.72, 0.73, 0.72, 0.56, 0.71], farm), book)
    day = pd.Timestamp("2017-07-15")
    assert hazy.loc[("F", day), "hazard"] == "abrupt_loss"
    assert not hazy["confirmed"].any()
    clear = _classified(_peer_series(dates, [0.72, 0.73, 0.72, 0.71, 0.71], farm), book)
    assert clear.loc[("F", day), "hazard"] == "abrupt_loss" and clear.loc[("F", day), "confirmed"]


def test_gap_to_dormant_peers_is_not_a_drought() -> None:
    """December: the peers' median is far below its summer high (dormant, snow); a farm
    0.2 below them is snow cover, not drought. The same gap in July is a drought."""
    book = _other_book([*(f"P{k}" for k in range(6)), "F"])
    winter = ["2015-07-11", "2015-08-30", "2015-12-18", "2015-12-28"]
    c = _classified(_peer_series(winter, [0.76, 0.72, 0.44, 0.45], [0.77, 0.73, 0.23, 0.25]), book)
    assert (c.loc["F", "hazard"] == "none").all()
    summer = ["2015-05-01", "2015-05-21", "2015-07-11", "2015-07-21"]
    c = _classified(_peer_series(summer, [0.60, 0.72, 0.76, 0.75], [0.61, 0.73, 0.53, 0.52]), book)
    assert c.loc["F", "hazard"].iloc[-2:].eq("drought").all()


def test_water_on_a_field_bare_every_spring_is_not_a_flood() -> None:
    """Snowmelt water on a farm without a calendar whose own history is bare in May is not a
    flooded crop; the same water where its history is green is."""
    book = _other_book(["F"], region="")
    dates = [f"{y}-05-{d:02d}" for y in range(2008, 2013) for d in (5, 13, 21)]
    for level, flood in ((0.25, False), (0.70, True)):
        obs = _other_obs({"F": [(d, level) for d in dates]})
        obs.loc[obs.index[-1], "water_fraction"] = 0.3
        c = _classified(obs, book).loc["F"]
        assert (c["hazard"].iloc[-1] == "flood") is flood


def test_record_low_and_strong_reference_rules() -> None:
    """The record-low route needs enough earlier seasons and a margin over the noise; the
    one-look two-band route needs a usual standing from more than one look."""
    from agrisat.anomaly.core import strong_drought
    from agrisat.anomaly.detectors import record_low

    s = DetectSettings()
    f = pd.DataFrame({"value": [0.30, 0.30, 0.30], "own_min": [0.40, 0.32, 0.40],
                      "own_n": [10.0, 10.0, 5.0]})  # fmt: skip
    assert record_low(f, s).tolist() == [True, False, False]
    g = pd.DataFrame({"change_z": [-5.0, -5.0], "moist_change_z": [-5.0, -5.0],
                      "peer_deficit": [0.2, 0.2], "change_ref_n": [3.0, 1.0]})  # fmt: skip
    assert strong_drought(g, s).tolist() == [True, False]


# --- usual standing against the peers at this time of year (own history of the peer gap) ------


def _september_book_and_obs(this_gap: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Six peers near 0.77 and a farm ``F`` 0.12 below their median on every look of three
    earlier years (28 Aug and 4 Oct), then ``this_gap`` below on 12 and 20 Sep 2015. The
    earlier looks are 14-15 days from this year's: outside the own history's +-10-day window
    (no own baseline, as on a sparse Landsat record) but inside its phenology tolerance."""
    earlier = [f"{y}-{md}" for y in (2012, 2013, 2014) for md in ("08-28", "10-04")]
    now = ["2015-09-12", "2015-09-20"]
    series = {f"P{k}": [(d, 0.75 + 0.01 * k) for d in [*earlier, *now]] for k in range(6)}
    # the peers' median with F among them is P2 (0.77): F is F's gap below it
    series["F"] = [(d, 0.77 - 0.12) for d in earlier] + [(d, 0.77 - this_gap) for d in now]
    return _other_book([*(f"P{k}" for k in range(6)), "F"]), _other_obs(series)


def test_farm_at_its_usual_september_gap_to_its_peers_is_not_a_drought() -> None:
    """A farm 0.12 below its peers every September for three years is 0.12 below again: its
    normal, no drought (without the seasonal standing it would be one). The same farm 0.35
    below its peers this September, far beyond its usual gap, is a confirmed drought."""
    book, obs = _september_book_and_obs(0.12)
    c = _classified(obs, book).loc["F"].loc["2015"]
    assert c["usual_gap"].to_numpy() == pytest.approx([-0.12, -0.12], abs=1e-9)
    assert c["expected"].isna().all()  # no own baseline: the peers decide
    assert (c["hazard"] == "none").all() and not c["confirmed"].any()
    off = DetectSettings(seasonal_gap_min_looks=0)
    raw = classify_looks(look_features(obs, book, settings=off), off)
    raw = raw.set_index(["farm_id", "date"]).loc["F"].loc["2015"]
    assert (raw["hazard"] == "drought").all() and raw["confirmed"].iloc[-1]
    book, obs = _september_book_and_obs(0.35)
    c = _classified(obs, book).loc["F"].loc["2015"]
    assert (c["hazard"] == "drought").all() and c["confirmed"].iloc[-1]
    # the deficit quoted is the one beyond the usual gap, against peers' median + usual gap
    assert c["expected_h"].to_numpy() == pytest.approx([0.65, 0.65], abs=1e-9)


@pytest.mark.parametrize(("this_gap", "drought"), [(0.12, False), (0.35, True)])
def test_usual_september_gap_with_an_own_baseline(this_gap: float, drought: bool) -> None:
    """The same farm seen every 8 days (an own baseline at this date): 0.12 below its peers
    again is its normal, 0.35 below is a confirmed drought."""
    days = [f"{y}-{md}" for y in (2012, 2013, 2014) for md in ("09-04", "09-12", "09-20")]
    now = ["2015-09-12", "2015-09-20"]
    series = {f"P{k}": [(d, 0.75 + 0.01 * k) for d in [*days, *now]] for k in range(6)}
    series["F"] = [(d, 0.65) for d in days] + [(d, 0.77 - this_gap) for d in now]
    book = _other_book([*(f"P{k}" for k in range(6)), "F"])
    c = _classified(_other_obs(series), book).loc["F"].loc["2015"]
    assert c["expected_mid"].notna().all() and c["usual_gap"].notna().all()
    assert bool((c["hazard"] == "drought").all()) is drought
    assert bool(c["confirmed"].iloc[-1]) is drought


def test_usual_gap_needs_earlier_seasons_of_the_same_peer_level() -> None:
    """The usual gap comes from earlier seasons only (a look's own season never), from at
    least ``seasonal_gap_min_seasons`` of them, and only from looks judged by the same peer
    level; it matches its definition on shuffled, interleaved farms."""
    from agrisat.anomaly.seasonal import seasonal_gap

    rng = np.random.default_rng(8)
    rows = []
    for farm, n, span in (("A", 160, 1500), ("B", 60, 1500), ("C", 40, 300)):
        days = np.sort(rng.choice(np.arange(span), n, replace=False))
        rows.append(
            pd.DataFrame(
                {
                    "farm_id": farm,
                    "date": pd.Timestamp("2020-01-01") + pd.to_timedelta(days, unit="D"),
                    "value": rng.uniform(0.2, 0.9, n),
                    "peer_median": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0.3, 0.8, n)),
                    "peer_level": rng.choice(["region", "crop"], n, p=[0.8, 0.2]),
                }
            )
        )
    looks = pd.concat(rows, ignore_index=True).sample(frac=1, random_state=3)
    s = DetectSettings()
    got = seasonal_gap(looks, s)
    year, win = 365.25, s.history_window_days + s.phenology_tolerance_days
    t = (looks["date"] - pd.Timestamp("1970-01-01")).dt.days.to_numpy(dtype=float)
    gap = (looks["value"] - looks["peer_median"]).to_numpy()
    farm, level = looks["farm_id"].to_numpy(), looks["peer_level"].to_numpy()
    checked = 0
    for i in range(len(looks)):
        sel = [
            j
            for j in range(len(looks))
            if farm[j] == farm[i] and level[j] == level[i] and np.isfinite(gap[j])
            and t[j] <= t[i] - s.history_min_gap_days
            and abs(((t[j] - t[i] + year / 2) % year) - year / 2) <= win
        ]  # fmt: skip
        seasons = {round((t[i] - t[j]) / year) for j in sel}
        want = (
            float(np.median(gap[sel]))
            if len(sel) >= s.seasonal_gap_min_looks and len(seasons) >= 2 and np.isfinite(gap[i])
            else np.nan
        )
        if np.isnan(want):
            assert np.isnan(got.iloc[i])
        else:
            assert got.iloc[i] == pytest.approx(want, abs=1e-12)
            checked += 1
    assert checked >= 50
    # farm C has one year of looks: never a usual gap
    assert got[looks["farm_id"].to_numpy() == "C"].isna().all()


def test_usual_gap_incremental_equals_full() -> None:
    """The incremental path reads the usual gap's history from the persisted looks (their
    peer median and level) and gives the rows a full recompute gives."""
    from agrisat.anomaly.incremental import context_from_looks, extend_looks, full_looks

    book, obs = _september_book_and_obs(0.35)
    obs["date"] = pd.to_datetime(obs["date"])
    full = full_looks(obs, book)
    assert full["usual_gap"].notna().sum() >= 14
    for d0 in (pd.Timestamp("2015-09-12"), pd.Timestamp("2015-09-20")):
        ctx = context_from_looks(full, d0=d0, d1=obs["date"].max())
        got = extend_looks(obs[obs["date"] >= d0], book, ctx, d0=d0).reset_index(drop=True)
        want = full[full["date"] >= d0].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_recovery_is_judged_from_the_usual_standing_among_peers() -> None:
    # three looks 3 peer-MADs below the peers' median, own history fine (deficit 2 %):
    # a farm that is usually that far below its peers at this time of year is back to normal;
    # one whose usual gap is small (or unknown) is still far below its peers
    f = pd.DataFrame(
        {
            "expected": [0.7, 0.7, 0.7],
            "own_deficit": [0.02, 0.02, 0.02],
            "peer_z": [-3.0, -3.0, -3.0],
            "season_peer_z": [-0.3, -3.0, -3.0],
            "peer_median": [0.75, 0.75, 0.75],
            "water_fraction": [0.0, 0.0, 0.0],
        }
    )
    assert normal_looks(f).tolist() == [True, False, False]
    # without the seasonal column the raw peer z decides
    assert not normal_looks(f.drop(columns="season_peer_z")).any()
