"""Scoring with plain objects: normalisers, eligibility checks, missing data, breakdowns."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bidhub.domain.scoring import (
    NORMALISERS,
    BidScore,
    check_eligibility,
    factor_gaps,
    score_round,
)
from tests.domain.builders import BASE_RULES, bid, rules


def normalise(name, value, population, **params):
    return NORMALISERS[name].function(value, population, params)


def test_minmax_spans_the_population_and_is_neutral_when_all_are_equal():
    assert normalise("minmax", 0.2, [0.2, 0.6, 1.0]) == 0.0
    assert normalise("minmax", 0.6, [0.2, 0.6, 1.0]) == pytest.approx(0.5)
    assert normalise("minmax", 1.0, [0.2, 0.6, 1.0]) == 1.0
    assert normalise("minmax", 0.4, [0.4, 0.4]) == 0.5


def test_cap_divides_and_clips():
    assert normalise("cap", 5, [], cap=10) == 0.5
    assert normalise("cap", 25, [], cap=10) == 1.0
    assert normalise("cap", -3, [], cap=10) == 0.0


def test_logistic_is_one_half_at_the_midpoint_and_rises():
    assert normalise("logistic", 24, [], midpoint=24, steepness=0.2) == pytest.approx(0.5)
    assert normalise("logistic", 36, [], midpoint=24, steepness=0.2) > 0.9
    assert normalise("logistic", -10_000, [], midpoint=0, steepness=1) == 0.0


def test_rank_is_a_percentile_with_shared_ties():
    population = [1, 2, 2, 3]
    assert normalise("rank", 1, population) == 0.0
    assert normalise("rank", 3, population) == 1.0
    assert normalise("rank", 2, population) == pytest.approx(0.5)  # places 1 and 2 of 0..3
    assert normalise("rank", 7, [7]) == 0.5


@pytest.mark.parametrize(("setting", "facts", "check", "expected"), [
    ("", {"held": 39}, "capacity", True),
    ("", {"held": 40}, "capacity", False),
    ("min_tenure_months = 6", {"tenure": 5.9}, "tenure", False),
    ("min_tenure_months = 6", {"tenure": 6.0}, "tenure", True),
    ("max_open_incidents = 1", {"incidents": 2}, "accountability", False),
    ("max_open_incidents = 1", {"incidents": 1}, "accountability", True),
    ("same_branch_only = true", {"branch": "SH"}, "branch", False),
    ("same_branch_only = true", {"branch": "BJ"}, "branch", True),
    ("cooldown_months = 6", {"released_months_ago": 5.5}, "cooldown", False),
    ("cooldown_months = 6", {"released_months_ago": 6.0}, "cooldown", True),
    ("cooldown_months = 6", {"released_months_ago": None}, "cooldown", True),
    ("", {"on_leave": True}, "on_duty", False),
    ("exclude_on_leave = false", {"on_leave": True}, "on_duty", None),
])
def test_each_eligibility_rule(setting, facts, check, expected):
    policy = rules(capacity_target__30=f"capacity_target = 30\n{setting}")
    checks = {item.name: item for item in check_eligibility(policy, bid(1, **facts))}
    if expected is None:
        assert check not in checks
    else:
        assert checks[check].passed is expected
        assert checks[check].reason


def test_capacity_refusal_says_why():
    [capacity, *_] = check_eligibility(rules(), bid(1, held=40))
    assert capacity.reason == "holds 40 accounts; the maximum is 40"


def test_a_rep_without_data_gets_the_peers_median_not_zero_or_one():
    scores = score_round(rules(), [bid(1, win_rate=0.2), bid(2, win_rate=0.6),
                                   bid(3, win_rate=1.0), bid(4, win_rate=None)])
    newcomer = scores[4].factors[0]
    assert newcomer.is_imputed and newcomer.raw is None
    assert newcomer.normalised == pytest.approx(0.5)  # median of 0, 0.5, 1
    assert scores[1].total < scores[4].total < scores[3].total


def test_nobody_having_data_is_neutral():
    scores = score_round(rules(), [bid(1, win_rate=None), bid(2, win_rate=None)])
    assert scores[1].total == scores[2].total == 0.5


def test_ineligible_bids_do_not_shape_the_population():
    scores = score_round(rules(), [bid(1, win_rate=0.4), bid(2, win_rate=0.8),
                                   bid(3, win_rate=0.0, held=40)])
    assert scores[1].factors[0].normalised == 0.0  # 0.4 is the lowest eligible value
    assert not scores[3].is_eligible


def test_penalties_lower_the_score():
    text = BASE_RULES.replace("[caps]", '[[factors]]\nmetric = "open_incidents"\nweight = -0.5\n'
                              'normaliser = "cap"\ncap = 2\n\n[caps]')
    policy = rules(text)
    scores = score_round(policy, [bid(1, open_incidents=0.0), bid(2, open_incidents=2.0)])
    assert scores[1].total - scores[2].total == pytest.approx(0.5)


def test_the_breakdown_round_trips_through_json():
    import json

    score = score_round(rules(), [bid(1, win_rate=0.3), bid(2, win_rate=0.9)])[1]
    assert BidScore.from_dict(json.loads(json.dumps(score.to_dict()))) == score


def test_factor_gaps_name_what_cost_the_loser_most_first():
    text = BASE_RULES.replace("[caps]", '[[factors]]\nmetric = "tenure_months"\nweight = 0.2\n'
                              'normaliser = "minmax"\n\n[caps]')
    scores = score_round(rules(text), [bid(1, win_rate=0.2, tenure_months=30.0),
                                       bid(2, win_rate=0.9, tenure_months=10.0)])
    gaps = factor_gaps(scores[1], scores[2])
    assert [gap.metric for gap in gaps] == ["win_rate", "tenure_months"]
    assert gaps[0].gap == pytest.approx(-1.0) and gaps[1].gap == pytest.approx(0.2)


win_rates = st.floats(min_value=0, max_value=1, allow_nan=False)


@given(st.lists(win_rates, min_size=2, max_size=8), st.floats(0, 1), st.integers(0, 7))
def test_raising_a_positive_weight_metric_never_lowers_that_bids_score(values, extra, index):
    index %= len(values)
    bids = [bid(i + 1, win_rate=value) for i, value in enumerate(values)]
    before = score_round(rules(), bids)[index + 1].total
    raised = [bid(i + 1, win_rate=min(1.0, value + extra) if i == index else value)
              for i, value in enumerate(values)]
    assert score_round(rules(), raised)[index + 1].total >= before - 1e-9


@given(st.lists(st.one_of(st.none(), win_rates), min_size=1, max_size=8))
def test_every_normalised_value_is_between_zero_and_one(values):
    bids = [bid(i + 1, win_rate=value) for i, value in enumerate(values)]
    for score in score_round(rules(), bids).values():
        assert all(0.0 <= factor.normalised <= 1.0 for factor in score.factors)
