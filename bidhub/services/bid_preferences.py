"""Ranked preferences: a rep ranks their own active bids of an open round (1 = first choice).

The round's rules ([preferences], bidhub/domain/preferences.py) decide whether and how the
ranking counts when the round is scored. A ranking is part of the sealed bid: it is read only
by the bidder until the round is scored. (services/preferences.py is the user's language.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bidhub.db import unit_of_work
from bidhub.domain.errors import BidRejected, InvalidRequest, NotFound, PermissionDenied
from bidhub.domain.facts import INACTIVE, LEFT
from bidhub.domain.preferences import Preferences
from bidhub.domain.text import N_, Text
from bidhub.models import (
    Bid,
    BidStatus,
    Listing,
    ListingStatus,
    Role,
    Round,
    RuleSetVersion,
    User,
)
from bidhub.services.ownership import hold_round_open, lock_reps, unavailable_receiver
from bidhub.services.rule_sets import parsed

# A ranking needs something to choose between.
MIN_RANKED_BIDS = 2


def rank_field(bid_id: int) -> str:
    """The form field of a bid's rank; errors name it."""
    return f"rank-{bid_id}"


def is_rankable(bid: Bid, now: datetime) -> bool:
    """An active bid on a listing still open for bids, in a round open at `now`."""
    return (bid.status == BidStatus.ACTIVE and bid.listing.status == ListingStatus.LISTED
            and bid.listing.round.is_open_at(now))


def rankable_rounds(bids: Iterable[Bid], now: datetime) -> list[tuple[Round, list[Bid]]]:
    """The open rounds in which the rep may rank their bids (two or more rankable bids), each
    with those bids: ranked first in their order, then unranked by listing."""
    by_round: dict[int, list[Bid]] = defaultdict(list)
    rounds: dict[int, Round] = {}
    for bid in bids:
        if is_rankable(bid, now):
            rounds[bid.listing.round_id] = bid.listing.round
            by_round[bid.listing.round_id].append(bid)
    return [(rounds[round_id], sorted(round_bids, key=_shown_order))
            for round_id, round_bids in sorted(by_round.items(),
                                               key=lambda item: rounds[item[0]].closes_at)
            if len(round_bids) >= MIN_RANKED_BIDS]


def ranking_forms(session: Session, bids: Iterable[Bid], now: datetime
                  ) -> list[tuple[Round, list[Bid], Preferences]]:
    """`rankable_rounds` with each round's [preferences], its rule versions read in one query."""
    rounds = rankable_rounds(bids, now)
    ids = sorted({round_.rule_set_id for round_, _bids in rounds})
    versions = {version.id: version for version in session.scalars(
        select(RuleSetVersion).where(RuleSetVersion.id.in_(ids)))} if ids else {}
    return [(round_, round_bids, parsed(versions[round_.rule_set_id]).preferences)
            for round_, round_bids in rounds]


def _shown_order(bid: Bid) -> tuple:
    return (bid.preference_rank is None, bid.preference_rank or 0, bid.listing_id)


def rank_preferences(session: Session, rep: User, round_id: int, ranks: Mapping[int, int],
                     now: datetime) -> list[Bid]:
    """Store the rep's ranking of their bids in a round: bid id -> rank, 1 the first choice.

    The ranks given must be 1..k without gaps or repeats (k: how many are given); the rep's
    other bids of the round become unranked. Only the rep's own active bids, only while the
    round is open (the deadline rules of bidding), all or nothing. Returns the round's bids
    in their new order.
    """
    with unit_of_work(session):
        rep = session.get(User, rep.id)
        if rep is None or rep.role != Role.REP:
            raise PermissionDenied(N_("Only reps bid."))
        hold_round_open(session, round_id)
        round_ = session.get(Round, round_id)
        if round_ is None or not round_.is_visible_to_reps_at(now):
            raise NotFound(N_("No such round."))
        if not round_.is_open_at(now):
            raise BidRejected(N_("Bidding for this round closed at its deadline; your "
                                 "preferences can no longer be changed."))
        lock_reps(session, [rep.id])  # against a withdrawal renumbering meanwhile
        # Read afresh under the lock: a departure saved meanwhile waits or is seen.
        refusal = ranking_refusal(*session.execute(
            select(User.role, User.is_active, User.status).where(User.id == rep.id)).one())
        if refusal is not None:
            raise BidRejected(refusal)
        bids = {bid.id: bid for bid in session.scalars(
            select(Bid).join(Listing).where(Bid.rep_id == rep.id, Listing.round_id == round_.id,
                                            Bid.status == BidStatus.ACTIVE,
                                            Listing.status == ListingStatus.LISTED))}
        unknown = sorted(bid_id for bid_id in ranks if bid_id not in bids)
        if unknown:
            raise NotFound(N_("No such bid."))
        if len(bids) < MIN_RANKED_BIDS:
            raise InvalidRequest(N_("Ranking needs at least %(count)d active bids in the "
                                    "round.", count=MIN_RANKED_BIDS))
        check_ranks(ranks)
        for bid_id, bid in bids.items():
            bid.preference_rank = ranks.get(bid_id)
        return sorted(bids.values(), key=_shown_order)


def ranking_refusal(role: str, is_active: bool, status: str) -> Text | None:
    """Why a rep may no longer rank their bids, or None when they may: as for editing a bid
    (bidding.edit_refusal), one who left, was deactivated or is no rep any more. A ranking
    is part of the bid. Withdrawing a bid stays open to them."""
    why = unavailable_receiver(role=role, is_active=is_active, status=status)
    if why is None:
        return None
    if why == LEFT:
        return N_("You have left the company and cannot receive accounts, so your bids can no "
                  "longer be ranked; you may still withdraw them.")
    if why == INACTIVE:
        return N_("Your user was deactivated and you cannot receive accounts, so your bids can "
                  "no longer be ranked; you may still withdraw them.")
    return N_("You are no longer a rep and cannot receive accounts, so your bids can no longer "
              "be ranked; you may still withdraw them.")


def check_ranks(ranks: Mapping[int, int]) -> None:
    """Ranks 1..k, each once (k: how many bids are ranked); the first problem names its field."""
    count = len(ranks)
    seen: dict[int, int] = {}
    for bid_id, rank in sorted(ranks.items(), key=lambda item: item[0]):
        if not 1 <= rank <= count:
            missing = min(set(range(1, count + 1)) - set(ranks.values()))
            raise InvalidRequest(N_("Number your choices 1 to %(count)d without gaps: "
                                    "%(missing)d is missing.", count=count, missing=missing),
                                 field=rank_field(bid_id))
        if rank in seen:
            raise InvalidRequest(N_("Two bids are ranked %(rank)d; give each bid its own "
                                    "number.", rank=rank), field=rank_field(bid_id))
        seen[rank] = bid_id


def close_gap(session: Session, bid: Bid) -> None:
    """Unrank a bid leaving its round (withdrawn) and move the rep's later choices up one,
    in the caller's transaction."""
    rank, bid.preference_rank = bid.preference_rank, None
    if rank is None:
        return
    lock_reps(session, [bid.rep_id])
    later = session.scalars(
        select(Bid).join(Listing).where(Bid.rep_id == bid.rep_id, Bid.id != bid.id,
                                        Listing.round_id == bid.listing.round_id,
                                        Bid.preference_rank > rank))
    for other in sorted(later, key=lambda other: other.preference_rank):
        other.preference_rank -= 1
