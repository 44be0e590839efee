"""The rep's list of a round under its filters, against what DOMAIN.md and the README promise.

The expected list is worked out here in plain Python from the accounts the test made, not from
bidhub's queries; the full page and the htmx partial the filter form asks for must both show
exactly it, in the same order, with the same count.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bidhub.domain.collation import name_key
from bidhub.models import Account
from tests.conftest import client_of

# name, industry, ownership, branch (index), annual value in yuan
ACCOUNTS = [
    ("北京星辰科技有限公司", "互联网", "private", 0, 120_000),
    ("上海云帆（集团）有限公司", "制造业", "state_owned", 1, 1_000_000),
    ("深圳华信(控股)有限公司", "制造业", "joint_venture", 2, 300_000),
    ("Alpha 100% Co.", "Internet", "private", 0, 50_000),
    ("alpha_co", "Internet", "listed", 1, 99_999),
    ("100 Percent Trading", "Retail", "private", 2, 100_000),
    ("ＡＢＣ贸易", "零售", "government", 0, 100_000),
    ("广州恒通物流", "物流", "listed", 2, 2**31 - 1),
    ("Beta Ltd", "互联网", "state_owned", 0, 0),
    ("zeta 科技", "Internet", "private", 1, 120_000),
]
BRANCHES = [("BJ", "Beijing"), ("SH", "Shanghai"), ("SZ", "Shenzhen")]

# Amounts as the README says people write them, and what each is in yuan (None: not one).
AMOUNTS = {"": None, "  ": None, "100000": 100_000, "100,000": 100_000, "¥100,000": 100_000,
           "100000元": 100_000, "10万": 100_000, "１０万": 100_000, "1.2万": 12_000,
           "0": 0, "30万": 300_000, "3亿": 300_000_000, "十万": "refused", "-5万": "refused",
           "1.23456万": "refused", "abc": "refused"}
SEARCHES = ["", "   ", "北京", " 北京\u3000", "（集团）", "(集团)", "（控股）", "(控股)", "ALPHA",
            "alpha", "Alpha 100%", "100%", "%", "_", "o_c", "ka-", "ＫＡ－", "ＡＢＣ", "ｚｅｔａ",
            "科技", "zzz", "'; DROP TABLE accounts; --", "<b>", "北京 科技", "科技　北京",
            "ａｂｃ 贸易", "alpha co", "Co. alpha", "北京 上海", "科技 科技", "zeta  科技"]
SORTS = ["", "value_desc", "value_asc", "name", "industry", "bogus"]


@pytest.fixture
def world(app, session, make_branch, make_account, make_round, make_rep):
    branches = [make_branch(code, name) for code, name in BRANCHES]
    accounts = [make_account(name=name, industry=industry, ownership_type=ownership,
                             branch=branches[branch], annual_value_yuan=value)
                for name, industry, ownership, branch, value in ACCOUNTS]
    round_ = make_round(accounts=accounts)
    rep = make_rep()
    facts = [{"number": account.external_id, "name": account.name,
              "industry": account.industry, "ownership": account.ownership_type,
              "branch": account.branch_id, "value": account.annual_value_yuan}
             for account in session.query(Account).order_by(Account.id)]
    return client_of(app, rep), round_.id, facts, [branch.id for branch in branches]


def ascii_lower(text: str) -> str:
    return "".join(char.lower() if char.isascii() else char for char in text)


def expected(facts: list[dict], query: dict[str, str]) -> tuple[list[str], str]:
    """The account numbers the list must show for `query`, and the sort in force."""
    shown = list(facts)
    # Every word of the text (split at spaces, an input method's full-width ones too), as
    # typed or with a Chinese input method's full-width characters folded, found as itself
    # (% and _ included) in a name or number, ASCII letters in any case; width-blind both
    # ways: the folded word is found in the name folded the same way.
    for word in query.get("q", "").split():
        folded = ascii_lower(unicodedata.normalize("NFKC", word).strip())
        terms = {ascii_lower(word), folded}
        shown = [fact for fact in shown
                 if any(term in ascii_lower(fact["name"]) or term in ascii_lower(fact["number"])
                        for term in terms)
                 or folded in ascii_lower(unicodedata.normalize("NFKC", fact["name"]))]
    # A menu value no listing holds is left out (and said so), not applied unseen.
    for name, key in (("industry", "industry"), ("ownership", "ownership")):
        if query.get(name) in {fact[key] for fact in facts}:
            shown = [fact for fact in shown if fact[key] == query[name]]
    if query.get("branch") in {str(fact["branch"]) for fact in facts}:
        shown = [fact for fact in shown if str(fact["branch"]) == query["branch"]]
    low, high = (AMOUNTS[query.get(name, "")] for name in ("min_value", "max_value"))
    if isinstance(low, int):
        shown = [fact for fact in shown if fact["value"] >= low]
    if isinstance(high, int):
        shown = [fact for fact in shown if fact["value"] <= high]
    sort = query.get("sort", "")
    sort = sort if sort in ("value_desc", "value_asc", "name", "industry") else "value_desc"
    return [fact["number"] for fact in shown], sort


def in_order(facts_by_number: dict[str, dict], numbers: list[str], sort: str) -> bool:
    """Whether `numbers` are in the sort's order (equal keys in any order among themselves)."""
    rows = [facts_by_number[number] for number in numbers]
    if sort == "industry":  # each industry together
        seen: list[str] = []
        for row in rows:
            if not seen or seen[-1] != row["industry"]:
                if row["industry"] in seen:
                    return False
                seen.append(row["industry"])
        return True
    keys = {"value_desc": lambda row: -row["value"], "value_asc": lambda row: row["value"],
            # Account names in pinyin order, as the README says tables of accounts list them.
            "name": lambda row: name_key(row["name"])[0]}[sort]
    return all(keys(a) <= keys(b) for a, b in zip(rows, rows[1:], strict=False))


