"""The peer-group medians of earlier dates a look reads: on its previous look's date
(:func:`prev_peer_median`) and some days back (:func:`peer_lagged`).

Both are lookups by crop, region and peer level (or farm) and date. As pandas merges they
re-hashed every look's key strings on each call (~0.13 s and ~0.05 s a call at 100,000
farms x 8 dates, called three times a night); here the keys are coded once and the lookups
are binary searches (:mod:`.keyed`), with the merges kept for keys with missing values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from .keyed import asof_backward, first_rows, joint_codes, nanos

__all__ = ["peer_lagged", "prev_peer_median"]

_KEYS = ["crop", "region", "peer_level"]


def prev_peer_median(
    f: pd.DataFrame, groups: pd.DataFrame, prev_radius: Callable[[], pd.Series]
) -> pd.Series:
    """The peers' median on each look's previous date (``prev_date``), at the look's peer
    level, from ``groups`` (``crop``, ``region``, ``date``, ``peer_level``, ``peer_median``).
    Radius groups are the farm's own: those looks take ``prev_radius()`` (the previous look's
    radius median; called only when some look is judged by radius)."""
    if groups is f:  # the same frame (the nights'): coded once
        one = joint_codes([[f[k] for k in _KEYS]])
        codes = None if one is None else [one[0], one[0]]
    else:
        codes = joint_codes([[f[k] for k in _KEYS], [groups[k] for k in _KEYS]])
    gt = nanos(groups["date"])
    if codes is None or (gt == np.iinfo(np.int64).min).any():
        return _prev_peer_median_pandas(f, groups, prev_radius)
    fk, gk = codes
    keep = first_rows(gk, gt)
    values = groups["peer_median"].to_numpy(dtype=float)[keep]
    # an exact match of the date: the latest date at or before it, no earlier
    found = asof_backward(gk[keep], gt[keep], values, fk, nanos(f["prev_date"]), 0)
    if found is None:
        return _prev_peer_median_pandas(f, groups, prev_radius)
    out = pd.Series(found, index=f.index)
    by_radius = (f["peer_level"] == "radius").to_numpy()
    if by_radius.any():
        out[by_radius] = prev_radius()[by_radius]
    return out


def peer_lagged(f: pd.DataFrame, lag_days: int, *, rows: int | None = None) -> pd.Series:
    """The peers' median (same peer level) on their latest date at least ``lag_days`` before
    each look, within one revisit gap of it (NaN when there is none). A radius group is the
    farm's own: its median on the farm's own looks stands in for the peers' dates.

    ``rows``: only the first ``rows`` looks of ``f`` are asked about (the others are the
    peers' and the farms' earlier looks they lag to); the result is theirs."""
    n = len(f) if rows is None else int(rows)
    if lag_days <= 0:
        return pd.Series(np.nan, index=f.index[:n])
    out = _peer_lagged_coded(f, lag_days, n)
    return _peer_lagged_pandas(f, lag_days, n) if out is None else out


def _peer_lagged_coded(f: pd.DataFrame, lag_days: int, n: int) -> pd.Series | None:
    """:func:`peer_lagged` on coded keys; ``None`` where the merges' rules for missing keys
    or ties would apply."""
    tol = pd.Timedelta(days=max(lag_days, 10)).value
    lag = pd.Timedelta(days=lag_days).value
    codes = joint_codes([[f[k] for k in _KEYS]])
    t = nanos(f["date"])
    if codes is None or (t == np.iinfo(np.int64).min).any():
        return None
    code = codes[0]
    level = f["peer_level"]
    radial = (level == "radius").to_numpy()
    rows = np.flatnonzero((level != "none").to_numpy() & ~radial)
    keep = rows[first_rows(code[rows], t[rows])]
    median = f["peer_median"].to_numpy(dtype=float)
    out = asof_backward(code[keep], t[keep], median[keep], code[:n], t[:n] - lag, tol)
    if out is None:
        return None
    asked = radial[:n]
    if asked.any():
        farm, _ = pd.factorize(f["farm_id"])
        radius = f["radius_median"].to_numpy(dtype=float)
        have = np.flatnonzero(~np.isnan(radius))
        at = np.flatnonzero(asked)
        if (farm < 0).any():
            return None
        got = asof_backward(farm[have], t[have], radius[have], farm[at], t[at] - lag, tol)
        if got is None:
            return None
        out[at] = got
    return pd.Series(out, index=f.index[:n])


def _prev_peer_median_pandas(
    f: pd.DataFrame, groups: pd.DataFrame, prev_radius: Callable[[], pd.Series]
) -> pd.Series:
    """:func:`prev_peer_median` by a pandas merge (keys with missing values)."""
    keys = ["crop", "region", "date", "peer_level"]
    key = groups[[*keys, "peer_median"]].drop_duplicates(keys)
    prev = f[["crop", "region", "prev_date", "peer_level"]].merge(
        key.rename(columns={"date": "prev_date", "peer_median": "prev_peer_median"}),
        on=["crop", "region", "prev_date", "peer_level"],
        how="left",
    )
    out = pd.Series(prev["prev_peer_median"].to_numpy(), index=f.index)
    by_radius = (f["peer_level"] == "radius").to_numpy()
    if by_radius.any():
        out[by_radius] = prev_radius()[by_radius]
    return out


def _peer_lagged_pandas(f: pd.DataFrame, lag_days: int, n: int) -> pd.Series:
    """:func:`peer_lagged` by ``merge_asof`` (keys with missing values, ties)."""
    tol = pd.Timedelta(days=max(lag_days, 10))
    radial = f["peer_level"] == "radius"
    keys = ["crop", "region", "peer_level"]
    table = (
        f.loc[(f["peer_level"] != "none") & ~radial, [*keys, "date", "peer_median"]]
        .drop_duplicates([*keys, "date"])
        .rename(columns={"date": "lag_date", "peer_median": "peer_lagged"})
        .sort_values("lag_date", kind="stable")
    )
    q = f.iloc[:n] if n < len(f) else f
    left = q[keys].assign(lag_date=q["date"] - pd.Timedelta(days=lag_days), _row=np.arange(n))
    left = left.sort_values("lag_date", kind="stable")
    merged = pd.merge_asof(left, table, on="lag_date", by=keys, direction="backward", tolerance=tol)
    out = pd.Series(merged.sort_values("_row")["peer_lagged"].to_numpy(), index=q.index)
    asked = radial.to_numpy()[:n]
    if asked.any():
        own = (
            f.loc[f["radius_median"].notna(), ["farm_id", "date", "radius_median"]]
            .rename(columns={"date": "lag_date", "radius_median": "peer_lagged"})
            .sort_values("lag_date", kind="stable")
        )
        ask = q.loc[asked, ["farm_id"]].assign(
            lag_date=q.loc[asked, "date"] - pd.Timedelta(days=lag_days),
            _row=np.flatnonzero(asked),
        )
        ask = ask.sort_values("lag_date", kind="stable")
        got = pd.merge_asof(
            ask, own, on="lag_date", by="farm_id", direction="backward", tolerance=tol
        )
        out.iloc[got["_row"].to_numpy()] = got["peer_lagged"].to_numpy()
    return out
