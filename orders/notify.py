"""Notifications about an order (pickup ready, shipped, refund made) through one small interface.

`notify` queues a task once the current transaction commits; the task emails the operations
mailbox (`NOTIFY_EMAIL_TO`) over SMTP when `SMTP_HOST` is configured, otherwise it writes a log
line. Consumers are known by phone number only in v1 (no email address), so the mail goes to the
people who contact them (customer service); a consumer channel (SMS) plugs in here later. Neither
the mail, the log line nor the task's arguments carry personal data: the order id and the kind only.
"""
from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from celery import shared_task
from flask import current_app

from shop.db import after_commit

log = logging.getLogger(__name__)

KINDS = {"pickup_ready": "is ready for pickup", "shipped": "has been shipped", "refund_made": "has been refunded"}
SMTP_TIMEOUT_SECONDS = 10


def notify(*, kind: str, order_id: int) -> None:
    """Tell the order's consumer about `kind` once the current transaction commits."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification {kind!r}")
    after_commit(lambda: send_notification.delay(kind, order_id))


def message_for(*, kind: str, order_id: int) -> EmailMessage:
    """The email for a notification: the order id and what happened, nothing personal."""
    config = current_app.config
    message = EmailMessage()
    message["From"] = config["SMTP_FROM"]
    message["To"] = config["NOTIFY_EMAIL_TO"]
    message["Subject"] = f"Order {order_id} {KINDS[kind]}"
    message.set_content(f"Order {order_id} {KINDS[kind]} ({kind}).\n"
                        f"Please let the consumer know; their contact details are on the order.\n")
    return message


def send(*, kind: str, order_id: int) -> str:
    """Deliver one notification: "emailed" over SMTP when configured, else "logged"."""
    config = current_app.config
    if not config.get("SMTP_HOST"):
        log.info("notification %s for order %s", kind, order_id)
        return "logged"
    with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=SMTP_TIMEOUT_SECONDS) as smtp:
        if config["SMTP_STARTTLS"]:
            smtp.starttls()
        if config.get("SMTP_USERNAME"):
            smtp.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"] or "")
        smtp.send_message(message_for(kind=kind, order_id=order_id))
    log.info("notification %s for order %s emailed", kind, order_id)
    return "emailed"


@shared_task(name="orders.send_notification", acks_late=True, autoretry_for=(OSError, smtplib.SMTPException),
             retry_backoff=True, max_retries=5)
def send_notification(kind: str, order_id: int) -> str:
    """Send one notification (retried with back-off while the mail server is unreachable)."""
    return send(kind=kind, order_id=order_id)
