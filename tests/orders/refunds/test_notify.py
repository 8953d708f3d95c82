"""The notifier: a log line without personal data, or a mail to the operations mailbox over SMTP."""
from __future__ import annotations

import logging

import pytest

from orders import notify
from shop.db import db
from tests.factories import UserFactory


class RecordingSMTP:
    """Stands in for `smtplib.SMTP`: records the connection and the messages sent."""

    sent: list = []
    connections: list = []

    def __init__(self, host, port, timeout=None):
        RecordingSMTP.connections.append((host, port))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def starttls(self):
        """Nothing to negotiate."""

    def login(self, user, password):
        """Accept any credentials."""

    def send_message(self, message):
        """Keep the message."""
        RecordingSMTP.sent.append(message)


@pytest.fixture
def smtp(monkeypatch):
    """SMTP replaced by a recorder."""
    RecordingSMTP.sent, RecordingSMTP.connections = [], []
    monkeypatch.setattr("orders.notify.smtplib.SMTP", RecordingSMTP)
    return RecordingSMTP


def test_without_smtp_a_log_line_names_only_the_order_and_the_kind(app, smtp, caplog):
    caplog.set_level(logging.INFO, logger="orders.notify")
    UserFactory(username="consumer13800000000")
    notify.notify(kind="refund_made", order_id=42)
    assert caplog.records == []  # nothing before the commit

    db.session.commit()

    assert [r.getMessage() for r in caplog.records] == ["notification refund_made for order 42"]
    assert smtp.sent == []


def test_with_smtp_host_the_operations_mailbox_gets_a_mail_after_commit(app, smtp):
    app.config.update(SMTP_HOST="mail.internal", SMTP_PORT=2525, SMTP_FROM="shop@example.com",
                      NOTIFY_EMAIL_TO="service@example.com")
    UserFactory()  # the change the notification is about
    notify.notify(kind="pickup_ready", order_id=7)
    db.session.rollback()
    assert smtp.sent == []  # a rolled-back change notifies nobody

    notify.notify(kind="pickup_ready", order_id=7)
    db.session.commit()

    assert smtp.connections == [("mail.internal", 2525)]
    (message,) = smtp.sent
    assert (message["To"], message["From"]) == ("service@example.com", "shop@example.com")
    assert message["Subject"] == "Order 7 is ready for pickup"


def test_an_unknown_kind_is_a_programming_error(app):
    with pytest.raises(ValueError):
        notify.notify(kind="birthday", order_id=1)
