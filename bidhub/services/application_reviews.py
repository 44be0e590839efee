"""Blind review of bid applications (匿名评审): reviewers, their reviews, and when scoring runs.

Between the deadline and scoring, a round whose rules have a [review] section is IN_REVIEW:
the KA managers named on it score each application under a random code, never seeing who
wrote it (name, employee id, branch, track record and bid id are left out of everything a
reviewer reads). The round is scored once every application has the rules' minimum of reviews,
or once management closes the review early with a written reason; `plan_review` then joins the
bid's metrics, so it is stored with the scores' inputs and replayed by `rescore --verify`.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager

from bidhub.config import Defaults
from bidhub.db import unit_of_work
from bidhub.domain.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from bidhub.domain.facts import BidFacts
from bidhub.domain.reviews import (
    PLAN_REVIEW,
    ReviewCriterion,
    ReviewRules,
    check_review,
    is_complete,
    new_review_code,
    plan_review_value,
    review_mean,
)
from bidhub.domain.text import COMMA, N_, Joined
from bidhub.models import (
    Account,
    ApplicationReview,
    Bid,
    BidStatus,
    Listing,
    ListingStatus,
    Role,
    Round,
    RoundReviewer,
    RoundStatus,
    User,
)
from bidhub.services.audit import record_audit
from bidhub.services.filings import check_reason
from bidhub.services.ownership import lock_round
from bidhub.services.policies import results_are_published
from bidhub.services.rule_sets import parsed

MANAGEMENT_ROLES = (Role.KA_MANAGER, Role.ADMIN)
# Once scored, the reviews are part of the result: shown to management, and to reps after
# publication; never changed.
SCORED_STATUSES = (RoundStatus.SCORED, RoundStatus.STANDSTILL, RoundStatus.RESULTS_PUBLISHED)


@dataclass(frozen=True)
class ReviewShown:
    """One submitted review as a reader may see it; reviewer_name None when hidden."""

    scores: dict[str, int]
    mean: float
    note: str
    reviewer_name: str | None
    submitted_at: datetime


@dataclass(frozen=True)
class ReviewItem:
    """One application as a reviewer sees it: the account and the plan, never the bidder."""

    code: str
    listing_id: int
    account_name: str
    industry: str
    annual_value_yuan: int
    account_plan: str
    committed_revenue_yuan: int
    visit_plan: str
    my_review: ApplicationReview | None
    others: list[ReviewShown]

    @property
    def is_reviewed(self) -> bool:
        return self.my_review is not None


@dataclass(frozen=True)
class ReviewProgress:
    """How far a round's review is: counts only, never scores, never bidders."""

    min_reviews_per_bid: int
    bid_count: int
    complete_count: int
    by_reviewer: list[tuple[User, int]]
    closed_early: bool
    close_reason: str
    closed_by: User | None
    closed_at: datetime | None


@dataclass(frozen=True)
class RoundToReview:
    """A round in blind review that the reviewer is named on, with what is left to them."""

    round: Round
    application_count: int
    reviewed_count: int

    @property
    def left(self) -> int:
        return self.application_count - self.reviewed_count


# --- rules and the round's state ----------------------------------------------------------


def review_rules_of(round_: Round) -> ReviewRules | None:
    """The round's pinned [review] rules; None when its rules have no review step."""
    return parsed(round_.rule_set).review


def has_review_step(round_: Round) -> bool:
    return review_rules_of(round_) is not None


def _reviewable_bids(round_id: int):
    """The applications a review covers: the active bids the round will score."""
    return (select(Bid.id).join(Listing, Listing.id == Bid.listing_id)
            .where(Listing.round_id == round_id, Listing.status != ListingStatus.CANCELLED,
                   Bid.status == BidStatus.ACTIVE))


def start_review(session: Session, round_: Round, bids: Iterable[Bid], now: datetime) -> None:
    """Move a round past its deadline into blind review, giving each bid a random code.

    Called by adjudication.score_closed_round inside its unit of work.
    """
    taken = set(session.scalars(select(Bid.review_code).where(Bid.review_code.is_not(None))))
    count = 0
    for bid in bids:
        if bid.review_code is None:
            bid.review_code = new_review_code(secrets.randbelow, taken)
            taken.add(bid.review_code)
        count += 1
    round_.status = RoundStatus.IN_REVIEW
    record_audit(session, None, "round.review_started", f"round:{round_.id}", now,
                 after={"applications": count})


