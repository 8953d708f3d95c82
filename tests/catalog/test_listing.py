"""Listing and search: filters, pinyin, keyset pagination under concurrent inserts."""
from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import event

from catalog import inventory
from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.suppliers.factories import SupplierFactory

COUNTIES = {"513431": "昭觉", "513436": "美姑", "513430": "金阳", "513437": "雷波", "513423": "盐源",
            "513434": "越西"}


def skus(client, query: str = "") -> list[str]:
    """The SKUs a public list query returns (one page of up to 100)."""
    response = client.get(f"/api/v1/products?limit=100{query}")
    assert response.status_code == 200, response.json
    return [item["sku"] for item in response.json["items"]]


def one_per_county() -> dict[str, str]:
    """A product in each county of COUNTIES; county code → SKU."""
    made = {code: ProductFactory(supplier=SupplierFactory(county_code=code), sku=f"SKU-{code}").sku
            for code in COUNTIES}
    db.session.commit()
    return made


def test_donor_shunde_lists_only_meigu_jinyang_and_leibo_products(client):
    made = one_per_county()
    assert sorted(skus(client, "&donor=440606")) == sorted([made["513436"], made["513430"], made["513437"]])


def test_the_cached_donor_list_follows_a_pairing_that_ends(client, login):
    made = one_per_county()
    assert made["513437"] in skus(client, "&donor=440606")
    leibo = client.get("/api/v1/pairings?donor=440606&recipient=513437").json["items"][0]
    client.patch(f"/api/v1/pairings/{leibo['id']}", headers=login("admin"), json={"valid_until": "2021-02-28"})
    assert sorted(skus(client, "&donor=440606")) == sorted([made["513436"], made["513430"]])


def test_donor_without_pairings_lists_nothing(client):
    one_per_county()
    assert skus(client, "&donor=440103") == []


def test_filter_by_county_category_and_price(client):
    made = one_per_county()
    fruit = ProductFactory(supplier=SupplierFactory(county_code="513423"), category="水果", price_fen=6800)
    db.session.commit()
    assert skus(client, "&county=513431") == [made["513431"]]
    assert skus(client, "&category=水果") == [fruit.sku]
    assert skus(client, "&min_price_fen=5000") == [fruit.sku]
    assert skus(client, "&max_price_fen=5000&county=513423") == [made["513423"]]
    assert skus(client, "&min_price_fen=2000&max_price_fen=2000&county=513423") == [made["513423"]]


def test_in_stock_at_a_location(client):
    location, elsewhere = LocationFactory(), LocationFactory()
    stocked, reserved_out, other = ProductFactory(), ProductFactory(), ProductFactory()
    make_lot(stocked, location, quantity=3)
    make_lot(reserved_out, location, quantity=2)
    make_lot(other, elsewhere, quantity=5)
    inventory.reserve(location_id=location.id, product_id=reserved_out.id, quantity=2)
    db.session.commit()
    assert skus(client, f"&in_stock_at={location.id}") == [stocked.sku]


def test_q_matches_chinese_full_pinyin_and_initials(client):
    buckwheat = ProductFactory(name="昭觉苦荞米")
    tea = ProductFactory(name="喜德苦荞茶")
    ProductFactory(name="雷波脐橙")
    db.session.commit()
    for q in ("苦荞", "kuqiao", "kq", "KuQiao", "ku qiao", "ｋｑ", "ＫｕＱｉａｏ"):
        assert sorted(skus(client, f"&q={q}")) == sorted([buckwheat.sku, tea.sku]), q
    assert skus(client, "&q=zjkqm") == [buckwheat.sku]
    assert skus(client, "&q=%25") == []


def test_q_finds_a_name_written_in_full_width_letters_however_its_letters_are_typed(client):
    """A name as a shop types it on a Chinese keyboard (full-width ＡＢＣ) is found by its letters in any width or
    case, as `q` itself is read."""
    gift = ProductFactory(name="ＡＢＣ苹果礼盒")
    ProductFactory(name="盐源苹果")
    db.session.commit()
    for q in ("ＡＢＣ", "abc", "ABC", "ａｂｃ", "abcpg", "ABC pingguo"):
        assert skus(client, f"&q={q}") == [gift.sku], q


