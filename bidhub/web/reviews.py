"""Loss reviews (任何客户的丢失都要总结反省): the register for management, the rep's own list."""

from __future__ import annotations

from flask import Blueprint, flash, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import HiddenField, TextAreaField

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.errors import Conflict, InvalidRequest
from bidhub.models import AccountReview, Role
from bidhub.services import browse, loss_reviews, users
from bidhub.services.loss_reviews import RegisterStatus, ReviewFilter
from bidhub.services.policies import loss_review_days
from bidhub.web import params
from bidhub.web.access import managers, rep_only, roles_required
from bidhub.web.forms import Form, Required, TextLength
from bidhub.web.labels import FILING_KIND_LABELS, LOSS_REVIEW_STATUS_LABELS, RELEASE_REASON_LABELS
from bidhub.web.rendering import redirect_after_post, render

blueprint = Blueprint("reviews", __name__)

# Who may open one review: its rep (others' are not found) and management.
rep_or_management = roles_required(Role.REP, Role.KA_MANAGER, Role.ADMIN)

REGISTER_STATUS_LABELS = {RegisterStatus.DUE: _l("Review due"),
                          RegisterStatus.OVERDUE: _l("Overdue"),
                          RegisterStatus.SUBMITTED: _l("Review submitted"),
                          RegisterStatus.CLOSED: _l("Review closed")}


class WriteForm(Form):
    what_happened = TextAreaField(
        _l("What happened"),
        description=_l("At least %(count)d characters.", count=loss_reviews.MIN_ANSWER_LENGTH),
        validators=[Required(), TextLength(min=loss_reviews.MIN_ANSWER_LENGTH,
                                            max=loss_reviews.MAX_ANSWER_LENGTH)])
    do_differently = TextAreaField(
        _l("What you would do differently"),
        description=_l("At least %(count)d characters.", count=loss_reviews.MIN_ANSWER_LENGTH),
        validators=[Required(), TextLength(min=loss_reviews.MIN_ANSWER_LENGTH,
                                            max=loss_reviews.MAX_ANSWER_LENGTH)])
    version = HiddenField()


class CloseForm(Form):
    comment = TextAreaField(
        _l("Management's comment"),
        description=_l("At least %(count)d characters.", count=loss_reviews.MIN_COMMENT_LENGTH),
        validators=[Required(), TextLength(min=loss_reviews.MIN_COMMENT_LENGTH,
                                            max=loss_reviews.MAX_ANSWER_LENGTH)])
    version = HiddenField()


def reason_label(review: AccountReview) -> str:
    """Why the account left: a release reason, or the kind of filing that moved it."""
    text = RELEASE_REASON_LABELS.get(review.reason) or FILING_KIND_LABELS.get(review.reason)
    return review.reason if text is None else str(text)


def review_context(current) -> dict:
    return {"is_overdue": lambda review: loss_reviews.is_overdue(review, current),
            "reason_label": reason_label, "status_labels": LOSS_REVIEW_STATUS_LABELS}


# --- management ------------------------------------------------------------------------------

def register_filter_args(args) -> dict[str, str]:
    status = args.get("status", "")
    kept = {"status": status if status in RegisterStatus.ALL else ""}
    for name in ("rep", "branch"):
        value = params.id_arg(args, name)
        kept[name] = "" if value is None else str(value)
    return {name: value for name, value in kept.items() if value}


@blueprint.route("/manage/reviews", endpoint="register")
@managers
def register():
    session = get_session()
    current = now()
    args = register_filter_args(request.args)
    criteria = ReviewFilter(status=args.get("status", ""),
                            rep_id=params.id_arg(args, "rep"),
                            branch_id=params.id_arg(args, "branch"))
    page = min(params.int_arg(request.args, "page", minimum=1) or 1, 100_000)
    found = loss_reviews.review_register(session, criteria, current, page=page)
    return render("reviews/register.html", found=found, args=args,
                  register_statuses=REGISTER_STATUS_LABELS, branches=users.branches(session),
                  reps=browse.active_reps(session), **review_context(current))


@blueprint.route("/manage/reviews/<int:review_id>/close", methods=["POST"])
@managers
def close(review_id: int):
    session = get_session()
    loss_reviews.load_review(session, review_id)  # 404 before anything else
    form = CloseForm()
    if form.validate_on_submit():
        try:
            loss_reviews.close_review(session, current_user, review_id,
                                      comment=form.comment.data or "",
                                      expected_version=params.parse_version(form.version.data),
                                      now=now())
        except InvalidRequest as error:
            form.add_error(error)
            return detail_page(review_id, close_form=form, status=422)
        except Conflict as error:
            # As for the rep's review: the comment typed stays, against the review as it is.
            form.add_error(error)
            session.expire_all()
            form.version.data = str(loss_reviews.load_review(session, review_id).version)
            return detail_page(review_id, close_form=form, status=409)
        flash(_("Review closed."), "success")
        return redirect_after_post(url_for("reviews.register"))
    return detail_page(review_id, close_form=form, status=422)


# --- one review --------------------------------------------------------------------------------

def detail_page(review_id: int, *, write_form: WriteForm | None = None,
                close_form: CloseForm | None = None, status: int = 200):
    session = get_session()
    current = now()
    review = loss_reviews.visible_review(session, current_user, review_id)
    if write_form is None and loss_reviews.may_write(review, current_user):
        write_form = WriteForm(formdata=None, version=str(review.version),
                               what_happened=review.what_happened,
                               do_differently=review.do_differently)
    if close_form is None and loss_reviews.may_close(review, current_user):
        close_form = CloseForm(formdata=None, version=str(review.version))
    return render("reviews/detail.html", status=status, review=review, write_form=write_form,
                  close_form=close_form, due_days=loss_review_days(), **review_context(current))


@blueprint.route("/reviews/<int:review_id>", endpoint="detail")
@rep_or_management
def detail(review_id: int):
    return detail_page(review_id)


@blueprint.route("/my/reviews/<int:review_id>", methods=["POST"])
@rep_only
def write(review_id: int):
    session = get_session()
    loss_reviews.visible_review(session, current_user, review_id)  # others' -> 404
    form = WriteForm()
    if form.validate_on_submit():
        try:
            loss_reviews.submit_review(
                session, current_user, review_id, what_happened=form.what_happened.data or "",
                do_differently=form.do_differently.data or "",
                expected_version=params.parse_version(form.version.data), now=now())
        except InvalidRequest as error:
            form.add_error(error)
            return detail_page(review_id, write_form=form, status=422)
        except Conflict as error:
            # Saved meanwhile (another tab, another device): what was typed stays in the
            # form with the message, and sending it again replaces what was saved, knowingly.
            form.add_error(error)
            session.expire_all()
            form.version.data = str(loss_reviews.visible_review(
                session, current_user, review_id).version)
            return detail_page(review_id, write_form=form, status=409)
        flash(_("Review submitted. KA management will read it and comment."), "success")
        return redirect_after_post(url_for("reviews.mine"))
    return detail_page(review_id, write_form=form, status=422)


# --- the rep's own list ------------------------------------------------------------------------

@blueprint.route("/my/reviews", endpoint="mine")
@rep_only
def mine():
    session = get_session()
    current = now()
    return render("reviews/mine.html", reviews=loss_reviews.reviews_of_rep(session, current_user.id),
                  due_days=loss_review_days(), **review_context(current))


@blueprint.record_once
def check_review_setting(_state) -> None:
    # A mistyped BIDHUB_LOSS_REVIEW_DAYS stops the start with its name, not every transfer later.
    loss_review_days()
