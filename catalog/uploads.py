"""Co-operative inventory uploads: keep the file until it is imported all-or-nothing in a task, show progress.

An upload is stored with the SHA-256 of its bytes; while an upload of the same bytes for the
same supplier is pending, processing or succeeded, re-sending the file returns that upload
(a unique key makes two concurrent identical uploads one). The import validates every row
first — reporting all problems at once, up to a bound — and only a clean file is written, in the
task's single transaction, which also drops the file's bytes (succeeded or failed, only the SHA-256 that recognises
a re-sent file stays). Progress lives in the cache, outside that transaction, so a poller sees it (the database's
while the cache is down: an outage never fails an import).
Nothing here commits: `catalog.tasks.run_import` is the one unit-of-work design (claim, then import).
An upload whose task message was lost (broker down) or whose worker died mid-import is found by
`requeue_stuck_uploads` (a sweeper) or by a re-upload of the same bytes, and imported again from the start.
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from catalog.errors import CatalogCode
from catalog.inventory import new_trace_codes
from catalog.models import InventoryUpload, Location, Lot, LotContribution, Product, Stock
from catalog.schemas import LISTED_UPLOAD_ERRORS
from catalog.spreadsheet import Limits, Sheet, SheetRow, excerpt, read_sheet
from catalog.upload_messages import MESSAGES, messages
from shop.auth.models import User
from shop.caching import cache_delete, cache_get, cache_set
from shop.clock import today
from shop.db import after_commit, among, db, utcnow
from shop.errors import AppError, Conflict, NotFound, ShopCode
from shop.fields import MAX_QUANTITY, code_skeleton, is_blank, mask_personal_numbers, without_controls
from shop.pagination import paginate
from suppliers import service as suppliers
from suppliers.errors import SupplierCode

log = logging.getLogger(__name__)

UNIT_ALIASES = {"公斤": "kg", "千克": "kg", "箱": "box", "袋": "bag", "个": "piece", "件": "piece", "只": "piece"}
STALE_CLAIM = timedelta(minutes=15)
SWEEP_BATCH = 100
WRITE_ROWS = 1000  # an import's rows written together, then its progress is reported
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TEMPLATE_EXAMPLE = ["ZJ-KQM-1KG", "ZJ-2026-09-A", date(2026, 9, 3), "XC-WH", "DEMO-ZJ-001", 20,
                    date(2026, 9, 5), "", "bag"]
Progress = Callable[[int, int], None]
SHOWN_COLUMNS = ("id", "supplier_id", "filename", "sha256", "status", "rows_total", "rows_done", "lots_created",
                 "errors", "created_by", "created_at", "finished_at")


# the English message of the last error kept, which counts those left out (uploads stored before codes have it only)
_MORE_ERRORS = re.compile(re.escape(MESSAGES["more_errors"][0]).replace(re.escape("{count}"), r"(\d+)"))


def problems_found(errors: list[dict]) -> int:
    """How many problems an upload's stored errors stand for: each one listed, and those its last line says were left
    out (`more_errors`), not that line."""
    count = 0
    for error in errors:
        more = _MORE_ERRORS.fullmatch(error.get("message") or "")
        count += int(more.group(1)) if more else 1
    return count


def _progress_key(upload_id: int) -> str:
    """The cache key holding an upload's live progress."""
    return f"inventory-upload-progress:{upload_id}"


def _in_scope(upload: InventoryUpload | None, actor: User) -> bool:
    """Admins see every upload; co-ops their own supplier's."""
    return upload is not None and actor.acts_for_supplier(upload.supplier_id)


