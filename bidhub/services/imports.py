"""CRM imports: reps, accounts, opportunities, forecasts and incidents from CSV or XLSX files.

All or nothing per file: when any row has a problem nothing is written (unless the caller asks
for the valid rows only), and every import, done or refused, leaves an ImportRun and an audit
event. Rows are matched by external id, so importing the same file again changes nothing.
Ownership changes are transfers: each is filed (kind crm_import); moving an account bidhub
already holds must stay within capacity, while a first load records the CRM's owner as it is.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bidhub.config import Defaults
from bidhub.db import unit_of_work
from bidhub.domain.errors import CapacityExceeded
from bidhub.domain.imports import (
    CONTACT_ROLES,
    KINDS,
    NOT_A_WORKBOOK,
    FileRefused,
    ImportKind,
    Parsed,
    Problem,
    Row,
    UploadLimits,
    bounded_problems,
    cell_text,
    check_workbook,
    collect_records,
    default_limits,
    parse_csv,
    parse_file,
)
from bidhub.models import (
    Account,
    AccountabilityIncident,
    Branch,
    Contact,
    FilingKind,
    ImportRun,
    MonthlyForecast,
    Opportunity,
    OpportunityStageChange,
    RepStatus,
    Role,
    User,
)
from bidhub.services.audit import record_audit
from bidhub.services.filings import capacity_max
from bidhub.services.ownership import (
    OwnerChange,
    change_owners,
    lock_accounts,
    lock_reps,
    unfinished_listing_of,
)
from bidhub.services.users import hash_password, new_session_token

CRM_IMPORT_REASON = "CRM import"
# The configured default; the web and the CLI pass the running app's TIMEZONE.
DEFAULT_ZONE = Defaults.TIMEZONE
CHUNK = 500


# How often a long import reports how far it has got.
PROGRESS_EVERY = 250


@dataclass
class ImportResult:
    run_id: int
    kind: str
    filename: str
    status: str  # imported | refused
    rows_total: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_not_shown: int = 0  # beyond the report's limit
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return self.status == "refused"


class RowProblem(Exception):
    def __init__(self, row: Row, column: str, value: Any, reason: str) -> None:
        super().__init__(reason)
        self.problem = Problem(row.number, column, "" if value is None else str(value), reason)


# --- reading the file -------------------------------------------------------------------------

def is_workbook(filename: str, data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04" or filename.lower().endswith((".xlsx", ".xlsm"))


def shared_string_table(source: Any) -> list[str]:
    """The shared strings' text as openpyxl's read_string_table gives it, several times faster.

    openpyxl builds a Text object per string (70 µs each here), and a workbook within the
    limits may share a hundred thousand. The text is the plain <t> and the runs' <t>, as there.
    """
    # check_workbook has refused any DOCTYPE or ENTITY before this parses the part.
    from xml.etree.ElementTree import iterparse  # noqa: S405

    namespace = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    item, text, run = f"{namespace}si", f"{namespace}t", f"{namespace}r"
    strings: list[str] = []
    for _event, element in iterparse(source):  # noqa: S314 - see above
        if element.tag != item:
            continue
        pieces = []
        for child in element:
            if child.tag == text:
                pieces.append(child.text or "")
            elif child.tag == run:
                pieces += [piece.text or "" for piece in child if piece.tag == text]
        strings.append("".join(pieces).replace("x005F_", ""))
        element.clear()
    return strings


def workbook_reader(source: io.BytesIO) -> Any:
    """openpyxl's reader in read-only mode for cell values, faster where a workbook is large.

    It reads the shared strings with shared_string_table and only finds where the first
    worksheet is: openpyxl's read-only worksheet would first read the whole sheet once more
    when it states no size, and pad every row to the size it states.
    """
    from openpyxl.reader.excel import SHARED_STRINGS, ExcelReader

    class Reader(ExcelReader):
        first_sheet: str | None = None

        def read_strings(self) -> None:
            part = self.package.find(SHARED_STRINGS)
            if part is not None:
                with self.archive.open(part.PartName[1:]) as strings:
                    self.shared_strings = shared_string_table(strings)

        def read_worksheets(self) -> None:
            for _sheet, relation in self.parser.find_sheets():
                if relation.target in self.valid_files and "chartsheet" not in relation.Type:
                    self.first_sheet = relation.target
                    return

    return Reader(source, read_only=True, data_only=True)


def sheet_rows(reader: Any) -> Iterator[list[str]]:
    """The first worksheet's rows as text, streamed; a blank row for each row the file skips."""
    from openpyxl.worksheet._reader import WorkSheetParser

    workbook = reader.wb
    with reader.archive.open(reader.first_sheet) as source:
        parser = WorkSheetParser(source, reader.shared_strings, data_only=True,
                                 epoch=workbook.epoch, date_formats=workbook._date_formats,
                                 timedelta_formats=workbook._timedelta_formats)
        number = 0
        for index, cells in parser.parse():
            while number + 1 < index:
                number += 1
                yield []
            number = max(number, index)
            # The columns are bounded by check_workbook: by reference, or by cells per row.
            record = [""] * max((cell["column"] for cell in cells), default=0)
            for cell in cells:
                record[cell["column"] - 1] = cell_text(cell["value"]).strip()
            yield record


