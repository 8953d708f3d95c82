"""Payout batches (DESIGN.md, "Balances may go negative"): built by a task from the payees' ledger balances,
exported as the bank's batch-transfer file, settled line by line as paid or failed."""
