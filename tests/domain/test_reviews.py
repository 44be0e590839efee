"""Blind review, the pure part: plan_review from reviews, a review's checks, review codes."""

from __future__ import annotations

import random
import re

import pytest

from bidhub.domain.errors import InvalidRequest
from bidhub.domain.reviews import (
    CODE_ALPHABET,
    CODE_LENGTH,
    MAX_NOTE_LENGTH,
    ReviewCriterion,
    ReviewRules,
    check_review,
    is_complete,
    new_review_code,
    plan_review_value,
    review_mean,
)

QUALITY = ReviewCriterion("plan_quality", "经营计划质量", 1, 5)
FEASIBILITY = ReviewCriterion("feasibility", "承诺可行性", 1, 5)
RULES = ReviewRules((QUALITY, FEASIBILITY), min_reviews_per_bid=2)


def test_plan_review_is_the_mean_of_each_reviews_mean_by_hand():
    # Review means: (4 + 3) / 2 = 3.5 and (5 + 5) / 2 = 5; their mean: 4.25.
    reviews = [{"plan_quality": 4, "feasibility": 3}, {"plan_quality": 5, "feasibility": 5}]
    assert plan_review_value(reviews, RULES.criteria) == 4.25
    # Three reviews: 1, 2 and 4.5 -> 7.5 / 3 = 2.5.
    reviews = [{"plan_quality": 1, "feasibility": 1}, {"plan_quality": 2, "feasibility": 2},
               {"plan_quality": 5, "feasibility": 4}]
    assert plan_review_value(reviews, RULES.criteria) == 2.5


def test_every_review_counts_once_whatever_its_number_of_criteria():
    # A mean of means, not of all points: a review is one judgement.
    one = ReviewRules((QUALITY,), 1)
    assert plan_review_value([{"plan_quality": 2}, {"plan_quality": 5}], one.criteria) == 3.5


def test_no_review_is_missing_data_not_zero():
    assert plan_review_value([], RULES.criteria) is None
    # A stored review whose criteria the rules no longer name counts for nothing.
    assert plan_review_value([{"charm": 5}], RULES.criteria) is None


def test_plan_review_is_rounded_like_scores():
    reviews = [{"plan_quality": 1, "feasibility": 2}, {"plan_quality": 2, "feasibility": 2},
               {"plan_quality": 2, "feasibility": 2}]
    assert plan_review_value(reviews, RULES.criteria) == round(5.5 / 3, 6)


def test_a_reviews_mean_ignores_what_is_not_a_number():
    assert review_mean({"plan_quality": 4, "feasibility": None}, RULES.criteria) == 4
    assert review_mean({"plan_quality": True}, RULES.criteria) is None
    assert review_mean({"plan_quality": float("nan")}, RULES.criteria) is None


def test_a_review_scores_every_criterion_within_its_range():
    assert check_review(RULES, {"plan_quality": "4", "feasibility": 1}, " Concrete plan. ") == {
        "plan_quality": 4, "feasibility": 1}
    refused = [({"plan_quality": 6, "feasibility": 1}, "plan_quality"),
               ({"plan_quality": 0, "feasibility": 1}, "plan_quality"),
               ({"plan_quality": -1, "feasibility": 1}, "plan_quality"),
               ({"plan_quality": "3.5", "feasibility": 1}, "plan_quality"),
               ({"plan_quality": 3.5, "feasibility": 1}, "plan_quality"),
               ({"plan_quality": "", "feasibility": 1}, "plan_quality"),
               ({"plan_quality": "9" * 40, "feasibility": 1}, "plan_quality"),
               ({"plan_quality": False, "feasibility": 1}, "plan_quality"),
               # Digits int() cannot read: a superscript, a circled number.
               ({"plan_quality": "²", "feasibility": 1}, "plan_quality"),
               ({"plan_quality": "①", "feasibility": 1}, "plan_quality"),
               ({"plan_quality": "+²", "feasibility": 1}, "plan_quality"),
               ({"plan_quality": 3, "feasibility": "-①"}, "feasibility"),
               ({"plan_quality": 3}, "feasibility"),
               ({"plan_quality": 3, "feasibility": 3, "extra": 2}, "extra")]
    for scores, field in refused:
        with pytest.raises(InvalidRequest) as raised:
            check_review(RULES, scores, "A clear note.")
        assert raised.value.field == field, scores
    # Full-width digits, as a Chinese input method types them, are digits.
    assert check_review(RULES, {"plan_quality": "４", "feasibility": "１"}, "A clear note.") == {
        "plan_quality": 4, "feasibility": 1}


def test_a_review_needs_a_short_written_note():
    for note in ("", "    ", "ok", "\n\t"):
        with pytest.raises(InvalidRequest) as raised:
            check_review(RULES, {"plan_quality": 3, "feasibility": 3}, note)
        assert raised.value.field == "note"
    with pytest.raises(InvalidRequest):
        check_review(RULES, {"plan_quality": 3, "feasibility": 3}, "x" * (MAX_NOTE_LENGTH + 1))
    check_review(RULES, {"plan_quality": 3, "feasibility": 3}, "计划很具体")


def test_review_codes_come_from_the_random_source_and_avoid_those_taken():
    draws = iter([0] * CODE_LENGTH + [1] * CODE_LENGTH)
    first = new_review_code(lambda n: next(draws), taken={"AAAAAA"})
    assert first == "BBBBBB"
    source = random.Random(7)
    codes = {new_review_code(source.randrange, ()) for _ in range(500)}
    assert len(codes) > 490
    assert all(re.fullmatch(f"[{CODE_ALPHABET}]{{{CODE_LENGTH}}}", code) for code in codes)
    assert not set("01IOL") & set(CODE_ALPHABET)


def test_a_review_is_complete_when_every_bid_has_the_minimum():
    assert is_complete([2, 3, 2], 2)
    assert not is_complete([2, 1], 2)
    assert is_complete([], 2)
