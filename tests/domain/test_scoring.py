"""Scoring with plain objects: normalisers, eligibility, missing data, breakdowns, properties."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bidhub.domain.facts import BidFacts
from bidhub.domain.normalisers import NEUTRAL, NORMALISERS
from bidhub.domain.rules import RuleSet, parse_rules
from bidhub.domain.scoring import (
    ScoreBreakdown,
    check_eligibility,
    factor_gaps,
    metric_value,
    score_round,
)

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

RULES = """
[eligibility]
capacity_max = 40
capacity_target = 30

[[factors]]
metric = "win_rate"
weight = 1.0
normaliser = "minmax"
"""

THREE_FACTORS = RULES + """
[[factors]]
metric = "tenure_months"
weight = 0.2
normaliser = "logistic"
midpoint = 24
steepness = 0.2

[[factors]]
metric = "open_incidents"
weight = -0.5
normaliser = "cap"
cap = 2

[[factors]]
metric = "retention"
weight = 0.3
normaliser = "rank"
"""


def rules(extra_eligibility: str = "", text: str = RULES) -> RuleSet:
    return parse_rules(text.replace("capacity_target = 30",
                                    f"capacity_target = 30\n{extra_eligibility}"))


def bid(bid_id: int, *, win_rate: float | None = 0.5, held: int = 30, tenure: float = 24.0,
        incidents: int = 0, branch: str = "BJ", listing_branch: str = "BJ",
        on_leave: bool = False, released_months_ago: float | None = None, listing: int = 1,
        **metrics: float | None) -> BidFacts:
    return BidFacts(
        bid_id=bid_id, rep_id=bid_id, listing_id=listing, submitted_at=T0 + timedelta(minutes=1),
        metrics={"win_rate": win_rate, **metrics}, accounts_held=held, tenure_months=tenure,
        open_incidents=incidents, rep_branch=branch, listing_branch=listing_branch,
        is_on_leave=on_leave, months_since_rep_released_account=released_months_ago)


def normalise(name: str, value: float, population, **params) -> float:
    return NORMALISERS[name].function(value, population, params)


# --- normalisers -----------------------------------------------------------------------


def test_minmax_spans_the_population():
    population = [1.0, 0.2, 0.6]  # any order
    assert normalise("minmax", 0.2, population) == 0.0
    assert normalise("minmax", 0.6, population) == pytest.approx(0.5)
    assert normalise("minmax", 1.0, population) == 1.0


def test_minmax_clips_values_outside_the_population_and_is_neutral_without_spread():
    assert normalise("minmax", -5, [0.2, 1.0]) == 0.0  # an ineligible bid below everyone
    assert normalise("minmax", 9, [0.2, 1.0]) == 1.0
    assert normalise("minmax", 0.4, [0.4, 0.4]) == NEUTRAL
    assert normalise("minmax", 0.4, [0.4]) == NEUTRAL
    assert normalise("minmax", 0.4, []) == NEUTRAL


def documented_minmax(value: float, population) -> float:
    """rules/README.md's formula as written, in plain floats: only where the spread fits."""
    low, high = min(population), max(population)
    if low == high:
        return NEUTRAL
    return min(1.0, max(0.0, (value - low) / (high - low)))


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=500)
@given(st.lists(finite, min_size=1, max_size=8), finite)
def test_minmax_gives_the_documented_formula_to_six_decimals(population, value):
    assume(math.isfinite(max(population) - min(population)))
    assume(math.isfinite(value - min(population)))
    assert round(normalise("minmax", value, population), 6) == round(
        documented_minmax(value, population), 6)


@settings(max_examples=500)
@given(st.lists(finite, min_size=2, max_size=8), finite)
def test_minmax_follows_the_formula_when_the_spread_exceeds_the_float_range(population,
                                                                             value):
    low, high = Fraction(min(population)), Fraction(max(population))
    assume(low != high)
    exact = min(Fraction(1), max(Fraction(0), (Fraction(value) - low) / (high - low)))
    assert abs(normalise("minmax", value, population) - exact) < 1e-12


