"""Messages that services and the domain give people are translatable: msgids with parameters."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

import bidhub.domain
import bidhub.services
from bidhub.domain.errors import BidhubError, NotEligible
from bidhub.domain.messages import dumps, from_data, loads, to_data
from bidhub.domain.scoring import ScoreBreakdown
from bidhub.domain.text import N_, Joined, Text, render
from bidhub.models import BidScore
from bidhub.services import adjudication
from bidhub.services.replays import verify_round
from bidhub.web.i18n import translate
from tests.conftest import login

ROOT = Path(__file__).resolve().parents[1] / "bidhub"
SCANNED = [ROOT / "services", ROOT / "domain"]

# Calls whose argument at this position is a message for people (besides BidhubError raises).
MESSAGE_ARGUMENTS = {"RuleProblem": 2, "LedgerProblem": 1, "LedgerBreak": 1, "_refuse": 1,
                     "CapacityProblem": 3, "ReceiverProblem": 3}

# Modules whose messages are not for people (operators read them in logs and at start-up).
ALLOWED: dict[str, str] = {}


def error_names() -> set[str]:
    """Every BidhubError subclass the scanned packages define or import."""
    names = set()
    for package in (bidhub.domain, bidhub.services):
        for module_info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{module_info.name}")
            names.update(name for name, value in vars(module).items()
                         if inspect.isclass(value) and issubclass(value, BidhubError))
    return names


def is_built_string(node: ast.expr) -> bool:
    """An f-string, a plain literal, or text put together with + or %."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and bool(node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return is_built_string(node.left) or is_built_string(node.right)
    if isinstance(node, ast.IfExp):
        return is_built_string(node.body) or is_built_string(node.orelse)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("format", "join") and isinstance(node.func.value, ast.Constant)
    return False


def called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def message_problems(source: str, where: str, errors: set[str]) -> list[str]:
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                and called_name(node.exc) in errors:
            arguments = [*node.exc.args, *(keyword.value for keyword in node.exc.keywords
                                           if keyword.arg == "message")]
            found.extend(f"{where}:{node.lineno}: {called_name(node.exc)} is given a built "
                         "string; use N_(msgid, name=value)"
                         for argument in arguments[:1] if is_built_string(argument))
        elif isinstance(node, ast.Call) and called_name(node) in MESSAGE_ARGUMENTS:
            position = MESSAGE_ARGUMENTS[called_name(node)]
            if len(node.args) > position and is_built_string(node.args[position]):
                found.append(f"{where}:{node.lineno}: {called_name(node)} is given a built "
                             "string; use N_(msgid, name=value)")
        elif isinstance(node, ast.Call) and called_name(node) == "N_":
            # pybabel extracts only a literal msgid.
            msgid = node.args[0] if node.args else None
            if not (isinstance(msgid, ast.Constant) and isinstance(msgid.value, str)):
                found.append(f"{where}:{node.lineno}: N_ needs a literal msgid")
    return found


def test_services_and_the_domain_raise_errors_with_msgids_not_built_strings():
    errors = error_names()
    assert {"InvalidRequest", "NotFound", "Conflict", "CapacityExceeded", "LoginRefused"} <= errors
    problems = []
    for folder in SCANNED:
        for path in sorted(folder.glob("*.py")):
            if path.name not in ALLOWED:
                problems.extend(message_problems(path.read_text("utf-8"),
                                                 str(path.relative_to(ROOT.parent)), errors))
    assert problems == []


def test_the_scan_catches_each_kind_of_built_string():
    source = (
        "def f(name):\n"
        "    raise InvalidRequest(f'{name} is taken.')\n"
        "    raise NotFound('No such ' + name)\n"
        "    raise Conflict('Taken.', field='name')\n"
        "    raise InvalidRequest('%s is taken' % name)\n"
        "    raise InvalidRequest(N_('%(name)s is taken.', name=name))\n"
        "    raise InvalidRequest(N_(f'{name} is taken.'))\n"
        "    return RuleProblem('path', 3, f'bad {name}')\n")
    problems = message_problems(source, "sample.py", {"InvalidRequest", "NotFound", "Conflict"})
    assert sorted(int(problem.split(":")[1]) for problem in problems) == [2, 3, 4, 5, 7, 8]


# --- the mechanics: msgids, parameters, stored messages -----------------------------------

CATALOGUE = {
    "Not eligible for this account: %(reasons)s": "不具备资格：%(reasons)s",
    "holds %(held)d accounts; the maximum is %(maximum)d": "已持有%(held)d个客户，上限为%(maximum)d",
    "on leave or no longer with the company": "休假或已离职",
    "not eligible: %(reasons)s": "不具备资格：%(reasons)s",
    "%(first)s; %(rest)s": "%(first)s；%(rest)s",
}


def stub_gettext(msgid: str) -> str:
    return CATALOGUE.get(msgid, msgid)


