"""The consumer's checkout, payment (the sandbox page, or Stripe Elements) and orders."""
from __future__ import annotations

import hashlib
import json

from flask import Response, current_app, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError as SchemaError

from catalog import service as catalog
from catalog.errors import CatalogCode
from orders.checkout import service as checkout
from orders.checkout.schemas import OrderCreate
from orders.errors import OrderCode
from orders.payments import service as payments
from orders.refunds import service as refunds
from orders.refunds.schemas import AfterSalesCreate
from orders.stores import service as stores
from shop.db import commit, db
from shop.errors import AppError, NotFound, ShopCode
from shop.links import external_url
from shop.pagination import MAX_CURSOR_LENGTH, InvalidCursor
from shop.qr import svg_qr
from web.numbers import whole_or_typed
from web.once import claim_form, is_form_key, new_form_key
from web.pages import (
    CONTROLS_REFUSED,
    ID_OR_CARD_REFUSED,
    error_page,
    refused_for_controls,
    refused_for_numbers,
    signed_in,
    web_user,
)
from web.storefront import cart, reads
from web.storefront.checkout import place_order_once, placed_order
from web.storefront.order_details import every, order_details
from web.storefront.views import bp

ORDERS_PER_PAGE = 20
ADDRESS_FIELDS = ("district_code", "detail", "recipient", "phone")
FIELD_MESSAGES = {
    "channel": "请选择门店自提或快递配送。", "store_id": "请选择取货门店。",
    "district_code": "请选择收货的区。", "detail": "请填写详细地址（最多 200 字）。",
    "recipient": "请填写收货人（最多 50 字）。", "phone": "请填写收货人的 11 位中国大陆手机号（可带 +86）。",
    "lines": "购物车里有无效的商品，请回到购物车检查。",
}
SHORT = "有商品库存不足，请减少数量或改选其他门店。"
RETRY = "您的订单刚刚有变动，请重新提交。"
REFUSALS = {  # each code placing an order can be refused with → the form field it concerns and what the shopper is told
    CatalogCode.INSUFFICIENT_STOCK: ("lines", SHORT),
    CatalogCode.LOT_NOT_HELD_HERE: ("lines", SHORT),
    OrderCode.TOO_MANY_UNPAID_ORDERS: ("lines", f"您有 {checkout.MAX_UNPAID_ORDERS} 个订单待支付："
                                                "请先支付或取消其中一个，再下新订单。"),
    OrderCode.PRODUCT_UNAVAILABLE: ("lines", "购物车里有商品已下架，请回到购物车删除后再结算。"),
    OrderCode.STORE_UNAVAILABLE: ("store_id", "这家门店暂不营业，请选择其他门店。"),
    OrderCode.NOT_A_DONOR_DISTRICT: ("district_code", "我们只配送到对口帮扶城市的各区。"),
    OrderCode.WAREHOUSE_UNAVAILABLE: ("lines", "所选仓库无法发货，请重新提交。"),
    ShopCode.VALIDATION_ERROR: ("lines", "请检查填写的内容。"),
    OrderCode.ORDER_TOTAL_TOO_LARGE: ("lines", cart.TOTAL_TOO_LARGE),
    OrderCode.ORDER_TOTAL_TOO_SMALL: ("lines", "订单金额低于支付服务的最低付款金额，订单已取消，没有扣款。"
                                              "请添加商品后再下单。"),
    OrderCode.PAYMENT_PROVIDER_UNAVAILABLE: ("lines", "支付服务暂时不可用，订单已取消，没有扣款。请稍后再试。"),
    ShopCode.IDEMPOTENCY_KEY_IN_PROGRESS: ("lines", "订单正在提交，请稍后到“我的订单”查看。"),
    # the buyer's own orders past their reservation are expired before the new one is placed: one changed meanwhile
    OrderCode.INVALID_TRANSITION: ("lines", RETRY),
    OrderCode.ORDER_NOT_FOUND: ("lines", RETRY),
    CatalogCode.RESERVATION_NOT_HELD: ("lines", RETRY),
}
REFUSAL_LINKS = {OrderCode.TOO_MANY_UNPAID_ORDERS: (".order_list", "去“我的订单”支付或取消")}  # where to set it right
AFTER_SALES_FIELDS = {"quantity": "请填写要退的件数（1 件起的整数）。", "reason": "请填写申请原因（最多 500 字）。"}
AFTER_SALES_REFUSALS = {  # the after-sales service's refusals → the form field they concern and what the buyer is told
    OrderCode.AFTER_SALES_NOT_ALLOWED: ("form", "订单送达或取货后才能申请售后。"),
    OrderCode.AFTER_SALES_WINDOW_CLOSED: ("form", "已过了申请期限：送达或取货后 {days} 天内才能申请售后。"),
    OrderCode.AFTER_SALES_OPEN: ("form", "这个订单已有一个处理中的售后申请，请等待处理结果后再申请。"),
    OrderCode.REFUND_EXCEEDS_SOLD: ("quantity", "件数超过了可以申请的数量：最多可以申请 {refundable} 件。"),
    OrderCode.REFUND_EXCEEDS_PAID: ("quantity", "这些件数的金额超过了本单还能退的金额（已有款项退回），请减少件数。"),
    OrderCode.ORDER_LINE_NOT_FOUND: ("form", "订单里没有这件商品，请刷新页面后重试。"),
}
ORDER_NOT_FOUND = "订单不存在。"
AFTER_SALES_NOT_FOUND = "售后申请不存在。"
OUTCOMES = ("succeeded", "failed")
ENDED = ("expired", "cancelled")  # orders whose lines may be put back in the cart
CHANGED = "购物车或价格已变化，请确认后再提交。"
CANCEL_REFUSALS = {  # a cancel refused (a stale page's form) → what the order page then tells the buyer
    OrderCode.INVALID_TRANSITION: "这个订单已不能取消。",
    OrderCode.PAYMENT_BEING_CONFIRMED: "付款正在确认，订单不能取消。",
}


