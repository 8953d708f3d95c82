"""Products: creation and edits by role, validation, history, cached reads, certificates."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from catalog import inventory, service
from catalog.models import Product
from shop.auth.models import User
from shop.clock import today
from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.parallel import second_while_first_uncommitted, send_together
from tests.shop.test_errors import assert_error
from tests.suppliers.factories import SupplierFactory

RATES = {"platform_fee_bp": 500, "store_commission_bp": 800, "household_premium_bp": 1000, "dividend_bp": 300}


def product_body(**overrides) -> dict:
    """A valid product body as a co-op sends it (no supplier_id, rates or status)."""
    body = {"sku": "ZJ-KQ-001", "name": "昭觉苦荞米", "category": "粮油", "unit": "bag", "net_weight_g": 1000,
            "price_fen": 3980, "county_code": "513431",
            "images": ["https://img.example.org/kq.jpg"],
            "certificate": {"number": "凉扶认001", "issuer": "凉山州乡村振兴局", "valid_from": "2026-01-01",
                            "valid_until": "2099-12-31"}}
    return {**body, **overrides}


def test_admin_creates_a_product_for_a_supplier(client, login):
    supplier = SupplierFactory()
    db.session.commit()
    response = client.post("/api/v1/products", json=product_body(supplier_id=supplier.id), headers=login("admin"))
    assert response.status_code == 201, response.json
    assert response.json["supplier"] == {"id": supplier.id, "name": supplier.name}
    assert response.json["county"] == {"code": "513431", "name": "昭觉县"}
    assert response.json["certified"] is True
    assert response.json["certificate"]["number"] == "凉扶认001"


def test_admin_must_name_the_supplier(client, login):
    response = client.post("/api/v1/products", json=product_body(), headers=login("admin"))
    assert response.status_code == 422
    assert "supplier_id" in response.json["error"]["details"]


def test_coop_creates_for_its_own_supplier_only(client, coop, other_coop):
    supplier, headers = coop
    created = client.post("/api/v1/products", json=product_body(), headers=headers)
    assert created.status_code == 201
    assert created.json["supplier"]["id"] == supplier.id

    foreign = client.post("/api/v1/products", json=product_body(sku="ZJ-KQ-002", supplier_id=other_coop[0].id),
                          headers=headers)
    assert foreign.status_code == 422
    assert foreign.json["error"]["details"] == {"supplier_id": ["Unknown field."]}
    assert db.session.query(Product).filter_by(sku="ZJ-KQ-002").count() == 0


def test_mass_assignment_and_negative_prices_are_refused(client, coop):
    _, headers = coop
    for body, field in ((product_body(price_fen=-1), "price_fen"), (product_body(price_fen=10.5), "price_fen"),
                        (product_body(name_pinyin="x"), "name_pinyin"), (product_body(id=99), "id")):
        response = client.post("/api/v1/products", json=body, headers=headers)
        assert response.status_code == 422, body
        assert field in response.json["error"]["details"]


def test_a_product_is_never_free_but_a_price_filter_may_start_at_0(client, coop):
    _, headers = coop
    free = client.post("/api/v1/products", json=product_body(price_fen=0), headers=headers)
    assert free.status_code == 422 and "price_fen" in free.json["error"]["details"]
    created = client.post("/api/v1/products", json=product_body(price_fen=1), headers=headers)
    assert created.status_code == 201
    patched = client.patch("/api/v1/products/ZJ-KQ-001", json={"price_fen": 0}, headers=headers)
    assert patched.status_code == 422 and "price_fen" in patched.json["error"]["details"]
    assert db.session.scalar(select(Product.price_fen).where(Product.sku == "ZJ-KQ-001")) == 1
    assert client.get("/api/v1/products?min_price_fen=0&max_price_fen=0").status_code == 200


def test_each_rate_is_within_0_and_10000_bp(client, login):
    supplier = SupplierFactory()
    db.session.commit()
    response = client.post("/api/v1/products", json=product_body(supplier_id=supplier.id, dividend_bp=10001),
                           headers=login("admin"))
    assert response.status_code == 422
    assert "dividend_bp" in response.json["error"]["details"]


def test_rates_may_not_exceed_10000_bp_together(client, login):
    supplier = SupplierFactory()
    db.session.commit()
    headers = login("admin")
    response = client.post("/api/v1/products", json=product_body(supplier_id=supplier.id, **(
                               RATES | {"platform_fee_bp": 5000, "dividend_bp": 5001})),
                           headers=headers)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "invalid_rates"
    assert "11801" in response.json["error"]["details"]["dividend_bp"][0]

    assert client.post("/api/v1/products", json=product_body(supplier_id=supplier.id, **RATES),
                       headers=headers).status_code == 201
    patched = client.patch("/api/v1/products/ZJ-KQ-001", json={"household_premium_bp": 8500}, headers=headers)
    assert patched.status_code == 422
    assert patched.json["error"]["code"] == "invalid_rates"


def test_origin_must_be_a_recipient_county(client, coop):
    response = client.post("/api/v1/products", json=product_body(county_code="440604"), headers=coop[1])
    assert response.status_code == 422
    assert "county_code" in response.json["error"]["details"]


def test_sku_is_unique(client, coop):
    assert client.post("/api/v1/products", json=product_body(), headers=coop[1]).status_code == 201
    again = client.post("/api/v1/products", json=product_body(), headers=coop[1])
    assert again.status_code == 409
    assert again.json["error"]["code"] == "sku_taken"


def test_consumers_cannot_create_products(client, login):
    response = client.post("/api/v1/products", json=product_body(supplier_id=1), headers=login("consumer"))
    assert response.status_code == 403


def test_coop_gets_404_for_another_suppliers_product(client, coop, other_coop):
    foreign = ProductFactory(supplier=other_coop[0], status="draft")
    db.session.commit()
    _, headers = coop
    patch = client.patch(f"/api/v1/products/{foreign.sku}", json={"price_fen": 1}, headers=headers)
    assert patch.status_code == 404
    assert patch.json["error"]["code"] == "product_not_found"
    assert client.get(f"/api/v1/products/{foreign.sku}/history", headers=headers).status_code == 404
    assert client.get(f"/api/v1/products/{foreign.sku}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/products/{foreign.sku}", headers=other_coop[1]).status_code == 200
    db.session.refresh(foreign)
    assert foreign.price_fen == 2000


def test_drafts_are_hidden_from_the_public(client):
    draft = ProductFactory(status="draft")
    db.session.commit()
    assert client.get(f"/api/v1/products/{draft.sku}").status_code == 404
    assert client.get("/api/v1/products").json["items"] == []
    ProductFactory(status="active")
    db.session.commit()
    for status in ("draft", "archived"):  # a filter the public may not widen finds nothing, it is not dropped
        assert client.get(f"/api/v1/products?status={status}").json == {"items": [], "next_cursor": None}


def test_price_and_rate_changes_are_kept_in_the_history_with_who_made_them(client, coop, login):
    supplier, headers = coop
    product = ProductFactory(supplier=supplier)
    db.session.commit()
    response = client.patch(f"/api/v1/products/{product.sku}", json={"price_fen": 2500, "name": "新名字"},
                            headers=headers)
    assert response.status_code == 200
    assert response.json["price_fen"] == 2500
    client.patch(f"/api/v1/products/{product.sku}", json={"price_fen": 2500}, headers=headers)
    admin_headers = login("admin")
    assert client.patch(f"/api/v1/products/{product.sku}", json={"dividend_bp": 400},
                        headers=admin_headers).status_code == 200

    history = client.get(f"/api/v1/products/{product.sku}/history", headers=admin_headers).json["items"]
    assert [(h["field"], h["old_value"], h["new_value"]) for h in history] == [
        ("price_fen", 2000, 2500), ("dividend_bp", 300, 400)]
    coop_user = db.session.scalar(select(User).where(User.supplier_id == supplier.id))
    admin_user = db.session.scalar(select(User).where(User.role == "admin"))
    assert [h["changed_by"] for h in history] == [coop_user.id, admin_user.id]
    assert all(h["changed_at"] for h in history)


def test_unit_and_net_weight_changes_before_any_lot_are_kept_in_the_history(client, coop, login):
    supplier, headers = coop
    product = ProductFactory(supplier=supplier, status="draft", unit="bag", net_weight_g=500)
    db.session.commit()
    response = client.patch(f"/api/v1/products/{product.sku}", json={"unit": "box", "net_weight_g": 2500},
                            headers=headers)
    assert response.status_code == 200 and (response.json["unit"], response.json["net_weight_g"]) == ("box", 2500)

    history = client.get(f"/api/v1/products/{product.sku}/history", headers=login("admin")).json["items"]
    assert [(h["field"], h["old_value"], h["new_value"]) for h in history] == [
        ("unit", "bag", "box"), ("net_weight_g", 500, 2500)]
    coop_user = db.session.scalar(select(User).where(User.supplier_id == supplier.id))
    assert {h["changed_by"] for h in history} == {coop_user.id}


@pytest.mark.parametrize("role", ["coop", "admin"])
@pytest.mark.parametrize(("field", "value"), [("unit", "kg"), ("net_weight_g", 1000)])
def test_a_product_with_lots_keeps_its_unit_and_net_weight(client, coop, login, role, field, value):
    supplier, coop_headers = coop
    product = ProductFactory(supplier=supplier, unit="bag", net_weight_g=500)
    make_lot(product, LocationFactory())
    db.session.commit()
    headers = coop_headers if role == "coop" else login("admin")
    response = client.patch(f"/api/v1/products/{product.sku}", json={field: value, "price_fen": 2600},
                            headers=headers)
    assert field in assert_error(response, 409, "measure_fixed")["details"]
    shown = client.get(f"/api/v1/products/{product.sku}").json
    assert (shown["unit"], shown["net_weight_g"], shown["price_fen"]) == ("bag", 500, 2000)
    assert client.get(f"/api/v1/products/{product.sku}/history", headers=login("admin")).json["items"] == []
    same = client.patch(f"/api/v1/products/{product.sku}", json={"unit": "bag", "net_weight_g": 500}, headers=headers)
    assert same.status_code == 200  # sending the values it has changes nothing


@pytest.mark.parametrize("role", ["coop", "admin"])
def test_a_product_with_lots_keeps_its_origin_county_which_its_trace_pages_name(client, coop, login, role):
    """Its lots were grown in its county: moving it would make every lot's trace page name another origin (and link
    that county's disclosure), so the county is fixed once it has a lot, as the unit is; a draft without lots moves."""
    supplier, coop_headers = coop
    product = ProductFactory(supplier=supplier, county_code="513431", status="draft")
    lot = make_lot(product, LocationFactory())
    empty = ProductFactory(supplier=supplier, county_code="513431", status="draft")
    db.session.commit()
    headers = coop_headers if role == "coop" else login("admin")
    moved = client.patch(f"/api/v1/products/{product.sku}", json={"county_code": "513432"}, headers=headers)
    assert assert_error(moved, 409, "origin_fixed")["details"] == {
        "county_code": ["Fixed: the product has lots grown in its county."]}
    assert client.get(f"/api/v1/trace/{lot.trace_code}").json["product"]["county"]["code"] == "513431"
    assert client.patch(f"/api/v1/products/{product.sku}", json={"county_code": "513431"},
                        headers=headers).status_code == 200  # the county it has changes nothing
    assert client.patch(f"/api/v1/products/{empty.sku}", json={"county_code": "513432"},
                        headers=headers).json["county"]["code"] == "513432"


