"""Co-op portal pages: inventory uploads and their progress, lots, households with their statements, and the
payout batches of the co-op's households with their (audited) bank files. Every page shows the signed-in
co-op's own supplier only: the services scope by the user's `supplier_id`, so another co-op's object is a 404."""
from __future__ import annotations

from flask import Response, current_app, redirect, render_template, request, url_for
from marshmallow import Schema
from marshmallow import ValidationError as SchemaError
from werkzeug.exceptions import RequestEntityTooLarge

from catalog import inventory, uploads
from orders.ledger import statements
from orders.ledger.errors import LedgerCode
from orders.ledger.payouts import bank_file as bank_files
from orders.ledger.payouts import service as payouts
from shop.db import commit
from shop.errors import AppError, ShopCode, ValidationError
from shop.fields import Choice, Reason, is_blank
from shop.pagination import PageQuery, PeriodQuery, scope_of
from suppliers import service as suppliers
from suppliers.errors import SupplierCode
from suppliers.schemas import HouseholdOut, HouseholdQuery
from web.filters import local_time, yuan
from web.pages import (
    CONTROLS_REFUSED,
    ID_OR_CARD_REFUSED,
    PageError,
    error_page_for,
    page_blueprint,
    refused_for_controls,
    refused_for_numbers,
    signed_in,
    web_user,
)

bp = page_blueprint("coop", __name__, url_prefix="/coop")
bp.static_folder, bp.static_url_path = "static", "/static"

PAGE_SIZE = 50
LINKS_SHOWN = 100  # a household's benefit links shown on its page (one co-op gives a household a handful)
HOUSEHOLD_FIELDS = ("id", "code", "head_name", "id_number", "village", "members", "bank_account", "active")
FIELD_PROBLEMS = {  # every form and query field of the portal → what it must be, in the portal's words
    "code": "农户编号格式不正确，例如 DEMO-ZJ-001。",
    "head_name": "户主姓名不能超过 64 个字。",
    "village": "村名不能超过 64 个字。",
    "active": "状态只能是“正常”或“已停用”。",
    "from": "开始日期不是有效的日期。",
    "to": "结束日期必须是晚于开始日期的有效日期。",
    "reason": "请填写下载原因（不超过 200 个字）。",
    "format": "转账文件只能下载为 Excel 或 CSV。",
    "limit": "每页条数必须是 1 到 100 之间的整数。",
    "cursor": "翻页链接无效，请回到第一页。",
}
ACCOUNT_CHANGED = ("有农户在本批次生成后更换了银行账号（见下表“账号已变更”），转账文件会付到旧账号，暂不能下载。"
                   "请联系平台管理员将这些行结算为“转账失败”（收益退回农户账上，下一批次付到新账号），再下载。")
PERIOD_TOO_LONG = (f"一张对账单最长 {statements.MAX_PERIOD_DAYS} 天：请填写不晚于开始日期后 "
                   f"{statements.MAX_PERIOD_DAYS} 天的结束日期。")
SUPPLIER_INACTIVE = "本合作社已被平台停用，不能上传库存文件。如有疑问，请联系平台管理员。"
UPLOAD_PROBLEMS = {ShopCode.PAYLOAD_TOO_LARGE: "文件太大：库存文件最大 {mb} MB，请拆分后分批上传。",
                   ShopCode.VALIDATION_ERROR: "文件是空的，请选择填好的库存文件。",
                   SupplierCode.SUPPLIER_INACTIVE: SUPPLIER_INACTIVE}


class BankFileForm(Schema):
    """Why the bank file (full account numbers) is downloaded, audited; and as CSV or XLSX."""

    reason = Reason(required=True)
    format = Choice(("csv", "xlsx"), load_default="csv")


def _parsed(schema: Schema, values) -> dict:
    """Form or query values loaded by `schema` (unknown ones, such as the CSRF token, ignored, and blank ones not
    given, as the API reads a query: `is_blank`); else a `PageError` saying what each wrong field must be (its
    `details`: field → message, for a form shown again)."""
    known = {field.data_key or name for name, field in schema.fields.items()}
    given = {key: value for key, value in values.items() if not (isinstance(value, str) and is_blank(value))}
    try:
        return schema.load({key: value for key, value in given.items() if key in known})
    except SchemaError as exc:
        numbers, controls = refused_for_numbers(exc.messages), refused_for_controls(exc.messages)
        problems = {key: ID_OR_CARD_REFUSED if key in numbers else CONTROLS_REFUSED if key in controls
                    else FIELD_PROBLEMS.get(key, "填写的内容不正确。") for key in sorted(exc.messages)}
        raise PageError("".join(problems.values()), details=problems) from exc


