from __future__ import annotations

import pandas as pd
import pytest

from agrisat.calendar import in_harvest_window, load_calendars, season_id, stage_of, stage_table
from agrisat.errors import ConfigError


@pytest.mark.parametrize(
    ("crop", "date", "stage", "season"),
    [
        ("winter_wheat", "2025-10-05", "sowing", "2026-wheat"),
        ("winter_wheat", "2026-01-15", "dormancy", "2026-wheat"),
        ("winter_wheat", "2026-04-20", "peak", "2026-wheat"),
        ("maize", "2026-08-10", "peak", "2026-maize"),
        ("wheat_maize", "2026-04-20", "peak", "2026-wheat"),
        ("wheat_maize", "2026-07-01", "emergence", "2026-maize"),
        ("wheat_maize", "2026-10-15", "sowing", "2027-wheat"),
    ],
)
def test_stage_and_season_cross_new_year(crop: str, date: str, stage: str, season: str) -> None:
    assert stage_of(crop, date) == stage
    assert season_id(crop, date) == season


def test_harvest_windows() -> None:
    assert in_harvest_window("winter_wheat", "2026-06-08")
    assert in_harvest_window("winter_wheat", "2026-05-28")  # 10 days early is still a harvest
    assert not in_harvest_window("winter_wheat", "2026-04-20")
    assert in_harvest_window("wheat_maize", "2026-10-01")
    assert not in_harvest_window("wheat_maize", "2026-08-10")
    assert not in_harvest_window("maize", "2026-06-08")


def test_unknown_crop_has_no_calendar() -> None:
    assert stage_of("other", "2026-04-20") is None
    assert season_id("cotton", "2026-04-20") is None
    assert not in_harvest_window("other", "2026-06-08")
    t = stage_table(
        pd.Series(["other", "maize"]), pd.Series(pd.to_datetime(["2026-08-10", "2026-08-10"]))
    )
    assert list(t["has_calendar"]) == [False, True]
    assert list(t["watch"]) == [False, True]


def test_user_file_overrides_and_extends(tmp_path) -> None:
    p = tmp_path / "cal.toml"
    p.write_text(
        '[seasons.wheat]\nharvest = ["06-10", "06-20"]\n[crops.barley]\nseasons = ["wheat"]\n'
    )
    cals = load_calendars(p)
    assert not in_harvest_window("winter_wheat", "2026-06-01", calendars=cals)
    assert stage_of("barley", "2026-04-20", calendars=cals) == "peak"
    assert stage_of("winter_wheat", "2026-04-20", calendars=cals) == "peak"  # rest kept


def test_bad_user_file_names_the_problem(tmp_path) -> None:
    p = tmp_path / "cal.toml"
    p.write_text('[seasons.wheat]\nstart = "13-40"\n')
    with pytest.raises(ConfigError, match="month-day"):
        load_calendars(p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_calendars(tmp_path / "missing.toml")
