"""One person, one household: every Unicode spelling of an identifier is one record."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from shop.db import db
from shop.extensions import limiter
from suppliers.models import Household, Supplier
from tests.suppliers.factories import HouseholdFactory, household_payload, make_bank_account, make_uscc

FULL_WIDTH = 0xFEE0  # '5' + FULL_WIDTH is '５'
INVISIBLE_OR_SEPARATOR = ["", "", "\u200b", "\u200d", "\u2060", "\ufeff", " ", "-", "\u3000", "\u2010"]


# How to type an 18-character ID number differently, drawn independently of the number itself (so
# Hypothesis can replay an example): a leading blank, then per character a form and what follows it.
SPELLINGS = st.tuples(st.sampled_from(["", " ", "\u3000", "\u200b"]),
                      st.lists(st.tuples(st.integers(0, 3), st.sampled_from(INVISIBLE_OR_SEPARATOR)),
                               min_size=18, max_size=18))


def spell(number: str, plan) -> str:
    """`number` typed by `plan`: full-width characters, lower-case x, invisible characters, separators."""
    lead, per_char = plan
    out = [lead]
    for char, (form, after) in zip(number, per_char, strict=True):
        forms = [char, chr(ord(char) + FULL_WIDTH)]
        if char == "X":
            forms += ["x", chr(ord("x") + FULL_WIDTH)]
        out += [forms[form % len(forms)], after]
    return "".join(out)


def full_width(text: str) -> str:
    """`text` with every ASCII letter and digit in its full-width form."""
    return "".join(chr(ord(c) + FULL_WIDTH) if c.isascii() and c.isalnum() else c for c in text)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=SPELLINGS)
def test_any_spelling_of_an_id_number_is_the_same_person(client, coop, supplier, other_coop, other_supplier, plan):
    limiter.storage.reset()  # every example answers "registered" once: a fresh budget of ID-number look-ups each
    household = HouseholdFactory(supplier=supplier)
    db.session.commit()
    spelled = spell(household.id_number, plan)

    again = client.post(f"/api/v1/suppliers/{other_supplier.id}/households",
                        json=household_payload(id_number=spelled), headers=other_coop)
    assert again.status_code == 409, again.json
    assert again.json["error"]["code"] == "household_exists"

    link = client.post(f"/api/v1/suppliers/{other_supplier.id}/benefit-links", headers=other_coop,
                       json={"household_code": household.code.lower(), "id_number": spelled, "kind": "purchase",
                             "valid_from": "2026-03-01"})
    assert link.status_code == 201, link.json
    assert link.json["household_id"] == household.id


def test_a_full_width_id_number_is_stored_and_hashed_in_its_ascii_form(client, admin, supplier):
    body = household_payload()
    spelled = {**body, "id_number": full_width(body["id_number"]), "code": " " + full_width(body["code"].lower()),
               "bank_account": full_width(make_bank_account())}
    response = client.post(f"/api/v1/suppliers/{supplier.id}/households", json=spelled, headers=admin)
    assert response.status_code == 201, response.json
    assert response.json["code"] == body["code"]
    revealed = client.get(f"/api/v1/households/{response.json['id']}?reveal=true&reason=check", headers=admin).json
    assert revealed["id_number"] == body["id_number"]
    assert revealed["bank_account"].isascii() and revealed["bank_account"].isdigit()
    assert client.get(f"/api/v1/suppliers/{supplier.id}/households?code={body['code'].lower()}",
                      headers=admin).json["items"][0]["id"] == response.json["id"]


def test_a_full_width_uscc_is_the_same_supplier(client, admin):
    uscc = make_uscc(4242)
    first = client.post("/api/v1/suppliers", headers=admin,
                        json={"name": "全角社", "kind": "cooperative", "uscc": uscc, "county_code": "513431"})
    assert first.status_code == 201, first.json
    second = client.post("/api/v1/suppliers", headers=admin,
                         json={"name": "全角社二", "kind": "cooperative", "uscc": " " + full_width(uscc.lower()),
                               "county_code": "５１３４３１"})
    assert second.status_code == 409 and second.json["error"]["code"] == "uscc_taken"
    assert db.session.query(Supplier).filter_by(uscc=uscc).count() == 1


def test_digits_of_other_scripts_are_the_same_id_number(client, coop, supplier):
    """Every script's digits read as ASCII digits (one rule for every identifier), so one person is registered once."""
    body = household_payload()
    arabic_indic = "".join(chr(0x0660 + int(c)) if c.isdigit() else c for c in body["id_number"])
    first = client.post(f"/api/v1/suppliers/{supplier.id}/households", json={**body, "id_number": arabic_indic},
                        headers=coop)
    assert first.status_code == 201 and first.json["id_number"][:6] == body["id_number"][:6]
    again = client.post(f"/api/v1/suppliers/{supplier.id}/households", json={**body, "code": "OTHER-CODE-1"},
                        headers=coop)
    assert again.status_code == 409 and again.json["error"]["code"] == "household_exists"


