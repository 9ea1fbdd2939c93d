"""A workdir with farms but no observation yet (a first run that found no scene: a wrong
catalog or collection, or dates before the first scene) still gets a report, which says so."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from agrisat.config import Settings
from agrisat.errors import ConfigError
from agrisat.pipeline import run
from agrisat.report import build_report
from agrisat.report.sections import last_clear_looks
from agrisat.store import Store
from agrisat.testing import make_archive
from agrisat.workspace import Workspace

from .test_api import DATES, _farms


@pytest.fixture(scope="module")
def unobserved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("noobs")
    arc = make_archive(root / "arc", _farms(), dates=DATES)
    workdir = root / "w"
    # a run that ends before the archive's first scene: the book is stored, nothing observed
    run(arc.book, str(arc.catalog), workdir, settings=Settings().replace("run", end="2020-01-01"))
    assert Store(workdir).read("observations").empty
    assert len(Workspace(workdir).farms) == 4
    return workdir


@pytest.mark.parametrize(
    ("lang", "note"),
    [
        ("en", "No observations yet: none of the 4 farms of the book has been observed."),
        ("zh", "尚无观测：台账中的 4 个地块均未获得任何观测。"),
    ],
)
def test_report_renders_without_observations(
    unobserved: Path, tmp_path: Path, lang: str, note: str
) -> None:
    out = build_report(unobserved, tmp_path / "r.html", lang=lang, chips=False)
    text = out.read_text(encoding="utf-8")
    assert note in text
    assert text.count('data-farm="F') >= 4  # the map still draws the book's farms


def test_plot_farm_says_no_observations_yet(unobserved: Path) -> None:
    with pytest.raises(ConfigError, match="no observations yet"):
        Workspace(unobserved).plot_farm("F1")


def test_last_clear_looks_without_clear_looks() -> None:
    ids = pd.Series(["F1", "F2"])
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in ("farm_id", "date", "status")})
    out = last_clear_looks(empty, ids)
    assert out.index.tolist() == ["F1", "F2"] and out.isna().all()
    assert pd.api.types.is_datetime64_any_dtype(out)
    cloudy = pd.DataFrame({"farm_id": ["F1"], "date": ["2026-04-01"], "status": ["cloudy"]})
    assert last_clear_looks(cloudy, ids).isna().all()
    seen = pd.DataFrame(
        {"farm_id": ["F1", "F1"], "date": ["2026-04-01", "2026-04-06"], "status": ["ok", "ok"]}
    )
    got = last_clear_looks(seen, ids)
    assert got["F1"] == pd.Timestamp("2026-04-06") and pd.isna(got["F2"])
