"""The one period every ledger read takes: Asia/Shanghai dates, `from` inclusive, `to` exclusive."""
from __future__ import annotations

from datetime import date

from marshmallow import Schema, ValidationError, validate, validates_schema

from shop.fields import Date

EARLIEST, LATEST = date(2000, 1, 1), date(9999, 12, 31)  # a period's bounds are real Asia/Shanghai midnights


class PeriodQuery(Schema):
    """`?from=&to=`: Asia/Shanghai dates, `from` inclusive, `to` exclusive; an empty period is a 422."""

    from_date = Date(data_key="from", validate=validate.Range(min=EARLIEST, max=LATEST))
    to_date = Date(data_key="to", validate=validate.Range(min=EARLIEST, max=LATEST))

    @validates_schema
    def _not_empty(self, data, **kwargs):
        """`to` comes after `from`."""
        if data.get("from_date") and data.get("to_date") and data["to_date"] <= data["from_date"]:
            raise ValidationError({"to": ["Must be after `from`: the period is empty."]})
