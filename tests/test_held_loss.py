"""A loss that waits for a second look is confirmed by the next look when the crop did not
come back (``DetectSettings.abrupt_hold_share``), not when it was a dip that recovered.

A 16-day composite has no per-look quality band: its clear share is unknown and a one-look
abrupt loss on it waits for a second look (``unknown_sky_looks``). A clear-fell seen through
composites is one drop and then a floor that wobbles (bfast: 0.84, 0.73, 0.62, 0.66): the
look after the drop is no new drop and, near the season's decline, not a drought either.
It is the loss still: at least ``abrupt_drop`` below the level before it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agrisat.anomaly import DetectSettings, detect

#: the look showing the loss; the composites after it follow every 16 days
LOSS = "2026-08-13"


def _composites(tail: list[float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One farm without peers (crop ``other``, alone in its region), 16-day composites of
    unknown sky 2021-2026 of a canopy at ~0.84 in July declining into autumn; from ``LOSS``
    on its looks are ``tail`` (the series ends there)."""
    rng = np.random.default_rng(5)
    days = []
    for year in range(2021, 2027):
        start = pd.Timestamp(f"{year}-01-01")
        days += list(start + pd.to_timedelta(np.arange(0, 365, 16), unit="D"))
    dates = pd.DatetimeIndex(days)
    doy = dates.day_of_year.to_numpy()
    value = 0.72 + 0.12 * np.cos(2 * np.pi * (doy - 200) / 365) + rng.normal(0, 0.01, len(dates))
    cut = np.flatnonzero(dates >= pd.Timestamp(LOSS))
    value[cut[: len(tail)]] = tail
    keep = np.r_[np.arange(cut[0]), cut[: len(tail)]]
    d = dates[keep]
    obs = pd.DataFrame(
        {
            "farm_id": "P",
            "date": d.strftime("%Y-%m-%d"),
            "item_id": [f"M_{x:%Y%m%d}" for x in d],
            "status": "ok",
            "clear_fraction": np.nan,  # a composite: nobody knows its sky
            "clear_pixels": 100.0,
            "water_fraction": np.nan,
            "ndvi_mean": np.round(value[keep], 3),
            "ndvi_std": 0.01,
        }
    )
    farms = pd.DataFrame(
        {
            "farm_id": ["P"],
            "loan_id": "L",
            "borrower_id": "B",
            "crop": "other",
            "region": "R",
            "exposure": 1.0,
        }
    )
    return obs, farms


def _looks(tail: list[float], **kw: object) -> pd.DataFrame:
    obs, farms = _composites(tail)
    settings = DetectSettings(**kw)  # type: ignore[arg-type]
    looks = detect(obs, farms, asof=obs["date"].max(), settings=settings)
    looks = looks[looks["state"] != "stale"].copy()
    looks["date"] = pd.to_datetime(looks["date"])
    return looks[looks["date"] >= pd.Timestamp(LOSS)].reset_index(drop=True)


def test_a_held_loss_whose_next_look_stays_down_confirms_on_it() -> None:
    # 0.84 -> 0.60, then 0.685: 0.16 below the level before the loss, two thirds of it kept
    looks = _looks([0.60, 0.685, 0.80, 0.80])
    loss, after = looks.iloc[0], looks.iloc[1]
    assert loss["hazard"] == "abrupt_loss" and not bool(loss["confirmed"])  # waits: sky unknown
    # on its own the next look is no event: inside the drought deficit (the season declines)
    s = DetectSettings()
    assert after["own_deficit"] < s.drought_deficit
    assert after["hazard"] == "abrupt_loss" and bool(after["confirmed"])
    assert after["expected"] == loss["expected"]  # measured against the level before the loss
    # the rule off: the run breaks and the loss is never confirmed
    off = _looks([0.60, 0.685, 0.80, 0.80], abrupt_hold_share=0.0)
    assert off.loc[1, "hazard"] == "none" and not off["confirmed"].astype(bool).any()


def test_a_dip_that_recovers_does_not_confirm() -> None:
    for tail in ([0.60, 0.80, 0.80], [0.60, 0.75, 0.80]):  # back, or back within abrupt_drop
        looks = _looks(tail)
        assert looks.loc[0, "hazard"] == "abrupt_loss"
        assert looks.loc[1, "hazard"] == "none", tail
        assert not looks["confirmed"].astype(bool).any(), tail


def test_only_the_look_right_after_the_loss_holds_it() -> None:
    """A floor of looks each just inside the drought deficit is not a run of losses: the
    look after the loss holds it (and confirms); the next one is judged on its own."""
    looks = _looks([0.60, 0.685, 0.685, 0.80])
    assert list(looks["hazard"][:3]) == ["abrupt_loss", "abrupt_loss", "none"]
    assert looks.loc[2, "own_deficit"] < DetectSettings().drought_deficit
