"""The schema comes from migrations, and the migrations match the models."""
from __future__ import annotations

import json
import logging

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from shop.db import db


def _diff() -> list:
    """What autogenerate would add to make the migrated database match the models (types and server defaults too)."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True,
                                                         "render_as_batch": True})
        return compare_metadata(context, db.metadata)


def test_migrated_schema_matches_the_models(app):
    assert _diff() == []


def test_migrated_schema_matches_the_models_on_postgres(pg_app):
    assert _diff() == []


def test_migrations_downgrade_to_empty_and_upgrade_again(app):
    downgrade(revision="base")
    with db.engine.connect() as conn:
        assert set(db.inspect(conn).get_table_names()) <= {"alembic_version"}
    upgrade()
    assert _diff() == []


def test_a_migration_run_inside_the_app_leaves_its_logging_as_it_was(app, capsys):
    """`flask db upgrade` (or a test) runs the migrations inside the app, whose logging is set: they must not swap the
    root logger's handlers for one writing to the stderr of that moment (a CLI runner's or capture's stream, closed
    after it, so that every later log line would fail to be written)."""
    root = logging.getLogger()
    before = list(root.handlers)
    downgrade(revision="0050")
    upgrade()
    assert root.handlers == before


# --- 0006: identifiers re-normalised and re-hashed ---------------------------------------

FULL_WIDTH = 0xFEE0


def _wide(text: str) -> str:
    """`text` with its ASCII letters and digits in full-width form."""
    return "".join(chr(ord(c) + FULL_WIDTH) if c.isascii() and c.isalnum() else c for c in text)


def _rows_at_0005(people: list[tuple[str, str]]) -> None:
    """Go back to revision 0005 and store households spelled as given (code, ID number), un-normalised."""
    from shop import crypto
    from tests.suppliers.factories import make_uscc

    downgrade(revision="0005")
    now = "2026-01-01 00:00:00"
    db.session.execute(text("INSERT INTO users (id, username, password_hash, role, active, token_version, created_at) "
                            "VALUES (901, :u, 'x', 'admin', 1, 0, :now)"), {"u": " Ａdmin\u200b", "now": now})
    db.session.execute(text(
        "INSERT INTO suppliers (id, kind, name, uscc, county_code, active, created_at, bank_account_enc) "
        "VALUES (901, 'cooperative', '旧社', :uscc, '513431', 1, :now, :acct)"),
        {"uscc": _wide(make_uscc(9901)), "now": now,
         "acct": crypto.encrypt("6217 0000 0000 0009 901", field="suppliers.bank_account")})
    for n, (code, number) in enumerate(people, start=1):
        db.session.execute(text(
            "INSERT INTO households (id, code, county_code, head_name, id_number_enc, id_number_hash, village, members,"
            " consent_on, consent_basis, active, registered_by_id, created_at, updated_at) VALUES (:id, :code,"
            " '513431', '测试户', :enc, :hash, '测试村', 3, '2026-01-05', '书面同意书（测试）', 1, 901, :now, :now)"),
            {"id": 900 + n, "code": code, "enc": crypto.encrypt(number, field="households.id_number"),
             "hash": f"old-hash-{n}", "now": now})
    db.session.execute(text("INSERT INTO locations (id, code, name, kind, region_code) "
                            "VALUES (901, :code, '旧仓', 'warehouse', '513431')"), {"code": "ｗｈ－ｚｊ"})
    db.session.commit()


def test_0006_normalises_and_rehashes_existing_rows(app):
    from shop import crypto
    from suppliers.models import Household, KeyFingerprint, Supplier
    from tests.suppliers.factories import make_id_number

    number = make_id_number()
    _rows_at_0005([("ｔ００９０１", _wide(number[:6]) + " \u200b" + number[6:].lower())])
    upgrade()
    db.session.expire_all()
    household = db.session.get(Household, 901)
    assert household.code == "T00901" and household.id_number == number
    assert household.id_number_hash == crypto.lookup_hash(number)
    supplier = db.session.get(Supplier, 901)
    assert supplier.uscc.isascii() and supplier.bank_account == "6217000000000009901"
    assert db.session.scalar(text("SELECT username FROM users WHERE id = 901")) == "admin"
    assert db.session.scalar(text("SELECT code FROM locations WHERE id = 901")) == "WH-ZJ"
    assert db.session.get(KeyFingerprint, "lookup_hash").fingerprint == crypto.hash_key_fingerprint()
    assert _diff() == []


@pytest.mark.no_books_check  # leaves the schema at 0005
def test_0006_stops_on_duplicates_naming_them_masked_and_changes_nothing(app, caplog):
    from tests.suppliers.factories import make_id_number

    number = make_id_number()
    _rows_at_0005([("T00901", number), ("T00902", _wide(number)), ("t00903", make_id_number()),
                   ("T00903", make_id_number())])
    with pytest.raises(SystemExit):  # Flask-Migrate logs the migration's error and exits with status 1
        upgrade()
    message = caplog.text  # Flask-Migrate logs the error (on stderr, in `flask db upgrade`)
    assert "households.id_number_hash" in message and "ids 901, 902" in message
    assert "households.county_code+code" in message and "ids 903, 904" in message
    assert number not in message and number[:6] + "********" + number[-4:] in message
    db.session.rollback()
    assert db.session.scalar(text("SELECT version_num FROM alembic_version")) == "0005"
    assert db.session.scalar(text("SELECT code FROM households WHERE id = 903")) == "t00903"
    assert db.session.scalar(text("SELECT id_number_hash FROM households WHERE id = 902")) == "old-hash-2"


# --- 0019: payment event payloads stripped ---------------------------------------------

def test_0019_strips_stored_payment_events_to_what_processing_reads(app):
    billing = {"name": "测试 付款人", "email": "payer.test@example.com", "phone": "+86 139 1234 5678",
               "address": {"line1": "测试路 88 号", "city": "佛山市"}}
    refunded = {"id": "evt_old_2", "object": "event", "type": "charge.refunded", "created": 1790000000, "data": {
        "object": {"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "amount": 2500, "metadata": {},
                   "billing_details": billing, "refunds": {"object": "list", "data": [
                       {"id": "re_1", "amount": 800, "created": 1790000000, "status": "succeeded",
                        "currency": "cny"}]}}}}
    ignored = {"id": "evt_old_1", "object": "event", "type": "charge.captured", "created": 1790000000,
               "data": {"object": {"id": "ch_1", "object": "charge", "billing_details": billing}}}
    downgrade(revision="0018")
    for n, (payload, status) in enumerate(((ignored, "ignored"), (refunded, "processed")), start=1):
        db.session.execute(text(
            "INSERT INTO payment_events (id, provider, event_id, type, intent_id, created, payload, status, attempts,"
            " received_at) VALUES (:id, 'stripe', :event_id, :type, 'pi_1', :now, :payload, :status, 0, :now)"),
            {"id": n, "event_id": payload["id"], "type": payload["type"], "payload": json.dumps(payload),
             "status": status, "now": "2026-09-21 10:00:00"})
    db.session.commit()
    upgrade()
    stored = [json.loads(p) for p in db.session.scalars(text("SELECT payload FROM payment_events ORDER BY id"))]
    assert stored[0] == {"id": "evt_old_1", "type": "charge.captured"}
    assert stored[1] == {"id": "evt_old_2", "type": "charge.refunded", "created": 1790000000, "data": {"object": {
        "id": "ch_1", "object": "charge", "payment_intent": "pi_1", "amount": 2500, "metadata": {},
        "refunds": {"data": [{"id": "re_1", "amount": 800, "created": 1790000000, "status": "succeeded"}]}}}}


# --- 0020: inventory upload errors masked --------------------------------------------------

def test_0020_masks_the_personal_numbers_stored_upload_errors_quote(app):
    from catalog.models import InventoryUpload
    from tests.suppliers.factories import SupplierFactory

    quoted = [{"row": 1, "column": "6217513431000000001", "code": "unknown_column",
               "message": "Unknown column '6217513431000000001'.", "message_zh": "未知的列“6217513431000000001”。"},
              {"row": 2, "column": "农户编号", "code": "unknown_household",
               "message": "Unknown household 513431195102020013 for this co-operative.",
               "message_zh": "本合作社没有编号为 513431195102020013 的农户。"},
              {"row": 3, "column": "农户编号", "code": "unknown_household",
               "message": "Unknown household DEMO-ZJ-009 for this co-operative.",
               "message_zh": "本合作社没有编号为 DEMO-ZJ-009 的农户。"}]
    upload = InventoryUpload(supplier_id=SupplierFactory().id, filename="old.csv", content=b"x", sha256="0" * 64,
                             status="failed", errors=quoted)
    db.session.add(upload)
    db.session.commit()
    downgrade(revision="0019")
    upgrade()
    db.session.expire_all()
    masked = db.session.get(InventoryUpload, upload.id).errors
    assert [(e["column"], e["message"], e["message_zh"]) for e in masked] == [
        ("***", "Unknown column '***'.", "未知的列“***”。"),
        ("农户编号", "Unknown household *** for this co-operative.", "本合作社没有编号为 *** 的农户。"),
        ("农户编号", "Unknown household DEMO-ZJ-009 for this co-operative.", "本合作社没有编号为 DEMO-ZJ-009 的农户。")]


# --- 0021: inventory upload content dropped once processed --------------------------------

def test_0021_drops_the_files_of_finished_uploads_and_keeps_those_still_to_import(app):
    from catalog.models import InventoryUpload
    from tests.suppliers.factories import SupplierFactory

    supplier_id = SupplierFactory().id
    uploads = [InventoryUpload(supplier_id=supplier_id, filename=f"{status}.csv", content=status.encode(),
                               sha256=str(n) * 64, status=status)
               for n, status in enumerate(("pending", "processing", "succeeded", "failed"))]
    db.session.add_all(uploads)
    db.session.commit()
    downgrade(revision="0020")
    upgrade()
    db.session.expire_all()
    assert [db.session.get(InventoryUpload, upload.id).content for upload in uploads] == [
        b"pending", b"processing", None, None]


# --- 0044: product search keys read as q is ----------------------------------------------

def test_0044_rebuilds_the_search_keys_of_names_with_full_width_letters(app, client):
    from catalog.models import Product
    from tests.catalog.factories import ProductFactory

    gift, plain = ProductFactory(name="ＡＢＣ苹果礼盒"), ProductFactory(name="盐源苹果")
    db.session.commit()
    db.session.execute(text("UPDATE products SET name_pinyin = 'ａｂｃpingguolihe', name_initials = 'ａｂｃpglh' "
                            "WHERE id = :id"), {"id": gift.id})
    db.session.commit()
    kept = (plain.name_pinyin, plain.name_initials)
    downgrade(revision="0043")
    upgrade()
    db.session.expire_all()
    assert [item["sku"] for item in client.get("/api/v1/products?q=abc").json["items"]] == [gift.sku]
    assert (db.session.get(Product, plain.id).name_pinyin, db.session.get(Product, plain.id).name_initials) == kept


# --- 0045: store names unique ---------------------------------------------------------------

def test_0045_stops_on_stores_sharing_a_name_naming_them_and_renames_nothing(app, caplog):
    from tests.orders.factories import StoreFactory

    name = "大凉山体验店（禅城）"
    second = StoreFactory(name="大凉山体验店（南海）").id
    StoreFactory(name=name)
    db.session.commit()
    downgrade(revision="0044")
    db.session.execute(text("UPDATE stores SET name = :name WHERE id = :id"), {"name": name, "id": second})
    db.session.commit()
    with pytest.raises(SystemExit):  # Flask-Migrate logs the migration's error and exits with status 1
        upgrade()
    assert "大凉山体验店（禅城） (2 stores)" in caplog.text
    db.session.rollback()
    assert db.session.scalar(text("SELECT version_num FROM alembic_version")) == "0044"
    assert db.session.scalars(text("SELECT name FROM stores ORDER BY id")).all() == [name, name]
    db.session.execute(text("UPDATE stores SET name = '大凉山体验店（南海）' WHERE id = :id"), {"id": second})
    db.session.commit()
    upgrade()
    assert _diff() == []


# --- 0046: a search key of the name -------------------------------------------------------------

def test_0046_lets_a_mixed_query_find_a_name_stored_before_it_in_full_width_forms(app, client):
    from tests.catalog.factories import ProductFactory

    tea = ProductFactory(name="苦荞ＡＢＣ")
    ProductFactory(name="苦荞茶")
    db.session.commit()
    downgrade(revision="0045")
    upgrade()
    db.session.expire_all()
    assert [item["sku"] for item in client.get("/api/v1/products?q=苦荞abc").json["items"]] == [tea.sku]


# --- 0047: location codes read alike ---------------------------------------------------------

def test_0047_stops_on_location_codes_that_read_alike_naming_them_and_keeps_the_skeletons_after(app, caplog):
    from tests.catalog.factories import LocationFactory

    first, second = LocationFactory(code="FS-WH").id, LocationFactory(code="FS-WH2").id
    db.session.commit()
    downgrade(revision="0046")
    db.session.execute(text("UPDATE locations SET code = 'FS_WH' WHERE id = :id"), {"id": second})
    db.session.commit()
    with pytest.raises(SystemExit):  # Flask-Migrate logs the migration's error and exits with status 1
        upgrade()
    assert "FS-WH (2 locations)" in caplog.text
    db.session.rollback()
    assert db.session.scalar(text("SELECT version_num FROM alembic_version")) == "0046"
    db.session.execute(text("UPDATE locations SET code = 'FS.WH2' WHERE id = :id"), {"id": second})
    db.session.commit()
    upgrade()
    assert db.session.execute(text("SELECT code, skeleton FROM locations WHERE id IN (:a, :b) ORDER BY id"),
                              {"a": first, "b": second}).all() == [("FS-WH", "FS-WH"), ("FS.WH2", "FS-WH2")]
    assert _diff() == []


def test_0048_stops_on_store_names_that_read_alike_naming_them_and_keys_them_after(app, caplog):
    from tests.orders.factories import StoreFactory

    first, second = StoreFactory(name="大良店A").id, StoreFactory(name="大良店B").id
    db.session.commit()
    downgrade(revision="0047")
    db.session.execute(text("UPDATE stores SET name = '大良店 ａ' WHERE id = :id"), {"id": second})
    db.session.commit()
    with pytest.raises(SystemExit):  # Flask-Migrate logs the migration's error and exits with status 1
        upgrade()
    assert "大良店A / 大良店 ａ" in caplog.text
    db.session.rollback()
    assert db.session.scalar(text("SELECT version_num FROM alembic_version")) == "0047"
    assert db.session.scalars(text("SELECT name FROM stores ORDER BY id")).all() == ["大良店A", "大良店 ａ"]
    db.session.execute(text("UPDATE stores SET name = '大良店 Ｂ' WHERE id = :id"), {"id": second})
    db.session.commit()
    upgrade()
    assert db.session.execute(text("SELECT name, name_key FROM stores WHERE id IN (:a, :b) ORDER BY id"),
                              {"a": first, "b": second}).all() == [("大良店A", "大良店a"), ("大良店 Ｂ", "大良店b")]
    assert _diff() == []


# --- 0049: refunds keep their key's scope ------------------------------------------------------

def test_0049_gives_refunds_keyed_before_it_their_authors_scope(app):
    from orders.models import Order, Refund
    from tests.factories import UserFactory
    from tests.orders.factories import StoreFactory

    store, clerk = StoreFactory(), UserFactory(role="admin")
    db.session.flush()
    order = Order(channel="counter", status="fulfilled", store_id=store.id, location_id=store.location_id,
                  donor_code="440606", total_fen=500, payment_method="cash")
    db.session.add(order)
    db.session.flush()
    keyed, unkeyed = (Refund(order_id=order.id, amount_fen=100, method="cash", reason="坏果", source="staff",
                             created_by=clerk.id) for _ in range(2))
    db.session.add_all([keyed, unkeyed])
    db.session.commit()
    ids = (clerk.id, keyed.id, unkeyed.id)
    downgrade(revision="0048")
    db.session.execute(text("UPDATE refunds SET request_key = 'till-7' WHERE id = :id"), {"id": ids[1]})
    db.session.commit()
    upgrade()
    assert db.session.execute(text("SELECT id, request_scope FROM refunds ORDER BY id")).all() == [
        (ids[1], f"user:{ids[0]}"), (ids[2], None)]
    assert _diff() == []


# --- 0050: a return's attempt ------------------------------------------------------------------

def test_0050_puts_refunds_made_before_it_at_their_first_attempt(app):
    from orders.models import Order, Refund
    from tests.orders.factories import StoreFactory

    store = StoreFactory()
    db.session.flush()
    order = Order(channel="counter", status="fulfilled", store_id=store.id, location_id=store.location_id,
                  donor_code="440606", total_fen=500, payment_method="card")
    db.session.add(order)
    db.session.flush()
    db.session.add(Refund(order_id=order.id, amount_fen=500, method="card", reason="坏果", source="staff"))
    db.session.commit()
    downgrade(revision="0049")
    upgrade()
    assert db.session.execute(text("SELECT amount_fen, attempt FROM refunds")).all() == [(500, 0)]
    assert _diff() == []


# --- 0026: payout settlements recorded ------------------------------------------------------

def test_0026_dates_lines_settled_before_it_from_their_ledger_transactions(app):
    from orders.ledger import accounts
    from orders.ledger.models import LedgerTransaction
    from orders.ledger.payouts import service
    from orders.ledger.payouts.models import PayoutLine
    from tests.factories import UserFactory
    from tests.orders.ledger.payout_factories import built_batch, days_ago, earn, payee_household, today
    from tests.suppliers.factories import SupplierFactory

    supplier = SupplierFactory()
    household = payee_household(supplier)
    earn(accounts.household(household.id, supplier.id), 300, on=days_ago(1))
    batch = built_batch(party="household", supplier_id=supplier.id, until=today())
    admin, line_id = UserFactory(role="admin"), batch.lines[0].id
    for status in ("paid", "failed"):
        service.settle_lines(batch_id=batch.id, actor=admin,
                             settlements=[service.Settlement(line_id=line_id, status=status, reason=None
                                                             if status == "paid" else "银行退票")])
        db.session.commit()
    downgrade(revision="0025")
    upgrade()
    db.session.expire_all()
    line = db.session.get(PayoutLine, line_id)
    posted = {kind: db.session.get(LedgerTransaction, getattr(line, f"{kind}_transaction_id")).posted_at
              for kind in ("paid", "failed")}
    assert (line.paid_at, line.failed_at) == (posted["paid"], posted["failed"]) and line.paid_at <= line.failed_at
    assert (line.paid_by, line.failed_by) == (None, None)          # who settled them was never recorded


@pytest.mark.postgres
def test_check_and_exclusion_constraints_of_the_models_exist_on_postgres(pg_app):
    """Alembic's comparison ignores CHECK and EXCLUDE constraints: compare their names per table here."""
    from sqlalchemy import CheckConstraint
    from sqlalchemy.dialects.postgresql import ExcludeConstraint

    modelled = set()
    for table in db.metadata.sorted_tables:
        for constraint in table.constraints:
            if isinstance(constraint, CheckConstraint | ExcludeConstraint) and constraint.name:
                name = str(constraint.name)
                if isinstance(constraint, CheckConstraint) and not name.startswith("ck_"):
                    name = f"ck_{table.name}_{name}"
                modelled.add((table.name, name))
    migrated = set(db.session.execute(text(
        "SELECT t.relname, c.conname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE n.nspname = 'public' AND c.contype IN ('c', 'x') AND t.relname <> 'alembic_version'")).all())
    assert modelled == migrated


