"""Store remittances: the counter cash a store hands over settles its cash held and the commission it keeps; a store
batch then pays only the commission the cash did not cover; the bounds, the roles and scopes, replays and races."""
from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, select

from orders import outbox
from orders.ledger import accounts, remittances
from orders.ledger.models import LedgerTransaction, StoreRemittance
from orders.ledger.payouts.models import PayoutBatch
from orders.ledger.verify import verify_ledger
from shop.db import db, utcnow
from tests.catalog.test_concurrency import race
from tests.factories import UserFactory
from tests.orders.factories import StoreFactory
from tests.orders.ledger.payout_factories import balance, built_batch, days_ago, earn, today
from tests.orders.ledger.test_attribution import _counter_and_delivery_for, make_world
from tests.suppliers.factories import make_bank_account


def cash_sale_store():
    """A store with one cash counter sale of ¥12.50 (commission 100 fen) and a bank account (committed)."""
    world = make_world(today=outbox.sale_date_of(utcnow()))
    _counter_and_delivery_for(world)
    store = world["store"]
    store.bank_account = make_bank_account()
    db.session.commit()
    return store


def remit(client, headers, store_id, amount, *, key=None, **fields):
    """POST a remittance of `amount` fen received today (under an Idempotency-Key if given)."""
    body = {"amount_fen": amount, "received_on": today().isoformat(), "reference": "工行存款 DEP-0042", **fields}
    return client.post(f"/api/v1/stores/{store_id}/remittances", json=body,
                       headers={**headers, **({"Idempotency-Key": key} if key else {})})


def test_remitting_what_is_to_remit_settles_the_cash_held_and_the_commission_kept(client, login):
    store = cash_sale_store()
    admin, staff = login("admin"), login("store_staff", store_id=store.id)
    statement = f"/api/v1/stores/{store.id}/statement"
    before = client.get(statement, headers=staff).json
    assert (before["cash_held_fen"], before["commission_fen"], before["to_remit_fen"]) == (1250, 100, 1150)

    created = remit(client, admin, store.id, 1150, key="dep-42")
    replayed = remit(client, admin, store.id, 1150, key="dep-42")

    assert created.status_code == 201, created.json
    assert created.headers["Location"].endswith(f"/api/v1/stores/{store.id}/remittances/{created.json['id']}")
    assert replayed.status_code == 201 and replayed.json == created.json
    assert (created.json["amount_fen"], created.json["commission_kept_fen"]) == (1150, 100)
    assert db.session.scalar(select(func.count()).select_from(StoreRemittance)) == 1
    assert balance(f"store_cash:{store.id}") == 0 and balance(f"store:{store.id}") == 0
    assert balance("payments:bank") == -1150                        # the deposit landed in the platform's bank
    transaction = db.session.get(LedgerTransaction, created.json["transaction_id"])
    assert transaction.kind == "store_remittance" and sum(p.amount_fen for p in transaction.postings) == 0
    after = client.get(statement, headers=staff).json
    assert (after["cash_held_fen"], after["commission_fen"], after["to_remit_fen"]) == (0, 0, 0)
    assert [r["id"] for r in after["remittances"]] == [created.json["id"]] and after["remitted_fen"] == 1150
    page = client.get(f"{statement}?format=html", headers=staff).get_data(as_text=True)
    assert "现金上缴" in page and "DEP-0042" in page and "佣金留抵" in page
    assert client.get(created.headers["Location"], headers=staff).json == created.json
    listed = client.get(f"/api/v1/stores/{store.id}/remittances", headers=login("auditor")).json["items"]
    assert [r["id"] for r in listed] == [created.json["id"]]
    nothing = client.post("/api/v1/payout-batches", headers=admin,
                          json={"party": "store", "until": (today() + timedelta(days=1)).isoformat()})
    assert nothing.status_code == 409 and nothing.json["error"]["code"] == "nothing_to_pay"
    assert verify_ledger()["ok"] is True


def test_a_store_that_remits_all_its_cash_is_paid_its_commission_by_the_next_store_batch(client, login):
    store = cash_sale_store()
    admin = login("admin")

    held = client.post("/api/v1/payout-batches", headers=admin,
                       json={"party": "store", "until": (today() + timedelta(days=1)).isoformat()})
    remitted = remit(client, admin, store.id, 1250)

    assert held.status_code == 409 and held.json["error"]["code"] == "nothing_to_pay"  # the cash covers it
    assert remitted.status_code == 201 and remitted.json["commission_kept_fen"] == 0
    paid = client.post("/api/v1/payout-batches", headers=admin,
                       json={"party": "store", "until": (today() + timedelta(days=1)).isoformat()})
    assert paid.status_code == 202, paid.json
    shown = client.get(f"/api/v1/payout-batches/{paid.json['id']}", headers=admin).json
    assert [(line["payee"]["id"], line["amount_fen"]) for line in shown["lines"]] == [(store.id, 100)]
    assert balance(f"store_cash:{store.id}") == 0 and balance(f"store:{store.id}") == 0
    assert verify_ledger()["ok"] is True


