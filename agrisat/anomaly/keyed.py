"""Lookups on integer-coded keys: the groupby, merge and ``merge_asof`` of the per-look
features without pandas hashing every row's strings again.

At 100,000 farms x 8 dates (586,000 looks) a ``merge_asof`` by crop, region and peer level
cost ~0.13 s and a grouping by crop, region and date ~0.04 s, each several times a night;
the same on integer codes of the keys, found once per column, costs a fraction of that. The
functions here return what the pandas calls they stand in for return (same rows, same
values); where a key is missing (NaN) they return ``None`` and the caller takes pandas' path,
whose rules for missing keys they do not copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["asof_backward", "first_rows", "joint_codes", "nanos"]


def joint_codes(columns: Sequence[Sequence[pd.Series]]) -> list[np.ndarray] | None:
    """One integer code per distinct combination of key values, for the rows of several
    tables at once.

    ``columns[i]`` lists table ``i``'s key columns (the same keys, in the same order, for
    every table). Equal codes mean equal keys across all the tables; the codes are
    non-negative but not dense and say nothing about order. ``None`` when a key value is
    missing.
    """
    sizes = [len(cols[0]) if len(cols) else 0 for cols in columns]
    bounds = np.cumsum([0, *sizes])
    combined = np.zeros(int(bounds[-1]), dtype=np.int64)
    span = 1  # combined < span
    for k in range(len(columns[0])):
        parts = [cols[k] for cols in columns]
        values = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        code, uniq = pd.factorize(values)
        if code.size and code.min() < 0:
            return None
        width = max(len(uniq), 1)
        if span * width >= 2**62:  # re-densify first: the product would overflow
            combined, dense = pd.factorize(combined)
            span = max(len(dense), 1)
        combined = combined * width + code
        span *= width
    return [combined[bounds[i] : bounds[i + 1]] for i in range(len(columns))]


def first_rows(key: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Positions (ascending) of the first row of each distinct ``key`` x ``time`` pair, the
    rows ``drop_duplicates`` keeps (non-negative integer keys, int64 times)."""
    tcode, times = pd.factorize(time)
    width = max(len(times), 1)
    if key.size and int(key.max()) >= 2**62 // width:
        key = pd.factorize(key)[0]
    pair = pd.factorize(key * width + tcode)[0]
    # codes are numbered in order of first appearance: a pair's first row is where their
    # running maximum grows
    top = np.maximum.accumulate(pair) if pair.size else pair
    return np.flatnonzero(np.diff(top, prepend=-1) > 0)


def nanos(dates: pd.Series | pd.Index) -> np.ndarray:
    """Datetimes as int64 nanoseconds (NaT: the int64 minimum)."""
    return pd.to_datetime(dates).to_numpy(dtype="datetime64[ns]").view(np.int64)


def asof_backward(
    table_key: np.ndarray,
    table_time: np.ndarray,
    table_value: np.ndarray,
    query_key: np.ndarray,
    query_time: np.ndarray,
    tolerance: int | None,
) -> np.ndarray | None:
    """Per query, the value of the table row of the same key with the latest time at or
    before the query's, at most ``tolerance`` earlier (NaN when there is none): a backward
    ``merge_asof`` by key on a table with one row per key and time (``None`` if not).

    Times are int64 (:func:`nanos`); a query time of NaT matches nothing.
    """
    out = np.full(query_key.size, np.nan)
    if not table_key.size or not query_key.size:
        return out
    # times as ranks among the table's distinct times: key x rank fits one int64
    times = np.unique(table_time)
    m = times.size + 1
    tkey = table_key * m + np.searchsorted(times, table_time)
    order = np.argsort(tkey, kind="stable")
    tkey = tkey[order]
    if tkey.size > 1 and (np.diff(tkey) == 0).any():
        return None  # several rows per key and time: merge_asof's tie rule applies
    nat = query_time == np.iinfo(np.int64).min
    rank = np.searchsorted(times, query_time, "right") - 1  # latest table time <= query
    pos = np.searchsorted(tkey, query_key * m + rank, "right") - 1
    ok = (pos >= 0) & (rank >= 0) & ~nat
    pos = np.where(ok, pos, 0)
    hit = order[pos]
    ok &= table_key[hit] == query_key
    if tolerance is not None:
        ok &= query_time - table_time[hit] <= tolerance
    out[ok] = table_value[hit[ok]]
    return out
