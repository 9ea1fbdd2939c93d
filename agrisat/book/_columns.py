"""Column matching and cell normalisation for the loan book (no geometry here)."""

from __future__ import annotations

import math
import numbers
import re
import unicodedata
from collections.abc import Hashable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BookError
from ..i18n.tables import COLUMN_LABELS
from ._crops import canonical_crop, crop_key

__all__ = [
    "ALIASES",
    "GEOMETRY_ALIASES",
    "OPTIONAL",
    "REQUIRED",
    "match_columns",
    "normalise_crop",
    "normalise_crops",
    "normalise_id",
    "normalise_ids",
    "normalise_name",
    "parse_exposure",
    "parse_exposures",
]

REQUIRED: tuple[str, ...] = ("farm_id", "loan_id", "borrower_id", "crop", "exposure")
OPTIONAL: tuple[str, ...] = ("region",)

#: Accepted spellings per canonical column, compared after :func:`normalise_name`. The exact
#: canonical name wins over an alias; two candidates for one column are an error, not a guess.
#: ``borrower_i`` is what a Shapefile's 10-character field limit makes of ``borrower_id``.
#: The Chinese ones start with the header agrisat's own ``--lang zh`` export writes
#: (:data:`agrisat.i18n.tables.COLUMN_LABELS`), so an export reads back as a book.
_ZH: Mapping[str, tuple[str, ...]] = {
    "farm_id": ("地块编号", "地块编码", "地块号", "地块id"),
    "loan_id": ("贷款编号", "贷款号", "借据编号", "借据号"),
    "borrower_id": ("借款人编号", "客户编号", "客户号"),
    "crop": ("作物", "作物类型", "作物名称", "种植作物"),
    "exposure": ("风险敞口", "敞口", "贷款余额"),
    "region": ("区域", "地区", "区县", "县"),
}
ALIASES: Mapping[str, tuple[str, ...]] = {
    k: tuple(dict.fromkeys((*v, COLUMN_LABELS[k]["zh"], *_ZH[k])))
    for k, v in {
        "farm_id": (
            "farm_id",
            "farmid",
            "farm_no",
            "farm_number",
            "parcel_id",
            "parcelid",
            "field_id",
        ),
        "loan_id": ("loan_id", "loanid", "loan_no", "loan_number"),
        "borrower_id": ("borrower_id", "borrowerid", "borrower_i", "borrower_no", "customer_id"),
        "crop": ("crop", "crop_type", "croptype", "crop_name"),
        "exposure": ("exposure", "exposure_amount", "outstanding", "outstanding_amount"),
        "region": ("region", "county", "branch"),
    }.items()
}
#: Spellings of the WKT column of a CSV book, and of its optional CRS column.
GEOMETRY_ALIASES: tuple[str, ...] = ("geometry", "wkt", "geom", "the_geom", "geometry_wkt")
CRS_ALIASES: tuple[str, ...] = ("crs", "srs", "epsg")

#: Cell texts that mean "no value" (compared lower-case, stripped). Keys and crops only.
MISSING_TOKENS: frozenset[str] = frozenset({"", "nan", "none", "null", "na", "n/a", "#n/a", "-"})

_NAME_RE = re.compile(r"[^0-9a-z]+")
_UNAME_RE = re.compile(r"[\W_]+")


def normalise_name(name: object) -> str:
    """``" Farm ID "`` → ``"farm_id"``: lower-case, runs of non-alphanumerics become ``_``.

    Letters of any script are kept (``"地块编号"`` stays itself); full-width forms are folded
    (NFKC) first. :func:`match_columns` also tries the ASCII-only form, so ``"farm_id（编号）"``
    still matches ``farm_id``.
    """
    text = unicodedata.normalize("NFKC", str(name)).strip().lower()
    return _UNAME_RE.sub("_", text).strip("_")


def _name_keys(name: object) -> tuple[str, ...]:
    full = normalise_name(name)
    ascii_only = _NAME_RE.sub("_", full).strip("_")
    return tuple(k for k in dict.fromkeys((full, ascii_only)) if k)


