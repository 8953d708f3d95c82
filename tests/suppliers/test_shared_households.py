"""A household another co-op linked: it reads, only the registering co-op or an admin changes, accounts audited."""
from __future__ import annotations

from sqlalchemy import func, select

from shop.db import db
from suppliers.models import BankAccountChange, Household, SupplierHousehold
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.orders.refunds.conftest import paid_order
from tests.parallel import send_together
from tests.suppliers.factories import HouseholdFactory, household_payload, make_bank_account, make_id_number


def _linked_household(client, supplier, other_supplier, other_coop) -> Household:
    """A household `supplier` registered and `other_supplier` linked with its ID number."""
    household = HouseholdFactory(supplier=supplier, bank_account=make_bank_account())
    db.session.commit()
    link = client.post(f"/api/v1/suppliers/{other_supplier.id}/benefit-links", headers=other_coop,
                       json={"household_code": household.code, "id_number": household.id_number,
                             "kind": "purchase", "valid_from": "2026-02-01"})
    assert link.status_code == 201, link.json
    return household


def test_a_linked_coop_reads_but_cannot_change_the_household(client, supplier, other_supplier, other_coop):
    household = _linked_household(client, supplier, other_supplier, other_coop)
    account = household.bank_account
    assert client.get(f"/api/v1/households/{household.id}", headers=other_coop).status_code == 200
    for change in ({"bank_account": make_bank_account(), "reason": "换卡"}, {"active": False}, {"members": 9}):
        response = client.patch(f"/api/v1/households/{household.id}", json=change, headers=other_coop)
        assert response.status_code == 403 and response.json["error"]["code"] == "household_read_only"
    db.session.expire_all()
    stored = db.session.get(Household, household.id)
    assert stored.bank_account == account and stored.active and stored.members == 3
    assert db.session.query(BankAccountChange).count() == 0


def test_an_unlinked_coop_gets_not_found(client, supplier, login):
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    stranger = login("coop", supplier_id=HouseholdFactory().registered_by_id)
    response = client.patch(f"/api/v1/households/{household.id}", json={"active": False}, headers=stranger)
    assert response.status_code == 404 and response.json["error"]["code"] == "household_not_found"


def test_a_bank_account_change_needs_a_reason_and_is_audited_masked(client, coop, supplier, login):
    household = HouseholdFactory(supplier=supplier, bank_account=make_bank_account())
    db.session.commit()
    old, new = household.bank_account, make_bank_account()
    missing = client.patch(f"/api/v1/households/{household.id}", json={"bank_account": new}, headers=coop)
    assert missing.status_code == 422 and missing.json["error"]["code"] == "account_change_reason_required"
    changed = client.patch(f"/api/v1/households/{household.id}", json={"bank_account": new, "reason": "农户换卡"},
                           headers=coop)
    assert changed.status_code == 200, changed.json
    same = client.patch(f"/api/v1/households/{household.id}", json={"bank_account": new}, headers=coop)
    assert same.status_code == 200

    auditor = login("auditor")
    log = client.get(f"/api/v1/audit/account-changes?household_id={household.id}", headers=auditor)
    assert log.status_code == 200
    [entry] = log.json["items"]
    assert entry["old_masked"].startswith(f"****{old[-4:]} #") and entry["new_masked"].startswith(f"****{new[-4:]} #")
    assert entry["reason"] == "农户换卡" and entry["household_id"] == household.id and entry["username"]
    assert old not in log.get_data(as_text=True) and new not in log.get_data(as_text=True)
    assert client.get("/api/v1/audit/account-changes", headers=coop).status_code == 403


def test_a_households_change_between_accounts_ending_alike_is_told_apart_in_the_audit(client, coop, supplier,
                                                                                        login):
    household = HouseholdFactory(supplier=supplier, bank_account="6222021234567890001")
    db.session.commit()

    changed = client.patch(f"/api/v1/households/{household.id}", headers=coop,
                           json={"bank_account": "6228480000000000001", "reason": "农户换卡"})

    assert changed.status_code == 200, changed.json
    [entry] = client.get(f"/api/v1/audit/account-changes?household_id={household.id}",
                         headers=login("auditor")).json["items"]
    assert entry["old_masked"] != entry["new_masked"]
    assert entry["old_masked"].startswith("****0001 #") and entry["new_masked"].startswith("****0001 #")


