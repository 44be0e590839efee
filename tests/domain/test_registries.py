"""Registries: one worked case per eligibility check, tie-break and allocation method,
rules/README.md stating exactly the names (and descriptions) the registries hold, and the
rules settings form showing each numeric eligibility setting with the registry's range.

Adding an entry to ELIGIBILITY_CHECKS, TIE_BREAKS or ALLOCATION_METHODS makes this file fail
until the entry has its case below and its row in the README.
"""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bidhub.domain.allocation import allocate
from bidhub.domain.allocation_methods import ALLOCATION_METHODS, DEFAULT_ALLOCATION_METHOD
from bidhub.domain.eligibility import (
    ELIGIBILITY_CHECKS,
    ELIGIBILITY_SETTINGS,
    Eligibility,
    check_bid,
)
from bidhub.domain.facts import BidFacts
from bidhub.domain.metrics import METRICS
from bidhub.domain.normalisers import NORMALISERS
from bidhub.domain.rules import RuleError, parse_rules
from bidhub.domain.scoring import score_round
from bidhub.domain.tie_breaks import DEFAULT_TIE_BREAK, TIE_BREAKS

README = Path(__file__).resolve().parents[2] / "rules" / "README.md"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def facts(bid_id: int = 1, *, rep: int | None = None, listing: int = 1, held: int = 30,
          minutes: int = 0, win_rate: float = 0.5, **changes: Any) -> BidFacts:
    values: dict[str, Any] = {
        "bid_id": bid_id, "rep_id": bid_id if rep is None else rep, "listing_id": listing,
        "submitted_at": T0 + timedelta(minutes=minutes), "metrics": {"win_rate": win_rate},
        "accounts_held": held, "tenure_months": 24.0, "open_incidents": 0,
        "rep_branch": "BJ", "listing_branch": "BJ"}
    return BidFacts(**(values | changes))


def rule_text(*, eligibility: str = "", tie_break: tuple[str, ...] = DEFAULT_TIE_BREAK,
              method: str = DEFAULT_ALLOCATION_METHOD) -> str:
    names = ", ".join(f'"{name}"' for name in tie_break)
    return (f"tie_break = [{names}]\n\n[eligibility]\n{eligibility}\n\n"
            '[[factors]]\nmetric = "win_rate"\nweight = 1.0\nnormaliser = "cap"\ncap = 1\n\n'
            f'[allocation]\nmethod = "{method}"\n')


# --- eligibility checks: one case each ---------------------------------------------------

# name -> (the [eligibility] lines that switch it on, a bid that passes, one that fails,
#          the failing bid's reason)
CHECK_CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any], str]] = {
    "capacity": ("capacity_max = 35", {"held": 34}, {"held": 35},
                 "holds 35 accounts; the maximum is 35"),
    "tenure": ("min_tenure_months = 6", {"tenure_months": 6.0}, {"tenure_months": 5.96},
               "5.96 months with the company; at least 6 required"),
    "accountability": ("max_open_incidents = 1", {"open_incidents": 1}, {"open_incidents": 2},
                       "2 open accountability incidents; at most 1 allowed"),
    "branch": ("same_branch_only = true", {"rep_branch": "BJ"}, {"rep_branch": ""},
               "the account is in branch BJ, the rep in no branch; only accounts of one's "
               "own branch may be won"),
    "cooldown": ("cooldown_months = 6", {"months_since_rep_released_account": 6.0},
                 {"months_since_rep_released_account": 0.5},
                 "released or lost this account 0.5 months ago; the cooldown is 6 months"),
    "on_duty": ("exclude_on_leave = true", {"is_on_leave": False}, {"is_on_leave": True},
                "on leave or no longer with the company"),
}


def test_every_eligibility_check_has_a_case():
    assert list(CHECK_CASES) == list(ELIGIBILITY_CHECKS)


@pytest.mark.parametrize("name", list(ELIGIBILITY_CHECKS))
def test_each_eligibility_check_passes_fails_and_says_why(name):
    setting, passing, failing, reason = CHECK_CASES[name]
    rules = parse_rules(rule_text(eligibility=setting))
    rule = ELIGIBILITY_CHECKS[name]
    assert rule.is_on(rules.eligibility)
    assert rule.check(rules.eligibility, facts(**passing))[0] is True
    assert rule.check(rules.eligibility, facts(**failing)) == (False, reason)
    # The same through scoring: the bid is ineligible with exactly this reason.
    [failed] = score_round(rules, [facts(**failing)])[1].failed_checks
    assert (failed.name, failed.reason) == (name, reason)


def test_checks_run_in_registry_order_and_only_when_on():
    everything_on = "\n".join(case[0] for case in CHECK_CASES.values())
    policy = parse_rules(rule_text(eligibility=everything_on)).eligibility
    assert [check.name for check in check_bid(policy, facts())] == list(ELIGIBILITY_CHECKS)
    defaults = Eligibility()
    assert [check.name for check in check_bid(defaults, facts())] == ["capacity", "on_duty"]


