"""Scoring bids: eligibility checks, normalised weighted factors, and the per-bid breakdown."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from bidhub.domain.facts import BidFacts

if TYPE_CHECKING:
    from bidhub.domain.rules import RuleSet

NEUTRAL = 0.5
DECIMALS = 6


@dataclass(frozen=True)
class Normaliser:
    name: str
    description: str
    function: Callable[[float, Sequence[float], Mapping[str, float]], float]


def minmax(value: float, population: Sequence[float], params: Mapping[str, float]) -> float:
    low, high = min(population, default=value), max(population, default=value)
    if high == low:
        return NEUTRAL
    return min(1.0, max(0.0, (value - low) / (high - low)))


def capped(value: float, population: Sequence[float], params: Mapping[str, float]) -> float:
    return min(1.0, max(0.0, value / params["cap"]))


def logistic(value: float, population: Sequence[float], params: Mapping[str, float]) -> float:
    exponent = -params.get("steepness", 1.0) * (value - params["midpoint"])
    if exponent > 700:
        return 0.0
    return 1.0 / (1.0 + math.exp(exponent))


def rank(value: float, population: Sequence[float], params: Mapping[str, float]) -> float:
    others = [other for other in population]
    if len(others) <= 1:
        return NEUTRAL
    below = sum(1 for other in others if other < value)
    equal = sum(1 for other in others if other == value)
    # Ties share the average of the places they occupy.
    return (below + max(0, equal - 1) / 2) / (len(others) - 1)


NORMALISERS: dict[str, Normaliser] = {
    normaliser.name: normaliser for normaliser in (
        Normaliser("minmax", "(value - lowest) / (highest - lowest) over the round's eligible "
                   "bidders; 0.5 for everyone when all are equal", minmax),
        Normaliser("cap", "value / cap, clipped to 0..1 (needs `cap`)", capped),
        Normaliser("logistic", "1 / (1 + e^(-steepness x (value - midpoint))) (needs "
                   "`midpoint`; `steepness` defaults to 1)", logistic),
        Normaliser("rank", "the bidder's percentile rank among the round's eligible bidders "
                   "(0 lowest, 1 highest; ties share)", rank),
    )
}


@dataclass(frozen=True)
class EligibilityCheck:
    name: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class FactorScore:
    metric: str
    raw: float | None
    normalised: float
    weight: float
    contribution: float
    is_imputed: bool = False  # the rep had no data: the peers' median stood in


@dataclass(frozen=True)
class BidScore:
    bid_id: int
    is_eligible: bool
    checks: tuple[EligibilityCheck, ...]
    factors: tuple[FactorScore, ...]
    total: float

    def to_dict(self) -> dict[str, Any]:
        return {"bid_id": self.bid_id, "is_eligible": self.is_eligible, "total": self.total,
                "checks": [asdict(check) for check in self.checks],
                "factors": [asdict(factor) for factor in self.factors]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BidScore:
        return cls(bid_id=data["bid_id"], is_eligible=data["is_eligible"], total=data["total"],
                   checks=tuple(EligibilityCheck(**check) for check in data["checks"]),
                   factors=tuple(FactorScore(**factor) for factor in data["factors"]))


def check_eligibility(rules: RuleSet, bid: BidFacts) -> tuple[EligibilityCheck, ...]:
    """Every eligibility rule applied to one bid, passed or not, with a plain reason."""
    policy = rules.eligibility
    checks = [EligibilityCheck(
        "capacity", bid.accounts_held < policy.capacity_max,
        f"holds {bid.accounts_held} accounts; the maximum is {policy.capacity_max}")]
    if policy.min_tenure_months:
        checks.append(EligibilityCheck(
            "tenure", bid.tenure_months >= policy.min_tenure_months,
            f"{bid.tenure_months:.1f} months with the company; at least "
            f"{policy.min_tenure_months:g} required"))
    if policy.max_open_incidents is not None:
        checks.append(EligibilityCheck(
            "accountability", bid.open_incidents <= policy.max_open_incidents,
            f"{bid.open_incidents} open accountability incidents; at most "
            f"{policy.max_open_incidents} allowed"))
    if policy.same_branch_only:
        checks.append(EligibilityCheck(
            "branch", bid.rep_branch == bid.listing_branch,
            f"rep's branch {bid.rep_branch or '—'}, account's branch {bid.listing_branch}"))
    if policy.cooldown_months:
        since = bid.months_since_rep_released_account
        passed = since is None or since >= policy.cooldown_months
        checks.append(EligibilityCheck(
            "cooldown", passed,
            "never released or lost this account" if since is None else
            f"gave up this account {since:.1f} months ago; the cooldown is "
            f"{policy.cooldown_months:g} months"))
    if policy.exclude_on_leave:
        checks.append(EligibilityCheck(
            "on_duty", not bid.is_on_leave,
            "on leave or gone" if bid.is_on_leave else "on duty"))
    return tuple(checks)


def score_round(rules: RuleSet, bids: Sequence[BidFacts]) -> dict[int, BidScore]:
    """Score every bid of a round.

    Population normalisers (minmax, rank) compare a bid with all eligible bids of the round.
    Missing data: a bid whose metric is None gets, for that factor, the median normalised
    value of the eligible bids that have the metric (0.5 when none has it), so a rep without
    history is scored like a typical peer: neither punished nor rewarded.
    """
    checks = {bid.bid_id: check_eligibility(rules, bid) for bid in bids}
    eligible = [bid for bid in bids if all(check.passed for check in checks[bid.bid_id])]
    normalised: dict[int, list[tuple[float | None, float, bool]]] = {bid.bid_id: [] for bid in bids}
    for factor in rules.factors:
        function = NORMALISERS[factor.normaliser].function
        population = sorted(value for bid in eligible
                            if (value := metric_value(bid, factor.metric)) is not None)
        known = [function(value, population, factor.params) for value in population]
        stand_in = statistics.median(known) if known else NEUTRAL
        for bid in bids:
            raw = metric_value(bid, factor.metric)
            if raw is None:
                normalised[bid.bid_id].append((None, stand_in, True))
            else:
                normalised[bid.bid_id].append((raw, function(raw, population, factor.params), False))
    scores = {}
    for bid in bids:
        factors = tuple(
            # "+ 0.0" turns a penalty's -0.0 into 0.0, so nothing shows as "-0.000".
            FactorScore(factor.metric, raw, round(value, DECIMALS), factor.weight,
                        round(factor.weight * value, DECIMALS) + 0.0, imputed)
            for factor, (raw, value, imputed) in zip(rules.factors, normalised[bid.bid_id],
                                                    strict=True))
        scores[bid.bid_id] = BidScore(
            bid_id=bid.bid_id, is_eligible=all(check.passed for check in checks[bid.bid_id]),
            checks=checks[bid.bid_id], factors=factors,
            total=round(sum(factor.contribution for factor in factors), DECIMALS))
    return scores


def metric_value(bid: BidFacts, metric: str) -> float | None:
    value = bid.metrics.get(metric)
    return None if value is None else float(value)


@dataclass(frozen=True)
class FactorGap:
    metric: str
    loser_contribution: float
    winner_contribution: float
    gap: float  # negative: what this factor cost the loser


def factor_gaps(loser: BidScore, winner: BidScore) -> list[FactorGap]:
    """Per factor, the loser's contribution minus the winner's; the costliest first."""
    winners = {factor.metric: factor.contribution for factor in winner.factors}
    gaps = [FactorGap(factor.metric, factor.contribution, winners.get(factor.metric, 0.0),
                      round(factor.contribution - winners.get(factor.metric, 0.0), DECIMALS))
            for factor in loser.factors]
    return sorted(gaps, key=lambda gap: gap.gap)
