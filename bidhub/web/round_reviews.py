"""KA management's part of a round's blind review: naming its reviewers, closing it early."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.errors import InvalidRequest
from bidhub.services import application_reviews, rounds
from bidhub.services.application_reviews import review_rules_of
from bidhub.web.access import managers
from bidhub.web.manage import round_page
from bidhub.web.rendering import redirect_after_post
from bidhub.web.review_panels import CloseReviewForm, reviewers_form

blueprint = Blueprint("round_reviews", __name__, url_prefix="/manage/rounds")


def review_card(round_id: int) -> str:
    return url_for("manage.round_detail", round_id=round_id, _anchor="blind-review")


def without_review(message: str, round_id: int):
    """A review form posted for a round whose rules have no review: the round page has no
    review card to show the form's messages, so the answer is a message of its own, whatever
    the form held, and nothing changes."""
    flash(message, "error")
    return round_page(round_id, status=422)


@blueprint.route("/<int:round_id>/reviewers", methods=["POST"])
@managers
def name_reviewers(round_id: int):
    session = get_session()
    round_ = rounds.load_round(session, round_id)
    if review_rules_of(round_) is None:
        return without_review(_("This round's rules have no blind review, so it has no "
                                "reviewers."), round_id)
    form = reviewers_form(session, formdata=request.form)
    if form.validate_on_submit():
        try:
            named = application_reviews.name_reviewers(session, current_user, round_.id,
                                                       form.picked_ids, now())
        except InvalidRequest as error:
            form.add_error(error)
        else:
            flash(ngettext("%(num)d reviewer named.", "%(num)d reviewers named.", len(named)),
                  "success")
            return redirect_after_post(review_card(round_id))
    return round_page(round_id, status=422, reviewers_form=form)


@blueprint.route("/<int:round_id>/review/close", methods=["POST"])
@managers
def close_review(round_id: int):
    session = get_session()
    round_ = rounds.load_round(session, round_id)
    if review_rules_of(round_) is None:
        return without_review(_("This round's rules have no blind review."), round_id)
    form = CloseReviewForm()
    if form.validate_on_submit():
        try:
            application_reviews.close_review(session, current_user, round_.id,
                                             reason=form.reason.data, now=now(),
                                             zone=current_app.config["TIMEZONE"])
        except InvalidRequest as error:
            form.add_error(error)
        else:
            flash(_("Review closed: the bids are scored with the reviews submitted so far."),
                  "success")
            return redirect_after_post(review_card(round_id))
    return round_page(round_id, status=422, close_review_form=form)
