"""The till pages through the test client: the bearer token the till's script gets (CSRF-checked, short-lived,
for store staff only), the store always the clerk's own, bad amounts refused in Chinese, wrong pickup codes
limited as on the API."""
from __future__ import annotations

import html
import json
import re
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import g
from limits.storage import memory
from markupsafe import escape
from sqlalchemy import select, update

from catalog import inventory
from catalog.models import Location, Product
from orders.counter import service as counter
from orders.ledger.verify import verify_ledger
from orders.models import Order, SaleConflict, Shift, StockTransfer, Store
from orders.refunds import service as refunds
from orders.stores import service as stores
from shop.db import db, utcnow
from shop.errors import AppError
from shop.fields import MAX_AMOUNT_FEN, mask_personal_numbers
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.contract.conftest import documented_codes
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.orders.counter.conftest import make_counter, paid_pickup_order, partly_refunded_pickup_order
from tests.orders.factories import ShiftFactory, StoreFactory
from tests.orders.refunds.conftest import paid_order
from tests.suppliers.factories import SupplierFactory
from web.filters import local_time

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_HEADER = re.compile(r'"X-CSRFToken": "([^"]+)"')


def _csrf(client, path: str) -> str:
    """The CSRF token a page carries for this client's session (flask-wtf's per-request copy in `g` dropped)."""
    g.pop("csrf_token", None)
    page = client.get(path).get_data(as_text=True)
    return (CSRF_FIELD.search(page) or CSRF_HEADER.search(page)).group(1)


def _signed_in(client, role: str = "store_staff", **scope):
    """A user of `role` signed in to the pages through the sign-in form."""
    user = UserFactory(role=role, **scope)
    db.session.commit()
    client.post("/login", data={"username": user.username, "password": DEFAULT_PASSWORD,
                                "csrf_token": _csrf(client, "/login")})
    return user


def test_the_till_gets_a_fifteen_minute_bearer_token_that_the_api_takes(client):
    store = StoreFactory()
    _signed_in(client, store_id=store.id)
    assert client.post("/till/token").status_code == 400  # no CSRF token: refused
    response = client.post("/till/token", headers={"X-CSRFToken": _csrf(client, "/till")})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    expires_at = datetime.fromisoformat(response.json["expires_at"])
    assert timedelta(minutes=14) < expires_at - datetime.now(UTC) <= timedelta(minutes=15)
    bearer = {"Authorization": f"Bearer {response.json['access_token']}"}
    assert client.get(f"/api/v1/stores/{store.id}", headers=bearer).status_code == 200
    other = StoreFactory()
    db.session.commit()
    assert client.get(f"/api/v1/stores/{other.id}", headers=bearer).status_code == 404


def test_the_tills_token_ends_when_the_clerk_signs_out_of_the_pages_or_the_sign_in_ends(client, app):
    store = StoreFactory()
    clerk = _signed_in(client, store_id=store.id)
    issued = client.post("/till/token", headers={"X-CSRFToken": _csrf(client, "/till")})
    till = {"Authorization": f"Bearer {issued.json['access_token']}"}
    device = client.post("/api/v1/auth/token", json={"username": clerk.username, "password": DEFAULT_PASSWORD})
    own_device = {"Authorization": f"Bearer {device.json['access_token']}"}
    assert client.get(f"/api/v1/stores/{store.id}", headers=till).status_code == 200

    client.post("/logout", data={"csrf_token": _csrf(client, "/till")})

    refused = client.get(f"/api/v1/stores/{store.id}", headers=till)
    assert refused.status_code == 401 and refused.json["error"]["code"] == "invalid_token"
    assert client.get(f"/api/v1/stores/{store.id}", headers=own_device).status_code == 200  # not a page's token
    client.post("/login", data={"username": clerk.username, "password": DEFAULT_PASSWORD,
                                "csrf_token": _csrf(client, "/login")})
    lifetime = app.permanent_session_lifetime.total_seconds()
    with client.session_transaction() as session:  # a sign-in with 100 s of its lifetime left
        session["at"] = int(datetime.now(UTC).timestamp() - lifetime + 100)
    short = client.post("/till/token", headers={"X-CSRFToken": _csrf(client, "/till")})
    left = datetime.fromisoformat(short.json["expires_at"]) - datetime.now(UTC)
    assert timedelta(seconds=90) < left <= timedelta(seconds=101)


def test_a_consumer_gets_no_till_token_and_an_anonymous_visitor_is_sent_to_sign_in(client, app):
    anonymous = app.test_client()
    assert anonymous.post("/till/token", headers={"X-CSRFToken": _csrf(anonymous, "/login")}).status_code == 302
    _signed_in(client, role="consumer")
    assert client.post("/till/token", headers={"X-CSRFToken": _csrf(client, "/")}).status_code == 404


def test_the_till_opens_the_shift_of_the_clerks_own_store_whatever_the_form_says(client):
    own, other = StoreFactory(), StoreFactory()
    _signed_in(client, store_id=own.id)
    page = client.get("/till").get_data(as_text=True)
    assert own.name in page and "备用金（元）" in page
    response = client.post("/till/shifts", data={"float": "300.50", "store_id": other.id,
                                                 "csrf_token": _csrf(client, "/till")})
    assert response.status_code == 302
    shifts = db.session.scalars(select(Shift)).all()
    assert [(shift.store_id, shift.float_fen) for shift in shifts] == [(own.id, 30050)]
    assert 'id="till-data"' in client.get("/till").get_data(as_text=True)  # the sale screen with its price list


def test_a_float_that_is_not_an_amount_is_refused_in_chinese_and_opens_nothing(client):
    store = StoreFactory()
    _signed_in(client, store_id=store.id)
    for typed in ("abc", "-5", "1.234", "", "10000000000.01"):
        response = client.post("/till/shifts", data={"float": typed, "csrf_token": _csrf(client, "/till")})
        assert response.status_code == 422 and "请输入备用金金额" in response.get_data(as_text=True)
    assert db.session.scalars(select(Shift)).all() == []


def test_a_refused_float_or_cash_count_stays_in_its_field_to_be_corrected(client):
    """The clerk sees the amount they typed (a stray 元, a comma for the point) beside the message, not a blank box."""
    order, _ = _sale(client)
    counted = client.post(f"/till/shifts/{order.shift_id}/close",
                          data={"counted": "1234,5元", "csrf_token": _csrf(client, f"/till/shifts/{order.shift_id}")})
    assert counted.status_code == 422
    assert re.search(r'<input id="counted"[^>]*value="1234,5元"', counted.get_data(as_text=True))
    client.post(f"/till/shifts/{order.shift_id}/close",
                data={"counted": "30", "csrf_token": _csrf(client, f"/till/shifts/{order.shift_id}")})
    opened = client.post("/till/shifts", data={"float": "五百<b>", "csrf_token": _csrf(client, "/till")})
    assert opened.status_code == 422
    assert re.search(r'<input id="float"[^>]*value="五百&lt;b&gt;"', opened.get_data(as_text=True))


def test_a_comma_typed_for_the_decimal_point_is_refused_not_read_as_a_hundred_times_the_cash(client):
    """`30,5` is ¥30.50 mistyped, never ¥305: a comma only groups thousands (`1,030.50`, `１，０３０`)."""
    order, _ = _sale(client)
    page = f"/till/shifts/{order.shift_id}"
    for typed in ("30,5", "30，50", "3,0", "1,03,0", "1030,"):
        response = client.post(f"{page}/close", data={"counted": typed, "csrf_token": _csrf(client, page)})
        assert response.status_code == 422 and "请输入清点的现金金额" in response.get_data(as_text=True), typed
    assert db.session.get(Shift, order.shift_id).closed_at is None
    client.post(f"{page}/close", data={"counted": "１，０３０.５０", "csrf_token": _csrf(client, page)})
    assert db.session.get(Shift, order.shift_id).counted_cash_fen == 103050
    assert client.post("/till/shifts", data={"float": "1,000", "csrf_token": _csrf(client, "/till")}).status_code == 302
    assert db.session.scalar(select(Shift).where(Shift.closed_at.is_(None))).float_fen == 100000