def _find(
    columns: Iterable[Hashable], spellings: tuple[str, ...], canonical: str, book: str
) -> Hashable | None:
    by_key: dict[str, list[Hashable]] = {}
    for col in columns:
        for key in _name_keys(col):
            by_key.setdefault(key, []).append(col)
    exact = by_key.get(canonical, [])
    if len(exact) == 1:
        return exact[0]
    keys = [normalise_name(s) for s in spellings]
    candidates = exact if exact else list(dict.fromkeys(c for k in keys for c in by_key.get(k, [])))
    if len(candidates) > 1:
        raise BookError(
            f"book {book}: columns {candidates} could all be {canonical!r}; "
            f"rename or drop all but one"
        )
    return candidates[0] if candidates else None


def match_columns(
    columns: Iterable[Hashable], book: str, *, extra_required: tuple[str, ...] = ()
) -> dict[str, Hashable]:
    """Map canonical names (``farm_id`` …, ``region`` if present) to the source's column labels.

    Raises
    ------
    BookError
        When a required column is missing (all missing ones are listed) or ambiguous.
    """
    cols = list(columns)
    found: dict[str, Hashable] = {}
    for canonical in (*REQUIRED, *OPTIONAL):
        col = _find(cols, ALIASES[canonical], canonical, book)
        if col is not None:
            found[canonical] = col
    missing = [c for c in REQUIRED if c not in found] + list(extra_required)
    if missing:
        spelled = "; ".join(
            f"{c}: {', '.join(ALIASES.get(c, GEOMETRY_ALIASES if c == 'geometry' else (c,)))}"
            for c in missing
        )
        raise BookError(
            f"book {book} lacks required column(s): {', '.join(missing)} "
            f"(found: {', '.join(map(str, cols)) or 'none'}); add them or rename the existing ones "
            f"(accepted spellings, any case: {spelled})"
        )
    return found


def find_optional(columns: Iterable[str], spellings: tuple[str, ...], book: str) -> str | None:
    """The one column matching ``spellings`` (first spelling is the canonical), or None."""
    found = _find(list(columns), spellings, spellings[0], book)
    return None if found is None else str(found)


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def normalise_id(value: Any) -> str | None:
    """A key cell as a string, or None when missing.

    Integers (also integral floats, which is what Shapefile/GPKG readers make of numeric ids
    with gaps) lose their ``.0``; text is stripped but otherwise kept verbatim, so ``0012``
    stays ``0012`` when the source stores text. Ids are data: never used as file names.
    """
    if _is_missing(value):
        return None
    if isinstance(value, bool):
        text = str(value)
    elif isinstance(value, numbers.Integral):
        text = str(int(value))
    elif isinstance(value, numbers.Real):
        f = float(value)
        if not math.isfinite(f):
            return None
        text = str(int(f)) if f.is_integer() else repr(f)
    elif isinstance(value, bytes):
        text = value.decode("utf-8", errors="replace")
    else:
        text = str(value)
    text = text.strip()
    return None if text.lower() in MISSING_TOKENS else text


def normalise_crop(value: Any) -> tuple[str | None, str | None]:
    """``" Winter Wheat"`` → ``("winter_wheat", None)``; returns ``(None, reason)`` if unusable.

    Common Chinese and English names become the calendar's crop codes (``冬小麦``, ``wheat``
    → ``winter_wheat``; ``玉米``, ``corn`` → ``maize``; ``小麦-玉米轮作`` → ``wheat_maize``;
    see :data:`agrisat.book._crops.CROP_ALIASES`).
    """
    text = normalise_id(value)
    if text is None:
        return None, "missing crop"
    crop = crop_key(text)
    if not any(ch.isalnum() for ch in crop):
        return None, "unparseable crop"
    return canonical_crop(crop), None


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# A cell's reading under each decimal mark: the integer part plain or grouped by the other mark
# (Western 1,234,567 or Indian 12,34,567 with commas; 1.234.567 with dots), then the mark and
# decimals. A group never starts with 0, so "0,500" can only be a decimal.
_DOT_READING = re.compile(
    r"[+-]?(?:\d+|[1-9]\d{0,2}(?:,\d{3})+|[1-9]\d?(?:,\d{2})+,\d{3})?(?:\.\d*)?(?:[eE][+-]?\d+)?"
)
_COMMA_READING = re.compile(r"[+-]?(?:\d+|[1-9]\d{0,2}(?:\.\d{3})+)?(?:,\d*)?(?:[eE][+-]?\d+)?")
_CURRENCY = re.compile(r"^(?:[A-Za-z]{3}|[¥$€£￥₹元])\s*|\s*(?:[A-Za-z]{3}|[¥$€£￥₹元])$")
_GROUPING = re.compile(r"[\s\u00a0\u202f'’_]")
#: Decimal marks :func:`parse_exposure` and :func:`parse_exposures` know.
DECIMAL_MARKS: tuple[str, ...] = (".", ",")

