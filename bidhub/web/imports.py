"""Admins import CRM exports (CSV or XLSX) and read each import's report."""

from __future__ import annotations

import queue
import threading

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    stream_template,
    stream_with_context,
    url_for,
)
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, SelectField
from wtforms.validators import InputRequired

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.imports import COLUMNS
from bidhub.models import ImportRun, User
from bidhub.services import imports
from bidhub.web.access import admins
from bidhub.web.forms import Form, options
from bidhub.web.rendering import redirect_after_post, render, render_form_errors

blueprint = Blueprint("imports", __name__, url_prefix="/admin/imports")

KIND_LABELS = {"reps": _l("Reps"), "accounts": _l("Accounts"),
               "opportunities": _l("Opportunities"), "forecasts": _l("Monthly forecasts"),
               "incidents": _l("Accountability incidents")}


class ImportForm(Form):
    kind = SelectField(_l("What the file holds"), choices=options(KIND_LABELS),
                       validators=[InputRequired()])
    file = FileField(_l("File (CSV in UTF-8 or GBK, or Excel .xlsx)"),
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
        arguments = {"kind": form.kind.data, "filename": upload_file.filename or "upload",
                     "data": data, "valid_rows_only": form.valid_rows_only.data, "now": now(),
                     "zone": current_app.config["TIMEZONE"],
                     # UploadLimits; unset means the defaults (tests set small ones)
                     "limits": current_app.config.get("IMPORT_LIMITS")}
        if len(data) >= current_app.config["IMPORT_PROGRESS_MIN_BYTES"]:
            return import_with_progress(current_user.id, arguments)
        result = imports.import_file(get_session(), current_user, **arguments)
        return redirect_after_post(url_for("imports.run", run_id=result.run_id))
    return page(form, 422 if form.is_submitted() else 200)


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
            outcome["result" if kind == "done" else "error"] = first
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
    return render("imports/run.html", run=import_run, kind_labels=KIND_LABELS,
                  actors=imports.actor_names(session, [import_run]))
