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
  chain). Solved exactly as a cheapest maximum flow from listings to reps on the bids
  themselves (see `optimal_awards` in allocation_methods.py). Note a consequence of "most listings first":
  optimal may award one more listing at the price of a lower total score than greedy.
- value_aware: lexicographic: first the highest sum of score x the account's annual value,
  then the most listings, then the highest total, then the tie-break chain; a maximum-weight
  matching on the same flow (see `value_aware_awards`). It never awards a bid whose total is
  below zero an account with a value, and may leave a cheaper listing unawarded to give a
  rep's room to a more valuable one.
- Ranked preferences (rules [preferences], preferences.py): when they count, the rep's choice
  orders equal totals before the tie-break chain, greedy and optimal take them across listings
  (PREFERRING_AWARDS), and an award they decided is explained against the same rules with
  preferences ignored (`notes` of the winner, a reason for the bid that lost it).
- Tie-breaks and methods are looked up by name in TIE_BREAKS and ALLOCATION_METHODS.
- The result depends only on the set of bids, their scores and the lottery seed, never on
  the order of the `bids` sequence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from bidhub.domain.allocation_methods import ALLOCATION_METHODS, AllocationMethod, Contender
from bidhub.domain.facts import BidFacts
from bidhub.domain.preferences import (
    PREFERENCE_BONUS,
    PREFERRING_AWARDS,
    Preferences,
    choices,
)
from bidhub.domain.rules import RuleSet
from bidhub.domain.scoring import DECIMALS, ScoreBreakdown, cycle_collector_paused
from bidhub.domain.text import COMMA, N_, Joined, Text
from bidhub.domain.tie_breaks import TIE_BREAKS


@dataclass(frozen=True)
class Allocation:
    method: str
    rankings: dict[int, tuple[int, ...]]  # listing -> bid ids, best first, ineligible last
    awards: dict[int, int | None]  # listing -> winning bid id, or None
    # bid -> why it did not win: every eligible bid ranked above its listing's award (or any
    # eligible bid of a listing without one), and every ineligible bid.
    reasons: dict[int, Text]
    flagged: frozenset[int]  # listings with too few eligible bids: KA management decides
    total_score: float  # sum of the awarded bids' totals
    lottery_seed: int | None = None
    # won bid -> how ranked preferences decided its award (the same rules with preferences
    # ignored would have awarded the listing otherwise); empty when preferences do not count.
    notes: dict[int, Text] = field(default_factory=dict)

    @property
    def award_count(self) -> int:
        return sum(1 for bid_id in self.awards.values() if bid_id is not None)


def ranking_key(rules: RuleSet, bid: BidFacts, score: ScoreBreakdown, seed: int,
                choice: int | None = None) -> tuple:
    """Eligible first, then total descending, then the rep's `choice` for this bid when
    preferences count (1 = first), then the tie-break chain, then bid id."""
    preference = () if choice is None else (choice,)
    return (not score.is_eligible, -score.total, *preference,
            *(TIE_BREAKS[name].key(bid, seed) for name in rules.tie_break), bid.bid_id)


def rank_listings(rules: RuleSet, bids: Sequence[BidFacts], scores: Mapping[int, ScoreBreakdown],
                  seed: int, rank: Mapping[int, int] | None = None
                  ) -> dict[int, tuple[int, ...]]:
    """Listing id -> its bid ids best first (ineligible last), listings in ascending order.

    `rank`: bid -> its rep's choice, when preferences count (preferences.py `choices`).
    """
    return _ranked(rules, bids, scores, seed, rank).rankings


@dataclass
class _Ranked:
    """What `_ranked` reads off a round's bids for the later steps."""

    rankings: dict[int, tuple[int, ...]]  # listing id -> its bid ids, best first
    contenders: dict[int, list[Contender]]  # listing id -> its eligible bids, best first
    held: dict[int, int]  # rep id -> the accounts the rep holds (the most any bid says)


