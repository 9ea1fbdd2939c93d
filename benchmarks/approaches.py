"""The approaches compared by bench_zonal.py, each a function returning a measurement dict.

Every function does the whole job of its approach for one workload (all plots, all dates) and
returns at least ``{"seconds": wall}``; the extrapolated baselines also say from how many plots.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
TMP = Path(__file__).resolve().parent / "out" / "tmp"
SCALE, OFFSET = np.float32(1e-4), np.float32(-0.1)  # Earth Search v1 declared numbers
NOT_CLEAR = np.array([0, 1, 3, 8, 9, 10, 11], dtype=np.uint8)
# the same GDAL settings as agrisat.pipeline.gdal_options for local files
GDAL_ENV = {
    "GDAL_CACHEMAX": 256,
    "GDAL_NUM_THREADS": 1,
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
}


def _ndvi_block(red: np.ndarray, nir: np.ndarray, scl20: np.ndarray) -> np.ndarray:
    """NDVI of a block (float32, NaN where invalid or SCL says not clear), as agrisat computes it."""
    scl = np.repeat(np.repeat(scl20, 2, axis=0), 2, axis=1)[: red.shape[0], : red.shape[1]]
    r = red.astype(np.float32) * SCALE + OFFSET
    n = nir.astype(np.float32) * SCALE + OFFSET
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (n - r) / (n + r)
    ok = (red != 0) & (nir != 0) & ~np.isin(scl, NOT_CLEAR) & (ndvi >= -1) & (ndvi <= 1)
    return np.where(ok, ndvi, np.float32(np.nan))


def ndvi_of_date(cogs: dict[str, Path]) -> tuple[np.ndarray, Any]:
    """Full-tile NDVI of one date (whole-array reads), and its affine transform."""
    with rasterio.Env(**GDAL_ENV):
        with rasterio.open(cogs["red"]) as r, rasterio.open(cogs["nir"]) as n:
            red, nir, transform = r.read(1), n.read(1), r.transform
        with rasterio.open(cogs["scl"]) as s:
            scl = s.read(1)
    return _ndvi_block(red, nir, scl), transform


# --------------------------------------------------------------------------- (a) decode floor


def _windows(scl_path: Path) -> list[Window]:
    """The SCL file's internal blocks (512² at 20 m = 1024² at 10 m): each block decoded once."""
    with rasterio.open(scl_path) as s:
        return [w for _, w in s.block_windows(1)]


def floor(cogs: tuple[dict[str, Path], ...], *, threads: int = 1) -> dict[str, Any]:
    """Read + decode red, nir, scl of every date block by block and compute the masked NDVI."""
    local = threading.local()

    def work(job: tuple[int, Window]) -> float:
        d, w = job
        handles = getattr(local, "handles", None)
        if handles is None:
            handles = local.handles = {}
        out = []
        for key in ("red", "nir", "scl"):
            path = cogs[d][key]
            if path not in handles:
                handles[path] = rasterio.open(path)
            src = handles[path]
            if key == "scl":
                out.append(src.read(1, window=w))
            else:
                w10 = Window(w.col_off * 2, w.row_off * 2, w.width * 2, w.height * 2)
                out.append(
                    src.read(1, window=w10.intersection(Window(0, 0, src.width, src.height)))
                )
        red, nir, scl = out
        return float(np.isfinite(_ndvi_block(red, nir, scl)).sum())

    jobs = [(d, w) for d in range(len(cogs)) for w in _windows(cogs[d]["scl"])]
    t0 = time.perf_counter()
    with rasterio.Env(**GDAL_ENV):
        if threads == 1:
            clear = sum(work(j) for j in jobs)
        else:
            with ThreadPoolExecutor(threads) as pool:
                clear = sum(pool.map(work, jobs))
    return {"seconds": time.perf_counter() - t0, "clear_pixels": clear}


# --------------------------------------------------------------------------- (b) agrisat


