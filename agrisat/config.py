"""Settings as frozen dataclasses with defaults, loadable from TOML, overridable by keyword.

A settings file looks like::

    [run]
    collection = "sentinel-2-l2a"
    indices = ["ndvi", "ndmi"]

    [zonal]
    min_clear_fraction = 0.5
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .alerts import AlertSettings
from .anomaly.settings import DetectSettings
from .errors import ConfigError
from .net.policy import RetryPolicy

__all__ = [
    "AlertSettings",
    "BookSettings",
    "CubeSettings",
    "DetectSettings",
    "RunSettings",
    "Settings",
    "ZonalSettings",
    "load_settings",
]


@dataclass(frozen=True)
class BookSettings:
    """How the loan book is checked."""

    min_area_ha: float = 0.01
    max_area_ha: float = 2000.0
    #: a repaired geometry must keep this share of the original area, else the row is rejected
    repair_area_tolerance: float = 0.05
    #: refuse book files larger than this (a hostile or mistaken upload), in MB
    max_file_mb: float = 500.0


@dataclass(frozen=True)
class CubeSettings:
    """How pixels are read."""

    resolution: float = 10.0
    #: pixels per dask chunk along x and y (one chunk is read once for all farms on it)
    chunk_size: int = 1024
    #: GDAL block cache per process, in MB. Small on purpose: chunks start on the COGs'
    #: internal blocks (cube.grid_for's anchor), so each block is decoded once and a cache
    #: would only hold pixels already used (256 MB cost +300 MB peak RSS at 100,000 plots x 8
    #: dates, for no speed-up)
    gdal_cache_mb: int = 16
    #: dates per read task on a dask cluster: fewer, larger tasks cut the per-task cost on
    #: the scheduler and the workers; local threads read one date per task (less memory)
    cluster_time_chunk: int = 4
    #: on dask workers, arrays under this many MB come from (and go back to) the allocator's
    #: heap: the nanny makes glibc hand every block over 64 KB back to the OS at once, so each
    #: task's arrays page-fault anew (20,000 plots x 8 dates on 1 worker: 11.3 s with it,
    #: 15.4 s without); 0 leaves the workers' allocator as dask set it
    worker_mmap_threshold_mb: int = 64
    #: read COG windows directly (agrisat.reader) when every asset is on the zone grid (10 m
    #: pixels or aligned 20 m ones in the zone's CRS); False always goes through odc-stac
    direct_read: bool = True
    #: on the direct path, compute masks, indices and per-farm sums in the read task at the
    #: pixels under farms only (agrisat.pixels); False makes each chunk's full float32 layers
    #: first and sums them in a second task (same observations, more time and memory)
    fused_sums: bool = True
    #: processes measuring coverage weights on a first night, the run's own included (0: one
    #: per CPU; 1: no worker process). exactextract holds the GIL, so only processes measure
    #: in parallel: 100,000 plots on the 5490² tile, 2 idle cores, 2.8 -> 1.7 s (medians of
    #: alternating pairs); with one core taken by another job a worker made it slower
    #: (2.9 -> 3.3 s): set 1 on a machine shared with other work
    weights_processes: int = 0
    #: fewer farms to measure than this are measured in process: a worker's start-up (0.3 s
    #: idle, up to 1.2 s on a busy machine) must pay. At 20,000 plots the pool saved 0.12 s of
    #: 0.65 on idle cores but cost 0.35 s on busy ones
    weights_pool_min_farms: int = 50_000
    #: SCL classes that are not clear ground (no data, saturated, shadow, clouds, cirrus, snow)
    scl_not_clear: tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)
    scl_water: int = 6


@dataclass(frozen=True)
class ZonalSettings:
    """How per-farm statistics are judged."""

    #: below this coverage-weighted clear share an observation is ``cloudy``
    min_clear_fraction: float = 0.5
    #: a farm covering fewer pixels (coverage-weighted) than this is ``too_small``
    min_pixels: float = 2.0


@dataclass(frozen=True)
class RunSettings:
    """What a run reads."""

    collection: str | None = None
    indices: tuple[str, ...] = ("ndvi", "evi", "ndmi", "ndwi")
    start: str | None = None
    end: str | None = None
    #: where the dask work goes: None/"auto" (threads, or a LocalCluster of one worker process
    #: per CPU with at least local_cluster_min_cpus CPUs and local_cluster_min_farms farms),
    #: "threads", "local" / "local:N" (a LocalCluster of N workers) or a scheduler address
    scheduler: str | None = None
    #: auto's LocalCluster thresholds (see agrisat.scheduler.choose_scheduler: on 2 cores
    #: threads were faster; the crossover on more cores is projected, not measured)
    local_cluster_min_cpus: int = 8
    local_cluster_min_farms: int = 50_000
    #: on a run after the first, scenes are searched from the previous run's end minus this
    #: many days: late-arriving and re-published scenes in that window are picked up
    lookback_days: int = 30
    #: a TOML file of crop calendars overriding/extending the built-in ones
    calendars: str | None = None
    #: scenes computed and committed together (whole days are never split); smaller batches
    #: lose less work to a crash, larger ones mean fewer commits
    batch_items: int = 24
    #: observation rows (farms x scenes) one ingestion batch holds in memory (whole days are
    #: never split): 100,000 plots x 8 dates on a 10980² tile peaked at 1,083 MiB with 4
    #: dates a batch, 943 MiB with 2 (5490²: 898 -> 807 MiB), in the same time
    batch_rows: int = 200_000
    #: observation rows one step of a full detection recompute reads (whole days, at least
    #: one), which bounds its memory whatever the length of the history and the size of the
    #: book; each step reads its farms' context once (time rises as steps shorten) and
    #: stages its looks a farm partition at a time. 100,000 farms x 3 years, quiet machine:
    #: 341 s and 982 MB in 300,000-row steps (3 dates), 434 s and 976 MB in 200,000 (the old
    #: one-frame steps: 533 s and 928 MB in 150,000)
    step_rows: int = 300_000
    #: the first step's rows: it is computed from scratch a farm partition at a time, a few
    #: times lighter per row than a later step (100,000 farms x 8 dates, 800,000 rows in one
    #: step: detection 4.7 s and +190 MB; in 200,000-row steps: 15.6 s and +290 MB)
    first_step_rows: int = 1_000_000
    #: window looks the alert lifecycle reads at a time (0: all at once): the farms it
    #: follows go in groups of about this many looks of the lookback window (400 days),
    #: estimated from the look tables' row counts. 8,200 farms x 3 years at once peaked ~700
    #: MB above the rest of the night; a stale-data storm over 100,000 farms x 8 dates took
    #: 13.9 s in 2,000-farm groups, 7.8 s in 10,000-farm groups, 7.4 s (but 1,048 MB) at once
    alert_rows: int = 150_000
    #: during detection, arrays of at least this many KB get their own memory mapping, handed
    #: back to the OS when freed (glibc only; 0 leaves the allocator alone): 70-140 MB less
    #: peak at 100,000 farms (agrisat.allocator.detection_allocator)
    detect_mmap_threshold_kb: int = 1024


@dataclass(frozen=True)
class Settings:
    """All settings; each section is a frozen dataclass."""

    book: BookSettings = field(default_factory=BookSettings)
    cube: CubeSettings = field(default_factory=CubeSettings)
    zonal: ZonalSettings = field(default_factory=ZonalSettings)
    run: RunSettings = field(default_factory=RunSettings)
    net: RetryPolicy = field(default_factory=RetryPolicy)
    detect: DetectSettings = field(default_factory=DetectSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    def replace(self, section: str, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied to one section (None values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        current = getattr(self, section)
        try:
            updated = dataclasses.replace(current, **changes)
        except TypeError as exc:
            raise ConfigError(f"unknown setting in [{section}]: {exc}") from None
        return dataclasses.replace(self, **{section: updated})


def _section(cls: type, values: Any, name: str) -> Any:
    """``cls`` built from one TOML table, each value checked against the field's annotation
    (a wrong type would otherwise surface as a traceback deep inside a run)."""
    import typing

    if not isinstance(values, dict):
        raise ConfigError(f"[{name}] must be a table of settings, got {values!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {sorted(unknown)} in [{name}]; known: {sorted(known)}"
        )
    hints = typing.get_type_hints(cls)
    coerced = {k: _value(v, hints[k], name, k) for k, v in values.items()}
    try:
        return cls(**coerced)
    except ConfigError as exc:
        raise ConfigError(f"[{name}]: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{name}] is invalid: {exc}") from None


def _value(value: Any, hint: Any, section: str, key: str) -> Any:
    """``value`` of ``[section] key`` checked against the type ``hint`` (a list made a
    tuple, an int a float)."""
    import types
    import typing

    where = f"[{section}] {key}"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _value(value, arg, section, key)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0] if errors else ConfigError(f"{where} cannot be set from a file")
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} = {value!r}: expected a list, e.g. [...]")
        return tuple(_value(v, args[0], section, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):  # [[alerts.severity_rules]]
        return _section(hint, value, f"{section}.{key}")
    expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint not in expected and hint is not Any:
        raise ConfigError(f"{where} cannot be set from a settings file")
    ok = (
        hint is Any
        or (hint is bool and isinstance(value, bool))
        or (hint is int and isinstance(value, int) and not isinstance(value, bool))
        or (hint is float and isinstance(value, int | float) and not isinstance(value, bool))
        or (hint is str and isinstance(value, str))
    )
    if not ok:
        raise ConfigError(f"{where} = {value!r}: expected {expected[hint]} ({hint.__name__})")
    return float(value) if hint is float else value


def load_settings(path: str | Path | None = None) -> Settings:
    """Load settings from a TOML file; missing sections and keys keep their defaults.

    Parameters
    ----------
    path
        A TOML file, or None for the defaults.
    """
    import typing

    if path is None:
        return Settings()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"settings file {p} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {p} is not valid TOML: {exc}") from None
    # every section of Settings ([net], [detect] and [alerts] too, as the README documents)
    sections = typing.get_type_hints(Settings)
    unknown = set(data) - set(sections)
    if unknown:
        raise ConfigError(f"unknown section(s) {sorted(unknown)} in {p}; known: {sorted(sections)}")
    try:
        kwargs = {name: _section(sections[name], data[name], name) for name in data}
    except ConfigError as exc:
        raise ConfigError(f"settings file {p}: {exc}") from None
    return Settings(**kwargs)