def review_counts(session: Session, round_id: int) -> dict[int, int]:
    """Submitted reviews per reviewable bid, by bid id (0 for a bid nobody reviewed yet)."""
    bid_ids = _reviewable_bids(round_id).subquery()
    return dict(session.execute(
        select(bid_ids.c.id, func.count(ApplicationReview.id))
        .outerjoin(ApplicationReview, ApplicationReview.bid_id == bid_ids.c.id)
        .group_by(bid_ids.c.id)).all())


def review_is_complete(session: Session, round_: Round) -> bool:
    """Every application has the rules' minimum of reviews (a round without rules: True)."""
    rules = review_rules_of(round_)
    if rules is None:
        return True
    return is_complete(review_counts(session, round_.id).values(), rules.min_reviews_per_bid)


def may_score_review(session: Session, round_: Round) -> bool:
    """An IN_REVIEW round is scored once complete, or once management closed it early."""
    return round_.review_closed_at is not None or review_is_complete(session, round_)


def scores_by_bid(session: Session, bid_ids: Collection[int]) -> dict[int, list[dict]]:
    """The stored scores of every review of these bids, by bid id, in submission order."""
    found: dict[int, list[dict]] = defaultdict(list)
    if not bid_ids:
        return found
    for bid_id, scores in session.execute(
            select(ApplicationReview.bid_id, ApplicationReview.scores)
            .where(ApplicationReview.bid_id.in_(list(bid_ids)))
            .order_by(ApplicationReview.submitted_at, ApplicationReview.id)):
        found[bid_id].append(scores)
    return found


def plan_reviews(session: Session, rules: ReviewRules,
                 bid_ids: Collection[int]) -> dict[int, float | None]:
    """plan_review of each bid from its stored reviews (None: no review), by bid id."""
    stored = scores_by_bid(session, bid_ids)
    return {bid_id: plan_review_value(stored.get(bid_id, []), rules.criteria)
            for bid_id in bid_ids}


def with_plan_reviews(session: Session, rules: ReviewRules,
                      facts: list[BidFacts]) -> list[BidFacts]:
    """The bids' facts with plan_review among their metrics, as scoring stores them."""
    values = plan_reviews(session, rules, [fact.bid_id for fact in facts])
    return [replace(fact, metrics={**fact.metrics, PLAN_REVIEW: values[fact.bid_id]})
            for fact in facts]


# --- reviewers ----------------------------------------------------------------------------


def _check_management(actor: User) -> None:
    if actor.role not in MANAGEMENT_ROLES or not actor.is_active:
        raise PermissionDenied(N_("Only KA management can do this."))


def _locked_round(session: Session, round_id: int) -> Round:
    round_ = lock_round(session, round_id)
    if round_ is None:
        raise NotFound(N_("No such round."))
    return round_


def name_reviewers(session: Session, actor: User, round_id: int,
                   reviewer_ids: Collection[int], now: datetime) -> list[User]:
    """Name the round's reviewers (the whole set): active KA managers, at least one.

    Before the deadline the set may change freely; during the review reviewers may only be
    added, so nobody's submitted reviews lose their reviewer and nobody is dropped quietly.
    """
    _check_management(actor)
    with unit_of_work(session):
        round_ = _locked_round(session, round_id)
        if not has_review_step(round_):
            raise InvalidRequest(N_("This round's rules have no blind review, so it has no "
                                    "reviewers."))
        wanted = {int(reviewer_id) for reviewer_id in reviewer_ids}
        if not wanted:
            raise InvalidRequest(N_("Name at least one reviewer."), field="reviewer_ids")
        users = list(session.scalars(select(User).where(User.id.in_(sorted(wanted)))))
        if len(users) != len(wanted):
            raise InvalidRequest(N_("No such user."), field="reviewer_ids")
        unfit = [user.display_name for user in users
                 if user.role != Role.KA_MANAGER or not user.is_active]
        if unfit:
            raise InvalidRequest(N_("Reviewers are active KA managers; not one: %(names)s",
                                    names=Joined(unfit, separator=COMMA)), field="reviewer_ids")
        current = set(session.scalars(select(RoundReviewer.reviewer_id)
                                      .where(RoundReviewer.round_id == round_.id)))
        _check_may_name(round_, current, wanted, now)
        for row in session.scalars(select(RoundReviewer).where(
                RoundReviewer.round_id == round_.id,
                RoundReviewer.reviewer_id.in_(sorted(current - wanted)))):
            session.delete(row)
        for reviewer_id in sorted(wanted - current):
            session.add(RoundReviewer(round_id=round_.id, reviewer_id=reviewer_id,
                                      named_by_id=actor.id, named_at=now))
        if wanted != current:
            record_audit(session, actor, "round.reviewers", f"round:{round_.id}", now,
                         before={"reviewers": sorted(current)},
                         after={"reviewers": sorted(wanted)})
        session.flush()
        return reviewers_of(session, round_.id)