def test_free_text_is_trimmed_and_must_show_something(client, coop, supplier):
    body = household_payload(head_name="  测试户丙\u200b ", village="\u3000测试村 ")
    response = client.post(f"/api/v1/suppliers/{supplier.id}/households", json=body, headers=coop)
    assert response.status_code == 201, response.json
    stored = db.session.get(Household, response.json["id"])
    assert (stored.head_name, stored.village) == ("测试户丙", "测试村")
    for bad in ("\u200b\u200b", "  ", "测试\x00户", "测\t试", "张\u202e三", "张\u2066三"):
        refused = client.post(f"/api/v1/suppliers/{supplier.id}/households",
                              json=household_payload(head_name=bad), headers=coop)
        assert refused.status_code == 422 and "head_name" in refused.json["error"]["details"], bad
    too_long = client.post(f"/api/v1/suppliers/{supplier.id}/households",
                           json=household_payload(village="村" * 65), headers=coop)
    assert too_long.status_code == 422 and "village" in too_long.json["error"]["details"]


def test_a_name_or_village_typed_with_invisible_characters_or_odd_spaces_inside_is_the_one_that_reads_alike(
        client, coop, supplier):
    """A head's name or a village pasted with a zero-width space, soft hyphen or word joiner inside, or a no-break or
    ideographic space, reads as the plain spelling but was kept apart: the bank file's payee name then differs from
    the account holder's, and one village is two in the co-op's and the public figures. Inside single-line text an
    invisible character is dropped and a run of spaces is one space."""
    plain = client.post(f"/api/v1/suppliers/{supplier.id}/households", headers=coop,
                        json=household_payload(head_name="阿鲁 木呷", village="火普村"))
    typed = client.post(f"/api/v1/suppliers/{supplier.id}/households", headers=coop,
                        json=household_payload(head_name="阿鲁\u00a0\u3000木\u200b呷", village="火\u00ad普\u2060村"))
    assert plain.status_code == typed.status_code == 201, typed.json
    assert (typed.json["head_name"], typed.json["village"]) == (plain.json["head_name"], plain.json["village"])
    stored = db.session.get(Household, typed.json["id"])
    assert (stored.head_name, stored.village) == (plain.json["head_name"], plain.json["village"])


def test_a_village_or_name_typed_with_full_width_digits_or_letters_is_stored_in_one_spelling(client, admin, coop,
                                                                                               supplier):
    """An IME types 三岔河村１组 where a spreadsheet has 三岔河村1组: one village, stored, listed, searched and shown in
    one spelling (full-width digits and Latin letters as ASCII; Chinese punctuation as written), as are the names that
    share the rule (a head's, a co-op's, a store's)."""
    url = f"/api/v1/suppliers/{supplier.id}/households"
    typed = client.post(url, headers=coop, json=household_payload(head_name="Ａｌｉ　木呷", village="三岔河村１组"))
    assert typed.status_code == 201, typed.json
    assert (typed.json["head_name"], typed.json["village"]) == ("Ali 木呷", "三岔河村1组")
    edited = client.patch(f"/api/v1/households/{typed.json['id']}", json={"village": "火普村（二组）Ｂ"}, headers=coop)
    assert edited.json["village"] == "火普村（二组）B"
    stored = db.session.get(Household, typed.json["id"])
    assert (stored.head_name, stored.village) == ("Ali 木呷", "火普村（二组）B")
    found = client.get(f"{url}?village=火普村（二组）Ｂ", headers=coop).json["items"]
    assert [h["id"] for h in found] == [typed.json["id"]]
    co_op = client.post("/api/v1/suppliers", headers=admin, json={
        "name": "昭觉县第２苦荞合作社", "kind": "cooperative", "uscc": make_uscc(9107), "county_code": "513431"})
    assert co_op.status_code == 201 and co_op.json["name"] == "昭觉县第2苦荞合作社", co_op.json


def test_query_ids_are_bounded(client, admin):
    response = client.get(f"/api/v1/audit/reveals?household_id={2**63}", headers=admin)
    assert response.status_code == 422 and "household_id" in response.json["error"]["details"]


def test_a_code_never_holds_a_persons_id_or_phone_number(client, coop, supplier):
    """Codes are shown unmasked everywhere (lists, statements, trace pages): an ID number typed as a code would be."""
    person = household_payload()["id_number"]
    for code in (person, f"H-{person}", f"H{person}1", "13912345678", "H-139-1234-5678", "H013912345678"):
        refused = client.post(f"/api/v1/suppliers/{supplier.id}/households", headers=coop,
                              json=household_payload(code=code))
        assert refused.status_code == 422 and "code" in refused.json["error"]["details"], code
    assert client.post(f"/api/v1/suppliers/{supplier.id}/households", headers=coop,
                       json=household_payload(code="5134310010010001")).status_code == 201  # a registry number


