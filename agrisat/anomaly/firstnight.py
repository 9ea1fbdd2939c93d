"""The first night (a full recomputation) in farm partitions: :func:`full_looks`' rows, a
partition of farms at a time.

:func:`agrisat.anomaly.incremental.full_looks` builds every column of every look at once: at
100,000 farms x 8 dates its 65-column result alone is ~300 MB, and detection peaked ~530 MB
above the process's base. Here the work that mixes farms -- the same-date peer statistics,
the peers' spread of the standing change, the peer-group medians of earlier dates -- runs
once over a narrow frame of every look (keys, the values they read, their results), and
everything that reads only the farm's own looks (stage, previous look, own history, usual
peer gap, season maxima, the standing change's reference, labels, confirmation runs) runs
per partition of ``DetectSettings.partition_farms`` farms, each partition's finished looks
handed to the caller (who writes them) before the next is built.

The rows equal ``full_looks``' exactly: the all-farm statistics are computed by the same
functions on the same rows in the same order, and every per-farm function reads its own
farm's rows only. The one frame-wide choice of the labelling
(:func:`agrisat.anomaly.detectors.keeping_pace`: the last *sound* look as the pace reference
when any look of the frame is unsound) cannot differ between a partition and the whole frame
here: the two references differ only on a farm's first look, whose previous look is missing
either way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd

from ..calendar import Calendar, stage_table
from .change import change_columns, reference_standing
from .core import classify_looks
from .features import (
    BASE_COLUMNS,
    RadiusPeers,
    farm_attributes,
    farm_coordinates,
    look_base,
    own_scores,
    peer_scores,
    peer_stats,
    season_maxima,
)
from .history import own_history
from .lagged import peer_lagged, prev_peer_median
from .partition import farm_partitions
from .seasonal import seasonal_gap, seasonal_standing
from .settings import DEFAULT_SETTINGS, DetectSettings

__all__ = ["BASE_COLUMNS", "look_base", "partitioned_looks"]


class _Stages:
    """The calendar stage columns of every crop x date of the looks, computed once: per
    partition their dtypes would depend on the partition (a partition whose farms' crops
    have no calendar has no stage string: an object column, not a string one)."""

    def __init__(self, base: pd.DataFrame, calendars: Mapping[str, Calendar] | None) -> None:
        keys = base[["crop", "date"]]
        self.code = keys.groupby(["crop", "date"], sort=False).ngroup().to_numpy()
        uniq = keys.drop_duplicates().reset_index(drop=True)  # in order of first appearance
        self.table = stage_table(uniq["crop"], uniq["date"], calendars=calendars)

    def rows(self, sl: slice, index: pd.Index) -> pd.DataFrame:
        return self.table.take(self.code[sl]).set_axis(index)


def _stage(fp: pd.DataFrame, stages: _Stages, sl: slice) -> pd.DataFrame:
    """Calendar stage columns and the previous look of a partition's base rows (per farm)."""
    f = pd.concat([fp, stages.rows(sl, fp.index)], axis=1)
    g = f.groupby("farm_id", sort=False)
    f["prev_value"] = g["value"].shift(1)
    f["prev_date"] = g["date"].shift(1)
    return f


def _own(base: pd.DataFrame, stages: _Stages, sl: slice, s: DetectSettings) -> pd.DataFrame:
    """Own history of a partition's looks (indexed like ``base``), as ``look_features``
    computes it (Dask tasks of farm chunks when the partition has enough farms)."""
    return own_history(_stage(base.iloc[sl], stages, sl), s)


def partitioned_looks(
    base: pd.DataFrame,
    farms: pd.DataFrame,
    *,
    settings: DetectSettings = DEFAULT_SETTINGS,
    calendars: Mapping[str, Calendar] | None = None,
    partition: int | None = None,
) -> Iterator[pd.DataFrame]:
    """:func:`agrisat.anomaly.incremental.full_looks`' rows of ``base`` (:func:`look_base`),
    one partition of farms at a time (consecutive in farm order; concatenated they are
    ``full_looks``' table, index aside).

    ``partition``: farms per partition (default ``settings.partition_farms``; 0: one).
    """
    from .incremental import _finish  # the columns the next night continues from

    s = settings
    if base.empty:
        return
    size = s.partition_farms if partition is None else partition
    parts = farm_partitions(base["farm_id"], max(int(size), 0))
    n = len(base)
    stages = _Stages(base, calendars)
    # --- own history, per partition (a farm's own looks): the peers read the deficits; the
    # other own-history columns are computed again with each partition's looks below (at
    # 100,000 farms x 8 dates holding them was ~35 MB at the night's peak, computing them
    # a fifth of a second)
    own_deficit = np.full(n, np.nan)
    for sl in parts:
        expected = _own(base, stages, sl, s)["expected"].to_numpy(dtype=float)
        value = base["value"].to_numpy()[sl]
        with np.errstate(all="ignore"):
            own_deficit[sl] = (expected - value) / expected
        del expected
    # --- same-date peers of every look -------------------------------------------------------
    attrs, coords = farm_attributes(farms), farm_coordinates(farms)
    radius = RadiusPeers.build(base, attrs, coords, s)
    peers = peer_stats(base.assign(own_deficit=own_deficit), s, radius=radius)
    del own_deficit
    # --- usual peer gap and the standing change's reference: per partition -----------------
    usual = np.full(n, np.nan)
    ref = {k: np.full(n, np.nan) for k in ("change", "moist_change", "change_ref_n")}
    cols = ["farm_id", "date", "value", "moist"]
    for sl in parts:
        fp = base.iloc[sl][cols].assign(
            peer_median=peers["peer_median"].to_numpy()[sl],
            peer_level=peers["peer_level"].to_numpy()[sl],
            peer_moist=peers["peer_moist"].to_numpy()[sl] if "peer_moist" in peers else np.nan,
        )
        usual[sl] = seasonal_gap(fp, s).to_numpy(dtype=float)
        for k, vals in reference_standing(fp, s).items():
            ref[k][sl] = vals
        del fp
    # --- what mixes farms on other dates: peers' medians some days back, the change's spread
    keys = ["farm_id", "date", "crop", "region"]
    narrow = base[keys].assign(
        peer_level=peers["peer_level"],
        peer_median=peers["peer_median"],
        radius_median=peers["radius_median"],
        prev_date=base.groupby("farm_id", sort=False)["date"].shift(1),
    )
    prev_radius = narrow.groupby("farm_id", sort=False)["radius_median"].shift(1)
    prev_peer = prev_peer_median(narrow, narrow, lambda: prev_radius)
    change = change_columns(narrow, ref, s, radius=radius)
    del ref
    lagged = {
        "peer_lagged": peer_lagged(narrow, s.change_lag_guard_days).to_numpy(),
        "peer_lagged_max": peer_lagged(narrow, s.late_max_lag_days).to_numpy(),
    }
    del narrow, radius
    # --- each partition's looks, finished and handed out ------------------------------------
    for sl in parts:
        f = _stage(base.iloc[sl], stages, sl)
        f = f.join(own_history(f, s))
        own_scores(f)
        f = f.join(peers.iloc[sl])
        peer_scores(f)
        f["usual_gap"] = usual[sl]
        f = f.join(seasonal_standing(f))
        f["prev_peer_median"] = prev_peer.iloc[sl]
        season_maxima(f)
        f = f.join(change.iloc[sl])
        for col, vals in lagged.items():
            f[col] = vals[sl]
        out = _finish(classify_looks(f, s), s)
        del f
        yield out
