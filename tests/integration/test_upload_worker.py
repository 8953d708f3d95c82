"""A large inventory upload processed by a real worker through Redis shows its progress while it runs."""
from __future__ import annotations

import io
import time

import pytest
from sqlalchemy import func, select

from catalog.models import Lot, LotContribution
from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory, linked_households
from tests.catalog.test_uploads import csv_bytes
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.suppliers.factories import SupplierFactory

LOTS, HOUSEHOLDS = 150, 120

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_progress_is_visible_mid_way_and_the_import_completes(celery_worker_process, redis_app):
    supplier = SupplierFactory()
    ProductFactory(supplier=supplier, sku="ZJ-KQ-500")
    LocationFactory(code="XC-WH")
    codes = [h.code for h in linked_households(supplier, HOUSEHOLDS)]
    user = UserFactory(role="coop", supplier_id=supplier.id)
    db.session.commit()
    client = redis_app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": user.username, "password": DEFAULT_PASSWORD})
    headers = {"Authorization": f"Bearer {token.json['access_token']}"}
    rows = [["ZJ-KQ-500", f"LOT-{lot:04d}", "2026-09-03", "XC-WH", code, 1 + lot % 7]
            for lot in range(LOTS) for code in codes]

    response = client.post(f"/api/v1/suppliers/{supplier.id}/inventory-uploads", headers=headers,
                           data={"file": (io.BytesIO(csv_bytes(rows)), "big.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 202 and response.json["status"] == "pending"

    seen, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        state = client.get(f"/api/v1/inventory-uploads/{response.json['id']}", headers=headers).json
        seen.append((state["status"], state["rows_done"], state["rows_total"]))
        if state["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.02)
    assert seen[-1] == ("succeeded", LOTS * HOUSEHOLDS, LOTS * HOUSEHOLDS), seen[-3:]
    mid_way = [done for status, done, total in seen if status == "processing" and 0 < done < total]
    assert mid_way, "no poll saw the import part-way done"
    assert mid_way == sorted(mid_way)
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Lot.id))) == LOTS
    assert db.session.scalar(select(func.count(LotContribution.id))) == LOTS * HOUSEHOLDS


def test_an_upload_lost_by_the_broker_is_re_queued_by_the_sweep_and_imported_by_the_worker(
        celery_worker_process, redis_app, monkeypatch):
    from datetime import timedelta

    from catalog import tasks, uploads
    from catalog.models import InventoryUpload
    from shop.tasks import sweep

    supplier = SupplierFactory()
    ProductFactory(supplier=supplier, sku="ZJ-KQ-500")
    LocationFactory(code="XC-WH")
    (household,) = linked_households(supplier, 1)
    db.session.commit()
    data = csv_bytes([["ZJ-KQ-500", "LOT-LOST", "2026-09-03", "XC-WH", household.code, 3]])
    with monkeypatch.context() as patch:
        patch.setattr(tasks.import_inventory, "delay", lambda *a: (_ for _ in ()).throw(ConnectionError()))
        upload, _ = uploads.submit_upload(actor=None, supplier_id=supplier.id, filename="lost.csv", data=data,
                                          max_bytes=len(data))
        db.session.commit()
    later = uploads.utcnow() + timedelta(minutes=2)
    monkeypatch.setattr(uploads, "utcnow", lambda: later)
    assert sweep.apply().get()["catalog.inventory_uploads"] == 1
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        db.session.expire_all()
        if db.session.get(InventoryUpload, upload.id).status == "succeeded":
            break
        time.sleep(0.1)
    assert db.session.get(InventoryUpload, upload.id).status == "succeeded"
    assert db.session.scalar(select(func.count(Lot.id))) == 1