def _form_errors(messages: dict) -> dict[str, str]:
    """The schema's messages as one Chinese message per form field."""
    names = [*messages, *(messages["address"] if isinstance(messages.get("address"), dict) else ())]
    numbers, controls = refused_for_numbers(messages), refused_for_controls(messages)
    return ({name: ID_OR_CARD_REFUSED if name in numbers else CONTROLS_REFUSED if name in controls
             else FIELD_MESSAGES[name] for name in names if name in FIELD_MESSAGES} or {"lines": "请检查填写的内容。"})


def _order_request(lines: dict[str, int]) -> dict:
    """The checkout form as the API's order request, as typed: the API's own schema judges each field and its length."""
    channel = request.form.get("channel", "")
    body: dict = {"channel": channel, "lines": [{"sku": sku, "quantity": n} for sku, n in lines.items()]}
    if channel == "pickup":
        store = request.form.get("store_id", "")
        body["store_id"] = whole_or_typed(store)
    elif channel == "delivery":
        body["address"] = {name: request.form.get(name, "") for name in ADDRESS_FIELDS}
    return OrderCreate().load(body)


def _shown_rows(lines: dict[str, int]) -> list[tuple]:
    """The cart's lines as checkout shows them: SKU, the product on sale (or None) and the quantity."""
    on_sale = catalog.products_seen_by(skus=list(lines))
    return [(sku, on_sale.get(sku), quantity) for sku, quantity in lines.items()]


def _digest(rows: list[tuple]) -> str:
    """A digest of the lines, unit prices and total a checkout form showed (its order must be what was shown)."""
    shown = [[sku, quantity, item.price_fen if item else None] for sku, item, quantity in rows]
    return hashlib.sha256(json.dumps(shown).encode()).hexdigest()


