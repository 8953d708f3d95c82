"""Verification names the first altered transaction; the auditor's routes and the verify-ledger command."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, text

from catalog.models import Location, LotContribution
from orders.ledger import accounts, chain
from orders.ledger.models import ChainHead, LedgerTransaction
from orders.ledger.verify import verify_ledger
from shop.clock import today
from shop.db import db
from tests.catalog.factories import ProductFactory, make_lot
from tests.conftest import check_books
from tests.orders.factories import StoreFactory
from tests.orders.refunds.conftest import paid_order
from tests.suppliers.factories import BenefitLinkFactory, HouseholdFactory, SupplierFactory


def pay_in(amount: int, provider: str = "sandbox") -> int:
    """A committed payment held unallocated; its transaction id."""
    transaction = chain.post(kind="payment_unallocated",
                             postings=[(accounts.payments(provider), -amount, "payment"),
                                       (accounts.unallocated(), amount, "unallocated")])
    db.session.commit()
    return transaction.id


UNMARKED = SimpleNamespace(node=SimpleNamespace(get_closest_marker=lambda name: None))  # a test with no markers


def without_the_guards() -> None:
    """Drop SQLite's append-only triggers of the ledger, as anyone holding the database file could, to tamper with it
    (PostgreSQL's: `test_an_alteration_behind_the_triggers_back_is_named_on_postgres`)."""
    for (name,) in db.session.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                           "AND name LIKE 'ledger_%' AND sql LIKE '%append-only%'")).all():
        db.session.execute(text(f"DROP TRIGGER {name}"))


def bad(first_bad_id, *, balanced=True, chain_intact=False, transactions=3) -> dict:
    """The verification of a ledger with a bad transaction (without an anchor; the head it publishes left out)."""
    return {"ok": False, "transactions": transactions, "balanced": balanced, "chain_intact": chain_intact,
            "first_bad_id": first_bad_id, "accounts_intact": True, "first_bad_account": None, "anchor_intact": None}


def verified() -> dict:
    """`verify_ledger()` without the head it publishes."""
    return {key: value for key, value in verify_ledger().items() if key not in ("head_seq", "head_hash")}


@pytest.mark.no_books_check
def test_an_altered_posting_is_named(app):
    ids = [pay_in(100), pay_in(200), pay_in(300)]
    without_the_guards()
    db.session.execute(text("UPDATE ledger_postings SET amount_fen = 250 "
                            "WHERE transaction_id = :t AND amount_fen = 200"), {"t": ids[1]})
    db.session.commit()
    assert verified() == bad(ids[1], balanced=False)


@pytest.mark.no_books_check
@pytest.mark.parametrize("column", ["household_id", "supplier_id"])
def test_an_account_moved_to_another_household_or_supplier_is_named(app, column):
    household, other = HouseholdFactory(), HouseholdFactory()
    owed = accounts.household(household.id, household.registered_by_id)
    db.session.commit()
    new_owner = other.id if column == "household_id" else other.registered_by_id
    without_the_guards()
    db.session.execute(text(f"UPDATE ledger_accounts SET {column} = :o WHERE id = :a"), {"o": new_owner, "a": owed.id})
    db.session.commit()

    result = verify_ledger()

    assert (result["ok"], result["chain_intact"], result["accounts_intact"]) == (False, True, False)
    assert result["first_bad_account"] == owed.code


@pytest.mark.no_books_check
def test_postings_moved_between_accounts_keep_the_balance_but_break_the_chain(app):
    ids = [pay_in(100), pay_in(200), pay_in(300)]
    other = accounts.payments("stripe").id
    without_the_guards()
    db.session.execute(text("UPDATE ledger_postings SET account_id = :a WHERE transaction_id = :t AND amount_fen < 0"),
                       {"a": other, "t": ids[2]})
    db.session.commit()
    assert verified() == bad(ids[2])


@pytest.mark.no_books_check
def test_an_edited_memo_a_removed_transaction_and_a_removed_tail_are_named(app):
    ids = [pay_in(100), pay_in(200), pay_in(300)]
    without_the_guards()
    db.session.execute(text("UPDATE ledger_transactions SET memo = 'x' WHERE id = :t"), {"t": ids[0]})
    db.session.commit()
    assert verified() == bad(ids[0])

    db.session.execute(text("UPDATE ledger_transactions SET memo = '' WHERE id = :t"), {"t": ids[0]})
    db.session.execute(text("DELETE FROM ledger_postings WHERE transaction_id = :t"), {"t": ids[1]})
    db.session.execute(text("DELETE FROM ledger_transactions WHERE id = :t"), {"t": ids[1]})
    db.session.commit()
    assert verified() == bad(ids[2], transactions=2)  # its prev_hash no longer matches

    db.session.execute(text("UPDATE ledger_chain_head SET last_transaction_id = NULL"))
    db.session.execute(text("DELETE FROM ledger_postings WHERE transaction_id = :t"), {"t": ids[2]})
    db.session.execute(text("DELETE FROM ledger_transactions WHERE id = :t"), {"t": ids[2]})
    db.session.commit()
    result = verify_ledger()
    assert (result["ok"], result["chain_intact"], result["transactions"]) == (False, False, 1)