def _ranked(rules: RuleSet, bids: Sequence[BidFacts], scores: Mapping[int, ScoreBreakdown],
            seed: int, rank: Mapping[int, int] | None) -> _Ranked:
    """`rank_listings`, listing id -> its eligible bids best first, as the allocation methods
    read them (they come first in its ranking), and what each rep holds.

    One pass over `bids`, in their order, reads everything later steps need of a bid and
    makes its `Contender` there and then, with no intermediate record to sort: with 100,000
    bids, every copy of the round is written to memory outside the processor's caches, and
    read and freed from there. Each listing's bids are then sorted in place by total,
    descending, comparing the totals in millionths with no key made for a bid; each run of
    equal totals is then sorted by the full `ranking_key`, so that the tie-break chain (a
    lottery ticket is a SHA-256) is worked out, and the bid looked up, only for bids whose
    totals tie. Equal totals in millionths are equal totals (totals carry 6 decimals), and
    the full key compares the totals themselves all the same.
    """
    eligible: dict[int, list[Contender]] = defaultdict(list)
    # Ineligible bids in the same form, for their place at the end of the ranking only.
    ineligible: dict[int, list[Contender]] = defaultdict(list)
    held: dict[int, int] = {}
    scale = 10**DECIMALS
    rep_ids: dict[int, int] = {}  # rep id -> the one object that stands for it
    for bid in bids:
        bid_id, rep_id = bid.bid_id, rep_ids.setdefault(bid.rep_id, bid.rep_id)
        score = scores[bid_id]
        if held.get(rep_id, -1) < bid.accounts_held:
            held[rep_id] = bid.accounts_held
        (eligible if score.is_eligible else ineligible)[bid.listing_id].append(
            (bid_id, rep_id, round(score.total * scale), bid.listing_value_yuan))
    # Runs of equal totals, as (listing's list, start, end): sorted by the full key once
    # every listing is sorted, so that only the tied bids are looked up (most rounds of
    # generated or real scores have few, and one tie must not cost a table of every bid).
    ties: list[tuple[list[Contender], int, int]] = []

    def in_order(listed: list[Contender]) -> None:
        """Sort one listing's eligible (or ineligible) bids by total, best first, and note
        its runs of equal totals."""
        listed.sort(key=_points, reverse=True)
        start = 0
        for index in range(1, len(listed) + 1):
            if index < len(listed) and listed[index][2] == listed[start][2]:
                continue
            if index - start > 1:
                ties.append((listed, start, index))
            start = index

    listing_ids = sorted(eligible.keys() | ineligible.keys())
    for listing_id in listing_ids:
        in_order(eligible.get(listing_id, []))
        in_order(ineligible.get(listing_id, []))
    if ties:
        tied = {contender[0] for listed, start, end in ties for contender in listed[start:end]}
        facts = {bid.bid_id: bid for bid in bids if bid.bid_id in tied}
        for listed, start, end in ties:
            listed[start:end] = sorted(listed[start:end], key=lambda contender: (
                ranking_key(rules, facts[contender[0]], scores[contender[0]], seed,
                            None if rank is None else rank[contender[0]])))
    rankings: dict[int, tuple[int, ...]] = {}
    contenders: dict[int, list[Contender]] = {}
    for listing_id in listing_ids:
        best = eligible.get(listing_id, [])
        rankings[listing_id] = tuple(contender[0] for contender in
                                     best + ineligible.get(listing_id, []))
        contenders[listing_id] = best
    return _Ranked(rankings, contenders, held)


def _points(contender: Contender) -> int:
    return contender[2]


def allocate(rules: RuleSet, bids: Sequence[BidFacts], scores: Mapping[int, ScoreBreakdown],
             lottery_seed: int) -> Allocation:
    """Awards for a round by the rules' method; same inputs and seed, same result.

    `scores` must hold a score for every bid (as returned by score_round).
    """
    with cycle_collector_paused():
        return _allocate(rules, bids, scores, lottery_seed)


