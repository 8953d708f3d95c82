"""Verifying the ledger as an auditor would: every transaction balanced, the chain unbroken and unaltered.

Walks the linked transactions by `seq` in batches: each must have the next seq, its predecessor's hash as
`prev_hash`, the hash of its stored content and postings, and postings summing to zero; the chain head must
name the last one. A transaction never linked is a break too. `first_bad_id` names the first bad
transaction in chain order (then the first unlinked one).
"""
from __future__ import annotations

from sqlalchemy import func, select

from orders.ledger.chain import GENESIS_HASH, TRANSACTION_COLUMNS, canonical, chain_hash, load_postings
from orders.ledger.models import ChainHead, LedgerTransaction, Posting
from shop.db import db

BATCH = 2000


def verify_ledger() -> dict:
    """`{ok, transactions, balanced, chain_intact, first_bad_id}` over the whole ledger."""
    balanced, intact, first_bad = True, True, None
    count, expected_seq, last_hash, last_id = 0, 1, GENESIS_HASH, None
    while True:
        rows = [dict(row) for row in db.session.execute(
            select(*TRANSACTION_COLUMNS).where(LedgerTransaction.seq > expected_seq - 1)
            .order_by(LedgerTransaction.seq).limit(BATCH)).mappings()]
        if not rows:
            break
        postings = load_postings(db.session, [row["id"] for row in rows])
        for row in rows:
            count += 1
            own = postings[row["id"]]
            sums_to_zero = sum(p["amount_fen"] for p in own) == 0
            linked = (row["seq"] == expected_seq and row["prev_hash"] == last_hash
                      and row["hash"] == chain_hash(last_hash, canonical(row, own)))
            balanced = balanced and sums_to_zero
            intact = intact and linked
            if first_bad is None and not (sums_to_zero and linked):
                first_bad = row["id"]
            expected_seq, last_hash, last_id = row["seq"] + 1, row["hash"] or "", row["id"]
    head = db.session.execute(select(ChainHead.seq, ChainHead.last_hash, ChainHead.last_transaction_id)
                              .where(ChainHead.id == 1)).one_or_none()
    if head is not None and (head.seq, head.last_hash) != (expected_seq - 1, last_hash):
        intact = False  # transactions after the last one found were removed (or the head was moved)
        first_bad = first_bad if first_bad is not None else head.last_transaction_id or last_id
    unlinked = db.session.execute(select(func.count(), func.min(LedgerTransaction.id))
                                  .where(LedgerTransaction.seq.is_(None))).one()
    if unlinked[0]:
        intact = False
        count += unlinked[0]
        first_bad = first_bad if first_bad is not None else unlinked[1]
        unbalanced = db.session.scalar(
            select(func.count()).select_from(
                select(Posting.transaction_id).join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
                .where(LedgerTransaction.seq.is_(None)).group_by(Posting.transaction_id)
                .having(func.sum(Posting.amount_fen) != 0).subquery()))
        balanced = balanced and not unbalanced
    return {"ok": balanced and intact, "transactions": count, "balanced": balanced, "chain_intact": intact,
            "first_bad_id": first_bad}
