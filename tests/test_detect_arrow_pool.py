"""A long backfill's steps allocate Arrow buffers from the C heap; Arrow's pool is left as found.

Arrow's default pool (mimalloc in the wheels) kept the freed pages of the buffers detection
converts (issue #5: 30,000 farms' first night peaked 954 MB, 860 MB from the C heap, whose
pages ``trim_heap`` hands back). The pool is a process-wide setting: a notebook's own Arrow
work after detection must get the pool it had.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from agrisat import monitor
from agrisat.config import Settings
from agrisat.monitor import detect_and_update
from agrisat.store import Store
from agrisat.testing_series import feed_store, make_farms, make_observations


@pytest.fixture
def store(tmp_path: Path) -> tuple[Store, pd.DataFrame]:
    farms = make_farms(4)
    obs = make_observations(farms, start="2026-03-01", end="2026-05-30", seed=3)
    obs["date"] = pd.to_datetime(obs["date"]).dt.strftime("%Y-%m-%d")
    st = Store(tmp_path / "w")
    feed_store(st, obs, "r0")
    return st, farms


def test_backfill_steps_use_the_system_pool_nights_do_not(store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    st, farms = store
    seen: dict[str, list[str]] = {"steps": [], "plan": []}
    commit_prefix, plan = monitor.commit_prefix, monitor.plan

    def spy_steps(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen["steps"].append(pa.default_memory_pool().backend_name)
        return commit_prefix(*args, **kwargs)

    def spy_plan(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen["plan"].append(pa.default_memory_pool().backend_name)
        return plan(*args, **kwargs)

    monkeypatch.setattr(monitor, "commit_prefix", spy_steps)
    monkeypatch.setattr(monitor, "plan", spy_plan)
    before = pa.default_memory_pool().backend_name
    stepped = Settings().replace("run", step_rows=20, first_step_rows=20)
    detect_and_update(st, farms, run_date="2026-05-30", settings=stepped)
    assert seen["steps"] == ["system"]  # a long backfill, cut into steps
    assert seen["plan"] == [before]  # the rest of the night keeps Arrow's pool
    assert pa.default_memory_pool().backend_name == before  # restored afterwards

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("planned failure")

    monkeypatch.setattr(monitor, "commit_prefix", boom)
    with pytest.raises(RuntimeError, match="planned failure"):
        detect_and_update(st, farms, run_date="2026-05-30", settings=stepped, full=True)
    assert pa.default_memory_pool().backend_name == before  # also when a step raises
