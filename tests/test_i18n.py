"""Chinese labels, evidence sentences and exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from agrisat.alerts import ALERT_COLUMNS, SEVERITIES, SEVERITY_RULES, update_alerts
from agrisat.errors import ConfigError
from agrisat.export import export_alerts
from agrisat.i18n import (
    COLUMN_LABELS,
    HAZARDS,
    LANGS,
    PEER_STATES,
    STATUSES,
    header,
    render_evidence,
    t,
)
from agrisat.i18n import SEVERITIES as SEVERITY_LABELS
from agrisat.testing import shown_fill
from agrisat.testing_series import make_farms

FARMS = make_farms(4)
HAZARD_CODES = ("drought", "flood", "abrupt_loss", "no_planting", "stale_data")


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def _alerts() -> pd.DataFrame:
    def look(farm: str, hz: str, score: float, value: float, expected: float) -> dict:
        return {
            "farm_id": farm,
            "date": pd.Timestamp("2026-04-06"),
            "hazard": hz,
            "state": "stale" if hz == "stale_data" else "anomalous",
            "score": score,
            "value": value,
            "expected": expected,
            "index": "ndvi",
            "own_z": -5.0,
            "peer_median": 0.8,
            "peer_n": 10,
            "peer_state": "idiosyncratic",
            "stage": "peak",
            "onset": pd.Timestamp("2026-03-28"),
            "run_looks": 2,
            "run_hazard": hz,
            "confirmed": True,
        }

    rows = [
        look("F0000", "drought", 0.37, 0.41, 0.66),
        look("F0001", "flood", 0.45, 0.22, 0.03),
        look("F0002", "abrupt_loss", 0.52, 0.33, 0.71),
        look("F0003", "stale_data", 47.0, float("nan"), float("nan")),
    ]
    return update_alerts(None, pd.DataFrame(rows), FARMS, run_date="2026-04-08")


def test_every_code_has_both_languages() -> None:
    hazards = {r.hazard for r in SEVERITY_RULES} | set(HAZARD_CODES)
    for code in hazards:
        assert code in HAZARDS
    for table, codes in (
        (HAZARDS, hazards),
        (SEVERITY_LABELS, SEVERITIES),
        (STATUSES, ("new", "ongoing", "resolved")),
        (PEER_STATES, ("idiosyncratic", "systemic", "regional", "unknown")),
        (COLUMN_LABELS, ALERT_COLUMNS),
    ):
        for code in codes:
            assert set(table[code]) == set(LANGS), code
            assert table[code]["en"] and _has_cjk(table[code]["zh"]), code
    # Labels must tell the levels apart in both languages.
    for lang in LANGS:
        assert len({t(f"severity.{s}", lang) for s in SEVERITIES}) == 3
        assert len({t(f"hazard.{h}", lang) for h in hazards}) == len(hazards)
        assert len({header(c, lang) for c in ALERT_COLUMNS}) == len(ALERT_COLUMNS)


def test_terms_and_fallbacks() -> None:
    assert t("hazard.drought", "zh") == "干旱"
    assert t("column.exposure", "zh") == "风险敞口"
    assert header("loan_id", "zh") == "贷款编号" and header("borrower_id", "zh") == "借款人编号"
    assert header("loan_id", "en") == "loan_id"  # English exports keep the contract's names
    # 关注 is a grade of the five-category loan classification: not used for a severity.
    assert "关注" not in {t(f"severity.{s}", "zh") for s in SEVERITIES}
    assert t("hazard.frost", "zh") == "frost"  # a future hazard stays readable
    assert header("exposure_drought", "zh") == "干旱预警敞口"
    assert header("exposure_critical", "zh") == "严重级敞口"
    with pytest.raises(ConfigError, match="--lang 'fr'"):
        t("hazard.drought", "fr")


def _row(**kw: object) -> dict:
    base = {
        "hazard": "drought",
        "index": "ndmi",
        "value": 0.1234,
        "expected": 0.3456,
        "score": 0.64,
        "onset_date": pd.Timestamp("2026-05-02"),
        "n_looks": 3,
        "peer_state": "idiosyncratic",
        "severity": "critical",
        "status": "ongoing",
        "resolved_date": pd.NaT,
    }
    return base | kw


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("hazard", ["drought", "abrupt_loss", "no_planting", "frost"])
def test_evidence_contains_the_row_numbers(lang: str, hazard: str) -> None:
    text = render_evidence(_row(hazard=hazard), lang)
    for piece in ("NDMI", "0.12", "0.35", "2026-05-02", "3"):
        assert piece in text, (piece, text)
    if hazard in ("drought", "abrupt_loss"):
        assert "64%" in text
    assert text.endswith("." if lang == "en" else "。")
    assert _has_cjk(text) == (lang == "zh")


def test_evidence_flood_stale_resolved_and_missing_numbers() -> None:
    flood = _row(hazard="flood", score=0.45, expected=0.03, value=0.2)
    for lang in LANGS:
        text = render_evidence(flood, lang)
        assert "45%" in text and "3%" in text and "0.20" in text
    stale = _row(hazard="stale_data", score=47.0, value=None, expected=float("nan"))
    stale["peer_state"] = "regional"
    assert "47 天" in render_evidence(stale, "zh") and "云" in render_evidence(stale, "zh")
    assert "47 days" in render_evidence(stale, "en")
    done = _row(status="resolved", resolved_date="2026-06-01")
    assert "2026-06-01" in render_evidence(done, "zh") and "解除" in render_evidence(done, "zh")
    assert "–" in render_evidence(_row(value=None), "en")


def test_zh_csv_has_bom_chinese_headers_and_reads_back(tmp_path: Path) -> None:
    alerts = _alerts()
    assert len(alerts) == 4
    path = export_alerts(alerts, FARMS, tmp_path / "alerts.csv", lang="zh")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel on Chinese Windows needs the BOM for UTF-8
    back = pd.read_csv(path, encoding="utf-8-sig", dtype=str)
    assert list(back.columns) == [header(c, "zh") for c in ALERT_COLUMNS]
    assert back.columns[0] == "预警编号"  # no BOM glued to the first header
    assert list(back["预警编号"]) == list(alerts["alert_id"])
    assert set(back["风险类型"]) == {"干旱", "洪涝", "突发灾损", "观测中断"}
    drought = back[back["地块编号"] == "F0000"].iloc[0]
    assert "0.41" in drought["预警依据"] and "0.66" in drought["预警依据"]
    assert drought["预警依据"].endswith("。")
    # English stays as before: canonical names, codes, detector evidence, no BOM.
    en = export_alerts(alerts, FARMS, tmp_path / "alerts_en.csv")
    assert not en.read_bytes().startswith(b"\xef\xbb\xbf")
    en_back = pd.read_csv(en, dtype=str)
    assert list(en_back.columns) == list(ALERT_COLUMNS)
    assert list(en_back["evidence"]) == list(alerts["evidence"])


def test_zh_xlsx_headers_sheets_and_fills(tmp_path: Path) -> None:
    alerts = _alerts()
    path = export_alerts(alerts, FARMS, tmp_path / "alerts.xlsx", lang="zh")
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["风险预警", "敞口汇总"]
    ws = wb["风险预警"]
    heads = [c.value for c in ws[1]]
    assert heads == [header(c, "zh") for c in ALERT_COLUMNS]
    sev_col = heads.index("预警级别")
    labels = {t(f"severity.{s}", "zh") for s in SEVERITIES}
    for r, sev in enumerate(alerts["severity"], start=2):
        cell = ws.cell(row=r, column=sev_col + 1)
        assert cell.value == t(f"severity.{sev}", "zh") and cell.value in labels
        assert (
            shown_fill(ws, r) == {"watch": "FFF2CC", "warning": "F8CBAD", "critical": "FF7C80"}[sev]
        )
    roll_heads = [c.value for c in wb["敞口汇总"][1]]
    assert "汇总层级" in roll_heads and "预警敞口" in roll_heads
    assert {c.value for c in wb["敞口汇总"]["A"][1:]} == {"贷款", "借款人", "区域"}


def test_zh_parquet_keeps_schema_and_geojson_is_translated(tmp_path: Path) -> None:
    alerts = _alerts()
    pq = pd.read_parquet(export_alerts(alerts, FARMS, tmp_path / "a.parquet", lang="zh"))
    assert list(pq.columns) == [*ALERT_COLUMNS, "evidence_zh"]
    assert list(pq["hazard"]) == list(alerts["hazard"])
    assert all(_has_cjk(e) for e in pq["evidence_zh"])
    gj = export_alerts(alerts, FARMS, tmp_path / "a.geojson", lang="zh")
    data = json.loads(gj.read_text(encoding="utf-8"))
    props = data["features"][0]["properties"]
    assert "地块编号" in props and "预警依据" in props and "farm_id" not in props
    assert data["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")


def test_unknown_lang_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="en or zh"):
        export_alerts(_alerts(), FARMS, tmp_path / "a.csv", lang="de")
    assert not (tmp_path / "a.csv").exists()


def test_zh_evidence_names_the_peers_and_the_usual_gap_as_the_english_does() -> None:
    a = _alerts()
    drought = a[a["hazard"] == "drought"].iloc[0].to_dict()
    assert drought["peer_median"] == 0.8 and drought["peer_n"] == 10
    zh = render_evidence(drought, "zh")
    assert "10 个地块中位数 0.80" in zh and "常年" not in zh
    en = render_evidence(drought, "en")
    assert "peers at 0.80 (n=10)" in en and "usually" not in en
    above = dict(drought, usual_gap=0.06)
    assert "该地块常年高于同区域 0.06" in render_evidence(above, "zh")
    assert "the farm usually 0.06 above them" in render_evidence(above, "en")
    below = dict(drought, usual_gap=-0.04)
    assert "该地块常年低于同区域 0.04" in render_evidence(below, "zh")
    # abrupt loss names the peers' level; a flood does not
    loss = a[a["hazard"] == "abrupt_loss"].iloc[0].to_dict()
    assert "中位数 0.80" in render_evidence(loss, "zh")
    flood = a[a["hazard"] == "flood"].iloc[0].to_dict()
    assert "中位数" not in render_evidence(flood, "zh") and np.isnan(flood["peer_median"])
    # an alert stored before these columns existed renders without them
    legacy = {k: v for k, v in drought.items() if k not in ("peer_median", "peer_n", "usual_gap")}
    assert "中位数" not in render_evidence(legacy, "zh")
