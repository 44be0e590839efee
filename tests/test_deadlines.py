"""The deadline is the server's: one second before it a bid is taken, at it no row is written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bidhub.domain.errors import BidRejected, InvalidRequest
from bidhub.models import Bid
from bidhub.services.bidding import submit_bid, update_bid, withdraw_bid
from tests.conftest import reload


@pytest.fixture
def listing(make_account, make_round, clock):
    round_ = make_round(accounts=[make_account()], closes_at=clock() + timedelta(hours=2))
    return round_.listings[0]


def bid_now(session, rep, listing, clock):
    return submit_bid(session, rep, listing.id, account_plan="A plan long enough to count.",
                      committed_revenue_yuan=100_000, visit_plan="Weekly visits in month one.",
                      submission_key=None, now=clock())


def test_a_bid_one_second_before_the_deadline_is_accepted(session, make_rep, listing, clock):
    clock.set(listing.round.closes_at - timedelta(seconds=1))
    assert bid_now(session, make_rep(), listing, clock).id


def test_a_bid_at_the_deadline_is_refused_and_nothing_is_written(session, make_rep, listing, clock):
    clock.set(listing.round.closes_at)
    with pytest.raises(BidRejected, match="closed"):
        bid_now(session, make_rep(), listing, clock)
    assert session.scalar(select(func.count()).select_from(Bid)) == 0


def test_a_bid_before_the_round_opens_is_refused(session, make_rep, make_account, make_round,
                                                 clock):
    round_ = make_round(accounts=[make_account()], opens_at=clock() + timedelta(hours=1))
    with pytest.raises(Exception, match="No such listing"):
        bid_now(session, make_rep(), round_.listings[0], clock)


def test_edits_and_withdrawals_stop_at_the_deadline(session, make_rep, listing, clock):
    rep = make_rep()
    bid = bid_now(session, rep, listing, clock)
    clock.set(listing.round.closes_at - timedelta(seconds=1))
    update_bid(session, rep, bid.id, account_plan="Updated plan, still long enough.",
               committed_revenue_yuan=1, visit_plan="Visits again, long enough.",
               expected_version=1, now=clock())
    clock.set(listing.round.closes_at)
    with pytest.raises(BidRejected):
        update_bid(session, rep, bid.id, account_plan="Too late to change this plan.",
                   committed_revenue_yuan=2, visit_plan="Too late for visits too.",
                   expected_version=2, now=clock())
    with pytest.raises(BidRejected):
        withdraw_bid(session, rep, bid.id, clock())
    reload(session)
    stored = session.get(Bid, bid.id)
    assert stored.committed_revenue_yuan == 1 and stored.status == "active"


def test_a_form_loaded_before_the_deadline_is_refused_after_it(app, make_rep, listing, clock,
                                                               login_as):
    rep = make_rep()
    client = login_as(rep)
    form = client.get(f"/listings/{listing.id}/bid")
    assert "Submit bid" in form.get_data(as_text=True)
    clock.set(listing.round.closes_at)
    response = client.post(f"/listings/{listing.id}/bid", data={
        "account_plan": "A plan written before the deadline.", "committed_revenue_yuan": "5",
        "visit_plan": "Visits planned before the deadline.", "submission_key": "k1"})
    assert response.status_code == 422
    assert "closed at its deadline" in response.get_data(as_text=True)


# --- the pages offer a change of a bid exactly when the service takes it ------------------


MOMENTS = {"open": timedelta(seconds=-1), "at the deadline": timedelta(0),
           "after the deadline": timedelta(days=3)}


@pytest.mark.parametrize("moment", list(MOMENTS))
@pytest.mark.parametrize("standing", ["active", "on leave", "left"])
def test_the_bid_pages_offer_an_edit_or_a_withdrawal_exactly_when_it_would_be_taken(
        session, client, login_as, make_admin, make_rep, listing, clock, moment, standing):
    from bidhub.models import RepStatus
    from tests.test_departed_winners import leave

    rep = make_rep()
    bid = bid_now(session, rep, listing, clock)
    if standing != "active":
        leave(session, make_admin(), rep, clock,
              status=RepStatus.ON_LEAVE if standing == "on leave" else RepStatus.LEFT)
    login_as(session.get(type(rep), rep.id))
    clock.set(listing.round.closes_at + MOMENTS[moment])
    pages = [client.get(f"/listings/{listing.id}/bid"), client.get(f"/bids/{bid.id}")]
    assert [page.status_code for page in pages] == [200, 200]
    texts = [page.get_data(as_text=True) for page in pages]
    offers_edit = [f"/bids/{bid.id}/edit" in text for text in texts]
    offers_withdrawal = [f"/bids/{bid.id}/withdraw" in text for text in texts]

    def taken(change) -> bool:
        try:
            change(session.get(type(rep), rep.id))
        except (BidRejected, InvalidRequest):
            return False
        finally:
            reload(session)
        return True

    edit_taken = taken(lambda user: update_bid(
        session, user, bid.id, account_plan="A changed plan, long enough to count.",
        committed_revenue_yuan=7, visit_plan="Changed visits, long enough.",
        expected_version=bid.version, now=clock()))
    withdrawal_taken = taken(lambda user: withdraw_bid(session, user, bid.id, clock()))
    assert edit_taken == (moment == "open" and standing != "left")
    assert withdrawal_taken == (moment == "open")
    # The bid's page offers both; the place-bid page links to the edit only.
    assert offers_edit == [edit_taken, edit_taken]
    assert offers_withdrawal == [False, withdrawal_taken]
    if moment != "open":
        assert "Bidding for this round is closed." in texts[0]


# --- and a listing management cancelled takes no change, whatever the clock says ----------


@pytest.mark.parametrize("listing_state", ["listed", "cancelled"])
@pytest.mark.parametrize("bid_state", ["active", "withdrawn"])
@pytest.mark.parametrize("standing", ["active", "on leave", "left"])
def test_the_bid_pages_of_an_open_round_offer_what_the_service_takes(
        session, client, login_as, make_admin, make_manager, make_rep, listing, clock,
        listing_state, bid_state, standing):
    """Before the deadline the round is open, but management may have cancelled the listing
    (submit, edit and withdrawal then refuse: "not open for bids"), the bid may have been
    withdrawn (only a new bid is taken) and the rep may have left (no edit, no new bid) or be
    on leave (an edit, but no new bid under rules that exclude reps on leave): each
    page offers an edit, a withdrawal, a new bid exactly when the service takes it."""
    from bidhub.domain.errors import BidhubError
    from bidhub.models import RepStatus
    from bidhub.services.appeals import cancel_listing
    from tests.test_departed_winners import leave

    rep = make_rep()
    bid = bid_now(session, rep, listing, clock)
    if bid_state == "withdrawn":
        withdraw_bid(session, rep, bid.id, clock())
    if listing_state == "cancelled":
        cancel_listing(session, make_manager(), listing.id,
                       reason="The customer asked to stay with the team for now.", now=clock())
    if standing != "active":
        leave(session, make_admin(), rep, clock,
              status=RepStatus.ON_LEAVE if standing == "on leave" else RepStatus.LEFT)
    reload(session)
    login_as(session.get(type(rep), rep.id))
    pages = [client.get(f"/listings/{listing.id}/bid"), client.get(f"/bids/{bid.id}")]
    assert [page.status_code for page in pages] == [200, 200]
    texts = [page.get_data(as_text=True) for page in pages]

    def taken(change) -> bool:
        try:
            change(session.get(type(rep), rep.id))
        except BidhubError:
            return False
        finally:
            reload(session)
        return True

    edit_taken = bid_state == "active" and taken(lambda user: update_bid(
        session, user, bid.id, account_plan="A changed plan, long enough to count.",
        committed_revenue_yuan=7, visit_plan="Changed visits, long enough.",
        expected_version=bid.version, now=clock()))
    withdrawal_taken = bid_state == "active" and taken(
        lambda user: withdraw_bid(session, user, bid.id, clock()))
    # A new bid, where the bid was withdrawn (an active bid refuses a second one).
    new_bid_taken = bid_state == "withdrawn" and taken(lambda user: bid_now(
        session, user, session.get(type(listing), listing.id), clock))
    assert edit_taken == (listing_state == "listed" and bid_state == "active"
                          and standing != "left")
    assert withdrawal_taken == (listing_state == "listed" and bid_state == "active")
    # The rules this round runs on keep reps on leave out of new bids (exclude_on_leave).
    assert new_bid_taken == (listing_state == "listed" and bid_state == "withdrawn"
                             and standing == "active")
    assert [f"/bids/{bid.id}/edit" in text for text in texts] == [edit_taken, edit_taken]
    assert [f"/bids/{bid.id}/withdraw" in text for text in texts] == [False, withdrawal_taken]
    # The place-bid page offers the form, the bid's page a link to it ("Bid again").
    assert ["Submit bid" in texts[0], f"/listings/{listing.id}/bid" in texts[1]] == [
        new_bid_taken, new_bid_taken]
    if listing_state == "cancelled":
        assert "This account is not open for bids." in texts[0]
