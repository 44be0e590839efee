"""The account directory (大客户信息库) and each account's history page, for KA management."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from bidhub.domain.collation import name_key
from bidhub.models import (
    Account,
    AccountabilityIncident,
    AccountReview,
    Appeal,
    Decision,
    DecisionKind,
    ExecutiveTitle,
    IncidentStatus,
    ListingStatus,
    LossReviewStatus,
    Role,
    RoundStatus,
)
from bidhub.services import directory
from bidhub.services.directory import DirectoryFilter
from tests.conftest import login, reload
from tests.test_queries import counted_statements

DIRECTORY = "/manage/accounts"


def names_on(response) -> list[str]:
    """The account names in the directory's rows, in order."""
    html = response.get_data(as_text=True)
    return re.findall(r'href="/manage/accounts/\d+">([^<]+)</a>', html)


def csv_rows(response) -> list[list[str]]:
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


@pytest.fixture
def manager_client(client, make_manager):
    login(client, make_manager())
    return client


@pytest.fixture
def book(session, clock, make_branch, make_rep, make_account, make_round, make_user, make_manager):
    """A small book: two branches, two reps, a sponsored account, a listed one, an incident."""
    beijing, shanghai = make_branch(), make_branch("SH", "Shanghai")
    wang = make_rep(name="王伟", branch=beijing)
    li = make_rep(name="李娜", branch=shanghai)
    president = make_user(Role.EXECUTIVE, name="刘总")
    president.executive_title = ExecutiveTitle.PRESIDENT
    accounts = {
        "huawei": make_account(owner=wang, name="北京华为技术有限公司", industry="通信",
                               ownership_type="private", annual_value_yuan=2_500_000),
        "sinopec": make_account(owner=li, branch=shanghai, name="中国石化上海分公司",
                                industry="能源", ownership_type="state_owned",
                                annual_value_yuan=450_000),
        "bank": make_account(owner=wang, name="招商银行（集团）", industry="金融",
                             ownership_type="listed", annual_value_yuan=80_000,
                             executive_sponsor="ka_vice_president"),
        "small": make_account(owner=li, branch=shanghai, name="Acme Trading", industry="贸易",
                              ownership_type="joint_venture", annual_value_yuan=20_000),
        "orphan": make_account(name="无主客户有限公司", industry="贸易", annual_value_yuan=150_000),
    }
    accounts["sinopec"].sponsor_id = president.id
    session.add(AccountabilityIncident(
        account_id=accounts["small"].id, rep_id=li.id, competitor_site="51job.com",
        ad_type="banner", seen_at=clock() - timedelta(days=2), status=IncidentStatus.OPEN,
        explanation_due_at=clock() + timedelta(days=5)))
    session.add(AccountabilityIncident(
        account_id=accounts["bank"].id, rep_id=wang.id, competitor_site="zhaopin.com",
        ad_type="logo", seen_at=clock() - timedelta(days=40), status=IncidentStatus.ACCEPTED))
    session.commit()
    make_round(accounts=[accounts["orphan"]])
    finished = make_round(accounts=[accounts["huawei"]], status=RoundStatus.RESULTS_PUBLISHED)
    finished.listings[0].status = ListingStatus.NOT_AWARDED
    session.commit()
    return {"accounts": accounts, "wang": wang, "li": li, "beijing": beijing,
            "shanghai": shanghai, "president": president}


