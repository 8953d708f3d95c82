"""One bound for every date the shop takes: 2000-01-01 to 2099-12-31, in every body, query and upload; dates of
things that happened (consent) not in the future."""
from __future__ import annotations

from datetime import timedelta

import pytest

from shop.clock import today
from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory, lot_body
from tests.suppliers.factories import SupplierFactory, household_payload

OUT_OF_RANGE = ["0001-01-01", "1999-12-31", "2100-01-01", "9999-12-31", "１９９９－１２－３１"]


@pytest.mark.parametrize("day", OUT_OF_RANGE)
def test_a_date_outside_the_shops_range_is_a_422_naming_the_field_wherever_it_is_sent(client, login, day):
    admin = login("admin")
    product, location = ProductFactory(), LocationFactory()
    db.session.commit()
    sent = {
        "harvested_on": client.post("/api/v1/lots", headers=admin,
                                    json=lot_body(product, location, [], harvested_on=day, packed_on=None,
                                                  quantity=5)),
        "valid_from": client.post("/api/v1/pairings", headers=admin, json={
            "donor_code": "440606", "recipient_code": "513437", "program": "粤桂协作", "valid_from": day}),
        "on": client.get(f"/api/v1/pairings?on={day}"),
        "to": client.get(f"/api/v1/reports/pairings?to={day}", headers=admin),
        "until": client.post("/api/v1/payout-batches", headers=admin, json={"party": "store", "until": day}),
    }
    for name, response in sent.items():
        assert response.status_code == 422, (name, response.json)
        assert name in response.json["error"]["details"], (name, response.json)
    assert client.get(f"/api/v1/products/{product.sku}").json["stock"] == []


def test_the_range_ends_are_accepted(client, login):
    for day in ("2000-01-01", "2099-12-31"):
        assert client.get(f"/api/v1/pairings?on={day}").status_code == 200


def test_a_household_cannot_consent_in_the_future_or_before_2000(client, login):
    admin = login("admin")
    supplier_id = SupplierFactory().id
    db.session.commit()
    tomorrow = (today() + timedelta(days=1)).isoformat()
    for day in (tomorrow, "0001-01-01"):
        refused = client.post(f"/api/v1/suppliers/{supplier_id}/households", headers=admin,
                              json=household_payload(consent_on=day))
        assert refused.status_code == 422 and "consent_on" in refused.json["error"]["details"], refused.json
    created = client.post(f"/api/v1/suppliers/{supplier_id}/households", headers=admin,
                          json=household_payload(consent_on=today().isoformat()))
    assert created.status_code == 201, created.json
    moved = client.patch(f"/api/v1/households/{created.json['id']}", headers=admin, json={"consent_on": tomorrow})
    assert moved.status_code == 422 and "consent_on" in moved.json["error"]["details"]
    assert client.get(f"/api/v1/households/{created.json['id']}", headers=admin).json["consent_on"] == \
        today().isoformat()
