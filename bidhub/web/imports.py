"""Admins import CRM exports (CSV or XLSX), map their columns, and read each import's report."""

from __future__ import annotations

import functools
import json
import os
import queue
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    request,
    stream_template,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, SelectField

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.errors import Conflict, InvalidRequest
from bidhub.domain.imports import COLUMNS, EXACT, KINDS, SIMILAR, SYNONYM, Message, Problem
from bidhub.domain.text import N_, Text
from bidhub.models import ImportRun, User
from bidhub.services import imports
from bidhub.web.access import admins
from bidhub.web.forms import Form, Required, options
from bidhub.web.labels import CONTACT_ROLE_LABELS
from bidhub.web.params import parse_int
from bidhub.web.rendering import redirect_after_post, render, render_form_errors

blueprint = Blueprint("imports", __name__, url_prefix="/admin/imports")

KIND_LABELS = {"branches": _l("Branches"), "reps": _l("Reps"), "accounts": _l("Accounts"),
               "opportunities": _l("Opportunities"), "forecasts": _l("Monthly forecasts"),
               "incidents": _l("Accountability incidents")}


# The preview shows a coded value by its label (民营, not private): field -> set of labels.
VALUE_LABELS = {
    "reps": {"status": "rep_status"},
    "accounts": {"ownership_type": "ownership", "executive_sponsor": "sponsor"},
    "opportunities": {"stage": "stage"},
    "incidents": {"ad_type": "ad_type", "page_area": "page_area",
                  "status": "incident_status"},
}


# What each kind's fields are called on the pages; the field names themselves (external_id,
# annual_value_yuan) are for files' headers and the command line's --map.
_SHARED_FIELD_LABELS = {"branch": _l("Branch"), "account": _l("Account id"), "rep": _l("Rep")}
FIELD_LABELS = {
    "branches": {"code": _l("Branch code"), "name": _l("Branch name"),
                 "name_zh": _l("Chinese name")},
    "reps": {"external_id": _l("Employee id"), "username": _l("Username"), "name": _l("Name"),
             "branch": _SHARED_FIELD_LABELS["branch"], "hire_date": _l("Hire date"),
             "status": _l("Employment status")},
    "accounts": {"external_id": _SHARED_FIELD_LABELS["account"], "name": _l("Account name"),
                 "industry": _l("Industry"), "ownership_type": _l("Ownership"),
                 "branch": _SHARED_FIELD_LABELS["branch"], "annual_value_yuan": _l("Annual value"),
                 "owner": _l("Owning rep"), "executive_sponsor": _l("Executive sponsor"),
                 **CONTACT_ROLE_LABELS},
    "opportunities": {"external_id": _l("Opportunity id"),
                      "account": _SHARED_FIELD_LABELS["account"],
                      "rep": _SHARED_FIELD_LABELS["rep"], "amount_yuan": _l("Amount"),
                      "stage": _l("Stage"), "opened": _l("Opened on"), "closed": _l("Closed on"),
                      "stage_history": _l("Stage history")},
    "forecasts": {"rep": _SHARED_FIELD_LABELS["rep"], "month": _l("Month"),
                  "forecast_yuan": _l("Forecast amount"), "actual_yuan": _l("Actual amount")},
    "incidents": {"external_id": _l("Incident id"), "account": _SHARED_FIELD_LABELS["account"],
                  "rep": _SHARED_FIELD_LABELS["rep"], "competitor_site": _l("Competitor site"),
                  "seen": _l("Seen on"), "ad_type": _l("Ad type"), "page_area": _l("Page area"),
                  "evidence_url": _l("Evidence link"), "status": _l("Status"),
                  "explanation": _l("Explanation")},
}
# A key of two fields, as reports name it ("rep + month").
KEY_SEPARATOR = " + "


def field_label(kind: str, name: str) -> str:
    """A field of a kind by its label in the page's language; a name it lacks as it is."""
    label = FIELD_LABELS.get(kind, {}).get(name)
    return name if label is None else str(label)


def reported_column(kind: str, column: str) -> str:
    """A report's column in the page's language: a field (or a key of fields, or a missing
    required column, named "external_id / 员工编号") by its label; a column of the file, as
    the file names it."""
    labels = FIELD_LABELS.get(kind, {})
    if column in labels:
        return field_label(kind, column)
    names = column.split(KEY_SEPARATOR)
    if len(names) > 1 and all(name in labels for name in names):
        return KEY_SEPARATOR.join(field_label(kind, name) for name in names)
    name, separator, chinese = column.partition(" / ")
    known = next((known for known in COLUMNS.get(kind, ()) if known.name == name), None)
    if separator and known is not None and known.chinese == chinese:
        return field_label(kind, name)
    return column


