"""Creating a lot with an Idempotency-Key: retries replay the first response and never add stock twice."""
from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import func, select

from catalog.models import Lot, Stock
from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory, linked_households, lot_body
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.shop.test_errors import assert_error
from tests.suppliers.factories import SupplierFactory


def lots_and_stock() -> tuple[int, int]:
    """How many lots exist and how many units are on hand in all."""
    db.session.expire_all()
    return (db.session.scalar(select(func.count(Lot.id))),
            db.session.scalar(select(func.coalesce(func.sum(Stock.on_hand), 0))))


def test_a_retry_with_the_same_key_replays_the_first_response(client, coop_world):
    w = coop_world
    body = lot_body(w["product"], w["location"], w["households"])
    headers = {**w["headers"], "Idempotency-Key": "lot-2026-09-a"}
    first = client.post("/api/v1/lots", json=body, headers=headers)
    again = client.post("/api/v1/lots", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    assert lots_and_stock() == (1, 33)


def test_the_same_object_with_its_keys_reordered_and_spaced_otherwise_is_the_same_request(client, coop_world):
    w = coop_world
    body = lot_body(w["product"], w["location"], w["households"])
    headers = {**w["headers"], "Idempotency-Key": "lot-2026-09-c", "Content-Type": "application/json"}
    first = client.post("/api/v1/lots", data=json.dumps(body), headers=headers)
    again = client.post("/api/v1/lots", data=json.dumps(dict(reversed(body.items())), indent=2), headers=headers)
    assert first.status_code == again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert lots_and_stock() == (1, 33)


def test_the_same_key_with_another_body_is_a_409(client, coop_world):
    w = coop_world
    headers = {**w["headers"], "Idempotency-Key": "lot-2026-09-b"}
    client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], w["households"]), headers=headers)
    other = lot_body(w["product"], w["location"], w["households"][:1], lot_code="OTHER-LOT")
    assert_error(client.post("/api/v1/lots", json=other, headers=headers), 409, "idempotency_key_reused")
    assert lots_and_stock() == (1, 33)


def test_a_failed_request_keeps_nothing_so_the_key_can_be_used_after_a_fix(client, coop_world):
    w = coop_world
    headers = {**w["headers"], "Idempotency-Key": "lot-2026-09-c"}
    bad = lot_body(w["product"], w["location"], w["households"], location_code="NO-SUCH-WH")
    assert client.post("/api/v1/lots", json=bad, headers=headers).status_code == 422
    fixed = client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], w["households"]),
                        headers=headers)
    assert fixed.status_code == 201 and "Idempotent-Replayed" not in fixed.headers
    assert lots_and_stock() == (1, 33)


def test_a_lot_resent_with_its_key_by_another_admin_is_the_first_lot(client, coop_world, login):
    w = coop_world
    body = lot_body(w["product"], w["location"], w["households"])
    first = client.post("/api/v1/lots", json=body, headers={**login("admin"), "Idempotency-Key": "hand-over"})
    again = client.post("/api/v1/lots", json=body, headers={**login("admin"), "Idempotency-Key": "hand-over"})
    assert first.status_code == again.status_code == 201
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    other = lot_body(w["product"], w["location"], w["households"], lot_code="ADMIN-LOT")
    assert_error(client.post("/api/v1/lots", json=other, headers={**w["headers"], "Idempotency-Key": "hand-over"}),
                 409, "idempotency_key_reused")
    assert lots_and_stock() == (1, 33)


def test_a_lot_key_is_never_replayed_to_another_coop(client, coop_world, login):
    w = coop_world
    body = lot_body(w["product"], w["location"], w["households"])
    assert client.post("/api/v1/lots", json=body, headers={**w["headers"], "Idempotency-Key": "k1"}).status_code == 201
    outsider = {**login("coop", supplier_id=SupplierFactory().id), "Idempotency-Key": "k1"}
    assert_error(client.post("/api/v1/lots", json=body, headers=outsider), 404, "product_not_found")
    assert lots_and_stock() == (1, 33)


def test_keys_are_each_suppliers_and_must_be_short(client, coop_world, login):
    w = coop_world
    client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], w["households"]),
                headers={**w["headers"], "Idempotency-Key": "shared-key"})
    other_supplier = SupplierFactory()
    theirs = lot_body(ProductFactory(supplier=other_supplier), w["location"], linked_households(other_supplier, 1))
    db.session.commit()
    assert client.post("/api/v1/lots", json=theirs,
                       headers={**login("admin"), "Idempotency-Key": "shared-key"}).status_code == 201
    too_long = {**w["headers"], "Idempotency-Key": "k" * 256}
    assert_error(client.post("/api/v1/lots", json=theirs, headers=too_long), 400, "invalid_idempotency_key")


@pytest.mark.parametrize("key", [" ", "   "])
def test_a_blank_key_is_refused_not_kept(client, coop_world, key):
    w = coop_world
    blank = {**w["headers"], "Idempotency-Key": key}
    body = lot_body(w["product"], w["location"], w["households"])
    assert_error(client.post("/api/v1/lots", json=body, headers=blank), 400, "invalid_idempotency_key")
    assert lots_and_stock() == (0, 0)


@pytest.mark.postgres
def test_concurrent_retries_with_one_key_create_one_lot(pg_app):
    supplier = SupplierFactory()
    product, location = ProductFactory(supplier=supplier), LocationFactory()
    households = linked_households(supplier, 3)
    user = UserFactory(role="coop", supplier_id=supplier.id)
    db.session.commit()
    client = pg_app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": user.username, "password": DEFAULT_PASSWORD})
    headers = {"Authorization": f"Bearer {token.json['access_token']}", "Idempotency-Key": "race-1"}
    body = lot_body(product, location, households)
    barrier, responses = threading.Barrier(8), []

    def send() -> None:
        barrier.wait()
        response = pg_app.test_client().post("/api/v1/lots", json=body, headers=headers)
        responses.append((response.status_code, response.json["id"]))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(responses) == 8 and {status for status, _ in responses} == {201}
    assert len({lot_id for _, lot_id in responses}) == 1
    assert lots_and_stock() == (1, 33)
