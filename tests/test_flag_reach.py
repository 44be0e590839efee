"""The outlier flags skip `outlier` for values near their branch's median: never a different flag."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from bidhub.domain.flags import FlagRules, Spread, outlier
from bidhub.domain.scoring import finite_number
from bidhub.services.flags import BidFacts, _outliers, _reachable


def judged_one_by_one(value, spread: Spread, rules: FlagRules) -> list:
    found = outlier("win_rate", finite_number(value), spread, rules)
    return [] if found is None else [found]


def test_values_near_the_median_get_the_flag_outlier_gives_them():
    rng = random.Random(20261130)
    rules = FlagRules(outlier_mads=3.5, outlier_min_sample=8)
    at = datetime(2026, 11, 30, tzinfo=UTC)
    for _ in range(3000):
        median = rng.choice([0.0, 0.5, 1.0, 1e6, -3.0, rng.uniform(-1e3, 1e3)])
        mad = rng.choice([0.0, 1e-12, 1e-3, 0.25, rng.uniform(0, 100)])
        spread = Spread(median, mad, rng.choice([3, 7, 8, 20]))
        bound = rules.outlier_mads * mad
        values = [median + side * bound * factor for side in (-1, 1)
                  for factor in (0.0, 0.5, 1 - 1e-12, 1.0, 1 + 1e-12, 1.5)]
        values += [median + rng.gauss(0, max(bound, 1e-9) * 2), int(median), True, False,
                   float("nan"), float("inf"), -float("inf"), None, "0.5", [1]]
        reachable = _reachable({7: {"win_rate": spread}}, rules)
        for value in values:
            bid = BidFacts(1, 2, 7, at, {"win_rate": value})
            assert _outliers(bid, reachable, rules) == judged_one_by_one(value, spread, rules), (
                value, spread)


def test_a_bid_of_another_branch_or_none_is_never_an_outlier():
    rules = FlagRules()
    reachable = _reachable({7: {"win_rate": Spread(0.5, 0.1, 20)}}, rules)
    at = datetime(2026, 11, 30, tzinfo=UTC)
    assert _outliers(BidFacts(1, 2, 8, at, {"win_rate": 99.0}), reachable, rules) == []
    assert _outliers(BidFacts(1, 2, None, at, {"win_rate": 99.0}), reachable, rules) == []
    assert _outliers(BidFacts(1, 2, 7, at, {"win_rate": 99.0}), reachable, rules) != []
