"""Side effects wait for the commit; timestamps stay timezone-aware on SQLite."""
from __future__ import annotations

from shop.db import after_commit, db
from tests.factories import UserFactory


def test_after_commit_callbacks_run_only_when_the_transaction_commits(app):
    fired = []
    UserFactory()
    after_commit(lambda: fired.append("rolled back"))
    db.session.rollback()
    db.session.commit()
    assert fired == []
    UserFactory()
    after_commit(lambda: fired.append("committed"))
    assert fired == []
    db.session.commit()
    assert fired == ["committed"]
    db.session.commit()
    assert fired == ["committed"]


def test_timestamps_read_back_with_a_utc_offset(app):
    user = UserFactory()
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(type(user), user.id).created_at.utcoffset().total_seconds() == 0
