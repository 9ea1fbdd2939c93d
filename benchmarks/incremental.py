"""An incremental night: one new date on a workdir that holds the history.

The workload's T-date catalog is ingested with ``--end`` on its second-to-last date (the
history, untimed), then the timed night runs ``agrisat run`` with ``--end`` on the last date:
one new scene. Printed beside it: the decode floor of that one date (1 and 2 threads) and a
first run over the whole history in a fresh workdir, with agrisat's own phase seconds from the
run records (the CLI always detects: ``detect`` is the detection stage's share). Repeats alternate (night, floor) and report medians.

    .venv/bin/python -W ignore benchmarks/incremental.py --plots 100000 --dates 8

``--history DIR`` keeps the ingested history there and reuses it on the next invocation
(compare two versions of the code on one history, e.g. with ``PYTHONPATH`` pointing at a
copy of the package); ``--no-first`` skips the first run over all dates.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from approaches import VENV_BIN, _tmp, floor
from workload import OUT, workload


def _cli(book: Path, catalog: Path, workdir: Path, end: str) -> dict[str, Any]:
    cmd = [str(VENV_BIN / "agrisat"), "run", "--book", str(book), "--catalog", str(catalog)]
    cmd += ["--workdir", str(workdir), "--indices", "ndvi", "--end", end]
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    t0 = time.perf_counter()
    proc = subprocess.run([*timer, *cmd], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"agrisat CLI exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    from agrisat.store import Store

    runs = Store(workdir).read("runs")
    last = runs.iloc[-1]
    phases = {
        k.removeprefix("seconds_"): round(float(last[k]), 2)
        for k in runs.columns
        if k.startswith("seconds_")
    }
    return {
        "seconds": seconds,
        "peak_rss_mb": int(m.group(1)) / 1024 if m else float("nan"),
        "phases": phases,
        "items_ingested": int(last["items_ingested"]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tile", type=int, default=5490)
    p.add_argument("--plots", type=int, default=20000)
    p.add_argument("--dates", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--history", type=Path, default=None,
        help="keep the ingested history in this directory and reuse it when it exists "
        "(compare code versions on one history; delete it when the workload changes)",
    )  # fmt: skip
    p.add_argument("--no-first", action="store_true", help="skip the first run over all dates")
    p.add_argument(
        "--record", type=Path, default=OUT / "incremental.json",
        help="JSON file the result is recorded in (replacing the same tile and plots)",
    )  # fmt: skip
    a = p.parse_args()
    wl = workload(a.tile, a.plots, a.dates, seed=a.seed)
    days = sorted(Path(c["red"]).parent.name for c in wl.cogs)
    iso = [f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in days]
    nights: list[dict[str, Any]] = []
    floors1: list[float] = []
    floors2: list[float] = []
    base = Path(tempfile.mkdtemp(prefix="agrisat-incr-", dir=_tmp()))
    try:
        history = a.history or base / "history"
        if not history.exists() or not any(history.iterdir()):
            _cli(wl.book, wl.catalog, history, iso[-2])
        first = None if a.no_first else _cli(wl.book, wl.catalog, base / "first", iso[-1])
        for _ in range(a.repeats):
            night_dir = base / "night"
            shutil.rmtree(night_dir, ignore_errors=True)
            shutil.copytree(history, night_dir)
            nights.append(_cli(wl.book, wl.catalog, night_dir, iso[-1]))
            floors1.append(floor(wl.cogs[-1:], threads=1)["seconds"])
            floors2.append(floor(wl.cogs[-1:], threads=2)["seconds"])
    finally:
        shutil.rmtree(base, ignore_errors=True)
    night = statistics.median(n["seconds"] for n in nights)
    fl = min(statistics.median(floors1), statistics.median(floors2))
    record = {
        "tile": a.tile,
        "plots": a.plots,
        "history_dates": a.dates - 1,
        "night_s": round(night, 2),
        "night_runs": [round(n["seconds"], 2) for n in nights],
        "night_phases": nights[len(nights) // 2]["phases"],
        "night_rss_mb": round(max(n["peak_rss_mb"] for n in nights)),
        "one_date_floor_s": round(fl, 2),
        "night_over_floor": round(night / fl, 2),
        "first_run_s": round(first["seconds"], 2) if first else None,
        "first_run_phases": first["phases"] if first else None,
        "night_over_first_run": round(night / first["seconds"], 3) if first else None,
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(json.dumps(record, indent=1))
    out = a.record
    old = json.loads(out.read_text()) if out.exists() else []
    old = [r for r in old if (r["tile"], r["plots"]) != (a.tile, a.plots)]
    out.write_text(json.dumps([*old, record], indent=1))


if __name__ == "__main__":
    main()
