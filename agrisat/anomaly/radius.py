"""Radius peers: the same-crop farms within ``peer_radius_km`` of a farm, on the same date.

The route for farms the region route cannot judge: farms without a region, and farms whose
region has fewer than ``min_peers`` farms of their crop. Neighbours are found once per run
with a KD-tree per crop on the farms' centroids (the nearest ``radius_max_peers`` within the
radius, the farm itself included, as a region group includes it); per look, the neighbours'
looks of the same date are found by binary search on (farm, date) keys, and the group
statistics are row-wise masked medians over slices of looks, so memory stays bounded by
``_SLICE_ROWS`` x ``radius_max_peers`` whatever the book's size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .history import _masked_median
from .settings import DetectSettings

__all__ = ["RadiusPeers", "farm_coordinates"]

#: mean Earth radius (m): geocentric chords on this sphere are ground distances to < 0.1 %
#: at peer radii
_EARTH_M = 6_371_008.8

#: looks per slice of the neighbour matrices
_SLICE_ROWS = 100_000
#: neighbour positions kept between statistics up to this many entries (8 bytes each)
_CACHE_ENTRIES = 4_000_000


def farm_coordinates(farms: pd.DataFrame) -> np.ndarray | None:
    """Centroid of each farm of ``farms`` in metres, one row per farm (n x 3).

    The book's ``x`` and ``y`` columns (projected metres, e.g. the farms' UTM zone) when it
    has both; else the geometry's centroid as geocentric coordinates on a sphere, whose
    straight-line distances are ground distances whatever the zone or hemisphere (a book may
    span several UTM zones). NaN rows where a farm has no usable geometry; None when the
    book has neither coordinates nor a geometry with a CRS.
    """
    n = len(farms)
    if {"x", "y"} <= set(farms.columns):
        x = pd.to_numeric(farms["x"], errors="coerce").to_numpy(dtype=float)
        y = pd.to_numeric(farms["y"], errors="coerce").to_numpy(dtype=float)
        return np.c_[x, y, np.zeros(n)]
    crs = getattr(farms, "crs", None)
    if crs is None or "geometry" not in farms.columns:
        return None
    geoms = np.asarray(farms.geometry.values, dtype=object)
    # A night asks three times for the same book (the looks' fingerprint, the features, the
    # incremental looks: 0.2 s of centroids each at 100,000 polygons), often through copies
    # of the frame; the geometries themselves (immutable) are the same objects.
    ids = np.fromiter(map(id, geoms), dtype=np.int64, count=n)
    last = _LAST[0] if _LAST else None  # (one entry replaced whole: no torn reads)
    if last is not None and last[2] == crs and np.array_equal(last[1], ids):
        return last[3].copy()
    out = _centroids(geoms, crs)
    # the geometries are held with their ids, so no id can be reused by another object
    # while the entry stands (one entry: the last book)
    _LAST[:] = [(geoms.copy(), ids, crs, out.copy())]
    return out


#: the last book's (geometries, their ids, crs, centroids) for :func:`farm_coordinates`
_LAST: list[tuple[np.ndarray, np.ndarray, object, np.ndarray]] = []


def _centroids(geoms: np.ndarray, crs: object) -> np.ndarray:
    """Geocentric coordinates (m) of the centroids of ``geoms`` (in ``crs``)."""
    import shapely

    cent = shapely.centroid(geoms)
    x, y = shapely.get_x(cent), shapely.get_y(cent)
    if not crs.is_geographic:  # type: ignore[attr-defined]
        from pyproj import Transformer

        tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        x, y = tr.transform(x, y)
    lon, lat = np.radians(np.asarray(x, dtype=float)), np.radians(np.asarray(y, dtype=float))
    return _EARTH_M * np.c_[np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)]


@dataclass(frozen=True)
class RadiusPeers:
    """Radius groups of the looks of one features table (see :meth:`build`)."""

    #: positions (in the looks table) of the looks judged by radius, ascending
    rows: np.ndarray
    #: per row, the index into ``neighbours`` of its farm
    farm_of_row: np.ndarray
    #: per eligible farm, the book codes of its neighbours (-1 pads), nearest first
    neighbours: np.ndarray
    #: per row, its date code
    date_of_row: np.ndarray
    #: sorted (book farm code x n_dates + date code) keys of all looks, and their positions
    keys: np.ndarray
    positions: np.ndarray
    n_dates: int
    n_looks: int
    #: the neighbour positions of all rows when they fit in ``_CACHE_ENTRIES`` (the several
    #: statistics of one run then share one search)
    cached: np.ndarray | None = None

    @classmethod
    def build(
        cls,
        looks: pd.DataFrame,
        book: pd.DataFrame,
        coords: np.ndarray | None,
        settings: DetectSettings,
    ) -> RadiusPeers | None:
        """Radius groups for ``looks`` (``farm_id``, ``date``); ``book`` has ``farm_id``,
        ``crop``, ``region`` per farm and ``coords`` its centroids (:func:`farm_coordinates`).
        None when no farm needs them (or there are no coordinates, or the radius is 0)."""
        s = settings
        if coords is None or s.peer_radius_km <= 0 or looks.empty:
            return None
        keep = np.isfinite(coords).all(axis=1) & ~book["farm_id"].duplicated().to_numpy()
        book = book.loc[keep, ["farm_id", "crop", "region"]].reset_index(drop=True)
        xyz = coords[keep]
        count = book.groupby(["crop", "region"], sort=False)["farm_id"].transform("size")
        eligible = ((book["region"] == "") | (count < s.min_peers)).to_numpy()
        if not eligible.any():
            return None
        k_max = max(s.radius_max_peers, s.min_peers)
        elig_codes = np.flatnonzero(eligible)
        slot = np.full(len(book), -1, dtype=np.int64)
        slot[elig_codes] = np.arange(elig_codes.size)
        neighbours = np.full((elig_codes.size, k_max), -1, dtype=np.int64)
        for members in book.groupby("crop", sort=False).indices.values():
            asked = members[eligible[members]]
            if not asked.size:
                continue
            k = min(k_max, members.size)
            _, j = cKDTree(xyz[members]).query(
                xyz[asked], k=k, distance_upper_bound=s.peer_radius_km * 1000.0
            )
            j = np.asarray(j).reshape(asked.size, k)
            found = j < members.size
            neighbours[slot[asked], :k] = np.where(
                found, members[np.minimum(j, members.size - 1)], -1
            )
        fcode = pd.Index(book["farm_id"]).get_indexer(looks["farm_id"].astype(str))
        dcode, uniq = pd.factorize(looks["date"])
        n_dates = max(len(uniq), 1)
        known = fcode >= 0
        key = np.where(known, fcode.astype(np.int64) * n_dates + dcode, -1)
        order = np.argsort(key, kind="stable")
        rows = np.flatnonzero(known & (slot[np.where(known, fcode, 0)] >= 0))
        peers = cls(
            rows=rows,
            farm_of_row=slot[fcode[rows]],
            neighbours=neighbours,
            date_of_row=dcode[rows].astype(np.int64),
            keys=key[order],
            positions=order,
            n_dates=n_dates,
            n_looks=len(looks),
        )
        if rows.size * k_max <= _CACHE_ENTRIES:
            cached = peers._neighbour_looks(slice(0, rows.size))
            peers = dataclasses.replace(peers, cached=cached)
        return peers

    def _neighbour_looks(self, sl: slice) -> np.ndarray:
        """Positions of the neighbours' same-date looks for rows ``sl`` (-1 where none)."""
        if self.cached is not None:
            return self.cached[sl]
        nb = self.neighbours[self.farm_of_row[sl]]
        q = nb * self.n_dates + self.date_of_row[sl, None]
        i = np.minimum(np.searchsorted(self.keys, q), self.keys.size - 1)
        hit = (nb >= 0) & (self.keys[i] == q)
        return np.where(hit, self.positions[i], -1)

    def stats(
        self, values: np.ndarray, *, mad: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Median, MAD and count of ``values`` (one per look, NaN = unseen) over each look's
        radius group; NaN, NaN, 0 for looks without one."""
        med = np.full(self.n_looks, np.nan)
        dev = np.full(self.n_looks, np.nan)
        cnt = np.zeros(self.n_looks)
        for start in range(0, self.rows.size, _SLICE_ROWS):
            sl = slice(start, min(start + _SLICE_ROWS, self.rows.size))
            pos = self._neighbour_looks(sl)
            v = values[np.maximum(pos, 0)]
            ok = (pos >= 0) & np.isfinite(v)
            v = np.where(ok, v, 0.0)
            m, n = _masked_median(v, ok)
            rows = self.rows[sl]
            med[rows], cnt[rows] = m, n
            if mad:
                dev[rows] = _masked_median(np.abs(v - m[:, None]), ok)[0]
        return med, dev, cnt
