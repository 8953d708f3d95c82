"""The suppliers domain's error codes (the `code` of its JSON errors)."""
from __future__ import annotations

from enum import StrEnum


class SupplierCode(StrEnum):
    """The snake_case codes this domain raises."""

    ACCOUNT_CHANGE_REASON_REQUIRED = "account_change_reason_required"
    BANK_ACCOUNT_IN_USE = "bank_account_in_use"
    BENEFIT_LINK_BACKDATED = "benefit_link_backdated"
    BENEFIT_LINK_ENDED = "benefit_link_ended"
    BENEFIT_LINK_NOT_FOUND = "benefit_link_not_found"
    BENEFIT_LINK_OVERLAPS = "benefit_link_overlaps"
    COUNTY_NOT_RECIPIENT = "county_not_recipient"
    HASH_KEY_MISMATCH = "hash_key_mismatch"
    HOUSEHOLD_CODE_TAKEN = "household_code_taken"
    HOUSEHOLD_DEACTIVATED_BY_ADMIN = "household_deactivated_by_admin"
    HOUSEHOLD_EXISTS = "household_exists"
    HOUSEHOLD_INACTIVE = "household_inactive"
    HOUSEHOLD_NOT_FOUND = "household_not_found"
    HOUSEHOLD_READ_ONLY = "household_read_only"
    ID_NUMBER_LOOKUPS_EXHAUSTED = "id_number_lookups_exhausted"
    INVALID_BANK_ACCOUNT = "invalid_bank_account"
    INVALID_ID_NUMBER = "invalid_id_number"
    INVALID_USCC = "invalid_uscc"
    REVEAL_FORBIDDEN = "reveal_forbidden"
    REVEAL_REASON_REQUIRED = "reveal_reason_required"
    SUPPLIER_INACTIVE = "supplier_inactive"
    SUPPLIER_NAME_TAKEN = "supplier_name_taken"
    SUPPLIER_NOT_FOUND = "supplier_not_found"
    USCC_TAKEN = "uscc_taken"