@pytest.mark.no_books_check
def test_a_transaction_slipped_in_unlinked_is_named(app):
    pay_in(100)
    db.session.execute(text("INSERT INTO ledger_transactions (kind, posted_at, memo) "
                            "VALUES ('payment_unallocated', '2026-11-26 00:00:00', '')"))
    slipped = db.session.scalar(text("SELECT max(id) FROM ledger_transactions"))
    db.session.commit()
    assert verified() == bad(slipped, transactions=2)


def test_a_transaction_committed_while_the_ledger_is_verified_is_no_break(racing_app):
    """The verification reads one snapshot of the ledger: a transaction linked and committed by another writer once
    the chain has been read (before the head is) neither shows up half-way nor makes the head look moved."""
    pay_in(100), pay_in(200)
    committed = []

    def post_once_read(done: int, total: int) -> None:
        if done == total and not committed:
            thread = threading.Thread(target=lambda: committed.append(_pay_in_apart(racing_app)))
            thread.start()
            thread.join(30)

    result = verify_ledger(progress=post_once_read)
    assert committed
    assert result["ok"], result
    assert result["transactions"] == 2
    assert verify_ledger()["transactions"] == 3


def _pay_in_apart(app) -> int:
    """`pay_in` in a context (and session) of its own."""
    with app.app_context():
        try:
            return pay_in(300)
        finally:
            db.session.remove()


@pytest.mark.no_books_check
def test_verify_ledger_command(app, runner):
    ids = [pay_in(100), pay_in(200)]
    result = runner.invoke(args=["verify-ledger"])
    assert result.exit_code == 0, result.output
    assert "2 transactions, balanced: yes, chain intact: yes" in result.output
    assert "verifying the ledger" in result.output  # its progress bar

    without_the_guards()
    db.session.execute(text("UPDATE ledger_postings SET amount_fen = 1 WHERE transaction_id = :t AND amount_fen > 0"),
                       {"t": ids[0]})
    db.session.commit()
    result = runner.invoke(args=["verify-ledger"])
    assert result.exit_code == 1
    assert "balanced: NO, chain intact: NO" in result.output
    assert f"first bad transaction: {ids[0]}" in result.output


@pytest.mark.no_books_check
def test_the_check_after_every_test_fails_on_a_damaged_ledger(app):
    first = pay_in(100)
    pay_in(200)
    check_books(UNMARKED)
    without_the_guards()
    db.session.execute(text("UPDATE ledger_postings SET amount_fen = amount_fen + 1 WHERE transaction_id = :t "
                            "AND amount_fen > 0"), {"t": first})
    db.session.commit()
    with pytest.raises(AssertionError, match=f"'balanced': False, 'chain_intact': False, 'first_bad_id': {first}"):
        check_books(UNMARKED)


@pytest.mark.no_books_check
def test_the_check_after_every_test_fails_on_a_paid_line_not_allocated_in_full(app):
    store = StoreFactory()
    product = ProductFactory(price_fen=1000)
    make_lot(product, db.session.get(Location, store.location_id), quantity=10)
    order = paid_order(location_id=store.location_id, lines=[(product, 2)], channel="counter", store=store)
    db.session.commit()
    check_books(UNMARKED)
    order.lines[0].allocations[0].state = "released"
    db.session.commit()
    with pytest.raises(AssertionError, match=f"allocations do not match .*\\({order.lines[0].id}, 'fulfilled', 2"):
        check_books(UNMARKED)


def test_verify_route_for_auditors_and_admins_only(app, client, login):
    pay_in(100)
    for role in ("auditor", "admin"):
        response = client.get("/api/v1/ledger/verify", headers=login(role))
        assert response.status_code == 200
        assert response.json == {"ok": True, "transactions": 1, "balanced": True, "chain_intact": True,
                                 "first_bad_id": None, "accounts_intact": True, "first_bad_account": None,
                                 "anchor_intact": None, "head_seq": 1,
                                 "head_hash": db.session.get(ChainHead, 1).last_hash}
    assert client.get("/api/v1/ledger/verify", headers=login("consumer")).status_code == 403
    assert client.get("/api/v1/ledger/verify").status_code == 401