_Readings = tuple[float | None, float | None, str | None]  # under ".", under ",", or a reason


def _number(text: str) -> float | None:
    return float(text) if _NUMBER.fullmatch(text) else None


def _readings(value: Any) -> _Readings:
    """The amount a cell says under each decimal mark (equal for plain numbers), or a reason."""
    if _is_missing(value):
        return None, None, "missing exposure"
    if isinstance(value, bool):
        return None, None, "exposure not a number"
    if isinstance(value, numbers.Real | Decimal):
        return float(value), float(value), None
    text = str(value).strip()
    if text.lower() in MISSING_TOKENS:
        return None, None, "missing exposure"
    negative = text.startswith("(") and text.endswith(")")  # accounting negative
    if negative:
        text = text[1:-1]
    text = _GROUPING.sub("", _CURRENCY.sub("", text.strip()))
    dot = _number(text.replace(",", "")) if _DOT_READING.fullmatch(text) else None
    comma = (
        _number(text.replace(".", "").replace(",", ".")) if _COMMA_READING.fullmatch(text) else None
    )
    if dot is None and comma is None:
        return None, None, "exposure not a number"
    sign = -1.0 if negative else 1.0
    return (
        None if dot is None else sign * dot,
        None if comma is None else sign * comma,
        None,
    )


def _evidence(r: _Readings) -> str | None:
    """The decimal mark a cell proves: the one under which alone it reads as a number."""
    dot, comma, _ = r
    if dot is not None and comma is None:
        return "."
    if comma is not None and dot is None:
        return ","
    return None


def _fmt(x: float) -> str:
    return str(int(x)) if x.is_integer() else repr(x)


def _resolve(
    r: _Readings, mark: str | None, cell: Any, why_unsure: str
) -> tuple[float | None, str | None]:
    dot, comma, reason = r
    if reason is not None:
        return None, reason
    amount: float | None
    if dot is not None and comma is not None and dot != comma:
        if mark == ".":
            amount = dot
        elif mark == ",":
            amount = comma
        elif dot < 0 and comma < 0:
            return None, "negative exposure"
        else:
            return None, (
                f"ambiguous exposure: {str(cell).strip()!r} reads as {_fmt(dot)} or "
                f"{_fmt(comma)} ({why_unsure}); write it without thousands separators "
                f"or with its decimals"
            )
    else:
        amount = dot if dot is not None else comma
    if amount is None or not math.isfinite(amount):
        return None, "exposure not a number"
    if amount < 0:
        return None, "negative exposure"
    return amount + 0.0, None  # + 0.0 turns -0.0 into 0.0


def parse_exposure(value: Any, *, decimal: str | None = None) -> tuple[float | None, str | None]:
    """Parse an exposure cell; returns ``(amount, None)`` or ``(None, reason)``.

    Numbers pass through. Text may carry a currency symbol or 3-letter code at either end,
    spaces/apostrophes/underscores as digit grouping, and either decimal mark. A cell that
    reads as a number under one mark only says which mark it uses: ``1.000,50``, ``12,5``
    and ``1.234.567`` are decimal-comma, ``1,234.5``, ``1,234,567`` and ``12.5`` decimal-point.
    ``1,234`` and ``12.000`` read both ways (1234 or 1.234; 12 or 12000): they are taken
    under ``decimal`` (``"."`` or ``","``; default: the decimal point, China's convention).
    :func:`parse_exposures`, which :func:`~agrisat.book.load_book` uses, takes the mark from
    the column's other cells, and rejects such cells as ``"ambiguous exposure"`` when those
    show both marks. ``(123)`` is an accounting negative. Negative amounts, NaN and
    infinity are rejected; zero is accepted (a repaid share is still a farm to watch).
    """
    if decimal is not None and decimal not in DECIMAL_MARKS:
        raise BookError(f"decimal mark {decimal!r}: use '.' or ','")
    return _resolve(_readings(value), decimal or ".", value, "")


