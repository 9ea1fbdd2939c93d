"""Scenes: find Sentinel-2 L2A STAC items and bring them to one canonical form.

``search_items`` reads a STAC API or a static catalog, ``normalize_item`` maps each item's band
vocabulary onto :data:`BANDS` and resolves scale/offset, ``dedupe_items`` keeps one item per tile
and day; ``find_scenes`` chains the three.
"""

from __future__ import annotations

from .bands import BANDS, map_bands, parse_baseline, reflectance_scaling
from .dedupe import dedupe_items
from .items import acquisition_day, mgrs_tile, normalize_item, processing_baseline
from .scenes import ScenesResult, find_scenes, find_scenes_with_report
from .search import DEFAULT_COLLECTION, redact_text, redact_url, search_items

__all__ = [
    "BANDS",
    "DEFAULT_COLLECTION",
    "ScenesResult",
    "acquisition_day",
    "dedupe_items",
    "find_scenes",
    "find_scenes_with_report",
    "map_bands",
    "mgrs_tile",
    "normalize_item",
    "parse_baseline",
    "processing_baseline",
    "redact_text",
    "redact_url",
    "reflectance_scaling",
    "search_items",
]
