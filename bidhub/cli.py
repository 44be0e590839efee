"""The `bidhub` command: set up the database, load demo data, manage users, check the ledger."""

from __future__ import annotations

import copy
import functools
import sys
from zoneinfo import ZoneInfo

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from bidhub.db import (
    create_database,
    engine_of,
    get_session,
    schema_problem,
    unit_of_work,
    upgrade_database,
)

# A round's number as the database can hold it (a 32-bit key): a larger one is a typing
# mistake, refused as a usage error before it reaches a query that would overflow.
ROUND_ID = click.IntRange(1, 2**31 - 1)


def with_current_schema(command):
    """`with_appcontext`, and a stop with the reason, before anything runs, when the database
    is out of reach or not at the newest migration (see `schema_problem`): the command would
    otherwise end in a traceback about a missing table, having perhaps done part of its work."""

    def checked(*args, **kwargs):
        problem = schema_problem(engine_of(current_app))
        if problem is not None:
            raise click.ClickException(problem.message)
        return command(*args, **kwargs)

    return with_appcontext(functools.update_wrapper(checked, command))


def refuse_unless_init_can_set_right(app: Flask) -> None:
    """click.ClickException with the reason when the database is out of reach or migrated by
    a newer bidhub: `bidhub init` would end in a traceback there."""
    problem = schema_problem(engine_of(app))
    if problem is not None and not problem.init_fixes:
        raise click.ClickException(problem.message)


def init_database(app: Flask) -> None:
    """Migrate to the newest schema and make the default rule file the active rules; a
    database out of reach or migrated by a newer bidhub is left as it is
    (click.ClickException with the reason)."""
    from bidhub.services.rule_sets import (
        default_rules_path,
        ensure_active_rule_set,
        read_rule_file,
    )

    refuse_unless_init_can_set_right(app)
    upgrade_database(engine_of(app))
    session = get_session()
    text = read_rule_file(default_rules_path(app.config))
    with unit_of_work(session):
        ensure_active_rule_set(session, text, app.config["CLOCK"]())


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
    from bidhub.demo import (
        DEMO_PASSWORD,
        DemoRefused,
        DemoState,
        build_demo,
        check_demo_database,
        demo_logins,
        has_demo,
    )
    from bidhub.services.ledger import set_aside_checkpoints

    app = current_app._get_current_object()
    try:
        # Checked before migrating, so a refused database is left exactly as it was. A SQLite
        # file that does not exist is made here (as `init` makes it): the demo builds into it.
        refuse_unless_init_can_set_right(app)
        create_database(engine_of(app))
        state = check_demo_database(engine_of(app))
        init_database(app)
        session = get_session()
        if state == DemoState.EMPTY:
            kept = set_aside_checkpoints(app.extensions["bidhub_ledger_anchor"],
                                         app.config["CLOCK"]())
            if kept is not None:
                click.echo(f"The checkpoints of an earlier register were moved to {kept}.")
        if has_demo(session):
            click.echo("Demo data already present.")
        else:
            click.echo("Building the demo world (about a minute)...")
            build_demo(session, app.config["CLOCK"]())
    except DemoRefused as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"\nDemo logins (password for all: {DEMO_PASSWORD}):")
    for role, username, name in demo_logins(session):
        click.echo(f"  {role:<11} {username:<12} {name}")
    if no_serve:
        return
    from bidhub import scheduler

    running = scheduler.start(app)  # through the lease: a `bidhub scheduler` may hold it instead
    click.echo(f"\nbidhub is running at http://{host}:{port}/  (Ctrl+C stops it)")
    from werkzeug.serving import run_simple

    try:
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        running.shutdown()


# The option of `create-user` that gives what a refusal of `users.create_user` is about (its
# InvalidRequest.field), named in front of the reason.
CREATE_USER_OPTIONS = {"username": "--username", "display_name": "--name",
                       "password": "--password", "role": "--role", "branch_id": "--branch",
                       "hired_on": "--hired-on"}


