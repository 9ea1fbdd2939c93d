"""Farm partitions of an incremental night: the per-farm work, a partition at a time.

An incremental night (:func:`agrisat.anomaly.incremental.extend_looks`) computes the looks
of the new dates for every farm at once where looks of different farms meet -- the
same-date peer statistics (region, crop, radius groups, the region shift that mixes crops),
the peers' spread of the standing change -- and farm by farm where a look reads only its
own farm's earlier looks: own history and the usual peer gap (earlier years), the reference
standing of the change (the recent window) and the labelling behind the recent window. The
per-farm work runs over partitions of ``DetectSettings.partition_farms`` farms whose
context (the persisted looks of those farms) is read, used and freed before the next one,
so the night's memory is bounded by a partition's context, not by the book's.

A partition changes no peer statistic: peers are computed from the new looks of all farms
(small: one row per farm and new date) before and after the per-farm passes. Nor does it
change a label: the new looks are labelled with a per-farm carry of what the detectors read
of the farm's earlier looks (:mod:`agrisat.anomaly.carry`), so a label depends on its own
farm only. :func:`partition_farms` still falls back to one partition when the recent window
is shorter than ``abrupt_max_gap_days`` (the carry is built from that window).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..arrowops import farm_date_order, isin
from .carry import CARRY_INPUTS, label_carry
from .change import reference_standing
from .context import (
    GAP_COLUMNS,
    HISTORY_COLUMNS,
    OWN_COLUMNS,
    RECENT_COLUMNS,
    LookContext,
    context_part,
    dated,
)
from .core import LABEL_INPUTS, label_looks
from .history import own_history
from .lagged import peer_lagged
from .seasonal import seasonal_gap
from .settings import DetectSettings

__all__ = [
    "WINDOW_READ",
    "WindowCarry",
    "farm_partitions",
    "farm_pass",
    "label_pass",
    "partition_farms",
    "reference_change",
]


def partition_farms(settings: DetectSettings, recent_days: int) -> int:
    """Farms per partition (0: all in one), given the recent window's length in days.

    One partition when ``partition_farms`` is 0 or when the recent window does not reach
    further back than ``abrupt_max_gap_days`` (then a new look could be a farm's first row
    of the labelling frame and still have a pace reference: see the module docstring).
    """
    n = max(int(settings.partition_farms), 0)
    if recent_days <= settings.abrupt_max_gap_days:
        return 0
    return n


def farm_partitions(farm_ids: pd.Series, size: int) -> list[slice]:
    """Row slices of ``size`` farms each over ``farm_ids`` (a farm's rows contiguous, as in
    a features table sorted by farm and date); one slice of all rows when ``size`` is 0."""
    n = len(farm_ids)
    if size <= 0 or n == 0:
        return [slice(0, n)]
    ids = farm_ids.to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    cuts = starts[::size]
    ends = np.r_[cuts[1:], n]
    return [slice(int(a), int(b)) for a, b in zip(cuts, ends, strict=True)]


def reference_change(
    recent: pd.DataFrame, f: pd.DataFrame, settings: DetectSettings
) -> dict[str, np.ndarray]:
    """:func:`agrisat.anomaly.features.reference_standing` of the new looks ``f`` of some
    farms, behind those farms' looks of the recent window (per row of ``f``): exactly what
    the whole-frame pass computes, since a look's reference reads its own farm's looks only.

    ``recent`` and ``f`` carry ``farm_id``, ``date``, ``peer_level``, ``value``,
    ``peer_median``, ``moist`` and ``peer_moist``.
    """
    cols = ["farm_id", "date", "peer_level", "value", "peer_median", "moist", "peer_moist"]
    frame = pd.concat([recent[cols], f[cols]], ignore_index=True)
    pos = np.r_[np.full(len(recent), -1), np.arange(len(f))]
    order = farm_date_order(frame)
    frame = frame.take(order).reset_index(drop=True)
    pos = pos[order]
    new = pos >= 0
    ref = reference_standing(frame, settings, evaluate=new)
    out: dict[str, np.ndarray] = {}
    for name, vals in ref.items():
        out[name] = np.empty(len(f))
        out[name][pos[new]] = vals[new]
    return out


@dataclass
class WindowCarry:
    """What the labelling keeps of each partition's recent window (:func:`label_pass`): the
    farms' own radius medians and the detectors' per-farm carry, one frame per partition."""

    radius: list[pd.DataFrame] = field(default_factory=list)
    carries: list[pd.DataFrame] = field(default_factory=list)

    def add(self, recent: pd.DataFrame) -> None:
        """Keep what the labelling needs of one partition's window rows."""
        # of the window only the farms' own radius medians: a region or crop group's median
        # on an earlier date is the summary's (one value per group and date)
        keep = recent.loc[recent["radius_median"].notna(), ["date", "farm_id", "radius_median"]]
        self.radius.append(keep)
        self.carries.append(label_carry(recent[list(CARRY_INPUTS)]))


