"""Write alerts as CSV, Parquet, GeoJSON (farm polygons) or XLSX (alerts + rollup sheets).

Every format is written to a temporary file beside the target and moved into place with
``os.replace``, so a reader never sees half a file.

Language (``lang=``, see :mod:`agrisat.i18n`): English keeps the canonical column names, codes
and the detector's evidence. Chinese is for people: CSV, XLSX and GeoJSON get Chinese headers,
labels for hazard/severity/status/peer state/crop and a Chinese evidence sentence; the CSV is
UTF-8 with a BOM so Excel on Chinese Windows does not read it as GBK. Parquet is for machines:
it keeps the English schema and gains one column, ``evidence_zh``.

Formula injection (book values are not trusted text): in CSV, a text cell that starts with
``=``, ``+``, ``-``, ``@``, tab or CR and is not a plain number gets a leading ``'``
(:mod:`agrisat.csvsafe`, the OWASP rule); numeric columns are untouched. In XLSX, such text is
written as a typed text cell (never a formula), its value unchanged. Parquet and GeoJSON keep
every value exact.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from .alerts import ALERT_COLUMNS
from .csvsafe import FORMULA_STARTS, defuse_frame
from .errors import ConfigError
from .i18n import check_lang, header, localise_alerts, localise_rollup, render_evidence, t
from .rollup import rollup
from .store import atomic_path

__all__ = ["FORMATS", "SEVERITY_FILLS", "export_alerts"]

FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".geojson": "geojson",
    ".json": "geojson",
    ".xlsx": "xlsx",
}
#: XLSX row fills by severity (ARGB without alpha)
SEVERITY_FILLS: dict[str, str] = {"watch": "FFF2CC", "warning": "F8CBAD", "critical": "FF7C80"}
_DATES = ("onset_date", "last_observed", "first_raised", "last_updated", "resolved_date")
#: rows an Excel sheet holds, the header row included
XLSX_MAX_ROWS = 1_048_576


def _as_text_dates(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in _DATES:
        if col in out.columns:
            out[col] = pd.to_datetime(out[col]).dt.strftime("%Y-%m-%d").astype(object)
            out[col] = out[col].where(out[col].notna(), None)
    return out


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def _xlsx(
    alerts: pd.DataFrame,
    roll: pd.DataFrame,
    path: Path,
    *,
    severity: tuple[str, dict[str, str]],
    lang: str,
) -> None:
    """The alerts and roll-up sheets: header row frozen, filters on, alert rows coloured by
    severity. ``severity``: the header of ``alerts``' severity column and each severity's
    value as that column shows it (both localised)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.formatting.rule import FormulaRule
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    # Write-only: rows go to the file as they are appended. A workbook of cells held in
    # memory took ~1 GB and over 10 minutes for 83,000 alerts of a 100,000-farm book.
    wb = Workbook(write_only=True)
    bold = Font(bold=True)
    sheets = [(t("sheet.alerts", lang), alerts), (t("sheet.rollup", lang), roll)]
    for i, (name, df) in enumerate(sheets):
        ws = wb.create_sheet(name)
        last = get_column_letter(max(len(df.columns), 1))
        bottom = max(len(df) + 1, 1)
        # sheet view and column widths precede the rows in the file: set before any append
        ws.freeze_panes = "A2"
        for j, col in enumerate(df.columns, start=1):
            # CJK characters are about two columns wide in Excel.
            width = max([_width(col), *(_width(v) for v in df[col].head(200))])
            ws.column_dimensions[get_column_letter(j)].width = min(max(width + 2, 8), 60)
        ws.auto_filter.ref = f"A1:{last}{bottom}"
        sev_header, sev_labels = severity
        if i == 0 and sev_header in df.columns and len(df):
            # One rule per severity over the rows, not a fill per cell (2.5 million cells at
            # 83,000 alerts); the colour follows the severity cell when rows are sorted.
            sev = get_column_letter(list(df.columns).index(sev_header) + 1)
            for level, colour in SEVERITY_FILLS.items():
                label = sev_labels.get(level, level).replace('"', '""')
                fill = PatternFill(start_color=colour, end_color=colour, fill_type="solid")
                rule = FormulaRule(formula=[f'${sev}2="{label}"'], fill=fill)
                ws.conditional_formatting.add(f"A2:{last}{bottom}", rule)
        head = []
        for col in df.columns:
            cell = WriteOnlyCell(ws, value=col)
            cell.font = bold
            head.append(cell)
        ws.append(head)
        for row in df.itertuples(index=False):
            ws.append([_cell(ws, v) for v in row])
    wb.save(path)


