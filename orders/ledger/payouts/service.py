"""Payout batches (DESIGN.md, "Balances may go negative"): request, build, show, settle, export.

A batch "until D" pays each payee min(its balance over postings made before D's Asia/Shanghai midnight, its
current balance) when that is positive: a refund posted after D still reduces it, and a negative balance is
carried (nothing is paid) and netted against later earnings. Payouts and bank returns count before D whenever
posted (they settle what was earned before); so does a store's remittance posted after D, but only as far as it
hands over cash the store held at D (the oldest cash is handed over first): cash taken after D and remitted with
it never makes commission earned after D payable. Payees are a household's account at the batch's
supplier (`household:<hid>@supplier:<sid>`: each co-op pays what its own lots and shares earned), a supplier's
account, or a store. A store keeps its commission out of the counter cash it holds (its statement's "to
remit"), so its payable balance is its commission account netted with its cash account (`store_cash:<id>`,
negative while it holds cash); the payout is taken off the cash account as far as that is positive (cash the store
paid out of its own, a refund after it remitted the sale's cash: reimbursed), the rest off the commission account,
and a failed line gives back to each account what was taken off it.

Building is one transaction: it locks the payees' ledger accounts (FOR NO KEY UPDATE in id order, so
attribution still posts to them, but a second batch for the same payees waits), then reads their balances, so
two batches built at once never pay one balance twice (the second sees the first's clearing postings). Every
payable line's amount moves from the payee's account to `payouts_clearing` in one ledger transaction. A payee
with no bank account is listed as unpayable, with the reason, and keeps its balance.

A batch with nothing to pay is never made: a request takes the same locks, refuses (409 `payout_batch_in_progress`)
while a batch for the same payees is queued or being built (its build will move their balances), and refuses (409
`nothing_to_pay`, nothing written) when no payee with a bank account is owed anything up to the cut-off. A build
that finds nothing left to pay after all (a refund posted since the request) writes no line and fails, saying so.

Settling: pending → paid posts clearing → `payments:bank` (the platform's bank account that executes the batch
transfer; as on the providers' accounts, money leaving the platform is positive there); pending → failed posts
clearing → the payee; paid → failed (a bank return) posts `payments:bank` → the payee. The same status again
changes nothing; any other transition is a 409.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import case, func, or_, select, update

from orders.ledger import accounts, chain
from orders.ledger.errors import LedgerCode
from orders.ledger.models import LedgerAccount, LedgerTransaction, Posting
from orders.ledger.payouts import bank_file
from orders.ledger.payouts.models import LINE_STATUSES, PayoutBatch, PayoutDownload, PayoutLine
from orders.models import Store
from orders.outbox import sale_date_of
from shop.auth.models import User
from shop.caching import cache_delete, cache_get, cache_set
from shop.clock import shanghai_midnight
from shop.db import after_commit, among, db, lock_on_sqlite, lock_row, utcnow
from shop.errors import Conflict, Forbidden, NotFound, ValidationError
from shop.pagination import paginate, paginate_committed, recorded_in, scope_of
from suppliers.identifiers import mask_bank_account
from suppliers.models import Household, RevealAudit, Supplier

log = logging.getLogger(__name__)

STALE_CLAIM = timedelta(minutes=15)
LINES_SHOWN = 100  # a batch's lines shown with it (the API's largest page); the rest through its lines list
LINES_LIST = "payouts.list_lines"  # the endpoint of a batch's lines list, where its first lines go on
REQUEUE_AFTER = timedelta(seconds=60)
SWEEP_BATCH = 20
PROGRESS_EVERY = 200
NO_BANK_ACCOUNT = "No bank account on file: the balance stays with the payee."
NOTHING_LEFT = "Nothing to pay: no payee with a bank account was owed anything when the batch was built."
# (from, to) line transitions a settlement may make; the same status again is a no-op
TRANSITIONS = {("pending", "paid"), ("pending", "failed"), ("paid", "failed")}
BATCH_KEYS = "payout_batches"  # the Idempotency-Key scope of batch requests, shared by the admins who alone make them
BANK_FILE_ROLES = ("admin", "coop")  # the roles that may see full account numbers in the bank file
PAYEE_KINDS = {"household": ("household",), "supplier": ("supplier",), "store": ("store", "store_cash")}
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Settlement:
    """A line's new status, and for a failed line why (the bank's return reason), if given."""

    line_id: int
    status: str
    reason: str | None = None


@dataclass
class _Payee:
    """A party to pay: its id, the account a payout is taken off, and the accounts its balance nets."""

    party_id: int
    account_id: int | None
    netted: list[int]


def _progress_key(batch_id: int) -> str:
    """The cache key holding a building batch's live progress."""
    return f"payout-batch-progress:{batch_id}"


