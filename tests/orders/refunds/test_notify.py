"""The notifier: a log line without personal data, or a mail to the operations mailbox over SMTP."""
from __future__ import annotations

import email
import ipaddress
import logging
import socketserver
import ssl
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from orders import notify
from orders.models import Notification
from shop.db import db, utcnow
from shop.periodic import EmbeddedScheduler
from shop.tasks import sweep
from tests.factories import UserFactory
from tests.shop.test_periodic import Clock


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

    def starttls(self, context=None):
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


def test_with_smtp_host_the_operations_mailbox_gets_a_mail_after_commit_at_the_sweep(app, smtp):
    app.config.update(SMTP_HOST="mail.internal", SMTP_PORT=2525, SMTP_FROM="shop@example.com",
                      NOTIFY_EMAIL_TO="service@example.com")
    UserFactory()  # the change the notification is about
    notify.notify(kind="pickup_ready", order_id=7)
    db.session.rollback()
    assert smtp.sent == []  # a rolled-back change notifies nobody

    notify.notify(kind="pickup_ready", order_id=7)
    db.session.commit()
    assert smtp.sent == []  # the request does not wait on the mail server: the embedded scheduler's sweep sends it
    sweep()

    assert smtp.connections == [("mail.internal", 2525)]
    (message,) = smtp.sent
    assert (message["To"], message["From"]) == ("service@example.com", "shop@example.com")
    assert message["Subject"] == "Order 7 is ready for pickup"


def test_an_unknown_kind_is_a_programming_error(app):
    with pytest.raises(ValueError):
        notify.notify(kind="birthday", order_id=1)


class MailServer(socketserver.ThreadingTCPServer):
    """A real SMTP server on a local port that refuses the first `refuse` connections (421), answers each `delay`
    seconds late, and keeps the messages it accepts."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SMTPSession)
        self.refuse, self.delay, self.connections, self.received = 0, 0.0, 0, []
        self.tls: ssl.SSLContext | None = None  # offers STARTTLS, then AUTH, with this context's certificate
        self.logins: list[str] = []  # the AUTH commands received
        self.quit_reply = "221 bye"


class SMTPSession(socketserver.StreamRequestHandler):
    """One client's conversation: greeting, envelope, DATA up to the lone dot, QUIT."""

    def reply(self, line: str) -> None:
        """Send one reply line."""
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        server = self.server
        server.connections += 1
        time.sleep(server.delay)
        if server.refuse:
            server.refuse -= 1
            self.reply("421 4.3.2 try again later")
            return
        self.reply("220 stub ESMTP")
        self.handle_rest()

    def handle_rest(self) -> None:
        """The conversation after the greeting (again after STARTTLS, on the encrypted socket)."""
        server = self.server
        data = None
        for raw in self.rfile:
            line = raw.decode()
            if data is not None:
                if line.rstrip("\r\n") == ".":
                    server.received.append(email.message_from_string("".join(data)))
                    data = None
                    self.reply("250 2.0.0 queued")
                else:
                    data.append(line)
            elif line[:4].upper() == "EHLO" and server.tls:
                self.reply("250-stub")
                self.reply("250 AUTH PLAIN" if isinstance(self.request, ssl.SSLSocket) else "250 STARTTLS")
            elif line[:8].upper() == "STARTTLS" and server.tls:
                self.reply("220 go ahead")
                self.wfile.flush()
                try:
                    self.request = server.tls.wrap_socket(self.request, server_side=True)
                except (OSError, ssl.SSLError):
                    return  # the client refused the certificate
                self.rfile, self.wfile = self.request.makefile("rb"), self.request.makefile("wb", buffering=0)
                return self.handle_rest()
            elif line[:4].upper() == "AUTH":
                server.logins.append(line.strip())
                self.reply("235 2.7.0 ok")
            elif line[:4].upper() == "DATA":
                data = []
                self.reply("354 go on")
            elif line[:4].upper() == "QUIT":
                self.reply(server.quit_reply)
                return
            else:
                self.reply("250 ok")


@pytest.fixture
def mail_server(app):
    """A local SMTP server the app is configured to send through."""
    server = MailServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=server.server_address[1], SMTP_FROM="shop@example.com",
                      NOTIFY_EMAIL_TO="service@example.com")
    yield server
    server.shutdown()
    server.server_close()


