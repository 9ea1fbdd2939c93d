"""Injected events (the truth) and non-events of the demo's monitored season.

Every event farm is a loan-book farm, and event farms are disjoint. Drought and flood also
hit the non-book parcels of the same area (weather does not read the loan book), but only book
farms are listed in ``truth.csv``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import shapely

from .layout import Landscape
from .phenology import CropCalendar
from .spec import DemoSpec

__all__ = ["TRUTH_COLUMNS", "EventPlan", "TruthRow", "plan_events"]

TRUTH_COLUMNS = ("event_id", "farm_id", "hazard", "start", "end", "crop", "note")


@dataclass(frozen=True)
class TruthRow:
    """One row of ``truth.csv``."""

    event_id: str
    farm_id: str
    hazard: str
    start: dt.date
    end: dt.date
    crop: str
    note: str


@dataclass(frozen=True)
class EventPlan:
    """What happens to which parcel; parcels are indices into the landscape."""

    truth: tuple[TruthRow, ...]
    #: parcel -> (start, end, NDVI deficit fraction)
    drought: dict[int, tuple[dt.date, dt.date, float]] = field(default_factory=dict)
    #: parcel -> (start, end); the crop stays damaged until its harvest
    flood: dict[int, tuple[dt.date, dt.date]] = field(default_factory=dict)
    #: parcel -> (loss date, date the crop would have been harvested)
    abrupt_loss: dict[int, tuple[dt.date, dt.date]] = field(default_factory=dict)
    #: parcel -> (expected sowing, expected harvest) of the maize that is never sown
    no_planting: dict[int, tuple[dt.date, dt.date]] = field(default_factory=dict)
    #: book farms whose wheat is harvested 10 days early (non-event)
    early_harvest: tuple[int, ...] = ()
    #: (region index, fraction, start, end) of the region-wide mild stress (non-event)
    regional_stress: tuple[int, float, dt.date, dt.date] | None = None


def _d(ordinal: float) -> dt.date:
    return dt.date.fromordinal(round(float(ordinal)))


def plan_events(
    spec: DemoSpec,
    land: Landscape,
    cal: CropCalendar,
    dates: tuple[dt.date, ...],
    rng: np.random.Generator,
) -> EventPlan:
    """Choose event farms and windows; shifts the early harvests in ``cal`` in place."""
    year = spec.crop_year
    col = cal.column(year)
    nb = land.n_book
    centers = np.column_stack(
        [
            shapely.get_x(shapely.centroid(land.parcels_world)),
            shapely.get_y(shapely.centroid(land.parcels_world)),
        ]
    )
    crop = land.parcel_crop
    has_wheat = np.isin(crop, ["wheat_maize", "winter_wheat"])
    has_maize = np.isin(crop, ["wheat_maize", "maize"])
    used = np.zeros(len(crop), dtype=bool)
    used[nb:] = True  # truth is about book farms only
    truth: list[TruthRow] = []
    plan: dict[str, dict] = {"drought": {}, "flood": {}, "abrupt_loss": {}, "no_planting": {}}

    def nearest(seed: int, mask: np.ndarray, k: int) -> np.ndarray:
        cand = np.flatnonzero(mask & ~used)
        dist = np.hypot(*(centers[cand] - centers[seed]).T)
        return cand[np.argsort(dist, kind="stable")[:k]]

    def add(hazard: str, farms: np.ndarray, start: dt.date, end: dt.date, note: str) -> None:
        event_id = f"E{len({r.event_id for r in truth}) + 1:03d}"
        # the truth speaks about the monitored season only
        start, end = max(start, spec.season_start), min(end, spec.season_end)
        for p in sorted(farms.tolist()):
            used[p] = True
            truth.append(
                TruthRow(event_id, land.farm_id[p], hazard, start, end, str(crop[p]), note)
            )

    if "drought" in spec.events and spec.n_drought:
        seed = int(rng.choice(np.flatnonzero(has_wheat[:nb])))
        farms = nearest(seed, has_wheat, spec.n_drought)
        start = dt.date(year, 3, 24) + dt.timedelta(days=int(rng.integers(0, 7)))
        end = dt.date(year, 5, 31)
        radius = float(np.hypot(*(centers[farms] - centers[seed]).T).max()) + 1.0
        area = np.flatnonzero(has_wheat & (np.hypot(*(centers - centers[seed]).T) <= radius))
        area = np.union1d(area[area >= nb], farms)  # other book farms keep out of it
        for q in area:
            plan["drought"][int(q)] = (start, end, float(rng.uniform(0.25, 0.40)))
        add("drought", farms, start, end, "spring drought: wheat NDVI 25-40% below normal")

    if "flood" in spec.events and spec.n_flood:
        near_canal = shapely.distance(shapely.points(centers), land.canal)
        cand = np.flatnonzero(has_maize[:nb] & ~used[:nb])
        seed = int(cand[np.argmin(near_canal[cand])])
        farms = nearest(seed, has_maize, spec.n_flood)
        start = dt.date(year, 7, 22) + dt.timedelta(days=int(rng.integers(0, 10)))
        end = start + dt.timedelta(days=int(rng.integers(14, 29)))
        radius = float(np.hypot(*(centers[farms] - centers[seed]).T).max()) + 1.0
        area = np.flatnonzero(has_maize & (np.hypot(*(centers - centers[seed]).T) <= radius))
        area = np.union1d(area[area >= nb], farms)
        for q in area:
            plan["flood"][int(q)] = (start, end)
        add("flood", farms, start, end, "standing water after storm, maize damaged")

    if "abrupt_loss" in spec.events and spec.n_abrupt_loss:
        n_may = spec.n_abrupt_loss // 2
        for i in range(spec.n_abrupt_loss):
            in_may = i < n_may
            cand = np.flatnonzero((has_wheat if in_may else has_maize)[:nb] & ~used[:nb])
            p = int(rng.choice(cand))
            window = (
                (dt.date(year, 5, 8), dt.date(year, 5, 22))
                if in_may
                else (dt.date(year, 7, 30), dt.date(year, 8, 12))
            )
            inside = [d for d in dates if window[0] <= d <= window[1]]
            # strictly between two acquisitions: the drop shows within one revisit interval
            base = inside[int(rng.integers(len(inside)))] if inside else window[0]
            when = base + dt.timedelta(days=max(1, spec.revisit_days // 2))
            harvests = cal.wheat_harvest if in_may else cal.maize_harvest
            end = _d(harvests[p, col])
            plan["abrupt_loss"][p] = (when, end)
            kind = "hail on wheat" if in_may else "hail/lodging on maize"
            add("abrupt_loss", np.array([p]), when, end, f"{kind}, no recovery of that crop")

    if "no_planting" in spec.events and spec.n_no_planting:
        cand = np.flatnonzero((crop[:nb] == "wheat_maize") & ~used[:nb])
        farms = rng.choice(cand, size=min(spec.n_no_planting, cand.size), replace=False)
        for p in sorted(farms.tolist()):
            sow, harvest = _d(cal.maize_sow[p, col]), _d(cal.maize_harvest[p, col])
            plan["no_planting"][p] = (sow, harvest)
            add("no_planting", np.array([p]), sow, harvest, "summer maize never sown")

    cand = np.flatnonzero(has_wheat[:nb] & ~used[:nb])
    early = np.sort(rng.choice(cand, size=min(spec.n_early_harvest, cand.size), replace=False))
    cal.wheat_harvest[early, col] -= 10
    cal.wheat_peak_end[early, col] -= 8

    stress = None
    if spec.regional_stress[0] > 0:
        frac, s_start, s_end = spec.regional_stress
        stress = (int(rng.integers(len(land.region_names))), float(frac), s_start, s_end)

    return EventPlan(
        truth=tuple(truth),
        drought=plan["drought"],
        flood=plan["flood"],
        abrupt_loss=plan["abrupt_loss"],
        no_planting=plan["no_planting"],
        early_harvest=tuple(int(p) for p in early),
        regional_stress=stress,
    )
