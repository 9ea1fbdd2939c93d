"""The farm × date observations table: its columns, reading it from the store, exporting it."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .csvsafe import defuse_frame
from .errors import ConfigError, StoreError
from .indices import INDICES
from .store import Store, atomic_write_bytes

__all__ = ["BASE_COLUMNS", "export_observations", "observation_columns", "read_observations"]

BASE_COLUMNS = (
    "farm_id",
    "date",
    "item_id",
    "status",
    "clear_fraction",
    "clear_pixels",
    "water_fraction",
)


def observation_columns(indices: Sequence[str]) -> list[str]:
    """Columns of the observations table in contract order (design.md)."""
    cols = list(BASE_COLUMNS)
    for name in indices:
        cols += [f"{name}_mean", f"{name}_std"]
    return cols


def read_observations(workdir: str | os.PathLike[str]) -> pd.DataFrame:
    """All observations of a workdir, one row per farm and date, sorted, ``date`` as YYYY-MM-DD.

    Raises
    ------
    StoreError
        When the workdir holds no store (no run has completed a batch there).
    """
    store = Store(workdir)
    if not store.exists():
        raise StoreError(
            f"{workdir} holds no agrisat store; run `agrisat run` or `agrisat demo` first"
        )
    df = store.read("observations")
    if df.empty:
        return pd.DataFrame(columns=list(BASE_COLUMNS))
    present = [n for n in INDICES if f"{n}_mean" in df.columns]
    df = df[observation_columns(present)]
    return df.sort_values(["farm_id", "date"], kind="mergesort").reset_index(drop=True)


def export_observations(workdir: str | os.PathLike[str], out: str | os.PathLike[str]) -> int:
    """Write the observations to ``out`` (.csv or .parquet by suffix), atomically. Returns rows.

    In CSV, a text cell (a farm or item id) that a spreadsheet would run as a formula --
    starting with ``=``, ``+``, ``-``, ``@``, tab or CR and not a plain number -- gets a leading
    ``'`` (:mod:`agrisat.csvsafe`); numeric columns and Parquet keep their values exact.
    """
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ConfigError(f"--out {path}: use a .csv or .parquet file name")
    df = read_observations(workdir)
    buf = io.BytesIO()
    if suffix == ".csv":
        defuse_frame(df).to_csv(buf, index=False, float_format="%.6g")
    else:
        df.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())
    return len(df)
