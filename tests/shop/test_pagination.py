"""Cursors are signed for their list and type-checked: anything not issued by the list is a 400."""
from __future__ import annotations

import base64
import io
import itertools
import json
import re
import shutil
import tempfile
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from catalog.models import Product, ProductChange
from shop.auth.models import User
from shop.db import db
from shop.pagination import _serializer
from shop.regions.models import Region
from tests.catalog.factories import ProductFactory
from tests.conftest import close_checked, make_app
from tests.factories import UserFactory


def assert_invalid_cursor(response) -> None:
    """The response is the 400 `invalid_cursor` error."""
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "invalid_cursor"
    assert "cursor" in response.json["error"]["details"]


@pytest.fixture
def products(app):
    """Five active products."""
    made = ProductFactory.create_batch(5)
    db.session.commit()
    return made


def _signed(app, url: str, keys: list, values) -> str:
    """`values` signed as the list at `url` signs its cursors (with the secret key, so well formed but for them)."""
    with app.test_request_context(url):
        return _serializer(keys).dumps(values)


def _next_cursor(client, url: str, headers: dict | None = None) -> str:
    """The next_cursor of the first page of `url`."""
    cursor = client.get(url, headers=headers).json["next_cursor"]
    assert cursor
    return cursor


def test_a_cursor_pages_on_where_the_last_page_ended(client, products):
    cursor = _next_cursor(client, "/api/v1/products?limit=2")
    page = client.get(f"/api/v1/products?limit=2&cursor={cursor}").json
    assert [p["sku"] for p in page["items"]] == [p.sku for p in products[2:4]]


def test_an_unsigned_cursor_is_refused(client, products):
    forged = base64.urlsafe_b64encode(json.dumps([2]).encode()).decode().rstrip("=")
    assert_invalid_cursor(client.get(f"/api/v1/products?cursor={forged}"))


def test_a_truncated_or_edited_cursor_is_refused(client, products):
    cursor = _next_cursor(client, "/api/v1/products?limit=2")
    assert_invalid_cursor(client.get(f"/api/v1/products?cursor={cursor[:-3]}"))
    payload, signature = cursor.split(".")
    edited = base64.urlsafe_b64encode(json.dumps([0]).encode()).decode().rstrip("=")
    assert_invalid_cursor(client.get(f"/api/v1/products?cursor={edited}.{signature}"))


def test_a_cursor_of_another_list_is_refused(client, products, login):
    product_cursor = _next_cursor(client, "/api/v1/products?limit=2")
    assert_invalid_cursor(client.get(f"/api/v1/regions?cursor={product_cursor}"))
    assert_invalid_cursor(client.get(f"/api/v1/products/{products[0].sku}/history?cursor={product_cursor}",
                                     headers=login("admin")))


@pytest.mark.parametrize("values", [
    ["2"], [2.0], [True], [None], [2**31], [2**63], [-(2**63) - 1], [1, 2], [], {"id": 2}, "2", 2,
])
def test_a_correctly_signed_cursor_with_mistyped_values_is_refused(app, client, products, values):
    cursor = _signed(app, "/api/v1/products", [Product.id], values)
    assert_invalid_cursor(client.get(f"/api/v1/products?cursor={cursor}"))


def test_string_keys_are_checked_against_their_column(app, client):
    good = _signed(app, "/api/v1/regions", [Region.code], ["513400"])
    assert client.get(f"/api/v1/regions?cursor={good}").status_code == 200
    for values in ([513400], ["5" * 500]):
        cursor = _signed(app, "/api/v1/regions", [Region.code], values)
        assert_invalid_cursor(client.get(f"/api/v1/regions?cursor={cursor}"))


def test_a_cursor_signed_with_another_secret_is_refused(app, client, products):
    cursor = _signed(app, "/api/v1/products", [Product.id], [2])
    app.config["SECRET_KEY"] = "another-secret"
    assert_invalid_cursor(client.get(f"/api/v1/products?cursor={cursor}"))


