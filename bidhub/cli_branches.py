"""The `bidhub branches` commands: add a branch and list them, for a first day without the web."""

from __future__ import annotations

import click
from flask import current_app
from sqlalchemy import select

from bidhub.cli import with_current_schema
from bidhub.db import get_session


@click.group("branches")
def branches_group() -> None:
    """Add and list branches (分公司)."""


@branches_group.command("add")
@click.argument("code")
@click.argument("name")
@click.option("--name-zh", default=None, help="The Chinese name, shown on Chinese pages.")
@click.option("--by", "username", required=True, help="The admin adding the branch.")
@with_current_schema
def add_branch_command(code: str, name: str, name_zh: str | None, username: str) -> None:
    """Add a branch: CODE (letters, digits, - and _) and NAME; files may use either."""
    from bidhub.domain.errors import InvalidRequest
    from bidhub.models import Role, User
    from bidhub.services.branches import create_branch

    session = get_session()
    admin = session.scalars(select(User).where(User.username == username.strip().lower())).first()
    if admin is None or admin.role != Role.ADMIN or not admin.is_active:
        raise click.BadParameter(f"'{username}' is not an active admin", param_hint="--by")
    try:
        branch = create_branch(session, admin, code, name, name_zh,
                               current_app.config["CLOCK"]())
    except InvalidRequest as error:
        option = {"code": "CODE", "name": "NAME", "name_zh": "--name-zh"}.get(error.field or "")
        raise click.ClickException(f"{option}: {error}" if option else str(error)) from error
    click.echo(f"Created branch {branch.code} ({branch.name}"
               f"{' / ' + branch.name_zh if branch.name_zh else ''}).")


@branches_group.command("list")
@with_current_schema
def list_branches_command() -> None:
    """Every branch with its names, reps, accounts and whether it takes new ones."""
    from bidhub.services.branches import branch_counts, list_branches

    session = get_session()
    branches = list_branches(session)
    if not branches:
        click.echo("No branches yet; add one with `bidhub branches add CODE NAME --by ADMIN`.")
        return
    counts = branch_counts(session)
    click.echo("code\tname\tname_zh\treps\taccounts\tactive")
    for branch in branches:
        reps, accounts = counts.get(branch.id, (0, 0))
        click.echo(f"{branch.code}\t{branch.name}\t{branch.name_zh or ''}\t{reps}\t{accounts}\t"
                   f"{'yes' if branch.is_active else 'no'}")
