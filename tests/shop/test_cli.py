"""The command line: seed-demo, create-user, load-reference."""
from __future__ import annotations

import re

from sqlalchemy import func, select

from shop.auth.models import User
from shop.db import db
from tests.shop.test_auth import sign_in


def test_create_user_reads_the_password_from_stdin(runner, client):
    result = runner.invoke(args=["create-user", "--role", "admin", "--username", "first-admin"],
                           input="a strong password\n")
    assert result.exit_code == 0, result.output
    assert "created user first-admin" in result.output and "a strong password" not in result.output
    assert sign_in(client, "first-admin", "a strong password").json["role"] == "admin"


def test_create_user_refuses_short_passwords_and_missing_scope(runner):
    short = runner.invoke(args=["create-user", "--role", "admin", "--username", "a1"], input="short\n")
    assert short.exit_code != 0 and "8 characters" in short.output
    unscoped = runner.invoke(args=["create-user", "--role", "coop", "--username", "c1"], input="long password\n")
    assert unscoped.exit_code != 0 and "supplier_id" in unscoped.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_seed_demo_prints_new_passwords_once_and_is_idempotent(runner, client):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    password = re.search(r"user admin \(admin\) password: (\S+)", first.output).group(1)
    assert sign_in(client, "admin", password).status_code == 200
    users = db.session.scalar(select(func.count()).select_from(User))
    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0 and "password:" not in second.output
    assert "0 regions and 0 pairings added" in second.output
    assert db.session.scalar(select(func.count()).select_from(User)) == users


def test_load_reference_is_idempotent(runner):
    assert "0 regions and 0 pairings added" in runner.invoke(args=["load-reference"]).output
