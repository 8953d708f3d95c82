"""Identical uploads racing on real PostgreSQL become one import."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from catalog import uploads
from catalog.models import InventoryUpload, Lot
from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory, linked_households
from tests.catalog.test_concurrency import race
from tests.catalog.test_uploads import csv_bytes
from tests.parallel import second_while_first_uncommitted
from tests.suppliers.factories import SupplierFactory

pytestmark = pytest.mark.postgres


def test_concurrent_identical_uploads_create_one_import(pg_app):
    supplier = SupplierFactory()
    ProductFactory(supplier=supplier, sku="ZJ-KQ-500")
    LocationFactory(code="XC-WH")
    (household,) = linked_households(supplier, 1)
    db.session.commit()
    supplier_id, data = supplier.id, csv_bytes([["ZJ-KQ-500", "LOT-P", "2026-09-03", "XC-WH", household.code, 3]])
    created = []

    def send(_: int) -> None:
        upload, is_new = uploads.submit_upload(actor=None, supplier_id=supplier_id, filename="same.csv",
                                               data=data, max_bytes=len(data))
        created.append(is_new)

    outcomes = race(pg_app, 12, send)
    assert outcomes == {"ok": 12}
    assert created.count(True) == 1
    db.session.expire_all()
    assert db.session.scalar(select(func.count(InventoryUpload.id))) == 1
    assert db.session.scalar(select(InventoryUpload.status)) == "succeeded"
    assert db.session.scalar(select(func.count(Lot.id))) == 1


@pytest.mark.parametrize("column", [0, 3], ids=["sku", "location"])
def test_a_nul_in_a_code_cell_fails_the_upload_on_that_cell_not_as_an_unexpected_failure(pg_app, column):
    supplier = SupplierFactory()
    ProductFactory(supplier=supplier, sku="ZJ-KQ-500")
    LocationFactory(code="XC-WH")
    (household,) = linked_households(supplier, 1)
    db.session.commit()
    rows = [["ZJ-KQ-500", f"LOT-{number}", "2026-09-03", "XC-WH", household.code, 3] for number in range(200)]
    rows[-1][column] += "\x00"  # past the first 4 KB, where a NUL byte would make the file read as UTF-16
    data = csv_bytes(rows)
    upload, _ = uploads.submit_upload(actor=None, supplier_id=supplier.id, filename="nul.csv", data=data,
                                      max_bytes=len(data))
    db.session.commit()

    uploads.import_upload(upload.id)

    db.session.expire_all()
    upload = db.session.get(InventoryUpload, upload.id)
    assert upload.status == "failed"
    assert [(error["row"], error["code"]) for error in upload.errors] == [(201, "code_characters")]
    assert db.session.scalar(select(func.count(Lot.id))) == 0


def test_an_import_that_took_over_a_stale_claim_while_the_first_still_ran_leaves_the_first_ones_success(pg_app):
    """A worker that took over an import's claim gone stale (the sweeper re-queued it) while the first worker was still
    importing waits for that import, and finds it done: the upload stays succeeded with its lots, not failed on its own
    lot codes 'imported meanwhile'."""
    supplier = SupplierFactory()
    ProductFactory(supplier=supplier, sku="ZJ-KQ-500")
    LocationFactory(code="XC-WH")
    (household,) = linked_households(supplier, 1)
    db.session.commit()
    data = csv_bytes([["ZJ-KQ-500", "LOT-S", "2026-09-03", "XC-WH", household.code, 3]])
    upload, _ = uploads.submit_upload(actor=None, supplier_id=supplier.id, filename="slow.csv", data=data,
                                      max_bytes=len(data), queue_import=False)
    assert uploads.claim_upload(upload.id)
    db.session.refresh(upload)
    upload.claimed_at -= uploads.STALE_CLAIM * 2  # the first worker's claim, seen as stale by the sweeper
    db.session.commit()
    assert uploads.claim_upload(upload.id)  # the second worker's takeover, before the first wrote anything
    db.session.commit()
    upload_id = upload.id

    outcome = second_while_first_uncommitted(pg_app, lambda: uploads.import_upload(upload_id),
                                             lambda: uploads.import_upload(upload_id).status)

    assert outcome == "succeeded"
    db.session.expire_all()
    upload = db.session.get(InventoryUpload, upload_id)
    assert (upload.status, upload.lots_created, upload.errors) == ("succeeded", 1, [])
    assert db.session.scalar(select(func.count(Lot.id))) == 1


def test_an_import_losing_a_race_for_hundreds_of_lot_codes_keeps_a_bounded_error_list(pg_app):
    """Two files of the same 300 lots (the same rows saved again: other bytes) imported at once: the one that loses
    the race on every lot code lists the first of them and counts the rest, as any failed file does, not 300 errors."""
    from catalog.spreadsheet import Limits
    from tests.parallel import second_while_first_uncommitted

    supplier = SupplierFactory()
    ProductFactory(supplier=supplier, sku="ZJ-KQ-500")
    LocationFactory(code="XC-WH")
    (household,) = linked_households(supplier, 1)
    db.session.commit()
    rows = [["ZJ-KQ-500", f"LOT-{i}", "2026-09-03", "XC-WH", household.code, 3] for i in range(300)]
    first, _ = uploads.submit_upload(actor=None, supplier_id=supplier.id, filename="a.csv", data=csv_bytes(rows),
                                     max_bytes=10**6, queue_import=False)
    second, _ = uploads.submit_upload(actor=None, supplier_id=supplier.id, filename="b.csv",
                                      data=csv_bytes(rows, encoding="gb18030") + b"\r\n", max_bytes=10**6,
                                      queue_import=False)
    db.session.commit()
    first_id, second_id = first.id, second.id
    assert uploads.claim_upload(first_id) and uploads.claim_upload(second_id)
    db.session.commit()

    status = second_while_first_uncommitted(pg_app, lambda: uploads.import_upload(first_id),
                                            lambda: uploads.import_upload(second_id).status)

    assert status == "failed"
    db.session.expire_all()
    errors = db.session.get(InventoryUpload, second_id).errors
    assert len(errors) == Limits.errors + 1
    assert {e["code"] for e in errors[:-1]} == {"lot_code_imported_meanwhile"}
    assert errors[-1]["code"] == "more_errors" and "100 more errors" in errors[-1]["message"]
    assert uploads.problems_found(errors) == 300
    assert db.session.scalar(select(func.count(Lot.id))) == 300
