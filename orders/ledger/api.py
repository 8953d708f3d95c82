"""Routes for auditors and admins: verify the ledger (at once, or as a task whose progress is polled), list
transactions by account and period, show one."""
from __future__ import annotations

from marshmallow import Schema, fields

from orders.ledger import accounts, audit, verifications
from orders.ledger.errors import LedgerCode
from orders.ledger.verify import verify_ledger
from shop.auth.security import current_user, require_role
from shop.blueprint import Blueprint
from shop.db import commit
from shop.fields import Date, Identifier
from shop.http import ReadAt
from shop.pagination import PageQuery, PeriodQuery, page_schema

blp = Blueprint("ledger", __name__, url_prefix="/api/v1", description="The attribution ledger, for auditors",
                not_found={"transaction_id": LedgerCode.LEDGER_TRANSACTION_NOT_FOUND,
                           "verification_id": LedgerCode.VERIFICATION_NOT_FOUND})


class LedgerVerifyOut(Schema):
    """The ledger's verification: balanced, chain intact, accounts owned as their codes say, and the first bad
    transaction and account if any."""

    ok = fields.Boolean()
    transactions = fields.Integer()
    balanced = fields.Boolean()
    chain_intact = fields.Boolean()
    first_bad_id = fields.Integer(allow_none=True)
    accounts_intact = fields.Boolean(metadata={"description": "Every account's owner is the one its code names."})
    first_bad_account = fields.String(allow_none=True, metadata={"description": "The first account code that is not."})


class LedgerVerificationProgressOut(Schema):
    """How many of the linked transactions the verification has checked."""

    done = fields.Integer()
    total = fields.Integer()


class LedgerVerificationOut(LedgerVerifyOut):
    """A requested verification: queued, running (with progress), done (with the result fields, null before) or
    failed."""

    id = fields.Integer()
    status = fields.String()
    progress = fields.Nested(LedgerVerificationProgressOut)
    ok = fields.Boolean(allow_none=True)
    transactions = fields.Integer(allow_none=True)
    balanced = fields.Boolean(allow_none=True)
    chain_intact = fields.Boolean(allow_none=True)
    accounts_intact = fields.Boolean(allow_none=True)
    failure_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class LedgerTransactionQuery(PageQuery, PeriodQuery):
    """Filters: an account code, and a posting period in Asia/Shanghai dates (`from` inclusive, `to` exclusive)."""

    account = Identifier(max_length=64, case=None, pattern=accounts.CODE_PATTERN, pattern_error=accounts.CODE_RULE)


class LedgerPostingOut(Schema):
    """A signed amount on an account and what it came from."""

    id = fields.Integer()
    account = fields.String()
    account_kind = fields.String()
    amount_fen = fields.Integer()
    component = fields.String()
    order_line_id = fields.Integer(allow_none=True)
    allocation_id = fields.Integer(allow_none=True)
    lot_id = fields.Integer(allow_none=True)
    household_id = fields.Integer(allow_none=True)


class LedgerTransactionOut(Schema):
    """A ledger transaction, its place in the chain and its postings."""

    id = fields.Integer()
    seq = fields.Integer(allow_none=True)
    kind = fields.String()
    outbox_event_id = fields.Integer(allow_none=True)
    order_id = fields.Integer(allow_none=True)
    order_line_id = fields.Integer(allow_none=True)
    sale_date = Date(allow_none=True)
    posted_at = fields.DateTime()
    memo = fields.String()
    prev_hash = fields.String(allow_none=True)
    hash = fields.String(allow_none=True)
    postings = fields.List(fields.Nested(LedgerPostingOut))


class LedgerContributionOut(Schema):
    """A household's contribution to a lot (the premium pool's weights)."""

    household_id = fields.Integer()
    household_code = fields.String()
    county_code = fields.String()
    quantity = fields.Integer()


class LedgerLotOut(Schema):
    """A lot an allocation took units from, with its contributions."""

    id = fields.Integer()
    lot_code = fields.String()
    supplier_id = fields.Integer()
    harvested_on = Date()
    contributions = fields.List(fields.Nested(LedgerContributionOut))


class LedgerShareOut(Schema):
    """A household's summed dividend shares in the line's supplier on the sale date."""

    household_id = fields.Integer()
    household_code = fields.String()
    county_code = fields.String()
    shares = fields.Integer()