def test_renaming_updates_the_pinyin_search(client, coop):
    supplier, headers = coop
    product = ProductFactory(supplier=supplier, name="测试")
    db.session.commit()
    client.patch(f"/api/v1/products/{product.sku}", json={"name": "雷波脐橙"}, headers=headers)
    assert [p["sku"] for p in client.get("/api/v1/products?q=qicheng").json["items"]] == [product.sku]


def test_product_lists_are_cached_and_invalidated_on_every_write_a_product_page_is_always_live(client, coop):
    supplier, headers = coop
    product = ProductFactory(supplier=supplier, price_fen=1000)
    db.session.commit()
    assert client.get(f"/api/v1/products/{product.sku}").json["price_fen"] == 1000
    assert client.get("/api/v1/products").json["items"][0]["price_fen"] == 1000

    # A change behind the service's back: the list comes from the cache, the product page (one
    # statement with its stock) from the database.
    db.session.execute(db.update(Product).values(price_fen=1111))
    db.session.commit()
    assert client.get("/api/v1/products").json["items"][0]["price_fen"] == 1000
    assert client.get(f"/api/v1/products/{product.sku}").json["price_fen"] == 1111

    # A write through the API invalidates the lists.
    client.patch(f"/api/v1/products/{product.sku}", json={"price_fen": 1500}, headers=headers)
    assert client.get(f"/api/v1/products/{product.sku}").json["price_fen"] == 1500
    assert client.get("/api/v1/products").json["items"][0]["price_fen"] == 1500


