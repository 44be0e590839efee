"""KA management: rounds, releases, adjudication, results, direct transfers and the register."""

from __future__ import annotations

import secrets
from datetime import datetime, time, timedelta
from decimal import Decimal
from types import SimpleNamespace

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy.orm import selectinload

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.errors import Conflict, InvalidRequest
from bidhub.domain.metrics import METRICS
from bidhub.domain.scoring import ScoreBreakdown
from bidhub.models import (
    Account,
    DecisionKind,
    FilingKind,
    Listing,
    RoundStatus,
    TransferRequest,
)
from bidhub.services import (
    adjudication,
    browse,
    flags,
    policies,
    rounds,
    transfer_preview,
    users,
)
from bidhub.services import appeals as appeal_service
from bidhub.services.filings import (
    FilingFilter,
    filing_register,
    offered_in_menus,
    register_surroundings,
)
from bidhub.services.ledger import ledger_head, verify_ledger
from bidhub.services.ownership import may_receive_accounts
from bidhub.services.transfer_preview import Band, confirm_transfer
from bidhub.web import params
from bidhub.web.access import managers
from bidhub.web.allocation_reasons import listing_names
from bidhub.web.appeals import (
    announces_first,
    answered_appeals,
    answering,
    cancel_form,
    is_upheld,
    load_appeal,
    reopened_in_standstill,
    round_effects,
)
from bidhub.web.csv_export import csv_response, export_language
from bidhub.web.decision_rows import decision_rows, kept_rows_html, margin_note, rows_html
from bidhub.web.filing_lines import appeals_text, filing_rows, filter_menus, reasons
from bidhub.web.forms import (
    AcceptUnflaggedForm,
    AppealAnswerForm,
    CancelForm,
    ConfirmForm,
    ConfirmTransferForm,
    DecisionForm,
    ReleaseForm,
    RoundForm,
    TransferForm,
    branch_choices,
    options,
    too_long_message,
)
from bidhub.web.frame import page_token
from bidhub.web.i18n import kept_with_catalogue, local_to_utc, translate, utc_to_local
from bidhub.web.labels import label
from bidhub.web.market import listing_filter_from, menu_values_held
from bidhub.web.rendering import (
    branch_name,
    is_htmx_partial_request,
    localtime,
    page_or_partial,
    redirect_after_post,
    render,
    render_form_errors,
)
from bidhub.web.review_panels import listing_review_context, round_review_context

blueprint = Blueprint("manage", __name__, url_prefix="/manage")
UNFILTERED = browse.ListingFilter()


@blueprint.route("/rounds", endpoint="rounds")
@managers
def rounds_list():
    return render("manage/rounds.html", rounds=browse.rounds_for_management(get_session()))


def round_form(round_=None) -> RoundForm:
    form = RoundForm(obj=None)
    form.branch_id.choices = branch_choices(users.branches(get_session()),
                                            empty_label=_("All branches"))
    if round_ is not None and not form.is_submitted():
        form.title.data = round_.title
        form.branch_id.data = round_.branch_id or 0
        form.opens_at.data = utc_to_local(round_.opens_at).replace(tzinfo=None)
        form.closes_at.data = utc_to_local(round_.closes_at).replace(tzinfo=None)
        form.version.data = str(round_.version)
    return form


@blueprint.route("/rounds/new", methods=["GET", "POST"])
@managers
def new_round():
    form = round_form()
    if not form.submission_key.data:
        form.submission_key.data = secrets.token_urlsafe(24)
    if not form.is_submitted():
        start = utc_to_local(now()).replace(second=0, microsecond=0, tzinfo=None)
        form.opens_at.data = start
        form.closes_at.data = datetime.combine(start.date() + timedelta(days=7), time(18, 0))
    if form.validate_on_submit():
        try:
            round_ = rounds.create_round(
                get_session(), current_user, title=form.title.data,
                branch_id=form.branch_id.data or None,
                opens_at=local_to_utc(form.opens_at.data),
                closes_at=local_to_utc(form.closes_at.data), now=now(),
                submission_key=form.submission_key.data)
        except rounds.RoundCreatedAlready as error:
            flash(translate(error), "info")
            return redirect_after_post(url_for("manage.round_detail", round_id=error.round_id))
        except InvalidRequest as error:
            form.add_error(error)
            return render_form_errors("manage/round_form.html", form=form)
        flash(_("Round created. Release accounts into it, then publish it."), "success")
        return redirect_after_post(url_for("manage.round_detail", round_id=round_.id))
    if form.is_submitted():
        return render_form_errors("manage/round_form.html", form=form)
    return render("manage/round_form.html", form=form)


@blueprint.route("/rounds/<int:round_id>/edit", methods=["GET", "POST"])
@managers
def edit_round(round_id: int):
    round_ = rounds.load_round(get_session(), round_id)
    if request.method == "GET" and round_.status != RoundStatus.DRAFT:
        # Only a draft's times and title change: the page says so where the round is shown,
        # rather than offering a form whose every save is refused.
        flash(_("Only a draft round can be changed; this one is published."), "info")
        return redirect(url_for("manage.round_detail", round_id=round_.id))
    form = round_form(round_)
    if form.validate_on_submit():
        try:
            rounds.update_round_times(
                get_session(), current_user, round_.id,
                expected_version=params.parse_version(form.version.data), title=form.title.data,
                opens_at=local_to_utc(form.opens_at.data),
                closes_at=local_to_utc(form.closes_at.data), now=now())
        except InvalidRequest as error:
            form.add_error(error)
            return render_form_errors("manage/round_form.html", form=form, round=round_)
        flash(_("Round updated."), "success")
        return redirect_after_post(url_for("manage.round_detail", round_id=round_.id))
    if form.is_submitted():
        return render_form_errors("manage/round_form.html", form=form, round=round_)
    return render("manage/round_form.html", form=form, round=round_)


