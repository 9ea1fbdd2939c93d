"""``agrisat.pipeline.run(..., detect=False)`` on a workload, for profiling and peak RSS.

The pixel path alone (book, weights, reads, zonal maths, store) without detection, which is
measured separately. Run it under ``/usr/bin/time -v`` for peak RSS or under py-spy::

    /usr/bin/time -v .venv/bin/python benchmarks/ingest_only.py --plots 100000 --dates 2
    .venv/bin/py-spy record -f raw -o out.txt -- .venv/bin/python benchmarks/ingest_only.py
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from approaches import _tmp
from workload import workload


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tile", type=int, default=5490)
    p.add_argument("--plots", type=int, default=20000)
    p.add_argument("--dates", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-items", type=int, default=None, help="override run.batch_items")
    p.add_argument(
        "--no-direct",
        action="store_true",
        help="cube.direct_read = false: read through odc-stac (the fallback path)",
    )
    p.add_argument(
        "--no-fused",
        action="store_true",
        help="cube.fused_sums = false: full-chunk layers, then a second gather (the old path)",
    )
    p.add_argument("--keep", type=Path, default=None, help="keep the workdir here (compare stores)")
    a = p.parse_args()
    from agrisat.config import Settings
    from agrisat.pipeline import run

    wl = workload(a.tile, a.plots, a.dates, seed=a.seed)
    workdir = a.keep or Path(tempfile.mkdtemp(prefix="agrisat-ingest-", dir=_tmp()))
    try:
        t0 = time.perf_counter()
        result = run(
            wl.book,
            str(wl.catalog),
            workdir,
            settings=Settings()
            .replace(
                "run",
                indices=("ndvi",),
                **({"batch_items": a.batch_items} if a.batch_items else {}),
            )
            .replace(
                "cube", direct_read=not a.no_direct, **({"fused_sums": False} if a.no_fused else {})
            ),
            detect=False,
        )
        seconds = time.perf_counter() - t0
    finally:
        if a.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    phases = {k: round(v, 2) for k, v in result.seconds.items()}
    path = "odc-stac" if a.no_direct else "direct" if a.no_fused else "direct, fused"
    print(f"ingest only ({path}): {seconds:.2f} s, exit {result.exit_code}, phases {phases}")


if __name__ == "__main__":
    main()
