"""The log sweep itself: it finds a secret wherever it sits in a rendered line."""
from __future__ import annotations

from tests.suppliers.conftest import leaks


def test_the_sweep_names_the_loggers_that_leaked():
    records = [("shop.errors", "integrity conflict: IntegrityError"),
               ("sqlalchemy.engine.Engine", "[generated in 0.0001s] ('513431198001010012', 'x')"),
               ("suppliers", "paid out to account 6217000000000000123 today")]
    assert leaks(records, {"513431198001010012", "6217000000000000123"}) == ["sqlalchemy.engine.Engine", "suppliers"]
    assert leaks(records, {"513437199001010013"}) == []
