"""Reading co-operatives' inventory sheets: CSV (UTF-8, BOM, GB18030/GBK, Excel's UTF-16 "Unicode text"; CRLF, LF or
Mac Excel's lone CR line ends) or XLSX, messy cells included, within bounds.

Co-ops fill these files by hand on Windows PCs, so the reader forgives what is
unambiguous — full-width digits and spaces, stray whitespace, Excel date cells, several
date spellings, trailing empty rows and columns — and reports everything else as
`{row, column, code, message, message_zh}` (see `catalog.upload_messages`) with the row number the co-op
sees in Excel (header = row 1). A row or a template column Excel hides (hidden, grouped and collapsed, or filtered
out) is refused, so no stock comes in that the co-op did not see and nothing it wrote is dropped silently. A cell merged
down a column reads as the value Excel shows there; a merge across columns (or over the header), or down a column of
each household's own (its code, its quantity, which Excel counts once), is refused.
A file cannot exhaust the worker: an XLSX's uncompressed size and compression ratio (in all and per member) are checked
before it is opened, and so is each part the parser holds whole (shared strings, styles: a sheet's worth of text, not
millions of strings), it is read streaming, and rows, columns and cell lengths are bounded; a cell
echoed in a message is cut to an excerpt, with what may be a phone, ID or bank card number hidden, and only the first
errors are kept (with a count of the rest).
"""
from __future__ import annotations

import csv
import io
import itertools
import re
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

from openpyxl import Workbook, load_workbook
from openpyxl.packaging.relationship import get_rels_path
from openpyxl.reader.excel import ExcelReader, _find_workbook_part
from openpyxl.styles import Font
from openpyxl.styles.numbers import BUILTIN_FORMATS, BUILTIN_FORMATS_MAX_SIZE, is_datetime
from openpyxl.utils import get_column_letter, range_boundaries
from openpyxl.worksheet._reader import WorkSheetParser, _cast_number
from openpyxl.xml.constants import ARC_CONTENT_TYPES, SHEET_MAIN_NS

from catalog.schemas import LOT_CODE_MAX, NEW_CODE_PATTERN
from catalog.upload_messages import LOT_LOCATION_RULE, Problem, hide_personal_numbers, messages
from shop.fields import (
    EARLIEST_DATE,
    LATEST_DATE,
    MAX_NUMBER_INPUT,
    MAX_QUANTITY,
    clean_text,
    fold_width,
    holds_personal_number,
    name_spelling,
    normalise_identifier,
    normalise_number,
    refused_in_identifiers,
    without_controls,
)

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
IDENTIFIERS = ("sku", "lot_code", "location", "household_code")
PER_HOUSEHOLD = ("household_code", "quantity")  # a row's own cells, never shared with the rows below by a merge
LOT_CODE = re.compile(NEW_CODE_PATTERN)  # stored from the sheet: the shape POST /lots accepts, of its length
TEXTS = {"village": 64, "unit": 8}  # free-text cells and their length bounds
FOLDED_TEXTS = {"unit"}  # compared with the product's unit, so folded like a code
NAMES = {"village"}  # spelled as a name is in JSON (`name_spelling`)
NOT_TEXT = (date, time, timedelta, bool)  # cells Excel made of what was typed in a text or code column (5-3, 5:03)
EXCEL_DAY_ZERO = (date(1899, 12, 30), date(1899, 12, 31))  # a time of day's date-time, as programs write one
EXCEL_EXACT = 10**15  # Excel keeps 15 digits of a number: a code typed as a longer one lost the digits after them
_HEADER_NAMES = {alias.lower(): key for key, aliases in COLUMNS.items() for alias in aliases}
_DATE_PATTERNS = (
    re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"),
    re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$"),
    re.compile(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})[日号]?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
)
_WEEKDAYS = "一二三四五六日天"  # Monday first, as `date.weekday` counts; Sunday is 日 or 天
_WEEKDAY = re.compile(f"(?:星期|周|礼拜)([{_WEEKDAYS}])$")  # Chinese Excel's long date ends with it: 2026年9月3日星期四
_QUANTITY = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?")  # a comma only groups thousands; `5.0` is 5
_TIME_OF_DAY = re.compile(r"(?:\s+|T)\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?$")  # a date-time cell saved as text
EXCERPT_CHARS = 50
RATIO_CHECKED_FROM = 1024 * 1024  # members smaller than this may compress as well as they like
_BOMS = ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
UTF16_SAMPLE_BYTES = 4096  # where NUL bytes are looked for: the header and the first rows
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a compound file: Excel 97–2003 (.xls), WPS, or an encrypted workbook
EXCEL_ROWS = 1_048_576  # a row numbered beyond Excel's last is no sheet Excel wrote
_TRUE = ("1", "true")  # an XML boolean attribute that is set
UNSHOWN = "\ufffd"  # in a quoted cell, what stands for a character that is not shown
# ECMA-376 18.8.30: the built-in date formats of the Chinese, Japanese and Korean locales (2026年9月3日, 9月3日, …),
# which a file names by id only and openpyxl does not know (it reads their cells as serial numbers)
_EAST_ASIAN_DATE_FORMATS = frozenset({27, 28, 29, 30, 31, 36, 50, 51, 52, 53, 54, 57, 58})