def test_minmax_of_values_more_than_the_float_range_apart():
    population = [1e308, -1e308, 0.0]
    assert normalise("minmax", 1e308, population) == 1.0
    assert normalise("minmax", -1e308, population) == 0.0
    assert normalise("minmax", 0.0, population) == 0.5
    assert normalise("minmax", 5e307, population) == 0.75
    assert normalise("minmax", -1.7e308, population) == 0.0  # an ineligible bid below all
    scores = score_round(rules(), [bid(1, win_rate=1e308), bid(2, win_rate=-1e308),
                                   bid(3, win_rate=0.0)])
    assert [scores[n].total for n in (1, 2, 3)] == [1.0, 0.0, 0.5]


def test_cap_divides_and_clips():
    assert normalise("cap", 5, [], cap=10) == 0.5
    assert normalise("cap", 10, [], cap=10) == 1.0
    assert normalise("cap", 25, [], cap=10) == 1.0
    assert normalise("cap", -3, [], cap=10) == 0.0


def test_logistic_is_one_half_at_the_midpoint_rises_and_never_overflows():
    assert normalise("logistic", 24, [], midpoint=24, steepness=0.2) == pytest.approx(0.5)
    assert normalise("logistic", 36, [], midpoint=24, steepness=0.2) == pytest.approx(
        1 / (1 + math.exp(-2.4)))
    assert normalise("logistic", 12, [], midpoint=24, steepness=0.2) < 0.1
    assert normalise("logistic", -1e9, [], midpoint=0, steepness=1) == 0.0
    assert normalise("logistic", 1e9, [], midpoint=0, steepness=1) == 1.0
    assert normalise("logistic", 1, [], midpoint=0) == pytest.approx(1 / (1 + math.exp(-1)))


def test_rank_is_a_mid_rank_percentile():
    population = [3, 1, 2, 2]
    assert normalise("rank", 1, population) == 0.0
    assert normalise("rank", 3, population) == 1.0
    assert normalise("rank", 2, population) == pytest.approx(0.5)  # places 1 and 2 of 0..3
    assert normalise("rank", 7, [7]) == NEUTRAL
    assert normalise("rank", 7, []) == NEUTRAL


def test_rank_places_outsiders_between_their_neighbours_within_zero_and_one():
    population = [1, 2, 3]
    assert normalise("rank", 2.5, population) == pytest.approx(0.75)
    assert normalise("rank", 0, population) == 0.0
    assert normalise("rank", 99, population) == 1.0



def test_rank_places_an_ineligible_value_as_the_readme_says():
    population = [1, 2, 2, 3]
    for value, documented in ((2.5, "0.833333"), (1.5, "0.166667"), (2, "0.5"), (0, "0")):
        assert round(normalise("rank", value, population), 6) == float(documented)
        outside = value not in population
        expected = (sum(item < value for item in population) - 0.5) / 3 if outside else 0.5
        assert normalise("rank", value, population) == max(0.0, expected)
    readme = (Path(__file__).parents[2] / "rules" / "README.md").read_text(encoding="utf-8")
    assert ("an ineligible 2.5 gets (3 − 0.5) / 3 = 0.833333, 1.5 gets (1 − 0.5) / 3 = "
            "0.166667, 2 gets 0.5 like the eligible 2s, 0 gets 0") in " ".join(readme.split())

@given(st.sampled_from(sorted(NORMALISERS)),
       st.lists(st.floats(-1e6, 1e6), max_size=12),
       st.floats(-1e6, 1e6), st.floats(0, 1e3))
def test_every_normaliser_maps_into_zero_to_one_and_never_falls_as_the_value_rises(
        name, population, value, rise):
    params = {"cap": 10.0, "midpoint": 5.0, "steepness": 0.5}
    takes = {param.name for param in NORMALISERS[name].params}
    params = {key: item for key, item in params.items() if key in takes}
    low = normalise(name, value, population, **params)
    high = normalise(name, value + rise, population, **params)
    assert 0.0 <= low <= high <= 1.0