def test_the_cash_boxes_take_every_spelling_of_an_amount_the_storefront_takes_and_no_digit_sign(client):
    """A clerk types ¥200, ￥200, 200元 or ２，０００ as the storefront's price filter takes them; a superscript, a
    circled number or any sign NFKC folds to a digit is no amount (²00 is never ¥200), nor is 1_000, 1e3 or -0."""
    order, _ = _sale(client)
    page = f"/till/shifts/{order.shift_id}"
    for typed in ("²00", "①", "1_000", "1e3", "-0", "1 000", "9" * 100_000):
        response = client.post(f"{page}/close", data={"counted": typed, "csrf_token": _csrf(client, page)})
        assert response.status_code == 422 and "请输入清点的现金金额" in response.get_data(as_text=True), typed[:8]
    assert db.session.get(Shift, order.shift_id).closed_at is None
    closed = client.post(f"{page}/close", data={"counted": "￥2,000.5元", "csrf_token": _csrf(client, page)})
    assert closed.status_code == 302
    assert db.session.get(Shift, order.shift_id).counted_cash_fen == 200050
    for typed, fen in (("¥200", 20000), ("200元", 20000), ("¥ ٣٠٠ 元", 30000)):
        assert client.post("/till/shifts", data={"float": typed, "csrf_token": _csrf(client, "/till")}).status_code \
            == 302, typed
        opened = db.session.scalar(select(Shift).where(Shift.closed_at.is_(None)))
        assert opened.float_fen == fen
        client.post(f"/till/shifts/{opened.id}/close",
                    data={"counted": "0", "csrf_token": _csrf(client, f"/till/shifts/{opened.id}")})


def test_every_cash_box_holds_the_largest_amount_a_clerk_may_type_with_its_commas_and_sign(client):
    """The float, cash tendered and counted cash boxes let a clerk type any amount the shop takes, written as the till
    shows amounts (¥10,000,000,000.00): a box cut shorter than the bound would stop the largest count mid-number."""
    order, _ = _sale(client)
    largest = f"¥{MAX_AMOUNT_FEN // 100:,}.00"
    pages = {"counted": f"/till/shifts/{order.shift_id}", "tendered": "/till"}
    for box, page in pages.items():
        field = re.search(rf'<input id="{box}"[^>]*>', client.get(page).get_data(as_text=True)).group(0)
        assert int(re.search(r'maxlength="(\d+)"', field).group(1)) >= len(largest), field
    client.post(f"{pages['counted']}/close", data={"counted": "0", "csrf_token": _csrf(client, pages["counted"])})
    field = re.search(r'<input id="float"[^>]*>', client.get("/till").get_data(as_text=True)).group(0)
    assert int(re.search(r'maxlength="(\d+)"', field).group(1)) >= len(largest), field


def test_an_amount_carrying_an_invisible_character_is_read_as_the_amount_the_clerk_sees(client):
    """A zero-width space or word joiner pasted with an amount (a chat, a spreadsheet) shows nothing: `1,030.50` is
    read as the clerk sees it, as the sale screen reads the cash tendered, never refused as no amount."""
    order, _ = _sale(client)
    page = f"/till/shifts/{order.shift_id}"
    closed = client.post(f"{page}/close", data={"counted": "1,030.50\u200b", "csrf_token": _csrf(client, page)})
    assert closed.status_code == 302
    assert db.session.get(Shift, order.shift_id).counted_cash_fen == 103050
    opened = client.post("/till/shifts", data={"float": "\ufeff５００\u2060", "csrf_token": _csrf(client, "/till")})
    assert opened.status_code == 302
    assert db.session.scalar(select(Shift).where(Shift.closed_at.is_(None))).float_fen == 50000


def _refusal_codes(client) -> set[str]:
    """Every code the counter sale documents, but those the till's script answers otherwise (signed out: 401; wait and
    resend: 429)."""
    operation = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/stores/{store_id}/counter-sales"]
    return set().union(*(codes for status, codes in documented_codes(operation["post"]).items()
                         if status not in (401, 429)))


def test_every_refusal_of_a_counter_sale_the_api_documents_is_told_in_chinese_on_the_till(client):
    """The till's script shows a refused sale by its code (the API's message is English), from the one list of reasons
    the page carries: every code the counter sale documents has its Chinese reason."""
    refused = _refusal_codes(client)
    assert {"insufficient_stock", "order_total_too_large", "tendered_too_much", "unknown_item"} <= refused
    _signed_in(client, store_id=StoreFactory().id)
    root = re.search(r'<div id="till-root"[^>]*>', client.get("/till").get_data(as_text=True)).group(0)
    told = json.loads(html.unescape(re.search(r"data-reasons='([^']*)'", root).group(1)))
    assert sorted(refused - set(told)) == []
    assert all(re.search(r"[\u4e00-\u9fff]", reason) for reason in told.values())
    script = (Path(__file__).resolve().parents[2] / "web" / "till" / "static" / "till.js").read_text()
    assert "insufficient_stock" not in script  # no second list to drift from the first


def test_the_conflicts_page_tells_every_refusal_in_chinese_never_the_apis_english_message(client):
    """A sale conflict of any code the counter sale documents (or one it does not yet) is told in Chinese on the
    manager's conflicts page, as on the sale screen."""
    order, clerk = _sale(client)
    codes = sorted(_refusal_codes(client)) + ["some_new_code"]
    for code in codes:
        db.session.add(SaleConflict(store_id=order.store_id, shift_id=order.shift_id, code=code, created_by=clerk.id,
                                    message=f"English message for {code}.", sale={"lines": []}))
    db.session.commit()
    page = client.get("/till/conflicts").get_data(as_text=True)
    titles = re.findall(r'<h2 id="conflict-\d+-title">冲突 \d+：([^<]*)</h2>', page)
    assert len(titles) == len(codes)
    assert "English message" not in page
    assert all(re.search(r"[\u4e00-\u9fff]", title) for title in titles)
    assert "服务器拒绝了这笔销售（some_new_code）" in titles and "合计超过单笔销售的上限，请分几笔收款" in titles


def test_a_closed_shifts_sales_list_has_no_empty_action_column(client):
    """Once closed no sale of it can be refunded at the till: the 操作 column (empty on every row) is gone."""
    order, _ = _sale(client)
    assert '<th scope="col">操作</th>' in client.get(f"/till/shifts/{order.shift_id}").get_data(as_text=True)
    client.post(f"/till/shifts/{order.shift_id}/close",
                data={"counted": "30", "csrf_token": _csrf(client, f"/till/shifts/{order.shift_id}")})
    closed = client.get(f"/till/shifts/{order.shift_id}").get_data(as_text=True)
    assert f'href="/till/receipts/{order.id}"' in closed and "操作" not in closed


def test_opening_a_shift_a_second_tab_opened_says_the_float_typed_was_not_recorded(client):
    store = StoreFactory()
    _signed_in(client, store_id=store.id)
    token = _csrf(client, "/till")  # two tabs show the open-shift form
    assert client.post("/till/shifts", data={"float": "500", "csrf_token": token}).status_code == 302
    again = client.post("/till/shifts", data={"float": "800", "csrf_token": token}, follow_redirects=True)
    assert "本店已有进行中的班次（由其他窗口开班，备用金 ¥500.00），您输入的备用金 ¥800.00 未记录。" in again.get_data(
        as_text=True)
    assert [shift.float_fen for shift in db.session.scalars(select(Shift))] == [50000]


def test_opening_a_shift_another_tab_opened_and_closed_meanwhile_shows_the_form_again(racing_app):
    """The refusal names a shift another clerk opened, which is closed before the page reads it back: the clerk is
    told it was opened and closed meanwhile and shown the form again, the float typed recorded nowhere (no 500)."""
    import threading

    from sqlalchemy import event

    from shop.auth.models import User

    app, client = racing_app, racing_app.test_client()
    store = StoreFactory()
    _signed_in(client, store_id=store.id)
    token = _csrf(client, "/till")
    colleague = UserFactory(role="store_staff", store_id=store.id)
    other = ShiftFactory(store=store, opened_by=colleague.id, float_fen=50000, opened_at=utcnow())
    db.session.commit()
    ids, closed = (colleague.id, other.id), []

    def close_it() -> None:
        with app.app_context():
            stores.close_shift(actor=db.session.get(User, ids[0]), shift_id=ids[1], counted_cash_fen=50000)
            db.session.commit()
            closed.append(ids[1])

    def once_refused(_session) -> None:  # the page's rollback after `shift_already_open`: the colleague closes now
        if not closed:
            worker = threading.Thread(target=close_it)
            worker.start()
            worker.join(timeout=30)

    event.listen(db.session, "after_rollback", once_refused)
    try:
        response = client.post("/till/shifts", data={"float": "800", "csrf_token": token})
    finally:
        event.remove(db.session, "after_rollback", once_refused)

    page = response.get_data(as_text=True)
    assert closed == [ids[1]]
    assert response.status_code == 409, page
    assert "本店的班次已由其他窗口开班并已交班，您输入的备用金 ¥800.00 未记录。请清点钱箱后重新开班。" in page
    assert 'name="float"' in page
    db.session.expire_all()
    assert [(shift.float_fen, shift.closed_at is not None) for shift in db.session.scalars(select(Shift))] == [
        (50000, True)]


