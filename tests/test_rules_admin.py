"""Admins tune rules safely: live checks, a diff, a what-if replay, adoption with a note."""

from __future__ import annotations

import codecs
import html
import os
import re
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bidhub import create_app
from bidhub.domain.rules import RuleError, parse_rules
from bidhub.models import AuditEvent, Round, RuleSetVersion
from bidhub.services import adjudication
from bidhub.services.rule_sets import (
    RuleFileError,
    active_rule_set,
    adopt_rule_set,
    parsed,
    write_settings,
)
from tests.conftest import reload


@pytest.fixture
def scored_round(session, clock, make_rep, make_account, make_round, make_bid,
                 make_opportunities):
    history = make_account()
    strong, weak = make_rep(name="Strong Rep"), make_rep(name="Weak Rep")
    make_opportunities(strong, history, won=9, lost=1)
    make_opportunities(weak, history, won=1, lost=9)
    round_ = make_round(accounts=[make_account(name="Replay Account")],
                        closes_at=clock() + timedelta(hours=1))
    make_bid(strong, round_.listings[0])
    make_bid(weak, round_.listings[0])
    clock.advance(hours=1)
    adjudication.score_closed_round(session, round_.id, clock())
    return round_


DEFAULT_RULES = Path(__file__).resolve().parents[1] / "rules" / "default.toml"


def line_of(written: str) -> int:
    """The number of the default rules' first line that starts with `written`: the messages
    name lines, and the file's comments may move them."""
    lines = DEFAULT_RULES.read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, start=1) if line.startswith(written))


CAPACITY_LINE = line_of("capacity_max = 40")  # where a typo in the eligibility table lands
WEIGHT_LINE = line_of("weight = 0.35")  # the first factor's weight
NAME_LINE = line_of('name = "default"')


def active_text(session) -> str:
    return active_rule_set(session).text


def test_the_rules_page_shows_the_active_rules_and_their_hash(app, session, make_admin, login_as):
    client = login_as(make_admin())
    html = client.get("/admin/rules").get_data(as_text=True)
    assert active_rule_set(session).sha256[:12] in html
    assert "capacity_max = 40" in html


def test_live_check_lists_every_problem_with_its_key(app, session, make_admin, login_as):
    client = login_as(make_admin())
    broken = active_text(session).replace("capacity_max = 40", "capacity_max = 20").replace(
        'metric = "win_rate"', 'metric = "win_rat"')
    response = client.post("/admin/rules/check", data={"text": broken},
                           headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="rules-check"')
    assert "eligibility.capacity_max" in html and "below capacity_target" in html
    assert "unknown metric" in html and "2 problems" in html
    assert "-capacity_max = 40" in html  # the diff against the active rules
    assert "--- active" in html and "+++ draft" in html
    chinese = client.post("/admin/rules/check", data={"text": broken},
                          headers={"HX-Request": "true", "Accept-Language": "zh-CN"}
                          ).get_data(as_text=True)
    assert "--- 当前生效" in chinese and "+++ 草稿" in chinese and "active" not in chinese


def test_live_check_points_out_a_weight_against_the_metrics_direction(app, session, make_admin,
                                                                     login_as):
    client = login_as(make_admin())
    odd = active_text(session).replace("weight = -0.20", "weight = 0.20")
    html = client.post("/admin/rules/check", data={"text": odd}).get_data(as_text=True)
    assert "Valid. New version" in html and "Worth a second look" in html
    assert "Valid. New version: <code>" in html
    html = client.post("/admin/rules/check", data={"text": odd},
                       headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "有效。新版本：<code>" in html


def test_what_if_replays_a_round_and_shows_changed_awards(app, session, scored_round,
                                                          make_admin, login_as):
    client = login_as(make_admin())
    same = client.post("/admin/rules/what-if", data={"text": active_text(session),
                                                     "round_id": scored_round.id})
    assert "0 awards would change" in same.get_data(as_text=True)
    inverted = active_text(session).replace("weight = 0.35", "weight = -5")
    changed = client.post("/admin/rules/what-if", data={"text": inverted,
                                                        "round_id": scored_round.id})
    html = changed.get_data(as_text=True)
    assert "1 award would change" in html
    assert "Strong Rep" in html and "Weak Rep" in html


def test_adopting_needs_a_note_and_is_audited_and_frozen_rounds_keep_their_rules(
        app, session, scored_round, make_admin, login_as):
    client = login_as(make_admin())
    before = active_rule_set(session)
    draft = before.text.replace("cooldown_months = 6", "cooldown_months = 9")
    refused = client.post("/admin/rules/adopt", data={
        "text": draft, "note": "", "expected_active_id": before.id})
    assert refused.status_code == 422
    assert "change note" in refused.get_data(as_text=True)
    adopted = client.post("/admin/rules/adopt", data={
        "text": draft, "note": "Longer cooldown after complaints.",
        "expected_active_id": before.id})
    assert adopted.status_code == 303
    reload(session)
    after = active_rule_set(session)
    assert after.id != before.id and after.note == "Longer cooldown after complaints."
    assert session.get(RuleSetVersion, before.id).is_active is False
    assert session.get(Round, scored_round.id).rule_set_id == before.id
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "rules.adopted")
                            .order_by(AuditEvent.id.desc())).first()
    assert event.before["sha256"] == before.sha256 and event.after["sha256"] == after.sha256


def test_a_stale_rules_editor_gets_a_conflict(app, session, make_admin, login_as):
    client = login_as(make_admin())
    before = active_rule_set(session)
    first = before.text.replace("cooldown_months = 6", "cooldown_months = 7")
    second = before.text.replace("cooldown_months = 6", "cooldown_months = 8")
    assert client.post("/admin/rules/adopt", data={
        "text": first, "note": "first", "expected_active_id": before.id}).status_code == 303
    stale = client.post("/admin/rules/adopt", data={
        "text": second, "note": "second", "expected_active_id": before.id})
    assert stale.status_code == 409


def test_the_settings_form_writes_a_valid_draft(app, session, make_admin, login_as):
    client = login_as(make_admin())
    rules_text = active_text(session)
    from bidhub.domain.rules import parse_rules

    rules = parse_rules(rules_text)
    data = {"capacity_max": "38", "capacity_target": "30", "min_tenure_months": "3",
            "max_open_incidents": "2", "cooldown_months": "6",
            "max_awards_per_rep_per_round": "3", "min_bids_per_listing": "1"}
    data |= {f"weight_{index}": str(factor.weight) for index, factor in enumerate(rules.factors)}
    data["weight_0"] = "0.5"
    html = client.post("/admin/rules/settings", data=data).get_data(as_text=True)
    assert "capacity_max = 38" in html
    assert "Valid. New version" in html
    bad = client.post("/admin/rules/settings", data={**data, "capacity_max": "0"})
    assert bad.status_code == 422
    for language, expected in (("en", "Enter a number between -1,000 and 1,000."),
                               ("zh-CN", "请输入 -1,000 到 1,000 之间的数字。")):
        heavy = client.post("/admin/rules/settings", data={**data, "weight_0": "5000"},
                            headers={"Accept-Language": language})
        assert heavy.status_code == 422
        assert expected in heavy.get_data(as_text=True) and "1000.0" not in heavy.get_data(
            as_text=True)


def settings_sent(page: str) -> dict:
    """What the page's numbers form sends as it was drawn (the numbers and its hidden fields)."""
    form = re.search(r'<form[^>]*action="/admin/rules/settings".*?</form>', page, re.S).group(0)
    return {name: html.unescape(value) for name, value in re.findall(
        r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form)}


