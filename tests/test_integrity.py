"""The rules hold where an account changes hands: capacity across rounds, one award per listing,
all-or-nothing publishing, append-only filings, and transfers that respect the market."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

from bidhub.db import engine_of
from bidhub.domain.errors import CapacityExceeded, TransferRefused
from bidhub.models import (
    Account,
    BidScore,
    Decision,
    DecisionKind,
    Filing,
    FilingKind,
    Listing,
    ListingStatus,
    Round,
    RoundStatus,
)
from bidhub.services import adjudication, ownership
from bidhub.services.filings import transfer_account
from bidhub.services.ledger import verify_ledger
from tests.conftest import login, reload, run_together
from tests.test_appeals import results_in_force


def held_by(session, rep) -> int:
    return session.scalar(select(func.count()).select_from(Account)
                          .where(Account.owner_id == rep.id))


@pytest.fixture
def scored_round(session, clock, make_rep, make_account, make_round, make_bid):
    """A scored round whose listings were bid for by `bidders`; the clock is past its deadline."""

    def make(bidders, *, listings: int = 1, owner=None):
        owner = owner or make_rep()
        accounts = [make_account(owner=owner) for _ in range(listings)]
        round_ = make_round(accounts=accounts, closes_at=clock() + timedelta(hours=1))
        for listing in round_.listings:
            for rep in bidders:
                make_bid(rep, listing)
        at = clock()
        clock.advance(hours=1)
        assert adjudication.score_closed_round(session, round_.id, clock())
        clock.set(at)
        return session.get(Round, round_.id)

    return make


def proposed_bid(session, listing_id):
    return session.scalars(select(BidScore).join(BidScore.bid)
                           .where(BidScore.is_proposed_winner)
                           .where(BidScore.bid.has(listing_id=listing_id))).first()


@pytest.fixture
def scored_listing(session, clock, make_rep, scored_round):
    return scored_round([make_rep(), make_rep(), make_rep()], listings=2)


# --- capacity across rounds -------------------------------------------------------------------

def test_capacity_counts_awards_waiting_in_every_round(session, clock, make_rep, make_manager,
                                                        give_accounts, make_account,
                                                        scored_round):
    """A rep at 39: accepted in round A; then round B's acceptance, round C's override and a
    direct transfer are each refused, because A's award already fills the last place."""
    rep, other, manager = make_rep(), make_rep(), make_manager()
    give_accounts(rep, 39)
    round_a, round_b = scored_round([rep]), scored_round([rep])
    round_c = scored_round([rep, other])
    clock.advance(hours=2)
    [listing_a], [listing_b], [listing_c] = (r.listings for r in (round_a, round_b, round_c))
    adjudication.decide_listing(session, manager, listing_a.id, kind="accepted", bid_id=None,
                                reason="", now=clock())
    with pytest.raises(CapacityExceeded, match=r"holds 39 accounts and 1 award.*maximum of 40"):
        adjudication.decide_listing(session, manager, listing_b.id, kind="accepted",
                                    bid_id=None, reason="", now=clock())
    reload(session)
    rep_bid_c = next(bid for bid in adjudication.ranked_bids(session, listing_c.id)
                     if bid.rep_id == rep.id)
    with pytest.raises(CapacityExceeded, match="maximum of 40"):
        adjudication.decide_listing(session, manager, listing_c.id, kind="overridden",
                                    bid_id=rep_bid_c.id, reason="Knows the group's buyers well.",
                                    now=clock())
    reload(session)
    with pytest.raises(CapacityExceeded, match="maximum of 40"):
        transfer_account(session, manager, account_id=make_account(owner=other).id,
                         to_rep_id=rep.id, reason="Owner moves to another region.",
                         review_text="Handover planned with the client.", now=clock())
    reload(session)
    for round_ in (round_a,):
        round_ = session.get(Round, round_.id)
        adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                     now=clock())
        results_in_force(session, round_.id)
    assert held_by(session, rep) == 40
    assert verify_ledger(session).is_intact