# --- 0051: supplier names read alike -----------------------------------------------------------

def test_0051_stops_on_supplier_names_that_read_alike_naming_them_and_keys_them_after(app, caplog):
    from tests.suppliers.factories import SupplierFactory

    first, second = SupplierFactory(name="大凉山苦荞茶合作社").id, SupplierFactory(name="雷波脐橙合作社").id
    db.session.commit()
    downgrade(revision="0050")
    db.session.execute(text("UPDATE suppliers SET name = '大凉山\u3000苦荞茶合作社' WHERE id = :id"), {"id": second})
    db.session.commit()
    with pytest.raises(SystemExit):  # Flask-Migrate logs the migration's error and exits with status 1
        upgrade()
    assert "大凉山苦荞茶合作社 / 大凉山\u3000苦荞茶合作社" in caplog.text
    db.session.rollback()
    assert db.session.scalar(text("SELECT version_num FROM alembic_version")) == "0050"
    db.session.execute(text("UPDATE suppliers SET name = '雷波 脐橙合作社' WHERE id = :id"), {"id": second})
    db.session.commit()
    upgrade()
    assert db.session.execute(text("SELECT name, name_key FROM suppliers WHERE id IN (:a, :b) ORDER BY id"),
                              {"a": first, "b": second}).all() == [("大凉山苦荞茶合作社", "大凉山苦荞茶合作社"),
                                                                   ("雷波 脐橙合作社", "雷波脐橙合作社")]
    assert _diff() == []


