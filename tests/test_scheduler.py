"""Where the dask work goes: the choice rule, and a real local cluster of worker processes
giving the same observations as local threads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agrisat.config import Settings
from agrisat.errors import ConfigError
from agrisat.observations import read_observations
from agrisat.pipeline import run
from agrisat.scheduler import SchedulerChoice, available_cpus, choose_scheduler
from agrisat.testing import strip_archive

X0, Y0 = 600000.0, 4040000.0


def test_auto_uses_threads_on_few_cpus_or_a_small_book() -> None:
    assert choose_scheduler(None, cpus=2, farms=1_000_000).kind == "threads"
    assert choose_scheduler("auto", cpus=16, farms=20_000).kind == "threads"
    assert choose_scheduler(None, cpus=16, farms=100_000) == SchedulerChoice("local", workers=16)
    # the thresholds are settings
    assert choose_scheduler(None, cpus=4, farms=10, min_cpus=4, min_farms=10).kind == "local"


def test_explicit_choices() -> None:
    assert choose_scheduler("threads", cpus=16, farms=10**6).kind == "threads"
    assert choose_scheduler("local", cpus=6, farms=1) == SchedulerChoice("local", workers=6)
    assert choose_scheduler("local:3", cpus=6, farms=1) == SchedulerChoice("local", workers=3)
    addr = "tcp://10.0.0.5:8786"
    assert choose_scheduler(addr, cpus=2, farms=1) == SchedulerChoice("address", address=addr)
    for bad in ("local:0", "local:x", "local:-2"):
        with pytest.raises(ConfigError, match="local:N"):
            choose_scheduler(bad, cpus=2, farms=1)
    assert available_cpus() >= 1


def test_local_cluster_run_equals_threaded_run(tmp_path: Path) -> None:
    dates = [f"2026-05-{d:02d}" for d in (1, 6, 11, 16)]
    cloud = {dates[1]: np.full((20, 20), 9, "uint8")}
    arc = strip_archive(tmp_path / "a", dates=dates, scl=cloud)
    local = run(arc.book, str(arc.catalog), tmp_path / "threads", detect=False)
    procs = run(
        arc.book,
        str(arc.catalog),
        tmp_path / "procs",
        detect=False,
        settings=Settings().replace("run", scheduler="local:2"),
    )
    assert procs.items_ingested == local.items_ingested == len(dates)
    a, b = read_observations(tmp_path / "threads"), read_observations(tmp_path / "procs")
    assert len(a) == 4 * len(dates) and (a["status"] == "cloudy").sum() == 4
    pd.testing.assert_frame_equal(a, b)
