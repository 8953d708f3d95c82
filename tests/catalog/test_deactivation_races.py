"""On PostgreSQL: a product, a lot, an upload or an import made while an admin deactivates its supplier waits for
the deactivation and is refused (`supplier_inactive`), as every creation of an inactive supplier's is."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from catalog import inventory, service, uploads
from catalog.models import InventoryUpload, Lot, Product
from shop.auth.models import User
from shop.db import db
from suppliers import service as suppliers
from suppliers.models import Household
from tests.catalog.factories import LocationFactory, ProductFactory, linked_households
from tests.catalog.test_products import product_body
from tests.catalog.test_uploads import csv_bytes
from tests.factories import UserFactory
from tests.parallel import second_while_first_uncommitted
from tests.suppliers.factories import SupplierFactory

pytestmark = pytest.mark.postgres


def _deactivation(supplier_id: int, admin_id: int):
    """The admin's deactivation of the supplier, to be held uncommitted."""
    def deactivate() -> None:
        suppliers.update_supplier(supplier_id=supplier_id, user=db.session.get(User, admin_id),
                                  changes=suppliers.SupplierChanges(active=False))
    return deactivate


def test_a_product_created_while_its_supplier_is_deactivated_is_refused(pg_app):
    supplier, admin = SupplierFactory(), UserFactory(role="admin")
    coop = UserFactory(role="coop", supplier_id=supplier.id)
    db.session.commit()
    supplier_id, admin_id, coop_id = supplier.id, admin.id, coop.id

    def create() -> str:
        return service.create_product(actor=db.session.get(User, coop_id), **product_body(sku="RACE-DEACT-1")).sku

    assert second_while_first_uncommitted(pg_app, _deactivation(supplier_id, admin_id), create) == "supplier_inactive"
    assert db.session.scalar(select(func.count(Product.id)).where(Product.supplier_id == supplier_id)) == 0


def test_a_lot_created_while_its_supplier_is_deactivated_is_refused(pg_app):
    supplier, admin = SupplierFactory(), UserFactory(role="admin")
    coop = UserFactory(role="coop", supplier_id=supplier.id)
    product, location = ProductFactory(supplier=supplier), LocationFactory()
    (household,) = linked_households(supplier, 1)
    db.session.commit()
    supplier_id, admin_id, coop_id = supplier.id, admin.id, coop.id
    sku, location_code, household_code = product.sku, location.code, household.code

    def create() -> int:
        return inventory.create_lot(actor=db.session.get(User, coop_id), product_sku=sku, location_code=location_code,
                                    lot_code="RACE-LOT-1", harvested_on=date(2026, 9, 3), packed_on=None,
                                    village="三河村", contributions=[{"household_code": household_code,
                                                                      "quantity": 5}]).id

    assert second_while_first_uncommitted(pg_app, _deactivation(supplier_id, admin_id), create) == "supplier_inactive"
    assert db.session.scalar(select(func.count(Lot.id))) == 0


def _upload_world():
    """An admin, a supplier with a product, a warehouse and a linked household, and a one-row file for them."""
    supplier, admin = SupplierFactory(), UserFactory(role="admin")
    ProductFactory(supplier=supplier, sku="ZJ-KQ-500")
    LocationFactory(code="XC-WH")
    (household,) = linked_households(supplier, 1)
    db.session.commit()
    return supplier.id, admin.id, csv_bytes([["ZJ-KQ-500", "LOT-R", "2026-09-03", "XC-WH", household.code, 3]])


def test_an_upload_submitted_while_its_supplier_is_deactivated_is_refused(pg_app):
    supplier_id, admin_id, data = _upload_world()

    def submit() -> int:
        return uploads.submit_upload(actor=db.session.get(User, admin_id), supplier_id=supplier_id,
                                     filename="race.csv", data=data, max_bytes=len(data), queue_import=False)[0].id

    assert second_while_first_uncommitted(pg_app, _deactivation(supplier_id, admin_id), submit) == "supplier_inactive"
    assert db.session.scalar(select(func.count(InventoryUpload.id))) == 0


def test_an_import_run_while_its_supplier_is_deactivated_creates_no_lot(pg_app):
    supplier_id, admin_id, data = _upload_world()
    upload, _ = uploads.submit_upload(actor=None, supplier_id=supplier_id, filename="race.csv", data=data,
                                      max_bytes=len(data), queue_import=False)
    uploads.claim_upload(upload.id)
    db.session.commit()
    upload_id = upload.id

    def run_import() -> str:
        return uploads.import_upload(upload_id).status

    assert second_while_first_uncommitted(pg_app, _deactivation(supplier_id, admin_id), run_import) == "failed"
    db.session.expire_all()
    assert db.session.get(InventoryUpload, upload_id).errors[0]["code"] == "supplier_inactive"
    assert db.session.scalar(select(func.count(Lot.id))) == 0


def _household_deactivation(household_id: int, admin_id: int):
    """The admin's deactivation of the household, to be held uncommitted."""
    def deactivate() -> None:
        suppliers.update_household(household_id=household_id, user=db.session.get(User, admin_id),
                                   changes=suppliers.HouseholdChanges(active=False))
    return deactivate


def test_a_lot_created_while_a_contributing_household_is_deactivated_is_refused(pg_app):
    """A deactivated household delivers no more (as a lot of it is refused outright): a lot naming it, created while
    an admin's deactivation of it is under way, waits for it and is refused, not created with its contribution."""
    supplier, admin = SupplierFactory(), UserFactory(role="admin")
    coop = UserFactory(role="coop", supplier_id=supplier.id)
    product, location = ProductFactory(supplier=supplier), LocationFactory()
    (household,) = linked_households(supplier, 1)
    db.session.commit()
    household_id, admin_id, coop_id = household.id, admin.id, coop.id
    sku, location_code, household_code = product.sku, location.code, household.code

    def create() -> int:
        return inventory.create_lot(actor=db.session.get(User, coop_id), product_sku=sku, location_code=location_code,
                                    lot_code="RACE-LOT-2", harvested_on=date(2026, 9, 3), packed_on=None,
                                    village="三河村", contributions=[{"household_code": household_code,
                                                                      "quantity": 5}]).id

    outcome = second_while_first_uncommitted(pg_app, _household_deactivation(household_id, admin_id), create)

    assert outcome == "household_not_linked"
    assert db.session.scalar(select(func.count(Lot.id))) == 0


def test_an_import_run_while_a_contributing_household_is_deactivated_creates_no_lot(pg_app):
    supplier_id, admin_id, data = _upload_world()
    household_id = db.session.scalar(select(Household.id))
    upload, _ = uploads.submit_upload(actor=None, supplier_id=supplier_id, filename="race.csv", data=data,
                                      max_bytes=len(data), queue_import=False)
    uploads.claim_upload(upload.id)
    db.session.commit()
    upload_id = upload.id

    def run_import() -> str:
        return uploads.import_upload(upload_id).status

    outcome = second_while_first_uncommitted(pg_app, _household_deactivation(household_id, admin_id), run_import)

    assert outcome == "failed"
    db.session.expire_all()
    assert [error["code"] for error in db.session.get(InventoryUpload, upload_id).errors] == ["household_deactivated"]
    assert db.session.scalar(select(func.count(Lot.id))) == 0
