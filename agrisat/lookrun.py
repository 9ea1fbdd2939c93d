"""Bringing the persisted looks up to date: plan, full recomputation in steps, increments.

:func:`plan` compares the store's ledger with the one the persisted looks were computed from
(and a fingerprint of what else they depend on) and decides: nothing to do, an incremental
recomputation from the earliest changed day, or a full one. A full recomputation of a long
history is cut into steps of whole dates (``run.step_rows`` observations each): the first
step from scratch, the others through the incremental path, each committed on its own, so
memory is bounded by a step and a run killed between steps is continued by the next one.
The incremental steps' observations are split from the store in one pass
(:class:`agrisat.stepobs.StepObservations`).
Within a step both paths work in farm partitions (``detect.partition_farms``) and stage
each partition's looks before making the next: the from-scratch one (:func:`stage_full`) and
the later steps (:func:`stage_step`, :func:`agrisat.anomaly.extend.extend_partitions`: each
reads its farms' context once for all its dates, so a step may hold many dates).
Every commit of looks also replaces ``look_last``, each farm's latest look
(:mod:`agrisat.looklast`), which the next step continues from without reading the months
that hold them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .allocator import trim_heap
from .anomaly.extend import extend_partitions
from .anomaly.features import farm_attributes, farm_coordinates
from .anomaly.incremental import (
    LAST_COLUMNS,
    LookContext,
    context_windows,
    extend_looks,
    group_summary,
    incremental_ok,
)
from .arrowops import isin
from .config import Settings
from .errors import StoreError
from .looklast import (
    LAST_TABLE,
    LAST_VERSION,
    carried_before,
    last_looks_before,
    latest_per_farm,
    next_last,
    read_last,
)
from .looks import (
    farm_state,
    merge_state,
    read_filtered,
    read_looks,
    write_looks,
)
from .lookstage import OBS_KEYS, LookAppender, merge_groups, obs_columns, stage_full
from .stepobs import StepObservations, date_steps
from .store import Store, Transaction

__all__ = [
    "LOOKS_VERSION",
    "OBS_KEYS",
    "Increment",
    "commit_prefix",
    "date_steps",
    "incremental_looks",
    "ledger_signature",
    "looks_fingerprint",
    "looks_meta",
    "obs_columns",
    "plan",
    "stage_full",
    "stage_step",
]

log = logging.getLogger(__name__)

#: Bump when the persisted look rows change meaning (forces one full recomputation).
LOOKS_VERSION = 2


def looks_fingerprint(settings: Settings, farms: pd.DataFrame, calendars: Any) -> str:
    """Digest of what the persisted looks depend on besides observations: detection
    settings, crop calendars and the farms' peer attributes and centroids (not exposure or
    loans)."""
    s = dataclasses.asdict(settings.detect)
    for k in ("chunk_farms", "parallel_min_farms", "partition_farms"):
        s.pop(k, None)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"v{LOOKS_VERSION}|{sorted(s.items())!r}|{calendars!r}".encode())
    attrs = farm_attributes(farms).sort_values("farm_id", kind="stable").reset_index(drop=True)
    h.update(pd.util.hash_pandas_object(attrs, index=False).to_numpy().tobytes())
    order = farm_attributes(farms)["farm_id"].argsort(kind="stable").to_numpy()
    coords = farm_coordinates(farms)  # radius peers
    h.update(b"" if coords is None else np.round(coords[order], 3).tobytes())
    return h.hexdigest()


def ledger_signature(store: Store, manifest: dict[str, Any]) -> pd.DataFrame:
    led = store.read("ledger", manifest=manifest)
    if led.empty:
        return pd.DataFrame({"item_id": [], "day": [], "sig": []}, dtype=str)
    sig = led[["item_id", "day"]].astype(str).copy()
    sig["sig"] = (
        led["day"].astype(str) + "|" + led["status"].astype(str) + "|"
        + led.get("updated", "").astype(str) + "|" + led.get("run_id", "").astype(str)
    )  # fmt: skip
    return sig.sort_values("item_id", kind="stable").reset_index(drop=True)


def plan(
    store: Store, manifest: dict[str, Any], fp: str, full: bool, settings: Settings
) -> tuple[str, pd.Timestamp | None, pd.DataFrame]:
    """("full" | "incremental" | "none", first date to recompute, ledger signature)."""
    sig = ledger_signature(store, manifest)
    meta = manifest.get("meta", {}).get("looks")
    if full or not meta or meta.get("fingerprint") != fp or not incremental_ok(settings.detect):
        return "full", None, sig
    old = store.read("look_ledger", manifest=manifest)
    known = dict(zip(old["item_id"], old["sig"], strict=True)) if len(old) else {}
    changed = sig[[known.get(i) != v for i, v in zip(sig["item_id"], sig["sig"], strict=True)]]
    parts_changed = [str(p) for p in manifest["tables"].get("observations", [])] != meta.get(
        "obs_parts"
    )
    if changed.empty:
        # observations changed without a ledger entry: written by something else, start over
        return ("full", None, sig) if parts_changed else ("none", None, sig)
    # a day's margin: a scene's day and its observations' date must not disagree at midnight
    d0 = pd.Timestamp(min(changed["day"])) - pd.Timedelta(days=1)
    return "incremental", d0, sig


def commit_prefix(
    store: Store,
    manifest: dict[str, Any],
    farms: pd.DataFrame,
    steps: list[tuple[pd.Timestamp, pd.Timestamp]],
    sig: pd.DataFrame,
    fp: str,
    settings: Settings,
    calendars: Any,
) -> tuple[dict[str, Any], pd.Timestamp, pd.Timestamp]:
    """Compute and commit the looks of every step but the last, one transaction per step.

    Each commit records the looks as computed through the step's last date (fingerprint,
    ``through`` and the ledger entries up to that day), so a run killed between steps is
    continued incrementally by the next one. Returns the fresh manifest, the last step's
    first date (where the caller continues) and the last committed date.
    """
    through: pd.Timestamp | None = None
    # the observations of the incremental steps, split from the store in one pass (a date
    # filter on the farm-sorted parts decoded the whole table for every step)
    split = StepObservations(
        store, manifest, steps[1:-1], columns=obs_columns(store, manifest), keys=OBS_KEYS
    )
    with split:
        for k, (lo, hi) in enumerate(steps[:-1]):
            through = _commit_step(
                store, manifest, farms, k, (lo, hi), through, split, sig, fp, settings, calendars
            )  # fmt: skip
            manifest = store.manifest()
            log.info("looks: step %d/%d (dates to %s) committed", k + 1, len(steps), hi.date())
    assert through is not None  # at least two steps
    return manifest, steps[-1][0], through


def _commit_step(
    store: Store,
    manifest: dict[str, Any],
    farms: pd.DataFrame,
    k: int,
    step: tuple[pd.Timestamp, pd.Timestamp],
    through: pd.Timestamp | None,
    split: StepObservations,
    sig: pd.DataFrame,
    fp: str,
    settings: Settings,
    calendars: Any,
) -> pd.Timestamp:
    """Compute and commit step ``k`` (``[lo, hi]``) of :func:`commit_prefix`; returns hi."""
    lo, hi = step
    txn = Transaction(staging=store)
    if k == 0:  # from scratch, a farm partition at a time (looks staged as made)
        stage_full(txn, store, manifest, farms, settings, calendars, until=hi)
    else:
        stage_step(
            txn, store, manifest, farms, lo, through, settings, calendars, until=hi,
            observations=split.read(k - 1),
        )  # fmt: skip
    txn.replace("look_ledger", sig[pd.to_datetime(sig["day"]) <= hi].reset_index(drop=True))
    looks_meta(txn, manifest, fp, hi)
    store.commit(txn)
    trim_heap()  # the step's freed pages, before the next step peaks on top of them
    return hi


class Increment(NamedTuple):
    """What :func:`incremental_looks` computed, for :func:`agrisat.looks.write_looks`."""

    #: the looks of dates >= d0
    looks: pd.DataFrame
    #: their peer-group summary
    groups: pd.DataFrame
    #: the farm state (``look_farms``) after them
    state: pd.DataFrame
    #: the latest computed date
    through: pd.Timestamp
    #: each farm's latest look after them (``look_last``, :mod:`agrisat.looklast`)
    last: pd.DataFrame


def looks_meta(txn: Transaction, manifest: dict[str, Any], fp: str, through: pd.Timestamp) -> None:
    """Record in ``txn`` what its looks were computed from (``meta["looks"]``, replaced
    whole): the fingerprint, the latest computed date, the observation parts, and whether
    ``txn`` keeps the ``look_last`` table beside them (:mod:`agrisat.looklast`)."""
    meta: dict[str, Any] = {
        "fingerprint": fp,
        "through": f"{through:%Y-%m-%d}",
        "obs_parts": [str(p) for p in manifest["tables"].get("observations", [])],
    }
    if LAST_TABLE in txn.replaces:
        meta["last"] = LAST_VERSION
    txn.meta["looks"] = meta


def _window_reader(
    store: Store, manifest: dict[str, Any], ranges: list[tuple[pd.Timestamp, pd.Timestamp]]
) -> Callable[[list[str], tuple[str, ...]], pd.DataFrame]:
    """A reader of the persisted looks in ``ranges`` of some farms, some columns."""

    def read(farm_ids: list[str], columns: tuple[str, ...]) -> pd.DataFrame:
        return read_looks(store, manifest, ranges, farms=farm_ids, columns=columns)

    return read


def incremental_looks(
    store: Store,
    manifest: dict[str, Any],
    farms: pd.DataFrame,
    d0: pd.Timestamp,
    through: pd.Timestamp | None,
    settings: Settings,
    calendars: Any,
    *,
    until: pd.Timestamp | None = None,
    observations: pd.DataFrame | None = None,
    sink: Callable[[pd.DataFrame], None] | None = None,
) -> Increment:
    """Looks of dates >= ``d0`` (and <= ``until``) from the observations of those dates and
    the stored context (:class:`Increment`). ``observations``: those observations already
    read (as the store's filtered read gives them), else they are read here. ``sink``: the
    looks are made a farm partition at a time (:func:`extend_partitions`) and each finished
    partition is handed to it (to be staged) before the next is built; the increment's
    ``looks`` then hold only their keys and state."""
    s = settings.detect
    obs = observations
    if obs is None:
        span = [("date", ">=", f"{d0:%Y-%m-%d}")]
        if until is not None:
            span.append(("date", "<=", f"{until:%Y-%m-%d}"))
        obs = read_filtered(
            store, manifest, "observations", filters=[span],
            columns=obs_columns(store, manifest), keys=OBS_KEYS,
        )  # fmt: skip
    obs = obs.assign(date=pd.to_datetime(obs["date"]).dt.normalize())
    old_state = store.read("look_farms", manifest=manifest)
    d1 = obs["date"].max() if len(obs) else d0
    win = context_windows(d0, d1, s)
    ids = set(obs["farm_id"].astype(str).unique().tolist())  # not one Arrow string at a time
    lost = set(old_state.loc[pd.to_datetime(old_state["last_clear"]) >= d0, "farm_id"])
    table = read_last(store, manifest)
    if table is None:  # looks committed without the table (an older agrisat): rebuilt
        every = old_state["farm_id"].astype(str)
        before = last_looks_before(store, manifest, old_state, every, d0, LAST_COLUMNS)
        last = before[isin(before["farm_id"].astype(str), ids | lost)].reset_index(drop=True)
    else:
        last = last_looks_before(
            store, manifest, old_state, ids | lost, d0, LAST_COLUMNS, table=table
        )
        before = carried_before(table, last, d0=d0)
    del table
    lag_lo = win["lag"][0][0]
    groups = read_filtered(
        store, manifest, "look_groups",
        filters=[[("date", ">=", lag_lo), ("date", "<", d0)]]
        + ([[("date", "in", list(pd.to_datetime(last["date"]).drop_duplicates()))]]
           if len(last) else []),
    )  # fmt: skip
    # The context windows are read partition by partition (``detect.partition_farms``
    # farms at a time, with a farm filter) inside ``extend_looks``: the recent window's
    # looks of 100,000 farms were the night's peak (~400 MB of the 1.3 GB).
    ctx = LookContext(
        history=_window_reader(store, manifest, win["history"]),
        recent=_window_reader(store, manifest, win["recent"]),
        last=last,
        groups=groups,
    )
    if sink is None:
        new = extend_looks(obs, farms, ctx, d0=d0, settings=s, calendars=calendars)
        summary = group_summary(new)
    else:  # each partition's looks staged as made: the step holds one partition's
        parts = extend_partitions(obs, farms, ctx, d0=d0, settings=s, calendars=calendars)
        seen = obs[["farm_id", "date", "status"]]  # what the farm state reads of them
        del obs  # (the generator drops them once its looks are made)
        new, summary, latest = _sunk(parts, sink)
        obs = seen
    last_table = next_last(before, new if sink is None else latest)
    del before
    state = merge_state(old_state, farm_state(obs, new), d0)
    # farms whose looks from d0 on are gone: their latest look is the one before d0
    st = state.set_index("farm_id")
    gap = st.index[st["last_clear"].isna() & st.index.isin(list(lost))]
    if len(gap) and len(last):
        lk = last.set_index("farm_id")["date"]
        st.loc[gap, "last_clear"] = pd.to_datetime(lk.reindex(gap)).to_numpy()
    gone = set(old_state.loc[pd.to_datetime(old_state["last_anomalous"]) >= d0, "farm_id"])
    gap = st.index[st["last_anomalous"].isna() & st.index.isin(list(gone))]
    if len(gap):
        lo = d0 - pd.Timedelta(days=s.lookback_days + 1)
        an = read_looks(
            store, manifest, [(lo, d0)], farms=gap, columns=["farm_id", "date"],
            where=[("state", "==", "anomalous")],
        )  # fmt: skip
        if len(an):
            st.loc[gap, "last_anomalous"] = (
                an.groupby("farm_id")["date"].max().reindex(gap).to_numpy()
            )
    state = st.reset_index()
    return Increment(
        new, summary, state, max([d for d in (through, d1) if d is not None]), last_table
    )


def _sunk(
    parts: Iterator[pd.DataFrame], sink: Callable[[pd.DataFrame], None]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Hand each partition of looks to ``sink``; returns what the step keeps of them: every
    look's keys and state (for the farm state), their group summary and each farm's latest
    look (partitions hold disjoint farms: a farm's latest look is its partition's)."""
    groups, lasts, keys = [], [], []
    for part in parts:
        sink(part)
        groups.append(group_summary(part))
        lasts.append(latest_per_farm(part))
        keys.append(part[["farm_id", "date", "state"]])
        del part
    if not keys:
        empty = pd.DataFrame(columns=["farm_id", "date", "state"])
        return empty, group_summary(empty), latest_per_farm(empty)
    return (
        pd.concat(keys, ignore_index=True),
        merge_groups(groups),
        pd.concat(lasts, ignore_index=True),
    )


def stage_step(
    txn: Transaction,
    store: Store,
    manifest: dict[str, Any],
    farms: pd.DataFrame,
    d0: pd.Timestamp,
    through: pd.Timestamp,
    settings: Settings,
    calendars: Any,
    *,
    until: pd.Timestamp | None = None,
    observations: pd.DataFrame | None = None,
) -> Increment:
    """:func:`incremental_looks` of dates after everything stored (``d0 > through``: a step
    of a long recomputation) staged in ``txn`` a farm partition at a time, with their group
    summary, the farm state and ``look_last``; the increment's ``looks`` hold only keys and
    state (the looks themselves are read back from ``txn``'s staged manifest)."""
    if d0 <= through:
        raise StoreError(
            f"a step from {d0.date()} does not follow the looks through {through.date()}"
        )
    sink = LookAppender(txn)
    inc = incremental_looks(
        store, manifest, farms, d0, through, settings, calendars, until=until,
        observations=observations, sink=sink,
    )  # fmt: skip
    # the months were appended by the sink: only the groups and the farm state remain
    write_looks(
        txn, store, manifest, inc.looks.iloc[:0], inc.groups, inc.state, d0=d0, full=False,
        through=through,
    )  # fmt: skip
    txn.replace(LAST_TABLE, inc.last)
    return inc