def test_publishing_rechecks_capacity_and_refuses_the_whole_round(session, clock, make_rep,
                                                                   make_manager, give_accounts,
                                                                   scored_round):
    """Awards that slipped past the decision check (written before it existed, say) are caught
    at publishing: nothing is published, and the refusal names the listings to decide again."""
    rep, manager = make_rep(), make_manager()
    give_accounts(rep, 39)
    round_ = scored_round([rep], listings=2)
    clock.advance(hours=2)
    for listing in round_.listings:
        bid = adjudication.ranked_bids(session, listing.id)[0]
        session.add(Decision(listing_id=listing.id, kind=DecisionKind.ACCEPTED, bid_id=bid.id,
                             reason="", decided_by_id=manager.id, decided_at=clock()))
        session.get(Listing, listing.id).status = ListingStatus.DECIDED
    session.commit()
    filings_before = session.scalar(select(func.count()).select_from(Filing))
    round_ = session.get(Round, round_.id)
    with pytest.raises(CapacityExceeded) as refusal:
        adjudication.publish_results(session, manager, round_.id,
                                     expected_version=round_.version, now=clock())
    for listing in round_.listings:
        assert f"listing {listing.id}" in str(refusal.value)
    reload(session)
    assert held_by(session, rep) == 39
    assert session.scalar(select(func.count()).select_from(Filing)) == filings_before
    assert session.get(Round, round_.id).status == RoundStatus.SCORED


def test_publishing_is_all_or_nothing(app, session, scored_listing, make_manager, clock,
                                      monkeypatch):
    manager = make_manager()
    clock.advance(hours=2)
    for listing in scored_listing.listings:
        adjudication.decide_listing(session, manager, listing.id, kind="accepted", bid_id=None,
                                    reason="", now=clock())
    owners_before = {a.id: a.owner_id for a in session.scalars(select(Account))}
    filings_before = session.scalar(select(func.count()).select_from(Filing))
    calls = []

    def failing_after_writing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # both awards' filings are written, then the second one fails
            raise RuntimeError("disk full")
        return real_note(*args, **kwargs)

    real_note = ownership.note_new_filing
    monkeypatch.setattr(ownership, "note_new_filing", failing_after_writing)
    round_ = session.get(Round, scored_listing.id)
    # The default rules announce first; the transfers are written when the window ends.
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    with pytest.raises(RuntimeError):
        results_in_force(session, round_.id)
    reload(session)
    assert {a.id: a.owner_id for a in session.scalars(select(Account))} == owners_before
    assert session.scalar(select(func.count()).select_from(Filing)) == filings_before
    assert session.get(Round, round_.id).status == RoundStatus.STANDSTILL
    assert {listing.status for listing in session.get(Round, round_.id).listings} == {
        ListingStatus.DECIDED}
    assert verify_ledger(session).is_intact


# --- direct transfers respect the market ------------------------------------------------------

def test_a_listed_account_cannot_be_transferred_directly(session, clock, make_rep, make_manager,
                                                         make_account, make_round, make_bid):
    owner, bidder, receiver, manager = make_rep(), make_rep(), make_rep(), make_manager()
    account = make_account(owner=owner)
    round_ = make_round(accounts=[account])
    make_bid(bidder, round_.listings[0])
    with pytest.raises(TransferRefused, match=rf"listed in round “{round_.title}”; decide it "
                                              "there or withdraw the listing first"):
        transfer_account(session, manager, account_id=account.id, to_rep_id=receiver.id,
                         reason="Owner moves to another region.",
                         review_text="Handover planned with the client.", now=clock())
    reload(session)
    assert session.get(Account, account.id).owner_id == owner.id