FLAG_LABELS = {
    adjudication.Flag.CAPACITY: _l("Capacity: the winner would hold too many accounts, counting "
                                   "awards pending in every round"),
    adjudication.Flag.WINNER_UNAVAILABLE: _l("The winner can no longer receive accounts: they "
                                             "left the company or were deactivated"),
    adjudication.Flag.LOTTERY: _l("Tie decided by the lottery"),
    adjudication.Flag.FEW_BIDS: _l("Fewer eligible bids than the rules' minimum"),
    adjudication.Flag.RESET_BY_ADMIN: _l("A bidder's password was reset by an admin during the "
                                         "round"),
    adjudication.Flag.STALE_CRM: _l("Stale CRM data"),
    adjudication.Flag.METRIC_OUTLIER: _l("Metric outlier"),
}
# The listing page's badges on each flagged bid; the explanation goes in the badge's title.
BID_FLAG_LABELS = {
    adjudication.Flag.STALE_CRM: _l("Stale CRM data"),
    adjudication.Flag.METRIC_OUTLIER: _l("Metric outlier"),
    adjudication.Flag.RESET_BY_ADMIN: _l("Password reset by an admin during the round"),
}


def decision_row_text() -> SimpleNamespace:
    """The words every row of the adjudication table repeats, translated once per page
    instead of once per row (attributes: Jinja reads `row_text.accept` without a miss), and
    kept beside the page's catalogue, which never changes in a process: read-only."""
    return kept_with_catalogue(_DECISION_ROW_TEXT, _decision_row_text)


# The key of the translated row words beside a catalogue's messages (no msgid is a tuple).
_DECISION_ROW_TEXT = ("manage.decision_row_text",)


def _decision_row_text() -> SimpleNamespace:
    return SimpleNamespace(
        accept=_("Accept"), override=_("Override"), bidder=_("Bidder"),
        written_reason=_("Written reason"), award=_("Award to this bidder"),
        no_award=_("No award"), record_no_award=_("Record no award"), details=_("details"),
        undecided=_("Undecided"),
        nobody_bid=_("Nobody bid for this account, so it is not awarded."),
        recorded_later=_("(recorded when the results are published)"),
        aside=_("%(text)s (%(note)s)"),
        expired=_("The form expired. Reload the page and try again."),
        kinds={kind.value: label(kind.value, DecisionKind) for kind in DecisionKind},
        flags={flag: str(text) for flag, text in FLAG_LABELS.items()})


def adjudication_context(session, round_) -> dict:
    """The round page's adjudication table and publishing summary, once bids are unsealed."""
    if round_.status not in (RoundStatus.SCORED, RoundStatus.STANDSTILL,
                             RoundStatus.RESULTS_PUBLISHED):
        return {"reviews": None}
    reviews = adjudication.review_round(session, round_, zone=current_app.config["TIMEZONE"])
    return {"reviews": reviews, "flag_labels": FLAG_LABELS,
            "summary": adjudication.publish_summary(session, round_, reviews),
            "unflagged": adjudication.unflagged_listing_ids(reviews),
            "announces_first": announces_first(round_),
            "can_decide": round_.status == RoundStatus.SCORED,
            "row_text": decision_row_text()}


class LazyForm:
    """A blank form made only when the page reads it: the round page offers some forms only
    in some states (a draft's, publishing's), keeps the cancellation card's markup, and a
    form costs its fields and token to make. `is_blank`: no refused form handed back."""

    is_blank = True

    def __init__(self, make, *args, **kwargs) -> None:
        self._make, self._args, self._kwargs, self._form = make, args, kwargs, None

    def __getattr__(self, name: str):
        if self._form is None:
            self._form = self._make(*self._args, **self._kwargs)
        return getattr(self._form, name)


def listings_of_round(session, round_id: int, criteria, reviews) -> list[Listing]:
    """The round's listings under the filter, in its order; from the review once scored."""
    if reviews is None:
        # The plain table names the rep each account was released from: one statement for
        # all of them instead of one per row.
        listings = session.scalars(browse.filtered_listings(round_id, criteria)
                                   .options(selectinload(Listing.released_from)))
    elif criteria == UNFILTERED:
        # The review read every listing with its account; unfiltered, the list's order
        # (browse.SORTS' default: the largest annual value first, then by id) needs no query.
        return sorted((review.listing for review in reviews.values()),
                      key=lambda listing: (-listing.account.annual_value_yuan, listing.id))
    else:
        # The filter picks and orders what the review read.
        listings = (reviews[listing_id].listing for listing_id in session.scalars(
            browse.filtered_listings(round_id, criteria).with_only_columns(Listing.id)))
    return browse.in_list_order(listings, criteria, listing_industry, listing_id_of)


def listing_industry(listing: Listing) -> str:
    return listing.account.industry


def listing_id_of(listing: Listing) -> int:
    return listing.id


