"""Reps' track-record pages: a rep sees their own; KA management and admins see anyone's."""

from __future__ import annotations

from flask import Blueprint, abort
from flask_babel import gettext as _
from flask_login import current_user

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.models import Role, RoundStatus
from bidhub.services import policies
from bidhub.services.browse import active_reps
from bidhub.services.policies import BidOutcome
from bidhub.services.profiles import IN_REVIEW, SEALED, rep_profile
from bidhub.services.track_records import accounts_held_by
from bidhub.web.access import managers, signed_in
from bidhub.web.charts import capacity_gauge, forecast_chart
from bidhub.web.labels import label
from bidhub.web.rendering import render
from bidhub.web.reviews import review_context

blueprint = Blueprint("profiles", __name__)


@blueprint.route("/reps/<int:rep_id>")
@signed_in
def rep(rep_id: int):
    if not policies.may_see_profile_of(current_user, rep_id):
        abort(404)
    return track_record_page(rep_id)


@blueprint.route("/my/track-record")
@signed_in
def mine():
    # The page itself rather than a redirect to /reps/<id>: one request instead of two.
    if current_user.role != Role.REP:
        abort(404)
    return track_record_page(current_user.id)


def track_record_page(rep_id: int):
    current = now()
    profile = rep_profile(get_session(), rep_id, current,
                          include_sealed_bids=policies.sees_sealed_bids_of(current_user, rep_id))
    months, chart_width = forecast_chart(profile.forecasts)
    # Looked up once and formatted per bar: the chart has two dozen bars.
    bar_titles = {"forecast": _("forecast %(value)s"), "actual": _("actual %(value)s")}
    # Translated once, not per bid.
    bid_results = {BidOutcome.WITHDRAWN: _("withdrawn"),
                   IN_REVIEW: label(RoundStatus.IN_REVIEW, RoundStatus),
                   SEALED: _("sealed until the deadline"),
                   BidOutcome.NOT_DECIDED: _("awaiting results"), BidOutcome.WON: _("won"),
                   BidOutcome.LOST: _("not won")}
    return render("profiles/rep.html", profile=profile, months=months, chart_width=chart_width,
                  bar_titles=bar_titles, bid_results=bid_results, **review_context(current),
                  gauge=capacity_gauge(profile.accounts_held, profile.capacity_target,
                                       profile.capacity_max))


@blueprint.route("/reps")
@managers
def reps():
    session = get_session()
    people = active_reps(session)
    return render("profiles/reps.html", reps=people,
                  held=accounts_held_by(session, [rep.id for rep in people]))