def reported_message(kind: str, message: Message) -> Message:
    """A report's message with the fields it names ('%(field)s', '%(key)s') by their labels."""
    if not isinstance(message, Text):
        return message
    params = {name: reported_column(kind, value)
              if name in ("field", "key") and isinstance(value, str) else value
              for name, value in message.params.items()}
    return Text(message.msgid, params)


def reported_problem(kind: str, problem: Problem) -> Problem:
    return Problem(problem.row, reported_column(kind, problem.column), problem.value,
                   reported_message(kind, problem.reason))


class ImportForm(Form):
    kind = SelectField(_l("What the file holds"), choices=options(KIND_LABELS),
                       validators=[Required()])
    file = FileField(_l("File (CSV or tab-separated text in UTF-8, GBK or UTF-16, or Excel .xlsx "
                        "or .xls)"),
                     validators=[FileRequired(_l("Choose a file."))])
    valid_rows_only = BooleanField(_l("Import the valid rows and report the others"))


def page(form: ImportForm, status: int = 200):
    session = get_session()
    runs = imports.import_runs(session)
    context = {"form": form, "runs": runs, "actors": imports.actor_names(session, runs),
               "columns": COLUMNS, "kind_labels": KIND_LABELS,
               "limit_mib": current_app.config["MAX_CONTENT_LENGTH"] / (1024 * 1024)}
    if status == 422:
        return render_form_errors("imports/upload.html", **context)
    return render("imports/upload.html", **context)


@blueprint.route("/", methods=["GET", "POST"], endpoint="upload")
@admins
def upload():
    form = ImportForm()
    if form.validate_on_submit():
        upload_file = form.file.data
        data = upload_file.read()
        filename = upload_file.filename or "upload"
        proposal = imports.propose_mapping(get_session(), form.kind.data, filename, data,
                                           limits=import_limits())
        if proposal is not None and proposal.needed:
            # The columns need a mapping (or one is saved for them): the file waits on the
            # server while the admin confirms it.
            token = store_pending(PendingUpload(form.kind.data, filename, current_user.id,
                                                now(), form.valid_rows_only.data), data)
            return redirect_after_post(url_for("imports.mapping", token=token))
        arguments = {"kind": form.kind.data, "filename": filename,
                     "data": data, "valid_rows_only": form.valid_rows_only.data, "now": now(),
                     "zone": current_app.config["TIMEZONE"], "limits": import_limits()}
        if len(data) >= current_app.config["IMPORT_PROGRESS_MIN_BYTES"]:
            return import_with_progress(current_user.id, arguments)
        result = imports.import_file(get_session(), current_user, **arguments)
        return redirect_after_post(url_for("imports.run", run_id=result.run_id))
    return page(form, 422 if form.is_submitted() else 200)


def import_limits():
    """UploadLimits from the configuration; unset means the defaults (tests set small ones)."""
    return current_app.config.get("IMPORT_LIMITS")


# --- uploads waiting for their mapping ------------------------------------------------------------
#
# Between the upload and the confirmed mapping the file is kept on the server, under a random
# token, in a folder of the instance; the browser only ever holds the token. A file is removed
# once imported and, unused, after PENDING_LIFETIME.

PENDING_LIFETIME = timedelta(hours=1)
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class PendingUpload:
    kind: str
    filename: str
    actor_id: int
    stored_at: datetime
    valid_rows_only: bool


def pending_folder() -> Path:
    return Path(current_app.config.get("IMPORT_UPLOAD_FOLDER") or os.path.join(
        current_app.instance_path, "import-uploads"))


