"""The co-op portal through the test client: scope (another co-op's things are 404), the upload's polling
fragment, giant files, the masked households, the printable statement and the audited bank file."""
from __future__ import annotations

import base64
import hashlib
import io
import re
from datetime import timedelta

import pytest
from flask import g
from openpyxl import load_workbook
from sqlalchemy import func, select

from catalog import uploads
from catalog.models import InventoryUpload
from catalog.tasks import run_import
from orders.ledger import accounts
from orders.ledger.payouts.models import PayoutDownload, PayoutLine
from orders.ledger.verify import verify_ledger
from shop.db import db
from suppliers.models import RevealAudit
from tests.catalog.factories import LocationFactory, ProductFactory, linked_households, make_lot
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.orders.ledger.payout_factories import built_batch, days_ago, earn, payee_household, today
from tests.suppliers.factories import SupplierFactory, make_bank_account

CSRF_FIELD = re.compile(rb'name="csrf_token" value="([^"]+)"')
HEADER = "产品编码,批次号,采收日期,存放地点,农户编号,交售数量"


def csrf(client, path: str) -> str:
    """The CSRF token of the form on `path` for this client's session (flask-wtf's copy in `g` dropped first,
    as the test holds one app context across requests)."""
    g.pop("csrf_token", None)
    return CSRF_FIELD.search(client.get(path).data).group(1).decode()


def signed_in_coop(app, supplier):
    """A test client signed in through the sign-in page as a new user of `supplier`."""
    user = UserFactory(role="coop", supplier_id=supplier.id)
    db.session.commit()
    client = app.test_client()
    response = client.post("/login", data={"username": user.username, "password": DEFAULT_PASSWORD,
                                           "csrf_token": csrf(client, "/login")})
    assert response.location == "/coop"
    return client


def post_file(client, body: bytes, name: str = "inventory.csv"):
    """Send a file through the portal's upload form."""
    return client.post("/coop/uploads", data={"file": (io.BytesIO(body), name), "csrf_token": csrf(client, "/coop")})


def text(response) -> str:
    """The response body as text."""
    return response.get_data(as_text=True)


@pytest.fixture
def coops(app):
    """Two co-ops, each with a signed-in client."""
    ours, theirs = SupplierFactory(), SupplierFactory(county_code="513437")
    db.session.commit()
    return {"ours": ours, "theirs": theirs, "client": signed_in_coop(app, ours),
            "their_client": signed_in_coop(app, theirs)}


def pending_upload(supplier, body: str) -> InventoryUpload:
    """An upload stored and not yet imported (its task not sent), committed."""
    upload, _ = uploads.submit_upload(actor=None, supplier_id=supplier.id, filename="inventory.csv",
                                      data=body.encode("gbk"), max_bytes=10_000, queue_import=False)
    db.session.commit()
    return upload


def error_rows(html: str) -> list[tuple[str, str, str]]:
    """The upload page's error table as (Excel row, column, problem) cells."""
    return re.findall(r'<tr><td class="num" data-label="Excel 行号">([^<]+)</td><td data-label="列">([^<]*)</td>'
                      r'<td data-label="问题">([^<]*)</td></tr>', html)


def paid_household(supplier, fen: int):
    """A household of `supplier` with a bank account and `fen` earned two days ago, committed."""
    household = payee_household(supplier)
    earn(accounts.household(household.id, supplier.id), fen, on=days_ago(2))
    return household


def coop_routes_with_an_id(app) -> set[str]:
    """The portal's routes that name an object in their path (its static files aside)."""
    return {rule.rule for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith("coop.") and rule.arguments and rule.endpoint != "coop.static"}


def test_a_file_whose_name_shows_nothing_is_listed_by_a_name_that_can_be_clicked(app, coops):
    """A name of only invisible characters (a zero-width space, a byte-order mark) would be an empty link in the
    uploads list: it is listed as "upload", as a name of only control characters is."""
    for name in ("\u200b", "\ufeff\u200b", " \u2060 "):
        response = post_file(coops["client"], f"{HEADER}\r\n{name}".encode(), name=name)
        assert response.status_code == 303, name
        upload_id = int(response.location.rsplit("/", 1)[1])
        assert db.session.get(InventoryUpload, upload_id).filename == "upload", name
        assert f'<a href="/coop/uploads/{upload_id}">upload</a>' in text(coops["client"].get("/coop")), name