def round_page(round_id: int, release_form: ReleaseForm | None = None, status: int = 200,
               **forms):
    """The round page; `forms` carries a refused cancellation form back with its messages."""
    session = get_session()
    round_ = rounds.round_to_show(session, round_id)
    filter_errors: dict[str, str] = {}
    criteria = listing_filter_from(request.args, filter_errors)
    adjudicating = adjudication_context(session, round_)
    reviews = adjudicating["reviews"]

    def menus() -> dict[str, list]:
        if reviews is None:
            return browse.filter_options(session, round_.id)
        # The review read every listing's account with what the menus offer.
        return browse.filter_options_of(review.listing.account for review in reviews.values())

    listings = listings_of_round(session, round_.id, criteria, reviews)
    options = None
    # As on the rep's list (market.menu_values_held): a row shown holds the menu values it
    # was picked by, so only an empty list may have been narrowed by one the round does not
    # hold; such a value is left out and said so.
    if not listings and (criteria.industry or criteria.ownership_type or criteria.branch_id):
        options = menus()
        held = menu_values_held(criteria, options, filter_errors)
        if held != criteria:
            criteria = held
            listings = listings_of_round(session, round_.id, criteria, reviews)
    # The filter's partial has no menus; the adjudication table counts each listing's bids
    # itself; only a draft offers the release form.
    partial = status == 200 and is_htmx_partial_request()
    if partial:
        options = None
    elif options is None:
        options = menus()
    context = {
        **adjudicating,
        "round": round_, "listings": listings, "criteria": criteria,
        "filter_errors": filter_errors, "options": options,
        "bid_counts": browse.bid_counts(session, round_.id) if reviews is None else {},
        # The review already holds each decision with its bid and rep.
        "decisions": ({listing_id: review.decision for listing_id, review in reviews.items()
                       if review.decision is not None} if reviews is not None
                      else browse.decisions_of_round(session, round_.id)),
        "release_form": release_form or (ReleaseForm(formdata=None)
                                         if round_.status == RoundStatus.DRAFT else None),
        "release_shown": None,  # the account a release form shows, asking for confirmation
        "action_form": LazyForm(ConfirmForm, formdata=None, version=str(round_.version)),
        "is_open": round_.is_open_at(now()),
        **round_effects(session, round_, listings),
        "cancel_round_form": LazyForm(cancel_form, round_.version),
        "cancel_listing_form": None, "cancel_listing_id": None,
        **round_review_context(session, round_, now()),
        **forms,
    }
    if reviews is not None:
        context["decision_rows_html"] = kept_rows_html(
            [reviews[listing.id] for listing in listings], context["row_text"],
            can_decide=context["can_decide"], reopened=context["reopened"],
            # The token the page's frame shows, signed once per session (page_token): the
            # rows are drawn first, and a token signed here would be signed on every view.
            token=page_token())
    if status != 200:
        return render("manage/round.html", status=status, **context)
    return page_or_partial("manage/round.html", "manage/_round_listings.html", **context)


@blueprint.route("/rounds/<int:round_id>")
@managers
def round_detail(round_id: int):
    return round_page(round_id)


NO_OWNER = "none"  # the release form's `owner` for an account nobody holds


def release_preview(round_id: int, form: ReleaseForm, account: Account, *, status: int = 200):
    """The round page with the release form showing who holds `account` (the rep the review
    is about), carrying what it shows, and asking for confirmation."""
    form.shown_account.data = str(account.id)
    form.owner.data = NO_OWNER if account.owner_id is None else str(account.owner_id)
    return round_page(round_id, release_form=form, status=status, release_shown=account)


@blueprint.route("/rounds/<int:round_id>/release", methods=["POST"])
@managers
def release(round_id: int):
    """Release one account typed by name or number: the first post shows who holds it, the
    confirmation releases it from that owner, or from nobody else (409 when it moved)."""
    session = get_session()
    form = ReleaseForm()
    if not form.validate_on_submit():
        return round_page(round_id, release_form=form, status=422)
    try:
        account = browse.require_account(session, form.account.data)
    except InvalidRequest as error:
        form.add_error(error)
        return round_page(round_id, release_form=form, status=422)
    if form.shown_account.data != str(account.id):
        # Another account than the one shown (or none shown yet): checked as the release
        # will check it, then shown with who holds it, for confirmation.
        try:
            account = rounds.preview_release(
                session, round_id, account_id=account.id, reason=form.reason.data,
                note=form.note.data or "", review_text=form.review_text.data or "")
        except InvalidRequest as error:
            form.add_error(error)
            return round_page(round_id, release_form=form, status=422)
        return release_preview(round_id, form, account)
    owner = form.owner.data or ""
    expected_owner_id = None if owner == NO_OWNER else params.parse_id(owner)
    if owner != NO_OWNER and expected_owner_id is None:
        form.form_errors.append(_("This form is incomplete; check who holds the account and "
                                  "confirm again."))
        return release_preview(round_id, form, account, status=422)
    try:
        listing = rounds.release_account(
            session, current_user, round_id, account_id=account.id, reason=form.reason.data,
            note=form.note.data or "", review_text=form.review_text.data or "", now=now(),
            expected_owner_id=expected_owner_id)
    except Conflict as error:
        # Shown again with the owner it has now, to confirm (or not) afresh.
        session.expire_all()
        form.form_errors.append(translate(error))
        return release_preview(round_id, form, session.get(Account, account.id), status=409)
    except InvalidRequest as error:
        form.add_error(error)
        return release_preview(round_id, form, account, status=422)
    flash(_("%(name)s released into the round.", name=listing.account.name), "success")
    return redirect_after_post(url_for("manage.round_detail", round_id=round_id))


