"""One named answer to each question the business asks of a round, a bid or an account."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from bidhub.domain.scoring import ScoreBreakdown, factor_gaps
from bidhub.models import (
    Account,
    Bid,
    BidStatus,
    Decision,
    Listing,
    ListingStatus,
    Role,
    Round,
    RoundStatus,
    User,
)

# Until a round is scored its bids are sealed: nobody but the bidder sees one, management
# included (managers see only a count). Scoring happens at the deadline, so past the deadline
# but not yet scored is still sealed.
SEALED_ROUND_STATUSES = (RoundStatus.DRAFT, RoundStatus.PUBLISHED)


class BidOutcome(StrEnum):
    """What became of a bid, read from the decision record (never from today's owner)."""

    WITHDRAWN = "withdrawn"
    NOT_DECIDED = "not_decided"  # results not published yet, so nothing may be told
    WON = "won"
    LOST = "lost"


def bids_are_sealed(round_: Round) -> bool:
    return round_.status in SEALED_ROUND_STATUSES


def results_are_published(round_: Round) -> bool:
    """Only once results are published may a rep learn a score, a rank or an outcome."""
    return round_.status == RoundStatus.RESULTS_PUBLISHED


def awaits_scoring(round_: Round, now: datetime) -> bool:
    """Past its deadline but not scored yet (the scheduler or a manager's button scores it)."""
    return round_.status == RoundStatus.PUBLISHED and round_.closes_at <= now


def accepts_bids(listing: Listing, now: datetime) -> bool:
    """A listing takes bids while its round is open (server clock) and it is still listed."""
    return listing.round.is_open_at(now) and listing.status == ListingStatus.LISTED


def outcome_of(bid: Bid, decision: Decision | None) -> BidOutcome:
    """The bid's outcome given its listing's decision (None when there is none)."""
    if bid.status == BidStatus.WITHDRAWN:
        return BidOutcome.WITHDRAWN
    if decision is None or not results_are_published(bid.listing.round):
        return BidOutcome.NOT_DECIDED
    return BidOutcome.WON if decision.bid_id == bid.id else BidOutcome.LOST


def decisions_for(session: Session, bids: Iterable[Bid]) -> dict[int, Decision]:
    """The decision of each bid's listing, by listing id, in one query."""
    listing_ids = {bid.listing_id for bid in bids}
    if not listing_ids:
        return {}
    return {decision.listing_id: decision for decision in session.scalars(
        select(Decision).where(Decision.listing_id.in_(listing_ids)))}


def bid_outcomes(session: Session, bids: Iterable[Bid]) -> dict[int, BidOutcome]:
    """outcome_of for many bids, by bid id, in one query."""
    bids = list(bids)
    decisions = decisions_for(session, bids)
    return {bid.id: outcome_of(bid, decisions.get(bid.listing_id)) for bid in bids}


def bid_outcome(session: Session, bid: Bid) -> BidOutcome:
    return bid_outcomes(session, [bid])[bid.id]


def rep_may_see_account(session: Session, user: User, account: Account, now: datetime) -> bool:
    """Management sees every account; a rep sees the accounts they hold and those listed in a
    round that reps can see (current or past), nothing else."""
    if may_see_owner(user, account):
        return True
    return bool(session.scalar(select(exists().where(
        Listing.account_id == account.id, Listing.round_id == Round.id,
        Round.is_visible_to_reps_at(now)))))


def may_see_owner(user: User, account: Account) -> bool:
    """Who holds an account is for management and the holder, not for reps bidding on it."""
    return user.role != Role.REP or account.owner_id == user.id


def may_see_profile_of(user: User, rep_id: int) -> bool:
    """A rep sees their own track record; management sees every rep's."""
    return user.role != Role.REP or user.id == rep_id


def sees_sealed_bids_of(user: User, rep_id: int) -> bool:
    """Bids in rounds not yet scored are shown to their bidder only, never to management."""
    return user.id == rep_id


@dataclass(frozen=True)
class RepResult:
    """What a rep may know of a published result: their own breakdown and rank, how many bid,
    the winner's total and where they fell short. Never another bidder's name or content."""

    outcome: BidOutcome
    breakdown: ScoreBreakdown
    rank: int | None
    bidders: int
    winner_total: float | None
    gaps: list
    decision_kind: str | None
    no_award: bool  # decided that nobody wins; the account is released again later

    @property
    def won(self) -> bool:
        return self.outcome == BidOutcome.WON


def rep_result(session: Session, bid: Bid) -> RepResult | None:
    """The bidder's view of the result; None until results are published or if never scored."""
    if not results_are_published(bid.listing.round) or bid.score is None:
        return None
    decision = decisions_for(session, [bid]).get(bid.listing_id)
    outcome = outcome_of(bid, decision)
    mine = ScoreBreakdown.from_dict(bid.score.breakdown)
    winner_bid = decision.bid if decision is not None else None
    gaps, winner_total = [], None
    if winner_bid is not None and winner_bid.score is not None:
        winner_total = winner_bid.score.total
        if outcome != BidOutcome.WON:
            gaps = factor_gaps(mine, ScoreBreakdown.from_dict(winner_bid.score.breakdown))
    bidders = session.scalars(select(Bid.id).where(Bid.listing_id == bid.listing_id,
                                                   Bid.status == BidStatus.ACTIVE)).all()
    return RepResult(outcome=outcome, breakdown=mine, rank=bid.score.rank, bidders=len(bidders),
                     winner_total=winner_total, gaps=gaps,
                     decision_kind=decision.kind if decision is not None else None,
                     no_award=decision is not None and decision.bid_id is None)
