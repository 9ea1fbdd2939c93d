"""Scaling benchmark of nightly detection: ``anomaly.detect`` + ``alerts.update_alerts``.

The demo's observations (300 farms x 3 years, ``demo-out``) are replicated with renamed farm
ids (and renamed regions, so peer groups keep their demo size, as in a province of many
counties) to the requested number of farms. Each size runs in its own subprocess so the
peak RSS is that size's alone. Two consecutive nights are timed: the first without alert
history, the second continuing from the first (the steady nightly case).

    .venv/bin/python -W ignore benchmarks/bench_detect.py --farms 3000,30000
    .venv/bin/python -W ignore benchmarks/bench_detect.py --farms 3000 --save /tmp/x.pkl

``--save`` pickles the anomaly and alert tables of both nights (to compare versions).

``--mode store`` measures the nightly path of issue #5 instead
(:func:`agrisat.monitor.detect_and_update` on a store): the replicated observations up to
the second-to-last acquisition date go into a store (one part, with ledger rows), the first
night computes every look (full), then the last date's observations are committed and the
second night is incremental. Each night runs in its own subprocess, so each peak RSS is
that night's alone (the store is read from disk as a nightly job would).

    .venv/bin/python -W ignore benchmarks/bench_detect.py --mode store --farms 3000,30000

``--keep DIR`` runs the store nights in ``DIR`` (one size) and leaves the store there, to
compare two versions' stored looks, groups, farm state and alerts; ``--trace FILE`` writes
each night's RSS every 50 ms and its log lines (seconds since the night began) to
``FILE.<phase>``, to find where a night peaks. ``--arrow-pool system`` runs the nights with
``ARROW_DEFAULT_MEMORY_POOL=system`` (Arrow allocating from the C heap from the start; its
default mimalloc pool kept ~250 MB of freed pages between a 100,000-farm backfill's steps).
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def replicate(obs: pd.DataFrame, farms: pd.DataFrame, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` farms made of copies of the demo farms (ids and regions renamed per copy)."""
    k = -(-n // len(farms))
    obs_parts, farm_parts = [], []
    for i in range(k):
        f = farms.assign(
            farm_id=farms["farm_id"].astype(str) + f"-{i:04d}",
            region=farms["region"].astype(str) + f"-{i:04d}",
        )
        o = obs.assign(farm_id=obs["farm_id"].astype(str) + f"-{i:04d}")
        farm_parts.append(f)
        obs_parts.append(o)
    f_all = pd.concat(farm_parts, ignore_index=True).iloc[:n]
    o_all = pd.concat(obs_parts, ignore_index=True)
    o_all = o_all[o_all["farm_id"].isin(set(f_all["farm_id"]))].reset_index(drop=True)
    return o_all, f_all


def run_one(n: int, nights: list[str], save: str | None) -> dict[str, object]:
    from agrisat.alerts import update_alerts
    from agrisat.anomaly import detect
    from agrisat.store import Store

    store = Store(str(ROOT / "demo-out"))
    obs = store.read("observations")
    obs["date"] = pd.to_datetime(obs["date"])
    farms = pd.DataFrame(store.read("farms").drop(columns="geometry"))
    obs, farms = replicate(obs, farms, n)
    history = None
    res: dict[str, object] = {"farms": n, "obs_rows": len(obs), "nights": []}
    res["load_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    saved = []
    for night in nights:
        t0 = time.perf_counter()
        anomalies = detect(obs, farms, asof=night)
        t1 = time.perf_counter()
        history = update_alerts(history, anomalies, farms, run_date=night)
        t2 = time.perf_counter()
        res["nights"].append(  # type: ignore[union-attr]
            {
                "night": night,
                "detect_s": round(t1 - t0, 3),
                "alerts_s": round(t2 - t1, 3),
                "s_per_1000_farms": round((t2 - t0) / n * 1000, 3),
                "anomaly_rows": len(anomalies),
                "alerts": len(history),
            }
        )
        saved.append((anomalies, history))
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if save:
        with open(save, "wb") as fh:
            pickle.dump(saved, fh)
    return res


def _trace(path: str) -> None:
    """Sample this process's RSS every 50 ms into ``path`` (with the log lines, both
    stamped in seconds since the call), from a daemon thread."""
    import logging
    import os
    import threading

    t0 = time.perf_counter()
    out = open(path, "w", buffering=1)  # noqa: SIM115 (open for the process's life)

    class Stamp(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            out.write(f"{time.perf_counter() - t0:8.2f} LOG {record.getMessage()}\n")

    logging.getLogger("agrisat").addHandler(Stamp())
    logging.getLogger("agrisat").setLevel(logging.INFO)
    page = os.sysconf("SC_PAGE_SIZE")

    def sample() -> None:
        while True:
            with open("/proc/self/statm") as fh:
                rss = int(fh.read().split()[1]) * page / 2**20
            out.write(f"{time.perf_counter() - t0:8.2f} RSS {rss:.0f}\n")
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()


def store_night(
    n: int, workdir: str, phase: str, step_rows: int | None = None, trace: str | None = None
) -> dict[str, object]:
    """One night of the store path: ``phase`` "full" builds the store up to the
    second-to-last date and runs a full night; "incremental" adds the last date and runs."""
    from agrisat.config import Settings
    from agrisat.monitor import detect_and_update
    from agrisat.store import Store
    from agrisat.testing_series import feed_store

    store = Store(workdir)
    if phase == "prepare":
        demo = Store(str(ROOT / "demo-out"))
        obs = demo.read("observations")
        farms = pd.DataFrame(demo.read("farms").drop(columns="geometry"))
        obs, farms = replicate(obs, farms, n)
        days = sorted(obs["date"].astype(str).unique())
        feed_store(store, obs[obs["date"].astype(str) < days[-1]], "first")
        obs[obs["date"].astype(str) == days[-1]].to_parquet(Path(workdir) / "last.parquet")
        farms.to_parquet(Path(workdir) / "farms.parquet")
        return {"night": days[-2], "days": days[-2:]}
    farms = pd.read_parquet(Path(workdir) / "farms.parquet")
    last = pd.read_parquet(Path(workdir) / "last.parquet")
    night = str(last["date"].iloc[0])
    if phase == "full":
        night = str(store.read("ledger")["day"].max())
    else:
        feed_store(store, last, "second")
    del last
    if trace:
        _trace(f"{trace}.{phase}")
    load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    settings = Settings().replace("run", step_rows=step_rows)
    summary = detect_and_update(store, farms, run_date=night, settings=settings)
    t1 = time.perf_counter()
    return {
        "farms": n,
        "night": night,
        "phase": phase,
        "seconds": round(t1 - t0, 3),
        "s_per_1000_farms": round((t1 - t0) / n * 1000, 3),
        "alerts": summary.alerts,
        "load_rss_mb": round(load, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main_store(
    sizes: list[int],
    step_rows: int | None = None,
    keep: str | None = None,
    trace: str | None = None,
    arrow_pool: str | None = None,
) -> None:
    import contextlib
    import os
    import tempfile

    env = dict(os.environ)
    if arrow_pool:  # read by Arrow once, when it is loaded: the children's environment
        env["ARROW_DEFAULT_MEMORY_POOL"] = arrow_pool

    for n in sizes:
        ctx = contextlib.nullcontext(keep) if keep else tempfile.TemporaryDirectory()
        with ctx as tmp:
            for phase in ("prepare", "full", "incremental"):
                cmd = [sys.executable, "-W", "ignore", __file__, "--child", "--mode", "store"]
                cmd += ["--farms", str(n), "--workdir", tmp, "--phase", phase]
                if step_rows:
                    cmd += ["--step-rows", str(step_rows)]
                if trace:
                    cmd += ["--trace", f"{trace}.{n}"]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                if phase == "prepare":
                    continue
                print(
                    f"{n:>7} farms  {r['night']}  {phase:<11} {r['seconds']:8.2f} s  "
                    f"= {r['s_per_1000_farms']:6.3f} s/1000 farms  peak RSS "
                    f"{r['peak_rss_mb']:.0f} MB (inputs loaded {r['load_rss_mb']:.0f} MB)  "
                    f"alerts {r['alerts']}",
                    flush=True,
                )
                if trace and phase == "full":
                    print(_step_summary(Path(f"{trace}.{n}.{phase}")), flush=True)


def _step_summary(path: Path) -> str:
    """Seconds of the later steps of a stepped full night (between the logged commits) and
    the peak RSS while they ran, from a ``--trace`` file."""
    import itertools
    import statistics

    commits, peak, stepping = [], 0.0, True
    for line in path.read_text().splitlines():
        t, kind, *rest = line.split()
        if kind == "RSS" and stepping:
            peak = max(peak, float(rest[0]))
        elif kind == "LOG" and "committed" in line and " step " in line:
            commits.append(float(t))
        elif kind == "LOG" and commits and "looks of dates from" in line:
            stepping = False  # the last step and the alerts follow
    later = [b - a for a, b in itertools.pairwise(commits)]
    if not later:
        return "         (not stepped)"
    return (
        f"         {len(commits)} committed steps; later steps median "
        f"{statistics.median(later):.2f} s, mean {statistics.mean(later):.2f} s; "
        f"peak RSS while stepping {peak:.0f} MB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--farms", default="3000,30000", help="comma-separated farm counts")
    ap.add_argument("--nights", default="2026-08-20,2026-08-21")
    ap.add_argument("--save", default=None, help="pickle both nights' tables here (one size)")
    ap.add_argument("--mode", choices=("legacy", "store"), default="legacy")
    ap.add_argument(
        "--step-rows", type=int, default=None, help="run.step_rows (full recompute in steps)"
    )
    ap.add_argument("--keep", default=None, help="store nights in this directory (kept)")
    ap.add_argument("--trace", default=None, help="RSS and log trace file prefix")
    ap.add_argument(
        "--arrow-pool",
        choices=("mimalloc", "jemalloc", "system"),
        default=None,
        help="Arrow's memory pool in the store nights (default: Arrow's own choice)",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    a = ap.parse_args()
    sizes = [int(x) for x in a.farms.split(",")]
    nights = a.nights.split(",")
    if a.mode == "store":
        if a.child:
            print(json.dumps(store_night(sizes[0], a.workdir, a.phase, a.step_rows, a.trace)))
        else:
            if a.keep and len(sizes) > 1:
                ap.error("--keep takes one size")
            main_store(sizes, a.step_rows, a.keep, a.trace, a.arrow_pool)
        return
    if a.child:
        print(json.dumps(run_one(sizes[0], nights, a.save)))
        return
    for n in sizes:
        cmd = [sys.executable, "-W", "ignore", __file__, "--child", "--farms", str(n)]
        cmd += ["--nights", a.nights] + (["--save", a.save] if a.save else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        for nt in r["nights"]:
            print(
                f"{n:>7} farms  {nt['night']}  detect {nt['detect_s']:8.2f} s  "
                f"alerts {nt['alerts_s']:8.2f} s  = {nt['s_per_1000_farms']:6.3f} s/1000 farms  "
                f"({nt['anomaly_rows']} anomaly rows, {nt['alerts']} alerts)"
            )
        print(
            f"{n:>7} farms  peak RSS {r['peak_rss_mb']:.0f} MB (after loading the inputs "
            f"{r['load_rss_mb']:.0f} MB), {r['obs_rows']} observation rows"
        )


if __name__ == "__main__":
    main()