def read_workbook(data: bytes, limits: UploadLimits | None = None) -> list[list[str]]:
    """The first sheet's cells as text, read in streaming mode within the limits.

    The file is checked (check_workbook) before openpyxl sees it: openpyxl keeps every shared
    string, a whole row and whole cell values in memory, so those are bounded first.
    """
    limits = limits or default_limits()
    check_workbook(data, limits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reader = workbook_reader(io.BytesIO(data))
        except Exception as error:  # openpyxl raises many kinds for a broken file
            raise FileRefused(NOT_A_WORKBOOK) from error
        try:
            reader.read()
            if reader.first_sheet is None:
                raise FileRefused(NOT_A_WORKBOOK)
            return collect_records(sheet_rows(reader), limits)
        except FileRefused:
            raise
        except Exception as error:  # openpyxl raises many kinds for a broken file
            raise FileRefused(NOT_A_WORKBOOK) from error
        finally:
            reader.archive.close()


def parse_upload(kind: str, filename: str, data: bytes,
                 limits: UploadLimits | None = None) -> Parsed:
    if not is_workbook(filename, data):
        return parse_csv(kind, data, limits)
    try:
        records = read_workbook(data, limits)
    except FileRefused as error:
        return Parsed(kind=kind, problems=[Problem(None, "", "", str(error))])
    return parse_file(kind, records, limits)


# --- the use case -----------------------------------------------------------------------------

def import_file(
    session: Session, actor: User, kind: str, filename: str, data: bytes, *,
    valid_rows_only: bool, now: datetime, zone: str = DEFAULT_ZONE,
    progress: Callable[[int, int], None] | None = None, limits: UploadLimits | None = None,
) -> ImportResult:
    """Import one file; all or nothing unless `valid_rows_only`. Always records an ImportRun.

    `progress(rows_checked, rows_total)` is called every PROGRESS_EVERY rows and at the end.
    A file past `limits` is refused before it is parsed; the report keeps at most
    `limits.max_problems` problems, values cut short, and counts the rest.
    """
    limits = limits or default_limits()
    if kind not in KINDS:
        raise ValueError(f"unknown import kind {kind!r}")
    sha256 = hashlib.sha256(data).hexdigest()
    parsed = parse_upload(kind, filename, data, limits)
    refused = False
    try:
        with unit_of_work(session):
            counts, problems = _apply_rows(session, kind, parsed, actor.id, now, zone, progress)
            problems, problems_not_shown = bounded_problems(problems, parsed.problems_not_kept,
                                                            limits)
            if parsed.file_problems or (problems and not valid_rows_only):
                raise _ImportRefused
            run = _record_run(session, actor, kind, filename, sha256, parsed, counts, problems,
                              problems_not_shown, valid_rows_only, limits, "imported", now)
    except _ImportRefused:
        # Its rows are rolled back; the refusal itself is recorded, in a transaction of its own.
        refused = True
        counts = dict.fromkeys(counts, 0)
        with unit_of_work(session):
            run = _record_run(session, actor, kind, filename, sha256, parsed, counts, problems,
                              problems_not_shown, valid_rows_only, limits, "refused", now)
    return ImportResult(run_id=run.id, kind=kind, filename=run.filename,
                        status="refused" if refused else "imported",
                        rows_total=run.rows_total, skipped=run.skipped, problems=problems,
                        problems_not_shown=problems_not_shown,
                        ignored_columns=run.report["ignored_columns"], **counts)


class _ImportRefused(Exception):
    """The file or a row has a problem and only a complete import was asked for."""


def _apply_rows(
    session: Session, kind: str, parsed: Parsed, actor_id: int, now: datetime, zone: str,
    progress: Callable[[int, int], None] | None,
) -> tuple[dict[str, int], list[Problem]]:
    """Write the parsed rows; how many were added, updated or unchanged, and the problems."""
    problems = list(parsed.problems)
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    if not parsed.file_problems:
        importer = IMPORTERS[kind](session, actor_id, set(parsed.columns), now, ZoneInfo(zone))
        importer.prepare(parsed.rows)
        for index, row in enumerate(parsed.rows, start=1):
            if progress is not None and index % PROGRESS_EVERY == 0:
                progress(index, parsed.rows_total)
            try:
                outcome = importer.apply(row)
            except RowProblem as problem:
                problems.append(problem.problem)
                continue
            counts[outcome] += 1
    if progress is not None:
        progress(parsed.rows_total, parsed.rows_total)
    return counts, problems


def _record_run(
    session: Session, actor: User, kind: str, filename: str, sha256: str, parsed: Parsed,
    counts: dict[str, int], problems: list[Problem], problems_not_shown: int,
    valid_rows_only: bool, limits: UploadLimits, status: str, now: datetime,
) -> ImportRun:
    done = sum(counts.values())
    run = ImportRun(kind=kind, filename=filename[:255], sha256=sha256, actor_id=actor.id,
                    status=status, rows_total=parsed.rows_total, rows_done=done,
                    skipped=parsed.rows_total - done, **counts,
                    report={"problems": [problem.as_dict() for problem in problems],
                            "problems_not_shown": problems_not_shown,
                            "ignored_columns": parsed.ignored_columns[:limits.max_problems],
                            "valid_rows_only": valid_rows_only},
                    started_at=now, finished_at=now)
    session.add(run)
    session.flush()
    record_audit(session, actor, f"import.{status}", f"import_run:{run.id}", now,
                 after={"kind": kind, "filename": run.filename, "sha256": sha256,
                        "rows_total": run.rows_total, **counts, "skipped": run.skipped,
                        "problems": len(problems) + problems_not_shown})
    return run


def import_runs(session: Session, limit: int = 50) -> list[ImportRun]:
    return list(session.scalars(select(ImportRun).order_by(ImportRun.id.desc()).limit(limit)))


def actor_names(session: Session, runs: Iterable[ImportRun]) -> dict[int, str]:
    ids = {run.actor_id for run in runs if run.actor_id is not None}
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.display_name).where(User.id.in_(ids))).all())


