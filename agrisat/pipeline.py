"""The run: book → scenes → observations → anomalies → alerts, and its run record.

This module owns the one place that computes (through :func:`agrisat.ingest.ingest`) and the
order of the stages; each stage is a function of plain values in its own module.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from .allocator import detection_allocator
from .book import Farms, write_rejects
from .book.cache import load_book_cached
from .catalog import find_scenes, redact_url
from .catchup import META_KEY, catch_up, pending_after_change, pending_set, tombstones
from .config import Settings
from .errors import AgrisatError, ConfigError
from .indices import resolve_indices
from .ingest import ProgressFn, gdal_options, ingest
from .ledger import new_items
from .monitor import detect_and_update
from .net import install_log_redaction
from .scheduler import threads_unless_client
from .store import Store, frame_fingerprint

__all__ = ["RunResult", "check_run_settings", "gdal_options", "run"]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a run did; ``exit_code`` follows design.md (0 done, 3 done with failures)."""

    run_id: str
    workdir: Path
    end: str = ""
    catalog: str = ""
    farms: int = 0
    rejected: int = 0
    items_found: int = 0
    items_new: int = 0
    items_ingested: int = 0
    items_failed: list[str] = field(default_factory=list)
    observations_added: int = 0
    farms_unseen: int = 0
    #: farms whose history (the stored scenes) was read this run: they joined the book or
    #: were redrawn since the last run
    farms_history: int = 0
    farms_by_status: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)
    #: "full" (every look recomputed), "incremental", "none" (nothing new) or "" (no detection)
    detection: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 when everything was processed, 3 when some scenes failed (retried next run)."""
        return 3 if self.items_failed else 0


def run(
    book: str | Path | gpd.GeoDataFrame | Farms,
    catalog: str,
    workdir: str | Path,
    *,
    settings: Settings = Settings(),
    progress: ProgressFn | None = None,
    detect: bool = True,
    redetect: bool = False,
) -> RunResult:
    """Ingest the new scenes of ``catalog`` over the book's farms, then update the alerts.

    Parameters
    ----------
    book
        Loan book path, GeoDataFrame or :class:`agrisat.book.Farms`.
    catalog
        STAC API root URL, or a static catalog / collection path or URL.
    workdir
        Folder holding the store; created when missing.
    settings
        All settings; ``settings.run`` carries collection, indices, start, end.
    progress
        Optional callback after each committed batch.
    detect
        Run detection and the alert lifecycle after ingestion (the default).
    redetect
        Recompute the anomaly features of every stored look instead of only the dates with
        new observations. Detection settings, calendars and the farms' crops and regions are
        fingerprinted and a change triggers this by itself; use it after editing detection
        code or to rebuild the looks from scratch.

    Returns
    -------
    RunResult
    """
    check_run_settings(settings, detect=detect)
    settings_run = settings.run
    indices = resolve_indices(settings_run.indices)
    end = settings_run.end or dt.datetime.now(dt.UTC).date().isoformat()
    store = Store(workdir)
    result = RunResult(
        run_id=uuid.uuid4().hex[:12], workdir=Path(workdir), end=end, catalog=_where(catalog)
    )
    t_start = time.perf_counter()
    started = dt.datetime.now(dt.UTC)
    install_log_redaction()
    with store.lock():
        t0 = time.perf_counter()
        # refused before anything is written: a store of another format, an --end before
        # the nights this workdir already ran
        runs = store.read("runs")
        _check_end_after_last_run(runs, end)
        # a nightly job's book rarely changes: its checks are reused while the file is the same
        farms = load_book_cached(book, store.book_cache_dir, settings=settings.book)
        write_rejects(farms, workdir)
        result.farms, result.rejected = len(farms), len(farms.rejects)
        if not len(farms):
            raise AgrisatError(
                f"no usable farm in {farms.source}; see {Path(workdir) / 'rejects.csv'}"
            )
        # an unchanged book is not written again (100,000 farms: a fifth of a second a night)
        fingerprint = frame_fingerprint(farms.gdf)
        stored = store.manifest()
        if stored.get("meta", {}).get("farms_fingerprint") != fingerprint or not store.parts(
            "farms", stored
        ):
            pending: dict[str, Any] | None = None
            if store.parts("farms", stored):
                old = store.read("farms", manifest=stored)
                _say_redrawn(old, farms)
                # farms that joined the book or were redrawn get the stored scenes read again
                # (below); recorded with the new book, so a run killed first still does it
                pending = pending_after_change(
                    old, farms.gdf, stored.get("meta", {}), nonce=result.run_id
                )
            with store.transaction() as txn:
                txn.replace("farms", farms.gdf)
                txn.meta["farms_fingerprint"] = fingerprint
                if store.parts("farms", stored):
                    txn.meta[META_KEY] = pending
                if pending is not None:  # no row of an old polygon (redrawn, reused id) stays
                    txn.append("observations", tombstones(store, stored, pending["farms"], indices))
        result.seconds["book"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        ledger = store.read("ledger")  # read once: search window, new items, ingestion
        start = _search_start(runs, ledger, settings_run)
        items = find_scenes(
            catalog,
            bbox=farms.bounds,
            start=start,
            end=end,
            collection=settings_run.collection,
            policy=settings.net,
        )
        result.items_found = len(items)
        log.info("catalog %s: %d scenes over the book", redact_url(catalog), len(items))
        if not items:  # a wrong --collection or catalog would otherwise pass for a quiet night
            log.warning(
                "no scene in %s (collection %s) over the book's farms from %s to %s: check "
                "--catalog, --collection and the dates",
                redact_url(catalog),
                settings_run.collection or "default",
                start or "the beginning",
                end,
            )
        new, replaced = new_items(items, ledger)
        result.items_new = len(new)
        result.seconds["catalog"] = time.perf_counter() - t0

        done = ingest(
            farms,
            items,
            new,
            store,
            indices=indices,
            settings=settings,
            run_id=result.run_id,
            replaced=replaced,
            ledger=ledger,
            batch_items=settings_run.batch_items,
            progress=progress,
        )
        result.items_ingested = done.items_ingested
        result.items_failed = done.items_failed
        result.observations_added = done.observations_added
        result.farms_unseen = done.farms_unseen
        result.seconds.update(done.seconds)

        pending = pending_set(store.manifest().get("meta", {}))
        if pending is not None:
            t0 = time.perf_counter()
            back = catch_up(
                farms,
                catalog,
                store,
                pending,
                ledger=ledger,
                end=end,
                indices=indices,
                settings=settings,
                run_id=result.run_id,
                # read with the pending farms already: the book held them during ingestion
                read_tonight={i.id for i in new} - set(done.items_failed),
                progress=progress,
            )
            result.farms_history = int(farms.gdf["farm_id"].isin(pending["farms"]).sum())
            result.items_failed += back.items_failed
            result.observations_added += back.observations_added
            result.seconds["history"] = time.perf_counter() - t0

        if detect:
            t0 = time.perf_counter()
            with (
                detection_allocator(settings_run.detect_mmap_threshold_kb),
                threads_unless_client(),
            ):
                summary = detect_and_update(
                    store, farms.gdf, run_date=end, settings=settings, full=redetect
                )
            result.detection = summary.detection
            result.alerts = summary.alerts
            result.farms_by_status = summary.farms_by_status
            result.seconds["detect"] = time.perf_counter() - t0
        result.seconds["total"] = time.perf_counter() - t_start
        with store.transaction() as txn:
            txn.append("runs", _run_row(result, started))
    return result


def _where(catalog: str) -> str:
    """The catalog as recorded in the run record: URLs redacted, local paths made absolute
    (the report and the notebook read it later, from any working directory)."""
    if "://" in catalog:
        return redact_url(catalog)
    return str(Path(catalog).resolve())


def check_run_settings(
    settings: Settings, *, detect: bool = True, today: dt.date | None = None
) -> None:
    """Refuse run settings that cannot work, before a run writes anything.

    Parameters
    ----------
    settings
        The run's settings.
    detect
        Detection will run (it reads ``settings.detect.index``, which must be computed).
    today
        The current UTC date (default: now).

    Raises
    ------
    ConfigError
        ``run.end`` is after tomorrow (UTC), ``run.indices`` lack the index detection reads,
        or ``run.scheduler`` is not a scheduler spec.
    """
    from .scheduler import choose_scheduler

    run_settings = settings.run
    today = today or dt.datetime.now(dt.UTC).date()
    if run_settings.end:
        try:
            end = dt.date.fromisoformat(run_settings.end)
        except ValueError:
            raise ConfigError(f"--end {run_settings.end!r} is not a date like 2026-06-30") from None
        # one day of slack: "today" in Beijing is still yesterday in UTC for eight hours
        if end > today + dt.timedelta(days=1):
            raise ConfigError(
                f"--end {end} is in the future (today is {today} UTC): no scene can exist yet, "
                "and a later night would search from it; give today's date or leave --end out"
            )
    if detect and run_settings.indices is not None:
        index = settings.detect.index
        if index not in resolve_indices(run_settings.indices):
            raise ConfigError(
                f"--indices {','.join(run_settings.indices)}: detection reads {index}; include "
                f"it, e.g. --indices {index},ndmi"
            )
    # an address is only tried once the book is read: a malformed one is refused now
    choose_scheduler(run_settings.scheduler, cpus=1, farms=0)


def _say_redrawn(old: Any, farms: Farms) -> None:
    """Warn about farms whose polygon was redrawn since the last run (ids only: no shapes)."""
    from .book.changes import REDRAWN_SHARE, redrawn_farms

    moved = redrawn_farms(old, farms.gdf)
    if moved:
        log.warning(
            "book %s: %d farm(s) redrawn since the last run (more than %d %% of the polygon "
            "changed), e.g. %s: the stored scenes are read again over the new polygons",
            farms.source,
            len(moved),
            round(100 * REDRAWN_SHARE),
            ", ".join(moved[:10]),
        )


def _last_end(runs: pd.DataFrame) -> str | None:
    """The latest ``--end`` among the workdir's runs (None before the first)."""
    ends = [e for e in runs.get("end", pd.Series(dtype=str)).astype(str) if e]
    return max(ends) if ends else None


