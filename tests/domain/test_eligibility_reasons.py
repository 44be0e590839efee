"""A failed or passed check's reason shows the months on the side of the limit it was decided
on: a refusal never reads "3 months with the company; at least 3 required"."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bidhub.domain.facts import BidFacts
from bidhub.domain.rules import parse_rules
from bidhub.domain.scoring import ScoreBreakdown, score_round

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def rules(eligibility: str):
    return parse_rules(f"[eligibility]\n{eligibility}\n\n[[factors]]\nmetric = \"win_rate\"\n"
                       "weight = 1.0\nnormaliser = \"cap\"\ncap = 1\n")


def bid(tenure: float = 24.0, since: float | None = None) -> BidFacts:
    return BidFacts(bid_id=1, rep_id=1, listing_id=1, submitted_at=T0, metrics={"win_rate": 0.5},
                    accounts_held=30, tenure_months=tenure, open_incidents=0, rep_branch="BJ",
                    listing_branch="BJ", months_since_rep_released_account=since)


def check(eligibility: str, facts: BidFacts, name: str):
    [found] = [item for item in score_round(rules(eligibility), [facts])[1].checks
               if item.name == name]
    return found


@pytest.mark.parametrize(("eligibility", "facts", "name", "passed", "reason"), [
    # 91 days after the hire date: 2.9897 months, one day short of three
    ("min_tenure_months = 3", bid(tenure=2.9897), "tenure", False,
     "2.99 months with the company; at least 3 required"),
    # released 182 days ago: 5.9795 months, the cooldown not over yet
    ("cooldown_months = 6", bid(since=5.9795), "cooldown", False,
     "released or lost this account 5.98 months ago; the cooldown is 6 months"),
    ("min_tenure_months = 3", bid(tenure=2.99996), "tenure", False,
     "2.9999 months with the company; at least 3 required"),
    ("cooldown_months = 6", bid(since=5.99999), "cooldown", False,
     "released or lost this account 5.9999 months ago; the cooldown is 6 months"),
    ("min_tenure_months = 3.25", bid(tenure=3.25), "tenure", True,
     "3.25 months with the company; at least 3.25 required"),
    # values one decimal shows on the right side read as they always did
    ("min_tenure_months = 6", bid(tenure=2.04), "tenure", False,
     "2 months with the company; at least 6 required"),
    ("cooldown_months = 6", bid(since=2.5), "cooldown", False,
     "released or lost this account 2.5 months ago; the cooldown is 6 months"),
    ("cooldown_months = 6", bid(since=6.0), "cooldown", True,
     "released or lost this account 6 months ago; the cooldown is 6 months"),
    ("min_tenure_months = 3", bid(tenure=47.96), "tenure", True,
     "48 months with the company; at least 3 required"),
])
def test_the_months_shown_agree_with_the_check(eligibility, facts, name, passed, reason):
    found = check(eligibility, facts, name)
    assert (found.passed, str(found.reason)) == (passed, reason)


@given(st.integers(0, 1200 * 10**4), st.integers(1, 1200 * 100))
def test_a_refusal_never_shows_the_months_at_or_past_the_limit(ten_thousandths, hundredths):
    tenure, limit = ten_thousandths / 10**4, hundredths / 100
    found = check(f"min_tenure_months = {limit}", bid(tenure=tenure), "tenure")
    shown = float(found.reason.params["months"])
    assert found.passed == (tenure >= limit) == (shown >= limit)


def test_a_breakdown_stored_with_one_decimal_months_still_verifies():
    policy = rules("min_tenure_months = 3\ncooldown_months = 6")
    recomputed = score_round(policy, [bid(tenure=2.9897, since=5.9795)])[1]
    stored = recomputed.to_dict()
    for stored_check, old in zip(stored["checks"][1:3], ("3", "6"), strict=True):
        stored_check["message"]["params"]["months"] = old
        stored_check["reason"] = stored_check["reason"].replace(
            stored_check["reason"].split(" months")[0].split()[-1], old, 1)
    assert stored["checks"][1]["reason"] == "3 months with the company; at least 3 required"
    assert stored["checks"][2]["reason"].startswith("released or lost this account 6 months")
    assert recomputed.same_result(ScoreBreakdown.from_dict(stored))
    english_only = {**stored, "checks": [{key: value for key, value in item.items()
                                          if key != "message"} for item in stored["checks"]]}
    assert recomputed.same_result(ScoreBreakdown.from_dict(english_only))
    stored["checks"][1]["message"]["params"]["months"] = "2.9"
    stored["checks"][1]["reason"] = "2.9 months with the company; at least 3 required"
    assert not recomputed.same_result(ScoreBreakdown.from_dict(stored))