def agrisat_api(book: Path, catalog: Path) -> dict[str, Any]:
    """``agrisat.pipeline.run`` in this process on a fresh workdir (ndvi only)."""
    from agrisat.config import Settings
    from agrisat.observations import read_observations
    from agrisat.pipeline import run

    workdir = Path(tempfile.mkdtemp(prefix="agrisat-api-", dir=_tmp()))
    try:
        settings = Settings().replace("run", indices=("ndvi",))
        # the ingest alone (the CLI row times ingest and detection)
        t0 = time.perf_counter()
        result = run(book, str(catalog), workdir, settings=settings, detect=False)
        seconds = time.perf_counter() - t0
        if result.exit_code != 0:
            raise RuntimeError(f"agrisat run failed on {result.items_failed}")
        obs = read_observations(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    phases = {k: round(v, 3) for k, v in result.seconds.items()}
    return {"seconds": seconds, "phases": phases, "observations": obs}


def last_day(cogs: Any) -> str:
    """The workload's last acquisition day (YYYY-MM-DD), from its COG folders."""
    d = max(Path(c["red"]).parent.name for c in cogs)
    return f"{d[:4]}-{d[4:6]}-{d[6:]}"


def agrisat_cli(
    book: Path,
    catalog: Path,
    *,
    end: str | None = None,
    scheduler: str | None = None,
    wrap: list[str] | None = None,
) -> dict[str, Any]:
    """``agrisat run --indices ndvi`` as a subprocess: whole-process wall time and peak RSS.

    ``end`` dates the run (the night of the last scene, as a nightly job would be): without
    it the run is dated today and, months after the workload's scenes, raises a stale-data
    alert on every farm, which times the alert lifecycle rather than the pixel path.
    """
    workdir = Path(tempfile.mkdtemp(prefix="agrisat-cli-", dir=_tmp()))
    shutil.rmtree(workdir)  # a fresh, missing workdir, as on a first night
    cmd = [str(VENV_BIN / "agrisat"), "run", "--book", str(book), "--catalog", str(catalog)]
    cmd += ["--workdir", str(workdir), "--indices", "ndvi"]
    if end:
        cmd += ["--end", end]
    if scheduler:
        cmd += ["--scheduler", scheduler]
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    try:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*(wrap or []), *timer, *cmd], capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - t0
        phases = _phases(workdir) if proc.returncode == 0 else {}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"agrisat CLI exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    rss_mb = int(m.group(1)) / 1024 if m else float("nan")
    return {
        "seconds": seconds,
        "peak_rss_mb": rss_mb,
        "phases": phases,
        "stdout": proc.stdout.strip()[-400:],
    }


def _phases(workdir: Path) -> dict[str, float]:
    """The run record's phase seconds (``book``, ``weights``, ``observe``, ``detect``...)."""
    from agrisat.store import Store

    runs = Store(workdir).read("runs")
    last = runs.iloc[-1]
    return {
        k.removeprefix("seconds_"): round(float(last[k]), 2)
        for k in runs.columns
        if k.startswith("seconds_")
    }


def _tmp() -> Path:
    TMP.mkdir(parents=True, exist_ok=True)
    return TMP


# --------------------------------------------------------------------------- (c) exactextract


def exactextract_per_date(
    book: Path, cogs: tuple[dict[str, Path], ...], item_ids: tuple[str, ...]
) -> dict[str, Any]:
    """What a skilled user writes: per date, NDVI in memory → exact_extract raster-sequential."""
    from exactextract import exact_extract
    from exactextract.raster import NumPyRasterSource

    t0 = time.perf_counter()
    plots = gpd.read_parquet(book)[["farm_id", "geometry"]]
    wkt = plots.crs.to_wkt()
    frames = []
    for d, paths in enumerate(cogs):
        ndvi, tr = ndvi_of_date(paths)
        h, w = ndvi.shape
        src = NumPyRasterSource(
            ndvi, tr.c, tr.f + h * tr.e, tr.c + w * tr.a, tr.f, srs_wkt=wkt, name="ndvi"
        )
        df = exact_extract(
            src,
            plots,
            ["mean", "count", "stdev"],
            include_cols=["farm_id"],
            output="pandas",
            strategy="raster-sequential",
        )
        df["item_id"] = item_ids[d]
        frames.append(df)
        del ndvi, src
    out = pd.concat(frames, ignore_index=True)
    path = _tmp() / f"exactextract-{os.getpid()}.parquet"
    out.to_parquet(path)  # the user's pipeline stores its table too
    seconds = time.perf_counter() - t0
    path.unlink()
    return {"seconds": seconds, "table": out}