def test_a_deactivated_stores_till_says_in_chinese_that_it_opens_no_shift(client):
    store = StoreFactory()
    _signed_in(client, store_id=store.id)
    token = _csrf(client, "/till")
    store.active = False
    db.session.commit()
    response = client.post("/till/shifts", data={"float": "500", "csrf_token": token})
    assert response.status_code == 409 and "本店已停用，不能开班" in response.get_data(as_text=True)
    assert db.session.scalars(select(Shift)).all() == []


def test_a_deactivated_stores_till_with_its_shift_still_open_offers_no_sale_only_the_cash_up(client):
    """A clerk whose store an admin closed mid-shift is not shown the sale screen (every sale would be refused after
    the customer paid): the till says the store is closed and leads to closing the shift."""
    store = StoreFactory()
    shift = ShiftFactory(store=store)
    _signed_in(client, store_id=store.id)
    store.active = False
    db.session.commit()

    page = client.get("/till").get_data(as_text=True)

    assert "本店已停用" in page and f"/till/shifts/{shift.id}" in page
    assert 'id="pay-form"' not in page and 'id="till-data"' not in page


def test_closing_a_shift_a_stale_tab_closed_already_says_so_and_keeps_the_first_count(client):
    order, _ = _sale(client)
    token = _csrf(client, f"/till/shifts/{order.shift_id}")
    first = client.post(f"/till/shifts/{order.shift_id}/close", data={"counted": "30", "csrf_token": token})
    assert first.status_code == 302
    stale = client.post(f"/till/shifts/{order.shift_id}/close", data={"counted": "99", "csrf_token": token},
                        follow_redirects=True)
    assert "该班次已由其他窗口交班，您这次清点的 ¥99.00 未记录" in stale.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Shift, order.shift_id).counted_cash_fen == 3000


def _sale(client, *, units: int = 2) -> tuple[Order, object]:
    """A clerk signed in, a shift opened at their store, a cash sale of `units` units of one line in it."""
    location = LocationFactory(kind="store", region_code="440606")
    store = StoreFactory(location=location, location_id=location.id)
    product = ProductFactory(price_fen=1500)
    make_lot(product, location, quantity=5)
    clerk = _signed_in(client, store_id=store.id)
    shift = stores.start_shift(actor=clerk, store_id=store.id, float_fen=0)
    sale = counter.sell(actor=clerk, store_id=store.id, shift_id=shift.id,
                        lines=[{"sku": product.sku, "quantity": units}],
                        payment={"method": "cash", "tendered_fen": 1500 * units})
    db.session.commit()
    return db.session.get(Order, sale.id), clerk


def test_the_sale_screen_carries_the_stores_price_list_for_offline_sales(client):
    location, elsewhere = (LocationFactory(kind="store", region_code="440606") for _ in range(2))
    store = StoreFactory(location=location, location_id=location.id)
    on_sale, draft, other_store = ProductFactory(price_fen=1290), ProductFactory(status="draft"), ProductFactory()
    lots = [make_lot(on_sale, location, quantity=2), make_lot(on_sale, location, quantity=3)]
    make_lot(draft, location)
    make_lot(other_store, elsewhere)
    clerk = _signed_in(client, store_id=store.id)
    stores.start_shift(actor=clerk, store_id=store.id, float_fen=0)
    db.session.commit()
    page = client.get("/till").get_data(as_text=True)
    island = re.search(r'<script type="application/json" id="till-data">(.*?)</script>', page, re.S).group(1)
    data = json.loads(island)
    assert data["products"] == [{"sku": on_sale.sku, "name": on_sale.name, "price_fen": 1290, "available": 5,
                                 "trace_codes": [lot.trace_code for lot in lots]}]
    assert data["shift_id"] == db.session.scalar(select(Shift.id).where(Shift.store_id == store.id))
    repriced = client.get("/till/prices")  # what the till prices a sale with again after a price change
    assert repriced.status_code == 200 and repriced.headers["Cache-Control"] == "no-store"
    assert repriced.json["products"] == data["products"]


def test_the_till_offers_no_product_of_an_inactive_supplier_since_the_counter_does_not_sell_it(client):
    location = LocationFactory(kind="store", region_code="440606")
    store = StoreFactory(location=location, location_id=location.id)
    sold, withdrawn = ProductFactory(), ProductFactory(supplier=SupplierFactory(active=False))
    make_lot(sold, location)
    make_lot(withdrawn, location)
    clerk = _signed_in(client, store_id=store.id)
    shift = stores.start_shift(actor=clerk, store_id=store.id, float_fen=0)
    db.session.commit()
    offered = [product["sku"] for product in client.get("/till/prices").json["products"]]
    assert offered == [sold.sku]
    with pytest.raises(AppError) as refused:  # the counter does not sell it either: one rule
        counter.sell(actor=clerk, store_id=store.id, shift_id=shift.id,
                     lines=[{"sku": withdrawn.sku, "quantity": 1}], payment={"method": "card"})
    assert refused.value.code == "unknown_item"


def test_only_a_signed_in_clerk_gets_the_price_list_or_a_fresh_csrf_token(client, app):
    anonymous = app.test_client()
    assert anonymous.get("/till/prices").status_code == anonymous.get("/till/session").status_code == 302
    _signed_in(client, role="consumer")
    assert client.get("/till/prices").status_code == client.get("/till/session").status_code == 404
    clerk = app.test_client()
    _signed_in(clerk, store_id=StoreFactory().id)
    g.pop("csrf_token", None)  # (flask-wtf's per-request copy, kept by the test's one app context)
    token = clerk.get("/till/session").json["csrf_token"]
    assert clerk.post("/till/token", headers={"X-CSRFToken": token}).status_code == 200


def _refund_form(client, order) -> dict:
    """The hidden fields of a freshly rendered refund form: its CSRF token and its once-only key."""
    token = _csrf(client, f"/till/orders/{order.id}/refund")
    page = client.get(f"/till/orders/{order.id}/refund").get_data(as_text=True)
    return {"csrf_token": token, "form_key": re.search(r'name="form_key" value="([0-9a-f]{32})"', page).group(1)}


def test_a_receipt_of_a_lot_no_household_delivered_says_no_household_is_attributed(client):
    order, _ = _sale(client)  # its lot has a quantity and no household contributions
    assert order.impact == {"households": 0, "attributed_fen": 0, "counties": []}
    page = client.get(f"/till/receipts/{order.id}").get_data(as_text=True)
    receipt = re.search(r'<article class="receipt.*?</article>', page, re.S).group(0)
    assert "帮扶归属：没有归属任何建档立卡脱贫户。" in receipt and "不足" not in receipt


def test_a_refund_form_with_bad_or_too_many_units_refunds_nothing(client):
    order, _ = _sale(client)
    line_id = order.lines[0].id
    form = _refund_form(client, order)
    for typed in ("abc", "-1", "1.5"):
        response = client.post(f"/till/orders/{order.id}/refund",
                               data={f"quantity-{line_id}": typed, "reason": "试", **form})
        assert response.status_code == 422 and "请至少填写一行的退货数量" in response.get_data(as_text=True)
    too_many = client.post(f"/till/orders/{order.id}/refund",
                           data={f"quantity-{line_id}": "3", "reason": "试", **form})
    assert too_many.status_code == 409 and "退货数量超过了尚未退的数量" in too_many.get_data(as_text=True)
    assert db.session.get(Order, order.id).lines[0].refunded_quantity == 0


def test_a_cash_refund_the_drawer_cannot_pay_is_refused_on_the_form_and_refunds_nothing(client):
    order, _ = _sale(client)  # ¥30 in a drawer opened with no float
    earlier = paid_order(location_id=order.location_id, store=db.session.get(Store, order.store_id),
                         shift=ShiftFactory(store=db.session.get(Store, order.store_id), closed_at=utcnow()),
                         lines=[(db.session.get(Product, order.lines[0].product_id), 2)])
    admin = UserFactory(role="admin")
    db.session.commit()
    refunds.create_refund(actor=admin, order_id=earlier.id, reason="上一班的退货", lines=[  # ¥30 out of this drawer
        refunds.RefundRequest(line_id=earlier.lines[0].id, quantity=2)])
    db.session.commit()
    line_id = order.lines[0].id

    response = client.post(f"/till/orders/{order.id}/refund",
                           data={f"quantity-{line_id}": "1", "reason": "试", **_refund_form(client, order)})

    assert response.status_code == 409 and "钱箱里的现金" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Order, order.id).lines[0].refunded_quantity == 0


