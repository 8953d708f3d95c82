"""Partial updates as typed values: a PATCH's service says in its signature what it may change."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


class _Unset:
    """The value of a field a PATCH did not send (`None` may be a value sent: "clear it")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True, kw_only=True)
class Changes:
    """The base of a PATCH's changes: each field its new value, or `UNSET` when not sent."""

    def given(self) -> dict[str, Any]:
        """The fields sent, with their new values."""
        return {field.name: getattr(self, field.name) for field in fields(self)
                if getattr(self, field.name) is not UNSET}
