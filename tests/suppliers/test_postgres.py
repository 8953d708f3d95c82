"""On PostgreSQL: two co-ops registering the same person at the same moment get one household."""
from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import func, select

from shop.auth.models import User
from shop.db import db
from suppliers import service
from suppliers.models import BenefitLink, Household
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.parallel import second_while_first_uncommitted
from tests.suppliers.factories import HouseholdFactory, SupplierFactory, household_payload

pytestmark = pytest.mark.postgres


def _headers(client, supplier_id: int) -> dict:
    """Authorization headers of a new user of the supplier."""
    user = UserFactory(role="coop", supplier_id=supplier_id)
    db.session.commit()
    token = client.post("/api/v1/auth/token", json={"username": user.username, "password": DEFAULT_PASSWORD})
    return {"Authorization": f"Bearer {token.json['access_token']}"}


def test_concurrent_registrations_of_one_id_number_give_one_201_and_one_409(pg_app):
    client = pg_app.test_client()
    suppliers = [SupplierFactory(), SupplierFactory(county_code="513437")]
    db.session.commit()
    requests = [(s.id, _headers(client, s.id)) for s in suppliers]
    id_number = household_payload()["id_number"]
    barrier = threading.Barrier(len(requests))
    responses = []

    def register(supplier_id, headers):
        body = household_payload(id_number=id_number)
        barrier.wait()
        responses.append(client.post(f"/api/v1/suppliers/{supplier_id}/households", json=body, headers=headers))

    threads = [threading.Thread(target=register, args=request) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(r.status_code for r in responses) == [201, 409]
    conflict = next(r for r in responses if r.status_code == 409)
    assert conflict.json["error"]["code"] == "household_exists"
    assert id_number not in conflict.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Household)) == 1


def test_the_unique_hash_decides_when_the_duplicate_check_cannot_see_the_other_transaction(pg_app):
    first_supplier, second_supplier = SupplierFactory(), SupplierFactory(county_code="513437")
    db.session.commit()
    ids = (first_supplier.id, second_supplier.id)
    id_number = household_payload()["id_number"]

    def register(supplier_id):
        """Register the same person under `supplier_id`."""
        body = {**household_payload(id_number=id_number), "consent_on": date(2026, 1, 5)}
        return service.register_household(supplier_id=supplier_id, supplier_scope=None, **body)

    second = second_while_first_uncommitted(pg_app, lambda: register(ids[0]), lambda: register(ids[1]))

    assert second == "household_exists"
    assert db.session.scalar(select(func.count()).select_from(Household)) == 1


def test_two_households_registered_at_once_under_one_code_in_two_counties_give_one_201_and_one_409(pg_app):
    """A supplier's registry codes name one household each for it (its uploads and links find households by code):
    a second household registered with the code while the first's registration is under way is refused."""
    supplier = SupplierFactory()
    db.session.commit()
    supplier_id = supplier.id

    def register(county_code):
        """Register a household with code R-TWIN in `county_code`."""
        body = {**household_payload(code="R-TWIN", county_code=county_code), "consent_on": date(2026, 1, 5)}
        return service.register_household(supplier_id=supplier_id, supplier_scope=None, **body)

    second = second_while_first_uncommitted(pg_app, lambda: register("513431"), lambda: register("513437"))

    assert second == "household_code_taken"
    assert db.session.scalar(select(func.count()).select_from(Household).where(Household.code == "R-TWIN")) == 1


def test_two_links_at_once_of_another_cooperatives_household_both_link_it(pg_app):
    """A co-op linking another co-op's household for purchase and for employment at the same moment gets both links:
    the second request finds the household already its own, instead of failing on the first's link (a 500)."""
    ours, theirs = SupplierFactory(), SupplierFactory(county_code="513437")
    household = HouseholdFactory(supplier=theirs)
    db.session.commit()
    ours_id, code, id_number = ours.id, household.code, household.id_number

    def link(kind):
        """Link the household to our co-op by its code and ID number."""
        return service.create_benefit_link(supplier_id=ours_id, supplier_scope=ours_id, household_code=code,
                                           id_number=id_number, kind=kind, valid_from=date(2026, 1, 1)).kind

    assert second_while_first_uncommitted(pg_app, lambda: link("purchase"), lambda: link("employment")) \
        == "employment"
    kinds = db.session.scalars(select(BenefitLink.kind).where(BenefitLink.supplier_id == ours_id)).all()
    assert sorted(kinds) == ["employment", "purchase"]


