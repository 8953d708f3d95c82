"""USCC, resident ID and bank account validation, and masking."""
from __future__ import annotations

from datetime import date

import pytest
from stdnum.cn import ric

from shop.errors import ValidationError
from suppliers import identifiers
from suppliers.demo import synthetic_id_number, synthetic_uscc
from tests.suppliers.factories import make_id_number, remember

TODAY = date(2026, 11, 23)


def _with_check_digit(first17: str) -> str:
    """Complete 17 digits with the right check digit."""
    return remember(first17 + ric.calc_check_digit(first17 + "0"))


def _wrong_check(number: str) -> str:
    """The same number with a different (wrong) last character."""
    return remember(number[:-1] + ("1" if number[-1] != "1" else "2"))


def test_a_valid_uscc_is_accepted_and_compacted():
    assert identifiers.normalise_uscc("91110000600037341L") == "91110000600037341L"
    assert identifiers.normalise_uscc("9111 0000 6000 3734 1l") == "91110000600037341L"


@pytest.mark.parametrize(("value", "problem"), [
    ("91110000600037341M", "The check character is wrong."),
    ("9111000060003734", "Not 18 characters"),
    ("A1110000600037341L", "Not 18 characters"),
])
def test_an_invalid_uscc_is_rejected(value, problem):
    with pytest.raises(ValidationError) as error:
        identifiers.normalise_uscc(value)
    assert error.value.code == "invalid_uscc" and error.value.status == 422
    assert error.value.details["uscc"][0].startswith(problem)


def test_a_valid_id_number_is_accepted_and_compacted():
    number = make_id_number()
    assert identifiers.normalise_id_number(number, today=TODAY) == number
    assert identifiers.normalise_id_number(f" {number[:6]} {number[6:14]}-{number[14:]} ", today=TODAY) == number
    with_x = next(n for n in (_with_check_digit(f"51343119800101{s:03d}") for s in range(100)) if n.endswith("X"))
    assert identifiers.normalise_id_number(with_x.lower(), today=TODAY) == with_x
    for born in ("19061123", "20101123"):  # a head who turned 120 today, and one who turned 16 today
        assert identifiers.normalise_id_number(_with_check_digit(f"513431{born}001"), today=TODAY)


@pytest.mark.parametrize("born", ["19000101", "19061122"])
def test_an_id_number_of_someone_born_more_than_120_years_ago_is_refused(born):
    """A head born in 1900 was registered: nobody that old heads a household, so the number was mistyped; a birth
    date more than 120 years before today is refused as the field's error, naming the bound."""
    with pytest.raises(ValidationError) as error:
        identifiers.normalise_id_number(_with_check_digit(f"513431{born}001"), today=TODAY)
    assert error.value.code == "invalid_id_number" and error.value.status == 422
    assert error.value.details["id_number"] == [
        "The birth date is not that of a living adult (born at most 120 years ago, 16 or older)."]


@pytest.mark.parametrize(("make", "problem"), [
    (lambda: _wrong_check(make_id_number()), "The check digit is wrong."),
    (lambda: _with_check_digit("51343119900230123"), "The birth date is not a valid past date."),
    (lambda: _with_check_digit("51343119901301123"), "The birth date is not a valid past date."),
    (lambda: _with_check_digit("51343120991231123"), "The birth date is not a valid past date."),
    (lambda: _with_check_digit("51343100010101303"), "The birth date is not that of a living adult"),
    (lambda: _with_check_digit("51343118991231002"), "The birth date is not that of a living adult"),
    (lambda: _with_check_digit("51343120101124301"), "The birth date is not that of a living adult"),
    (lambda: _with_check_digit("99999919900101123"), "The region part is not a known county."),
    (lambda: "51343119900101", "Not 17 digits"),
])
def test_an_invalid_id_number_is_rejected_without_quoting_it(make, problem):
    number = make()
    with pytest.raises(ValidationError) as error:
        identifiers.normalise_id_number(number, today=TODAY)
    assert error.value.code == "invalid_id_number" and error.value.status == 422
    assert error.value.details["id_number"][0].startswith(problem)
    assert number not in str(error.value) and number not in str(error.value.details)


def test_bank_accounts_are_compacted_and_must_be_digits():
    account = remember("6217 0000 1234 5678 901")
    assert identifiers.normalise_bank_account(account) == "6217000012345678901"
    with pytest.raises(ValidationError) as error:
        identifiers.normalise_bank_account("6217-abc-5678")
    assert error.value.code == "invalid_bank_account"


def test_masks_keep_the_first_six_and_last_four_of_ids_and_the_last_four_of_accounts():
    assert identifiers.mask_id_number("513431198001010012") == "513431********0012"
    assert identifiers.mask_bank_account("6217000012345678901") == "****8901"


def test_demo_identifiers_have_valid_check_characters():
    from stdnum.cn import uscc

    assert uscc.is_valid(synthetic_uscc("513431", 1)) and uscc.is_valid(synthetic_uscc("513437", 2))
    assert all(ric.is_valid(remember(synthetic_id_number("513437", n))) for n in range(1, 41))
