"""The reps' marketplace: open rounds, listings, account profiles, bids and results."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping
from datetime import datetime

from flask import Blueprint, abort, current_app, flash, make_response, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.errors import BidRejected, Conflict, InvalidRequest, PermissionDenied
from bidhub.domain.metrics import METRICS
from bidhub.domain.preferences import BONUS, TIE_BREAK, Preferences
from bidhub.domain.text import N_, Text
from bidhub.models import BidStatus, Listing, Role
from bidhub.services import appeals, bid_preferences, bidding, browse, market_rows, policies
from bidhub.services.rounds import load_round
from bidhub.services.rule_sets import parsed
from bidhub.services.track_records import snapshot_track_record
from bidhub.web.access import rep_only, signed_in
from bidhub.web.allocation_reasons import listing_names
from bidhub.web.appeals import rep_appeals
from bidhub.web.forms import AppealForm, BidEditForm, BidForm, ConfirmForm
from bidhub.web.i18n import kept_with_catalogue, translate
from bidhub.web.labels import metric_label
from bidhub.web.listing_lines import (
    barred_note,
    filter_form,
    listing_lines,
    listing_section,
    round_heading,
    shared_by_all,
    time_left_at,
)
from bidhub.web.params import (
    MAX_AMOUNT_CHARS,
    MAX_DB_INT,
    id_arg,
    parse_version,
    parse_yuan,
    quoted,
    text_arg,
)
from bidhub.web.rendering import (
    is_htmx_partial_request,
    redirect_after_post,
    render,
    render_form_errors,
)
from bidhub.web.review_panels import rep_review_context

blueprint = Blueprint("market", __name__)


def listing_filter_from(args, errors: dict[str, str] | None = None) -> browse.ListingFilter:
    """The filter asked for; an amount that is not one is left out and, when `errors` is
    given, explained there under its parameter's name."""
    errors = {} if errors is None else errors
    # A plain dict of each name's first value, as MultiDict.get gives it: the MultiDict raises
    # and catches an exception for each name the query leaves out, and most leave out most.
    args = dict(args.items())

    def whole_yuan(name: str) -> int | None:
        text = typed_amount(args, name)
        if not text:
            return None
        # Read as the bid form reads amounts (10万 is 100000); no stored value exceeds MAX_DB_INT.
        value = parse_yuan(text, maximum=10**18)
        if value is None:
            errors[name] = _("Write the annual value as an amount such as 100000, 100,000 or "
                             "10万; “%(value)s” is not one.", value=quoted(text))
            return None
        if value < 0:
            errors[name] = _("An annual value cannot be negative; write 0 or more instead of "
                             "“%(value)s”.", value=quoted(text))
            return None
        return min(value, MAX_DB_INT)

    low, high = whole_yuan("min_value"), whole_yuan("max_value")
    if low is not None and high is not None and low > high:
        errors["max_value"] = _(
            "The lowest annual value (%(low)s) is above the highest (%(high)s), so no account "
            "can match; swap them.", low=typed_amount(args, "min_value"),
            high=typed_amount(args, "max_value"))
    # One character more than is searched for, to tell a text cut short from one that fits.
    search = text_arg(args, "q", MAX_SEARCH_CHARS + 1)
    if len(search) > MAX_SEARCH_CHARS:
        search = search[:MAX_SEARCH_CHARS]
        errors["q"] = _("The search text is longer than %(limit)d characters; only its first "
                        "%(limit)d are searched for.", limit=MAX_SEARCH_CHARS)
    sort = args.get("sort")
    branch_id = id_arg(args, "branch")
    if branch_id is None and args.get("branch", "").strip():
        errors["branch"] = not_a_branch()
    return browse.ListingFilter(
        industry=text_arg(args, "industry", 64), ownership_type=text_arg(args, "ownership", 32),
        branch_id=branch_id,
        min_value_yuan=low, max_value_yuan=high,
        search=search,
        sort=sort if sort in browse.SORTS else "value_desc")