def _posted_at(transaction_id: int, moment: datetime) -> None:
    """Move a transaction's posting time (its append-only guard set aside; the chain is not checked here)."""
    without_the_guards()
    db.session.execute(text("UPDATE ledger_transactions SET posted_at = :m WHERE id = :t"),
                       {"m": moment.strftime("%Y-%m-%d %H:%M:%S.%f"), "t": transaction_id})
    db.session.commit()


@pytest.mark.no_books_check  # moves posting times, which the chain's hashes cover
def test_transactions_by_account_and_shanghai_period(app, client, login):
    sandbox_early, stripe_one, sandbox_late = pay_in(100), pay_in(200, "stripe"), pay_in(300)
    _posted_at(sandbox_early, datetime(2026, 11, 24, 15, 59, 59))  # 23:59:59 on the 24th in Shanghai
    _posted_at(stripe_one, datetime(2026, 11, 24, 16, 0, 0))  # 00:00 on the 25th in Shanghai
    _posted_at(sandbox_late, datetime(2026, 11, 25, 15, 59, 59))
    headers = login("auditor")

    page = client.get("/api/v1/ledger/transactions?account=payments:sandbox", headers=headers).json
    assert [t["id"] for t in page["items"]] == [sandbox_early, sandbox_late]
    assert page["items"][0]["postings"][0] | {"id": 0} == {
        "id": 0, "account": "payments:sandbox", "account_kind": "payments", "amount_fen": -100,
        "component": "payment", "order_line_id": None, "allocation_id": None, "lot_id": None, "household_id": None}

    page = client.get("/api/v1/ledger/transactions?from=2026-11-25&to=2026-11-26", headers=headers).json
    assert [t["id"] for t in page["items"]] == [stripe_one, sandbox_late]
    page = client.get("/api/v1/ledger/transactions?account=unallocated&to=2026-11-25&limit=1", headers=headers).json
    assert [t["id"] for t in page["items"]] == [sandbox_early] and page["next_cursor"] is None
    page = client.get("/api/v1/ledger/transactions?limit=2", headers=headers).json
    assert len(page["items"]) == 2
    rest = client.get(f"/api/v1/ledger/transactions?limit=2&cursor={page['next_cursor']}", headers=headers).json
    assert [t["id"] for t in rest["items"]] == [sandbox_late]
    moved = client.get(f"/api/v1/ledger/transactions?limit=2&from=2026-11-26&cursor={page['next_cursor']}",
                       headers=headers)  # a cursor is good only with the filters it was issued under
    assert (moved.status_code, moved.json["error"]["code"]) == (400, "invalid_cursor")


def test_transaction_list_errors(app, client, login):
    headers = login("admin")
    response = client.get("/api/v1/ledger/transactions?account=supplier:999", headers=headers)
    assert (response.status_code, response.json["error"]["code"]) == (404, "account_not_found")
    response = client.get("/api/v1/ledger/transactions?from=2026-11-25&to=2026-11-25", headers=headers)
    assert (response.status_code, response.json["error"]["code"]) == (422, "validation_error")
    assert "to" in response.json["error"]["details"]
    response = client.get("/api/v1/ledger/transactions?from=yesterday", headers=headers)
    assert response.status_code == 422
    response = client.get("/api/v1/ledger/transactions?from=0001-01-01", headers=headers)  # no Shanghai midnight in UTC
    assert (response.status_code, list(response.json["error"]["details"])) == (422, ["from"])
    assert client.get("/api/v1/ledger/transactions", headers=login("consumer")).status_code == 403


def test_an_account_filter_is_an_ascii_account_code(app, client, login):
    """An account code is ASCII: a look-alike of payments:sandbox (a Cyrillic ѕ or а, a mathematical 𝐩) is a 422 on
    `account`, not another account; its full-width spelling is the code."""
    paid = pay_in(100)
    headers = login("auditor")

    for look_alike in ("payments:\u0455andbox", "p\u0430yments:sandbox", "\U0001d429ayments:sandbox"):
        response = client.get(f"/api/v1/ledger/transactions?account={look_alike}", headers=headers)
        assert (response.status_code, list(response.json["error"]["details"])) == (422, ["account"]), response.json
    wide = client.get("/api/v1/ledger/transactions?account=ｐａｙｍｅｎｔｓ：ｓａｎｄｂｏｘ", headers=headers)
    assert [t["id"] for t in wide.json["items"]] == [paid]