def _allocate(rules: RuleSet, bids: Sequence[BidFacts], scores: Mapping[int, ScoreBreakdown],
              lottery_seed: int) -> Allocation:
    rank = ({bid_id: choice.rank for bid_id, choice in choices(bids).items()}
            if rules.preferences.count else None)
    ranked = _ranked(rules, bids, scores, lottery_seed, rank)
    rankings, contenders, held = ranked.rankings, ranked.contenders, ranked.held
    flagged = frozenset(listing_id for listing_id, eligible in contenders.items()
                        if len(eligible) < max(rules.min_bids_per_listing, 1))
    limit = {rep_id: max(0, rules.eligibility.capacity_max - count)
             for rep_id, count in held.items()}
    cap = rules.caps.max_awards_per_rep_per_round
    if cap is not None:
        limit = {rep_id: min(room, cap) for rep_id, room in limit.items()}
    contested = {listing_id: eligible for listing_id, eligible in contenders.items()
                 if listing_id not in flagged}
    preferring = PREFERRING_AWARDS.get(rules.allocation) if rank is not None else None
    if preferring is not None:
        chosen = preferring(contested, limit, rank)
    else:
        chosen = ALLOCATION_METHODS[rules.allocation].award(contested, limit)
    awards = {listing_id: chosen.get(listing_id) for listing_id in rankings}
    reasons = explain(rules, rankings, awards, contenders, scores, held, flagged)
    notes: dict[int, Text] = {}
    if rank is not None:
        plain = _allocate(replace(rules, preferences=Preferences()), bids,
                          _without_bonus(scores), lottery_seed)
        facts = {bid.bid_id: bid for bid in bids}
        notes = _preference_effects(awards, plain.awards, facts, rank, reasons)
    total = round(sum(scores[bid_id].total for bid_id in awards.values() if bid_id is not None),
                  DECIMALS) + 0.0
    return Allocation(rules.allocation, rankings, awards, reasons, flagged, total, lottery_seed,
                      notes)


def _without_bonus(scores: Mapping[int, ScoreBreakdown]) -> dict[int, ScoreBreakdown]:
    """The scores with the preference bonus taken out of the totals (where there is one)."""
    plain = {}
    for bid_id, score in scores.items():
        bonus = sum(factor.contribution for factor in score.factors
                    if factor.metric == PREFERENCE_BONUS)
        plain[bid_id] = (replace(score, total=round(score.total - bonus, DECIMALS) + 0.0)
                         if bonus else score)
    return plain


def _preference_effects(awards: Mapping[int, int | None], plain: Mapping[int, int | None],
                        facts: Mapping[int, BidFacts], rank: Mapping[int, int],
                        reasons: dict[int, Text]) -> dict[int, Text]:
    """Where ranked preferences decided an award: the notes of the won bids, and a reason
    added to each bid that would have won with preferences ignored (`plain`), in `reasons`."""
    won: dict[int, list[int]] = defaultdict(list)
    for listing_id, bid_id in awards.items():
        if bid_id is not None:
            won[facts[bid_id].rep_id].append(listing_id)
    notes: dict[int, Text] = {}
    for listing_id, bid_id in awards.items():
        before = plain.get(listing_id)
        if before == bid_id:
            continue
        if bid_id is not None:
            notes[bid_id] = (N_("ranked preferences decided this award: with them ignored, "
                                "another bid would have won it") if before is not None else
                             N_("ranked preferences decided this award: with them ignored, "
                                "nobody would have won it in this round"))
        if before is None:
            continue
        rep_id = facts[before].rep_id
        higher = [other for other in won[rep_id] if rank[awards[other]] < rank[before]]
        effect = (N_("with ranked preferences ignored this bid would have won; you won "
                     "%(listings)s, which you ranked higher", listings=_listing_list(higher))
                  if higher else
                  N_("with ranked preferences ignored this bid would have won; the bidders' "
                     "ranked preferences decided this account"))
        reasons[before] = _listed([reasons[before], effect]) if before in reasons else effect
    return notes


def _listing_list(listing_ids: list[int]) -> Text | str:
    names = [f"#{listing_id}" for listing_id in sorted(listing_ids)]
    if len(names) <= 1:
        return "".join(names)
    return N_("%(listings)s and %(last)s", listings=Joined(names[:-1], separator=COMMA),
              last=names[-1])


def _listed(reasons: list[Text | str]) -> Text | str:
    """Reasons one after another, nested Texts rather than `Joined`, so that two allocations
    with the same reasons compare equal."""
    if len(reasons) == 1:
        return reasons[0]
    return N_("%(first)s; %(rest)s", first=reasons[0], rest=_listed(reasons[1:]))


def _elsewhere(wins: list[int], note: Text | None) -> Text:
    """What else the rep wins in the round, with the method's note when it has one."""
    if not wins:
        return N_("wins nothing else in this round")
    if note is None:
        return N_("wins %(listings)s in this round", listings=_listing_list(wins))
    return N_("wins %(listings)s in this round: %(note)s", listings=_listing_list(wins),
              note=note)