def test_an_oversized_limit_is_a_validation_error(client):
    for query in ("limit=101", "limit=0", "limit=99999999999999999999999"):
        response = client.get(f"/api/v1/products?{query}")
        assert response.status_code == 422, query
        assert set(response.json["error"]["details"]) == {"limit"}


def test_a_number_in_a_query_is_read_from_decimal_digits_only_as_the_pages_read_it(client, products):
    """`?limit=1_0` is no number (Python's int() reads it as 10), nor `+2`, `²` or 2e0; `٢`, `２` and 2 with a
    zero-width space pasted in are 2, as every page's number boxes read them; a price bound likewise."""
    for query in ("limit=1_0", "limit=%2B2", "limit=%C2%B2", "limit=2e0", "limit=1%202", "min_price_fen=1_000",
                  "limit=" + "9" * 100_000):
        response = client.get(f"/api/v1/products?{query}")
        assert response.status_code == 422, query[:24]
        assert set(response.json["error"]["details"]) == {query.split("=")[0]}
    for query in ("limit=%D9%A2", "limit=%EF%BC%92", "limit=2%E2%80%8B", "limit=%202%20"):
        response = client.get(f"/api/v1/products?{query}")
        assert response.status_code == 200 and len(response.json["items"]) == 2, query


@pytest.mark.parametrize("cursor", ["a" * 600, "a" * 513, "%00", "%EF%BC%A1"])
def test_every_cursor_the_list_did_not_issue_gets_one_answer_whatever_its_length(client, cursor):
    assert_invalid_cursor(client.get(f"/api/v1/products?cursor={cursor}"))


def test_history_pages_with_its_own_cursors(client, login):
    product = ProductFactory()
    db.session.add_all(ProductChange(product_id=product.id, field="price_fen", old_value=i, new_value=i + 1)
                       for i in range(3))
    db.session.commit()
    headers = login("admin")
    url = f"/api/v1/products/{product.sku}/history?limit=2"
    cursor = _next_cursor(client, url, headers)
    rest = client.get(f"{url}&cursor={cursor}", headers=headers)
    assert rest.status_code == 200 and [h["old_value"] for h in rest.json["items"]] == [2]


# --- every paginated list of the API: its cursors page on it alone, with its own filters ------------------------------

def paginated_lists(app) -> list[tuple[str, list[dict]]]:
    """The API's paginated lists, from its OpenAPI document: each GET operation whose 200 answer has `next_cursor`,
    as (path, its query parameters but `cursor` and `limit`)."""
    document = app.test_client().get("/api/v1/openapi.json").json
    schemas = document["components"]["schemas"]
    lists = []
    for path, operations in document["paths"].items():
        operation = operations.get("get", {})
        answer = operation.get("responses", {}).get("200", {}).get("content", {}).get("application/json", {})
        schema = answer.get("schema", {})
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema
        if "next_cursor" in schema.get("properties", {}):
            lists.append((path, [p for p in operation.get("parameters", []) + operations.get("parameters", [])
                                 if p["in"] == "query" and p["name"] not in ("cursor", "limit")]))
    return lists


with tempfile.TemporaryDirectory() as _folder:
    PAGINATED = paginated_lists(make_app(Path(_folder)))


def _path_values() -> dict:
    """Where each path argument of a paginated list takes its values from (a new argument needs a line here)."""
    from catalog.models import Location
    from orders.ledger.payouts.models import PayoutBatch
    from orders.models import Order, Store
    from suppliers.models import Household, Supplier
    return {"supplier_id": select(Supplier.id), "sku": select(Product.sku), "location_id": select(Location.id),
            "store_id": select(Store.id), "order_id": select(Order.id), "batch_id": select(PayoutBatch.id),
            "household_id": select(Household.id)}


def _filter_values(parameter: dict) -> list[str]:
    """Values a query parameter may take, by its documented schema, to try one the list accepts."""
    schema = parameter.get("schema", {})
    if "enum" in schema:
        return [str(value) for value in schema["enum"]]
    return {"boolean": ["true", "false"], "integer": ["1", "2", "3"]}.get(schema.get("type"), []) or \
        (["2000-01-01", "2100-01-01"] if schema.get("format") == "date" else ["440604", "513431", "513400", "x"])