def test_search_by_name_or_number_as_typed(manager_client, book):
    accounts = book["accounts"]
    assert names_on(manager_client.get(DIRECTORY, query_string={"q": "华为"})) == [
        "北京华为技术有限公司"]
    number = accounts["sinopec"].external_id  # KA-000123
    assert names_on(manager_client.get(DIRECTORY, query_string={"q": number[-4:]})) == [
        "中国石化上海分公司"]
    # A Chinese input method types full-width letters and digits.
    full_width = number.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789KA"})
    assert full_width != number
    assert names_on(manager_client.get(DIRECTORY, query_string={"q": full_width})) == [
        "中国石化上海分公司"]
    # Full-width brackets in a name still match as typed; case does not matter.
    assert names_on(manager_client.get(DIRECTORY, query_string={"q": "（集团）"})) == ["招商银行（集团）"]
    assert names_on(manager_client.get(DIRECTORY, query_string={"q": "acme"})) == ["Acme Trading"]
    # % and _ are searched for as themselves, not as wildcards.
    assert names_on(manager_client.get(DIRECTORY, query_string={"q": "%"})) == []
    assert names_on(manager_client.get(DIRECTORY, query_string={"q": "_"})) == []


def test_search_as_you_type_swaps_only_the_rows(manager_client, book):
    page = manager_client.get(DIRECTORY).get_data(as_text=True)
    assert 'hx-get="/manage/accounts"' in page and 'hx-push-url="true"' in page
    assert "delay:400ms" in page and 'hx-target="#account-rows"' in page
    partial = manager_client.get(DIRECTORY, query_string={"q": "华为"},
                                 headers={"HX-Request": "true"})
    html = partial.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="account-rows">') and "<html" not in html
    assert "北京华为技术有限公司" in html and "Acme Trading" not in html
    assert "HX-Request" in partial.headers["Vary"]
    # The pushed URL reloads as the whole page with the same rows (a bookmark works).
    reloaded = manager_client.get(DIRECTORY, query_string={"q": "华为"})
    assert "<html" in reloaded.get_data(as_text=True)
    assert names_on(reloaded) == ["北京华为技术有限公司"]


@pytest.mark.parametrize(("query", "expected"), [
    ({"branch": "shanghai"}, {"sinopec", "small"}),
    ({"industry": "贸易"}, {"small", "orphan"}),
    ({"ownership": "state_owned"}, {"sinopec"}),
    ({"owner": "wang"}, {"huawei", "bank"}),
    ({"band": "under_50k"}, {"small"}),
    ({"band": "50k_100k"}, {"bank"}),
    ({"band": "100k_300k"}, {"orphan"}),
    ({"band": "300k_1m"}, {"sinopec"}),
    ({"band": "1m_up"}, {"huawei"}),
    ({"sponsored": "yes"}, {"sinopec", "bank"}),
    ({"sponsored": "no"}, {"huawei", "small", "orphan"}),
    ({"listed": "yes"}, {"orphan"}),
    ({"listed": "no"}, {"huawei", "sinopec", "bank", "small"}),
    ({"incidents": "yes"}, {"small"}),
    ({"incidents": "no"}, {"huawei", "sinopec", "bank", "orphan"}),
    ({"branch": "beijing", "band": "1m_up", "q": "华为"}, {"huawei"}),
])
def test_each_filter(manager_client, book, query, expected):
    ids = {"shanghai": book["shanghai"].id, "beijing": book["beijing"].id, "wang": book["wang"].id}
    query = {name: str(ids.get(value, value)) for name, value in query.items()}
    names = {book["accounts"][key].name for key in expected}
    assert set(names_on(manager_client.get(DIRECTORY, query_string=query))) == names


def test_rows_show_owner_sponsor_and_state(manager_client, book):
    html = manager_client.get(DIRECTORY).get_data(as_text=True)
    assert "刘总" in html  # the sponsor as a person
    assert "KA vice-president" in html  # the legacy title where no person is named
    assert "On the market" in html and "1 open incident" in html
    assert f'href="/reps/{book["wang"].id}"' in html


