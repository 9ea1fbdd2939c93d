"""The loan book: farm polygons with their loan keys, read, checked and normalised.

:func:`load_book` reads a book and splits it into accepted farms (:attr:`Farms.gdf`, EPSG:4326)
and quarantined rows (:attr:`Farms.rejects`, written by :func:`write_rejects` to
``<workdir>/rejects.csv``). A problem with the whole file raises :class:`~agrisat.errors.BookError`
naming the file; a problem with one row never stops the others.

Sources
    GeoPackage, GeoJSON, GeoParquet (``.parquet``/``.geoparquet``), Shapefile, zipped Shapefile
    or any other single vector file in a ``.zip`` (also a zip without the suffix), FlatGeobuf,
    a FileGDB folder, a CSV with a WKT (or hex WKB) geometry column, or a GeoDataFrame.
    Files must have a CRS (pass ``crs=`` / ``--crs`` when they do not); a CSV is EPSG:4326
    unless ``crs=`` is given or a ``crs`` column holds one value. A CRS given both ways must
    agree. Multi-layer files must have one non-empty vector layer, or pass ``layer=``.
    GCJ-02 / BD-09 (Chinese map apps): ``crs="gcj02"``/``"bd09"`` (any case, ``GCJ-02``), the
    same value in a CSV ``crs`` column, or a per-row ``coord_sys`` column (``gcj02``, ``bd09``,
    ``wgs84``) in any format; converted to WGS84 (:mod:`agrisat.gcj02`) before the checks
    below; see :mod:`agrisat.book._offset` for how declarations combine.
    CSVs: delimiter ``,`` ``;`` tab or ``|`` (whichever the header uses most), UTF-8 (BOM or
    not), else GB18030, else Latin-1; blank lines are skipped; a row with more cells than the
    header is quarantined as ``malformed CSV row``, a shorter one is padded with empty cells.

Columns (matched case-insensitively; spaces, dots and dashes count as ``_``; the canonical
name wins over an alias, two candidates for one column are an error)
    ``farm_id`` (farmid, farm_no, farm_number, parcel_id, parcelid, field_id),
    ``loan_id`` (loanid, loan_no, loan_number),
    ``borrower_id`` (borrowerid, borrower_i — a Shapefile truncates names to 10 characters —,
    borrower_no, customer_id), ``crop`` (crop_type, croptype, crop_name),
    ``exposure`` (exposure_amount, outstanding, outstanding_amount), optional ``region``
    (county, branch); CSV geometry: ``geometry`` (wkt, geom, the_geom, geometry_wkt); also
    the Chinese headers of the ``--lang zh`` export (地块编号 贷款编号 借款人编号 作物 风险敞口
    区域) and a few more (:data:`agrisat.book._columns.ALIASES`).

Values
    Ids become strings: integers (also integral floats) lose the ``.0``, text is stripped and
    otherwise kept (``0012`` stays ``0012`` in a CSV). Ids are data, never paths: an id such as
    ``../../x`` is accepted and no file is ever named after it. Crops are lower-cased with runs
    of spaces, ``-`` and ``/`` turned into ``_``, then common Chinese/English names become
    calendar codes (冬小麦/wheat → winter_wheat, 玉米/corn → maize, 小麦-玉米轮作 → wheat_maize);
    farms whose crop has no built-in calendar are counted in one WARNING. Exposure: see
    :func:`parse_exposure`; the decimal mark is decided per column. A unit in the exposure
    header scales the amounts to the currency unit: ``风险敞口（万元）`` or ``exposure (万元)``
    ×10,000, ``exposure_k`` / ``(CNY '000)`` / 千元 ×1,000, 百万元 / ``million`` ×10⁶, 亿元 ×10⁸
    (logged once); a header naming two units is refused.
    Other source columns are not carried into :attr:`Farms.gdf` (they may hold personal data)
    but are kept in the rejects so the bank can fix the rows.

Checks, in this order; a rejected row carries the first reason that applies
    (see :data:`REJECT_REASONS`; the ``reason`` cell is the category, optionally followed by
    ``": "`` and a detail)

    1. ``missing farm_id`` / ``missing loan_id`` / ``missing borrower_id`` (empty, NaN, or one
       of ``nan none null na n/a #n/a -``);
    2. ``duplicate farm_id``: EVERY row sharing an id is rejected — keeping the first would be
       a guess, and the bank must decide which row is right;
    3. ``missing crop`` / ``unparseable crop`` (no letter or digit);
    4. ``missing exposure`` / ``exposure not a number`` (also NaN, inf) / ``negative exposure``
       / ``ambiguous exposure`` (``12.000`` or ``1,234`` in a column whose other cells do not
       show one decimal mark);
    5. CSV only: ``malformed CSV row``, ``unparseable WKT``;
    6. ``empty geometry`` (null or empty); Z/M are dropped; ``not a polygon: <type>`` (a
       GeometryCollection of polygons only is accepted as a MultiPolygon);
       ``non-finite coordinates`` (NaN, inf);
    7. ``coordinates look swapped (x/y)``: the bounding box falls outside the CRS's area of use
       (pyproj ``CRS.area_of_use`` ± 5°, and |lat| ≤ 90, |lon| ≤ 180) but the swapped reading
       falls inside — or (books of 3+ rows) the row lies > 1000 km from the book's median
       location while the swapped reading lies < 100 km from it;
       ``coordinates outside the CRS area of use`` otherwise. Swaps that land somewhere
       plausible (every farm of an EU book at lat 50, lon 5 written as lon 50, lat 5) cannot
       be told apart and are not caught;
    8. invalid geometry is repaired with ``shapely.make_valid`` (structure method, polygonal
       parts only) when the repair is unambiguous: the linework method agrees on the area
       within ``settings.repair_area_tolerance`` and at least ``1 - tolerance`` of the area
       GEOS measures on the invalid rings is kept; such farms get ``repaired=True``; otherwise
       ``invalid geometry, not repairable`` (or ``zero area`` for a collapsed ring);
    9. reprojection to EPSG:4326; ``area_ha`` comes from an ellipsoidal (WGS84) Lambert
       azimuthal equal-area projection centred on the book;
       ``zero area``, ``area too small`` (< ``min_area_ha``), ``area too large``
       (> ``max_area_ha``).

Hostile input
    Only local paths are read (no URLs or ``/vsi`` paths); GDAL ``.vrt`` files (which can point
    at any file) and rasters are refused by suffix and by content; files, and the unpacked
    content of zips, above ``max_file_mb`` (default :data:`MAX_FILE_MB`) are refused; GML is
    not read (GDAL would write ``.gfs`` files beside it and may fetch schemas: convert it to
    GeoPackage first); a zip member is opened by name, never the archive as a whole; nothing
    is written beside the book; ``write_rejects`` prefixes text cells that a spreadsheet would
    run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR; :mod:`agrisat.csvsafe`) with ``'``.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..calendar import default_calendars
from ..config import BookSettings
from ..errors import BookError
from ..gcj02 import offset_system
from ._amounts import parse_exposure, parse_exposures
from ._columns import match_columns, normalise_crops, normalise_ids, warn_rivals
from ._crops import warn_crops_without_calendar
from ._geometry import check_geometries, is_none
from ._offset import apply_offsets, row_offsets
from ._read import MAX_FILE_MB, SUPPORTED_SUFFIXES, RawBook, read_geodataframe, read_path
from ._units import amount_unit

__all__ = [
    "MAX_FILE_MB",
    "REJECT_REASONS",
    "SUPPORTED_SUFFIXES",
    "Farms",
    "load_book",
    "parse_exposure",
    "reason_category",
    "write_rejects",
]

logger = logging.getLogger(__name__)

#: Every category a rejected row's ``reason`` starts with, in the order they are checked.
REJECT_REASONS: tuple[str, ...] = (
    "missing farm_id",
    "missing loan_id",
    "missing borrower_id",
    "duplicate farm_id",
    "missing crop",
    "unparseable crop",
    "missing exposure",
    "exposure not a number",
    "negative exposure",
    "ambiguous exposure",
    "malformed CSV row",
    "unparseable WKT",
    "empty geometry",
    "not a polygon",
    "non-finite coordinates",
    "coordinates look swapped (x/y)",
    "coordinates outside the CRS area of use",
    "invalid geometry, not repairable",
    "zero area",
    "area too small",
    "area too large",
)
FARM_COLUMNS: tuple[str, ...] = (
    "farm_id",
    "loan_id",
    "borrower_id",
    "crop",
    "exposure",
    "region",
    "area_ha",
    "repaired",
    "geometry",
)
_KEYS = ("farm_id", "loan_id", "borrower_id")
_DEFAULT_SETTINGS = BookSettings()


@dataclass(frozen=True, eq=False)
class Farms:
    """A checked loan book.

    Attributes
    ----------
    gdf
        Accepted farms in EPSG:4326 with a RangeIndex and the columns :data:`FARM_COLUMNS`.
    rejects
        One row per rejected source row: ``source_row`` (1-based data row), ``farm_id`` (may be
        ``""``), ``reason``, the source's other columns as read, and ``geometry_wkt`` (the
        geometry as submitted, in the source CRS; a CSV's raw cell).
    source
        The file name (not the path), or ``"<GeoDataFrame>"``.
    """

    gdf: gpd.GeoDataFrame
    rejects: pd.DataFrame
    source: str

    def __len__(self) -> int:
        return len(self.gdf)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(min_lon, min_lat, max_lon, max_lat)`` of the accepted farms (NaNs when none)."""
        if len(self.gdf) == 0:
            return (math.nan, math.nan, math.nan, math.nan)
        x0, y0, x1, y1 = (float(v) for v in self.gdf.total_bounds)
        return (x0, y0, x1, y1)