def _checkout_page(lines: dict[str, int], *, errors: dict | None = None, short: dict | None = None,
                   link: tuple[str, str] | None = None, status: int = 200):
    """The checkout form with a fresh form key, its lines and total (and their digest), and any errors (short lines
    by SKU, and a link to where the shopper sets a refusal right: address and text)."""
    rows = _shown_rows(lines)
    choices = every(stores.list_stores, actor=web_user(), district_code=None)
    return render_template(
        "storefront/checkout.html", rows=rows, total=sum(p.price_fen * n for _, p, n in rows if p),
        stores=choices, districts=reads.donor_districts(on=catalog.today()), key=new_form_key(), digest=_digest(rows),
        names=reads.names_off_sale([sku for sku, item, _ in rows if item is None]),
        form=request.form if request.method == "POST" else {"channel": "pickup", "store_id": request.args.get("store")},
        errors=errors or {}, short=short or {}, link=link), status


def _refused(lines: dict[str, int], exc: AppError):
    """The checkout form again, saying in Chinese why the order was refused (short lines marked)."""
    if exc.code not in REFUSALS:
        raise exc
    field, message = REFUSALS[exc.code]
    short = {line["sku"]: line for line in exc.details["lines"]} if exc.code == CatalogCode.INSUFFICIENT_STOCK else None
    endpoint, text = REFUSAL_LINKS.get(exc.code, (None, ""))
    return _checkout_page(lines, errors={field: message}, short=short,
                          link=(url_for(endpoint), text) if endpoint else None, status=exc.status)


@bp.route("/checkout", methods=["GET", "POST"])
@signed_in("consumer")
def checkout_page():
    """Checkout: pickup at a chosen store or delivery to an address; one order per submitted form (a form sent
    again leads to its order). The order is what the form showed: if the cart or a price changed since, the form is
    shown again and nothing is placed."""
    lines, key = cart.lines(), request.form.get("form_key", "")[:64]
    submitted = request.method == "POST" and is_form_key(key)
    try:
        placed = placed_order(user=web_user(), key=key) if submitted else None
        if placed is None and submitted and lines and request.form.get("digest") != _digest(_shown_rows(lines)):
            return _checkout_page(lines, errors={"lines": CHANGED}, status=409)
        if placed is None and submitted and lines:
            placed = place_order_once(user=web_user(), key=key, order=_order_request(lines))
    except SchemaError as exc:
        return _checkout_page(lines, errors=_form_errors(exc.messages), status=422)
    except AppError as exc:
        return _refused(lines, exc)
    if placed is not None:
        cart.clear()
        return redirect(url_for(".pay", order_id=placed))
    if not lines:
        flash("购物车是空的。")
        return redirect(url_for(".show_cart"))
    if request.method == "GET":
        return _checkout_page(lines)
    return _checkout_page(lines, errors={"lines": "表单已过期，请重新提交。"}, status=400)


def _own_order(order_id: int):
    """The signed-in consumer's order view (`NotFound` for any other)."""
    return checkout.read_order(actor=web_user(), order_id=order_id)


@bp.route("/orders/<int:order_id>/pay", methods=["GET", "POST"])
@signed_in("consumer")
def pay(order_id: int):
    """Pay an order: the sandbox's 支付成功/支付失败 buttons, or Stripe Elements when Stripe is configured (an order
    no longer payable leads to its page, which says why: expired, cancelled, paid)."""
    try:
        view = _own_order(order_id)
    except NotFound:
        return error_page(404, ORDER_NOT_FOUND)
    if view.status != "pending_payment" or view.payment is None or checkout.payment_being_confirmed(order_id=order_id):
        return redirect(url_for(".order_page", order_id=order_id))
    config = current_app.config
    if config["PAYMENTS"] == "stripe" and config.get("STRIPE_PUBLISHABLE_KEY"):
        if request.method == "POST":
            return error_page(405, "不支持此操作")
        return render_template("storefront/pay_stripe.html", order=view, publishable_key=config[
            "STRIPE_PUBLISHABLE_KEY"], return_url=external_url(".order_page", order_id=order_id))
    if not payments.sandbox_enabled(config):
        return error_page(404, "支付页面不可用。")
    if request.method == "GET":
        return render_template("storefront/pay_sandbox.html", order=view)
    outcome = request.form.get("outcome", "")
    if outcome not in OUTCOMES:
        return render_template("storefront/pay_sandbox.html", order=view, error="请选择支付结果。"), 422
    payments.sandbox_confirm(actor=web_user(), intent_id=view.payment.intent_id, outcome=outcome)
    commit()
    if outcome == "failed":
        flash("支付失败，可以重新支付。")
    elif payments.payment_state(order_id=order_id)["status"] != "pending_payment":
        flash("支付成功。")  # else the order page says the payment is being confirmed (the worker is behind)
    return redirect(url_for(".order_page", order_id=order_id))


