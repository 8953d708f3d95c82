"""Configuration read from the environment: embedded defaults, production requirements."""
from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Iterator, Mapping
from email.utils import getaddresses
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from kombu import Queue
from limits import parse_many
from redis.connection import parse_url
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# the webhook is live in every payments mode: with the public development secret anyone could sign "paid"
PRODUCTION_REQUIRED = ("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "FIELD_HASH_KEY", "DATABASE_URL", "REDIS_URL",
                       "STRIPE_WEBHOOK_SECRET", "PUBLIC_URL")
SECRETS = ("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "FIELD_HASH_KEY", "STRIPE_WEBHOOK_SECRET")
# what a secret made at random always shows: 32 random hex digits hold at least 8 distinct ones but once in 10⁷,
# 32 random bytes at least 16 distinct values (about 30 on average); `changeme` or an all-zero key does not
SECRET_MIN_CHARACTERS, SECRET_MIN_DISTINCT_CHARACTERS, KEY_MIN_DISTINCT_BYTES = 32, 8, 16
WEBHOOK_SECRET_PREFIX = "whsec_"
DEV_SECRETS_FILE = "dev-secrets.json"  # in the instance folder: this installation's own, never published
DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "sqlite", "sqlite+pysqlite")
CONFIG_ERROR_EXIT_STATUS = 4  # gunicorn's "App failed to load": its arbiter stops instead of respawning workers
REDIS_TIMEOUT_SECONDS = 1.0
DATABASE_CONNECT_TIMEOUT_SECONDS = 5  # a PostgreSQL server that takes the connection and never answers is down
TLS_CHECKS = ("required", "optional", "none", "CERT_REQUIRED", "CERT_OPTIONAL", "CERT_NONE")  # Celery's spellings
FAST_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
DAY_SECONDS, GIB = 24 * 3600, 1024 ** 3  # the units of the integer settings' bounds
SESSION_COOKIE = "shop_session"  # the pages' signed session cookie (`__Host-` prefixed in production)
TOKEN_TTL_MAX = 30 * DAY_SECONDS  # the longest token lifetime: a token keeps the ttl it was issued with, up to this


class ConfigError(RuntimeError):
    """The environment does not describe a runnable service."""


@contextlib.contextmanager
def exit_on_config_error() -> Iterator[None]:
    """Turn a `ConfigError` into one line on stderr and exit status 4, never a traceback (entry points)."""
    try:
        yield
    except ConfigError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(CONFIG_ERROR_EXIT_STATUS) from None


def _database_uri(url: str | None, instance_path: str) -> str:
    """Turn `DATABASE_URL` into an SQLAlchemy URI (psycopg 3 for PostgreSQL)."""
    if not url:
        return "sqlite:///" + str(Path(instance_path) / "shop.db")
    try:  # the URL may hold a password: the messages never quote it
        parsed = make_url(url.strip())
    except (ArgumentError, ValueError):
        raise ConfigError("DATABASE_URL is not a database URL (postgresql://user@host/db)") from None
    scheme = parsed.drivername
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise ConfigError(f"DATABASE_URL's port must be 1 to 65535, got {parsed.port}")
    if scheme not in DATABASE_SCHEMES:
        raise ConfigError(f"DATABASE_URL must be a PostgreSQL (postgresql://user@host/db) or SQLite (sqlite:///path) "
                          f"URL, got a {scheme}:// URL")
    if scheme.startswith("sqlite") and parsed.database in (None, "", ":memory:"):  # else one per connection, lost
        raise ConfigError("DATABASE_URL must name the SQLite file (sqlite:///path), not a database in memory")
    url = url.strip()
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


# the query options redis-py, the limiter and Celery all read alike (any other failed each request as a 500): the
# timeouts (seconds, more than 0, at most an hour) on any URL, the TLS files only on rediss://
REDIS_TIMEOUTS = frozenset({"socket_timeout", "socket_connect_timeout"})
REDIS_TLS_OPTIONS = frozenset({"ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile"})


def _redis_options_usable(scheme: str, options: dict[str, list[str]]) -> bool:
    """Whether REDIS_URL's query options are ones every user of it takes, with values it takes."""
    allowed = REDIS_TIMEOUTS | (REDIS_TLS_OPTIONS if scheme == "rediss" else frozenset())
    if not set(options) <= allowed:
        return False
    timeouts = [value for name in REDIS_TIMEOUTS for value in options.get(name, [])]
    return all(re.fullmatch(r"[0-9]+(\.[0-9]+)?", value) and 0 < float(value) <= 3600 for value in timeouts)