# The longest search a list's filter looks for; a longer text is cut to it, and said so.
MAX_SEARCH_CHARS = 100


def not_a_branch() -> str:
    return _("The branch asked for has no account in this list; the branch filter is left out.")


def menu_values_held(criteria: browse.ListingFilter, options: Mapping[str, list],
                     errors: dict[str, str]) -> browse.ListingFilter:
    """`criteria` less a menu value (industry, ownership, branch) that `options`
    (browse.filter_options_of the whole list) does not hold, each left out said so in
    `errors`: a link can carry one (from another round, or typed), which the form cannot show
    as chosen, so it would narrow the list to nothing unseen."""
    left_out: dict[str, object] = {}
    if criteria.industry and criteria.industry not in options["industries"]:
        left_out["industry"] = ""
        errors["industry"] = _("No account in this list has the industry “%(value)s”; that "
                               "filter is left out.", value=quoted(criteria.industry))
    if criteria.ownership_type and criteria.ownership_type not in options["ownership_types"]:
        left_out["ownership_type"] = ""
        errors["ownership"] = _("No account in this list has the ownership type "
                                "“%(value)s”; that filter is left out.",
                                value=quoted(criteria.ownership_type))
    if criteria.branch_id and criteria.branch_id not in {
            branch.id for branch in options["branches"]}:
        left_out["branch_id"] = None
        errors["branch"] = not_a_branch()
    return dataclasses.replace(criteria, **left_out) if left_out else criteria


# The filter's amounts, which its form shows again as they were typed.
AMOUNT_FILTERS = ("min_value", "max_value")


def typed_amount(args, name: str) -> str:
    """An amount filter's text as typed, bounded (one character more than an amount may
    have, so that a longer one is refused rather than cut to an amount)."""
    return text_arg(args, name, MAX_AMOUNT_CHARS + 1).strip()


@blueprint.route("/rounds")
@rep_only
def rounds():
    session = get_session()
    return render("market/rounds.html", rounds=market_rows.rounds_visible_to_reps(session, now()))


@blueprint.route("/rounds/<int:round_id>")
@rep_only
def round_listings(round_id: int):
    session = get_session()
    rep = current_user._get_current_object()  # read for every listing: not through the proxy
    at = now()
    filter_errors: dict[str, str] = {}
    criteria = listing_filter_from(request.args, filter_errors)
    # The round, the rep's standing in it and the list come in one statement; nothing of
    # them is shown unless reps may see the round.
    zone = current_app.config["TIMEZONE"]
    round_, standing, rows = browse.rep_list(session, round_id, rep, criteria, at, zone=zone)
    if not round_.is_visible_to_reps_at(at):
        abort(404)
    every_row = None if criteria.narrows else rows
    # A row shown holds the menu values it was picked by: only an empty list may have been
    # narrowed by one the list does not hold.
    if not rows and (criteria.industry or criteria.ownership_type or criteria.branch_id):
        every_row = browse.listings_for_rep(session, round_, rep, browse.ListingFilter())
        held = menu_values_held(criteria, browse.filter_options_of(every_row), filter_errors)
        if held != criteria:
            criteria = held
            round_, standing, rows = browse.rep_list(session, round_id, rep, criteria, at,
                                                     zone=zone)
    is_open = round_.is_open_at(at)
    # A listing the rep has bid for shows their bid instead of any reason not to bid.
    hindrances = policies.shared_hindrances_in_round(
        rep, round_, standing, [row for row in rows if row.own_bid_id is None], at)
    # Reasons every listing gives (the rep's capacity, tenure, leave) are said once, above it.
    shared = shared_by_all(rows, hindrances)
    listings = listing_section(listing_lines(rows, hindrances, shown, is_open, shared),
                               filter_errors, barred_note(shared, shown))
    if is_htmx_partial_request():  # the filter form's request: the list alone, as it is
        response = make_response(listings)
        response.vary.add("HX-Request")  # as render() says it
        return response
    # The menus offer what the rep's whole list holds: the rows already read, unless the
    # filter left some out.
    if every_row is None:
        every_row = (browse.listings_for_rep(session, round_, rep, browse.ListingFilter())
                     if criteria.narrows else rows)
    return render("market/round.html", options=browse.filter_options_of(every_row),
                  round=round_, criteria=criteria, listings=listings,
                  heading=round_heading(round_, is_open, at))


