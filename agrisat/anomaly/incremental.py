"""Incremental per-look features: classify the looks of new dates from persisted context.

Every per-look feature depends only on looks up to that look's date (see the causality audit
in :func:`extend_looks`), so the classified looks of earlier dates never change when later
dates arrive. A night therefore computes only the looks of the dates at or after the earliest
date that got new observations (``d0``), from:

- the new looks themselves (all farms seen on those dates: the same-date peer statistics);
- the farms' persisted looks of earlier years near the same day of year (own history);
- their persisted looks of the last ``change_ref_max_days`` before ``d0`` (standing change);
- their latest persisted look before ``d0`` (previous look, season maxima, open run);
- the persisted per-date peer-group summary (peers' median on earlier dates).

:func:`full_looks` is the reference (every look from scratch); :func:`extend_looks` must give
the same rows for the new dates, which the tests check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from ..calendar import Calendar
from .change import change_columns
from .context import (
    GROUP_COLUMNS,
    HISTORY_COLUMNS,
    LAST_COLUMNS,
    RECENT_COLUMNS,
    ContextSource,
    LookContext,
    dated,
)
from .core import classify_looks, confirmation_runs
from .features import (
    RadiusPeers,
    farm_attributes,
    farm_coordinates,
    look_features,
    own_scores,
    peer_scores,
    peer_stats,
    season_key,
)
from .lagged import prev_peer_median
from .partition import (
    farm_partitions,
    farm_pass,
    label_pass,
    partition_farms,
)
from .seasonal import seasonal_standing
from .settings import DEFAULT_SETTINGS, DetectSettings
from .stale import stale_from_state

__all__ = [
    "GROUP_COLUMNS",
    "HISTORY_COLUMNS",
    "LAST_COLUMNS",
    "RECENT_COLUMNS",
    "ContextSource",
    "LookContext",
    "context_windows",
    "extend_looks",
    "full_looks",
    "group_summary",
    "stale_from_state",
]

log = logging.getLogger(__name__)

_YEAR = 365.25
_FAR = pd.Timestamp("2262-01-01")


def incremental_ok(settings: DetectSettings) -> bool:
    """False when a setting makes features depend on later looks (then only full runs)."""
    s = settings
    half = s.phenology_tolerance_days + s.history_window_days + 1.0
    return s.history_min_gap_days >= 0 and 2 * half < _YEAR and s.change_ref_min_days > 0


def context_windows(
    d0: pd.Timestamp, d1: pd.Timestamp, settings: DetectSettings = DEFAULT_SETTINGS
) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    """Date ranges ``[start, end)`` of persisted looks needed to compute looks in ``[d0, d1]``.

    ``history``: the own-history windows of every earlier year (lags and windows included);
    ``recent``: the standing-change reference window; ``lag``: the peer-lag window.
    """
    s = settings
    reach = s.phenology_tolerance_days + s.history_window_days + 1.0
    half = int(np.ceil(reach)) + 1
    hist = []
    # The same year's window (m = 0) holds no history look when looks count as history only
    # ``history_min_gap_days`` (300) back: own history skips it then (``history._candidates``),
    # and reading it cost the night the looks of its last three weeks.
    first = 0 if s.history_min_gap_days <= reach else 1
    for m in range(first, 200):
        lo = d0 - pd.Timedelta(days=int(np.ceil(m * _YEAR)) + half)
        hi = min(d0, d1 - pd.Timedelta(days=int(np.floor(m * _YEAR)) - half))
        if hi <= pd.Timestamp("1970-01-01"):
            break
        if lo < hi:
            hist.append((lo, hi))
    lags = [g for g in (s.change_lag_guard_days, s.late_max_lag_days) if g > 0]
    lag_back = max([g + max(g, 10) for g in lags], default=0) + 1
    # (a look keeping a loss reads the two looks before it, each within abrupt_max_gap_days:
    # held_losses)
    recent = max(s.change_ref_max_days + 1, lag_back, 2 * s.abrupt_max_gap_days + 1)
    return {
        "history": hist,
        "recent": [(d0 - pd.Timedelta(days=recent), d0)],
        "lag": [(d0 - pd.Timedelta(days=lag_back), d0)],
    }


def _finish(f: pd.DataFrame, s: DetectSettings) -> pd.DataFrame:
    """Columns the next night continues from: the farm's first look and the peers' highest
    median so far this season (NaN-skipping, unlike ``peer_season_max`` on a NaN look)."""
    # own_n counts history looks; it is NaN when the farm has no look at least
    # ``history_min_gap_days`` before this one (own_history decides that per farm batch,
    # which would make it depend on later looks).
    first = f.groupby("farm_id", sort=False)["date"].transform("min")
    f["first_date"] = first
    no_hist = first > f["date"] - pd.Timedelta(days=s.history_min_gap_days)
    f["own_n"] = f["own_n"].where(~no_hist)
    keys = [f["farm_id"], f["season_key"]]
    run = f.groupby(keys, sort=False)["peer_median"].cummax()
    f["peer_season_run"] = run.groupby(keys, sort=False).ffill()
    return f


def full_looks(
    observations: pd.DataFrame,
    farms: pd.DataFrame,
    *,
    settings: DetectSettings = DEFAULT_SETTINGS,
    calendars: Mapping[str, Calendar] | None = None,
) -> pd.DataFrame:
    """Every clear look classified from scratch (own-history baselines for all of them).

    The rows :func:`extend_looks` continues; the ``--redetect`` path and the reference of the
    tests.
    """
    s = settings
    feats = look_features(observations, farms, settings=s, calendars=calendars)
    if feats.empty:
        return feats
    return _finish(classify_looks(feats, s), s)


def extend_looks(
    observations: pd.DataFrame,
    farms: pd.DataFrame,
    context: LookContext,
    *,
    d0: pd.Timestamp,
    settings: DetectSettings = DEFAULT_SETTINGS,
    calendars: Mapping[str, Calendar] | None = None,
) -> pd.DataFrame:
    """The classified looks of dates >= ``d0``, equal to :func:`full_looks`' rows for them.

    ``observations`` holds every observation dated ``d0`` or later (all farms: peers are the
    same-date cross-section). Causality audit of what a look at date t reads:

    - calendar stage, season: crop and t only;
    - own history (``expected``, ``own_scale``, ``vci``, ``hist_water``): the farm's looks
      at least ``history_min_gap_days`` before t within the day-of-year windows
      (``context.history``, with each one's change since its own previous look,
      ``own_change_scale``); ``own_n``'s NaN-or-0 is decided by the farm's first look;
    - usual peer gap (``usual_gap``, ``season_peer_*``): the same history looks' persisted
      ``peer_median`` and ``peer_level``, and the look's own same-date peers;
    - peers (``peer_*``, region shift, ``peer_deficit_median``): looks dated t only;
    - ``prev_value``/``prev_date``: the farm's previous look (``context.last``);
    - ``prev_peer_median``, ``peer_lagged*``: the peer-group medians of earlier dates
      (``context.groups``);
    - ``season_max``, ``peer_season_max``: running maxima of the season (carried from
      ``context.last``);
    - standing change: the farm's looks ``change_ref_min_days``..``change_ref_max_days``
      before t (``context.recent``) and the same-date peers;
    - classification: the look's own columns; confirmation runs: the farm's run so far
      (carried from ``context.last``).

    What reads only the farm's own earlier looks (own history, usual peer gap, the standing
    change's reference, the lagged radius medians, the labelling behind the recent window)
    runs over partitions of ``settings.partition_farms`` farms (:mod:`.partition`), each
    reading its farms' ``context.history`` and ``context.recent`` (DataFrames, or readers
    called with the partition's farm ids) and dropping them before the next; what mixes
    farms (the peers on each new date, the peers' spread of the standing change) is
    computed over every farm's new looks, so the result does not depend on the partitions.
    """
    s = settings
    f = look_features(observations, farms, settings=s, calendars=calendars, eval_from=_FAR)
    f = f[f["date"] >= d0].reset_index(drop=True)
    if f.empty:
        return f
    last = dated(context.last, LAST_COLUMNS).drop_duplicates("farm_id", keep="last")
    last = last.set_index("farm_id")
    pick = _picker(f, last.index)
    groups = dated(context.groups, GROUP_COLUMNS)
    # --- previous look (own history reads each look's change since it) --------------------
    g = f.groupby("farm_id", sort=False)
    head = ~f["farm_id"].duplicated()
    f["prev_value"] = g["value"].shift(1).where(~head, pick(last["value"]))
    prev_date = g["date"].shift(1)
    f["prev_date"] = prev_date.where(~head, pd.to_datetime(pick(last["date"])))
    # --- same-date peers of every farm first: the per-farm pass reads their levels and
    # medians (only the peers' median of own deficits waits for own history)
    attrs, coords = farm_attributes(farms), farm_coordinates(farms)
    radius = RadiusPeers.build(f, attrs, coords, s)
    early = peer_stats(f, s, radius=radius)[["peer_median", "peer_level", "peer_moist"]]
    lo, hi = context_windows(d0, d0, s)["recent"][0]
    parts = farm_partitions(f["farm_id"], _step_farms(f, partition_farms(s, (hi - lo).days)))
    own, usual, ref, window = farm_pass(f, early, context, parts, d0=d0, settings=s)
    del early
    # --- own history from the persisted looks of earlier years ----------------------------
    for col in own.columns:
        f[col] = own[col].reindex(f.index).to_numpy(dtype=float)
    own_scores(f)
    # --- peers (same date), now with own deficits ------------------------------------------
    peers = peer_stats(f, s, radius=radius)
    for col in peers.columns:
        f[col] = peers[col]
    peer_scores(f)
    # --- usual peer gap at this time of year, from the same earlier-year looks --------------
    f["usual_gap"] = usual
    for col, vals in seasonal_standing(f).items():
        f[col] = vals
    keys = ["crop", "region", "date", "peer_level", "peer_median"]
    f["prev_peer_median"] = prev_peer_median(
        f,
        pd.concat([f[keys], groups[keys]], ignore_index=True),
        lambda: g["radius_median"].shift(1).where(~head, pick(last["radius_median"])),
    )
    # --- running maxima of the season, continued from the latest earlier look --------------
    skeys, same = carry_season(f, pick, last)
    # --- standing change: the per-farm reference, standardised among the same-date peers ---
    change = change_columns(f, ref, s, radius=radius)
    for col in change.columns:
        f[col] = change[col].to_numpy(dtype=float)
    del change, ref, peers, own, usual
    # --- peers' median some days back, and the labels behind the recent window -------------
    lab = label_pass(f, context, groups, parts, window, settings=s)
    # --- classification, continuing open runs --------------------------------------------------
    carry = last.reset_index()[["farm_id", "state", "run_looks", "onset", "run_hazard"]]
    carry = carry.assign(run_looks=carry["run_looks"].where(carry["state"] == "anomalous", 0))
    out = confirmation_runs(pd.concat([f, lab], axis=1), s, carry=carry)
    finish_carried(out, pick, last, skeys, same, s)
    return out


def carry_season(
    f: pd.DataFrame, pick: Callable[[pd.Series], pd.Series], last: pd.DataFrame
) -> tuple[list[pd.Series], np.ndarray]:
    """``season_key``, ``season_max`` and ``peer_season_max`` of the new looks ``f`` (in
    place), continued from each farm's latest earlier look (``last``, looked up by ``pick``).

    Returns the keys of each farm's season and whether each look is in the season it
    continues (:func:`finish_carried` reads both)."""
    before = pick(last["season_key"])
    season = f["season_key"] = season_key(f, before)
    same = (season == before).to_numpy()
    skeys = [f["farm_id"], season]
    f["season_max"] = f.groupby(skeys, sort=False)["value"].cummax()
    carried = pick(last["season_max"]).where(same)
    f["season_max"] = np.fmax(f["season_max"], carried)
    peer_max = f.groupby(skeys, sort=False)["peer_median"].cummax()
    carried = pick(last["peer_season_run"]).where(same)
    f["peer_season_max"] = np.fmax(peer_max, carried).where(f["peer_median"].notna())
    return skeys, same


def finish_carried(
    out: pd.DataFrame,
    pick: Callable[[pd.Series], pd.Series],
    last: pd.DataFrame,
    skeys: list[pd.Series],
    same: np.ndarray,
    s: DetectSettings,
) -> None:
    """The columns the next night continues from (in place): the farm's first look, its
    history count (``own_n``) and the peers' highest median so far this season, continued
    from ``last`` as :func:`_finish` computes them from scratch."""
    first = out.groupby("farm_id", sort=False)["date"].transform("min")
    known = pd.to_datetime(pick(last["first_date"]))
    out["first_date"] = first.where(known.isna() | (known > first), known)
    no_hist = out["first_date"] > out["date"] - pd.Timedelta(days=s.history_min_gap_days)
    # a farm with earlier seasons but no context look near this day of year has none (0),
    # as the full path counts; NaN only for a farm without earlier seasons
    out["own_n"] = out["own_n"].where(~no_hist).where(no_hist | out["own_n"].notna(), 0.0)
    run = out.groupby(skeys, sort=False)["peer_median"].cummax().groupby(skeys, sort=False).ffill()
    carried = pick(last["peer_season_run"]).where(same)
    out["peer_season_run"] = np.fmax(run, carried)


#: new looks per farm up to which a partition keeps ``partition_farms`` farms
_LOOKS_PER_FARM = 4


def _step_farms(f: pd.DataFrame, size: int) -> int:
    """Farms per partition for the new looks ``f``: ``size`` (0: one partition), fewer when
    the farms have more than :data:`_LOOKS_PER_FARM` new looks each (a step of a long
    recomputation: its partitions' context windows span all its dates, and at 30,000 farms
    x 13 dates two partitions' own-history context was the first night's peak)."""
    if size <= 0 or f.empty:
        return size
    per_farm = len(f) / max(f["farm_id"].nunique(), 1)
    return max(1, int(size * min(1.0, _LOOKS_PER_FARM / per_farm)))


def _picker(f: pd.DataFrame, farms: pd.Index) -> Callable[[pd.Series], pd.Series]:
    """A lookup of columns indexed by ``farms`` (unique) for each row of ``f`` (NaN where
    absent): ``by_farm.reindex(f["farm_id"])`` as a Series on ``f``'s index.

    The ids are matched once (Arrow's hash lookup, no Python string per row): each lookup
    by the string ids hashed them all again (a tenth of a second a column at 100,000 farms).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pos = pc.index_in(pa.array(f["farm_id"]), value_set=pa.array(farms))
        rows = pos.fill_null(-1).to_numpy(zero_copy_only=False)
    except (pa.ArrowException, TypeError):  # ids Arrow cannot match: pandas' lookup
        rows = farms.get_indexer(f["farm_id"].to_numpy())
    own = pd.RangeIndex(len(farms))

    def pick(by_farm: pd.Series) -> pd.Series:
        # label -1 is in no RangeIndex: NaN (NaT, ...) where the farm is absent, as reindex
        return pd.Series(by_farm.set_axis(own).reindex(rows).to_numpy(), index=f.index)

    return pick


def group_summary(looks: pd.DataFrame) -> pd.DataFrame:
    """One row per crop x region x date x peer level: peers' median and number of looks.

    The median is the same for every look of a region or crop group (peers are chosen per
    group), so this is what later looks read about earlier dates; a radius group is each
    farm's own (its median travels with the farm's looks, ``radius_median``).
    """
    if looks.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in GROUP_COLUMNS})
    g = looks.groupby(["crop", "region", "date", "peer_level"], sort=True)
    out = g[["peer_median"]].first().reset_index()
    out["n_looks"] = g.size().to_numpy()
    return out[list(GROUP_COLUMNS)]


def context_from_looks(
    looks: pd.DataFrame,
    *,
    d0: pd.Timestamp,
    d1: pd.Timestamp,
    settings: DetectSettings = DEFAULT_SETTINGS,
) -> LookContext:
    """The :class:`LookContext` for dates ``d0``..``d1`` cut from classified looks in memory
    (the store version reads the same ranges with row filters)."""
    before = looks[looks["date"] < d0]
    win = context_windows(d0, d1, settings)

    def within(ranges: list[tuple[pd.Timestamp, pd.Timestamp]]) -> np.ndarray:
        m = np.zeros(len(before), dtype=bool)
        for lo, hi in ranges:
            m |= ((before["date"] >= lo) & (before["date"] < hi)).to_numpy()
        return m

    last = before.groupby("farm_id", sort=False).tail(1)
    groups = group_summary(before)
    lag = within(win["lag"])
    gsel = groups["date"].isin(set(last["date"])) | (groups["date"] >= win["lag"][0][0])
    del lag
    return LookContext(
        history=before.loc[within(win["history"]), list(HISTORY_COLUMNS)],
        recent=before.loc[within(win["recent"])],
        last=last[list(LAST_COLUMNS)],
        groups=groups[gsel],
    )