def test_another_coops_upload_household_statement_and_batch_are_404(app, coops):
    theirs = coops["theirs"]
    upload = pending_upload(theirs, f"{HEADER}\r\nX,Y,2026-09-01,XC-WH,H1,1\r\n")
    household = paid_household(theirs, 500)
    batch = built_batch(party="household", supplier_id=theirs.id, until=today())
    client = coops["client"]
    token = csrf(client, "/coop")
    paths = [f"/coop/uploads/{upload.id}", f"/coop/uploads/{upload.id}/status", f"/coop/households/{household.id}",
             f"/coop/households/{household.id}/statement", f"/coop/payouts/{batch.id}"]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 404, path
        assert "页面不存在" in text(response)
    response = client.post(f"/coop/payouts/{batch.id}/bank-file", data={"reason": "转账", "csrf_token": token})
    assert response.status_code == 404
    assert db.session.scalar(select(func.count(PayoutDownload.id))) == 0
    checked = {re.sub(r"/\d+", "/<id>", path) for path in [*paths, f"/coop/payouts/{batch.id}/bank-file"]}
    assert checked == {re.sub(r"<[^>]+>", "<id>", rule) for rule in coop_routes_with_an_id(app)}  # none left out
    assert [coops["their_client"].get(path).status_code for path in paths] == [200] * len(paths)
    assert f"付款批次 {batch.id}" not in text(client.get("/coop/payouts"))
    assert verify_ledger()["ok"] is True


def test_a_queued_uploads_fragment_polls_every_second_until_its_import_ends(coops):
    supplier = coops["ours"]
    ProductFactory(supplier=supplier, sku="ZJ-T-1", unit="bag")
    LocationFactory(code="XC-WH")
    (household,) = linked_households(supplier, 1)
    upload = pending_upload(supplier, f"{HEADER}\r\nZJ-T-1,LOT-1,2026-09-03,XC-WH,{household.code},5\r\n")
    client = coops["client"]

    page = text(client.get(f"/coop/uploads/{upload.id}"))
    fragment = text(client.get(f"/coop/uploads/{upload.id}/status"))

    for html in (page, fragment):
        assert f'hx-get="/coop/uploads/{upload.id}/status" hx-trigger="every 1s" hx-swap="outerHTML"' in html
        assert "排队中" in html and "<progress" in html
    run_import(upload.id)
    fragment = text(client.get(f"/coop/uploads/{upload.id}/status"))
    assert "hx-trigger" not in fragment  # the finished fragment replaces the polling one, so polling stops
    assert "导入完成：1 行，新建 1 个批次。" in fragment and 'href="/coop/lots"' in fragment


def test_the_same_file_sent_again_leads_to_its_earlier_upload(coops):
    supplier = coops["ours"]
    ProductFactory(supplier=supplier, sku="ZJ-T-2", unit="bag")
    LocationFactory(code="XC-WH")
    (household,) = linked_households(supplier, 1)
    body = f"{HEADER}\r\nZJ-T-2,LOT-2,2026-09-03,XC-WH,{household.code},5\r\n".encode("gbk")
    client = coops["client"]
    first, again = post_file(client, body, "a.csv"), post_file(client, body, "b.csv")
    assert first.location.startswith("/coop/uploads/") and again.location == first.location + "?again=1"
    assert "这个文件之前已经上传过" in text(client.get(again.location))
    assert db.session.scalar(select(func.count(InventoryUpload.id))) == 1


