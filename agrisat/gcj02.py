"""GCJ-02 ("Mars coordinates") and BD-09 (Baidu) to WGS84, vectorised with numpy.

Parcels drawn on Chinese consumer maps (Amap/Gaode, Tencent, Apple and Google maps inside
China) are stored in GCJ-02, WGS84 longitude/latitude plus a deliberate, non-linear offset of
a few hundred metres; Baidu adds a second offset on top (BD-09). Taken as WGS84 such a farm
lands 30-70 Sentinel-2 pixels away from itself, so a book declared ``gcj02`` or ``bd09`` is
converted here before anything else looks at it.

The forward formula is the one every open implementation shares (eviltransform,
coordtransform, gcoord; Krasovsky semi-major axis 6378245 m). There is no closed-form inverse,
so :func:`gcj02_to_wgs84` iterates the forward function (a fixed-point iteration: the offset
changes by less than 1e-3 m per metre, so each step gains about three digits) until the
forward image lands within ``tol`` degrees of the input. The widely copied one-step inverse is
off by up to a couple of metres, which is a fifth of a pixel on a 0.1 ha plot; not used.

Outside China the offset is not applied: points outside the rectangle used by all those
implementations (:data:`CHINA_BBOX`, lon 72.004-137.8347, lat 0.8293-55.8271) pass through
unchanged, in both directions. The rectangle is coarse (it takes in Mongolia, Korea, parts of
Japan and South-East Asia), so only books drawn in mainland China should be declared GCJ-02.
For the inverse the test is made on the GCJ-02 input, as the reference implementations do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CHINA_BBOX",
    "OFFSET_SYSTEMS",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "in_china",
    "offset_system",
    "to_wgs84_geometries",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

#: ``(min_lon, min_lat, max_lon, max_lat)`` inside which GCJ-02 / BD-09 offsets apply.
CHINA_BBOX: tuple[float, float, float, float] = (72.004, 0.8293, 137.8347, 55.8271)
#: The offset systems understood (canonical names).
OFFSET_SYSTEMS: tuple[str, ...] = ("gcj02", "bd09")

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as in the published GCJ-02 formula
_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = np.pi * 3000.0 / 180.0  # BD-09 constant

# Spellings per system after lower-casing and dropping everything but letters and digits.
_SPELLINGS = {
    "gcj02": "gcj02",
    "gcj": "gcj02",
    "mars": "gcj02",
    "bd09": "bd09",
    "bd09ll": "bd09",  # Baidu's own name for BD-09 longitude/latitude
    "baidu": "bd09",
}

Floats = NDArray[np.float64]


def offset_system(value: object) -> str | None:
    """``"gcj02"``/``"bd09"`` when ``value`` names one of them (any case, ``GCJ-02``, ``bd09ll``), else None."""
    if not isinstance(value, str):
        return None
    key = "".join(ch for ch in value.lower() if ch.isascii() and ch.isalnum())
    return _SPELLINGS.get(key)


def in_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """True where the point lies in :data:`CHINA_BBOX` (False for NaN)."""
    x, y = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    x0, y0, x1, y1 = CHINA_BBOX
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def _delta(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    """The GCJ-02 offset (degrees) at a WGS84 point."""
    x, y = lon - 105.0, lat - 35.0
    sx = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sx + common
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sx + common
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    rad = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = dlat * 180.0 / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = dlon * 180.0 / (_A / sqrt_magic * np.cos(rad) * np.pi)
    return dlon, dlat


def _pair(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return x.astype(float, copy=True), y.astype(float, copy=True)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    """WGS84 → GCJ-02 (degrees); points outside :data:`CHINA_BBOX` are returned unchanged.

    Parameters
    ----------
    lon, lat
        Longitudes and latitudes (scalars or arrays, broadcast together).

    Returns
    -------
    tuple of numpy.ndarray
        GCJ-02 longitudes and latitudes (new arrays; NaN stays NaN).
    """
    x, y = _pair(lon, lat)
    inside = in_china(x, y)
    with np.errstate(all="ignore"):
        dx, dy = _delta(x[inside], y[inside])
    x[inside] += dx
    y[inside] += dy
    return x, y


def _invert(
    forward: Callable[[Floats, Floats], tuple[Floats, Floats]],
    x: Floats,
    y: Floats,
    tol: float,
    max_iter: int,
) -> tuple[Floats, Floats]:
    """Solve ``forward(w) = (x, y)`` by fixed-point iteration ``w -= forward(w) - target``."""
    wx, wy = x.copy(), y.copy()
    todo = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    for _ in range(max_iter):
        if todo.size == 0:
            break
        fx, fy = forward(wx[todo], wy[todo])
        ex, ey = fx - x[todo], fy - y[todo]
        wx[todo] -= ex
        wy[todo] -= ey
        # Points whose residual was already below tol got one more (free) correction above.
        todo = todo[(np.abs(ex) > tol) | (np.abs(ey) > tol)]
    return wx, wy


def _gcj_forward_inside(x: Floats, y: Floats) -> tuple[Floats, Floats]:
    with np.errstate(all="ignore"):
        dx, dy = _delta(x, y)
    return x + dx, y + dy


def gcj02_to_wgs84(
    lon: ArrayLike, lat: ArrayLike, *, tol: float = 1e-7, max_iter: int = 30
) -> tuple[Floats, Floats]:
    """GCJ-02 → WGS84 (degrees) by iterating the forward formula; outside China unchanged.

    Parameters
    ----------
    lon, lat
        GCJ-02 longitudes and latitudes (scalars or arrays, broadcast together).
    tol
        Stop when the forward image of the result is within ``tol`` degrees of the input in
        both axes (1e-7° ≈ 1 cm; a final correction is applied after that, so the result is
        closer still).
    max_iter
        Upper bound on iterations; 3-4 suffice for 1e-7° anywhere in China.

    Returns
    -------
    tuple of numpy.ndarray
        WGS84 longitudes and latitudes.
    """
    x, y = _pair(lon, lat)
    inside = in_china(x, y)
    wx, wy = _invert(_gcj_forward_inside, x[inside], y[inside], tol, max_iter)
    x[inside], y[inside] = wx, wy
    return x, y


def _bd_forward(x: Floats, y: Floats) -> tuple[Floats, Floats]:
    z = np.hypot(x, y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    """GCJ-02 → BD-09 (Baidu longitude/latitude); outside China unchanged."""
    x, y = _pair(lon, lat)
    inside = in_china(x, y)
    x[inside], y[inside] = _bd_forward(x[inside], y[inside])
    return x, y


def bd09_to_gcj02(
    lon: ArrayLike, lat: ArrayLike, *, tol: float = 1e-9, max_iter: int = 30
) -> tuple[Floats, Floats]:
    """BD-09 → GCJ-02 by iterating :func:`gcj02_to_bd09` (the usual closed form is approximate)."""
    x, y = _pair(lon, lat)
    inside = in_china(x, y)
    gx, gy = _invert(_bd_forward, x[inside], y[inside], tol, max_iter)
    x[inside], y[inside] = gx, gy
    return x, y


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    """WGS84 → BD-09 (through GCJ-02); outside China unchanged."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(
    lon: ArrayLike, lat: ArrayLike, *, tol: float = 1e-7, max_iter: int = 30
) -> tuple[Floats, Floats]:
    """BD-09 → WGS84 (through GCJ-02, both steps iterated); outside China unchanged."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat), tol=tol, max_iter=max_iter)


_TO_WGS84: dict[str, Callable[[Floats, Floats], tuple[Floats, Floats]]] = {
    "gcj02": gcj02_to_wgs84,
    "bd09": bd09_to_wgs84,
}


def to_wgs84_geometries(geoms: Any, source: str = "gcj02") -> Any:
    """Convert shapely geometries from GCJ-02 or BD-09 to WGS84, vertex by vertex.

    Parameters
    ----------
    geoms
        A shapely geometry, a sequence / numpy array of them (None allowed), or a GeoSeries.
    source
        ``"gcj02"`` or ``"bd09"`` (any spelling :func:`offset_system` accepts).

    Returns
    -------
    Same kind as ``geoms``
        New geometries (a GeoSeries comes back with the same index and ``EPSG:4326``); Z
        values are kept; vertices outside :data:`CHINA_BBOX` are unchanged.

    Raises
    ------
    ValueError
        ``source`` is not an offset system.
    """
    system = offset_system(source)
    if system is None:
        raise ValueError(f"source {source!r}: use 'gcj02' or 'bd09'")
    convert = _TO_WGS84[system]

    def apply(xy: Floats) -> Floats:
        out = xy.astype(float, copy=True)
        out[:, 0], out[:, 1] = convert(xy[:, 0], xy[:, 1])
        return out

    if hasattr(geoms, "geometry") and hasattr(geoms, "index"):  # GeoSeries / GeoDataFrame
        import geopandas as gpd

        values = np.asarray(geoms.geometry.to_numpy(), dtype=object)
        result = shapely.transform(values, apply, include_z=None)
        return gpd.GeoSeries(result, index=geoms.index, crs="EPSG:4326")
    if isinstance(geoms, shapely.Geometry):
        return shapely.transform(geoms, apply, include_z=None)
    arr = np.asarray(list(geoms) if isinstance(geoms, Sequence) else geoms, dtype=object)
    return shapely.transform(arr, apply, include_z=None)
