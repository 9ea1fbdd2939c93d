"""Per-row geometry checks: type, coordinates, validity repair, reprojection, area."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import CRS, Transformer

from ..config import BookSettings

__all__ = ["AREA_OF_USE_MARGIN_DEG", "GeometryCheck", "check_geometries", "is_none"]

#: Slack around a CRS's published area of use. Generous on purpose: books in one UTM zone
#: routinely reach 3° past the zone edge (e.g. Bornholm in EPSG:25832). The check is for
#: gross errors (wrong CRS declared, swapped axes), not for borders.
AREA_OF_USE_MARGIN_DEG = 5.0
#: A row this far (km) from the book's median location whose swapped coordinates land
#: within SWAP_NEAR_KM of it is called swapped.
SWAP_FAR_KM = 1000.0
SWAP_NEAR_KM = 100.0

_TYPE_NAMES = {
    0: "Point",
    1: "LineString",
    2: "LinearRing",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}


def is_none(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the cells that are None (object arrays of reasons and ids)."""
    arr = np.asarray(values, dtype=object)
    try:
        # elementwise ``== None`` runs in C: text and None cells compare by identity
        return np.asarray(arr == None, dtype=bool)  # noqa: E711
    except (TypeError, ValueError):  # a cell whose == is not a bool (pd.NA): one by one
        return np.fromiter((v is None for v in arr), dtype=bool, count=len(arr))


@dataclass
class GeometryCheck:
    """Outcome per row: the EPSG:4326 geometry, its area, whether it was repaired, or why not."""

    geoms: np.ndarray  # shapely geometries in EPSG:4326, None where rejected
    area_ha: np.ndarray
    repaired: np.ndarray
    reasons: np.ndarray  # None where accepted


def _polygonal(geom: shapely.Geometry | None) -> shapely.Geometry | None:
    """The polygonal part of ``geom`` (Polygon or MultiPolygon), or None if there is none."""
    if geom is None or geom.is_empty:
        return None
    tid = shapely.get_type_id(geom)
    if tid in (3, 6):
        return geom
    polys = [
        p
        for part in shapely.get_parts(geom)
        for p in shapely.get_parts(part)
        if shapely.get_type_id(p) == 3 and not p.is_empty
    ]
    if not polys:
        return None
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _inside(lon: np.ndarray, lat: np.ndarray, crs: CRS) -> np.ndarray:
    ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    area = crs.area_of_use
    if area is None:
        return ok
    m = AREA_OF_USE_MARGIN_DEG
    ok &= (lat >= area.south - m) & (lat <= area.north + m)
    if area.west <= area.east:
        in_lon = (lon >= area.west - m) & (lon <= area.east + m)
    else:  # the area of use crosses the antimeridian
        in_lon = (lon >= area.west - m) | (lon <= area.east + m)
    if area.east - area.west + 2 * m >= 360:
        in_lon = np.ones_like(ok)
    return ok & in_lon


def _corners_inside(t: Transformer, x: np.ndarray, y: np.ndarray, crs: CRS) -> np.ndarray:
    """True where every (x, y) corner pair transforms to a lon/lat inside the CRS's area of use."""
    with np.errstate(all="ignore"):
        lon, lat = t.transform(x, y, errcheck=False)
    inside = _inside(np.asarray(lon), np.asarray(lat), crs).reshape(x.shape)
    return np.asarray(inside.all(axis=1), dtype=bool)


