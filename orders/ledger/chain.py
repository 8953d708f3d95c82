"""Posting balanced transactions and linking them into the hash chain as the last step before commit.

`post` checks that the postings sum to zero, adds the transaction and its postings and flushes; `post_many`
does the same for a batch (ids reserved up front, rows written with COPY on PostgreSQL), keeping the postings
in memory for the link. The session's `before_commit` then links every transaction it posted (in id order):
their canonical JSON is built first; then it takes the one `ledger_chain_head` row FOR UPDATE, stamps them
`posted_at` (now, or the head transaction's posted_at if this host's clock is behind it), gives each transaction the
next `seq`, the head's hash as `prev_hash` and `hash = sha256(prev_hash + canonical JSON of its content and
postings)`, and moves the head. Only that short step is serialised, so workers attribute in parallel; the chain order
is the commit order, and `posted_at` never goes backwards against it, whatever the clocks of the hosts linking. (On
SQLite the transaction already holds the database's write lock by then.)

Statements, audit exports and payout cut-offs select by `posted_at`. A transaction is stamped under the head's lock,
which it holds until it commits, so `wait_for_linking` (waiting for that lock) makes every transaction posted before
now visible: a statement printed for a period that has ended never gains an entry later (DESIGN.md).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import event, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from orders.ledger.models import ChainHead, LedgerAccount, LedgerTransaction, Posting
from shop.db import among, db, utcnow

GENESIS_HASH = "0" * 64
POSTING_REFS = ("order_line_id", "allocation_id", "lot_id", "household_id")
_UNLINKED = "ledger_unlinked"
_STAGED = "ledger_staged_postings"
_INSERTS = {"postgresql": pg_insert, "sqlite": sqlite_insert}
_TRANSACTION_FIELDS = ("id", "kind", "outbox_event_id", "order_id", "order_line_id", "sale_date", "posted_at", "memo")
_POSTING_FIELDS = ("id", "transaction_id", "account_id", "amount_fen", "component", *POSTING_REFS)

PostingSpec = tuple  # (account or account id, amount_fen, component, {order_line_id/allocation_id/lot_id/household_id})


class UnbalancedTransaction(ValueError):
    """A transaction whose postings do not sum to zero: a defect in the caller, never posted."""


@dataclass
class NewTransaction:
    """A transaction for `post_many`: its postings are `(account id, account code, amount_fen, component,
    refs)` with refs as in `PostingSpec`."""

    kind: str
    postings: list[tuple[int, str, int, str, dict]]
    outbox_event_id: int | None = None
    order_id: int | None = None
    order_line_id: int | None = None
    sale_date: date | None = None
    memo: str = ""
    id: int | None = field(default=None, init=False)


def post(*, kind: str, postings: Sequence[PostingSpec], outbox_event_id: int | None = None,
         order_id: int | None = None, order_line_id: int | None = None, sale_date: date | None = None,
         memo: str = "") -> LedgerTransaction:
    """Add a balanced transaction and its postings (zero amounts are left out) and flush; it is linked into
    the chain just before the session commits."""
    rows = [_posting_row(spec) for spec in postings]
    total = sum(row["amount_fen"] for row in rows)
    if total != 0:
        raise UnbalancedTransaction(f"{kind} postings sum to {total} fen, not 0")
    transaction = LedgerTransaction(kind=kind, outbox_event_id=outbox_event_id, order_id=order_id,
                                    order_line_id=order_line_id, sale_date=sale_date, memo=memo)
    db.session.add(transaction)
    db.session.flush()
    rows = [dict(row, transaction_id=transaction.id) for row in rows if row["amount_fen"]]
    if rows:
        db.session.execute(insert(Posting), rows)
    db.session.info.setdefault(_UNLINKED, []).append(transaction.id)
    db.session.info.get(_STAGED, {}).pop(transaction.id, None)  # an id a rolled-back batch had (SQLite reuses ids)
    return transaction


def post_many(transactions: Sequence[NewTransaction]) -> list[int]:
    """Add many balanced transactions and their postings (zero amounts left out) in a few statements: ids
    reserved in one query, rows written with COPY on PostgreSQL (one INSERT each on SQLite). Each gets its
    `id`; the ids, in order. Linked into the chain just before the session commits, from the postings kept
    in memory."""
    for transaction in transactions:
        total = 0
        for posting in transaction.postings:
            if type(posting[2]) is not int:
                raise TypeError(f"a posting amount is int fen, not {type(posting[2]).__name__}")
            total += posting[2]
        if total != 0:
            raise UnbalancedTransaction(f"{transaction.kind} postings sum to {total} fen, not 0")
    postings = [[p for p in t.postings if p[2]] for t in transactions]
    transaction_ids, posting_ids = _reserve_ids(len(transactions), sum(map(len, postings)))
    posted_at = utcnow()
    transaction_rows, posting_rows, staged = [], [], db.session.info.setdefault(_STAGED, {})
    ids = iter(posting_ids)
    for transaction, own, transaction_id in zip(transactions, postings, transaction_ids, strict=True):
        transaction.id = transaction_id
        transaction_rows.append((transaction_id, transaction.kind, transaction.outbox_event_id, transaction.order_id,
                                 transaction.order_line_id, transaction.sale_date, posted_at, transaction.memo))
        hashed = []
        for account_id, code, amount, component, refs in own:
            posting_id = next(ids)
            row = (posting_id, transaction_id, account_id, amount, component, refs.get("order_line_id"),
                   refs.get("allocation_id"), refs.get("lot_id"), refs.get("household_id"))
            posting_rows.append(row)
            hashed.append({"id": posting_id, "account": code, "amount_fen": amount, "component": component,
                           "order_line_id": row[5], "allocation_id": row[6], "lot_id": row[7], "household_id": row[8]})
        staged[transaction_id] = hashed
    _write(LedgerTransaction.__table__, _TRANSACTION_FIELDS, transaction_rows)
    _write(Posting.__table__, _POSTING_FIELDS, posting_rows)
    db.session.info.setdefault(_UNLINKED, []).extend(transaction_ids)
    return transaction_ids


def _reserve_ids(transactions: int, postings: int) -> tuple[list[int], list[int]]:
    """Ids for that many new transactions and postings: from their sequences on PostgreSQL (one query); on
    SQLite, which has one writer at a time, after the largest ids (the write lock taken first)."""
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        row = session.execute(text(
            "SELECT ARRAY(SELECT nextval('ledger_transactions_id_seq') FROM generate_series(1, :t)), "
            "ARRAY(SELECT nextval('ledger_postings_id_seq') FROM generate_series(1, :p))"),
            {"t": transactions, "p": postings}).one()
        return sorted(row[0]), sorted(row[1])
    session.execute(text("UPDATE ledger_chain_head SET id = id WHERE id = 1"))
    first_transaction = (session.scalar(select(func.max(LedgerTransaction.id))) or 0) + 1
    first_posting = (session.scalar(select(func.max(Posting.id))) or 0) + 1
    return (list(range(first_transaction, first_transaction + transactions)),
            list(range(first_posting, first_posting + postings)))


def _write(table, columns: Sequence[str], rows: list[tuple]) -> None:
    """Insert `rows` (tuples of `columns`) into `table`: COPY on PostgreSQL, one executemany INSERT elsewhere."""
    if not rows:
        return
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        with connection.connection.driver_connection.cursor() as cursor, \
                cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    connection.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


def _posting_row(spec: PostingSpec) -> dict:
    """The column values of one posting spec `(account, amount_fen, component, refs)`."""
    account, amount, component, *rest = spec
    refs = rest[0] if rest else {}
    unknown = set(refs) - set(POSTING_REFS)
    if unknown:
        raise TypeError(f"unknown posting references: {', '.join(sorted(unknown))}")
    if type(amount) is not int:
        raise TypeError(f"a posting amount is int fen, not {type(amount).__name__}")
    account_id = account.id if isinstance(account, LedgerAccount) else account
    return {"account_id": account_id, "amount_fen": amount, "component": component,
            **{ref: refs.get(ref) for ref in POSTING_REFS}}



def canonical(transaction: dict, postings: Iterable[dict]) -> str:
    """The canonical JSON of a transaction's content (with its posted_at and seq) and its postings ordered by id:
    what is hashed."""
    head, tail = _halves(transaction, postings)
    return f"{head}{_moment(transaction['posted_at'])}{tail}{transaction['seq']}}}"


def _moment(posted_at: datetime) -> str:
    """A posting moment as the canonical JSON writes it: UTC, ISO 8601 with microseconds."""
    if posted_at.tzinfo is None:
        posted_at = posted_at.replace(tzinfo=UTC)
    return posted_at.astimezone(UTC).isoformat(timespec="microseconds")


def _halves(transaction: dict, postings: Iterable[dict]) -> tuple[str, str]:
    """The canonical JSON cut at its `posted_at` value: what comes before it, and what follows it up to the `seq`
    value, which comes last (keys are sorted, "seq" last). So the slow part is built before the chain head is locked
    and the moment and the seq are put in under the lock. (Every other quote in the JSON is escaped or a key's.)"""
    content = {
        "id": transaction["id"], "seq": 0, "kind": transaction["kind"],
        "outbox_event_id": transaction["outbox_event_id"], "order_id": transaction["order_id"],
        "order_line_id": transaction["order_line_id"],
        "sale_date": transaction["sale_date"].isoformat() if transaction["sale_date"] else None,
        "posted_at": "", "memo": transaction["memo"],
        "postings": [{"id": p["id"], "account": p["account"], "amount_fen": p["amount_fen"],
                      "component": p["component"], **{ref: p[ref] for ref in POSTING_REFS}}
                     for p in sorted(postings, key=lambda p: p["id"])],
    }
    body = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)[:-2]
    head, _key, tail = body.partition('"posted_at":""')
    return f'{head}"posted_at":"', f'"{tail}'


