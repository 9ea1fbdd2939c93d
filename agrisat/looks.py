"""Persisted classified looks in the store, read with row and column filters.

Tables (all written in the detection transaction, with the alerts):

- ``looks_YYYYMM``: the classified looks of one month (:func:`agrisat.anomaly.incremental.
  full_looks` rows). Monthly tables keep every read and rewrite to the months it needs and a
  month gets at most one append a night (the store compacts a table past 64 parts by reading
  it whole: a month stays small).
- ``look_groups``: per crop x region x date, the peer level, peers' median and look count.
- ``look_farms``: one row per farm: first observation, latest observation and its status,
  first and latest clear look, latest anomalous look (as of the latest computed date).
- ``look_ledger``: the ledger signature each item had when its day was last computed.
- ``look_last``: each farm's latest look (:mod:`agrisat.looklast`), what the next step
  continues from.

The manifest's ``meta["looks"]`` holds the settings fingerprint, the observation parts,
the latest computed date and the mark that ``look_last`` was written with the looks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .arrowops import farm_date_order, pylist
from .errors import unreadable_part
from .store import Store

__all__ = [
    "FARM_STATE_COLUMNS",
    "look_tables",
    "month_table",
    "read_filtered",
    "read_looks",
]

log = logging.getLogger(__name__)

PREFIX = "looks_"
FARM_STATE_COLUMNS: tuple[str, ...] = (
    "farm_id", "first_seen", "last_obs", "last_status", "first_clear", "last_clear",
    "last_anomalous",
)  # fmt: skip

Range = tuple[pd.Timestamp, pd.Timestamp]


def month_table(day: pd.Timestamp) -> str:
    """Name of the table holding the looks of ``day``'s month."""
    return f"{PREFIX}{pd.Timestamp(day):%Y%m}"


def _month_bounds(name: str) -> Range:
    start = pd.Timestamp(f"{name[len(PREFIX) : len(PREFIX) + 4]}-{name[-2:]}-01")
    return start, start + pd.offsets.MonthBegin(1)


def look_tables(manifest: dict[str, Any]) -> list[str]:
    """Names of the monthly look tables in ``manifest``, oldest first."""
    names = [t for t in manifest.get("tables", {}) if t.startswith(PREFIX) and t[-6:].isdigit()]
    return sorted(names)


def stored_look_rows(
    store: Store, manifest: dict[str, Any], lo: pd.Timestamp, hi: pd.Timestamp
) -> int:
    """Rows of the monthly look tables that overlap ``[lo, hi)``, from the parts' Parquet
    metadata (no row read): an upper bound of the stored looks dated in that range."""
    import pyarrow.parquet as pq

    n = 0
    for name in look_tables(manifest):
        a, b = _month_bounds(name)
        if b <= lo or a >= hi:
            continue
        for path in store.parts(name, manifest):
            try:
                n += pq.read_metadata(path).num_rows
            except (OSError, ValueError) as exc:
                raise unreadable_part(path, name, exc) from None
    return n


