"""Rule files: strict validation with every problem at once, defaults, hashing, registries."""

from __future__ import annotations

import codecs
import hashlib
import json
import re
import tomllib
import unicodedata
from collections import Counter
from dataclasses import FrozenInstanceError
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bidhub.domain.metrics import METRICS, Metric
from bidhub.domain.rules import (
    ALLOCATION_METHODS,
    DEFAULT_TIE_BREAK,
    MAX_NAME_LENGTH,
    MAX_NESTING,
    MAX_NUMBER_CHARS,
    MAX_PROBLEMS,
    MAX_RULE_BYTES,
    MIN_COUNTED_WEIGHT,
    NORMALISERS,
    SCORE_DECIMALS,
    TIE_BREAKS,
    Eligibility,
    RuleError,
    RuleProblem,
    canonical_hash,
    decode_rule_bytes,
    parse_new_rules,
    parse_rules,
)
from bidhub.domain.scoring import DECIMALS

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"

TEXT = """\
name = "t"
tie_break = ["fewest_accounts_held", "earliest_submission"]

[eligibility]
capacity_max = 40
capacity_target = 30
cooldown_months = 6

[[factors]]
metric = "win_rate"
weight = 1.0
normaliser = "minmax"

[[factors]]
metric = "tenure_months"
weight = 0.1
normaliser = "logistic"
midpoint = 24

[[factors]]
metric = "open_incidents"
weight = -0.5
normaliser = "cap"
cap = 2

[caps]
max_awards_per_rep_per_round = 3

[allocation]
method = "greedy"
min_bids_per_listing = 1
"""


def problems_of(text: str) -> list[RuleProblem]:
    with pytest.raises(RuleError) as raised:
        parse_rules(text)
    return raised.value.problems


def edited(old: str, new: str, count: int = 1) -> str:
    assert TEXT.count(old) >= count, old
    return TEXT.replace(old, new, count)


# --- what a good file gives ------------------------------------------------------------


def test_a_good_file_gives_every_section():
    rules = parse_rules(TEXT)
    assert rules.name == "t"
    assert rules.eligibility == Eligibility(capacity_max=40, capacity_target=30,
                                            cooldown_months=6)
    assert [(f.metric, f.weight, f.normaliser) for f in rules.factors] == [
        ("win_rate", 1.0, "minmax"), ("tenure_months", 0.1, "logistic"),
        ("open_incidents", -0.5, "cap")]
    # normaliser defaults are filled in, so scoring never guesses
    assert rules.factors[1].params == {"midpoint": 24.0, "steepness": 1.0}
    assert rules.factors[2].params == {"cap": 2.0}
    assert rules.caps.max_awards_per_rep_per_round == 3
    assert rules.tie_break == ("fewest_accounts_held", "earliest_submission")
    assert rules.allocation == "greedy"
    assert rules.min_bids_per_listing == 1
    assert rules.text == TEXT
    assert rules.warnings == ()


def test_defaults_fill_what_a_file_leaves_out():
    rules = parse_rules('[[factors]]\nmetric = "win_rate"\nweight = 1\n')
    assert rules.eligibility == Eligibility()
    assert (rules.eligibility.capacity_max, rules.eligibility.capacity_target) == (40, 30)
    assert rules.eligibility.max_open_incidents is None
    assert rules.eligibility.exclude_on_leave is True
    assert rules.eligibility.same_branch_only is False
    assert rules.eligibility.min_tenure_months == rules.eligibility.cooldown_months == 0
    assert rules.factors[0].normaliser == "minmax"
    assert rules.caps.max_awards_per_rep_per_round is None
    assert rules.tie_break == DEFAULT_TIE_BREAK
    assert rules.allocation == "greedy" and rules.min_bids_per_listing == 1
    assert rules.name == "unnamed rules" and rules.description == ""


def test_a_rule_set_is_frozen_and_hashable():
    rules = parse_rules(TEXT)
    with pytest.raises(FrozenInstanceError):
        rules.allocation = "optimal"  # type: ignore[misc]
    assert hash(rules) == hash(parse_rules(TEXT))
    assert rules == parse_rules(TEXT)


@pytest.mark.parametrize("path", sorted(RULES_DIR.glob("**/*.toml")),
                         ids=lambda path: str(path.relative_to(RULES_DIR)))
def test_every_shipped_rule_file_parses_without_warnings(path):
    rules = parse_rules(path.read_text(encoding="utf-8"))
    assert rules.factors and rules.warnings == ()
    assert len(rules.version_hash) == 64


def test_the_default_policy_is_merit_within_fairness_limits():
    rules = parse_rules((RULES_DIR / "default.toml").read_text(encoding="utf-8"))
    assert (rules.eligibility.capacity_target, rules.eligibility.capacity_max) == (30, 40)
    assert rules.caps.max_awards_per_rep_per_round == 3
    assert rules.eligibility.cooldown_months == 6
    assert rules.appeal_window_working_days == 3  # 公示期: three working days to appeal
    weights = {factor.metric: factor.weight for factor in rules.factors}
    assert weights["win_rate"] > 0 and weights["open_incidents"] < 0
    assert 0 < weights["tenure_months"] < weights["win_rate"]
    assert weights.get("capacity_headroom", 0) > 0 or weights.get("accounts_held", 0) < 0


# --- mistakes: path and plain reason ---------------------------------------------------

