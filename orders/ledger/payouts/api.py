"""Payout batch routes: request a batch (built by a task), list and show batches, download the bank file
(audited), settle lines; and the auditor's list of bank-file downloads."""
from __future__ import annotations

from flask import Response
from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from orders.ledger.errors import LedgerCode
from orders.ledger.payouts import bank_file, service
from orders.ledger.payouts.models import BATCH_STATUSES, LINE_STATUSES, PARTIES
from shop.auth.security import current_user, require_role
from shop.blueprint import Blueprint
from shop.db import commit
from shop.fields import Choice, Computed, Date, Id, MaskedText, Reason
from shop.http import ReadAt
from shop.idempotency import idempotent
from shop.pagination import DatedPageQuery, PageQuery, page_schema

blp = Blueprint("payouts", __name__, url_prefix="/api/v1", description="Payout batches",
                not_found={"batch_id": LedgerCode.PAYOUT_BATCH_NOT_FOUND})


def _batch_keys(**_) -> str:
    """A batch request's keys are the admins' (`service.BATCH_KEYS`): one resent by another admin is made once."""
    return service.BATCH_KEYS


class PayoutBatchCreate(Schema):
    """Which party to pay (households: those of one supplier) and the cut-off date."""

    party = Choice(PARTIES, required=True)
    supplier_id = Id(load_default=None)
    until = Date(required=True)

    @validates_schema
    def _supplier_for_households(self, data, **kwargs):
        """A household batch names its supplier; the others name none."""
        if data.get("party") == "household" and data.get("supplier_id") is None:
            raise ValidationError({"supplier_id": ["Required for a household batch."]})
        if data.get("party") in ("supplier", "store") and data.get("supplier_id") is not None:
            raise ValidationError({"supplier_id": ["Only a household batch names a supplier."]})


class PayoutBatchQuery(PageQuery):
    """Batch list filters."""

    party = Choice(PARTIES, load_default=None)
    status = Choice(BATCH_STATUSES, load_default=None)
    supplier_id = Id(load_default=None, strict=False)


class PayoutLineQuery(PageQuery):
    """Line list filters: the lines of one status."""

    status = Choice(LINE_STATUSES, load_default=None)


class PayoutBatchShowQuery(Schema):
    """`format=csv` or `format=xlsx` for the bank file, with the `reason` the download is audited under."""

    format = Choice(("json", *service.BANK_FILE_FORMATS), load_default="json")
    reason = Reason(load_default=None)

    @validates_schema
    def _reason_for_the_file(self, data, **kwargs):
        """The bank file shows full account numbers: say why it is downloaded."""
        if data.get("format", "json") != "json" and not data.get("reason"):
            raise ValidationError({"reason": [f"Required with format={data['format']} (the download is audited)."]})


class SettlementIn(Schema):
    """A line's new status; a failed (returned) line may say why (the bank's return reason)."""

    line_id = Id(required=True)
    status = Choice(("paid", "failed"), required=True)
    reason = Reason(load_default=None)

    @validates_schema
    def _reason_for_failures(self, data, **kwargs):
        """Only a failed line carries a reason (API.md's settle body has none, so it stays optional)."""
        if data.get("reason") and data.get("status") == "paid":
            raise ValidationError({"reason": ["Only a failed line has a reason."]})


class PayoutSettle(Schema):
    """The lines to settle."""

    lines = fields.List(fields.Nested(SettlementIn), required=True, validate=validate.Length(min=1, max=1000))


class PayoutProgressOut(Schema):
    """How many of the candidate payees the build has gone through."""

    done = fields.Integer()
    total = fields.Integer()


class PayoutPayeeOut(Schema):
    """Who a line pays."""

    kind = fields.String()
    id = fields.Integer()
    name = fields.String()


def _payee(line) -> dict:
    """A line's payee: household, supplier or store, by id and name."""
    kind = "household" if line.household_id else "supplier" if line.supplier_id else "store"
    return {"kind": kind, "id": line.household_id or line.supplier_id or line.store_id, "name": line.payee_name}