@bp.context_processor
def _helpers() -> dict:
    """The portal templates' formatting helpers."""
    return {"local_time": local_time, "yuan": yuan, "reference": bank_files.reference,
            "problems_found": uploads.problems_found}


# --- uploads --------------------------------------------------------------------------------------------


@bp.get("")
@signed_in("coop")
def home():
    """The portal's home: the upload form and the co-op's uploads."""
    user = web_user()
    page = uploads.list_uploads(actor=user, supplier_id=user.supplier_id, **_parsed(PageQuery(), request.args))
    return render_template("coop/home.html", supplier=suppliers.get_supplier(user.supplier_id), page=page,
                           supplier_inactive=SUPPLIER_INACTIVE)


@bp.post("/uploads")
@signed_in("coop")
def upload():
    """Store an inventory file for import (the API's upload service) and show its progress."""
    user = web_user()
    file = request.files.get("file")
    if file is None or not file.filename:
        return _upload_refused("请选择要上传的库存文件（CSV 或 XLSX）。", 422)
    limit = current_app.config["INVENTORY_UPLOAD_MAX_BYTES"]
    try:
        upload_row, created = uploads.submit_upload(actor=user, supplier_id=user.supplier_id, filename=file.filename,
                                                    data=file.read(limit + 1), max_bytes=limit)
    except AppError as exc:
        if exc.code not in UPLOAD_PROBLEMS:
            raise
        return _upload_refused(_upload_problem(exc.code), exc.status)
    commit()
    return redirect(url_for(".upload_page", upload_id=upload_row.id, **({} if created else {"again": 1})), 303)


@bp.errorhandler(RequestEntityTooLarge)
def _request_too_large(exc: RequestEntityTooLarge):
    """A request over the server's limit (MAX_CONTENT_LENGTH, refused before any view reads it): on the upload form,
    the advice a file over the upload limit gets; elsewhere the error page."""
    user = web_user()
    if request.endpoint != "coop.upload" or user is None or user.role != "coop":
        return error_page_for(exc, exc.code)
    return _upload_refused(_upload_problem(ShopCode.PAYLOAD_TOO_LARGE), exc.code)


