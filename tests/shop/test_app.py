"""The app factory in embedded and production modes."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest

from shop import create_app
from shop.config import ConfigError, load_config
from shop.db import db
from tests.conftest import make_app
from tests.factories import DEFAULT_PASSWORD, UserFactory

PRODUCTION = {  # secrets as `generate-keys` makes them (Stripe's webhook secret: whsec_ and 32 characters)
    "SHOP_ENV": "production",
    "SECRET_KEY": "h94YhpiT2qY2hPDAKfREKOgx4_U_iNfF_7Iat5ZsHf226DVH5Ky1YfadKSM_WIh2",
    "FIELD_ENCRYPTION_KEY": "k1:uLKK7Qu_u6FBQXvADWIJKQEbrV9QFnWTxGfnzZ0iWws",  # 32 bytes, base64url (shop/crypto.py)
    "FIELD_HASH_KEY": "pZ2ralsk9eVxNT35ldAKoie--3mfz_8Vd0UpVJvZfq0",  # 32 bytes, base64url (see shop/crypto.py)
    "DATABASE_URL": "postgresql://shop@db.internal/shop",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "STRIPE_API_KEY": "sk_test_51HxYz2KqR8sT3uV4wX5yZ6aB7cD8eF9gH0iJ1kL2mN3oP4qR5sT6uV7wX8yZ9",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_51HxYz2KqR8sT3uV4wX5yZ6aB7cD8eF9gH0iJ1kL2mN3oP4",
    "STRIPE_WEBHOOK_SECRET": "whsec_UjZte8gSY1CoJXGBnMZ0Vqc3F0KRYDYt",
    "PUBLIC_URL": "https://shop.example.cn",
}
ZERO_KEY = "A" * 43  # 32 zero bytes in base64url
HALF_KEY_TWICE = base64.urlsafe_b64encode(bytes(range(16)) * 2).decode().rstrip("=")  # 16 distinct bytes, said twice


def test_embedded_default_uses_sqlite_eager_tasks_and_memory_stores(tmp_path):
    config = load_config({}, str(tmp_path))
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/shop.db"
    assert config["CELERY"]["task_always_eager"] is True
    assert config["CACHE_TYPE"] == "SimpleCache"
    assert config["RATELIMIT_STORAGE_URI"] == "memory://"
    assert config["PAYMENTS"] == "sandbox"


def test_database_and_redis_urls_switch_their_parts_independently(tmp_path):
    only_db = load_config({"DATABASE_URL": "postgres://u@h/db"}, str(tmp_path))
    assert only_db["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"
    assert only_db["CELERY"]["task_always_eager"] is True
    assert only_db["CACHE_TYPE"] == "SimpleCache"

    only_redis = load_config({"REDIS_URL": "redis://h:6379/2"}, str(tmp_path))
    assert only_redis["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert only_redis["CELERY"]["broker_url"] == "redis://h:6379/2"
    assert only_redis["CELERY"]["task_always_eager"] is False
    assert only_redis["CACHE_TYPE"] == "RedisCache"
    assert only_redis["RATELIMIT_STORAGE_URI"] == "redis://h:6379/2"


def test_production_with_everything_set_is_accepted(tmp_path):
    config = load_config(PRODUCTION, str(tmp_path))
    assert config["SHOP_ENV"] == "production"
    assert config["PAYMENTS"] == "stripe"


@pytest.mark.parametrize("missing", ["SECRET_KEY", "FIELD_ENCRYPTION_KEY", "FIELD_HASH_KEY", "DATABASE_URL",
                                     "REDIS_URL"])
def test_production_refuses_to_start_without_a_required_setting(tmp_path, missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        load_config(env, str(tmp_path))


def test_production_needs_stripe_keys_or_an_explicit_sandbox(tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if k != "STRIPE_API_KEY"}
    with pytest.raises(ConfigError, match="STRIPE_API_KEY"):
        load_config(env, str(tmp_path))
    assert load_config({**env, "PAYMENTS": "sandbox"}, str(tmp_path))["PAYMENTS"] == "sandbox"


@pytest.mark.parametrize("secret", [None, ""])
def test_production_needs_its_own_webhook_secret_even_in_sandbox_mode(tmp_path, secret):
    """The webhook is live in every mode: without its own secret, anyone could sign "paid" for any order."""
    env = {k: v for k, v in PRODUCTION.items() if k != "STRIPE_WEBHOOK_SECRET"}
    env = {**env, "PAYMENTS": "sandbox", **({} if secret is None else {"STRIPE_WEBHOOK_SECRET": secret})}
    with pytest.raises(ConfigError, match="STRIPE_WEBHOOK_SECRET"):
        load_config(env, str(tmp_path))


@pytest.mark.parametrize("name, value", [
    ("SECRET_KEY", "changeme"), ("SECRET_KEY", "x"), ("SECRET_KEY", "s" * 64), ("SECRET_KEY", "changeme" * 8),
    ("SECRET_KEY", "changeme-changeme-changeme-changeme"), ("SECRET_KEY", "password1" * 4),
    ("STRIPE_WEBHOOK_SECRET", "whsec_changeme-changeme-changeme-changeme"),
    ("FIELD_ENCRYPTION_KEY", "k1:" + HALF_KEY_TWICE), ("FIELD_HASH_KEY", HALF_KEY_TWICE),
    ("STRIPE_WEBHOOK_SECRET", "x"), ("STRIPE_WEBHOOK_SECRET", "whsec_"), ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
    ("STRIPE_WEBHOOK_SECRET", "whsec_" + "ab" * 20), ("STRIPE_WEBHOOK_SECRET", "UjZte8gSY1CoJXGBnMZ0Vqc3F0KRYDYtxx"),
    ("FIELD_ENCRYPTION_KEY", "k1:" + ZERO_KEY),
    ("FIELD_ENCRYPTION_KEY", "k2:" + ZERO_KEY + "," + PRODUCTION["FIELD_ENCRYPTION_KEY"]),
    ("FIELD_HASH_KEY", ZERO_KEY), ("FIELD_HASH_KEY", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"),
    ("FIELD_HASH_KEY", PRODUCTION["FIELD_ENCRYPTION_KEY"][3:]),
    ("FIELD_HASH_KEY", PRODUCTION["FIELD_ENCRYPTION_KEY"][3:] + "="),
])
def test_production_refuses_secrets_anyone_could_guess(tmp_path, monkeypatch, capsys, name, value):
    """A guessable SECRET_KEY forges an admin's token, a guessable webhook secret a "paid" event, a weak field key
    reads every ID number: production stops with one line naming the setting, exit status 4."""
    with pytest.raises(ConfigError, match=f"^{name} "):
        load_config({**PRODUCTION, name: value}, str(tmp_path))
    for setting, text in {**PRODUCTION, name: value}.items():
        monkeypatch.setenv(setting, text)
    with pytest.raises(SystemExit) as entry_point:
        create_app()
    assert entry_point.value.code == 4
    error = capsys.readouterr().err
    assert error.startswith(f"configuration error: {name} ") and error.count("\n") == 1
    assert value not in error or len(value) < 8  # key material is never quoted


@pytest.mark.parametrize("debug", ["1", "true"])
def test_production_refuses_to_start_with_the_debugger_on(tmp_path, debug):
    """Flask's debugger runs any code a visitor types: production stops with one line naming the setting."""
    with pytest.raises(ConfigError, match="^FLASK_DEBUG "):
        load_config({**PRODUCTION, "FLASK_DEBUG": debug}, str(tmp_path))
    assert load_config({**PRODUCTION, "FLASK_DEBUG": "0"}, str(tmp_path))["SHOP_ENV"] == "production"