def editor_text(page: str) -> str:
    """The draft in the page's editor (WTForms starts a textarea with a line break)."""
    text = re.search(r'<textarea[^>]*name="text"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    return html.unescape(text).removeprefix("\r\n")


def test_the_numbers_form_writes_into_the_draft_being_edited(app, session, make_admin,
                                                             login_as):
    """The form writes the numbers changed in it into the draft the admin is editing: what was
    typed there stays (a number the form still shows as drawn is not put back), and a weight
    goes to the factor that scores its metric, wherever the draft has moved it."""
    client = login_as(make_admin())
    before = active_rule_set(session)
    data = settings_sent(client.get("/admin/rules").get_data(as_text=True))
    assert data["weight_0"] == "0.35" and data["cooldown_months"] == "6"
    stage = '[[factors]]\nmetric = "stage_conversion"\nweight = 0.15\nnormaliser = "minmax"\n\n'
    assert stage in before.text
    typed = (before.text.replace("cooldown_months = 6\n", "cooldown_months = 9\n")
             .replace(stage, "").replace("[[factors]]", stage + "[[factors]]", 1)
             + "\n[flags]\nstale_crm_days = 14\n")
    response = client.post("/admin/rules/settings", data={
        **data, "text": typed, "note": "Narrower band, win rate first.", "weight_0": "0.5",
        "capacity_max": "38"})
    assert response.status_code == 200
    assert 'value="Narrower band, win rate first."' in response.get_data(as_text=True)
    written = parse_rules(editor_text(response.get_data(as_text=True)))
    assert written.eligibility.cooldown_months == 9  # typed in the draft, kept
    assert written.flags.stale_crm_days == 14
    assert written.eligibility.capacity_max == 38  # changed in the form, written
    assert [(factor.metric, factor.weight) for factor in written.factors[:2]] == [
        ("stage_conversion", 0.15), ("win_rate", 0.5)]
    assert "Valid. New version" in response.get_data(as_text=True)
    # The form now shows the numbers of the draft it wrote, so the next change builds on it.
    again = settings_sent(response.get_data(as_text=True))
    assert again["cooldown_months"] == "9" and again["weight_1"] == "0.5"
    assert again["expected_active_id"] == str(before.id)
    unchanged = client.post("/admin/rules/settings", data=again)
    assert editor_text(unchanged.get_data(as_text=True)) == again["text"]
    assert "No number in the form was changed" in unchanged.get_data(as_text=True)
    reload(session)
    assert session.scalars(select(RuleSetVersion)).all() == [before]
    adopted = client.post("/admin/rules/adopt", data={
        "text": again["text"], "note": "From the numbers form.",
        "expected_active_id": again["expected_active_id"]})
    assert adopted.status_code == 303
    reload(session)
    assert parsed(active_rule_set(session)).eligibility.cooldown_months == 9


_ELIGIBILITY_NUMBERS = ("capacity_max", "capacity_target", "min_tenure_months",
                        "max_open_incidents", "cooldown_months")


@settings(max_examples=60, deadline=None, derandomize=True)
@given(typed=st.dictionaries(st.sampled_from(_ELIGIBILITY_NUMBERS), st.integers(0, 60)),
       changed=st.dictionaries(st.sampled_from(_ELIGIBILITY_NUMBERS),
                               st.none() | st.integers(0, 60)),
       weights=st.dictionaries(st.sampled_from(["win_rate", "retention", "open_incidents"]),
                               st.floats(-1000, 1000)))
def test_writing_numbers_changes_what_was_changed_and_keeps_the_rest_of_the_draft(
        typed, changed, weights):
    draft = DEFAULT_RULES.read_text(encoding="utf-8")
    for key, value in typed.items():  # numbers typed into the draft
        draft = re.sub(rf"^{key} = \d+", f"{key} = {value}", draft, count=1, flags=re.M)
    before = tomllib.loads(draft)
    after = tomllib.loads(write_settings(draft, {f"eligibility.{key}": value
                                                 for key, value in changed.items()}, weights))
    for key in _ELIGIBILITY_NUMBERS:
        expected = changed[key] if key in changed else before["eligibility"].get(key)
        assert after["eligibility"].get(key) == expected, key
    assert [factor["metric"] for factor in after["factors"]] == [
        factor["metric"] for factor in before["factors"]]
    for old, new in zip(before["factors"], after["factors"], strict=True):
        assert new == {**old, "weight": weights.get(old["metric"], old["weight"])}
    # The draft's comments stay, each where it was: the diff shows the numbers changed alone.
    written = write_settings(draft, {f"eligibility.{key}": value
                                     for key, value in changed.items()}, weights)
    comments = [line for line in draft.splitlines() if line.lstrip().startswith("#")]
    assert [line for line in written.splitlines() if line.lstrip().startswith("#")] == comments
    assert {key: value for key, value in after.items() if key not in ("eligibility", "factors")} == {
        key: value for key, value in before.items() if key not in ("eligibility", "factors")}


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_the_numbers_form_keeps_a_draft_it_cannot_write_into(app, session, make_admin,
                                                             login_as, language):
    client = login_as(make_admin())
    before = active_rule_set(session)
    data = settings_sent(client.get("/admin/rules").get_data(as_text=True))
    broken = before.text.replace("capacity_max = 40", "capacity_max = = 40")
    without_win_rate = re.sub(r'\[\[factors\]\]\nmetric = "win_rate".*?\n\n', "", before.text,
                              count=1, flags=re.S)
    reasons = {
        "en": ("The numbers were not written into your draft, which is kept as it was:",
               f"not valid TOML at line {CAPACITY_LINE}",
               "the draft has no factor scoring win_rate"),
        "zh-CN": ("数值没有写入你的草稿，草稿保持原样：", f"TOML 格式错误，在第 {CAPACITY_LINE} 行",
                  "草稿中已没有对 win_rate 评分的因子")}[language]
    for draft, reason, changes in ((broken, reasons[1], {"capacity_max": "38"}),
                                   (without_win_rate, reasons[2], {"weight_0": "0.5"}),
                                   (broken, "", {"capacity_max": "0"})):
        response = client.post("/admin/rules/settings", headers={"Accept-Language": language},
                               data={**data, "text": draft, **changes})
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert editor_text(page) == draft  # kept, as typed
        if reason:
            assert reasons[0] in html.unescape(page) and reason in html.unescape(page)
    reload(session)
    assert session.scalars(select(RuleSetVersion)).all() == [before]


def test_rescore_verify_reproduces_a_scored_round(app, scored_round):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["rescore", "--verify", str(scored_round.id)])
    assert result.exit_code == 0, result.output
    assert "reproduce exactly" in result.output


def test_rescore_verify_reports_a_tampered_score(app, session, scored_round):
    from sqlalchemy import update

    from bidhub.models import BidScore

    session.execute(update(BidScore).values(total=BidScore.total + 1))
    session.commit()
    result = app.test_cli_runner().invoke(args=["rescore", "--verify", str(scored_round.id)])
    assert result.exit_code == 1
    assert "recorded total" in result.output


def test_replaying_a_round_under_its_own_rules_reproduces_the_proposal(session, scored_round):
    from bidhub.services.replays import what_if
    from bidhub.services.rule_sets import parsed

    round_ = session.get(Round, scored_round.id)
    stored, comparison = what_if(session, round_.id, parsed(round_.rule_set))
    assert comparison.award_changes == () and comparison.changed_scores == ()
    assert any(stored.proposed.values())


