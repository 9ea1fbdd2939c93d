"""Crop calendars: which stage a crop is in on a date, harvest windows and season ids.

The defaults live in ``agrisat/data/calendars.toml`` (Shandong winter wheat, summer maize and the
wheat-maize double crop); a user TOML file of the same shape overrides or extends them. Crops
without a calendar (``other``, ``rice``...) get ``None`` stages: detectors that need a calendar
skip them, the others (peers, abrupt loss, flood, stale data) still run.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd

from .errors import ConfigError

__all__ = [
    "Calendar",
    "Season",
    "SeasonSpan",
    "default_calendars",
    "in_harvest_window",
    "load_calendars",
    "season_id",
    "season_span",
    "stage_of",
    "stage_table",
]

DateLike: TypeAlias = str | dt.date | pd.Timestamp


@dataclass(frozen=True)
class Season:
    """One crop season, dates as (month, day)."""

    name: str
    start: tuple[int, int]
    end: tuple[int, int]
    harvest: tuple[tuple[int, int], tuple[int, int]]
    stages: tuple[tuple[str, tuple[int, int]], ...]
    watch_stages: frozenset[str]
    green_stages: frozenset[str]


@dataclass(frozen=True)
class Calendar:
    """A crop's seasons (one for a single crop, two for a double crop)."""

    crop: str
    seasons: tuple[Season, ...]


@dataclass(frozen=True)
class SeasonSpan:
    """A season placed in time: where a date falls."""

    season: Season
    start: pd.Timestamp
    end: pd.Timestamp
    stage: str
    season_id: str


def _md(text: Any, where: str) -> tuple[int, int]:
    try:
        month, day = (int(p) for p in str(text).split("-"))
        dt.date(2001, month, day)  # validates; 2001 is not a leap year, so no 02-29
    except (ValueError, TypeError):
        raise ConfigError(f"calendar {where}: {text!r} is not a month-day like '06-15'") from None
    return month, day


def _season(name: str, raw: Mapping[str, Any]) -> Season:
    where = f"[seasons.{name}]"
    missing = {"start", "end", "harvest", "stages"} - set(raw)
    if missing:
        raise ConfigError(
            f"calendar {where} lacks {sorted(missing)}; see agrisat/data/calendars.toml"
        )
    harvest = raw["harvest"]
    if not isinstance(harvest, list) or len(harvest) != 2:
        raise ConfigError(f"calendar {where}: harvest must be [first, last] month-days")
    stages = []
    for item in raw["stages"]:
        if not isinstance(item, list) or len(item) != 2:
            raise ConfigError(
                f"calendar {where}: each stage must be [name, month-day], got {item!r}"
            )
        stages.append((str(item[0]), _md(item[1], where)))
    if not stages:
        raise ConfigError(f"calendar {where}: needs at least one stage")
    names = {s for s, _ in stages}
    watch = frozenset(raw.get("watch_stages", []))
    green = frozenset(raw.get("green_stages", []))
    unknown = (watch | green) - names
    if unknown:
        raise ConfigError(f"calendar {where}: watch/green stages {sorted(unknown)} are not stages")
    return Season(
        name=name,
        start=_md(raw["start"], where),
        end=_md(raw["end"], where),
        harvest=(_md(harvest[0], where), _md(harvest[1], where)),
        stages=tuple(stages),
        watch_stages=watch,
        green_stages=green,
    )


def _build(data: Mapping[str, Any]) -> dict[str, Calendar]:
    seasons = {name: _season(name, raw) for name, raw in data.get("seasons", {}).items()}
    calendars: dict[str, Calendar] = {}
    for crop, raw in data.get("crops", {}).items():
        names = raw.get("seasons", [])
        unknown = [n for n in names if n not in seasons]
        if unknown:
            raise ConfigError(f"calendar [crops.{crop}] names unknown season(s) {unknown}")
        calendars[crop] = Calendar(crop=crop, seasons=tuple(seasons[n] for n in names))
    return calendars


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) for k, v in base.items()}
    for section in ("seasons", "crops"):
        for name, raw in extra.get(section, {}).items():
            out.setdefault(section, {})
            out[section][name] = {**out[section].get(name, {}), **raw}
    return out