def _not_found(batch_id: int) -> NotFound:
    """The answer for a batch that does not exist or lies outside the caller's scope."""
    return NotFound(f"No payout batch {batch_id}.", code=LedgerCode.PAYOUT_BATCH_NOT_FOUND)


def _in_scope(batch: PayoutBatch | None, actor: User) -> bool:
    """Admins and auditors see every batch; a co-op its own suppliers' household batches."""
    return batch is not None and (actor.supplier_id is None
                                  or (batch.party == "household" and batch.supplier_id == actor.supplier_id))


# --- requesting and building ------------------------------------------------------------------------------


def request_batch(*, actor: User, party: str, until: date, supplier_id: int | None = None) -> PayoutBatch:
    """Queue a batch paying `party` (households: those of `supplier_id`) up to `until`; its task builds it
    after commit. The cut-off may be at most tomorrow (everything posted so far today); a 409 while a batch for
    the same payees is being built, or when there is nothing to pay (the module's docstring)."""
    if supplier_id is not None and db.session.get(Supplier, supplier_id) is None:
        raise ValidationError("No such supplier.", details={"supplier_id": [f"No supplier {supplier_id}."]})
    latest = sale_date_of(utcnow()) + timedelta(days=1)
    if until > latest:
        raise ValidationError("The cut-off lies in the future.",
                              details={"until": [f"Must be {latest.isoformat()} or earlier."]})
    lock_on_sqlite("UPDATE ledger_chain_head SET id = id WHERE id = 1")
    payees = _payees(party=party, supplier_id=supplier_id)
    _refuse_while_building(party=party, supplier_id=supplier_id)
    due = _due(payees, _balances(party=party, supplier_id=supplier_id, until=until))
    banked = _banked(party, list(due))
    if not banked:
        raise Conflict("Nothing to pay: no payee with a bank account is owed anything up to the cut-off.",
                       code=LedgerCode.NOTHING_TO_PAY,
                       details={"unpayable_payees": len(due), "unpayable_fen": sum(due.values())})
    batch = PayoutBatch(party=party, supplier_id=supplier_id, until=until, status="queued", created_by=actor.id,
                        queued_at=utcnow())
    db.session.add(batch)
    db.session.flush()
    after_commit(lambda batch_id=batch.id: _queue_build(batch_id))
    return batch


def _refuse_while_building(*, party: str, supplier_id: int | None) -> None:
    """409 while a batch for the same payees is queued or being built: its build moves the balances a new batch
    would read (the caller holds the payees' locks, so a batch requested meanwhile is committed and seen)."""
    building = db.session.scalar(select(PayoutBatch.id).where(
        PayoutBatch.party == party, PayoutBatch.supplier_id.is_(None) if supplier_id is None
        else PayoutBatch.supplier_id == supplier_id, PayoutBatch.status.in_(("queued", "building")))
        .order_by(PayoutBatch.id).limit(1))
    if building is not None:
        raise Conflict(f"Payout batch {building} for the same payees is being built: wait until it is ready.",
                       code=LedgerCode.PAYOUT_BATCH_IN_PROGRESS, details={"batch_id": building})


def _queue_build(batch_id: int) -> None:
    """Send the build task (after the batch row is committed)."""
    from orders.ledger.payouts.tasks import build_payout_batch

    build_payout_batch.delay(batch_id)


def _claimable(now):
    """The SQL condition: a batch is waiting to be built, or its build's claim went stale."""
    return or_(PayoutBatch.status == "queued",
               (PayoutBatch.status == "building") & (PayoutBatch.claimed_at < now - STALE_CLAIM))


def claim_batch(batch_id: int) -> bool:
    """Mark a batch as building (a stale claim is taken over); False if it is built or being built. The caller
    commits the claim on its own, before the build."""
    now = utcnow()
    return bool(db.session.execute(
        update(PayoutBatch).where(PayoutBatch.id == batch_id, _claimable(now))
        .values(status="building", claimed_at=now, progress_done=0, progress_total=0)).rowcount)


