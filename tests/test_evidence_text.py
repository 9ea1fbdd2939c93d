"""Evidence sentences that said something untrue (an adversarial pass): an abrupt loss quoted
its onset look as the "latest" one, and a drought without a peer verdict ended in "; unknown."
Both languages are checked: the stored English sentence and the re-rendered ones."""

from __future__ import annotations

import pandas as pd

from agrisat.alerts import update_alerts
from agrisat.alerts_fast import evidence
from agrisat.i18n import render_evidence
from agrisat.testing_series import alert_look, make_farms

FARMS = make_farms(2)


def _look(date: str, hazard: str, run_looks: int, **over: object) -> dict[str, object]:
    """A confirmed look of an abrupt-loss run from 2026-04-06 (NDVI 0.09 against 0.80)."""
    return alert_look(
        "F0000",
        date,
        "anomalous",
        hazard=hazard,
        onset="2026-04-06",
        run_looks=run_looks,
        confirmed=True,
        score=0.6,
        **{"value": 0.09, "peer_n": 7, "run_hazard": "abrupt_loss", **over},
    )


def test_an_abrupt_loss_does_not_quote_its_onset_look_as_the_latest() -> None:
    # after the drop the looks turn to drought: the episode's row stays the onset's look
    rows = [
        _look("2026-04-06", "abrupt_loss", 1),
        _look("2026-04-10", "drought", 2, value=0.2),
        _look("2026-04-30", "drought", 3, value=0.3),
    ]
    alert = update_alerts(None, pd.DataFrame(rows), FARMS, run_date="2026-04-30").iloc[0]
    assert alert["hazard"] == "abrupt_loss"
    text = alert["evidence"]
    # was "...; 3 clear looks since, latest 0.09 on 2026-04-06." (the onset, not 04-30)
    assert "latest 0.09 on 2026-04-06" not in text
    assert text.endswith("3 clear looks since, latest 0.30 on 2026-04-30.")
    # the re-rendered Chinese sentence has no "latest" clause: no date made up there
    assert "2026-04-30" not in render_evidence(alert.to_dict(), "zh")


def test_an_episode_that_carries_its_latest_look_quotes_it() -> None:
    onset = _look("2026-04-06", "abrupt_loss", 1)
    ep = {
        "hazard": "abrupt_loss",
        "n_looks": 3,
        "onset": onset["onset"],
        "row": onset,
        "last": _look("2026-04-30", "drought", 3, value=0.3),
    }
    assert evidence(ep).endswith("3 clear looks since, latest 0.30 on 2026-04-30.")


def test_a_drought_without_a_peer_verdict_says_so_in_words() -> None:
    rows = [
        _look("2026-04-06", "drought", 1, run_hazard="drought", peer_state="unknown"),
        _look("2026-04-11", "drought", 2, run_hazard="drought", peer_state="unknown"),
    ]
    alert = update_alerts(None, pd.DataFrame(rows), FARMS, run_date="2026-04-11").iloc[0]
    assert alert["hazard"] == "drought"
    assert not alert["evidence"].endswith("; unknown.")  # was a bare code
    assert alert["evidence"].endswith("; no peer comparison.")
    assert render_evidence(alert.to_dict(), "en").endswith("; no peer comparison.")
    assert render_evidence(alert.to_dict(), "zh").endswith("；缺少同区域对比。")
