"""Allocation: turning scores into at most one award per listing, within capacity and caps.

- Ranking (per listing): eligible bids first, by total descending, then the rules' tie-break
  chain, then bid id (so the order is total whatever the rules say); ineligible bids last,
  in the same order.
- Limits: a rep's accounts held + awards in this round <= capacity_max, and awards in this
  round <= max_awards_per_rep_per_round. A rep with bids showing different holdings is
  taken at the highest (the safe side). Each listing gets at most one award, always to an
  eligible bid. Listings with fewer eligible bids than min_bids_per_listing (and listings
  without any eligible bid) are flagged for KA management and not awarded.
- greedy: listings in ascending listing id order (the order they were released); each goes
  to its best-ranked eligible bid whose rep still has room under capacity and cap.
- optimal: lexicographic: first the most listings awarded, then the highest total score,
  then the best agreement with the per-listing rankings among equal totals (the tie-break
  chain). Solved exactly as a min-cost bipartite matching of listings to rep "slots" (see
  `optimal_awards`). Note a consequence of "most listings first": optimal may award one
  more listing at the price of a lower total score than greedy.
- The result depends only on the set of bids, their scores and the lottery seed, never on
  the order of the `bids` sequence.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bidhub.domain.facts import BidFacts
from bidhub.domain.rules import RuleSet
from bidhub.domain.scoring import DECIMALS, BidScore

# Costs in the optimal matching are integers below this, so float64 holds them and the sums
# the solver forms exactly (2**53 is the limit; the margin covers sums of a few costs).
EXACT_COST_LIMIT = 2**50


@dataclass(frozen=True)
class Allocation:
    method: str
    rankings: dict[int, tuple[int, ...]]  # listing -> bid ids, best first, ineligible last
    awards: dict[int, int | None]  # listing -> winning bid id, or None
    # bid -> why it did not win: every eligible bid ranked above its listing's award (or any
    # eligible bid of a listing without one), and every ineligible bid.
    reasons: dict[int, str]
    flagged: frozenset[int]  # listings with too few eligible bids: KA management decides
    total_score: float  # sum of the awarded bids' totals
    lottery_seed: int | None = None

    @property
    def award_count(self) -> int:
        return sum(1 for bid_id in self.awards.values() if bid_id is not None)


def lottery_ticket(seed: int, bid_id: int) -> str:
    """The bid's lottery draw: anyone with the published seed can recompute it."""
    return hashlib.sha256(f"{seed}:{bid_id}".encode()).hexdigest()


def ranking_key(rules: RuleSet, bid: BidFacts, score: BidScore, seed: int) -> tuple:
    keys: list = [not score.is_eligible, -score.total]
    for tie_break in rules.tie_break:
        if tie_break == "fewest_accounts_held":
            keys.append(bid.accounts_held)
        elif tie_break == "earliest_submission":
            keys.append(bid.submitted_at)
        elif tie_break == "lottery":
            keys.append(lottery_ticket(seed, bid.bid_id))
    keys.append(bid.bid_id)
    return tuple(keys)


def rank_listings(rules: RuleSet, bids: Sequence[BidFacts], scores: Mapping[int, BidScore],
                  seed: int) -> dict[int, tuple[int, ...]]:
    """Listing id -> its bid ids best first (ineligible last), listings in ascending order."""
    by_listing: dict[int, list[BidFacts]] = defaultdict(list)
    for bid in bids:
        by_listing[bid.listing_id].append(bid)
    return {
        listing_id: tuple(bid.bid_id for bid in sorted(
            listing_bids, key=lambda bid: ranking_key(rules, bid, scores[bid.bid_id], seed)))
        for listing_id, listing_bids in sorted(by_listing.items())
    }


