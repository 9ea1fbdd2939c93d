"""The book's checks reused between runs while the file and the options are unchanged."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

import agrisat.book.cache as cache_mod
from agrisat.book import Farms, load_book
from agrisat.book.cache import load_book_cached
from agrisat.config import BookSettings

UTM50 = "EPSG:32650"


def _book(n: int = 6, *, exposure: float = 1000.0) -> gpd.GeoDataFrame:
    rows: list[dict[str, Any]] = []
    for i in range(n):
        x = 500_000.0 + 500.0 * i
        rows.append(
            {
                "farm_id": f"F{i}",
                "loan_id": f"L{i}",
                "borrower_id": f"B{i}",
                "crop": "winter_wheat",
                "exposure": exposure + i,
                "region": "Dezhou",
                "note": f"row {i}",
                "geometry": box(x, 3_985_000.0, x + 100.0, 3_985_100.0),
            }
        )
    rows[1]["exposure"] = -5.0  # quarantined: negative exposure
    rows[2]["farm_id"] = None  # quarantined: missing farm_id
    rows[3]["geometry"] = box(rows[3]["geometry"].bounds[0], 3_985_000.0, 0, 0).buffer(0)
    frame = pd.DataFrame(rows)
    return gpd.GeoDataFrame(
        frame.drop(columns="geometry"), geometry=list(frame.geometry), crs=UTM50
    )


def _equal(a: Farms, b: Farms) -> None:
    pd.testing.assert_frame_equal(
        pd.DataFrame(a.gdf.drop(columns="geometry")), pd.DataFrame(b.gdf.drop(columns="geometry"))
    )
    assert a.gdf.crs == b.gdf.crs
    assert a.gdf.geometry.geom_equals_exact(b.gdf.geometry, tolerance=0).all()
    pd.testing.assert_frame_equal(a.rejects, b.rejects)
    assert a.source == b.source


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    def counting(source: Any, **kw: Any) -> Farms:
        seen.append(str(source))
        return load_book(source, **kw)

    monkeypatch.setattr(cache_mod, "load_book", counting)
    return seen


def test_an_unchanged_book_is_checked_once_and_reads_back_equal(
    tmp_path: Path, calls: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "book.parquet"
    _book().to_parquet(path)
    fresh = load_book(path)
    assert len(fresh.rejects) >= 2  # the cache must carry quarantined rows too
    first = load_book_cached(path, tmp_path / "cache")
    with caplog.at_level(logging.INFO, logger="agrisat.book.cache"):
        second = load_book_cached(path, tmp_path / "cache")
    assert len(calls) == 1
    _equal(first, fresh)
    _equal(second, fresh)
    assert "unchanged since its last check" in caplog.text
    assert "Dezhou" not in caplog.text and "F0" not in caplog.text  # counts, no book data


def test_crops_without_calendar_are_said_on_a_cached_run_too(
    tmp_path: Path, calls: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    # the warning is the run's news about the book: a run that reuses the checks says it too
    path = tmp_path / "book.parquet"
    book = _book()
    book["crop"] = ["barley", "barley", "winter_wheat", "barley", "winter_wheat", "barley"]
    book.to_parquet(path)
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="agrisat.book"):
            load_book_cached(path, tmp_path / "cache")
        said = [r.getMessage() for r in caplog.records if "no crop calendar" in r.getMessage()]
        assert len(said) == 1 and "barley" in said[0]
    assert len(calls) == 1  # the second run was a cache hit


def test_a_changed_file_or_setting_is_checked_again(tmp_path: Path, calls: list[str]) -> None:
    path = tmp_path / "book.parquet"
    _book().to_parquet(path)
    load_book_cached(path, tmp_path / "cache")
    _book(exposure=2000.0).to_parquet(path)  # same name, other bytes
    changed = load_book_cached(path, tmp_path / "cache")
    assert len(calls) == 2
    assert changed.gdf["exposure"].min() >= 2000.0
    strict = BookSettings(min_area_ha=5.0)  # every 1 ha square is now too small
    tight = load_book_cached(path, tmp_path / "cache", settings=strict)
    assert len(calls) == 3 and len(tight.gdf) == 0
    load_book_cached(path, tmp_path / "cache", crs=UTM50)  # another option: another key
    assert len(calls) == 4
    # only the latest book's checks are kept
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 1


def test_damaged_stored_checks_mean_a_fresh_check(tmp_path: Path, calls: list[str]) -> None:
    path = tmp_path / "book.parquet"
    _book().to_parquet(path)
    load_book_cached(path, tmp_path / "cache")
    (entry,) = (tmp_path / "cache").iterdir()
    (entry / "farms.parquet").write_bytes(b"not parquet")
    again = load_book_cached(path, tmp_path / "cache")
    assert len(calls) == 2
    _equal(again, load_book(path))


def test_multi_file_formats_are_not_cached(tmp_path: Path, calls: list[str]) -> None:
    # a Shapefile's sidecars (.dbf, .prj) could change without the .shp changing
    path = tmp_path / "book.shp"
    _book().to_file(path)
    for _ in range(2):
        load_book_cached(path, tmp_path / "cache")
    assert len(calls) == 2
    assert not (tmp_path / "cache").exists()


def test_a_csv_books_text_cells_come_back_as_read(tmp_path: Path, calls: list[str]) -> None:
    # a CSV keeps its cells as Python strings (object columns) in the rejects: they must come
    # back as read, not as another dtype
    path = tmp_path / "book.csv"
    path.write_text(
        "farm_id,loan_id,borrower_id,crop,exposure,geometry,extra\n"
        'F1,L1,B1,wheat,100,"POLYGON((117 36,117.001 36,117.001 36.001,117 36.001,117 36))",7\n'
        'F2,L2,B2,wheat,-1,"POLYGON((117.01 36,117.011 36,117.011 36.001,117.01 36.001,117.01 36))",x\n',
        encoding="utf-8",
    )
    first = load_book_cached(path, tmp_path / "cache")
    second = load_book_cached(path, tmp_path / "cache")
    _equal(first, load_book(path))
    _equal(second, load_book(path))
    assert len(calls) == 1
    assert (first.rejects.dtypes == second.rejects.dtypes).all()


def test_checks_that_do_not_read_back_equal_are_not_kept(
    tmp_path: Path, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. a rejects column Parquet cannot hold exactly: checked again next time, never wrong
    monkeypatch.setattr(cache_mod, "_same", lambda a, b: False)
    path = tmp_path / "book.parquet"
    _book().to_parquet(path)
    for _ in range(2):
        _equal(load_book_cached(path, tmp_path / "cache"), load_book(path))
    assert len(calls) == 2
    assert list((tmp_path / "cache").iterdir()) == []  # no half-written entry left
