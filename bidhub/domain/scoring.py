"""Scoring bids: eligibility checks, normalisers, weighted factors and the per-bid breakdown.

How a round is scored (rules/README.md says the same for admins):

- Every bid is checked against the eligibility rules. An ineligible bid is still scored, for
  information, but can never win and does not shape the population of the round.
- Population normalisers (minmax, rank) compare a value with the values of all *eligible*
  bids of the round (every listing, one entry per bid), so a bid's normalised value does not
  depend on which other accounts happened to attract bids from weak or strong reps.
- Missing data (a metric that is None, absent, or not a finite number): the factor takes the
  median normalised value of the eligible bids that do have the metric, or the neutral 0.5
  when none has it. A new rep is scored like a typical peer on what cannot be known yet:
  neither punished (0) nor rewarded (1) by accident. The breakdown marks it `is_imputed`.
- contribution = weight x normalised, rounded to 6 decimals; total = the sum of the rounded
  contributions, rounded to 6 decimals. Rankings compare these rounded totals, so equal
  totals are exactly equal and go to the tie-break chain.
"""

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

# A prepared normaliser: the round has been looked at once; value in, 0..1 out.
Scale = Callable[[float], float]


@dataclass(frozen=True)
class NormaliserParam:
    """A setting a normaliser takes in a [[factors]] entry; `default` None means required.

    `description` completes "the normaliser needs ...".
    """

    name: str
    description: str
    default: float | None = None
    must_be_positive: bool = False


@dataclass(frozen=True)
class Normaliser:
    """A named way to map a raw metric value onto 0..1 (1 is the most of the metric).

    `prepare(population, params)` receives the eligible bids' known values sorted ascending
    and the factor's params (defaults filled in) and returns the scale for one value.
    """

    name: str
    label: str
    description: str
    prepare: Callable[[Sequence[float], Mapping[str, float]], Scale]
    params: tuple[NormaliserParam, ...] = ()
    uses_population: bool = False

    def function(self, value: float, population: Sequence[float],
                 params: Mapping[str, float]) -> float:
        """One value normalised against `population` (any order); for tests and previews."""
        filled = {param.name: param.default for param in self.params
                  if param.default is not None} | dict(params)
        return self.prepare(sorted(population), filled)(value)


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def _minmax(population: Sequence[float], params: Mapping[str, float]) -> Scale:
    if not population or population[0] == population[-1]:
        return lambda value: NEUTRAL
    low, span = population[0], population[-1] - population[0]
    return lambda value: _clip((value - low) / span)


def _cap(population: Sequence[float], params: Mapping[str, float]) -> Scale:
    cap = params["cap"]
    return lambda value: _clip(value / cap)


def _logistic(population: Sequence[float], params: Mapping[str, float]) -> Scale:
    midpoint, steepness = params["midpoint"], params["steepness"]

    def scale(value: float) -> float:
        exponent = -steepness * (value - midpoint)
        if exponent > 700:  # math.exp would overflow; the curve is 0 to every printed digit
            return 0.0
        return 1.0 / (1.0 + math.exp(exponent))

    return scale


def _rank(population: Sequence[float], params: Mapping[str, float]) -> Scale:
    if len(population) <= 1:
        return lambda value: NEUTRAL
    last_place = len(population) - 1

    def scale(value: float) -> float:
        below = bisect_left(population, value)
        equal = bisect_right(population, value) - below
        # Mid-rank: equal values share the average of their places; a value that is not in
        # the population (an ineligible bid) sits half a place above the values below it.
        return _clip((below + (equal - 1) / 2) / last_place)

    return scale


