"""HTML sections of the report: run summary, freshness, alerts table and filters, roll-up."""

from __future__ import annotations

from html import escape
from typing import Any

import pandas as pd

from ..i18n import evidence_text
from .strings import label

__all__ = [
    "SEVERITY_ORDER",
    "alerts_section",
    "freshness_section",
    "last_clear_looks",
    "map_classes",
    "rollup_section",
    "sort_alerts",
    "summary_section",
]

SEVERITY_ORDER = ("critical", "warning", "watch")
OPEN = ("new", "ongoing")
_FRESH_BINS = (
    (0, 10, "#2e7d32"),
    (11, 30, "#9ccc65"),
    (31, 60, "#fdd835"),
    (61, 90, "#fb8c00"),
    (91, 10**9, "#c62828"),
)


def _fmt_money(v: Any) -> str:
    return "" if pd.isna(v) else f"{float(v):,.0f}"


def _d(v: Any) -> str:
    return "" if v is None or pd.isna(v) else f"{pd.Timestamp(v):%Y-%m-%d}"


def _kpi(value: str, key: str) -> str:
    return f'<div class="kpi"><div class="v">{escape(value)}</div><div class="k">{key}</div></div>'


def last_clear_looks(observations: pd.DataFrame, farm_ids: pd.Series) -> pd.Series:
    """Date of each farm's latest clear look (status ``ok``), NaT when never seen clearly."""
    ids = farm_ids.astype(str)
    ok = observations[observations["status"].astype(str) == "ok"]
    if ok.empty:  # no clear look yet (or no observation at all): every farm NaT
        return pd.Series(pd.NaT, index=ids, dtype="datetime64[ns]")
    last = pd.to_datetime(ok.groupby("farm_id")["date"].max())
    last.index = last.index.astype(str)
    return pd.Series(pd.to_datetime(ids.map(last)).to_numpy(), index=ids)


def summary_section(
    runs: pd.DataFrame, alerts: pd.DataFrame, farms: pd.DataFrame, lang: str
) -> str:
    """KPIs of the latest run and of the alerts."""
    last = runs.iloc[-1] if len(runs) else pd.Series(dtype=object)
    open_ = alerts[alerts["status"].isin(OPEN)] if len(alerts) else alerts
    at_risk = (
        farms.loc[farms["farm_id"].isin(open_["farm_id"]), "exposure"].sum() if len(open_) else 0.0
    )

    def num(key: str) -> str:
        v = last.get(key)
        return "–" if v is None or pd.isna(v) else f"{int(v):,}"

    def total(key: str) -> str:
        return f"{int(runs[key].fillna(0).sum()):,}" if key in runs.columns else "–"

    kpis = [
        _kpi(f"{len(farms):,}", label("farms", lang)),
        _kpi(num("rejected"), label("rejected", lang)),
        _kpi(f"{len(runs):,}", label("runs", lang)),
        _kpi(total("items_ingested"), label("scenes", lang)),
        _kpi(num("items_failed"), label("scenes_failed", lang)),
        _kpi(f"{len(open_):,}", label("alerts_open", lang)),
        _kpi(f"{int((alerts['status'] == 'new').sum()) if len(alerts) else 0:,}", label("alerts_new", lang)),
        _kpi(f"{int((alerts['status'] == 'resolved').sum()) if len(alerts) else 0:,}", label("alerts_resolved", lang)),
        _kpi(_fmt_money(farms["exposure"].sum()), label("exposure_total", lang)),
        _kpi(_fmt_money(at_risk), label("exposure_at_risk", lang)),
    ]  # fmt: skip
    run_line = ""
    if len(last):
        run_line = (
            f'<p class="note">{label("last_run", lang)}: {escape(str(last.get("run_id", "")))} · '
            f"{escape(str(last.get('started', '')))} → {escape(str(last.get('finished', '')))} · "
            f"--end {escape(str(last.get('end', '')))}</p>"
        )
    return (
        f'<section id="summary"><h2>{label("summary", lang)}</h2>'
        f'<div class="kpis">{"".join(kpis)}</div>{run_line}</section>'
    )


