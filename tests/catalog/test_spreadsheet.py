"""Reading messy co-op sheets: encodings, full-width forms, Excel dates, row numbers."""
from __future__ import annotations

import html
import io
import re
import warnings
import zipfile
from datetime import date, datetime, time

import pytest
from openpyxl import Workbook

from catalog.spreadsheet import Limits, read_sheet

HEADER_ZH = "产品编码,批次号,采收日期,存放地点,农户编号,交售数量"


def xlsx(rows, merges=()) -> bytes:
    """An XLSX file with `rows` on its first sheet and the `merges` (ranges like A2:A4) merged, as Excel and WPS
    merge them (the value kept in the first cell only)."""
    book = Workbook()
    for row in rows:
        book.active.append(row)
    for merge in merges:
        book.active.merge_cells(merge)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_gbk_csv_with_chinese_headers_and_chinese_dates():
    text = HEADER_ZH + ",村\r\nZJ-KQ-500,LOT-1,2026年9月3日,XC-WH,ZJ001,12,阿说村\r\n"
    sheet = read_sheet(text.encode("gbk"))
    assert sheet.errors == []
    (row,) = sheet.rows
    assert (row.row, row.sku, row.harvested_on, row.quantity, row.village) == (
        2, "ZJ-KQ-500", date(2026, 9, 3), 12, "阿说村")


def test_utf8_bom_csv_with_english_headers_in_another_order_and_slash_dates():
    text = ("\ufeffquantity,household_code,sku,lot_code,location,harvested_on,packed_on\n"
            "5,H1,S1,L1,W1,2026/9/3,2026-09-05\n")
    (row,) = read_sheet(text.encode("utf-8")).rows
    assert (row.quantity, row.harvested_on, row.packed_on) == (5, date(2026, 9, 3), date(2026, 9, 5))


def test_full_width_digits_letters_spaces_stray_whitespace_and_trailing_junk():
    text = (HEADER_ZH + ",\n"
            " ＺＪ－ＫＱ－５００ ,　ＬＯＴ１　,２０２６－０９－０３,XC-WH , ZJ００１,１２,\n"
            ",,,,,,\n\n")
    sheet = read_sheet(text.encode("utf-8"))
    assert sheet.errors == []
    (row,) = sheet.rows
    assert (row.sku, row.lot_code, row.harvested_on, row.household_code, row.quantity) == (
        "ZJ-KQ-500", "LOT1", date(2026, 9, 3), "ZJ001", 12)


@pytest.mark.parametrize("dash", ["\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212"],
                         ids=["hyphen", "non-breaking hyphen", "figure dash", "en dash", "em dash", "bar", "minus"])
def test_a_code_typed_with_another_dash_is_the_code_with_a_hyphen(dash):
    text = HEADER_ZH + f"\nZJ{dash}KQ{dash}500,LOT{dash}1,2026-09-03,XC{dash}WH,ZJ{dash}001,12\n"
    sheet = read_sheet(text.encode("utf-8"))
    assert sheet.errors == []
    (row,) = sheet.rows
    assert (row.sku, row.lot_code, row.location, row.household_code) == ("ZJ-KQ-500", "LOT-1", "XC-WH", "ZJ-001")


def test_xlsx_with_excel_date_cells_and_numeric_quantities():
    data = xlsx([HEADER_ZH.split(","), ["S1", "L1", datetime(2026, 9, 3), "W1", "H1", 7.0], [None] * 6])
    sheet = read_sheet(data)
    assert sheet.errors == []
    assert [(r.harvested_on, r.quantity) for r in sheet.rows] == [(date(2026, 9, 3), 7)]


