"""Loss reviews (任何客户的丢失都要总结反省): due from the rep who lost an account, written, closed.

Every way an account leaves a rep ends in `review_losses`: a release into a round makes the
review due at once (`open_release_review`), and every change of owner (an award elsewhere, a
direct transfer, an accepted sponsored transfer, a CRM import moving the account) passes through
`ownership.change_owners`, which calls `review_losses` with its filings. A first load, which
records the CRM's owners with no previous owner, loses nobody anything.

The rep writes what happened and what they would do differently; they may improve it until
management closes it with a comment. Only a submitted review can be closed: closing is
management's answer to the rep's review, not a way to excuse one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from math import ceil

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session, object_session, selectinload

from bidhub.db import unit_of_work
from bidhub.domain.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from bidhub.domain.text import N_
from bidhub.domain.typed_text import short_writing, writes_less_than
from bidhub.models import (
    AccountReview,
    Filing,
    Listing,
    LossReviewStatus,
    RepStatus,
    Role,
    User,
)
from bidhub.services.audit import record_audit
from bidhub.services.limits import MAX_REVIEW_LENGTH, MIN_REVIEW_LENGTH
from bidhub.services.notifications import notify
from bidhub.services.policies import loss_review_days

# The rep's two answers are held to the same minimum as management's review at release.
MIN_ANSWER_LENGTH = MIN_REVIEW_LENGTH
MAX_ANSWER_LENGTH = MAX_REVIEW_LENGTH
MIN_COMMENT_LENGTH = 10
PER_PAGE = 50
OPEN_STATUSES = (LossReviewStatus.DUE, LossReviewStatus.SUBMITTED)
MANAGEMENT_ROLES = (Role.KA_MANAGER, Role.ADMIN)


class RegisterStatus:
    """The register's status filter: the three stored statuses and overdue, which is due past
    its date (derived from the clock, so it is never stored)."""

    DUE = LossReviewStatus.DUE.value
    OVERDUE = "overdue"
    SUBMITTED = LossReviewStatus.SUBMITTED.value
    CLOSED = LossReviewStatus.CLOSED.value
    ALL = (DUE, OVERDUE, SUBMITTED, CLOSED)


# --- questions about one review -------------------------------------------------------------

def is_overdue(review: AccountReview, now: datetime) -> bool:
    """Due and past its date; a review written late is no longer overdue, only late."""
    return (review.status == LossReviewStatus.DUE and review.due_at is not None
            and review.due_at < now)


def may_write(review: AccountReview, user: User) -> bool:
    """The rep who lost the account writes it, and may improve it until it is closed."""
    return user.id == review.rep_id and review.status in OPEN_STATUSES


def rep_has_left(review: AccountReview) -> bool:
    """The rep who owes the review is gone (left the company, or deactivated): nobody will
    write it, so management may close it with its comment alone."""
    return review.rep.status == RepStatus.LEFT or not review.rep.is_active


def is_closable(review: AccountReview) -> bool:
    return review.status == LossReviewStatus.SUBMITTED or (
        review.status == LossReviewStatus.DUE and rep_has_left(review))


def may_close(review: AccountReview, user: User) -> bool:
    return user.role in MANAGEMENT_ROLES and is_closable(review)


# --- creation ---------------------------------------------------------------------------------

def due_review(*, account_id: int, rep_id: int, reason: str, now: datetime,
               filing_seq: int | None = None, written_by_id: int | None = None,
               review_text: str = "") -> AccountReview:
    return AccountReview(account_id=account_id, rep_id=rep_id, reason=reason,
                         written_by_id=written_by_id, review_text=review_text,
                         created_at=now, filing_seq=filing_seq, status=LossReviewStatus.DUE,
                         due_at=now + timedelta(days=loss_review_days()))


def open_release_review(session: Session, *, account_id: int, rep_id: int, reason: str,
                        written_by_id: int, review_text: str, now: datetime) -> AccountReview:
    """The review due from the rep whose account is released into a round, carrying
    management's note on why it leaves them; its filing is linked if the round awards it."""
    review = due_review(account_id=account_id, rep_id=rep_id, reason=reason, now=now,
                        written_by_id=written_by_id, review_text=review_text)
    session.add(review)
    session.flush()
    notify(session, "loss_review_due", review, now)
    return review


