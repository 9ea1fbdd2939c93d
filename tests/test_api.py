"""The notebook API (``agrisat.workspace``), the farm chart and the image chips."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.windows import from_bounds
from shapely.geometry import box

from agrisat.alerts import ALERT_COLUMNS
from agrisat.errors import ConfigError, StoreError
from agrisat.pipeline import run
from agrisat.plots import history_band
from agrisat.store import Store
from agrisat.testing import SyntheticArchive, SyntheticFarm, make_archive
from agrisat.workspace import Workspace, observations_dataset, open_workspace

X0, Y0 = 600000.0, 4040000.0
DATES = ["2026-04-01", "2026-04-06", "2026-04-11", "2026-04-16", "2026-04-21", "2026-04-26"]
CLOUDY = "2026-04-11"
GREEN = {"blue": 0.04, "green": 0.08, "red": 0.05, "nir": 0.45, "swir16": 0.20}
SPARSE = {"blue": 0.07, "green": 0.09, "red": 0.12, "nir": 0.30, "swir16": 0.25}


def _farms() -> list[SyntheticFarm]:
    """Four wheat-maize farms of region R1 on pixel edges (F1 sparse, its three peers green)."""
    out = [SyntheticFarm("F1", box(X0 + 40, Y0 - 140, X0 + 140, Y0 - 40), SPARSE, exposure=500.0)]
    for i, name in enumerate(("F2", "F3", "F4")):
        x = X0 + 180 + 60 * i
        out.append(SyntheticFarm(name, box(x, Y0 - 300, x + 40, Y0 - 200), GREEN, exposure=100.0))
    return out


def crafted_alerts(run_date: str) -> pd.DataFrame:
    """Two alerts on F1 (one open, one resolved) and one open on F3, as a store table."""
    rows = []
    for aid, farm, hazard, sev, status, onset, exposure in (
        ("A1", "F1", "drought", "critical", "ongoing", "2026-04-06", 500.0),
        ("A2", "F1", "flood", "watch", "resolved", "2026-04-16", 500.0),
        ("A3", "F3", "abrupt_loss", "warning", "new", "2026-04-21", 100.0),
    ):
        row = {c: None for c in ALERT_COLUMNS}
        row.update(
            alert_id=aid, farm_id=farm, loan_id=f"L-{farm}", borrower_id=f"B-{farm}",
            region="R1", crop="wheat_maize", hazard=hazard, severity=sev, status=status,
            onset_date=pd.Timestamp(onset), last_observed=pd.Timestamp(run_date),
            exposure=exposure, evidence=f"{hazard} on {farm}", index="ndvi", n_looks=2,
        )  # fmt: skip
        rows.append(row)
    table = pd.DataFrame(rows)
    table.insert(0, "run_date", run_date)
    return table


def small_workdir(root: Path) -> tuple[SyntheticArchive, Path]:
    """Archive + one pipeline run + the crafted alerts; returns (archive, workdir)."""
    scl = {CLOUDY: 9}  # a cloudy day: no clear look anywhere
    arc = make_archive(root / "arc", _farms(), dates=DATES, scl=scl)
    workdir = root / "w"
    run(arc.book, str(arc.catalog), workdir, detect=False)
    with Store(workdir).transaction() as txn:
        txn.replace("alerts", crafted_alerts(DATES[-1]))
    return arc, workdir


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticArchive, Path]:
    return small_workdir(tmp_path_factory.mktemp("api"))


def test_observations_dataset_equals_the_table(built: tuple[SyntheticArchive, Path]) -> None:
    _, workdir = built
    ws = open_workspace(workdir)
    table = Store(workdir).read("observations")
    ds = ws.observations()
    assert ds["ndvi_mean"].dims == ("farm", "time")
    assert ds.sizes == {"farm": 4, "time": len(DATES)}
    assert list(ds["farm"].values) == ["F1", "F2", "F3", "F4"]
    for r in table.itertuples(index=False):
        cell = ds.sel(farm=r.farm_id, time=pd.Timestamp(r.date))
        assert cell["status"].item() == r.status
        assert cell["item_id"].item() == r.item_id
        np.testing.assert_equal(cell["ndvi_mean"].item(), r.ndvi_mean)
        np.testing.assert_equal(cell["clear_fraction"].item(), r.clear_fraction)
    # the pixels' truth, independent of the code: F1 is sparse, its peers green
    f1 = ds["ndvi_mean"].sel(farm="F1").where(ds["status"].sel(farm="F1") == "ok").dropna("time")
    np.testing.assert_allclose(f1, (0.30 - 0.12) / (0.30 + 0.12), atol=2e-3)
    assert ds["crop"].sel(farm="F2").item() == "wheat_maize"
    assert ds["exposure"].sel(farm="F1").item() == 500.0
    sub = ws.observations(farms=["F2"], start="2026-04-06", end="2026-04-16")
    assert sub.sizes == {"farm": 1, "time": 3}


def test_tables(built: tuple[SyntheticArchive, Path]) -> None:
    _, workdir = built
    ws = open_workspace(workdir)
    assert len(ws.farms) == 4 and ws.farms.crs.to_epsg() == 4326
    assert sorted(ws.alerts()["alert_id"]) == ["A1", "A3"]
    assert sorted(ws.alerts("all")["alert_id"]) == ["A1", "A2", "A3"]
    assert len(ws.alert_history()) == 3
    assert len(ws.runs()) == 1
    roll = ws.rollup()
    loans = roll[roll["level"] == "loan"]
    # open alerts on F1 (500) and F3 (100): the riskiest loan comes first
    assert loans.iloc[0]["key"] == "L-F1" and loans.iloc[0]["exposure_at_risk"] == 500.0
    region = roll[roll["level"] == "region"].iloc[0]
    assert region["exposure_at_risk"] == 600.0 and region["exposure"] == 800.0
    with pytest.raises(ConfigError):
        ws.alerts("closed")


def test_plot_farm_artists(built: tuple[SyntheticArchive, Path]) -> None:
    _, workdir = built
    ws = open_workspace(workdir)
    fig = ws.plot_farm("F1", start="2026-03-25", end="2026-05-01")
    ax = fig.axes[0]
    by_gid: dict[str, list[object]] = {}
    for artist in ax.get_children():
        gid = artist.get_gid()
        if gid:
            by_gid.setdefault(gid.split(":")[0] if gid.startswith("alert:") else gid, []).append(
                artist
            )
    assert len(by_gid["alert"]) == 2  # A1 and A2, F1's alerts; A3 is F3's
    (looks,) = by_gid["looks"]
    assert len(looks.get_xdata()) == len(DATES) - 1  # every date but the cloudy one
    (gaps,) = by_gid["gaps:cloudy"]
    assert len(gaps.get_xdata()) == 1
    assert "band:peers" in by_gid  # three green peers of the same crop and region
    peer_top = max(p.get_paths()[0].vertices[:, 1].max() for p in by_gid["band:peers"])
    assert peer_top == pytest.approx((0.45 - 0.05) / 0.5, abs=5e-3)
    labels = [t.get_text() for t in ax.texts]
    assert "drought · critical" in labels and "flood · watch (resolved)" in labels
    with pytest.raises(ConfigError):
        ws.plot_farm("NOPE")


def test_history_band_by_hand() -> None:
    dates = pd.to_datetime(["2024-04-01", "2024-04-10", "2025-04-05", "2025-09-01", "2026-03-01"])
    values = np.array([0.6, 0.8, 0.7, 0.1, 0.9])
    grid = pd.DatetimeIndex(["2026-04-05"])
    band = history_band(dates, values, grid, window_days=15, min_gap_days=300)
    # the three April looks of 2024/2025 count; Sept is out of the window, March 2026 too recent
    assert band["n"].iloc[0] == 3
    assert band["median"].iloc[0] == pytest.approx(0.7)
    assert band["hi"].iloc[0] == pytest.approx(0.7 + 1.4826 * 0.1)


def test_chips_match_the_cog_pixels(built: tuple[SyntheticArchive, Path]) -> None:
    arc, workdir = built
    ws = open_workspace(workdir, catalog=arc.catalog)
    chips = ws.chips("F1", ["2026-04-06", "2026-04-20"])
    assert chips.dates == ["2026-04-06", "2026-04-21"]  # the nearest observed day
    assert chips.item_ids == ["S2B_50SQF_20260406_0_L2A", "S2B_50SQF_20260421_0_L2A"]
    assert chips.figure is not None and len(chips.figure.axes) >= 4
    # the same window read straight from the COG, DN -> reflectance by the declared scale/offset
    red_tif = next((arc.catalog.parent).rglob("S2B_50SQF_20260406_0_L2A/red.tif"))
    with rasterio.open(red_tif) as src:
        win = from_bounds(*chips.bounds, transform=src.transform)
        dn = src.read(1, window=win, boundless=True, fill_value=0).astype(float)
    expected = np.where(dn > 0, dn * 1e-4 - 0.1, np.nan)
    assert chips.rgb.shape[1:3] == dn.shape
    np.testing.assert_allclose(chips.rgb[0, :, :, 0], expected, atol=1e-6)
    # and against the truth the archive was written with: F1's pixels are sparse vegetation
    t = chips.transform
    col, row = ~t * (X0 + 95, Y0 - 95)
    px = chips.rgb[0, int(row), int(col)]
    np.testing.assert_allclose(px, [SPARSE["red"], SPARSE["green"], SPARSE["blue"]], atol=2e-4)
    assert chips.ndvi[0, int(row), int(col)] == pytest.approx(0.18 / 0.42, abs=2e-3)
    assert chips.clear[:, int(row), int(col)].all()
    # the chip reaches past the archive's edge: no data there, so not clear either
    assert not chips.clear[0][np.isnan(expected)].any()


def test_chips_need_a_catalog(tmp_path: Path, built: tuple[SyntheticArchive, Path]) -> None:
    _, workdir = built
    # a workdir whose run records do not say which catalog they read (older runs, or a store
    # handed over without it), and no archive/ beside the store
    import shutil

    from agrisat.store import Store

    bare = tmp_path / "bare"
    shutil.copytree(workdir, bare)
    store = Store(bare)
    with store.transaction() as txn:
        txn.replace("runs", store.read("runs").assign(catalog=""))
    ws = Workspace(bare)
    assert ws.catalog is None
    with pytest.raises(ConfigError, match="catalog"):
        ws.chips("F1", ["2026-04-06"])
    with pytest.raises(StoreError):
        open_workspace(tmp_path / "empty")


def test_observations_dataset_without_book() -> None:
    table = pd.DataFrame(
        {
            "farm_id": ["B", "A", "A"],
            "date": ["2026-01-02", "2026-01-01", "2026-01-02"],
            "status": ["ok", "cloudy", "ok"],
            "ndvi_mean": [0.5, np.nan, 0.7],
        }
    )
    ds = observations_dataset(table)
    assert list(ds["farm"].values) == ["A", "B"]
    assert ds["ndvi_mean"].sel(farm="B", time=dt.datetime(2026, 1, 1)).isnull()
    assert ds["status"].sel(farm="B", time=dt.datetime(2026, 1, 1)).item() == ""
    assert ds["ndvi_mean"].sel(farm="A", time=dt.datetime(2026, 1, 2)).item() == 0.7