@pytest.mark.parametrize(("sort", "expected"), [
    ("name", ["Acme Trading", "中国石化上海分公司", "北京华为技术有限公司", "招商银行（集团）", "无主客户有限公司"]),
    ("-value", ["北京华为技术有限公司", "中国石化上海分公司", "无主客户有限公司", "招商银行（集团）", "Acme Trading"]),
    ("value", ["Acme Trading", "招商银行（集团）", "无主客户有限公司", "中国石化上海分公司", "北京华为技术有限公司"]),
    # 李娜 before 王伟 (li before wang), the account id within each; nobody's last.
    ("owner", ["中国石化上海分公司", "Acme Trading", "北京华为技术有限公司", "招商银行（集团）", "无主客户有限公司"]),
])
def test_sorting(manager_client, book, sort, expected):
    if sort == "name":
        expected = sorted(expected, key=name_key)  # pinyin order, as the pickers list them
    response = manager_client.get(DIRECTORY, query_string={"sort": sort})
    assert names_on(response) == expected


MIXED_NAMES = ["张家口物流", "阿里巴巴", "Beta Ltd", "alpha Co", "陈氏集团", "Zeta", "李宁体育",
               "北京华为", "ＢＥＴＡ Ltd", "王府井百货", "Älpha", "中国银行", "李宁体育"]


def test_pages_follow_each_other_in_pinyin_order(session, manager_client, monkeypatch,
                                                  make_account, make_rep):
    """Page 2 carries on where page 1 stopped, by name in pinyin order then id, with Chinese
    and Latin names mixed, on either database; by owner in the same way."""
    reps = [make_rep(name=name) for name in ("张伟", "Anna", "李娜", "bob", "王芳")]
    accounts = [make_account(name=name, owner=reps[n % len(reps)])
                for n, name in enumerate(MIXED_NAMES)]
    monkeypatch.setattr(directory, "PAGE_SIZE", 4)

    def pages(sort: str) -> list[str]:
        return [name for page in range(1, 5) for name in names_on(manager_client.get(
            DIRECTORY, query_string={"sort": sort, "page": page}))]

    by_name = sorted(accounts, key=lambda account: (name_key(account.name), account.id))
    assert pages("name") == [account.name for account in by_name]
    assert pages("name")[:4] == ["Älpha", "alpha Co", "Beta Ltd", "ＢＥＴＡ Ltd"]
    assert pages("-name") == [account.name for account in sorted(
        accounts, key=lambda account: (name_key(account.name), -account.id), reverse=True)]
    by_owner = sorted(accounts, key=lambda account: (name_key(account.owner.display_name),
                                                     account.id))
    assert pages("owner") == [account.name for account in by_owner]


def test_sort_links_toggle_and_keep_the_filters(manager_client, book):
    html = manager_client.get(DIRECTORY, query_string={"sort": "-value", "industry": "贸易"}
                              ).get_data(as_text=True)
    assert re.search(r'href="/manage/accounts\?[^"]*sort=value[&"]', html)  # flips to ascending
    assert re.search(r'href="/manage/accounts\?[^"]*sort=name[&"]', html)
    assert html.count("industry=%E8%B4%B8%E6%98%93") >= 3  # export and sort links keep it


def test_sorting_by_held_since_and_branch(session, manager_client, book, clock, make_manager):
    from bidhub.services.filings import transfer_account

    accounts = book["accounts"]
    clock.advance(days=3)
    transfer_account(session, make_manager(), account_id=accounts["small"].id,
                     to_rep_id=book["wang"].id, reason="The rep asked to hand it over.",
                     review_text="Handover done; the client was told in person.", now=clock())
    newest_first = names_on(manager_client.get(DIRECTORY, query_string={"sort": "-held_since"}))
    assert newest_first[0] == "Acme Trading"
    assert newest_first[-1] == "无主客户有限公司"  # held by nobody: last either way
    by_branch = names_on(manager_client.get(DIRECTORY, query_string={"sort": "branch"}))
    assert set(by_branch[:3]) == {"北京华为技术有限公司", "招商银行（集团）", "无主客户有限公司"}


