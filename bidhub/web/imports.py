"""Admins import CRM exports (CSV or XLSX) and read each import's report."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, SelectField
from wtforms.validators import InputRequired

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.imports import COLUMNS
from bidhub.models import ImportRun
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
        result = imports.import_file(
            get_session(), current_user, form.kind.data, upload_file.filename or "upload",
            upload_file.read(), valid_rows_only=form.valid_rows_only.data, now=now(),
            zone=current_app.config["TIMEZONE"])
        return redirect_after_post(url_for("imports.run", run_id=result.run_id))
    return page(form, 422 if form.is_submitted() else 200)


@blueprint.route("/<int:run_id>", endpoint="run")
@admins
def run(run_id: int):
    session = get_session()
    import_run = session.get(ImportRun, run_id)
    if import_run is None:
        abort(404)
    return render("imports/run.html", run=import_run, kind_labels=KIND_LABELS,
                  actors=imports.actor_names(session, [import_run]))
