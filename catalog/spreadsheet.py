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

from openpyxl import load_workbook
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
    """One contribution row, normalised; dates and quantity parsed."""

    row: int
    sku: str
    lot_code: str
    harvested_on: date
    location: str
    household_code: str
    quantity: int
    packed_on: date | None = None
    village: str | None = None
    unit: str | None = None


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
        parsed = _parse_row(sheet, number, values)
        if parsed is not None:
            sheet.rows.append(parsed)
    if not sheet.rows and not sheet.errors:
        sheet.error(2, None, "The file has no data rows.")
    return sheet


def _parse_row(sheet: Sheet, number: int, values: dict) -> SheetRow | None:
    """Parse one row's cells, recording each problem; None if any cell is unusable."""
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
    if not ok:
        return None
    return SheetRow(
        row=number, sku=normalise(values["sku"]), lot_code=normalise(values["lot_code"]),
        harvested_on=parsed["harvested_on"], location=normalise(values["location"]),
        household_code=normalise(values["household_code"]), quantity=parsed["quantity"],
        packed_on=parsed.get("packed_on"), village=normalise(values.get("village")) or None,
        unit=normalise(values.get("unit")) or None)