def _check_may_name(round_: Round, current: set[int], wanted: set[int], now: datetime) -> None:
    if round_.status == RoundStatus.DRAFT or (round_.status == RoundStatus.PUBLISHED
                                              and round_.closes_at > now):
        return
    if round_.status == RoundStatus.IN_REVIEW:
        if current - wanted:
            raise InvalidRequest(N_("During the review, reviewers can be added but not "
                                    "removed."), field="reviewer_ids")
        return
    raise InvalidRequest(N_("Reviewers are named before the deadline, or added during the "
                            "review."), field="reviewer_ids")


def reviewers_of(session: Session, round_id: int) -> list[User]:
    """The round's named reviewers, by name in pinyin order (domain.collation)."""
    return list(session.scalars(
        select(User).join(RoundReviewer, RoundReviewer.reviewer_id == User.id)
        .where(RoundReviewer.round_id == round_id).order_by(User.display_name_sort_key, User.id)))


def is_reviewer(session: Session, user: User, round_id: int) -> bool:
    """A named reviewer of the round who is still an active KA manager."""
    if user.role != Role.KA_MANAGER or not user.is_active:
        return False
    return session.get(RoundReviewer, (round_id, user.id)) is not None


def _check_reviewer(session: Session, reviewer: User, round_id: int) -> Round:
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise NotFound(N_("No such round."))
    # Before and without a review there is nothing to see, named or not.
    if round_.status != RoundStatus.IN_REVIEW and round_.status not in SCORED_STATUSES:
        raise InvalidRequest(N_("This round is not in blind review."))
    if not is_reviewer(session, reviewer, round_id):
        raise PermissionDenied(N_("Only the reviewers named on this round see its "
                                  "applications."))
    return round_


# --- progress and the early close ------------------------------------------------------


def review_progress(session: Session, round_id: int) -> ReviewProgress:
    """Counts of the round's review, in a fixed number of statements."""
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise NotFound(N_("No such round."))
    rules = review_rules_of(round_)
    minimum = rules.min_reviews_per_bid if rules is not None else 0
    counts = review_counts(session, round_id)
    in_round = _reviewable_bids(round_id).subquery()
    by_reviewer = session.execute(
        select(User, func.count(ApplicationReview.id))
        .join(RoundReviewer, RoundReviewer.reviewer_id == User.id)
        .outerjoin(ApplicationReview, and_(ApplicationReview.reviewer_id == User.id,
                                           ApplicationReview.bid_id.in_(select(in_round.c.id))))
        .where(RoundReviewer.round_id == round_id)
        .group_by(User.id).order_by(User.display_name_sort_key, User.id)).all()
    closed_by = (session.get(User, round_.review_closed_by_id)
                 if round_.review_closed_by_id is not None else None)
    return ReviewProgress(
        min_reviews_per_bid=minimum, bid_count=len(counts),
        complete_count=sum(1 for count in counts.values() if count >= minimum),
        by_reviewer=[(user, count) for user, count in by_reviewer],
        closed_early=round_.review_closed_at is not None,
        close_reason=round_.review_close_reason or "", closed_by=closed_by,
        closed_at=round_.review_closed_at)


def close_review(session: Session, actor: User, round_id: int, reason: str,
                 now: datetime, *, zone: str = Defaults.TIMEZONE) -> None:
    """End the review before every application has its minimum, with a written reason, and
    score the round at once with the reviews submitted so far (tenure counted in the
    department's time zone `zone`)."""
    from bidhub.services.adjudication import score_closed_round  # adjudication imports us

    _check_management(actor)
    with unit_of_work(session):
        round_ = _locked_round(session, round_id)
        if round_.status != RoundStatus.IN_REVIEW:
            raise InvalidRequest(N_("Only a round in blind review can have its review "
                                    "closed."))
        reason = check_reason(reason)
        round_.review_closed_at = now
        round_.review_closed_by_id = actor.id
        round_.review_close_reason = reason
        progress = review_counts(session, round_.id)
        record_audit(session, actor, "round.review_closed", f"round:{round_.id}", now,
                     after={"reason": reason, "applications": len(progress),
                            "reviews": sum(progress.values())})
        score_closed_round(session, round_.id, now, zone=zone)


