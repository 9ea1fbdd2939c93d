"""What a run's process does besides its work: no ``distributed`` import on local threads, an
unchanged book not written again on the night after its check, a quick but complete exit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import dask
import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from agrisat.book import load_book
from agrisat.book.cache import load_book_cached
from agrisat.pipeline import run
from agrisat.scheduler import threads_unless_client
from agrisat.store import Store, Transaction, frame_fingerprint
from agrisat.testing import strip_archive

X0, Y0 = 600000.0, 4040000.0


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _archive(root: Path) -> tuple[Path, Path]:
    arc = strip_archive(root, dates=[f"2026-05-{d:02d}" for d in (1, 6, 11)])
    return Path(arc.book), Path(arc.catalog)


@pytest.mark.parametrize("epsg", [4326, 32650])
def test_a_cached_book_has_the_fingerprint_of_a_fresh_check(tmp_path: Path, epsg: int) -> None:
    # GeoParquet reads the CRS back as PROJJSON; the store's farms fingerprint hashes the
    # CRS's text, so a cached book looked changed and its farms were written again
    x, y = (116.5, 36.5) if epsg == 4326 else (X0, Y0)
    d = 0.001 if epsg == 4326 else 100.0
    book = gpd.GeoDataFrame(
        {
            "farm_id": ["A", "B"],
            "loan_id": ["L1", "L2"],
            "borrower_id": ["B1", "B2"],
            "crop": ["maize", "maize"],
            "exposure": [1000.0, 2000.0],
        },
        geometry=[box(x, y, x + d, y + d), box(x + 2 * d, y, x + 3 * d, y + d)],
        crs=f"EPSG:{epsg}",
    )
    path = tmp_path / "book.parquet"
    book.to_parquet(path)
    fresh = load_book(path)
    first = load_book_cached(path, tmp_path / "cache")  # checks and stores
    cached = load_book_cached(path, tmp_path / "cache")  # reads the stored checks
    assert (tmp_path / "cache").is_dir()
    assert str(cached.gdf.crs) == str(fresh.gdf.crs)
    assert frame_fingerprint(cached.gdf) == frame_fingerprint(fresh.gdf)
    assert frame_fingerprint(first.gdf) == frame_fingerprint(fresh.gdf)


def test_the_night_after_a_check_keeps_the_stored_farms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book, catalog = _archive(tmp_path / "a")
    workdir = tmp_path / "w"
    run(book, str(catalog), workdir, detect=False)  # checks the book, stores farms
    assert Store(workdir).parts("farms")
    replaced: list[str] = []
    plain = Transaction.replace

    def spy(self: Transaction, name: str, *args: Any, **kw: Any) -> Any:
        replaced.append(name)
        return plain(self, name, *args, **kw)

    monkeypatch.setattr(Transaction, "replace", spy)
    run(book, str(catalog), workdir, detect=False)  # the book's checks come from the cache
    assert "farms" not in replaced


def test_local_threads_do_not_import_distributed() -> None:
    # dask resolves a scheduler *name* by importing distributed to look for a client
    # (0.15 s CPU and 12 MB): the threaded scheduler is named by its function instead
    done = _python(
        """
        import sys
        import dask
        from agrisat.scheduler import scheduler, threads_unless_client

        total = dask.delayed(sum)([1, 2, 3])
        with scheduler(None, {}, farms=10):
            assert dask.compute(total) == (6,)
        with threads_unless_client():  # nothing chosen, no client possible: threads
            assert dask.config.get("scheduler") is dask.threaded.get
            assert dask.compute(total) == (6,)
        print("distributed" in sys.modules)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_chosen_scheduler_is_left_alone() -> None:
    calls: list[int] = []

    def counting(dsk: Any, keys: Any, **kw: Any) -> Any:
        calls.append(1)
        return dask.get(dsk, keys)

    with dask.config.set(scheduler=counting), threads_unless_client():
        assert dask.compute(dask.delayed(np.add)(1, 2)) == (3,)
    assert calls == [1]
    pytest.importorskip("distributed")  # imported: an analyst's client may exist, dask decides
    with threads_unless_client():
        assert dask.config.get("scheduler", None) is None


def test_exit_now_keeps_output_logs_and_exit_handlers(tmp_path: Path) -> None:
    # the console script skips the interpreter's teardown, not what a normal exit promises
    log, mark = tmp_path / "run.log", tmp_path / "atexit"
    done = _python(
        """
        import atexit, logging, pathlib, sys
        from agrisat._exit import exit_now

        log, mark = sys.argv[1:3]
        logging.basicConfig(filename=log, level=logging.INFO, force=True)
        logging.getLogger("agrisat.x").info("logged %d", 7)
        atexit.register(lambda: pathlib.Path(mark).write_text("ran"))
        sys.stdout.write("no newline yet")  # buffered: lost unless flushed
        exit_now(3)
        """,
        str(log),
        str(mark),
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == "no newline yet"
    assert mark.read_text() == "ran"
    assert "logged 7" in log.read_text()


def test_a_run_as_a_process_ends_cleanly_without_distributed(tmp_path: Path) -> None:
    book, catalog = _archive(tmp_path / "a")
    seen = tmp_path / "seen.json"
    done = _python(
        """
        import atexit, json, sys
        from agrisat.cli import main

        seen = sys.argv[1]
        atexit.register(
            lambda: open(seen, "w").write(json.dumps("distributed" in sys.modules))
        )
        sys.argv = ["agrisat", "run", *sys.argv[2:]]
        main()
        """,
        str(seen),
        "--book",
        str(book),
        "--catalog",
        str(catalog),
        "--workdir",
        str(tmp_path / "w"),
        "--end",
        "2026-05-11",
    )
    assert done.returncode == 0, done.stderr
    assert "observations added 12" in done.stdout  # 4 farms x 3 dates, summary printed
    assert json.loads(seen.read_text()) is False  # ingestion and detection on threads
    assert len(Store(tmp_path / "w").read("runs")) == 1