def test_q_mixing_letters_and_chinese_ignores_the_case_of_its_letters(racing_app):
    """A query of letters and Chinese words is matched on the name, in any case, as a query of letters alone is
    (on PostgreSQL too, where LIKE minds the case)."""
    client = racing_app.test_client()
    mini = ProductFactory(name="Mini 脐橙礼盒").sku
    ProductFactory(name="雷波脐橙")
    db.session.commit()
    for q in ("Mini 脐橙", "mini 脐橙", "MINI 脐橙", "ｍｉｎｉ 礼盒"):
        assert skus(client, f"&q={q}") == [mini], q


def test_q_mixing_chinese_with_letters_or_digits_finds_a_name_written_in_full_width_forms(racing_app):
    """A name typed on a Chinese keyboard (苦荞ＡＢＣ, 盐源苹果５ｋｇ) is found by a query mixing Chinese with its
    letters and digits in any width or case, as a query of letters alone finds it (on PostgreSQL too)."""
    client = racing_app.test_client()
    tea = ProductFactory(name="苦荞ＡＢＣ").sku
    apples = ProductFactory(name="盐源苹果５ｋｇ").sku
    ProductFactory(name="盐源苹果")
    db.session.commit()
    for q in ("苦荞ABC", "苦荞abc", "苦荞ａｂｃ", "苦荞 Abc"):
        assert skus(client, f"&q={q}") == [tea], q
    for q in ("盐源苹果5kg", "盐源苹果5KG", "苹果 5kg", "盐源苹果５ｋｇ"):
        assert skus(client, f"&q={q}") == [apples], q


def test_q_ignores_the_spaces_inside_a_stored_name_as_it_does_inside_the_query(client):
    """Spaces are ignored on both sides: a name written with a space (Mini 脐橙礼盒, 盐源 苹果) is found by the query
    typed without it, as its pinyin is."""
    mini = ProductFactory(name="Mini 脐橙礼盒").sku
    apples = ProductFactory(name="盐源\u3000苹果").sku
    ProductFactory(name="雷波脐橙")
    db.session.commit()
    for q in ("Mini脐橙", "mini脐橙礼盒", "ｍｉｎｉ脐橙"):
        assert skus(client, f"&q={q}") == [mini], q
    for q in ("盐源苹果", "源苹"):
        assert skus(client, f"&q={q}") == [apples], q


def test_q_ignores_the_marks_a_name_shows_nothing_of_as_its_identity_does(client):
    """A name pasted with a variation selector or a grapheme joiner between its characters (from a phone's emoji
    keyboard or a chat) reads as the name without it, and is one name with it (`name_key`): the shopper who types
    the name as it reads finds it, by its characters and by its pinyin, and one who pastes it so finds it too."""
    vermicelli = ProductFactory(name="昭觉\ufe0f粉丝").sku
    tea = ProductFactory(name="苦荞\u034f茶").sku
    ProductFactory(name="昭觉苦荞米")
    db.session.commit()
    for q, found in (("昭觉粉丝", vermicelli), ("zhaojuefensi", vermicelli), ("zjfs", vermicelli),
                     ("昭觉\ufe0f粉丝", vermicelli), ("苦荞茶", tea), ("kuqiaocha", tea), ("kqc", tea)):
        assert skus(client, f"&q={q}") == [found], q


def test_q_ignores_the_spaces_between_chinese_words_as_it_does_between_pinyin(client):
    orange = ProductFactory(name="雷波脐橙礼盒")
    ProductFactory(name="雷波核桃")
    ProductFactory(name="会理脐橙")
    db.session.commit()
    for q in ("雷波脐橙", "雷波 脐橙", " 雷波  脐橙 ", "雷波\u3000脐橙", "雷 波 脐 橙", "lb qc", "leibo qicheng"):
        assert skus(client, f"&q={q}") == [orange.sku], q
    assert skus(client, "&q=雷波 苹果") == []


def test_q_finds_a_product_by_its_whole_name_however_long_a_name_may_be(client):
    """A shopper pastes a product's whole name (shared from a chat) into the search: a name of up to 100 characters is
    a query of up to 100 (one of 51 was a 422); a longer query, which no name holds, is still a 422 naming q."""
    name = "凉山州昭觉县高山有机苦荞米" * 7 + "礼盒装"
    product = ProductFactory(name=name)
    ProductFactory(name="凉山州昭觉县高山有机苦荞米")
    db.session.commit()
    assert 51 <= len(name) <= 100
    assert skus(client, f"&q={name}") == [product.sku]
    too_long = client.get("/api/v1/products", query_string={"q": "苦" * 101})
    assert too_long.status_code == 422 and "q" in too_long.json["error"]["details"]


