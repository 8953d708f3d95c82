"""Failed sign-ins: the per-address limit (not dodged with X-Forwarded-For), the backoff per username and address
(which someone elsewhere cannot use to lock the owner out, and a password change lifts), the alarm, and parallel bursts
that must not slip past either."""
from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import Counter

import pytest

from shop.auth import throttle
from shop.db import db
from tests.conftest import make_app
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.shop.test_errors import assert_error


def attempt(client, username, password="wrong password", *, address="192.0.2.1", forwarded_for=None):
    """POST credentials from `address` (the TCP peer), optionally with an X-Forwarded-For header."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return client.post("/api/v1/auth/token", json={"username": username, "password": password},
                       headers=headers, environ_base={"REMOTE_ADDR": address})


@pytest.fixture
def clock(monkeypatch):
    """The backoff's clock, frozen at a whole second and moved by `clock.advance(seconds)`."""

    class Clock:
        now = float(int(time.time()))

        def advance(self, seconds):
            self.now += seconds

    fake = Clock()
    monkeypatch.setattr(throttle, "_now", lambda: fake.now)
    return fake


@pytest.fixture
def proxied_client(sqlite_template, tmp_path):
    """A client of an app configured with TRUSTED_PROXY_HOPS=1 (one reverse proxy in front)."""
    shutil.copy(sqlite_template, tmp_path / "shop.db")
    app = make_app(tmp_path, TRUSTED_PROXY_HOPS="1")
    with app.app_context():
        yield app.test_client()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def limits_app(request):
    """The app with its limiter in process memory (the embedded default) and in Redis (production)."""
    return request.getfixturevalue("app" if request.param == "memory" else "redis_app")


