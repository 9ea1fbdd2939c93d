"""What the demo archive contains: :class:`DemoSpec` (inputs) and :class:`DemoArchive` (outputs).

Offset conventions over time (the default ``conventions`` schedule; see
:mod:`agrisat.testing.stac` for what each name means and how DN are encoded):

=========================  ===================  ========  ===============================
acquired from              convention           baseline  DN for reflectance r
=========================  ===================  ========  ===============================
2023-10-01 (history start) ``legacy``           03.01     r*10000
2024-04-01                 ``baseline_offset``  04.00     r*10000 + 1000
2025-01-01                 ``boa_applied``      05.09     r*10000
2025-07-01                 ``scale_only``       05.10     r*10000
2026-01-01                 ``earthsearch_v1``   05.11     r*10000 + 1000
=========================  ===================  ========  ===============================

The monitored season (2025-10-01 .. 2026-10-31) therefore contains a baseline change on
2026-01-01 (05.10 -> 05.11 and a +1000 DN jump that the declared offset cancels): it is *not*
an event. Same-day reprocessings (``..._1_L2A``) always use ``earthsearch_v1`` at baseline
05.11 with a later ``updated``. Items acquired from ``proj_code_from`` on carry ``proj:code``
instead of ``proj:epsg``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["DEFAULT_CONVENTIONS", "DemoArchive", "DemoSpec", "TileSpec"]


@dataclass(frozen=True)
class TileSpec:
    """One demo tile: an MGRS-like id and the UTM zone (EPSG) of its grid."""

    tile_id: str
    epsg: int


#: (first acquisition date, convention, processing baseline), in date order
DEFAULT_CONVENTIONS: tuple[tuple[dt.date, str, str], ...] = (
    (dt.date(2023, 10, 1), "legacy", "03.01"),
    (dt.date(2024, 4, 1), "baseline_offset", "04.00"),
    (dt.date(2025, 1, 1), "boa_applied", "05.09"),
    (dt.date(2025, 7, 1), "scale_only", "05.10"),
    (dt.date(2026, 1, 1), "earthsearch_v1", "05.11"),
)


@dataclass(frozen=True)
class DemoSpec:
    """Everything that decides the demo archive; same spec (and seed) -> same archive.

    Farms lie in a rectangle centred on ``center_lonlat`` that straddles the UTM zone
    boundary at 120 E. The first tile (zone 50) spans ``tile_width_m`` west of the centre
    minus ``overlap_m / 2``; the second (zone 51) the mirror image, so a strip
    ``overlap_m`` wide is covered by both.
    """

    seed: int = 20261
    n_farms: int = 300
    n_regions: int = 4
    history_start: dt.date = dt.date(2023, 10, 1)
    season_start: dt.date = dt.date(2025, 10, 1)
    season_end: dt.date = dt.date(2026, 10, 31)
    revisit_days: int = 5
    center_lonlat: tuple[float, float] = (120.0, 36.5)
    tiles: tuple[TileSpec, ...] = (TileSpec("50SQF", 32650), TileSpec("51STA", 32651))
    tile_width_m: float = 5400.0
    tile_height_m: float = 4800.0
    overlap_m: float = 2400.0
    #: share of dates that are mostly cloudy (cloud cover 70-100 %)
    cloudy_share: float = 0.35
    #: dates forced fully cloudy ("the cloudy weeks", a non-event)
    cloudy_weeks: tuple[dt.date, dt.date] = (dt.date(2026, 7, 3), dt.date(2026, 7, 18))
    #: share of (tile, date) items with a nodata strip at the tile's outer edge
    nodata_strip_share: float = 0.08
    #: dates per tile that also get a reprocessed ``_1`` item
    n_duplicates: int = 4
    conventions: tuple[tuple[dt.date, str, str], ...] = DEFAULT_CONVENTIONS
    proj_code_from: dt.date = dt.date(2026, 6, 1)
    #: hazards with injected events (``drought``, ``flood``, ``abrupt_loss``, ``no_planting``)
    events: tuple[str, ...] = ("drought", "flood", "abrupt_loss", "no_planting")
    n_drought: int = 12
    n_flood: int = 5
    n_abrupt_loss: int = 5
    n_no_planting: int = 5
    #: book farms whose wheat is harvested 10 days early (a non-event)
    n_early_harvest: int = 12
    #: region-wide mild NDVI deficit (a non-event): (fraction, start, end)
    regional_stress: tuple[float, dt.date, dt.date] = (
        0.10,
        dt.date(2026, 7, 20),
        dt.date(2026, 8, 20),
    )
    collection_id: str = "sentinel-2-l2a"

    def __post_init__(self) -> None:
        if not self.history_start <= self.season_start < self.season_end:
            raise ConfigError(
                "DemoSpec needs history_start <= season_start < season_end, got "
                f"{self.history_start}, {self.season_start}, {self.season_end}"
            )
        if self.revisit_days < 1 or self.n_farms < 1 or self.n_regions < 1:
            raise ConfigError("DemoSpec needs revisit_days, n_farms and n_regions >= 1")
        if len(self.tiles) != 2:
            raise ConfigError("DemoSpec needs exactly two tiles (one each side of the zone edge)")
        if self.overlap_m >= self.tile_width_m:
            raise ConfigError("DemoSpec overlap_m must be smaller than tile_width_m")
        if not self.conventions or self.conventions[0][0] > self.history_start:
            raise ConfigError("DemoSpec conventions must start on or before history_start")

    @property
    def crop_year(self) -> int:
        """Harvest year of the monitored season (winter wheat sown in autumn of the year before)."""
        return self.season_end.year

    @property
    def dates(self) -> tuple[dt.date, ...]:
        """Acquisition dates, every ``revisit_days`` from ``history_start`` to ``season_end``."""
        n = (self.season_end - self.history_start).days // self.revisit_days + 1
        step = dt.timedelta(days=self.revisit_days)
        return tuple(self.history_start + i * step for i in range(n))

    def convention_for(self, date: dt.date) -> tuple[str, str]:
        """(convention, baseline) of an original (``_0``) item acquired on ``date``."""
        current = self.conventions[0]
        for entry in self.conventions:
            if entry[0] <= date:
                current = entry
        return current[1], current[2]

    @classmethod
    def small(cls, seed: int = 7) -> DemoSpec:
        """A few-second spec for tests: ~40 farms, small tiles, 10-day revisit.

        Its convention schedule is compressed so that every convention still appears.
        """
        return cls(
            seed=seed,
            n_farms=40,
            n_regions=2,
            history_start=dt.date(2025, 3, 1),
            season_start=dt.date(2025, 10, 1),
            season_end=dt.date(2026, 9, 30),
            revisit_days=10,
            tile_width_m=1800.0,
            tile_height_m=1500.0,
            overlap_m=900.0,
            n_duplicates=2,
            conventions=(
                (dt.date(2025, 3, 1), "legacy", "03.01"),
                (dt.date(2025, 5, 1), "baseline_offset", "04.00"),
                (dt.date(2025, 8, 1), "boa_applied", "05.09"),
                (dt.date(2025, 11, 1), "scale_only", "05.10"),
                (dt.date(2026, 1, 1), "earthsearch_v1", "05.11"),
            ),
            n_drought=3,
            n_flood=2,
            n_abrupt_loss=2,
            n_no_planting=2,
            n_early_harvest=2,
        )

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON-ready values (dates as YYYY-MM-DD)."""

        def conv(value: Any) -> Any:
            if isinstance(value, dt.date):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: conv(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [conv(v) for v in value]
            return value

        return conv(asdict(self))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class DemoArchive:
    """Where :func:`agrisat.demo.generate_demo` wrote the archive."""

    root: Path
    #: root ``catalog.json`` of the static STAC catalog
    catalog: Path
    #: the loan book, GeoJSON in EPSG:4326
    book: Path
    #: injected events, one row per (event, farm)
    truth: Path
    #: spec, tiles, season, counts and the list of non-events
    meta: Path
