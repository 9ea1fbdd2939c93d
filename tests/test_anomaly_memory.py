"""Memory levers of detection (issue #5) change no result: the columns the labelling reads,
the incremental labelling frame, month-by-month look writes, the observation columns read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agrisat.anomaly import DetectSettings
from agrisat.anomaly.core import LABEL_INPUTS, classify_looks, label_looks
from agrisat.anomaly.incremental import full_looks
from agrisat.lookrun import obs_columns
from agrisat.looks import look_tables, month_table, read_looks, write_looks
from agrisat.store import Store, Transaction
from agrisat.testing_series import Event, make_farms, make_observations

EVENTS = [
    Event("F0003", "abrupt_loss", "2026-04-22", "2026-06-10"),
    Event("F0005", "drought", "2026-03-20", "2026-05-30"),
    Event("F0011", "flood", "2026-05-01", "2026-05-20"),
    Event("F0014", "no_planting", "2026-03-01", "2026-06-30"),
]
LABELS = ["hazard", "score", "expected_h", "state", "peer_state"]


@pytest.fixture(scope="module")
def looks() -> pd.DataFrame:
    farms = make_farms(24)
    obs = make_observations(farms, events=EVENTS, start="2024-10-01", end="2026-06-30", seed=5)
    return full_looks(obs, farms, settings=DetectSettings())


def test_labels_read_only_label_inputs(looks: pd.DataFrame) -> None:
    """Scrambling every feature column outside LABEL_INPUTS leaves each label unchanged (so
    an incremental night may leave them out of the earlier looks it labels behind)."""
    s = DetectSettings()
    feats = looks.drop(columns=[c for c in looks.columns if c in LABELS or c not in _features()])
    ref = label_looks(feats, s)
    assert (ref["hazard"] != "none").sum() >= 5  # the events fire: the labels are exercised
    rng = np.random.default_rng(0)
    other = [c for c in feats.columns if c not in LABEL_INPUTS]
    assert {"own_scale", "peer_scale", "change", "moist_change"} <= set(other)
    scrambled = feats.copy()
    for col in other:
        scrambled[col] = rng.normal(size=len(feats)) * 10
    got = label_looks(scrambled, s)
    pd.testing.assert_frame_equal(got[LABELS], ref[LABELS], check_exact=True)
    # ... and the columns listed are all feature columns the looks have
    assert set(LABEL_INPUTS) <= set(feats.columns)


def _features() -> set[str]:
    """Feature columns (what ``label_looks`` is given): the look columns it does not make."""
    return set(LABEL_INPUTS) | {
        "moist", "own_scale", "peer_scale", "radius_median", "peer_moist", "change",
        "moist_change", "own_change_scale", "own_min", "own_n",
    }  # fmt: skip


def test_write_looks_month_by_month(tmp_path, looks: pd.DataFrame) -> None:
    """Full and appended writes put each month's rows (in order) in its own table."""
    store = Store(tmp_path / "w")
    txn = Transaction(staging=store)
    groups = pd.DataFrame({"region": ["r"], "date": [pd.Timestamp("2026-01-01")]})
    state = pd.DataFrame({"farm_id": ["F0000"]})
    d0 = pd.Timestamp("1900-01-01")
    write_looks(txn, store, store.manifest(), looks, groups, state, d0=d0, full=True, through=None)
    store.commit(txn)
    m = store.manifest()
    months = sorted({month_table(d) for d in looks["date"]})
    assert look_tables(m) == months and len(months) > 12
    for name in (months[0], months[len(months) // 2], months[-1]):
        got = store.read(name, manifest=m)
        want = looks[[month_table(d) == name for d in looks["date"]]].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
    everything = read_looks(store, m, [(d0, pd.Timestamp("2200-01-01"))])
    assert len(everything) == len(looks)


def test_obs_columns_skip_what_detection_never_reads(tmp_path) -> None:
    store = Store(tmp_path / "w")
    assert obs_columns(store, store.manifest()) is None
    a = pd.DataFrame(
        {"farm_id": ["a"], "date": ["2026-05-01"], "item_id": ["S1"], "status": ["ok"],
         "clear_fraction": [1.0], "clear_pixels": [9.0], "water_fraction": [0.0],
         "ndvi_mean": [0.5], "ndvi_std": [0.1]}
    )  # fmt: skip
    b = a.assign(ndmi_mean=0.2, ndmi_std=0.05, date="2026-05-06")
    with store.transaction() as txn:
        txn.append("observations", a)
    with store.transaction() as txn:
        txn.append("observations", b)
    cols = obs_columns(store, store.manifest())
    assert cols == [
        "farm_id", "date", "status", "clear_fraction", "water_fraction", "ndvi_mean",
        "ndmi_mean",
    ]  # fmt: skip


def test_every_column_the_detectors_name_is_a_label_input(looks: pd.DataFrame) -> None:
    """A static guard for LABEL_INPUTS: each look column that the labelling code names
    (``f["x"]``, ``"x" in f.columns``, ``col("x")``) is either in LABEL_INPUTS or made by the
    labelling itself. A detector reading a new column with an ``in f.columns`` fallback
    would otherwise differ silently between the full and the incremental paths."""
    import re
    from pathlib import Path

    import agrisat.anomaly as pkg

    here = Path(pkg.__file__).parent
    pattern = re.compile(r'f\["([a-z_]+)"\]|"([a-z_]+)" (?:not )?in f\.columns|col\("([a-z_]+)"\)')
    named: set[str] = set()
    for name in ("detectors.py", "robust.py", "core.py"):
        for m in pattern.finditer((here / name).read_text()):
            named.add(next(g for g in m.groups() if g))
    assert {"value", "peer_z", "season_peer_z"} <= named  # the pattern finds what it should
    s = DetectSettings()
    feats = looks[[c for c in looks.columns if c in LABEL_INPUTS]]
    # made by the labelling or by the confirmation runs that follow it (core.py too)
    made = set(classify_looks(feats, s).columns) - set(feats.columns)
    missing = (named & set(looks.columns)) - set(LABEL_INPUTS) - made
    assert not missing, f"add {sorted(missing)} to agrisat.anomaly.core.LABEL_INPUTS"