def test_a_failed_upload_lists_its_errors_by_excel_row_and_column_with_the_template_link(coops):
    supplier = coops["ours"]
    client = coops["client"]
    body = f"{HEADER}\r\nZJ-NONE,LOT-1,2026-09-03,XC-WH,H-404,5\r\n".encode("gbk")
    response = post_file(client, body, "库存.csv")
    assert response.status_code == 303
    html = text(client.get(response.location))
    assert error_rows(html) == [("2", "产品编码", "产品编码 ZJ-NONE 不是本合作社的产品。"),
                                ("2", "存放地点", "没有编码为 XC-WH 的存放地点。"),
                                ("2", "农户编号", "本合作社没有编号为 H-404 的农户。")]
    assert 'href="/api/v1/inventory-uploads/template.xlsx"' in html
    assert db.session.scalar(select(InventoryUpload.status).where(InventoryUpload.supplier_id == supplier.id)) == \
        "failed"


def test_an_upload_stored_before_errors_had_chinese_shows_its_english_message(coops):
    upload = pending_upload(coops["ours"], f"{HEADER}\r\nX,Y,2026-09-01,XC-WH,H1,1\r\n")
    upload.status = "failed"
    upload.errors = [{"row": 2, "column": "农户编号", "message": "Unknown household H1 for this co-operative."},
                     {"row": None, "column": None,
                      "message": "3 more errors are not shown; fix these and upload again."}]
    db.session.commit()
    html = text(coops["client"].get(f"/coop/uploads/{upload.id}"))
    assert error_rows(html) == [("2", "农户编号", "Unknown household H1 for this co-operative."),
                                ("整个文件", "", "3 more errors are not shown; fix these and upload again.")]


def test_a_failed_upload_with_more_problems_than_listed_says_how_many_it_has(coops):
    """The errors kept stop at 200 and a last line counts the rest: the page's total counts those too, not that
    line."""
    supplier = coops["ours"]
    ProductFactory(supplier=supplier, sku="ZJ-T-3", unit="bag")
    LocationFactory(code="XC-WH")
    (household,) = linked_households(supplier, 1)
    rows = "".join(f"ZJ-T-3,LOT-{n},昨天,XC-WH,{household.code},5\r\n" for n in range(250))  # one problem a row
    upload = pending_upload(supplier, f"{HEADER}\r\n{rows}")
    run_import(upload.id)
    html = text(coops["client"].get(f"/coop/uploads/{upload.id}"))
    assert len(error_rows(html)) == 201 and "另有 50 处问题未列出" in html
    assert "文件有 250 处问题，整个文件都没有导入。" in html
    upload.errors = [{"row": 2, "column": "农户编号", "message": "Unknown household H1 for this co-operative."},
                     {"row": None, "column": None,
                      "message": "3 more errors are not shown; fix these and upload again."}]  # stored before codes
    db.session.commit()
    assert "文件有 4 处问题，" in text(coops["client"].get(f"/coop/uploads/{upload.id}"))


def test_an_upload_without_a_file_or_an_empty_one_says_so(coops):
    client = coops["client"]
    response = client.post("/coop/uploads", data={"csrf_token": csrf(client, "/coop")})
    assert response.status_code == 422 and "请选择要上传的库存文件" in text(response)
    response = post_file(client, b"", "empty.csv")
    assert response.status_code == 422 and "文件是空的" in text(response)
    assert db.session.scalar(select(func.count(InventoryUpload.id))) == 0


def test_a_giant_file_gets_a_413_page_with_a_clear_message(app, coops):
    app.config.update(INVENTORY_UPLOAD_MAX_BYTES=2 * 1024 * 1024, MAX_CONTENT_LENGTH=3 * 1024 * 1024)
    client = coops["client"]
    over_the_upload_limit = HEADER.encode() + b"\r\n" + b"x" * (2 * 1024 * 1024)
    response = post_file(client, over_the_upload_limit, "big.csv")
    assert response.status_code == 413 and "文件太大：库存文件最大 2 MB" in text(response)
    over_the_request_limit = b"x" * (4 * 1024 * 1024)
    response = post_file(client, over_the_request_limit, "huge.csv")
    assert response.status_code == 413 and "文件太大：库存文件最大 2 MB，请拆分后分批上传。" in text(response)
    assert response.mimetype == "text/html" and 'action="/coop/uploads"' in text(response)
    assert db.session.scalar(select(func.count(InventoryUpload.id))) == 0