@dataclass(frozen=True)
class Limits:
    """How much of a file the reader accepts: data rows, columns, characters per cell, the XLSX's
    uncompressed bytes and compression ratio, and the errors kept."""

    rows: int = 200_000
    columns: int = 50
    cell_chars: int = 1000
    xlsx_uncompressed_bytes: int = 200 * 1024 * 1024
    xlsx_ratio: int = 100
    xlsx_part_bytes: int = 16 * 1024 * 1024  # a part read whole (not a sheet): 200,000 rows of codes fit in it
    sheets: int = 255
    errors: int = 200


class FileRejected(Problem):
    """The file as a whole cannot be read within the limits (the code says why)."""


@dataclass(frozen=True)
class NoValue:
    """An XLSX cell that holds no value the co-op meant: the error Excel shows for a formula that failed (#N/A), or
    (`error` None) a formula saved without its value by a program that does not compute formulas."""

    error: str | None = None

    def __str__(self) -> str:
        return self.error or "="


_FORMULA = f"{{{SHEET_MAIN_NS}}}f"
_VALUE = f"{{{SHEET_MAIN_NS}}}v"
_OUT_OF_DATES = r"Cell \w+ is marked as a date but the serial value"  # openpyxl's warning, quoting the number


class _CellParser(WorkSheetParser):
    """openpyxl's sheet parser (values only), with a cell showing an error or a formula without its value read as
    `NoValue`, not as the text of the error or as an empty cell, and a date-time cell in a style that shows only its
    time (`time_styles`) read as that time of day, not as a date the co-op does not see."""

    def __init__(self, *args, time_styles: frozenset[int] = frozenset(), **kwargs):
        super().__init__(*args, **kwargs)
        self.time_styles = time_styles

    def parse_cell(self, element):
        """The cell as openpyxl reads it, its value a `NoValue` where it holds none, a `time` where it shows one, its
        number where a date style holds one no date has (past 9999-12-31: openpyxl makes it an error, and warns with
        the number, which may be a person's phone number: `_sheet_rows` keeps that warning out of the logs)."""
        cell = super().parse_cell(element)
        if cell["data_type"] == "e" and element.get("t") != "e":
            cell["value"] = _cast_number(element.findtext(_VALUE))
        elif cell["data_type"] == "e":
            cell["value"] = NoValue(str(cell["value"]))
        elif cell["value"] is None and cell["data_type"] != "str" and element.find(_FORMULA) is not None:
            cell["value"] = NoValue()  # Excel saves a formula showing nothing as empty text ("str"), never bare
        elif isinstance(cell["value"], datetime) and cell["style_id"] in self.time_styles:
            cell["value"] = cell["value"].time()
        return cell


def excerpt(value, limit: int = EXCERPT_CHARS) -> str:
    """A cell's text as echoed in a message or column name: personal numbers hidden (before the cut, which could
    leave part of one), each control character or direction override shown as � (it would make the message read as
    something else, and dropped it would quote a cell as if it were fine), at most `limit` characters, then "…"."""
    text = "".join(char if without_controls(char) else UNSHOWN for char in hide_personal_numbers(str(value)))
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True)
class RawRow:
    """A row as the file holds it: its number as Excel shows it, its cells, whether Excel hides it, the positions
    (from 0) of the columns Excel hides, the merged ranges starting in it that cannot be read, and those merged down
    one column from it (with the column's position), whose value its rows below read too."""

    number: int
    cells: Sequence
    hidden: bool = False
    hidden_columns: frozenset[int] = frozenset()
    merged_across: tuple[str, ...] = ()  # the ranges starting in this row merged across columns or with the header
    merged_down: tuple[tuple[int, str], ...] = ()  # (column position, range) of the ranges merged down from this row


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


class Written(str):
    """A column named as the file writes it (a header it repeats or does not know, a column's letter): quoted as it
    is, never read as a column's key, though it may be spelled like one (`sku` repeating `产品编码`)."""