# --- 0052: a supplier's product names read alike -----------------------------------------------

def test_0052_stops_on_a_suppliers_listed_products_that_read_alike_naming_them_and_keys_them_after(app, caplog):
    from tests.catalog.factories import ProductFactory
    from tests.suppliers.factories import SupplierFactory

    supplier = SupplierFactory()
    first, second = (ProductFactory(supplier=supplier, name=name).id for name in ("大凉山苦荞茶", "雷波脐橙"))
    archived = ProductFactory(supplier=supplier, name="大凉山苦荞茶", status="archived").id
    elsewhere = ProductFactory(name="大凉山苦荞茶").id
    db.session.commit()
    downgrade(revision="0051")
    db.session.execute(text("UPDATE products SET name = '大凉山\u3000苦荞茶' WHERE id = :id"), {"id": second})
    db.session.commit()
    with pytest.raises(SystemExit):  # Flask-Migrate logs the migration's error and exits with status 1
        upgrade()
    assert f"supplier {supplier.id}: 大凉山苦荞茶 / 大凉山\u3000苦荞茶" in caplog.text
    db.session.rollback()
    assert db.session.scalar(text("SELECT version_num FROM alembic_version")) == "0051"
    db.session.execute(text("UPDATE products SET name = '雷波 脐橙' WHERE id = :id"), {"id": second})
    db.session.commit()
    upgrade()
    assert db.session.execute(text("SELECT id, name_key FROM products ORDER BY id")).all() == [
        (first, "大凉山苦荞茶"), (second, "雷波脐橙"), (archived, "大凉山苦荞茶"), (elsewhere, "大凉山苦荞茶")]
    assert _diff() == []


