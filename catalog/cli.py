"""Catalog commands: import an inventory file with a progress bar."""
from __future__ import annotations

import os

import click
from flask import current_app

from catalog import uploads
from catalog.tasks import run_import
from shop.cli import ID
from shop.db import db
from shop.errors import AppError


@click.command("import-inventory")
@click.argument("supplier_id", type=ID)
@click.argument("file", type=click.File("rb"))
def import_inventory_command(supplier_id: int, file) -> None:
    """Import a co-op's inventory file (CSV or XLSX) for SUPPLIER_ID, all or nothing."""
    max_bytes = current_app.config["INVENTORY_UPLOAD_MAX_BYTES"]
    try:  # a byte over the limit is enough to refuse the file: the rest is never read
        upload, created = uploads.submit_upload(
            actor=None, supplier_id=supplier_id, filename=os.path.basename(file.name), data=file.read(max_bytes + 1),
            max_bytes=max_bytes, queue_import=False)
    except AppError as exc:
        raise click.ClickException(exc.message) from exc
    db.session.commit()
    if not created and upload.status == "succeeded":
        click.echo(f"This file was uploaded before as upload {upload.id} ({upload.status}); nothing to do.")
        return
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=max(total, 1), label=f"upload {upload.id}: importing rows")
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        result = run_import(upload.id, progress=progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if result is None:
        raise click.ClickException(f"upload {upload.id} is being imported elsewhere")
    if result.status == "succeeded":
        click.echo(f"upload {result.id}: {result.rows_total} rows imported into {result.lots_created} lots")
        return
    for error in result.errors:
        click.echo(_where(error) + error["message"], err=True)
    raise click.ClickException(f"upload {result.id} failed with {len(result.errors)} error(s); nothing imported")


def _where(error: dict) -> str:
    """Where an import error is, as `row 2, 存放地点: `; the parts a file-level error lacks are left out."""
    parts = [f"row {error['row']}" if error["row"] is not None else None, error["column"]]
    return ", ".join(part for part in parts if part) + ": " if any(parts) else ""
