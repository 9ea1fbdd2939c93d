"""Column matching and cell normalisation for the loan book (no geometry here)."""

from __future__ import annotations

import logging
import math
import numbers
import re
import unicodedata
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BookError
from ..i18n.tables import COLUMN_LABELS
from ._crops import canonical_crop, crop_key
from ._units import strip_unit

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
    "rivals",
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
_BRACKETS = re.compile(r"[(\[（【].*?[)\]）】]")


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
    # A unit in the header (风险敞口（万元）, exposure_k) does not change which column it is;
    # agrisat.book._units.amount_unit applies it to the amounts.
    bare = strip_unit(normalise_name(_BRACKETS.sub(" ", str(name))))
    return tuple(k for k in dict.fromkeys((full, ascii_only, bare, strip_unit(full))) if k)


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


def rivals(columns: Iterable[Hashable], canonical: str, chosen: Hashable) -> list[Hashable]:
    """The columns besides ``chosen`` that also spell ``canonical`` and were therefore not read
    (``exposure`` wins over ``风险敞口（万元）`` as the exact name): worth a warning."""
    keys = {normalise_name(s) for s in (canonical, *ALIASES.get(canonical, ()))}
    return [c for c in columns if c != chosen and keys.intersection(_name_keys(c))]


def warn_rivals(columns: Iterable[Hashable], canonical: str, chosen: Hashable, book: str) -> None:
    """Say which column was read when others also spell ``canonical`` (two exposure columns
    may hold different amounts or units: the exact name wins silently otherwise). Headers
    only, never cell values."""
    ignored = rivals(columns, canonical, chosen)
    if ignored:
        logging.getLogger("agrisat.book").warning(
            "book %s: %s read from column %r; also %s-like, ignored: %s",
            book,
            canonical,
            str(chosen),
            canonical,
            ", ".join(repr(str(c)) for c in ignored),
        )


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
