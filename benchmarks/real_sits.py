"""sits' labelled time series as agrisat evaluation sets (GPL-2, read in place, never copied).

``../shared/data/evaluation/sits/`` (e-sensing/sits package data, exported as long CSVs: one
row per sample and date, ``sample_id, longitude, latitude, label, cube, <bands>, date``):

- ``samples_l8_rondonia_2bands_long.csv``: 160 Landsat-8 samples in Rondonia, 25 16-day
  composites 2018-07..2019-07 (NDVI, EVI), labelled Deforestation / Forest / Pasture /
  NatNonForest. Deforestation is a documented abrupt loss whose date is not given.
- ``samples_modis_ndvi_long.csv``: 1,218 MOD13Q1 samples in Mato Grosso, one Sep..Aug season
  each (12 composites, 2000-2016), labelled Cerrado / Forest / Pasture / Soy_Corn: normal
  seasons of a known land cover, no events.
- ``cerrado_2classes_long.csv``: 746 MOD13Q1 samples labelled Cerrado / Pasture, one season
  each at the full 16-day cadence (23 composites), 2000-2015: more normal seasons.
- ``point_mt_6bands_long.csv``: one MOD13Q1 point, 17 seasons 2000-2017: own history only.

The Landsat cube was regularised by sits: a composite with no clear pixel was filled by
linear interpolation between its clear neighbours (two thirds of the interior values, nearly
all of Nov..Apr, lie exactly on the straight line between their neighbours in NDVI and EVI at
once). A filled value is not a look, so by default such dates are ``cloudy`` -- what agrisat's
own zonal step would have reported under the rainy season's cloud.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agrisat.errors import AgrisatError
from benchmarks.real_series import RealSet, _book, shared_data

__all__ = [
    "FOREST_CROP",
    "interpolated",
    "sits_cerrado_seasons",
    "sits_modis_seasons",
    "sits_mt_point",
    "sits_rondonia",
    "split_parts",
]

#: book crop of the Deforestation and Forest samples: the cover before the event, so that the
#: label cannot leak into the peer groups
FOREST_CROP = "forest"
#: a value is a linear fill when it is the mean of its neighbours within the CSV's rounding
#: (4 decimals: each value is off by <= 5e-5, so the midpoint check by <= 1e-4)
FILL_TOL = 1.5e-4


def _read(name: str, root: Path | None) -> pd.DataFrame:
    f = (root or shared_data()) / "evaluation" / "sits" / name
    if not f.exists():
        raise AgrisatError(f"{f} is absent: sits' {name} is needed for this set")
    raw = pd.read_csv(f)
    need = {"sample_id", "longitude", "latitude", "label", "NDVI", "date"}
    if missing := need - set(raw.columns):
        raise AgrisatError(f"{f} lacks column(s) {sorted(missing)}: not a sits long export")
    # one label and one place per sample, one row per sample and date: else samples are mixed
    per = raw.groupby("sample_id")
    if (per["label"].nunique() > 1).any() or (per["longitude"].nunique() > 1).any():
        raise AgrisatError(f"{f}: a sample_id carries two labels or places; re-export the set")
    if raw.duplicated(["sample_id", "date"]).any():
        raise AgrisatError(f"{f}: a sample has two rows on one date; re-export the set")
    return raw.sort_values(["sample_id", "date"], kind="stable").reset_index(drop=True)


def interpolated(*series: np.ndarray, tol: float = FILL_TOL) -> np.ndarray:
    """Where a regular cube's value was filled by linear interpolation.

    Parameters
    ----------
    *series
        ``(samples, t)`` arrays of the same shape, one per band or index (NDVI, EVI ...).
    tol
        Largest distance from the neighbours' mean still counted as on their line.

    Returns
    -------
    numpy.ndarray
        ``(samples, t)`` booleans: True where every series lies on the straight line between
        its two neighbours (the first and last dates are never flagged: no neighbour). Two
        bands on the line together are a fill; a real look does that by chance very rarely.
    """
    out = np.ones(series[0].shape, dtype=bool)
    out[:, [0, -1]] = False
    for v in series:
        mid = np.abs(v[:, 1:-1] - 0.5 * (v[:, :-2] + v[:, 2:])) <= tol
        out[:, 1:-1] &= mid
    return out


def _observations(
    ids: np.ndarray,
    dates: np.ndarray,
    ndvi: np.ndarray,
    *,
    prefix: str,
    clear: np.ndarray | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Export-shaped observations of ``(samples, t)`` arrays (a composite is a look of one
    pixel unless ``clear`` says otherwise; nothing clear leaves the index empty).

    A composite carries no per-look quality band: its clear share is unknown (NaN), as for
    a scene without SCL, so a hazard it alone shows waits for a second look. Looks ``clear``
    rules out (sits' gap-fills) stay ``cloudy`` with clear share 0."""
    ok = np.isfinite(ndvi) if clear is None else clear & np.isfinite(ndvi)
    t = ndvi.shape[1]
    d = pd.to_datetime(pd.Series(dates.ravel())).dt.strftime("%Y-%m-%d").to_numpy()
    status = np.where(ok, "ok", np.where(np.isfinite(ndvi), "cloudy", "no_data"))
    frame = pd.DataFrame(
        {
            "farm_id": np.repeat(ids, t),
            "date": d,
            "item_id": [f"{prefix}_{x}" for x in d],
            "status": status.ravel(),
            "clear_fraction": np.where(ok, np.nan, 0.0).ravel(),
            "clear_pixels": ok.ravel().astype(float),
            "water_fraction": np.nan,
            "ndvi_mean": np.where(ok, ndvi, np.nan).ravel(),
            "ndvi_std": np.nan,
        }
    )
    for name, arr in (extra or {}).items():
        frame[f"{name}_mean"] = np.where(ok, arr, np.nan).ravel()
        frame[f"{name}_std"] = np.nan
    return frame


