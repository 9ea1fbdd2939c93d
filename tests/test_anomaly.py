"""Detectors on constructed series: each fires on its event, none fires on the non-events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agrisat.anomaly import (
    ANOMALY_COLUMNS,
    DetectSettings,
    assemble,
    classify_looks,
    detect,
    detect_abrupt_loss,
    detect_drought,
    detect_flood,
    detect_no_planting,
    look_features,
    own_history,
)
from agrisat.testing_series import Event, make_farms, make_observations

ASOF = "2026-09-30"


@pytest.fixture(scope="module")
def farms():
    f = make_farms(30)
    f.loc[f.index >= 25, "crop"] = "other"  # crops without a calendar still get peers/flood/abrupt
    f.loc[f.index >= 25, "region"] = ""
    return f


def _alerted(out: pd.DataFrame) -> dict[str, set[str]]:
    conf = out[out["confirmed"].astype(bool)]
    return {f: set(g["run_hazard"]) for f, g in conf.groupby("farm_id")}


EVENTS = [
    Event("F0001", "drought", "2026-04-05", "2026-05-15", depth=0.4),
    Event("F0002", "abrupt_loss", "2026-04-22", "2026-06-10"),
    Event("F0003", "flood", "2026-07-20", "2026-08-05", depth=0.5),
    Event("F0004", "no_planting", "2025-10-01", "2026-06-10"),
    Event("F0005", "drought", "2026-07-15", "2026-08-30", depth=0.45),
]


@pytest.fixture(scope="module")
def scenario(farms):
    non_events = [Event("F0010", "early_harvest", "2026-04-01", "2026-06-30", shift=-10)]
    # region-wide mild stress (10 % for a month) on every farm without an event
    stressed = [f for f in farms["farm_id"] if f not in {e.farm_id for e in EVENTS}]
    non_events += [
        Event(f, "stress", "2026-04-10", "2026-05-10", depth=0.10, ramp_days=5) for f in stressed
    ]
    obs = make_observations(
        farms,
        events=EVENTS + non_events,
        seed=3,
        cloudy=[
            ("2026-04-28", "2026-05-12"),
            ("2026-08-10", "2026-08-24"),
        ],  # two cloudy fortnights
        baseline_shift=("2026-01-25", -0.01),  # processing-baseline change
    )
    return obs, detect(obs, farms, asof=ASOF)


def test_output_contract(scenario) -> None:
    _, out = scenario
    assert list(out.columns) == list(ANOMALY_COLUMNS)
    assert set(out["state"]) <= {"anomalous", "normal", "borderline", "stale"}


def test_each_detector_fires_on_its_event_and_nothing_else(scenario) -> None:
    _, out = scenario
    alerted = _alerted(out)
    assert alerted.get("F0001") == {"drought"}
    assert "abrupt_loss" in alerted.get("F0002", set())
    assert alerted.get("F0003") == {"flood"}
    assert alerted.get("F0004") == {"no_planting"}
    assert alerted.get("F0005") == {"drought"}
    # normal and early harvests, cloudy fortnights, the baseline change, the regional stress
    # and the 'other' crops raise nothing
    assert set(alerted) == {"F0001", "F0002", "F0003", "F0004", "F0005"}


def test_onsets_follow_event_starts(scenario) -> None:
    _, out = scenario
    conf = out[out["confirmed"].astype(bool)].groupby("farm_id")["onset"].min()
    starts = {e.farm_id: pd.Timestamp(e.start) for e in EVENTS if e.kind != "no_planting"}
    for farm, start in starts.items():
        assert start - pd.Timedelta(days=5) <= conf[farm] <= start + pd.Timedelta(days=25), farm


def test_drought_peer_state(scenario) -> None:
    _, out = scenario
    d = out[(out["farm_id"] == "F0001") & (out["hazard"] == "drought")]
    assert (d["peer_state"] == "idiosyncratic").all()


def test_systemic_drought_needs_a_large_shared_deficit(farms) -> None:
    ev = [
        Event(f, "stress", "2026-04-01", "2026-05-15", depth=0.45, ramp_days=5)
        for f in farms["farm_id"][:25]
    ]
    obs = make_observations(farms, events=ev, seed=4)
    f = look_features(obs[obs["date"] <= "2026-05-10"], farms)
    rows = detect_drought(f)
    assert rows["farm_id"].nunique() >= 20  # a regional drought is reported...
    assert (rows["peer_state"] == "systemic").mean() > 0.9  # ...as systemic


def test_abrupt_loss_not_in_harvest_window(farms) -> None:
    obs = make_observations(farms, seed=5)
    f = look_features(obs, farms)
    assert detect_abrupt_loss(f).empty  # every farm is harvested twice a year
    g = f.copy()
    g["in_harvest"] = False
    g["peer_median"] = np.nan  # without the window and peers, harvests would look like losses
    g["prev_peer_median"] = np.nan
    g["peer_z"] = np.nan
    g["own_deficit"] = np.nan
    assert not detect_abrupt_loss(g).empty


def test_flood_ignores_usual_water(farms) -> None:
    obs = make_observations(farms, seed=6)
    # a farm with a pond: 30 % water every time is its normal, not a flood
    obs.loc[obs["farm_id"] == "F0007", "water_fraction"] = 0.3
    f = look_features(obs, farms)
    f = f[f["date"] >= "2024-10-01"]  # once the farm has a history
    assert "F0007" not in set(detect_flood(f)["farm_id"])
    f2 = f.copy()
    f2["hist_water"] = np.nan  # with no history and no peers, the same water would be a flood
    f2["peer_water"] = np.nan
    assert "F0007" in set(detect_flood(f2)["farm_id"])


def test_no_planting_needs_greened_peers(scenario, farms) -> None:
    obs, _ = scenario
    f = look_features(obs, farms)
    rows = detect_no_planting(f)
    assert set(rows["farm_id"]) == {"F0004"}
    assert rows["date"].min() < pd.Timestamp("2026-01-01")  # seen before winter, peers emerged


def test_stale_data_regional_gap_waits_idiosyncratic_gap_does_not(farms) -> None:
    obs = make_observations(farms, seed=7, cloudy=[("2026-03-20", "2026-05-30")])
    fortnight = detect(obs, farms, asof="2026-04-03")
    assert not (fortnight["hazard"] == "stale_data").any()
    # 45 days without a clear look anywhere: weather shared by the region, not a farm's problem
    shared = detect(obs, farms, asof="2026-05-05")
    assert not (shared["hazard"] == "stale_data").any()
    # past stale_regional_days the team is blind on every farm: all stale, marked regional
    blind = detect(obs, farms, asof="2026-05-25")
    stale = blind[blind["hazard"] == "stale_data"]
    assert stale["farm_id"].nunique() == 30 and (stale["score"] >= 60).all()
    assert set(stale["peer_state"]) == {"regional"}


def test_stale_data_farm_unseen_while_region_seen(farms) -> None:
    obs = make_observations(farms, seed=7, start="2025-10-01")
    gap = (obs["farm_id"] == "F0007") & obs["date"].between("2026-03-01", "2026-05-30")
    obs.loc[gap, ["status", "ndvi_mean", "ndmi_mean", "water_fraction"]] = ["cloudy", *[np.nan] * 3]
    early = detect(obs, farms, asof="2026-03-25")  # 29 days: not yet
    assert not (early["hazard"] == "stale_data").any()
    out = detect(obs, farms, asof="2026-04-05")
    stale = out[out["hazard"] == "stale_data"]
    assert list(stale["farm_id"]) == ["F0007"] and list(stale["peer_state"]) == ["idiosyncratic"]
    assert stale["onset"].iloc[0] < pd.Timestamp("2026-03-01")  # since its last clear look


def test_confirmation_delays_single_look_hazards(farms) -> None:
    obs = make_observations(farms, events=[EVENTS[1]], seed=8)
    first = {}
    for confirm in (1, 2):
        s = DetectSettings(confirm_abrupt_loss=confirm)
        c = classify_looks(look_features(obs, farms, settings=s), s)
        hit = c[(c["farm_id"] == "F0002") & c["confirmed"]]
        first[confirm] = hit["date"].min()
    assert first[2] - first[1] == pd.Timedelta(days=5)  # one revisit


def test_detect_ignores_the_future_and_is_causal(scenario, farms) -> None:
    obs, _ = scenario
    night = pd.Timestamp("2026-05-20")
    a = detect(obs, farms, asof=night)
    assert a["date"].max() <= night
    c = classify_looks(look_features(obs, farms))  # features on all data, cut afterwards
    b = assemble(c[c["date"] <= night], farms, obs[obs["date"] <= night], asof=night)
    cols = ["farm_id", "date", "hazard", "state", "onset", "confirmed"]
    pd.testing.assert_frame_equal(
        a[cols].reset_index(drop=True), b[cols].reset_index(drop=True), check_dtype=False
    )


def test_own_history_robust_baseline() -> None:
    dates = pd.date_range("2023-04-01", "2026-04-30", freq="5D")
    value = np.where(dates.month == 4, 0.8, 0.3)
    value[(dates.year == 2024) & (dates.month == 4)] = 0.2  # one bad year must not drag the median
    looks = pd.DataFrame({"farm_id": "F", "date": dates, "value": value, "water_fraction": 0.0})
    res = own_history(looks)
    last = res.loc[
        looks.index[
            (dates.year == 2026) & (dates.day >= 10) & (dates.day <= 20) & (dates.month == 4)
        ]
    ]
    assert np.allclose(last["expected_mid"], 0.8)
    assert (last["own_scale"] >= DetectSettings().scale_floor).all()


def test_dask_path_matches_serial(farms) -> None:
    obs = make_observations(farms, seed=9, start="2024-10-01")
    looks = look_features(obs, farms)[["farm_id", "date", "value", "water_fraction"]]
    serial = own_history(looks)
    par = own_history(looks, DetectSettings(parallel_min_farms=2, chunk_farms=7))
    pd.testing.assert_frame_equal(serial.sort_index(), par.sort_index())


def test_empty_and_all_cloudy_inputs() -> None:
    farms = make_farms(5).drop(columns="region")  # region is optional
    obs = make_observations(make_farms(5), start="2026-01-01", end="2026-04-01")
    empty = detect(obs.iloc[0:0], farms, asof="2026-04-01")
    assert empty.empty and list(empty.columns) == list(ANOMALY_COLUMNS)
    obs["status"] = "cloudy"
    out = detect(obs, farms, asof="2026-04-01")
    assert set(out["hazard"]) == {"stale_data"} and len(out) == 5
    assert (
        out["onset"] == pd.Timestamp("2026-01-01")
    ).all()  # never seen clearly: since first seen


def test_may_loss_in_harvest_window_while_peers_green(farms) -> None:
    # hail on green wheat on 17 May: inside the calendar's harvest window, but the peers are
    # at their peak (not ripening) and the canopy is gone; a 10-day early harvest stays silent
    events = [
        Event("F0002", "abrupt_loss", "2026-05-17", "2026-06-12", level=0.2),
        Event("F0010", "early_harvest", "2026-04-01", "2026-06-30", shift=-10),
    ]
    obs = make_observations(farms, events=events, seed=11, start="2024-10-01", end="2026-07-15")
    hits = _alerted(detect(obs, farms, asof="2026-07-15"))
    assert hits == {"F0002": {"abrupt_loss"}}
    calendar_only = DetectSettings(ripening_decline=0.0)  # the old rule: the window excuses all
    assert "F0002" not in _alerted(detect(obs, farms, asof="2026-07-15", settings=calendar_only))


def test_no_planting_confirmed_on_one_strong_look_after_a_cloud_gap(farms) -> None:
    events = [Event("F0004", "no_planting", "2026-06-12", "2026-10-05")]
    obs = make_observations(
        farms, events=events, seed=12, start="2024-10-01", cloudy=[("2026-06-20", "2026-07-24")]
    )
    first = {}
    for factor in (2.0, 0.0):
        s = DetectSettings(strong_factor=factor)
        c = classify_looks(look_features(obs, farms, settings=s), s)
        hit = c[(c["farm_id"] == "F0004") & c["confirmed"] & (c["hazard"] == "no_planting")]
        first[factor] = hit["date"].min()
    seen = obs[(obs["farm_id"] == "F0004") & (obs["status"] == "ok")]["date"]
    assert first[2.0] == seen[seen > pd.Timestamp("2026-07-24")].min()  # first look after gap
    assert first[0.0] - first[2.0] == pd.Timedelta(days=5)  # otherwise one more revisit


def test_drought_change_route_is_faster_and_needs_drying(farms) -> None:
    events = [Event("F0001", "drought", "2026-03-30", "2026-05-15", depth=0.35, ramp_days=25)]
    obs = make_observations(farms, events=events, seed=13, start="2024-10-01", end="2026-06-01")
    first = {}
    for name, s in (("change", DetectSettings()), ("slow", DetectSettings(moisture_index=""))):
        c = classify_looks(look_features(obs, farms, settings=s), s)
        hit = c[(c["farm_id"] == "F0001") & c["confirmed"]]
        first[name] = hit["date"].min()
        season = c["confirmed"] & (c["date"] >= pd.Timestamp("2025-10-01"))  # with history
        assert set(c.loc[season, "farm_id"]) == {"F0001"}
    assert first["change"] < first["slow"]
    # the same NDVI deficit with NDMI keeping its standing (no corroboration) is not fast-tracked
    normal = obs.loc[obs["farm_id"] == "F0002", "ndmi_mean"].to_numpy()
    held = obs.copy()
    held.loc[held["farm_id"] == "F0001", "ndmi_mean"] = normal
    from agrisat.anomaly.detectors import change_mask

    f = look_features(held, farms)
    assert not change_mask(f, DetectSettings())[f["farm_id"] == "F0001"].any()
    f = look_features(obs, farms)
    assert change_mask(f, DetectSettings())[f["farm_id"] == "F0001"].any()


def _naive_own(t: np.ndarray, v: np.ndarray, ti: float, s: DetectSettings) -> tuple[float, int]:
    """The own-history median and count of one look, straight from the definition."""
    year = 365.25
    sel = [
        val
        for tj, val in zip(t, v, strict=True)
        if tj <= ti - s.history_min_gap_days
        and abs(((tj - ti + year / 2) % year) - year / 2) <= s.history_window_days
    ]
    return (float(np.median(sel)) if sel else np.nan), len(sel)


@pytest.mark.parametrize(
    "settings",
    [DetectSettings(), DetectSettings(history_window_days=200), DetectSettings(chunk_farms=1)],
)
def test_own_history_matches_definition_for_interleaved_farms(settings) -> None:
    # Irregular, shuffled looks of three farms: the vectorised search must find exactly the
    # same-day-of-year looks of earlier seasons of the same farm (also when windows overlap).
    rng = np.random.default_rng(5)
    rows = []
    for farm, n, span in (("A", 140, 1200), ("B", 90, 1200), ("C", 3, 200)):
        days = np.sort(rng.choice(np.arange(span), n, replace=False))
        rows.append(
            pd.DataFrame(
                {
                    "farm_id": farm,
                    "date": pd.Timestamp("2023-01-01") + pd.to_timedelta(days, unit="D"),
                    "value": rng.uniform(0.1, 0.9, n),
                    "water_fraction": rng.uniform(0, 0.3, n),
                }
            )
        )
    looks = pd.concat(rows, ignore_index=True).sample(frac=1, random_state=2)
    res = own_history(looks, settings)
    assert sorted(res.index) == sorted(looks.index)
    t = (looks["date"] - pd.Timestamp("1970-01-01")).dt.days.to_numpy(dtype=float)
    for farm in ("A", "B"):
        own = (looks["farm_id"] == farm).to_numpy()
        for i in np.flatnonzero(own)[::7]:
            med, n = _naive_own(t[own], looks["value"].to_numpy()[own], t[i], settings)
            got = res.loc[looks.index[i]]
            assert got["own_n"] == n
            if n >= settings.min_history_looks:
                assert got["expected_mid"] == pytest.approx(med, abs=1e-12)
            else:
                assert np.isnan(got["expected_mid"])
    # Farm C has no earlier season at all: no baseline, not even a count.
    assert res.loc[looks.index[looks["farm_id"] == "C"], "own_n"].isna().all()


def test_standing_change_reference_matches_definition(farms) -> None:
    obs = make_observations(farms, seed=4, start="2025-10-01", end="2026-06-30")
    f = look_features(obs, farms)
    t = (f["date"] - pd.Timestamp("1970-01-01")).dt.days.to_numpy()
    res = (f["value"] - f["peer_median"]).to_numpy()
    s = DetectSettings()
    checked = 0
    for i in range(0, len(f), 23):
        # the farm's looks judged by the same peer level
        same = (f["farm_id"] == f["farm_id"].iloc[i]) & (f["peer_level"] == f["peer_level"].iloc[i])
        same = same.to_numpy()
        age = t[i] - t
        ref = res[same & (age >= s.change_ref_min_days) & (age <= s.change_ref_max_days)]
        ref = ref[np.isfinite(ref)]
        expected = res[i] - np.median(ref) if ref.size else np.nan
        if np.isnan(expected):
            assert np.isnan(f["change"].iloc[i])
        else:
            assert f["change"].iloc[i] == pytest.approx(expected, abs=1e-12)
            checked += 1
    assert checked > 10


def test_stale_region_date_count_matches_brute_force() -> None:
    from agrisat.anomaly.detectors import _count_later

    rng = np.random.default_rng(1)
    day0 = pd.Timestamp("2026-01-01")
    book = pd.DataFrame(
        {
            "farm_id": [f"F{i}" for i in range(40)],
            "region": rng.choice(["a", "b", "c", ""], 40),
            "since": day0 + pd.to_timedelta(rng.integers(0, 60, 40), unit="D"),
        }
    )
    good = pd.DataFrame(
        {
            "region": rng.choice(["a", "b", "x"], 50),
            "date": day0 + pd.to_timedelta(rng.integers(0, 80, 50), unit="D"),
        }
    ).drop_duplicates()
    got = _count_later(book, good)
    want = [
        int(((good["region"] == r) & (good["date"] > s)).sum())
        for r, s in zip(book["region"], book["since"], strict=True)
    ]
    assert got is not None and got.tolist() == want
    # Not whole days: the caller must fall back to the join.
    assert _count_later(book.assign(since=book["since"] + pd.Timedelta(hours=3)), good) is None


def test_strong_drought_confirms_on_its_first_look_weak_waits(farms) -> None:
    # a sharp drought (40 % within 3 days): the first look after it is far out against the
    # same-date peers in NDVI and NDMI and confirms alone, flagged early; strong_z=0 waits
    events = [Event("F0001", "drought", "2026-04-06", "2026-05-20", depth=0.4, ramp_days=3)]
    obs = make_observations(farms, events=events, seed=21, start="2024-10-01", end="2026-06-01")
    first = {}
    for strong in (4.0, 0.0):
        s = DetectSettings(strong_z=strong)
        c = classify_looks(look_features(obs, farms, settings=s), s)
        hit = c[(c["farm_id"] == "F0001") & c["confirmed"]]
        first[strong] = hit.iloc[0]
        season = c["confirmed"] & (c["date"] >= pd.Timestamp("2025-10-01"))
        assert set(c.loc[season, "farm_id"]) == {"F0001"}  # nothing else, either way
    anom = c[(c["farm_id"] == "F0001") & (c["state"] == "anomalous")]["date"].min()
    assert first[4.0]["date"] == anom and first[4.0]["run_looks"] == 1 and first[4.0]["early"]
    assert first[0.0]["date"] - first[4.0]["date"] == pd.Timedelta(days=5)
    assert not first[0.0]["early"]


def test_weak_single_look_drought_waits_for_a_second_look(farms) -> None:
    # a mild, slow drought never reaches strong_z on one look: it still needs two looks
    events = [Event("F0001", "drought", "2026-04-01", "2026-05-20", depth=0.3, ramp_days=20)]
    obs = make_observations(farms, events=events, seed=22, start="2024-10-01", end="2026-06-01")
    c = classify_looks(look_features(obs, farms))
    hit = c[(c["farm_id"] == "F0001") & c["confirmed"]]
    assert len(hit) and (hit["run_looks"] >= 2).all() and not hit["early"].any()


def test_late_farm_greening_at_its_peers_pace_is_not_a_drought(farms) -> None:
    # F0007 emerges 15 days late this spring and greens at the normal pace: not a drought
    obs = make_observations(farms, seed=23, start="2024-10-01", end="2026-06-01")
    me = obs[obs["farm_id"] == "F0007"].set_index("date")
    window = (obs["farm_id"] == "F0007") & obs["date"].between("2026-02-20", "2026-04-30")
    for col in ("ndvi_mean", "ndmi_mean"):
        obs.loc[window, col] = (
            me[col].reindex(obs.loc[window, "date"] - pd.Timedelta(days=15)).to_numpy()
        )
    c = classify_looks(look_features(obs, farms))
    season = c["confirmed"] & (c["date"] >= pd.Timestamp("2025-10-01"))
    assert not season.any()
    # the guard is what keeps it quiet: without it the late farm is flagged as a drought
    s = DetectSettings(late_pace_share=0.0, change_lag_guard_days=0)
    c0 = classify_looks(look_features(obs, farms, settings=s), s)
    flagged = c0[(c0["farm_id"] == "F0007") & (c0["hazard"] == "drought")]
    assert len(flagged)


def test_rare_crop_peers_keep_their_regions_shared_condition() -> None:
    # crop Y has 3 farms in region A (< min_peers): compared with Y elsewhere, plus what
    # region A shares that date (all of A is 0.06 below its crops' medians)
    rows = [("A", "X", 0.54)] * 6 + [("B", "X", 0.60)] * 15
    rows += [("A", "Y", 0.54)] * 3 + [("B", "Y", 0.60)] * 6
    looks = pd.DataFrame(rows, columns=["region", "crop", "value"])
    looks["farm_id"] = [f"F{i:03d}" for i in range(len(looks))]
    looks["date"] = pd.Timestamp("2026-04-20")
    from agrisat.anomaly import peer_stats

    p = peer_stats(looks, DetectSettings())
    y_in_a = (looks["region"] == "A") & (looks["crop"] == "Y")
    assert (p.loc[y_in_a, "peer_level"] == "crop").all()
    np.testing.assert_allclose(p.loc[y_in_a, "peer_median"], 0.54)  # 0.60 - 0.06
    y_in_b = (looks["region"] == "B") & (looks["crop"] == "Y")
    np.testing.assert_allclose(p.loc[y_in_b, "peer_median"], 0.60)  # region peers: unchanged


def _set_looks(obs: pd.DataFrame, farm: str, dates: list[str], **values: float) -> None:
    """Overwrite ``farm``'s looks on ``dates`` (status ok) with ``values``."""
    rows = (obs["farm_id"] == farm) & obs["date"].isin(pd.to_datetime(dates))
    obs.loc[rows, "status"] = "ok"
    for col, v in values.items():
        obs.loc[rows, col] = v