def reason_category(reason: str) -> str:
    """The category of a ``reason`` cell: the text before the first ``": "``."""
    return reason.split(": ", 1)[0]


def load_book(
    source: str | os.PathLike[str] | gpd.GeoDataFrame | Farms,
    *,
    crs: str | None = None,
    settings: BookSettings = _DEFAULT_SETTINGS,
    layer: str | None = None,
    max_file_mb: float | None = None,
) -> Farms:
    """Read and check a loan book.

    Parameters
    ----------
    source
        A book file (see the module documentation for formats), a GeoDataFrame (normalised the
        same way; not modified), or a :class:`Farms` (returned as is).
    crs
        The CRS of a file that declares none (or of a CSV); must agree with a declared one.
        ``"gcj02"`` or ``"bd09"`` declares longitude/latitude with that offset.
    settings
        Area limits and the repair tolerance.
    layer
        The layer to read from a multi-layer file.
    max_file_mb
        Size limit for the file and for a zip's unpacked content; defaults to
        ``settings.max_file_mb`` when that setting exists, else :data:`MAX_FILE_MB`.

    Returns
    -------
    Farms
        Accepted farms and quarantined rows.

    Raises
    ------
    BookError
        The file is missing, unreadable, not a vector format, too large, has no CRS, lacks a
        required column, or has no rows.
    """
    if isinstance(source, Farms):
        return source
    if isinstance(source, gpd.GeoDataFrame):
        raw = read_geodataframe(source, crs=crs)
    elif isinstance(source, str | os.PathLike):
        limit = max_file_mb if max_file_mb is not None else getattr(settings, "max_file_mb", None)
        raw = read_path(
            source, crs=crs, layer=layer, max_mb=MAX_FILE_MB if limit is None else limit
        )
    else:
        raise BookError(
            f"cannot read a loan book from a {type(source).__name__}; "
            f"pass a file path or a GeoDataFrame"
        )
    offsets = row_offsets(
        raw.frame, declared=offset_system(crs), from_file=raw.offset, crs=raw.crs, name=raw.name
    )
    return _check(raw, settings, offsets)