def test_a_deactivated_coop_is_told_so_and_offered_no_upload_form(coops):
    supplier, client = coops["ours"], coops["client"]
    supplier.active = False
    db.session.commit()

    home = client.get("/coop")
    refused = post_file(client, f"{HEADER}\r\nX,Y,2026-09-01,XC-WH,H1,1\r\n".encode())

    assert home.status_code == 200 and "本合作社已被平台停用" in text(home)
    assert 'action="/coop/uploads"' not in text(home) and 'type="file"' not in text(home)
    assert refused.status_code == 409 and "本合作社已被平台停用" in text(refused)
    assert "操作与当前状态冲突" not in text(refused) and 'type="file"' not in text(refused)
    assert db.session.scalar(select(func.count(InventoryUpload.id))) == 0


def test_households_show_masked_id_numbers_and_accounts_and_their_benefit_links(coops):
    supplier = coops["ours"]
    (household,) = linked_households(supplier, 1)
    household.bank_account = "6217000123456789012"
    db.session.commit()
    client = coops["client"]

    listing = text(client.get("/coop/households"))
    detail = text(client.get(f"/coop/households/{household.id}"))

    for html in (listing, detail):
        assert household.code in html and household.id_number not in html and household.id_number[-4:] in html
        assert "6217000123456789012" not in html and "9012" in html
    assert "收购" in detail and "2026-01-01" in detail
    assert 'data-label="股份">—</td>' in detail  # a purchase link has no shares: a dash, not an empty cell
    assert household.code in text(client.get(f"/coop/households?code={household.code.lower()}"))
    assert household.code not in text(client.get("/coop/households?code=NOBODY"))


def test_the_households_page_finds_a_household_by_part_of_the_heads_name(coops):
    """The search form has a box for the head's name; part of it (its middle dot however typed) finds the household,
    the box keeps what was typed, and a name too long is said beside the box."""
    first, second = linked_households(coops["ours"], 2)
    first.head_name, second.head_name = "吉克·阿依", "阿苏·拉格"
    db.session.commit()
    client = coops["client"]
    page = text(client.get("/coop/households"))
    assert '<label for="head_name">户主</label>' in page
    found = text(client.get("/coop/households?head_name=克•阿"))
    assert first.code in found and second.code not in found and 'value="克·阿"' in found
    refused = client.get("/coop/households?head_name=" + "吉" * 65)
    assert refused.status_code == 422 and 'id="head_name-error"' in text(refused)
    assert "户主姓名不能超过 64 个字。" in text(refused)


def test_a_search_or_paging_box_holding_only_spaces_or_invisible_characters_is_not_filled_in(coops):
    """A village box with a space typed (or a zero-width space pasted) is empty, as the API reads it: the search lists
    every household, not "村名不能超过 64 个字"; so are a blank page size and statement dates."""
    (household,) = linked_households(coops["ours"], 1)
    db.session.commit()
    client = coops["client"]
    for blank in ("  ", "\u3000", "\u200b", " \ufeff "):
        for path in (f"/coop/households?village={blank}&code={blank}", f"/coop/lots?limit={blank}",
                     f"/coop?limit={blank}&cursor={blank}", f"/coop/payouts?limit={blank}"):
            response = client.get(path)
            assert response.status_code == 200, (path, blank)
            assert 'class="error"' not in text(response), (path, blank)
        assert household.code in text(client.get(f"/coop/households?village={blank}"))
        statement = client.get(f"/coop/households/{household.id}/statement?from={blank}&to={blank}")
        assert statement.status_code == 200 and "消费帮扶农户收益对账单" in text(statement), blank


def test_the_statement_is_the_ledgers_printable_page_its_style_allowed_by_hash_only(coops):
    supplier = coops["ours"]
    household = paid_household(supplier, 1234)
    client = coops["client"]

    response = client.get(f"/coop/households/{household.id}/statement")

    html = text(response)
    assert response.status_code == 200 and "消费帮扶农户收益对账单" in html
    assert "¥12.34" in html and household.id_number not in html and household.id_number[-4:] in html
    back = re.search(r'<nav><a href="([^"]+)">← 返回</a></nav>', html).group(1)  # the way back, never printed
    assert back == f"/coop/households/{household.id}" and client.get(back).status_code == 200
    policy = response.headers["Content-Security-Policy"]
    style = re.search(r"<style>(.*?)</style>", html, re.DOTALL).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'self' 'sha256-{digest}';" in policy
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert verify_ledger()["ok"] is True


