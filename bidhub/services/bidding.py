"""Reps' bids: submitting, editing and withdrawing, only while the round is open."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, Text, bindparam, cast, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, joinedload

from bidhub.db import unit_of_work
from bidhub.domain import metrics
from bidhub.domain.errors import BidRejected, NotEligible, NotFound, PermissionDenied
from bidhub.domain.facts import (
    INCIDENT_STATUSES_AGAINST_REP,
    BidFacts,
    RepHistory,
)
from bidhub.domain.rules import RuleSet
from bidhub.domain.scoring import check_eligibility
from bidhub.domain.text import N_
from bidhub.models import (
    Account,
    AccountabilityIncident,
    Bid,
    BidStatus,
    Branch,
    Filing,
    Listing,
    ListingStatus,
    RepStatus,
    Role,
    TrackRecordSnapshot,
    User,
)
from bidhub.services.bid_preferences import close_gap
from bidhub.services.limits import MAX_PLAN_LENGTH, MAX_REVENUE_YUAN, MIN_PLAN_LENGTH
from bidhub.services.rule_sets import parsed
from bidhub.services.track_records import account_facts, history_of_text, tenure_in_months


def check_bid_content(account_plan: str, committed_revenue_yuan: int, visit_plan: str) -> None:
    if len(account_plan.strip()) < MIN_PLAN_LENGTH:
        raise BidRejected(N_("Describe your plan for the account (at least %(count)d "
                             "characters).", count=MIN_PLAN_LENGTH), field="account_plan")
    if len(visit_plan.strip()) < MIN_PLAN_LENGTH:
        raise BidRejected(N_("Describe your visits in the first 90 days (at least %(count)d "
                             "characters).", count=MIN_PLAN_LENGTH), field="visit_plan")
    for field, text in (("account_plan", account_plan), ("visit_plan", visit_plan)):
        if len(text) > MAX_PLAN_LENGTH:
            raise BidRejected(N_("Keep it under %(count)s characters.",
                                 count=f"{MAX_PLAN_LENGTH:,}"), field=field)
    if not 0 <= committed_revenue_yuan <= MAX_REVENUE_YUAN:
        raise BidRejected(N_("Enter a revenue between 0 and %(maximum)s yuan.",
                             maximum=f"{MAX_REVENUE_YUAN:,}"), field="committed_revenue_yuan")


def open_listing_for(session: Session, listing_id: int, now: datetime) -> Listing:
    # One query for the listing, its round (with the round's rules) and its account: each
    # is needed by the checks below, and lazy loads would cost a statement apiece.
    listing = session.scalars(select(Listing).where(Listing.id == listing_id)
                              .options(joinedload(Listing.round))).first()
    check_listing_open(listing, now)
    return listing


def check_listing_open(listing: Listing | None, now: datetime) -> None:
    if listing is None or not listing.round.is_visible_to_reps_at(now):
        raise NotFound(N_("No such listing."))
    if not listing.round.is_open_at(now):
        raise BidRejected(N_("Bidding for this round closed at its deadline; bids are no longer "
                             "accepted."))
    if listing.status != ListingStatus.LISTED:
        raise BidRejected(N_("This account is not open for bids."))


def submit_bid(
    session: Session, rep: User, listing_id: int, *, account_plan: str,
    committed_revenue_yuan: int, visit_plan: str, submission_key: str | None, now: datetime,
) -> Bid:
    """Place a bid; a resubmitted form (same submission key) returns the bid it made before.

    Every check reads inside the write transaction, so it holds at the moment of the bid; the
    reads are few and plain (five statements and the insert), as that transaction is what
    concurrent bids queue for.
    """
    # The signed-in user stays as loaded: the rep's row is read again below, in the write
    # transaction, by the statement that reads the listing.
    with unit_of_work(session, keep=(rep,)):
        found = session.execute(_LISTING_WITH_STANDING,
                                {"listing_id": listing_id, "rep_id": rep.id, "now": now}).first()
        role = found.rep_role if found is not None else session.scalar(
            select(User.role).where(User.id == rep.id))
        if role != Role.REP:
            raise PermissionDenied(N_("Only reps bid."))
        # The rep's earlier bid for this listing and the bid this form made before, if it was
        # sent already, in one read (submission keys are unique, so the rep's own is the one).
        mine = session.execute(_MINE, {"rep_id": rep.id, "listing_id": listing_id,
                                       "submission_key": submission_key or None}).all()
        if submission_key:
            for earlier in mine:
                if earlier.submission_key == submission_key:
                    return session.get(Bid, earlier.id)
        check_listing_open(None if found is None else found[0], now)
        listing, standing = found[0], found
        check_bid_content(account_plan, committed_revenue_yuan, visit_plan)
        earlier = next((row for row in mine if row.listing_id == listing.id), None)
        if earlier is not None and earlier.status == BidStatus.ACTIVE:
            raise BidRejected(N_("You have already bid for this account; edit your bid instead."))
        if listing.released_from_id == rep.id:
            raise BidRejected(N_("This account was released from you; you cannot bid for it."))
        history = rep_history_at_bid(session, rep.id, standing, now)
        track_record = metrics.track_record(history, account_facts(listing.account), now)
        if earlier is None:
            bid = Bid(listing=listing, rep_id=rep.id)
            session.add(bid)
        else:  # withdrawn before: the same row comes back to life
            bid = session.get(Bid, earlier.id)
        bid.account_plan, bid.visit_plan = account_plan.strip(), visit_plan.strip()
        bid.committed_revenue_yuan = committed_revenue_yuan
        bid.status, bid.withdrawn_at = BidStatus.ACTIVE, None
        bid.submitted_at = bid.updated_at = now
        bid.submission_key = submission_key or None
        bid.track_record = track_record
        try:
            session.flush()
        except IntegrityError as error:
            raise BidRejected(N_("You have already bid for this account; edit your bid instead.")) from error
        check_eligible(parsed(listing.round.rule_set), bid_facts_at_bid(bid, listing, standing, now))
        return bid


# The write transaction's reads, built once: a statement built per bid costs more CPU than the
# database spends answering it, and concurrent bids queue for this transaction.
# `_LISTING_WITH_STANDING`: the listing (as `open_listing_for` loads it), what eligibility reads
# about the rep (`bid_facts` for one bid: holdings, open incidents, when they last gave the
# listing's account up by a release and by a transfer) and the rep's own row, in one read.
_MINE = select(Bid.id, Bid.listing_id, Bid.submission_key, Bid.status).where(
    Bid.rep_id == bindparam("rep_id"),
    or_(Bid.listing_id == bindparam("listing_id"),
        Bid.submission_key == bindparam("submission_key")))
_RELEASED = aliased(Listing)
_REP_BRANCH = aliased(Branch)
_LISTING_WITH_STANDING = select(
    Listing,
    select(func.count()).select_from(Account).where(Account.owner_id == bindparam("rep_id"))
    .scalar_subquery().label("held"),
    select(func.count()).select_from(AccountabilityIncident)
    .where(AccountabilityIncident.rep_id == bindparam("rep_id"),
           or_(*(AccountabilityIncident.status == status
                 for status in sorted(INCIDENT_STATUSES_AGAINST_REP))),
           AccountabilityIncident.seen_at <= bindparam("now"))
    .scalar_subquery().label("open_incidents"),
    select(func.max(_RELEASED.created_at))
    .where(_RELEASED.released_from_id == bindparam("rep_id"),
           _RELEASED.account_id == Listing.account_id)
    .scalar_subquery().label("released_at"),
    select(func.max(Filing.decided_at))
    .where(Filing.from_rep_id == bindparam("rep_id"), Filing.account_id == Listing.account_id)
    .scalar_subquery().label("transferred_at"),
    User.role.label("rep_role"), User.status.label("rep_status"), User.hired_on,
    User.created_at, _REP_BRANCH.code.label("rep_branch"),
).select_from(Listing).join(User, User.id == bindparam("rep_id")).outerjoin(
    _REP_BRANCH, _REP_BRANCH.id == User.branch_id,
).where(Listing.id == bindparam("listing_id")).options(joinedload(Listing.round))
# As text: a text seen before is not decoded again (see `track_records.history_of_text`).
_SNAPSHOT_TEXT = select(cast(TrackRecordSnapshot.history, Text)).where(
    TrackRecordSnapshot.rep_id == bindparam("rep_id"))


def rep_history_at_bid(session: Session, rep_id: int, standing: Row,
                       now: datetime) -> RepHistory:
    """The rep's history from their stored snapshot, as `stored_histories` gives it (with the
    rep's row and holdings as `_LISTING_WITH_STANDING` read them); a dropped or missing
    snapshot is rebuilt and stored first."""
    return history_of_text(session, session.scalar(_SNAPSHOT_TEXT, {"rep_id": rep_id}),
                           rep_id=rep_id, hired_on=standing.hired_on or standing.created_at.date(),
                           accounts_held=standing.held, now=now)


def bid_facts_at_bid(bid: Bid, listing: Listing, standing: Row, now: datetime) -> BidFacts:
    """The bid as `bid_facts` gives it, from what `_LISTING_WITH_STANDING` read."""
    given_up = [at for at in (standing.released_at, standing.transferred_at) if at is not None]
    released_at = max(given_up, default=None)
    return BidFacts(
        bid_id=bid.id, rep_id=bid.rep_id, listing_id=listing.id, submitted_at=bid.submitted_at,
        metrics=dict(bid.track_record), accounts_held=standing.held,
        tenure_months=round(tenure_in_months(standing, now), 4),  # its hired_on, created_at
        open_incidents=standing.open_incidents,
        rep_branch=standing.rep_branch or "",
        listing_branch=listing.account.branch.code,
        is_on_leave=standing.rep_status != RepStatus.ACTIVE,
        months_since_rep_released_account=(
            None if released_at is None else round(metrics.months_between(released_at, now), 4)),
        listing_value_yuan=listing.account.annual_value_yuan,
        preference_rank=bid.preference_rank,
    )


def check_eligible(rules: RuleSet, facts: BidFacts) -> None:
    failed = [check.reason for check in check_eligibility(rules, facts) if not check.passed]
    if failed:
        raise NotEligible(failed)


def own_bid(session: Session, rep: User, bid_id: int) -> Bid:
    bid = session.get(Bid, bid_id)
    if bid is None or bid.rep_id != rep.id:
        raise NotFound(N_("No such bid."))
    return bid


def update_bid(
    session: Session, rep: User, bid_id: int, *, account_plan: str, committed_revenue_yuan: int,
    visit_plan: str, now: datetime,
) -> Bid:
    with unit_of_work(session):
        bid = own_bid(session, rep, bid_id)
        if bid.status != BidStatus.ACTIVE:
            raise BidRejected(N_("This bid was withdrawn; submit a new one instead."))
        open_listing_for(session, bid.listing_id, now)
        check_bid_content(account_plan, committed_revenue_yuan, visit_plan)
        bid.account_plan, bid.visit_plan = account_plan.strip(), visit_plan.strip()
        bid.committed_revenue_yuan = committed_revenue_yuan
        bid.updated_at = now
        return bid


def withdraw_bid(session: Session, rep: User, bid_id: int, now: datetime) -> Bid:
    with unit_of_work(session):
        bid = own_bid(session, rep, bid_id)
        open_listing_for(session, bid.listing_id, now)
        if bid.status == BidStatus.WITHDRAWN:
            return bid
        close_gap(session, bid)  # the rep's later choices move up, in this transaction
        bid.status, bid.withdrawn_at, bid.updated_at = BidStatus.WITHDRAWN, now, now
        return bid
