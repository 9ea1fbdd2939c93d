"""Alert lifecycle over successive runs, severity rules, evidence and rollup."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agrisat.alerts import ALERT_COLUMNS, AlertSettings, severity_of, update_alerts
from agrisat.rollup import rollup
from agrisat.testing_series import alert_look, make_farms

FARMS = make_farms(4)


_look = alert_look


RUN1 = [
    _look("F0000", "2026-04-01", "normal"),
    _look("F0000", "2026-04-06", "anomalous", onset="2026-04-06", run_looks=1),
    _look("F0000", "2026-04-11", "anomalous", onset="2026-04-06", run_looks=2, confirmed=True),
    _look("F0001", "2026-04-11", "normal"),
]
RUN2 = [
    *RUN1,
    _look(
        "F0000",
        "2026-04-16",
        "anomalous",
        onset="2026-04-06",
        run_looks=3,
        confirmed=True,
        score=0.45,
    ),
]
# run 3: the dates after 04-16 were cloudy -> no new look rows at all
RUN4 = [*RUN2, _look("F0000", "2026-04-26", "normal")]
RUN5 = [*RUN4, _look("F0000", "2026-05-01", "normal"), _look("F0000", "2026-05-06", "normal")]


def test_lifecycle_new_ongoing_cloudy_resolved() -> None:
    a1 = update_alerts(None, pd.DataFrame(RUN1), FARMS, run_date="2026-04-11")
    assert list(a1.columns) == list(ALERT_COLUMNS)
    assert len(a1) == 1
    r = a1.iloc[0]
    assert (r["status"], r["hazard"], r["farm_id"]) == ("new", "drought", "F0000")
    assert r["onset_date"] == pd.Timestamp("2026-04-06") and r["n_looks"] == 2
    assert r["loan_id"] == "L0000" and r["exposure"] == 1000.0

    a2 = update_alerts(a1, pd.DataFrame(RUN2), FARMS, run_date="2026-04-16")
    assert len(a2) == 1 and a2.iloc[0]["status"] == "ongoing"
    assert a2.iloc[0]["alert_id"] == r["alert_id"]
    assert a2.iloc[0]["first_raised"] == pd.Timestamp("2026-04-11")
    assert a2.iloc[0]["severity"] == "critical"  # 45 % deficit

    a3 = update_alerts(a2, pd.DataFrame(RUN2), FARMS, run_date="2026-04-24")  # cloudy: no new looks
    assert a3.iloc[0]["status"] == "ongoing"

    a4 = update_alerts(a3, pd.DataFrame(RUN4), FARMS, run_date="2026-04-26")  # one normal look
    assert a4.iloc[0]["status"] == "ongoing"

    a5 = update_alerts(a4, pd.DataFrame(RUN5), FARMS, run_date="2026-05-06")
    assert len(a5) == 1
    assert a5.iloc[0]["status"] == "resolved" and a5.iloc[0]["alert_id"] == r["alert_id"]
    assert a5.iloc[0]["resolved_date"] == pd.Timestamp("2026-05-01")
    assert "resolved" in a5.iloc[0]["evidence"]


def test_rerun_is_idempotent() -> None:
    a1 = update_alerts(None, pd.DataFrame(RUN1), FARMS, run_date="2026-04-11")
    again = update_alerts(a1, pd.DataFrame(RUN1), FARMS, run_date="2026-04-11")
    pd.testing.assert_frame_equal(a1, again)
    fresh = update_alerts(None, pd.DataFrame(RUN1), FARMS, run_date="2026-04-11")
    assert fresh["alert_id"].tolist() == a1["alert_id"].tolist()


def test_unconfirmed_look_raises_nothing_and_one_alert_per_event() -> None:
    rows = [_look("F0001", "2026-04-06", "anomalous", onset="2026-04-06", run_looks=1)]
    assert update_alerts(None, pd.DataFrame(rows), FARMS, run_date="2026-04-06").empty
    # an abrupt loss followed by drought-type deficit looks is one alert, named abrupt_loss
    rows = [
        _look(
            "F0001",
            "2026-04-06",
            "anomalous",
            hazard="abrupt_loss",
            onset="2026-04-06",
            run_looks=1,
            confirmed=True,
            score=0.6,
        ),
        _look(
            "F0001",
            "2026-04-11",
            "anomalous",
            hazard="drought",
            onset="2026-04-06",
            run_looks=2,
            confirmed=True,
        ),
    ]
    rows[1]["run_hazard"] = "abrupt_loss"
    a = update_alerts(None, pd.DataFrame(rows), FARMS, run_date="2026-04-11")
    assert len(a) == 1 and a.iloc[0]["hazard"] == "abrupt_loss" and a.iloc[0]["n_looks"] == 2
    assert a.iloc[0]["severity"] == "critical"


def test_evidence_sentence_is_specific() -> None:
    a = update_alerts(None, pd.DataFrame(RUN1), FARMS, run_date="2026-04-11")
    text = a.iloc[0]["evidence"]
    for part in (
        "NDVI 0.50",
        "0.80 expected",
        "-30%",
        "since 2026-04-06",
        "2 clear looks",
        "peers at 0.80",
        "idiosyncratic",
    ):
        assert part in text


def test_stale_alert_resolves_only_on_a_clear_look() -> None:
    stale = {
        **_look("F0002", "2026-05-10", "stale"),
        "hazard": "stale_data",
        "state": "stale",
        "score": 40.0,
        "onset": pd.Timestamp("2026-03-31"),
        "run_hazard": "stale_data",
        "confirmed": True,
    }
    a1 = update_alerts(None, pd.DataFrame([stale]), FARMS, run_date="2026-05-10")
    assert a1.iloc[0]["hazard"] == "stale_data" and a1.iloc[0]["status"] == "new"
    assert a1.iloc[0]["severity"] == "watch"
    old = _look("F0002", "2026-03-31", "normal")
    a2 = update_alerts(a1, pd.DataFrame([old]), FARMS, run_date="2026-05-11")  # nothing new seen
    assert a2.iloc[0]["status"] == "ongoing"
    a3 = update_alerts(
        a2,
        pd.DataFrame([old, _look("F0002", "2026-05-12", "normal")]),
        FARMS,
        run_date="2026-05-12",
    )
    assert a3.iloc[0]["status"] == "resolved"


@pytest.mark.parametrize(
    ("hazard", "magnitude", "days", "expected"),
    [
        ("drought", 0.16, 5, "watch"),
        ("drought", 0.16, 31, "warning"),
        ("drought", 0.41, 0, "critical"),
        ("flood", 0.3, 2, "warning"),
        ("flood", 0.3, 21, "critical"),
        ("stale_data", 50, 50, "warning"),
    ],
)
def test_severity_table(hazard: str, magnitude: float, days: int, expected: str) -> None:
    assert severity_of(hazard, magnitude, days) == expected


def test_rollup_exposure_at_risk() -> None:
    rows = [
        *RUN1,
        _look(
            "F0002",
            "2026-04-06",
            "anomalous",
            hazard="flood",
            onset="2026-04-06",
            run_looks=1,
            confirmed=True,
        ),
    ]
    a = update_alerts(
        None, pd.DataFrame(rows), FARMS, run_date="2026-04-11", settings=AlertSettings()
    )
    r = rollup(a, FARMS).set_index(["level", "key"])
    # make_farms: loan = i // 2, borrower = i // 4, exposure 1000 each
    assert r.loc[("loan", "L0000"), "farms_alerted"] == 1
    assert r.loc[("loan", "L0000"), "exposure_at_risk"] == 1000.0
    assert r.loc[("loan", "L0001"), "exposure_flood"] == 1000.0
    assert r.loc[("borrower", "B0000"), "exposure_at_risk"] == 2000.0
    assert r.loc[("borrower", "B0000"), "share_at_risk"] == 0.5
    assert r.loc[("region", "county-a"), "exposure_drought"] == 1000.0


def test_flood_evidence_quotes_the_water_not_the_later_damage() -> None:
    """A flood that leaves a damaged crop: the looks after the water are anomalous for another
    reason (greenness), and the alert's numbers must still be the flood's."""
    from agrisat.anomaly import detect
    from agrisat.testing_series import Event, make_farms, make_observations

    farms = make_farms(30)
    obs = make_observations(
        farms, events=[Event("F0003", "flood", "2026-07-20", "2026-08-05", depth=0.5)], seed=3
    )
    anomalies = detect(obs, farms, asof="2026-08-25").reset_index(drop=True)
    mine = anomalies[anomalies.farm_id == "F0003"].sort_values("date")
    last_flood = mine[mine.hazard == "flood"].index.max()
    after = mine.loc[last_flood:].index[1:3]  # the next two looks: the crop is damaged
    anomalies.loc[after, ["state", "hazard", "score", "expected", "value"]] = [
        "anomalous",
        "drought",
        0.52,
        0.66,
        0.31,
    ]
    alerts = update_alerts(None, anomalies, farms, run_date="2026-08-25")
    flood = alerts[(alerts.farm_id == "F0003") & (alerts.hazard == "flood")]
    assert len(flood) == 1
    a = flood.iloc[0]
    assert a["score"] == pytest.approx(anomalies.loc[last_flood, "score"])
    assert a["expected"] < a["score"], a["evidence"]
    assert "52%" not in a["evidence"] and f"{a['score']:.0%}" in a["evidence"]


def test_early_single_look_alert_opens_at_watch_and_escalates_on_a_second_look() -> None:
    first = _look("F0002", "2026-04-06", "anomalous", onset="2026-04-06", run_looks=1,
                  confirmed=True, score=0.45)  # fmt: skip
    first["early"] = True
    night1 = pd.DataFrame([_look("F0002", "2026-04-01", "normal"), first])
    a1 = update_alerts(None, night1, FARMS, run_date="2026-04-06")
    assert len(a1) == 1 and a1.iloc[0]["severity"] == "watch"  # 45 % alone would be critical
    assert severity_of("drought", 0.45, 0) == "critical"
    second = _look("F0002", "2026-04-11", "anomalous", onset="2026-04-06", run_looks=2,
                   confirmed=True, score=0.45)  # fmt: skip
    second["early"] = False
    night2 = pd.concat([night1, pd.DataFrame([second])], ignore_index=True)
    a2 = update_alerts(a1, night2, FARMS, run_date="2026-04-11")
    assert list(a2["alert_id"]) == list(a1["alert_id"])  # the same alert, escalated
    assert a2.iloc[0]["severity"] == "critical"
    # without the cap the first night is already critical
    a0 = update_alerts(None, night1, FARMS, run_date="2026-04-06",
                       settings=AlertSettings(early_severity="critical"))  # fmt: skip
    assert a0.iloc[0]["severity"] == "critical"


def test_an_episode_longer_than_the_lookback_resolves_under_its_own_id() -> None:
    """The rows a run sees start ``lookback_days`` before it: an event that began earlier is
    rebuilt with a later onset. Its recovery must close the open alert, not raise a second one
    that is born resolved (found on the real clear-fell series, benchmarks/eval_real.py)."""
    first = update_alerts(None, pd.DataFrame(RUN1), FARMS, run_date="2026-04-11")
    (aid,) = first["alert_id"]
    # a year later the 2026-04 looks are out of the window; the farm is still failing, then
    # recovers with two normal looks
    later = [
        _look("F0000", "2027-04-20", "anomalous", onset="2027-04-20", run_looks=1),
        _look("F0000", "2027-04-25", "anomalous", onset="2027-04-20", run_looks=2, confirmed=True),
        _look("F0000", "2027-05-05", "normal"),
        _look("F0000", "2027-05-10", "normal"),
    ]
    after = update_alerts(first, pd.DataFrame(later), FARMS, run_date="2027-05-10")
    f0 = after[after["farm_id"] == "F0000"]
    assert list(f0["alert_id"]) == [aid]
    assert f0["status"].iloc[0] == "resolved"
    assert f0["resolved_date"].iloc[0] == pd.Timestamp("2027-05-10")
    assert f0["onset_date"].iloc[0] == pd.Timestamp("2026-04-06")


def test_sparse_runs_keep_a_recovered_event_and_a_new_one_apart() -> None:
    """A run after a long pause sees the open event recover and a new one start: two ids, the
    old one resolved, the new one new (the new event must not inherit the old id)."""
    first = update_alerts(None, pd.DataFrame(RUN1), FARMS, run_date="2026-04-11")
    (aid,) = first["alert_id"]
    rows = [
        *RUN1,
        _look("F0000", "2026-04-21", "normal"),
        _look("F0000", "2026-04-26", "normal"),
        _look("F0000", "2026-06-10", "anomalous", onset="2026-06-10", run_looks=1),
        _look("F0000", "2026-06-15", "anomalous", onset="2026-06-10", run_looks=2, confirmed=True),
    ]
    after = update_alerts(first, pd.DataFrame(rows), FARMS, run_date="2026-06-15")
    f0 = after[after["farm_id"] == "F0000"].set_index("alert_id")
    assert len(f0) == 2 and aid in f0.index
    assert f0.loc[aid, "status"] == "resolved"
    new = f0.drop(index=aid)
    assert new["status"].iloc[0] == "new"
    assert new["onset_date"].iloc[0] == pd.Timestamp("2026-06-10")


def _stale(farm: str, day: pd.Timestamp, onset: pd.Timestamp, stage: str | None, why: str) -> dict:
    """A row like :func:`agrisat.anomaly.stale.stale_rows` + ``assemble`` give."""
    return {
        **_look(farm, f"{day:%Y-%m-%d}", "stale"),
        "hazard": "stale_data",
        "score": float((day - onset).days),
        "value": float("nan"),
        "expected": float("nan"),
        "own_z": float("nan"),
        "peer_median": float("nan"),
        "peer_n": float("nan"),
        "peer_state": why,
        "stage": stage,
        "onset": onset,
        "run_looks": 0,
        "run_hazard": "stale_data",
        "confirmed": True,
        "early": False,
    }


def _random_runs(seed: int, n_farms: int) -> list[tuple[pd.Timestamp, pd.DataFrame]]:
    """Three runs over a random mix: stale-only farms (some with repeated onsets, some seen
    clearly again later), farms with crop episodes (opening, extending, recovering) and farms
    with both."""
    import numpy as np

    rng = np.random.default_rng(seed)
    base = pd.Timestamp("2026-03-01")
    runs = [base + pd.Timedelta(days=d) for d in (60, 75, 100)]
    looks: list[dict] = []
    for i in range(n_farms):
        farm = f"F{i:04d}"
        kind = rng.choice(["stale", "crop", "both", "quiet"], p=[0.5, 0.25, 0.15, 0.1])
        if kind in ("crop", "both"):
            hazard = str(rng.choice(["drought", "flood", "abrupt_loss"]))
            run, onset = 0, None
            for d in range(0, 100, 5):
                state = str(rng.choice(["normal", "anomalous", "borderline"], p=[0.4, 0.45, 0.15]))
                date = base + pd.Timedelta(days=d + int(rng.integers(0, 3)))
                run = run + 1 if state == "anomalous" else 0
                onset = (date if run == 1 else onset) if run else None
                looks.append(
                    _look(
                        farm,
                        f"{date:%Y-%m-%d}",
                        state,
                        hazard=hazard,
                        onset=f"{onset:%Y-%m-%d}" if onset is not None else None,
                        run_looks=run,
                        confirmed=run >= 2 or (run == 1 and rng.random() < 0.1),
                        score=float(rng.uniform(0.1, 0.7)),
                    )
                )
        if kind in ("stale", "both"):
            onset = base + pd.Timedelta(days=int(rng.integers(-200, 50)))
            stage = None if rng.random() < 0.3 else str(rng.choice(["peak", "green-up"]))
            why = str(rng.choice(["idiosyncratic", "regional"]))
            seen_again = rng.random() < 0.2  # a clear look between the second and third run
            for k, day in enumerate(runs):
                if k == 2 and seen_again:
                    looks.append(
                        _look(farm, f"{runs[1] + pd.Timedelta(days=3):%Y-%m-%d}", "normal")
                    )
                    continue
                looks.append(
                    _stale(farm, day, max(onset, base - pd.Timedelta(days=300)), stage, why)
                )
                if rng.random() < 0.1:  # the same gap reported twice: one alert
                    looks.append(_stale(farm, day, onset, None, why))
    frame = pd.DataFrame(looks)
    # a run reads the looks up to its date and only its own stale rows (dated the run)
    now = [
        (frame["date"] <= d) & ((frame["state"] != "stale") | (frame["date"] == d)) for d in runs
    ]
    return [(day, frame[m].reset_index(drop=True)) for day, m in zip(runs, now, strict=True)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_column_wise_stale_path_equals_the_per_farm_walk(seed: int) -> None:
    farms = make_farms(80)
    fast_hist: pd.DataFrame | None = None
    slow_hist: pd.DataFrame | None = None
    n_stale = 0
    for day, rows in _random_runs(seed, 80):
        fast = update_alerts(fast_hist, rows, farms, run_date=day)
        slow = update_alerts(slow_hist, rows, farms, run_date=day, _fast=False)
        pd.testing.assert_frame_equal(fast, slow)
        n_stale += int((fast["hazard"] == "stale_data").sum())
        fast_hist, slow_hist = fast, slow
    # the mix exercised what it is meant to: stale alerts open, ongoing and resolved, crop too
    assert n_stale > 20
    assert {"new", "ongoing", "resolved"} <= set(fast["status"])
    assert (fast["hazard"] != "stale_data").any()
    assert ((fast["hazard"] == "stale_data") & (fast["status"] == "resolved")).any()


def test_evidence_names_the_usual_standing_among_peers() -> None:
    # a farm usually 0.06 above its peers at this time of year: the sentence says so, so an
    # analyst reads "peers at 0.80" against the farm's own habit, not as the whole gap
    rows = [dict(r, usual_gap=0.06) for r in RUN1]
    text = update_alerts(None, pd.DataFrame(rows), FARMS, run_date="2026-04-11").iloc[0]["evidence"]
    assert "peers at 0.80" in text and "usually 0.06 above them" in text
    below = [dict(r, usual_gap=-0.04) for r in RUN1]
    text = update_alerts(None, pd.DataFrame(below), FARMS, run_date="2026-04-11").iloc[0][
        "evidence"
    ]
    assert "usually 0.04 below them" in text
    # no usual standing known (too little history): no claim about it
    plain = update_alerts(None, pd.DataFrame(RUN1), FARMS, run_date="2026-04-11")
    assert "usually" not in plain.iloc[0]["evidence"]


def test_the_anomaly_table_carries_the_usual_standing_to_the_evidence() -> None:
    # the nightly path hands update_alerts the anomaly table, not the look rows: the usual
    # standing must survive it or the evidence can never name it
    from agrisat.anomaly.core import ANOMALY_COLUMNS, anomaly_table

    assert "usual_gap" in ANOMALY_COLUMNS
    rows = pd.DataFrame([dict(r, usual_gap=0.06) for r in RUN1])
    table = anomaly_table(rows, pd.DataFrame(), FARMS)
    assert table["usual_gap"].tolist() == [0.06] * len(RUN1)
    text = update_alerts(None, table, FARMS, run_date="2026-04-11").iloc[0]["evidence"]
    assert "usually 0.06 above them" in text


def test_the_peer_numbers_of_the_evidence_are_columns_too() -> None:
    # the Chinese (and any re-rendered) evidence is built from columns: the peers' level and
    # the farm's usual gap must be there, equal to what the English sentence states
    rows = [dict(r, usual_gap=0.06) for r in RUN1]
    alert = update_alerts(None, pd.DataFrame(rows), FARMS, run_date="2026-04-11").iloc[0]
    assert alert["hazard"] == "drought"
    assert alert["peer_median"] == pytest.approx(0.80)
    assert f"(n={int(alert['peer_n'])})" in alert["evidence"] and alert["peer_n"] > 0
    assert alert["usual_gap"] == pytest.approx(0.06)
    # a gap too small to name in the sentence is not a column value either
    small = [dict(r, usual_gap=0.01) for r in RUN1]
    alert = update_alerts(None, pd.DataFrame(small), FARMS, run_date="2026-04-11").iloc[0]
    assert "usually" not in alert["evidence"] and np.isnan(alert["usual_gap"])
    assert alert["peer_median"] == pytest.approx(0.80)


def test_a_history_written_before_the_peer_columns_still_continues() -> None:
    # a workdir from an earlier version: its stored alerts lack the peer columns
    first = update_alerts(None, pd.DataFrame(RUN1), FARMS, run_date="2026-04-11")
    old = first.drop(columns=["peer_median", "peer_n", "usual_gap"])
    later = update_alerts(old, pd.DataFrame(RUN1).iloc[:0], FARMS, run_date="2026-04-16")
    assert list(later.columns) == list(ALERT_COLUMNS)
    assert later["alert_id"].tolist() == first["alert_id"].tolist()
    assert later["peer_median"].isna().all()
