"""Payout batches: the cut-off rule, carried negative balances, unpayable households, per-supplier household
batches, store netting, settlement postings, the task's progress; the ledger balanced and its chain intact
after each."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from orders.ledger import accounts
from orders.ledger.models import LedgerTransaction
from orders.ledger.payouts import service
from orders.ledger.payouts.models import PayoutBatch, PayoutLine
from orders.ledger.payouts.tasks import run_build
from orders.ledger.verify import verify_ledger
from shop.db import db, utcnow
from tests.orders.factories import StoreFactory
from tests.orders.ledger.payout_factories import (
    balance,
    built_batch,
    days_ago,
    earn,
    payee_household,
    queued_batch,
    today,
)
from tests.suppliers.factories import SupplierFactory, make_bank_account


def code(household, supplier) -> str:
    """The household's account at the supplier."""
    return f"household:{household.id}@supplier:{supplier.id}"


def amounts(batch: PayoutBatch) -> dict[int, tuple[int, str]]:
    """Payee id → (amount, status) of the batch's lines."""
    return {line.household_id or line.supplier_id or line.store_id: (line.amount_fen, line.status)
            for line in batch.lines}


def assert_ledger_ok() -> None:
    """Every transaction balanced, the chain unbroken."""
    assert verify_ledger()["ok"] is True


def test_a_batch_pays_the_lesser_of_the_balance_before_the_cut_off_and_now(app):
    supplier = SupplierFactory()
    early, late = payee_household(supplier), payee_household(supplier)
    earn(accounts.household(early.id, supplier.id), 1000, on=days_ago(2))
    earn(accounts.household(early.id, supplier.id), 500)          # after the cut-off: not in this batch
    earn(accounts.household(early.id, supplier.id), -700)         # a refund after the cut-off still reduces it
    earn(accounts.household(late.id, supplier.id), 900)           # only after the cut-off: nothing yet

    batch = built_batch(party="household", supplier_id=supplier.id, until=today())

    assert batch.status == "ready"
    assert amounts(batch) == {early.id: (800, "pending")}         # min(1000 before, 800 now)
    assert batch.total_fen == 800
    assert balance(code(early, supplier)) == 0 and balance(code(late, supplier)) == 900
    assert balance("payouts_clearing") == 800
    build = db.session.get(LedgerTransaction, batch.transaction_id)
    assert (build.kind, sorted(p.amount_fen for p in build.postings)) == ("payout", [-800, 800])
    assert_ledger_ok()

    tomorrow = built_batch(party="household", supplier_id=supplier.id, until=today() + timedelta(days=1))

    assert amounts(tomorrow) == {late.id: (900, "pending")}       # the early household has nothing left
    assert balance("payouts_clearing") == 1700
    assert_ledger_ok()


def test_a_second_batch_with_the_same_cut_off_pays_only_what_is_still_owed_from_before_it(app):
    supplier = SupplierFactory()
    paid, waiting = payee_household(supplier), payee_household(supplier, bank_account=False)
    earn(accounts.household(paid.id, supplier.id), 1000, on=days_ago(2))
    earn(accounts.household(waiting.id, supplier.id), 400, on=days_ago(2))
    first = built_batch(party="household", supplier_id=supplier.id, until=today())
    earn(accounts.household(paid.id, supplier.id), 600)            # earned after the cut-off
    earn(accounts.household(waiting.id, supplier.id), 250)         # likewise
    waiting.bank_account = make_bank_account()                     # the co-op has its account now
    db.session.commit()

    again = built_batch(party="household", supplier_id=supplier.id, until=today())

    assert amounts(first) == {paid.id: (1000, "pending"), waiting.id: (400, "unpayable")}
    assert amounts(again) == {waiting.id: (400, "pending")}        # not the 600 nor the 250 earned since
    assert balance(code(paid, supplier)) == 600 and balance(code(waiting, supplier)) == 250
    assert balance("payouts_clearing") == 1400
    assert_ledger_ok()