def _wide(raw: pd.DataFrame, col: str, t: int) -> np.ndarray:
    return raw[col].to_numpy(dtype=float).reshape(-1, t)


def sits_rondonia(root: Path | None = None, *, fills: str = "cloudy") -> RealSet:
    """160 Landsat-8 samples in Rondonia (2018-07..2019-07): 40 documented deforestations.

    Parameters
    ----------
    root
        ``shared/data`` (default: beside the repository).
    fills
        ``"cloudy"`` (default): values sits filled by linear interpolation
        (:func:`interpolated`, NDVI and EVI) are cloudy dates; ``"keep"``: every value is a
        clear look, as the cube holds them.

    Notes
    -----
    Book crop: ``forest`` for Deforestation and Forest samples (the cover before the event,
    so the label does not leak into peer groups), ``pasture`` and ``natnonforest`` for the
    others; one region (the samples lie within ~1.5 x 1 degrees, one Landsat-scale landscape
    and its rainy season). Events: one ``abrupt_loss`` per Deforestation sample, its window the
    series' whole span (the date is not documented). NDVI only carries detection (EVI is no
    moisture index), so the change route of drought, which needs NDMI, does not run.
    """
    if fills not in ("cloudy", "keep"):
        raise AgrisatError(f"fills must be 'cloudy' or 'keep', got {fills!r}")
    raw = _read("samples_l8_rondonia_2bands_long.csv", root)
    t = raw["date"].nunique()
    if len(raw) != raw["sample_id"].nunique() * t:
        raise AgrisatError("samples_l8_rondonia: samples do not share one date axis")
    ndvi, evi = _wide(raw, "NDVI", t), _wide(raw, "EVI", t)
    first = raw.groupby("sample_id", sort=True).first()
    ids = np.array([f"RO{int(s):03d}" for s in first.index])
    filled = interpolated(ndvi, evi) if fills == "cloudy" else np.zeros(ndvi.shape, dtype=bool)
    dates = raw["date"].to_numpy().reshape(-1, t)
    obs = _observations(ids, dates, ndvi, prefix="LC8_16D", clear=~filled)
    label = first["label"].to_numpy()
    crop = np.where(
        np.isin(label, ["Deforestation", "Forest"]), FOREST_CROP, np.char.lower(label.astype(str))
    )
    farms = _book(list(ids), regions=["rondonia"] * len(ids)).assign(crop=crop)
    span = (str(dates.min()), str(dates.max()))
    defo = ids[label == "Deforestation"]
    events = pd.DataFrame(
        {
            "event_id": [f"deforestation-{i}" for i in defo],
            "farm_id": defo,
            "hazard": "abrupt_loss",
            "start": span[0],
            "end": span[1],
            # the window is the series: no delay can be measured against it
            "start_known": False,
            "source": "sits samples_l8_rondonia_2bands: labelled Deforestation within the year",
        }
    )
    note = (
        f"{len(ids)} Landsat-8 pixels {span[0]}..{span[1]}, {t} 16-day composites "
        f"({pd.Series(label).value_counts().to_dict()}); crop forest = Deforestation + Forest; "
        f"one region; {int(filled.sum())} of {filled.size} values are sits' linear fills -> "
        f"{'cloudy' if fills == 'cloudy' else 'kept as looks'}; NDVI only"
    )
    return RealSet(
        "sits-rondonia" if fills == "cloudy" else "sits-rondonia-filled",
        obs,
        farms,
        note=note,
        events=events,
        extra={
            "label": dict(zip(ids, label, strict=True)),
            "sample_id": dict(zip(ids, first.index, strict=True)),
        },
    )


def sits_modis_seasons(root: Path | None = None, *, cell_deg: float = 0.0) -> RealSet:
    """1,218 MOD13Q1 samples of Mato Grosso, one Sep..Aug season each (2000-2016).

    A farm per sample; book crop = its label (``cerrado``, ``forest``, ``pasture``,
    ``soy_corn``: land cover as a loan book states the crop; none has a built-in calendar);
    region = the season (``2013-14``), so peers are the same label in the same season --
    across the whole state (~900 km) unless ``cell_deg`` > 0 adds a grid cell of that many
    degrees to the region (a branch's area). A region with fewer than ``min_peers`` farms of
    a crop falls back to the radius route (the book's ``x``/``y``: metres on a local
    equirectangular projection of the samples' coordinates). No documented events: every
    alert counts as false (an upper bound: a Cerrado pixel may burn). The samples are
    replayed season by season (``extra["parts"]``): a sample is watched only during its own
    season, as a loan is, instead of going stale for the years it has no data.
    """
    raw = _read("samples_modis_ndvi_long.csv", root)
    return _season_samples(raw, t=12, name="sits-modis", prefix="MT", cell_deg=cell_deg)


