"""Stored codes reach people as labels in their language, never as the raw code."""

from __future__ import annotations

import re
from enum import StrEnum
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bidhub import models
from bidhub.domain.metrics import METRICS
from bidhub.services.accountability import AdType, Outcome
from bidhub.services.policies import BidOutcome
from bidhub.web import labels
from bidhub.web.rendering import TEMPLATE_ENUMS
from tests.conftest import login

TEMPLATES = Path(models.__file__).parent / "templates"
# Enums people meet; a new one needs its labels in bidhub/web/labels.py.
SHOWN_ENUMS = [models.Role, models.RepStatus, models.ReleaseReason, models.RoundStatus,
               models.ListingStatus, models.BidStatus, models.DecisionKind, models.FilingKind,
               models.ImportStatus, models.IncidentStatus, models.DeliveryStatus, BidOutcome,
               AdType, Outcome,
               labels.Stage]


@pytest.mark.parametrize("enum", SHOWN_ENUMS, ids=lambda enum: enum.__name__)
def test_every_member_of_a_shown_enum_has_a_label(enum):
    assert set(labels.LABELS[enum]) == {member.value for member in enum}
    for member in enum:
        assert labels.LABELS[enum][member] and "_" not in str(labels.LABELS[enum][member])


def test_the_labels_know_the_enums_templates_compare_with():
    known = {kind for kind in labels.LABELS if isinstance(kind, type)}
    shown = {enum for enum in TEMPLATE_ENUMS.values() if issubclass(enum, StrEnum)}
    assert shown <= known, f"no labels for {shown - known}"


def test_metric_labels_say_what_the_registry_says():
    assert {name: str(text) for name, text in labels.METRIC_LABELS.items()} == {
        name: str(metric.label) for name, metric in METRICS.items()}


def test_the_open_incidents_metric_says_in_chinese_that_it_counts_upheld_ones(app):
    """The metric counts incidents awaiting an explanation and upheld ones (decided, not
    open): its Chinese name says both, not 未结 (unsettled) alone."""
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert str(labels.metric_label("open_incidents")) == "待说明或已成立的问责事件"


def test_normaliser_labels_say_what_the_registry_says():
    from bidhub.domain.normalisers import NORMALISERS

    assert {name: str(text) for name, text in labels.NORMALISER_LABELS.items()} == {
        name: normaliser.label for name, normaliser in NORMALISERS.items()}


def test_funnel_stages_carry_their_probability(app):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert labels.stage_label("potential") == "Potential customer (10%)"
        assert labels.stage_label(labels.Stage.NEGOTIATION) == "Negotiation (70%)"
        assert labels.stage_label("won") == "Closed-won (100%)"
        assert labels.stage_label("lost") == "Lost"
    # The handbook's funnel (销售漏斗) in its own words and percentages.
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert [labels.stage_label(stage) for stage in ("potential", "intent", "proposal",
                                                        "negotiation", "won")] == [
            "潜在客户（10%）", "意向客户（30%）", "方案阶段（50%）", "商务谈判（70%）",
            "销售实现（100%）"]


def test_a_code_is_labelled_in_the_page_language_and_an_unknown_one_is_shown(app):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert labels.label("ka_manager", models.Role) == "KA manager"
        assert labels.label(models.ReleaseReason.NEGLECTED) == "Account neglected"
        assert labels.label("round_award", "filing_kind") == "Award in a bidding round"
        assert labels.label("imported") == "Imported"  # one enum knows it
        assert labels.label("refused") == "refused"  # an import's and a listing's: ambiguous
        assert labels.label("refused", models.ImportStatus) == "Refused"
        assert labels.label("state_owned", "ownership") == "State-owned"
        assert labels.label("someone_elses_code", "ownership") == "someone_elses_code"
        assert labels.label(None, models.Role) == ""
        assert labels.system_note("initial rules") == "initial rules"
        assert labels.system_note("raised the weight of win rate") == "raised the weight of win rate"
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert labels.label("ka_manager", models.Role) != "KA manager"


# `{{ x.status }}` printed without a filter, outside a tag's attribute.
RAW_CODE = re.compile(r"""(?<![-"=])\{\{\s*[\w.]+\.(role|status|kind|release_reason|stage|"""
                      r"""ad_type|executive_sponsor|ownership_type|reason_code)\s*\}\}""")


