"""Benefit links: linking by code (and ID number), kinds and shares, ending, scope, and the ledger's queries."""
from __future__ import annotations

from datetime import date, timedelta

from shop.clock import today
from shop.db import db
from suppliers.service import dividend_shares, find_household, purchase_periods
from tests.suppliers.factories import BenefitLinkFactory, HouseholdFactory


def _link(client, headers, url_supplier_id, **body):
    """POST a benefit link for the supplier."""
    body = {"kind": "purchase", "valid_from": "2026-01-01", **body}
    return client.post(f"/api/v1/suppliers/{url_supplier_id}/benefit-links", json=body, headers=headers)


def test_a_coop_links_its_own_household_by_registry_code(client, coop, supplier):
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    response = _link(client, coop, supplier.id, household_code=household.code, valid_until="2026-12-31")
    assert response.status_code == 201, response.json
    assert response.json == {**response.json, "supplier_id": supplier.id, "household_id": household.id,
                             "household_code": household.code, "kind": "purchase", "shares": None,
                             "valid_from": "2026-01-01", "valid_until": "2026-12-31"}


def test_a_second_coop_links_an_existing_household_with_code_and_id_number(client, coop, supplier, other_coop,
                                                                          other_supplier):
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    without_id = _link(client, other_coop, other_supplier.id, household_code=household.code)
    assert without_id.status_code == 404 and without_id.json["error"]["code"] == "household_not_found"
    linked = _link(client, other_coop, other_supplier.id, household_code=household.code,
                   id_number=household.id_number, kind="employment")
    assert linked.status_code == 201 and linked.json["household_id"] == household.id
    seen = client.get(f"/api/v1/households/{household.id}", headers=other_coop)
    assert seen.status_code == 200 and seen.json["registered_by_id"] == supplier.id
    codes = client.get(f"/api/v1/suppliers/{other_supplier.id}/households", headers=other_coop).json["items"]
    assert [h["id"] for h in codes] == [household.id]
    assert find_household(supplier_id=other_supplier.id, code=household.code).id == household.id


def test_linking_needs_the_matching_id_number_and_reveals_nothing_otherwise(client, supplier, other_coop,
                                                                           other_supplier):
    household, stranger = HouseholdFactory(supplier=supplier), HouseholdFactory(supplier=supplier)
    db.session.commit()
    wrong = _link(client, other_coop, other_supplier.id, household_code=household.code,
                  id_number=stranger.id_number)
    assert wrong.status_code == 404 and wrong.json["error"]["code"] == "household_not_found"
    assert stranger.id_number not in wrong.get_data(as_text=True)
    assert client.get(f"/api/v1/households/{household.id}", headers=other_coop).status_code == 404
    assert find_household(supplier_id=other_supplier.id, code=household.code) is None


def test_a_coop_cannot_set_the_supplier_of_a_link(client, coop, supplier, other_supplier):
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    response = _link(client, coop, supplier.id, household_code=household.code, supplier_id=other_supplier.id)
    assert response.status_code == 422 and "supplier_id" in response.json["error"]["details"]
    assert client.get(f"/api/v1/suppliers/{supplier.id}/benefit-links", headers=coop).json["items"] == []


def test_a_wrong_id_number_does_not_pass_for_an_own_household(client, coop, supplier):
    household, other = HouseholdFactory(supplier=supplier), HouseholdFactory(supplier=supplier)
    db.session.commit()
    response = _link(client, coop, supplier.id, household_code=household.code, id_number=other.id_number)
    assert response.status_code == 404 and response.json["error"]["code"] == "household_not_found"


def test_a_supplier_works_with_one_household_per_registry_code(client, coop, supplier, other_supplier):
    mine = HouseholdFactory(supplier=supplier)
    same_code = HouseholdFactory(supplier=other_supplier, code=mine.code)  # in 雷波县
    db.session.commit()
    response = _link(client, coop, supplier.id, household_code=mine.code, id_number=same_code.id_number)
    assert response.status_code == 409 and response.json["error"]["code"] == "household_code_taken"