#: the recent window's columns both passes read: read once per partition
WINDOW_READ: tuple[str, ...] = tuple(dict.fromkeys([*RECENT_COLUMNS, *CARRY_INPUTS]))


def farm_pass(
    f: pd.DataFrame,
    peers: pd.DataFrame,
    context: LookContext,
    parts: list[slice],
    *,
    d0: pd.Timestamp,
    settings: DetectSettings,
) -> tuple[pd.DataFrame, np.ndarray, dict[str, np.ndarray], WindowCarry]:
    """Own history, usual peer gap and reference standing of the new looks ``f``, partition
    by partition (``peers``: the same-date peer columns they read), and what the labelling
    keeps of the recent window (:class:`WindowCarry`). Each partition's history and recent
    window are read once, used and dropped before the next."""
    s = settings
    window = WindowCarry()
    owns = []
    usual = np.full(len(f), np.nan)
    ref = {k: np.full(len(f), np.nan) for k in ("change_ref_n", "change", "moist_change")}
    for sl in parts:
        fp = f.iloc[sl].reset_index(drop=True)
        ids = fp["farm_id"].unique()
        hist = dated(context_part(context.history, ids, HISTORY_COLUMNS), HISTORY_COLUMNS)
        cand = pd.concat([hist[OWN_COLUMNS], fp[OWN_COLUMNS]], ignore_index=True)
        own = own_history(cand, s, eval_from=d0, parallel=False)
        own.index = own.index - len(hist) + sl.start
        owns.append(own)
        gap = fp[["farm_id", "date", "value"]].assign(
            peer_median=peers["peer_median"].to_numpy()[sl],
            peer_level=peers["peer_level"].to_numpy()[sl],
        )
        cand = pd.concat([hist[GAP_COLUMNS], gap[GAP_COLUMNS]], ignore_index=True)
        usual[sl] = seasonal_gap(cand, s, eval_from=d0, parallel=False).to_numpy(dtype=float)[
            len(hist) :
        ]
        del hist, cand, own
        recent = dated(context_part(context.recent, ids, WINDOW_READ), WINDOW_READ)
        gap = gap.assign(
            moist=fp["moist"].to_numpy(), peer_moist=peers["peer_moist"].to_numpy()[sl]
        )
        for k, vals in reference_change(recent[list(RECENT_COLUMNS)], gap, s).items():
            ref[k][sl] = vals
        window.add(recent)
        del recent, gap, fp
    own = pd.concat(owns) if len(owns) > 1 else owns[0]
    return own, usual, ref, window