def _cloud(obs: pd.DataFrame, farm: str, first: str, last: str) -> None:
    rows = (obs["farm_id"] == farm) & obs["date"].between(first, last)
    obs.loc[rows, "status"] = "cloudy"
    for col in ("ndvi_mean", "ndmi_mean", "ndwi_mean", "water_fraction"):
        obs.loc[rows, col] = np.nan


def test_look_after_a_flood_is_not_excused_as_late(farms) -> None:
    # seed7 F0210: a partly clear flood look (78 % clear: a single look does not confirm),
    # then the water is gone and the field is at 0.33 while its peers stand at ~0.8. The
    # rise out of the water (-0.02 -> 0.33) outpaces the peers' rise since the flood look,
    # but it is the water receding, not a late crop greening: the run must go on.
    obs = make_observations(farms, seed=31, start="2024-10-01", end="2026-09-10")
    _cloud(obs, "F0003", "2026-07-08", "2026-08-22")
    _set_looks(obs, "F0003", ["2026-08-02"], ndvi_mean=-0.02, ndmi_mean=-0.4, ndwi_mean=0.6,
               water_fraction=0.98, clear_fraction=0.78)  # fmt: skip
    after = ["2026-08-12", "2026-08-17", "2026-08-22"]
    _set_looks(obs, "F0003", after, ndvi_mean=0.33, ndmi_mean=-0.09, ndwi_mean=-0.26,
               water_fraction=0.0, clear_fraction=1.0)  # fmt: skip
    f = look_features(obs, farms)
    c = classify_looks(f)
    me = c[(c["farm_id"] == "F0003") & (c["date"] >= pd.Timestamp("2026-08-01"))]
    flood, nxt = me.iloc[0], me.iloc[1]
    assert flood["hazard"] == "flood" and not flood["confirmed"]  # 78 % clear: waits
    # the case: measured from the flood look, the farm "keeps pace" with its peers ...
    from agrisat.anomaly.detectors import _pace, keeping_pace

    s = DetectSettings()
    i = nxt.name
    assert _pace(f, s, f["prev_value"], f["prev_peer_median"], f["prev_date"])[i]
    assert not keeping_pace(f, s)[i]  # ... but the pace counts from the last sound look
    assert nxt["state"] == "anomalous" and nxt["confirmed"] and nxt["run_hazard"] == "flood"
    assert nxt["onset"] == pd.Timestamp("2026-08-02")