# --- hostile rule texts: never a 500 or a traceback, always the key and the reason -------

HOSTILE_DRAFTS = {
    "a 400-digit weight": ("weight = 0.35", "weight = " + "9" * 400, "factors[0].weight",
                           "a number written with 400 characters"),
    "nesting 2,000 deep": ("weight = 0.35", "weight = " + "[" * 2000 + "]" * 2000,
                           "factors[0].weight", "nested more than 16 levels deep"),
    "inline tables 3,000 deep": ("weight = 0.35", "weight = " + "{a=" * 3000 + "1" + "}" * 3000,
                                 "factors[0].weight", "nested more than 16 levels deep"),
    "a huge capacity": ("capacity_max = 40", "capacity_max = 99999999999999999999",
                        "eligibility.capacity_max", "must be at most 1,000"),
    "a capacity past the handbook's": ("capacity_max = 40", "capacity_max = 45",
                                       "eligibility.capacity_max",
                                       "the handbook allows a rep at most 40 accounts"),
    "a dotted key 20,000 parts long": ("[caps]", "a" + ".a" * 20_000 + " = 1\n[caps]",
                                       "factors[5].a.a.a",
                                       "a dotted key with more than 16 parts"),
    # TOML escapes write control characters that PostgreSQL text cannot hold (NUL) or that
    # a page or a terminal would act on.
    "a NUL escaped in the name": ('name = "default"', 'name = "de\\u0000fault"', "name",
                                  "contains the control character U+0000"),
    "an escape character in the description": (
        'description = "', 'description = "\\u001b[2J', "description",
        "contains the control character U+001B"),
    # Each version stores the name in a column of 100 characters: PostgreSQL refused a longer
    # one when the draft was adopted.
    "a name longer than its column": ('name = "default"', 'name = "' + "规" * 101 + '"', "name",
                                      "at most 100 characters, got 101"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_DRAFTS))
