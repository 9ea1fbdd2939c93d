"""The observations of each step of a long recomputation, split from the store in one pass.

A step of a full recomputation (:func:`agrisat.lookrun.commit_prefix`) reads the observations
of its dates. The observation parts are sorted by farm, so a date filter skips no row group:
every step decoded the whole table (60,000 farms x 3 years: 3.4 s a step, 75 steps). Here
each part is read once, row group by row group, and each row is written to its step's file
(one per step and part, in the part's row order); a step then reads its files as
:func:`agrisat.looks.read_filtered` reads the parts with the step's date filter, and gets
the same frame. :func:`date_steps` cuts the history into those steps (moved here from
:mod:`agrisat.lookrun`, which re-exports it).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import unreadable_part
from .scratch import scratch_dir
from .store import Store

__all__ = ["StepObservations", "date_steps"]

log = logging.getLogger(__name__)


class StepObservations:
    """Observation rows of ``steps`` (``[lo, hi]`` dates, inclusive), split once.

    Use as a context manager (the split files live in a temporary folder of the workdir,
    removed on exit). :meth:`read` returns None for a step it cannot serve exactly (a part
    whose ``date`` column is not text, a step without rows): the caller reads the store.
    """

    def __init__(
        self,
        store: Store,
        manifest: dict[str, Any],
        steps: list[tuple[pd.Timestamp, pd.Timestamp]],
        *,
        columns: list[str] | None,
        keys: tuple[str, ...],
    ) -> None:
        self.store, self.manifest, self.keys = store, manifest, keys
        self.bounds = [(f"{lo:%Y-%m-%d}", f"{hi:%Y-%m-%d}") for lo, hi in steps]
        self.columns = columns
        self.dir: Path | None = None
        self.files: dict[int, list[Path]] = {}
        self.ok = True

    def __enter__(self) -> StepObservations:
        # in the workdir, beside the store (whose garbage collection deletes part files
        # that no manifest references); rows of borrowers' farms: a run killed outright
        # leaves its folder to the next one to remove (agrisat.scratch)
        self.dir = scratch_dir(self.store.workdir, ".detect-steps-")
        try:
            self._split()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _split(self) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        assert self.dir is not None
        for i, path in enumerate(self.store.parts("observations", self.manifest)):
            try:
                pf = pq.ParquetFile(path)
                schema = pf.schema_arrow
                names = list(schema.names)
                if self.columns is not None:
                    names = [c for c in self.columns if c in schema.names]
                if not names:
                    continue
                if "date" not in schema.names or not (
                    pa.types.is_string(schema.field("date").type)
                    or pa.types.is_large_string(schema.field("date").type)
                ):
                    self.ok = False  # the filter's comparison rules are not string order
                    return
                target = pa.schema([schema.field(n) for n in names], metadata=schema.metadata)
                writers: dict[int, Any] = {}
                for g in range(pf.num_row_groups):
                    table = pf.read_row_group(g, columns=list(dict.fromkeys([*names, "date"])))
                    step = self._steps_of(pc, pa, table["date"])
                    table = table.select(names)
                    for k in np.unique(step[step >= 0]).tolist():
                        if k not in writers:
                            out = self.dir / f"{k:05d}-{i:04d}.parquet"
                            writers[k] = pq.ParquetWriter(out, target)
                            self.files.setdefault(k, []).append(out)
                        writers[k].write_table(table.filter(pa.array(step == k)))
                    del table, step
                for w in writers.values():
                    w.close()
            except (OSError, ValueError) as exc:
                raise unreadable_part(path, "observations", exc) from None
        log.info("observations split into %d steps", len(self.files))

    def _steps_of(self, pc: Any, pa: Any, dates: Any) -> np.ndarray:
        """Each row's step (-1: none): a date string's step is the one whose bounds hold it
        by the filters' comparisons (``lo <= date <= hi``; string order is UTF-8 byte
        order, Python's code point order)."""
        uniq = pc.unique(dates).to_pylist()
        of = np.full(len(uniq) + 1, -1, dtype=np.int64)  # the last slot: missing dates
        for j, d in enumerate(uniq):
            if d is None:
                continue
            for k, (lo, hi) in enumerate(self.bounds):
                if lo <= d <= hi:
                    of[j] = k
                    break
        pos = pc.index_in(dates, value_set=pa.array(uniq, type=dates.type))
        pos = pos.fill_null(len(uniq)).to_numpy(zero_copy_only=False)
        return of[pos]

    def read(self, k: int) -> pd.DataFrame | None:
        """The observations of step ``k`` as the store's filtered read gives them (None: read
        the store instead)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.ok or not self.files.get(k):
            return None
        frames = [pq.read_table(p).to_pandas() for p in self.files[k]]
        pa.default_memory_pool().release_unused()
        frames = [f for f in frames if len(f)] or frames[:1]
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if len(frames) > 1:
            df = df.drop_duplicates(list(self.keys), keep="last").reset_index(drop=True)
        for p in self.files.pop(k):  # each step is read once: its disk space back now
            p.unlink(missing_ok=True)
        return df


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
    rows, a step bounds the night's memory whatever the number of farms (each step reads its
    farms' context once, a farm partition at a time, and stages each partition's looks as
    made: shorter steps cost time, not correctness). The first step is computed from scratch
    (:func:`agrisat.lookstage.stage_full`), lighter per row than a later step: it gets its
    own, larger budget.
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
            raise unreadable_part(path, "observations", exc) from None
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