def test_bad_filters_are_422(client):
    for query in ("&county=abc", "&min_price_fen=-1", "&limit=101", "&status=gone"):
        response = client.get(f"/api/v1/products?{query}")
        assert response.status_code == 422, query


def test_a_reversed_price_range_is_a_422_naming_its_upper_bound(client):
    """As a period whose `to` is not after its `from`: the range is refused, not answered with an empty list."""
    response = client.get("/api/v1/products?min_price_fen=5000&max_price_fen=100")

    assert response.status_code == 422
    assert list(response.json["error"]["details"]) == ["max_price_fen"]
    assert client.get("/api/v1/products?min_price_fen=100&max_price_fen=100").status_code == 200


def test_pagination_with_concurrent_inserts_neither_skips_nor_repeats(client):
    supplier = SupplierFactory()
    existing = [ProductFactory(supplier=supplier).sku for _ in range(7)]
    db.session.commit()
    seen, cursor, inserted = [], None, []
    while True:
        response = client.get("/api/v1/products?limit=3" + (f"&cursor={cursor}" if cursor else ""))
        seen += [item["sku"] for item in response.json["items"]]
        cursor = response.json["next_cursor"]
        # Other writers add products between page requests (each write invalidates the cache).
        product = ProductFactory(supplier=supplier)
        db.session.commit()
        inserted.append(product.sku)
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert set(existing) <= set(seen)
    assert set(seen) <= set(existing) | set(inserted)


def test_an_invalid_cursor_is_refused(client):
    response = client.get("/api/v1/products?cursor=not-a-cursor")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_cursor"


def test_admin_lists_drafts_by_status_coop_only_its_own(client, login, coop, other_coop):
    own = ProductFactory(supplier=coop[0], status="draft")
    foreign = ProductFactory(supplier=other_coop[0], status="draft")
    db.session.commit()
    admin_view = client.get("/api/v1/products?status=draft", headers=login("admin")).json["items"]
    assert {p["sku"] for p in admin_view} == {own.sku, foreign.sku}
    coop_view = client.get("/api/v1/products?status=draft", headers=coop[1]).json["items"]
    assert [p["sku"] for p in coop_view] == [own.sku]
    assert skus(client, "&status=draft") == []


def test_in_stock_at_is_never_served_from_the_cache(client):
    location, product = LocationFactory(), ProductFactory()
    make_lot(product, location, quantity=2)
    db.session.commit()
    assert skus(client, f"&in_stock_at={location.id}") == [product.sku]
    inventory.reserve(location_id=location.id, product_id=product.id, quantity=2)
    db.session.commit()
    assert skus(client, f"&in_stock_at={location.id}") == []
    assert skus(client) == [product.sku]


def _queries_for_a_page(client, size: int) -> int:
    """SQL statements run by an uncached product page of `size` products, each from its own supplier."""
    for _ in range(size):
        ProductFactory(supplier=SupplierFactory(), category=f"类{size}")
    db.session.commit()
    db.session.expunge_all()
    client.get("/api/v1/products?limit=1")  # once-per-process start-up checks are not the page's cost
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        response = client.get(f"/api/v1/products?limit=20&category=类{size}")
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert len(response.json["items"]) == size
    return len(statements)


def test_a_page_costs_the_same_queries_however_many_products_it_shows(client):
    assert _queries_for_a_page(client, 10) == _queries_for_a_page(client, 2)


def test_an_inactive_suppliers_products_leave_the_storefront_at_once(client, login):
    made = one_per_county()
    zhaojue = made["513431"]
    assert zhaojue in skus(client, "&q=测试")  # cached public pages
    supplier_id = client.get(f"/api/v1/products/{zhaojue}").json["supplier"]["id"]
    admin = login("admin")
    assert client.patch(f"/api/v1/suppliers/{supplier_id}", headers=admin, json={"active": False}).status_code == 200

    assert zhaojue not in skus(client) and zhaojue not in skus(client, "&q=测试")
    assert zhaojue not in skus(client, "&donor=440604") and len(skus(client)) == len(made) - 1
    assert client.get(f"/api/v1/products/{zhaojue}").status_code == 404
    assert client.get(f"/api/v1/products/{zhaojue}", headers=login("consumer")).status_code == 404
    coop = login("coop", supplier_id=supplier_id)  # its admins and co-op still see it, to take it off sale
    assert client.get(f"/api/v1/products/{zhaojue}", headers=admin).status_code == 200
    for headers in (coop, admin):
        listed = client.get(f"/api/v1/products?supplier_id={supplier_id}", headers=headers).json["items"]
        assert [item["sku"] for item in listed] == [zhaojue]


