"""Error codes are data: each domain's in one enum, listed by the OpenAPI document, none spelled out where errors
are raised or read, every one asserted by a test."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from catalog.errors import CatalogCode
from orders.errors import OrderCode
from orders.ledger.errors import LedgerCode
from shop.errors import ShopCode
from suppliers.errors import SupplierCode

ROOT = Path(__file__).resolve().parents[2]
ENUMS = (ShopCode, SupplierCode, CatalogCode, OrderCode, LedgerCode)
CODES = [code for enum in ENUMS for code in enum]
SPELLED_OUT = re.compile(r'code(?:=f?| = |, \d+, )"[a-z_]+'  # code="…", code=f"…", code = "…", status, code = 4xx, "…"
                         r'|code (?:==|!=) "[a-z_]+"|error_response\(\d+, "|CODES\.get\(.*"')


def test_no_two_domains_share_a_code():
    assert len({code.value for code in CODES}) == len(CODES)


def test_no_code_is_spelled_out_as_a_string_in_the_code():
    spelled = [f"{path.relative_to(ROOT)}:{number}"
               for package in ("shop", "suppliers", "catalog", "orders", "web")
               for path in sorted((ROOT / package).rglob("*.py"))
               for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
               if SPELLED_OUT.search(line)]
    assert spelled == []


@pytest.fixture(scope="module")
def test_sources() -> str:
    """Every test module's text but this one's."""
    return "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "tests").rglob("*.py")
                     if path.name != Path(__file__).name)


@pytest.mark.parametrize("code", CODES, ids=str)
def test_every_code_is_asserted_by_a_test(code, test_sources):
    assert f'"{code.value}"' in test_sources or f"{type(code).__name__}.{code.name}" in test_sources


def test_the_openapi_document_lists_every_code_a_client_can_get(client):
    schemas = client.get("/api/v1/openapi.json").json["components"]["schemas"]
    assert schemas["ErrorBody"]["properties"]["code"]["enum"] == sorted(code.value for code in CODES)
