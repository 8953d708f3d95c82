"""factory_boy factories for test data (synthetic people only)."""
from __future__ import annotations

import factory
from factory.alchemy import SQLAlchemyModelFactory

from shop.auth.models import User
from shop.auth.security import hash_password
from shop.db import db

DEFAULT_PASSWORD = "correct horse battery"


class BaseFactory(SQLAlchemyModelFactory):
    """Factories write through the app's scoped session and flush."""

    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731
        sqlalchemy_session_persistence = "flush"


class UserFactory(BaseFactory):
    """A user with the default test password."""

    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    password_hash = factory.LazyFunction(lambda: hash_password(DEFAULT_PASSWORD))
    role = "consumer"
