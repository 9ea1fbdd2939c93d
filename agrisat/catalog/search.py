"""Find Sentinel-2 L2A items: STAC API search or a walk through a static catalog."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pystac
import pystac_client
import requests
import shapely
from pystac_client.exceptions import APIError

from ..errors import CatalogError, ConfigError
from ..net import (
    DEFAULT_POLICY,
    RetryingStacApiIO,
    RetryingStacIO,
    RetryPolicy,
    fetch_json,
    redact_text,
    redact_url,
)
from .items import acquisition_day

__all__ = [
    "DEFAULT_COLLECTION",
    "DEFAULT_TIMEOUT",
    "DateLike",
    "redact_text",
    "redact_url",
    "search_items",
]

log = logging.getLogger(__name__)

DEFAULT_COLLECTION = "sentinel-2-l2a"
#: seconds to wait for the next bytes of a catalog server's answer (see agrisat.net.RetryPolicy)
DEFAULT_TIMEOUT = DEFAULT_POLICY.read_timeout
_PAGE_SIZE = 100
_PC_HOST = "planetarycomputer.microsoft.com"
_ITEM_SEARCH = re.compile(r"/item-search$")

DateLike = str | dt.date | None


def _is_url(catalog: str) -> bool:
    return urlsplit(catalog).scheme in {"http", "https"}


def _parse_day(value: DateLike, name: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).date() if value.tzinfo else value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ConfigError(f"--{name} {value!r} is not a date: use YYYY-MM-DD") from None


def _check_bbox(bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    if len(bbox) != 4 or not all(isinstance(v, int | float) for v in bbox):
        raise ConfigError("the search bbox must be four numbers (west, south, east, north)")
    west, south, east, north = (float(v) for v in bbox)
    if south > north:
        raise ConfigError("the search bbox has south > north; expected (west, south, east, north)")
    return west, south, east, north


def _sign_planetary_computer(obj: Any) -> None:
    # looked up at call time: the import is only paid for PC catalogs (and tests can patch it)
    import planetary_computer

    planetary_computer.sign_inplace(obj)


def _modifier_for(catalog: str) -> Callable[[Any], None] | None:
    """PC blobs need a short-lived SAS token; other catalogs are read as they are."""
    if _is_url(catalog) and (urlsplit(catalog).hostname or "").endswith(_PC_HOST):
        return _sign_planetary_computer
    return None


def _fetch_json(url: str, policy: RetryPolicy) -> dict[str, Any]:
    return fetch_json(url, policy=policy)


def _local_catalog(catalog: str) -> str:
    """The JSON file to read for a local path; a folder stands for its catalog/collection.json."""
    path = Path(catalog).expanduser()
    if path.is_dir():
        for name in ("catalog.json", "collection.json"):
            if (path / name).is_file():
                return str(path / name)
    if not path.is_file():
        raise CatalogError(
            f"the catalog {catalog} does not exist: give a STAC API URL, or the path of a "
            "catalog.json / collection.json (or of the folder holding it)"
        )
    return str(path)


def _is_api(doc: dict[str, Any]) -> bool:
    conforms = doc.get("conformsTo") or []
    if any(isinstance(c, str) and _ITEM_SEARCH.search(c) for c in conforms):
        return True
    return any(
        isinstance(link, dict) and link.get("rel") == "search" for link in doc.get("links", [])
    )


def _datetime_interval(start: dt.date | None, end: dt.date | None) -> str | None:
    if start is None and end is None:
        return None
    # the end day is inclusive: anything acquired before the next midnight UTC counts
    lower = f"{start.isoformat()}T00:00:00Z" if start else ".."
    upper = f"{end.isoformat()}T23:59:59.999999Z" if end else ".."
    return f"{lower}/{upper}"


def _search_api(
    url: str,
    *,
    bbox: tuple[float, float, float, float],
    start: dt.date | None,
    end: dt.date | None,
    collection: str,
    max_items: int | None,
    policy: RetryPolicy,
) -> list[pystac.Item]:
    try:
        client = pystac_client.Client.open(
            url,
            modifier=_modifier_for(url),
            stac_io=RetryingStacApiIO(policy),
            timeout=policy.timeout,
        )
        search = client.search(
            bbox=bbox,
            datetime=_datetime_interval(start, end),
            collections=[collection],
            max_items=max_items,
            limit=_PAGE_SIZE,
        )
        return list(search.items())
    except (
        APIError,
        requests.RequestException,
        pystac.STACError,
        ValueError,
        NotImplementedError,
    ) as exc:
        raise CatalogError(
            f"searching the STAC API {redact_url(url)} (collection {collection}) failed: "
            f"{redact_text(str(exc))[:300]}; check the URL and the collection, or retry later"
        ) from None


def _open_static(
    catalog: str, doc: dict[str, Any] | None, policy: RetryPolicy
) -> Iterator[pystac.Item]:
    """Yield every item found in a catalog, collection, item collection or item document."""
    io = RetryingStacIO(policy)
    try:
        if doc is None:
            with open(catalog, encoding="utf-8") as fh:
                doc = json.load(fh)
            href = str(Path(catalog).resolve())
        else:
            href = catalog
        if not isinstance(doc, dict):
            raise CatalogError(f"{redact_url(catalog)} is not a STAC JSON object")
        if doc.get("type") == "FeatureCollection":
            yield from pystac.ItemCollection.from_dict(doc, preserve_dict=False)
            return
        obj = pystac.read_dict(doc, href=href, stac_io=io)
        if isinstance(obj, pystac.Item):
            yield obj
        elif isinstance(obj, pystac.Catalog):
            # children and items are read through the root's I/O (pystac's own has no timeout)
            obj._stac_io = io
            yield from obj.get_items(recursive=True)
        else:
            raise CatalogError(f"{redact_url(catalog)} is not a STAC catalog, collection or item")
    except CatalogError:
        raise
    except pystac.STACError as exc:
        if isinstance(exc.__cause__, CatalogError):  # a child or item failed: say which, why
            raise exc.__cause__ from None
        raise CatalogError(
            f"cannot read the static STAC catalog {redact_url(catalog)}: "
            f"{redact_text(str(exc))[:300]}; check the path and that it is STAC JSON"
        ) from None
    except pystac.STACTypeError:  # JSON, but not STAC (a GeoJSON book given as --catalog...)
        raise CatalogError(
            f"{redact_url(catalog)} is JSON but not a STAC catalog, collection, item or item "
            "collection; --catalog takes a STAC API URL or a static catalog.json"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CatalogError(
            f"cannot read the static STAC catalog {redact_url(catalog)}: "
            f"{redact_text(str(exc))[:300]}; check the path and that it is STAC JSON"
        ) from None


def _intersects(item: pystac.Item, query: shapely.Geometry) -> bool:
    if item.geometry:
        return bool(shapely.geometry.shape(item.geometry).intersects(query))
    if item.bbox and len(item.bbox) >= 4:
        west, south, east, north = item.bbox[0], item.bbox[1], item.bbox[-2], item.bbox[-1]
        if west > east:  # crosses the antimeridian
            return shapely.box(west, south, 180, north).intersects(query) or shapely.box(
                -180, south, east, north
            ).intersects(query)
        return bool(shapely.box(west, south, east, north).intersects(query))
    return True  # no footprint at all: keep it rather than lose a scene silently


def _filter_static(
    items: Iterable[pystac.Item],
    *,
    bbox: tuple[float, float, float, float],
    start: dt.date | None,
    end: dt.date | None,
    collection: str | None,
) -> list[pystac.Item]:
    query = shapely.box(*bbox)
    kept: list[pystac.Item] = []
    for item in items:
        if collection is not None and item.collection_id != collection:
            continue
        if start is not None or end is not None:
            try:
                day = acquisition_day(item)
            except CatalogError:
                kept.append(item)  # normalize_item will reject it by name
                continue
            if (start is not None and day < start) or (end is not None and day > end):
                continue
        if _intersects(item, query):
            kept.append(item)
    return kept


def search_items(
    catalog: str,
    *,
    bbox: tuple[float, float, float, float],
    start: DateLike = None,
    end: DateLike = None,
    collection: str | None = None,
    max_items: int | None = None,
    timeout: float | None = None,
    policy: RetryPolicy | None = None,
) -> list[pystac.Item]:
    """Return the raw items of ``catalog`` over ``bbox`` between ``start`` and ``end``.

    Parameters
    ----------
    catalog
        A STAC API root URL (its landing page conforms to item-search or links to ``search``),
        or the path or URL of a static catalog, collection, item collection or item.
    bbox
        (west, south, east, north) in degrees, EPSG:4326.
    start, end
        First and last acquisition day, both inclusive (UTC dates); None leaves it open.
    collection
        API: the collection searched (default ``sentinel-2-l2a``). Static: when given, only
        items of this collection are kept.
    max_items
        Stop after this many items (None: all pages).
    timeout
        When given, the most seconds any one request may take, retries and waits included
        (shortens ``policy``'s deadline and timeouts).
    policy
        Retries, backoff and timeouts for http(s) catalogs (default
        :data:`agrisat.net.DEFAULT_POLICY`): transient failures (connection errors, time-outs,
        408/425/429/502/503/504) are retried with backoff, ``Retry-After`` is honoured.

    Raises
    ------
    CatalogError
        The catalog cannot be reached, read or searched (after the retries), or answers
        something that is not STAC JSON; the message names the URL without its query string.
    ConfigError
        ``bbox`` or the dates are malformed.
    """
    bbox = _check_bbox(bbox)
    first, last = _parse_day(start, "start"), _parse_day(end, "end")
    if first and last and first > last:
        raise ConfigError(f"--start {first} is after --end {last}")
    policy = policy or DEFAULT_POLICY
    if timeout is not None:
        policy = policy.with_deadline(timeout)
    doc: dict[str, Any] | None = None
    if _is_url(catalog):
        doc = _fetch_json(catalog, policy)
        if _is_api(doc):
            items = _search_api(
                catalog,
                bbox=bbox,
                start=first,
                end=last,
                collection=collection or DEFAULT_COLLECTION,
                max_items=max_items,
                policy=policy,
            )
            log.info("catalog %s: API search returned %d items", redact_url(catalog), len(items))
            return items
    else:
        catalog = _local_catalog(catalog)
    items = _filter_static(
        _open_static(catalog, doc, policy), bbox=bbox, start=first, end=last, collection=collection
    )
    if (modifier := _modifier_for(catalog)) is not None:
        for item in items:
            modifier(item)
    if max_items is not None:
        items = items[:max_items]
    log.info("catalog %s: %d items match in the static catalog", redact_url(catalog), len(items))
    return items