def burst(app, attempts: list[tuple[str, str, str]]) -> Counter:
    """POST each (username, password, address) from its own thread, released together; the statuses counted."""
    barrier, statuses = threading.Barrier(len(attempts)), []

    def run(username, password, address):
        client = app.test_client()
        barrier.wait()
        statuses.append(attempt(client, username, password, address=address).status_code)

    threads = [threading.Thread(target=run, args=args) for args in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return Counter(statuses)


def test_successes_do_not_count_but_failures_from_one_address_are_limited(client):
    user = UserFactory()
    db.session.commit()
    for _ in range(6):
        assert attempt(client, user.username, DEFAULT_PASSWORD).status_code == 200
    statuses = [attempt(client, f"someone{n}").status_code for n in range(6)]
    assert statuses == [401] * 5 + [429]
    error = assert_error(attempt(client, user.username, DEFAULT_PASSWORD), 429, "rate_limited")
    assert "5 per 1 minute" in error["message"]
    assert attempt(client, user.username, DEFAULT_PASSWORD, address="192.0.2.2").status_code == 200


def test_rotating_x_forwarded_for_does_not_reset_the_address_limit_without_trusted_proxies(client):
    statuses = [attempt(client, f"someone{n}", forwarded_for=f"203.0.113.{n}").status_code for n in range(6)]
    assert statuses == [401] * 5 + [429]
    assert_error(attempt(client, "someone-else", forwarded_for="198.51.100.9"), 429, "rate_limited")


def test_rotating_addresses_within_one_ipv6_network_does_not_reset_the_limits(client, clock):
    victim = UserFactory()
    db.session.commit()
    guesses = [attempt(client, victim.username, address=f"2001:db8:1:2::{n:x}").status_code for n in range(1, 5)]
    assert guesses == [401] * 3 + [429]  # the username's backoff follows the /64, not each address in it
    statuses = [attempt(client, f"someone{n}", address=f"2001:db8:1:2:{n:x}::1").status_code for n in range(1, 4)]
    assert statuses == [401] * 2 + [429]  # and so does the per-address limit: five failures in all
    assert_error(attempt(client, "someone-else", address="2001:db8:1:3::9"), 401, "invalid_credentials")
    assert attempt(client, victim.username, DEFAULT_PASSWORD, address="2001:db8:1:3::1").status_code == 200


def test_an_ipv4_mapped_address_counts_as_its_ipv4_address(client):
    statuses = [attempt(client, f"someone{n}", address="192.0.2.7" if n % 2 else "::ffff:192.0.2.7").status_code
                for n in range(6)]
    assert statuses == [401] * 5 + [429]


def test_behind_one_trusted_proxy_the_address_it_appended_is_limited(proxied_client):
    proxy = "10.0.0.1"
    statuses = [attempt(proxied_client, f"someone{n}", address=proxy, forwarded_for=f"6.6.6.{n}, 203.0.113.7")
                .status_code for n in range(6)]
    assert statuses == [401] * 5 + [429]
    other_client = attempt(proxied_client, "someone-else", address=proxy, forwarded_for="203.0.113.7, 198.51.100.2")
    assert_error(other_client, 401, "invalid_credentials")


def test_a_parallel_burst_of_wrong_passwords_from_one_address_gets_five_checked(limits_app):
    statuses = burst(limits_app, [(f"someone{n}", "wrong password", "192.0.2.1") for n in range(16)])
    assert statuses == Counter({401: 5, 429: 11})


def test_right_passwords_signing_in_together_from_one_address_are_all_let_in(limits_app):
    """Eight clerks behind one shop's address sign in at once: attempts still being checked use the failure budget
    only until their right passwords give it back, so none is refused."""
    with limits_app.app_context():
        users = [UserFactory() for _ in range(8)]
        db.session.commit()
        names = [user.username for user in users]
    statuses = burst(limits_app, [(name, DEFAULT_PASSWORD, "192.0.2.1") for name in names])
    assert statuses == Counter({200: 8})


def test_a_parallel_burst_against_one_username_gets_three_checked_before_the_backoff(limits_app, clock):
    """The clock is frozen: on a slow machine the burst may outlast the 1 s wait, and a fourth attempt is then fair."""
    limits_app.config["LOGIN_RATE_LIMIT"] = "100 per minute"  # only the backoff stands in the way
    statuses = burst(limits_app, [("nobody-here", "wrong password", "192.0.2.1") for _ in range(16)])
    assert statuses == Counter({401: 3, 429: 13})


def test_right_passwords_and_registrations_from_one_address_share_one_limit(app, client):
    user = UserFactory()
    db.session.commit()
    limit = int(app.config["AUTH_RATE_LIMIT"].split()[0])
    registered = client.post("/api/v1/auth/register", json={"phone": "13912345678", "password": "long enough pw"},
                             environ_base={"REMOTE_ADDR": "192.0.2.1"})
    signed_in = [attempt(client, user.username, DEFAULT_PASSWORD).status_code for _ in range(limit - 1)]

    assert registered.status_code == 201 and signed_in == [200] * (limit - 1)
    refused = attempt(client, user.username, DEFAULT_PASSWORD)
    assert f"{limit} per 1 minute" in assert_error(refused, 429, "rate_limited")["message"]
    assert int(refused.headers["Retry-After"]) > 0
    again = client.post("/api/v1/auth/register", json={"phone": "13912345679", "password": "long enough pw"},
                        environ_base={"REMOTE_ADDR": "192.0.2.1"})
    assert_error(again, 429, "rate_limited")
    assert attempt(client, user.username, DEFAULT_PASSWORD, address="192.0.2.2").status_code == 200


@pytest.fixture
def many_attempts_allowed(app):
    """Per-address limits the backoff tests do not reach (they try dozens of times from one address)."""
    app.config.update(LOGIN_RATE_LIMIT="1000 per minute", AUTH_RATE_LIMIT="1000 per minute")


@pytest.mark.parametrize("known", [True, False])
def test_failures_per_username_back_off_exponentially_up_to_the_cap(client, clock, many_attempts_allowed, known):
    username = UserFactory().username if known else "nobody-here"
    db.session.commit()
    for _ in range(3):
        assert_error(attempt(client, username), 401, "invalid_credentials")
    waits = []
    for _ in range(12):
        blocked = attempt(client, username, DEFAULT_PASSWORD)
        error = assert_error(blocked, 429, "too_many_attempts")
        waits.append(int(blocked.headers["Retry-After"]))
        assert error["details"] == {"retry_after_seconds": waits[-1]}
        clock.advance(waits[-1] - 1)
        assert attempt(client, username).status_code == 429
        clock.advance(1)
        assert_error(attempt(client, username), 401, "invalid_credentials")
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]