def with_builtin_number_formats(data: bytes, builtin: dict[str, int]) -> bytes:
    """The XLSX `data` with its custom number formats named in `builtin` replaced by those built-in format ids, which a
    file names by id only (as WPS and Excel in a Chinese locale save 2026年9月3日 and 9月3日)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as book, zipfile.ZipFile(out, "w") as saved:
        for name in book.namelist():
            part = book.read(name).decode()
            if name == "xl/styles.xml":
                for entry, number, code in re.findall(r'(<numFmt numFmtId="(\d+)" formatCode="([^"]*)" />)', part):
                    if html.unescape(code) in builtin:
                        part = part.replace(entry, "").replace(f'numFmtId="{number}"',
                                                               f'numFmtId="{builtin[html.unescape(code)]}"')
            saved.writestr(name, part)
    return out.getvalue()


def test_xlsx_dates_in_an_east_asian_locales_built_in_date_formats_are_dates():
    """A date cell formatted 2026年9月3日 or 9月3日 (a Chinese Excel's or WPS's own date formats, ids 27-36 and 50-58
    that openpyxl does not know) shows a date and holds the date: it reads as that date, not as its serial number; a
    number the sheet shows as a number is not a date."""
    book = Workbook()
    book.active.append(HEADER_ZH.split(",") + ["包装日期"])
    for lot, shown in (("L1", 'yyyy"年"m"月"d"日"'), ("L2", 'm"月"d"日"')):
        book.active.append(["S1", lot, datetime(2026, 9, 3), "W1", "H1", 7, datetime(2026, 9, 5)])
        for cell in (book.active.cell(book.active.max_row, 3), book.active.cell(book.active.max_row, 7)):
            cell.number_format = shown
    book.active.append(["S1", "L3", 46268, "W1", "H1", 7])
    out = io.BytesIO()
    book.save(out)
    sheet = read_sheet(with_builtin_number_formats(out.getvalue(), {'yyyy"年"m"月"d"日"': 31, 'm"月"d"日"': 58}))
    assert [(r.lot_code, r.harvested_on, r.packed_on) for r in sheet.rows if r.complete] == [
        ("L1", date(2026, 9, 3), date(2026, 9, 5)), ("L2", date(2026, 9, 3), date(2026, 9, 5))]
    assert [(e["row"], e["message"]) for e in sheet.errors] == [
        (4, "'46268' is not a date (write it like 2026-09-03).")]


def test_a_csv_quantity_written_with_zero_decimals_is_the_whole_number_as_in_an_xlsx():
    text = HEADER_ZH + "\nS1,L1,2026-09-03,W1,H1,5.0\nS2,L2,2026-09-03,W1,H1,１２.００\nS3,L3,2026-09-03,W1,H1,5.5\n" \
        f"S4,L4,2026-09-03,W1,H1,{'0' * 20}{'9' * 20}.0\nS5,L5,2026-09-03,W1,H1,0.0\n"
    sheet = read_sheet(text.encode("utf-8"))
    assert [(r.sku, r.quantity) for r in sheet.rows if r.quantity] == [("S1", 5), ("S2", 12)]
    assert [(e["row"], e["code"]) for e in sheet.errors] == [
        (4, "not_whole_number"), (5, "quantity_too_large"), (6, "not_positive_whole_number")]


def test_a_comma_in_a_quantity_groups_thousands_and_is_never_a_decimal_point_dropped():
    """`12,5` is twelve and a half (not a whole number of units), never 125; `1,200` and `１，２００` are 1200."""
    data = xlsx([HEADER_ZH.split(","), ["S1", "L1", "2026-09-03", "W1", "H1", "1,200"],
                 ["S2", "L2", "2026-09-03", "W1", "H1", "１，２００"], ["S3", "L3", "2026-09-03", "W1", "H1", "12,5"],
                 ["S4", "L4", "2026-09-03", "W1", "H1", "1,2,0,0"], ["S5", "L5", "2026-09-03", "W1", "H1", "12,50"]])
    sheet = read_sheet(data)
    assert [(r.sku, r.quantity) for r in sheet.rows if r.quantity] == [("S1", 1200), ("S2", 1200)]
    assert [(e["row"], e["column"]) for e in sheet.errors] == [(4, "交售数量"), (5, "交售数量"), (6, "交售数量")]


def test_every_bad_cell_is_reported_with_its_excel_row_and_header():
    text = (HEADER_ZH + "\n"
            "S1,L1,2026-09-03,W1,H1,12\n"
            "S1,L1,yesterday,W1,H1,-3\n"
            "S1,,2026-09-03,W1,H2,2.5\n")
    sheet = read_sheet(text.encode("utf-8"))
    assert sorted((e["row"], e["column"]) for e in sheet.errors) == [
        (3, "交售数量"), (3, "采收日期"), (4, "交售数量"), (4, "批次号")]
    assert [row.complete for row in sheet.rows] == [True, False, False]
    assert sheet.rows[1].household_code == "H1" and sheet.rows[1].quantity is None


def test_missing_and_unknown_columns_are_reported_on_the_header_row():
    sheet = read_sheet("产品编码,批次号,颜色\nS1,L1,red\n".encode())
    messages = [e["message"] for e in sheet.errors]
    assert all(e["row"] == 1 for e in sheet.errors)
    assert "Unknown column '颜色'." in messages
    assert sum(m.startswith("Missing column") for m in messages) == 4


def test_unreadable_and_empty_files_are_errors_not_crashes():
    assert read_sheet(b"").errors[0]["message"] == "The file is empty."
    assert "cannot be read" in read_sheet(b"PK\x03\x04garbage").errors[0]["message"]
    assert read_sheet((HEADER_ZH + "\n").encode()).errors[0]["message"].startswith("The file has no data rows: ")


def test_file_level_problems_and_the_count_of_the_rest_have_codes_and_chinese():
    def first(sheet) -> tuple:
        error = sheet.report()[0]
        return error["row"], error["column"], error["code"], error["message_zh"]

    assert first(read_sheet(b"")) == (1, None, "file_empty", "文件是空的。")
    assert first(read_sheet(b"PK\x03\x04garbage")) == (
        1, None, "xlsx_unreadable", "文件无法读取：XLSX 文件已损坏，或不是 Excel 文件。")
    assert first(read_sheet(b"\xff\xfe\x00\xd8")) == (
        1, None, "utf16_invalid", "文件无法读取：文件标明是 UTF-16 文本，但内容不是。")
    assert first(read_sheet((HEADER_ZH + ",颜色\n").encode("gbk"))) == (
        1, "颜色", "unknown_column", "未知的列“颜色”（列名见模板的“说明”页）。")
    assert first(read_sheet((HEADER_ZH + ",批次号\n").encode("gbk"))) == (
        1, "批次号", "duplicate_column", "列“批次号”出现了两次。")
    assert first(read_sheet("批次号\nL1\n".encode("gbk"))) == (1, "sku", "missing_column", "缺少列“产品编码/sku”。")
    body = HEADER_ZH + "\n" + "S1,L1,昨天,W1,H1,5\n" * 5
    report = read_sheet(body.encode("gbk"), limits=Limits(errors=3)).report()
    assert [e["row"] for e in report] == [2, 3, 4, None]
    assert (report[-1]["code"], report[-1]["message_zh"]) == (
        "more_errors", "另有 2 处问题未列出；请先改正以上问题，再重新上传。")


@pytest.mark.parametrize("repeated", ["sku", "lot_code", "quantity", "unit"])
def test_a_repeated_column_spelled_as_its_key_is_named_as_the_file_spells_the_repeat(repeated):
    """A header naming a column twice, the second time by its key (`产品编码,…,sku`), names the repeat as written,
    not the first column the key stands for."""
    header = HEADER_ZH + ",单位" if repeated == "unit" else HEADER_ZH
    sheet = read_sheet((header + f",{repeated}\n").encode("gbk"))
    assert [(e["row"], e["column"], e["code"], e["message_zh"]) for e in sheet.report()] == [
        (1, repeated, "duplicate_column", f"列“{repeated}”出现了两次。")]


def test_the_template_has_no_data_rows_and_its_help_shows_an_example_row_that_reads_back():
    """An untouched template imports nothing; its example, copied under the headers, is read as the row it shows."""
    from openpyxl import load_workbook

    from catalog.spreadsheet import template_workbook

    example = ["ZJ-KQ-500", "ZJ-2026-09-A", datetime(2026, 9, 3), "XC-WH", "ZJ001", 20,
               datetime(2026, 9, 5), "示例村", "bag"]
    data = template_workbook(example)
    assert [e["code"] for e in read_sheet(data).errors] == ["no_data_rows"]
    data_sheet, help_sheet = load_workbook(io.BytesIO(data)).worksheets
    rows = [[cell.value for cell in row] for row in help_sheet.iter_rows()]
    title = next(number for number, row in enumerate(rows) if row[0] == "示例 Example")
    headers, shown = rows[title + 1], rows[title + 2]
    assert any("隐藏的行和列" in (row[1] or "") and "Hidden rows and columns" in (row[2] or "") for row in rows)
    assert headers == [cell.value for cell in data_sheet[1]]
    sheet = read_sheet(xlsx([headers, shown]))
    assert sheet.errors == []
    (row,) = sheet.rows
    assert (row.sku, row.harvested_on, row.packed_on, row.quantity, row.unit) == (
        "ZJ-KQ-500", date(2026, 9, 3), date(2026, 9, 5), 20, "bag")


def test_the_templates_help_on_the_location_states_the_rule_the_import_refuses_a_store_by():
    """The help is read before the upload: it must not offer a store's code, which every import then refuses."""
    from catalog.spreadsheet import TEMPLATE_HELP
    from catalog.upload_messages import messages

    ((_, zh, en),) = [row for row in TEMPLATE_HELP if row[0] == "存放地点 / location"]
    refusal = messages("location_not_warehouse", location="FS-SD-ST")
    assert refusal["message_zh"].split("：", 1)[1].rstrip("。") in zh and "或门店" not in zh, zh
    assert refusal["message"].split(": ", 1)[1].rstrip(".") in en and "or store" not in en, en


def test_excel_unicode_text_is_utf16_with_a_bom_and_tabs():
    text = HEADER_ZH.replace(",", "\t") + "\r\nzj-kq-500\tlot-1\t2026-09-03\txc-wh\tzj001\t12\r\n"
    for encoding, bom in (("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")):
        (row,) = read_sheet(bom + text.encode(encoding)).rows
        assert (row.sku, row.lot_code, row.location, row.household_code, row.quantity) == (
            "ZJ-KQ-500", "LOT-1", "XC-WH", "ZJ001", 12)


@pytest.mark.parametrize("separator", [",", ";", "\t", "|"])
def test_a_csv_starting_with_excels_sep_line_is_read_with_that_separator_the_line_skipped(separator):
    """Excel's `sep=X` first line (written by Excel and by tools for it, any case) names the separator and is no row:
    the header is the line after it, and rows are numbered as Excel shows them (the sep line hidden)."""
    rows = [HEADER_ZH.split(","), ["zj-kq-500", "lot-1", "2026-09-03", "xc-wh", "zj001", "12"],
            ["zj-kq-500", "lot-2", "2026-09-03", "xc-wh", "zj001", "0"]]
    for sep_line in (f"sep={separator}", f"SEP={separator}"):
        text = sep_line + "\r\n" + "".join(separator.join(row) + "\r\n" for row in rows)
        for data in (text.encode(), b"\xef\xbb\xbf" + text.encode(), text.encode("gb18030")):
            sheet = read_sheet(data)
            assert [(row.sku, row.lot_code, row.quantity) for row in sheet.rows][:1] == [("ZJ-KQ-500", "LOT-1", 12)]
            assert [(e["row"], e["column"]) for e in sheet.errors] == [(3, "交售数量")], (sep_line, sheet.errors)


