"""The attribution rules (orders/ledger/rules.py) against an independent oracle written from DESIGN.md.

The oracle below is deliberately a different implementation: exact fractions for each share, dividend
links summed per household by the oracle itself, and the refund walk done unit by unit over the
allocations in reverse order. The code under test must agree with it on every drawn case.
"""
from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orders.ledger.rules import Holder, Rates, largest_remainder, refund_difference, split_allocation

# --- the oracle (DESIGN.md, "Money and attribution rules") -----------------------------------------


def oracle_largest_remainder(pool, households):
    """households: [(hid, county, code, weight)] with one row per household; → {hid: fen}."""
    total = sum(weight for *_, weight in households)
    exact = {hid: Fraction(pool * weight, total) for hid, _county, _code, weight in households}
    given_ = {hid: math.floor(share) for hid, share in exact.items()}
    leftover = pool - sum(given_.values())
    order = sorted(households, key=lambda h: (-(exact[h[0]] - given_[h[0]]), h[1], h[2]))
    for hid, *_ in order[:leftover]:
        given_[hid] += 1
    return given_


def oracle_split(amount, rates, o2o, contributions, links):
    """contributions: [(hid, county, code, quantity)]; links: [(hid, county, code, shares)] possibly several per
    household; → Counter of party → fen, parties 'platform', 'store', 'supplier', ('premium'|'dividend', hid)."""
    platform_fee_bp, store_bp, premium_bp, dividend_bp = rates
    out = Counter()
    out["platform"] += amount * platform_fee_bp // 10000
    out["store"] += amount * store_bp // 10000 if o2o else 0
    premium = amount * premium_bp // 10000
    dividend = amount * dividend_bp // 10000
    out["supplier"] += amount - out["platform"] - out["store"] - premium - dividend
    if contributions:
        for hid, fen in oracle_largest_remainder(premium, contributions).items():
            out[("premium", hid)] += fen
    else:
        out["supplier"] += premium
    summed = {}
    for hid, county, code, shares in links:
        previous = summed.get(hid, (hid, county, code, 0))
        summed[hid] = (hid, county, code, previous[3] + shares)
    if summed:
        for hid, fen in oracle_largest_remainder(dividend, list(summed.values())).items():
            out[("dividend", hid)] += fen
    else:
        out["supplier"] += dividend
    return +out


def as_oracle_parties(parts):
    """The code's split in the oracle's terms (premium or dividend to the supplier is the supplier's)."""
    out = Counter()
    names = {"platform_fee": "platform", "store_commission": "store", "supplier": "supplier"}
    for (component, hid), fen in parts.items():
        out[names.get(component, "supplier") if hid is None else (component, hid)] += fen
    return +out


# --- strategies ---------------------------------------------------------------------------------------

COUNTIES = ["513431", "513432", "513433"]


@st.composite
def rate_sets(draw):
    """Four basis-point rates summing to at most 10000 (cut points of 0..10000)."""
    cuts = sorted(draw(st.lists(st.integers(0, 10000), min_size=4, max_size=4)))
    return (cuts[0], cuts[1] - cuts[0], cuts[2] - cuts[1], cuts[3] - cuts[2])


@st.composite
def households(draw, *, max_size=6):
    """Households with distinct (county, registry code), small weights so that ties are common."""
    keys = draw(st.lists(st.tuples(st.sampled_from(COUNTIES), st.sampled_from(["A01", "A02", "B01", "B02", "C9"])),
                         unique=True, max_size=max_size))
    weight = st.one_of(st.sampled_from([1, 2, 3]), st.integers(1, 10**6))
    return [(100 + i, county, code, draw(weight)) for i, (county, code) in enumerate(keys)]


@st.composite
def dividend_links(draw, holders):
    """One or more dividend links per shareholder (their shares are summed)."""
    links = []
    for hid, county, code, _ in holders:
        for _ in range(draw(st.integers(1, 3))):
            links.append((hid, county, code, draw(st.integers(1, 50))))
    return links


def holders_of(rows):
    """The code's holders from oracle rows."""
    return [Holder(hid, weight, county, code) for hid, county, code, weight in rows]


