"""Co-op inventory uploads through the API: messy files, every rule, all-or-nothing, idempotency, scope."""
from __future__ import annotations

import io
import json
import re
from datetime import date, datetime, timedelta

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select, update

from catalog import inventory
from catalog.models import InventoryUpload, Lot, LotContribution, Stock
from shop.clock import today
from shop.db import db
from suppliers.models import Household
from tests.catalog.factories import LocationFactory, ProductFactory, linked_households, make_lot
from tests.shop.test_errors import assert_error
from tests.shop.test_outages import redis_down_app  # noqa: F401 - a fixture
from tests.suppliers.factories import BenefitLinkFactory, HouseholdFactory

HEADER_ZH = ["产品编码", "批次号", "采收日期", "存放地点", "农户编号", "交售数量"]


@pytest.fixture
def world(coop):
    """A co-op with a product (bags), two warehouses and four households with purchase links."""
    supplier, headers = coop
    product = ProductFactory(supplier=supplier, sku="ZJ-KQ-500", unit="bag")
    xichang = LocationFactory(code="XC-WH")
    foshan = LocationFactory(code="FS-WH", region_code="440604")
    households = linked_households(supplier, 4)
    db.session.commit()
    return {"supplier": supplier, "headers": headers, "product": product, "xichang": xichang,
            "foshan": foshan, "codes": [h.code for h in households]}


