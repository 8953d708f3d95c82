"""Checkout: reservations, validation, reads in scope, cancel, ship and deliver (SQLite)."""
from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from sqlalchemy import func, select, update

from catalog.models import Stock
from orders.models import Allocation, Order, OrderTransition, Payment
from shop import idempotency
from shop.db import db, utcnow
from suppliers.models import Supplier
from tests.orders.checkout.conftest import ADDRESS, confirm, delivery_body, last_user, pickup_body
from tests.shop.test_auth import NOT_A_MOBILE
from tests.shop.test_errors import assert_error


def _stock(location_id: int) -> tuple[int, int]:
    """(on hand, reserved) summed over a location."""
    db.session.expire_all()
    return tuple(db.session.execute(select(func.sum(Stock.on_hand), func.sum(Stock.reserved))
                                    .where(Stock.location_id == location_id)).one())


def test_delivery_order_reserves_snapshots_and_returns_the_client_secret(client, login, world):
    headers = login("consumer")
    response = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 3), (world["b"].sku, 2)),
                           headers=headers)

    assert response.status_code == 201, response.json
    body = response.json
    assert body["status"] == "pending_payment"
    assert body["total_fen"] == 3 * 1250 + 2 * 800
    assert (body["payment"]["provider"], body["payment"]["sandbox"]) == ("stripe", True)  # API.md: provider "stripe"
    assert body["payment"]["client_secret"].startswith("pi_")
    assert body["expires_at"] and body["impact"] is None
    assert [t["to_status"] for t in body["transitions"]] == ["pending_payment"]
    assert body["address"] == ADDRESS
    order = db.session.get(Order, body["id"])
    assert order.location_id == world["warehouse"].id and order.donor_code == "440604"
    assert "13800000000" not in order.address_enc
    line = order.lines[0]
    assert (line.unit_price_fen, line.platform_fee_bp, line.store_commission_bp) == (1250, 500, 800)
    assert sum(a.quantity for a in line.allocations if a.state == "reserved") == 3
    assert _stock(world["warehouse"].id) == (20, 5)
    assert db.session.scalar(select(Payment.intent_id).where(Payment.order_id == order.id)).startswith("pi_")


def test_a_changed_price_does_not_change_the_order(client, login, world):
    headers = login("consumer")
    order_id = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=headers).json["id"]
    world["a"].price_fen = 9999
    db.session.commit()

    assert client.get(f"/api/v1/orders/{order_id}", headers=headers).json["lines"][0]["unit_price_fen"] == 1250


def test_pickup_reserves_at_the_store_only(client, login, world):
    headers = login("consumer")
    store = world["store"]

    short = client.post("/api/v1/orders", json=pickup_body(store.id, (world["a"].sku, 6)), headers=headers)
    assert short.status_code == 409
    assert short.json["error"]["code"] == "insufficient_stock"
    assert short.json["error"]["details"]["lines"] == [{"sku": world["a"].sku, "requested": 6, "available": 5}]

    ok = client.post("/api/v1/orders", json=pickup_body(store.id, (world["a"].sku, 5)), headers=headers)
    assert ok.status_code == 201
    assert ok.json["store"] == {"id": store.id, "name": store.name}
    assert db.session.get(Order, ok.json["id"]).donor_code == store.district_code
    assert _stock(store.location_id) == (5, 5)
    assert _stock(world["warehouse"].id) == (20, 0)


def test_short_stock_names_the_short_lines_and_reserves_nothing(client, login, world):
    headers = login("consumer")
    response = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 2), (world["b"].sku, 11)),
                           headers=headers)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "insufficient_stock"
    assert response.json["error"]["details"]["lines"] == [{"sku": world["b"].sku, "requested": 11, "available": 10}]
    assert _stock(world["warehouse"].id) == (20, 0)
    assert db.session.scalar(select(func.count(Order.id))) == 0


