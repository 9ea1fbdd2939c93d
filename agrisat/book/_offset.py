"""Books drawn on Chinese consumer maps: GCJ-02 / BD-09 declarations, and the conversion.

GCJ-02 and BD-09 have no EPSG code; they are WGS84 longitude/latitude with an offset. A book
says it is in one of them in three ways (see :func:`agrisat.book.load_book`):

- ``crs="gcj02"`` / ``--crs gcj02`` (or ``bd09``; any case, ``GCJ-02`` too);
- a CSV ``crs`` column (or ``srs``/``epsg``) holding that value;
- a ``coord_sys`` column, per row, in any format: ``gcj02``, ``bd09`` or ``wgs84`` (blank:
  the book's declaration, else WGS84). Mixed rows are fine when the book declares nothing;
  a row contradicting the book-level declaration is a whole-book error, as for CRSs.

The file's own CRS must then be WGS84 longitude/latitude (EPSG:4326 / CRS84) or absent.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from ..errors import BookError
from ..gcj02 import in_china, offset_system, to_wgs84_geometries
from ._columns import find_optional

__all__ = ["OFFSET_COLUMN", "OFFSET_LABELS", "apply_offsets", "row_offsets"]

logger = logging.getLogger(__name__)

#: The per-row flag column (matched like other columns: ``Coord Sys`` and ``COORD-SYS`` too).
OFFSET_COLUMN = "coord_sys"
OFFSET_LABELS: dict[str, str] = {"gcj02": "GCJ-02", "bd09": "BD-09", "wgs84": "WGS84"}
_WGS84_WORDS = frozenset({"wgs84", "wgs1984", "epsg4326", "4326", "crs84", "ogccrs84"})
_WGS84 = CRS.from_epsg(4326)


def _system(value: object) -> str | None:
    """Canonical name of a flag cell: gcj02, bd09, wgs84, or None (blank/unknown)."""
    found = offset_system(value)
    if found is not None:
        return found
    key = "".join(ch for ch in str(value).lower() if ch.isascii() and ch.isalnum())
    return "wgs84" if key in _WGS84_WORDS else None


def _is_blank(value: object) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return True
    return str(value).strip().lower() in ("", "nan", "none", "null", "na", "n/a", "-")


def row_offsets(
    frame: pd.DataFrame, *, declared: str | None, from_file: str | None, crs: CRS, name: str
) -> np.ndarray:
    """Per row: ``"gcj02"``, ``"bd09"`` or None (plain WGS84 / the book's own CRS).

    Parameters
    ----------
    frame
        The source's attribute columns (to find :data:`OFFSET_COLUMN`).
    declared
        The offset system named by ``crs=`` (None when ``crs=`` is a real CRS or absent).
    from_file
        The offset system named by a CSV ``crs`` column.
    crs
        The book's CRS as resolved (EPSG:4326 when an offset system was named).
    name
        The book's file name, for messages.

    Raises
    ------
    BookError
        Declarations disagree, a flag cell is not a known system, or the file's CRS is not
        WGS84 longitude/latitude while some rows are flagged GCJ-02 / BD-09.
    """
    if declared and from_file and declared != from_file:
        raise BookError(
            f"book {name}: its crs column says {OFFSET_LABELS[from_file]} but "
            f"{OFFSET_LABELS[declared]} was given; drop --crs or fix the file"
        )
    level = declared or from_file
    out = np.full(len(frame), level, dtype=object)
    labels = {str(c): c for c in frame.columns}
    col = find_optional(list(labels), (OFFSET_COLUMN,), name)
    if col is not None:
        blank = 0
        for i, cell in enumerate(frame[labels[col]]):
            if _is_blank(cell):
                blank += 1
                continue
            system = _system(cell)
            if system is None:
                raise BookError(
                    f"book {name}, row {i + 1}: column {col!r} holds {str(cell)[:40]!r}; "
                    f"use gcj02, bd09 or wgs84 (or leave it empty)"
                )
            if level is not None and system != level:
                raise BookError(
                    f"book {name}, row {i + 1}: column {col!r} says {OFFSET_LABELS[system]} "
                    f"but the book is declared {OFFSET_LABELS[level]}; drop the declaration "
                    f"(--crs / crs column) or fix the row"
                )
            out[i] = None if system == "wgs84" else system
        flagged = sum(v is not None for v in out)
        if blank and level is None and flagged:
            # a blank cell is WGS84 by the rule above; beside GCJ-02/BD-09 rows it may as well
            # be a forgotten flag: hundreds of metres on plots of a few hectares
            logger.warning(
                "book %s: %d row(s) leave column %r empty while %d row(s) are GCJ-02/BD-09; "
                "the empty ones are taken as WGS84 -- fill the column to be sure",
                name,
                blank,
                col,
                flagged,
            )
    if any(v is not None for v in out) and not (
        crs.equals(_WGS84, ignore_axis_order=True) or crs.to_epsg(min_confidence=70) == 4326
    ):
        raise BookError(
            f"book {name} is flagged GCJ-02/BD-09 but its CRS is {crs.to_string()}; those "
            f"offsets apply to longitude/latitude only: store the book as EPSG:4326 or drop "
            f"the flag"
        )
    return out


def apply_offsets(geoms: np.ndarray, offsets: np.ndarray, name: str) -> np.ndarray:
    """Convert the flagged rows' geometries to WGS84 (a new array; others are the same objects).

    Logs, per system, how many geometries were converted and how many had vertices outside
    China (left unchanged there). Counts only: parcels are personal data.
    """
    out = np.asarray(geoms, dtype=object).copy()
    for system, count in sorted(Counter(v for v in offsets if v is not None).items()):
        rows = np.flatnonzero(offsets == system)
        present = rows[~shapely.is_missing(out[rows])]
        coords, index = shapely.get_coordinates(out[present], return_index=True)
        outside = np.unique(index[~in_china(coords[:, 0], coords[:, 1])]).size
        out[present] = to_wgs84_geometries(out[present], source=system)
        logger.info(
            "book %s: %d row(s) declared %s, %d geometries converted to WGS84 "
            "(%d with vertices outside China, left unchanged there)",
            name,
            count,
            OFFSET_LABELS[system],
            present.size,
            outside,
        )
    return out
