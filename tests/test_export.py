from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd
import pytest

from agrisat.alerts import update_alerts
from agrisat.errors import ConfigError
from agrisat.export import export_alerts
from agrisat.testing import shown_fill
from agrisat.testing_series import make_farms

CONTRACT = [
    "alert_id",
    "farm_id",
    "loan_id",
    "borrower_id",
    "hazard",
    "severity",
    "status",
    "onset_date",
    "last_observed",
    "exposure",
    "evidence",
]
FARMS = make_farms(3)


def _alerts() -> pd.DataFrame:
    def look(farm, date, hz, n, score):
        return {
            "farm_id": farm,
            "date": pd.Timestamp(date),
            "hazard": hz,
            "state": "anomalous",
            "score": score,
            "value": 0.4,
            "expected": 0.8,
            "index": "ndvi",
            "own_z": -5.0,
            "peer_median": 0.8,
            "peer_n": 10,
            "peer_state": "idiosyncratic",
            "stage": "peak",
            "onset": pd.Timestamp("2026-04-06"),
            "run_looks": n,
            "run_hazard": hz,
            "confirmed": True,
        }

    rows = [
        look("F0000", "2026-04-06", "drought", 1, 0.5),
        look("F0001", "2026-04-06", "flood", 1, 0.3),
    ]
    return update_alerts(None, pd.DataFrame(rows), FARMS, run_date="2026-04-08")


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".geojson", ".xlsx"])
def test_export_round_trip(tmp_path, suffix: str) -> None:
    alerts = _alerts()
    path = export_alerts(alerts, FARMS, tmp_path / f"alerts{suffix}")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    if suffix == ".csv":
        back = pd.read_csv(path)
    elif suffix == ".parquet":
        back = pd.read_parquet(path)
    elif suffix == ".geojson":
        back = gpd.read_file(path)
        assert back.geometry.notna().all() and back.crs.to_epsg() == 4326
    else:
        back = pd.read_excel(path, sheet_name="alerts")
    assert set(CONTRACT) <= set(back.columns)
    assert len(back) == 2 and set(back["hazard"]) == {"drought", "flood"}
    if suffix != ".parquet":
        assert set(back["onset_date"].astype(str)) == {"2026-04-06"}  # YYYY-MM-DD


def test_xlsx_layout(tmp_path) -> None:
    path = export_alerts(_alerts(), FARMS, tmp_path / "a.xlsx")
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["alerts", "rollup"]
    ws = wb["alerts"]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref and ws.auto_filter.ref.startswith("A1:")
    header = [c.value for c in ws[1]]
    sev_col = header.index("severity")
    fills = {ws.cell(row=r, column=sev_col + 1).value: shown_fill(ws, r) for r in (2, 3)}
    assert fills == {"critical": "FF7C80", "warning": "F8CBAD"}
    assert shown_fill(ws, 1) is None  # the header keeps its own look
    assert wb["rollup"].freeze_panes == "A2"
    assert shown_fill(wb["rollup"], 2) is None
    roll = pd.read_excel(path, sheet_name="rollup")
    assert {"level", "key", "exposure_at_risk"} <= set(roll.columns)


def test_xlsx_colours_follow_the_severity_of_every_row(tmp_path) -> None:
    # more rows than the two of _alerts, of every severity, in no particular order
    base = _alerts()
    rows = pd.concat([base] * 6, ignore_index=True)
    rows["alert_id"] = [f"A{i:03d}" for i in range(len(rows))]
    rows["severity"] = ["watch", "critical", "warning", "critical", "watch", "warning"] * 2
    path = export_alerts(rows, FARMS, tmp_path / "a.xlsx")
    ws = openpyxl.load_workbook(path)["alerts"]
    colours = {"watch": "FFF2CC", "warning": "F8CBAD", "critical": "FF7C80"}
    assert [shown_fill(ws, r) for r in range(2, len(rows) + 2)] == [
        colours[s] for s in rows["severity"]
    ]
    assert shown_fill(ws, len(rows) + 2) is None  # below the table


def test_xlsx_beyond_excel_rows_is_a_config_error(tmp_path, monkeypatch) -> None:
    import agrisat.export as export

    monkeypatch.setattr(export, "XLSX_MAX_ROWS", 2)  # a header and one row
    with pytest.raises(ConfigError, match=r"alerts sheet would have 2 rows.*csv or parquet"):
        export_alerts(_alerts(), FARMS, tmp_path / "a.xlsx")
    assert not (tmp_path / "a.xlsx").exists()


def test_unknown_format_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="format"):
        export_alerts(_alerts(), FARMS, tmp_path / "alerts.txt")


def test_a_format_that_contradicts_the_file_name_is_a_config_error(tmp_path) -> None:
    # a CSV written under an .xlsx name would not open in Excel: say so, write nothing
    with pytest.raises(ConfigError, match="xlsx file but the format asked is csv"):
        export_alerts(_alerts(), FARMS, tmp_path / "alerts.xlsx", fmt="csv")
    assert not (tmp_path / "alerts.xlsx").exists()
    out = export_alerts(_alerts(), FARMS, tmp_path / "alerts.data", fmt="csv")  # no claim
    assert out.read_text().startswith("alert_id")


@pytest.mark.parametrize("ext", ["csv", "parquet", "geojson", "xlsx"])
def test_a_night_without_open_alerts_exports_an_empty_table(tmp_path: Path, ext: str) -> None:
    """Most nights nothing is open: every format must still write a readable, empty table."""
    from agrisat.alerts import ALERT_COLUMNS
    from agrisat.testing_series import make_farms

    farms = make_farms(3)
    empty = pd.DataFrame(columns=list(ALERT_COLUMNS))
    path = export_alerts(empty, farms, tmp_path / f"alerts.{ext}")
    assert path.exists() and path.stat().st_size > 0
    if ext == "csv":
        back = pd.read_csv(path)
        assert len(back) == 0 and "alert_id" in back.columns
    elif ext == "xlsx":
        from openpyxl import load_workbook

        ws = load_workbook(path)["alerts"]
        assert ws.max_row == 1 and ws.cell(1, 1).value == "alert_id"