def _redis_url(raw: str | None) -> str | None:
    """`REDIS_URL` as every user of it reads it (redis-py, the rate limiter, Celery's broker and result store):
    redis:// or rediss:// (TLS, with the `ssl_cert_reqs` Celery demands), a numeric port and database; `ConfigError`
    otherwise, never quoting it (it may hold a password). Neither the limiter nor Celery takes unix://."""
    if not raw:
        return None
    url = raw.strip()
    try:
        parts = urlsplit(url)
        parse_url(url)  # the port (a number to 65535) and options in the query, as redis-py reads them
        options = parse_qs(parts.query, keep_blank_values=True)
        tls_checked = options.get("ssl_cert_reqs", [""])[-1] in TLS_CHECKS
        usable = (parts.scheme == "redis" or parts.scheme == "rediss" and tls_checked) and parts.port != 0 \
            and re.fullmatch(r"/?|/[0-9]+", parts.path) is not None and _redis_options_usable(parts.scheme, options)
    except ValueError:
        usable = False
    if not usable:
        raise ConfigError("REDIS_URL must be redis://[:password@]host[:port][/db] or rediss://…?ssl_cert_reqs=required "
                          "(or optional, none); its only options socket_timeout and socket_connect_timeout (seconds, "
                          "to 3600), and on rediss:// ssl_cert_reqs, ssl_ca_certs, ssl_certfile, ssl_keyfile")
    return url


HOST_NAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
MAIL_ADDRESS = re.compile(r"[^@\s<>,;:\"()\[\]]+@[^@\s<>,;:\"()\[\]]+")


def _is_host(name: str) -> bool:
    """Whether `name` (as urlsplit lower-cases it) is a DNS host name or an IP address."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return HOST_NAME.fullmatch(name) is not None
    return True


def _smtp_host(raw: str | None) -> str | None:
    """`SMTP_HOST`, a host name or IP address (unset: notifications are log lines); `ConfigError` otherwise."""
    if raw is None or raw.strip() == "":
        return None
    host = raw.strip()
    if not _is_host(host.lower()):
        raise ConfigError(f"SMTP_HOST must be a host name or an IP address, got {raw!r}")
    return host


def _is_loopback(host: str) -> bool:
    """Whether `host` (lower case) names this machine: `localhost` or a loopback address."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _smtp_username(env: Mapping[str, str], *, production: bool) -> str | None:
    """`SMTP_USERNAME`; under production only with SMTP_STARTTLS (smtplib signs in over the connection as it is: the
    password would cross the network in clear text), but to a relay on this host. `ConfigError` otherwise."""
    username, host = env.get("SMTP_USERNAME") or None, (_smtp_host(env.get("SMTP_HOST")) or "").lower()
    if production and username and host and not _flag(env, "SMTP_STARTTLS") and not _is_loopback(host):
        raise ConfigError("SMTP_USERNAME needs SMTP_STARTTLS=true under SHOP_ENV=production (the mail password would "
                          "cross the network in clear text)")
    return username