def test_short_stock_of_a_delivery_names_what_the_closest_warehouse_has(client, login, world):
    from tests.catalog.factories import LocationFactory, make_lot

    make_lot(world["a"], LocationFactory(), quantity=30)  # the first warehouse holds 10 of A
    db.session.commit()

    response = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 100)), headers=login("consumer"))

    assert response.status_code == 409
    assert response.json["error"]["details"]["lines"] == [{"sku": world["a"].sku, "requested": 100, "available": 30}]


def test_delivery_takes_the_first_warehouse_that_fills_the_whole_order(client, login, world):
    from tests.catalog.factories import LocationFactory, make_lot

    second = LocationFactory()
    make_lot(world["a"], second, quantity=50)
    make_lot(world["b"], second, quantity=50)
    db.session.commit()
    headers = login("consumer")

    # the first warehouse holds 10 of each: 12 of A fits only the second one; no split order
    response = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 12), (world["b"].sku, 1)),
                           headers=headers)
    assert response.status_code == 201
    assert db.session.get(Order, response.json["id"]).location_id == second.id
    small = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=headers)
    assert db.session.get(Order, small.json["id"]).location_id == world["warehouse"].id


def test_a_chosen_warehouse_is_used_or_refused(client, login, world):
    headers = login("consumer")
    chosen = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1),
                                                               warehouse_id=world["warehouse"].id), headers=headers)
    assert chosen.status_code == 201
    store_location = client.post("/api/v1/orders", headers=headers, json=delivery_body(
        (world["a"].sku, 1), warehouse_id=world["store"].location_id))
    assert store_location.status_code == 422
    assert store_location.json["error"]["code"] == "warehouse_unavailable"


def test_checkout_validation(client, login, world):
    headers = login("consumer")
    sku = world["a"].sku
    cases = [
        ({"channel": "pickup", "lines": [{"sku": sku, "quantity": 1}]}, "store_id"),
        (delivery_body((sku, 1), store_id=world["store"].id), "store_id"),
        ({"channel": "delivery", "lines": [{"sku": sku, "quantity": 1}]}, "address"),
        (delivery_body((sku, 1), (sku.lower(), 2)), "lines"),
        (delivery_body((sku, 0)), "lines"),
        (delivery_body((sku, 1_000_001)), "lines"),
        (delivery_body(*[(f"SKU-{i:03d}", 1) for i in range(51)]), "lines"),
        ({**delivery_body((sku, 1)), "total_fen": 1}, "total_fen"),
    ]
    for body, field in cases:
        response = client.post("/api/v1/orders", json=body, headers=headers)
        assert response.status_code == 422, (body, response.json)
        assert field in response.json["error"]["details"].get("json", response.json["error"]["details"]), body


def test_unknown_or_inactive_products_are_refused(client, login, world):
    headers = login("consumer")
    world["b"].status = "draft"
    db.session.commit()
    response = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1), (world["b"].sku, 1),
                                                                ("NO-SUCH-SKU", 1)), headers=headers)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "product_unavailable"
    assert set(response.json["error"]["details"]["lines"]) == {"1", "2"}


def test_an_inactive_suppliers_products_are_not_sold_but_its_pending_orders_are_paid(client, login, world):
    headers = login("consumer")
    pending = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=headers)
    db.session.get(Supplier, world["a"].supplier_id).active = False
    db.session.commit()

    delivery = client.post("/api/v1/orders", json=delivery_body((world["b"].sku, 1), (world["a"].sku, 1)),
                           headers=headers)
    pickup = client.post("/api/v1/orders", json=pickup_body(world["store"].id, (world["a"].sku, 1)), headers=headers)

    for refused in (delivery, pickup):
        assert (refused.status_code, refused.json["error"]["code"]) == (422, "product_unavailable")
    assert delivery.json["error"]["details"]["lines"] == {
        "1": {"sku": ["Its supplier is inactive: the product is not on sale."]}}
    assert db.session.scalar(select(func.count()).select_from(Order)) == 1
    assert confirm(pending.json["id"], amount_fen=pending.json["total_fen"]) == "paid"