def _haversine_km(lon1: np.ndarray, lat1: np.ndarray, lon2: float, lat2: float) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat, dlon = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * 6371.0088 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def _repair(geom: shapely.Geometry, tolerance: float) -> tuple[shapely.Geometry | None, str | None]:
    """Repair an invalid (Multi)Polygon, or say why not.

    ``make_valid`` is run twice, with the "structure" method (shells and holes keep their
    roles) and the "linework" method (every face of the noded rings). Where the two agree on
    the area within ``tolerance`` the repair is unambiguous (a bow-tie, a spike, a doubled
    vertex) and the structure result is kept; where they disagree (a hole poking out of its
    shell, overlapping parts) the bank must redraw the parcel. The repair must also keep at
    least ``1 - tolerance`` of the area GEOS measures on the invalid rings.
    """
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        fixed = _polygonal(shapely.make_valid(geom, method="structure", keep_collapsed=False))
        other = _polygonal(shapely.make_valid(geom, method="linework"))
        before = abs(float(shapely.area(geom)))
    a_fixed = 0.0 if fixed is None else float(fixed.area)
    if a_fixed <= 0.0:
        return None, "zero area" if before == 0.0 else "invalid geometry, not repairable"
    a_other = 0.0 if other is None else float(other.area)
    change = abs(a_fixed - a_other) / max(a_fixed, a_other)
    if change > tolerance or a_fixed < (1.0 - tolerance) * before:
        change = max(change, (before - a_fixed) / before if before else 0.0)
        return (
            None,
            f"invalid geometry, not repairable: a repair would change its area by {change:.0%}",
        )
    return fixed, None