def test_long_cells_columns_and_quantities_are_bounded_and_echoed_cut_short():
    from catalog.spreadsheet import Limits

    text = HEADER_ZH + "\nS1,L1,2026-09-03,W1,H1,1000001\nS1,L2," + "9x" * 40 + ",W1,H1," + "x" * 2000 + "\n"
    sheet = read_sheet(text.encode(), limits=Limits(cell_chars=1000))
    messages = {(e["row"], e["column"]): e["message"] for e in sheet.errors}
    assert "more than 1,000,000 units" in messages[(2, "交售数量")]
    assert messages[(3, "交售数量")] == "The cell has more than 1,000 characters."
    assert messages[(3, "采收日期")] == "'" + "9x" * 25 + "…' is not a date (write it like 2026-09-03)."
    wide = HEADER_ZH + "," * 60 + "x\n"
    assert read_sheet(wide.encode(), limits=Limits(columns=50)).errors[0]["message"] == (
        "The header has more than 50 columns.")


def test_a_cell_or_header_echoed_in_a_message_carries_no_control_character_or_direction_override():
    """A quoted header or cell is shown in the portal and the API as the co-op's file spells it, but a right-to-left
    override or a control character in it would make the message read as something else: each is shown as �."""
    text = "产品编码,批次号,采收日期,存放地点,农户编号,交售数量,颜\u202e色\x01\nS1,L1,2026\u202e-09-03,W1,H1,1,x\n"
    errors = read_sheet(text.encode()).errors
    assert [(e["column"], e["message_zh"]) for e in errors] == [
        ("颜\ufffd色\ufffd", "未知的列“颜\ufffd色\ufffd”（列名见模板的“说明”页）。")]
    sheet = read_sheet("产品编码,批次号,采收日期,存放地点,农户编号,交售数量\nS1,L1,2026\u202e-09-03,W1,H1,1\n".encode())
    assert [e["message"] for e in sheet.errors] == ["'2026\ufffd-09-03' is not a date (write it like 2026-09-03)."]


def test_a_cell_cut_short_in_a_message_shows_no_part_of_a_personal_number():
    text = HEADER_ZH + "\nS1,L1," + "备注" * 20 + "513431195102020013,W1,H1,1\n"
    (error,) = read_sheet(text.encode()).errors
    assert error["message"] == "'" + "备注" * 20 + "***' is not a date (write it like 2026-09-03)."


@pytest.mark.parametrize("village, problem", [
    ("火普\x01村", "control characters"), ("a\x7fb", "control characters"), ("村" * 65, "Longer than 64"),
    ("火普\u202e村", "control characters"),  # a right-to-left override would make it read as another village
])
def test_free_text_cells_follow_the_apis_text_rules(village, problem):
    data = ("sku,lot_code,harvested_on,location,household_code,quantity,village\n"
            f"ZJ-KQM-1KG,L1,2026-09-01,XC-WH,H-1,5,{village}\n").encode()
    sheet = read_sheet(data)
    assert [(e["row"], e["column"]) for e in sheet.errors] == [(2, "village")]
    assert problem in sheet.errors[0]["message"]


def test_a_lot_code_holding_a_phone_number_is_refused_for_that_reason():
    data = (b"sku,lot_code,harvested_on,location,household_code,quantity\n"
            b"ZJ-KQM-1KG,LOT-C13800138000,2026-09-01,XC-WH,H-1,5\n")
    (error,) = read_sheet(data).errors
    assert (error["row"], error["column"], error["code"]) == (2, "lot_code", "personal_number_in_code")


@pytest.mark.parametrize("column", ["sku", "location", "household_code"])
@pytest.mark.parametrize("character", ["\x00", "\x07", "\ue000"], ids=["NUL", "bell", "private-use"])
def test_a_code_cell_holding_what_no_code_holds_is_refused_on_its_cell(column, character):
    cells = {"sku": "ZJ-KQM-1KG", "lot_code": "L1", "harvested_on": "2026-09-01", "location": "XC-WH",
             "household_code": "H-1", "quantity": "5"}
    cells[column] = f"ZJ{character}1"
    padding = "".join(f"ZJ-KQM-1KG,L{number},2026-09-01,XC-WH,H-1,5\n" for number in range(200))  # past 4 KB
    data = (",".join(cells) + "\n" + padding + ",".join(cells.values()) + "\n").encode()

    sheet = read_sheet(data)

    (error,) = sheet.errors
    assert (error["row"], error["column"], error["code"]) == (202, column, "code_characters")
    assert not sheet.rows[-1].complete


@pytest.mark.parametrize("column", ["village", "unit", "lot_code", "household_code"])
@pytest.mark.parametrize("cell", [datetime(2026, 5, 3), time(5, 3), True], ids=["date", "time", "boolean"])
def test_a_text_or_code_cell_excel_turned_into_a_date_time_or_boolean_is_refused_on_its_cell(column, cell):
    """Excel turns a village or code typed as 5-3 or 5:03 into a date or a time (and TRUE into a boolean), which it
    shows as 2026/5/3, not as typed: such a cell in a text or code column is refused on its cell, as not text, rather
    than stored as 2026-05-03 00:00:00 (a village on the public trace page) or quoted so in another error."""
    cells = {"sku": "ZJ-KQM-1KG", "lot_code": "L1", "harvested_on": date(2026, 9, 1), "location": "XC-WH",
             "household_code": "H-1", "quantity": 5, "village": "阿说村", "unit": "bag", column: cell}
    sheet = read_sheet(xlsx([list(cells), list(cells.values())]))
    assert [(e["row"], e["column"], e["code"]) for e in sheet.errors] == [(2, column, "not_text")]
    assert "text" in sheet.errors[0]["message"] and "文本" in sheet.errors[0]["message_zh"]
    assert not sheet.rows[0].complete


def test_a_village_is_spelled_as_it_is_in_json():
    """A village typed with full-width digits is the one village it is in JSON (三岔河村１组 is 三岔河村1组), its
    Chinese punctuation kept."""
    data = ("sku,lot_code,harvested_on,location,household_code,quantity,village\n"
            "ＺＪ-KQM-1KG,L1,2026-09-01,XC-WH,H-1,５,测试村（３组）\n").encode()
    row = read_sheet(data).rows[0]
    assert (row.sku, row.quantity, row.village) == ("ZJ-KQM-1KG", 5, "测试村（3组）")


@pytest.mark.parametrize("code", ["L--1", "L-1-", "L._1"])
def test_a_lot_code_with_doubled_or_trailing_separators_is_refused_as_the_api_refuses_it(code):
    data = (f"sku,lot_code,harvested_on,location,household_code,quantity\n"
            f"ZJ-KQM-1KG,{code},2026-09-01,XC-WH,H-1,5\n").encode()
    (error,) = read_sheet(data).errors
    assert (error["row"], error["column"], error["code"]) == (2, "lot_code", "invalid_lot_code")
    assert "single" in error["message"]


def test_invisible_only_text_is_empty_and_codes_must_have_the_apis_shape():
    data = ("sku,lot_code,harvested_on,location,household_code,quantity,village\n"
            "ZJ-KQM-1KG,L\x011,2026-09-01,XC-WH,H-1,5,\u200b\ufeff\n").encode()
    sheet = read_sheet(data)
    assert [(e["row"], e["column"]) for e in sheet.errors] == [(2, "lot_code")]
    assert sheet.rows[0].village is None


def test_a_hidden_sheet_is_never_read_but_the_first_sheet_the_coop_sees():
    """A workbook kept from last season: the old rows hidden on sheet 1, this season's on the visible sheet 2."""
    book = Workbook()
    old = book.active
    old.title, old.sheet_state = "old", "hidden"
    old.append(HEADER_ZH.split(","))
    old.append(["S1", "OLD-LOT", "2026-09-01", "W1", "H1", 999])
    new = book.create_sheet("new")
    new.append(HEADER_ZH.split(","))
    new.append(["S1", "NEW-LOT", "2026-09-02", "W1", "H1", 5])
    book.active = 1
    out = io.BytesIO()
    book.save(out)

    sheet = read_sheet(out.getvalue())

    assert sheet.errors == []
    assert [(row.lot_code, row.quantity) for row in sheet.rows] == [("NEW-LOT", 5)]
    assert [e["code"] for e in read_sheet(_all_sheets_hidden(out.getvalue())).errors] == ["xlsx_no_visible_sheet"]


