"""Farms whose polygon was redrawn between two runs: found, and said by the run."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.affinity import translate
from shapely.geometry import box

from agrisat.book.changes import redrawn_farms
from agrisat.config import Settings
from agrisat.pipeline import run
from agrisat.testing import two_farm_archive

UTM = "EPSG:32650"


def _book(geoms: dict[str, object], crs: str = UTM) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"farm_id": list(geoms)}, geometry=list(geoms.values()), crs=crs)


def test_moved_or_reshaped_polygons_are_redrawn_a_nudge_is_not() -> None:
    plot = box(0, 0, 100, 100)  # 1 ha
    old = _book({"A": plot, "B": plot, "C": plot, "D": plot, "gone": plot})
    new = _book(
        {
            "A": plot,  # the same
            "B": translate(plot, 1.0, 0.0),  # a metre: 2 % of the union differs
            "C": translate(plot, 30.0, 0.0),  # 30 m: 46 % differs
            "D": box(0, 0, 100, 50),  # split: half of it gone
            "new": plot,  # not in the old book: nothing to compare
        }
    )
    assert redrawn_farms(old, new) == ["C", "D"]
    assert redrawn_farms(old, new, share=0.01) == ["B", "C", "D"]


def test_books_in_other_crs_are_compared_in_one() -> None:
    plot = box(600000, 4040000, 600100, 4040100)
    old = _book({"A": plot, "B": plot}).to_crs("EPSG:4326")
    new = _book({"A": plot, "B": translate(plot, 50.0, 0.0)})
    assert redrawn_farms(old, new) == ["B"]


def test_a_run_says_which_farms_were_redrawn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dates = ["2026-04-01", "2026-04-06"]
    arc = two_farm_archive(tmp_path / "arc", dates=dates)
    settings = Settings().replace("run", indices=("ndvi",), end=dates[-1])
    work = tmp_path / "work"
    run(arc.book, str(arc.catalog), work, settings=settings)
    book = gpd.read_file(arc.book)
    moved = book.copy()
    f1 = moved["farm_id"] == "F1"
    moved.loc[f1, "geometry"] = moved.loc[f1, "geometry"].translate(60.0, 0.0)
    path = tmp_path / "moved.gpkg"
    moved.to_file(path)
    with caplog.at_level(logging.WARNING, logger="agrisat.pipeline"):
        run(path, str(arc.catalog), work, settings=settings)
    said = [r.getMessage() for r in caplog.records if "redrawn" in r.getMessage()]
    assert len(said) == 1
    assert "1 farm(s)" in said[0] and "F1" in said[0] and "F2" not in said[0]
    assert "POLYGON" not in said[0] and "600" not in said[0]  # ids only, never shapes
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agrisat.pipeline"):
        run(path, str(arc.catalog), work, settings=settings)  # the same book again: nothing
    assert not [r for r in caplog.records if "redrawn" in r.getMessage()]