# --- eligibility -----------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "facts", "check", "expected"), [
    ("", {"held": 39}, "capacity", True),
    ("", {"held": 40}, "capacity", False),
    ("", {"held": 41}, "capacity", False),
    ("min_tenure_months = 6", {"tenure": 5.9}, "tenure", False),
    ("min_tenure_months = 6", {"tenure": 6.0}, "tenure", True),
    ("max_open_incidents = 1", {"incidents": 2}, "accountability", False),
    ("max_open_incidents = 1", {"incidents": 1}, "accountability", True),
    ("max_open_incidents = 0", {"incidents": 0}, "accountability", True),
    ("same_branch_only = true", {"branch": "SH"}, "branch", False),
    ("same_branch_only = true", {"branch": ""}, "branch", False),
    ("same_branch_only = true", {"branch": "BJ"}, "branch", True),
    ("cooldown_months = 6", {"released_months_ago": 5.5}, "cooldown", False),
    ("cooldown_months = 6", {"released_months_ago": 6.0}, "cooldown", True),
    ("cooldown_months = 6", {"released_months_ago": None}, "cooldown", True),
    ("", {"on_leave": True}, "on_duty", False),
    ("", {"on_leave": False}, "on_duty", True),
])
def test_each_eligibility_rule(setting, facts, check, expected):
    checks = {item.name: item for item in check_eligibility(rules(setting), bid(1, **facts))}
    assert checks[check].passed is expected
    assert checks[check].reason


@pytest.mark.parametrize(("setting", "check"), [
    ("", "tenure"), ("", "accountability"), ("", "branch"), ("", "cooldown"),
    ("exclude_on_leave = false", "on_duty"), ("same_branch_only = false", "branch"),
])
def test_a_rule_that_is_off_is_not_checked(setting, check):
    facts = bid(1, tenure=0, incidents=9, branch="SH", released_months_ago=0.1, on_leave=True)
    assert check not in {item.name for item in check_eligibility(rules(setting), facts)}


@pytest.mark.parametrize(("setting", "facts", "reason"), [
    ("", {"held": 40}, "holds 40 accounts; the maximum is 40"),
    ("min_tenure_months = 6", {"tenure": 2.04},
     "2 months with the company; at least 6 required"),
    ("max_open_incidents = 1", {"incidents": 3},
     "3 open accountability incidents; at most 1 allowed"),
    ("same_branch_only = true", {"branch": "SH"},
     "the account is in branch BJ, the rep in SH; only accounts of one's own branch may be won"),
    ("cooldown_months = 6", {"released_months_ago": 2.5},
     "released or lost this account 2.5 months ago; the cooldown is 6 months"),
    ("", {"on_leave": True}, "on leave or no longer with the company"),
])
def test_a_refusal_says_why_in_plain_words(setting, facts, reason):
    [failed] = [item for item in check_eligibility(rules(setting), bid(1, **facts))
                if not item.passed]
    assert failed.reason == reason


def test_checks_come_in_a_fixed_order():
    policy = rules("min_tenure_months = 1\nmax_open_incidents = 1\nsame_branch_only = true\n"
                   "cooldown_months = 6")
    assert [check.name for check in check_eligibility(policy, bid(1))] == [
        "capacity", "tenure", "accountability", "branch", "cooldown", "on_duty"]


def test_an_ineligible_bid_is_scored_but_marked():
    scores = score_round(rules(), [bid(1, held=40), bid(2)])
    assert not scores[1].is_eligible and scores[2].is_eligible
    assert [check.name for check in scores[1].failed_checks] == ["capacity"]


# --- scoring and the missing-data rule -------------------------------------------------


def test_the_total_is_the_sum_of_weighted_normalised_factors():
    policy = rules(text=THREE_FACTORS)
    scores = score_round(policy, [
        bid(1, win_rate=0.2, tenure_months=24.0, open_incidents=1.0, retention=0.9),
        bid(2, win_rate=0.6, tenure_months=36.0, open_incidents=0.0, retention=0.7),
    ])
    first = scores[1]
    assert [factor.metric for factor in first.factors] == [
        "win_rate", "tenure_months", "open_incidents", "retention"]
    assert [factor.normalised for factor in first.factors] == [0.0, 0.5, 0.5, 1.0]
    assert [factor.contribution for factor in first.factors] == [0.0, 0.1, -0.25, 0.3]
    assert first.total == pytest.approx(0.15)
    for score in scores.values():
        assert score.total == round(sum(f.contribution for f in score.factors), 6)
        for factor in score.factors:
            assert factor.contribution == round(factor.weight * factor.normalised, 6) or \
                abs(factor.contribution - factor.weight * factor.normalised) < 1e-6


