"""Admins: users (executives with their titles included), roles and branches."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from wtforms import HiddenField, SelectField

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.collation import person_order
from bidhub.domain.errors import Conflict, InvalidFields, InvalidRequest
from bidhub.domain.text import COMMA, N_, Joined, Text
from bidhub.domain.typed_text import without_format_characters
from bidhub.models import Branch, Role, User
from bidhub.services import branches, users
from bidhub.services.departures import PendingAward, pending_awards_of
from bidhub.services.track_records import accounts_held_by
from bidhub.web import params
from bidhub.web.access import admins
from bidhub.web.forms import (
    BranchActivityForm,
    BranchForm,
    BranchNamesForm,
    EditUserForm,
    SetPasswordForm,
    UserForm,
    branch_choices,
    options,
)
from bidhub.web.i18n import translate
from bidhub.web.labels import ROLE_LABELS, SPONSOR_LABELS
from bidhub.web.rendering import page_or_partial, redirect_after_post, render, render_form_errors

blueprint = Blueprint("admin", __name__, url_prefix="/admin")

# Only for the executive role; the service ignores it for any other.
EXECUTIVE_TITLE_CHOICES = options({"": _l("— (not an executive)")} | SPONSOR_LABELS)


class NewUserForm(UserForm):
    executive_title = SelectField(_l("Executive title"), choices=EXECUTIVE_TITLE_CHOICES,
                                  validate_choice=False)


class UserEditForm(EditUserForm):
    executive_title = SelectField(_l("Executive title"), choices=EXECUTIVE_TITLE_CHOICES,
                                  validate_choice=False)
    # The user's details as the form was drawn with them (`users.edit_fingerprint`).
    expected = HiddenField()


@blueprint.route("/users", endpoint="users")
@admins
def users_list():
    """Every user, or those the search box, the role and the branch pick."""
    session = get_session()
    # One character more than is searched for, to tell a text cut short from one that fits.
    query = without_format_characters(
        params.text_arg(request.args, "q", users.MAX_USER_QUERY_LENGTH + 1)).strip()
    role, branch_id, problems = user_filters(session, request.args)
    if len(query) > users.MAX_USER_QUERY_LENGTH:
        query = query[:users.MAX_USER_QUERY_LENGTH]
        problems.insert(0, _("The search text is longer than %(limit)d characters; only its "
                             "first %(limit)d are searched for.",
                             limit=users.MAX_USER_QUERY_LENGTH))
    found = users.find_users(session, query=query, role=role, branch_id=branch_id)
    # By role (its code), then by name as menus order names (domain.collation).
    people = sorted(found, key=lambda user: (user.role, *person_order(user)))
    chosen = {"q": query, "role": role or "", "branch": str(branch_id or "")}
    return page_or_partial("admin/users.html", "admin/_user_rows.html", users=people,
                           held=accounts_held_by(session, [user.id for user in people]),
                           chosen=chosen, problems=problems, roles=ROLE_LABELS,
                           branches=branches.list_branches(session))


def user_filters(session, args) -> tuple[str | None, int | None, list[str]]:
    """The role and the branch the list is filtered by, and what of the query could not be
    applied (said above the list, which is then shown without it)."""
    problems = []
    role = params.text_arg(args, "role", 32).strip() or None
    if role is not None and role not in ROLE_LABELS:
        problems.append(_("“%(value)s” is not one of the choices in the list; the list is shown "
                          "without it.", value=params.quoted_arg(args, "role")))
        role = None
    branch_text = params.text_arg(args, "branch", 32).strip()
    branch_id = params.parse_id(branch_text) if branch_text else None
    if branch_text and (branch_id is None or session.get(Branch, branch_id) is None):
        problems.append(_("“%(value)s” is not one of the choices in the list; the list is shown "
                          "without it.", value=params.quoted_arg(args, "branch")))
        branch_id = None
    return role, branch_id, problems


@blueprint.route("/users/new", methods=["GET", "POST"])
@admins
def new_user():
    session = get_session()
    form = NewUserForm()
    form.branch_id.choices = branch_choices(open_branches(session), empty_label="—")
    if form.validate_on_submit():
        try:
            user = users.create_user(
                session, current_user, username=form.username.data,
                display_name=form.display_name.data, password=form.password.data,
                role=form.role.data, branch_id=form.branch_id.data or None,
                hired_on=form.hired_on.data, executive_title=form.executive_title.data or None,
                now=now(), zone=current_app.config["TIMEZONE"])
        except InvalidRequest as error:
            form.add_error(error)
            return render_form_errors("admin/user_form.html", form=form)
        flash(_("User %(name)s created.", name=user.username), "success")
        return redirect_after_post(url_for("admin.users"))
    if form.is_submitted():
        # The fields the form took may still be refused by the rules for users: said now too,
        # so that one answer shows every problem.
        refusals = [refusal for refusal in users.new_user_refusals(
            form.username.data or "", form.display_name.data or "", form.password.data or "",
            form.role.data or "", form.branch_id.data or None, now(), form.hired_on.data,
            form.executive_title.data or None, current_app.config["TIMEZONE"])
            if not getattr(getattr(form, refusal.field or "", None), "errors", True)]
        if refusals:
            form.add_error(InvalidFields(refusals) if len(refusals) > 1 else refusals[0])
        return render_form_errors("admin/user_form.html", form=form)
    return render("admin/user_form.html", form=form)


@blueprint.route("/users/<int:user_id>", methods=["GET", "POST"])
@admins
def edit_user(user_id: int):
    session = get_session()
    user = session.get(User, user_id)
    if user is None:
        abort(404)
    form = UserEditForm(obj=user)
    form.branch_id.choices = branch_choices(open_branches(session, user.branch_id),
                                            empty_label="—")
    if not form.is_submitted():
        form.branch_id.data = user.branch_id or 0
        form.expected.data = users.edit_fingerprint(user)
    if form.validate_on_submit():
        try:
            update = users.update_user(
                session, current_user, user.id, display_name=form.display_name.data,
                role=form.role.data, branch_id=form.branch_id.data or None,
                status=form.status.data, is_active=form.is_active.data,
                executive_title=form.executive_title.data or None,
                # Not sent (the page shows no hire date for this user): kept as it is.
                hired_on=form.hired_on.data if form.hired_on.raw_data else users.KEEP_HIRE_DATE,
                # A form without the fingerprint it was drawn with is taken as stale: it
                # cannot show that nothing changed since it was opened.
                expected=form.expected.data or "", now=now(),
                zone=current_app.config["TIMEZONE"])
        except Conflict as error:
            # Drawn again from the user as they are now, with what changed to see.
            session.expire_all()
            user = session.get(User, user_id)
            fresh = fresh_edit_form(session, user)
            fresh.form_errors.append(translate(error))
            return user_edit_page(render, session, fresh, user, SetPasswordForm(formdata=None),
                                  status=409)
        except InvalidRequest as error:
            form.add_error(error)
            return user_edit_page(render_form_errors, session, form, user,
                                  SetPasswordForm(formdata=None))
        flash(_("User %(name)s updated.", name=user.username), "success")
        if update.sent_back:
            count = len(update.sent_back)
            flash(ngettext(
                "%(num)d award of %(rep)s not yet in force went back to KA management to "
                "decide again, and KA management was told: %(awards)s",
                "%(num)d awards of %(rep)s not yet in force went back to KA management to "
                "decide again, and KA management was told: %(awards)s", count,
                rep=update.user.display_name, awards=translate(
                    Joined([award_label(award) for award in update.sent_back], COMMA))),
                "info")
        return redirect_after_post(url_for("admin.users"))
    if form.is_submitted():
        return user_edit_page(render_form_errors, session, form, user,
                              SetPasswordForm(formdata=None))
    return user_edit_page(render, session, form, user, SetPasswordForm(formdata=None))


def fresh_edit_form(session, user: User) -> UserEditForm:
    """The edit form filled from the user as stored, with their details' fingerprint."""
    form = UserEditForm(obj=user, formdata=None)
    form.branch_id.choices = branch_choices(open_branches(session, user.branch_id),
                                            empty_label="—")
    form.branch_id.data = user.branch_id or 0
    form.expected.data = users.edit_fingerprint(user)
    return form