def csv_bytes(rows, header=HEADER_ZH, encoding="utf-8") -> bytes:
    """A CSV file of `rows` under `header`."""
    lines = [",".join(header)] + [",".join(str(cell) for cell in row) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def xlsx_bytes(rows, header=HEADER_ZH) -> bytes:
    """An XLSX file of `rows` under `header`."""
    book = Workbook()
    book.active.append(header)
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def upload(client, world, data: bytes, name="inventory.csv", supplier_id=None, headers=None):
    """POST a file to the co-op's upload route."""
    return client.post(f"/api/v1/suppliers/{supplier_id or world['supplier'].id}/inventory-uploads",
                       data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data",
                       headers=headers or world["headers"])


def lot_count() -> int:
    """How many lots exist."""
    return db.session.scalar(select(func.count(Lot.id)))


def test_gbk_csv_creates_lots_contributions_and_stock_at_the_named_locations(client, world):
    a, b, c, _ = world["codes"]
    rows = [["ZJ-KQ-500", "LOT-A", "2026年9月3日", "XC-WH", a, 12],
            ["ZJ-KQ-500", "LOT-A", "2026年9月3日", "FS-WH", b, 8],
            ["ZJ-KQ-500", "LOT-B", "2026/9/10", "XC-WH", c, 5]]
    response = upload(client, world, csv_bytes(rows, encoding="gbk"))
    assert response.status_code == 202, response.json
    assert response.json["status"] == "succeeded"
    assert (response.json["rows_total"], response.json["rows_done"], response.json["lots_created"]) == (3, 3, 2)
    lot_a = db.session.scalar(select(Lot).where(Lot.lot_code == "LOT-A"))
    assert lot_a.quantity == 20 and lot_a.harvested_on == date(2026, 9, 3)
    assert sorted(c.quantity for c in lot_a.contributions) == [8, 12]
    stock = {s.location_id: s.on_hand for s in db.session.scalars(select(Stock).where(Stock.lot_id == lot_a.id))}
    assert stock == {world["xichang"].id: 12, world["foshan"].id: 8}
    shown = client.get(f"/api/v1/inventory-uploads/{response.json['id']}", headers=world["headers"])
    assert shown.json["status"] == "succeeded" and shown.json["errors"] == []


def test_utf8_bom_csv_with_english_headers_full_width_digits_and_trailing_junk(client, world):
    a = world["codes"][0]
    header = ["quantity", "household_code", "sku", "lot_code", "location", "harvested_on", "unit", ""]
    text = ("\ufeff" + ",".join(header) + "\n"
            f"１２,{a}, ＺＪ－ＫＱ－５００ ,LOT-W,XC-WH,２０２６－０９－０３,bag,\n,,,,,,,\n\n")
    response = upload(client, world, text.encode("utf-8"))
    assert response.json["status"] == "succeeded", response.json
    lot = db.session.scalar(select(Lot).where(Lot.lot_code == "LOT-W"))
    assert (lot.quantity, lot.harvested_on) == (12, date(2026, 9, 3))


def test_xlsx_with_excel_date_cells(client, world):
    a, b = world["codes"][:2]
    rows = [["ZJ-KQ-500", "LOT-X", datetime(2026, 9, 3), "XC-WH", a, 7],
            ["ZJ-KQ-500", "LOT-X", datetime(2026, 9, 3), "XC-WH", b, 3.0]]
    response = upload(client, world, xlsx_bytes(rows), name="库存.xlsx")
    assert response.json["status"] == "succeeded", response.json
    assert db.session.scalar(select(Lot.quantity).where(Lot.lot_code == "LOT-X")) == 10


def test_every_error_is_reported_at_once_and_nothing_is_imported(client, world, other_coop):
    a, b, c, d = world["codes"]
    foreign = ProductFactory(supplier=other_coop[0], sku="LB-QC-5KG")
    make_lot(world["product"], world["xichang"], lot_code="OLD-LOT")
    other_product = ProductFactory(supplier=world["supplier"], sku="ZJ-KQC-250G", unit="box")
    make_lot(other_product, world["xichang"], lot_code="TEA-LOT")
    unlinked = HouseholdFactory(supplier=world["supplier"])
    late = HouseholdFactory(supplier=world["supplier"])
    BenefitLinkFactory(household=late, supplier_id=world["supplier"].id, valid_from=date(2026, 10, 1))
    db.session.commit()
    future = (today() + timedelta(days=3)).isoformat()
    header = HEADER_ZH + ["包装日期", "单位"]
    rows = [
        ["ZJ-KQ-500", "GOOD", "2026-09-03", "XC-WH", a, 5, "", ""],             # 2: fine
        ["NO-SUCH-SKU", "L1", "2026-09-03", "XC-WH", a, 5, "", ""],             # 3
        [foreign.sku, "L2", "2026-09-03", "XC-WH", a, 5, "", ""],               # 4
        ["ZJ-KQ-500", "L3", "2026-09-03", "XC-WH", "NOBODY", 5, "", ""],        # 5
        ["ZJ-KQ-500", "L4", "2026-09-03", "XC-WH", unlinked.code, 5, "", ""],   # 6
        ["ZJ-KQ-500", "L5", "2026-09-03", "XC-WH", late.code, 5, "", ""],       # 7
        ["ZJ-KQ-500", "L6", "2026-09-03", "XC-WH", b, "0", "", ""],             # 8
        ["ZJ-KQ-500", "L7", "2026-09-03", "XC-WH", b, "2.5", "", ""],           # 9
        ["ZJ-KQ-500", "L8", "2026-09-03", "XC-WH", b, 5, "", "box"],            # 10
        ["ZJ-KQ-500", "TEA-LOT", "2026-09-03", "XC-WH", b, 5, "", ""],          # 11
        ["ZJ-KQ-500", "OLD-LOT", "2026-09-03", "XC-WH", b, 5, "", ""],          # 12
        ["ZJ-KQ-500", "L9", "2026-09-03", "NO-WH", b, 5, "", ""],               # 13
        ["ZJ-KQ-500", "L10", future, "XC-WH", c, 5, "", ""],                    # 14
        ["ZJ-KQ-500", "L11", "2026-09-10", "XC-WH", c, 5, "2026-09-01", ""],    # 15
        ["ZJ-KQ-500", "L12", "2026-09-03", "XC-WH", d, 5, "", ""],              # 16
        ["ZJ-KQ-500", "L12", "2026-09-03", "XC-WH", d, 6, "", ""],              # 17
    ]
    before = lot_count()
    response = upload(client, world, csv_bytes(rows, header=header))
    body = response.json
    assert body["status"] == "failed" and body["lots_created"] == 0
    found = {(e["row"], e["column"]) for e in body["errors"]}
    assert found == {(3, "产品编码"), (4, "产品编码"), (5, "农户编号"), (6, "农户编号"), (7, "农户编号"),
                     (8, "交售数量"), (9, "交售数量"), (10, "单位"), (11, "批次号"), (12, "批次号"),
                     (13, "存放地点"), (14, "采收日期"), (15, "采收日期"), (17, "农户编号")}
    messages = {e["row"]: e["message"] for e in body["errors"]}
    assert "another product" in messages[11] and "already imported" in messages[12]
    assert "appears twice" in messages[17] and "future" in messages[14]
    assert lot_count() == before
    assert db.session.scalar(select(func.count(LotContribution.id)).join(Lot).where(Lot.lot_code == "GOOD")) == 0


@pytest.mark.parametrize(("dates", "column"), [(("2026-09-04", "2026-09-05"), "采收日期"),
                                               (("2026-09-03", "2026-09-06"), "包装日期"),
                                               (("2026-09-03", ""), "包装日期")])
def test_a_lots_row_with_other_dates_is_an_error_on_the_date_that_differs(client, world, dates, column):
    """A lot has one harvest and one packing date: a row of it with another is an error on the column that differs
    (a packing date only: 包装日期), so the co-op is sent to the cell to fix."""
    a, b, _, _ = world["codes"]
    header = HEADER_ZH + ["包装日期"]
    rows = [["ZJ-KQ-500", "LOT-A", "2026-09-03", "XC-WH", a, 5, "2026-09-05"],
            ["ZJ-KQ-500", "LOT-A", dates[0], "XC-WH", b, 5, dates[1]]]
    body = upload(client, world, csv_bytes(rows, header=header)).json
    assert body["status"] == "failed"
    assert [(e["row"], e["column"], e["code"]) for e in body["errors"]] == [(3, column, "lot_other_dates")]


def test_a_row_with_an_unreadable_cell_still_has_its_other_cells_checked(client, world, other_coop):
    stranger = HouseholdFactory(supplier=other_coop[0])
    db.session.commit()
    future = (today() + timedelta(days=30)).isoformat()
    rows = [["ZJ-KQ-500", "BAD-1", future, "NOPE", stranger.code, "x"]]
    errors = upload(client, world, csv_bytes(rows)).json["errors"]
    assert {(e["row"], e["column"]) for e in errors} == {
        (2, "交售数量"), (2, "采收日期"), (2, "存放地点"), (2, "农户编号")}


def test_an_identical_file_is_recognised_and_imports_nothing_new(client, world):
    data = csv_bytes([["ZJ-KQ-500", "LOT-R", "2026-09-03", "XC-WH", world["codes"][0], 4]])
    first = upload(client, world, data)
    again = upload(client, world, data, name="renamed.csv")
    assert first.status_code == 202 and again.status_code == 200
    assert again.json["id"] == first.json["id"] and again.json["status"] == "succeeded"
    assert db.session.scalar(select(func.count(InventoryUpload.id))) == 1
    assert db.session.scalar(select(func.count(Lot.id)).where(Lot.lot_code == "LOT-R")) == 1


def test_a_lot_code_reading_as_one_already_imported_or_in_the_same_file_is_that_lot(client, world):
    """A lot sent again with its code's separators typed otherwise (LOT-R as LOT_R or LOT.R) is the lot already
    imported, not a second lot of the same produce; rows of one file whose codes read alike are one lot."""
    first = upload(client, world, csv_bytes([["ZJ-KQ-500", "LOT-R", "2026-09-03", "XC-WH", world["codes"][0], 4]]))
    assert first.json["status"] == "succeeded"
    again = upload(client, world, csv_bytes([["ZJ-KQ-500", "LOT_R", "2026-09-03", "XC-WH", world["codes"][0], 4],
                                             ["ZJ-KQ-500", "LOT.R", "2026-09-03", "XC-WH", world["codes"][1], 4]]))
    assert again.json["status"] == "failed"
    assert [(e["row"], e["code"]) for e in again.json["errors"]] == [(2, "lot_already_imported"),
                                                                     (3, "lot_already_imported")]
    both = upload(client, world, csv_bytes([["ZJ-KQ-500", "LOT-S", "2026-09-03", "XC-WH", world["codes"][0], 4],
                                            ["ZJ-KQ-500", "LOT_S", "2026-09-03", "XC-WH", world["codes"][1], 5]]))
    assert both.json["status"] == "succeeded" and both.json["lots_created"] == 1
    assert db.session.scalars(select(Lot.quantity).where(Lot.lot_code.in_(["LOT-S", "LOT_S"]))).all() == [9]
    assert lot_count() == 2


def test_a_failed_file_can_be_sent_again_once_the_data_is_fixed(client, world):
    newcomer = "NEW-001"
    data = csv_bytes([["ZJ-KQ-500", "LOT-F", "2026-09-03", "XC-WH", newcomer, 4]])
    failed = upload(client, world, data)
    assert failed.json["status"] == "failed"
    household = HouseholdFactory(supplier=world["supplier"], code=newcomer)
    BenefitLinkFactory(household=household, supplier_id=world["supplier"].id)
    db.session.commit()
    retried = upload(client, world, data)
    assert retried.status_code == 202 and retried.json["id"] != failed.json["id"]
    assert retried.json["status"] == "succeeded"


def content_of(upload_id: int) -> bytes | None:
    """The bytes the database holds of an upload's file."""
    db.session.expire_all()
    return db.session.scalar(select(InventoryUpload.content).where(InventoryUpload.id == upload_id))


def test_a_processed_upload_keeps_no_copy_of_its_file_and_the_same_file_is_still_recognised(client, world):
    a = world["codes"][0]
    good = csv_bytes([["ZJ-KQ-500", "LOT-K", "2026-09-03", "XC-WH", a, 4]])
    refused = csv_bytes([["ZJ-KQ-500", "LOT-K2", "2026-09-03", "XC-WH", a, 4, "513431195102020013",
                          "6217513431000000001"]], header=HEADER_ZH + ["身份证号", "银行卡号"])

    first, failed = upload(client, world, good), upload(client, world, refused)

    assert (first.json["status"], failed.json["status"]) == ("succeeded", "failed")
    assert content_of(first.json["id"]) is None and content_of(failed.json["id"]) is None
    again = upload(client, world, good)
    assert again.status_code == 200 and again.json["id"] == first.json["id"]
    assert db.session.scalar(select(func.count(Lot.id)).where(Lot.lot_code == "LOT-K")) == 1


def test_an_upload_keeps_its_file_only_until_its_import_finishes(client, world, monkeypatch):
    from catalog import tasks

    monkeypatch.setattr(tasks.import_inventory, "delay", lambda *a: None)  # the task has not run yet
    data = csv_bytes([["ZJ-KQ-500", "LOT-KP", "2026-09-03", "XC-WH", world["codes"][0], 4]])
    upload_id = upload(client, world, data).json["id"]
    assert content_of(upload_id) == data

    assert tasks.import_inventory(upload_id) == "succeeded"

    assert content_of(upload_id) is None


def test_an_upload_still_queued_when_its_supplier_is_deactivated_imports_nothing(client, world, login, monkeypatch):
    """An inactive supplier adds no lots: a file accepted before an admin deactivated it and imported after (a queued
    task, a retry, the sweeper's requeue) fails, saying why in both languages, and creates no lot or stock."""
    from catalog import tasks

    monkeypatch.setattr(tasks.import_inventory, "delay", lambda *a: None)  # the task has not run yet
    data = csv_bytes([["ZJ-KQ-500", "LOT-DEACT", "2026-09-03", "XC-WH", world["codes"][0], 4]])
    upload_id = upload(client, world, data).json["id"]
    admin = login("admin")
    assert client.patch(f"/api/v1/suppliers/{world['supplier'].id}", json={"active": False},
                        headers=admin).status_code == 200

    assert tasks.import_inventory(upload_id) == "failed"

    shown = client.get(f"/api/v1/inventory-uploads/{upload_id}", headers=world["headers"]).json
    assert [error["code"] for error in shown["errors"]] == ["supplier_inactive"], shown
    assert shown["errors"][0]["message"] and shown["errors"][0]["message_zh"]
    assert lot_count() == 0 and db.session.scalar(select(func.count(Stock.id))) == 0
    assert content_of(upload_id) is None


def test_an_upload_whose_import_fails_unexpectedly_keeps_no_copy_of_its_file(client, world, monkeypatch):
    from catalog import uploads as uploads_module

    def crash(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(uploads_module, "_validate", crash)
    data = csv_bytes([["ZJ-KQ-500", "LOT-KF", "2026-09-03", "XC-WH", world["codes"][0], 4]])
    response = upload(client, world, data)

    assert response.json["status"] == "failed" and response.json["errors"][0]["code"] == "import_failed"
    assert content_of(response.json["id"]) is None


def test_co_ops_cannot_upload_for_or_read_another_supplier(client, world, other_coop):
    data = csv_bytes([["ZJ-KQ-500", "LOT-S", "2026-09-03", "XC-WH", world["codes"][0], 4]])
    mine = upload(client, world, data)
    other_headers = other_coop[1]
    assert_error(client.get(f"/api/v1/inventory-uploads/{mine.json['id']}", headers=other_headers),
                 404, "upload_not_found")
    assert_error(upload(client, world, data, headers=other_headers), 404, "supplier_not_found")
    listed = client.get(f"/api/v1/suppliers/{world['supplier'].id}/inventory-uploads", headers=world["headers"])
    assert [u["id"] for u in listed.json["items"]] == [mine.json["id"]]


def test_the_uploads_of_a_supplier_that_does_not_exist_are_a_404_as_its_lots_are(client, world, login):
    for headers in (login("admin"), login("auditor")):
        for path in ("/api/v1/suppliers/999999/inventory-uploads", "/api/v1/suppliers/999999/lots"):
            assert_error(client.get(path, headers=headers), 404, "supplier_not_found")


def test_consumers_cannot_upload(client, world, login):
    assert_error(upload(client, world, b"x", headers=login("consumer")), 403, "forbidden")


def test_size_limit_is_a_413_naming_the_limit(app, client, world):
    app.config["INVENTORY_UPLOAD_MAX_BYTES"] = 100
    error = assert_error(upload(client, world, b"x" * 101), 413, "payload_too_large")
    assert "100 bytes" in error["message"]


def test_missing_file_part_is_422_and_json_body_is_415(client, world):
    no_file = client.post(f"/api/v1/suppliers/{world['supplier'].id}/inventory-uploads", data={},
                          content_type="multipart/form-data", headers=world["headers"])
    assert "file" in assert_error(no_file, 422, "validation_error")["details"]
    as_json = client.post(f"/api/v1/suppliers/{world['supplier'].id}/inventory-uploads", data="a,b",
                          content_type="text/csv", headers=world["headers"])
    assert_error(as_json, 415, "unsupported_media_type")


@pytest.mark.parametrize(("extra", "name"), [
    ({"extra": "1"}, "extra"),
    ({"other": (io.BytesIO(b"sku\n"), "other.csv")}, "other"),
], ids=["a form field", "a file part"])
def test_a_part_the_upload_does_not_read_is_a_422_naming_it(client, world, extra, name):
    response = client.post(f"/api/v1/suppliers/{world['supplier'].id}/inventory-uploads",
                           data={"file": (io.BytesIO(b"sku\n"), "inventory.csv"), **extra},
                           content_type="multipart/form-data", headers=world["headers"])
    assert assert_error(response, 422, "validation_error")["details"] == {name: ["Unknown field."]}
    assert db.session.scalar(select(func.count(InventoryUpload.id))) == 0


def test_two_files_are_a_422_not_the_first_of_them(client, world):
    response = client.post(f"/api/v1/suppliers/{world['supplier'].id}/inventory-uploads",
                           data={"file": [(io.BytesIO(b"sku\n"), "a.csv"), (io.BytesIO(b"lot\n"), "b.csv")]},
                           content_type="multipart/form-data", headers=world["headers"])
    assert "file" in assert_error(response, 422, "validation_error")["details"]
    assert db.session.scalar(select(func.count(InventoryUpload.id))) == 0


def test_an_unreadable_file_fails_with_a_clear_error(client, world):
    response = upload(client, world, b"PK\x03\x04 not really a workbook", name="broken.xlsx")
    assert response.json["status"] == "failed"
    assert "cannot be read" in response.json["errors"][0]["message"]


def test_the_template_downloads_as_xlsx_with_both_header_languages(client):
    response = client.get("/api/v1/inventory-uploads/template.xlsx")
    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(response.data))
    assert [c.value for c in book.worksheets[0][1]][:6] == HEADER_ZH
    help_text = " ".join(str(c.value) for row in book.worksheets[1].iter_rows() for c in row if c.value)
    assert "household_code" in help_text and "农户编号" in help_text


def test_the_templates_code_columns_are_text_and_its_date_columns_dates_before_anything_is_typed(client):
    """Excel turns a code typed into a General column into a number (household 0012 becomes 12, a 16-digit code loses
    its last digits) and the upload's errors then ask the co-op to format the column as text and type it again: the
    template's code columns (SKU, lot, location, household) are text from the start, its date columns show dates as
    the sheet asks (2026-09-03), and the quantity column stays a number."""
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(client.get("/api/v1/inventory-uploads/template.xlsx").data)).worksheets[0]
    formats = {cell.value: sheet.column_dimensions[cell.column_letter].number_format for cell in sheet[1]}
    assert {name: formats[name] for name in ("产品编码", "批次号", "存放地点", "农户编号")} == dict.fromkeys(
        ("产品编码", "批次号", "存放地点", "农户编号"), "@")
    assert formats["采收日期"] == formats["包装日期"] == "yyyy-mm-dd"
    assert formats["交售数量"] == "General"


