"""URL converters: the app-wide `int` converter accepts only ids a row can have."""
from __future__ import annotations

from werkzeug.routing import IntegerConverter, Map, ValidationError

from shop.fields import MAX_ID


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
