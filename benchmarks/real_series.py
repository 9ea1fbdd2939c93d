"""Real evaluation series (``../shared/data/evaluation``) as agrisat observation tables.

Each loader returns a :class:`RealSet`: an observations table in the design's export shape
(``farm_id, date, item_id, status, clear_fraction, clear_pixels, water_fraction,
<index>_mean, <index>_std``), a loan book (``farm_id, crop, region, exposure, loan_id,
borrower_id``) and what is known about events. Pixel sets are aggregated the way
:mod:`agrisat.zonal` does it (clear share over the farm's whole area, ``no_data`` where no
pixel is valid, ``cloudy`` under ``min_clear_fraction``), with centre-of-pixel membership
instead of exact coverage weights (the grids here are coarse and the farms are made of whole
pixels anyway).

Nothing here reads GPL files into the repository: the bfast and sits CSVs are read in place.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from agrisat.errors import AgrisatError

__all__ = [
    "RealSet",
    "bfast_harvest",
    "bfast_somalia",
    "eolearn_patch",
    "landsat_lsts",
    "shared_data",
    "zone_observations",
]

#: SCL classes that are not clear ground (agrisat.config.CubeSettings.scl_not_clear)
SCL_NOT_CLEAR = (0, 1, 3, 8, 9, 10, 11)
SCL_WATER = 6
#: agrisat.config.ZonalSettings defaults
MIN_CLEAR_FRACTION = 0.5
MIN_PIXELS = 2.0


def shared_data() -> Path:
    """``../shared/data`` beside the repository (may not exist)."""
    return Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass
class RealSet:
    """One real evaluation set turned into agrisat inputs."""

    name: str
    observations: pd.DataFrame
    farms: pd.DataFrame
    #: what the series is and how the farms were made (printed by the benchmark)
    note: str = ""
    #: documented events: ``event_id, farm_id, hazard, start, end, source``
    events: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: per-farm attributes for plots (land use etc.)
    extra: dict[str, object] = field(default_factory=dict)


def _book(ids: list[str], *, crop: str = "other", regions: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "farm_id": ids,
            "loan_id": [f"L-{i}" for i in ids],
            "borrower_id": [f"B-{i}" for i in ids],
            "crop": crop,
            "region": regions if regions is not None else [""] * len(ids),
            "exposure": 1.0,
        }
    )


def zone_observations(
    zones: np.ndarray,
    farm_ids: list[str],
    dates: list[str],
    item_ids: list[str],
    *,
    valid: np.ndarray,
    clear: np.ndarray,
    indices: dict[str, np.ndarray],
    water: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per-zone, per-date statistics of pixel stacks, as agrisat's zonal step computes them.

    Parameters
    ----------
    zones
        ``(y, x)`` integers: ``k`` puts the pixel in farm ``farm_ids[k]``, ``-1`` in none.
    farm_ids, dates, item_ids
        One id per zone; one date and item id per time step.
    valid, clear
        ``(t, y, x)`` booleans: pixel has data; pixel is clear ground (implies valid).
    indices
        ``name -> (t, y, x)`` float arrays (NaN where not computable).
    water
        ``(t, y, x)`` booleans (SCL water), or None where the source has no water class.
    """
    t = clear.shape[0]
    n = len(farm_ids)
    z = zones.ravel()
    inside = z >= 0
    zi = z[inside]
    total = np.bincount(zi, minlength=n).astype(float)
    rows = []
    for k in range(t):
        v = valid[k].ravel()[inside]
        c = clear[k].ravel()[inside]
        wvalid = np.bincount(zi, weights=v.astype(float), minlength=n)
        rec: dict[str, object] = {
            "farm_id": farm_ids,
            "date": dates[k],
            "item_id": item_ids[k],
        }
        row_stats = {}
        for name, arr in indices.items():
            a = arr[k].ravel()[inside]
            ok = c & np.isfinite(a)
            w = np.bincount(zi, weights=ok.astype(float), minlength=n)
            s1 = np.bincount(zi, weights=np.where(ok, a, 0.0), minlength=n)
            s2 = np.bincount(zi, weights=np.where(ok, a * a, 0.0), minlength=n)
            with np.errstate(all="ignore"):
                mean = np.where(w > 0, s1 / w, np.nan)
                std = np.sqrt(np.maximum(np.where(w > 0, s2 / w, np.nan) - mean**2, 0.0))
            row_stats[f"{name}_mean"] = mean
            row_stats[f"{name}_std"] = std
        wclear = np.bincount(zi, weights=c.astype(float), minlength=n)
        with np.errstate(all="ignore"):
            cf = np.where(total > 0, wclear / total, 0.0)
            if water is not None:
                wat = np.bincount(zi, weights=(water[k].ravel()[inside] & c), minlength=n)
                wf = np.where(wclear > 0, wat / wclear, np.nan)
            else:
                wf = np.full(n, np.nan)
        status = np.where(
            wvalid <= 0,
            "no_data",
            np.where(
                total < MIN_PIXELS, "too_small", np.where(cf < MIN_CLEAR_FRACTION, "cloudy", "ok")
            ),
        )
        rec.update(
            status=status, clear_fraction=np.round(cf, 6), clear_pixels=wclear, water_fraction=wf
        )
        rec.update(row_stats)
        frame = pd.DataFrame(rec)
        # Nothing clear: the index columns are empty (design: "empty where nothing was clear").
        rows.append(frame)
    out = pd.concat(rows, ignore_index=True)
    return out.sort_values(["farm_id", "date"], kind="stable").reset_index(drop=True)


