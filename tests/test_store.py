from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pandas as pd
import pytest

from agrisat.errors import StoreError, WorkdirLockedError
from agrisat.store import Store


def _obs(farm: str, day: str, v: float) -> pd.DataFrame:
    return pd.DataFrame({"farm_id": [farm], "date": [day], "v": [v]})


def test_append_latest_row_per_key_wins(tmp_path: Path) -> None:
    s = Store(tmp_path)
    with s.transaction() as t:
        t.append(
            "observations", pd.concat([_obs("a", "2024-01-01", 1.0), _obs("b", "2024-01-01", 2.0)])
        )
    with s.transaction() as t:
        t.append("observations", _obs("a", "2024-01-01", 3.0))
    df = s.read("observations").set_index("farm_id")
    assert df.loc["a", "v"] == 3.0
    assert df.loc["b", "v"] == 2.0
    assert len(df) == 2


def test_rows_equal_to_an_earlier_part_still_win_when_appended_again(tmp_path: Path) -> None:
    # Parts are named by content: appending rows equal to an earlier part gives that part's
    # name. It must move to the end, or the rows appended in between (here 2.0) keep winning:
    # a farm redrawn and redrawn back kept its in-between polygon's values.
    s = Store(tmp_path)
    for v in (1.0, 2.0, 1.0):
        with s.transaction() as t:
            t.append("observations", _obs("a", "2024-01-01", v))
    assert s.read("observations")["v"].tolist() == [1.0]
    assert len(s.parts("observations")) == 2  # the same part, not a copy of it


def test_a_missing_part_names_the_file_and_what_to_do(tmp_path: Path) -> None:
    s = Store(tmp_path)
    with s.transaction() as t:
        t.append("observations", _obs("a", "2024-01-01", 1.0))
    (part,) = s.parts("observations", s.manifest())
    Path(part).unlink()  # deleted outside agrisat
    with pytest.raises(StoreError) as info:
        s.read("observations")
    msg = str(info.value)
    assert str(part) in msg and "'observations'" in msg
    assert "restore the workdir from a backup" in msg and "new workdir" in msg


def test_failed_transaction_commits_nothing(tmp_path: Path) -> None:
    s = Store(tmp_path)
    with s.transaction() as t:
        t.append("ledger", pd.DataFrame({"item_id": ["x"], "status": ["ingested"]}))
    before = s.manifest_path.read_bytes()
    with pytest.raises(RuntimeError), s.transaction() as t:
        t.append("ledger", pd.DataFrame({"item_id": ["y"], "status": ["ingested"]}))
        raise RuntimeError("killed mid-batch")
    assert s.manifest_path.read_bytes() == before
    assert list(s.read("ledger")["item_id"]) == ["x"]


def test_same_content_same_bytes(tmp_path: Path) -> None:
    a, b = Store(tmp_path / "a"), Store(tmp_path / "b")
    for s in (a, b):
        with s.transaction() as t:
            t.append("observations", _obs("a", "2024-01-01", 1.0))
    assert a.manifest_path.read_bytes() == b.manifest_path.read_bytes()
    parts_a = sorted(p.read_bytes() for p in (a.root / "observations").glob("*.parquet"))
    parts_b = sorted(p.read_bytes() for p in (b.root / "observations").glob("*.parquet"))
    assert parts_a == parts_b


def test_orphan_parts_are_collected(tmp_path: Path) -> None:
    s = Store(tmp_path)
    with s.transaction() as t:
        t.append("observations", _obs("a", "2024-01-01", 1.0))
    orphan = s.root / "observations" / "deadbeef.parquet"
    orphan.write_bytes(b"left by a crash")
    with s.transaction() as t:
        t.append("observations", _obs("b", "2024-01-01", 1.0))
    assert not orphan.exists()
    assert len(s.read("observations")) == 2


