"""Turn a raw STAC item from any supported Sentinel-2 L2A catalog into agrisat's canonical form."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

import pystac

from ..errors import CatalogError
from .bands import BANDS, format_baseline, map_bands, parse_baseline, reflectance_scaling

__all__ = ["acquisition_day", "mgrs_tile", "normalize_item", "processing_baseline"]

# An MGRS tile: UTM zone, latitude band (C..X without I and O), 100 km square.
_TILE = r"(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z][A-HJ-NP-V])"
_TILE_RE = re.compile(rf"^{_TILE}$", re.IGNORECASE)
# ...as found inside ids and product names: "_T24MVV_", "S2B_20EPT_2025...", "_T60VUK_N05.11"
_TILE_IN_TEXT_RE = re.compile(rf"(?:^|_)T?{_TILE}(?=_|$)", re.IGNORECASE)
_BASELINE_IN_TEXT_RE = re.compile(r"_N(\d{2})\.?(\d{2})(?=[_.]|$)")
_EPSG_CODE_RE = re.compile(r"^EPSG:(\d+)$", re.IGNORECASE)
# properties whose text embeds the tile or the baseline, in the order they are trusted
_NAME_PROPERTIES = ("s2:tile_id", "s2:product_uri", "sentinel:product_id", "s2:granule_id")
_BASELINE_PROPERTIES = (
    "s2:processing_baseline",
    "sentinel:processing_baseline",
    "processing:version",
)
_BOA_FLAGS = ("earthsearch:boa_offset_applied", "sentinel:boa_offset_applied")
_LANDSAT_ID_RE = re.compile(r"^L[CETMO]0\d_", re.IGNORECASE)


def _format_tile(zone: object, band: object, square: object) -> str | None:
    text = f"{zone}{band}{square}".strip()
    match = _TILE_RE.match(text)
    if match is None:
        return None
    # zero-pad the zone so "6VVN" (Earth Search v0) and "06VVN" (PC) are the same tile
    return f"{int(match.group(1)):02d}{match.group(2).upper()}{match.group(3).upper()}"


def mgrs_tile(item: pystac.Item) -> str | None:
    """Return the item's MGRS tile ("50SQF"), or None when nothing names it.

    Looks at ``s2:mgrs_tile``, ``mgrs:*``, ``grid:code``, ``sentinel:*`` (Earth Search v0),
    then at the tile embedded in the product/granule names and the item id.
    """
    props = item.properties
    candidates: list[str | None] = []
    if isinstance(props.get("s2:mgrs_tile"), str):
        candidates.append(_format_tile(props["s2:mgrs_tile"], "", ""))
    for prefix in ("mgrs", "sentinel"):
        parts = [props.get(f"{prefix}:{k}") for k in ("utm_zone", "latitude_band", "grid_square")]
        if all(p is not None for p in parts):
            candidates.append(_format_tile(*parts))
    grid = props.get("grid:code")
    if isinstance(grid, str) and grid.upper().startswith("MGRS-"):
        candidates.append(_format_tile(grid[5:], "", ""))
    texts = [props.get(k) for k in _NAME_PROPERTIES] + [item.id]
    for text in texts:
        if isinstance(text, str) and (match := _TILE_IN_TEXT_RE.search(text)):
            candidates.append(_format_tile(*match.groups()))
    return next((c for c in candidates if c), None)


def processing_baseline(item: pystac.Item) -> tuple[int, int] | None:
    """Return the item's parsed processing baseline, from its properties or product names."""
    for key in _BASELINE_PROPERTIES:
        parsed = parse_baseline(item.properties.get(key))
        if parsed is not None:
            return parsed
    texts = [item.properties.get(k) for k in (*_NAME_PROPERTIES, "s2:datatake_id")] + [item.id]
    for text in texts:
        if isinstance(text, str) and (match := _BASELINE_IN_TEXT_RE.search(text)):
            return int(match.group(1)), int(match.group(2))
    return None


def acquisition_day(item: pystac.Item) -> dt.date:
    """Return the UTC date of the acquisition (``datetime``, else ``start_datetime``)."""
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise CatalogError(
            f"item {item.id!r} has no datetime nor start_datetime; "
            "agrisat cannot place it in a time series: fix or remove the item"
        )
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC)
    return when.date()


def _epsg_from(fields: dict[str, Any]) -> int | None:
    epsg = fields.get("proj:epsg")
    if isinstance(epsg, int) and not isinstance(epsg, bool):
        return epsg
    code = fields.get("proj:code")
    if isinstance(code, str) and (match := _EPSG_CODE_RE.match(code.strip())):
        return int(match.group(1))
    for key in ("proj:wkt2", "proj:projjson"):
        if fields.get(key):
            from pyproj import CRS  # only needed for these rare items
            from pyproj.exceptions import CRSError

            try:
                found = CRS.from_user_input(fields[key]).to_epsg()
            except CRSError:
                continue
            if found is not None:
                return int(found)
    return None