def test_a_closed_stores_stock_is_offered_nowhere_on_the_product_page_nor_by_in_stock_at(client, login):
    """A deactivated store sells nothing: the storefront and checkout leave it out, and so does the API."""
    from catalog.models import Location
    from tests.orders.factories import StoreFactory

    warehouse, store, product = LocationFactory(), StoreFactory(), ProductFactory()
    make_lot(product, warehouse, quantity=2)
    make_lot(product, db.session.get(Location, store.location_id), quantity=7)
    db.session.commit()
    assert skus(client, f"&in_stock_at={store.location_id}") == [product.sku]
    closed = client.patch(f"/api/v1/stores/{store.id}", json={"active": False}, headers=login("admin"))
    assert closed.status_code == 200, closed.json

    page = client.get(f"/api/v1/products/{product.sku}")

    assert page.json["stock"] == [{"location_id": warehouse.id, "available": 2}]
    assert skus(client, f"&in_stock_at={store.location_id}") == []
    assert skus(client, f"&in_stock_at={warehouse.id}") == [product.sku]


def test_q_typed_in_pinyin_with_hyphens_dots_or_spaces_between_syllables_finds_the_name(client):
    """Pinyin is typed with its syllables parted however a keyboard or a habit parts them (ku-qiao, ku qiao, ku·qiao,
    ku.qiao, ku_qiao, full-width ｋｕ－ｑｉａｏ): one rule drops the separators from `q` and from a name's stored pinyin
    alike, so each finds 苦荞 as kuqiao does, and a name with a separator of its own (AB-12 苦荞) by its letters."""
    buckwheat = ProductFactory(name="昭觉苦荞米").sku
    coded = ProductFactory(name="AB-12号苦荞").sku
    ProductFactory(name="雷波脐橙")
    db.session.commit()
    for q in ("ku-qiao", "Ku-Qiao", "ku qiao", "ku·qiao", "ku.qiao", "ku_qiao", "ｋｕ－ｑｉａｏ", "ku‐qiao",
              "k-q"):
        assert sorted(skus(client, f"&q={quote(q)}")) == sorted([buckwheat, coded]), q
    for q in ("ab12hao", "AB-12", "ab-12-hao"):
        assert skus(client, f"&q={quote(q)}") == [coded], q
    assert skus(client, f"&q={quote('zhao-jue-ku-qiao')}") == [buckwheat]


def test_q_typed_in_pinyin_with_its_tone_marks_or_syllable_apostrophes_finds_the_name(client):
    """Pinyin copied from a dictionary or typed with tone marks (kǔqiáo, lǜchá, Zhāojué) or with the apostrophe a
    pinyin keyboard puts between syllables (ku'qiao) is the pinyin a name is stored under (ü as the v it is typed
    as), so it finds the name as kuqiao, lvcha and zhaojue do."""
    buckwheat = ProductFactory(name="昭觉苦荞米").sku
    tea = ProductFactory(name="绿茶").sku
    ProductFactory(name="雷波脐橙")
    db.session.commit()
    for q, found in (("kǔqiáo", buckwheat), ("KǓQIÁO", buckwheat), ("Zhāojué", buckwheat), ("ku'qiao", buckwheat),
                     ("zhao’jue ku’qiao", buckwheat), ("lǜchá", tea), ("lücha", tea), ("lvcha", tea)):
        assert skus(client, f"&q={q}") == [found], q
    assert skus(client, "&q=lucha") == []


def test_in_stock_at_a_location_that_does_not_exist_is_404_not_an_empty_catalog(client):
    """`in_stock_at` names a location: one that does not exist is `location_not_found`, as a list's `*_id` filter
    naming no object is (shop.scope), not a catalog with nothing in stock."""
    ProductFactory()
    db.session.commit()
    response = client.get("/api/v1/products?in_stock_at=2147483647")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "location_not_found"
    document = client.get("/api/v1/openapi.json").json
    assert "`location_not_found`" in document["paths"]["/api/v1/products"]["get"]["responses"]["404"]["description"]