def shown(text: Text | None) -> str:
    """A service's message in the page's language, its dates in local time (translate)."""
    return "" if text is None else translate(text)


def shown_hindrances(found: dict[int, list[policies.Hindrance]]
                     ) -> dict[int, list[tuple[str, str]]]:
    """Each listing's reasons not to bid and what would lift them, translated once here."""
    return {listing_id: [(shown(item.reason), shown(item.remedy)) for item in items]
            for listing_id, items in found.items()}


@blueprint.app_template_global()
def listing_filters(criteria: browse.ListingFilter, options: dict[str, list]) -> Markup:
    """The filter form over a round's list, on the rep's list and the manager's round page."""
    return filter_form(request.path, criteria, options,
                       {name: typed_amount(request.args, name) for name in AMOUNT_FILTERS})


@blueprint.app_template_global()
def time_left(deadline: datetime) -> str:
    """The time until `deadline` in whole minutes, as the live countdown in app.js words it."""
    return time_left_at(deadline, now())


# How each tie-break orders bids with equal totals, in words a rep reads on the announcement.
TIE_BREAK_WORDS = {
    "fewest_accounts_held": _l("the bidder holding fewer accounts first"),
    "earliest_submission": _l("the earlier bid first"),
    "lottery": _l("the lottery: the smaller ticket first"),
}


@blueprint.route("/rounds/<int:round_id>/results")
@signed_in
def round_results(round_id: int):
    """The announcement of a round's results (中标公示); not found until they are published,
    so that nobody learns early that results exist."""
    return results_page(round_id)


def results_page(round_id: int, *, appeal_form: AppealForm | None = None,
                 form_listing_id: int | None = None, status: int = 200):
    """The announcement; a bidder also finds their bids here, with the standstill window's
    appeal forms (`appeal_form` shown again, with its messages, for `form_listing_id`)."""
    session = get_session()
    round_ = load_round(session, round_id)
    if not policies.may_see_results(current_user, round_, now()):
        abort(404)
    tie_break = parsed(round_.rule_set).tie_break
    my_bids = [] if current_user.role != Role.REP else [
        bid for bid in browse.my_bids(session, current_user)
        if bid.listing.round_id == round_.id and bid.status == BidStatus.ACTIVE]
    return render("market/results.html", status=status, round=round_,
                  announced=browse.round_announcement(session, round_.id),
                  tie_breaks=[TIE_BREAK_WORDS.get(name, name) for name in tie_break],
                  uses_lottery="lottery" in tie_break, my_bids=my_bids,
                  **rep_appeals(session, current_user, round_, my_bids, form=appeal_form,
                                form_listing_id=form_listing_id, page="results"))


@blueprint.route("/accounts/<int:account_id>")
@signed_in
def account(account_id: int):
    session = get_session()
    user = current_user._get_current_object()
    page = market_rows.account_page(session, account_id)
    if page is None or not policies.rep_may_see_account(session, user, page.profile, now()):
        abort(404)
    # The listing is there to offer a rep a bid; nobody else is offered one here.
    return render("market/account.html", account=page.profile,
                  listing=page.latest_listing if user.role == Role.REP else None,
                  contacts=page.contacts, words=kept_with_catalogue(_ACCOUNT_WORDS, _account_words))


# The key of the account page's words among the page catalogue's kept translations: a dozen
# fixed words, translated once per language instead of on every view.
_ACCOUNT_WORDS = object()


def _account_words() -> dict[str, str]:
    return {"profile": _("Customer profile"), "industry": _("Industry"),
            "ownership": _("Ownership"), "branch": _("Branch"), "value": _("Annual value"),
            "sponsor": _("Executive sponsor"), "held_by": _("Held by"), "nobody": _("nobody"),
            "people": _("Key people"), "role_heading": _("Role"), "name": _("Name"), "title": _("Title"),
            "phone": _("Phone"), "no_people": _("No key people recorded."),
            "bid": _("Bid for this account")}


