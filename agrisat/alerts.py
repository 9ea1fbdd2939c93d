"""Alert lifecycle: anomalies of one run + the previous alerts -> the current alerts.

An alert is one event on one farm. Its id is derived from (farm, family, onset) so reruns are
idempotent and an ongoing event keeps its id. Crop-condition hazards (drought, flood, abrupt
loss, no planting) form one family: while an alert of that family is open on a farm, further
anomalous looks extend it instead of opening a second alert. ``stale_data`` is its own family.
An alert resolves only on clear evidence: ``recover_looks`` consecutive clear looks back in the
normal range (a clear look at all, for stale data); cloudy or missing dates never resolve it.

A farm that leaves the loan book takes its open alerts with it: the first run without it
closes them (status ``resolved`` on that run's date, the evidence ending "closed <date>: the
farm left the loan book", :func:`agrisat.i18n.left_book`), keeping their ids, history and
the book keys they had; its looks raise nothing while it is out. If the farm comes back and is
still anomalous, it gets a new alert (a new id, derived from the closed one's).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .alerts_book import attach_book, back_in_book_id, close_departed, departed_farms
from .alerts_fast import evidence as _evidence
from .alerts_fast import peer_fields, split_stale, stale_records
from .arrowops import isin
from .severity import SEVERITIES, SEVERITY_RULES, SeverityRule, severity_of

__all__ = [
    "ALERT_COLUMNS",
    "DEFAULT_ALERT_SETTINGS",
    "OPEN",
    "SEVERITIES",
    "SEVERITY_RULES",
    "AlertSettings",
    "SeverityRule",
    "severity_of",
    "update_alerts",
]

log = logging.getLogger(__name__)

ALERT_COLUMNS: tuple[str, ...] = (
    "alert_id", "farm_id", "loan_id", "borrower_id", "region", "crop", "hazard", "severity",
    "status", "onset_date", "last_observed", "exposure", "evidence", "peer_state", "score",
    "value", "expected", "index", "n_looks", "first_raised", "last_updated", "resolved_date",
    "peer_median", "peer_n", "usual_gap",
)  # fmt: skip

OPEN: tuple[str, ...] = ("new", "ongoing")


@dataclass(frozen=True)
class AlertSettings:
    """How alerts live."""

    #: consecutive clear looks in the normal range that resolve a crop alert
    recover_looks: int = 2
    #: an event that opened and recovered between two runs is still reported (as resolved)
    #: when it recovered within this many days of the run
    report_resolved_days: int = 30
    severity_rules: tuple[SeverityRule, ...] = field(default=SEVERITY_RULES)
    #: an alert confirmed early on one strong look (anomaly column ``early``) stays at most at
    #: this severity until a second anomalous look agrees
    early_severity: str = "watch"


DEFAULT_ALERT_SETTINGS = AlertSettings()


def _alert_id(farm_id: str, family: str, onset: pd.Timestamp) -> str:
    digest = hashlib.sha1(f"{farm_id}|{family}|{onset:%Y-%m-%d}".encode()).hexdigest()
    return f"A{digest[:15]}"


def _episodes(rows: pd.DataFrame | list[dict[str, Any]], s: AlertSettings) -> list[dict[str, Any]]:
    """Crop-condition episodes of one farm from its look rows (sorted by date; a frame or
    its records)."""
    eps: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    normals = 0
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else rows
    for r in records:
        state = r["state"]
        if state == "anomalous":
            normals = 0
            if cur is None and bool(r["confirmed"]):
                cur = {
                    "family": "crop",
                    "hazard": r["run_hazard"],
                    "onset": r["onset"],
                    "n_looks": int(r["run_looks"]) - 1,
                    "peak": -np.inf,
                    "row": r,
                    "resolved": None,
                    "early": pd.notna(r.get("early")) and bool(r.get("early")),
                }
                eps.append(cur)
            if cur is not None:
                cur["n_looks"] += 1
                cur["last"] = r  # the latest anomalous look, whatever its hazard
                if r["hazard"] == cur["hazard"]:
                    # the evidence quotes the latest look of the episode's own hazard: a flood
                    # followed by crop damage must not print the damage's numbers as water
                    cur["row"] = r
                    if pd.notna(r["score"]):
                        cur["peak"] = max(cur["peak"], float(r["score"]))
        elif state == "normal":
            if cur is not None:
                normals += 1
                if normals >= s.recover_looks:
                    cur["resolved"] = r["date"]
                    cur, normals = None, 0
        else:
            normals = 0
    return eps


def _stale_episode(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "family": "stale_data",
        "hazard": "stale_data",
        "onset": r["onset"],
        "n_looks": 0,
        "peak": float(r["score"]),
        "row": r,
        "resolved": None,
    }


def _records_by_farm(frame: pd.DataFrame) -> dict[Any, list[dict[str, Any]]]:
    """Records of ``frame`` grouped by ``farm_id`` (row order kept): one conversion for all
    farms instead of one small frame per farm."""
    out: dict[Any, list[dict[str, Any]]] = {}
    for r in frame.to_dict("records"):
        out.setdefault(r["farm_id"], []).append(r)
    return out


def update_alerts(
    history: pd.DataFrame | None,
    anomalies: pd.DataFrame,
    farms: pd.DataFrame,
    *,
    run_date: str | pd.Timestamp,
    settings: AlertSettings = DEFAULT_ALERT_SETTINGS,
    _fast: bool = True,
) -> pd.DataFrame:
    """The alerts after a run.

    Parameters
    ----------
    history
        The previous run's alerts (this function's earlier output), or None on a first run.
    anomalies
        :func:`agrisat.anomaly.detect`'s output for this run.
    farms
        The loan book (keys, region, crop, exposure are copied onto alerts). Open alerts of
        farms not in it are closed (see the module documentation) and anomaly rows of such
        farms are ignored.
    run_date
        The run's date (``asof``).
    _fast
        Private: False walks every farm one by one (the reference the tests compare the
        column-wise path for stale-only farms against).

    Returns
    -------
    pandas.DataFrame
        One row per alert, columns :data:`ALERT_COLUMNS`; history alerts without new evidence
        are carried over unchanged (an open one stays open).
    """
    s = settings
    day = pd.Timestamp(run_date).normalize()
    hist = _empty() if history is None or history.empty else history.copy()
    for col in ALERT_COLUMNS:  # a history written before a column existed: empty
        if col not in hist.columns:
            hist[col] = np.nan
    for col in ("onset_date", "last_observed", "first_raised", "last_updated", "resolved_date"):
        hist[col] = pd.to_datetime(hist[col])
    hist = hist.set_index("alert_id", drop=False)
    book = farms["farm_id"].astype(str).unique().tolist()
    anomalies = anomalies[
        (pd.to_datetime(anomalies["date"]) <= day).to_numpy()
        & isin(anomalies["farm_id"].astype(str), book)
    ]
    looks = anomalies[anomalies["state"] != "stale"]
    last_seen = looks.groupby("farm_id")["date"].max().to_dict()
    out: dict[str, dict[str, Any]] = {}
    open_all = hist[hist["status"].isin(OPEN)]
    # Open alerts of farms that left the book close below (carried, not walked).
    leaving = open_all.index[~isin(open_all["farm_id"].astype(str), book)]
    open_all = open_all.drop(index=leaving)
    # Farms back in the book after an alert closed on their leaving: walked, for new ids.
    closed_out = departed_farms(hist)
    # Only farms with something to say: an anomalous/stale row or an open alert to follow.
    talk = anomalies.loc[anomalies["state"].isin(["anomalous", "stale"]), "farm_id"]
    subset = anomalies[isin(anomalies["farm_id"], [*talk.unique(), *open_all["farm_id"]])]
    # Everything per farm is prepared with whole-table operations; the loop below only walks
    # the few rows that can open, extend or close an episode.
    look_rows = subset[subset["state"] != "stale"].sort_values(["farm_id", "date"], kind="stable")
    anom = look_rows["state"].eq("anomalous")
    # Looks before a farm's first anomalous one cannot open or close anything.
    started = anom.astype(int).groupby(look_rows["farm_id"], sort=False).cumsum() > 0
    looks_by_farm = _records_by_farm(look_rows[started])
    stale = subset[subset["state"] == "stale"]
    open_by_farm: dict[Any, list[str]] = {}
    for aid, farm in zip(open_all.index, open_all["farm_id"], strict=True):
        open_by_farm.setdefault(farm, []).append(aid)
    # Stale alerts in history resolve on the first clear look after their onset.
    open_stale = open_all.loc[open_all["hazard"] == "stale_data", ["alert_id", "farm_id"]]
    first_after: dict[str, Any] = {}
    if len(open_stale):
        pairs = open_stale.assign(since=open_all["onset_date"]).merge(
            look_rows[["farm_id", "date"]], on="farm_id"
        )
        pairs = pairs[pairs["date"] > pairs["since"]]
        first_after = pairs.groupby("alert_id")["date"].min().to_dict()
    fast = stale.iloc[:0]
    if _fast:
        # Farms with nothing to walk (no crop look, no open alert to match or resolve) get
        # their stale episodes column-wise; only the rest go through the loop.
        blocked = open_all.loc[
            (open_all["hazard"] != "stale_data") | open_all.index.isin(list(first_after)),
            "farm_id",
        ]
        fast, stale = split_stale(
            stale, dates=anomalies["date"], blocked=[*blocked, *looks_by_farm, *closed_out]
        )
    walk = sorted(set(subset.loc[~isin(subset["farm_id"], fast["farm_id"]), "farm_id"]))
    # Only the walked farms' history is needed as records (ids embed the farm id).
    mine = isin(hist["farm_id"].astype(str), [str(f) for f in walk])
    hist_rec = (hist[mine] if _fast else hist).to_dict("index")
    stale_by_farm = _records_by_farm(stale)
    for farm_id in walk:
        eps = _episodes(looks_by_farm.get(farm_id, []), s)
        eps += [_stale_episode(r) for r in stale_by_farm.get(farm_id, [])]
        open_ids = open_by_farm.get(farm_id, [])
        for ep in eps:
            ep["id"] = _alert_id(str(farm_id), ep["family"], pd.Timestamp(ep["onset"]))
            ep["id"] = back_in_book_id(ep["id"], ep["resolved"], hist_rec)
        _carry_open_ids([e for e in eps if e["family"] != "stale_data"], open_ids, hist_rec)
        for aid in open_ids:
            h = hist_rec[aid]
            if h["hazard"] != "stale_data" or aid not in first_after:
                continue
            if not any(e["id"] == aid for e in eps):
                seen = first_after[aid]
                eps.append(
                    {
                        "family": "stale_data",
                        "hazard": "stale_data",
                        "onset": h["onset_date"],
                        "n_looks": 0,
                        "peak": float(h["score"]),
                        "row": dict(h, date=seen, index=h["index"], state="stale", stage=None),
                        "resolved": seen,
                        "id": aid,
                    }
                )
        for ep in eps:
            rec = _record(ep, hist_rec, day, last_seen.get(farm_id, pd.NaT), s)
            if rec is not None:
                out[rec["alert_id"]] = rec
    new = pd.DataFrame(list(out.values()))
    done = list(out)
    if len(fast):
        cols = stale_records(fast, hist, day=day, last_seen=last_seen, rules=s.severity_rules)
        new = pd.DataFrame({c: [r[c] for r in out.values()] + v for c, v in cols.items()})
        done += cols["alert_id"]
    carried = hist[~isin(hist.index, list(done))].copy()
    carried.loc[carried["status"].eq("new") & (carried["first_raised"] < day), "status"] = "ongoing"
    close_departed(carried, leaving, day)
    frames = [f for f in (carried.reset_index(drop=True), new) if len(f)]
    result = pd.concat(frames, ignore_index=True) if frames else _empty()
    result = attach_book(result, farms)[list(ALERT_COLUMNS)]
    # debug: a night's lifecycle runs in farm groups, each a call; the night's totals are
    # logged once by its caller (agrisat.monitor)
    log.debug(
        "alerts on %s: %d open, %d new, %d resolved",
        day.date(),
        int(result["status"].isin(OPEN).sum()),
        int((result["status"] == "new").sum()),
        int((result["status"] == "resolved").sum()),
    )
    return result.sort_values(["farm_id", "onset_date", "alert_id"], kind="stable").reset_index(
        drop=True
    )


def _carry_open_ids(
    eps: list[dict[str, Any]], open_ids: list[str], hist: dict[str, dict[str, Any]]
) -> None:
    """Continuity: an open crop alert that no episode of this run matches by id carries on as
    the earliest unmatched episode (resolved or not), which takes its id and onset.

    An episode's id is derived from its onset, and the onset a run sees can move: an event
    longer than the rows the run reads is rebuilt with a later onset, a re-published scene can
    shift it. Each open alert is claimed at most once, so an event that recovered and a new
    one after it (seen together by a run after a pause) keep two ids.
    """
    claimed = {e["id"] for e in eps if e["id"] in hist}
    free = sorted(
        (a for a in open_ids if hist[a]["hazard"] != "stale_data" and a not in claimed),
        key=lambda a: pd.Timestamp(hist[a]["onset_date"]),
    )
    for ep in sorted(eps, key=lambda e: pd.Timestamp(e["onset"])):
        if not free:
            return
        ended = ep["resolved"]
        # an episode over before the alert began is another, older event
        if ep["id"] in hist or (ended is not None and ended < hist[free[0]]["onset_date"]):
            continue
        aid = free.pop(0)
        ep["id"], ep["onset"] = aid, hist[aid]["onset_date"]


def _record(
    ep: dict[str, Any],
    hist: dict[str, dict[str, Any]],
    day: pd.Timestamp,
    last_seen: Any,
    s: AlertSettings,
) -> dict[str, Any] | None:
    aid = ep["id"]
    h = hist.get(aid)
    known = h is not None
    resolved = ep["resolved"]
    if resolved is not None:
        if h is not None and h["status"] == "resolved":
            return dict(h)
        if not known and pd.Timestamp(resolved) < day - pd.Timedelta(days=s.report_resolved_days):
            return None
    r = ep["row"]
    onset = pd.Timestamp(ep["onset"])
    end = pd.Timestamp(resolved) if resolved is not None else day
    magnitude = ep["peak"] if np.isfinite(ep["peak"]) else float(r.get("score") or 0.0)
    first_raised = h["first_raised"] if h is not None else day
    status = "resolved" if resolved is not None else ("new" if first_raised == day else "ongoing")
    return {
        "alert_id": aid,
        "farm_id": str(r["farm_id"]),
        "hazard": ep["hazard"] if h is None else h["hazard"],
        "severity": _capped(
            severity_of(ep["hazard"], magnitude, int((end - onset).days), s.severity_rules),
            s.early_severity if ep.get("early") and int(ep["n_looks"]) < 2 else None,
        ),
        "status": status,
        "onset_date": onset,
        "last_observed": pd.Timestamp(last_seen)
        if pd.notna(last_seen)
        else (h["last_observed"] if h is not None else pd.NaT),
        "evidence": _evidence(ep),
        "peer_state": r.get("peer_state") if ep["hazard"] in ("drought", "stale_data") else None,
        "score": magnitude,
        "value": r.get("value"),
        "expected": r.get("expected"),
        "index": r.get("index"),
        "n_looks": int(ep["n_looks"]),
        "first_raised": first_raised,
        "last_updated": day,
        "resolved_date": pd.Timestamp(resolved) if resolved is not None else pd.NaT,
        # the evidence's peers as numbers too, so that it renders in any language
        **peer_fields(ep["hazard"], r),
    }


def _capped(severity: str, cap: str | None) -> str:
    """``severity`` lowered to ``cap`` (None: no cap)."""
    if cap is None:
        return severity
    return SEVERITIES[min(SEVERITIES.index(severity), SEVERITIES.index(cap))]


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in ALERT_COLUMNS})
