from __future__ import annotations

import pandas as pd
import pytest

from agrisat.scoring import nightly_replay, score_alerts
from agrisat.testing_series import Event, make_farms, make_observations

FARMS = make_farms(10)
TRUTH = pd.DataFrame(
    [
        {
            "event_id": "E1",
            "farm_id": "F0001",
            "hazard": "drought",
            "start": "2026-04-01",
            "end": "2026-05-01",
        },
        {
            "event_id": "E2",
            "farm_id": "F0002",
            "hazard": "flood",
            "start": "2026-07-10",
            "end": "2026-07-20",
        },
        {
            "event_id": "E3",
            "farm_id": "F0003",
            "hazard": "abrupt_loss",
            "start": "2026-05-01",
            "end": "2026-06-01",
        },
    ]
)


def _run(
    run_date: str, alert_id: str, farm: str, hazard: str, onset: str, status: str = "ongoing"
) -> dict:
    return {
        "run_date": run_date,
        "alert_id": alert_id,
        "farm_id": farm,
        "hazard": hazard,
        "onset_date": onset,
        "status": status,
    }


RUNS = pd.DataFrame(
    [
        _run("2026-04-08", "a1", "F0001", "drought", "2026-04-03", "new"),  # E1, delay 7
        _run("2026-04-09", "a1", "F0001", "drought", "2026-04-03"),
        _run("2026-04-20", "a1b", "F0001", "drought", "2026-04-18", "new"),  # a second id for E1
        _run(
            "2026-07-14", "a2", "F0002", "abrupt_loss", "2026-07-12", "new"
        ),  # E2, wrong hazard, delay 4
        _run("2026-03-01", "a3", "F0005", "drought", "2026-02-20", "new"),  # false alert
        _run(
            "2026-03-01", "a4", "F0006", "stale_data", "2026-02-01", "new"
        ),  # stale, counted apart
        _run(
            "2025-08-01", "a5", "F0007", "drought", "2025-07-20", "new"
        ),  # before the season: not scored
    ]
)


def test_scores_on_hand_built_runs() -> None:
    sc = score_alerts(RUNS, TRUTH, farms=FARMS, season_start="2025-10-01", season_end="2026-10-31")
    assert sc["n_events"] == 3 and sc["detected"] == 2
    assert sc["recall"] == pytest.approx(2 / 3)
    assert sc["hazard_correct"] == 1 and sc["hazard_recall"] == pytest.approx(1 / 3)
    assert sc["false_alerts"] == 1 and sc["false_alert_ids"] == ["a3"]
    assert sc["farm_seasons"] == 10  # 10 farms x 1 season
    assert sc["false_per_100_farm_seasons"] == pytest.approx(10.0)
    assert sc["stale_alerts"] == 1
    assert sc["median_delay_days"] == pytest.approx(5.5)  # delays 7 and 4
    assert sc["p90_delay_days"] == pytest.approx(4 + 0.9 * 3)
    assert sc["ids_per_event"] == {"E1": ["a1", "a1b"], "E2": ["a2"], "E3": []}
    assert sc["max_ids_per_event"] == 2


def test_tolerance_bounds_matching() -> None:
    runs = pd.DataFrame([_run("2026-06-30", "x", "F0003", "abrupt_loss", "2026-06-25", "new")])
    tight = score_alerts(
        runs,
        TRUTH,
        farms=FARMS,
        season_start="2025-10-01",
        season_end="2026-10-31",
        tolerance_days=10,
    )
    loose = score_alerts(
        runs,
        TRUTH,
        farms=FARMS,
        season_start="2025-10-01",
        season_end="2026-10-31",
        tolerance_days=30,
    )
    assert tight["detected"] == 0 and tight["false_alerts"] == 1
    assert loose["detected"] == 1 and loose["false_alerts"] == 0


def test_nightly_replay_raises_once_with_a_stable_id() -> None:
    farms = make_farms(12)
    ev = Event("F0003", "abrupt_loss", "2026-04-22", "2026-06-10")
    obs = make_observations(farms, events=[ev], start="2024-10-01", end="2026-05-31", seed=11)
    runs = nightly_replay(obs, farms, start="2026-04-15", end="2026-05-05")
    assert set(runs["farm_id"]) == {"F0003"} and runs["alert_id"].nunique() == 1
    first = runs.groupby("alert_id")["run_date"].min().iloc[0]
    statuses = runs.sort_values("run_date")["status"].tolist()
    assert statuses[0] == "new" and set(statuses[1:]) == {"ongoing"}
    truth = pd.DataFrame(
        [
            {
                "event_id": "E",
                "farm_id": "F0003",
                "hazard": "abrupt_loss",
                "start": ev.start,
                "end": ev.end,
            }
        ]
    )
    sc = score_alerts(runs, truth, farms=farms, season_start="2025-10-01", season_end="2026-10-31")
    assert sc["recall"] == 1.0 and sc["hazard_recall"] == 1.0 and sc["false_alerts"] == 0
    assert sc["median_delay_days"] == (first - pd.Timestamp(ev.start)).days <= 5