def test_a_negative_balance_is_carried_and_netted_in_the_next_batch(app):
    supplier = SupplierFactory()
    household = payee_household(supplier)
    account = accounts.household(household.id, supplier.id)
    earn(account, 500, on=days_ago(3))
    first = built_batch(party="household", supplier_id=supplier.id, until=days_ago(1))
    earn(account, -300)                                            # a refund after the payout

    carried = built_batch(party="household", supplier_id=supplier.id, until=today() + timedelta(days=1))

    assert amounts(first) == {household.id: (500, "pending")}
    assert (carried.status, carried.lines, carried.total_fen, carried.transaction_id) == ("failed", [], 0, None)
    assert "Nothing to pay" in carried.failure_reason
    assert balance(account.code) == -300

    earn(account, 1000)
    netted = built_batch(party="household", supplier_id=supplier.id, until=today() + timedelta(days=1))

    assert amounts(netted) == {household.id: (700, "pending")}
    assert balance(account.code) == 0
    assert_ledger_ok()


def test_a_household_without_a_bank_account_is_listed_unpayable_and_keeps_its_balance(app):
    supplier = SupplierFactory()
    paid, unpayable = payee_household(supplier), payee_household(supplier, bank_account=False)
    earn(accounts.household(paid.id, supplier.id), 300, on=days_ago(1))
    earn(accounts.household(unpayable.id, supplier.id), 400, on=days_ago(1))

    batch = built_batch(party="household", supplier_id=supplier.id, until=today())

    assert amounts(batch) == {paid.id: (300, "pending"), unpayable.id: (400, "unpayable")}
    line = next(line for line in batch.lines if line.household_id == unpayable.id)
    assert "No bank account" in line.reason and line.bank_account_enc is None
    assert balance(code(unpayable, supplier)) == 400 and balance(code(paid, supplier)) == 0
    assert batch.total_fen == 300 and balance("payouts_clearing") == 300
    assert_ledger_ok()


def test_a_household_batch_covers_only_its_suppliers_accounts(app):
    own, other = SupplierFactory(), SupplierFactory()
    shared = payee_household(other)                                # registered by the other co-op
    mine = payee_household(own)
    others = payee_household(other)
    for household, supplier, amount in ((shared, own, 100), (shared, other, 200), (mine, own, 300),
                                        (others, other, 400)):
        earn(accounts.household(household.id, supplier.id), amount, on=days_ago(1))
    earn(accounts.supplier(own.id), 5000, on=days_ago(1))

    batch = built_batch(party="household", supplier_id=own.id, until=today())

    assert amounts(batch) == {shared.id: (100, "pending"), mine.id: (300, "pending")}
    assert balance(code(shared, other)) == 200 and balance(code(others, other)) == 400
    assert balance(f"supplier:{own.id}") == 5000
    assert_ledger_ok()


def test_suppliers_are_paid_and_a_store_is_paid_its_commission_net_of_the_cash_it_holds(app):
    supplier, broke = SupplierFactory(), SupplierFactory()
    supplier.bank_account = make_bank_account()
    earn(accounts.supplier(supplier.id), 12_000, on=days_ago(1))
    earn(accounts.supplier(broke.id), -50, on=days_ago(1))
    pickup_store, counter_store = StoreFactory(), StoreFactory()
    for store in (pickup_store, counter_store):
        store.bank_account = make_bank_account()
    earn(accounts.store(pickup_store.id), 1000, on=days_ago(1))   # commission on pickup orders: owed to it
    earn(accounts.store(counter_store.id), 1000, on=days_ago(1))
    earn(accounts.store_cash(counter_store.id), -300, on=days_ago(1))  # counter cash it holds and keeps
    earn(accounts.store_cash(pickup_store.id), -1500, on=days_ago(1))
    earn(accounts.store(pickup_store.id), 2000, on=days_ago(1))

    suppliers = built_batch(party="supplier", until=today())
    stores = built_batch(party="store", until=today())

    assert amounts(suppliers) == {supplier.id: (12_000, "pending")}
    assert amounts(stores) == {pickup_store.id: (1500, "pending"), counter_store.id: (700, "pending")}
    assert balance(f"store:{counter_store.id}") == 300 and balance(f"store_cash:{counter_store.id}") == -300
    assert balance("payouts_clearing") == 12_000 + 1500 + 700
    assert_ledger_ok()


