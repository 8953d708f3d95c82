"""Concurrent purchase links and pairings: exactly one of two overlapping requests wins, on both databases."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError

from catalog.models import Lot
from shop.db import db
from shop.regions.models import Pairing
from suppliers.models import BenefitLink
from tests.catalog.factories import LocationFactory, ProductFactory, linked_households, lot_body
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.suppliers.factories import BenefitLinkFactory, HouseholdFactory, SupplierFactory


def _race(app, requests: list) -> list:
    """Send the (method, url, json, headers) requests at once from threads; their responses."""
    client = app.test_client()
    barrier = threading.Barrier(len(requests))
    responses = []

    def send(method, url, body, headers):
        barrier.wait()
        responses.append(client.open(url, method=method, json=body, headers=headers))

    threads = [threading.Thread(target=send, args=request) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return responses


def _headers(app, **user) -> dict:
    """Authorization headers of a new user."""
    account = UserFactory(**user)
    db.session.commit()
    token = app.test_client().post("/api/v1/auth/token",
                                   json={"username": account.username, "password": DEFAULT_PASSWORD})
    return {"Authorization": f"Bearer {token.json['access_token']}"}


def _two_overlapping_purchase_links(app) -> tuple[list, int]:
    """Two co-op users of one supplier link the same household for overlapping periods at once."""
    household = HouseholdFactory()
    db.session.commit()
    url = f"/api/v1/suppliers/{household.registered_by_id}/benefit-links"
    bodies = [{"household_code": household.code, "kind": "purchase", "valid_from": start}
              for start in ("2026-03-01", "2026-04-01")]
    requests = [("POST", url, body, _headers(app, role="coop", supplier_id=household.registered_by_id))
                for body in bodies]
    return _race(app, requests), household.id


def _two_overlapping_pairings(app) -> list:
    """Two admins add overlapping pairings of the same regions and programme at once."""
    bodies = [{"donor_code": "440604", "recipient_code": "513437", "valid_from": start}
              for start in ("2030-01-01", "2030-06-01")]
    return _race(app, [("POST", "/api/v1/pairings", body, _headers(app, role="admin")) for body in bodies])


def _one_winner(responses: list, code: str) -> None:
    """One request created, the other got the overlap conflict."""
    assert sorted(r.status_code for r in responses) == [201, 409], [r.json for r in responses]
    assert next(r for r in responses if r.status_code == 409).json["error"]["code"] == code


def test_racing_purchase_links_on_sqlite_give_one_link(app):
    responses, household_id = _two_overlapping_purchase_links(app)
    _one_winner(responses, "benefit_link_overlaps")
    count = select(func.count()).select_from(BenefitLink).where(BenefitLink.household_id == household_id)
    assert db.session.scalar(count) == 1


def test_racing_pairings_on_sqlite_give_one_pairing(app):
    _one_winner(_two_overlapping_pairings(app), "pairing_overlaps")
    assert db.session.scalar(select(func.count()).select_from(Pairing).where(Pairing.valid_from >= "2030-01-01")) == 1


@pytest.mark.postgres
def test_racing_purchase_links_on_postgres_give_one_link(pg_app):
    responses, household_id = _two_overlapping_purchase_links(pg_app)
    _one_winner(responses, "benefit_link_overlaps")
    count = select(func.count()).select_from(BenefitLink).where(BenefitLink.household_id == household_id)
    assert db.session.scalar(count) == 1


@pytest.mark.postgres
def test_racing_pairings_on_postgres_give_one_pairing(pg_app):
    _one_winner(_two_overlapping_pairings(pg_app), "pairing_overlaps")


def _two_alike_counties(app) -> list:
    """Two admins add a county of one prefecture under two codes and names that read alike: the second is sent once
    the first has looked at the prefecture's names and before it writes its county (held up to 1.5 s there)."""
    bodies = [{"code": code, "name": name, "level": "county", "parent_code": "513400", "side": "recipient"}
              for code, name in (("513498", "新设县"), ("513497", "新设 县"))]
    headers = [_headers(app, role="admin") for _ in bodies]
    client, checked, second_done, responses = app.test_client(), threading.Event(), threading.Event(), []

    def hold(_conn, _cursor, statement, *_):
        if threading.current_thread().name == "first" and statement.lstrip().upper().startswith("INSERT INTO REGIONS"):
            checked.set()
            second_done.wait(timeout=1.5)

    def send(index: int) -> None:
        responses.append(client.post("/api/v1/regions", json=bodies[index], headers=headers[index]))
        if index:
            second_done.set()

    event.listen(db.engine, "before_cursor_execute", hold)
    try:
        threads = [threading.Thread(target=send, args=(0,), name="first"), threading.Thread(target=send, args=(1,))]
        threads[0].start()
        assert checked.wait(timeout=30)
        threads[1].start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        event.remove(db.engine, "before_cursor_execute", hold)
    return responses


def test_racing_alike_counties_on_sqlite_give_one_county(app):
    _one_winner(_two_alike_counties(app), "region_exists")