BROKEN = [
    # (old, new, path, message)
    ("capacity_max = 40", "capacity_max = 25", "eligibility.capacity_max",
     "capacity_max (25) is below capacity_target (30)"),
    ("capacity_target = 30", "capacity_target = 45", "eligibility.capacity_max",
     "capacity_max (40) is below capacity_target (45)"),
    ("capacity_max = 40", "capacity_max = 0", "eligibility.capacity_max", "must be at least 1"),
    ("capacity_max = 40", "capacity_max = 40.5", "eligibility.capacity_max",
     "expected a whole number, got 40.5"),
    ("capacity_max = 40", 'capacity_max = "40"', "eligibility.capacity_max",
     "expected a whole number, got a string"),
    ("cooldown_months = 6", "cooldown_months = -1", "eligibility.cooldown_months",
     "must be at least 0, got -1"),
    ("cooldown_months = 6", "cooldown_months = true", "eligibility.cooldown_months",
     "expected a number, got true/false"),
    ("cooldown_months = 6", "min_tenure_months = -3", "eligibility.min_tenure_months",
     "must be at least 0"),
    ("cooldown_months = 6", "max_open_incidents = 1.5", "eligibility.max_open_incidents",
     "expected a whole number"),
    ("cooldown_months = 6", 'same_branch_only = "yes"', "eligibility.same_branch_only",
     "expected true or false, got a string"),
    ("cooldown_months = 6", "exclude_on_leave = 1", "eligibility.exclude_on_leave",
     "expected true or false, got a whole number"),
    ("cooldown_months = 6", "capacity_min = 3", "eligibility.capacity_min",
     "unknown key 'capacity_min' (did you mean 'capacity_max'?"),
    ('metric = "win_rate"', 'metric = "win_rat"', "factors[0].metric",
     "unknown metric 'win_rat' (did you mean 'win_rate'? known: "),
    ('metric = "win_rate"', "metric = 3", "factors[0].metric", "expected a string, got a whole"),
    ('metric = "win_rate"\n', "", "factors[0].metric", "missing: name the metric"),
    ("weight = 1.0", 'weight = "high"', "factors[0].weight", "expected a number, got a string"),
    ("weight = 1.0", "weight = true", "factors[0].weight", "expected a number, got true/false"),
    ("weight = 1.0", "weight = nan", "factors[0].weight", "expected a finite number"),
    ("weight = 1.0", "weight = inf", "factors[0].weight", "expected a finite number"),
    ("weight = 1.0", "weight = 5000", "factors[0].weight", "must be between -1000 and 1000"),
    ("weight = 1.0\n", "", "factors[0].weight", "missing: give the factor a weight"),
    ('normaliser = "minmax"', 'normaliser = "zscore"', "factors[0].normaliser",
     "unknown normaliser 'zscore'"),
    ('normaliser = "minmax"', 'normaliser = "minmax"\ncap = 3', "factors[0].cap",
     "the minmax normaliser does not use cap"),
    ("cap = 2", "", "factors[2].cap", "the cap normaliser needs cap"),
    ("cap = 2", "cap = 0", "factors[2].cap", "must be above 0, got 0"),
    ("midpoint = 24", "", "factors[1].midpoint", "the logistic normaliser needs a midpoint"),
    ("midpoint = 24", "midpoint = 24\nsteepness = -1", "factors[1].steepness", "must be above 0"),
    ("midpoint = 24", "midpoint = 24\ncolour = 1", "factors[1].colour", "unknown key 'colour'"),
    ('metric = "tenure_months"', 'metric = "win_rate"', "factors[1].metric",
     "metric 'win_rate' is already scored by factors[0]"),
    ("max_awards_per_rep_per_round = 3", "max_awards_per_rep_per_round = 0",
     "caps.max_awards_per_rep_per_round", "must be at least 1"),
    ("max_awards_per_rep_per_round = 3", "max_awards_per_rep_per_round = 1.5",
     "caps.max_awards_per_rep_per_round", "expected a whole number"),
    ("max_awards_per_rep_per_round = 3", "max_awards = 3", "caps.max_awards",
     "unknown key 'max_awards'"),
    ('tie_break = ["fewest_accounts_held", "earliest_submission"]',
     'tie_break = ["coin_toss"]', "tie_break", "unknown tie-break 'coin_toss'"),
    ('tie_break = ["fewest_accounts_held", "earliest_submission"]',
     'tie_break = ["lotery"]', "tie_break", "did you mean 'lottery'?"),
    ('tie_break = ["fewest_accounts_held", "earliest_submission"]',
     'tie_break = ["lottery", "lottery"]', "tie_break", "'lottery' is listed twice"),
    ('tie_break = ["fewest_accounts_held", "earliest_submission"]', "tie_break = []",
     "tie_break", "list at least one tie-break"),
    ('tie_break = ["fewest_accounts_held", "earliest_submission"]', 'tie_break = "lottery"',
     "tie_break", "expected a list of names"),
    ('method = "greedy"', 'method = "fastest"', "allocation.method",
     "unknown allocation method 'fastest' (known: greedy, optimal, value_aware)"),
    ('method = "greedy"', 'method = "optimum"', "allocation.method", "did you mean 'optimal'?"),
    ("min_bids_per_listing = 1", "min_bids_per_listing = -1", "allocation.min_bids_per_listing",
     "must be at least 0, got -1"),
    ('name = "t"', 'name = "t"\ncolour = "blue"', "colour", "unknown key 'colour'"),
    ('name = "t"', 'name = "t"\nmethod = "optimal"', "method", "unknown key 'method'"),
    ('name = "t"', "name = 7", "name", "expected a string, got a whole number"),
    ("[caps]", "[cap]", "cap", "unknown key 'cap' (did you mean 'caps'?"),
    ("[eligibility]", "[[eligibility]]", "eligibility", "expected a table [eligibility], got a list"),
]


@pytest.mark.parametrize(("old", "new", "path", "message"), BROKEN,
                         ids=[f"{case[2]}:{case[3][:24]}" for case in BROKEN])
def test_a_broken_rule_file_names_the_key_and_the_reason(old, new, path, message):
    problems = problems_of(edited(old, new))
    by_path = {problem.path: problem for problem in problems}
    assert path in by_path, problems
    assert message in by_path[path].message


def test_all_weights_zero_is_refused():
    text = (edited("weight = 1.0", "weight = 0").replace("weight = 0.1", "weight = 0.0")
            .replace("weight = -0.5", "weight = 0"))
    [problem] = problems_of(text)
    assert problem.path == "factors" and "all weights are zero" in problem.message
    assert problem.line == text.splitlines().index("[[factors]]") + 1


