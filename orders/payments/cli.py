"""Payments commands: failed payment events queued again once their cause (a refused API key, a bug) is fixed."""
from __future__ import annotations

import getpass
import logging

import click
from flask.cli import AppGroup

from orders.payments.service import requeue_failed_events
from shop.cli import ID
from shop.clock import shanghai_midnight
from shop.db import db
from shop.fields import DATE_RANGE_ERROR, EARLIEST_DATE, LATEST_DATE

log = logging.getLogger(__name__)

payments_cli = AppGroup("payments", help="Payment events.")
SHOWN_IDS = 20  # the most event ids the audit line names; the count is always whole


def _operator() -> str:
    """Who runs the command: the operating system's user name, as the audit line names it."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment nor the password database
        return "unknown"


@payments_cli.command("requeue-failed")
@click.option("--event-id", type=ID, help="Only this stored event (its row id).")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Only events that failed on or after this Asia/Shanghai date (YYYY-MM-DD).")
def requeue_failed_command(event_id, since):
    """Put failed payment events back to pending, attempts reset, and wake the drain to process them (safe to run
    twice, or while the workers run); the requeue is logged with who ran it and how many."""
    if since is not None and not EARLIEST_DATE <= since.date() <= LATEST_DATE:
        raise click.BadParameter(DATE_RANGE_ERROR, param_hint="--since")
    start = shanghai_midnight(since.date()) if since is not None else None
    requeued = requeue_failed_events(event_id=event_id, since=start)
    db.session.commit()
    shown = ", ".join(map(str, requeued[:SHOWN_IDS])) + (", …" if len(requeued) > SHOWN_IDS else "")
    log.warning("payment events requeued by %s (payments requeue-failed, event id %s, since %s): %d (%s)",
                _operator(), event_id or "any", since.date() if since else "any", len(requeued), shown or "none")
    click.echo(f"{len(requeued)} failed payment events requeued" + (f": {shown}" if requeued else ""))
