"""History for farms the store has not measured: farms that joined the book, or were redrawn.

The ledger records scenes, not farms: a scene ingested on an earlier night is never read
again. A loan granted after the first night (a farm that joins the book) would then have no
history at all -- no own-history baseline, no past season to compare with -- and a farm whose
polygon the bank redrew would keep the old field's observations. When the book changes, the
run records those farms as *pending* (in the same transaction that stores the new book); it
then reads every scene over the pending farms from the start of the workdir's history
(the ledger's first day) to ``--end`` -- the scenes already in the ledger, a re-published
version of one, and scenes over an area the old book did not reach -- over the pending farms
only (their blocks only), and stores their rows. Rows a pending farm already has (a redrawn
polygon, an id reused for another field) are first superseded by ``no_data`` rows in the
transaction that records the set (:func:`tombstones`): the old polygon's values never mix
with the new one's. Progress is kept per scene in the ``catchup`` table under the pending
set's id (unique per recording), so a run killed half-way continues where it stopped, and
the set is cleared in the transaction that stores its last scene.

The detection that follows recomputes every look (the book's fingerprint changed), so the
joined farms' looks equal those of a workdir that had them from the start.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from .book import Farms
from .book.changes import redrawn_farms
from .catalog import find_scenes
from .config import Settings
from .ingest import IngestResult, ProgressFn, ingest
from .ledger import CATCHUP_TABLE
from .observations import observation_columns
from .store import Store

__all__ = ["META_KEY", "catch_up", "pending_after_change", "pending_set", "tombstones"]

log = logging.getLogger(__name__)

#: manifest meta key of the pending set: ``{"set": id, "farms": [farm ids]}``
META_KEY = "history_pending"


def pending_after_change(
    old: gpd.GeoDataFrame, new: gpd.GeoDataFrame, meta: Mapping[str, Any], *, nonce: str
) -> dict[str, Any] | None:
    """The farms of ``new`` whose history the store lacks after the book changed from ``old``.

    Parameters
    ----------
    old, new
        The stored and the new checked book (``farm_id``, geometry).
    meta
        The store's manifest meta: a set still pending from an interrupted run is kept (its
        farms that are still in the book).
    nonce
        Makes the set's id unique (the run id): a book that comes back to an earlier
        version is a new set, not one whose scenes were read already.

    Returns
    -------
    dict or None
        ``{"set": id, "farms": ids in book order}``, or None when every farm has its history.
    """
    ids = set(new["farm_id"]) - set(old["farm_id"])
    ids |= set(redrawn_farms(old, new))
    before = pending_set(meta)
    if before is not None:
        ids |= set(before["farms"]) & set(new["farm_id"])
    if not ids:
        return None
    rows = new[new["farm_id"].isin(ids)]
    h = hashlib.blake2b(digest_size=10)
    h.update(nonce.encode("utf-8"))
    h.update("\0".join(rows["farm_id"]).encode("utf-8"))
    h.update(b"".join(rows.geometry.to_wkb()))
    return {"set": h.hexdigest(), "farms": rows["farm_id"].tolist()}


def pending_set(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pending set recorded in a manifest's meta (None when there is none)."""
    value = meta.get(META_KEY)
    return value if isinstance(value, dict) and value.get("farms") else None


def tombstones(
    store: Store, manifest: Mapping[str, Any], farm_ids: Sequence[str], indices: Sequence[str]
) -> pd.DataFrame:
    """``no_data`` rows for every stored (farm, date) of ``farm_ids``: appended, they supersede
    the rows measured over a polygon the farm no longer has (observations are keyed by farm
    and date), so no old value survives where the new polygon is not read again, and a
    same-day merge never prefers the old polygon's row.
    """
    import pyarrow.parquet as pq

    cols = observation_columns(indices)
    ids = list(farm_ids)
    frames = [
        pq.read_table(
            path, columns=["farm_id", "date", "item_id"], filters=[("farm_id", "in", ids)]
        ).to_pandas()
        for path in store.parts("observations", dict(manifest))
    ]
    keys = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if keys.empty:
        return pd.DataFrame(columns=cols)
    keys = keys.drop_duplicates(["farm_id", "date"], keep="last").reset_index(drop=True)
    out = pd.DataFrame({c: np.nan for c in cols}, index=keys.index)
    out[["farm_id", "date", "item_id"]] = keys[["farm_id", "date", "item_id"]]
    out["status"] = "no_data"
    return out[cols]


def catch_up(
    farms: Farms,
    catalog: str,
    store: Store,
    pending: Mapping[str, Any],
    *,
    ledger: pd.DataFrame,
    end: str,
    indices: Sequence[str],
    settings: Settings,
    run_id: str,
    read_tonight: Collection[str] = (),
    progress: ProgressFn | None = None,
) -> IngestResult:
    """Read the ledger's scenes again over the pending farms and store their observations.

    Parameters
    ----------
    farms
        The whole checked book (the pending farms are taken from it).
    catalog
        The run's catalog (searched again over the pending farms' bounds).
    store
        The workdir's store, locked by the caller.
    pending
        The pending set (:func:`pending_set`).
    ledger
        The ledger as read before this run's ingestion: the scenes stored for the other
        farms (scenes ingested tonight were read with the pending farms already).
    end, indices, settings, run_id, progress
        As for :func:`agrisat.ingest.ingest`.
    read_tonight
        Ids of the scenes this run's ingestion read with the pending farms in the book
        (not read again).

    Returns
    -------
    IngestResult
        What was read; the set is cleared from the meta once every scene is stored.
    """
    ids = set(pending["farms"])
    gdf = farms.gdf[farms.gdf["farm_id"].isin(ids)].reset_index(drop=True)
    result = IngestResult()
    if gdf.empty:  # every pending farm has left the book
        _clear(store)
        return result
    sub = Farms(gdf=gdf, rejects=farms.rejects.iloc[:0], source=farms.source)
    first = _first_day(ledger)
    if first is None or first > end:  # nothing stored yet: the regular ingestion reads it all
        _clear(store)
        return result
    done = _done(store, str(pending["set"]))
    items = find_scenes(
        catalog,
        bbox=sub.bounds,
        start=first,
        end=end,
        collection=settings.run.collection,
        policy=settings.net,
    )
    # every scene over them since the history began: those in the ledger, a newer version of
    # one (re-published since it was stored), and scenes of an area the old book did not
    # reach (outside the regular search's look-back)
    todo = [i for i in items if i.id not in done and i.id not in read_tonight]
    log.info(
        "history of %d farm(s) that joined the book or were redrawn: %d scene(s) to read over "
        "them (%d read before)",
        len(sub),
        len(todo),
        len(done),
    )
    result = ingest(
        sub,
        items,
        todo,
        store,
        indices=indices,
        settings=settings,
        run_id=run_id,
        ledger=ledger,
        batch_items=settings.run.batch_items,
        progress=progress,
        history=str(pending["set"]),
    )
    if not result.items_failed:
        _clear(store)
    return result


def _first_day(ledger: pd.DataFrame) -> str | None:
    """The first day of the workdir's history: the ledger's earliest scene (None if empty)."""
    if ledger.empty:
        return None
    return str(ledger["day"].astype(str).min())


def _done(store: Store, set_id: str) -> set[str]:
    table = store.read(CATCHUP_TABLE)
    if table.empty:
        return set()
    return set(table.loc[table["set"] == set_id, "item_id"].astype(str))


def _clear(store: Store) -> None:
    with store.transaction() as txn:
        txn.meta[META_KEY] = None
