"""The accountability workflow (销售监控问责): management logs and resolves, reps explain."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

from flask import Blueprint, Flask, Response, abort, current_app, flash, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.file import FileField
from wtforms import DateTimeLocalField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import Optional

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.errors import Conflict, InvalidRequest
from bidhub.models import IncidentStatus, Role
from bidhub.services import accountability, browse, limits
from bidhub.services.accountability import (
    OFFERED_AD_TYPES,
    WATCHED_PAGE_AREAS,
    AdType,
    Outcome,
    PageArea,
)
from bidhub.services.policies import accountability_policy
from bidhub.web import params
from bidhub.web.access import managers, rep_only, roles_required
from bidhub.web.csv_export import csv_response, export_language
from bidhub.web.forms import LOCAL_DATETIME_FORMATS, Form, Required, TextLength, choice_id, options
from bidhub.web.i18n import local_to_utc, translate, utc_to_local
from bidhub.web.labels import (
    AD_TYPE_LABELS,
    INCIDENT_OUTCOME_LABELS,
    INCIDENT_STATUS_LABELS,
    PAGE_AREA_LABELS,
    label,
)
from bidhub.web.rendering import branch_name, localtime, redirect_after_post, render

blueprint = Blueprint("accountability", __name__)


class IncidentForm(Form):
    account = StringField(_l("Account (customer number or exact name)"),
                          validators=[Required(), TextLength(max=200)])
    competitor_site = StringField(_l("Competitor site"),
                                  validators=[Required(), TextLength(max=200)])
    ad_type = SelectField(_l("Kind of ad"), validators=[Required()],
                          choices=options({kind: AD_TYPE_LABELS[kind] for kind in OFFERED_AD_TYPES}))
    page_area = SelectField(_l("Where on the site"), validators=[Required()], choices=options(
        {area: PAGE_AREA_LABELS[area] for area in WATCHED_PAGE_AREAS}))
    seen_at = DateTimeLocalField(_l("Seen at (local time)"), format=LOCAL_DATETIME_FORMATS,
                                 validators=[Required()])
    evidence_url = StringField(
        _l("Evidence link"), description=_l("http:// or https:// address of the ad or a screenshot."),
        validators=[Optional(), TextLength(max=accountability.MAX_EVIDENCE_URL_LENGTH)])
    evidence_image = FileField(
        _l("Screenshot"), description=_l("PNG, JPEG or WebP, at most %(megabytes)d MB. Give a link, "
                                         "a screenshot or both.",
                                         megabytes=accountability.MAX_EVIDENCE_BYTES // 2**20))


class ResolveForm(Form):
    outcome = SelectField(_l("Outcome"), choices=options(INCIDENT_OUTCOME_LABELS),
                          validators=[Required()])
    note = TextAreaField(_l("Note (required to uphold)"),
                         validators=[Optional(), TextLength(max=5000)])
    version = HiddenField()


class ExplanationForm(Form):
    explanation = TextAreaField(
        _l("Explanation (问责客户说明表)"),
        description=_l("At least %(count)d characters.", count=limits.MIN_EXPLANATION_LENGTH),
        validators=[Required(), TextLength(min=limits.MIN_EXPLANATION_LENGTH, max=10_000)])


class AccountabilityReleaseForm(Form):
    round_id = SelectField(_l("Draft round"), coerce=choice_id, validators=[Required()])
    # The owner the card showed ("none": no owner), whom the review is written about.
    owner = HiddenField()
    review_text = TextAreaField(
        _l("Review: why does the account leave its rep?"),
        description=_l("At least %(count)d characters.", count=limits.MIN_REVIEW_LENGTH),
        validators=[Required(),
                    TextLength(min=limits.MIN_REVIEW_LENGTH, max=limits.MAX_REVIEW_LENGTH)])


def unique_ids(form: Form, suffix: int) -> Form:
    """Give a form's fields ids of their own, for pages showing one form per row."""
    for field in form:
        if field.type not in ("CSRFTokenField", "HiddenField"):
            field.id = field.label.field_id = f"{field.name}-{suffix}"
    return form


def version_of(value: str | None) -> int:
    return params.parse_version(value)


def policy():
    """The accountability policy in force for this app (its settings, else the defaults)."""
    return accountability_policy(current_app.config)