# ------------------------------------------------------ (d) rasterstats, (e) rasterio.mask loop


def _subset(book: Path, n: int, seed: int = 7) -> gpd.GeoDataFrame:
    plots = gpd.read_parquet(book)
    return plots.sample(min(n, len(plots)), random_state=seed)


def rasterstats_subset(book: Path, ndvi_cog: Path, *, n: int, plots: int, dates: int) -> dict:
    """rasterstats on the NDVI COG for ``n`` plots, extrapolated linearly to plots × dates."""
    from rasterstats import zonal_stats

    sub = _subset(book, n)
    t0 = time.perf_counter()
    with rasterio.Env(**GDAL_ENV):
        zonal_stats(list(sub.geometry), str(ndvi_cog), stats=["mean", "count", "std"])
    sec = time.perf_counter() - t0
    return {"seconds": sec / len(sub) * plots * dates, "measured_s": sec, "from_plots": len(sub)}


def mask_loop_subset(book: Path, ndvi_cog: Path, *, n: int, plots: int, dates: int) -> dict:
    """A naive ``rasterio.mask`` loop per plot for ``n`` plots, extrapolated linearly."""
    from rasterio.mask import mask

    sub = _subset(book, n)
    t0 = time.perf_counter()
    with rasterio.Env(**GDAL_ENV), rasterio.open(ndvi_cog) as src:
        for geom in sub.geometry:
            arr, _ = mask(src, [geom], crop=True, filled=False)
            vals = arr.compressed()
            vals = vals[np.isfinite(vals)]
            if vals.size:
                vals.mean(), vals.std()
    sec = time.perf_counter() - t0
    return {"seconds": sec / len(sub) * plots * dates, "measured_s": sec, "from_plots": len(sub)}


# --------------------------------------------------------------------------- agreement


def compare(obs: pd.DataFrame, ee: pd.DataFrame) -> dict[str, Any]:
    """agrisat ndvi_mean/std/clear_pixels vs exactextract mean/stdev/count per farm and item."""
    m = obs.merge(ee, on=["farm_id", "item_id"], how="outer", indicator=True)
    both = m[m["_merge"] == "both"]
    a_has = np.isfinite(both["ndvi_mean"].astype(float))
    e_has = np.isfinite(both["mean"].astype(float)) & (both["count"] > 0)

    def stats(rows: pd.DataFrame) -> dict[str, float]:
        d = (rows["ndvi_mean"].astype(float) - rows["mean"].astype(float)).abs()
        s = (rows["ndvi_std"].astype(float) - rows["stdev"].astype(float)).abs()
        c = (rows["clear_pixels"].astype(float) - rows["count"].astype(float)).abs()
        if not len(rows):
            return {"rows": 0}
        return {
            "rows": len(rows),
            "mean_abs_diff_p99": float(np.quantile(d, 0.99)),
            "mean_abs_diff_max": float(d.max()),
            "std_abs_diff_p99": float(np.quantile(s, 0.99)),
            "count_abs_diff_p99": float(np.quantile(c, 0.99)),
        }

    clear = both[a_has & e_has & (both["clear_fraction"].astype(float) >= 0.999999)]
    any_clear = both[a_has & e_has]
    ok = both[a_has & e_has & (both["status"] == "ok")]
    return {
        "only_agrisat": int((m["_merge"] == "left_only").sum()),
        "only_exactextract": int((m["_merge"] == "right_only").sum()),
        "value_in_one_only": int((a_has != e_has).sum()),
        "all_clear": stats(clear),
        "status_ok": stats(ok),
        "any_clear_pixel": stats(any_clear),
    }


def iter_rotated(names: list[str], repeats: int) -> Iterator[tuple[int, str]]:
    """(repeat, name) pairs, the order rotated by one each repeat (alternating repeats)."""
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            yield r, name