def review_losses(session: Session, filings: Sequence[Filing], now: datetime) -> list[AccountReview]:
    """A review due from the rep who lost each account in `filings`; runs inside the change of
    owner's unit of work, so the reviews commit with the filings.

    An award of a released listing already has its review (made due at the release): the
    filing is linked to it instead. So is a filing whose rep still owes a review of that
    account not yet tied to any filing.
    """
    lost = [filing for filing in filings if filing.from_rep_id is not None]
    if not lost:
        return []
    listing_reviews = released_reviews(session, [filing.listing_id for filing in lost
                                                 if filing.listing_id is not None])
    unlinked = {(review.rep_id, review.account_id): review for review in session.scalars(
        select(AccountReview).where(
            AccountReview.filing_seq.is_(None),
            AccountReview.status.in_(OPEN_STATUSES),
            AccountReview.account_id.in_(sorted({filing.account_id for filing in lost}))))}
    created = []
    for filing in lost:
        existing = listing_reviews.get(filing.listing_id)
        if existing is None or existing.rep_id != filing.from_rep_id:
            existing = unlinked.pop((filing.from_rep_id, filing.account_id), None)
        if existing is not None and existing.filing_seq is None:
            existing.filing_seq = filing.seq
            continue
        review = due_review(account_id=filing.account_id, rep_id=filing.from_rep_id,
                            reason=filing.kind, now=now, filing_seq=filing.seq)
        session.add(review)
        created.append(review)
    if created:
        session.flush()
        for review in created:
            notify(session, "loss_review_due", review, now)
    return created


def released_reviews(session: Session, listing_ids: Iterable[int]) -> dict[int, AccountReview]:
    ids = sorted(set(listing_ids))
    if not ids:
        return {}
    return {listing_id: review for listing_id, review in session.execute(
        select(Listing.id, AccountReview).join(AccountReview, Listing.review_id == AccountReview.id)
        .where(Listing.id.in_(ids)))}


def note_management_review(session: Session, filing: Filing, *, written_by_id: int,
                           review_text: str) -> None:
    """Put management's note on why the account left (given with a direct transfer, or with
    a sponsored transfer's request) on the review its change of owner made due."""
    review = session.scalars(select(AccountReview).where(
        AccountReview.filing_seq == filing.seq)).first()
    if review is not None:
        review.written_by_id = written_by_id
        review.review_text = review_text.strip()


def withdraw_unlost_review(listing: Listing, now: datetime) -> None:
    """A released listing that ends without moving its account (cancelled, refused by the
    sponsor, not awarded) takes back the loss: the review its release made due is withdrawn,
    unless the rep already wrote it. The row stays, with management's note on the release."""
    review = listing.review
    if review is not None and review.status == LossReviewStatus.DUE and review.filing_seq is None:
        review.status = LossReviewStatus.WITHDRAWN
        review.closed_at = now
        notify(object_session(review), "loss_review_withdrawn", review, now)


def withdraw_release_review(session: Session, review_id: int | None, now: datetime) -> None:
    """A listing removed from a draft round takes back the account's loss: its review goes
    too, unless the rep already wrote it (then it stays, as written). The rep, told the
    review was due, is told it is not."""
    review = session.get(AccountReview, review_id) if review_id is not None else None
    if review is not None and review.status == LossReviewStatus.DUE and review.filing_seq is None:
        notify(session, "loss_review_withdrawn", review, now)
        session.delete(review)


# --- the rep writes, management closes --------------------------------------------------------

def load_review(session: Session, review_id: int) -> AccountReview:
    review = session.get(AccountReview, review_id)
    if review is None:
        raise NotFound(N_("No such loss review."))
    return review


def visible_review(session: Session, user: User, review_id: int) -> AccountReview:
    """The review, for its rep or management; another rep is told it does not exist."""
    review = load_review(session, review_id)
    if user.role not in MANAGEMENT_ROLES and user.id != review.rep_id:
        raise NotFound(N_("No such loss review."))
    return review


def check_version(review: AccountReview, expected_version: int | None) -> None:
    if expected_version is None or review.version != expected_version:
        raise Conflict(N_("Someone changed this review since you opened it; reload it and "
                          "try again."))


def check_answer(text: str, field: str) -> str:
    text = (text or "").strip()
    if writes_less_than(text, MIN_ANSWER_LENGTH):
        raise InvalidRequest(short_writing(N_(
            "Write at least %(count)d characters.", count=MIN_ANSWER_LENGTH), text,
            MIN_ANSWER_LENGTH), field=field)
    if len(text) > MAX_ANSWER_LENGTH:
        raise InvalidRequest(N_("Write at most %(count)d characters.", count=MAX_ANSWER_LENGTH),
                             field=field)
    return text


def submit_review(session: Session, rep: User, review_id: int, *, what_happened: str,
                  do_differently: str, expected_version: int | None, now: datetime) -> AccountReview:
    """The rep's review of their loss; written again (improved) until it is closed."""
    with unit_of_work(session):
        review = visible_review(session, rep, review_id)
        if rep.id != review.rep_id:
            raise PermissionDenied(N_("Only the rep who lost the account writes its review."))
        check_version(review, expected_version)
        if not may_write(review, rep):
            raise InvalidRequest(N_("This review is closed; it can no longer be changed."))
        what_happened = check_answer(what_happened, "what_happened")
        do_differently = check_answer(do_differently, "do_differently")
        before = {"status": review.status, "what_happened": review.what_happened,
                  "do_differently": review.do_differently}
        review.what_happened, review.do_differently = what_happened, do_differently
        if review.status == LossReviewStatus.DUE:
            review.status = LossReviewStatus.SUBMITTED
            review.submitted_at = now
        session.flush()
        record_audit(session, rep, "loss_review.submitted", f"loss_review:{review.id}", now,
                     before=before, after={"status": review.status,
                                           "what_happened": what_happened,
                                           "do_differently": do_differently})
        return review