@dataclass
class Sheet:
    """The parsed rows, the problems found (the first `max_errors`, and how many more), and the header
    text as written (for messages)."""

    rows: list[SheetRow] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    max_errors: int = Limits.errors
    more_errors: int = 0

    def error(self, row: int | None, column: str | None, code: str, /, **params) -> None:
        """Record the problem `code` (with the values its messages quote) at `row`, naming the column (a key, or
        `Written`) as the file's header writes it (or count it beyond the first `max_errors`)."""
        if len(self.errors) >= self.max_errors:
            self.more_errors += 1
            return
        shown = column if isinstance(column, Written) else self.headers.get(column, column)
        self.errors.append({"row": row, "column": str(shown) if column else None, **messages(code, **params)})

    @property
    def failed(self) -> bool:
        """Whether any problem was found."""
        return bool(self.errors)

    def report(self) -> list[dict]:
        """The errors to store: file-level ones first, then by row, and a last one counting the rest."""
        ordered = sorted(self.errors, key=lambda e: (e["row"] is not None, e["row"] or 0))
        if self.more_errors:
            ordered.append({"row": None, "column": None, **messages("more_errors", count=self.more_errors)})
        return ordered


def as_excel_holds(value):
    """A number cell as Excel shows, sums and compares it: to 15 significant digits (a formula's 0.1 × 3 × 40 is saved
    as 12.000000000000002, and is 12); any other cell as it is."""
    return float(f"{value:.15g}") if isinstance(value, float) else value


def cell_text(value) -> str:
    """A cell as the text it shows (a number as Excel holds it, `as_excel_holds`, a whole one without its `.0`),
    spelled as typed (a village is then spelled as a name is in JSON: `name_spelling`)."""
    if value is None:
        return ""
    value = as_excel_holds(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def normalise(value) -> str:
    """Text of a cell with full-width forms folded (`fold_width`, as identifiers are) and whitespace trimmed: codes,
    numbers, dates."""
    return fold_width(cell_text(value)).strip()


def parse_date(value) -> date:
    """A date from EARLIEST_DATE to LATEST_DATE, from an Excel date cell or `2026-09-03`, `2026/9/3`, `2026.9.3`,
    `2026年9月3日` (or 号), `20260903`, maybe followed by its own weekday (星期四, 周四, 礼拜四: a long date saved as
    CSV) or by a time of day (a date-time cell saved as CSV), which is dropped as it is from an Excel date-time
    cell."""
    day = _date_of(value)
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise Problem("date_out_of_range", value=day.isoformat(), earliest=EARLIEST_DATE.isoformat(),
                      latest=LATEST_DATE.isoformat())
    return day


def _date_of(value) -> date:
    """The date a cell holds, in any of `parse_date`'s spellings; a time of day (a fraction of a day, a date-time on
    Excel's day 0, a cell shown as a time only, a duration) is none."""
    if isinstance(value, time | timedelta) or isinstance(value, datetime) and value.date() in EXCEL_DAY_ZERO:
        raise Problem("time_not_date", value=_clock(value))
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = normalise(value)
    day = _TIME_OF_DAY.sub("", text).replace(" ", "")
    weekday = _WEEKDAY.search(day)
    if weekday:
        day = day[:weekday.start()]
    for pattern in _DATE_PATTERNS:
        match = pattern.match(day)
        if match:
            try:
                found = date(*(int(part) for part in match.groups()))
            except ValueError:
                break
            if weekday is None or min(_WEEKDAYS.index(weekday[1]), 6) == found.weekday():
                return found
            break
    raise Problem("not_a_date", value=excerpt(text))


def _clock(value: time | timedelta | datetime) -> str:
    """A time of day as a clock shows it, `08:30` (to the nearest second, seconds shown only if any)."""
    if isinstance(value, timedelta):
        seconds = round(value.total_seconds())
    else:
        seconds = round(value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 10**6)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours:02d}:{minute:02d}" + (f":{second:02d}" if second else "")


def parse_quantity(value) -> int:
    """A whole number of units from 1 to `MAX_QUANTITY`, read from decimal digits only (`normalise_number`: `٣` is 3,
    `²` or `①` no digit), as every number typed into the API and the pages is."""
    value = as_excel_holds(value)
    if isinstance(value, float) and not value.is_integer():
        raise Problem("not_whole_number", value=excerpt(value))
    cell = cell_text(value)
    text = normalise_number(cell) if len(cell) <= MAX_NUMBER_INPUT else cell.strip()  # too long to be read as one
    number = _QUANTITY.fullmatch(text)
    if number and number[2] and number[2].strip("0"):
        raise Problem("not_whole_number", value=excerpt(text))
    whole = number[1].replace(",", "").lstrip("0") if number else ""
    if not whole:
        raise Problem("not_positive_whole_number", value=excerpt(text))
    if len(whole) > 7 or int(whole) > MAX_QUANTITY:
        raise Problem("quantity_too_large", value=excerpt(text), limit=MAX_QUANTITY)
    return int(whole)