# --- eo-learn TestEOPatch (Slovenia, Sentinel-2, 2015-2017) ---------------------------------

#: eo-learn LULC ids in the patch's vector layer
LULC_NAMES = {
    1: "cultivated",
    2: "forest",
    3: "grassland",
    4: "shrubland",
    5: "water",
    8: "artificial",
}


def eolearn_patch(root: Path | None = None, *, min_pixels: int = 10) -> RealSet:
    """The eo-learn test patch: farms are its land-use polygons (clipped to the patch).

    A polygon becomes a farm when at least ``min_pixels`` 10 m pixel centres fall inside it
    (0.1 ha) and its land use is vegetated (cultivated, forest, grassland, shrubland). Every
    farm is book crop ``other`` (no calendar); ``region`` is its land use, so peers are farms
    of the same land use when at least ``min_peers`` of them are clear, else all farms.
    Clear = ``IS_VALID`` (data and not ``CLM`` cloud) and, on the 36 dates that have Sen2Cor
    SCL, an SCL class that is clear ground; water share from SCL where it exists. The patch
    holds NDVI only (no B08/B11 bands), so ``ndmi`` is absent.
    """
    import geopandas as gpd
    from rasterio import features, transform

    base = (root or shared_data()) / "evaluation"
    p = base / "eolearn-testeopatch"
    if not p.exists():
        raise AgrisatError(f"{p} is absent: the eo-learn test patch is needed for this set")
    stamps = json.loads((p / "timestamps.json").read_text())
    ndvi = np.load(p / "data" / "NDVI.npy")[..., 0].astype(float)
    is_data = np.load(p / "mask" / "IS_DATA.npy")[..., 0].astype(bool)
    is_valid = np.load(p / "mask" / "IS_VALID.npy")[..., 0].astype(bool)
    _, h, w = ndvi.shape
    clear = is_valid & is_data
    water: np.ndarray | None = None
    ps = base / "eolearn-testeopatch-scl"
    if ps.exists():
        scl_stamps = json.loads((ps / "timestamps.json").read_text())
        scl = np.load(ps / "mask" / "SCL.npy")[..., 0]
        water = np.zeros_like(clear)
        pos = {s: i for i, s in enumerate(stamps)}
        for j, s in enumerate(scl_stamps):
            i = pos[s]
            cls = np.rint(scl[j]).astype(int)
            clear[i] &= ~np.isin(cls, SCL_NOT_CLEAR)
            water[i] = cls == SCL_WATER
    bbox = json.loads((p / "bbox.geojson").read_text())
    xs = [c[0] for c in bbox["coordinates"][0]]
    ys = [c[1] for c in bbox["coordinates"][0]]
    tr = transform.from_bounds(min(xs), min(ys), max(xs), max(ys), w, h)
    polys = gpd.read_file(p / "vector_timeless" / "LULC.gpkg")
    polys = polys[polys["LULC_ID"].isin([1, 2, 3, 4])].reset_index(drop=True)
    zones = np.full((h, w), -1, dtype=int)
    ids: list[str] = []
    regions: list[str] = []
    for geom, lulc, idx in zip(polys.geometry, polys["LULC_ID"], polys["index"], strict=True):
        mask = features.geometry_mask([geom], (h, w), tr, invert=True) & (zones < 0)
        if mask.sum() < min_pixels:
            continue
        zones[mask] = len(ids)
        ids.append(f"SI{int(idx)}")
        regions.append(LULC_NAMES[int(lulc)])
    # Same-day duplicates (two granules on 2015-12-08): keep the clearer, as agrisat does.
    dates = [s[:10] for s in stamps]
    items = [f"S2_{s.replace(':', '').replace('-', '')}" for s in stamps]
    obs = zone_observations(
        zones, ids, dates, items, valid=is_data, clear=clear, indices={"ndvi": ndvi}, water=water
    )
    obs = _resolve_same_day(obs)
    note = (
        f"{len(ids)} farms = land-use polygons with >= {min_pixels} px "
        f"({pd.Series(regions).value_counts().to_dict()}); {len(set(dates))} dates "
        f"{dates[0]}..{dates[-1]}; NDVI only (no bands for NDMI); SCL on {0 if water is None else 36} dates"
    )
    return RealSet(
        "eolearn-testeopatch",
        obs,
        _book(ids, regions=regions),
        note=note,
        extra={"zones": zones, "land_use": dict(zip(ids, regions, strict=True))},
    )


