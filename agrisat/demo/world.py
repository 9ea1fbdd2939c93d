"""The demo's ground truth in numbers: per parcel and acquisition date NDVI, stress, water.

:func:`build_world` is deterministic for a spec, so tests (and the detection engineer) can ask
what a farm *really* looked like on a date, without noise or clouds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .events import EventPlan, plan_events
from .layout import BG_MARGIN, BG_TREES, BG_VILLAGE, BG_WATER, Landscape, lay_out
from .phenology import (
    BANDS,
    SOIL_NDVI,
    CropCalendar,
    canopy_cover,
    draw_calendar,
    mix_reflectance,
    ndvi_knots,
)
from .spec import DemoSpec

__all__ = ["DemoWorld", "build_world"]


@dataclass(frozen=True)
class DemoWorld:
    """Landscape, calendars, events and the noise-free state of every class on every date.

    Classes are the parcels (``0 .. n_parcels-1``, book farms first in ``farm_id`` order)
    followed by the four background classes (margin, village, water, trees).
    """

    spec: DemoSpec
    land: Landscape
    calendar: CropCalendar
    plan: EventPlan
    dates: tuple[dt.date, ...]
    #: (classes, dates) noise-free NDVI, canopy moisture stress (0..1), water share (0..1)
    ndvi: np.ndarray
    moisture: np.ndarray
    water: np.ndarray
    #: (classes,) soil brightness factor
    soil_brightness: np.ndarray

    @cached_property
    def _farm_index(self) -> dict[str, int]:
        return {f: i for i, f in enumerate(self.land.farm_id)}

    def farm_index(self, farm_id: str) -> int:
        """Parcel/class index of a book farm."""
        return self._farm_index[farm_id]

    def date_index(self, date: dt.date) -> int:
        """Index of an acquisition date."""
        return self.dates.index(date)

    def cover(self, d: int) -> np.ndarray:
        """Green-canopy share of every class on date index ``d``."""
        return canopy_cover(self.ndvi[:, d])

    def expected_reflectance(self, farm_id: str, date: dt.date) -> dict[str, float]:
        """Noise-free, cloud-free reflectance of a book farm's interior on an acquisition date."""
        p, d = self.farm_index(farm_id), self.date_index(date)
        refl = mix_reflectance(
            canopy_cover(self.ndvi[p, d]),
            soil_brightness=self.soil_brightness[p],
            moisture_stress=self.moisture[p, d],
            water=self.water[p, d],
        )
        return {b: float(v) for b, v in zip(BANDS, refl, strict=True)}


def _ramp(t: np.ndarray, start: dt.date, end: dt.date, up: float, down: float) -> np.ndarray:
    s, e = start.toordinal(), end.toordinal()
    return np.clip((t - s) / up + 1.0 / up, 0, 1) * np.clip((e + down - t) / down, 0, 1)


def _apply_events(
    world_ndvi: np.ndarray,
    moist: np.ndarray,
    water: np.ndarray,
    t: np.ndarray,
    plan: EventPlan,
    land: Landscape,
    cal: CropCalendar,
    year: int,
) -> None:
    s = SOIL_NDVI
    col = cal.column(year)
    for p, (start, end, deficit) in plan.drought.items():
        r = _ramp(t, start, end, 14.0, 10.0)
        v = world_ndvi[p]
        world_ndvi[p] = np.where(v > s, np.maximum(s, v * (1.0 - deficit * r)), v)
        moist[p] = np.maximum(moist[p], 0.8 * r)
    if plan.regional_stress is not None:
        region, frac, start, end = plan.regional_stress
        r = _ramp(t, start, end, 7.0, 7.0)
        for q in np.flatnonzero(land.parcel_region == region):
            v = world_ndvi[q]
            world_ndvi[q] = np.where(v > s, np.maximum(s, v * (1.0 - frac * r)), v)
            moist[q] = np.maximum(moist[q], 0.25 * r)
    for p, (start, end) in plan.flood.items():
        water[p] = np.maximum(water[p], 0.9 * _ramp(t, start, end, 1.0, 3.0))
        damaged = (t >= start.toordinal()) & (t < cal.maize_harvest[p, col])
        world_ndvi[p] = np.where(damaged, s + (world_ndvi[p] - s) * 0.3, world_ndvi[p])
    for p, (when, end) in plan.abrupt_loss.items():
        lost = (t >= when.toordinal()) & (t <= end.toordinal())
        world_ndvi[p] = np.where(lost, s + 0.02, world_ndvi[p])
        moist[p] = np.where(lost, 0.3, moist[p])
    for p, (sow, harvest) in plan.no_planting.items():
        bare = (t >= sow.toordinal()) & (t <= harvest.toordinal() + 4)
        weeds = s + 0.04 * np.clip((t - sow.toordinal()) / 40.0, 0, 1)
        world_ndvi[p] = np.where(bare, weeds, world_ndvi[p])
        moist[p] = np.where(bare, 0.0, moist[p])


def build_world(spec: DemoSpec) -> DemoWorld:
    """Lay out the landscape, draw calendars, plan events and compute every class's series."""
    land = lay_out(spec)
    rng = np.random.default_rng([spec.seed, 2])
    n_parcels = len(land.parcels_world)
    cal = draw_calendar(land.parcel_crop, spec.history_start.year, spec.season_end.year + 1, rng)
    dates = spec.dates
    plan = plan_events(spec, land, cal, dates, np.random.default_rng([spec.seed, 3]))
    t = np.array([d.toordinal() for d in dates], dtype=float)
    n_cls = n_parcels + 4
    ndvi = np.empty((n_cls, t.size))
    moist = np.zeros((n_cls, t.size))
    water = np.zeros((n_cls, t.size))
    for p in range(n_parcels):
        kx, ky, km = ndvi_knots(cal, p)
        ndvi[p] = np.interp(t, kx, ky)
        moist[p] = np.interp(t, kx, km)
    _apply_events(ndvi, moist, water, t, plan, land, cal, spec.crop_year)
    # background: grassy margins and poplar rows follow the summer, villages stay grey
    doy = np.array([d.timetuple().tm_yday for d in dates], dtype=float)
    summer = np.sin(2 * np.pi * (doy - 109.0) / 365.25)
    ndvi[n_parcels + BG_MARGIN] = 0.27 + 0.09 * summer
    ndvi[n_parcels + BG_VILLAGE] = 0.20 + 0.03 * summer
    ndvi[n_parcels + BG_WATER] = 0.0
    water[n_parcels + BG_WATER] = 1.0
    ndvi[n_parcels + BG_TREES] = 0.52 + 0.24 * summer
    brightness = np.concatenate([cal.soil_brightness, [0.95, 1.25, 1.0, 0.9]])
    return DemoWorld(
        spec=spec,
        land=land,
        calendar=cal,
        plan=plan,
        dates=dates,
        ndvi=ndvi,
        moisture=moist,
        water=water,
        soil_brightness=brightness,
    )