def test_a_built_batch_is_on_the_statement_as_moved_to_payable_with_its_line_not_as_paid(coops):
    """Building a batch moves the balance to payable; nothing is paid until the bank transfers it."""
    supplier = coops["ours"]
    household = paid_household(supplier, 416)
    batch = built_batch(party="household", supplier_id=supplier.id, until=today())
    (line,) = batch.lines
    assert line.status == "pending"

    html = text(coops["client"].get(f"/coop/households/{household.id}/statement"))

    categories = re.findall(r"<td>([^<]*)</td>\s*<td class=\"num\">-¥4\.16</td>", html)
    assert categories == [f"转入待付（批次 PB{batch.id}-L{line.id}）"], categories
    assert "<td>支付" not in html


def test_an_empty_statement_period_shows_the_household_page_again_with_the_message_beside_the_end_date(coops):
    household = paid_household(coops["ours"], 1234)

    response = coops["client"].get(f"/coop/households/{household.id}/statement?from=2026-03-05&to=2026-03-01")

    html = text(response)
    assert response.status_code == 422 and household.code in html and "打开可打印的对账单" in html
    assert re.search(r'<input id="to" name="to" type="date" value="2026-03-01" aria-invalid="true" '
                     r'aria-describedby="to-error">\s*<p class="error" id="to-error">'
                     r"结束日期必须是晚于开始日期的有效日期。</p>", html)
    assert 'value="2026-03-05"' in html and "from-error" not in html
    assert "：to" not in html and "填写的内容不正确" not in html


def test_a_statement_period_longer_than_a_statement_shows_the_household_page_with_the_message_beside_the_end_date(
        coops):
    household = paid_household(coops["ours"], 1234)

    for query in ("from=2026-01-01&to=2027-01-03", "from=2020-01-01"):
        response = coops["client"].get(f"/coop/households/{household.id}/statement?{query}")

        html = text(response)
        assert response.status_code == 422 and household.code in html and "打开可打印的对账单" in html, query
        assert re.search(r'<p class="error" id="to-error">一张对账单最长 366 天[^<]*</p>', html), query
        assert 'value="2026-01-01"' in html or 'value="2020-01-01"' in html
        assert "from-error" not in html and "填写的内容有误" not in html and "At most" not in html


def test_the_household_pages_hint_on_empty_dates_says_what_the_statement_then_covers(coops):
    household = paid_household(coops["ours"], 1234)
    client = coops["client"]

    hint = text(client.get(f"/coop/households/{household.id}"))
    only_to = text(client.get(f"/coop/households/{household.id}/statement?to=2026-03-11"))
    neither = text(client.get(f"/coop/households/{household.id}/statement"))
    only_from = text(client.get(f"/coop/households/{household.id}/statement?from={days_ago(5).isoformat()}"))

    assert "从头开始" not in hint
    assert "两个日期都留空：本月" in hint and "2026年03月01日 至 2026年03月11日（不含）" in only_to
    assert "只填结束日期：从结束日期前一天所在月的 1 日起" in hint
    assert f"{today().replace(day=1):%Y年%m月%d日} 至" in neither
    assert "只填开始日期：截至今天（含）" in hint
    assert f"{days_ago(5):%Y年%m月%d日} 至 {today() + timedelta(days=1):%Y年%m月%d日}（不含）" in only_from
    assert "最长 366 天" in hint


