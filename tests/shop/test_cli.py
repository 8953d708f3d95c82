"""The command line: seed-demo, create-user, reset-password, generate-keys, load-reference; every command's database
failures in one line."""
from __future__ import annotations

import functools
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from shop.auth.models import User
from shop.crypto import parse_hash_key, parse_keys
from shop.db import db
from shop.regions import service as regions_service
from tests.conftest import make_app
from tests.factories import UserFactory
from tests.shop.test_auth import NOT_A_MOBILE, sign_in
from tests.shop.test_errors import assert_error
from tests.suppliers.factories import SupplierFactory


def test_create_user_reads_the_password_from_stdin(runner, client):
    result = runner.invoke(args=["create-user", "--role", "admin", "--username", "first-admin"],
                           input="a strong password\n")
    assert result.exit_code == 0, result.output
    assert "created user first-admin" in result.output and "a strong password" not in result.output
    assert sign_in(client, "first-admin", "a strong password").json["role"] == "admin"


def test_two_seed_demo_commands_at_once_both_finish_and_seed_once(tmp_path):
    """Two `make run`s started together on a fresh machine (two terminals) each seed the demo: the second waits for
    the first and then finds everything there, instead of failing on the rows the first wrote meanwhile."""
    database = tmp_path / "fresh.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}"}
    flask = [sys.executable, "-m", "flask", "--app", "shop"]
    run = functools.partial(subprocess.Popen, env=env, cwd=Path(__file__).parents[2], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    upgrade = run([*flask, "db", "upgrade"])
    assert upgrade.wait(timeout=600) == 0, upgrade.communicate()[0]
    seeders = [run([*flask, "seed-demo"]) for _ in range(2)]
    outputs = [seeder.communicate(timeout=600)[0] for seeder in seeders]
    assert [seeder.returncode for seeder in seeders] == [0, 0], outputs
    assert sum("user admin (admin) password: " in output for output in outputs) == 1
    with closing(sqlite3.connect(database)) as seeded:
        assert seeded.execute("SELECT count(*) FROM orders").fetchone() == (4,)  # the demo's four orders, once
        assert seeded.execute("SELECT count(*) FROM users WHERE username = 'admin'").fetchone() == (1,)


def test_create_user_refuses_short_passwords_and_missing_scope(runner):
    short = runner.invoke(args=["create-user", "--role", "admin", "--username", "a1"], input="short\n")
    assert short.exit_code != 0 and "8 to 128 characters" in short.output
    unscoped = runner.invoke(args=["create-user", "--role", "coop", "--username", "coop1"], input="long password\n")
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


def test_create_user_stores_the_username_in_its_one_spelling(runner, client):
    result = runner.invoke(args=["create-user", "--role", "auditor", "--username", " Ｆｉｒｓｔ-Auditor "],
                           input="a strong password\n")
    assert result.exit_code == 0 and "created user first-auditor" in result.output
    assert sign_in(client, "FIRST-AUDITOR", "a strong password").status_code == 200


def test_reset_password_sets_a_new_password_and_revokes_old_tokens(runner, client):
    user = UserFactory(role="admin", username="ops-admin")
    db.session.commit()
    old_token = sign_in(client, "ops-admin").json["access_token"]
    result = runner.invoke(args=["reset-password", "--username", "ＯＰＳ-ADMIN"], input="fresh password 9\n")
    assert result.exit_code == 0, result.output
    assert "fresh password 9" not in result.output and "ops-admin" in result.output
    headers = {"Authorization": f"Bearer {old_token}"}
    assert_error(client.get(f"/api/v1/users/{user.id}", headers=headers), 401, "invalid_token")
    assert_error(sign_in(client, "ops-admin"), 401, "invalid_credentials")
    assert sign_in(client, "ops-admin", "fresh password 9").status_code == 200


def test_reset_password_lifts_a_sign_in_backoff(runner, client):
    UserFactory(username="locked-out")
    db.session.commit()
    for _ in range(3):
        sign_in(client, "locked-out", "wrong password")
    assert_error(sign_in(client, "locked-out"), 429, "too_many_attempts")
    assert runner.invoke(args=["reset-password", "--username", "locked-out"], input="fresh password 9\n").exit_code == 0
    assert sign_in(client, "locked-out", "fresh password 9").status_code == 200


def test_a_password_too_short_is_refused_for_its_length_even_if_it_reads_as_a_pattern(runner):
    for stdin in ("\n", "", "abc\n", "aaaa\n"):  # nothing piped in, or a short run or repeat
        result = runner.invoke(args=["create-user", "--role", "admin", "--username", "ops-admin"], input=stdin)
        assert result.exit_code == 1 and "8 to 128 characters" in result.output, (stdin, result.output)
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_reset_password_refuses_unknown_users_and_short_passwords(runner):
    UserFactory(username="someone")
    db.session.commit()
    unknown = runner.invoke(args=["reset-password", "--username", "nobody"], input="fresh password 9\n")
    assert unknown.exit_code != 0 and "No user" in unknown.output
    short = runner.invoke(args=["reset-password", "--username", "someone"], input="short\n")
    assert short.exit_code != 0 and "8 to 128 characters" in short.output


def test_generate_keys_prints_fresh_keys_the_app_accepts(runner):
    first = runner.invoke(args=["generate-keys"])
    assert first.exit_code == 0, first.output
    values = dict(line.split("=", 1) for line in first.output.splitlines())
    assert set(values) == {"SECRET_KEY", "FIELD_ENCRYPTION_KEY", "FIELD_HASH_KEY", "STRIPE_WEBHOOK_SECRET"}
    assert values["STRIPE_WEBHOOK_SECRET"].startswith("whsec_") and len(values["STRIPE_WEBHOOK_SECRET"]) == 54
    assert len(values["SECRET_KEY"]) >= 43
    ring = parse_keys(values["FIELD_ENCRYPTION_KEY"])
    assert len(ring.keys[ring.current]) == 32
    assert len(parse_hash_key(values["FIELD_HASH_KEY"])) == 32
    second = dict(line.split("=", 1) for line in runner.invoke(args=["generate-keys"]).output.splitlines())
    assert all(second[name] != values[name] for name in values)
    rotated = parse_keys(f"{second['FIELD_ENCRYPTION_KEY']},{values['FIELD_ENCRYPTION_KEY']}")  # the same day
    assert len(rotated.keys) == 2 and rotated.current != ring.current


def test_check_worker_says_in_one_line_that_redis_cannot_be_reached(sqlite_template, tmp_path):
    import shutil

    from tests.conftest import make_app
    from tests.shop.test_outages import _dead_redis_url

    shutil.copy(sqlite_template, tmp_path / "shop.db")
    app = make_app(tmp_path, REDIS_URL=_dead_redis_url())
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["check-worker", "--timeout", "5"])
        db.session.remove()
        db.engine.dispose()
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach Redis") and result.output.count("\n") == 1, result.output


