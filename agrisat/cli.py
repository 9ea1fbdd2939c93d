"""The ``agrisat`` command line (typer). Errors a user can cause end in one line and exit 2."""

from __future__ import annotations

import errno
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ._exit import exit_now
from .cliopts import PATH_ERRNOS, check_out, path_option
from .config import Settings, load_settings
from .errors import AgrisatError, ConfigError
from .indices import resolve_indices
from .net import RedactingFilter, redact_text

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Watch the farms behind agricultural loans from Sentinel-2 and raise early warnings.",
)
console = Console(stderr=True)
out = Console()


WorkdirOpt = Annotated[
    Path, path_option("--workdir", "-w", help="Working folder holding the store.")
]
LogFormatOpt = Annotated[
    str, typer.Option("--log-format", help="text (default) or json (one object per line).")
]


#: whether the logs go out as JSON (set by _setup_logging; no progress bar among them)
_JSON_LOGS = [False]


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers. Messages carry ids and counts only."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        doc = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        if record.exc_info:
            doc["error"] = redact_text(str(record.exc_info[1]))
        return json.dumps(doc, ensure_ascii=False)


def _setup_logging(verbose: bool, log_format: str = "text") -> None:
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    # odc-stac resamples 20 m bands through rasterio.warp on bare arrays with explicit
    # transforms; rasterio still warns that the arrays carry none. Noise for a user.
    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
    if log_format not in ("text", "json"):
        raise ConfigError(f"--log-format {log_format!r}: use text or json")
    handler: logging.Handler
    _JSON_LOGS[0] = log_format == "json"
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JsonFormatter())
    else:
        handler = RichHandler(console=console, show_path=False, show_time=False)
    handler.addFilter(RedactingFilter())
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(name)s: %(message)s",
        handlers=[handler],
        force=True,
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        # a bar is for a person at a terminal: in a cron log or a JSON log stream it is noise
        disable=not console.is_terminal or _JSON_LOGS[0],
    )


def _run_pipeline(
    book: str,
    catalog: str,
    workdir: Path,
    settings: Settings,
    *,
    crs: str | None = None,
    layer: str | None = None,
    redetect: bool = False,
) -> int:
    from .book.cache import load_book_cached
    from .pipeline import run
    from .store import Store

    # a nightly job's book rarely changes: its checks are reused while the file is the same
    # (kept in the store, so under the workdir's lock: a refused run touches nothing)
    store = Store(workdir)
    with store.lock():
        farms = load_book_cached(
            book, store.book_cache_dir, crs=crs, layer=layer, settings=settings.book
        )

    with _progress() as bar:
        task = bar.add_task("scenes", total=None)

        def tick(done: int, total: int, desc: str) -> None:
            bar.update(task, completed=done, total=total, description=f"scenes ({desc})")

        result = run(farms, catalog, workdir, settings=settings, progress=tick, redetect=redetect)
    out.print(
        f"run {result.run_id} for {result.end}: farms {result.farms} (rejected "
        f"{result.rejected}, unseen {result.farms_unseen}"
        + (f", history read for {result.farms_history}" if result.farms_history else "")
        + f"); scenes found {result.items_found}, "
        f"new {result.items_new}, ingested {result.items_ingested}, failed "
        f"{len(result.items_failed)}; observations added {result.observations_added}; alerts "
        + ", ".join(f"{k} {v}" for k, v in result.alerts.items())
        + (f" (detection {result.detection})" if result.detection else "")
        + f"; {result.seconds.get('total', 0):.1f} s"
    )
    if result.rejected:
        out.print(f"rejected rows: {workdir / 'rejects.csv'}")
    for item_id in result.items_failed:
        out.print(f"[yellow]scene failed (retried next run): {item_id}")
    return result.exit_code


