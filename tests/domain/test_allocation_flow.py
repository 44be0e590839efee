"""Optimal allocation's flow solver against exhaustive search, on small random rounds."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bidhub.domain.allocation import allocate
from bidhub.domain.allocation_methods import _min_cost_flow
from bidhub.domain.facts import BidFacts
from bidhub.domain.rules import parse_rules
from bidhub.domain.scoring import score_round

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

RULES = """
tie_break = ["fewest_accounts_held", "earliest_submission"]

[eligibility]
capacity_max = 40
capacity_target = 30

[[factors]]
metric = "win_rate"
weight = 1.0
normaliser = "cap"
cap = 1

[caps]
max_awards_per_rep_per_round = {cap}

[allocation]
method = "optimal"
min_bids_per_listing = 1
"""


@st.composite
def graphs(draw):
    """Per listing, (rep, cost, bid id) edges with one edge per rep; per rep, its room."""
    listings, reps = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    edges, bid_id = [], 0
    for _ in range(listings):
        chosen = draw(st.lists(st.integers(0, reps - 1), unique=True, max_size=reps))
        listing_edges = []
        for rep in chosen:
            bid_id += 1
            listing_edges.append((rep, draw(st.integers(0, 6)), bid_id))
        edges.append(listing_edges)
    return edges, draw(st.lists(st.integers(1, 3), min_size=reps, max_size=reps))


def best_flow(edges, room) -> tuple[int, int]:
    """(most listings matched, then the least cost) over every feasible choice."""
    best = (0, 0)
    for choice in itertools.product(*([None, *listing_edges] for listing_edges in edges)):
        chosen = [edge for edge in choice if edge is not None]
        per_rep = Counter(rep for rep, _, _ in chosen)
        if all(count <= room[rep] for rep, count in per_rep.items()):
            best = max(best, (len(chosen), -sum(cost for _, cost, _ in chosen)))
    return best[0], -best[1]


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_the_flow_is_a_cheapest_maximum_one(graph):
    # Small integer costs make many exact ties; rooms above and below the listing count
    # take both search directions (from listings, or from reps when they have less room).
    edges, room = graph
    matched = _min_cost_flow(edges, room)
    assert len(matched) == len(edges)
    chosen = []
    for listing_edges, bid_id in zip(edges, matched, strict=True):
        if bid_id is not None:
            chosen.extend(edge for edge in listing_edges if edge[2] == bid_id)
    per_rep = Counter(rep for rep, _, _ in chosen)
    assert all(count <= room[rep] for rep, count in per_rep.items())
    assert (len(chosen), sum(cost for _, cost, _ in chosen)) == best_flow(edges, room)
    assert _min_cost_flow(edges, room) == matched


@st.composite
def rounds(draw):
    listings, reps = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    held = {rep: draw(st.integers(36, 40)) for rep in range(1, reps + 1)}
    pairs = draw(st.lists(st.tuples(st.integers(1, reps), st.integers(1, listings)),
                          unique=True, max_size=9))
    return [BidFacts(
        bid_id=bid_id, rep_id=rep, listing_id=listing,
        submitted_at=T0 + timedelta(minutes=draw(st.integers(0, 2))),
        metrics={"win_rate": draw(st.sampled_from([None, 0.0, 0.5, 0.5, 1.0]))},
        accounts_held=held[rep], tenure_months=24.0, open_incidents=0, rep_branch="BJ",
        listing_branch="BJ") for bid_id, (rep, listing) in enumerate(pairs, start=1)]


def objective(bids, scores, rankings, awards) -> tuple[int, float, int]:
    """(listings awarded, total score, sum of the winners' places among equal totals)."""
    places = 0
    for listing_id, bid_id in awards.items():
        if bid_id is not None:
            ranking = [other for other in rankings[listing_id] if scores[other].is_eligible]
            places += sum(1 for other in ranking[:ranking.index(bid_id)]
                          if scores[other].total == scores[bid_id].total)
    chosen = [bid_id for bid_id in awards.values() if bid_id is not None]
    return len(chosen), round(sum(scores[bid_id].total for bid_id in chosen), 6), places


@settings(max_examples=150, deadline=None)
@given(rounds(), st.integers(1, 3))
def test_optimal_allocation_is_the_best_by_exhaustive_search_tie_breaks_included(bids, cap):
    policy = parse_rules(RULES.replace("{cap}", str(cap)))
    scores = score_round(policy, bids)
    result = allocate(policy, bids, scores, 7)
    facts = {item.bid_id: item for item in bids}
    room = {item.rep_id: min(cap, 40 - item.accounts_held) for item in bids}
    per_rep = Counter(facts[bid_id].rep_id for bid_id in result.awards.values() if bid_id)
    assert all(count <= room[rep] for rep, count in per_rep.items())
    options = [[None, *(bid_id for bid_id in ranking if scores[bid_id].is_eligible)]
               for listing_id, ranking in result.rankings.items()
               if listing_id not in result.flagged]
    best = None
    for choice in itertools.product(*options):
        counts = Counter(facts[bid_id].rep_id for bid_id in choice if bid_id is not None)
        if all(count <= room[rep] for rep, count in counts.items()):
            awards = {facts[bid_id].listing_id: bid_id for bid_id in choice if bid_id}
            count, total, places = objective(bids, scores, result.rankings, awards)
            key = (count, total, -places)
            best = key if best is None or key > best else best
    count, total, places = objective(bids, scores, result.rankings, result.awards)
    assert (count, total, -places) == (best or (0, 0.0, 0))
