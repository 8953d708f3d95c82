"""The shop's calendar: every business date (harvests, consents, sale dates, reports) is a date in Asia/Shanghai."""
from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def today() -> date:
    """Today's date in Asia/Shanghai, the date every business rule uses."""
    return datetime.now(SHANGHAI).date()


def shanghai_midnight(day: date) -> datetime:
    """The moment an Asia/Shanghai date begins."""
    return datetime.combine(day, time.min, tzinfo=SHANGHAI)