class PayoutLineOut(Schema):
    """A payee's line: masked account, amount, status (pending, paid, failed, unpayable) and why."""

    id = fields.Integer()
    payee = Computed(_payee, fields.Nested(PayoutPayeeOut))
    account = fields.String(attribute="bank_account_masked", allow_none=True)
    account_changed = fields.Boolean(metadata={"description": "The payee's bank account is no longer the one this "
                                                              "line pays (changed since the build)"})
    shared_account = fields.Boolean(metadata={"description": "The household's bank account is held by another "
                                                             "household too (never which): check before paying"})
    amount_fen = fields.Integer()
    status = fields.String()
    reason = MaskedText(allow_none=True)
    reference = Computed(lambda line: bank_file.reference(line.batch_id, line.id), fields.String())
    settled_at = fields.DateTime(allow_none=True, metadata={"description": "The latest settlement: paid, or failed"})
    paid_at = fields.DateTime(allow_none=True, metadata={"description": "Kept when the bank later returns it"})
    paid_by = fields.Integer(allow_none=True, metadata={"description": "The user who settled it paid"})
    failed_at = fields.DateTime(allow_none=True)
    failed_by = fields.Integer(allow_none=True, metadata={"description": "The user who settled it failed (returned)"})
    paid_transaction_id = fields.Integer(allow_none=True)
    failed_transaction_id = fields.Integer(allow_none=True)


class PayoutTotalsOut(Schema):
    """The batch's lines summed by status."""

    pending_fen = fields.Integer()
    paid_fen = fields.Integer()
    failed_fen = fields.Integer()
    unpayable_fen = fields.Integer()


class PayoutBatchOut(Schema):
    """A payout batch: whom it pays, up to when, its build status and progress, and what it moved to clearing."""

    id = fields.Integer()
    party = fields.String()
    supplier_id = fields.Integer(allow_none=True)
    until = Date()
    status = fields.String()
    progress = fields.Nested(PayoutProgressOut)
    total_fen = fields.Integer()
    failure_reason = fields.String(allow_none=True)
    transaction_id = fields.Integer(allow_none=True)
    created_by = fields.Integer(metadata={"description": "The admin who requested the batch"})
    created_at = fields.DateTime()
    built_at = fields.DateTime(allow_none=True)


class PayoutLineCountsOut(Schema):
    """The batch's lines counted by status."""

    pending = fields.Integer()
    paid = fields.Integer()
    failed = fields.Integer()
    unpayable = fields.Integer()


class PayoutBatchDetailOut(PayoutBatchOut):
    """A payout batch with its first lines (the rest: its lines list from `lines_next_cursor`), and all its lines
    counted and summed by status."""

    lines = fields.List(fields.Nested(PayoutLineOut), metadata={
        "description": f"The first {service.LINES_SHOWN} lines by id; all of them when `lines_next_cursor` is null"})
    lines_next_cursor = fields.String(allow_none=True, metadata={
        "description": "The cursor of the lines after these: `GET /payout-batches/<id>/lines?cursor=`"})
    line_counts = fields.Nested(PayoutLineCountsOut)
    totals = fields.Nested(PayoutTotalsOut)


class PayoutDownloadOut(Schema):
    """A download of a batch's bank file: who, when, why, how many lines and how much."""

    id = fields.Integer()
    batch_id = fields.Integer()
    user_id = fields.Integer()
    username = fields.String()
    lines = fields.Integer()
    total_fen = fields.Integer()
    reason = MaskedText()
    created_at = fields.DateTime()


class PayoutDownloadQuery(DatedPageQuery):
    """Download list filters: batch, the user who downloaded, the period."""

    batch_id = Id(load_default=None, strict=False)
    user_id = Id(load_default=None, strict=False)