def test_a_sponsored_account_needs_an_admins_confirmation_to_move(session, clock, make_rep,
                                                                   make_manager, make_admin,
                                                                   make_account):
    owner, receiver = make_rep(), make_rep()
    account = make_account(owner=owner, executive_sponsor="president")
    with pytest.raises(TransferRefused, match="executive sponsor"):
        transfer_account(session, make_manager(), account_id=account.id,
                         to_rep_id=receiver.id, reason="Owner moves to another region.",
                         review_text="Handover planned with the client.", now=clock())
    reload(session)
    filing = transfer_account(session, make_admin(), account_id=account.id,
                              to_rep_id=receiver.id, reason="Owner moves to another region.",
                              review_text="Handover planned with the client.", now=clock())
    assert filing.to_rep_id == receiver.id


def test_a_sponsored_listing_awaiting_confirmation_cannot_be_transferred(
        session, clock, make_rep, make_manager, make_account, make_round):
    owner, receiver, manager = make_rep(), make_rep(), make_manager()
    account = make_account(owner=owner, executive_sponsor="president")
    round_ = make_round(accounts=[account], status=RoundStatus.DRAFT)
    session.get(Listing, round_.listings[0].id).status = ListingStatus.AWAITING_CONFIRMATION
    session.commit()
    with pytest.raises(TransferRefused, match="listed in round"):
        transfer_account(session, manager, account_id=account.id, to_rep_id=receiver.id,
                         reason="Owner moves to another region.",
                         review_text="Handover planned with the client.", now=clock())


# --- races, with real threads and separate connections ----------------------------------------

def signed_in_client(app, user):
    client = app.test_client()
    login(client, user)
    return client


def test_twenty_concurrent_decisions_give_one_success_and_conflicts(app, session, scored_listing,
                                                                   make_manager, clock):
    clock.advance(hours=2)
    listing_id = scored_listing.listings[0].id
    clients = [signed_in_client(app, make_manager()) for _ in range(20)]
    responses = run_together([
        lambda client=client: client.post(f"/manage/listings/{listing_id}/decide",
                                          data={"kind": "accepted", "reason": ""})
        for client in clients])
    assert sorted(response.status_code for response in responses) == [303] + [409] * 19
    assert session.scalar(select(func.count()).select_from(Decision)) == 1


def test_decisions_and_transfers_racing_never_pass_capacity(app, session, clock, make_rep,
                                                            make_manager, give_accounts,
                                                            make_account, scored_round):
    """20 requests at once (10 decisions, 10 direct transfers) aimed at reps one below the
    maximum: nobody passes it, nothing answers 500, and the register verifies afterwards."""
    targets = [make_rep() for _ in range(3)]
    for rep in targets:
        give_accounts(rep, 39)
    round_ = scored_round(targets, listings=10)
    clock.advance(hours=2)
    donor = make_rep()
    spare = [make_account(owner=donor) for _ in range(10)]
    managers = [make_manager() for _ in range(20)]
    clients = [signed_in_client(app, manager) for manager in managers]
    calls = []
    for index, listing in enumerate(round_.listings):
        ranking = adjudication.ranked_bids(session, listing.id)
        chosen = ranking[index % len(ranking)]
        calls.append(lambda client=clients[index], listing=listing, chosen=chosen: client.post(
            f"/manage/listings/{listing.id}/decide",
            data={"kind": "overridden", "bid_id": str(chosen.id),
                  "reason": "Chosen for the branch's coverage plan."}))
    for index, account in enumerate(spare):
        calls.append(lambda client=clients[10 + index], account=account,
                     rep=targets[index % len(targets)]: client.post("/manage/transfer", data={
                         "account": str(account.id), "owner": str(donor.id), "to_rep": str(rep.id),
                         "reason": "Donor rep moves to another region.",
                         "review_text": "Handover planned with the client."}))
    responses = run_together(calls)
    statuses = [getattr(response, "status_code", response) for response in responses]
    assert all(status in (303, 409, 422) for status in statuses), statuses
    reload(session)
    for rep in targets:
        commitments = ownership.commitments_of(session, [rep.id])[rep.id]
        assert commitments.total <= 40, (rep.id, commitments)
    assert 303 in statuses
    report = verify_ledger(session)
    assert report.is_intact, report.problems