def _decode(data: bytes) -> str:
    """Text of a CSV: UTF-16 with a BOM (Excel's "Unicode text") or without one (NUL bytes, which no UTF-8 or GB18030
    text has, beside its ASCII characters: after them little-endian, before them big-endian), UTF-8 (with or without
    BOM), else GB18030."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(encoding)
            except UnicodeDecodeError:
                raise FileRejected("utf16_invalid") from None
    sample = data[:UTF16_SAMPLE_BYTES]
    if b"\x00" in sample:
        encoding = "utf-16-le" if sample[1::2].count(0) >= sample[::2].count(0) else "utf-16-be"
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            raise FileRejected("unknown_encoding") from None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise FileRejected("unknown_encoding")


def _check_xlsx_size(data: bytes, limits: Limits) -> None:
    """Reject a zip whose members would inflate beyond the limits, before anything is decompressed: in all, and
    member by member (a stored, incompressible member must not hide a bomb beside it)."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise FileRejected("xlsx_unreadable") from exc
    inflated = sum(member.file_size for member in members)
    if inflated > limits.xlsx_uncompressed_bytes:
        raise FileRejected("xlsx_too_large", inflated=inflated, limit=limits.xlsx_uncompressed_bytes)
    packed = sum(member.compress_size for member in members)
    too_compressed = (member.file_size > max(RATIO_CHECKED_FROM, limits.xlsx_ratio * member.compress_size)
                      for member in members)
    if inflated > limits.xlsx_ratio * max(packed, 1) or any(too_compressed):
        raise FileRejected("xlsx_compression_ratio", ratio=limits.xlsx_ratio)


def _part_within(name: str, sizes: dict[str, int], limits: Limits) -> None:
    """Reject a part read whole (not a sheet, which is streamed) that unpacks to more than `xlsx_part_bytes`."""
    if sizes.get(name, 0) > limits.xlsx_part_bytes:
        raise FileRejected("xlsx_part_too_large", part=excerpt(name), inflated=sizes[name],
                           limit=limits.xlsx_part_bytes)


def _check_xlsx_parts(data: bytes, limits: Limits) -> None:
    """Reject, before openpyxl opens the workbook: a part it reads whole (wherever the package puts it: the content
    types, the workbook and its relationships first, as they are read to find the sheets; every part but a worksheet's)
    beyond `xlsx_part_bytes`;
    more than `limits.sheets` sheets; sheets whose parts, each counted once per sheet that names it, unpack to more than
    the uncompressed limit (openpyxl reads every sheet's part to open the workbook, the whole part when it states no
    dimension: one part named by thousands of sheets was parsed thousands of times). External links are not read."""
    try:
        reader = ExcelReader(io.BytesIO(data), read_only=True, keep_links=False)
        sizes = {member.filename: member.file_size for member in reader.archive.infolist()}
        _part_within(ARC_CONTENT_TYPES, sizes, limits)
        reader.read_manifest()
        workbook = _find_workbook_part(reader.package).PartName[1:]
        for part in (workbook, get_rels_path(workbook)):
            _part_within(part, sizes, limits)
        reader.read_workbook()
        sheets = [(rel.target, "chartsheet" in rel.Type) for _, rel in reader.parser.find_sheets()]
    except FileRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the parser fails on in these untrusted bytes is unreadable
        raise FileRejected("xlsx_unreadable") from exc
    if len(sheets) > limits.sheets:
        raise FileRejected("xlsx_too_many_sheets", sheets=len(sheets), limit=limits.sheets)
    read = sum(sizes.get(target, 0) for target, _ in sheets)
    if read > limits.xlsx_uncompressed_bytes:
        raise FileRejected("xlsx_too_large", inflated=read, limit=limits.xlsx_uncompressed_bytes)
    streamed = {target for target, chart in sheets if not chart}  # openpyxl reads a chartsheet's part whole
    for name in sorted(set(sizes) - streamed):
        _part_within(name, sizes, limits)


def _xlsx_rows(data: bytes, limits: Limits) -> Iterator[RawRow]:
    """The first visible sheet's rows (a hidden sheet is not what the co-op sees), streamed (read-only mode), at most
    `columns + 1` wide. Whatever the parser fails on in these untrusted bytes (a broken zip, XML or cell reference)
    is an unreadable file."""
    _check_xlsx_size(data, limits)
    _check_xlsx_parts(data, limits)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
        visible = [sheet for sheet in workbook.worksheets if sheet.sheet_state == "visible"]
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise FileRejected("xlsx_unreadable") from exc
    if not visible:
        workbook.close()
        raise FileRejected("xlsx_no_visible_sheet")
    worksheet = visible[0]
    try:
        if worksheet.max_row is not None and worksheet.max_row > limits.rows + 1:
            raise FileRejected("sheet_range_too_long", last=worksheet.max_row, rows=limits.rows)
        rows = _sheet_rows(workbook, worksheet, width=limits.columns + 1, rows=limits.rows)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except FileRejected:
                raise
            except Exception as exc:  # noqa: BLE001 - see the docstring
                raise FileRejected("xlsx_unreadable") from exc
            yield row
    finally:
        workbook.close()


