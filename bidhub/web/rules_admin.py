"""Admins tune the scoring rules: edit a draft, check it live, replay past rounds, adopt it."""

from __future__ import annotations

import dataclasses

from flask import Blueprint, abort, flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.errors import Conflict, InvalidRequest
from bidhub.domain.rules import RuleError, RuleProblem, parse_new_rules, parse_rules
from bidhub.models import Round, RuleSetVersion
from bidhub.services import replays, rule_sets
from bidhub.web.access import admins
from bidhub.web.forms import RulesDraftForm, changed_settings, options, rules_settings_form
from bidhub.web.i18n import translate
from bidhub.web.params import parse_id
from bidhub.web.rendering import localtime, redirect_after_post, render

blueprint = Blueprint("rules", __name__, url_prefix="/admin/rules")


def replayable_rounds(session) -> list[Round]:
    return list(session.scalars(select(Round).where(Round.status.in_(replays.FINISHED))
                                .order_by(Round.closes_at.desc())))


def draft_form(session, active: RuleSetVersion, formdata=None) -> RulesDraftForm:
    form = RulesDraftForm(formdata=formdata)
    form.round_id.choices = options({0: "—"} | {
        round_.id: _("%(text)s (%(note)s)", text=round_.title,
                     note=localtime(round_.closes_at, "date"))
        for round_ in replayable_rounds(session)})
    if formdata is None:
        form.text.data = active.text
        form.expected_active_id.data = str(active.id)
    return form


def page(*, draft: RulesDraftForm | None = None, settings=None, drawn: str | None = None,
         status: int = 200):
    """The rules page. The settings form shows the numbers of the rule text `drawn` (the rules
    in force unless given), which the page sends back with it: a number still as drawn there
    was not changed, so writing the form leaves the draft's own value alone."""
    session = get_session()
    active = rule_sets.active_rule_set(session)
    rules = rule_sets.parsed(active)
    draft = draft or draft_form(session, active)
    if settings is None or drawn is None:
        drawn = active.text
    return render("admin/rules.html", status=status, active=active, rules=rules,
                  settings=settings or rules_settings_form(rules), drawn=drawn, draft=draft,
                  adoptions=rule_sets.rule_adoptions(session),
                  check=check_result(draft.text.data or "", active))


def translated(problems) -> list[RuleProblem]:
    """The problems with their reasons in the page's language (key paths stay as written)."""
    return [dataclasses.replace(problem, message=translate(problem.message))
            for problem in problems]


def check_result(text: str, active: RuleSetVersion) -> dict:
    check = rule_sets.check_rules_text(text)
    rules = check.rules
    return {"problems": translated(check.problems), "more": check.more, "count": check.count,
            "diff": rule_sets.rules_diff(active.text, text, (_("active"), _("draft"))),
            "warnings": translated(rules.warnings) if rules else (),
            "hash": rules.version_hash if rules else None,
            "is_active": rules is not None and rules.version_hash == active.sha256}


@blueprint.route("")
@admins
def rules():
    return page()


@blueprint.route("/settings", methods=["POST"])
@admins
def apply_settings():
    """Write the numbers changed in the settings form into the draft being edited (sent along
    with the form); nothing is adopted here. A draft they cannot go into is kept as it was."""
    session = get_session()
    active = rule_sets.active_rule_set(session)
    drawn = request.form.get("drawn_text")
    try:
        basis = parse_rules(drawn) if drawn else None
    except RuleError:
        basis = None  # not a text this page drew the form from
    if basis is None:
        drawn, basis = active.text, rule_sets.parsed(active)
    draft = draft_form(session, active, formdata=request.form)
    if "text" not in request.form:
        draft.text.data = drawn  # a form sent without the draft writes into the text it shows
    if "expected_active_id" not in request.form:
        draft.expected_active_id.data = str(active.id)
    settings = rules_settings_form(basis, formdata=request.form)
    if not settings.validate():
        return page(draft=draft, settings=settings, drawn=drawn, status=422)
    changed, weights = changed_settings(settings, rules_settings_form(basis), basis)
    try:
        text = rule_sets.write_settings(draft.text.data or "", changed, weights)
    except InvalidRequest as error:
        settings.add_error(error)
        return page(draft=draft, settings=settings, drawn=drawn, status=422)
    if text == draft.text.data:
        flash(_("No number in the form was changed, so the draft is as it was."), "info")
        return page(draft=draft, settings=settings, drawn=drawn)
    draft.text.data = text
    flash(_("Draft updated from the form. Check it and replay a round before adopting."), "info")
    try:
        written = parse_rules(text)
    except RuleError:
        # The draft has problems of its own (listed under it); the form keeps what was sent.
        return page(draft=draft, settings=settings, drawn=drawn)
    return page(draft=draft, settings=rules_settings_form(written), drawn=text)


@blueprint.route("/check", methods=["POST"])
@admins
def check():
    """Live validation of a draft: the problem list and the diff against the active rules."""
    form = RulesDraftForm()
    active = rule_sets.active_rule_set(get_session())
    return render("admin/_rules_check.html", check=check_result(form.text.data or "", active))


@blueprint.route("/what-if", methods=["POST"])
@admins
def what_if():
    session = get_session()
    active = rule_sets.active_rule_set(session)
    form = draft_form(session, active, formdata=request.form)
    if not form.round_id.data:
        return render("admin/_rules_what_if.html", error=_("Choose a round to replay."))
    try:
        rules = parse_new_rules(form.text.data or "")
    except RuleError:
        return render("admin/_rules_what_if.html",
                      error=_("The draft has problems; fix them before replaying."))
    stored, comparison = replays.what_if(session, form.round_id.data, rules)
    return render("admin/_rules_what_if.html", error=None, stored=stored, comparison=comparison)


@blueprint.route("/adopt", methods=["POST"])
@admins
def adopt():
    session = get_session()
    active = rule_sets.active_rule_set(session)
    form = draft_form(session, active, formdata=request.form)
    if form.validate():
        expected = form.expected_active_id.data or ""
        try:
            version = rule_sets.adopt_rules(
                session, current_user, form.text.data, form.note.data or "",
                expected_active_id=parse_id(expected), now=now())
        except InvalidRequest as error:
            form.add_error(error)
            return page(draft=form, status=422)
        except Conflict as error:
            # Other rules were adopted since this editor was drawn. The draft stays in it, now
            # checked and diffed against the rules in force, so that it can be reviewed and
            # sent again knowingly rather than typed again from an error page.
            form.expected_active_id.data = str(rule_sets.active_rule_set(session).id)
            form.add_error(error)
            return page(draft=form, status=409)
        flash(_("Rules %(hash)s adopted for rounds created from now on. Rounds already "
                "created keep theirs, drafts included.",
                hash=version.sha256[:12]), "success")
        return redirect_after_post(url_for("rules.rules"))
    return page(draft=form, status=422)


@blueprint.route("/versions/<int:version_id>")
@admins
def version(version_id: int):
    version = get_session().get(RuleSetVersion, version_id)
    if version is None:
        abort(404)
    return render("admin/rules_version.html", version=version)
