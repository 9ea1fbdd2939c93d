"""The looks of many new dates, a farm partition at a time: :func:`extend_looks`' rows as a
generator of finished partitions.

:func:`agrisat.anomaly.incremental.extend_looks` builds every column (~65) of every new
look at once. A step of a long recomputation holding many dates is then bounded by that
frame (100,000 farms: ~1.2 KB a look, so steps of one date each, every step re-reading the
farms' context windows -- ~60 days of looks and the own-history windows of every earlier
year -- for one new date). Here, as in the first night
(:mod:`agrisat.anomaly.firstnight`), what mixes farms -- the same-date peer statistics, the
peers' spread of the standing change, the peer-group medians of earlier dates -- runs over
a narrow frame of every new look (keys, values and the per-look results those statistics
read), the per-farm passes read each partition's context once (:func:`.partition.farm_pass`),
and each partition's looks are finished (calendar stage, scores, season maxima, labels,
confirmation runs) and handed out before the next is built.

The rows equal ``extend_looks``': the all-farm statistics are computed by the same functions
on the same rows in the same order, every per-farm function reads its own farm's rows (and
its carry from ``context.last`` and the recent window) only, and the columns are put in
``extend_looks``' order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd

from ..calendar import Calendar
from .change import change_columns
from .context import GROUP_COLUMNS, LAST_COLUMNS, LookContext, dated
from .core import LABEL_INPUTS, confirmation_runs, label_looks
from .features import (
    RadiusPeers,
    farm_attributes,
    farm_coordinates,
    look_base,
    peer_stats,
)
from .firstnight import _Stages
from .lagged import peer_lagged, prev_peer_median
from .partition import WindowCarry, _last_season, farm_partitions, farm_pass, partition_farms
from .seasonal import seasonal_standing
from .settings import DEFAULT_SETTINGS, DetectSettings

__all__ = ["extend_partitions"]

#: the peer-lag keys the labelling's lagged medians read (:func:`.partition.label_pass`)
_LAGKEYS = ["crop", "region", "peer_level", "date", "peer_median"]


def extend_partitions(
    observations: pd.DataFrame,
    farms: pd.DataFrame,
    context: LookContext,
    *,
    d0: pd.Timestamp,
    settings: DetectSettings = DEFAULT_SETTINGS,
    calendars: Mapping[str, Calendar] | None = None,
) -> Iterator[pd.DataFrame]:
    """:func:`agrisat.anomaly.incremental.extend_looks`' rows, one partition of farms at a
    time (consecutive in farm order: concatenated they are its table, index aside).

    Parameters
    ----------
    observations
        Every observation dated ``d0`` or later (all farms: peers are the same-date
        cross-section).
    farms
        The book (``farm_id``, ``crop``, ``region``, coordinates for radius peers).
    context
        The persisted context (:class:`LookContext`); its windows are read a partition at
        a time when they are readers.
    d0
        The first new date.
    settings, calendars
        Detection settings and crop calendars.

    Yields
    ------
    pandas.DataFrame
        The finished looks of one farm partition (``settings.partition_farms`` farms, fewer
        when the farms have many new looks each).
    """
    from .incremental import (
        _picker,
        _step_farms,
        carry_season,
        context_windows,
        finish_carried,
    )

    s = settings
    attrs = farm_attributes(farms)
    base = look_base(observations, farms, settings=s, attrs=attrs)
    base = base[base["date"] >= d0].reset_index(drop=True)
    if base.empty:
        return
    order = _column_order(observations, farms, base, s, calendars)
    del observations  # the caller's last reference may be gone: not held past the looks
    last = dated(context.last, LAST_COLUMNS).drop_duplicates("farm_id", keep="last")
    last = last.set_index("farm_id")
    pick = _picker(base, last.index)
    groups = dated(context.groups, GROUP_COLUMNS)
    stages = _Stages(base, calendars)
    # --- previous look, continued from the latest earlier one --------------------------------
    g = base.groupby("farm_id", sort=False)
    head = ~base["farm_id"].duplicated()
    prev_value = g["value"].shift(1).where(~head, pick(last["value"]))
    prev_date = g["date"].shift(1).where(~head, pd.to_datetime(pick(last["date"])))
    narrow = base.assign(prev_value=prev_value, prev_date=prev_date)
    del prev_value, prev_date
    # --- same-date peers of every farm, then the per-farm passes (context read once) -------
    radius = RadiusPeers.build(narrow, attrs, farm_coordinates(farms), s)
    early = peer_stats(narrow.assign(own_deficit=np.nan), s, radius=radius)
    early = early[["peer_median", "peer_level", "peer_moist"]]
    lo, hi = context_windows(d0, d0, s)["recent"][0]
    parts = farm_partitions(base["farm_id"], _step_farms(base, partition_farms(s, (hi - lo).days)))
    own, usual, ref, window = farm_pass(narrow, early, context, parts, d0=d0, settings=s)
    del early
    own = own.reindex(base.index)
    own_cols = {c: own[c].to_numpy(dtype=float) for c in own.columns}
    del own
    expected = own_cols["expected"]
    value = base["value"].to_numpy()
    with np.errstate(all="ignore"):
        own_deficit = (expected - value) / expected
    # --- peers (same date) with own deficits; what mixes farms on other dates ---------------
    peers = peer_stats(narrow.assign(own_deficit=own_deficit), s, radius=radius)
    keys = ["farm_id", "date", "crop", "region", "prev_date"]
    mix = narrow[keys].assign(
        peer_level=peers["peer_level"],
        peer_median=peers["peer_median"],
        radius_median=peers["radius_median"],
    )
    gk = ["crop", "region", "date", "peer_level", "peer_median"]
    prev_radius = mix.groupby("farm_id", sort=False)["radius_median"].shift(1)
    prev_peer = prev_peer_median(
        mix,
        pd.concat([mix[gk], groups[gk]], ignore_index=True),
        lambda: prev_radius.where(~head, pick(last["radius_median"])),
    ).to_numpy()
    change = change_columns(mix, ref, s, radius=radius)
    del ref, radius
    lags = _Lags(mix, groups, window, s)
    del mix
    carry = last.reset_index()[["farm_id", "state", "run_looks", "onset", "run_hazard"]]
    carry = carry.assign(run_looks=carry["run_looks"].where(carry["state"] == "anomalous", 0))
    # --- each partition's looks, finished and handed out ------------------------------------
    for k, sl in enumerate(parts):
        f = narrow.iloc[sl].drop(columns=["prev_value", "prev_date"])
        f = pd.concat([f, stages.rows(sl, f.index)], axis=1)
        f["prev_value"] = narrow["prev_value"].iloc[sl]
        f["prev_date"] = narrow["prev_date"].iloc[sl]
        for col, vals in own_cols.items():
            f[col] = vals[sl]
        with np.errstate(all="ignore"):
            f["own_deficit"] = (f["expected"] - f["value"]) / f["expected"]
            f["own_z"] = (f["value"] - f["expected"]) / f["own_scale"]
        for col in peers.columns:
            f[col] = peers[col].iloc[sl]
        with np.errstate(all="ignore"):
            f["peer_z"] = (f["value"] - f["peer_median"]) / f["peer_scale"]
            f["peer_deficit"] = (f["peer_median"] - f["value"]) / f["peer_median"]
        f["usual_gap"] = usual[sl]
        for col, vals in seasonal_standing(f).items():
            f[col] = vals
        f["prev_peer_median"] = prev_peer[sl]
        pk = _picker(f, last.index)
        skeys, same = carry_season(f, pk, last)
        for col in change.columns:
            f[col] = change[col].to_numpy(dtype=float)[sl]
        for col, vals in lags.of(f).items():
            f[col] = vals
        f = f[order]
        lab = _labels(f, lags.carry(k, context.last, f), s)
        out = confirmation_runs(pd.concat([f, lab], axis=1), s, carry=carry)
        del f, lab
        finish_carried(out, pk, last, skeys, same, s)
        yield out.set_axis(pd.RangeIndex(sl.start, sl.stop))


def _labels(f: pd.DataFrame, carry: pd.DataFrame, s: DetectSettings) -> pd.DataFrame:
    """The label columns of a partition's looks ``f`` (as :func:`.partition.label_pass`
    labels a batch: only the columns the detectors read, with the farms' carry)."""
    cols = [c for c in f.columns if c in LABEL_INPUTS]
    lab = label_looks(f[cols], s, carry=carry)
    return lab[[c for c in lab.columns if c not in f.columns]]


