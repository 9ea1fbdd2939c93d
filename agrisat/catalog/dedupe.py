"""Resolve same-tile, same-day duplicates among normalised items.

The same MGRS tile seen twice on one day happens when a product was reprocessed (a newer
processing baseline next to the old one), when a catalog holds two collections of the same
acquisition (Earth Search ``sentinel-2-l2a`` and ``sentinel-2-c1-l2a``), or when a datastrip
boundary splits the tile into two partial products. The observations table has one row per farm
and date, so one item must be chosen, and the choice must not depend on the order the catalog
returned the items in.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import pystac
from pystac.utils import str_to_datetime

from .bands import parse_baseline

__all__ = ["dedupe_items", "scene_key"]

_PRODUCT_TIME_RE = re.compile(r"_(\d{8}T\d{6})(?=\D*$)")
_EPOCH = dt.datetime(1, 1, 1, tzinfo=dt.UTC)


def scene_key(item: pystac.Item) -> tuple[str, str]:
    """Return the (day, footprint) key that identifies one acquisition of one tile.

    The footprint is the MGRS tile; an item without a tile falls back to its EPSG code and its
    bbox rounded to 0.01 degree, so untiled items of different places never collapse.
    """
    props = item.properties
    tile = props.get("agrisat:tile") or ""
    if not tile:
        bbox = item.bbox or []
        tile = f"EPSG:{props.get('agrisat:epsg')}:" + ",".join(f"{v:.2f}" for v in bbox)
    return str(props["agrisat:day"]), tile


def _processed_at(item: pystac.Item) -> dt.datetime:
    """When the metadata or product was last (re)made: updated, created, generation time."""
    props = item.properties
    for key in ("updated", "created", "s2:generation_time"):
        value = props.get(key)
        if isinstance(value, str):
            try:
                when = str_to_datetime(value)
            except ValueError:
                continue
            return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    # PC / ESA product names end with the product discriminator (its generation time)
    for text in (props.get("s2:product_uri"), props.get("sentinel:product_id"), item.id):
        if isinstance(text, str) and (match := _PRODUCT_TIME_RE.search(text.removesuffix(".SAFE"))):
            return dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    return _EPOCH


def _coverage(item: pystac.Item) -> float:
    """Share of the tile with data, in percent; -1 when the catalog does not say."""
    props = item.properties
    nodata = props.get("s2:nodata_pixel_percentage")
    if isinstance(nodata, int | float):
        return 100.0 - float(nodata)
    coverage = props.get("sentinel:data_coverage")
    return float(coverage) if isinstance(coverage, int | float) else -1.0


# (label used in the drop reason, ranking function; larger is better)
_CRITERIA: tuple[tuple[str, Any], ...] = (
    ("it has a scene classification (SCL)", lambda it: "scl" in it.assets),
    (
        "its processing baseline is newer",
        lambda it: parse_baseline(it.properties.get("agrisat:baseline")) or (-1, -1),
    ),
    ("it covers more of the tile", _coverage),
    ("it was processed later", _processed_at),
    ("its collection id sorts last", lambda it: it.collection_id or ""),
    ("its id sorts last", lambda it: it.id),
)


def _rank(item: pystac.Item) -> tuple[Any, ...]:
    return tuple(rank(item) for _, rank in _CRITERIA)


def _why(winner: pystac.Item, loser: pystac.Item) -> str:
    for label, rank in _CRITERIA:
        if rank(winner) != rank(loser):
            return label
    return "it is the same item"


def dedupe_items(
    items: Sequence[pystac.Item],
) -> tuple[list[pystac.Item], list[tuple[pystac.Item, str]]]:
    """Keep one item per MGRS tile and acquisition day.

    Parameters
    ----------
    items
        Normalised items (see :func:`~agrisat.catalog.normalize_item`).

    Returns
    -------
    kept, dropped
        ``kept`` sorted by (day, tile, id); ``dropped`` as (item, reason) pairs sorted by id.

    Notes
    -----
    Within a (tile, day) group the winner is decided by, in order: has an SCL asset; newest
    processing baseline (unknown counts as oldest); largest data coverage
    (``s2:nodata_pixel_percentage`` / ``sentinel:data_coverage``); latest processing time
    (``updated``, else ``created``, else ``s2:generation_time``, else the time stamp that ends
    the product name); collection id; item id (both: last in sort order wins). The result does
    not depend on the input order.
    """
    groups: dict[tuple[str, str], list[pystac.Item]] = {}
    for item in items:
        groups.setdefault(scene_key(item), []).append(item)
    kept: list[pystac.Item] = []
    dropped: list[tuple[pystac.Item, str]] = []
    for (day, tile), group in groups.items():
        ordered = sorted(group, key=_rank, reverse=True)
        winner = ordered[0]
        kept.append(winner)
        for loser in ordered[1:]:
            reason = (
                f"same tile {tile} and day {day} as {winner.id}, which was kept because "
                f"{_why(winner, loser)}"
            )
            dropped.append((loser, reason))
    kept.sort(key=lambda it: (*scene_key(it), it.id))
    dropped.sort(key=lambda pair: pair[0].id)
    return kept, dropped