def allocate(rules: RuleSet, bids: Sequence[BidFacts], scores: Mapping[int, BidScore],
             lottery_seed: int) -> Allocation:
    """Awards for a round by the rules' method; same inputs and seed, same result.

    `scores` must hold a score for every bid (as returned by score_round).
    """
    facts = {bid.bid_id: bid for bid in bids}
    rankings = rank_listings(rules, bids, scores, lottery_seed)
    eligible = {listing_id: [bid_id for bid_id in ranking if scores[bid_id].is_eligible]
                for listing_id, ranking in rankings.items()}
    flagged = frozenset(listing_id for listing_id, bid_ids in eligible.items()
                        if len(bid_ids) < max(rules.min_bids_per_listing, 1))
    held: dict[int, int] = {}
    for bid in bids:
        held[bid.rep_id] = max(held.get(bid.rep_id, bid.accounts_held), bid.accounts_held)
    limit = {rep_id: max(0, rules.eligibility.capacity_max - count)
             for rep_id, count in held.items()}
    cap = rules.caps.max_awards_per_rep_per_round
    if cap is not None:
        limit = {rep_id: min(room, cap) for rep_id, room in limit.items()}
    contested = {listing_id: bid_ids for listing_id, bid_ids in eligible.items()
                 if listing_id not in flagged}
    if rules.allocation == "optimal":
        chosen = optimal_awards(contested, facts, scores, limit)
    else:
        chosen = greedy_awards(contested, facts, limit)
    awards = {listing_id: chosen.get(listing_id) for listing_id in rankings}
    reasons = explain(rules, rankings, awards, facts, scores, held, flagged)
    total = round(sum(scores[bid_id].total for bid_id in awards.values() if bid_id is not None),
                  DECIMALS) + 0.0
    return Allocation(rules.allocation, rankings, awards, reasons, flagged, total, lottery_seed)


def greedy_awards(contested: Mapping[int, list[int]], facts: Mapping[int, BidFacts],
                  limit: Mapping[int, int]) -> dict[int, int]:
    """Listings in ascending id order; the best-ranked bid whose rep is under its limit wins.

    `contested`: listing -> its eligible bid ids, best first. `limit`: rep -> the most
    awards the rep may take in this round (room under capacity, and the per-round cap).
    """
    won: dict[int, int] = defaultdict(int)
    awards = {}
    for listing_id in sorted(contested):
        for bid_id in contested[listing_id]:
            rep_id = facts[bid_id].rep_id
            if won[rep_id] < limit[rep_id]:
                awards[listing_id] = bid_id
                won[rep_id] += 1
                break
    return awards


def optimal_awards(contested: Mapping[int, list[int]], facts: Mapping[int, BidFacts],
                   scores: Mapping[int, BidScore], limit: Mapping[int, int]) -> dict[int, int]:
    """Most listings awarded, then the highest total, then the rankings' tie-break order.

    A min-cost full matching (scipy's LAPJVsp, sparse) between listings (rows) and columns:
    one "slot" per award a rep may still take (min(limit, listings the rep bid on)) and one
    private "no award" column per listing. All costs are integers, so the lexicographic
    objective is exact:

    - score: (best total - bid total) in millionths (totals carry 6 decimals), times K;
    - tie: the bid's place among the bids with the same total on its listing (0 for the best
      by the tie-break chain). K exceeds the largest possible sum of places, so ties never
      outweigh a millionth of a point;
    - no award costs more than any matching's whole score-and-tie cost, so no listing is
      left unawarded to gain points elsewhere.

    If those integers would not fit float64 exactly (weights near the limit and thousands of
    exact ties), the tie term is dropped (K = 1): scores stay exact and the result stays
    reproducible, but equal totals are no longer ordered by the tie-break chain.
    Memory is linear in bids x slots per rep (slots <= the per-round cap when there is one).
    """
    import numpy as np
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    # One candidate per (listing, rep): the rep's best-ranked bid (a rep bids once per listing
    # in practice; this keeps parallel edges out of the matrix), and only reps with room.
    candidates: dict[int, list[int]] = {}
    listings_of_rep: dict[int, int] = defaultdict(int)
    for listing_id in sorted(contested):
        seen: set[int] = set()
        chosen = []
        for bid_id in contested[listing_id]:
            rep_id = facts[bid_id].rep_id
            if rep_id not in seen and limit[rep_id] > 0:
                seen.add(rep_id)
                chosen.append(bid_id)
                listings_of_rep[rep_id] += 1
        if chosen:
            candidates[listing_id] = chosen
    if not candidates:
        return {}
    listings = sorted(candidates)

    slots: dict[int, range] = {}
    columns = 0
    for rep_id in sorted(listings_of_rep):
        count = min(limit[rep_id], listings_of_rep[rep_id])
        slots[rep_id] = range(columns, columns + count)
        columns += count

    micro = {bid_id: round(scores[bid_id].total * 10**DECIMALS)
             for bid_ids in candidates.values() for bid_id in bid_ids}
    top, bottom = max(micro.values()), min(micro.values())
    place: dict[int, int] = {}
    most_places = 0
    for bid_ids in candidates.values():
        position, previous, worst = 0, None, 0
        for bid_id in bid_ids:  # best first: equal totals are adjacent, in tie-break order
            position = position + 1 if micro[bid_id] == previous else 0
            previous = micro[bid_id]
            place[bid_id] = position
            worst = max(worst, position)
        most_places += worst
    awards_possible = min(len(listings), columns)

    def no_award_cost(k: int) -> int:
        largest_edge = (top - bottom) * k + (most_places if k > 1 else 0) + 1
        return awards_possible * largest_edge + 1

    k = most_places + 1
    if no_award_cost(k) >= EXACT_COST_LIMIT:
        k = 1
    no_award = no_award_cost(k)

    rows: list[int] = []
    cols: list[int] = []
    costs: list[int] = []
    for row, listing_id in enumerate(listings):
        for bid_id in candidates[listing_id]:
            # + 1: the solver needs non-zero weights.
            cost = (top - micro[bid_id]) * k + (place[bid_id] if k > 1 else 0) + 1
            for column in slots[facts[bid_id].rep_id]:
                rows.append(row)
                cols.append(column)
                costs.append(cost)
        rows.append(row)
        cols.append(columns + row)
        costs.append(no_award)
    graph = coo_array((np.array(costs, dtype=np.float64),
                       (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64))),
                      shape=(len(listings), columns + len(listings))).tocsr()
    matched_rows, matched_columns = min_weight_full_bipartite_matching(graph)

    owner = {column: rep_id for rep_id, columns_of in slots.items() for column in columns_of}
    awards = {}
    for row, column in zip(matched_rows.tolist(), matched_columns.tolist(), strict=True):
        rep_id = owner.get(column)
        if rep_id is not None:
            listing_id = listings[row]
            awards[listing_id] = next(bid_id for bid_id in candidates[listing_id]
                                      if facts[bid_id].rep_id == rep_id)
    return awards