def chain_hash(prev_hash: str, canonical_json: str) -> str:
    """sha256(prev_hash + canonical JSON), hex."""
    return hashlib.sha256((prev_hash + canonical_json).encode("utf-8")).hexdigest()


TRANSACTION_COLUMNS = (LedgerTransaction.id, LedgerTransaction.seq, LedgerTransaction.kind,
                       LedgerTransaction.outbox_event_id, LedgerTransaction.order_id, LedgerTransaction.order_line_id,
                       LedgerTransaction.sale_date, LedgerTransaction.posted_at, LedgerTransaction.memo,
                       LedgerTransaction.prev_hash, LedgerTransaction.hash)
POSTING_COLUMNS = (Posting.id, Posting.transaction_id, LedgerAccount.code.label("account"), Posting.amount_fen,
                   Posting.component, Posting.order_line_id, Posting.allocation_id, Posting.lot_id,
                   Posting.household_id)


def load_postings(session: Session, transaction_ids: Sequence[int]) -> dict[int, list[dict]]:
    """Transaction id → its postings (as hashed: with the account code), ordered by id."""
    postings: dict[int, list[dict]] = {tid: [] for tid in transaction_ids}
    rows = session.execute(select(*POSTING_COLUMNS).join(LedgerAccount, LedgerAccount.id == Posting.account_id)
                           .where(among(Posting.transaction_id, transaction_ids)).order_by(Posting.id))
    for row in rows.mappings():
        postings[row["transaction_id"]].append(dict(row))
    return postings