def freshness_section(
    last_clear: pd.Series,
    asof: pd.Timestamp | None,
    lang: str,
    *,
    stalest: int = 15,
    observed: bool = True,
) -> str:
    """Share of farms seen in the last 10/30 days, a distribution bar, the stalest farms.

    ``observed`` False (the workdir holds no observation at all: a first run that found no
    scene, e.g. a wrong catalog or collection) adds a note saying so, with the farm count.
    """
    n = len(last_clear)
    note = label("no_observations", lang, n=n)
    none_yet = "" if observed else f'<p class="note">{escape(note)}</p>'
    ref = asof if asof is not None else (last_clear.max() if n else pd.Timestamp.now())
    age = (pd.Timestamp(ref) - pd.to_datetime(last_clear)).dt.days
    seen10 = float((age <= 10).sum()) / n if n else 0.0
    seen30 = float((age <= 30).sum()) / n if n else 0.0
    kpis = [
        _kpi(f"{seen10:.0%}", label("seen10", lang)),
        _kpi(f"{seen30:.0%}", label("seen30", lang)),
        _kpi(_d(ref), label("asof", lang)),
    ]
    spans, legend = [], []
    bins: list[tuple[int | None, int, str]] = [*_FRESH_BINS, (None, 0, "#616161")]
    for lo, hi, color in bins:
        if lo is None:
            k = int(age.isna().sum())
            name = label("never", lang)
        else:
            k = int(((age >= lo) & (age <= hi)).sum())
            name = f"{lo}–{hi}" if hi < 10**9 else f">{lo - 1}"
        share = k / n if n else 0.0
        if k:
            spans.append(f'<span style="width:{share * 100:.2f}%;background:{color}" '
                         f'title="{escape(name)}: {k}"></span>')  # fmt: skip
        legend.append(f'<i style="background:{color}"></i>{escape(name)} ({k})')
    worst = age.fillna(10**6).sort_values(ascending=False).head(stalest)
    trs = "".join(
        f"<tr><td>{escape(f)}</td><td>{_d(last_clear.get(f)) or label('never', lang)}</td>"
        f'<td class="num">{"" if d >= 10**6 else int(d)}</td></tr>'
        for f, d in worst.items()
    )
    return (
        f'<section id="freshness"><h2>{label("freshness", lang)}</h2>{none_yet}'
        f'<div class="kpis">{"".join(kpis)}</div>'
        f'<h3>{label("days_since", lang)}</h3><div class="bar">{"".join(spans)}</div>'
        f'<div class="barlegend">{"".join(legend)}</div>'
        f'<h3>{label("stalest", lang)}</h3><table class="small"><thead><tr>'
        f"<th>{label('farm', lang)}</th><th>{label('last_clear', lang)}</th>"
        f'<th class="num">{label("days", lang)}</th></tr></thead><tbody>{trs}</tbody></table>'
        "</section>"
    )


def _options(key: str, values: list[str], lang: str, *, translate: bool = True) -> str:
    opts = "".join(
        f'<option value="{escape(v)}">{escape(label(v, lang) if translate else v)}</option>'
        for v in values
    )
    return (
        f'<label>{label(key, lang)} <select data-key="{key}"><option value="">'
        f"{label('all', lang)}</option>{opts}</select></label>"
    )


def alerts_section(alerts: pd.DataFrame, lang: str, *, max_rows: int = 5000) -> str:
    """The alerts table (in :func:`sort_alerts` order) with its client-side filters: the first
    ``max_rows`` alerts, and a note of how many more the exports hold (each row is ~0.5 kB:
    83,000 alerts made a 54 MB report, too large to mail)."""
    head = f'<section id="alerts"><h2>{label("alerts", lang)}</h2>'
    if alerts.empty:
        return head + f"<p>{label('no_alerts', lang)}</p></section>"
    cut = ""
    if len(alerts) > max_rows:
        cut = (
            f'<p class="note">{label("alerts_cut", lang, n=max_rows, m=len(alerts) - max_rows)}</p>'
        )
        alerts = alerts.head(max_rows)
    sev_values = [s for s in SEVERITY_ORDER if s in set(alerts["severity"])]
    filters = (
        '<div class="filters">'
        + _options("hazard", sorted(alerts["hazard"].astype(str).unique()), lang)
        + _options("severity", sev_values, lang)
        + _options("status", [s for s in ("new", "ongoing", "resolved") if s in set(alerts["status"])], lang)
        + _options("region", sorted(alerts["region"].fillna("").astype(str).unique()), lang, translate=False)
        + f'<label>{label("farm", lang)} <input id="f-farm" size="10"></label>'
        + f'<span class="note">{label("shown", lang)} <b id="shown-count">{len(alerts)}</b> '
        f"{label('of', lang)} {len(alerts)}</span></div>"
    )  # fmt: skip
    cols = [
        ("farm", ""), ("loan", ""), ("borrower", ""), ("region", ""), ("crop", ""),
        ("hazard", ""), ("severity", ""), ("status", ""), ("onset", ""),
        ("last_observed", ""), ("exposure", "num"), ("evidence", ""),
    ]  # fmt: skip
    ths = "".join(f'<th class="{c}">{label(k, lang)}</th>' for k, c in cols)
    trs = []
    for r in alerts.itertuples(index=False):
        region = "" if pd.isna(r.region) else str(r.region)
        attrs = (
            f'data-farm="{escape(str(r.farm_id))}" data-hazard="{escape(str(r.hazard))}" '
            f'data-severity="{escape(str(r.severity))}" data-status="{escape(str(r.status))}" '
            f'data-region="{escape(region)}"'
        )
        trs.append(
            f'<tr {attrs} class="st-{escape(str(r.status))}">'
            f'<td><a href="#card-{escape(str(r.alert_id))}">{escape(str(r.farm_id))}</a></td>'
            f"<td>{escape(str(r.loan_id))}</td><td>{escape(str(r.borrower_id))}</td>"
            f"<td>{escape(region)}</td><td>{escape(str(r.crop))}</td>"
            f"<td>{escape(label(str(r.hazard), lang))}</td>"
            f'<td><span class="sev {escape(str(r.severity))}">{escape(label(str(r.severity), lang))}'
            f"</span></td><td>{escape(label(str(r.status), lang))}</td>"
            f"<td>{_d(r.onset_date)}</td><td>{_d(r.last_observed)}</td>"
            f'<td class="num">{_fmt_money(r.exposure)}</td>'
            f'<td class="ev">{escape(evidence_text(r, lang))}</td></tr>'
        )
    return (
        head + filters + cut + f'<div class="tablewrap"><table id="alert-table"><thead><tr>{ths}'
        f"</tr></thead><tbody>{''.join(trs)}</tbody></table></div></section>"
    )