def test_the_untouched_template_creates_nothing_and_says_it_has_no_data_rows(runner, client, login):
    """The demo co-op of 昭觉 downloads the template and sends it back as it is: its example is not a lot."""
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    supplier = db.session.scalar(select(Household.registered_by_id).where(Household.code == "DEMO-ZJ-001"))
    lots = lot_count()
    template = client.get("/api/v1/inventory-uploads/template.xlsx").data
    response = upload(client, {"supplier": None}, template, name="template.xlsx", supplier_id=supplier,
                      headers=login("coop", supplier_id=supplier))

    assert response.json["status"] == "failed" and response.json["lots_created"] == 0, response.json
    assert [(e["row"], e["code"]) for e in response.json["errors"]] == [(2, "no_data_rows")]
    assert "没有数据行" in response.json["errors"][0]["message_zh"]
    assert lot_count() == lots


def test_cli_imports_a_file_with_a_progress_bar(runner, world, tmp_path):
    path = tmp_path / "weekly.csv"
    path.write_bytes(csv_bytes([["ZJ-KQ-500", "LOT-C", "2026-09-03", "XC-WH", world["codes"][0], 9]]))
    result = runner.invoke(args=["import-inventory", str(world["supplier"].id), str(path)])
    assert result.exit_code == 0, result.output
    assert "importing rows" in result.output and "1 rows imported into 1 lots" in result.output
    again = runner.invoke(args=["import-inventory", str(world["supplier"].id), str(path)])
    assert "uploaded before" in again.output
    assert db.session.scalar(select(func.count(Lot.id)).where(Lot.lot_code == "LOT-C")) == 1


