"""Identifiers refuse code points no two systems need show alike (private-use, unassigned, surrogates); free text
keeps private-use characters, where GB18030 puts rare characters of names; the document says what the server refuses
in free text."""
from __future__ import annotations

import re
import sys

import pytest
from marshmallow import Schema, ValidationError, fields
from sqlalchemy import func, select

from shop.auth.models import User
from shop.db import db
from shop.fields import (
    MULTILINE_TEXT_PATTERN,
    PHONE_IN_REASON,
    TEXT_PATTERN,
    Choice,
    Identifier,
    Reason,
    Text,
    WebLink,
    clean_text,
    holds_id_or_card_number,
    holds_personal_number,
    mask_personal_numbers,
    normalise_identifier,
    without_controls,
)
from tests.shop.test_errors import assert_error
from tests.suppliers.factories import make_uscc

UNSHARED = {"private use": "\U000F0000", "private use (BMP)": "\ue000", "unassigned": "\u0378",
            "surrogate": "\ud800"}
REFUSED = "Must not contain private-use, unassigned or surrogate characters."


@pytest.mark.parametrize("char", [UNSHARED["private use"], UNSHARED["unassigned"]], ids=["private use", "unassigned"])
def test_a_username_with_an_unshared_character_is_refused_and_no_user_made(client, login, char):
    admin = login("admin")
    users = db.session.scalar(select(func.count(User.id)))
    response = client.post("/api/v1/users", headers=admin, json={
        "username": f"{char}abc", "password": "admin pass 123", "role": "admin"})
    assert assert_error(response, 422, "validation_error")["details"]["username"] == [REFUSED]
    assert db.session.scalar(select(func.count(User.id))) == users


def _fields_of(kind: type) -> list[tuple[str, str, fields.Field]]:
    """(schema name, property name, field) of every `kind` field of every schema the app declares (in lists too)."""
    found, stack = [], list(Schema.__subclasses__())
    while stack:
        schema = stack.pop()
        stack += schema.__subclasses__()
        for name, field in schema._declared_fields.items():
            inner = field.inner if isinstance(field, fields.List) else field
            if isinstance(inner, kind):
                found.append((schema.__name__, field.data_key or name, field))
    return found


@pytest.mark.parametrize("char", UNSHARED.values(), ids=UNSHARED.keys())
def test_every_identifier_refuses_unshared_characters(app, char):
    identifiers = _fields_of(Identifier)
    assert len(identifiers) > 30
    for schema, name, field in identifiers:
        field = field.inner if isinstance(field, fields.List) else field
        with pytest.raises(ValidationError) as error:
            field.deserialize(f"A1{char}")
        assert REFUSED in error.value.messages, (schema, name)


NUMBER_FORMS = {"superscript": "²", "subscript": "₂", "circled": "①", "roman numeral": "Ⅻ", "fraction": "½"}
NUMBER_FORM_REFUSED = "Must not contain superscript, subscript, circled or other number forms (², ₂, ①): type digits."


@pytest.mark.parametrize("char", NUMBER_FORMS.values(), ids=NUMBER_FORMS.keys())
def test_every_identifier_refuses_a_superscript_subscript_or_circled_number(app, char):
    """NFKC reads `HH²` as `HH2` and `①` as `1`, so a code typed with one was another code, and a pickup code typed
    so was accepted: every identifier, choice and path code refuses such a number form rather than read it as a
    digit (digits of any width or script are digits)."""
    for schema, name, field in _fields_of(Identifier):
        field = field.inner if isinstance(field, fields.List) else field
        with pytest.raises(ValidationError) as error:
            field.deserialize(f"A1{char}")
        assert NUMBER_FORM_REFUSED in error.value.messages, (schema, name)


@pytest.mark.parametrize(("typed", "read"), [("ＨＨ－２", "HH-2"), ("ｈｈ\u30002", "HH 2"), ("HH\u0662", "HH2"),
                                             ("5\u338f", "5\u338f"), ("\U0001d407H2", "\U0001d407H2"), ("Ⓐ", "Ⓐ")])
def test_an_identifier_folds_only_full_width_forms(typed, read):
    """The full-width and half-width forms an IME types are folded, and every script's digits are digits; no other
    compatibility form is (a ligature, a mathematical or circled letter stays, for the field's pattern to refuse)."""
    assert normalise_identifier(typed) == read