def test_dividend_links_need_positive_integer_shares_and_others_none(client, coop, supplier):
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    code = household.code
    for body, field in (({"kind": "dividend"}, "shares"), ({"kind": "dividend", "shares": 0}, "shares"),
                        ({"kind": "dividend", "shares": 1.5}, "shares"),
                        ({"kind": "dividend", "shares": "2"}, "shares"),
                        ({"kind": "purchase", "shares": 2}, "shares"),
                        ({"kind": "gift"}, "kind"), ({"valid_until": "2025-12-31"}, "valid_until")):
        response = _link(client, coop, supplier.id, household_code=code, **body)
        assert response.status_code == 422 and field in response.json["error"]["details"], body
    ok = _link(client, coop, supplier.id, household_code=code, kind="dividend", shares=3)
    assert ok.status_code == 201 and ok.json["shares"] == 3


def test_purchase_links_of_a_household_do_not_overlap(client, coop, supplier):
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    code = household.code
    assert _link(client, coop, supplier.id, household_code=code, valid_until="2026-06-30").status_code == 201
    overlap = _link(client, coop, supplier.id, household_code=code, valid_from="2026-06-30")
    assert overlap.status_code == 409 and overlap.json["error"]["code"] == "benefit_link_overlaps"
    assert _link(client, coop, supplier.id, household_code=code, valid_from="2026-07-01").status_code == 201
    dividends = [_link(client, coop, supplier.id, household_code=code, kind="dividend", shares=1) for _ in range(2)]
    assert [d.status_code for d in dividends] == [201, 201]


def test_ending_a_link_keeps_its_history(client, coop, supplier):
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    link_id = _link(client, coop, supplier.id, household_code=household.code).json["id"]
    early = client.patch(f"/api/v1/benefit-links/{link_id}", json={"valid_until": "2025-12-31"}, headers=coop)
    assert early.status_code == 422 and "valid_until" in early.json["error"]["details"]
    ended = client.patch(f"/api/v1/benefit-links/{link_id}", json={"valid_until": "2026-03-31"}, headers=coop)
    assert ended.status_code == 200 and ended.json["valid_until"] == "2026-03-31"
    again = client.patch(f"/api/v1/benefit-links/{link_id}", json={"valid_until": "2026-04-30"}, headers=coop)
    assert again.status_code == 409 and again.json["error"]["code"] == "benefit_link_ended"
    history = client.get(f"/api/v1/suppliers/{supplier.id}/benefit-links", headers=coop).json["items"]
    assert [(h["id"], h["valid_until"]) for h in history] == [(link_id, "2026-03-31")]
    on_april = client.get(f"/api/v1/suppliers/{supplier.id}/benefit-links?on=2026-04-01", headers=coop).json
    assert on_april["items"] == []
    on_march_31 = client.get(f"/api/v1/suppliers/{supplier.id}/benefit-links?on=2026-03-31", headers=coop).json
    assert [h["id"] for h in on_march_31["items"]] == [link_id]


def test_a_coop_cannot_see_link_or_end_another_suppliers_links(client, coop, other_supplier):
    theirs = BenefitLinkFactory(household__supplier=other_supplier)
    db.session.commit()
    ended = client.patch(f"/api/v1/benefit-links/{theirs.id}", json={"valid_until": "2026-02-01"}, headers=coop)
    assert ended.status_code == 404 and ended.json["error"]["code"] == "benefit_link_not_found"
    listed = client.get(f"/api/v1/suppliers/{other_supplier.id}/benefit-links", headers=coop)
    assert listed.status_code == 404 and listed.json["error"]["code"] == "supplier_not_found"
    created = _link(client, coop, other_supplier.id, household_code=theirs.household.code)
    assert created.status_code == 404 and created.json["error"]["code"] == "supplier_not_found"
    db.session.expire_all()
    assert theirs.valid_until is None


