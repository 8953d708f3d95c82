"""The ledger's error codes (the `code` of its JSON errors)."""
from __future__ import annotations

from enum import StrEnum


class LedgerCode(StrEnum):
    """The snake_case codes this domain raises."""

    ACCOUNT_NOT_FOUND = "account_not_found"
    BANK_FILE_FORBIDDEN = "bank_file_forbidden"
    DISCLOSURE_BEFORE_FIRST_MONTH = "disclosure_before_first_month"
    DISCLOSURE_NOT_PUBLISHED = "disclosure_not_published"
    ILLEGAL_PAYOUT_TRANSITION = "illegal_payout_transition"
    LEDGER_TRANSACTION_NOT_FOUND = "ledger_transaction_not_found"
    NOTHING_TO_PAY = "nothing_to_pay"
    PAYEE_ACCOUNT_CHANGED = "payee_account_changed"
    PAYOUT_BATCH_IN_PROGRESS = "payout_batch_in_progress"
    PAYOUT_BATCH_NOT_FOUND = "payout_batch_not_found"
    PAYOUT_BATCH_NOT_READY = "payout_batch_not_ready"
    PAYOUT_LINE_NOT_FOUND = "payout_line_not_found"
    REMITTANCE_DATE_OUT_OF_RANGE = "remittance_date_out_of_range"
    REMITTANCE_EXCEEDS_CASH_HELD = "remittance_exceeds_cash_held"
    REMITTANCE_NOT_FOUND = "remittance_not_found"
    REMITTANCE_REFERENCE_USED = "remittance_reference_used"
    VERIFICATION_NOT_FOUND = "verification_not_found"
    VERIFICATION_RUNNING = "verification_running"
