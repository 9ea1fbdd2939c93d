"""sits' labelled series (``../shared/data/evaluation/sits``, GPL-2: read in place) as
evaluation sets: the loaders of :mod:`benchmarks.real_sits`, and detection on them.

Loader checks compare the loaders' tables with the CSVs read here directly (pandas, no
agrisat code): counts per label, the date axis, NDVI in [-1, 1], every farm's series equal to
its own sample's rows. Detection checks follow ``tests/test_real_series.py``: a floor with a
physical reason passes today; where the detector misses the issue's targets (recall >= 0.95,
hazard-correct >= 0.85, <= 0.5 false alerts per 100 farm-seasons) the test is written at the
target and marked ``xfail(strict=True)`` with the measured figure, so it flips when fixed.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from agrisat.errors import AgrisatError

from .conftest import SHARED_DATA, shared_path

if TYPE_CHECKING:
    from benchmarks.real_series import RealSet

RONDONIA = "samples_l8_rondonia_2bands_long.csv"
MODIS = "samples_modis_ndvi_long.csv"
POINT = "point_mt_6bands_long.csv"
CERRADO = "cerrado_2classes_long.csv"


def _need(name: str) -> Path:
    return shared_path("evaluation", "sits", name)


def _wide(obs: pd.DataFrame) -> pd.DataFrame:
    return obs.pivot(index="farm_id", columns="date", values="ndvi_mean")


# --- the fill detector, on constructed series --------------------------------------------


def test_interpolated_flags_linear_fills_only() -> None:
    """A straight run between two looks is a fill; noisy looks, and the first and last dates
    (no neighbour on one side), are not; a value on the line in one band only is not."""
    from benchmarks.real_sits import interpolated

    ramp = np.array([[0.80, 0.70, 0.60, 0.50, 0.55, 0.81, 0.79]])
    evi = np.array([[0.50, 0.45, 0.40, 0.35, 0.30, 0.52, 0.49]])
    got = interpolated(ramp, evi)
    assert got.tolist() == [[False, True, True, False, False, False, False]]
    # rounding to 4 decimals keeps a fill on the line; a 0.01 wobble does not
    assert interpolated(np.round(np.array([[0.8, 0.7333333, 0.6666667, 0.6]]), 4))[0, 1:3].all()
    assert not interpolated(np.array([[0.80, 0.71, 0.60]]))[0, 1]
    # on the line in NDVI but not in EVI: a real look that happens to be collinear
    assert not interpolated(np.array([[0.8, 0.7, 0.6]]), np.array([[0.5, 0.3, 0.4]]))[0, 1]


# --- loaders against the CSVs --------------------------------------------------------------


def _write(root: Path, name: str, frame: pd.DataFrame) -> None:
    d = root / "evaluation" / "sits"
    d.mkdir(parents=True, exist_ok=True)
    frame.to_csv(d / name, index=False)


def test_absent_file_names_it(tmp_path: Path) -> None:
    from benchmarks.real_sits import sits_rondonia

    with pytest.raises(AgrisatError, match=RONDONIA):
        sits_rondonia(tmp_path)


def test_a_sample_with_two_labels_is_refused(tmp_path: Path) -> None:
    """Two samples exported under one id would mix two places into one farm."""
    from benchmarks.real_sits import sits_mt_point

    rows = pd.DataFrame(
        {
            "sample_id": [0, 0],
            "longitude": [-55.5, -55.5],
            "latitude": [-11.7, -11.7],
            "label": ["Forest", "Pasture"],
            "NDVI": [0.8, 0.5],
            "date": ["2000-09-13", "2000-10-15"],
        }
    )
    _write(tmp_path, POINT, rows)
    with pytest.raises(AgrisatError, match="two labels"):
        sits_mt_point(tmp_path)


def test_rondonia_farms_are_the_samples() -> None:
    """160 samples, 40 per label; each farm holds its own sample's 25 dates (2018-07-12 ..
    2019-07-28) and values, in date order; NDVI within [-1, 1]."""
    raw = pd.read_csv(_need(RONDONIA))
    from benchmarks.real_sits import sits_rondonia

    rs = sits_rondonia(SHARED_DATA, fills="keep")
    labels = pd.Series(rs.extra["label"])
    assert labels.value_counts().to_dict() == {
        "Deforestation": 40,
        "Forest": 40,
        "NatNonForest": 40,
        "Pasture": 40,
    }
    assert len(rs.farms) == 160 and rs.farms["farm_id"].is_unique
    wide = _wide(rs.observations)
    assert wide.shape == (160, 25)
    assert (wide.columns[0], wide.columns[-1]) == ("2018-07-12", "2019-07-28")
    expected = raw.pivot(index="sample_id", columns="date", values="NDVI")
    sample = pd.Series(rs.extra["sample_id"])
    np.testing.assert_array_equal(wide.to_numpy(), expected.loc[sample[wide.index]].to_numpy())
    lab = raw.groupby("sample_id")["label"].first()
    assert (labels == lab.loc[sample[labels.index]].to_numpy()).all()
    v = rs.observations["ndvi_mean"]
    assert v.notna().all() and v.between(-1, 1).all()


def test_rondonia_peers_do_not_know_the_label() -> None:
    """Deforestation and Forest samples share book crop and region (the cover before the
    event), so peer groups cannot tell them apart; the events are exactly the Deforestation
    samples, abrupt losses over the whole series (the date is not documented)."""
    _need(RONDONIA)
    from benchmarks.real_sits import sits_rondonia

    rs = sits_rondonia(SHARED_DATA)
    book = rs.farms.set_index("farm_id")
    label = pd.Series(rs.extra["label"])
    woods = book.loc[label[label.isin(["Deforestation", "Forest"])].index]
    assert woods["crop"].nunique() == 1 and woods["region"].nunique() == 1
    assert set(rs.events["farm_id"]) == set(label[label == "Deforestation"].index)
    assert set(rs.events["hazard"]) == {"abrupt_loss"}
    assert (rs.events["start"] == "2018-07-12").all() and (rs.events["end"] == "2019-07-28").all()


def test_rondonia_wet_season_is_mostly_fills() -> None:
    """Landsat rarely sees the ground through Rondonia's wet-season cloud (Dec..Mar), so the
    cube's values there are mostly sits' fills, i.e. cloudy dates; a cloudy date never
    carries a value, and the first and last dates are always looks."""
    _need(RONDONIA)
    from benchmarks.real_sits import sits_rondonia

    obs = sits_rondonia(SHARED_DATA).observations
    month = pd.to_datetime(obs["date"]).dt.month
    wet = obs[month.isin([12, 1, 2, 3])]
    assert (wet["status"] == "cloudy").mean() >= 0.8
    assert obs.loc[obs["status"] == "cloudy", "ndvi_mean"].isna().all()
    ends = obs[obs["date"].isin(["2018-07-12", "2019-07-28"])]
    assert (ends["status"] == "ok").all()


def test_modis_samples_one_season_each() -> None:
    """1,218 samples (Cerrado 379, Forest 131, Pasture 344, Soy_Corn 364), each 12 composites
    within one Sep..Aug season; peers are the same label in the same season; each sample is
    in exactly one replay part, that of its season."""
    raw = pd.read_csv(_need(MODIS))
    from benchmarks.real_sits import sits_modis_seasons

    rs = sits_modis_seasons(SHARED_DATA)
    assert pd.Series(rs.extra["label"]).value_counts().to_dict() == (
        raw.groupby("sample_id")["label"].first().value_counts().to_dict()
    )
    assert len(rs.farms) == 1218
    d = pd.to_datetime(rs.observations["date"])
    span = d.groupby(rs.observations["farm_id"]).agg(["min", "max", "size"])
    assert (span["size"] == 12).all()
    assert (span["min"].dt.month == 9).all() and ((span["max"] - span["min"]).dt.days < 366).all()
    region = rs.farms.set_index("farm_id")["region"]
    assert (region[span.index].str[:4].astype(int).to_numpy() == span["min"].dt.year).all()
    assert (rs.farms["crop"] == rs.farms["farm_id"].map(rs.extra["label"]).str.lower()).all()
    parts: list[RealSet] = rs.extra["parts"]  # type: ignore[assignment]
    ids = [f for p in parts for f in p.farms["farm_id"]]
    assert sorted(ids) == sorted(rs.farms["farm_id"]) and len(parts) == region.nunique()
    for p in parts:
        assert p.farms["region"].nunique() == 1
        assert set(p.observations["farm_id"]) == set(p.farms["farm_id"])
    assert rs.observations["ndvi_mean"].between(-1, 1).all()


def test_cerrado_samples_full_cadence() -> None:
    """746 samples (Cerrado 400, Pasture 346), each 23 16-day composites of one Sep..Aug
    season, each farm holding its own sample's values."""
    raw = pd.read_csv(_need(CERRADO))
    from benchmarks.real_sits import sits_cerrado_seasons

    rs = sits_cerrado_seasons(SHARED_DATA)
    assert pd.Series(rs.extra["label"]).value_counts().to_dict() == {"Cerrado": 400, "Pasture": 346}
    assert len(rs.farms) == 746 and rs.farms["farm_id"].is_unique
    d = pd.to_datetime(rs.observations["date"]).groupby(rs.observations["farm_id"])
    assert (d.size() == 23).all() and ((d.max() - d.min()).dt.days < 366).all()
    sample = pd.Series(rs.extra["sample_id"])
    one = raw[raw["sample_id"] == sample.iloc[100]].sort_values("date")["NDVI"]
    got = rs.observations[rs.observations["farm_id"] == sample.index[100]]["ndvi_mean"]
    np.testing.assert_array_equal(got.to_numpy(), one.to_numpy())
    assert rs.observations["ndvi_mean"].between(-1, 1).all()