@app.command()
def run(
    book: Annotated[
        str,
        typer.Option(
            "--book",
            help="Loan book: GeoPackage, GeoJSON, GeoParquet, zipped Shapefile or CSV with WKT.",
        ),
    ],
    catalog: Annotated[
        str, typer.Option("--catalog", help="STAC API root URL or static catalog/collection JSON.")
    ],
    workdir: WorkdirOpt,
    collection: Annotated[
        str | None, typer.Option(help="Collection id (STAC API default: sentinel-2-l2a).")
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="First acquisition day read on a first run (YYYY-MM-DD).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="'Today' for the run, inclusive (YYYY-MM-DD).")
    ] = None,
    indices: Annotated[
        str | None, typer.Option(help="Comma list of indices, e.g. ndvi,ndmi.")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Where the pixel work runs: threads, local or local:N (a local cluster of N "
            "worker processes), or the address of a running dask scheduler. Default auto: "
            "threads, or a local cluster with >= 8 CPUs and >= 50,000 farms."
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Settings TOML file.")] = None,
    crs: Annotated[
        str | None,
        typer.Option(
            help="CRS of a book that declares none, e.g. EPSG:4490; gcj02 or bd09 for "
            "polygons drawn on Chinese map apps."
        ),
    ] = None,
    layer: Annotated[str | None, typer.Option(help="Layer of a multi-layer book file.")] = None,
    redetect: Annotated[
        bool,
        typer.Option(
            "--redetect",
            help="Recompute the anomaly features of every stored look (automatic when the "
            "detection settings, calendars or the book's crops/regions change).",
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    log_format: LogFormatOpt = "text",
) -> None:
    """Ingest new scenes over the book's farms into WORKDIR."""
    _setup_logging(verbose, log_format)
    for option, value in (("--book", book), ("--catalog", catalog)):
        if not value.strip():  # an unset shell variable: not a file in the current folder
            raise ConfigError(f"{option} is empty: give a path")
    settings = load_settings(config)
    settings = settings.replace(
        "run",
        collection=collection,
        start=_check_date(start, "--start"),
        end=_check_date(end, "--end"),
        indices=resolve_indices(indices) if indices else None,
        scheduler=scheduler,
    )
    from .pipeline import check_run_settings

    check_run_settings(settings)  # before the workdir is created or its book cache written
    raise typer.Exit(
        _run_pipeline(book, catalog, workdir, settings, crs=crs, layer=layer, redetect=redetect)
    )


def _check_date(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        time.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise ConfigError(f"{name} {value!r} is not a date like 2026-06-30") from None
    return value


@app.command()
def demo(
    workdir: Annotated[
        Path, path_option("--workdir", "-w", help="Where the demo archive and results go.")
    ] = Path("demo-out"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Build the embedded demo archive, run the monitor over it and score its alerts."""
    _setup_logging(verbose)
    from .demo import DemoSpec
    from .demo.showcase import (
        check_demo_workdir,
        prepare_archive,
        score_demo,
        scores_table,
        timed,
    )
    from .export import export_alerts
    from .monitor import latest_alerts
    from .store import Store

    check_demo_workdir(workdir)  # never over a user's own workdir
    spec = DemoSpec()
    with console.status("writing the demo archive (COGs + static STAC catalog)…"):
        (archive, generated), secs = timed(prepare_archive, workdir, spec)
    out.print(
        f"demo archive: {archive.catalog} "
        + (f"(written in {secs:.1f} s)" if generated else "(reused: same spec)")
    )
    settings = Settings().replace("run", end=str(spec.season_end))
    code = _run_pipeline(str(archive.book), str(archive.catalog), workdir, settings)
    store = Store(workdir)
    obs = store.read("observations")
    out.print(
        f"observations: {len(obs)} farm-dates ({int((obs['status'] == 'ok').sum())} clear) "
        f"for {obs['farm_id'].nunique()} farms × {obs['date'].nunique()} dates"
    )
    with console.status("replaying the season night by night to score the alerts…"):
        (scores, events), secs = timed(score_demo, workdir, archive, spec, settings=settings)
    exports = workdir / "exports"
    alerts = latest_alerts(store, status="all")
    farms = store.read("farms")
    paths = [export_alerts(alerts, farms, exports / f"alerts.{ext}") for ext in ("csv", "xlsx")]
    out.print(f"alerts of the last night ({len(alerts)}): " + ", ".join(str(p) for p in paths))
    from .report import build_report

    with console.status("writing the HTML report…"):
        report_path = build_report(workdir, exports / "report.html", catalog=str(archive.catalog))
    out.print(f"report: {report_path}")
    out.print(scores_table(scores, secs))
    missed = events[~events["detected"].astype(bool)]
    for row in missed.itertuples():
        out.print(f"[yellow]missed: {row.event_id} {row.hazard} on {row.farm_id} from {row.start}")
    out.print(f"scores: {workdir / 'demo-scores.json'}")
    raise typer.Exit(code)


@app.command()
def observations(
    workdir: WorkdirOpt,
    out_path: Annotated[Path, path_option("--out", help="FILE.csv or FILE.parquet")],
) -> None:
    """Export the farm × date observations table."""
    from .observations import export_observations

    check_out(out_path)
    n = export_observations(workdir, out_path)
    out.print(f"{n} observations written to {out_path}")


@app.command()
def alerts(
    workdir: WorkdirOpt,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="csv, parquet, geojson or xlsx (default: from --out, else csv)."
        ),
    ] = None,
    out_path: Annotated[Path | None, path_option("--out", help="Output file.")] = None,
    status: Annotated[str, typer.Option(help="open (new and ongoing) or all.")] = "open",
    lang: Annotated[str, typer.Option(help="en or zh: headers, values and evidence.")] = "en",
) -> None:
    """Export the alerts of the latest run."""
    from .export import export_alerts
    from .monitor import latest_alerts
    from .store import Store

    if status not in ("open", "all"):
        raise ConfigError(f"--status {status!r}: use open or all")
    if fmt is not None and fmt not in ("csv", "parquet", "geojson", "xlsx"):
        raise ConfigError(f"--format {fmt!r}: use csv, parquet, geojson or xlsx")
    store = Store(workdir)
    if not store.exists():
        raise ConfigError(f"{workdir} holds no agrisat store; run `agrisat run` first")
    check_out(out_path)
    table = latest_alerts(store, status=status)
    target = out_path or workdir / "exports" / f"alerts.{fmt or 'csv'}"
    path = export_alerts(table, store.read("farms"), target, fmt=fmt, lang=lang)
    out.print(f"{len(table)} alert(s) written to {path}")


@app.command()
def report(
    workdir: WorkdirOpt,
    out_path: Annotated[
        Path | None, path_option("--out", help="FILE.html (default WORKDIR/exports/report.html).")
    ] = None,
    lang: Annotated[str, typer.Option(help="en or zh.")] = "en",
    catalog: Annotated[
        str | None, typer.Option(help="Catalog for image chips (default: the run's).")
    ] = None,
    top: Annotated[
        int, typer.Option(help="Alerts that get a full card with chart and chips.")
    ] = 20,
) -> None:
    """Write the self-contained HTML report (opens offline; can be mailed)."""
    from .report import build_report
    from .store import Store

    if lang not in ("en", "zh"):
        raise ConfigError(f"--lang {lang!r}: use en or zh")
    if not Store(workdir).exists():
        raise ConfigError(f"{workdir} holds no agrisat store; run `agrisat run` first")
    check_out(out_path)
    target = out_path or workdir / "exports" / "report.html"
    with console.status("writing the report…"):
        path = build_report(workdir, target, lang=lang, catalog=catalog, top_n=top)
    out.print(f"report written to {path} ({path.stat().st_size / 1e6:.1f} MB)")


def main() -> None:
    """Console-script entry point: user errors become one line on stderr and a status code."""
    try:
        # without standalone mode click *returns* the code of a ``typer.Exit`` (exit 3 of a
        # run with failed scenes) instead of raising it: pass it on to the process
        code = app(standalone_mode=False)
    except AgrisatError as exc:
        # escaped: messages name settings as "[run] batch_rows", which is not markup
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        exit_now(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        console.print("[red]aborted[/red]")
        sys.exit(130)
    except OSError as exc:
        # a full or read-only disk outside the store's own writes (exports, caches): one line
        # and a path that cannot be written (a folder, missing or forbidden) that names itself
        disk = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
        if not disk and not (exc.errno in PATH_ERRNOS and exc.filename):
            raise
        where = f": {exc.filename}" if exc.filename else ""
        message = escape(f"{exc.strerror}{where}")
        console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except Exception as exc:  # click usage errors and the like
        # typer >= 0.20 carries its own copy of click, whose exceptions are not click's: a
        # missing --book then escaped as a traceback with exit status 0. Both have ``show``.
        show = getattr(exc, "show", None)
        if callable(show) and isinstance(getattr(exc, "exit_code", None), int):
            show()
            sys.exit(2)
        raise
    exit_now(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
