"""The `bidhub import` command: import a CRM export file and print its report."""

from __future__ import annotations

import json
import shlex
import sys
import tomllib
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from flask import current_app
from sqlalchemy import select

from bidhub.cli import with_current_schema
from bidhub.db import get_session
from bidhub.domain.imports import KINDS, MIB, default_limits

# A mapping file names a few dozen columns; anything near this is not one.
MAX_MAPPING_BYTES = MIB


def read_at_most(path: str, limit: int, param_hint: str) -> bytes:
    """The file's bytes, at most `limit` + 1 of them, so that a file past its limit (or a
    device that never ends) is refused for its size rather than read whole into memory; a
    file that cannot be read is a usage error naming the reason."""
    try:
        with open(path, "rb") as file:
            return file.read(limit + 1)
    except OSError as error:
        raise click.BadParameter(f"{path}: cannot be read: {error.strerror or error}",
                                 param_hint=param_hint) from error


def parse_map_options(maps: tuple[str, ...]) -> dict[str, str]:
    """'FILE COLUMN=field' options as a mapping; a blank field or '-' leaves the column out."""
    mapping: dict[str, str] = {}
    for option in maps:
        column, separator, name = option.rpartition("=")
        if not separator or not column.strip():
            raise click.BadParameter(f"'{option}': write it as 'FILE COLUMN=field'",
                                     param_hint="--map")
        name = name.strip()
        mapping[column.strip()] = "" if name == "-" else name
    return mapping


def read_mapping_file(path: str) -> tuple[dict[str, str], list[str]]:
    """A TOML mapping file: a [columns] table of "FILE COLUMN" = "field", and `acknowledged`."""
    data = read_at_most(path, MAX_MAPPING_BYTES, "--mapping")
    if len(data) > MAX_MAPPING_BYTES:
        raise click.BadParameter(f"{path}: larger than {MAX_MAPPING_BYTES // MIB} MiB, so not "
                                 f"a mapping file", param_hint="--mapping")
    try:
        document = tomllib.loads(data.decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise click.BadParameter(f"{path}: {error}", param_hint="--mapping") from error
    columns = document.get("columns", {})
    acknowledged = document.get("acknowledged", [])
    if (not isinstance(columns, dict)
            or not all(isinstance(value, str) for value in columns.values())
            or not isinstance(acknowledged, list)
            or not all(isinstance(value, str) for value in acknowledged)):
        raise click.BadParameter(
            f"{path}: write a [columns] table of \"FILE COLUMN\" = \"field\" and, if needed, "
            f"acknowledged = [\"COLUMN\", ...]", param_hint="--mapping")
    return ({column.strip(): "" if value.strip() == "-" else value.strip()
             for column, value in columns.items()}, acknowledged)


def print_suggestion(needed, file_name: str) -> None:
    """The suggested mapping, as --map options and as a TOML file for --mapping; none when a
    column name the file repeats must be changed first (a mapping names columns by name)."""
    if needed.check.repeated:
        click.echo(f"{file_name}: some column names are used by more than one column, and no "
                   f"mapping can tell those columns apart. Nothing was imported.")
        for message in needed.check.errors:
            click.echo(f"! {message}")
        return
    click.echo(f"{file_name}: the column names are not all known, so the columns need a "
               f"mapping (none was given, and none is saved for these headers). Nothing was "
               f"imported. Suggested mapping:")
    options = " ".join("--map " + shlex.quote(f"{match.column}={match.field or '-'}")
                       for match in needed.suggestion)
    click.echo(f"\n  {options}\n")
    click.echo("or as a file for --mapping:\n")
    click.echo("[columns]")
    for match in needed.suggestion:
        note = f"  # {match.how}" if match.field else "  # not imported"
        click.echo(f"{json.dumps(match.column, ensure_ascii=False)} = "
                   f"{json.dumps(match.field or '', ensure_ascii=False)}{note}")
    for message in needed.check.refusals:
        click.echo(f"\n! {message}", nl=False)
    if needed.check.warnings:
        click.echo("\n  (to leave such a column out knowingly, add --ack COLUMN)", nl=False)
    click.echo("")


@click.command("import")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--valid-rows-only", is_flag=True,
              help="Import the rows without problems and report the others.")
@click.option("--by", "username", required=True, help="The admin doing the import.")
@click.option("--map", "maps", multiple=True, metavar="'FILE COLUMN=field'",
              help="Read a file column into a field ('-' for none); repeatable. Columns not "
                   "named are read by their exact name.")
@click.option("--mapping", "mapping_file", type=click.Path(exists=True, dir_okay=False),
              help="A TOML file: [columns] \"FILE COLUMN\" = \"field\", acknowledged = [...].")
@click.option("--ack", "acks", multiple=True, metavar="COLUMN",
              help="An important column to leave out knowingly; repeatable.")