def _check(raw: RawBook, settings: BookSettings, offsets: np.ndarray) -> Farms:
    frame, name = raw.frame, raw.name
    no_geometry = raw.geom_text is not None and raw.geometry_column is None
    cols = match_columns(frame.columns, name, extra_required=("geometry",) if no_geometry else ())
    warn_rivals(frame.columns, "exposure", cols["exposure"], name)
    n = len(frame)
    if n == 0:
        raise BookError(f"book {name} has no rows")
    reasons = np.full(n, None, dtype=object)

    def reject(mask: np.ndarray, reason: str | np.ndarray) -> None:
        mask = mask & is_none(reasons)
        reasons[mask] = reason if isinstance(reason, str) else reason[mask]

    ids = {k: normalise_ids(frame[cols[k]]) for k in _KEYS}
    for key in _KEYS:
        reject(is_none(ids[key]), f"missing {key}")
    farm_ids = pd.Series(ids["farm_id"], dtype=object)
    counts = farm_ids.map(farm_ids.dropna().value_counts()).fillna(0).to_numpy(dtype=int)
    dup_text = np.full(n, None, dtype=object)
    for i in np.flatnonzero(counts > 1):  # texts for the duplicates only, not for every row
        dup_text[i] = f"duplicate farm_id: {counts[i]} rows share it"
    reject(counts > 1, dup_text)

    crops, crop_why = normalise_crops(frame[cols["crop"]])
    reject(~is_none(crop_why), crop_why)
    amounts, amount_why = parse_exposures(frame[cols["exposure"]])
    reject(~is_none(amount_why), amount_why)
    scale, unit = amount_unit(cols["exposure"], book=name)
    if unit is not None:
        # 风险敞口（万元）: the amounts are 万元; the loan book's contract is the currency unit.
        has = ~is_none(amounts)
        amounts[has] = amounts[has].astype(float) * scale
        logger.info(
            "book %s: exposure column is in %s; amounts multiplied by %g", name, unit, scale
        )
    if raw.pre_reasons is not None:
        reject(~is_none(raw.pre_reasons), raw.pre_reasons)
    # GCJ-02/BD-09 rows become WGS84 before any geometry check; rejects keep the source text.
    shifted = ~is_none(offsets)
    geoms = apply_offsets(raw.geoms, offsets, name) if shifted.any() else raw.geoms
    geo = check_geometries(geoms, raw.crs, settings)
    reject(~is_none(geo.reasons), geo.reasons)

    ok = is_none(reasons)
    if "region" in cols:
        region = normalise_ids(frame[cols["region"]])
        region[is_none(region)] = ""
    else:
        region = np.full(n, "", dtype=object)
    gdf = gpd.GeoDataFrame(
        {
            "farm_id": pd.Series(ids["farm_id"][ok], dtype=str),
            "loan_id": pd.Series(ids["loan_id"][ok], dtype=str),
            "borrower_id": pd.Series(ids["borrower_id"][ok], dtype=str),
            "crop": pd.Series(crops[ok], dtype=str),
            "exposure": pd.Series(amounts[ok], dtype=float),
            "region": pd.Series(np.asarray(region, dtype=object)[ok], dtype=str),
            "area_ha": pd.Series(geo.area_ha[ok], dtype=float),
            "repaired": pd.Series(geo.repaired[ok], dtype=bool),
        },
        geometry=gpd.GeoSeries(geo.geoms[ok], crs="EPSG:4326"),
    )
    rejects = _rejects(raw, cols["farm_id"], ids["farm_id"], reasons, ~ok)
    # built-in calendars only: a run's calendars file may add crops (the message says so)
    warn_crops_without_calendar(crops[ok], default_calendars(), name)
    tally = Counter(reason_category(r) for r in reasons[~ok])
    summary = ", ".join(f"{k}={v}" for k, v in tally.most_common()) or "none"
    logger.info(
        "book %s: %d farms accepted, %d rejected (reasons: %s)",
        name,
        ok.sum(),
        n - ok.sum(),
        summary,
    )
    return Farms(gdf=gdf, rejects=rejects, source=name)