def read_filtered(
    store: Store,
    manifest: dict[str, Any],
    table: str,
    *,
    filters: list[list[tuple[str, str, Any]]] | None = None,
    columns: Iterable[str] | None = None,
    keys: tuple[str, ...] | None = None,
    expression: Any = None,
) -> pd.DataFrame:
    """Rows of ``table`` matching ``filters`` (pyarrow DNF), only ``columns``.

    Parts are read one by one with the filters applied while reading, so memory holds the
    matching rows only. With ``keys``, the latest part's row wins per key (the store's rule).
    ``expression``: ``filters`` as a pyarrow expression, when the caller has it (made once
    for all parts: a farm filter of 20,000 ids took ~10 ms to convert, each part each read).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    frames = []
    cols = list(columns) if columns is not None else None
    if filters is not None and expression is None:
        expression = pq.filters_to_expression(filters)
    for path in store.parts(table, manifest):
        try:
            frames.append(_read(pq, path, cols, filters, expression))
        except (OSError, ValueError) as exc:
            raise unreadable_part(path, table, exc) from None
    # Arrow's allocator keeps the pages of the decoded tables for reuse (at 100,000 farms a
    # month's look table is ~400 MB of them); the pandas work that follows allocates from
    # the C heap instead, so they are handed back here rather than stacking up under it.
    pa.default_memory_pool().release_unused()
    frames = [f for f in frames if len(f)] or frames[:1]
    if not frames:
        return pd.DataFrame(columns=cols or [])
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if keys and len(frames) > 1:
        df = df.drop_duplicates(list(keys), keep="last").reset_index(drop=True)
    return df


def _read(
    pq: Any, path: Path, cols: list[str] | None, filters: Any, expression: Any = None
) -> pd.DataFrame:
    if filters is not None and expression is None:
        expression = pq.filters_to_expression(filters)
    with pq.ParquetFile(path) as pf:  # one open for the schema and the row-group count
        schema = pf.schema_arrow
        groups = pf.metadata.num_row_groups
    if cols is not None:
        cols = [c for c in cols if c in schema.names]
    if filters is not None and len(schema.names) == 0:
        return pd.DataFrame(columns=cols or [])
    if filters is None or groups < 2:
        return pq.read_table(path, columns=cols, filters=expression).to_pandas()
    return _read_sliced(pq, path, schema, cols, filters, expression)


#: columns decoded at a time by :func:`_read_sliced`
_COLUMN_SLICE = 8


def _read_sliced(
    pq: Any, path: Path, schema: Any, cols: list[str] | None, filters: Any, expr: Any
) -> pd.DataFrame:
    """``pq.read_table(path, columns=cols, filters=filters).to_pandas()``, decoding one row
    group at a time and a few columns at a time: the row positions are found from the
    filtered columns, then each column slice is decoded and cut to them.

    The reader decodes every column of the row groups it reads (several at once) before it
    filters: at 100,000 farms a farm-filtered read of a month's looks (131,072-row groups,
    64 columns) stood ~250 MB above the rows it kept, the incremental night's peak.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    names = list(cols) if cols is not None else list(schema.names)
    keys = list(dict.fromkeys(c for conj in filters for c, _, _ in conj))
    target = pa.schema([schema.field(n) for n in names], metadata=schema.metadata)
    fragment = next(iter(ds.dataset(path, format="parquet").get_fragments()))
    pieces = []
    for group in fragment.split_by_row_group(filter=expr):
        key = group.to_table(columns=keys)
        key = key.append_column("_row", pa.array(np.arange(key.num_rows, dtype=np.int64)))
        rows = key.filter(expr)["_row"]
        del key
        if not len(rows):
            continue
        arrays: dict[str, Any] = {}
        for i in range(0, len(names), _COLUMN_SLICE):
            part = group.to_table(columns=names[i : i + _COLUMN_SLICE]).take(rows)
            arrays.update(zip(part.column_names, part.columns, strict=True))
            del part
        pieces.append(pa.Table.from_arrays([arrays[n] for n in names], schema=target))
    if not pieces:
        return pq.read_table(path, columns=cols, filters=expr).to_pandas()
    table = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
    del pieces
    return table.to_pandas()


