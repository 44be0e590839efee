"""Allocation methods: the registry of ways to turn ranked eligible bids into awards.

Every method gets the same inputs: `contested` (listing -> its eligible bids, best first, each
a `Contender`: the bid id, its rep, its total score in millionths, so comparisons are exact,
and the listed account's annual value) and `limit` (rep -> the most awards the rep may take in
this round, under capacity and cap), and returns listing -> winning bid id. rules/README.md
documents the same entries (a test compares them); `allocate` in allocation.py dispatches
through the registry.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from heapq import heappop, heappush

from bidhub.domain.text import N_, Text

# An eligible bid as the methods read it: (bid id, rep id, total in millionths, the listed
# account's annual value in yuan, as the bid was scored). Carried with the listing's ranking,
# so that the methods look nothing up by bid: with 100,000 bids in a round, every lookup in
# a table of the round's bids, in listing order, misses the processor's caches.
Contender = tuple[int, int, int, int]
Awarder = Callable[[Mapping[int, list[Contender]], Mapping[int, int]], dict[int, int]]


@dataclass(frozen=True)
class AllocationMethod:
    """`description` is the method as rules/README.md states it; `award` carries it out.

    `elsewhere_note` is added to the reason of a bid whose rep won other listings, where
    the method weighs listings against each other. `below_zero_note` is the reason of a bid
    the method leaves out because its total is below zero, where it does.
    """

    name: str
    description: str
    award: Awarder
    elsewhere_note: Text | None = None
    below_zero_note: Text | None = None


def greedy_awards(contested: Mapping[int, list[Contender]],
                  limit: Mapping[int, int]) -> dict[int, int]:
    """Listings in ascending id order; the best-ranked bid whose rep is under its limit wins.

    `contested`: listing -> its eligible bids, best first. `limit`: rep -> the most awards
    the rep may take in this round (room under capacity, and the per-round cap).
    """
    won: dict[int, int] = defaultdict(int)
    awards = {}
    for listing_id in sorted(contested):
        for bid_id, rep_id, _points, _value in contested[listing_id]:
            if won[rep_id] < limit[rep_id]:
                awards[listing_id] = bid_id
                won[rep_id] += 1
                break
    return awards


def optimal_awards(contested: Mapping[int, list[Contender]],
                   limit: Mapping[int, int]) -> dict[int, int]:
    """Most listings awarded, then the highest total, then the rankings' tie-break order.

    A minimum-cost maximum flow on the bid graph itself: listings (capacity 1) to reps
    (capacity: the awards the rep may still take), one edge per candidate bid. All costs are
    integers, so the lexicographic objective is exact:

    - score: (best total - bid total) in millionths (totals carry 6 decimals), times K;
    - tie: the bid's place among the bids with the same total on its listing (0 for the best
      by the tie-break chain). K exceeds the largest possible sum of places, so ties never
      outweigh a millionth of a point;
    - the number of awards is the flow's value, and it is maximal, so no listing is left
      unawarded to gain points elsewhere.

    Allocations still equal after all three are told apart by the solver's fixed order (see
    `_min_cost_flow`), so the same bids always give the same awards. Time and memory grow
    with the number of bids, not bids x slots.
    """
    candidates = _candidates(contested, limit)
    if not candidates.by_listing:
        return {}
    top, k = candidates.highest, candidates.most_places + 1
    return _flow_awards(candidates, limit, lambda micro, value, place: (top - micro) * k + place)


def value_aware_awards(contested: Mapping[int, list[Contender]],
                       limit: Mapping[int, int]) -> dict[int, int]:
    """The highest sum of score x account value, then the most awards, then the highest total,
    then the rankings' tie-break order.

    Each award is worth its bid's total (millionths) times the listed account's annual value
    (yuan, `BidFacts.listing_value_yuan` as the bid was scored), an exact integer. The
    allocation is compared on, in order:

    1. the sum of those products, highest first. An award that lowers it is never made: a
       bid whose total is below zero is not awarded an account with a value above zero (its
       listing is left to KA management), and a rep's room goes to the accounts where score
       x value adds up to the most, even if that leaves a cheaper listing without a winner;
    2. the number of awards, most first: an account worth 0 yuan (or a bid scoring exactly
       0) adds nothing to the sum but is still awarded when a rep has room for it;
    3. the sum of the awarded totals, highest first (what decides among accounts worth 0);
    4. the winners' places among equal totals on their listings (the tie-break chain).

    Solved exactly, like optimal, as a cheapest flow on the bids (listings to reps) but one
    that may stop short of the maximum: a unit is left out at cost 0, every edge costs minus
    its weight, so the flow is a maximum-weight matching within capacity and caps. The four
    criteria are folded into one integer weight per bid with multipliers that make each
    criterion outweigh everything after it over the whole round.
    """
    candidates = _candidates(contested, limit)
    if not candidates.by_listing:
        return {}
    most_places = candidates.most_places
    bottom, spread = candidates.lowest, candidates.highest - candidates.lowest
    awards_at_most = len(candidates.by_listing)
    # Each multiplier exceeds the widest gap the criteria after it can open over a round.
    total_unit = most_places + 1
    award_unit = awards_at_most * spread * total_unit + most_places + 1
    value_unit = awards_at_most * (award_unit + spread * total_unit) + most_places + 1

    def weight(micro: int, value: int, place: int) -> int:
        return (micro * value * value_unit + award_unit + (micro - bottom) * total_unit - place)

    return _flow_awards(candidates, limit,
                        lambda micro, value, place: -weight(micro, value, place), left_out=0)


def _flow_awards(candidates: _Candidates, limit: Mapping[int, int],
                 cost: Callable[[int, int, int], int], left_out: int | None = None
                 ) -> dict[int, int]:
    """Listing -> bid of the cheapest flow from listings to reps over the candidate bids,
    each bid's edge costing `cost(points, value, place)`; `left_out` as `_min_cost_flow`
    takes it."""
    listings = list(candidates.by_listing)  # ascending
    reps = sorted(candidates.reps)
    rep_index = {rep_id: index for index, rep_id in enumerate(reps)}
    edges = [[(rep_index[rep_id], cost(micro, value, place), bid_id)
              for bid_id, rep_id, micro, value, place in listing]
             for listing in candidates.by_listing.values()]
    matched = _min_cost_flow(edges, [limit[rep_id] for rep_id in reps], left_out=left_out)
    return {listings[row]: bid_id for row, bid_id in enumerate(matched) if bid_id is not None}


# A candidate bid for the flow: (bid id, rep id, total in millionths, annual value, place),
# `place` being its place among the listing's candidates with the same total (0 for the best
# by the tie-break chain).
Candidate = tuple[int, int, int, int, int]


@dataclass
class _Candidates:
    """The candidate bids of a round, with the figures the methods' costs are scaled by."""

    by_listing: dict[int, list[Candidate]] = field(default_factory=dict)  # ascending, best first
    reps: set[int] = field(default_factory=set)  # the reps of the candidates
    most_places: int = 0  # the sum over listings of the worst place
    lowest: int | None = None  # the lowest and the highest total in millionths
    highest: int | None = None


