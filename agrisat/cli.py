"""The ``agrisat`` command line (typer). Errors a user can cause end in one line and exit 2."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
    Path, typer.Option("--workdir", "-w", help="Working folder holding the store.")
]
LogFormatOpt = Annotated[
    str, typer.Option("--log-format", help="text (default) or json (one object per line).")
]


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
    if log_format not in ("text", "json"):
        raise ConfigError(f"--log-format {log_format!r}: use text or json")
    handler: logging.Handler
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
    )


def _run_pipeline(
    book: str,
    catalog: str,
    workdir: Path,
    settings: Settings,
    *,
    crs: str | None = None,
    layer: str | None = None,
) -> int:
    from .book import load_book
    from .pipeline import run

    farms = load_book(book, crs=crs, layer=layer, settings=settings.book)

    with _progress() as bar:
        task = bar.add_task("scenes", total=None)

        def tick(done: int, total: int, desc: str) -> None:
            bar.update(task, completed=done, total=total, description=f"scenes ({desc})")

        result = run(farms, catalog, workdir, settings=settings, progress=tick)
    out.print(
        f"farms {result.farms} (rejected {result.rejected}, unseen {result.farms_unseen}); "
        f"scenes found {result.items_found}, new {result.items_new}, ingested "
        f"{result.items_ingested}, failed {len(result.items_failed)}; "
        f"observations added {result.observations_added} in {result.seconds.get('total', 0):.1f} s"
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
        str | None, typer.Option(help="Address of a dask distributed scheduler.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Settings TOML file.")] = None,
    crs: Annotated[
        str | None, typer.Option(help="CRS of a book that declares none, e.g. EPSG:4490.")
    ] = None,
    layer: Annotated[str | None, typer.Option(help="Layer of a multi-layer book file.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    log_format: LogFormatOpt = "text",
) -> None:
    """Ingest new scenes over the book's farms into WORKDIR."""
    _setup_logging(verbose, log_format)
    settings = load_settings(config)
    settings = settings.replace(
        "run",
        collection=collection,
        start=_check_date(start, "--start"),
        end=_check_date(end, "--end"),
        indices=resolve_indices(indices) if indices else None,
        scheduler=scheduler,
    )
    raise typer.Exit(_run_pipeline(book, catalog, workdir, settings, crs=crs, layer=layer))


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
        Path, typer.Option("--workdir", "-w", help="Where the demo archive and results go.")
    ] = Path("demo-out"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Build the embedded demo archive and run the monitor over it."""
    _setup_logging(verbose)
    from .demo import DemoSpec, generate_demo

    spec = DemoSpec()
    archive_dir = workdir / "archive"
    t0 = time.perf_counter()
    with console.status("writing the demo archive (COGs + static STAC catalog)…"):
        archive = generate_demo(archive_dir, spec=spec)
    out.print(f"demo archive: {archive.catalog} ({time.perf_counter() - t0:.1f} s)")
    settings = Settings().replace("run", end=str(spec.season_end))
    code = _run_pipeline(str(archive.book), str(archive.catalog), workdir, settings)
    from .store import Store

    obs = Store(workdir).read("observations")
    n_ok = int((obs["status"] == "ok").sum()) if len(obs) else 0
    out.print(
        f"observations: {len(obs)} farm-dates ({n_ok} clear) for "
        f"{obs['farm_id'].nunique() if len(obs) else 0} farms × "
        f"{obs['date'].nunique() if len(obs) else 0} dates"
    )
    out.print(
        f"export them: agrisat observations --workdir {workdir} --out {workdir / 'observations.csv'}"
    )
    raise typer.Exit(code)


@app.command()
def observations(
    workdir: WorkdirOpt,
    out_path: Annotated[Path, typer.Option("--out", help="FILE.csv or FILE.parquet")],
) -> None:
    """Export the farm × date observations table."""
    from .observations import export_observations

    n = export_observations(workdir, out_path)
    out.print(f"{n} observations written to {out_path}")


def main() -> None:
    """Console-script entry point: user errors become one line on stderr and a status code."""
    try:
        app(standalone_mode=False)
    except AgrisatError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        console.print("[red]aborted[/red]")
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        raise


__all__ = ["app", "main"]
