"""The report's own labels in English and Chinese (data values stay as stored).

The Chinese terms follow those of :mod:`agrisat.i18n` (the export translations): 提示/警示/严重
for severities (关注 is a loan-classification grade and would read as a downgrade), 风险敞口 for
exposure, 有效观测 for a clear look. The table is kept here so the report needs nothing else.
"""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["LANGS", "STRINGS", "label"]

LANGS = ("en", "zh")

#: key -> (English, Chinese)
STRINGS: dict[str, tuple[str, str]] = {
    "title": ("agrisat — crop risk report", "agrisat — 农作物风险报告"),
    "generated": ("Generated", "生成时间"),
    "asof": ("Data as of", "数据截至"),
    "summary": ("Run summary", "运行概况"),
    "freshness": ("Data freshness", "数据时效"),
    "map": ("Farms by alert severity", "按预警级别着色的地块"),
    "alerts": ("Alerts by exposure", "风险预警(按风险敞口排序)"),
    "cards": ("Alert details", "预警详情"),
    "rollup": ("Exposure at risk", "预警敞口汇总"),
    "runs": ("Runs", "运行次数"),
    "last_run": ("Latest run", "最近一次运行"),
    "farms": ("Farms", "地块"),
    "rejected": ("Rejected book rows", "被拒绝的台账行"),
    "scenes": ("Scenes ingested (all runs)", "已处理影像(全部运行)"),
    "scenes_failed": ("Scenes failed (latest run)", "本次失败影像"),
    "alerts_open": ("Open alerts", "未关闭预警"),
    "alerts_new": ("New alerts", "新增预警"),
    "alerts_resolved": ("Resolved alerts", "已解除预警"),
    "exposure_total": ("Total exposure", "总敞口"),
    "exposure_at_risk": ("Exposure at risk (open alerts)", "预警敞口(未关闭预警)"),
    "seen10": ("Farms seen clearly in the last 10 days", "近10天有有效观测的地块"),
    "seen30": ("Farms seen clearly in the last 30 days", "近30天有有效观测的地块"),
    "never": ("never", "从未"),
    "days_since": ("Days since last clear look", "距最近有效观测天数"),
    "stalest": ("Farms unseen the longest", "最久无有效观测的地块"),
    "last_clear": ("Last clear look", "最近有效观测"),
    "days": ("days", "天"),
    "farm": ("Farm", "地块编号"),
    "loan": ("Loan", "贷款编号"),
    "borrower": ("Borrower", "借款人编号"),
    "region": ("Region", "区域"),
    "crop": ("Crop", "作物"),
    "hazard": ("Hazard", "风险类型"),
    "severity": ("Severity", "预警级别"),
    "status": ("Status", "预警状态"),
    "onset": ("Onset", "起始日期"),
    "last_observed": ("Last clear look", "最近有效观测日期"),
    "exposure": ("Exposure", "风险敞口"),
    "evidence": ("Evidence", "预警依据"),
    "all": ("all", "全部"),
    "shown": ("shown", "显示"),
    "of": ("of", "/"),
    "no_alerts": ("No alerts in the latest run.", "最近一次运行没有预警。"),
    "no_observations": (
        "No observations yet: none of the {n:,} farms of the book has been observed. A run "
        "that found no scene for the book (a wrong catalog or collection, or dates before the "
        "first scene) leaves this state.",
        "尚无观测：台账中的 {n:,} 个地块均未获得任何观测。运行未找到覆盖台账的影像"
        "（影像目录或数据集有误，或日期早于第一景影像）时即为此状态。",
    ),
    "legend_none": ("no alert", "无预警"),
    "legend_resolved": ("resolved only", "仅已解除"),
    "before": ("before", "之前"),
    "after": ("after", "之后"),
    "chips_skipped": (
        "Image chips skipped: {reason}",
        "未显示影像切片:{reason}",
    ),
    "no_catalog": (
        "no scene access (the STAC catalog of the run is not known)",
        "无法访问影像(未知运行所用的 STAC 目录)",
    ),
    "sparkline_note": (
        "NDVI clear looks over the last year; red line: onset",
        "近一年 NDVI 清晰观测;红线:起始日期",
    ),
    "cards_note": (
        "Charts for the {n} largest exposures; the others show a sparkline.",
        "敞口最大的 {n} 个预警附完整图表,其余显示简图。",
    ),
    "cards_cut": (
        "{n} more alerts are listed in the table only.",
        "另有 {n} 个预警仅列于表中。",
    ),
    "level_loan": ("By loan", "按贷款"),
    "level_borrower": ("By borrower", "按借款人"),
    "level_region": ("By region", "按区域"),
    "n_farms": ("Farms", "地块数"),
    "farms_alerted": ("Alerted farms", "预警地块数"),
    "share_at_risk": ("Share at risk", "预警敞口占比"),
    "alerts_cut": (
        "The first {n} alerts (open first, largest exposure first); {m} more are in the alert "
        "exports (agrisat alerts).",
        "列出前 {n} 条预警（未结束的在前，按敞口从大到小）；其余 {m} 条见预警导出文件（agrisat alerts）。",
    ),
    "rollup_cut": (
        "Top {n} by exposure at risk; {m} more not shown.",
        "按预警敞口前 {n} 项;其余 {m} 项未列出。",
    ),
    "load_time": ("Page ready in", "页面加载用时"),
    "offline_note": (
        "Self-contained file: no network access is needed to read it.",
        "本文件自包含,离线即可阅读。",
    ),
    "new": ("new", "新增"),
    "ongoing": ("ongoing", "持续"),
    "resolved": ("resolved", "已解除"),
    "watch": ("watch", "提示"),
    "warning": ("warning", "警示"),
    "critical": ("critical", "严重"),
    "drought": ("drought", "干旱"),
    "flood": ("flood", "洪涝"),
    "abrupt_loss": ("abrupt loss", "突发灾损"),
    "no_planting": ("no planting", "未种植"),
    "stale_data": ("no recent clear image", "观测中断"),
}


def label(key: str, lang: str = "en", **values: object) -> str:
    """The report label ``key`` in ``lang`` (``en`` or ``zh``); ``{name}`` fields filled in.

    Unknown keys come back as themselves (data values such as a new hazard name show as-is).
    """
    if lang not in LANGS:
        raise ConfigError(f"--lang {lang!r}: use one of {', '.join(LANGS)}")
    pair = STRINGS.get(key)
    text = key.replace("_", " ") if pair is None else pair[LANGS.index(lang)]
    return text.format(**values) if values else text