def requeue_stuck_batches() -> int:
    """Sweeper: re-queue batches whose task was lost (queued past a minute, or building under a stale claim),
    each at most once a minute; how many. The caller commits."""
    now = utcnow()
    stuck = db.session.scalars(
        select(PayoutBatch.id).where(_claimable(now), PayoutBatch.queued_at < now - REQUEUE_AFTER)
        .order_by(PayoutBatch.id).limit(SWEEP_BATCH).with_for_update(skip_locked=True)).all()
    for batch_id in stuck:
        db.session.execute(update(PayoutBatch).where(PayoutBatch.id == batch_id).values(queued_at=now))
        after_commit(lambda batch_id=batch_id: _queue_build(batch_id))
    if stuck:
        log.warning("re-queued %d stuck payout batches", len(stuck))
    return len(stuck)


def fail_batch(batch_id: int, message: str) -> None:
    """Mark a batch failed after an unexpected error (in a fresh transaction); nothing of it was posted."""
    batch = db.session.get(PayoutBatch, batch_id)
    if batch is not None and batch.status in ("queued", "building"):
        batch.status, batch.failure_reason, batch.built_at = "failed", message, utcnow()
    cache_delete(_progress_key(batch_id))


def _payees(*, party: str, supplier_id: int | None) -> list[_Payee]:
    """A batch's candidate payees, their ledger accounts locked (FOR NO KEY UPDATE, in id order)."""
    kinds = PAYEE_KINDS[party]
    query = select(LedgerAccount.id, LedgerAccount.kind, LedgerAccount.household_id, LedgerAccount.supplier_id,
                   LedgerAccount.store_id).where(LedgerAccount.kind.in_(kinds))
    if party == "household":
        query = query.where(LedgerAccount.supplier_id == supplier_id)
    payees: dict[int, _Payee] = {}
    for row in db.session.execute(query.order_by(LedgerAccount.id).with_for_update(key_share=True)):
        party_id = {"household": row.household_id, "supplier": row.supplier_id, "store": row.store_id}[party]
        payee = payees.setdefault(party_id, _Payee(party_id, None, []))
        payee.netted.append(row.id)
        if row.kind == party:
            payee.account_id = row.id
    return [payees[party_id] for party_id in sorted(payees)]


# move a balance already earned (a payout, a bank return): count before any cut-off
SETTLING_KINDS = ("payout", "payout_failed")
REMITTANCE_KIND = "store_remittance"  # counts before the cut-off as far as it hands over cash held then (`_payable`)


@dataclass(frozen=True)
class _Balance:
    """An account's balance now, before the cut-off, and what store remittances posted after the cut-off moved."""

    current: int = 0
    before: int = 0
    remitted_later: int = 0


def _balances(*, party: str, supplier_id: int | None, until: date) -> dict[int, _Balance]:
    """Account id → its `_Balance` for a batch's accounts. The balance before the cut-off is what was earned before
    it net of every payout (and bank return) whenever posted: a payout made after the cut-off paid what was earned
    before it, so a second batch with the same cut-off pays only what is still owed from then, never what was earned
    since. Store remittances posted after the cut-off are kept apart (`_payable` counts the cash held at the cut-off
    they hand over)."""
    chain.wait_for_linking()
    cutoff = shanghai_midnight(until)
    before = or_(LedgerTransaction.posted_at < cutoff, LedgerTransaction.kind.in_(SETTLING_KINDS))
    later_remittance = (LedgerTransaction.posted_at >= cutoff) & (LedgerTransaction.kind == REMITTANCE_KIND)
    query = (select(Posting.account_id, func.sum(Posting.amount_fen),
                    func.sum(case((before, Posting.amount_fen), else_=0)),
                    func.sum(case((later_remittance, Posting.amount_fen), else_=0)))
             .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
             .join(LedgerAccount, LedgerAccount.id == Posting.account_id)
             .where(LedgerAccount.kind.in_(PAYEE_KINDS[party])).group_by(Posting.account_id))
    if party == "household":
        query = query.where(LedgerAccount.supplier_id == supplier_id)
    return {account_id: _Balance(int(current), int(before), int(later))
            for account_id, current, before, later in db.session.execute(query)}