def rollup_section(table: pd.DataFrame, lang: str, *, top: int = 25) -> str:
    """Exposure at risk by loan, borrower and region (top ``top`` of loans and borrowers)."""
    parts = [f'<section id="rollup"><h2>{label("rollup", lang)}</h2><div class="cols">']
    for level in ("region", "loan", "borrower"):
        t = table[table["level"] == level].sort_values(
            ["exposure_at_risk", "exposure"], ascending=False
        )
        note = ""
        if level != "region":
            risky = t[t["exposure_at_risk"] > 0]
            shown = risky.head(top) if len(risky) else t.head(min(top, 10))
            note = f'<p class="note">{label("rollup_cut", lang, n=len(shown), m=len(t) - len(shown))}</p>'
            t = shown
        rows = "".join(
            f"<tr><td>{escape(str(r.key))}</td><td class='num'>{int(r.n_farms)}</td>"
            f"<td class='num'>{int(r.farms_alerted)}</td><td class='num'>{_fmt_money(r.exposure)}</td>"
            f"<td class='num'>{_fmt_money(r.exposure_at_risk)}</td>"
            f"<td class='num'>{float(r.share_at_risk):.0%}</td></tr>"
            for r in t.itertuples(index=False)
        )  # fmt: skip
        head = "".join(
            f'<th class="{"num" if k != level else ""}">{label(k, lang)}</th>'
            for k in (level, "n_farms", "farms_alerted", "exposure", "exposure_at_risk", "share_at_risk")
        )  # fmt: skip
        parts.append(
            f'<div><h3>{label("level_" + level, lang)}</h3><table class="rollup" data-level="{level}">'
            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{note}</div>"
        )
    parts.append("</div></section>")
    return "".join(parts)


def sort_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    """Alerts by exposure (largest first), open before resolved, then severity and farm."""
    if alerts.empty:
        return alerts
    rank = alerts["severity"].map({s: i for i, s in enumerate(SEVERITY_ORDER)}).fillna(9)
    closed = (~alerts["status"].isin(OPEN)).astype(int)
    return (
        alerts.assign(_c=closed, _r=rank, _e=-alerts["exposure"].astype(float).fillna(0.0))
        .sort_values(["_c", "_e", "_r", "farm_id", "alert_id"], kind="mergesort")
        .drop(columns=["_c", "_r", "_e"])
        .reset_index(drop=True)
    )


def map_classes(alerts: pd.DataFrame) -> dict[str, str]:
    """Farm -> map class: its worst open severity, ``resolved`` when only resolved alerts."""
    out: dict[str, str] = {}
    if alerts.empty:
        return out
    for f in alerts.loc[~alerts["status"].isin(OPEN), "farm_id"].astype(str):
        out[f] = "resolved"
    open_ = alerts[alerts["status"].isin(OPEN)]
    rank = open_["severity"].map({s: i for i, s in enumerate(SEVERITY_ORDER)}).fillna(9)
    best = open_.assign(_r=rank.to_numpy()).sort_values("_r").drop_duplicates("farm_id")
    for f, s in zip(best["farm_id"].astype(str), best["severity"].astype(str), strict=True):
        out[f] = s if s in SEVERITY_ORDER else "watch"
    return out
