"""Numbers typed into the pages (quantities, ids, amounts in yuan), read by one rule everywhere: decimal digits of
any script or width (`normalise_number`: `３` and `٣` are 3, `²` and `①` are no digits, as the API reads them), at
most `MAX_NUMBER_INPUT` characters, and a bounded count of digits before any conversion."""
from __future__ import annotations

import re

from shop.fields import MAX_ID, MAX_NUMBER_INPUT, normalise_number

_WHOLE = re.compile(r"[0-9]+")
_YUAN = re.compile(r"([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]*))?")  # a comma only groups thousands


class NumberError(ValueError):
    """A typed number that cannot be read, with why: `format`, `negative`, `decimals` or `too_large`."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def _typed(text: str) -> str:
    """The text in its one spelling; a text longer than any number is too large if it is all digits, else no number."""
    if len(text) > MAX_NUMBER_INPUT:
        raise NumberError("too_large" if text.strip().isdecimal() else "format")
    return normalise_number(text)


def _bounded(digits: str, maximum: int) -> int:
    """Digits as an integer up to `maximum` (their count checked first, so no long string is converted)."""
    digits = digits.lstrip("0") or "0"
    if len(digits) > len(str(maximum)) or int(digits) > maximum:
        raise NumberError("too_large")
    return int(digits)


def whole_number(text: str, *, maximum: int) -> int:
    """A typed whole number from 0 up to `maximum`: digits only (no sign, point, exponent, space or underscore)."""
    value = _typed(text)
    if not _WHOLE.fullmatch(value):
        raise NumberError("format")
    return _bounded(value, maximum)


def whole_or_typed(text: str) -> int | str:
    """A typed id or count as a whole number within the ids' range, or the text as typed for the schema to refuse."""
    try:
        return whole_number(text, maximum=MAX_ID)
    except NumberError:
        return text


def fen_from_yuan(text: str, *, maximum: int) -> int:
    """An amount typed in yuan as fen, up to `maximum`: `120`, `120.5`, `1,120.50`, with a leading ¥ (￥) or a trailing
    元, of any width or script's digits; a comma only groups thousands (`120,5` is no amount), two decimals at most."""
    value = _typed(text).removeprefix("¥").removesuffix("元").strip()
    if value.startswith("-"):
        raise NumberError("negative")
    match = _YUAN.fullmatch(value)
    if match is None:
        raise NumberError("format")
    cents = match.group(2) or ""
    if len(cents) > 2:
        raise NumberError("decimals")
    fen = _bounded(match.group(1).replace(",", ""), maximum // 100) * 100 + int(cents.ljust(2, "0"))
    if fen > maximum:
        raise NumberError("too_large")
    return fen