def _changes_and_audits_made(client, admin: dict) -> None:
    """Two bank account and agreement changes of supplier 1, two of store 1, two reveals, two changes of household 1,
    two uploads."""
    for n in (1, 2):
        assert client.patch("/api/v1/suppliers/1", headers=admin, json={
            "bank_account": f"622202000000000000{n}", "reason": "换卡", "agreement": {
                "platform_fee_bp": 500 + n, "store_commission_bp": 500, "household_premium_bp": 500,
                "dividend_bp": 500}}).status_code == 200
        assert client.patch("/api/v1/stores/1", headers=admin, json={
            "bank_account": f"622202000000000001{n}", "reason": "换卡"}).status_code == 200
        assert client.get(f"/api/v1/households/{n}?reveal=true&reason=核对", headers=admin).status_code == 200
        assert client.patch("/api/v1/households/1", headers=admin, json={"members": 10 + n}).status_code == 200
        csv = f"sku,lot_code,harvested_on,location,household_code,quantity\nX,L{n},2026-09-01,XC-WH,H,1\n"
        assert client.post("/api/v1/suppliers/1/inventory-uploads", headers=admin,
                           data={"file": (io.BytesIO(csv.encode()), "lots.csv")}).status_code == 202


def _store_one_busy(client, admin: dict, consumer: dict) -> None:
    """At store 1: two after-sales requests (rejected), two refunds of one order, two stock adjustments, two returns
    to a warehouse, two pickups waiting and two sale conflicts."""
    from catalog.models import Location, Stock
    from orders.models import SaleConflict, Store
    from tests.orders.counter.conftest import paid_pickup_order
    from tests.orders.refunds.conftest import paid_order

    collected = next(order for order in client.get("/api/v1/orders?limit=100", headers=consumer).json["items"]
                     if order["status"] == "fulfilled")
    line = client.get(f"/api/v1/orders/{collected['id']}", headers=consumer).json["lines"][0]
    for _ in (1, 2):
        asked = client.post(f"/api/v1/orders/{collected['id']}/after-sales", headers=consumer,
                            json={"lines": [{"line_id": line["id"], "quantity": 1}], "reason": "坏了"})
        assert client.post(f"/api/v1/after-sales/{asked.json['id']}/reject", headers=admin,
                           json={"reason": "完好"}).status_code == 200
    store = db.session.get(Store, 1)
    stock = db.session.scalars(select(Stock).where(Stock.location_id == store.location_id,
                                                   Stock.on_hand - Stock.reserved >= 4)).first()
    product = db.session.get(Product, stock.product_id)
    sold = paid_order(location_id=store.location_id, lines=[(product, 2)], channel="delivery", payment_method="stripe",
                      consumer=db.session.scalar(select(User).where(User.role == "consumer")), status="delivered")
    db.session.commit()
    for _ in (1, 2):
        assert client.post(f"/api/v1/orders/{sold.id}/refunds", headers=admin, json={
            "lines": [{"line_id": sold.lines[0].id, "quantity": 1, "resellable": True}], "reason": "退货"}
        ).status_code == 201
        assert client.post("/api/v1/stock-adjustments", headers=admin, json={
            "location_id": store.location_id, "lot_id": stock.lot_id, "delta": -1, "reason": "spoiled"}
        ).status_code == 201
    clerk = db.session.scalar(select(User.id).where(User.store_id == store.id))
    warehouse = db.session.scalar(select(Location).where(Location.kind == "warehouse").order_by(Location.id))
    for _ in (1, 2):
        assert client.post("/api/v1/stock-transfers", headers=admin, json={
            "from_location": db.session.get(Location, store.location_id).code, "to_location": warehouse.code,
            "lines": [{"sku": product.sku, "quantity": 1}]}).status_code == 201
    for n in (1, 2):
        paid_pickup_order(store, product, pickup_code=f"90000{n}")
        db.session.add(SaleConflict(store_id=store.id, code="sale_too_old", message="太早", sale={}, created_by=clerk))
    db.session.commit()


