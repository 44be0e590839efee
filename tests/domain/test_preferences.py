"""Ranked preferences on hand-built rounds: each mode of [preferences], the bonus's arithmetic,
a capped rep's first choice, unranked bids as the last choice, and the explanations."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bidhub.domain.allocation import allocate
from bidhub.domain.allocation_methods import Contender, greedy_awards
from bidhub.domain.facts import BidFacts
from bidhub.domain.preferences import (
    PREFERENCE_BONUS,
    Choice,
    Preferences,
    bonus_points,
    choices,
    preferring_greedy_awards,
)
from bidhub.domain.rules import RuleError, RuleSet, parse_rules
from bidhub.domain.scoring import score_round

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

RULES = """
tie_break = ["earliest_submission"]

[eligibility]
capacity_max = 40
capacity_target = 30

[[factors]]
metric = "win_rate"
weight = 1.0
normaliser = "cap"
cap = 1

[allocation]
method = "greedy"
"""


def rules(mode: str | None = None, *, bonus: float | None = None, method: str = "greedy",
          cap: int | None = None) -> RuleSet:
    text = RULES.replace('method = "greedy"', f'method = "{method}"')
    if cap is not None:
        text += f"\n[caps]\nmax_awards_per_rep_per_round = {cap}\n"
    if mode is not None:
        text += f'\n[preferences]\nmode = "{mode}"\n'
        if bonus is not None:
            text += f"bonus = {bonus}\n"
    return parse_rules(text)


def bid(bid_id: int, *, rep: int, listing: int, win_rate: float = 0.5,
        rank: int | None = None, minutes: int = 0, held: int = 30) -> BidFacts:
    return BidFacts(
        bid_id=bid_id, rep_id=rep, listing_id=listing,
        submitted_at=T0 + timedelta(minutes=minutes), metrics={"win_rate": win_rate},
        accounts_held=held, tenure_months=24.0, open_incidents=0, rep_branch="BJ",
        listing_branch="BJ", preference_rank=rank)


def run(policy: RuleSet, bids: list[BidFacts], seed: int = 7):
    scores = score_round(policy, bids)
    return scores, allocate(policy, bids, scores, seed)


def unranked(bids: list[BidFacts]) -> list[BidFacts]:
    return [dataclasses.replace(item, preference_rank=None) for item in bids]


# --- the rules ----------------------------------------------------------------------------


def test_rules_without_the_section_ignore_preferences_and_keep_their_hash():
    plain = parse_rules(RULES)
    assert plain.preferences == Preferences() and not plain.preferences.count
    assert rules("ignored").preferences.mode == "ignored"
    assert plain.version_hash != rules("ignored").version_hash  # the section is part of the text
    assert plain.version_hash == parse_rules(RULES + "\n# a comment\n").version_hash
    assert rules("bonus", bonus=0.05).preferences == Preferences("bonus", 0.05)
    assert rules("bonus", bonus=0.05).preferences.bonus_micro == 50_000
    assert rules("tie_break").preferences.bonus_micro == 0


@pytest.mark.parametrize(("section", "path", "words"), [
    ('mode = "first_come"', "preferences.mode", "unknown preference mode 'first_come'"),
    ('mode = "bonus"', "preferences.bonus", "the bonus mode needs the bonus"),
    ('mode = "tie_break"\nbonus = 0.05', "preferences.bonus", 'used only with mode = "bonus"'),
    ('mode = "bonus"\nbonus = 0', "preferences.bonus", "must be at least"),
    ('mode = "bonus"\nbonus = "high"', "preferences.bonus", "expected a number"),
    ('mode = 3', "preferences.mode", "expected a string"),
    ('order = "mine"', "preferences.order", "unknown key 'order'"),
])
def test_a_broken_preferences_section_is_refused_with_its_key(section, path, words):
    with pytest.raises(RuleError) as raised:
        parse_rules(f"{RULES}\n[preferences]\n{section}\n")
    assert any(problem.path == path and words in str(problem.message)
               for problem in raised.value.problems), str(raised.value)


# --- choices and the bonus's arithmetic ---------------------------------------------------


def test_choices_follow_the_ranks_and_an_unranked_bid_is_the_last_choice():
    bids = [bid(1, rep=1, listing=1, rank=2), bid(2, rep=1, listing=2, rank=1),
            bid(3, rep=1, listing=3), bid(4, rep=1, listing=4), bid(5, rep=2, listing=1),
            bid(6, rep=3, listing=1, rank=3), bid(7, rep=3, listing=2, rank=5)]
    assert choices(bids) == {1: Choice(2, 4), 2: Choice(1, 4), 3: Choice(4, 4),
                             4: Choice(4, 4), 5: Choice(1, 1),
                             # ranks left with a gap (a cancelled listing) close up
                             6: Choice(1, 2), 7: Choice(2, 2)}


def test_the_bonus_goes_down_in_equal_steps_from_the_first_choice_to_none_for_the_last():
    assert [bonus_points(50_000, Choice(rank, 3)) for rank in (1, 2, 3)] == [50_000, 25_000, 0]
    assert [bonus_points(50_000, Choice(rank, 4)) for rank in (1, 2, 3, 4)] == [
        50_000, 33_333, 16_666, 0]  # rounded down, in millionths
    assert bonus_points(50_000, Choice(1, 1)) == 50_000  # a rep's only bid is their first choice


# --- ignored ------------------------------------------------------------------------------


def test_ignored_mode_changes_nothing():
    bids = [bid(1, rep=1, listing=1, rank=2), bid(2, rep=2, listing=1, rank=1),
            bid(3, rep=1, listing=2, rank=1, win_rate=0.7), bid(4, rep=2, listing=2, rank=2)]
    policy = rules("ignored", cap=1)
    scores, result = run(policy, bids)
    plain_scores, plain = run(policy, unranked(bids))
    assert scores == plain_scores and result == plain
    assert result.awards == {1: 1, 2: 4}  # greedy in listing order: rep 1's ranks do not count
    assert result.notes == {}


# --- tie_break ----------------------------------------------------------------------------


def test_tie_break_decides_only_exact_ties_and_comes_before_the_chain():
    # rep 2 bid first (earliest_submission would pick it), rep 1 ranked this listing first
    tied = [bid(1, rep=1, listing=1, rank=1, minutes=5), bid(2, rep=2, listing=1, rank=2,
            minutes=0), bid(3, rep=2, listing=2, rank=1), bid(4, rep=1, listing=2, rank=2)]
    _, result = run(rules("tie_break"), tied)
    assert result.rankings[1] == (1, 2)
    _, without = run(rules(), tied)
    assert without.rankings[1] == (2, 1)
    # a millionth of a point more beats any preference
    apart = [dataclasses.replace(tied[1], metrics={"win_rate": 0.500001}), *tied[2:], tied[0]]
    scores, result = run(rules("tie_break"), apart)
    assert result.rankings[1] == (2, 1)
    assert all(not any(factor.metric == PREFERENCE_BONUS for factor in score.factors)
               for score in scores.values())  # tie_break adds nothing to the totals


def test_a_tie_won_on_preference_is_explained_to_both_bids():
    bids = [bid(1, rep=1, listing=1, rank=1, minutes=5), bid(2, rep=2, listing=1, minutes=0),
            bid(3, rep=2, listing=2, win_rate=0.3)]
    _, result = run(rules("tie_break"), bids)
    assert result.awards == {1: 1, 2: 3}
    assert "ranked preferences decided this award" in str(result.notes[1])
    assert "with ranked preferences ignored this bid would have won" in str(result.reasons[2])
    assert "the bidders' ranked preferences decided this account" in str(result.reasons[2])
    assert set(result.notes) == {1}


def test_an_unranked_bid_counts_as_its_reps_last_choice_in_a_tie():
    # rep 1 ranked this listing second of two; rep 2 bid for two listings without ranking
    # (both last, choice 2 of 2) and bid earlier, so the chain decides between them
    bids = [bid(1, rep=1, listing=1, rank=2, minutes=5), bid(2, rep=2, listing=1, minutes=0),
            bid(3, rep=1, listing=2, rank=1, win_rate=0.1),
            bid(4, rep=2, listing=3, win_rate=0.1)]
    _, result = run(rules("tie_break"), bids)
    assert result.rankings[1] == (2, 1)
    # ranked first, rep 1 comes first; a rep's only bid is a first choice too
    first = [dataclasses.replace(bids[0], preference_rank=1), bids[1],
             dataclasses.replace(bids[2], preference_rank=2), bids[3]]
    _, result = run(rules("tie_break"), first)
    assert result.rankings[1] == (1, 2)
    alone = [bid(1, rep=1, listing=1, rank=2, minutes=5), bid(2, rep=2, listing=1, minutes=0),
             bid(3, rep=1, listing=2, rank=1, win_rate=0.1)]
    _, result = run(rules("tie_break"), alone)
    assert result.rankings[1] == (2, 1)


# --- bonus --------------------------------------------------------------------------------


def test_bonus_adds_the_documented_amount_as_its_own_line():
    bids = [bid(1, rep=1, listing=1, rank=1), bid(2, rep=1, listing=2, rank=2),
            bid(3, rep=1, listing=3, rank=3), bid(4, rep=2, listing=1),
            bid(5, rep=3, listing=2), bid(6, rep=3, listing=3)]
    scores, _ = run(rules("bonus", bonus=0.05), bids)
    plain, _ = run(rules(), bids)
    added = {bid_id: round(scores[bid_id].total - plain[bid_id].total, 6) for bid_id in scores}
    # rep 1: first, second, last of three; rep 2: its only bid; rep 3: two unranked bids
    assert added == {1: 0.05, 2: 0.025, 3: 0.0, 4: 0.05, 5: 0.0, 6: 0.0}
    line = scores[2].factors[-1]
    assert (line.metric, line.raw, line.normalised, line.weight, line.contribution) == (
        PREFERENCE_BONUS, 2.0, 0.5, 0.05, 0.025)
    assert scores[2].total == round(sum(factor.contribution for factor in scores[2].factors), 6)


def test_the_bonus_can_turn_a_ranking_and_says_so():
    # rep 2 scores 0.02 more, but rep 1 ranked the listing first and rep 2 last
    bids = [bid(1, rep=1, listing=1, rank=1, win_rate=0.50), bid(2, rep=2, listing=1, rank=2,
            win_rate=0.52), bid(3, rep=2, listing=2, rank=1, win_rate=0.1),
            bid(4, rep=1, listing=3, rank=2, win_rate=0.1)]
    scores, result = run(rules("bonus", bonus=0.05), bids)
    assert scores[1].total == 0.55 and scores[2].total == 0.52
    assert result.awards[1] == 1
    assert "would have won" in str(result.reasons[2])
    assert "ranked preferences decided this award" in str(result.notes[1])
    # the stored breakdown keeps the line, and reads back the same
    assert type(scores[1]).from_dict(scores[1].to_dict()) == scores[1]


# --- across listings: a capped rep gets the first choice --------------------------------


@pytest.mark.parametrize("method", ["greedy", "optimal"])
@pytest.mark.parametrize("mode", ["tie_break", "bonus"])
def test_a_capped_rep_gets_the_listing_they_ranked_first(method, mode):
    # rep 1 is best on both listings but may win one; they ranked listing 2 first. The
    # runners-up are equally good, so the totals do not prefer either allocation.
    bids = [bid(1, rep=1, listing=1, rank=2, win_rate=0.9),
            bid(2, rep=1, listing=2, rank=1, win_rate=0.9),
            bid(3, rep=2, listing=1, win_rate=0.6), bid(4, rep=3, listing=2, win_rate=0.6)]
    policy = rules(mode, bonus=0.05 if mode == "bonus" else None, method=method, cap=1)
    _, result = run(policy, bids)
    assert result.awards == {1: 3, 2: 2}
    _, plain = run(rules(method=method, cap=1), bids)
    if method == "greedy":  # greedy alone takes listings in id order: rep 1 gets listing 1
        assert plain.awards == {1: 1, 2: 4}
        assert "you won #2, which you ranked higher" in str(result.reasons[1])
        assert "per-round cap of 1 award reached" in str(result.reasons[1])
        assert "would have won" in str(result.reasons[4])
        assert set(result.notes) == {2, 3}


def test_without_capacity_pressure_preferences_do_not_move_awards_across_listings():
    bids = [bid(1, rep=1, listing=1, rank=2, win_rate=0.9),
            bid(2, rep=1, listing=2, rank=1, win_rate=0.9),
            bid(3, rep=2, listing=1, win_rate=0.6), bid(4, rep=3, listing=2, win_rate=0.6)]
    _, result = run(rules("tie_break", cap=2), bids)
    assert result.awards == {1: 1, 2: 2} and result.notes == {}


# --- properties ---------------------------------------------------------------------------

ROUNDS = st.lists(st.tuples(st.integers(1, 4), st.integers(1, 5), st.sampled_from(
    [0.1, 0.3, 0.5, 0.5, 0.7]), st.one_of(st.none(), st.integers(1, 5))), min_size=1,
    max_size=14)


def build(rows) -> list[BidFacts]:
    """One bid per (rep, listing); ranks as given (gaps and repeats are closed by choices)."""
    seen, bids = set(), []
    for rep, listing, win_rate, rank in rows:
        if (rep, listing) not in seen:
            seen.add((rep, listing))
            bids.append(bid(len(bids) + 1, rep=rep, listing=listing, win_rate=win_rate,
                            rank=rank, minutes=len(bids) % 3))
    return bids


@settings(max_examples=150, deadline=None, derandomize=True)
@given(ROUNDS, st.sampled_from(["greedy", "optimal"]), st.sampled_from([None, 1, 2]))
def test_in_ignored_mode_results_equal_those_without_ranks(rows, method, cap):
    bids = build(rows)
    policy = rules("ignored", method=method, cap=cap)
    assert run(policy, bids) == run(policy, unranked(bids))
    assert run(policy, bids) == run(rules(method=method, cap=cap), bids)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(ROUNDS, st.sampled_from(["greedy", "optimal"]), st.sampled_from([None, 1, 2]),
       st.sampled_from(["tie_break", "bonus"]))
def test_preferences_keep_the_limits_and_never_award_an_ineligible_or_unknown_bid(
        rows, method, cap, mode):
    bids = build(rows)
    policy = rules(mode, bonus=0.05 if mode == "bonus" else None, method=method, cap=cap)
    _, result = run(policy, bids)
    facts = {item.bid_id: item for item in bids}
    wins: dict[int, int] = {}
    for listing_id, bid_id in result.awards.items():
        if bid_id is not None:
            assert facts[bid_id].listing_id == listing_id
            wins[facts[bid_id].rep_id] = wins.get(facts[bid_id].rep_id, 0) + 1
    assert all(count <= (cap or 10) for count in wins.values())
    _, plain = run(rules(method=method, cap=cap), unranked(bids))
    if method == "optimal":  # preferences order equal totals only: as many awards
        assert result.award_count == plain.award_count
    assert set(result.notes) == {bid_id for listing_id, bid_id in result.awards.items()
                                 if bid_id is not None and plain.awards[listing_id] != bid_id
                                 } or mode == "bonus"


@settings(max_examples=200, deadline=None, derandomize=True)
@given(ROUNDS, st.sampled_from([1, 2, 3]))
def test_deferred_acceptance_without_ranks_is_greedy(rows, room):
    bids = build(rows)
    contested: dict[int, list[Contender]] = {}
    for item in sorted(bids, key=lambda item: (-item.metrics["win_rate"], item.bid_id)):
        contested.setdefault(item.listing_id, []).append(
            (item.bid_id, item.rep_id, round(item.metrics["win_rate"] * 10**6), 0))
    limit = dict.fromkeys({item.rep_id for item in bids}, room)
    same = {item.bid_id: 1 for item in bids}
    assert preferring_greedy_awards(contested, limit, same) == greedy_awards(contested, limit)
