"""A night whose alert lifecycle runs in farm groups logs its alert totals once, at INFO, with
counts only (no farm ids or polygons: borrower data)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd
import pytest

from agrisat.config import Settings
from agrisat.monitor import detect_and_update
from agrisat.store import Store
from agrisat.testing_series import Event, feed_store, make_observations, mixed_peer_book

NIGHT = "2026-06-30"


def test_grouped_alert_lifecycle_logs_the_nights_totals_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    farms = mixed_peer_book((6, 4, 3, 3))
    events = [
        Event("A0003", "abrupt_loss", "2026-04-22", "2026-06-10"),
        Event("A0005", "drought", "2026-03-20", "2026-05-30"),
    ]
    obs = make_observations(farms, events=events, start="2025-04-01", end=NIGHT, seed=2)
    store = Store(tmp_path / "wd")
    feed_store(store, obs, "n1")
    # one farm a group: the lifecycle runs once per farm
    settings = Settings().replace("run", alert_rows=1)
    with caplog.at_level(logging.INFO, logger="agrisat"):
        summary = detect_and_update(store, farms, run_date=NIGHT, settings=settings)
    assert sum(summary.alerts.values()) >= 1  # the night did raise alerts
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    totals = [m for m in lines if re.match(r"alerts (for|on) ", m)]
    assert totals == [
        f"alerts for {NIGHT}: {summary.alerts['new']} new, {summary.alerts['ongoing']} ongoing, "
        f"{summary.alerts['resolved']} resolved"
    ]
    ids = set(pd.Series(farms["farm_id"]).astype(str))
    assert not any(i in m for m in lines for i in ids)
