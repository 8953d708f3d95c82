"""Posting balanced transactions and linking them into the hash chain as the last step before commit.

`post` checks that the postings sum to zero, adds the transaction and its postings and flushes; the
session's `before_commit` then links every transaction it posted (in id order): it takes the one
`ledger_chain_head` row FOR UPDATE, gives each transaction the next `seq`, the head's hash as
`prev_hash` and `hash = sha256(prev_hash + canonical JSON of its content and postings)`, and moves the
head. Only that short step is serialised, so workers attribute in parallel; the chain order is the
commit order. (On SQLite the transaction already holds the database's write lock by then.)
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date

from sqlalchemy import event, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from orders.ledger.models import ChainHead, LedgerAccount, LedgerTransaction, Posting
from shop.db import db

GENESIS_HASH = "0" * 64
POSTING_REFS = ("order_line_id", "allocation_id", "lot_id", "household_id")
_UNLINKED = "ledger_unlinked"
_INSERTS = {"postgresql": pg_insert, "sqlite": sqlite_insert}

PostingSpec = tuple  # (account or account id, amount_fen, component, {order_line_id/allocation_id/lot_id/household_id})


class UnbalancedTransaction(ValueError):
    """A transaction whose postings do not sum to zero: a defect in the caller, never posted."""


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
    return transaction


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
    """The canonical JSON of a transaction's content (with its seq) and its postings ordered by id: what is hashed."""
    posted_at = transaction["posted_at"]
    if posted_at.tzinfo is None:
        posted_at = posted_at.replace(tzinfo=UTC)
    content = {
        "id": transaction["id"], "seq": transaction["seq"], "kind": transaction["kind"],
        "outbox_event_id": transaction["outbox_event_id"], "order_id": transaction["order_id"],
        "order_line_id": transaction["order_line_id"],
        "sale_date": transaction["sale_date"].isoformat() if transaction["sale_date"] else None,
        "posted_at": posted_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "memo": transaction["memo"],
        "postings": [{"id": p["id"], "account": p["account"], "amount_fen": p["amount_fen"],
                      "component": p["component"], **{ref: p[ref] for ref in POSTING_REFS}}
                     for p in sorted(postings, key=lambda p: p["id"])],
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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
                           .where(Posting.transaction_id.in_(transaction_ids)).order_by(Posting.id))
    for row in rows.mappings():
        postings[row["transaction_id"]].append(dict(row))
    return postings


def _lock_head(session: Session) -> tuple[int, str]:
    """The chain head row, created if missing (tests truncate it), locked until commit."""
    insert_head = _INSERTS[session.get_bind().dialect.name](ChainHead)
    session.execute(insert_head.values(id=1, seq=0, last_hash=GENESIS_HASH).on_conflict_do_nothing(
        index_elements=["id"]))
    return session.execute(select(ChainHead.seq, ChainHead.last_hash).where(ChainHead.id == 1)
                           .with_for_update()).one()


def link(session: Session, transaction_ids: Sequence[int]) -> int:
    """Link the still unlinked transactions among `transaction_ids` (in id order) to the chain; how many."""
    transactions = [dict(row) for row in session.execute(
        select(*TRANSACTION_COLUMNS).where(LedgerTransaction.id.in_(transaction_ids), LedgerTransaction.seq.is_(None))
        .order_by(LedgerTransaction.id)).mappings()]
    if not transactions:
        return 0
    postings = load_postings(session, [t["id"] for t in transactions])
    seq, last_hash = _lock_head(session)
    links = []
    for transaction in transactions:
        seq += 1
        transaction["seq"] = seq
        digest = chain_hash(last_hash, canonical(transaction, postings[transaction["id"]]))
        links.append({"id": transaction["id"], "seq": seq, "prev_hash": last_hash, "hash": digest})
        last_hash = digest
    session.execute(update(LedgerTransaction), links)
    session.execute(update(ChainHead).where(ChainHead.id == 1)
                    .values(seq=seq, last_hash=last_hash, last_transaction_id=links[-1]["id"]))
    return len(links)


@event.listens_for(Session, "before_commit")
def _link_before_commit(session: Session) -> None:
    """The last step before a (top-level) commit: link the transactions this session posted."""
    if session.in_nested_transaction() or not session.info.get(_UNLINKED):
        return
    session.flush()
    link(session, session.info.pop(_UNLINKED))


@event.listens_for(Session, "after_soft_rollback")
def _forget_unlinked(session: Session, previous_transaction) -> None:
    """A rolled-back transaction's postings are gone: nothing to link."""
    if previous_transaction.parent is None:
        session.info.pop(_UNLINKED, None)

