"""The bank's batch-transfer file: what the bank executes (full accounts, yuan, references), safe to open in Excel,
every download audited like a reveal, and a co-op sees only its own households' batches."""
from __future__ import annotations

import csv
import io
from decimal import Decimal

from openpyxl import load_workbook

from orders.ledger import accounts
from orders.ledger.payouts import bank_file
from orders.ledger.verify import verify_ledger
from shop.db import db
from shop.exports import csv_cell
from tests.orders.factories import StoreFactory
from tests.orders.ledger.payout_factories import built_batch, days_ago, earn, payee_household, today
from tests.suppliers.factories import SupplierFactory, make_bank_account


def household_batch(*, names=("测试户甲", "=HYPERLINK(\"http://x\",\"点我\")"), amounts=(123_456, 7)):
    """A built batch of one supplier's households named `names` earning `amounts`, plus an unpayable one."""
    supplier = SupplierFactory()
    households = [payee_household(supplier, head_name=name) for name in names]
    broke = payee_household(supplier, bank_account=False)
    for household, amount in zip([*households, broke], [*amounts, 999], strict=True):
        earn(accounts.household(household.id, supplier.id), amount, on=days_ago(1))
    return supplier, households, built_batch(party="household", supplier_id=supplier.id, until=today())


def download(client, headers, batch_id, reason="提交银行代发", output="csv"):
    """GET the batch's bank file."""
    return client.get(f"/api/v1/payout-batches/{batch_id}", headers=headers,
                      query_string={"format": output, "reason": reason})


def test_the_bank_file_lists_the_pending_transfers_in_full_and_is_safe_for_excel(client, login):
    supplier, (plain, sneaky), batch = household_batch()
    lines = {line.household_id: line for line in batch.lines}

    response = download(client, login("coop", supplier_id=supplier.id), batch.id)

    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="payout-batch-{batch.id}.csv"'
    assert response.headers["Cache-Control"] == "private, no-store"
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")                      # UTF-8 BOM: Excel on Windows reads the Chinese
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["序号", "收款人户名", "收款人账号", "收款银行", "金额（元）", "用途", "业务参考号"]
    assert rows[1:] == [
        ["1", "测试户甲", plain.bank_account, "中国建设银行", "1234.56", "农户收益分配",
         f"PB{batch.id}-L{lines[plain.id].id}"],
        ["2", "'=HYPERLINK(\"http://x\",\"点我\")", sneaky.bank_account, "中国建设银行", "0.07", "农户收益分配",
         f"PB{batch.id}-L{lines[sneaky.id].id}"],
    ]                                                             # the unpayable household is not in the file
    assert verify_ledger()["ok"] is True


def test_a_payee_named_with_a_full_width_formula_sign_is_quoted_in_the_csv_bank_file(client, login):
    names = ("＝HYPERLINK(\"http://x\",\"点我\")", "＋86", "－2", "＠SUM(A1)", "﹦1+1")
    supplier, _households, batch = household_batch(names=names, amounts=(100, 200, 300, 400, 500))

    response = download(client, login("coop", supplier_id=supplier.id), batch.id)

    assert response.status_code == 200, response.get_json()
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert [row[1] for row in rows[1:]] == [f"'{name}" for name in names]  # a CJK spreadsheet reads ＝ as =


def test_the_xlsx_bank_file_keeps_every_digit_of_the_accounts_as_text(client, login):
    supplier, (plain, sneaky), batch = household_batch()
    lines = {line.household_id: line for line in batch.lines}

    response = download(client, login("coop", supplier_id=supplier.id), batch.id, output="xlsx")

    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    assert response.headers["Content-Disposition"] == f'attachment; filename="payout-batch-{batch.id}.xlsx"'
    sheet = load_workbook(io.BytesIO(response.get_data())).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0] == ["序号", "收款人户名", "收款人账号", "收款银行", "金额（元）", "用途", "业务参考号"]
    assert rows[1:] == [
        [1, "测试户甲", plain.bank_account, "中国建设银行", 1234.56, "农户收益分配",
         f"PB{batch.id}-L{lines[plain.id].id}"],
        [2, "=HYPERLINK(\"http://x\",\"点我\")", sneaky.bank_account, "中国建设银行", 0.07, "农户收益分配",
         f"PB{batch.id}-L{lines[sneaky.id].id}"]]
    accounts_ = [sheet.cell(row=n, column=3) for n in (2, 3)]
    assert all(cell.data_type == "s" and cell.number_format == "@" and len(cell.value) == 19 for cell in accounts_)
    assert sheet.cell(row=3, column=2).data_type == "s"           # the name is text, not a formula
    assert sum(Decimal(str(sheet.cell(row=n, column=5).value)) for n in (2, 3)) * 100 == batch.total_fen