def test_production_accepts_what_generate_keys_prints_and_an_older_weak_key_being_rotated_out(app, tmp_path):
    printed = app.test_cli_runner().invoke(args=["generate-keys"]).output
    keys = dict(line.split("=", 1) for line in printed.splitlines())
    assert load_config({**PRODUCTION, **keys}, str(tmp_path))["SECRET_KEY"] == keys["SECRET_KEY"]
    rotating = f"{PRODUCTION['FIELD_ENCRYPTION_KEY']},old:{ZERO_KEY}"  # the old key only decrypts until reencrypt
    assert load_config({**PRODUCTION, "FIELD_ENCRYPTION_KEY": rotating}, str(tmp_path))["FIELD_ENCRYPTION_KEY"] == (
        rotating)


def test_development_takes_any_secret_it_is_given(tmp_path):
    config = load_config({"SECRET_KEY": "x", "STRIPE_WEBHOOK_SECRET": "whsec_x",
                          "FIELD_ENCRYPTION_KEY": "k1:" + ZERO_KEY, "FIELD_HASH_KEY": ZERO_KEY}, str(tmp_path))
    assert (config["SHOP_ENV"], config["SECRET_KEY"], config["FIELD_HASH_KEY"]) == ("development", "x", ZERO_KEY)


def test_create_app_refuses_incomplete_production_environment(monkeypatch, capsys):
    monkeypatch.setenv("SHOP_ENV", "production")
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        create_app({})
    with pytest.raises(SystemExit) as entry_point:  # no config given: the CLI's and gunicorn's call
        create_app()
    assert entry_point.value.code == 4
    assert capsys.readouterr().err.startswith("configuration error: SHOP_ENV=production requires: DATABASE_URL")