class LedgerAttributedOrderOut(Schema):
    """The order: its channel (store commission only for O2O), store and sale date."""

    id = fields.Integer()
    channel = fields.String()
    store_id = fields.Integer(allow_none=True)
    sale_date = Date(allow_none=True)


class LedgerAttributedLineOut(Schema):
    """The order line with the price and rates snapshotted at checkout."""

    id = fields.Integer()
    sku = fields.String()
    name = fields.String()
    supplier_id = fields.Integer()
    quantity = fields.Integer()
    refunded_quantity = fields.Integer(metadata={
        "description": "Units the ledger reversed: of the line's refunds that succeeded and whose reversal is "
                       "posted (a refund pending at the provider is not counted)."})
    unit_price_fen = fields.Integer()
    platform_fee_bp = fields.Integer()
    store_commission_bp = fields.Integer()
    household_premium_bp = fields.Integer()
    dividend_bp = fields.Integer()


class LedgerAllocationOut(Schema):
    """Units of the line taken from one lot, how many of them succeeded refunds took off, and what this transaction
    did to them."""

    id = fields.Integer()
    lot_id = fields.Integer()
    location_id = fields.Integer()
    quantity = fields.Integer()
    refunded = fields.Integer(metadata={
        "description": "Units the ledger reversed (succeeded refunds whose reversal is posted; pending ones not)."})
    state = fields.String()
    units = fields.Integer(metadata={
        "description": "Units this transaction moved on the allocation: paid (`line_paid`) or reversed "
                       "(`line_refunded`); 0 if it did not touch it."})
    refunded_before = fields.Integer(metadata={
        "description": "Units the line's refunds reversed before this transaction (for a `line_refunded`: its "
                       "reversal is the attribution of `quantity - refunded_before` units minus that of "
                       "`quantity - refunded_before - units`)."})


class LedgerAttributionOut(Schema):
    """What an attribution is recomputed from."""

    order = fields.Nested(LedgerAttributedOrderOut)
    line = fields.Nested(LedgerAttributedLineOut)
    allocations = fields.List(fields.Nested(LedgerAllocationOut))
    lots = fields.List(fields.Nested(LedgerLotOut))
    dividend_shares = fields.List(fields.Nested(LedgerShareOut))


class LedgerTransactionDetailOut(LedgerTransactionOut):
    """A transaction with, for an attribution, its order line, allocations, lots and shareholders."""

    attribution = fields.Nested(LedgerAttributionOut, allow_none=True)


@blp.route("/ledger/verify")
@blp.errors({409: [LedgerCode.VERIFICATION_RUNNING]})
@require_role("admin", "auditor")
@blp.response(200, LedgerVerifyOut)
def verify():
    """Check that every transaction balances and the hash chain is intact; name the first bad transaction. One
    full verification runs at a time: while one runs, 409 `verification_running` with Retry-After."""
    return verify_ledger(wait=False)


@blp.route("/ledger/verifications", methods=["POST"])
@blp.errors({409: [LedgerCode.VERIFICATION_RUNNING]})
@require_role("admin", "auditor")
@blp.response(202, LedgerVerificationOut, location=ReadAt("ledger.show_verification", verification_id="id"))
def request_verification():
    """Queue a full verification run by a task; poll it for its progress and result (409 `verification_running`
    while another is queued or running)."""
    verification = verifications.request_verification(actor=current_user())
    commit()
    return verifications.show_verification(verification_id=verification.id)


@blp.route("/ledger/verifications/<int:verification_id>")
@require_role("admin", "auditor")
@blp.response(200, LedgerVerificationOut)
def show_verification(verification_id):
    """Show a requested verification: its status, progress and, once done, its result."""
    return verifications.show_verification(verification_id=verification_id)


@blp.route("/ledger/transactions")
@require_role("admin", "auditor")
@blp.arguments(LedgerTransactionQuery, location="query")
@blp.response(200, page_schema(LedgerTransactionOut))
def list_transactions(query):
    """List transactions in chain (commit) order, optionally those touching an account and posted in a period."""
    return audit.list_transactions(**query)


@blp.route("/ledger/transactions/<int:transaction_id>")
@require_role("admin", "auditor")
@blp.response(200, LedgerTransactionDetailOut)
def show_transaction(transaction_id):
    """Show a transaction's postings and, for an attribution, enough to recompute it by hand."""
    return audit.show_transaction(transaction_id=transaction_id)
