"""Response headers: what was answered to a signed-in caller is kept in no cache."""
from __future__ import annotations

from shop.db import db
from tests.suppliers.factories import HouseholdFactory


def test_answers_to_a_signed_in_caller_are_never_stored_by_a_cache(client, login):
    admin = login("admin")
    household = HouseholdFactory()
    db.session.commit()

    revealed = client.get(f"/api/v1/households/{household.id}?reveal=true&reason=核对身份", headers=admin)
    own_orders = client.get("/api/v1/orders", headers=login("consumer"))
    public = client.get("/api/v1/regions")

    assert revealed.status_code == 200 and "*" not in revealed.json["id_number"]
    assert revealed.headers["Cache-Control"] == "private, no-store"
    assert own_orders.headers["Cache-Control"] == "private, no-store"
    assert "no-store" not in public.headers.get("Cache-Control", "")  # public reference data may be cached
