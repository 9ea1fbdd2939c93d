"""agrisat's detector and alert lifecycle on real series with known (or known-quiet) histories.

The series live in ``../shared/data/evaluation`` (bfast and sits are GPL: read in place, never
copied). Each is turned into an observations table by :mod:`benchmarks.real_series` and
replayed night by night by :func:`benchmarks.real_replay.replay` with the real detector and
alert lifecycle. Assertions state what is true of the real world (a clear-fell is a loss seen
within a few looks; a documented drought raises drought; quiet years stay quiet), with margins
from the physics and from sample sizes, not from the detector's current output. Where the
detector misses today, the test is written at the target and marked ``xfail(strict=True)``
with the measured figure, so it flips when the detector is fixed.

Fast replays: quiet periods are replayed every ``SPARSE`` days with
``report_resolved_days`` > ``SPARSE``, so an episode that opens and closes between two runs is
still reported (only its first night moves). Sparser runs can merge a resolved episode with a
new one on the same farm; at 56 days the alert sets equal those of the acquisition-night
replay in ``benchmarks/eval_real.py`` on all four sets (checked). The documented events'
windows are replayed on every acquisition night, so delays are what the nightly job would see.
The single MODIS series get no own-history baseline before 2003 (three earlier seasons are
needed), so their replays start there.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from .conftest import SHARED_DATA, shared_path

#: spacing of the nights replayed in quiet periods, and the lifecycle's report window for them
SPARSE = 56
REPORT = SPARSE + 4


def _need(*parts: str) -> Path:
    return shared_path("evaluation", *parts)


def _nights(
    rs: object, *, dense: tuple[str, str] | None = None, sparse_from: str | None = None
) -> pd.DatetimeIndex:
    """Every ``SPARSE``-th night over the series, plus every acquisition night in ``dense``."""
    dates = pd.to_datetime(rs.observations["date"])  # type: ignore[attr-defined]
    start = pd.Timestamp(sparse_from) if sparse_from else dates.min()
    nights = pd.date_range(start, dates.max(), freq=f"{SPARSE}D").union([dates.max()])
    if dense is not None:
        lo, hi = pd.Timestamp(dense[0]), pd.Timestamp(dense[1])
        nights = nights.union(pd.DatetimeIndex(dates[(dates >= lo) & (dates <= hi)].unique()))
    return nights


@cache
def _harvest() -> tuple[object, pd.DataFrame]:
    from benchmarks.real_replay import raised, replay
    from benchmarks.real_series import bfast_harvest

    rs = bfast_harvest(SHARED_DATA)
    nights = _nights(rs, dense=("2004-08-01", "2005-03-31"), sparse_from="2003-01-01")
    return rs, raised(replay(rs, nights=nights, report_resolved_days=REPORT))


@cache
def _somalia() -> tuple[object, pd.DataFrame]:
    from benchmarks.real_replay import raised, replay
    from benchmarks.real_series import bfast_somalia

    rs = bfast_somalia(SHARED_DATA)
    nights = _nights(rs, dense=("2010-09-01", "2011-07-31"), sparse_from="2003-01-01")
    return rs, raised(replay(rs, nights=nights, report_resolved_days=REPORT))


@cache
def _patch() -> tuple[object, pd.DataFrame]:
    from benchmarks.real_replay import raised, replay
    from benchmarks.real_series import eolearn_patch

    rs = eolearn_patch(SHARED_DATA)
    return rs, raised(replay(rs, nights=_nights(rs), report_resolved_days=REPORT))


@cache
def _landsat() -> tuple[object, pd.DataFrame]:
    from benchmarks.real_replay import raised, replay
    from benchmarks.real_series import landsat_lsts

    rs = landsat_lsts(SHARED_DATA)
    return rs, raised(replay(rs, nights=_nights(rs), report_resolved_days=REPORT))


def _crop(alerts: pd.DataFrame) -> pd.DataFrame:
    return alerts[alerts["hazard"] != "stale_data"]


# --- bfast harvest: a Pinus radiata plantation clear-felled in 2004 -----------------------

#: last composite before the canopy loss shows; the series is at its floor by mid-December
FELL_START, FELL_END = pd.Timestamp("2004-08-12"), pd.Timestamp("2004-12-18")


def _fell_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    a = _crop(alerts)
    return a[
        (a["onset_date"] >= FELL_START - pd.Timedelta(days=15)) & (a["onset_date"] <= FELL_END)
    ]


def _looks_until(rs: object, day: pd.Timestamp) -> int:
    d = pd.to_datetime(rs.observations["date"])  # type: ignore[attr-defined]
    return int(((d > FELL_START) & (d <= day)).sum())


def test_clearfell_raises_an_alert_in_the_event_window() -> None:
    """A canopy gone from NDVI 0.85 to 0.45 within three months is an event: some crop alert
    opens in the window, and no later than 8 composites (~4 months) after the last intact look
    (by then NDVI has fallen 45 %: no analyst would miss it)."""
    _need("bfast", "harvest_ndvi_modis16day.csv")
    rs, alerts = _harvest()
    hit = _fell_alerts(alerts)
    assert len(hit), "no alert for the documented 2004 clear-fell"
    assert _looks_until(rs, hit["first_run"].min()) <= 8


def test_clearfell_raised_within_four_looks() -> None:
    """The loss is unambiguous on the 2nd composite (2004-09-13: 0.62 against 0.77 expected,
    -20 %, >3 robust sigma); a second agreeing look confirms it and one more is slack: raised
    by the 4th composite after the last intact one. (A composite's sky is unknown, so the
    one-look loss waits for a second look: the next composite, 0.66, is no new drop but
    still 0.18 below the stand before the loss, which confirms it.)"""
    _need("bfast", "harvest_ndvi_modis16day.csv")
    rs, alerts = _harvest()
    hit = _fell_alerts(alerts)
    assert len(hit) and _looks_until(rs, hit["first_run"].min()) <= 4


def test_clearfell_is_named_a_loss() -> None:
    """Felling a plantation is a loss of the stand, not a drought."""
    _need("bfast", "harvest_ndvi_modis16day.csv")
    _, alerts = _harvest()
    assert set(_fell_alerts(alerts)["hazard"]) == {"abrupt_loss"}


def test_clearfell_no_alert_while_the_stand_was_intact() -> None:
    """2003 (first year with a baseline) to the felling: a mature evergreen plantation (NDVI 0.75-0.90 every composite);
    nothing happened to it, so nothing is raised."""
    _need("bfast", "harvest_ndvi_modis16day.csv")
    _, alerts = _harvest()
    before = _crop(alerts)[_crop(alerts)["onset_date"] < FELL_START - pd.Timedelta(days=15)]
    assert before.empty, before[["hazard", "onset_date"]].to_string()


def test_clearfell_is_one_alert_until_the_stand_recovers() -> None:
    """One felling is one event: one alert id from 2004 until the series is back in its normal
    range (late 2007), and none still open once it is."""
    _need("bfast", "harvest_ndvi_modis16day.csv")
    _, alerts = _harvest()
    after = _crop(alerts)[_crop(alerts)["onset_date"] >= FELL_START - pd.Timedelta(days=15)]
    assert len(after) == 1 and after["last_status"].iloc[0] == "resolved"


# --- bfast som: two MODIS pixels in Somalia, the 2010-11 drought --------------------------

DROUGHT_START, DROUGHT_END = pd.Timestamp("2010-10-01"), pd.Timestamp("2011-07-31")


def _drought_alerts(alerts: pd.DataFrame, farm: str) -> pd.DataFrame:
    a = alerts[(alerts["farm_id"] == farm) & (alerts["hazard"] == "drought")]
    return a[
        (a["onset_date"] >= DROUGHT_START - pd.Timedelta(days=15))
        & (a["onset_date"] <= DROUGHT_END)
    ]


@pytest.mark.parametrize("farm", ["SOM_a", "SOM_b"])
def test_somalia_drought_raised_by_end_of_failed_deyr(farm: str) -> None:
    """The Oct-Dec 2010 deyr rains failed: the green-up that every earlier year shows in
    November did not come. Drought is raised on each pixel before the season is over
    (2011-01-01, i.e. within ~3 months of the rains' start)."""
    _need("bfast", "som_ndvi_somalia_16day.csv")
    _, alerts = _somalia()
    hit = _drought_alerts(alerts, farm)
    assert len(hit), f"no drought alert on {farm} during 2010-11"
    assert hit["first_run"].min() <= pd.Timestamp("2011-01-01")


def test_somalia_quiet_years_raise_at_most_one_alert_per_pixel() -> None:
    """2003-2009 (years with a baseline) is history bfastmonitor treats as stable. A semi-arid rangeland has real
    dry seasons (the Horn of Africa had drought spells in 2005-06 and 2008-09), so one alert
    per pixel in seven years is allowed; more is the detector chasing rainfall noise."""
    _need("bfast", "som_ndvi_somalia_16day.csv")
    _, alerts = _somalia()
    quiet = _crop(alerts)[
        (_crop(alerts)["onset_date"] >= "2003-01-01")
        & (_crop(alerts)["onset_date"] < DROUGHT_START - pd.Timedelta(days=15))
    ]
    per_pixel = quiet.groupby("farm_id").size()
    assert (per_pixel <= 1).all(), quiet[["farm_id", "hazard", "onset_date"]].to_string()


# --- eo-learn patch (Slovenia, S2, 2015-2017) and Landsat stack (2008-2013): no events -----


def _allowed(farm_seasons: float, target_per_100: float = 0.5, p: float = 0.02) -> int:
    """Largest count a detector at ``target_per_100`` exceeds with probability < ``p`` on this
    many farm-seasons (Poisson): the issue's target, scaled honestly to a small sample."""
    from scipy.stats import poisson

    return int(poisson.ppf(1.0 - p, target_per_100 * farm_seasons / 100.0))


def test_eolearn_patch_false_alerts_within_target() -> None:
    """No event is known on the patch (forest, meadows, shrubs; real clouds). At the issue's
    0.5 false alerts per 100 farm-seasons, 88 farm-seasons allow at most 2."""
    _need("eolearn-testeopatch")
    from benchmarks.real_replay import farm_seasons

    rs, alerts = _patch()
    n = len(_crop(alerts))
    assert n <= _allowed(farm_seasons(rs)), _crop(alerts)[["farm_id", "hazard", "onset_date"]]


def test_eolearn_patch_has_no_moisture_index_and_still_runs() -> None:
    """The patch holds NDVI only; the detector must run on it (no ``ndmi`` column at all)
    and still judge looks (some looks are classified normal, none is lost)."""
    _need("eolearn-testeopatch")
    from benchmarks.real_replay import classified_looks

    rs, _ = _patch()
    assert not any(c.startswith("ndmi") for c in rs.observations.columns)  # type: ignore[attr-defined]
    looks = classified_looks(rs)  # type: ignore[arg-type]
    n_ok = int((rs.observations["status"] == "ok").sum())  # type: ignore[attr-defined]
    assert len(looks) == n_ok
    assert (looks["state"] == "normal").mean() > 0.5


def test_landsat_false_alerts_within_target() -> None:
    """Montane vegetation 2008-2013 with no known event: at 0.5 per 100 farm-seasons, 510
    farm-seasons allow at most 5 false alerts."""
    _need("landsat-lsts")
    from benchmarks.real_replay import farm_seasons

    rs, alerts = _landsat()
    assert len(_crop(alerts)) <= _allowed(farm_seasons(rs))


def test_landsat7_slc_off_stripes_are_no_data_not_zero() -> None:
    """Landsat 7 SLC-off fill must not enter the means. Against the Landsat 5 scene eight days
    later (a canopy does not change in 8 days), blocks crossed by stripes move like blocks
    that are not: the stripes change what is seen, not what is there. (Both groups share the
    sensors' offset: ETM+ NDVI runs ~0.08 above TM here, see the benchmark's report.)"""
    _need("landsat-lsts")
    rs, _ = _landsat()
    obs = rs.observations.set_index(["date", "farm_id"])  # type: ignore[attr-defined]
    l7, l5 = obs.loc["2011-08-10"], obs.loc["2011-08-18"]
    both = (l7["status"] == "ok") & (l5["status"] == "ok")
    assert both.sum() >= 50
    diff = (l7["ndvi_mean"] - l5["ndvi_mean"])[both]
    striped = l7.loc[both, "clear_fraction"] < 0.95
    assert striped.sum() >= 10 and (~striped).sum() >= 10
    assert abs(diff[striped].median() - diff[~striped].median()) < 0.03