def _upload_problem(code: str) -> str:
    """What the upload form says of a refused file (`UPLOAD_PROBLEMS`), the upload limit filled in."""
    return UPLOAD_PROBLEMS[code].format(mb=current_app.config["INVENTORY_UPLOAD_MAX_BYTES"] // (1024 * 1024))


def _upload_refused(message: str, status: int):
    """The home page again, saying why the file was not taken (its uploads' next page is the home page's)."""
    user = web_user()
    page = uploads.list_uploads(actor=user, supplier_id=user.supplier_id, next_on=scope_of("coop.home"),
                                **_parsed(PageQuery(), {}))
    next_url = url_for(".home", cursor=page["next_cursor"]) if page["next_cursor"] else None
    return render_template("coop/home.html", supplier=suppliers.get_supplier(user.supplier_id), page=page,
                           next_url=next_url, upload_error=message, supplier_inactive=SUPPLIER_INACTIVE), status


@bp.get("/uploads/<int:upload_id>")
@signed_in("coop")
def upload_page(upload_id: int):
    """An upload: its status, progress (polled while it waits or runs) and errors."""
    shown = uploads.get_upload(actor=web_user(), upload_id=upload_id)
    return render_template("coop/upload.html", upload=shown, again="again" in request.args)


@bp.get("/uploads/<int:upload_id>/status")
@signed_in("coop")
def upload_status(upload_id: int):
    """The upload's status fragment that the upload page polls every second until the import ends."""
    return render_template("coop/_upload_status.html", upload=uploads.get_upload(actor=web_user(), upload_id=upload_id))


# --- lots -----------------------------------------------------------------------------------------------


@bp.get("/lots")
@signed_in("coop")
def lots():
    """The co-op's lots with their stock and trace pages."""
    user = web_user()
    page = inventory.list_supplier_lots(actor=user, supplier_id=user.supplier_id,
                                        **_parsed(PageQuery(), {"limit": PAGE_SIZE, **request.args}))
    return render_template("coop/lots.html", page=page)


# --- households and statements --------------------------------------------------------------------------


@bp.get("/households")
@signed_in("coop")
def households():
    """The households the co-op works with, masked as the API shows them; search by code or village."""
    user = web_user()
    try:
        query = _parsed(HouseholdQuery(), {"limit": PAGE_SIZE, **request.args})
    except PageError as exc:  # the search form again, its values kept, the message beside each wrong field
        return render_template("coop/households.html", households=[], next_cursor=None, query=request.args,
                               errors=exc.details), exc.status
    page = suppliers.list_households(supplier_id=user.supplier_id, supplier_scope=user.supplier_id, **query)
    shown = HouseholdOut(only=HOUSEHOLD_FIELDS, many=True).dump(page["items"])
    return render_template("coop/households.html", households=shown, next_cursor=page["next_cursor"], query=query,
                           errors={})


@bp.get("/households/<int:household_id>")
@signed_in("coop")
def household(household_id: int):
    """A household (masked), its benefit links with this co-op, and the statement period form."""
    return _household_page(household_id)


def _household_page(household_id: int, *, period: dict | None = None, errors: dict | None = None):
    """The household's page, its period form showing `period` and the message beside each wrong date."""
    user = web_user()
    shown = HouseholdOut(only=HOUSEHOLD_FIELDS).dump(suppliers.show_household(household_id=household_id, user=user))
    links = suppliers.list_benefit_links(supplier_id=user.supplier_id, supplier_scope=user.supplier_id, kind=None,
                                         household_id=household_id, on=None, limit=LINKS_SHOWN, cursor=None)
    return render_template("coop/household.html", household=shown, links=links["items"], period=period or {},
                           errors=errors or {}, max_period_days=statements.MAX_PERIOD_DAYS), 422 if errors else 200


@bp.get("/households/<int:household_id>/statement")
@signed_in("coop")
def household_statement(household_id: int):
    """The household's printable statement of its account at this co-op (the ledger's page); a wrong period
    shows the household's page again with the message beside the date."""
    try:
        period = _parsed(PeriodQuery(), request.args)
        statement = statements.household_statement(household_id=household_id, user=web_user(), page=True, **period)
    except PageError as exc:
        return _household_page(household_id, period=request.args, errors=exc.details)
    except ValidationError:  # the one refusal of well-formed dates: a period longer than a statement covers
        return _household_page(household_id, period=request.args, errors={"to": PERIOD_TOO_LONG})
    html = render_template("ledger_household_statement.html", s=statement, h=statement["page"],
                           back_url=url_for(".household", household_id=household_id))
    return Response(html, mimetype="text/html")  # its inline stylesheet is allowed by hash (`shop.headers`)


# --- payout batches -------------------------------------------------------------------------------------


@bp.get("/payouts")
@signed_in("coop")
def payout_batches():
    """The payout batches of the co-op's households."""
    page = payouts.list_batches(actor=web_user(), **_parsed(PageQuery(), {"limit": PAGE_SIZE, **request.args}))
    return render_template("coop/payouts.html", page=page)


@bp.get("/payouts/<int:batch_id>")
@signed_in("coop")
def payout_batch(batch_id: int):
    """A payout batch: its lines (masked accounts), totals, and the bank file download form."""
    return _payout_page(batch_id)


def _payout_page(batch_id: int, *, errors: dict | None = None, status: int = 422):
    """The batch's page (its totals, and its lines a page at a time: the next page is the batch's page's, also when
    a refused download form shows it), with the message beside the bank file form and the reason as typed when it was
    refused."""
    batch = payouts.show_batch(batch_id=batch_id, actor=web_user())
    lines = payouts.list_lines(batch_id=batch_id, actor=web_user(),
                               next_on=scope_of("coop.payout_batch", batch_id=batch_id),
                               **_parsed(PageQuery(), {"limit": PAGE_SIZE, "cursor": request.args.get("cursor", "")}))
    cursor = lines["next_cursor"]
    next_url = url_for(".payout_batch", batch_id=batch_id, cursor=cursor) if cursor else None
    return render_template("coop/payout.html", batch=batch, lines=lines, next_url=next_url, errors=errors or {},
                           reason=request.form.get("reason", "")), status if errors else 200


@bp.post("/payouts/<int:batch_id>/bank-file")
@signed_in("coop")
def bank_file(batch_id: int):
    """Download the batch's bank file (full account numbers), audited with the stated reason."""
    try:
        form = _parsed(BankFileForm(), request.form)
    except PageError as exc:
        return _payout_page(batch_id, errors=exc.details)
    try:
        file = payouts.export_bank_file(batch_id=batch_id, actor=web_user(), reason=form["reason"],
                                        output=form["format"])
    except AppError as exc:
        if exc.code != LedgerCode.PAYEE_ACCOUNT_CHANGED:
            raise
        return _payout_page(batch_id, errors={"file": ACCOUNT_CHANGED}, status=exc.status)
    commit()
    return Response(file.content, mimetype=file.mimetype, headers={
        "Content-Disposition": f'attachment; filename="{file.filename}"', "Cache-Control": "private, no-store"})
