"""The one period every ledger read takes: Asia/Shanghai dates, `from` inclusive, `to` exclusive."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, validates_schema

from shop.fields import MAX_MOMENT_INPUT, Date


class PeriodQuery(Schema):
    """`?from=&to=`: Asia/Shanghai dates, `from` inclusive, `to` exclusive; an empty period is a 422."""

    from_date = Date(data_key="from")
    to_date = Date(data_key="to")

    @validates_schema
    def _not_empty(self, data, **kwargs):
        """`to` comes after `from`."""
        if data.get("from_date") and data.get("to_date") and data["to_date"] <= data["from_date"]:
            raise ValidationError({"to": ["Must be after `from`: the period is empty."]})


class Month(Date):
    """`YYYY-MM` (digits and dash in any width), read only: a month, loaded as its first day."""

    default_error_messages = {"invalid": "Not a month: write it as 2026-10."}

    def __init__(self, **kwargs):
        metadata = {"format": "month", "pattern": "^[0-9]{4}-[0-9]{2}$", "example": "2026-10",
                    **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or len(value) > MAX_MOMENT_INPUT or value.count("-") + value.count("－") != 1:
            raise self.make_error("invalid")
        return super()._deserialize(f"{value}-01", attr, data, **kwargs)
