"""A Chinese bank's book: crop names, Chinese headers and decimal marks (agrisat.book)."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import pandas as pd
import pytest

from agrisat.book import REJECT_REASONS, load_book, parse_exposure, reason_category, write_rejects
from agrisat.errors import BookError
from agrisat.i18n import header, t

HEADER = ["farm_id", "loan_id", "borrower_id", "crop", "exposure", "region", "geometry"]


def _square(i: int) -> str:
    # about 1 ha near Jiaozhou (Shandong), one square per row, well apart
    x, y = 119.95 + 0.01 * i, 36.48
    return f"POLYGON(({x} {y},{x + 0.001} {y},{x + 0.001} {y + 0.001},{x} {y + 0.001},{x} {y}))"


def _book(path: Path, rows: list[dict[str, str]], header_row: list[str] | None = None) -> Path:
    """A CSV book with one row per dict (defaults for the columns not given)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header_row or HEADER)
        for i, over in enumerate(rows):
            row = {
                "farm_id": f"F{i}",
                "loan_id": f"L{i}",
                "borrower_id": f"B{i}",
                "crop": "maize",
                "exposure": "1000",
                "region": "R1",
                "geometry": _square(i),
                **over,
            }
            w.writerow([row[c] for c in HEADER])
    return path


# -- crop names ---------------------------------------------------------------------------


CROP_CASES = {
    "冬小麦": "winter_wheat",
    "小麦": "winter_wheat",
    "WHEAT": "wheat",  # a crop of the built-in calendars: itself
    "Summer Maize": "summer_maize",
    "Winter Wheat": "winter_wheat",
    "玉米": "maize",
    "夏玉米": "maize",
    "corn": "maize",
    "Maize ": "maize",
    "小麦玉米": "wheat_maize",
    "小麦-玉米": "wheat_maize",
    "小麦－玉米": "wheat_maize",  # full-width hyphen
    "小麦玉米轮作": "wheat_maize",
    "麦玉轮作": "wheat_maize",
    "wheat_maize": "wheat_maize",
}


def test_chinese_and_english_crop_names_become_calendar_crops(tmp_path: Path) -> None:
    names = list(CROP_CASES)
    farms = load_book(_book(tmp_path / "b.csv", [{"crop": c} for c in names]))
    assert len(farms.rejects) == 0
    assert dict(zip(names, farms.gdf["crop"], strict=True)) == CROP_CASES


def test_zh_export_crop_labels_read_back_as_their_codes(tmp_path: Path) -> None:
    codes = ["winter_wheat", "maize", "wheat_maize", "rice", "cotton", "other"]
    labels = [t(f"crop.{c}", "zh") for c in codes]  # what a --lang zh export writes
    assert labels[0] != codes[0]  # the labels really are translations
    farms = load_book(_book(tmp_path / "b.csv", [{"crop": x} for x in labels]))
    assert list(farms.gdf["crop"]) == codes