def test_a_partial_remittance_keeps_the_commission_and_leaves_the_rest_to_remit(client, login):
    store = cash_sale_store()

    first = remit(client, login("admin"), store.id, 1000)

    assert first.status_code == 201 and first.json["commission_kept_fen"] == 100
    statement = client.get(f"/api/v1/stores/{store.id}/statement", headers=login("admin")).json
    assert (statement["cash_held_fen"], statement["commission_fen"], statement["to_remit_fen"]) == (150, 0, 150)


def test_a_remittance_is_bounded_and_recorded_by_an_admin_only(client, login):
    store, other = cash_sale_store(), StoreFactory()
    db.session.commit()
    admin = login("admin")

    over = remit(client, admin, store.id, 1251)
    zero = remit(client, admin, store.id, 0)
    future = remit(client, admin, store.id, 100, received_on=(today() + timedelta(days=1)).isoformat())
    phone = remit(client, admin, store.id, 100, reference="顾客 13800138000 代交")
    long = remit(client, admin, store.id, 100, reference="x" * 65)
    nothing_held = remit(client, admin, other.id, 100)
    unknown = remit(client, admin, 999_999, 100)
    refused = [remit(client, login(role, **scope), store.id, 100) for role, scope in (
        ("auditor", {}), ("consumer", {}), ("store_staff", {"store_id": store.id}))]

    assert over.status_code == 409 and over.json["error"]["code"] == "remittance_exceeds_cash_held"
    assert over.json["error"]["details"] == {"cash_held_fen": 1250}
    assert nothing_held.status_code == 409 and nothing_held.json["error"]["code"] == "remittance_exceeds_cash_held"
    for response, field in ((zero, "amount_fen"), (future, "received_on"), (phone, "reference"), (long, "reference")):
        assert response.status_code == 422 and field in response.json["error"]["details"], response.json
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "store_not_found"
    assert [response.status_code for response in refused] == [403, 403, 403]
    assert db.session.scalar(select(func.count()).select_from(StoreRemittance)) == 0
    assert balance(f"store_cash:{store.id}") == -1250


def test_a_remittance_is_received_between_the_day_its_store_opened_and_today(client, login):
    store = cash_sale_store()
    opened = today() - timedelta(days=30)
    store.created_at = datetime.combine(opened - timedelta(days=1), time(16, 0), tzinfo=UTC)  # 00:00 in Shanghai
    db.session.commit()
    admin = login("admin")

    refused = {day: remit(client, admin, store.id, 100, received_on=day, reference=f"DEP-{day}") for day in (
        "2000-01-01", (opened - timedelta(days=1)).isoformat(), (today() + timedelta(days=1)).isoformat(),
        "2099-12-31")}
    first_day = remit(client, admin, store.id, 100, received_on=opened.isoformat(), reference="DEP-FIRST")
    today_ = remit(client, admin, store.id, 100, reference="DEP-TODAY")

    for day, response in refused.items():
        assert (response.status_code, response.json["error"]["code"]) == (422, "remittance_date_out_of_range"), day
        assert response.json["error"]["details"] == {"received_on": [
            f"Must be from {opened.isoformat()} (the day store {store.id} opened) to {today().isoformat()} (today, "
            "Asia/Shanghai)."]}, day
    assert first_day.status_code == 201 and first_day.json["received_on"] == opened.isoformat()
    assert today_.status_code == 201
    assert db.session.scalar(select(func.count()).select_from(StoreRemittance)) == 2


def test_a_store_whose_commission_exceeds_its_cash_is_owed_the_rest_not_told_to_remit_a_negative_amount(
        client, login):
    store = StoreFactory()
    db.session.commit()
    earn(accounts.store_cash(store.id), -232)                      # counter cash held: ¥2.32
    earn(accounts.store(store.id), 8519)                           # commission of paid online orders: ¥85.19
    url = f"/api/v1/stores/{store.id}/statement"
    staff = login("store_staff", store_id=store.id)

    body = client.get(url, headers=staff).json
    page = client.get(f"{url}?format=html", headers=staff).get_data(as_text=True)
    over = remit(client, login("admin"), store.id, 233)

    assert (body["cash_held_fen"], body["commission_fen"], body["to_remit_fen"], body["owed_to_store_fen"]) == (
        232, 8519, 0, 8287)
    assert "-¥" not in page and "应上缴" not in page and "平台应付本店 ¥82.87" in page
    assert over.json["error"]["details"] == {"cash_held_fen": 232} and "holds 232 fen" in over.json["error"]["message"]


