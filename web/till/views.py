"""The counter till for store staff: open a shift, sell (the sale itself is sent to the JSON API by the till's
script, which queues sales while offline), print receipts, hand pickups over, refund within the shift, close the
shift. The store is always the clerk's own (`store_of`), never one named in the URL or a form."""
from __future__ import annotations

import functools

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask_wtf.csrf import generate_csrf
from marshmallow import ValidationError
from werkzeug.exceptions import TooManyRequests

from orders.checkout.service import get_order_for
from orders.counter import service as counter
from orders.counter.limits import pickup_code_limit
from orders.counter.schemas import PickupCreate, SaleConflictResolve
from orders.errors import OrderCode
from orders.refunds import service as refunds
from orders.refunds.schemas import RefundCreate
from orders.stores import service as stores
from orders.stores.schemas import ShiftClose, ShiftOpen, TransferReceive
from shop.auth.security import issue_token
from shop.db import commit, db, utcnow
from shop.errors import AppError
from shop.fields import MAX_AMOUNT_FEN, is_blank
from web.filters import local_time, masked, yuan
from web.numbers import NumberError, fen_from_yuan, whole_or_typed
from web.once import claim_form, new_form_key
from web.pages import (
    page_blueprint,
    page_url,
    seconds_left_signed_in,
    signed_in,
    typed_text_problem,
    web_user,
)
from web.till import service

bp = page_blueprint("till", __name__, url_prefix="/till")
bp.static_folder = "static"

TOKEN_TTL_SECONDS = 15 * 60
PICKUPS_SHOWN = 50
CONFLICTS_SHOWN = 50
TRANSFERS_SHOWN = 20
SHIFTS_SHOWN = 20
RECEIPT_COUNT_PROBLEM = "请为每个批次填写实收数量：0 到发出数量之间的整数。"
RECEIPT_NOTE_PROBLEM = "有批次实收少于发出时，请写明短缺原因（不超过 200 个字），例如：一袋破损。"
REFUND_FORM_PROBLEM = "请至少填写一行的退货数量，并写明原因（不超过 200 个字）。"
CONFLICT_NOTE_PROBLEM = "请写明处理方式（不超过 200 个字），例如：已重新收款、已退款给顾客。"
MESSAGES = {
    "shift_closed": "该班次已交班。",
    "pickup_code_invalid": "本店没有使用此取货码的待取订单。",
    "refund_outside_shift": "只能退本班次（仍未交班）的销售；其他请联系管理员。",
    "refund_exceeds_sold": "退货数量超过了尚未退的数量。",
    "order_not_refundable": "该订单当前状态不能退款。",
    "till_cash_short": "钱箱里的现金（按本班次记录）不够支付这笔现金退款，请联系管理员。",
    "store_inactive": "本店已停用：店员不能再办理退款、处理冲突或收货，请联系平台管理员。",
}


def _message(exc: AppError) -> str:
    """The clerk-facing Chinese message of a refused action."""
    return MESSAGES.get(exc.code, exc.message)


def _fen(name: str, maximum: int) -> int | None:
    """An amount typed in yuan in a form field, as fen (`fen_from_yuan`), or None for the schema to refuse."""
    try:
        return fen_from_yuan(_field(name), maximum=maximum)
    except NumberError:
        return None


def _field(name: str) -> str:
    """A form field as typed: its schema judges its length (the request is bounded by MAX_CONTENT_LENGTH), so an
    overlong one is refused, never cut short."""
    return request.form.get(name, "")


@bp.context_processor
def _helpers() -> dict:
    """Money and time formatting, and the Chinese reasons of refused sales, for the till's templates."""
    return {"yuan": yuan, "local_time": local_time, "refusal_reason": service.refusal_reason,
            "refusal_reasons": service.REFUSAL_REASONS}


def _till(template: str, status: int = 200, **context):
    """Render a till page with the clerk's store and its open shift."""
    store = service.store_of(web_user())
    return render_template(template, store=store, shift=service.current_shift(store), **context), status