# --- the reviewer's work ------------------------------------------------------------------


def rounds_to_review(session: Session, reviewer: User) -> list[RoundToReview]:
    """Rounds in blind review that `reviewer` is named on, with applications left to them."""
    if reviewer.role != Role.KA_MANAGER or not reviewer.is_active:
        return []
    rounds = list(session.scalars(
        select(Round).join(RoundReviewer, RoundReviewer.round_id == Round.id)
        .where(RoundReviewer.reviewer_id == reviewer.id,
               Round.status == RoundStatus.IN_REVIEW)
        .order_by(Round.closes_at, Round.id)))
    if not rounds:
        return []
    ids = [round_.id for round_ in rounds]
    rows = session.execute(
        select(Listing.round_id, func.count(Bid.id), func.count(ApplicationReview.id))
        .join(Bid, Bid.listing_id == Listing.id)
        .outerjoin(ApplicationReview, and_(ApplicationReview.bid_id == Bid.id,
                                           ApplicationReview.reviewer_id == reviewer.id))
        .where(Listing.round_id.in_(ids), Listing.status != ListingStatus.CANCELLED,
               Bid.status == BidStatus.ACTIVE)
        .group_by(Listing.round_id)).all()
    counts = {round_id: (total, done) for round_id, total, done in rows}
    return [RoundToReview(round_, *counts.get(round_.id, (0, 0))) for round_ in rounds]


def review_queue(session: Session, reviewer: User, round_id: int) -> list[ReviewItem]:
    """Every application of the round as its named reviewer sees it: code, account, plan;
    the other reviewers' reviews only of applications this reviewer has reviewed. A fixed
    number of statements."""
    round_ = _check_reviewer(session, reviewer, round_id)
    rules = review_rules_of(round_)
    rows = session.execute(
        select(Bid.id, Bid.review_code, Bid.listing_id, Account.name, Account.industry,
               Account.annual_value_yuan, Bid.account_plan, Bid.committed_revenue_yuan,
               Bid.visit_plan)
        .join(Listing, Listing.id == Bid.listing_id).join(Account, Account.id == Listing.account_id)
        .where(Bid.id.in_(_reviewable_bids(round_id)), Bid.review_code.is_not(None))).all()
    reviews = _reviews_of_bids(session, [row.id for row in rows])
    items = []
    for row in rows:
        mine = next((review for review in reviews[row.id]
                     if review.reviewer_id == reviewer.id), None)
        others = ([_shown(review, rules, rules is not None and rules.show_reviewer_names)
                   for review in reviews[row.id] if review.reviewer_id != reviewer.id]
                  if mine is not None else [])
        items.append(ReviewItem(
            code=row.review_code, listing_id=row.listing_id, account_name=row.name,
            industry=row.industry, annual_value_yuan=row.annual_value_yuan,
            account_plan=row.account_plan, committed_revenue_yuan=row.committed_revenue_yuan,
            visit_plan=row.visit_plan, my_review=mine, others=others))
    # By account, then code: never by bid id, which would tell the order bids came in.
    items.sort(key=lambda item: (item.account_name, item.listing_id, item.code))
    return items


def review_item(session: Session, reviewer: User, round_id: int, code: str) -> ReviewItem:
    """One application of the reviewer's queue, by its code."""
    for item in review_queue(session, reviewer, round_id):
        if item.code == code:
            return item
    raise NotFound(N_("No application with this code in the round."))


