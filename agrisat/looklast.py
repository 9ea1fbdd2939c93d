"""Each farm's latest persisted look, kept in a small table beside the monthly look tables.

An incremental step continues every farm from its latest look before the step's first date
(:func:`agrisat.looks.last_looks_before`). Found from the look tables, that is a filtered read
of every month holding some farm's latest look: months of parts at 100,000 farms (0.54 s of
a one-date night), and a fixed few seconds per step of a long first night at 60,000 farms.
The ``look_last`` table holds those rows (:data:`~agrisat.anomaly.context.LAST_COLUMNS`, one
per farm with a clear look, sorted by farm), replaced in the same transaction as the looks
it summarises, so a crash leaves the old pair or the new one.

It is trusted only when the manifest's ``meta["looks"]`` carries :data:`LAST_VERSION` under
``"last"``: every commit of the looks rewrites that dictionary whole, so a commit by a
version of agrisat that does not keep the table (an older one, on the same workdir) drops
the mark, and the next step rebuilds the table from the look tables. Each row served is
also checked against the farm state's latest clear look (``look_farms``): a row of another
date is read from the look tables instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from .anomaly.context import LAST_COLUMNS
from .arrowops import farm_date_order, isin, pylist
from .looks import read_looks
from .store import Store

__all__ = [
    "LAST_TABLE",
    "LAST_VERSION",
    "carried_before",
    "empty_last",
    "last_looks_before",
    "latest_per_farm",
    "next_last",
    "read_last",
    "served_last",
]

LAST_TABLE = "look_last"
#: Bump when the table's rows change meaning: a workdir marked with another version rebuilds.
LAST_VERSION = 1


def empty_last() -> pd.DataFrame:
    """A ``look_last`` table without rows."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in LAST_COLUMNS})


def read_last(store: Store, manifest: dict[str, Any]) -> pd.DataFrame | None:
    """The committed ``look_last`` table, or None when it cannot be trusted (missing, or the
    looks were last committed without it)."""
    meta = manifest.get("meta", {}).get("looks") or {}
    if meta.get("last") != LAST_VERSION or not store.parts(LAST_TABLE, manifest):
        return None
    return store.read(LAST_TABLE, manifest=manifest)


def _last_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Each farm's latest row of ``df``, sorted by farm (``groupby("farm_id").tail(1)`` after
    the farm-date sort, without hashing the ids)."""
    out = df.take(farm_date_order(df))
    ids = out["farm_id"].to_numpy(dtype=object)
    return out[np.r_[ids[1:] != ids[:-1], True]].reset_index(drop=True)


def _overlay(base: pd.DataFrame, newer: pd.DataFrame) -> pd.DataFrame:
    """``base``'s rows of the farms ``newer`` has none of, and ``newer``'s rows
    (:data:`LAST_COLUMNS`), sorted by farm and date."""
    if len(base) and len(newer):
        base = base[~isin(base["farm_id"].astype(str), newer["farm_id"].astype(str))]
    parts = [f[list(LAST_COLUMNS)] for f in (base, newer) if len(f)]
    if not parts:
        return empty_last()
    both = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return both.take(farm_date_order(both)).reset_index(drop=True)


def latest_per_farm(looks: pd.DataFrame) -> pd.DataFrame:
    """Each farm's latest row of ``looks`` (:data:`LAST_COLUMNS` only), sorted by farm."""
    if not len(looks):
        return empty_last()
    return _last_rows(looks[list(LAST_COLUMNS)])