@click.command("create-user")
@click.option("--username", required=True)
@click.option("--name", "display_name", required=True)
@click.option("--role", type=click.Choice(["rep", "ka_manager", "admin"]), default="admin",
              show_default=True)
@click.option("--branch", "branch_code", default=None,
              help="Branch code or name (required for reps).")
@click.option("--hired-on", type=click.DateTime(["%Y-%m-%d"]), default=None)
@click.option("--password", default=None,
              help="The user's password; asked for (twice, hidden) when not given.")
@with_current_schema
def create_user_command(username, display_name, role, branch_code, hired_on, password) -> None:
    """Create a user, for example the first admin."""
    from bidhub.domain.errors import InvalidRequest
    from bidhub.services.branches import find_branch
    from bidhub.services.users import create_user

    if password is None:  # asked here, once the database is known to be usable
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    session = get_session()
    branch_id = None
    if branch_code:
        branch = find_branch(session, branch_code)
        if branch is None:
            raise click.BadParameter(f"no branch with code or name '{branch_code}'",
                                     param_hint="--branch")
        branch_id = branch.id
    now = current_app.config["CLOCK"]()
    today = now.astimezone(ZoneInfo(current_app.config["TIMEZONE"])).date()
    try:
        user = create_user(session, None, username=username, display_name=display_name,
                           password=password, role=role, branch_id=branch_id,
                           hired_on=hired_on.date() if hired_on else today, now=now,
                           zone=current_app.config["TIMEZONE"])
    except InvalidRequest as error:
        option = CREATE_USER_OPTIONS.get(error.field)
        raise click.ClickException(f"{option}: {error}" if option else str(error)) from error
    click.echo(f"Created {user.role} '{user.username}'.")


@click.command("verify-ledger")
@with_current_schema
def verify_ledger_command() -> None:
    """Check the filing register: hash chain, checkpoints, and owners; exit 1 on any problem."""
    from bidhub.services.ledger import verify_ledger

    report = verify_ledger(get_session())
    if report.is_intact:
        click.echo(f"Ledger intact: {report.filings} filings, {report.checkpoints} checkpoints, "
                   "every account's owner matches its filings.")
        return
    first = report.first_problem
    if first is not None and first.seq is not None:
        click.echo(f"Ledger broken at filing {first.seq}: {first.problem}", err=True)
    for problem in report.problems:
        where = f"filing {problem.seq}: " if problem.seq is not None else ""
        click.echo(f"- {where}{problem.problem}", err=True)
    sys.exit(1)


@click.command("close-due-rounds")
@with_current_schema
def close_due_rounds_command() -> None:
    """Score every published round whose deadline has passed."""
    from bidhub.services.adjudication import close_due_rounds

    scored = close_due_rounds(get_session(), current_app.config["CLOCK"](),
                              zone=current_app.config["TIMEZONE"])
    click.echo(f"Scored rounds: {', '.join(map(str, scored)) or 'none'}")


@click.command("apply-due-results")
@with_current_schema
def apply_due_results_command() -> None:
    """Put into force every announced result whose standstill window ended and whose appeals
    are answered, as the scheduler does."""
    from bidhub.services.appeals import apply_due_listings

    applied = apply_due_listings(get_session(), current_app.config["CLOCK"]())
    click.echo(f"Listings in force: {', '.join(map(str, applied)) or 'none'}")


@click.command("rescore")
@click.argument("round_id", type=ROUND_ID)
# Rescoring only ever verifies: it changes nothing stored. `--verify` says so on the command
# line and stays accepted, so `rescore --verify ROUND` and `rescore ROUND` do the same.
@click.option("--verify", is_flag=True, expose_value=False,
              help="Accepted for clarity; rescoring always verifies and never writes.")