def test_a_weight_zero_factor_shows_its_normalised_value_and_counts_nothing():
    policy = parse_rules(RULES + """
[[factors]]
metric = "retention"
weight = 0
normaliser = "minmax"
""")
    scores = score_round(policy, [bid(1, win_rate=0.2, retention=0.5),
                                  bid(2, win_rate=0.8, retention=0.9),
                                  bid(3, win_rate=0.5, retention=0.8),
                                  bid(4, win_rate=0.5, retention=None)])
    shown = {bid_id: score.factors[1] for bid_id, score in scores.items()}
    assert [shown[n].normalised for n in (1, 2, 3, 4)] == [0.0, 1.0, 0.75, 0.75]
    assert shown[4].is_imputed and shown[3].raw == 0.8
    assert {factor.contribution for factor in shown.values()} == {0.0}
    assert [scores[n].total for n in (1, 2, 3, 4)] == [0.0, 1.0, 0.5, 0.5]


def test_no_negative_zero_shows_in_a_breakdown():
    policy = rules(text=THREE_FACTORS)
    scores = score_round(policy, [bid(1, open_incidents=0.0), bid(2, open_incidents=0.0)])
    incidents = scores[1].factors[2]
    assert incidents.contribution == 0.0 and math.copysign(1, incidents.contribution) == 1


def test_a_rep_without_data_gets_the_peers_median_not_zero_or_one():
    scores = score_round(rules(), [bid(1, win_rate=0.2), bid(2, win_rate=0.6),
                                   bid(3, win_rate=1.0), bid(4, win_rate=None)])
    newcomer = scores[4].factors[0]
    assert newcomer.is_imputed and newcomer.raw is None
    assert newcomer.normalised == pytest.approx(0.5)  # median of 0, 0.5, 1
    assert scores[1].total < scores[4].total < scores[3].total
    assert not scores[1].factors[0].is_imputed


def test_the_median_stand_in_follows_the_normaliser():
    policy = rules(text=RULES.replace('normaliser = "minmax"', 'normaliser = "cap"\ncap = 2'))
    scores = score_round(policy, [bid(1, win_rate=0.2), bid(2, win_rate=0.4),
                                  bid(3, win_rate=1.0), bid(4, win_rate=None)])
    assert scores[4].factors[0].normalised == pytest.approx(0.2)  # median of .1, .2, .5


def test_a_missing_penalty_metric_is_the_median_penalty_too():
    policy = rules(text=THREE_FACTORS)
    scores = score_round(policy, [bid(1, open_incidents=0.0), bid(2, open_incidents=2.0),
                                  bid(3, open_incidents=1.0), bid(4)])
    assert scores[4].factors[2].normalised == pytest.approx(0.5)
    assert scores[4].factors[2].contribution == pytest.approx(-0.25)


@pytest.mark.parametrize("missing", [None, float("nan"), float("inf"), "absent"])
def test_none_nan_infinite_and_absent_values_are_all_missing(missing):
    metrics = {} if missing == "absent" else {"win_rate": missing}
    facts = BidFacts(bid_id=9, rep_id=9, listing_id=1, submitted_at=T0, metrics=metrics,
                     accounts_held=30, tenure_months=24, open_incidents=0, rep_branch="BJ",
                     listing_branch="BJ")
    assert metric_value(facts, "win_rate") is None
    scores = score_round(rules(), [bid(1, win_rate=0.0), bid(2, win_rate=1.0), facts])
    assert scores[9].factors[0].is_imputed and scores[9].factors[0].normalised == 0.5
    json.dumps(scores[9].to_dict(), allow_nan=False)


