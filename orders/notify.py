"""Notifications about an order (pickup ready, shipped, refund made) through one small interface.

`notify` keeps a notification row in the current transaction; once it commits, a task emails the
operations mailbox (`NOTIFY_EMAIL_TO`) over SMTP when `SMTP_HOST` is configured, otherwise it writes a log
line. A mail the server refuses (or a server that cannot be reached) stays pending: the `orders.notifications`
sweeper tries it again a grace period after its last attempt, MAX_ATTEMPTS times in all, then it is `failed`
(logged as an error); a sweep's mails are sent in turn until one fails, the rest left to the next sweep. A sent or
failed notification is kept KEEP_FOR after its last attempt, then the `orders.old_notifications` sweeper deletes it
(the table is bounded by the shop's recent orders, not all it ever had). In the
embedded default (tasks run in the serving process) a mail is not sent from the request that made it, which
would wait on the mail server: it waits for the embedded scheduler's next sweep.
Consumers are known by phone number only in v1 (no email address), so the mail goes to the people who contact
them (customer service); a consumer channel (SMS) plugs in here later. Neither the mail, the log line nor the
task's arguments carry personal data: the order id and the kind only.
"""
from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import timedelta
from email.message import EmailMessage

from celery import shared_task
from flask import current_app
from sqlalchemy import delete, or_, select, update

from orders.models import Notification
from shop.db import after_commit, db, utcnow

log = logging.getLogger(__name__)

KINDS = {"pickup_ready": "is ready for pickup", "shipped": "has been shipped", "refund_made": "has been refunded"}
SMTP_TIMEOUT_SECONDS = 10
MAX_ATTEMPTS = 5  # then the notification is `failed`, not tried every minute for ever
REQUEUE_AFTER = timedelta(seconds=60)  # after an attempt: longer than one takes
SWEEP_BATCH = 100  # notifications one sweep queues at most
KEEP_FOR = timedelta(days=30)  # a sent or failed notification, after its last attempt
FORGET_BATCH = 10_000  # old notifications one sweep deletes at most (one bounded transaction)