@bp.route("")
@signed_in("store_staff")
def home():
    """The till: the open-shift form, or the sale screen with the price list for offline sales; at a deactivated
    store neither (it sells nothing new), only the way to its shift's cash-up."""
    store = service.store_of(web_user())
    shift = service.current_shift(store)
    open_conflicts = service.open_conflict_count(store)
    if not store.active:
        return render_template("till/closed.html", store=store, shift=shift, open_conflicts=open_conflicts)
    if shift is None:
        return render_template("till/open_shift.html", store=store, shift=None, open_conflicts=open_conflicts)
    data = {"shift_id": shift.id, "products": service.price_list(store)}
    return render_template("till/sell.html", store=store, shift=shift, till_data=data, open_conflicts=open_conflicts)


@bp.route("/shifts", methods=["POST"])
@signed_in("store_staff")
def open_shift():
    """Open the store's shift with the float counted into the drawer."""
    store = service.store_of(web_user())
    try:
        data = ShiftOpen().load({"float_fen": _fen("float", MAX_AMOUNT_FEN)})
    except ValidationError:
        return _till("till/open_shift.html", 422, typed=_field("float"),
                     error=f"请输入备用金金额（最多 ¥{MAX_AMOUNT_FEN // 100:,}），例如 500 或 500.00。")
    try:
        stores.start_shift(actor=web_user(), store_id=store.id, **data)
    except AppError as exc:
        if exc.code == OrderCode.STORE_INACTIVE:
            return _till("till/open_shift.html", 409, error="本店已停用，不能开班。如有疑问，请联系平台管理员。")
        if exc.code != OrderCode.SHIFT_ALREADY_OPEN:
            raise
        db.session.rollback()
        opened = stores.get_shift(store_id=store.id, shift_id=exc.details["shift_id"])  # it may be closed by now
        if opened.closed_at is not None:
            return _till("till/open_shift.html", 409, error=f"本店的班次已由其他窗口开班并已交班，"
                                                             f"您输入的备用金 {yuan(data['float_fen'])} 未记录。"
                                                             "请清点钱箱后重新开班。")
        flash(f"本店已有进行中的班次（由其他窗口开班，备用金 {yuan(opened.float_fen)}），"
              f"您输入的备用金 {yuan(data['float_fen'])} 未记录。")
    commit()
    return redirect(url_for("till.home"))


@bp.get("/shifts")
@signed_in("store_staff")
def shifts():
    """The store's shifts, newest first, each with its cash-up and a link to its report (a page at a time)."""
    store = service.store_of(web_user())
    page = stores.list_shifts(actor=web_user(), store_id=store.id, status=None, from_date=None, to_date=None,
                              limit=SHIFTS_SHOWN, cursor=request.args.get("cursor") or None)
    return _till("till/shifts.html", reports=page["items"],
                 next_url=page_url(page["next_cursor"]) if page["next_cursor"] else None)


@bp.route("/shifts/<int:shift_id>")
@signed_in("store_staff")
def shift(shift_id: int):
    """A shift's report: per payment method expected, counted and difference; its sales, a page at a time; the close
    form."""
    report = stores.shift_report(actor=web_user(), shift_id=shift_id)
    return _till("till/shift.html", report=report, **_sales(report.shift, request.args.get("cursor") or None))


def _sales(shift, cursor: str | None) -> dict:
    """A page of the shift's sales for its page, and the link to the next (older) page, if any."""
    page = service.shift_sales(shift, cursor=cursor)
    next_url = url_for("till.shift", shift_id=shift.id, cursor=page["next_cursor"]) if page["next_cursor"] else None
    return {"sales": page["items"], "next_url": next_url}


@bp.route("/shifts/<int:shift_id>/close", methods=["POST"])
@signed_in("store_staff")
def close_shift(shift_id: int):
    """Close the shift with the cash counted in the drawer."""
    report = stores.shift_report(actor=web_user(), shift_id=shift_id)
    try:
        data = ShiftClose().load({"counted_cash_fen": _fen("counted", MAX_AMOUNT_FEN)})
    except ValidationError:
        return _till("till/shift.html", 422, report=report, **_sales(report.shift, None), typed=_field("counted"),
                     error=f"请输入清点的现金金额（最多 ¥{MAX_AMOUNT_FEN // 100:,}），例如 1234.50。")
    try:
        stores.close_shift(actor=web_user(), shift_id=shift_id, **data)
    except AppError as exc:
        if exc.code != OrderCode.SHIFT_CLOSED:
            raise
        db.session.rollback()
        flash(f"该班次已由其他窗口交班，您这次清点的 {yuan(data['counted_cash_fen'])} 未记录；以下是交班时的清点结果。")
    commit()
    return redirect(url_for("till.shift", shift_id=shift_id))


