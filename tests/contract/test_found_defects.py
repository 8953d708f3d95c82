"""Defects the contract suite's probing found, kept as regressions: each is an input Schemathesis may draw
but rarely does, that once answered 500."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"])
def test_a_till_timestamp_outside_utc_is_a_validation_error_not_a_500(world, moment):
    """An offline sale stamped at a moment UTC cannot hold is refused as invalid (it used to crash while
    its conflict was stored); nothing is recorded as a sale conflict."""
    store_id, shift_id = world.ids["store_id"]["own"], world.ids["shift_id"]["own"]
    client, staff = world.app.test_client(), world.of("store_staff")
    conflicts = client.get(f"/api/v1/stores/{store_id}/sale-conflicts", headers=staff).get_json()["items"]
    response = client.post(f"/api/v1/stores/{store_id}/counter-sales", headers=staff, json={
        "lines": [{"sku": world.ids["sku"]["own"], "quantity": 1, "unit_price_fen": 2000}], "shift_id": shift_id,
        "payment": {"method": "card"}, "client_created_at": moment})
    assert response.status_code == 422, response.get_json()
    assert "client_created_at" in response.get_json()["error"]["details"]
    after = client.get(f"/api/v1/stores/{store_id}/sale-conflicts", headers=staff).get_json()["items"]
    assert after == conflicts