def test_mt_point_is_one_long_series() -> None:
    raw = pd.read_csv(_need(POINT))
    from benchmarks.real_sits import sits_mt_point

    obs = sits_mt_point(SHARED_DATA).observations
    assert len(obs) == len(raw) == 204 and obs["farm_id"].nunique() == 1
    assert obs["date"].is_monotonic_increasing and obs["date"].is_unique
    np.testing.assert_array_equal(obs["ndvi_mean"], raw.sort_values("date")["NDVI"])


# --- detection on Rondonia: 40 documented clearings, 120 samples without -------------------


@cache
def _rondonia() -> tuple[RealSet, pd.DataFrame]:
    from benchmarks.real_replay import raised, replay
    from benchmarks.real_sits import sits_rondonia

    rs = sits_rondonia(SHARED_DATA)
    # acquisition nights only: crop alerts are those of every night (features are per look,
    # nothing about a crop hazard changes between acquisitions); stale data is not judged here
    nights = pd.DatetimeIndex(pd.to_datetime(rs.observations["date"]).unique())
    alerts = raised(replay(rs, nights=nights))
    return rs, alerts[alerts["hazard"] != "stale_data"]


def _visible_losses(rs: RealSet) -> list[str]:
    """Deforestation samples whose clear looks show the clearing: a clear look 0.20 below the
    forest canopy's level (0.85 in clear looks) -- the loss is in the data agrisat sees."""
    obs = rs.observations
    label = pd.Series(rs.extra["label"])
    low = obs[obs["status"] == "ok"].groupby("farm_id")["ndvi_mean"].min() <= 0.65
    return sorted(f for f in label[label == "Deforestation"].index if low.get(f, False))