def test_a_success_resets_the_backoff(client, clock, many_attempts_allowed):
    user = UserFactory()
    db.session.commit()
    for wait_after in (0, 0, 1, 2, 0):  # five failures, each after the previous wait
        assert_error(attempt(client, user.username), 401, "invalid_credentials")
        clock.advance(wait_after)
    assert attempt(client, user.username, DEFAULT_PASSWORD).headers["Retry-After"] == "4"
    clock.advance(4)
    assert attempt(client, user.username, DEFAULT_PASSWORD).status_code == 200
    for _ in range(2):
        assert_error(attempt(client, user.username), 401, "invalid_credentials")
    assert attempt(client, user.username, DEFAULT_PASSWORD).status_code == 200


def test_one_username_waiting_does_not_slow_down_another(client, clock):
    victim, other = UserFactory(), UserFactory()
    db.session.commit()
    for _ in range(3):
        attempt(client, victim.username)
    assert attempt(client, victim.username, DEFAULT_PASSWORD).status_code == 429
    assert attempt(client, other.username, DEFAULT_PASSWORD).status_code == 200


def test_failures_from_elsewhere_never_lock_the_owner_out(client, clock, many_attempts_allowed):
    admin = UserFactory(role="admin")
    db.session.commit()
    for attacker in ("203.0.113.9", "198.51.100.7"):
        for _ in range(3):
            assert_error(attempt(client, admin.username, address=attacker), 401, "invalid_credentials")
        assert_error(attempt(client, admin.username, DEFAULT_PASSWORD, address=attacker), 429, "too_many_attempts")

    assert attempt(client, admin.username, DEFAULT_PASSWORD, address="192.0.2.1").status_code == 200
    assert_error(attempt(client, admin.username, DEFAULT_PASSWORD, address="203.0.113.9"), 429, "too_many_attempts")


def test_behind_a_trusted_proxy_the_backoff_follows_the_address_it_appended(proxied_client):
    user = UserFactory()
    db.session.commit()
    for n in range(3):
        attempt(proxied_client, user.username, address="10.0.0.1", forwarded_for=f"6.6.6.{n}, 203.0.113.7")
    locked = attempt(proxied_client, user.username, DEFAULT_PASSWORD, address="10.0.0.1", forwarded_for="203.0.113.7")
    owner = attempt(proxied_client, user.username, DEFAULT_PASSWORD, address="10.0.0.1",
                    forwarded_for="203.0.113.7, 192.0.2.1")
    assert_error(locked, 429, "too_many_attempts")
    assert owner.status_code == 200


def test_an_admins_password_reset_through_the_api_lifts_the_backoff_at_every_address(client, clock, login):
    user = UserFactory()
    db.session.commit()
    for address in ("203.0.113.9", "192.0.2.1"):
        for _ in range(3):
            attempt(client, user.username, address=address)
        assert_error(attempt(client, user.username, DEFAULT_PASSWORD, address=address), 429, "too_many_attempts")

    reset = client.patch(f"/api/v1/users/{user.id}", json={"password": "fresh password 9"}, headers=login("admin"))

    assert reset.status_code == 200
    for address in ("203.0.113.9", "192.0.2.1"):
        assert attempt(client, user.username, "fresh password 9", address=address).status_code == 200