def _shifts_cashed_up(client, admin: dict) -> None:
    """Two shifts opened and closed at store 2, which the demo opened none at."""
    for _ in (1, 2):
        opened = client.post("/api/v1/stores/2/shifts", headers=admin, json={"float_fen": 10000})
        assert opened.status_code == 201, opened.json
        assert client.post(f"/api/v1/shifts/{opened.json['id']}/close", headers=admin,
                           json={"counted_cash_fen": 10000}).status_code == 200


def _payouts_made(client, admin: dict) -> None:
    """A household batch of supplier 1 with two lines, a store batch, two downloads of its bank file, and two
    remittances of store 1."""
    from orders.ledger import accounts
    from suppliers.models import Supplier
    from tests.orders.ledger.payout_factories import days_ago, earn, payee_household

    supplier = db.session.get(Supplier, 1)
    for _ in (1, 2):
        earn(accounts.household(payee_household(supplier).id, supplier.id), 1000, on=days_ago(2))
    earn(accounts.store(1), 1000, on=days_ago(2))  # a demo store has a bank account: a store batch pays it
    for party, scope in (("household", {"supplier_id": 1}), ("store", {})):
        batch = client.post("/api/v1/payout-batches", headers=admin,
                            json={"party": party, "until": days_ago(1).isoformat(), **scope})
        assert batch.status_code == 202, batch.json
    for _ in (1, 2):
        assert client.get(f"/api/v1/payout-batches/{batch.json['id']}?format=csv&reason=转账",
                          headers=admin).status_code == 200
    earn(accounts.store_cash(1), -3000)  # counter cash the store holds, two remittances of it (after the batches)
    for reference in ("DEP-1", "DEP-2"):
        assert client.post("/api/v1/stores/1/remittances", headers=admin, json={
            "amount_fen": 1000, "received_on": days_ago(0).isoformat(), "reference": reference}).status_code == 201


@pytest.fixture(scope="module")
def demo(sqlite_template, tmp_path_factory, request):
    """The demo world with two or more rows in every paginated list: its app, and its users' Authorization headers,
    admin first."""
    folder = tmp_path_factory.mktemp("demo")
    shutil.copy(sqlite_template, folder / "shop.db")
    app = make_app(folder)
    with app.app_context():
        seeded = app.test_cli_runner().invoke(args=["seed-demo"])
        assert seeded.exit_code == 0, seeded.output
        client = app.test_client()
        headers = {}
        for username, password in re.findall(r"(?:user|clerk) (\S+) (?:\([^)]*\) )?password: (\S+)", seeded.output):
            token = client.post("/api/v1/auth/token", json={"username": username, "password": password}).json
            headers[username] = {"Authorization": f"Bearer {token['access_token']}"}
        _changes_and_audits_made(client, headers["admin"])
        _store_one_busy(client, headers["admin"], headers["13800000000"])
        _shifts_cashed_up(client, headers["admin"])
        _payouts_made(client, headers["admin"])
        yield app, headers
        close_checked(request)


def _a_cursor(client, path: str, headers: dict) -> tuple[str, dict, str]:
    """(url, a user's headers, the next_cursor of the list's first one-item page) of the first list of `path`'s
    route, as the first user who reads it, that has a second page."""
    names = re.findall(r"{(\w+)}", path)
    sources = _path_values()
    for values in itertools.product(*(db.session.scalars(sources[name]).all() for name in names)):
        url = path.format(**dict(zip(names, values, strict=True)))
        for user in headers.values():
            page = client.get(f"{url}?limit=1", headers=user)
            if page.status_code == 200 and page.json["next_cursor"]:
                return url, user, page.json["next_cursor"]
    raise AssertionError(f"No list of {path} has two items: make some in the `demo` fixture.")