def _lock_head(session: Session) -> tuple[int, str, datetime | None]:
    """The chain head row, locked until commit (created first if missing: tests truncate it): its seq, last hash and
    the posted_at of the transaction it points to."""
    locked = (select(ChainHead.seq, ChainHead.last_hash, LedgerTransaction.posted_at)
              .outerjoin(LedgerTransaction, LedgerTransaction.id == ChainHead.last_transaction_id)
              .where(ChainHead.id == 1).with_for_update(of=ChainHead))
    head = session.execute(locked).one_or_none()
    if head is None:
        insert_head = _INSERTS[session.get_bind().dialect.name](ChainHead)
        session.execute(insert_head.values(id=1, seq=0, last_hash=GENESIS_HASH).on_conflict_do_nothing(
            index_elements=["id"]))
        head = session.execute(locked).one()
    return head


def stamp(previous: datetime | None) -> datetime:
    """The posting time of transactions linked now after a head transaction posted at `previous`: this process's
    clock, but never earlier than `previous` (a host whose clock lags would otherwise date a later transaction into
    a period already printed)."""
    now = utcnow()
    return max(now, previous) if previous is not None else now


def link(session: Session, transaction_ids: Sequence[int]) -> int:
    """Link the still unlinked transactions among `transaction_ids` (in id order) to the chain; how many. Their
    canonical JSON is built (from the postings `post_many` kept, or loaded) before the head is locked."""
    staged = session.info.get(_STAGED, {})
    transactions = [dict(row) for row in session.execute(
        select(*TRANSACTION_COLUMNS)
        .where(among(LedgerTransaction.id, transaction_ids), LedgerTransaction.seq.is_(None))
        .order_by(LedgerTransaction.id)).mappings()]
    if not transactions:
        return 0
    unstaged = [t["id"] for t in transactions if t["id"] not in staged]
    loaded = load_postings(session, unstaged) if unstaged else {}
    bodies = [_halves(t, staged[t["id"]] if t["id"] in staged else loaded[t["id"]]) for t in transactions]
    seq, last_hash, previous = _lock_head(session)
    posted_at = stamp(previous)
    moment = _moment(posted_at)
    links = []
    for transaction, (head, tail) in zip(transactions, bodies, strict=True):
        seq += 1
        digest = chain_hash(last_hash, f"{head}{moment}{tail}{seq}}}")
        links.append({"id": transaction["id"], "seq": seq, "prev_hash": last_hash, "hash": digest})
        last_hash = digest
    _write_links(session, links, posted_at)
    session.execute(update(ChainHead).where(ChainHead.id == 1)
                    .values(seq=seq, last_hash=last_hash, last_transaction_id=links[-1]["id"]))
    return len(links)


