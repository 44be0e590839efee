"""Templates compare statuses and roles through the enums and named policies, never literals."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

import pytest

from bidhub import models
from bidhub.services import policies
from bidhub.web.rendering import TEMPLATE_ENUMS

TEMPLATES = Path(models.__file__).parent / "templates"

ENUMS = [value for value in vars(models).values()
         if isinstance(value, type) and issubclass(value, StrEnum) and value is not StrEnum]
ENUMS.append(policies.BidOutcome)
ENUM_VALUES = {member.value for enum in ENUMS for member in enum}

LITERAL = r"""(?:'([^'\\]*)'|"([^"\\]*)")"""
# `x == 'v'`, `x != "v"`, `'v' == x`, `x is 'v'`, `x in ('v', ...)` / `[...]`, and the
# `equalto` / `sameas` tests of selectattr and friends.
COMPARISONS = [
    re.compile(rf"(?:==|!=|\bis\s+(?:not\s+)?)\s*{LITERAL}"),
    re.compile(rf"{LITERAL}\s*(?:==|!=)"),
    re.compile(rf"\bin\s*[(\[]\s*((?:{LITERAL}\s*,?\s*)+)[)\]]"),
    re.compile(rf"['\"](?:equalto|sameas|eq|ne)['\"]\s*,\s*{LITERAL}"),
]


def template_expressions(text: str) -> list[tuple[int, str]]:
    """The Jinja tags and expressions of a template with their line numbers."""
    return [(text.count("\n", 0, match.start()) + 1, match.group(0))
            for match in re.finditer(r"{%.*?%}|{{.*?}}", text, re.DOTALL)]


def literal_comparisons(text: str) -> list[tuple[int, str, str]]:
    found = []
    for line, expression in template_expressions(text):
        for pattern in COMPARISONS:
            for match in pattern.finditer(expression):
                literals = re.findall(LITERAL, match.group(0))
                for single, double in literals:
                    value = single or double
                    if value in ENUM_VALUES:
                        found.append((line, value, match.group(0)))
    return found


def test_the_scan_catches_each_form_of_comparison():
    caught = [
        "{% if round.status == 'published' %}", '{% if user.role == "rep" %}',
        "{% if round.status != 'draft' %}", "{{ 'x' if 'scored' == round.status }}",
        "{% if round.status in ('draft', 'published') %}", "{% if bid.status in ['active'] %}",
        "{{ bids|selectattr('status', 'equalto', 'withdrawn')|list }}",
        "{% if incident.status is 'open' %}",
    ]
    for text in caught:
        assert literal_comparisons(text), text
    allowed = [
        "{% if round.status == RoundStatus.PUBLISHED %}", "{% if f.type == 'BooleanField' %}",
        "{% if name in ('win_rate', 'retention') %}", "<p>published</p>",
        "{{ _('published') }}",
    ]
    for text in allowed:
        assert not literal_comparisons(text), text


@pytest.mark.parametrize("path", sorted(TEMPLATES.rglob("*.html")),
                         ids=lambda path: str(path.relative_to(TEMPLATES)))
def test_templates_never_compare_statuses_or_roles_with_literals(path):
    found = literal_comparisons(path.read_text(encoding="utf-8"))
    assert not found, "\n".join(
        f"{path.relative_to(TEMPLATES)}:{line}: {snippet!r} compares with {value!r}; use the enum "
        "or a named policy from bidhub/services/policies.py" for line, value, snippet in found)


def test_every_status_and_role_enum_is_available_to_templates():
    assert set(ENUMS) <= set(TEMPLATE_ENUMS.values())


def test_metric_values_are_shown_in_their_registered_unit():
    from bidhub.web.rendering import metric_value

    assert metric_value(0.5, "win_rate") == "50%"
    assert metric_value(1.25, "revenue_attainment") == "125%"
    assert metric_value(1234567.0, "weighted_pipeline") == "¥1,234,567"
    assert metric_value(12.0, "accounts_held") == "12"
    assert metric_value(3.14159, "a_metric_since_removed") == "3.14"
    assert metric_value(None, "win_rate") == "—"


