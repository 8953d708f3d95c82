"""The storefront's price filter: bounds typed in yuan (`12.5`, `１２.５`, `¥12.50`, `12元`) read as the API's fen, and
what cannot be one told in Chinese beside its field."""
from __future__ import annotations

import re

from werkzeug.datastructures import MultiDict

from shop.fields import MAX_PRICE_FEN, normalise_identifier
from web.filters import yuan

PRICE_BOUNDS = {"min_yuan": ("min_price_fen", "最低价"), "max_yuan": ("max_price_fen", "最高价")}
MAX_TYPED = 32  # longer than any price
_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]*))?")
_MAX_WHOLE_DIGITS = len(str(MAX_PRICE_FEN // 100))


class PriceError(ValueError):
    """A price bound that cannot be read, with the message the shopper sees."""


def fen_from_yuan(text: str, label: str) -> int:
    """A price bound typed in yuan as fen: 0 up to the API's bound, at most two decimals (digits of any width or
    script, a leading ¥ or a trailing 元 allowed); else `PriceError` naming the bound by its `label`."""
    value = normalise_identifier(text[:MAX_TYPED], case=None).removeprefix("¥").removesuffix("元").strip()
    if value[:1] in ("-", "−"):
        raise PriceError(f"{label}不能是负数。")
    match = _AMOUNT.fullmatch(value)
    if match is None:
        raise PriceError(f"{label}请填写以元为单位的金额，如 12.5。")
    whole, cents = match.group(1).lstrip("0") or "0", match.group(2) or ""
    if len(cents) > 2:
        raise PriceError(f"{label}最多两位小数（精确到分）。")
    fen = int(whole) * 100 + int(cents.ljust(2, "0")) if len(whole) <= _MAX_WHOLE_DIGITS else MAX_PRICE_FEN + 1
    if fen > MAX_PRICE_FEN:
        raise PriceError(f"{label}不能超过 {yuan(MAX_PRICE_FEN)}。")
    return fen


def price_range(args: MultiDict) -> tuple[dict[str, int], dict[str, str]]:
    """The list's price filters (`min_price_fen`, `max_price_fen`) from the bounds typed in `args` (the query as the
    API reads it, `query_args`: a blank bound is not given), and the message for each bound that cannot be one (by
    its field; a range the wrong way round names its upper bound); a bound with a message filters nothing."""
    prices, errors = {}, {}
    for field, (name, label) in PRICE_BOUNDS.items():
        typed = args.get(field, "")
        if typed:
            try:
                prices[name] = fen_from_yuan(typed, label)
            except PriceError as exc:
                errors[field] = str(exc)
    if prices.get("min_price_fen", 0) > prices.get("max_price_fen", MAX_PRICE_FEN):
        errors["max_yuan"] = "最高价不能低于最低价。"
        del prices["max_price_fen"]
    return prices, errors
