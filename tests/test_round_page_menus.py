"""KA management's round page under a menu value its round does not hold: left out and said
so, as on the rep's list, before and after the round is scored."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest

from bidhub.services import adjudication

LISTINGS = re.compile(r'<section id="listings".*?</section>', re.S)


def listed_numbers(html: str) -> list[str]:
    section = LISTINGS.search(html)
    assert section, html[:2000]
    return re.findall(r"KA-\d{6}", section.group(0))


@pytest.fixture
def round_page(session, clock, make_branch, make_account, make_round, make_manager,
               make_rep, make_bid, login_as):
    def make(scored: bool):
        north = make_branch("N", "North")
        accounts = [make_account(industry="Retail", branch=north),
                    make_account(industry="Mining", branch=north)]
        manager = make_manager()
        round_ = make_round(manager=manager, accounts=accounts)
        if scored:
            make_bid(make_rep(), round_.listings[0])
            clock.advance(days=8)
            assert adjudication.score_closed_round(session, round_.id, clock())
            session.rollback()
        return login_as(manager), round_.id, sorted(a.external_id for a in accounts)

    return make


@pytest.mark.parametrize("scored", [False, True], ids=["open", "scored"])
@pytest.mark.parametrize("query", [
    {"industry": "航天"}, {"ownership": "cooperative"}, {"branch": "424242"},
    {"industry": "航天", "ownership": "co-op", "branch": "424242"}])
def test_a_menu_value_the_round_does_not_hold_is_left_out_and_said_so(round_page, scored,
                                                                       query):
    client, round_id, numbers = round_page(scored)
    path = f"/manage/rounds/{round_id}?{urlencode(query)}"
    for headers in ({}, {"HX-Request": "true"}):
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (path, headers)
        html = response.get_data(as_text=True)
        assert sorted(set(listed_numbers(html))) == numbers, (path, headers)
        assert "is left out" in html, (path, headers)


def test_a_value_the_round_holds_narrows_without_a_word(round_page):
    client, round_id, _numbers = round_page(False)
    html = client.get(f"/manage/rounds/{round_id}?industry=Retail").get_data(as_text=True)
    assert len(set(listed_numbers(html))) == 1
    assert "is left out" not in html


def test_the_message_is_in_chinese(round_page):
    client, round_id, _numbers = round_page(True)
    html = client.get(f"/manage/rounds/{round_id}?industry=航天",
                      headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "本名单中没有行业为“航天”的客户；已忽略该筛选。" in html
