"""The audit log page: every privileged change the services record, newest first, with who
made it, what it was, what it touched and the values before and after; filtered by kind, by
person (or bidhub's own jobs) and by local day; in Chinese and in English."""

from __future__ import annotations

import ast
import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bidhub.domain.messages import dumps
from bidhub.domain.text import N_
from bidhub.services import branches
from bidhub.services.audit import AUDIT_AREAS, changes_of, record_audit
from bidhub.web.audit_log import ACTION_LABELS, AREA_LABELS, CODED_VALUES
from bidhub.web.labels import LABELS
from tests.conftest import login

SERVICES = Path(__file__).resolve().parent.parent / "bidhub" / "services"
# The actions recorded with a name worked out when they are recorded: each with every value.
FORMED_ACTIONS = {"decision.{kind}": ("accepted", "overridden", "no_award"),
                  "appeal.{appeal.status}": ("upheld", "rejected"),
                  "import.{status}": ("imported", "refused")}


def signed_in(app, user, language: str = "en"):
    client = app.test_client()
    login(client, user)
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN" if language == "zh" else "en"
    return client


def rows_of(body: str) -> list[str]:
    """Each line of the log as its text, in the page's order."""
    tbody = re.search(r"<tbody>(.*?)</tbody>", body, re.S)
    if tbody is None:
        return []
    return [html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row))).strip()
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", tbody.group(1), re.S)]


