"""The cart, kept in the cookie session: SKU → quantity, at most `MAX_LINES` lines, each quantity within the API's
bounds, a change that raises its total at most what one payment carries (the checkout's bound, said at once; the
checkout service decides the rest: what is on sale and in stock)."""
from __future__ import annotations

import re

from flask import flash, session

from catalog import service as catalog
from orders.checkout.schemas import MAX_LINES, SKU_PATTERN
from orders.payments.provider import MAX_PAYMENT_FEN
from shop.fields import MAX_QUANTITY, normalise_identifier
from web.filters import yuan
from web.numbers import NumberError, whole_number
from web.pages import web_user
from web.storefront import reads

LINE_GONE = "这件商品已不在购物车中（可能已在其他窗口删除），如需购买请重新加入。"
TOTAL_TOO_LARGE = f"订单合计不能超过 {yuan(MAX_PAYMENT_FEN)}（单笔支付的上限），请减少数量或分几笔下单。"


class CartError(ValueError):
    """A cart change that is refused, with the message the shopper sees."""


def parse_quantity(text: str, *, allow_zero: bool = False) -> int:
    """A quantity typed into a form: whole units from 1 (0 to remove a line) up to the API's bound, read as every
    typed number is (`whole_number`)."""
    lowest = 0 if allow_zero else 1
    try:
        quantity = whole_number(text, maximum=MAX_QUANTITY)
    except NumberError:
        quantity = None
    if quantity is None or quantity < lowest:
        raise CartError(f"数量必须是 {lowest} 到 {MAX_QUANTITY} 之间的整数。")
    return quantity


def parse_sku(text: str) -> str:
    """A SKU from a form, normalised as the API does (`CartError` if it cannot be one)."""
    sku = normalise_identifier(text[:64])
    if not re.fullmatch(SKU_PATTERN, sku):
        raise CartError("没有这个商品。")
    return sku


def lines() -> dict[str, int]:
    """The cart's lines in the order they were added; anything malformed in the session is dropped, and a cart whose
    owner's sign-in ended is put aside unseen first (`web_user`)."""
    web_user()
    return well_formed(session.get("cart"))


def well_formed(stored: object) -> dict[str, int]:
    """The lines of a cart as the session stored it, anything malformed dropped."""
    if not isinstance(stored, dict):
        return {}
    return {sku: quantity for sku, quantity in list(stored.items())[:MAX_LINES]
            if isinstance(sku, str) and re.fullmatch(SKU_PATTERN, sku)
            and type(quantity) is int and 1 <= quantity <= MAX_QUANTITY}


def count() -> int:
    """How many lines the cart has."""
    return len(lines())


def add(sku: str, quantity: int, *, priced: bool = True) -> None:
    """Add units of a product (to its line if there is one), within the bounds (the total's too, unless not `priced`:
    a caller adding many lines checks the total once, `within_one_payment`)."""
    cart = lines()
    if sku not in cart and len(cart) >= MAX_LINES:
        raise CartError(f"购物车最多 {MAX_LINES} 种商品，请先结算或删除一些。")
    total = cart.get(sku, 0) + quantity
    if total > MAX_QUANTITY:
        raise CartError(f"每种商品最多 {MAX_QUANTITY} 件。")
    if priced:
        within_one_payment({**cart, sku: total})
    cart[sku] = total
    session["cart"] = cart


def merge(filled: dict[str, int]) -> None:
    """Add the lines `filled` before signing in to the cart, each as adding its units would (`add`); a line refused is
    left out whole, and the shopper is told which and why (flashed as a warning), never losing units unsaid."""
    for sku, quantity in filled.items():
        try:
            add(sku, quantity)
        except CartError as exc:
            seen = catalog.products_seen_by(skus=[sku], actor=web_user()).get(sku)
            name = seen.name if seen else reads.names_off_sale([sku]).get(sku, sku)
            flash(f"登录前加入的 {quantity} 件“{name}”没有并入购物车：{exc}", "warn")


def set_quantity(sku: str, quantity: int) -> None:
    """Change a line's quantity; 0 removes it (a line removed already, in another tab, stays removed: its new units
    are refused, not added)."""
    cart = lines()
    if quantity == 0:
        cart.pop(sku, None)
    elif sku not in cart:
        raise CartError(LINE_GONE)
    else:
        if quantity > cart[sku]:
            within_one_payment({**cart, sku: quantity})
        cart[sku] = quantity
    session["cart"] = cart


def within_one_payment(cart: dict[str, int]) -> None:
    """Refuse (`CartError`, in the checkout's words) a cart whose products on sale cost more than one payment carries,
    read in one statement."""
    found = catalog.products_seen_by(skus=list(cart), actor=web_user())
    if sum(found[sku].price_fen * quantity for sku, quantity in cart.items() if sku in found) > MAX_PAYMENT_FEN:
        raise CartError(TOTAL_TOO_LARGE)


def replace(kept: dict[str, int]) -> None:
    """Put back the cart's lines as they were (`kept`, as `lines` read them)."""
    session["cart"] = kept


def clear() -> None:
    """Empty the cart (after a placed order)."""
    session.pop("cart", None)
