"""Cached public reads follow every committed change, and only committed ones."""
from __future__ import annotations

import logging
import shutil

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from shop.caching import generation, invalidate_after_commit
from shop.db import db
from shop.extensions import cache


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


# --- keys from parsed arguments, supplier names, outages ---------------------------------------------

def _cache_entries(app) -> int:
    """How many entries the embedded (SimpleCache) cache holds."""
    return len(app.extensions["cache"][cache]._cache)


def test_junk_parameters_and_spellings_of_the_same_filters_share_one_cached_page(app, client):
    from tests.catalog.factories import ProductFactory

    ProductFactory(category="粮油")
    db.session.commit()
    first = client.get("/api/v1/products?category=粮油")
    assert first.status_code == 200 and len(first.json["items"]) == 1
    entries = _cache_entries(app)
    for same in ("category=粮油&utm_source=ad&utm_campaign=x", "category=粮油&limit=20", "category=%20粮油%20",
                 "category=粮油&_=" + "a" * 500, "q=&category=粮油&county="):
        again = client.get("/api/v1/products?" + same)
        assert again.status_code == 200 and again.json == first.json, same
    assert _cache_entries(app) == entries
    twice = client.get("/api/v1/products?category=粮油&category=茶叶")  # not answered as its first value's page
    assert twice.status_code == 422 and twice.json["error"]["details"] == {
        "category": ["Given more than once; it takes one value."]}
    for unknown in ("x", "catgory"):  # a misspelt filter is refused, not answered as if there were none
        refused = client.get(f"/api/v1/products?category=粮油&{unknown}=1")
        assert refused.status_code == 422 and refused.json["error"]["details"] == {unknown: ["Unknown field."]}
    assert _cache_entries(app) == entries


def test_invalid_arguments_are_answered_and_never_cached(app, client):
    entries = _cache_entries(app)
    for query in ("limit=0", "limit=abc", "min_price_fen=-1", "in_stock_at=99999999999"):
        assert client.get(f"/api/v1/products?{query}").status_code == 422, query
    assert _cache_entries(app) == entries


def test_a_supplier_rename_shows_on_cached_product_pages(client, login):
    from tests.catalog.factories import ProductFactory

    product = ProductFactory()
    db.session.commit()
    assert client.get(f"/api/v1/products/{product.sku}").json["supplier"]["name"] != "新名字合作社"
    assert client.get("/api/v1/products").json["items"][0]["supplier"]["name"] != "新名字合作社"
    renamed = client.patch(f"/api/v1/suppliers/{product.supplier_id}", json={"name": "新名字合作社"},
                           headers=login("admin"))
    assert renamed.status_code == 200, renamed.json
    assert client.get(f"/api/v1/products/{product.sku}").json["supplier"]["name"] == "新名字合作社"
    assert client.get("/api/v1/products").json["items"][0]["supplier"]["name"] == "新名字合作社"


@pytest.fixture
def broken_cache(app, monkeypatch):
    """The cache backend raises on every call, as Redis does when it is down."""
    backend = app.extensions["cache"][cache]

    def down(*args, **kwargs):
        raise RedisConnectionError("Connection refused")

    for name in ("get", "set", "add", "delete"):
        monkeypatch.setattr(backend, name, down)
    return backend


def test_public_reads_come_from_the_database_while_the_cache_is_down_logged_once(client, broken_cache, caplog,
                                                                                 monkeypatch):
    from tests.catalog.factories import ProductFactory

    product = ProductFactory()
    db.session.commit()
    with caplog.at_level(logging.WARNING, logger="shop.caching"):
        for _ in range(3):
            assert client.get(f"/api/v1/products/{product.sku}").json["sku"] == product.sku
            assert client.get("/api/v1/products").json["items"][0]["sku"] == product.sku
            assert client.get("/api/v1/regions?level=county&parent=513400").status_code == 200
    outage = [r for r in caplog.records if r.name == "shop.caching"]
    assert len(outage) == 1 and "unavailable" in outage[0].getMessage()

    caplog.clear()
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger="shop.caching"):
        assert client.get("/api/v1/products").status_code == 200
        assert client.get("/api/v1/products").status_code == 200
    assert [r.getMessage() for r in caplog.records if r.name == "shop.caching"] == ["cache available again"]


def test_with_redis_unreachable_public_reads_still_answer(sqlite_template, tmp_path, caplog):
    from tests.catalog.factories import ProductFactory
    from tests.conftest import make_app

    shutil.copy(sqlite_template, tmp_path / "shop.db")
    app = make_app(tmp_path, REDIS_URL="redis://127.0.0.1:9/0")
    with app.app_context():
        product = ProductFactory()
        db.session.commit()
        client = app.test_client()
        with caplog.at_level(logging.WARNING, logger="shop.caching"):
            assert client.get(f"/api/v1/products/{product.sku}").status_code == 200
            assert client.get("/api/v1/products").json["items"][0]["sku"] == product.sku
        assert len([r for r in caplog.records if r.name == "shop.caching"]) == 1
        db.session.remove()
        db.engine.dispose()


def test_reference_data_reads_key_on_their_parsed_arguments(app, client):
    url = "/api/v1/regions?level=county&parent=513400"
    first = client.get(url).json
    entries = _cache_entries(app)
    for junk in ("&_=1", "&limit=20", "&utm_source=" + "a" * 300):
        assert client.get(url + junk).json == first, junk
    assert _cache_entries(app) == entries


def test_spellings_of_the_same_region_or_pairing_in_the_path_share_one_cached_answer(app, client):
    """The path names a region or pairing by a code or id the route reads in one spelling (full-width digits,
    invisible characters, leading zeros): every spelling is the same answer, cached once, so varying it makes no
    new cache entries."""
    region = client.get("/api/v1/regions/513431")
    pairing = client.get("/api/v1/pairings/1")
    assert region.status_code == pairing.status_code == 200
    entries = _cache_entries(app)
    for spelling in ("５１３４３１", "513431\u200b", "\u200b513431", "5\u200b13431"):
        again = client.get(f"/api/v1/regions/{spelling}")
        assert again.status_code == 200 and again.json == region.json, spelling
    for spelling in ("01", "001", "0001"):
        again = client.get(f"/api/v1/pairings/{spelling}")
        assert again.status_code == 200 and again.json == pairing.json, spelling
    assert _cache_entries(app) == entries


def test_the_openapi_document_is_serialised_once_per_app_not_on_every_read(app, client, monkeypatch):
    """The public document is ~0.5 MB of JSON that takes tens of milliseconds to write out and never changes once the
    app is built: reads after the first are answered with the same bytes, not by serialising the spec afresh."""
    from shop.extensions import api

    first = client.get("/api/v1/openapi.json")
    built = []
    to_dict = api.spec.to_dict
    monkeypatch.setattr(api.spec, "to_dict", lambda: built.append(1) or to_dict())
    again = [client.get("/api/v1/openapi.json") for _ in range(3)]

    assert first.status_code == 200 and first.mimetype == "application/json"
    assert all(read.status_code == 200 and read.data == first.data for read in again)
    assert built == []
