"""The storefront's price filter: bounds typed in yuan (`12.5`, `１２.５`, `¥12.50`, `12元`) read as the API's fen, and
what cannot be one told in Chinese beside its field."""
from __future__ import annotations

from werkzeug.datastructures import MultiDict

from shop.fields import MAX_PRICE_FEN
from web.filters import yuan
from web.numbers import NumberError, fen_from_yuan

PRICE_BOUNDS = {"min_yuan": ("min_price_fen", "最低价"), "max_yuan": ("max_price_fen", "最高价")}
PROBLEMS = {  # why a bound is no price (`NumberError.problem`) → what the shopper is told, after the bound's label
    "negative": "不能是负数。",
    "decimals": "最多两位小数（精确到分）。",
    "too_large": f"不能超过 {yuan(MAX_PRICE_FEN)}。",
    "format": "请填写以元为单位的金额，如 12.5。",
}


def price_range(args: MultiDict) -> tuple[dict[str, int], dict[str, str]]:
    """The list's price filters (`min_price_fen`, `max_price_fen`) from the bounds typed in `args` (the query as the
    API reads it, `query_args`: a blank bound is not given), and the message for each bound that cannot be one (by
    its field; a range the wrong way round names its upper bound); a bound with a message filters nothing."""
    prices, errors = {}, {}
    for field, (name, label) in PRICE_BOUNDS.items():
        typed = args.get(field, "")
        if typed:
            try:
                prices[name] = fen_from_yuan(typed, maximum=MAX_PRICE_FEN)
            except NumberError as exc:
                errors[field] = label + PROBLEMS[exc.problem]
    if prices.get("min_price_fen", 0) > prices.get("max_price_fen", MAX_PRICE_FEN):
        errors["max_yuan"] = "最高价不能低于最低价。"
        del prices["max_price_fen"]
    return prices, errors