# A weight too small to count: each contribution and total carries scoring.DECIMALS decimals,
# so a weight of at most half a millionth rounds every contribution to 0 (1e-400 reads as 0.0).
TOO_SMALL = ["0.0000001", "-0.0000005", "5e-7", "1e-400", "0.000_000_3", "-1E-9"]


@pytest.mark.parametrize("written", TOO_SMALL)
def test_new_rules_refuse_a_weight_too_small_to_count_and_name_the_key(written):
    text = edited("weight = 0.1", f"weight = {written}")
    with pytest.raises(RuleError) as raised:
        parse_new_rules(text)
    [problem] = raised.value.problems
    assert (problem.path, problem.line) == ("factors[1].weight", 16)
    assert str(problem.message) == (
        f"the weight {written} is too small to count: contributions and totals carry 6 "
        "decimals, so a weight between -0.0000005 and 0.0000005 makes every contribution 0; "
        "write 0 to leave the factor out of the total, or a weight of at least 0.000001")


@pytest.mark.parametrize("written", TOO_SMALL)
def test_a_stored_version_with_a_tiny_weight_reads_exactly_as_before(written):
    text = edited("weight = 0.1", f"weight = {written}")
    rules = parse_rules(text)  # how stored versions are read
    assert rules.factors[1].weight == float(written.replace("_", ""))
    assert rules.version_hash == canonical_hash(text)


@pytest.mark.parametrize("written", ["0", "0.0", "0.00000051", "-0.000001", "0.000001", "1"])
def test_new_rules_take_a_weight_that_counts_or_zero(written):
    assert parse_new_rules(edited("weight = 0.1", f"weight = {written}")).factors[1].weight == (
        float(written))


def test_the_smallest_weight_refused_is_the_largest_that_rounds_to_nothing():
    assert round(float(MIN_COUNTED_WEIGHT) * 1.0, DECIMALS) == 0
    assert round(0.00000051 * 1.0, DECIMALS) == 10**-DECIMALS
    assert Decimal(5) / 10 ** (DECIMALS + 1) == MIN_COUNTED_WEIGHT
    assert SCORE_DECIMALS == DECIMALS


def test_new_rules_list_a_tiny_weight_with_the_other_problems_in_file_order():
    text = (edited("capacity_max = 40", "capacity_max = 25")
            .replace("weight = 0.1", "weight = 1e-400").replace('method = "greedy"',
                                                                'method = "fastest"'))
    assert [problem.path for problem in problems_of(text)] == [
        "eligibility.capacity_max", "allocation.method"]
    with pytest.raises(RuleError) as raised:
        parse_new_rules(text)
    assert [problem.path for problem in raised.value.problems] == [
        "eligibility.capacity_max", "factors[1].weight", "allocation.method"]


def test_no_factors_is_refused():
    [problem] = problems_of('[eligibility]\ncapacity_max = 40\n')
    assert problem.path == "factors" and "at least one [[factors]]" in problem.message
    [problem] = problems_of('factors = []\n')
    assert problem.path == "factors"
    [problem] = problems_of('[factors]\nmetric = "win_rate"\nweight = 1\n')
    assert problem.path == "factors" and "expected [[factors]] tables" in problem.message


def test_one_wrong_value_gives_one_problem():
    # A wrong capacity_max is not compared with capacity_target as well.
    assert len(problems_of(edited("capacity_max = 40", 'capacity_max = "x"'))) == 1
    assert len(problems_of(edited('metric = "win_rate"', "metric = 3"))) == 1


def test_all_problems_are_reported_at_once_in_file_order():
    text = (edited("capacity_max = 40", "capacity_max = 25")
            .replace('metric = "win_rate"', 'metric = "nope"')
            .replace("weight = 0.1", "weight = true")
            .replace('method = "greedy"', 'method = "other"'))
    problems = problems_of(text)
    assert [problem.path for problem in problems] == [
        "eligibility.capacity_max", "factors[0].metric", "factors[1].weight",
        "allocation.method"]
    message = str(RuleError(problems))
    assert message.splitlines() == [str(problem) for problem in problems]
    assert message.splitlines()[0] == (
        "eligibility.capacity_max (line 5): capacity_max (25) is below capacity_target (30)")


@pytest.mark.parametrize(("old", "new", "path"), [
    ("capacity_max = 40", "capacity_max = 25", "eligibility.capacity_max"),
    ("weight = 0.1", "weight = -0.1\n# a comment\nweight2 = 1", "factors[1].weight2"),
    ("cap = 2", "cap = -2", "factors[2].cap"),
    ("max_awards_per_rep_per_round = 3", "max_awards_per_rep_per_round = 0",
     "caps.max_awards_per_rep_per_round"),
    ('method = "greedy"', 'method = "x"', "allocation.method"),
    ('tie_break = ["fewest_accounts_held", "earliest_submission"]', 'tie_break = ["x"]',
     "tie_break"),
])
def test_lines_are_reported_where_the_key_is_written(old, new, path):
    text = edited(old, new)
    [problem] = [problem for problem in problems_of(text) if problem.path == path]
    written = path.rsplit(".", 1)[-1]
    assert text.splitlines()[problem.line - 1].strip().startswith(f"{written} =")


@pytest.mark.parametrize(("new", "path", "written"), [
    ("capacity_max = 40\nfoo.bar = 41", "eligibility.foo", "foo.bar = 41"),
    # the table's name written again in front of its key, under its own header
    ("eligibility.capacity_max = 40", "eligibility.eligibility", "eligibility.capacity_max"),
])
def test_an_unknown_dotted_key_is_reported_on_its_own_line(new, path, written):
    """A dotted key writes the tables on its way on its line, not on the header's above."""
    text = edited("capacity_max = 40", new)
    [problem] = [problem for problem in problems_of(text) if problem.path == path]
    assert text.splitlines()[problem.line - 1].strip().startswith(written)