def label_pass(
    f: pd.DataFrame,
    context: LookContext,
    groups: pd.DataFrame,
    parts: list[slice],
    window: WindowCarry,
    *,
    settings: DetectSettings,
) -> pd.DataFrame:
    """The peers' lagged medians (set on ``f``) and the labels of the new looks, labelled
    behind the farms' looks of the recent window: of which :func:`farm_pass` kept only a
    per-farm carry (:func:`agrisat.anomaly.carry.label_carry`) and the farms' own radius
    medians (``window``, one frame per partition of ``parts``)."""
    s = settings
    lagkeys = ["crop", "region", "peer_level", "date", "peer_median"]
    mine = ["farm_id", "radius_median"]
    shared = groups.loc[groups["peer_level"] != "radius", lagkeys]  # radius groups are per farm
    # the groups' medians on the new dates, of every farm: a look may lag to a date of the
    # night that only other partitions' farms were seen on (a group's median is one value)
    seen = f.loc[f["peer_level"] != "radius", lagkeys].drop_duplicates(lagkeys[:4])
    lagged_cols = {"peer_lagged": s.change_lag_guard_days, "peer_lagged_max": s.late_max_lag_days}
    # Detectors may read a farm's earlier looks (the previous two, the last sound one): the
    # new looks are labelled with a per-farm carry of those (:mod:`.carry`) cut from the
    # farm's stored looks of the recent window, as if labelled behind the window (which
    # relabelling 48 columns of ~500,000 window rows every night did). Only the columns the
    # detectors read (LABEL_INPUTS) go to the labelling.
    cols = [c for c in f.columns if c in LABEL_INPUTS]
    carries = window.carries
    own = pd.concat(window.radius, ignore_index=True)[["date", *mine]].assign(peer_level="radius")
    window.radius.clear()
    lags = {k: np.full(len(f), np.nan) for k in lagged_cols}
    labs = []
    # Whole partitions at a time up to ``_LABEL_ROWS`` new looks: a night's 100,000 in one
    # pass (per 20,000-farm partition, the pandas calls' overhead was half the labelling),
    # a long recomputation's steps in bounded batches.
    for lo, hi, k0, k1 in _batches(parts, _LABEL_ROWS):
        fb = f.iloc[lo:hi]
        lagged = pd.concat([fb[lagkeys + mine], own, seen, shared], ignore_index=True)
        for col, days in lagged_cols.items():
            lags[col][lo:hi] = peer_lagged(lagged, days, rows=hi - lo).to_numpy()
        del lagged
        fb = fb[cols].assign(**{col: vals[lo:hi] for col, vals in lags.items()})
        carry = _last_season(pd.concat(carries[k0:k1], ignore_index=True), context.last, fb)
        lab = label_looks(fb, s, carry=carry)
        labs.append(lab[[c for c in lab.columns if c not in f.columns]])
        del fb, carry, lab
    for col, vals in lags.items():
        f[col] = vals
    return pd.concat(labs) if len(labs) > 1 else labs[0]


def _last_season(carry: pd.DataFrame, last: pd.DataFrame, f: pd.DataFrame) -> pd.DataFrame:
    """``carry`` with a row for each farm of ``f`` that has no look in the recent window,
    holding only its latest look's season (``season_1``, from ``last``).

    The long-gap rule of the abrupt-loss detector compares a look's season with the
    previous look's however old that look is (a crop seen green in November and bare in
    April after a cloudy winter was lost): the whole-history labelling has that look as the
    farm's previous row, the window does not.
    """
    if last is None or not len(last):
        return carry
    have = carry["farm_id"].astype(str).to_numpy()
    want = pd.unique(f["farm_id"].astype(str).to_numpy())
    missing = want[~isin(pd.Series(want, dtype="str"), have)] if len(have) else want
    if not len(missing):
        return carry
    rows = last.loc[isin(last["farm_id"].astype("str"), missing), ["farm_id", "season_id"]]
    rows = rows.drop_duplicates("farm_id", keep="last").rename(columns={"season_id": "season_1"})
    return pd.concat([carry, rows], ignore_index=True) if len(rows) else carry


#: new looks labelled in one pass at most (whole partitions; at least one)
_LABEL_ROWS = 250_000


def _batches(parts: list[slice], rows: int) -> list[tuple[int, int, int, int]]:
    """Consecutive partitions grouped up to ``rows`` rows: (first row, end row, first
    partition, end partition) of each group (a partition larger than ``rows`` alone)."""
    out: list[tuple[int, int, int, int]] = []
    k0 = 0
    for k in range(1, len(parts) + 1):
        end = k == len(parts) or parts[k].stop - parts[k0].start > rows
        if end:
            out.append((int(parts[k0].start), int(parts[k - 1].stop), k0, k))
            k0 = k
    return out
