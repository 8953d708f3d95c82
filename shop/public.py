"""What public outputs (trace, disclosure, order and receipt impact) show of the households money reached
(DESIGN.md, "Public outputs")."""
from __future__ import annotations

MIN_HOUSEHOLDS = 3


def households_reached(households: int, attributed_fen: int) -> dict:
    """Households reached and the fen attributed to them: both (0 and 0 when none was reached yet), or for 1 or 2
    households only that they were fewer than 3 (`{"households": None, "fewer_than": 3}`, no amount)."""
    if 0 < households < MIN_HOUSEHOLDS:
        return withheld()
    return {"households": households, "attributed_fen": attributed_fen}


def withheld() -> dict:
    """The "fewer than 3 households" marker, with no count and no amount."""
    return {"households": None, "fewer_than": MIN_HOUSEHOLDS}
