"""Score alerts against known events, and replay nightly runs over an archive.

An event counts as *detected* when an alert (not ``stale_data``) on its farm has an onset within
``tolerance_days`` of the event window; *hazard-correct* when one such alert names the event's
hazard. Every other crop alert whose onset falls in the season is a false alert; stale-data
alerts are counted apart. Delay is from the event's start to the first nightly run that raised
a matching alert. Given the observations, the delay is also split at the farm's first clear
look on or after the start: the days the sky took (``wait_clear``) and the days detection took
from there (``delay_after_clear``) -- the part thresholds and confirmation can change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .alerts import DEFAULT_ALERT_SETTINGS, OPEN, AlertSettings, update_alerts
from .anomaly import DEFAULT_SETTINGS, DetectSettings
from .anomaly.core import anomaly_table, window_rows
from .anomaly.incremental import full_looks, stale_from_state
from .calendar import Calendar, stage_table

__all__ = ["STAGED_HAZARDS", "nightly_replay", "score_alerts"]

#: hazards that can only show in a stage where the crop should stand (the calendar's green
#: stages): before the peers green up a field never sown looks like any sown one
STAGED_HAZARDS: frozenset[str] = frozenset({"no_planting"})

log = logging.getLogger(__name__)


def score_alerts(
    alert_runs: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    farms: pd.DataFrame,
    season_start: str | pd.Timestamp,
    season_end: str | pd.Timestamp,
    tolerance_days: int = 15,
    seasons_per_farm: float | None = None,
    observations: pd.DataFrame | None = None,
    calendars: Mapping[str, Calendar] | None = None,
) -> dict[str, Any]:
    """Detection quality of nightly alerts against known events.

    Parameters
    ----------
    alert_runs
        Alerts of every nightly run stacked, with a ``run_date`` column (see
        :func:`nightly_replay`); at least ``alert_id, farm_id, hazard, status, onset_date``.
    truth
        Events: ``event_id, farm_id, hazard, start, end``.
    farms
        The loan book (its size gives the farm-seasons).
    season_start, season_end
        The monitored season; alerts with onset outside it are not scored.
    tolerance_days
        Slack around an event window for an alert's onset to match it.
    seasons_per_farm
        Crop seasons per farm in the monitored period (default: its length in years, >= 1).
    observations
        Optional ``farm_id, date, status`` rows: each event's first clear look (status
        ``ok``) on or after its start splits its delay (see the module docstring); the
        farms' ``crop`` column places the looks of :data:`STAGED_HAZARDS` in their calendar.
    calendars
        Crop calendars for that split (default: the built-in ones).

    Returns
    -------
    dict
        ``n_events, detected, recall, hazard_correct, hazard_recall, false_alerts,
        false_per_100_farm_seasons, stale_alerts, stale_per_100_farm_seasons,
        median_delay_days, p90_delay_days, ids_per_event, max_ids_per_event, farm_seasons,
        events`` (a per-event DataFrame); with ``observations`` also
        ``median_wait_clear_days``, ``median/p90_delay_after_clear_days``,
        ``median/p90_wait_visible_days`` (the floor) and
        ``median/p90_delay_after_visible_days``.
    """
    s0, s1 = pd.Timestamp(season_start), pd.Timestamp(season_end)
    runs = alert_runs.copy()
    runs["run_date"] = pd.to_datetime(runs["run_date"])
    runs["onset_date"] = pd.to_datetime(runs["onset_date"])
    raised = runs[runs["status"].isin([*OPEN, "resolved"])]
    first = raised.sort_values("run_date", kind="stable").groupby("alert_id").first().reset_index()
    first = first[(first["onset_date"] >= s0) & (first["onset_date"] <= s1)]
    crop = first[first["hazard"] != "stale_data"]
    stale = first[first["hazard"] == "stale_data"]
    tol = pd.Timedelta(days=tolerance_days)
    matched: set[str] = set()
    clear_days = _clear_days(observations)
    crops = (
        dict(zip(farms["farm_id"].astype(str), farms["crop"].astype(str), strict=False))
        if "crop" in farms.columns
        else {}
    )
    events = []
    for ev in truth.to_dict("records"):
        start, end = pd.Timestamp(ev["start"]), pd.Timestamp(ev["end"])
        cand = crop[
            (crop["farm_id"].astype(str) == str(ev["farm_id"]))
            & (crop["onset_date"] >= start - tol)
            & (crop["onset_date"] <= end + tol)
        ]
        matched.update(cand["alert_id"])
        delay = float(max((cand["run_date"].min() - start).days, 0)) if len(cand) else np.nan
        seen = clear_days.get(str(ev["farm_id"]))
        first_clear = pd.NaT
        if seen is not None:
            pos = int(np.searchsorted(seen, np.datetime64(start), "left"))
            first_clear = pd.Timestamp(seen[pos]) if pos < len(seen) else pd.NaT
        wait = float((first_clear - start).days) if pd.notna(first_clear) else np.nan
        visible = first_clear
        if seen is not None and ev["hazard"] in STAGED_HAZARDS:
            crop_of = crops.get(str(ev["farm_id"]), "")
            visible = _first_green(seen[pos:], crop_of, calendars)
        wait_visible = float((visible - start).days) if pd.notna(visible) else np.nan
        events.append(
            {
                "event_id": ev["event_id"],
                "farm_id": str(ev["farm_id"]),
                "hazard": ev["hazard"],
                "start": start,
                "detected": bool(len(cand)),
                "hazard_correct": bool((cand["hazard"] == ev["hazard"]).any()),
                "delay_days": delay,
                "wait_clear_days": wait,
                "delay_after_clear_days": _after(delay, wait),
                "wait_visible_days": wait_visible,
                "delay_after_visible_days": _after(delay, wait_visible),
                "alert_ids": sorted(cand["alert_id"]),
                "alert_hazards": sorted(set(cand["hazard"])),
            }
        )
    ev_df = pd.DataFrame(
        events,
        columns=[
            "event_id",
            "farm_id",
            "hazard",
            "start",
            "detected",
            "hazard_correct",
            "delay_days",
            "wait_clear_days",
            "delay_after_clear_days",
            "wait_visible_days",
            "delay_after_visible_days",
            "alert_ids",
            "alert_hazards",
        ],
    )
    n_years = max(1.0, round((s1 - s0).days / 365.0))
    farm_seasons = len(farms) * (seasons_per_farm if seasons_per_farm is not None else n_years)
    false = crop[~crop["alert_id"].isin(matched)]
    n = len(ev_df)
    delays = ev_df["delay_days"].dropna()
    split: dict[str, float] = {}
    if observations is not None:
        split = {
            "median_wait_clear_days": _pct(ev_df["wait_clear_days"], 50),
            "median_delay_after_clear_days": _pct(ev_df["delay_after_clear_days"], 50),
            "p90_delay_after_clear_days": _pct(ev_df["delay_after_clear_days"], 90),
            "median_wait_visible_days": _pct(ev_df["wait_visible_days"], 50),
            "p90_wait_visible_days": _pct(ev_df["wait_visible_days"], 90),
            "median_delay_after_visible_days": _pct(ev_df["delay_after_visible_days"], 50),
            "p90_delay_after_visible_days": _pct(ev_df["delay_after_visible_days"], 90),
        }
    return {
        "n_events": n,
        "detected": int(ev_df["detected"].sum()),
        "recall": float(ev_df["detected"].mean()) if n else float("nan"),
        "hazard_correct": int(ev_df["hazard_correct"].sum()),
        "hazard_recall": float(ev_df["hazard_correct"].mean()) if n else float("nan"),
        "false_alerts": len(false),
        "false_alert_ids": sorted(false["alert_id"]),
        "false_per_100_farm_seasons": 100.0 * len(false) / farm_seasons
        if farm_seasons
        else float("nan"),
        "stale_alerts": len(stale),
        "stale_per_100_farm_seasons": 100.0 * len(stale) / farm_seasons
        if farm_seasons
        else float("nan"),
        "median_delay_days": float(np.median(delays)) if len(delays) else float("nan"),
        "p90_delay_days": float(np.percentile(delays, 90)) if len(delays) else float("nan"),
        "ids_per_event": dict(zip(ev_df["event_id"], ev_df["alert_ids"], strict=True)),
        "max_ids_per_event": int(ev_df["alert_ids"].map(len).max()) if n else 0,
        "farm_seasons": float(farm_seasons),
        **split,
        "events": ev_df,
    }


def _after(delay: float, wait: float) -> float:
    # a look on the night's own date counts: a run sees that night's scenes
    return max(delay - wait, 0.0) if np.isfinite(delay) and np.isfinite(wait) else np.nan


def _pct(values: pd.Series, q: float) -> float:
    v = values.dropna()
    return float(np.percentile(v, q)) if len(v) else float("nan")


def _first_green(
    seen: np.ndarray, crop: str, calendars: Mapping[str, Calendar] | None
) -> pd.Timestamp:
    """The first of ``seen`` (sorted clear-look dates) where ``crop`` should stand green; a
    crop without a calendar has no stages, so its first clear look counts."""
    if not len(seen):
        return pd.NaT
    dates = pd.Series(pd.to_datetime(seen))
    table = stage_table(pd.Series([crop] * len(dates)), dates, calendars=calendars)
    if not bool(table["has_calendar"].iloc[0]):
        return pd.Timestamp(seen[0])
    green = np.flatnonzero(table["green"].to_numpy(dtype=bool))
    return pd.Timestamp(seen[green[0]]) if len(green) else pd.NaT


def _clear_days(observations: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """Farm id -> sorted dates of its clear looks (status ``ok``)."""
    if observations is None or observations.empty:
        return {}
    ok = observations[observations["status"].astype(str) == "ok"]
    dates = pd.to_datetime(ok["date"]).dt.normalize()
    frame = pd.DataFrame({"farm_id": ok["farm_id"].astype(str).to_numpy(), "date": dates})
    return {
        str(k): np.sort(g["date"].to_numpy(dtype="datetime64[ns]"))
        for k, g in frame.groupby("farm_id", sort=False)
    }


def nightly_replay(
    observations: pd.DataFrame,
    farms: pd.DataFrame,
    *,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    step_days: int = 1,
    settings: DetectSettings = DEFAULT_SETTINGS,
    alert_settings: AlertSettings = DEFAULT_ALERT_SETTINGS,
    calendars: Mapping[str, Calendar] | None = None,
) -> pd.DataFrame:
    """Replay nightly runs from ``start`` to ``end``: each night sees observations up to it.

    Ingestion is by acquisition date, so this is what nightly runs would have produced. Per-look
    features are causal (they depend only on data up to the look), so they are computed once
    (:func:`agrisat.anomaly.incremental.full_looks`, what the nightly runs persist); each night
    then hands the alert lifecycle what :func:`agrisat.monitor.detect_and_update` hands it: the
    lookback window of the farms with an anomalous look, an open alert or stale data, and the
    stale rows from the farm state as of that night.

    Returns
    -------
    pandas.DataFrame
        The alerts of every night stacked, with a ``run_date`` column first.
    """
    obs = observations.assign(date=pd.to_datetime(observations["date"]).dt.normalize())
    obs = obs[obs["date"] <= pd.Timestamp(end)]
    # Every look once (features are causal: later looks do not change earlier rows), as the
    # persisted looks of nightly runs would be.
    looks = full_looks(obs, farms, settings=settings, calendars=calendars)
    if looks.empty:
        looks = pd.DataFrame(columns=["farm_id", "date", "state", "region"])
    looks = looks.sort_values("date", kind="stable")
    groups = looks.groupby(["region", "date"], as_index=False).size()
    groups = groups.rename(columns={"size": "n_looks"})
    first_seen = obs.assign(farm_id=obs["farm_id"].astype(str)).groupby("farm_id")["date"].min()
    by_farm = looks.sort_values(["farm_id", "date"], kind="stable").reset_index(drop=True)
    dates = looks["date"].to_numpy()
    anom = (looks["state"] == "anomalous").to_numpy()
    last_clear = pd.Series(dtype="datetime64[ns]")
    last_anom = pd.Series(dtype="datetime64[ns]")
    done = 0
    history: pd.DataFrame | None = None
    frames = []
    for night in pd.date_range(start, end, freq=f"{step_days}D"):
        # the farm state as of this night: the looks since the previous night update it
        upto = int(np.searchsorted(dates, np.datetime64(night), "right"))
        if upto > done:
            chunk = looks.iloc[done:upto]
            last_clear = _latest(last_clear, chunk)
            last_anom = _latest(last_anom, chunk[anom[done:upto]])
            done = upto
        seen = first_seen[first_seen <= night]
        state = pd.DataFrame(
            {
                "farm_id": seen.index,
                "first_seen": seen.to_numpy(),
                "last_clear": last_clear.reindex(seen.index).to_numpy(),
            }
        )
        stale = stale_from_state(
            state,
            farms,
            groups[groups["date"] <= night],
            asof=night,
            settings=settings,
            calendars=calendars,
        )
        lo = night - pd.Timedelta(days=settings.lookback_days)
        busy = set(last_anom.index[(last_anom >= lo).to_numpy()]) | set(stale["farm_id"])
        if history is not None and len(history):
            busy |= set(history.loc[history["status"].isin(OPEN), "farm_id"].astype(str))
        rows = by_farm[
            by_farm["farm_id"].isin(busy) & (by_farm["date"] >= lo) & (by_farm["date"] <= night)
        ]
        anomalies = anomaly_table(
            window_rows(rows, asof=night, settings=settings), stale, farms, settings=settings
        )
        history = update_alerts(history, anomalies, farms, run_date=night, settings=alert_settings)
        if len(history):
            frames.append(history.assign(run_date=night))
    log.info("replayed %d nights", len(frames))
    if not frames:
        return pd.DataFrame(columns=["run_date"])
    out = pd.concat(frames, ignore_index=True)
    return out[["run_date", *[c for c in out.columns if c != "run_date"]]]


def _latest(current: pd.Series, looks: pd.DataFrame) -> pd.Series:
    """``current`` (farm -> date) updated with the latest date per farm of ``looks``."""
    if looks.empty:
        return current
    upd = looks.groupby("farm_id")["date"].max()
    out = current.reindex(current.index.union(upd.index))
    out.loc[upd.index] = upd.to_numpy()
    return out
