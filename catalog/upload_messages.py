"""Every problem an inventory upload can report: a stable code and its English and Chinese message templates.

A stored error is `{row, column, code, message, message_zh}`; `message` (English) is what API clients have
always read, `message_zh` is what the co-op's bookkeeper sees in the portal. The templates are filled with
`str.format`, so a value quoted in a message is the same in both languages. A quoted value never shows what may
be a phone, ID or bank card number (`hide_personal_numbers`); the error's row and column say where it is. Any
other number is quoted as typed (a quantity of 19 digits), cut short like every quoted cell.
"""
from __future__ import annotations

from shop.fields import mask_personal_numbers

HIDDEN = "***"

# Where a lot comes in (`inventory.create_lot`, and every upload row): the template's help states it in the words its
# refusal of a store uses.
LOT_LOCATION_RULE = ("lots come in at a warehouse and reach stores by transfer", "批次只能入仓库，再调拨到门店")

MESSAGES: dict[str, tuple[str, str]] = {
    # the file as a whole (row 1, no column)
    "utf16_invalid": ("The file cannot be read: the file says it is UTF-16 text but is not.",
                      "文件无法读取：文件标明是 UTF-16 文本，但内容不是。"),
    "unknown_encoding": ("The file cannot be read: the file is neither UTF-8, UTF-16 nor GBK/GB18030 text.",
                         "文件无法读取：文件的编码不是 UTF-8、UTF-16，也不是 GBK/GB18030。"),
    "xls_or_encrypted": ("The file cannot be read: it is an old Excel (.xls) or WPS workbook, or one with a password; "
                         "save it in Excel or WPS as an Excel workbook (.xlsx) or CSV, without a password, and upload "
                         "that.",
                         "文件无法读取：这是旧版 Excel（.xls）或 WPS 表格文件，或者设置了打开密码；"
                         "请在 Excel 或 WPS 中“另存为” Excel 工作簿（.xlsx）或 CSV（不设密码）后再上传。"),
    "xlsx_unreadable": ("The file cannot be read: the XLSX file cannot be read.",
                        "文件无法读取：XLSX 文件已损坏，或不是 Excel 文件。"),
    "xlsx_too_large": ("The file cannot be read: the XLSX file unpacks to {inflated:,} bytes, more than the limit "
                       "of {limit:,}.",
                       "文件无法读取：XLSX 文件解压后有 {inflated:,} 字节，超过上限 {limit:,} 字节。"),
    "xlsx_part_too_large": ("The file cannot be read: its part {part} unpacks to {inflated:,} bytes, more than the "
                            "{limit:,} any inventory sheet needs.",
                            "文件无法读取：其中的 {part} 解压后有 {inflated:,} 字节，"
                            "超过库存表所需的上限 {limit:,} 字节。"),
    "xlsx_too_many_sheets": ("The file cannot be read: it has {sheets:,} sheets, more than the {limit:,} a workbook "
                             "may have.",
                             "文件无法读取：文件有 {sheets:,} 个工作表，超过上限 {limit:,} 个。"),
    "xlsx_no_visible_sheet": ("The file cannot be read: every sheet in it is hidden.",
                              "文件无法读取：文件中的工作表都被隐藏了。"),
    "xlsx_compression_ratio": ("The file cannot be read: the XLSX file unpacks to more than {ratio} times its size.",
                               "文件无法读取：XLSX 文件解压后超过原大小的 {ratio} 倍。"),
    "sheet_range_too_long": ("The file cannot be read: the sheet's used range reaches row {last:,}; at most "
                             "{rows:,} data rows are accepted (split the file).",
                             "文件无法读取：工作表的使用区域到第 {last:,} 行，"
                             "最多接受 {rows:,} 行数据（请拆分文件）。"),
    "csv_unreadable": ("The file cannot be read: a cell starting on line {line:,} is too long to read as CSV, usually "
                       "because a quote mark (\") in it is not closed; fix it and upload again.",
                       "文件无法读取：从第 {line:,} 行开始的一个单元格太长，无法按 CSV 读取，"
                       "通常是这个单元格里的引号（\"）没有成对；请改正后重新上传。"),
    "too_many_rows": ("The file cannot be read: it has more than {rows:,} data rows (split the file).",
                      "文件无法读取：数据超过 {rows:,} 行（请拆分文件）。"),
    "file_empty": ("The file is empty.", "文件是空的。"),
    "no_data_rows": ("The file has no data rows: from row 2, fill in one household's delivery to a lot per row "
                     "(the template's Help sheet has an example).",
                     "文件只有表头，没有数据行：请从第 2 行起每行填一户农户对一个批次的交售（示例见模板的“说明”页）。"),
    "header_too_wide": ("The header has more than {columns} columns.", "表头超过 {columns} 列。"),
    "unknown_column": ("Unknown column {header!r}.", "未知的列“{header}”（列名见模板的“说明”页）。"),
    "duplicate_column": ("The column {header!r} appears twice.", "列“{header}”出现了两次。"),
    "missing_column": ("Missing column {zh}/{en}.", "缺少列“{zh}/{en}”。"),
    "hidden_column": ("The column {header!r} is hidden in Excel: unhide it and check it, then upload again.",
                      "列“{header}”在 Excel 中被隐藏了：请取消隐藏并核对这一列，再重新上传。"),
    "more_errors": ("{count} more errors are not shown; fix these and upload again.",
                    "另有 {count} 处问题未列出；请先改正以上问题，再重新上传。"),
    "lot_code_race": ("A lot code in this file was imported meanwhile.",
                      "文件中的批次号刚被另一次导入使用，整个文件没有导入；请检查后重新上传。"),
    "lot_code_imported_meanwhile": ("Lot code {lot} was imported by another upload meanwhile; nothing in this file "
                                    "was imported.",
                                    "批次号 {lot} 刚被另一次上传导入，整个文件没有导入；请改用新的批次号后重新上传。"),
    "import_failed": ("The import failed unexpectedly; it has been logged. Try again later.",
                      "导入意外失败，已记录下来；请稍后重试。"),
    "supplier_inactive": ("The supplier was deactivated before this file was imported; nothing in it was imported.",
                          "本合作社在文件导入前已被平台停用，文件中的内容都没有导入。如有疑问，请联系平台管理员。"),
    # one row's cells
    "cell_without_header": ("Column {letter} has a value but no header: write a number like 1,000 without its comma, "
                            "or give the column a header.",
                            "第 {letter} 列有内容但没有表头：像 1,000 这样的数字请去掉逗号，或给这一列加上表头。"),
    "hidden_row": ("This row is hidden in Excel (or filtered out): unhide it or clear the filter and check it, delete "
                   "it if it is not wanted, then upload again.",
                   "这一行在 Excel 中被隐藏了（或被筛选隐藏）：请取消隐藏或清除筛选并核对这一行，"
                   "不要的行请删除，再重新上传。"),
    "merged_across_columns": ("Cells {cells} are merged across columns (or with the header): the value cannot be read "
                              "as one column's; unmerge them and write each value in its own cell, then upload again.",
                              "单元格 {cells} 跨列合并（或与表头合并），无法确定属于哪一列：请取消合并，"
                              "把每个值填在各自的单元格里，再重新上传。"),
    "merged_per_household": ("Cells {cells} are merged over several rows: each row is one household's delivery, and "
                             "Excel counts a merged value once; unmerge them and write each household's value in its "
                             "own row, then upload again.",
                             "单元格 {cells} 跨行合并了：每一行是一户农户的交售，合并后 Excel 只算一次；"
                             "请取消合并，在每一行填写该户自己的数值，再重新上传。"),
    "row_too_wide": ("The row has more than {columns} columns.", "这一行超过 {columns} 列。"),
    "cell_too_long": ("The cell has more than {chars:,} characters.", "单元格超过 {chars:,} 个字符。"),
    "cell_required": ("This cell is required.", "此单元格必填。"),
    "not_a_date": ("{value!r} is not a date (write it like 2026-09-03).",
                   "“{value}”不是日期（请写成 2026-09-03 这样）。"),
    "time_not_date": ("{value!r} is a time of day, not a date (write it like 2026-09-03).",
                      "“{value}”是时间，不是日期（请写成 2026-09-03 这样）。"),
    "date_out_of_range": ("{value} is not a date from {earliest} to {latest}.",
                          "{value} 不在 {earliest} 至 {latest} 之间。"),
    "not_whole_number": ("{value} is not a whole number.", "{value} 不是整数。"),
    "not_positive_whole_number": ("{value!r} is not a positive whole number.", "“{value}”不是正整数。"),
    "quantity_too_large": ("{value} is more than {limit:,} units.", "{value} 超过了 {limit:,} 个单位的上限。"),
    "invalid_lot_code": ("{value!r} is not a lot code (letters and digits, parted by single '.', '_' or '-', none "
                         "leading or trailing).",
                         "“{value}”不是有效的批次号（只能用字母和数字，以单个“.”“_”或“-”分隔，首尾不能是分隔符）。"),
    "personal_number_in_text": ("This text must not hold an ID or phone number: it is shown unmasked.",
                                "这里不能填写身份证号或手机号：它会不加遮挡地公开显示。"),
    "personal_number_in_code": ("A lot code must not hold an ID or phone number: it is shown unmasked.",
                                "批次号不能含有身份证号或手机号（批次号会公开显示）。"),
    "control_characters": ("Must not contain control characters.", "不能含有控制字符。"),
    "line_break_in_cell": ("This cell holds a line break (typed with Alt+Enter or pasted in): delete it and upload "
                           "again.", "这个单元格里有换行（Alt+Enter 输入的或粘贴带来的）：请删去换行后重新上传。"),
    "code_characters": ("A code must not contain control, private-use or unassigned characters.",
                        "编码不能含有控制字符、私用区字符或未分配的字符。"),
    "not_text": ("This cell holds a date, a time or TRUE/FALSE, not text: Excel turned what was typed into one; format "
                 "the column as Text and type the cell again.",
                 "这个单元格是日期、时间或逻辑值（TRUE/FALSE），不是文本：Excel 把输入的内容自动转换了；"
                 "请把这一列的格式设为“文本”后重新输入。"),
    "number_imprecise": ("This code is stored as a number of more than 15 digits, and Excel keeps only 15: the digits "
                         "after them were lost, so it may be another code; format the column as Text and type the "
                         "code again.",
                         "这个编号被 Excel 存成了超过 15 位的数字，Excel 只保留 15 位有效数字，后面的数字已经丢失，"
                         "可能变成了别的编号；请把这一列的格式设为“文本”后重新输入。"),
    "excel_error": ("The cell shows the error {value} in Excel (its formula failed): correct the formula or type the "
                    "value, then upload again.",
                    "这个单元格在 Excel 中显示错误值 {value}（公式出错）：请改正公式或直接填写数值，再重新上传。"),
    "formula_not_computed": ("The cell holds a formula saved without its value (the file was not saved by Excel or "
                             "WPS): open the file in Excel or WPS and save it, or type the value, then upload again.",
                             "这个单元格里的公式没有保存计算结果（文件不是用 Excel 或 WPS 保存的）：请用 Excel 或 "
                             "WPS 打开文件并保存，或直接填写数值，再重新上传。"),
    "text_too_long": ("Longer than {limit} characters.", "超过 {limit} 个字符。"),
    # one row against the catalog and the co-op's households
    "unknown_product": ("Unknown product code {sku} for this co-operative.", "产品编码 {sku} 不是本合作社的产品。"),
    "unit_mismatch": ("The unit {unit} differs from the product's unit {product_unit}.",
                      "单位 {unit} 与产品的单位 {product_unit} 不一致。"),
    "unknown_location": ("Unknown location {location}.", "没有编码为 {location} 的存放地点。"),
    "location_not_warehouse": (f"{{location}} is a store: {LOT_LOCATION_RULE[0]}.",
                               f"{{location}} 是门店：{LOT_LOCATION_RULE[1]}。"),
    "harvest_in_future": ("The harvest date is in the future.", "采收日期晚于今天。"),
    "harvest_after_packed": ("The harvest date is after the packed date.", "采收日期晚于包装日期。"),
    "packed_in_future": ("The packed date is in the future.", "包装日期晚于今天。"),
    "unknown_household": ("Unknown household {household} for this co-operative.",
                          "本合作社没有编号为 {household} 的农户。"),
    "household_deactivated": ("Household {household} is deactivated.", "农户 {household} 已停用。"),
    "household_not_linked": ("Household {household} has no purchase link valid on {on}.",
                             "农户 {household} 在 {on} 没有有效的收购联结。"),
    "lot_already_imported": ("Lot code {lot} is already imported.", "批次号 {lot} 已经导入过。"),
    "lot_code_taken": ("Lot code {lot} is already used for another product.", "批次号 {lot} 已用于另一个产品。"),
    "lot_other_product": ("Lot code {lot} is used for another product in row {first_row}.",
                          "批次号 {lot} 在第 {first_row} 行用于另一个产品。"),
    "lot_other_dates": ("Lot {lot} has other dates in row {first_row}.",
                        "批次 {lot} 在第 {first_row} 行的日期与本行不同。"),
    "household_twice_in_lot": ("Household {household} appears twice in lot {lot}.",
                               "农户 {household} 在批次 {lot} 中出现了两次。"),
    "lot_too_large": ("Lot {lot} would hold more than {limit:,} units.",
                      "批次 {lot} 的数量将超过 {limit:,} 个单位的上限。"),
}


def hide_personal_numbers(text: str) -> str:
    """`text` with each group of digits that is a phone, ID or bank card number, however it is grouped
    (`138-0013-8000`, `6217 5134 3100 0000 001`), replaced by HIDDEN."""
    return mask_personal_numbers(text, HIDDEN)


def messages(code: str, **params) -> dict[str, str]:
    """The error's code with its English and Chinese messages filled in (no personal numbers quoted)."""
    english, chinese = MESSAGES[code]
    params = {name: hide_personal_numbers(value) if isinstance(value, str) else value for name, value in params.items()}
    return {"code": code, "message": english.format(**params), "message_zh": chinese.format(**params)}


class Problem(ValueError):
    """A problem named by its code, with the values its messages quote; `str()` is the English message."""

    def __init__(self, code: str, **params) -> None:
        self.code, self.params = code, params
        super().__init__(messages(code, **params)["message"])
