"""Replaying agrisat's nightly job over the real evaluation sets, and counting what it raised."""

from __future__ import annotations

import pandas as pd

from benchmarks.real_series import RealSet

__all__ = ["classified_looks", "farm_seasons", "raised", "rate_table", "replay"]


# --- replay ---------------------------------------------------------------------------------


def replay(
    rs: RealSet,
    *,
    daily: bool = False,
    nights: pd.DatetimeIndex | None = None,
    stale_every: int = 7,
    report_resolved_days: int | None = None,
) -> pd.DataFrame:
    """Alerts of every nightly run, stacked with ``run_date``.

    ``daily=True`` is :func:`agrisat.scoring.nightly_replay` with one run per night. Otherwise
    runs happen on ``nights`` (default: every acquisition night plus every ``stale_every``-th
    night). On acquisition nights crop alerts are identical to the daily replay: features are
    causal and per look, so nothing about a crop hazard changes on a night without a new
    acquisition, and no episode can open and close between two runs. Stale-data alerts are
    seen up to ``stale_every - 1`` days late. Sparser ``nights`` (for fast tests) still see
    every alert when ``report_resolved_days`` exceeds their spacing (an episode that opened
    and closed between two runs is then reported, resolved, by the next run); only the night
    it is first raised moves. Same steps as ``nightly_replay``: features once, then per night
    ``assemble`` + ``update_alerts``.
    """
    from dataclasses import replace

    from agrisat.alerts import DEFAULT_ALERT_SETTINGS, update_alerts
    from agrisat.anomaly import assemble, classify_looks, look_features
    from agrisat.scoring import nightly_replay

    obs = rs.observations.assign(date=pd.to_datetime(rs.observations["date"]).dt.normalize())
    start, end = obs["date"].min(), obs["date"].max()
    if daily:
        return nightly_replay(obs, rs.farms, start=start, end=end, step_days=1)
    if nights is None:
        nights = pd.DatetimeIndex(obs["date"].unique()).union(
            pd.date_range(start, end, freq=f"{stale_every}D")
        )
    alert_settings = DEFAULT_ALERT_SETTINGS
    if report_resolved_days is not None:
        alert_settings = replace(alert_settings, report_resolved_days=report_resolved_days)
    feats = look_features(obs, rs.farms)
    classified = classify_looks(feats) if len(feats) else feats
    history: pd.DataFrame | None = None
    frames = []
    for night in nights.sort_values():
        anomalies = assemble(
            classified[classified["date"] <= night], rs.farms, obs[obs["date"] <= night], asof=night
        )
        history = update_alerts(
            history, anomalies, rs.farms, run_date=night, settings=alert_settings
        )
        if len(history):
            frames.append(history.assign(run_date=night))
    if not frames:
        return pd.DataFrame(columns=["run_date", "alert_id", "farm_id", "hazard", "onset_date"])
    return pd.concat(frames, ignore_index=True)


def classified_looks(rs: RealSet) -> pd.DataFrame:
    """Every clear look with its features and classification (what the alerts are built on)."""
    from agrisat.anomaly import classify_looks, look_features

    feats = look_features(rs.observations, rs.farms)
    return classify_looks(feats) if len(feats) else feats


def raised(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per alert id: the night it was first raised and what it said then, plus the
    night it was last seen open and its last status."""
    if runs.empty:
        return pd.DataFrame(
            columns=["alert_id", "farm_id", "hazard", "onset_date", "first_run", "last_status"]
        )
    r = runs.sort_values("run_date", kind="stable")
    first = r.groupby("alert_id", sort=False).first()
    last = r.groupby("alert_id", sort=False).last()
    out = first.assign(
        first_run=first["run_date"],
        last_run=last["run_date"],
        last_status=last["status"],
        resolved_date=last["resolved_date"],
        evidence=last["evidence"],
        first_evidence=first["evidence"],
    ).reset_index()
    out["onset_date"] = pd.to_datetime(out["onset_date"])
    return out.sort_values(["farm_id", "onset_date"], kind="stable").reset_index(drop=True)


def farm_seasons(rs: RealSet) -> float:
    """Farms x monitored years (fractional: the series' span in days / 365.25)."""
    d = pd.to_datetime(rs.observations["date"])
    return len(rs.farms) * max((d.max() - d.min()).days, 1) / 365.25


def rate_table(rs: RealSet, alerts: pd.DataFrame) -> dict[str, float]:
    """Alerts per 100 farm-seasons by hazard, ``crop`` (every hazard but stale) and ``all``."""
    fs = farm_seasons(rs)
    counts = alerts["hazard"].value_counts().to_dict() if len(alerts) else {}
    out = {
        h: 100.0 * counts.get(h, 0) / fs
        for h in ("drought", "abrupt_loss", "flood", "no_planting", "stale_data")
    }
    crop = sum(v for k, v in counts.items() if k != "stale_data")
    out["crop"] = 100.0 * crop / fs
    out["all"] = 100.0 * sum(counts.values()) / fs
    out["farm_seasons"] = fs
    return out