def _sheet_rows(workbook, worksheet, *, width: int, rows: int) -> Iterator[RawRow]:
    """A read-only sheet's header and rows with content, each with what Excel hides of it. openpyxl's read-only sheet
    keeps none of its parser's row and column attributes, so the sheet is parsed here with that parser (openpyxl is
    pinned); rows must come in order within Excel's, as Excel writes them. Excel keeps a merged range's value in its
    first cell only and lists the merges after the rows, so the rows are held until the sheet is read (more than
    `rows` data rows are refused): then every cell of a range merged down one column takes its value,
    as the co-op sees it, and a range merged across columns or with the header is marked on its first row."""
    with worksheet._get_source() as source, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_OUT_OF_DATES, category=UserWarning)
        parser = _CellParser(source, worksheet._shared_strings, data_only=True, epoch=workbook.epoch,
                             date_formats=_date_styles(workbook), timedelta_formats=workbook._timedelta_formats,
                             time_styles=_time_styles(workbook))
        held, following, hidden_columns = [], 1, None
        for number, cells in parser.parse():
            if not following <= number <= EXCEL_ROWS:
                raise ValueError(f"row {number} after row {following - 1}")
            following = number + 1
            values = [None] * width
            for cell in cells:
                if cell["column"] <= width:
                    values[cell["column"] - 1] = cell["value"]
            if hidden_columns is None:
                hidden_columns = _hidden_columns(parser, width)
            hidden = parser.row_dimensions.pop(str(number), {}).get("hidden") in _TRUE
            while values and values[-1] is None:  # held: no room for the empty columns to its right
                values.pop()
            if number == 1 or any(not _blank(value) for value in values):
                held.append(RawRow(number, values, hidden=hidden, hidden_columns=hidden_columns))
            if len(held) > rows + 1:
                raise FileRejected("too_many_rows", rows=rows)
        held = _merged(held, parser.merged_cells.mergeCell if parser.merged_cells else [])
    if not held or held[0].number != 1:
        yield RawRow(1, ())
    yield from held


def _date_styles(workbook) -> set[int]:
    """The cell styles that show a date: those openpyxl knows, and those in an East Asian locale's built-in date
    format (a Chinese Excel's or WPS's 2026年9月3日), whose cells hold dates as Excel's other date cells do."""
    return workbook._date_formats | {index for index, style in enumerate(workbook._cell_styles)
                                     if style.numFmtId in _EAST_ASIAN_DATE_FORMATS}


def _time_styles(workbook) -> frozenset[int]:
    """The cell styles that show a time of day and no date (`h:mm`, `h:mm AM/PM`)."""
    formats = {**BUILTIN_FORMATS, **{index: code for index, code in enumerate(workbook._number_formats,
                                                                             BUILTIN_FORMATS_MAX_SIZE)}}
    return frozenset(index for index, style in enumerate(workbook._cell_styles)
                     if is_datetime(formats.get(style.numFmtId, "General")) == "time")


def _blank(value) -> bool:
    """Whether a cell holds nothing (a text of spaces too), looked at without folding it."""
    return value is None or isinstance(value, str) and not value.strip()


def _merged(held: list[RawRow], merges) -> list[RawRow]:
    """The rows with each cell of a range merged down one column (below the header) given the range's value, in the
    rows that hold something of their own; a range holding a value merged across columns or with the header, and one
    merged down (with its column's position), is marked on its first row. A cell merged twice is no sheet Excel
    wrote."""
    at = {row.number: index for index, row in enumerate(held)}
    across: dict[int, list[str]] = {}
    down: dict[int, list[tuple[int, str]]] = {}
    merged: set[tuple[int, int]] = set()
    for merge in merges:
        first_column, first_row, last_column, last_row = range_boundaries(merge.ref)
        first = held[at[first_row]].cells if first_row in at else ()
        if first_column > len(first) or _blank(first[first_column - 1]):
            continue
        if first_column != last_column or first_row == 1:
            across.setdefault(first_row, []).append(merge.ref)
            continue
        value = first[first_column - 1]
        down.setdefault(first_row, []).append((first_column - 1, merge.ref))
        for index in range(at[first_row] + 1, len(held)):
            row = held[index]
            if row.number > last_row:
                break
            if (row.number, first_column) in merged:
                raise ValueError(f"{merge.ref} overlaps another merged range")
            merged.add((row.number, first_column))
            row.cells.extend([None] * (first_column - len(row.cells)))
            row.cells[first_column - 1] = value
    return [replace(row, merged_across=tuple(across.get(row.number, ())), merged_down=tuple(down.get(row.number, ())))
            if row.number in across or row.number in down else row for row in held]