def _all_sheets_hidden(data: bytes) -> bytes:
    """The workbook with every sheet marked hidden (openpyxl will not write one; a hand-made file can be)."""
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "xl/workbook.xml":
                content = content.replace(b'state="visible"', b'state="hidden"')
            book.writestr(item, content)
    return out.getvalue()


def test_a_value_under_no_header_is_an_error_not_dropped():
    """`1,000` typed without quotes splits into two cells: the quantity must not be read as 1."""
    split = read_sheet((HEADER_ZH + "\nS1,L1,2026-09-01,W1,H1,1,000\n").encode())
    unnamed = read_sheet(xlsx([HEADER_ZH.split(",")[:3] + [None] + HEADER_ZH.split(",")[3:],
                               ["S1", "L1", "2026-09-01", "note", "W1", "H1", 3]]))

    assert [(e["row"], e["column"], e["code"]) for e in split.errors] == [(2, "G", "cell_without_header")]
    assert "1,000" in split.errors[0]["message"]
    assert [(e["row"], e["column"], e["code"]) for e in unnamed.errors] == [(2, "D", "cell_without_header")]


def test_a_part_read_whole_is_bounded_before_it_is_unpacked():
    """Millions of shared strings in a small file (they compress about 75 times): refused before openpyxl holds
    them, where they took minutes and gigabytes of a worker."""
    import zipfile

    strings = b"".join(b"<si><t>%07d</t></si>" % (i % 1000 if i % 20 else (i * 7919) % 100_000)
                       for i in range(900_000))
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx([HEADER_ZH.split(",")])), "r") as template, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        for item in template.infolist():
            book.writestr(item, template.read(item.filename))
        book.writestr("xl/sharedStrings.xml", b"<sst>" + strings + b"</sst>")
    limits = Limits(xlsx_part_bytes=16 * 1024 * 1024)
    assert len(strings) > limits.xlsx_part_bytes > 0 and len(out.getvalue()) < len(strings) / limits.xlsx_ratio * 2

    (error,) = read_sheet(out.getvalue(), limits=limits).errors

    assert (error["row"], error["code"]) == (1, "xlsx_part_too_large")
    assert "xl/sharedStrings.xml" in error["message"]
    assert read_sheet(xlsx([HEADER_ZH.split(","), ["S1", "L1", "2026-09-01", "W1", "H1", 3]]),
                      limits=limits).errors == []


WIDE_NUMBERS = ["村５１３４３１１９９００１０１００１７", "电话１３８００１３８０００",
                "村１３８-００１３-８０００"]


@pytest.mark.parametrize("village", WIDE_NUMBERS)
def test_a_village_holding_an_id_or_phone_number_in_full_width_digits_is_refused_as_in_ascii(village):
    """The village is shown on the public trace page: an ID or phone number typed on a Chinese keyboard is one."""
    data = ("sku,lot_code,harvested_on,location,household_code,quantity,village\n"
            f"ZJ-KQM-1KG,L1,2026-09-01,XC-WH,H-1,5,{village}\n").encode()
    (error,) = read_sheet(data).errors
    assert (error["row"], error["column"], error["code"]) == (2, "village", "personal_number_in_text")


def _book_bytes(book: Workbook) -> bytes:
    """The workbook as the bytes of an XLSX file."""
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _season(rows: int = 4) -> Workbook:
    """A workbook of `rows` data rows under the Chinese headers, lots L2, L3, … named after their Excel row."""
    book = Workbook()
    book.active.append(HEADER_ZH.split(","))
    for number in range(2, rows + 2):
        book.active.append(["S1", f"L{number}", "2026-09-01", "W1", f"H{number}", number])
    return book


HIDDEN_ROW_ZH = ("这一行在 Excel 中被隐藏了（或被筛选隐藏）：请取消隐藏或清除筛选并核对这一行，"
                 "不要的行请删除，再重新上传。")


def test_a_hidden_row_is_refused_so_that_no_stock_the_coop_did_not_see_is_imported():
    """A co-op hides last week's rows instead of deleting them: they must not come in unseen, nor be dropped
    silently — each is an error at its Excel row, in both languages, and only the visible rows are read."""
    book = _season()
    book.active.row_dimensions[3].hidden = True
    book.active.row_dimensions[5].hidden = True
    book.active.row_dimensions[9].hidden = True  # an empty hidden row is nothing to report

    sheet = read_sheet(_book_bytes(book))

    assert [(e["row"], e["column"], e["code"], e["message_zh"]) for e in sheet.report()] == [
        (3, None, "hidden_row", HIDDEN_ROW_ZH), (5, None, "hidden_row", HIDDEN_ROW_ZH)]
    assert sheet.errors[0]["message"] == (
        "This row is hidden in Excel (or filtered out): unhide it or clear the filter and check it, delete it if it is "
        "not wanted, then upload again.")
    assert [row.lot_code for row in sheet.rows] == ["L2", "L4"]


def test_rows_a_filter_hides_are_hidden_rows_and_a_hidden_header_too():
    """Excel keeps a filter's result as hidden rows: a sheet filtered to one household still holds the others."""
    book = _season()
    book.active.auto_filter.ref = "A1:F5"
    book.active.auto_filter.add_filter_column(4, ["H3"])
    for number in (2, 4, 5):
        book.active.row_dimensions[number].hidden = True
    filtered = read_sheet(_book_bytes(book))
    book = _season(1)
    book.active.row_dimensions[1].hidden = True
    headless = read_sheet(_book_bytes(book))

    assert [(e["row"], e["code"]) for e in filtered.report()] == [(2, "hidden_row"), (4, "hidden_row"),
                                                                  (5, "hidden_row")]
    assert [(e["row"], e["code"]) for e in headless.report()] == [(1, "hidden_row")]


def test_a_hidden_column_holding_a_template_field_is_refused_naming_its_header():
    """A quantity column hidden (or grouped and collapsed) is read by no one who checks the sheet before upload."""
    book = _season()
    book.active.column_dimensions["F"].hidden = True
    book.active.column_dimensions.group("B", "C", hidden=True)
    book.active.column_dimensions["H"].hidden = True  # empty: nothing to see, nothing to report

    sheet = read_sheet(_book_bytes(book))

    assert [(e["row"], e["column"], e["code"], e["message_zh"]) for e in sheet.report()] == [
        (1, "批次号", "hidden_column", "列“批次号”在 Excel 中被隐藏了：请取消隐藏并核对这一列，再重新上传。"),
        (1, "采收日期", "hidden_column", "列“采收日期”在 Excel 中被隐藏了：请取消隐藏并核对这一列，再重新上传。"),
        (1, "交售数量", "hidden_column", "列“交售数量”在 Excel 中被隐藏了：请取消隐藏并核对这一列，再重新上传。")]
    assert sheet.errors[0]["message"] == (
        "The column '批次号' is hidden in Excel: unhide it and check it, then upload again.")


def test_a_csv_with_old_mac_line_ends_reads_like_one_with_windows_or_unix_line_ends():
    """Excel's "CSV (Macintosh)" ends lines with a lone CR."""
    body = "S1,L1,2026-09-01,W1,H1,5", '"S1",L2,2026-09-02,W1,H2,"1,000"'
    read = {end: read_sheet((end.join([HEADER_ZH, *body]) + end).encode("gbk")) for end in ("\r", "\r\n", "\n")}

    assert read["\r"].errors == []
    assert [(row.row, row.lot_code, row.quantity) for row in read["\r"].rows] == [(2, "L1", 5), (3, "L2", 1000)]
    assert read["\r"].rows == read["\r\n"].rows == read["\n"].rows
    tabs = read_sheet(("\r".join([HEADER_ZH.replace(",", "\t"), body[0].replace(",", "\t")]) + "\r").encode())
    assert tabs.errors == [] and tabs.rows == read["\r"].rows[:1]