def test_the_bank_file_download_needs_a_reason_and_is_audited(coops):
    supplier = coops["ours"]
    paid = paid_household(supplier, 2500)
    batch = built_batch(party="household", supplier_id=supplier.id, until=today())
    client = coops["client"]
    page = text(client.get(f"/coop/payouts/{batch.id}"))
    assert "¥25.00" in page and paid.bank_account not in page and paid.bank_account[-4:] in page

    refused = client.post(f"/coop/payouts/{batch.id}/bank-file",
                          data={"reason": " ", "csrf_token": csrf(client, f"/coop/payouts/{batch.id}")})
    forged = client.post(f"/coop/payouts/{batch.id}/bank-file", data={"reason": "转账"})
    assert (refused.status_code, forged.status_code) == (422, 400)
    assert db.session.scalar(select(func.count(PayoutDownload.id))) == 0
    refused_page = text(refused)  # the batch's page again, the message beside the reason
    assert "¥25.00" in refused_page and 'aria-describedby="reason-error"' in refused_page
    assert '<p class="error" id="reason-error">请填写下载原因（不超过 200 个字）。</p>' in refused_page
    assert "reason" not in refused_page.split('id="reason-error">')[1].split("</p>")[0]
    numbered = client.post(f"/coop/payouts/{batch.id}/bank-file", data={
        "reason": f"核对 {paid.id_number}", "csrf_token": csrf(client, f"/coop/payouts/{batch.id}")})
    assert numbered.status_code == 422 and '<p class="error" id="reason-error">请不要在这里填写身份证号或银行卡号' in \
        text(numbered)
    phoned = client.post(f"/coop/payouts/{batch.id}/bank-file", data={
        "reason": "户主来电 139 6666 7777", "csrf_token": csrf(client, f"/coop/payouts/{batch.id}")})
    assert phoned.status_code == 422 and "原因里也不要写手机号" in text(phoned)
    assert db.session.scalar(select(func.count(PayoutDownload.id))) == 0

    response = client.post(f"/coop/payouts/{batch.id}/bank-file",
                           data={"reason": "到信用社办理转账", "csrf_token": csrf(client, f"/coop/payouts/{batch.id}")})

    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="payout-batch-{batch.id}.csv"'
    assert paid.bank_account in response.get_data().decode("utf-8-sig") and "25.00" in text(response)
    download = db.session.scalar(select(PayoutDownload))
    assert (download.batch_id, download.lines, download.total_fen) == (batch.id, 1, 2500)
    assert download.reason == "到信用社办理转账"
    assert download.user.supplier_id == supplier.id
    reveal = db.session.scalar(select(RevealAudit))
    assert (reveal.household_id, reveal.fields) == (paid.id, "bank_account")
    assert "下载转账文件（Excel）" in text(client.get(f"/coop/payouts/{batch.id}"))
    excel = client.post(f"/coop/payouts/{batch.id}/bank-file", data={
        "reason": "到信用社办理转账", "format": "xlsx", "csrf_token": csrf(client, f"/coop/payouts/{batch.id}")})
    assert excel.status_code == 200 and excel.mimetype.endswith("spreadsheetml.sheet")
    account = load_workbook(io.BytesIO(excel.get_data())).active.cell(row=2, column=3)
    assert (account.value, account.data_type) == (paid.bank_account, "s")  # every digit, as text
    assert db.session.scalar(select(func.count(PayoutDownload.id))) == 2
    assert verify_ledger()["ok"] is True


def test_the_page_flags_an_account_changed_after_the_build_and_gives_no_file_paying_the_old_one(coops):
    supplier, client = coops["ours"], coops["client"]
    moved = paid_household(supplier, 800)
    batch = built_batch(party="household", supplier_id=supplier.id, until=today())
    assert "账号已变更" not in text(client.get(f"/coop/payouts/{batch.id}"))
    moved.bank_account = make_bank_account()                     # the co-op registered the household's new card
    db.session.commit()

    page = text(client.get(f"/coop/payouts/{batch.id}"))
    refused = client.post(f"/coop/payouts/{batch.id}/bank-file",
                          data={"reason": "到信用社办理转账", "csrf_token": csrf(client, f"/coop/payouts/{batch.id}")})

    assert "账号已变更" in page
    assert refused.status_code == 409 and refused.mimetype == "text/html"
    assert "暂不能下载" in text(refused) and "账号已变更" in text(refused)
    assert re.search(r'<input id="reason"[^>]*value="到信用社办理转账"', refused.get_data(as_text=True))  # kept
    assert db.session.scalar(select(func.count(PayoutDownload.id))) == 0