def test_a_missing_key_points_at_its_table():
    text = edited("cap = 2", "")
    [problem] = problems_of(text)
    assert text.splitlines()[problem.line - 1] == "[[factors]]"
    assert text.splitlines()[problem.line] == 'metric = "open_incidents"'


def test_a_default_compared_with_a_written_value_names_the_written_key():
    [problem] = problems_of('[eligibility]\ncapacity_target = 45\n'
                            '[[factors]]\nmetric = "win_rate"\nweight = 1\n')
    assert problem.path == "eligibility.capacity_target" and problem.line == 2
    assert problem.message == "capacity_max (40) is below capacity_target (45)"


def test_inline_and_quoted_keys_still_get_a_line():
    text = ('"name" = "t"\neligibility = { capacity_max = 10 }\n'
            '[[factors]]\nmetric = "win_rate"\nweight = 1\n')
    [problem] = problems_of(text)
    assert problem.path == "eligibility.capacity_max" and problem.line == 2


def test_a_syntax_error_gives_its_line():
    with pytest.raises(RuleError) as raised:
        parse_rules('name = "x"\n[eligibility]\ncapacity_max = = 40\n')
    [problem] = raised.value.problems
    assert problem.line == 3 and str(problem.message).startswith("not valid TOML")
    assert "line 3" in str(raised.value)
    with pytest.raises(RuleError):
        canonical_hash("[eligibility\n")


# A key or table written twice: tomllib names neither the key nor, for a key, the table, and
# stops at the end of the value (or of the document); the problem names both and both lines.
WRITTEN_TWICE = [
    # text, key path, line, message
    (edited("capacity_max = 40", "capacity_max = 40\ncapacity_max = 41"),
     "eligibility.capacity_max", 6, "the key capacity_max is written twice in the table "
     "eligibility (first at line 5); write each key once"),
    (edited("weight = 0.1", "weight = 0.1\nweight = 0.2"), "factors[1].weight", 17,
     "the key weight is written twice in the table factors[1] (first at line 16)"),
    (TEXT + "[caps]\nmax_awards_per_rep_per_round = 4\n", "caps", 32,
     "the table caps is written twice (first at line 26); write each table once, with all its "
     "keys under it"),
    ('name = "a"\nname = "b"', "name", 2, "the key name is written twice at the top level "
     "(first at line 1)"),  # no line break at the end: tomllib stops at the end of the text
    ('tie_break = [\n  "lottery",\n]\ntie_break = [\n  "lottery",\n]\n', "tie_break", 4,
     "the key tie_break is written twice at the top level (first at line 1)"),
    ('[eligibility]\ncapacity.max = 1 # x\n"capacity" . \'max\' = 2\n',
     "eligibility.capacity.max", 3, "the key capacity.max is written twice in the table "
     "eligibility (first at line 2)"),
    ('[review]\n[[review.criteria]]\nname = "a"\n[[review.criteria]]\nname = "b"\nname = "c"\n',
     "review.criteria[1].name", 6, "the key name is written twice in the table "
     "review.criteria[1] (first at line 5)"),
    ('["caps"]\n"max awards" = 1\n[caps]\n', "caps", 3,
     "the table caps is written twice (first at line 1)"),
    ('[caps.x]\n[caps]\nx = 1\n', "caps.x", 3,
     "caps.x is already a table (line 1), so it cannot also have a value"),
    ('[caps]\nx = 1\n[caps.x]\n', "caps.x", 3,
     "caps.x already has a value (line 2), so it cannot also be a table"),
    ('"名 字" = 1\n\'名 字\' = 2\n', '"名 字"', 2,
     'the key "名 字" is written twice at the top level (first at line 1)'),
    ('[[factors]]\nmetric = "win_rate"\n[factors]\n', "factors", 3,
     "factors is already a list of [[factors]] tables (line 1), so it cannot also be written "
     "as [factors]"),
    ('[factors]\n[[factors]]\n', "factors", 2,
     "factors is already a [factors] table (line 1), so it cannot also be written as "
     "[[factors]]"),
    ('[eligibility]\ncapacity.max = 1\n[eligibility.capacity]\n', "eligibility.capacity", 3,
     "eligibility.capacity is already made by the dotted key eligibility.capacity.max (line 2), "
     "so it cannot also be written as [eligibility.capacity]"),
    ('tie_break = 1\n[tie_break]\n', "tie_break", 2,
     "tie_break already has a value (line 1), so it cannot also be a table"),
]


@pytest.mark.parametrize(("text", "path", "line", "message"), WRITTEN_TWICE,
                         ids=[case[1] for case in WRITTEN_TWICE])
def test_a_key_or_table_written_twice_is_named_with_its_table_and_lines(text, path, line,
                                                                       message):
    [problem] = problems_of(text)
    assert (problem.path, problem.line) == (path, line)
    assert message in str(problem.message)
    assert not problem.is_syntax


# Headers as written and the key path they open ({} is the entry of a [[list]]); plain tables
# are written once each, lists of tables any number of times.
_HEADERS = {"[caps]": "caps", "[ a . b ]": "a.b", '["q r"]': '"q r"',
            "[[factors]]": "factors[{}]", "[[review.criteria]]": "review.criteria[{}]"}
_KEYS = {"k": "k", "l . m": "l.m", '"n o"': '"n o"', "'容量'": '"容量"'}
_VALUES = ("1", '"x"', "[\n  1,\n  2,\n]", '"""\nk = 1\n[caps]\n"""', "{ z = 1 }  # k = 2")