def track_record_rows(record: dict) -> list[tuple[str, float | None, str]]:
    return [(metric_label(name), value, name) for name, value in record.items()]


@blueprint.route("/listings/<int:listing_id>/bid", methods=["GET", "POST"])
@rep_only
def place_bid(listing_id: int):
    form = BidForm()
    if not form.submission_key.data:
        form.submission_key.data = secrets.token_urlsafe(24)
    if not form.validate_on_submit():
        return bid_form_page(listing_id, form, 422 if form.is_submitted() else 200)
    # The use case checks the listing itself (no such listing, or one the rep may not see yet,
    # is a 404), so a bid that goes in costs no reads here beyond its own.
    try:
        # The user itself, not the proxy: the use case keeps it loaded (see
        # end_read_before_write).
        placed = bidding.place_bid(
            get_session(), current_user._get_current_object(), listing_id,
            account_plan=form.account_plan.data,
            committed_revenue_yuan=form.committed_revenue_yuan.data,
            visit_plan=form.visit_plan.data, submission_key=form.submission_key.data, now=now(),
            zone=current_app.config["TIMEZONE"])
    except BidRejected as error:
        form.add_error(error)
        return bid_form_page(listing_id, form, 422)
    flash(_("Your bid for %(name)s is in. You can edit or withdraw it until the deadline.",
            name=placed.account_name), "success")
    return redirect_after_post(url_for("market.my_bids"), event="bid-placed")


def bid_form_page(listing_id: int, form: BidForm, status: int):
    session = get_session()
    listing = session.get(Listing, listing_id)
    if listing is None or not listing.round.is_visible_to_reps_at(now()):
        abort(404)
    # The track record is worked out for display only; submit_bid freezes its own copy.
    zone = current_app.config["TIMEZONE"]
    record = snapshot_track_record(session, current_user, listing.account, now(), zone=zone)
    hindrances = shown_hindrances(policies.hindrances_for(session, current_user, [listing], now(),
                                                          zone=zone))
    context = {"form": form, "listing": listing,
               "existing": browse.own_bid_for(session, current_user, listing.id),
               "edit_refusal": bidding.edit_refusal(current_user.role, current_user.is_active,
                                                    current_user.status),
               "track_record": track_record_rows(record),
               "is_open": listing.round.is_open_at(now()),
               # A listing cancelled in an open round takes no bid, edit or withdrawal either.
               "takes_bids": policies.accepts_bids(listing, now()),
               "hindrances": hindrances.get(listing.id, []),
               "scored_metrics": [metric_label(factor.metric) for factor
                                  in parsed(listing.round.rule_set).factors]}
    if status == 422:
        return render_form_errors("market/bid_form.html", **context)
    return render("market/bid_form.html", **context)


@blueprint.route("/bids/<int:bid_id>/edit", methods=["GET", "POST"])
@rep_only
def edit_bid(bid_id: int):
    session = get_session()
    bid = bidding.own_bid(session, current_user, bid_id)
    form = BidEditForm(obj=bid)
    # The version the form was drawn with: the bid's on a GET, only what was sent on a POST
    # (a form without one is refused, never taken as drawn from the bid as it is now).
    form.version.data = request.form.get("version") if form.is_submitted() else str(bid.version)
    context = {"form": form, "bid": bid, "listing": bid.listing,
               "is_open": bid.listing.round.is_open_at(now()),
               "takes_bids": policies.accepts_bids(bid.listing, now()),
               "edit_refusal": bidding.edit_refusal(current_user.role, current_user.is_active,
                                                    current_user.status)}
    if form.validate_on_submit():
        try:
            bidding.update_bid(session, current_user, bid.id, account_plan=form.account_plan.data,
                               committed_revenue_yuan=form.committed_revenue_yuan.data,
                               visit_plan=form.visit_plan.data,
                               expected_version=parse_version(form.version.data),
                               now=now())
        except BidRejected as error:
            form.add_error(error)
            return render_form_errors("market/bid_edit.html", **context)
        except Conflict as error:
            # Saved meanwhile from another tab: what was typed here stays in the form, the
            # bid as saved is shown above it, and saving again replaces it knowingly.
            form.add_error(error)
            session.expire_all()
            saved = bidding.own_bid(session, current_user, bid_id)
            form.version.data = str(saved.version)
            return render("market/bid_edit.html", status=409, **{**context, "saved": saved})
        flash(_("Your bid is updated."), "success")
        return redirect_after_post(url_for("market.bid_detail", bid_id=bid.id))
    if form.is_submitted():
        return render_form_errors("market/bid_edit.html", **context)
    return render("market/bid_edit.html", **context)


