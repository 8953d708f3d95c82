"""Files people open in spreadsheet programs (reports, bank files): text from users is never run as a formula."""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from openpyxl.worksheet.worksheet import Worksheet

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A CSV cell: text that a spreadsheet would evaluate as a formula gets a leading apostrophe (OWASP's advice),
    also when its first character is a compatibility form of a formula sign (`＝`, `﹦`, `＋`: CJK spreadsheets read
    them as the ASCII sign); numbers and other values as they are."""
    if isinstance(value, str) and unicodedata.normalize("NFKC", value[:1]).startswith(FORMULA_STARTS):
        return "'" + value
    return value


def append_row(sheet: Worksheet, values: Iterable[object]) -> None:
    """Append a row to an XLSX sheet with every text cell stored as text (openpyxl writes a string starting
    with `=` as a formula)."""
    sheet.append(list(values))
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"
