"""Ranked preferences: a rep's ranking of their own bids in a round, and how the rules count it.

A rule file's `[preferences]` section chooses the mode (rules/README.md, "Ranked preferences"):

- `ignored` (the default): rankings change nothing; results are those of the same bids unranked.
- `tie_break`: on one listing, among bids with equal totals, the bid its rep ranked higher
  (the smaller choice) comes first, before the rules' tie-break chain. Across listings, a rep
  who could win more listings than capacity or cap allow is given the ones they ranked first
  (see PREFERRING_AWARDS).
- `bonus`: everything `tie_break` does, and a bonus term in the total, shown as its own line
  of the breakdown (PREFERENCE_BONUS): the first choice gets the whole `bonus`, the last choice
  none, choices in between equal steps (`bonus_points`, exact in millionths of a point).

A bid's choice is counted among the rep's bids of the round as scored (`choices`): ranked bids
in the order of their ranks (1, 2, ... whatever gaps a cancelled listing left), then every
unranked bid as the last choice. A rep's only bid is their first (and last) choice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from bidhub.domain.allocation_methods import Contender, optimal_awards
from bidhub.domain.facts import BidFacts

IGNORED, TIE_BREAK, BONUS = "ignored", "tie_break", "bonus"
PREFERENCE_MODES = (IGNORED, TIE_BREAK, BONUS)
# The breakdown line of the bonus term: a name no metric has, shown as "Preference bonus".
PREFERENCE_BONUS = "preference_bonus"


@dataclass(frozen=True)
class Preferences:
    """The rules' [preferences]: the mode, and the bonus of a first choice (bonus mode)."""

    mode: str = IGNORED
    bonus: float = 0.0

    @property
    def count(self) -> bool:
        """Whether the reps' rankings change anything at all."""
        return self.mode != IGNORED

    @property
    def bonus_micro(self) -> int:
        """The first choice's bonus in millionths of a point (totals carry 6 decimals)."""
        return round(self.bonus * 10**6) if self.mode == BONUS else 0


@dataclass(frozen=True)
class Choice:
    """Where a bid stands among its rep's bids of the round: `rank` of `of` (1 = first)."""

    rank: int
    of: int


def choices(bids: Iterable[BidFacts]) -> dict[int, Choice]:
    """Bid id -> its choice among its rep's bids in `bids`; unranked bids count as last."""
    by_rep: dict[int, list[BidFacts]] = defaultdict(list)
    for bid in bids:
        by_rep[bid.rep_id].append(bid)
    result = {}
    for rep_bids in by_rep.values():
        count = len(rep_bids)
        ranked = sorted((bid for bid in rep_bids if bid.preference_rank is not None),
                        key=lambda bid: (bid.preference_rank, bid.bid_id))
        for position, bid in enumerate(ranked, start=1):
            result[bid.bid_id] = Choice(position, count)
        for bid in rep_bids:
            if bid.preference_rank is None:
                result[bid.bid_id] = Choice(count, count)
    return result


def bonus_points(bonus_micro: int, choice: Choice) -> int:
    """The bonus of a choice in millionths: all of it for the first choice, none for the last
    of two or more, equal steps between (rounded down); a rep's only bid gets all of it."""
    if choice.of <= 1:
        return bonus_micro
    return bonus_micro * (choice.of - choice.rank) // (choice.of - 1)


def preferring_greedy_awards(contested: Mapping[int, list[Contender]], limit: Mapping[int, int],
                             rank: Mapping[int, int]) -> dict[int, int]:
    """Greedy when preferences count: deferred acceptance, reps asking in their own order.

    Each rep with room asks for their listings in the order of their choices (then listing
    id); a listing keeps the best-ranked bid that asked for it so far and turns the other
    away, and a rep turned away asks for their next listing. The result is stable: no rep
    would rather have a listing whose winner is ranked below them there. When every rep's
    bids are unranked it is exactly `greedy_awards` (listings in ascending id order), since
    with one common order of listings the stable allocation is unique.
    """
    place, listing_of, rep_of = {}, {}, {}
    wishes: dict[int, list[int]] = defaultdict(list)
    for listing_id, contenders in contested.items():
        for position, (bid_id, rep_id, _points, _value) in enumerate(contenders):
            place[bid_id], listing_of[bid_id], rep_of[bid_id] = position, listing_id, rep_id
            wishes[rep_id].append(bid_id)
    for bid_ids in wishes.values():  # the first wish last, to pop it first
        bid_ids.sort(key=lambda bid_id: (rank[bid_id], listing_of[bid_id]), reverse=True)
    room = {rep_id: limit[rep_id] for rep_id in wishes}
    asking = sorted((rep_id for rep_id, left in room.items() if left > 0), reverse=True)
    held: dict[int, int] = {}
    while asking:
        rep_id = asking.pop()
        bid_ids = wishes[rep_id]
        while room[rep_id] > 0 and bid_ids:
            bid_id = bid_ids.pop()
            listing_id = listing_of[bid_id]
            holder = held.get(listing_id)
            if holder is not None and place[holder] < place[bid_id]:
                continue
            held[listing_id] = bid_id
            room[rep_id] -= 1
            if holder is not None:
                turned_away = rep_of[holder]
                room[turned_away] += 1
                asking.append(turned_away)
    return dict(sorted(held.items()))


def preferring_optimal_awards(contested: Mapping[int, list[Contender]],
                              limit: Mapping[int, int], rank: Mapping[int, int]
                              ) -> dict[int, int]:
    """Optimal when preferences count: most listings, highest total, then the smallest sum of
    the awarded bids' choices, then the listing rankings.

    The choices enter the points as a fraction below a millionth of a point: each point is
    scaled by more than the largest possible sum of choices, so that no sum of choices can
    outweigh one millionth of a point, and the better choice is added below it.
    """
    worst = max(rank.values(), default=1)
    scale = len(contested) * worst + 1
    shifted = {listing_id: [(bid_id, rep_id, points * scale + worst - rank.get(bid_id, worst),
                             value) for bid_id, rep_id, points, value in contenders]
               for listing_id, contenders in contested.items()}
    return optimal_awards(shifted, limit)


PreferringAwarder = Callable[[Mapping[int, list[Contender]], Mapping[int, int],
                              Mapping[int, int]], dict[int, int]]
# How a method takes preferences across listings, by method name; a method not named here
# counts them through the totals (bonus) and the listing rankings only.
PREFERRING_AWARDS: dict[str, PreferringAwarder] = {
    "greedy": preferring_greedy_awards,
    "optimal": preferring_optimal_awards,
}