def submit_upload(*, actor: User | None, supplier_id: int, filename: str, data: bytes, max_bytes: int,
                  queue_import: bool = True) -> tuple[InventoryUpload, bool]:
    """Store a file for import and (unless the caller imports it itself) queue its task after commit;
    (upload, created). The same bytes while an earlier upload of them is live return that upload."""
    if actor is not None and not actor.acts_for_supplier(supplier_id):
        raise NotFound(f"No supplier {supplier_id}.", code=SupplierCode.SUPPLIER_NOT_FOUND)
    suppliers.held_active_supplier(supplier_id)
    if len(data) > max_bytes:
        raise AppError(f"The file is larger than the limit of {max_bytes} bytes.", code=ShopCode.PAYLOAD_TOO_LARGE,
                       status=413, details={"limit_bytes": max_bytes})
    if not data:
        raise AppError("The file is empty.", code=ShopCode.VALIDATION_ERROR, status=422,
                       details={"file": ["The file is empty."]})
    digest = hashlib.sha256(data).hexdigest()
    existing = _live_upload(supplier_id, digest)
    if existing is not None:
        if queue_import and _is_stuck(existing, utcnow()):
            _requeue(existing.id, utcnow())
        return existing, False
    shown = mask_personal_numbers(without_controls(filename))[:255]  # listed to admins and auditors too
    upload = InventoryUpload(supplier_id=supplier_id, filename="upload" if is_blank(shown) else shown,
                             content=data, sha256=digest, dedupe_key=digest, created_by=actor.id if actor else None)
    try:
        with db.session.begin_nested():
            db.session.add(upload)
    except IntegrityError:
        existing = _live_upload(supplier_id, digest)
        if existing is None:
            raise
        return existing, False
    if queue_import:
        after_commit(lambda upload_id=upload.id: _queue_import(upload_id))
    return upload, True


def _requeue_after() -> timedelta:
    """How long an upload may wait for its task before it counts as lost (INVENTORY_UPLOAD_REQUEUE_SECONDS)."""
    return timedelta(seconds=current_app.config.get("INVENTORY_UPLOAD_REQUEUE_SECONDS", 60))


def _is_stuck(upload: InventoryUpload, now: datetime) -> bool:
    """Pending (not re-queued) past the grace period, or processing under a stale claim."""
    if (upload.queued_at or upload.created_at) >= now - _requeue_after():
        return False
    return upload.status == "pending" or (
        upload.status == "processing" and upload.claimed_at is not None and upload.claimed_at < now - STALE_CLAIM)


def _requeue(upload_id: int, now: datetime) -> None:
    """Note that the upload is queued again now, and queue its task after commit."""
    db.session.execute(update(InventoryUpload).where(InventoryUpload.id == upload_id).values(queued_at=now))
    after_commit(lambda: _queue_import(upload_id))


def requeue_stuck_uploads() -> int:
    """Sweeper: re-queue uploads whose task was lost — pending past the grace period, or processing under
    a stale claim — each at most once per grace period; how many. The caller commits."""
    now = utcnow()
    stuck = db.session.scalars(
        select(InventoryUpload.id)
        .where(func.coalesce(InventoryUpload.queued_at, InventoryUpload.created_at) < now - _requeue_after(),
               or_(InventoryUpload.status == "pending",
                   (InventoryUpload.status == "processing") & (InventoryUpload.claimed_at < now - STALE_CLAIM)))
        .order_by(InventoryUpload.id).limit(SWEEP_BATCH).with_for_update(skip_locked=True)).all()
    for upload_id in stuck:
        _requeue(upload_id, now)
    if stuck:
        log.warning("re-queued %d stuck inventory uploads", len(stuck))
    return len(stuck)


def _live_upload(supplier_id: int, digest: str) -> InventoryUpload | None:
    """The pending, processing or succeeded upload of these bytes, if any."""
    return db.session.scalar(select(InventoryUpload).where(
        InventoryUpload.supplier_id == supplier_id, InventoryUpload.dedupe_key == digest))


def _queue_import(upload_id: int) -> None:
    """Send the import task (after the upload row is committed)."""
    from catalog.tasks import import_inventory

    import_inventory.delay(upload_id)


def get_upload(*, actor: User, upload_id: int) -> dict:
    """An upload in the actor's scope as shown to its owner, with live progress while it is processing."""
    upload = db.session.get(InventoryUpload, upload_id)
    if not _in_scope(upload, actor):
        raise NotFound(f"No inventory upload {upload_id}.", code=CatalogCode.UPLOAD_NOT_FOUND)
    shown = upload_view(upload)
    if upload.status == "processing":
        live = cache_get(_progress_key(upload.id))
        if live:
            shown["rows_done"], shown["rows_total"] = live
    return shown


