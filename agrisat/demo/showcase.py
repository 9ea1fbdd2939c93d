"""``agrisat demo``: generate (or reuse) the archive, run the monitor, score it night by night.

Scoring steps through the monitored season one night at a time (:func:`agrisat.scoring.
nightly_replay`): each night sees exactly the scenes acquired up to it, which is what a nightly
``agrisat run --end NIGHT`` produces because ingestion is by acquisition date and detection
depends only on looks up to the night.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Settings
from ..errors import ConfigError
from ..store import Store, atomic_write_text
from .archive import generate_demo
from .spec import DemoArchive, DemoSpec

__all__ = [
    "DemoOutcome",
    "check_demo_workdir",
    "prepare_archive",
    "score_demo",
    "scores_table",
]


@dataclass
class DemoOutcome:
    """Where the demo's results are and how they score."""

    archive: DemoArchive
    generated: bool
    seconds: dict[str, float] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    events: pd.DataFrame | None = None


def check_demo_workdir(workdir: Path) -> None:
    """Refuse a workdir the demo did not make: the demo replaces its farms and alert history.

    Missing or empty folders are fine, and so is a workdir holding ``archive/demo.json`` (the
    demo's marker, written with its archive).

    Raises
    ------
    ConfigError
        ``workdir`` is a file, or a non-empty folder without the demo's marker.
    """
    if not workdir.exists():
        return
    if not workdir.is_dir():
        raise ConfigError(f"--workdir {workdir} is a file; give a folder for the demo")
    if (workdir / "archive" / "demo.json").exists():
        return
    # only an archive folder: a first demo interrupted while writing it (the marker comes last)
    if {p.name for p in workdir.iterdir()} <= {"archive"}:
        return
    what = "an agrisat store" if (workdir / "store").exists() else "files"
    raise ConfigError(
        f"--workdir {workdir} holds {what} not made by the demo, which would replace its farms "
        "and alert history; give the demo an empty or new folder (default demo-out)"
    )


def prepare_archive(workdir: Path, spec: DemoSpec) -> tuple[DemoArchive, bool]:
    """The demo archive under ``workdir/archive``: reused when it was made from the same spec."""
    root = workdir / "archive"
    meta = root / "demo.json"
    if meta.exists():
        try:
            same = json.loads(meta.read_text())["spec"] == json.loads(json.dumps(spec.to_json()))
        except (OSError, ValueError, KeyError):
            same = False
        if same and (root / "catalog" / "catalog.json").exists():
            return (
                DemoArchive(
                    root=root,
                    catalog=root / "catalog" / "catalog.json",
                    book=root / "book.geojson",
                    truth=root / "truth.csv",
                    meta=meta,
                ),
                False,
            )
    return generate_demo(root, spec=spec), True


def score_demo(
    workdir: Path, archive: DemoArchive, spec: DemoSpec, *, settings: Settings = Settings()
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Replay the season night by night over the workdir's observations and score the alerts.

    The replayed nights become the workdir's alert history (what nightly runs would have
    stored), so the report and the notebook show every event, not only the last night's.
    Writes ``workdir/demo-scores.json`` and returns (scores, per-event table).
    """
    from ..alerts import ALERT_COLUMNS
    from ..scoring import nightly_replay, score_alerts

    store = Store(workdir)
    obs = store.read("observations")
    obs = obs.assign(date=pd.to_datetime(obs["date"]))
    farms = store.read("farms")
    truth = pd.read_csv(archive.truth)
    runs = nightly_replay(
        obs,
        farms,
        start=str(spec.season_start),
        end=str(spec.season_end),
        settings=settings.detect,
        alert_settings=settings.alerts,
    )
    if len(runs):
        nights = runs.assign(run_date=pd.to_datetime(runs["run_date"]).dt.strftime("%Y-%m-%d"))
        with store.lock(), store.transaction() as txn:
            txn.replace("alerts", nights[["run_date", *ALERT_COLUMNS]].reset_index(drop=True))
    scores = score_alerts(
        runs,
        truth,
        farms=farms,
        season_start=str(spec.season_start),
        season_end=str(spec.season_end),
        observations=obs,
    )
    events = scores.pop("events")
    plain = {k: v for k, v in scores.items() if not isinstance(v, pd.DataFrame)}
    atomic_write_text(workdir / "demo-scores.json", json.dumps(plain, indent=1, default=str))
    return plain, events


def scores_table(scores: dict[str, Any], seconds: float) -> Any:
    """The demo's detection scores against their targets, as a rich table to print."""
    from rich.table import Table

    targets = {
        "recall": ("event recall", ">= 0.95"),
        "hazard_recall": ("hazard-correct recall", ">= 0.85"),
        "false_per_100_farm_seasons": ("false alerts / 100 farm-seasons", "<= 0.5"),
        "stale_per_100_farm_seasons": ("stale-data alerts / 100 farm-seasons", "(apart)"),
        "median_delay_days": ("median delay, days", "<= 7"),
        "p90_delay_days": ("p90 delay, days", "<= 15"),
        # the same delays split at the farm's first clear look where the event can show
        # (agrisat.scoring): the floor a perfect detector would score, and what detection
        # took from there (no target of their own)
        "median_wait_visible_days": ("  floor: start -> first look it shows (median)", ""),
        "p90_wait_visible_days": ("  floor: start -> first look it shows (p90)", ""),
        "median_delay_after_visible_days": ("  detection after that look (median)", ""),
        "p90_delay_after_visible_days": ("  detection after that look (p90)", ""),
        "max_ids_per_event": ("alert ids per event (max)", "1"),
    }
    table = Table(
        title=f"demo detection quality ({scores.get('n_events')} events, {seconds:.0f} s replay)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    for key, (label, target) in targets.items():
        if key not in scores:
            continue
        value = scores.get(key)
        text = f"{value:.3g}" if isinstance(value, float) else str(value)
        table.add_row(label, text, target)
    return table


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Call ``fn`` and return (result, seconds)."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