def test_check_worker_says_in_one_line_that_no_worker_answered(redis_app):
    result = redis_app.test_cli_runner().invoke(args=["check-worker", "--timeout", "1"])
    assert result.exit_code == 1
    assert result.output == "Error: no worker answered within 1 s\n"


def test_check_worker_waits_a_bounded_positive_time(redis_app):
    """`--timeout 0` or a negative one said no worker answered without waiting for one, and a huge one was
    taken as given; each is now refused as a bad option, before anything is sent."""
    for timeout in ("0", "-1", "100000000000000000000"):
        result = redis_app.test_cli_runner().invoke(args=["check-worker", "--timeout", timeout])
        assert result.exit_code == 2 and "--timeout" in result.output, result.output
        assert "Traceback" not in result.output


def test_check_worker_without_a_broker_says_so_instead_of_answering_itself(runner):
    result = runner.invoke(args=["check-worker"])
    assert result.exit_code == 1
    assert result.output == ("Error: no broker to reach a worker through: REDIS_URL is not set, so tasks run in the "
                             "process that queues them\n")


LEIBO = "440606,顺德区,513437,雷波县,east-west cooperation,2016-01-01,"


def _ship_edited_reference(monkeypatch, tmp_path, *, successor_from: str) -> None:
    """The shipped reference data as a release would edit it: 顺德→雷波 ends on 2021-02-28 and a successor starts on
    `successor_from`; 雷波县 gets a new name."""
    data = tmp_path / "reference"
    shutil.copytree(regions_service.DATA_DIR, data)
    pairings = (data / "pairings.csv").read_text(encoding="utf-8")
    assert LEIBO in pairings
    successor = f"440606,顺德区,513437,雷波县,east-west cooperation,{successor_from},,第二轮协作协议"
    (data / "pairings.csv").write_text(pairings.replace(LEIBO, LEIBO + "2021-02-28") + successor + "\n",
                                       encoding="utf-8")
    regions = (data / "regions.csv").read_text(encoding="utf-8")
    (data / "regions.csv").write_text(regions.replace("513437,雷波县,", "513437,雷波县（新）,"), encoding="utf-8")
    monkeypatch.setattr(regions_service, "DATA_DIR", data)


