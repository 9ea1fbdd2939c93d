"""The ledger side of ingestion: which scenes are new, and the rows that record them.

A scene is identified by its item id and ``updated`` stamp; a re-published scene replaces
its stored rows, a reprocessing (same tile and day, another id) supersedes the old item, and a
late second tile of a stored day is resolved against the stored rows of that day.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pystac

from .errors import CatalogError
from .store import Store
from .zonal import resolve_same_day

__all__ = [
    "CATCHUP_TABLE",
    "catchup_rows",
    "ledger_rows",
    "merge_with_store",
    "new_items",
    "scene_day",
    "superseded_rows",
]

#: scenes read again for farms that joined the book or were redrawn (:mod:`agrisat.catchup`):
#: ``set`` (the pending set's id), ``item_id``, ``day``, ``run_id``
CATCHUP_TABLE = "catchup"


def scene_day(item: pystac.Item) -> str:
    day = item.properties.get("agrisat:day")
    if day:
        return str(day)
    if item.datetime is None:
        raise CatalogError(
            f"item {item.id} has no datetime (only a range): agrisat needs the acquisition "
            "time; set the item's datetime or an 'agrisat:day' property"
        )
    return item.datetime.strftime("%Y-%m-%d")


def new_items(
    items: Sequence[pystac.Item], ledger: pd.DataFrame
) -> tuple[list[pystac.Item], dict[str, str]]:
    """Items to ingest and, for each that re-publishes a stored scene, the id it replaces.

    An item is new when its id is not ingested, or when it was ingested with another
    ``updated`` stamp (re-published in place). An item of a tile and day already ingested
    under another id (e.g. ``..._1_L2A`` after ``..._0_L2A``) is a reprocessing: the catalog
    kept it over the old one, so its rows replace the old item's.
    """
    if ledger.empty:
        return list(items), {}
    ingested = ledger[ledger["status"] == "ingested"]
    stamp = dict(zip(ingested["item_id"], ingested["updated"].astype(str), strict=True))
    by_scene = {
        (t, d): i
        for i, t, d in zip(ingested["item_id"], ingested["tile"], ingested["day"], strict=True)
    }
    new, replaced = [], {}
    for item in items:
        updated = str(item.properties.get("updated", ""))
        if item.id in stamp and stamp[item.id] == updated:
            continue
        new.append(item)
        old = by_scene.get((str(item.properties.get("agrisat:tile", "")), scene_day(item)))
        if old is not None and old != item.id and str(item.properties.get("agrisat:tile", "")):
            replaced[item.id] = old
    return new, replaced


def superseded_rows(ledger: pd.DataFrame, ids: Sequence[str], run_id: str) -> pd.DataFrame:
    rows = ledger[ledger["item_id"].isin(ids)].drop_duplicates("item_id", keep="last").copy()
    rows["status"] = "superseded"
    rows["run_id"] = run_id
    return rows


def merge_with_store(
    store: Store, obs: pd.DataFrame, *, replaced: dict[str, str] | None = None
) -> pd.DataFrame:
    """Resolve new rows against stored rows of the same farm and day (a late second tile).

    Stored rows of an item that a new item ``replaced`` (a reprocessing) take no part: the
    new rows win whatever their quality.
    """
    obs = resolve_same_day(obs)
    if obs.empty:
        return obs
    stored = store.read("observations")
    if stored.empty:
        return obs
    gone = set((replaced or {}).values()) | set(obs["item_id"])
    stored = stored[~stored["item_id"].isin(gone)]
    keys = pd.MultiIndex.from_frame(obs[["farm_id", "date"]])
    old = stored[pd.MultiIndex.from_frame(stored[["farm_id", "date"]]).isin(keys)]
    if old.empty:
        return obs
    both = resolve_same_day(pd.concat([old, obs], ignore_index=True))
    merged = both.merge(old[["farm_id", "date", "item_id"]], how="left", indicator=True)
    # only rows that change something are appended (an unchanged winner is already stored)
    return merged[merged["_merge"] == "left_only"].drop(columns="_merge").reset_index(drop=True)


def ledger_rows(
    items: Sequence[pystac.Item], epsg: int, run_id: str, *, status: str = "ingested"
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": [i.id for i in items],
            "day": [scene_day(i) for i in items],
            "tile": [str(i.properties.get("agrisat:tile", "")) for i in items],
            "epsg": [epsg] * len(items),
            "updated": [str(i.properties.get("updated", "")) for i in items],
            "status": [status] * len(items),
            "run_id": [run_id] * len(items),
        }
    )


def catchup_rows(items: Sequence[pystac.Item], set_id: str, run_id: str) -> pd.DataFrame:
    """Rows of the ``catchup`` table: ``items`` read for the pending farms of ``set_id``."""
    return pd.DataFrame(
        {
            "set": [set_id] * len(items),
            "item_id": [i.id for i in items],
            "day": [scene_day(i) for i in items],
            "run_id": [run_id] * len(items),
        }
    )
