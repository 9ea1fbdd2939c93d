"""Search, normalise, de-duplicate: the list of scenes a run reads."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pystac

from ..errors import CatalogError
from ..net import RetryPolicy
from .dedupe import dedupe_items
from .items import normalize_item
from .search import DateLike, redact_text, redact_url, search_items

__all__ = ["ScenesResult", "find_scenes", "find_scenes_with_report"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScenesResult:
    """What :func:`find_scenes_with_report` found.

    Attributes
    ----------
    items
        Normalised, de-duplicated items sorted by (day, tile, id).
    rejected
        (item id, reason) of the items that cannot be used (not S2 L2A, no red/NIR, no CRS).
    duplicates
        (item id, reason) of the same-tile, same-day items that lost to another.
    """

    items: list[pystac.Item]
    rejected: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)


def find_scenes_with_report(
    catalog: str,
    *,
    bbox: tuple[float, float, float, float],
    start: DateLike = None,
    end: DateLike = None,
    collection: str | None = None,
    max_items: int | None = None,
    timeout: float | None = None,
    policy: RetryPolicy | None = None,
) -> ScenesResult:
    """Search, normalise and de-duplicate; also say which items were left out and why.

    Parameters are those of :func:`search_items`.
    """
    raw = search_items(
        catalog,
        bbox=bbox,
        start=start,
        end=end,
        collection=collection,
        max_items=max_items,
        timeout=timeout,
        policy=policy,
    )
    normalised: list[pystac.Item] = []
    rejected: list[tuple[str, str]] = []
    for item in raw:
        try:
            normalised.append(normalize_item(item))
        except CatalogError as exc:
            reason = redact_text(str(exc))
            rejected.append((item.id, reason))
            log.warning("skipping item %s: %s", item.id, reason)
    kept, dropped = dedupe_items(normalised)
    for item, reason in dropped:
        log.info("dropping duplicate item %s: %s", item.id, reason)
    log.info(
        "catalog %s: %d items found, %d unusable, %d same-day duplicates, %d scenes kept",
        redact_url(catalog),
        len(raw),
        len(rejected),
        len(dropped),
        len(kept),
    )
    return ScenesResult(kept, rejected, [(item.id, reason) for item, reason in dropped])


def find_scenes(
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
    """Return the usable scenes: :func:`search_items` -> :func:`normalize_item` -> dedupe.

    Unusable items are logged by id and skipped; use :func:`find_scenes_with_report` to get
    them. Parameters are those of :func:`search_items`; the result is sorted by (day, tile, id).
    """
    return find_scenes_with_report(
        catalog,
        bbox=bbox,
        start=start,
        end=end,
        collection=collection,
        max_items=max_items,
        timeout=timeout,
        policy=policy,
    ).items
