"""A bid worked out before its write transaction is written only if nothing it rests on changed
in between; otherwise the write transaction decides it again, at the moment of the bid."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from bidhub.db import unit_of_work
from bidhub.models import Bid, BidStatus, Opportunity, Round
from bidhub.services import bidding
from bidhub.services.track_records import (
    forget_track_record_snapshots,
    fresh_track_record,
    refresh_track_records,
)
from tests.conftest import reload

FORM = {"account_plan": "A careful plan for this account.", "committed_revenue_yuan": "300000",
        "visit_plan": "Visits in the first 90 days.", "submission_key": "the-form"}


@pytest.fixture
def between(app, monkeypatch):
    """Runs `change` (committed by a session of its own) once, after the bid's early checks
    passed and before its write transaction begins."""
    changes = []
    checked_early = bidding._checked_before_writing

    def checked_then_changed(*args, **kwargs):
        early = checked_early(*args, **kwargs)
        if changes:
            assert early is not None  # the early checks passed: the write must catch the change
            change = changes.pop()
            other = app.extensions["bidhub_sessionmaker"]()
            try:
                change(other)
                other.commit()
            finally:
                other.close()
        return early

    monkeypatch.setattr(bidding, "_checked_before_writing", checked_then_changed)
    return changes.append


def bids_of(session, rep) -> list[Bid]:
    reload(session)
    return session.scalars(select(Bid).where(Bid.rep_id == rep.id)).all()


def test_a_deadline_moved_before_the_bid_refuses_it(app, session, clock, make_rep, make_account,
                                                     make_round, login_as, between):
    rep = make_rep()
    round_ = make_round(accounts=[make_account()])
    listing = round_.listings[0]
    refresh_track_records(session, clock())
    between(lambda other: other.execute(update(Round).where(Round.id == round_.id).values(
        closes_at=clock() - timedelta(minutes=1))))
    response = login_as(rep).post(f"/listings/{listing.id}/bid", data=FORM)
    assert response.status_code == 422
    assert "closed at its deadline" in response.get_data(as_text=True)
    assert bids_of(session, rep) == []


def test_a_bid_placed_meanwhile_from_another_tab_refuses_the_second(
        app, session, clock, make_rep, make_account, make_round, login_as, between):
    rep = make_rep()
    listing = make_round(accounts=[make_account()]).listings[0]
    refresh_track_records(session, clock())
    between(lambda other: bidding.place_bid(
        other, other.get(type(rep), rep.id), listing.id, account_plan="The other tab's plan.",
        committed_revenue_yuan=1, visit_plan="The other tab's visits.", submission_key=None,
        now=clock()))
    response = login_as(rep).post(f"/listings/{listing.id}/bid", data=FORM)
    assert response.status_code == 422
    assert "already bid" in response.get_data(as_text=True)
    [bid] = bids_of(session, rep)
    assert bid.account_plan == "The other tab's plan." and bid.status == BidStatus.ACTIVE


def test_a_snapshot_dropped_meanwhile_freezes_the_record_read_at_the_bid(
        app, session, clock, make_rep, make_account, make_round, make_opportunities, login_as,
        between):
    rep = make_rep()
    make_opportunities(rep, make_account(), won=3, lost=1)
    lost_account = make_account()
    listing = make_round(accounts=[make_account()]).listings[0]
    refresh_track_records(session, clock())  # the rep's snapshot, as the scheduler stores it
    client = login_as(rep)

    # A CRM import lands between: one more loss, and the snapshot is dropped for a rebuild.
    def import_a_loss(other):
        with unit_of_work(other):
            other.add(Opportunity(account_id=lost_account.id, rep_id=rep.id, amount_yuan=50_000,
                                  stage="lost", opened_at=clock() - timedelta(days=90),
                                  closed_at=clock() - timedelta(days=30)))
            forget_track_record_snapshots(other, [rep.id])

    between(import_a_loss)
    assert client.post(f"/listings/{listing.id}/bid", data=FORM).status_code == 303
    [bid] = bids_of(session, rep)
    assert bid.track_record == fresh_track_record(session, rep, listing.account, clock())
    assert bid.track_record["win_rate"] == 0.6
    assert session.scalar(select(func.count()).select_from(Bid)) == 1


def test_a_bid_whose_checks_held_is_written_in_one_statement_without_a_block(
        app, backend, session, clock, make_rep, make_account, make_round, login_as, monkeypatch):
    """On PostgreSQL the statement that checks again and writes is a transaction of its own:
    no BEGIN (nor COMMIT) round trip; on SQLite the write transaction queues as before."""
    from bidhub import db

    rep = make_rep()
    listing = make_round(accounts=[make_account()]).listings[0]
    refresh_track_records(session, clock())
    client = login_as(rep)
    begun = []
    send_begin = db.send_begin
    monkeypatch.setattr(db, "send_begin", lambda connection: (begun.append(1),
                                                               send_begin(connection)))
    response = client.post(f"/listings/{listing.id}/bid", data=FORM)
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    [bid] = bids_of(session, rep)
    assert bid.status == BidStatus.ACTIVE and bid.account_plan == FORM["account_plan"]
    if backend == "postgresql":
        assert begun == []
