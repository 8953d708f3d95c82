"""Factories and synthetic identifiers of the suppliers domain (fake people, valid check digits).

Every ID number and bank account handed out here is remembered in `PERSONAL_DATA`, so the log
sweep can check that none of them was ever logged.
"""
from __future__ import annotations

import itertools
from datetime import date, timedelta

import factory
from stdnum.cn import ric, uscc

from shop.db import db
from suppliers.models import BenefitLink, Household, Supplier, SupplierHousehold
from tests.factories import BaseFactory

PERSONAL_DATA: set[str] = set()
_serial = itertools.count(1)


def remember(value: str) -> str:
    """Record a synthetic personal value for the log sweep and return it."""
    PERSONAL_DATA.add(value)
    return value


def make_uscc(n: int, county_code: str = "513431") -> str:
    """A USCC of a farmers' co-op with a valid check character."""
    partial = f"93{county_code}TE{n:07d}"
    return partial + uscc.calc_check_digit(partial)


def make_id_number(county_code: str = "513431", *, born: date | None = None) -> str:
    """A fresh resident ID number with a valid birth date and check digit."""
    n = next(_serial)
    born = born or date(1950, 1, 1) + timedelta(days=97 * (n % 200))
    partial = f"{county_code}{born:%Y%m%d}{n // 200 % 1000:03d}"
    return remember(partial + ric.calc_check_digit(partial + "0"))


def make_bank_account() -> str:
    """A fresh 19-digit synthetic bank account number."""
    return remember(f"6217000{next(_serial):012d}")


class SupplierFactory(BaseFactory):
    """An active co-op in 昭觉县."""

    class Meta:
        model = Supplier

    kind = "cooperative"
    name = factory.Sequence(lambda n: f"测试合作社{n:03d}")
    uscc = factory.Sequence(make_uscc)
    county_code = "513431"


class HouseholdFactory(BaseFactory):
    """A household registered by (and so visible to) a supplier."""

    class Meta:
        model = Household
        exclude = ("supplier",)

    supplier = factory.SubFactory(SupplierFactory)
    registered_by_id = factory.SelfAttribute("supplier.id")
    code = factory.Sequence(lambda n: f"T{n:05d}")
    county_code = factory.SelfAttribute("supplier.county_code")
    head_name = factory.Sequence(lambda n: f"测试户甲{n:03d}")
    id_number = factory.LazyAttribute(lambda o: make_id_number(o.county_code))
    village = "测试村"
    members = 3
    consent_on = date(2026, 1, 5)
    consent_basis = "书面同意书（测试）"

    @factory.post_generation
    def linked(obj, create, extracted, **kwargs):
        """Let the registering supplier work with the household."""
        db.session.add(SupplierHousehold(supplier_id=obj.registered_by_id, household_id=obj.id))


class BenefitLinkFactory(BaseFactory):
    """A purchase link of a household with the supplier that registered it."""

    class Meta:
        model = BenefitLink

    household = factory.SubFactory(HouseholdFactory)
    supplier_id = factory.SelfAttribute("household.registered_by_id")
    kind = "purchase"
    valid_from = date(2026, 1, 1)


def household_payload(**overrides) -> dict:
    """A valid registration body with a fresh synthetic ID number (born in the body's county)."""
    n = next(_serial)
    id_number = overrides.get("id_number") or make_id_number(overrides.get("county_code") or "513431")
    body = {"code": f"R{n:05d}", "head_name": f"测试户乙{n:03d}", "id_number": id_number,
            "village": "测试村", "members": 4, "consent_on": "2026-01-05", "consent_basis": "书面同意书（测试）"}
    return {**body, **overrides}