def _hidden_columns(parser: WorkSheetParser, width: int) -> frozenset[int]:
    """The positions (from 0, below `width`) of the columns the sheet hides (its `<cols>` precede its rows)."""
    ranges = [(int(col["min"]), int(col["max"])) for col in parser.column_dimensions.values()
              if col.get("hidden") in _TRUE]
    return frozenset(index - 1 for first, last in ranges for index in range(first, min(last, width) + 1))


_SEP_LINE = re.compile(r'(?i)sep=([^"\r\n])(?:\r\n?|\n)?')  # Excel's first line naming a CSV's separator


def _csv_rows(data: bytes, limits: Limits) -> Iterator[RawRow]:
    """A CSV's (or tab-separated text's) cells row by row, lines ended by CRLF, LF or a lone CR (Mac Excel's "CSV
    (Macintosh)"); the delimiter is the one a first line `sep=X` names (Excel's, which is then no row, as Excel hides
    it), else the header line's commonest. A record the csv module cannot read (a cell past its field limit, where an
    unclosed quote runs the rest of the file) is named by the line it starts on."""
    source = io.StringIO(_decode(data), newline="")
    first_line = source.readline()
    named = _SEP_LINE.fullmatch(first_line)
    if named:
        delimiter = named.group(1)
    else:
        source.seek(0)
        delimiter = max((",", "\t", ";"), key=first_line.count)
    reader = csv.reader(source, delimiter=delimiter)
    for number in itertools.count(1):
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error:
            raise FileRejected("csv_unreadable", line=start) from None
        yield RawRow(number, row)


def _raw_rows(data: bytes, limits: Limits) -> Iterator[RawRow]:
    """The file's cells row by row, from XLSX (zip) or CSV; a compound file (an old or encrypted workbook) is
    refused as what it is."""
    if data.startswith(OLE2):
        raise FileRejected("xls_or_encrypted")
    if data[:4] == b"PK\x03\x04":
        return _xlsx_rows(data, limits)
    return _csv_rows(data, limits)


def _width(cells) -> int:
    """The number of cells up to the last non-empty one."""
    width = len(cells)
    while width and normalise(cells[width - 1]) == "":
        width -= 1
    return width


def _cut(cells: Sequence, limits: Limits) -> list:
    """A row's cells with each text longer than `cell_chars` cut to that many characters and "…": still too long where
    a column is read and never empty (it may start with a thousand spaces), but no cell of millions of characters is
    folded (NFKC makes some characters 18 times longer) or scanned whole."""
    return [cell[:limits.cell_chars] + "…" if isinstance(cell, str) and len(cell) > limits.cell_chars else cell
            for cell in cells]


def read_sheet(data: bytes, *, limits: Limits = Limits()) -> Sheet:
    """Parse an inventory sheet into rows and errors; a file-level problem is an error at row 1."""
    sheet = Sheet(max_errors=limits.errors)
    try:
        _read_into(sheet, _raw_rows(data, limits), limits)
    except FileRejected as exc:  # the file as a whole is the problem: its rows' errors would only distract
        sheet.rows.clear()
        sheet.errors.clear()
        sheet.more_errors = 0
        sheet.error(1, None, exc.code, **exc.params)
    return sheet


def _read_into(sheet: Sheet, raw: Iterator[RawRow], limits: Limits) -> None:
    """Read the header, then every data row, stopping past the row limit; a hidden row or template column is an
    error, and a hidden row is not read; so is a merge down a column of each household's own (`PER_HOUSEHOLD`): one
    quantity shown over three households' rows, which Excel itself counts once, is no quantity of each."""
    header = next(raw, None)
    if header is None:
        sheet.error(1, None, "file_empty")
        return
    positions = _read_header(sheet, _cut(header.cells, limits), limits)
    if sheet.failed:
        return
    if header.hidden:
        sheet.error(1, None, "hidden_row")
    for cells in header.merged_across:
        sheet.error(1, None, "merged_across_columns", cells=cells)
    for key, index in positions.items():
        if index in header.hidden_columns:
            sheet.error(1, key, "hidden_column", header=sheet.headers[key])
    read = set(positions.values())
    own = {positions[key]: key for key in PER_HOUSEHOLD if key in positions}
    count = 0
    for line in raw:
        number, cells = line.number, _cut(line.cells, limits)
        width = _width(cells)
        if width == 0:
            continue
        count += 1
        if count > limits.rows:
            raise FileRejected("too_many_rows", rows=limits.rows)
        if line.hidden:
            sheet.error(number, None, "hidden_row")
            continue
        for merged in line.merged_across:
            sheet.error(number, None, "merged_across_columns", cells=merged)
        for index, merged in line.merged_down:
            if index in own:
                sheet.error(number, own[index], "merged_per_household", cells=merged)
        if width > limits.columns:
            sheet.error(number, None, "row_too_wide", columns=limits.columns)
            continue
        headless = next((index for index in range(width) if index not in read and normalise(cells[index]) != ""),
                        None)
        if headless is not None:  # a cell no column reads: `1,000` split at its comma, or a column left unnamed
            letter = get_column_letter(headless + 1)
            sheet.error(number, Written(letter), "cell_without_header", letter=letter)
        values = {key: cells[index] if index < len(cells) else None for key, index in positions.items()}
        sheet.rows.append(_parse_row(sheet, number, values, limits))
    if not sheet.rows and not sheet.failed:
        sheet.error(2, None, "no_data_rows")