@pytest.mark.parametrize("path", sorted(TEMPLATES.rglob("*.html")),
                         ids=lambda path: str(path.relative_to(TEMPLATES)))
def test_templates_never_print_a_raw_code(path):
    text = path.read_text(encoding="utf-8")
    found = [match.group(0) for match in RAW_CODE.finditer(text)]
    found += re.findall(r"\|replace\('_', ' '\)", text)
    found = [snippet for snippet in found if "lang=" not in snippet]
    assert not found, f"{path.relative_to(TEMPLATES)} prints codes: {found}; use |label"


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._hidden += 1
        for name, value in attrs:
            if name in ("title", "aria-label", "placeholder", "data-confirm") and value:
                self.parts.append(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _VisibleText()
    parser.feed(html)
    return " ".join(parser.parts)


CODES = ["ka_manager", "rep_left", "on_leave", "round_award", "direct_transfer", "no_award",
         "results_published", "awaiting_confirmation", "state_owned", "joint_venture",
         "branch_general_manager", "decision_maker", "job_post"]


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_pages_show_labels_not_codes(app, client, session, make_manager, make_admin, make_rep,
                                     make_account, make_round, make_bid, language):
    from flask import url_for

    from bidhub.models import Contact, ListingStatus

    # Default usernames spell the role's code (ka_manager1); these people have their own.
    manager = make_manager(username="zhou", name="周建国")
    admin = make_admin(username="chen", name="陈立")
    rep = make_rep(status=models.RepStatus.ON_LEAVE)
    bidder = make_rep()
    account = make_account(owner=rep, ownership_type="state_owned")
    sponsored = make_account(owner=rep, ownership_type="joint_venture",
                             executive_sponsor="branch_general_manager")
    session.add(Contact(account_id=account.id, role="decision_maker", name="刘强",
                        title="HR总监", phone="010-1234"))
    round_ = make_round(accounts=[account, sponsored], manager=manager)
    round_.listings[1].status = ListingStatus.AWAITING_CONFIRMATION
    session.commit()
    make_bid(bidder, round_.listings[0])
    with app.test_request_context():
        pages = {manager: [url_for("manage.round_detail", round_id=round_.id),
                           url_for("manage.rounds"), url_for("profiles.reps"),
                           url_for("market.account", account_id=sponsored.id),
                           url_for("market.account", account_id=account.id),
                           url_for("manage.filings"), url_for("profiles.rep", rep_id=rep.id)],
                 admin: [url_for("admin.users"), url_for("sponsors.confirmations"),
                         url_for("sponsors.accounts")]}
    for user, urls in pages.items():
        login(client, user)
        for url in urls:
            response = client.get(url, headers={"Accept-Language": language})
            assert response.status_code == 200, url
            text = visible_text(response.get_data(as_text=True))
            leaked = [code for code in CODES if code in text]
            assert not leaked, f"{url} ({language}) shows {leaked}"
        client.post("/logout")


def test_the_note_bidhub_writes_on_the_first_rules_has_a_translation(session):
    from bidhub.services.rule_sets import active_rule_set

    assert active_rule_set(session).note in labels.SYSTEM_NOTES


def test_a_round_in_its_standstill_window_and_one_in_force_read_apart_in_chinese(app):
    """Both announced their results: one is still open to appeals, the other took effect."""
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert labels.label(models.RoundStatus.STANDSTILL, models.RoundStatus) == "公示中"
        assert labels.label(models.RoundStatus.RESULTS_PUBLISHED,
                            models.RoundStatus) == "公示结束，结果已生效"


def test_a_listing_on_the_list_and_the_registers_two_scores_read_as_they_are(app):
    """已上榜 is making a chart, not being put on a round's list; the register's column holds
    two scores, the winner's and the best of the other bids it was weighed against: not a
    person, and not 第二名 (second place), which an override's winner may score below."""
    from flask_babel import gettext

    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert labels.label(models.ListingStatus.LISTED, models.ListingStatus) == "已列入竞标"
        assert gettext("Winner / runner-up") == "中标得分 / 其余最高得分"
        assert gettext("Runner-up score") == "其余最高得分"