def _candidates(contested: Mapping[int, list[Contender]],
                limit: Mapping[int, int]) -> _Candidates:
    """Per listing, one candidate per rep with room: the rep's best-ranked bid, best first.

    A rep bids once per listing in practice; this keeps parallel edges out of the matrix.
    Listings left without a candidate are left out. The round's figures are gathered in the
    same pass.
    """
    found = _Candidates()
    for listing_id in sorted(contested):
        seen: set[int] = set()
        chosen = []
        place, previous, worst = 0, None, 0
        for bid_id, rep_id, micro, value in contested[listing_id]:
            if rep_id in seen or limit[rep_id] <= 0:
                continue
            seen.add(rep_id)
            # best first: equal totals are adjacent, in tie-break order
            place = place + 1 if micro == previous else 0
            previous = micro
            worst = max(worst, place)
            chosen.append((bid_id, rep_id, micro, value, place))
            if found.lowest is None or micro < found.lowest:
                found.lowest = micro
            if found.highest is None or micro > found.highest:
                found.highest = micro
        if chosen:
            found.by_listing[listing_id] = chosen
            found.reps.update(seen)
            found.most_places += worst
    return found


def _min_cost_flow(edges: list[list[tuple[int, int, int]]], room: list[int],
                   left_out: int | None = None) -> list[int | None]:
    """Listing -> its bid in a cheapest maximum flow, or None (see `_Flow`).

    `edges`: per listing, (rep index, cost, bid id), one per rep; `room`: per rep, the most
    listings it may take. The searches start from the scarcer side (the one with fewer awards
    to give), so that most of them end at once on the other side's plenty. `left_out`: the
    cost of leaving a unit unmatched; None makes it dearer than any matching (a maximum
    flow), 0 with negative edge costs gives the cheapest flow of any size (a maximum-weight
    matching).

    The flow's arcs are made in one pass over the bids, in the form the searches read
    them: with 100,000 bids, every further copy of the graph is made and read in memory
    outside the processor's caches.
    """
    degree = [0] * len(room)
    highest = None
    for listing_edges in edges:
        for rep, cost, _ in listing_edges:
            degree[rep] += 1
            if highest is None or cost > highest:
                highest = cost
    rep_room = [min(limit, count) for limit, count in zip(room, degree, strict=True)]
    from_reps = sum(rep_room) < len(edges)
    if left_out is None:
        left_out = (highest or 0) * (min(sum(rep_room), len(edges)) + 1) + 1
    matched: list[int | None] = [None] * len(edges)
    if from_reps:
        first_target = len(room)
        arcs: list[list[tuple[int, int]]] = [[] for _ in room]
        for listing, listing_edges in enumerate(edges):
            node = first_target + listing
            for rep, cost, _ in listing_edges:
                arcs[rep].append((node, cost))
        held = _Flow(arcs, rep_room, [1] * len(edges), left_out).solve()
        for rep, listings in enumerate(held):
            for listing in listings:
                matched[listing] = next(bid_id for other, _, bid_id in edges[listing]
                                        if other == rep)
        return matched
    first_target = len(edges)
    held = _Flow([[(first_target + rep, cost) for rep, cost, _ in listing_edges]
                  for listing_edges in edges], [1] * len(edges), rep_room, left_out).solve()
    for listing, reps in enumerate(held):
        for rep in reps:
            matched[listing] = next(bid_id for other, _, bid_id in edges[listing] if other == rep)
    return matched


