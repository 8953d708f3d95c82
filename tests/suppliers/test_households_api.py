"""Households: registration, masking per role, audited reveals, duplicates, scope and mass assignment."""
from __future__ import annotations

from datetime import date

from shop.db import db
from suppliers.models import BankAccountChange, RevealAudit
from tests.factories import UserFactory
from tests.suppliers.factories import (
    HouseholdFactory,
    household_payload,
    make_bank_account,
    make_id_number,
    remember,
)


def _register(client, headers, url_supplier_id, **overrides):
    """POST a registration with a fresh synthetic household."""
    body = household_payload(**overrides)
    return body, client.post(f"/api/v1/suppliers/{url_supplier_id}/households", json=body, headers=headers)


def test_a_coop_registers_a_household_in_its_county_and_sees_it_masked(client, coop, supplier):
    body, response = _register(client, coop, supplier.id, bank_account=make_bank_account())
    assert response.status_code == 201, response.json
    out = response.json
    assert out["county_code"] == "513431" and out["registered_by_id"] == supplier.id
    assert out["id_number"] == body["id_number"][:6] + "********" + body["id_number"][-4:]
    assert out["bank_account"] == "****" + body["bank_account"][-4:]
    assert out["consent_on"] == "2026-01-05" and out["consent_basis"] == body["consent_basis"]
    listed = client.get(f"/api/v1/suppliers/{supplier.id}/households", headers=coop).json
    assert [h["code"] for h in listed["items"]] == [body["code"]] and listed["next_cursor"] is None
    assert listed["items"][0]["id_number"] == out["id_number"]


def test_a_household_says_which_user_registered_it(client, coop, admin, supplier, other_coop, login):
    """Which person put a household on the register must be known afterwards, not only its co-op: admins and auditors
    read it on the household (null for one registered before it was recorded)."""
    me = client.get("/api/v1/users/me", headers=coop).json["id"]
    admin_id = client.get("/api/v1/users/me", headers=admin).json["id"]
    _, by_coop = _register(client, coop, supplier.id)
    _, by_admin = _register(client, admin, supplier.id)
    assert by_coop.status_code == by_admin.status_code == 201, (by_coop.json, by_admin.json)
    assert by_coop.json["created_by"] == me and by_admin.json["created_by"] == admin_id
    earlier = HouseholdFactory(supplier=supplier)
    db.session.commit()
    for headers in (admin, login("auditor")):
        shown = [client.get(f"/api/v1/households/{household_id}", headers=headers).json["created_by"]
                 for household_id in (by_coop.json["id"], by_admin.json["id"], earlier.id)]
        assert shown == [me, admin_id, None]
    listed = client.get(f"/api/v1/suppliers/{supplier.id}/households", headers=admin).json["items"]
    assert [row["created_by"] for row in listed] == [me, admin_id, None]
    assert client.get(f"/api/v1/households/{by_coop.json['id']}", headers=other_coop).status_code == 404


def test_a_household_may_be_registered_in_another_recipient_county(client, coop, supplier):
    _, response = _register(client, coop, supplier.id, county_code="513437")
    assert response.status_code == 201 and response.json["county_code"] == "513437"
    _, donor = _register(client, coop, supplier.id, county_code="440604")
    assert donor.status_code == 422 and donor.json["error"]["code"] == "county_not_recipient"


def test_registration_validates_the_id_number_without_echoing_it(client, coop, supplier):
    good = make_id_number()
    bad = good[:-1] + ("1" if good[-1] != "1" else "2")
    _, response = _register(client, coop, supplier.id, id_number=bad)
    assert response.status_code == 422 and response.json["error"]["code"] == "invalid_id_number"
    assert response.json["error"]["details"] == {"id_number": ["The check digit is wrong."]}
    assert bad not in response.get_data(as_text=True)


