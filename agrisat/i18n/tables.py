"""The string tables behind :mod:`agrisat.i18n`: every label in English and Chinese.

The term choices are explained in :mod:`agrisat.i18n`'s docstring.
"""

from __future__ import annotations

from collections.abc import Mapping

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
    "peer_median": {"en": "Peers' median", "zh": "同区域中位数"},
    "peer_n": {"en": "Peers", "zh": "同区域地块数"},
    "usual_gap": {"en": "Usual gap to peers", "zh": "常年与同区域差值"},
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
