"""Profile ``agrisat run --indices ndvi`` on a benchmark workload: where does the time go?

Two measurements:

1. py-spy samples the CLI process (all threads, idle threads excluded) and this script sums the
   samples per function: *self* (time on top of the stack) and *inclusive* thread-seconds, plus
   a breakdown by stage (pixel reads, SCL warp, zonal maths, weights, store, book).
2. ``--count-reads`` runs ``agrisat.pipeline.run`` in process with a counter around odc-stac's
   ``_rio_read`` and compares the number of chunk reads with the number of chunks in the cube:
   every read beyond one per (chunk, band, date) is a block decoded again.

Examples::

    .venv/bin/pip install py-spy            # for your own use, not a project dependency
    .venv/bin/python benchmarks/profile_agrisat.py --plots 20000 --dates 2
    .venv/bin/python benchmarks/profile_agrisat.py --plots 2000 --dates 2 --count-reads
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from approaches import VENV_BIN, _tmp
from workload import OUT, workload

RATE = 50  # samples per second
STAGES = {  # first matching frame (innermost first) decides the stage of a sample
    "pixel reads (GDAL decode: direct reader or odc-stac)": (
        "read (agrisat/reader.py",
        "_do_read (odc/loader/_rio.py",
        "rio_read",
    ),
    "SCL 20→10 m warp (rasterio reproject)": ("reproject (rasterio/warp.py",),
    "masks and indices (fused kernel or _prepare_block)": ("fused_sums", "_prepare_block"),
    "zonal maths (_chunk_sums, sparse products)": ("_chunk_sums", "_group_from_sums", "_product"),
    "coverage weights (exactextract)": ("coverage_weights",),
    "store / parquet": ("agrisat/store.py",),
    "book loading": ("load_book",),
    "dask scheduling": ("dask/local.py", "dask/threaded.py", "_task_spec.py"),
}


def _stage(frames: list[str]) -> str:
    for frame in reversed(frames):
        for stage, keys in STAGES.items():
            if any(k in frame for k in keys):
                return stage
    return "other"


def summarise(raw: Path, top: int = 20) -> dict:
    """Self / inclusive thread-seconds per function and per stage from py-spy raw output."""
    self_s: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n_txt = line.rpartition(" ")
        if not stack:
            continue
        n = int(n_txt)
        frames = [f for f in stack.split(";") if f]
        # py-spy raw stacks are "thread (id);outer;...;inner"; idle pool waits are not work
        if frames and "concurrent/futures/thread.py:81" in frames[-1]:
            continue
        total += n
        self_s[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
        stages[_stage(frames)] += n
    to_s = 1.0 / RATE
    return {
        "thread_seconds": round(total * to_s, 2),
        "stages": {k: round(v * to_s, 2) for k, v in stages.most_common()},
        "self": [(f, round(v * to_s, 2)) for f, v in self_s.most_common(top)],
        "inclusive": [
            (f, round(v * to_s, 2))
            for f, v in incl.most_common(top * 4)
            if any(k in f for k in ("agrisat/", "odc/", "rasterio/", "exactextract", "scipy"))
        ][:top],
    }


def pyspy(wl_book: Path, catalog: Path, out: Path) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="agrisat-prof-", dir=_tmp()))
    shutil.rmtree(workdir)
    cmd = [str(VENV_BIN / "py-spy"), "record", "--format", "raw", "-r", str(RATE), "-o", str(out)]
    cmd += ["--", str(VENV_BIN / "agrisat"), "run", "--book", str(wl_book)]
    cmd += ["--catalog", str(catalog), "--workdir", str(workdir), "--indices", "ndvi"]
    try:
        subprocess.run(cmd, check=True, capture_output=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def count_reads(book: Path, catalog: Path) -> dict:
    """Chunk reads done by agrisat vs chunks in its cube (1 read per chunk, band, date is ideal)."""
    import odc.loader._rio as rio

    from agrisat.config import Settings
    from agrisat.pipeline import run

    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    original = rio._rio_read

    def counted(src, cfg, dst_geobox, dst=None, selection=None):  # type: ignore[no-untyped-def]
        with lock:
            counts[Path(src.uri).name] += 1
        return original(src, cfg, dst_geobox, dst=dst, selection=selection)

    rio._rio_read = counted
    workdir = Path(tempfile.mkdtemp(prefix="agrisat-count-", dir=_tmp()))
    try:
        settings = Settings().replace("run", indices=("ndvi",))
        result = run(book, str(catalog), workdir, settings=settings)
    finally:
        rio._rio_read = original
        shutil.rmtree(workdir, ignore_errors=True)
    return {"reads_per_band_over_all_dates": dict(counts), "items": result.items_ingested}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tile", type=int, default=5490)
    p.add_argument("--plots", type=int, default=20000)
    p.add_argument("--dates", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count-reads", action="store_true")
    a = p.parse_args()
    wl = workload(a.tile, a.plots, a.dates, seed=a.seed)
    if a.count_reads:
        res = count_reads(wl.book, wl.catalog)
        chunks = math.ceil(a.tile / 1024) ** 2
        res["ideal_reads_per_band"] = chunks * a.dates
        print(json.dumps(res, indent=1))
        return
    raw = OUT / f"pyspy-t{a.tile}-n{a.plots}-d{a.dates}.txt"
    pyspy(wl.book, wl.catalog, raw)
    summary = summarise(raw)
    (raw.with_suffix(".json")).write_text(json.dumps(summary, indent=1))
    print(f"thread-seconds sampled: {summary['thread_seconds']}")
    print("by stage:")
    for k, v in summary["stages"].items():
        print(f"  {v:8.2f}  {k}")
    print("top self:")
    for f, v in summary["self"]:
        print(f"  {v:8.2f}  {f[:120]}")
    print("top inclusive (agrisat / odc / rasterio / exactextract / scipy frames):")
    for f, v in summary["inclusive"]:
        print(f"  {v:8.2f}  {f[:120]}")


if __name__ == "__main__":
    main()