def test_live_check_of_a_hostile_draft_names_the_key_and_reason(app, session, make_admin,
                                                                login_as, case):
    old, new, path, reason = HOSTILE_DRAFTS[case]
    client = login_as(make_admin())
    draft = active_text(session).replace(old, new, 1)
    response = client.post("/admin/rules/check", data={"text": draft},
                           headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f"<code>{path}" in html and reason in html and "1 problem" in html
    assert "(line " in html


def test_hostile_drafts_are_refused_by_what_if_and_adopt_and_nothing_changes(
        app, session, scored_round, make_admin, login_as):
    client = login_as(make_admin())
    before = active_rule_set(session)
    for old, new, _path, reason in HOSTILE_DRAFTS.values():
        draft = before.text.replace(old, new, 1)
        replay = client.post("/admin/rules/what-if", data={"text": draft,
                                                           "round_id": scored_round.id})
        assert replay.status_code == 200
        assert "fix them before replaying" in replay.get_data(as_text=True)
        adopt = client.post("/admin/rules/adopt", data={
            "text": draft, "note": "hostile", "expected_active_id": before.id})
        assert adopt.status_code == 422 and reason in adopt.get_data(as_text=True)
    reload(session)
    assert active_rule_set(session).id == before.id
    assert session.scalars(select(RuleSetVersion)).all() == [before]


def test_a_draft_over_the_size_limit_is_refused_without_a_diff(app, session, make_admin,
                                                               login_as):
    client = login_as(make_admin())
    draft = active_text(session) + "# padding\n" * 7000
    html = client.post("/admin/rules/check", data={"text": draft}).get_data(as_text=True)
    assert "at most 65,536 bytes (64 KiB)" in html
    assert "Changes against the active rules" not in html


def test_the_editor_cuts_no_paste_and_the_server_refuses_one_too_large_with_its_size(
        app, session, make_admin, login_as):
    """The page sets no length on the draft (a browser cuts a longer paste without a word); a
    draft over the rules' limit reaches the server whole and is refused with its size and the
    limit, in the page's language, and nothing is adopted."""
    client = login_as(make_admin())
    before = active_rule_set(session)
    page = client.get("/admin/rules").get_data(as_text=True)
    [editor] = re.findall(r'<textarea[^>]*name="text"[^>]*>', page)
    assert "maxlength" not in editor
    draft = before.text + "# 规则说明的一行\n" * 12_000 + "# end"  # 120,000 characters more
    size = len(draft.encode("utf-8"))
    assert len(draft) > 100_000
    for language, refusal in (
            ("zh-CN", f"规则文件有 {size:,} 字节；规则文件最多 65,536 字节（64 KiB）"),
            ("en", f"the rules are {size:,} bytes; a rule file may hold at most 65,536 bytes "
                   "(64 KiB)")):
        adopt = client.post("/admin/rules/adopt", headers={"Accept-Language": language}, data={
            "text": draft, "note": "pasted", "expected_active_id": before.id})
        assert adopt.status_code == 422
        errors = re.findall(r'<p class="error">(.*?)</p>', html.unescape(
            adopt.get_data(as_text=True)))
        assert len(errors) == 1 and refusal in errors[0], errors
        check = client.post("/admin/rules/check", data={"text": draft},
                            headers={"Accept-Language": language, "HX-Request": "true"})
        assert refusal in html.unescape(check.get_data(as_text=True))
    reload(session)
    assert session.scalars(select(RuleSetVersion)).all() == [before]


def test_a_draft_too_large_to_read_is_refused_with_the_rules_limit(app, session, make_admin,
                                                                   login_as):
    """Past the request limit the draft is not read at all; the answer still names the rules'
    limit, not an upload's, on the page and in the live check."""
    app.config["MAX_CONTENT_LENGTH"] = 256 * 1024
    client = login_as(make_admin())
    before = active_rule_set(session)
    draft = before.text + "# 说明\n" * 60_000
    for url, headers in (("/admin/rules/adopt", {}), ("/admin/rules/check", {"HX-Request": "true"})):
        response = client.post(url, headers={"Accept-Language": "zh-CN", **headers}, data={
            "text": draft, "note": "pasted", "expected_active_id": before.id})
        assert response.status_code == 413
        body = html.unescape(response.get_data(as_text=True))
        assert "规则文件最多 65,536 字节（64 KiB）" in body and "未保存任何内容" in body, body
        assert "上传" not in body
    reload(session)
    assert session.scalars(select(RuleSetVersion)).all() == [before]


def test_a_weight_too_small_to_count_is_refused_in_a_draft_and_a_stored_one_still_reads(
        app, session, clock, scored_round, make_admin, login_as):
    client = login_as(make_admin())
    before = active_rule_set(session)
    draft = before.text.replace("weight = 0.35", "weight = 1e-400", 1)
    chinese = (f"factors[0].weight（第 {WEIGHT_LINE} 行）：权重 1e-400 太小，不起作用："
               "各项得分和总分保留 6 位小数，"
               "绝对值不超过 0.0000005 的权重会让每一项得分都为 0；不计这一项请写 0，否则权重的绝对值"
               "至少为 0.000001")
    check = client.post("/admin/rules/check", data={"text": draft},
                        headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert problem_items(check) == [chinese]
    replay = client.post("/admin/rules/what-if", data={"text": draft,
                                                       "round_id": scored_round.id})
    assert "fix them before replaying" in replay.get_data(as_text=True)
    adopt = client.post("/admin/rules/adopt", headers={"Accept-Language": "zh-CN"}, data={
        "text": draft, "note": "tiny", "expected_active_id": before.id})
    assert adopt.status_code == 422
    assert chinese.split("：", 1)[1] in html.unescape(adopt.get_data(as_text=True))
    reload(session)
    assert session.scalars(select(RuleSetVersion)).all() == [before]
    # A version stored with such a weight (adopted before the check) reads as it was adopted.
    stored = adopt_rule_set(session, None, draft, "older", "stored earlier", clock())
    session.commit()
    assert parsed(stored).factors[0].weight == 0.0
    assert parsed(stored).version_hash == stored.sha256
    page = client.get("/admin/rules")
    assert page.status_code == 200 and stored.sha256[:12] in page.get_data(as_text=True)


def test_a_flood_of_problems_shows_fifty_and_counts_the_rest(app, session, make_admin,
                                                             login_as):
    client = login_as(make_admin())
    draft = active_text(session) + "".join(f"[caps.k{index}]\n" for index in range(1234))
    html = client.post("/admin/rules/check", data={"text": draft}).get_data(as_text=True)
    assert "1234 problems" in html and "and 1,184 more problems" in html
    assert html.count("unknown key") == 50


def test_a_draft_pasted_with_a_byte_order_mark_is_valid_and_stored_without_it(
        app, session, make_admin, login_as):
    client = login_as(make_admin())
    before = active_rule_set(session)
    draft = "\ufeff" + before.text.replace("cooldown_months = 6", "cooldown_months = 7")
    html = client.post("/admin/rules/check", data={"text": draft}).get_data(as_text=True)
    assert "Valid. New version" in html and "Invalid statement" not in html
    adopted = client.post("/admin/rules/adopt", data={
        "text": draft, "note": "Pasted from Notepad.", "expected_active_id": before.id})
    assert adopted.status_code == 303
    reload(session)
    assert not active_rule_set(session).text.startswith("\ufeff")


# --- the command line, run as a real process ---------------------------------------------

GBK_COMMENTS = "# 竞标规则（记事本默认另存为 GBK）：每位销售最多持有四十个大客户\n"


def run_bidhub(*args: str, tmp_path: Path, rules_dir: Path | None = None):
    env = {**os.environ, "BIDHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
           "BIDHUB_SECRET_KEY": "test-only"}
    if rules_dir is not None:
        env["BIDHUB_RULES_DIR"] = str(rules_dir)
    script = Path(sys.executable).with_name("bidhub")  # the installed console script
    command = [str(script), *args] if script.exists() else [
        sys.executable, "-c", "from bidhub.cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env,  # noqa: S603
                          timeout=120, check=False)


def gbk_rules(replace: tuple[str, str] = ("", "")) -> bytes:
    text = GBK_COMMENTS + DEFAULT_RULES.read_text(encoding="utf-8").replace(*replace)
    return text.replace("[eligibility]", "# 资格条件\n[eligibility]").encode("gbk")


def test_rules_check_accepts_a_gbk_file_with_chinese_comments(tmp_path):
    path = tmp_path / "gbk.toml"
    path.write_bytes(gbk_rules())
    with pytest.raises(UnicodeDecodeError):
        path.read_text(encoding="utf-8")
    result = run_bidhub("rules", "check", str(path), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{path}: valid." in result.stdout


HOSTILE_FILES = {
    # gbk_rules writes two comment lines above the key: one at the top, one above its table.
    "gbk-broken.toml": (gbk_rules(("capacity_max = 40", "capacity_max = 25")),
                        f"eligibility.capacity_max (line {CAPACITY_LINE + 2}): capacity_max "
                        "(25) is below capacity_target (30)"),
    "big-weight.toml": (DEFAULT_RULES.read_bytes().replace(b"weight = 0.35",
                                                           b"weight = " + b"9" * 400),
                        f"factors[0].weight (line {WEIGHT_LINE}): a number written with 400 "
                        "characters"),
    "deep.toml": (DEFAULT_RULES.read_bytes().replace(b"weight = 0.35", b"weight = "
                                                     + b"[" * 2500 + b"]" * 2500),
                  f"factors[0].weight (line {WEIGHT_LINE}): nested more than 16 levels deep"),
    "utf16.toml": (DEFAULT_RULES.read_text(encoding="utf-8").encode("utf-16"),
                   "(file): the file is saved as UTF-16 or UTF-32; save it as UTF-8"),
    "binary.toml": (b"name = \"\xff\xff\"\n", "(file) (line 1): the file is neither UTF-8 nor"),
    "huge.toml": (DEFAULT_RULES.read_bytes() + b"#" * 70_000,
                  f"(file): the rules are {len(DEFAULT_RULES.read_bytes()) + 70_000:,} bytes"),
    "flood.toml": (DEFAULT_RULES.read_bytes() + b"".join(
        b"[caps.k%d]\n" % index for index in range(300)), "and 250 more problems"),
}
# The cases the issue saw crash, run as a real process; the rest in-process (faster).
SUBPROCESS_FILES = ("gbk-broken.toml", "big-weight.toml", "deep.toml")


@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
def test_rules_check_reports_a_hostile_file_without_a_traceback(tmp_path, name):
    from click.testing import CliRunner

    from bidhub.cli import rules_check_command

    data, expected = HOSTILE_FILES[name]
    path = tmp_path / name
    path.write_bytes(data)
    if name in SUBPROCESS_FILES:
        result = run_bidhub("rules", "check", str(path), tmp_path=tmp_path)
        code, stdout, stderr = result.returncode, result.stdout, result.stderr
    else:
        result = CliRunner().invoke(rules_check_command, [str(path)])
        code, stdout, stderr = result.exit_code, result.stdout, result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert code == 1
    assert "Traceback" not in stderr + stdout
    assert f"{path}: {expected}" in stderr, stderr


def test_rules_check_accepts_a_utf8_file_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(codecs.BOM_UTF8 + DEFAULT_RULES.read_bytes())
    result = run_bidhub("rules", "check", str(path), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Invalid statement" not in result.stderr


# --- start-up with a broken default rule file ----------------------------------------------

BROKEN_DEFAULTS = {
    "gbk": (gbk_rules(("capacity_max = 40", "capacity_max = 25")), "eligibility.capacity_max",
            "capacity_max (25) is below capacity_target (30)"),
    "big weight": (DEFAULT_RULES.read_bytes().replace(b"weight = 0.35", b"weight = " + b"9" * 310),
                   "factors[0].weight", "a number written with 310 characters"),
    "deep": (DEFAULT_RULES.read_bytes().replace(b"cap = 15", b"cap = " + b"[" * 2000
                                                + b"]" * 2000), "factors[3].cap",
             "nested more than 16 levels deep"),
    "undecodable": (b"name = \"\x80\"\n", "(file)", "neither UTF-8 nor GBK/GB18030"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_DEFAULTS))
def test_a_broken_default_rule_file_stops_start_up_with_one_paragraph(app_config, tmp_path,
                                                                      case):
    data, path, reason = BROKEN_DEFAULTS[case]
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "default.toml").write_bytes(data)
    with pytest.raises(RuleFileError) as raised:
        create_app({**app_config, "RULES_DIR": str(rules_dir)})
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"bidhub will not start: the default rule file "
                              f"{rules_dir / 'default.toml'} cannot be used: {path}")
    assert reason in message and "BIDHUB_RULES_DIR" in message


def test_a_missing_default_rule_file_is_one_paragraph_too(app_config, tmp_path):
    with pytest.raises(RuleFileError, match=r"default.toml cannot be used: \(file\): cannot be "
                                            "read: No such file or directory"):
        create_app({**app_config, "RULES_DIR": str(tmp_path)})


def test_a_gbk_default_rule_file_is_accepted_at_start_up(app_config, tmp_path):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "default.toml").write_bytes(gbk_rules())
    app = create_app({**app_config, "RULES_DIR": str(rules_dir)})
    assert app.extensions["bidhub_default_rules"].text.startswith(GBK_COMMENTS)


def test_the_command_line_prints_the_start_up_paragraph_without_a_traceback(tmp_path):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "default.toml").write_bytes(BROKEN_DEFAULTS["big weight"][0])
    result = run_bidhub("rules", "check", str(DEFAULT_RULES), tmp_path=tmp_path,
                        rules_dir=rules_dir)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    [paragraph] = result.stderr.strip().splitlines()
    assert paragraph.startswith(f"bidhub will not start: the default rule file "
                                f"{rules_dir / 'default.toml'} cannot be used: "
                                f"factors[0].weight (line {WEIGHT_LINE}): a number written with 310")