def _write_links(session: Session, links: list[dict], posted_at: datetime) -> None:
    """Set the transactions' posted_at, seq, prev_hash and hash: one UPDATE from arrays on PostgreSQL, one per row
    elsewhere."""
    if session.get_bind().dialect.name != "postgresql":
        session.execute(update(LedgerTransaction), [dict(link, posted_at=posted_at) for link in links])
        return
    session.execute(text(
        "UPDATE ledger_transactions AS t SET posted_at = :posted_at, seq = l.seq, prev_hash = l.prev_hash, "
        "hash = l.hash "
        "FROM unnest(CAST(:ids AS integer[]), CAST(:seqs AS bigint[]), CAST(:prevs AS varchar[]), "
        "CAST(:hashes AS varchar[])) AS l (id, seq, prev_hash, hash) WHERE t.id = l.id"),
        {"posted_at": posted_at, "ids": [link["id"] for link in links], "seqs": [link["seq"] for link in links],
         "prevs": [link["prev_hash"] for link in links], "hashes": [link["hash"] for link in links]})


@event.listens_for(Session, "before_commit")
def _link_before_commit(session: Session) -> None:
    """The last step before a (top-level) commit: link the transactions this session posted."""
    if session.in_nested_transaction() or not session.info.get(_UNLINKED):
        return
    session.flush()
    try:
        link(session, session.info.pop(_UNLINKED))
    finally:
        session.info.pop(_STAGED, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_unlinked(session: Session, previous_transaction) -> None:
    """A rolled-back transaction's postings are gone: nothing to link."""
    if previous_transaction.parent is None:
        session.info.pop(_UNLINKED, None)
        session.info.pop(_STAGED, None)


def wait_for_linking() -> None:
    """Wait until the transactions being linked at this moment, by any process, have committed, so that every
    transaction posted before now is visible: on PostgreSQL for the chain head's row lock (FOR SHARE), on SQLite for
    the database's write lock, which a linking transaction holds from its first posting until it ends (BEGIN
    IMMEDIATE); each on a connection of its own, let go at once. A session already in a SQLite transaction holds
    that lock itself (its first write took it), so no one else is linking."""
    engine = db.session.get_bind()
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT 1 FROM ledger_chain_head WHERE id = 1 FOR SHARE"))
            connection.rollback()
        return
    if db.session.connection().connection.dbapi_connection.in_transaction:
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        connection.rollback()