def test_delivery_only_to_donor_districts(client, login, world):
    headers = login("consumer")
    response = client.post("/api/v1/orders", headers=headers, json=delivery_body(
        (world["a"].sku, 1), address={**ADDRESS, "district_code": "513431"}))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "not_a_donor_district"


def test_pickup_needs_an_open_store(client, login, world):
    headers = login("consumer")
    world["store"].active = False
    db.session.commit()
    response = client.post("/api/v1/orders", json=pickup_body(world["store"].id, (world["a"].sku, 1)),
                           headers=headers)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "store_unavailable"
    missing = client.post("/api/v1/orders", json=pickup_body(999999, (world["a"].sku, 1)), headers=headers)
    assert missing.json["error"]["code"] == "store_unavailable"


def test_only_consumers_place_orders(client, login, world):
    response = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=login("admin"))
    assert response.status_code == 403


def test_the_same_idempotency_key_returns_the_first_response(client, login, world):
    headers = {**login("consumer"), "Idempotency-Key": "checkout-1"}
    body = delivery_body((world["a"].sku, 2))
    first = client.post("/api/v1/orders", json=body, headers=headers)
    again = client.post("/api/v1/orders", json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert db.session.scalar(select(func.count(Order.id))) == 1
    other = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 3)), headers=headers)
    assert other.status_code == 409
    assert other.json["error"]["code"] == "idempotency_key_reused"


def _respelt(body: dict) -> bytes:
    """`body` as another client's JSON library writes it: keys in reverse order, indented, non-ASCII escaped."""
    def reverse(value):
        if isinstance(value, dict):
            return {key: reverse(value[key]) for key in reversed(value)}
        return [reverse(item) for item in value] if isinstance(value, list) else value
    return json.dumps(reverse(body), indent=2, ensure_ascii=True).encode()


def test_the_same_order_spelt_otherwise_is_replayed_and_another_is_refused(client, login, world):
    headers = {**login("consumer"), "Idempotency-Key": "checkout-respelt", "Content-Type": "application/json"}
    body = delivery_body((world["a"].sku, 2))
    first = client.post("/api/v1/orders", data=json.dumps(body, ensure_ascii=False).encode(), headers=headers)

    again = client.post("/api/v1/orders", data=_respelt(body), headers=headers)
    other = client.post("/api/v1/orders", data=_respelt({**body, "address": {**ADDRESS, "recipient": "另一个人"}}),
                        headers=headers)

    assert (first.status_code, again.status_code) == (201, 201), again.json
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == first.json
    assert (other.status_code, other.json["error"]["code"]) == (409, "idempotency_key_reused")
    assert db.session.scalar(select(func.count(Order.id))) == 1


def test_provider_failure_cancels_and_releases_and_frees_the_key(client, login, world, monkeypatch):
    from orders.payments.sandbox import SandboxProvider

    def broken(self, **_kwargs):
        raise ConnectionError("down")

    monkeypatch.setattr(SandboxProvider, "create_intent", broken)
    headers = {**login("consumer"), "Idempotency-Key": "checkout-down"}
    body = delivery_body((world["a"].sku, 4))
    response = client.post("/api/v1/orders", json=body, headers=headers)

    assert response.status_code == 503
    assert response.json["error"]["code"] == "payment_provider_unavailable"
    order = db.session.scalar(select(Order))
    db.session.refresh(order)
    assert order.status == "cancelled"
    assert _stock(world["warehouse"].id) == (20, 0)
    assert {a.state for a in db.session.scalars(select(Allocation))} == {"released"}

    monkeypatch.undo()
    retry = client.post("/api/v1/orders", json=body, headers=headers)
    assert retry.status_code == 201
    assert retry.json["id"] != order.id