def notify(*, kind: str, order_id: int) -> None:
    """Tell the order's consumer about `kind` once the current transaction commits."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification {kind!r}")
    config = current_app.config
    waits_for_sweep = bool(config["CELERY"].get("task_always_eager") and config.get("SMTP_HOST"))
    notification = Notification(kind=kind, order_id=order_id, queued_at=None if waits_for_sweep else utcnow())
    db.session.add(notification)
    db.session.flush()
    if not waits_for_sweep:
        after_commit(lambda notification_id=notification.id: send_notification.delay(notification_id))


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
    """Deliver one notification: "emailed" over SMTP when configured (with SMTP_STARTTLS, only to a server whose
    certificate the system's authorities, or OpenSSL's SSL_CERT_FILE, vouch for), else "logged"."""
    config = current_app.config
    if not config.get("SMTP_HOST"):
        log.info("notification %s for order %s", kind, order_id)
        return "logged"
    smtp = smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=SMTP_TIMEOUT_SECONDS)
    try:
        if config["SMTP_STARTTLS"]:  # the server's certificate checked, as smtplib's own default context does not
            smtp.starttls(context=ssl.create_default_context())
        if config.get("SMTP_USERNAME"):
            smtp.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"] or "")
        smtp.send_message(message_for(kind=kind, order_id=order_id))
        try:  # the server has the mail: how it takes the goodbye must not make it a failure, sent again
            smtp.quit()
        except (OSError, smtplib.SMTPException) as exc:
            log.info("notification %s for order %s: the mail server's goodbye failed (%s)", kind, order_id,
                     exc.__class__.__name__)
    finally:
        smtp.close()
    log.info("notification %s for order %s emailed", kind, order_id)
    return "emailed"


def claim(*, notification_id: int) -> Notification | None:
    """Count an attempt at a pending notification, unless another run counted one since it was read; the
    notification, or None if it is not ours to send now. The caller commits before sending."""
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.status != "pending":
        return None
    claimed = db.session.execute(update(Notification).where(Notification.id == notification_id,
                                                            Notification.status == "pending",
                                                            Notification.attempts == notification.attempts)
                                 .values(attempts=Notification.attempts + 1, queued_at=utcnow())
                                 .execution_options(synchronize_session=False)).rowcount
    db.session.refresh(notification)
    return notification if claimed else None


def record_outcome(notification: Notification, error: Exception | None) -> None:
    """Mark a claimed notification sent, or after a failed attempt leave it to the sweeper (`failed` after
    MAX_ATTEMPTS). The caller commits."""
    if error is None:
        notification.status, notification.sent_at = "sent", utcnow()
    elif notification.attempts >= MAX_ATTEMPTS:
        notification.status = "failed"
        log.error("notification %s for order %s not sent after %s attempts: given up (%s)", notification.kind,
                  notification.order_id, notification.attempts, error.__class__.__name__)
    else:
        log.warning("notification %s for order %s not sent (attempt %s, %s); the sweeper tries again",
                    notification.kind, notification.order_id, notification.attempts, error.__class__.__name__)


def requeue_unsent() -> int:
    """Sweeper: queue the notifications waiting for a sweep and those still pending a grace period after their last
    attempt (rows another worker holds are skipped); how many."""
    now = utcnow()
    due = db.session.scalars(
        select(Notification).where(Notification.status == "pending",
                                   or_(Notification.queued_at.is_(None), Notification.queued_at < now - REQUEUE_AFTER))
        .order_by(Notification.id).limit(SWEEP_BATCH).with_for_update(skip_locked=True)).all()
    for notification in due:
        notification.queued_at = now
    db.session.flush()
    if due:
        after_commit(lambda ids=[notification.id for notification in due]: send_notifications.delay(ids))
    return len(due)


def forget_old() -> int:
    """Sweeper: delete sent and failed notifications whose last attempt is KEEP_FOR old, the oldest first, at most
    FORGET_BATCH (pending ones are never deleted); how many. The caller commits."""
    old = (select(Notification.id).where(Notification.status.in_(("sent", "failed")),
                                         Notification.queued_at < utcnow() - KEEP_FOR)
           .order_by(Notification.id).limit(FORGET_BATCH).scalar_subquery())
    return db.session.execute(delete(Notification).where(Notification.id.in_(old))
                              .execution_options(synchronize_session=False)).rowcount


def _attempt(notification_id: int) -> str:
    """Try a pending notification once, its attempt committed before the mail server is asked (no lock held
    meanwhile), any failure counted against MAX_ATTEMPTS; its status afterwards ("missing" if it is not pending, or
    another run took it)."""
    notification = claim(notification_id=notification_id)
    db.session.commit()
    if notification is None:
        return "missing"
    try:
        send(kind=notification.kind, order_id=notification.order_id)
        error = None
    except Exception as exc:  # noqa: BLE001 - refused, out of reach, or any other failure (a mistyped SMTP_HOST):
        error = exc  # an attempt all the same, logged by its class alone (an exception's text may quote the config)
    record_outcome(notification, error)
    db.session.commit()
    return notification.status


@shared_task(name="orders.send_notification", acks_late=True)
def send_notification(notification_id: int) -> str:
    """Send one notification after its commit; its status afterwards."""
    return _attempt(notification_id)


@shared_task(name="orders.send_notifications", acks_late=True)
def send_notifications(notification_ids: list[int]) -> int:
    """Send the notifications a sweep found due, in turn, until one fails (the mail server takes no mail now: the
    rest wait for the next sweep, not a time-out each); how many were sent."""
    sent = 0
    for notification_id in notification_ids:
        status = _attempt(notification_id)
        if status in ("pending", "failed"):
            break
        sent += status == "sent"
    return sent