def test_stock_figures_are_always_live(client):
    product = ProductFactory()
    location = LocationFactory()
    make_lot(product, location, quantity=10)
    db.session.commit()
    assert client.get(f"/api/v1/products/{product.sku}").json["stock"] == [
        {"location_id": location.id, "available": 10}]
    inventory.reserve(location_id=location.id, product_id=product.id, quantity=4)
    db.session.commit()
    assert client.get(f"/api/v1/products/{product.sku}").json["stock"] == [
        {"location_id": location.id, "available": 6}]


def test_a_lapsed_certificate_shows_as_uncertified_and_is_filtered(client):
    valid = ProductFactory()
    lapsed = ProductFactory(certificate_valid_until=today() - timedelta(days=1))
    ends_today = ProductFactory(certificate_valid_until=today())
    db.session.commit()
    shown = client.get(f"/api/v1/products/{lapsed.sku}").json
    assert shown["certified"] is False and shown["certificate"] is None
    certified = {p["sku"] for p in client.get("/api/v1/products?certified=true").json["items"]}
    assert certified == {valid.sku, ends_today.sku}
    uncertified = {p["sku"] for p in client.get("/api/v1/products?certified=false").json["items"]}
    assert uncertified == {lapsed.sku}


def test_nightly_task_flags_lapsed_certificates_once(app):
    from catalog.tasks import flag_lapsed_certificates

    lapsed = ProductFactory(certificate_valid_until=today() - timedelta(days=3))
    valid = ProductFactory()
    db.session.commit()
    assert flag_lapsed_certificates.delay().get() == 1
    assert flag_lapsed_certificates.delay().get() == 0
    db.session.expire_all()
    assert db.session.get(Product, lapsed.id).certificate_lapsed_on == today()
    assert db.session.get(Product, valid.id).certificate_lapsed_on is None