def _transform(t: Transformer, geoms: np.ndarray) -> np.ndarray:
    def apply(xy: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            x, y = t.transform(xy[:, 0], xy[:, 1], errcheck=False)
        return np.column_stack([x, y])

    return shapely.transform(geoms, apply)


def _equal_area_m2(geoms: np.ndarray, lon: float, lat: float) -> np.ndarray:
    """Areas in m2 from a Lambert azimuthal equal-area projection centred on the book.

    The ellipsoidal LAEA is exactly equal-area everywhere but near the antipode, so one
    projection serves a whole book; only the shape is distorted far from the centre, which
    changes the area of a parcel-sized polygon by far less than a millionth.
    """
    laea = CRS.from_proj4(f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m")
    t = Transformer.from_crs("EPSG:4326", laea, always_xy=True)
    return np.asarray(shapely.area(_transform(t, geoms)), dtype=float)


def check_geometries(geoms: np.ndarray, crs: CRS, settings: BookSettings) -> GeometryCheck:
    """Check, repair, reproject and measure every geometry; see :mod:`agrisat.book`."""
    n = len(geoms)
    reasons = np.full(n, None, dtype=object)
    repaired = np.zeros(n, dtype=bool)
    area_ha = np.full(n, np.nan)

    def reject(mask: np.ndarray, reason: str | np.ndarray) -> None:
        mask = mask & is_none(reasons)
        reasons[mask] = reason if isinstance(reason, str) else reason[mask]

    def alive() -> np.ndarray:
        return is_none(reasons)

    geoms = np.asarray(geoms, dtype=object).copy()
    reject(shapely.is_missing(geoms) | shapely.is_empty(geoms), "empty geometry")
    geoms[~alive()] = None
    extra_dims = shapely.has_z(geoms)
    if hasattr(shapely, "has_m"):
        extra_dims |= shapely.has_m(geoms)
    if extra_dims.any():  # force_2d copies every geometry: only when some carry Z or M
        geoms = shapely.force_2d(geoms)

    type_ids = shapely.get_type_id(geoms)
    for i in np.flatnonzero(alive() & (type_ids == 7)):  # keep all-polygonal collections
        parts = shapely.get_parts(geoms[i])
        if all(shapely.get_type_id(p) in (3, 6) for p in parts):
            geoms[i] = _polygonal(geoms[i])
            type_ids[i] = shapely.get_type_id(geoms[i])
    not_poly = ~np.isin(type_ids, (3, 6))
    names = np.full(n, None, dtype=object)
    for i in np.flatnonzero(not_poly):
        names[i] = f"not a polygon: {_TYPE_NAMES.get(int(type_ids[i]), 'unknown')}"
    reject(not_poly, names)
    geoms[~alive()] = None

    coords, index = shapely.get_coordinates(geoms, return_index=True)
    bad = np.zeros(n, dtype=bool)
    bad[index[~np.isfinite(coords).all(axis=1)]] = True
    reject(bad, "non-finite coordinates")
    geoms[~alive()] = None

    # Location: all four bounding-box corners must fall in the CRS's area of use.
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    rows = np.flatnonzero(alive())
    b = shapely.bounds(geoms[rows])
    xs, ys = b[:, [0, 2, 2, 0]], b[:, [1, 1, 3, 3]]
    inside = _corners_inside(to_lonlat, xs, ys, crs)
    swapped = ~inside & _corners_inside(to_lonlat, ys, xs, crs)
    mask = np.zeros(n, dtype=bool)
    mask[rows[swapped]] = True
    reject(mask, "coordinates look swapped (x/y)")
    mask[:] = False
    mask[rows[~inside]] = True
    reject(mask, "coordinates outside the CRS area of use")

    # Swapped axes can still land inside a world-wide area of use (lat 50, lon 5 read as
    # lon 50, lat 5): call a row swapped when it is far from the book's median location and
    # its swapped reading lands near it.
    rows = np.flatnonzero(alive())
    if len(rows) >= 3:
        b = shapely.bounds(geoms[rows])
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        with np.errstate(all="ignore"):
            lon, lat = (np.asarray(v) for v in to_lonlat.transform(cx, cy, errcheck=False))
            slon, slat = (np.asarray(v) for v in to_lonlat.transform(cy, cx, errcheck=False))
        mlon, mlat = float(np.median(lon)), float(np.median(lat))
        far = _haversine_km(lon, lat, mlon, mlat) > SWAP_FAR_KM
        with np.errstate(all="ignore"):
            near = np.isfinite(slon) & (_haversine_km(slon, slat, mlon, mlat) < SWAP_NEAR_KM)
        mask[:] = False
        mask[rows[far & near]] = True
        reject(mask, "coordinates look swapped (x/y)")
    geoms[~alive()] = None

    # Validity, judged in the source CRS where the parcel was drawn.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        invalid = alive() & ~shapely.is_valid(geoms)
    for i in np.flatnonzero(invalid):
        fixed, why = _repair(geoms[i], settings.repair_area_tolerance)
        if why is not None:
            reasons[i] = why
            geoms[i] = None
        else:
            geoms[i] = fixed
            repaired[i] = True

    rows = np.flatnonzero(alive())
    out = np.full(n, None, dtype=object)
    if len(rows):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            out[rows] = _transform(to_lonlat, geoms[rows])
    coords, index = shapely.get_coordinates(out, return_index=True)
    bad[:] = False
    bad[index[~np.isfinite(coords).all(axis=1)]] = True
    reject(bad, "coordinates outside the CRS area of use")
    out[~alive()] = None

    # Reprojection can bend a valid ring into a self-touching one; such tiny repairs count.
    for i in np.flatnonzero(alive() & ~shapely.is_valid(out)):
        fixed = _polygonal(shapely.make_valid(out[i], method="structure", keep_collapsed=False))
        if fixed is None:
            reasons[i] = "invalid geometry, not repairable"
            out[i] = None
        else:
            out[i] = fixed
            repaired[i] = True

    rows = np.flatnonzero(alive())
    if len(rows):
        b = shapely.bounds(out[rows])
        lon0 = float(np.median((b[:, 0] + b[:, 2]) / 2))
        lat0 = float(np.median((b[:, 1] + b[:, 3]) / 2))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            area_ha[rows] = _equal_area_m2(out[rows], lon0, lat0) / 1e4
    reject(alive() & ~np.isfinite(area_ha), "invalid geometry, not repairable")
    reject(alive() & (area_ha == 0), "zero area")
    small = alive() & (area_ha < settings.min_area_ha)
    large = alive() & (area_ha > settings.max_area_ha)
    for mask_, word, limit in ((small, "small", "<"), (large, "large", ">")):
        bound = settings.min_area_ha if word == "small" else settings.max_area_ha
        texts = np.full(n, None, dtype=object)
        for i in np.flatnonzero(mask_):
            texts[i] = f"area too {word}: {area_ha[i]:.4g} ha {limit} {bound:g} ha"
        reject(mask_, texts)
    out[~alive()] = None
    return GeometryCheck(out, area_ha, repaired & alive(), reasons)