def test_concurrent_household_account_changes_chain_in_the_audit(racing_app):
    """Three changes of a household's payout account at once: each is made on the one before it."""
    household = HouseholdFactory(bank_account="6222021234567890001")
    admin = UserFactory(role="admin")
    db.session.commit()
    client = racing_app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": admin.username, "password": DEFAULT_PASSWORD})
    headers = {"Authorization": f"Bearer {token.json['access_token']}"}

    answers = send_together(racing_app, "PATCH", f"/api/v1/households/{household.id}", [
        (headers, {"bank_account": f"622202123456789{digit * 4}", "reason": "并发"}) for digit in "567"])

    assert [status for status, _ in answers] == [200] * 3, answers
    log = client.get(f"/api/v1/audit/account-changes?household_id={household.id}", headers=headers).json["items"]
    log.sort(key=lambda entry: entry["id"])
    assert len(log) == 3 and log[0]["old_masked"].startswith("****0001 #")
    assert [entry["old_masked"] for entry in log[1:]] == [entry["new_masked"] for entry in log[:-1]]
    db.session.expire_all()  # this thread's session read the household before the race
    shown = client.get(f"/api/v1/households/{household.id}", headers=headers).json["bank_account"]
    assert shown == log[-1]["new_masked"][:8]


def test_an_admin_changes_any_household_and_a_suppliers_account_is_audited_too(client, admin, supplier):
    household = HouseholdFactory()
    db.session.commit()
    response = client.patch(f"/api/v1/households/{household.id}", headers=admin,
                            json={"bank_account": make_bank_account(), "reason": "核实后补录"})
    assert response.status_code == 200 and response.json["bank_account"].startswith("*")
    cleared = client.patch(f"/api/v1/suppliers/{supplier.id}", headers=admin,
                           json={"bank_account": make_bank_account(), "reason": "对公账户变更"})
    assert cleared.status_code == 200, cleared.json
    log = client.get(f"/api/v1/audit/account-changes?supplier_id={supplier.id}", headers=admin).json["items"]
    assert [(e["supplier_id"], e["old_masked"], e["reason"]) for e in log] == [(supplier.id, None, "对公账户变更")]
    assert len(client.get("/api/v1/audit/account-changes", headers=admin).json["items"]) == 2


def test_a_taken_registry_code_never_tells_whether_an_id_number_is_registered(client, supplier, other_supplier,
                                                                              other_coop):
    """With another co-op's code, a registered ID number and an unregistered one get the same answer."""
    registered = HouseholdFactory(supplier=supplier)
    own = HouseholdFactory(supplier=other_supplier, county_code=registered.county_code)
    db.session.commit()
    answers = {client.post(f"/api/v1/suppliers/{other_supplier.id}/households", headers=other_coop,
                           json=household_payload(code=own.code, county_code=own.county_code,
                                                  id_number=number)).json["error"]["code"]
               for number in (registered.id_number, make_id_number(registered.county_code))}
    assert answers == {"household_code_taken"}


def test_guessing_id_numbers_stops_after_ten_answers_that_link_nothing(client, supplier, other_supplier, other_coop):
    """A masked `513431********0039` leaves a few thousand candidates, each answer saying whether it was the one:
    ten guesses an hour that link nothing, whether they are right or wrong afterwards."""
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    link = {"household_code": household.code, "kind": "purchase", "valid_from": "2026-02-01"}
    guesses = [client.post(f"/api/v1/suppliers/{other_supplier.id}/benefit-links", headers=other_coop,
                           json={**link, "id_number": make_id_number(household.county_code)}) for _ in range(11)]
    assert [g.status_code for g in guesses] == [404] * 10 + [429]
    assert guesses[-1].json["error"]["code"] == "id_number_lookups_exhausted"
    right = client.post(f"/api/v1/suppliers/{other_supplier.id}/benefit-links", headers=other_coop,
                        json={**link, "id_number": household.id_number})
    assert right.status_code == 429
    taken = client.post(f"/api/v1/suppliers/{other_supplier.id}/households", headers=other_coop,
                        json=household_payload(id_number=household.id_number))
    assert taken.status_code == 429


