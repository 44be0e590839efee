"""Scoring bids: eligibility checks, normalised weighted factors, and the per-bid breakdown."""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from bidhub.domain.facts import BidFacts

if TYPE_CHECKING:
    from bidhub.domain.rules import RuleSet

NEUTRAL = 0.5
DECIMALS = 6


Scale = Callable[[float], float]


@dataclass(frozen=True)
class Normaliser:
    """`prepare(population, params)` looks at the round once and returns the scale for a value."""

    name: str
    description: str
    prepare: Callable[[Sequence[float], Mapping[str, float]], Scale]

    def function(self, value: float, population: Sequence[float],
                 params: Mapping[str, float]) -> float:
        return self.prepare(sorted(population), params)(value)


def minmax(population: Sequence[float], params: Mapping[str, float]) -> Scale:
    if not population or population[0] == population[-1]:
        return lambda value: NEUTRAL
    low, span = population[0], population[-1] - population[0]
    return lambda value: min(1.0, max(0.0, (value - low) / span))


def capped(population: Sequence[float], params: Mapping[str, float]) -> Scale:
    cap = params["cap"]
    return lambda value: min(1.0, max(0.0, value / cap))


def logistic(population: Sequence[float], params: Mapping[str, float]) -> Scale:
    steepness, midpoint = params.get("steepness", 1.0), params["midpoint"]

    def scale(value: float) -> float:
        exponent = -steepness * (value - midpoint)
        return 0.0 if exponent > 700 else 1.0 / (1.0 + math.exp(exponent))

    return scale


def rank(population: Sequence[float], params: Mapping[str, float]) -> Scale:
    if len(population) <= 1:
        return lambda value: NEUTRAL
    places = len(population) - 1

    def scale(value: float) -> float:
        below = bisect_left(population, value)
        equal = bisect_right(population, value) - below
        # Ties share the average of the places they occupy.
        return (below + max(0, equal - 1) / 2) / places

    return scale


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
        population = sorted(value for bid in eligible
                            if (value := metric_value(bid, factor.metric)) is not None)
        scale = NORMALISERS[factor.normaliser].prepare(population, factor.params)
        known = [scale(value) for value in population]
        stand_in = statistics.median(known) if known else NEUTRAL
        for bid in bids:
            raw = metric_value(bid, factor.metric)
            if raw is None:
                normalised[bid.bid_id].append((None, stand_in, True))
            else:
                normalised[bid.bid_id].append((raw, scale(raw), False))
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