# --- importers, one per kind ------------------------------------------------------------------

def set_fields(target: Any, values: dict[str, Any]) -> bool:
    """Set the attributes that differ; whether any did."""
    changed = False
    for name, value in values.items():
        if getattr(target, name) != value:
            setattr(target, name, value)
            changed = True
    return changed


def chunks(values: Iterable[Any]) -> Iterable[list[Any]]:
    values = list(values)
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


class Importer:
    def __init__(self, session: Session, actor_id: int, columns: set[str], now: datetime,
                 zone: ZoneInfo) -> None:
        self.session = session
        self.actor_id = actor_id
        self.columns = columns
        self.now = now
        self.zone = zone
        self.branches = {branch.code.lower(): branch
                         for branch in session.scalars(select(Branch))}
        self.reps_by_external: dict[str, User] = {}
        self.reps_by_username: dict[str, User] = {}
        for user in session.scalars(select(User).where(User.role == Role.REP)):
            self.remember_rep(user)

    def remember_rep(self, user: User) -> None:
        if user.external_id:
            self.reps_by_external[user.external_id] = user
        self.reps_by_username[user.username.lower()] = user

    def prepare(self, rows: list[Row]) -> None:
        """Load what the rows refer to, in a few queries."""

    def apply(self, row: Row) -> str:
        raise NotImplementedError

    def instant(self, day: date) -> datetime:
        """Midnight of a local calendar day, as an aware UTC instant."""
        return datetime.combine(day, time(), tzinfo=self.zone).astimezone(UTC)

    def branch(self, row: Row) -> Branch:
        branch = self.branches.get(row.values["branch"].lower())
        if branch is None:
            known = ", ".join(sorted(branch.code for branch in self.branches.values()))
            raise RowProblem(row, "branch", row.values["branch"],
                             f"No branch with this code; known: {known or 'none'}.")
        return branch

    def rep(self, row: Row, column: str) -> User:
        value = row.values[column]
        rep = self.reps_by_external.get(value) or self.reps_by_username.get(value.lower())
        if rep is None:
            raise RowProblem(row, column, value, "No rep with this external id or username.")
        return rep

    def load_accounts(self, external_ids: Iterable[str], *options: Any) -> dict[str, Account]:
        found: dict[str, Account] = {}
        for part in chunks(set(external_ids)):
            query = select(Account).where(Account.external_id.in_(part)).options(*options)
            found.update({account.external_id: account
                          for account in self.session.scalars(query).unique()})
        return found

    def account(self, row: Row, column: str = "account") -> Account:
        account = self.accounts.get(row.values[column])
        if account is None:
            raise RowProblem(row, column, row.values[column], "No account with this external id.")
        return account

    def optional(self, column: str, fields: dict[str, Any], value: Any,
                 name: str | None = None) -> None:
        """Set a field from an optional column only when the file has that column."""
        if column in self.columns:
            fields[name or column] = value