@blueprint.route("/listings/<int:listing_id>/remove", methods=["POST"])
@managers
def remove_listing(listing_id: int):
    session = get_session()
    listing = session.get(Listing, listing_id)
    if listing is None:
        abort(404)
    round_id = listing.round_id
    if not ConfirmForm().validate_on_submit():
        abort(400)
    rounds.remove_listing(session, current_user, listing_id, now())
    flash(_("Listing removed."), "info")
    return redirect_after_post(url_for("manage.round_detail", round_id=round_id))


def version_from(form: ConfirmForm) -> int:
    return params.parse_version(form.version.data)


@blueprint.route("/rounds/<int:round_id>/publish", methods=["POST"])
@managers
def publish(round_id: int):
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    version = version_from(form)
    try:
        rounds.publish_round(get_session(), current_user, round_id, expected_version=version,
                             now=now())
    except InvalidRequest as error:
        # Back on the round page, where what stops the round (a release waiting for its
        # sponsor, a passed deadline) can be put right.
        flash(translate(error), "error")
        return redirect_after_post(url_for("manage.round_detail", round_id=round_id))
    flash(_("Round published. Reps see it from its opening time."), "success")
    return redirect_after_post(url_for("manage.round_detail", round_id=round_id))


@blueprint.route("/rounds/<int:round_id>/score", methods=["POST"])
@managers
def score(round_id: int):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if adjudication.score_closed_round(get_session(), round_id, now(),
                                       zone=current_app.config["TIMEZONE"]):
        if rounds.load_round(get_session(), round_id).status == RoundStatus.IN_REVIEW:
            # The round's rules ask for a blind review first: nothing is scored yet.
            flash(_("The applications are now in blind review. The bids are scored once each "
                    "has its reviews, or when the review is closed early."), "success")
        else:
            flash(_("Bids scored. Decide each listing, then publish the results."), "success")
    else:
        flash(_("Nothing to score: the round is not past its deadline or was scored already."),
              "info")
    return redirect_after_post(url_for("manage.round_detail", round_id=round_id))


def listing_page(listing_id: int, form: DecisionForm | None = None, status: int = 200,
                 refusal: InvalidRequest | None = None):
    """The listing's page; with `form`, a decision refused (by `refusal`, when the use case
    refused it) shown again with its errors."""
    session = get_session()
    listing = session.get(Listing, listing_id)
    if listing is None:
        abort(404)
    round_ = listing.round
    # A page without the decision form (bids sealed, round cancelled or published, no bids)
    # has nowhere to show a refused decision: the answer is then the refusal itself.
    if policies.bids_are_sealed(round_):
        if form is not None:
            raise refusal or InvalidRequest(adjudication.NOT_IN_ADJUDICATION)
        return render("manage/listing_sealed.html", listing=listing, round=round_,
                      bid_count=browse.bid_counts(session, round_.id).get(listing.id, 0))
    ranking = adjudication.ranked_bids(session, listing.id)
    can_decide = bool(ranking) and (round_.status == RoundStatus.SCORED
                                    or reopened_in_standstill(listing))
    if form is not None and not can_decide:
        raise refusal or InvalidRequest(adjudication.NOT_IN_ADJUDICATION)
    breakdowns = {bid.id: ScoreBreakdown.from_dict(bid.score.breakdown) for bid in ranking}
    decision = browse.decisions_of_round(session, round_.id).get(listing.id)
    proposed = next((bid for bid in ranking if bid.score.is_proposed_winner), None)
    bid_flags = flags.second_look_flags(session, round_, listing_id=listing.id,
                                        zone=current_app.config["TIMEZONE"])
    if form is None:
        form = DecisionForm(formdata=None)
        if decision is not None:
            form.kind.data, form.bid_id.data = decision.kind, decision.bid_id
            form.reason.data, form.version.data = decision.reason, str(decision.version)
        else:
            form.kind.data = DecisionKind.ACCEPTED.value if proposed else None
    form.bid_id.choices = options({0: "—"} | {
        bid.id: _("%(text)s (%(note)s)", text=f"#{bid.score.rank or '-'} {bid.rep.display_name}",
                  note=f"{bid.score.total:.3f}")
        for bid in ranking if bid.score.is_eligible and may_receive_accounts(bid.rep)})
    return render("manage/listing.html", status=status, listing=listing, round=round_,
                  ranking=ranking, breakdowns=breakdowns, decision=decision, proposed=proposed,
                  listing_names=listing_names(session, round_.id, [
                      bid.score.not_awarded_reason for bid in ranking]),
                  form=form, metrics=METRICS,
                  can_decide=can_decide,
                  bid_flags=bid_flags, bid_flag_labels=BID_FLAG_LABELS,
                  **listing_review_context(session, round_))


@blueprint.route("/listings/<int:listing_id>")
@managers
def listing(listing_id: int):
    return listing_page(listing_id)


def decision_row(listing_id: int, form: DecisionForm | None = None, status: int = 200,
                 refusal: InvalidRequest | None = None):
    """One row of the round page's adjudication table, for an inline (htmx) decision; with
    `form`, a decision refused (by `refusal`, when the use case refused it)."""
    session = get_session()
    listing = session.get(Listing, listing_id)
    if listing is None:
        abort(404)
    round_ = rounds.load_round(session, listing.round_id)
    context = adjudication_context(session, round_)
    if context["reviews"] is None:
        # The round is not (or no longer) in adjudication: cancelled, published, still open.
        # There is no row to show, so the answer is an error htmx does not swap in (the page
        # shows its message above the table), saying why.
        raise Conflict(refusal.message if refusal is not None
                       else adjudication.NOT_IN_ADJUDICATION)
    # The publishing summary travels along (out of band), so that deciding the last listing
    # offers the publish button without a reload.
    # In the standstill window the row keeps its forms when an upheld appeal reopened it.
    rows = decision_rows([context["reviews"][listing.id]], context["row_text"],
                         can_decide=context["can_decide"],
                         reopened=[listing.id] if reopened_in_standstill(listing) else ())
    return render("manage/_decision_response.html", status=status, round=round_,
                  decision_rows_html=rows_html(rows, context["row_text"], token=page_token(),
                                               row_form=form),
                  action_form=ConfirmForm(formdata=None, version=str(round_.version)), **context)