@pytest.mark.parametrize("stored", [
    True, False, "0.7", "abc", "nan", b"1", [0.7], {"value": 0.7},
    pytest.param(10**400, id="int-beyond-float"), pytest.param(-(10**400), id="-int-beyond-float"),
])
def test_a_value_that_is_not_a_finite_number_is_no_data(stored):
    facts = bid(9, win_rate=stored)
    assert metric_value(facts, "win_rate") is None
    scores = score_round(rules(), [bid(1, win_rate=0.0), bid(2, win_rate=1.0), facts])
    assert scores[9].factors[0].is_imputed and scores[9].factors[0].raw is None
    assert scores[9].factors[0].normalised == 0.5


@pytest.mark.parametrize(("stored", "read"), [(3, 3.0), (0, 0.0), (0.25, 0.25), (-2, -2.0),
                                              (10**20, 1e20)])
def test_whole_and_decimal_numbers_are_data(stored, read):
    value = metric_value(bid(9, win_rate=stored), "win_rate")
    assert value == read and type(value) is float


def test_nobody_having_data_is_neutral():
    scores = score_round(rules(), [bid(1, win_rate=None), bid(2, win_rate=None)])
    assert scores[1].total == scores[2].total == NEUTRAL


def test_ineligible_bids_do_not_shape_the_population_or_the_median():
    scores = score_round(rules(), [bid(1, win_rate=0.4), bid(2, win_rate=0.8),
                                   bid(3, win_rate=0.0, held=40), bid(4, win_rate=1.0,
                                                                      on_leave=True),
                                   bid(5, win_rate=None)])
    assert scores[1].factors[0].normalised == 0.0  # 0.4 is the lowest eligible value
    assert scores[2].factors[0].normalised == 1.0
    assert scores[3].factors[0].normalised == 0.0  # clipped, informational
    assert scores[5].factors[0].normalised == 0.5  # median of the eligible 0 and 1


def test_the_population_is_the_whole_round_not_the_listing():
    scores = score_round(rules(), [bid(1, listing=1, win_rate=0.5),
                                   bid(2, listing=2, win_rate=0.0),
                                   bid(3, listing=2, win_rate=1.0)])
    assert scores[1].factors[0].normalised == 0.5


def test_the_breakdown_round_trips_through_json():
    policy = rules("cooldown_months = 6", text=THREE_FACTORS)
    scores = score_round(policy, [bid(1, win_rate=0.3, retention=None),
                                  bid(2, win_rate=0.9, held=40, retention=0.5)])
    for score in scores.values():
        stored = json.loads(json.dumps(score.to_dict(), allow_nan=False))
        assert ScoreBreakdown.from_dict(stored) == score
        assert ScoreBreakdown.from_dict(stored).to_dict() == score.to_dict()


def test_factor_gaps_name_what_cost_the_loser_most_first_and_add_up():
    policy = rules(text=THREE_FACTORS)
    scores = score_round(policy, [
        bid(1, win_rate=0.2, tenure_months=30.0, open_incidents=0.0, retention=0.5),
        bid(2, win_rate=0.9, tenure_months=10.0, open_incidents=1.0, retention=0.5)])
    gaps = factor_gaps(scores[1], scores[2])
    assert [gap.metric for gap in gaps] == [
        "win_rate", "retention", "tenure_months", "open_incidents"]
    assert gaps[0].gap == pytest.approx(-1.0)
    assert gaps[-1].gap == pytest.approx(0.25)
    assert gaps[1].gap == 0.0  # equal gaps keep the rules' order
    assert sum(gap.gap for gap in gaps) == pytest.approx(scores[1].total - scores[2].total)
    assert gaps[0].loser_contribution == 0.0 and gaps[0].winner_contribution == 1.0


# --- properties ------------------------------------------------------------------------

values = st.floats(min_value=0, max_value=1, allow_nan=False)
maybe_values = st.one_of(st.none(), values)


@st.composite
def rounds(draw, size=st.integers(1, 8)):
    count = draw(size)
    return [bid(index + 1, win_rate=draw(maybe_values), held=draw(st.sampled_from([30, 40])),
                tenure_months=draw(st.one_of(st.none(), st.floats(0, 120))),
                open_incidents=draw(st.one_of(st.none(), st.integers(0, 4).map(float))),
                retention=draw(maybe_values), listing=draw(st.integers(1, 3)))
            for index in range(count)]