# --- 0055: search keys without the marks that show nothing ---------------------------------

def test_0055_rebuilds_the_search_keys_of_names_with_a_variation_selector(app, client):
    from catalog.models import Product
    from tests.catalog.factories import ProductFactory

    pasted, plain = ProductFactory(name="昭觉\ufe0f粉丝"), ProductFactory(name="盐源苹果")
    db.session.commit()
    db.session.execute(text("UPDATE products SET name_folded = :name, name_pinyin = :pinyin, name_initials = :initials "
                            "WHERE id = :id"), {"name": "昭觉\ufe0f粉丝", "pinyin": "zhaojue\ufe0ffensi",
                                                "initials": "zj\ufe0ffs", "id": pasted.id})
    db.session.commit()
    kept = (plain.name_folded, plain.name_pinyin, plain.name_initials)
    downgrade(revision="0054")
    upgrade()
    db.session.expire_all()
    for q in ("昭觉粉丝", "zhaojuefensi", "zjfs"):
        assert [item["sku"] for item in client.get(f"/api/v1/products?q={q}").json["items"]] == [pasted.sku], q
    plain = db.session.get(Product, plain.id)
    assert (plain.name_folded, plain.name_pinyin, plain.name_initials) == kept


# --- 0071: a name's pinyin without separators --------------------------------------------