def _resolve_same_day(obs: pd.DataFrame) -> pd.DataFrame:
    rank = {"ok": 0, "cloudy": 1, "too_small": 2, "no_data": 3}
    o = obs.assign(_r=obs["status"].map(rank), _c=-obs["clear_fraction"])
    o = o.sort_values(["farm_id", "date", "_r", "_c"], kind="stable")
    o = o.drop_duplicates(["farm_id", "date"], keep="first").drop(columns=["_r", "_c"])
    return o.reset_index(drop=True)


# --- Landsat 5/7 time-series stack (eo-box sample data) ---------------------------------------


def landsat_lsts(root: Path | None = None, *, block: int = 6) -> RealSet:
    """The 105 Landsat 5/7 surface-reflectance scenes (61 x 61 px, 30 m), 2008-2013.

    Farms are ``block`` x ``block`` pixel squares (the ragged last row/column dropped); NDVI
    from b3/b4, NDMI from b4/b5. Clear = Fmask 0 (clear land) with all three bands valid;
    Fmask 1 (water) is clear and counts as water; -9999 (fill, incl. Landsat 7 SLC-off
    stripes) is no data, never a zero. Saturated reflectance (>= 16000) is not clear.
    """
    import rasterio

    p = (root or shared_data()) / "evaluation" / "landsat-lsts"
    if not p.exists():
        raise AgrisatError(f"{p} is absent: the Landsat stack is needed for this set")
    scenes = sorted((d.name for d in p.iterdir() if d.is_dir()), key=lambda s: s[9:16])
    bands: dict[str, list[np.ndarray]] = {b: [] for b in ("b3", "b4", "b5", "fmask")}
    dates = []
    for sid in scenes:
        dates.append(dt.datetime.strptime(sid[9:16], "%Y%j").date().isoformat())
        for b in bands:
            with rasterio.open(p / sid / f"{sid}_{b}.tif") as src:
                bands[b].append(src.read(1))
    red, nir, swir = (np.stack(bands[b]).astype(float) for b in ("b3", "b4", "b5"))
    fmask = np.stack(bands["fmask"])
    fill = (red == -9999) | (nir == -9999) | (swir == -9999) | (fmask == 255)
    sat = (red >= 16000) | (nir >= 16000) | (swir >= 16000)
    valid = ~fill
    clear = valid & ~sat & np.isin(fmask, (0, 1))
    water = clear & (fmask == 1)
    red, nir, swir = (np.where(valid, a * 1e-4, np.nan) for a in (red, nir, swir))
    with np.errstate(all="ignore"):
        ndvi = (nir - red) / (nir + red)
        ndmi = (nir - swir) / (nir + swir)
    _, h, w = ndvi.shape
    zones = np.full((h, w), -1, dtype=int)
    ids: list[str] = []
    for by in range(h // block):
        for bx in range(w // block):
            zones[by * block : (by + 1) * block, bx * block : (bx + 1) * block] = len(ids)
            ids.append(f"LS{by:02d}{bx:02d}")
    obs = zone_observations(
        zones, ids, dates, scenes, valid=valid, clear=clear,
        indices={"ndvi": ndvi, "ndmi": ndmi}, water=water,
    )  # fmt: skip
    note = (
        f"{len(ids)} farms = {block}x{block} px blocks ({block * 30} m); {len(dates)} scenes "
        f"{dates[0]}..{dates[-1]} (L5 + L7 SLC-off); NDVI + NDMI; Fmask clear/water"
    )
    return RealSet(
        "landsat-lsts", obs, _book(ids, regions=["lsts"] * len(ids)), note=note,
        extra={"zones": zones},
    )  # fmt: skip


# --- bfast single series (MODIS 16-day NDVI composites; GPL, read in place) ---------------


def _single_series(farm_id: str, dates: pd.Series, values: pd.Series, prefix: str) -> pd.DataFrame:
    d = pd.to_datetime(dates).dt.strftime("%Y-%m-%d")
    ok = values.notna()
    return pd.DataFrame(
        {
            "farm_id": farm_id,
            "date": d.to_numpy(),
            "item_id": [f"{prefix}_{x}" for x in d],
            # A 16-day maximum-value composite is a look, but of unknown quality: no
            # per-look quality band comes with it (clear share NaN, as a scene without SCL).
            "status": np.where(ok, "ok", "no_data"),
            "clear_fraction": np.where(ok, np.nan, 0.0),
            "clear_pixels": np.where(ok, 1.0, 0.0),
            "water_fraction": np.nan,
            "ndvi_mean": values.astype(float).to_numpy(),
            "ndvi_std": np.nan,
        }
    )


def bfast_harvest(root: Path | None = None) -> RealSet:
    """bfast ``harvest``: MODIS 16-day NDVI of a Pinus radiata plantation, 2000-2008, with a
    documented clear-fell in 2004 (Verbesselt et al. 2010, RSE 114:106).

    One farm, book crop ``other``, no peers (a single series; stated, not faked). The event
    window starts on the last look before the canopy loss shows (2004-08-12) and ends when
    the series reaches its post-harvest floor (2004-12-18).
    """
    f = (root or shared_data()) / "evaluation" / "bfast" / "harvest_ndvi_modis16day.csv"
    if not f.exists():
        raise AgrisatError(f"{f} is absent: the bfast harvest series is needed for this set")
    raw = pd.read_csv(f)
    obs = _single_series("HARVEST", raw["date"], raw["ndvi"], "MOD13_harvest")
    events = pd.DataFrame(
        [
            {
                "event_id": "clearfell-2004",
                "farm_id": "HARVEST",
                "hazard": "abrupt_loss",
                "start": "2004-08-12",
                "end": "2004-12-18",
                "source": "bfast harvest (Verbesselt et al. 2010): plantation harvested in 2004",
            }
        ]
    )
    return RealSet(
        "bfast-harvest",
        obs,
        _book(["HARVEST"]),
        note=f"1 series, {len(obs)} MODIS 16-day looks {obs['date'].min()}..{obs['date'].max()}; no peers",
        events=events,
    )


def _decimal_16day(time: pd.Series) -> pd.Series:
    """bfast ``ts`` time (year + k/23, 16-day MODIS composites) -> composite start date."""
    year = np.floor(time + 1e-6).astype(int)
    k = np.rint((time - year) * 23).astype(int)
    return pd.Series(
        [
            pd.Timestamp(int(y), 1, 1) + pd.Timedelta(days=16 * int(i))
            for y, i in zip(year, k, strict=True)
        ]
    )


def bfast_somalia(root: Path | None = None) -> RealSet:
    """bfast ``som``: two MODIS 16-day NDVI pixels in Somalia, 2000-2011, with the 2010-11
    drought (failed Oct-Dec 2010 deyr rains, then failed 2011 gu rains; Verbesselt, Zeileis &
    Herold 2012, RSE 123:98, monitor from 2010 composite 13).

    Two farms (``SOM_a``, ``SOM_b``), crop ``other``; two series cannot form a peer group
    (``min_peers`` is 5), so detection runs on own history only -- stated, not faked.
    """
    f = (root or shared_data()) / "evaluation" / "bfast" / "som_ndvi_somalia_16day.csv"
    if not f.exists():
        raise AgrisatError(f"{f} is absent: the bfast Somalia series is needed for this set")
    raw = pd.read_csv(f)
    dates = _decimal_16day(raw["Time"])
    obs = pd.concat(
        [
            _single_series("SOM_a", dates, raw["NDVI.a"], "MOD13_som"),
            _single_series("SOM_b", dates, raw["NDVI.b"], "MOD13_som"),
        ],
        ignore_index=True,
    )
    events = pd.DataFrame(
        [
            {
                "event_id": f"drought-2010-{fid}",
                "farm_id": fid,
                "hazard": "drought",
                # the deyr (short) rains that failed start in October 2010
                "start": "2010-10-01",
                "end": "2011-07-31",
                "source": "bfast som / bfastmonitor example: 2010-11 Somalia drought",
            }
            for fid in ("SOM_a", "SOM_b")
        ]
    )
    return RealSet(
        "bfast-somalia",
        obs,
        _book(["SOM_a", "SOM_b"]),
        note=f"2 pixels, {len(raw)} MODIS 16-day looks {dates.min():%Y-%m-%d}..{dates.max():%Y-%m-%d}; no peers",
        events=events,
    )