def _read_header(sheet: Sheet, cells, limits: Limits) -> dict[str, int]:
    """Map each known column to its position, a header read as a code is (invisible characters dropped); unknown,
    repeated, missing or too many columns are errors."""
    if _width(cells) > limits.columns:
        sheet.error(1, None, "header_too_wide", columns=limits.columns)
        return {}
    positions: dict[str, int] = {}
    for index, cell in enumerate(cells):
        header = normalise(cell)
        if not header:
            continue
        name = normalise_identifier(header, case=None)  # as the co-op sees it, quoted as the file spells it if unknown
        key = _HEADER_NAMES.get(name.lower())
        if key is None:
            sheet.error(1, Written(excerpt(header)), "unknown_column", header=excerpt(header))
        elif key in positions:
            sheet.error(1, Written(name), "duplicate_column", header=name)
        else:
            positions[key] = index
            sheet.headers[key] = name
    for key in REQUIRED:
        if key not in positions:
            sheet.error(1, key, "missing_column", zh=COLUMNS[key][0], en=COLUMNS[key][1])
    return positions


def _parse_row(sheet: Sheet, number: int, values: dict, limits: Limits) -> SheetRow:
    """Parse one row's cells, recording each problem; `complete` is False if any cell is unusable."""
    parsed: dict = {}
    ok = True
    for key, value in values.items():
        if isinstance(value, NoValue):
            if value.error is None:
                sheet.error(number, key, "formula_not_computed")
            else:
                sheet.error(number, key, "excel_error", value=excerpt(value.error))
            values[key], ok = None, False
            parsed[key] = None
        elif isinstance(value, str) and len(value) > limits.cell_chars:
            sheet.error(number, key, "cell_too_long", chars=limits.cell_chars)
            values[key], ok = None, False
            parsed[key] = None
        elif isinstance(value, NOT_TEXT) and (key in IDENTIFIERS or key in TEXTS):
            sheet.error(number, key, "not_text")
            values[key], ok = None, False
            parsed[key] = None
        elif isinstance(value, int | float) and abs(value) >= EXCEL_EXACT and key in IDENTIFIERS:
            sheet.error(number, key, "number_imprecise")
            values[key], ok = None, False
            parsed[key] = None
    for key in REQUIRED:
        if key not in parsed and normalise(values.get(key)) == "":
            sheet.error(number, key, "cell_required")
            ok = False
    for key, parser in (("harvested_on", parse_date), ("packed_on", parse_date), ("quantity", parse_quantity)):
        if normalise(values.get(key)) == "":
            continue
        try:
            parsed[key] = parser(values[key])
        except Problem as exc:
            sheet.error(number, key, exc.code, **exc.params)
            ok = False
    codes = {key: normalise_identifier(normalise(values.get(key)), case="upper") for key in IDENTIFIERS}
    for key, code in codes.items():
        if refused_in_identifiers(code) is not None:  # as in JSON: nobody could read it back (PostgreSQL: a NUL)
            sheet.error(number, key, "line_break_in_cell" if _breaks_line(code) else "code_characters")
            codes[key], ok = "", False
    if codes["lot_code"] and (len(codes["lot_code"]) > LOT_CODE_MAX or not LOT_CODE.match(codes["lot_code"])):
        sheet.error(number, "lot_code", "invalid_lot_code", value=excerpt(codes["lot_code"]))
        codes["lot_code"], ok = "", False
    elif holds_personal_number(codes["lot_code"]):
        sheet.error(number, "lot_code", "personal_number_in_code")
        codes["lot_code"], ok = "", False
    texts: dict[str, str | None] = {}
    for key, limit in TEXTS.items():
        try:
            raw = normalise(values.get(key)) if key in FOLDED_TEXTS else cell_text(values.get(key))
            texts[key] = clean_text(raw) or None
            if texts[key] and key in NAMES:
                texts[key] = name_spelling(texts[key])
        except ValueError:  # the one problem `clean_text` raises
            sheet.error(number, key, "line_break_in_cell" if _breaks_line(raw) else "control_characters")
            texts[key], ok = None, False
            continue
        if texts[key] and len(texts[key]) > limit:
            sheet.error(number, key, "text_too_long", limit=limit)
            texts[key], ok = None, False
        elif texts[key] and holds_personal_number(texts[key]):  # a village is shown on the public trace page
            sheet.error(number, key, "personal_number_in_text")
            texts[key], ok = None, False
    return SheetRow(
        row=number, sku=codes["sku"], lot_code=codes["lot_code"],
        harvested_on=parsed.get("harvested_on"), location=codes["location"],
        household_code=codes["household_code"], quantity=parsed.get("quantity"),
        packed_on=parsed.get("packed_on"), village=texts["village"], unit=texts["unit"], complete=ok)