def test_every_download_is_audited_and_the_accounts_count_as_revealed(client, login):
    supplier, (plain, sneaky), batch = household_batch()
    coop = login("coop", supplier_id=supplier.id)

    assert download(client, coop, batch.id).status_code == 200
    assert download(client, login("admin"), batch.id, reason="复核").status_code == 200
    auditor = login("auditor")
    downloads = client.get(f"/api/v1/audit/payout-downloads?batch_id={batch.id}", headers=auditor)
    reveals = client.get(f"/api/v1/audit/reveals?household_id={plain.id}", headers=auditor)

    assert downloads.status_code == 200, downloads.json
    assert [(d["batch_id"], d["lines"], d["total_fen"], d["reason"]) for d in downloads.json["items"]] == [
        (batch.id, 2, 123_463, "提交银行代发"), (batch.id, 2, 123_463, "复核")]
    assert downloads.json["items"][0]["username"].startswith("user")
    assert [(r["fields"], r["reason"]) for r in reveals.json["items"]] == [
        (["bank_account"], f"payout batch {batch.id} bank file: 提交银行代发"),
        (["bank_account"], f"payout batch {batch.id} bank file: 复核")]
    assert client.get("/api/v1/audit/payout-downloads", headers=coop).status_code == 403


def test_a_download_needs_a_reason_and_a_ready_batch(client, login):
    supplier, _, batch = household_batch()
    admin = login("admin")
    batch.status = "building"
    db.session.commit()

    no_reason = client.get(f"/api/v1/payout-batches/{batch.id}?format=csv", headers=admin)
    building = download(client, admin, batch.id)
    listed = client.get("/api/v1/audit/payout-downloads", headers=admin)

    assert no_reason.status_code == 422 and "reason" in no_reason.json["error"]["details"]
    assert building.status_code == 409 and building.json["error"]["code"] == "payout_batch_not_ready"
    assert listed.json["items"] == []


def test_a_download_or_settle_reason_holding_an_id_or_bank_card_number_is_refused(client, login):
    supplier, (payee, _), batch = household_batch()
    coop, admin = login("coop", supplier_id=supplier.id), login("admin")
    line_id = next(line.id for line in batch.lines if line.household_id == payee.id)

    downloaded = download(client, coop, batch.id, reason=f"核对 {payee.id_number}")
    settled = client.post(f"/api/v1/payout-batches/{batch.id}/settle", headers=admin, json={
        "lines": [{"line_id": line_id, "status": "failed", "reason": f"账号{payee.bank_account}冻结"}]})

    assert downloaded.status_code == 422 and "reason" in downloaded.json["error"]["details"], downloaded.json
    assert settled.status_code == 422, settled.json
    assert "Do not write ID or bank card numbers here" in str(settled.json["error"]["details"])
    assert client.get("/api/v1/audit/payout-downloads", headers=admin).json["items"] == []
    failed = client.get(f"/api/v1/payout-batches/{batch.id}/lines?status=failed", headers=coop)
    assert failed.status_code == 200 and failed.json["items"] == []


