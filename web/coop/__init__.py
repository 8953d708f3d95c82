"""The co-op portal: uploads, lots, households, statements and payout files."""
from web.coop.views import bp

__all__ = ["bp"]
