"""Routes for auditors and admins: verify the ledger (at once, or as a task whose progress is polled), list
transactions by account and period, show one."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validates_schema

from orders.ledger import accounts, audit, verifications
from orders.ledger.errors import LedgerCode
from orders.ledger.verify import verify_ledger
from shop.auth.security import current_user, require_role
from shop.blueprint import Blueprint
from shop.db import commit
from shop.fields import BoundedInt, Date, Identifier
from shop.http import ReadAt
from shop.pagination import PageQuery, PeriodQuery, page_schema

blp = Blueprint("ledger", __name__, url_prefix="/api/v1", description="The attribution ledger, for auditors",
                not_found={"transaction_id": LedgerCode.LEDGER_TRANSACTION_NOT_FOUND,
                           "verification_id": LedgerCode.VERIFICATION_NOT_FOUND})


MAX_SEQ = 2**63 - 1  # the chain's seq is a 64-bit integer column
ANCHOR_RULE = "Give `expect_seq` and `expect_hash` together: the head an earlier verification published."


class LedgerVerifyQuery(Schema):
    """An anchor the auditor kept from an earlier verification (its `head_seq` and `head_hash`): the entry at that
    seq must still have that hash, or the verification fails (a chain rewritten in full passes every other check)."""

    expect_seq = BoundedInt(minimum=1, maximum=MAX_SEQ, strict=False, metadata={
        "description": "The seq of the anchored entry (an earlier verification's `head_seq`)."})
    expect_hash = Identifier(max_length=64, case="lower", pattern="^[0-9a-f]{64}$",
                             pattern_error="Must be the 64 hexadecimal digits of a SHA-256 hash.", metadata={
                                 "description": "The hash that entry had (an earlier verification's `head_hash`)."})

    @validates_schema
    def _together(self, data, **kwargs):
        """Both parts of the anchor, or neither."""
        if ("expect_seq" in data) != ("expect_hash" in data):
            raise ValidationError({"expect_hash" if "expect_seq" in data else "expect_seq": [ANCHOR_RULE]})


class LedgerVerifyOut(Schema):
    """The ledger's verification: balanced, chain intact, accounts owned as their codes say, the auditor's anchor
    kept, and the first bad transaction and account if any; and the chain's head, the anchor to keep for the next
    verification."""

    ok = fields.Boolean()
    transactions = fields.Integer()
    balanced = fields.Boolean()
    chain_intact = fields.Boolean()
    first_bad_id = fields.Integer(allow_none=True)
    accounts_intact = fields.Boolean(metadata={"description": "Every account's owner is the one its code names."})
    first_bad_account = fields.String(allow_none=True, metadata={"description": "The first account code that is not."})
    anchor_intact = fields.Boolean(allow_none=True, metadata={
        "description": "The entry at `expect_seq` has `expect_hash` (false when it has another or the chain has no "
                       "entry at that seq; `first_bad_id` then names it); null without an anchor."})
    head_seq = fields.Integer(metadata={"description": "The seq of the chain's last entry (0 for an empty chain): "
                                                       "keep it with `head_hash` as the next verification's anchor."})
    head_hash = fields.String(metadata={"description": "The hash of the chain's last entry."})


class LedgerVerificationProgressOut(Schema):
    """How many of the linked transactions the verification has checked."""

    done = fields.Integer()
    total = fields.Integer()


class LedgerVerificationOut(LedgerVerifyOut):
    """A requested verification: queued, running (with progress), done (with the result fields, null before) or
    failed."""

    class Meta:
        """A requested verification has no anchor; `GET /ledger/verify` checks one and publishes the head."""

        exclude = ("anchor_intact", "head_seq", "head_hash")

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
@blp.arguments(LedgerVerifyQuery, location="query")
@blp.response(200, LedgerVerifyOut)
def verify(query):
    """Check that every transaction balances, the hash chain is intact and, given an anchor from an earlier
    verification, that its entry still has its hash; name the first bad transaction and publish the head. One
    full verification runs at a time: while one runs, 409 `verification_running` with Retry-After."""
    anchor = (query["expect_seq"], query["expect_hash"]) if query else None
    return verify_ledger(wait=False, expect=anchor)


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
