"""Reading co-operatives' inventory sheets: CSV (UTF-8, BOM, GB18030/GBK) or XLSX, messy cells included.

Co-ops fill these files by hand on Windows PCs, so the reader forgives what is
unambiguous — full-width digits and spaces, stray whitespace, Excel date cells, several
date spellings, trailing empty rows and columns — and reports everything else as
`{row, column, message}` with the row number the co-op sees in Excel (header = row 1).
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from openpyxl.utils.exceptions import InvalidFileException

COLUMNS = {
    "sku": ("产品编码", "sku"),
    "lot_code": ("批次号", "lot_code"),
    "harvested_on": ("采收日期", "harvested_on"),
    "location": ("存放地点", "location"),
    "household_code": ("农户编号", "household_code"),
    "quantity": ("交售数量", "quantity"),
    "packed_on": ("包装日期", "packed_on"),
    "village": ("村", "village"),
    "unit": ("单位", "unit"),
}
REQUIRED = ("sku", "lot_code", "harvested_on", "location", "household_code", "quantity")
_HEADER_NAMES = {alias.lower(): key for key, aliases in COLUMNS.items() for alias in aliases}
_DATE_PATTERNS = (
    re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"),
    re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$"),
    re.compile(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"),
)


@dataclass
class SheetRow:
    """One contribution row, normalised; dates and quantity parsed. A cell that could not be read is
    empty/None here (its error is on the sheet), so the other cells can still be checked."""

    row: int
    sku: str
    lot_code: str
    harvested_on: date | None
    location: str
    household_code: str
    quantity: int | None
    packed_on: date | None = None
    village: str | None = None
    unit: str | None = None
    complete: bool = True


@dataclass
class Sheet:
    """The parsed rows, the problems found, and the header text as written (for messages)."""

    rows: list[SheetRow] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def error(self, row: int, column: str | None, message: str) -> None:
        """Record a problem at `row`, naming the column as the file's header writes it."""
        self.errors.append({"row": row, "column": self.headers.get(column, column) if column else None,
                            "message": message})


def normalise(value) -> str:
    """Text of a cell with full-width forms folded (NFKC) and whitespace trimmed."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFKC", str(value)).strip()


def parse_date(value) -> date:
    """A date from an Excel date cell or `2026-09-03`, `2026/9/3`, `2026.9.3`, `2026年9月3日`."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = normalise(value).replace(" ", "")
    for pattern in _DATE_PATTERNS:
        match = pattern.match(text)
        if match:
            try:
                return date(*(int(part) for part in match.groups()))
            except ValueError:
                break
    raise ValueError(f"{text!r} is not a date (write it like 2026-09-03)")


def parse_quantity(value) -> int:
    """A positive whole number of units."""
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{value} is not a whole number")
    text = normalise(value).replace(",", "")
    if not re.fullmatch(r"\d+", text) or int(text) <= 0:
        raise ValueError(f"{text!r} is not a positive whole number")
    return int(text)


def _decode(data: bytes) -> str:
    """Text of a CSV: UTF-8 (with or without BOM), else GB18030 (a superset of GBK)."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValueError("the file is neither UTF-8 nor GBK/GB18030 text")


def _raw_rows(data: bytes) -> list[list]:
    """The file's cells row by row, from XLSX (zip) or CSV."""
    if data[:4] == b"PK\x03\x04":
        try:
            workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
            raise ValueError("the XLSX file cannot be read") from exc
        try:
            return [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]
        finally:
            workbook.close()
    text = _decode(data)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel
    return list(csv.reader(io.StringIO(text), dialect))