def test_cli_reports_errors_and_exits_non_zero(runner, world, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(csv_bytes([["ZJ-KQ-500", "LOT-E", "2026-09-03", "NOWHERE", world["codes"][0], 9]]))
    result = runner.invoke(args=["import-inventory", str(world["supplier"].id), str(path)])
    assert result.exit_code != 0
    assert "row 2, 存放地点: Unknown location NOWHERE." in result.output


def test_cli_refuses_a_file_over_the_limit_having_read_no_more_of_it(app, runner, world):
    """The whole file was read into memory before its size was checked: a path to a device that never ends (or a
    backup of many gigabytes) filled the memory; now the limit and one byte more are read, then it is refused."""
    import io

    app.config["INVENTORY_UPLOAD_MAX_BYTES"] = 1000
    stream = io.BytesIO(b"x" * 1_000_000)
    stream.name = "<stdin>"  # as the standard input's
    result = runner.invoke(args=["import-inventory", str(world["supplier"].id), "-"], input=stream)
    assert result.exit_code == 1 and "larger than the limit of 1000 bytes" in result.output, result.output
    assert stream.tell() <= 1001 + io.DEFAULT_BUFFER_SIZE


def test_cli_reports_a_file_level_error_without_a_column(runner, world, tmp_path):
    path = tmp_path / "bad.xlsx"
    path.write_bytes(b"PK\x03\x04 not a workbook")
    result = runner.invoke(args=["import-inventory", str(world["supplier"].id), str(path)])
    assert result.exit_code == 1
    assert "\nrow 1: The file cannot be read: the XLSX file cannot be read.\n" in result.output, result.output


def _sweep_later(monkeypatch, minutes: float) -> dict:
    """Run the sweep as if `minutes` had passed."""
    from catalog import uploads as uploads_module
    from shop.tasks import sweep

    later = datetime.now(uploads_module.utcnow().tzinfo) + timedelta(minutes=minutes)
    monkeypatch.setattr(uploads_module, "utcnow", lambda: later)
    return sweep.apply().get()


def test_an_upload_whose_queueing_failed_answers_202_and_the_sweeper_imports_it(client, world, monkeypatch, caplog):
    from catalog import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.import_inventory, "delay", broker_down)
    data = csv_bytes([["ZJ-KQ-500", "LOT-Q", "2026-09-03", "XC-WH", world["codes"][0], 4]])
    response = upload(client, world, data)
    assert response.status_code == 202 and response.json["status"] == "pending"
    assert "failed; the committed work stands" in caplog.text
    assert db.session.get(InventoryUpload, response.json["id"]).status == "pending"
    monkeypatch.undo()
    assert _sweep_later(monkeypatch, 0)["catalog.inventory_uploads"] == 0  # within the grace period
    assert _sweep_later(monkeypatch, 2)["catalog.inventory_uploads"] == 1
    db.session.expire_all()
    assert db.session.get(InventoryUpload, response.json["id"]).status == "succeeded"
    assert db.session.scalar(select(func.count(Lot.id)).where(Lot.lot_code == "LOT-Q")) == 1


def test_a_re_upload_of_a_stuck_file_re_queues_it(client, world, monkeypatch):
    from catalog import tasks
    from catalog import uploads as uploads_module

    monkeypatch.setattr(tasks.import_inventory, "delay", lambda *a: (_ for _ in ()).throw(ConnectionError()))
    data = csv_bytes([["ZJ-KQ-500", "LOT-U", "2026-09-03", "XC-WH", world["codes"][0], 4]])
    first = upload(client, world, data)
    monkeypatch.undo()
    assert upload(client, world, data).json["status"] == "pending"  # not stuck yet: its task may be on the way
    later = uploads_module.utcnow() + timedelta(minutes=2)
    monkeypatch.setattr(uploads_module, "utcnow", lambda: later)
    again = upload(client, world, data)
    assert again.status_code == 200 and again.json["id"] == first.json["id"]
    assert again.json["status"] == "succeeded"


def test_a_stale_processing_upload_is_run_again_from_the_start_all_or_nothing(client, world, monkeypatch):
    from catalog import tasks
    from catalog import uploads as uploads_module

    monkeypatch.setattr(tasks.import_inventory, "delay", lambda *a: None)  # the message is lost
    rows = [["ZJ-KQ-500", "LOT-S1", "2026-09-03", "XC-WH", world["codes"][0], 4],
            ["ZJ-KQ-500", "LOT-S2", "2026-09-03", "XC-WH", world["codes"][1], 5]]
    upload_id = upload(client, world, csv_bytes(rows)).json["id"]
    calls = []
    real_write = uploads_module._write

    def worker_dies(plans, **kwargs):
        calls.append(1)
        real_write(plans[:1], **kwargs)  # one lot written, then the worker is killed
        raise SystemExit("worker killed")

    monkeypatch.setattr(uploads_module, "_write", worker_dies)
    with pytest.raises(SystemExit):
        tasks.run_import(upload_id)
    db.session.rollback()
    assert db.session.get(InventoryUpload, upload_id).status == "processing"
    assert lot_count() == 0
    monkeypatch.undo()
    assert _sweep_later(monkeypatch, 5)["catalog.inventory_uploads"] == 0  # a claim 5 minutes old is alive
    assert _sweep_later(monkeypatch, 16)["catalog.inventory_uploads"] == 1
    db.session.expire_all()
    done = db.session.get(InventoryUpload, upload_id)
    assert (done.status, done.rows_done, done.lots_created) == ("succeeded", 2, 2)
    assert db.session.scalar(select(func.sum(Lot.quantity))) == 9