@blueprint.route("/bids/<int:bid_id>/withdraw", methods=["POST"])
@rep_only
def withdraw_bid(bid_id: int):
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        bid = bidding.withdraw_bid(get_session(), current_user, bid_id, now())
    except InvalidRequest as error:
        flash(translate(error), "error")
        return redirect_after_post(url_for("market.bid_detail", bid_id=bid_id))
    flash(_("Your bid for %(name)s is withdrawn.", name=bid.listing.account.name), "info")
    return redirect_after_post(url_for("market.my_bids"))


@blueprint.route("/my/bids")
@rep_only
def my_bids():
    return my_bids_page()


def my_bids_page(*, round_id: int | None = None, entered: Mapping[str, str] | None = None,
                 error: InvalidRequest | None = None):
    """The rep's bids, with a ranking form per open round where they have two or more bids
    (`entered` and `error`: the ranking sent for `round_id`, shown again with its message)."""
    session = get_session()
    bids = market_rows.my_bids(session, current_user)
    # A rep who left or was deactivated may no longer rank (rank_preferences refuses it): no
    # form, and the reason where the forms would be.
    ranking_refusal = bid_preferences.ranking_refusal(current_user.role, current_user.is_active,
                                                      current_user.status)
    rankings = [] if ranking_refusal else [
        (round_, round_bids, preference_hint(preferences)) for round_, round_bids, preferences
        in bid_preferences.ranking_forms(session, bids, now())]
    if ranking_refusal and not bid_preferences.rankable_rounds(bids, now()):
        ranking_refusal = None  # nothing they could have ranked
    if error is not None and not ranking_refusal and all(
            round_.id != round_id for round_, _bids, _hint in rankings):
        flash(translate(error), "error")  # no form of that round is left to carry it
    # Only a ranking form carries the form's token.
    return render("market/my_bids.html", status=422 if error else 200, bids=bids,
                  outcomes=market_rows.bid_outcomes(bids), rankings=rankings,
                  rank_form=ConfirmForm() if rankings else None, ranked_round_id=round_id,
                  entered=entered or {}, rank_error=error, rank_field=bid_preferences.rank_field,
                  ranking_refusal=ranking_refusal)


