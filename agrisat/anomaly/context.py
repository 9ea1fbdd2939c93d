"""The persisted context an incremental night reads: column sets, windows as sources.

Split from :mod:`.incremental` so that :mod:`.partition` (the per-farm passes) and it share
them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Union

import numpy as np
import pandas as pd

from ..arrowops import isin

__all__ = [
    "GAP_COLUMNS",
    "GROUP_COLUMNS",
    "HISTORY_COLUMNS",
    "LAST_COLUMNS",
    "OWN_COLUMNS",
    "RECENT_COLUMNS",
    "ContextSource",
    "LookContext",
    "context_part",
    "dated",
]

#: A context window: the looks in memory (cut per partition), or a reader called with a
#: partition's farm ids and the columns wanted (the store's ``read_looks`` with a farm
#: filter): the night then holds one partition's window at a time.
ContextSource = Union[pd.DataFrame, Callable[[list[str], tuple[str, ...]], pd.DataFrame]]  # noqa: UP007

#: Columns of the per-date peer-group summary (one row per crop x region x date x level).
GROUP_COLUMNS: tuple[str, ...] = ("crop", "region", "date", "peer_level", "peer_median", "n_looks")
#: Columns of a farm's latest earlier look that the new looks continue from.
LAST_COLUMNS: tuple[str, ...] = (
    "farm_id", "date", "value", "season_id", "season_key", "season_max", "peer_season_run",
    "first_date",
    "state", "run_looks", "onset", "run_hazard", "radius_median",
)  # fmt: skip
#: Columns of the persisted looks read for own history and for the standing change.
HISTORY_COLUMNS: tuple[str, ...] = (
    "farm_id", "date", "value", "water_fraction", "prev_value", "prev_date", "peer_median",
    "peer_level",
)  # fmt: skip
#: Of those, what own history reads (the peer columns feed the usual peer gap)
OWN_COLUMNS: list[str] = ["farm_id", "date", "value", "water_fraction", "prev_value", "prev_date"]
GAP_COLUMNS: list[str] = ["farm_id", "date", "value", "peer_median", "peer_level"]
RECENT_COLUMNS: tuple[str, ...] = (
    "farm_id", "date", "crop", "region", "value", "moist", "peer_median", "peer_moist",
    "peer_level", "radius_median",
)  # fmt: skip


@dataclass
class LookContext:
    """Persisted looks (dates before ``d0``) the looks of the new dates depend on."""

    #: looks of earlier years near the new dates' day of year (:data:`HISTORY_COLUMNS`), or
    #: a reader of them for a partition's farms (see :data:`ContextSource`)
    history: ContextSource
    #: the farms' look rows of the days before ``d0`` that the standing change, the peer
    #: lags and the detectors' carry look back over, or a reader
    recent: ContextSource
    #: each farm's latest look before ``d0`` (:data:`LAST_COLUMNS`)
    last: pd.DataFrame
    #: peer-group summary rows before ``d0`` (:data:`GROUP_COLUMNS`): the lag window and the
    #: dates of ``last``
    groups: pd.DataFrame


def context_part(
    source: ContextSource, farms: Iterable[str], columns: tuple[str, ...]
) -> pd.DataFrame:
    """The rows of a context window for ``farms``: read through the source's reader, or cut
    from the window in memory (every column kept, in the window's order)."""
    # one conversion of an id array to Python strings (iterating Arrow-backed ids one by
    # one cost ~0.7 us each, three times per partition)
    vals = farms if isinstance(farms, (list, set, tuple)) else np.asarray(farms, dtype=object)
    ids = list(dict.fromkeys(map(str, vals.tolist() if isinstance(vals, np.ndarray) else vals)))
    if callable(source):
        return source(ids, columns)
    if not len(source):
        return source
    return source[isin(source["farm_id"], ids)]


def dated(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """``df`` with ``columns`` (missing ones NaN; an empty read has no dtypes) and its date
    columns as timestamps, so it concatenates with computed looks without turning them into
    objects."""
    if all(c in df.columns for c in columns):
        out = df.copy(deep=False)  # columns are read by name: no copy of a large window
    else:
        out = df.reindex(columns=list(dict.fromkeys([*columns, *df.columns])))
    for col in ("date", "onset", "first_date", "prev_date"):
        if col in out.columns:
            out[col] = pd.to_datetime(out[col])
    for col in ("value", "water_fraction", "moist", "peer_median", "peer_moist", "radius_median",
                "prev_value"):  # fmt: skip
        if col in out.columns:
            out[col] = out[col].astype(float)
    return out