def test_the_policy_has_one_field_per_registered_setting_with_its_default():
    assert [item.name for item in fields(Eligibility)] == list(ELIGIBILITY_SETTINGS)
    policy = parse_rules(rule_text()).eligibility
    assert {key: getattr(policy, key) for key in ELIGIBILITY_SETTINGS} == {
        key: setting.default for key, setting in ELIGIBILITY_SETTINGS.items()}


@pytest.mark.parametrize("key", list(ELIGIBILITY_SETTINGS))
def test_the_parser_validates_each_registered_setting(key):
    setting = ELIGIBILITY_SETTINGS[key]
    if setting.kind == "boolean":
        bad, expected = '"yes"', "expected true or false, got a string"
    else:
        bad, expected = f"{setting.minimum - 1:g}", f"must be at least {setting.minimum:g}"
    with pytest.raises(RuleError) as raised:
        parse_rules(rule_text(eligibility=f"{key} = {bad}"))
    [problem] = raised.value.problems
    assert problem.path == f"eligibility.{key}" and expected in problem.message
    if setting.maximum is not None:
        with pytest.raises(RuleError, match=f"eligibility.{key}"):
            parse_rules(rule_text(eligibility=f"{key} = {setting.maximum + 1:g}"))


def test_a_check_reports_its_settings_in_conflict_on_the_first_written():
    with pytest.raises(RuleError) as raised:
        parse_rules(rule_text(eligibility="capacity_target = 41"))
    [problem] = raised.value.problems
    assert str(problem) == ("eligibility.capacity_target (line 4): capacity_max (40) is below "
                            "capacity_target (41)")


# --- tie-breaks: one case each ---------------------------------------------------------

# name -> (the bid this tie-break ranks first, the other one, the lottery seed). The first
# has the higher bid id, so the last resort (bid id) alone would order them the other way.
TIE_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], int]] = {
    "fewest_accounts_held": ({"bid_id": 2, "held": 10}, {"bid_id": 1, "held": 20}, 0),
    "earliest_submission": ({"bid_id": 2, "minutes": 1}, {"bid_id": 1, "minutes": 2}, 0),
    "lottery": ({"bid_id": 2}, {"bid_id": 1}, 0),  # seed 0 draws bid 2's ticket first
}


def test_every_tie_break_has_a_case():
    assert list(TIE_CASES) == list(TIE_BREAKS)


@pytest.mark.parametrize("name", list(TIE_BREAKS))
def test_each_tie_break_orders_equal_totals(name):
    first, second, seed = TIE_CASES[name]
    bids = [facts(**second), facts(**first)]
    rules = parse_rules(rule_text(tie_break=(name,)))
    scores = score_round(rules, bids)
    assert scores[1].total == scores[2].total
    entry = TIE_BREAKS[name]
    assert entry.key(bids[1], seed) < entry.key(bids[0], seed)
    assert allocate(rules, bids, scores, seed).rankings[1] == (first["bid_id"],
                                                                second["bid_id"])


def test_an_unknown_tie_break_or_method_gets_a_suggestion_from_the_registry():
    with pytest.raises(RuleError) as raised:
        parse_rules(rule_text(tie_break=("earliest_submision",), method="greedi"))
    assert [str(problem) for problem in raised.value.problems] == [
        "tie_break (line 1): unknown tie-break 'earliest_submision' (did you mean "
        "'earliest_submission'? known: " + ", ".join(sorted(TIE_BREAKS)) + ")",
        "allocation.method (line 13): unknown allocation method 'greedi' (did you mean "
        "'greedy'? known: " + ", ".join(sorted(ALLOCATION_METHODS)) + ")"]


# --- allocation methods: one case each -------------------------------------------------

# Rep 1 has room for one more account and is best on both listings; rep 2 bids on listing 1
# only. Greedy gives listing 1 to rep 1 and leaves listing 2 empty; optimal awards both.
METHOD_BIDS = [facts(1, rep=1, listing=1, held=39, win_rate=0.9),
               facts(2, rep=1, listing=2, held=39, win_rate=0.9),
               facts(3, rep=2, listing=1, win_rate=0.5)]
METHOD_CASES: dict[str, dict[int, int | None]] = {
    "greedy": {1: 1, 2: None},
    "optimal": {1: 3, 2: 2},
    # Both accounts worth 0 yuan: score x value is 0 either way, so the most awards decide.
    "value_aware": {1: 3, 2: 2},
}


def test_every_allocation_method_has_a_case():
    assert list(METHOD_CASES) == list(ALLOCATION_METHODS)