def test_an_inactive_household_gets_no_new_links(client, coop, supplier):
    household = HouseholdFactory(supplier=supplier, active=False)
    db.session.commit()
    response = _link(client, coop, supplier.id, household_code=household.code)
    assert response.status_code == 409 and response.json["error"]["code"] == "household_inactive"


def test_links_are_listed_by_kind_and_household(client, admin, supplier):
    first, second = HouseholdFactory(supplier=supplier), HouseholdFactory(supplier=supplier)
    BenefitLinkFactory(household=first, supplier_id=supplier.id)
    BenefitLinkFactory(household=second, supplier_id=supplier.id, kind="dividend", shares=2)
    db.session.commit()
    url = f"/api/v1/suppliers/{supplier.id}/benefit-links"
    assert [h["household_id"] for h in client.get(url + "?kind=dividend", headers=admin).json["items"]] == [second.id]
    by_household = client.get(f"{url}?household_id={first.id}", headers=admin).json["items"]
    assert [h["kind"] for h in by_household] == ["purchase"]


def test_dividend_shares_on_a_date_are_summed_per_household(app, supplier, other_supplier):
    a, b, c = (HouseholdFactory(supplier=supplier) for _ in range(3))
    BenefitLinkFactory(household=a, supplier_id=supplier.id, kind="dividend", shares=2,
                       valid_from=date(2026, 1, 1), valid_until=date(2026, 6, 30))
    BenefitLinkFactory(household=a, supplier_id=supplier.id, kind="dividend", shares=3, valid_from=date(2026, 3, 1))
    BenefitLinkFactory(household=b, supplier_id=supplier.id, kind="dividend", shares=5, valid_from=date(2026, 7, 1))
    BenefitLinkFactory(household=c, supplier_id=supplier.id, kind="purchase")
    BenefitLinkFactory(household=c, supplier_id=other_supplier.id, kind="dividend", shares=7)
    db.session.flush()
    assert dividend_shares(supplier_id=supplier.id, on=date(2025, 12, 31)) == {}
    assert dividend_shares(supplier_id=supplier.id, on=date(2026, 1, 1)) == {a.id: 2}
    assert dividend_shares(supplier_id=supplier.id, on=date(2026, 6, 30)) == {a.id: 5}
    assert dividend_shares(supplier_id=supplier.id, on=date(2026, 7, 1)) == {a.id: 3, b.id: 5}
    assert dividend_shares(supplier_id=other_supplier.id, on=date(2026, 7, 1)) == {c.id: 7}


def test_purchase_periods_give_every_household_of_the_supplier_with_its_purchase_links(app, supplier, other_supplier):
    linked, idle = HouseholdFactory(supplier=supplier), HouseholdFactory(supplier=supplier, village="二村")
    BenefitLinkFactory(household=linked, supplier_id=supplier.id, valid_until=date(2026, 3, 31))
    BenefitLinkFactory(household=linked, supplier_id=supplier.id, valid_from=date(2026, 6, 1))
    BenefitLinkFactory(household=idle, supplier_id=supplier.id, kind="employment")
    HouseholdFactory(supplier=other_supplier)
    db.session.flush()
    periods = purchase_periods(supplier_id=supplier.id)
    assert set(periods) == {linked.code, idle.code} and periods[idle.code].village == "二村"
    assert [periods[linked.code].linked_on(date(2026, m, 1)) for m in (1, 3, 4, 5, 6, 12)] == [
        True, True, False, False, True, True]
    assert not periods[idle.code].linked_on(date(2026, 3, 1)) and periods[linked.code].id == linked.id


def test_ending_a_link_keeps_who_ended_it_and_when(client, coop, supplier):
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    link_id = _link(client, coop, supplier.id, household_code=household.code).json["id"]
    assert client.get(f"/api/v1/suppliers/{supplier.id}/benefit-links", headers=coop).json["items"][0]["ended_by"] \
        is None
    ended = client.patch(f"/api/v1/benefit-links/{link_id}", json={"valid_until": "2026-03-31"}, headers=coop)
    me = client.get("/api/v1/users/me", headers=coop).json
    assert ended.status_code == 200 and ended.json["ended_by"] == me["id"] and ended.json["ended_at"]
    listed = client.get(f"/api/v1/suppliers/{supplier.id}/benefit-links", headers=coop).json["items"]
    assert [(h["ended_by"], h["ended_at"]) for h in listed] == [(me["id"], ended.json["ended_at"])]


