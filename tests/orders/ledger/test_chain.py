"""The chain: balanced posting, linking in commit order as the last step, accounts created once, parallel posting."""
from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from unittest.mock import patch

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from orders.ledger import accounts, chain
from orders.ledger.audit import list_transactions
from orders.ledger.models import ChainHead, LedgerAccount, LedgerTransaction, Posting
from orders.ledger.verify import verify_ledger
from shop.db import db, utcnow


def pay_in(amount: int, memo: str = "") -> LedgerTransaction:
    """A payment received and held unallocated: sandbox −amount, unallocated +amount."""
    return chain.post(kind="payment_unallocated", memo=memo,
                      postings=[(accounts.payments("sandbox"), -amount, "payment"),
                                (accounts.unallocated(), amount, "unallocated")])


def test_posted_transactions_are_linked_at_commit_in_order(app):
    first = pay_in(100)
    second = pay_in(250)
    assert first.seq is None  # linked only as the last step before commit
    db.session.commit()
    third = pay_in(7)
    db.session.commit()

    rows = db.session.execute(select(LedgerTransaction.id, LedgerTransaction.seq, LedgerTransaction.prev_hash,
                                     LedgerTransaction.hash).order_by(LedgerTransaction.seq)).all()
    assert [(r.id, r.seq) for r in rows] == [(first.id, 1), (second.id, 2), (third.id, 3)]
    assert rows[0].prev_hash == chain.GENESIS_HASH
    assert rows[1].prev_hash == rows[0].hash and rows[2].prev_hash == rows[1].hash
    head = db.session.get(ChainHead, 1)
    assert (head.seq, head.last_hash, head.last_transaction_id) == (3, rows[2].hash, third.id)
    assert verify_ledger() == {"ok": True, "transactions": 3, "balanced": True, "chain_intact": True,
                               "first_bad_id": None,
                               "accounts_intact": True, "first_bad_account": None,
                               "anchor_intact": None, "head_seq": 3, "head_hash": rows[2].hash}


def test_the_hash_covers_content_and_postings(app):
    transaction = pay_in(100, memo="收款")
    db.session.commit()
    row = db.session.execute(select(*chain.TRANSACTION_COLUMNS).where(LedgerTransaction.id == transaction.id)
                             ).mappings().one()
    postings = chain.load_postings(db.session, [transaction.id])[transaction.id]
    assert [(p["account"], p["amount_fen"]) for p in postings] == [("payments:sandbox", -100), ("unallocated", 100)]
    assert row["hash"] == chain.chain_hash(chain.GENESIS_HASH, chain.canonical(dict(row), postings))
    altered = [dict(postings[0], amount_fen=-101), postings[1]]
    assert row["hash"] != chain.chain_hash(chain.GENESIS_HASH, chain.canonical(dict(row), altered))


def test_an_unbalanced_transaction_is_refused_and_nothing_is_posted(app):
    with pytest.raises(chain.UnbalancedTransaction):
        chain.post(kind="payment_unallocated", postings=[(accounts.payments("sandbox"), -100, "payment"),
                                                         (accounts.unallocated(), 99, "unallocated")])
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == 0


def test_a_float_amount_is_refused(app):
    with pytest.raises(TypeError):
        chain.post(kind="payment_unallocated", postings=[(accounts.payments("sandbox"), -1.5, "payment"),
                                                         (accounts.unallocated(), 1.5, "unallocated")])


@pytest.mark.parametrize("statement", [
    "UPDATE ledger_postings SET amount_fen = amount_fen + 1 WHERE transaction_id = :t",
    "DELETE FROM ledger_postings WHERE transaction_id = :t",
    "INSERT INTO ledger_postings (transaction_id, account_id, amount_fen, component) "
    "SELECT transaction_id, account_id, amount_fen, component FROM ledger_postings WHERE transaction_id = :t",
    "UPDATE ledger_transactions SET memo = 'edited' WHERE id = :t",
    "UPDATE ledger_transactions SET hash = NULL, seq = NULL, prev_hash = NULL WHERE id = :t",
    "UPDATE ledger_accounts SET code = 'platform_moved' WHERE id = (SELECT max(account_id) FROM ledger_postings)",
    "UPDATE ledger_accounts SET household_id = 1 WHERE id = (SELECT max(account_id) FROM ledger_postings)",
    "DELETE FROM ledger_accounts WHERE id = (SELECT max(account_id) FROM ledger_postings)"])
def test_the_embedded_default_keeps_the_ledger_append_only_as_postgresql_does(app, statement):
    transaction = pay_in(100)
    db.session.commit()
    with pytest.raises(DBAPIError, match="append-only|no further postings"):
        db.session.execute(text(statement), {"t": transaction.id})
    db.session.rollback()
    assert verify_ledger()["ok"] is True