def _epsg(item: pystac.Item, band_keys: Iterable[str]) -> int:
    found = _epsg_from(item.properties)
    if found is not None:
        return found
    # band assets first: their CRS is the one that will be read
    first = list(band_keys)
    keys = first + [k for k in item.assets if k not in set(first)]
    for key in keys:
        found = _epsg_from(item.assets[key].extra_fields)
        if found is not None:
            return found
    tile = mgrs_tile(item)
    if tile is not None:
        # an S2 product is delivered in the WGS 84 / UTM zone of its MGRS tile (bands N..X north)
        north = tile[2] >= "N"
        return (32600 if north else 32700) + int(tile[:2])
    raise CatalogError(
        f"item {item.id!r} has no CRS information (no proj:epsg / proj:code on the item or its "
        "assets, no MGRS tile): agrisat cannot place its pixels; fix the catalog or drop the item"
    )


def _platform(item: pystac.Item) -> str | None:
    for key in ("platform", "eo:platform", "constellation"):
        value = item.properties.get(key)
        if isinstance(value, str) and value:
            return value.lower().replace("_", "-").replace(" ", "-")
    return None


def _check_sentinel2_l2a(item: pystac.Item) -> None:
    """Reject what is not Sentinel-2 Level-2A; items that say nothing of their mission pass."""
    platform = _platform(item)
    collection = (item.collection_id or "").lower()
    not_s2 = (
        (platform is not None and not platform.startswith("sentinel-2"))
        or "landsat" in collection
        or bool(_LANDSAT_ID_RE.match(item.id))
    )
    if not_s2:
        raise CatalogError(
            f"item {item.id!r} is not a Sentinel-2 item (platform {platform or '?'}, collection "
            f"{item.collection_id or '?'}): agrisat reads Sentinel-2 L2A only; "
            "choose a Sentinel-2 L2A collection with --collection"
        )
    product_type = str(item.properties.get("s2:product_type", "")).upper()
    product_uri = str(item.properties.get("s2:product_uri", "")).upper()
    level1c = (
        product_type == "S2MSI1C"
        or "MSIL1C" in product_uri
        or "l1c" in collection
        or item.id.upper().endswith("_L1C")
    )
    if level1c:
        raise CatalogError(
            f"item {item.id!r} is a Level-1C (top-of-atmosphere) product without a scene "
            "classification: agrisat needs Level-2A surface reflectance; "
            "search a sentinel-2-l2a collection instead"
        )


def normalize_item(item: pystac.Item) -> pystac.Item:
    """Return a copy of ``item`` in agrisat's canonical form.

    Parameters
    ----------
    item
        A Sentinel-2 L2A item from Earth Search (v0 or v1), Planetary Computer, Copernicus Data
        Space or a local catalog written in one of their styles.

    Returns
    -------
    pystac.Item
        A copy whose assets are only the bands found, keyed by :data:`BANDS` names, with
        absolute hrefs and ``agrisat:scale``, ``agrisat:offset`` (reflectance = DN x scale +
        offset) and ``agrisat:source_key`` in their extra fields. Its properties gain
        ``agrisat:tile`` (MGRS tile, "" if unknown), ``agrisat:epsg``, ``agrisat:baseline``
        ("05.10", "" if unknown) and ``agrisat:day`` (UTC date, YYYY-MM-DD).

    Raises
    ------
    CatalogError
        Naming the item, when it is not Sentinel-2 (Landsat...), is Level-1C, has no red or no
        near-infrared band, no datetime, or no CRS information.
    """
    _check_sentinel2_l2a(item)
    bands = map_bands(item.assets)
    missing = [b for b in ("red",) if b not in bands]
    if not ({"nir", "nir08"} & set(bands)):
        missing.append("nir")
    if missing:
        raise CatalogError(
            f"item {item.id!r} has no {' and no '.join(missing)} band among its assets "
            f"{sorted(item.assets)}: agrisat cannot compute vegetation indices from it"
        )
    day = acquisition_day(item)
    epsg = _epsg(item, bands.values())
    baseline = processing_baseline(item)
    boa_applied = any(item.properties.get(flag) is True for flag in _BOA_FLAGS)

    out = item.clone()
    out.assets = {}
    for band in BANDS:
        if band not in bands:
            continue
        source = item.assets[bands[band]]
        asset = source.clone()
        # absolute, so the copy still points at the pixels once detached from its catalog
        asset.href = source.get_absolute_href() or source.href
        scale, offset = reflectance_scaling(
            source, band=band, baseline=baseline, boa_offset_applied=boa_applied
        )
        asset.extra_fields["agrisat:scale"] = scale
        asset.extra_fields["agrisat:offset"] = offset
        asset.extra_fields["agrisat:source_key"] = bands[band]
        out.add_asset(band, asset)
    out.properties["agrisat:tile"] = mgrs_tile(item) or ""
    out.properties["agrisat:epsg"] = epsg
    out.properties["agrisat:baseline"] = format_baseline(baseline)
    out.properties["agrisat:day"] = day.isoformat()
    return out