def test_a_store_holding_less_than_no_cash_is_told_it_holds_none(client, login):
    store = StoreFactory()
    db.session.commit()
    earn(accounts.store_cash(store.id), 3748)                      # cash refunded beyond the cash it held

    over = remit(client, login("admin"), store.id, 100)
    statement = client.get(f"/api/v1/stores/{store.id}/statement", headers=login("admin")).json

    assert (over.status_code, over.json["error"]["code"]) == (409, "remittance_exceeds_cash_held")
    assert over.json["error"]["details"] == {"cash_held_fen": 0} and "holds 0 fen" in over.json["error"]["message"]
    assert (statement["to_remit_fen"], statement["owed_to_store_fen"]) == (0, 3748)  # a store batch pays it back


def test_remittances_are_read_by_admins_auditors_and_the_stores_own_staff(client, login):
    store, other = cash_sale_store(), StoreFactory()
    db.session.commit()
    created = remit(client, login("admin"), store.id, 500).json
    url = f"/api/v1/stores/{store.id}/remittances"

    assert client.get(url, headers=login("store_staff", store_id=store.id)).status_code == 200
    foreign = client.get(url, headers=login("store_staff", store_id=other.id))
    assert foreign.status_code == 404 and foreign.json["error"]["code"] == "store_not_found"
    assert client.get(f"{url}/{created['id']}", headers=login("store_staff", store_id=other.id)).status_code == 404
    assert client.get(url, headers=login("consumer")).status_code == 403
    elsewhere = client.get(f"/api/v1/stores/{other.id}/remittances/{created['id']}", headers=login("admin"))
    assert elsewhere.status_code == 404 and elsewhere.json["error"]["code"] == "remittance_not_found"


def test_concurrent_remittances_never_remit_more_than_the_cash_held(racing_app):
    store = StoreFactory()
    db.session.commit()
    earn(accounts.store_cash(store.id), -1000)                     # counter cash the store holds
    admin = UserFactory(role="admin")
    db.session.commit()
    db.session.refresh(admin)
    store_id = store.id
    db.session.expunge(admin)  # loaded, detached: the racing threads read its id, never through this session

    outcomes = race(racing_app, 4, lambda i: remittances.record_remittance(
        store_id=store_id, actor=admin, amount_fen=400, received_on=today(), reference=f"DEP-{i}"))

    assert outcomes == {"ok": 2, "remittance_exceeds_cash_held": 2}
    assert balance(f"store_cash:{store_id}") == -200 and balance("payments:bank") == -800
    assert db.session.scalar(select(func.count()).select_from(StoreRemittance)) == 2
    assert db.session.scalar(select(func.count()).select_from(PayoutBatch)) == 0
    assert verify_ledger()["ok"] is True


def test_one_deposit_is_one_remittance_however_often_it_is_sent(client, login):
    store = StoreFactory()
    db.session.commit()
    earn(accounts.store_cash(store.id), -5000)
    admin, other_admin = login("admin"), {"Authorization": login("admin")["Authorization"]}
    first = remit(client, admin, store.id, 1000, reference="DEP-002")
    assert first.status_code == 201, first.json

    again = remit(client, other_admin, store.id, 1000, key="another-key", reference="DEP-002")

    assert (again.status_code, again.json["error"]["code"]) == (409, "remittance_reference_used")
    assert again.json["error"]["details"] == {"reference": "DEP-002", "remittance_id": first.json["id"]}
    assert balance("payments:bank") == -1000 and balance(f"store_cash:{store.id}") == -4000
    assert remit(client, admin, store.id, 1000, reference="DEP-003").status_code == 201  # another deposit