def test_an_unreadable_csv_says_where_in_the_co_ops_words_not_pythons():
    """A quote left open runs the rest of the file into one cell, past what a CSV cell may hold: the message names
    the line the cell starts on and the likely cause, with no text of Python's csv module."""
    lines = [HEADER_ZH, "S1,L1,2026-09-01,W1,H1,5", 'S1,"L2,2026-09-01,W1,H2,5'] + ["S1,L3,x,W1,H3," + "9" * 70] * 2000
    (error,) = read_sheet("\r\n".join(lines).encode()).report()

    assert (error["row"], error["column"], error["code"]) == (1, None, "csv_unreadable")
    assert error["message_zh"] == ("文件无法读取：从第 3 行开始的一个单元格太长，无法按 CSV 读取，"
                                   "通常是这个单元格里的引号（\"）没有成对；请改正后重新上传。")
    assert error["message"] == ("The file cannot be read: a cell starting on line 3 is too long to read as CSV, "
                                "usually because a quote mark (\") in it is not closed; fix it and upload again.")


def _with_sheet_xml(rows_xml: str, dimension: str) -> bytes:
    """An XLSX whose first sheet is `rows_xml` (its `<row>` elements) under a `<dimension ref=…>` of `dimension`."""
    import zipfile

    sheet = ('<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
             f'<dimension ref="{dimension}"/><sheetData>{rows_xml}</sheetData></worksheet>')
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx([HEADER_ZH.split(",")])), "r") as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        for item in source.infolist():
            content = source.read(item.filename)
            book.writestr(item, sheet.encode() if item.filename == "xl/worksheets/sheet1.xml" else content)
    return out.getvalue()


def _row_xml(number: int, cells: list) -> str:
    """A `<row>` of inline-string and number cells."""
    return f'<row r="{number}">' + "".join(
        f"<c><v>{cell}</v></c>" if isinstance(cell, int) else f'<c t="inlineStr"><is><t>{cell}</t></is></c>'
        for cell in cells) + "</row>"


def test_rows_past_a_sheets_stated_dimension_are_read_and_rows_out_of_order_make_it_unreadable():
    """A sheet's `<dimension>` is a hint another program may get wrong: the rows past it were dropped unread."""
    rows = [_row_xml(1, HEADER_ZH.split(","))] + [_row_xml(n, ["S1", f"L{n}", "2026-09-01", "W1", "H1", n])
                                                  for n in (2, 3, 4)]
    short = read_sheet(_with_sheet_xml("".join(rows), "A1:F2"))
    shuffled = read_sheet(_with_sheet_xml("".join([rows[0], rows[2], rows[1]]), "A1:F3"))

    assert short.errors == [] and [row.lot_code for row in short.rows] == ["L2", "L3", "L4"]
    assert [(e["row"], e["code"]) for e in shuffled.report()] == [(1, "xlsx_unreadable")]


def test_an_old_xls_or_password_protected_workbook_is_named_as_such_not_as_text_in_an_unknown_encoding():
    """Excel 97–2003 (.xls), WPS and password-protected workbooks are all OLE2 compound files, not text: the co-op is
    told to save the sheet as .xlsx or CSV without a password, not that its "encoding" is wrong."""
    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16 + b"\x3e\x00\x03\x00\xfe\xff\x09\x00" + b"\xff" * 480

    (error,) = read_sheet(ole2 + b"\x00\x01Workbook\xff\xfe" * 64).report()

    assert (error["row"], error["column"], error["code"]) == (1, None, "xls_or_encrypted")
    assert error["message_zh"] == ("文件无法读取：这是旧版 Excel（.xls）或 WPS 表格文件，或者设置了打开密码；"
                                   "请在 Excel 或 WPS 中“另存为” Excel 工作簿（.xlsx）或 CSV（不设密码）后再上传。")
    assert error["message"] == ("The file cannot be read: it is an old Excel (.xls) or WPS workbook, or one with a "
                                "password; save it in Excel or WPS as an Excel workbook (.xlsx) or CSV, without a "
                                "password, and upload that.")


