"""Ledger command: verify the balance and the hash chain, as `GET /api/v1/ledger/verify` does."""
from __future__ import annotations

import click

from orders.ledger.verify import verify_ledger


@click.command("verify-ledger")
def verify_ledger_command() -> None:
    """Check every ledger transaction balances and the hash chain is intact, with a progress bar (after any
    verification running now); exit 1 naming the first bad one."""
    with click.progressbar(length=1, label="verifying the ledger") as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        result = verify_ledger(progress=progress)
    click.echo(f"ledger: {result['transactions']} transactions, "
               f"balanced: {'yes' if result['balanced'] else 'NO'}, "
               f"chain intact: {'yes' if result['chain_intact'] else 'NO'}, "
               f"accounts intact: {'yes' if result['accounts_intact'] else 'NO'}")
    if not result["ok"]:
        found = [f"first bad transaction: {result['first_bad_id']}" if result["first_bad_id"] is not None else "",
                 f"first bad account: {result['first_bad_account']}" if result["first_bad_account"] else ""]
        raise click.ClickException("; ".join(text for text in found if text))
