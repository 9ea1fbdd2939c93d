"""Read back what an agrisat XLSX export shows."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["shown_fill"]

# the rules agrisat writes: the whole row takes a fill when one column holds a value
_RULE = re.compile(r'^\$([A-Z]+)(\d+)="((?:[^"]|"")*)"$')


def shown_fill(ws: Any, row: int) -> str | None:
    """The fill colour (``RRGGBB``) row ``row`` of worksheet ``ws`` shows, or None.

    Evaluates the sheet's conditional-formatting rules of the form ``$C2="value"`` over
    their ranges (the severity colours of :func:`agrisat.export.export_alerts`), as Excel
    would: the first rule whose column holds its value on that row gives the fill.
    """
    for cf in ws.conditional_formatting:
        ranges = [r for r in cf.sqref.ranges if r.min_row <= row <= r.max_row]
        if not ranges:
            continue
        for rule in cf.rules:
            m = _RULE.match(rule.formula[0]) if rule.formula else None
            if m is None:
                continue
            col, first, value = m.group(1), int(m.group(2)), m.group(3).replace('""', '"')
            # a relative row reference moves with the row, as in Excel
            cell = ws[f"{col}{row - ranges[0].min_row + first}"]
            if cell.value is not None and str(cell.value) == value:
                fill = rule.dxf.fill
                rgb = fill.bgColor.rgb if fill.bgColor is not None else fill.fgColor.rgb
                return str(rgb)[-6:]
    return None