@bp.get("/orders")
@signed_in("consumer")
def order_list():
    """The consumer's own orders, newest first, a page at a time."""
    cursor = request.args.get("cursor", "")[:MAX_CURSOR_LENGTH] or None
    try:
        page = checkout.list_orders(actor=web_user(), limit=ORDERS_PER_PAGE, cursor=cursor)
    except InvalidCursor:
        return error_page(400, "翻页链接无效，请回到“我的订单”第一页。", link=(url_for(".order_list"), "回到第一页"))
    return render_template("storefront/orders.html", page=page)


def _order_page(order_id: int, *, asked: dict | None = None, status: int = 200):
    """The order page, with its after-sales forms (one per line with units still sold) while a request may be made;
    `asked`: the line, fields as typed and errors of an after-sales form refused."""
    try:
        view = _own_order(order_id)
    except NotFound:
        return error_page(404, ORDER_NOT_FOUND)
    returned = request.args.get("redirect_status", "")[:32]  # Stripe's redirect back from a payment page
    confirming = view.status == "pending_payment" and (
        returned == "succeeded" or checkout.payment_being_confirmed(order_id=order_id))
    return render_template("storefront/order.html", order=view, returned=returned, confirming=confirming,
                           details=order_details(actor=web_user(), view=view), asked=asked, form_key=new_form_key(),
                           window_days=refunds.AFTER_SALES_WINDOW.days), status


@bp.get("/orders/<int:order_id>")
@signed_in("consumer")
def order_page(order_id: int):
    """One of the consumer's orders: status, lines, pickup code and its QR, tracking, delivery address, refunds and
    what was paid in the end, after-sales requests with their answers and the forms to ask for one (until when),
    and impact. An unpaid order whose payment is being confirmed (Stripe's redirect back says it succeeded, or its
    event awaits the worker) says so and offers neither paying again nor cancelling."""
    return _order_page(order_id)


def _after_sales_errors(messages: dict) -> dict[str, str]:
    """The schema's messages as one Chinese message per after-sales form field ("form": the request as a whole)."""
    lines = messages.get("lines")
    names = [name for name in ("reason",) if name in messages]
    if isinstance(lines, dict) and any(isinstance(problems, dict) and "quantity" in problems
                                       for problems in lines.values()):
        names.append("quantity")
    numbers, controls = refused_for_numbers(messages), refused_for_controls(messages)
    return ({name: ID_OR_CARD_REFUSED if name in numbers else CONTROLS_REFUSED if name in controls
             else AFTER_SALES_FIELDS[name] for name in names}
            or {"form": AFTER_SALES_REFUSALS[OrderCode.ORDER_LINE_NOT_FOUND][1]})


@bp.post("/orders/<int:order_id>/after-sales")
@signed_in("consumer")
def ask_after_sales(order_id: int):
    """Ask for a refund of units of one line of a delivered or collected order, with a reason, judged by the API's
    own schema and service (once per form); the order page then lists the request, or shows the form's errors."""
    line_id, quantity, reason = (request.form.get(name, "") for name in ("line_id", "quantity", "reason"))
    asked = {"line_id": whole_or_typed(line_id), "quantity": quantity, "reason": reason}
    try:
        data = AfterSalesCreate().load({"lines": [{"line_id": whole_or_typed(line_id),
                                                   "quantity": whole_or_typed(quantity)}], "reason": reason})
        if claim_form(user=web_user(), purpose="after-sales", key=request.form.get("form_key", "")):
            refunds.request_after_sales(actor=web_user(), order_id=order_id, **data)
            commit()
            flash("售后申请已提交，请等待处理结果。")
        else:
            db.session.rollback()  # this form was sent before: the order page lists its request
    except SchemaError as exc:
        return _order_page(order_id, asked={**asked, "errors": _after_sales_errors(exc.messages)}, status=422)
    except AppError as exc:
        db.session.rollback()
        if exc.code == OrderCode.ORDER_NOT_FOUND:
            return error_page(404, ORDER_NOT_FOUND)
        if exc.code not in AFTER_SALES_REFUSALS:
            raise
        field, message = AFTER_SALES_REFUSALS[exc.code]
        message = message.format(days=refunds.AFTER_SALES_WINDOW.days, refundable=exc.details.get("refundable"))
        return _order_page(order_id, asked={**asked, "errors": {field: message}}, status=exc.status)
    return redirect(url_for(".order_page", order_id=order_id))


