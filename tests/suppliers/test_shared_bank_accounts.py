"""One bank account, one active household: a second active household naming an account another holds (payouts would
pay two households into one account, a classic diversion) is refused, whichever co-op registered either, without
saying whose it is."""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from shop.db import db
from suppliers.models import Household
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.suppliers.factories import SupplierFactory, household_payload, make_bank_account


def _register(client, headers, supplier_id, **overrides):
    """POST a registration of a fresh synthetic household."""
    body = household_payload(**overrides)
    return client.post(f"/api/v1/suppliers/{supplier_id}/households", json=body, headers=headers)


def _spelled_otherwise(account: str) -> str:
    """The same account as a clerk may type it: full-width digits in groups of four with spaces and dashes."""
    wide = "".join(chr(ord(digit) + 0xFEE0) for digit in account)
    return " - ".join(wide[i:i + 4] for i in range(0, len(wide), 4))


def test_an_account_another_coops_active_household_holds_is_refused_without_naming_it(
        client, coop, supplier, other_coop, other_supplier, admin):
    account = make_bank_account()
    first = _register(client, coop, supplier.id, bank_account=account)
    assert first.status_code == 201, first.json
    for headers, supplier_id in ((other_coop, other_supplier.id), (coop, supplier.id), (admin, other_supplier.id)):
        refused = _register(client, headers, supplier_id, county_code="513437",
                            bank_account=_spelled_otherwise(account))
        assert refused.status_code == 409, refused.json
        assert refused.json["error"]["code"] == "bank_account_in_use"
        told = str(refused.json)
        assert str(first.json["id"]) not in told and first.json["code"] not in told
        assert first.json["head_name"] not in told and account[-4:] not in told
    assert db.session.scalar(select(Household.id).where(Household.id != first.json["id"])) is None


def test_an_edit_to_another_active_households_account_is_refused_and_a_deactivated_ones_is_free(
        client, coop, supplier, other_coop, other_supplier):
    account = make_bank_account()
    holder = _register(client, coop, supplier.id, bank_account=account).json
    other = _register(client, other_coop, other_supplier.id, county_code="513437",
                      bank_account=make_bank_account()).json
    url = f"/api/v1/households/{other['id']}"
    taking = client.patch(url, json={"bank_account": account, "reason": "换卡"}, headers=other_coop)
    assert taking.status_code == 409 and taking.json["error"]["code"] == "bank_account_in_use"
    assert client.get(url, headers=other_coop).json["bank_account"] == other["bank_account"]
    kept = client.patch(f"/api/v1/households/{holder['id']}", json={"bank_account": account, "members": 5},
                        headers=coop)
    assert kept.status_code == 200, kept.json  # its own account, unchanged

    closed = client.patch(f"/api/v1/households/{holder['id']}", json={"active": False}, headers=coop)
    assert closed.status_code == 200, closed.json
    taken = client.patch(url, json={"bank_account": account, "reason": "户主换卡"}, headers=other_coop)
    assert taken.status_code == 200, taken.json
    reopened = client.patch(f"/api/v1/households/{holder['id']}", json={"active": True}, headers=coop)
    assert reopened.status_code == 409 and reopened.json["error"]["code"] == "bank_account_in_use"
    assert client.get(f"/api/v1/households/{holder['id']}", headers=coop).json["active"] is False



def test_two_coops_registering_one_account_at_once_get_one_household(racing_app):
    account = make_bank_account()
    suppliers = [SupplierFactory(), SupplierFactory()]
    users = [UserFactory(role="coop", supplier_id=supplier.id) for supplier in suppliers]
    db.session.commit()
    tokens = [racing_app.test_client().post("/api/v1/auth/token", json={
        "username": user.username, "password": DEFAULT_PASSWORD}).json["access_token"] for user in users]
    urls = [f"/api/v1/suppliers/{supplier.id}/households" for supplier in suppliers]
    bodies = [household_payload(bank_account=account) for _ in suppliers]
    barrier, results = threading.Barrier(2), [None, None]

    def register(i: int) -> None:
        client = racing_app.test_client()
        barrier.wait()
        response = client.post(urls[i], json=bodies[i], headers={"Authorization": f"Bearer {tokens[i]}"})
        results[i] = (response.status_code, response.json)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(status for status, _body in results) == [201, 409], results
    assert [body["error"]["code"] for status, body in results if status == 409] == ["bank_account_in_use"]
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Household).where(Household.active)) == 1