def _leibo_periods(client) -> list[tuple]:
    """The 顺德→雷波 pairings' periods, oldest first."""
    items = client.get("/api/v1/pairings?donor=440606&recipient=513437").json["items"]
    return [(item["valid_from"], item["valid_until"]) for item in items]


def test_load_reference_applies_shipped_end_dates_and_names_and_reports_them(runner, client, monkeypatch, tmp_path):
    _ship_edited_reference(monkeypatch, tmp_path, successor_from="2021-03-01")

    result = runner.invoke(args=["load-reference"])

    assert result.exit_code == 0, result.output
    assert "0 regions and 1 pairings added, 2 existing rows changed" in result.output
    assert "ends 2021-02-28 (was open)" in result.output and "雷波县 -> 雷波县（新）" in result.output
    assert _leibo_periods(client) == [("2016-01-01", "2021-02-28"), ("2021-03-01", None)]
    assert client.get("/api/v1/regions/513437").json["name"] == "雷波县（新）"
    again = runner.invoke(args=["load-reference"])
    assert again.exit_code == 0 and "0 regions and 0 pairings added, 0 existing rows changed" in again.output


def test_load_reference_skips_and_reports_shipped_pairings_that_would_change_paid_sales_report_rows(
        runner, client, monkeypatch, tmp_path):
    """Today's sales: 顺德's of 昭觉 produce (unpaired), 禅城's (paired). A release shipping 禅城→昭觉 ended yesterday
    and a 顺德→昭觉 pairing from 2016 would turn both rows over: both are skipped and reported, the rest applied."""
    from orders import outbox
    from shop.db import utcnow
    from tests.orders.ledger.test_attribution import make_world, pay_pickup

    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)  # its store is in 顺德
    pay_pickup(client, world, 1)
    world["store"].district_code = "440604"  # 禅城, paired with 昭觉 (the world's county)
    db.session.commit()
    pay_pickup(client, world, 1)
    _ship_edited_reference(monkeypatch, tmp_path, successor_from="2021-03-01")
    pairings = regions_service.DATA_DIR / "pairings.csv"
    chancheng = "440604,禅城区,513431,昭觉县,east-west cooperation,2016-01-01,"
    edited = pairings.read_text(encoding="utf-8").replace(chancheng, chancheng + str(today - timedelta(days=1)))
    pairings.write_text(edited + "440606,顺德区,513431,昭觉县,east-west cooperation,2016-01-01,,补签\n",
                        encoding="utf-8")

    result = runner.invoke(args=["load-reference"])

    assert result.exit_code == 0, result.output
    assert "0 regions and 1 pairings added, 2 existing rows changed, 2 shipped changes skipped" in result.output
    assert f"440604 -> 513431 (pairings.csv line 3) not applied: sales dated {today} to {today}" in result.output
    assert "440606 -> 513431 (pairings.csv line" in result.output
    assert client.get("/api/v1/pairings?donor=440604&recipient=513431").json["items"][0]["valid_until"] is None
    assert client.get("/api/v1/pairings?donor=440606&recipient=513431").json["items"] == []
    assert _leibo_periods(client) == [("2016-01-01", "2021-02-28"), ("2021-03-01", None)]


def test_load_reference_refuses_an_overlapping_shipped_pairing_and_writes_nothing(runner, client, monkeypatch,
                                                                                    tmp_path):
    _ship_edited_reference(monkeypatch, tmp_path, successor_from="2021-01-01")

    result = runner.invoke(args=["load-reference"])

    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "would overlap pairing" in result.output
    assert "Traceback" not in result.output
    assert _leibo_periods(client) == [("2016-01-01", None)]
    assert client.get("/api/v1/regions/513437").json["name"] == "雷波县"


def test_load_reference_refuses_a_shipped_pairing_ending_before_it_starts_in_one_line(runner, client, monkeypatch,
                                                                                     tmp_path):
    data = tmp_path / "reference"
    shutil.copytree(regions_service.DATA_DIR, data)
    pairings = (data / "pairings.csv").read_text(encoding="utf-8")
    (data / "pairings.csv").write_text(pairings.replace(LEIBO, LEIBO + "2015-01-01"), encoding="utf-8")
    monkeypatch.setattr(regions_service, "DATA_DIR", data)

    result = runner.invoke(args=["load-reference"])

    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0 and "ends (2015-01-01) before it starts" in result.output
    assert _leibo_periods(client) == [("2016-01-01", None)]