def test_a_cell_of_millions_of_characters_is_refused_without_being_folded_whole():
    """NFKC makes some characters 18 times longer (U+FDFA): a 3 MB cell under no header, in a 50 kB workbook that
    passes the compression checks, held the worker for seconds and 100 MB per MB of cell before it was reported."""
    import base64
    import os
    import tracemalloc

    padding = base64.b64encode(os.urandom(45_000)).decode()  # incompressible, so the sheet's ratio passes
    folds_long = "\ufdfa" * 1_000_000
    rows = (_row_xml(1, HEADER_ZH.split(",")) + _row_xml(2, ["S1", "L1", "2026-09-03", "W1", "H1", 1])[:-6]
            + f'<c r="G2" t="inlineStr"><is><t>{folds_long}</t></is></c></row>' + _row_xml(3, [padding]))
    data = _with_sheet_xml(rows, "A1:G3")
    tracemalloc.start()
    try:
        sheet = read_sheet(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert [(e["row"], e["column"], e["code"]) for e in sheet.errors] == [
        (2, "G", "cell_without_header"), (3, "产品编码", "cell_too_long"), (3, "批次号", "cell_required"),
        (3, "采收日期", "cell_required"), (3, "存放地点", "cell_required"), (3, "农户编号", "cell_required"),
        (3, "交售数量", "cell_required")]
    assert peak < 30 * 1024 * 1024


def test_a_csv_date_with_a_time_of_day_is_its_date_as_an_xlsx_date_time_cell_is():
    """Excel and WPS save a date-time cell to CSV as `2026/9/3 0:00`, other tools as `2026-09-03 00:00:00`: the same
    cell in an XLSX reads as its date, so the CSV does too; a date that does not read is quoted as the cell spells it
    (with its spaces: `2026-9-3 0:00` quoted as `2026-9-30:00` read as the 30th)."""
    text = (HEADER_ZH + ",包装日期\nS1,L1,2026/9/3 0:00,W1,H1,1,2026-09-05 00:00:00\nS1,L2,2026-09-03T08:30,W1,H2,1,"
            "２０２６年９月３日　１４：３０\nS1,L3,2026-9-3 0:00x,W1,H3,1,\n")
    sheet = read_sheet(text.encode("utf-8"))

    assert [(r.lot_code, r.harvested_on, r.packed_on) for r in sheet.rows[:2]] == [
        ("L1", date(2026, 9, 3), date(2026, 9, 5)), ("L2", date(2026, 9, 3), date(2026, 9, 3))]
    assert [(e["row"], e["message"]) for e in sheet.errors] == [
        (4, "'2026-9-3 0:00x' is not a date (write it like 2026-09-03).")]


@pytest.mark.parametrize(("cell", "number_format", "iso"), [
    (time(8, 30), "h:mm", False), (0.35416666666666669, "h:mm", False), (1.3541666666666667, "h:mm", False),
    (datetime(2026, 9, 3, 8, 30), "h:mm AM/PM", False), (datetime(1899, 12, 30, 8, 30), "h:mm:ss", True),
    (datetime(1899, 12, 30, 8, 30), "yyyy-mm-dd h:mm", True), (datetime(1899, 12, 31, 8, 30), "yyyy-mm-dd h:mm", True)],
    ids=["time", "fraction", "day-and-fraction", "date-shown-as-time", "iso-time", "iso-day-zero", "iso-day-zero-1900"])
def test_a_date_cell_showing_a_time_of_day_is_refused_on_its_cell_as_a_time_not_a_date(cell, number_format, iso):
    """A harvest date typed as 8:30 (or a date column formatted as a time) shows a time of day, which Excel holds as a
    fraction of a day, other programs as a date-time on day 0 (1899-12-30, or 31), or as a date the co-op does not
    see: it was refused as a date of 1899 or 1900 out of range, or quoted as 08:29:59.994000, or read as a date nobody
    saw; it is refused on its cell as the time it is."""
    book = Workbook(iso_dates=iso)
    book.active.append(["产品编码", "批次号", "采收日期", "存放地点", "农户编号", "交售数量", "包装日期"])
    book.active.append(["S1", "L1", cell, "W1", "H1", 5, datetime(2026, 9, 3)])
    book.active["C2"].number_format = number_format
    out = io.BytesIO()
    book.save(out)

    sheet = read_sheet(out.getvalue())

    assert [(e["row"], e["column"], e["code"]) for e in sheet.errors] == [(2, "采收日期", "time_not_date")]
    assert sheet.errors[0]["message"] == "'08:30' is a time of day, not a date (write it like 2026-09-03)."
    assert sheet.errors[0]["message_zh"] == "“08:30”是时间，不是日期（请写成 2026-09-03 这样）。"
    assert sheet.rows[0].harvested_on is None and sheet.rows[0].packed_on == date(2026, 9, 3)


def test_a_date_time_cell_full_width_date_or_date_beyond_the_range_reads_as_the_co_op_sees_it():
    """A date-time cell is its date (as in a CSV); a date typed in full-width digits is that date; the 29th of February
    1900, which Excel shows though it never was, is no date; a date past the shop's range is out of range."""
    rows = [["S1", "L1", datetime(2026, 9, 3, 8, 30), "W1", "H1", 5],
            ["S1", "L2", "２０２６－０９－０３", "W1", "H1", 5],
            ["S1", "L3", "1900-02-29", "W1", "H1", 5], ["S1", "L4", datetime(2100, 1, 1), "W1", "H1", 5]]

    sheet = read_sheet(xlsx([HEADER_ZH.split(","), *rows]))

    assert [r.harvested_on for r in sheet.rows] == [date(2026, 9, 3), date(2026, 9, 3), None, None]
    assert [(e["row"], e["code"]) for e in sheet.errors] == [(4, "not_a_date"), (5, "date_out_of_range")]


def test_a_date_cell_holding_a_number_no_date_has_is_not_a_date_and_is_never_logged():
    """A date-formatted cell whose number is past 9999-12-31 (Excel shows ####; a phone number typed into a date
    column) was told it showed the error #VALUE! of a failed formula, and openpyxl's warning wrote the number (maybe a
    person's phone number) to the worker's log: it is not a date, quoted as any number is."""
    book = Workbook()
    book.active.append(HEADER_ZH.split(","))
    for lot, number in (("L1", 3_000_000), ("L2", 13_800_138_000)):
        book.active.append(["S1", lot, number, "W1", "H1", 5])
        book.active.cell(book.active.max_row, 3).number_format = "yyyy-mm-dd"
    out = io.BytesIO()
    book.save(out)

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        sheet = read_sheet(out.getvalue())

    assert [(e["row"], e["column"], e["code"], e["message"]) for e in sheet.errors] == [
        (2, "采收日期", "not_a_date", "'3000000' is not a date (write it like 2026-09-03)."),
        (3, "采收日期", "not_a_date", "'***' is not a date (write it like 2026-09-03).")]
    assert not [str(warning.message) for warning in warned]


def test_utf16_text_without_a_bom_is_read_as_utf16_not_as_utf8_with_nul_bytes():
    """Some programs save "Unicode text" without the byte order mark Excel writes: its ASCII characters then carry a NUL
    byte each, which UTF-8 decoding kept, so every header was an unknown column spelled `s�k�u�`."""
    text = HEADER_ZH.replace(",", "\t") + "\r\nzj-kq-500\tlot-1\t2026-09-03\txc-wh\tzj001\t12\r\n"
    for encoding in ("utf-16-le", "utf-16-be"):
        sheet = read_sheet(text.encode(encoding))
        assert sheet.errors == []
        assert [(r.sku, r.lot_code, r.quantity) for r in sheet.rows] == [("ZJ-KQ-500", "LOT-1", 12)]


def _naming_one_sheet_part(times: int, rows_xml: str) -> bytes:
    """An XLSX whose workbook names its one sheet part (`rows_xml`, no `<dimension>`) as `times` hidden sheets and a
    last visible one: openpyxl reads a sheet's part to open the workbook, once per sheet naming it."""
    import re
    import zipfile

    sheets = "".join(f'<sheet name="s{i}" sheetId="{i + 2}" state="hidden" r:id="rS{i}"/>' for i in range(times))
    rels = "".join(f'<Relationship Id="rS{i}" Target="worksheets/sheet1.xml" Type="http://schemas.openxmlformats.org/'
                   'officeDocument/2006/relationships/worksheet"/>' for i in range(times))
    sheet = ('<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
             f'<sheetData>{rows_xml}</sheetData></worksheet>')
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx([["x"]])), "r") as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        for item in source.infolist():
            content = source.read(item.filename).decode()
            if item.filename == "xl/workbook.xml":
                content = re.sub(r"<sheets>(.*)</sheets>", lambda m: f"<sheets>{sheets}{m[1]}</sheets>", content)
            elif item.filename == "xl/_rels/workbook.xml.rels":
                content = content.replace("</Relationships>", rels + "</Relationships>")
            elif item.filename == "xl/worksheets/sheet1.xml":
                content = sheet
            book.writestr(item, content.encode())
    return out.getvalue()


def test_a_workbook_naming_one_sheet_part_thousands_of_times_is_refused_before_it_is_opened():
    """200 sheets naming one 1 MB part (a 40 kB file) made openpyxl parse 200 MB of XML to open the workbook (2,000
    sheets took 100 s): the parts of a workbook's sheets, each counted once per sheet naming it, are bounded like its
    uncompressed size, and so is the number of its sheets."""
    import time

    rows = "".join(_row_xml(n, ["S1", f"L{n}", "2026-09-01", "W1", "H1", n]) for n in range(1, 6000))
    data = _naming_one_sheet_part(200, rows)
    started = time.monotonic()
    (error,) = read_sheet(data, limits=Limits(xlsx_uncompressed_bytes=50 * 1024 * 1024)).report()
    assert time.monotonic() - started < 10
    assert (error["row"], error["code"]) == (1, "xlsx_too_large")
    (error,) = read_sheet(_naming_one_sheet_part(300, "")).report()
    assert (error["row"], error["code"], error["message"]) == (
        1, "xlsx_too_many_sheets", "The file cannot be read: it has 301 sheets, more than the 255 a workbook may have.")


def test_a_part_read_whole_is_bounded_wherever_the_package_puts_it():
    """The bound on parts read whole skipped every part under `xl/worksheets/`, but the package says where the shared
    strings (or the workbook itself) are: millions of shared strings put there were held whole. Only the parts the
    workbook names as sheets are streamed."""
    import zipfile

    strings = b"".join(b"<si><t>%07d</t></si>" % (i % 1000 if i % 20 else (i * 7919) % 100_000)
                       for i in range(900_000))
    moved = "xl/worksheets/strings.xml"
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx([HEADER_ZH.split(",")])), "r") as template, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        for item in template.infolist():
            content = template.read(item.filename)
            if item.filename == "[Content_Types].xml":
                content = content.replace(b"</Types>", b'<Override PartName="/%s" ContentType="application/vnd.'
                                          b'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'
                                          % moved.encode())
            book.writestr(item, content)
        book.writestr(moved, b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">' + strings
                      + b"</sst>")

    (error,) = read_sheet(out.getvalue(), limits=Limits(xlsx_part_bytes=16 * 1024 * 1024)).errors

    assert (error["row"], error["code"]) == (1, "xlsx_part_too_large")
    assert moved in error["message"]


def test_a_cell_cut_at_the_limit_is_never_read_as_empty():
    """A cell is cut past the cell limit before it is looked at; one whose first thousand characters are spaces must
    still count as written (too long where a column is read, without a header elsewhere), never as an empty cell."""
    padded = " " * 1500 + "x"
    text = HEADER_ZH + f"\nS1,L1,2026-09-03,W1,H1,1,{padded}\n{padded},,,,,\n"
    sheet = read_sheet(text.encode(), limits=Limits(cell_chars=1000))
    assert [(e["row"], e["column"], e["code"]) for e in sheet.errors][:2] == [
        (2, "G", "cell_without_header"), (3, "产品编码", "cell_too_long")]