def test_a_refusal_is_translated_part_by_part_and_reads_as_english_without_a_catalogue():
    error = NotEligible([N_("holds %(held)d accounts; the maximum is %(maximum)d", held=40,
                            maximum=40), N_("on leave or no longer with the company")])
    assert str(error) == ("Not eligible for this account: holds 40 accounts; the maximum is "
                          "40; on leave or no longer with the company")
    assert render(error.message, stub_gettext) == "不具备资格：已持有40个客户，上限为40; 休假或已离职"


def test_a_stored_message_reads_back_with_its_parameters_and_old_english_stays_english():
    reason = N_("not eligible: %(reasons)s", reasons=N_(
        "%(first)s; %(rest)s", first=N_("holds %(held)d accounts; the maximum is %(maximum)d",
                                        held=41, maximum=40),
        rest=N_("on leave or no longer with the company")))
    stored = dumps(reason)
    assert json.loads(stored)["msgid"] == "not eligible: %(reasons)s"
    assert loads(stored) == reason
    assert render(loads(stored), stub_gettext) == "不具备资格：已持有41个客户，上限为40；休假或已离职"
    old = "capacity: would exceed 40 accounts (holds 40, wins nothing else in this round)"
    assert loads(old) == old and loads("") == ""
    assert loads('{"msgid": broken') == '{"msgid": broken'
    joined = Joined([N_("on duty"), "plain"], " / ")
    assert str(from_data(json.loads(json.dumps(to_data(joined))))) == "on duty / plain"


def test_a_breakdown_keeps_english_and_msgid_and_old_breakdowns_still_verify():
    new = {"bid_id": 1, "is_eligible": False, "total": 0.5, "factors": [], "checks": [
        {"name": "capacity", "passed": False,
         "reason": "holds 40 accounts; the maximum is 40",
         "message": to_data(N_("holds %(held)d accounts; the maximum is %(maximum)d", held=40,
                               maximum=40))}]}
    breakdown = ScoreBreakdown.from_dict(new)
    assert isinstance(breakdown.checks[0].reason, Text)
    assert breakdown.to_dict() == new
    old = {**new, "checks": [{key: value for key, value in new["checks"][0].items()
                              if key != "message"}]}
    stored_before = ScoreBreakdown.from_dict(old)
    assert stored_before.checks[0].reason == "holds 40 accounts; the maximum is 40"
    assert breakdown.same_result(stored_before) and stored_before.same_result(breakdown)
    changed = {**old, "checks": [{**old["checks"][0], "reason": "holds 39 accounts"}]}
    assert not breakdown.same_result(ScoreBreakdown.from_dict(changed))
    edited = json.loads(json.dumps(new))
    edited["checks"][0]["message"]["params"]["held"] = 39  # the translated figure, edited
    assert not breakdown.same_result(ScoreBreakdown.from_dict(edited))


# --- end to end: stored reasons, and a refusal in Chinese ---------------------------------

@pytest.fixture
def full_rep_bid_round(session, clock, make_rep, give_accounts, make_account, make_round,
                       make_bid):
    """A scored round where one bidder was refused an award for capacity at scoring time."""
    round_ = make_round(accounts=[make_account()], closes_at=clock() + timedelta(hours=1))
    winner, full = make_rep(), make_rep()
    make_bid(winner, round_.listings[0])
    give_accounts(full, 39)
    make_bid(full, round_.listings[0])
    give_accounts(full, 1)  # 40 by the deadline: not eligible when scored
    clock.advance(hours=1)
    adjudication.score_closed_round(session, round_.id, clock())
    return round_, full


def test_reasons_are_stored_as_msgids_and_rounds_scored_before_still_verify(
        session, full_rep_bid_round):
    round_, full = full_rep_bid_round
    score = session.scalars(select(BidScore).where(BidScore.bid.has(rep_id=full.id))).one()
    reason = loads(score.not_awarded_reason)
    assert isinstance(reason, Text) and reason.msgid == "not eligible: %(reasons)s"
    assert str(reason) == "not eligible: holds 40 accounts; the maximum is 40"
    assert score.breakdown["checks"][0]["message"]["msgid"] == (
        "holds %(held)d accounts; the maximum is %(maximum)d")
    assert verify_round(session, round_.id) == []
    # A round scored before reasons were translatable: English only, as it was stored then.
    for row in session.scalars(select(BidScore)):
        row.breakdown = {**row.breakdown, "checks": [
            {key: value for key, value in check.items() if key != "message"}
            for check in row.breakdown["checks"]]}
        row.not_awarded_reason = str(loads(row.not_awarded_reason))
    session.commit()
    assert verify_round(session, round_.id) == []