def test_two_decisions_for_one_rep_at_39_at_once_give_one_award(app, session, clock, make_rep,
                                                                make_manager, give_accounts,
                                                                scored_round):
    rep = make_rep()
    give_accounts(rep, 39)
    round_ = scored_round([rep], listings=2)
    clock.advance(hours=2)
    clients = [signed_in_client(app, make_manager()) for _ in range(2)]
    responses = run_together([
        lambda client=client, listing=listing: client.post(
            f"/manage/listings/{listing.id}/decide", data={"kind": "accepted", "reason": ""})
        for client, listing in zip(clients, round_.listings, strict=True)])
    assert sorted(response.status_code for response in responses) == [303, 422]
    reload(session)
    assert ownership.commitments_of(session, [rep.id])[rep.id].total == 40


# What a manager is told when a decision is sent for a round not in adjudication: a page opened
# before the round was cancelled, or a decision sent by hand for a round still open.
NOT_IN_ADJUDICATION = "Decisions are taken after scoring and before results are published."


@pytest.mark.parametrize("inline", [True, False])
def test_a_decision_in_a_round_cancelled_meanwhile_is_refused_saying_why(
        session, clock, make_rep, make_manager, scored_round, login_as, inline):
    from bidhub.services.appeals import cancel_round

    manager, other_manager = make_manager(), make_manager()
    round_ = scored_round([make_rep(), make_rep()])
    client = login_as(manager)
    assert client.get(f"/manage/rounds/{round_.id}").status_code == 200  # the page is open
    cancel_round(session, other_manager, round_.id, reason="The account list was wrong.",
                 expected_version=round_.version, now=clock())
    response = client.post(f"/manage/listings/{round_.listings[0].id}/decide",
                           data={"kind": DecisionKind.ACCEPTED.value},
                           headers={"HX-Request": "true"} if inline else {})
    # Inline, an error htmx shows above the table instead of swapping it in for the row.
    assert response.status_code == (409 if inline else 422)
    page = response.get_data(as_text=True)
    assert NOT_IN_ADJUDICATION in page and "A conflict happened" not in page
    assert ("<html" not in page) is inline
    reload(session)
    assert session.scalars(select(Decision)).all() == []


@pytest.mark.parametrize("inline", [True, False])
def test_a_decision_for_a_listing_of_an_open_round_is_refused_saying_why(
        session, make_rep, make_account, make_round, make_bid, make_manager, login_as, inline):
    """Its bids are sealed: the listing's page has no ranking and no form to show the refusal
    in, so the answer is the refusal itself, never the sealed page with a 200."""
    round_ = make_round(accounts=[make_account(owner=make_rep())])
    bid = make_bid(make_rep(), round_.listings[0])
    client = login_as(make_manager())
    response = client.post(f"/manage/listings/{round_.listings[0].id}/decide",
                           data={"kind": DecisionKind.OVERRIDDEN.value, "bid_id": str(bid.id),
                                 "reason": "A written reason long enough to be accepted."},
                           headers={"HX-Request": "true"} if inline else {})
    assert response.status_code == (409 if inline else 422)
    assert NOT_IN_ADJUDICATION in response.get_data(as_text=True)
    reload(session)
    assert session.scalars(select(Decision)).all() == []


def test_two_transfers_to_a_rep_at_39_at_once_give_one_transfer(app, session, make_rep,
                                                                make_manager, give_accounts,
                                                                make_account):
    rep, donor = make_rep(), make_rep()
    give_accounts(rep, 39)
    accounts = [make_account(owner=donor) for _ in range(2)]
    clients = [signed_in_client(app, make_manager()) for _ in range(2)]
    responses = run_together([
        lambda client=client, account=account: client.post("/manage/transfer", data={
            "account": str(account.id), "owner": str(donor.id), "to_rep": str(rep.id),
            "reason": "Donor rep moves to another region.",
            "review_text": "Handover planned with the client."})
        for client, account in zip(clients, accounts, strict=True)])
    assert sorted(response.status_code for response in responses) == [303, 422]
    reload(session)
    assert held_by(session, rep) == 40
    assert verify_ledger(session).is_intact