@st.composite
def _document_with_a_key_twice(draw):
    """A TOML document and, for one key written a second time right after it, the key path,
    the line of the second writing and of the first."""
    headers = draw(st.lists(st.sampled_from(sorted(_HEADERS)), max_size=6))
    headers = [header for index, header in enumerate(headers)
               if header.startswith("[[") or header not in headers[:index]]
    lines: list[str] = []
    keys: list[tuple[str, int, str]] = []  # path, line, key as written
    entries: Counter[str] = Counter()
    for header in [None, *headers]:
        if header is None:
            table = ""
        else:
            table = _HEADERS[header].format(entries[header])
            entries[header] += 1
            lines.append(header)
        for key in draw(st.lists(st.sampled_from(sorted(_KEYS)), unique=True, max_size=3)):
            first = len(lines) + 1
            lines.extend(f"{key} = {draw(st.sampled_from(_VALUES))}".split("\n"))
            keys.append((f"{table}.{_KEYS[key]}" if table else _KEYS[key], first, len(lines),
                         key))
    assume(keys)
    path, first, end, key = draw(st.sampled_from(keys))
    lines.insert(end, f"{key} = 3")  # right after the first writing's value
    ending = draw(st.sampled_from(["", "\n", "\n# the end\n"]))
    return "\n".join(lines) + ending, path, end + 1, first


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_document_with_a_key_twice())
def test_any_key_written_twice_is_named_with_its_path_and_both_lines(case):
    text, path, line, first = case
    [problem] = problems_of(text)
    assert (problem.path, problem.line) == (path, line), text
    assert f"(first at line {first})" in str(problem.message)


def test_a_duplicate_that_cannot_be_placed_keeps_the_readers_line_and_column():
    # An inline table reopened by a dotted key: not a key written twice, so tomllib's own
    # line and column stay.
    [problem] = problems_of('a = {b = 1}\na.c = 2\n')
    assert problem.is_syntax and problem.line == 2


def test_a_metric_added_to_the_registry_is_usable_at_once(monkeypatch):
    monkeypatch.setitem(METRICS, "calls_made", Metric(
        "calls_made", "Calls made", "calls", "last month", "None", lambda h, a, n: None,
        higher_is_better=True))
    rules = parse_rules(edited('metric = "win_rate"', 'metric = "calls_made"'))
    assert rules.factors[0].metric == "calls_made"


def test_a_weight_against_the_metrics_direction_is_a_warning_not_an_error():
    rules = parse_rules(edited("weight = -0.5", "weight = 0.5"))
    [warning] = rules.warnings
    assert warning.path == "factors[2].weight" and "less is better" in warning.message
    assert warning.line == TEXT.splitlines().index("weight = -0.5") + 1
    [warning] = parse_rules(edited("weight = 1.0", "weight = -1.0")).warnings
    assert "more is better" in warning.message


# --- the version hash ------------------------------------------------------------------


def test_the_version_hash_is_the_sha256_of_the_canonical_json():
    data = tomllib.loads(TEXT)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert parse_rules(TEXT).version_hash == canonical_hash(TEXT) == expected


def test_the_version_hash_ignores_comments_layout_and_order_but_not_values():
    reordered = "# the policy\n" + TEXT.replace("weight = 1.0", "weight   =   1.0  # why") \
        .replace('name = "t"\n', "").replace("[eligibility]", 'name = "t"\n\n[eligibility]')
    assert reordered != TEXT
    assert canonical_hash(reordered) == canonical_hash(TEXT)
    assert canonical_hash(TEXT.replace("weight = 1.0", "weight = 0.9")) != canonical_hash(TEXT)
    assert canonical_hash('description = "大客户"\n') != canonical_hash('description = "x"\n')



def test_the_readme_recipe_recomputes_the_hash_of_the_example_files_with_chinese_text():
    [recipe] = [block for block in readme_blocks("python") if "hashlib.sha256" in block]
    files = [path for path in sorted((RULES_DIR / "examples").glob("*.toml"))
             if not path.read_text(encoding="utf-8").isascii()]
    written = [path for path in files
               if not json.dumps(tomllib.loads(path.read_text(encoding="utf-8")),
                                 ensure_ascii=False).isascii()]
    assert written, "an example file holds Chinese text in its values, not only in comments"
    for path in files:
        raw = path.read_bytes()
        namespace = {"text": raw.decode("utf-8")}
        exec(recipe, namespace)  # noqa: S102 - the README's own recipe, as a reader runs it
        rules = parse_rules(decode_rule_bytes(raw))
        assert namespace["version_hash"] == rules.version_hash, path.name
        # Saved in GBK (Notepad's "ANSI" on Chinese Windows), the file keeps its hash.
        gbk = raw.decode("utf-8").encode("gbk")
        assert parse_rules(decode_rule_bytes(gbk)).version_hash == rules.version_hash
    for path in written:  # escaping the Chinese characters would give another hash
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        escaped = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        assert hashlib.sha256(escaped.encode()).hexdigest() != parse_rules(
            path.read_text(encoding="utf-8")).version_hash


# --- registries and their documentation ------------------------------------------------


def test_registries_describe_every_entry():
    for name, normaliser in NORMALISERS.items():
        assert normaliser.name == name and normaliser.description and normaliser.label
    assert set(TIE_BREAKS) == {"fewest_accounts_held", "earliest_submission", "lottery"}
    assert set(ALLOCATION_METHODS) == {"greedy", "optimal", "value_aware"}
    assert {"minmax", "cap", "logistic", "rank"} <= set(NORMALISERS)


def test_the_rules_readme_documents_every_registered_name_and_key():
    readme = (RULES_DIR / "README.md").read_text(encoding="utf-8")
    names = [*METRICS, *NORMALISERS, *TIE_BREAKS, *ALLOCATION_METHODS,
             *(param.name for normaliser in NORMALISERS.values() for param in normaliser.params),
             *Eligibility.__dataclass_fields__, "max_awards_per_rep_per_round",
             "min_bids_per_listing", "tie_break", "description"]
    missing = [name for name in names if f"`{name}`" not in readme]
    assert missing == []


def readme_blocks(language: str) -> list[str]:
    import re

    readme = (RULES_DIR / "README.md").read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", readme, re.S)


