"""Public traceability: JSON, HTML page and QR code, without personal data."""
from __future__ import annotations

import re
from xml.etree import ElementTree

import qrcode

from catalog import inventory
from catalog.models import Location, Lot, LotContribution
from catalog.spreadsheet import read_sheet
from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory, linked_households, lot_body, make_lot
from tests.orders.factories import StoreFactory
from tests.orders.ledger.test_attribution import pay_pickup
from tests.suppliers.factories import BenefitLinkFactory, HouseholdFactory, SupplierFactory


def lot_with_households(supplier, villages: list[str]):
    """A lot of a new product of `supplier` with one linked household per entry of `villages`."""
    households = [linked_households(supplier, 1, village=village)[0] for village in villages]
    product = ProductFactory(supplier=supplier, name="昭觉苦荞米")
    lot = inventory.add_lot(product=product, location=LocationFactory(), lot_code=f"L-{len(villages)}",
                            harvested_on=product.certificate_valid_from.replace(month=9), packed_on=None,
                            village="三河村",
                            contributions=[{"household_code": h.code, "quantity": 5} for h in households])
    db.session.commit()
    return lot, households


def sold_lot(client, supplier, *, price_fen: int, premium_bp: int, dividend_bp: int, dividend_holders: int,
             villages: tuple[str, ...] = ("三河村",) * 3) -> Lot:
    """A lot at a store delivered 1 unit each by households of `villages`, of a new ¥`price_fen` product with those
    premium and dividend rates (no fee, no commission), `dividend_holders` households holding 1 dividend share each;
    one unit of it sold to a consumer and paid, so the ledger has attributed it."""
    store = StoreFactory()
    product = ProductFactory(supplier=supplier, name="昭觉苦荞米", price_fen=price_fen, platform_fee_bp=0,
                             store_commission_bp=0, household_premium_bp=premium_bp, dividend_bp=dividend_bp)
    lot = make_lot(product, db.session.get(Location, store.location_id), quantity=5)
    for village in villages:
        household = HouseholdFactory(supplier=supplier, village=village)
        db.session.add(LotContribution(lot_id=lot.id, household_id=household.id, quantity=1, village=village))
    for _ in range(dividend_holders):
        BenefitLinkFactory(household=HouseholdFactory(supplier=supplier), supplier_id=supplier.id, kind="dividend",
                           shares=1)
    db.session.commit()
    pay_pickup(client, {"store": store, "product": product}, 1)
    db.session.expire_all()
    return db.session.get(Lot, lot.id)


def test_trace_shows_product_lot_supplier_and_households(client, coop):
    supplier, _ = coop
    lot = sold_lot(client, supplier, price_fen=123450, premium_bp=1000, dividend_bp=0, dividend_holders=0,
                   villages=("三河村", "三河村", "三河村", "火普村"))
    body = client.get(f"/api/v1/trace/{lot.trace_code}").json
    assert body["trace_code"] == lot.trace_code
    assert body["product"]["name"] == "昭觉苦荞米" and body["product"]["county"]["name"] == "昭觉县"
    assert body["product"]["certified"] is True
    assert body["lot"] == {"code": lot.lot_code, "harvested_on": "2026-09-01", "packed_on": None,
                           "village": "测试村"}
    assert body["supplier"] == {"id": supplier.id, "name": supplier.name}
    # 火普村 has a single contributing household: naming it would single that household out.
    assert body["households"] == {"count": 4, "villages": ["三河村"]}
    assert body["attributed_fen"] == lot.attributed_fen == 12345  # the premium, 4 households of 1 unit each
    assert body["reached"] == {"households": 4, "attributed_fen": 12345}
    page = client.get(f"/t/{lot.trace_code}").get_data(as_text=True)
    assert "4</span> 户" in page and "¥123.45" in page
    shop = re.search(r'<a href="([^"]+)">在消费帮扶商城查看此产品</a>', page).group(1)  # not a dead end
    assert shop == f"/p/{body['product']['sku']}" and client.get(shop).status_code == 200


def test_an_amount_one_households_dividend_makes_up_is_never_shown(client, coop):
    """Three households delivered the lot, but its only money went to one shareholder: the count of deliverers
    stays, the amount (that household's dividend) is not shown, and the page does not say nothing was attributed."""
    lot = sold_lot(client, coop[0], price_fen=10000, premium_bp=0, dividend_bp=1000, dividend_holders=1)
    assert lot.attributed_fen == 1000

    body = client.get(f"/api/v1/trace/{lot.trace_code}").json

    assert body["households"] == {"count": 3, "villages": ["三河村"]}
    assert "attributed_fen" not in body and body["reached"] == {"households": None, "fewer_than": 3}
    page = client.get(f"/t/{lot.trace_code}").get_data(as_text=True)
    assert "3</span> 户" in page and "¥" not in page and "10.00" not in page
    assert "少于 3 户" in page and "不公示金额" in page


