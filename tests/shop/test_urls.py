"""One spelling for what names a thing: codes in URL paths (under the test client, the development server and
gunicorn alike), choices and dates in queries and bodies, in any width."""
from __future__ import annotations

import json
import socket
import threading
import unicodedata
from urllib.parse import quote

import pytest
from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder

from shop.db import db
from tests.catalog.factories import LocationFactory, ProductFactory, make_lot
from tests.orders.checkout.conftest import delivery_body, make_world


def full_width(text: str) -> str:
    """`text` in full-width forms (ASCII letters, digits and dashes), lower-cased, as an IME types it."""
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text.lower())


@pytest.fixture
def lot(app):
    """A product with one lot; its SKU and trace code."""
    product = ProductFactory(county_code="513431")
    lot = make_lot(product, LocationFactory(), quantity=3)
    db.session.commit()
    return product.sku, lot.trace_code


@pytest.mark.parametrize("spell", [full_width, str.lower, lambda code: f"\u200b{code}\u00ad", lambda code: f" {code} "],
                         ids=["full-width", "lower-case", "invisible characters", "spaces"])
def test_every_code_in_a_path_is_found_however_it_is_spelled(client, lot, spell):
    sku, trace_code = lot
    assert unicodedata.normalize("NFKC", full_width(sku)) == sku.lower()  # the spelling really differs
    paths = {f"/api/v1/products/{spell(sku)}": "sku", f"/api/v1/trace/{spell(trace_code)}": "trace_code",
             f"/api/v1/regions/{spell('513431')}": "code", f"/api/v1/disclosure/counties/{spell('513431')}": "county"}
    for path, field in paths.items():
        response = client.get(path)
        assert response.status_code == 200, (path, response.json)
        found = response.json[field]
        assert (found["code"] if field == "county" else found) in (sku, trace_code, "513431")
    page = client.get(f"/p/{spell(sku)}")
    assert page.status_code == 200 and sku in page.get_data(as_text=True)


def test_a_code_longer_than_any_is_not_found_and_the_document_says_so(client):
    response = client.get("/api/v1/regions/" + "5" * 65)
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert paths["/api/v1/products/{sku}"]["parameters"][0]["schema"] == {"type": "string", "minLength": 1,
                                                                          "maxLength": 64}