def test_a_coop_sees_its_own_household_batches_only(client, login):
    supplier, _, own = household_batch(names=("户一",), amounts=(100,))
    other_supplier, _, other = household_batch(names=("户二",), amounts=(200,))
    stores = built_batch(party="store", until=today())
    coop = login("coop", supplier_id=supplier.id)

    listed = client.get("/api/v1/payout-batches", headers=coop)
    mine = client.get(f"/api/v1/payout-batches/{own.id}", headers=coop)

    assert [item["id"] for item in listed.json["items"]] == [own.id]
    assert mine.status_code == 200 and [line["amount_fen"] for line in mine.json["lines"]] == [100, 999]
    for batch in (other, stores):
        shown = client.get(f"/api/v1/payout-batches/{batch.id}", headers=coop)
        for response in (shown, download(client, coop, batch.id)):
            assert response.status_code == 404 and response.json["error"]["code"] == "payout_batch_not_found"
    assert client.get("/api/v1/audit/payout-downloads", headers=login("admin")).json["items"] == []
    auditor = login("auditor")                                     # reads every batch masked, downloads no file
    assert client.get(f"/api/v1/payout-batches/{own.id}", headers=auditor).json["lines"][0]["account"].startswith("*")
    refused = download(client, auditor, own.id)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "bank_file_forbidden"
    assert client.get(f"/api/v1/payout-batches?supplier_id={other_supplier.id}",
                      headers=login("admin")).json["items"][0]["id"] == other.id


def test_cells_a_spreadsheet_would_evaluate_are_quoted():
    assert [csv_cell(text) for text in ("=1+1", "+86", "-2", "@SUM(A1)", "\tx", "\rx", "张三", "1=1", -2)] == [
        "'=1+1", "'+86", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "张三", "1=1", -2]
    assert [bank_file.yuan(fen) for fen in (1, 10, 100, 123_456)] == ["0.01", "0.10", "1.00", "1234.56"]
    assert (bank_file.bank_name("6222020200112233445"), bank_file.bank_name("6222000000001234")) == ("中国工商银行", "")


def test_a_bank_file_never_pays_an_account_changed_after_the_build(client, login):
    supplier, (moved, stayed), batch = household_batch(names=("换卡户", "原卡户"), amounts=(500, 300))
    lines = {line.household_id: line.id for line in batch.lines}
    coop, admin = login("coop", supplier_id=supplier.id), login("admin")
    new_account = make_bank_account()
    changed = client.patch(f"/api/v1/households/{moved.id}", headers=coop,
                           json={"bank_account": new_account, "reason": "旧卡挂失"})
    assert changed.status_code == 200, changed.json

    shown = client.get(f"/api/v1/payout-batches/{batch.id}", headers=coop).json
    refused = download(client, coop, batch.id)

    assert {line["id"]: line["account_changed"] for line in shown["lines"] if line["status"] == "pending"} == {
        lines[moved.id]: True, lines[stayed.id]: False}
    assert refused.status_code == 409 and refused.json["error"]["code"] == "payee_account_changed"
    assert refused.json["error"]["details"] == {"line_ids": [lines[moved.id]]}
    assert client.get("/api/v1/audit/payout-downloads", headers=admin).json["items"] == []   # nothing went out

    returned = client.post(f"/api/v1/payout-batches/{batch.id}/settle", headers=admin, json={
        "lines": [{"line_id": lines[moved.id], "status": "failed", "reason": "收款账号已变更（旧卡挂失）"}]})
    file = download(client, coop, batch.id)
    again = built_batch(party="household", supplier_id=supplier.id, until=today())
    next_file = download(client, coop, again.id)

    assert returned.status_code == 200, returned.json
    rows = list(csv.reader(io.StringIO(file.get_data().decode("utf-8-sig"))))[1:]
    assert [(row[1], row[2]) for row in rows] == [("原卡户", stayed.bank_account)]   # the old account is not paid
    assert [line.household_id for line in again.lines if line.status == "pending"] == [moved.id]
    next_rows = list(csv.reader(io.StringIO(next_file.get_data().decode("utf-8-sig"))))[1:]
    assert [(row[1], row[2], row[4]) for row in next_rows] == [("换卡户", new_account, "5.00")]
    assert verify_ledger()["ok"] is True