PAYEE_MODELS = {"household": Household, "supplier": Supplier, "store": Store}


def _parties(batch: PayoutBatch, party_ids: list[int]) -> dict[int, tuple[str, str | None]]:
    """Party id → (payee name, decrypted bank account or None) for the payees to pay."""
    model = PAYEE_MODELS[batch.party]
    rows = db.session.scalars(select(model).where(among(model.id, party_ids))) if party_ids else []
    return {row.id: (row.head_name if model is Household else row.name, row.bank_account) for row in rows}


def _banked(party: str, party_ids: list[int]) -> list[int]:
    """The ids among `party_ids` of the payees with a bank account on file (nothing decrypted)."""
    model = PAYEE_MODELS[party]
    return list(db.session.scalars(select(model.id).where(among(model.id, party_ids),
                                                          model.bank_account_enc.is_not(None)))) if party_ids else []


def _payable(payee: _Payee, balances: dict[int, _Balance]) -> int:
    """What the cut-off rule pays the payee: the lesser of its balance before the cut-off and now (its accounts
    netted); not positive means nothing. A store's remittances posted after the cut-off count before it up to the
    cash it held at the cut-off (their net on its two accounts is the cash handed over)."""
    own = [balances.get(account_id, _Balance()) for account_id in payee.netted]
    current = sum(balance.current for balance in own)
    before = sum(balance.before for balance in own)
    remitted_later = sum(balance.remitted_later for balance in own)
    if remitted_later > 0:
        held = -sum(balances.get(account_id, _Balance()).before for account_id in payee.netted
                    if account_id != payee.account_id)  # the cash accounts: negative while the store holds cash
        before += min(remitted_later, max(held, 0))
    return min(current, before)


def _due(payees: list[_Payee], balances: dict[int, _Balance]) -> dict[int, int]:
    """Party id → what the cut-off rule pays it, for the payees owed something."""
    return {payee.party_id: amount for payee in payees if (amount := _payable(payee, balances)) > 0}


def _line(batch: PayoutBatch, payee: _Payee, amount: int, name: str, bank_account: str | None) -> PayoutLine:
    """A payee's line: pending with its bank account, or unpayable without one."""
    account_id = payee.account_id or accounts.store(payee.party_id).id  # a store with cash but no commission yet
    line = PayoutLine(batch_id=batch.id, account_id=account_id, payee_name=name, amount_fen=amount,
                      **{f"{batch.party}_id": payee.party_id})
    if bank_account is None:
        line.status, line.reason = "unpayable", NO_BANK_ACCOUNT
    else:
        line.status, line.bank_account = "pending", bank_account
        line.bank_account_masked = mask_bank_account(bank_account)
    return line


def build_batch(batch_id: int, *, progress: Progress | None = None) -> PayoutBatch | None:
    """Build a claimed batch in the current transaction: its lines, and one ledger transaction moving every
    payable amount to payouts clearing; with nothing to pay, no line and the batch failed. The batch row is locked
    first (FOR UPDATE), so a build that took over a stale claim while the first still runs waits for it and finds
    the batch built. The caller commits."""
    batch = lock_row(PayoutBatch, batch_id)
    if batch is None or batch.status != "building":
        return batch
    payees = _payees(party=batch.party, supplier_id=batch.supplier_id)
    balances = _balances(party=batch.party, supplier_id=batch.supplier_id, until=batch.until)

    def report(done: int) -> None:
        cache_set(_progress_key(batch_id), (done, len(payees)), timeout=3600)
        if progress is not None:
            progress(done, len(payees))

    report(0)
    lines: list[PayoutLine] = []
    postings: list[tuple] = []
    for start in range(0, len(payees), PROGRESS_EVERY):
        chunk = payees[start:start + PROGRESS_EVERY]
        due = [(payee, amount) for payee in chunk if (amount := _payable(payee, balances)) > 0]
        parties = _parties(batch, [payee.party_id for payee, _amount in due])
        for payee, amount in due:
            line = _line(batch, payee, amount, *parties[payee.party_id])
            lines.append(line)
            if line.status == "pending":
                postings += _taken_off(line, payee, balances)
        report(start + len(chunk))
    batch.progress_done = batch.progress_total = len(payees)
    if not postings:
        batch.status, batch.failure_reason, batch.built_at = "failed", NOTHING_LEFT, utcnow()
        db.session.flush()
        cache_delete(_progress_key(batch_id))
        return batch
    db.session.add_all(lines)
    total = -sum(amount for _account, amount, _component, _refs in postings)
    postings.append((accounts.payouts_clearing(), total, "payout", {}))
    batch.transaction_id = chain.post(kind="payout", postings=postings, memo=_memo(batch)).id
    batch.status, batch.total_fen, batch.built_at = "ready", total, utcnow()
    db.session.flush()
    cache_delete(_progress_key(batch_id))
    return batch