def close_review(session: Session, manager: User, review_id: int, *, comment: str,
                 expected_version: int | None, now: datetime) -> AccountReview:
    """Management's comment on the rep's review, which closes it."""
    with unit_of_work(session):
        if manager.role not in MANAGEMENT_ROLES:
            raise PermissionDenied(N_("Only KA management closes a loss review."))
        review = load_review(session, review_id)
        check_version(review, expected_version)
        if not is_closable(review):
            raise InvalidRequest(N_("Only a review the rep has submitted can be closed, or one "
                                    "owed by a rep who has left."))
        before = {"status": review.status}
        comment = (comment or "").strip()
        if writes_less_than(comment, MIN_COMMENT_LENGTH):
            raise InvalidRequest(short_writing(N_(
                "Write a comment of at least %(count)d characters.", count=MIN_COMMENT_LENGTH),
                comment, MIN_COMMENT_LENGTH), field="comment")
        if len(comment) > MAX_ANSWER_LENGTH:
            raise InvalidRequest(N_("Write at most %(count)d characters.", count=MAX_ANSWER_LENGTH),
                                 field="comment")
        review.manager_comment = comment
        review.status = LossReviewStatus.CLOSED
        review.closed_by_id = manager.id
        review.closed_at = now
        session.flush()
        record_audit(session, manager, "loss_review.closed", f"loss_review:{review.id}", now,
                     before=before, after={"status": review.status, "manager_comment": comment})
        return review


# --- lists ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReviewFilter:
    status: str = ""  # one of RegisterStatus.ALL, or "" for every review
    rep_id: int | None = None
    branch_id: int | None = None


@dataclass(frozen=True)
class RegisterPage:
    reviews: list[AccountReview]
    counts: dict[str, int]  # by RegisterStatus
    total: int  # matching the filter
    page: int
    pages: int


def register_query(criteria: ReviewFilter) -> Select:
    query = select(AccountReview).join(User, AccountReview.rep_id == User.id)
    if criteria.rep_id:
        query = query.where(AccountReview.rep_id == criteria.rep_id)
    if criteria.branch_id:
        query = query.where(User.branch_id == criteria.branch_id)
    return query


def with_status(query: Select, status: str, now: datetime) -> Select:
    if status == RegisterStatus.OVERDUE:
        return query.where(AccountReview.status == LossReviewStatus.DUE,
                           AccountReview.due_at < now)
    if status in (RegisterStatus.DUE, RegisterStatus.SUBMITTED, RegisterStatus.CLOSED):
        return query.where(AccountReview.status == status)
    return query


def review_register(session: Session, criteria: ReviewFilter, now: datetime, *,
                    page: int = 1, per_page: int = PER_PAGE) -> RegisterPage:
    """Management's register: counts by status for the rep/branch filter, and one page of the
    reviews with the status filter, the oldest due first, then the newest."""
    base = register_query(criteria)
    counts = {status: session.scalar(select(func.count()).select_from(
        with_status(base, status, now).subquery())) or 0 for status in RegisterStatus.ALL}
    query = with_status(base, criteria.status, now)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, ceil(total / per_page))
    page = min(max(1, page), pages)
    reviews = list(session.scalars(
        query.order_by(AccountReview.status == LossReviewStatus.CLOSED,
                       AccountReview.status == LossReviewStatus.SUBMITTED,
                       AccountReview.due_at.asc(), AccountReview.created_at.desc(),
                       AccountReview.id.desc())
        .options(selectinload(AccountReview.account), selectinload(AccountReview.rep))
        .limit(per_page).offset((page - 1) * per_page)))
    return RegisterPage(reviews, counts, total, page, pages)


def reviews_of_rep(session: Session, rep_id: int) -> list[AccountReview]:
    """A rep's reviews: the ones due first (soonest date first), then the rest."""
    return list(session.scalars(
        select(AccountReview).where(AccountReview.rep_id == rep_id)
        .order_by(AccountReview.status != LossReviewStatus.DUE, AccountReview.due_at.asc(),
                  AccountReview.created_at.desc(), AccountReview.id.desc())
        .options(selectinload(AccountReview.account))))


# Built once, since the navigation asks on every rep's page.
def due_review_count(rep_id) -> Select:
    """The count of a rep's due loss reviews; `rep_id` a bound parameter or a column (then
    correlated to the statement it is a column of)."""
    return select(func.count()).select_from(AccountReview).where(
        AccountReview.rep_id == rep_id, AccountReview.status == LossReviewStatus.DUE)


DUE_REVIEW_COUNT = due_review_count(bindparam("rep_id"))


def due_count(session: Session, rep: User) -> int:
    return session.scalar(DUE_REVIEW_COUNT, {"rep_id": rep.id}) or 0