def read_looks(
    store: Store,
    manifest: dict[str, Any],
    ranges: list[Range],
    *,
    farms: Iterable[str] | None = None,
    columns: Iterable[str] | None = None,
    where: list[tuple[str, str, Any]] | None = None,
) -> pd.DataFrame:
    """Persisted looks with dates in any of ``ranges`` (``[start, end)``), optionally only
    of ``farms`` and only the rows matching ``where``; sorted by farm and date."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ids = sorted(set(map(str, pylist(farms)))) if farms is not None else None
    if ids is not None and not ids:
        return pd.DataFrame(columns=list(columns) if columns is not None else [])
    # the farm filter as an expression once (DNF's "in" list converted anew for each
    # month's each part was ~4% of a long recomputation's steps)
    among = pc.field("farm_id").isin(pa.array(ids, type=pa.string())) if ids else None
    frames = []
    for name in look_tables(manifest):
        m0, m1 = _month_bounds(name)
        dnf = []
        for lo, hi in ranges:
            lo, hi = max(lo, m0), min(hi, m1)
            if lo >= hi:
                continue
            conj: list[tuple[str, str, Any]] = [("date", ">=", lo), ("date", "<", hi)]
            if ids is not None:
                # the range lets the reader skip row groups by their statistics (parts are
                # written sorted by farm; a partition of farms is a range of ids): an "in"
                # filter alone decodes every row group whole first
                conj += [("farm_id", ">=", ids[0]), ("farm_id", "<=", ids[-1])]
            dnf.append(conj + list(where or []))
        if dnf:
            expr = None
            for conj in dnf:
                e = pq.filters_to_expression([conj])
                e = e if among is None else e & among
                expr = e if expr is None else expr | e
            if among is not None:  # the same filter as DNF (its columns name what it reads)
                dnf = [[*conj, ("farm_id", "in", ids)] for conj in dnf]
            part = read_filtered(
                store, manifest, name, filters=dnf, columns=columns, expression=expr
            )
            if len(part):
                frames.append(part)
    if not frames:
        return pd.DataFrame(columns=list(columns) if columns is not None else [])
    df = pd.concat(frames, ignore_index=True)
    return df.take(farm_date_order(df)).reset_index(drop=True)


def farm_state(
    obs: pd.DataFrame, looks: pd.DataFrame, farm_ids: Iterable[str] | None = None
) -> pd.DataFrame:
    """``look_farms`` rows from observations and classified looks (dates as timestamps)."""
    ids = pd.Index(sorted(set(map(str, pylist(farm_ids))))) if farm_ids is not None else None
    o = obs.assign(farm_id=obs["farm_id"].astype(str), date=pd.to_datetime(obs["date"]))
    o = o.sort_values(["farm_id", "date"], kind="stable")
    g = o.groupby("farm_id", sort=True)
    out = pd.DataFrame({"first_seen": g["date"].min(), "last_obs": g["date"].max()})
    out["last_status"] = g["status"].last().astype(str)
    if len(looks):
        lg = looks.groupby("farm_id")["date"]
        out["first_clear"] = lg.min()
        out["last_clear"] = lg.max()
        an = looks[looks["state"] == "anomalous"]
        out["last_anomalous"] = an.groupby("farm_id")["date"].max()
    for col in ("first_clear", "last_clear", "last_anomalous"):
        if col not in out.columns:
            out[col] = pd.NaT
        out[col] = pd.to_datetime(out[col])
    if ids is not None:
        out = out.reindex(out.index.union(ids))
    out.index.name = "farm_id"
    return out.reset_index()[list(FARM_STATE_COLUMNS)]


def merge_state(old: pd.DataFrame, new: pd.DataFrame, d0: pd.Timestamp) -> pd.DataFrame:
    """Combine the stored state with the state of the rows dated ``d0`` or later.

    Observations are never removed (a later row of the same farm and date supersedes), so
    first and latest observation combine by min and max. A clear or anomalous look dated
    ``d0`` or later that the recomputation no longer produces must not survive: those
    fields of ``old`` count only when before ``d0`` (the caller fills the gaps).
    """
    o = old.set_index("farm_id")
    n = new.set_index("farm_id")
    idx = o.index.union(n.index)
    o, n = o.reindex(idx), n.reindex(idx)
    out = pd.DataFrame(index=idx)
    out["first_seen"] = np.fmin(pd.to_datetime(o["first_seen"]), pd.to_datetime(n["first_seen"]))
    newer = n["last_obs"].notna() & ~(pd.to_datetime(n["last_obs"]) < pd.to_datetime(o["last_obs"]))
    out["last_obs"] = pd.to_datetime(n["last_obs"]).where(newer, pd.to_datetime(o["last_obs"]))
    out["last_status"] = n["last_status"].where(newer, o["last_status"])
    before = {
        c: pd.to_datetime(o[c]).where(pd.to_datetime(o[c]) < d0) for c in FARM_STATE_COLUMNS[4:]
    }
    out["first_clear"] = before["first_clear"].fillna(pd.to_datetime(n["first_clear"]))
    for col in ("last_clear", "last_anomalous"):
        out[col] = pd.to_datetime(n[col]).fillna(before[col])
    out.index.name = "farm_id"
    return out.reset_index()[list(FARM_STATE_COLUMNS)]


def write_looks(
    txn: Any,
    store: Store,
    manifest: dict[str, Any],
    looks: pd.DataFrame,
    groups: pd.DataFrame,
    state: pd.DataFrame,
    *,
    d0: pd.Timestamp,
    full: bool,
    through: pd.Timestamp | None,
) -> None:
    """Put the looks of dates >= ``d0`` (all of them when ``full``), their group summary
    and the farm state into ``txn``.

    New dates after everything stored are appended; recomputed dates replace the months (and
    group rows) from ``d0`` on, so a look that is no longer produced does not survive.
    """
    # Each month is written from its row positions, slice by slice (Store._write_part): a
    # copy of a month's rows (100,000 farms x 8 dates: 220 MB for April) was the first
    # night's peak, on top of the look table it comes from.
    codes = (
        (looks["date"].dt.year * 100 + looks["date"].dt.month).to_numpy() if len(looks) else None
    )
    months = (
        {month_table(pd.Timestamp(f"{c // 100}-{c % 100:02d}-01")): c for c in np.unique(codes)}
        if codes is not None
        else {}
    )

    def month_pos(name: str) -> np.ndarray:
        if name not in months or codes is None:
            return np.zeros(0, dtype=np.intp)
        return np.flatnonzero(codes == months[name])

    existing = look_tables(manifest)
    append = not full and through is not None and d0 > through
    if full:
        for name in existing:
            if name not in months:
                txn.replace(name, looks.iloc[:0])
        for name in months:
            txn.replace(name, looks, rows=month_pos(name))
    elif append:
        for name in months:
            txn.append(name, looks, rows=month_pos(name))
    else:
        touched = {n for n in existing if _month_bounds(n)[1] > d0} | set(months)
        for name in sorted(touched):
            m0, _ = _month_bounds(name)
            old = read_looks(store, manifest, [(m0, d0)]) if name in existing else looks.iloc[:0]
            rows = looks.take(month_pos(name)).reset_index(drop=True)
            both = pd.concat([f for f in (old, rows) if len(f)] or [rows], ignore_index=True)
            del old, rows
            txn.replace(name, both)
            del both
    if full:
        txn.replace("look_groups", groups.reset_index(drop=True))
    elif append:
        txn.append("look_groups", groups.reset_index(drop=True))
    else:
        old = read_filtered(store, manifest, "look_groups", filters=[[("date", "<", d0)]])
        both = pd.concat([f for f in (old, groups) if len(f)] or [groups], ignore_index=True)
        txn.replace("look_groups", both)
    txn.replace("look_farms", state.reset_index(drop=True))