def _taken_off(line: PayoutLine, payee: _Payee, balances: dict[int, _Balance]) -> list[tuple]:
    """The postings taking a pending line's amount off its payee: a store's first off its cash account as far as
    that is positive (cash it paid out of its own, e.g. a refund after it remitted the sale's cash: reimbursed, so
    that the account again holds just the cash the store must remit), the rest off its commission account; any other
    payee's off its account."""
    postings, left = [], line.amount_fen
    for account_id in payee.netted:
        take = min(left, max(balances.get(account_id, _Balance()).current, 0)) if account_id != line.account_id else 0
        if take > 0:
            postings.append((account_id, -take, "payout", _refs(line)))
            left -= take
    if left:
        postings.append((line.account_id, -left, "payout", _refs(line)))
    return postings


def _given_back(batch: PayoutBatch, lines: list[PayoutLine]) -> dict[int, list[tuple[int, int]]]:
    """Line id → the (account id, fen) a failed line gives back to its payee: what the batch's build took off each of
    its accounts (a store's cash and commission accounts, `_taken_off`), else its amount to its account."""
    taken: dict[int, list[tuple[int, int]]] = {}
    stores = [line.store_id for line in lines if line.store_id]
    if stores:
        for store_id, account_id, fen in db.session.execute(
                select(LedgerAccount.store_id, Posting.account_id, Posting.amount_fen)
                .join(LedgerAccount, LedgerAccount.id == Posting.account_id)
                .where(Posting.transaction_id == batch.transaction_id, among(LedgerAccount.store_id, stores),
                       LedgerAccount.kind.in_(PAYEE_KINDS["store"])).order_by(Posting.id)):
            taken.setdefault(store_id, []).append((account_id, -fen))
    result = {}
    for line in lines:
        moved = taken.get(line.store_id) if line.store_id else None
        ok = moved is not None and sum(fen for _account, fen in moved) == line.amount_fen
        result[line.id] = moved if ok else [(line.account_id, line.amount_fen)]
    return result


def _refs(line: PayoutLine) -> dict:
    """The posting references of a line's payee (a household's postings name the household)."""
    return {"household_id": line.household_id} if line.household_id else {}


def _memo(batch: PayoutBatch) -> str:
    """The build transaction's memo: which batch, which payees, which cut-off."""
    whose = f"households of supplier {batch.supplier_id}" if batch.party == "household" else f"{batch.party}s"
    return f"payout batch {batch.id}: {whose}, balances until {batch.until.isoformat()}"


# --- reading ---------------------------------------------------------------------------------------------


def _current_accounts(batch: PayoutBatch, lines: list[PayoutLine]) -> dict[int, str | None]:
    """Payee id → its bank account now, for the payees of these lines of the batch (one query)."""
    model = {"household": Household, "supplier": Supplier, "store": Store}[batch.party]
    ids = [getattr(line, f"{batch.party}_id") for line in lines]
    return {row.id: row.bank_account for row in db.session.scalars(select(model).where(among(model.id, ids)))} if ids \
        else {}


def _mark_account_changes(batch: PayoutBatch, lines: list[PayoutLine]) -> list[PayoutLine]:
    """Mark each of the batch's `lines` with `account_changed`: its payee's bank account is no longer the one the
    line snapshotted at the build (changed or removed since; a line built unpayable, an account added since). The
    marked lines."""
    current = _current_accounts(batch, lines)
    for line in lines:
        line.account_changed = current.get(getattr(line, f"{batch.party}_id")) != line.bank_account
    return [line for line in lines if line.account_changed]