def test_utf16_tab_separated_unicode_text_from_excel_imports(client, world):
    a, b = world["codes"][:2]
    text = "\t".join(HEADER_ZH) + "\r\n" + f"ZJ-KQ-500\tLOT-T\t2026/9/3\tXC-WH\t{a}\t7\r\n" \
        + f"zj-kq-500\tlot-t\t2026/9/3\txc-wh\t{b}\t3\r\n"
    for encoding, bom in (("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")):
        data = bom + text.replace("LOT-T", f"LOT-{encoding[-2:]}").replace("lot-t", f"lot-{encoding[-2:]}"
                                                                         ).encode(encoding)
        response = upload(client, world, data, name="unicode.txt")
        assert response.json["status"] == "succeeded", response.json
        lot = db.session.scalar(select(Lot).where(Lot.lot_code == f"LOT-{encoding[-2:].upper()}"))
        assert lot.quantity == 10  # lower-case codes are the same SKU, lot and location


def test_a_faulty_gbk_file_from_excel_reports_each_problem_in_chinese_at_its_excel_row_and_column(client, world):
    a, b, c, _ = world["codes"]
    lines = ["产品编码,批次号,采收日期,存放地点,农户编号,交售数量,包装日期",
             f"ZJ-KQ-500,ZJ-2611-A,2026年9月3日,XC-WH,{a},12,2026年9月5日",  # 2: fine
             "ZJ-KQ-500,ZJ-2611-B,2026年9月3日,XC-WH,DEMO-ZJ-999,8,",            # 3: no such household
             ",,,,,,",                                                           # 4: empty, skipped but counted
             f"ZJ-KQ-500,ZJ-2611-C,2026年9月31日,XC-WH,{b},5,",                 # 5: no 31 September
             f"ZJ-KQ-500,ZJ-2611-D,2026/9/3,XX-WH,{b},十二,",                    # 6: unknown place, quantity in words
             f"ZJ-KQ-500,,2026-09-10,ＸＣ－ＷＨ,{c},３,2026-09-01",              # 7: no lot code, packed before harvest
             f"ZJ-KQM-1KG,ZJ-2611-E,2026-09-03,XC-WH,{c},4,"]                   # 8: not this co-op's product
    body = upload(client, world, ("\r\n".join(lines) + "\r\n").encode("gbk"), name="昭觉库存-11月.csv").json
    assert body["status"] == "failed" and body["lots_created"] == 0
    assert [(e["row"], e["column"], e["code"], e["message_zh"]) for e in body["errors"]] == [
        (3, "农户编号", "unknown_household", "本合作社没有编号为 DEMO-ZJ-999 的农户。"),
        (5, "采收日期", "not_a_date", "“2026年9月31日”不是日期（请写成 2026-09-03 这样）。"),
        (6, "交售数量", "not_positive_whole_number", "“十二”不是正整数。"),
        (6, "存放地点", "unknown_location", "没有编码为 XX-WH 的存放地点。"),
        (7, "批次号", "cell_required", "此单元格必填。"),
        (7, "采收日期", "harvest_after_packed", "采收日期晚于包装日期。"),
        (8, "产品编码", "unknown_product", "产品编码 ZJ-KQM-1KG 不是本合作社的产品。"),
    ]
    assert body["errors"][0]["message"] == "Unknown household DEMO-ZJ-999 for this co-operative."
    assert lot_count() == 0


def test_row_errors_never_quote_what_may_be_a_phone_id_or_bank_card_number(client, world):
    a = world["codes"][0]
    numbers = ["513431195102020013", "51343119510202118X", "6217513431000000001", "13912345678", "139 1234 5678",
               "139-1234-5678", "139.1234.5678"]
    rows = [["ZJ-KQ-500", f"LOT-P{n}", "2026-09-03", "XC-WH", number, 4] for n, number in enumerate(numbers)]
    rows += [["ZJ-KQ-500", "LOT-PQ", "13912345678", "XC-WH", a, "6217 5134 3100 0000 001"],
             ["ZJ-KQ-500", "LOT-PD", "2026-09-03", "XC-WH", "DEMO-ZJ-009", 4]]
    response = upload(client, world, csv_bytes(rows))
    headless = upload(client, world, csv_bytes([], header=["513431195102020013", *HEADER_ZH]))
    shown = client.get(f"/api/v1/inventory-uploads/{response.json['id']}", headers=world["headers"]).json
    stored = db.session.scalars(select(InventoryUpload.errors).order_by(InventoryUpload.id)).all()

    assert shown["status"] == "failed" and shown["errors"] == stored[0]
    assert [(e["row"], e["column"], e["message"]) for e in stored[0]] == [
        *[(row, "农户编号", "Unknown household *** for this co-operative.") for row in range(2, 9)],
        (9, "采收日期", "'***' is not a date (write it like 2026-09-03)."),
        (9, "交售数量", "'***' is not a positive whole number."),
        (10, "农户编号", "Unknown household DEMO-ZJ-009 for this co-operative.")]
    assert stored[0][0]["message_zh"] == "本合作社没有编号为 *** 的农户。"
    assert headless.json["errors"][0] == {"row": 1, "column": "***", "code": "unknown_column",
                                          "message": "Unknown column '***'.",
                                          "message_zh": "未知的列“***”（列名见模板的“说明”页）。"}
    assert not re.search(r"\d{5}", json.dumps(stored, ensure_ascii=False))


def test_a_number_that_is_no_persons_number_is_quoted_as_typed(client, world):
    """Only a resident ID number (valid check digit), a bank card number (valid Luhn digit) or a mobile number is
    hidden: a quantity of 19 digits, an 18-digit number with a wrong ID check digit or a 17-digit one are quoted."""
    a = world["codes"][0]
    rows = [["ZJ-KQ-500", "LOT-Q1", "2026-09-03", "XC-WH", a, "9223372036854775808"],
            ["ZJ-KQ-500", "LOT-Q2", "2026-09-03", "XC-WH", "513431195102020014", 4],
            ["ZJ-KQ-500", "LOT-Q3", "2026-09-03", "XC-WH", "12345678901234567", 4],
            ["ZJ-KQ-500", "LOT-Q4", "2026-09-03", "XC-WH", "6217513431000000001", 4]]

    response = upload(client, world, csv_bytes(rows))
    shown = client.get(f"/api/v1/inventory-uploads/{response.json['id']}", headers=world["headers"]).json

    assert [(e["row"], e["message"]) for e in shown["errors"]] == [
        (2, "9223372036854775808 is more than 1,000,000 units."),
        (3, "Unknown household 513431195102020014 for this co-operative."),
        (4, "Unknown household 12345678901234567 for this co-operative."),
        (5, "Unknown household *** for this co-operative.")]