def test_one_attribution_with_everything_to_recompute_it(app, client, login):
    store = StoreFactory()
    coop = SupplierFactory()
    product = ProductFactory(supplier=coop, price_fen=1000)
    lot = make_lot(product, db.session.get(Location, store.location_id), quantity=10)
    first, second = HouseholdFactory(supplier=coop), HouseholdFactory(supplier=coop)
    db.session.add_all([LotContribution(lot_id=lot.id, household_id=first.id, quantity=6, village="测试村"),
                        LotContribution(lot_id=lot.id, household_id=second.id, quantity=4, village="测试村")])
    sale_day = today()  # the business date (Asia/Shanghai), which is the order's sale date
    BenefitLinkFactory(household=first, kind="dividend", shares=5, valid_from=sale_day - timedelta(days=1))
    BenefitLinkFactory(household=second, kind="dividend", shares=5, valid_from=sale_day + timedelta(days=1))
    order = paid_order(location_id=store.location_id, lines=[(product, 2)], channel="counter", store=store)
    line = order.lines[0]
    allocation = line.allocations[0]
    supplier = product.supplier_id
    transaction = chain.post(
        kind="line_paid", order_id=order.id, order_line_id=line.id, sale_date=order.sale_date,
        postings=[(accounts.payments("sandbox"), -2000, "payment", {"order_line_id": line.id}),
                  (accounts.platform(), 100, "platform_fee",
                   {"order_line_id": line.id, "allocation_id": allocation.id}),
                  (accounts.household(first.id, supplier), 120, "premium",
                   {"allocation_id": allocation.id, "lot_id": lot.id, "household_id": first.id}),
                  (accounts.household(second.id, supplier), 80, "premium",
                   {"allocation_id": allocation.id, "lot_id": lot.id, "household_id": second.id}),
                  (accounts.supplier(supplier), 1700, "supplier", {"allocation_id": allocation.id})])
    db.session.commit()

    response = client.get(f"/api/v1/ledger/transactions/{transaction.id}", headers=login("auditor"))
    assert response.status_code == 200
    body = response.json
    assert (body["seq"], body["kind"], body["order_line_id"]) == (1, "line_paid", line.id)
    assert sum(p["amount_fen"] for p in body["postings"]) == 0
    assert [p["account"] for p in body["postings"]][2] == f"household:{first.id}@supplier:{supplier}"
    attribution = body["attribution"]
    assert attribution["order"]["channel"] == "counter"
    assert attribution["line"] | {"id": 0, "sku": "", "name": ""} == {
        "id": 0, "sku": "", "name": "", "supplier_id": supplier, "quantity": 2, "refunded_quantity": 0,
        "unit_price_fen": 1000, "platform_fee_bp": 500, "store_commission_bp": 800, "household_premium_bp": 1000,
        "dividend_bp": 300}
    assert [(a["lot_id"], a["quantity"], a["refunded"]) for a in attribution["allocations"]] == [(lot.id, 2, 0)]
    assert attribution["lots"][0]["contributions"] == [
        {"household_id": first.id, "household_code": first.code, "county_code": "513431", "quantity": 6},
        {"household_id": second.id, "household_code": second.code, "county_code": "513431", "quantity": 4}]
    assert attribution["dividend_shares"] == [  # only the link valid on the sale date
        {"household_id": first.id, "household_code": first.code, "county_code": "513431", "shares": 5}]


def test_a_transaction_without_a_line_and_a_missing_one(app, client, login):
    transaction_id = pay_in(100)
    headers = login("admin")
    body = client.get(f"/api/v1/ledger/transactions/{transaction_id}", headers=headers).json
    assert body["attribution"] is None and body["hash"] == db.session.get(LedgerTransaction, transaction_id).hash
    response = client.get("/api/v1/ledger/transactions/999999", headers=headers)
    assert (response.status_code, response.json["error"]["code"]) == (404, "ledger_transaction_not_found")


@pytest.mark.no_books_check
@pytest.mark.postgres
def test_an_alteration_behind_the_triggers_back_is_named_on_postgres(pg_app):
    ids = [pay_in(100), pay_in(200), pay_in(300)]
    db.session.execute(text("SET LOCAL session_replication_role = replica"))  # a superuser disabling the triggers
    db.session.execute(text("UPDATE ledger_postings SET amount_fen = -amount_fen WHERE transaction_id = :t"),
                       {"t": ids[2]})
    db.session.commit()
    assert verified() == bad(ids[2])  # still balanced, the chain names it


