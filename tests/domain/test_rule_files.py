"""Rule files: every shipped file parses; broken ones name the key, the line and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from bidhub.domain.rules import RuleError, canonical_hash, parse_rules
from tests.domain.builders import BASE_RULES

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"


@pytest.mark.parametrize("path", sorted(RULES_DIR.glob("**/*.toml")), ids=lambda path: path.name)
def test_every_shipped_rule_file_parses(path):
    rules = parse_rules(path.read_text(encoding="utf-8"))
    assert rules.factors and len(rules.version_hash) == 64


BROKEN = [
    ("capacity_max = 40", "capacity_max = 25", "eligibility.capacity_max",
     "capacity_max (25) is below capacity_target (30)"),
    ('metric = "win_rate"', 'metric = "win_rat"', "factors[0].metric", "unknown metric 'win_rat'"),
    ("weight = 1.0", 'weight = "high"', "factors[0].weight", "expected a number, got a string"),
    ("weight = 1.0", "weight = true", "factors[0].weight", "expected a number, got true/false"),
    ("weight = 1.0", "weight = 0", "factors", "all weights are zero"),
    ('normaliser = "minmax"', 'normaliser = "zscore"', "factors[0].normaliser",
     "unknown normaliser 'zscore'"),
    ('normaliser = "minmax"', 'normaliser = "cap"', "factors[0].cap", "needs cap"),
    ('normaliser = "minmax"', 'normaliser = "logistic"', "factors[0].midpoint", "needs a midpoint"),
    ("capacity_target = 30", "capacity_target = 30\ncapacity_min = 3", "eligibility.capacity_min",
     "unknown key 'capacity_min'"),
    ('method = "greedy"', 'method = "fastest"', "allocation.method",
     "must be one of greedy, optimal"),
    ("min_bids_per_listing = 1", "min_bids_per_listing = -1", "allocation.min_bids_per_listing",
     "must be at least 0"),
    ("max_awards_per_rep_per_round = 2", "max_awards_per_rep_per_round = 1.5",
     "caps.max_awards_per_rep_per_round", "expected a whole number"),
    ('tie_break = ["fewest_accounts_held", "earliest_submission"]',
     'tie_break = ["coin_toss"]', "tie_break", "unknown tie-break 'coin_toss'"),
    ('tie_break = ["fewest_accounts_held", "earliest_submission"]',
     'tie_break = ["lottery", "lottery"]', "tie_break", "listed twice"),
    ('name = "test"', 'name = "test"\ncolour = "blue"', "colour", "unknown key 'colour'"),
]


@pytest.mark.parametrize(("old", "new", "path", "message"), BROKEN,
                         ids=[case[2] + ":" + case[3][:20] for case in BROKEN])
def test_a_broken_rule_file_names_the_key_and_the_reason(old, new, path, message):
    assert old in BASE_RULES
    with pytest.raises(RuleError) as raised:
        parse_rules(BASE_RULES.replace(old, new))
    problems = {problem.path: problem for problem in raised.value.problems}
    assert path in problems, raised.value.problems
    assert message in problems[path].message


def test_lines_are_reported_where_the_key_is_written():
    text = BASE_RULES.replace("capacity_max = 40", "capacity_max = 25")
    with pytest.raises(RuleError) as raised:
        parse_rules(text)
    [problem] = raised.value.problems
    assert text.splitlines()[problem.line - 1].strip() == "capacity_max = 25"


def test_all_problems_are_reported_at_once():
    text = (BASE_RULES.replace("capacity_max = 40", "capacity_max = 25")
            .replace('metric = "win_rate"', 'metric = "nope"')
            .replace('method = "greedy"', 'method = "other"'))
    with pytest.raises(RuleError) as raised:
        parse_rules(text)
    assert len(raised.value.problems) == 3
    assert str(raised.value).count("\n") == 2


def test_a_syntax_error_gives_its_line():
    with pytest.raises(RuleError, match="line 3"):
        parse_rules('name = "x"\n[eligibility]\ncapacity_max = = 40\n')


def test_the_version_hash_ignores_comments_and_layout_but_not_values():
    commented = "# a comment\n" + BASE_RULES.replace("weight = 1.0", "weight   =   1.0  # why")
    assert canonical_hash(commented) == canonical_hash(BASE_RULES)
    assert canonical_hash(BASE_RULES.replace("weight = 1.0", "weight = 0.9")) != canonical_hash(
        BASE_RULES)


def test_defaults_fill_what_a_file_leaves_out():
    rules = parse_rules('[[factors]]\nmetric = "win_rate"\nweight = 1\n')
    assert (rules.eligibility.capacity_max, rules.eligibility.capacity_target) == (40, 30)
    assert rules.allocation == "greedy" and rules.caps.max_awards_per_rep_per_round is None
    assert rules.tie_break == ("fewest_accounts_held", "earliest_submission")
