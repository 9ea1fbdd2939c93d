"""English and Chinese labels for alerts: one string table, headers, evidence sentences.

English is the default and the canonical form: machine-readable exports keep the snake_case
column names and codes (``drought``, ``warning``) of the design document. ``lang="zh"`` is a
presentation language for a Chinese bank's risk team (CSV/XLSX/GeoJSON headers, values and
evidence; the HTML report's labels may use :func:`t` too).

Term choices (zh), made for a risk officer of a Chinese bank rather than an agronomist:

- 预警 is the generic word for an alert (风险预警, 预警编号), as in banks' 风险预警系统.
- Severities are 提示 / 警示 / 严重, not 关注 / 预警 / 严重: 关注 is a grade of the regulatory
  five-category loan classification (正常、关注、次级、可疑、损失), and a "关注" label on a crop
  alert would read as a loan downgrade; 预警 is already the word for the alert itself.
- 风险敞口 for exposure (the amount at risk, the usual term in credit-risk reports; 贷款余额
  would be the whole balance); 借款人 / 贷款编号 / 地块编号 for the keys (地块 = parcel).
- Hazards use the terms of Chinese agricultural-disaster statistics and crop insurance:
  干旱, 洪涝 (flood and waterlogging together), 突发灾损 (hail, lodging, fire: sudden loss),
  未种植 (never planted; includes 撂荒, abandoned land), 观测中断 (no clear image for too long:
  a data problem, not a crop problem, hence not phrased as a disaster).
- 有效观测 for a clear look (a cloud-free observation), 同区域 for peers (same county/branch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from .errors import ConfigError

__all__ = [
    "COLUMN_LABELS",
    "CROPS",
    "HAZARDS",
    "LANGS",
    "PEER_STATES",
    "SEVERITIES",
    "STATUSES",
    "check_lang",
    "header",
    "localise_alerts",
    "localise_rollup",
    "render_evidence",
    "t",
]

LANGS: tuple[str, ...] = ("en", "zh")

HAZARDS: dict[str, dict[str, str]] = {
    "drought": {"en": "Drought", "zh": "干旱"},
    "flood": {"en": "Flood / waterlogging", "zh": "洪涝"},
    "abrupt_loss": {"en": "Abrupt loss", "zh": "突发灾损"},
    "no_planting": {"en": "No planting", "zh": "未种植"},
    "stale_data": {"en": "No recent clear image", "zh": "观测中断"},
}
SEVERITIES: dict[str, dict[str, str]] = {
    "watch": {"en": "Watch", "zh": "提示"},
    "warning": {"en": "Warning", "zh": "警示"},
    "critical": {"en": "Critical", "zh": "严重"},
}
STATUSES: dict[str, dict[str, str]] = {
    "new": {"en": "New", "zh": "新增"},
    "ongoing": {"en": "Ongoing", "zh": "持续"},
    "resolved": {"en": "Resolved", "zh": "已解除"},
}
#: ``peer_state`` values (drought: systemic/idiosyncratic/unknown; stale data: regional too).
PEER_STATES: dict[str, dict[str, str]] = {
    "idiosyncratic": {"en": "this farm only", "zh": "个体异常"},
    "systemic": {"en": "region-wide", "zh": "区域普遍"},
    "regional": {"en": "whole region", "zh": "区域性"},
    "unknown": {"en": "no peer comparison", "zh": "无同区域对比"},
}
CROPS: dict[str, dict[str, str]] = {
    "winter_wheat": {"en": "Winter wheat", "zh": "冬小麦"},
    "maize": {"en": "Maize", "zh": "玉米"},
    "wheat_maize": {"en": "Wheat-maize rotation", "zh": "小麦-玉米轮作"},
    "rice": {"en": "Rice", "zh": "水稻"},
    "cotton": {"en": "Cotton", "zh": "棉花"},
    "other": {"en": "Other", "zh": "其他"},
}
#: Display labels of alert and rollup columns (export headers in zh; en headers stay canonical).
COLUMN_LABELS: dict[str, dict[str, str]] = {
    "alert_id": {"en": "Alert", "zh": "预警编号"},
    "farm_id": {"en": "Farm", "zh": "地块编号"},
    "loan_id": {"en": "Loan", "zh": "贷款编号"},
    "borrower_id": {"en": "Borrower", "zh": "借款人编号"},
    "region": {"en": "Region", "zh": "区域"},
    "crop": {"en": "Crop", "zh": "作物"},
    "hazard": {"en": "Hazard", "zh": "风险类型"},
    "severity": {"en": "Severity", "zh": "预警级别"},
    "status": {"en": "Status", "zh": "预警状态"},
    "onset_date": {"en": "Onset", "zh": "起始日期"},
    "last_observed": {"en": "Last clear look", "zh": "最近有效观测日期"},
    "exposure": {"en": "Exposure", "zh": "风险敞口"},
    "evidence": {"en": "Evidence", "zh": "预警依据"},
    "peer_state": {"en": "Peers", "zh": "同区域对比"},
    "score": {"en": "Score", "zh": "异常程度"},
    "value": {"en": "Value", "zh": "观测值"},
    "expected": {"en": "Expected", "zh": "预期值"},
    "index": {"en": "Index", "zh": "植被指数"},
    "n_looks": {"en": "Clear looks", "zh": "有效观测次数"},
    "first_raised": {"en": "First raised", "zh": "首次预警日期"},
    "last_updated": {"en": "Last updated", "zh": "最近更新日期"},
    "resolved_date": {"en": "Resolved on", "zh": "解除日期"},
    # rollup sheet
    "level": {"en": "Level", "zh": "汇总层级"},
    "key": {"en": "Key", "zh": "汇总对象"},
    "n_farms": {"en": "Farms", "zh": "地块数"},
    "farms_alerted": {"en": "Farms alerted", "zh": "预警地块数"},
    "exposure_at_risk": {"en": "Exposure at risk", "zh": "预警敞口"},
    "share_at_risk": {"en": "Share at risk", "zh": "预警敞口占比"},
    "evidence_zh": {"en": "Evidence (Chinese)", "zh": "预警依据"},
}
_MISC: dict[str, dict[str, str]] = {
    "sheet.alerts": {"en": "alerts", "zh": "风险预警"},
    "sheet.rollup": {"en": "rollup", "zh": "敞口汇总"},
    "level.loan": {"en": "loan", "zh": "贷款"},
    "level.borrower": {"en": "borrower", "zh": "借款人"},
    "level.region": {"en": "region", "zh": "区域"},
    # chart labels (agrisat.plots.plot_farm)
    "chart.harvest": {"en": "harvest window", "zh": "收获期"},
    "chart.history": {"en": "own history (median ± spread)", "zh": "历年同期（中位数 ± 离散）"},
    "chart.peers": {"en": "peers (same crop & region, IQR)", "zh": "同区域同作物（四分位区间）"},
    "chart.look": {"en": "{index} clear look", "zh": "{index} 有效观测"},
    "chart.cloudy": {"en": "cloudy (no clear look)", "zh": "多云（无有效观测）"},
    "chart.no_data": {"en": "no data", "zh": "无数据"},
    "chart.resolved": {"en": " (resolved)", "zh": "（已解除）"},
    "chart.loan": {"en": "loan", "zh": "贷款"},
    "chart.exposure": {"en": "exposure", "zh": "风险敞口"},
    "chart.clear": {"en": "clear", "zh": "晴空"},
    # observation status (observations export, chips)
    "obs.ok": {"en": "ok", "zh": "有效"},
    "obs.cloudy": {"en": "cloudy", "zh": "多云"},
    "obs.no_data": {"en": "no_data", "zh": "无数据"},
    "obs.too_small": {"en": "too_small", "zh": "过小"},
}
_TABLES: dict[str, Mapping[str, dict[str, str]]] = {
    "hazard": HAZARDS,
    "severity": SEVERITIES,
    "status": STATUSES,
    "peer_state": PEER_STATES,
    "crop": CROPS,
    "column": COLUMN_LABELS,
}


def check_lang(lang: str) -> str:
    """``lang`` if supported, else a :class:`~agrisat.errors.ConfigError` naming the choices."""
    if lang not in LANGS:
        raise ConfigError(f"--lang {lang!r}: use {' or '.join(LANGS)}")
    return lang


def t(key: str, lang: str = "en") -> str:
    """The label of ``key`` (``"hazard.drought"``, ``"severity.watch"``, ``"column.farm_id"``,
    ``"sheet.alerts"`` …) in ``lang``.

    An unknown code (a hazard added later, a crop outside the list) falls back to the code
    itself, so a new kind shows up readable rather than failing the export.
    """
    check_lang(lang)
    group, _, code = key.partition(".")
    entry = _TABLES[group].get(code) if group in _TABLES else _MISC.get(key)
    if entry is None:
        return code or key
    return entry[lang]


def header(column: str, lang: str = "en") -> str:
    """Export header of ``column``: the canonical name in English, the label in Chinese.

    ``exposure_<hazard>`` and ``exposure_<severity>`` rollup columns get composed labels.
    """
    check_lang(lang)
    if lang == "en":
        return column
    if column in COLUMN_LABELS:
        return COLUMN_LABELS[column][lang]
    if column.startswith("exposure_"):
        code = column.removeprefix("exposure_")
        if code in SEVERITIES:
            return f"{SEVERITIES[code][lang]}级敞口"
        return f"{t(f'hazard.{code}', lang)}预警敞口"
    return column


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def _num(v: Any, spec: str) -> str:
    return "–" if _missing(v) else format(float(v), spec)


def _day(v: Any) -> str:
    return "?" if _missing(v) else f"{pd.Timestamp(v):%Y-%m-%d}"


def _en(hz: str, r: Mapping[str, Any], idx: str, onset: str, n: int, peer: str) -> str:
    looks = f"{n} clear look{'s' if n != 1 else ''}"
    value, expected = _num(r.get("value"), ".2f"), _num(r.get("expected"), ".2f")
    score = r.get("score")
    if hz == "drought":
        return (
            f"{idx} {value} vs {expected} expected (deficit up to {_num(score, '.0%')}); "
            f"below normal since {onset} over {looks}" + (f"; {peer}" if peer else "")
        )
    if hz == "abrupt_loss":
        return (
            f"{idx} fell from {expected} to {value} (drop of {_num(score, '.0%')}) on {onset} "
            f"outside the harvest window; {looks} since"
        )
    if hz == "flood":
        return (
            f"standing water on {_num(score, '.0%')} of the clear area (usual "
            f"{_num(r.get('expected'), '.0%')}); {idx} {value}; since {onset}, {looks}"
        )
    if hz == "no_planting":
        return f"no green-up: {idx} {value} while peers/history are at {expected}; since {onset}, {looks}"
    if hz == "stale_data":
        text = f"no clear look since {onset} ({_num(score, '.0f')} days)"
        return text + STALE_REASON.get(str(r.get("peer_state")), "")
    return (
        f"{hz}: {idx} {value} vs {expected} expected, score {_num(score, '.2f')}; "
        f"since {onset}, {looks}"
    )


def _zh(hz: str, r: Mapping[str, Any], idx: str, onset: str, n: int, peer: str) -> str:
    value, expected = _num(r.get("value"), ".2f"), _num(r.get("expected"), ".2f")
    score = r.get("score")
    if hz == "drought":
        return (
            f"{idx} 为 {value}，同期预期 {expected}（最大偏低 {_num(score, '.0%')}）；"
            f"自 {onset} 起持续偏低，共 {n} 次有效观测" + (f"；{peer}" if peer else "")
        )
    if hz == "abrupt_loss":
        return (
            f"{idx} 于 {onset} 由 {expected} 骤降至 {value}（降幅 {_num(score, '.0%')}），"
            f"不在收获期内；此后共 {n} 次有效观测"
        )
    if hz == "flood":
        return (
            f"有效观测面积的 {_num(score, '.0%')} 出现积水（常年 "
            f"{_num(r.get('expected'), '.0%')}）；{idx} 为 {value}；自 {onset} 起共 {n} 次有效观测"
        )
    if hz == "no_planting":
        return f"未见出苗返青：{idx} 仅 {value}，同区域及历史同期为 {expected}；自 {onset} 起共 {n} 次有效观测"
    if hz == "stale_data":
        text = f"自 {onset} 起无清晰影像（{_num(score, '.0f')} 天）"
        if r.get("peer_state") == "idiosyncratic":
            text += "；同区域多数地块期间已有清晰观测"
        elif r.get("peer_state") == "regional":
            text += "；整个区域均无清晰影像（持续云层覆盖）"
        return text
    return (
        f"{t(f'hazard.{hz}', 'zh')}：{idx} 为 {value}，预期 {expected}，异常程度 "
        f"{_num(score, '.2f')}；自 {onset} 起共 {n} 次有效观测"
    )


_PEER_SENTENCE = {
    "en": {
        "idiosyncratic": "peers are normal (this farm only)",
        "systemic": "peers are low too (region-wide)",
        "unknown": "no peer comparison",
    },
    "zh": {
        "idiosyncratic": "同区域其他地块基本正常（个体风险）",
        "systemic": "同区域地块普遍偏低（区域性旱情）",
        "unknown": "缺少同区域对比",
    },
}


#: why a farm is unseen, appended to a stale-data evidence sentence (English)
STALE_REASON: dict[str, str] = {
    "idiosyncratic": "; most farms of its region were seen clearly meanwhile",
    "regional": "; the whole region is unseen (persistent cloud)",
}


def render_evidence(row: Mapping[str, Any], lang: str = "en") -> str:
    """The evidence sentence of one alert, from its structured columns.

    Uses ``hazard``, ``index``, ``value``, ``expected``, ``score`` (the episode's peak
    magnitude: relative deficit or drop, water share, NDVI gap, days unseen), ``onset_date``,
    ``n_looks``, ``peer_state``, ``status`` and ``resolved_date``; ``severity`` has its own
    column and is not repeated. Missing numbers print as ``–``.

    Parameters
    ----------
    row
        One alert (a dict or a pandas row with :data:`~agrisat.alerts.ALERT_COLUMNS`).
    lang
        ``"en"`` or ``"zh"``.

    Returns
    -------
    str
        One sentence ending with ``.`` (en) or ``。`` (zh).
    """
    check_lang(lang)
    hz = str(row.get("hazard") or "")
    idx = str(row.get("index") or "ndvi").upper()
    onset = _day(row.get("onset_date"))
    raw_n = row.get("n_looks")
    n = 0 if raw_n is None or _missing(raw_n) else int(raw_n)
    peer = _PEER_SENTENCE[lang].get(str(row.get("peer_state")), "") if hz == "drought" else ""
    text = (_en if lang == "en" else _zh)(hz, row, idx, onset, n, peer)
    if row.get("status") == "resolved":
        day = _day(row.get("resolved_date"))
        text += (
            f"; resolved {day} after clear looks back in the normal range"
            if lang == "en"
            else f"；已于 {day} 解除（有效观测恢复正常）"
        )
    if lang == "en":
        return text[:1].upper() + text[1:] + "."
    return text + "。"


_VALUE_COLUMNS = ("hazard", "severity", "status", "peer_state", "crop")


def localise_alerts(alerts: pd.DataFrame, lang: str) -> pd.DataFrame:
    """An alerts table for people reading ``lang``: evidence rendered, codes and headers translated.

    English returns the table unchanged (canonical headers and codes, the detector's own,
    richer evidence). Chinese re-renders ``evidence`` with :func:`render_evidence`, replaces
    the codes of ``hazard``, ``severity``, ``status``, ``peer_state`` and ``crop`` by labels,
    and renames every column with :func:`header`.
    """
    check_lang(lang)
    if lang == "en":
        return alerts
    out = alerts.copy()
    if len(out):
        out["evidence"] = [render_evidence(r, lang) for r in alerts.to_dict("records")]
    for col in _VALUE_COLUMNS:
        if col in out.columns:
            out[col] = [v if _missing(v) or v == "" else t(f"{col}.{v}", lang) for v in out[col]]
    return out.rename(columns={c: header(str(c), lang) for c in out.columns})


def localise_rollup(roll: pd.DataFrame, lang: str) -> pd.DataFrame:
    """The rollup table (:func:`agrisat.alerts.rollup`) with ``level`` values and headers in ``lang``."""
    check_lang(lang)
    if lang == "en":
        return roll
    out = roll.copy()
    if "level" in out.columns:
        out["level"] = [t(f"level.{v}", lang) for v in out["level"]]
    return out.rename(columns={c: header(str(c), lang) for c in out.columns})


def evidence_text(row: Any, lang: str) -> str:
    """The evidence sentence of an alert row (a namedtuple or mapping) in ``lang``.

    English keeps the detection stage's own sentence; Chinese renders it from the row's
    structured columns with :func:`render_evidence`.
    """
    get = row.get if hasattr(row, "get") else lambda k, d=None: getattr(row, k, d)
    if lang == "en":
        return str(get("evidence", ""))
    fields = {
        k: get(k)
        for k in (
            "hazard",
            "index",
            "value",
            "expected",
            "score",
            "onset_date",
            "n_looks",
            "peer_state",
            "severity",
            "status",
            "resolved_date",
            "evidence",
        )
    }
    return render_evidence(fields, lang)