def test_the_lapse_task_is_on_the_beat_schedule(app):
    schedule = app.extensions["celery"].conf.beat_schedule
    assert schedule["catalog.flag_lapsed_certificates"]["task"] == "catalog.flag_lapsed_certificates"
    assert "catalog.flag_lapsed_certificates" in app.extensions["celery"].tasks


def test_an_inactive_supplier_adds_no_products_lots_or_uploads_but_its_products_may_go_off_sale(client, coop, login):
    import io

    from tests.catalog.factories import lot_body

    supplier, headers = coop
    admin = login("admin")
    product, location = ProductFactory(supplier=supplier, status="active"), LocationFactory()
    db.session.commit()
    assert client.patch(f"/api/v1/suppliers/{supplier.id}", json={"active": False}, headers=admin).status_code == 200

    refused = [
        client.post("/api/v1/products", json=product_body(sku="NEW-1"), headers=headers),
        client.patch(f"/api/v1/products/{product.sku}", json={"price_fen": 1}, headers=headers),
        client.patch(f"/api/v1/products/{product.sku}", json={"price_fen": 1}, headers=admin),
        client.post("/api/v1/lots", json=lot_body(product, location, [], quantity=5), headers=admin),
        client.post(f"/api/v1/suppliers/{supplier.id}/inventory-uploads", headers=headers,
                    data={"file": (io.BytesIO(b"sku,lot_code\nX,Y\n"), "a.csv")}, content_type="multipart/form-data"),
    ]
    assert [(r.status_code, r.json["error"]["code"]) for r in refused] == [(409, "supplier_inactive")] * 5
    archived = client.patch(f"/api/v1/products/{product.sku}", json={"status": "archived"}, headers=admin)
    assert archived.status_code == 200 and archived.json["status"] == "archived"
    assert db.session.scalar(select(Product.price_fen).where(Product.id == product.id)) == product.price_fen


