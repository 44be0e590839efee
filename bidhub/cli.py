"""The `bidhub` command: set up the database, load demo data, manage users, check the ledger."""

from __future__ import annotations

import sys
from datetime import date

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from bidhub.db import engine_of, get_session, upgrade_database


def init_database(app: Flask) -> None:
    """Migrate to the newest schema and make the default rule file the active rules."""
    from bidhub.services.rule_sets import default_rules_path, ensure_active_rule_set

    upgrade_database(engine_of(app))
    session = get_session()
    text = default_rules_path(app.config).read_text(encoding="utf-8")
    ensure_active_rule_set(session, text, app.config["CLOCK"]())
    session.commit()


@click.command("init")
@with_appcontext
def init_command() -> None:
    """Create or upgrade the database and load the default rules."""
    init_database(current_app)
    click.echo("Database ready.")


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--no-serve", is_flag=True, help="Build the demo data and exit.")
@with_appcontext
def demo_command(host: str, port: int, no_serve: bool) -> None:
    """Build the demo world (once) and serve bidhub with it."""
    from bidhub.demo import DEMO_PASSWORD, build_demo, demo_logins, has_demo

    app = current_app._get_current_object()
    init_database(app)
    session = get_session()
    if has_demo(session):
        click.echo("Demo data already present.")
    else:
        click.echo("Building the demo world (about a minute)...")
        build_demo(session, app.config["CLOCK"]())
    click.echo(f"\nDemo logins (password for all: {DEMO_PASSWORD}):")
    for role, username, name in demo_logins(session):
        click.echo(f"  {role:<11} {username:<12} {name}")
    if no_serve:
        return
    from bidhub import scheduler

    scheduler.start(app)
    click.echo(f"\nbidhub is running at http://{host}:{port}/  (Ctrl+C stops it)")
    from werkzeug.serving import run_simple

    run_simple(host, port, app, threaded=True, use_reloader=False)


@click.command("create-user")
@click.option("--username", required=True)
@click.option("--name", "display_name", required=True)
@click.option("--role", type=click.Choice(["rep", "ka_manager", "admin"]), default="admin",
              show_default=True)
@click.option("--branch", "branch_code", default=None, help="Branch code (required for reps).")
@click.option("--hired-on", type=click.DateTime(["%Y-%m-%d"]), default=None)
@click.password_option()
@with_appcontext
def create_user_command(username, display_name, role, branch_code, hired_on, password) -> None:
    """Create a user, for example the first admin."""
    from sqlalchemy import select

    from bidhub.domain.errors import InvalidRequest
    from bidhub.models import Branch
    from bidhub.services.users import create_user

    session = get_session()
    branch_id = None
    if branch_code:
        branch = session.scalars(select(Branch).where(Branch.code == branch_code)).first()
        if branch is None:
            raise click.BadParameter(f"no branch with code '{branch_code}'", param_hint="--branch")
        branch_id = branch.id
    try:
        user = create_user(session, None, username=username, display_name=display_name,
                           password=password, role=role, branch_id=branch_id,
                           hired_on=hired_on.date() if hired_on else date.today(),
                           now=current_app.config["CLOCK"]())
    except InvalidRequest as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Created {user.role} '{user.username}'.")


@click.command("verify-ledger")
@with_appcontext
def verify_ledger_command() -> None:
    """Check the hash chain of the filing register; exit 1 at the first broken link."""
    from bidhub.services.filings import verify_ledger

    broken = verify_ledger(get_session())
    if broken is None:
        click.echo("Ledger intact.")
        return
    click.echo(f"Ledger broken at filing {broken.seq}: {broken.problem}", err=True)
    sys.exit(1)


@click.command("close-due-rounds")
@with_appcontext
def close_due_rounds_command() -> None:
    """Score every published round whose deadline has passed."""
    from bidhub.services.adjudication import close_due_rounds

    scored = close_due_rounds(get_session(), current_app.config["CLOCK"]())
    click.echo(f"Scored rounds: {', '.join(map(str, scored)) or 'none'}")


def init_app(app: Flask) -> None:
    for command in (init_command, demo_command, create_user_command, verify_ledger_command,
                    close_due_rounds_command):
        app.cli.add_command(command)


def main() -> None:
    from bidhub import create_app

    FlaskGroup(create_app=create_app, add_default_commands=True,
               add_version_option=False).main(prog_name="bidhub")
