"""Audit and history lists are read by period: `from` (inclusive) and `to` (exclusive), Asia/Shanghai dates, one
argument schema for all of them; a bad or empty period is a 422, and a cursor holds only for the filters it was
issued with."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shop.db import db
from suppliers.models import RevealAudit
from tests.contract.test_auditor_reads import _operations, _path
from tests.factories import UserFactory
from tests.suppliers.factories import HouseholdFactory

AUDIT_LISTS = (
    "/api/v1/audit/user-changes",
    "/api/v1/audit/reveals",
    "/api/v1/audit/account-changes",
    "/api/v1/audit/payout-downloads",
    "/api/v1/stores/{store_id}/account-changes",
    "/api/v1/stock-adjustments",
    "/api/v1/suppliers/{supplier_id}/history",
    "/api/v1/households/{household_id}/history",
    "/api/v1/products/{sku}/history",
)


def _is_audit_list(path: str) -> bool:
    """Whether a GET route reads an audit trail or a history, by its path."""
    return path.startswith("/api/v1/audit/") or path.endswith(("/history", "/account-changes", "/stock-adjustments"))


def test_every_audit_list_takes_the_period(world):
    client = world.app.test_client()
    gets = {path: operation for method, path, operation in _operations(client) if method == "get"}
    assert {path for path in gets if _is_audit_list(path)} == set(AUDIT_LISTS)
    for path in AUDIT_LISTS:
        parameters = {p["name"]: p for p in gets[path]["parameters"] if p["in"] == "query"}
        assert {"from", "to"} <= set(parameters), path
        assert "exclusive" in parameters["to"]["description"] and "inclusive" in parameters["from"]["description"]


@pytest.mark.parametrize("path", AUDIT_LISTS)
def test_each_audit_list_reads_a_period_and_refuses_a_bad_one(world, path):
    client, auditor = world.app.test_client(), world.of("auditor")
    url = _path(world, "get", path)
    every = client.get(f"{url}?limit=100", headers=auditor)
    assert every.status_code == 200, every.json
    since = client.get(f"{url}?limit=100&from=2000-01-01", headers=auditor)
    assert since.status_code == 200 and since.json["items"] == every.json["items"]
    assert client.get(f"{url}?to=2000-01-02", headers=auditor).json["items"] == []
    for query, field in (("from=2026-13-01", "from"), ("to=yesterday", "to"), ("from=1999-12-31", "from"),
                         ("from=2026-02-01&to=2026-02-01", "to"), ("from=2026-02-01&to=2026-01-01", "to")):
        refused = client.get(f"{url}?{query}", headers=auditor)
        assert refused.status_code == 422, (query, refused.json)
        assert refused.json["error"]["code"] == "validation_error" and field in refused.json["error"]["details"]


def _reveals(client, headers, query: str) -> dict:
    """A page of the reveal audit."""
    response = client.get(f"/api/v1/audit/reveals?{query}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def test_the_reveal_audit_by_period_in_shanghai_dates_and_its_cursor_holds_only_for_its_period(client, login):
    auditor, admin, household = login("auditor"), UserFactory(role="admin"), HouseholdFactory()
    db.session.flush()
    moments = {  # UTC moments; Asia/Shanghai is UTC+8
        "dec31": datetime(2025, 12, 31, 15, 59, tzinfo=UTC),  # 2025-12-31 23:59 in Shanghai
        "jan1": datetime(2025, 12, 31, 16, 0, tzinfo=UTC),  # 2026-01-01 00:00 in Shanghai
        "jan15": datetime(2026, 1, 15, 4, 0, tzinfo=UTC),
        "jan31": datetime(2026, 1, 31, 15, 59, tzinfo=UTC),  # 2026-01-31 23:59 in Shanghai
        "feb1": datetime(2026, 1, 31, 16, 0, tzinfo=UTC),  # 2026-02-01 00:00 in Shanghai
    }
    rows = {name: RevealAudit(user_id=admin.id, household_id=household.id, fields="id_number", reason=name,
                              created_at=moment) for name, moment in moments.items()}
    db.session.add_all(rows.values())
    db.session.commit()
    january = _reveals(client, auditor, "from=2026-01-01&to=2026-02-01&limit=100")
    assert [item["reason"] for item in january["items"]] == ["jan1", "jan15", "jan31"]
    assert [item["reason"] for item in _reveals(client, auditor, "from=2026-01-31")["items"]] == ["jan31", "feb1"]
    assert [item["reason"] for item in _reveals(client, auditor, "to=2026-01-01")["items"]] == ["dec31"]

    first = _reveals(client, auditor, "from=2026-01-01&to=2026-02-01&limit=2")
    assert [item["reason"] for item in first["items"]] == ["jan1", "jan15"] and first["next_cursor"]
    rest = _reveals(client, auditor, f"from=2026-01-01&to=2026-02-01&limit=2&cursor={first['next_cursor']}")
    assert [item["reason"] for item in rest["items"]] == ["jan31"] and rest["next_cursor"] is None
    for other in ("from=2026-01-01&limit=2", "to=2026-02-01&limit=2", "from=2025-12-01&to=2026-02-01&limit=2",
                  f"from=2026-01-01&to=2026-02-01&limit=2&household_id={household.id}", "limit=2"):
        moved = client.get(f"/api/v1/audit/reveals?{other}&cursor={first['next_cursor']}", headers=auditor)
        assert moved.status_code == 400 and moved.json["error"]["code"] == "invalid_cursor", (other, moved.json)