@pytest.mark.parametrize("link", ["http://img.example.org/kq.jpg", "HTTP://img.example.org/kq.jpg",
                                  "ftp://img.example.org/kq.jpg", "https://xn--80ak6aa92e.com/kq.jpg",
                                  "https://img.ex\u0430mple.org/kq.jpg"])
def test_a_product_image_is_an_https_link_only(client, coop, link):
    """A product's images are fetched by buyers' phones and mini-programs from the shop's https pages: a plain http
    link is mixed content (blocked, or open to tampering on the way), and one to an internationalised host (punycode
    `xn--…`, non-ASCII letters) reads as a site it is not, so either is refused when created or edited."""
    supplier, headers = coop
    created = client.post("/api/v1/products", json=product_body(images=[link]), headers=headers)
    assert created.status_code == 422 and "images" in created.json["error"]["details"], created.json
    product = ProductFactory(supplier=supplier)
    db.session.commit()
    before = client.get(f"/api/v1/products/{product.sku}").json["images"]
    edited = client.patch(f"/api/v1/products/{product.sku}", json={"images": [link]}, headers=headers)
    assert edited.status_code == 422 and "images" in edited.json["error"]["details"], edited.json
    assert client.get(f"/api/v1/products/{product.sku}").json["images"] == before
    assert db.session.query(Product).filter_by(sku="ZJ-KQ-001").count() == 0


@pytest.mark.parametrize("link", ["https://127.0.0.1/kq.jpg", "https://10.0.0.5/kq.jpg", "https://192.168.1.1/kq.jpg",
                                  "https://[::1]/kq.jpg", "https://8.8.8.8/kq.jpg", "https://localhost/kq.jpg",
                                  "https://LOCALHOST./kq.jpg", "https://img.localhost/kq.jpg", "https://nas.local/kq.jpg",
                                  "https://router.home.arpa/kq.jpg", "https://img.internal/kq.jpg"])
def test_a_product_image_links_to_a_public_host_by_name_never_to_an_address_or_a_local_network(client, coop, link):
    """A product's images are loaded by every buyer's browser from the shop's pages: a link to an address or a local
    network's name (127.0.0.1, 192.168.1.1, nas.local) makes each buyer's browser call into their own network (a
    router's page), and an address reads as no site at all, so an image is on a public host named by its name."""
    _supplier, headers = coop
    created = client.post("/api/v1/products", json=product_body(images=[link]), headers=headers)
    assert created.status_code == 422 and "images" in created.json["error"]["details"], created.json
    fine = client.post("/api/v1/products", json=product_body(images=["https://img.example.com/kq.jpg"]),
                       headers=headers)
    assert fine.status_code == 201, fine.json


