"""Crop calendars, NDVI curves and the reflectance model of the demo.

Reflectance is a linear mix of a soil and a green-canopy spectrum, with the canopy share solved
from the target NDVI (so NDVI is exact for a pure pixel), a drier canopy raising SWIR (lower
NDMI), and standing water mixed in last (NDWI up, SCL 6).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BANDS",
    "SOIL",
    "SOIL_NDVI",
    "VEG",
    "WATER",
    "CropCalendar",
    "canopy_cover",
    "draw_calendar",
    "mix_bands",
    "mix_reflectance",
    "ndvi_knots",
]

BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir16")
SOIL = np.array([0.075, 0.100, 0.130, 0.180, 0.260])
VEG = np.array([0.025, 0.065, 0.025, 0.460, 0.190])
WATER = np.array([0.060, 0.070, 0.045, 0.025, 0.010])
#: relative SWIR increase of a fully water-stressed canopy
DRY_SWIR_GAIN = 0.6
SOIL_NDVI = float((SOIL[3] - SOIL[2]) / (SOIL[3] + SOIL[2]))
_RED, _NIR, _SWIR = 2, 3, 4


def canopy_cover(ndvi: np.ndarray) -> np.ndarray:
    """Green-canopy share whose soil/canopy mix has exactly ``ndvi`` (clipped to 0..1)."""
    n = np.asarray(ndvi, dtype=np.float64)
    ns, rs, nv, rv = SOIL[_NIR], SOIL[_RED], VEG[_NIR], VEG[_RED]
    dn, dr = nv - ns, rv - rs
    fc = (n * (ns + rs) - (ns - rs)) / ((dn - dr) - n * (dn + dr))
    return np.clip(fc, 0.0, 1.0)


def mix_bands(
    cover: np.ndarray | float,
    *,
    soil_brightness: np.ndarray | float = 1.0,
    moisture_stress: np.ndarray | float = 0.0,
    water: np.ndarray | float = 0.0,
) -> list[np.ndarray]:
    """Reflectance of a soil/canopy/water mix, one array per band in :data:`BANDS` order.

    A brightness factor scales the soil spectrum (which keeps the soil's NDVI), the moisture
    stress (0..1) raises the canopy's SWIR, and the water share is mixed in last. Inputs
    broadcast together; float32 inputs give float32 outputs.
    """
    out = []
    for b in range(len(BANDS)):
        # python floats keep float32 arrays float32 (numpy scalars would promote them)
        v, s, w = float(VEG[b]), float(SOIL[b]), float(WATER[b])
        veg = v * (1.0 + DRY_SWIR_GAIN * moisture_stress) if b == _SWIR else v
        land = s * soil_brightness * (1.0 - cover) + veg * cover
        out.append(np.asarray(land * (1.0 - water) + w * water))
    return out


def mix_reflectance(
    cover: np.ndarray | float,
    *,
    soil_brightness: np.ndarray | float = 1.0,
    moisture_stress: np.ndarray | float = 0.0,
    water: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Like :func:`mix_bands`, stacked on a last axis of length 5."""
    bands = mix_bands(
        cover, soil_brightness=soil_brightness, moisture_stress=moisture_stress, water=water
    )
    return np.stack(np.broadcast_arrays(*bands), axis=-1)


@dataclass(frozen=True)
class CropCalendar:
    """Per parcel (rows) and harvest year (columns) key dates as proleptic ordinals."""

    years: tuple[int, ...]
    crop: np.ndarray
    wheat_sow: np.ndarray
    wheat_greenup: np.ndarray
    wheat_peak_start: np.ndarray
    wheat_peak_end: np.ndarray
    wheat_harvest: np.ndarray
    maize_sow: np.ndarray
    maize_peak_start: np.ndarray
    maize_peak_end: np.ndarray
    maize_harvest: np.ndarray
    autumn_level: np.ndarray
    wheat_peak: np.ndarray
    maize_peak: np.ndarray
    soil_brightness: np.ndarray

    def column(self, year: int) -> int:
        """Column of harvest year ``year``."""
        return self.years.index(year)


def _ord(year: int, month: int, day: int) -> int:
    return dt.date(year, month, day).toordinal()


def draw_calendar(
    crops: np.ndarray, first_year: int, last_year: int, rng: np.random.Generator
) -> CropCalendar:
    """Draw jittered crop calendars for harvest years ``first_year .. last_year``.

    Winter wheat: sown early-mid October, green-up early March, peak mid April to mid May,
    harvest early-mid June. Summer maize: sown a week after the wheat harvest (mid June when
    alone), peak August, harvest late September - early October.
    """
    years = tuple(range(first_year, last_year + 1))
    n, m = len(crops), len(years)

    def jitter(scale: float, clip: float) -> np.ndarray:
        return np.clip(rng.normal(0.0, scale, (n, m)), -clip, clip).round()

    base = {
        name: np.array([[_ord(y + dy, mo, d) for y in years]] * n, dtype=float)
        for name, (dy, mo, d) in {
            "sow": (-1, 10, 9),
            "greenup": (0, 3, 3),
            "peak_start": (0, 4, 14),
            "peak_end": (0, 5, 16),
            "harvest": (0, 6, 8),
            "m_alone": (0, 6, 15),
            "m_peak_end": (0, 9, 1),
            "m_harvest": (0, 9, 30),
        }.items()
    }
    is_double = (crops == "wheat_maize")[:, None]
    wheat_harvest = base["harvest"] + jitter(3, 6)
    maize_sow = np.where(
        is_double, wheat_harvest + 6 + jitter(1.5, 3), base["m_alone"] + jitter(4, 8)
    )
    maize_harvest = base["m_harvest"] + jitter(4, 8)
    wheat_sow = base["sow"] + jitter(4, 8)
    # the wheat of year y is sown after the maize of year y-1 is off the field
    prev_maize = np.concatenate([maize_harvest[:, :1] - 365, maize_harvest[:, :-1]], axis=1)
    wheat_sow = np.where(is_double, np.maximum(wheat_sow, prev_maize + 5), wheat_sow)
    return CropCalendar(
        years=years,
        crop=np.asarray(crops),
        wheat_sow=wheat_sow,
        wheat_greenup=base["greenup"] + jitter(5, 10),
        wheat_peak_start=base["peak_start"] + jitter(4, 8),
        wheat_peak_end=base["peak_end"] + jitter(3, 6),
        wheat_harvest=wheat_harvest,
        maize_sow=maize_sow,
        maize_peak_start=maize_sow + 50 + jitter(4, 8),
        maize_peak_end=base["m_peak_end"] + jitter(4, 8),
        maize_harvest=maize_harvest,
        autumn_level=np.clip(rng.normal(0.31, 0.025, (n, m)), 0.25, 0.37),
        wheat_peak=np.clip(rng.normal(0.80, 0.025, (n, m)), 0.74, 0.86),
        maize_peak=np.clip(rng.normal(0.80, 0.025, (n, m)), 0.74, 0.86),
        soil_brightness=np.clip(rng.normal(1.0, 0.08, n), 0.82, 1.2),
    )


def ndvi_knots(cal: CropCalendar, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Knots (ordinal, NDVI, moisture stress) of parcel ``p``'s normal (no event) curve."""
    s = SOIL_NDVI
    crop = str(cal.crop[p])
    pts: list[tuple[float, float, float]] = []
    for j, year in enumerate(cal.years):
        if crop == "other":  # vegetables, orchards, nurseries: a soft seasonal wave
            pts += [
                (_ord(year, 1, 15), 0.30, 0.0),
                (_ord(year, 4, 15), 0.52, 0.0),
                (_ord(year, 7, 15), 0.66, 0.0),
                (_ord(year, 10, 15), 0.45, 0.0),
            ]
            continue
        if crop in ("wheat_maize", "winter_wheat"):
            sow, a = cal.wheat_sow[p, j], cal.autumn_level[p, j]
            hv, peak, pe = cal.wheat_harvest[p, j], cal.wheat_peak[p, j], cal.wheat_peak_end[p, j]
            pts += [
                (sow, s, 0.0),
                (sow + 12, s + 0.02, 0.0),
                (sow + 38, a, 0.0),
                (_ord(year - 1, 12, 15), a + 0.01, 0.0),
                (_ord(year, 1, 25), a - 0.05, 0.1),
                (cal.wheat_greenup[p, j], a - 0.03, 0.05),
                (cal.wheat_peak_start[p, j], peak, 0.0),
                (pe, peak - 0.04, 0.0),
                (hv - 7, 0.45, 0.55),
                (hv - 1, 0.36, 0.7),
                (hv, 0.20, 0.3),
                (hv + 5, s + 0.01, 0.0),
            ]
            if crop == "winter_wheat":  # fallow with weeds over summer
                pts += [
                    (hv + 30, 0.26, 0.0),
                    (_ord(year, 8, 25), 0.30, 0.0),
                    (_ord(year, 9, 25), 0.22, 0.0),
                ]
        if crop in ("wheat_maize", "maize"):
            ms, mh = cal.maize_sow[p, j], cal.maize_harvest[p, j]
            peak = cal.maize_peak[p, j]
            pts += [
                (ms, s, 0.0),
                (ms + 10, s + 0.02, 0.0),
                (ms + 28, 0.38, 0.0),
                (cal.maize_peak_start[p, j], peak, 0.0),
                (cal.maize_peak_end[p, j], peak - 0.03, 0.0),
                (mh - 12, 0.62, 0.3),
                (mh - 1, 0.45, 0.6),
                (mh, 0.21, 0.3),
                (mh + 4, s + 0.01, 0.0),
            ]
    pts.sort()
    arr = np.array(pts, dtype=float)
    return arr[:, 0], arr[:, 1], arr[:, 2]