def test_most_documented_clearings_raise_an_alert() -> None:
    """A clearing takes NDVI from 0.85 to 0.3-0.6: a detector that stays silent on most of
    the documented ones does not watch for loss at all. Floor: more than half raise a crop
    alert (measured 25 of 40)."""
    _need(RONDONIA)
    rs, alerts = _rondonia()
    defo = rs.events["farm_id"]
    assert defo.isin(alerts["farm_id"]).mean() > 0.5


@pytest.mark.xfail(
    strict=True,
    reason="measured 23 of 30 (0.77): on 2019-07-28 a third of the 80 'forest' peers are "
    "under NDVI 0.7 (clearings), their robust spread is 0.093 (0.040 in June) and 0.20 "
    "deficits score peer z -2.1..-2.4, under drought_peer_z 2.5 (RO000, RO027, RO028, RO035, "
    "RO038); a 0.83 -> 0.31 drop across a 48-day cloud gap is outside abrupt_max_gap_days 30 "
    "(RO032); a composite's quality is unknown, so RO017's one-look loss (0.83 -> 0.46 on "
    "2018-09-14) waits for a second look, and its next look (0.50, 96 days of fills later) "
    "is not labelled anomalous: it would hold the loss (abrupt_hold_share) but is over "
    "abrupt_max_gap_days (30) after it (measured again with the hold rule: still 23 of 30)",
)
def test_visible_clearings_recall_at_target() -> None:
    _need(RONDONIA)
    rs, alerts = _rondonia()
    seen = _visible_losses(rs)
    assert len(seen) >= 20
    assert pd.Series(seen).isin(alerts["farm_id"]).mean() >= 0.95


@pytest.mark.xfail(
    strict=True,
    reason="measured 3 of 25 raised clearings named abrupt_loss (also with the hold rule, "
    "abrupt_hold_share: it keeps a loss the drop rules found, it finds no new one): a "
    "clearing spread over several 16-day looks loses under abrupt_drop_rel (30 %) per look, "
    "or its looks are over "
    "abrupt_max_gap_days (30) apart (a missed Landsat pass makes 32- and 48-day gaps); the "
    "two-look window (abrupt_own_window_days) runs only for farms without peers",
)
def test_clearings_are_named_a_loss() -> None:
    _need(RONDONIA)
    rs, alerts = _rondonia()
    mine = alerts[alerts["farm_id"].isin(rs.events["farm_id"])]
    first = mine.sort_values("first_run").groupby("farm_id")["hazard"].first()
    assert (first == "abrupt_loss").mean() >= 0.85


@pytest.mark.xfail(
    strict=True,
    reason="measured 6 alerts on 125 farm-seasons (4.8 per 100): two low-canopy Forest "
    "samples below dense-forest peers (RO052, RO062), dry-season savanna and pasture (burns) "
    "against peers of another phenology, no own history to learn them (RO080, RO089, RO112, "
    "RO138); the one-look dips (RO073, RO120) wait for a second look since a composite's "
    "quality is unknown, and it does not come",
)
def test_undisturbed_samples_false_alerts_at_target() -> None:
    """Forest, Pasture and NatNonForest samples carry no documented event: at the issue's 0.5
    false alerts per 100 farm-seasons, 125 farm-seasons allow what a Poisson count exceeds
    with probability < 2 %."""
    from scipy.stats import poisson

    _need(RONDONIA)
    rs, alerts = _rondonia()
    label = pd.Series(rs.extra["label"])
    quiet = label[label != "Deforestation"].index
    days = pd.to_datetime(rs.observations["date"])
    fs = len(quiet) * (days.max() - days.min()).days / 365.25
    allowed = int(poisson.ppf(0.98, 0.5 * fs / 100.0))
    assert alerts["farm_id"].isin(quiet).sum() <= allowed
