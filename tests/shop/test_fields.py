"""Identifiers refuse code points no two systems need show alike (private-use, unassigned, surrogates); free text
keeps private-use characters, where GB18030 puts rare characters of names; the document says what the server refuses
in free text."""
from __future__ import annotations

import re
import sys

import pytest
from marshmallow import Schema, ValidationError, fields
from sqlalchemy import func, select

from shop.auth.models import User
from shop.db import db
from shop.fields import MULTILINE_TEXT_PATTERN, TEXT_PATTERN, Identifier, Text, clean_text
from tests.shop.test_errors import assert_error
from tests.suppliers.factories import make_uscc

UNSHARED = {"private use": "\U000F0000", "private use (BMP)": "\ue000", "unassigned": "\u0378",
            "surrogate": "\ud800"}
REFUSED = "Must not contain private-use, unassigned or surrogate characters."


@pytest.mark.parametrize("char", [UNSHARED["private use"], UNSHARED["unassigned"]], ids=["private use", "unassigned"])
def test_a_username_with_an_unshared_character_is_refused_and_no_user_made(client, login, char):
    admin = login("admin")
    users = db.session.scalar(select(func.count(User.id)))
    response = client.post("/api/v1/users", headers=admin, json={
        "username": f"{char}abc", "password": "admin pass 123", "role": "admin"})
    assert assert_error(response, 422, "validation_error")["details"]["username"] == [REFUSED]
    assert db.session.scalar(select(func.count(User.id))) == users


def _fields_of(kind: type) -> list[tuple[str, str, fields.Field]]:
    """(schema name, property name, field) of every `kind` field of every schema the app declares (in lists too)."""
    found, stack = [], list(Schema.__subclasses__())
    while stack:
        schema = stack.pop()
        stack += schema.__subclasses__()
        for name, field in schema._declared_fields.items():
            inner = field.inner if isinstance(field, fields.List) else field
            if isinstance(inner, kind):
                found.append((schema.__name__, field.data_key or name, field))
    return found


@pytest.mark.parametrize("char", UNSHARED.values(), ids=UNSHARED.keys())
def test_every_identifier_refuses_unshared_characters(app, char):
    identifiers = _fields_of(Identifier)
    assert len(identifiers) > 30
    for schema, name, field in identifiers:
        field = field.inner if isinstance(field, fields.List) else field
        with pytest.raises(ValidationError) as error:
            field.deserialize(f"A1{char}")
        assert REFUSED in error.value.messages, (schema, name)


def test_free_text_keeps_private_use_characters(client, login):
    name = "\ue816家庭农场合作社"  # a rare character of a name, as GB18030 maps it
    response = client.post("/api/v1/suppliers", headers=login("admin"), json={
        "name": name, "kind": "cooperative", "uscc": make_uscc(901), "county_code": "513431"})
    assert response.status_code == 201, response.json
    assert response.json["name"] == name


def _accepted(char: str, *, multiline: bool) -> bool:
    """Whether free text may hold `char` (`clean_text` refuses control characters and bidirectional overrides)."""
    try:
        clean_text(f"a{char}b", multiline=multiline)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("multiline", [False, True], ids=["one line", "multi-line"])
def test_the_documented_text_pattern_is_the_rule_the_server_applies(multiline):
    pattern = re.compile(MULTILINE_TEXT_PATTERN if multiline else TEXT_PATTERN)
    differ = [hex(point) for point in range(sys.maxunicode + 1) if not 0xD800 <= point <= 0xDFFF
              and bool(pattern.fullmatch(chr(point))) != _accepted(chr(point), multiline=multiline)]
    assert not differ


def test_every_text_field_documents_that_it_takes_no_control_characters(client):
    schemas = client.get("/api/v1/openapi.json").json["components"]["schemas"]
    documented = [(schema, name, field) for schema, name, field in _fields_of(Text) if schema in schemas]
    assert len(documented) > 30
    for schema, name, field in documented:
        prop = schemas[schema]["properties"][name]
        prop = prop.get("items", prop) if isinstance(field, fields.List) else prop
        assert prop["pattern"] == (MULTILINE_TEXT_PATTERN if field.multiline else TEXT_PATTERN), (schema, name)
    assert any(field.multiline for _, _, field in documented)