def test_pagination_keeps_filters(session, manager_client, make_account, make_branch):
    branch = make_branch()
    for n in range(55):
        make_account(name=f"分页客户{n:03d}", branch=branch)
    first = manager_client.get(DIRECTORY, query_string={"q": "分页客户"})
    assert len(names_on(first)) == directory.PAGE_SIZE
    html = first.get_data(as_text=True)
    assert "55 accounts" in html and "Page 1 of 2" in html
    link = re.search(r'href="(/manage/accounts\?[^"]*page=2[^"]*)"', html).group(1)
    second = manager_client.get(link.replace("&amp;", "&"))
    assert names_on(second) == [f"分页客户{n:03d}" for n in range(50, 55)]
    # A page beyond the last shows the last.
    assert names_on(manager_client.get(DIRECTORY, query_string={
        "q": "分页客户", "page": "99"})) == names_on(second)


def test_csv_honours_the_filters_and_matches_the_page(manager_client, book):
    query = {"sponsored": "yes", "sort": "-value"}
    page_names = names_on(manager_client.get(DIRECTORY, query_string=query))
    response = manager_client.get(f"{DIRECTORY}.csv", query_string=query)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Cache-Control"] == "no-store"
    rows = csv_rows(response)
    assert rows[0][:3] == ["Account number", "Account", "Industry"]
    assert [row[1] for row in rows[1:]] == page_names == ["中国石化上海分公司", "招商银行（集团）"]
    sinopec = rows[1]
    assert sinopec[0] == book["accounts"]["sinopec"].external_id
    assert sinopec[3] == "State-owned" and sinopec[5] == "450000" and sinopec[6] == "李娜"
    assert sinopec[8] == "刘总" and rows[2][8] == "KA vice-president"
    # The page links its export with the same filters.
    html = manager_client.get(DIRECTORY, query_string=query).get_data(as_text=True)
    assert "/manage/accounts.csv?" in html and "sponsored=yes" in html


def test_csv_in_chinese(manager_client, book):
    rows = csv_rows(manager_client.get(f"{DIRECTORY}.csv", query_string={
        "lang": "zh_CN", "ownership": "state_owned"}))
    assert rows[0][0] == "客户编号" and rows[1][3] == "国有"
    assert rows[1][9] == "否" and rows[1][10] == "0"


