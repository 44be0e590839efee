"""The rep's list checks each distinct set of CheckedFacts once: what a check says from them
must be what it says from the whole bid, for every check switched on or off."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime

from bidhub.domain.eligibility import (
    ELIGIBILITY_CHECKS,
    CheckedFacts,
    Eligibility,
    check_bid,
    checks_on,
)
from bidhub.domain.facts import BidFacts

POLICIES = [
    Eligibility(),
    Eligibility(capacity_max=40, min_tenure_months=3, max_open_incidents=2,
                same_branch_only=True, cooldown_months=6, exclude_on_leave=True),
    Eligibility(capacity_max=1, min_tenure_months=0, max_open_incidents=0,
                same_branch_only=False, cooldown_months=0, exclude_on_leave=False),
]


def bids():
    for held, tenure, incidents, rep_branch, on_leave, since in itertools.product(
            (0, 39, 40, 41), (0.0, 2.9999, 3.0, 120.5), (0, 2, 3), ("", "BJ", "SH"),
            (False, True), (None, 0.0, 5.9999, 6.0)):
        yield BidFacts(bid_id=7, rep_id=3, listing_id=11,
                       submitted_at=datetime(2026, 11, 30, tzinfo=UTC), metrics={"m": 1.0},
                       accounts_held=held, tenure_months=tenure, open_incidents=incidents,
                       rep_branch=rep_branch, listing_branch="BJ", is_on_leave=on_leave,
                       months_since_rep_released_account=since, listing_value_yuan=900_000,
                       preference_rank=2)


def test_checked_facts_give_what_the_whole_bid_gives():
    names = {field.name for field in dataclasses.fields(BidFacts)}
    assert set(CheckedFacts._fields) <= names
    for policy in POLICIES:
        rules = checks_on(policy)
        assert [rule.name for rule in rules] == [check.name for check in check_bid(
            policy, next(bids()))]
        for bid in bids():
            checked = CheckedFacts(*(getattr(bid, name) for name in CheckedFacts._fields))
            assert [(rule.name, *rule.check(policy, checked)) for rule in rules] == [
                (check.name, check.passed, check.reason) for check in check_bid(policy, bid)]


def test_every_check_is_in_checks_on_when_switched_on():
    everything = Eligibility(min_tenure_months=1, max_open_incidents=1, same_branch_only=True,
                             cooldown_months=1, exclude_on_leave=True)
    assert [rule.name for rule in checks_on(everything)] == list(ELIGIBILITY_CHECKS)