def submit_review(session: Session, reviewer: User, round_id: int, code: str,
                  scores: Mapping[str, Any], note: str, now: datetime, *,
                  zone: str = Defaults.TIMEZONE) -> ApplicationReview:
    """A named reviewer's one review of one application; scores the round when it completes
    the minimum of every application (tenure counted in the department's time zone `zone`)."""
    from bidhub.services.adjudication import score_closed_round  # adjudication imports us

    with unit_of_work(session):
        round_ = _locked_round(session, round_id)
        if not is_reviewer(session, reviewer, round_id):
            raise PermissionDenied(N_("Only the reviewers named on this round review its "
                                      "applications."))
        if round_.status != RoundStatus.IN_REVIEW:
            raise InvalidRequest(N_("Reviews are written during the round's blind review; "
                                    "this round is past it, so its reviews are pinned."))
        rules = review_rules_of(round_)
        bid = session.scalars(select(Bid).where(
            Bid.review_code == str(code or "")[:16],
            Bid.id.in_(_reviewable_bids(round_id)))).first()
        if bid is None:
            raise NotFound(N_("No application with this code in the round."))
        if session.scalar(select(ApplicationReview.id).where(
                ApplicationReview.bid_id == bid.id,
                ApplicationReview.reviewer_id == reviewer.id)) is not None:
            raise Conflict(N_("You have reviewed this application already; a review cannot "
                              "be changed."))
        checked = check_review(rules, scores, note)
        review = ApplicationReview(bid_id=bid.id, reviewer_id=reviewer.id, scores=checked,
                                   note=note.strip(), submitted_at=now)
        session.add(review)
        try:
            session.flush()
        except IntegrityError as error:
            raise Conflict(N_("You have reviewed this application already; a review cannot "
                              "be changed.")) from error
        if review_is_complete(session, round_):
            score_closed_round(session, round_.id, now, zone=zone)
        return review


# --- reading reviews after scoring ------------------------------------------------------


def _reviews_of_bids(session: Session, bid_ids: Collection[int]
                     ) -> dict[int, list[ApplicationReview]]:
    found: dict[int, list[ApplicationReview]] = defaultdict(list)
    if not bid_ids:
        return found
    for review in session.scalars(
            select(ApplicationReview).join(User, User.id == ApplicationReview.reviewer_id)
            .where(ApplicationReview.bid_id.in_(list(bid_ids)))
            .options(contains_eager(ApplicationReview.reviewer))
            .order_by(ApplicationReview.submitted_at, ApplicationReview.id)):
        found[review.bid_id].append(review)
    return found


def _criteria_of(rules: ReviewRules | None, scores: Mapping[str, Any]
                 ) -> tuple[ReviewCriterion, ...]:
    if rules is not None:
        return rules.criteria
    return tuple(ReviewCriterion(name, name, 0, 0) for name in scores)


def _shown(review: ApplicationReview, rules: ReviewRules | None,
           with_name: bool) -> ReviewShown:
    mean = review_mean(review.scores, _criteria_of(rules, review.scores))
    return ReviewShown(scores=dict(review.scores), mean=round(mean or 0.0, 2), note=review.note,
                       reviewer_name=review.reviewer.display_name if with_name else None,
                       submitted_at=review.submitted_at)


def reviews_for_bid(session: Session, viewer: User, bid_id: int) -> list[ReviewShown]:
    """The reviews of one bid for `viewer`: the rep who made it once results are published
    (reviewers' names only if the rules say so), management once the round is scored."""
    bid = session.get(Bid, bid_id)
    if bid is None:
        raise NotFound(N_("No such bid."))
    round_ = bid.listing.round
    rules = review_rules_of(round_)
    if viewer.role in MANAGEMENT_ROLES:
        if round_.status not in SCORED_STATUSES:
            return []
        with_names = True
    elif viewer.role == Role.REP and viewer.id == bid.rep_id:
        if not results_are_published(round_):
            raise PermissionDenied(N_("Reviews are shown once the results are published."))
        with_names = rules is not None and rules.show_reviewer_names
    else:
        raise PermissionDenied(N_("Only the bidder and KA management see a bid's reviews."))
    return [_shown(review, rules, with_names)
            for review in _reviews_of_bids(session, [bid.id])[bid.id]]


def reviews_of_round(session: Session, round_id: int) -> dict[int, list[ReviewShown]]:
    """Every review of the round's bids by bid id, reviewers named, for management after
    scoring. A fixed number of statements."""
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise NotFound(N_("No such round."))
    rules = review_rules_of(round_)
    found: dict[int, list[ReviewShown]] = defaultdict(list)
    for review in session.scalars(
            select(ApplicationReview).join(Bid, Bid.id == ApplicationReview.bid_id)
            .join(Listing, Listing.id == Bid.listing_id)
            .join(User, User.id == ApplicationReview.reviewer_id)
            .where(Listing.round_id == round_id)
            .options(contains_eager(ApplicationReview.reviewer))
            .order_by(ApplicationReview.submitted_at, ApplicationReview.id)):
        found[review.bid_id].append(_shown(review, rules, True))
    return dict(found)