def explain(rules: RuleSet, rankings: Mapping[int, tuple[int, ...]],
            awards: Mapping[int, int | None], contenders: Mapping[int, list[Contender]],
            scores: Mapping[int, ScoreBreakdown], held: Mapping[int, int],
            flagged: frozenset[int]) -> dict[int, Text]:
    """Why each bid that could have expected to win did not (see Allocation.reasons).

    `contenders`: listing -> its eligible bids, best first (they come first in its ranking).
    """
    won: dict[int, list[int]] = defaultdict(list)
    for listing_id, winner in awards.items():
        if winner is not None:
            won[next(rep_id for bid_id, rep_id, _, _ in contenders[listing_id]
                     if bid_id == winner)].append(listing_id)
    method = ALLOCATION_METHODS[rules.allocation]
    # A bid kept out by its rep's capacity or cap has a reason that depends on the rep alone:
    # it is made once per rep and shared by the rep's bids (a round has far fewer reps than
    # bids, and tens of thousands of equal messages are costly to build and to free).
    out_of_room: dict[int, Text | None] = {}
    elsewhere_reason = N_("a better total elsewhere (%(method)s allocation)",
                          method=method.name)
    reasons = {}
    for listing_id, ranking in rankings.items():
        eligible = contenders[listing_id]
        winner = awards.get(listing_id)
        # The eligible bids ranked above the winner (all of them if there is none), then
        # the ineligible ones, ranked last.
        for bid_id, rep_id, _points, _value in eligible:
            if bid_id == winner:
                break
            if listing_id in flagged:
                reasons[bid_id] = _too_few(rules, len(eligible))
                continue
            if rep_id not in out_of_room:
                out_of_room[rep_id] = _out_of_room(rules, method, held[rep_id], won[rep_id])
            if out_of_room[rep_id] is not None:
                reasons[bid_id] = out_of_room[rep_id]
            elif method.below_zero_note is not None and scores[bid_id].total < 0:
                # value_aware: with room left, only a negative score x value keeps it out
                reasons[bid_id] = method.below_zero_note
            else:  # only when optimal could not follow the tie-break chain (optimal_awards)
                reasons[bid_id] = elsewhere_reason
        for bid_id in ranking[len(eligible):]:
            reasons[bid_id] = N_("not eligible: %(reasons)s", reasons=_listed(
                [check.reason for check in scores[bid_id].failed_checks]))
    return reasons


def _too_few(rules: RuleSet, count: int) -> Text:
    """Why the eligible bids of a listing with fewer than min_bids_per_listing did not win."""
    minimum = rules.min_bids_per_listing
    if count == 1:
        return N_("only %(count)d eligible bid; the rules ask for at least %(minimum)d, so "
                  "KA management decides", count=count, minimum=minimum)
    return N_("only %(count)d eligible bids; the rules ask for at least %(minimum)d, "
              "so KA management decides", count=count, minimum=minimum)


def _out_of_room(rules: RuleSet, method: AllocationMethod, held: int,
                 wins: list[int]) -> Text | None:
    """Why a rep holding `held` accounts and winning `wins` can take nothing more in this
    round (capacity, then the per-round cap), or None if the rep still has room."""
    capacity_max = rules.eligibility.capacity_max
    cap = rules.caps.max_awards_per_rep_per_round
    if held + len(wins) >= capacity_max:
        return N_("capacity: would exceed %(maximum)d accounts (holds %(held)d, "
                  "%(elsewhere)s)", maximum=capacity_max, held=held,
                  elsewhere=_elsewhere(wins, method.elsewhere_note))
    if cap is not None and len(wins) >= cap:
        return _cap_reached(cap, _elsewhere(wins, method.elsewhere_note))
    return None


def _cap_reached(cap: int, elsewhere: Text) -> Text:
    """The per-round cap, of one award or of several (Text has no plural forms)."""
    if cap == 1:
        return N_("per-round cap of %(cap)d award reached (%(elsewhere)s)", cap=cap,
                  elsewhere=elsewhere)
    return N_("per-round cap of %(cap)d awards reached (%(elsewhere)s)", cap=cap,
              elsewhere=elsewhere)
