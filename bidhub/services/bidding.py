"""Reps' bids: submitting, editing and withdrawing, only while the round is open."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from bidhub.db import unit_of_work
from bidhub.domain.errors import BidRejected, NotEligible, NotFound, PermissionDenied
from bidhub.domain.scoring import check_eligibility
from bidhub.domain.text import N_
from bidhub.models import Bid, BidStatus, Listing, ListingStatus, Role, User
from bidhub.services.bid_preferences import close_gap
from bidhub.services.limits import MAX_PLAN_LENGTH, MAX_REVENUE_YUAN, MIN_PLAN_LENGTH
from bidhub.services.rule_sets import parsed
from bidhub.services.track_records import bid_facts, snapshot_track_record


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
    if listing is None or not listing.round.is_visible_to_reps_at(now):
        raise NotFound(N_("No such listing."))
    if not listing.round.is_open_at(now):
        raise BidRejected(N_("Bidding for this round closed at its deadline; bids are no longer "
                             "accepted."))
    if listing.status != ListingStatus.LISTED:
        raise BidRejected(N_("This account is not open for bids."))
    return listing


def check_rep_eligible(session: Session, bid: Bid, now: datetime) -> None:
    rules = parsed(bid.listing.round.rule_set)
    [facts] = bid_facts(session, [bid], now)
    failed = [check.reason for check in check_eligibility(rules, facts) if not check.passed]
    if failed:
        raise NotEligible(failed)


def submit_bid(
    session: Session, rep: User, listing_id: int, *, account_plan: str,
    committed_revenue_yuan: int, visit_plan: str, submission_key: str | None, now: datetime,
) -> Bid:
    """Place a bid; a resubmitted form (same submission key) returns the bid it made before."""
    with unit_of_work(session):
        rep = session.get(User, rep.id)
        if rep is None or rep.role != Role.REP:
            raise PermissionDenied(N_("Only reps bid."))
        # The rep's earlier bid for this listing and the bid this form made before, if it was
        # sent already, in one read (submission keys are unique, so the rep's own is the one).
        wanted = Bid.listing_id == listing_id
        if submission_key:
            wanted = or_(wanted, Bid.submission_key == submission_key)
        mine = session.scalars(select(Bid).where(Bid.rep_id == rep.id, wanted)).all()
        if submission_key:
            for earlier in mine:
                if earlier.submission_key == submission_key:
                    return earlier
        listing = open_listing_for(session, listing_id, now)
        check_bid_content(account_plan, committed_revenue_yuan, visit_plan)
        bid = next((bid for bid in mine if bid.listing_id == listing.id), None)
        if bid is not None and bid.status == BidStatus.ACTIVE:
            raise BidRejected(N_("You have already bid for this account; edit your bid instead."))
        if listing.released_from_id == rep.id:
            raise BidRejected(N_("This account was released from you; you cannot bid for it."))
        track_record = snapshot_track_record(session, rep, listing.account, now)
        if bid is None:
            bid = Bid(listing=listing, rep=rep, track_record=track_record)
            session.add(bid)
        bid.account_plan, bid.visit_plan = account_plan.strip(), visit_plan.strip()
        bid.committed_revenue_yuan = committed_revenue_yuan
        bid.status, bid.withdrawn_at = BidStatus.ACTIVE, None
        bid.submitted_at = bid.updated_at = now
        bid.submission_key = submission_key or None
        bid.track_record = track_record
        try:
            session.flush()
            check_rep_eligible(session, bid, now)
        except IntegrityError as error:
            raise BidRejected(N_("You have already bid for this account; edit your bid instead.")) from error
        return bid


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