def test_delay_split_at_the_first_clear_look() -> None:
    # E1 (start 1 Apr, raised 8 Apr): a cloudy look on 2 Apr does not count, the first clear
    # look is 5 Apr -> 4 days of sky, 3 of detection; a clear look before the start is ignored.
    # E2 (start 10 Jul, raised 14 Jul): first clear look 10 Jul itself -> 0 + 4.
    obs = pd.DataFrame(
        {
            "farm_id": ["F0001", "F0001", "F0001", "F0002", "F0003"],
            "date": ["2026-03-25", "2026-04-02", "2026-04-05", "2026-07-10", "2026-05-03"],
            "status": ["ok", "cloudy", "ok", "ok", "ok"],
        }
    )
    sc = score_alerts(
        RUNS,
        TRUTH,
        farms=FARMS,
        season_start="2025-10-01",
        season_end="2026-10-31",
        observations=obs,
    )
    ev = sc["events"].set_index("event_id")
    assert ev.loc["E1", "wait_clear_days"] == 4 and ev.loc["E1", "delay_after_clear_days"] == 3
    assert ev.loc["E2", "wait_clear_days"] == 0 and ev.loc["E2", "delay_after_clear_days"] == 4
    # E3 was seen (3 May) but never raised: a wait, no detection delay
    assert ev.loc["E3", "wait_clear_days"] == 2 and pd.isna(ev.loc["E3", "delay_after_clear_days"])
    assert sc["median_wait_clear_days"] == pytest.approx(2.0)  # waits 4, 0, 2
    assert sc["median_delay_after_clear_days"] == pytest.approx(3.5)
    # the headline delay is unchanged by the split
    assert sc["median_delay_days"] == pytest.approx(5.5)


def test_delay_split_is_absent_without_observations() -> None:
    sc = score_alerts(RUNS, TRUTH, farms=FARMS, season_start="2025-10-01", season_end="2026-10-31")
    assert "median_delay_after_clear_days" not in sc
    assert sc["events"]["wait_clear_days"].isna().all()


def test_no_planting_is_visible_only_in_a_green_stage() -> None:
    # Maize of the default calendar: sowing 06-10, emergence 06-25, first green stage
    # (vegetative) 07-05. A farm whose maize was never sown (start 06-12) looks like its peers
    # on 06-17 and 06-30; the first clear look where the crop should stand is 07-12 (the 07-07
    # look is cloudy). A drought on another farm keeps its first clear look as the floor.
    truth = pd.DataFrame(
        [
            {"event_id": "N1", "farm_id": "F0007", "hazard": "no_planting"},
            {"event_id": "D1", "farm_id": "F0008", "hazard": "drought"},
        ]
    ).assign(start="2026-06-12", end="2026-09-30")
    runs = pd.DataFrame(
        [
            _run("2026-07-17", "n1", "F0007", "no_planting", "2026-07-12", "new"),
            _run("2026-06-30", "d1", "F0008", "drought", "2026-06-17", "new"),
        ]
    )
    obs = pd.DataFrame(
        {
            "farm_id": ["F0007"] * 4 + ["F0008"] * 2,
            "date": [
                *("2026-06-17", "2026-06-30", "2026-07-07", "2026-07-12"),
                *("2026-06-17", "2026-06-30"),
            ],
            "status": ["ok", "ok", "cloudy", "ok", "ok", "ok"],
        }
    )
    sc = score_alerts(
        runs,
        truth,
        farms=FARMS,
        season_start="2025-10-01",
        season_end="2026-10-31",
        observations=obs,
    )
    ev = sc["events"].set_index("event_id")
    assert ev.loc["N1", "wait_clear_days"] == 5  # the sky alone: 06-17
    assert ev.loc["N1", "wait_visible_days"] == 30  # 07-12, the first green-stage clear look
    assert ev.loc["N1", "delay_after_visible_days"] == 5  # raised 07-17
    assert ev.loc["D1", "wait_visible_days"] == ev.loc["D1", "wait_clear_days"] == 5
    assert ev.loc["D1", "delay_after_visible_days"] == 13
    assert sc["median_wait_visible_days"] == pytest.approx(17.5)  # floors 30 and 5
    assert sc["p90_delay_after_visible_days"] == pytest.approx(5 + 0.9 * 8)


def test_a_crop_without_calendar_shows_on_its_first_clear_look() -> None:
    farms = FARMS.assign(crop=["other"] * len(FARMS))
    truth = pd.DataFrame([{"event_id": "N1", "farm_id": "F0007", "hazard": "no_planting"}]).assign(
        start="2026-06-12", end="2026-09-30"
    )
    runs = pd.DataFrame([_run("2026-07-17", "n1", "F0007", "no_planting", "2026-07-12", "new")])
    obs = pd.DataFrame({"farm_id": ["F0007"], "date": ["2026-06-17"], "status": ["ok"]})
    sc = score_alerts(
        runs,
        truth,
        farms=farms,
        season_start="2025-10-01",
        season_end="2026-10-31",
        observations=obs,
    )
    assert sc["events"]["wait_visible_days"].iloc[0] == 5
