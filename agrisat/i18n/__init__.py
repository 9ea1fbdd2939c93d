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

from ..errors import ConfigError
from .tables import (
    _MISC,
    _TABLES,
    COLUMN_LABELS,
    CROPS,
    HAZARDS,
    LANGS,
    PEER_STATES,
    SEVERITIES,
    STATUSES,
)

__all__ = [
    "COLUMN_LABELS",
    "CROPS",
    "HAZARDS",
    "LANGS",
    "LEFT_BOOK",
    "PEER_STATES",
    "SEVERITIES",
    "STATUSES",
    "check_lang",
    "header",
    "left_book",
    "left_book_evidence",
    "localise_alerts",
    "localise_rollup",
    "peer_sentence",
    "render_evidence",
    "t",
]


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
    peers = _peers(r, "en")
    if hz == "drought":
        return (
            f"{idx} {value} vs {expected} expected (deficit up to {_num(score, '.0%')}); "
            f"below normal since {onset} over {looks}{peers}" + (f"; {peer}" if peer else "")
        )
    if hz == "abrupt_loss":
        return (
            f"{idx} fell from {expected} to {value} (drop of {_num(score, '.0%')}) on {onset} "
            f"outside the harvest window{peers}; {looks} since"
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
    peers = _peers(r, "zh")
    if hz == "drought":
        return (
            f"{idx} 为 {value}，同期预期 {expected}（最大偏低 {_num(score, '.0%')}）；"
            f"自 {onset} 起持续偏低，共 {n} 次有效观测{peers}" + (f"；{peer}" if peer else "")
        )
    if hz == "abrupt_loss":
        return (
            f"{idx} 于 {onset} 由 {expected} 骤降至 {value}（降幅 {_num(score, '.0%')}），"
            f"不在收获期内{peers}；此后共 {n} 次有效观测"
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


def _peers(r: Mapping[str, Any], lang: str) -> str:
    """The same-date peers' level and the farm's usual gap to them, where the alert has them
    (``peer_median``, ``peer_n``, ``usual_gap``; a history written before them has none)."""
    med: Any = r.get("peer_median")
    if _missing(med):
        return ""
    raw_n: Any = r.get("peer_n")
    gap: Any = r.get("usual_gap")
    n = 0 if _missing(raw_n) else int(raw_n)
    if lang == "en":
        text = f"; peers at {float(med):.2f} (n={n})"
        if not _missing(gap):
            side = "above" if float(gap) > 0 else "below"
            text += f", the farm usually {abs(float(gap)):.2f} {side} them"
        return text
    text = f"；同区域同作物 {n} 个地块中位数 {float(med):.2f}"
    if not _missing(gap):
        side = "高于" if float(gap) > 0 else "低于"
        text += f"，该地块常年{side}同区域 {abs(float(gap)):.2f}"
    return text


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


def peer_sentence(state: Any, lang: str = "en") -> str:
    """What a drought's ``peer_state`` says in words (``unknown`` → "no peer comparison");
    "" for a state without a sentence (a missing one). The stored English evidence
    (:func:`agrisat.alerts_fast.evidence`) and :func:`render_evidence` both use it."""
    return _PEER_SENTENCE[lang].get(str(state), "")


#: why a farm is unseen, appended to a stale-data evidence sentence (English)
STALE_REASON: dict[str, str] = {
    "idiosyncratic": "; most farms of its region were seen clearly meanwhile",
    "regional": "; the whole region is unseen (persistent cloud)",
}


#: the words that close the evidence of an alert whose farm is no longer in the loan book
#: (:func:`left_book_evidence`); :func:`left_book` recognises an alert closed that way from them,
#: so the stored English sentence is the one record of why the alert closed
LEFT_BOOK = "the farm left the loan book"


def left_book_evidence(evidence: Any, day: Any) -> str:
    """``evidence`` (an alert's English sentence) with the note that the alert was closed on
    ``day`` because its farm left the loan book."""
    text = "" if _missing(evidence) else str(evidence).rstrip().rstrip(".")
    note = f"closed {_day(day)}: {LEFT_BOOK}"
    return f"{text}; {note}." if text else f"{note[:1].upper()}{note[1:]}."


def left_book(row: Mapping[str, Any]) -> bool:
    """Whether ``row`` (one alert) was closed because its farm left the loan book."""
    ev = row.get("evidence")
    return row.get("status") == "resolved" and isinstance(ev, str) and f": {LEFT_BOOK}." in ev


def render_evidence(row: Mapping[str, Any], lang: str = "en") -> str:
    """The evidence sentence of one alert, from its structured columns.

    Uses ``hazard``, ``index``, ``value``, ``expected``, ``score`` (the episode's peak
    magnitude: relative deficit or drop, water share, NDVI gap, days unseen), ``onset_date``,
    ``n_looks``, ``peer_state``, ``peer_median``, ``peer_n``, ``usual_gap``, ``status`` and
    ``resolved_date`` (and ``evidence``, only to tell an alert closed because its farm left the
    book, :func:`left_book`, from one that recovered); ``severity`` has its own
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
    peer = peer_sentence(row.get("peer_state"), lang) if hz == "drought" else ""
    text = (_en if lang == "en" else _zh)(hz, row, idx, onset, n, peer)
    if left_book(row):
        day = _day(row.get("resolved_date"))
        text += (
            f"; closed {day}: {LEFT_BOOK}"
            if lang == "en"
            else f"；已于 {day} 关闭（该地块已移出贷款清单）"
        )
    elif row.get("status") == "resolved":
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