def test_till_forms_take_full_width_digits_and_refuse_other_digit_signs_without_failing(client):
    """A clerk's IME types ３ for 3: it counts; a superscript or circled digit (², ①) is no number: refused (422)."""
    order, _ = _sale(client, units=3)
    line_id = order.lines[0].id
    form = _refund_form(client, order)
    for typed in ("²", "①"):
        for name, value in ((f"quantity-{line_id}", typed), (f"quantity-{typed}", "1")):
            response = client.post(f"/till/orders/{order.id}/refund", data={name: value, "reason": "试", **form})
            assert response.status_code == 422 and "请至少填写一行的退货数量" in response.get_data(as_text=True)
        assert client.get(f"/till/pickups?handed={typed}").status_code == 200
    db.session.expire_all()
    assert db.session.get(Order, order.id).lines[0].refunded_quantity == 0
    done = client.post(f"/till/orders/{order.id}/refund", data={f"quantity-{line_id}": "１", "reason": "试", **form})
    assert done.status_code == 302
    db.session.expire_all()
    assert db.session.get(Order, order.id).lines[0].refunded_quantity == 1


def test_a_line_left_at_none_in_full_width_or_padded_digits_is_not_refunded_and_the_other_is(client):
    """The form says blank or 0 is none: ０ (an IME's full-width mode), 00 or an invisible character are none too, so
    only the line with units is refunded."""
    order, clerk = _sale(client)
    other = ProductFactory(price_fen=800)
    make_lot(other, db.session.get(Location, order.location_id), quantity=5)
    sale = counter.sell(actor=clerk, store_id=order.store_id, shift_id=order.shift_id,
                        lines=[{"sku": order.lines[0].sku, "quantity": 1}, {"sku": other.sku, "quantity": 4}],
                        payment={"method": "cash", "tendered_fen": 4700})
    db.session.commit()
    kept, refunded = (line.id for line in db.session.get(Order, sale.id).lines)
    for done, none in enumerate(("０", "00", "\u200b", " ０ "), start=1):
        response = client.post(f"/till/orders/{sale.id}/refund", data={
            f"quantity-{kept}": none, f"quantity-{refunded}": "1", "reason": "试", **_refund_form(client, sale)})
        assert response.status_code == 302, none
        db.session.expire_all()
        assert [line.refunded_quantity for line in db.session.get(Order, sale.id).lines] == [0, done], none


def test_a_refund_reason_holding_a_bank_card_number_is_refused_with_the_rule(client):
    order, _ = _sale(client)
    line_id = order.lines[0].id
    response = client.post(f"/till/orders/{order.id}/refund", data={
        f"quantity-{line_id}": "1", "reason": "退到卡 6222 0200 0000 0000 002", **_refund_form(client, order)})
    assert response.status_code == 422 and "请不要在这里填写身份证号或银行卡号" in response.get_data(as_text=True)
    assert db.session.get(Order, order.id).lines[0].refunded_quantity == 0


def test_a_refused_refund_form_comes_back_as_the_clerk_filled_it(client):
    """Units, back-to-shelf and reason stay as typed, so the clerk corrects the one wrong field, not all of them."""
    order, _ = _sale(client)
    line_id = order.lines[0].id
    typed = {f"quantity-{line_id}": "3", f"resellable-{line_id}": "on", "reason": "包装<破损>"}
    for sent in (typed, {**typed, f"quantity-{line_id}": "1", "reason": "退到卡 6222 0200 0000 0000 002"}):
        page = client.post(f"/till/orders/{order.id}/refund", data={**sent, **_refund_form(client, order)})
        assert page.status_code in (409, 422)
        html = page.get_data(as_text=True)
        quantity = re.search(rf'<input id="quantity-{line_id}"[^>]*>', html).group(0)
        shelf = re.search(rf'<input type="checkbox" name="resellable-{line_id}"[^>]*>', html).group(0)
        reason = re.search(r'<input id="reason"[^>]*>', html).group(0)
        assert f'value="{sent[f"quantity-{line_id}"]}"' in quantity and "checked" in shelf
        assert f'value="{escape(sent["reason"])}"' in reason
    assert db.session.get(Order, order.id).lines[0].refunded_quantity == 0


def test_the_shift_report_says_which_sales_were_partly_refunded(client):
    """Its refunds line counts the money given back: the sale it came from says so, not just 已完成."""
    order, _ = _sale(client)
    line_id = order.lines[0].id
    client.post(f"/till/orders/{order.id}/refund",
                data={f"quantity-{line_id}": "1", "reason": "包装破损", **_refund_form(client, order)})
    page = client.get(f"/till/shifts/{order.shift_id}").get_data(as_text=True)
    row = re.search(rf'<tr><td data-label="小票"><a href="/till/receipts/{order.id}">.*?</tr>', page, re.S).group(0)
    status = re.sub(r"<[^>]+>", "", re.search(r'data-label="状态">(.*?)</td>', row, re.S).group(1)).strip()
    assert status == "已完成 · 部分退款"


def test_a_late_cash_sale_is_shown_as_what_explains_the_surplus_of_the_closed_shift(client):
    """The drawer held the cash of a sale the till sent after the close: the report says the late sale explains it."""
    order, clerk = _sale(client)  # ¥30 in cash
    shift = db.session.get(Shift, order.shift_id)
    shift.opened_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    client.post(f"/till/shifts/{shift.id}/close",  # ¥30 and the ¥45 of a sale made offline
                data={"counted": "75", "csrf_token": _csrf(client, f"/till/shifts/{shift.id}")})
    counter.sell(actor=clerk, store_id=shift.store_id, shift_id=shift.id, client_created_at=utcnow() - timedelta(
        minutes=5), lines=[{"sku": order.lines[0].sku, "quantity": 3, "unit_price_fen": 1500}],
        payment={"method": "cash", "tendered_fen": 4500})
    db.session.commit()

    page = client.get(f"/till/shifts/{shift.id}").get_data(as_text=True)
    listed = client.get("/till/shifts").get_data(as_text=True)

    late = re.sub(r"<[^>]+>", "", re.search(r'<p data-late="cash"[^>]*>(.*?)</p>', page, re.S).group(1))
    assert " ".join(late.split()) == "现金差额 ¥45.00 中，交班后补录的离线销售 ¥45.00，其余差额 ¥0.00"
    row = re.search(rf'<tr data-shift="{shift.id}">.*?</tr>', listed, re.S).group(0)
    assert "补录后 ¥0.00" in re.search(r'data-label="现金差额">(.*?)</td>', row, re.S).group(1)


def test_a_clerk_refunds_part_of_a_sale_back_to_the_shelf_but_not_after_the_shift_closed(client):
    order, clerk = _sale(client)
    line_id = order.lines[0].id
    response = client.post(f"/till/orders/{order.id}/refund", data={
        f"quantity-{line_id}": "1", f"resellable-{line_id}": "on", "reason": "包装破损", **_refund_form(client, order)})
    assert response.status_code == 302 and response.location == f"/till/receipts/{order.id}"
    receipt = client.get(response.location).get_data(as_text=True)
    assert "已退 1" in receipt and '<span>合计</span><span class="num">¥30.00</span>' in receipt
    assert '<span>已退款</span><span class="num">-¥15.00</span>' in receipt  # and what the customer paid in the end
    assert '<span>实付</span><span class="num">¥15.00</span>' in receipt
    db.session.expire_all()
    assert db.session.get(Order, order.id).lines[0].refunded_quantity == 1
    report = stores.shift_report(actor=clerk, shift_id=order.shift_id)
    assert report.methods[0]["refunds_fen"] == 1500 and report.methods[0]["expected_fen"] == 1500
    opened_before = _refund_form(client, order)  # a refund form left open while the shift closed
    stores.close_shift(actor=clerk, shift_id=order.shift_id, counted_cash_fen=1500)
    db.session.commit()
    late = client.post(f"/till/orders/{order.id}/refund",
                       data={f"quantity-{line_id}": "1", "reason": "试", **opened_before})
    assert late.status_code == 403 and "只能退本班次" in late.get_data(as_text=True)
    assert db.session.get(Order, order.id).lines[0].refunded_quantity == 1
    assert verify_ledger()["ok"] is True