def test_the_lots_page_shows_the_newest_lots_first(coops):
    supplier, client = coops["ours"], coops["client"]
    product, location = ProductFactory(supplier=supplier), LocationFactory()
    codes = [make_lot(product, location, lot_code=f"LOT-{n:03d}").lot_code for n in range(60)]
    db.session.commit()

    html = text(client.get("/coop/lots"))

    shown = [code for code in codes if code in html]
    assert len(shown) == 50 and codes[-1] in html and codes[0] not in html and "下一页" in html
    assert html.index(codes[-1]) < html.index(codes[-2])


def test_bad_paging_input_is_a_clear_page_not_a_500(coops):
    client = coops["client"]
    for path in ("/coop/lots?limit=abc", "/coop/payouts?limit=1000", "/coop?cursor=forged",
                 "/coop/households?code=" + "x" * 300):
        response = client.get(path)
        assert response.status_code in (400, 422), path
        assert response.mimetype == "text/html"
    for path in ("/coop/lots?limit=abc", "/coop/payouts?limit=1000"):
        html = text(client.get(path))
        assert "每页条数必须是 1 到 100 之间的整数。" in html and "limit" not in html.split('role="alert"')[1]


def test_a_wrong_household_search_shows_the_form_again_with_the_message_beside_the_field(coops):
    response = coops["client"].get("/coop/households?code=" + "x" * 300 + "&village=龙沟村")

    html = text(response)
    assert response.status_code == 422 and 'role="search"' in html
    assert '<p class="error" id="code-error">农户编号格式不正确，例如 DEMO-ZJ-001。</p>' in html
    assert 'value="龙沟村"' in html and "没有找到农户" not in html and "village-error" not in html


@pytest.mark.parametrize("field", ["village", "head_name"])
def test_a_household_search_holding_a_control_character_says_so_not_that_it_is_too_long(coops, field):
    """A village or head's name with a control character (pasted from a spreadsheet) or a bidirectional override is
    told what is wrong with it, as the API's field says; one too long is still told its bound."""
    for value in ("龙沟\x01村", "龙沟\u202e村"):
        response = coops["client"].get("/coop/households", query_string={field: value})
        html = text(response)
        assert response.status_code == 422 and "不能超过 64 个字" not in html, value
        assert re.search(f'id="{field}-error">[^<]*控制字符', html), value
    too_long = text(coops["client"].get("/coop/households", query_string={field: "村" * 65}))
    assert f'id="{field}-error">' in too_long and "不能超过 64 个字。" in too_long


def test_a_large_batchs_page_shows_its_lines_a_page_at_a_time_with_the_whole_batchs_totals(coops):
    supplier, client = coops["ours"], coops["client"]
    households = [paid_household(supplier, 100) for _ in range(60)]
    batch = built_batch(party="household", supplier_id=supplier.id, until=today())
    first = client.get(f"/coop/payouts/{batch.id}")
    html = text(first)
    assert first.status_code == 200 and "¥60.00" in html                   # the pending total of all 60 lines
    shown = [h for h in households if h.bank_account[-4:] in html]
    assert html.count("待转账") >= 50 and "下一页" in html and len(shown) >= 50
    following = re.search(r'href="([^"]*cursor=[^"]*)">下一页', first.get_data(as_text=True)).group(1)
    rest = text(client.get(following.replace("&amp;", "&")))
    assert "¥60.00" in rest and "回到第一页" in rest and "下一页" not in rest
    assert sum(h.bank_account[-4:] in rest for h in households) >= 10
    forged = client.get(f"/coop/payouts/{batch.id}?cursor=forged")
    assert forged.status_code == 400 and "翻页链接无效，请回到第一页。" in text(forged)


def test_a_large_batchs_page_shown_again_after_a_refused_download_pages_on_to_its_lines_not_to_the_form(coops):
    supplier, client = coops["ours"], coops["client"]
    households = [paid_household(supplier, 100) for _ in range(60)]
    batch = built_batch(party="household", supplier_id=supplier.id, until=today())
    refused = client.post(f"/coop/payouts/{batch.id}/bank-file",
                          data={"reason": " ", "csrf_token": csrf(client, f"/coop/payouts/{batch.id}")})
    assert refused.status_code == 422 and "下一页" in text(refused)
    following = re.search(r'href="([^"]*cursor=[^"]*)">下一页', text(refused)).group(1).replace("&amp;", "&")
    assert following.startswith(f"/coop/payouts/{batch.id}?"), following  # the batch's page, not the download form
    rest = client.get(following)
    assert rest.status_code == 200 and "回到第一页" in text(rest) and "下一页" not in text(rest)
    assert sum(h.bank_account[-4:] in text(rest) for h in households) >= 10