class RepImporter(Importer):
    def prepare(self, rows: list[Row]) -> None:
        self.users_by_username = {user.username.lower(): user
                                  for user in self.session.scalars(select(User))}
        self.password_hash: str | None = None

    def apply(self, row: Row) -> str:
        values = row.values
        branch = self.branch(row)
        username = values["username"].lower()
        user = self.reps_by_external.get(values["external_id"])
        holder = self.users_by_username.get(username)
        if user is None and holder is not None:
            if holder.role != Role.REP or holder.external_id is not None:
                raise RowProblem(row, "username", values["username"],
                                 "This username belongs to another user.")
            user = holder  # a rep created by hand, now linked to the CRM
        elif holder is not None and holder is not user:
            raise RowProblem(row, "username", values["username"],
                             "This username belongs to another user.")
        if user is not None and user.role != Role.REP:
            raise RowProblem(row, "external_id", values["external_id"], "Not a rep.")
        fields = {"username": username, "display_name": values["name"],
                  "branch_id": branch.id, "external_id": values["external_id"]}
        self.optional("hire_date", fields, values.get("hire_date"), "hired_on")
        self.optional("status", fields, values.get("status"))
        if user is None:
            if self.password_hash is None:
                # Nobody knows this password: imported reps sign in once an admin sets one.
                self.password_hash = hash_password(secrets.token_urlsafe(32))
            status = fields.get("status") or RepStatus.ACTIVE
            user = User(**{**fields, "status": status}, role=Role.REP,
                        password_hash=self.password_hash, is_active=status != RepStatus.LEFT,
                        session_token=new_session_token(), failed_login_count=0,
                        created_at=self.now)
            self.session.add(user)
            self.users_by_username[username] = user
            self.remember_rep(user)
            return "added"
        previous_username = user.username.lower()
        changed = set_fields(user, fields)
        if user.status == RepStatus.LEFT and user.is_active:
            user.is_active = False
            user.session_token = new_session_token()  # their open sessions end now
            changed = True
        if changed:
            self.users_by_username.pop(previous_username, None)
            self.users_by_username[username] = user
            self.reps_by_username.pop(previous_username, None)
            self.remember_rep(user)
        return "updated" if changed else "unchanged"