def test_a_link_starting_more_than_a_year_ahead_is_a_mistyped_year_and_refused(client, coop, supplier):
    """A link is registered when it is agreed: one that starts in 2062 (for 2026) or 2099 would leave the household
    outside every purchase period, and send its dividends to the co-op, for decades without a word; a start up to a
    year ahead is a planned one."""
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    for start in (today() + timedelta(days=367), date(2099, 1, 1)):
        refused = _link(client, coop, supplier.id, household_code=household.code, kind="dividend", shares=5,
                        valid_from=start.isoformat())
        assert refused.status_code == 422 and "valid_from" in refused.json["error"]["details"], refused.json
    assert client.get(f"/api/v1/suppliers/{supplier.id}/benefit-links", headers=coop).json["items"] == []
    planned = _link(client, coop, supplier.id, household_code=household.code, kind="dividend", shares=5,
                    valid_from=(today() + timedelta(days=365)).isoformat())
    assert planned.status_code == 201, planned.json


def test_a_link_ending_more_than_five_years_ahead_is_a_mistyped_year_and_refused(client, coop, supplier):
    """A link may end within an agreement's term (a cooperation plan's five years); one ending in 2062 (for 2026)
    would keep the household in purchase periods and its shares in the dividend split for decades, and once given,
    the link can no longer be ended."""
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    last_day = today() + timedelta(days=5 * 366)
    for end in (last_day + timedelta(days=1), date(2099, 12, 31)):
        refused = _link(client, coop, supplier.id, household_code=household.code, kind="dividend", shares=5,
                        valid_from=today().isoformat(), valid_until=end.isoformat())
        assert refused.status_code == 422 and "valid_until" in refused.json["error"]["details"], refused.json
    assert client.get(f"/api/v1/suppliers/{supplier.id}/benefit-links", headers=coop).json["items"] == []
    open_link = _link(client, coop, supplier.id, household_code=household.code, kind="dividend", shares=5,
                      valid_from=today().isoformat())
    for end in (last_day + timedelta(days=1), date(2099, 12, 31)):
        refused = client.patch(f"/api/v1/benefit-links/{open_link.json['id']}", headers=coop,
                               json={"valid_until": end.isoformat()})
        assert refused.status_code == 422 and "valid_until" in refused.json["error"]["details"], refused.json
    ended = client.patch(f"/api/v1/benefit-links/{open_link.json['id']}", headers=coop,
                         json={"valid_until": last_day.isoformat()})
    assert ended.status_code == 200 and ended.json["valid_until"] == last_day.isoformat(), ended.json
    three_years = (today() + timedelta(days=3 * 365)).isoformat()  # a three-year employment agreement, given whole
    planned = _link(client, coop, supplier.id, household_code=household.code, kind="employment",
                    valid_from=today().isoformat(), valid_until=three_years)
    assert planned.status_code == 201 and planned.json["valid_until"] == three_years, planned.json


def test_a_link_says_who_made_it_as_it_says_who_ended_it(client, coop, admin, supplier):
    """A dividend link grants shares of the supplier's dividends: who granted them must be known, as who ended them."""
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    me = client.get("/api/v1/users/me", headers=coop).json["id"]
    made = _link(client, coop, supplier.id, household_code=household.code, kind="dividend", shares=3,
                 valid_from=(today() + timedelta(days=1)).isoformat())
    assert made.status_code == 201, made.json
    assert made.json["created_by"] == me
    shown = client.get(f"/api/v1/benefit-links/{made.json['id']}", headers=admin).json
    assert shown["created_by"] == me and shown["ended_by"] is None