def test_0071_rebuilds_the_pinyin_of_names_with_a_separator_of_their_own(app, client):
    from catalog.models import Product
    from tests.catalog.factories import ProductFactory

    coded, plain = ProductFactory(name="AB-12号苦荞"), ProductFactory(name="盐源苹果")
    db.session.commit()
    db.session.execute(text("UPDATE products SET name_pinyin = 'ab-12haokuqiao', name_initials = 'ab-12hkq' "
                            "WHERE id = :id"), {"id": coded.id})
    db.session.commit()
    kept = (plain.name_pinyin, plain.name_initials)
    downgrade(revision="0070")
    upgrade()
    db.session.expire_all()
    for q in ("ab12hao", "ab12hkq", "ab-12-hao"):
        assert [item["sku"] for item in client.get(f"/api/v1/products?q={q}").json["items"]] == [coded.sku], q
    plain = db.session.get(Product, plain.id)
    assert (plain.name_pinyin, plain.name_initials) == kept


# --- 0065: remittance references keyed as `bank_reference` spells them ----------------------

def _remittances(*references: str) -> tuple[int, list[int]]:
    """A store holding cash and its remittances of 100 fen under `references` (committed): (store id, their ids)."""
    from orders.ledger import accounts, remittances
    from shop.clock import today
    from tests.factories import UserFactory
    from tests.orders.factories import StoreFactory
    from tests.orders.ledger.payout_factories import earn

    store, admin = StoreFactory(), UserFactory(role="admin")
    db.session.commit()
    earn(accounts.store_cash(store.id), -5000)
    ids = [remittances.record_remittance(store_id=store.id, actor=admin, amount_fen=100, received_on=today(),
                                         reference=reference).id for reference in references]
    db.session.commit()
    return store.id, ids