def test_the_uploads_list_shown_again_after_a_refused_upload_pages_on_to_the_portals_home_not_to_the_form(coops):
    supplier, client = coops["ours"], coops["client"]
    uploaded = [pending_upload(supplier, f"{HEADER}\r\nZJ-T-1,LOT-{n},2026-10-01,XC-WH,H-1,5\r\n").id
                for n in range(25)]  # more than the home page lists at once
    refused = client.post("/coop/uploads", data={"csrf_token": csrf(client, "/coop")})  # no file chosen
    assert refused.status_code == 422 and "下一页" in text(refused)
    following = re.search(r'href="([^"]*cursor=[^"]*)">下一页', text(refused)).group(1).replace("&amp;", "&")
    assert following.startswith("/coop?"), following  # the portal's home, not the upload form
    rest = client.get(following)
    assert rest.status_code == 200 and "回到第一页" in text(rest)
    assert f'href="/coop/uploads/{uploaded[0]}"' in text(rest)


def test_a_household_searchs_next_page_link_keeps_the_search_and_pages_on(coops):
    supplier, client = coops["ours"], coops["client"]
    found = linked_households(supplier, 55, village="龙沟村")
    linked_households(supplier, 5, village="别的村")
    db.session.commit()
    first = client.get("/coop/households?code=&village=龙沟村")
    assert first.status_code == 200 and "下一页" in text(first)
    following = re.search(r'href="([^"]*cursor=[^"]*)">下一页', text(first)).group(1).replace("&amp;", "&")
    rest = client.get(following)
    assert rest.status_code == 200 and "下一页" not in text(rest)
    assert sorted(h.code for h in found if h.code in text(first) + text(rest)) == sorted(h.code for h in found)
    assert "别的村" not in text(rest)
    assert client.get(following.replace("village=", "village=别")).status_code == 400


@pytest.mark.parametrize("query", ["village=+龙沟村+", "village=龙沟村&ref=menu", "village=龙沟村&active=true"])
def test_a_households_next_page_link_works_whatever_else_the_address_carries(coops, query):
    supplier, client = coops["ours"], coops["client"]
    linked_households(supplier, 55, village="龙沟村")
    db.session.commit()
    first = client.get(f"/coop/households?{query}")
    following = re.search(r'href="([^"]*cursor=[^"]*)">下一页', text(first)).group(1).replace("&amp;", "&")

    rest = client.get(following)

    assert rest.status_code == 200 and "回到第一页" in text(rest) and "龙沟村" in text(rest)


def test_a_settlement_reason_written_before_reasons_refused_phone_numbers_shows_them_masked(coops):
    paid_household(coops["ours"], 2500)
    batch = built_batch(party="household", supplier_id=coops["ours"].id, until=today())
    line = db.session.scalars(select(PayoutLine).where(PayoutLine.batch_id == batch.id)).one()
    line.reason = "账户已注销，户主电话 139 1234 5678"
    db.session.commit()
    page = text(coops["client"].get(f"/coop/payouts/{batch.id}"))
    assert "账户已注销，户主电话 ***" in page and "5678" not in page


def test_the_page_flags_a_line_whose_account_another_household_holds(coops):
    supplier, client = coops["ours"], coops["client"]
    first, second = paid_household(supplier, 800), paid_household(supplier, 900)
    batch = built_batch(party="household", supplier_id=supplier.id, until=today())
    assert "账号与其他农户相同" not in text(client.get(f"/coop/payouts/{batch.id}"))
    second.bank_account = first.bank_account                     # stored before such registrations were refused
    db.session.commit()

    assert text(client.get(f"/coop/payouts/{batch.id}")).count("账号与其他农户相同，请核实") == 2
