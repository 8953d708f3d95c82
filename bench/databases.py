"""Databases for the app under test: a fresh SQLite file, or BENCH_DATABASE_URL (PostgreSQL) rebuilt."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bench import BenchError, progress


@contextmanager
def app_context(database_url: str, instance_path: Path) -> Iterator[Flask]:
    """An app context on `database_url` (to migrate or seed it), its connections closed afterwards."""
    from bench.servers import RUN_SECRETS
    from shop import create_app
    from shop.config import load_config
    from shop.db import db

    app = create_app(load_config({"DATABASE_URL": database_url, **RUN_SECRETS}, str(instance_path)))
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


def migrate(database_url: str, instance_path: Path) -> None:
    """Bring the database to the head revision and load the reference data."""
    from flask_migrate import upgrade

    from shop.db import db
    from shop.regions.service import load_reference_data

    progress("migrating the database and loading reference data…")
    with app_context(database_url, instance_path):
        upgrade()
        load_reference_data()
        db.session.commit()


def reset_postgres(database_url: str) -> None:
    """Create the PostgreSQL database if missing, then drop and recreate its schema `public`."""
    url = make_url(database_url).set(drivername="postgresql+psycopg")
    if not url.database:
        raise BenchError("BENCH_DATABASE_URL names no database.")
    progress(f"resetting PostgreSQL database {url.database!r}…")
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}):
                conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    except OperationalError as exc:
        raise BenchError(f"Cannot reach PostgreSQL at {url.host}:{url.port or 5432}: "
                         f"{str(exc.orig).strip().splitlines()[0]}") from exc
    finally:
        admin.dispose()
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def prepare_database(folder: Path) -> str:
    """A migrated database with reference data: BENCH_DATABASE_URL rebuilt, else SQLite in `folder`."""
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        if not url.startswith(("postgres://", "postgresql://", "postgresql+psycopg://")):
            raise BenchError("BENCH_DATABASE_URL must be a PostgreSQL URL.")
        reset_postgres(url)
    else:
        progress("preparing a fresh SQLite database…")
        url = "sqlite:///" + str(folder / "shop.db")
    migrate(url, folder)
    return url


def database_kind(database_url: str) -> str:
    """`postgresql` or `sqlite`, for the recorded settings (never the URL: it may hold a password)."""
    return "postgresql" if database_url.startswith("postgres") else "sqlite"