def test_two_managers_publishing_one_round_at_once(app, session, clock, scored_listing,
                                                   make_manager, make_rep, make_account):
    manager = make_manager()
    clock.advance(hours=2)
    for listing in scored_listing.listings:
        adjudication.decide_listing(session, manager, listing.id, kind="accepted", bid_id=None,
                                    reason="", now=clock())
    version = session.get(Round, scored_listing.id).version
    clients = [signed_in_client(app, make_manager()) for _ in range(2)]
    donor, receiver = make_rep(), make_rep()
    spare = [make_account(owner=donor) for _ in range(4)]
    transfer_clients = [signed_in_client(app, make_manager()) for _ in spare]
    calls = [lambda client=client: client.post(
        f"/manage/rounds/{scored_listing.id}/publish-results", data={"version": str(version)})
        for client in clients]
    calls += [lambda client=client, account=account: client.post("/manage/transfer", data={
        "account": str(account.id), "owner": str(donor.id), "to_rep": str(receiver.id),
        "reason": "Donor rep moves to another region.",
        "review_text": "Handover planned with the client."})
        for client, account in zip(transfer_clients, spare, strict=True)]
    responses = run_together(calls)
    assert sorted(response.status_code for response in responses[:2]) == [303, 409]
    assert all(response.status_code == 303 for response in responses[2:])
    results_in_force(session, scored_listing.id)
    awards = session.scalar(select(func.count()).select_from(Filing)
                            .where(Filing.kind == FilingKind.ROUND_AWARD))
    assert awards == len(scored_listing.listings)
    assert verify_ledger(session).is_intact


# --- the register itself ----------------------------------------------------------------------

def test_filings_refuse_update_delete_and_truncate_in_the_database(app, session, backend,
                                                                   make_rep, make_manager,
                                                                   make_account, clock):
    account = make_account(owner=make_rep())
    transfer_account(session, make_manager(), account_id=account.id, to_rep_id=make_rep().id,
                     reason="Owner left the company.", review_text="Left; handover done.",
                     now=clock())
    statements = ["UPDATE filings SET reason = 'changed'", "DELETE FROM filings"]
    if backend == "postgresql":
        statements.append("TRUNCATE filings CASCADE")
    with engine_of(app).connect() as connection:
        for statement in statements:
            with pytest.raises(DatabaseError, match="append-only"):
                connection.execute(text(statement))
            connection.rollback()
    assert verify_ledger(session).is_intact


def test_a_lost_race_in_the_database_answers_409_not_500(app, session, monkeypatch, make_rep,
                                                         make_manager, make_account, login_as,
                                                         caplog):
    from sqlalchemy.exc import IntegrityError, OperationalError

    from bidhub.web import manage

    owner, receiver = make_rep(), make_rep()
    account = make_account(owner=owner)
    client = login_as(make_manager())
    data = {"account": str(account.id), "owner": str(owner.id), "to_rep": str(receiver.id),
            "reason": "Owner moves to another region.",
            "review_text": "Handover planned with the client."}

    class Deadlock(Exception):
        sqlstate = "40P01"

    for error in (IntegrityError("INSERT", {}, Exception("duplicate key")),
                  OperationalError("UPDATE", {}, Deadlock("deadlock detected"))):
        def racing(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(manage, "confirm_transfer", racing)
        caplog.clear()
        response = client.post("/manage/transfer", data=data)
        assert response.status_code == 409
        assert "at the same moment" in response.get_data(as_text=True)
        # and the log says which request lost which race
        assert [record.getMessage() for record in caplog.records
                if record.name == "bidhub.web.errors"] == [
            f"POST /manage/transfer lost a race with another transaction: {error.orig}"]
