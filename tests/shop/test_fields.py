"""Identifiers refuse code points no two systems need show alike (private-use, unassigned, surrogates); free text
keeps private-use characters, where GB18030 puts rare characters of names."""
from __future__ import annotations

import pytest
from marshmallow import Schema, ValidationError, fields
from sqlalchemy import func, select

from shop.auth.models import User
from shop.db import db
from shop.fields import Identifier
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


def _identifier_fields() -> list[tuple[str, Identifier]]:
    """Every Identifier field of every schema the app declares (in lists too)."""
    found, stack = [], list(Schema.__subclasses__())
    while stack:
        schema = stack.pop()
        stack += schema.__subclasses__()
        for name, field in schema._declared_fields.items():
            field = field.inner if isinstance(field, fields.List) else field
            if isinstance(field, Identifier):
                found.append((f"{schema.__module__}.{schema.__name__}.{name}", field))
    return found


@pytest.mark.parametrize("char", UNSHARED.values(), ids=UNSHARED.keys())
def test_every_identifier_refuses_unshared_characters(app, char):
    identifiers = _identifier_fields()
    assert len(identifiers) > 30
    for where, field in identifiers:
        with pytest.raises(ValidationError) as error:
            field.deserialize(f"A1{char}")
        assert REFUSED in error.value.messages, where


def test_free_text_keeps_private_use_characters(client, login):
    name = "\ue816家庭农场合作社"  # a rare character of a name, as GB18030 maps it
    response = client.post("/api/v1/suppliers", headers=login("admin"), json={
        "name": name, "kind": "cooperative", "uscc": make_uscc(901), "county_code": "513431"})
    assert response.status_code == 201, response.json
    assert response.json["name"] == name
