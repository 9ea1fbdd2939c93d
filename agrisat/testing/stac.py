"""Build Sentinel-2 L2A STAC items the way public catalogs serve them, and static catalogs.

Offset conventions
------------------
design.md: reflectance = DN x scale + offset. Declared ``raster:bands`` numbers win (a missing
scale means 1e-4, a missing offset 0); without them the processing baseline decides: 04.00 and
later carry a +1000 DN offset (offset -0.1) unless ``earthsearch:boa_offset_applied`` is true.
The factories write items in one of five conventions; :func:`reflectance_to_dn` encodes true
reflectance so that this rule recovers it.

==================  ==================================  ==========  ========================
name                metadata                            baseline    DN for reflectance r
==================  ==================================  ==========  ========================
``earthsearch_v1``  raster:bands scale 1e-4, offset      any         r*10000 + 1000
                    -0.1; boa_offset_applied true
``baseline_offset`` no raster:bands, no boa flag         >= 04.00    r*10000 + 1000
``boa_applied``     no raster:bands, boa flag true       >= 04.00    r*10000
``legacy``          no raster:bands                      < 04.00     r*10000
``scale_only``      raster:bands with scale only         any         r*10000
==================  ==================================  ==========  ========================

SCL is a class map: it never gets a scale or an offset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pystac
import shapely
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Polygon, box, mapping

from .cog import as_affine

__all__ = [
    "BANDS",
    "COG_MEDIA_TYPE",
    "CONVENTIONS",
    "Convention",
    "asset_key",
    "footprint_from_grid",
    "item_dir",
    "make_s2_item",
    "reflectance_to_dn",
    "write_static_catalog",
]

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"

Style = Literal["earthsearch", "planetary"]


@dataclass(frozen=True)
class Convention:
    """How an item declares its reflectance scaling (see the module docstring)."""

    name: str
    #: ``"scale_offset"``, ``"scale_only"`` or None (no raster:bands scale/offset)
    raster_bands: str | None
    #: value of ``earthsearch:boa_offset_applied``; None leaves the property out
    boa_flag: bool | None
    #: DN added to reflectance x 10000 so the design rule gives back the reflectance
    dn_offset: int
    #: the baseline must be at least (True) / below (False) 04.00, or anything (None)
    needs_new_baseline: bool | None


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention("earthsearch_v1", "scale_offset", True, 1000, None),
        Convention("baseline_offset", None, None, 1000, True),
        Convention("boa_applied", None, True, 0, True),
        Convention("legacy", None, None, 0, False),
        Convention("scale_only", "scale_only", None, 0, None),
    )
}

# canonical key -> (Planetary Computer key, band name, centre wavelength um, fwhm um, gsd m)
BANDS: dict[str, tuple[str, str, float, float, int]] = {
    "coastal": ("B01", "B01", 0.443, 0.027, 60),
    "blue": ("B02", "B02", 0.490, 0.098, 10),
    "green": ("B03", "B03", 0.560, 0.045, 10),
    "red": ("B04", "B04", 0.665, 0.038, 10),
    "rededge1": ("B05", "B05", 0.704, 0.019, 20),
    "rededge2": ("B06", "B06", 0.740, 0.018, 20),
    "rededge3": ("B07", "B07", 0.783, 0.028, 20),
    "nir": ("B08", "B08", 0.842, 0.145, 10),
    "nir08": ("B8A", "B8A", 0.865, 0.033, 20),
    "nir09": ("B09", "B09", 0.945, 0.026, 60),
    "swir16": ("B11", "B11", 1.610, 0.143, 20),
    "swir22": ("B12", "B12", 2.190, 0.242, 20),
    "scl": ("SCL", "SCL", 0.0, 0.0, 20),
}
_FROM_PC = {v[0]: k for k, v in BANDS.items()}

_EXT = {
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "proj:epsg": "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "proj:code": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "mgrs": "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "grid": "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "s2": "https://stac-extensions.github.io/sentinel-2/v1.0.0/schema.json",
}


def _baseline_tuple(baseline: str) -> tuple[int, int]:
    try:
        major, minor = baseline.split(".")
        return int(major), int(minor)
    except ValueError:
        raise ValueError(f"processing baseline must look like '05.10', got {baseline!r}") from None


def asset_key(band: str, style: Style = "earthsearch") -> str:
    """Return the asset key of ``band`` (canonical or B-number) in the catalog ``style``."""
    canonical = _FROM_PC.get(band, band)
    if canonical not in BANDS:
        raise ValueError(f"unknown Sentinel-2 band {band!r}; known: {sorted(BANDS)}")
    return BANDS[canonical][0] if style == "planetary" else canonical


def reflectance_to_dn(
    reflectance: np.ndarray, convention: str, *, valid: np.ndarray | None = None
) -> np.ndarray:
    """Encode true surface reflectance as uint16 DN under ``convention``.

    Valid pixels are clipped to ``[1, 65535]`` so that they never collide with nodata (0);
    pixels where ``valid`` is False or the reflectance is not finite become 0.
    """
    conv = _convention(convention)
    refl = np.asarray(reflectance, dtype=np.float64)
    finite = np.isfinite(refl)
    dn = np.rint(np.where(finite, refl, 0.0) * 10000.0 + conv.dn_offset)
    out = np.clip(dn, 1, 65535).astype(np.uint16)
    bad = ~finite if valid is None else ~(finite & valid)
    out[bad] = 0
    return out


def _convention(name: str) -> Convention:
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown convention {name!r}; known: {sorted(CONVENTIONS)}") from None


def footprint_from_grid(
    epsg: int, transform: Affine | Sequence[float], shape: tuple[int, int]
) -> Polygon:
    """Lon/lat polygon of a raster grid's real extent (edges densified before reprojection)."""
    aff = as_affine(transform)
    height, width = shape
    x0, y0 = aff * (0, 0)
    x1, y1 = aff * (width, height)
    extent = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)).segmentize(
        max(abs(x1 - x0), abs(y1 - y0)) / 8
    )
    to_ll = Transformer.from_crs(epsg, 4326, always_xy=True)
    poly = shapely.transform(extent, lambda xy: np.column_stack(to_ll.transform(*xy.T)))
    return Polygon([(round(x, 7), round(y, 7)) for x, y in poly.exterior.coords])