@pytest.mark.parametrize(("path", "filters"), PAGINATED, ids=[path for path, _ in PAGINATED])
def test_a_cursor_pages_only_on_its_own_list_with_its_own_filters(demo, path, filters):
    app, headers = demo
    client = app.test_client()
    url, user, cursor = _a_cursor(client, path, headers)
    assert client.get(f"{url}?limit=1&cursor={cursor}", headers=user).status_code == 200
    assert_invalid_cursor(client.get(f"{url}?limit=1&cursor={cursor[:-3]}", headers=user))

    checked = []
    names = re.findall(r"{(\w+)}", path)
    sources = _path_values()
    for values in itertools.product(*(db.session.scalars(sources[name]).all()[:4] for name in names)):
        other = path.format(**dict(zip(names, values, strict=True)))
        if other != url and client.get(f"{other}?limit=1", headers=user).status_code == 200:
            assert_invalid_cursor(client.get(f"{other}?limit=1&cursor={cursor}", headers=user))
            checked.append(other)
            break
    for parameter in filters:
        value = next((value for value in _filter_values(parameter) if client.get(
            f"{url}?limit=1&{parameter['name']}={value}", headers=user).status_code == 200), None)
        if value is not None:
            assert_invalid_cursor(client.get(f"{url}?limit=1&{parameter['name']}={value}&cursor={cursor}",
                                             headers=user))
            checked.append(parameter["name"])
    assert checked, f"{path}: neither another list nor another filter value was accepted to try the cursor on"


def test_a_filtered_cursor_is_refused_with_another_value_or_on_another_owners_list(demo):
    app, headers = demo
    client, admin = app.test_client(), headers["admin"]
    open_ones = client.get("/api/v1/stores/1/sale-conflicts?resolved=false&limit=1", headers=admin).json
    assert_invalid_cursor(client.get(f"/api/v1/stores/1/sale-conflicts?resolved=true&cursor={open_ones['next_cursor']}",
                                     headers=admin))
    village = client.get("/api/v1/suppliers/1/households?limit=1", headers=admin).json["items"][0]["village"]
    cursor = client.get(f"/api/v1/suppliers/1/households?village={village}&limit=1", headers=admin).json["next_cursor"]
    assert client.get(f"/api/v1/suppliers/1/households?village={village}&cursor={cursor}",
                      headers=admin).status_code == 200
    assert_invalid_cursor(client.get(f"/api/v1/suppliers/2/households?village={village}&cursor={cursor}",
                                     headers=admin))


# --- audit and change lists: a row committed late is never behind a page already read ------------------------------

def _audit_world() -> dict:
    """Ids of an admin, a supplier with a household, a product, a lot at a store's location and a payout batch."""
    from catalog.models import Lot
    from orders.ledger.payouts.models import PayoutBatch
    from suppliers.models import Supplier
    from tests.orders.factories import StoreFactory
    from tests.suppliers.factories import HouseholdFactory

    admin = UserFactory(role="admin")
    product, store = ProductFactory(), StoreFactory()
    household = HouseholdFactory(supplier=db.session.get(Supplier, product.supplier_id))
    lot = Lot(supplier_id=product.supplier_id, product_id=product.id, lot_code="L1", trace_code="TRACE0001",
              harvested_on=date(2026, 10, 1), village="测试村", quantity=10)
    batch = PayoutBatch(party="supplier", until=date(2026, 11, 1), created_by=admin.id)
    db.session.add_all([lot, batch])
    db.session.flush()
    return {"admin": admin.id, "supplier": product.supplier_id, "household": household.id, "product": product.id,
            "sku": product.sku, "store": store.id, "location": store.location_id, "lot": lot.id, "batch": batch.id}


