"""Plain-object builders for domain tests: bids and rule texts without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bidhub.domain.facts import BidFacts
from bidhub.domain.rules import RuleSet, parse_rules

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

BASE_RULES = """
name = "test"
tie_break = ["fewest_accounts_held", "earliest_submission"]

[eligibility]
capacity_max = 40
capacity_target = 30

[[factors]]
metric = "win_rate"
weight = 1.0
normaliser = "minmax"

[caps]
max_awards_per_rep_per_round = 2

[allocation]
method = "greedy"
min_bids_per_listing = 1
"""


def rules(text: str = BASE_RULES, **replacements: str) -> RuleSet:
    for old, new in replacements.items():
        text = text.replace(old.replace("__", " = "), new)
    return parse_rules(text)


def bid(bid_id: int, *, rep: int | None = None, listing: int = 1, win_rate: float | None = 0.5,
        held: int = 30, minutes: int = 0, tenure: float = 24.0, incidents: int = 0,
        branch: str = "BJ", listing_branch: str = "BJ", on_leave: bool = False,
        released_months_ago: float | None = None, **metrics: float | None) -> BidFacts:
    return BidFacts(
        bid_id=bid_id, rep_id=rep if rep is not None else bid_id, listing_id=listing,
        submitted_at=T0 + timedelta(minutes=minutes),
        metrics={"win_rate": win_rate, **metrics}, accounts_held=held, tenure_months=tenure,
        open_incidents=incidents, rep_branch=branch, listing_branch=listing_branch,
        is_on_leave=on_leave, months_since_rep_released_account=released_months_ago)