def test_bad_filter_values_get_a_message_and_change_nothing(manager_client, book):
    response = manager_client.get(DIRECTORY, query_string={
        "band": "lots", "sponsored": "maybe", "branch": "²", "owner": "9" * 30, "sort": "hash"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Choose the value band from the list; “lots” is not one." in html
    assert "Sponsored is yes or no; “maybe” is neither." in html
    assert "Choose the branch from the list; “²” is not one." in html
    assert "cannot be sorted by “hash”" in html
    assert len(names_on(response)) == 5  # the bad filters are left out, not guessed
    # Quoted back without the controls that would turn the message around, and a long one cut
    # with "…".
    html = manager_client.get(DIRECTORY, query_string={
        "band": "\u202eabc", "sort": "s" * 50}).get_data(as_text=True)
    assert "“abc” is not one." in html and "\u202e" not in html
    assert f"cannot be sorted by “{'s' * 32}…”" in html
    # An export never leaves a filter out silently.
    refused = manager_client.get(f"{DIRECTORY}.csv", query_string={"listed": "perhaps"})
    assert refused.status_code == 422 and refused.mimetype == "text/html"
    assert "Listed in an unfinished round is yes or no" in refused.get_data(as_text=True)


@pytest.mark.parametrize("value", ["\x00", "%", "_", "'; DROP TABLE accounts;--", "a" * 10_000,
                                   "１２", "-1", str(2**63), "\u202e", "<script>", "{{ 7*7 }}"])
def test_hostile_parameters_never_fail(manager_client, book, value):
    query = {name: value for name in ("q", "branch", "industry", "ownership", "owner", "band",
                                      "sponsored", "listed", "incidents", "sort", "page")}
    for path in (DIRECTORY, f"{DIRECTORY}.csv"):
        response = manager_client.get(path, query_string=query)
        assert response.status_code in (200, 422), (path, value)
        assert "<script>" not in response.get_data(as_text=True).replace("&lt;script&gt;", "")
    for query in ("endpoint=x", "_scheme=javascript", "_external=1", "page=2&endpoint=x"):
        assert manager_client.get(f"{DIRECTORY}?{query}").status_code == 200


def test_statements_stay_bounded_with_2000_accounts(app, session, manager_client, book,
                                                    make_branch, clock):
    def statements(url):
        manager_client.get(url)
        with counted_statements(app) as seen:
            assert manager_client.get(url).status_code == 200
        return len(seen)

    urls = [DIRECTORY, f"{DIRECTORY}?sort=-held_since&incidents=no",
            f"{DIRECTORY}?q=客户&sponsored=no&listed=no", f"{DIRECTORY}.csv"]
    few = [statements(url) for url in urls]
    branch, owners = make_branch(), [book["wang"].id, book["li"].id, None]
    session.execute(insert(Account), [
        {"external_id": f"BULK-{n:05d}", "name": f"批量客户{n:05d}有限公司", "industry": "制造",
         "ownership_type": "private", "branch_id": branch.id, "annual_value_yuan": 10_000 + n,
         "owner_id": owners[n % 3], "created_at": clock()} for n in range(2_100)])
    session.commit()
    assert session.scalar(select(Account.id).order_by(Account.id.desc())) > 2_000
    assert [statements(url) for url in urls] == few
    assert max(few) < 15


def test_the_account_page_shows_profile_people_owner_and_sponsor(
        session, manager_client, book, give_accounts):
    sinopec = book["accounts"]["sinopec"]
    from bidhub.models import Contact

    session.add_all([Contact(account_id=sinopec.id, role=role, name=name, title=title)
                     for role, name, title in (("contact", "赵敏", "行政"),
                                               ("decision_maker", "孙总", "总经理"),
                                               ("purchaser", "周经理", "采购部"),
                                               ("user", "吴主管", "招聘主管"))])
    session.commit()
    give_accounts(book["li"], 43)
    html = manager_client.get(f"{DIRECTORY}/{sinopec.id}").get_data(as_text=True)
    assert "中国石化上海分公司" in html and "State-owned" in html and "Shanghai" in html
    order = [html.index(name) for name in ("孙总", "吴主管", "周经理", "赵敏")]
    assert order == sorted(order)  # decision maker, user, purchaser, contact
    assert "holds 45 accounts" in html and "Above the band" in html
    assert "刘总" in html and "President" in html
    assert f'href="/board/reps/{book["li"].id}"' in html  # the owner's accounts on the board
    assert f'href="/sponsors/accounts/{sinopec.id}"' in html  # where the sponsor is changed
    bank = manager_client.get(f"{DIRECTORY}/{book['accounts']['bank'].id}").get_data(as_text=True)
    assert "KA vice-president" in bank and "no person is named yet" in bank
    assert "holds 2 accounts" in bank and "Below the band" in bank


def test_the_timeline_merges_filings_rounds_incidents_and_reviews_newest_first(
        session, manager_client, book, clock, make_rep, make_round, make_bid, make_manager):
    account, wang = book["accounts"]["bank"], book["wang"]
    manager, bidder = make_manager(), make_rep(name="陈静")
    clock.advance(days=1)
    round_ = make_round(accounts=[account], title="春季竞标", status=RoundStatus.PUBLISHED)
    listing = round_.listings[0]
    bid = make_bid(bidder, listing)
    clock.advance(days=1)
    round_.status = RoundStatus.RESULTS_PUBLISHED
    listing.status = ListingStatus.NOT_AWARDED
    listing.release_note = "客户要求更换销售。"
    session.add(Decision(listing_id=listing.id, kind=DecisionKind.NO_AWARD, bid_id=None,
                         reason="报价不足，暂不授予。", decided_by_id=manager.id,
                         decided_at=clock()))
    session.add(Appeal(listing_id=listing.id, appellant_id=bidder.id, ground="评分有误，请复核。",
                       filed_at=clock(), status="rejected", answer="复核后维持原决定。",
                       answered_by_id=manager.id, answered_at=clock()))
    assert bid.rep_id == bidder.id
    clock.advance(days=1)
    session.add(AccountabilityIncident(
        account_id=account.id, rep_id=wang.id, competitor_site="liepin.com", ad_type="banner",
        seen_at=clock(), status=IncidentStatus.EXPLAINED, explanation="客户只是试投放一周。"))
    session.commit()
    clock.advance(days=1)
    session.add(AccountReview(account_id=account.id, rep_id=wang.id, reason="direct_transfer",
                              created_at=clock(), status=LossReviewStatus.CLOSED,
                              due_at=clock() + timedelta(days=7),
                              what_happened="长期未拜访决策人。", do_differently="每月拜访一次。",
                              manager_comment="总结到位，结案。", closed_by_id=manager.id,
                              closed_at=clock()))
    session.commit()
    html = manager_client.get(f"{DIRECTORY}/{account.id}").get_data(as_text=True)
    markers = ["长期未拜访决策人。", "客户只是试投放一周。", "春季竞标", "Filing No."]
    positions = [html.index(marker) for marker in markers]
    assert positions == sorted(positions), "newest first"
    review = session.scalars(select(AccountReview).where(
        AccountReview.account_id == account.id)).one()
    assert f'href="/reviews/{review.id}"' in html
    for text in ("每月拜访一次。", "总结到位，结案。", "Not awarded", "报价不足，暂不授予。",
                 "评分有误，请复核。", "复核后维持原决定。", "liepin.com", "CRM import",
                 "Accountability incident", "Explained"):
        assert text in html, text
    # A release reason and its note, an appeal's outcome and its answer: label and value
    # joined with the page's colon.
    assert re.search(r"\w: 客户要求更换销售。", html) and re.search(r"\w: 复核后维持原决定。", html)
    chinese = manager_client.get(f"{DIRECTORY}/{account.id}",
                                 headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert re.search(r"\w：客户要求更换销售。", chinese)
    assert re.search(r"\w：复核后维持原决定。", chinese)
    assert ": 客户" not in chinese and ": 复核" not in chinese


def test_timeline_shows_an_award_winner_and_a_direct_transfer(
        session, manager_client, book, clock, make_rep, make_round, make_bid, make_manager):
    from bidhub.services.filings import transfer_account

    account = book["accounts"]["small"]
    manager, winner = make_manager(), make_rep(name="赵强")
    round_ = make_round(accounts=[account], title="秋季竞标")
    listing = round_.listings[0]
    bid = make_bid(winner, listing)
    round_.status = RoundStatus.RESULTS_PUBLISHED
    listing.status = ListingStatus.AWARDED
    session.add(Decision(listing_id=listing.id, kind=DecisionKind.ACCEPTED, bid_id=bid.id,
                         decided_by_id=manager.id, decided_at=clock()))
    session.commit()
    clock.advance(days=1)
    transfer_account(session, manager, account_id=account.id, to_rep_id=winner.id,
                     reason="The rep left the Shanghai team.",
                     review_text="Handover done; the client was told in person.", now=clock())
    reload(session)
    html = manager_client.get(f"{DIRECTORY}/{account.id}").get_data(as_text=True)
    assert "won by 赵强" in html and "Awarded" in html
    assert "Direct transfer" in html and "The rep left the Shanghai team." in html
    assert html.index("Direct transfer") < html.index("秋季竞标")
    history = directory.account_history(session, account.id, clock())
    kinds = [type(event).__name__ for event in history.timeline]
    assert kinds[0] == "FilingEvent" and "ListingEvent" in kinds and "IncidentEvent" in kinds
    assert history.held_since == clock()


def test_the_filter_service_reads_plain_rows(session, book):
    rows = directory.find_accounts(session, DirectoryFilter(owner_id=book["wang"].id,
                                                            sort="-value"))
    assert [row.name for row in rows] == ["北京华为技术有限公司", "招商银行（集团）"]
    assert rows[1].is_sponsored and rows[1].sponsor_title == "ka_vice_president"
    assert directory.count_accounts(session, DirectoryFilter(is_listed=True)) == 1


def test_only_management_sees_the_directory(app, book, make_rep, make_user, make_admin):
    account_id = book["accounts"]["huawei"].id
    paths = (DIRECTORY, f"{DIRECTORY}.csv", f"{DIRECTORY}/{account_id}")
    for user in (make_rep(), make_user(Role.EXECUTIVE)):
        client = app.test_client()
        login(client, user)
        for path in paths:
            assert client.get(path).status_code == 403, (user.role, path)
    anonymous = app.test_client()
    for path in paths:
        response = anonymous.get(path)
        assert response.status_code == 302 and "/login" in response.location
    admin = app.test_client()
    login(admin, make_admin())
    for path in paths:
        assert admin.get(path).status_code == 200
    assert admin.get(f"{DIRECTORY}/999999").status_code == 404


def test_management_nav_and_the_register_link_to_the_directory(manager_client, book, session):
    from bidhub.models import Filing

    html = manager_client.get("/manage/filings").get_data(as_text=True)
    assert 'href="/manage/accounts"' in html
    filing = session.scalars(select(Filing)).first()
    assert f'href="/manage/accounts/{filing.account_id}"' in html


def test_the_pages_speak_chinese(session, manager_client, book, clock, make_rep, make_round,
                                 make_manager):
    from tests.test_i18n import ALLOWED_WORDS, english_words, visible_text

    account, manager = book["accounts"]["small"], make_manager(name="周建国")
    round_ = make_round(accounts=[account], title="秋季竞标", manager=manager)
    round_.status = RoundStatus.RESULTS_PUBLISHED
    round_.listings[0].status = ListingStatus.NOT_AWARDED
    session.add(Decision(listing_id=round_.listings[0].id, kind=DecisionKind.NO_AWARD,
                         reason="无人出价。", decided_by_id=manager.id, decided_at=clock()))
    session.add(AccountReview(account_id=account.id, rep_id=book["li"].id, reason="released",
                              created_at=clock(), status=LossReviewStatus.DUE,
                              due_at=clock() - timedelta(days=1)))
    session.commit()
    allowed = ALLOWED_WORDS | {"Acme", "Trading", "Beijing", "Shanghai"}  # data
    headers = {"Accept-Language": "zh-CN"}
    for path in (DIRECTORY, f"{DIRECTORY}?band=很多&sponsored=yes&sort=-held_since",
                 f"{DIRECTORY}/{account.id}", f"{DIRECTORY}/{book['accounts']['sinopec'].id}"):
        html = manager_client.get(path, headers=headers).get_data(as_text=True)
        main = html[html.index("<main"):html.index("</main>")]  # the navigation is not ours
        words = english_words(visible_text(main), allowed)
        assert not words, (path, words)


def test_the_export_link_follows_the_search_typed_in_place(manager_client, book):
    """The rows are swapped as the search is typed (htmx); the export link beside the heading
    must follow, or 'Export CSV' exports every account instead of the ones shown."""
    def links(page: str) -> list[str]:
        return [html.unescape(href) for href in re.findall(
            r'<a class="button" id="accounts-csv"[^>]*href="([^"]*)"', page)]

    assert links(manager_client.get(DIRECTORY).get_data(as_text=True)) == ["/manage/accounts.csv"]
    partial = manager_client.get(DIRECTORY, query_string={"q": "华为"},
                                 headers={"HX-Request": "true"}).get_data(as_text=True)
    assert links(partial) == ["/manage/accounts.csv?q=%E5%8D%8E%E4%B8%BA"]
    assert 'id="accounts-csv" hx-swap-oob="true"' in partial
