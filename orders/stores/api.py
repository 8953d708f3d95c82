"""Routes, one blueprint per resource: stores, their cash shifts, stock transfers to them, stock adjustments."""
from __future__ import annotations

from flask.views import MethodView

from catalog.errors import CatalogCode
from orders.errors import OrderCode
from orders.stores import service
from orders.stores.schemas import (
    AdjustmentCreate,
    AdjustmentOut,
    AdjustmentQuery,
    ShiftClose,
    ShiftOpen,
    ShiftOut,
    ShiftQuery,
    ShiftReportOut,
    StoreAccountChangeOut,
    StoreCreate,
    StoreOut,
    StoreQuery,
    StoreUpdate,
    TransferCancel,
    TransferCreate,
    TransferOut,
    TransferQuery,
    TransferReceive,
)
from shop.auth.security import current_user, require_role
from shop.blueprint import Blueprint
from shop.bodies import body_field
from shop.db import commit
from shop.errors import ShopCode
from shop.http import ReadAt
from shop.idempotency import idempotent
from shop.pagination import DatedPageQuery, page_schema
from suppliers.errors import SupplierCode

blp = Blueprint("stores", __name__, url_prefix="/api/v1",
                description="Stores (大凉山体验店): their staff scope and payout accounts",
                not_found={"store_id": OrderCode.STORE_NOT_FOUND})
shifts = Blueprint("shifts", __name__, url_prefix="/api/v1", description="Cash shifts at a store's counter",
                   not_found={"store_id": OrderCode.STORE_NOT_FOUND, "shift_id": OrderCode.SHIFT_NOT_FOUND})
transfers = Blueprint("stock_transfers", __name__, url_prefix="/api/v1",
                      description="Stock transfers from a warehouse to a store, or back from a store to a "
                                  "warehouse, received per lot",
                      not_found={"store_id": OrderCode.STORE_NOT_FOUND, "transfer_id": OrderCode.TRANSFER_NOT_FOUND})
adjustments = Blueprint("stock_adjustments", __name__, url_prefix="/api/v1",
                        description="Stock adjustments: stocktake counts, write-offs and found stock, audited",
                        not_found={"adjustment_id": OrderCode.ADJUSTMENT_NOT_FOUND})
BLUEPRINTS = (blp, shifts, transfers, adjustments)


def _store_keys(store_id: int, **_) -> str:
    """Shift keys belong to the store (`service.store_keys`)."""
    return service.store_keys(actor=current_user(), store_id=store_id)


def _shift_keys(shift_id: int, **_) -> str:
    """A shift's keys belong to its store (`service.shift_keys`)."""
    return service.shift_keys(actor=current_user(), shift_id=shift_id)


def _adjustment_keys(**_) -> str:
    """Adjustment keys belong to the location whose stock is adjusted (`service.adjustment_keys`)."""
    return service.adjustment_keys(actor=current_user(), location_id=body_field(AdjustmentCreate, "location_id"))


def _dispatch_keys(**_) -> str:
    """A new transfer's keys belong to the location it takes stock from (`service.dispatch_keys`)."""
    return service.dispatch_keys(actor=current_user(), from_location=body_field(TransferCreate, "from_location"))


def _cancel_keys(transfer_id: int, **_) -> str:
    """A cancel's keys belong to the transfer's source (`service.cancel_keys`)."""
    return service.cancel_keys(actor=current_user(), transfer_id=transfer_id)


def _receipt_keys(transfer_id: int, **_) -> str:
    """A receipt's keys belong to the transfer's destination (`service.receipt_keys`)."""
    return service.receipt_keys(actor=current_user(), transfer_id=transfer_id)


@blp.route("/stores")
class Stores(MethodView):
    @require_role("admin", "auditor", "store_staff", "consumer")
    @blp.arguments(StoreQuery, location="query")
    @blp.response(200, page_schema(StoreOut))
    def get(self, query):
        """List stores: admins and auditors all (with the masked payout account), staff their own,
        consumers the active ones (to choose a pickup store; no account)."""
        return service.list_stores(actor=current_user(), **query)

    @require_role("admin")
    @blp.arguments(StoreCreate)
    @blp.response(201, StoreOut, location=ReadAt("stores.StoreById", store_id="id"))
    @blp.errors({409: [OrderCode.LOCATION_TAKEN, OrderCode.STORE_NAME_TAKEN],
                 422: [ShopCode.VALIDATION_ERROR, ShopCode.REGION_NOT_FOUND, OrderCode.DISTRICT_NOT_DONOR,
                       OrderCode.LOCATION_NOT_STORE, OrderCode.LOCATION_OUTSIDE_DISTRICT,
                       SupplierCode.INVALID_BANK_ACCOUNT]})
    def post(self, data):
        """Open a store in a donor district on an unused store location in that district (422
        `location_outside_district` for a location in another region)."""
        store = service.create_store(**data)
        commit()
        return store


