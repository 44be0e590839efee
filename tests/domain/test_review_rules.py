"""The rules' [review] section: blind review criteria, the minimum per bid, plan_review."""

from __future__ import annotations

from pathlib import Path

import pytest

from bidhub.domain.reviews import ReviewCriterion, ReviewRules
from bidhub.domain.rules import RuleError, parse_rules
from tests.domain.test_rules import TEXT

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"

REVIEW = """
[review]
min_reviews_per_bid = 2
show_reviewer_names = false

[[review.criteria]]
name = "plan_quality"
label = "经营计划质量"
min = 1
max = 5

[[review.criteria]]
name = "feasibility"
label = "承诺可行性"
min = 1
max = 5
"""
PLAN_REVIEW_FACTOR = """
[[factors]]
metric = "plan_review"
weight = 0.3
"""


def problems(text: str) -> dict[str, str]:
    with pytest.raises(RuleError) as raised:
        parse_rules(text)
    return {problem.path: str(problem.message) for problem in raised.value.problems}


def test_rules_without_review_keep_their_meaning_and_version():
    rules = parse_rules(TEXT)
    assert rules.review is None
    default = (RULES_DIR / "default.toml").read_text(encoding="utf-8")
    assert parse_rules(default).review is None
    # The version hash is over the parsed values, so [review] is only in it when written.
    assert parse_rules(TEXT).version_hash != parse_rules(TEXT + REVIEW).version_hash


def test_a_review_section_is_read_with_its_criteria():
    rules = parse_rules(TEXT + PLAN_REVIEW_FACTOR + REVIEW)
    assert rules.review == ReviewRules(
        (ReviewCriterion("plan_quality", "经营计划质量", 1, 5),
         ReviewCriterion("feasibility", "承诺可行性", 1, 5)), 2, False)
    assert [factor.metric for factor in rules.factors][-1] == "plan_review"


def test_defaults_of_the_review_section():
    rules = parse_rules(TEXT + '[review]\n[[review.criteria]]\nname = "plan"\nmin = 0\nmax = 3\n')
    assert rules.review == ReviewRules((ReviewCriterion("plan", "plan", 0, 3),), 1, False)


def test_plan_review_needs_a_review_section():
    found = problems(TEXT + PLAN_REVIEW_FACTOR)
    assert "factors[3].metric" in found
    assert "[review]" in found["factors[3].metric"]


@pytest.mark.parametrize(("old", "new", "path", "reason"), [
    ("min_reviews_per_bid = 2", "min_reviews_per_bid = 0", "review.min_reviews_per_bid",
     "at least 1"),
    ("min_reviews_per_bid = 2", "min_reviews_per_bid = 2.5", "review.min_reviews_per_bid",
     "whole number"),
    ("show_reviewer_names = false", 'show_reviewer_names = "no"', "review.show_reviewer_names",
     "true or false"),
    ("show_reviewer_names = false", "colour = 1", "review.colour", "unknown key"),
    ('name = "plan_quality"', 'name = "Plan Quality"', "review.criteria[0].name",
     "not a criterion name"),
    ('name = "feasibility"', 'name = "plan_quality"', "review.criteria[1].name", "twice"),
    ("min = 1\nmax = 5\n\n[[review.criteria]]", "min = 5\nmax = 1\n\n[[review.criteria]]",
     "review.criteria[0].max", "above min"),
    ('label = "经营计划质量"', 'label = "   "', "review.criteria[0].label", "label"),
    ("min = 1\nmax = 5\n\n[[review.criteria]]", "min = 1\nmax = 500\n\n[[review.criteria]]",
     "review.criteria[0].max", "at most"),
    ("min = 1\nmax = 5\n\n[[review.criteria]]", "max = 5\n\n[[review.criteria]]",
     "review.criteria[0].min", "missing"),
    ('label = "经营计划质量"', 'label = "经营计划质量"\nweight = 2', "review.criteria[0].weight",
     "unknown key"),
])
def test_a_broken_review_section_names_the_key_and_the_reason(old, new, path, reason):
    text = TEXT + REVIEW.replace(old, new, 1)
    found = problems(text)
    assert path in found, found
    assert reason in found[path]


def test_a_review_section_needs_criteria():
    found = problems(TEXT + "[review]\nmin_reviews_per_bid = 1\n")
    assert "missing" in found["review.criteria"]
    found = problems(TEXT + "[review]\ncriteria = 3\n")
    assert "review.criteria" in found
    found = problems("review = 3\n" + TEXT)
    assert "review" in found


def test_problems_carry_their_line():
    text = TEXT + REVIEW.replace("min_reviews_per_bid = 2", "min_reviews_per_bid = -1")
    with pytest.raises(RuleError) as raised:
        parse_rules(text)
    [problem] = raised.value.problems
    assert problem.line == text.splitlines().index("min_reviews_per_bid = -1") + 1


def test_the_rules_readme_documents_the_review_section():
    readme = (RULES_DIR / "README.md").read_text(encoding="utf-8")
    for key in ("[review]", "min_reviews_per_bid", "show_reviewer_names", "[[review.criteria]]",
                "`plan_review`"):
        assert key in readme, key


def test_the_readme_review_example_parses():
    readme = (RULES_DIR / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### `[review]`"):]
    example = section[section.index("```\n") + 4:section.index("\n```", section.index("```\n"))]
    rules = parse_rules(TEXT + example)
    assert rules.review.min_reviews_per_bid == 2
    assert [criterion.name for criterion in rules.review.criteria] == ["plan_quality",
                                                                       "feasibility"]