NORMALISERS: dict[str, Normaliser] = {
    normaliser.name: normaliser for normaliser in (
        Normaliser(
            "minmax", "Min-max over the round",
            "(value - lowest) / (highest - lowest), over the round's eligible bids; 0.5 for "
            "everyone when all values are equal",
            _minmax, uses_population=True),
        Normaliser(
            "cap", "Share of a cap",
            "value / cap, clipped to 0..1: reaching the cap counts fully",
            _cap, params=(NormaliserParam("cap", "cap, the value that counts fully (above 0)",
                                          must_be_positive=True),)),
        Normaliser(
            "logistic", "S-curve",
            "1 / (1 + e^(-steepness x (value - midpoint))): 0.5 at the midpoint, "
            "diminishing returns far from it",
            _logistic,
            params=(NormaliserParam("midpoint", "a midpoint, the value that scores 0.5"),
                    NormaliserParam("steepness", "steepness, how sharply the curve rises (above 0)",
                                    default=1.0, must_be_positive=True))),
        Normaliser(
            "rank", "Percentile rank in the round",
            "the bid's percentile rank among the round's eligible bids: 0 lowest, 1 highest, "
            "equal values share the average of their places; 0.5 with one bid",
            _rank, uses_population=True),
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
    is_imputed: bool = False  # no data: the eligible peers' median normalised value stood in


@dataclass(frozen=True)
class BidScore:
    bid_id: int
    is_eligible: bool
    checks: tuple[EligibilityCheck, ...]
    factors: tuple[FactorScore, ...]
    total: float

    @property
    def failed_checks(self) -> tuple[EligibilityCheck, ...]:
        return tuple(check for check in self.checks if not check.passed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe breakdown, as stored with the bid and re-verified later."""
        return {"bid_id": self.bid_id, "is_eligible": self.is_eligible, "total": self.total,
                "checks": [asdict(check) for check in self.checks],
                "factors": [asdict(factor) for factor in self.factors]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BidScore:
        return cls(bid_id=data["bid_id"], is_eligible=data["is_eligible"], total=data["total"],
                   checks=tuple(EligibilityCheck(**check) for check in data["checks"]),
                   factors=tuple(FactorScore(**factor) for factor in data["factors"]))


def _months(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def check_eligibility(rules: RuleSet, bid: BidFacts) -> tuple[EligibilityCheck, ...]:
    """Every eligibility rule that is switched on, applied to one bid, with a plain reason.

    Called when a bid is placed (a failing check refuses it with its reason) and again when
    the round is scored. Capacity is always checked; the others only when the rules set them.
    """
    policy = rules.eligibility
    checks = [EligibilityCheck(
        "capacity", bid.accounts_held < policy.capacity_max,
        f"holds {bid.accounts_held} accounts; the maximum is {policy.capacity_max}")]
    if policy.min_tenure_months:
        checks.append(EligibilityCheck(
            "tenure", bid.tenure_months >= policy.min_tenure_months,
            f"{_months(bid.tenure_months)} months with the company; at least "
            f"{policy.min_tenure_months:g} required"))
    if policy.max_open_incidents is not None:
        checks.append(EligibilityCheck(
            "accountability", bid.open_incidents <= policy.max_open_incidents,
            f"{bid.open_incidents} open accountability incidents; at most "
            f"{policy.max_open_incidents} allowed"))
    if policy.same_branch_only:
        same = bool(bid.rep_branch) and bid.rep_branch == bid.listing_branch
        checks.append(EligibilityCheck(
            "branch", same,
            f"the account and the rep are both in branch {bid.listing_branch}" if same else
            f"the account is in branch {bid.listing_branch}, the rep in "
            f"{bid.rep_branch or 'no branch'}; only accounts of one's own branch may be won"))
    if policy.cooldown_months:
        since = bid.months_since_rep_released_account
        passed = since is None or since >= policy.cooldown_months
        checks.append(EligibilityCheck(
            "cooldown", passed,
            "has not released or lost this account before" if since is None else
            f"released or lost this account {_months(since)} months ago; the cooldown is "
            f"{policy.cooldown_months:g} months"))
    if policy.exclude_on_leave:
        checks.append(EligibilityCheck(
            "on_duty", not bid.is_on_leave,
            "on leave or no longer with the company" if bid.is_on_leave else "on duty"))
    return tuple(checks)


def metric_value(bid: BidFacts, metric: str) -> float | None:
    """The bid's value for `metric`, or None when missing (None, absent, NaN or infinite)."""
    value = bid.metrics.get(metric)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def score_round(rules: RuleSet, bids: Sequence[BidFacts]) -> dict[int, BidScore]:
    """Score every bid of a round, keyed by bid id; the order of `bids` does not matter.

    See the module docstring for the population (eligible bids) and the missing-data rule.
    """
    checks = {bid.bid_id: check_eligibility(rules, bid) for bid in bids}
    eligible_ids = {bid_id for bid_id, bid_checks in checks.items()
                    if all(check.passed for check in bid_checks)}
    per_bid: dict[int, list[FactorScore]] = {bid.bid_id: [] for bid in bids}
    for factor in rules.factors:
        raws = {bid.bid_id: metric_value(bid, factor.metric) for bid in bids}
        population = sorted(value for bid_id, value in raws.items()
                            if value is not None and bid_id in eligible_ids)
        scale = NORMALISERS[factor.normaliser].prepare(population, factor.params)
        stand_in = statistics.median(map(scale, population)) if population else NEUTRAL
        for bid_id, raw in raws.items():
            value = stand_in if raw is None else scale(raw)
            normalised = round(value, DECIMALS) + 0.0
            # "+ 0.0" turns the -0.0 of a penalty times zero into 0.0.
            contribution = round(factor.weight * value, DECIMALS) + 0.0
            per_bid[bid_id].append(FactorScore(factor.metric, raw, normalised, factor.weight,
                                               contribution, raw is None))
    return {
        bid_id: BidScore(bid_id=bid_id, is_eligible=bid_id in eligible_ids,
                         checks=checks[bid_id], factors=tuple(factors),
                         total=round(sum(factor.contribution for factor in factors),
                                     DECIMALS) + 0.0)
        for bid_id, factors in per_bid.items()
    }


@dataclass(frozen=True)
class FactorGap:
    """One factor of a lost bid against the winner; `gap` < 0 is what the factor cost."""

    metric: str
    loser_contribution: float
    winner_contribution: float
    gap: float


def factor_gaps(loser: BidScore, winner: BidScore) -> list[FactorGap]:
    """Per factor, the loser's contribution minus the winner's, the costliest factor first.

    Answers "which factor cost them the account": the gaps add up to the difference of the
    totals. Equal gaps keep the order of the factors in the rules.
    """
    winners = {factor.metric: factor.contribution for factor in winner.factors}
    gaps = [FactorGap(factor.metric, factor.contribution, winners.get(factor.metric, 0.0),
                      round(factor.contribution - winners.get(factor.metric, 0.0), DECIMALS)
                      + 0.0)
            for factor in loser.factors]
    return sorted(gaps, key=lambda gap: gap.gap)
