"""A full recomputation's looks staged partition by partition, and reading staged tables.

Split from :mod:`agrisat.lookrun`: :func:`stage_full` computes every look from scratch a farm
partition at a time (:func:`agrisat.anomaly.firstnight.partitioned_looks`) and stages each
partition's rows in the detection transaction before making the next, so a first night holds
one partition's looks, not the table of every farm;
:meth:`agrisat.store.Transaction.staged_manifest` lets the alert lifecycle read them back
before the commit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .anomaly.firstnight import look_base, partitioned_looks
from .anomaly.incremental import group_summary
from .config import Settings
from .looklast import LAST_TABLE, empty_last, latest_per_farm, next_last
from .looks import farm_state, look_tables, month_table, read_filtered, write_looks
from .store import Store, Transaction

__all__ = ["OBS_KEYS", "LookAppender", "merge_groups", "obs_columns", "stage_full"]

OBS_KEYS: tuple[str, ...] = ("farm_id", "date")


#: Observation columns detection never reads (the look table is built from the others).
_UNREAD = ("item_id", "clear_pixels")


def obs_columns(store: Store, manifest: dict[str, Any]) -> list[str] | None:
    """The observation columns detection reads: all but the item ids, pixel counts and the
    per-index standard deviations (at 800,000 observations the item-id strings alone are a
    fifth of the table, and ``clear_looks`` copies every column it is given)."""
    import pyarrow.parquet as pq

    parts = store.parts("observations", manifest)
    if not parts:
        return None
    names: list[str] = []
    for path in parts:  # parts written by different runs may carry different indices
        names += [n for n in pq.read_schema(path).names if n not in names]
    return [n for n in names if n not in _UNREAD and not n.endswith("_std")]


def stage_full(
    txn: Transaction,
    store: Store,
    manifest: dict[str, Any],
    farms: pd.DataFrame,
    settings: Settings,
    calendars: Any,
    *,
    until: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, int, pd.Timestamp | None]:
    """Compute every look from scratch (of dates <= ``until``) and put them, their group
    summary and the farm state into ``txn``, as :func:`agrisat.looks.write_looks` does with
    ``full`` for :func:`full_looks`' table; returns (the farm state, the number of looks, the
    latest observation date).

    The looks are made a partition of farms at a time
    (:func:`agrisat.anomaly.firstnight.partitioned_looks`) and each partition's rows are
    staged in the month tables (the first replacing, the next appending) before the next is
    made: the night holds one partition's looks, not the table of every farm (at 100,000
    farms x 8 dates, ~300 MB). Read the staged tables back with
    :meth:`agrisat.store.Transaction.staged_manifest`.
    """
    s = settings.detect
    filters = [[("date", "<=", f"{until:%Y-%m-%d}")]] if until is not None else None
    obs = read_filtered(
        store, manifest, "observations", filters=filters, columns=obs_columns(store, manifest),
        keys=OBS_KEYS,
    )  # fmt: skip
    obs = obs.assign(date=pd.to_datetime(obs["date"]).dt.normalize())
    through = obs["date"].max() if len(obs) else None
    base = look_base(obs, farms, settings=s)
    seen = obs[["farm_id", "date", "status"]]  # what the farm state reads of them
    del obs
    if base.empty:  # no clear look at all (``full_looks`` returns this empty frame)
        state = farm_state(seen, base)
        write_looks(
            txn, store, manifest, base, group_summary(base), state,
            d0=pd.Timestamp("1900-01-01"), full=True, through=None,
        )  # fmt: skip
        txn.replace(LAST_TABLE, empty_last())
        return state, 0, through
    months = np.unique((base["date"].dt.year * 100 + base["date"].dt.month).to_numpy())
    names = {int(c): month_table(pd.Timestamp(f"{c // 100}-{c % 100:02d}-01")) for c in months}
    del months
    staged: set[str] = set()
    groups, states, lasts, n = [], [], [], 0
    for part in partitioned_looks(base, farms, settings=s, calendars=calendars):
        if not staged:  # stored months the recomputation has no look in: emptied
            for name in look_tables(manifest):
                if name not in names.values():
                    txn.replace(name, part.iloc[:0])
        codes = (part["date"].dt.year * 100 + part["date"].dt.month).to_numpy()
        for code, name in names.items():
            rows = np.flatnonzero(codes == code)
            if not len(rows):
                continue
            (txn.append if name in staged else txn.replace)(name, part, rows=rows)
            staged.add(name)
        groups.append(group_summary(part))
        states.append(part[["farm_id", "date", "state"]])
        lasts.append(latest_per_farm(part))
        n += len(part)
        del part, codes
    del base
    txn.replace("look_groups", merge_groups(groups))
    state = farm_state(seen, pd.concat(states, ignore_index=True))
    txn.replace("look_farms", state)
    # partitions hold disjoint farms: each farm's latest look is its partition's
    txn.replace(LAST_TABLE, next_last(empty_last(), pd.concat(lasts, ignore_index=True)))
    return state, n, through


def merge_groups(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """:func:`group_summary` of the partitions' looks together from theirs: a group's first
    known median (partitions in farm order, as the one-pass summary takes it) and the sum of
    its looks."""
    if len(parts) == 1:
        return parts[0].reset_index(drop=True)
    both = pd.concat(parts, ignore_index=True)
    g = both.groupby(["crop", "region", "date", "peer_level"], sort=True)
    out = g[["peer_median"]].first().reset_index()
    out["n_looks"] = g["n_looks"].sum().to_numpy()
    return out[list(both.columns)]


class LookAppender:
    """Appends partitions of new looks (dates after every stored look) to their month
    tables in ``txn`` as they are made, as :func:`agrisat.looks.write_looks` appends a
    whole table of them: partitions in farm order give the same rows in the same order."""

    def __init__(self, txn: Transaction) -> None:
        self.txn = txn

    def __call__(self, part: pd.DataFrame) -> None:
        """Stage ``part``'s rows, month by month."""
        codes = (part["date"].dt.year * 100 + part["date"].dt.month).to_numpy()
        for code in np.unique(codes):
            name = month_table(pd.Timestamp(f"{code // 100}-{code % 100:02d}-01"))
            self.txn.append(name, part, rows=np.flatnonzero(codes == code))
