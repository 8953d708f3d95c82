"""The counter till for store staff."""
from web.till.views import bp

__all__ = ["bp"]
