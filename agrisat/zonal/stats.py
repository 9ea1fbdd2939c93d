"""Coverage-weighted per-farm statistics from chunked pixel stacks (see the package)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import shapely
import xarray as xr
from dask.delayed import Delayed

from ..config import ZonalSettings
from .chunks import (
    SumsSource,
    _chunk_sums,
    _shipped,
    _split_by_chunk,
    release_shipped,
    release_zone,
)
from .weights import ZoneWeights

__all__ = [
    "STATUS_ORDER",
    "release_shipped",
    "release_zone",
    "resolve_same_day",
    "zonal_stats",
    "zonal_stats_stack",
]

#: Preference when one farm has several looks on one day (best first).
STATUS_ORDER = ("ok", "cloudy", "too_small", "no_data")


def _frame(
    stats: np.ndarray,
    farm_ids: np.ndarray,
    item_ids: Sequence[str],
    days: Sequence[str],
    indices: Sequence[str],
    settings: ZonalSettings,
) -> pd.DataFrame:
    t, n, _ = stats.shape
    flat = stats.reshape(t * n, -1)
    wvalid, wclear, waterf, total = flat[:, 0], flat[:, 1], flat[:, 2], flat[:, 3]
    with np.errstate(invalid="ignore", divide="ignore"):
        clear_fraction = np.where(total > 0, wclear / total, 0.0)
    status = np.where(
        wvalid <= 1e-9,
        0,
        np.where(
            total < settings.min_pixels,
            1,
            np.where(clear_fraction < settings.min_clear_fraction, 2, 3),
        ),
    )
    # The text columns are made from their few distinct values and taken row by row: pandas
    # turning t x n Python strings into its string arrays cost two thirds of this function
    # (100,000 farms x 8 dates: ~0.3 s of the observe phase, holding the GIL)
    by_time = np.repeat(np.arange(t), n)
    columns: dict[str, Any] = {
        "farm_id": _texts(farm_ids).take(np.tile(np.arange(n), t)),
        "date": _texts(days).take(by_time),
        "item_id": _texts(item_ids).take(by_time),
        "status": _texts(_STATUSES).take(status),
        "clear_fraction": np.round(clear_fraction, 6),
        "clear_pixels": np.round(wclear, 2),
        "water_fraction": np.round(waterf, 6),
    }
    for j, name in enumerate(indices):
        columns[f"{name}_mean"] = flat[:, 4 + 2 * j]
        columns[f"{name}_std"] = flat[:, 5 + 2 * j]
    return pd.DataFrame(columns)


#: the statuses by their codes in :func:`_frame`
_STATUSES = ("no_data", "too_small", "cloudy", "ok")


def _texts(values: Sequence[Any] | np.ndarray) -> Any:
    """``values`` as the pandas array a DataFrame column of them gets (the same inference)."""
    return pd.Series(np.asarray(values, dtype=object), copy=False).array


def zonal_stats(
    cube: xr.Dataset,
    weights: ZoneWeights,
    *,
    indices: Sequence[str],
    settings: ZonalSettings = ZonalSettings(),
    time_batch: int = 8,
    footprints: Sequence[shapely.Geometry] | None = None,
) -> list[Delayed]:
    """Lazy per-farm statistics of every item of ``cube``.

    Parameters
    ----------
    cube
        Output of :func:`agrisat.cube.load_cube` with the index variables added (``indices``).
    weights
        Output of :func:`coverage_weights` on the cube's grid.
    indices
        Index variable names in ``cube``.
    time_batch
        Items per task: larger batches mean fewer tasks, smaller ones less memory per task.
    footprints
        Optional footprint of each item in the grid's CRS: a group is only measured on the
        items whose footprint touches its window (no reads, no ``no_data`` rows elsewhere).

    Returns
    -------
    list of dask.delayed
        Each computes to a DataFrame with one row per (farm, item) of one group and time batch;
        columns as in the observations export (``date`` as YYYY-MM-DD).
    """
    names = ("valid", "clear", "water", *indices)
    layers = [cube[v].data.astype(np.float32) for v in names]
    stack = da.stack(layers, axis=0).rechunk({0: len(names)})
    item_ids = [str(i) for i in cube["item_id"].values]
    if "day" in cube.coords:
        days = [str(d) for d in cube["day"].values]
    else:
        days = [str(np.datetime_as_string(t, unit="D")) for t in cube["time"].values]
    return zonal_stats_stack(
        stack,
        weights,
        indices=indices,
        item_ids=item_ids,
        days=days,
        settings=settings,
        time_batch=time_batch,
        footprints=footprints,
    )


def zonal_stats_stack(
    stack: da.Array | SumsSource,
    weights: ZoneWeights,
    *,
    indices: Sequence[str],
    item_ids: Sequence[str],
    days: Sequence[str],
    settings: ZonalSettings = ZonalSettings(),
    time_batch: int = 8,
    footprints: Sequence[shapely.Geometry] | None = None,
    ship: Callable[[list[Any]], list[Any]] | None = None,
) -> list[Delayed]:
    """:func:`zonal_stats` on a stacked array (variable, time, y, x).

    The layers are ``valid``, ``clear``, ``water`` (0/1) then one per index, as made by
    :func:`agrisat.stack.prepared_stack`. The statistics are sums, so they are taken chunk by
    chunk: one task per chunk reduces it to per-farm partial sums for every farm with pixels in
    it (the chunk's slice of the coverage weights), right after it is read; each farm group's
    task then adds up the partial sums of the chunks under its window. A chunk is read once per
    date and has exactly one consumer, so it is freed at once (memory stays flat with the
    number of chunks).

    ``stack`` may instead be a :class:`agrisat.zonal.chunks.SumsSource` (e.g.
    :func:`agrisat.pixels.direct_source`'s), which computes each chunk's partial sums itself
    in the task that reads it, from the pixels under farms only; the results are the same.

    ``ship`` (e.g. a distributed ``Client.scatter``) turns the chunks' weights into handles
    of data already on the workers; it is called once per zone and its handles are reused by
    every later batch, so workers receive the weights once (see :func:`release_shipped`).
    """
    fused = stack if not isinstance(stack, da.Array) else None
    blocks: Any = None
    if isinstance(stack, da.Array):
        arr = stack if stack.numblocks[0] == 1 else stack.rechunk({0: stack.shape[0]})
        blocks = arr.to_delayed()
    tb, yb, xb = (np.cumsum((0, *c)) for c in stack.chunks[1:])
    split = _split_by_chunk(weights, yb, xb)
    shipped = _shipped(weights, split, ship) if ship is not None else {}
    nt = stack.shape[1]
    a = weights.geobox.affine
    tag = f"{id(weights):x}-{len(yb)}-{len(xb)}"
    chunk_w: dict[tuple[int, int], Delayed] = {}
    sums: dict[tuple[int, int, int], Delayed] = {}

    def chunk_sums(it: int, iy: int, ix: int) -> Delayed:
        if (it, iy, ix) not in sums:
            if (iy, ix) in shipped:  # already on the cluster (scattered once per zone)
                chunk_w[iy, ix] = shipped[iy, ix]
            elif (iy, ix) not in chunk_w:
                # one graph key per chunk's weights: shipped to a worker once, not once per date
                chunk_w[iy, ix] = dask.delayed(
                    split[iy, ix][1], name=f"agrisat-weights-{tag}-{iy}-{ix}", pure=False
                )
            if fused is not None:  # read, masks, indices and sums in one task
                sums[it, iy, ix] = fused.chunk_sums(it, iy, ix, chunk_w[iy, ix], len(indices))
            else:
                sums[it, iy, ix] = dask.delayed(_chunk_sums, pure=True)(
                    chunk_w[iy, ix], len(indices), blocks[0, it, iy, ix]
                )
        return sums[it, iy, ix]

    out = []
    offset = 0
    for g in weights.groups:
        r0, r1, c0, c1 = g.window
        n = len(g.farm_ids)
        times = np.arange(nt)
        if footprints is not None:
            box = shapely.box(a.c + c0 * a.a, a.f - r1 * a.a, a.c + c1 * a.a, a.f - r0 * a.a)
            times = np.flatnonzero(shapely.intersects(np.asarray(footprints, dtype=object), box))
        iys = range(int(np.searchsorted(yb, r0, "right")) - 1, int(np.searchsorted(yb, r1, "left")))
        ixs = range(int(np.searchsorted(xb, c0, "right")) - 1, int(np.searchsorted(xb, c1, "left")))
        under = [(iy, ix) for iy in iys for ix in ixs if (iy, ix) in split]
        for b0 in range(0, len(times), time_batch):
            sel = times[b0 : b0 + time_batch]
            layout, args = [], []
            for j, t in enumerate(sel):
                it = int(np.searchsorted(tb, t, "right")) - 1
                for iy, ix in under:
                    rows = split[iy, ix][0]
                    mine = (rows >= offset) & (rows < offset + n)
                    if not mine.any():
                        continue
                    layout.append((j, int(t - tb[it]), np.flatnonzero(mine), rows[mine] - offset))
                    args.append(chunk_sums(it, iy, ix))
            stats = dask.delayed(_group_from_sums, pure=True)(
                g.total, n, len(sel), len(indices), layout, *args
            )
            out.append(
                dask.delayed(_frame, pure=True)(
                    stats,
                    g.farm_ids,
                    [item_ids[i] for i in sel],
                    [days[i] for i in sel],
                    list(indices),
                    settings,
                )
            )
        offset += n
    return out


def _group_from_sums(
    total: np.ndarray,
    n_farms: int,
    n_times: int,
    n_indices: int,
    layout: list[tuple[int, int, np.ndarray, np.ndarray]],
    *parts: np.ndarray,
) -> np.ndarray:
    """Add a group's partial sums up; stats array (T, n_farms, 4 + 2 × n_indices)."""
    acc = np.zeros((n_times, n_farms, 3 + 3 * n_indices))
    for (j, tl, src, dest), part in zip(layout, parts, strict=True):
        acc[j, dest] += part[tl, src]  # a farm appears once per chunk: no repeated index
    out = np.full((n_times, n_farms, 4 + 2 * n_indices), np.nan)
    wsum_valid, wsum_clear, wsum_water = acc[..., 0], acc[..., 1], acc[..., 2]
    out[..., 0] = wsum_valid
    out[..., 1] = wsum_clear
    with np.errstate(invalid="ignore", divide="ignore"):
        out[..., 2] = np.where(wsum_clear > 0, wsum_water / wsum_clear, np.nan)
    out[..., 3] = total
    for j in range(n_indices):
        s0, s1, s2 = acc[..., 3 + 3 * j], acc[..., 4 + 3 * j], acc[..., 5 + 3 * j]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(s0 > 0, s1 / s0, np.nan)
            var = np.where(s0 > 0, s2 / s0 - mean * mean, np.nan)
        out[..., 4 + 2 * j] = mean
        out[..., 5 + 2 * j] = np.sqrt(np.clip(var, 0.0, None))
    return out


def resolve_same_day(df: pd.DataFrame) -> pd.DataFrame:
    """Keep one row per farm and date: a known sky first, the best status, the clearest look.

    Two tiles of one day see the farm in the same overpass, under the same sky. A look whose
    sky is unknown (a scene without SCL: ``clear_fraction`` NaN) only wins when no look of a
    known sky judged the farm, so an ``ok`` look of unknown sky never replaces a look the
    cloud mask found ``cloudy``. A ``no_data`` or ``too_small`` row says nothing about the
    sky over the farm (no pixel, or too few to count), so it ranks as before, after ``ok``
    and ``cloudy`` rows of either kind. Otherwise: status, clear pixels, then item id.
    """
    if df.empty:
        return df
    rank = df["status"].map({s: i for i, s in enumerate(STATUS_ORDER)})
    sky = df["clear_fraction"] if "clear_fraction" in df else df["clear_pixels"]
    judged = df["status"].isin(("ok", "cloudy")).to_numpy()
    # 0: a judged look under a known sky; 1: any other row (their old order is kept)
    tier = np.where(judged & sky.notna().to_numpy(), 0, 1)
    ordered = df.assign(
        _tier=tier, _rank=rank, _neg_clear=-df["clear_pixels"].fillna(0)
    ).sort_values(["farm_id", "date", "_tier", "_rank", "_neg_clear", "item_id"], kind="mergesort")
    kept = ordered.drop_duplicates(["farm_id", "date"], keep="first")
    return (
        kept.drop(columns=["_tier", "_rank", "_neg_clear"])
        .sort_values(["farm_id", "date"])
        .reset_index(drop=True)
    )