def _mark_shared_accounts(batch: PayoutBatch, lines: list[PayoutLine]) -> None:
    """Mark each of the batch's `lines` with `shared_account`: its household's bank account (by keyed hash) is held by
    another household too, of any co-op, active or not (one stored before such registrations were refused, or kept
    by a deactivated household that is still paid its balance), so two households may be paid into one account. Only
    a yes: never which household. Supplier and store lines are never marked."""
    households = [line.household_id for line in lines] if batch.party == "household" else []
    hashes = dict(db.session.execute(
        select(Household.id, Household.bank_account_hash).where(among(Household.id, households),
                                                                Household.bank_account_hash.is_not(None))).all()) \
        if households else {}
    shared = set(db.session.scalars(
        select(Household.bank_account_hash).where(among(Household.bank_account_hash, set(hashes.values())))
        .group_by(Household.bank_account_hash).having(func.count() > 1))) if hashes else set()
    for line in lines:
        line.shared_account = hashes.get(line.household_id) in shared


def _line_sums(batch_id: int) -> tuple[dict[str, int], dict[str, int]]:
    """The batch's lines counted and summed by status (every status, 0 when it has none)."""
    counts, totals = dict.fromkeys(LINE_STATUSES, 0), dict.fromkeys(LINE_STATUSES, 0)
    for status, count, fen in db.session.execute(
            select(PayoutLine.status, func.count(), func.sum(PayoutLine.amount_fen))
            .where(PayoutLine.batch_id == batch_id).group_by(PayoutLine.status)):
        counts[status], totals[status] = count, int(fen)
    return counts, totals


def _lines_page(batch: PayoutBatch, *, status: str | None, limit: int, cursor: str | None,
                next_on: dict | None = None) -> dict:
    """A page of the batch's lines by id (of one `status` if given), each marked with `account_changed`; its cursor
    for the list `next_on` names if given. (Its build writes all of a batch's lines in one transaction, so id order
    is their commit order.)"""
    query = select(PayoutLine).where(PayoutLine.batch_id == batch.id)
    if status:
        query = query.where(PayoutLine.status == status)
    page = paginate(query, keys=[PayoutLine.id], limit=limit, cursor=cursor,
                    filters={"batch_id": batch.id, "status": status}, next_on=next_on)
    _mark_account_changes(batch, page["items"])
    _mark_shared_accounts(batch, page["items"])
    return page


def _shown(batch: PayoutBatch, *, with_lines: bool) -> dict:
    """A batch as the API shows it (live progress while it builds); when asked, its first LINES_SHOWN lines (whether
    their payee's account changed since the build) with the cursor of the rest, and all its lines counted and summed
    by status."""
    shown = {name: getattr(batch, name) for name in (
        "id", "party", "supplier_id", "until", "status", "total_fen", "failure_reason", "transaction_id", "created_by",
        "created_at", "built_at")}
    done, total = batch.progress_done, batch.progress_total
    if batch.status == "building":
        done, total = cache_get(_progress_key(batch.id)) or (done, total)
    shown["progress"] = {"done": done, "total": total}
    if with_lines:
        page = _lines_page(batch, status=None, limit=LINES_SHOWN, cursor=None,
                           next_on=scope_of(LINES_LIST, batch_id=batch.id))
        counts, totals = _line_sums(batch.id)
        shown["lines"], shown["lines_next_cursor"] = page["items"], page["next_cursor"]
        shown["line_counts"], shown["totals"] = counts, {f"{status}_fen": fen for status, fen in totals.items()}
    return shown


def show_batch(*, batch_id: int, actor: User) -> dict:
    """A batch in the actor's scope with its progress, line counts and totals, and its first lines (masked
    accounts)."""
    return _shown(batch_in_scope(batch_id, actor), with_lines=True)


def list_lines(*, batch_id: int, actor: User, status: str | None = None, limit: int, cursor: str | None,
               next_on: dict | None = None) -> dict:
    """A page of the lines (masked accounts) of a batch in the actor's scope, by id, of one `status` if given; its
    cursor for the list `next_on` names if given (`shop.pagination.scope_of`)."""
    return _lines_page(batch_in_scope(batch_id, actor), status=status, limit=limit, cursor=cursor, next_on=next_on)