def test_crop_seen_green_then_bare_after_a_cloud_gap_is_a_loss(farms) -> None:
    # F0002's maize is seen greening (0.5 on 18 July), then six cloudy weeks, then bare soil
    # (0.22) while its peers stand at 0.8: a crop lost in the gap (hail), not "no planting"
    # (it was seen green this season) and not a drought (drought does not clear a canopy
    # while the neighbours stay green)
    ev = [Event("F0002", "abrupt_loss", "2026-08-01", "2026-09-20", level=0.22)]
    obs = make_observations(farms, events=ev, seed=32, start="2024-10-01", end="2026-09-20")
    _cloud(obs, "F0002", "2026-07-23", "2026-08-27")
    c = classify_looks(look_features(obs, farms))
    me = c[(c["farm_id"] == "F0002") & (c["date"] >= pd.Timestamp("2026-07-01"))]
    seen_green = me[me["date"] < pd.Timestamp("2026-07-23")]["value"].max()
    assert seen_green > DetectSettings().no_planting_max
    hit = me[me["confirmed"]]
    assert len(hit) and hit.iloc[0]["date"] == pd.Timestamp("2026-09-01")
    assert set(hit["run_hazard"]) == {"abrupt_loss"}
    assert not (me["hazard"] == "no_planting").any()
    season = c["confirmed"] & (c["date"] >= pd.Timestamp("2025-10-01"))
    assert set(c.loc[season, "farm_id"]) == {"F0002"}


