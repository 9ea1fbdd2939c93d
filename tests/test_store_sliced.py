"""The store's row-group-sliced Parquet writes (large parts) and row-position writes."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import agrisat.store as store_mod
from agrisat.store import Store, Transaction, _write_parquet


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    hazard = np.array(["none", "drought", "flood"], dtype=object)[rng.integers(0, 3, n)]
    onset = pd.Series(pd.to_datetime("2026-04-01") + pd.to_timedelta(rng.integers(0, 30, n), "D"))
    return pd.DataFrame(
        {
            "farm_id": [f"f{i:05d}" for i in range(n)],
            "date": pd.to_datetime("2026-04-01") + pd.to_timedelta(np.arange(n) % 30, "D"),
            "value": rng.normal(0.5, 0.1, n),
            "score": np.where(rng.random(n) < 0.5, np.nan, rng.random(n)),
            "hazard": hazard,
            # a column that is all-missing in the first slices: one schema must hold for all
            "note": pd.Series([None] * (n - 3) + ["a", "b", "c"], dtype=object),
            "onset": onset.where(rng.random(n) < 0.3),
            "confirmed": rng.random(n) < 0.1,
            "run_looks": rng.integers(0, 5, n),
        }
    )


def test_sliced_write_reads_back_as_the_one_shot_write(tmp_path: Path) -> None:
    df = _frame(1000)
    one, sliced = tmp_path / "one.parquet", tmp_path / "sliced.parquet"
    df.to_parquet(one, index=False, compression="zstd", engine="pyarrow")
    _write_parquet(df, sliced, slice_rows=128)
    import pyarrow.parquet as pq

    assert pq.ParquetFile(sliced).metadata.num_row_groups == 8  # 1000 rows in slices of 128
    pd.testing.assert_frame_equal(pd.read_parquet(sliced), pd.read_parquet(one))


def test_row_positions_write_the_rows_taken(tmp_path: Path) -> None:
    df = _frame(700)
    rows = np.flatnonzero(df["hazard"].to_numpy() != "none")
    got = tmp_path / "rows.parquet"
    _write_parquet(df, got, rows=rows, slice_rows=100)
    want = df.iloc[rows].reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.read_parquet(got), pd.read_parquet(_buffer(want)))


def _buffer(df: pd.DataFrame) -> io.BytesIO:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, compression="zstd", engine="pyarrow")
    buf.seek(0)
    return buf


def test_small_frame_bytes_are_those_of_to_parquet(tmp_path: Path) -> None:
    # parts at most one slice long keep the bytes (and content names) written before slicing
    df = _frame(50)
    got = tmp_path / "a.parquet"
    _write_parquet(df, got)
    assert got.read_bytes() == _buffer(df).getvalue()


def test_sliced_part_names_are_deterministic(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(
        store_mod._write_parquet, "__kwdefaults__", {"rows": None, "slice_rows": 64}
    )
    df = _frame(500)
    rows = np.arange(0, 500, 2)
    names = []
    for k in range(2):
        s = Store(tmp_path / f"s{k}")
        names.append(s._write_part("looks_202604", df, rows=rows))
        # the same rows given as a copied frame: same bytes, same name
        names.append(s._write_part("looks_202604", df.iloc[rows].reset_index(drop=True)))
    assert len(set(names)) == 1
    blob = (tmp_path / "s0" / "store" / names[0]).read_bytes()
    assert names[0].endswith(hashlib.sha256(blob).hexdigest()[:24] + ".parquet")


def test_staged_rows_commit_and_read_back(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(
        store_mod._write_parquet, "__kwdefaults__", {"rows": None, "slice_rows": 64}
    )
    s = Store(tmp_path)
    df = _frame(300)
    rows = np.flatnonzero(df["confirmed"].to_numpy() | (df["run_looks"].to_numpy() > 2))
    txn = Transaction(staging=s)
    txn.replace("looks_202604", df, rows=rows)
    s.commit(txn)
    want = df.iloc[rows].reset_index(drop=True)
    pd.testing.assert_frame_equal(s.read("looks_202604"), pd.read_parquet(_buffer(want)))
    # an in-memory transaction takes the same rows
    mem = Transaction()
    mem.append("looks_202605", df, rows=rows[:10])
    s.commit(mem)
    pd.testing.assert_frame_equal(s.read("looks_202605"), pd.read_parquet(_buffer(want.iloc[:10])))


def test_crash_mid_sliced_write_leaves_the_store_as_before(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    s = Store(tmp_path)
    with s.transaction() as t:
        t.replace("looks_202604", _frame(40))
    before = s.read("looks_202604")
    manifest = s.manifest_path.read_bytes()
    import pyarrow.parquet as pq

    real = pq.ParquetWriter.write_table
    calls = {"n": 0}

    def dying(self, table, *a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:  # two row groups are on disk when the write dies
            raise OSError("disk died")
        return real(self, table, *a, **k)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", dying)
    monkeypatch.setattr(
        store_mod._write_parquet, "__kwdefaults__", {"rows": None, "slice_rows": 64}
    )
    txn = Transaction(staging=s)
    with pytest.raises(OSError, match="disk died"):
        txn.replace("looks_202604", _frame(500))
    assert calls["n"] == 3
    assert s.manifest_path.read_bytes() == manifest
    pd.testing.assert_frame_equal(s.read("looks_202604"), before)
    assert not list((s.root / "looks_202604").glob(".*tmp*"))  # the temporary file is gone