def test_the_readme_example_parses_and_its_mistakes_read_as_documented():
    [example] = readme_blocks("toml")
    assert parse_rules(example).factors
    broken = (example.replace("capacity_max = 40", "capacity_max = 25")
              .replace('"win_rate"', '"win_rat"').replace("weight = 0.10", 'weight = "high"')
              .replace("cap = 2\n", "")
              .replace('"earliest_submission", "lottery"]', '"coin_toss"]')
              .replace('method = "greedy"', 'method = "fastest"'))
    documented = next(block for block in readme_blocks("text") if "coin_toss" in block)
    with pytest.raises(RuleError) as raised:
        parse_rules(broken)
    actual = str(raised.value).splitlines()
    for expected, line in zip(documented.strip().splitlines(), actual, strict=True):
        assert line.startswith(expected.removesuffix("...)").rstrip())


# --- hostile input: encodings, size, nesting, numbers, floods ----------------------------

GBK_TEXT = ("# 竞标规则：默认政策（记事本另存为 ANSI 即 GBK）\n"
            + TEXT.replace("[eligibility]", "# 资格条件\n[eligibility]")
            .replace("capacity_max = 40", "capacity_max = 40  # 精耕细作，每人最多四十个客户"))


def refused(text: str) -> RuleError:
    with pytest.raises(RuleError) as raised:
        parse_rules(text)
    return raised.value


def test_a_byte_order_mark_is_not_a_syntax_error():
    rules = parse_rules("\ufeff" + TEXT)
    assert rules.version_hash == parse_rules(TEXT).version_hash
    assert rules.text == TEXT  # stored without the mark
    assert canonical_hash("\ufeff" + TEXT) == canonical_hash(TEXT)


@pytest.mark.parametrize("encoded", [
    GBK_TEXT.encode("utf-8"),
    codecs.BOM_UTF8 + GBK_TEXT.encode("utf-8"),
    GBK_TEXT.encode("gbk"),
    GBK_TEXT.encode("gb18030"),
], ids=["utf-8", "utf-8 with BOM", "gbk", "gb18030"])
def test_rule_bytes_in_every_accepted_encoding_give_the_same_rules(encoded):
    text = decode_rule_bytes(encoded)
    assert text == GBK_TEXT
    assert parse_rules(text).version_hash == parse_rules(TEXT).version_hash


def test_gbk_bytes_are_really_not_utf8():
    with pytest.raises(UnicodeDecodeError):
        GBK_TEXT.encode("gbk").decode("utf-8")


def test_gb18030_characters_beyond_gbk_are_read():
    text = 'description = "客户𠀀"\n'
    assert decode_rule_bytes(text.encode("gb18030")) == text


@pytest.mark.parametrize(("data", "message", "line"), [
    (GBK_TEXT.encode("utf-16"), "saved as UTF-16", None),
    (TEXT.encode("utf-16-le"), "contains NUL bytes", 1),
    (b'name = "t"\ndescription = "\xff\xfe\xff"\n', "neither UTF-8 nor GBK/GB18030", 2),
    (codecs.BOM_UTF8 + 'name = "客户"\n'.encode("gbk"), "byte order mark but is not UTF-8", 1),
], ids=["utf-16 with BOM", "utf-16 without BOM", "binary", "BOM then GBK"])
def test_undecodable_rule_bytes_are_refused_with_how_to_save_them(data, message, line):
    with pytest.raises(RuleError) as raised:
        decode_rule_bytes(data)
    [problem] = raised.value.problems
    assert problem.path == "(file)" and problem.line == line
    assert message in problem.message and "save it as UTF-8" in problem.message
    assert "GBK" in problem.message


def test_rule_texts_and_files_over_the_size_limit_are_refused():
    assert MAX_RULE_BYTES == 64 * 1024
    padded = TEXT + "#" * (MAX_RULE_BYTES - len(TEXT.encode()) - 1) + "\n"
    assert len(padded.encode()) == MAX_RULE_BYTES
    assert parse_rules(padded).factors  # the limit itself is allowed
    for oversized in (padded + "\n", TEXT + "# 大" * MAX_RULE_BYTES):
        [problem] = refused(oversized).problems
        assert problem.path == "(file)" and "at most 65,536 bytes (64 KiB)" in problem.message
    with pytest.raises(RuleError, match="at most 65,536 bytes"):
        decode_rule_bytes(padded.encode() + b"\n")
    with pytest.raises(RuleError, match="at most 65,536 bytes"):
        canonical_hash(padded + "\n")


@pytest.mark.parametrize("number", [
    "9" * 310, "-" + "9" * 400, "9" * 5000, "0x" + "f" * 5000, "1" * 400 + ".5",
    "1e" + "0" * 400, "1_" * 100 + "1",
])
def test_a_number_written_absurdly_long_names_its_key_and_line(number):
    text = edited("weight = 1.0", f"weight = {number}")
    [problem] = refused(text).problems
    assert problem.path == "factors[0].weight"
    assert problem.line == text.splitlines().index(f"weight = {number}") + 1
    assert f"a number written with {len(number):,} characters" in problem.message
    assert f"at most {MAX_NUMBER_CHARS}" in problem.message


def test_a_long_number_inside_a_list_or_quoted_key_names_the_key():
    text = edited("weight = 1.0", 'weight = [\n  1,\n  ' + "9" * 400 + ",\n]")
    [problem] = refused(text).problems
    assert problem.path == "factors[0].weight" and "400 characters" in problem.message
    assert problem.line == text.splitlines().index("  " + "9" * 400 + ",") + 1
    [problem] = refused(edited("weight = 1.0", '"weight" = ' + "9" * 400)).problems
    assert problem.path == "factors[0].weight"
    # Digits inside strings and comments are text, not numbers.
    assert parse_rules(edited('name = "t"', f'name = "{"9" * MAX_NAME_LENGTH}"  # {"9" * 400}')).name


