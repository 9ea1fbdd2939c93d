"""Borrower data is financial personal data: logs carry ids and counts, never polygons,
coordinates, names or signed tokens; hostile attributes are never followed; reruns add nothing."""

from __future__ import annotations

import http.server
import json
import logging
import re
import subprocess
import sys
import threading
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import box

from agrisat.monitor import alert_history
from agrisat.observations import read_observations
from agrisat.pipeline import run
from agrisat.store import Store
from agrisat.testing import SyntheticFarm, make_archive

X0, Y0 = 600000.0, 4040000.0
DATES = ["2026-05-01", "2026-05-06", "2026-05-11"]
NAMES = ["王秀英", "Zhang Wei"]
COORD = re.compile(r"\b1[12]\d\.\d{3,}|\b3[5-7]\.\d{3,}|\b[46]\d{5}\.\d+")


class _Counter(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def book_with_personal_data(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("privacy")
    farms = [
        SyntheticFarm(
            f"F{i}",
            box(X0 + 40 + 80 * i, Y0 - 140, X0 + 100 + 80 * i, Y0 - 40),
            {"red": 0.05, "nir": 0.4},
        )
        for i in range(2)
    ]
    arc = make_archive(root, farms, dates=DATES)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    book = gpd.read_file(arc.book)
    book["borrower_name"] = NAMES
    # a hostile attribute: a URL agrisat must never fetch, and an id shaped like a path
    book["photo"] = [f"http://127.0.0.1:{server.server_address[1]}/x.tif?token=SECRET"] * 2
    book.loc[1, "farm_id"] = "../../x"
    path = root / "book_named.gpkg"
    book.to_file(path)
    yield arc, path, server
    server.shutdown()


def test_logs_carry_no_names_coordinates_or_tokens(
    book_with_personal_data,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    arc, book, _ = book_with_personal_data
    with caplog.at_level(logging.DEBUG):
        result = run(book, str(arc.catalog), tmp_path / "w")
    assert result.items_ingested == len(DATES)
    text = caplog.text
    assert "agrisat" in text  # the run did log
    for name in NAMES:
        assert name not in text
    assert not COORD.search(text), COORD.search(text)
    assert "SECRET" not in text and "POLYGON" not in text.upper()


def test_hostile_attribute_is_never_fetched_and_ids_are_not_paths(
    book_with_personal_data,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    arc, book, _ = book_with_personal_data  # the fixture's server counts any fetch
    before = _Counter.hits
    w = tmp_path / "w"
    run(book, str(arc.catalog), w)
    assert _Counter.hits == before
    obs = read_observations(w)
    assert "../../x" in set(obs.farm_id)  # kept as data
    assert not (tmp_path / "x").exists() and not (w.parent.parent / "x").exists()


def test_three_reruns_of_one_night_add_nothing(book_with_personal_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    arc, book, _ = book_with_personal_data
    w = tmp_path / "w"
    from agrisat.config import Settings

    settings = Settings().replace("run", end=DATES[-1])
    first = run(book, str(arc.catalog), w, settings=settings)
    obs = read_observations(w).to_csv().encode()
    alerts = alert_history(Store(w)).to_csv().encode()
    manifest = json.loads((w / "store" / "manifest.json").read_text())["tables"]
    for _ in range(3):
        again = run(book, str(arc.catalog), w, settings=settings)
        assert again.items_new == 0 and again.observations_added == 0
    assert first.items_ingested == len(DATES)
    assert read_observations(w).to_csv().encode() == obs
    assert alert_history(Store(w)).to_csv().encode() == alerts
    tables = json.loads((w / "store" / "manifest.json").read_text())["tables"]
    for name in ("observations", "ledger", "farms", "alerts"):
        assert tables.get(name) == manifest.get(name), name  # same part files, byte for byte
    assert len(Store(w).read("runs")) == 4  # each run is recorded


def test_json_logs_are_one_object_per_line(book_with_personal_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    arc, book, _ = book_with_personal_data
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "agrisat",
            "run",
            "--book",
            str(book),
            "--catalog",
            str(arc.catalog),
            "--workdir",
            str(tmp_path / "w"),
            "--end",
            DATES[-1],
            "--log-format",
            "json",
            "-v",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("{")]
    assert len(lines) >= 2
    docs = [json.loads(ln) for ln in lines]
    assert all({"ts", "level", "logger", "message"} <= set(d) for d in docs)
    assert any(d["logger"].startswith("agrisat") for d in docs)
    assert not any(name in res.stderr for name in NAMES)