def test_a_store_bank_file_audits_each_store_whose_account_it_reveals(client, login):
    stores = [StoreFactory(), StoreFactory()]
    for store in stores:
        store.bank_account = make_bank_account()
        earn(accounts.store(store.id), 1000, on=days_ago(1))
    batch = built_batch(party="store", until=today())
    admin = login("admin")

    assert download(client, admin, batch.id).status_code == 200
    auditor = login("auditor")
    for store in stores:
        reveals = client.get(f"/api/v1/audit/reveals?store_id={store.id}", headers=auditor)
        assert reveals.status_code == 200, reveals.json
        assert [(r["store_id"], r["household_id"], r["supplier_id"], r["fields"], r["reason"])
                for r in reveals.json["items"]] == [
            (store.id, None, None, ["bank_account"], f"payout batch {batch.id} bank file: 提交银行代发")]


def test_a_payee_renamed_after_the_build_is_paid_under_the_name_the_batch_was_built_with(client, login):
    supplier, (renamed, _other), batch = household_batch(names=("测试户甲", "测试户乙"), amounts=(500, 300))
    store = StoreFactory(name="大凉山体验店 旧名")
    store.bank_account = make_bank_account()
    earn(accounts.store(store.id), 1000, on=days_ago(1))
    stores = built_batch(party="store", until=today())
    admin = login("admin")
    line_id = next(line.id for line in batch.lines if line.household_id == renamed.id)
    masked = client.get(f"/api/v1/payout-batches/{batch.id}", headers=admin).json["lines"]

    for url, body in ((f"/api/v1/households/{renamed.id}", {"head_name": "测试户丙"}),
                      (f"/api/v1/stores/{store.id}", {"name": "大凉山体验店 新名"})):
        changed = client.patch(url, headers=admin, json=body)
        assert changed.status_code == 200, changed.json
    household_file = download(client, login("coop", supplier_id=supplier.id), batch.id)
    store_file = download(client, admin, stores.id)
    shown = client.get(f"/api/v1/payout-batches/{batch.id}", headers=admin).json["lines"]

    assert household_file.status_code == 200 and store_file.status_code == 200
    household_rows = list(csv.reader(io.StringIO(household_file.get_data().decode("utf-8-sig"))))[1:]
    assert [(row[1], row[2]) for row in household_rows if row[6] == f"PB{batch.id}-L{line_id}"] == [
        ("测试户甲", renamed.bank_account)]
    store_rows = list(csv.reader(io.StringIO(store_file.get_data().decode("utf-8-sig"))))[1:]
    assert [(row[1], row[2]) for row in store_rows] == [("大凉山体验店 旧名", store.bank_account)]
    assert [(line["payee"]["name"], line["account"], line["account_changed"]) for line in shown] == [
        (line["payee"]["name"], line["account"], False) for line in masked]
    assert next(line["payee"]["name"] for line in shown if line["id"] == line_id) == "测试户甲"


def test_a_batch_review_marks_lines_whose_account_another_household_holds_without_naming_it(client, login):
    """Accounts shared before registrations naming another active household's account were refused (or kept by a
    deactivated household, still paid its balance) are marked on the batch under review, for each co-op."""
    supplier, (first, second, own), batch = household_batch(names=("测试户甲", "测试户乙", "测试户丙"),
                                                             amounts=(500, 600, 700))
    elsewhere = payee_household(SupplierFactory(), bank_account=False)
    second.bank_account, elsewhere.bank_account = first.bank_account, own.bank_account  # stored before 0073
    db.session.commit()

    shown = client.get(f"/api/v1/payout-batches/{batch.id}", headers=login("coop", supplier_id=supplier.id)).json
    marked = {line["payee"]["id"]: line["shared_account"] for line in shown["lines"]}
    assert [marked[h.id] for h in (first, second, own)] == [True, True, True] and sum(marked.values()) == 3
    assert elsewhere.id not in marked and elsewhere.head_name not in str(shown)  # the other co-op's stays unnamed
    second.bank_account = make_bank_account()
    db.session.commit()
    listed = client.get(f"/api/v1/payout-batches/{batch.id}/lines", headers=login("admin")).json["items"]
    marked = {line["payee"]["id"]: line["shared_account"] for line in listed}
    assert [marked[h.id] for h in (first, second, own)] == [False, False, True] and sum(marked.values()) == 1