# -- whole columns: the same rules as the per-cell functions above, without a Python call per
# cell where the column's type allows it (a 100,000-row book spent a second in the cell calls)


def _cells(values: Iterable[Any]) -> np.ndarray:
    """An object array of the cells; missing cells (NaN, NA, NaT) become None."""
    s = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    return s.to_numpy(dtype=object, na_value=None)


def _all_text(cells: np.ndarray) -> bool:
    return all(type(v) is str or v is None for v in cells)


def normalise_ids(values: Iterable[Any]) -> np.ndarray:
    """:func:`normalise_id` of every cell of a column, as an object array (None = missing)."""
    if (
        isinstance(values, pd.Series)
        and isinstance(values.dtype, np.dtype)
        and values.dtype.kind in "iu"
    ):  # numpy ints: no NA
        return np.array([str(v) for v in values.tolist()], dtype=object)
    cells = _cells(values)
    if not _all_text(cells):
        return np.array([normalise_id(v) for v in cells], dtype=object)
    out = np.empty(len(cells), dtype=object)
    for i, v in enumerate(cells):
        if v is not None:
            t = v.strip()
            out[i] = None if t.lower() in MISSING_TOKENS else t
    return out


def _by_unique(cells: np.ndarray, fn: Any) -> tuple[np.ndarray, np.ndarray]:
    """``fn`` (→ (value, reason)) applied once per distinct text cell, spread to every cell."""
    memo = {v: fn(v) for v in dict.fromkeys(cells.tolist())}
    pairs = [memo[v] for v in cells.tolist()]
    return (
        np.array([p[0] for p in pairs], dtype=object),
        np.array([p[1] for p in pairs], dtype=object),
    )


def normalise_crops(values: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`normalise_crop` of every cell: (crops, reasons) as object arrays."""
    cells = _cells(values)
    if _all_text(cells):  # few distinct crops: one call each
        return _by_unique(cells, normalise_crop)
    pairs = [normalise_crop(v) for v in cells]
    return (
        np.array([p[0] for p in pairs], dtype=object),
        np.array([p[1] for p in pairs], dtype=object),
    )


def parse_exposures(values: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`parse_exposure` of every cell: (amounts, reasons) as object arrays."""
    if isinstance(values, pd.Series) and values.dtype.kind in "iuf":
        x = values.to_numpy(dtype=float, na_value=np.nan)
        why = np.full(len(x), None, dtype=object)
        why[np.isinf(x)] = "exposure not a number"
        why[np.isnan(x)] = "missing exposure"
        with np.errstate(invalid="ignore"):
            why[x < 0] = "negative exposure"
        amounts = np.where(np.isfinite(x), x + 0.0, np.nan).astype(object)  # -0.0 becomes 0.0
        amounts[why != None] = None  # noqa: E711 (elementwise comparison with None)
        return amounts, why
    cells = _cells(values)
    memo: dict[Any, _Readings] = {}
    readings: list[_Readings] = []
    for v in cells.tolist():
        key = (type(v), v) if isinstance(v, Hashable) else None
        if key is None:
            readings.append(_readings(v))
            continue
        if key not in memo:
            memo[key] = _readings(v)
        readings.append(memo[key])
    # The column's mark: the one its unambiguous cells show, when they all show the same one;
    # none shown: the decimal point (China's convention, where "50,000" is fifty thousand and
    # a book of whole grouped amounts must not be refused). Cells stay ambiguous only when
    # the column's cells show both marks.
    shown = {m for m in map(_evidence, readings) if m is not None}
    mark = next(iter(shown)) if len(shown) == 1 else (None if shown else ".")
    why_unsure = "the column's other numbers use both decimal marks"
    pairs = [
        _resolve(r, mark, v, why_unsure) for r, v in zip(readings, cells.tolist(), strict=True)
    ]
    return (
        np.array([p[0] for p in pairs], dtype=object),
        np.array([p[1] for p in pairs], dtype=object),
    )