def test_load_reference_on_postgres_refuses_an_overlap_in_one_line(pg_app, monkeypatch, tmp_path):
    _ship_edited_reference(monkeypatch, tmp_path, successor_from="2020-06-01")

    result = pg_app.test_cli_runner().invoke(args=["load-reference"])

    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # a ClickException, no traceback
    assert result.output.strip().count("\n") == 0 and "would overlap pairing" in result.output
    assert _leibo_periods(pg_app.test_client()) == [("2016-01-01", None)]


# every command that reads or writes the database, with its arguments and standard input
DATABASE_COMMANDS = ((["seed-demo"], None), (["load-reference"], None), (["verify-ledger"], None),
                     (["refresh-rollups"], None), (["suppliers", "reencrypt"], None),
                     (["payments", "requeue-failed"], None),
                     (["create-user", "--role", "admin", "--username", "someone"], "a strong password\n"),
                     (["reset-password", "--username", "someone"], "a strong password\n"),
                     (["import-inventory", "1", "stock.csv"], None))


def _run_each_command(tmp_path, **env) -> list[str]:
    """The output of each of DATABASE_COMMANDS run by the app configured with `env` (in `tmp_path`)."""
    (tmp_path / "stock.csv").write_text("product_id,quantity\n1,1\n", encoding="utf-8")
    app = make_app(tmp_path, **env)
    outputs = []
    with app.app_context():
        for args, stdin in DATABASE_COMMANDS:
            result = app.test_cli_runner().invoke(args=[str(tmp_path / a) if a.endswith(".csv") else a for a in args],
                                                  input=stdin)
            assert result.exit_code == 1, (args, result.output)
            outputs.append(result.output.splitlines()[-1])
        db.session.remove()
        db.engine.dispose()
    return outputs


def test_every_command_on_a_database_without_its_schema_says_to_upgrade_in_one_line(tmp_path):
    assert _run_each_command(tmp_path) == [
        "Error: the database has no schema: run `flask --app shop db upgrade`"] * len(DATABASE_COMMANDS)


def test_every_command_says_in_one_line_that_the_database_cannot_be_reached(tmp_path):
    outputs = _run_each_command(tmp_path, DATABASE_URL="sqlite:////nonexistent/dir/shop.db")
    assert outputs == ["Error: cannot reach the database: unable to open database file"] * len(DATABASE_COMMANDS)


def test_a_missing_postgres_database_is_one_line_without_the_password(pg_url, tmp_path):
    missing = make_url(pg_url).set(database="no_such_database", password="hunter2")
    outputs = _run_each_command(tmp_path, DATABASE_URL=missing.render_as_string(hide_password=False))
    assert all(line.startswith("Error: cannot reach the database: ") and "no_such_database" in line
               and "hunter2" not in line for line in outputs), outputs


def test_an_id_out_of_the_apis_range_is_refused_before_anything_is_read(runner, tmp_path):
    for args in (["create-user", "--role", "store_staff", "--username", "staff", "--store-id", "9999999999"],
                 ["create-user", "--role", "coop", "--username", "coop", "--supplier-id", "9" * 23],
                 ["import-inventory", "99999999999", str(tmp_path / "stock.csv")]):
        (tmp_path / "stock.csv").write_text("product_id,quantity\n1,1\n", encoding="utf-8")
        result = runner.invoke(args=args, input="a strong password\n")
        assert result.exit_code == 2 and "is not in the range 1<=x<=2147483647" in result.output, result.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_a_password_or_file_name_that_is_not_utf8_is_one_line(runner, tmp_path):
    UserFactory(username="bob")
    supplier = SupplierFactory()
    db.session.commit()
    stock = tmp_path / os.fsdecode(b"stock-\xff.csv")  # a file name's bytes, kept by argv as surrogates
    stock.write_text("product_id,quantity\n1,1\n", encoding="utf-8")
    for args, stdin in ((["reset-password", "--username", "bob"], b"\xff\xfe12345678\n"),  # read as UTF-8: undecodable
                        (["import-inventory", str(supplier.id), str(stock)], None)):
        result = runner.invoke(args=args, input=stdin)
        assert result.exit_code == 1, result.output
        assert result.output.splitlines()[-1] == "Error: an argument or standard input is not UTF-8 text", result.output


