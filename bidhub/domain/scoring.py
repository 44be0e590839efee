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
- contribution = weight x normalised, rounded to 6 decimals, the normalised value taken
  before it is rounded for the breakdown (the missing-data median too); total = the sum of
  the rounded contributions, rounded to 6 decimals. Rankings compare these rounded totals, so
  equal totals are exactly equal and go to the tie-break chain.
- Ranked preferences in bonus mode (rules [preferences]) add one more line, PREFERENCE_BONUS:
  raw is the bid's choice among its rep's bids, the contribution the bonus in exact
  millionths (preferences.py `bonus_points`).
"""

from __future__ import annotations

import gc
import math
import statistics
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from bidhub.domain.eligibility import EligibilityCheck, check_bid, legacy_months
from bidhub.domain.facts import BidFacts
from bidhub.domain.messages import from_data, to_data
from bidhub.domain.normalisers import NEUTRAL, NORMALISERS
from bidhub.domain.preferences import PREFERENCE_BONUS, bonus_points, choices
from bidhub.domain.rules import RuleSet
from bidhub.domain.text import Text

DECIMALS = 6


@dataclass(frozen=True, slots=True)
class FactorScore:
    metric: str
    raw: float | None
    normalised: float
    weight: float
    contribution: float
    is_imputed: bool = False  # no data: the eligible peers' median normalised value stood in


@dataclass(frozen=True, slots=True)
class ScoreBreakdown:
    """One bid's eligibility checks and factor contributions; stored as the JSON breakdown of
    the `BidScore` row (bidhub.models)."""

    bid_id: int
    is_eligible: bool
    checks: tuple[EligibilityCheck, ...]
    factors: tuple[FactorScore, ...]
    total: float

    @property
    def failed_checks(self) -> tuple[EligibilityCheck, ...]:
        return tuple(check for check in self.checks if not check.passed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe breakdown, as stored with the bid and re-verified later.

        A check's `reason` is stored in English, as it always was, and its msgid with
        parameters under `message`, so that it can be shown in the reader's language.
        """
        return {"bid_id": self.bid_id, "is_eligible": self.is_eligible, "total": self.total,
                "checks": [_check_to_dict(check) for check in self.checks],
                "factors": [asdict(factor) for factor in self.factors]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreBreakdown:
        return cls(bid_id=data["bid_id"], is_eligible=data["is_eligible"], total=data["total"],
                   checks=tuple(_check_from_dict(check) for check in data["checks"]),
                   factors=tuple(FactorScore(**factor) for factor in data["factors"]))

    def same_result(self, other: ScoreBreakdown) -> bool:
        """The same checks, reasons and factors as `other`, as stored.

        What `rescore --verify` asks of a stored breakdown. A check stored before reasons were
        translatable has its English only: that check is compared in English. A check stored
        before its months kept to the check's side of the limit ("6 months ...; at least 6
        required" for 5.96) is compared in that one-decimal form too.
        """
        mine, theirs = self.to_dict(), other.to_dict()
        for index, (check, other_check) in enumerate(
                zip(mine["checks"], theirs["checks"], strict=False)):
            legacy = _with_legacy_months(check)
            if "message" not in check or "message" not in other_check:
                for form in (check, other_check, legacy or {}):
                    form.pop("message", None)
            if check != other_check and legacy == other_check:
                mine["checks"][index] = other_check
        return mine == theirs


def _check_to_dict(check: EligibilityCheck) -> dict[str, Any]:
    stored = {"name": check.name, "passed": check.passed, "reason": str(check.reason)}
    if not isinstance(check.reason, str):
        stored["message"] = to_data(check.reason)
    return stored


def _with_legacy_months(check: dict[str, Any]) -> dict[str, Any] | None:
    """A stored check as breakdowns gave it before months in reasons kept to their check's
    side of the limit (`legacy_months`): a check stored then still verifies. None when the
    check shows no months."""
    reason = _check_from_dict(check).reason
    if not isinstance(reason, Text) or not isinstance(reason.params.get("months"), str):
        return None
    legacy = Text(reason.msgid, {**reason.params,
                                 "months": legacy_months(reason.params["months"])})
    return {**check, "reason": str(legacy), "message": to_data(legacy)}


def _check_from_dict(data: Mapping[str, Any]) -> EligibilityCheck:
    reason = from_data(data["message"]) if "message" in data else data["reason"]
    return EligibilityCheck(data["name"], data["passed"], reason)


def check_eligibility(rules: RuleSet, bid: BidFacts) -> tuple[EligibilityCheck, ...]:
    """Every eligibility check the rules switch on, applied to one bid, with a plain reason.

    Called when a bid is placed (a failing check refuses it with its reason) and again when
    the round is scored. The checks are the entries of ELIGIBILITY_CHECKS (eligibility.py).
    """
    return check_bid(rules.eligibility, bid)


def metric_value(bid: BidFacts, metric: str) -> float | None:
    """The bid's value for `metric` as a float, or None when it is no data: absent, or not a
    finite number (`finite_number`)."""
    return finite_number(bid.metrics.get(metric))


def finite_number(value: object) -> float | None:
    """`value` as a float if it is a finite number, else None. Only ints and floats are
    numbers here: None, NaN, infinities, ints beyond the float range, booleans (True is no
    win rate of 1) and strings ("0.7") are not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        value = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return value if math.isfinite(value) else None


@contextmanager
def cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a round is scored or allocated.

    Both build hundreds of thousands of small objects and no reference cycles (reference
    counting frees them all), but every so often the collector walks the whole heap, which
    holds the round itself: with 50,000 bids those passes took about 80% of score_round, and
    they made the cost per bid grow with the size of the round. The collector is one per
    process, so pauses are counted: it comes back when the last pause in any thread ends, and
    only if it was on when the first began.
    """
    global _pauses, _collector_was_enabled
    with _pause_lock:
        if _pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _collector_was_enabled:
                gc.enable()


_pause_lock = threading.Lock()
_pauses = 0
_collector_was_enabled = True


def score_round(rules: RuleSet, bids: Sequence[BidFacts]) -> dict[int, ScoreBreakdown]:
    """Score every bid of a round, keyed by bid id; the order of `bids` does not matter.

    See the module docstring for the population (eligible bids) and the missing-data rule.
    """
    with cycle_collector_paused():
        return _score_round(rules, bids)


def _score_round(rules: RuleSet, bids: Sequence[BidFacts]) -> dict[int, ScoreBreakdown]:
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
    if bonus := rules.preferences.bonus_micro:
        # The rep's ranked preference, a line of its own: raw is the choice (1 = first).
        for bid_id, choice in choices(bids).items():
            points = bonus_points(bonus, choice)
            per_bid[bid_id].append(FactorScore(
                PREFERENCE_BONUS, float(choice.rank), round(points / bonus, DECIMALS) + 0.0,
                rules.preferences.bonus, round(points / 10**DECIMALS, DECIMALS) + 0.0))
    return {
        bid_id: ScoreBreakdown(bid_id=bid_id, is_eligible=bid_id in eligible_ids,
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


def factor_gaps(loser: ScoreBreakdown, winner: ScoreBreakdown) -> list[FactorGap]:
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
