"""Detection against the store: observations → anomalies → alerts with their lifecycle.

The alerts table keeps every run's alerts (``run_date`` column): the previous run's rows are
the history :func:`agrisat.alerts.update_alerts` continues from, and a rerun for the same date
replaces that date's rows, so reruns are idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import geopandas as gpd
import pandas as pd

from .alerts import ALERT_COLUMNS, update_alerts
from .anomaly import detect
from .calendar import load_calendars
from .config import Settings
from .store import Store

__all__ = ["MonitorSummary", "alert_history", "detect_and_update", "latest_alerts"]

log = logging.getLogger(__name__)

OPEN_STATUSES = ("new", "ongoing")


@dataclass
class MonitorSummary:
    """Counts for the run record."""

    alerts: dict[str, int] = field(default_factory=dict)
    farms_by_status: dict[str, int] = field(default_factory=dict)


def _observations(store: Store, run_date: str) -> pd.DataFrame:
    obs = store.read("observations")
    if obs.empty:
        return obs
    obs = obs.assign(date=pd.to_datetime(obs["date"]))
    return obs[obs["date"] <= pd.Timestamp(run_date)]


def alert_history(store: Store) -> pd.DataFrame:
    """Every run's alerts (``run_date`` first), oldest run first."""
    hist = store.read("alerts")
    if hist.empty:
        return pd.DataFrame(columns=["run_date", *ALERT_COLUMNS])
    return hist.sort_values(["run_date", "alert_id"], kind="mergesort").reset_index(drop=True)


def latest_alerts(store: Store, *, status: str = "open") -> pd.DataFrame:
    """The alerts of the latest run; ``status`` ``open`` (new and ongoing) or ``all``."""
    hist = alert_history(store)
    if hist.empty:
        return hist.drop(columns="run_date")
    last = hist[hist["run_date"] == hist["run_date"].max()].drop(columns="run_date")
    if status == "open":
        last = last[last["status"].isin(OPEN_STATUSES)]
    return last.reset_index(drop=True)


def detect_and_update(
    store: Store, farms: gpd.GeoDataFrame, *, run_date: str, settings: Settings
) -> MonitorSummary:
    """Detect anomalies as of ``run_date``, continue the alert lifecycle and commit it."""
    obs = _observations(store, run_date)
    summary = MonitorSummary()
    if obs.empty:
        return summary
    calendars = load_calendars(settings.run.calendars) if settings.run.calendars else None
    anomalies = detect(obs, farms, asof=run_date, settings=settings.detect, calendars=calendars)
    hist = alert_history(store)
    before = hist[hist["run_date"] < run_date]
    previous = (
        before[before["run_date"] == before["run_date"].max()].drop(columns="run_date")
        if len(before)
        else None
    )
    alerts = update_alerts(previous, anomalies, farms, run_date=run_date, settings=settings.alerts)
    rows = alerts.assign(run_date=run_date)[["run_date", *ALERT_COLUMNS]]
    kept = hist[hist["run_date"] != run_date]
    table = pd.concat([kept, rows], ignore_index=True) if len(kept) else rows
    with store.transaction() as txn:
        txn.replace("alerts", table.reset_index(drop=True))
    summary.alerts = {s: int((alerts["status"] == s).sum()) for s in ("new", "ongoing", "resolved")}
    latest = obs.sort_values("date").groupby("farm_id").tail(1)
    summary.farms_by_status = {str(k): int(v) for k, v in latest["status"].value_counts().items()}
    log.info(
        "alerts for %s: %d new, %d ongoing, %d resolved",
        run_date,
        summary.alerts["new"],
        summary.alerts["ongoing"],
        summary.alerts["resolved"],
    )
    return summary
