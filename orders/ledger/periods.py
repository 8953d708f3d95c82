"""A month argument of the ledger's reads (their period is `shop.pagination.PeriodQuery`)."""
from __future__ import annotations

from shop.fields import MAX_MOMENT_INPUT, Date, folded


class Month(Date):
    """`YYYY-MM` (digits and dash in any width), read only: a month, loaded as its first day."""

    default_error_messages = {"invalid": "Not a month: write it as 2026-10."}

    def __init__(self, **kwargs):
        metadata = {"format": "month", "pattern": "^[0-9]{4}-[0-9]{2}$", "example": "2026-10",
                    **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = folded(value)  # trimmed and folded as a date is, so a trailing space is no more than a leading one
        if not isinstance(value, str) or len(value) > MAX_MOMENT_INPUT or value.count("-") != 1:
            raise self.make_error("invalid")
        return super()._deserialize(f"{value}-01", attr, data, **kwargs)