def _raw_get(port: int, target: str | bytes) -> tuple[int, str]:
    """GET `target` sent as raw UTF-8 bytes (not percent-encoded, as `curl '…/５１３４３１'` sends it), or as the
    bytes given."""
    target = target.encode() if isinstance(target, str) else target
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(b"GET " + target + b" HTTP/1.0\r\nHost: localhost\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def test_the_development_server_reads_raw_utf8_in_paths_and_queries(app, lot):
    sku, _ = lot
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status, body = _raw_get(server.server_port, "/api/v1/regions/５１３４３１")
        assert status == 200 and "昭觉县" in body
        status, body = _raw_get(server.server_port, "/api/v1/regions?level=county&parent=５１３４００&limit=100")
        assert status == 200 and "昭觉县" in body
        # upper-case full-width: Python's HTTP server splits the request line at the bytes 0x85 and 0xA0 (which
        # `ｅ`, `－` and others hold), before the app sees it
        status, body = _raw_get(server.server_port, f"/api/v1/products/{full_width(sku).upper().replace('－', '-')}")
        assert status == 200 and sku in body
        status, body = _raw_get(server.server_port, "/api/v1/regions/" + quote("５１３４３１"))
        assert status == 200 and "昭觉县" in body  # percent-encoded, as browsers send it: unchanged
        # a raw byte that is not UTF-8 reads as its percent-encoding does: a search that finds nothing, not a 500
        for target in (b"/api/v1/products?q=\xff", b"/api/v1/products?q=%FF"):
            status, body = _raw_get(server.server_port, target)
            assert (status, json.loads(body)["items"]) == (200, [])
        status, body = _raw_get(server.server_port, b"/?q=\xff")
        assert status == 200 and "<html" in body
    finally:
        server.shutdown()
        server.server_close()


def test_a_production_server_environ_is_left_as_it_came(app):
    environ = EnvironBuilder(path="/api/v1/regions/５１３４３１").get_environ()
    environ.update(SERVER_SOFTWARE="gunicorn/23.0.0", RAW_URI="/api/v1/regions/５１３４３１".encode().decode("latin-1"))
    before = dict(environ)
    status = []
    body = b"".join(app.wsgi_app(environ, lambda code, headers, exc_info=None: status.append(code)))
    assert status == ["200 OK"] and "昭觉县" in body.decode()
    assert environ["PATH_INFO"] == before["PATH_INFO"] and environ["QUERY_STRING"] == before["QUERY_STRING"]


def test_choices_and_dates_in_a_query_read_in_any_width(client):
    pairings = client.get("/api/v1/pairings?donor=440606&on=2026-03-01")
    typed = client.get("/api/v1/pairings?donor=４４０６０６&on=２０２６－０３－０１")
    assert typed.status_code == 200 and typed.json == pairings.json and len(pairings.json["items"]) == 3
    counties = client.get("/api/v1/regions?level=county&parent=513400&limit=100")
    assert client.get("/api/v1/regions?level=ＣＯＵＮＴＹ&parent=513400&limit=100").json == counties.json
    wrong = client.get("/api/v1/regions?level=ｔｏｗｎ")
    assert wrong.status_code == 422 and "level" in wrong.json["error"]["details"]
    assert client.get("/api/v1/pairings?on=２０２６－１３－０１").status_code == 422
    padded = client.get("/api/v1/pairings?on=2026-03-01" + "%20" * 250 + "junk")  # never read as its first part
    assert padded.status_code == 422 and "on" in padded.json["error"]["details"]


def test_a_choice_in_a_body_reads_in_any_width(client, login):
    world = make_world()
    body = delivery_body((world["a"].sku, 1), channel=" ＤＥＬＩＶＥＲＹ")
    created = client.post("/api/v1/orders", json=body, headers=login("consumer"))
    assert created.status_code == 201 and created.json["channel"] == "delivery"


def test_a_query_parameter_left_empty_is_not_given_and_one_given_twice_is_refused(client, login):
    admin = login("admin")
    blank = "account=&from=&to=&limit="

    unfiltered = client.get("/api/v1/ledger/transactions", headers=admin)
    blanks = client.get(f"/api/v1/ledger/transactions?{blank}", headers=admin)
    assert (blanks.status_code, blanks.json) == (200, unfiltered.json)
    products = client.get("/api/v1/products?county=513431&category=&q=&min_price_fen=&max_price_fen=&in_stock_at=")
    assert products.status_code == 200, products.json
    for parameter, values in (("limit", (1, 2)), ("from", ("2026-01-01", "2027-01-01"))):  # `from` is `from_date`
        twice = client.get(f"/api/v1/ledger/transactions?{parameter}={values[0]}&{parameter}={values[1]}",
                           headers=admin)
        assert (twice.status_code, twice.json["error"]["details"]) == (422, {
            parameter: ["Given more than once; it takes one value."]})


@pytest.mark.parametrize("blank", ["%20", "+", "%E3%80%80", "%E2%80%8B", "%20%09%20"])
def test_a_query_parameter_holding_only_blanks_is_not_given_as_an_empty_one_is(client, login, blank):
    """A search form's field the user left blank but for a space (a full-width one, an invisible one) filters by
    nothing, as the field left empty does: not a 422 saying one character is shorter than one."""
    admin = login("admin")
    for path, parameters in (("/api/v1/products", ("q", "category", "county", "status", "min_price_fen")),
                             ("/api/v1/ledger/transactions", ("account", "from", "limit"))):
        unfiltered = client.get(path, headers=admin)
        for parameter in parameters:
            blanks = client.get(f"{path}?{parameter}={blank}", headers=admin)
            assert (blanks.status_code, blanks.json) == (200, unfiltered.json), (path, parameter, blanks.json)


CONTROL_CHARACTERS = ("%00", "%07", "%1F", "%7F")


def assert_control_characters_name_nothing(client, admin: dict) -> None:
    """A control character in a code of a path names nothing (404), on every code route and on the payment intent
    of the sandbox's confirm; in an identifier of a query (`?account=`) it is a 422 naming the parameter."""
    for char in CONTROL_CHARACTERS:
        for path in (f"/api/v1/regions/{char}", f"/api/v1/regions/5134{char}31", f"/api/v1/disclosure/counties/{char}",
                     f"/api/v1/disclosure/counties/513431{char}", f"/api/v1/products/{char}",
                     f"/api/v1/products/ZJ-{char}/history", f"/api/v1/trace/{char}"):
            response = client.get(path, headers=admin)
            assert (response.status_code, response.json["error"]["code"]) == (404, "not_found"), (path, response.json)
        assert client.get(f"/p/{char}").status_code == 404
        confirmed = client.post(f"/api/v1/payments/sandbox/pi_{char}/confirm", json={"outcome": "succeeded"},
                                headers=admin)
        assert (confirmed.status_code, confirmed.json["error"]["code"]) == (404, "not_found"), (char, confirmed.json)
        listed = client.get(f"/api/v1/ledger/transactions?account=platform{char}", headers=admin)
        assert (listed.status_code, list(listed.json["error"]["details"])) == (422, ["account"]), (char, listed.json)
    unknown = client.get("/api/v1/ledger/transactions?account=platform", headers=admin)  # none posted to it yet
    assert (unknown.status_code, unknown.json["error"]["code"]) == (404, "account_not_found")


def test_a_control_character_in_an_identifier_names_nothing(client, login):
    assert_control_characters_name_nothing(client, login("admin"))