def _mail_addresses(env: Mapping[str, str], name: str, default: str, *, several: bool) -> str:
    """A mail address setting ("Name <a@b.cn>" or "a@b.cn"; `several`: a comma-separated list), on one line;
    `ConfigError` naming it if it is not."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    addresses = [address for _name, address in getaddresses([raw])]
    if ("\r" in raw or "\n" in raw or not addresses or len(addresses) > 1 and not several
            or raw.strip().endswith(",") or not all(MAIL_ADDRESS.fullmatch(address) for address in addresses)):
        raise ConfigError(f"{name} must be {'mail addresses separated by commas' if several else 'one mail address'}"
                          f", got {raw!r}")
    return raw.strip()


def _public_url(raw: str | None, *, production: bool) -> str | None:
    """`PUBLIC_URL`, the scheme and host every absolute link leaving the service is built on (trace QR codes on
    labels, Stripe's return address), without a trailing slash; https in production. `ConfigError` otherwise."""
    if not raw:
        return None
    try:
        parts = urlsplit(raw.strip())
        port = parts.port  # ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        raise ConfigError(f"PUBLIC_URL is not a URL: {raw!r}") from None
    schemes = ("https",) if production else ("http", "https")
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    if parts.scheme not in schemes or not parts.hostname or not _is_host(parts.hostname) or port == 0 \
            or parts.netloc.lower() != (host or "") + (f":{port}" if port is not None else "") \
            or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"PUBLIC_URL must be {' or '.join(schemes)}://host[:port] and nothing more, got {raw!r}")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _repeats_a_block(value: str | bytes) -> bool:
    """Whether `value` is a shorter block said again (`changeme-changeme-…`, 16 bytes twice), as no random value is."""
    return any(value == value[:size] * (len(value) // size) + value[:len(value) % size]
               for size in range(1, len(value) // 2 + 1))


def _is_random_text(text: str) -> bool:
    """Whether a secret text is long and varied enough to have been made at random (not `changeme`, not `x`)."""
    return (len(text) >= SECRET_MIN_CHARACTERS and len(set(text)) >= SECRET_MIN_DISTINCT_CHARACTERS
            and not _repeats_a_block(text))


def _is_random_key(key: bytes) -> bool:
    """Whether a 32-byte key is varied enough to have been made at random."""
    return len(set(key)) >= KEY_MIN_DISTINCT_BYTES and not _repeats_a_block(key)


def _check_production_secrets(env: Mapping[str, str]) -> None:
    """Refuse secrets anyone could guess or derive: a short or repetitive SECRET_KEY or webhook secret, a current
    encryption key or hash key of few distinct bytes, a hash key that is also an encryption key. Older encryption
    keys only decrypt (rotation retires them with `suppliers reencrypt`, which must still start)."""
    from shop.crypto import parse_hash_key, parse_keys  # shop.crypto imports ConfigError from this module

    if not _is_random_text(env["SECRET_KEY"]):
        raise ConfigError(f"SECRET_KEY must be at least {SECRET_MIN_CHARACTERS} characters made at random "
                          "(flask --app shop generate-keys)")
    webhook = env["STRIPE_WEBHOOK_SECRET"]
    if not (webhook.startswith(WEBHOOK_SECRET_PREFIX) and _is_random_text(webhook[len(WEBHOOK_SECRET_PREFIX):])):
        raise ConfigError(f"STRIPE_WEBHOOK_SECRET must be {WEBHOOK_SECRET_PREFIX} and at least "
                          f"{SECRET_MIN_CHARACTERS} characters made at random (Stripe's, or generate-keys')")
    ring, hash_key = parse_keys(env["FIELD_ENCRYPTION_KEY"]), parse_hash_key(env["FIELD_HASH_KEY"])
    if not _is_random_key(ring.keys[ring.current]):
        raise ConfigError(f"FIELD_ENCRYPTION_KEY key {ring.current!r} is not 32 bytes made at random (generate-keys)")
    if not _is_random_key(hash_key):
        raise ConfigError("FIELD_HASH_KEY is not 32 bytes made at random (generate-keys)")
    if hash_key in ring.keys.values():
        raise ConfigError("FIELD_HASH_KEY must differ from every FIELD_ENCRYPTION_KEY key")


def _int(env: dict[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    """An integer setting from the environment, from `minimum` to `maximum` (a realistic value: a lifetime of
    10²² seconds starts, then fails every sign-in); `ConfigError` naming the variable if it is not one."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {value}")
    return value


def _rate_limit(env: Mapping[str, str], name: str, default: str) -> str:
    """A rate limit setting ("20 per hour", several joined by ";"); `ConfigError` naming it if it does not parse, or
    if a limit allows no request at all (`0 per minute` is no "unlimited": it refuses everything)."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        limits = parse_many(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a rate limit such as {default!r}, got {raw!r}") from None
    if any(limit.amount < 1 for limit in limits):
        raise ConfigError(f"{name} must allow at least 1 request in each limit, got {raw!r}")
    return raw


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    """A setting that takes one of the named values `allowed` (spelt exactly); `ConfigError` naming them if not."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return raw


STRIPE_KEY_PREFIXES = {"STRIPE_API_KEY": ("sk_live_", "sk_test_", "rk_live_", "rk_test_"),  # secret, restricted
                       "STRIPE_PUBLISHABLE_KEY": ("pk_live_", "pk_test_")}


def _stripe_key(env: Mapping[str, str], name: str) -> str | None:
    """A Stripe key setting, if set, of the kind it names (a publishable key cannot call the API, and a secret key
    given as the publishable one would be sent to every browser); `ConfigError` otherwise, never quoting it."""
    raw = env.get(name)
    if not raw:
        return None
    prefixes = STRIPE_KEY_PREFIXES[name]
    if not re.fullmatch(rf"({'|'.join(prefixes)})\w+", raw, re.ASCII):
        raise ConfigError(f"{name} must be a Stripe key starting {', '.join(prefixes)}")
    return raw


# long work, and mail (each step waits on the mail server, 10 s when it is out of reach): never ahead of payments
BULK_TASKS = ("catalog.import_inventory", "ledger.run_ledger_verification", "ledger.build_payout_batch",
              "orders.send_notification", "orders.send_notifications")


def _flag(env: Mapping[str, str], name: str) -> bool:
    """A yes/no setting (true/false, yes/no, 1/0; unset is no); `ConfigError` naming it for anything else."""
    return _choice(env, name, ("true", "false", "yes", "no", "1", "0"), "false") in ("true", "yes", "1")


def _engine_options(env: Mapping[str, str]) -> dict:
    """Engine options: on SQLite, writers wait up to 30 s for the write lock instead of failing at once. A pooled
    PostgreSQL connection is not pinged before each use unless DATABASE_PRE_PING is set (the ping is a round trip
    on every request): after a database restart the first request on a dead connection answers 503 and the pool
    is replaced at once (SQLAlchemy invalidates it on a disconnect); connections are renewed hourly anyway. A database
    error never quotes its statement's parameters (a household's name, an encrypted account) in a log or traceback.
    A PostgreSQL server that does not answer a new connection within DATABASE_CONNECT_TIMEOUT_SECONDS is out of reach
    (a request answers 503, readiness says so) instead of holding the worker without end; a `connect_timeout` in
    DATABASE_URL's query is taken as written."""
    url, pre_ping = env.get("DATABASE_URL"), _flag(env, "DATABASE_PRE_PING")  # checked whichever the database
    if not url or url.strip().startswith("sqlite"):
        return {"pool_pre_ping": True, "connect_args": {"timeout": 30}, "hide_parameters": True}
    given = parse_qs(urlsplit(url.strip()).query)
    connect_args = {} if "connect_timeout" in given else {"connect_timeout": DATABASE_CONNECT_TIMEOUT_SECONDS}
    return {"pool_pre_ping": pre_ping, "pool_recycle": 3600, "hide_parameters": True, "connect_args": connect_args}


def fresh_secrets(kid: str = "dev") -> dict[str, str]:
    """New random values of every secret setting (`generate-keys` prints them; development writes them once)."""
    def key_text() -> str:
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")

    return {"SECRET_KEY": secrets.token_urlsafe(48), "FIELD_ENCRYPTION_KEY": f"{kid}:{key_text()}",
            "FIELD_HASH_KEY": key_text(), "STRIPE_WEBHOOK_SECRET": f"whsec_{secrets.token_hex(24)}"}


def development_secrets(instance_path: str) -> dict[str, str]:
    """This installation's development secrets: made at random the first time (readable by its owner only) and
    kept in the instance folder, so that no key is known to anyone outside it, and what they signed and encrypted
    stays readable. Several processes starting at once agree on the first file written."""
    path = Path(instance_path) / DEV_SECRETS_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process may be writing it this moment
            with contextlib.suppress(ValueError):
                stored = json.loads(path.read_text(encoding="utf-8"))
                if all(isinstance(stored.get(name), str) for name in SECRETS):
                    return stored
            time.sleep(0.02)
        raise ConfigError(f"{path} is not a secrets file this shop wrote: remove it to make new development "
                          "keys (what the old ones encrypted becomes unreadable)") from None
    values = fresh_secrets()
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        json.dump(values, out)
    return values


def load_config(env: dict[str, str], instance_path: str) -> dict:
    """Build the Flask config mapping from an environment mapping."""
    production = _choice(env, "SHOP_ENV", ("development", "production"), "development") == "production"
    payments = _choice(env, "PAYMENTS", ("stripe", "sandbox"), "stripe" if env.get("STRIPE_API_KEY") else "sandbox")
    if production:
        missing = [name for name in PRODUCTION_REQUIRED if not env.get(name)]
        if not env.get("STRIPE_API_KEY") and env.get("PAYMENTS") != "sandbox":
            missing.append("STRIPE_API_KEY (or PAYMENTS=sandbox)")
        if payments == "stripe" and not env.get("STRIPE_PUBLISHABLE_KEY"):  # else the pay page cannot take payment
            missing.append("STRIPE_PUBLISHABLE_KEY (with PAYMENTS=stripe)")
        if missing:
            raise ConfigError("SHOP_ENV=production requires: " + ", ".join(missing))
        if env.get("FLASK_DEBUG", "0").strip().lower() not in ("", "0", "false", "no"):
            raise ConfigError("FLASK_DEBUG must be off under SHOP_ENV=production (the debugger runs any code sent)")
        _check_production_secrets(env)

    keys = {name: env[name] for name in SECRETS if env.get(name)}
    if len(keys) < len(SECRETS):
        keys = {**development_secrets(instance_path), **keys}
    redis_url = _redis_url(env.get("REDIS_URL"))
    return {
        "SHOP_ENV": "production" if production else "development",
        "SECRET_KEY": keys["SECRET_KEY"],
        # over https (production) a `__Host-` cookie: only this host sets it (no Domain, Path=/, Secure), so no other
        # site under the parent domain can plant one that signs a browser in to the planter's account
        "SESSION_COOKIE_NAME": f"{'__Host-' if production else ''}{SESSION_COOKIE}",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "PERMANENT_SESSION_LIFETIME": _int(env, "WEB_SESSION_SECONDS", 8 * 3600, minimum=60, maximum=30 * DAY_SECONDS),
        "WTF_CSRF_CHECK_DEFAULT": False,
        "WTF_CSRF_TIME_LIMIT": None,
        "FIELD_ENCRYPTION_KEY": keys["FIELD_ENCRYPTION_KEY"],
        "FIELD_HASH_KEY": keys["FIELD_HASH_KEY"],
        "SQLALCHEMY_DATABASE_URI": _database_uri(env.get("DATABASE_URL"), instance_path),
        "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(env),
        "REDIS_URL": redis_url,
        "CACHE_TYPE": "RedisCache" if redis_url else "SimpleCache",
        "CACHE_REDIS_URL": redis_url,
        # a cache that does not answer within 2 s counts as down: reads fall back to the database
        "CACHE_OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2} if redis_url else None,
        "CACHE_DEFAULT_TIMEOUT": 300,
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        # a store that does not answer counts as down: the limited routes answer 503, never unlimited
        "RATELIMIT_STORAGE_OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2} if redis_url else {},
        "RATELIMIT_HEADERS_ENABLED": True,
        "LOGIN_RATE_LIMIT": _rate_limit(env, "LOGIN_RATE_LIMIT", "5 per minute"),
        "AUTH_RATE_LIMIT": _rate_limit(env, "AUTH_RATE_LIMIT", "30 per minute"),
        "REGISTER_RATE_LIMIT": _rate_limit(env, "REGISTER_RATE_LIMIT", "20 per hour"),
        "DISCLOSURE_RATE_LIMIT": _rate_limit(env, "DISCLOSURE_RATE_LIMIT", "60 per minute"),
        "LOGIN_BACKOFF_MAX_SECONDS": _int(env, "LOGIN_BACKOFF_MAX_SECONDS", 15 * 60, minimum=1,
                                          maximum=DAY_SECONDS),
        "LOGIN_FAILURE_ALERT_PER_MINUTE": _int(env, "LOGIN_FAILURE_ALERT_PER_MINUTE", 100, minimum=1,
                                               maximum=1_000_000),
        "TRUSTED_PROXY_HOPS": _int(env, "TRUSTED_PROXY_HOPS", 0, minimum=0, maximum=10),
        "PUBLIC_URL": _public_url(env.get("PUBLIC_URL"), production=production),
        "CELERY": {
            "broker_url": redis_url or "memory://localhost/",
            # kombu's Redis transport, publishing through one client per channel instead of one built per message
            # (`shop.broker`); rediss:// keeps kombu's own, which sets up its TLS from the scheme
            **({"broker_transport": "shop.broker:Transport"} if urlsplit(redis_url or "").scheme == "redis" else {}),
            "result_backend": redis_url,
            "task_always_eager": not redis_url,
            "task_eager_propagates": True,
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            # outbox delivery (the ledger's attribution) has its own queue, and so has long work (an inventory
            # import, a full verification, a payout batch), so a deployment can give each its own workers and
            # payments never wait behind them; a worker started without -Q consumes every queue
            "task_queues": (Queue("celery"), Queue("outbox"), Queue("bulk")),
            "task_routes": {"orders.deliver_outbox": {"queue": "outbox"}, "orders.drain_outbox": {"queue": "outbox"},
                            **{name: {"queue": "bulk"} for name in BULK_TASKS}},
            "timezone": "Asia/Shanghai",
            "broker_connection_retry_on_startup": True,
            # a message is queued from an after-commit hook, its row already committed and swept up if the message is
            # lost: with Redis down a request must fail fast (one quick retry), never wait ~20 s in the web process
            "broker_connection_timeout": REDIS_TIMEOUT_SECONDS,
            "broker_transport_options": {"socket_connect_timeout": REDIS_TIMEOUT_SECONDS, "socket_timeout": 2},
            "task_publish_retry_policy": FAST_RETRY,
            # only the worker check reads a result: no other task waits on the result store to be queued
            "task_ignore_result": True,
            "redis_socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
            "result_backend_transport_options": {"retry_policy": FAST_RETRY},
            # a worker that loses Redis cancels its unacknowledged tasks, which Redis delivers again (acks_late,
            # idempotent, one transaction each), instead of running them twice at once: Celery 6's default, set so
            # that no reconnect logs CPendingDeprecationWarning
            "worker_cancel_long_running_tasks_on_connection_loss": True,
        },
        "MAX_CONTENT_LENGTH": _int(env, "MAX_CONTENT_LENGTH", 10 * 1024 * 1024, minimum=1, maximum=GIB),
        # an API body in JSON (every other body is a file upload's): none comes near it, and parsing one costs CPU
        "MAX_JSON_LENGTH": _int(env, "MAX_JSON_LENGTH", 1024 * 1024, minimum=1, maximum=GIB),
        "INVENTORY_UPLOAD_MAX_BYTES": _int(env, "INVENTORY_UPLOAD_MAX_BYTES", 8 * 1024 * 1024, minimum=1,
                                           maximum=GIB),
        "INVENTORY_UPLOAD_MAX_ROWS": _int(env, "INVENTORY_UPLOAD_MAX_ROWS", 200_000, minimum=1, maximum=10_000_000),
        "INVENTORY_UPLOAD_REQUEUE_SECONDS": _int(env, "INVENTORY_UPLOAD_REQUEUE_SECONDS", 60, minimum=1,
                                                 maximum=DAY_SECONDS),
        "TOKEN_TTL_SECONDS": _int(env, "TOKEN_TTL_SECONDS", 12 * 3600, minimum=1, maximum=TOKEN_TTL_MAX),
        # how long an unpaid online order holds its reserved stock
        "ORDER_RESERVATION_SECONDS": _int(env, "ORDER_RESERVATION_SECONDS", 900, minimum=1, maximum=DAY_SECONDS),
        "PAYMENTS": payments,
        "STRIPE_API_KEY": _stripe_key(env, "STRIPE_API_KEY"),
        "STRIPE_PUBLISHABLE_KEY": _stripe_key(env, "STRIPE_PUBLISHABLE_KEY"),
        "STRIPE_WEBHOOK_SECRET": keys["STRIPE_WEBHOOK_SECRET"],
        # notifications: email to the operations mailbox over SMTP when SMTP_HOST is set, else a log line
        "SMTP_HOST": _smtp_host(env.get("SMTP_HOST")),
        "SMTP_PORT": _int(env, "SMTP_PORT", 25, minimum=1, maximum=65535),
        "SMTP_FROM": _mail_addresses(env, "SMTP_FROM", "shop@localhost", several=False),
        "SMTP_USERNAME": _smtp_username(env, production=production),
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD"),
        "SMTP_STARTTLS": _flag(env, "SMTP_STARTTLS"),
        "NOTIFY_EMAIL_TO": _mail_addresses(env, "NOTIFY_EMAIL_TO", _mail_addresses(env, "SMTP_FROM", "shop@localhost",
                                                                                   several=False), several=True),
        "API_TITLE": "Consumption poverty alleviation shop",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": "/api/v1/docs/assets/",  # served from swagger-ui-bundle (shop/docs.py)
        "OPENAPI_SWAGGER_UI_CONFIG": {"validatorUrl": None},  # no call to validator.swagger.io
        "API_SPEC_OPTIONS": {
            "security": [{"bearer": []}],
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        },
    }


def from_environ(instance_path: str) -> dict:
    """Build the config from `os.environ`."""
    return load_config(dict(os.environ), instance_path)
