"""The bank's batch-transfer file of a payout batch: CSV, UTF-8 with a BOM (so Excel on Windows shows the Chinese
correctly), or XLSX; a header row, one row per line still to transfer, amounts in yuan with two decimals. Opened
in a spreadsheet, a CSV's 19-digit account number reads as a number and keeps 15 significant digits; in the XLSX
every account number (and every other text) is a text cell, so a co-op that checks the file and saves it still
sends the bank the right accounts.

Every text cell is guarded against formula injection: a cell a spreadsheet would evaluate (starting with `=`,
`+`, `-`, `@`, their full-width forms, a tab or a carriage return) is written with a leading apostrophe, so a
payee named `=HYPERLINK(…)` or `＝HYPERLINK(…)` stays text. The bank's name is filled in where the account's
issuer prefix (BIN) is one we know; otherwise it is left empty, as banks' batch templates allow for transfers
by account number.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from decimal import Decimal
from typing import NamedTuple

from openpyxl import Workbook

from shop.exports import append_row, csv_cell

HEADER = ("序号", "收款人户名", "收款人账号", "收款银行", "金额（元）", "用途", "业务参考号")
PURPOSES = {"household": "农户收益分配", "supplier": "货款结算", "store": "门店佣金"}
# issuer prefixes (BINs) of the debit cards most households and co-ops hold
BANKS_BY_BIN = {"622202": "中国工商银行", "622848": "中国农业银行", "621700": "中国建设银行",
                "622188": "中国邮政储蓄银行"}


class BankRow(NamedTuple):
    """One transfer: payee, full account number, amount in fen and our reference."""

    payee_name: str
    account: str
    amount_fen: int
    reference: str


def yuan(fen: int) -> str:
    """A (positive) amount in fen as yuan with two decimals (`12345` → `123.45`)."""
    return f"{fen // 100}.{fen % 100:02d}"


def bank_name(account: str) -> str:
    """The issuing bank of an account number, if its prefix is a known BIN; else empty."""
    return BANKS_BY_BIN.get(account[:6], "")


def reference(batch_id: int, line_id: int) -> str:
    """The transfer's reference: batch and line, so a bank return names the line to settle."""
    return f"PB{batch_id}-L{line_id}"


def render(rows: Iterable[BankRow], *, party: str) -> bytes:
    """The CSV file's bytes (UTF-8 with BOM, CRLF line ends)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for number, row in enumerate(rows, start=1):
        writer.writerow([number, csv_cell(row.payee_name), csv_cell(row.account), bank_name(row.account),
                         yuan(row.amount_fen), PURPOSES[party], csv_cell(row.reference)])
    return out.getvalue().encode("utf-8-sig")


def render_xlsx(rows: Iterable[BankRow], *, party: str) -> bytes:
    """The XLSX file's bytes: account numbers and references as text, amounts as numbers in yuan (0.00)."""
    book = Workbook()
    sheet = book.active
    sheet.title = "转账明细"
    append_row(sheet, HEADER)
    for number, row in enumerate(rows, start=1):
        append_row(sheet, [number, row.payee_name, row.account, bank_name(row.account),
                           Decimal(row.amount_fen) / 100, PURPOSES[party], row.reference])
        sheet.cell(row=sheet.max_row, column=3).number_format = "@"
        sheet.cell(row=sheet.max_row, column=5).number_format = "0.00"
    sheet.column_dimensions["C"].width = 24
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
