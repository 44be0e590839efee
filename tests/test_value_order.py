"""Industries and branches in the order a Chinese reader expects (pinyin, domain.collation),
not the database's byte order, wherever a list is sorted by them: the rep's list and
management's round page by industry, the account directory by branch."""

from __future__ import annotations

import re

import pytest

from bidhub.models import Branch
from bidhub.services import adjudication, browse, directory
from tests.conftest import client_of

# Code point order would give 互联网, 制造业, 物流, 能源, 金融.
INDUSTRIES_IN_PINYIN = ["互联网", "金融", "能源", "物流", "制造业"]
# Code point order would give 上海, 北京, 广州, 成都, 深圳.
BRANCHES_IN_PINYIN = ["北京分公司", "成都分公司", "广州分公司", "上海分公司", "深圳分公司"]
ROW = re.compile(r'<td class="term"[^>]*>(?:<span class="cell-label">[^<]*</span>)?([^<]+)<')


@pytest.fixture
def industries(session, make_account, make_round, make_rep):
    # Made in neither order, the same annual value each: only the sort orders them.
    accounts = [make_account(industry=industry, annual_value_yuan=100_000)
                for industry in ("物流", "金融", "制造业", "互联网", "能源", "金融")]
    round_ = make_round(accounts=accounts)
    return round_, make_rep()


def test_the_reps_list_sorts_industries_in_pinyin_order(session, clock, industries):
    round_, rep = industries
    rows = browse.rep_list(session, round_.id, rep, browse.ListingFilter(sort="industry"),
                           clock()).rows
    assert [row.industry for row in rows] == [
        "互联网", "金融", "金融", "能源", "物流", "制造业"]
    assert [row.id for row in rows[1:3]] == sorted(row.id for row in rows[1:3])
    rows = browse.listings_for_rep(session, round_, rep, browse.ListingFilter(sort="industry"))
    assert list(dict.fromkeys(row.industry for row in rows)) == INDUSTRIES_IN_PINYIN


def industries_on(html: str, industry_of: dict[str, str]) -> list[str]:
    """The industries of the accounts a list shows, in its order, each once."""
    section = re.search(r'<section id="listings".*?</section>', html, re.S).group(0)
    numbers = list(dict.fromkeys(re.findall(r"KA-\d{6}", section)))
    return list(dict.fromkeys(industry_of[number] for number in numbers))


@pytest.mark.parametrize("scored", [False, True], ids=["open", "scored"])
def test_the_round_page_sorts_industries_in_pinyin_order(app, session, clock, industries,
                                                          make_manager, make_bid, scored):
    round_, rep = industries
    industry_of = {listing.account.external_id: listing.account.industry
                   for listing in round_.listings}
    if scored:
        make_bid(rep, round_.listings[0])
        clock.advance(days=8)
        assert adjudication.score_closed_round(session, round_.id, clock())
        session.rollback()
    client = client_of(app, make_manager())
    for headers in ({}, {"HX-Request": "true"}):
        html = client.get(f"/manage/rounds/{round_.id}?sort=industry",
                          headers=headers).get_data(as_text=True)
        assert industries_on(html, industry_of) == INDUSTRIES_IN_PINYIN, headers
    rep_page = client_of(app, rep).get(f"/rounds/{round_.id}?sort=industry")
    assert industries_on(rep_page.get_data(as_text=True), industry_of) == INDUSTRIES_IN_PINYIN


def test_the_directory_sorts_branches_in_pinyin_order(app, session, make_account,
                                                      make_manager):
    names = {}
    for index, branch_name in enumerate(("上海分公司", "深圳分公司", "北京分公司", "成都分公司",
                                         "广州分公司")):
        branch = Branch(code=f"B{index}", name=branch_name)
        session.add(branch)
        session.commit()
        names[branch_name] = make_account(name=f"客户{index}", branch=branch).name
    rows = directory.find_accounts(session, directory.DirectoryFilter(sort="branch"))
    assert [row.branch.name for row in rows] == BRANCHES_IN_PINYIN
    rows = directory.find_accounts(session, directory.DirectoryFilter(sort="-branch"))
    assert [row.branch.name for row in rows] == BRANCHES_IN_PINYIN[::-1]
    # Paged, the database orders them: the second page goes on where the first stopped.
    pages = [directory.find_accounts(session, directory.DirectoryFilter(sort="branch"),
                                     limit=2, offset=offset) for offset in (0, 2, 4)]
    assert [row.branch.name for page in pages for row in page] == BRANCHES_IN_PINYIN
    html = client_of(app, make_manager()).get(
        "/manage/accounts", query_string={"sort": "branch"}).get_data(as_text=True)
    shown = re.findall(r'href="/manage/accounts/\d+">([^<]+)</a>', html)
    assert shown == [names[name] for name in BRANCHES_IN_PINYIN]


def test_a_branch_with_a_chinese_name_sorts_by_it(session, make_account):
    """A branch's place is its Chinese name's where it has one (domain.collation.branch_order),
    on a Chinese page and an English one alike."""
    for code, name, name_zh in (("ZZ", "Alpha", "张家口"), ("AA", "Zulu", "安阳")):
        branch = Branch(code=code, name=name, name_zh=name_zh)
        session.add(branch)
        session.commit()
        make_account(name=f"客户{code}", branch=branch)
    rows = directory.find_accounts(session, directory.DirectoryFilter(sort="branch"))
    assert [row.branch.name_zh for row in rows] == ["安阳", "张家口"]
