"""The labelling carry: labels of later looks with a per-farm carry of the earlier ones equal
the labels of the whole frame (what an incremental night relies on instead of relabelling
the recent window), the coordinates cache and the lagged medians of some rows only."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from agrisat.anomaly import DetectSettings, partition
from agrisat.anomaly.carry import CARRY_INPUTS, Earlier, label_carry
from agrisat.anomaly.core import LABEL_INPUTS, label_looks
from agrisat.anomaly.detectors import _abrupt_mask, _flood_mask, keeping_pace
from agrisat.anomaly.incremental import context_from_looks, extend_looks, full_looks
from agrisat.anomaly.lagged import peer_lagged
from agrisat.anomaly.losses import _same_season_as_previous, held_losses, loss_reference
from agrisat.anomaly.partition import _batches
from agrisat.anomaly.radius import farm_coordinates
from agrisat.anomaly.robust import own_abrupt
from agrisat.testing_series import Event, make_farms, make_observations

S = DetectSettings()
LABELS = ["hazard", "score", "expected_h", "state", "peer_state"]


def _frame(seed: int, farms: int = 60, looks: int = 26) -> pd.DataFrame:
    """Labelling inputs of farms greening at or behind their peers' pace, with floods,
    abrupt drops (with and without peers), cloud gaps up to two months, crop seasons and
    off-season looks: every rule that reads a farm's earlier looks has work."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(farms):
        gaps = rng.choice(
            [5, 5, 10, 15, 25, 45, 70], size=looks, p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.1, 0.05]
        )
        dates = pd.Timestamp("2025-01-01") + pd.to_timedelta(np.cumsum(gaps), unit="D")
        peer = 0.3 + 0.5 * np.clip(np.arange(looks) / looks + rng.normal(0, 0.02, looks), 0, 1)
        lag = rng.uniform(0.0, 0.12)  # a late farm: behind its peers, at their pace
        value = np.clip(peer - lag + rng.normal(0, 0.015, looks), 0.02, 0.95)
        drop = rng.random(looks) < 0.12  # abrupt losses (a canopy gone)
        value[drop] = rng.uniform(0.05, 0.25, drop.sum())
        water = np.where(rng.random(looks) < 0.1, rng.uniform(0.3, 0.7, looks), 0.0)
        no_peer = rng.random(looks) < 0.3
        expected = np.where(rng.random(looks) < 0.1, np.nan, peer + rng.normal(0, 0.02, looks))
        season = np.array([f"{i}-{k // 9}" for k in range(looks)], dtype=object)
        season[rng.random(looks) < 0.1] = None
        rows.append(
            pd.DataFrame(
                {
                    "farm_id": f"F{i:03d}",
                    "date": dates,
                    "value": value,
                    "water_fraction": water,
                    "peer_median": np.where(no_peer, np.nan, peer),
                    "expected": expected,
                    "season_id": season,
                    "in_harvest": rng.random(looks) < 0.1,
                }
            )
        )
    f = pd.concat(rows, ignore_index=True)
    g = f.groupby("farm_id", sort=False)
    f["prev_value"] = g["value"].shift(1)
    f["prev_date"] = g["date"].shift(1)
    f["prev_peer_median"] = g["peer_median"].shift(1).fillna(f["peer_median"] - 0.03)
    n = len(f)
    f["crop"], f["region"], f["stage"] = "maize", "r1", "veg"
    f["clear_fraction"] = np.where(rng.random(n) < 0.1, 0.8, 1.0)
    f["ndwi"] = rng.uniform(-0.3, 0.2, n)
    f["green"] = f["watch"] = f["has_calendar"] = True
    f["expected_mid"] = f["expected"]
    f["own_n"], f["vci"], f["own_min"] = 10.0, 0.5, f["expected"] - 0.2
    f["hist_water"] = np.where(rng.random(n) < 0.3, np.nan, 0.0)
    f["own_change_scale"] = 0.02
    with np.errstate(all="ignore"):
        f["own_deficit"] = (f["expected"] - f["value"]) / f["expected"]
        f["own_z"] = (f["value"] - f["expected"]) / 0.03
        f["peer_deficit"] = (f["peer_median"] - f["value"]) / f["peer_median"]
        f["peer_z"] = (f["value"] - f["peer_median"]) / 0.03
    f["peer_level"] = np.where(f["peer_median"].isna(), "none", "region")
    f["peer_n"], f["peer_water"], f["peer_ndwi"] = 12.0, 0.0, -0.1
    f["peer_deficit_median"] = 0.02
    f["usual_gap"] = np.nan
    f["season_peer_z"], f["season_peer_deficit"] = f["peer_z"], f["peer_deficit"]
    f["season_max"] = f.groupby(["farm_id", f["season_id"].fillna("-")])["value"].cummax()
    f["peer_season_max"] = g["peer_median"].cummax()
    f["change_ref_n"] = 3.0
    f["change_z"] = rng.normal(-1, 2, n)
    f["moist_change_z"] = rng.normal(-1, 2, n)
    f["change_rel"] = rng.normal(-0.05, 0.1, n)
    f["peer_lagged"] = f["peer_median"] - 0.05
    f["peer_lagged_max"] = f["peer_median"] - 0.15
    return f[list(LABEL_INPUTS)]