def evidence_folder() -> Path:
    """Where screenshots are kept: EVIDENCE_FOLDER, else the instance folder's evidence/."""
    return Path(current_app.config.get("EVIDENCE_FOLDER")
                or Path(current_app.instance_path) / "evidence")


def uploaded_image() -> bytes | None:
    """The screenshot's bytes, read up to one byte past the limit so a bigger one is refused
    without holding more; None when none was sent."""
    upload = request.files.get("evidence_image")
    if upload is None or not upload.filename:
        return None
    return upload.stream.read(accountability.MAX_EVIDENCE_BYTES + 1)


NO_OWNER = "none"


def owner_value(owner_id: int | None) -> str:
    """The release form's `owner`: the owner's id, or NO_OWNER."""
    return NO_OWNER if owner_id is None else str(owner_id)


def release_form(formdata=None) -> AccountabilityReleaseForm:
    form = AccountabilityReleaseForm(formdata=formdata)
    form.round_id.choices = options({round_.id: round_.title for round_ in
                                     accountability.draft_rounds(get_session())})
    return form


# --- management ----------------------------------------------------------------------------

def incidents_page(*, log_form: IncidentForm | None = None, failed_resolve: tuple | None = None,
                   failed_release: tuple | None = None, status: int = 200):
    session = get_session()
    current = now()
    wanted = request.args.get("status", "")
    wanted = wanted if wanted in set(IncidentStatus) else ""
    incidents = accountability.incidents_for_management(session, wanted)
    if log_form is None:
        log_form = IncidentForm(formdata=None)
        log_form.seen_at.data = utc_to_local(current).replace(second=0, microsecond=0,
                                                              tzinfo=None)
    resolve_forms = {}
    for incident in incidents:
        if incident.status in accountability.RESOLVED_STATUSES:
            continue
        if failed_resolve and failed_resolve[0] == incident.id:
            resolve_forms[incident.id] = unique_ids(failed_resolve[1], incident.id)
        else:
            form = ResolveForm(formdata=None, version=str(incident.version))
            form.outcome.data = (Outcome.ACCEPTED.value
                                 if incident.status == IncidentStatus.EXPLAINED
                                 else Outcome.UPHELD.value)
            resolve_forms[incident.id] = unique_ids(form, incident.id)
    due = accountability.accounts_due_for_release(session, current)
    release_forms = {account.id: unique_ids(failed_release[1] if failed_release
                                            and failed_release[0] == account.id
                                            else release_form(), account.id)
                     for account, _count in due}
    for account, _count in due:  # the owner each card shows now
        release_forms[account.id].owner.data = owner_value(account.owner_id)
    # A refused release of an account not (or no longer) on the list still says why.
    page_errors = ([*failed_release[1].form_errors, *failed_release[1].round_id.errors,
                    *failed_release[1].review_text.errors]
                   if failed_release and failed_release[0] not in release_forms else [])
    return render("accountability/incidents.html", status=status, incidents=incidents,
                  wanted=wanted, log_form=log_form, resolve_forms=resolve_forms,
                  due_for_release=due, release_forms=release_forms,
                  days_open=lambda incident: accountability.days_open(incident, current),
                  is_overdue=lambda incident: accountability.is_overdue(incident, current),
                  status_labels=INCIDENT_STATUS_LABELS, ad_type_labels=AD_TYPE_LABELS,
                  upheld_needed=accountability.REPEAT_UPHELD_COUNT, page_errors=page_errors,
                  policy=policy())


@blueprint.route("/manage/accountability", endpoint="incidents")
@managers
def incidents():
    return incidents_page()


@blueprint.route("/manage/accountability/log", methods=["POST"])
@managers
def log_incident():
    session = get_session()
    form = IncidentForm()
    if form.validate_on_submit():
        try:
            account = browse.require_account(session, form.account.data)
            incident = accountability.log_incident(
                session, current_user, account_id=account.id,
                competitor_site=form.competitor_site.data, ad_type=form.ad_type.data,
                page_area=form.page_area.data, seen_at=local_to_utc(form.seen_at.data),
                evidence_url=form.evidence_url.data or "", evidence_image=uploaded_image(),
                evidence_folder=evidence_folder(), policy=policy(), now=now(),
                zone=current_app.config["TIMEZONE"])
        except InvalidRequest as error:
            form.add_error(error)
            return incidents_page(log_form=form, status=422)
        flash(_("Incident logged against %(rep)s; explanation due %(due)s.",
                rep=incident.rep.display_name,
                due=localtime(incident.explanation_due_at)),
              "success")
        return redirect_after_post(url_for("accountability.incidents"))
    return incidents_page(log_form=form, status=422)