def test_a_huge_cell_is_reported_as_too_long_and_never_echoed(client, world):
    rows = [["ZJ-KQ-500", "X" * 5000, "2026-09-03", "XC-WH", world["codes"][0], 4],
            ["Y" * 900, "LOT-H", "2026-09-03", "XC-WH", world["codes"][0], 4]]
    body = upload(client, world, xlsx_bytes(rows), name="huge.xlsx").json
    assert body["status"] == "failed"
    assert {(e["row"], e["column"]) for e in body["errors"]} == {(2, "批次号"), (3, "产品编码")}
    assert max(len(e["message"]) for e in body["errors"]) < 200
    assert "more than 1,000 characters" in body["errors"][0]["message"]


def test_a_zip_bomb_cell_is_refused_before_it_is_unpacked(client, world):
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx_bytes([])), "r") as template, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for item in template.infolist():
            bomb.writestr(item, template.read(item.filename))
        with bomb.open("xl/padding.xml", "w") as padding:
            for _ in range(64):
                padding.write(b"x" * (1 << 20))
    assert len(out.getvalue()) < 1 << 20
    body = upload(client, world, out.getvalue(), name="bomb.xlsx").json
    assert body["status"] == "failed"
    assert "unpacks to more than 100 times its size" in body["errors"][0]["message"]


def _template_with(members: dict[str, bytes], *, stored: dict[str, bytes] | None = None) -> bytes:
    """The empty template workbook with `members` replaced or added (deflated), and `stored` added uncompressed."""
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx_bytes([])), "r") as template, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        for item in template.infolist():
            if item.filename not in members:
                book.writestr(item, template.read(item.filename))
        for name, data in members.items():
            book.writestr(name, data)
        for name, data in (stored or {}).items():
            book.writestr(name, data, compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


def test_a_bomb_padded_with_an_incompressible_member_is_refused_before_it_is_unpacked(client, world):
    import os

    strings = b"<sst>" + b"<si><t>a</t></si>" * 3_000_000 + b"</sst>"  # 51 MB that deflate to ~100 KB
    data = _template_with({"xl/sharedStrings.xml": strings}, stored={"docProps/pad.bin": os.urandom(6 << 20)})
    assert len(data) < 8 << 20
    body = upload(client, world, data, name="padded.xlsx").json
    assert body["status"] == "failed" and len(body["errors"]) == 1
    assert body["errors"][0]["code"] == "xlsx_compression_ratio"
    assert lot_count() == 0


SHEET = "xl/worksheets/sheet1.xml"
BROKEN_SHEETS = {
    "truncated": b"<worksheet><sheetData><row r='1'><c",
    "junk": b"\x00\x01garbage",
    "external entity": (b'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                        b'<sheetData><row r="1"><c t="inlineStr"><is><t>&e;</t></is></c></row></sheetData>'
                        b'</worksheet>'),
    "shared string out of range": (b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                                   b'<sheetData><row r="1"><c r="A1" t="s"><v>5</v></c></row></sheetData></worksheet>'),
}


@pytest.mark.parametrize("sheet", BROKEN_SHEETS.values(), ids=BROKEN_SHEETS)
def test_a_workbook_whose_sheet_the_parser_cannot_read_fails_as_unreadable_not_as_our_error(client, world, sheet,
                                                                                             caplog):
    body = upload(client, world, _template_with({SHEET: sheet}), name="broken.xlsx").json
    assert body["status"] == "failed"
    assert [(e["row"], e["code"]) for e in body["errors"]] == [(1, "xlsx_unreadable")]
    assert "passwd" not in str(body) and "root:" not in str(body)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def _sheet_xml_rows(rows: int, dimension: bool) -> bytes:
    """A worksheet XML of `rows` identical data rows (a small file once deflated)."""
    head = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            + (f'<dimension ref="A1:F{rows + 1}"/>' if dimension else "") + "<sheetData>")
    cells = "".join(f'<c t="inlineStr"><is><t>{h}</t></is></c>' for h in HEADER_ZH)
    yield (head + f'<row r="1">{cells}</row>').encode()
    data = '<c t="inlineStr"><is><t>NO-SKU</t></is></c>' * 5 + "<c><v>1</v></c>"
    for number in range(2, rows + 2):
        yield f'<row r="{number}">{data}</row>'.encode()
    yield b"</sheetData></worksheet>"


def _million_row_xlsx(rows: int, dimension: bool) -> bytes:
    """An XLSX whose first sheet has `rows` data rows, written streaming."""
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx_bytes([])), "r") as template, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        for item in template.infolist():
            if item.filename != "xl/worksheets/sheet1.xml":
                book.writestr(item, template.read(item.filename))
        with book.open("xl/worksheets/sheet1.xml", "w") as sheet:
            for chunk in _sheet_xml_rows(rows, dimension):
                sheet.write(chunk)
    return out.getvalue()


def test_a_million_row_xlsx_fails_fast_with_a_bounded_error_list(client, world):
    import time

    data = _million_row_xlsx(1_000_000, dimension=True)
    started = time.monotonic()
    body = upload(client, world, data, name="million.xlsx").json
    assert time.monotonic() - started < 10
    assert body["status"] == "failed" and len(body["errors"]) == 1
    message = body["errors"][0]["message"]
    assert "at most 200,000 data rows" in message or "more than the limit of 209,715,200" in message, message


def test_rows_past_the_configured_limit_stop_the_read_and_errors_are_capped(app, client, world):
    app.config["INVENTORY_UPLOAD_MAX_ROWS"] = 500
    body = upload(client, world, _million_row_xlsx(2_000, dimension=False), name="long.xlsx").json
    assert body["status"] == "failed"
    assert body["errors"] == [{"row": 1, "column": None, "code": "too_many_rows",
                               "message": "The file cannot be read: it has more than 500 data rows (split the file).",
                               "message_zh": "文件无法读取：数据超过 500 行（请拆分文件）。"}]
    app.config["INVENTORY_UPLOAD_MAX_ROWS"] = 5_000
    body = upload(client, world, _million_row_xlsx(400, dimension=False), name="bad.xlsx").json
    assert len(body["errors"]) == 201
    assert body["errors"][-1]["row"] is None
    assert re.fullmatch(r"\d+ more errors are not shown; fix these and upload again\.", body["errors"][-1]["message"])
    assert body["errors"][-1]["code"] == "more_errors"
    assert re.fullmatch(r"另有 \d+ 处问题未列出；请先改正以上问题，再重新上传。", body["errors"][-1]["message_zh"])


