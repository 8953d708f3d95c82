"""One full verification at a time, and verifications requested as tasks whose progress and result are polled."""
from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from orders.ledger.errors import LedgerCode
from orders.ledger.models import LedgerVerification
from orders.ledger.verify import VerificationRunning, verify_ledger
from shop.db import db, utcnow
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.orders.ledger.test_verify import pay_in, without_the_guards


def test_a_second_verification_while_one_runs_is_refused_with_retry_after(racing_app):
    client = racing_app.test_client()
    pay_in(100)
    user = UserFactory(role="auditor")
    db.session.commit()
    token = client.post("/api/v1/auth/token", json={"username": user.username, "password": DEFAULT_PASSWORD})
    headers = {"Authorization": f"Bearer {token.json['access_token']}"}
    answers = []

    def meanwhile(done: int, total: int) -> None:
        if not answers:  # while this verification runs, an auditor asks for another
            answers.append(client.get("/api/v1/ledger/verify", headers=headers))

    assert verify_ledger(progress=meanwhile)["ok"]
    refused = answers[0]
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == LedgerCode.VERIFICATION_RUNNING
    assert refused.headers["Retry-After"] == "30"
    after = client.get("/api/v1/ledger/verify", headers=headers)
    assert after.status_code == 200 and after.json["ok"] is True  # once it has finished


_VERIFIER = """
import sys
from tests.conftest import make_app
from orders.ledger.verify import verify_ledger
from shop.db import db

def hold(done, total):
    if done == 0:  # running: say so, then keep running until told to finish
        print("running", flush=True)
        sys.stdin.readline()

with make_app(sys.argv[1], DATABASE_URL=sys.argv[2]).app_context():
    print(verify_ledger(progress=hold)["ok"], flush=True)
    db.session.remove()
"""


def test_a_verification_in_another_process_is_one_at_a_time_on_sqlite_too(app, client, login):
    """On SQLite `flask verify-ledger` is another process than the server: while it verifies, the server's
    verification is refused as while one of its own runs, and runs once the command has finished."""
    pay_in(100)
    headers = login("auditor")
    verifier = subprocess.Popen([sys.executable, "-c", _VERIFIER, app.instance_path,
                                 app.config["SQLALCHEMY_DATABASE_URI"]], cwd=Path(__file__).parents[3],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert verifier.stdout.readline() == "running\n"
        refused = client.get("/api/v1/ledger/verify", headers=headers)
        with pytest.raises(VerificationRunning):
            verify_ledger(wait=False)
        finished, _ = verifier.communicate("\n", timeout=60)
    finally:
        verifier.kill()
    assert verifier.returncode == 0 and finished == "True\n"
    assert refused.status_code == 409, refused.json
    assert refused.json["error"]["code"] == LedgerCode.VERIFICATION_RUNNING
    after = client.get("/api/v1/ledger/verify", headers=headers)
    assert after.status_code == 200 and after.json["ok"] is True


def test_a_requested_verification_runs_as_a_task_and_shows_its_progress_and_result(app, client, login):
    ids = [pay_in(100), pay_in(200), pay_in(300)]
    for role in ("admin", "auditor"):
        response = client.post("/api/v1/ledger/verifications", headers=login(role))
        assert response.status_code == 202  # the task ran eagerly (the embedded default)
        shown = client.get(f"/api/v1/ledger/verifications/{response.json['id']}", headers=login("auditor")).json
        assert shown["status"] == "done" and shown["progress"] == {"done": 3, "total": 3}
        assert {name: shown[name] for name in ("ok", "transactions", "balanced", "chain_intact", "first_bad_id")} == {
            "ok": True, "transactions": 3, "balanced": True, "chain_intact": True, "first_bad_id": None}
        assert shown["started_at"] and shown["finished_at"] and shown["failure_reason"] is None

    without_the_guards()
    db.session.execute(text("UPDATE ledger_transactions SET memo = 'x' WHERE id = :t"), {"t": ids[1]})
    db.session.commit()
    response = client.post("/api/v1/ledger/verifications", headers=login("auditor"))
    assert (response.json["ok"], response.json["chain_intact"], response.json["first_bad_id"]) == (False, False, ids[1])
    db.session.execute(text("UPDATE ledger_transactions SET memo = '' WHERE id = :t"), {"t": ids[1]})
    db.session.commit()

    assert client.post("/api/v1/ledger/verifications", headers=login("consumer")).status_code == 403
    assert client.get(f"/api/v1/ledger/verifications/{response.json['id']}",
                      headers=login("consumer")).status_code == 403
    missing = client.get("/api/v1/ledger/verifications/999", headers=login("auditor"))
    assert missing.status_code == 404 and missing.json["error"]["code"] == LedgerCode.VERIFICATION_NOT_FOUND


@pytest.mark.no_books_check  # leaves a verification whose task was lost: nothing in the ledger is damaged
def test_a_verification_still_queued_is_named_instead_of_a_second_one_until_it_is_abandoned(app, client, login):
    admin = UserFactory(role="admin")
    db.session.flush()
    lost = LedgerVerification(status="queued", requested_by=admin.id)
    db.session.add(lost)
    db.session.commit()
    headers = login("auditor")
    refused = client.post("/api/v1/ledger/verifications", headers=headers)
    assert refused.status_code == 409 and refused.headers["Retry-After"] == "30"
    assert refused.json["error"]["code"] == LedgerCode.VERIFICATION_RUNNING
    assert refused.json["error"]["details"]["verification_id"] == lost.id

    lost.created_at = utcnow() - timedelta(hours=2)  # its task was lost long ago
    db.session.commit()
    response = client.post("/api/v1/ledger/verifications", headers=headers)
    assert response.status_code == 202 and response.json["status"] == "done"


def test_the_sweeper_runs_a_verification_whose_task_was_lost_and_fails_one_whose_worker_died(app, client, login):
    from shop.tasks import sweep

    admin = UserFactory(role="admin")
    db.session.flush()
    lost = LedgerVerification(status="queued", requested_by=admin.id, created_at=utcnow() - timedelta(minutes=2))
    dead = LedgerVerification(status="running", requested_by=admin.id, created_at=utcnow() - timedelta(hours=3),
                              started_at=utcnow() - timedelta(hours=3))
    db.session.add_all([lost, dead])
    db.session.commit()

    sweep.apply(throw=True)

    db.session.expire_all()
    shown = client.get(f"/api/v1/ledger/verifications/{lost.id}", headers=login("auditor")).json
    assert (shown["status"], shown["ok"]) == ("done", True)
    assert db.session.get(LedgerVerification, dead.id).status == "failed"
    assert client.post("/api/v1/ledger/verifications", headers=login("auditor")).status_code == 202