@blueprint.route("/manage/accountability/incidents/<int:incident_id>/resolve", methods=["POST"])
@managers
def resolve(incident_id: int):
    session = get_session()
    accountability.load_incident(session, incident_id)  # 404 before anything else
    form = ResolveForm()
    if form.validate_on_submit():
        try:
            accountability.resolve_incident(
                session, current_user, incident_id, outcome=form.outcome.data,
                note=form.note.data or "", expected_version=version_of(form.version.data),
                now=now())
        except InvalidRequest as error:
            form.add_error(error)
            return incidents_page(failed_resolve=(incident_id, form), status=422)
        flash(_("Incident resolved."), "success")
        return redirect_after_post(url_for("accountability.incidents"))
    return incidents_page(failed_resolve=(incident_id, form), status=422)


@blueprint.route("/manage/accountability/accounts/<int:account_id>/release", methods=["POST"])
@managers
def release(account_id: int):
    session = get_session()
    form = release_form(request.form)
    expected_owner_id = (None if form.owner.data == NO_OWNER
                         else params.parse_id(form.owner.data or ""))
    if form.owner.data != NO_OWNER and expected_owner_id is None:
        form.form_errors.append(_("This form is incomplete; release the account again from "
                                  "the page as it is now."))
        return incidents_page(failed_release=(account_id, form), status=422)
    if form.validate_on_submit():
        try:
            listing = accountability.release_for_accountability(
                session, current_user, account_id, round_id=form.round_id.data,
                expected_owner_id=expected_owner_id,
                review_text=form.review_text.data or "", now=now())
        except Conflict as error:
            # Drawn again: the card shows who holds the account now.
            form.form_errors.append(translate(error))
            return incidents_page(failed_release=(account_id, form), status=409)
        except InvalidRequest as error:
            form.add_error(error)
            return incidents_page(failed_release=(account_id, form), status=422)
        flash(_("%(name)s released into the round.", name=listing.account.name), "success")
        return redirect_after_post(url_for("manage.round_detail", round_id=listing.round_id))
    return incidents_page(failed_release=(account_id, form), status=422)


@blueprint.route("/accountability/incidents/<int:incident_id>/evidence")
@roles_required(Role.REP, Role.KA_MANAGER, Role.ADMIN)
def evidence(incident_id: int):
    """The incident's screenshot, for management and the incident's rep only; the stored name
    comes from the database (a content hash), never from the request."""
    incident = accountability.viewable_incident(get_session(), current_user, incident_id)
    found = accountability.evidence_file(evidence_folder(), incident)
    if found is None:
        abort(404)
    path, media_type = found
    # Read whole (at most MAX_EVIDENCE_BYTES): nothing stays open after the response.
    return Response(path.read_bytes(), mimetype=media_type, headers={
        "Content-Disposition": f'inline; filename="evidence-{incident.id}{path.suffix}"',
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
        "Content-Security-Policy": "default-src 'none'; sandbox"})


def requested_period() -> tuple[date, date]:
    """The period asked for with ?start=, else the last complete one (the report's subject)."""
    day = params.day_arg(request.args, "start")
    if day is None:
        return accountability.last_complete_period(utc_to_local(now()).date())
    return accountability.two_week_period(day)


def period_report(start: date, end: date) -> accountability.Report:
    return accountability.two_weekly_report(
        get_session(), local_to_utc(datetime.combine(start, time())),
        local_to_utc(datetime.combine(end, time())), now=now())


@blueprint.route("/manage/accountability/report")
@managers
def report():
    start, end = requested_period()
    previous, following = accountability.neighbouring_periods(start)
    latest_start, _latest_end = accountability.last_complete_period(utc_to_local(now()).date())
    return render("accountability/report.html", report=period_report(start, end), start=start,
                  last_day=date.fromordinal(end.toordinal() - 1), previous=previous,
                  following=following, complete=end <= utc_to_local(now()).date(),
                  latest_start=latest_start, anchor=accountability.PERIOD_ANCHOR)


