"""Configuration read from the environment: embedded defaults, production requirements."""
from __future__ import annotations

import os
from pathlib import Path

PRODUCTION_REQUIRED = ("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "DATABASE_URL", "REDIS_URL")


class ConfigError(RuntimeError):
    """The environment does not describe a runnable service."""


def _database_uri(url: str | None, instance_path: str) -> str:
    """Turn `DATABASE_URL` into an SQLAlchemy URI (psycopg 3 for PostgreSQL)."""
    if not url:
        return "sqlite:///" + str(Path(instance_path) / "shop.db")
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def load_config(env: dict[str, str], instance_path: str) -> dict:
    """Build the Flask config mapping from an environment mapping."""
    production = env.get("SHOP_ENV", "development") == "production"
    if production:
        missing = [name for name in PRODUCTION_REQUIRED if not env.get(name)]
        has_stripe = env.get("STRIPE_API_KEY") and env.get("STRIPE_WEBHOOK_SECRET")
        if not has_stripe and env.get("PAYMENTS") != "sandbox":
            missing.append("STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET (or PAYMENTS=sandbox)")
        if missing:
            raise ConfigError("SHOP_ENV=production requires: " + ", ".join(missing))

    redis_url = env.get("REDIS_URL")
    payments = env.get("PAYMENTS") or ("stripe" if env.get("STRIPE_API_KEY") else "sandbox")
    return {
        "SHOP_ENV": "production" if production else env.get("SHOP_ENV", "development"),
        "SECRET_KEY": env.get("SECRET_KEY", "dev-secret-key-not-for-production"),
        "FIELD_ENCRYPTION_KEY": env.get(
            "FIELD_ENCRYPTION_KEY", "dev:ZGV2LWZpZWxkLWtleS1ub3QtZm9yLXByb2R1Y3Rpb24"
        ),
        "SQLALCHEMY_DATABASE_URI": _database_uri(env.get("DATABASE_URL"), instance_path),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": redis_url,
        "CACHE_TYPE": "RedisCache" if redis_url else "SimpleCache",
        "CACHE_REDIS_URL": redis_url,
        "CACHE_DEFAULT_TIMEOUT": 300,
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        "RATELIMIT_HEADERS_ENABLED": True,
        "LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "5 per minute"),
        "CELERY": {
            "broker_url": redis_url or "memory://",
            "result_backend": redis_url,
            "task_always_eager": not redis_url,
            "task_eager_propagates": True,
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "timezone": "Asia/Shanghai",
            "broker_connection_retry_on_startup": True,
        },
        "MAX_CONTENT_LENGTH": int(env.get("MAX_CONTENT_LENGTH", 10 * 1024 * 1024)),
        "INVENTORY_UPLOAD_MAX_BYTES": int(env.get("INVENTORY_UPLOAD_MAX_BYTES", 8 * 1024 * 1024)),
        "TOKEN_TTL_SECONDS": int(env.get("TOKEN_TTL_SECONDS", 12 * 3600)),
        "PAYMENTS": payments,
        "STRIPE_API_KEY": env.get("STRIPE_API_KEY"),
        "STRIPE_WEBHOOK_SECRET": env.get("STRIPE_WEBHOOK_SECRET", "whsec_sandbox_not_secret"),
        "API_TITLE": "Consumption poverty alleviation shop",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": "https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        "API_SPEC_OPTIONS": {
            "security": [{"bearer": []}],
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        },
    }


def from_environ(instance_path: str) -> dict:
    """Build the config from `os.environ`."""
    return load_config(dict(os.environ), instance_path)