def _cell(ws: Any, v: Any) -> Any:
    """One XLSX cell's value: NaN empty; text that a spreadsheet could take for a formula a
    typed text cell (openpyxl makes any text starting with ``=`` a formula, so a book's
    ``=HYPERLINK(...)`` farm id would be live), its value unchanged."""
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, str) and v[:1] in FORMULA_STARTS:
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(ws, value=v)
        cell.data_type = "s"
        return cell
    return v


def _fits_excel(path: Path, sheet: str, rows: int) -> None:
    if rows + 1 > XLSX_MAX_ROWS:
        raise ConfigError(
            f"{path}: the {sheet} sheet would have {rows:,} rows, more than an Excel sheet "
            f"holds ({XLSX_MAX_ROWS - 1:,} below its header); export this book as csv or "
            "parquet (--format csv|parquet)"
        )


def _width(value: object) -> int:
    text = str(value)
    return len(text) + sum(1 for ch in text if ord(ch) >= 0x2E80)


def export_alerts(
    alerts: pd.DataFrame,
    farms: gpd.GeoDataFrame,
    path: str | Path,
    *,
    fmt: str | None = None,
    lang: str = "en",
) -> Path:
    """Write ``alerts`` to ``path`` atomically.

    Parameters
    ----------
    alerts
        :func:`agrisat.alerts.update_alerts` output (columns :data:`~agrisat.alerts.ALERT_COLUMNS`).
    farms
        The loan book; GeoJSON takes the farm polygons from it, XLSX the rollup.
    path
        Target file.
    fmt
        ``csv``, ``parquet``, ``geojson`` or ``xlsx``; default from the file suffix.
    lang
        ``en`` (default) or ``zh``; see the module documentation for what changes.

    Text a spreadsheet would run as a formula is defused in CSV (a leading ``'``) and typed as
    text in XLSX; see the module documentation.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    check_lang(lang)
    p = Path(path)
    kind = fmt or FORMATS.get(p.suffix.lower())
    if kind not in set(FORMATS.values()):
        raise ConfigError(
            f"cannot tell the alerts format of {p}: use a .csv, .parquet, .geojson or .xlsx file or --format"
        )
    named = FORMATS.get(p.suffix.lower())
    if named is not None and named != kind:  # a CSV named .xlsx would not open in Excel
        raise ConfigError(f"{p} names a {named} file but the format asked is {kind}: match them")
    missing = [c for c in ALERT_COLUMNS if c not in alerts.columns]
    if missing:
        raise ConfigError(
            f"alerts table lacks columns {missing}; build it with agrisat.alerts.update_alerts"
        )
    if kind == "csv":
        # book values a spreadsheet would run as formulas get a leading ' (agrisat.csvsafe)
        table = defuse_frame(localise_alerts(_as_text_dates(alerts), lang))
        # The BOM tells Excel the file is UTF-8; without it Chinese Windows assumes GBK.
        encoding = "utf-8" if lang == "en" else "utf-8-sig"
        _atomic(p, lambda tmp: table.to_csv(tmp, index=False, encoding=encoding))
    elif kind == "parquet":
        machine = alerts
        if lang != "en":
            evidence = [render_evidence(r, lang) for r in alerts.to_dict("records")]
            machine = alerts.assign(**{f"evidence_{lang}": pd.Series(evidence, dtype=object)})
        _atomic(p, lambda tmp: machine.to_parquet(tmp, index=False))
    elif kind == "geojson":
        geo = farms[["farm_id", "geometry"]].assign(farm_id=farms["farm_id"].astype(str))
        merged = _as_text_dates(alerts).merge(geo, on="farm_id", how="left")
        props = localise_alerts(merged.drop(columns="geometry"), lang)
        gdf = gpd.GeoDataFrame(props, geometry=merged["geometry"].to_numpy(), crs=farms.crs)
        gdf = gdf.to_crs("EPSG:4326") if gdf.crs is not None else gdf
        # the layer ("name" member) as a direct write would call it, not the temporary file
        _atomic(p, lambda tmp: gdf.to_file(tmp, driver="GeoJSON", layer=p.stem))
    else:
        _fits_excel(p, "alerts", len(alerts))
        roll = localise_rollup(rollup(alerts, farms), lang)
        _fits_excel(p, "roll-up", len(roll))
        table = localise_alerts(_as_text_dates(alerts), lang)
        # the severity column's header and values as the sheet shows them in ``lang``
        en = lang == "en"
        sev = (
            "severity" if en else header("severity", lang),
            {level: level if en else t(f"severity.{level}", lang) for level in SEVERITY_FILLS},
        )
        _atomic(p, lambda tmp: _xlsx(table, roll, tmp, severity=sev, lang=lang))
    return p
