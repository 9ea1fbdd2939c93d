"""A look whose clear share nobody knows does not decide alone.

A scene without SCL (L1C, a harmonised collection, a composite) has no cloud mask: its
pixels are all taken, but its clear fraction is *unknown* (NaN), not 1.0. Detection treats
such a look as not clear enough to confirm a single-look hazard: it waits for a second look.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from agrisat.anomaly import DetectSettings, detect
from agrisat.observations import read_observations
from agrisat.pipeline import run
from agrisat.series import clear_looks
from agrisat.testing import SyntheticFarm, make_archive

X0, Y0 = 600000.0, 4040000.0
DAYS = ["2026-05-01", "2026-05-06", "2026-05-11"]
ASOF = "2026-07-31"
GREEN = {"blue": 0.04, "green": 0.08, "red": 0.05, "nir": 0.40, "swir16": 0.20}


def _archive(root: Path) -> object:
    farms = [
        SyntheticFarm(f"F{i}", box(X0 + 40 + 120 * i, Y0 - 200, X0 + 120 + 120 * i, Y0 - 60), GREEN)
        for i in range(3)
    ]
    cloud = np.full((20, 20), 4, np.uint8)
    cloud[:, :8] = 9  # F0 under cloud on the second date (20 m grid: x < 160 m)
    return make_archive(root, farms, dates=DAYS, scl={DAYS[1]: cloud})


def _drop_scl(catalog: Path) -> int:
    """Remove the SCL asset from every item JSON below the catalog's folder."""
    n = 0
    for f in catalog.parent.rglob("*.json"):
        doc = json.loads(f.read_text())
        if doc.get("type") == "Feature" and "scl" in doc.get("assets", {}):
            del doc["assets"]["scl"]
            f.write_text(json.dumps(doc))
            n += 1
    return n


def _observe(tmp_path: Path, *, scl: bool) -> pd.DataFrame:
    arc = _archive(tmp_path / "arc")
    if not scl:
        assert _drop_scl(arc.catalog) == len(DAYS)  # type: ignore[attr-defined]
    res = run(arc.book, str(arc.catalog), tmp_path / "w", detect=False)  # type: ignore[attr-defined]
    assert res.exit_code == 0
    return read_observations(tmp_path / "w").sort_values(["farm_id", "date"])


def test_scene_with_scl_reports_a_clear_fraction(tmp_path: Path) -> None:
    obs = _observe(tmp_path, scl=True)
    assert len(obs) == 3 * len(DAYS)
    assert obs["clear_fraction"].notna().all()
    # the cloud over F0 on the second date is measured; the other looks are clear
    f0 = obs[(obs["farm_id"] == "F0") & (obs["date"] == DAYS[1])].iloc[0]
    assert f0["clear_fraction"] < 0.5 and f0["status"] == "cloudy"
    assert (obs.loc[obs["farm_id"] != "F0", "clear_fraction"] > 0.99).all()