def test_a_remittance_resent_with_its_key_by_another_admin_is_the_first_remittance(client, login):
    """A remittance's keys belong to its store: one resent with its key by another admin (the first's browser retried
    after a hand-over) gets the first answer, not 409 `remittance_reference_used`; another body under the key is
    `idempotency_key_reused`."""
    store = StoreFactory()
    db.session.commit()
    earn(accounts.store_cash(store.id), -5000)
    first_admin, second_admin = login("admin"), login("admin")

    made = remit(client, first_admin, store.id, 1000, key="dep-7", reference="DEP-007")
    resent = remit(client, second_admin, store.id, 1000, key="dep-7", reference="DEP-007")
    changed = remit(client, second_admin, store.id, 900, key="dep-7", reference="DEP-007")

    assert made.status_code == resent.status_code == 201, resent.json
    assert resent.json == made.json and resent.headers.get("Idempotent-Replayed") == "true"
    assert (changed.status_code, changed.json["error"]["code"]) == (409, "idempotency_key_reused")
    assert balance("payments:bank") == -1000 and balance(f"store_cash:{store.id}") == -4000


def test_a_deposit_is_one_remittance_however_its_reference_is_spelled(client, login):
    store = StoreFactory()
    db.session.commit()
    earn(accounts.store_cash(store.id), -5000)
    admin = login("admin")
    first = remit(client, admin, store.id, 100, reference="BANK-001")

    spellings = [remit(client, admin, store.id, 100, key=f"k{i}", reference=reference)
                 for i, reference in enumerate(("bank-001", "ＢＡＮＫ-００１", " Bank\u2014001 ", "BANK\u2212001",
                                                "BANK\uff0d001"))]

    assert first.status_code == 201 and first.json["reference"] == "BANK-001"
    for again in spellings:
        assert (again.status_code, again.json["error"]["code"]) == (409, "remittance_reference_used"), again.json
        assert again.json["error"]["details"] == {"reference": "BANK-001", "remittance_id": first.json["id"]}
    assert balance("payments:bank") == -100 and balance(f"store_cash:{store.id}") == -4900
    assert db.session.scalar(select(func.count()).select_from(StoreRemittance)) == 1


def test_a_reference_is_ascii_or_chinese_and_its_look_alikes_are_refused(client, login):
    store = StoreFactory()
    db.session.commit()
    earn(accounts.store_cash(store.id), -5000)
    admin = login("admin")
    chinese = remit(client, admin, store.id, 100, reference="工行存款、柜台（顺德） DEP-0042")
    spaced = remit(client, admin, store.id, 100, key="k2", reference="\u3000工行存款、柜台(顺德)\u00a0 dep－0042 ")
    first = remit(client, admin, store.id, 100, reference="REF-1")

    look_alikes = {reference: remit(client, admin, store.id, 100, key=f"k{i}", reference=reference)
                   for i, reference in enumerate((
                       "\U0001d411EF-1", "R\u0415F-1", "\u0420EF-1", "REF-\u0661", "\u03a1EF-1", "REF\u200b-1",
                       "REF-1\u00ad", "REF-1\u202e", "REF\t-1", "REF-1 \U0001f4b0", "REF-\u2460", "\uff32EF-1\u3164",
                       "REF-1\U000f0000", "ＲＥＦ－1\u0301", "Café-1"))}

    assert chinese.status_code == 201 and chinese.json["reference"] == "工行存款、柜台(顺德) DEP-0042"
    assert (spaced.status_code, spaced.json["error"]["code"]) == (409, "remittance_reference_used"), spaced.json
    assert first.status_code == 201 and first.json["reference"] == "REF-1"
    for reference, response in look_alikes.items():
        assert (response.status_code, response.json["error"]["code"]) == (422, "validation_error"), reference
        [message] = response.json["error"]["details"]["reference"]
        assert message.startswith("Must hold only ASCII letters, digits, punctuation and spaces"), message
    assert "U+0415 (CYRILLIC CAPITAL LETTER IE)" in look_alikes["R\u0415F-1"].json["error"]["details"]["reference"][0]
    assert db.session.scalar(select(func.count()).select_from(StoreRemittance)) == 2


def test_racing_sends_of_one_deposit_record_it_once(racing_app):
    store = StoreFactory()
    db.session.commit()
    earn(accounts.store_cash(store.id), -5000)
    admin = UserFactory(role="admin")
    db.session.commit()
    db.session.refresh(admin)
    store_id = store.id
    db.session.expunge(admin)

    outcomes = race(racing_app, 4, lambda i: remittances.record_remittance(
        store_id=store_id, actor=admin, amount_fen=1000, received_on=today(), reference="DEP-9"))

    assert outcomes == {"ok": 1, "remittance_reference_used": 3}
    assert balance("payments:bank") == -1000
    assert verify_ledger()["ok"] is True