def test_free_text_keeps_private_use_characters(client, login):
    name = "\ue816家庭农场合作社"  # a rare character of a name, as GB18030 maps it
    response = client.post("/api/v1/suppliers", headers=login("admin"), json={
        "name": name, "kind": "cooperative", "uscc": make_uscc(901), "county_code": "513431"})
    assert response.status_code == 201, response.json
    assert response.json["name"] == name


@pytest.mark.parametrize("blank", ["\u3164\u3164", "\uffa0", "\u115f\u1160", "\u2800 \u2800", "\u0301", "\u200b\u3164"],
                         ids=["Hangul filler", "half-width filler", "choseong and jungseong fillers", "Braille blank",
                              "a lone combining mark", "zero-width space and filler"])
def test_free_text_of_characters_that_show_nothing_is_refused_as_a_password_of_them_is(client, login, blank):
    """A name that prints as nothing (on a statement, in a bank file) is no name: the one rule of what shows nothing,
    as a password made only of such characters is refused."""
    response = client.post("/api/v1/suppliers", headers=login("admin"), json={
        "name": blank, "kind": "cooperative", "uscc": make_uscc(902), "county_code": "513431"})
    error = assert_error(response, 422, "validation_error")
    assert set(error["details"]) == {"name"}
    assert clean_text(f" {blank} ") == ""
    assert clean_text("Jose\u0301 ") == "Jose\u0301"  # a combining mark after a letter is kept


def _accepted(char: str, *, multiline: bool) -> bool:
    """Whether free text may hold `char` (`clean_text` refuses control characters and bidirectional overrides)."""
    try:
        clean_text(f"a{char}b", multiline=multiline)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("multiline", [False, True], ids=["one line", "multi-line"])
def test_the_documented_text_pattern_is_the_rule_the_server_applies(multiline):
    pattern = re.compile(MULTILINE_TEXT_PATTERN if multiline else TEXT_PATTERN)
    differ = [hex(point) for point in range(sys.maxunicode + 1) if not 0xD800 <= point <= 0xDFFF
              and bool(pattern.fullmatch(chr(point))) != _accepted(chr(point), multiline=multiline)]
    assert not differ


def test_a_name_kept_unvalidated_loses_exactly_the_characters_text_fields_refuse():
    pattern = re.compile(TEXT_PATTERN)
    differ = [hex(point) for point in range(sys.maxunicode + 1)
              if (without_controls(f"a{chr(point)}b") == "ab") == bool(pattern.fullmatch(chr(point)))]
    assert not differ


def test_every_text_field_documents_that_it_takes_no_control_characters(client):
    schemas = client.get("/api/v1/openapi.json").json["components"]["schemas"]
    documented = [(schema, name, field) for schema, name, field in _fields_of(Text) if schema in schemas]
    assert len(documented) > 30
    for schema, name, field in documented:
        prop = schemas[schema]["properties"][name]
        prop = prop.get("items", prop) if isinstance(field, fields.List) else prop
        assert prop["pattern"] == (MULTILINE_TEXT_PATTERN if field.multiline else TEXT_PATTERN), (schema, name)
    assert any(field.multiline for _, _, field in documented)


ID_NUMBER = "513431198001015008"  # synthetic: a valid check digit and birth date
CARD_REFUSED = "Do not write ID or bank card numbers here: this text is shown to others unmasked."


@pytest.mark.parametrize("text", [
    f"核对{ID_NUMBER}", "核对 5134 3119 8001 0150 08", "核对５１３４３１１９８００１０１５００８",
    "账号6222020000000000002冻结", "账号 6222-0200-0000-0000-002", "卡号 ６２２２ ０２０２ ００１１ ２２３３ ４４５",
    "card 4111 1111 1111 1111", "订单 12 6222020000000000002", "卡号6222－0200－0000－0000－002",
])
def test_free_text_refuses_an_id_or_bank_card_number_however_written(text):
    with pytest.raises(ValidationError) as error:
        Text(max_length=200).deserialize(text)
    assert error.value.messages == [CARD_REFUSED]


@pytest.mark.parametrize("text", [
    "顾客说苹果坏了 3 个", "2026-11-28 盘点", "尾号 0002 的账户冻结", "微信支付单号 4200001234202611281234567890",
    "运单 SF1234567890123", "4111 1111 1111 1112", f"编号 {ID_NUMBER[:-1]}7",
])
def test_free_text_keeps_numbers_that_are_no_id_or_card(text):
    assert Text(max_length=200).deserialize(text) == text


