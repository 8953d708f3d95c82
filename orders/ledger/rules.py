"""The attribution rules of DESIGN.md as pure functions (no database): who gets what of one allocation.

An allocation of `k` units at unit price `p` has the amount `A = k·p`. Its split is a mapping
`(component, household id or None) → fen`: `platform_fee`, `store_commission` and `supplier`
have no household; `premium` and `dividend` name the household they go to, or None when the
pool goes to the supplier (a lot with no contributing households, a supplier with no
shareholders on the sale date). Parts of 0 fen are left out; the parts always sum to `A`.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

BP = 10000

Part = tuple[str, int | None]


@dataclass(frozen=True)
class Rates:
    """The agreement rates snapshotted on an order line, in basis points."""

    platform_fee_bp: int
    store_commission_bp: int
    household_premium_bp: int
    dividend_bp: int


@dataclass(frozen=True)
class Holder:
    """A household sharing a pool: its weight (contributed quantity or summed shares) and its tie-break key."""

    household_id: int
    weight: int
    county_code: str
    code: str


def largest_remainder(pool: int, holders: Iterable[Holder]) -> dict[int, int]:
    """Split `pool` fen over the holders in proportion to their weights: each the floor of its exact share,
    the fen left over one each to the largest fractional remainders, ties by (county code, registry code).

    Holders of one household are summed first; households of weight 0 get nothing. Empty result if no
    holder has weight (the caller sends the pool elsewhere)."""
    weights: dict[int, int] = {}
    keys: dict[int, tuple[str, str]] = {}
    for holder in holders:
        if holder.weight > 0:
            weights[holder.household_id] = weights.get(holder.household_id, 0) + holder.weight
            keys[holder.household_id] = (holder.county_code, holder.code)
    total = sum(weights.values())
    if total == 0:
        return {}
    shares = {hid: pool * weight // total for hid, weight in weights.items()}
    left = pool - sum(shares.values())
    ranked = sorted(weights, key=lambda hid: (-(pool * weights[hid] % total), keys[hid], hid))
    for hid in ranked[:left]:
        shares[hid] += 1
    return shares


def split_allocation(*, amount: int, rates: Rates, o2o: bool, contributors: Iterable[Holder],
                     shareholders: Iterable[Holder]) -> dict[Part, int]:
    """DESIGN.md's split of one allocation's amount: platform fee, store commission (O2O only), premium
    pool over the lot's contributors, dividend pool over the shareholders, the rest to the supplier."""
    platform = amount * rates.platform_fee_bp // BP
    store = amount * rates.store_commission_bp // BP if o2o else 0
    premium = amount * rates.household_premium_bp // BP
    dividend = amount * rates.dividend_bp // BP
    parts: dict[Part, int] = {("platform_fee", None): platform, ("store_commission", None): store,
                              ("supplier", None): amount - platform - store - premium - dividend}
    for component, pool, holders in (("premium", premium, contributors), ("dividend", dividend, shareholders)):
        shares = largest_remainder(pool, holders)
        if shares:
            for hid, fen in shares.items():
                parts[(component, hid)] = fen
        else:
            parts[(component, None)] = pool
    return {part: fen for part, fen in parts.items() if fen}


def difference(old: Mapping[Part, int], new: Mapping[Part, int]) -> dict[Part, int]:
    """What a refund takes back: `old − new` per part, parts of 0 left out."""
    result = {part: old.get(part, 0) - new.get(part, 0) for part in set(old) | set(new)}
    return {part: fen for part, fen in result.items() if fen}


def refund_difference(*, old_units: int, new_units: int, unit_price: int, rates: Rates, o2o: bool,
                      contributors: Iterable[Holder], shareholders: Iterable[Holder]) -> dict[Part, int]:
    """The reversal of an allocation whose remaining units go from `old_units` to `new_units`: the split of
    the old remaining amount minus the split of the new one (both on the sale date's holders)."""
    contributors, shareholders = list(contributors), list(shareholders)
    old = split_allocation(amount=old_units * unit_price, rates=rates, o2o=o2o, contributors=contributors,
                           shareholders=shareholders)
    new = split_allocation(amount=new_units * unit_price, rates=rates, o2o=o2o, contributors=contributors,
                           shareholders=shareholders)
    return difference(old, new)
