"""Validation, normalisation and masking of USCCs, resident ID numbers and bank accounts.

Every value first goes through `shop.fields.normalise_identifier` (width-folded, invisible characters
removed, trimmed, upper case, spaces and dashes dropped), so every Unicode spelling of one number
is one string before it is validated, hashed or stored. Error messages name the field and the
problem, never the value.
"""
from __future__ import annotations

import re
from datetime import date

from stdnum import numdb
from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidChecksum, InvalidComponent
from stdnum.exceptions import ValidationError as StdnumError

from shop import crypto
from shop.errors import ValidationError
from shop.fields import normalise_identifier
from suppliers.errors import SupplierCode

BANK_ACCOUNT = re.compile(r"^[0-9]{8,32}$")
ID_NUMBER = re.compile(r"^[0-9]{17}[0-9X]$")
OLD_ID_NUMBER = re.compile(r"^[0-9]{15}$")  # a first-generation card's (until 2013): no century, no check digit
MAX_AGE = 120  # nobody registered is older: a birth date before it is a mistyped number
MIN_AGE = 16  # the ID number registered is a household head's (or a shareholder's): an adult's


def normalise_uscc(value: str) -> str:
    """The compact USCC, validated including its check character (`invalid_uscc` otherwise)."""
    try:
        return uscc.validate(normalise_identifier(value, case="upper", drop_separators=True))
    except InvalidChecksum:
        problem = "The check character is wrong."
    except StdnumError:
        problem = "Not 18 characters of digits and the letters a USCC uses."
    raise ValidationError("The unified social credit code is not valid.", code=SupplierCode.INVALID_USCC,
                          details={"uscc": [problem]})


def normalise_id_number(value: str, *, today: date) -> str:
    """The ID number without spaces or dashes, validated: check digit, birth date, region (`invalid_id_number`)."""
    number = normalise_identifier(value, case="upper", drop_separators=True)
    problem = None
    if OLD_ID_NUMBER.match(number):
        problem = "An old 15-digit ID number: give the 18-digit number on the current ID card."
    elif not ID_NUMBER.match(number):
        problem = "Not 17 digits followed by a check digit or X."
    elif number[-1] != ric.calc_check_digit(number):
        problem = "The check digit is wrong."
    else:
        try:
            born = ric.get_birth_date(number)
        except InvalidComponent:
            born = None
        if born is None or born > today:
            problem = "The birth date is not a valid past date."
        elif born < _years_before(today, MAX_AGE) or born > _years_before(today, MIN_AGE):
            problem = (f"The birth date is not that of a living adult (born at most {MAX_AGE} years ago, {MIN_AGE} or "
                       "older).")
        elif not _known_birth_place(number, born):
            problem = "The region part is not a known county."
    if problem:
        raise ValidationError("The resident ID number is not valid.", code=SupplierCode.INVALID_ID_NUMBER,
                              details={"id_number": [problem]})
    return number


def _years_before(day: date, years: int) -> date:
    """The date `years` before `day` (29 February falls back to the 28th)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _known_birth_place(number: str, born: date) -> bool:
    """Whether the first six digits name a county in python-stdnum's table of codes that was not abolished before
    the birth year: a number takes the code in force when it is given (at birth, or decades later for a first card or
    a move), so a code created after the birth year is one (stdnum's own check wants it in force at birth)."""
    counties = {k: v for _, props in numdb.get("cn/loc").info(number[:6]) for k, v in props.items()}.get("county")
    for county in counties.split(",") if counties else ():
        end = county[1:county.index("]")].split("-")[1] if county.startswith("[") else ""
        if not end or int(end) >= born.year:
            return True
    return False


def normalise_bank_account(value: str, *, field: str = "bank_account") -> str:
    """The bank account number without spaces or dashes, 8 to 32 digits (`invalid_bank_account`)."""
    compact = normalise_identifier(value, case="upper", drop_separators=True)
    if not BANK_ACCOUNT.match(compact):
        raise ValidationError("The bank account number is not valid.", code=SupplierCode.INVALID_BANK_ACCOUNT,
                              details={field: ["Must be 8 to 32 digits."]})
    return compact


def mask_id_number(number: str) -> str:
    """Show only the first 6 and the last 4 characters of an ID number."""
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def mask_bank_account(account: str) -> str:
    """Show only the last 4 digits of a bank account, behind a mask of fixed width (its length is not shown)."""
    return "****" + account[-4:]


def audit_mask_bank_account(account: str) -> str:
    """A payout account as every account-change audit shows it: its last 4 digits and a short keyed fingerprint of
    the whole number (`****0128 #3f9a1c2e`, the `FIELD_HASH_KEY` look-up hash), so a change between two accounts
    ending alike shows, and one account reads the same each time, without the number being shown."""
    return f"{mask_bank_account(account)} #{crypto.lookup_hash(account)[:8]}"