@bp.route("/receipts/<int:order_id>")
@signed_in("store_staff")
def receipt(order_id: int):
    """A paid order's receipt, laid out for a 58 mm thermal printer."""
    receipt = counter.get_receipt(actor=web_user(), order_id=order_id)
    return _till("till/receipt.html", receipt=receipt, refundable=refunds.in_open_shift(receipt["order"]))


@bp.post("/receipts/<int:order_id>/print")
@signed_in("store_staff")
def print_receipt(order_id: int):
    """Print a paid order's receipt: the print is counted, and any after the first says 重打印 with its number and
    time (the page opens the print dialog itself; sending the form again is another print)."""
    receipt = counter.print_receipt(actor=web_user(), order_id=order_id)
    commit()
    return _till("till/receipt.html", receipt=receipt, refundable=refunds.in_open_shift(receipt["order"]))


def _pickup_clerk() -> tuple[int, int]:
    """Wrong pickup codes are counted per store and clerk, and per store, as on the API (checked before the page's
    role guard)."""
    user = web_user()
    return (user.store_id or 0, user.id) if user else (0, 0)


def _page_when_limited(view):
    """Decorate the pickup page: a hand-over refused after too many wrong codes (`pickup_code_limit`) gets the page
    again saying how long to wait (seconds, or minutes past two; Retry-After in seconds), as the sign-in page does, not
    the bare 429 page."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except TooManyRequests as exc:
            wait = max(exc.retry_after or 0, 1)
            after = f"{wait} 秒" if wait < 120 else f"{-(-wait // 60)} 分钟"  # the store's hour or day: minutes
            page, status = _pickups_page(429, error=f"取货码错误次数过多，请 {after}后再试。")
            return page, status, {"Retry-After": str(wait)}

    return wrapper


@bp.route("/pickups", methods=["GET", "POST"])
@signed_in("store_staff")
@_page_when_limited
@pickup_code_limit(_pickup_clerk)
def pickups():
    """The paid pickup orders waiting here, oldest first, a page at a time, and the hand-over by the code the customer
    shows (then the page of the order handed over, so a refresh does not send the code again)."""
    store = service.store_of(web_user())
    handed = error = None
    status = 200
    if request.method == "GET" and (order_id := _id_arg(request.args.get("handed", ""))) is not None:
        handed = service.handed_order(web_user(), order_id)
    if request.method == "POST":
        try:
            code = PickupCreate().load({"pickup_code": _field("pickup_code")})["pickup_code"]
            handed = counter.hand_over(actor=web_user(), store_id=store.id, pickup_code=code)
            commit()
            return redirect(url_for("till.pickups", handed=handed.id))
        except ValidationError:
            error, status = "取货码是 6 位数字。", 422
        except AppError as exc:
            if exc.code != OrderCode.PICKUP_CODE_INVALID:
                raise
            db.session.rollback()
            error, status = _already_handed(store, code) or _message(exc), 409
    return _pickups_page(status, handed=handed, error=error)


def _pickups_page(status: int = 200, *, handed=None, error: str | None = None):
    """The pickup page: the code form (with `error`, or the order just `handed` over) and a page of the orders
    waiting."""
    store = service.store_of(web_user())
    waiting = counter.list_pickups(actor=web_user(), store_id=store.id, limit=PICKUPS_SHOWN,
                                   cursor=request.args.get("cursor") or None)
    return _till("till/pickups.html", status, waiting=waiting["items"], handed=handed, error=error,
                 next_url=page_url(waiting["next_cursor"]) if waiting["next_cursor"] else None)


def _id_arg(text: str) -> int | None:
    """An id given in a link (read as a typed number is), or None if no row can have it (out of the ids' range)."""
    number = whole_or_typed(text)
    return number if isinstance(number, int) and number > 0 else None


def _already_handed(store, code: str) -> str | None:
    """What the clerk is told when the code's order here was handed over already (another tab, a second try)."""
    handed = service.handed_over_at(store, code)
    if handed is None:
        return None
    order_id, at = handed
    when, today = local_time(at), local_time(utcnow())[:10]
    return f"该订单（单号 {order_id}）已于 {when[-5:] if when.startswith(today) else when} 交货，无需再次核销。"


def _none(text: str) -> bool:
    """Whether a line's typed units say none: blank (`is_blank`), or 0 however written (`０`, `00`)."""
    return is_blank(text) or whole_or_typed(text) == 0


def _refund_request() -> dict:
    """The refund form as the API's refund body: per line the units to refund (blank or 0 is none), the reason."""
    lines = [{"line_id": whole_or_typed(name.removeprefix("quantity-")), "quantity": whole_or_typed(value),
              "resellable": f"resellable-{name.removeprefix('quantity-')}" in request.form}
             for name, value in request.form.items() if name.startswith("quantity-") and not _none(value)]
    return RefundCreate().load({"lines": lines, "reason": _field("reason")})


@bp.route("/orders/<int:order_id>/refund", methods=["GET", "POST"])
@signed_in("store_staff")
def refund(order_id: int):
    """Refund units of a sale of the open shift, per line, with a reason (a closed shift's sale: no form, and why)."""
    order = get_order_for(actor=web_user(), order_id=order_id)

    def form(status: int = 200, error: str | None = None):
        """The refund page, with a fresh form key and, after a refusal, the form as the clerk filled it."""
        return _till("till/refund.html", status, order=order, refundable=refunds.in_open_shift(order),
                     form_key=new_form_key(), error=error, typed=request.form)

    if request.method == "GET":
        return form()
    try:
        data = _refund_request()
        if not claim_form(user=web_user(), purpose="refund", key=request.form.get("form_key", "")):
            db.session.rollback()
            return redirect(url_for("till.receipt", order_id=order.id))  # this form was sent before: its refund
        refunds.create_refund(actor=web_user(), order_id=order.id, **data)
    except ValidationError as exc:
        return form(422, typed_text_problem(exc.messages, REFUND_FORM_PROBLEM))
    except AppError as exc:
        if exc.code not in MESSAGES:
            raise
        db.session.rollback()
        return form(exc.status, _message(exc))
    commit()
    return redirect(url_for("till.receipt", order_id=order.id))


def _conflicts_page(status: int = 200, *, failed: int | None = None, error: str | None = None, note: str = ""):
    """The store's open sale conflicts, oldest first, each with its resolve form (`failed`: the one whose form
    `error` is about, `note` shown again as typed)."""
    store = service.store_of(web_user())
    page = counter.list_conflicts(actor=web_user(), store_id=store.id, limit=CONFLICTS_SHOWN, cursor=None,
                                  resolved=False)
    return _till("till/conflicts.html", status, conflicts=service.refused_sales(page["items"]),
                 more=page["next_cursor"] is not None, failed=failed, error=error, note=note)


@bp.get("/conflicts")
@signed_in("store_staff")
def conflicts():
    """The offline sales the server refused and recorded for the manager, still to be dealt with."""
    return _conflicts_page()


@bp.post("/conflicts/<int:conflict_id>/resolve")
@signed_in("store_staff")
def resolve_conflict(conflict_id: int):
    """Resolve one of the store's sale conflicts with a note of what was done (who and when are recorded)."""
    store = service.store_of(web_user())
    note = _field("note")
    try:
        data = SaleConflictResolve().load({"note": note})
    except ValidationError as exc:
        return _conflicts_page(422, failed=conflict_id, note=note,
                               error=typed_text_problem(exc.messages, CONFLICT_NOTE_PROBLEM))
    try:
        counter.resolve_conflict(actor=web_user(), store_id=store.id, conflict_id=conflict_id, **data)
    except AppError as exc:
        if exc.code == OrderCode.STORE_INACTIVE:
            db.session.rollback()
            return _conflicts_page(409, failed=conflict_id, note=note, error=_message(exc))
        if exc.code != OrderCode.SALE_CONFLICT_RESOLVED:
            raise
        db.session.rollback()
        flash(f"冲突 {conflict_id} 已由他人处理，您的说明未记录。")
        return redirect(url_for("till.conflicts"))
    commit()
    flash(f"冲突 {conflict_id} 已处理。")
    return redirect(url_for("till.conflicts"))


def _transfers_page(status: int = 200, *, failed: int | None = None, error: str | None = None,
                    typed: dict | None = None, note: str = ""):
    """The transfers on their way to the clerk's store, oldest first, each with its receipt form per lot (`failed`:
    the one whose form `error` is about, its counts and note shown again as typed)."""
    store = service.store_of(web_user())
    page = stores.list_incoming_transfers(actor=web_user(), store_id=store.id, status="dispatched",
                                          limit=TRANSFERS_SHOWN, cursor=None)
    return _till("till/transfers.html", status, transfers=page["items"], more=page["next_cursor"] is not None,
                 failed=failed, error=error, typed=typed or {}, note=note)


def _receipt_problem(messages: dict) -> str:
    """What the clerk is told of a refused receipt: the note's rule if the note was refused, else the counts'."""
    return typed_text_problem(messages, RECEIPT_NOTE_PROBLEM if "note" in messages else RECEIPT_COUNT_PROBLEM)


@bp.get("/transfers")
@signed_in("store_staff")
def transfers():
    """The stock transfers sent to the store and not yet received: per lot its product, SKU, lot and trace codes."""
    return _transfers_page()


@bp.post("/transfers/<int:transfer_id>/receive")
@signed_in("store_staff")
def receive_transfer(transfer_id: int):
    """Receive one transfer with the units counted per lot, and a note saying what happened to any missing."""
    typed = {name.removeprefix("received-"): value for name, value in request.form.items()
             if name.startswith("received-")}
    note = _field("note")
    try:
        data = TransferReceive().load({"lines": [{"lot_id": whole_or_typed(lot), "received": whole_or_typed(value)}
                                                 for lot, value in typed.items()],
                                       "note": None if is_blank(note) else note})  # a blank box is no note
        stores.receive_transfer(actor=web_user(), transfer_id=transfer_id, **data)
    except ValidationError as exc:
        return _transfers_page(422, failed=transfer_id, typed=typed, note=note, error=_receipt_problem(exc.messages))
    except AppError as exc:
        if exc.code not in (OrderCode.TRANSFER_ALREADY_RECEIVED, OrderCode.TRANSFER_CANCELLED,
                            OrderCode.STORE_INACTIVE) and exc.status != 422:
            raise
        db.session.rollback()
        if exc.code == OrderCode.STORE_INACTIVE:
            return _transfers_page(409, failed=transfer_id, typed=typed, note=note, error=_message(exc))
        if exc.status == 422:
            return _transfers_page(422, failed=transfer_id, typed=typed, note=note,
                                   error=_receipt_problem(exc.details))
        if exc.code == OrderCode.TRANSFER_CANCELLED:
            cancelled = stores.get_transfer(actor=web_user(), transfer_id=transfer_id)
            flash(f"调拨单 {transfer_id} 已被取消（原因：{masked(cancelled.cancel_reason)}），货品不会送达，"
                  "您这次填写的数量未记录。")
        else:
            flash(f"调拨单 {transfer_id} 已由其他窗口收货，您这次填写的数量未记录。")
        return redirect(url_for("till.transfers"))
    commit()
    flash(f"调拨单 {transfer_id} 已收货，实收数量已入本店库存。")
    return redirect(url_for("till.transfers"))


@bp.get("/prices")
@signed_in("store_staff")
def prices():
    """Today's price list of the clerk's store, for the till's script to price a sale again after a price change."""
    response = jsonify(products=service.price_list(service.store_of(web_user())))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/session")
@signed_in("store_staff")
def session_token():
    """The CSRF token of the clerk's current page session, for a till page left open while the clerk signed in
    again elsewhere (its own token belongs to the session that ended)."""
    response = jsonify(csrf_token=generate_csrf())
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/token", methods=["POST"])
@signed_in("store_staff")
def token():
    """A short-lived bearer token for the till's script, which sends the sales to the JSON API: it ends with the page
    sign-in that asked for it (at its lifetime's end, or at once when the clerk signs out of the pages)."""
    ttl = max(min(TOKEN_TTL_SECONDS, seconds_left_signed_in()), 1)
    access_token, expires_at = issue_token(web_user(), ttl=ttl, page_session=True)
    response = jsonify(access_token=access_token, expires_at=expires_at.isoformat())
    response.headers["Cache-Control"] = "no-store"
    return response