def _audit_row(kind: str, w: dict):
    """A new row of the list `kind`, added to the session (flushed: its id is taken)."""
    from orders.ledger import accounts, chain
    from orders.ledger.models import StoreRemittance
    from orders.ledger.payouts.models import PayoutBatch, PayoutDownload
    from orders.models import SaleConflict, StockAdjustment, StoreAccountChange
    from shop.auth.models import UserChange
    from suppliers.models import BankAccountChange, HouseholdChange, RevealAudit, SupplierChange

    admin = w["admin"]
    if kind == "store_remittances":
        posted = chain.post(kind="processor_fee", memo="remittance", postings=[
            (accounts.platform(), 1, "fee"), (accounts.payments("sandbox"), -1, "payment")])
    row = {
        "user_changes": lambda: UserChange(user_id=admin, actor_id=admin, action="disabled"),
        "product_changes": lambda: ProductChange(product_id=w["product"], field="price_fen", old_value=1,
                                                 new_value=2, changed_by=admin),
        "supplier_changes": lambda: SupplierChange(supplier_id=w["supplier"], field="platform_fee_bp",
                                                   old_value=1, new_value=2, changed_by=admin),
        "household_changes": lambda: HouseholdChange(household_id=w["household"], field="members", old_value="1",
                                                     new_value="2", changed_by=admin),
        "reveals": lambda: RevealAudit(user_id=admin, household_id=w["household"], fields="id_number",
                                       reason="核对"),
        "bank_account_changes": lambda: BankAccountChange(user_id=admin, household_id=w["household"],
                                                          reason="换卡"),
        "store_account_changes": lambda: StoreAccountChange(store_id=w["store"], user_id=admin, reason="换卡"),
        "stock_adjustments": lambda: StockAdjustment(location_id=w["location"], lot_id=w["lot"], delta=1,
                                                     reason="found", created_by=admin),
        "sale_conflicts": lambda: SaleConflict(store_id=w["store"], code="price_changed", message="?", sale={},
                                               created_by=admin),
        "payout_batches": lambda: PayoutBatch(party="store", until=date(2026, 11, 1), created_by=admin),
        "payout_downloads": lambda: PayoutDownload(batch_id=w["batch"], user_id=admin, lines=1, total_fen=1,
                                                   reason="付款"),
        "store_remittances": lambda: StoreRemittance(store_id=w["store"], amount_fen=1, commission_kept_fen=0,
                                                     received_on=date(2026, 11, 1), reference=f"R{posted.id}",
                                                     reference_key=f"R{posted.id}",
                                                     transaction_id=posted.id, recorded_by=admin),
    }[kind]()
    db.session.add(row)
    db.session.flush()
    return row


def _audit_page(kind: str, w: dict, cursor: str | None) -> dict:
    """A one-row page of the list `kind`, as its service reads it for an admin."""
    from catalog.service import product_history
    from orders.counter.service import list_conflicts
    from orders.ledger.payouts.service import list_batches, list_downloads
    from orders.ledger.remittances import list_remittances
    from orders.stores import service as stores
    from shop.auth.service import list_user_changes
    from suppliers import service as suppliers

    admin, period = db.session.get(User, w["admin"]), {"from_date": None, "to_date": None}
    read = {
        "user_changes": lambda: list_user_changes(user_id=None, **period, limit=1, cursor=cursor),
        "product_changes": lambda: product_history(actor=admin, sku=w["sku"], **period, limit=1, cursor=cursor),
        "supplier_changes": lambda: suppliers.supplier_history(supplier_id=w["supplier"], supplier_scope=None,
                                                               **period, limit=1, cursor=cursor),
        "household_changes": lambda: suppliers.household_history(household_id=w["household"], supplier_scope=None,
                                                                 **period, limit=1, cursor=cursor),
        "reveals": lambda: suppliers.list_reveals(household_id=None, supplier_id=None, store_id=None, user_id=None,
                                                  **period, limit=1, cursor=cursor),
        "bank_account_changes": lambda: suppliers.list_account_changes(household_id=None, supplier_id=None,
                                                                       user_id=None, **period, limit=1,
                                                                       cursor=cursor),
        "store_account_changes": lambda: stores.list_account_changes(store_id=w["store"], **period, limit=1,
                                                                     cursor=cursor),
        "stock_adjustments": lambda: stores.list_adjustments(actor=admin, location_id=None, lot_id=None, **period,
                                                             limit=1, cursor=cursor),
        "sale_conflicts": lambda: list_conflicts(actor=admin, store_id=w["store"], limit=1, cursor=cursor),
        "payout_batches": lambda: list_batches(actor=admin, party="store", limit=1, cursor=cursor),
        "payout_downloads": lambda: list_downloads(**period, limit=1, cursor=cursor),
        "store_remittances": lambda: list_remittances(store_id=w["store"], actor=admin, **period, limit=1,
                                                      cursor=cursor),
    }
    page = read[kind]()
    return {"ids": [item["id"] if isinstance(item, dict) else item.id for item in page["items"]],
            "next_cursor": page["next_cursor"]}