amounts = st.one_of(st.integers(0, 1000), st.integers(0, 100_000_000 * 1000))


# --- fixed cases computed by hand ---------------------------------------------------------------------

def test_a_worked_example():
    """¥100.00 at 5% fee, 3% commission, 10% premium, 2% dividend; premium over 1:1:1, dividend 2:1."""
    parts = split_allocation(
        amount=10000, rates=Rates(500, 300, 1000, 200), o2o=True,
        contributors=[Holder(1, 1, "513431", "B"), Holder(2, 1, "513431", "A"), Holder(3, 1, "513430", "Z")],
        shareholders=[Holder(4, 2, "513431", "X"), Holder(5, 1, "513431", "Y")])
    # premium 1000 → 333.33 each: one fen left, to the smallest (county, code): household 3 (county 513430)
    # dividend 200 → 133.33 / 66.67: the larger remainder (.67) is household 5's
    assert parts == {("platform_fee", None): 500, ("store_commission", None): 300, ("supplier", None): 8000,
                     ("premium", 3): 334, ("premium", 2): 333, ("premium", 1): 333,
                     ("dividend", 4): 133, ("dividend", 5): 67}


def test_delivery_pays_no_store_commission_and_empty_pools_go_to_the_supplier():
    """Delivery: no commission; no contributors and no shareholders: both pools are the supplier's."""
    parts = split_allocation(amount=999, rates=Rates(333, 3000, 1000, 500), o2o=False, contributors=[],
                             shareholders=[])
    assert parts == {("platform_fee", None): 33, ("premium", None): 99, ("dividend", None): 49,
                     ("supplier", None): 818}


def test_ties_go_by_county_then_registry_code():
    """Equal remainders: (county code, registry code) ascending decides, not the household id."""
    shares = largest_remainder(2, [Holder(1, 1, "513432", "A"), Holder(2, 1, "513431", "B"),
                                   Holder(3, 1, "513431", "A")])
    assert shares == {3: 1, 2: 1, 1: 0}


def test_refund_difference_takes_back_exactly_the_units_share():
    """Refunding 1 of 3 units at 10 fen with a 50% premium over two equal households: 15 → 10."""
    parts = refund_difference(old_units=3, new_units=2, unit_price=10, rates=Rates(0, 0, 5000, 0), o2o=False,
                              contributors=[Holder(1, 1, "513431", "A"), Holder(2, 1, "513431", "B")],
                              shareholders=[])
    # old: pool 15 → 8/7, supplier 15; new: pool 10 → 5/5, supplier 10
    assert parts == {("premium", 1): 3, ("premium", 2): 2, ("supplier", None): 5}


# --- properties ---------------------------------------------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(data=st.data(), amount=amounts, rates=rate_sets(), o2o=st.booleans())
def test_split_conserves_and_matches_the_oracle(data, amount, rates, o2o):
    """The parts sum exactly to A, none is negative, and each party gets what the oracle gives."""
    contributors = data.draw(households())
    holders = data.draw(households())
    links = data.draw(dividend_links(holders))
    parts = split_allocation(amount=amount, rates=Rates(*rates), o2o=o2o, contributors=holders_of(contributors),
                             shareholders=[Holder(hid, shares, county, code) for hid, county, code, shares in links])
    assert sum(parts.values()) == amount
    assert all(fen > 0 for fen in parts.values())
    assert as_oracle_parties(parts) == oracle_split(amount, rates, o2o, contributors, links)


@settings(max_examples=300, deadline=None)
@given(pool=st.integers(0, 10**9), data=st.data())
def test_largest_remainder_matches_the_oracle(pool, data):
    """Each household gets the floor of its exact share or one fen more, and the shares sum to the pool."""
    rows = data.draw(households(max_size=12).filter(bool))
    shares = largest_remainder(pool, holders_of(rows))
    assert sum(shares.values()) == pool
    assert {hid: fen for hid, fen in shares.items()} == oracle_largest_remainder(pool, rows)


def _account_totals(parts_list):
    """Sum of several splits / differences per part."""
    total = Counter()
    for parts in parts_list:
        for part, fen in parts.items():
            total[part] += fen
    return total