def user_edit_page(render_with, session, form: UserEditForm, user: User,
                   password_form: SetPasswordForm, **options):
    """The user's edit page, with the rep's awards not yet in force that leaving would send
    back, how many accounts they hold (to be handed on before another role), whether to
    say what becomes of a rep's sealed bids, and the hire date of a rep or of anyone who has
    one (or whose form was refused on it)."""
    is_rep = user.role == Role.REP
    return render_with("admin/user_edit.html", form=form, user=user,
                       password_form=password_form,
                       shows_hire_date=bool(is_rep or user.hired_on or form.hired_on.errors),
                       pending_awards=pending_awards_of(session, user.id),
                       held_accounts=accounts_held_by(session, [user.id]).get(user.id, 0) if is_rep else 0,
                       is_rep=is_rep, **options)


def award_label(award: PendingAward) -> Text:
    return N_("%(account)s in round “%(round)s”", account=award.account_name,
              round=award.round_title)


@blueprint.route("/users/<int:user_id>/password", methods=["POST"])
@admins
def set_password(user_id: int):
    session = get_session()
    user = session.get(User, user_id)
    if user is None:
        abort(404)
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            users.set_password(session, current_user, user.id, form.new_password.data, now())
        except InvalidRequest as error:
            form.add_error(error)
        else:
            flash(_("Temporary password set for %(name)s; their open sessions ended and they "
                    "must choose a new one at their next sign-in.", name=user.username),
                  "success")
            return redirect_after_post(url_for("admin.edit_user", user_id=user.id))
    return user_edit_page(render_form_errors, session, fresh_edit_form(session, user), user, form)