def test_a_head_whose_id_number_was_given_after_the_county_was_renumbered_is_registered(client, coop, supplier):
    """An ID number carries the county code in force when it was given (a first card, often late in life in poor
    counties, or a move), not at birth: a head of 威宁 (520526 since 2011) born in 1975 and one of 会理市 (513402
    since 2021) born in 1960 hold real numbers and are registered; a code abolished before its birth year is not."""
    for county, born in (("520526", date(1975, 3, 1)), ("513402", date(1960, 7, 1))):
        _, response = _register(client, coop, supplier.id, id_number=make_id_number(county, born=born))
        assert response.status_code == 201, response.json
    _, abolished = _register(client, coop, supplier.id, id_number=make_id_number("512427", born=date(1990, 1, 1)))
    assert abolished.status_code == 422 and abolished.json["error"]["code"] == "invalid_id_number"
    assert abolished.json["error"]["details"] == {"id_number": ["The region part is not a known county."]}


def test_an_old_15_digit_id_number_is_refused_with_what_to_give_instead(client, coop, supplier):
    """A clerk copying a head's number from an old register types the first-generation card's 15 digits (no century,
    no check digit): the answer says it is that old number and asks for the 18-digit one on the current card, not
    that 17 digits and a check digit were mistyped, and it does not quote the number."""
    old = remember("513431800101123")
    _, response = _register(client, coop, supplier.id, id_number=old[:6] + " " + old[6:])
    assert response.status_code == 422 and response.json["error"]["code"] == "invalid_id_number"
    assert response.json["error"]["details"] == {"id_number": [
        "An old 15-digit ID number: give the 18-digit number on the current ID card."]}
    assert old not in response.get_data(as_text=True)


def test_consent_and_members_are_required(client, coop, supplier):
    body = household_payload(members=0)
    del body["consent_basis"]
    response = client.post(f"/api/v1/suppliers/{supplier.id}/households", json=body, headers=coop)
    assert response.status_code == 422
    assert set(response.json["error"]["details"]) == {"consent_basis", "members"}


def test_the_head_the_village_and_the_consent_basis_hold_no_phone_or_id_number(client, coop, supplier):
    """Each is shown unmasked to staff, co-ops and auditors: a person's numbers have fields of their own."""
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    for field in ("head_name", "village", "consent_basis"):
        for number in ("电话 138 0013 8000", f"户主{make_id_number()}"):
            _, created = _register(client, coop, supplier.id, **{field: f"村委会 {number}"})
            edited = client.patch(f"/api/v1/households/{household.id}", json={field: f"村委会 {number}"},
                                  headers=coop)
            for response in (created, edited):
                assert response.status_code == 422 and set(response.json["error"]["details"]) == {field}
                assert "138" not in response.get_data(as_text=True)


def test_a_bad_household_bank_account_is_rejected(client, coop, supplier):
    _, response = _register(client, coop, supplier.id, bank_account="1234")
    assert response.status_code == 422 and response.json["error"]["code"] == "invalid_bank_account"


def test_the_same_person_is_registered_once_across_suppliers(client, coop, supplier, other_coop, other_supplier):
    body, first = _register(client, coop, supplier.id)
    assert first.status_code == 201
    spaced = body["id_number"][:6] + " " + body["id_number"][6:].lower()
    _, second = _register(client, other_coop, other_supplier.id, id_number=spaced)
    assert second.status_code == 409 and second.json["error"]["code"] == "household_exists"
    assert "benefit-links" in second.json["error"]["message"]
    text = second.get_data(as_text=True)
    assert body["id_number"] not in text and body["id_number"][-4:] not in text and body["code"] not in text


def test_a_registry_code_is_unique_per_county(client, coop, supplier, other_coop, other_supplier):
    body, _ = _register(client, coop, supplier.id)
    _, same_county = _register(client, other_coop, other_supplier.id, code=body["code"], county_code="513431")
    assert same_county.status_code == 409 and same_county.json["error"]["code"] == "household_code_taken"
    _, other_county = _register(client, other_coop, other_supplier.id, code=body["code"])
    assert other_county.status_code == 201 and other_county.json["county_code"] == "513437"


