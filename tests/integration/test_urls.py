"""What names a thing, read alike on PostgreSQL: a control character in a code names nothing (PostgreSQL refuses a
NUL in text, which must not surface as a database error)."""
from __future__ import annotations

import pytest

from shop.db import db
from tests.factories import UserFactory
from tests.shop.test_auth import sign_in
from tests.shop.test_urls import assert_control_characters_name_nothing

pytestmark = pytest.mark.postgres


def test_a_control_character_in_an_identifier_names_nothing_on_postgres(pg_app):
    assert db.engine.dialect.name == "postgresql"
    client = pg_app.test_client()
    admin = UserFactory(role="admin")
    db.session.commit()
    token = sign_in(client, admin.username).json["access_token"]
    assert_control_characters_name_nothing(client, {"Authorization": f"Bearer {token}"})