def test_openapi_document_and_docs_are_served(client):
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    assert "/api/v1/pairings" in spec.json["paths"]
    assert spec.json["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and b"swagger" in docs.data.lower()


def test_celery_app_is_built_from_the_flask_config(app):
    celery = app.extensions["celery"]
    assert celery.conf.task_always_eager is True
    from shop.tasks import check_health

    assert check_health.delay().get(timeout=5) == {"ok": True, "regions": 78}


def test_responses_carry_a_request_id(client):
    response = client.get("/api/v1/regions", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    generated = client.get("/api/v1/regions", headers={"X-Request-ID": "bad id with spaces"})
    assert len(generated.headers["X-Request-ID"]) == 32


def test_without_keys_an_installation_makes_its_own_secrets_once(tmp_path):
    """No key is built into the code: a development install (or one that forgot SHOP_ENV) signs and encrypts with
    keys made at random for it, kept so that what they signed stays readable."""
    first, again = load_config({}, str(tmp_path / "one")), load_config({}, str(tmp_path / "one"))
    other = load_config({}, str(tmp_path / "two"))
    names = ("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "FIELD_HASH_KEY", "STRIPE_WEBHOOK_SECRET")
    assert all(first[name] == again[name] for name in names)
    assert all(first[name] != other[name] for name in names)
    assert (tmp_path / "one" / "dev-secrets.json").stat().st_mode & 0o777 == 0o600
    assert load_config({"SECRET_KEY": "mine"}, str(tmp_path / "one"))["SECRET_KEY"] == "mine"


def test_a_token_signed_with_the_formerly_published_development_key_is_refused(tmp_path):
    from itsdangerous import URLSafeTimedSerializer

    config = load_config({}, str(tmp_path))
    app = create_app({**config, "TESTING": True})
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
    forged = URLSafeTimedSerializer("dev-secret-key-not-for-production", salt="access-token").dumps(
        {"uid": 1, "tv": 0, "ttl": 3600})
    response = app.test_client().get("/api/v1/users", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


@pytest.mark.parametrize("url", ["http://shop.example.cn", "https://shop.example.cn/shop", "https://",
                                 "shop.example.cn", "https://shop.example.cn?x=1", "https://u:p@shop.example.cn",
                                 "https://h:port", "https://exa mple.cn", "https://shop.example.cn\\",
                                 "https://shop.example.cn:", "https://shop.example.cn:99999", "https://shop_1.cn"])
def test_production_needs_a_bare_https_public_url(tmp_path, url):
    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        load_config({**PRODUCTION, "PUBLIC_URL": url}, str(tmp_path))
    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        load_config({k: v for k, v in PRODUCTION.items() if k != "PUBLIC_URL"}, str(tmp_path))
    assert load_config({**PRODUCTION, "PUBLIC_URL": "https://Shop.Example.cn:8443/"},
                       str(tmp_path))["PUBLIC_URL"] == "https://shop.example.cn:8443"
    assert load_config({**PRODUCTION, "PUBLIC_URL": "https://[2001:db8::1]"}, str(tmp_path))["PUBLIC_URL"] == (
        "https://[2001:db8::1]")


@pytest.mark.parametrize("name, value", [
    ("SHOP_ENV", "Production"), ("SHOP_ENV", "prod"), ("SHOP_ENV", " production"), ("SHOP_ENV", "staging"),
    ("PAYMENTS", "Stripe"), ("PAYMENTS", "paypal"), ("DATABASE_PRE_PING", "on"), ("SMTP_STARTTLS", "enabled"),
])
def test_a_named_value_outside_its_set_stops_the_start_instead_of_meaning_the_default(tmp_path, name, value):
    """`SHOP_ENV=Production` ran in development mode (sandbox confirm open, cookies not Secure)."""
    with pytest.raises(ConfigError, match=f"{name} must be one of .*, got {value!r}"):
        load_config({**PRODUCTION, name: value}, str(tmp_path))


def test_named_values_spelt_as_documented_are_accepted(tmp_path):
    config = load_config({**PRODUCTION, "PAYMENTS": "sandbox", "DATABASE_PRE_PING": "true", "SMTP_STARTTLS": "1"},
                         str(tmp_path))
    assert (config["SHOP_ENV"], config["PAYMENTS"], config["SMTP_STARTTLS"]) == ("production", "sandbox", True)
    assert config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is True
    development = load_config({"SHOP_ENV": "development", "DATABASE_PRE_PING": "no"}, str(tmp_path))
    assert development["SHOP_ENV"] == "development" and development["SESSION_COOKIE_SECURE"] is False


@pytest.mark.parametrize("url, message", [
    ("mysql://shop:hunter2@db/shop", "DATABASE_URL must be a PostgreSQL .* got a mysql:// URL"),
    ("postgresql+psycopg2://shop:hunter2@db/shop", "got a postgresql\\+psycopg2:// URL"),
    ("not a url", "DATABASE_URL is not a database URL"),
    ("postgresql://shop:hunter2@db:five/shop", "DATABASE_URL is not a database URL"),
    ("postgresql://shop:hunter2@db:99999/shop", "port must be 1 to 65535"),
])
def test_a_database_url_the_service_cannot_use_is_a_configuration_error_never_quoting_it(tmp_path, url, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_config({**PRODUCTION, "DATABASE_URL": url}, str(tmp_path))
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite+pysqlite:///"])
def test_a_sqlite_url_without_a_file_is_a_configuration_error(tmp_path, url):
    """`sqlite:///` (a path forgotten) was a database in memory, one per connection: `flask db upgrade` said it had
    migrated, then every command and request said the database had no schema, and nothing written was kept."""
    with pytest.raises(ConfigError, match="DATABASE_URL must name the SQLite file"):
        load_config({"DATABASE_URL": url}, str(tmp_path))


@pytest.mark.parametrize("url, uri", [("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
                                      ("postgresql+psycopg://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
                                      ("sqlite:////srv/shop.db", "sqlite:////srv/shop.db")])
def test_postgresql_and_sqlite_urls_are_accepted(tmp_path, url, uri):
    assert load_config({"DATABASE_URL": url}, str(tmp_path))["SQLALCHEMY_DATABASE_URI"] == uri


@pytest.mark.parametrize("url", ["nonsense", "http://127.0.0.1:6379/0", "redis://127.0.0.1:notaport/0",
                                 "redis://:hunter2@cache:99999/0", "redis://cache:0/0", "redis://cache:6379/zero",
                                 "redis://cache/0?db=x", "unix:///run/redis.sock", "rediss://:hunter2@cache/0",
                                 "redis://:hunter2@cache/0?foo=bar", "redis://cache/0?timeout=5",
                                 "redis://cache/0?ssl_cert_reqs=required", "redis://cache/0?ssl_certfile=c.pem",
                                 "redis://cache/0?socket_timeout=-1", "redis://cache/0?socket_timeout=0",
                                 "redis://cache/0?socket_connect_timeout=x",
                                 "rediss://cache/0?ssl_cert_reqs=maybe"])
def test_a_redis_url_the_service_cannot_use_is_a_configuration_error_never_quoting_it(monkeypatch, capsys, url):
    """A malformed REDIS_URL was a 54-line traceback from redis-py, kombu or the limiter (gunicorn exit 1, celery 2)."""
    monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(SystemExit) as entry_point:  # gunicorn's, Celery's and the CLI's call
        create_app()
    assert entry_point.value.code == 4
    error = capsys.readouterr().err
    assert error.startswith("configuration error: REDIS_URL must be redis://") and error.count("\n") == 1
    assert "hunter2" not in error


@pytest.mark.parametrize("url", ["redis://cache.internal:6379/0", "redis://:pw@10.0.0.5", "redis://[::1]:6380/3",
                                 "rediss://:pw@cache.internal:6380/1?ssl_cert_reqs=required",
                                 "redis://cache.internal/0?socket_timeout=5&socket_connect_timeout=2.5",
                                 "rediss://cache.internal/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem"])
def test_redis_and_tls_redis_urls_are_accepted(tmp_path, url):
    config = load_config({**PRODUCTION, "REDIS_URL": f" {url}\n"}, str(tmp_path))
    assert config["REDIS_URL"] == config["CELERY"]["broker_url"] == config["RATELIMIT_STORAGE_URI"] == url


DAY = 24 * 3600


@pytest.mark.parametrize("name, minimum, maximum", [
    ("WEB_SESSION_SECONDS", 60, 30 * DAY), ("TOKEN_TTL_SECONDS", 1, 30 * DAY), ("ORDER_RESERVATION_SECONDS", 1, DAY),
    ("LOGIN_BACKOFF_MAX_SECONDS", 1, DAY), ("LOGIN_FAILURE_ALERT_PER_MINUTE", 1, 1_000_000),
    ("TRUSTED_PROXY_HOPS", 0, 10), ("MAX_CONTENT_LENGTH", 1, 1024 ** 3), ("MAX_JSON_LENGTH", 1, 1024 ** 3),
    ("INVENTORY_UPLOAD_MAX_BYTES", 1, 1024 ** 3),
    ("INVENTORY_UPLOAD_MAX_ROWS", 1, 10_000_000), ("INVENTORY_UPLOAD_REQUEUE_SECONDS", 1, DAY),
    ("SMTP_PORT", 1, 65535),
])
def test_an_integer_setting_out_of_its_realistic_range_stops_the_start(tmp_path, name, minimum, maximum):
    """TOKEN_TTL_SECONDS=99999999999999999999999 started, then every sign-in answered 422; SMTP_PORT=70000 too."""
    for value in (minimum, maximum):
        load_config({**PRODUCTION, name: str(value)}, str(tmp_path))
    with pytest.raises(ConfigError, match=f"^{name} must be at most {maximum}, got {maximum + 1}$"):
        load_config({**PRODUCTION, name: str(maximum + 1)}, str(tmp_path))
    with pytest.raises(ConfigError, match=f"^{name} must be at most {maximum}, got 99999999999999999999999$"):
        load_config({**PRODUCTION, name: "99999999999999999999999"}, str(tmp_path))
    with pytest.raises(ConfigError, match=f"^{name} must be at least {minimum}, got {minimum - 1}$"):
        load_config({**PRODUCTION, name: str(minimum - 1)}, str(tmp_path))


def test_the_longest_token_lifetime_allowed_still_signs_in(app, client, tmp_path):
    app.config["TOKEN_TTL_SECONDS"] = load_config({"TOKEN_TTL_SECONDS": str(30 * DAY)}, str(tmp_path))[
        "TOKEN_TTL_SECONDS"]
    user = UserFactory(role="auditor")
    db.session.commit()
    response = client.post("/api/v1/auth/token", json={"username": user.username, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200, response.json
    bearer = {"Authorization": f"Bearer {response.json['access_token']}"}
    assert client.get("/api/v1/users/me", headers=bearer).status_code == 200


@pytest.mark.parametrize("name, key", [
    ("STRIPE_API_KEY", "garbage"), ("STRIPE_API_KEY", "pk_live_51HxYz2KqR8sT3uV4"), ("STRIPE_API_KEY", "sk_test_"),
    ("STRIPE_API_KEY", "whsec_UjZte8gSY1CoJXGBnMZ0Vqc3"), ("STRIPE_PUBLISHABLE_KEY", "sk_live_51HxYz2KqR8sT3uV4"),
    ("STRIPE_PUBLISHABLE_KEY", "pk_live_ 51HxYz2KqR8sT3uV4"),
])
def test_a_stripe_key_of_the_wrong_kind_stops_the_start_never_quoted(tmp_path, name, key):
    """`STRIPE_API_KEY=pk_live_…` started with PAYMENTS=stripe and failed every checkout; a secret key given as the
    publishable one would be sent to every browser."""
    with pytest.raises(ConfigError) as error:
        load_config({**PRODUCTION, name: key}, str(tmp_path))
    kinds = "sk_live_, sk_test_, rk_live_, rk_test_" if name == "STRIPE_API_KEY" else "pk_live_, pk_test_"
    assert str(error.value) == f"{name} must be a Stripe key starting {kinds}"  # the key itself is never quoted


def test_secret_restricted_and_publishable_stripe_keys_are_accepted(tmp_path):
    for secret in ("sk_live_51HxYz2KqR8sT3uV4", "rk_live_51HxYz2KqR8sT3uV4", "rk_test_51HxYz2KqR8sT3uV4"):
        config = load_config({**PRODUCTION, "STRIPE_API_KEY": secret, "STRIPE_PUBLISHABLE_KEY": "pk_live_51HxYz2Kq"},
                             str(tmp_path))
        assert (config["PAYMENTS"], config["STRIPE_API_KEY"], config["STRIPE_PUBLISHABLE_KEY"]) == (
            "stripe", secret, "pk_live_51HxYz2Kq")


def test_the_readme_states_how_late_the_sweeper_requeues_a_lost_message_as_the_code_makes_it():
    """The README said "within a minute": a row counts as lost once queued longer ago than the grace, and the sweep
    that finds it runs every SWEEP_EVERY_SECONDS, so up to both together."""
    from orders import outbox
    from orders.payments import service as payments
    from shop.sweeper import SWEEP_EVERY_SECONDS

    grace = outbox.REQUEUE_AFTER.total_seconds()
    assert payments.REQUEUE_AFTER.total_seconds() == grace
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8").split())
    assert (f"the sweeper re-queues {grace / 60:g} to {(grace + SWEEP_EVERY_SECONDS) / 60:g} minutes after it was "
            f"queued: a row counts as lost once it was queued more than {grace:g} s ago") in readme
    assert f"sweep runs every {SWEEP_EVERY_SECONDS:g} s" in readme


def test_production_with_stripe_needs_the_publishable_key_its_pay_page_uses(tmp_path):
    """Without it the storefront placed orders and sent their buyers to a pay page that answered 404."""
    env = {k: v for k, v in PRODUCTION.items() if k != "STRIPE_PUBLISHABLE_KEY"}
    with pytest.raises(ConfigError, match="STRIPE_PUBLISHABLE_KEY"):
        load_config(env, str(tmp_path))
    assert load_config({**env, "PAYMENTS": "sandbox"}, str(tmp_path))["PAYMENTS"] == "sandbox"


@pytest.mark.parametrize("value", ["garbage", "TRUE", "on", " true"])
def test_a_yes_no_setting_is_checked_on_sqlite_too(tmp_path, value):
    with pytest.raises(ConfigError, match="DATABASE_PRE_PING must be one of"):
        load_config({"DATABASE_PRE_PING": value}, str(tmp_path))


def test_the_embedded_default_keeps_each_task_that_succeeded_out_of_the_console_and_a_worker_logs_it(app, caplog,
                                                                                                  tmp_path):
    from shop.tasks import sweep

    caplog.set_level("INFO")
    sweep.delay()
    assert not [r for r in caplog.records if "succeeded" in r.getMessage()], "a minute's beat tasks fill `make run`"

    make_app(str(tmp_path), REDIS_URL="redis://127.0.0.1:6379/14")  # a worker's app: a broker, no eager tasks
    sweep.apply()
    assert [r for r in caplog.records if "shop.sweep" in r.getMessage() and "succeeded" in r.getMessage()]


@pytest.mark.parametrize("name, value", [
    ("SMTP_HOST", "mail..example.cn"), ("SMTP_HOST", "mail example.cn"), ("SMTP_HOST", "smtp://mail.example.cn"),
    ("SMTP_FROM", "shop"), ("SMTP_FROM", "shop@example.cn, other@example.cn"),
    ("SMTP_FROM", "shop@example.cn\nBcc: x@y.cn"), ("NOTIFY_EMAIL_TO", "service"),
    ("NOTIFY_EMAIL_TO", "service@example.cn,"), ("NOTIFY_EMAIL_TO", "a@b.cn\rBcc: x@y.cn"),
])
def test_a_mail_setting_that_cannot_work_stops_the_start(tmp_path, name, value):
    """A mistyped mail server or address was taken as it was: every notification then failed at its attempts (or
    never ended, for a host smtplib could not even encode), and the start said nothing."""
    with pytest.raises(ConfigError, match=f"^{name} "):
        load_config({**PRODUCTION, "SMTP_HOST": "mail.example.cn", name: value}, str(tmp_path))


@pytest.mark.parametrize("starttls", [None, "false", "0"])
def test_a_mail_password_sent_without_starttls_in_production_stops_the_start(tmp_path, starttls):
    """SMTP_USERNAME and SMTP_PASSWORD without SMTP_STARTTLS: every notification signed in to the mail server over
    the network in clear text, and the start said nothing."""
    settings = {**PRODUCTION, "SMTP_HOST": "smtp.exmail.qq.com", "SMTP_USERNAME": "shop@example.cn",
                "SMTP_PASSWORD": "mail-password-1", **({"SMTP_STARTTLS": starttls} if starttls else {})}
    with pytest.raises(ConfigError, match="^SMTP_USERNAME needs SMTP_STARTTLS=true under SHOP_ENV=production") as told:
        load_config(settings, str(tmp_path))
    assert "mail-password-1" not in str(told.value)
    assert load_config({**settings, "SMTP_STARTTLS": "true"}, str(tmp_path))["SMTP_STARTTLS"] is True
    assert load_config({**settings, "SMTP_HOST": "127.0.0.1"}, str(tmp_path))["SMTP_USERNAME"]  # a local relay
    assert load_config({**settings, "SHOP_ENV": "development"}, str(tmp_path))["SMTP_USERNAME"]


def test_mail_settings_as_deployments_write_them_are_accepted(tmp_path):
    config = load_config({**PRODUCTION, "SMTP_HOST": "smtp.exmail.qq.com", "SMTP_FROM": "大凉山商城 <shop@example.cn>",
                          "NOTIFY_EMAIL_TO": "service@example.cn, ops@example.cn"}, str(tmp_path))
    assert (config["SMTP_HOST"], config["SMTP_FROM"], config["NOTIFY_EMAIL_TO"]) == (
        "smtp.exmail.qq.com", "大凉山商城 <shop@example.cn>", "service@example.cn, ops@example.cn")
    assert load_config({**PRODUCTION, "SMTP_HOST": "10.0.0.25"}, str(tmp_path))["SMTP_HOST"] == "10.0.0.25"