def test_a_code_the_coop_already_uses_never_tells_whether_an_id_number_is_registered(client, coop, supplier,
                                                                                      other_coop, other_supplier):
    """The co-op works with a 雷波 household coded X: registering an 昭觉 household coded X clashes with it whatever
    the ID number, so a registered number and an unregistered one get the same answer, and neither uses a look-up."""
    registered = HouseholdFactory(supplier=supplier)
    own = HouseholdFactory(supplier=other_supplier, county_code="513437")
    db.session.commit()
    numbers = [registered.id_number] + [make_id_number() for _ in range(11)]
    answers = [_register(client, other_coop, other_supplier.id, code=own.code, county_code="513431",
                         id_number=number)[1] for number in numbers]
    assert {(a.status_code, a.json["error"]["code"]) for a in answers} == {(409, "household_code_taken")}
    _, fresh = _register(client, other_coop, other_supplier.id, county_code="513431")
    assert fresh.status_code == 201, fresh.json


def test_an_inactive_supplier_takes_on_no_households(client, admin, coop, supplier):
    client.patch(f"/api/v1/suppliers/{supplier.id}", json={"active": False}, headers=admin)
    _, response = _register(client, coop, supplier.id)
    assert response.status_code == 409 and response.json["error"]["code"] == "supplier_inactive"


def test_masking_per_role_and_reveal_only_for_admins_with_a_reason(client, admin, coop, supplier, login):
    household = HouseholdFactory(supplier=supplier, bank_account=make_bank_account())
    db.session.commit()
    url = f"/api/v1/households/{household.id}"
    masked = household.id_number[:6] + "********" + household.id_number[-4:]
    assert client.get(url, headers=coop).json["id_number"] == masked
    assert client.get(url, headers=admin).json["id_number"] == masked

    denied = client.get(url + "?reveal=true&reason=想看看", headers=coop)
    assert denied.status_code == 403 and denied.json["error"]["code"] == "reveal_forbidden"
    for query in ("?reveal=true", "?reveal=true&reason=", "?reveal=true&reason=%20%20"):
        no_reason = client.get(url + query, headers=admin)
        assert no_reason.status_code == 422 and no_reason.json["error"]["code"] == "reveal_reason_required"
    auditor = login("auditor")                                     # reads households masked, reveals nothing
    assert client.get(url, headers=auditor).json["id_number"] == masked
    refused = client.get(url + "?reveal=true&reason=审计抽查", headers=auditor)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "reveal_forbidden"

    revealed = client.get(url + "?reveal=true&reason=核对打款账户", headers=admin).json
    assert revealed["id_number"] == household.id_number and revealed["bank_account"] == household.bank_account
    assert client.get(url, headers=admin).json["id_number"] == masked


def test_every_reveal_is_audited_and_listed_for_admins_and_auditors(client, admin, coop, supplier, login):
    first, second = HouseholdFactory(supplier=supplier, bank_account=make_bank_account()), HouseholdFactory()
    db.session.commit()
    client.get(f"/api/v1/households/{first.id}?reveal=true&reason=核对打款账户", headers=admin)
    client.get(f"/api/v1/households/{second.id}?reveal=true&reason=身份核验", headers=admin)
    client.get(f"/api/v1/households/{second.id}?reveal=true", headers=admin)  # refused: no reason, no row
    client.get(f"/api/v1/households/{second.id}?reveal=true&reason=x", headers=coop)  # refused: not admin

    auditor = login("auditor")
    rows = client.get("/api/v1/audit/reveals", headers=auditor).json["items"]
    assert [(r["household_id"], r["fields"], r["reason"]) for r in rows] == [
        (first.id, ["id_number", "bank_account"], "核对打款账户"), (second.id, ["id_number"], "身份核验")]
    assert rows[0]["username"].startswith("user") and rows[0]["created_at"]
    one_page = client.get(f"/api/v1/audit/reveals?limit=1&household_id={second.id}", headers=admin).json
    assert [r["household_id"] for r in one_page["items"]] == [second.id] and one_page["next_cursor"] is None
    assert client.get("/api/v1/audit/reveals", headers=coop).status_code == 403


