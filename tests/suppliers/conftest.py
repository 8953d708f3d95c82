"""Fixtures of the suppliers tests, and the sweep of every captured log line for personal data.

Each test runs with logging at DEBUG, SQLAlchemy's statements, parameters and rows included;
its records are collected, and after the package's last test the collection must contain none
of the ID numbers and bank accounts the tests used.
"""
from __future__ import annotations

import logging

import pytest

from shop.db import db
from tests.suppliers.factories import PERSONAL_DATA, SupplierFactory

_FORMAT = logging.Formatter("%(name)s %(levelname)s %(message)s")
CAPTURED: list[tuple[str, str]] = []


def leaks(records: list[tuple[str, str]], secrets: set[str]) -> list[str]:
    """The names of the loggers whose lines contain any of `secrets`."""
    return sorted({name for name, text in records if any(secret in text for secret in secrets)})


@pytest.fixture(autouse=True)
def _capture_logs(caplog):
    """Log everything at DEBUG during the test and keep the rendered lines."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # SQLAlchemy pins its own loggers at WARN
    caplog.set_level(logging.INFO, logger="factory")  # test tooling tracing the fake values it generates
    yield
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        CAPTURED.append((record.name, _FORMAT.format(record)))


@pytest.fixture(scope="package", autouse=True)
def _no_personal_data_in_logs():
    """After the last test: the captured logs, SQL parameters included, hold no ID number or account."""
    yield
    assert PERSONAL_DATA, "the tests used no synthetic personal data, so the sweep proves nothing"
    assert any(name.startswith("sqlalchemy.engine") for name, _ in CAPTURED), "SQL logging was not captured"
    found = leaks(CAPTURED, PERSONAL_DATA)
    assert not found, f"personal data appeared in the logs of: {', '.join(found)}"


@pytest.fixture
def admin(login):
    """Authorization headers of an admin."""
    return login("admin")


@pytest.fixture
def supplier():
    """A co-op in 昭觉县."""
    created = SupplierFactory()
    db.session.commit()
    return created


@pytest.fixture
def coop(login, supplier):
    """Authorization headers of a user of `supplier`."""
    return login("coop", supplier_id=supplier.id)


@pytest.fixture
def other_supplier():
    """A second co-op, in 雷波县."""
    created = SupplierFactory(county_code="513437")
    db.session.commit()
    return created


@pytest.fixture
def other_coop(login, other_supplier):
    """Authorization headers of a user of `other_supplier`."""
    return login("coop", supplier_id=other_supplier.id)