def store_pending(upload: PendingUpload, data: bytes) -> str:
    folder = pending_folder()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    remove_expired(folder)
    token = secrets.token_urlsafe(32)
    meta = {"kind": upload.kind, "filename": upload.filename, "actor_id": upload.actor_id,
            "stored_at": upload.stored_at.isoformat(), "valid_rows_only": upload.valid_rows_only}
    for suffix, content in ((".data", data), (".json", json.dumps(meta).encode())):
        descriptor = os.open(folder / f"{token}{suffix}", os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
    return token


def read_meta(path: Path) -> PendingUpload | None:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        return PendingUpload(str(meta["kind"]), str(meta["filename"]), int(meta["actor_id"]),
                             datetime.fromisoformat(meta["stored_at"]),
                             bool(meta["valid_rows_only"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_expired(folder: Path) -> None:
    for path in folder.glob("*.json"):
        upload = read_meta(path)
        if upload is None or upload.stored_at + PENDING_LIFETIME <= now():
            discard_pending(folder, path.stem)


def discard_pending(folder: Path, token: str) -> None:
    for suffix in (".data", ".json"):
        (folder / f"{token}{suffix}").unlink(missing_ok=True)


def load_pending(token: str) -> tuple[PendingUpload, bytes]:
    """The upload behind a token, for the admin who made it and not yet expired."""
    refused = InvalidRequest(N_("This upload is unknown or has expired; upload the file "
                                "again."), field="token")
    if not TOKEN_PATTERN.fullmatch(token):
        raise refused
    folder = pending_folder()
    upload = read_meta(folder / f"{token}.json")
    if (upload is None or upload.actor_id != current_user.id or upload.kind not in KINDS
            or upload.stored_at + PENDING_LIFETIME <= now()):
        raise refused
    try:
        data = (folder / f"{token}.data").read_bytes()
    except OSError:
        raise refused from None
    return upload, data


class MappingForm(Form):
    """The mapping step's own fields are read from the request (one select per file column);
    this form carries the CSRF check and the choice of importing the valid rows only."""

    valid_rows_only = BooleanField(_l("Import the valid rows and report the others"))


def posted_mapping(headers: list[str]) -> tuple[dict[str, str], list[str]]:
    """{file column: field} and the acknowledged columns from the mapping form.

    Columns are posted by their position in the header row (column-0, column-1, ...), so a
    column's name never becomes a form key; a position the file does not have is refused.
    """
    def header_at(position: str) -> str:
        # parse_int reads ASCII digits only, and only so many: int() refuses a number of
        # thousands of digits with a ValueError.
        index = parse_int(position, maximum=len(headers) - 1)
        if index is None:
            raise InvalidRequest(N_("The mapping names a column the file does not have."),
                                 field="mapping")
        return headers[index]

    columns: dict[str, str] = {}
    for key, value in request.form.items():
        if key.startswith("column-"):
            columns[header_at(key.removeprefix("column-"))] = value.strip()
    acknowledged = [header_at(value) for value in request.form.getlist("ack")]
    return columns, acknowledged


def mapping_page(token: str, upload: PendingUpload, proposal, form: MappingForm,
                 errors: list | None = None, status: int = 200):
    how_labels = {EXACT: _("its exact name"), SYNONYM: _("a known synonym"),
                  SIMILAR: _("a similar name")}
    return render("imports/mapping.html", status=status, token=token, upload=upload,
                  proposal=proposal, form=form, errors=errors or [],
                  columns=COLUMNS[upload.kind], kind_labels=KIND_LABELS, how_labels=how_labels,
                  **mapping_words(upload.kind))


def mapping_words(kind: str) -> dict:
    """What the mapping step's templates name fields and codes by."""
    return {"value_labels": VALUE_LABELS.get(kind, {}),
            "field_label": functools.partial(field_label, kind),
            "field_labels": lambda names: [field_label(kind, name) for name in names],
            "reported": functools.partial(reported_message, kind)}


@blueprint.route("/map", methods=["GET", "POST"], endpoint="mapping")
@admins
def mapping():
    """The mapping step: each file column beside its field, a preview; confirming imports.

    The upload's token travels in the query string (`?token=`); it names a file on the server.
    """
    token = request.args.get("token", "")
    try:
        upload, data = load_pending(token)
    except InvalidRequest as error:
        return render("imports/expired.html", status=422, error=error)
    session = get_session()
    form = MappingForm(valid_rows_only=upload.valid_rows_only)
    proposal = imports.propose_mapping(session, upload.kind, upload.filename, data,
                                       limits=import_limits())
    if proposal is None:  # it was readable when it was stored; it has been tampered with
        discard_pending(pending_folder(), token)
        return render("imports/expired.html", status=422, error=InvalidRequest(N_(
            "This upload is unknown or has expired; upload the file again.")))
    if not form.is_submitted():
        return mapping_page(token, upload, proposal, form)
    if not form.validate_on_submit():
        return mapping_page(token, upload, proposal, form, status=422)
    try:
        columns, acknowledged = posted_mapping(proposal.headers)
    except InvalidRequest as error:
        return mapping_page(token, upload, proposal, form, [error.message], 422)
    return confirm(token, upload, data, columns, acknowledged, form)


def confirm(token: str, upload: PendingUpload, data: bytes, columns: dict[str, str],
            acknowledged: list[str], form: MappingForm):
    session = get_session()
    try:
        result = imports.import_file(
            session, current_user, upload.kind, upload.filename, data,
            valid_rows_only=bool(form.valid_rows_only.data), now=now(),
            zone=current_app.config["TIMEZONE"], limits=import_limits(),
            mapping=columns, acknowledged=acknowledged)
    except InvalidRequest as error:
        proposal = imports.propose_mapping(session, upload.kind, upload.filename, data,
                                           columns=columns, acknowledged=acknowledged,
                                           limits=import_limits())
        messages = getattr(error.message, "parts", [error.message])
        return mapping_page(token, upload, proposal, form, messages, 422)
    discard_pending(pending_folder(), token)
    return redirect_after_post(url_for("imports.run", run_id=result.run_id))


@blueprint.route("/map/preview", methods=["POST"], endpoint="mapping_preview")
@admins
def mapping_preview():
    """The preview and the check for the mapping as the admin is changing it (htmx)."""
    token = request.args.get("token", "")
    try:
        upload, data = load_pending(token)
    except InvalidRequest as error:
        return render("imports/expired.html", status=422, error=error)
    form = MappingForm()
    if not form.validate_on_submit():
        abort(400)
    session = get_session()
    headers = imports.propose_mapping(session, upload.kind, upload.filename, data,
                                      limits=import_limits())
    if headers is None:
        abort(422)
    try:
        columns, acknowledged = posted_mapping(headers.headers)
    except InvalidRequest as error:
        return render("imports/_mapping_check.html", status=422, proposal=headers,
                      errors=[error.message], upload=upload, **mapping_words(upload.kind))
    proposal = imports.propose_mapping(session, upload.kind, upload.filename, data,
                                       columns=columns, acknowledged=acknowledged,
                                       limits=import_limits())
    return render("imports/_mapping_check.html", proposal=proposal, errors=[], upload=upload,
                  **mapping_words(upload.kind))


def import_with_progress(actor_id: int, arguments: dict):
    """A large file: stream a page that shows rows checked as the import runs, then the link.

    The import runs in a worker thread with its own session; the page is rendered as it goes
    (no script needed), one progress line per report from the import.
    """
    app = current_app._get_current_object()
    reports: queue.Queue = queue.Queue()

    def work() -> None:
        with app.app_context():
            session = get_session()
            try:
                result = imports.import_file(
                    session, session.get(User, actor_id), **arguments,
                    progress=lambda done, total: reports.put(("progress", done, total)))
                reports.put(("done", result, None))
            except Conflict as error:  # lost its races: said on the page, nothing to log
                reports.put(("refused", error, None))
            except Exception as error:  # noqa: BLE001 - reported on the page, then re-raised
                reports.put(("failed", error, None))
                raise

    outcome: dict = {}

    def steps():
        while True:
            kind, first, second = reports.get()
            if kind == "progress":
                yield first, second
                continue
            outcome[{"done": "result", "refused": "refusal"}.get(kind, "error")] = first
            return

    threading.Thread(target=work, name="bidhub-import", daemon=True).start()
    response = Response(stream_with_context(stream_template(
        "imports/progress.html", steps=steps(), outcome=outcome,
        filename=arguments["filename"])))
    response.headers["X-Accel-Buffering"] = "no"  # let proxies pass the progress through
    return response


@blueprint.route("/<int:run_id>", endpoint="run")
@admins
def run(run_id: int):
    session = get_session()
    import_run = session.get(ImportRun, run_id)
    if import_run is None:
        abort(404)
    kind = import_run.kind
    problems = [reported_problem(kind, Problem.from_dict(problem))
                for problem in import_run.report.get("problems", [])]
    warnings = [reported_problem(kind, Problem.from_dict(warning))
                for warning in import_run.report.get("warnings", [])]
    mapping = import_run.report.get("mapping", {})
    # The columns read into a field of another name; a column named as its field's label in
    # the page's language needs no mention.
    columns_read = [f"{column} → {label}" for column, name in mapping.items()
                    if column != (label := field_label(kind, name)) and column != name]
    units = {field_label(kind, name): unit
             for name, unit in import_run.report.get("units", {}).items()}
    return render("imports/run.html", run=import_run, kind_labels=KIND_LABELS,
                  actors=imports.actor_names(session, [import_run]), problems=problems,
                  warnings=warnings, columns_read=columns_read, units=units,
                  hidden=imports.HiddenRowsShown.of(import_run.report),
                  rounded={field_label(kind, name): int(count)
                           for name, count in import_run.report.get("rounded", {}).items()})