class AccountImporter(Importer):
    def prepare(self, rows: list[Row]) -> None:
        self.accounts = self.load_accounts((row.values["external_id"] for row in rows),
                                           selectinload(Account.contacts))
        self.limit = capacity_max(self.session)
        self.names = {rep.id: rep.display_name for rep in self.reps_by_username.values()}
        # Lock what this file may move, in the order every ownership change locks: accounts,
        # then reps, so that an import and a transfer never wait for each other in a circle.
        lock_accounts(self.session, [account.id for account in self.accounts.values()])
        if "owner" in self.columns:
            named = {str(row.values.get("owner") or "") for row in rows}
            lock_reps(self.session, [
                rep.id for value in named
                if (rep := self.reps_by_external.get(value)
                    or self.reps_by_username.get(value.lower())) is not None])

    def new_owner(self, row: Row, account: Account | None) -> int | None:
        current = account.owner_id if account else None
        if "owner" not in self.columns:
            return current
        if not row.values.get("owner"):
            if current is not None:
                raise RowProblem(row, "owner", "", f"The account is held by "
                                 f"{self.names.get(current, current)}; an import cannot take it "
                                 f"away without naming the new owner. Release it for bidding "
                                 f"instead.")
            return None
        rep = self.rep(row, "owner")
        if rep.id != current:
            if not rep.is_active or rep.status == RepStatus.LEFT:
                raise RowProblem(row, "owner", row.values["owner"],
                                 f"{rep.display_name} has left and cannot receive accounts.")
            listing = unfinished_listing_of(self.session, account.id) if account else None
            if listing is not None:
                raise RowProblem(row, "owner", row.values["owner"],
                                 f"The account is listed in round {listing.round_id}; decide it "
                                 "there or withdraw the listing first.")
        return rep.id

    def apply(self, row: Row) -> str:
        values = row.values
        branch = self.branch(row)
        account = self.accounts.get(values["external_id"])
        owner_id = self.new_owner(row, account)
        changed = False
        if account is not None and owner_id != account.owner_id:
            # Moving an account bidhub holds is a transfer, within capacity, before anything
            # else in the row changes.
            self.transfer(row, account, owner_id, limit=self.limit)
            changed = True
        fields = {"name": values["name"], "industry": values["industry"],
                  "ownership_type": values["ownership_type"], "branch_id": branch.id,
                  "annual_value_yuan": values["annual_value_yuan"]}
        self.optional("executive_sponsor", fields, values.get("executive_sponsor"))
        if account is None:
            account = Account(external_id=values["external_id"], owner_id=None,
                              created_at=self.now, **{"executive_sponsor": None, **fields})
            self.session.add(account)
            self.accounts[account.external_id] = account
            outcome, changed = "added", True
        else:
            outcome, changed = "updated", set_fields(account, fields) or changed
        for role in CONTACT_ROLES:
            name = values.get(role)
            if not name:
                continue
            existing = [contact for contact in account.contacts if contact.role == role]
            if not existing:
                account.contacts.append(Contact(role=role, name=name))
                changed = True
            elif existing[0].name != name:
                existing[0].name = name
                changed = True
        if outcome == "added" and owner_id is not None:
            # An account bidhub has never seen arrives with the CRM's owner as it is, even past
            # capacity: that is the state the company is in, and management releases accounts
            # from over-capacity reps. Its first owner is filed all the same.
            self.session.flush()
            self.transfer(row, account, owner_id, limit=None)
        if outcome == "added":
            return outcome
        return "updated" if changed else "unchanged"

    def transfer(self, row: Row, account: Account, to_rep_id: int, *, limit: int | None) -> None:
        try:
            change_owners(self.session, [OwnerChange(account.id, to_rep_id, filing={
                "kind": FilingKind.CRM_IMPORT, "reason": CRM_IMPORT_REASON,
                "decided_by_id": self.actor_id})], limit=limit, now=self.now,
                accounts={account.id: account})
        except CapacityExceeded as error:
            raise RowProblem(row, "owner", row.values.get("owner"), str(error)) from error