def test_a_premium_of_a_few_fen_reaching_two_of_three_deliverers_is_not_shown(client, coop):
    lot = sold_lot(client, coop[0], price_fen=20, premium_bp=1000, dividend_bp=0, dividend_holders=0)
    assert lot.attributed_fen == 2  # one fen each to two of the three households (largest remainders)

    body = client.get(f"/api/v1/trace/{lot.trace_code}").json

    assert body["households"]["count"] == 3 and "attributed_fen" not in body
    assert body["reached"] == {"households": None, "fewer_than": 3}
    assert "¥" not in client.get(f"/t/{lot.trace_code}").get_data(as_text=True)


def test_a_lot_amount_reaching_three_households_through_shares_and_premium_is_shown(client, coop):
    lot = sold_lot(client, coop[0], price_fen=10000, premium_bp=2, dividend_bp=1000, dividend_holders=2)
    assert lot.attributed_fen == 2 + 1000  # premium: 1 fen to two deliverers; dividend: 500 to each shareholder

    body = client.get(f"/api/v1/trace/{lot.trace_code}").json

    assert body["households"]["count"] == 3 and body["attributed_fen"] == 1002
    assert "¥10.02" in client.get(f"/t/{lot.trace_code}").get_data(as_text=True)


def test_a_lot_not_sold_yet_shows_no_amount_and_says_none_was_attributed_yet(client, coop):
    """Nothing attributed yet is 0 (0 households reached), told apart from an amount withheld for privacy."""
    lot, _ = lot_with_households(coop[0], ["三河村"] * 3)

    body = client.get(f"/api/v1/trace/{lot.trace_code}").json
    assert body["attributed_fen"] == 0 and body["reached"] == {"households": 0, "attributed_fen": 0}
    page = client.get(f"/t/{lot.trace_code}").get_data(as_text=True)
    assert "¥" not in page and "少于" not in page and "尚无" in page


def test_fewer_than_three_households_show_no_count_villages_or_amount(client, coop):
    lot, _ = lot_with_households(coop[0], ["三河村", "三河村"])
    lot.attributed_fen = 500
    db.session.commit()
    body = client.get(f"/api/v1/trace/{lot.trace_code.lower()}").json
    assert body["households"] == {"count": None, "fewer_than": 3}
    assert "attributed_fen" not in body and body["reached"] == {"households": None, "fewer_than": 3}
    page = client.get(f"/t/{lot.trace_code}").get_data(as_text=True)
    assert "少于 3 户" in page and "5.00" not in page


def test_a_lot_no_household_delivered_says_so_plainly(client, coop):
    lot = make_lot(ProductFactory(supplier=coop[0]), LocationFactory())
    db.session.commit()
    assert client.get(f"/api/v1/trace/{lot.trace_code}").json["households"] == {"count": None, "fewer_than": 3}
    page = client.get(f"/t/{lot.trace_code}").get_data(as_text=True)
    assert "本批次没有建档立卡脱贫户交售。" in page and "少于" not in page


def test_trace_outputs_carry_no_personal_data(client, coop):
    lot, households = lot_with_households(coop[0], ["三河村"] * 3)
    json_text = client.get(f"/api/v1/trace/{lot.trace_code}").get_data(as_text=True)
    page = client.get(f"/t/{lot.trace_code}").get_data(as_text=True)
    for household in households:
        for value in (household.head_name, household.id_number, household.code):
            assert value not in json_text and value not in page


def test_trace_page_is_a_mobile_friendly_chinese_page(client, coop):
    lot, _ = lot_with_households(coop[0], ["三河村"] * 3)
    response = client.get(f"/t/{lot.trace_code}")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert 'lang="zh-CN"' in page and 'name="viewport"' in page
    assert "昭觉苦荞米" in page and "2026年09月01日" in page and "3</span> 户" in page
    assert f"/t/{lot.trace_code}/qr.svg" in page