def settle(client, headers, batch_id, *lines):
    """POST the settlement of `(line_id, status)` pairs, in API.md's body (a failed line's reason is optional)."""
    return client.post(f"/api/v1/payout-batches/{batch_id}/settle", headers=headers,
                       json={"lines": [{"line_id": line_id, "status": status} for line_id, status in lines]})


def test_settling_lines_posts_payments_returns_and_bank_returns(client, login):
    supplier = SupplierFactory()
    households = [payee_household(supplier) for _ in range(3)]
    for n, household in enumerate(households, start=1):
        earn(accounts.household(household.id, supplier.id), 100 * n, on=days_ago(1))
    batch = built_batch(party="household", supplier_id=supplier.id, until=today())
    line = {line.household_id: line.id for line in batch.lines}
    a, b, c = households
    admin = login("admin")

    response = settle(client, admin, batch.id, (line[a.id], "paid"), (line[b.id], "failed"), (line[c.id], "paid"))

    assert response.status_code == 200, response.json
    assert {item["id"]: item["status"] for item in response.json["lines"]} == {
        line[a.id]: "paid", line[b.id]: "failed", line[c.id]: "paid"}
    assert response.json["totals"] == {"pending_fen": 0, "paid_fen": 400, "failed_fen": 200, "unpayable_fen": 0}
    assert balance("payouts_clearing") == 0
    assert balance("payments:bank") == 400                      # paid out of the platform's bank account
    assert balance(code(b, supplier)) == 200                    # a failed line is back on the payee
    assert balance(code(a, supplier)) == 0
    assert_ledger_ok()

    again = settle(client, admin, batch.id, (line[a.id], "paid"), (line[b.id], "failed"))
    transactions = db.session.scalar(select(db.func.count()).select_from(LedgerTransaction))

    assert again.status_code == 200 and balance("payments:bank") == 400   # the same status again: nothing
    returned = settle(client, admin, batch.id, (line[c.id], "failed"))   # the bank returned a paid transfer

    assert returned.status_code == 200, returned.json
    assert db.session.scalar(select(db.func.count()).select_from(LedgerTransaction)) == transactions + 1
    reversal = db.session.scalar(select(LedgerTransaction).order_by(LedgerTransaction.id.desc()).limit(1))
    assert reversal.kind == "payout_failed"
    assert sorted((p.account_id, p.amount_fen) for p in reversal.postings) == sorted(
        [(accounts.bank().id, -300), (accounts.household(c.id, supplier.id).id, 300)])
    assert balance("payments:bank") == 100 and balance(code(c, supplier)) == 300
    assert_ledger_ok()

    refused = settle(client, admin, batch.id, (line[b.id], "paid"))      # failed → paid is no transition
    assert refused.status_code == 409 and refused.json["error"]["code"] == "illegal_payout_transition"
    assert refused.json["error"]["details"]["lines"] == [{"line_id": line[b.id], "from": "failed", "to": "paid"}]


def test_settlement_is_all_or_nothing_and_checks_its_lines(client, login):
    supplier = SupplierFactory()
    paid, unpayable = payee_household(supplier), payee_household(supplier, bank_account=False)
    for household in (paid, unpayable):
        earn(accounts.household(household.id, supplier.id), 250, on=days_ago(1))
    batch = built_batch(party="household", supplier_id=supplier.id, until=today())
    line = {line.household_id: line.id for line in batch.lines}
    supplier.bank_account = make_bank_account()
    earn(accounts.supplier(supplier.id), 900, on=days_ago(1))
    other = built_batch(party="supplier", until=today())
    queued = queued_batch(party="store", until=today())
    admin = login("admin")

    mixed = settle(client, admin, batch.id, (line[paid.id], "paid"), (line[unpayable.id], "paid"))
    foreign = settle(client, admin, other.id, (line[paid.id], "paid"))
    twice = settle(client, admin, batch.id, (line[paid.id], "paid"), (line[paid.id], "failed"))
    not_ready = settle(client, admin, queued.id, (line[paid.id], "paid"))
    missing = settle(client, admin, 999_999, (line[paid.id], "paid"))
    coop = settle(client, login("coop", supplier_id=supplier.id), batch.id, (line[paid.id], "paid"))
    reason_on_paid = client.post(f"/api/v1/payout-batches/{batch.id}/settle", headers=admin, json={
        "lines": [{"line_id": line[paid.id], "status": "paid", "reason": "退票"}]})

    assert mixed.status_code == 409 and mixed.json["error"]["code"] == "illegal_payout_transition"
    assert foreign.status_code == 422 and foreign.json["error"]["code"] == "payout_line_not_found"
    assert twice.status_code == 422 and "lines" in twice.json["error"]["details"]
    assert not_ready.status_code == 409 and not_ready.json["error"]["code"] == "payout_batch_not_ready"
    assert missing.status_code == 404 and missing.json["error"]["code"] == "payout_batch_not_found"
    assert coop.status_code == 403
    assert reason_on_paid.status_code == 422
    assert balance("payments:bank") == 0 and balance("payouts_clearing") == 250 + 900   # nothing was settled
    assert db.session.get(PayoutLine, line[paid.id]).status == "pending"
    assert_ledger_ok()