def served_last(
    table: pd.DataFrame, ids: pd.Index, dates: pd.Series, columns: list[str]
) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of ``table`` of farms ``ids`` (sorted, unique) whose date is ``dates`` (the
    farm state's latest clear look, aligned with ``ids``), and a mask of the ids served.

    A farm without a row, or with a row of another date, is not served: the caller reads
    its look from the look tables.
    """
    if not len(ids) or not len(table) or not set(columns) <= set(table.columns):
        return table.iloc[:0], np.zeros(len(ids), dtype=bool)
    keys = pd.Index(table["farm_id"].astype(str))
    if not keys.is_unique:  # not a table this module wrote: nothing served from it
        return table.iloc[:0], np.zeros(len(ids), dtype=bool)
    pos = keys.get_indexer(ids)
    have = pos >= 0
    stored = pd.to_datetime(table["date"]).to_numpy(dtype="datetime64[ns]")
    want = pd.to_datetime(dates).to_numpy(dtype="datetime64[ns]")
    ok = have.copy()
    ok[have] = stored[pos[have]] == want[have]
    rows = table.take(pos[ok])[columns].reset_index(drop=True)
    return rows, ok


def carried_before(table: pd.DataFrame, last: pd.DataFrame, *, d0: pd.Timestamp) -> pd.DataFrame:
    """Each farm's latest look before ``d0``: the table's rows dated before ``d0``, with
    ``last`` (the latest looks before ``d0`` of the farms the step read them for, among them
    every farm whose table row is dated ``d0`` or later) in place of theirs."""
    kept = table[(pd.to_datetime(table["date"]) < d0).to_numpy()] if len(table) else table
    return _overlay(kept, last)


def next_last(before: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """The ``look_last`` table after a step: ``before`` (each farm's latest look dated
    before the step's first date, :func:`carried_before`) continued by each farm's latest
    new look."""
    # each farm once: its new look when it has one
    return _overlay(before, latest_per_farm(new))


def last_looks_before(
    store: Store,
    manifest: dict[str, Any],
    state: pd.DataFrame,
    farms: Iterable[str],
    d0: pd.Timestamp,
    columns: Iterable[str],
    *,
    table: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Each farm's latest persisted look dated before ``d0``.

    ``state`` (``look_farms``) says where to look: a farm whose latest look is before ``d0``
    has it on that date -- in ``table`` (``look_last``, :mod:`agrisat.looklast`) when given
    and holding that look, else one filtered read per month; one whose latest look is later
    (a recomputation of past dates) is searched month by month backwards to its first look.
    """
    columns = list(columns)
    st = state.set_index("farm_id")[["first_clear", "last_clear"]]
    ids = pd.Index(sorted(set(map(str, pylist(farms)))))
    # the farms' state rows located once (each ``.loc`` by the string ids hashed them anew)
    pos = st.index.get_indexer(ids)
    ids, st = ids[pos >= 0], st.take(pos[pos >= 0])
    first = pd.to_datetime(st["first_clear"])
    keep = (first < d0).to_numpy()
    ids, st = ids[keep], st[keep]
    if not len(ids):
        return pd.DataFrame(columns=list(columns))
    last = pd.to_datetime(st["last_clear"])
    known = (last < d0).to_numpy()
    exact = known.copy()  # read on their latest date
    frames = []
    served = None
    if table is not None and known.any():
        # the ordinary night: every farm's latest look is the one before d0, kept by the
        # previous commit (a read of each month holding one cost 0.54 s at 100,000 farms)
        served, ok = served_last(table, ids[known], last[known], columns)
        frames.append(served)
        exact[np.flatnonzero(known)[ok]] = False
    exact = pd.DataFrame({"farm_id": ids[exact], "date": last[exact].to_numpy()})
    for month, grp in exact.groupby(exact["date"].dt.to_period("M")):
        lo = pd.Timestamp(month.start_time)
        frames.append(
            read_looks(
                store, manifest, [(lo, min(lo + pd.offsets.MonthBegin(1), d0))],
                farms=grp["farm_id"], columns=columns,
                where=[("date", "in", list(grp["date"].drop_duplicates()))],
            )
        )  # fmt: skip
    todo = set(ids[~known])
    hi = d0
    floor = first.min()
    while todo and hi > floor:
        lo = pd.Timestamp(hi.year, hi.month, 1) if hi.day > 1 else hi - pd.offsets.MonthBegin(1)
        got = read_looks(store, manifest, [(lo, hi)], farms=todo, columns=columns)
        if len(got):
            got = got.groupby("farm_id", sort=False).tail(1)
            frames.append(got)
            todo -= set(got["farm_id"])
        hi = lo
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(columns))
    if len(frames) == 1 and frames[0] is served:  # one row per farm, in farm order
        return served
    return _last_rows(pd.concat(frames, ignore_index=True))