def _breaks_line(text: str) -> bool:
    """Whether a cell refused for its characters holds a line break, which Excel shows as a wrapped line, not as a
    character: its error names it."""
    return "\n" in text or "\r" in text


TEMPLATE_HELP = (
    ("产品编码 / sku", "必填。产品编码（SKU），须为本合作社的产品。",
     "Required. The product's SKU; one of this co-op's products."),
    ("批次号 / lot_code", "必填。同一批次号的各行组成一个批次。",
     "Required. Rows with the same lot code form one lot."),
    ("采收日期 / harvested_on", "必填。如 2026-09-03、2026/9/3、20260903 或 2026年9月3日。",
     "Required. E.g. 2026-09-03, 2026/9/3, 20260903 or 2026年9月3日."),
    ("存放地点 / location", f"必填。仓库的地点编码（{LOT_LOCATION_RULE[1]}；填门店的编码会被拒绝）。",
     f"Required. The code of a warehouse ({LOT_LOCATION_RULE[0]}; a store's code is refused)."),
    ("农户编号 / household_code", "必填。交售农户的建档立卡编号，须与本合作社有收购联结。",
     "Required. The household's registry code; it needs a purchase link with this co-op."),
    ("交售数量 / quantity", "必填。正整数，按产品单位计。", "Required. A positive whole number in the product's unit."),
    ("包装日期 / packed_on", "选填。不得早于采收日期。", "Optional. Not before the harvest date."),
    ("村 / village", "选填。默认为农户所在村。", "Optional. Defaults to the household's village."),
    ("单位 / unit", "选填。须与产品单位一致（kg、box、bag、piece）。",
     "Optional. Must equal the product's unit (kg, box, bag, piece)."),
)


# the template's columns formatted before anything is typed: codes as text (Excel makes household 0012 the number 12),
# dates as the help asks for them
TEMPLATE_FORMATS = dict.fromkeys(IDENTIFIERS, "@") | dict.fromkeys(("harvested_on", "packed_on"), "yyyy-mm-dd")
EXAMPLE_TITLE = ("示例 Example", "仅供参考，不会导入：请在“库存上传”页第 2 行起填写，每行一户农户对一个批次的交售。",
                 "For reference only, never imported: fill in the 库存上传 sheet from row 2, one household's delivery "
                 "to a lot per row.")


def template_workbook(example: list) -> bytes:
    """The upload template: a sheet with the Chinese headers and no data rows (an untouched template imports
    nothing), and a sheet explaining the columns in both header languages, with an example row."""
    book = Workbook()
    sheet = book.active
    sheet.title = "库存上传"
    headers = [aliases[0] for aliases in COLUMNS.values()]
    sheet.append(headers)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for index, key in enumerate(COLUMNS, 1):  # what is typed below the header takes its column's format
        column = sheet.column_dimensions[get_column_letter(index)]
        column.width, column.number_format = 16, TEMPLATE_FORMATS.get(key, "General")
    help_sheet = book.create_sheet("说明 Help")
    help_sheet.append(["列名 / column", "说明", "Meaning"])
    for row in TEMPLATE_HELP:
        help_sheet.append(list(row))
    help_sheet.append([])
    help_sheet.append(["", "表头可用中文或英文，列的顺序不限；每行是一户农户对一个批次的交售。",
                       "Headers may be Chinese or English, in any order; one row per household contribution."])
    help_sheet.append(["", "隐藏的行和列（包括筛选隐藏的行）不会悄悄导入，而是报错："
                           "上传前请取消隐藏、清除筛选，不要的行请删除。",
                       "Hidden rows and columns (rows a filter hides too) are not imported unseen but refused: unhide "
                       "them and clear filters before uploading, and delete the rows you do not want."])
    help_sheet.append([])
    help_sheet.append(list(EXAMPLE_TITLE))
    help_sheet.cell(help_sheet.max_row, 1).font = Font(bold=True)
    help_sheet.append(headers)
    for cell in help_sheet[help_sheet.max_row]:
        cell.font = Font(bold=True)
    help_sheet.append(example)
    for cell in help_sheet[help_sheet.max_row]:
        if isinstance(cell.value, date):
            cell.number_format = "yyyy-mm-dd"
    for column, width in (("A", 26), ("B", 48), ("C", 60)):
        help_sheet.column_dimensions[column].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