def test_a_chartsheets_part_is_read_whole_so_it_is_bounded_like_any_such_part():
    """openpyxl streams a worksheet but reads a chartsheet's part whole: only worksheets are exempt from the bound."""
    import zipfile

    chart = "xl/chartsheets/sheet2.xml"
    sheet = '<sheet name="chart" sheetId="9" r:id="rC"/>'
    rel = ('<Relationship Id="rC" Target="chartsheets/sheet2.xml" Type="http://schemas.openxmlformats.org/'
           'officeDocument/2006/relationships/chartsheet"/>')
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx([HEADER_ZH.split(",")])), "r") as template, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        for item in template.infolist():
            content = template.read(item.filename).decode()
            if item.filename == "xl/workbook.xml":
                content = content.replace("</sheets>", sheet + "</sheets>")
            elif item.filename == "xl/_rels/workbook.xml.rels":
                content = content.replace("</Relationships>", rel + "</Relationships>")
            book.writestr(item, content.encode())
        book.writestr(chart, ('<chartsheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                              + "<!-- -->" * 1000 + "</chartsheet>").encode())

    (error,) = read_sheet(out.getvalue(), limits=Limits(xlsx_part_bytes=7000)).errors

    assert (error["code"], error["message"]) == ("xlsx_part_too_large", "The file cannot be read: its part "
                                                 f"{chart} unpacks to 8,091 bytes, more than the 7,000 any inventory "
                                                 "sheet needs.")


def test_cells_merged_down_a_column_each_read_as_the_value_the_coop_sees_there():
    """A clerk merges the product, the lot and its harvest date over the lot's rows: each row reads them, and a row
    below the data that only the merge reaches is still empty."""
    header = HEADER_ZH.split(",")
    rows = [header, ["ZJ-KQ-500", "LOT-1", date(2026, 9, 3), "XC-WH", "ZJ001", 12],
            [None, None, None, "XC-WH", "ZJ002", 8], [None, None, None, "XC-WH", "ZJ003", 5], []]
    sheet = read_sheet(xlsx(rows, ["A2:A5", "B2:B4", "C2:C4"]))
    assert sheet.errors == []
    assert [(r.row, r.sku, r.lot_code, r.harvested_on, r.household_code) for r in sheet.rows] == [
        (2, "ZJ-KQ-500", "LOT-1", date(2026, 9, 3), "ZJ001"), (3, "ZJ-KQ-500", "LOT-1", date(2026, 9, 3), "ZJ002"),
        (4, "ZJ-KQ-500", "LOT-1", date(2026, 9, 3), "ZJ003")]


@pytest.mark.parametrize(("merge", "column"), [("F2:F4", "交售数量"), ("E2:E3", "农户编号")])
def test_a_quantity_or_household_merged_down_over_several_rows_is_refused_naming_the_range(merge, column):
    """A quantity merged over three households' rows shows 20 once, and Excel's own SUM of the column counts it once,
    but read into each row it credited 60 units (stock that is not there, premiums paid on it): a merge down a
    column that is each household's own (its code, its quantity) is an error on its first row, naming the range."""
    header = HEADER_ZH.split(",")
    rows = [header, ["ZJ-KQ-500", "LOT-1", date(2026, 9, 3), "XC-WH", "ZJ001", 20],
            ["ZJ-KQ-500", "LOT-1", date(2026, 9, 3), "XC-WH", "ZJ002", None],
            ["ZJ-KQ-500", "LOT-1", date(2026, 9, 3), "XC-WH", "ZJ003", None]]
    sheet = read_sheet(xlsx(rows, [merge]))
    merged = [(e["row"], e["column"], e["code"]) for e in sheet.errors if merge in e["message"]]
    assert merged == [(2, column, "merged_per_household")]
    assert merge in sheet.errors[0]["message_zh"] and sheet.failed


def test_cells_merged_across_columns_or_with_the_header_are_refused_naming_the_range():
    """Which column a value merged over two columns belongs to cannot be told, nor whether a header merged down over
    the data is a value: each such range is an error on its first row, in both languages."""
    header = HEADER_ZH.split(",")
    rows = [header, ["ZJ-KQ-500", "LOT-1", date(2026, 9, 3), "XC-WH", "ZJ001", 12],
            ["ZJ-KQ-500", "LOT-1", date(2026, 9, 3), "XC-WH", "ZJ002", None]]
    sheet = read_sheet(xlsx(rows, ["E3:F3", "A1:A2"]))
    merged = [e for e in sheet.errors if e["code"] == "merged_across_columns"]
    assert [e["row"] for e in merged] == [1, 3]
    assert "A1:A2" in merged[0]["message"] and "E3:F3" in merged[1]["message_zh"]


@pytest.mark.parametrize("column", ["household_code", "lot_code", "sku", "location"])
@pytest.mark.parametrize("cell", [5134310010010000, 5.13431001001e15, 12345678901234567890],
                         ids=["16 digits", "a float of 16 digits", "20 digits"])
def test_a_code_excel_stored_as_a_number_of_more_than_15_digits_is_refused_on_its_cell(column, cell):
    """Excel keeps 15 digits of a number: a registry code 5134310010010001 typed in a General column is stored as
    5134310010010000, another household's code, which would be credited with the delivery; such a cell in a code
    column is refused on its cell, as a number that lost digits, while a shorter number reads as its digits."""
    cells = {"sku": "ZJ-KQM-1KG", "lot_code": "L1", "harvested_on": date(2026, 9, 1), "location": "XC-WH",
             "household_code": 513431001, "quantity": 5, column: cell}
    sheet = read_sheet(xlsx([list(cells), list(cells.values())]))
    assert [(e["row"], e["column"], e["code"]) for e in sheet.errors] == [(2, column, "number_imprecise")]
    assert "15" in sheet.errors[0]["message"] and "文本" in sheet.errors[0]["message_zh"]
    assert not sheet.rows[0].complete
    if column != "household_code":
        assert read_sheet(xlsx([list(cells), [*list(cells.values())[:4], 513431001, 5]])).rows[0].household_code \
            == "513431001"


@pytest.mark.parametrize("column", ["village", "unit", "packed_on", "quantity", "lot_code"])
def test_a_cell_showing_an_excel_error_or_a_formula_saved_without_its_value_is_refused_on_its_cell(column):
    """A formula Excel could not compute shows #N/A (or #REF!, #VALUE!) there, and a formula in a file no spreadsheet
    program saved (a script wrote it) has no value at all: neither is what the co-op meant, so such a cell is refused
    on its cell, rather than stored as the village "#N/A" on the public trace page or read as empty (an optional
    packed date, village or unit silently dropped, a required cell called empty when it shows a formula)."""
    cells = {"sku": "ZJ-KQM-1KG", "lot_code": "L1", "harvested_on": date(2026, 9, 1), "location": "XC-WH",
             "household_code": "H-1", "quantity": 5, "packed_on": date(2026, 9, 2), "village": "阿说村", "unit": "bag"}
    position = list(cells).index(column) + 1
    book = Workbook()
    book.active.append(list(cells))
    book.active.append(list(cells.values()))
    book.active.append(list(cells.values()))
    book.active.cell(2, position).value = "#N/A"
    book.active.cell(2, position).data_type = "e"
    book.active.cell(3, position).value = "=VLOOKUP(A3,Sheet2!A:B,2,FALSE)"  # saved by openpyxl: no value with it
    out = io.BytesIO()
    book.save(out)

    sheet = read_sheet(out.getvalue())

    assert [(e["row"], e["column"], e["code"]) for e in sheet.errors] == [(2, column, "excel_error"),
                                                                         (3, column, "formula_not_computed")]
    assert "#N/A" in sheet.errors[0]["message"] and "#N/A" in sheet.errors[0]["message_zh"]
    assert not sheet.rows[0].complete and not sheet.rows[1].complete


def test_a_formula_whose_value_excel_saved_as_empty_text_is_an_empty_cell():
    """Excel saves a formula showing nothing (=IF(…,"",…)) with its empty text: the cell is empty, as the co-op sees."""
    header = "sku,lot_code,harvested_on,location,household_code,quantity,village"
    row = ('<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>ZJ-KQM-1KG</t></is></c><c r="B{n}" t="inlineStr"><is><t>L1'
           '</t></is></c><c r="C{n}" t="inlineStr"><is><t>2026-09-01</t></is></c><c r="D{n}" t="inlineStr"><is><t>XC-WH'
           '</t></is></c><c r="E{n}" t="inlineStr"><is><t>H-1</t></is></c><c r="F{n}"><v>5</v></c>'
           '<c r="G{n}" t="str"><f>IF(1=1,"","x")</f><v></v></c></row>')
    book = Workbook()
    book.active.append(header.split(","))
    out = io.BytesIO()
    book.save(out)
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    sheet_xml = parts["xl/worksheets/sheet1.xml"].decode()
    parts["xl/worksheets/sheet1.xml"] = re.sub(r"<dimension[^>]*/>", "", sheet_xml).replace(
        "</sheetData>", row.format(n=2) + "</sheetData>").encode()
    patched = io.BytesIO()
    with zipfile.ZipFile(patched, "w", zipfile.ZIP_DEFLATED) as target:
        for name, content in parts.items():
            target.writestr(name, content)

    sheet = read_sheet(patched.getvalue())

    assert sheet.errors == []
    assert sheet.rows[0].village is None and sheet.rows[0].complete


@pytest.mark.parametrize("header", ["\ufeff\ufeff产品编码", "产品编码\u200b", "\u2060sku", "ｓｋｕ\u200d"],
                         ids=["bom-twice", "zero-width-space", "word-joiner", "full-width-zero-width-joiner"])
def test_a_header_is_read_with_the_invisible_characters_a_code_cell_is_read_without(header):
    """A header with an invisible character (a second BOM from a tool that prefixes one to a UTF-8 text which has
    one, a zero-width space pasted from a web page) reads as the header the co-op sees, as a code cell does, rather
    than being refused as an unknown column while the message says the same name is missing."""
    data = (f"{header},批次号,采收日期,存放地点,农户编号,交售数量\r\nZJ-KQM-1KG,L1,2026-09-03,XC-WH,H-1,5\r\n"
            .encode("utf-8-sig"))
    sheet = read_sheet(data)
    assert sheet.errors == []
    assert sheet.rows[0].sku == "ZJ-KQM-1KG"


def test_a_date_typed_as_eight_digits_or_with_hao_for_the_day_is_that_date():
    """A co-op types dates as 20260105 (in a CSV, a text cell or a General number cell) or 2026年1月5号 as often as
    2026-01-05: each is that date; eight digits that are no date (month 13, 30 February) are still not a date."""
    rows = [["S1", "L1", "20260105", "W1", "H1", 5], ["S1", "L2", 20260105, "W1", "H1", 5],
            ["S1", "L3", "2026年1月5号", "W1", "H1", 5], ["S1", "L4", "２０２６０１０５", "W1", "H1", 5],
            ["S1", "L5", "20261305", "W1", "H1", 5], ["S1", "L6", "20260230", "W1", "H1", 5]]
    csv_text = "\n".join(",".join(str(cell) for cell in row) for row in [HEADER_ZH.split(","), *rows])

    for sheet in (read_sheet(xlsx([HEADER_ZH.split(","), *rows])), read_sheet(csv_text.encode("gbk"))):
        assert [r.harvested_on for r in sheet.rows] == [date(2026, 1, 5)] * 4 + [None, None]
        assert [(e["row"], e["code"]) for e in sheet.errors] == [(6, "not_a_date"), (7, "not_a_date")]


def test_a_quantity_excel_computed_as_a_whole_number_is_that_number_as_excel_shows_and_compares_it():
    """A quantity a formula computed (0.1 t × 3 × 40, 0.7 × 30) is saved with the last bits of binary arithmetic,
    12.000000000000002, which Excel shows, sums and compares as 12 (it keeps 15 significant digits): it is 12 units,
    while a quantity off a whole number within those digits (3.3, 12.00000000001) is still no whole number, quoted as
    Excel shows it."""
    saved = {"111111": "12.000000000000002", "222222": "20.999999999999996", "333333": "3.3000000000000003",
             "444444": "12.00000000001"}  # as Excel writes them (openpyxl would cut them to 15 digits)
    data = xlsx([HEADER_ZH.split(",")] + [[f"S{n}", f"L{n}", "2026-09-03", "W1", "H1", int(key)]
                                          for n, key in enumerate(saved, 1)])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as book, zipfile.ZipFile(out, "w") as written:
        for name in book.namelist():
            part = book.read(name).decode()
            for key, value in saved.items():
                part = part.replace(f"<v>{key}</v>", f"<v>{value}</v>")
            written.writestr(name, part)
    data = out.getvalue()
    sheet = read_sheet(data)
    assert [(r.sku, r.quantity) for r in sheet.rows if r.quantity] == [("S1", 12), ("S2", 21)]
    assert [(e["row"], e["code"], e["message"]) for e in sheet.errors] == [
        (4, "not_whole_number", "3.3 is not a whole number."),
        (5, "not_whole_number", "12.00000000001 is not a whole number.")]


def test_a_line_break_inside_a_cell_is_named_as_one_not_as_a_control_character():
    """A line break typed into a cell (Alt+Enter, or pasted from a chat) shows in Excel as a wrapped line, not as a
    character: the error says the cell holds a line break to delete, in a code or a village alike, where it said "must
    not contain control characters", which a bookkeeper cannot find; a real control character is still that."""
    text = (HEADER_ZH + ",村\r\n"
            'S1,L1,2026-09-03,W1,"ZJ-\n001",5,火普村\r\n'
            'S1,L2,2026-09-03,W1,H1,5,"火普\r\n村"\r\n'
            "S1,L3,2026-09-03,W1,H1,5,火普\x07村\r\n")
    sheet = read_sheet(text.encode("utf-8"))
    assert [(e["row"], e["column"], e["code"]) for e in sheet.errors] == [
        (2, "农户编号", "line_break_in_cell"), (3, "村", "line_break_in_cell"), (4, "村", "control_characters")]
    assert sheet.errors[0]["message_zh"] == "这个单元格里有换行（Alt+Enter 输入的或粘贴带来的）：请删去换行后重新上传。"


def test_a_date_saved_with_its_weekday_as_a_chinese_long_date_is_that_date_if_the_weekday_is_its_own():
    """A date column formatted as Chinese Excel's long date saves to CSV as it shows, 2026年9月3日星期四 (or 周四,
    礼拜四, after a space): that is the date when the weekday is that date's, and no date when it is another's (a
    mistyped day or weekday, which one cannot tell)."""
    text = (HEADER_ZH + "\n"
            "S1,L1,2026年9月3日星期四,W1,H1,5\nS1,L2,2026年9月6日 周日,W1,H1,5\nS1,L3,2026-09-05 礼拜六,W1,H1,5\n"
            "S1,L4,2026年9月3日星期五,W1,H1,5\nS1,L5,2026年9月6日星期天 08:00,W1,H1,5\n")
    sheet = read_sheet(text.encode("gb18030"))
    assert [(r.lot_code, r.harvested_on) for r in sheet.rows if r.harvested_on] == [
        ("L1", date(2026, 9, 3)), ("L2", date(2026, 9, 6)), ("L3", date(2026, 9, 5)), ("L5", date(2026, 9, 6))]
    assert [(e["row"], e["code"], e["message"]) for e in sheet.errors] == [
        (5, "not_a_date", "'2026年9月3日星期五' is not a date (write it like 2026-09-03).")]
