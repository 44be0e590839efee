"""The filing register's page and its CSV export say what the database holds, line for line, in
Chinese and in English; their date filters are days in the department's time zone (Beijing)."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bidhub.models import DecisionKind, Filing, Round, User
from bidhub.services import adjudication, appeals
from bidhub.services.filings import transfer_account
from tests.conftest import login, reload
from tests.test_appeals import results_in_force

BEIJING = ZoneInfo("Asia/Shanghai")
REASON = "The rep moves to the Shanghai team."
REVIEW = "Handover planned with the client's purchaser."
GROUND = "My plan covers the client's three plants; please read it again."
ANSWER = "We read the plan again; the ranking stands on the track record."
OVERRIDE = "Knows the group's buyers from an earlier project."
LANGUAGES = {"en": "en", "zh": "zh-CN"}


def client_of(app, user, language: str):
    client = app.test_client()
    login(client, user)
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = LANGUAGES[language]
    return client


def cell_text(cell: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell))).strip()


def page_lines(client, query: str = "") -> list[list[str]]:
    """The register page's lines, each a list of its cells' raw markup."""
    response = client.get(f"/manage/filings{query}")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    tbody = re.search(r"<tbody>(.*?)</tbody>", body, re.S)
    if tbody is None:
        return []
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            for row in re.findall(r"<tr>(.*?)</tr>", tbody.group(1), re.S)]


def export_lines(client, query: str = "") -> tuple[list[str], list[list[str]]]:
    """The export's header and its lines (the register's head after the blank line left out)."""
    response = client.get(f"/manage/filings.csv{query}")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"), newline="")))
    end = rows.index([]) if [] in rows else len(rows)
    return rows[0], rows[1:end]


@pytest.fixture
def register(app, session, clock, make_rep, make_manager, make_account, make_round, make_bid):
    """Every kind of line: first owners from an import, a direct transfer, an award that
    followed the ranking after a rejected appeal, and an override."""
    owner, first, second = make_rep(name="张伟"), make_rep(name="李娜"), make_rep(name="王芳")
    manager, other_manager = make_manager(name="周建国"), make_manager(name="吴晓梅")
    moved = make_account(owner=owner, name="广州云帆科技有限公司")
    round_ = make_round(accounts=[make_account(owner=owner), make_account(owner=owner)],
                        closes_at=clock() + timedelta(hours=1),
                        opens_at=clock() - timedelta(hours=2), title="第11期客户资源竞标")
    for listing in round_.listings:
        make_bid(first, listing)
        make_bid(second, listing)
    clock.advance(hours=1)
    assert adjudication.score_closed_round(session, round_.id, clock())
    appealed, overridden = round_.listings
    adjudication.decide_listing(session, manager, appealed.id, kind=DecisionKind.ACCEPTED,
                                bid_id=None, reason="", now=clock())
    loser = adjudication.ranked_bids(session, overridden.id)[1]
    adjudication.decide_listing(session, other_manager, overridden.id,
                                kind=DecisionKind.OVERRIDDEN, bid_id=loser.id, reason=OVERRIDE,
                                now=clock())
    reload(session)
    round_ = session.get(Round, round_.id)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    appellant = adjudication.ranked_bids(session, appealed.id)[1].rep_id
    appeal = appeals.file_appeal(session, session.get(User, appellant), appealed.id,
                                 ground=GROUND, now=clock())
    appeals.answer_appeal(session, other_manager, appeal.id, upheld=False, answer=ANSWER,
                          expected_version=appeal.version, now=clock())
    results_in_force(session, round_.id)
    clock.advance(days=4)
    transfer_account(session, manager, account_id=moved.id, to_rep_id=first.id, reason=REASON,
                     review_text=REVIEW, now=clock())
    reload(session)
    return {"manager": manager, "round": round_, "appellant": session.get(User, appellant),
            "answerer": other_manager}


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_page_and_the_export_show_each_filing_as_the_database_holds_it(app, session,
                                                                           register, language):
    client = client_of(app, register["manager"], language)
    header, exported = export_lines(client)
    shown = page_lines(client)
    filed = session.scalars(select(Filing).order_by(Filing.seq.desc())).all()
    assert len(shown) == len(exported) == len(filed) == 6
    column = {name: index for index, name in enumerate(header)}
    zh = language == "zh"
    names = ({"No.": "备案号", "Reason": "原因", "Override reason": "改判理由",
              "Appeals": "申诉", "Rule set": "规则版本 SHA-256", "Decided by": "决定人",
              "Filed at": "备案时间（本地）"} if zh else
             {"No.": "No.", "Reason": "Reason", "Override reason": "Override reason",
              "Appeals": "Appeals", "Rule set": "Rule set SHA-256", "Decided by": "Decided by",
              "Filed at": "Filed at (local)"})
    assert set(names.values()) <= set(column), header
    for line, record, filing in zip(shown, exported, filed, strict=True):
        def cell(name, record=record):
            return record[column[names[name]]]

        assert cell_text(line[0]) == cell("No.") == str(filing.seq)
        local = filing.decided_at.astimezone(BEIJING)
        assert cell("Filed at") == local.strftime("%Y-%m-%d %H:%M:%S")
        assert local.strftime("%H:%M") in cell_text(line[1])
        assert cell_text(line[3]) == (filing.from_rep.display_name if filing.from_rep else "—")
        assert cell_text(line[4]) == filing.to_rep.display_name
        assert cell_text(line[9]) == cell("Decided by") == filing.decided_by.display_name
        assert cell("Rule set") == (filing.rule_set_sha256 or "")
        # The page's reason, before the override and the appeals it shows under it.
        reason = cell_text(re.split(r"<br>|<details", line[6])[0])
        assert reason == cell("Reason"), (filing.seq, reason, cell("Reason"))
        assert cell("Override reason") == filing.override_reason
        if filing.override_reason:
            assert filing.override_reason in cell_text(line[6])
        if filing.appeals:
            for text in (GROUND, ANSWER, register["appellant"].display_name,
                         register["answerer"].display_name):
                assert text in cell("Appeals") and text in cell_text(line[6])
            assert ("申诉驳回" if zh else "Appeal rejected") in cell("Appeals")
        else:
            assert cell("Appeals") == ""
    award = next(record for record, filing in zip(exported, filed, strict=True)
                 if filing.kind == "round_award" and not filing.override_reason)
    assert award[column[names["Reason"]]] == (
        "在“第11期客户资源竞标”中中标" if zh else "Won in round “第11期客户资源竞标”")
    first_load = exported[-1]
    assert first_load[column[names["Reason"]]] == ("CRM导入" if zh else "CRM import")


def at_beijing(day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=BEIJING).astimezone(UTC)


def test_date_filters_are_beijing_days_on_the_page_and_in_the_export(
        app, session, clock, make_rep, make_manager, make_account):
    """Filed a second before and at Beijing midnight (16:00 UTC the day before): each falls on
    its Beijing day, whichever way the range is given."""
    manager, owner, receiver = make_manager(), make_rep(), make_rep()
    late, early = make_account(owner=owner), make_account(owner=owner)
    for account, moment in ((late, at_beijing(1, 23, 59, 59)), (early, at_beijing(2, 0, 0))):
        transfer_account(session, manager, account_id=account.id, to_rep_id=receiver.id,
                         reason=REASON, review_text=REVIEW, now=moment)
    reload(session)
    seq = {filing.account_id: filing.seq for filing in session.scalars(
        select(Filing).where(Filing.kind == "direct_transfer"))}
    client = client_of(app, manager, "zh")
    for query, expected in (
            ("?date_from=2026-03-02", [early.id]),
            ("?date_to=2026-03-01", [late.id]),
            ("?date_from=2026-03-01&date_to=2026-03-01", [late.id]),
            ("?date_from=2026-03-02&date_to=2026-03-02", [early.id]),
            ("?date_from=2026-03-01&date_to=2026-03-02", [early.id, late.id])):
        query += f"&rep={receiver.id}"
        shown = [int(cell_text(line[0])) for line in page_lines(client, query)]
        _header, exported = export_lines(client, query)
        assert shown == [int(record[0]) for record in exported] == [
            seq[account_id] for account_id in expected], query


@pytest.mark.parametrize("htmx", [False, True])
def test_a_day_filter_that_cannot_match_says_why_above_the_rows(app, session, register, htmx):
    """A day that is no date is left out, and days in the wrong order match nothing: the
    register says so, rather than looking filtered (or empty) for no reason."""
    client = client_of(app, register["manager"], "zh")
    headers = {"HX-Request": "true"} if htmx else {}
    every = client.get("/manage/filings", headers=headers).get_data(as_text=True)
    garbage = client.get("/manage/filings?date_from=2026-13-45",
                         headers=headers).get_data(as_text=True)
    assert "“2026-13-45”不是日期，请写成 YYYY-MM-DD。下面显示的登记簿未按这个日期筛选。" in garbage
    count = re.search(r'<p class="count">([^<]*)</p>', every).group(1)
    assert f'<p class="count">{count}</p>' in garbage
    reversed_days = client.get("/manage/filings?date_from=2026-12-31&date_to=2026-01-01",
                               headers=headers).get_data(as_text=True)
    assert "开始日期晚于结束日期，因此没有备案能符合条件；请对调两个日期。" in reversed_days
    assert "不是日期" not in every and "开始日期晚于" not in every


def test_a_filter_that_is_no_choice_is_said_and_the_export_refuses_what_it_cannot_filter(
        app, session, register):
    """A branch or rep that is not one of the menus' choices is left out like a day that is
    no date, and said above the rows; the export does not hand over the whole register as if
    it were filtered (422, the page with the reason), and a page past the last shows the last."""
    client = client_of(app, register["manager"], "zh")
    every = client.get("/manage/filings").get_data(as_text=True)
    count = re.search(r'<p class="count">([^<]*)</p>', every).group(1)
    manager_id = register["manager"].id
    for query, said in (("branch=abc", "“abc”不在列表的选项中。下面显示的登记簿未按它筛选。"),
                        ("rep=-1", "“-1”不在列表的选项中。"),
                        # Ids that are no branch, or nobody the rep menu offers.
                        ("branch=999999", "“999999”不在列表的选项中。"),
                        ("rep=2147483647", "“2147483647”不在列表的选项中。"),
                        (f"rep={manager_id}", f"“{manager_id}”不在列表的选项中。"),
                        # Echoed without the characters that would turn the message around.
                        ("branch=%E2%80%AEexe.cba%E2%80%8B", "“exe.cba”不在列表的选项中。"),
                        # A long value is quoted cut, and says it was cut.
                        (f"rep={'9' * 40}", f"“{'9' * 32}…”不在列表的选项中。"),
                        ("date_from=2026-02-30", "“2026-02-30”不是日期"),
                        ("date_to=0001-01-01", "“0001-01-01”不在 2000 至 2100 年之间。"),
                        ("date_from=2101-01-01", "“2101-01-01”不在 2000 至 2100 年之间。")):
        page = client.get(f"/manage/filings?{query}")
        assert page.status_code == 200
        assert said in page.get_data(as_text=True) and f'<p class="count">{count}</p>' in \
            page.get_data(as_text=True), query
        assert "\u202e" not in page.get_data(as_text=True)
        export = client.get(f"/manage/filings.csv?{query}")
        assert export.status_code == 422, query
        assert export.mimetype == "text/html" and said in export.get_data(as_text=True)
    assert client.get("/manage/filings.csv?date_from=2026-01-01").status_code == 200
    last = client.get("/manage/filings?page=99999999").get_data(as_text=True)
    assert '<td class="num">' in last.split("<tbody>")[1].split("</tbody>")[0]


class TestADepartmentWhoseClocksChange:
    """BIDHUB_TIMEZONE may name a zone with summer time: a day there is then 23 or 25 hours,
    and "until" a day ends at midnight of the next day there, not 24 hours after the start."""

    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "TIMEZONE": "Europe/Berlin"}

    def test_until_the_day_the_clocks_go_forward_ends_at_its_local_midnight(
            self, app, session, make_rep, make_manager, make_account):
        berlin = ZoneInfo("Europe/Berlin")
        manager, owner, receiver = make_manager(), make_rep(), make_rep()
        late, next_day = make_account(owner=owner), make_account(owner=owner)
        # 29 March 2026 has 23 hours in Berlin.
        for account, moment in ((late, datetime(2026, 3, 29, 23, 30, tzinfo=berlin)),
                                (next_day, datetime(2026, 3, 30, 0, 30, tzinfo=berlin))):
            transfer_account(session, manager, account_id=account.id, to_rep_id=receiver.id,
                             reason=REASON, review_text=REVIEW, now=moment.astimezone(UTC))
        reload(session)
        seq = {filing.account_id: filing.seq for filing in session.scalars(
            select(Filing).where(Filing.kind == "direct_transfer"))}
        client = client_of(app, manager, "en")
        for query, expected in (("?date_to=2026-03-29", [late.id]),
                                ("?date_from=2026-03-30", [next_day.id])):
            query += f"&rep={receiver.id}"
            shown = [int(cell_text(line[0])) for line in page_lines(client, query)]
            _header, exported = export_lines(client, query)
            assert shown == [int(record[0]) for record in exported] == [
                seq[account_id] for account_id in expected], query


def test_the_rep_menu_offers_every_rep_the_register_names_those_gone_marked_and_last(
        app, session, clock, make_rep, make_manager, make_account):
    """An auditor reaches the filings of a rep who has left from the menu, not by editing the
    URL: every rep the register names (giver or receiver) is offered, the ones who left or were
    deactivated marked as such and placed after the current reps; a leaver the register never
    names is not offered."""
    from tests.test_menu_order import shown

    manager = make_manager()
    giver, receiver = make_rep(name="王芳"), make_rep(name="陈静")
    current, unnamed = make_rep(name="李娜"), make_rep(name="周杰")
    account = make_account(owner=giver)
    transfer_account(session, manager, account_id=account.id, to_rep_id=receiver.id,
                     reason=REASON, review_text=REVIEW, now=clock())
    session.get(User, giver.id).status = "left"
    session.get(User, giver.id).is_active = False
    session.get(User, receiver.id).is_active = False
    session.get(User, unnamed.id).status = "left"
    session.get(User, unnamed.id).is_active = False
    session.commit()

    page = client_of(app, manager, "zh").get("/manage/filings").get_data(as_text=True)
    assert shown(page, "rep") == ["李娜", "陈静（已停用）", "王芳（已离职）"]
    page = client_of(app, manager, "en").get("/manage/filings").get_data(as_text=True)
    assert shown(page, "rep") == ["李娜", "陈静 (deactivated)", "王芳 (left)"]
    # The leaver's choice is kept and narrows the register to their filings.
    page = client_of(app, manager, "zh").get(f"/manage/filings?rep={giver.id}").get_data(
        as_text=True)
    assert f'<option value="{giver.id}" selected>王芳（已离职）</option>' in page
    assert current.display_name not in page.split("<tbody>")[-1]


def test_the_register_counts_its_filings_on_every_page_filtered_or_not(
        session, clock, make_rep, make_manager, make_account):
    """The whole register's count is read from its newest number (filings are numbered without
    a gap); a filtered one counts what the filters keep; past the last page, both still."""
    from sqlalchemy import func

    from bidhub.services.filings import FilingFilter, filing_register

    manager, giver, receiver = make_manager(), make_rep(), make_rep()
    for _ in range(7):
        account = make_account(owner=giver)
        transfer_account(session, manager, account_id=account.id, to_rep_id=receiver.id,
                         reason=REASON, review_text=REVIEW, now=clock())
    make_account(owner=make_rep())
    everything = session.scalar(select(func.count()).select_from(Filing))
    assert everything == session.scalar(select(func.max(Filing.seq))) == 7 + 7 + 1
    for criteria, expected in ((FilingFilter(), everything),
                               (FilingFilter(rep_id=receiver.id), 7),
                               (FilingFilter(rep_id=giver.id), 14)):
        for offset in (0, 5, 100):
            register = filing_register(session, criteria, limit=5, offset=offset)
            assert register.total == expected, (criteria, offset)
            assert len(register.lines) == max(0, min(5, expected - offset))
        assert filing_register(session, criteria).total == expected


def test_the_pages_of_the_register_hold_every_filing_once_newest_first(
        session, clock, make_rep, make_manager, make_account):
    """Filtered or not, the pages one after another are the register as one list: the whole
    register's page is read as a run of numbers below the newest, a filtered one from the
    filings the filters keep."""
    from bidhub.services.filings import FilingFilter, filing_register

    manager, giver, receiver = make_manager(), make_rep(), make_rep()
    for index in range(6):
        account = make_account(owner=giver if index % 2 else make_rep())
        transfer_account(session, manager, account_id=account.id, to_rep_id=receiver.id,
                         reason=REASON, review_text=REVIEW, now=clock())
    for criteria in (FilingFilter(), FilingFilter(rep_id=giver.id),
                     FilingFilter(rep_id=receiver.id)):
        whole = [line.seq for line in filing_register(session, criteria).lines]
        assert whole == sorted(whole, reverse=True) and whole
        paged = [line.seq for offset in range(0, len(whole) + 8, 4)
                 for line in filing_register(session, criteria, limit=4, offset=offset).lines]
        assert paged == whole, criteria


def export_links(page: str) -> list[str]:
    return [html.unescape(href) for href in re.findall(
        r'<a class="button" id="filings-csv"[^>]*href="([^"]*)"', page)]


def test_the_export_link_follows_filters_changed_in_place(app, session, register):
    """The menus filter the rows in place (htmx): the export link outside them came along
    unchanged, so 'Export CSV' after choosing a rep exported the whole register."""
    client = client_of(app, register["manager"], "zh")
    rep = register["appellant"].id
    assert export_links(client.get("/manage/filings").get_data(as_text=True)) == [
        "/manage/filings.csv"]
    whole = client.get(f"/manage/filings?rep={rep}").get_data(as_text=True)
    assert export_links(whole) == [f"/manage/filings.csv?rep={rep}"]
    assert "hx-swap-oob" not in whole
    partial = client.get(f"/manage/filings?rep={rep}&date_from=&date_to=",
                         headers={"HX-Request": "true"}).get_data(as_text=True)
    assert export_links(partial) == [f"/manage/filings.csv?rep={rep}"]
    assert 'id="filings-csv" hx-swap-oob="true"' in partial
