"""In a real browser, the co-op's journey (issue 11): 昭觉's bookkeeper uploads a faulty GBK file, reads the row
errors, uploads the corrected file, watches it finish, finds the new lot's trace page; the progress polls while
an upload waits; statements print; the bank file download is audited; another co-op finds none of it."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from catalog import uploads
from catalog.models import InventoryUpload
from catalog.tasks import run_import
from orders.ledger import accounts
from orders.ledger.payouts import service as payouts
from orders.ledger.payouts.models import PayoutBatch, PayoutDownload
from orders.ledger.verify import verify_ledger
from shop.auth.models import User
from shop.db import commit, db
from suppliers.models import Household
from tests.orders.ledger.payout_factories import days_ago, earn, today
from tests.web.conftest import screenshot, sign_in

HEADER = "产品编码,批次号,采收日期,存放地点,农户编号,交售数量"
LOT = "ZJ-KQM-WEB-2611"
FAULTY = [f"ZJ-KQM-1KG,{LOT},2026年11月20日,XC-WH,DEMO-ZJ-001,12",
          f"ZJ-KQM-1KG,{LOT},2026年11月20日,XC-WH,DEMO-ZJ-999,8",     # row 3: no such household
          f"ZJ-KQM-1KG,{LOT},2026年11月20日,XX-WH,DEMO-ZJ-003,5"]     # row 4: no such location
CORRECTED = [FAULTY[0], FAULTY[1].replace("DEMO-ZJ-999", "DEMO-ZJ-002"), FAULTY[2].replace("XX-WH", "XC-WH")]
ZJ_001_ACCOUNT = "6217513431000000001"  # the demo's synthetic account of DEMO-ZJ-001


def gbk_csv(rows: list[str]) -> dict:
    """A GBK CSV with Chinese headers, as Excel on a Chinese Windows PC saves it, for a file input."""
    return {"name": "昭觉库存-11月.csv", "mimeType": "text/csv",
            "buffer": "\r\n".join([HEADER, *rows, ""]).encode("gbk")}


def console_errors(page) -> list[str]:
    """Collect the page's console errors (a CSP violation is one, so is a missing file such as the icon)."""
    errors: list[str] = []

    def record(message) -> None:
        if message.type == "error":
            errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", record)
    return errors


@pytest.fixture(scope="module")
def zhaojue(site) -> dict:
    """The 昭觉 co-op's supplier id, its DEMO-ZJ-001 household, and a ready payout batch of its households that
    pays DEMO-ZJ-001 (earned yesterday) to its account."""
    with site.app.app_context():
        user = db.session.scalar(select(User).where(User.username == "coop-zhaojue"))
        household = db.session.scalar(select(Household).where(Household.code == "DEMO-ZJ-001"))
        earn(accounts.household(household.id, user.supplier_id), 4321, on=days_ago(1))
        admin = db.session.scalar(select(User).where(User.username == "admin"))
        batch = payouts.request_batch(actor=admin, party="household", supplier_id=user.supplier_id, until=today())
        commit()  # the build task runs eagerly after the commit (the embedded default)
        batch = db.session.get(PayoutBatch, batch.id)
        assert batch.status == "ready"
        return {"supplier_id": user.supplier_id, "household_id": household.id, "batch_id": batch.id}


