"""Replaying a finished round: re-scoring stored inputs under some rules and comparing results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bidhub.domain.allocation import Allocation, allocate
from bidhub.domain.facts import BidFacts
from bidhub.domain.rules import RuleSet
from bidhub.domain.scoring import ScoreBreakdown, score_round

TOLERANCE = 1e-6


@dataclass(frozen=True)
class Replay:
    scores: dict[int, ScoreBreakdown]
    allocation: Allocation


@dataclass(frozen=True)
class ScoreChange:
    bid_id: int
    listing_id: int
    rep_id: int
    before: float
    after: float
    was_eligible: bool
    is_eligible: bool

    @property
    def delta(self) -> float:
        return round(self.after - self.before, 6)


@dataclass(frozen=True)
class AwardChange:
    listing_id: int
    before_bid_id: int | None
    after_bid_id: int | None


@dataclass(frozen=True)
class Comparison:
    score_changes: tuple[ScoreChange, ...]  # every bid, changed or not
    award_changes: tuple[AwardChange, ...]  # only listings whose award differs

    @property
    def changed_scores(self) -> tuple[ScoreChange, ...]:
        return tuple(change for change in self.score_changes
                     if abs(change.delta) > TOLERANCE or change.was_eligible != change.is_eligible)


def replay(rules: RuleSet, bids: Sequence[BidFacts], lottery_seed: int) -> Replay:
    scores = score_round(rules, bids)
    return Replay(scores, allocate(rules, bids, scores, lottery_seed))


def compare(bids: Sequence[BidFacts], before_scores: Mapping[int, ScoreBreakdown],
            before_awards: Mapping[int, int | None], after: Replay) -> Comparison:
    """What `after` changes against the recorded scores and awards of the same bids."""
    score_changes = tuple(
        ScoreChange(bid.bid_id, bid.listing_id, bid.rep_id, before_scores[bid.bid_id].total,
                    after.scores[bid.bid_id].total, before_scores[bid.bid_id].is_eligible,
                    after.scores[bid.bid_id].is_eligible)
        for bid in sorted(bids, key=lambda bid: (bid.listing_id, bid.bid_id)))
    listings = sorted(set(before_awards) | set(after.allocation.awards))
    award_changes = tuple(
        AwardChange(listing_id, before_awards.get(listing_id),
                    after.allocation.awards.get(listing_id))
        for listing_id in listings
        if before_awards.get(listing_id) != after.allocation.awards.get(listing_id))
    return Comparison(score_changes, award_changes)