def test_a_reason_holding_an_id_or_bank_card_number_is_refused_and_never_reaches_the_audit_logs(
        client, admin, coop, supplier, login):
    household = HouseholdFactory(supplier=supplier, bank_account=make_bank_account())
    db.session.commit()
    id_number, card = make_id_number(), make_bank_account()
    url = f"/api/v1/households/{household.id}"

    revealed = client.get(f"{url}?reveal=true&reason=核对{id_number}", headers=admin)
    changed = client.patch(url, json={"bank_account": make_bank_account(), "reason": f"换卡，旧卡 {card}"},
                           headers=coop)

    for response in (revealed, changed):
        assert response.status_code == 422, response.json
        assert response.json["error"]["details"]["reason"] == [
            "Do not write ID or bank card numbers here: this text is shown to others unmasked."]
        assert id_number not in response.get_data(as_text=True) and card not in response.get_data(as_text=True)
    auditor = login("auditor")
    assert client.get("/api/v1/audit/reveals", headers=auditor).json["items"] == []
    assert client.get("/api/v1/audit/account-changes", headers=auditor).json["items"] == []


def test_a_reason_holding_a_phone_number_is_refused_and_never_reaches_the_audit_logs(
        client, admin, coop, supplier, login):
    # a reason is kept in an audit row every auditor reads unmasked: a person's phone number has no place in it
    household = HouseholdFactory(supplier=supplier, bank_account=make_bank_account())
    db.session.commit()
    url = f"/api/v1/households/{household.id}"

    revealed = client.get(f"{url}?reveal=true&reason=户主来电 139-6666-7777 核对", headers=admin)
    new_card = {"bank_account": make_bank_account(), "reason": "户主换卡，电话＋８６１３９６６６６７７７７"}
    changed = client.patch(url, headers=coop, json=new_card)

    for response in (revealed, changed):
        assert response.status_code == 422, response.json
        assert list(response.json["error"]["details"]) == ["reason"]
        assert "7777" not in response.get_data(as_text=True)
    auditor = login("auditor")
    assert client.get("/api/v1/audit/reveals", headers=auditor).json["items"] == []
    assert client.get("/api/v1/audit/account-changes", headers=auditor).json["items"] == []
    assert client.get(f"{url}?reveal=true&reason=户主来电核对，订单 1380 号", headers=admin).status_code == 200


def test_a_coop_cannot_read_or_change_another_suppliers_households(client, coop, other_supplier):
    theirs = HouseholdFactory(supplier=other_supplier)
    db.session.commit()
    for response in (client.get(f"/api/v1/households/{theirs.id}", headers=coop),
                     client.patch(f"/api/v1/households/{theirs.id}", json={"active": False}, headers=coop)):
        assert response.status_code == 404 and response.json["error"]["code"] == "household_not_found"
    listed = client.get(f"/api/v1/suppliers/{other_supplier.id}/households", headers=coop)
    assert listed.status_code == 404 and listed.json["error"]["code"] == "supplier_not_found"
    _, registered = _register(client, coop, other_supplier.id)
    assert registered.status_code == 404
    db.session.expire_all()
    assert theirs.active is True


def test_a_coop_edits_and_deactivates_its_household(client, coop, supplier):
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    url = f"/api/v1/households/{household.id}"
    changes = {"village": "新村", "members": 5, "bank_account": make_bank_account(), "reason": "农户换卡"}
    edited = client.patch(url, json=changes, headers=coop)
    assert edited.status_code == 200 and edited.json["village"] == "新村" and edited.json["members"] == 5
    assert edited.json["bank_account"].startswith("***")
    removed = client.patch(url, json={"bank_account": None, "active": False, "reason": "销户"}, headers=coop).json
    assert removed["bank_account"] is None and removed["active"] is False
    inactive = client.get(f"/api/v1/suppliers/{supplier.id}/households?active=false", headers=coop).json["items"]
    assert [h["id"] for h in inactive] == [household.id]


def test_no_mass_assignment_of_supplier_code_or_id_number(client, coop, supplier, other_supplier):
    _, with_supplier = _register(client, coop, supplier.id, supplier_id=other_supplier.id)
    assert with_supplier.status_code == 422 and "supplier_id" in with_supplier.json["error"]["details"]
    mine, theirs = HouseholdFactory(supplier=supplier), HouseholdFactory(supplier=other_supplier)
    db.session.commit()
    before = (mine.code, mine.registered_by_id, mine.county_code, mine.id_number_hash)
    for field, value in (("code", theirs.code), ("registered_by_id", other_supplier.id),
                         ("id_number", make_id_number()), ("county_code", "513437")):
        response = client.patch(f"/api/v1/households/{mine.id}", json={field: value}, headers=coop)
        assert response.status_code == 422 and field in response.json["error"]["details"]
    db.session.expire_all()
    assert (mine.code, mine.registered_by_id, mine.county_code, mine.id_number_hash) == before