@pytest.mark.parametrize(("old", "new", "path", "message"), [
    ("capacity_max = 40", "capacity_max = 99999999999999999999", "eligibility.capacity_max",
     "must be at most 1,000, got 99999999999999999999"),
    ("capacity_target = 30", "capacity_target = 5000", "eligibility.capacity_target",
     "must be at most 1,000, got 5000"),
    ("cooldown_months = 6", "cooldown_months = 1e300", "eligibility.cooldown_months",
     "must be at most 1,200"),
    ("cooldown_months = 6", "min_tenure_months = 5000", "eligibility.min_tenure_months",
     "must be at most 1,200"),
    ("cooldown_months = 6", "max_open_incidents = 10000000000", "eligibility.max_open_incidents",
     "must be at most 1,000"),
    ("max_awards_per_rep_per_round = 3", "max_awards_per_rep_per_round = 9223372036854775808",
     "caps.max_awards_per_rep_per_round", "must be at most 1,000"),
    ("min_bids_per_listing = 1", "min_bids_per_listing = 4294967296",
     "allocation.min_bids_per_listing", "must be at most 1,000"),
    ("cap = 2", "cap = 1e300", "factors[2].cap", "must be at most 1e+12"),
    ("midpoint = 24", "midpoint = -1e300", "factors[1].midpoint", "must be at least -1e+12"),
    ("weight = 1.0", "weight = 1e308", "factors[0].weight", "must be between -1000 and 1000"),
    ("weight = 1.0", "weight = 1e400", "factors[0].weight", "expected a finite number"),
    ("weight = 1.0", "weight = -inf", "factors[0].weight", "expected a finite number"),
    ("weight = 1.0", "weight = " + "9" * 49, "factors[0].weight", "must be between"),
])
def test_numbers_beyond_what_a_key_allows_are_refused(old, new, path, message):
    problems = problems_of(edited(old, new))
    by_path = {problem.path: problem for problem in problems}
    assert path in by_path, problems
    assert message in by_path[path].message


def test_new_rules_may_not_let_a_rep_hold_more_than_the_handbooks_40():
    """The handbook's 30-40 accounts per rep binds: new rules may be stricter, never looser. A
    version adopted before the check existed is still read as it was adopted."""
    looser = edited("capacity_max = 40", "capacity_max = 41")
    with pytest.raises(RuleError) as raised:
        parse_new_rules(looser)
    [problem] = raised.value.problems
    assert (problem.path, problem.line) == ("eligibility.capacity_max", 5)
    assert str(problem.message) == ("the handbook allows a rep at most 40 accounts, and no award "
                                    "or transfer may take a rep past it; got 41")
    assert parse_rules(looser).eligibility.capacity_max == 41  # a stored version
    assert parse_new_rules(edited("capacity_max = 40", "capacity_max = 35")) \
        .eligibility.capacity_max == 35


@pytest.mark.parametrize("value", [
    "[" * 2000 + "]" * 2000,
    "[" * 10_000 + "]" * 10_000,
    "{ a = " * 2000 + "1" + " }" * 2000,
    "[\n" * 2000 + "]\n" * 2000,
    "[{ a = " * 1000 + "1 }]" * 1000,
])
def test_nesting_thousands_deep_is_refused_before_parsing(value):
    text = edited("weight = 1.0", f"weight = {value}")
    [problem] = refused(text).problems
    assert problem.path == "factors[0].weight"
    # The line where the limit is passed: the bracket one level too deep.
    too_deep = [index for index, char in enumerate(value) if char in "[{"][MAX_NESTING]
    weight_line = text.splitlines().index("[[factors]]") + 3
    assert problem.line == weight_line + value[:too_deep].count("\n")
    assert f"nested more than {MAX_NESTING} levels deep" in problem.message


def test_brackets_inside_strings_and_comments_do_not_count_as_nesting():
    deep = "[" * 3000
    name = "[" * MAX_NAME_LENGTH  # deeper than MAX_NESTING, as long as a name may be
    text = edited('name = "t"', f'name = "{name}"  # {deep}\n'
                                f"description = '''\n{deep}\n'''")
    assert parse_rules(text).name == name


def test_nesting_through_dotted_keys_and_table_headers_is_refused():
    [problem] = refused(TEXT + "x" + ".x" * 30_000 + " = 1\n").problems
    assert problem.line == TEXT.count("\n") + 1
    assert f"a dotted key with more than {MAX_NESTING} parts" in problem.message
    assert len(problem.path) < 200  # a hostile key is shortened, not repeated whole
    headers = "".join("[" + "a." * depth + "a]\n" for depth in range(MAX_NESTING - 1))
    [problem] = refused(TEXT + headers + "b = " + "[" * 10 + "]" * 10 + "\n").problems
    assert problem.path == "a" and problem.line == TEXT.count("\n") + 1
    assert f"nested more than {MAX_NESTING} levels deep" in problem.message
    with pytest.raises(RuleError, match="nested more than"):
        canonical_hash(TEXT + headers + "b = " + "[" * 10 + "]" * 10 + "\n")


def test_a_flood_of_problems_lists_the_first_and_counts_the_rest():
    text = TEXT + "".join(f"[caps.k{index}]\n" for index in range(2000))
    error = refused(text)
    assert len(error.problems) == MAX_PROBLEMS == 50
    assert error.more == 2000 - MAX_PROBLEMS
    lines = str(error).splitlines()
    assert len(lines) == MAX_PROBLEMS + 1 and lines[-1] == "and 1,950 more problems"
    assert lines[0].startswith(f"caps.k0 (line {TEXT.count(chr(10)) + 1}): unknown key 'k0'")
    assert str(RuleError([RuleProblem("x", None, "y")] * 51)).endswith("and 1 more problem")


def test_a_hostile_name_is_shortened_in_the_message():
    [problem] = problems_of(edited('metric = "win_rate"', f'metric = "{"w" * 20_000}"'))
    assert problem.path == "factors[0].metric" and len(str(problem.message)) < 400
    assert "(20,000 characters)" in problem.message