class _Flow:
    """A cheapest maximum flow from sources to targets, one unit per edge, by successive
    shortest paths with potentials (Dijkstra), one source unit at a time.

    Nodes: sources 0..S-1, targets S..S+T-1, then one "left out" node per source (edge cost
    `left_out`, which `_min_cost_flow` makes more than any set of real edges costs unless
    told otherwise, with the source's whole room), then the sink. Every unit of every source
    is placed on the cheapest path in the residual graph (moving units placed before along
    it), so the flow stays the cheapest for what it carries. By default a unit goes to its
    "left out" node only when no real path is left, so the real flow is maximal and then
    cheapest; with `left_out` 0 and negative edge costs a unit is left out whenever no real
    path costs less than nothing, so the flow is the cheapest of any size (potentials make
    the negative costs safe for Dijkstra: a source's potential is raised above its edges
    before it is searched from, and nothing leads back into a source before it holds units).
    A search stops at the first node with room, so it visits only the part of the graph the
    new path can use. Sources are taken in index order and equal distances go to the lower
    node number: the result is a fixed function of the input.
    """

    def __init__(self, arcs: list[list[tuple[int, int]]], source_room: list[int],
                 target_room: list[int], left_out: int) -> None:
        """`arcs`: per source, (target node, cost), target nodes numbered from S; the
        lists become the flow's own, each with its source's "left out" arc added."""
        sources, targets = len(arcs), len(target_room)
        self.first_target = sources
        self.first_left_out = sources + targets
        self.sink = sources * 2 + targets
        self.left_out = left_out
        for source, source_arcs in enumerate(arcs):
            source_arcs.append((self.first_left_out + source, left_out))
        self.edges = arcs
        self.source_room = source_room
        self.room = [0] * sources + list(target_room) + list(source_room)  # node -> room
        self.potential = [0] * (self.sink + 1)
        # node -> (source, edge cost) of the units on it
        self.held: list[list[tuple[int, int]]] = [[] for _ in range(self.sink)]
        self.held_by: list[set[int]] = [set() for _ in arcs]  # source -> its target nodes

    def solve(self) -> list[set[int]]:
        """Per source, the target indexes it is matched to."""
        potential = self.potential
        for source, source_edges in enumerate(self.edges):
            if not self.source_room[source]:
                continue
            potential[source] = max(potential[node] - cost for node, cost in source_edges)
            for _ in range(self.source_room[source]):
                self._place(source)
        first_target, first_left_out = self.first_target, self.first_left_out
        return [{node - first_target for node in nodes if node < first_left_out}
                for nodes in self.held_by]

    def _steps(self, node: int, reached: int) -> list[tuple[int, int]]:
        """The residual arcs out of `node` with their reduced lengths, `reached` being the
        node's distance plus its potential. A "left out" node leads only to the sink: going
        back to its source is never shorter."""
        potential, held = self.potential, self.held
        if node < self.first_target:
            held_by, left_out = self.held_by[node], self.first_left_out + node
            return [(target, reached + cost - potential[target])
                    for target, cost in self.edges[node] if target not in held_by
                    or (target == left_out and len(held[left_out]) < self.room[left_out])]
        steps = [] if node >= self.first_left_out else [
            (source, reached - cost - potential[source]) for source, cost in held[node]]
        if len(held[node]) < self.room[node]:
            steps.append((self.sink, reached - potential[self.sink]))
        return steps

    def _place(self, source: int) -> None:
        """Place one more unit of `source` on the cheapest path (Dijkstra with potentials)."""
        sink, potential = self.sink, self.potential
        best = {source: 0}
        pred: dict[int, int] = {}
        done: dict[int, int] = {}
        queue = [(0, source)]
        while True:
            distance, node = heappop(queue)
            if node in done:
                continue
            done[node] = distance
            if node == sink:
                break
            for step, length in self._steps(node, distance + potential[node]):
                if step not in done and length < best.get(step, length + 1):
                    best[step] = length
                    pred[step] = node
                    heappush(queue, (length, step))
        total = done.pop(sink)
        for node, distance in done.items():
            potential[node] += distance - total
        target = pred[sink]
        while True:
            holder = pred[target]
            cost = next(cost for node, cost in self.edges[holder] if node == target)
            self.held[target].append((holder, cost))
            self.held_by[holder].add(target)
            if holder == source:
                return
            target = pred[holder]
            self.held[target] = [unit for unit in self.held[target] if unit[0] != holder]
            self.held_by[holder].discard(target)


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
        AllocationMethod(
            "value_aware", "the whole round at once, each award weighed by the account's "
            "annual value. It takes the **highest sum of score × annual value** first; then "
            "the most listings awarded; then the highest total score; among equal totals it "
            "follows the listing rankings (the tie-break chain). A bid with a total below zero "
            "is not awarded an account with a value, and a rep's room may go to a more "
            "valuable account even if a cheaper one is left without a winner",
            value_aware_awards,
            elsewhere_note=N_("the value-aware allocation gives each rep's room to the accounts "
                              "where score × annual value adds up to the most"),
            below_zero_note=N_("a total below zero: the value-aware allocation does not award "
                               "an account with a value to it, since that would lower the sum "
                               "of score × annual value; KA management may still award it with a reason")),
    )
}
DEFAULT_ALLOCATION_METHOD = "greedy"