def upload_view(upload: InventoryUpload, *, errors: int | None = None) -> dict:
    """An upload as shown: its columns, its errors (only the first `errors` of them if given) and how many it has."""
    shown = {column: getattr(upload, column) for column in SHOWN_COLUMNS}
    return shown | {"errors": upload.errors[:errors], "errors_total": len(upload.errors)}


def list_uploads(*, actor: User, supplier_id: int, limit: int, cursor: str | None, next_on: dict | None = None) -> dict:
    """A page of a supplier's uploads, newest first, each with its first `LISTED_UPLOAD_ERRORS` errors and their count
    (`supplier_not_found` for a supplier out of scope or missing); its cursor for the list `next_on` names if given
    (`shop.pagination.scope_of`)."""
    if not actor.acts_for_supplier(supplier_id):
        raise NotFound(f"No supplier {supplier_id}.", code=SupplierCode.SUPPLIER_NOT_FOUND)
    suppliers.get_supplier(supplier_id)
    query = select(InventoryUpload).where(InventoryUpload.supplier_id == supplier_id)
    page = paginate(query, keys=[InventoryUpload.id], limit=limit, cursor=cursor, newest_first=True, next_on=next_on)
    return page | {"items": [upload_view(upload, errors=LISTED_UPLOAD_ERRORS) for upload in page["items"]]}


def claim_upload(upload_id: int) -> bool:
    """Mark an upload as processing, from the start (a stale claim is taken over, the dead run's progress with it);
    False if it is done or being done. The caller commits the claim on its own, before the import."""
    now = utcnow()
    claimed = db.session.execute(
        update(InventoryUpload)
        .where(InventoryUpload.id == upload_id,
               or_(InventoryUpload.status == "pending",
                   (InventoryUpload.status == "processing") & (InventoryUpload.claimed_at < now - STALE_CLAIM)))
        .values(status="processing", claimed_at=now, rows_done=0, rows_total=0, errors=[])).rowcount
    if claimed:
        cache_delete(_progress_key(upload_id))
    return bool(claimed)


def _limits() -> Limits:
    """The reader's limits, with the configured row limit (INVENTORY_UPLOAD_MAX_ROWS)."""
    return Limits(rows=current_app.config.get("INVENTORY_UPLOAD_MAX_ROWS", Limits.rows))


def import_upload(upload_id: int, *, progress: Progress | None = None) -> InventoryUpload | None:
    """Validate and import a claimed upload in the current transaction; on any error import nothing
    and record the errors. Either way the file's bytes are dropped. The caller commits. The upload's row is locked
    and read afresh first (on PostgreSQL, FOR NO KEY UPDATE; SQLite's write lock comes with the first write, as
    before): a worker that took over a claim gone stale while the first still imports waits for that import, and
    finds it done."""
    upload = db.session.scalar(select(InventoryUpload).where(InventoryUpload.id == upload_id)
                               .with_for_update(key_share=True).execution_options(populate_existing=True))
    if upload is None or upload.status != "processing":
        return upload

    def report(done: int, total: int) -> None:
        cache_set(_progress_key(upload_id), (done, total), timeout=3600)
        if progress is not None:
            progress(done, total)

    sheet = read_sheet(upload.content, limits=_limits())
    report(0, len(sheet.rows))
    # Accepted before an admin deactivated its supplier, or while one is under way: no lots. The supplier is held from
    # here on, once the file is read (on SQLite the hold is the write lock, which the checks below take anyway).
    try:
        suppliers.held_active_supplier(upload.supplier_id)
    except Conflict:
        return _finish_failed(upload, [{"row": None, "column": None, **messages("supplier_inactive")}])
    plan = _validate(sheet, supplier_id=upload.supplier_id)
    upload.rows_total = len(sheet.rows)  # the first write, after every check: on SQLite it takes the write lock
    if sheet.failed:
        return _finish_failed(upload, sheet.report())
    try:
        with db.session.begin_nested():
            lots = _write(plan, upload=upload, report=report)
    except IntegrityError:
        log.info("inventory upload %s lost a race on its lot codes", upload_id)
        return _finish_failed(upload, _taken_meanwhile(plan, sheet, supplier_id=upload.supplier_id))
    upload.status, upload.lots_created, upload.rows_done = "succeeded", lots, upload.rows_total
    upload.finished_at, upload.content = utcnow(), None
    cache_delete(_progress_key(upload_id))
    return upload


