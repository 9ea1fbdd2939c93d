"""A staging transaction's tables read back before the commit (``Transaction.staged_manifest``)
are what the commit then stores."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agrisat.store import Store, Transaction


def test_staged_manifest_reads_what_the_commit_stores(tmp_path: Path) -> None:
    store = Store(tmp_path / "w")
    with store.transaction() as txn:
        txn.append("observations", pd.DataFrame({"farm_id": ["a"], "date": ["2026-01-01"]}))
        txn.replace("old", pd.DataFrame({"x": [1, 2]}))
    before = store.manifest()
    txn = Transaction(staging=store)
    txn.append("observations", pd.DataFrame({"farm_id": ["b"], "date": ["2026-01-02"]}))
    txn.replace("old", pd.DataFrame({"x": [3]}))
    txn.replace("new", pd.DataFrame({"y": ["z"]}))
    staged = txn.staged_manifest(before)
    assert store.manifest() == before  # nothing committed yet
    assert staged["meta"] == before["meta"]
    assert staged["tables"]["observations"][0] == before["tables"]["observations"][0]
    assert len(staged["tables"]["observations"]) == 2
    got = {t: store.read(t, manifest=staged) for t in ("observations", "old", "new")}
    assert got["observations"]["farm_id"].tolist() == ["a", "b"]
    assert got["old"]["x"].tolist() == [3] and got["new"]["y"].tolist() == ["z"]
    store.commit(txn)
    committed = store.manifest()
    assert committed["tables"] == staged["tables"]
    for t, df in got.items():
        pd.testing.assert_frame_equal(store.read(t), df, check_exact=True)
