"""The one-file HTML report: self-contained, the right elements, small enough, and it renders
in a real (headless) browser."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from agrisat.alerts import ALERT_COLUMNS
from agrisat.errors import ConfigError
from agrisat.report import build_report
from agrisat.store import Store
from agrisat.testing import SyntheticArchive

from .test_api import small_workdir

CHROMIUM = "/usr/bin/chromium"
DEMO = Path(__file__).resolve().parents[1] / "demo-out"


class _Doc(HTMLParser):
    """Counts what the tests look at."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.refs: list[tuple[str, str, str]] = []
        self.map_paths: list[str] = []
        self.alert_rows = 0
        self.cards = 0
        self.imgs = 0
        self._in: list[str] = []
        self._tbody = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for key in ("src", "href", "action", "data", "poster", "srcset", "xlink:href"):
            if key in a:
                self.refs.append((tag, key, a[key]))
        if tag == "g" and a.get("id") == "farms":
            self._in.append("farms")
        if tag == "path" and "farms" in self._in and a.get("data-farm"):
            self.map_paths.append(a["data-farm"])
        if tag == "table" and a.get("id") == "alert-table":
            self._in.append("alert-table")
        if tag == "tbody" and "alert-table" in self._in:
            self._tbody = True
        if tag == "tr" and self._tbody:
            self.alert_rows += 1
        if tag == "div" and "card" in a.get("class", "").split():
            self.cards += 1
        if tag == "img":
            self.imgs += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "g" and self._in and self._in[-1] == "farms":
            self._in.pop()
        if tag == "tbody":
            self._tbody = False
        if tag == "table" and self._in and self._in[-1] == "alert-table":
            self._in.pop()


def parse(path: Path) -> tuple[str, _Doc]:
    text = path.read_text(encoding="utf-8")
    doc = _Doc()
    doc.feed(text)
    return text, doc


def assert_self_contained(text: str, doc: _Doc) -> None:
    for tag, key, value in doc.refs:
        # only inline data and in-page anchors
        assert value.startswith(("data:", "#")), (tag, key, value[:80])
    assert doc.tags.get("link", 0) == 0 and doc.tags.get("iframe", 0) == 0
    for needle in ("http://", "https://", 'src="//', "url(", "@import"):
        assert needle not in text, needle


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticArchive, Path]:
    return small_workdir(tmp_path_factory.mktemp("report"))


def test_report_is_one_self_contained_file(
    built: tuple[SyntheticArchive, Path], tmp_path: Path
) -> None:
    arc, workdir = built
    out = build_report(workdir, tmp_path / "r.html", catalog=arc.catalog, top_n=1)
    assert out == tmp_path / "r.html" and sorted(os.listdir(tmp_path)) == ["r.html"]
    text, doc = parse(out)
    assert_self_contained(text, doc)
    assert sorted(doc.map_paths) == ["F1", "F2", "F3", "F4"]  # one path per farm
    assert doc.alert_rows == 3  # A1, A2, A3 of the latest run
    assert doc.cards == 3
    # top_n=1: one series PNG and one chips PNG (F1's open drought has a look before and after)
    assert doc.imgs == 2 and text.count("data:image/png;base64,") == 2
    assert text.count('<svg class="spark"') == 2
    # sorted by exposure: F1 (500) before F3 (100)
    assert text.index('data-farm="F1" data-hazard') < text.index('data-farm="F3" data-hazard')
    assert "<script>" in text and "<style>" in text


def test_report_without_scene_access_says_so(
    built: tuple[SyntheticArchive, Path], tmp_path: Path
) -> None:
    arc, workdir = built
    # the run recorded its catalog; hide it, as when the archive is gone or offline
    hidden = arc.catalog.with_name("catalog.hidden.json")
    arc.catalog.rename(hidden)
    try:
        out = build_report(workdir, tmp_path / "r.html", top_n=2)
    finally:
        hidden.rename(arc.catalog)
    text, doc = parse(out)
    assert "Image chips skipped" in text
    assert doc.imgs == 2  # two series charts, no chips