def _check_end_after_last_run(runs: pd.DataFrame, end: str) -> None:
    """A workdir moves forward night by night: an earlier ``--end`` is refused, saying why."""
    last = _last_end(runs)
    if last is None or end >= last:
        return
    why = (
        " (a date in the future: that run's --end was a mistake; its alerts are wrong too, so "
        "start a new workdir)"
        if dt.date.fromisoformat(last) > dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
        else ""
    )
    raise ConfigError(
        f"this workdir already ran up to {last}{why}; --end {end} is earlier. Give --end {last} "
        "or later, or replay earlier nights in a new workdir"
    )


def _search_start(runs: pd.DataFrame, ledger: pd.DataFrame, run_settings: Any) -> str | None:
    """First day to search.

    ``--start`` on a first run; later the last run's end minus the look-back, or earlier when a
    scene that failed before is older (failed scenes are retried until they succeed).
    """
    last = _last_end(runs)
    if last is None:
        return run_settings.start
    back = dt.date.fromisoformat(last) - dt.timedelta(days=int(run_settings.lookback_days))
    start = back.isoformat()
    if len(ledger):
        last = ledger.drop_duplicates("item_id", keep="last")
        failed = last.loc[last["status"] == "failed", "day"]
        if len(failed):
            start = min(start, str(failed.min()))
    return max(start, run_settings.start) if run_settings.start else start


def _run_row(result: RunResult, started: dt.datetime) -> pd.DataFrame:
    """The run record: what was seen, ingested and raised, and where the time went."""
    row: dict[str, Any] = {
        "run_id": result.run_id,
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "end": result.end,
        "catalog": result.catalog,
        "farms": result.farms,
        "rejected": result.rejected,
        "farms_unseen": result.farms_unseen,
        "items_found": result.items_found,
        "items_new": result.items_new,
        "items_ingested": result.items_ingested,
        "items_failed": len(result.items_failed),
        "failed_items": ",".join(result.items_failed),
        "observations_added": result.observations_added,
        "detection": result.detection,
        "exit_code": result.exit_code,
    }
    for status in ("ok", "cloudy", "no_data", "too_small"):
        row[f"farms_{status}"] = result.farms_by_status.get(status, 0)
    for status in ("new", "ongoing", "resolved"):
        row[f"alerts_{status}"] = result.alerts.get(status, 0)
    for stage, secs in result.seconds.items():
        row[f"seconds_{stage}"] = round(secs, 3)
    return pd.DataFrame([row])