@pytest.mark.postgres
def test_racing_alike_counties_on_postgres_give_one_county(pg_app):
    _one_winner(_two_alike_counties(pg_app), "region_exists")


@pytest.mark.postgres
def test_postgres_itself_refuses_overlapping_purchase_links_but_not_dividends(pg_app):
    link = BenefitLinkFactory()
    db.session.commit()
    insert = text("INSERT INTO benefit_links (supplier_id, household_id, kind, shares, valid_from, valid_until, "
                  "created_at) VALUES (:s, :h, :kind, :shares, '2026-06-01', NULL, now())")
    values = {"s": link.supplier_id, "h": link.household_id}
    for _ in range(2):
        db.session.execute(insert, {**values, "kind": "dividend", "shares": 5})
    db.session.execute(insert, {**values, "kind": "employment", "shares": None})
    db.session.commit()
    with pytest.raises(IntegrityError, match="ex_benefit_links_no_overlap"):
        db.session.execute(insert, {**values, "kind": "purchase", "shares": None})
    db.session.rollback()


def _two_ends_of_one_link(app) -> tuple[list, BenefitLink]:
    """Two co-op users of one supplier end the same open link at once, on different days."""
    link = BenefitLinkFactory(kind="employment")
    db.session.commit()
    requests = [("PATCH", f"/api/v1/benefit-links/{link.id}", {"valid_until": day},
                 _headers(app, role="coop", supplier_id=link.supplier_id)) for day in ("2026-08-31", "2026-09-30")]
    return _race(app, requests), link


def _one_end_stands(responses: list, link: BenefitLink) -> None:
    """One end was made, the other told the link had ended; the link ends on the day its one 200 said."""
    assert sorted(r.status_code for r in responses) == [200, 409], [r.json for r in responses]
    assert next(r for r in responses if r.status_code == 409).json["error"]["code"] == "benefit_link_ended"
    ended = next(r for r in responses if r.status_code == 200).json
    db.session.expire_all()
    stored = db.session.get(BenefitLink, link.id)
    assert (stored.valid_until.isoformat(), stored.ended_by) == (ended["valid_until"], ended["ended_by"])


def test_racing_ends_of_a_link_on_sqlite_give_one_end(app):
    _one_end_stands(*_two_ends_of_one_link(app))


@pytest.mark.postgres
def test_racing_ends_of_a_link_on_postgres_give_one_end(pg_app):
    _one_end_stands(*_two_ends_of_one_link(pg_app))


def _a_link_ended_while_a_lot_is_checked(app) -> tuple[int, int, int]:
    """A co-op records a lot harvested on 2026-09-03 while another of its users ends the household's purchase link on
    the 2nd: the end is sent once the lot's links are checked and before the lot is written (held up to 1.5 s
    there). The lot's and the end's status codes, and the lots stored."""
    supplier = SupplierFactory()
    product, location = ProductFactory(supplier=supplier), LocationFactory()
    (household,) = linked_households(supplier, 1)
    db.session.commit()
    link_id = db.session.scalar(select(BenefitLink.id).where(BenefitLink.household_id == household.id))
    body = lot_body(product, location, [household])
    lot_headers, end_headers = (_headers(app, role="coop", supplier_id=supplier.id) for _ in range(2))
    client, checked, ended, answers = app.test_client(), threading.Event(), threading.Event(), {}

    def hold(_conn, _cursor, statement, *_):
        if threading.current_thread().name == "lot" and statement.lstrip().upper().startswith("INSERT INTO LOTS"):
            checked.set()
            ended.wait(timeout=1.5)

    def lot() -> None:
        answers["lot"] = client.post("/api/v1/lots", json=body, headers=lot_headers).status_code

    def end() -> None:
        answers["end"] = client.patch(f"/api/v1/benefit-links/{link_id}", json={"valid_until": "2026-09-02"},
                                      headers=end_headers).status_code
        ended.set()

    event.listen(db.engine, "before_cursor_execute", hold)
    try:
        threads = [threading.Thread(target=lot, name="lot"), threading.Thread(target=end, name="end")]
        threads[0].start()
        assert checked.wait(timeout=30)
        threads[1].start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        event.remove(db.engine, "before_cursor_execute", hold)
    db.session.expire_all()
    return answers["lot"], answers["end"], db.session.scalar(select(func.count(Lot.id)))


def _never_both(lot: int, end: int, lots: int) -> None:
    """The delivery was recorded and the link not ended before it (409 benefit_link_backdated), or the other way
    round: never a lot holding a delivery outside every purchase link of its household."""
    assert (lot, end, lots) in {(201, 409, 1), (422, 200, 0)}, (lot, end, lots)


def test_a_link_ended_while_a_lot_is_checked_never_leaves_the_delivery_outside_it_on_sqlite(app):
    _never_both(*_a_link_ended_while_a_lot_is_checked(app))


@pytest.mark.postgres
def test_a_link_ended_while_a_lot_is_checked_never_leaves_the_delivery_outside_it_on_postgres(pg_app):
    _never_both(*_a_link_ended_while_a_lot_is_checked(pg_app))
