"""Sealed bids: while a round is open, only the bidder ever sees a bid's content."""

from __future__ import annotations

import pytest

from tests.conftest import login

MARKER = "SEALED-MARKER-7f3a"


@pytest.fixture
def open_round_with_a_bid(session, make_rep, make_manager, make_admin, make_account, make_round,
                          make_bid):
    bidder, other_rep = make_rep(), make_rep()
    account = make_account(owner=None)
    round_ = make_round(accounts=[account])
    listing = round_.listings[0]
    bid = make_bid(bidder, listing, plan=f"My plan {MARKER} for the account.", revenue=987_654)
    return {"bidder": bidder, "other_rep": other_rep, "manager": make_manager(),
            "admin": make_admin(),
            "ids": {"round_id": round_.id, "listing_id": listing.id, "bid_id": bid.id,
                    "account_id": account.id, "user_id": bidder.id,
                    "version_id": 1, "rep_id": bidder.id, "incident_id": 1,
                    "run_id": 1, "branch_id": bidder.branch_id, "token": "none",
                    "appeal_id": 1, "request_id": 1, "review_id": 1, "code": "NOCODE"}}


@pytest.mark.parametrize("who", ["other_rep", "manager", "admin"])
@pytest.mark.parametrize("htmx", [False, True])
def test_no_page_or_fragment_shows_a_bid_to_anyone_but_its_bidder(app, open_round_with_a_bid,
                                                                    who, htmx):
    world = open_round_with_a_bid
    client = app.test_client()
    login(client, world[who])
    headers = {"HX-Request": "true"} if htmx else {}
    seen = 0
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        url = rule.rule
        for name in rule.arguments:
            url = url.replace(f"<int:{name}>", str(world["ids"][name])).replace(
                f"<code:{name}>", str(world["ids"][name]))
        response = client.get(url, headers=headers)
        body = response.get_data(as_text=True)
        assert MARKER not in body, (who, url)
        assert "987,654" not in body, (who, url)
        seen += 1
    assert seen > 10


def test_management_cannot_tell_who_bid_for_what_while_the_round_is_open(
        app, session, open_round_with_a_bid):
    from bidhub.models import Account

    world = open_round_with_a_bid
    account_name = session.get(Account, world["ids"]["account_id"]).name
    for who in ("manager", "admin"):
        client = app.test_client()
        login(client, world[who])
        profile = client.get(f"/reps/{world['bidder'].id}").get_data(as_text=True)
        assert account_name not in profile, who


def test_the_bidder_sees_their_own_bid(app, open_round_with_a_bid):
    world = open_round_with_a_bid
    client = app.test_client()
    login(client, world["bidder"])
    assert MARKER in client.get(f"/bids/{world['ids']['bid_id']}").get_data(as_text=True)


def test_managers_see_only_the_count_while_the_round_is_open(app, open_round_with_a_bid):
    world = open_round_with_a_bid
    client = app.test_client()
    login(client, world["manager"])
    page = client.get(f"/manage/listings/{world['ids']['listing_id']}").get_data(as_text=True)
    assert "1 sealed bid" in page
