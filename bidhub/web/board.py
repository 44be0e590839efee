"""The capacity board, a rep's own accounts, and KA management's home page."""

from __future__ import annotations

from flask import Blueprint, abort, flash, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import Optional

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.errors import Conflict, InvalidRequest, NotFound
from bidhub.models import ReleaseReason
from bidhub.services import capacity_board, limits, rounds, users
from bidhub.services.capacity_board import Band
from bidhub.web import params
from bidhub.web.access import managers, reachable_endpoint, rep_only
from bidhub.web.forms import REVIEW_HELP, Form, Required, TextLength, choice_id, options
from bidhub.web.i18n import translate
from bidhub.web.labels import RELEASE_REASON_LABELS
from bidhub.web.rendering import redirect_after_post, render

blueprint = Blueprint("board", __name__)

BAND_LABELS = {Band.ABOVE: _l("Above the band"), Band.BELOW: _l("Below the band"),
               Band.INSIDE: _l("Inside the band")}
# More account ids than any rep holds are a probe, not a selection.
MAX_SELECTED = 500


class BulkReleaseForm(Form):
    round_id = SelectField(_l("Draft round"), coerce=choice_id, validators=[Required()])
    reason = SelectField(_l("Release reason"), choices=options(RELEASE_REASON_LABELS),
                         validators=[Required()])
    note = StringField(_l("Other reason / note"), validators=[Optional(), TextLength(max=500)])
    review_text = TextAreaField(_l("Review: why do the accounts leave the rep?"),
                                description=REVIEW_HELP,
                                validators=[Optional(), TextLength(max=limits.MAX_REVIEW_LENGTH)])


def release_form(session, *, submitted: bool = False) -> BulkReleaseForm:
    form = BulkReleaseForm() if submitted else BulkReleaseForm(formdata=None)
    form.round_id.choices = options({round_.id: round_.title
                                     for round_ in capacity_board.draft_rounds(session)})
    return form


def band_arg() -> Band | None:
    value = request.args.get("band", "")
    return Band(value) if value in set(Band) else None


@blueprint.route("/board", endpoint="capacity")
@managers
def capacity():
    session = get_session()
    band, branch_id = band_arg(), params.id_arg(request.args, "branch")
    board = capacity_board.capacity_board(session, band=band, branch_id=branch_id)
    return render("board/capacity.html", board=board, band=band, branch_id=branch_id,
                  branches=users.branches(session), band_labels=BAND_LABELS, Band=Band)


def selected_account_ids() -> tuple[list[int], bool]:
    """The ticked accounts, and whether every value sent was a well-formed id."""
    values = request.form.getlist("account_ids")[:MAX_SELECTED + 1]
    ids = [params.parse_id(value) for value in values]
    return ([account_id for account_id in ids if account_id is not None],
            None not in ids and len(values) <= MAX_SELECTED)


def rep_page(rep_id: int, form: BulkReleaseForm | None = None, *,
             selected: frozenset[int] = frozenset(), selection_error: str | None = None,
             status: int = 200):
    session = get_session()
    try:
        holdings = capacity_board.rep_accounts(session, rep_id)
    except NotFound:
        abort(404)
    if form is None:
        form = release_form(session)
        if holdings.load.band == Band.ABOVE:  # the usual reason to release from this page
            form.reason.data = ReleaseReason.OVER_CAPACITY.value
    return render("board/rep.html", status=status, holdings=holdings, form=form,
                  selected=selected,
                  account_endpoint=reachable_endpoint("accounts.account", "market.account"),
                  selection_error=selection_error, band_labels=BAND_LABELS, Band=Band)


@blueprint.route("/board/reps/<int:rep_id>")
@managers
def rep(rep_id: int):
    return rep_page(rep_id)


@blueprint.route("/board/reps/<int:rep_id>/release", methods=["POST"])
@managers
def release(rep_id: int):
    session = get_session()
    form = release_form(session, submitted=True)
    account_ids, well_formed = selected_account_ids()
    selected = frozenset(account_ids)
    if not well_formed:
        return rep_page(rep_id, form, selected=selected, status=422,
                        selection_error=_("Tick the accounts to release in the list."))
    if not form.validate_on_submit():
        return rep_page(rep_id, form, selected=selected, status=422)
    try:
        listings = rounds.release_accounts(
            session, current_user, form.round_id.data, account_ids=account_ids,
            reason=form.reason.data, note=form.note.data or "",
            review_text=form.review_text.data or "", now=now(), from_rep_id=rep_id)
    except Conflict as error:
        # An account changed hands since the page was drawn: the list is drawn as it is now.
        return rep_page(rep_id, form, selected=selected, status=409,
                        selection_error=translate(error))
    except InvalidRequest as error:
        # A problem with the selected accounts is shown over the list, the others on their
        # fields, all in the same answer.
        refusals = error.refusals
        selection = [translate(refusal) for refusal in refusals
                     if refusal.field == "account_ids"]
        for refusal in refusals:
            if refusal.field != "account_ids":
                form.add_error(refusal)
        return rep_page(rep_id, form, selected=selected, status=422,
                        selection_error=" ".join(selection) or None)
    flash(_("Accounts released into the round: %(count)d.", count=len(listings)), "success")
    return redirect_after_post(url_for("manage.round_detail", round_id=form.round_id.data))


@blueprint.route("/my/accounts")
@rep_only
def my_accounts():
    holdings = capacity_board.rep_accounts(get_session(), current_user.id)
    return render("board/my_accounts.html", holdings=holdings, band_labels=BAND_LABELS,
                  Band=Band)


@blueprint.route("/manage", endpoint="home")
@managers
def home():
    agenda = capacity_board.management_agenda(get_session(), now())
    return render("board/home.html", agenda=agenda, Band=Band,
                  appeals_endpoint=reachable_endpoint("manage.appeals", "appeals.appeals"),
                  confirmations_endpoint=reachable_endpoint("sponsors.confirmations",
                                                            "admin.confirmations"),
                  transfers_endpoint=reachable_endpoint("sponsors.confirmations",
                                                        "manage.transfer_requests",
                                                        "sponsors.accounts"),
                  reviews_endpoint=reachable_endpoint("manage.loss_reviews", "manage.reviews",
                                                      "reviews.register", "loss_reviews.register"))
