"""The sweep: every registered sweeper runs in its own transaction, isolated from the others' failures."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from shop.auth.models import User
from shop.db import db
from shop.sweeper import register_sweeper, registered_sweepers
from shop.tasks import sweep
from tests.factories import UserFactory


def test_each_sweeper_commits_alone_and_a_failing_one_does_not_stop_the_others(app, caplog):
    def creates_a_user() -> int:
        UserFactory(username="swept-before")
        return 1

    def fails_half_way() -> int:
        UserFactory(username="never-stored")
        raise RuntimeError("sweeper bug")

    def creates_another() -> int:
        UserFactory(username="swept-after")
        return 2

    for name, sweeper in (("t.first", creates_a_user), ("t.broken", fails_half_way), ("t.last", creates_another)):
        register_sweeper(app, name, sweeper)
    result = sweep.apply().get()
    assert {name: result[name] for name in ("t.first", "t.broken", "t.last")} == {
        "t.first": 1, "t.broken": None, "t.last": 2}
    assert "sweeper t.broken failed" in caplog.text
    names = set(db.session.scalars(select(User.username)))
    assert {"swept-before", "swept-after"} <= names and "never-stored" not in names


def test_the_uploads_sweeper_is_registered_and_the_sweep_is_on_the_beat_schedule(app):
    assert "catalog.inventory_uploads" in registered_sweepers(app)
    assert app.config["CELERY_BEAT_SCHEDULE"]["shop.sweep"] == {"task": "shop.sweep", "schedule": 60.0}


def test_sweeper_names_are_unique(app):
    with pytest.raises(ValueError, match="already registered"):
        register_sweeper(app, "catalog.inventory_uploads", lambda: 0)