@settings(max_examples=200, deadline=None)
@given(data=st.data(), price=st.integers(0, 10**6), rates=rate_sets(), o2o=st.booleans())
def test_after_any_refund_sequence_every_account_holds_the_attribution_of_what_is_still_sold(
        data, price, rates, o2o):
    """A multi-lot line paid, then refunded in random steps (units off the allocations in reverse order):
    paid minus every refund difference equals the split of the units still sold; a full refund leaves 0."""
    units = data.draw(st.lists(st.integers(1, 20), min_size=1, max_size=3))  # k_a per allocation
    lots = [data.draw(households()) for _ in units]
    holders = data.draw(households())
    links = data.draw(dividend_links(holders))
    shareholders = [Holder(hid, shares, county, code) for hid, county, code, shares in links]

    def split(k, lot):
        return split_allocation(amount=k * price, rates=Rates(*rates), o2o=o2o, contributors=holders_of(lot),
                                shareholders=shareholders)

    ledger = _account_totals(split(k, lot) for k, lot in zip(units, lots, strict=True))
    remaining = list(units)
    steps = data.draw(st.lists(st.integers(1, sum(units)), max_size=5))
    full = data.draw(st.booleans())
    if full:
        steps.append(sum(units))
    for step in steps:
        left = min(step, sum(remaining))
        for i in reversed(range(len(remaining))):  # reverse allocation order, unit by unit
            while left and remaining[i]:
                taken = min(left, remaining[i])
                reversal = refund_difference(old_units=remaining[i], new_units=remaining[i] - taken,
                                             unit_price=price, rates=Rates(*rates), o2o=o2o,
                                             contributors=holders_of(lots[i]), shareholders=shareholders)
                assert sum(reversal.values()) == taken * price
                ledger.subtract(reversal)
                remaining[i] -= taken
                left -= taken
        expected = _account_totals(split(k, lot) for k, lot in zip(remaining, lots, strict=True) if k)
        assert +ledger == +expected and -ledger == Counter()
        oracle = Counter()
        for k, lot in zip(remaining, lots, strict=True):
            oracle.update(oracle_split(k * price, rates, o2o, lot, links))
        assert as_oracle_parties(+ledger) == +oracle
    if full:
        assert not +ledger and not -ledger


@pytest.mark.parametrize("pool,weights,expected", [
    (0, [5, 5], {1: 0, 2: 0}),
    (1, [1, 2], {1: 0, 2: 1}),          # remainders 1/3 and 2/3
    (7, [1, 1, 1, 1], {1: 2, 2: 2, 3: 2, 4: 1}),  # equal remainders: by registry code A, B, C first
])
def test_largest_remainder_small_cases(pool, weights, expected):
    """Hand-checked splits."""
    holders = [Holder(i + 1, w, "513431", "ABCD"[i]) for i, w in enumerate(weights)]
    assert largest_remainder(pool, holders) == expected


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_random_cart_is_attributed_in_full_and_as_the_oracle_says(data):
    """Several lines (own price and rates, one or more lot allocations each): every fen of the cart's total
    lands in exactly one part, and each party's total over the cart equals the oracle's."""
    cart_total, code_total, oracle_total = 0, Counter(), Counter()
    holders = data.draw(households())
    links = data.draw(dividend_links(holders))
    for _ in range(data.draw(st.integers(1, 4))):
        price, rates, o2o = data.draw(st.integers(0, 10**6)), data.draw(rate_sets()), data.draw(st.booleans())
        for k in data.draw(st.lists(st.integers(1, 50), min_size=1, max_size=3)):
            lot = data.draw(households())
            cart_total += k * price
            code_total.update(as_oracle_parties(split_allocation(
                amount=k * price, rates=Rates(*rates), o2o=o2o, contributors=holders_of(lot),
                shareholders=[Holder(hid, shares, county, code) for hid, county, code, shares in links])))
            oracle_total.update(oracle_split(k * price, rates, o2o, lot, links))
    assert sum(code_total.values()) == cart_total
    assert +code_total == +oracle_total