def a_minute_passes() -> None:
    """Date every notification's last attempt a minute and more back, past the sweeper's grace."""
    db.session.execute(update(Notification).values(queued_at=utcnow() - timedelta(minutes=2)))
    db.session.commit()


def test_a_mail_the_server_refuses_is_kept_and_sent_once_it_accepts(app, mail_server):
    """In the embedded default (eager tasks) a mail the server refused was tried once and lost."""
    mail_server.refuse = 1
    UserFactory()  # the change the notification is about
    notify.notify(kind="pickup_ready", order_id=7)
    db.session.commit()
    sweep()
    assert (mail_server.connections, mail_server.received) == (1, [])

    sweep()  # within the grace period: not tried again yet
    assert mail_server.connections == 1
    a_minute_passes()
    sweep()

    (message,) = mail_server.received
    assert (message["Subject"], message["To"]) == ("Order 7 is ready for pickup", "service@example.com")
    a_minute_passes()
    sweep()
    assert (mail_server.connections, len(mail_server.received)) == (2, 1)  # sent once


def test_a_mail_server_that_never_accepts_is_tried_a_bounded_number_of_times(app, mail_server, caplog):
    mail_server.refuse = 100
    UserFactory()
    notify.notify(kind="refund_made", order_id=9)
    db.session.commit()

    for _ in range(notify.MAX_ATTEMPTS + 3):
        sweep()
        a_minute_passes()

    assert mail_server.connections == notify.MAX_ATTEMPTS
    assert "notification refund_made for order 9 not sent after 5 attempts: given up" in caplog.text


def test_a_commit_does_not_wait_for_a_slow_mail_server(app, mail_server):
    """In the embedded default the mail was sent in the request's own thread after its commit, so a slow server
    held the response; now the embedded scheduler's sweep sends it."""
    mail_server.delay = 2.0
    UserFactory()
    notify.notify(kind="shipped", order_id=11)
    started = time.monotonic()
    db.session.commit()
    assert time.monotonic() - started < 1.0

    sweep()
    assert [m["Subject"] for m in mail_server.received] == ["Order 11 has been shipped"]


def test_broker_down_at_commit_the_notification_is_sent_by_the_sweeper(app, caplog, monkeypatch):
    """A notification was only its task's message: with the broker down at the commit it was lost."""
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    caplog.set_level(logging.INFO, logger="orders.notify")
    with monkeypatch.context() as outage:
        outage.setattr(notify.send_notification, "delay", broker_down)
        UserFactory()
        notify.notify(kind="shipped", order_id=5)
        db.session.commit()
    assert not [m for m in caplog.messages if m.startswith("notification")]

    a_minute_passes()
    sweep()

    assert [m for m in caplog.messages if m.startswith("notification")] == ["notification shipped for order 5"]


def test_a_sweep_that_finds_the_mail_server_refusing_leaves_the_rest_for_the_next(app, mail_server):
    """The sweep sent each due mail in turn, so a server out of reach (each try a 10 s time-out) held the embedded
    scheduler, and with it reservation expiry, for as many tries as mails were waiting."""
    mail_server.refuse = 100
    UserFactory()
    for order_id in (21, 22, 23):
        notify.notify(kind="shipped", order_id=order_id)
    db.session.commit()

    sweep()
    assert mail_server.connections == 1

    mail_server.refuse = 0
    a_minute_passes()
    sweep()
    assert sorted(m["Subject"] for m in mail_server.received) == [f"Order {n} has been shipped" for n in (21, 22, 23)]


def test_in_the_embedded_default_the_schedulers_sweep_sends_the_waiting_mail(app, mail_server):
    clock = Clock()
    scheduler = EmbeddedScheduler(app, now=clock)
    UserFactory()
    notify.notify(kind="pickup_ready", order_id=31)
    db.session.commit()
    scheduler.tick()
    assert mail_server.received == []

    clock.now += timedelta(seconds=61)
    scheduler.tick()

    assert [m["Subject"] for m in mail_server.received] == ["Order 31 is ready for pickup"]