def open_branches(session, keep_id: int | None = None) -> list[Branch]:
    """The branches a user can be put in: the active ones, and the one they are in already."""
    return [branch for branch in users.branches(session)
            if branch.is_active or branch.id == keep_id]


@blueprint.route("/branches", endpoint="branches")
@admins
def branches_list():
    session = get_session()
    return render("admin/branches.html", branches=branches.list_branches(session),
                  counts=branches.branch_counts(session))


@blueprint.route("/branches/new", methods=["GET", "POST"])
@admins
def new_branch():
    form = BranchForm()
    if form.validate_on_submit():
        try:
            branch = branches.create_branch(get_session(), current_user, form.code.data,
                                            form.name.data, form.name_zh.data, now())
        except InvalidRequest as error:
            form.add_error(error)
            return render_form_errors("admin/branch_form.html", form=form, branch=None)
        flash(_("Branch %(code)s created.", code=branch.code), "success")
        return redirect_after_post(url_for("admin.branches"))
    if form.is_submitted():
        return render_form_errors("admin/branch_form.html", form=form, branch=None)
    return render("admin/branch_form.html", form=form, branch=None)


def branch_or_404(session, branch_id: int) -> Branch:
    branch = session.get(Branch, branch_id)
    if branch is None:
        abort(404)
    return branch


def branch_page(branch: Branch, form=None, activity_form=None, status: int = 200):
    counts = branches.branch_counts(get_session()).get(branch.id, (0, 0))
    return render("admin/branch_form.html", status=status, branch=branch,
                  form=form or BranchNamesForm(obj=branch, formdata=None),
                  activity_form=activity_form or BranchActivityForm(formdata=None),
                  reps=counts[0], accounts=counts[1])


@blueprint.route("/branches/<int:branch_id>", methods=["GET", "POST"])
@admins
def edit_branch(branch_id: int):
    session = get_session()
    branch = branch_or_404(session, branch_id)
    form = BranchNamesForm(obj=branch)
    if form.validate_on_submit():
        try:
            branches.rename_branch(session, current_user, branch.id, form.name.data,
                                   form.name_zh.data, now())
        except InvalidRequest as error:
            form.add_error(error)
            return branch_page(branch, form=form, status=422)
        flash(_("Branch %(code)s saved.", code=branch.code), "success")
        return redirect_after_post(url_for("admin.branches"))
    if form.is_submitted():
        return branch_page(branch, form=form, status=422)
    return branch_page(branch, form=form)


@blueprint.route("/branches/<int:branch_id>/deactivate", methods=["POST"])
@admins
def deactivate_branch(branch_id: int):
    return change_branch_activity(branch_id, is_active=False)


@blueprint.route("/branches/<int:branch_id>/reactivate", methods=["POST"])
@admins
def reactivate_branch(branch_id: int):
    return change_branch_activity(branch_id, is_active=True)


def change_branch_activity(branch_id: int, *, is_active: bool):
    # Two routes, not a toggle: a page loaded before someone else's change never undoes it.
    session = get_session()
    branch = branch_or_404(session, branch_id)
    form = BranchActivityForm()
    if not form.validate_on_submit():
        return branch_page(branch, activity_form=form, status=422)
    if is_active:
        branches.reactivate_branch(session, current_user, branch.id, now())
        flash(_("Branch %(code)s reactivated.", code=branch.code), "success")
    else:
        branches.deactivate_branch(session, current_user, branch.id, now())
        flash(_("Branch %(code)s deactivated.", code=branch.code), "success")
    return redirect_after_post(url_for("admin.branches"))
