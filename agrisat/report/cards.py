"""Per-alert cards: the series chart and before/after chips for the largest exposures (PNG;
SVG with live text in Chinese), an SVG sparkline for the others."""

from __future__ import annotations

import base64
import io
import logging
import warnings
from html import escape
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import AgrisatError
from ..i18n import evidence_text
from .strings import label
from .svg import sparkline_svg

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..workspace import Workspace

__all__ = ["before_after_dates", "cards_section", "figure_data_uri", "png_data_uri"]

log = logging.getLogger(__name__)


def png_data_uri(fig: Figure, *, dpi: int = 72) -> str:
    """A figure as a ``data:image/png;base64`` URI (no metadata: nothing but pixels)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


#: CJK fonts a reader's system is likely to have, after matplotlib's default for Latin text.
_CJK_FONTS = ["DejaVu Sans", "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei",
              "PingFang SC", "WenQuanYi Micro Hei", "SimHei"]  # fmt: skip


def figure_data_uri(fig: Figure, lang: str) -> str:
    """A figure as a data URI: PNG in English, SVG with its text kept as text otherwise -- and
    in English too when some of its text has no glyph in matplotlib's font (a Chinese farm id
    or region in an English report).

    Why SVG for Chinese: matplotlib's bundled fonts have no CJK glyphs, and the machine that
    builds the report often has none either. With ``svg.fonttype: none`` the labels stay
    ``<text>`` elements and the reader's browser draws them with its own CJK font.
    """
    if lang == "en" and _drawable(fig):
        return png_data_uri(fig)
    import matplotlib

    buf = io.BytesIO()
    rc: dict[str, Any] = {"svg.fonttype": "none", "font.sans-serif": _CJK_FONTS}
    with matplotlib.rc_context(rc), warnings.catch_warnings():  # type: ignore[arg-type]
        # layout measures CJK text with the Latin font's metrics: "glyph missing" is expected
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        for text in fig.findobj(matplotlib.text.Text):
            text.set_fontfamily(["sans-serif"])
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _drawable(fig: Figure) -> bool:
    """Whether matplotlib's default font has a glyph for every character of ``fig``'s text
    (else a PNG shows boxes where the text was)."""
    import matplotlib
    from matplotlib import font_manager

    chars = {c for t in fig.findobj(matplotlib.text.Text) for c in t.get_text() if ord(c) > 0xFF}
    if not chars:
        return True
    font = font_manager.get_font(font_manager.findfont(font_manager.FontProperties()))
    return all(font.get_char_index(ord(c)) != 0 for c in chars)


def before_after_dates(looks: pd.DataFrame, onset: pd.Timestamp) -> tuple[str | None, str | None]:
    """The farm's last clear look before ``onset`` and its first clear look on/after it."""
    d = pd.to_datetime(looks["date"])
    before = d[d < onset]
    after = d[d >= onset]
    return (
        None if before.empty else f"{before.max():%Y-%m-%d}",
        None if after.empty else f"{after.min():%Y-%m-%d}",
    )


def _head(a: Any, lang: str) -> str:
    region = "" if pd.isna(a.region) else f" · {escape(str(a.region))}"
    onset = "" if pd.isna(a.onset_date) else f"{pd.Timestamp(a.onset_date):%Y-%m-%d}"
    return (
        f'<h3><span class="sev {escape(str(a.severity))}">{escape(label(str(a.severity), lang))}'
        f"</span> {escape(label(str(a.hazard), lang))} · {escape(str(a.farm_id))}{region} · "
        f"{label('loan', lang)} {escape(str(a.loan_id))} · {label('exposure', lang)} "
        f"{float(a.exposure):,.0f} · {label(str(a.status), lang)} · {label('onset', lang)} "
        f"{onset}</h3>"
    )


def _attrs(a: Any) -> str:
    region = "" if pd.isna(a.region) else str(a.region)
    return (
        f'id="card-{escape(str(a.alert_id))}" data-farm="{escape(str(a.farm_id))}" '
        f'data-hazard="{escape(str(a.hazard))}" data-severity="{escape(str(a.severity))}" '
        f'data-status="{escape(str(a.status))}" data-region="{escape(region)}"'
    )