def test_household_lists_page_with_a_cursor(client, coop, supplier):
    for _ in range(3):
        HouseholdFactory(supplier=supplier)
    db.session.commit()
    first = client.get(f"/api/v1/suppliers/{supplier.id}/households?limit=2", headers=coop).json
    second = client.get(f"/api/v1/suppliers/{supplier.id}/households?limit=2&cursor={first['next_cursor']}",
                        headers=coop).json
    assert len(first["items"]) == 2 and len(second["items"]) == 1 and second["next_cursor"] is None


def test_an_admin_reads_any_household(client, admin, other_supplier):
    theirs = HouseholdFactory(supplier=other_supplier)
    db.session.commit()
    assert client.get(f"/api/v1/households/{theirs.id}", headers=admin).json["code"] == theirs.code
    missing = client.get(f"/api/v1/households/{theirs.id + 100}", headers=admin)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "household_not_found"


def test_the_sixteenth_birthday_is_counted_in_asia_shanghai(client, coop, supplier, monkeypatch):
    """At 02:30 on 28 November in Liangshan (18:30 UTC the day before) a person born on 28 November 2010 is 16."""
    from datetime import UTC, date, datetime

    from shop import clock

    class _Evening(datetime):
        @classmethod
        def now(cls, tz=None):
            moment = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)
            return moment.astimezone(tz) if tz else moment.replace(tzinfo=None)

    monkeypatch.setattr(clock, "datetime", _Evening)
    _, sixteen_today = _register(client, coop, supplier.id, id_number=make_id_number(born=date(2010, 11, 28)))
    _, sixteen_tomorrow = _register(client, coop, supplier.id, id_number=make_id_number(born=date(2010, 11, 29)))

    assert sixteen_today.status_code == 201, sixteen_today.json
    assert sixteen_tomorrow.status_code == 422


def test_audit_rows_written_before_reasons_refused_phone_numbers_are_listed_with_them_masked(
        client, admin, supplier, login):
    # audit rows are append-only: a phone or ID number a reason held before the rule stays in the row, never on screen
    household = HouseholdFactory(supplier=supplier)
    db.session.flush()
    auditor_user = UserFactory(role="auditor")
    db.session.flush()
    id_number = make_id_number()
    db.session.add_all([
        RevealAudit(user_id=auditor_user.id, household_id=household.id, fields="id_number",
                    reason=f"户主来电 139 1234 5678 核对，身份证 {id_number}，订单 1380"),
        BankAccountChange(user_id=auditor_user.id, household_id=household.id, old_masked="****0128",
                          new_masked="****0129", reason="户主电话 +86 13912345678 确认")])
    db.session.commit()
    for headers in (login("auditor"), admin):
        reveals = client.get("/api/v1/audit/reveals", headers=headers).json["items"]
        changes = client.get("/api/v1/audit/account-changes", headers=headers).json["items"]
        assert [row["reason"] for row in reveals] == ["户主来电 *** 核对，身份证 ***，订单 1380"]
        assert [row["reason"] for row in changes] == ["户主电话 +*** 确认"]


def test_every_change_of_a_household_is_recorded_with_who_when_and_what(client, admin, coop, supplier, other_coop,
                                                                        login):
    """Who deactivated a household, moved it to another village or changed its consent must be known afterwards:
    each field changed is a history row (old and new, who, when), readable by the co-op, admins and auditors."""
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    url = f"/api/v1/households/{household.id}"
    assert client.patch(url, json={"village": "新村", "members": 5, "head_name": household.head_name},
                        headers=coop).status_code == 200
    assert client.patch(url, json={"active": False, "consent_on": "2026-02-01"}, headers=admin).status_code == 200

    for headers in (coop, admin, login("auditor")):
        history = client.get(f"{url}/history", headers=headers)
        assert history.status_code == 200, history.json
        rows = [(row["field"], row["old"], row["new"]) for row in history.json["items"]]
        assert rows == [("village", "测试村", "新村"), ("members", "3", "5"),
                        ("consent_on", "2026-01-05", "2026-02-01"), ("active", "true", "false")]
        assert all(row["changed_at"] and row["username"].startswith("user") for row in history.json["items"])
    by = [row["changed_by"] for row in client.get(f"{url}/history", headers=admin).json["items"]]
    assert by[0] == by[1] != by[2] == by[3]
    assert client.get(f"{url}/history", headers=other_coop).status_code == 404