def _rejects(
    raw: RawBook, farm_col: Hashable, farm_ids: np.ndarray, reasons: np.ndarray, mask: np.ndarray
) -> pd.DataFrame:
    reserved = {"source_row", "farm_id", "reason", "geometry_wkt"}
    others = raw.frame.loc[mask, [c for c in raw.frame.columns if c != farm_col]]
    others = others.rename(columns={c: f"{c}_source" for c in others.columns if str(c) in reserved})
    if raw.geom_text is not None:
        wkt = [("" if t is None else str(t)) for t in raw.geom_text[mask]]
    else:
        wkt = [
            ("" if t is None else t) for t in shapely.to_wkt(raw.geoms[mask], rounding_precision=-1)
        ]
    out = pd.DataFrame(
        {
            "source_row": pd.Series(np.flatnonzero(mask) + 1, dtype="int64"),
            "farm_id": pd.Series([i or "" for i in farm_ids[mask]], dtype=str),
            "reason": pd.Series(reasons[mask], dtype=str),
        }
    )
    out = pd.concat([out, others.reset_index(drop=True)], axis=1)
    out["geometry_wkt"] = pd.Series(wkt, dtype=str)
    return out


def write_rejects(farms: Farms, workdir: str | os.PathLike[str]) -> Path:
    """Write ``workdir/rejects.csv`` (UTF-8; header only when nothing was rejected).

    Text cells a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``,
    tab or CR and not a plain number) get a leading ``'`` (:mod:`agrisat.csvsafe`).

    The file is written to a temporary file in ``workdir`` and moved into place, so a reader
    never sees half a file.

    Parameters
    ----------
    farms
        A loaded book.
    workdir
        The run's working directory (created if missing).

    Returns
    -------
    Path
        The path of ``rejects.csv``.
    """
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "rejects.csv"
    from ..csvsafe import defuse_frame
    from ..store import atomic_write_text

    # book values a spreadsheet would run as formulas get a leading ' (agrisat.csvsafe)
    table = defuse_frame(farms.rejects)

    return atomic_write_text(target, table.to_csv(index=False, lineterminator="\n"))