@blueprint.route("/listings/<int:listing_id>/decide", methods=["POST"])
@managers
def decide(listing_id: int):
    inline = is_htmx_partial_request()
    form = DecisionForm()
    form.bid_id.choices = None  # choices are checked by the use case against the ranking
    form.bid_id.validate_choice = False
    if form.validate_on_submit():
        version = form.version.data
        try:
            adjudication.decide_listing(
                get_session(), current_user, listing_id, kind=form.kind.data,
                bid_id=form.bid_id.data or None, reason=form.reason.data or "",
                expected_version=params.parse_version(version) if version else None,
                now=now())
        except InvalidRequest as error:
            form.add_error(error)
            if inline:
                return decision_row(listing_id, form=form, status=422, refusal=error)
            return listing_page(listing_id, form=form, status=422, refusal=error)
        if inline:
            return decision_row(listing_id)
        flash(_("Decision recorded."), "success")
        listing = get_session().get(Listing, listing_id)
        return redirect_after_post(url_for("manage.round_detail", round_id=listing.round_id))
    if inline:
        return decision_row(listing_id, form=form, status=422)
    return listing_page(listing_id, form=form, status=422)


def parse_listing_ids(text: str | None) -> list[int]:
    """The confirmed set, "3,5,8"; malformed entries are dropped, so the set will not match."""
    ids = (params.parse_int(part, minimum=1, maximum=params.MAX_DB_INT)
           for part in (text or "").split(",")[:10_000])
    return sorted({listing_id for listing_id in ids if listing_id is not None})


@blueprint.route("/rounds/<int:round_id>/accept-unflagged", methods=["GET", "POST"])
@managers
def accept_unflagged(round_id: int):
    session = get_session()
    form = AcceptUnflaggedForm()
    if form.validate_on_submit():
        accepted = adjudication.accept_unflagged(
            session, current_user, round_id, listing_ids=parse_listing_ids(form.listing_ids.data),
            expected_version=version_from(form), now=now(),
            zone=current_app.config["TIMEZONE"])
        flash(ngettext("%(num)d proposed award accepted.", "%(num)d proposed awards accepted.",
                       len(accepted)), "success")
        return redirect_after_post(url_for("manage.round_detail", round_id=round_id))
    if form.is_submitted():
        abort(400)
    round_ = rounds.load_round(session, round_id)
    context = adjudication_context(session, round_)
    if not context["reviews"] or not context["can_decide"]:
        return redirect_after_post(url_for("manage.round_detail", round_id=round_id))
    form = AcceptUnflaggedForm(formdata=None, version=str(round_.version),
                               listing_ids=",".join(map(str, context["unflagged"])))
    return render("manage/accept_unflagged.html", round=round_, form=form,
                  margin_note=margin_note, **context)


@blueprint.route("/rounds/<int:round_id>/publish-results", methods=["POST"])
@managers
def publish_results(round_id: int):
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        filed = adjudication.publish_results(get_session(), current_user, round_id,
                                             expected_version=version_from(form), now=now(),
                                             zone=current_app.config["TIMEZONE"])
    except InvalidRequest as error:
        flash(translate(error), "error")
        return redirect_after_post(url_for("manage.round_detail", round_id=round_id))
    round_ = rounds.load_round(get_session(), round_id)
    if round_.status == RoundStatus.STANDSTILL:
        flash(_("Results announced. They take effect after the standstill window ends on "
                "%(when)s, listing by listing once its appeals are answered.",
                when=localtime(round_.standstill_ends_at)), "success")
    else:
        flash(ngettext("Results published; %(num)d transfer filed.",
                       "Results published; %(num)d transfers filed.", len(filed)), "success")
    return redirect_after_post(url_for("manage.round_detail", round_id=round_id))


def band_labels() -> dict[Band, str]:
    return {Band.BELOW: _("below the band"), Band.INSIDE: _("within the band"),
            Band.ABOVE: _("above the band")}


def query_id(name: str) -> int | None:
    """An id from the query string; absent is None, anything but an id is a bad request."""
    value = request.args.get(name, "")
    if not value.strip():
        return None
    parsed = params.parse_id(value)
    if parsed is None:
        abort(400)
    return parsed


def transfer_context(session, account_id: int | None, to_rep_id: int | None,
                     from_rep_id: int | None, review_text: str | None = None) -> dict:
    """The picks of the transfer page and, once both are made, what the transfer would do."""
    account = transfer_preview.find_account(session, account_id)
    to_rep = transfer_preview.find_active_rep(session, to_rep_id)
    preview = (transfer_preview.preview_transfer(session, account, to_rep, review_text)
               if account is not None and to_rep is not None else None)
    return {"picked_account": account, "picked_rep": to_rep, "preview": preview,
            "from_rep": transfer_preview.find_rep(session, from_rep_id),
            "band_labels": band_labels()}


