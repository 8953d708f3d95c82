"""The auditor's view of one transaction: what the transaction itself did, and only refunds that succeeded."""
from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from orders import outbox
from orders.ledger.models import LedgerTransaction
from orders.models import OrderLine, OutboxEvent
from shop.clock import today
from shop.db import db, utcnow
from tests.orders.ledger.test_attribution import make_world, pay_pickup
from tests.orders.ledger.test_triggers import _one_row_each
from tests.orders.refunds.conftest import StubProvider


def test_a_refund_transaction_shows_the_units_it_reversed_and_a_pending_refund_counts_nowhere(
        client, login, monkeypatch):
    world = make_world(today=outbox.sale_date_of(utcnow()))
    order_id = pay_pickup(client, world, 3)  # lot 1: 2 units, then lot 2: 1 unit
    line_id = db.session.scalar(select(OrderLine.id).where(OrderLine.order_id == order_id))
    admin = login("admin")
    for key in ("r1", "r2"):  # lot 2's unit first, then one of lot 1's
        refunded = client.post(f"/api/v1/orders/{order_id}/refunds", headers={**admin, "Idempotency-Key": key},
                               json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "坏了"})
        assert refunded.status_code == 201, refunded.json
    monkeypatch.setattr("orders.refunds.service.get_provider", lambda: StubProvider(status="pending"))
    pending = client.post(f"/api/v1/orders/{order_id}/refunds", headers={**admin, "Idempotency-Key": "r3"},
                          json={"lines": [{"line_id": line_id, "quantity": 1}], "reason": "全退"})
    assert pending.status_code == 202 and pending.json["status"] == "pending", pending.json
    paid_id, first_id, second_id = db.session.scalars(select(LedgerTransaction.id).where(
        LedgerTransaction.order_line_id == line_id).order_by(LedgerTransaction.seq)).all()

    auditor = login("auditor")
    paid = client.get(f"/api/v1/ledger/transactions/{paid_id}", headers=auditor).json["attribution"]
    first, second = (client.get(f"/api/v1/ledger/transactions/{tid}", headers=auditor).json["attribution"]
                     for tid in (first_id, second_id))

    for attribution in (paid, first, second):  # the pending unit is still sold as far as the ledger knows
        assert attribution["line"]["refunded_quantity"] == 2
        assert [(a["lot_id"], a["quantity"], a["refunded"]) for a in attribution["allocations"]] == [
            (world["lot1"].id, 2, 1), (world["lot2"].id, 1, 1)]
    assert [a["units"] for a in paid["allocations"]] == [2, 1]
    assert [a["refunded_before"] for a in paid["allocations"]] == [0, 0]
    assert [(a["units"], a["refunded_before"]) for a in first["allocations"]] == [(0, 0), (1, 0)]
    assert [(a["units"], a["refunded_before"]) for a in second["allocations"]] == [(1, 0), (0, 1)]


def test_a_refund_the_ledger_has_not_reversed_yet_counts_nowhere(client, login):
    """A succeeded refund whose `line_refunded` event the ledger has not applied yet (the outbox behind) is not shown
    as refunded: the transaction view counts what the ledger reversed."""
    world = make_world(today=outbox.sale_date_of(utcnow()))
    order_id = pay_pickup(client, world, 3)
    line = db.session.scalar(select(OrderLine).where(OrderLine.order_id == order_id))
    allocation = line.allocations[-1]
    db.session.add(OutboxEvent(kind="line_refunded", order_id=order_id, order_line_id=line.id, amount_fen=1250,
                               payload={"quantity": 1, "allocations": [{"allocation_id": allocation.id,
                                                                        "quantity": 1}]},
                               occurred_at=utcnow(), sale_date=outbox.sale_date_of(utcnow())))
    db.session.commit()
    paid_id = db.session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.order_line_id == line.id))

    attribution = client.get(f"/api/v1/ledger/transactions/{paid_id}", headers=login("auditor")).json["attribution"]

    assert attribution["line"]["refunded_quantity"] == 0
    assert [a["refunded"] for a in attribution["allocations"]] == [0, 0]


def _posted(memo: str) -> int:
    """Post a one-fen transaction between two platform accounts (its memo names it); its id, uncommitted."""
    from orders.ledger import accounts, chain

    return chain.post(kind="processor_fee", memo=memo,
                      postings=[(accounts.platform(), 1, "fee"), (accounts.payments("sandbox"), -1, "payment")]).id


@pytest.mark.postgres
def test_an_auditor_walking_the_transactions_while_they_are_posted_misses_none(pg_app):
    """Workers post in parallel, so a transaction may commit after one with a larger id: an auditor who walks the
    list page by page meanwhile must still meet it on a later page (the list follows the chain's commit order)."""
    from orders.ledger.models import ChainHead
    from tests.orders.ledger.test_reports import admin_headers
    from tests.parallel import second_while_first_uncommitted

    client = pg_app.test_client()
    headers = admin_headers("auditor")
    _posted("t0")
    db.session.commit()
    url = "/api/v1/ledger/transactions?limit=1"

    def first():
        _posted("late")  # its id is taken now, its commit comes after the two below

    def second():
        _posted("t2")
        db.session.commit()
        _posted("t3")
        db.session.commit()
        page = client.get(url, headers=headers).json
        seen = [t["memo"] for t in page["items"]]
        page = client.get(f"{url}&cursor={page['next_cursor']}", headers=headers).json
        return seen + [t["memo"] for t in page["items"]], page["next_cursor"]

    seen, cursor = second_while_first_uncommitted(pg_app, first, second)
    assert db.session.scalar(select(ChainHead.seq)) == 4
    while cursor:
        page = client.get(f"{url}&cursor={cursor}", headers=headers).json
        seen += [t["memo"] for t in page["items"]]
        cursor = page["next_cursor"]

    assert sorted(seen) == ["late", "t0", "t2", "t3"]


@pytest.mark.parametrize("table", ["reveal_audits", "payout_downloads", "bank_account_changes",
                                   "store_account_changes", "user_changes", "store_remittances"])
@pytest.mark.parametrize("statement", ["UPDATE {table} SET created_at = '2026-01-01 00:00:00'",
                                       "UPDATE {table} SET commit_seq = commit_seq + 1000", "DELETE FROM {table}"])
def test_the_embedded_default_keeps_the_audits_append_only_as_postgresql_does(app, table, statement):
    from orders.ledger import accounts, remittances
    from tests.factories import UserFactory
    from tests.orders.factories import StoreFactory
    from tests.orders.ledger.payout_factories import earn

    _one_row_each()
    store, admin = StoreFactory(), UserFactory(role="admin")
    db.session.commit()
    earn(accounts.store_cash(store.id), -5000)
    remittances.record_remittance(store_id=store.id, actor=admin, amount_fen=100, received_on=today(),
                                  reference="DEP-1")
    db.session.commit()
    assert db.session.scalar(text(f"SELECT count(*) FROM {table} WHERE commit_seq IS NULL")) == 0  # numbered once
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(text(statement.format(table=table)))
    db.session.rollback()
    assert db.session.scalar(text(f"SELECT count(*) FROM {table}")) >= 1