def test_qr_code_encodes_the_absolute_page_url(client, coop):
    lot, _ = lot_with_households(coop[0], ["三河村"])
    response = client.get(f"/t/{lot.trace_code}/qr.svg")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert _modules(response.data)[0] == _qr_of(f"http://localhost/t/{lot.trace_code}")
    assert response.headers["Vary"] == "Host"  # without PUBLIC_URL the link is the request's own host


def test_the_qr_code_has_a_four_module_quiet_zone_on_an_opaque_white_background(client, coop):
    """ISO/IEC 18004 asks for a light margin of 4 modules round the symbol (2 made phones miss labels printed near
    other marks), and a transparent image shows black on black in a dark-mode viewer: every pixel is painted."""
    lot, _ = lot_with_households(coop[0], ["三河村"])
    response = client.get(f"/t/{lot.trace_code}/qr.svg")

    symbol, pixels = _modules(response.data)
    dark = [(x, y) for y, line in enumerate(pixels) for x, pixel in enumerate(line) if pixel == "dark"]
    size = len(pixels)
    margins = (min(x for x, _ in dark), min(y for _, y in dark),
               size - 1 - max(x for x, _ in dark), size - 1 - max(y for _, y in dark))
    assert margins == (4, 4, 4, 4) and len(symbol) == size - 8
    assert {pixel for line in pixels for pixel in line} == {"dark", "white"}  # nothing left transparent


def _modules(svg: bytes) -> tuple[list[list[bool]], list[list[str]]]:
    """The symbol's modules (True: dark), from the first dark one to the last, and the image's pixels (one per
    module: "dark", the painted background's colour, or None where nothing opaque is painted), read from the SVG."""
    root = ElementTree.fromstring(svg)
    size = int(root.get("viewBox").split()[2])
    pixels: list[list[str | None]] = [[None] * size for _ in range(size)]
    for element in root:
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "rect" and element.get("width") == element.get("height") == "100%" and \
                float(element.get("fill-opacity", element.get("opacity", "1"))) == 1:
            pixels = [[element.get("fill")] * size for _ in range(size)]
        elif tag == "path":
            for x, y, right, bottom in re.findall(r"M(\d+),(\d+)H(\d+)V(\d+)H\d+z", element.get("d")):
                for row in range(int(y), int(bottom)):
                    for column in range(int(x), int(right)):
                        pixels[row][column] = "dark"
    rows = [y for y, line in enumerate(pixels) if "dark" in line]
    columns = [x for x in range(size) if any(line[x] == "dark" for line in pixels)]
    symbol = [[pixels[y][x] == "dark" for x in range(columns[0], columns[-1] + 1)]
              for y in range(rows[0], rows[-1] + 1)]
    return symbol, pixels


def _qr_of(url: str) -> list[list[bool]]:
    """The modules of the QR code of `url` (True: dark), without any margin."""
    code = qrcode.QRCode(border=0)
    code.add_data(url)
    return code.get_matrix()


def test_with_a_public_url_the_label_qr_code_never_takes_the_requests_host(app, client, coop):
    lot, _ = lot_with_households(coop[0], ["三河村"])
    app.config["PUBLIC_URL"] = "https://shop.example.cn"

    forged = client.get(f"/t/{lot.trace_code}/qr.svg", headers={"Host": "evil.example"})

    assert _modules(forged.data)[0] == _qr_of(f"https://shop.example.cn/t/{lot.trace_code}")
    assert "Vary" not in forged.headers


def test_unknown_trace_codes_are_404_json_under_api_and_html_elsewhere(client):
    api = client.get("/api/v1/trace/NOSUCHCODE")
    assert api.status_code == 404 and api.json["error"]["code"] == "trace_code_not_found"
    page = client.get("/t/NOSUCHCODE")
    assert page.status_code == 404 and page.mimetype == "text/html" and "未找到" in page.get_data(as_text=True)
    assert client.get("/t/NOSUCHCODE/qr.svg").status_code == 404