def test_a_capacity_refusal_reads_in_chinese_for_a_zh_cn_browser(
        app, make_rep, give_accounts, make_account, make_round, login_as):
    listing = make_round(accounts=[make_account()]).listings[0]
    rep = make_rep()
    give_accounts(rep, 40)
    client = login_as(rep)
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN,zh;q=0.9"
    response = client.post(f"/listings/{listing.id}/bid", data={
        "account_plan": "A careful plan for this account.", "committed_revenue_yuan": "300000",
        "visit_plan": "Visit the decision maker in week one."})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "不具备竞标该客户的资格" in html
    assert "Not eligible for this account" not in html
    reason = in_chinese(app, N_("holds %(held)d accounts; the maximum is %(maximum)d", held=40,
                                maximum=40))
    assert reason in html and "holds 40 accounts" not in html


def in_chinese(app, message: Text) -> str:
    """The message as the zh_CN catalogue gives it; it must be translated there."""
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        translated = translate(message)
    assert translated != str(message), f"no zh_CN translation for {message.msgid!r}"
    return translated


def test_a_stored_not_awarded_reason_reads_in_chinese_on_the_listing_page(
        app, session, make_manager, full_rep_bid_round, login_as):
    round_, full = full_rep_bid_round
    client = login_as(make_manager())
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN,zh;q=0.9"
    html = client.get(f"/manage/listings/{round_.listings[0].id}").get_data(as_text=True)
    expected = in_chinese(app, N_("not eligible: %(reasons)s", reasons=N_(
        "holds %(held)d accounts; the maximum is %(maximum)d", held=40, maximum=40)))
    assert expected in html
    assert "msgid" not in html and "not eligible:" not in html
    # A reason stored in English before reasons were translatable is shown as it was stored.
    score = session.scalars(select(BidScore).where(BidScore.bid.has(rep_id=full.id))).one()
    score.not_awarded_reason = "not eligible: holds 40 accounts; the maximum is 40"
    session.commit()
    html = client.get(f"/manage/listings/{round_.listings[0].id}").get_data(as_text=True)
    assert "not eligible: holds 40 accounts; the maximum is 40" in html


def test_a_cap_of_one_award_is_one_award_in_both_languages(app, session, clock, capped_round):
    """Under one award per rep and round, the best bidder kept out of a second account reads
    "per-round cap of 1 award reached", and a manager awarding that rep a second account is
    told "already has 1 award"; in Chinese both read as they do for two awards."""
    from bidhub.domain.errors import InvalidRequest

    manager, strong, bids = capped_round.manager, capped_round.strong, capped_round.bids
    first, second = capped_round.first, capped_round.second
    capped = session.get(BidScore, bids[strong.id, second.id].id)
    reason = loads(capped.not_awarded_reason)
    assert str(reason) == f"per-round cap of 1 award reached (wins #{first.id} in this round)"
    assert in_chinese(app, reason) == f"已达到每轮最多中标 1 个的上限（在本轮中标#{first.id}）"
    adjudication.decide_listing(session, manager, first.id, kind="accepted", bid_id=None,
                                reason="", now=clock())
    with pytest.raises(InvalidRequest) as refused:
        adjudication.decide_listing(session, manager, second.id, kind="overridden",
                                    bid_id=bids[strong.id, second.id].id,
                                    reason="Strong Rep knows this account's owners well.",
                                    now=clock())
    assert str(refused.value) == "Strong Rep already has 1 award in this round; the cap is 1."
    assert in_chinese(app, refused.value.message) == "Strong Rep在本轮已中标 1 个客户；上限为 1 个。"


def test_rule_problems_read_in_chinese_with_the_key_as_written(app, session, make_admin,
                                                               login_as):
    from bidhub.domain.rules import RuleError, parse_rules
    from bidhub.services.rule_sets import active_rule_set

    broken = active_rule_set(session).text.replace('metric = "win_rate"', 'metric = "win_rat"')
    with pytest.raises(RuleError) as refused:
        parse_rules(broken)
    [problem] = refused.value.problems
    client = login_as(make_admin())
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN,zh;q=0.9"
    html = client.post("/admin/rules/check", data={"text": broken},
                       headers={"HX-Request": "true"}).get_data(as_text=True)
    assert problem.path in html and "win_rate" in html
    assert in_chinese(app, problem.message) in html
    assert "unknown metric" not in html


def test_accepting_every_unflagged_award_speaks_of_the_rules_proposal(app, capped_round):
    """Where the cap keeps the best bidder out, the proposal is the second-ranked bid: the page
    that accepts every unflagged proposal names it, and its Chinese says it accepts the winners
    the rules proposed (按规则拟定), not the first-ranked (排名第一) bidders."""
    client = app.test_client()
    login(client, capped_round.manager)
    client.post("/language", data={"locale": "zh_CN", "next": "/"})
    html = client.get(f"/manage/rounds/{capped_round.round.id}/accept-unflagged").get_data(
        as_text=True)
    assert "将对以下 2 个竞标客户接受按规则拟定的中标人：" in html
    assert "排名第一" not in html
    row = html.split(f'<tr data-listing="{capped_round.second.id}">', 1)[1].split("</tr>", 1)[0]
    assert "Weak" in row and "Strong Rep" not in row