def test_scene_without_scl_reports_unknown_clear_fraction(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agrisat.ingest"):
        obs = _observe(tmp_path, scl=False)
    assert len(obs) == 3 * len(DAYS)
    # nobody knows the sky: not a confident 1.0 (and not 0: the pixels are there)
    assert obs["clear_fraction"].isna().all()
    # the look is still a look: status ok and an index value (the cloud is not masked)
    assert (obs["status"] == "ok").all()
    assert obs["ndvi_mean"].notna().all()
    said = [r.getMessage() for r in caplog.records if "carry no SCL" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"{len(DAYS)} of {len(DAYS)} scene(s)")
    # ids and counts only in the log
    assert not any("POLYGON" in r.getMessage() for r in caplog.records)


def test_clear_looks_keeps_unknown_quality_under_a_min_clear_share() -> None:
    obs = pd.DataFrame(
        {
            "farm_id": ["A", "A", "A"],
            "date": ["2026-05-01", "2026-05-06", "2026-05-11"],
            "status": ["ok", "ok", "ok"],
            "clear_fraction": [0.95, 0.4, np.nan],
            "ndvi_mean": [0.7, 0.7, 0.7],
        }
    )
    got = clear_looks(obs, min_clear_fraction=0.6)
    assert got["date"].dt.strftime("%Y-%m-%d").tolist() == ["2026-05-01", "2026-05-11"]


# --- detection on a constructed series -----------------------------------------------------


def _loss_series(cf_loss: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """12 farms of one region, ``other`` crop (no calendar), NDVI ~0.8 every 10 days; farm L0
    drops to 0.30 on 2026-06-19 and stays there. The loss looks carry ``cf_loss``."""
    rng = np.random.default_rng(3)
    dates = pd.date_range("2026-03-01", "2026-07-31", freq="10D")
    rows = []
    for i in range(12):
        fid = f"L{i}"
        for d in dates:
            v = 0.80 + rng.normal(0, 0.01)
            loss = fid == "L0" and d >= pd.Timestamp("2026-06-19")
            rows.append(
                {
                    "farm_id": fid,
                    "date": d.strftime("%Y-%m-%d"),
                    "item_id": f"S_{d:%Y%m%d}",
                    "status": "ok",
                    "clear_fraction": cf_loss if loss else 1.0,
                    "clear_pixels": 100.0,
                    "water_fraction": 0.0,
                    "ndvi_mean": 0.30 if loss else v,
                    "ndvi_std": 0.01,
                }
            )
    farms = pd.DataFrame(
        {
            "farm_id": [f"L{i}" for i in range(12)],
            "loan_id": "L",
            "borrower_id": "B",
            "crop": "other",
            "region": "R",
            "exposure": 1.0,
        }
    )
    return pd.DataFrame(rows), farms


def _confirmed_dates(obs: pd.DataFrame, farms: pd.DataFrame, **kw: object) -> list[str]:
    looks = detect(obs, farms, asof=ASOF, settings=DetectSettings(**kw))  # type: ignore[arg-type]
    hit = looks[(looks["farm_id"] == "L0") & looks["confirmed"].astype(bool)]
    return sorted(pd.to_datetime(hit["date"]).dt.strftime("%Y-%m-%d").unique())


def test_clear_one_look_loss_confirms_on_that_look() -> None:
    """The reference: a clear look showing the loss is enough on its own."""
    obs, farms = _loss_series(1.0)
    got = _confirmed_dates(obs, farms)
    assert got and got[0] == "2026-06-19"


def test_unknown_quality_loss_waits_for_the_second_look() -> None:
    obs, farms = _loss_series(np.nan)
    looks = detect(obs, farms, asof=ASOF)
    l0 = looks[looks["farm_id"] == "L0"]
    first = l0[pd.to_datetime(l0["date"]) == pd.Timestamp("2026-06-19")].iloc[0]
    assert first["hazard"] == "abrupt_loss" and first["state"] == "anomalous"
    assert not bool(first["confirmed"])  # NaN must not pass "clear_fraction < min"
    got = _confirmed_dates(obs, farms)
    assert got and got[0] == "2026-06-29"
    # one look of unknown quality may be treated as clear by choice
    assert _confirmed_dates(obs, farms, unknown_sky_looks=1)[0] == "2026-06-19"


def test_a_chip_of_unknown_sky_says_so() -> None:
    from agrisat.chips import ChipSet, chip_labels

    empty = np.zeros((2, 1, 1))
    chips = ChipSet(
        farm_id="F0",
        dates=DAYS[:2],
        item_ids=["a", "b"],
        rgb=np.zeros((2, 1, 1, 3)),
        ndvi=empty,
        clear=empty.astype(bool),
        crs="EPSG:32650",
        transform=None,
        outline=None,
        bounds=(0.0, 0.0, 1.0, 1.0),
        statuses=["ok", "ok"],
        clear_fractions=[1.0, float("nan")],
    )
    first, second = chip_labels(chips)
    assert first.endswith("clear 100%")
    assert second.endswith("clear ?") and "nan" not in second
