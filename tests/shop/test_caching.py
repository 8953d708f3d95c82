"""Cached public reads follow every committed change, and only committed ones."""
from __future__ import annotations

from shop.caching import generation, invalidate_after_commit
from shop.db import db


def test_anonymous_pairing_reads_follow_an_admin_change(client, login):
    url = "/api/v1/pairings?donor=440606&recipient=513437"
    before = client.get(url).json["items"][0]
    assert before["valid_until"] is None and client.get(url).json["items"][0] == before
    client.patch(f"/api/v1/pairings/{before['id']}", headers=login("admin"), json={"valid_until": "2021-02-28"})
    assert client.get(url).json["items"][0]["valid_until"] == "2021-02-28"


def test_a_new_region_is_listed_right_after_it_is_added(client, login):
    url = "/api/v1/regions?level=county&parent=520500&limit=100"
    assert "520581" not in [r["code"] for r in client.get(url).json["items"]]
    client.post("/api/v1/regions", headers=login("admin"), json={
        "code": "520581", "name": "黔西市", "level": "county", "parent_code": "520500", "side": "recipient"})
    assert "520581" in [r["code"] for r in client.get(url).json["items"]]


def test_a_rolled_back_change_keeps_the_cache_and_a_later_commit_still_invalidates_it(app):
    first = generation("regions")
    invalidate_after_commit("regions")
    db.session.rollback()
    assert generation("regions") == first
    invalidate_after_commit("regions")
    invalidate_after_commit("regions")
    db.session.commit()
    second = generation("regions")
    assert second != first
    db.session.commit()
    assert generation("regions") == second
