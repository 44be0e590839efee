"""Allocation methods: the registry of ways to turn ranked eligible bids into awards.

Every method gets the same inputs: `contested` (listing -> its eligible bid ids, best first),
the bids' facts, `points` (bid -> total score in millionths, so comparisons are exact) and
`limit` (rep -> the most awards the rep may take in this round, under capacity and cap), and
returns listing -> winning bid id. rules/README.md documents the same entries (a test
compares them); `allocate` in allocation.py dispatches through the registry.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bidhub.domain.facts import BidFacts
from bidhub.domain.text import N_, Text

# Costs in the optimal matching are integers below this, so float64 holds them and the sums
# the solver forms exactly (2**53 is the limit; the margin covers sums of a few costs).
EXACT_COST_LIMIT = 2**50

Awarder = Callable[[Mapping[int, list[int]], Mapping[int, BidFacts], Mapping[int, int],
                    Mapping[int, int]], dict[int, int]]


@dataclass(frozen=True)
class AllocationMethod:
    """`description` is the method as rules/README.md states it; `award` carries it out.

    `elsewhere_note` is added to the reason of a bid whose rep won other listings, where
    the method weighs listings against each other.
    """

    name: str
    description: str
    award: Awarder
    elsewhere_note: Text | None = None


def greedy_awards(contested: Mapping[int, list[int]], facts: Mapping[int, BidFacts],
                  points: Mapping[int, int], limit: Mapping[int, int]) -> dict[int, int]:
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
                   points: Mapping[int, int], limit: Mapping[int, int]) -> dict[int, int]:
    """Most listings awarded, then the highest total, then the rankings' tie-break order.

    A min-cost full matching (scipy's LAPJVsp, sparse) between listings (rows) and columns:
    one "slot" per award a rep may still take (min(limit, listings the rep bid on)) and one
    private "no award" column per listing. All costs are integers, so the lexicographic
    objective is exact:

    - score: (best total - bid total) in millionths (`points`: totals carry 6 decimals),
      times K;
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
    candidates = _candidates(contested, facts, limit)
    if not candidates:
        return {}
    listings = sorted(candidates)
    slots = _slots(candidates, facts, limit)
    columns = sum(len(columns_of) for columns_of in slots.values())
    micro = {bid_id: points[bid_id] for bid_ids in candidates.values() for bid_id in bid_ids}
    place, most_places = _tie_places(candidates, micro)
    top, bottom = max(micro.values()), min(micro.values())
    awards_possible = min(len(listings), columns)

    def no_award_cost(k: int) -> int:
        largest_edge = (top - bottom) * k + (most_places if k > 1 else 0) + 1
        return awards_possible * largest_edge + 1

    k = most_places + 1
    if no_award_cost(k) >= EXACT_COST_LIMIT:
        k = 1
    no_award = no_award_cost(k)
    edges = []
    for row, listing_id in enumerate(listings):
        for bid_id in candidates[listing_id]:
            # + 1: the solver needs non-zero weights.
            cost = (top - micro[bid_id]) * k + (place[bid_id] if k > 1 else 0) + 1
            edges.extend((row, column, cost) for column in slots[facts[bid_id].rep_id])
        edges.append((row, columns + row, no_award))
    matched = _min_cost_matching(edges, len(listings), columns + len(listings))

    owner = {column: rep_id for rep_id, columns_of in slots.items() for column in columns_of}
    awards = {}
    for row, column in matched:
        rep_id = owner.get(column)
        if rep_id is not None:
            listing_id = listings[row]
            awards[listing_id] = next(bid_id for bid_id in candidates[listing_id]
                                      if facts[bid_id].rep_id == rep_id)
    return awards


def _candidates(contested: Mapping[int, list[int]], facts: Mapping[int, BidFacts],
                limit: Mapping[int, int]) -> dict[int, list[int]]:
    """Listing -> one bid per rep with room: the rep's best-ranked, best first.

    A rep bids once per listing in practice; this keeps parallel edges out of the matrix.
    Listings left without a candidate are left out.
    """
    candidates: dict[int, list[int]] = {}
    for listing_id in sorted(contested):
        seen: set[int] = set()
        chosen = []
        for bid_id in contested[listing_id]:
            rep_id = facts[bid_id].rep_id
            if rep_id not in seen and limit[rep_id] > 0:
                seen.add(rep_id)
                chosen.append(bid_id)
        if chosen:
            candidates[listing_id] = chosen
    return candidates


def _slots(candidates: Mapping[int, list[int]], facts: Mapping[int, BidFacts],
           limit: Mapping[int, int]) -> dict[int, range]:
    """Rep -> its columns: one per award it may take, min(limit, listings it is a candidate on)."""
    listings_of_rep: dict[int, int] = defaultdict(int)
    for bid_ids in candidates.values():
        for bid_id in bid_ids:
            listings_of_rep[facts[bid_id].rep_id] += 1
    slots: dict[int, range] = {}
    columns = 0
    for rep_id in sorted(listings_of_rep):
        count = min(limit[rep_id], listings_of_rep[rep_id])
        slots[rep_id] = range(columns, columns + count)
        columns += count
    return slots


def _tie_places(candidates: Mapping[int, list[int]],
                micro: Mapping[int, int]) -> tuple[dict[int, int], int]:
    """Each bid's place among equal totals on its listing, and the sum of the worst places."""
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
    return place, most_places


def _min_cost_matching(edges: list[tuple[int, int, int]], rows: int,
                       columns: int) -> list[tuple[int, int]]:
    """(row, column) pairs of a minimum-cost full matching of the rows (scipy, sparse)."""
    import numpy as np
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    row_of, column_of, cost_of = zip(*edges, strict=True)
    graph = coo_array((np.array(cost_of, dtype=np.float64),
                       (np.array(row_of, dtype=np.int64), np.array(column_of, dtype=np.int64))),
                      shape=(rows, columns)).tocsr()
    matched_rows, matched_columns = min_weight_full_bipartite_matching(graph)
    return list(zip(matched_rows.tolist(), matched_columns.tolist(), strict=True))

ALLOCATION_METHODS: dict[str, AllocationMethod] = {
    method.name: method for method in (
        AllocationMethod(
            "greedy", "listings in ascending listing id order (the order they were released); "
            "each goes to its best-ranked bid whose rep still has room under capacity and cap. "
            "Simple to explain; an early listing can use up a rep that a later listing needed "
            "more", greedy_awards),
        AllocationMethod(
            "optimal", "the whole round at once. It awards **as many listings as possible "
            "first**; among those allocations it takes the **highest total score**; among "
            "equal totals it follows the listing rankings (the tie-break chain)",
            optimal_awards,
            elsewhere_note=N_("the optimal allocation awards the most accounts, then the best "
                              "total, over the whole round")),
    )
}
DEFAULT_ALLOCATION_METHOD = "greedy"