def test_a_village_holding_an_id_or_phone_number_never_reaches_the_public_trace(client, coop_world):
    """A village is shown unmasked on /t/<code>; typed into it, a person's numbers are refused wherever it comes from:
    the lot API, a household's registration or edit, and an inventory sheet's village column."""
    from tests.suppliers.factories import make_id_number

    w, id_number = coop_world, make_id_number()
    for village in (f"火普村 户主{id_number}", "火普村 电话 138 0013 8000"):
        lot = client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], w["households"],
                                                        village=village), headers=w["headers"])
        assert lot.status_code == 422 and "village" in lot.json["error"]["details"], lot.json
    household = w["households"][0]
    edit = client.patch(f"/api/v1/households/{household.id}", json={"head_name": f"阿说 {make_id_number()}"},
                        headers=w["headers"])
    assert edit.status_code == 422 and "head_name" in edit.json["error"]["details"], edit.json
    header = "产品编码,批次号,采收日期,存放地点,农户编号,交售数量,村"
    sheet = read_sheet(f"{header}\nS1,L1,2026-09-01,W1,H1,3,火普村{id_number}\n".encode())
    assert [(e["row"], e["code"]) for e in sheet.errors] == [(2, "personal_number_in_text")]
    assert id_number not in sheet.errors[0]["message"]
    assert client.post("/api/v1/lots", json=lot_body(w["product"], w["location"], w["households"],
                                                     village="火普村二组"), headers=w["headers"]).status_code == 201


def test_the_trace_page_names_the_prefecture_of_the_products_own_county(client):
    """A 大方县 (毕节市) product's page says 毕节市, a 昭觉县 one 凉山彝族自治州; the footer names no region."""
    dafang = SupplierFactory(county_code="520521")
    db.session.commit()
    lot, _ = lot_with_households(dafang, ["甲村"] * 3)
    zhaojue, _ = lot_with_households(SupplierFactory(), ["三河村"] * 3)

    page = client.get(f"/t/{lot.trace_code}").get_data(as_text=True)
    body = client.get(f"/api/v1/trace/{lot.trace_code}").json

    assert "<dd>毕节市 大方县 三河村</dd>" in page and "凉山" not in page
    assert body["prefecture"] == {"code": "520500", "name": "毕节市"}
    assert "<dd>凉山彝族自治州 昭觉县 三河村</dd>" in client.get(f"/t/{zhaojue.trace_code}").get_data(as_text=True)


def test_a_lot_of_a_product_off_sale_names_it_without_a_link_to_a_missing_page(client, coop):
    """A label in a buyer's hand outlives the product's sale: its trace page still names the product, but links to
    the shop's product page only while that page exists (on sale, of an active supplier)."""
    lot, _ = lot_with_households(coop[0], ["三河村"] * 3)
    lot.product.status = "archived"
    db.session.commit()

    body = client.get(f"/api/v1/trace/{lot.trace_code}").json
    page = client.get(f"/t/{lot.trace_code}").get_data(as_text=True)

    assert body["product"]["name"] == "昭觉苦荞米" and body["product"]["on_sale"] is False
    assert client.get(f"/p/{lot.product.sku}").status_code == 404
    assert "昭觉苦荞米" in page and f"/p/{lot.product.sku}" not in page and "在消费帮扶商城查看此产品" not in page


def test_a_lot_of_a_draft_product_shows_the_lot_but_not_the_unpublished_product(client, coop):
    """A draft is the co-op's unpublished work (the product API hides it): the trace of its lot shows the lot, its
    origin, supplier and households, the product only by its SKU; no draft name, category or self-set
    certificate badge, in the JSON and on the page alike."""
    lot, _ = lot_with_households(coop[0], ["三河村"] * 3)
    lot.product.status, lot.product.name, lot.product.category = "draft", "未发布的新品名", "未发布类目"
    db.session.commit()
    assert client.get(f"/api/v1/products/{lot.product.sku}").status_code == 404

    body = client.get(f"/api/v1/trace/{lot.trace_code}").json
    page = client.get(f"/t/{lot.trace_code}").get_data(as_text=True)

    assert body["product"] == {"sku": lot.product.sku, "name": None, "category": None, "unit": lot.product.unit,
                               "county": {"code": lot.product.county_code, "name": "昭觉县"}, "certified": False,
                               "certificate": None, "on_sale": False}
    assert body["households"]["count"] == 3 and body["lot"]["code"] == lot.lot_code
    for unpublished in ("未发布", "扶贫产品认定 ", f"/p/{lot.product.sku}"):
        assert unpublished not in page
    assert lot.product.sku in page and "三河村" in page


def test_a_trace_page_names_an_icon_that_is_there(client, coop):
    lot, _ = lot_with_households(coop[0], ["三河村"] * 3)
    for path, status in ((f"/t/{lot.trace_code}", 200), ("/t/NOSUCHCODE", 404)):
        response = client.get(path)
        assert response.status_code == status
        icon = re.search(r'<link rel="icon" href="([^"]+)">', response.get_data(as_text=True))
        assert icon is not None, path
        named = client.get(icon.group(1))
        assert named.status_code == 200 and named.mimetype.startswith("image/"), path