def _listing_list(listing_ids: list[int]) -> str:
    names = [f"#{listing_id}" for listing_id in sorted(listing_ids)]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def explain(rules: RuleSet, rankings: Mapping[int, tuple[int, ...]],
            awards: Mapping[int, int | None], facts: Mapping[int, BidFacts],
            scores: Mapping[int, BidScore], held: Mapping[int, int],
            flagged: frozenset[int]) -> dict[int, str]:
    """Why each bid that could have expected to win did not (see Allocation.reasons)."""
    won: dict[int, list[int]] = defaultdict(list)
    for listing_id, bid_id in awards.items():
        if bid_id is not None:
            won[facts[bid_id].rep_id].append(listing_id)
    capacity_max = rules.eligibility.capacity_max
    cap = rules.caps.max_awards_per_rep_per_round
    optimal = rules.allocation == "optimal"
    reasons = {}
    for listing_id, ranking in rankings.items():
        winner = awards.get(listing_id)
        above_winner = True
        for bid_id in ranking:
            if bid_id == winner:
                above_winner = False
                continue
            score = scores[bid_id]
            if not score.is_eligible:
                reasons[bid_id] = "not eligible: " + "; ".join(
                    check.reason for check in score.failed_checks)
                continue
            if not above_winner:
                continue
            rep_id = facts[bid_id].rep_id
            wins = won[rep_id]
            elsewhere = f"wins {_listing_list(wins)} in this round" if wins else \
                "wins nothing else in this round"
            if optimal and wins:
                elsewhere += (": the optimal allocation awards the most accounts, then the "
                              "best total, over the whole round")
            if listing_id in flagged:
                count = sum(1 for other in ranking if scores[other].is_eligible)
                reasons[bid_id] = (
                    f"only {count} eligible bid{'s' if count != 1 else ''}; the rules ask for "
                    f"at least {rules.min_bids_per_listing}, so KA management decides")
            elif held[rep_id] + len(wins) >= capacity_max:
                reasons[bid_id] = (f"capacity: would exceed {capacity_max} accounts (holds "
                                   f"{held[rep_id]}, {elsewhere})")
            elif cap is not None and len(wins) >= cap:
                reasons[bid_id] = f"per-round cap of {cap} awards reached ({elsewhere})"
            else:  # only when exact ties could not follow the tie-break chain (see above)
                reasons[bid_id] = "a better total elsewhere (optimal allocation)"
    return reasons