def test_consumers_read_their_own_orders_only(client, login, world):
    alice = login("consumer")
    order_id = client.post("/api/v1/orders", json=pickup_body(world["store"].id, (world["a"].sku, 1)),
                           headers=alice).json["id"]
    bob = login("consumer")

    assert client.get(f"/api/v1/orders/{order_id}", headers=bob).status_code == 404
    assert client.get(f"/api/v1/orders/{order_id}", headers=bob).json["error"]["code"] == "order_not_found"
    assert client.get("/api/v1/orders", headers=bob).json["items"] == []
    assert [o["id"] for o in client.get("/api/v1/orders", headers=alice).json["items"]] == [order_id]
    assert client.post(f"/api/v1/orders/{order_id}/cancel", headers=bob).status_code == 404


def test_pickup_code_only_for_the_owner(client, login, world):
    alice = login("consumer")
    order_id = client.post("/api/v1/orders", json=pickup_body(world["store"].id, (world["a"].sku, 1)),
                           headers=alice).json["id"]
    order = db.session.get(Order, order_id)
    assert confirm(order_id, intent_id="pi_x", amount_fen=order.total_fen) == "paid"
    db.session.commit()

    owner_view = client.get(f"/api/v1/orders/{order_id}", headers=alice).json
    assert len(owner_view["pickup_code"]) == 6 and owner_view["pickup_code"].isdigit()
    assert owner_view["payment"]["client_secret"] is None
    staff = login("store_staff", store_id=world["store"].id)
    staff_view = client.get(f"/api/v1/orders/{order_id}", headers=staff).json
    assert staff_view["pickup_code"] is None and staff_view["status"] == "paid"
    unpaid = client.post("/api/v1/orders", json=pickup_body(world["store"].id, (world["a"].sku, 1)), headers=alice)
    no_code = client.get(f"/api/v1/orders/{unpaid.json['id']}/pickup-qr.svg", headers=alice)
    assert (no_code.status_code, no_code.json["error"]["code"]) == (404, "pickup_code_not_found")
    admin_view = client.get(f"/api/v1/orders/{order_id}", headers=login("admin")).json
    assert admin_view["pickup_code"] is None

    qr = client.get(f"/api/v1/orders/{order_id}/pickup-qr.svg", headers=alice)
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml" and b"<svg" in qr.data
    stranger = client.get(f"/api/v1/orders/{order_id}/pickup-qr.svg", headers=login("consumer"))
    assert (stranger.status_code, stranger.json["error"]["code"]) == (404, "order_not_found")
    assert client.get(f"/api/v1/orders/{order_id}/pickup-qr.svg", headers=staff).status_code == 403


def test_store_staff_list_their_store_only(client, login, world):
    from tests.orders.factories import StoreFactory

    alice = login("consumer")
    client.post("/api/v1/orders", json=pickup_body(world["store"].id, (world["a"].sku, 1)), headers=alice)
    client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=alice)
    staff = login("store_staff", store_id=world["store"].id)

    mine = client.get(f"/api/v1/orders?store_id={world['store'].id}", headers=staff)
    assert mine.status_code == 200 and len(mine.json["items"]) == 1
    other = StoreFactory()
    db.session.commit()
    refused = client.get(f"/api/v1/orders?store_id={other.id}", headers=staff)
    assert refused.status_code == 404 and refused.json["error"]["code"] == "store_not_found"
    assert client.get("/api/v1/orders", headers=staff).json["items"] == mine.json["items"]  # their store by default
    assert len(client.get("/api/v1/orders?channel=delivery", headers=login("admin")).json["items"]) == 1


def test_cancel_releases_the_reservation_and_only_once(client, login, world):
    headers = login("consumer")
    order_id = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 4)), headers=headers).json["id"]

    response = client.post(f"/api/v1/orders/{order_id}/cancel", headers=headers)
    assert response.status_code == 200
    assert response.json["status"] == "cancelled"
    assert [t["to_status"] for t in response.json["transitions"]] == ["pending_payment", "cancelled"]
    assert "actor_id" not in response.json["transitions"][1]  # staff ids are for staff: the record is the admin's
    recorded = client.get(f"/api/v1/orders/{order_id}", headers=login("admin")).json["transitions"][1]
    assert recorded["actor_id"] == db.session.get(Order, order_id).consumer_id
    assert _stock(world["warehouse"].id) == (20, 0)
    again = client.post(f"/api/v1/orders/{order_id}/cancel", headers=headers)
    assert again.status_code == 409 and again.json["error"]["code"] == "invalid_transition"


