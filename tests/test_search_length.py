"""A search box's text past its limit: the rep's list searches for its first 100 characters
and says so; the transfer pickers draw no maxlength (a browser would cut a paste without a
word) and answer an over-long text with both lengths."""

from __future__ import annotations

import re

import pytest

from tests.conftest import client_of

LIMIT = 100
LONG = "北京星辰科技" + "有" * 150  # 156 characters; its first 100 are what is searched for


@pytest.fixture
def rep_list(app, make_account, make_round, make_rep):
    account = make_account(name="北京星辰科技" + "有" * (LIMIT - 6) + "限公司")
    other = make_account(name="上海云帆")
    round_ = make_round(accounts=[account, other])
    return client_of(app, make_rep()), f"/rounds/{round_.id}", account


@pytest.mark.parametrize("language, message", [
    ("en", "The search text is longer than 100 characters; only its first 100 are searched "
           "for."),
    ("zh-CN", "搜索内容超过 100 个字符，只按前 100 个字符搜索。")])
def test_the_rep_is_told_that_a_long_search_was_shortened(rep_list, language, message):
    client, path, account = rep_list
    for headers in ({}, {"HX-Request": "true"}):
        response = client.get(path, query_string={"q": LONG},
                              headers={**headers, "Accept-Language": language})
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert message in html, headers
        assert account.external_id in html and "上海云帆" not in html, headers
    page = client.get(path, query_string={"q": LONG}).get_data(as_text=True)
    value = re.search(r'<input type="search" name="q" value="([^"]*)"', page).group(1)
    assert value == LONG[:LIMIT]


def test_a_search_within_the_limit_says_nothing(rep_list):
    client, path, account = rep_list
    html = client.get(path, query_string={"q": LONG[:LIMIT]}).get_data(as_text=True)
    assert "searched for" not in html and account.external_id in html