def sits_cerrado_seasons(root: Path | None = None) -> RealSet:
    """746 MOD13Q1 samples of Mato Grosso labelled Cerrado / Pasture, one Sep..Aug season
    each at the full 16-day cadence (23 composites), 2000-2015.

    Built like :func:`sits_modis_seasons` (crop = label, region = season, replayed season
    by season). 446 of its samples are places and seasons of ``samples_modis_ndvi`` seen
    every composite instead of every second one: the same land at twice the cadence.
    """
    raw = _read("cerrado_2classes_long.csv", root)
    return _season_samples(raw, t=23, name="sits-cerrado", prefix="CE")


def _season_samples(
    raw: pd.DataFrame, *, t: int, name: str, prefix: str, cell_deg: float = 0.0
) -> RealSet:
    """One farm per one-season sample (``t`` composites each), see :func:`sits_modis_seasons`."""
    first = raw.groupby("sample_id", sort=True).first()
    if len(raw) != len(first) * t:
        raise AgrisatError(f"{name}: each sample must hold {t} composites; re-export the set")
    ids = np.array([f"{prefix}{int(s):04d}" for s in first.index])
    dates = raw["date"].to_numpy().reshape(-1, t)
    y0 = pd.to_datetime(pd.Series(dates[:, 0])).dt.year.to_numpy()
    season = np.array([f"{y}-{(y + 1) % 100:02d}" for y in y0])
    obs = _observations(ids, dates, _wide(raw, "NDVI", t), prefix="MOD13Q1")
    label = first["label"].to_numpy()
    lon, lat = first["longitude"].to_numpy(float), first["latitude"].to_numpy(float)
    region = season
    if cell_deg > 0:
        cell = [f"{a:.0f}_{b:.0f}" for a, b in zip(lat // cell_deg, lon // cell_deg, strict=True)]
        region = np.array([f"{s}@{c}" for s, c in zip(season, cell, strict=True)])
    earth = 6_371_000.0
    farms = _book(list(ids), regions=list(region)).assign(
        crop=np.char.lower(label.astype(str)),
        x=np.radians(lon) * earth * np.cos(np.radians(np.mean(lat))),
        y=np.radians(lat) * earth,
    )
    rs = RealSet(
        name if cell_deg <= 0 else f"{name}-{cell_deg:g}deg",
        obs,
        farms,
        note=(
            f"{len(ids)} MOD13Q1 pixels, one Sep..Aug season each ({t} composites), "
            f"{min(season)}..{max(season)} ({pd.Series(label).value_counts().to_dict()}); "
            f"crop = label, region = season{f' x {cell_deg:g} deg cell' if cell_deg > 0 else ''}; "
            "replayed per season; no documented events"
        ),
        extra={
            "label": dict(zip(ids, label, strict=True)),
            "sample_id": dict(zip(ids, first.index, strict=True)),
        },
    )
    rs.extra["parts"] = split_parts(rs, dict(zip(ids, season, strict=True)))
    return rs


def split_parts(rs: RealSet, group: dict[str, str]) -> list[RealSet]:
    """``rs`` cut into one set per group of farms (``farm_id -> group``), replayed apart."""
    parts = []
    g = pd.Series(group)
    for key, members in g.groupby(g, sort=True):
        keep = set(members.index)
        parts.append(
            RealSet(
                f"{rs.name}:{key}",
                rs.observations[rs.observations["farm_id"].isin(keep)].reset_index(drop=True),
                rs.farms[rs.farms["farm_id"].isin(keep)].reset_index(drop=True),
            )
        )
    return parts


def sits_mt_point(root: Path | None = None) -> RealSet:
    """One MOD13Q1 point in Mato Grosso, 17 seasons 2000-09..2017-08 (label ``NoClass``).

    One farm, crop ``other``, no peers (a single series: own history carries detection). NDVI
    only: the file's MIR is MODIS band 7 (2.1 um), which with NIR makes an NBR, not the 1.6 um
    NDMI agrisat's moisture index means -- and the moisture index only serves the peer
    route, which a single farm does not have.
    """
    raw = _read("point_mt_6bands_long.csv", root)
    dates = raw["date"].to_numpy().reshape(1, -1)
    obs = _observations(
        np.array(["MT_POINT"]), dates, _wide(raw, "NDVI", dates.shape[1]), prefix="MOD13Q1"
    )
    return RealSet(
        "sits-mt-point",
        obs,
        _book(["MT_POINT"]),
        note=(
            f"1 MOD13Q1 point, {dates.shape[1]} composites {dates.min()}..{dates.max()}; "
            "no peers; no documented events"
        ),
    )
