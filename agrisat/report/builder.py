"""Build the one-file HTML report of a workdir."""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from html import escape
from pathlib import Path

from ..errors import ConfigError
from ..store import atomic_write_text
from ..workspace import Workspace
from .cards import cards_section
from .sections import (
    alerts_section,
    freshness_section,
    last_clear_looks,
    map_classes,
    rollup_section,
    sort_alerts,
    summary_section,
)
from .strings import LANGS, label
from .svg import MAP_CLASSES, farm_map_svg
from .template import page

__all__ = ["build_report"]

log = logging.getLogger(__name__)


def build_report(
    workdir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    lang: str = "en",
    catalog: str | os.PathLike[str] | None = None,
    top_n: int = 20,
    max_cards: int = 2000,
    max_rows: int = 5000,
    chips: bool = True,
) -> Path:
    """Write the workdir's report: ONE self-contained HTML file (CSS, JS, images inline).

    Parameters
    ----------
    workdir
        A workdir holding an agrisat store.
    out
        The HTML file to write (default ``<workdir>/report.html``); written atomically.
    lang
        ``en`` or ``zh`` for the report's own labels (data values stay as stored).
    catalog
        The STAC catalog the runs read, for before/after image chips (default: as
        :func:`agrisat.workspace.resolve_catalog` finds it; without one, chips are skipped and
        the report says so).
    top_n
        Alerts (largest exposure first) that get a full series chart and chips; the others get
        a sparkline. Bounds the file size on large books.
    max_cards
        At most this many alert cards; further alerts are in the table only.
    max_rows
        At most this many rows in the alerts table (in its order: open first, largest
        exposure first); the report says how many more the exports hold.
    chips
        Read before/after chips from the scenes (needs scene access).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    if lang not in LANGS:
        raise ConfigError(f"--lang {lang!r}: use one of {', '.join(LANGS)}")
    if top_n < 0 or max_cards < 0 or max_rows < 0:
        raise ConfigError("top_n, max_cards and max_rows must be >= 0")
    t0 = time.perf_counter()
    ws = Workspace(workdir, catalog=catalog)
    target = Path(out) if out is not None else ws.workdir / "report.html"
    farms = ws.farms
    alerts = sort_alerts(ws.alerts("all"))
    runs = ws.runs()
    asof = ws.asof
    observations = ws.observations_table
    last_clear = last_clear_looks(observations, farms["farm_id"])

    legend = [(k, label(k if k in ("critical", "warning", "watch") else f"legend_{k}", lang))
              for k in MAP_CLASSES]  # fmt: skip
    svg = farm_map_svg(farms, map_classes(alerts), legend=legend)
    body = [
        summary_section(runs, alerts, farms, lang),
        f'<section id="map"><h2>{label("map", lang)}</h2><div class="mapbox">{svg}'
        '<div id="tip"></div></div></section>',
        freshness_section(last_clear, asof, lang, observed=len(observations) > 0),
        alerts_section(alerts, lang, max_rows=max_rows),
        rollup_section(ws.rollup(), lang),
        cards_section(ws, alerts, lang, top_n=top_n, max_cards=max_cards, chips=chips),
    ]
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta = (
        f"{label('asof', lang)} {'' if asof is None else f'{asof:%Y-%m-%d}'} · "
        f"{label('generated', lang)} {generated} · {escape(ws.workdir.name)}"
    )
    footer = f'{label("offline_note", lang)} {label("load_time", lang)} <span id="load-ms"></span>'
    html = page(label("title", lang), lang, meta, "".join(body), footer)
    atomic_write_text(target, html)
    # a report is meant to be shared: the usual file mode, not the temp file's 0600
    umask = os.umask(0)
    os.umask(umask)
    target.chmod(0o666 & ~umask)
    log.info(
        "report: %d farms, %d alerts, %d bytes in %.1f s",
        len(farms),
        len(alerts),
        len(html.encode("utf-8")),
        time.perf_counter() - t0,
    )
    return target