def test_paid_orders_cannot_be_cancelled_but_ship_and_deliver(client, login, world):
    headers = login("consumer")
    order_id = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 2)), headers=headers).json["id"]
    admin = login("admin")
    early = client.post(f"/api/v1/orders/{order_id}/ship", json={"carrier": "顺丰", "tracking_number": "SF123456"},
                        headers=admin)
    assert early.status_code == 409 and early.json["error"]["code"] == "invalid_transition"
    confirm(order_id, intent_id="pi_x", amount_fen=2500)
    db.session.commit()

    assert client.post(f"/api/v1/orders/{order_id}/cancel", headers=headers).status_code == 409
    assert client.post(f"/api/v1/orders/{order_id}/ship", json={"carrier": "顺丰", "tracking_number": "sf123456"},
                       headers=headers).status_code == 403
    copied = "ｓｆ 1234 56"  # as copied from the carrier's message: full width, grouped by spaces
    shipped = client.post(f"/api/v1/orders/{order_id}/ship", json={"carrier": "顺丰", "tracking_number": copied},
                          headers=admin)
    assert shipped.status_code == 200
    assert shipped.json["tracking"] == {"carrier": "顺丰", "tracking_number": "SF123456"}
    delivered = client.post(f"/api/v1/orders/{order_id}/deliver", headers=admin)
    assert delivered.json["status"] == "delivered"
    history = db.session.scalars(select(OrderTransition.to_status).where(OrderTransition.order_id == order_id)
                                 .order_by(OrderTransition.id)).all()
    assert history == ["pending_payment", "paid", "shipped", "delivered"]
    assert client.get(f"/api/v1/orders/{order_id}", headers=headers).json["tracking"]["carrier"] == "顺丰"


def test_an_admins_change_of_an_order_resent_with_its_key_by_another_admin_is_the_first_answer(client, login, world):
    """An admin's keys for an order's changes belong to the order: a shipment, delivery or cancel resent with its key
    by another admin (the first's browser retried after a hand-over) gets the first answer, not 409
    `invalid_transition`; another body under the key is `idempotency_key_reused`; a buyer's keys stay their own."""
    buyer = login("consumer")
    paid, unpaid = (client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=buyer).json["id"]
                    for _ in range(2))
    confirm(paid, intent_id="pi_x", amount_fen=1250)
    db.session.commit()
    first_admin, second_admin = login("admin"), login("admin")
    parcel = {"carrier": "顺丰", "tracking_number": "SF123456"}

    def send(headers, action, order_id, **body):
        return client.post(f"/api/v1/orders/{order_id}/{action}", json=body or None,
                           headers={**headers, "Idempotency-Key": f"desk-{action}"})

    for action, order_id, body, other in (("ship", paid, parcel, {**parcel, "tracking_number": "SF999999"}),
                                          ("deliver", paid, {}, None), ("cancel", unpaid, {}, None)):
        made, resent = send(first_admin, action, order_id, **body), send(second_admin, action, order_id, **body)
        assert made.status_code == resent.status_code == 200, (action, resent.json)
        assert resent.json == made.json and resent.headers.get("Idempotent-Replayed") == "true"
        if other:
            changed = send(second_admin, action, order_id, **other)
            assert (changed.status_code, changed.json["error"]["code"]) == (409, "idempotency_key_reused")
    by_buyer = send(buyer, "cancel", unpaid)
    assert (by_buyer.status_code, by_buyer.json["error"]["code"]) == (409, "invalid_transition")
    history = db.session.scalars(select(OrderTransition.to_status).where(OrderTransition.order_id == paid)
                                 .order_by(OrderTransition.id)).all()
    assert history == ["pending_payment", "paid", "shipped", "delivered"]


