"""Turn a loan-book source (file or GeoDataFrame) into raw rows + geometries + a CRS.

Nothing here judges rows; whole-file problems raise :class:`BookError` naming the file.
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from ..errors import BookError
from ..gcj02 import offset_system
from ._columns import CRS_ALIASES, GEOMETRY_ALIASES, find_optional

__all__ = ["MAX_FILE_MB", "SUPPORTED_SUFFIXES", "RawBook", "read_geodataframe", "read_path"]

#: Files (and the uncompressed content of zips) above this size are refused; see load_book.
MAX_FILE_MB: float = 500.0

# GML is left out on purpose: GDAL writes a .gfs file beside it when listing its layers and
# may fetch its XML schemas from the internet; convert it (ogr2ogr -f GPKG) first.
_OGR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb", ".gdb")
_PARQUET_SUFFIXES = (".parquet", ".geoparquet")
SUPPORTED_SUFFIXES: tuple[str, ...] = (*_OGR_SUFFIXES, *_PARQUET_SUFFIXES, ".zip", ".csv")
_RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".img", ".nc", ".hdf", ".png", ".jpg", ".jpeg", ".asc")
_RASTER_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+", b"\x89PNG", b"\xff\xd8\xff")
# Members of a zip we would open, best first; GeoJSON last because zips often carry JSON
# metadata beside the real layer.
_ZIP_MAIN = (".shp", ".gpkg", ".fgb", ".gdb", *_PARQUET_SUFFIXES)
_ZIP_FALLBACK = (".geojson", ".json")
_EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls (and other MS Office) files
_EXCEL_HINT = "Excel books are not read: save as CSV with a WKT geometry column (or as GeoPackage)"
_READ_ERRORS = (RuntimeError, OSError, ValueError, UnicodeDecodeError)


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


def read_geodataframe(
    gdf: gpd.GeoDataFrame, *, crs: str | None, name: str = "<GeoDataFrame>"
) -> RawBook:
    """Take a GeoDataFrame as a book (copied; the caller's frame is not changed)."""
    try:
        geom_name = gdf.geometry.name
    except AttributeError:
        raise BookError(f"book {name} has no active geometry column; call set_geometry()") from None
    frame = pd.DataFrame(gdf.drop(columns=[geom_name])).reset_index(drop=True)
    repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if repeated:
        raise BookError(f"book {name} repeats column name(s) {', '.join(repeated)}; rename them")
    geoms = np.asarray(gdf.geometry.to_numpy(), dtype=object)
    return RawBook(name, frame, geoms, resolve_crs(gdf.crs, crs, name))


def _path_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def read_path(
    source: str | os.PathLike[str], *, crs: str | None, layer: str | None, max_mb: float
) -> RawBook:
    """Read a book file; see :func:`agrisat.book.load_book` for what is accepted."""
    text = os.fspath(source)
    if text.startswith("/vsi") or "://" in text:
        raise BookError(f"book {text}: only local files are read; download it first")
    path = Path(text)
    name = path.name
    if not path.exists():
        raise BookError(f"book {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".vrt":
        raise BookError(f"book {name}: GDAL .vrt files are refused (they can point at any file)")
    if suffix in _RASTER_SUFFIXES:
        raise BookError(f"book {name} is a raster image, not a vector loan book")
    if path.is_dir() and suffix != ".gdb":
        raise BookError(f"book {name} is a directory; give the book file itself")
    try:
        size_mb = _path_size(path) / 1e6
        head = b""
        if not path.is_dir():
            with path.open("rb") as fh:
                head = fh.read(256)
    except OSError as exc:
        raise BookError(f"book {name} cannot be read: {exc.strerror or exc}") from None
    if size_mb > max_mb:
        raise BookError(
            f"book {name} is {size_mb:.0f} MB, above the {max_mb:g} MB limit; "
            f"split it or raise the limit (max_file_mb)"
        )
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<ogrvrtdatasource", b"<vrtdataset")):
        raise BookError(f"book {name} is a GDAL VRT file; refused (it can point at any file)")
    if head.startswith(_RASTER_MAGIC):
        raise BookError(f"book {name} is a raster image, not a vector loan book")
    if suffix in _EXCEL_SUFFIXES or head.startswith(_OLE_MAGIC):
        raise BookError(f"book {name}: unsupported file type {suffix or '(Excel)'}; {_EXCEL_HINT}")
    if suffix == ".zip" or head.startswith(b"PK\x03\x04"):
        return _read_zip(path, crs=crs, layer=layer, max_mb=max_mb)
    if suffix in _PARQUET_SUFFIXES:
        return _from_gdf(_read_parquet(path, name), name, crs)
    if suffix == ".csv":
        return _read_csv(path.read_bytes(), name, crs=crs)
    if suffix in _OGR_SUFFIXES:
        return _from_gdf(_read_ogr(str(path), name, layer), name, crs)
    raise BookError(
        f"book {name}: unsupported file type {suffix or '(no extension)'}; "
        f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
    )


def _from_gdf(gdf: gpd.GeoDataFrame, name: str, crs: str | None) -> RawBook:
    return read_geodataframe(gdf, crs=crs, name=name)


def _read_ogr(dataset: str, name: str, layer: str | None) -> gpd.GeoDataFrame:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # GDAL chatter, not for the log
            layers = [(str(n), gt) for n, gt in pyogrio.list_layers(dataset)]
            spatial = [n for n, gt in layers if gt is not None]
            if layer is not None:
                if layer not in spatial:
                    raise BookError(
                        f"book {name} has no vector layer {layer!r}; layers: {', '.join(spatial)}"
                    )
                chosen = layer
            else:
                chosen = _pick_layer(dataset, name, spatial)
            return pyogrio.read_dataframe(dataset, layer=chosen)
    except _READ_ERRORS as exc:
        raise BookError(f"book {name} is not a readable vector file: {exc}") from None


def _pick_layer(dataset: str, name: str, spatial: list[str]) -> str:
    if not spatial:
        raise BookError(f"book {name} holds no vector layer with geometries")
    if len(spatial) == 1:
        return spatial[0]
    filled = [n for n in spatial if pyogrio.read_info(dataset, layer=n)["features"] != 0]
    if len(filled) == 1:
        return filled[0]
    raise BookError(
        f"book {name} has several vector layers ({', '.join(filled or spatial)}); "
        f"pass layer= or keep one layer per file"
    )


def _read_parquet(source: Path | io.BytesIO, name: str) -> gpd.GeoDataFrame:
    try:
        return gpd.read_parquet(source)
    except ValueError as exc:
        if "geo" in str(exc).lower():
            raise BookError(
                f"book {name} is Parquet without GeoParquet metadata; write it with "
                f"GeoDataFrame.to_parquet or use another format"
            ) from None
        raise BookError(f"book {name} is not a readable GeoParquet file: {exc}") from None
    except (OSError, RuntimeError) as exc:
        raise BookError(f"book {name} is not a readable GeoParquet file: {exc}") from None


def _read_zip(path: Path, *, crs: str | None, layer: str | None, max_mb: float) -> RawBook:
    name = path.name
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            # The cap covers what is unpacked too, so a zip bomb is refused before reading.
            unpacked = sum(i.file_size for i in infos) / 1e6
            if unpacked > max_mb:
                raise BookError(
                    f"book {name} unpacks to {unpacked:.0f} MB, above the {max_mb:g} MB limit"
                )
            members = [
                i.filename
                for i in infos
                if not i.is_dir()
                and not i.filename.startswith("__MACOSX/")
                and not Path(i.filename).name.startswith(".")
            ]
            gdbs = sorted({m.split(".gdb/")[0] + ".gdb" for m in members if ".gdb/" in m.lower()})
            plain = [m for m in members if ".gdb/" not in m.lower()]
            main = gdbs + [m for m in plain if m.lower().endswith(_ZIP_MAIN)]
            picks = main or [m for m in plain if m.lower().endswith(_ZIP_FALLBACK)]
            if not picks and any(m.startswith(("xl/", "[Content_Types].xml")) for m in members):
                raise BookError(f"book {name} is an Excel workbook; {_EXCEL_HINT}")
            if len(picks) != 1:
                what = (
                    "no vector file" if not picks else f"several vector files ({', '.join(picks)})"
                )
                raise BookError(f"book {name} holds {what}; zip exactly one book per archive")
            member = picks[0]
            if member.lower().endswith(_PARQUET_SUFFIXES):
                gdf = _read_parquet(io.BytesIO(zf.read(member)), name)
                return _from_gdf(gdf, name, crs)
    except zipfile.BadZipFile as exc:
        raise BookError(f"book {name} is not a readable zip file: {exc}") from None
    except OSError as exc:
        raise BookError(f"book {name} cannot be read: {exc}") from None
    archive = str(path.resolve())
    # GDAL only recognises archives by their .zip suffix unless the path is braced.
    root = f"/vsizip/{archive}" if archive.lower().endswith(".zip") else f"/vsizip/{{{archive}}}"
    return _from_gdf(_read_ogr(f"{root}/{member}", name, layer), name, crs)


def _decode(data: bytes, name: str = "") -> str:
    # A BOM names UTF-16/32 (Excel's "Unicode text" is UTF-16 LE); UTF-8 (with or without the
    # BOM Excel writes) next; GB18030 covers files saved by Chinese-locale Excel; Latin-1 never
    # fails, so a file is never refused for its encoding.
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError:
                raise BookError(
                    f"book {name} starts with a {encoding.upper()} byte-order mark but is not "
                    f"valid {encoding.upper()}; save it as UTF-8 CSV"
                ) from None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


# UTF-32 LE before UTF-16 LE: its BOM begins with UTF-16 LE's
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")


def _parse_geometry_cells(cells: list[str]) -> tuple[np.ndarray, np.ndarray]:
    n = len(cells)
    geoms = np.full(n, None, dtype=object)
    reasons = np.full(n, None, dtype=object)
    texts = np.array([c.strip() for c in cells], dtype=object)
    for i, text in enumerate(texts):
        if not text:
            reasons[i] = "empty geometry"
            continue
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            if _HEX.fullmatch(text):
                geom = shapely.from_wkb(text, on_invalid="ignore")
            else:
                geom = shapely.from_wkt(text, on_invalid="ignore")
        if geom is None:
            reasons[i] = "unparseable WKT"
        else:
            geoms[i] = geom
    return geoms, reasons


def _holds_rows(record: list[str], delimiter: str, width: int) -> bool:
    """Whether a cell of ``record`` holds what looks like whole rows of the file: a line of
    at least ``width - 1`` delimiters after a line break (a quoted address with a line break
    does not)."""
    return any(
        line.count(delimiter) >= width - 1
        for cell in record
        if "\n" in cell
        for line in cell.splitlines()[1:]
    )


def _read_csv(data: bytes, name: str, *, crs: str | None) -> RawBook:
    text = _decode(data, name)
    lines = text.splitlines()
    header_line = next((line for line in lines if line.strip()), "")
    if not header_line:
        raise BookError(f"book {name} is empty; expected a header and at least one row")
    delimiter = max(",;\t|", key=header_line.count)
    # Geometry cells can be far longer than the csv module's default 128 kB limit.
    csv.field_size_limit(max(csv.field_size_limit(), len(data) + 1))
    records: list[list[str]] = []
    spans: list[tuple[int, int]] = []  # each record's first and last line in the file
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    try:
        for r in reader:
            if r:
                records.append(r)
                spans.append((start, reader.line_num))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise BookError(f"book {name} is not a readable CSV file: {exc}") from None
    header = [h.strip() or f"column_{i + 1}" for i, h in enumerate(records[0])]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise BookError(f"book {name} repeats column name(s) {', '.join(repeated)}; rename them")
    width = len(header)
    rows: list[list[str]] = []
    malformed = np.zeros(len(records) - 1, dtype=bool)
    swallowed: dict[int, str] = {}
    for i, record in enumerate(records[1:]):
        if len(record) > width:
            malformed[i] = True
            record = record[:width]
        first, last = spans[i + 1]
        if last > first and _holds_rows(record, delimiter, width):
            # an unbalanced quote ran the cell over the next lines: those rows are inside it
            malformed[i] = True
            swallowed[i] = (
                f"malformed CSV row: an unbalanced quote runs it over lines {first}-{last} "
                f"of the file, whose rows are inside it; close the quote"
            )
        rows.append(record + [""] * (width - len(record)))  # short rows: trailing cells empty
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    geom_col = find_optional(header, GEOMETRY_ALIASES, name)
    crs_col = find_optional(header, CRS_ALIASES, name)
    found, offset = None, None
    if crs_col is not None:
        values = sorted({v.strip() for v in frame[crs_col] if v.strip()})
        if len(values) > 1:
            raise BookError(
                f"book {name}: column {crs_col!r} holds several CRSs ({', '.join(values[:5])}); "
                f"reproject to one CRS or split the file"
            )
        if values:
            offset = offset_system(values[0])
            found = (
                CRS.from_epsg(4326)
                if offset
                else _parse_crs(values[0], f"book {name}, column {crs_col!r}")
            )
    book_crs = resolve_crs(found, crs, name, default="EPSG:4326")
    if geom_col is None:
        n = len(frame)
        empty = np.full(n, None, dtype=object)
        return RawBook(name, frame, empty, book_crs, empty.copy(), empty.copy(), None, offset)
    geoms, reasons = _parse_geometry_cells(list(frame[geom_col]))
    reasons[malformed] = "malformed CSV row"
    for i, why in swallowed.items():
        reasons[i] = why
    geoms[malformed] = None
    texts = frame.pop(geom_col).to_numpy(dtype=object)
    return RawBook(name, frame, geoms, book_crs, texts, reasons, geom_col, offset)
