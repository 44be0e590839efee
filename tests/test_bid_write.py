"""The bid POST writes its row directly: the same row, the same answers, on every path."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bidhub import create_app
from bidhub.db import engine_of
from bidhub.models import Bid, BidStatus
from bidhub.services.bidding import withdraw_bid
from bidhub.services.track_records import fresh_track_record
from tests.conftest import PASSWORD, csrf_token_from, login, reload, run_together

FORM = {"account_plan": "  A careful plan for this account.  ",
        "committed_revenue_yuan": "300000", "visit_plan": "Visits in the first 90 days.  "}


def bids_in(session) -> int:
    return session.scalar(select(func.count()).select_from(Bid))


def test_a_posted_bid_is_the_row_the_use_case_always_wrote(app, session, clock, make_rep,
                                                           make_account, make_round,
                                                           make_opportunities, login_as):
    rep = make_rep()
    make_opportunities(rep, make_account(), won=3, lost=1)
    listing = make_round(accounts=[make_account()]).listings[0]
    client = login_as(rep)
    response = client.post(f"/listings/{listing.id}/bid",
                           data={**FORM, "submission_key": "the-key"})
    assert response.status_code == 303 and response.location.endswith("/my/bids")
    reload(session)
    bid = session.scalars(select(Bid)).one()
    assert (bid.listing_id, bid.rep_id, bid.status) == (listing.id, rep.id, BidStatus.ACTIVE)
    assert bid.account_plan == "A careful plan for this account."
    assert bid.visit_plan == "Visits in the first 90 days."
    assert bid.committed_revenue_yuan == 300_000 and bid.submission_key == "the-key"
    assert bid.submitted_at == bid.updated_at == clock() and bid.withdrawn_at is None
    assert bid.review_code is None and bid.preference_rank is None
    assert bid.track_record == fresh_track_record(session, rep, listing.account, clock())
    assert bid.track_record["win_rate"] == 0.75
    # The acknowledgement names the account, as read by the bid itself.
    assert listing.account.name in client.get("/my/bids").get_data(as_text=True)


def test_a_form_sent_again_gives_its_bid_back_wherever_it_is_sent(app, session, clock, make_rep,
                                                                  make_account, make_round,
                                                                  login_as):
    rep = make_rep()
    first, second = make_round(accounts=[make_account(), make_account()]).listings
    client = login_as(rep)
    data = {**FORM, "submission_key": "one-form"}
    assert client.post(f"/listings/{first.id}/bid", data=data).status_code == 303
    # The same form's key with another listing, and with no listing at all: the bid it made.
    again = client.post(f"/listings/{second.id}/bid", data=data)
    missing = client.post("/listings/999999/bid", data=data)
    assert again.status_code == missing.status_code == 303
    page = client.get("/my/bids").get_data(as_text=True)
    assert first.account.name in page
    reload(session)
    assert bids_in(session) == 1
    # After the deadline the form sent again still gets its bid back; a new one is refused.
    clock.advance(days=8)
    assert client.post(f"/listings/{first.id}/bid", data=data).status_code == 303
    late = client.post(f"/listings/{second.id}/bid", data={**FORM, "submission_key": "new"})
    assert late.status_code == 422 and "closed at its deadline" in late.get_data(as_text=True)
    assert client.post("/listings/999999/bid",
                       data={**FORM, "submission_key": "other"}).status_code == 404
    reload(session)
    assert bids_in(session) == 1


def test_a_withdrawn_bid_comes_back_in_its_own_row_with_the_new_form(app, session, clock,
                                                                     make_rep, make_account,
                                                                     make_round, make_bid,
                                                                     login_as):
    rep = make_rep()
    listing = make_round(accounts=[make_account()]).listings[0]
    bid = make_bid(rep, listing, revenue=100_000)
    withdraw_bid(session, rep, bid.id, clock())
    clock.advance(minutes=5)
    client = login_as(rep)
    response = client.post(f"/listings/{listing.id}/bid",
                           data={**FORM, "submission_key": "second-try"})
    assert response.status_code == 303
    reload(session)
    again = session.scalars(select(Bid)).one()
    assert again.id == bid.id and again.status == BidStatus.ACTIVE
    assert again.withdrawn_at is None and again.submitted_at == clock()
    assert again.committed_revenue_yuan == 300_000 and again.submission_key == "second-try"
    assert client.post(f"/listings/{listing.id}/bid",
                       data={**FORM, "submission_key": "third"}).status_code == 422


def test_a_refused_bid_writes_nothing(app, session, clock, make_rep, make_account, make_round,
                                      login_as):
    on_leave = make_rep()
    on_leave.status = "on_leave"
    session.commit()
    listing = make_round(accounts=[make_account()]).listings[0]
    refused = login_as(on_leave).post(f"/listings/{listing.id}/bid",
                                      data={**FORM, "submission_key": "leave"})
    assert refused.status_code == 422
    reload(session)
    assert bids_in(session) == 0
    not_yet = make_round(accounts=[make_account()], opens_at=clock() + timedelta(hours=1))
    rep = make_rep()
    client = login_as(rep)
    assert client.post(f"/listings/{not_yet.listings[0].id}/bid",
                       data={**FORM, "submission_key": "early"}).status_code == 404
    reload(session)
    assert bids_in(session) == 0


def test_a_refused_bid_form_is_drawn_with_a_token_that_places_the_bid(app_config, session,
                                                                      make_rep, make_account,
                                                                      make_round):
    """The bid form's CSRF token is signed when the form is drawn (a refusal's 422), not when
    a bid is posted; the token drawn then is one the next POST is accepted with."""
    guarded = create_app({**app_config, "WTF_CSRF_ENABLED": True})
    client = guarded.test_client()
    try:
        rep = make_rep()
        listing = make_round(accounts=[make_account()]).listings[0]
        login_page = client.get("/login").get_data(as_text=True)
        client.post("/login", data={"username": rep.username, "password": PASSWORD,
                                    "csrf_token": csrf_token_from(login_page)})
        url = f"/listings/{listing.id}/bid"
        page_token = csrf_token_from(client.get(url).get_data(as_text=True))
        short = client.post(url, data={**FORM, "account_plan": "short",
                                       "csrf_token": page_token, "submission_key": "k1"})
        assert short.status_code == 422
        drawn = csrf_token_from(short.get_data(as_text=True))
        assert client.post(url, data={**FORM, "submission_key": "k2"}).status_code == 400
        reload(session)
        assert bids_in(session) == 0
        placed = client.post(url, data={**FORM, "csrf_token": drawn, "submission_key": "k3"})
        assert placed.status_code == 303
        reload(session)
        assert bids_in(session) == 1
    finally:
        engine_of(guarded).dispose()


def test_two_forms_reviving_one_withdrawn_bid_at_once_place_it_once(app, session, clock,
                                                                    make_rep, make_account,
                                                                    make_round, make_bid):
    """The rep sends two new forms for a listing whose bid they withdrew, from two tabs, at the
    same moment: one brings the bid back, the other is refused as a second bid."""
    rep = make_rep()
    listing = make_round(accounts=[make_account()]).listings[0]
    bid = make_bid(rep, listing, revenue=100_000)
    withdraw_bid(session, rep, bid.id, clock())
    clock.advance(minutes=5)
    tabs = [app.test_client(), app.test_client()]
    for tab in tabs:
        login(tab, rep)

    def send(tab, key, revenue):
        return lambda: tab.post(f"/listings/{listing.id}/bid", data={
            **FORM, "committed_revenue_yuan": revenue, "submission_key": key}).status_code

    statuses = run_together([send(tabs[0], "tab-one", "300000"), send(tabs[1], "tab-two", "400000")])
    assert sorted(statuses) == [303, 422], statuses
    reload(session)
    placed = session.scalars(select(Bid)).one()
    assert placed.id == bid.id and placed.status == BidStatus.ACTIVE
    winner = "tab-one" if statuses[0] == 303 else "tab-two"
    assert placed.submission_key == winner
    assert placed.committed_revenue_yuan == (300_000 if winner == "tab-one" else 400_000)


def test_a_form_sent_twice_at_once_gives_both_copies_its_one_bid(app, session, clock, make_rep,
                                                                 make_account, make_round):
    """A double click: both copies of one form (one key) may read before either writes. The
    copy that finds the bid placed by the other is answered with that bid, as a form sent
    again later is, not refused as a second bid."""
    rep = make_rep()
    listings = make_round(accounts=[make_account() for _ in range(8)]).listings
    tabs = [app.test_client(), app.test_client()]
    for tab in tabs:
        login(tab, rep)

    def send(tab, listing):
        return lambda: tab.post(f"/listings/{listing.id}/bid", data={
            **FORM, "submission_key": f"form-{listing.id}"}).status_code

    for listing in listings:
        assert run_together([send(tab, listing) for tab in tabs]) == [303, 303]
    reload(session)
    placed = session.execute(select(Bid.listing_id, Bid.submission_key)).all()
    assert sorted(placed) == [(listing.id, f"form-{listing.id}") for listing in listings]