@blp.route("/stores/<int:store_id>")
class StoreById(MethodView):
    @require_role("admin", "auditor", "store_staff", "consumer")
    @blp.response(200, StoreOut)
    def get(self, store_id):
        """Show a store (staff: their own only; consumers: active stores)."""
        return service.show_store(actor=current_user(), store_id=store_id)

    @require_role("admin")
    @blp.arguments(StoreUpdate)
    @blp.response(200, StoreOut)
    @blp.errors({409: [OrderCode.TRANSFERS_IN_TRANSIT, OrderCode.PICKUPS_WAITING, OrderCode.STORE_NAME_TAKEN],
                 422: [ShopCode.VALIDATION_ERROR, SupplierCode.ACCOUNT_CHANGE_REASON_REQUIRED,
                       SupplierCode.INVALID_BANK_ACCOUNT]})
    def patch(self, data, store_id):
        """Rename or (de)activate a store, or change its payout account (needs a reason; audited). A store with
        stock transfers on their way to it is not deactivated (409 `transfers_in_transit`, `details.transfer_ids`),
        nor one with pickup orders waiting, paid or being paid (409 `pickups_waiting`, `details.order_ids`)."""
        reason = data.pop("reason", None)
        store = service.update_store(store_id=store_id, actor=current_user(), reason=reason,
                                     changes=service.StoreChanges(**data))
        commit()
        return store


@blp.route("/stores/<int:store_id>/account-changes")
@require_role("admin", "auditor")
@blp.arguments(DatedPageQuery, location="query")
@blp.response(200, page_schema(StoreAccountChangeOut))
def list_account_changes(query, store_id):
    """List a store's payout account changes (who, when, why; masked)."""
    return service.list_account_changes(store_id=store_id, **query)


@shifts.route("/stores/<int:store_id>/shifts")
class StoreShifts(MethodView):
    @require_role("admin", "auditor", "store_staff")
    @shifts.arguments(ShiftQuery, location="query")
    @shifts.response(200, page_schema(ShiftReportOut))
    def get(self, query, store_id):
        """List a store's cash shifts, newest first, each with its shift report (opened and closed by whom and when,
        the float, per payment method expected, counted and difference; live while open); or those `open` or
        `closed`, or opened in a period (staff: their own store's)."""
        return service.list_shifts(actor=current_user(), store_id=store_id, **query)

    @require_role("admin", "store_staff")
    @idempotent(scope=_store_keys)
    @shifts.arguments(ShiftOpen)
    @shifts.response(201, ShiftOut, location=ReadAt("shifts.show_shift", shift_id="id"))
    @shifts.errors({409: [OrderCode.SHIFT_ALREADY_OPEN, OrderCode.STORE_INACTIVE]})
    def post(self, data, store_id):
        """Open the store's cash shift with a float (one open shift per store; a deactivated store opens none:
        `store_inactive`)."""
        shift = service.start_shift(actor=current_user(), store_id=store_id, **data)
        commit()
        return shift


@shifts.route("/shifts/<int:shift_id>")
@require_role("admin", "auditor", "store_staff")
@shifts.response(200, ShiftReportOut)
def show_shift(shift_id):
    """The shift report: per payment method expected, counted and difference (live while open)."""
    return service.shift_report(actor=current_user(), shift_id=shift_id)


@shifts.route("/shifts/<int:shift_id>/close", methods=["POST"])
@require_role("admin", "store_staff")
@idempotent(scope=_shift_keys)
@shifts.arguments(ShiftClose)
@shifts.response(200, ShiftReportOut)
@shifts.errors({409: [OrderCode.SHIFT_CLOSED]})
def close_shift(data, shift_id):
    """Close a shift with the counted cash; answers the shift report."""
    report = service.close_shift(actor=current_user(), shift_id=shift_id, **data)
    commit()
    return report


@transfers.route("/stock-transfers", methods=["POST"])
@require_role("admin")
@idempotent(scope=_dispatch_keys)
@transfers.arguments(TransferCreate)
@transfers.response(201, TransferOut, location=ReadAt("stock_transfers.show_transfer", transfer_id="id"))
@transfers.errors({409: [CatalogCode.INSUFFICIENT_STOCK, OrderCode.STORE_INACTIVE],
                   422: [ShopCode.VALIDATION_ERROR, CatalogCode.LOCATION_NOT_WAREHOUSE, OrderCode.LOCATION_NOT_STORE,
                         CatalogCode.PRODUCT_NOT_FOUND, OrderCode.TRANSFER_TOO_MANY_LOTS]})
def create_transfer(data):
    """Dispatch stock from a warehouse to an active store, or back from a store (open or closed) to a warehouse:
    `from_location` a store's location code (lots taken FIFO, never reserved units; accepts an Idempotency-Key)."""
    transfer = service.create_transfer(actor=current_user(), **data)
    commit()
    return transfer