def test_pickup_orders_are_not_shipped(client, login, world):
    headers = login("consumer")
    order = client.post("/api/v1/orders", json=pickup_body(world["store"].id, (world["a"].sku, 1)),
                        headers=headers).json
    confirm(order["id"], intent_id="pi_x", amount_fen=order["total_fen"])
    db.session.commit()
    response = client.post(f"/api/v1/orders/{order['id']}/ship", headers=login("admin"),
                           json={"carrier": "顺丰", "tracking_number": "SF123456"})
    assert response.status_code == 409
    assert response.json["error"]["code"] == "not_a_delivery_order"


def test_a_retry_while_the_first_request_still_runs_is_told_to_come_back(client, login, world, monkeypatch):
    headers = {**login("consumer"), "Idempotency-Key": "checkout-slow", "Content-Type": "application/json"}
    body = json.dumps(delivery_body((world["a"].sku, 1)), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()  # the canonical form the fingerprint hashes
    user = last_user()
    running = hashlib.sha256(b"POST /api/v1/orders\n" + body).hexdigest()  # the first request, still at work
    db.session.add(idempotency.IdempotencyKey(user_id=user.id, scope=f"user:{user.id}", key="checkout-slow",
                                              request_hash=running))
    db.session.commit()
    monkeypatch.setattr(idempotency, "IN_PROGRESS_WAIT_SECONDS", 0.2)

    retry = client.post("/api/v1/orders", data=body, headers=headers)

    assert retry.status_code == 409 and retry.json["error"]["code"] == "idempotency_key_in_progress"
    assert retry.headers["Retry-After"] == "1"  # the one 409 that waiting rights
    assert db.session.scalar(select(func.count(Order.id))) == 0


def test_a_retry_of_a_request_that_died_between_its_two_commits_places_the_order(client, login, world):
    headers = {**login("consumer"), "Idempotency-Key": "checkout-died", "Content-Type": "application/json"}
    body = json.dumps(delivery_body((world["a"].sku, 1)), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()
    user = last_user()
    died = hashlib.sha256(b"POST /api/v1/orders\n" + body).hexdigest()  # its worker was killed after commit_now
    started = utcnow() - idempotency.ABANDONED_AFTER - timedelta(seconds=1)
    db.session.add(idempotency.IdempotencyKey(user_id=user.id, scope=f"user:{user.id}", key="checkout-died",
                                              request_hash=died, created_at=started))
    db.session.commit()

    retry = client.post("/api/v1/orders", data=body, headers=headers)
    again = client.post("/api/v1/orders", data=body, headers=headers)

    assert retry.status_code == 201, retry.json
    assert retry.json["payment"]["client_secret"] and "Idempotent-Replayed" not in retry.headers
    assert (again.status_code, again.json["id"]) == (201, retry.json["id"])
    assert again.headers["Idempotent-Replayed"] == "true"
    assert db.session.scalar(select(func.count(Order.id))) == 1


def test_a_buyer_holds_at_most_five_unpaid_orders_and_paying_or_cancelling_frees_a_place(client, login, world):
    headers = login("consumer")
    orders = [client.post("/api/v1/orders", json=delivery_body((world["b"].sku, 1)), headers=headers).json
              for _ in range(5)]
    assert _stock(world["warehouse"].id) == (20, 5)

    refused = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=headers)

    assert refused.status_code == 409 and refused.json["error"]["code"] == "too_many_unpaid_orders"
    assert refused.json["error"]["details"] == {"limit": 5}
    assert _stock(world["warehouse"].id) == (20, 5)  # nothing reserved
    other = login("consumer")
    assert client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=other).status_code == 201
    assert client.post(f"/api/v1/orders/{orders[0]['id']}/cancel", headers=headers).status_code == 200
    assert client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=headers).status_code == 201
    intent_id = orders[1]["payment"]["client_secret"].split("_secret_")[0]
    paid = client.post(f"/api/v1/payments/sandbox/{intent_id}/confirm", json={"outcome": "succeeded"}, headers=headers)
    assert paid.status_code == 200 and paid.json["status"] == "paid"
    assert client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=headers).status_code == 201
    again = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=headers)
    assert again.status_code == 409 and again.json["error"]["code"] == "too_many_unpaid_orders"


