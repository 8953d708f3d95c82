"""Statements by posting time: entries and balances equal the ledger's postings; a co-op sees only its own
account of a household (another co-op's household is a 404); the printable page shows the entries."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from unittest.mock import patch
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from orders import outbox
from orders.ledger import accounts, chain
from orders.ledger.models import LedgerAccount, Posting
from orders.models import OrderLine
from shop.db import db, utcnow
from suppliers.identifiers import mask_id_number
from tests.orders.factories import StoreFactory
from tests.orders.ledger.payout_factories import built_batch, days_ago, earn, payee_household, today
from tests.orders.ledger.test_attribution import _counter_and_delivery_for, make_world, pay_pickup
from tests.orders.payments.conftest import user_with_token
from tests.suppliers.factories import HouseholdFactory, SupplierFactory


def postings_of(*codes: str) -> list[tuple[int, int, str]]:
    """(posting id, amount, component) of the accounts `codes`, in posting order."""
    return [tuple(row) for row in db.session.execute(
        select(Posting.id, Posting.amount_fen, Posting.component)
        .join(LedgerAccount, LedgerAccount.id == Posting.account_id)
        .where(LedgerAccount.code.in_(codes)).order_by(Posting.transaction_id, Posting.id))]


def household_codes(household_id: int) -> list[str]:
    """Every ledger account of a household (one per paying supplier)."""
    return list(db.session.scalars(select(LedgerAccount.code).where(LedgerAccount.household_id == household_id)))


def paid_and_refunded(client, login) -> tuple[dict, int]:
    """The attribution world: 3 units bought for pickup, then 2 of them refunded; the world and order id."""
    world = make_world(today=outbox.sale_date_of(utcnow()))
    order_id = pay_pickup(client, world, 3)
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == order_id))
    response = client.post(f"/api/v1/orders/{order_id}/refunds", headers={**login("admin"), "Idempotency-Key": "r1"},
                           json={"lines": [{"line_id": line_id, "quantity": 2}], "reason": "坏了"})
    assert response.status_code == 201, response.json
    return world, order_id


def test_a_household_statement_lists_its_postings_with_running_balance(client, login):
    world, order_id = paid_and_refunded(client, login)
    h1 = world["h"][1]
    supplier = world["supplier"]

    response = client.get(f"/api/v1/households/{h1.id}/statement", headers=login("coop", supplier_id=supplier.id))

    assert response.status_code == 200, response.json
    body = response.json
    expected = postings_of(f"household:{h1.id}@supplier:{supplier.id}")
    assert [(e["posting_id"], e["amount_fen"], e["component"]) for e in body["entries"]] == expected
    assert [e["amount_fen"] for e in body["entries"]] == [83, -41]  # premium 83, then the refund's difference
    assert [e["balance_fen"] for e in body["entries"]] == [83, 42]
    assert body["opening_balance_fen"] == 0
    assert body["totals"] == {"credits_fen": 83, "debits_fen": -41, "net_fen": 42, "income_fen": 42,
                              "paid_out_fen": 0, "returned_fen": 0, "closing_balance_fen": 42}
    first = body["entries"][0]
    assert (first["sku"], first["product"], first["lot_code"], first["order_id"], first["kind"]) == (
        world["product"].sku, world["product"].name, world["lot1"].lot_code, order_id, "line_paid")
    assert first["date"] == outbox.sale_date_of(utcnow()).isoformat()
    assert "id_number" not in response.get_data(as_text=True)


def test_a_period_after_the_postings_carries_them_in_the_opening_balance(client, login):
    world, _ = paid_and_refunded(client, login)
    h4 = world["h"][4]
    tomorrow = outbox.sale_date_of(utcnow()) + timedelta(days=1)

    later = client.get(f"/api/v1/households/{h4.id}/statement?from={tomorrow}", headers=login("admin"))
    empty = client.get(f"/api/v1/households/{h4.id}/statement?from={tomorrow}&to={tomorrow}", headers=login("admin"))
    before = client.get(f"/api/v1/households/{h4.id}/statement?to={tomorrow - timedelta(days=1)}",
                        headers=login("admin"))

    balance = sum(amount for _id, amount, _c in postings_of(*household_codes(h4.id)))
    assert balance == 25  # dividend 50 on the sale, 25 taken back by the refund
    assert later.status_code == 200, later.json
    assert (later.json["opening_balance_fen"], later.json["entries"], later.json["totals"]["closing_balance_fen"]) == (
        balance, [], balance)
    assert empty.status_code == 422 and "to" in empty.json["error"]["details"]
    assert (before.json["entries"], before.json["totals"]["closing_balance_fen"]) == ([], 0)


def test_an_admin_sees_the_sum_of_a_households_accounts_and_a_coop_only_its_own(client, login):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    pay_pickup(client, world, 3)
    h1, supplier = world["h"][1], world["supplier"]
    other = SupplierFactory()
    # h1 also has an account at another co-op (here a returned payout), which only the admin's statement sums
    chain.post(kind="payout_failed", postings=[(accounts.household(h1.id, other.id), 500, "payout"),
                                               (accounts.payouts_clearing(), -500, "payout")])
    db.session.commit()

    admin = client.get(f"/api/v1/households/{h1.id}/statement", headers=login("admin"))
    own = client.get(f"/api/v1/households/{h1.id}/statement", headers=login("coop", supplier_id=supplier.id))
    at_other = client.get(f"/api/v1/households/{h1.id}/statement", headers=login("coop", supplier_id=other.id))
    stranger = client.get(f"/api/v1/households/{h1.id}/statement",
                          headers=login("coop", supplier_id=SupplierFactory().id))
    missing = client.get("/api/v1/households/999999/statement", headers=login("admin"))

    assert admin.json["totals"]["closing_balance_fen"] == 83 + 500
    assert sorted(admin.json["accounts"]) == sorted(household_codes(h1.id))
    assert own.json["totals"]["closing_balance_fen"] == 83
    assert own.json["accounts"] == [f"household:{h1.id}@supplier:{supplier.id}"]
    assert at_other.status_code == 200 and at_other.json["totals"]["closing_balance_fen"] == 500
    for response in (stranger, missing):
        assert response.status_code == 404 and response.json["error"]["code"] == "household_not_found"


def test_the_printable_page_shows_the_entries_in_chinese_and_masks_the_id_number(client, login):
    world, _ = paid_and_refunded(client, login)
    h3, supplier = world["h"][3], world["supplier"]
    h3.bank_account = "6222020200112233445"
    db.session.commit()

    response = client.get(f"/api/v1/households/{h3.id}/statement?format=html",
                          headers=login("coop", supplier_id=supplier.id))

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "农户收益对账单" in page and h3.code in page and world["lot1"].lot_code in page
    assert world["product"].name in page and "¥0.84" in page and "-¥0.42" in page and "¥0.42" in page
    assert mask_id_number(h3.id_number) in page and h3.id_number not in page
    assert "6222020200112233445" not in page and "3445" not in page
    assert "<script" not in page


def test_an_admins_printable_page_sums_every_co_op(client, login):
    world, _ = paid_and_refunded(client, login)
    h4 = world["h"][4]

    year_ago = outbox.sale_date_of(utcnow()) - timedelta(days=365)  # a statement covers 366 days at most
    response = client.get(f"/api/v1/households/{h4.id}/statement?format=html&from={year_ago}",
                          headers=login("admin"))

    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "全部合作社合计" in page
    assert "¥0.50" in page and "-¥0.25" in page and year_ago.strftime("%Y年%m月%d日") in page


def test_a_supplier_statement_is_its_coops_and_admins(client, login):
    world, _ = paid_and_refunded(client, login)
    supplier = world["supplier"]
    code = f"supplier:{supplier.id}"

    own = client.get(f"/api/v1/suppliers/{supplier.id}/statement", headers=login("coop", supplier_id=supplier.id))
    admin = client.get(f"/api/v1/suppliers/{supplier.id}/statement", headers=login("admin"))
    other = client.get(f"/api/v1/suppliers/{supplier.id}/statement",
                       headers=login("coop", supplier_id=SupplierFactory().id))

    assert own.status_code == 200 and own.json == admin.json
    assert [(e["posting_id"], e["amount_fen"], e["component"]) for e in own.json["entries"]] == postings_of(code)
    assert own.json["totals"]["closing_balance_fen"] == sum(amount for _id, amount, _c in postings_of(code))
    assert other.status_code == 404 and other.json["error"]["code"] == "supplier_not_found"


def test_a_store_statement_shows_the_cash_it_holds_and_what_it_must_remit(client, login):
    world, _ = paid_and_refunded(client, login)  # pickup: commission 300, then 200 of it refunded
    store = world["store"]
    _counter_and_delivery_for(world)  # a cash sale of one unit (1250 fen): commission 100

    response = client.get(f"/api/v1/stores/{store.id}/statement", headers=login("store_staff", store_id=store.id))
    other = client.get(f"/api/v1/stores/{store.id}/statement",
                       headers=login("store_staff", store_id=world["store"].id + 1000))

    assert response.status_code == 200, response.json
    body = response.json
    assert [e["amount_fen"] for e in body["entries"]] == [a for _i, a, _c in postings_of(f"store:{store.id}")]
    assert [e["amount_fen"] for e in body["cash"]["entries"]] == [1250]
    assert (body["commission_fen"], body["cash_held_fen"], body["to_remit_fen"]) == (300 - 200 + 100, 1250, 1250 - 200)
    assert other.status_code == 404 and other.json["error"]["code"] == "store_not_found"


def post_at(moment: datetime, amount: int, household_id: int, supplier_id: int) -> None:
    """A committed transaction posting `amount` to a household's account, stamped `moment` (linked then, even before
    postings already linked)."""
    chain.post(kind="payout_failed", postings=[(accounts.household(household_id, supplier_id), amount, "payout"),
                                               (accounts.payouts_clearing(), -amount, "payout")])
    with patch.object(chain, "stamp", return_value=moment):
        db.session.commit()


def a_period_in_shanghai_dates(client, headers, household_id: int, supplier_id: int) -> None:
    """Postings just before, at and a day after a Shanghai midnight: the day's statement holds the middle one."""
    shanghai = ZoneInfo("Asia/Shanghai")
    for moment, amount in ((datetime(2026, 3, 1, 23, 59, 59, tzinfo=shanghai), 100),
                           (datetime(2026, 3, 2, 0, 0, tzinfo=shanghai), 20),
                           (datetime(2026, 3, 3, 0, 0, tzinfo=shanghai), 3)):
        post_at(moment, amount, household_id, supplier_id)

    response = client.get(f"/api/v1/households/{household_id}/statement?from=2026-03-02&to=2026-03-03",
                          headers=headers)

    assert response.status_code == 200, response.json
    assert response.json["opening_balance_fen"] == 100
    assert [(e["date"], e["amount_fen"], e["balance_fen"]) for e in response.json["entries"]] == [
        ("2026-03-02", 20, 120)]
    assert response.json["totals"]["closing_balance_fen"] == 120