def test_0065_stops_on_a_deposit_recorded_twice_naming_it_and_keys_the_references_after(app, caplog):
    from orders.ledger import remittances
    from shop.clock import today
    from shop.errors import Conflict
    from tests.factories import UserFactory

    store_id, (first, second) = _remittances("DEP 1", "DEP-2")
    downgrade(revision="0064")
    db.session.execute(text("UPDATE store_remittances SET reference = :reference WHERE id = :id"),
                       [{"reference": "dep\u3000 1", "id": first}, {"reference": "DEP\u00a01", "id": second}])
    db.session.commit()
    with pytest.raises(SystemExit):
        upgrade()
    assert f"store {store_id} DEP 1 (remittances {first}, {second})" in caplog.text
    db.session.rollback()
    assert db.session.scalar(text("SELECT version_num FROM alembic_version")) == "0064"
    db.session.execute(text("UPDATE store_remittances SET reference = 'ＤＥＰ－２' WHERE id = :id"), {"id": second})
    db.session.commit()
    upgrade()
    assert db.session.execute(text("SELECT id, reference, reference_key FROM store_remittances ORDER BY id")).all() == [
        (first, "dep\u3000 1", "DEP 1"), (second, "ＤＥＰ－２", "DEP-2")]
    assert _diff() == []
    admin = UserFactory(role="admin")
    db.session.commit()
    for reference in ("DEP 1", "dep-2"):
        with pytest.raises(Conflict):
            remittances.record_remittance(store_id=store_id, actor=admin, amount_fen=100, received_on=today(),
                                          reference=reference)
        db.session.rollback()
    assert db.session.scalar(text("SELECT COUNT(*) FROM store_remittances")) == 2


