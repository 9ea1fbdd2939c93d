"""Detection against the store: observations → anomalies → alerts with their lifecycle.

Detection is incremental (issue #5): the classified looks are persisted (:mod:`agrisat.looks`)
and a night computes only the dates at or after the earliest day with new observations (found
from the ledger), reading the context those looks need with row and column filters; the alert
lifecycle reads the lookback window of the farms that have something to say. A settings,
calendar or book change (fingerprint), or ``full=True``, recomputes every look. Everything is
committed in one transaction with the alerts, so a crash leaves the old state or the new one.

The alerts table keeps every run's alerts (``run_date`` column): the previous run's rows are
the history :func:`agrisat.alerts.update_alerts` continues from, and a rerun for the same date
replaces that date's rows, so reruns are idempotent.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import pandas as pd

from .alerts import ALERT_COLUMNS, OPEN, update_alerts
from .allocator import trim_heap
from .anomaly.core import ANOMALY_COLUMNS, anomaly_table, window_rows
from .anomaly.incremental import stale_from_state
from .arrowops import isin
from .calendar import load_calendars
from .config import Settings
from .looklast import LAST_TABLE
from .lookrun import (
    LOOKS_VERSION,
    OBS_KEYS,
    commit_prefix,
    date_steps,
    incremental_looks,
    looks_fingerprint,
    looks_meta,
    plan,
    stage_full,
    stage_step,
)
from .looks import farm_state, read_filtered, read_looks, stored_look_rows, write_looks
from .store import Store, Transaction

__all__ = [
    "LOOKS_VERSION",
    "MonitorSummary",
    "alert_history",
    "detect_and_update",
    "latest_alerts",
    "looks_fingerprint",
]

log = logging.getLogger(__name__)

OPEN_STATUSES = ("new", "ongoing")
#: Look columns the alert rows are made of (:func:`window_rows` and :func:`anomaly_table`
#: keep these and the detectors' expected value, nothing else)
_ALERT_READ: tuple[str, ...] = (
    *(c for c in ANOMALY_COLUMNS if c != "index"),
    "expected_h",
)


@dataclass
class MonitorSummary:
    """Counts for the run record."""

    alerts: dict[str, int] = field(default_factory=dict)
    farms_by_status: dict[str, int] = field(default_factory=dict)
    #: how the looks were brought up to date: "full", "incremental" or "none" (nothing new)
    detection: str = "none"


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
    store: Store,
    farms: gpd.GeoDataFrame,
    *,
    run_date: str,
    settings: Settings,
    full: bool = False,
) -> MonitorSummary:
    """Detect anomalies as of ``run_date``, continue the alert lifecycle and commit both.

    ``full`` recomputes every look (also done automatically when the settings, calendars or
    the farms' crops and regions changed since the looks were stored).
    """
    summary = MonitorSummary()
    manifest = store.manifest()
    if not store.parts("observations", manifest):
        return summary
    trim_heap()  # the pixel path's freed pages, before detection peaks on top of them
    day = pd.Timestamp(run_date).normalize()
    calendars = load_calendars(settings.run.calendars) if settings.run.calendars else None
    fp = looks_fingerprint(settings, farms, calendars)
    mode, d0, sig = plan(store, manifest, fp, full, settings)
    summary.detection = str(mode)
    meta = manifest.get("meta", {}).get("looks") or {}
    through = pd.Timestamp(meta["through"]) if meta.get("through") else None
    old_through = through
    staged = False
    if mode == "full":
        # a long history is recomputed in steps of whole dates, each committed on its own
        # and continued by the incremental path: memory is bounded by a step, not the history.
        # A step is bounded by rows only (no minimum span): the later steps read their context
        # a farm partition at a time, and a step of at least the 61-day context window held
        # 13 dates of every farm in one look frame (60,000 farms: the first night's 1.3 GB).
        steps = date_steps(
            store, manifest, settings.run.step_rows, first_rows=settings.run.first_step_rows
        )
        if len(steps) > 1:
            with _system_arrow_pool():  # the steps' freed pages handed back between steps
                manifest, d0, through = commit_prefix(
                    store, manifest, farms, steps, sig, fp, settings, calendars
                )
            mode = "incremental"
            old_through = through
            staged = True  # the last step's looks (many dates) are read back once staged
    txn = Transaction(staging=store)  # large look tables go to disk as they are made
    if mode == "full":
        # every look from scratch, a farm partition at a time, staged in ``txn`` as made
        # (the whole look table of 100,000 farms x 8 dates was the first night's peak)
        state, n_looks, through = stage_full(txn, store, manifest, farms, settings, calendars)
        new = groups_new = None
        d0, staged = pd.Timestamp("1900-01-01"), True
        log.info("looks: full recomputation, %d looks", n_looks)
    elif mode == "incremental" and staged:
        assert d0 is not None and through is not None  # the stepped recomputation's
        # the last step of a long recomputation: its looks staged a farm partition at a
        # time (many dates of every farm), read back by the alerts like committed ones
        inc = stage_step(txn, store, manifest, farms, d0, through, settings, calendars)
        new = groups_new = None
        state, through = inc.state, inc.through
        log.info("looks: %d looks of dates from %s computed", len(inc.looks), d0.date())
        del inc
    elif mode == "incremental":
        assert d0 is not None  # set with "incremental"
        new, groups_new, state, through, last = incremental_looks(
            store, manifest, farms, d0, through, settings, calendars
        )
        log.info("looks: %d looks of dates from %s computed", len(new), d0.date())
    else:
        new = groups_new = None
        state = store.read("look_farms", manifest=manifest)
    if new is not None:
        write_looks(
            txn, store, manifest, new, groups_new, state, d0=d0, full=False, through=old_through
        )  # fmt: skip
        if staged:  # a step of a long recomputation: its looks are not held for the alerts
            new = groups_new = None
        txn.replace(LAST_TABLE, last)
        del last
    if staged:
        trim_heap()  # the looks' freed pages: the alerts' reads would stack on top of them
    if new is not None or staged:
        txn.replace("look_ledger", sig)
        looks_meta(txn, manifest, fp, through)
    hist = alert_history(store)
    before = hist[hist["run_date"] < run_date]
    previous = (
        before[before["run_date"] == before["run_date"].max()].drop(columns="run_date")
        if len(before)
        else None
    )
    # the staged looks are read back like committed ones (a full recomputation hands none)
    read_from = txn.staged_manifest(manifest) if staged else manifest
    alerts = _alerts(
        store, read_from, farms, previous, new, groups_new, state, d0, day, through, settings,
        calendars, run_date=run_date,
    )  # fmt: skip
    rows = alerts.assign(run_date=run_date)[["run_date", *ALERT_COLUMNS]]
    kept_alerts = hist[hist["run_date"] != run_date]
    table = pd.concat([kept_alerts, rows], ignore_index=True) if len(kept_alerts) else rows
    txn.replace("alerts", table.reset_index(drop=True))
    store.commit(txn)
    summary.alerts = {s: int((alerts["status"] == s).sum()) for s in ("new", "ongoing", "resolved")}
    seen = state[pd.to_datetime(state["last_obs"]) <= day]
    summary.farms_by_status = {
        str(k): int(v) for k, v in seen["last_status"].value_counts().items()
    }
    log.info(
        "alerts for %s: %d new, %d ongoing, %d resolved",
        run_date,
        summary.alerts["new"],
        summary.alerts["ongoing"],
        summary.alerts["resolved"],
    )
    return summary


def _alerts(
    store: Store,
    manifest: dict[str, Any],
    farms: pd.DataFrame,
    previous: pd.DataFrame | None,
    new: pd.DataFrame | None,
    groups_new: pd.DataFrame | None,
    state: pd.DataFrame,
    d0: pd.Timestamp | None,
    day: pd.Timestamp,
    through: pd.Timestamp | None,
    settings: Settings,
    calendars: Any,
    *,
    run_date: str,
) -> pd.DataFrame:
    """The alerts as of ``day``: the lifecycle continued from ``previous`` over the anomaly
    rows it needs -- the lookback window of the farms with an anomalous look in it, an open
    alert or stale data (the others' rows do not change any alert), and the stale rows.

    The lifecycle of a farm reads only that farm's rows and alerts, so it runs over groups
    of those farms (about ``run.alert_rows`` window looks each, :func:`_group_farms`), each
    reading its farms' window: at 60,000 farms
    the window rows of the 8,200 such farms (407,600 looks) and the lifecycle's per-look
    records on top of them were the night's peak (~700 MB above the rest). The alerts are
    those of one pass, in its order.
    """
    s = settings.detect
    lo = day - pd.Timedelta(days=s.lookback_days)
    cut = d0 if new is not None and d0 is not None else day + pd.Timedelta(days=1)
    end = day + pd.Timedelta(days=1)
    if through is not None and day < through:
        # a run dated before the latest computed look: the farm state is rebuilt as of it
        looks = read_looks(store, manifest, [(pd.Timestamp("1900-01-01"), min(cut, end))],
                           columns=["farm_id", "date", "state"])  # fmt: skip
        if new is not None and len(new):
            looks = pd.concat([looks, new.loc[new["date"] < end, list(looks.columns)]])
        obs = read_filtered(
            store, manifest, "observations", filters=[[("date", "<=", f"{day:%Y-%m-%d}")]],
            columns=["farm_id", "date", "status"], keys=OBS_KEYS,
        )  # fmt: skip
        state = farm_state(obs, looks)
    st = state.assign(farm_id=state["farm_id"].astype(str))
    groups = read_filtered(
        store, manifest, "look_groups",
        filters=[[("date", "<", min(cut, end))]], columns=["region", "date", "n_looks"],
    )  # fmt: skip
    if groups_new is not None and len(groups_new):
        groups = pd.concat([groups, groups_new.loc[groups_new["date"] < end, list(groups.columns)]])
    region_looks = groups.groupby(["region", "date"], as_index=False)["n_looks"].sum()
    stale = stale_from_state(st, farms, region_looks, asof=day, settings=s, calendars=calendars)
    last_anom = pd.to_datetime(st["last_anomalous"])
    busy = set(st.loc[(last_anom >= lo) & (last_anom <= day), "farm_id"])
    if previous is not None and len(previous):
        busy |= set(previous.loc[previous["status"].isin(OPEN), "farm_id"].astype(str))
    busy |= set(stale["farm_id"])
    hist = previous if previous is not None and len(previous) else None
    ids = sorted(busy | (set(hist["farm_id"].astype(str)) if hist is not None else set()))
    size = _group_farms(store, manifest, new, lo, end, len(farms), settings.run.alert_rows)
    size = min(size, max(len(ids), 1))
    out = []
    for k in range(0, max(len(ids), 1), size):
        part = ids[k : k + size]
        rows = _window(store, manifest, new, part, lo, min(cut, end), end)
        anomalies = anomaly_table(
            window_rows(rows, asof=day, settings=s), stale[isin(stale["farm_id"], part)], farms,
            settings=s,
        )  # fmt: skip
        del rows
        mine = hist[isin(hist["farm_id"].astype(str), part)] if hist is not None else None
        out.append(
            update_alerts(mine, anomalies, farms, run_date=run_date, settings=settings.alerts)
        )
        del anomalies, mine
    if len(out) == 1:
        return out[0]
    # update_alerts' own order (farm, onset, id: unique ids, so a total order)
    both = pd.concat(out, ignore_index=True)
    return both.sort_values(["farm_id", "onset_date", "alert_id"], kind="stable").reset_index(
        drop=True
    )


def _group_farms(
    store: Store,
    manifest: dict[str, Any],
    new: pd.DataFrame | None,
    lo: pd.Timestamp,
    end: pd.Timestamp,
    n_farms: int,
    rows: int,
) -> int:
    """Farms per group of the alert lifecycle: about ``rows`` window looks a group (0: one
    group), from the look tables' row counts over the window (whole months: an upper bound)
    per farm of the book. A few looks a farm (a short history) make large groups, three
    years of them small ones."""
    if rows <= 0:
        return max(n_farms, 1)
    n = stored_look_rows(store, manifest, lo, end) + (0 if new is None else len(new))
    per_farm = max(n / max(n_farms, 1), 1.0)
    return max(int(rows / per_farm), 1)


def _window(
    store: Store,
    manifest: dict[str, Any],
    new: pd.DataFrame | None,
    farms: list[str],
    lo: pd.Timestamp,
    stored_end: pd.Timestamp,
    end: pd.Timestamp,
) -> pd.DataFrame:
    """The look rows of ``farms`` dated ``lo`` to ``end`` (exclusive): the stored ones
    before ``stored_end`` and the new ones, only the columns the alert rows carry (a
    lookback window of whole look rows was the 30,000-farm night's peak)."""
    rows = read_looks(store, manifest, [(lo, stored_end)], farms=farms, columns=_ALERT_READ)
    if new is not None and len(new):
        keep = isin(new["farm_id"], farms) & (new["date"] >= lo) & (new["date"] < end)
        extra = new.loc[keep, [c for c in _ALERT_READ if c in new.columns]]
        rows = pd.concat([f for f in (rows, extra) if len(f)] or [extra], ignore_index=True)
        rows = rows.sort_values(["farm_id", "date"], kind="stable").reset_index(drop=True)
    if rows.empty:  # nothing to follow: an empty table with the columns window_rows reads
        rows = pd.DataFrame({c: pd.Series(dtype=object) for c in ANOMALY_COLUMNS})
        rows["date"] = pd.Series(dtype="datetime64[ns]")
    return rows


@contextlib.contextmanager
def _system_arrow_pool() -> Iterator[None]:
    """Within the block, Arrow's Python-level allocations (``to_pandas``, compute
    functions, arrays built from pandas) come from the C heap (``malloc``), not its own pool.

    Arrow's default pool (mimalloc in the wheels) keeps the pages of the buffers detection
    converts and frees by the thousand, even after ``release_unused``; the C heap's go back
    with :func:`trim_heap`. Measured (bench_detect --mode store, 3 years of the demo): 30,000
    farms' first night peaked 860 MB instead of 954; 100,000 farms' first step 752 instead
    of 866. The readers inside Arrow's C++ (parquet decoding) keep the pool chosen when Arrow
    was loaded: only ``ARROW_DEFAULT_MEMORY_POOL=system`` set before that also frees the
    ~250 MB they kept between a 100,000-farm backfill's steps. Only around a long backfill's
    steps: the C heap maps and faults those pages in anew, and the nightly incremental run's
    detection took 8.8-13.3 s instead of 6.5-7.3 s with it (100,000 plots, shared machine).
    Buffers remember their pool, so those made before the block are freed into theirs.
    Results do not depend on it.
    """
    import pyarrow as pa

    before = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(before)