def test_zero_postings_are_left_out(app):
    transaction = chain.post(kind="line_paid", postings=[(accounts.payments("sandbox"), -100, "payment"),
                                                         (accounts.platform(), 0, "platform_fee"),
                                                         (accounts.unallocated(), 100, "unallocated")])
    db.session.commit()
    assert [p.amount_fen for p in db.session.get(LedgerTransaction, transaction.id).postings] == [-100, 100]


def test_a_rolled_back_transaction_is_not_linked_and_the_next_one_is(app):
    pay_in(100)
    db.session.rollback()
    kept = pay_in(5)
    db.session.commit()
    assert db.session.get(LedgerTransaction, kept.id).seq == 1
    assert verify_ledger()["ok"]


def test_a_savepoint_links_nothing_until_the_real_commit(app):
    with db.session.begin_nested():
        inner = pay_in(3)
    assert db.session.get(LedgerTransaction, inner.id).seq is None
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(LedgerTransaction, inner.id).seq == 1


def test_a_missing_chain_head_is_recreated(app):
    db.session.execute(ChainHead.__table__.delete())
    db.session.commit()
    pay_in(100)
    db.session.commit()
    assert db.session.get(ChainHead, 1).seq == 1


def test_an_account_is_created_once_with_its_party(app):
    first = accounts.payments("stripe")
    again = accounts.payments("stripe")
    assert first.id == again.id and first.kind == "payments"
    assert db.session.scalar(select(func.count()).select_from(LedgerAccount)
                             .where(LedgerAccount.code == "payments:stripe")) == 1
    with pytest.raises(TypeError):
        accounts.account("x", "platform", bank="nope")


def _post_in_threads(app, workers: int, each: int) -> None:
    """`workers` threads each commit `each` transactions, all starting together."""
    barrier = threading.Barrier(workers)
    errors = []

    def run(n):
        with app.app_context():
            try:
                barrier.wait()
                for i in range(each):
                    pay_in(n * 1000 + i + 1)
                    db.session.commit()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.mark.postgres
def test_parallel_posting_keeps_the_chain_intact(pg_app):
    _post_in_threads(pg_app, workers=6, each=10)
    seqs = db.session.scalars(select(LedgerTransaction.seq).order_by(LedgerTransaction.seq)).all()
    assert seqs == list(range(1, 61))
    assert verify_ledger() == {"ok": True, "transactions": 60, "balanced": True, "chain_intact": True,
                               "first_bad_id": None,
                               "accounts_intact": True, "first_bad_account": None,
                               "anchor_intact": None, "head_seq": 60,
                               "head_hash": db.session.get(ChainHead, 1).last_hash}
    assert db.session.scalar(select(func.count()).select_from(LedgerAccount)) == 2
    assert db.session.scalar(select(func.sum(Posting.amount_fen))) == 0


@pytest.mark.postgres
def test_the_chain_order_is_the_commit_order_and_so_is_the_posting_times_and_only_linking_waits(pg_app):
    accounts.payments("sandbox"), accounts.unallocated()  # the accounts exist (a first creation waits for its peer)
    db.session.commit()
    slow = _HeldOpen(pg_app)
    fast = pay_in(200)  # posted after the slow one (a higher id), not blocked by its open transaction
    db.session.commit()
    slow.release()
    assert slow.released == [True]  # the fast one committed while the slow one's transaction was still open
    rows = db.session.execute(select(LedgerTransaction.id, LedgerTransaction.seq, LedgerTransaction.posted_at)
                              .order_by(LedgerTransaction.seq)).all()
    assert [(row.id, row.seq) for row in rows] == [(fast.id, 1), (slow.ids[0], 2)]
    assert slow.ids[0] < fast.id
    assert rows[0].posted_at <= rows[1].posted_at  # stamped when linked: posted first, committed last, so later
    assert verify_ledger()["ok"]


def test_a_clock_behind_the_last_posting_never_stamps_a_later_transaction_earlier(racing_app):
    """A worker whose clock is an hour behind the one that linked the previous transaction (clock skew between
    hosts) stamps its transaction no earlier than that one: a statement printed for a period never gains an entry."""
    ahead = utcnow()
    for moment, amount in ((ahead, 100), (ahead - timedelta(hours=1), 200)):
        pay_in(amount)
        with patch.object(chain, "utcnow", return_value=moment):
            db.session.commit()

    rows = db.session.execute(select(LedgerTransaction.seq, LedgerTransaction.posted_at)
                              .order_by(LedgerTransaction.seq)).all()
    assert [row.seq for row in rows] == [1, 2]
    assert rows[0].posted_at == rows[1].posted_at == ahead
    assert list_transactions(to_date=None, limit=10, cursor=None)["items"][-1]["posted_at"] == ahead
    assert verify_ledger()["ok"]