@pytest.mark.parametrize("name", list(ALLOCATION_METHODS))
def test_each_allocation_method_awards_its_case(name):
    rules = parse_rules(rule_text(method=name))
    scores = score_round(rules, METHOD_BIDS)
    result = allocate(rules, METHOD_BIDS, scores, 0)
    assert result.method == name and result.awards == METHOD_CASES[name]
    # The registry entry on its own gives the same awards from the same inputs.
    by_facts = {bid.bid_id: bid for bid in METHOD_BIDS}
    contested = {listing: [(bid_id, by_facts[bid_id].rep_id,
                            round(scores[bid_id].total * 10**6),
                            by_facts[bid_id].listing_value_yuan) for bid_id in bid_ids]
                 for listing, bid_ids in {1: [1, 3], 2: [2]}.items()}
    awarded = ALLOCATION_METHODS[name].award(contested, {1: 1, 2: 2})
    assert {listing: awarded.get(listing) for listing in (1, 2)} == METHOD_CASES[name]


def test_a_method_explains_wins_elsewhere_in_its_own_words():
    rules = parse_rules(rule_text(method="optimal"))
    scores = score_round(rules, METHOD_BIDS)
    reasons = allocate(rules, METHOD_BIDS, scores, 0).reasons
    assert reasons[1] == ("capacity: would exceed 40 accounts (holds 39, wins #2 in this round"
                          + ": " + str(ALLOCATION_METHODS["optimal"].elsewhere_note) + ")")


# --- rules/README.md and the registries ------------------------------------------------


def readme_table(heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first table after `heading` in rules/README.md."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index(f"\n{heading}\n"):]
    rows = []
    for line in after.splitlines()[1:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
        elif rows:
            break
    assert rows, f"no table after {heading!r}"
    return rows[2:]  # past the header and the |---| line


def names_in(rows: list[list[str]]) -> list[str]:
    return [row[0].strip("`") for row in rows]


def agree(rows: list[list[str]], expected: list[list[str]]) -> None:
    """The README rows equal the rows the registry implies; if not, show what to paste."""
    wanted = "\n".join("| " + " | ".join(row) + " |" for row in expected)
    assert rows == expected, f"rules/README.md should read:\n{wanted}"


def test_the_readme_states_the_metrics_as_registered():
    direction = {True: "more is better", False: "less is better", None: "rules decide"}
    rows = readme_table("#### Metrics")
    agree([[row[0], row[1], row[4], row[5]] for row in rows], [
        [f"`{name}`", metric.label, metric.unit, direction[metric.higher_is_better]]
        for name, metric in METRICS.items()])


def _settings_of(normaliser) -> str:
    shown = [f"`{param.name}` (" + ("required" if param.default is None
                                    else f"default {param.default:g}") + ")"
             for param in normaliser.params]
    return ", ".join(shown) or "none"


def test_the_readme_states_the_normalisers_as_registered():
    agree(readme_table("#### Normalisers"), [
        [f"`{name}`", normaliser.description, _settings_of(normaliser),
         "yes" if normaliser.uses_population else "no"]
        for name, normaliser in NORMALISERS.items()])


def _shown(key: str) -> str:
    setting = ELIGIBILITY_SETTINGS[key]
    if setting.kind == "boolean":
        return "true/false"
    kind = "whole number" if setting.kind == "whole" else "number"
    return f"{kind}, {setting.minimum:g}..{setting.maximum:g}"


def test_the_readme_states_the_eligibility_checks_as_registered():
    agree(readme_table("#### Eligibility checks"), [
        [f"`{rule.name}`", ", ".join(f"`{key}`" for key in rule.keys), rule.description]
        for rule in ELIGIBILITY_CHECKS.values()])
    owner = {key: name for name, rule in ELIGIBILITY_CHECKS.items() for key in rule.keys}
    settings = readme_table("### `[eligibility]`: who may win at all")
    agree([[row[0], row[1], row[3]] for row in settings],
          [[f"`{key}`", _shown(key), f"`{owner[key]}`"] for key in ELIGIBILITY_SETTINGS])


def test_the_readme_states_the_tie_breaks_as_registered():
    agree(readme_table("### Tie-breaks"), [
        [f"`{entry.name}`", entry.description] for entry in TIE_BREAKS.values()])


def test_the_readme_states_the_allocation_methods_as_registered():
    agree(readme_table("#### Allocation methods"), [
        [f"`{entry.name}`", entry.description] for entry in ALLOCATION_METHODS.values()])


# --- the rules settings form -----------------------------------------------------------


def test_the_settings_form_has_each_numeric_eligibility_setting_with_its_range(app):
    from wtforms.validators import NumberRange

    from bidhub.web.forms import rules_settings_form

    numeric = {key: setting for key, setting in ELIGIBILITY_SETTINGS.items()
               if setting.kind != "boolean"}
    with app.test_request_context():
        form = rules_settings_form(parse_rules(rule_text(eligibility="cooldown_months = 6")))
        shown = [field.name for field in form if field.name in ELIGIBILITY_SETTINGS]
        assert shown == list(numeric)
        for key, setting in numeric.items():
            [bounds] = [item for item in form[key].validators if isinstance(item, NumberRange)]
            assert (bounds.min, bounds.max) == (setting.minimum, setting.maximum)
            assert form[key].data == (6 if key == "cooldown_months" else setting.default)