def test_a_period_is_in_shanghai_dates(client, login):
    household = HouseholdFactory()
    db.session.commit()
    a_period_in_shanghai_dates(client, login("coop", supplier_id=household.registered_by_id), household.id,
                               household.registered_by_id)


def test_a_period_is_in_shanghai_dates_on_postgres(pg_app):
    household = HouseholdFactory()
    _, headers = user_with_token("coop", supplier_id=household.registered_by_id)
    db.session.commit()
    a_period_in_shanghai_dates(pg_app.test_client(), headers, household.id, household.registered_by_id)


def yuan(fen: int) -> str:
    """How a statement page prints `fen`."""
    return f"{'-' if fen < 0 else ''}¥{abs(fen) // 100}.{abs(fen) % 100:02d}"


def assert_printable_page(response) -> str:
    """A printable statement page as the household's is served: HTML, never cached, its inline style allowed by
    hash only and no script; its text."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/html" and response.headers["Cache-Control"] == "private, no-store"
    policy = response.headers["Content-Security-Policy"]
    assert "style-src 'self' 'sha256-" in policy and "unsafe-inline" not in policy
    page = response.get_data(as_text=True)
    assert "<script" not in page
    return page


def test_a_supplier_statement_is_json_or_a_printable_page_for_its_coop_and_admins(client, login):
    world, _ = paid_and_refunded(client, login)
    supplier = world["supplier"]
    url = f"/api/v1/suppliers/{supplier.id}/statement"
    own = login("coop", supplier_id=supplier.id)

    plain, as_json = client.get(url, headers=own), client.get(f"{url}?format=json", headers=own)
    month = outbox.sale_date_of(utcnow()).replace(day=1)
    next_month = (month + timedelta(days=31)).replace(day=1)
    page = assert_printable_page(client.get(f"{url}?format=html&from={month}&to={next_month}", headers=own))
    admins = assert_printable_page(client.get(f"{url}?format=html", headers=login("admin")))
    other = client.get(f"{url}?format=html", headers=login("coop", supplier_id=SupplierFactory().id))

    assert as_json.status_code == 200 and as_json.json == plain.json
    closing = sum(amount for _id, amount, _c in postings_of(f"supplier:{supplier.id}"))
    assert as_json.json["totals"]["closing_balance_fen"] == closing
    assert "供应商货款对账单" in page and supplier.name in page and supplier.uscc in page
    assert world["product"].name in page and world["lot1"].lot_code in page and "货款" in page
    assert yuan(closing) in page and month.strftime("%Y年%m月%d日") in page
    assert admins == page  # without a period: this month
    assert other.status_code == 404 and other.json["error"]["code"] == "supplier_not_found"


def test_a_store_statement_is_json_or_a_printable_page_for_its_staff_and_admins(client, login):
    world, _ = paid_and_refunded(client, login)  # pickup: commission 300, then 200 of it refunded
    store = world["store"]
    _counter_and_delivery_for(world)  # a cash sale of one unit (1250 fen): commission 100
    url = f"/api/v1/stores/{store.id}/statement"
    staff = login("store_staff", store_id=store.id)

    plain, as_json = client.get(url, headers=staff), client.get(f"{url}?format=json", headers=staff)
    page = assert_printable_page(client.get(f"{url}?format=html", headers=staff))
    admins = assert_printable_page(client.get(f"{url}?format=html", headers=login("admin")))
    other = client.get(f"{url}?format=html", headers=login("store_staff", store_id=StoreFactory().id))

    assert as_json.status_code == 200 and as_json.json == plain.json
    assert (as_json.json["commission_fen"], as_json.json["cash_held_fen"], as_json.json["to_remit_fen"]) == (
        200, 1250, 1050)
    assert "体验店对账单" in page and store.name in page and admins == page
    assert "门店佣金" in page and "现金" in page and world["product"].name in page
    for label, fen in (("佣金合计", 200), ("持有现金", 1250), ("应上缴", 1050)):
        assert f"{label} {yuan(fen)}" in page
    assert other.status_code == 404 and other.json["error"]["code"] == "store_not_found"


STATEMENTS = ("/api/v1/households/{household_id}/statement", "/api/v1/suppliers/{supplier_id}/statement",
              "/api/v1/stores/{store_id}/statement")


def test_the_three_statements_document_the_same_query_and_both_answers(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]

    for path in STATEMENTS:
        operation = paths[path]["get"]
        query = {p["name"]: p["schema"].get("enum") for p in operation["parameters"] if p["in"] == "query"}
        assert query == {"from": None, "to": None, "format": ["json", "html"]}, path
        assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/html"}, path


def test_a_statement_without_a_period_is_this_month_after_an_opening_balance(client, login):
    household = HouseholdFactory()
    db.session.commit()
    supplier_id = household.registered_by_id
    month = outbox.sale_date_of(utcnow()).replace(day=1)
    shanghai = ZoneInfo("Asia/Shanghai")
    last_month = datetime.combine(month - timedelta(days=1), datetime.min.time(), shanghai)
    post_at(last_month - timedelta(days=400), 1, household.id, supplier_id)
    post_at(last_month, 20, household.id, supplier_id)
    post_at(utcnow(), 300, household.id, supplier_id)
    headers = login("coop", supplier_id=supplier_id)
    url = f"/api/v1/households/{household.id}/statement"

    for query in ("", "?format=html"):
        response = client.get(url + query, headers=headers)
        assert response.status_code == 200
    body = client.get(url, headers=headers).json
    next_month = (month + timedelta(days=31)).replace(day=1)
    assert (body["from"], body["to"]) == (month.isoformat(), next_month.isoformat())
    assert body["opening_balance_fen"] == 21 and [e["amount_fen"] for e in body["entries"]] == [300]
    assert body["totals"]["closing_balance_fen"] == 321
    ended = client.get(f"{url}?to={month}", headers=headers).json  # the month that ends there
    assert (ended["from"], ended["opening_balance_fen"], [e["amount_fen"] for e in ended["entries"]]) == (
        (month - timedelta(days=1)).replace(day=1).isoformat(), 1, [20])


@pytest.mark.parametrize("path", STATEMENTS)
def test_a_statement_period_over_366_days_is_refused_naming_to(client, login, path):
    world, _ = paid_and_refunded(client, login)
    url = path.format(household_id=world["h"][4].id, supplier_id=world["supplier"].id, store_id=world["store"].id)
    today = outbox.sale_date_of(utcnow())
    year = client.get(f"{url}?from={today - timedelta(days=365)}&to={today + timedelta(days=1)}",
                      headers=login("admin"))
    assert year.status_code == 200, year.json
    for query in (f"from={today - timedelta(days=366)}&to={today + timedelta(days=1)}",
                  f"from={today - timedelta(days=366)}", "from=2000-01-01&to=2099-01-01&format=html"):
        refused = client.get(f"{url}?{query}", headers=login("admin"))
        assert refused.status_code == 422, query
        assert refused.json["error"]["code"] == "validation_error" and list(refused.json["error"]["details"]) == ["to"]


def test_a_returned_payout_is_no_income_and_the_statement_adds_up(client, login):
    """A household earned ¥5.00 before the period and ¥4.20 in it (¥5.00 of premium, ¥0.80 taken back by a refund);
    its payout of ¥9.20 came back from the bank and was paid again: its income in the period is ¥4.20, and
    opening + income − paid out + returned = closing, on the JSON and on the printed page."""
    supplier = SupplierFactory()
    household = payee_household(supplier)
    account = accounts.household(household.id, supplier.id)
    earn(account, 500, on=days_ago(10))
    earn(account, 500, on=days_ago(2))
    earn(account, -80, on=days_ago(2))
    admin = login("admin")
    first = built_batch(party="household", supplier_id=supplier.id, until=today())
    returned = client.post(f"/api/v1/payout-batches/{first.id}/settle", headers=admin,
                           json={"lines": [{"line_id": first.lines[0].id, "status": "failed", "reason": "账号变更"}]})
    assert returned.status_code == 200, returned.json
    assert built_batch(party="household", supplier_id=supplier.id, until=today()).total_fen == 920
    period = f"from={days_ago(3)}&to={today() + timedelta(days=1)}"

    body = client.get(f"/api/v1/households/{household.id}/statement?{period}", headers=admin).json
    page = client.get(f"/api/v1/households/{household.id}/statement?{period}&format=html",
                      headers=admin).get_data(as_text=True)

    totals = body["totals"]
    assert (body["opening_balance_fen"], totals["income_fen"], totals["paid_out_fen"], totals["returned_fen"]) == (
        500, 420, 1840, 920)
    assert (body["opening_balance_fen"] + totals["income_fen"] - totals["paid_out_fen"] + totals["returned_fen"]
            == totals["closing_balance_fen"] == sum(e["amount_fen"] for e in body["entries"]) + 500 == 0)
    footer = re.sub(r"<[^>]+>|\s+", " ", page.split("<tfoot>")[1].split("</tfoot>")[0])
    assert "本期收入 ¥4.20" in footer and "转入待付 -¥18.40" in footer and "支付退回 ¥9.20" in footer
    assert "¥13.40" not in footer and "¥9.20，" not in footer.split("转入待付")[0]