def test_a_sale_of_a_closed_shift_offers_no_refund_and_its_refund_page_says_why(client):
    order, clerk = _sale(client)
    refund_path = f"/till/orders/{order.id}/refund"
    assert refund_path in client.get(f"/till/receipts/{order.id}").get_data(as_text=True)
    assert 'name="reason"' in client.get(refund_path).get_data(as_text=True)
    stores.close_shift(actor=clerk, shift_id=order.shift_id, counted_cash_fen=3000)
    db.session.commit()
    receipt = client.get(f"/till/receipts/{order.id}").get_data(as_text=True)
    assert refund_path not in receipt
    page = client.get(refund_path).get_data(as_text=True)
    assert f"这笔销售所在的班次 {order.shift_id} 已交班，门店不能再退款，请联系管理员退款。" in page
    assert 'name="reason"' not in page and "确认退款" not in page


def test_a_refund_form_sent_twice_refunds_once_and_a_form_without_its_key_refunds_nothing(client):
    order, _ = _sale(client)
    line_id = order.lines[0].id
    form = {f"quantity-{line_id}": "1", "reason": "顾客退货", **_refund_form(client, order)}
    first, again = (client.post(f"/till/orders/{order.id}/refund", data=form) for _ in range(2))
    assert first.location == again.location == f"/till/receipts/{order.id}"
    stale = client.post(f"/till/orders/{order.id}/refund", data={**form, "form_key": "forged"})
    assert stale.status_code == 400 and "表单已过期" in stale.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Order, order.id).lines[0].refunded_quantity == 1  # two units sold, one refunded once
    assert verify_ledger()["ok"] is True