def read_sheet(data: bytes) -> Sheet:
    """Parse an inventory sheet into rows and errors; a file-level problem is an error at row 1."""
    sheet = Sheet()
    try:
        raw = _raw_rows(data)
    except (ValueError, csv.Error) as exc:
        sheet.error(1, None, f"The file cannot be read: {exc}.")
        return sheet
    if not raw:
        sheet.error(1, None, "The file is empty.")
        return sheet

    positions: dict[str, int] = {}
    for index, cell in enumerate(raw[0]):
        header = normalise(cell)
        if not header:
            continue
        key = _HEADER_NAMES.get(header.lower())
        if key is None:
            sheet.error(1, header, f"Unknown column {header!r}.")
        elif key in positions:
            sheet.error(1, header, f"The column {header!r} appears twice.")
        else:
            positions[key] = index
            sheet.headers[key] = header
    for key in REQUIRED:
        if key not in positions:
            sheet.error(1, key, f"Missing column {COLUMNS[key][0]}/{COLUMNS[key][1]}.")
    if sheet.errors:
        return sheet

    for number, cells in enumerate(raw[1:], start=2):
        values = {key: cells[index] if index < len(cells) else None for key, index in positions.items()}
        if all(normalise(value) == "" for value in values.values()):
            continue
        sheet.rows.append(_parse_row(sheet, number, values))
    if not sheet.rows and not sheet.errors:
        sheet.error(2, None, "The file has no data rows.")
    return sheet


def _parse_row(sheet: Sheet, number: int, values: dict) -> SheetRow:
    """Parse one row's cells, recording each problem; `complete` is False if any cell is unusable."""
    parsed: dict = {}
    ok = True
    for key in REQUIRED:
        if normalise(values.get(key)) == "":
            sheet.error(number, key, "This cell is required.")
            ok = False
    for key, parser in (("harvested_on", parse_date), ("packed_on", parse_date), ("quantity", parse_quantity)):
        if normalise(values.get(key)) == "":
            continue
        try:
            parsed[key] = parser(values[key])
        except ValueError as exc:
            sheet.error(number, key, str(exc)[:1].upper() + str(exc)[1:] + ".")
            ok = False
    return SheetRow(
        row=number, sku=normalise(values["sku"]), lot_code=normalise(values["lot_code"]),
        harvested_on=parsed.get("harvested_on"), location=normalise(values["location"]),
        household_code=normalise(values["household_code"]), quantity=parsed.get("quantity"),
        packed_on=parsed.get("packed_on"), village=normalise(values.get("village")) or None,
        unit=normalise(values.get("unit")) or None, complete=ok)


TEMPLATE_HELP = (
    ("产品编码 / sku", "必填。产品编码（SKU），须为本合作社的产品。",
     "Required. The product's SKU; one of this co-op's products."),
    ("批次号 / lot_code", "必填。同一批次号的各行组成一个批次。",
     "Required. Rows with the same lot code form one lot."),
    ("采收日期 / harvested_on", "必填。如 2026-09-03、2026/9/3 或 2026年9月3日。",
     "Required. E.g. 2026-09-03, 2026/9/3 or 2026年9月3日."),
    ("存放地点 / location", "必填。仓库或门店的地点编码。", "Required. The code of the warehouse or store."),
    ("农户编号 / household_code", "必填。交售农户的建档立卡编号，须与本合作社有收购联结。",
     "Required. The household's registry code; it needs a purchase link with this co-op."),
    ("交售数量 / quantity", "必填。正整数，按产品单位计。", "Required. A positive whole number in the product's unit."),
    ("包装日期 / packed_on", "选填。不得早于采收日期。", "Optional. Not before the harvest date."),
    ("村 / village", "选填。默认为农户所在村。", "Optional. Defaults to the household's village."),
    ("单位 / unit", "选填。须与产品单位一致（kg、box、bag、piece）。",
     "Optional. Must equal the product's unit (kg, box, bag, piece)."),
)


def template_workbook(example: list) -> bytes:
    """The upload template: Chinese headers, an example row, and a sheet explaining both header languages."""
    book = Workbook()
    sheet = book.active
    sheet.title = "库存上传"
    sheet.append([aliases[0] for aliases in COLUMNS.values()])
    sheet.append(example)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for column in "ABCDEFGHI":
        sheet.column_dimensions[column].width = 16
    sheet["C2"].number_format = "yyyy-mm-dd"
    sheet["G2"].number_format = "yyyy-mm-dd"
    help_sheet = book.create_sheet("说明 Help")
    help_sheet.append(["列名 / column", "说明", "Meaning"])
    for row in TEMPLATE_HELP:
        help_sheet.append(list(row))
    help_sheet.append([])
    help_sheet.append(["", "表头可用中文或英文，列的顺序不限；每行是一户农户对一个批次的交售。",
                       "Headers may be Chinese or English, in any order; one row per household contribution."])
    for column, width in (("A", 26), ("B", 48), ("C", 60)):
        help_sheet.column_dimensions[column].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