def test_the_upload_list_carries_each_uploads_first_errors_and_their_count_and_the_upload_reads_them_all(
        app, client, world):
    """A page of 20 failed uploads listed every one's errors (up to 201 each, some 4,000 entries): the list carries
    each upload's first few and how many it has, and the upload's own read has them all."""
    app.config["INVENTORY_UPLOAD_MAX_ROWS"] = 5_000
    good = upload(client, world, csv_bytes([["ZJ-KQ-500", "LOT-OK", "2026-09-03", "XC-WH", world["codes"][0], 4]]))
    failed = [upload(client, world, _million_row_xlsx(rows, dimension=False), name=f"bad-{rows}.xlsx").json
              for rows in (2, 400)]
    assert good.json["status"] == "succeeded" and [body["status"] for body in failed] == ["failed", "failed"]

    listed = client.get(f"/api/v1/suppliers/{world['supplier'].id}/inventory-uploads", headers=world["headers"])

    items = listed.json["items"]
    assert [item["id"] for item in items] == [failed[1]["id"], failed[0]["id"], good.json["id"]]
    for item in items:
        own = client.get(f"/api/v1/inventory-uploads/{item['id']}", headers=world["headers"]).json
        assert item["errors_total"] == own["errors_total"] == len(own["errors"])
        assert item["errors"] == own["errors"][:len(item["errors"])]
        assert len(item["errors"]) == min(own["errors_total"], 3)
        assert {key: value for key, value in item.items() if key != "errors"} == \
            {key: value for key, value in own.items() if key != "errors"}
    assert [item["errors_total"] for item in items] == [len(failed[1]["errors"]), len(failed[0]["errors"]), 0]
    assert len(failed[1]["errors"]) == 201 and len(failed[0]["errors"]) > 3  # 201: the last says how many more


def test_quantities_beyond_a_million_units_are_rejected(client, world):
    a, b = world["codes"][:2]
    rows = [["ZJ-KQ-500", "LOT-BIG", "2026-09-03", "XC-WH", a, 1_000_001],
            ["ZJ-KQ-500", "LOT-SUM", "2026-09-03", "XC-WH", a, 600_000],
            ["ZJ-KQ-500", "LOT-SUM", "2026-09-03", "XC-WH", b, 600_000]]
    body = upload(client, world, csv_bytes(rows)).json
    assert body["status"] == "failed"
    assert {(e["row"], e["column"]) for e in body["errors"]} == {(2, "交售数量"), (4, "交售数量")}


def test_a_quantity_is_read_from_decimal_digits_only_as_the_api_and_the_pages_read_numbers(client, world):
    """A superscript or circled number is no quantity (² is not 2 units delivered, ①0 not 10), as in every number
    box; another script's digits are (٣ is 3)."""
    a, b, c, _ = world["codes"]
    rows = [["ZJ-KQ-500", "LOT-SUP", "2026-09-03", "XC-WH", a, "²"],
            ["ZJ-KQ-500", "LOT-CIR", "2026-09-03", "XC-WH", b, "①0"],
            ["ZJ-KQ-500", "LOT-ARA", "2026-09-03", "XC-WH", c, "٣"]]
    body = upload(client, world, csv_bytes(rows)).json
    assert body["status"] == "failed" and lot_count() == 0
    assert [(e["row"], e["column"], e["code"]) for e in body["errors"]] == [
        (2, "交售数量", "not_positive_whole_number"), (3, "交售数量", "not_positive_whole_number")]


def test_a_date_outside_the_shops_range_is_a_row_error_in_both_languages(client, world):
    a, b, _, _ = world["codes"]
    rows = [["ZJ-KQ-500", "LOT-OLD", "0001-01-01", "XC-WH", a, 3], ["ZJ-KQ-500", "LOT-NEW", "2100/1/1", "XC-WH", b, 3]]
    body = upload(client, world, csv_bytes(rows)).json
    assert body["status"] == "failed" and lot_count() == 0
    assert [(e["row"], e["code"], e["message"], e["message_zh"]) for e in body["errors"]] == [
        (2, "date_out_of_range", "0001-01-01 is not a date from 2000-01-01 to 2099-12-31.",
         "0001-01-01 不在 2000-01-01 至 2099-12-31 之间。"),
        (3, "date_out_of_range", "2100-01-01 is not a date from 2000-01-01 to 2099-12-31.",
         "2100-01-01 不在 2000-01-01 至 2099-12-31 之间。")]


def test_an_uploaded_files_name_is_kept_without_control_characters_or_overrides(client, world):
    response = upload(client, world, csv_bytes([]), name="库存\u202egpj.csv")
    assert response.status_code in (200, 202) and response.json["filename"] == "库存gpj.csv"


def test_a_row_stocking_a_store_is_refused_since_stores_receive_by_transfer(client, world):
    a = world["codes"][0]
    LocationFactory(code="FS-SD-ST", kind="store", region_code="440606")
    db.session.commit()

    body = upload(client, world, csv_bytes([["ZJ-KQ-500", "LOT-S", "2026-09-03", "FS-SD-ST", a, 3]])).json

    assert body["status"] == "failed" and lot_count() == 0
    assert [(e["row"], e["column"], e["code"], e["message_zh"]) for e in body["errors"]] == [
        (2, "存放地点", "location_not_warehouse", "FS-SD-ST 是门店：批次只能入仓库，再调拨到门店。")]


def test_a_row_naming_a_warehouse_by_a_look_alike_of_its_code_stocks_that_warehouse(client, world):
    a, b, _, _ = world["codes"]
    rows = [["ZJ-KQ-500", "LOT-L", "2026-09-03", "XC_WH", a, 4], ["ZJ-KQ-500", "LOT-L", "2026-09-03", "xc.wh", b, 6]]

    body = upload(client, world, csv_bytes(rows)).json

    assert body["status"] == "succeeded", body["errors"]
    assert inventory.available(location_id=world["xichang"].id, product_id=world["product"].id) == 10


def test_an_import_that_loses_a_race_for_a_lot_code_names_the_code_and_its_row(client, world, monkeypatch):
    """Another upload creates lot B-2 after this one checked its codes and before it writes: nothing of this file
    is imported, and the co-op is told which code to change and where."""
    from catalog import uploads

    checked = uploads._validate

    def another_upload_meanwhile(sheet, *, supplier_id):
        plans = checked(sheet, supplier_id=supplier_id)
        make_lot(world["product"], world["xichang"], lot_code="B-2")
        return plans

    monkeypatch.setattr(uploads, "_validate", another_upload_meanwhile)
    rows = [["ZJ-KQ-500", "A-1", "2026-09-01", "XC-WH", world["codes"][0], 3],
            ["ZJ-KQ-500", "B-2", "2026-09-01", "XC-WH", world["codes"][1], 4]]
    body = upload(client, world, csv_bytes(rows)).json

    assert body["status"] == "failed"
    errors = [(e["row"], e["column"], e["code"]) for e in body["errors"]]
    assert errors == [(3, "批次号", "lot_code_imported_meanwhile")]
    assert "B-2" in body["errors"][0]["message"] and "B-2" in body["errors"][0]["message_zh"]
    assert set(db.session.scalars(select(Lot.lot_code))) == {"B-2"}  # the other upload's lot only


def test_an_id_or_card_number_in_a_files_name_is_masked_wherever_the_upload_is_shown(client, world):
    a = world["codes"][0]
    name = "阿呷莫 513431199001010017 6222021234567890123 ５１３４３１１９９００１０１００１７.csv"
    response = upload(client, world, csv_bytes([["ZJ-KQ-500", "LOT-N", "2026-09-03", "XC-WH", a, 1]]), name=name)
    assert response.json["filename"] == "阿呷莫 *** *** ***.csv"  # each number masked, the spaces between kept
    listed = client.get(f"/api/v1/suppliers/{world['supplier'].id}/inventory-uploads", headers=world["headers"])
    assert [item["filename"] for item in listed.json["items"]] == ["阿呷莫 *** *** ***.csv"]