def cards_section(
    ws: Workspace,
    alerts: pd.DataFrame,
    lang: str,
    *,
    top_n: int,
    max_cards: int,
    chips: bool,
) -> str:
    """Cards for the alerts in order: charts (and chips) for the first ``top_n``."""
    if alerts.empty:
        return ""
    obs = ws.observations_table
    shown = alerts.head(max_cards)
    wanted = set(shown["farm_id"].astype(str))
    looks_all = obs[(obs["farm_id"].isin(wanted)) & (obs["status"].astype(str) == "ok")]
    looks_all = looks_all.assign(date=pd.to_datetime(looks_all["date"]))
    by_farm = {str(k): g for k, g in looks_all.groupby("farm_id")}
    asof = ws.asof or pd.Timestamp(obs["date"].max())
    start = asof - pd.Timedelta(days=365)
    skip_reason = None
    if chips and ws.catalog is None:
        skip_reason = label("no_catalog", lang)
    elif not chips:
        skip_reason = "disabled"
    out = [f'<section id="cards"><h2>{label("cards", lang)}</h2>']
    out.append(f'<p class="note">{label("cards_note", lang, n=min(top_n, len(shown)))}</p>')
    if skip_reason and top_n:
        out.append(
            f'<p class="note">{escape(label("chips_skipped", lang, reason=skip_reason))}</p>'
        )
    out.append('<div class="cards">')
    for i, a in enumerate(shown.itertuples(index=False)):
        looks = by_farm.get(str(a.farm_id), obs.iloc[0:0])
        evidence = f'<div class="ev">{escape(evidence_text(a, lang))}</div>'
        fig = _series_figure(ws, a, lang) if i < top_n else None
        if fig is not None:
            uri = figure_data_uri(fig, lang)
            imgs = [f'<img alt="{escape(str(a.farm_id))} series" src="{uri}">']
            if skip_reason is None and a.hazard != "stale_data" and not pd.isna(a.onset_date):
                imgs.append(_chips_img(ws, a, looks, lang))
            out.append(
                f'<div class="card {escape(str(a.severity))}" {_attrs(a)}>{_head(a, lang)}'
                f'{evidence}<div class="imgs">{"".join(imgs)}</div></div>'
            )
        else:
            marks = [] if pd.isna(a.onset_date) else [pd.Timestamp(a.onset_date)]
            spark = sparkline_svg(looks["date"], looks["ndvi_mean"].to_numpy(dtype=float)
                                  if "ndvi_mean" in looks else [], start=start, end=asof, marks=marks)  # fmt: skip
            out.append(
                f'<div class="card small {escape(str(a.severity))}" {_attrs(a)}>{spark}'
                f"<div>{_head(a, lang)}{evidence}</div></div>"
            )
    out.append("</div>")
    if len(alerts) > len(shown):
        out.append(f'<p class="note">{label("cards_cut", lang, n=len(alerts) - len(shown))}</p>')
    out.append("</section>")
    return "".join(out)


def _series_figure(ws: Workspace, a: Any, lang: str) -> Figure | None:
    """The farm's series chart for alert ``a``'s card, or None when it cannot be drawn (a farm
    no longer in the book): one alert must not cost the whole report, it gets a small card."""
    try:
        return ws.plot_farm(str(a.farm_id), figsize=(10.5, 3.6), lang=lang)
    except AgrisatError as exc:
        log.warning("series chart of alert %s skipped: %s", a.alert_id, exc)
        return None


def _chips_img(ws: Workspace, a: Any, looks: pd.DataFrame, lang: str) -> str:
    before, after = before_after_dates(looks, pd.Timestamp(a.onset_date))
    dates = [d for d in (before, after) if d]
    if not dates:
        return ""
    try:
        chips = ws.chips(str(a.farm_id), dates, show=False)
    except AgrisatError as exc:
        log.warning("chips of alert %s skipped: %s", a.alert_id, exc)
        return f'<p class="note">{escape(label("chips_skipped", lang, reason=str(exc)))}</p>'
    from ..chips import chip_labels, plot_chips

    tags = [label("before", lang), label("after", lang)] if before and after else None
    chips.labels = chip_labels(chips, lang=lang, tags=tags)
    fig = plot_chips(chips, size=1.9, lang=lang)
    return f'<img alt="{escape(str(a.farm_id))} chips" src="{figure_data_uri(fig, lang)}">'