def _as_datetime(value: dt.datetime | dt.date | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, dt.datetime):
        # Sentinel-2 crosses Shandong at about 10:55 local solar time
        value = dt.datetime(value.year, value.month, value.day, 2, 56, 31, tzinfo=dt.UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_s2_item(
    item_id: str,
    *,
    datetime: dt.datetime | dt.date | str,
    epsg: int,
    assets: Mapping[str, tuple[str, Affine | Sequence[float], tuple[int, int]]],
    tile: str,
    baseline: str = "05.10",
    convention: str = "earthsearch_v1",
    style: Style = "earthsearch",
    footprint_lonlat: Polygon | Sequence[tuple[float, float]] | None = None,
    cloud_cover: float = 0.0,
    created: dt.datetime | str | None = None,
    updated: dt.datetime | str | None = None,
    proj_key: Literal["proj:epsg", "proj:code"] = "proj:epsg",
    eo_bands: bool = True,
    collection: str | None = "sentinel-2-l2a",
    properties: Mapping[str, Any] | None = None,
) -> pystac.Item:
    """Build one Sentinel-2 L2A item like Earth Search v1 (or Planetary Computer) serves it.

    Parameters
    ----------
    item_id
        e.g. ``"S2B_50SQF_20250412_0_L2A"``; a leading ``S2A``/``S2B``/``S2C`` sets ``platform``.
    datetime
        Acquisition time (a date means 02:56:31 UTC).
    epsg
        EPSG code of the assets' grid (``proj:epsg`` or ``proj:code``).
    assets
        ``{band: (href, transform, (height, width))}`` with canonical band names
        (``blue``, ``green``, ``red``, ``nir``, ``swir16``, ``scl`` ...) or B-numbers.
    tile
        MGRS tile, e.g. ``"50SQF"`` (sets the ``mgrs:*`` and ``grid:code`` properties).
    baseline
        ``s2:processing_baseline``.
    convention
        One of :data:`CONVENTIONS`; decides ``raster:bands`` and the boa flag (module docstring).
    style
        ``"earthsearch"`` (keys ``red``, ``scl`` ...) or ``"planetary"`` (``B04``, ``SCL`` ...,
        never ``raster:bands``, ``s2:mgrs_tile`` instead of ``mgrs:*``).
    footprint_lonlat
        Item geometry; by default the real extent of the finest asset grid.
    cloud_cover
        ``eo:cloud_cover`` in percent.
    created, updated
        Metadata timestamps (default: acquisition + 2 h).
    proj_key
        Whether the item carries ``proj:epsg`` (projection v1.1) or ``proj:code`` (v2.0).
    eo_bands
        Add ``eo:bands`` to reflectance assets.
    collection
        Collection id written into the item (None for none).
    properties
        Extra properties, added last (they override).

    Returns
    -------
    pystac.Item
    """
    conv = _convention(convention)
    new_baseline = _baseline_tuple(baseline) >= (4, 0)
    if conv.needs_new_baseline is not None and conv.needs_new_baseline != new_baseline:
        raise ValueError(
            f"convention {convention!r} needs a baseline "
            f"{'>=' if conv.needs_new_baseline else '<'} 04.00, got {baseline!r}"
        )
    if style == "planetary" and conv.raster_bands is not None:
        raise ValueError(f"Planetary-Computer-style items carry no raster:bands ({convention!r})")
    if not assets:
        raise ValueError(f"item {item_id} needs at least one asset")
    when = _as_datetime(datetime)
    created_dt = _as_datetime(created) if created is not None else when + dt.timedelta(hours=2)
    updated_dt = _as_datetime(updated) if updated is not None else created_dt

    grids = {asset_key(b): (href, as_affine(t), tuple(s)) for b, (href, t, s) in assets.items()}
    if footprint_lonlat is None:
        _, t_fine, s_fine = min(grids.values(), key=lambda g: abs(g[1].a))
        footprint = footprint_from_grid(epsg, t_fine, (int(s_fine[0]), int(s_fine[1])))
    elif isinstance(footprint_lonlat, Polygon):
        footprint = footprint_lonlat
    else:
        footprint = Polygon(footprint_lonlat)

    zone, band, square = tile[:2], tile[2:3], tile[3:]
    platform = {"S2A": "sentinel-2a", "S2B": "sentinel-2b", "S2C": "sentinel-2c"}.get(
        item_id[:3], "sentinel-2b"
    )
    props: dict[str, Any] = {
        "created": _iso(created_dt),
        "updated": _iso(updated_dt),
        "platform": platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": round(float(cloud_cover), 6),
        proj_key: int(epsg) if proj_key == "proj:epsg" else f"EPSG:{int(epsg)}",
        "s2:processing_baseline": baseline,
        "s2:product_type": "S2MSI2A",
    }
    extensions = [_EXT["eo"], _EXT[proj_key], _EXT["s2"]]
    if style == "earthsearch":
        props.update(
            {
                "mgrs:utm_zone": int(zone),
                "mgrs:latitude_band": band,
                "mgrs:grid_square": square,
                "grid:code": f"MGRS-{tile}",
            }
        )
        extensions += [_EXT["mgrs"], _EXT["grid"]]
    else:
        props["s2:mgrs_tile"] = tile
    if conv.boa_flag is not None:
        props["earthsearch:boa_offset_applied"] = conv.boa_flag
    if conv.raster_bands is not None:
        extensions.append(_EXT["raster"])
    props.update(properties or {})

    item = pystac.Item(
        id=item_id,
        geometry=mapping(footprint),
        bbox=[round(v, 7) for v in footprint.bounds],
        datetime=when,
        properties=props,
        stac_extensions=extensions,
        collection=collection,
    )
    for key, (href, aff, shape) in grids.items():
        item.add_asset(asset_key(key, style), _asset(key, href, aff, shape, conv, eo_bands))
    return item


def _asset(
    key: str, href: str, aff: Affine, shape: tuple[int, ...], conv: Convention, eo_bands: bool
) -> pystac.Asset:
    pc_key, name, wavelength, fwhm, _ = BANDS[key]
    resolution = abs(aff.a)
    extra: dict[str, Any] = {
        "gsd": resolution,
        "proj:shape": [int(shape[0]), int(shape[1])],
        "proj:transform": [aff.a, aff.b, aff.c, aff.d, aff.e, aff.f],
    }
    is_scl = key == "scl"
    if eo_bands and not is_scl:
        extra["eo:bands"] = [
            {
                "name": name,
                "common_name": key,
                "center_wavelength": wavelength,
                "full_width_half_max": fwhm,
            }
        ]
    if conv.raster_bands is not None:
        rb: dict[str, Any] = {
            "nodata": 0,
            "data_type": "uint8" if is_scl else "uint16",
            "spatial_resolution": resolution,
        }
        if not is_scl:  # a class map is never scaled
            rb["scale"] = 0.0001
            if conv.raster_bands == "scale_offset":
                rb["offset"] = -0.1
        extra["raster:bands"] = [rb]
    title = "Scene classification map (SCL)" if is_scl else f"{pc_key} ({key}) - {resolution:g}m"
    roles = ["data"] if is_scl else ["data", "reflectance"]
    return pystac.Asset(
        href=href, media_type=COG_MEDIA_TYPE, title=title, roles=roles, extra_fields=extra
    )


def write_static_catalog(
    root_dir: str | Path,
    items: Iterable[pystac.Item],
    *,
    collection_id: str = "sentinel-2-l2a",
    title: str = "agrisat test archive",
    description: str = "Synthetic Sentinel-2 L2A items over local Cloud-Optimized GeoTIFFs",
) -> Path:
    """Save ``items`` as a self-contained static catalog (root catalog -> collection -> items).

    Items are written to ``root_dir/<collection_id>/<item_id>/<item_id>.json`` and every
    href (links and assets) is made relative, so the folder can be moved or served as is.
    Asset hrefs must be absolute paths (or URLs) when passed in. Put the COGs of an item in
    :func:`item_dir` to keep asset hrefs short (``./red.tif``).

    Returns
    -------
    Path
        The root ``catalog.json``.
    """
    root = Path(root_dir).resolve()
    items = list(items)
    if not items:
        raise ValueError("write_static_catalog needs at least one item")
    catalog = pystac.Catalog(id="agrisat-archive", description=description, title=title)
    collection = pystac.Collection(
        id=collection_id,
        description=description,
        extent=pystac.Extent.from_items(items),
        title=title,
        license="proprietary",
    )
    collection.add_items(items)
    catalog.add_child(collection)
    catalog.normalize_hrefs(str(root))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def item_dir(root_dir: str | Path, item_id: str, *, collection_id: str = "sentinel-2-l2a") -> Path:
    """Folder where :func:`write_static_catalog` puts the JSON of ``item_id``."""
    return Path(root_dir).resolve() / collection_id / item_id