def test_the_address_phone_is_a_mainland_mobile_number_in_any_spelling(client, login, world):
    headers = login("consumer")
    sku = world["a"].sku
    for phone in ("12345", "0757-2222-3333", "+1 139 1234 5678"):
        refused = client.post("/api/v1/orders", headers=headers,
                              json=delivery_body((sku, 1), address={**ADDRESS, "phone": phone}))
        details = assert_error(refused, 422, "validation_error")["details"]
        assert details == {"address": {"phone": [NOT_A_MOBILE]}}, phone
    placed = client.post("/api/v1/orders", headers=headers,
                         json=delivery_body((sku, 1), address={**ADDRESS, "phone": "+86 139-1234-5678"}))
    assert placed.status_code == 201 and placed.json["address"]["phone"] == "13912345678"


def test_a_phone_or_id_number_written_into_the_address_detail_or_recipient_is_shown_masked(client, login, world):
    # the address's own phone field is the contact number (unmasked to the owner and the admins who ship); free text
    # holding another person's number is shown, like every free text, with it masked
    headers = login("consumer")
    address = {**ADDRESS, "detail": "乐从镇 12 号，门卫 139 1234 5678 代收", "recipient": "王小明 13812345678"}
    placed = client.post("/api/v1/orders", headers=headers, json=delivery_body((world["a"].sku, 1), address=address))
    assert placed.status_code == 201, placed.json
    for viewer in (headers, login("admin")):
        shown = client.get(f"/api/v1/orders/{placed.json['id']}", headers=viewer).json["address"]
        assert (shown["detail"], shown["recipient"]) == ("乐从镇 12 号，门卫 *** 代收", "王小明 ***")
        assert shown["phone"] == ADDRESS["phone"]


def test_orders_past_their_reservation_do_not_count_against_the_buyer_and_are_expired_at_checkout(client, login, world):
    headers, other = login("consumer"), login("consumer")
    theirs = client.post("/api/v1/orders", json=delivery_body((world["b"].sku, 1)), headers=other).json
    orders = [client.post("/api/v1/orders", json=delivery_body((world["b"].sku, 1)), headers=headers).json
              for _ in range(5)]
    abandoned = [o["id"] for o in orders[:4]] + [theirs["id"]]  # 15 minutes ago, the expiry task not yet run
    db.session.execute(update(Order).where(Order.id.in_(abandoned)).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()

    placed = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=headers)

    assert placed.status_code == 201, placed.json
    db.session.expire_all()
    assert {o.id: o.status for o in db.session.scalars(select(Order).where(Order.id.in_(abandoned)))} == {
        **{i: "expired" for i in abandoned[:4]}, theirs["id"]: "pending_payment"}  # only the buyer's own
    assert _stock(world["warehouse"].id) == (20, 3)  # theirs, the buyer's live one and the new one
    for _ in range(3):
        placed = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=headers)
        assert placed.status_code == 201
    refused = client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=headers)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "too_many_unpaid_orders"


def test_a_yi_recipients_name_is_kept_with_the_id_cards_middle_dot_however_it_was_typed(client, login, world):
    """A consignee's name is checked against the ID card at the door: the bullet, Japanese dot or spaced dot a keyboard
    gives is the card's middle dot (U+00B7), as a household head's name is."""
    headers = login("consumer")
    for typed in ("吉克•阿依", "吉克 ・ 阿依", "吉克．阿依"):
        placed = client.post("/api/v1/orders", headers=headers,
                             json=delivery_body((world["a"].sku, 1), address={**ADDRESS, "recipient": typed}))
        assert placed.status_code == 201, placed.json
        shown = client.get(f"/api/v1/orders/{placed.json['id']}", headers=headers).json["address"]
        assert shown["recipient"] == "吉克·阿依", typed