def _finish_failed(upload: InventoryUpload, errors: list[dict]) -> InventoryUpload:
    """Record why an upload failed (errors already bounded and ordered) and drop its bytes; it frees the file's
    hash for a corrected retry."""
    upload.status, upload.errors, upload.dedupe_key = "failed", errors, None
    upload.rows_done, upload.finished_at, upload.content = 0, utcnow(), None
    cache_delete(_progress_key(upload.id))
    return upload


def fail_upload(upload_id: int) -> None:
    """Mark an upload failed after an unexpected error (in a fresh transaction)."""
    upload = db.session.get(InventoryUpload, upload_id)
    if upload is not None and upload.status != "succeeded":
        _finish_failed(upload, [{"row": None, "column": None, **messages("import_failed")}])


@dataclass
class _LotPlan:
    """One lot to create: its product, dates, rows, and stock per location."""

    code: str
    product: Product
    first: SheetRow
    rows: list[SheetRow] = field(default_factory=list)
    households: dict[int, tuple[int, str]] = field(default_factory=dict)
    stock: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    total: int = 0


def _taken_meanwhile(plans: list[_LotPlan], sheet: Sheet, *, supplier_id: int) -> list[dict]:
    """The errors of an import that lost a race: each of its lot codes another import created meanwhile, at the
    first row that names it (or, if none is found, that one of them was), bounded as the sheet bounds its errors."""
    taken = set(db.session.scalars(select(Lot.skeleton).where(
        Lot.supplier_id == supplier_id, among(Lot.skeleton, {code_skeleton(plan.code) for plan in plans}))))
    for plan in sorted(plans, key=lambda plan: plan.first.row):
        if code_skeleton(plan.code) in taken:
            sheet.error(plan.first.row, "lot_code", "lot_code_imported_meanwhile", lot=plan.code)
    return sheet.report() if sheet.failed else [{"row": None, "column": None, **messages("lot_code_race")}]


def _validate(sheet: Sheet, *, supplier_id: int) -> list[_LotPlan]:
    """Check every row against the catalog and the supplier's households; errors go on the sheet."""
    rows = sheet.rows
    products = {p.sku: p for p in db.session.scalars(select(Product).where(among(Product.sku, {r.sku for r in rows})))}
    found = {loc.skeleton: (loc.id, loc.kind) for loc in db.session.scalars(  # a look-alike code names its location
        select(Location).where(among(Location.skeleton, {code_skeleton(r.location) for r in rows if r.location})))}
    kinds = {r.location: found[code_skeleton(r.location)] for r in rows
             if r.location and code_skeleton(r.location) in found}
    locations = {code: location_id for code, (location_id, kind) in kinds.items() if kind == "warehouse"}
    taken = {lot.skeleton: lot.product_id for lot in db.session.scalars(select(Lot).where(  # look-alikes are one lot
        Lot.supplier_id == supplier_id, among(Lot.skeleton, {code_skeleton(r.lot_code) for r in rows if r.lot_code})))}
    households = suppliers.purchase_periods(supplier_id=supplier_id)
    latest = today()
    plans: dict[str, _LotPlan] = {}
    for row in rows:
        product = products.get(row.sku)
        if row.sku and (product is None or product.supplier_id != supplier_id):
            sheet.error(row.row, "sku", "unknown_product", sku=excerpt(row.sku))
            product = None
        elif product and row.unit and UNIT_ALIASES.get(row.unit, row.unit.lower()) != product.unit:
            sheet.error(row.row, "unit", "unit_mismatch", unit=excerpt(row.unit), product_unit=product.unit)
        if row.location and row.location not in kinds:
            sheet.error(row.row, "location", "unknown_location", location=excerpt(row.location))
        elif row.location and row.location not in locations:
            sheet.error(row.row, "location", "location_not_warehouse", location=excerpt(row.location))
        if row.harvested_on and row.harvested_on > latest:
            sheet.error(row.row, "harvested_on", "harvest_in_future")
        if row.harvested_on and row.packed_on and row.packed_on < row.harvested_on:
            sheet.error(row.row, "harvested_on", "harvest_after_packed")
        if row.packed_on and row.packed_on > latest:
            sheet.error(row.row, "packed_on", "packed_in_future")
        household = households.get(row.household_code)
        if row.household_code and household is None:
            sheet.error(row.row, "household_code", "unknown_household", household=excerpt(row.household_code))
        elif household and not household.active:
            sheet.error(row.row, "household_code", "household_deactivated", household=row.household_code)
        elif household and row.harvested_on and not household.linked_on(row.harvested_on):
            sheet.error(row.row, "household_code", "household_not_linked", household=row.household_code,
                        on=row.harvested_on.isoformat())
        if product is None or not row.lot_code:
            continue
        skeleton = code_skeleton(row.lot_code)
        if skeleton in taken:
            sheet.error(row.row, "lot_code", "lot_already_imported" if taken[skeleton] == product.id
                        else "lot_code_taken", lot=excerpt(row.lot_code))
            continue
        plan = plans.setdefault(skeleton, _LotPlan(code=row.lot_code, product=product, first=row))
        if plan.product.id != product.id:
            sheet.error(row.row, "lot_code", "lot_other_product", lot=excerpt(row.lot_code), first_row=plan.first.row)
            continue
        if row.harvested_on and (row.harvested_on, row.packed_on) != (plan.first.harvested_on, plan.first.packed_on):
            differs = "harvested_on" if row.harvested_on != plan.first.harvested_on else "packed_on"
            sheet.error(row.row, differs, "lot_other_dates", lot=excerpt(row.lot_code), first_row=plan.first.row)
        if household is not None:
            if household.id in plan.households:
                sheet.error(row.row, "household_code", "household_twice_in_lot", household=row.household_code,
                            lot=excerpt(row.lot_code))
                continue
            plan.households[household.id] = (row.quantity, row.village or household.village)
            plan.total += row.quantity or 0
            if plan.total > MAX_QUANTITY:
                sheet.error(row.row, "quantity", "lot_too_large", lot=excerpt(row.lot_code), limit=MAX_QUANTITY)
        plan.rows.append(row)
        if row.location in locations and row.quantity:
            plan.stock[locations[row.location]] += row.quantity
    return list(plans.values())


