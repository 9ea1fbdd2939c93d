"""Alerts and the loan book: the book's keys on each alert, and farms that leave the book.

Split from :mod:`agrisat.alerts`. A farm that leaves the book takes its open alerts with it:
the first run without it closes them (:func:`close_departed`: status ``resolved`` on that
run's date, the evidence ending "closed <date>: the farm left the loan book",
:func:`agrisat.i18n.left_book`), and they keep the book keys they had (:func:`attach_book`).
A farm that comes back and is still anomalous gets a new alert: :func:`back_in_book_id` gives
its episode an id derived from the closed alert's instead of reopening it.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import pandas as pd

from .arrowops import isin
from .i18n import LEFT_BOOK, left_book, left_book_evidence

__all__ = [
    "BOOK_KEYS",
    "attach_book",
    "back_in_book_id",
    "book_keys",
    "close_departed",
    "departed_farms",
]

log = logging.getLogger(__name__)

#: the columns an alert takes from the book
BOOK_KEYS: tuple[str, ...] = ("loan_id", "borrower_id", "region", "crop", "exposure")


def departed_farms(hist: pd.DataFrame) -> list[Any]:
    """Farms of ``hist`` (alerts) with an alert closed because the farm left the book."""
    if hist.empty:
        return []
    # column-wise, the test of agrisat.i18n.left_book (a night's history: tens of thousands)
    closed = hist["status"].eq("resolved").to_numpy(dtype=bool, copy=True)
    closed[closed] = (
        hist.loc[closed, "evidence"].astype(str).str.contains(f": {LEFT_BOOK}.", regex=False)
    ).to_numpy(dtype=bool)
    return hist.loc[closed, "farm_id"].unique().tolist()


def close_departed(carried: pd.DataFrame, leaving: Any, day: pd.Timestamp) -> None:
    """Close, in place, the alerts of ``carried`` (indexed by ``alert_id``) whose ids are in
    ``leaving``: their farms are no longer in the book on ``day``."""
    gone = isin(carried.index, list(leaving))
    if not gone.any():
        return
    carried.loc[gone, "evidence"] = [
        left_book_evidence(e, day) for e in carried.loc[gone, "evidence"]
    ]
    carried.loc[gone, "status"] = "resolved"
    carried.loc[gone, "resolved_date"] = day
    carried.loc[gone, "last_updated"] = day
    log.info("alerts on %s: %d closed, their farms left the book", day.date(), int(gone.sum()))


def back_in_book_id(aid: str, resolved: Any, hist: dict[str, dict[str, Any]]) -> str:
    """The id of an episode whose onset-derived id is ``aid`` (``resolved``: its end, or None)
    on a farm back in the book.

    An id that names an alert closed when the farm left the book (``hist``: the history by
    id) is not reopened but replaced by one derived from it, and so on if that one was closed
    the same way on a later departure -- unless the episode is over and no alert took the
    derived id: then it is the closed alert's own event, which stays as it was closed.
    """
    h = hist.get(aid)
    while h is not None and left_book(h):
        after = "A" + hashlib.sha1(f"{aid}|back in the book".encode()).hexdigest()[:15]
        if resolved is not None and after not in hist:
            break
        aid, h = after, hist.get(after)
    return aid


def book_keys(farms: pd.DataFrame) -> pd.DataFrame:
    """``farm_id`` and the :data:`BOOK_KEYS` of each farm of the book, as plain typed columns
    (text keys, "" for a missing region, float exposure)."""
    return pd.DataFrame(
        {
            "farm_id": farms["farm_id"].astype(str).to_numpy(),
            "loan_id": farms["loan_id"].astype(str).to_numpy(),
            "borrower_id": farms["borrower_id"].astype(str).to_numpy(),
            "region": farms["region"].fillna("").astype(str).to_numpy()
            if "region" in farms.columns
            else "",
            "crop": farms["crop"].astype(str).to_numpy(),
            "exposure": farms["exposure"].astype(float).to_numpy(),
        }
    )


def attach_book(alerts: pd.DataFrame, farms: pd.DataFrame) -> pd.DataFrame:
    """``alerts`` with the book's :data:`BOOK_KEYS` of each farm (an alert whose farm is not in
    ``farms`` keeps the values it has: those of the book it left) and typed columns; the
    caller picks and orders the columns."""
    book = book_keys(farms)
    a = alerts.drop(columns=[c for c in BOOK_KEYS if c in alerts.columns])
    a = a.merge(book, on="farm_id", how="left")  # a left merge keeps the rows' order
    out = ~isin(a["farm_id"].astype(str), book["farm_id"].tolist())
    if out.any():
        for col in BOOK_KEYS:
            if col in alerts.columns:
                a.loc[out, col] = alerts[col].to_numpy()[out]
    for col in ("onset_date", "last_observed", "first_raised", "last_updated", "resolved_date"):
        a[col] = pd.to_datetime(a[col])
    for col in ("score", "value", "expected", "exposure", "peer_median", "peer_n", "usual_gap"):
        a[col] = pd.to_numeric(a[col], errors="coerce").astype(float)
    a["n_looks"] = pd.to_numeric(a["n_looks"], errors="coerce").fillna(0).astype(int)
    return a