def batch_in_scope(batch_id: int, actor: User) -> PayoutBatch:
    """The batch, if it is in the actor's scope; else not found."""
    batch = db.session.get(PayoutBatch, batch_id)
    if not _in_scope(batch, actor):
        raise _not_found(batch_id)
    return batch


def list_batches(*, actor: User, party: str | None = None, status: str | None = None,
                 supplier_id: int | None = None, limit: int, cursor: str | None) -> dict:
    """A page of batches (a co-op: its own household batches), newest first, without their lines."""
    query = select(PayoutBatch)
    if actor.supplier_id is not None:
        query = query.where(PayoutBatch.party == "household", PayoutBatch.supplier_id == actor.supplier_id)
    if party:
        query = query.where(PayoutBatch.party == party)
    if status:
        query = query.where(PayoutBatch.status == status)
    if supplier_id is not None:
        query = query.where(PayoutBatch.supplier_id == supplier_id)
    page = paginate_committed(query, model=PayoutBatch, limit=limit, cursor=cursor, newest_first=True)
    return {"items": [_shown(batch, with_lines=False) for batch in page["items"]], "next_cursor": page["next_cursor"]}


# --- settling --------------------------------------------------------------------------------------------


def settle_lines(*, batch_id: int, settlements: list[Settlement], actor: User) -> dict:
    """Settle lines of a ready batch as paid or failed, posting the moves (one ledger transaction for the paid
    lines, one for the failed) and recording who settled them, when and (a failure) why; all or nothing."""
    batch = lock_row(PayoutBatch, batch_id)
    if batch is None:
        raise _not_found(batch_id)
    if batch.status != "ready":
        raise Conflict(f"Payout batch {batch_id} is {batch.status}, not ready to settle.",
                       code=LedgerCode.PAYOUT_BATCH_NOT_READY)
    ids = [s.line_id for s in settlements]
    if len(set(ids)) != len(ids):
        raise ValidationError("A line may be settled once per request.",
                              details={"lines": [f"Line {i} appears more than once." for i in sorted(set(ids))
                                                 if ids.count(i) > 1]})
    lines = {line.id: line for line in db.session.scalars(
        select(PayoutLine).where(PayoutLine.batch_id == batch_id, among(PayoutLine.id, ids)).with_for_update()
        .execution_options(populate_existing=True))}
    unknown = [i for i in ids if i not in lines]
    if unknown:
        raise ValidationError("These lines are not in the batch.", code=LedgerCode.PAYOUT_LINE_NOT_FOUND,
                              details={"lines": [f"No line {i} in batch {batch_id}." for i in unknown]})
    moves = [(lines[s.line_id], s) for s in settlements if lines[s.line_id].status != s.status]
    illegal = [{"line_id": line.id, "from": line.status, "to": s.status} for line, s in moves
               if (line.status, s.status) not in TRANSITIONS]
    if illegal:
        raise Conflict("A line cannot move to that status.", code=LedgerCode.ILLEGAL_PAYOUT_TRANSITION,
                       details={"lines": illegal})
    _post_moves(batch, moves, actor)
    db.session.flush()
    return _shown(batch, with_lines=True)


def _post_moves(batch: PayoutBatch, moves: list[tuple[PayoutLine, Settlement]], actor: User) -> None:
    """Post the ledger moves of the lines' transitions and record them on the lines, with who made them (a bank
    return keeps the line's paid time and payer)."""
    clearing, bank = accounts.payouts_clearing(), accounts.bank()
    paid = [(line, s) for line, s in moves if s.status == "paid"]
    failed = [(line, s) for line, s in moves if s.status == "failed"]
    now = utcnow()
    if paid:
        postings = [posting for line, _s in paid for posting in (
            (clearing, -line.amount_fen, "payout", _refs(line)), (bank, line.amount_fen, "payout", _refs(line)))]
        transaction = chain.post(kind="payout", postings=postings,
                                 memo=f"payout batch {batch.id}: lines {_ids(paid)} paid")
        for line, _s in paid:
            line.status, line.paid_transaction_id, line.settled_at = "paid", transaction.id, now
            line.paid_at, line.paid_by = now, actor.id
    if failed:
        back = _given_back(batch, [line for line, _s in failed])
        postings = [posting for line, _s in failed for posting in (
            (bank if line.status == "paid" else clearing, -line.amount_fen, "payout", _refs(line)),
            *((account_id, fen, "payout", _refs(line)) for account_id, fen in back[line.id]))]
        transaction = chain.post(kind="payout_failed", postings=postings,
                                 memo=f"payout batch {batch.id}: lines {_ids(failed)} failed, back to the payees")
        for line, s in failed:
            line.status, line.failed_transaction_id, line.settled_at = "failed", transaction.id, now
            line.failed_at, line.failed_by, line.reason = now, actor.id, s.reason