def test_a_spike_of_failures_is_logged_once_a_minute_without_usernames(app, client, clock, caplog):
    app.config["LOGIN_FAILURE_ALERT_PER_MINUTE"] = 3
    clock.now = clock.now // 60 * 60
    caplog.set_level(logging.WARNING, logger="shop.auth.throttle")
    for n in range(8):
        attempt(client, f"victim{n}", address=f"192.0.2.{n + 1}")
    warnings = [r for r in caplog.records if r.name == "shop.auth.throttle"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "more than 3" in warnings[0].getMessage() and "victim" not in warnings[0].getMessage()
    clock.advance(60)
    for n in range(4):
        attempt(client, f"victim{n}", address=f"192.0.3.{n + 1}")
    assert len([r for r in caplog.records if r.name == "shop.auth.throttle"]) == 2


@pytest.mark.redis
def test_counters_live_in_redis_without_usernames_or_addresses(redis_app, redis_url, clock):
    """The backoff's clock is frozen: on a slow machine, starting the second app took longer than the 1 s wait."""
    import redis

    client = redis_app.test_client()
    for _ in range(3):
        attempt(client, "13912345678", address="192.0.2.77")
    keys = [key.decode() for key in redis.Redis.from_url(redis_url).keys("*signin*")]
    assert keys and not any("13912345678" in key or "192.0.2.77" in key for key in keys)
    other_process = make_app(redis_app.instance_path, REDIS_URL=redis_url,
                             DATABASE_URL=redis_app.config["SQLALCHEMY_DATABASE_URI"])
    with other_process.app_context():
        assert_error(attempt(other_process.test_client(), "13912345678", address="192.0.2.77"),
                     429, "too_many_attempts")
        db.engine.dispose()


def test_the_counters_keys_cannot_be_recomputed_from_a_phone_number_without_the_apps_secret(redis_app, redis_url,
                                                                                             clock):
    """A digest of a phone number alone is the number: the 10⁹-odd mobile numbers are hashed through in seconds."""
    import hashlib

    import redis

    phone, address, store = "13912345678", "192.0.2.77", redis.Redis.from_url(redis_url)
    client = redis_app.test_client()
    attempt(client, phone, address=address)
    throttle.clear_everywhere(phone)  # a password change: the keys start anew
    attempt(client, phone, address=address)
    keys = [key.decode() for key in store.keys("*signin*")]
    changed = [int(store.get(key)) for key in keys if "signin:changed:" in key]
    guessed = [hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:32]
               for parts in ([phone], [0, phone, address], *([value, phone, address] for value in changed))]
    assert changed and keys and not [key for key in keys if any(digest in key for digest in guessed)]


def test_registrations_per_address_follow_register_rate_limit_on_the_route_and_the_page(sqlite_template, tmp_path):
    from tests.web.test_pages_security import _register

    shutil.copy(sqlite_template, tmp_path / "shop.db")
    app = make_app(tmp_path, REGISTER_RATE_LIMIT="2 per hour")
    with app.app_context():
        client = app.test_client()
        registered = client.post("/api/v1/auth/register", json={"phone": "13912345678", "password": "long enough pw"})
        assert registered.status_code == 201
        assert _register(app.test_client(), "13912345679").status_code == 302
        refused = client.post("/api/v1/auth/register", json={"phone": "13912345670", "password": "long enough pw"})
        assert "2 per 1 hour" in assert_error(refused, 429, "rate_limited")["message"]
        assert _register(app.test_client(), "13912345671").status_code == 429
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("name", [
    "REGISTER_RATE_LIMIT", "AUTH_RATE_LIMIT", "LOGIN_RATE_LIMIT", "DISCLOSURE_RATE_LIMIT"])
def test_a_rate_limit_setting_that_does_not_parse_stops_the_start(tmp_path, name):
    from shop.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=f"{name} must be a rate limit such as .*, got '20 per hr'"):
        load_config({name: "20 per hr"}, str(tmp_path))


@pytest.mark.parametrize("name", [
    "REGISTER_RATE_LIMIT", "AUTH_RATE_LIMIT", "LOGIN_RATE_LIMIT", "DISCLOSURE_RATE_LIMIT"])
@pytest.mark.parametrize("value", ["0 per minute", "5 per minute;0/hour"])
def test_a_rate_limit_allowing_nothing_stops_the_start(tmp_path, name, value):
    """`0 per minute` (as if 0 meant no limit) started, and every sign-in, registration or disclosure read was 429."""
    from shop.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=f"{name} must allow at least 1 request in each limit, got {value!r}"):
        load_config({name: value}, str(tmp_path))
