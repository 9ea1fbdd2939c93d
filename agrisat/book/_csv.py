"""A CSV loan book: its encoding, delimiter, WKT/WKB geometry cells and CRS column.

Rows the parser cannot split or whose geometry cell does not parse are kept with a reason
(``RawBook.pre_reasons``) and end in the rejects, never dropped.
"""

from __future__ import annotations

import csv
import io
import re
import warnings

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from ..errors import BookError
from ..gcj02 import offset_system
from ._columns import CRS_ALIASES, GEOMETRY_ALIASES, find_optional
from ._raw import RawBook, _parse_crs, resolve_crs

__all__ = ["read_csv"]


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


def read_csv(data: bytes, name: str, *, crs: str | None) -> RawBook:
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