@bp.post("/after-sales/<int:request_id>/withdraw")
@signed_in("consumer")
def withdraw_after_sales(request_id: int):
    """Withdraw the consumer's own open after-sales request; its order's page then lists it withdrawn (its units may
    be asked for again), or says it was answered meanwhile."""
    try:
        withdrawn = refunds.withdraw_after_sales(actor=web_user(), request_id=request_id)
    except NotFound:
        return error_page(404, AFTER_SALES_NOT_FOUND)
    except AppError as exc:
        if exc.code != OrderCode.AFTER_SALES_DECIDED:
            raise
        db.session.rollback()
        flash("这个售后申请已经处理，不能撤回。")
        return redirect(url_for(".order_page", order_id=refunds.read_after_sales(
            actor=web_user(), request_id=request_id).order_id))
    commit()
    flash("售后申请已撤回。")
    return redirect(url_for(".order_page", order_id=withdrawn.order_id))


@bp.post("/orders/<int:order_id>/cancel")
@signed_in("consumer")
def cancel(order_id: int):
    """Cancel an unpaid order; its stock is released (a stale page's form for an order no longer cancellable, or
    whose payment is being confirmed, leads to its page, which says why)."""
    try:
        checkout.cancel_order(actor=web_user(), order_id=order_id)
    except NotFound:
        return error_page(404, ORDER_NOT_FOUND)
    except AppError as exc:
        if exc.code not in CANCEL_REFUSALS:
            raise
        db.session.rollback()
        flash(CANCEL_REFUSALS[exc.code])
    else:
        commit()  # the order page says it was cancelled, and what to do next
    return redirect(url_for(".order_page", order_id=order_id))


@bp.post("/orders/<int:order_id>/to-cart")
@signed_in("consumer")
def put_back(order_id: int):
    """Put an expired or cancelled order's lines back in the cart (those still on sale) to order them again: each line
    then holds at least the units ordered, however often this is pressed."""
    try:
        view = _own_order(order_id)
    except NotFound:
        return error_page(404, ORDER_NOT_FOUND)
    if view.status not in ENDED:
        return redirect(url_for(".order_page", order_id=order_id))
    missing, on_sale, before = [], catalog.products_seen_by(skus=[line.sku for line in view.lines]), cart.lines()
    for line in view.lines:
        if line.sku not in on_sale:
            missing.append(line.name)
            continue
        try:
            have = cart.lines().get(line.sku, 0)
            if have < line.quantity:  # pressed again (or already in the cart): the order's units, once
                cart.add(line.sku, line.quantity - have, priced=False)
        except cart.CartError:
            missing.append(line.name)
    try:
        cart.within_one_payment(cart.lines())
    except cart.CartError as exc:  # the cart as it was, saying why
        cart.replace(before)
        flash(str(exc))
        return redirect(url_for(".show_cart"))
    flash("已放回购物车，请确认后重新下单。" + (f"未能放回：{'、'.join(missing)}。" if missing else ""))
    return redirect(url_for(".show_cart"))


@bp.get("/orders/<int:order_id>/pickup-qr.svg")
@signed_in("consumer")
def pickup_qr(order_id: int):
    """The pickup code as a QR code (the buyer's own paid pickup orders only)."""
    try:
        code = checkout.pickup_code(actor=web_user(), order_id=order_id)
    except NotFound:
        return error_page(404, "没有可显示的取货码。")
    return Response(svg_qr(code), mimetype="image/svg+xml", headers={"Cache-Control": "private, no-store"})