def test_a_draft_posted_in_gbk_bytes_gets_an_answer_not_a_500(app, session, make_admin,
                                                              login_as):
    from urllib.parse import quote_from_bytes

    client = login_as(make_admin())
    draft = (GBK_COMMENTS + active_text(session)).encode("gbk")
    response = client.post("/admin/rules/check", data=b"text=" + quote_from_bytes(draft).encode(),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert 'id="rules-check"' in response.get_data(as_text=True)


def test_what_if_summary_is_punctuated_in_the_pages_language(app, session, scored_round,
                                                            make_admin, login_as):
    """The replay's one-line summary is one message: Chinese punctuation (：，。) in zh_CN."""
    client = login_as(make_admin())
    data = {"text": active_text(session), "round_id": scored_round.id}
    english = client.post("/admin/rules/what-if", data=data).get_data(as_text=True)
    assert re.search(r"</strong>: 0 awards would change, 0 scores would change\.", english)
    chinese = client.post("/admin/rules/what-if", data=data,
                          headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert re.search(r"</strong>：0 个中标结果会改变，0 个得分会改变。", chinese)


SYNTAX_ERRORS = {
    # draft edit, Chinese reason, English reason, line, column
    "a key without '='": (("capacity_max = 40", "capacity_max 40"), "键后面缺少 '='",
                          "'=' is missing after the key", CAPACITY_LINE, 14),
    "a bare word as a value": (('name = "default"', "name = default"), "文字要加引号",
                               "not a valid value (text needs quotes", NAME_LINE, 8),
    # What a Chinese input method types: a key in Chinese, full-width signs and digits. The
    # reason is the character, not "this line is not a statement" or "text needs quotes".
    "a Chinese key without quotes": (
        ("capacity_max = 40", "capacity_max = 40\n容量上限 = 3"),
        '键 容量上限 没有加引号，不加引号的键只能包含 A-Z、a-z、0-9、_ 和 -：请加上引号，写成 "容量上限"',
        'the key 容量上限 is written without quotes, so it may only hold A-Z, a-z, 0-9, _ and -: '
        'write it in quotes, as "容量上限"', CAPACITY_LINE + 1, 1),
    "a full-width equals sign": (
        ("capacity_max = 40", "capacity_max ＝ 40"),
        "全角字符 '＝' 不是 TOML 的符号：请改用半角的 '='（把输入法切换为半角）",
        "the full-width character '＝' is not TOML: write the half-width '=' instead (switch the "
        "input method to half-width)", CAPACITY_LINE, 14),
    "full-width digits": (("capacity_max = 40", "capacity_max = ４０"),
                          "全角字符 '４' 不是 TOML 的符号：请改用半角的 '4'",
                          "the full-width character '４' is not TOML: write the half-width '4'",
                          CAPACITY_LINE, 16),
    "Chinese quotation marks": (('name = "default"', 'name = “default”'),
                                """全角字符 '“' 不是 TOML 的符号：请改用半角的 '"'""",
                                """the full-width character '“' is not TOML: write the """
                                """half-width '"'""", NAME_LINE, 8),
    "an ideographic space": (("capacity_max = 40", "capacity_max\u3000= 40"),
                             "全角字符 '\\u3000' 不是 TOML 的符号：请改用半角的 ' '",
                             "the full-width character '\\u3000' is not TOML: write the "
                             "half-width ' '", CAPACITY_LINE, 13),
}


@pytest.mark.parametrize("case", sorted(SYNTAX_ERRORS))
def test_a_syntax_error_is_explained_in_the_pages_language_with_line_and_column(
        app, session, make_admin, login_as, case):
    (old, new), chinese, english, line, column = SYNTAX_ERRORS[case]
    client = login_as(make_admin())
    before = active_rule_set(session)
    draft = before.text.replace(old, new, 1)
    zh = html.unescape(client.post("/admin/rules/check", data={"text": draft}, headers={
        "Accept-Language": "zh-CN"}).get_data(as_text=True))
    assert f"TOML 格式错误，在第 {line} 行第 {column} 列：" in zh and chinese in zh
    assert not re.search(r"Expected|Invalid|Cannot|[Cc]olumn|not valid", zh)
    en = html.unescape(client.post("/admin/rules/check", data={"text": draft}).get_data(
        as_text=True))
    assert f"not valid TOML at line {line}, column {column}: {english}" in en
    adopt = client.post("/admin/rules/adopt", headers={"Accept-Language": "zh-CN"}, data={
        "text": draft, "note": "typo", "expected_active_id": before.id})
    assert adopt.status_code == 422 and chinese in html.unescape(adopt.get_data(as_text=True))
    reload(session)
    assert session.scalars(select(RuleSetVersion)).all() == [before]


CAPS_LINE = line_of("[caps]")
WRITTEN_TWICE = {
    # draft edit, key path, line, Chinese problem, English problem
    "a weight": (("weight = 0.35", "weight = 0.35\nweight = 0.4"), "factors[0].weight",
                 WEIGHT_LINE + 1,
                 f"factors[0].weight（第 {WEIGHT_LINE + 1} 行）：键 weight 在表 factors[0] 中写了两次"
                 f"（第一次在第 {WEIGHT_LINE} 行）；每个键只能写一次",
                 f"factors[0].weight (line {WEIGHT_LINE + 1}): the key weight is written twice in "
                 f"the table factors[0] (first at line {WEIGHT_LINE}); write each key once"),
    "a section": (("[caps]", "[caps]\n[caps]"), "caps", CAPS_LINE + 1,
                  f"caps（第 {CAPS_LINE + 1} 行）：表 caps 写了两次（第一次在第 {CAPS_LINE} 行）；"
                  "每个表只写一次，它的键都写在它下面",
                  f"caps (line {CAPS_LINE + 1}): the table caps is written twice (first at line "
                  f"{CAPS_LINE}); write each table once, with all its keys under it"),
    "a top-level key": (('name = "default"', 'name = "default"\nname = "other"'), "name",
                        NAME_LINE + 1,
                        f"name（第 {NAME_LINE + 1} 行）：顶层的键 name 写了两次（第一次在第 "
                        f"{NAME_LINE} 行）；每个键只能写一次",
                        f"name (line {NAME_LINE + 1}): the key name is written twice at the top "
                        f"level (first at line {NAME_LINE}); write each key once"),
}


@pytest.mark.parametrize("case", sorted(WRITTEN_TWICE))
def test_a_key_written_twice_is_named_with_its_table_and_line_in_the_pages_language(
        app, session, make_admin, login_as, case):
    (old, new), path, line, chinese, english = WRITTEN_TWICE[case]
    client = login_as(make_admin())
    before = active_rule_set(session)
    draft = before.text.replace(old, new, 1)
    assert draft.splitlines()[line - 1] == new.splitlines()[-1]
    zh = client.post("/admin/rules/check", data={"text": draft},
                     headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert problem_items(zh) == [chinese]
    assert f"<code>{path}</code>" in zh
    en = client.post("/admin/rules/check", data={"text": draft}).get_data(as_text=True)
    assert problem_items(en) == [english]
    adopt = client.post("/admin/rules/adopt", headers={"Accept-Language": "zh-CN"}, data={
        "text": draft, "note": "twice", "expected_active_id": before.id})
    assert adopt.status_code == 422 and chinese.split("：", 1)[1] in html.unescape(
        adopt.get_data(as_text=True))
    reload(session)
    assert session.scalars(select(RuleSetVersion)).all() == [before]


def problem_items(page: str) -> list[str]:
    """The rules check's list of problems (and of warnings), as text."""
    return [html.unescape(re.sub(r"<[^>]+>", "", item)) for item in re.findall(
        r"<li>(.*?)</li>", re.search(r'id="rules-check".*', page, re.S).group(0), re.S)]


def test_the_problem_list_is_punctuated_in_the_pages_language(app, session, make_admin,
                                                              login_as):
    """Not "weight (第 15 行): …" on a Chinese page: weight（第 15 行）：…, and "(file)" translated;
    English as before. A syntax error gives its reason alone, which says where."""
    client = login_as(make_admin())
    text = active_text(session)
    syntax = text.replace("capacity_max = 40", "capacity_max 40", 1)
    weight = re.sub(r"weight = [0-9.]+", "weight = 5000", text, count=1)
    too_large = text + "#" * 70_000
    for draft, chinese, english in (
            (syntax, rf"TOML 格式错误，在第 {CAPACITY_LINE} 行第 14 列：",
             rf"not valid TOML at line {CAPACITY_LINE}, column 14: '='"),
            (weight, r"factors\[0\]\.weight（第 \d+ 行）：\S",
             r"factors\[0\]\.weight \(line \d+\): \S"),
            (too_large, r"（文件）：\S", r"\(file\): the rules are ")):
        zh = problem_items(client.post("/admin/rules/check", data={"text": draft}, headers={
            "Accept-Language": "zh-CN"}).get_data(as_text=True))
        assert zh and re.match(chinese, zh[0]), zh
        assert not any(mark in item for item in zh for mark in ("(", ")", ": ", "syntax", "file"))
        en = problem_items(client.post("/admin/rules/check", data={"text": draft}).get_data(
            as_text=True))
        assert re.match(english, en[0]), en
    before = active_rule_set(session)
    adopt = client.post("/admin/rules/adopt", headers={"Accept-Language": "zh-CN"}, data={
        "text": syntax, "note": "typo", "expected_active_id": before.id})
    assert adopt.status_code == 422
    refused = html.unescape(adopt.get_data(as_text=True))
    assert f"TOML 格式错误，在第 {CAPACITY_LINE} 行第 14 列：" in refused
    assert "（语法）" not in refused
    reload(session)
    assert session.scalars(select(RuleSetVersion)).all() == [before]


def test_rules_check_names_the_line_and_column_of_a_syntax_error(tmp_path):
    from click.testing import CliRunner

    from bidhub.cli import rules_check_command

    path = tmp_path / "typo.toml"
    path.write_bytes(DEFAULT_RULES.read_bytes().replace(b"capacity_max = 40", b"capacity_max 40"))
    result = CliRunner().invoke(rules_check_command, [str(path)])
    assert result.exit_code == 1
    assert (f"{path}: not valid TOML at line {CAPACITY_LINE}, column 14: '=' is missing "
            "after the key" in result.stderr)


def test_the_page_lists_each_problem_in_the_pages_words_and_punctuation(
        app, session, make_admin, login_as):
    """A syntax error names no key: the page gives its reason alone, which says the line and
    column once, not the internal "(syntax)" marker and the line again; a problem at a key reads
    key（第 N 行）：reason in Chinese, key (line N): reason in English."""
    client = login_as(make_admin())
    text = active_rule_set(session).text

    def problems(draft: str, language: str) -> str:
        page = client.post("/admin/rules/check", data={"text": draft},
                           headers={"Accept-Language": language}).get_data(as_text=True)
        return html.unescape(re.search(r'<div class="form-errors".*?</ul>', page, re.S).group(0))

    syntax = problems(text.replace("capacity_max = 40", "capacity_max 40", 1), "zh-CN")
    assert "(syntax)" not in syntax and "<code>" not in syntax
    assert f"<li>TOML 格式错误，在第 {CAPACITY_LINE} 行第 14 列：键后面缺少 '='</li>" in syntax
    assert syntax.count(f"第 {CAPACITY_LINE} 行") == 1
    english = problems(text.replace("capacity_max = 40", "capacity_max 40", 1), "en")
    assert (f"<li>not valid TOML at line {CAPACITY_LINE}, column 14: '=' is missing after "
            "the key</li>") in english
    keyed = problems(text.replace("capacity_max = 40", "capacity_max = -5", 1), "zh-CN")
    assert re.search(rf"<li><code>eligibility\.capacity_max</code>（第 {CAPACITY_LINE} 行）：\S",
                     keyed), keyed
    keyed = problems(text.replace("capacity_max = 40", "capacity_max = -5", 1), "en")
    assert re.search(rf"<li><code>eligibility\.capacity_max</code> \(line {CAPACITY_LINE}\): "
                     r"\S", keyed), keyed


# --- two admins adopting at once ---------------------------------------------------------------

def test_two_admins_adopting_at_once_leave_one_rule_set_in_force(
        app, session, backend, monkeypatch, clock, make_admin):
    """Both start from the same rules in force. The first is paused once it has written its
    version; the second must wait for it and then be told that other rules were adopted, not
    make a second version active beside the first (new rounds would take either)."""
    from bidhub.domain.errors import Conflict
    from bidhub.models import User
    from bidhub.services import rule_sets
    from tests.test_round_races import Pause, Side

    if backend != "postgresql":
        pytest.skip("on SQLite BEGIN IMMEDIATE lets one writer in at a time; no race to pause")
    first_admin, second_admin = make_admin(), make_admin()
    before = active_rule_set(session)
    pause = Pause(monkeypatch, rule_sets, "adopt_rule_set")

    def adopt(admin, months):
        return lambda own: rule_sets.adopt_rules(
            own, own.get(User, admin.id),
            before.text.replace("cooldown_months = 6", f"cooldown_months = {months}"),
            f"Cooldown of {months} months.", expected_active_id=before.id, now=clock()).id

    first = Side(app, adopt(first_admin, 7))
    pause.wait()
    second = Side(app, adopt(second_admin, 8))
    second.done_or_waiting(app)
    pause.resume()
    adopted, refused = first.join(), second.join()
    assert isinstance(refused, Conflict), refused
    reload(session)
    active = session.scalars(select(RuleSetVersion).where(RuleSetVersion.is_active)).all()
    assert [version.id for version in active] == [adopted]
    assert "cooldown_months = 7" in active[0].text
    assert session.scalars(select(RuleSetVersion).where(
        RuleSetVersion.text.contains("cooldown_months = 8"))).all() == []
    adoptions = session.scalars(select(AuditEvent).where(
        AuditEvent.action == "rules.adopted", AuditEvent.actor_id.is_not(None))).all()
    assert [(event.actor_id, event.target) for event in adoptions] == [
        (first_admin.id, f"rule_set:{adopted}")]


def test_the_database_refuses_a_second_rule_set_in_force(app, session, clock):
    """Whatever path writes it, at most one version is the one new rounds use."""
    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    before = active_rule_set(session)
    other = RuleSetVersion(sha256="0" * 64, name="other", text=before.text, note="",
                           created_at=clock())
    session.add(other)
    session.commit()
    with pytest.raises(IntegrityError):
        session.execute(update(RuleSetVersion).where(RuleSetVersion.id == other.id)
                        .values(is_active=True))
        session.flush()
    session.rollback()
    assert [version.id for version in session.scalars(
        select(RuleSetVersion).where(RuleSetVersion.is_active))] == [before.id]


# --- what an adoption leaves on record -------------------------------------------------------

def test_adopting_the_rules_in_force_again_is_refused_and_changes_nothing(
        app, session, make_admin, login_as):
    """A draft that differs only in comments or layout is the same version: adopting it would
    drop the edited comments, flash "adopted" and audit a change that changed nothing."""
    client = login_as(make_admin())
    before = active_rule_set(session)
    events = session.scalars(select(AuditEvent)).all()
    draft = before.text.replace("capacity_max = 40 ", "capacity_max = 40 # 新的说明 ")
    for language, expected in (("en", "These are the rules in force already"),
                               ("zh-CN", "这就是当前生效的规则")):
        refused = client.post("/admin/rules/adopt", headers={"Accept-Language": language},
                              data={"text": draft, "note": "Explained the band.",
                                    "expected_active_id": before.id})
        assert refused.status_code == 422
        assert expected in html.unescape(refused.get_data(as_text=True))
    reload(session)
    assert session.scalars(select(AuditEvent)).all() == events
    assert session.scalars(select(RuleSetVersion)).all() == [before]
    assert active_rule_set(session).text == before.text


def test_the_rules_page_shows_each_adoption_with_who_when_and_why(
        app, session, clock, make_admin, login_as):
    """Going back to an earlier version is an adoption of its own: the page says when, by whom
    and why it happened, not the time and note of the version's first adoption."""
    first_admin, second_admin = make_admin(name="王芳"), make_admin(name="李强")
    client = login_as(first_admin)
    initial = active_rule_set(session)
    longer = initial.text.replace("cooldown_months = 6", "cooldown_months = 9")
    clock.advance(days=3)
    assert client.post("/admin/rules/adopt", data={
        "text": longer, "note": "Longer cooldown for the pilot.",
        "expected_active_id": initial.id}).status_code == 303
    reload(session)
    pilot = active_rule_set(session)
    client.post("/logout")
    client = login_as(second_admin)
    clock.advance(days=30)
    assert client.post("/admin/rules/adopt", data={
        "text": initial.text, "note": "Back to the default after the pilot.",
        "expected_active_id": pilot.id}).status_code == 303
    page = html.unescape(re.sub(r"<[^>]+>", " ", client.get("/admin/rules").get_data(
        as_text=True)))
    page = re.sub(r"\s+", " ", page)
    header = re.search(r"Active for new rounds:.*?Changing the rules", page).group(0)
    assert "2026-04-04 09:00" in header and "李强" in header
    assert "Back to the default after the pilot." in header and "initial rules" not in header
    history = page[page.index("Versions"):]
    rows = re.findall(r"([0-9a-f]{12})(?: In effect)? (2026-\d\d-\d\d \d\d:\d\d) (\S+)", history)
    assert rows == [(initial.sha256[:12], "2026-04-04 09:00", "李强"),
                    (pilot.sha256[:12], "2026-03-05 09:00", "王芳"),
                    (initial.sha256[:12], "2026-03-02 09:00", "bidhub")], history
    assert history.index("Back to the default") < history.index("Longer cooldown") < \
        history.index("initial rules")


def test_adoption_leaves_scored_rounds_as_stored_and_open_rounds_on_their_rules(
        app, session, clock, scored_round, make_rep, make_account, make_round, make_bid,
        make_opportunities, make_admin, login_as):
    """Rules that would reverse both rounds' outcomes are adopted between the scoring of one
    and the deadline of the other: the scored round's stored scores, ranks and proposal stay
    as they were, and the open round is scored under the version it was created with."""
    from bidhub.models import Bid, BidScore, Listing
    from bidhub.services.replays import verify_round

    history = make_account()
    strong, weak = make_rep(name="Open Strong"), make_rep(name="Open Weak")
    make_opportunities(strong, history, won=8, lost=2)
    make_opportunities(weak, history, won=2, lost=8)
    open_round = make_round(accounts=[make_account()], closes_at=clock() + timedelta(days=1))
    make_bid(strong, open_round.listings[0])
    make_bid(weak, open_round.listings[0])

    def stored(round_id):
        reload(session)
        return sorted((row.bid_id, row.total, row.rank, row.is_proposed_winner, row.breakdown,
                       row.rule_set_sha256) for row in session.scalars(
            select(BidScore).join(Bid).join(Listing).where(Listing.round_id == round_id)))

    before_scores = stored(scored_round.id)
    before = active_rule_set(session)
    client = login_as(make_admin())
    reversed_text = before.text.replace("weight = 0.35", "weight = -5")
    assert client.post("/admin/rules/adopt", data={
        "text": reversed_text, "note": "Reverse win rate.",
        "expected_active_id": before.id}).status_code == 303
    assert stored(scored_round.id) == before_scores
    assert verify_round(session, scored_round.id) == []
    clock.set(open_round.closes_at)
    assert adjudication.score_closed_round(session, open_round.id, clock())
    scores = stored(open_round.id)
    assert {sha for *_rest, sha in scores} == {before.sha256}
    winner = session.scalars(select(Bid).join(BidScore).where(
        BidScore.is_proposed_winner, Bid.listing_id == open_round.listings[0].id)).one()
    assert winner.rep_id == strong.id
    assert verify_round(session, open_round.id) == []


def test_a_syntax_error_reads_as_its_reason_alone_in_what_if_and_at_start_up(
        app, app_config, tmp_path, scored_round):
    """As on the page, in the refusal to adopt and in `rules check`: the reason says the line
    and column, so no "(syntax) (line 15):" in front of it repeats the line."""
    typo = DEFAULT_RULES.read_bytes().replace(b"capacity_max = 40", b"capacity_max 40")
    path = tmp_path / "typo.toml"
    path.write_bytes(typo)
    result = app.test_cli_runner().invoke(args=["rules", "what-if", str(scored_round.id),
                                                str(path)])
    assert result.exit_code == 1
    assert (f"{path}:\nnot valid TOML at line {CAPACITY_LINE}, column 14: '=' is missing after "
            "the key" in result.output), result.output
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "default.toml").write_bytes(typo)
    with pytest.raises(RuleFileError) as raised:
        create_app({**app_config, "RULES_DIR": str(rules_dir)})
    assert str(raised.value).startswith(
        f"bidhub will not start: the default rule file {rules_dir / 'default.toml'} cannot be "
        f"used: not valid TOML at line {CAPACITY_LINE}, column 14: '=' is missing after the "
        "key. Fix")


@pytest.mark.parametrize("round_id", [str(2**31), str(2**70), "0"])
def test_a_round_number_beyond_the_database_is_a_usage_error(app, tmp_path, round_id):
    """Not an OverflowError (SQLite) or a DataError (PostgreSQL) with a traceback."""
    path = tmp_path / "rules.toml"
    path.write_bytes(DEFAULT_RULES.read_bytes())
    for args in (["rules", "what-if", round_id, str(path)], ["rescore", round_id]):
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert "ROUND_ID" in result.output and "Traceback" not in result.output


def test_a_stale_adoption_keeps_the_draft_and_shows_it_against_the_new_rules(
        app, session, make_admin, login_as):
    """Refused with 409, as before, but on the rules page: the admin's draft is still in the
    editor (not lost to an error page), with the diff against the rules now in force, and a
    second send, made knowingly, adopts it."""
    client = login_as(make_admin())
    before = active_rule_set(session)
    other = before.text.replace("cooldown_months = 6", "cooldown_months = 7")
    assert client.post("/admin/rules/adopt", data={
        "text": other, "note": "Another admin's change.",
        "expected_active_id": before.id}).status_code == 303
    reload(session)
    now_in_force = active_rule_set(session)
    mine = before.text.replace("capacity_max = 40\n", "capacity_max = 38 # 精耕细作，留出余量\n")
    stale = client.post("/admin/rules/adopt", headers={"Accept-Language": "zh-CN"}, data={
        "text": mine, "note": "A narrower band.", "expected_active_id": before.id})
    assert stale.status_code == 409
    page = html.unescape(stale.get_data(as_text=True))
    assert "在你编辑期间已有人采用了其他规则" in page
    assert "capacity_max = 38 # 精耕细作，留出余量" in page  # the draft, kept
    assert "-cooldown_months = 7" in page and "+cooldown_months = 6" in page  # against now
    assert f'name="expected_active_id" type="hidden" value="{now_in_force.id}"' in page
    assert 'value="A narrower band."' in page
    reload(session)
    assert active_rule_set(session).id == now_in_force.id
    again = client.post("/admin/rules/adopt", data={
        "text": mine, "note": "A narrower band.", "expected_active_id": now_in_force.id})
    assert again.status_code == 303


def test_what_if_on_the_command_line_says_which_bids_change_eligibility(
        app, session, tmp_path, scored_round):
    """A bid that only loses its eligibility keeps its total: the line says what changed."""
    path = tmp_path / "strict.toml"
    strict = DEFAULT_RULES.read_bytes().replace(b"min_tenure_months = 3\n",
                                                b"min_tenure_months = 600\n")
    assert strict != DEFAULT_RULES.read_bytes()
    path.write_bytes(strict)
    result = app.test_cli_runner().invoke(args=["rules", "what-if", str(scored_round.id),
                                                str(path)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("  bid ")]
    assert len(lines) == 2 and all(line.endswith(", now not eligible)") for line in lines), (
        result.output)
    assert {line.split("(")[1].split(")")[0] for line in lines} == {"Strong Rep", "Weak Rep"}


def test_check_what_if_and_adopt_read_the_same_text(app, session, make_admin, login_as,
                                                    scored_round):
    """A zero-width space inside a tie-break name is refused by all three, and one inside the
    description makes the version Check announced, not another."""
    client = login_as(make_admin())
    before = active_rule_set(session)
    hidden_name = before.text.replace('"lottery"', '"lot\u200btery"', 1)
    assert hidden_name != before.text
    check = html.unescape(client.post("/admin/rules/check", data={"text": hidden_name},
                                      headers={"HX-Request": "true"}).get_data(as_text=True))
    assert "lot\u200btery" in check and "Valid. New version" not in check
    what_if = client.post("/admin/rules/what-if", data={
        "text": hidden_name, "round_id": scored_round.id}).get_data(as_text=True)
    assert "The draft has problems; fix them before replaying." in what_if
    refused = client.post("/admin/rules/adopt", data={
        "text": hidden_name, "note": "Hidden space.", "expected_active_id": before.id})
    assert refused.status_code == 422
    assert "lot\u200btery" in html.unescape(refused.get_data(as_text=True))
    reload(session)
    assert active_rule_set(session).id == before.id

    described = before.text.replace('description = "', 'description = "\u200b', 1)
    assert described != before.text
    check = client.post("/admin/rules/check", data={"text": described},
                        headers={"HX-Request": "true"}).get_data(as_text=True)
    announced = re.search(r"Valid\. New version:.*?([0-9a-f]{12})", check, re.S).group(1)
    adopted = client.post("/admin/rules/adopt", data={
        "text": described, "note": "Hidden space in the description.",
        "expected_active_id": before.id})
    assert adopted.status_code == 303
    reload(session)
    assert active_rule_set(session).sha256[:12] == announced


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_a_control_character_is_named_where_it_is_by_check_and_refused_by_adopt(
        app, session, make_admin, login_as, language):
    client = login_as(make_admin())
    before = active_rule_set(session)
    draft = before.text.replace("capacity_max = 40", "capacity_max = 40\x00", 1)
    column = len("capacity_max = 40") + 1
    check = html.unescape(client.post("/admin/rules/check", data={"text": draft}, headers={
        "HX-Request": "true", "Accept-Language": language}).get_data(as_text=True))
    expected = (f"第 {CAPACITY_LINE} 行第 {column} 列有控制字符 U+0000" if language == "zh-CN"
                else f"line {CAPACITY_LINE}, column {column} holds the control character U+0000")
    assert expected in check, check
    adopt = client.post("/admin/rules/adopt", headers={"Accept-Language": language}, data={
        "text": draft, "note": "A stray NUL.", "expected_active_id": before.id})
    assert adopt.status_code == 422
    reload(session)
    assert active_rule_set(session).id == before.id


def test_a_rule_file_with_a_control_character_in_a_comment_is_refused_with_its_place():
    text = DEFAULT_RULES.read_text(encoding="utf-8").replace(
        "capacity_max = 40", "capacity_max = 40 # \x1b[31m", 1)
    with pytest.raises(RuleError) as refused:
        parse_rules(text)
    assert [(problem.path, problem.line) for problem in refused.value.problems] == [
        ("(syntax)", CAPACITY_LINE)]
    assert "U+001B" in str(refused.value)
    # A C1 control character is TOML in a comment: a file adopted with one still reads.
    parse_rules(DEFAULT_RULES.read_text(encoding="utf-8").replace(
        "capacity_max = 40", "capacity_max = 40 # \x85", 1))


def test_adopting_a_broken_file_on_the_command_line_names_the_file(app, session, tmp_path,
                                                                   make_admin):
    admin = make_admin()
    path = tmp_path / "typo.toml"
    path.write_text(DEFAULT_RULES.read_text(encoding="utf-8").replace(
        "capacity_max = 40", "capacity_maxx = 40", 1), encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["rules", "adopt", str(path), "--note", "typo",
                                                "--by", admin.username])
    assert result.exit_code == 1
    assert f"{path}:" in result.output and "capacity_maxx" in result.output
    assert "draft" not in result.output


def test_the_rules_page_says_what_the_handbook_binds_and_what_is_policy(app, session,
                                                                        make_admin, login_as):
    client = login_as(make_admin())
    for language, said in (("zh-CN", "手册的硬性规定是每名KA销售名下 30–40 个客户"),
                           ("en", "The handbook binds the 30–40 accounts per rep")):
        page = client.get("/admin/rules", headers={"Accept-Language": language}
                          ).get_data(as_text=True)
        assert said in page, language
