"""Per-farm NDVI at tile scale: agrisat vs the decode floor, exactextract, rasterstats (issue 5).

All approaches run in ONE invocation with alternating repeats (the order rotates each repeat),
on a cached synthetic workload (see workload.py). Medians, ratios and peak RSS are printed and
merged into ``benchmarks/out/results.json`` (keyed by tile, plots, dates, approach).

Examples::

    .venv/bin/python benchmarks/bench_zonal.py --quick
    .venv/bin/python benchmarks/bench_zonal.py --tile 5490 --plots 2000,20000 --dates 2 \\
        --repeats 3 --workers 1,2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time
from typing import Any

import approaches as A
from workload import OUT, workload

RESULTS = OUT / "results.json"
ALL = (
    "floor1",
    "floor2",
    "agrisat_api",
    "agrisat_cli",
    "agrisat_tree",
    "exactextract",
    "rasterstats",
    "mask",
)
LABELS = {
    "floor1": "decode floor, 1 thread (red+nir+scl, NDVI)",
    "floor2": "decode floor, 2 threads",
    "agrisat_api": "agrisat pipeline.run (in process)",
    "agrisat_cli": "agrisat run CLI (whole process)",
    "agrisat_tree": "agrisat run CLI, RSS summed over its processes",
    "exactextract": "exactextract per date (raster-sequential)",
    "rasterstats": "rasterstats on NDVI COG [extrapolated]",
    "mask": "naive rasterio.mask loop [extrapolated]",
}


def _one(name: str, wl: Any, subset: int) -> dict[str, Any]:
    if name == "floor1":
        return A.floor(wl.cogs, threads=1)
    if name == "floor2":
        return A.floor(wl.cogs, threads=2)
    if name == "agrisat_api":
        return A.agrisat_api(wl.book, wl.catalog)
    if name == "agrisat_cli":
        return A.agrisat_cli(wl.book, wl.catalog, end=A.last_day(wl.cogs))
    if name == "agrisat_tree":
        return cli_tree(wl.book, wl.catalog, end=A.last_day(wl.cogs))
    if name == "exactextract":
        return A.exactextract_per_date(wl.book, wl.cogs, wl.item_ids)
    if name == "rasterstats":
        return A.rasterstats_subset(wl.book, wl.ndvi_cog, n=subset, plots=wl.plots, dates=wl.dates)
    if name == "mask":
        return A.mask_loop_subset(wl.book, wl.ndvi_cog, n=subset, plots=wl.plots, dates=wl.dates)
    raise SystemExit(f"unknown approach {name}")


def bench_case(
    tile: int, plots: int, dates: int, *, names: list[str], repeats: int, subset: int, seed: int
) -> list[dict[str, Any]]:
    """All approaches on one (tile, plots, dates), alternating; returns one record per approach."""
    t0 = time.perf_counter()
    wl = workload(tile, plots, dates, seed=seed)
    print(
        f"\n== tile {tile}², {plots:,} plots, {dates} date(s)  (workload ready in "
        f"{time.perf_counter() - t0:.1f} s)",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    last: dict[str, Any] = {}
    for r, name in A.iter_rotated(names, repeats):
        m = _one(name, wl, subset)
        print(
            f"  rep {r + 1} {name:13s} {m['seconds']:9.2f} s"
            + (f"  rss {m['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in m else "")
            + (f"  tree {m['tree_rss_mb']:.0f} MB" if "tree_rss_mb" in m else "")
            + (f"  weights {m['phases'].get('weights', 0):.2f} s" if "tree_rss_mb" in m else ""),
            flush=True,
        )
        for key in ("observations", "table"):
            if key in m:
                last[name] = m.pop(key)
        runs[name].append(m)
    agreement = None
    if "agrisat_api" in last and "exactextract" in last:
        agreement = A.compare(last["agrisat_api"], last["exactextract"])
    records = []
    for name, ms in runs.items():
        secs = [m["seconds"] for m in ms]
        rec: dict[str, Any] = {
            "tile": tile,
            "plots": plots,
            "dates": dates,
            "approach": name,
            "label": LABELS[name],
            "median_s": statistics.median(secs),
            "runs_s": secs,
            "extrapolated": name in ("rasterstats", "mask"),
        }
        if name in ("rasterstats", "mask"):
            rec["from_plots"] = ms[0]["from_plots"]
        if "peak_rss_mb" in ms[0]:
            rec["peak_rss_mb"] = max(m["peak_rss_mb"] for m in ms)
        for key in ("tree_rss_mb", "tree_pss_mb", "processes"):
            if key in ms[0]:
                rec[key] = max(m[key] for m in ms)
        if "phases" in ms[0]:
            rec["phases"] = ms[len(ms) // 2]["phases"]
        if name == "agrisat_api" and agreement:
            rec["agreement_vs_exactextract"] = agreement
        records.append(rec)
    return records


def cli_tree(book: Any, catalog: Any, *, end: str, interval: float = 0.05) -> dict[str, Any]:
    """``agrisat run --indices ndvi`` with the memory of the whole process tree sampled.

    Besides the CLI's own peak RSS (``/usr/bin/time``: the largest single process), every
    ``interval`` seconds the RSS (and every fifth time the PSS) of the CLI and all its
    descendants (e.g. the weights worker processes) are summed; the maxima of the sums are returned with the run record's
    phases (``seconds_*``: book, weights, observe, detect, ...). RSS double-counts pages the
    processes share, PSS splits them.
    """
    import re
    import shutil
    import subprocess
    import tempfile
    import threading
    from pathlib import Path

    import psutil

    from agrisat.store import Store

    workdir = Path(tempfile.mkdtemp(prefix="agrisat-tree-", dir=A._tmp()))
    shutil.rmtree(workdir)  # a fresh, missing workdir, as on a first night
    cmd = [str(A.VENV_BIN / "agrisat"), "run", "--book", str(book), "--catalog", str(catalog)]
    cmd += ["--workdir", str(workdir), "--indices", "ndvi", "--end", end]
    top = {"rss": 0, "pss": 0, "n": 0}
    done = threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["/usr/bin/time", "-v", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def sample() -> None:
        root = psutil.Process(proc.pid)
        k = 0
        while not done.is_set():
            rss = pss = n = 0
            try:
                kids = root.children(recursive=True)  # the CLI and its workers, not time(1)
            except psutil.Error:
                kids = []
            for c in kids:
                try:
                    rss += c.memory_info().rss
                    # PSS reads smaps (costly: a third of a core at every 20 ms): 1 in 5
                    pss += c.memory_full_info().pss if k % 5 == 0 else 0
                except psutil.Error:
                    continue
                n += 1
            top["rss"], top["pss"] = max(top["rss"], rss), max(top["pss"], pss)
            top["n"] = max(top["n"], n)
            k += 1
            done.wait(interval)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        out, err = proc.communicate()
        seconds = time.perf_counter() - t0
        done.set()
        th.join()
        if proc.returncode not in (0, 3):
            raise RuntimeError(f"agrisat CLI exited {proc.returncode}:\n{err[-3000:]}")
        runs = Store(workdir).read("runs")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    phases = {
        c.removeprefix("seconds_"): float(runs[c].iloc[-1])
        for c in runs.columns
        if c.startswith("seconds_")
    }
    return {
        "seconds": seconds,
        "peak_rss_mb": int(m.group(1)) / 1024 if m else float("nan"),
        "tree_rss_mb": top["rss"] / 2**20,
        "tree_pss_mb": top["pss"] / 2**20,
        "processes": top["n"],
        "phases": phases,
        "stdout": out.strip()[-400:],
    }


def bench_scaleout(
    tile: int, plots: int, dates: int, *, workers: list[int], repeats: int, seed: int
) -> list[dict[str, Any]]:
    """agrisat CLI with --scheduler on a real local cluster of k single-thread workers."""
    from scaleout import local_cluster

    wl = workload(tile, plots, dates, seed=seed)
    print(
        f"\n== scale-out: tile {tile}², {plots:,} plots, {dates} date(s), workers {workers}",
        flush=True,
    )
    secs: dict[int, list[float]] = {k: [] for k in workers}
    phases: dict[int, list[dict[str, float]]] = {k: [] for k in workers}
    for r in range(repeats):
        order = workers[r % len(workers) :] + workers[: r % len(workers)]
        for k in order:
            with local_cluster(k) as address:
                m = A.agrisat_cli(wl.book, wl.catalog, end=A.last_day(wl.cogs), scheduler=address)
            secs[k].append(m["seconds"])
            phases[k].append(m["phases"])
            shown = "  ".join(f"{p} {v:.2f}" for p, v in m["phases"].items())
            print(f"  rep {r + 1} workers={k} {m['seconds']:9.2f} s   {shown}", flush=True)
    # the whole process holds serial work (start-up, book, detection on the client); the
    # phases the cluster runs (weights on a cluster, observe) show what the workers scale
    base = min(workers)
    for name in ("weights", "observe", "detect", "total"):
        med = {k: statistics.median(p.get(name, float("nan")) for p in phases[k]) for k in workers}
        ups = "  ".join(f"{k} workers {med[k]:.2f} s ({med[base] / med[k]:.2f}x)" for k in workers)
        print(f"  phase {name:<8} {ups}", flush=True)
    return [
        {
            "tile": tile,
            "plots": plots,
            "dates": dates,
            "approach": f"agrisat_cli_dask{k}",
            "label": f"agrisat run CLI --scheduler, {k} × 1-thread worker(s)",
            "median_s": statistics.median(v),
            "runs_s": v,
            "phases": phases[k],
            "extrapolated": False,
        }
        for k, v in secs.items()
    ]


def _save(records: list[dict[str, Any]]) -> None:
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"records": []}
    keys = {(r["tile"], r["plots"], r["dates"], r["approach"]) for r in records}
    kept = [
        r for r in old["records"] if (r["tile"], r["plots"], r["dates"], r["approach"]) not in keys
    ]
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for r in records:
        r["measured"] = stamp
        r["cpus"] = os.cpu_count()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"records": kept + records}, indent=1))


def _report(records: list[dict[str, Any]]) -> None:
    by = {r["approach"]: r for r in records}
    floors = [by[k] for k in ("floor1", "floor2") if k in by]
    # the floor is the faster of the two (extra threads do not always help a local decode)
    floor = min(floors, key=lambda r: r["median_s"]) if floors else None
    ee = by.get("exactextract")
    print(f"\n  {'approach':46s} {'median s':>9s} {'÷floor':>7s} {'÷agrisat':>9s} {'RSS MB':>7s}")
    agr = by.get("agrisat_cli") or by.get("agrisat_api")
    for r in records:
        f = r["median_s"] / floor["median_s"] if floor else float("nan")
        a = r["median_s"] / agr["median_s"] if agr else float("nan")
        rss = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else ""
        if "tree_rss_mb" in r:  # the process tree's sum beside the CLI's own peak
            rss += f" (tree {r['tree_rss_mb']:.0f} RSS / {r['tree_pss_mb']:.0f} PSS)"
        print(f"  {r['label']:46s} {r['median_s']:9.2f} {f:7.2f} {a:9.2f} {rss:>7s}")
    if agr and ee:
        print(f"  exactextract / agrisat = {ee['median_s'] / agr['median_s']:.2f} (target ≥ 10)")
    if agr and floor:
        print(f"  agrisat / floor = {agr['median_s'] / floor['median_s']:.1f} (target ≤ 1.5)")
    for r in records:
        if "agreement_vs_exactextract" in r:
            print("  agreement:", json.dumps(r["agreement_vs_exactextract"]))
        if "phases" in r:
            print("  agrisat phases (s):", r["phases"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tile", type=int, default=5490, help="5490 or 10980 pixels")
    p.add_argument("--plots", default="2000,20000", help="comma list of plot counts")
    p.add_argument("--dates", default="2", help="comma list of date counts T")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", default="", help="scale-out worker counts, e.g. 1,2 (empty: skip)")
    p.add_argument(
        "--scaleout-plots",
        type=int,
        default=None,
        help="plots for the scale-out run (default: the largest --plots)",
    )
    p.add_argument("--approaches", default=",".join(ALL), help=f"subset of {','.join(ALL)}")
    p.add_argument("--subset", type=int, default=500, help="plots measured for extrapolated rows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 500 plots, 1 date, 1 repeat, no scale-out, not saved",
    )
    a = p.parse_args()
    names = [n for n in a.approaches.split(",") if n]
    plots = [int(v) for v in a.plots.split(",")]
    dates = [int(v) for v in a.dates.split(",")]
    repeats, workers = a.repeats, [int(v) for v in a.workers.split(",") if v]
    if a.quick:
        plots, dates, repeats, workers, a.subset = [500], [1], 1, [], 100
    for t in dates:
        for n in plots:
            recs = bench_case(
                a.tile, n, t, names=names, repeats=repeats, subset=a.subset, seed=a.seed
            )
            _report(recs)
            if not a.quick:
                _save(recs)
    if workers:
        for t in dates:
            n = a.scaleout_plots or max(plots)
            recs = bench_scaleout(a.tile, n, t, workers=workers, repeats=repeats, seed=a.seed)
            base = recs[0]["median_s"]
            for r in recs:
                print(
                    f"  {r['label']:50s} {r['median_s']:8.2f} s  speed-up "
                    f"{base / r['median_s']:.2f}×"
                )
            if not a.quick:
                _save(recs)


if __name__ == "__main__":
    main()