def test_corrupt_manifest_is_a_clear_error(tmp_path: Path) -> None:
    s = Store(tmp_path)
    s.root.mkdir(parents=True)
    s.manifest_path.write_text("{not json")
    with pytest.raises(StoreError, match="manifest"):
        s.read("observations")
    s.manifest_path.write_text(json.dumps({"format": 999, "tables": {}}))
    with pytest.raises(StoreError, match="format"):
        s.read("observations")


def _hold_lock(workdir: str, ready, release) -> None:  # type: ignore[no-untyped-def]
    with Store(workdir).lock():
        ready.set()
        release.wait(10)


def test_second_writer_is_refused(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    proc.start()
    try:
        assert ready.wait(30)
        with pytest.raises(WorkdirLockedError, match="another agrisat run"), Store(tmp_path).lock():
            pass
    finally:
        release.set()
        proc.join(10)
    with Store(tmp_path).lock():  # free again once the other process ends
        pass


def test_atomic_files_get_normal_permissions(tmp_path: Path) -> None:
    import os

    from agrisat.store import atomic_write_text

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "alerts.csv", "a,b\n")
    finally:
        os.umask(old)
    assert path.read_text() == "a,b\n"
    assert (path.stat().st_mode & 0o777) == 0o644  # not mkstemp's 0600: exports are shared
    assert list(tmp_path.iterdir()) == [path]  # no temporary left behind


def test_frame_fingerprint_sees_every_kind_of_change() -> None:
    import geopandas as gpd
    from shapely.geometry import box

    from agrisat.store import frame_fingerprint

    base = gpd.GeoDataFrame(
        {"farm_id": ["a", "b"], "exposure": [1.0, 2.0]},
        geometry=[box(0, 0, 1, 1), box(2, 2, 3, 3)],
        crs="EPSG:4326",
    )
    fp = frame_fingerprint(base)
    assert frame_fingerprint(base.copy()) == fp
    moved = base.copy()
    moved.loc[1, "geometry"] = box(2, 2, 3, 3.000001)
    value = base.copy()
    value.loc[0, "exposure"] = 1.5
    renamed = base.rename(columns={"exposure": "amount"})
    other_crs = base.set_crs("EPSG:3857", allow_override=True)
    changed = [moved, value, renamed, other_crs, base.iloc[:1]]
    prints = {frame_fingerprint(df) for df in changed}
    assert fp not in prints and len(prints) == len(changed)


def test_staged_parts_are_invisible_until_commit_and_collected_if_never_committed(
    tmp_path: Path,
) -> None:
    from agrisat.store import Transaction

    s = Store(tmp_path)
    with s.transaction() as t:
        t.append("observations", _obs("a", "2024-01-01", 1.0))
    before = s.manifest_path.read_bytes()
    txn = Transaction(staging=s)
    txn.append("observations", _obs("b", "2024-01-01", 2.0))
    txn.append("observations", _obs("a", "2024-01-01", 3.0))  # supersedes a's first row
    txn.replace("looks", _obs("c", "2024-01-02", 4.0))
    # written already (the frames need not be kept), but no reader sees them
    assert all(isinstance(p, str) for p in txn.appends["observations"])
    assert len(list((s.root / "observations").glob("*.parquet"))) == 3
    assert s.manifest_path.read_bytes() == before
    assert list(s.read("observations")["farm_id"]) == ["a"] and s.read("looks").empty
    s.commit(txn)
    obs = s.read("observations").set_index("farm_id")["v"]
    assert obs.to_dict() == {"a": 3.0, "b": 2.0}
    assert s.read("looks")["farm_id"].tolist() == ["c"]
    # a staged transaction that never commits (killed) leaves parts the next commit removes
    dead = Transaction(staging=s)
    dead.replace("looks", _obs("z", "2030-01-01", 9.0))
    assert len(list((s.root / "looks").glob("*.parquet"))) == 2
    with s.transaction() as t:
        t.append("observations", _obs("d", "2024-01-01", 5.0))
    assert len(list((s.root / "looks").glob("*.parquet"))) == 1
    assert s.read("looks")["farm_id"].tolist() == ["c"]