@transfers.route("/stock-transfers/<int:transfer_id>")
@require_role("admin", "auditor", "store_staff")
@transfers.response(200, TransferOut)
def show_transfer(transfer_id):
    """Show a stock transfer with its lots (staff: transfers to their store)."""
    return service.get_transfer(actor=current_user(), transfer_id=transfer_id)


@transfers.route("/stock-transfers/<int:transfer_id>/receive", methods=["POST"])
@require_role("store_staff", "admin")
@idempotent(scope=_receipt_keys)
@transfers.arguments(TransferReceive)
@transfers.response(200, TransferOut)
@transfers.errors({409: [OrderCode.TRANSFER_ALREADY_RECEIVED, OrderCode.TRANSFER_CANCELLED,
                        OrderCode.STORE_INACTIVE],
                   422: [ShopCode.VALIDATION_ERROR, OrderCode.TRANSFER_LINES_MISMATCH]})
def receive_transfer(data, transfer_id):
    """The receiving store's staff confirm what arrived, per lot as sent, or an admin what a store sent back to a
    warehouse (403 `forbidden` otherwise); the discrepancy is recorded."""
    transfer = service.receive_transfer(actor=current_user(), transfer_id=transfer_id, **data)
    commit()
    return transfer


@transfers.route("/stock-transfers/<int:transfer_id>/cancel", methods=["POST"])
@require_role("admin")
@idempotent(scope=_cancel_keys)
@transfers.arguments(TransferCancel)
@transfers.response(200, TransferOut)
@transfers.errors({409: [OrderCode.TRANSFER_ALREADY_RECEIVED, OrderCode.TRANSFER_CANCELLED],
                   422: [ShopCode.VALIDATION_ERROR]})
def cancel_transfer(data, transfer_id):
    """Cancel a transfer not yet received, with the reason: its units go back on their lots at the warehouse."""
    transfer = service.cancel_transfer(actor=current_user(), transfer_id=transfer_id, **data)
    commit()
    return transfer


TransferPage = page_schema(TransferOut)  # one schema for both lists of transfers (one name in the document)


@transfers.route("/stores/<int:store_id>/incoming-transfers")
@require_role("admin", "auditor", "store_staff")
@transfers.arguments(TransferQuery, location="query")
@transfers.response(200, TransferPage)
def list_incoming_transfers(query, store_id):
    """List the transfers sent to a store, oldest first, or those of one `status`."""
    return service.list_incoming_transfers(actor=current_user(), store_id=store_id, **query)


@transfers.route("/stores/<int:store_id>/returned-transfers")
@require_role("admin", "auditor", "store_staff")
@transfers.arguments(TransferQuery, location="query")
@transfers.response(200, TransferPage)
def list_returned_transfers(query, store_id):
    """List the transfers a store sent back to a warehouse (its leftover stock, also once closed), oldest first, or
    those of one `status`."""
    return service.list_returned_transfers(actor=current_user(), store_id=store_id, **query)


@adjustments.route("/stock-adjustments")
class StockAdjustments(MethodView):
    @require_role("admin", "auditor", "store_staff")
    @adjustments.arguments(AdjustmentQuery, location="query")
    @adjustments.response(200, page_schema(AdjustmentOut))
    @adjustments.errors({404: [CatalogCode.LOCATION_NOT_FOUND]})
    def get(self, query):
        """List stock adjustments (staff: their store's location)."""
        return service.list_adjustments(actor=current_user(), **query)

    @require_role("admin", "store_staff")
    @idempotent(scope=_adjustment_keys)
    @adjustments.arguments(AdjustmentCreate)
    @adjustments.response(201, AdjustmentOut, location=ReadAt("stock_adjustments.show_adjustment",
                                                              adjustment_id="id"))
    @adjustments.errors({404: [CatalogCode.LOCATION_NOT_FOUND, CatalogCode.LOT_NOT_FOUND],
                         409: [CatalogCode.BELOW_RESERVED, CatalogCode.LOT_NOT_HELD_HERE,
                               CatalogCode.LOT_QUANTITY_EXCEEDED, OrderCode.STORE_INACTIVE],
                         422: [ShopCode.VALIDATION_ERROR, OrderCode.ADJUSTMENT_SIGN]})
    def post(self, data):
        """Count, write off or find units of a lot at a location, never below what is reserved (audited)."""
        adjustment = service.adjust_stock(actor=current_user(), **data)
        commit()
        return adjustment


@adjustments.route("/stock-adjustments/<int:adjustment_id>")
@require_role("admin", "auditor", "store_staff")
@adjustments.response(200, AdjustmentOut)
def show_adjustment(adjustment_id):
    """Show a stock adjustment (staff: their store's location)."""
    return service.get_adjustment(actor=current_user(), adjustment_id=adjustment_id)