def test_each_settlement_records_who_made_it_and_a_bank_return_keeps_the_paid_time_and_says_why(client, login):
    supplier = SupplierFactory()
    household = payee_household(supplier)
    earn(accounts.household(household.id, supplier.id), 720, on=days_ago(1))
    requester = login("admin")
    requested = client.post("/api/v1/payout-batches", headers=requester,
                            json={"party": "household", "supplier_id": supplier.id, "until": today().isoformat()})
    batch = db.session.get(PayoutBatch, requested.json["id"])
    (line,) = batch.lines
    payer, returner = login("admin"), login("admin")
    payer_id, returner_id = (client.get("/api/v1/users/me", headers=h).json["id"] for h in (payer, returner))

    paid = settle(client, payer, batch.id, (line.id, "paid")).json["lines"][0]
    returned = client.post(f"/api/v1/payout-batches/{batch.id}/settle", headers=returner, json={
        "lines": [{"line_id": line.id, "status": "failed", "reason": "收款账户已销户"}]}).json["lines"][0]
    shown = client.get(f"/api/v1/payout-batches/{batch.id}", headers=login("auditor")).json

    assert requested.json["created_by"] == shown["created_by"] == client.get(
        "/api/v1/users/me", headers=requester).json["id"]
    assert (paid["paid_by"], paid["failed_by"], paid["failed_at"]) == (payer_id, None, None)
    assert returned["paid_at"] == paid["paid_at"] == paid["settled_at"]          # the paid time is kept
    assert (returned["paid_by"], returned["failed_by"], returned["reason"]) == (payer_id, returner_id, "收款账户已销户")
    assert returned["failed_at"] == returned["settled_at"] and returned["failed_at"] >= paid["paid_at"]
    assert shown["lines"][0] == returned
    assert_ledger_ok()


def test_a_batch_request_resent_with_its_key_by_another_admin_is_the_first_batch(client, login):
    """Batch requests' keys are the admins' (who alone request batches): a request resent with its key by another
    admin (the first's browser retried after a hand-over) gets the first answer, not 409 `nothing_to_pay` or
    `payout_batch_in_progress`; another body under the key is `idempotency_key_reused`."""
    supplier = SupplierFactory()
    earn(accounts.household(payee_household(supplier).id, supplier.id), 720, on=days_ago(1))
    first_admin, second_admin = login("admin"), login("admin")
    body = {"party": "household", "supplier_id": supplier.id, "until": today().isoformat()}

    def request_batch(headers, **changes):
        return client.post("/api/v1/payout-batches", json={**body, **changes},
                           headers={**headers, "Idempotency-Key": "batch-1"})

    made, resent = request_batch(first_admin), request_batch(second_admin)
    changed = request_batch(second_admin, until=days_ago(1).isoformat())

    assert made.status_code == resent.status_code == 202, resent.json
    assert resent.json == made.json and resent.headers.get("Idempotent-Replayed") == "true"
    assert (changed.status_code, changed.json["error"]["code"]) == (409, "idempotency_key_reused")
    assert db.session.scalar(select(db.func.count()).select_from(PayoutBatch)) == 1


