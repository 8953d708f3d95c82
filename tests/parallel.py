"""Requests sent at once, for the races the tests run on both databases; a transaction run while another is held
uncommitted, for those on PostgreSQL."""
from __future__ import annotations

import threading
import time

from sqlalchemy import text

from shop.db import db
from shop.errors import AppError


def send_together(app, method: str, url: str, requests: list[tuple[dict, dict]]) -> list[tuple[int, dict]]:
    """Send each (headers, body) to `url` with `method` from its own thread, released together; the responses'
    (status, json)."""
    barrier = threading.Barrier(len(requests))
    results: list = [None] * len(requests)

    def run(i: int) -> None:
        headers, body = requests[i]
        client = app.test_client()
        barrier.wait()
        response = client.open(url, method=method, json=body, headers=headers)
        results[i] = (response.status_code, response.json)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def post_together(app, url: str, requests: list[tuple[dict, dict]]) -> list[tuple[int, dict]]:
    """POST each (headers, body) to `url` from its own thread, released together; the responses' (status, json)."""
    return send_together(app, "POST", url, requests)


def second_while_first_uncommitted(pg_app, first, second) -> object:
    """Run `first` in its own transaction and, before it commits, `second` in another; what `second` came to: its
    result, or the code (else the class name) of what it raised. `first` commits once `second` waits on a lock or
    has finished without waiting."""
    held, release = threading.Event(), threading.Event()
    outcome = {}

    def run_first():
        with pg_app.app_context():
            first()
            held.set()
            release.wait(timeout=30)
            db.session.commit()

    def run_second():
        held.wait(timeout=30)
        with pg_app.app_context():
            try:
                result = second()
                db.session.commit()
                outcome["second"] = result
            except Exception as error:  # noqa: BLE001 - whatever it is, the test says which
                outcome["second"] = error.code if isinstance(error, AppError) else type(error).__name__

    threads = [threading.Thread(target=run_first), threading.Thread(target=run_second)]
    for thread in threads:
        thread.start()
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    for _ in range(300):
        if db.session.scalar(text(waiting)) or outcome:
            break
        db.session.rollback()  # PostgreSQL shows a transaction one snapshot of pg_stat_activity: look again afresh
        time.sleep(0.01)
    db.session.rollback()
    release.set()
    for thread in threads:
        thread.join(timeout=30)
    return outcome.get("second")
