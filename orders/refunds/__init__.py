"""Refunds (staff, admin, after-sales, and those made at the payment provider) and after-sales requests."""
