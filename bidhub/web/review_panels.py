"""What managers and reps see of a round's blind review (匿名评审) around the reviewers' pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from statistics import fmean

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session
from wtforms import SelectMultipleField, TextAreaField
from wtforms.validators import ValidationError

from bidhub.domain.collation import person_order
from bidhub.domain.reviews import ReviewRules
from bidhub.models import Bid, Role, Round, RoundStatus, User
from bidhub.services import application_reviews, policies
from bidhub.services.application_reviews import review_rules_of
from bidhub.services.notifications import active_users_with_role
from bidhub.web.forms import APPEAL_TEXT_HELP, APPEAL_TEXT_LENGTH, Form, Required
from bidhub.web.params import parse_id

# More boxes than any department has managers: a longer list is a forged request.
MAX_REVIEWERS_PICKED = 500


class ReviewersForm(Form):
    """The KA managers named to review a round's applications (the set replaces the last)."""

    # Named as the use case names it, so that its refusals land on this field.
    reviewer_ids = SelectMultipleField(_l("Reviewers"), coerce=str, validate_choice=False)

    def __init__(self, *args, candidates: list[User], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.candidates = candidates
        self.picked_ids: list[int] = []

    def validate_reviewer_ids(self, field) -> None:
        picked = [value for value in field.data or [] if isinstance(value, str)]
        if not picked:
            raise ValidationError(_("Name at least one reviewer."))
        ids = [parse_id(value) for value in picked[:MAX_REVIEWERS_PICKED + 1]]
        allowed = {user.id for user in self.candidates}
        if len(picked) > MAX_REVIEWERS_PICKED or any(id_ not in allowed for id_ in ids):
            raise ValidationError(_("Choose the reviewers from the list of active KA managers."))
        self.picked_ids = sorted(set(ids))

    def is_checked(self, user: User) -> bool:
        return str(user.id) in (self.reviewer_ids.data or [])


class CloseReviewForm(Form):
    """Ending the blind review before every application has its minimum, with a reason."""

    reason = TextAreaField(_l("Reason for closing the review early"),
                           description=APPEAL_TEXT_HELP,
                           validators=[Required(), APPEAL_TEXT_LENGTH])


def may_name_reviewers(round_: Round, now: datetime) -> bool:
    """When name_reviewers takes a new set: before the deadline, and during the review (to
    add a reviewer). The service checks again; this only decides whether to offer the form."""
    if round_.status == RoundStatus.IN_REVIEW:
        return True
    return round_.status == RoundStatus.DRAFT or (round_.status == RoundStatus.PUBLISHED
                                                  and now < round_.closes_at)


def reviewer_candidates(session: Session) -> list[User]:
    """Active KA managers, by name: the people a round's reviewers are chosen from."""
    return sorted(active_users_with_role(session, Role.KA_MANAGER), key=person_order)


def reviewers_form(session: Session, named: list[User] | None = None, *,
                   formdata=None) -> ReviewersForm:
    """The form with every candidate; unsubmitted, it has the named reviewers ticked."""
    form = ReviewersForm(formdata=formdata, candidates=reviewer_candidates(session))
    if formdata is None:
        form.reviewer_ids.data = [str(user.id) for user in named or []]
    return form


@dataclass(frozen=True)
class ReviewPanel:
    """The round page's blind-review card: who reviews, how far they are, what may be done."""

    rules: ReviewRules
    reviewers: list
    progress: application_reviews.ReviewProgress | None  # None before the deadline
    may_name: bool
    in_review: bool


def round_review_context(session: Session, round_: Round, now: datetime) -> dict:
    """The round page's review card and its forms; nothing when the rules have no review."""
    rules = review_rules_of(round_)
    if rules is None:
        return {"review_panel": None}
    reviewers = application_reviews.reviewers_of(session, round_.id)
    may_name = may_name_reviewers(round_, now)
    in_review = round_.status == RoundStatus.IN_REVIEW
    before_review = round_.status in (RoundStatus.DRAFT, RoundStatus.PUBLISHED)
    progress = None if before_review else application_reviews.review_progress(session, round_.id)
    return {"review_panel": ReviewPanel(rules=rules, reviewers=reviewers, progress=progress,
                                        may_name=may_name, in_review=in_review),
            "reviewers_form": reviewers_form(session, reviewers) if may_name else None,
            "close_review_form": CloseReviewForm(formdata=None) if in_review else None}


def listing_review_context(session: Session, round_: Round) -> dict:
    """Each bid's reviews with the reviewers' names, for the listing page once bids are
    unsealed: identities and review scores are shown together only from scoring on."""
    rules = review_rules_of(round_)
    if rules is None or policies.bids_are_sealed(round_):
        return {"bid_reviews": None}
    return {"bid_reviews": application_reviews.reviews_of_round(session, round_.id),
            "review_criteria": rules.criteria}


def rep_review_context(session: Session, rep: User, bid: Bid) -> dict:
    """The reviews of the rep's own application, once results are published; nothing before."""
    round_ = bid.listing.round
    rules = review_rules_of(round_)
    if rules is None or not policies.results_are_published(round_):
        return {"my_reviews": None}
    reviews = application_reviews.reviews_for_bid(session, rep, bid.id)
    return {"my_reviews": reviews, "review_criteria": rules.criteria,
            "review_mean": fmean(review.mean for review in reviews) if reviews else None}
