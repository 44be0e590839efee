"""Blind review of bid applications (匿名评审): criteria, one review's checks, plan_review, codes."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bidhub.domain.errors import InvalidRequest, refuse_together
from bidhub.domain.text import N_
from bidhub.domain.typed_text import writes_less_than

PLAN_REVIEW = "plan_review"
# plan_review is stored with the scores' inputs rounded like the scores are, so a replay of
# the stored reviews gives exactly the stored value.
DECIMALS = 6
# A reviewer explains their points in a sentence; a word or two says nothing to the rep.
MIN_NOTE_LENGTH = 5
MAX_NOTE_LENGTH = 2000
# Points a criterion may span; a select list with more choices is no longer a judgement.
MAX_POINTS = 100
MAX_CRITERIA = 10
MAX_REVIEWS_PER_BID = 20
# Upper-case letters and digits without the ones people misread (0/O, 1/I/L).
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6


@dataclass(frozen=True)
class ReviewCriterion:
    """One thing reviewers score, in whole points from min_points to max_points."""

    name: str
    label: str
    min_points: int
    max_points: int

    @property
    def points(self) -> range:
        return range(self.min_points, self.max_points + 1)


@dataclass(frozen=True)
class ReviewRules:
    """The rules' [review] section: what reviewers score and how many reviews a bid needs."""

    criteria: tuple[ReviewCriterion, ...]
    min_reviews_per_bid: int
    show_reviewer_names: bool = False


@dataclass(frozen=True)
class PlanReviewMetric:
    """What rules/README.md and the pages say about plan_review, as a metric's entry does.

    It is not a track-record metric (it is read from the round's reviews, not the rep's
    history), so it lives beside the METRICS registry rather than in it.
    """

    name: str = PLAN_REVIEW
    label: str = "Plan review"
    formula: str = ("mean over the bid's submitted reviews of each review's mean criterion "
                    "points")
    window: str = "the round's blind review"
    when_missing: str = "None (no review submitted for the bid)"
    unit: str = "points"
    higher_is_better: bool | None = True


PLAN_REVIEW_METRIC = PlanReviewMetric()


def review_mean(scores: Mapping[str, Any], criteria: Iterable[ReviewCriterion]) -> float | None:
    """The mean points of one review over the rules' criteria it scores; None when none."""
    points = [float(scores[criterion.name]) for criterion in criteria
              if _is_number(scores.get(criterion.name))]
    return sum(points) / len(points) if points else None


def plan_review_value(reviews: Iterable[Mapping[str, Any]],
                      criteria: Collection[ReviewCriterion]) -> float | None:
    """A bid's plan_review: the mean of its reviews' means, rounded; None without a review."""
    means = [mean for scores in reviews if (mean := review_mean(scores, criteria)) is not None]
    if not means:
        return None
    return round(sum(means) / len(means), DECIMALS)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def check_review(rules: ReviewRules, scores: Mapping[str, Any], note: str) -> dict[str, int]:
    """The review's points by criterion, each checked against its range, and a written note.

    Raises InvalidRequest naming the field (the criterion's name, or "note"), or every
    problem at once (InvalidFields); a score for a criterion the rules do not define is
    refused too.
    """
    refusals = criterion_problems(rules, scores)
    known = {criterion.name for criterion in rules.criteria}
    refusals += [InvalidRequest(N_("The round's rules have no criterion %(name)s.",
                                   name=str(name)[:60]), field=str(name)[:60])
                 for name in scores if name not in known]
    try:
        check_note(note)
    except InvalidRequest as refusal:
        refusals.append(refusal)
    refuse_together(refusals)
    return {criterion.name: _whole(scores.get(criterion.name)) for criterion in rules.criteria}


def criterion_problems(rules: ReviewRules, scores: Mapping[str, Any]) -> list[InvalidRequest]:
    """Each criterion's score that is missing, not a whole number or out of its range, with
    the criterion's name as its field."""
    refusals = []
    for criterion in rules.criteria:
        points = _whole(scores.get(criterion.name))
        if points is None:
            refusals.append(InvalidRequest(N_(
                "Score %(criterion)s from %(low)d to %(high)d.", criterion=criterion.label,
                low=criterion.min_points, high=criterion.max_points), field=criterion.name))
        elif points not in criterion.points:
            refusals.append(InvalidRequest(N_(
                "%(criterion)s is scored from %(low)d to %(high)d, not %(points)d.",
                criterion=criterion.label, low=criterion.min_points,
                high=criterion.max_points, points=points), field=criterion.name))
    return refusals


def check_note(note: str) -> str:
    """A review's note, stripped: at least MIN_NOTE_LENGTH characters, at most MAX."""
    text = (note or "").strip()
    if writes_less_than(text, MIN_NOTE_LENGTH):
        raise InvalidRequest(N_("Write a short note on the plan (at least %(count)d "
                                "characters).", count=MIN_NOTE_LENGTH), field="note")
    if len(text) > MAX_NOTE_LENGTH:
        raise InvalidRequest(N_("The note is too long (at most %(count)d characters).",
                                count=MAX_NOTE_LENGTH), field="note")
    return text


def _whole(value: Any) -> int | None:
    """A whole number of points from a number or a form's string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        # isdecimal, not isdigit: ² and ① are digits that int() cannot read.
        if text[:1] in "+-" and text[1:].isdecimal() or text.isdecimal():
            return int(text) if len(text) <= 6 else None
    return None


def new_review_code(random_below: Callable[[int], int], taken: Collection[str]) -> str:
    """A review code not in `taken`, drawn from CODE_ALPHABET with `random_below(n)` (0..n-1).

    The caller passes a cryptographic source (secrets.randbelow): the code must not lead
    back to the bid id or the order bids came in.
    """
    while True:
        code = "".join(CODE_ALPHABET[random_below(len(CODE_ALPHABET))]
                       for _ in range(CODE_LENGTH))
        if code not in taken:
            return code


def is_complete(review_counts: Iterable[int], min_reviews_per_bid: int) -> bool:
    """Every bid has at least the minimum of reviews (a round without bids is complete)."""
    return all(count >= min_reviews_per_bid for count in review_counts)
