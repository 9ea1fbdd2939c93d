"""Exposure cells → amounts: currency marks, digit grouping, the column's decimal mark."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Hashable, Iterable
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BookError
from ._columns import MISSING_TOKENS, _cells, _is_missing

__all__ = ["DECIMAL_MARKS", "parse_exposure", "parse_exposures"]

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