def test_a_failed_line_carries_the_banks_reason_and_is_paid_again_by_the_next_batch(client, login):
    supplier = SupplierFactory()
    household = payee_household(supplier)
    earn(accounts.household(household.id, supplier.id), 640, on=days_ago(1))
    first = built_batch(party="household", supplier_id=supplier.id, until=today())
    (line,) = first.lines

    response = client.post(f"/api/v1/payout-batches/{first.id}/settle", headers=login("admin"), json={
        "lines": [{"line_id": line.id, "status": "failed", "reason": "户名与账号不符"}]})
    second = built_batch(party="household", supplier_id=supplier.id, until=today())

    assert response.status_code == 200, response.json
    assert response.json["lines"][0]["reason"] == "户名与账号不符"
    assert amounts(second) == {household.id: (640, "pending")}
    assert balance("payouts_clearing") == 640 and balance(code(household, supplier)) == 0
    assert_ledger_ok()
    printed = client.get(f"/api/v1/households/{household.id}/statement?format=html", headers=login("admin"))
    rows = [row for row in printed.get_data(as_text=True).split("<tr>") if "批次 PB" in row]
    assert [row.count("转入待付") for row in rows] == [1, 0, 1]  # to payable, returned, to payable again
    assert f"支付退回（银行退票，批次 PB{first.id}-L{line.id}）" in rows[1]


def test_the_api_requests_a_batch_and_its_task_builds_it(client, login):
    supplier = SupplierFactory()
    household = payee_household(supplier)
    earn(accounts.household(household.id, supplier.id), 1234, on=days_ago(1))
    admin = login("admin")

    response = client.post("/api/v1/payout-batches", headers=admin,
                           json={"party": "household", "supplier_id": supplier.id, "until": today().isoformat()})

    assert response.status_code == 202, response.json
    shown = client.get(f"/api/v1/payout-batches/{response.json['id']}", headers=admin)
    assert shown.json["status"] == "ready"                       # the embedded default runs the task eagerly
    assert shown.json["progress"] == {"done": 1, "total": 1}
    (line,) = shown.json["lines"]
    assert (line["amount_fen"], line["status"], line["payee"]["id"]) == (1234, "pending", household.id)
    assert line["account"] == "****" + household.bank_account[-4:]
    assert household.bank_account not in shown.get_data(as_text=True)
    listed = client.get("/api/v1/payout-batches?party=household", headers=admin)
    assert [item["id"] for item in listed.json["items"]] == [response.json["id"]]
    assert_ledger_ok()


def test_a_request_is_validated(client, login):
    admin, supplier = login("admin"), SupplierFactory()
    db.session.commit()

    def post(body, headers=admin):
        return client.post("/api/v1/payout-batches", headers=headers, json=body)

    no_supplier = post({"party": "household", "until": today().isoformat()})
    needless = post({"party": "store", "supplier_id": supplier.id, "until": today().isoformat()})
    unknown = post({"party": "household", "supplier_id": 999_999, "until": today().isoformat()})
    future = post({"party": "supplier", "until": (today() + timedelta(days=2)).isoformat()})
    party = post({"party": "platform", "until": today().isoformat()})
    extra = post({"party": "supplier", "until": today().isoformat(), "total_fen": 1})
    coop = post({"party": "household", "supplier_id": supplier.id, "until": today().isoformat()},
                login("coop", supplier_id=supplier.id))

    for response, field in ((no_supplier, "supplier_id"), (needless, "supplier_id"), (unknown, "supplier_id"),
                            (future, "until"), (party, "party"), (extra, "total_fen")):
        assert response.status_code == 422, response.json
        assert field in response.json["error"]["details"]
    assert coop.status_code == 403
    assert db.session.scalar(select(db.func.count()).select_from(PayoutBatch)) == 0