def test_a_yi_heads_name_is_kept_with_the_id_cards_middle_dot_however_it_was_typed(client, coop, supplier):
    """A Yi or Tibetan head's name is written with a middle dot on the ID card (吉克·阿依, U+00B7), and the bank file
    pays that name: a bullet, a Japanese input method's dot, a full-width stop or spaces around it (what keyboards
    give) are one name, the card's, on registration and on an edit."""
    for typed in ("吉克•阿依", "吉克・阿依", "吉克．阿依", "吉克 · 阿依", "吉克‧阿依", "吉克.阿依"):
        _, response = _register(client, coop, supplier.id, head_name=typed)
        assert response.status_code == 201, response.json
        assert response.json["head_name"] == "吉克·阿依", typed
    edited = client.patch(f"/api/v1/households/{response.json['id']}", json={"head_name": "阿苏 ・拉格•木呷"},
                          headers=coop)
    assert edited.status_code == 200 and edited.json["head_name"] == "阿苏·拉格·木呷"
    _, latin = _register(client, coop, supplier.id, head_name="J. Smith")
    assert latin.status_code == 201 and latin.json["head_name"] == "J. Smith"


def test_a_coop_finds_its_households_by_part_of_the_heads_name(client, coop, supplier, other_supplier):
    """A bookkeeper with hundreds of households looks one up by the head's name, as the family is known: part of it
    finds it (its middle dot however typed), in the co-op's own households only."""
    for name in ("吉克·阿依", "阿苏·阿依木", "J. Smith", "吉克·拉格"):
        HouseholdFactory(supplier=supplier, head_name=name)
    HouseholdFactory(supplier=other_supplier, head_name="吉克·阿依木")
    db.session.commit()
    url = f"/api/v1/suppliers/{supplier.id}/households"

    def found(head_name):
        response = client.get(url, query_string={"head_name": head_name}, headers=coop)
        assert response.status_code == 200, response.json
        return sorted(h["head_name"] for h in response.json["items"])

    assert found("阿依") == ["吉克·阿依", "阿苏·阿依木"]
    assert found("吉克•阿依") == found("吉克 ・ 阿依") == ["吉克·阿依"]
    assert found("smith") == ["J. Smith"] and found("%") == [] and found("_") == []
    assert client.get(url, query_string={"head_name": "吉" * 65}, headers=coop).status_code == 422


def test_a_coop_cannot_reactivate_a_household_an_admin_deactivated(client, admin, coop, supplier):
    """An admin's deactivation is a compliance act (a household struck off the register): its co-op may not undo it
    (409 household_deactivated_by_admin, the household stays inactive), while a deactivation of its own it may, and an
    admin may reactivate either."""
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    url = f"/api/v1/households/{household.id}"
    assert client.patch(url, json={"active": False}, headers=coop).status_code == 200
    assert client.patch(url, json={"active": True}, headers=coop).json["active"] is True

    assert client.patch(url, json={"active": False}, headers=admin).status_code == 200
    undone = client.patch(url, json={"active": True, "village": "新村"}, headers=coop)
    assert undone.status_code == 409 and undone.json["error"]["code"] == "household_deactivated_by_admin"
    shown = client.get(url, headers=coop).json
    assert shown["active"] is False and shown["village"] != "新村"
    assert client.patch(url, json={"village": "新村"}, headers=coop).json["village"] == "新村"

    assert client.patch(url, json={"active": True}, headers=admin).json["active"] is True
    assert client.patch(url, json={"active": False}, headers=coop).status_code == 200
    assert client.patch(url, json={"active": True}, headers=coop).json["active"] is True
