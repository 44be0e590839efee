"""The executive-sponsor list (老板负责客户名单), designating sponsors, and their confirmations."""

from __future__ import annotations

from flask import Blueprint, abort, flash, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import HiddenField, SelectField, TextAreaField
from wtforms.validators import Optional

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.errors import Conflict, InvalidRequest
from bidhub.models import Account, Role
from bidhub.services import browse, rounds, sponsors
from bidhub.services.limits import MAX_REASON_LENGTH
from bidhub.web.access import roles_required
from bidhub.web.forms import Form, Required, TextLength, choice_id, options
from bidhub.web.i18n import translate
from bidhub.web.params import id_arg
from bidhub.web.rendering import redirect_after_post, render

blueprint = Blueprint("sponsors", __name__)

management = roles_required(Role.KA_MANAGER, Role.ADMIN)
management_and_executives = roles_required(Role.KA_MANAGER, Role.ADMIN, Role.EXECUTIVE)
sponsors_and_admins = roles_required(Role.EXECUTIVE, Role.ADMIN)

ACCEPT, REFUSE = "accept", "refuse"


class DesignateForm(Form):
    sponsor = SelectField(_l("Executive sponsor"), coerce=choice_id, validators=[Optional()])


class AnswerForm(Form):
    # No answer is chosen until the sponsor chooses one: sending the form as drawn is refused
    # with a field error, never taken as an acceptance.
    answer = SelectField(_l("Answer"), choices=options({"": _l("Choose"), ACCEPT: _l("Accept"),
                                                       REFUSE: _l("Refuse")}),
                         validators=[Required()])
    note = TextAreaField(_l("Note"), validators=[Optional(), TextLength(max=MAX_REASON_LENGTH)],
                         description=_l("Required when you refuse."))
    version = HiddenField()


def sponsor_choices(session) -> list:
    return options({0: _("— no sponsor")} | {
        person.id: person.display_name for person in sponsors.executives(session)})


@blueprint.route("/sponsors", endpoint="accounts")
@management_and_executives
def accounts_list():
    session = get_session()
    chosen = None if current_user.role == Role.EXECUTIVE else id_arg(request.args, "sponsor")
    return render("sponsors/accounts.html",
                  accounts=sponsors.sponsored_accounts(session, current_user, sponsor_id=chosen),
                  executives=sponsors.executives(session, active_only=False), chosen=chosen)


@blueprint.route("/sponsors/accounts/<int:account_id>", methods=["GET", "POST"])
@management
def account(account_id: int):
    session = get_session()
    account = session.get(Account, account_id)
    if account is None:
        abort(404)
    form = DesignateForm()
    form.sponsor.choices = sponsor_choices(session)
    status = 200
    if form.is_submitted():
        if form.validate():
            try:
                sponsors.designate_sponsor(session, current_user, account.id,
                                           form.sponsor.data or None, now())
            except InvalidRequest as error:
                form.add_error(error)
            else:
                flash(_("Sponsor of %(account)s saved.", account=account.name), "success")
                return redirect_after_post(url_for("sponsors.account", account_id=account.id))
        status = 422
    else:
        form.sponsor.data = account.sponsor_id or 0
    return render("sponsors/account.html", status=status, account=account, form=form,
                  history=sponsors.sponsor_history(session, account.id))


def answer_form(kind: str, item_id: int, *, blank: bool = False) -> AnswerForm:
    """One item's form (the request's, or a blank one); the prefix keeps the fields' ids apart
    on a page of several."""
    if blank:
        return AnswerForm(formdata=None, prefix=f"{kind}-{item_id}")
    return AnswerForm(prefix=f"{kind}-{item_id}")


def confirmations_page(failed: AnswerForm | None = None, status: int = 200):
    """The page, with the one form that failed shown as sent, with its errors."""
    waiting = sponsors.waiting_confirmations(get_session(), current_user)

    def form_for(kind: str, item_id: int) -> AnswerForm:
        if failed is not None and failed._prefix == f"{kind}-{item_id}-":
            return failed
        return answer_form(kind, item_id, blank=True)

    return render("sponsors/confirmations.html", status=status, waiting=waiting,
                  form_for=form_for, announced=browse.announced_rounds(get_session(), now()))


@blueprint.route("/confirmations")
@sponsors_and_admins
def confirmations():
    return confirmations_page()


@blueprint.route("/confirmations/releases/<int:listing_id>", methods=["POST"])
@sponsors_and_admins
def answer_release(listing_id: int):
    form = answer_form("release", listing_id)
    if form.validate():
        try:
            if form.answer.data == ACCEPT:
                listing = rounds.confirm_sponsored_listing(get_session(), current_user, listing_id,
                                                           now(), note=form.note.data or "")
                flash(_("Release of %(name)s confirmed.", name=listing.account.name), "success")
            else:
                listing = rounds.refuse_sponsored_listing(get_session(), current_user, listing_id,
                                                          form.note.data or "", now())
                flash(_("Release of %(name)s refused.", name=listing.account.name), "success")
        except InvalidRequest as error:
            form.add_error(error)
        else:
            return redirect_after_post(url_for("sponsors.confirmations"))
    return confirmations_page(form, status=422)


@blueprint.route("/confirmations/transfers/<int:request_id>", methods=["POST"])
@sponsors_and_admins
def answer_transfer(request_id: int):
    form = answer_form("transfer", request_id)
    if form.validate():
        version = id_arg({"version": form.version.data or ""}, "version")
        try:
            if form.answer.data == ACCEPT:
                filing = sponsors.accept_transfer_request(
                    get_session(), current_user, request_id, form.note.data or "", now(),
                    expected_version=version)
                flash(_("Transfer of %(name)s accepted and filed.", name=filing.account.name),
                      "success")
            else:
                refused = sponsors.refuse_transfer_request(
                    get_session(), current_user, request_id, form.note.data or "", now(),
                    expected_version=version)
                flash(_("Transfer of %(name)s refused.", name=refused.account.name), "success")
        except Conflict as error:
            # Answered from another page first: the list drawn again no longer holds the
            # transfer, so no form is left to carry the message.
            get_session().rollback()
            flash(translate(error), "error")
            return confirmations_page(status=409)
        except InvalidRequest as error:
            form.add_error(error)
        else:
            return redirect_after_post(url_for("sponsors.confirmations"))
    return confirmations_page(form, status=422)
