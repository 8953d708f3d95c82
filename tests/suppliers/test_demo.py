"""The demo world: two co-ops with synthetic households, links and users; rerunning adds nothing."""
from __future__ import annotations

import re

from sqlalchemy import func, select
from stdnum.cn import ric, uscc

from shop.db import db
from suppliers.demo import seed_demo
from suppliers.models import BenefitLink, Household, Supplier
from tests.shop.test_auth import sign_in
from tests.suppliers.factories import remember


def _counts() -> tuple[int, int, int]:
    """Suppliers, households and benefit links in the database."""
    return tuple(db.session.scalar(select(func.count()).select_from(model)) for model in (Supplier, Household,
                                                                                          BenefitLink))


def test_the_demo_world_has_two_coops_with_synthetic_households_and_is_idempotent(client):
    lines = seed_demo()
    db.session.commit()
    households = db.session.scalars(select(Household)).all()
    for household in households:
        remember(household.id_number)
        if household.bank_account:
            remember(household.bank_account)
    suppliers = {s.county_code: s for s in db.session.scalars(select(Supplier))}
    assert set(suppliers) == {"513431", "513437"} and all(uscc.is_valid(s.uscc) for s in suppliers.values())
    for county, supplier in suppliers.items():
        own = [h for h in households if h.registered_by_id == supplier.id]
        assert len(own) == 40 and {h.county_code for h in own} == {county}
        assert all(ric.is_valid(h.id_number) and h.head_name.startswith("演示农户") for h in own)
        purchase = db.session.scalars(select(BenefitLink.household_id).where(
            BenefitLink.supplier_id == supplier.id, BenefitLink.kind == "purchase")).all()
        assert sorted(purchase) == sorted(h.id for h in own)
        dividends = db.session.scalars(select(BenefitLink.shares).where(
            BenefitLink.supplier_id == supplier.id, BenefitLink.kind == "dividend")).all()
        assert 0 < len(dividends) < 40 and all(shares > 0 for shares in dividends)

    output = "\n".join(lines)
    password = re.search(r"user coop-leibo \(coop of supplier \d+\) password: (\S+)", output).group(1)
    token = sign_in(client, "coop-leibo", password).json["access_token"]
    listed = client.get(f"/api/v1/suppliers/{suppliers['513437'].id}/households?limit=100",
                        headers={"Authorization": f"Bearer {token}"}).json["items"]
    assert len(listed) == 40 and all("*" in h["id_number"] for h in listed)

    before = _counts()
    again = seed_demo()
    db.session.commit()
    assert _counts() == before
    assert not any("password:" in line for line in again)
    assert all("0 households and 0 benefit links added" in line for line in again if line.startswith("supplier"))