def form_context(session, form: TransferForm, *, check: bool = False) -> dict:
    """The page's context from a posted form; with `check`, the preview's refusals on fields."""
    account_id = params.parse_id(form.account.data)
    to_rep_id = params.parse_id(form.to_rep.data)
    context = transfer_context(session, account_id, to_rep_id, params.parse_id(form.from_rep.data),
                               review_text=(form.review_text.data or "") if check else None)
    for name, message in (("account", _("Choose the account from the list.")),
                          ("to_rep", _("Choose an active rep from the list."))):
        field = getattr(form, name)
        picked = context["picked_account" if name == "account" else "picked_rep"]
        if field.data and picked is None:
            field.errors = [*field.errors, message]
    if check and context["preview"] is not None:
        for name, problem in context["preview"].problems.items():
            field = getattr(form, name)
            field.errors = [*field.errors, translate(problem)]
    # What was typed in a picker not yet picked from, shown again with the refusal.
    context["typed"] = {name: request.form.get(name, "") for name in (ACCOUNT_QUERY, REP_QUERY)}
    return context


def has_errors(form: TransferForm) -> bool:
    return bool(form.form_errors) or any(field.errors for field in form)


@blueprint.route("/transfer", methods=["GET", "POST"])
@managers
def transfer():
    """The transfer page (GET) and the confirmation from its summary (POST), which files it."""
    session = get_session()
    if request.method == "GET":
        context = transfer_context(session, params.id_arg(request.args, "account"),
                                   params.id_arg(request.args, "to_rep"),
                                   params.id_arg(request.args, "from_rep"))
        return render("manage/transfer.html", form=TransferForm(formdata=None), **context)
    form = ConfirmTransferForm()
    valid = form.validate_on_submit()
    owner = form.owner.data
    expected_owner_id = None if owner == "none" else params.parse_id(owner)
    if valid and owner != "none" and expected_owner_id is None:
        form.form_errors.append(_("This confirmation is incomplete; review the transfer again."))
    context = form_context(session, form)
    if not valid or has_errors(form):
        return render_form_errors("manage/transfer.html", form=form, **context)
    try:
        result = confirm_transfer(
            session, current_user, account_id=params.parse_id(form.account.data) or 0,
            to_rep_id=params.parse_id(form.to_rep.data) or 0,
            expected_owner_id=expected_owner_id, reason=form.reason.data,
            review_text=form.review_text.data or "", now=now())
    except Conflict as error:
        form.form_errors.append(translate(error))
        return render("manage/transfer.html", 409, form=form, **form_context(session, form))
    except InvalidRequest as error:
        form.add_error(error)
        return render_form_errors("manage/transfer.html", form=form, **form_context(session, form))
    if isinstance(result, TransferRequest):
        flash(_("The transfer of %(account)s was sent to %(sponsor)s for confirmation; it is "
                "filed when they accept it.", account=result.account.name,
                sponsor=result.sponsor.display_name), "success")
        # No management page lists waiting requests; the account's page shows owner and sponsor.
        return redirect_after_post(url_for("accounts.account", account_id=result.account_id))
    flash(_("Transfer filed as No. %(seq)d.", seq=result.seq), "success")
    return redirect_after_post(url_for("manage.filings", rep=result.to_rep_id))


@blueprint.route("/transfer/summary", methods=["POST"])
@managers
def transfer_summary():
    """Check everything and show exactly what will be filed; nothing is written here."""
    session = get_session()
    form = TransferForm()
    if request.form.get("edit"):
        # The summary's "Change" button: back to the form as it was filled in.
        return render("manage/transfer.html", form=form, **form_context(session, form))
    valid = form.validate_on_submit()
    context = form_context(session, form, check=True)
    if not valid or has_errors(form) or context["preview"] is None:
        return render_form_errors("manage/transfer.html", form=form, **context)
    preview = context["preview"]
    confirm = ConfirmTransferForm(
        formdata=None, account=str(preview.account.id), to_rep=str(preview.to_rep.id),
        from_rep=form.from_rep.data or "", reason=form.reason.data.strip(),
        review_text=(form.review_text.data or "").strip(),
        owner=str(preview.owner_id) if preview.owner_id else "none")
    return render("manage/transfer_summary.html", form=confirm, **context)


@blueprint.route("/transfer/picks")
@managers
def transfer_picks():
    """The pickers (htmx): a pick made or undone, and the preview once both are made."""
    context = transfer_context(get_session(), query_id("account"), query_id("to_rep"),
                               query_id("from_rep"))
    return render("manage/_transfer_picks.html", form=TransferForm(formdata=None), **context)


# The pickers' search boxes: named apart, so that a refused form shows each its own text.
ACCOUNT_QUERY, REP_QUERY = "account_q", "rep_q"


def picker_query(name: str) -> tuple[str, str]:
    """A picker's typed text (the box `name`, spaces around it aside: a box of spaces is
    empty) and, when it is past the pickers' limit, the refusal with both lengths (the box has
    no maxlength: a browser would cut a paste without a word)."""
    limit = transfer_preview.MAX_QUERY_LENGTH
    typed = request.args.get(name) or ""
    query = params.clean_text(typed, len(typed)).strip()
    if len(query) > limit:
        return query[:limit], too_long_message(limit, len(query))
    return query, ""


@blueprint.route("/transfer/accounts")
@managers
def transfer_accounts():
    """Type-ahead (htmx): accounts by name or customer number, or the accounts of `from_rep`."""
    query, too_long = picker_query(ACCOUNT_QUERY)
    if too_long:
        return render("manage/_transfer_accounts.html", status=422, accounts=[], query=query,
                      too_long=too_long)
    accounts = transfer_preview.search_accounts(get_session(), query,
                                                owner_id=query_id("from_rep"))
    return render("manage/_transfer_accounts.html", accounts=accounts, query=query)