@with_current_schema
def rescore_command(round_id: int) -> None:
    """Recompute a scored round's scores and allocation and compare them with what is stored;
    nothing is written, and any difference exits 1."""
    from bidhub.domain.errors import BidhubError
    from bidhub.services.replays import verify_round

    try:
        problems = verify_round(get_session(), round_id)
    except BidhubError as error:
        raise click.ClickException(str(error)) from error
    if not problems:
        click.echo(f"Round {round_id}: every score and the allocation reproduce exactly.")
        return
    for problem in problems:
        click.echo(str(problem), err=True)
    sys.exit(1)


@click.command("refresh-track-records")
@with_current_schema
def refresh_track_records_command() -> None:
    """Rebuild the missing track-record snapshots of active reps (the scheduler does it too)."""
    from bidhub.services.track_records import refresh_track_records

    count = refresh_track_records(get_session(), current_app.config["CLOCK"]())
    click.echo(f"Rebuilt {count} track-record snapshots.")


@click.group("rules")
def rules_group() -> None:
    """Check, preview and adopt scoring rules."""


@rules_group.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def rules_check_command(path: str) -> None:
    """Report every problem in a rule file (exit 1 if there is any)."""
    from bidhub.domain.rules import RuleError
    from bidhub.services.rule_sets import RuleCheck, check_rules_text, read_rule_file

    try:
        check = check_rules_text(read_rule_file(path))
    except RuleError as error:  # unreadable: too big, or not UTF-8/GBK
        check = RuleCheck(None, tuple(error.problems), error.more)
    for line in check.lines():
        click.echo(f"{path}: {line}", err=True)
    if check.count:
        sys.exit(1)
    click.echo(f"{path}: valid.")


@rules_group.command("what-if")
@click.argument("round_id", type=ROUND_ID)
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_current_schema
def rules_what_if_command(round_id: int, path: str) -> None:
    """Replay a scored round under the rules in PATH: which awards and scores would change."""
    from bidhub.domain.errors import BidhubError
    from bidhub.domain.rules import RuleError, parse_new_rules
    from bidhub.services.replays import what_if
    from bidhub.services.rule_sets import read_rule_file

    try:
        stored, comparison = what_if(get_session(), round_id,
                                     parse_new_rules(read_rule_file(path)))
    except RuleError as error:
        raise click.ClickException(f"{path}:\n{error}") from error
    except BidhubError as error:
        raise click.ClickException(str(error)) from error
    names = {bid_id: row.rep.display_name for bid_id, row in stored.rows.items()}
    click.echo(f"{len(comparison.award_changes)} award(s) would change, "
               f"{len(comparison.changed_scores)} score(s) would change.")
    for change in comparison.award_changes:
        click.echo(f"  listing {change.listing_id}: {names.get(change.before_bid_id, 'nobody')}"
                   f" -> {names.get(change.after_bid_id, 'nobody')}")
    for change in comparison.changed_scores:
        # A bid may change only in eligibility: its total is the same, its chance is not.
        eligibility = ("" if change.was_eligible == change.is_eligible
                       else ", now eligible" if change.is_eligible else ", now not eligible")
        click.echo(f"  bid {change.bid_id} ({names[change.bid_id]}): {change.before:.3f} -> "
                   f"{change.after:.3f} ({change.delta:+.3f}{eligibility})")


@rules_group.command("adopt")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--note", required=True, help="What changed and why.")
@click.option("--by", "username", required=True, help="The admin adopting the rules.")
@with_current_schema
def rules_adopt_command(path: str, note: str, username: str) -> None:
    """Adopt the rules in PATH for rounds created from now on (rounds already created keep
    theirs, drafts included)."""
    from sqlalchemy import select

    from bidhub.domain.errors import BidhubError
    from bidhub.domain.rules import RuleError, parse_new_rules
    from bidhub.models import Role, User
    from bidhub.services.rule_sets import active_rule_set, adopt_rules, read_rule_file

    session = get_session()
    admin = session.scalars(select(User).where(User.username == username.strip().lower())).first()
    if admin is None or admin.role != Role.ADMIN or not admin.is_active:
        raise click.BadParameter(f"'{username}' is not an active admin", param_hint="--by")
    current = active_rule_set(session)
    try:
        text = read_rule_file(path)
        parse_new_rules(text)  # a file's problems named as `rules check` names them
        version = adopt_rules(session, admin, text, note,
                              expected_active_id=current.id if current else None,
                              now=current_app.config["CLOCK"]())
    except RuleError as error:
        raise click.ClickException(f"{path}:\n{error}") from error
    except BidhubError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Adopted rules {version.sha256[:12]} for rounds created from now on.")


