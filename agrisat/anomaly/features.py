"""Per-look features: own-history baseline, VCI, peers, previous look, calendar.

Every feature of a look depends only on data up to that look's date (earlier seasons, the
previous look, peers on the same date), so features are *causal*: computing them on a longer
table does not change earlier rows. That keeps alert onsets stable across nightly runs and lets
the replay compute them once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..arrowops import farm_date_order, pick_labels
from ..calendar import Calendar, stage_table
from ..series import clear_looks
from .history import own_history
from .lagged import peer_lagged, prev_peer_median
from .radius import RadiusPeers, farm_coordinates
from .seasonal import seasonal_gap, seasonal_standing
from .settings import DEFAULT_SETTINGS, DetectSettings

__all__ = [
    "BASE_COLUMNS",
    "RadiusPeers",
    "farm_coordinates",
    "look_base",
    "look_features",
    "own_history",
    "own_scores",
    "peer_scores",
    "peer_stats",
    "season_key",
    "season_maxima",
]

log = logging.getLogger(__name__)


def farm_attributes(farms: pd.DataFrame) -> pd.DataFrame:
    """``farm_id``, ``crop`` and ``region`` of the book as strings ("" where no region)."""
    # the string columns as they are (a night asks four times: through NumPy each was a
    # Python string per farm and column, and a re-inference of the dtype)
    return pd.DataFrame(
        {
            "farm_id": farms["farm_id"].astype(str).reset_index(drop=True),
            "crop": farms["crop"].astype(str).reset_index(drop=True),
            "region": (
                farms["region"].fillna("").astype(str).reset_index(drop=True)
                if "region" in farms.columns
                else ""
            ),
        }
    )


def _group_codes(df: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """One integer code per group of ``keys`` (NaN where a key is missing): the string keys
    are factorised once and every later groupby runs on integers."""
    return df.groupby(keys, sort=False).ngroup().to_numpy()


def _robust_by(values: pd.Series, codes: np.ndarray) -> tuple[pd.Series, pd.Series, pd.Series]:
    g = values.groupby(codes, sort=False)
    med = g.transform("median")
    n = g.transform("count")
    mad = (values - med).abs().groupby(codes, sort=False).transform("median")
    return med, mad, n


def _robust_group(
    df: pd.DataFrame, keys: list[str], col: str
) -> tuple[pd.Series, pd.Series, pd.Series]:
    return _robust_by(df[col], _group_codes(df, keys))


def peer_stats(
    looks: pd.DataFrame,
    settings: DetectSettings = DEFAULT_SETTINGS,
    *,
    radius: RadiusPeers | None = None,
) -> pd.DataFrame:
    """Peers of each clear look: same crop on the same date -- in the farm's region, else
    within ``peer_radius_km`` of it, else anywhere.

    The region group is used when it has ``min_peers`` clear looks that date. Looks of farms
    without a region, or whose region has fewer than ``min_peers`` farms of their crop, are
    judged against the same-crop farms within the radius (``radius``, see
    :class:`RadiusPeers`) when ``min_peers`` of them were seen that date; otherwise the crop
    group; with fewer than ``min_peers`` there are no peers (NaN). Returns ``peer_median``,
    ``peer_scale`` (1.4826 x MAD, floored), ``peer_n``, ``peer_water``, ``peer_ndwi``,
    ``peer_level`` (``region``/``radius``/``crop``/``none``), ``peer_deficit_median`` when
    ``own_deficit`` is a column of ``looks``, and ``radius_median`` (the radius group's
    median, also on looks that used another level; NaN where there is none).
    """
    s = settings
    regional = looks["region"].astype(str) != ""
    out = pd.DataFrame(index=looks.index)
    by_region = _group_codes(looks, ["crop", "region", "date"])
    by_crop = _group_codes(looks, ["crop", "date"])
    med1, mad1, n1 = _robust_by(looks["value"], by_region)
    med2, mad2, n2 = _robust_by(looks["value"], by_crop)
    use1 = regional & (n1 >= s.min_peers)
    medr, madr, nr = _radius_robust(looks["value"], radius)
    user = ~use1 & (nr >= s.min_peers)
    use2 = ~use1 & ~user & (n2 >= s.min_peers)
    level = np.where(use1, 0, np.where(user, 1, np.where(use2, 2, 3)))
    # the labels taken by code (a fixed-width string array is converted row by row)
    out["peer_level"] = (
        pick_labels(_LEVELS, level, out.index) if level.size else np.array(_LEVELS)[level]
    )
    out["peer_median"] = np.where(use1, med1, np.where(user, medr, np.where(use2, med2, np.nan)))
    mad = np.where(use1, mad1, np.where(user, madr, mad2))
    out["peer_scale"] = np.maximum(1.4826 * mad, s.scale_floor)
    out.loc[~(use1 | user | use2), "peer_scale"] = np.nan
    out["peer_n"] = np.where(use1, n1, np.where(user, nr, np.where(use2, n2, 0))).astype(float)
    out["radius_median"] = np.where(nr >= s.min_peers, medr, np.nan)
    extra = [c for c in ("water_fraction", "ndwi", "moist", "own_deficit") if c in looks.columns]
    names = {
        "water_fraction": "peer_water",
        "ndwi": "peer_ndwi",
        "moist": "peer_moist",
        "own_deficit": "peer_deficit_median",
    }
    for col in extra:
        a = looks[col].groupby(by_region, sort=False).transform("median")
        b = looks[col].groupby(by_crop, sort=False).transform("median")
        r = _radius_robust(looks[col], radius, median_only=True)[0] if user.any() else np.nan
        out[names[col]] = np.where(use1, a, np.where(user, r, np.where(use2, b, np.nan)))
    # A farm whose crop is too rare in its region is compared with the crop elsewhere; what
    # its region shares that date (weather: a regional stress, a wet spell) is added back, so
    # a region-wide condition does not make its few farms of that crop look idiosyncratic.
    # Radius peers of such a farm may lie in other regions: each is first moved out of its
    # own region's shared condition and into the farm's (the median of value - its region's
    # shift, plus the farm's region's shift). Farms without a region take their neighbours
    # as they are: their weather is the neighbours'.
    fallback = (use2 & regional).to_numpy()
    rad_regional = (regional & (nr >= s.min_peers)).to_numpy()
    if fallback.any() or rad_regional.any():
        usable = n2 >= s.min_peers
        for col, name in (("value", "peer_median"), ("moist", "peer_moist")):
            if col not in looks.columns:
                continue
            crop_med = med2 if col == "value" else looks[col].groupby(by_crop).transform("median")
            shift = _region_shift(looks, looks[col] - crop_med, usable, s)
            out.loc[fallback, name] = out.loc[fallback, name] + shift[fallback]
            if not rad_regional.any() or radius is None:
                continue
            moved = radius.stats((looks[col] - shift).to_numpy(dtype=float), mad=False)[0] + shift
            take = rad_regional & user.to_numpy()
            out.loc[take, name] = moved[take]
            if col == "value":
                out.loc[rad_regional, "radius_median"] = moved[rad_regional]
    return out


#: :func:`peer_stats`' ``peer_level`` labels, by code
_LEVELS = ("region", "radius", "crop", "none")


def _radius_robust(
    values: pd.Series, radius: RadiusPeers | None, *, median_only: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, MAD and count of ``values`` over each look's radius group (NaN, NaN, 0 for
    looks without one)."""
    if radius is None:
        nan = np.full(len(values), np.nan)
        return nan, nan, np.zeros(len(values))
    return radius.stats(values.to_numpy(dtype=float), mad=not median_only)


