"""The table of upload problems: every code has an English and a Chinese message quoting the same values, and
every code the reader and the import report is in it (a missing one would turn a bad file into a crash)."""
from __future__ import annotations

import ast
import inspect
import re
import string

import pytest

from catalog import spreadsheet, uploads
from catalog.upload_messages import MESSAGES, Problem, messages

HAN = re.compile(r"[\u4e00-\u9fff]")
CALLS = {"error": 2, "Problem": 0, "FileRejected": 0, "messages": 0}  # where each call names its code


def fields_of(template: str) -> set[str]:
    """The names of the values a template quotes."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def codes_reported() -> set[str]:
    """Every code literally passed to `Sheet.error`, `Problem`, `FileRejected` or `messages` in the reader and
    the import."""
    found: set[str] = set()
    for module in (spreadsheet, uploads):
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            if name in CALLS and len(node.args) > CALLS[name]:
                found |= {const.value for const in ast.walk(node.args[CALLS[name]])
                          if isinstance(const, ast.Constant) and isinstance(const.value, str)}
    return found


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_every_code_has_an_english_and_a_chinese_message_quoting_the_same_values(code):
    english, chinese = MESSAGES[code]
    assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", code)
    assert english.strip() and english.endswith(".") and not HAN.search(english)
    assert HAN.search(chinese) and chinese.endswith("。")
    assert fields_of(english) == fields_of(chinese)
    values = {name: 1234 for name in fields_of(english)}
    shown = messages(code, **values)
    assert shown["code"] == code and "{" not in shown["message"] + shown["message_zh"]


def test_the_reader_and_the_import_report_exactly_the_codes_of_the_table():
    assert codes_reported() == set(MESSAGES)


def test_a_problem_reads_as_its_english_message_and_keeps_what_it_quotes():
    with pytest.raises(Problem) as raised:
        spreadsheet.parse_quantity("１,２００万")
    assert str(raised.value) == "'1,200万' is not a positive whole number."
    assert messages(raised.value.code, **raised.value.params)["message_zh"] == "“1,200万”不是正整数。"


def test_no_message_quotes_the_text_of_a_caught_exception():
    """An exception's text (the csv module's, openpyxl's, a codec's) is Python's English, not the co-op's words: a
    handler reports its own code, quoting only values of ours (a `Problem`'s, passed on with `**`)."""
    quoting = []
    for module in (spreadsheet, uploads):
        for handler in ast.walk(ast.parse(inspect.getsource(module))):
            if not isinstance(handler, ast.ExceptHandler) or handler.name is None:
                continue
            for call in ast.walk(handler):
                if isinstance(call, ast.Call) and getattr(call.func, "attr", getattr(call.func, "id", None)) in CALLS:
                    names = {node.id for keyword in call.keywords if keyword.arg is not None
                             for node in ast.walk(keyword.value) if isinstance(node, ast.Name)}
                    quoting += [(module.__name__, call.lineno)] if handler.name in names else []
    assert quoting == []