def test_sent_and_given_up_notifications_are_forgotten_after_a_while_pending_ones_never(app):
    """The notifications table kept every sent row for ever: it grew with every order a shop ever notified about."""
    UserFactory()
    for order_id in (51, 52, 53, 54, 55):
        notify.notify(kind="shipped", order_id=order_id)
    db.session.commit()  # no SMTP_HOST: each is logged at once, so sent
    long_ago = utcnow() - notify.KEEP_FOR - timedelta(hours=1)
    db.session.execute(update(Notification).where(Notification.order_id.in_((51, 52, 53)))
                       .values(queued_at=long_ago))
    db.session.execute(update(Notification).where(Notification.order_id == 52).values(status="failed"))
    db.session.execute(update(Notification).where(Notification.order_id == 53).values(status="pending", attempts=0))
    db.session.execute(update(Notification).where(Notification.order_id == 54)
                       .values(queued_at=utcnow() - notify.KEEP_FOR + timedelta(hours=1)))
    db.session.commit()

    sweep()

    kept = db.session.execute(select(Notification.order_id, Notification.status).order_by(Notification.order_id))
    assert kept.all() == [(53, "sent"), (54, "sent"), (55, "sent")]  # 53 was pending: the sweep sent it, kept


def test_a_mail_that_fails_otherwise_than_by_refusal_is_also_tried_a_bounded_number_of_times(app, caplog):
    """A failure other than the server's refusal or the network's (here a mistyped SMTP_HOST, whose empty label
    smtplib refuses with a UnicodeError) escaped the attempt: the notification stayed pending, counted past
    MAX_ATTEMPTS and tried every minute for ever, with a traceback each time."""
    app.config.update(SMTP_HOST="mail..internal", SMTP_PORT=2525)
    UserFactory()
    notify.notify(kind="refund_made", order_id=61)
    db.session.commit()

    for _ in range(notify.MAX_ATTEMPTS + 3):
        sweep()
        a_minute_passes()

    notification = db.session.scalar(select(Notification).where(Notification.order_id == 61))
    assert (notification.status, notification.attempts) == ("failed", notify.MAX_ATTEMPTS)
    assert "notification refund_made for order 61 not sent after 5 attempts: given up (UnicodeError)" in caplog.text


def self_signed_certificate(directory) -> tuple[str, str]:
    """A certificate for 127.0.0.1 that no authority signed, and its key: the files' paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = utcnow()
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "smtp.pem", directory / "smtp.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.mark.parametrize("trusted", [False, True])
def test_starttls_sends_the_smtp_password_only_to_a_server_whose_certificate_is_trusted(app, mail_server, tmp_path,
                                                                                      monkeypatch, trusted):
    """STARTTLS was negotiated without checking the server's certificate (smtplib's default context verifies
    nothing), so anyone between the shop and its mail server could pose as it and be sent SMTP_PASSWORD."""
    cert_path, key_path = self_signed_certificate(tmp_path)
    mail_server.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    mail_server.tls.load_cert_chain(cert_path, key_path)
    if trusted:  # a deployment trusts its own mail server's authority as OpenSSL is told to
        monkeypatch.setenv("SSL_CERT_FILE", cert_path)
    app.config.update(SMTP_STARTTLS=True, SMTP_USERNAME="shop", SMTP_PASSWORD="s3cret-password")
    UserFactory()
    notify.notify(kind="shipped", order_id=71)
    db.session.commit()

    sweep()

    notification = db.session.scalar(select(Notification).where(Notification.order_id == 71))
    if trusted:
        assert (len(mail_server.logins), len(mail_server.received), notification.status) == (1, 1, "sent")
    else:
        assert (mail_server.logins, mail_server.received, notification.status) == ([], [], "pending")


def test_a_mail_the_server_accepted_is_not_sent_again_for_a_rude_goodbye(app, mail_server):
    """A server that answered QUIT otherwise than 221 after it had queued the mail made smtplib raise on leaving: the
    mail counted as not sent and went out again at each sweep, MAX_ATTEMPTS copies."""
    mail_server.quit_reply = "421 4.4.2 closing"
    UserFactory()
    notify.notify(kind="shipped", order_id=81)
    db.session.commit()

    for _ in range(3):
        sweep()
        a_minute_passes()

    assert [m["Subject"] for m in mail_server.received] == ["Order 81 has been shipped"]
    assert db.session.scalar(select(Notification.status).where(Notification.order_id == 81)) == "sent"
