"""Constructed observation tables for tests of the detection core (no imagery involved).

A wheat-maize double crop (or a single crop) is drawn as a piecewise-linear NDVI curve per farm
with small timing/amplitude jitter and look-to-look noise, seen every ``revisit_days``. Red and
NIR reflectances consistent with that NDVI are kept internally so a processing-baseline change can
be applied where it belongs: as a constant shift of reflectance, not of NDVI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely import affinity
from shapely.geometry import box

__all__ = [
    "PEER_EVENTS",
    "STEP_EVENTS",
    "Event",
    "alert_look",
    "feed_store",
    "make_farms",
    "make_observations",
    "mixed_peer_book",
    "peer_case",
    "scattered_clouds",
    "step_case",
]

# (day offset from 1 Oct, NDVI) anchors of one crop year starting 1 October.
_WHEAT = [
    (0, 0.16),
    (25, 0.18),
    (50, 0.42),
    (75, 0.38),
    (150, 0.33),
    (170, 0.45),
    (200, 0.78),
    (225, 0.82),
    (232, 0.80),
    (242, 0.60),
    (250, 0.32),
    (254, 0.16),
]
_MAIZE = [
    (256, 0.16),
    (275, 0.20),
    (300, 0.70),
    (315, 0.85),
    (340, 0.82),
    (358, 0.45),
    (362, 0.18),
    (366, 0.16),
]
_ANCHORS = {
    "wheat_maize": _WHEAT + _MAIZE,
    "winter_wheat": [*_WHEAT, (366, 0.16)],
    "maize": [(0, 0.16), (255, 0.16), *_MAIZE],
    "other": [(0, 0.25), (150, 0.25), (220, 0.6), (300, 0.6), (366, 0.25)],
}


@dataclass(frozen=True)
class Event:
    """An injected event on one farm.

    ``kind``: ``drought`` (NDVI x (1 - depth), ramped over ``ramp_days``), ``abrupt_loss``
    (NDVI falls to ``level`` and stays there until the season's harvest), ``flood`` (water on
    ``depth`` of the clear area, NDVI halved), ``no_planting`` (bare soil all season; give
    ``start``/``end`` as the season; drought and stress also dry the canopy, which lowers
    NDMI beyond what NDVI explains), ``early_harvest`` (wheat curve ``shift`` days earlier,
    not an event), ``stress`` (like drought but meant region-wide and mild, not an event).
    """

    farm_id: str
    kind: str
    start: str
    end: str
    depth: float = 0.4
    ramp_days: int = 10
    level: float = 0.25
    shift: int = -10


#: the events every peer-level comparison test plants: an abrupt loss and a drought among
#: region peers (wheat-maize, county-a) and a drought on a farm judged by radius peers
PEER_EVENTS: tuple[Event, ...] = (
    Event("A0003", "abrupt_loss", "2026-04-22", "2026-06-10"),
    Event("A0005", "drought", "2026-03-20", "2026-05-30"),
    Event("D0001", "drought", "2026-04-01", "2026-06-01"),
)


def make_farms(
    n: int,
    *,
    crop: str = "wheat_maize",
    region: str = "county-a",
    prefix: str = "F",
    exposure: float = 1000.0,
) -> gpd.GeoDataFrame:
    """``n`` small square farms in Shandong with the loan-book columns."""
    ids = [f"{prefix}{i:04d}" for i in range(n)]
    geoms = [
        box(
            117.0 + 0.01 * (i % 20),
            36.0 + 0.01 * (i // 20),
            117.0 + 0.01 * (i % 20) + 0.002,
            36.0 + 0.01 * (i // 20) + 0.002,
        )
        for i in range(n)
    ]
    return gpd.GeoDataFrame(
        {
            "farm_id": ids,
            "loan_id": [f"L{i // 2:04d}" for i in range(n)],
            "borrower_id": [f"B{i // 4:04d}" for i in range(n)],
            "crop": crop,
            "exposure": exposure,
            "region": region,
            "area_ha": 4.0,
        },
        geometry=geoms,
        crs="EPSG:4326",
    )


def _curve(
    crop: str, days: np.ndarray, jitter: float, amp: float, wheat_shift: float = 0.0
) -> np.ndarray:
    anchors = _ANCHORS.get(crop, _ANCHORS["other"])
    x = np.array([a for a, _ in anchors], dtype=float)
    y = np.array([b for _, b in anchors], dtype=float)
    # Shift only the wheat ripening/harvest part when asked (early harvest).
    x = np.where(
        (x >= 225) & (x <= 256) & (crop in ("wheat_maize", "winter_wheat")), x + wheat_shift, x
    )
    base = np.interp((days - jitter) % 366, x, y)
    return 0.16 + (base - 0.16) * amp


def _reflectance(ndvi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    red = 0.12 - 0.09 * np.clip(ndvi, 0, 1)
    nir = red * (1 + ndvi) / (1 - ndvi)
    return red, nir


def mixed_peer_book(counts: tuple[int, int, int, int] = (13, 7, 3, 6)) -> gpd.GeoDataFrame:
    """A book that exercises every peer level: ``counts`` farms of wheat-maize in county-a
    (ids ``A...``, a region group), maize in county-b (``B...``), wheat-maize in county-b
    (``C...``, a crop too rare in its region: crop or radius peers with the region's shift)
    and cotton without a region (``D...``, radius peers), side by side within the peer
    radius of each other."""
    spec = [("wheat_maize", "county-a", "A"), ("maize", "county-b", "B")]
    spec += [("wheat_maize", "county-b", "C"), ("cotton", "", "D")]
    parts = [
        make_farms(n, crop=crop, region=region, prefix=prefix)
        for n, (crop, region, prefix) in zip(counts, spec, strict=True)
    ]
    for k, part in enumerate(parts):
        part["geometry"] = [affinity.translate(g, xoff=0.003 * k) for g in part.geometry]
    book = pd.concat(parts, ignore_index=True)
    return gpd.GeoDataFrame(book, geometry="geometry", crs="EPSG:4326")


def peer_case(
    counts: tuple[int, int, int, int],
    events: Iterable[Event],
    *,
    start: str,
    seed: int,
    clouds: float,
    cloud_seed: int,
    end: str = "2026-06-30",
    drop: Callable[[pd.DataFrame], pd.Series] | None = None,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """A :func:`mixed_peer_book` of ``counts`` farms and its observations with ``events``,
    ``clouds`` of the rows (and the ``drop(obs)`` rows) removed by :func:`scattered_clouds`:
    the data of the tests that compare detection paths over every peer level."""
    farms = mixed_peer_book(counts)
    obs = make_observations(farms, events=events, start=start, end=end, seed=seed)
    gone = drop(obs) if drop is not None else None
    return farms, scattered_clouds(obs, clouds, seed=cloud_seed, drop=gone)


#: the long-recomputation tests' events: :data:`PEER_EVENTS` and a flood
STEP_EVENTS: tuple[Event, ...] = (*PEER_EVENTS, Event("A0009", "flood", "2026-05-01", "2026-05-20"))


def step_case() -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """The data of the tests that recompute a long history in steps: :func:`peer_case` of 16
    farms over 15 months with :data:`STEP_EVENTS`, a quarter of the looks clouded (so a
    step's partition may hold no look of a date its peers were seen on)."""
    return peer_case(
        (6, 4, 3, 3), STEP_EVENTS, start="2025-04-01", seed=5, clouds=0.25, cloud_seed=9
    )


def scattered_clouds(
    obs: pd.DataFrame, share: float, *, seed: int, drop: pd.Series | None = None
) -> pd.DataFrame:
    """``obs`` without a random ``share`` of its rows (and the ``drop`` rows), dates as text.

    Farms of one peer group are then seen on different dates, so a partition's farms may all
    miss a date their group's other farms were seen on; the dates are the store's
    ``YYYY-MM-DD`` strings.
    """
    cloud = np.random.default_rng(seed).random(len(obs)) < share
    keep = ~cloud if drop is None else ~cloud & ~drop.to_numpy(dtype=bool)
    out = obs[keep].reset_index(drop=True)
    out["date"] = pd.to_datetime(out["date"]).dt.strftime("%Y-%m-%d")
    return out


def make_observations(
    farms: pd.DataFrame,
    *,
    start: str = "2023-10-01",
    end: str = "2026-10-31",
    revisit_days: int = 5,
    noise: float = 0.02,
    seed: int = 0,
    events: Iterable[Event] = (),
    cloudy: Iterable[tuple[str, str]] = (),
    baseline_shift: tuple[str, float] | None = None,
) -> pd.DataFrame:
    """An observations table (the pipeline's contract) for ``farms``.

    Parameters
    ----------
    cloudy
        (first, last) date ranges where every farm's look is ``cloudy`` (no clear stats).
    baseline_shift
        (date, shift): from that date on, red and NIR reflectance are shifted by ``shift``.
    """
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, end, freq=f"{revisit_days}D")
    crop_day = np.array(
        [
            (d - pd.Timestamp(year=d.year if d.month >= 10 else d.year - 1, month=10, day=1)).days
            for d in dates
        ],
        dtype=float,
    )
    events = list(events)
    frames = []
    for _, farm in farms.iterrows():
        fid = str(farm["farm_id"])
        jitter = rng.normal(0, 2.0)
        amp = 1 + rng.normal(0, 0.03)
        ndvi = _curve(str(farm["crop"]), crop_day, jitter, amp)
        water = np.clip(rng.normal(0.0, 0.004, len(dates)), 0, None)
        dry = np.zeros(len(dates))  # canopy water stress 0..1 (lowers NDMI beyond NDVI)
        for ev in (e for e in events if e.farm_id == fid):
            s, e = pd.Timestamp(ev.start), pd.Timestamp(ev.end)
            inside = np.asarray((dates >= s) & (dates <= e))
            if ev.kind == "early_harvest":
                season = np.asarray((dates >= s) & (dates <= e))
                shifted = _curve(str(farm["crop"]), crop_day, jitter, amp, wheat_shift=ev.shift)
                ndvi = np.where(season, shifted, ndvi)
            elif ev.kind in ("drought", "stress"):
                ramp = np.clip((dates - s).days.to_numpy() / max(ev.ramp_days, 1), 0, 1)
                ndvi = np.where(inside, 0.16 + (ndvi - 0.16) * (1 - ev.depth * ramp), ndvi)
                dry = np.where(inside, np.maximum(dry, ev.depth * ramp), dry)
            elif ev.kind == "abrupt_loss":
                ndvi = np.where(inside, np.minimum(ndvi, ev.level), ndvi)
            elif ev.kind == "flood":
                water = np.where(inside, ev.depth, water)
                ndvi = np.where(inside, ndvi * 0.5, ndvi)
            elif ev.kind == "no_planting":
                ndvi = np.where(inside, 0.17, ndvi)
            else:
                raise ValueError(f"unknown event kind {ev.kind!r}")
        ndvi = ndvi + rng.normal(0, noise, len(dates))
        red, nir = _reflectance(np.clip(ndvi, -0.5, 0.95))
        if baseline_shift is not None:
            after = np.asarray(dates >= pd.Timestamp(baseline_shift[0]))
            red = np.where(after, red + baseline_shift[1], red)
            nir = np.where(after, nir + baseline_shift[1], nir)
        ndvi_obs = (nir - red) / (nir + red)
        ndwi = -0.8 * ndvi_obs + 1.2 * water
        # NDMI follows canopy cover and drops further with canopy water stress
        ndmi = 0.8 * ndvi_obs - 0.35 - 0.3 * dry + rng.normal(0, noise / 2, len(dates))
        status = np.full(len(dates), "ok", dtype=object)
        for a, b in cloudy:
            status[np.asarray((dates >= pd.Timestamp(a)) & (dates <= pd.Timestamp(b)))] = "cloudy"
        clear = status == "ok"
        frames.append(
            pd.DataFrame(
                {
                    "farm_id": fid,
                    "date": dates,
                    "item_id": [f"S2_{d:%Y%m%d}" for d in dates],
                    "status": status,
                    "clear_fraction": np.where(clear, 1.0, 0.05),
                    "clear_pixels": np.where(clear, 400.0, 20.0),
                    "water_fraction": np.where(clear, water, np.nan),
                    "ndvi_mean": np.where(clear, ndvi_obs, np.nan),
                    "ndvi_std": np.where(clear, 0.05, np.nan),
                    "ndwi_mean": np.where(clear, ndwi, np.nan),
                    "ndwi_std": np.where(clear, 0.05, np.nan),
                    "ndmi_mean": np.where(clear, ndmi, np.nan),
                    "ndmi_std": np.where(clear, 0.05, np.nan),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["status"] = out["status"].astype(str)
    return out


def feed_store(store: Any, rows: pd.DataFrame, tag: str) -> None:
    """Commit observation ``rows`` to ``store`` (an :class:`agrisat.store.Store`) with a ledger
    entry per day (item ``S_<day>_<tag>``), as ingestion does: a store for detection tests
    without pixels."""
    if rows.empty:
        return
    days = sorted(rows["date"].unique())
    ledger = pd.DataFrame(
        {
            "item_id": [f"S_{d}_{tag}" for d in days],
            "day": days,
            "tile": "50SQE",
            "epsg": 32650,
            "updated": "",
            "status": "ingested",
            "run_id": tag,
        }
    )
    with store.transaction() as txn:
        txn.append("observations", rows.reset_index(drop=True))
        txn.append("ledger", ledger)


def alert_look(
    farm: str,
    date: str,
    state: str,
    *,
    hazard: str = "drought",
    onset: str | None = None,
    run_looks: int = 0,
    confirmed: bool = False,
    score: float = 0.3,
    **over: Any,
) -> dict[str, Any]:
    """One classified look as :func:`agrisat.alerts.update_alerts` reads it (an anomaly
    table row): a ``drought`` look of a wheat-maize farm by default, ``over`` replacing any
    column."""
    anomalous = state == "anomalous"
    row = {
        "farm_id": farm,
        "date": pd.Timestamp(date),
        "hazard": hazard if anomalous else "none",
        "state": state,
        "score": score if anomalous else float("nan"),
        "value": 0.5 if anomalous else 0.8,
        "expected": 0.8,
        "index": "ndvi",
        "own_z": -4.0,
        "own_deficit": 0.3,
        "vci": 0.1,
        "peer_median": 0.8,
        "peer_z": -4.0,
        "peer_n": 20,
        "peer_level": "region",
        "peer_state": "idiosyncratic",
        "water_fraction": 0.0,
        "clear_fraction": 1.0,
        "crop": "wheat_maize",
        "region": "county-a",
        "stage": "peak",
        "onset": pd.Timestamp(onset) if onset else pd.NaT,
        "run_looks": run_looks,
        "run_hazard": hazard if anomalous else "none",
        "confirmed": confirmed,
    }
    return {**row, **over}
