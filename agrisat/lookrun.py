"""Bringing the persisted looks up to date: plan, full recomputation in steps, increments.

:func:`plan` compares the store's ledger with the one the persisted looks were computed from
(and a fingerprint of what else they depend on) and decides: nothing to do, an incremental
recomputation from the earliest changed day, or a full one. A full recomputation of a long
history is cut into steps of whole dates (``run.step_rows`` observations each): the first
step from scratch, the others through the incremental path, each committed on its own, so
memory is bounded by a step and a run killed between steps is continued by the next one.
The incremental steps' observations are split from the store in one pass
(:class:`agrisat.stepobs.StepObservations`).
Within a step both paths work in farm partitions (``detect.partition_farms``): the
from-scratch one (:func:`stage_full`) stages each partition's looks before making the next.
Every commit of looks also replaces ``look_last``, each farm's latest look
(:mod:`agrisat.looklast`), which the next step continues from without reading the months
that hold them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .allocator import trim_heap
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
from .lookstage import OBS_KEYS, obs_columns, stage_full
from .stepobs import StepObservations
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


def date_steps(
    store: Store,
    manifest: dict[str, Any],
    step_rows: int,
    *,
    first_rows: int | None = None,
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Consecutive ranges of whole observation dates holding at most ``step_rows`` rows each
    (the first at most ``first_rows``, when given).

    A step holds at least one date, so it holds more rows when one date has more. Bounded by
    rows, a step bounds the night's memory whatever the number of farms (each step re-reads
    its context a farm partition at a time, so shorter steps cost time, not correctness). The first step is computed from
    scratch a farm partition at a time (:func:`stage_full`), a few times lighter per row
    than a later step: it gets its own, larger budget.
    """
    counts = _date_counts(store, manifest)
    steps: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    lo: pd.Timestamp | None = None
    hi: pd.Timestamp | None = None
    n = 0
    for day, k in counts.items():
        day = pd.Timestamp(day)
        limit = first_rows if first_rows is not None and not steps else step_rows
        if lo is not None and hi is not None and n + int(k) > limit:
            steps.append((lo, hi))
            lo, n = None, 0
        lo = day if lo is None else lo
        hi, n = day, n + int(k)
    if lo is not None and hi is not None:
        steps.append((lo, hi))
    return steps


def _date_counts(store: Store, manifest: dict[str, Any]) -> pd.Series:
    """Observation rows per day (every part's rows, as a whole-table read counts them),
    counted in Arrow part by part: the date column of 30,000 farms x 3 years as pandas
    strings was ~300 MB, the stepped first night's peak."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pieces = []
    for path in store.parts("observations", manifest):
        try:
            col = pq.read_table(path, columns=["date"])["date"]
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"store part {path} of table 'observations' is unreadable: {exc}"
            ) from None
        vc = pc.value_counts(col)
        pieces.append(
            pd.Series(
                vc.field("counts").to_numpy(zero_copy_only=False),
                index=pd.to_datetime(vc.field("values").to_pandas()).dt.normalize(),
            )
        )
        del col, vc
    if not pieces:
        return pd.Series(dtype="int64")
    both = pd.concat(pieces)
    return both.groupby(level=0).sum().sort_index()


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
        new, groups, state, _, last = incremental_looks(
            store, manifest, farms, lo, through, settings, calendars, until=hi,
            observations=split.read(k - 1),
        )  # fmt: skip
        write_looks(
            txn, store, manifest, new, groups, state, d0=lo, full=False, through=through
        )  # fmt: skip
        del new, groups, state  # staged: the looks' memory back before the next write
        txn.replace(LAST_TABLE, last)
        del last
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
) -> Increment:
    """Looks of dates >= ``d0`` (and <= ``until``) from the observations of those dates and
    the stored context (:class:`Increment`). ``observations``: those observations already
    read (as the store's filtered read gives them), else they are read here."""
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
    new = extend_looks(obs, farms, ctx, d0=d0, settings=s, calendars=calendars)
    last_table = next_last(before, new)
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
    latest = max([d for d in (through, d1) if d is not None])
    return Increment(new, group_summary(new), state, latest, last_table)