def test_a_reader_by_posting_time_waits_for_a_transaction_being_linked_and_sees_it(racing_app):
    """A statement or an audit export read while a transaction is stamped but not yet committed would miss it, and a
    later reading of the same (ended) period would show it: the reader waits for that commit instead."""
    accounts.payments("sandbox"), accounts.unallocated()
    db.session.commit()
    linking, seen = _HeldOpen(racing_app, link=True), []
    reading = threading.Thread(target=lambda: seen.extend(_read_in(racing_app)))
    reading.start()
    reading.join(1)
    waited = reading.is_alive()
    linking.release()
    reading.join(30)
    assert waited  # it did not answer while the transaction stamped before it was uncommitted
    assert seen == linking.ids


@pytest.mark.postgres
def test_an_account_created_in_an_open_transaction_is_at_once_there_for_others(pg_app):
    created, release = threading.Event(), threading.Event()
    theirs = []

    def worker():
        with pg_app.app_context():
            try:
                theirs.append(accounts.payments("alipay").id)
                created.set()
                release.wait(10)
                db.session.rollback()  # its transaction never commits; the account stays
            finally:
                db.session.remove()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert created.wait(10)
        db.session.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting on the worker would fail here
        assert accounts.payments("alipay").id == theirs[0]
    finally:
        release.set()
        thread.join()
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(LedgerAccount)) == 1


@pytest.mark.postgres
def test_an_account_of_a_party_created_in_the_same_transaction(pg_app):
    from tests.suppliers.factories import SupplierFactory

    supplier = SupplierFactory()
    db.session.flush()  # not committed: the account is created in this transaction
    assert accounts.supplier(supplier.id).supplier_id == supplier.id
    db.session.commit()
    assert db.session.scalar(select(LedgerAccount.code).where(LedgerAccount.supplier_id == supplier.id)) == \
        f"supplier:{supplier.id}"


def test_a_transaction_linked_then_abandoned_keeps_no_reader_waiting(app):
    transaction_id = pay_in(100).id
    chain.link(db.session, [transaction_id])
    db.session.close()  # neither committed nor rolled back by name: the request ended
    answered = []
    reader = threading.Thread(target=lambda: answered.append(_read_in(app)))
    reader.start()
    reader.join(10)
    assert answered == [[]]


class _HeldOpen:
    """A transaction posted (and with `link`, stamped and linked) in a thread of its own, its commit held back until
    `release()`; `ids` holds its id once posted, `released` whether the release came in time."""

    def __init__(self, app, *, link: bool = False):
        self.ids, self.released, ready, self._go = [], [], threading.Event(), threading.Event()

        def hold() -> None:
            with app.app_context():
                try:
                    self.ids.append(pay_in(100).id)
                    if link:
                        chain.link(db.session, self.ids)
                    ready.set()
                    self.released.append(self._go.wait(30))
                    db.session.commit()
                finally:
                    db.session.remove()

        self._thread = threading.Thread(target=hold)
        self._thread.start()
        assert ready.wait(30)

    def release(self) -> None:
        """Let it commit, and wait until it has."""
        self._go.set()
        self._thread.join(30)


def _read_in(app) -> list[int]:
    """The ids of the transactions an audit export lists, read in a context (and session) of its own."""
    with app.app_context():
        try:
            return [t["id"] for t in list_transactions(limit=50, cursor=None)["items"]]
        finally:
            db.session.remove()


_LINKER = """
import sys
from tests.conftest import make_app
from tests.orders.ledger.test_chain import pay_in
from orders.ledger import chain
from shop.db import db
with make_app(sys.argv[1], DATABASE_URL=sys.argv[2]).app_context():
    transaction_id = pay_in(100).id
    chain.link(db.session, [transaction_id])
    print(transaction_id, flush=True)
    sys.stdin.readline()
    db.session.commit()
"""


def test_a_reader_waits_for_a_transaction_being_linked_by_another_process(app):
    """On SQLite a command (`flask …`) posting to the ledger is another process than the server: a reader by posting
    time waits for its stamped transaction's commit too, as for one of its own threads."""
    accounts.payments("sandbox"), accounts.unallocated()
    db.session.commit()
    linker = subprocess.Popen([sys.executable, "-c", _LINKER, app.instance_path,
                               app.config["SQLALCHEMY_DATABASE_URI"]], cwd=Path(__file__).parents[3],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        linked = [int(linker.stdout.readline())]
        seen = []
        reading = threading.Thread(target=lambda: seen.extend(_read_in(app)))
        reading.start()
        reading.join(1)
        waited = reading.is_alive()
        linker.communicate("\n", timeout=30)
        reading.join(30)
    finally:
        linker.kill()
    assert linker.returncode == 0
    assert waited  # it did not answer while the other process's stamped transaction was uncommitted
    assert seen == linked