@with_current_schema
def import_command(kind: str, path: str, valid_rows_only: bool, username: str,
                   maps: tuple[str, ...], mapping_file: str | None,
                   acks: tuple[str, ...]) -> None:
    """Import a CRM export (CSV or tab-separated text in UTF-8, GBK or UTF-16, or XLSX); exit 1
    when it is refused.

    A file whose column names are not all known needs a mapping: give it with --map or
    --mapping (it is saved for the next file with the same headers), or rely on one saved
    before. Without one, the suggested mapping is printed and nothing is imported.
    """
    from bidhub.domain.errors import Conflict, InvalidRequest
    from bidhub.models import Role, User
    from bidhub.services.imports import MappingNeeded, import_file

    session = get_session()
    admin = session.scalars(select(User).where(User.username == username.lower())).first()
    if admin is None or admin.role != Role.ADMIN or not admin.is_active:
        raise click.BadParameter(f"'{username}' is not an active admin", param_hint="--by")
    mapping, acknowledged = None, list(acks)
    if mapping_file:
        mapping, from_file = read_mapping_file(mapping_file)
        acknowledged += from_file
    if maps:
        mapping = {**(mapping or {}), **parse_map_options(maps)}
    file = Path(path)
    try:
        result = import_file(session, admin, kind, file.name,
                             read_at_most(path, default_limits().max_file_bytes, "PATH"),
                             valid_rows_only=valid_rows_only,
                             now=current_app.config["CLOCK"](),
                             zone=current_app.config["TIMEZONE"], mapping=mapping,
                             acknowledged=acknowledged)
    except MappingNeeded as needed:
        print_suggestion(needed, file.name)
        sys.exit(1)
    except InvalidRequest as error:
        click.echo(f"{file.name}: the mapping cannot be used; nothing was imported.")
        for part in getattr(error.message, "parts", [error.message]):
            click.echo(f"! {part}")
        click.echo("(--ack COLUMN leaves an important column out knowingly)")
        sys.exit(1)
    except Conflict as error:
        click.echo(f"{file.name}: {error}")
        sys.exit(1)
    print_report(file.name, result)
    if result.refused:
        sys.exit(1)


def print_problems(problems, heading: str) -> None:
    """Problems (or warnings) as a tab-separated table: row, column, value, and why."""
    click.echo(f"row\tcolumn\tvalue\t{heading}")
    for problem in problems:
        row = "-" if problem.row is None else problem.row
        click.echo(f"{row}\t{problem.column or '-'}\t{problem.value}\t{problem.reason}")


def print_report(file_name: str, result) -> None:
    from bidhub.services.imports import HiddenRowsShown

    if result.saved_mapping_at is not None:
        when = result.saved_mapping_at.astimezone(ZoneInfo(current_app.config["TIMEZONE"]))
        click.echo(f"Using the mapping saved on {when:%Y-%m-%d %H:%M} by "
                   f"{result.saved_mapping_by or 'someone'}.")
    if result.mapping and any(column != name for column, name in result.mapping.items()):
        click.echo("Columns: " + ", ".join(f"{column} -> {name}"
                                          for column, name in result.mapping.items()))
    if result.generated_usernames:
        click.echo("Usernames were made from the employee ids, in lower case.")
    for row, text in result.rows_above:
        click.echo(f"Row {row} ({text}) is above the column names and was skipped.")
    for row, word in result.totals_rows:
        click.echo(f"Row {row} ({word}) is a totals row and was skipped.")
    for row, text in result.note_rows:
        click.echo(f"Row {row} ({text}) is a note below the table and was skipped.")
    if result.hidden_rows_count:
        hidden = HiddenRowsShown.counted(result.hidden_rows, result.hidden_rows_count)
        rows, were = ("row", "was") if hidden.count == 1 else ("rows", "were")
        click.echo(f"{hidden.count} {rows} of the table hidden in the workbook (hidden, in a "
                   f"collapsed group or by a filter) {were} read like the others: {rows} "
                   f"{', '.join(hidden.ranges)}" + (f", and {hidden.not_listed} more not listed."
                                                    if hidden.not_listed else "."))
    if result.merged_down:
        click.echo("Cells merged down over several rows were read in every row they cover, as "
                   f"Excel shows them: {', '.join(result.merged_down)}.")
    for name, unit in result.units.items():
        click.echo(f"{name} was read in fen and stored in whole yuan, rounded half up."
                   if unit < 1 else f"{name} was read in units of {unit:,} yuan.")
    if result.unit_note is not None:
        row, text = result.unit_note
        click.echo(f"Row {row} ({text}) names the unit of the amounts: the amount columns whose "
                   "names give no unit were read in it.")
    for name, count in result.rounded.items():
        click.echo(f"Amounts in {name} with a fraction of a yuan, stored rounded half up to "
                   f"whole yuan: {count}.")
    if result.warnings:
        click.echo(f"Imported with a warning ({len(result.warnings)}):")
        print_problems(result.warnings, "warning")
    if result.problems:
        print_problems(result.problems, "reason")
    if result.ignored_columns:
        click.echo(f"Ignored columns: {', '.join(result.ignored_columns)}")
    click.echo(f"{file_name}: {result.status} (import run {result.run_id}). "
               f"rows {result.rows_total}, added {result.added}, updated {result.updated}, "
               f"unchanged {result.unchanged}, skipped {result.skipped}")
