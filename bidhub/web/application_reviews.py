"""The reviewer's pages of a blind review (匿名评审): rounds to review, a queue, one application."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import SelectField, TextAreaField

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.errors import InvalidRequest
from bidhub.domain.reviews import (
    MAX_NOTE_LENGTH,
    MIN_NOTE_LENGTH,
    ReviewRules,
    criterion_problems,
)
from bidhub.domain.text import N_
from bidhub.models import Round, RoundStatus
from bidhub.services import application_reviews
from bidhub.web.access import managers
from bidhub.web.forms import Form, Required, TextLength, options
from bidhub.web.i18n import translate
from bidhub.web.rendering import page_or_partial, redirect_after_post, render

blueprint = Blueprint("application_reviews", __name__, url_prefix="/review")

# Form fields of criteria carry a prefix, so that a criterion named like a form attribute
# ("data", "errors", "meta") cannot shadow it.
CRITERION_PREFIX = "criterion_"
# The queue's filter: every application, or only those the reviewer has not reviewed.
ONLY_LEFT = "todo"


class ReviewForm(Form):
    note = TextAreaField(
        _l("Note on the plan"),
        description=_l("At least %(count)d characters.", count=MIN_NOTE_LENGTH),
        validators=[Required(), TextLength(min=MIN_NOTE_LENGTH, max=MAX_NOTE_LENGTH)])

    def scores(self, rules: ReviewRules) -> dict[str, str]:
        return {criterion.name: self[CRITERION_PREFIX + criterion.name].data or ""
                for criterion in rules.criteria}

    def add_error(self, error: InvalidRequest) -> None:
        """Each refusal on its criterion's select, the note's on the note, the rest above."""
        for refusal in error.refusals:
            field = getattr(refusal, "field", None)
            if field and CRITERION_PREFIX + field in self:
                target = self[CRITERION_PREFIX + field]
                target.errors = [*target.errors, translate(refusal)]
            else:
                super().add_error(refusal)


def review_form(rules: ReviewRules, formdata=None) -> ReviewForm:
    """The review form of the round's rules: one select per criterion with its points."""

    class RoundReviewForm(ReviewForm):
        pass

    for criterion in rules.criteria:
        choices = options({"": _("Choose"), **{str(points): str(points)
                                               for points in criterion.points}})
        setattr(RoundReviewForm, CRITERION_PREFIX + criterion.name, SelectField(
            criterion.label, choices=choices, validate_choice=False,
            description=_("%(low)d (weakest) to %(high)d (strongest)",
                          low=criterion.min_points, high=criterion.max_points),
            validators=[Required()]))
    if formdata is None:
        return RoundReviewForm(formdata=None)
    return RoundReviewForm(formdata=formdata)


def criterion_fields(form: ReviewForm, rules: ReviewRules) -> list:
    return [form[CRITERION_PREFIX + criterion.name] for criterion in rules.criteria]


@blueprint.route("/", endpoint="rounds")
@managers
def rounds():
    session = get_session()
    return render("application_reviews/rounds.html",
                  rounds=application_reviews.rounds_to_review(session, current_user))


@blueprint.route("/rounds/<int:round_id>", endpoint="queue")
@managers
def queue(round_id: int):
    session = get_session()
    items = application_reviews.review_queue(session, current_user, round_id)
    round_ = session.get(Round, round_id)
    only_left = request.args.get("show") == ONLY_LEFT
    visible = [item for item in items if not (only_left and item.is_reviewed)]
    return page_or_partial("application_reviews/queue.html",
                           "application_reviews/_queue_rows.html", round=round_, items=visible,
                           total=len(items), reviewed=sum(item.is_reviewed for item in items),
                           only_left=only_left, rules=application_reviews.review_rules_of(round_),
                           is_open=round_.status == RoundStatus.IN_REVIEW)


def application_page(round_id: int, code: str, form: ReviewForm | None = None,
                     status: int = 200):
    session = get_session()
    item = application_reviews.review_item(session, current_user, round_id, code)
    round_ = session.get(Round, round_id)
    rules = application_reviews.review_rules_of(round_)
    is_open = round_.status == RoundStatus.IN_REVIEW
    if form is None and is_open and not item.is_reviewed and rules is not None:
        form = review_form(rules)
    return render("application_reviews/application.html", status=status, round=round_,
                  item=item, rules=rules, form=form if is_open and not item.is_reviewed else None,
                  criteria=criterion_fields(form, rules) if form is not None and rules else [],
                  is_open=is_open)


@blueprint.route("/rounds/<int:round_id>/<code:code>", endpoint="application")
@managers
def application(round_id: int, code: str):
    return application_page(round_id, code)


@blueprint.route("/rounds/<int:round_id>/<code:code>", methods=["POST"], endpoint="submit")
@managers
def submit(round_id: int, code: str):
    session = get_session()
    item = application_reviews.review_item(session, current_user, round_id, code)
    round_ = session.get(Round, round_id)
    rules = application_reviews.review_rules_of(round_)
    if rules is None:
        raise InvalidRequest(N_("This round's rules have no blind review."))
    form = review_form(rules, formdata=request.form)
    if not form.validate():
        # A score out of its range is the use case's refusal: said in the same answer as the
        # form's own problems, not only once they are mended.
        for refusal in criterion_problems(rules, form.scores(rules)):
            if not form[CRITERION_PREFIX + refusal.field].errors:
                form.add_error(refusal)
        return application_page(round_id, item.code, form=form, status=422)
    try:
        application_reviews.submit_review(session, current_user, round_id, item.code,
                                          form.scores(rules), form.note.data or "", now(),
                                          zone=current_app.config["TIMEZONE"])
    except InvalidRequest as error:
        form.add_error(error)
        return application_page(round_id, item.code, form=form, status=422)
    session.expire_all()
    if session.get(Round, round_id).status == RoundStatus.IN_REVIEW:
        flash(_("Review submitted. The other reviewers' scores are shown below."), "success")
    else:
        flash(_("Review submitted. It completed the review, so the round has been scored."),
              "success")
    return redirect_after_post(url_for("application_reviews.application", round_id=round_id,
                                       code=item.code))