def test_one_cooperative_registering_households_at_once_gets_them_all(pg_app):
    """Registrations of one co-op at the same moment wait for each other on the supplier's row (taken before either
    writes), never each on the other (a deadlock, 500)."""
    client = pg_app.test_client()
    supplier = SupplierFactory()
    db.session.commit()
    supplier_id, headers = supplier.id, _headers(client, supplier.id)
    barrier = threading.Barrier(4)
    responses = []

    def register():
        body = household_payload()
        barrier.wait()
        responses.append(client.post(f"/api/v1/suppliers/{supplier_id}/households", json=body, headers=headers))

    threads = [threading.Thread(target=register) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert [r.status_code for r in responses] == [201] * 4


def test_a_household_registered_while_its_supplier_is_deactivated_is_refused(pg_app):
    """An inactive supplier takes on no households: a registration that read the supplier active just before an
    admin's deactivation committed waits for it and gets supplier_inactive, as a new co-op user does."""
    supplier = SupplierFactory()
    db.session.commit()
    supplier_id = supplier.id

    def deactivate():
        service.update_supplier(supplier_id=supplier_id, user=UserFactory(role="admin"),
                                changes=service.SupplierChanges(active=False))

    def register():
        body = {**household_payload(), "consent_on": date(2026, 1, 5)}
        return service.register_household(supplier_id=supplier_id, supplier_scope=None, **body)

    assert second_while_first_uncommitted(pg_app, deactivate, register) == "supplier_inactive"
    assert db.session.scalar(select(func.count()).select_from(Household)) == 0


def test_a_link_made_while_its_household_is_deactivated_is_refused(pg_app):
    """Deactivating a household stops new links (DESIGN.md): a link that read the household active just before a
    deactivation committed waits for it and gets household_inactive, as a link made after it does."""
    supplier = SupplierFactory()
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    supplier_id, household_id, code = supplier.id, household.id, household.code

    def deactivate():
        service.update_household(household_id=household_id, user=UserFactory(role="admin"),
                                 changes=service.HouseholdChanges(active=False))

    def link():
        return service.create_benefit_link(supplier_id=supplier_id, supplier_scope=supplier_id, household_code=code,
                                           kind="purchase", valid_from=date(2026, 1, 1)).kind

    assert second_while_first_uncommitted(pg_app, deactivate, link) == "household_inactive"
    assert db.session.scalar(select(func.count()).select_from(BenefitLink)) == 0


def test_a_link_made_while_its_supplier_is_deactivated_is_refused(pg_app):
    """An inactive supplier takes on no links, as it takes on no households: a link of its own household that read
    the supplier active just before an admin's deactivation committed waits for it and gets supplier_inactive."""
    supplier = SupplierFactory()
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    supplier_id, code = supplier.id, household.code

    def deactivate():
        service.update_supplier(supplier_id=supplier_id, user=UserFactory(role="admin"),
                                changes=service.SupplierChanges(active=False))

    def link():
        return service.create_benefit_link(supplier_id=supplier_id, supplier_scope=supplier_id, household_code=code,
                                           kind="dividend", shares=5, valid_from=date(2026, 1, 1)).kind

    assert second_while_first_uncommitted(pg_app, deactivate, link) == "supplier_inactive"
    assert db.session.scalar(select(func.count()).select_from(BenefitLink)) == 0


def test_a_household_edited_by_its_co_op_while_its_supplier_is_deactivated_is_refused(pg_app):
    """A deactivated supplier's co-op changes none of its data: an edit of a household that read the supplier active
    just before an admin's deactivation committed waits for it and gets supplier_inactive."""
    supplier = SupplierFactory()
    household = HouseholdFactory(supplier=supplier)
    clerk = UserFactory(role="coop", supplier_id=supplier.id)
    db.session.commit()
    supplier_id, household_id, clerk_id, members = supplier.id, household.id, clerk.id, household.members

    def deactivate():
        service.update_supplier(supplier_id=supplier_id, user=UserFactory(role="admin"),
                                changes=service.SupplierChanges(active=False))

    def edit():
        return service.update_household(household_id=household_id, user=db.session.get(User, clerk_id),
                                        changes=service.HouseholdChanges(members=7)).members

    assert second_while_first_uncommitted(pg_app, deactivate, edit) == "supplier_inactive"
    db.session.expire_all()
    assert db.session.get(Household, household_id).members == members != 7
