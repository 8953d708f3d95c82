"""The one period every ledger read takes: Asia/Shanghai dates, `from` inclusive, `to` exclusive."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, validates_schema

from shop.fields import Date


class PeriodQuery(Schema):
    """`?from=&to=`: Asia/Shanghai dates, `from` inclusive, `to` exclusive; an empty period is a 422."""

    from_date = Date(data_key="from")
    to_date = Date(data_key="to")

    @validates_schema
    def _not_empty(self, data, **kwargs):
        """`to` comes after `from`."""
        if data.get("from_date") and data.get("to_date") and data["to_date"] <= data["from_date"]:
            raise ValidationError({"to": ["Must be after `from`: the period is empty."]})
