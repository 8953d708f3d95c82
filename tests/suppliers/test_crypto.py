"""Field encryption at rest, key rotation and the keyed look-up hash."""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from orders.models import Order, Store
from shop import crypto
from shop.config import ConfigError
from shop.db import db, utcnow
from shop.idempotency import KEEP_FOR, IdempotencyKey, forget_old_keys
from suppliers.models import Household
from suppliers.service import reencrypt_fields
from tests.orders.factories import StoreFactory
from tests.orders.payments.conftest import ADDRESS, place_order, stock, user_with_token
from tests.parallel import second_while_first_uncommitted
from tests.shop.test_errors import assert_error
from tests.suppliers.factories import HouseholdFactory, household_payload, make_bank_account


def _key() -> str:
    """A fresh random key in the configured form."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def test_a_key_list_names_the_current_key_first():
    first, second = _key(), _key()
    ring = crypto.parse_keys(f"new:{first}, old:{second}=")
    assert ring.current == "new" and set(ring.keys) == {"new", "old"}


@pytest.mark.parametrize("spec", ["", "no-key-id", ":" + "A" * 43, "k1:" + "A" * 44, "k1:short",
                                  "k1:{k},k1:{k}", "bad kid!:{k}"])
def test_malformed_keys_are_refused_without_quoting_key_material(spec):
    spec = spec.format(k="B" * 43)
    with pytest.raises(ConfigError) as error:
        crypto.parse_keys(spec)
    assert "A" * 20 not in str(error.value) and "B" * 20 not in str(error.value)


def test_ciphertexts_carry_the_key_id_and_are_bound_to_their_field(app):
    token = crypto.encrypt("6217000000000000001", field="households.bank_account")
    assert token.startswith("test:") and "6217000000000000001" not in token
    assert token != crypto.encrypt("6217000000000000001", field="households.bank_account")
    assert crypto.decrypt(token, field="households.bank_account") == "6217000000000000001"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token, field="suppliers.bank_account")


def test_the_database_holds_no_plaintext_id_number_or_account(client, admin, supplier):
    body = household_payload(bank_account=make_bank_account())
    response = client.post(f"/api/v1/suppliers/{supplier.id}/households", json=body, headers=admin)
    assert response.status_code == 201, response.json
    row = db.session.execute(text("SELECT * FROM households WHERE id = :id"), {"id": response.json["id"]}).one()
    stored = " ".join(str(value) for value in row)
    assert body["id_number"] not in stored and body["bank_account"] not in stored
    assert body["id_number"][-8:] not in stored and body["bank_account"][-8:] not in stored
    assert hashlib.sha256(body["id_number"].encode()).hexdigest() not in stored
    assert row.id_number_hash == crypto.lookup_hash(body["id_number"])


def test_rotation_keeps_old_values_readable_and_lookups_working(app, runner):
    household = HouseholdFactory(bank_account=make_bank_account(), supplier__bank_account=make_bank_account())
    db.session.commit()
    id_number, account, old_hash = household.id_number, household.bank_account, household.id_number_hash
    app.config["FIELD_ENCRYPTION_KEY"] = f"k2026:{_key()},{app.config['FIELD_ENCRYPTION_KEY']}"
    db.session.expire_all()
    assert household.id_number == id_number and household.bank_account == account
    assert crypto.lookup_hash(id_number) == old_hash

    result = runner.invoke(args=["suppliers", "reencrypt"])
    assert result.exit_code == 0 and "re-encrypted 2 rows" in result.output
    db.session.expire_all()
    stored = db.session.get(Household, household.id)
    assert crypto.key_id(stored.id_number_enc) == "k2026" and crypto.key_id(stored.bank_account_enc) == "k2026"
    assert stored.id_number == id_number and stored.id_number_hash == old_hash
    assert "re-encrypted 0 rows" in runner.invoke(args=["suppliers", "reencrypt"]).output


def test_reencrypt_commits_batch_by_batch_with_progress_and_resumes_after_a_stop(app, runner):
    households = [HouseholdFactory() for _ in range(5)]
    db.session.commit()
    ids = [household.id for household in households]
    app.config["FIELD_ENCRYPTION_KEY"] = f"k2026:{_key()},{app.config['FIELD_ENCRYPTION_KEY']}"

    steps = reencrypt_fields(batch=2)
    step = next(step for step in steps if step.table == "households")
    db.session.commit()  # the first batch of households, as the command commits it
    steps.close()  # then the run stops (killed, or out of time)
    db.session.rollback()
    assert (step.action, step.changed, step.done, step.total) == ("re-encrypted", 2, 2, 5)

    def under_new_key() -> list[int]:
        db.session.expire_all()
        return [i for i in ids if crypto.key_id(db.session.get(Household, i).id_number_enc) == "k2026"]

    assert under_new_key() == ids[:2]
    result = runner.invoke(args=["suppliers", "reencrypt", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 3 rows" in result.output  # the two already done are not read again
    assert "households: 2/3 rows gone through, 2 re-encrypted" in result.output
    assert "households: 3/3 rows gone through, 1 re-encrypted" in result.output
    assert under_new_key() == ids


@pytest.mark.postgres
def test_an_account_changed_while_reencrypt_goes_through_its_row_keeps_the_new_account(pg_app):
    """The encryption key is rotated with the service up: a bank account changed (not yet committed) while
    `reencrypt` reads the row was overwritten by the old account re-encrypted, and the payouts went to it."""
    household = HouseholdFactory(bank_account=make_bank_account())
    db.session.commit()
    household_id, old_account, new_account = household.id, household.bank_account, make_bank_account()
    pg_app.config["FIELD_ENCRYPTION_KEY"] = f"k2026:{_key()},{pg_app.config['FIELD_ENCRYPTION_KEY']}"

    def change_account():
        """The account corrected through the API, its transaction not yet committed."""
        db.session.get(Household, household_id).bank_account = new_account
        db.session.flush()

    def reencrypt():
        """`suppliers reencrypt`, batch by batch."""
        for _ in reencrypt_fields(batch=10):
            db.session.commit()

    second_while_first_uncommitted(pg_app, change_account, reencrypt)

    db.session.expire_all()
    stored = db.session.get(Household, household_id)
    assert stored.bank_account == new_account != old_account
    assert crypto.key_id(stored.bank_account_enc) == "k2026"


def test_a_value_under_a_removed_key_fails_loudly_without_its_plaintext(app):
    household = HouseholdFactory()
    db.session.commit()
    app.config["FIELD_ENCRYPTION_KEY"] = f"other:{_key()}"
    db.session.expire_all()
    with pytest.raises(crypto.DecryptionError) as error:
        household.id_number  # noqa: B018 - reading the property decrypts
    assert "test" in str(error.value)


def test_encryption_keys_never_change_a_lookup_hash(app):
    before = crypto.lookup_hash("513431199001011234")
    app.config["FIELD_ENCRYPTION_KEY"] = f"new:{_key()}"
    assert crypto.lookup_hash("513431199001011234") == before
    app.config["FIELD_HASH_KEY"] = _key()
    assert crypto.lookup_hash("513431199001011234") != before


@pytest.mark.parametrize("spec", ["", "short", "A" * 44, "k1:" + "A" * 43])
def test_a_malformed_hash_key_is_refused_by_name(spec):
    with pytest.raises(ConfigError, match="FIELD_HASH_KEY") as error:
        crypto.parse_hash_key(spec)
    assert "A" * 20 not in str(error.value)


def test_a_hash_key_other_than_the_stored_one_refuses_to_serve(app, client, caplog):
    app.config["FIELD_HASH_KEY"] = _key()
    response = client.get("/api/v1/regions")
    assert response.status_code == 503 and response.json["error"]["code"] == "hash_key_mismatch"
    told = json.dumps(response.json)
    assert not any(word in told for word in ("FIELD_HASH_KEY", "reencrypt", "crypto.py")), told  # anyone may ask
    assert "FIELD_HASH_KEY does not match" in caplog.text  # the operator's detail is in the log
    page = client.get("/")
    assert page.status_code == 503 and page.mimetype == "text/html"  # a page user gets the error page, not JSON
    assert "FIELD_HASH_KEY" not in page.get_data(as_text=True)


def test_an_emptied_database_records_the_hash_key_on_first_use(app, client):
    db.session.execute(text("DELETE FROM key_fingerprints"))
    db.session.commit()
    assert client.get("/api/v1/regions").status_code == 200
    assert db.session.scalar(text("SELECT fingerprint FROM key_fingerprints")) == crypto.hash_key_fingerprint()


def test_reencrypt_rehashes_with_a_new_hash_key_and_lookups_keep_working(app, runner, client, admin, supplier):
    body = household_payload()
    assert client.post(f"/api/v1/suppliers/{supplier.id}/households", json=body, headers=admin).status_code == 201
    app.config["FIELD_HASH_KEY"] = _key()
    app.extensions.pop("suppliers.hash_key_checked")
    assert client.get("/api/v1/regions").status_code == 503

    result = runner.invoke(args=["suppliers", "reencrypt"])
    assert result.exit_code == 0 and "re-hashed 1 ID numbers" in result.output
    again = client.post(f"/api/v1/suppliers/{supplier.id}/households", headers=admin,
                        json=household_payload(id_number=body["id_number"]))
    assert again.status_code == 409 and again.json["error"]["code"] == "household_exists"


def test_reencrypt_rehashes_bank_accounts_so_a_shared_one_is_still_found(app, runner, client, admin, supplier):
    account = make_bank_account()
    body = household_payload(bank_account=account)
    assert client.post(f"/api/v1/suppliers/{supplier.id}/households", json=body, headers=admin).status_code == 201
    app.config["FIELD_HASH_KEY"] = _key()
    app.extensions.pop("suppliers.hash_key_checked")
    assert runner.invoke(args=["suppliers", "reencrypt"]).exit_code == 0
    again = client.post(f"/api/v1/suppliers/{supplier.id}/households", headers=admin,
                        json=household_payload(bank_account=account))
    assert again.status_code == 409 and again.json["error"]["code"] == "bank_account_in_use"


def test_a_rehash_stopped_half_way_serves_under_neither_key_until_it_is_run_again(app, runner, client, admin,
                                                                                  supplier):
    """A re-hash with a new FIELD_HASH_KEY stopped half-way, then the service started again with the old key: the
    stored fingerprint was still the old key's, so it served, and an ID number re-hashed already was found under
    neither key (the same person could be registered twice)."""
    bodies = [household_payload() for _ in range(3)]
    for body in bodies:
        assert client.post(f"/api/v1/suppliers/{supplier.id}/households", json=body, headers=admin).status_code == 201
    old_key, new_key = app.config["FIELD_HASH_KEY"], _key()
    app.config["FIELD_HASH_KEY"] = new_key
    steps = reencrypt_fields(batch=2)
    next(step for step in steps if step.action == "re-hashed")
    db.session.commit()  # the first batch re-hashed, as the command commits it
    steps.close()  # then the run stops
    db.session.rollback()

    for key in (old_key, new_key):  # the service started again, with either key
        app.config["FIELD_HASH_KEY"] = key
        app.extensions.pop("suppliers.hash_key_checked", None)
        assert_error(client.get("/api/v1/regions"), 503, "hash_key_mismatch")

    result = runner.invoke(args=["suppliers", "reencrypt", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert client.get("/api/v1/regions").status_code == 200
    again = client.post(f"/api/v1/suppliers/{supplier.id}/households", headers=admin,
                        json=household_payload(id_number=bodies[0]["id_number"]))
    assert again.status_code == 409 and again.json["error"]["code"] == "household_exists"


def test_reencrypt_takes_a_batch_of_at_least_one_row_and_a_refused_one_rehashes_nothing(app, runner, client, admin,
                                                                                         supplier):
    """`--batch 0` went through no row, said it was done and recorded the new hash key's fingerprint over hashes made
    with the old one (a person registered twice was no longer found); `--batch -1` was a traceback on PostgreSQL."""
    body = household_payload()
    assert client.post(f"/api/v1/suppliers/{supplier.id}/households", json=body, headers=admin).status_code == 201
    app.config["FIELD_HASH_KEY"] = _key()
    app.extensions.pop("suppliers.hash_key_checked")

    for batch in ("0", "-1", "100001", "x"):
        result = runner.invoke(args=["suppliers", "reencrypt", "--batch", batch])
        assert result.exit_code == 2 and "--batch" in result.output and "Traceback" not in result.output, result.output

    assert client.get("/api/v1/regions").status_code == 503  # the key still does not match: nothing was recorded
    assert runner.invoke(args=["suppliers", "reencrypt", "--batch", "1"]).exit_code == 0
    again = client.post(f"/api/v1/suppliers/{supplier.id}/households", headers=admin,
                        json=household_payload(id_number=body["id_number"]))
    assert again.status_code == 409 and again.json["error"]["code"] == "household_exists"


def test_rotation_reaches_every_encrypted_column_so_the_old_key_can_go(app, runner, client):
    """Addresses of orders, stores' accounts and the responses kept for retries were left under the old key, and
    became unreadable once it was dropped."""
    world = stock()
    _, headers = user_with_token()
    store = StoreFactory(bank_account=make_bank_account())
    db.session.commit()
    order = place_order(client, headers, [(world["products"][0].sku, 1)], key="rotate-1")
    old = app.config["FIELD_ENCRYPTION_KEY"]
    app.config["FIELD_ENCRYPTION_KEY"] = f"k2026:{_key()},{old}"

    assert runner.invoke(args=["suppliers", "reencrypt"]).exit_code == 0
    app.config["FIELD_ENCRYPTION_KEY"] = app.config["FIELD_ENCRYPTION_KEY"].split(",")[0]  # the old key dropped
    db.session.expire_all()
    assert db.session.get(Order, order["id"]).address["phone"] == ADDRESS["phone"]
    assert db.session.get(Store, store.id).bank_account == store.bank_account
    replay = client.post("/api/v1/orders", headers={**headers, "Idempotency-Key": "rotate-1"},
                         json={"channel": "delivery", "address": dict(ADDRESS),
                               "lines": [{"sku": world["products"][0].sku, "quantity": 1}]})
    assert replay.status_code == 201 and replay.json == order


def test_a_response_kept_for_retries_is_stored_encrypted_and_forgotten_after_a_day(app, client):
    world = stock()
    _, headers = user_with_token()
    db.session.commit()
    place_order(client, headers, [(world["products"][0].sku, 1)], key="kept-1")
    stored = db.session.scalar(select(IdempotencyKey))
    assert ADDRESS["phone"] not in stored.response_body_enc and ADDRESS["detail"] not in stored.response_body_enc
    assert ADDRESS["phone"] in stored.response_body
    stored.created_at = utcnow() - KEEP_FOR - timedelta(minutes=1)
    died = IdempotencyKey(user_id=stored.user_id, scope=stored.scope, key="died-1", request_hash="0" * 64,
                          created_at=stored.created_at)  # never answered: its request died
    db.session.add(died)
    db.session.commit()
    assert forget_old_keys() == 2
    db.session.commit()
    assert db.session.scalar(select(func.count(IdempotencyKey.id))) == 0


def test_personal_data_under_a_dropped_key_is_a_503_with_the_detail_only_in_the_log(app, client, admin, supplier,
                                                                                    caplog):
    """The old key dropped before `reencrypt`: every household answered 500 (DecryptionError) and looked like a bug."""
    created = client.post(f"/api/v1/suppliers/{supplier.id}/households", json=household_payload(), headers=admin)
    assert created.status_code == 201, created.json
    app.config["FIELD_ENCRYPTION_KEY"] = f"new:{_key()}"  # the key the row was written under is gone
    response = client.get(f"/api/v1/households/{created.json['id']}?reveal=true&reason=payout%20check",
                          headers=admin)
    error = assert_error(response, 503, "service_unavailable")
    assert "key" not in error["message"].lower() and "test" not in json.dumps(error)  # nor the key id
    logged = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(logged) == 1 and "No configured key has the id 'test'" in logged[0].getMessage()
    assert logged[0].exc_info is None


def test_reencrypt_with_the_old_key_dropped_too_early_says_so_in_one_line(app, runner):
    HouseholdFactory(bank_account=make_bank_account())
    db.session.commit()
    app.config["FIELD_ENCRYPTION_KEY"] = f"k2026:{_key()}"  # the new key alone: the old one's values are unreadable
    db.session.expire_all()

    result = runner.invoke(args=["suppliers", "reencrypt"])

    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith("Error: the configured keys cannot decrypt the stored data: No configured key")