REPORT_COLUMNS = (_l("Incident"), _l("Seen at (local)"), _l("Account number"), _l("Account"),
                  _l("Branch"), _l("Rep"), _l("Competitor site"), _l("Where on the site"),
                  _l("Ad type"), _l("Evidence link"), _l("Status"),
                  _l("Explanation due (local)"), _l("Explained at (local)"),
                  _l("Resolved at (local)"), _l("Days open"), _l("Overdue"), _l("Explanation"),
                  _l("Resolution note"))
TOTALS_COUNTS = (_l("Logged"), _l("Explained"), _l("Accepted"), _l("Upheld"), _l("Overdue"))


def local_text(instant: datetime | None) -> str:
    return "" if instant is None else utc_to_local(instant).strftime("%Y-%m-%d %H:%M")


def incident_record(row: accountability.ReportRow) -> list:
    incident = row.incident
    return [incident.id, local_text(incident.seen_at), incident.account.external_id,
            incident.account.name, branch_name(incident.account.branch),
            incident.rep.display_name, incident.competitor_site,
            label(incident.page_area, PageArea), label(incident.ad_type, AdType),
            incident.evidence_url, label(incident.status, IncidentStatus),
            local_text(incident.explanation_due_at), local_text(incident.explained_at),
            local_text(incident.resolved_at), row.days_open,
            _("yes") if row.overdue else _("no"), incident.explanation,
            incident.resolution_note]


def totals_records(report: accountability.Report) -> list[list]:
    """The totals below the incidents, as on the page: a block per rep, then a block per
    branch, each with its own heading row (a branch is not a person's name) and the row for
    all; a blank row before each block."""
    per_rep = [[_("Rep"), rep.display_name, *totals.counts()] for rep, totals in report.by_rep]
    per_branch = [[_("Branch"), branch_name(branch), *totals.counts()]
                  for branch, totals in report.by_branch]
    everything = [_("All"), "", *report.total.counts()]
    return [[], [_("Totals"), _("Rep"), *map(str, TOTALS_COUNTS)], *per_rep, everything,
            [], [_("Totals"), _("Branch"), *map(str, TOTALS_COUNTS)], *per_branch, everything]


@blueprint.route("/manage/accountability/report.csv")
@managers
def report_csv():
    start, end = requested_period()
    report = period_report(start, end)
    with export_language():
        records = [incident_record(row) for row in report.rows]
        return csv_response(f"bidhub-accountability-{start:%Y%m%d}.csv", REPORT_COLUMNS,
                            records, totals_records(report))


# --- reps --------------------------------------------------------------------------------------

def inbox_page(failed: tuple | None = None, status: int = 200):
    session = get_session()
    current = now()
    incidents = accountability.incidents_of_rep(session, current_user)
    forms = {incident.id: unique_ids(failed[1] if failed and failed[0] == incident.id
                                     else ExplanationForm(formdata=None), incident.id)
             for incident in incidents if accountability.awaits_explanation(incident)}
    return render("accountability/inbox.html", status=status, incidents=incidents, forms=forms,
                  is_overdue=lambda incident: accountability.is_overdue(incident, current),
                  status_labels=INCIDENT_STATUS_LABELS, ad_type_labels=AD_TYPE_LABELS,
                  explanation_days=policy().explanation_days)


@blueprint.route("/my/accountability", endpoint="inbox")
@rep_only
def inbox():
    return inbox_page()


@blueprint.route("/my/accountability/<int:incident_id>/explain", methods=["POST"])
@rep_only
def explain(incident_id: int):
    session = get_session()
    accountability.own_incident(session, current_user, incident_id)  # others' -> 404
    form = ExplanationForm()
    if form.validate_on_submit():
        try:
            accountability.explain_incident(session, current_user, incident_id,
                                            explanation=form.explanation.data, now=now())
        except InvalidRequest as error:
            form.add_error(error)
            return inbox_page(failed=(incident_id, form), status=422)
        flash(_("Explanation filed. KA management will review it."), "success")
        return redirect_after_post(url_for("accountability.inbox"))
    return inbox_page(failed=(incident_id, form), status=422)


@blueprint.record_once
def register_nav(state) -> None:
    app: Flask = state.app
    # A mistyped setting stops start-up with its name rather than failing each request.
    accountability_policy(app.config)