@blp.route("/payout-batches")
class PayoutBatches(MethodView):
    @require_role("admin", "coop", "auditor")
    @blp.arguments(PayoutBatchQuery, location="query")
    @blp.response(200, page_schema(PayoutBatchOut))
    def get(self, query):
        """List payout batches (a co-op: its own households' batches; admins and auditors: all)."""
        return service.list_batches(actor=current_user(), **query)

    @blp.errors({409: [LedgerCode.NOTHING_TO_PAY, LedgerCode.PAYOUT_BATCH_IN_PROGRESS]})
    @require_role("admin")
    @idempotent(scope=_batch_keys)
    @blp.arguments(PayoutBatchCreate)
    @blp.response(202, PayoutBatchOut, location=ReadAt("payouts.show_batch", batch_id="id"))
    def post(self, data):
        """Request a payout batch; a task builds it (poll the batch for its status and progress). Nothing is written
        on a 409: `nothing_to_pay` when no payee with a bank account is owed anything up to `until` (the details
        count the payees owed without one), `payout_batch_in_progress` while a batch for the same payees is queued
        or building (the details name it)."""
        batch = service.request_batch(actor=current_user(), **data)
        commit()
        return service.show_batch(batch_id=batch.id, actor=current_user())


CSV_DOC = {"200": {"description": "OK", "content": {
    "application/json": {"schema": PayoutBatchDetailOut},
    **{mimetype: {"schema": {"type": "string", "format": "binary", "description": "The bank's batch-transfer file"}}
       for _render, mimetype in service.BANK_FILE_FORMATS.values()}}}}


@blp.route("/payout-batches/<int:batch_id>")
@blp.errors({403: [LedgerCode.BANK_FILE_FORBIDDEN],
             409: [LedgerCode.PAYOUT_BATCH_NOT_READY, LedgerCode.PAYEE_ACCOUNT_CHANGED]})
@require_role("admin", "coop", "auditor")
@blp.arguments(PayoutBatchShowQuery, location="query")
@blp.response(200, PayoutBatchDetailOut)
@blp.doc(responses=CSV_DOC)
def show_batch(query, batch_id):
    """Show a payout batch with its line counts and totals and its first lines (masked accounts; the rest through its
    lines list); `format=csv` or `xlsx` is the bank file (full accounts, audited; admins and the batch's co-op
    only)."""
    if query["format"] == "json":
        return service.show_batch(batch_id=batch_id, actor=current_user())
    file = service.export_bank_file(batch_id=batch_id, actor=current_user(), reason=query["reason"],
                                    output=query["format"])
    commit()
    return Response(file.content, mimetype=file.mimetype, headers={
        "Content-Disposition": f'attachment; filename="{file.filename}"', "Cache-Control": "private, no-store"})


@blp.route("/payout-batches/<int:batch_id>/lines")
@require_role("admin", "coop", "auditor")
@blp.arguments(PayoutLineQuery, location="query")
@blp.response(200, page_schema(PayoutLineOut))
def list_lines(query, batch_id):
    """List a payout batch's lines by id (masked accounts), or those of one `status`."""
    return service.list_lines(batch_id=batch_id, actor=current_user(), **query)


@blp.route("/payout-batches/<int:batch_id>/settle", methods=["POST"])
@blp.errors({409: [LedgerCode.PAYOUT_BATCH_NOT_READY, LedgerCode.ILLEGAL_PAYOUT_TRANSITION],
             422: [LedgerCode.PAYOUT_LINE_NOT_FOUND]})
@require_role("admin")
@idempotent
@blp.arguments(PayoutSettle)
@blp.response(200, PayoutBatchDetailOut)
def settle_batch(data, batch_id):
    """Settle lines as paid or failed, a failed line with its reason if given (a paid line may later fail: a bank
    return puts it back on the payee); who settled each line, when and why is kept on it."""
    settlements = [service.Settlement(**line) for line in data["lines"]]
    batch = service.settle_lines(batch_id=batch_id, settlements=settlements, actor=current_user())
    commit(keep_loaded=True)
    return batch


@blp.route("/audit/payout-downloads")
@require_role("admin", "auditor")
@blp.arguments(PayoutDownloadQuery, location="query")
@blp.response(200, page_schema(PayoutDownloadOut))
def list_downloads(query):
    """List the downloads of payout bank files (each one showed full account numbers)."""
    return service.list_downloads(**query)