@blueprint.route("/transfer/reps")
@managers
def transfer_reps():
    """Type-ahead (htmx): active reps by name, username or employee id, with their counts."""
    query, too_long = picker_query(REP_QUERY)
    if too_long:
        return render("manage/_transfer_reps.html", status=422, reps=[], query=query,
                      too_long=too_long)
    session = get_session()
    reps = transfer_preview.search_reps(session, query)
    return render("manage/_transfer_reps.html", reps=reps, query=query,
                  counts=transfer_preview.counts_of(session, reps),
                  band=transfer_preview.capacity_band(session))


def parse_day(value: str | None, *, days_after: int = 0) -> datetime | None:
    """The start of a local day from YYYY-MM-DD (or of the day `days_after` it), as UTC; None
    when malformed or far off. Days are counted on the local calendar: a day with a change of
    the clocks is not 24 hours long."""
    day = params.parse_day(value)
    if day is None:
        return None
    return local_to_utc(datetime.combine(day + timedelta(days=days_after), time()))


def filing_filter_from(args) -> FilingFilter:
    """The register's filters as the query gives them; "until" a day is until the next local
    midnight. Whether the menus offer its branch and rep is `offered_in_menus`'s to say."""
    return FilingFilter(branch_id=params.id_arg(args, "branch"),
                        rep_id=params.id_arg(args, "rep"),
                        date_from=parse_day(args.get("date_from")),
                        date_to=parse_day(args.get("date_to"), days_after=1))


def filing_filter_problems(args, criteria: FilingFilter) -> list[str]:
    """Why the register shows other filings than its filters ask for: a branch or rep not in
    the menus, or a day that is no date or outside the years taken (each left out, so the
    register is shown without it), or days in the wrong order (nothing can match); said above
    the rows rather than leaving the list to look filtered. The values are echoed without
    format characters, which could turn the message's text around."""
    problems = [_("“%(value)s” is not one of the choices in the list; the register is shown "
                  "without it.", value=params.quoted_arg(args, name))
                for name, chosen in (("branch", criteria.branch_id), ("rep", criteria.rep_id))
                if params.text_arg(args, name, 32).strip() and chosen is None]
    for name in ("date_from", "date_to"):
        text = params.text_arg(args, name, 32).strip()
        if not text or getattr(criteria, name) is not None:
            continue
        if params.day_of_any_year(text) is None:
            problems.append(_("“%(day)s” is no date; write it as YYYY-MM-DD. The register is "
                              "shown without it.", day=params.quoted_arg(args, name)))
        else:
            problems.append(_("“%(day)s” is outside the years %(first)d to %(last)d; the "
                              "register is shown without it.", day=params.quoted_arg(args, name),
                              first=params.MIN_YEAR, last=params.MAX_YEAR))
    if (criteria.date_from is not None and criteria.date_to is not None
            and criteria.date_from >= criteria.date_to):
        problems.append(_("The first day is after the last, so no filing can match; swap them."))
    return problems


FILING_FILTER_NAMES = ("branch", "rep", "date_from", "date_to")


def filing_filter_args(args) -> dict[str, str]:
    """The register's filters to carry into its links (export, pages); nothing else of the query.

    Other names would reach url_for, where `endpoint` or `_scheme` break the page.
    """
    return {name: params.text_arg(args, name, 32) for name in FILING_FILTER_NAMES
            if args.get(name)}


@blueprint.route("/filings")
@managers
def filings():
    return filings_page()