def test_a_suppliers_products_never_read_alike_while_on_its_list(client, coop, other_coop, login):
    """A cart, an order and a receipt show a product by its name alone: two of one co-op reading alike (a full-width
    space, a zero-width joiner, full-width letters, other brackets, case) would be taken for one. Another co-op's
    product, or an archived one's name, is no confusion."""
    supplier, headers = coop
    admin = login("admin")
    first = ProductFactory(supplier=supplier, name="大凉山苦荞茶")
    second = ProductFactory(supplier=supplier, name="Buckwheat Tea (Black)")
    ProductFactory(supplier=other_coop[0], name="雷波脐橙")
    archived = ProductFactory(supplier=supplier, name="昭觉苦荞米", status="archived")
    db.session.commit()

    alike = {"大凉山\u3000苦荞茶": "大凉山苦荞茶", "大凉山\u200d苦荞茶": "大凉山苦荞茶",
             "ＢＵＣＫＷＨＥＡＴ ｔｅａ（Black）": "Buckwheat Tea (Black)"}
    answers = {name: client.post("/api/v1/products", json=product_body(sku=f"ALIKE-{n}", name=name), headers=headers)
               for n, name in enumerate(alike)}
    by_admin = client.post("/api/v1/products", json=product_body(sku="ALIKE-ADMIN", name="大凉山苦荞茶 ",
                                                                 supplier_id=supplier.id), headers=admin)
    rename = client.patch(f"/api/v1/products/{second.sku}", json={"name": "大凉山 苦荞茶"}, headers=headers)
    own = client.patch(f"/api/v1/products/{first.sku}", json={"name": "大凉山 苦荞茶"}, headers=headers)
    foreign_name = client.post("/api/v1/products", json=product_body(sku="OTHER-NAME", name="雷波脐橙"),
                               headers=headers)
    successor = client.post("/api/v1/products", json=product_body(sku="KQM-NEW", name="昭觉苦荞米"), headers=headers)
    unarchived = client.patch(f"/api/v1/products/{archived.sku}", json={"status": "draft"}, headers=headers)

    for name, response in {**answers, "admin": by_admin, "rename": rename}.items():
        assert (response.status_code, response.json["error"]["code"]) == (409, "product_name_taken"), name
        assert "name" in response.json["error"]["details"], name
    for name, response in answers.items():
        assert alike[name] in response.json["error"]["message"], name
    assert (own.status_code, own.json["name"]) == (200, "大凉山 苦荞茶")
    assert foreign_name.status_code == 201 and successor.status_code == 201
    assert (unarchived.status_code, unarchived.json["error"]["code"]) == (409, "product_name_taken")
    assert db.session.scalar(select(Product.status).where(Product.id == archived.id)) == "archived"
    assert db.session.scalars(select(Product.sku).where(Product.sku.like("ALIKE-%"))).all() == []


@pytest.mark.postgres
def test_two_products_renamed_alike_at_once_give_the_second_product_name_taken(pg_app):
    """Two of a supplier's products renamed at once to names reading alike: the rename that waits on the first's
    (which its check cannot see) is `product_name_taken`, naming the product that has the name, not a bare conflict."""
    supplier = SupplierFactory()
    first, second = ProductFactory(supplier=supplier), ProductFactory(supplier=supplier, county_code="513430")
    admin = UserFactory(role="admin")
    db.session.commit()
    skus, admin_id = (first.sku, second.sku), admin.id

    def rename(sku, name):
        """Rename the product `sku` to `name`, as an admin."""
        changes = service.ProductChanges(name=name)
        return service.update_product(actor=db.session.get(User, admin_id), sku=sku, changes=changes).name

    outcome = second_while_first_uncommitted(pg_app, lambda: rename(skus[0], "并发改名苦荞茶"),
                                             lambda: rename(skus[1], "并发改名\u3000苦荞茶"))

    assert outcome == "product_name_taken"
    db.session.expire_all()
    assert db.session.scalars(select(Product.name).where(Product.supplier_id == supplier.id)
                              .order_by(Product.id)).all() == ["并发改名苦荞茶", second.name]
    client = pg_app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": admin.username, "password": DEFAULT_PASSWORD})
    headers = {"Authorization": f"Bearer {token.json['access_token']}"}
    answer = client.patch(f"/api/v1/products/{skus[1]}", json={"name": "并发改名苦荞\u200d茶"}, headers=headers)
    assert (answer.status_code, answer.json["error"]["code"]) == (409, "product_name_taken")


