"""URL converters: `<int:…>` takes only ids a row can have; a bare `<name>` is a code in its one spelling; no path
segment holding what no identifier holds (a control character: `/regions/%00`) matches, on any database."""
from __future__ import annotations

from werkzeug.routing import BaseConverter, IntegerConverter, Map, UnicodeConverter, ValidationError

from shop.fields import MAX_ID, normalise_identifier, refused_in_identifiers

MAX_CODE_LENGTH = 64  # longer than any SKU, region or trace code


class IdConverter(IntegerConverter):
    """`<int:…>` in every route: 1 … 2³¹−1; anything else does not match, so it is a 404 like an unknown id."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = 1,  # noqa: A002 - werkzeug's names
                 max: int | None = MAX_ID, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)

    def to_python(self, value: str) -> int:
        """The id, or no match (also for digit strings too long to be one)."""
        if len(value) > len(str(self.max or MAX_ID)) + 1:
            raise ValidationError()
        return super().to_python(value)


class CodeConverter(BaseConverter):
    """A bare `<name>` in every route (SKUs, region and trace codes): one spelling, as `shop.fields` gives codes in
    bodies and queries (width-folded, invisible characters removed, trimmed, upper case), so `/p/ｚｊ-ｋｑｍ-１ｋｇ`
    shows the product `ZJ-KQM-1KG`; longer than any code, or holding what no identifier holds
    (`refused_in_identifiers`), it does not match (404). Case-sensitive ids use `<string:…>`."""

    def to_python(self, value: str) -> str:
        """The code in its one spelling, or no match."""
        if len(value) > MAX_CODE_LENGTH or refused_in_identifiers(value) is not None:
            raise ValidationError()
        return normalise_identifier(value, case="upper")


class StringConverter(UnicodeConverter):
    """`<string:…>` in every route (case-sensitive ids: a Stripe PaymentIntent's), kept as it is spelt; holding what
    no identifier holds (`refused_in_identifiers`), it does not match (404)."""

    def to_python(self, value: str) -> str:
        """The id, or no match."""
        if refused_in_identifiers(value) is not None:
            raise ValidationError()
        return value