def init_app(app: Flask) -> None:
    from bidhub.cli_branches import branches_group
    from bidhub.cli_imports import import_command

    for command in (init_command, demo_command, create_user_command, verify_ledger_command,
                    close_due_rounds_command, apply_due_results_command, rescore_command, rules_group, import_command,
                    branches_group):
        app.cli.add_command(command)
    app.cli.add_command(refresh_track_records_command)


def create_app_or_exit(config: dict | None = None) -> Flask:
    """The app; a broken default rule file or a setting bidhub cannot use (BIDHUB_*) ends the
    command with its message.

    FlaskGroup would print a traceback for it, which hides the file, key and reason.
    """
    from bidhub import create_app
    from bidhub.config import ConfigError
    from bidhub.services.rule_sets import RuleFileError

    try:
        return create_app(config)
    except (RuleFileError, ConfigError) as error:
        click.echo(str(error), err=True)
        raise SystemExit(1) from None


def exit_unless_schema_current(app: Flask) -> Flask:
    """The app, unless its database is not at the newest migration: then the reason, and the
    process ends before it serves a request or runs a job (see `schema_problem`). A database
    that does not answer yet is logged and left to /healthz and the scheduler's retries: a
    server started before its database comes up must not stay down with it."""
    problem = schema_problem(engine_of(app))
    if problem is not None and problem.reachable:
        click.echo(problem.message, err=True)
        raise SystemExit(1)
    if problem is not None:
        app.logger.warning("%s", problem.message)
    return app


def run_on_current_schema() -> click.Command:
    """Flask's `run` (the development server), stopped like `bidhub serve` before it serves a
    request when its database is not at the newest migration: every page would otherwise
    answer with an error about a missing table. With BIDHUB_SCHEDULER_ENABLED on, it runs the
    scheduled jobs in its process too (the command line's app starts no scheduler itself)."""
    from flask.cli import ScriptInfo, run_command

    from bidhub import scheduler
    from bidhub.config import Defaults, environment_config

    command = copy.copy(run_command)
    serve = run_command.callback

    @functools.wraps(serve)
    def checked(*args, **kwargs):
        info = click.get_current_context().ensure_object(ScriptInfo)
        app = exit_unless_schema_current(info.load_app())  # the app `run` then serves
        if environment_config().get("SCHEDULER_ENABLED", Defaults.SCHEDULER_ENABLED):
            scheduler.start(app)
        return serve(*args, **kwargs)

    command.callback = checked
    return command


def main() -> None:
    from bidhub.scheduler import scheduler_command
    from bidhub.serving import serve_command

    # The command line's app starts no scheduler, whatever BIDHUB_SCHEDULER_ENABLED says: a
    # one-off command (an import, a rescore) would otherwise run the scheduled jobs while it
    # lasts and leave the lease held by a process that has ended, so that the scheduler meant
    # to run them waited for it to expire. `run` starts one where the setting asks for it.
    group = FlaskGroup(create_app=functools.partial(create_app_or_exit,
                                                    {"SCHEDULER_ENABLED": False}),
                       add_default_commands=True, add_version_option=False)
    # Commands of the group itself: they make their own app (with the scheduler off), so the
    # command line's app never starts one in a web or scheduler process.
    group.add_command(serve_command)
    group.add_command(scheduler_command)
    group.add_command(run_on_current_schema())  # in place of the default `run`
    group.main(prog_name="bidhub")