@pytest.mark.postgres
def test_0065_keys_the_append_only_remittances_on_postgres_and_keeps_them_append_only(pg_app):
    _, (first,) = _remittances("工行存款 DEP-0042")
    downgrade(revision="0064")
    upgrade()
    assert db.session.execute(text("SELECT reference, reference_key FROM store_remittances")).all() == [
        ("工行存款 DEP-0042", "工行存款 DEP-0042")]
    with pytest.raises(Exception, match="append-only"):
        db.session.execute(text("UPDATE store_remittances SET reference = 'X' WHERE id = :id"), {"id": first})
    db.session.rollback()
    assert _diff() == []


# --- 0068: heads' names with the ID card's middle dot -------------------------------------------

def test_0068_writes_the_heads_names_stored_before_it_with_the_id_cards_middle_dot(app):
    from suppliers.models import Household
    from tests.suppliers.factories import HouseholdFactory

    yi, latin, plain = (HouseholdFactory(head_name=name) for name in ("吉克·阿依", "J. Smith", "演示农户"))
    db.session.commit()
    for household, typed in ((yi, "阿苏 ・拉格•木呷"), (latin, "J. Smith")):
        db.session.execute(text("UPDATE households SET head_name = :name WHERE id = :id"),
                           {"name": typed, "id": household.id})
    db.session.commit()
    downgrade(revision="0067")
    upgrade()
    db.session.expire_all()
    assert [db.session.get(Household, h.id).head_name for h in (yi, latin, plain)] == [
        "阿苏·拉格·木呷", "J. Smith", "演示农户"]