def _ids(moves: list[tuple[PayoutLine, Settlement]]) -> str:
    """The moved lines' ids for a memo (bounded: a memo holds 200 characters)."""
    text = ", ".join(str(line.id) for line, _s in moves)
    return text if len(text) <= 120 else f"{text[:110]}… ({len(moves)} lines)"


# --- the bank file ---------------------------------------------------------------------------------------


BANK_FILE_FORMATS = {
    "csv": (bank_file.render, "text/csv"),
    "xlsx": (bank_file.render_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}


@dataclass(frozen=True)
class BankFile:
    """A batch's bank file: its name, media type and bytes."""

    filename: str
    mimetype: str
    content: bytes


def export_bank_file(*, batch_id: int, actor: User, reason: str, output: str = "csv") -> BankFile:
    """The bank's batch-transfer file of a ready batch as CSV or XLSX (the lines still to transfer, full account
    numbers); the download is recorded, and each payee's account counts as revealed (the reveal audit). Only admins
    and the batch's co-op download it: an auditor reads the batch masked, as every personal datum (403). While a
    pending line's payee has changed its account since the build, there is no file (409 `payee_account_changed`
    with the line ids): it would pay the old account."""
    if actor.role not in BANK_FILE_ROLES:
        raise Forbidden("Only admins and the batch's co-op download the bank file (full account numbers).",
                        code=LedgerCode.BANK_FILE_FORBIDDEN)
    batch = db.session.get(PayoutBatch, batch_id)
    if not _in_scope(batch, actor):
        raise _not_found(batch_id)
    if batch.status != "ready":
        raise Conflict(f"Payout batch {batch_id} is {batch.status}: it has no bank file yet.",
                       code=LedgerCode.PAYOUT_BATCH_NOT_READY)
    lines = list(db.session.scalars(select(PayoutLine).where(PayoutLine.batch_id == batch.id,
                                                             PayoutLine.status == "pending").order_by(PayoutLine.id)))
    stale = [line.id for line in _mark_account_changes(batch, lines)]
    if stale:
        raise Conflict("The bank account of these lines' payees changed after the batch was built: settle them as "
                       "failed (the next batch pays the new account), then download the file.",
                       code=LedgerCode.PAYEE_ACCOUNT_CHANGED, details={"line_ids": stale})
    rows = [bank_file.BankRow(line.payee_name, line.bank_account, line.amount_fen,
                              bank_file.reference(batch.id, line.id)) for line in lines]
    db.session.add(PayoutDownload(batch_id=batch.id, user_id=actor.id, lines=len(lines),
                                  total_fen=sum(line.amount_fen for line in lines), reason=reason))
    audit_reason = f"payout batch {batch.id} bank file: {reason}"
    db.session.add_all([RevealAudit(user_id=actor.id, household_id=line.household_id, supplier_id=line.supplier_id,
                                    store_id=line.store_id, fields="bank_account", reason=audit_reason)
                        for line in lines])
    db.session.flush()
    render, mimetype = BANK_FILE_FORMATS[output]
    return BankFile(f"payout-batch-{batch.id}.{output}", mimetype, render(rows, party=batch.party))


def list_downloads(*, batch_id: int | None = None, user_id: int | None = None, from_date: date | None = None,
                   to_date: date | None = None, limit: int, cursor: str | None) -> dict:
    """A page of the bank-file downloads made in [from_date, to_date), oldest first."""
    query = select(PayoutDownload).where(*recorded_in(PayoutDownload.created_at, from_date=from_date, to_date=to_date))
    if batch_id is not None:
        query = query.where(PayoutDownload.batch_id == batch_id)
    if user_id is not None:
        query = query.where(PayoutDownload.user_id == user_id)
    return paginate_committed(query, model=PayoutDownload, limit=limit, cursor=cursor,
                    filters={"batch_id": batch_id, "user_id": user_id, "from": from_date, "to": to_date})
