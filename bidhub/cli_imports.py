"""The `bidhub import` command: import a CRM export file and print its report."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from bidhub.db import get_session
from bidhub.domain.imports import KINDS


@click.command("import")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--valid-rows-only", is_flag=True,
              help="Import the rows without problems and report the others.")
@click.option("--by", "username", required=True, help="The admin doing the import.")
@with_appcontext
def import_command(kind: str, path: str, valid_rows_only: bool, username: str) -> None:
    """Import a CRM export (CSV in UTF-8 or GBK, or XLSX); exit 1 when it is refused."""
    from bidhub.models import Role, User
    from bidhub.services.imports import import_file

    session = get_session()
    admin = session.scalars(select(User).where(User.username == username.lower())).first()
    if admin is None or admin.role != Role.ADMIN or not admin.is_active:
        raise click.BadParameter(f"'{username}' is not an active admin", param_hint="--by")
    file = Path(path)
    result = import_file(session, admin, kind, file.name, file.read_bytes(),
                         valid_rows_only=valid_rows_only, now=current_app.config["CLOCK"](),
                         zone=current_app.config["TIMEZONE"])
    if result.problems:
        click.echo("row\tcolumn\tvalue\treason")
        for problem in result.problems:
            row = "-" if problem.row is None else problem.row
            click.echo(f"{row}\t{problem.column or '-'}\t{problem.value}\t{problem.reason}")
    if result.ignored_columns:
        click.echo(f"Ignored columns: {', '.join(result.ignored_columns)}")
    click.echo(f"{file.name}: {result.status} (import run {result.run_id}). "
               f"rows {result.rows_total}, added {result.added}, updated {result.updated}, "
               f"unchanged {result.unchanged}, skipped {result.skipped}")
    if result.refused:
        sys.exit(1)
