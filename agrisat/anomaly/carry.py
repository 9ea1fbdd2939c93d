"""What the detectors read of a farm's looks before a labelling frame, carried per farm.

Most detector inputs are the look's own columns. Three rules read the farm's *earlier*
looks (features are sorted by farm and date):

- :func:`agrisat.anomaly.robust.own_abrupt`: the previous two looks' ``value``, ``date``
  and ``expected``;
- the long-gap rule of :func:`agrisat.anomaly.detectors._abrupt_mask`: the previous look's
  ``season_id``;
- :func:`agrisat.anomaly.detectors.keeping_pace`: the last *sound* look (neither flood nor
  abrupt loss) before the look: its ``value``, ``peer_median`` and ``date``, each the last
  known one of the sound looks (a per-column forward fill);
- :func:`agrisat.anomaly.losses.held_losses`: whether the previous two looks were labelled
  abrupt loss (their ``hazard``) and the previous look's level before its loss (its
  ``expected_h``).

An incremental night labels only its new looks; instead of relabelling the farms' recent
window to give those rules their earlier rows, it hands :func:`agrisat.anomaly.core.label_looks`
a :func:`label_carry` built from a few stored columns of the window: the labels of the
new looks are those of the window-and-new frame (soundness of an earlier look is its
stored ``hazard``: flood and abrupt loss are the two highest-priority hazards, so a look's
hazard is one of them exactly when one of the two fired).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["CARRY_COLUMNS", "CARRY_INPUTS", "Earlier", "label_carry"]

#: Columns of :func:`label_carry` (besides ``farm_id``): the previous two looks (``_1`` the
#: latest; ``loss``: 1.0 when labelled abrupt loss, else 0.0), the latest look's season and
#: level before its loss (``loss_ref_1``), and the last sound look.
CARRY_COLUMNS: tuple[str, ...] = (
    "value_1", "date_1", "expected_1", "value_2", "date_2", "expected_2", "season_1",
    "sound_value", "sound_peer_median", "sound_date", "loss_1", "loss_2", "loss_ref_1",
)  # fmt: skip
#: Stored look columns :func:`label_carry` reads.
CARRY_INPUTS: tuple[str, ...] = (
    "farm_id", "date", "value", "expected", "season_id", "peer_median", "hazard", "expected_h",
)  # fmt: skip

_UNSOUND = ("flood", "abrupt_loss")
_LOSS = "abrupt_loss"
_DATES = ("date_1", "date_2", "sound_date")


def label_carry(earlier: pd.DataFrame) -> pd.DataFrame:
    """One row per farm (``farm_id`` and :data:`CARRY_COLUMNS`) from its earlier labelled
    looks ``earlier`` (:data:`CARRY_INPUTS`, sorted by farm and date).

    Parameters
    ----------
    earlier
        Labelled looks (their ``hazard`` decides which are sound), all of a farm's looks
        of the span the carry stands for, sorted by farm and date.

    Returns
    -------
    pandas.DataFrame
        ``farm_id`` plus :data:`CARRY_COLUMNS`; NaN (NaT) where a farm has no such look.
    """
    e = earlier.reset_index(drop=True)
    n = len(e)
    if not n:
        frame = pd.DataFrame({c: pd.Series(dtype=float) for c in CARRY_COLUMNS})
        frame.insert(0, "farm_id", pd.Series(dtype=object))
        return frame
    codes, uniq = pd.factorize(e["farm_id"], sort=False)
    ends = np.r_[codes[1:] != codes[:-1], True]
    if ends.sum() != len(uniq):  # a farm's rows apart: gather them (dates keep their order)
        e = e.take(np.argsort(codes, kind="stable")).reset_index(drop=True)
        codes, uniq = pd.factorize(e["farm_id"], sort=False)
        ends = np.r_[codes[1:] != codes[:-1], True]
    # a farm's last row ends its run of equal codes
    last = np.flatnonzero(ends)
    prev = last - 1
    has2 = prev >= 0
    has2[has2] = codes[prev[has2]] == codes[last[has2]]
    date = pd.to_datetime(e["date"])
    out = {"farm_id": e["farm_id"].to_numpy()[last]}

    def at(col: pd.Series, rows: np.ndarray, ok: np.ndarray | None = None) -> pd.Series:
        vals = col.take(rows).reset_index(drop=True)
        return vals if ok is None else vals.where(ok)

    cols: dict[str, pd.Series] = {
        "value_1": at(e["value"].astype(float), last),
        "date_1": at(date, last),
        "expected_1": at(e["expected"].astype(float), last),
        "value_2": at(e["value"].astype(float), np.maximum(prev, 0), has2),
        "date_2": at(date, np.maximum(prev, 0), has2),
        "expected_2": at(e["expected"].astype(float), np.maximum(prev, 0), has2),
        "season_1": at(e["season_id"], last),
        "loss_ref_1": at(e["expected_h"].astype(float), last),
    }
    loss = pd.Series((e["hazard"] == _LOSS).to_numpy(dtype=float))
    cols["loss_1"] = at(loss, last)
    cols["loss_2"] = at(loss, np.maximum(prev, 0), has2)
    sound = ~e["hazard"].isin(_UNSOUND).to_numpy()
    # per column the last known value of the sound looks (``keeping_pace`` forward-fills
    # each column on its own)
    ref = pd.DataFrame(
        {"value": e["value"].astype(float), "peer_median": e["peer_median"].astype(float),
         "date": date}
    )[sound].groupby(codes[sound], sort=False).last()  # fmt: skip
    ref = ref.reindex(np.arange(len(uniq)))
    for name in ("value", "peer_median", "date"):
        cols[f"sound_{name}"] = ref[name].take(codes[last]).reset_index(drop=True)
    frame = pd.DataFrame(out)
    for name in CARRY_COLUMNS:
        frame[name] = cols[name].to_numpy()
    return frame


@dataclass(frozen=True)
class Earlier:
    """A :func:`label_carry` laid on the rows of a features frame sorted by farm and date."""

    #: each row's position among its farm's rows of the frame (0: the farm's first)
    pos: np.ndarray
    #: :data:`CARRY_COLUMNS` of each row's farm (NaN where the carry has no row for it)
    rows: pd.DataFrame

    @classmethod
    def build(cls, f: pd.DataFrame, carry: pd.DataFrame) -> Earlier:
        """Lay ``carry`` (one row per farm) on the rows of ``f``."""
        codes = pd.factorize(f["farm_id"], sort=False)[0]
        pos = pd.Series(codes).groupby(codes, sort=False).cumcount().to_numpy()
        c = carry.drop_duplicates("farm_id", keep="last").set_index("farm_id")
        idx = pd.Index(c.index.astype(object))
        at = idx.get_indexer(pd.Index(f["farm_id"].astype(object)))
        rows = c.reset_index(drop=True).reindex(at).set_axis(f.index)
        for name in CARRY_COLUMNS:
            if name not in rows.columns:
                rows[name] = np.nan
            if name in _DATES:  # (an empty or all-missing carry has no dates to infer)
                rows[name] = pd.to_datetime(rows[name])
        return cls(pos=pos, rows=rows)

    def shifted(self, f: pd.DataFrame, cols: list[str], k: int, farm: pd.Series) -> pd.DataFrame:
        """``f[cols]`` ``k`` looks back within each farm, continued into the carry (whose
        previous looks are ``value_1``.. for ``value``; ``cols`` among value, date,
        expected and loss with ``k`` <= 2, loss_ref with ``k`` = 1)."""
        ref = f[cols].groupby(farm, sort=False).shift(k)
        for j in range(k):
            m = self.pos == j
            if not m.any():
                continue
            for col in cols:
                ref[col] = ref[col].where(~m, self.rows[f"{col}_{k - j}"])
        return ref
