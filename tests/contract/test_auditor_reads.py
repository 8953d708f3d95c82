"""The auditor reads the money, stock and attribution chain (DESIGN.md: auditors check that attributed money is
right) and changes nothing: every GET route of the OpenAPI document answers an auditor (none is 403 but the few
listed here, each with why), and every write that needs a token refuses one (403), but the auditor's own password
and sign-out."""
from __future__ import annotations

import io
import re

from tests.contract.test_bola import TABLE

# GET routes that are not for auditors, and why
NOT_FOR_AUDITORS = {
    "/api/v1/orders/{order_id}/pickup-qr.svg": "the buyer's pickup code: a credential to collect goods, not a record",
}
# writes an auditor may make, and why
AUDITOR_WRITES = {
    ("post", "/api/v1/users/me/password"): "every signed-in user changes their own password",
    ("post", "/api/v1/auth/logout"): "every signed-in user signs out (of every device)",
    ("post", "/api/v1/ledger/verifications"): "verifying the ledger is the auditor's own work (it writes only its run)",
}
# an OpenAPI path parameter → the world object it names, where the names differ
OBJECTS = {"code": "region_code", "transaction_id": "ledger_transaction_id"}
_PARAM = re.compile(r"{([^{}]+)}")


def _object_key(method: str, path: str, name: str) -> str:
    """The world key of the object a path parameter names: the BOLA table's for the route, else by its name."""
    route = TABLE.get((method.upper(), _PARAM.sub(r"<\1>", path)))
    return route.obj if route is not None else OBJECTS.get(name, name)


def _path(world, method: str, path: str) -> str:
    """`path` with each parameter replaced by the world's object of that kind (the first one: an auditor sees all)."""
    def value(match) -> str:
        obj = next(iter(world.ids[_object_key(method, path, match.group(1))].values()))
        return str(obj[match.group(1)] if isinstance(obj, dict) else obj)

    return _PARAM.sub(value, path)


def _operations(client):
    """(method, path, operation) of every operation in the OpenAPI document."""
    paths = client.get("/api/v1/openapi.json").json["paths"]
    return [(method, path, operation) for path, item in paths.items() for method, operation in item.items()
            if method in ("get", "post", "put", "patch", "delete")]


def _body(operation: dict) -> dict:
    """A body of the kind the operation takes (a PATCH without one is a 422 for anyone; the role is what is tried)."""
    content = operation.get("requestBody", {}).get("content", {})
    if "multipart/form-data" in content:
        return {"data": {"file": (io.BytesIO(b"sku\n"), "upload.csv")}, "content_type": "multipart/form-data"}
    return {"json": {"note": "审计"}} if content else {}


def test_an_auditor_reads_every_get_route_but_the_listed_ones(world):
    client = world.app.test_client()
    refused, read = [], []
    for method, path, _operation in _operations(client):
        if method != "get":
            continue
        response = client.get(_path(world, method, path), headers=world.of("auditor"))
        code = (response.get_json(silent=True) or {}).get("error", {}).get("code")
        if path in NOT_FOR_AUDITORS:
            assert response.status_code == 403, (path, response.status_code)
        elif response.status_code == 403 or response.status_code >= 500:
            refused.append(f"GET {path}: {response.status_code} {code}")
        else:
            read.append(path)
    assert not refused, "\n".join(refused)
    assert {"/api/v1/payout-batches", "/api/v1/payout-batches/{batch_id}", "/api/v1/users",
            "/api/v1/stores/{store_id}/sale-conflicts", "/api/v1/households/{household_id}/statement"} <= set(read)


def test_an_auditor_changes_nothing(world):
    client = world.app.test_client()
    allowed = []
    for method, path, operation in _operations(client):
        if method == "get" or operation.get("security") == [] or (method, path) in AUDITOR_WRITES:
            continue  # public writes (sign in, register, the payment webhook) check no role
        response = client.open(_path(world, method, path), method=method.upper(), headers=world.of("auditor"),
                               **_body(operation))
        if response.status_code != 403:
            allowed.append(f"{method.upper()} {path}: {response.status_code}")
    assert not allowed, "\n".join(allowed)


def test_an_auditor_reads_a_batch_masked_but_never_downloads_its_bank_file(world):
    client, batch_id = world.app.test_client(), world.ids["batch_id"]["own"]

    shown = client.get(f"/api/v1/payout-batches/{batch_id}", headers=world.of("auditor"))
    for output in ("csv", "xlsx"):
        file = client.get(f"/api/v1/payout-batches/{batch_id}", headers=world.of("auditor"),
                          query_string={"format": output, "reason": "审计抽查"})
        assert file.status_code == 403 and file.json["error"]["code"] == "bank_file_forbidden"
    revealed = client.get(f"/api/v1/households/{world.ids['household_id']['own']}", headers=world.of("auditor"),
                          query_string={"reveal": "true", "reason": "审计抽查"})
    downloads = client.get("/api/v1/audit/payout-downloads", headers=world.of("auditor"))

    assert shown.status_code == 200
    assert all(len(line["account"].strip("*")) <= 4 for line in shown.json["lines"])
    assert revealed.status_code == 403 and revealed.json["error"]["code"] == "reveal_forbidden"
    assert downloads.json["items"] == []                                    # nothing was downloaded