@pytest.mark.postgres
def test_an_archived_product_unarchived_while_another_takes_its_name_gives_product_name_taken(pg_app):
    supplier = SupplierFactory()
    archived = ProductFactory(supplier=supplier, name="并发复用苦荞茶", status="archived")
    other = ProductFactory(supplier=supplier, county_code="513430")
    admin = UserFactory(role="admin")
    db.session.commit()
    skus, admin_id = (other.sku, archived.sku), admin.id

    def change(sku, **given):
        """Change the product `sku` as an admin."""
        changes = service.ProductChanges(**given)
        return service.update_product(actor=db.session.get(User, admin_id), sku=sku, changes=changes).status

    outcome = second_while_first_uncommitted(pg_app, lambda: change(skus[0], name="并发复用\u3000苦荞茶"),
                                             lambda: change(skus[1], status="draft"))

    assert outcome == "product_name_taken"
    db.session.expire_all()
    assert db.session.scalar(select(Product.status).where(Product.sku == skus[1])) == "archived"


@pytest.mark.postgres
def test_a_product_edit_waits_for_no_other_write_in_its_county(pg_app):
    """A product's edit holds the product's row, not its county's: a write naming the county still uncommitted (a
    checkout's order line while it asks Stripe for its PaymentIntent, another co-op's new product) does not hold up
    a price change, nor the price change every other checkout from the county."""
    first_supplier, other_supplier = SupplierFactory(), SupplierFactory()
    product = ProductFactory(supplier=first_supplier)
    admin = UserFactory(role="admin")
    db.session.commit()
    sku, admin_id, other_id, county = product.sku, admin.id, other_supplier.id, product.county_code

    def add_product():
        """Another supplier's new product in the county, left uncommitted."""
        service.create_product(actor=db.session.get(User, admin_id), supplier_id=other_id, **product_body(
            sku="SAME-COUNTY-1", name="同县新品", county_code=county))

    def change_price():
        """The price change, and whether the other product was committed when it was done."""
        service.update_product(actor=db.session.get(User, admin_id), sku=sku,
                               changes=service.ProductChanges(price_fen=4100))
        return db.session.scalar(select(Product.id).where(Product.sku == "SAME-COUNTY-1")) is not None

    assert second_while_first_uncommitted(pg_app, add_product, change_price) is False
    db.session.expire_all()
    assert db.session.scalar(select(Product.price_fen).where(Product.sku == sku)) == 4100


def test_products_named_alike_at_once_for_one_supplier_are_one_product(racing_app):
    supplier = SupplierFactory()
    admin = UserFactory(role="admin")
    db.session.commit()
    client = racing_app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": admin.username, "password": DEFAULT_PASSWORD})
    headers = {"Authorization": f"Bearer {token.json['access_token']}"}

    answers = send_together(racing_app, "POST", "/api/v1/products", [
        (headers, product_body(sku=f"RACE-ALIKE-{n}", name=name, supplier_id=supplier.id))
        for n, name in enumerate(("并发苦荞茶", "并发\u3000苦荞茶", "并发苦荞\u200d茶"))])

    assert sorted(status for status, _ in answers) == [201, 409, 409], answers
    assert {body["error"]["code"] for status, body in answers if status == 409} == {"product_name_taken"}
    assert db.session.scalars(select(Product.sku).where(Product.supplier_id == supplier.id)).all() == [
        body["sku"] for status, body in answers if status == 201]
