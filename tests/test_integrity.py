"""One award per listing under concurrency, all-or-nothing publishing, append-only filings."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

from bidhub.db import engine_of
from bidhub.models import Account, Decision, Filing, Round, RoundStatus
from bidhub.services import adjudication
from bidhub.services.filings import verify_ledger
from tests.conftest import login, reload


@pytest.fixture
def scored_listing(session, clock, make_rep, make_account, make_round, make_bid):
    owner = make_rep()
    accounts = [make_account(owner=owner), make_account(owner=owner)]
    round_ = make_round(accounts=accounts, closes_at=clock() + timedelta(hours=1))
    reps = [make_rep(), make_rep(), make_rep()]
    for listing in round_.listings:
        for rep in reps:
            make_bid(rep, listing)
    clock.advance(hours=1)
    assert adjudication.score_closed_round(session, round_.id, clock())
    return round_


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_twenty_concurrent_decisions_give_one_success_and_conflicts(app, session, scored_listing,
                                                                   make_manager):
    listing_id = scored_listing.listings[0].id
    managers = [make_manager() for _ in range(20)]
    clients = []
    for manager in managers:
        client = app.test_client()
        login(client, manager)
        clients.append(client)
    statuses, barrier = [], threading.Barrier(len(clients))

    def decide(client):
        barrier.wait()
        response = client.post(f"/manage/listings/{listing_id}/decide",
                               data={"kind": "accepted", "reason": ""})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=decide, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [303] + [409] * 19
    assert session.scalar(select(func.count()).select_from(Decision)) == 1


def test_publishing_is_all_or_nothing(app, session, scored_listing, make_manager, clock,
                                      monkeypatch):
    manager = make_manager()
    for listing in scored_listing.listings:
        adjudication.decide_listing(session, manager, listing.id, kind="accepted", bid_id=None,
                                    reason="", now=clock())
    owners_before = {a.id: a.owner_id for a in session.scalars(select(Account))}

    def failing_filing(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(adjudication, "append_filing", failing_filing)
    round_ = session.get(Round, scored_listing.id)
    with pytest.raises(RuntimeError):
        adjudication.publish_results(session, manager, round_.id,
                                     expected_version=round_.version, now=clock())
    reload(session)
    assert {a.id: a.owner_id for a in session.scalars(select(Account))} == owners_before
    assert session.scalar(select(func.count()).select_from(Filing)) == 0
    assert session.get(Round, round_.id).status == RoundStatus.SCORED


def test_filings_refuse_update_and_delete_in_the_database(app, session, make_rep, make_manager,
                                                          make_account, clock):
    from bidhub.services.filings import transfer_account

    account = make_account(owner=make_rep())
    transfer_account(session, make_manager(), account_id=account.id, to_rep_id=make_rep().id,
                     reason="Owner left the company.", review_text="Left; handover done.",
                     now=clock())
    with engine_of(app).connect() as connection:
        for statement in ("UPDATE filings SET reason = 'changed'", "DELETE FROM filings"):
            with pytest.raises(DatabaseError, match="append-only"):
                connection.execute(text(statement))
            connection.rollback()
    assert verify_ledger(session) is None


def test_verify_ledger_names_the_first_filing_changed_behind_the_apps_back(
        app, session, make_rep, make_manager, make_account, clock):
    from bidhub.services.filings import transfer_account

    manager = make_manager()
    for _ in range(3):
        account = make_account(owner=make_rep())
        transfer_account(session, manager, account_id=account.id, to_rep_id=make_rep().id,
                         reason="Owner left the company.", review_text="Left; handover done.",
                         now=clock())
    with engine_of(app).begin() as connection:
        connection.execute(text("DROP TRIGGER filings_refuse_update"))
        connection.execute(text("UPDATE filings SET reason = 'quietly edited' WHERE seq = 2"))
    broken = verify_ledger(session)
    assert broken is not None and broken.seq == 2