@settings(max_examples=60, deadline=None)
@given(rounds(), st.randoms(use_true_random=False))
def test_scores_do_not_depend_on_the_order_of_the_bids(bids, shuffler):
    policy = rules(text=THREE_FACTORS)
    shuffled = list(bids)
    shuffler.shuffle(shuffled)
    assert score_round(policy, shuffled) == score_round(policy, bids)


@settings(max_examples=80, deadline=None)
@given(rounds(st.integers(2, 8)), st.sampled_from(["win_rate", "tenure_months", "retention"]),
       st.floats(0, 50), st.data())
def test_raising_a_positive_weight_metric_never_lowers_that_bids_score(bids, metric, rise,
                                                                       data):
    policy = rules(text=THREE_FACTORS)
    index = data.draw(st.integers(0, len(bids) - 1))
    target = bids[index]
    ceiling = 1.0 if metric != "tenure_months" else 1e6
    before = target.metrics.get(metric)
    if before is None:  # a value the metric can take: a rate is at most 1
        before = data.draw(st.floats(0, min(50.0, ceiling)))
    raised = replace(target, metrics={**target.metrics, metric: min(ceiling, before + rise)})
    lowered = replace(target, metrics={**target.metrics, metric: before})
    others = bids[:index] + bids[index + 1:]
    low = score_round(policy, [*others, lowered])[target.bid_id].total
    high = score_round(policy, [*others, raised])[target.bid_id].total
    assert high >= low


@settings(max_examples=60, deadline=None)
@given(rounds(), st.integers(0, 4))
def test_raising_a_penalised_metric_never_raises_that_bids_score(bids, rise):
    policy = rules(text=THREE_FACTORS)
    target = bids[0]
    before = target.metrics.get("open_incidents") or 0.0
    def with_incidents(count):  # noqa: E306
        return replace(target, metrics={**target.metrics, "open_incidents": count})
    low = score_round(policy, [with_incidents(before), *bids[1:]])[target.bid_id].total
    high = score_round(policy, [with_incidents(before + rise), *bids[1:]])[target.bid_id].total
    assert high <= low


@settings(max_examples=60, deadline=None)
@given(rounds())
def test_every_normalised_value_is_between_zero_and_one_and_totals_are_bounded(bids):
    policy = rules(text=THREE_FACTORS)
    for score in score_round(policy, bids).values():
        assert all(0.0 <= factor.normalised <= 1.0 for factor in score.factors)
        assert -0.5 - 1e-6 <= score.total <= 1.5 + 1e-6


def test_scoring_a_large_round_is_quick_enough():
    rng = random.Random(5)
    bids = [bid(index, win_rate=rng.random(), tenure_months=rng.uniform(0, 99),
                open_incidents=float(rng.randint(0, 3)), retention=rng.random(),
                listing=index % 50) for index in range(1, 2001)]
    scores = score_round(rules(text=THREE_FACTORS), bids)
    assert len(scores) == 2000


def test_a_contribution_weighs_the_normalised_value_before_rounding_as_the_readme_says():
    text = ('[[factors]]\nmetric = "win_rate"\nweight = 2.5\nnormaliser = "minmax"\n')
    scores = score_round(parse_rules(text), [bid(1, win_rate=0.0), bid(2, win_rate=0.2),
                                             bid(3, win_rate=0.7), bid(4, win_rate=None)])
    shown = scores[2].factors[0]
    assert (shown.normalised, shown.contribution) == (0.285714, 0.714286)
    assert round(shown.weight * shown.normalised, 6) == 0.714285
    stand_in = scores[4].factors[0]  # the median of 0, 2/7 and 1, before rounding
    assert (stand_in.is_imputed, stand_in.contribution) == (True, 0.714286)
    readme = " ".join((Path(__file__).parents[2] / "rules" / "README.md").read_text(
        encoding="utf-8").split())
    assert ("shows normalised 0.285714 (2/7) and contribution 0.714286 (2.5 × 2/7), not "
            "0.714285 (2.5 × 0.285714)") in readme