# between digit groups, people type any short run of punctuation or spaces, not only one space, dot or dash
GROUP_SEPARATORS = {"two spaces": "  ", "slash": "/", "comma": ",", "middle dot": "·", "asterisk": "*",
                    "minus sign": "\u2212", "colon": ":", "wave dash": "〜", "spaced slash": " / "}
GROUPED = {"ID": (ID_NUMBER[:6], ID_NUMBER[6:14], ID_NUMBER[14:]), "card": ("6222", "0202", "0011", "2345", "678"),
           "phone": ("138", "0013", "8000")}


@pytest.mark.parametrize("separator", GROUP_SEPARATORS.values(), ids=GROUP_SEPARATORS.keys())
@pytest.mark.parametrize("kind", ["ID", "card"])
def test_free_text_refuses_an_id_or_card_number_grouped_by_any_separator(kind, separator):
    with pytest.raises(ValidationError) as error:
        Text(max_length=200).deserialize(f"顾客号码 {separator.join(GROUPED[kind])} 已核对")
    assert error.value.messages == [CARD_REFUSED]


@pytest.mark.parametrize("separator", GROUP_SEPARATORS.values(), ids=GROUP_SEPARATORS.keys())
@pytest.mark.parametrize("kind", ["ID", "card", "phone"])
def test_a_code_or_name_holds_a_personal_number_grouped_by_any_separator(kind, separator):
    assert holds_personal_number(f"张三 {separator.join(GROUPED[kind])}")


def _wide(text: str) -> str:
    """`text` with its ASCII digits and X typed full-width, as a Chinese keyboard types them."""
    return text.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789Xx"})


@pytest.mark.parametrize("kind", ["ID", "card", "phone"])
def test_a_personal_number_typed_in_full_width_or_other_digits_is_one_as_in_ascii(kind):
    number = "".join(GROUPED[kind])
    for typed in (_wide(number), _wide(f"{number[:-1]}x") if kind == "ID" and number.endswith("X") else None,
                  "-".join(_wide(group) for group in GROUPED[kind]),
                  number.translate({ord(d): ord(d) + 0x0630 for d in "0123456789"})):  # Arabic-Indic digits
        if typed is not None:
            assert holds_personal_number(f"村{typed}"), typed
            assert mask_personal_numbers(f"村{typed}组") == "村***组"


EVERYDAY = ["20261128 盘点", "2026-11-28 盘点", "2026/11/28 12:30 到货", "金额 1,234.50 元", "运单 1234567890123",
            "运单 123456789012345", "数量 3, 5, 12", "12:30 到货", "第 3/5 箱", "单价 12.50 × 3"]


@pytest.mark.parametrize("text", EVERYDAY)
def test_dates_amounts_tracking_numbers_quantities_and_times_are_no_personal_number(text):
    assert Text(max_length=200).deserialize(text) == text
    assert not holds_personal_number(text)


PROBES = (f"核对{ID_NUMBER}", "账号 6222 0200 0000 0000 002 冻结")
# deliberate exceptions: secrets (hashed, never shown), look-ups never stored, the numbers' own fields
NOT_FREE_TEXT = {
    "password", "current_password", "new_password",  # hashed
    "cursor",  # an opaque page token the server issued
    "id_number", "bank_account",  # encrypted, masked on the way out
    "uscc",  # a company's credit code, validated as one
    "TokenRequest.username",  # a sign-in look-up (a new user's username is refused such numbers)
    "UserQuery.username",  # an exact-match look-up among users (a new user's username is refused such numbers)
}


def _request_fields(app) -> list[tuple[str, str, fields.Field]]:
    """(schema name, property name, field) of every string field a request loads: the API's arguments (bodies,
    queries; the pages load the same schemas) and the pages' own forms, nested schemas and lists followed."""
    schemas = [schema for schema in _all_schemas() if schema.__module__.startswith("web.")]
    for view in app.view_functions.values():
        view_class = getattr(view, "view_class", None)
        for function in ([getattr(view_class, method.lower()) for method in view_class.methods]
                         if view_class is not None else [view]):
            for argument in getattr(function, "_apidoc", {}).get("arguments", {}).get("parameters", []):
                schemas.append(_schema_class(argument["schema"]))
    found, seen = [], set()
    while schemas:
        schema = schemas.pop()
        if schema in seen:
            continue
        seen.add(schema)
        for name, field in schema().fields.items():
            inner = field.inner if isinstance(field, fields.List) else field
            if isinstance(inner, fields.Nested):
                schemas.append(_schema_class(inner.schema))
            elif isinstance(inner, fields.String) and not inner.dump_only:
                found.append((schema.__name__, field.data_key or name, inner))
    return found