def test_large_counts_are_whole_numbers_with_grouping_and_months_keep_their_decimals():
    from bidhub.web.rendering import metric_value

    # Counts are whole; three significant digits turned 1,234 into "1.23e+03".
    assert metric_value(1234.0, "accounts_held") == "1,234"
    assert metric_value(12_345.0, "open_incidents") == "12,345"
    assert metric_value(0.0, "unreviewed_losses") == "0"
    # Other numbers: up to two decimals, never rounded up to a whole number not reached, so
    # 5.999 months is not shown as the 6 a minimum asks for.
    assert metric_value(1273.987, "tenure_months") == "1,273.99"
    assert metric_value(182 / 30.4375, "tenure_months") == "5.98"
    assert metric_value(5.98, "tenure_months") == "5.98"
    assert metric_value(5.999, "tenure_months") == "5.99"
    assert metric_value(24.0, "tenure_months") == "24"
    assert metric_value(0.29, "tenure_months") == "0.29"
    assert metric_value(12_345.5, "a_metric_since_removed") == "12,345.5"


def test_a_field_is_marked_invalid_only_when_it_has_errors(client):
    page = client.get("/login").get_data(as_text=True)
    assert "aria-invalid" not in page
    refused = client.post("/login", data={"username": "", "password": ""}).get_data(as_text=True)
    assert 'aria-invalid="true"' in refused
    assert 'aria-invalid="None"' not in refused


BREAKDOWN_FACTORS = """
[[factors]]
metric = "weighted_pipeline"
weight = 0.05
normaliser = "minmax"

[[factors]]
metric = "unreviewed_losses"
weight = -0.05
normaliser = "cap"
cap = 2
"""


def test_the_score_breakdown_shows_each_raw_value_in_its_unit(
        session, clock, make_manager, make_rep, make_account, make_round, make_bid, login_as):
    """The score breakdown (the listing's ranking; the bidder's page shows the same table)
    writes each raw value in its unit, as the track record does: three significant digits
    turned a count of 1,234 into 1.23e+03, a pipeline of 1,234,567 yuan into 1.23e+06 and a
    win rate of 50% into 0.5."""
    from bidhub.services import adjudication
    from bidhub.services.rule_sets import active_rule_set, adopt_rule_set

    text = active_rule_set(session).text + BREAKDOWN_FACTORS
    adopt_rule_set(session, None, text, "with units", "every unit in the breakdown", clock())
    session.commit()
    manager = make_manager()
    round_ = make_round(accounts=[make_account()], manager=manager)
    listing = round_.listings[0]
    bid = make_bid(make_rep(name="Wang"), listing)
    bid.track_record = {**bid.track_record, "win_rate": 0.5, "retention": 0.25,
                        "tenure_months": 5.98, "weighted_pipeline": 1_234_567.0,
                        "unreviewed_losses": 1234.0, "capacity_headroom": 12.0,
                        "open_incidents": 0.0}
    session.commit()
    clock.advance(days=8)
    assert adjudication.score_closed_round(session, round_.id, clock())
    client = login_as(manager)

    def raw_values(language: str) -> list[str]:
        html = client.get(f"/manage/listings/{listing.id}",
                          headers={"Accept-Language": language}).get_data(as_text=True)
        table = re.search(r'<table class="breakdown">.*?</table>', html, re.S).group(0)
        cells = re.findall(r'<tr>\s*<td class="term">[^<]*</td>\s*<td class="num">(.*?)</td>',
                           table, re.S)
        return [re.sub(r"<[^>]*>", "", cell).strip() for cell in cells]

    # In the rules' order: win rate, stage conversion (no data: the median stands in),
    # retention, capacity headroom, tenure, open incidents, weighted pipeline, unreviewed
    # losses.
    assert raw_values("en") == ["50%", "no data", "25%", "12 accounts", "5.98 months",
                                "0 incidents", "¥1,234,567", "1,234 accounts"]
    assert raw_values("zh-CN") == ["50%", "无数据", "25%", "12 个客户", "5.98 个月",
                                   "0 条问责", "¥1,234,567", "1,234 个客户"]
