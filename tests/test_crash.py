"""kill -9 at points spread over a run, then a rerun: the outputs equal an undisturbed run's,
byte for byte; and a second concurrent run is refused without touching anything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shapely.geometry import box

from agrisat.testing import SyntheticFarm, make_archive

X0, Y0 = 600000.0, 4040000.0
DATES = [f"2026-{m:02d}-{d:02d}" for m in (3, 4, 5) for d in (1, 6, 11, 16, 21, 26)]
KILL_POINTS = 10


def _farm_series(base: float):  # type: ignore[no-untyped-def]
    def refl(date):  # type: ignore[no-untyped-def]
        g = min(1.0, max(0.0, (date.toordinal() - 739311) / 60))  # green-up through spring
        return {
            "red": 0.12 - 0.08 * g * base,
            "nir": 0.2 + 0.3 * g * base,
            "green": 0.08,
            "blue": 0.05,
            "swir16": 0.25 - 0.1 * g,
        }

    return refl


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    farms = [
        SyntheticFarm(
            f"F{i}",
            box(X0 + 20 + 60 * i, Y0 - 200, X0 + 70 + 60 * i, Y0 - 40),
            _farm_series(1.0 if i != 2 else 0.3),
            crop="winter_wheat",
        )
        for i in range(6)
    ]
    root = tmp_path_factory.mktemp("crash")
    arc = make_archive(root, farms, dates=DATES, shape=(40, 40))
    cfg = root / "settings.toml"
    cfg.write_text('[run]\nbatch_items = 2\nindices = ["ndvi", "ndmi"]\n')
    return arc, cfg


def _cmd(arc, cfg, workdir: Path) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        sys.executable,
        "-m",
        "agrisat",
        "run",
        "--book",
        str(arc.book),
        "--catalog",
        str(arc.catalog),
        "--workdir",
        str(workdir),
        "--end",
        DATES[-1],
        "--config",
        str(cfg),
    ]


def _outputs(workdir: Path) -> dict[str, bytes]:
    """The run's outputs as the exports write them (observations and every run's alerts)."""
    from agrisat.monitor import alert_history
    from agrisat.observations import read_observations
    from agrisat.store import Store

    return {
        "observations": read_observations(workdir).to_csv(index=False).encode(),
        "alerts": alert_history(Store(workdir)).to_csv(index=False).encode(),
        "farms": Store(workdir).read("farms").to_csv(index=False).encode(),
    }


def _wait_for_commits(manifest: Path, n: int, proc: subprocess.Popen, *, timeout: float) -> int:  # type: ignore[type-arg]
    """Wait until the store's manifest has been replaced ``n`` times (or the run ends)."""
    seen: list[bytes] = []
    deadline = time.monotonic() + timeout
    if n == 0:
        time.sleep(0.5)
        return 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            data = manifest.read_bytes()
        except FileNotFoundError:
            data = b""
        if data and (not seen or seen[-1] != data):
            seen.append(data)
            if len(seen) >= n:
                break
        time.sleep(0.002)
    return len(seen)


def test_kill_minus_9_anywhere_then_rerun_matches_clean_run(archive, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    arc, cfg = archive
    clean = tmp_path / "clean"
    t0 = time.perf_counter()
    res = subprocess.run(_cmd(arc, cfg, clean), capture_output=True, text=True, timeout=300)
    duration = time.perf_counter() - t0
    assert res.returncode == 0, res.stderr
    expected = _outputs(clean)
    assert expected["observations"].count(b"\n") == 6 * len(DATES) + 1
    assert expected["alerts"].count(b"\n") >= 2  # the stunted farm F2 raises an alert

    killed_mid_run = 0
    stages = set()
    for k in range(KILL_POINTS):
        w = tmp_path / f"k{k}"
        proc = subprocess.Popen(
            _cmd(arc, cfg, w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # kill point k: k = 0 while starting up, else just after the k-th commit of the store
        # (book, then scene batches, then alerts, then the run record), plus a jitter so some
        # kills land inside a batch's computation or a commit's writes
        commits = _wait_for_commits(w / "store" / "manifest.json", k, proc, timeout=duration * 3)
        time.sleep(0.05 * (k % 3))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed_mid_run += 1
            stages.add(commits)
        proc.wait(60)
        rerun = subprocess.run(_cmd(arc, cfg, w), capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, (k, rerun.stderr)
        assert _outputs(w) == expected, f"kill point {k} diverged"
    assert killed_mid_run >= KILL_POINTS - 1  # the kills really landed inside runs
    assert len(stages) >= KILL_POINTS - 1  # ... at different points of the run


def test_second_concurrent_run_is_refused(archive, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from agrisat.store import Store

    arc, cfg = archive
    w = tmp_path / "w"
    with Store(w).lock():  # another run holds the workdir
        res = subprocess.run(_cmd(arc, cfg, w), capture_output=True, text=True, timeout=120)
    assert res.returncode == 4
    assert "another agrisat run" in res.stderr and "Traceback" not in res.stderr
    assert not (w / "store").exists()  # nothing touched
