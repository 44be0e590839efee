"""The rep's list of a round under hostile query strings: a clear answer, never a 500, never
another round's or another rep's sealed content."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bidhub.models import Listing, RoundStatus
from tests.conftest import client_of

MARKER = "SEALED-PLAN-7f3a"

HOSTILE = [
    "foo=bar", "industry=Retail&industry=互联网", "industry=Nope", "ownership=nope",
    "branch=abc", "branch=-1", "branch=0", "branch=99999999999999999999", "branch=424242",
    "min_value=1e10", "min_value=99999999999999999999999", "max_value=-0", "min_value=NaN",
    "min_value=%EF%BC%8D5%E4%B8%87", "page=-1", "page=99999999999", "sort=name&sort=value_asc",
    "sort=%27%3B--", "min_value=30%E4%B8%87&max_value=10%E4%B8%87", "q=" + "北" * 10_000,
    "q=%00%01%1b%7f%C2%85", "q=%FF%FE%C3", "q=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%27",
    "q=%27%20OR%201%3D1%20--", "q=%5C", "q=%25%25", "q=+++", "q=%E3%80%80", "q&industry&sort",
    "%FF=%FF", "q[]=1", "industry=" + "x" * 5000,
    "q=PLAN-7f",  # a search finds nothing in bids: it reads accounts only
]


@pytest.fixture
def market(app, session, clock, make_account, make_round, make_rep, make_branch, make_bid):
    accounts = [make_account(name="北京星辰", industry="互联网"),
                make_account(name="Beta", industry="Retail",
                             branch=make_branch("SH", "Shanghai"))]
    open_round = make_round(accounts=accounts)
    bidder, reader = make_rep(), make_rep()
    for listing in session.query(Listing).filter_by(round_id=open_round.id):
        make_bid(bidder, listing, plan=f"{MARKER} a plan nobody else may read.")
    others = {status: make_round(accounts=[make_account(name=f"{status} 客户")], status=status,
                                 title=f"{status} round")
              for status in (RoundStatus.DRAFT, RoundStatus.SCORED, RoundStatus.CANCELLED)}
    others["future"] = make_round(accounts=[make_account(name="future 客户")],
                                  opens_at=clock() + timedelta(days=1), title="future round")
    return client_of(app, reader), open_round.id, others


@pytest.mark.parametrize("query", HOSTILE)
def test_a_hostile_query_gets_the_list_never_an_error_nor_sealed_content(market, query):
    client, round_id, _others = market
    for headers in ({}, {"HX-Request": "true"}):
        response = client.get(f"/rounds/{round_id}?{query}", headers=headers)
        html = response.get_data(as_text=True)
        assert response.status_code == 200, (query, headers, html[:500])
        assert '<section id="listings"' in html
        assert re.search(r'<p class="count">\d+ accounts?</p>', html)
        assert "<script>alert" not in html
        # Another rep's bids for every listing: no trace of them, nor of who made them.
        assert MARKER not in html, query
        if query == "q=PLAN-7f":
            assert '<p class="count">0 accounts</p>' in html
        assert 'href="/bids/' not in html, query


@pytest.mark.parametrize("which", ["draft", "future", "none", "huge"])
def test_a_round_reps_may_not_see_is_not_found(market, which):
    client, _round_id, others = market
    round_id = {"none": 999_999, "huge": 99_999_999_999}.get(
        which, others.get(which) and others[which].id)
    for headers in ({}, {"HX-Request": "true"}):
        response = client.get(f"/rounds/{round_id}?q=客户", headers=headers)
        assert response.status_code == 404, (which, headers)
        assert f"{which} 客户" not in response.get_data(as_text=True)


@pytest.mark.parametrize("which", [RoundStatus.SCORED, RoundStatus.CANCELLED])
def test_a_finished_round_lists_its_own_accounts_only(market, which):
    client, _round_id, others = market
    round_ = others[which]
    for headers in ({}, {"HX-Request": "true"}):
        response = client.get(f"/rounds/{round_.id}?q=%E5%AE%A2%E6%88%B7", headers=headers)
        html = response.get_data(as_text=True)
        assert response.status_code in (200, 404), (which, headers)
        if response.status_code == 200:
            assert f"{which} 客户" in html and "1 account" in html
            assert MARKER not in html