def _region_shift(
    looks: pd.DataFrame, resid: pd.Series, usable: pd.Series, s: DetectSettings
) -> np.ndarray:
    """Per look, the median residual (index minus its crop's same-date median) of its
    region's green looks of every crop that date; 0 with fewer than ``min_peers`` of them."""
    ok = usable & (looks["value"] >= s.green_min) & resid.notna() & (looks["region"] != "")
    keys = [looks["region"].astype(str), looks["date"]]
    med = resid.where(ok).groupby(keys, sort=False).transform("median")
    n = ok.astype(int).groupby(keys, sort=False).transform("sum")
    return np.where((n >= s.min_peers) & med.notna(), med, 0.0)


#: Columns of :func:`look_base` (``look_features``' first columns, in its order).
BASE_COLUMNS: tuple[str, ...] = (
    "farm_id", "date", "crop", "region", "value", "clear_fraction", "water_fraction", "ndwi",
    "moist",
)  # fmt: skip


def look_base(
    observations: pd.DataFrame,
    farms: pd.DataFrame,
    *,
    settings: DetectSettings = DEFAULT_SETTINGS,
    attrs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per clear look of the book's farms, sorted by farm and date, with
    :data:`BASE_COLUMNS`: the frame :func:`look_features` and the partitioned first night
    (:mod:`agrisat.anomaly.firstnight`) start from (the observations are not needed after
    it). ``attrs``: :func:`farm_attributes` of ``farms`` when the caller has them."""
    s = settings
    looks = clear_looks(observations, index=s.index, min_clear_fraction=s.min_clear_fraction)
    attrs = farm_attributes(farms) if attrs is None else attrs
    looks = _with_attributes(looks.assign(farm_id=looks["farm_id"].astype(str)), attrs)
    order = farm_date_order(looks)
    if (np.diff(order) != 1).any():  # already in order when the ids were strings
        looks = looks.take(order).reset_index(drop=True)
    idx = looks.index

    def col(name: str, default: float) -> pd.Series:
        return looks.get(name, pd.Series(default, index=idx)).astype(float)

    moist = f"{s.moisture_index}_mean" if s.moisture_index else ""
    return pd.DataFrame(
        {
            "farm_id": looks["farm_id"],
            "date": looks["date"],
            "crop": looks["crop"],
            "region": looks["region"],
            "value": looks[f"{s.index}_mean"].astype(float),
            "clear_fraction": col("clear_fraction", 1.0),
            "water_fraction": col("water_fraction", np.nan),
            "ndwi": col("ndwi_mean", np.nan),
            "moist": col(moist, np.nan),
        }
    )


def _with_attributes(looks: pd.DataFrame, attrs: pd.DataFrame) -> pd.DataFrame:
    """``looks.merge(attrs, on="farm_id", how="inner")`` (rows in ``looks``' order, a fresh
    RangeIndex) by one lookup of the ids: the merge hashed every look's id string and copied
    every column (~0.15 s at 100,000 farms x 8 dates). Duplicate book ids or shared column
    names: the merge."""
    book = pd.Index(attrs["farm_id"])
    extra = [c for c in attrs.columns if c != "farm_id"]
    if not book.is_unique or any(c in looks.columns for c in extra):
        return looks.merge(attrs, on="farm_id", how="inner")
    at = book.get_indexer(looks["farm_id"])
    rows = np.flatnonzero(at >= 0)
    out = looks.take(rows).reset_index(drop=True)
    for c in extra:
        out[c] = attrs[c].take(at[rows]).reset_index(drop=True)
    return out


def look_features(
    observations: pd.DataFrame,
    farms: pd.DataFrame,
    *,
    settings: DetectSettings = DEFAULT_SETTINGS,
    calendars: Mapping[str, Calendar] | None = None,
    eval_from: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One row per clear look with everything the detectors read.

    Only farms present in ``farms`` are used. ``eval_from`` limits the (costly) own-history
    baseline to looks from that date on; earlier rows keep NaN baselines.
    """
    s = settings
    attrs = farm_attributes(farms)
    f = look_base(observations, farms, settings=s, attrs=attrs)
    if f.empty:
        return f
    f = pd.concat([f, stage_table(f["crop"], f["date"], calendars=calendars)], axis=1)
    g = f.groupby("farm_id", sort=False)
    f["prev_value"] = g["value"].shift(1)
    f["prev_date"] = g["date"].shift(1)
    f = f.join(own_history(f, s, eval_from=eval_from))
    own_scores(f)
    radius = RadiusPeers.build(f, attrs, farm_coordinates(farms), s)
    f = f.join(peer_stats(f, s, radius=radius))
    peer_scores(f)
    f["usual_gap"] = seasonal_gap(f, s, eval_from=eval_from)
    f = f.join(seasonal_standing(f))
    f["prev_peer_median"] = prev_peer_median(
        f, f, lambda: f.groupby("farm_id", sort=False)["radius_median"].shift(1)
    )
    season_maxima(f)
    # (a module of its own that builds on this one's robust statistics: imported here)
    from .change import standing_change

    f = f.join(standing_change(f, s, radius=radius))
    f["peer_lagged"] = peer_lagged(f, s.change_lag_guard_days)
    f["peer_lagged_max"] = peer_lagged(f, s.late_max_lag_days)
    return f


def own_scores(f: pd.DataFrame) -> None:
    """``own_deficit`` and ``own_z`` of each look from its own-history ``expected`` and
    ``own_scale`` (set on ``f``)."""
    with np.errstate(all="ignore"):
        f["own_deficit"] = (f["expected"] - f["value"]) / f["expected"]
        f["own_z"] = (f["value"] - f["expected"]) / f["own_scale"]


def peer_scores(f: pd.DataFrame) -> None:
    """``peer_z`` and ``peer_deficit`` of each look from its peers' ``peer_median`` and
    ``peer_scale`` (set on ``f``)."""
    with np.errstate(all="ignore"):
        f["peer_z"] = (f["value"] - f["peer_median"]) / f["peer_scale"]
        f["peer_deficit"] = (f["peer_median"] - f["value"]) / f["peer_median"]


def season_maxima(f: pd.DataFrame) -> None:
    """``season_key``, and per farm and season so far the highest ``value`` (``season_max``)
    and the peers' highest median seen from this farm (``peer_season_max``: the ripening
    test), on ``f`` sorted by farm and date (set on ``f``)."""
    season = f["season_key"] = season_key(f)
    f["season_max"] = f.groupby([f["farm_id"], season], sort=False)["value"].cummax()
    f["peer_season_max"] = f.groupby([f["farm_id"], season], sort=False)["peer_median"].cummax()


def season_key(f: pd.DataFrame, before: pd.Series | None = None) -> pd.Series:
    """The run each look's season maxima are taken over: its crop season (``season_id``), or,
    off season, ``none@`` + the season it follows (``none@start`` before any).

    One key per stretch of off-season looks, not one for all of a farm's off-seasons (a
    running maximum across winters a year apart). ``f`` is sorted by farm and date;
    ``before`` (per row) is the key of the farm's latest earlier look, for looks that
    continue a farm's history (an incremental night).
    """
    sid = f["season_id"]
    follows = sid.groupby(f["farm_id"], sort=False).ffill()
    if before is not None:
        follows = follows.fillna(before.astype(object).str.removeprefix("none@"))
    return sid.where(sid.notna(), "none@" + follows.fillna("start").astype(str)).astype(str)