class OpportunityImporter(Importer):
    def prepare(self, rows: list[Row]) -> None:
        self.accounts = self.load_accounts(row.values["account"] for row in rows)
        self.opportunities: dict[str, Opportunity] = {}
        for part in chunks({row.values["external_id"] for row in rows}):
            query = (select(Opportunity).where(Opportunity.external_id.in_(part))
                     .options(selectinload(Opportunity.stage_changes)))
            self.opportunities.update({opportunity.external_id: opportunity
                                       for opportunity in self.session.scalars(query)})

    def apply(self, row: Row) -> str:
        values = row.values
        account, rep = self.account(row), self.rep(row, "rep")
        fields = {"account_id": account.id, "rep_id": rep.id,
                  "amount_yuan": values["amount_yuan"], "stage": values["stage"],
                  "opened_at": self.instant(values["opened"])}
        closed = values.get("closed")
        self.optional("closed", fields, self.instant(closed) if closed else None, "closed_at")
        history = [(stage, self.instant(day)) for stage, day in values.get("stage_history") or ()]
        opportunity = self.opportunities.get(values["external_id"])
        if opportunity is None:
            opportunity = Opportunity(external_id=values["external_id"],
                                      **{"closed_at": None, **fields})
            self.session.add(opportunity)
            self.session.flush()
            self.opportunities[opportunity.external_id] = opportunity
            outcome, changed = "added", True
        else:
            outcome, changed = "updated", set_fields(opportunity, fields)
        stored = [(change.stage, change.changed_at) for change in opportunity.stage_changes]
        if history and history != stored:
            for change in list(opportunity.stage_changes):
                self.session.delete(change)
            self.session.add_all([
                OpportunityStageChange(opportunity_id=opportunity.id, stage=stage, changed_at=at)
                for stage, at in history])
            self.session.flush()
            self.session.expire(opportunity, ["stage_changes"])
            changed = True
        if outcome == "added":
            return outcome
        return "updated" if changed else "unchanged"


class ForecastImporter(Importer):
    def prepare(self, rows: list[Row]) -> None:
        self.forecasts = {(forecast.rep_id, forecast.month): forecast
                          for forecast in self.session.scalars(select(MonthlyForecast))}
        self.seen: dict[tuple[int, date], int] = {}

    def apply(self, row: Row) -> str:
        values = row.values
        rep = self.rep(row, "rep")
        key = (rep.id, values["month"])
        if key in self.seen:
            raise RowProblem(row, "rep + month", f"{values['rep']}, {values['month']:%Y-%m}",
                             f"Also in row {self.seen[key]}; each rep + month may appear "
                             f"only once.")
        self.seen[key] = row.number
        fields = {"forecast_yuan": values["forecast_yuan"]}
        self.optional("actual_yuan", fields, values.get("actual_yuan"))
        forecast = self.forecasts.get(key)
        if forecast is None:
            forecast = MonthlyForecast(rep_id=rep.id, month=values["month"],
                                       **{"actual_yuan": None, **fields})
            self.session.add(forecast)
            self.forecasts[key] = forecast
            return "added"
        return "updated" if set_fields(forecast, fields) else "unchanged"


class IncidentImporter(Importer):
    def prepare(self, rows: list[Row]) -> None:
        self.accounts = self.load_accounts(row.values["account"] for row in rows)
        self.incidents: dict[str, AccountabilityIncident] = {}
        for part in chunks({row.values["external_id"] for row in rows}):
            query = select(AccountabilityIncident).where(
                AccountabilityIncident.external_id.in_(part))
            self.incidents.update({incident.external_id: incident
                                   for incident in self.session.scalars(query).unique()})

    def apply(self, row: Row) -> str:
        values = row.values
        account, rep = self.account(row), self.rep(row, "rep")
        seen_at = self.instant(values["seen"])
        if seen_at > self.now:
            raise RowProblem(row, "seen", values["seen"].isoformat(),
                             "The sighting cannot be in the future.")
        fields = {"account_id": account.id, "rep_id": rep.id,
                  "competitor_site": values["competitor_site"], "seen_at": seen_at,
                  "ad_type": values["ad_type"]}
        self.optional("status", fields, values.get("status"))
        self.optional("explanation", fields, values.get("explanation"))
        incident = self.incidents.get(values["external_id"])
        if incident is None:
            incident = AccountabilityIncident(
                external_id=values["external_id"], logged_by_id=self.actor_id,
                **{"status": "open", "explanation": "", **fields})
            self.session.add(incident)
            self.incidents[incident.external_id] = incident
            return "added"
        return "updated" if set_fields(incident, fields) else "unchanged"


IMPORTERS: dict[str, type[Importer]] = {
    ImportKind.REPS: RepImporter,
    ImportKind.ACCOUNTS: AccountImporter,
    ImportKind.OPPORTUNITIES: OpportunityImporter,
    ImportKind.FORECASTS: ForecastImporter,
    ImportKind.INCIDENTS: IncidentImporter,
}
