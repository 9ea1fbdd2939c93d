"""The raw book a source holds before any row is judged, and its coordinate reference system."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyproj import CRS
from pyproj.exceptions import CRSError

from ..errors import BookError
from ..gcj02 import offset_system

__all__ = ["RawBook", "resolve_crs"]


@dataclass
class RawBook:
    """What a source holds, before any row is judged."""

    name: str
    frame: pd.DataFrame  # attribute columns as read (RangeIndex), geometry excluded
    geoms: np.ndarray  # shapely geometries or None, in ``crs``
    crs: CRS
    geom_text: np.ndarray | None = None  # the raw geometry cells of a CSV, for the rejects
    pre_reasons: np.ndarray | None = None  # per-row reason found while parsing (CSV)
    geometry_column: str | None = None  # None: the CSV has no geometry column
    offset: str | None = None  # "gcj02"/"bd09" when a CSV crs column names one


def _parse_crs(value: object, what: str) -> CRS:
    try:
        return CRS.from_user_input(value)
    except CRSError:
        raise BookError(
            f"{what}: {value!r} is not a CRS pyproj understands; use e.g. EPSG:4326"
        ) from None


def resolve_crs(
    found: CRS | None, declared: str | None, name: str, *, default: str | None = None
) -> CRS:
    """The book's CRS: the file's own, else ``declared`` (``--crs``), else ``default``.

    ``declared`` may name GCJ-02 or BD-09 (see :mod:`agrisat.book._offset`): their CRS is
    EPSG:4326, and the file's own CRS must then be WGS84 longitude/latitude.
    """
    offset = offset_system(declared)
    if offset is not None:
        given: CRS | None = CRS.from_epsg(4326)
    else:
        given = _parse_crs(declared, f"book {name}, crs") if declared else None
    if found is not None and given is not None and not _same_crs(found, given):
        if offset is not None:
            raise BookError(
                f"book {name} declares CRS {found.to_string()} but {declared} was given; "
                f"GCJ-02/BD-09 coordinates are longitude/latitude, so the file must be "
                f"EPSG:4326 or have no CRS: drop --crs or fix the file"
            )
        raise BookError(
            f"book {name} declares CRS {found.to_string()} but {given.to_string()} was given; "
            f"drop --crs or fix the file"
        )
    crs = found or given or (CRS.from_user_input(default) if default else None)
    if crs is None:
        raise BookError(
            f"book {name} has no coordinate reference system; declare it, "
            f"e.g. --crs EPSG:xxxx (crs= in Python), or add a .prj / write it with a CRS"
        )
    return crs


def _same_crs(a: CRS, b: CRS) -> bool:
    if a.equals(b, ignore_axis_order=True):
        return True
    ea, eb = a.to_epsg(min_confidence=70), b.to_epsg(min_confidence=70)
    return ea is not None and ea == eb