def _radius_book() -> pd.DataFrame:
    """No regions: T (F0000) and 8 same-crop farms within ~5 km; 24 more ~100 km east."""
    from shapely.geometry import box

    f = make_farms(33, region="")
    lon = [117.0 + 0.02 * (i % 3) for i in range(9)] + [118.1 + 0.005 * i for i in range(24)]
    lat = [36.0 + 0.02 * (i // 3) for i in range(9)] + [36.0] * 24
    f["geometry"] = [box(x, y, x + 0.002, y + 0.002) for x, y in zip(lon, lat, strict=True)]
    # T in the middle of the near group
    f.loc[[0, 4], "farm_id"] = ["F0004", "F0000"]
    return f


def test_radius_peers_are_the_near_same_crop_farms_only() -> None:
    from agrisat.anomaly.features import RadiusPeers, farm_coordinates, peer_stats

    book = _radius_book()
    looks = pd.DataFrame(
        {
            "farm_id": book["farm_id"],
            "crop": book["crop"],
            "region": "",
            "date": pd.Timestamp("2026-04-20"),
            "value": [0.50 + 0.01 * (i % 3) for i in range(9)] + [0.80] * 24,
        }
    )
    s = DetectSettings()
    r = RadiusPeers.build(looks, book[["farm_id", "crop", "region"]], farm_coordinates(book), s)
    p = peer_stats(looks, s, radius=r)
    near = looks.index < 9
    assert (p.loc[near, "peer_level"] == "radius").all()
    assert (p.loc[near, "peer_n"] == 9).all()  # the 8 near farms and itself, not the far 24
    np.testing.assert_allclose(p.loc[near, "peer_median"], 0.51)
    # the far group is judged among itself
    np.testing.assert_allclose(p.loc[~near, "peer_median"], 0.80)
    # without the radius route everything is one crop group: the far farms dominate
    p0 = peer_stats(looks, s)
    assert (p0["peer_level"] == "crop").all() and (p0["peer_median"] == 0.80).all()
    # projected coordinates given in the book work the same way (x/y in metres)
    xy = book.to_crs("EPSG:32650").geometry.centroid
    flat = pd.DataFrame(book.drop(columns="geometry")).assign(x=xy.x, y=xy.y)
    r2 = RadiusPeers.build(looks, flat[["farm_id", "crop", "region"]], farm_coordinates(flat), s)
    pd.testing.assert_frame_equal(peer_stats(looks, s, radius=r2), p)


@pytest.mark.parametrize("shared", [False, True])
def test_farm_without_region_judged_against_farms_5_km_away(shared: bool) -> None:
    # T alone loses 35 % (idiosyncratic: alert); or T and its 8 neighbours lose 28 %
    # (a mild stress shared nearby, below ``systemic_deficit``: no alert) while the group
    # 100 km away is normal -- judged against the whole crop, T would look alone in it
    book = _radius_book()
    near = list(book["farm_id"][:9])
    who = near if shared else ["F0000"]
    depth = 0.28 if shared else 0.35
    ev = [Event(f, "stress", "2026-04-01", "2026-05-20", depth=depth, ramp_days=5) for f in who]
    obs = make_observations(book, events=ev, seed=33, start="2024-10-01", end="2026-05-25")
    s = DetectSettings()
    c = classify_looks(look_features(obs, book, settings=s), s)
    me = c[(c["farm_id"] == "F0000") & (c["date"] >= pd.Timestamp("2026-04-01"))]
    assert (me["peer_level"] == "radius").all() and (me["peer_n"] <= 9).all()
    season = c["confirmed"] & (c["date"] >= pd.Timestamp("2025-10-01"))
    if shared:
        assert not season.any()
        assert (me.loc[me["own_deficit"] > 0.15, "peer_state"] == "systemic").all()
        # the radius is what keeps it quiet: judged against the crop anywhere, it alerts
        s0 = DetectSettings(peer_radius_km=0)
        c0 = classify_looks(look_features(obs, book, settings=s0), s0)
        assert (
            c0.loc[c0["confirmed"] & (c0["farm_id"] == "F0000"), "run_hazard"].eq("drought").any()
        )
    else:
        assert set(c.loc[season, "farm_id"]) == {"F0000"}
        hit = me[me["confirmed"]]
        assert (hit["run_hazard"] == "drought").all()
        assert (hit["peer_state"] == "idiosyncratic").all()


def test_rare_crop_radius_peers_from_other_regions_carry_the_farms_region() -> None:
    # as above, with centroids: the 3 Y farms of region A (too few) are judged against the Y
    # farms within the radius -- 6 of them in region B. Each B peer is moved into A's shared
    # condition (-0.06), so a Y farm of A in line with its region is not below its peers.
    from shapely.geometry import box

    from agrisat.anomaly.features import RadiusPeers, farm_coordinates, peer_stats

    rows = [("A", "X", 0.54)] * 6 + [("B", "X", 0.60)] * 15
    rows += [("A", "Y", 0.54)] * 3 + [("B", "Y", 0.60)] * 6
    looks = pd.DataFrame(rows, columns=["region", "crop", "value"])
    looks["farm_id"] = [f"F{i:03d}" for i in range(len(looks))]
    looks["date"] = pd.Timestamp("2026-04-20")
    geoms = [box(117 + 0.01 * (i % 6), 36 + 0.01 * (i // 6), 117.001 + 0.01 * (i % 6), 36.001 + 0.01 * (i // 6)) for i in range(len(looks))]  # fmt: skip
    book = _gpd_frame(looks[["farm_id", "crop", "region"]], geoms)
    s = DetectSettings()
    r = RadiusPeers.build(looks, looks[["farm_id", "crop", "region"]], farm_coordinates(book), s)
    p = peer_stats(looks, s, radius=r)
    y_in_a = (looks["region"] == "A") & (looks["crop"] == "Y")
    assert (p.loc[y_in_a, "peer_level"] == "radius").all() and (p.loc[y_in_a, "peer_n"] == 9).all()
    np.testing.assert_allclose(p.loc[y_in_a, "peer_median"], 0.54)
    y_in_b = (looks["region"] == "B") & (looks["crop"] == "Y")
    assert (p.loc[y_in_b, "peer_level"] == "region").all()
    np.testing.assert_allclose(p.loc[y_in_b, "peer_median"], 0.60)


def _gpd_frame(attrs: pd.DataFrame, geoms: list) -> pd.DataFrame:
    import geopandas as gpd

    return gpd.GeoDataFrame(attrs, geometry=geoms, crs="EPSG:4326")


def test_radius_stats_same_in_slices_without_cache(monkeypatch) -> None:
    # the bounded-memory path (slices of looks, no cached neighbour matrix) gives the same
    from agrisat.anomaly import radius as rad

    book = _radius_book()
    obs = make_observations(book, seed=34, start="2025-10-01", end="2026-05-01")
    whole = look_features(obs, book)
    monkeypatch.setattr(rad, "_CACHE_ENTRIES", 0)
    monkeypatch.setattr(rad, "_SLICE_ROWS", 7)
    sliced = look_features(obs, book)
    assert (whole["peer_level"] == "radius").any()
    pd.testing.assert_frame_equal(whole, sliced)
