"""Per-look features: own-history baseline, VCI, peers, previous look, calendar.

Every feature of a look depends only on data up to that look's date (earlier seasons, the
previous look, peers on the same date), so features are *causal*: computing them on a longer
table does not change earlier rows. That keeps alert onsets stable across nightly runs and lets
the replay compute them once.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping

import dask
import numpy as np
import pandas as pd

from ..calendar import Calendar, stage_table
from ..series import clear_looks
from .settings import DEFAULT_SETTINGS, DetectSettings

__all__ = ["look_features", "own_history", "peer_stats", "standing_change"]

log = logging.getLogger(__name__)

_YEAR = 365.25


def _masked_median(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise median of ``values`` (2-D, finite) where ``mask``; returns (median, count)."""
    arr = np.where(mask, values, np.inf)
    arr.sort(axis=1)
    n = mask.sum(axis=1)
    rows = np.arange(arr.shape[0])
    lo = arr[rows, np.maximum((n - 1) // 2, 0)]
    hi = arr[rows, np.maximum(n // 2, 0)] if arr.shape[1] else lo
    med = np.where(n > 0, (lo + hi) / 2, np.nan)
    return med, n


def _own_block(
    t: np.ndarray, v: np.ndarray, water: np.ndarray, eval_mask: np.ndarray, s: DetectSettings
) -> dict[str, np.ndarray]:
    """Own-history statistics of one farm's looks (rows in ``eval_mask``) against its history."""
    ti = t[eval_mask]
    out = {
        k: np.full(ti.size, np.nan)
        for k in ("expected", "expected_mid", "own_scale", "own_n", "vci", "hist_water")
    }
    if ti.size == 0 or t.size == 0:
        return out
    hist = t[None, :] <= ti[:, None] - s.history_min_gap_days
    if not hist.any():
        return out
    vv = np.broadcast_to(v, hist.shape)
    tol = s.phenology_tolerance_days
    lags = sorted({-tol, -tol // 2, 0, tol // 2, tol})
    meds = []
    mask0 = hist
    for lag in lags:
        dist = np.abs(((t[None, :] - ti[:, None] - lag + _YEAR / 2) % _YEAR) - _YEAR / 2)
        m = hist & (dist <= s.history_window_days)
        med, n = _masked_median(vv, m)
        meds.append(np.where(n >= s.min_history_looks, med, np.nan))
        if lag == 0:
            mask0, n0, med0 = m, n, med
    enough = n0 >= s.min_history_looks
    mad, _ = _masked_median(np.abs(vv - med0[:, None]), mask0)
    stacked = np.vstack(meds)
    with np.errstate(all="ignore"):
        low = np.nanmin(np.where(np.isfinite(stacked), stacked, np.inf), axis=0)
    low = np.where(np.isfinite(low), low, np.nan)
    vmin = np.where(mask0, vv, np.inf).min(axis=1)
    vmax = np.where(mask0, vv, -np.inf).max(axis=1)
    wv = np.broadcast_to(np.nan_to_num(water, nan=0.0), hist.shape)
    wmax = np.where(mask0, wv, -np.inf).max(axis=1)
    vi = v[eval_mask]
    span = np.where(vmax - vmin > 1e-6, vmax - vmin, np.nan)
    out["expected"] = np.where(enough, np.minimum(low, med0), np.nan)
    out["expected_mid"] = np.where(enough, med0, np.nan)
    out["own_scale"] = np.where(enough, np.maximum(1.4826 * mad, s.scale_floor), np.nan)
    out["own_n"] = n0.astype(float)
    out["vci"] = np.where(enough, (vi - vmin) / span, np.nan)
    out["hist_water"] = np.where(enough, wmax, np.nan)
    return out


def _own_chunk(
    chunk: pd.DataFrame, eval_from: pd.Timestamp | None, s: DetectSettings
) -> pd.DataFrame:
    parts = []
    for _, g in chunk.groupby("farm_id", sort=False):
        t = (g["date"] - pd.Timestamp("1970-01-01")).dt.days.to_numpy(dtype=float)
        em = (
            np.ones(len(g), dtype=bool)
            if eval_from is None
            else (g["date"] >= eval_from).to_numpy()
        )
        res = _own_block(
            t, g["value"].to_numpy(dtype=float), g["water_fraction"].to_numpy(dtype=float), em, s
        )
        parts.append(pd.DataFrame(res, index=g.index[em]))
    cols = ["expected", "expected_mid", "own_scale", "own_n", "vci", "hist_water"]
    return pd.concat(parts) if parts else pd.DataFrame(columns=cols, dtype=float)


def own_history(
    looks: pd.DataFrame,
    settings: DetectSettings = DEFAULT_SETTINGS,
    *,
    eval_from: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Own-history baseline of each clear look: robust expected value, scale and VCI.

    ``looks`` has ``farm_id``, ``date``, ``value``, ``water_fraction`` (one farm's rows
    together). For each look, earlier-season looks within ``history_window_days`` of the same
    day of year give the median (``expected_mid``) and MAD (``own_scale``, floored); the
    ``expected`` used for deficits is the lowest such median over lags of up to
    ``phenology_tolerance_days`` (an early or late season is not a deficit). ``vci`` is the
    Vegetation Condition Index against the min/max of the same window. Farm chunks run as Dask
    tasks when there are at least ``parallel_min_farms`` farms.
    """
    farms = looks["farm_id"].unique()
    if len(farms) < settings.parallel_min_farms:
        return _own_chunk(looks, eval_from, settings)
    codes = pd.Series(np.arange(len(farms)) // settings.chunk_farms, index=farms)
    chunk_of = looks["farm_id"].map(codes).to_numpy()
    tasks = [
        dask.delayed(_own_chunk)(looks[chunk_of == c], eval_from, settings)
        for c in np.unique(chunk_of)
    ]
    log.debug("own history over %d farms in %d dask tasks", len(farms), len(tasks))
    return pd.concat(dask.compute(*tasks))


def _robust_group(
    df: pd.DataFrame, keys: list[str], col: str
) -> tuple[pd.Series, pd.Series, pd.Series]:
    g = df.groupby(keys, sort=False)[col]
    med = g.transform("median")
    n = g.transform("count")
    mad = (df[col] - med).abs().groupby([df[k] for k in keys], sort=False).transform("median")
    return med, mad, n


def peer_stats(looks: pd.DataFrame, settings: DetectSettings = DEFAULT_SETTINGS) -> pd.DataFrame:
    """Peers of each clear look: same crop and region on the same date, else same crop.

    The region group is used when it has ``min_peers`` clear looks that date, otherwise the crop
    group; with fewer than ``min_peers`` there are no peers (NaN). Returns ``peer_median``,
    ``peer_scale`` (1.4826 x MAD, floored), ``peer_n``, ``peer_water``, ``peer_ndwi``,
    ``peer_level`` (``region``/``crop``/``none``) and ``peer_deficit_median`` when ``own_deficit``
    is a column of ``looks``.
    """
    s = settings
    regional = looks["region"].astype(str) != ""
    out = pd.DataFrame(index=looks.index)
    med1, mad1, n1 = _robust_group(looks, ["crop", "region", "date"], "value")
    med2, mad2, n2 = _robust_group(looks, ["crop", "date"], "value")
    use1 = regional & (n1 >= s.min_peers)
    use2 = ~use1 & (n2 >= s.min_peers)
    out["peer_level"] = np.where(use1, "region", np.where(use2, "crop", "none"))
    out["peer_median"] = np.where(use1, med1, np.where(use2, med2, np.nan))
    out["peer_scale"] = np.maximum(1.4826 * np.where(use1, mad1, mad2), s.scale_floor)
    out.loc[~(use1 | use2), "peer_scale"] = np.nan
    out["peer_n"] = np.where(use1, n1, np.where(use2, n2, 0)).astype(float)
    extra = [c for c in ("water_fraction", "ndwi", "moist", "own_deficit") if c in looks.columns]
    names = {
        "water_fraction": "peer_water",
        "ndwi": "peer_ndwi",
        "moist": "peer_moist",
        "own_deficit": "peer_deficit_median",
    }
    for col in extra:
        a = looks.groupby(["crop", "region", "date"], sort=False)[col].transform("median")
        b = looks.groupby(["crop", "date"], sort=False)[col].transform("median")
        out[names[col]] = np.where(use1, a, np.where(use2, b, np.nan))
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
    looks = clear_looks(observations, index=s.index, min_clear_fraction=s.min_clear_fraction)
    attrs = pd.DataFrame(
        {
            "farm_id": farms["farm_id"].astype(str).to_numpy(),
            "crop": farms["crop"].astype(str).to_numpy(),
            "region": (
                farms["region"].fillna("").astype(str).to_numpy()
                if "region" in farms.columns
                else ""
            ),
        }
    )
    looks = looks.assign(farm_id=looks["farm_id"].astype(str)).merge(
        attrs, on="farm_id", how="inner"
    )
    looks = looks.sort_values(["farm_id", "date"], kind="stable").reset_index(drop=True)
    cols = {
        "farm_id": looks["farm_id"],
        "date": looks["date"],
        "crop": looks["crop"],
        "region": looks["region"],
        "value": looks[f"{s.index}_mean"].astype(float),
        "clear_fraction": looks.get("clear_fraction", pd.Series(1.0, index=looks.index)).astype(
            float
        ),
        "water_fraction": looks.get("water_fraction", pd.Series(np.nan, index=looks.index)).astype(
            float
        ),
        "ndwi": looks.get("ndwi_mean", pd.Series(np.nan, index=looks.index)).astype(float),
        "moist": looks.get(
            f"{s.moisture_index}_mean" if s.moisture_index else "",
            pd.Series(np.nan, index=looks.index),
        ).astype(float),
    }
    f = pd.DataFrame(cols)
    if f.empty:
        return f
    f = pd.concat([f, stage_table(f["crop"], f["date"], calendars=calendars)], axis=1)
    f = f.join(own_history(f, s, eval_from=eval_from))
    with np.errstate(all="ignore"):
        f["own_deficit"] = (f["expected"] - f["value"]) / f["expected"]
        f["own_z"] = (f["value"] - f["expected"]) / f["own_scale"]
    f = f.join(peer_stats(f, s))
    with np.errstate(all="ignore"):
        f["peer_z"] = (f["value"] - f["peer_median"]) / f["peer_scale"]
        f["peer_deficit"] = (f["peer_median"] - f["value"]) / f["peer_median"]
    g = f.groupby("farm_id", sort=False)
    f["prev_value"] = g["value"].shift(1)
    f["prev_date"] = g["date"].shift(1)
    # Peers' median on the previous look's date, same peer level as now.
    key = f[["crop", "region", "date", "peer_level", "peer_median"]].drop_duplicates(
        ["crop", "region", "date", "peer_level"]
    )
    prev = f[["crop", "region", "prev_date", "peer_level"]].merge(
        key.rename(columns={"date": "prev_date", "peer_median": "prev_peer_median"}),
        on=["crop", "region", "prev_date", "peer_level"],
        how="left",
    )
    f["prev_peer_median"] = prev["prev_peer_median"].to_numpy()
    season = f["season_id"].fillna("none").astype(str)
    f["season_max"] = f.groupby([f["farm_id"], season], sort=False)["value"].cummax()
    # The peers' highest median so far this season, seen from this farm (ripening test).
    f["peer_season_max"] = f.groupby([f["farm_id"], season], sort=False)["peer_median"].cummax()
    f = f.join(standing_change(f, s))
    f["peer_lagged"] = _peer_lagged(f, s.change_lag_guard_days)
    return f


def _ref_standing(t: np.ndarray, res: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Median of ``res`` over each look's earlier looks between ``lo`` and ``hi`` days back."""
    ok = np.isfinite(res)
    age = t[:, None] - t[None, :]
    m = (age >= lo) & (age <= hi) & ok[None, :]
    med, n = _masked_median(np.where(ok, res, 0.0)[None, :].repeat(t.size, 0), m)
    return np.where(n > 0, med, np.nan)


def standing_change(f: pd.DataFrame, settings: DetectSettings = DEFAULT_SETTINGS) -> pd.DataFrame:
    """Change of each look's standing against its peers (a difference in differences).

    Standing is the index minus the peers' same-date median; its usual level is the farm's
    median standing over its looks ``change_ref_min_days``..``change_ref_max_days`` before.
    A farm that keeps a constant offset to its peers (soil, variety, management) has zero
    change; weather shared by the region cancels. The change is standardised by the robust
    spread of the same change among the peers on the same date (floored). Computed for the
    vegetation index (``change``, ``change_rel``, ``change_z``) and the moisture index
    (``moist_change``, ``moist_change_z``). Causal: only earlier looks and same-date peers.
    """
    s = settings
    out = pd.DataFrame(index=f.index)
    t_all = (f["date"] - pd.Timestamp("1970-01-01")).dt.days.to_numpy(dtype=float)
    codes = f["farm_id"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1], True])
    regional = f["peer_level"] == "region"
    for name, col, peer in (
        ("change", "value", "peer_median"),
        ("moist_change", "moist", "peer_moist"),
    ):
        res = (f[col] - f[peer]).to_numpy(dtype=float)
        ref = np.full(res.size, np.nan)
        for a, b in itertools.pairwise(bounds):
            ref[a:b] = _ref_standing(
                t_all[a:b], res[a:b], s.change_ref_min_days, s.change_ref_max_days
            )
        d = pd.Series(res - ref, index=f.index)
        tmp = f[["crop", "region", "date"]].assign(d=d)
        med1, mad1, _ = _robust_group(tmp, ["crop", "region", "date"], "d")
        med2, mad2, _ = _robust_group(tmp, ["crop", "date"], "d")
        med = np.where(regional, med1, med2)
        scale = np.maximum(1.4826 * np.where(regional, mad1, mad2), s.change_scale_floor)
        out[name] = d
        with np.errstate(all="ignore"):
            out[f"{name}_z"] = np.where(f["peer_level"] != "none", (d - med) / scale, np.nan)
    with np.errstate(all="ignore"):
        out["change_rel"] = out["change"] / f["peer_median"]
    return out


def _peer_lagged(f: pd.DataFrame, lag_days: int) -> pd.Series:
    """The peers' median (same peer level) on their latest date at least ``lag_days`` before
    each look, within one revisit gap of it (NaN when there is none)."""
    if lag_days <= 0:
        return pd.Series(np.nan, index=f.index)
    keys = ["crop", "region", "peer_level"]
    table = (
        f.loc[f["peer_level"] != "none", [*keys, "date", "peer_median"]]
        .drop_duplicates([*keys, "date"])
        .rename(columns={"date": "lag_date", "peer_median": "peer_lagged"})
        .sort_values("lag_date", kind="stable")
    )
    left = f[keys].assign(lag_date=f["date"] - pd.Timedelta(days=lag_days), _row=np.arange(len(f)))
    left = left.sort_values("lag_date", kind="stable")
    merged = pd.merge_asof(
        left, table, on="lag_date", by=keys, direction="backward",
        tolerance=pd.Timedelta(days=max(lag_days, 10)),
    )  # fmt: skip
    return pd.Series(merged.sort_values("_row")["peer_lagged"].to_numpy(), index=f.index)