def _column_order(
    observations: pd.DataFrame,
    farms: pd.DataFrame,
    base: pd.DataFrame,
    s: DetectSettings,
    calendars: Mapping[str, Calendar] | None,
) -> list[str]:
    """``look_features``' columns (the order ``extend_looks`` keeps), from the looks of the
    first farm alone (a few rows: the columns do not depend on the values)."""
    from .features import look_features

    first = base["farm_id"].iloc[0]
    obs = observations[observations["farm_id"].astype(str) == first]
    cols = list(look_features(obs, farms, settings=s, calendars=calendars).columns)
    return cols


class _Lags:
    """The peers' lagged medians of the new looks (:func:`.partition.label_pass`'s), a
    partition at a time: each look reads its own farm's radius medians (the window's and
    the new ones) and the region or crop groups' medians (stored, and of the new dates)."""

    def __init__(
        self, mix: pd.DataFrame, groups: pd.DataFrame, window: WindowCarry, s: DetectSettings
    ) -> None:
        self.days = {"peer_lagged": s.change_lag_guard_days, "peer_lagged_max": s.late_max_lag_days}
        self.shared = groups.loc[groups["peer_level"] != "radius", _LAGKEYS]
        self.seen = mix.loc[mix["peer_level"] != "radius", _LAGKEYS].drop_duplicates(_LAGKEYS[:4])
        self.window = window
        own = pd.concat(window.radius, ignore_index=True)[["date", "farm_id", "radius_median"]]
        self.own = own.assign(peer_level="radius")
        window.radius.clear()

    def of(self, f: pd.DataFrame) -> dict[str, np.ndarray]:
        """``peer_lagged`` and ``peer_lagged_max`` of the looks ``f`` (whole farms)."""
        lagged = pd.concat(
            [f[[*_LAGKEYS, "farm_id", "radius_median"]], self.own, self.seen, self.shared],
            ignore_index=True,
        )
        return {col: peer_lagged(lagged, d, rows=len(f)).to_numpy() for col, d in self.days.items()}

    def carry(self, k: int, last: pd.DataFrame, f: pd.DataFrame) -> pd.DataFrame:
        """The detectors' carry of partition ``k``'s farms (with the latest look's season
        of those without a look in the recent window)."""
        return _last_season(self.window.carries[k], last, f)