def _write(plans: list[_LotPlan], *, upload: InventoryUpload, report: Callable[[int, int], None]) -> int:
    """Create the lots, their contributions and their stock a table at a time, for `WRITE_ROWS` rows at a time and
    reporting progress after each (an import of thousands of lots holds SQLite's write lock for a few statements per
    `WRITE_ROWS` rows, not a few per lot); the number of lots created."""
    done = 0
    for chunk in _chunks(plans):
        lot_ids = dict(db.session.execute(insert(Lot).returning(Lot.lot_code, Lot.id), [
            {"supplier_id": upload.supplier_id, "product_id": plan.product.id, "lot_code": plan.code,
             "skeleton": code_skeleton(plan.code),
             "trace_code": code, "harvested_on": plan.first.harvested_on, "packed_on": plan.first.packed_on,
             "village": plan.first.village or next(iter(plan.households.values()))[1],
             "quantity": sum(qty for qty, _ in plan.households.values()), "created_by": upload.created_by}
            for plan, code in zip(chunk, new_trace_codes(len(chunk)), strict=True)]).all())
        db.session.execute(insert(LotContribution), [
            {"lot_id": lot_ids[plan.code], "household_id": household_id, "quantity": qty, "village": village}
            for plan in chunk for household_id, (qty, village) in plan.households.items()])
        db.session.execute(insert(Stock), [
            {"location_id": location_id, "lot_id": lot_ids[plan.code], "product_id": plan.product.id,
             "on_hand": quantity, "reserved": 0}
            for plan in chunk for location_id, quantity in sorted(plan.stock.items())])
        done += sum(len(plan.rows) for plan in chunk)
        report(done, upload.rows_total)
    return len(plans)


def _chunks(plans: list[_LotPlan]) -> Iterator[list[_LotPlan]]:
    """The plans in runs of whole lots of about `WRITE_ROWS` rows."""
    chunk: list[_LotPlan] = []
    rows = 0
    for plan in plans:
        chunk.append(plan)
        rows += len(plan.rows)
        if rows >= WRITE_ROWS:
            yield chunk
            chunk, rows = [], 0
    if chunk:
        yield chunk