def test_report_in_chinese(built: tuple[SyntheticArchive, Path], tmp_path: Path) -> None:
    _, workdir = built
    out = build_report(workdir, tmp_path / "zh.html", lang="zh", top_n=0)
    text, doc = parse(out)
    assert '<html lang="zh-CN">' in text
    for zh in ("农作物风险报告", "数据时效", "预警敞口汇总", "严重", "干旱", "警示"):
        assert zh in text
    assert "Data freshness" not in text
    assert doc.alert_rows == 3
    with pytest.raises(ConfigError):
        build_report(workdir, tmp_path / "x.html", lang="fr")


def test_chinese_charts_keep_their_text_as_text(
    built: tuple[SyntheticArchive, Path], tmp_path: Path
) -> None:
    """zh charts are SVG with <text> labels (drawn by the reader's CJK font), not PNG boxes."""
    arc, workdir = built
    out = build_report(workdir, tmp_path / "zh.html", lang="zh", catalog=arc.catalog, top_n=1)
    text, doc = parse(out)
    assert doc.imgs == 2 and "data:image/png;base64," not in text
    uris = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', text)
    assert len(uris) == 2
    series, chips = (base64.b64decode(u).decode("utf-8") for u in uris)
    labels = "".join(re.findall(r"<text[^>]*>([^<]*)</text>", series))
    for zh in ("有效观测", "贷款", "风险敞口", "月"):
        assert zh in labels
    assert "clear look" not in series and "Noto Sans CJK SC" in series
    chip_labels = "".join(re.findall(r"<text[^>]*>([^<]*)</text>", chips))
    assert "之前" in chip_labels and "之后" in chip_labels