AUDIT_LISTS = ["supplier_changes", "bank_account_changes", "household_changes", "payout_downloads",
               "product_changes", "reveals", "sale_conflicts", "stock_adjustments", "store_account_changes",
               "user_changes"]  # oldest first: a reader goes on from where the last page ended
NEWEST_FIRST = ["payout_batches", "store_remittances"]  # a reader reads from the top down to what it read before


def _follow(kind: str, w: dict, cursor: str | None, seen: list[int]) -> tuple[list[int], str | None]:
    """Read the list on from `cursor` to its end, as a reader following it does (oldest first: on from its cursor,
    keeping the one its last page was read with; newest first: from the top down to a row in `seen`); the ids it had
    not seen and the cursor it keeps."""
    new = []
    while True:
        page = _audit_page(kind, w, cursor)
        if kind in NEWEST_FIRST and (not page["ids"] or page["ids"][0] in seen):
            return new, None
        new += [row for row in page["ids"] if row not in seen + new]
        if page["next_cursor"] is None:
            return new, cursor
        cursor = page["next_cursor"]


@pytest.mark.postgres
@pytest.mark.parametrize("kind", AUDIT_LISTS + NEWEST_FIRST)
def test_a_reader_following_an_audit_list_meets_a_row_committed_after_a_later_one(pg_app, kind):
    """Writers run in parallel: a row may commit after one with a larger id. A reader following the list meanwhile
    (oldest first: going on from its last cursor; newest first: reading from the top down to what it read before)
    must still meet it later."""
    from tests.parallel import second_while_first_uncommitted

    w = _audit_world()
    _audit_row(kind, w)
    db.session.commit()
    late = {}

    def first():
        late["id"] = _audit_row(kind, w).id  # its id is taken now; it commits after the two below

    def second():
        ids = [_audit_row(kind, w).id for _ in range(2)]
        db.session.commit()
        return ids, *_follow(kind, w, None, [])

    ids, seen, cursor = second_while_first_uncommitted(pg_app, first, second)
    assert late["id"] < min(ids)  # committed last, with the smallest id
    new, _ = _follow(kind, w, None if kind in NEWEST_FIRST else cursor, seen)
    assert late["id"] in seen + new, (late, ids, seen, new)


def test_on_sqlite_commit_order_is_id_order_and_rows_not_committed_are_not_listed(app):
    """SQLite serialises writers (one holds the database's write lock from its first write until it commits), so no
    row commits behind one with a larger id: there the commit order the lists follow is the id order."""
    from shop.auth.models import UserChange

    w = _audit_world()
    rows = [_audit_row("user_changes", w) for _ in range(2)]
    db.session.commit()
    rows.append(UserChange(user_id=w["admin"], actor_id=w["admin"], action="enabled"))
    db.session.add(rows[-1])  # not flushed before the commit
    db.session.commit()
    _audit_row("user_changes", w)  # flushed, not committed

    listed, _ = _follow("user_changes", w, None, [])
    assert listed == [row.id for row in rows]
    assert [row.commit_seq for row in rows] == sorted(row.commit_seq for row in rows)


def test_a_cursor_pages_only_for_the_user_it_was_issued_to(demo):
    """Another user's cursor on the same signed-in list is refused, not read as a place in the caller's own list (a
    consumer or store's staff would get a page of its own rows after another's last one, silently skipping its newer
    ones). A public list (regions, pairings) is the same list for everyone."""
    app, headers = demo
    client = app.test_client()
    refused = []
    for path, _ in PAGINATED:
        url, user, cursor = _a_cursor(client, path, headers)
        if client.get(f"{url}?limit=1").status_code == 200:
            continue
        for other in headers.values():
            if other != user and client.get(f"{url}?limit=1", headers=other).status_code == 200:
                assert_invalid_cursor(client.get(f"{url}?limit=1&cursor={cursor}", headers=other))
                refused.append(path)
                break
    assert len(refused) > 5, refused
