"""The catalog domain's error codes (the `code` of its JSON errors)."""
from __future__ import annotations

from enum import StrEnum


class CatalogCode(StrEnum):
    """The snake_case codes this domain raises."""

    ACTIVATION_ADMIN_ONLY = "activation_admin_only"
    BELOW_RESERVED = "below_reserved"
    CERTIFICATE_ADMIN_ONLY = "certificate_admin_only"
    HOUSEHOLD_NOT_LINKED = "household_not_linked"
    HOUSEHOLD_TWICE_IN_LOT = "household_twice_in_lot"
    INSUFFICIENT_STOCK = "insufficient_stock"
    INVALID_RATES = "invalid_rates"
    LOCATION_CODE_TAKEN = "location_code_taken"
    LOCATION_NOT_FOUND = "location_not_found"
    LOCATION_NOT_WAREHOUSE = "location_not_warehouse"
    LOT_CODE_TAKEN = "lot_code_taken"
    LOT_NOT_FOUND = "lot_not_found"
    LOT_NOT_HELD_HERE = "lot_not_held_here"
    LOT_QUANTITY_EXCEEDED = "lot_quantity_exceeded"
    MEASURE_FIXED = "measure_fixed"
    PRODUCT_NAME_TAKEN = "product_name_taken"
    PRODUCT_NOT_FOUND = "product_not_found"
    ORIGIN_ADMIN_ONLY = "origin_admin_only"
    ORIGIN_FIXED = "origin_fixed"
    RATES_ADMIN_ONLY = "rates_admin_only"
    RESERVATION_NOT_HELD = "reservation_not_held"
    SKU_TAKEN = "sku_taken"
    TRACE_CODE_NOT_FOUND = "trace_code_not_found"
    UPLOAD_NOT_FOUND = "upload_not_found"
