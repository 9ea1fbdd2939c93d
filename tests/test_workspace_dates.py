"""``Workspace.chips`` / ``pick_looks`` on a date that is not one, or far from every look:
a clear error naming the date (and the nearest look), not a pandas parse error or a look of
another year."""

from __future__ import annotations

from pathlib import Path

import pytest

from agrisat.errors import ConfigError
from agrisat.testing import SyntheticArchive
from agrisat.workspace import LOOK_TOLERANCE_DAYS, open_workspace

from .test_api import DATES, small_workdir


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticArchive, Path]:
    return small_workdir(tmp_path_factory.mktemp("wsdates"))


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", ""])
def test_a_date_that_is_not_one_is_named(built: tuple[SyntheticArchive, Path], bad: str) -> None:
    arc, workdir = built
    ws = open_workspace(workdir, catalog=arc.catalog)
    with pytest.raises(ConfigError, match=f"{bad!r} is not a date: use YYYY-MM-DD"):
        ws.chips("F1", ["2026-04-06", bad], show=False)
    with pytest.raises(ConfigError, match="is not a date"):
        ws.pick_looks("F1", [bad])


def test_a_date_far_from_every_look_is_refused(built: tuple[SyntheticArchive, Path]) -> None:
    arc, workdir = built
    ws = open_workspace(workdir, catalog=arc.catalog)
    # DATES run 2026-04-01 .. 2026-04-26: 2020-01-01 is six years before the nearest look
    with pytest.raises(
        ConfigError,
        match=r"no observation within 30 days of '2020-01-01': the nearest is 2026-04-01 "
        r"\(2282 days away\); its observations run 2026-04-01 to 2026-04-26",
    ):
        ws.chips("F1", ["2020-01-01"], show=False)
    assert LOOK_TOLERANCE_DAYS == 30
    # 31 days after the last look: refused; 30 days: accepted, and the distance is given
    with pytest.raises(ConfigError, match="31 days away"):
        ws.pick_looks("F1", ["2026-05-27"])
    picks = ws.pick_looks("F1", ["2026-05-26", "2026-04-08", DATES[2]])
    assert picks["date"].tolist() == ["2026-04-26", "2026-04-06", DATES[2]]
    assert picks["days_off"].tolist() == [30, 2, 0]
    # an explicit wider tolerance (or none) answers with the nearest look and says how far
    far = ws.pick_looks("F1", ["2020-01-01"], max_days=None)
    assert far["date"].tolist() == ["2026-04-01"] and far["days_off"].tolist() == [2282]