def test_create_user_checks_the_username_as_the_api_does(runner, client):
    for username, role, refusal in (("x", "admin", "username: Shorter than minimum length 3."),
                                    ("bob", "consumer", f"phone: {NOT_A_MOBILE}")):
        result = runner.invoke(args=["create-user", "--role", role, "--username", username], input="long password\n")
        assert result.exit_code == 1 and result.output == f"Error: {refusal}\n", result.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 0
    consumer = runner.invoke(args=["create-user", "--role", "consumer", "--username", "138 0000 0001"],
                             input="long password\n")
    assert consumer.exit_code == 0 and "created user 13800000001" in consumer.output, consumer.output
    assert sign_in(client, "13800000001", "long password").json["role"] == "consumer"


def test_seed_demo_with_lost_development_keys_says_what_to_do_and_writes_nothing(sqlite_template, tmp_path,
                                                                                 monkeypatch):
    from flask import Flask

    from shop import create_app
    from tests.conftest import TEST_SECRETS

    monkeypatch.setattr(Flask, "auto_find_instance_path", lambda self: str(tmp_path))  # `make run`'s instance folder
    for name in TEST_SECRETS:
        monkeypatch.delenv(name)
    shutil.copy(sqlite_template, tmp_path / "shop.db")  # its ID-number hashes made with the suite's key
    app = create_app({"TESTING": True})  # and new development keys in dev-secrets.json: the old ones were lost
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["seed-demo"])
        users = db.session.scalar(select(func.count()).select_from(User))
        db.session.remove()
        db.engine.dispose()
    assert result.exit_code == 1 and users == 0
    assert result.output == (f"Error: FIELD_HASH_KEY does not match this database: restore {tmp_path}/dev-secrets.json "
                             f"(the keys it was made with) or delete {tmp_path}/shop.db\n")


def test_seed_demo_with_another_hash_key_set_stops_before_writing(app, runner):
    app.config["FIELD_HASH_KEY"] = "b3RoZXIta2V5LW9mLXRoZS10ZXN0LXN1aXRlLTAwMDA"
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 1 and result.output.startswith("Error: FIELD_HASH_KEY does not match the key")
    assert "\n" not in result.output.rstrip("\n")
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


MIGRATION_COMMANDS = (["db", "upgrade"], ["db", "current"], ["db", "downgrade", "base"], ["db", "check"])


def test_migration_commands_say_in_one_line_that_the_database_cannot_be_reached(pg_url, tmp_path):
    missing = make_url(pg_url).set(database="no_such_database", password="hunter2")
    app = make_app(tmp_path, DATABASE_URL=missing.render_as_string(hide_password=False))
    with app.app_context():
        results = [app.test_cli_runner().invoke(args=args) for args in MIGRATION_COMMANDS]
        db.engine.dispose()
    for result in results:
        assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
        assert result.output.startswith("Error: cannot reach the database: ") and "no_such_database" in result.output
        assert "hunter2" not in result.output


def test_a_migration_that_fails_on_a_reachable_database_is_not_called_unreachable(runner):
    result = runner.invoke(args=["db", "upgrade", "nowhere"])
    assert result.exit_code != 0 and "cannot reach" not in result.output


def test_the_command_line_reads_a_username_and_checks_a_password_as_the_api_does(runner, client):
    consumer = runner.invoke(args=["create-user", "--role", "consumer", "--username", "+86 138-0000-0002"],
                             input="long password\n")
    assert consumer.exit_code == 0 and "created user 13800000002" in consumer.output, consumer.output
    reset = runner.invoke(args=["reset-password", "--username", "0086 138 0000 0002"], input="fresh password 9\n")
    assert reset.exit_code == 0, reset.output
    assert sign_in(client, "138 0000 0002", "fresh password 9").status_code == 200
    for password in (" " * 16, "bell\x07password", "nul\x00password"):
        for args in (["reset-password", "--username", "13800000002"],
                     ["create-user", "--role", "admin", "--username", "second-admin"]):
            refused = runner.invoke(args=args, input=f"{password}\n")
            assert refused.exit_code == 1 and refused.output.startswith("Error: password: "), refused.output
    assert sign_in(client, "13800000002", "fresh password 9").status_code == 200
    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_seed_demo_never_writes_its_world_into_a_production_database(app, runner):
    app.config["SHOP_ENV"] = "production"
    users = db.session.scalar(select(func.count()).select_from(User))

    result = runner.invoke(args=["seed-demo"])

    assert result.exit_code == 1 and result.output.count("\n") == 1 and "SHOP_ENV=production" in result.output
    assert db.session.scalar(select(func.count()).select_from(User)) == users
