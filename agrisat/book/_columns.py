"""Column matching and cell normalisation for the loan book (no geometry here)."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Hashable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BookError

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
ALIASES: Mapping[str, tuple[str, ...]] = {
    "farm_id": ("farm_id", "farmid", "farm_no", "farm_number", "parcel_id", "parcelid", "field_id"),
    "loan_id": ("loan_id", "loanid", "loan_no", "loan_number"),
    "borrower_id": ("borrower_id", "borrowerid", "borrower_i", "borrower_no", "customer_id"),
    "crop": ("crop", "crop_type", "croptype", "crop_name"),
    "exposure": ("exposure", "exposure_amount", "outstanding", "outstanding_amount"),
    "region": ("region", "county", "branch"),
}
#: Spellings of the WKT column of a CSV book, and of its optional CRS column.
GEOMETRY_ALIASES: tuple[str, ...] = ("geometry", "wkt", "geom", "the_geom", "geometry_wkt")
CRS_ALIASES: tuple[str, ...] = ("crs", "srs", "epsg")

#: Cell texts that mean "no value" (compared lower-case, stripped). Keys and crops only.
MISSING_TOKENS: frozenset[str] = frozenset({"", "nan", "none", "null", "na", "n/a", "#n/a", "-"})

_NAME_RE = re.compile(r"[^0-9a-z]+")


def normalise_name(name: object) -> str:
    """``" Farm ID "`` → ``"farm_id"``: lower-case, runs of non-alphanumerics become ``_``."""
    return _NAME_RE.sub("_", str(name).strip().lower()).strip("_")


def _find(
    columns: Iterable[Hashable], spellings: tuple[str, ...], canonical: str, book: str
) -> Hashable | None:
    by_key: dict[str, list[Hashable]] = {}
    for col in columns:
        by_key.setdefault(normalise_name(col), []).append(col)
    exact = by_key.get(canonical, [])
    if len(exact) == 1:
        return exact[0]
    candidates = exact if exact else [c for s in spellings for c in by_key.get(s, [])]
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
        raise BookError(
            f"book {book} lacks required column(s): {', '.join(missing)} "
            f"(found: {', '.join(map(str, cols)) or 'none'}); add them or rename the existing ones "
            f"(accepted spellings: see agrisat.book docs)"
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


_CROP_SEP = re.compile(r"[\s\-/]+")


def normalise_crop(value: Any) -> tuple[str | None, str | None]:
    """``" Winter Wheat"`` → ``("winter_wheat", None)``; returns ``(None, reason)`` if unusable."""
    text = normalise_id(value)
    if text is None:
        return None, "missing crop"
    crop = _CROP_SEP.sub("_", text.lower()).strip("_")
    if not any(ch.isalnum() for ch in crop):
        return None, "unparseable crop"
    return crop, None


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# Western (1,234,567) or Indian (12,34,567) digit grouping with commas.
_THOUSANDS_COMMA = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d{1,2}(?:,\d{2})+,\d{3})")
_THOUSANDS_DOT = re.compile(r"[+-]?\d{1,3}(?:\.\d{3}){2,}(?:,\d*)?")
_CURRENCY = re.compile(r"^(?:[A-Za-z]{3}|[¥$€£￥₹元])\s*|\s*(?:[A-Za-z]{3}|[¥$€£￥₹元])$")
_GROUPING = re.compile(r"[\s\u00a0\u202f'’_]")


def parse_exposure(value: Any) -> tuple[float | None, str | None]:
    """Parse an exposure cell; returns ``(amount, None)`` or ``(None, reason)``.

    Numbers pass through. Text may carry a currency symbol or 3-letter code at either end,
    spaces/apostrophes/underscores as digit grouping, and either decimal mark: with both ``,``
    and ``.`` the later one is the decimal mark; ``1,234,567`` and ``1,234`` are grouped
    thousands, any other single ``,`` is a decimal comma; ``1.234.567`` is grouped, a single
    ``.`` is a decimal point. ``(123)`` is an accounting negative. Negative amounts, NaN and
    infinity are rejected; zero is accepted (a repaid share is still a farm to watch).
    """
    if _is_missing(value):
        return None, "missing exposure"
    if isinstance(value, bool):
        return None, "exposure not a number"
    if isinstance(value, numbers.Real | Decimal):
        amount = float(value)
    else:
        text = str(value).strip()
        if text.lower() in MISSING_TOKENS:
            return None, "missing exposure"
        negative = text.startswith("(") and text.endswith(")")
        if negative:
            text = text[1:-1]
        text = _GROUPING.sub("", _CURRENCY.sub("", text.strip()))
        if "," in text and "." in text:
            if text.rfind(",") > text.rfind("."):
                text = text.replace(".", "").replace(",", ".")
            else:
                text = text.replace(",", "")
        elif "," in text:
            if _THOUSANDS_COMMA.fullmatch(text):
                text = text.replace(",", "")
            elif text.count(",") == 1:
                text = text.replace(",", ".")
        elif _THOUSANDS_DOT.fullmatch(text):
            text = text.replace(".", "")
        if not _NUMBER.fullmatch(text):
            return None, "exposure not a number"
        amount = -float(text) if negative else float(text)
    if not math.isfinite(amount):
        return None, "exposure not a number"
    if amount < 0:
        return None, "negative exposure"
    return amount + 0.0, None  # + 0.0 turns -0.0 into 0.0


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
    pairs = [parse_exposure(v) for v in _cells(values)]
    return (
        np.array([p[0] for p in pairs], dtype=object),
        np.array([p[1] for p in pairs], dtype=object),
    )