def _schema_class(schema) -> type[Schema]:
    """A schema class from an argument's or a nested field's schema: a class, an instance or a dict of fields."""
    if isinstance(schema, dict):
        return Schema.from_dict(schema)
    return schema if isinstance(schema, type) else type(schema)


def _all_schemas() -> list[type[Schema]]:
    """Every schema class the app declares."""
    found, stack = [], list(Schema.__subclasses__())
    while stack:
        schema = stack.pop()
        stack += schema.__subclasses__()
        found.append(schema)
    return found


def test_every_text_field_a_request_loads_refuses_id_and_bank_card_numbers(app):
    """One rule for what a person types (reasons, notes, names, descriptions…): a new string field without it fails
    here, unless it is listed above as a deliberate exception."""
    loaded = _request_fields(app)
    assert len(loaded) > 60 and {("RevealQuery", "reason"), ("BankFileForm", "reason")} <= {s[:2] for s in loaded}
    let_through = []
    for schema, name, field in loaded:
        for probe in PROBES:
            try:
                field.deserialize(probe)
            except ValidationError:
                continue
            let_through.append((schema, name))
            break
    excepted = {(schema, name) for schema, name in let_through
                if name in NOT_FREE_TEXT or f"{schema}.{name}" in NOT_FREE_TEXT}
    assert sorted(set(let_through) - excepted) == []
    for exception in NOT_FREE_TEXT:  # each still names a field that takes any text
        assert any(exception in (name, f"{schema}.{name}") for schema, name in excepted), exception


def test_a_choice_not_among_its_words_is_told_the_words_and_nothing_about_its_length():
    class Settle(Schema):
        status = Choice(("paid", "failed"), required=True)

    with pytest.raises(ValidationError) as refused:
        Settle().load({"status": "pending"})
    assert refused.value.messages == {"status": ["Must be one of: paid, failed."]}
    assert Settle().load({"status": "ＰＡＩＤ"}) == {"status": "paid"}


@pytest.mark.parametrize("value", ["", "   ", "\u3000", "-", "Ｘ" * 65, "a" * 300])
def test_an_identifier_a_request_loads_is_refused_with_one_message(app, value):
    """A blank, too long or malformed code (a tracking number, a SKU, a household code…) is told one thing wrong with
    it, its length first: the pattern that repeats the bounds is not told as well ("Length must be between 1 and 64."
    and "4–64 letters and digits" for a blank tracking number)."""
    told = {}
    for schema, name, field in _request_fields(app):
        if isinstance(field, Identifier):
            try:
                field.deserialize(value)
            except ValidationError as refused:
                told[f"{schema}.{name}"] = refused.messages
    assert "ShipIn.tracking_number" in told
    assert {name: messages for name, messages in told.items() if len(messages) != 1} == {}


@pytest.mark.parametrize("value", ["\x00" * 1000, "ﷺ" * 1000, "6222 0202 0011 2233 445 " * 50])
def test_free_text_far_over_its_bound_is_refused_as_too_long_whatever_it_holds(value):
    """A value more than 4 × the bound (+ 64) long is refused for its length before it is folded or scanned (that
    costs time by the character: a 3 MB note held a worker 20 s), never for what its first characters hold."""
    for field in (Text(max_length=200), Identifier(max_length=200), WebLink(max_length=200)):
        with pytest.raises(ValidationError) as refused:
            field.deserialize(value)
        assert refused.value.messages == ["Longer than 200 characters."]