def test_a_request_with_nothing_to_pay_is_refused_and_writes_nothing(client, login):
    supplier = SupplierFactory()
    owed, without_account = payee_household(supplier), payee_household(supplier, bank_account=False)
    earn(accounts.household(owed.id, supplier.id), 500, on=days_ago(1))
    earn(accounts.household(without_account.id, supplier.id), 300, on=days_ago(1))
    admin = login("admin")

    def post(body):
        return client.post("/api/v1/payout-batches", headers=admin, json=body)

    nobody = post({"party": "supplier", "until": today().isoformat()})
    too_early = post({"party": "household", "supplier_id": supplier.id, "until": "2000-01-01"})
    paid = post({"party": "household", "supplier_id": supplier.id, "until": today().isoformat()})
    again = post({"party": "household", "supplier_id": supplier.id, "until": today().isoformat()})

    for refused in (nobody, too_early, again):
        assert refused.status_code == 409, refused.json
        assert refused.json["error"]["code"] == "nothing_to_pay"
    assert paid.status_code == 202 and paid.json["total_fen"] == 500
    assert again.json["error"]["details"] == {"unpayable_payees": 1, "unpayable_fen": 300}  # owed, no bank account
    assert db.session.scalar(select(db.func.count()).select_from(PayoutBatch)) == 1
    listed = client.get("/api/v1/payout-batches", headers=admin).json["items"]
    assert [item["id"] for item in listed] == [paid.json["id"]]
    assert_ledger_ok()


def test_a_request_while_a_batch_for_the_same_payees_is_being_built_is_refused(client, login):
    supplier = SupplierFactory()
    household = payee_household(supplier)
    earn(accounts.household(household.id, supplier.id), 500, on=days_ago(1))
    waiting = queued_batch(party="household", supplier_id=supplier.id, until=today())
    admin = login("admin")

    refused = client.post("/api/v1/payout-batches", headers=admin,
                          json={"party": "household", "supplier_id": supplier.id, "until": today().isoformat()})
    others = client.post("/api/v1/payout-batches", headers=admin,
                         json={"party": "household", "supplier_id": SupplierFactory().id, "until": today().isoformat()})

    assert refused.status_code == 409 and refused.json["error"]["code"] == "payout_batch_in_progress"
    assert refused.json["error"]["details"] == {"batch_id": waiting.id}
    assert others.status_code == 409 and others.json["error"]["code"] == "nothing_to_pay"  # not held up by it
    assert db.session.scalar(select(db.func.count()).select_from(PayoutBatch)) == 1


def test_the_task_shows_building_with_progress_then_ready(client, login, monkeypatch):
    monkeypatch.setattr(service, "PROGRESS_EVERY", 2)
    supplier = SupplierFactory()
    households = [payee_household(supplier) for _ in range(5)]
    for household in households:
        earn(accounts.household(household.id, supplier.id), 100, on=days_ago(1))
    batch = queued_batch(party="household", supplier_id=supplier.id, until=today())
    admin = login("admin")
    seen = []

    def poll(done, total):
        shown = client.get(f"/api/v1/payout-batches/{batch.id}", headers=admin).json
        seen.append((shown["status"], shown["progress"]["done"], shown["progress"]["total"], done, total))

    before = client.get(f"/api/v1/payout-batches/{batch.id}", headers=admin).json
    run_build(batch.id, progress=poll)
    after = client.get(f"/api/v1/payout-batches/{batch.id}", headers=admin).json

    assert (before["status"], before["lines"]) == ("queued", [])
    assert seen == [("building", done, 5, done, 5) for done in (0, 2, 4, 5)]
    assert (after["status"], after["progress"], after["total_fen"]) == ("ready", {"done": 5, "total": 5}, 500)
    assert run_build(batch.id) is None                          # a built batch is left alone
    assert balance("payouts_clearing") == 500
    assert_ledger_ok()


def test_a_build_that_fails_posts_nothing_and_says_so(app, monkeypatch):
    supplier = SupplierFactory()
    household = payee_household(supplier)
    earn(accounts.household(household.id, supplier.id), 100, on=days_ago(1))
    batch = queued_batch(party="household", supplier_id=supplier.id, until=today())

    def broken(batch, party_ids):
        raise RuntimeError("the bank account store is down")

    monkeypatch.setattr(service, "_parties", broken)
    built = run_build(batch.id)

    assert built.status == "failed" and "unexpectedly" in built.failure_reason
    assert built.lines == [] and balance("payouts_clearing") == 0
    assert balance(code(household, supplier)) == 100
    assert_ledger_ok()


