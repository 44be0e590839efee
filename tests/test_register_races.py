"""Two ownership changes of one account at the same moment, on PostgreSQL: one side is paused
inside its transaction once it has moved the account (tests/test_round_races.py), the other
runs meanwhile; afterwards there is one outcome, and the register is exactly its history."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bidhub.domain.errors import BidhubError
from bidhub.models import Account, DecisionKind, FilingKind, Listing, ListingStatus, Round, User
from bidhub.services import adjudication, appeals, filings, imports, sponsors
from tests import test_round_races
from tests.conftest import client_of, reload
from tests.owner_history import Watch
from tests.test_appeals import use_window
from tests.test_round_races import Pause, Side

# The fixture of the same name there.
postgresql_only = test_round_races.postgresql_only

REASON = "The rep moves to the Shanghai team."
REVIEW = "Handover planned with the client's purchaser."


def transfer(app, manager, account, to_rep, owner):
    """A side's call: the manager confirms the transfer summary drawn with `owner` holding it."""
    client = client_of(app, manager)
    return lambda own: client.post("/manage/transfer", data={
        "account": str(account.id), "to_rep": str(to_rep.id), "owner": str(owner.id),
        "reason": REASON, "review_text": REVIEW}).status_code


def accounts_import(admin, account, owner, now):
    data = ("external_id,name,industry,ownership_type,branch,annual_value_yuan,owner\n"
            f'{account.external_id},"{account.name}",IT,private,BJ,100000,{owner.username}\n'
            ).encode()
    return lambda own: imports.import_file(own, own.get(User, admin.id), "accounts",
                                           "accounts.csv", data, valid_rows_only=False,
                                           now=now).status


def test_a_transfer_confirmed_while_the_account_is_awarded_waits_and_is_refused(
        app, session, postgresql_only, monkeypatch, clock, make_rep, make_manager,
        make_account, make_round, make_bid):
    """Results are published (no standstill) and, at that moment, another manager confirms a
    direct transfer of an awarded account from the summary drawn before. The transfer waits
    for the award, then finds another owner than its summary showed: one award filed."""
    use_window(app, session, clock, 0)
    owner, winner, receiver = make_rep(), make_rep(), make_rep()
    publisher_manager, transferring_manager = make_manager(), make_manager()
    account = make_account(owner=owner)
    round_ = make_round(accounts=[account], closes_at=clock() + timedelta(hours=1))
    make_bid(winner, round_.listings[0])
    clock.advance(hours=1)
    assert adjudication.score_closed_round(session, round_.id, clock())
    adjudication.decide_listing(session, publisher_manager, round_.listings[0].id,
                                kind=DecisionKind.ACCEPTED, bid_id=None, reason="", now=clock())
    version = session.get(Round, round_.id).version
    send = transfer(app, transferring_manager, account, receiver, owner)
    watch = Watch(session)
    pause = Pause(monkeypatch, adjudication, "change_owners")
    publisher = Side(app, lambda own: adjudication.publish_results(
        own, own.get(User, publisher_manager.id), round_.id, expected_version=version,
        now=clock()))
    pause.wait()
    transferrer = Side(app, send)
    transferrer.done_or_waiting(app)
    pause.resume()
    published, status = publisher.join(), transferrer.join()
    assert not isinstance(published, Exception), published
    assert status == 409
    [filing] = watch.filed()
    assert (filing.kind, filing.from_rep_id, filing.to_rep_id) == (
        FilingKind.ROUND_AWARD, owner.id, winner.id)


def test_a_transfer_confirmed_while_the_results_are_being_published_is_refused_at_once(
        app, session, postgresql_only, monkeypatch, clock, make_rep, make_manager,
        make_account, make_round, make_bid):
    """The other order: publishing holds the round and has not reached the account yet; the
    account is still listed, so the transfer is refused without waiting."""
    use_window(app, session, clock, 0)
    owner, winner, receiver, manager = make_rep(), make_rep(), make_rep(), make_manager()
    account = make_account(owner=owner)
    round_ = make_round(accounts=[account], closes_at=clock() + timedelta(hours=1))
    make_bid(winner, round_.listings[0])
    clock.advance(hours=1)
    assert adjudication.score_closed_round(session, round_.id, clock())
    adjudication.decide_listing(session, manager, round_.listings[0].id,
                                kind=DecisionKind.ACCEPTED, bid_id=None, reason="", now=clock())
    version = session.get(Round, round_.id).version
    send = transfer(app, make_manager(), account, receiver, owner)
    watch = Watch(session)
    pause = Pause(monkeypatch, adjudication, "award_changes")
    publisher = Side(app, lambda own: adjudication.publish_results(
        own, own.get(User, manager.id), round_.id, expected_version=version, now=clock()))
    pause.wait()
    transferrer = Side(app, send)
    assert transferrer.join() == 422
    pause.resume()
    assert not isinstance(publisher.join(), Exception)
    [filing] = watch.filed()
    assert (filing.from_rep_id, filing.to_rep_id) == (owner.id, winner.id)


