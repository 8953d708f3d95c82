"""Ledger command: verify the balance and the hash chain, as `GET /api/v1/ledger/verify` does."""
from __future__ import annotations

import click

from orders.ledger.verify import verify_ledger


@click.command("verify-ledger")
def verify_ledger_command() -> None:
    """Check every ledger transaction balances and the hash chain is intact; exit 1 naming the first bad one."""
    result = verify_ledger()
    click.echo(f"ledger: {result['transactions']} transactions, "
               f"balanced: {'yes' if result['balanced'] else 'NO'}, "
               f"chain intact: {'yes' if result['chain_intact'] else 'NO'}")
    if not result["ok"]:
        raise click.ClickException(f"first bad transaction: {result['first_bad_id']}")