# -- a synthetic 10,000-farm book, tables only (no pixels) ------------------------------
def big_workdir(root: Path, n: int = 10_000, n_dates: int = 36, n_alerts: int = 1500) -> Path:
    """Store tables of a large book written directly: farms, observations, alerts, a run."""
    rng = np.random.default_rng(7)
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    lon = 119.0 + (i % side) * 0.004 + rng.uniform(0, 0.001, n)
    lat = 36.0 + (i // side) * 0.003 + rng.uniform(0, 0.001, n)
    w = rng.uniform(0.0004, 0.0012, n)
    polys = shapely.box(lon, lat, lon + w, lat + w * 0.7)
    fid = np.array([f"F{k:05d}" for k in i])
    farms = gpd.GeoDataFrame(
        {
            "farm_id": fid,
            "loan_id": [f"L{k // 2:05d}" for k in i],
            "borrower_id": [f"B{k // 3:05d}" for k in i],
            "crop": np.where(i % 4 == 0, "maize", "wheat_maize"),
            "exposure": rng.integers(10, 500, n) * 1000.0,
            "region": np.array(["Jiaozhou", "Pingdu", "Gaomi", "Zhucheng"])[i % 4],
        },
        geometry=polys,
        crs=4326,
    )
    dates = pd.date_range("2025-11-01", periods=n_dates, freq="10D").strftime("%Y-%m-%d")
    ff, dd = np.repeat(fid, n_dates), np.tile(dates, n)
    status = np.where(rng.random(n * n_dates) < 0.25, "cloudy", "ok")
    ndvi = np.where(status == "ok", rng.uniform(0.1, 0.85, n * n_dates), np.nan)
    obs = pd.DataFrame(
        {
            "farm_id": ff, "date": dd, "item_id": [f"S2_{d}" for d in dd], "status": status,
            "clear_fraction": np.where(status == "ok", 1.0, 0.0), "clear_pixels": 20.0,
            "water_fraction": 0.0, "ndvi_mean": ndvi, "ndvi_std": 0.02,
        }
    )  # fmt: skip
    end = dates[-1]
    pick = rng.choice(n, n_alerts, replace=False)
    hazards = np.array(["drought", "flood", "abrupt_loss", "no_planting", "stale_data"])
    alerts = pd.DataFrame({c: [None] * n_alerts for c in ALERT_COLUMNS})
    alerts = alerts.assign(
        alert_id=[f"A{k:06d}" for k in range(n_alerts)],
        farm_id=fid[pick],
        loan_id=farms["loan_id"].to_numpy()[pick],
        borrower_id=farms["borrower_id"].to_numpy()[pick],
        region=farms["region"].to_numpy()[pick],
        crop=farms["crop"].to_numpy()[pick],
        hazard=hazards[pick % 5],
        severity=np.array(["watch", "warning", "critical"])[pick % 3],
        status=np.array(["new", "ongoing", "resolved"])[(pick // 5) % 3],
        onset_date=pd.Timestamp(dates[-8]),
        last_observed=pd.Timestamp(end),
        exposure=farms["exposure"].to_numpy()[pick],
        evidence="NDVI 0.31 on 2026-08-01 vs 0.62 expected (-50%); below normal since 2026-07-12",
        index="ndvi",
        n_looks=3,
    )
    alerts.insert(0, "run_date", end)
    runs = pd.DataFrame(
        [{"run_id": "r1", "started": "x", "finished": "y", "end": end, "farms": n, "rejected": 0,
          "items_ingested": n_dates, "items_failed": 0}]
    )  # fmt: skip
    workdir = root / "big"
    with Store(workdir).transaction() as txn:
        txn.replace("farms", farms)
        txn.replace("observations", obs)
        txn.replace("alerts", alerts)
        txn.replace("runs", runs)
    return workdir


@pytest.fixture(scope="module")
def big_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    root = tmp_path_factory.mktemp("big")
    workdir = big_workdir(root)
    t0 = time.perf_counter()
    out = build_report(workdir, root / "big.html", top_n=20, chips=False)
    return out, time.perf_counter() - t0


def test_report_of_10000_farms_stays_small(big_report: tuple[Path, float]) -> None:
    out, seconds = big_report
    size_mb = out.stat().st_size / 1e6
    text, doc = parse(out)
    assert size_mb < 20, f"{size_mb:.1f} MB"
    assert len(doc.map_paths) == 10_000 and len(set(doc.map_paths)) == 10_000
    assert doc.alert_rows == 1500
    assert doc.imgs == 20  # full charts only for the top 20 by exposure
    assert_self_contained(text, doc)
    print(f"10,000-farm report: {size_mb:.2f} MB, built in {seconds:.1f} s")


def test_alert_table_is_cut_at_max_rows_and_says_how_many_more(
    big_report: tuple[Path, float],
) -> None:
    full, _ = big_report
    out = build_report(full.parent / "big", full.parent / "cut.html", top_n=0, chips=False,
                       max_rows=100)  # fmt: skip
    text, doc = parse(out)
    assert doc.alert_rows == 100
    assert "The first 100 alerts" in text and "1400 more are in the alert exports" in text
    # the rows kept are the table's first 100 in the full report (open first, by exposure)
    rows = re.compile(r'<tr data-farm="([^"]+)"')
    assert rows.findall(text) == rows.findall(full.read_text(encoding="utf-8"))[:100]
    with pytest.raises(ConfigError, match="max_rows"):
        build_report(full.parent / "big", full.parent / "x.html", max_rows=-1)


def test_map_centre_is_the_union_centroid_without_the_union() -> None:
    from agrisat.report.svg import _centre

    rng = np.random.default_rng(3)
    # disjoint boxes of different sizes on a grid, and one empty geometry
    boxes = [
        shapely.box(i, j, i + rng.uniform(0.1, 0.9), j + rng.uniform(0.1, 0.9))
        for i in range(7) for j in range(5)
    ]  # fmt: skip
    geoms = np.array([*boxes, shapely.Polygon()], dtype=object)
    want = shapely.union_all(geoms).centroid
    got = _centre(geoms)
    assert got == pytest.approx((want.x, want.y), abs=1e-9)
    assert got != pytest.approx((3.5, 2.5), abs=1e-3)  # not merely the middle of the grid


def test_large_book_map_draws_quiet_farms_as_one_image() -> None:
    import base64
    import io

    import matplotlib.image as mpimg

    from agrisat.report.svg import MAP_CLASSES, farm_map_svg
    from agrisat.testing_series import make_farms

    farms = make_farms(200)
    alerted = {"F0007": "critical", "F0100": "watch"}
    full = farm_map_svg(farms, alerted)  # below max_paths: a path per farm, no image
    assert full.count('<path class="f ') == 200 and "<image" not in full
    svg = farm_map_svg(farms, alerted, max_paths=50)
    paths = re.findall(r'<path class="f (\w+)" data-farm="([^"]+)"', svg)
    assert sorted(paths) == [("critical", "F0007"), ("watch", "F0100")]
    images = re.findall(r'<image class="quiet" x="0" y="0" width="(\d+)" height="(\d+)" '
                        r'href="data:image/png;base64,([^"]+)"', svg)  # fmt: skip
    assert len(images) == 1
    w, h, data = images[0]
    png = mpimg.imread(io.BytesIO(base64.b64decode(data)))
    assert png.shape[:2] == (2 * int(h), 2 * int(w))
    # each quiet farm's centre is a pixel of its colour; the alerted farms' are not drawn there
    grey = np.array([int(MAP_CLASSES["none"][k : k + 2], 16) for k in (1, 3, 5)]) / 255
    covered = {}
    for fid, d in re.findall(r'data-farm="([^"]+)" d="M([^z]+)z"', full):
        # the ring's vertices (start, then relative moves): their mean is inside the box
        nums = [float(v) for v in re.findall(r"-?\d+", d)]
        assert "l" in d  # a box several units wide, not the one-unit square of a tiny farm
        xy = np.cumsum(np.array(nums).reshape(-1, 2), axis=0)
        cx, cy = xy.mean(axis=0)
        covered[fid] = png[int(2 * cy), int(2 * cx), 3] > 0
    ids = list(covered)
    assert len(ids) == 200
    assert all(covered[f] for f in ids if f not in alerted)
    assert not any(covered[f] for f in alerted)
    opaque = png[..., 3] > 0
    assert np.allclose(png[opaque][:, :3], grey, atol=1 / 255)
    assert 0.001 < opaque.mean() < 0.5  # farms, not the whole frame


# -- real browser -----------------------------------------------------------------------
def chromium() -> str:
    """The headless browser; skip without one, except under CI where it must be present."""
    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path is None:
        reason = "no headless Chromium (/usr/bin/chromium, Debian package 'chromium')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " — and under CI it must be installed")
        pytest.skip(reason)
    return path


def browse(html: Path, *args: str, timeout: float = 60.0) -> tuple[str, float]:
    """Run headless Chromium offline on ``html``; returns (stdout, wall seconds)."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", *args, html.resolve().as_uri(),
        ]  # fmt: skip
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        seconds = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, seconds


def screenshot(html: Path, png: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    browse(html, f"--screenshot={png}", "--window-size=1400,2000")
    assert png.exists() and png.stat().st_size > 0
    return np.asarray(mpimg.imread(png))


def test_browser_renders_the_report(built: tuple[SyntheticArchive, Path], tmp_path: Path) -> None:
    chromium()
    arc, workdir = built
    out = build_report(workdir, tmp_path / "r.html", catalog=arc.catalog, top_n=3)
    img = screenshot(out, tmp_path / "report.png")  # kept under pytest's tmp dir
    assert img.shape[:2] == (2000, 1400)
    assert float(img[..., :3].std()) > 0.05, "blank screenshot"
    dom, seconds = browse(out, "--dump-dom")
    doc = _Doc()
    doc.feed(dom)
    assert sorted(doc.map_paths) == ["F1", "F2", "F3", "F4"]
    assert doc.alert_rows == 3
    assert 'data-load-ms="' in dom  # the page's script ran to the end
    assert seconds < 30


def test_browser_loads_10000_farms_fast(big_report: tuple[Path, float], tmp_path: Path) -> None:
    chromium()
    out, _ = big_report
    dom, seconds = browse(out, "--dump-dom")
    doc = _Doc()
    doc.feed(dom)
    assert len(doc.map_paths) == 10_000 and doc.alert_rows == 1500
    load_ms = int(dom.split('data-load-ms="', 1)[1].split('"', 1)[0])
    print(f"10,000-farm report: ready after {load_ms} ms in the page, dump-dom {seconds:.2f} s")
    assert load_ms < 3000
    img = screenshot(out, tmp_path / "big.png")
    assert float(img[..., :3].std()) > 0.05


def test_demo_report_screenshot(tmp_path: Path) -> None:
    """The demo's report in a browser; its screenshot goes to /tmp/agrisat-report.png."""
    if not (DEMO / "store" / "manifest.json").exists():
        pytest.skip(f"{DEMO} holds no demo run (make demo builds it)")
    chromium()
    out = build_report(DEMO, tmp_path / "demo.html", top_n=3, chips=False)
    img = screenshot(out, tmp_path / "demo.png")
    assert float(img[..., :3].std()) > 0.05
    shutil.copyfile(tmp_path / "demo.png", Path(tempfile.gettempdir()) / "agrisat-report.png")