def test_two_managers_transferring_one_account_at_once_file_one_transfer(
        app, session, postgresql_only, monkeypatch, make_rep, make_manager, make_account):
    owner, first_receiver, second_receiver = make_rep(), make_rep(), make_rep()
    account = make_account(owner=owner)
    first_send = transfer(app, make_manager(), account, first_receiver, owner)
    second_send = transfer(app, make_manager(), account, second_receiver, owner)
    watch = Watch(session)
    pause = Pause(monkeypatch, filings, "change_owners")
    first = Side(app, first_send)
    pause.wait()
    second = Side(app, second_send)
    second.done_or_waiting(app)
    pause.resume()
    assert (first.join(), second.join()) == (303, 409)
    [filing] = watch.filed()
    assert (filing.from_rep_id, filing.to_rep_id) == (owner.id, first_receiver.id)


def test_an_import_moving_an_account_while_it_is_transferred_moves_it_from_the_new_owner(
        app, session, postgresql_only, monkeypatch, clock, make_rep, make_manager, make_admin,
        make_account):
    """The import waits for the transfer, then reads the account as the transfer left it: its
    move is filed from the rep the transfer gave the account to."""
    owner, receiver, crm_owner = make_rep(), make_rep(), make_rep()
    account = make_account(owner=owner)
    send = transfer(app, make_manager(), account, receiver, owner)
    watch = Watch(session)
    pause = Pause(monkeypatch, filings, "change_owners")
    transferrer = Side(app, send)
    pause.wait()
    importer = Side(app, accounts_import(make_admin(), account, crm_owner, clock()))
    importer.done_or_waiting(app)
    pause.resume()
    assert (transferrer.join(), importer.join()) == (303, "imported")
    moves = [(filing.kind, filing.from_rep_id, filing.to_rep_id) for filing in watch.filed()]
    assert moves == [(FilingKind.DIRECT_TRANSFER, owner.id, receiver.id),
                     (FilingKind.CRM_IMPORT, receiver.id, crm_owner.id)]


def test_an_import_leaves_a_sponsored_account_to_its_sponsors_answer(
        app, session, clock, make_rep, make_manager, make_admin, make_user, make_account):
    """A transfer of a sponsored account waits for its sponsor, and a CRM file names another
    owner: the import is refused (an account with an executive sponsor moves only when the
    sponsor confirms) and files nothing; the sponsor's answer then files the transfer. Before,
    the import moved the account, and raced the sponsor's acceptance for it."""
    president = make_user("executive", name="王总")
    president.executive_title = "president"
    session.commit()
    manager, owner, receiver, crm_owner = make_manager(), make_rep(), make_rep(), make_rep()
    account = make_account(owner=owner)
    sponsors.designate_sponsor(session, manager, account.id, president.id, clock())
    request = filings.transfer_account(session, manager, account_id=account.id,
                                       to_rep_id=receiver.id, reason=REASON, review_text=REVIEW,
                                       now=clock())
    reload(session)
    account = session.get(Account, account.id)
    watch = Watch(session)
    factory = app.extensions["bidhub_sessionmaker"]
    own = factory()
    try:
        assert accounts_import(make_admin(), account, crm_owner, clock())(own) == "refused"
    finally:
        own.close()
    assert watch.filed() == []
    sponsors.accept_transfer_request(session, president, request.id, "", clock())
    [filing] = watch.filed()
    assert (filing.kind, filing.from_rep_id, filing.to_rep_id) == (
        FilingKind.DIRECT_TRANSFER, owner.id, receiver.id)


def test_a_listing_cancelled_while_it_takes_effect_is_filed_or_cancelled_not_both(
        app, session, postgresql_only, monkeypatch, clock, make_rep, make_manager,
        make_account, make_round, make_bid):
    """The scheduler applies the round at the end of its window while a manager cancels the
    listing: the cancellation waits for the round, then finds the award in force."""
    owner, winner, manager = make_rep(), make_rep(), make_manager()
    round_ = make_round(accounts=[make_account(owner=owner)],
                        closes_at=clock() + timedelta(hours=1))
    listing_id = round_.listings[0].id
    make_bid(winner, round_.listings[0])
    clock.advance(hours=1)
    assert adjudication.score_closed_round(session, round_.id, clock())
    adjudication.decide_listing(session, manager, listing_id, kind=DecisionKind.ACCEPTED,
                                bid_id=None, reason="", now=clock())
    round_ = session.get(Round, round_.id)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    ends = session.scalar(select(Round.standstill_ends_at).where(Round.id == round_.id))
    watch = Watch(session)
    pause = Pause(monkeypatch, appeals, "change_owners")
    applier = Side(app, lambda own: appeals.apply_due_listings(own, ends))
    pause.wait()
    canceller = Side(app, lambda own: appeals.cancel_listing(
        own, own.get(User, manager.id), listing_id,
        reason="The client is being merged into another group.", now=ends))
    canceller.done_or_waiting(app)
    pause.resume()
    assert applier.join() == [listing_id]
    assert isinstance(canceller.join(), BidhubError)
    [filing] = watch.filed()
    assert (filing.listing_id, filing.from_rep_id, filing.to_rep_id) == (
        listing_id, owner.id, winner.id)
    assert session.get(Listing, listing_id).status == ListingStatus.AWARDED