@lru_cache(maxsize=1)
def _default_raw() -> dict[str, Any]:
    text = resources.files("agrisat").joinpath("data/calendars.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def default_calendars() -> dict[str, Calendar]:
    """The built-in calendars, keyed by crop name."""
    return _build(_default_raw())


def load_calendars(path: str | Path | None = None) -> dict[str, Calendar]:
    """Built-in calendars, overridden/extended by a user TOML file.

    Parameters
    ----------
    path
        A TOML file with ``[seasons.<name>]`` and ``[crops.<crop>]`` tables (same shape as
        ``agrisat/data/calendars.toml``); keys given replace the defaults, others are kept.
    """
    if path is None:
        return default_calendars()
    p = Path(path)
    try:
        extra = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"calendar file {p} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"calendar file {p} is not valid TOML: {exc}") from None
    unknown = set(extra) - {"seasons", "crops"}
    if unknown:
        raise ConfigError(
            f"calendar file {p}: unknown section(s) {sorted(unknown)}; use seasons/crops"
        )
    return _build(_merge(_default_raw(), extra))


def _at(year: int, md: tuple[int, int]) -> pd.Timestamp:
    return pd.Timestamp(year=year, month=md[0], day=md[1])


def _place(season: Season, date: pd.Timestamp) -> SeasonSpan | None:
    """The occurrence of ``season`` that contains ``date``, if any."""
    year = date.year if (date.month, date.day) >= season.start else date.year - 1
    start = _at(year, season.start)
    end = _at(year if season.end > season.start else year + 1, season.end)
    if not start <= date <= end:
        return None
    stage = season.stages[0][0]
    for name, md in season.stages:
        first = _at(year if md >= season.start else year + 1, md)
        if first <= date:
            stage = name
    return SeasonSpan(season, start, end, stage, f"{end.year}-{season.name}")


def _calendar(crop: str, calendars: Mapping[str, Calendar] | None) -> Calendar | None:
    cals = default_calendars() if calendars is None else calendars
    return cals.get(str(crop))


def season_span(
    crop: str, date: DateLike, *, calendars: Mapping[str, Calendar] | None = None
) -> SeasonSpan | None:
    """The season of ``crop`` containing ``date`` (the one that started last), or None."""
    cal = _calendar(crop, calendars)
    if cal is None:
        return None
    ts = pd.Timestamp(date).normalize()
    spans = [s for s in (_place(season, ts) for season in cal.seasons) if s is not None]
    return max(spans, key=lambda s: s.start) if spans else None


def stage_of(
    crop: str, date: DateLike, *, calendars: Mapping[str, Calendar] | None = None
) -> str | None:
    """Stage name of ``crop`` on ``date`` (e.g. ``"peak"``), or None outside seasons/unknown crop."""
    span = season_span(crop, date, calendars=calendars)
    return None if span is None else span.stage


def season_id(
    crop: str, date: DateLike, *, calendars: Mapping[str, Calendar] | None = None
) -> str | None:
    """Season id like ``"2026-wheat"`` (year of the season's end), or None."""
    span = season_span(crop, date, calendars=calendars)
    return None if span is None else span.season_id


def in_harvest_window(
    crop: str, date: DateLike, *, calendars: Mapping[str, Calendar] | None = None
) -> bool:
    """True when ``date`` lies in a harvest window of any of ``crop``'s seasons."""
    cal = _calendar(crop, calendars)
    if cal is None:
        return False
    ts = pd.Timestamp(date).normalize()
    for season in cal.seasons:
        first, last = season.harvest
        for year in (ts.year - 1, ts.year):
            lo = _at(year, first)
            hi = _at(year if last >= first else year + 1, last)
            if lo <= ts <= hi:
                return True
    return False


def stage_table(
    crops: pd.Series, dates: pd.Series, *, calendars: Mapping[str, Calendar] | None = None
) -> pd.DataFrame:
    """Vectorised calendar lookup for rows of (crop, date).

    Returns columns ``stage``, ``season_id``, ``in_harvest``, ``watch`` (drought counts),
    ``green`` (crop should stand) and ``has_calendar``, aligned with the inputs. Each distinct
    (crop, date) pair is computed once.
    """
    cals = default_calendars() if calendars is None else calendars
    keys = pd.DataFrame(
        {"crop": crops.astype(str).to_numpy(), "date": pd.to_datetime(dates).to_numpy()}
    )
    uniq = keys.drop_duplicates().reset_index(drop=True)
    rows = []
    for crop, date in zip(uniq["crop"], uniq["date"], strict=True):
        span = season_span(crop, date, calendars=cals)
        rows.append(
            {
                "stage": None if span is None else span.stage,
                "season_id": None if span is None else span.season_id,
                "in_harvest": in_harvest_window(crop, date, calendars=cals),
                "watch": span is not None and span.stage in span.season.watch_stages,
                "green": span is not None and span.stage in span.season.green_stages,
                "has_calendar": crop in cals,
            }
        )
    table = pd.concat([uniq, pd.DataFrame(rows, index=uniq.index)], axis=1)
    out = keys.merge(table, on=["crop", "date"], how="left")
    out.index = crops.index
    return out.drop(columns=["crop", "date"])