def test_a_workbook_with_hidden_or_filtered_rows_imports_nothing_and_names_each_hidden_row(client, world):
    """Rows the co-op hid (or filtered away) are stock no one checked before the upload: nothing comes in."""
    a, b, c, _ = world["codes"]
    book = Workbook()
    book.active.append(HEADER_ZH)
    book.active.append(["ZJ-KQ-500", "LOT-SEEN", "2026-09-03", "XC-WH", a, 5])
    book.active.append(["ZJ-KQ-500", "LOT-OLD", "2026-08-03", "XC-WH", b, 500])
    book.active.append(["ZJ-KQ-500", "LOT-SEEN", "2026-09-03", "XC-WH", c, 7])
    book.active.auto_filter.ref = "A1:F4"
    book.active.row_dimensions[3].hidden = True
    out = io.BytesIO()
    book.save(out)

    body = upload(client, world, out.getvalue(), name="库存.xlsx").json

    assert body["status"] == "failed" and body["lots_created"] == 0
    assert [(e["row"], e["column"], e["code"]) for e in body["errors"]] == [(3, None, "hidden_row")]
    assert "隐藏" in body["errors"][0]["message_zh"]
    assert lot_count() == 0


def test_a_csv_saved_by_mac_excel_with_cr_line_ends_imports(client, world):
    a, b = world["codes"][:2]
    lines = [",".join(HEADER_ZH), f"ZJ-KQ-500,LOT-MAC,2026/9/3,XC-WH,{a},12", f"ZJ-KQ-500,LOT-MAC,2026/9/3,FS-WH,{b},8"]

    body = upload(client, world, ("\r".join(lines) + "\r").encode("gbk"), name="mac.csv").json

    assert body["status"] == "succeeded", body
    assert (body["rows_total"], body["lots_created"]) == (2, 1)
    assert db.session.scalar(select(Lot.quantity).where(Lot.lot_code == "LOT-MAC")) == 20


def _statements_holding_the_write_lock(client, world, lots: int, prefix: str) -> int:
    """How many statements an upload of `lots` lots runs from its import's first write to its commit (on SQLite,
    every other writer waits that long)."""
    from sqlalchemy import event

    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement.lstrip().split(None, 1)[0].upper())

    rows = [["ZJ-KQ-500", f"{prefix}-{i}", "2026-09-01", "XC-WH", code, 3]
            for i in range(lots) for code in world["codes"]]
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        body = upload(client, world, csv_bytes(rows)).json
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert (body["status"], body["lots_created"]) == ("succeeded", lots)
    claimed = statements.index("UPDATE")  # the claim, committed on its own
    writes = [i for i, kind in enumerate(statements) if i > claimed + 1 and kind in ("INSERT", "UPDATE", "DELETE")]
    return len(statements) - writes[0]


def test_an_import_holds_the_write_lock_for_as_many_statements_whatever_its_number_of_lots(client, world):
    """A large import checks its rows before it writes and writes its lots, contributions and stock a table at a
    time: on SQLite, other co-ops' and the shop's writes waited for one import of 3,700 lots for 10 s."""
    few = _statements_holding_the_write_lock(client, world, 5, "FEW")
    many = _statements_holding_the_write_lock(client, world, 40, "MANY")
    assert many == few


def test_with_the_cache_down_an_import_still_runs_and_its_progress_is_read_from_the_database(
        redis_down_app, caplog):  # noqa: F811
    """Progress lives in the cache, which may be down (Redis restarting while a worker imports, or the
    import-inventory command run beside it): the import still imports its file and a poller still reads the upload,
    from the database, as every other cache read falls back, rather than the import raising (the upload left
    processing) and the read answering 503."""
    import logging

    from catalog import tasks, uploads
    from shop.auth.security import issue_token
    from tests.factories import UserFactory
    from tests.suppliers.factories import SupplierFactory

    supplier = SupplierFactory()
    ProductFactory(supplier=supplier, sku="ZJ-KQ-500", unit="bag")
    LocationFactory(code="XC-WH")
    household = linked_households(supplier, 1)[0]
    user = UserFactory(role="coop", supplier_id=supplier.id)
    db.session.commit()
    token, _ = issue_token(user)
    data = csv_bytes([["ZJ-KQ-500", "LOT-R", "2026-09-03", "XC-WH", household.code, 4]])
    queued, _ = uploads.submit_upload(actor=None, supplier_id=supplier.id, filename="inventory.csv", data=data,
                                      max_bytes=len(data), queue_import=False)
    db.session.commit()
    assert uploads.claim_upload(queued.id)
    db.session.commit()
    with caplog.at_level(logging.INFO):
        polled = redis_down_app.test_client().get(f"/api/v1/inventory-uploads/{queued.id}",
                                                  headers={"Authorization": f"Bearer {token}"})
    assert polled.status_code == 200 and polled.json["status"] == "processing"
    db.session.execute(update(InventoryUpload).where(InventoryUpload.id == queued.id).values(status="pending"))
    db.session.commit()

    done = tasks.run_import(queued.id)

    assert (done.status, done.rows_done, done.lots_created) == ("succeeded", 1, 1)
    assert db.session.scalar(select(Lot.quantity).where(Lot.lot_code == "LOT-R")) == 4
    assert "Traceback" not in caplog.text


def test_a_run_taking_over_a_dead_workers_claim_shows_its_own_progress_not_the_dead_runs(client, world, monkeypatch):
    """A worker killed after reporting 1 of 2 rows leaves that progress in the cache; the run that takes its stale claim
    over starts from the start (rows_done 0), so a poller sees it reading the file, not the dead run's 1 of 2 (rolled
    back) until the new run first reports, its progress then going backwards."""
    from catalog import tasks, uploads
    from shop.caching import cache_set

    monkeypatch.setattr(tasks.import_inventory, "delay", lambda *a: None)  # the message is lost
    rows = [["ZJ-KQ-500", "LOT-D1", "2026-09-03", "XC-WH", world["codes"][0], 4],
            ["ZJ-KQ-500", "LOT-D2", "2026-09-03", "XC-WH", world["codes"][1], 5]]
    upload_id = upload(client, world, csv_bytes(rows)).json["id"]
    assert uploads.claim_upload(upload_id)
    db.session.commit()
    cache_set(uploads._progress_key(upload_id), (1, 2))  # what the dead run reported last
    dead = datetime.now(uploads.utcnow().tzinfo) - timedelta(minutes=16)
    db.session.execute(update(InventoryUpload).where(InventoryUpload.id == upload_id).values(claimed_at=dead))
    db.session.commit()

    assert uploads.claim_upload(upload_id)
    db.session.commit()

    shown = client.get(f"/api/v1/inventory-uploads/{upload_id}", headers=world["headers"]).json
    assert (shown["status"], shown["rows_done"], shown["rows_total"]) == ("processing", 0, 0)