def test_many_problems_are_found_in_bounded_time():
    import time

    text = "".join(f"k{index} = {index}\n" for index in range(MAX_RULE_BYTES // 14))
    started = time.perf_counter()
    error = refused(text)
    assert error.more > 4000
    assert time.perf_counter() - started < 5


_TOML_PIECES = st.sampled_from([
    "[", "]", "[[", "]]", "{", "}", "=", ",", ".", "\n", " ", "#", '"', "'", '"""', "'''",
    "\\", "\ufeff", "\x00", "\r", "a", "factors", "weight", "metric", "eligibility",
    "capacity_max", "1", "9" * 60, "1e400", "-inf", "nan", "0x" + "f" * 60, "1979-05-27",
    '"win_rate"', "true", "大", "[[factors]]\n", "[eligibility]\n", "weight = 1e-400\n",
    "0.000_000_1", "a = 1\n",
])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(_TOML_PIECES, max_size=80).map("".join))
def test_any_text_gives_rules_or_a_rule_error_never_another_exception(text):
    for parse in (parse_rules, parse_new_rules):
        try:
            parse(text)
        except RuleError as error:
            assert error.problems and all(problem.message for problem in error.problems)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=200) | st.text(max_size=80).map(lambda text: text.encode("gb18030")))
def test_any_bytes_give_text_or_a_rule_error(data):
    try:
        text = decode_rule_bytes(data)
    except RuleError as error:
        assert error.problems[0].path == "(file)"
    else:
        assert isinstance(text, str) and "\x00" not in text


def test_the_rules_readme_documents_the_limits_and_encodings():
    readme = (RULES_DIR / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Limits and encodings"):]
    assert f"{MAX_RULE_BYTES // 1024} KiB ({MAX_RULE_BYTES:,} bytes)" in section
    assert f"{MAX_NESTING} levels" in section and f"have at most {MAX_NUMBER_CHARS}" in section
    assert f"| {MAX_PROBLEMS}, then a count of the rest |" in section
    assert all(name in section for name in ("UTF-8 with a byte order mark", "GBK", "GB18030"))


def test_a_name_is_at_most_as_long_as_the_column_each_version_stores_it_in():
    from bidhub.models import RuleSetVersion

    assert RuleSetVersion.__table__.c.name.type.length == MAX_NAME_LENGTH
    longest = TEXT.replace('name = "t"', f'name = "{"规" * MAX_NAME_LENGTH}"', 1)
    assert parse_rules(longest).name == "规" * MAX_NAME_LENGTH
    with pytest.raises(RuleError) as refused:
        parse_rules(longest.replace('规"', '规规"', 1))
    [problem] = refused.value.problems
    assert (problem.path, problem.line) == ("name", 1)
    assert str(problem.message) == (f"at most {MAX_NAME_LENGTH} characters, "
                                    f"got {MAX_NAME_LENGTH + 1}")


@pytest.mark.parametrize(("text", "line", "expected"), [
    ('a = "x', 1, 'not valid TOML at the end of the text: a string is not closed with its quote'),
    ("a = [1,\n2\n", 2, "not valid TOML at the end of the text: a list is not closed with ']'"),
    ("a = {b = 1, b = 2}\n", 1, "not valid TOML at line 1, column 18: the key b is written "
                                "twice in one inline table"),
    ('[x]\na = "\x01"\n', 2, "line 2, column 6 holds the control character U+0001, which a "
                              "rule file may not hold; remove it"),
    ('[x]\na = "line\nbreak"\n', 2, "not valid TOML at line 2, column 10: the character "
                                   "'\\n' is not allowed in a string"),
    ("[资格]\n", 1, 'not valid TOML at line 1, column 2: the key 资格 is written without quotes, '
                   'so it may only hold A-Z, a-z, 0-9, _ and -: write it in quotes, as "资格"'),
    ("a = [1，2]\n", 1, "not valid TOML at line 1, column 7: the full-width character '，' is "
                      "not TOML: write the half-width ',' instead (switch the input method to "
                      "half-width)"),
])
def test_a_syntax_error_is_said_in_bidhubs_own_words(text, line, expected):
    with pytest.raises(RuleError) as raised:
        parse_rules(text)
    [problem] = raised.value.problems
    assert problem.path == "(syntax)" and problem.line == line
    assert str(problem.message) == expected


def test_a_syntax_reason_bidhub_does_not_know_keeps_the_readers_words(monkeypatch):
    def unknown(text):
        raise tomllib.TOMLDecodeError("Something new (at line 2, column 7)")

    monkeypatch.setattr(tomllib, "loads", unknown)
    with pytest.raises(RuleError) as raised:
        parse_rules('name = "x"\n')
    [problem] = raised.value.problems
    assert str(problem.message) == ("not valid TOML at line 2, column 7: Something new (the TOML "
                                    "reader's words)")


def test_the_default_rules_explain_each_part_in_chinese_then_english_within_the_editor():
    """Admins read the default file in the rules page's editor, in Chinese first: every block
    of comments has a Chinese line before its English ones, and no line is wider than the
    editor shows whole at 1366 px (about 88 columns, a Chinese character taking two)."""
    lines = (RULES_DIR / "default.toml").read_text(encoding="utf-8").splitlines()
    blocks, block = [], []
    for line in [*lines, ""]:
        if line.startswith("#") and line.strip("# "):
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    assert len(blocks) >= 15
    for comments in blocks:
        chinese = [index for index, line in enumerate(comments) if _is_chinese(line)]
        english = sorted(set(range(len(comments))) - set(chinese))
        assert chinese and english and chinese[0] < english[0], comments
    widths = {line: sum(2 if _is_wide(character) else 1 for character in line)
              for line in lines if line.startswith("#")}
    assert max(widths.values()) <= 86, max(widths, key=widths.get)


def _is_wide(character: str) -> bool:
    return unicodedata.east_asian_width(character) in "WF"


def _is_chinese(line: str) -> bool:
    """Wide characters outside ASCII brackets: an English line may quote a Chinese term in
    them, as in "announced (公示)"; Chinese writes its own brackets full width."""
    return any(map(_is_wide, re.sub(r"\([^)]*\)", "", line)))
