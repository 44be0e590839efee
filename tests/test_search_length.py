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
@pytest.fixture
def manager(app, make_manager):
    return client_of(app, make_manager())


def test_the_pickers_draw_no_maxlength(manager):
    page = manager.get("/manage/transfer").get_data(as_text=True)
    boxes = re.findall(r'<input type="search"[^>]*>', page)
    assert len(boxes) == 2
    assert not any("maxlength" in box for box in boxes)


@pytest.mark.parametrize("path, box", [("/manage/transfer/accounts", "account_q"),
                                       ("/manage/transfer/reps", "rep_q")])
def test_an_over_long_picker_search_is_refused_with_both_lengths(manager, make_account,
                                                                 make_rep, path, box):
    make_account(name="北京星辰科技", owner=make_rep(name="王芳"))
    response = manager.get(path, query_string={box: "北" * 101}, headers={"HX-Request": "true"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "At most 100 characters fit here; the text sent has 101." in html
    assert "北京星辰科技" not in html
    response = manager.get(path, query_string={box: "北" * 101},
                           headers={"HX-Request": "true", "Accept-Language": "zh-CN"})
    assert "此处最多 100 个字符，提交的文本有 101 个字符。" in response.get_data(as_text=True)
    assert manager.get(path, query_string={box: "北" * 100}).status_code == 200
