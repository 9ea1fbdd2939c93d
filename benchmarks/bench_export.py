"""Alert exports at book scale: ``agrisat.export.export_alerts`` beside the plain calls.

A risk team exports every night's alerts. The plain call a user would otherwise write is
pandas' / geopandas' own writer (``DataFrame.to_excel`` with openpyxl, ``to_csv``,
``GeoDataFrame.to_file``, ``to_parquet``) on the raw table: no roll-up sheet, no colours, no
localisation. Each (approach, repeat) runs in its own subprocess, so its peak RSS is its own;
repeats alternate and the medians are printed with agrisat ÷ plain ratios.

The alerts are synthetic (seeded) on the workload's loan book (:func:`workload.make_book`):
``--alerts`` of its farms, hazards and severities cycling, an evidence sentence of the usual
length. The XLSX roll-up sheet lists every loan, borrower and region of the book.

    .venv/bin/python -W ignore benchmarks/bench_export.py --plots 100000 --alerts 5000,80000
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
FORMATS = ("xlsx", "csv", "geojson", "parquet")


def _alerts(book: Path, n: int) -> tuple[pd.DataFrame, object]:
    import geopandas as gpd

    from agrisat.alerts import ALERT_COLUMNS

    farms = gpd.read_parquet(book)
    rng = np.random.default_rng([7, n])
    pick = np.sort(rng.choice(len(farms), size=min(n, len(farms)), replace=False))
    f = farms.iloc[pick].reset_index(drop=True)
    k = np.arange(len(f))
    day = pd.Timestamp("2026-08-01")
    a = pd.DataFrame({c: [None] * len(f) for c in ALERT_COLUMNS})
    a = a.assign(
        alert_id=[f"A{i:07d}" for i in k],
        farm_id=f["farm_id"].astype(str),
        loan_id=f["loan_id"].astype(str),
        borrower_id=f["borrower_id"].astype(str),
        region=f["region"].astype(str),
        crop=f["crop"].astype(str),
        hazard=np.array(["drought", "flood", "abrupt_loss", "no_planting", "stale_data"])[k % 5],
        severity=np.array(["watch", "warning", "critical"])[k % 3],
        status=np.array(["new", "ongoing"])[k % 2],
        onset_date=day - pd.to_timedelta(k % 30, unit="D"),
        last_observed=day,
        exposure=f["exposure"].astype(float),
        evidence="NDVI 0.31 on 2026-08-01 vs 0.62 expected (-50%, robust z -4.1); below normal "
        "since 2026-07-12 over 3 clear looks; peers at 0.60 (n=40): this farm only.",
        peer_state="normal",
        score=0.5,
        value=0.31,
        expected=0.62,
        index="ndvi",
        n_looks=3,
        first_raised=day,
        last_updated=day,
        peer_median=0.60,
        peer_n=40.0,
        usual_gap=0.0,
    )
    return a, farms


def _one(approach: str, fmt: str, book: Path, n: int, out: Path) -> float:
    """Run one export in this process; returns its seconds (the table is built untimed)."""
    alerts, farms = _alerts(book, n)
    t0 = time.perf_counter()
    if approach == "agrisat":
        from agrisat.export import export_alerts

        export_alerts(alerts, farms, out, fmt=fmt)
    elif fmt == "xlsx":
        alerts.to_excel(out, index=False, engine="openpyxl")
    elif fmt == "csv":
        alerts.to_csv(out, index=False)
    elif fmt == "parquet":
        alerts.to_parquet(out, index=False)
    else:
        import geopandas as gpd

        geo = alerts.merge(farms[["farm_id", "geometry"]], on="farm_id", how="left")
        gpd.GeoDataFrame(geo, geometry="geometry", crs=farms.crs).to_crs(4326).to_file(
            out, driver="GeoJSON"
        )
    return time.perf_counter() - t0


def _run(approach: str, fmt: str, book: Path, n: int) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one export in a fresh subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"alerts.{fmt}"
        cmd = [sys.executable, "-W", "ignore", __file__, "--one", approach, "--format", fmt]
        cmd += ["--book", str(book), "--alerts", str(n), "--out", str(out)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        text = proc.stdout.read() if proc.stdout else ""
        if status != 0:
            raise RuntimeError(f"{approach} {fmt} {n} failed (status {status})")
        return float(text.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--plots", type=int, default=100_000, help="farms in the book")
    ap.add_argument("--tile", type=int, default=5490)
    ap.add_argument("--alerts", default="5000,80000", help="comma-separated alert counts")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--format", help=argparse.SUPPRESS)
    ap.add_argument("--book", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(_one(a.one, a.format, Path(a.book), int(a.alerts), Path(a.out)))
        return
    sys.path.insert(0, str(HERE))
    from workload import make_book

    book = make_book(a.tile, a.plots)
    print(f"book: {a.plots:,} farms ({book.name}); {a.repeats} alternating repeats, medians")
    print(f"{'format':8} {'alerts':>7} {'agrisat s':>10} {'plain s':>8} {'ratio':>6} "
          f"{'agrisat MB':>11} {'plain MB':>9}")  # fmt: skip
    for n in (int(x) for x in a.alerts.split(",")):
        for fmt in a.formats.split(","):
            res: dict[str, list[tuple[float, float]]] = {"agrisat": [], "plain": []}
            for _ in range(a.repeats):
                for approach in ("agrisat", "plain"):
                    res[approach].append(_run(approach, fmt, book, n))
            s = {k: statistics.median(t for t, _ in v) for k, v in res.items()}
            m = {k: max(r for _, r in v) for k, v in res.items()}
            print(f"{fmt:8} {n:7,} {s['agrisat']:10.2f} {s['plain']:8.2f} "
                  f"{s['agrisat'] / s['plain']:6.2f} {m['agrisat']:11.0f} {m['plain']:9.0f}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