def test_one_warning_names_crops_without_calendar_but_no_farm(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crops = ["冬小麦", "barley", "barley", "水稻", "maize"]
    rows = [{"crop": c, "farm_id": f"SECRET{i}"} for i, c in enumerate(crops)]
    with caplog.at_level(logging.WARNING, logger="agrisat.book"):
        load_book(_book(tmp_path / "b.csv", rows))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    calendar_warnings = [m for m in warnings if "no crop calendar" in m]
    assert len(calendar_warnings) == 1
    msg = calendar_warnings[0]
    assert "3 farm(s)" in msg  # two barley, one rice
    assert "barley (2)" in msg and "rice (1)" in msg
    assert "winter_wheat (" not in msg and "maize (" not in msg
    assert "SECRET" not in msg and "119.9" not in msg


def test_no_calendar_warning_when_every_crop_has_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agrisat.book"):
        load_book(_book(tmp_path / "b.csv", [{"crop": "玉米"}, {"crop": "wheat"}]))
    assert not [r for r in caplog.records if "no crop calendar" in r.getMessage()]


# -- Chinese column headers -----------------------------------------------------------------


def test_zh_export_headers_are_book_columns(tmp_path: Path) -> None:
    zh = [header(c, "zh") for c in HEADER[:-1]] + ["geometry"]
    assert zh[0] != "farm_id"  # the export really writes Chinese headers
    path = _book(tmp_path / "zh.csv", [{"exposure": "62900.0"}, {}], header_row=zh)
    farms = load_book(path)
    assert list(farms.gdf["farm_id"]) == ["F0", "F1"]
    assert list(farms.gdf["loan_id"]) == ["L0", "L1"]
    assert list(farms.gdf["exposure"]) == [62900.0, 1000.0]
    assert list(farms.gdf["region"]) == ["R1", "R1"]


def test_a_unit_in_brackets_still_matches(tmp_path: Path) -> None:
    # letters of any script are kept in names now; an English name with a Chinese note
    # must still match as it did
    hdr = ["farm_id（地块）", *HEADER[1:4], "exposure (元)", *HEADER[5:]]
    farms = load_book(_book(tmp_path / "b.csv", [{}], header_row=hdr))
    assert list(farms.gdf["farm_id"]) == ["F0"]


def test_missing_column_error_lists_accepted_spellings(tmp_path: Path) -> None:
    hdr = ["编号", *HEADER[1:]]
    with pytest.raises(BookError) as err:
        load_book(_book(tmp_path / "b.csv", [{}], header_row=hdr))
    msg = str(err.value)
    assert "farm_id" in msg and "地块编号" in msg and "parcel_id" in msg
    assert "see agrisat.book docs" not in msg
    assert "贷款编号" not in msg  # only the missing column's spellings


# -- exposure decimal marks --------------------------------------------------------------


def _exposures(tmp_path: Path, cells: list[str]) -> tuple[list[float | None], list[str]]:
    farms = load_book(_book(tmp_path / "b.csv", [{"exposure": c} for c in cells]))
    by_id = dict(zip(farms.gdf["farm_id"], farms.gdf["exposure"], strict=True))
    why = dict(zip(farms.rejects["farm_id"], farms.rejects["reason"], strict=True))
    return [by_id.get(f"F{i}") for i in range(len(cells))], [
        why.get(f"F{i}", "") for i in range(len(cells))
    ]


def test_comma_decimal_column_reads_dot_groups_as_thousands(tmp_path: Path) -> None:
    amounts, why = _exposures(tmp_path, ["1.000,50", "12.000", "1,5", "1234", "1.234.567"])
    assert amounts == [1000.5, 12000.0, 1.5, 1234.0, 1234567.0]
    assert why == [""] * 5


def test_dot_decimal_column_reads_comma_groups_as_thousands(tmp_path: Path) -> None:
    amounts, _ = _exposures(tmp_path, ["1,234.5", "12.000", "1,234", "1234.5", "¥3,000"])
    assert amounts == [1234.5, 12.0, 1234.0, 1234.5, 3000.0]


def test_a_column_without_evidence_reads_the_decimal_point(tmp_path: Path) -> None:
    amounts, why = _exposures(tmp_path, ["12.000", "1,234", "1234", "500.5"])
    # 500.5 is dot-decimal evidence: 12.000 -> 12, 1,234 -> 1234
    assert amounts == [12.0, 1234.0, 1234.0, 500.5]
    # no cell shows its mark: the decimal point, China's convention -- a book of whole
    # grouped amounts ("50,000") is common there and must not be refused
    amounts, why = _exposures(tmp_path, ["50,000", "120,000", "1234"])
    assert amounts == [50000.0, 120000.0, 1234.0] and why == ["", "", ""]


def test_mixed_marks_leave_ambiguous_cells_rejected(tmp_path: Path) -> None:
    # the repro book: 1.000,50 says comma, $2,500.00 says dot: 12.000 stays unknown
    cells = ["¥1,000", "1.000,50", "1e5", " 500 ", "$2,500.00", "0", "12.000"]
    amounts, why = _exposures(tmp_path, cells)
    assert amounts == [None, 1000.5, 100000.0, 500.0, 2500.0, 0.0, None]
    assert reason_category(why[0]) == reason_category(why[6]) == "ambiguous exposure"
    assert "ambiguous exposure" in REJECT_REASONS


def test_ambiguous_exposure_reaches_rejects_csv(tmp_path: Path) -> None:
    # the column shows both marks (1.000,50 and 2,500.00): 12.000 cannot be read
    rows = [{"exposure": "12.000"}, {"exposure": "1.000,50"}, {"exposure": "2,500.00"}]
    farms = load_book(_book(tmp_path / "b.csv", rows))
    out = pd.read_csv(write_rejects(farms, tmp_path / "work"), dtype=str)
    assert out["farm_id"].tolist() == ["F0"]
    assert out["reason"].str.startswith("ambiguous exposure: ").all()
    assert out["exposure"].tolist() == ["12.000"]


@pytest.mark.parametrize(
    ("cell", "decimal", "expected"),
    [
        ("12.000", ".", 12.0),
        ("12.000", ",", 12000.0),
        ("1,234", ",", 1.234),
        ("0,500", None, 0.5),  # a group never starts with 0: a decimal comma
        ("1 234,5", None, 1234.5),
    ],
)
def test_parse_exposure_with_a_given_mark(cell: str, decimal: str | None, expected: float) -> None:
    assert parse_exposure(cell, decimal=decimal) == (expected, None)


def test_parse_exposure_alone_reads_the_decimal_point() -> None:
    assert parse_exposure("12.000") == (12.0, None)
    assert parse_exposure("1.000,50") == (1000.5, None)  # its own evidence wins


# -- Excel and UTF-16 ----------------------------------------------------------------------


def test_excel_workbook_is_named_with_what_to_do(tmp_path: Path) -> None:
    frame = pd.DataFrame({"farm_id": ["F0"], "geometry": [_square(0)]})
    xlsx = tmp_path / "book.xlsx"
    frame.to_excel(xlsx, index=False)
    bare = tmp_path / "book"  # the same workbook without its suffix: a zip by content
    bare.write_bytes(xlsx.read_bytes())
    for path in (xlsx, bare):
        with pytest.raises(BookError, match="Excel books are not read: save as CSV"):
            load_book(path)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_csv_with_bom_is_decoded(tmp_path: Path, encoding: str) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t")  # Excel's "Unicode text": tab-separated UTF-16
    w.writerow(HEADER)
    w.writerow(["F0", "L0", "B0", "玉米", "1000", "胶州", _square(0)])
    text = buf.getvalue()
    path = tmp_path / "u16.csv"
    bom = b"\xff\xfe" if encoding == "utf-16" else b"\xfe\xff"
    data = text.encode("utf-16-le" if encoding == "utf-16" else "utf-16-be")
    path.write_bytes(bom + data)
    farms = load_book(path)
    assert list(farms.gdf["farm_id"]) == ["F0"]
    assert list(farms.gdf["region"]) == ["胶州"]
    assert list(farms.gdf["crop"]) == ["maize"]


# -- a unit in the exposure header ----------------------------------------------------------

UNIT_HEADERS = {
    "风险敞口（万元）": 1e4,  # the usual way a Chinese bank writes it
    "贷款余额(万元)": 1e4,
    "贷款余额/百万元": 1e6,  # 百万元 is a million, not 万元
    "exposure_k": 1e3,
    "Exposure (CNY '000)": 1e3,
    "exposure (万元)": 1e4,  # matched as exposure before: read 10,000 times too small
    "Exposure (CNY)": 1.0,  # a currency, not a multiple
    "风险敞口": 1.0,
}


@pytest.mark.parametrize(("head", "scale"), UNIT_HEADERS.items())
def test_an_exposure_header_unit_scales_the_amounts(
    tmp_path: Path, head: str, scale: float, caplog: pytest.LogCaptureFixture
) -> None:
    path = _book(tmp_path / "b.csv", [{"exposure": "12.5"}, {"exposure": "3"}])
    text = path.read_text(encoding="utf-8").replace("exposure", head, 1)
    path.write_text(text, encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="agrisat.book"):
        farms = load_book(path)
    assert farms.gdf["exposure"].tolist() == [12.5 * scale, 3 * scale]
    said = [r.getMessage() for r in caplog.records if "exposure column is in" in r.getMessage()]
    assert bool(said) == (scale != 1.0)


def test_an_exposure_header_with_two_units_is_refused(tmp_path: Path) -> None:
    path = _book(tmp_path / "b.csv", [{}])
    text = path.read_text(encoding="utf-8").replace("exposure", "exposure (千元 or 万元)", 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BookError, match=r"names several units \(万元, 千元\)"):
        load_book(path)


def _book_headed(tmp_path: Path, head: str, extra: str | None = None) -> Path:
    """A two-row book whose exposure column is headed ``head`` (csv-quoted as needed), with
    an optional second column ``extra`` holding other amounts."""
    path = _book(tmp_path / "b.csv", [{"exposure": "12.5"}, {"exposure": "3"}])
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    rows[0][HEADER.index("exposure")] = head
    if extra is not None:
        rows = [[*r, extra if i == 0 else "7"] for i, r in enumerate(rows)]
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return path


# A number written with the scale multiplies it; finance shorthand mm/bn; a year is no unit.
NUMBERED_UNIT_HEADERS = {
    "exposure (10,000 yuan)": 1e4,  # was read as 10 and 000: 1,000 (10 times too small)
    "exposure (10k CNY)": 1e4,
    "exposure (CNY 10k)": 1e4,
    "exposure (ten thousand yuan)": 1e4,
    "exposure (10 thousand yuan)": 1e4,
    "exposure (x1000)": 1e3,  # was 1
    "exposure (1e4 yuan)": 1e4,  # was 1
    "exposure (×10⁴)": 1e4,  # superscript 4 must not become 104
    "exposure_10k": 1e4,
    "exposure (mm)": 1e6,  # was 1
    "exposure_mm": 1e6,
    "exposure (bn)": 1e9,  # was 1
    "exposure (in thousands)": 1e3,
    "Exposure (CNY, thousands)": 1e3,
    "exposure (2024)": 1.0,  # a year, not a power of ten: plain amounts
    "exposure (USD)": 1.0,
}


@pytest.mark.parametrize(("head", "scale"), NUMBERED_UNIT_HEADERS.items())
def test_a_number_in_the_exposure_unit_multiplies_it(
    tmp_path: Path, head: str, scale: float
) -> None:
    farms = load_book(_book_headed(tmp_path, head))
    assert farms.gdf["exposure"].tolist() == [12.5 * scale, 3 * scale]


@pytest.mark.parametrize(
    "head", ["exposure (10k per hectare)", "exposure (2.5k)", "贷款余额（万元，2024年末）"]
)
def test_a_unit_beside_unreadable_words_is_refused(tmp_path: Path, head: str) -> None:
    with pytest.raises(BookError, match=r"cannot read; rename it to name one unit") as err:
        load_book(_book_headed(tmp_path, head))
    assert repr(head) in str(err.value)


def test_a_second_exposure_like_column_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _book_headed(tmp_path, "exposure", extra="风险敞口（万元）")
    with caplog.at_level(logging.WARNING, logger="agrisat.book"):
        farms = load_book(path)
    assert farms.gdf["exposure"].tolist() == [12.5, 3.0]  # the exact name is read
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'exposure'" in m and "'风险敞口（万元）'" in m and "ignored" in m for m in said)
    assert not any("7" in m for m in said)  # headers only, never cell values
