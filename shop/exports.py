"""Files people open in spreadsheet programs (reports, bank files): text from users is never run as a formula."""
from __future__ import annotations

from collections.abc import Iterable

from openpyxl.worksheet.worksheet import Worksheet

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A CSV cell: text that a spreadsheet would evaluate as a formula gets a leading apostrophe (OWASP's advice);
    numbers and other values as they are."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def append_row(sheet: Worksheet, values: Iterable[object]) -> None:
    """Append a row to an XLSX sheet with every text cell stored as text (openpyxl writes a string starting
    with `=` as a formula)."""
    sheet.append(list(values))
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"