# --- 0073: villages in one spelling ------------------------------------------------------------

def test_0073_writes_the_villages_stored_before_it_in_one_spelling(racing_app):
    """On SQLite and PostgreSQL: households', lots' and contributions' villages typed with full-width digits or letters
    are written as the API now stores them (三岔河村１组 is 三岔河村1组), Chinese punctuation kept; a downgrade keeps
    them so, and upgrading again changes nothing."""
    from catalog.models import LotContribution
    from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
    from tests.suppliers.factories import HouseholdFactory

    wide, plain = HouseholdFactory(village="三岔河村１组"), HouseholdFactory(village="火普村（二组）")
    lot = make_lot(ProductFactory(), LocationFactory())
    db.session.flush()
    db.session.add(LotContribution(lot_id=lot.id, household_id=wide.id, quantity=1, village="三岔河村１组Ｂ"))
    db.session.execute(text("UPDATE lots SET village = 'ｖ村２' WHERE id = :id"), {"id": lot.id})
    ids = {"wide": wide.id, "plain": plain.id, "lot": lot.id}
    db.session.commit()
    stored = (
        "SELECT (SELECT village FROM households WHERE id = :wide), (SELECT village FROM households WHERE id = :plain), "
        "(SELECT village FROM lots WHERE id = :lot), (SELECT village FROM lot_contributions WHERE lot_id = :lot)")

    def villages() -> tuple:
        """The villages as stored, read in a transaction of its own: a later migration's DDL must not wait for it."""
        read = tuple(db.session.execute(text(stored), ids).one())
        db.session.rollback()
        return read

    written = ("三岔河村1组", "火普村（二组）", "v村2", "三岔河村1组B")
    downgrade(revision="0072")
    upgrade()
    assert villages() == written
    downgrade(revision="0072")
    assert villages() == written
    upgrade()
    assert _diff() == []


# --- 0074: households' bank accounts hashed beside their ciphertexts ---------------------------

def _0074_hashes_the_accounts_stored_before_it() -> None:
    """Downgrade below 0074 and upgrade again: the accounts stored meanwhile are hashed, and a second active household
    naming one of them is refused."""
    from shop import crypto
    from shop.errors import Conflict
    from suppliers import service
    from suppliers.models import Household
    from tests.factories import UserFactory
    from tests.suppliers.factories import HouseholdFactory, make_bank_account

    account = make_bank_account()
    paid, unpaid = HouseholdFactory(bank_account=account), HouseholdFactory()
    other = HouseholdFactory(bank_account=make_bank_account())
    admin = UserFactory(role="admin")
    db.session.commit()
    downgrade(revision="0073")
    with db.engine.connect() as conn:
        assert "bank_account_hash" not in {column["name"] for column in db.inspect(conn).get_columns("households")}
    upgrade()
    db.session.expire_all()
    assert [db.session.get(Household, h.id).bank_account_hash for h in (paid, unpaid)] == [
        crypto.lookup_hash(account), None]
    assert _diff() == []
    with pytest.raises(Conflict, match="another active household"):
        service.update_household(household_id=other.id, user=admin, reason="换卡",
                                 changes=service.HouseholdChanges(bank_account=account))
    db.session.rollback()


def test_0074_hashes_the_accounts_stored_before_it(app):
    _0074_hashes_the_accounts_stored_before_it()


@pytest.mark.postgres
def test_0074_hashes_the_accounts_stored_before_it_on_postgres(pg_app):
    _0074_hashes_the_accounts_stored_before_it()