@pytest.mark.parametrize("letter", ["x", "X", " x", "-X", "ｘ"])
@pytest.mark.parametrize("kind", ["card", "phone"])
def test_a_phone_or_card_number_followed_by_an_x_is_still_one(client, login, kind, letter):
    # an X ends only a resident ID number: after a phone or card number (an extension, a typo) it hides nothing
    typed = f"{' '.join(GROUPED[kind])}{letter}"
    assert holds_personal_number(f"村{typed}") and mask_personal_numbers(f"村{typed}组") == "村***组"
    assert holds_id_or_card_number(f"卡号 {typed}") == (kind == "card")
    username = "".join(GROUPED[kind]) + letter.strip(" -")
    response = client.post("/api/v1/users", headers=login("admin"),
                           json={"username": username, "password": "correct horse battery", "role": "auditor"})
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("kind", ["card", "phone"])
@pytest.mark.parametrize("template", ["数量 3, {}", "{}, 5 箱", "{} / 13900139000", "{}-12"])
def test_a_phone_or_card_number_next_to_another_number_is_still_one(kind, template):
    # a list (`3, 138 0013 8000`) or an extension (`…-12`) makes one group of digits: each number in it is read
    typed = template.format(" ".join(GROUPED[kind]))
    assert holds_personal_number(typed), typed
    assert "".join(GROUPED[kind]) not in mask_personal_numbers(typed).replace(" ", "")
    assert holds_id_or_card_number(typed) == (kind == "card")


@pytest.mark.parametrize("value", ["-", "---", "－－", "\u2014\u2013", "-\u200b-", "._-", "- -"])
def test_an_identifier_of_separators_alone_is_refused_by_every_field_that_reads_one(app, value):
    """A code, a reference or a number is looked up, listed and printed: separators alone (dashes of any width, with
    invisible characters between them) name nothing, whatever the field's own pattern lets through."""
    taken = {}
    for schema, name, field in _request_fields(app):
        if isinstance(field, Identifier):
            try:
                taken[f"{schema}.{name}"] = field.deserialize(value)
            except ValidationError:
                pass
    assert taken == {}


CHINESE_NUMERALS = {"small": "一三八〇〇一三八〇〇〇", "small with 零": "一三八零零一三八零零零",
                    "financial": "壹叁捌零零壹叁捌零零零", "spoken 幺": "幺三八〇〇幺三八〇〇〇",
                    "mixed with digits": "138〇〇13八000", "grouped": "一三八 〇〇一三 八〇〇〇",
                    "after 86": "86 一三八-〇〇一三-八〇〇〇", "traditional financial": "壹參捌零零壹參捌零零零"}


@pytest.mark.parametrize("typed", CHINESE_NUMERALS.values(), ids=CHINESE_NUMERALS.keys())
def test_a_phone_number_written_in_chinese_numerals_is_one_as_in_digits(typed):
    # a person who may not write a phone number in a reason or a village writes it as it is read aloud
    assert holds_personal_number(f"请联系{typed}")
    assert mask_personal_numbers(f"请联系{typed}取货") == "请联系***取货"
    with pytest.raises(ValidationError) as refused:
        Reason().deserialize(f"顾客电话{typed}")
    assert refused.value.messages == [PHONE_IN_REASON]


def test_an_id_or_card_number_written_in_chinese_numerals_is_one_as_in_digits():
    numerals = str.maketrans("0123456789", "〇一二三四五六七八九")
    for number in (ID_NUMBER, "6222020200112345678"):
        with pytest.raises(ValidationError) as refused:
            Text(max_length=200).deserialize(f"核对{number.translate(numerals)}")
        assert refused.value.messages == [CARD_REFUSED]


@pytest.mark.parametrize("text", ["二〇二六年十一月二十九日到货", "一二三四五 号仓", "三三两两", "第一、二、三组",
                                  "零售价 一百二十八元", "七八九十斤"])
def test_chinese_numerals_that_are_no_personal_number_stay_as_written(text):
    assert not holds_personal_number(text)
    assert mask_personal_numbers(text) == text
    assert Reason().deserialize(text) == text


@pytest.mark.parametrize("kind", ["card", "phone"])
@pytest.mark.parametrize("template", ["数量 3, {}", "{}, 5 箱", "{} / 13900139000", "{}-12", "共 2 箱 {} 收"])
def test_masking_hides_the_personal_number_and_keeps_the_numbers_next_to_it(kind, template):
    typed = template.format(" ".join(GROUPED[kind]))
    assert mask_personal_numbers(typed) == template.format("***").replace("13900139000", "***")


def test_masking_an_id_number_next_to_a_quantity_keeps_the_quantity():
    assert mask_personal_numbers(f"数量 3,{ID_NUMBER} 已核对") == "数量 3,*** 已核对"
    assert mask_personal_numbers(f"编号 {ID_NUMBER[:6]} {ID_NUMBER[6:]}") == "编号 ***"
