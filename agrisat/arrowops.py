"""Fast membership tests on string columns (farm ids), through Arrow's hash lookup.

pandas' ``isin`` on Arrow-backed strings first turns the values into a Python list; with
100,000 farm ids against 800,000 rows that costs ~0.35 s a call, where Arrow's own
``is_in`` costs ~0.02 s. Detection calls it several times a night.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["isin"]


def isin(column: pd.Series | pd.Index, values: Iterable[Any]) -> np.ndarray:
    """``column.isin(values)`` as a numpy bool array (same answer, faster for strings)."""
    if not pd.api.types.is_string_dtype(column.dtype):
        return np.asarray(column.isin(list(values) if isinstance(values, set) else values))
    vals = np.asarray(
        list(values) if isinstance(values, (set, frozenset, dict)) else values, dtype=object
    )
    if not all(isinstance(v, str) for v in vals):
        return np.asarray(column.isin(vals))  # missing or non-text values: pandas' rules
    arr = pa.array(np.asarray(column, dtype=object)) if column.dtype == object else pa.array(column)
    if arr.null_count or (
        not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type)
    ):
        return np.asarray(column.isin(vals))
    found = pc.is_in(arr, value_set=pa.array(vals, type=arr.type))
    return found.to_numpy(zero_copy_only=False).astype(bool, copy=False)