def test_a_link_refused_after_its_look_up_gives_none_of_the_budget_back(client, supplier, other_supplier,
                                                                       other_coop):
    """A look-up is given back only when its request links the household: a right ID number whose link is then
    refused (backdated over the co-op's sales, or the household inactive) rolls back and stays counted, so such
    answers cannot be alternated with wrong guesses to get more than ten an hour."""
    product = ProductFactory(supplier=other_supplier)
    location = LocationFactory()
    make_lot(product, location)
    paid_order(location_id=location.id, lines=[(product, 1)], channel="delivery", payment_method="stripe",
               status="paid")
    known = HouseholdFactory(supplier=supplier)
    inactive = HouseholdFactory(supplier=supplier, active=False)
    db.session.commit()
    url = f"/api/v1/suppliers/{other_supplier.id}/benefit-links"
    backdated = {"household_code": known.code, "id_number": known.id_number, "kind": "dividend", "shares": 1,
                 "valid_from": "2026-01-01"}
    refused = {"household_code": inactive.code, "id_number": inactive.id_number, "kind": "purchase",
               "valid_from": "2026-02-01"}
    wrong = {"household_code": known.code, "kind": "purchase", "valid_from": "2026-02-01"}
    guesses, refusals = [], set()
    for n in range(11):
        if n:
            refusal = client.post(url, headers=other_coop, json=backdated if n % 2 else refused)
            refusals.add(refusal.json["error"]["code"])
        guesses.append(client.post(url, headers=other_coop,
                                   json={**wrong, "id_number": make_id_number(known.county_code)}).status_code)
    answered = guesses.index(429) if 429 in guesses else len(guesses)
    assert answered <= 10 and guesses == [404] * answered + [429] * (11 - answered), guesses
    assert {"benefit_link_backdated", "household_inactive"} <= refusals, refusals
    linked = select(func.count()).select_from(SupplierHousehold).where(
        SupplierHousehold.supplier_id == other_supplier.id)
    assert db.session.scalar(linked) == 0


def test_links_and_registrations_that_succeed_use_none_of_the_budget(client, supplier, other_supplier, other_coop):
    for _ in range(12):
        household = HouseholdFactory(supplier=supplier)
        db.session.commit()
        linked = client.post(f"/api/v1/suppliers/{other_supplier.id}/benefit-links", headers=other_coop,
                             json={"household_code": household.code, "id_number": household.id_number,
                                   "kind": "purchase", "valid_from": "2026-02-01"})
        registered = client.post(f"/api/v1/suppliers/{other_supplier.id}/households", headers=other_coop,
                                 json=household_payload())
        assert (linked.status_code, registered.status_code) == (201, 201)


def test_registering_then_linking_as_the_answer_says_uses_none_of_the_budget(client, supplier, other_supplier,
                                                                             other_coop):
    """Onboarding a dozen households another co-op registered: a taken code says nothing about the person, and an
    "already registered" answer followed by the link it asks for is given back."""
    for n in range(12):
        household = HouseholdFactory(supplier=supplier, county_code=other_supplier.county_code)
        db.session.commit()
        by_code = client.post(f"/api/v1/suppliers/{other_supplier.id}/households", headers=other_coop,
                              json=household_payload(code=household.code, id_number=household.id_number))
        assert by_code.json["error"]["code"] == "household_code_taken", n
        exists = client.post(f"/api/v1/suppliers/{other_supplier.id}/households", headers=other_coop,
                             json=household_payload(code=f"NEW-{n}", id_number=household.id_number))
        assert exists.json["error"]["code"] == "household_exists", n
        linked = client.post(f"/api/v1/suppliers/{other_supplier.id}/benefit-links", headers=other_coop,
                             json={"household_code": household.code, "id_number": household.id_number,
                                   "kind": "purchase", "valid_from": "2026-02-01"})
        assert linked.status_code == 201, (n, linked.json)