def test_another_stores_clerk_finds_none_of_this_stores_shifts_receipts_or_refunds(client, app):
    order, _ = _sale(client)
    line_id, shift_id = order.lines[0].id, order.shift_id
    conflict_id = _refused_offline_sale(client, order)
    warehouse, product = LocationFactory(), ProductFactory()
    lot = make_lot(product, warehouse, quantity=2)
    destination = db.session.get(Location, db.session.get(Store, order.store_id).location_id)
    transfer = stores.create_transfer(actor=UserFactory(role="admin"), from_location=warehouse.code,
                                      to_location=destination.code, lines=[{"sku": product.sku, "quantity": 2}])
    db.session.commit()
    stranger = app.test_client()
    _signed_in(stranger, store_id=StoreFactory().id)
    token = _csrf(stranger, "/till")
    tried = {  # by route
        ("GET", "/till/shifts/<shift_id>"): stranger.get(f"/till/shifts/{shift_id}"),
        ("POST", "/till/shifts/<shift_id>/close"): stranger.post(f"/till/shifts/{shift_id}/close",
                                                                data={"counted": "0", "csrf_token": token}),
        ("GET", "/till/receipts/<order_id>"): stranger.get(f"/till/receipts/{order.id}"),
        ("POST", "/till/receipts/<order_id>/print"): stranger.post(f"/till/receipts/{order.id}/print",
                                                                   data={"csrf_token": token}),
        ("GET", "/till/orders/<order_id>/refund"): stranger.get(f"/till/orders/{order.id}/refund"),
        ("POST", "/till/orders/<order_id>/refund"): stranger.post(
            f"/till/orders/{order.id}/refund", data={f"quantity-{line_id}": "1", "reason": "试", "csrf_token": token}),
        ("POST", "/till/conflicts/<conflict_id>/resolve"): stranger.post(
            f"/till/conflicts/{conflict_id}/resolve", data={"note": "试", "csrf_token": token}),
        ("POST", "/till/transfers/<transfer_id>/receive"): stranger.post(
            f"/till/transfers/{transfer.id}/receive", data={f"received-{lot.id}": "2", "csrf_token": token}),
    }
    for route, response in tried.items():
        assert response.status_code == 404, route
        assert order.lines[0].name not in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Shift, shift_id).closed_at is None
    assert db.session.get(Order, order.id).lines[0].refunded_quantity == 0
    assert db.session.get(Order, order.id).receipt_prints == 0
    assert db.session.get(SaleConflict, conflict_id).resolved_at is None
    assert f"冲突 {conflict_id}" not in stranger.get("/till/conflicts").get_data(as_text=True)
    assert db.session.get(StockTransfer, transfer.id).status == "dispatched"
    assert lot.trace_code not in stranger.get("/till/transfers").get_data(as_text=True)
    assert set(tried) == {  # every till page naming a shift or an order
        (method, rule.rule.replace("<int:", "<")) for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("till.") and rule.arguments - {"filename"}
        for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_wrong_pickup_codes_are_limited_per_clerk_across_the_page_and_the_api(client):
    store = StoreFactory()
    _signed_in(client, store_id=store.id)
    token = _csrf(client, "/till/pickups")
    access = client.post("/till/token", headers={"X-CSRFToken": token}).json["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    for attempt in range(10):
        if attempt % 2:
            wrong = client.post(f"/api/v1/stores/{store.id}/pickups", json={"pickup_code": "123456"}, headers=bearer)
            assert wrong.status_code == 409
        else:
            wrong = client.post("/till/pickups", data={"pickup_code": "123456", "csrf_token": token})
            assert wrong.status_code == 409 and "本店没有使用此取货码的待取订单" in wrong.get_data(as_text=True)
    assert client.post("/till/pickups", data={"pickup_code": "123456", "csrf_token": token}).status_code == 429
    api = client.post(f"/api/v1/stores/{store.id}/pickups", json={"pickup_code": "123456"}, headers=bearer)
    assert api.status_code == 429  # one count for the clerk, whichever door the codes came through
    malformed = client.application.test_client()
    _signed_in(malformed, store_id=store.id)
    response = malformed.post("/till/pickups", data={"pickup_code": "12ab", "csrf_token": _csrf(malformed, "/till")})
    assert response.status_code == 422 and "取货码是 6 位数字" in response.get_data(as_text=True)


def _refused_offline_sale(client, order) -> int:
    """An offline sale of `order`'s product made 73 hours ago, sent by the clerk's till: its recorded conflict's id."""
    access = client.post("/till/token", headers={"X-CSRFToken": _csrf(client, "/till")}).json["access_token"]
    made_at = (datetime.now(UTC) - timedelta(hours=73)).isoformat()
    response = client.post(f"/api/v1/stores/{order.store_id}/counter-sales", json={
        "lines": [{"sku": order.lines[0].sku, "quantity": 1, "unit_price_fen": 1500}], "payment": {"method": "card"},
        "shift_id": order.shift_id, "client_created_at": made_at},
        headers={"Authorization": f"Bearer {access}", "Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 409 and response.json["error"]["code"] == "sale_too_old"
    return response.json["error"]["details"]["conflict_id"]


def test_a_clerk_sees_the_stores_open_sale_conflicts_and_resolves_one_with_a_note_on_the_server(client):
    order, clerk = _sale(client)
    conflict_id = _refused_offline_sale(client, order)
    home = client.get("/till").get_data(as_text=True)
    assert 'href="/till/conflicts"' in home and "本店有 1 笔被拒绝的销售待处理" in home
    page = client.get("/till/conflicts").get_data(as_text=True)
    assert f"冲突 {conflict_id}" in page and "离线时间超过 72 小时" in page
    assert order.lines[0].name in page and order.lines[0].sku in page and "¥15.00" in page
    action = f"/till/conflicts/{conflict_id}/resolve"
    assert f'action="{action}"' in page

    assert client.post(action, data={"note": "已重新收款"}).status_code == 400  # no CSRF token: refused
    blank = client.post(action, data={"note": " ", "csrf_token": _csrf(client, "/till/conflicts")})
    assert blank.status_code == 422 and "请写明处理方式" in blank.get_data(as_text=True)
    conflict = db.session.get(SaleConflict, conflict_id)
    assert conflict.resolved_at is None
    done = client.post(action, data={"note": "已与顾客核对，重新收款", "csrf_token": _csrf(client, "/till/conflicts")},
                       follow_redirects=True)
    assert done.status_code == 200 and f"冲突 {conflict_id} 已处理" in done.get_data(as_text=True)
    db.session.expire_all()
    conflict = db.session.get(SaleConflict, conflict_id)
    assert conflict.resolved_at is not None and conflict.resolved_by == clerk.id
    assert conflict.resolution_note == "已与顾客核对，重新收款"
    assert f"冲突 {conflict_id}" not in client.get("/till/conflicts").get_data(as_text=True)
    again = client.post(action, data={"note": "再次", "csrf_token": _csrf(client, "/till/conflicts")},
                        follow_redirects=True)
    assert f"冲突 {conflict_id} 已由他人处理" in again.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(SaleConflict, conflict_id).resolution_note == "已与顾客核对，重新收款"


def test_a_conflict_note_holding_a_card_number_is_refused_with_the_rule_and_kept_in_the_form(client):
    order, _ = _sale(client)
    conflict_id = _refused_offline_sale(client, order)
    note = "顾客卡号 6222 0202 0011 2345 678"
    response = client.post(f"/till/conflicts/{conflict_id}/resolve",
                           data={"note": note, "csrf_token": _csrf(client, "/till/conflicts")})
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "请不要在这里填写身份证号或银行卡号" in page
    assert f'value="{note}"' in page
    assert db.session.get(SaleConflict, conflict_id).resolved_at is None


def test_a_conflict_note_holding_a_control_character_is_told_to_remove_it_not_its_length(client):
    order, _ = _sale(client)
    conflict_id = _refused_offline_sale(client, order)
    response = client.post(f"/till/conflicts/{conflict_id}/resolve",
                           data={"note": "已重新\x07收款", "csrf_token": _csrf(client, "/till/conflicts")})
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "控制字符" in page and "不超过 200 个字" not in page
    assert db.session.get(SaleConflict, conflict_id).resolved_at is None


def test_an_overlong_till_field_is_refused_never_cut_short(client):
    order, _ = _sale(client)
    conflict_id = _refused_offline_sale(client, order)
    response = client.post(f"/till/conflicts/{conflict_id}/resolve",
                           data={"note": "a" * 201, "csrf_token": _csrf(client, "/till/conflicts")})
    assert response.status_code == 422 and "不超过 200 个字" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(SaleConflict, conflict_id).resolved_at is None
    line_id = order.lines[0].id
    refund = client.post(f"/till/orders/{order.id}/refund", data={
        f"quantity-{line_id}": "1", "reason": "b" * 201, **_refund_form(client, order)})
    assert refund.status_code == 422
    assert db.session.get(Order, order.id).lines[0].refunded_quantity == 0


def test_the_conflicts_page_is_for_store_staff_only(client, app):
    _signed_in(client, role="admin")
    assert client.get("/till/conflicts").status_code == 404  # an admin is no till user
    anonymous = app.test_client()
    assert anonymous.get("/till/conflicts").status_code == 302


def _transfer_to_a_clerks_store(client) -> tuple[object, list, object]:
    """A clerk signed in; a transfer of 7 units (lots of 5 and 2, FIFO) on its way from a warehouse to their store."""
    store, warehouse, product = StoreFactory(), LocationFactory(), ProductFactory()
    lots = [make_lot(product, warehouse, quantity=5, harvested_on=date(2026, 8, 1)),
            make_lot(product, warehouse, quantity=4, harvested_on=date(2026, 9, 1))]
    admin = UserFactory(role="admin")
    transfer = stores.create_transfer(actor=admin, from_location=warehouse.code,
                                      to_location=db.session.get(Location, store.location_id).code,
                                      lines=[{"sku": product.sku, "quantity": 7}])
    db.session.commit()
    return transfer, lots, _signed_in(client, store_id=store.id)


def test_a_clerk_receives_a_transfer_per_lot_on_the_till_with_a_note_when_short(client):
    transfer, (first, second), clerk = _transfer_to_a_clerks_store(client)
    page = client.get("/till/transfers").get_data(as_text=True)
    assert 'href="/till/transfers"' in client.get("/till").get_data(as_text=True)
    for lot in (first, second):
        assert lot.lot_code in page and lot.trace_code in page and f'name="received-{lot.id}"' in page
    assert first.product.sku in page and first.product.name in page
    action = f"/till/transfers/{transfer.id}/receive"
    assert f'action="{action}"' in page

    def receive(**form):
        return client.post(action, data={**form, "csrf_token": _csrf(client, "/till/transfers")})

    counts = {f"received-{first.id}": "5", f"received-{second.id}": "1"}
    assert client.post(action, data=counts).status_code == 400  # no CSRF token: refused
    unexplained = receive(**counts)
    too_many = receive(**{f"received-{first.id}": "6", f"received-{second.id}": "2"}, note="多了")
    missing_lot = receive(**{f"received-{first.id}": "5"}, note="少一批")
    with_a_card = receive(**counts, note="卡号 6222 0202 0011 2345 678")
    assert unexplained.status_code == 422 and "请写明短缺原因" in unexplained.get_data(as_text=True)
    assert 'value="1"' in unexplained.get_data(as_text=True)  # the counts as typed
    for refused in (too_many, missing_lot):
        assert refused.status_code == 422 and "请为每个批次填写实收数量" in refused.get_data(as_text=True)
    assert with_a_card.status_code == 422 and "请不要在这里填写身份证号或银行卡号" in with_a_card.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(StockTransfer, transfer.id).status == "dispatched"

    done = client.post(action, data={**counts, "note": "一袋破损", "csrf_token": _csrf(client, "/till/transfers")},
                       follow_redirects=True)
    assert done.status_code == 200 and f"调拨单 {transfer.id} 已收货" in done.get_data(as_text=True)
    assert "没有待收货的调拨单" in done.get_data(as_text=True)
    db.session.expire_all()
    received = db.session.get(StockTransfer, transfer.id)
    assert (received.status, received.received_by, received.receipt_note) == ("received", clerk.id, "一袋破损")
    assert [(line.lot_id, line.received) for line in received.lines] == [(first.id, 5), (second.id, 1)]
    assert inventory.available(location_id=received.to_location_id, product_id=first.product_id) == 6
    again = client.post(action, data={**counts, "note": "再次", "csrf_token": _csrf(client, "/till/transfers")},
                        follow_redirects=True)
    assert f"调拨单 {transfer.id} 已由其他窗口收货" in again.get_data(as_text=True)
    assert inventory.available(location_id=received.to_location_id, product_id=first.product_id) == 6


def test_a_transfer_received_in_full_with_a_note_box_holding_only_an_invisible_character_is_received(client):
    """A note box left blank but for a pasted zero-width space is no note, as one of spaces is: nothing to explain."""
    transfer, (first, second), _ = _transfer_to_a_clerks_store(client)
    done = client.post(f"/till/transfers/{transfer.id}/receive", data={
        f"received-{first.id}": "5", f"received-{second.id}": "2", "note": "\u200b ",
        "csrf_token": _csrf(client, "/till/transfers")})
    assert done.status_code == 302
    db.session.expire_all()
    received = db.session.get(StockTransfer, transfer.id)
    assert (received.status, received.receipt_note) == ("received", None)


def test_a_transfer_counted_on_the_till_and_cancelled_meanwhile_or_typed_with_odd_digits_is_not_received(client):
    """A clerk's form for a transfer an admin cancelled meanwhile says so (no error page); ² is no count (422)."""
    transfer, (first, second), _ = _transfer_to_a_clerks_store(client)
    action = f"/till/transfers/{transfer.id}/receive"
    odd = client.post(action, data={f"received-{first.id}": "²", f"received-{second.id}": "2",
                                    "csrf_token": _csrf(client, "/till/transfers")})
    assert odd.status_code == 422 and "请为每个批次填写实收数量" in odd.get_data(as_text=True)
    token = _csrf(client, "/till/transfers")
    stores.cancel_transfer(actor=UserFactory(role="admin"), transfer_id=transfer.id, reason="送错门店")
    db.session.commit()
    response = client.post(action, data={f"received-{first.id}": "5", f"received-{second.id}": "2",
                                         "csrf_token": token}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and f"调拨单 {transfer.id} 已被取消" in page and "送错门店" in page
    db.session.expire_all()
    assert db.session.get(StockTransfer, transfer.id).status == "cancelled"


def test_a_cancel_reason_written_before_reasons_refused_phone_numbers_is_told_to_the_clerk_masked(client):
    """The till tells a clerk why a transfer they counted was cancelled as the API lists the reason: a phone or ID
    number a reason written before the rule holds is masked (it stays in the row, never on screen)."""
    transfer, (first, second), _ = _transfer_to_a_clerks_store(client)
    token = _csrf(client, "/till/transfers")
    stores.cancel_transfer(actor=UserFactory(role="admin"), transfer_id=transfer.id, reason="送错门店")
    db.session.commit()
    db.session.execute(update(StockTransfer).where(StockTransfer.id == transfer.id)
                       .values(cancel_reason="送错门店，司机电话 139 1234 5678"))
    db.session.commit()

    response = client.post(f"/till/transfers/{transfer.id}/receive", follow_redirects=True, data={
        f"received-{first.id}": "5", f"received-{second.id}": "2", "csrf_token": token})

    page = response.get_data(as_text=True)
    assert response.status_code == 200 and f"调拨单 {transfer.id} 已被取消" in page and "送错门店" in page
    assert "139 1234 5678" not in page
    assert mask_personal_numbers("送错门店，司机电话 139 1234 5678") in page  # as the API lists it (MaskedText)


def test_the_transfers_count_boxes_keep_full_width_digits_and_are_read_as_the_clerk_typed_them(client):
    """The transfer's received counts are text boxes with the numeric keyboard (a number box may drop or rewrite what
    an IME commits): ５ received is 5."""
    transfer, (first, second), _ = _transfer_to_a_clerks_store(client)
    page = client.get("/till/transfers").get_data(as_text=True)
    for lot in (first, second):
        box = re.search(rf'<input id="received-{transfer.id}-{lot.id}"[^>]*>', page).group(0)
        assert 'type="text" inputmode="numeric"' in box and "required" in box
    done = client.post(f"/till/transfers/{transfer.id}/receive", data={
        f"received-{first.id}": "５", f"received-{second.id}": "２", "csrf_token": _csrf(client, "/till/transfers")})
    assert done.status_code == 302
    db.session.expire_all()
    assert [line.received for line in db.session.get(StockTransfer, transfer.id).lines] == [5, 2]


def test_the_refund_forms_unit_boxes_keep_full_width_digits(client):
    """The refund's units are the same text box: １ refunded is 1."""
    order, _ = _sale(client)
    line_id = order.lines[0].id
    form = _refund_form(client, order)
    box = re.search(rf'<input id="quantity-{line_id}"[^>]*>', client.get(f"/till/orders/{order.id}/refund")
                    .get_data(as_text=True)).group(0)
    assert 'type="text" inputmode="numeric"' in box and 'value="0"' in box
    refunded = client.post(f"/till/orders/{order.id}/refund",
                           data={f"quantity-{line_id}": "１", "reason": "试", **form})
    assert refunded.status_code == 302
    db.session.expire_all()
    assert db.session.get(Order, order.id).lines[0].refunded_quantity == 1


def test_another_stores_clerk_neither_sees_nor_receives_a_transfer_on_the_till(client, app):
    transfer, (first, second), _ = _transfer_to_a_clerks_store(client)
    other = StoreFactory()
    db.session.commit()
    outsider = app.test_client()
    _signed_in(outsider, store_id=other.id)

    assert first.trace_code not in outsider.get("/till/transfers").get_data(as_text=True)
    response = outsider.post(f"/till/transfers/{transfer.id}/receive", data={
        f"received-{first.id}": "5", f"received-{second.id}": "2", "csrf_token": _csrf(outsider, "/till/transfers")})
    assert response.status_code == 404
    db.session.expire_all()
    assert db.session.get(StockTransfer, transfer.id).status == "dispatched"
    admin = app.test_client()
    _signed_in(admin, role="admin")
    assert admin.get("/till/transfers").status_code == 404  # an admin is no till user


def test_a_clerk_reads_the_stores_past_shifts_newest_first_with_each_cash_up_a_page_at_a_time(client, app):
    order, clerk = _sale(client)  # ¥30.00 in cash, no float
    stores.close_shift(actor=clerk, shift_id=order.shift_id, counted_cash_fen=2500)
    for _ in range(20):  # 20 more shifts: the first page holds 20 of the 21
        stores.close_shift(actor=clerk, shift_id=stores.start_shift(actor=clerk, store_id=clerk.store_id,
                                                                     float_fen=10000).id, counted_cash_fen=10000)
    current = stores.start_shift(actor=clerk, store_id=clerk.store_id, float_fen=20000)
    db.session.commit()

    first = client.get("/till/shifts").get_data(as_text=True)

    shown = [int(number) for number in re.findall(r'data-shift="(\d+)"', first)]
    assert shown[0] == current.id and len(shown) == 20 and shown == sorted(shown, reverse=True)
    assert order.shift_id not in shown and "进行中" in first
    more = re.search(r'href="([^"]+)">更早的班次', first).group(1).replace("&amp;", "&")
    older = client.get(more).get_data(as_text=True)
    row = re.search(rf'<tr data-shift="{order.shift_id}">(.*?)</tr>', older, re.S).group(1)
    assert f'href="/till/shifts/{order.shift_id}"' in row
    assert [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r'class="num[^"]*"[^>]*>(.*?)</td>', row)] == [
        "¥0.00", "1", "¥30.00", "¥25.00", "-¥5.00"]
    assert "更早的班次" not in older
    forged = client.get("/till/shifts?cursor=eyJpZCI6MX0")
    assert forged.status_code == 400 and "翻页链接无效，请回到第一页。" in forged.get_data(as_text=True)
    stranger = app.test_client()
    _signed_in(stranger, store_id=StoreFactory().id)
    assert "data-shift" not in stranger.get("/till/shifts").get_data(as_text=True)


def test_every_pickup_order_waiting_at_the_store_is_listed_a_page_at_a_time_none_silently_left_off(client):
    location = LocationFactory(kind="store", region_code="440606")
    store = StoreFactory(location=location, location_id=location.id)
    product = ProductFactory(price_fen=1000)
    make_lot(product, location, quantity=60)
    buyer = UserFactory(role="consumer")
    waiting = []
    for number in range(51):  # one more than the page shows at once
        order = paid_order(location_id=location.id, lines=[(product, 1)], channel="pickup", store=store,
                           consumer=buyer, payment_method="stripe", status="paid")
        order.pickup_code = f"{100000 + number}"
        waiting.append(order.id)
    _signed_in(client, store_id=store.id)
    db.session.commit()

    first = client.get("/till/pickups").get_data(as_text=True)
    more = re.search(r'href="([^"]+)">更多待取订单', first)
    assert more is not None, "the 51st order waiting is neither listed nor said to exist"
    rest = client.get(html.unescape(more.group(1))).get_data(as_text=True)
    listed = [int(number) for page in (first, rest) for number in re.findall(r'<tr data-order="(\d+)">', page)]
    assert listed == waiting and "更多待取订单" not in rest


def test_every_sale_of_a_busy_shift_is_listed_on_its_page_a_page_at_a_time_so_each_can_be_refunded(client):
    location = LocationFactory(kind="store", region_code="440606")
    store = StoreFactory(location=location, location_id=location.id)
    product = ProductFactory(price_fen=1000)
    make_lot(product, location, quantity=120)
    clerk = _signed_in(client, store_id=store.id)
    shift = stores.start_shift(actor=clerk, store_id=store.id, float_fen=0)
    sales = [paid_order(location_id=location.id, lines=[(product, 1)], store=store, shift=shift).id
             for _ in range(101)]  # more than the page lists at once
    db.session.commit()

    first = client.get(f"/till/shifts/{shift.id}").get_data(as_text=True)
    more = re.search(r'href="([^"]+)">更早的销售', first)
    assert more is not None, "the shift's first sale is neither listed nor said to exist"
    rest = client.get(html.unescape(more.group(1))).get_data(as_text=True)
    listed = [int(number) for page in (first, rest) for number in re.findall(r'href="/till/receipts/(\d+)"', page)]
    assert listed == sales[::-1] and "更早的销售" not in rest
    assert f'href="/till/orders/{sales[0]}/refund"' in rest


def test_the_conflicts_page_says_the_price_in_force_and_the_units_left_beside_each_refused_line(client):
    """To re-ring or refund a refused offline sale the manager needs what the server found: the price in force when
    the sale was made beside each line priced otherwise, and the units the store had beside each line short of stock."""
    world = make_counter()
    _signed_in(client, store_id=world.store.id)
    access = client.post("/till/token", headers={"X-CSRFToken": _csrf(client, "/till")}).json["access_token"]
    made_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for lines in ([{"sku": world.rice.sku, "quantity": 1, "unit_price_fen": 1800},
                   {"sku": world.tea.sku, "quantity": 1, "unit_price_fen": 3500}],
                  [{"sku": world.rice.sku, "quantity": 1, "unit_price_fen": 2000},
                   {"trace_code": world.tea_lot.trace_code, "quantity": 9, "unit_price_fen": 3500}]):
        client.post(f"/api/v1/stores/{world.store.id}/counter-sales", json={
            "lines": lines, "payment": {"method": "card"}, "shift_id": world.shift.id, "client_created_at": made_at},
            headers={"Authorization": f"Bearer {access}", "Idempotency-Key": str(uuid.uuid4())})
    page = client.get("/till/conflicts").get_data(as_text=True)
    price, stock = re.findall(r'<ul class="conflict-lines">(.*?)</ul>', page, re.S)
    rice, tea = re.findall(r"<li>(.*?)</li>", price, re.S)
    assert "当时售价 <span class=\"num\">¥20.00</span>" in rice and "当时售价" not in tea
    rice, tea = re.findall(r"<li>(.*?)</li>", stock, re.S)
    assert "本店可售" not in rice and "本店可售 4" in tea


def test_a_partly_refunded_pickup_order_is_handed_over_with_only_the_units_still_sold(client):
    """Units refunded before collection (a resellable one is back on the shelf) are not the customer's any more: the
    waiting list and the hand-over say the units to hand over, and that a line refunded in full is not handed over."""
    world = make_counter()
    order = partly_refunded_pickup_order(world, pickup_code="246810")
    _signed_in(client, store_id=world.store.id)

    row = re.search(rf'<tr data-order="{order.id}">(.*?)</tr>', client.get("/till/pickups").get_data(as_text=True),
                    re.S).group(1)
    handed = client.post("/till/pickups", data={"pickup_code": "246810", "csrf_token": _csrf(client, "/till/pickups")},
                         follow_redirects=True).get_data(as_text=True)

    for shown in (row, re.search(r'<div class="ok" role="status">(.*?)</div>', handed, re.S).group(1)):
        assert f"{world.rice.name} × 2（已退 1）" in shown and f"{world.rice.name} × 3" not in shown
        assert f"{world.tea.name}：已全部退款，不交货" in shown and f"{world.tea.name} × 1" not in shown
    assert "¥40.00" in row  # the two bags of rice still sold, not the ¥95.00 paid


def test_a_clerk_stopped_after_too_many_wrong_pickup_codes_stays_on_the_till_told_how_long_to_wait(client):
    """The eleventh wrong code in a minute is refused (429) on the till's own pickup page, as the sign-in page does
    for passwords: with the till's menu and the orders waiting, saying how many seconds to wait, which Retry-After
    says too; not the site's bare error page, whose only link leads to the shop's home."""
    world = make_counter()
    order = paid_pickup_order(world.store, world.rice, pickup_code="135790")
    _signed_in(client, store_id=world.store.id)
    token = _csrf(client, "/till/pickups")
    for n in range(10):
        assert client.post("/till/pickups", data={"pickup_code": f"{n:06d}", "csrf_token": token}).status_code == 409

    refused = client.post("/till/pickups", data={"pickup_code": "135790", "csrf_token": token})

    page = refused.get_data(as_text=True)
    wait = int(refused.headers["Retry-After"])
    assert refused.status_code == 429 and 1 <= wait <= 60
    assert f"取货码错误次数过多，请 {wait} 秒后再试。" in page
    assert 'href="/till/pickups"' in page and f'<tr data-order="{order.id}">' in page  # the till, its waiting list
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "paid"  # the right code, refused unchecked, handed nothing over


def test_a_shift_left_open_overnight_lists_the_day_of_each_sale_not_made_on_the_day_it_opened(client):
    """A shift opened yesterday and still open: today's sales carry their date in its list (two sales at 09:15 on
    two days must not read alike); those of the day it opened keep the short time."""
    world = make_counter()
    world.shift.opened_at = utcnow() - timedelta(hours=30)
    clerk = _signed_in(client, store_id=world.store.id)
    db.session.commit()
    sale = counter.sell(actor=clerk, store_id=world.store.id, shift_id=world.shift.id,
                        lines=[{"sku": world.rice.sku, "quantity": 1}], payment={"method": "card"})
    db.session.commit()

    page = client.get(f"/till/shifts/{world.shift.id}").get_data(as_text=True)

    row = re.search(rf'<a href="/till/receipts/{sale.id}">{sale.id}</a></td>(.*?)</tr>', page, re.S).group(1)
    assert f"<time>{local_time(sale.paid_at)}</time>" in row


def test_a_clerk_stopped_for_the_hour_after_too_many_wrong_pickup_codes_is_told_the_wait_in_minutes(client,
                                                                                                      monkeypatch):
    """Once a clerk has typed 30 wrong codes in an hour (10 a minute), the till says how many minutes to wait
    (Retry-After in seconds, as the API), not some three thousand seconds."""
    world = make_counter()
    paid_pickup_order(world.store, world.rice, pickup_code="135790")
    _signed_in(client, store_id=world.store.id)
    access = client.post("/till/token", headers={"X-CSRFToken": _csrf(client, "/till")}).json["access_token"]
    headers = {"Authorization": f"Bearer {access}"}
    clock = {"offset": 0.0}
    monkeypatch.setattr(memory, "time", SimpleNamespace(time=lambda: time.time() + clock["offset"]))
    for n in range(30):
        clock["offset"] = 61.0 * (n // 10)
        assert client.post(f"/api/v1/stores/{world.store.id}/pickups", json={"pickup_code": f"{n:06d}"},
                           headers=headers).status_code == 409
    clock["offset"] += 61  # past the minute's limit: the hour's holds

    refused = client.post("/till/pickups", data={"pickup_code": "135790", "csrf_token": _csrf(client, "/till/pickups")})

    wait = int(refused.headers["Retry-After"])
    assert refused.status_code == 429 and 3540 < wait <= 3600
    assert f"取货码错误次数过多，请 {-(-wait // 60)} 分钟后再试。" in refused.get_data(as_text=True)


def test_a_receipt_printed_again_says_it_is_a_reprint_with_its_number_and_time(client, login):
    """The first print of a receipt is the original; each later one says 重打印 with its number and the time it was
    printed, so a copy cannot pass for a second original; the API's reprint says it is one, and how often printed."""
    order, clerk = _sale(client)
    url = f"/till/receipts/{order.id}/print"

    first = client.post(url, data={"csrf_token": _csrf(client, f"/till/receipts/{order.id}")})
    before = local_time(utcnow())
    second = client.post(url, data={"csrf_token": _csrf(client, f"/till/receipts/{order.id}")})
    after = local_time(utcnow())

    original = re.search(r'<article class="receipt.*?</article>', first.get_data(as_text=True), re.S).group(0)
    copy = re.search(r'<article class="receipt.*?</article>', second.get_data(as_text=True), re.S).group(0)
    assert first.status_code == second.status_code == 200
    assert "重打印" not in original
    assert "重打印（第 2 次打印）" in copy
    assert f"<time>{before}</time>" in copy or f"<time>{after}</time>" in copy
    api = client.get(f"/api/v1/orders/{order.id}/receipt", headers=login("admin")).json
    assert (api["reprint"], api["prints"]) == (True, 2)


def test_a_closed_stores_till_refunds_nothing_and_resolves_nothing_and_says_why_on_the_form(client):
    """A store closed with its shift left open: its clerk's refund and conflict resolution are refused on their forms,
    in Chinese (not "refresh and retry"), and nothing is changed (an admin settles them instead)."""
    order, clerk = _sale(client)
    conflict = SaleConflict(store_id=order.store_id, shift_id=order.shift_id, code="sale_too_old", message="too old",
                            sale={"lines": []}, created_by=clerk.id)
    db.session.add(conflict)
    admin = UserFactory(role="admin")
    db.session.flush()
    stores.update_store(store_id=order.store_id, actor=admin, changes=stores.StoreChanges(active=False))
    db.session.commit()

    response = client.post(f"/till/orders/{order.id}/refund",
                           data={f"quantity-{order.lines[0].id}": "1", "reason": "试", **_refund_form(client, order)})

    assert response.status_code == 409 and "本店已停用" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Order, order.id).lines[0].refunded_quantity == 0
    resolved = client.post(f"/till/conflicts/{conflict.id}/resolve",
                           data={"note": "已重新收款", "csrf_token": _csrf(client, "/till/conflicts")})
    assert resolved.status_code == 409 and "本店已停用" in resolved.get_data(as_text=True)
    assert db.session.get(SaleConflict, conflict.id).resolved_at is None