def test_a_coop_fixes_a_faulty_gbk_file_watches_the_import_and_finds_the_new_lots_trace_page(site, desktop):
    page = desktop.new_page()
    errors = console_errors(page)
    sign_in(page, site, "coop-zhaojue")
    page.wait_for_url(site.url + "/coop")
    expect(page.get_by_role("heading", level=1)).to_have_text("昭觉县苦荞种植专业合作社（演示）")
    expect(page.get_by_role("link", name="库存上传模板（Excel）")).to_have_attribute(
        "href", "/api/v1/inventory-uploads/template.xlsx")
    screenshot(page, "coop-home")

    page.get_by_label("库存文件（.xlsx 或 .csv）").set_input_files(gbk_csv(FAULTY))
    page.get_by_role("button", name="上传并导入").click()
    page.wait_for_url(re.compile(r".*/coop/uploads/\d+$"))
    expect(page.locator("#upload-status")).to_contain_text("有错误，未导入")
    rows = page.locator("table.upload-errors tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("td")).to_have_text(["3", "农户编号", "本合作社没有编号为 DEMO-ZJ-999 的农户。"])
    expect(rows.nth(1).locator("td")).to_have_text(["4", "存放地点", "没有编码为 XX-WH 的存放地点。"])
    expect(page.locator("#upload-status").get_by_role("link", name="库存上传模板（Excel）")).to_be_visible()
    screenshot(page, "coop-upload-errors")

    page.get_by_role("link", name="上传改正后的文件").click()
    page.get_by_label("库存文件（.xlsx 或 .csv）").set_input_files(gbk_csv(CORRECTED))
    page.get_by_role("button", name="上传并导入").click()
    page.wait_for_url(re.compile(r".*/coop/uploads/\d+$"))
    expect(page.locator("#upload-status")).to_contain_text("导入完成：3 行，新建 1 个批次。")
    screenshot(page, "coop-upload-done")

    page.get_by_role("link", name="查看批次和溯源页").click()
    page.wait_for_url(site.url + "/coop/lots")
    row = page.locator("tr", has_text=LOT)
    expect(row.locator("td").nth(4)).to_have_text("25")
    screenshot(page, "coop-lots")
    assert errors == []  # no CSP violation or script error on the portal's pages
    row.get_by_role("link", name=f"批次 {LOT} 的溯源页").click()
    page.wait_for_url(re.compile(r".*/t/[A-Z0-9]+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("昭觉苦荞米")
    expect(page.get_by_text(LOT)).to_be_visible()


def test_the_progress_of_a_queued_upload_updates_itself_until_the_import_ends(site, desktop, zhaojue):
    with site.app.app_context():
        queued, _ = uploads.submit_upload(
            actor=None, supplier_id=zhaojue["supplier_id"], filename="排队中的文件.csv", max_bytes=10_000,
            data=gbk_csv(["ZJ-KQM-1KG,ZJ-KQM-WEB-QUEUED,2026年11月21日,XC-WH,DEMO-ZJ-005,7"])["buffer"],
            queue_import=False)
        db.session.commit()
        upload_id = queued.id
    page = desktop.new_page()
    errors = console_errors(page)
    sign_in(page, site, "coop-zhaojue", path=f"/login?next=/coop/uploads/{upload_id}")
    page.wait_for_url(site.url + f"/coop/uploads/{upload_id}")
    expect(page.locator("#upload-status")).to_contain_text("排队中")
    screenshot(page, "coop-upload-progress")
    with page.expect_request(re.compile(rf".*/coop/uploads/{upload_id}/status$")):
        pass  # the page asks for its status fragment every second

    with site.app.app_context():
        run_import(upload_id)  # what the worker does

    expect(page.locator("#upload-status")).to_contain_text("导入完成：1 行，新建 1 个批次。", timeout=5000)
    with site.app.app_context():
        assert db.session.get(InventoryUpload, upload_id).status == "succeeded"
    assert errors == []


def test_a_household_statement_prints_and_the_bank_file_download_is_audited(site, desktop, zhaojue):
    page = desktop.new_page()
    errors = console_errors(page)
    sign_in(page, site, "coop-zhaojue", path="/login?next=/coop/households")
    page.wait_for_url(site.url + "/coop/households")
    row = page.locator("tr", has_text="DEMO-ZJ-001")
    expect(row.locator("td").nth(2)).to_have_text(re.compile(r"^513431\*{8}\d{3}[\dX]$"))  # masked
    screenshot(page, "coop-households")
    row.get_by_role("link", name="DEMO-ZJ-001", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("农户 DEMO-ZJ-001")
    expect(page.locator("table tbody tr").first).to_contain_text("收购")
    screenshot(page, "coop-household")

    page.get_by_role("button", name="打开可打印的对账单").click()
    page.wait_for_url(re.compile(rf".*/coop/households/{zhaojue['household_id']}/statement\?.*"))
    expect(page.get_by_role("heading", level=1)).to_have_text("消费帮扶农户收益对账单")
    expect(page.get_by_text("¥43.21").first).to_be_visible()
    assert page.locator("table").evaluate("t => getComputedStyle(t).borderCollapse") == "collapse"  # styled
    screenshot(page, "coop-statement")

    page.goto(site.url + "/coop/payouts")
    screenshot(page, "coop-payouts")
    page.get_by_role("link", name=f"付款批次 {zhaojue['batch_id']}").click()
    line = page.locator("tr", has_text="演示农户ZJ001")
    expect(line).to_contain_text("¥43.21")
    expect(line).not_to_contain_text(ZJ_001_ACCOUNT)
    screenshot(page, "coop-payout")
    page.get_by_label("下载原因").fill("到信用社办理本批次转账")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="下载转账文件（CSV）").click()
    download = download_info.value
    assert download.suggested_filename == f"payout-batch-{zhaojue['batch_id']}.csv"
    content = open(download.path(), encoding="utf-8-sig").read()
    assert ZJ_001_ACCOUNT in content and "43.21" in content

    with site.app.app_context():
        (audit,) = db.session.scalars(select(PayoutDownload).where(PayoutDownload.batch_id == zhaojue["batch_id"]))
        assert (audit.username, audit.reason) == ("coop-zhaojue", "到信用社办理本批次转账")
        assert verify_ledger()["ok"] is True
    assert errors == []


def test_another_coop_finds_no_upload_statement_or_batch_of_zhaojue(site, desktop, zhaojue):
    with site.app.app_context():
        upload_id = db.session.scalar(select(InventoryUpload.id).where(
            InventoryUpload.supplier_id == zhaojue["supplier_id"]))
    page = desktop.new_page()
    sign_in(page, site, "coop-leibo")
    page.wait_for_url(site.url + "/coop")
    for path in (f"/coop/uploads/{upload_id}", f"/coop/households/{zhaojue['household_id']}/statement",
                 f"/coop/payouts/{zhaojue['batch_id']}"):
        response = page.goto(site.url + path)
        assert response.status == 404, path
        expect(page.get_by_role("alert")).to_have_text("页面不存在")


def test_every_portal_page_fits_a_phone(site, phone, zhaojue):
    with site.app.app_context():
        failed, _ = uploads.submit_upload(actor=None, supplier_id=zhaojue["supplier_id"], filename="有错的文件.csv",
                                          data=gbk_csv(FAULTY[1:])["buffer"], max_bytes=10_000)
        queued, _ = uploads.submit_upload(actor=None, supplier_id=zhaojue["supplier_id"], filename="排队的文件.csv",
                                          data=gbk_csv(FAULTY[:1])["buffer"], max_bytes=10_000, queue_import=False)
        commit()  # the first is imported (and fails) eagerly after the commit; the second waits
        done = db.session.scalar(select(InventoryUpload.id).where(
            InventoryUpload.supplier_id == zhaojue["supplier_id"], InventoryUpload.status == "succeeded"))
        pages = {"coop-home": "/coop", "coop-upload-errors": f"/coop/uploads/{failed.id}",
                 "coop-upload-progress": f"/coop/uploads/{queued.id}", "coop-upload-done": f"/coop/uploads/{done}",
                 "coop-lots": "/coop/lots", "coop-households": "/coop/households",
                 "coop-household": f"/coop/households/{zhaojue['household_id']}",
                 "coop-statement": f"/coop/households/{zhaojue['household_id']}/statement",
                 "coop-payouts": "/coop/payouts", "coop-payout": f"/coop/payouts/{zhaojue['batch_id']}"}
    page = phone.new_page()
    errors = console_errors(page)
    sign_in(page, site, "coop-zhaojue")
    page.wait_for_url(site.url + "/coop")
    for name, path in pages.items():
        assert page.goto(site.url + path).status == 200, path
        screenshot(page, name)
        if name != "coop-statement":  # the ledger's printed page is an A4 sheet; the portal's pages fit the phone
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
        for caption in page.locator("caption").all():  # a table's title spans its table, never 1–2 characters
            assert caption.bounding_box()["width"] >= 0.8 * page.locator("main").bounding_box()["width"] - 40, path
    assert errors == []


BROKEN_NAMES = """selector => [...document.querySelectorAll(selector)].filter(node => {
  const range = document.createRange();
  range.selectNodeContents(node);
  return new Set([...range.getClientRects()].map(rect => Math.round(rect.bottom))).size > 1;
}).map(node => node.textContent.trim())"""


def test_a_column_named_beside_a_long_problem_stays_on_one_line_on_a_pc(site, desktop):
    """The column of a row error ("农户编号") keeps its name whole beside a long problem (a lot code quoted at
    length); the problem's text took the row's width and broke the name into "农户编" above "号"."""
    page = desktop.new_page()
    sign_in(page, site, "coop-zhaojue")
    page.wait_for_url(site.url + "/coop")
    page.get_by_label("库存文件（.xlsx 或 .csv）").set_input_files(gbk_csv([
        f"ZJ-KQM-1KG,{'A' * 300},2026年11月20日,XC-WH,DEMO-ZJ-001,8", FAULTY[1]]))
    page.get_by_role("button", name="上传并导入").click()
    page.wait_for_url(re.compile(r".*/coop/uploads/\d+$"))
    expect(page.locator("table.upload-errors tbody tr", has_text="农户编号")).to_have_count(1)
    screenshot(page, "coop-upload-long-error")
    assert page.evaluate(BROKEN_NAMES, "table.upload-errors tbody td:nth-child(2)") == []
