"""The demo world of this domain: two co-ops with synthetic households, links and a user each."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from stdnum.cn import ric, uscc

from shop import crypto
from shop.auth.models import User
from shop.auth.service import create_user
from shop.db import db
from suppliers import service
from suppliers.models import BenefitLink, Household, Supplier

HOUSEHOLDS_PER_COOP = 40
LINKS_FROM = date(2026, 1, 1)
CONSENT_ON = date(2025, 12, 15)
ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


@dataclass(frozen=True)
class DemoCoop:
    """One demo co-operative and the shape of its synthetic households."""

    number: int
    name: str
    county_code: str
    tag: str
    username: str
    villages: tuple[str, ...]
    dividend_every: int


COOPS = (
    DemoCoop(1, "昭觉县苦荞种植专业合作社（演示）", "513431", "ZJ", "coop-zhaojue",
             ("三河村", "火普村", "解放沟村", "四开村"), 4),
    DemoCoop(2, "雷波县脐橙种植专业合作社（演示）", "513437", "LB", "coop-leibo",
             ("黄琅村", "马湖村", "箐口村", "金沙村"), 5),
)


def _org_code(body: str) -> str:
    """An 8-character organisation code body with its GB 11714 check character."""
    total = sum(int(char, 36) * weight for char, weight in zip(body, ORG_CODE_WEIGHTS, strict=True))
    check = 11 - total % 11
    return body + {10: "X", 11: "0"}.get(check, str(check))


def synthetic_uscc(county_code: str, number: int) -> str:
    """A farmers' co-op USCC (authority 9, type 3) with valid organisation-code and final check characters."""
    partial = "93" + county_code + _org_code(f"MA99{number:04d}")
    return partial + uscc.calc_check_digit(partial)


def synthetic_id_number(county_code: str, number: int) -> str:
    """A resident ID number with a valid birth date and check digit, for synthetic person `number`."""
    born = date(1950 + number, 1 + number % 12, 1 + number % 28)
    partial = f"{county_code}{born:%Y%m%d}{number:03d}"
    return partial + ric.calc_check_digit(partial + "0")


def _coop_supplier(coop: DemoCoop) -> tuple[Supplier, bool]:
    """The co-op's supplier, created if missing; and whether it was created."""
    code = synthetic_uscc(coop.county_code, coop.number)
    supplier = db.session.scalar(select(Supplier).where(Supplier.uscc == code))
    if supplier is not None:
        return supplier, False
    return service.create_supplier(name=coop.name, kind="cooperative", uscc=code, county_code=coop.county_code,
                                   contact="演示联系人", bank_account=f"6228{coop.county_code}{coop.number:09d}"), True


def _household(coop: DemoCoop, supplier: Supplier, n: int) -> tuple[Household, bool]:
    """Synthetic household `n` of the co-op, registered if missing; and whether it was registered."""
    id_number = synthetic_id_number(coop.county_code, n)
    household = db.session.scalar(select(Household).where(
        Household.id_number_hash == crypto.lookup_hash(id_number)))
    if household is not None:
        return household, False
    return service.register_household(
        supplier_id=supplier.id, supplier_scope=None, code=f"DEMO-{coop.tag}-{n:03d}",
        head_name=f"演示农户{coop.tag}{n:03d}", id_number=id_number, village=coop.villages[n % len(coop.villages)],
        members=1 + n % 6, consent_on=CONSENT_ON, consent_basis="书面知情同意书（演示数据）",
        bank_account=f"6217{coop.county_code}{n:09d}" if n % 2 else None), True


def _ensure_link(supplier: Supplier, household: Household, kind: str, shares: int | None) -> int:
    """Create the household's link of `kind` unless it has one; 1 if created, else 0."""
    has_link = db.session.scalar(select(BenefitLink.id).where(
        BenefitLink.supplier_id == supplier.id, BenefitLink.household_id == household.id, BenefitLink.kind == kind))
    if has_link is not None:
        return 0
    service.create_benefit_link(supplier_id=supplier.id, supplier_scope=None, household_code=household.code,
                                kind=kind, shares=shares, valid_from=LINKS_FROM)
    return 1


def _coop_user(coop: DemoCoop, supplier: Supplier) -> str:
    """Create the co-op's user if missing; the line to print (its new password, once)."""
    if db.session.scalar(select(User.id).where(User.username == coop.username)) is not None:
        return f"user {coop.username} (coop) exists; password unchanged"
    password = secrets.token_urlsafe(9)
    create_user(username=coop.username, password=password, role="coop", supplier_id=supplier.id)
    return f"user {coop.username} (coop of supplier {supplier.id}) password: {password}"


def seed_demo() -> list[str]:
    """Create the demo co-ops, households, benefit links and co-op users that are missing."""
    lines = []
    for coop in COOPS:
        supplier, created = _coop_supplier(coop)
        households = links = 0
        for n in range(1, HOUSEHOLDS_PER_COOP + 1):
            household, registered = _household(coop, supplier, n)
            households += registered
            links += _ensure_link(supplier, household, "purchase", None)
            if n % coop.dividend_every == 0:
                links += _ensure_link(supplier, household, "dividend", 1 + n % 3)
        state = "created" if created else "exists"
        lines.append(f"supplier {supplier.id} {supplier.name} {state}: "
                     f"{households} households and {links} benefit links added")
        lines.append(_coop_user(coop, supplier))
    return lines
