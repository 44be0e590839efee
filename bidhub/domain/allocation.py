"""Allocation: turning scores into at most one award per listing, within capacity and caps."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bidhub.domain.facts import BidFacts
from bidhub.domain.rules import RuleSet
from bidhub.domain.scoring import BidScore


@dataclass(frozen=True)
class Allocation:
    method: str
    rankings: dict[int, tuple[int, ...]]  # listing -> bid ids, best first, ineligible last
    awards: dict[int, int | None]  # listing -> winning bid id, or None
    reasons: dict[int, str]  # bid ranked above its listing's winner -> why it did not win
    flagged: frozenset[int]  # listings with fewer eligible bids than the rules require
    total_score: float


def lottery_ticket(seed: int, bid_id: int) -> str:
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
    keys.append(bid.bid_id)  # a total order, whatever the rules say
    return tuple(keys)


def rank_listings(rules: RuleSet, bids: Sequence[BidFacts], scores: Mapping[int, BidScore],
                  seed: int) -> dict[int, tuple[int, ...]]:
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
    """Awards for a round by the rules' method; same inputs and seed, same result."""
    facts = {bid.bid_id: bid for bid in bids}
    rankings = rank_listings(rules, bids, scores, lottery_seed)
    eligible = {listing_id: [bid_id for bid_id in ranking if scores[bid_id].is_eligible]
                for listing_id, ranking in rankings.items()}
    flagged = frozenset(listing_id for listing_id, bid_ids in eligible.items()
                        if len(bid_ids) < max(rules.min_bids_per_listing, 1))
    room = {bid.rep_id: rules.eligibility.capacity_max - bid.accounts_held for bid in bids}
    cap = rules.caps.max_awards_per_rep_per_round
    contested = {listing_id: bid_ids for listing_id, bid_ids in eligible.items()
                 if listing_id not in flagged}
    if rules.allocation == "optimal":
        awards = optimal_awards(contested, facts, scores, room, cap)
    else:
        awards = greedy_awards(contested, facts, room, cap)
    awards = {listing_id: awards.get(listing_id) for listing_id in rankings}
    reasons = explain(rules, rankings, awards, facts, scores, room, cap, flagged)
    total = round(sum(scores[bid_id].total for bid_id in awards.values() if bid_id is not None), 6)
    return Allocation(rules.allocation, rankings, awards, reasons, flagged, total)


def greedy_awards(contested: Mapping[int, list[int]], facts: Mapping[int, BidFacts],
                  room: Mapping[int, int], cap: int | None) -> dict[int, int]:
    """Listings in ascending id order (the order they were released); the best bid with room wins."""
    won: dict[int, int] = defaultdict(int)
    awards = {}
    for listing_id in sorted(contested):
        for bid_id in contested[listing_id]:
            rep_id = facts[bid_id].rep_id
            if won[rep_id] < room[rep_id] and (cap is None or won[rep_id] < cap):
                awards[listing_id] = bid_id
                won[rep_id] += 1
                break
    return awards


def optimal_awards(contested: Mapping[int, list[int]], facts: Mapping[int, BidFacts],
                   scores: Mapping[int, BidScore], room: Mapping[int, int],
                   cap: int | None) -> dict[int, int]:
    """Most awards first, then the highest total score, within every rep's room and cap.

    A min-cost bipartite matching between listings and rep "slots" (one per award a rep may
    still take). Each listing also has a private "no award" slot that costs more than any
    rearrangement could save, so no listing goes unawarded to gain points elsewhere. A tiny
    cost by ranking position makes ties follow the tie-break chain.
    """
    import numpy as np
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    listings = sorted(contested)
    if not listings:
        return {}
    bids_of_rep: dict[int, int] = defaultdict(int)
    for bid_ids in contested.values():
        for bid_id in bid_ids:
            bids_of_rep[facts[bid_id].rep_id] += 1
    slots: dict[int, list[int]] = {}
    columns = 0
    for rep_id in sorted(bids_of_rep):
        count = min(room[rep_id], bids_of_rep[rep_id], cap if cap is not None else room[rep_id])
        slots[rep_id] = list(range(columns, columns + max(count, 0)))
        columns += max(count, 0)
    totals = [scores[bid_id].total for bid_ids in contested.values() for bid_id in bid_ids]
    spread = (max(totals) - min(totals)) if totals else 0.0
    top = max(totals, default=0.0)
    no_award_cost = 2.0 + (spread + 1.0) * (len(listings) + 1)
    rows, cols, costs = [], [], []
    for row, listing_id in enumerate(listings):
        for position, bid_id in enumerate(contested[listing_id]):
            cost = 1.0 + (top - scores[bid_id].total) + position * 1e-9
            for column in slots[facts[bid_id].rep_id]:
                rows.append(row)
                cols.append(column)
                costs.append(cost)
        rows.append(row)
        cols.append(columns + row)
        costs.append(no_award_cost)
    graph = csr_matrix((np.array(costs), (np.array(rows), np.array(cols))),
                       shape=(len(listings), columns + len(listings)))
    matched_rows, matched_columns = min_weight_full_bipartite_matching(graph)
    slot_owner = {column: rep_id for rep_id, columns_of in slots.items() for column in columns_of}
    awards = {}
    for row, column in zip(matched_rows.tolist(), matched_columns.tolist(), strict=True):
        rep_id = slot_owner.get(int(column))
        if rep_id is None:
            continue
        listing_id = listings[row]
        awards[listing_id] = next(bid_id for bid_id in contested[listing_id]
                                  if facts[bid_id].rep_id == rep_id)
    return awards


def explain(rules: RuleSet, rankings: Mapping[int, tuple[int, ...]],
            awards: Mapping[int, int | None], facts: Mapping[int, BidFacts],
            scores: Mapping[int, BidScore], room: Mapping[int, int], cap: int | None,
            flagged: frozenset[int]) -> dict[int, str]:
    """Why each eligible bid ranked above its listing's award (or any, if none) did not win."""
    won: dict[int, int] = defaultdict(int)
    for bid_id in awards.values():
        if bid_id is not None:
            won[facts[bid_id].rep_id] += 1
    reasons = {}
    for listing_id, ranking in rankings.items():
        winner = awards.get(listing_id)
        for bid_id in ranking:
            if bid_id == winner:
                break
            if not scores[bid_id].is_eligible:
                continue
            rep_id = facts[bid_id].rep_id
            if listing_id in flagged:
                reasons[bid_id] = (f"fewer than {rules.min_bids_per_listing} eligible bids: "
                                   "left for KA management to decide")
            elif won[rep_id] >= room[rep_id]:
                reasons[bid_id] = (f"capacity: another award would take the rep past "
                                   f"{rules.eligibility.capacity_max} accounts")
            elif cap is not None and won[rep_id] >= cap:
                reasons[bid_id] = f"per-round cap of {cap} awards reached"
            else:
                reasons[bid_id] = "a better total elsewhere (optimal allocation)"
    return reasons
