"""Store remittance routes: an admin records the counter cash a store handed over; admins, auditors and the store's
own staff list and read them."""
from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields

from orders.errors import OrderCode
from orders.ledger import remittances
from orders.ledger.errors import LedgerCode
from orders.stores.service import store_keys
from shop.auth.security import current_user, require_role
from shop.blueprint import Blueprint
from shop.db import commit
from shop.errors import ShopCode
from shop.fields import MAX_AMOUNT_FEN, BankReference, BoundedInt, Date, no_personal_number_in_text
from shop.http import ReadAt
from shop.idempotency import idempotent
from shop.pagination import DatedPageQuery, page_schema

blp = Blueprint("store_remittances", __name__, url_prefix="/api/v1",
                description="Store remittances: the counter cash a store hands over to the platform",
                not_found={"store_id": OrderCode.STORE_NOT_FOUND, "remittance_id": LedgerCode.REMITTANCE_NOT_FOUND})


def _store_keys(store_id: int, **_) -> str:
    """A remittance's keys belong to its store (`store_keys`): one resent by another admin is recorded once."""
    return store_keys(actor=current_user(), store_id=store_id)


class RemittanceCreate(Schema):
    """How much cash the store handed over, the day the platform's bank account received it, the bank's reference."""

    amount_fen = BoundedInt(minimum=1, maximum=MAX_AMOUNT_FEN, required=True, metadata={
        "description": "At most the cash the store holds (409 `remittance_exceeds_cash_held`)."})
    received_on = Date(required=True, metadata={
        "description": "The day the bank received it (Asia/Shanghai): from the day the store opened to today (422 "
                       "`remittance_date_out_of_range`)."})
    reference = BankReference(required=True, validate=no_personal_number_in_text, metadata={
        "description": "The bank's reference of the deposit (no ID or phone number), Chinese included: full-width "
                       "forms, dashes, spaces and ASCII case fold to one spelling (`ｂａｎｋ－001` is `BANK-001`), "
                       "once per store (409 `remittance_reference_used`)."})


class RemittanceOut(Schema):
    """A remittance: the cash handed over, the commission the store kept out of the cash it held, its ledger
    transaction, who recorded it and when."""

    id = fields.Integer()
    store_id = fields.Integer()
    amount_fen = fields.Integer()
    commission_kept_fen = fields.Integer(metadata={
        "description": "The commission the store kept out of the cash it held (moved off its commission account)"})
    received_on = Date()
    reference = fields.String()
    transaction_id = fields.Integer()
    recorded_by = fields.Integer(metadata={"description": "The admin who recorded it"})
    created_at = fields.DateTime()


@blp.route("/stores/<int:store_id>/remittances")
class StoreRemittances(MethodView):
    @require_role("admin", "auditor", "store_staff")
    @blp.arguments(DatedPageQuery, location="query")
    @blp.response(200, page_schema(RemittanceOut))
    def get(self, query, store_id):
        """List a store's remittances, newest first (its staff: their own store's)."""
        return remittances.list_remittances(store_id=store_id, actor=current_user(), **query)

    @require_role("admin")
    @idempotent(scope=_store_keys)
    @blp.arguments(RemittanceCreate)
    @blp.response(201, RemittanceOut, location=ReadAt("store_remittances.show_remittance", store_id="store_id",
                                                      remittance_id="id"))
    @blp.errors({409: [LedgerCode.REMITTANCE_EXCEEDS_CASH_HELD, LedgerCode.REMITTANCE_REFERENCE_USED],
                 422: [ShopCode.VALIDATION_ERROR, LedgerCode.REMITTANCE_DATE_OUT_OF_RANGE]})
    def post(self, data, store_id):
        """Record counter cash a store handed over (received in the platform's bank account), posted to the ledger.
        The store keeps its commission out of the cash it holds and remits the rest: a remittance of its statement's
        `to_remit_fen` leaves its cash held and its commission both at 0; remitting more, it keeps less commission
        (`commission_kept_fen`) and a store payout batch pays it the rest. 409 `remittance_exceeds_cash_held` above
        the cash it holds."""
        remittance = remittances.record_remittance(store_id=store_id, actor=current_user(), **data)
        commit()
        return remittance


@blp.route("/stores/<int:store_id>/remittances/<int:remittance_id>")
@require_role("admin", "auditor", "store_staff")
@blp.response(200, RemittanceOut)
def show_remittance(store_id, remittance_id):
    """Show a store's remittance (its staff: their own store's)."""
    return remittances.show_remittance(store_id=store_id, remittance_id=remittance_id, actor=current_user())