def texts(node: ast.expr) -> set[str]:
    """The strings an expression can be: a literal, or either side of `a if c else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return texts(node.body) | texts(node.orelse)
    return set()


def recorded_actions() -> set[str]:
    """Every action a service passes to record_audit, read from the source: literal names,
    the names of constants, and names formed with an f-string (FORMED_ACTIONS)."""
    constants: dict[str, set[str]] = {}
    calls = []
    for path in SERVICES.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and texts(node.value)):
                constants.setdefault(node.targets[0].id, set()).update(texts(node.value))
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "record_audit"
                    and len(node.args) >= 3):
                calls.append(node.args[2])
    actions: set[str] = set()
    for argument in calls:
        if texts(argument):
            actions.update(texts(argument))
        elif isinstance(argument, ast.Name):
            actions.update(constants[argument.id])
        elif isinstance(argument, ast.JoinedStr):
            pattern = ast.unparse(argument)[2:-1]
            assert pattern in FORMED_ACTIONS, f"an action formed as {pattern} has no values here"
            stem = pattern.split("{")[0]
            actions.update(stem + value for value in FORMED_ACTIONS[pattern])
        else:
            raise AssertionError(f"record_audit called with an action of another form: "
                                 f"{ast.unparse(argument)}")
    return actions


def test_every_action_the_services_record_has_a_label_and_a_kind_in_the_filter():
    actions = recorded_actions()
    assert len(actions) > 40
    assert actions - ACTION_LABELS.keys() == set()
    assert {action.split(".")[0] for action in actions} <= set(AUDIT_AREAS)
    assert set(AUDIT_AREAS) == AREA_LABELS.keys()
    assert {kind for kind in CODED_VALUES.values() if isinstance(kind, str)} <= LABELS.keys()


def test_a_change_made_through_bidhub_is_listed_with_who_made_it_and_its_values(
        app, session, make_admin, make_manager, clock):
    admin = make_admin(name="Admin Wu")
    branch = branches.create_branch(session, admin, "SZ", "Shenzhen", None, clock())
    clock.advance(minutes=5)
    branches.rename_branch(session, admin, branch.id, "Shenzhen Nanshan", "深圳南山", clock())
    session.commit()

    # (A fresh database starts with the initial rules' adoption, under "rules".)
    body = signed_in(app, make_manager()).get("/manage/audit?area=branch").get_data(as_text=True)

    rows = rows_of(body)
    assert len(rows) == 2
    # Newest first; a rename shows only what changed, the creation every value.
    assert "Admin Wu Branch changed" in rows[0]
    assert "Name (English) Shenzhen → Shenzhen Nanshan" in rows[0]
    assert "Name (Chinese) — → 深圳南山" in rows[0]
    assert "Code" not in rows[0]
    assert "Branch: Shenzhen Nanshan" in rows[0]
    # Its record's number only where it has no name.
    assert not re.search(rf"Branch {branch.id}\b", body)
    assert "Admin Wu Branch created" in rows[1]
    assert "Code SZ" in rows[1] and "Can sign in yes" in rows[1]
    assert "Branch: Shenzhen Nanshan" in rows[1]
    assert "2 changes" in body


def test_the_log_is_in_chinese_on_a_chinese_page(app, session, make_admin, clock):
    admin = make_admin(name="吴管理")
    branches.create_branch(session, admin, "SZ", "Shenzhen", "深圳", clock())
    session.commit()

    body = signed_in(app, admin, "zh").get("/manage/audit?area=branch").get_data(as_text=True)

    assert "审计日志" in body
    assert "吴管理 新建分公司" in rows_of(body)[0]
    assert "分公司：深圳" in rows_of(body)[0]  # what it applies to, by its Chinese name
    assert "1 条变更" in body


def test_filters_by_kind_person_system_and_local_day(app, session, make_admin, make_manager,
                                                    clock):
    admin, manager = make_admin(name="Admin Wu"), make_manager(name="Manager Li")
    # 2026-02-01 23:30 in Beijing is 15:30 UTC; 2026-02-02 00:30 in Beijing is 16:30 UTC.
    late = datetime(2026, 2, 1, 15, 30, tzinfo=UTC)
    record_audit(session, admin, "rules.adopted", "rule_set:1", late, after={"sha256": "ab"})
    record_audit(session, manager, "round.created", "round:7", late + timedelta(hours=1),
                 after={"title": "March"})
    record_audit(session, None, "round.scored", "round:7", late + timedelta(hours=2),
                 after={"bids": 3})
    session.commit()
    client = signed_in(app, admin)

    def shown(query: str) -> list[str]:
        response = client.get(f"/manage/audit?{query}")
        assert response.status_code == 200
        return rows_of(response.get_data(as_text=True))

    assert [row.split(" ")[2:4] for row in shown("area=round")] == [
        ["bidhub", "itself"], ["Manager", "Li"]]
    assert [row.split(" ")[2:5] for row in shown(f"actor={manager.id}")] == [
        ["Manager", "Li", "Round"]]
    assert "Round scored Round 7 Bids 3" in shown("actor=system&area=round")[0]
    # Days are Beijing days: the adoption at 23:30 on 1 February, the other two on 2 February.
    assert [row.split(" ")[:2] for row in shown("date_from=2026-02-01&date_to=2026-02-01")] == [
        ["2026-02-01", "23:30"]]
    assert len(shown("date_from=2026-02-02&date_to=2026-02-02")) == 2
    assert shown("date_from=2026-02-02&date_to=2026-02-28&area=rules") == []


@pytest.mark.parametrize("query, message", [
    ("area=rounds", "“rounds” is not one of the choices"),
    ("actor=abc", "“abc” is not one of the choices"),
    ("date_from=2026-13-01", "“2026-13-01” is no date"),
    ("date_from=9999-12-31", "“9999-12-31” is outside the years 2000 to 2100"),
    ("date_to=1999-12-31", "“1999-12-31” is outside the years 2000 to 2100"),
    ("date_from=2026-03-05&date_to=2026-03-01", "The first day is after the last"),
])
def test_a_filter_that_cannot_be_applied_is_said_and_the_page_still_answers(
        app, session, make_admin, clock, query, message):
    admin = make_admin()
    record_audit(session, admin, "rules.adopted", "rule_set:1", clock(), after={"sha256": "ab"})
    session.commit()

    response = signed_in(app, admin).get(f"/manage/audit?{query}")

    assert response.status_code == 200
    assert message in html.unescape(response.get_data(as_text=True))


def test_pages_of_fifty_and_a_page_past_the_last_shows_the_last(app, session, make_admin,
                                                               clock):
    admin = make_admin()
    for number in range(1, 53):
        record_audit(session, admin, "round.created", f"round:{number}", clock(),
                     after={"title": f"Round number {number}"})
    session.commit()
    client = signed_in(app, admin)

    first = rows_of(client.get("/manage/audit?area=round").get_data(as_text=True))
    last = rows_of(client.get("/manage/audit?area=round&page=9").get_data(as_text=True))

    assert len(first) == 50 and "Round number 52" in first[0]
    assert len(last) == 2 and "Round number 1" in last[-1]


def test_values_are_shown_as_recorded_without_markup(app, session, make_admin, clock):
    admin = make_admin()
    record_audit(session, admin, "decision.overridden", "listing:4", clock(),
                 before={"kind": "accepted", "bid": 11, "reason": None},
                 after={"bid": 12, "reason": "<script>alert(1)</script> 熟悉客户"})
    record_audit(session, admin, "future.kind", "thing:1", clock(), after={"list": [1, "二"]})
    session.commit()

    body = signed_in(app, admin).get("/manage/audit").get_data(as_text=True)

    assert "<script>alert(1)" not in body
    rows = rows_of(body)
    assert "future.kind thing:1 list [1, \"二\"]" in rows[0]
    assert "Ranking overridden Listed account 4" in rows[1]
    assert "Winner 11 → 12" in rows[1]  # bids that are gone keep their number
    assert "Reason — → <script>alert(1)</script> 熟悉客户" in rows[1]
    assert "Kind Ranking accepted" in rows[1]  # a stored code, by its label
    assert '<a href="/manage/listings/4">' in body


def test_people_accounts_rounds_bids_and_instants_are_shown_by_name(
        app, session, make_admin, make_rep, make_account, make_round, make_bid, clock):
    admin = make_admin()
    leaving, taking = make_rep(name="Wang Wei"), make_rep(name="Li Na")
    account = make_account(owner=leaving, name="Sunrise Steel")
    round_ = make_round(accounts=[make_account()])
    bid = make_bid(taking, round_.listings[0])
    record_audit(session, admin, "decision.overridden", f"listing:{round_.listings[0].id}",
                 clock(), before=None, after={"bid": bid.id, "reason": "knows the buyers"})
    record_audit(session, admin, "account.transferred", f"account:{account.id}", clock(),
                 before={"owner": leaving.id},
                 after={"owner": taking.id, "reason": "handover", "filing": 3})
    record_audit(session, admin, "round.reviewers", f"round:{round_.id}", clock(),
                 before={"reviewers": []}, after={"reviewers": [taking.id, leaving.id, 999999]})
    record_audit(session, admin, "listing.released", "listing:9", clock(),
                 after={"round": round_.id, "account": account.id, "reason": "neglected",
                        "from_rep": leaving.id})
    record_audit(session, None, "round.results_announced", f"round:{round_.id}", clock(),
                 after={"announced_at": "2026-03-02T01:30:00+00:00"})
    session.commit()

    body = signed_in(app, admin).get("/manage/audit?area=round").get_data(as_text=True)
    rows = rows_of(body)
    assert "Announced 2026-03-02 09:30" in rows[0]  # Beijing time
    assert "Reviewers — → Li Na、Wang Wei、999999" in rows[1]
    listed = rows_of(signed_in(app, admin).get("/manage/audit?area=listing")
                     .get_data(as_text=True))[0]
    assert f"Round {round_.title}" in listed
    assert f"Account Sunrise Steel（{account.external_id}）" in listed
    assert "Reason Account neglected" in listed and "From rep Wang Wei" in listed
    moved_page = signed_in(app, admin).get("/manage/audit?area=account").get_data(as_text=True)
    assert "Holder Wang Wei → Li Na" in rows_of(moved_page)[0]
    decided = rows_of(signed_in(app, admin).get("/manage/audit?area=decision")
                      .get_data(as_text=True))[0]
    assert f"Winner Li Na's bid (No. {bid.id})" in decided
    listed_account = round_.listings[0].account
    assert (f"Listed account: {listed_account.name}"
            f"（{listed_account.external_id}）") in decided
    # What a change applies to is named too, and opens its page.
    assert (f'<a href="/manage/accounts/{account.id}">Account: Sunrise Steel'
            f'（{account.external_id}）</a>') in moved_page
    # By its title alone: its record's number beside a title that holds a number of its own
    # read as a contradiction.
    assert f"Round: {round_.title}" in rows[0]
    assert not re.search(rf"Round {round_.id}\b", rows[0].replace(round_.title, ""))


def test_a_decision_sent_back_reads_as_its_values_and_its_problem_in_chinese(
        app, session, make_admin, make_manager, clock):
    admin, manager = make_admin(), make_manager(name="周建国")
    record_audit(session, None, "listing.apply_refused", "listing:5", clock(),
                 before={"decision": {"kind": "overridden", "bid": 8, "reason": "熟悉客户",
                                      "decided_by": manager.id,
                                      "decided_at": "2026-03-01T02:00:00+00:00"}},
                 after={"problem": dumps(N_("bid %(bid)d: scored under another rule version",
                                            bid=8)),
                        "check": "decision"})
    session.commit()

    row = rows_of(signed_in(app, admin, "zh").get("/manage/audit?area=listing")
                  .get_data(as_text=True))[0]

    # The decision it took back, value by value, and why, in the page's language.
    assert ("评定 类型：已改判；中标人：8；原因：熟悉客户；决定人：周建国；"
            "评定时间：2026年3月1日 10:00") in row
    assert "问题 竞标申请 8：按其他规则版本评分" in row
    assert "检查项 评定与其依据是否一致" in row
    assert "overridden" not in row and "decision" not in row and "%(bid)" not in row


def test_changes_of_an_event():
    assert changes_of(None, {"a": 1}) == changes_of({}, {"a": 1})
    assert [change.key for change in changes_of({"a": 1, "b": 2}, {"b": 3, "a": 1, "c": 4})] \
        == ["b", "c"]
    assert changes_of({"a": 1}, {"a": 1}) == ()


def test_reps_and_executives_cannot_read_it(app, make_rep, make_user):
    for user in (make_rep(), make_user("executive")):
        assert signed_in(app, user).get("/manage/audit").status_code == 403


def test_managers_reach_it_from_the_menu_and_everyone_who_may_read_it_from_the_register(
        app, make_admin, make_manager):
    link = '<a class="button" href="/manage/audit">'
    manager_client, admin_client = signed_in(app, make_manager()), signed_in(app, make_admin())
    assert '<a href="/manage/audit">Audit log</a>' in manager_client.get("/manage").get_data(
        as_text=True)
    for client in (manager_client, admin_client):
        assert link in client.get("/manage/filings").get_data(as_text=True)


def test_announcing_results_and_their_taking_effect_read_apart_in_chinese(app, session,
                                                                          make_admin, clock):
    admin = make_admin()
    record_audit(session, admin, "round.results_announced", "round:3", clock(),
                 after={"window_working_days": 3})
    record_audit(session, None, "round.results_in_force", "round:3", clock(),
                 after={"announced_at": "2026-03-01T02:00:00+00:00"})
    session.commit()
    rows = rows_of(signed_in(app, admin, "zh").get("/manage/audit?area=round")
                   .get_data(as_text=True))
    assert "公示中标结果，进入公示期" in rows[1] and "公示结束，结果已生效" in rows[0]
    assert "公示结束" not in rows[1]


def test_lists_of_listings_are_named_by_their_accounts(app, session, make_admin, make_account,
                                                       make_round, clock):
    admin = make_admin()
    accounts = [make_account(name=f"Listed Co. {number}") for number in range(12)]
    round_ = make_round(accounts=accounts)
    listing_ids = [listing.id for listing in round_.listings]
    record_audit(session, None, "round.listings_applied", f"round:{round_.id}", clock(),
                 after={"listings": listing_ids})
    record_audit(session, admin, "round.results_announced", f"round:{round_.id}", clock(),
                 after={"no_bid_defaults": [], "listings": 12})
    session.commit()
    rows = rows_of(signed_in(app, admin).get("/manage/audit?area=round").get_data(as_text=True))
    applied = next(row for row in rows if "Awards applied" in row)
    announced = next(row for row in rows if "Results announced" in row)
    shown = sorted(round_.listings, key=lambda listing: listing.id)
    assert f"Listings {shown[0].account.name}（{shown[0].account.external_id}）、" in applied
    assert applied.endswith("and 2 more")
    assert "Listings without a bid —" in announced
    assert "Listings 12" in announced  # a count stays a number


@pytest.mark.parametrize("written", ["0{id}", "+{id}+"])  # 012, " 12 "
def test_an_actor_written_otherwise_is_applied_and_shown_as_chosen(app, session, make_admin,
                                                                   clock, written):
    admin = make_admin()
    record_audit(session, admin, "rules.adopted", "rule_set:1", clock(), after={"sha256": "a"})
    session.commit()
    query = "/manage/audit?actor=" + written.format(id=admin.id)
    body = signed_in(app, admin).get(query).get_data(as_text=True)
    assert f'<option value="{admin.id}" selected>' in body
    assert "1 change" in body


def test_a_person_who_never_changed_anything_is_not_a_choice_and_says_so(app, session,
                                                                           make_admin, make_rep):
    admin, rep = make_admin(), make_rep()
    body = html.unescape(signed_in(app, admin).get(f"/manage/audit?actor={rep.id}")
                         .get_data(as_text=True))
    assert f"“{rep.id}” is not one of the choices in the list" in body
    assert "0 changes" not in body


def test_a_refused_value_is_echoed_without_its_invisible_controls(app, make_admin):
    body = html.unescape(signed_in(app, make_admin()).get(
        "/manage/audit?area=%E2%80%AEabc").get_data(as_text=True))
    assert "“abc” is not one of the choices" in body and "\u202e" not in body


def test_a_long_refused_value_is_quoted_cut_and_says_it_was_cut(app, make_admin):
    client = signed_in(app, make_admin())
    body = html.unescape(client.get(f"/manage/audit?area={'x' * 200}").get_data(as_text=True))
    assert f"“{'x' * 32}…” is not one of the choices" in body
    body = html.unescape(client.get("/manage/audit?date_from=2026-01-01%E2%80%AEzzzzz")
                         .get_data(as_text=True))
    assert "“2026-01-01zzzzz” is no date" in body and "\u202e" not in body