def test_a_registry_code_of_separators_or_invisible_characters_alone_is_refused(client, coop, supplier):
    """A code is looked up, listed and printed on statements: `---`, `－－` or dashes around a zero-width space name
    no household, and every field that reads a code refuses one that holds no letter or digit."""
    HouseholdFactory(supplier=supplier)
    db.session.commit()
    for code in ("---", "－－－", "\u2014\u2013", "-\u200b-", "\u2010\u3164\u2011"):
        refused = client.post(f"/api/v1/suppliers/{supplier.id}/households", headers=coop,
                              json=household_payload(code=code))
        assert refused.status_code == 422 and "code" in refused.json["error"]["details"], (code, refused.json)
        link = client.post(f"/api/v1/suppliers/{supplier.id}/benefit-links", headers=coop,
                           json={"household_code": code, "kind": "purchase", "valid_from": "2026-03-01"})
        assert link.status_code == 422 and "household_code" in link.json["error"]["details"], (code, link.json)
        listed = client.get(f"/api/v1/suppliers/{supplier.id}/households", headers=coop, query_string={"code": code})
        assert listed.status_code == 422 and "code" in listed.json["error"]["details"], (code, listed.json)
    assert db.session.scalar(select(func.count(Household.id))) == 1
    assert client.post(f"/api/v1/suppliers/{supplier.id}/households", headers=coop,
                       json=household_payload(code="ｒ－7")).json["code"] == "R-7"


@pytest.mark.parametrize("char", ["²", "₂", "①"], ids=["superscript", "subscript", "circled"])
def test_a_household_typed_with_a_superscript_subscript_or_circled_digit_is_refused_not_read_as_a_digit(
        client, admin, coop, supplier, char):
    """`HH²` was registered as `HH2` (NFKC), and an ID number, bank account or USCC typed with one was another's:
    each field refuses it, and a filter or date typed so is refused, not read as the digit."""
    body = household_payload(code="HH2", bank_account=make_bank_account())
    typed = {"code": "HH" + char, "id_number": body["id_number"][:-2] + char + body["id_number"][-1],
             "bank_account": body["bank_account"][:-1] + char, "consent_on": "2026-01-0" + char}
    for field, value in typed.items():
        refused = client.post(f"/api/v1/suppliers/{supplier.id}/households", headers=coop, json={**body, field: value})
        assert refused.status_code == 422 and field in refused.json["error"]["details"], (field, refused.json)
    listed = client.get(f"/api/v1/suppliers/{supplier.id}/households", headers=coop, query_string={"code": "HH" + char})
    assert listed.status_code == 422 and "code" in listed.json["error"]["details"]
    uscc = client.post("/api/v1/suppliers", headers=admin, json={
        "name": "上标社", "kind": "cooperative", "uscc": make_uscc(4243)[:-1] + char, "county_code": "513431"})
    assert uscc.status_code == 422 and "uscc" in uscc.json["error"]["details"], uscc.json
    assert db.session.scalar(select(func.count(Household.id))) == 0


DASHES = {"full-width": "\uff0d", "en dash": "\u2013", "minus sign": "\u2212", "small hyphen-minus": "\ufe63",
          "two-em dash": "\u2e3a", "double oblique hyphen": "\u2e17", "Armenian hyphen": "\u058a",
          "heavy minus sign": "\u2796", "modifier letter minus": "\u02d7", "katakana double hyphen": "\u30a0"}


@pytest.mark.parametrize("dash", DASHES.values(), ids=DASHES.keys())
def test_a_household_code_typed_with_any_dash_is_the_code_with_a_hyphen(client, coop, supplier, dash):
    """`LS－001`, `LS–001`, `LS−001` … are `LS-001` as a co-op reads its list: every dash-like character (Unicode's
    dash punctuation and the minus signs) is `-` in an identifier, so the code is taken, found and linked as one."""
    first = client.post(f"/api/v1/suppliers/{supplier.id}/households", headers=coop,
                        json=household_payload(code="LS-001"))
    assert first.status_code == 201, first.json
    again = client.post(f"/api/v1/suppliers/{supplier.id}/households", headers=coop,
                        json=household_payload(code=f"LS{dash}001"))
    assert again.status_code == 409 and again.json["error"]["code"] == "household_code_taken", again.json
    listed = client.get(f"/api/v1/suppliers/{supplier.id}/households", headers=coop,
                        query_string={"code": f"ls{dash}001"})
    assert listed.status_code == 200 and [item["id"] for item in listed.json["items"]] == [first.json["id"]]
    link = client.post(f"/api/v1/suppliers/{supplier.id}/benefit-links", headers=coop,
                       json={"household_code": f"LS{dash}001", "kind": "purchase", "valid_from": "2026-03-01"})
    assert link.status_code == 201 and link.json["household_id"] == first.json["id"], link.json