@blueprint.route("/my/rounds/<int:round_id>/preferences", methods=["POST"])
@rep_only
def rank_bids(round_id: int):
    """The rep's ranking of their bids in an open round (1 = first choice); a blank
    choice leaves a bid unranked."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        ranks = ranks_from(request.form)
        bid_preferences.rank_preferences(get_session(), current_user, round_id, ranks, now())
    except InvalidRequest as error:
        return my_bids_page(round_id=round_id, entered=request.form, error=error)
    flash(_("Your ranking is saved. You can change it until the deadline."), "success")
    return redirect_after_post(url_for("market.my_bids"), event="preferences-ranked")


def preference_hint(preferences: Preferences) -> str:
    """What a ranking does under the round's rules, in the rep's words."""
    if preferences.mode == BONUS:
        return _("In this round your first choice gets a bonus of %(bonus)s points, your last "
                 "choice (and any bid you leave unranked) none, choices between them a part.",
                 bonus=f"{preferences.bonus:g}")
    if preferences.mode == TIE_BREAK:
        return _("In this round a ranking decides ties: between bids with equal scores, the "
                 "bid its rep ranked higher comes first, and if you could win more accounts "
                 "than you may take, you get the ones you ranked first.")
    return _("This round's rules do not count rankings; yours is kept with your bids.")


def ranks_from(form: Mapping[str, str]) -> dict[int, int]:
    """Bid id -> rank from the `rank-<bid id>` fields; blank fields are unranked bids."""
    ranks = {}
    for name, value in form.items():
        prefix, _dash, bid_text = name.partition("-")
        if (prefix != "rank" or not (bid_text.isascii() and bid_text.isdigit())
                or len(bid_text) > 18):
            continue
        text = value.strip()
        if not text:
            continue
        if not (text.isascii() and text.isdigit()) or len(text) > 6:
            raise InvalidRequest(N_("Choose a number from the list, or leave the bid unranked."),
                                 field=bid_preferences.rank_field(int(bid_text)))
        ranks[int(bid_text)] = int(text)
    return ranks


@blueprint.route("/bids/<int:bid_id>")
@rep_only
def bid_detail(bid_id: int):
    return bid_page(bid_id)


def bid_page(bid_id: int, *, appeal_form: AppealForm | None = None, status: int = 200):
    session = get_session()
    bid = bidding.own_bid(session, current_user, bid_id)
    round_ = bid.listing.round
    takes_bids = policies.accepts_bids(bid.listing, now())
    # "Bid again" only where a new bid would be taken: not for a rep the rules keep out (one
    # who left, or is on leave where the rules exclude them), as the place-bid page says.
    may_bid_again = (takes_bids and bid.status == BidStatus.WITHDRAWN
                     and not policies.hindrances_for(session, current_user, [bid.listing], now(),
                                                     zone=current_app.config["TIMEZONE"]))
    result = policies.rep_result(session, bid)
    return render("market/bid_detail.html", status=status, bid=bid, round=round_,
                  result=result,
                  listing_names=listing_names(session, round_.id, [
                      bid.score.not_awarded_reason if result and bid.score else None]),
                  is_open=round_.is_open_at(now()), takes_bids=takes_bids,
                  may_bid_again=may_bid_again, withdraw_form=ConfirmForm(),
                  edit_refusal=bidding.edit_refusal(current_user.role, current_user.is_active,
                                                    current_user.status),
                  metrics=METRICS, **rep_review_context(session, current_user, bid),
                  **rep_appeals(session, current_user, round_, [bid], form=appeal_form,
                                form_listing_id=bid.listing_id, page="bid"))


@blueprint.route("/listings/<int:listing_id>/appeal", methods=["POST"])
@rep_only
def file_appeal(listing_id: int):
    """A bidder's appeal (申诉) of a listing's announced result, during the standstill window."""
    session = get_session()
    listing = session.get(Listing, listing_id)
    if listing is None or not policies.may_see_results(current_user, listing.round, now()):
        abort(404)
    round_id = listing.round_id
    bid = browse.own_bid_for(session, current_user, listing.id)
    form = AppealForm()
    if form.validate_on_submit():
        try:
            appeals.file_appeal(session, current_user, listing.id, ground=form.ground.data,
                                now=now())
        except (InvalidRequest, Conflict, PermissionDenied) as error:
            form.add_error(error)
            if bid is None or (bid.status != BidStatus.ACTIVE and form.page.data == "results"):
                # No form of theirs is on the page to carry the message.
                flash(translate(error), "error")
        else:
            flash(_("Your appeal is filed. KA management answers it in writing; the result "
                    "does not take effect before that."), "success")
            target = (url_for("market.bid_detail", bid_id=bid.id)
                      if bid is not None and form.page.data != "results"
                      else url_for("market.round_results", round_id=round_id))
            return redirect_after_post(target, event="appeal-filed")
    if bid is not None and form.page.data != "results":
        return bid_page(bid.id, appeal_form=form, status=422)
    return results_page(round_id, appeal_form=form, form_listing_id=listing_id, status=422)