def _store_batch_lines(until) -> dict[int, int]:
    """Store id → amount of the lines of a store batch built until `until` (empty when nothing is due)."""
    batch = built_batch(party="store", until=until)
    return {line.store_id: line.amount_fen for line in batch.lines}


def test_a_store_batch_until_a_day_pays_no_commission_earned_after_it_however_much_cash_was_remitted(app):
    store = StoreFactory()
    store.bank_account = make_bank_account()
    db.session.commit()
    earn(accounts.store(store.id), 500)                  # today, after the cut-off: commission on pickups
    earn(accounts.store_cash(store.id), -10_000)         # today: a cash sale it holds ...
    earn(accounts.store(store.id), 800)                  # ... and its commission
    remittances.record_remittance(store_id=store.id, actor=UserFactory(role="admin"), amount_fen=10_000,
                                  received_on=today(), reference="DEP-LATE-1")  # all its cash, commission too
    db.session.commit()

    assert _store_batch_lines(today()) == {}             # everything it is owed was earned after the cut-off
    assert _store_batch_lines(today() + timedelta(days=1)) == {store.id: 1300}
    assert verify_ledger()["ok"] is True


def test_cash_held_before_the_cut_off_and_remitted_after_it_still_counts_before_it(app):
    store = StoreFactory()
    store.bank_account = make_bank_account()
    db.session.commit()
    earn(accounts.store_cash(store.id), -10_000, on=days_ago(1))  # yesterday: a cash sale and its commission
    earn(accounts.store(store.id), 800, on=days_ago(1))
    earn(accounts.store_cash(store.id), -5_000)                   # today: another, after the cut-off
    earn(accounts.store(store.id), 400)
    remittances.record_remittance(store_id=store.id, actor=UserFactory(role="admin"), amount_fen=15_000,
                                  received_on=today(), reference="DEP-LATE-2")
    db.session.commit()

    assert _store_batch_lines(today()) == {store.id: 800}         # yesterday's commission, not today's
    assert _store_batch_lines(today() + timedelta(days=1)) == {store.id: 400}
    assert verify_ledger()["ok"] is True


def test_a_store_reimbursed_for_cash_it_refunded_can_remit_the_cash_of_its_next_sales(client, login):
    store = StoreFactory()
    store.bank_account = make_bank_account()
    db.session.commit()
    earn(accounts.store_cash(store.id), 3748)                      # cash refunded after it remitted the sale's cash
    reimbursed = built_batch(party="store", until=today() + timedelta(days=1))
    assert [(line.store_id, line.amount_fen) for line in reimbursed.lines] == [(store.id, 3748)]
    assert balance(f"store_cash:{store.id}") == 0 and balance(f"store:{store.id}") == 0
    earn(accounts.store_cash(store.id), -1250)                     # the next cash sale, and its commission
    earn(accounts.store(store.id), 100)
    statement = client.get(f"/api/v1/stores/{store.id}/statement", headers=login("admin")).json
    assert (statement["cash_held_fen"], statement["commission_fen"], statement["to_remit_fen"]) == (1250, 100, 1150)

    remitted = remit(client, login("admin"), store.id, 1150)

    assert remitted.status_code == 201, remitted.json
    assert balance(f"store_cash:{store.id}") == 0 and balance(f"store:{store.id}") == 0
    assert verify_ledger()["ok"] is True


def test_a_store_payout_the_bank_returns_goes_back_to_the_accounts_it_was_taken_off(client, login):
    store = StoreFactory()
    store.bank_account = make_bank_account()
    db.session.commit()
    earn(accounts.store_cash(store.id), 300)                       # cash it paid out of its own
    earn(accounts.store(store.id), 500)                            # commission on pickups
    batch = built_batch(party="store", until=today() + timedelta(days=1))
    (line,) = batch.lines
    assert line.amount_fen == 800
    assert balance(f"store_cash:{store.id}") == 0 and balance(f"store:{store.id}") == 0
    statement = client.get(f"/api/v1/stores/{store.id}/statement", headers=login("admin")).json
    assert [(e["amount_fen"], e["payout_reference"]) for e in statement["cash"]["entries"] if e["kind"] == "payout"] \
        == [(300, f"PB{batch.id}-L{line.id}")]                     # cash held goes from -300 to 0

    settled = client.post(f"/api/v1/payout-batches/{batch.id}/settle", headers=login("admin"),
                          json={"lines": [{"line_id": line.id, "status": "failed"}]})

    assert settled.status_code == 200, settled.json
    assert balance(f"store_cash:{store.id}") == 300 and balance(f"store:{store.id}") == 500
    assert verify_ledger()["ok"] is True
