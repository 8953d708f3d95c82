"""Ledger command: verify the balance and the hash chain, as `GET /api/v1/ledger/verify` does."""
from __future__ import annotations

import click

from orders.ledger.verify import verify_ledger


@click.command("verify-ledger")
@click.option("--expect-seq", type=click.IntRange(min=1), help="An earlier verification's head seq (the anchor).")
@click.option("--expect-hash", help="An earlier verification's head hash: the entry at that seq must still have it.")
def verify_ledger_command(expect_seq: int | None, expect_hash: str | None) -> None:
    """Check every ledger transaction balances and the hash chain is intact (and, given an anchor from an earlier
    verification, that its entry still has its hash), with a progress bar (after any verification running now);
    print the head to keep as the next anchor; exit 1 naming the first bad one."""
    if (expect_seq is None) != (expect_hash is None):
        raise click.UsageError("Give --expect-seq and --expect-hash together: an earlier verification's head.")
    anchor = None if expect_seq is None else (expect_seq, expect_hash.strip().lower())
    with click.progressbar(length=1, label="verifying the ledger") as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        result = verify_ledger(progress=progress, expect=anchor)
    click.echo(f"ledger: {result['transactions']} transactions, "
               f"balanced: {'yes' if result['balanced'] else 'NO'}, "
               f"chain intact: {'yes' if result['chain_intact'] else 'NO'}, "
               f"accounts intact: {'yes' if result['accounts_intact'] else 'NO'}")
    if anchor is not None:
        click.echo(f"anchor: the entry at seq {expect_seq} "
                   f"{'has' if result['anchor_intact'] else 'does NOT have'} the expected hash")
    click.echo(f"head: seq {result['head_seq']}, hash {result['head_hash']}")
    if not result["ok"]:
        found = [f"first bad transaction: {result['first_bad_id']}" if result["first_bad_id"] is not None else "",
                 f"first bad account: {result['first_bad_account']}" if result["first_bad_account"] else "",
                 f"the entry at seq {expect_seq} does not have the expected hash" if result["anchor_intact"] is False
                 else ""]
        raise click.ClickException("; ".join(text for text in found if text))