def test_the_sweeper_builds_a_batch_whose_task_was_lost(app):
    supplier = SupplierFactory()
    household = payee_household(supplier)
    earn(accounts.household(household.id, supplier.id), 100, on=days_ago(1))
    lost = queued_batch(party="household", supplier_id=supplier.id, until=today())
    fresh = queued_batch(party="supplier", until=today())
    lost.queued_at = utcnow() - timedelta(minutes=5)
    db.session.commit()

    assert service.requeue_stuck_batches() == 1
    db.session.commit()                                          # the eager task runs after commit

    db.session.expire_all()
    assert db.session.get(PayoutBatch, lost.id).status == "ready"
    assert db.session.get(PayoutBatch, fresh.id).status == "queued"
    assert balance("payouts_clearing") == 100
    assert_ledger_ok()


def test_a_large_batch_shows_its_first_lines_with_counts_and_totals_and_pages_the_rest(client, login):
    supplier = SupplierFactory()
    households = [payee_household(supplier, bank_account=n % 50 != 0) for n in range(130)]  # 3 without an account
    for n, household in enumerate(households, start=1):
        earn(accounts.household(household.id, supplier.id), n)
    batch = built_batch(party="household", supplier_id=supplier.id, until=today() + timedelta(days=1))
    ids = [line.id for line in batch.lines]
    admin, auditor = login("admin"), login("auditor")
    settle(client, admin, batch.id, (ids[1], "paid"))

    shown = client.get(f"/api/v1/payout-batches/{batch.id}", headers=auditor).json
    assert [line["id"] for line in shown["lines"]] == ids[:100]           # bounded: the first page of lines
    assert shown["line_counts"] == {"pending": 126, "paid": 1, "failed": 0, "unpayable": 3}
    assert sum(shown["totals"].values()) == sum(range(1, 131))
    rest = client.get(f"/api/v1/payout-batches/{batch.id}/lines?cursor={shown['lines_next_cursor']}",
                      headers=auditor).json
    assert [line["id"] for line in rest["items"]] == ids[100:120] and rest["next_cursor"]
    pages, cursor = [], None
    while True:
        page = client.get(f"/api/v1/payout-batches/{batch.id}/lines?limit=50" + (f"&cursor={cursor}" if cursor else ""),
                          headers=auditor).json
        pages.append([line["id"] for line in page["items"]])
        if not (cursor := page["next_cursor"]):
            break
    assert [len(page) for page in pages] == [50, 50, 30] and sum(pages, []) == ids
    unpayable = client.get(f"/api/v1/payout-batches/{batch.id}/lines?status=unpayable", headers=auditor).json
    assert [line["status"] for line in unpayable["items"]] == ["unpayable"] * 3
    moved = client.get(f"/api/v1/payout-batches/{batch.id}/lines?status=pending&cursor={rest['next_cursor']}",
                       headers=auditor)
    assert moved.status_code == 400 and moved.json["error"]["code"] == "invalid_cursor"
    other = built_batch(party="supplier", until=today() + timedelta(days=1))
    elsewhere = client.get(f"/api/v1/payout-batches/{other.id}/lines?cursor={rest['next_cursor']}", headers=auditor)
    assert elsewhere.status_code == 400 and elsewhere.json["error"]["code"] == "invalid_cursor"


def test_a_batchs_lines_are_read_in_its_scope(client, login):
    supplier, other_supplier = SupplierFactory(), SupplierFactory()
    household = payee_household(supplier)
    earn(accounts.household(household.id, supplier.id), 500, on=days_ago(1))
    batch = built_batch(party="household", supplier_id=supplier.id, until=today())
    own, other = login("coop", supplier_id=supplier.id), login("coop", supplier_id=other_supplier.id)
    lines = client.get(f"/api/v1/payout-batches/{batch.id}/lines", headers=own).json["items"]
    assert [(line["payee"]["id"], line["amount_fen"]) for line in lines] == [(household.id, 500)]
    refused = client.get(f"/api/v1/payout-batches/{batch.id}/lines", headers=other)
    assert refused.status_code == 404 and refused.json["error"]["code"] == "payout_batch_not_found"
    assert client.get("/api/v1/payout-batches/999999/lines", headers=login("admin")).status_code == 404
    staff = login("store_staff", store_id=StoreFactory().id)
    assert client.get(f"/api/v1/payout-batches/{batch.id}/lines", headers=staff).status_code == 403