def _rewrite_the_chain() -> None:
    """Rewrite every transaction's hashes from its (altered) content, in chain order, and move the head: what anyone
    holding the database could do to hide an alteration from a verification that has no anchor."""
    rows = [dict(row) for row in db.session.execute(
        select(*chain.TRANSACTION_COLUMNS).where(LedgerTransaction.seq.is_not(None))
        .order_by(LedgerTransaction.seq)).mappings()]
    postings = chain.load_postings(db.session, [row["id"] for row in rows])
    last_hash = chain.GENESIS_HASH
    for row in rows:
        digest = chain.chain_hash(last_hash, chain.canonical(row, postings[row["id"]]))
        db.session.execute(text("UPDATE ledger_transactions SET prev_hash = :p, hash = :h WHERE id = :t"),
                           {"p": last_hash, "h": digest, "t": row["id"]})
        last_hash = digest
    db.session.execute(text("UPDATE ledger_chain_head SET last_hash = :h"), {"h": last_hash})
    db.session.commit()


@pytest.mark.no_books_check
def test_a_chain_rewritten_in_full_passes_alone_but_fails_against_an_auditors_earlier_anchor(app, client, login):
    ids = [pay_in(100), pay_in(200), pay_in(300)]
    earlier = client.get("/api/v1/ledger/verify", headers=login("auditor")).json
    assert (earlier["ok"], earlier["head_seq"]) == (True, 3)
    anchor = {"expect_seq": 2, "expect_hash": db.session.get(LedgerTransaction, ids[1]).hash}
    assert client.get("/api/v1/ledger/verify", query_string=anchor, headers=login("auditor")).json["ok"] is True

    without_the_guards()
    db.session.execute(text("UPDATE ledger_postings SET amount_fen = amount_fen / 2 WHERE transaction_id = :t"),
                       {"t": ids[1]})
    _rewrite_the_chain()

    alone = client.get("/api/v1/ledger/verify", headers=login("auditor")).json
    assert (alone["ok"], alone["chain_intact"], alone["anchor_intact"]) == (True, True, None)
    assert alone["head_seq"] == 3 and alone["head_hash"] != earlier["head_hash"]
    anchored = client.get("/api/v1/ledger/verify", query_string=anchor, headers=login("auditor")).json
    assert (anchored["ok"], anchored["anchor_intact"], anchored["first_bad_id"]) == (False, False, ids[1])
    head = {"expect_seq": earlier["head_seq"], "expect_hash": earlier["head_hash"]}
    assert verify_ledger(expect=(head["expect_seq"], head["expect_hash"]))["anchor_intact"] is False


@pytest.mark.no_books_check
def test_an_anchor_past_the_chains_end_fails_and_a_malformed_one_is_a_422(app, client, login):
    ids = [pay_in(100), pay_in(200)]
    last = db.session.get(LedgerTransaction, ids[1]).hash
    past = client.get("/api/v1/ledger/verify", query_string={"expect_seq": 3, "expect_hash": last},
                      headers=login("admin")).json
    assert (past["ok"], past["chain_intact"], past["anchor_intact"]) == (False, True, False)
    wide = "".join(chr(ord(char) + 0xFEE0) for char in last.upper())  # full-width, upper case: the same hash
    typed = client.get("/api/v1/ledger/verify", query_string={"expect_seq": "２", "expect_hash": wide},
                       headers=login("admin")).json
    assert (typed["ok"], typed["anchor_intact"]) == (True, True)
    for query in ({"expect_seq": 2}, {"expect_hash": last}, {"expect_seq": 0, "expect_hash": last},
                  {"expect_seq": 2, "expect_hash": last[:-1]}, {"expect_seq": 2, "expect_hash": last[:-1] + "g"},
                  {"expect_seq": 10**30, "expect_hash": last}):
        response = client.get("/api/v1/ledger/verify", query_string=query, headers=login("admin"))
        assert response.status_code == 422, (query, response.json)


@pytest.mark.no_books_check
def test_verify_ledger_command_checks_an_anchor_and_prints_the_head(app, runner):
    ids = [pay_in(100), pay_in(200)]
    last = db.session.get(LedgerTransaction, ids[1]).hash
    result = runner.invoke(args=["verify-ledger"])
    assert f"head: seq 2, hash {last}" in result.output
    result = runner.invoke(args=["verify-ledger", "--expect-seq", "1", "--expect-hash", last])
    assert result.exit_code == 1
    assert "anchor: the entry at seq 1 does NOT have the expected hash" in result.output
    first = db.session.get(LedgerTransaction, ids[0]).hash
    result = runner.invoke(args=["verify-ledger", "--expect-seq", "1", "--expect-hash", first])
    assert result.exit_code == 0, result.output
    assert "anchor: the entry at seq 1 has the expected hash" in result.output