def _labelled(head: pd.DataFrame, whole: pd.DataFrame, later: np.ndarray) -> pd.DataFrame:
    """``head`` with the labels of the whole frame that the carry reads."""
    lab = whole.loc[~later, ["hazard", "expected_h"]]
    return head.assign(**{c: lab[c].to_numpy() for c in lab.columns})


def _split(f: pd.DataFrame, at: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    later = (f["date"] >= at).to_numpy()
    return f[~later], f[later].reset_index(drop=True), later


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_with_the_carry_equal_labels_behind_the_earlier_looks(seed: int) -> None:
    f = _frame(seed)
    whole = label_looks(f, S)
    assert {"flood", "abrupt_loss", "drought"} <= set(whole["hazard"])
    for at in pd.to_datetime(["2025-03-01", "2025-06-15", "2025-09-01", "2026-01-10"]):
        head, tail, later = _split(f, at)
        carry = label_carry(_labelled(head, whole, later))
        got = label_looks(tail, S, carry=carry)
        want = whole[later].reset_index(drop=True)
        pd.testing.assert_frame_equal(got[LABELS], want[LABELS], check_exact=True)


def test_every_rule_reading_earlier_looks_continues_into_the_carry() -> None:
    """Each rule on the later looks alone is wrong somewhere (the carry matters) and right
    with the carry, on farms' first and second later looks alike."""
    f = _frame(7, farms=120)
    whole = label_looks(f, S)
    differs = dict.fromkeys(["own_abrupt", "same_season", "pace", "held", "labels"], 0)
    own = own_abrupt(f, S)
    loss = _abrupt_mask(f, S, own=own[0]) & ~_flood_mask(f, S)
    before = loss_reference(f, *own)
    for at in pd.to_datetime(["2025-04-01", "2025-07-01", "2025-10-01"]):
        head, tail, later = _split(f, at)
        carry = label_carry(_labelled(head, whole, later))
        e = Earlier.build(tail, carry)
        assert (e.pos == 1).any()
        for k, (ref, got, alone) in {
            "own_abrupt": (
                own_abrupt(f, S)[1][later], own_abrupt(tail, S, earlier=e)[1],
                own_abrupt(tail, S)[1],
            ),
            "same_season": (
                _same_season_as_previous(f, np.ones(len(f), bool))[later],
                _same_season_as_previous(tail, np.ones(len(tail), bool), earlier=e),
                _same_season_as_previous(tail, np.ones(len(tail), bool)),
            ),
            "pace": (keeping_pace(f, S)[later], keeping_pace(tail, S, earlier=e),
                     keeping_pace(tail, S)),
            "held": (
                held_losses(f, S, loss=loss, before=before)[1][later],
                held_losses(tail, S, loss=loss[later].reset_index(drop=True),
                            before=before[later].reset_index(drop=True), earlier=e)[1],
                held_losses(tail, S, loss=loss[later].reset_index(drop=True),
                            before=before[later].reset_index(drop=True))[1],
            ),
            "labels": (whole.loc[later, "hazard"], label_looks(tail, S, carry=carry)["hazard"],
                       label_looks(tail, S)["hazard"]),
        }.items():  # fmt: skip
            ref = pd.Series(ref.to_numpy())
            np.testing.assert_array_equal(got.to_numpy(), ref.to_numpy())
            differs[k] += int((alone.fillna(-1).to_numpy() != ref.fillna(-1).to_numpy()).sum())
        np.testing.assert_array_equal(
            _abrupt_mask(tail, S, earlier=e).to_numpy(), _abrupt_mask(f, S)[later].to_numpy()
        )
    assert all(v > 0 for v in differs.values()), differs


def test_label_carry_by_hand() -> None:
    d = pd.to_datetime(["2025-05-01", "2025-05-06", "2025-05-11", "2025-05-16", "2025-05-03"])
    looks = pd.DataFrame(
        {
            "farm_id": ["a", "a", "a", "a", "b"],
            "date": d,
            "value": [0.5, 0.6, 0.7, 0.2, 0.4],
            "expected": [0.55, 0.6, np.nan, 0.7, 0.5],
            "season_id": ["s1", "s1", "s2", "s2", None],
            "peer_median": [0.45, 0.5, np.nan, 0.6, 0.3],
            "hazard": ["none", "flood", "drought", "abrupt_loss", "flood"],
            "expected_h": [np.nan, 0.1, 0.8, 0.75, 0.2],
        }
    )[list(CARRY_INPUTS)]
    c = label_carry(looks).set_index("farm_id")
    a, b = c.loc["a"], c.loc["b"]
    assert (a["value_1"], a["value_2"], a["expected_1"]) == (0.2, 0.7, 0.7)
    # the latest look is a loss from 0.75, the one before it is not
    assert (a["loss_1"], a["loss_2"], a["loss_ref_1"]) == (1.0, 0.0, 0.75)
    assert b["loss_1"] == 0.0 and np.isnan(b["loss_2"])
    assert np.isnan(a["expected_2"]) and a["season_1"] == "s2"
    assert (a["date_1"], a["date_2"]) == (d[3], d[2])
    # the last sound look is the third (a drought look is sound); its peers' median is
    # unknown, so the last known one of the sound looks stands (the first look's)
    assert (a["sound_value"], a["sound_date"], a["sound_peer_median"]) == (0.7, d[2], 0.45)
    assert b["value_1"] == 0.4 and np.isnan(b["value_2"]) and pd.isna(b["date_2"])
    assert np.isnan(b["sound_value"]) and pd.isna(b["sound_date"])
    assert len(label_carry(looks.iloc[:0])) == 0
    # a farm's rows apart (each farm's own in date order): the same carry
    apart = label_carry(looks.take([0, 4, 1, 2, 3])).set_index("farm_id")
    pd.testing.assert_frame_equal(apart.sort_index(), c.sort_index(), check_exact=True)


def test_night_carry_on_a_simulated_book_equals_the_full_labels() -> None:
    """On simulated looks (events, clouds): the new looks labelled with the carry of all
    earlier looks have the labels the full run gave them."""
    farms = make_farms(12, crop="wheat_maize", region="county-a", prefix="A")
    events = [
        Event("A0003", "abrupt_loss", "2026-04-22", "2026-06-10"),
        Event("A0005", "drought", "2026-03-20", "2026-05-30"),
        Event("A0008", "flood", "2026-05-01", "2026-05-20"),
    ]
    obs = make_observations(farms, events=events, start="2025-06-01", end="2026-06-30", seed=2)
    obs = obs[np.random.default_rng(1).random(len(obs)) >= 0.25]  # clouds
    full = full_looks(obs.assign(date=pd.to_datetime(obs["date"])), farms)
    assert {"flood", "abrupt_loss"} <= set(full["hazard"])
    for at in pd.to_datetime(["2026-04-25", "2026-05-05", "2026-05-20"]):
        later = (full["date"] >= at).to_numpy()
        carry = label_carry(full.loc[~later, list(CARRY_INPUTS)])
        cols = [c for c in full.columns if c in LABEL_INPUTS]
        got = label_looks(full.loc[later, cols].reset_index(drop=True), S, carry=carry)
        want = full[later].reset_index(drop=True)
        pd.testing.assert_frame_equal(got[LABELS], want[LABELS], check_exact=True)


def test_farm_coordinates_once_per_book() -> None:
    polys = [shapely.box(x, 0, x + 0.01, 0.01) for x in np.arange(5) * 0.1]
    book = gpd.GeoDataFrame({"farm_id": list("abcde")}, geometry=polys, crs="EPSG:4326")
    first = farm_coordinates(book)
    assert first is not None
    first[:] = 0.0  # the caller's copy: the cache keeps its own
    again = farm_coordinates(book.assign(crop="maize"))
    # new (equal) polygon objects: computed afresh
    fresh = gpd.GeoDataFrame(geometry=[shapely.box(*p.bounds) for p in polys], crs="EPSG:4326")
    np.testing.assert_array_equal(again, farm_coordinates(fresh))
    assert again is not None and np.abs(again).max() > 6e6  # not the zeros written above
    moved = book.copy()
    moved.loc[2, "geometry"] = shapely.box(5, 5, 5.01, 5.01)
    got = farm_coordinates(moved)
    assert got is not None
    np.testing.assert_array_equal(got[[0, 1, 3, 4]], again[[0, 1, 3, 4]])
    assert np.linalg.norm(got[2] - again[2]) > 100_000  # five degrees away
    utm = book.to_crs("EPSG:32650")
    np.testing.assert_allclose(farm_coordinates(utm), again, atol=1.0)


def test_peer_lagged_of_the_first_rows_only() -> None:
    f = _frame(3, farms=10).reset_index(drop=True)
    f["peer_level"] = np.where(np.arange(len(f)) % 3 == 0, "radius", f["peer_level"])
    f["radius_median"] = np.where(f["peer_level"] == "radius", f["peer_median"], np.nan)
    f = f.sort_values("date", kind="stable").reset_index(drop=True)
    for days in (15, 30):
        whole = peer_lagged(f, days)
        assert whole.notna().sum() > 20
        part = peer_lagged(f, days, rows=100)
        np.testing.assert_array_equal(part.to_numpy(), whole.to_numpy()[:100])


def test_label_batches_group_whole_partitions() -> None:
    parts = [slice(0, 100), slice(100, 250), slice(250, 300), slice(300, 700)]
    assert _batches(parts, 250) == [(0, 250, 0, 2), (250, 300, 2, 3), (300, 700, 3, 4)]
    assert _batches(parts, 10**6) == [(0, 700, 0, 4)]
    assert _batches([slice(0, 0)], 5) == [(0, 0, 0, 1)]


def test_night_in_small_label_batches_equals_the_full_run(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    farms = make_farms(9, crop="wheat_maize", region="county-a", prefix="A")
    events = [
        Event("A0002", "abrupt_loss", "2026-04-22", "2026-06-10"),
        Event("A0004", "flood", "2026-05-01", "2026-05-20"),
    ]
    obs = make_observations(farms, events=events, start="2025-06-01", end="2026-06-30", seed=4)
    obs = obs[np.random.default_rng(2).random(len(obs)) >= 0.2]
    obs = obs.assign(date=pd.to_datetime(obs["date"]))
    full = full_looks(obs, farms)
    d0 = pd.Timestamp("2026-05-04")
    ctx = context_from_looks(full, d0=d0, d1=obs["date"].max())
    monkeypatch.setattr(partition, "_LABEL_ROWS", 40)
    got = extend_looks(obs[obs["date"] >= d0], farms, ctx, d0=d0, settings=DetectSettings(
        partition_farms=2))  # fmt: skip
    assert len(got) > 2 * 40  # several label batches of whole partitions
    want = full[full["date"] >= d0].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_unsound_looks_are_the_two_top_hazards() -> None:
    """The carry reads a stored look's soundness off its ``hazard``: flood or abrupt loss
    fired exactly when the hazard is one of them, as long as no hazard outranks them."""
    from agrisat.anomaly.carry import _UNSOUND
    from agrisat.anomaly.settings import HAZARD_PRIORITY

    assert set(HAZARD_PRIORITY[: len(_UNSOUND)]) == set(_UNSOUND)