def filings_page(status: int = 200):
    """The register's page (or its rows, for htmx) as the query asks; a page past the last is
    shown as the last."""
    session = get_session()
    criteria = filing_filter_from(request.args)
    # The menus and the register's head are outside the partial. A full page checks the
    # branch and rep asked for against the menus it reads anyway; the partial is asked for
    # by those menus, and reads only the signed-in user and its lines.
    surroundings = None
    if not is_htmx_partial_request():
        surroundings = register_surroundings(session)
        criteria = offered_in_menus(session, criteria, surroundings)
    page = min(params.int_arg(request.args, "page", minimum=1) or 1, 100_000)
    size = 50
    register = filing_register(session, criteria, limit=size, offset=(page - 1) * size)
    if not register.lines and register.total and page > 1:
        page = (register.total + size - 1) // size
        register = filing_register(session, criteria, limit=size, offset=(page - 1) * size)
    args = filing_filter_args(request.args)
    outside = {}
    if surroundings is not None:
        outside = {**filter_menus(surroundings, args), "head": surroundings.head,
                   "lost_head": surroundings.lost}
    total = register.total
    return page_or_partial(
        "manage/filings.html", "manage/_filing_rows.html", status=status,
        filter_problems=filing_filter_problems(request.args, criteria),
        filings=filing_rows(register.lines), total=total,
        page=page, pages=max(1, (total + size - 1) // size),
        args=args, pager_key=tuple(sorted(args.items())), appeal_people=register.people,
        **outside)


@blueprint.route("/filings/check")
@managers
def check_register():
    """The whole register checked now, as `bidhub verify-ledger` checks it: the hash chain,
    the checkpoints kept outside the database, and that the filings give each account's
    owner. It reads and changes nothing, so a GET; htmx shows it under the register's head."""
    report = verify_ledger(get_session())
    return page_or_partial("manage/register_check.html", "manage/_register_check.html",
                           report=report, checked_at=now())


CSV_COLUMNS = (_l("No."), _l("Filed at (local)"), _l("Kind"), _l("Account number"),
               _l("Account"), _l("Branch"), _l("From rep"), _l("To rep"), _l("Round"),
               _l("Reason"), _l("Winner score"), _l("Runner-up score"), _l("Rule set SHA-256"),
               _l("Decided by"), _l("Requested by"), _l("Override reason"), _l("Appeals"),
               _l("Hash"))


@blueprint.route("/filings.csv")
@managers
def filings_csv():
    session = get_session()
    criteria = offered_in_menus(session, filing_filter_from(request.args))
    if filing_filter_problems(request.args, criteria):
        # A file that silently ignored a filter would be taken for what was asked: the page
        # says what is wrong with the query instead.
        return filings_page(status=422)
    register = filing_register(session, criteria)
    with export_language():
        return filings_export(session, register)


def score_cell(score: float | None) -> Decimal | str:
    """A score as the register gives it (six decimals), kept a number: as text, a penalty's
    negative total would get the leading quote that keeps text from starting a formula."""
    return "" if score is None else Decimal(f"{score:.6f}")


def filings_export(session, register):
    """The register's CSV, in the language export_language chose: each filing as the page
    shows it (its reason and appeals too), with its hash."""
    reason_of = reasons()
    records = ([
        line.seq, utc_to_local(line.decided_at).strftime("%Y-%m-%d %H:%M:%S"),
        label(line.kind, FilingKind), line.account_number, line.account_name,
        branch_name(line.branch), line.from_rep_name or "", line.to_rep_name,
        line.round_title or "", reason_of(line),
        score_cell(line.winner_score), score_cell(line.runner_up_score),
        line.rule_set_sha256 or "", line.decided_by_name, line.requested_by_name or "",
        line.override_reason,
        appeals_text(line.appeals, register.people), line.hash] for line in register.lines)
    stamp = utc_to_local(now()).strftime("%Y%m%d-%H%M")
    head = ledger_head(session)
    # The register's head closes the file, so a kept export can later be checked against it.
    trailer = [[], [_("Register head"), head.seq, head.hash,
                    head.checkpoint.mac if head.is_anchored else _("not anchored")]] if head else []
    return csv_response(f"bidhub-filings-{stamp}.csv", CSV_COLUMNS, records, trailer)


@blueprint.route("/appeals")
@managers
def appeals():
    """Appeals awaiting an answer first, then those answered in rounds still in their window."""
    return appeals_page()


def appeals_page(failed_forms: dict | None = None, status: int = 200):
    session = get_session()
    rounds_in_window = [round_ for round_, *_counts in browse.rounds_for_management(session)]
    return render("manage/appeals.html", status=status,
                  pending=appeal_service.pending_appeals(session),
                  answered=answered_appeals(session, rounds_in_window),
                  failed_forms=failed_forms or {}, **answering())


@blueprint.route("/appeals/<int:appeal_id>/answer", methods=["POST"])
@managers
def answer_appeal(appeal_id: int):
    session = get_session()
    appeal = load_appeal(session, appeal_id)
    if appeal is None:
        abort(404)
    inline = is_htmx_partial_request()
    form = AppealAnswerForm()
    if form.validate_on_submit():
        try:
            appeal = appeal_service.answer_appeal(
                session, current_user, appeal_id, upheld=is_upheld(form.outcome.data),
                answer=form.answer.data, expected_version=version_from(form), now=now())
        except InvalidRequest as error:
            form.add_error(error)
        else:
            if inline:
                # The page's count of appeals awaiting an answer follows (out of band).
                return render("manage/_appeal_answered.html", appeal=appeal, form=None,
                              pending_count=len(appeal_service.pending_appeals(session)),
                              **answering())
            flash(_("Answer sent to %(name)s.", name=appeal.appellant.display_name), "success")
            return redirect_after_post(url_for("manage.appeals"))
    if inline:
        return render("manage/_appeal_row.html", status=422, appeal=load_appeal(session, appeal_id),
                      form=form, **answering())
    return appeals_page({appeal_id: form}, status=422)


@blueprint.route("/listings/<int:listing_id>/cancel", methods=["POST"])
@managers
def cancel_listing(listing_id: int):
    session = get_session()
    listing = session.get(Listing, listing_id)
    if listing is None:
        abort(404)
    round_id = listing.round_id
    form = CancelForm()
    if form.validate_on_submit():
        try:
            listing = appeal_service.cancel_listing(session, current_user, listing_id,
                                                    reason=form.reason.data, now=now())
        except InvalidRequest as error:
            form.add_error(error)
        else:
            flash(_("%(name)s cancelled: it will not take effect.", name=listing.account.name),
                  "info")
            return redirect_after_post(url_for("manage.round_detail", round_id=round_id))
    return round_page(round_id, status=422, cancel_listing_form=form,
                      cancel_listing_id=listing_id)


@blueprint.route("/rounds/<int:round_id>/cancel", methods=["POST"])
@managers
def cancel_round(round_id: int):
    form = CancelForm()
    if form.validate_on_submit():
        try:
            appeal_service.cancel_round(get_session(), current_user, round_id,
                                        reason=form.reason.data,
                                        expected_version=version_from(form), now=now())
        except InvalidRequest as error:
            form.add_error(error)
        else:
            flash(_("Round cancelled: nothing in it takes effect."), "info")
            return redirect_after_post(url_for("manage.round_detail", round_id=round_id))
    return round_page(round_id, status=422, cancel_round_form=form)