LISTINGS = re.compile(r'<section id="listings".*?</section>', re.S)
NUMBER = re.compile(r'<td class="name"><a href="/accounts/\d+">.*?</a> '
                    r'<small class="muted">([^<]*)</small>')
COUNT = re.compile(r'<p class="count">([^<]*)</p>')


def shown_list(html: str) -> tuple[list[str], str]:
    section = LISTINGS.search(html)
    assert section, html[:2000]
    return NUMBER.findall(section.group(0)), COUNT.search(section.group(0)).group(1)


def check(client, round_id: int, facts: list[dict], query: dict[str, str]) -> None:
    path = f"/rounds/{round_id}?{urlencode(query)}"
    page = client.get(path)
    partial = client.get(path, headers={"HX-Request": "true"})
    assert page.status_code == partial.status_code == 200, path
    page_numbers, page_count = shown_list(page.get_data(as_text=True))
    partial_numbers, partial_count = shown_list(partial.get_data(as_text=True))
    assert page_numbers == partial_numbers and page_count == partial_count, path
    want, sort = expected(facts, query)
    assert sorted(page_numbers) == sorted(want), (path, page_numbers, want)
    assert in_order({fact["number"]: fact for fact in facts}, page_numbers, sort), (
        path, [name for number in page_numbers for fact in facts
               if fact["number"] == number for name in [fact["name"]]])
    count = len(want)
    assert page_count == (f"{count} account" if count == 1 else f"{count} accounts"), path


def query_of(draw_search, industry, ownership, branch, low, high, sort) -> dict[str, str]:
    query = {"q": draw_search, "industry": industry, "ownership": ownership, "branch": branch,
             "min_value": low, "max_value": high, "sort": sort}
    # The form sends every field, a link may carry only some.
    return {name: value for name, value in query.items() if value is not None}


