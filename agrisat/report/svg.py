"""Inline SVG drawn by agrisat: the farm map (no tile server) and series sparklines.

The map projects lon/lat to a Lambert azimuthal equal-area frame centred on the book (areas and
shapes true at farm scale, across UTM zones), scales it to a fixed number of SVG units, drops
detail below half a unit and writes integer coordinates with relative moves: a 10,000-farm
book stays around a megabyte.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

__all__ = ["MAP_CLASSES", "farm_map_svg", "sparkline_svg"]

#: map class -> fill colour; order is the legend's
MAP_CLASSES: dict[str, str] = {
    "critical": "#c62828",
    "warning": "#ef6c00",
    "watch": "#fbc02d",
    "resolved": "#64b5f6",
    "none": "#c5cdc5",
}


def _ring_path(coords: np.ndarray) -> str:
    pts = np.rint(coords).astype(np.int64)
    # drop repeated points (after rounding) and the closing point (``z`` closes the ring)
    keep = np.ones(len(pts), bool)
    keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
    pts = pts[keep]
    if len(pts) > 1 and (pts[0] == pts[-1]).all():
        pts = pts[:-1]
    if len(pts) == 0:
        return ""
    if len(pts) < 3:
        # a farm smaller than a unit: a tiny square keeps it visible and clickable
        x, y = pts[0]
        return f"M{x} {y}h1v1h-1z"
    d = np.diff(pts, axis=0)
    rel = " ".join(f"{dx} {dy}" for dx, dy in d)
    return f"M{pts[0][0]} {pts[0][1]}l{rel}z"


def _geom_path(geom: shapely.Geometry) -> str:
    parts = []
    for poly in getattr(geom, "geoms", [geom]):
        if poly.is_empty:
            continue
        for ring in (poly.exterior, *poly.interiors):
            parts.append(_ring_path(np.asarray(ring.coords)[:, :2]))
    return "".join(p for p in parts if p)


def _centre(geoms: np.ndarray) -> tuple[float, float]:
    """The centroid of the farms taken together: the area-weighted mean of their centroids
    (the union's centroid where farms do not overlap; the union itself took 12 s of a
    100,000-farm report)."""
    cent = shapely.centroid(geoms)
    area = shapely.area(geoms)
    ok = ~shapely.is_empty(cent)
    w = area[ok] if area[ok].sum() > 0 else None
    return (
        float(np.average(shapely.get_x(cent[ok]), weights=w)),
        float(np.average(shapely.get_y(cent[ok]), weights=w)),
    )


def farm_map_svg(
    farms: gpd.GeoDataFrame,
    classes: Mapping[str, str],
    *,
    width: int = 1000,
    max_height: int = 700,
    legend: Sequence[tuple[str, str]] = (),
    max_paths: int = 20_000,
) -> str:
    """An ``<svg>`` element with one ``<path>`` per farm, filled by its class.

    A book of more than ``max_paths`` farms draws its farms without an alert (class ``none``)
    as one image under the paths of the others: ~70 bytes a path made a 100,000-farm map
    7 MB, a province's would not open.

    Parameters
    ----------
    farms
        ``farm_id`` and polygons in any declared CRS.
    classes
        ``farm_id`` -> a key of :data:`MAP_CLASSES` (missing: ``none``).
    width, max_height
        Size in SVG units (the drawing keeps its aspect ratio inside them).
    legend
        (class, label) pairs drawn as a legend in the top-left corner.
    max_paths
        Farms drawn as paths (each with its id, for the tooltip) when the book has more.
    """
    gdf = farms[["farm_id", "geometry"]].to_crs(4326)
    lon0, lat0 = _centre(gdf.geometry.values)
    laea = f"+proj=laea +lat_0={lat0:.5f} +lon_0={lon0:.5f} +datum=WGS84 +units=m +no_defs"
    local = gdf.to_crs(laea)
    x0, y0, x1, y1 = local.total_bounds
    span_x, span_y = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    pad = 0.03
    scale = min(width / (span_x * (1 + 2 * pad)), max_height / (span_y * (1 + 2 * pad)))
    w = int(np.ceil(span_x * (1 + 2 * pad) * scale))
    h = int(np.ceil(span_y * (1 + 2 * pad) * scale))
    # map units -> SVG units (y down); simplify in SVG units (half a unit is invisible)
    ox, oy = x0 - span_x * pad, y1 + span_y * pad
    geoms = shapely.transform(
        local.geometry.values, lambda xy: np.column_stack([(xy[:, 0] - ox) * scale, (oy - xy[:, 1]) * scale])
    )  # fmt: skip
    geoms = shapely.simplify(geoms, 0.5, preserve_topology=True)
    rows = []
    order = {k: i for i, k in enumerate(reversed(list(MAP_CLASSES)))}
    ids = local["farm_id"].astype(str).to_numpy()
    cls = [str(classes.get(f, "none")) for f in ids]
    drawn: list[int] = list(range(len(ids)))
    if len(ids) > max_paths:
        quiet = np.array([c == "none" for c in cls])
        rows.append(_raster_layer(geoms[quiet], w, h, MAP_CLASSES["none"]))
        drawn = np.flatnonzero(~quiet).tolist()
    # alerted farms are drawn last, on top of their neighbours
    for i in sorted(drawn, key=lambda k: order.get(cls[k], 0)):
        d = _geom_path(geoms[i])
        if d:
            rows.append(f'<path class="f {cls[i]}" data-farm="{escape(ids[i])}" d="{d}"/>')
    legend_svg = ""
    if legend:
        items = []
        for j, (key, text) in enumerate(legend):
            y = 12 + 18 * j
            items.append(
                f'<rect x="8" y="{y}" width="12" height="12" fill="{MAP_CLASSES[key]}"/>'
                f'<text x="26" y="{y + 10}">{escape(text)}</text>'
            )
        legend_svg = (
            f'<g class="legend"><rect x="2" y="4" width="150" height="{18 * len(legend) + 10}" '
            f'fill="#fff" fill-opacity="0.85"/>{"".join(items)}</g>'
        )
    bar = _scale_bar(scale, w, h)
    return (
        f'<svg id="farm-map" viewBox="0 0 {w} {h}" width="100%" role="img" '
        f'preserveAspectRatio="xMidYMid meet"><g id="farms">{"".join(rows)}</g>'
        f"{bar}{legend_svg}</svg>"
    )


def _raster_layer(geoms: np.ndarray, w: int, h: int, colour: str, *, zoom: int = 2) -> str:
    """``geoms`` (in SVG units) as one PNG ``<image>`` covering the map, ``zoom`` pixels a
    unit (the map's zoom stays sharp at 2×); every farm touching a pixel colours it."""
    import base64
    import io

    from matplotlib import image as mpimage
    from rasterio.features import rasterize
    from rasterio.transform import Affine

    shapes = [(g, 1) for g in geoms if g is not None and not shapely.is_empty(g)]
    if not shapes:
        return ""
    mask = rasterize(
        shapes, out_shape=(h * zoom, w * zoom), transform=Affine.scale(1 / zoom),
        all_touched=True, fill=0, dtype="uint8",
    )  # fmt: skip
    rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
    rgba[mask > 0] = [int(colour[k : k + 2], 16) for k in (1, 3, 5)] + [255]
    buf = io.BytesIO()
    mpimage.imsave(buf, rgba, format="png")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<image class="quiet" x="0" y="0" width="{w}" height="{h}" href="{uri}"/>'


def _scale_bar(scale: float, w: int, h: int) -> str:
    target = 0.2 * w / scale  # metres in a fifth of the width
    nice = 10 ** np.floor(np.log10(target))
    for m in (5, 2, 1):
        if m * nice <= target:
            nice = m * nice
            break
    length = nice * scale
    label = f"{nice / 1000:g} km" if nice >= 1000 else f"{nice:g} m"
    x, y = w - length - 12, h - 12
    return (
        f'<g class="scalebar"><path d="M{x:.0f} {y - 4}v4h{length:.0f}v-4" fill="none" '
        f'stroke="#333"/><text x="{x + length / 2:.0f}" y="{y - 7}" text-anchor="middle">'
        f"{label}</text></g>"
    )


def sparkline_svg(
    dates: pd.Series,
    values: np.ndarray,
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
    marks: Sequence[pd.Timestamp] = (),
    width: int = 240,
    height: int = 48,
    vmin: float = -0.1,
    vmax: float = 1.0,
) -> str:
    """A small ``<svg>`` line of a series over [start, end] with vertical marks (onsets)."""
    t = pd.to_datetime(pd.Series(dates)).to_numpy(dtype="datetime64[D]").astype(float)
    v = np.asarray(values, dtype=float)
    t0 = float(np.datetime64(pd.Timestamp(start).date(), "D").astype(float))
    t1 = float(np.datetime64(pd.Timestamp(end).date(), "D").astype(float))
    span = max(t1 - t0, 1.0)
    ok = np.isfinite(v) & (t >= t0) & (t <= t1)
    x = (t[ok] - t0) / span * (width - 2) + 1
    y = (vmax - np.clip(v[ok], vmin, vmax)) / (vmax - vmin) * (height - 2) + 1
    line = ""
    if ok.any():
        pts = " ".join(f"{a:.0f},{b:.0f}" for a, b in zip(x, y, strict=True))
        line = f'<polyline points="{pts}" fill="none" stroke="#1b5e20" stroke-width="1.3"/>'
    mk = ""
    for m in marks:
        tm = float(np.datetime64(pd.Timestamp(m).date(), "D").astype(float))
        if t0 <= tm <= t1:
            xm = (tm - t0) / span * (width - 2) + 1
            mk += f'<path d="M{xm:.0f} 0v{height}" stroke="#c62828" stroke-width="1.2"/>'
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        f'<rect width="{width}" height="{height}" fill="#f7f9f7"/>{mk}{line}</svg>'
    )