queries = st.builds(
    query_of,
    st.sampled_from(SEARCHES),
    st.sampled_from([None, "", "互联网", "制造业", "Internet", "零售", "航天"]),
    st.sampled_from([None, "", "private", "state_owned", "listed", "government", "co-op"]),
    st.sampled_from([None, "", "0", "1", "2", "x"]),  # branch indexes, made ids below
    st.sampled_from([None, *AMOUNTS]),
    st.sampled_from([None, *AMOUNTS]),
    st.sampled_from([None, *SORTS]))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(query=queries)
def test_page_and_partial_show_exactly_what_the_filters_select(world, query):
    client, round_id, facts, branch_ids = world
    if query.get("branch", "").isdigit():
        query["branch"] = str(branch_ids[int(query["branch"])])
    check(client, round_id, facts, query)


@pytest.mark.parametrize("search", SEARCHES)
def test_each_search_alone_finds_what_it_names(world, search):
    client, round_id, facts, _ = world
    check(client, round_id, facts, {"q": search})


@pytest.mark.parametrize("sort", SORTS)
def test_each_sort_orders_the_whole_list(world, sort):
    client, round_id, facts, _ = world
    check(client, round_id, facts, {"sort": sort})


SELECTED = re.compile(r'<select name="(\w+)">(.*?)</select>', re.S)


def chosen(html: str) -> dict[str, str]:
    """Each menu's chosen option's text ("" when none is chosen)."""
    found = {}
    for name, options in SELECTED.findall(html):
        match = re.search(r"<option [^>]*selected>([^<]*)</option>", options)
        found[name] = match.group(1) if match else ""
    return found


@pytest.mark.parametrize("query", [
    {"industry": "航天"}, {"ownership": "cooperative"}, {"branch": "424242"},
    {"branch": "abc"}, {"branch": "-1"}, {"branch": "99999999999999999999"},
    {"industry": "航天", "q": "北京"}])
def test_a_menu_value_the_list_does_not_hold_is_left_out_and_said_so(world, query):
    """A link can carry a menu value the round's list does not hold (from another round, or
    typed): the form could not show it as chosen, so the list must not be narrowed by it
    unseen; it is left out, and the page and the partial say so."""
    client, round_id, facts, _ = world
    path = f"/rounds/{round_id}?{urlencode(query)}"
    for headers in ({}, {"HX-Request": "true"}):
        html = client.get(path, headers=headers).get_data(as_text=True)
        numbers, _count = shown_list(html)
        want, _sort = expected(facts, {"q": query.get("q", "")})
        assert sorted(numbers) == sorted(want), (path, headers)
        assert 'class="flash flash-error" role="alert"' in html, (path, headers)
        assert "is left out" in html, (path, headers)
    page = client.get(path).get_data(as_text=True)
    assert chosen(page)["industry"] == chosen(page)["ownership"] == chosen(page)["branch"] == ""


def test_a_menu_value_left_out_is_said_so_in_chinese(world):
    client, round_id, _facts, _ = world
    html = client.get(f"/rounds/{round_id}?industry=航天&ownership=cooperative&branch=x",
                      headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    for message in ("本名单中没有行业为“航天”的客户；已忽略该筛选。",
                    "本名单中没有所有制类型为“cooperative”的客户；已忽略该筛选。",
                    "所选分公司在本名单中没有客户；已忽略分公司筛选。"):
        assert message in html


def test_a_lowest_value_above_the_highest_is_said_so(world):
    """30万 to 10万 can match nothing: the rep is told why the list is empty."""
    client, round_id, facts, _ = world
    path = f"/rounds/{round_id}?{urlencode({'min_value': '30万', 'max_value': '10万'})}"
    for headers in ({}, {"HX-Request": "true"}):
        html = client.get(path, headers=headers).get_data(as_text=True)
        assert shown_list(html) == ([], "0 accounts")
        assert "is above" in html, headers
    html = client.get(path, headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "年度金额下限（30万）高于上限（10万），没有客户能符合；请交换两者。" in html
