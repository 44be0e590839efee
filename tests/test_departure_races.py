"""A rep leaving, deactivated or given another role while KA management decides, scores,
answers an appeal or applies results, on PostgreSQL: one side is paused inside its
transaction, the other runs until it is done or waits for a lock, and after both commit no
award waits for, or takes effect for, somebody who may not hold accounts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bidhub.domain.errors import BidhubError
from bidhub.models import (
    Account,
    Bid,
    BidScore,
    Decision,
    DecisionKind,
    Listing,
    ListingStatus,
    RepStatus,
    Role,
    Round,
    User,
)
from bidhub.services import adjudication, appeals, ownership, users
from bidhub.services.filings import transfer_account
from bidhub.services.imports import import_file
from bidhub.services.ownership import may_receive_accounts
from tests import test_departed_winners, test_round_races
from tests.conftest import reload
from tests.owner_history import history_problems
from tests.test_appeals import actions, notices
from tests.test_departed_winners import REASON, proposed_rep, winner_bid
from tests.test_round_races import Pause, Side, raced, rep_saved

# The fixtures of the same names there.
postgresql_only = test_round_races.postgresql_only
scored = test_departed_winners.scored


def undecided_for_the_departed(session) -> list[int]:
    """Listings waiting (decided, not in force) with an award to someone who may not hold
    accounts: none may be left once both sides committed."""
    rows = session.execute(
        select(Listing.id, Bid.rep_id).join(Decision, Decision.listing_id == Listing.id)
        .join(Bid, Decision.bid_id == Bid.id)
        .where(Listing.status == ListingStatus.DECIDED)).all()
    return [listing_id for listing_id, rep_id in rows
            if not may_receive_accounts(session.get(User, rep_id))]


def reps_file_marking_left(session, rep) -> bytes:
    rep = session.get(User, rep.id)
    return ("员工编号,用户名,姓名,分公司,入职日期,状态\n"
            f"R90{rep.id},{rep.username},{rep.display_name},{rep.branch.code},2020-01-06,离职\n"
            ).encode()


def decide_for(session, manager, listing_id, rep, now):
    """Award the listing to `rep`: accept the ranking if it proposes them, else override."""
    bid_id = winner_bid(session, listing_id, rep)
    kind = (DecisionKind.ACCEPTED if proposed_rep(session, listing_id) == rep.id
            else DecisionKind.OVERRIDDEN)
    return lambda own: adjudication.decide_listing(
        own, own.get(User, manager.id), listing_id, kind=kind, bid_id=bid_id, reason=REASON,
        now=now)


def test_a_reps_import_marking_a_rep_left_while_a_manager_decides_for_them(
        app, session, postgresql_only, monkeypatch, clock, make_rep, make_manager,
        make_admin, scored):
    """The manager's decision holds the rep's row when the import, which found no award of
    theirs to send back, comes to mark them left: it waits, and then must send the award just
    decided back too. Before, the award was left decided for a rep who had left, to be
    refused only when the results were published or took effect."""
    manager, admin, winner = make_manager(), make_admin(), make_rep(name="Leaving Rep")
    round_, _owner = scored([winner, make_rep()], manager=manager)
    listing_id = round_.listings[0].id
    data = reps_file_marking_left(session, winner)
    pause = Pause(monkeypatch, adjudication, "check_capacity")  # the winner's row is locked
    decider = Side(app, decide_for(session, manager, listing_id, winner, clock()))
    pause.wait()
    importer = Side(app, lambda own: import_file(own, own.get(User, admin.id), "reps",
                                                 "reps.csv", data, valid_rows_only=False,
                                                 now=clock()))
    importer.done_or_waiting(app)
    pause.resume()
    decided, imported = decider.join(), importer.join()
    assert not isinstance(decided, Exception), decided
    assert not isinstance(imported, Exception), imported
    assert imported.status == "imported", imported.problems
    reload(session)
    assert session.get(User, winner.id).status == RepStatus.LEFT
    assert undecided_for_the_departed(session) == []
    assert session.get(Listing, listing_id).status == ListingStatus.LISTED
    assert actions(session).count("listing.winner_unavailable") == 1
    assert len(notices(session, "award_refused")) == 1


def test_a_rep_deactivated_while_a_manager_decides_for_them(
        app, session, postgresql_only, monkeypatch, clock, make_rep, make_manager,
        make_admin, scored):
    """The decision holds the rep's row: the deactivation waits for it, then sends the award
    back with the rest, or says why it could not."""
    manager, admin, winner = make_manager(), make_admin(), make_rep(name="Leaving Rep")
    round_, _owner = scored([winner, make_rep()], manager=manager)
    listing_id = round_.listings[0].id
    pause = Pause(monkeypatch, adjudication, "check_capacity")
    decider = Side(app, decide_for(session, manager, listing_id, winner, clock()))
    pause.wait()
    deactivator = Side(app, rep_saved(admin, winner, clock(), status=RepStatus.ACTIVE,
                                      is_active=False))
    deactivator.done_or_waiting(app)
    pause.resume()
    decided, deactivated = decider.join(), deactivator.join()
    assert not isinstance(decided, Exception), decided
    reload(session)
    if isinstance(deactivated, Exception):
        assert isinstance(deactivated, BidhubError), deactivated
        assert session.get(User, winner.id).is_active
    else:
        assert [award.listing_id for award in deactivated.sent_back] == [listing_id]
        assert not session.get(User, winner.id).is_active
        assert len(notices(session, "award_refused")) == 1
    assert undecided_for_the_departed(session) == []


def test_a_rep_deactivated_while_the_round_is_scored_is_seen_or_waits(
        app, session, postgresql_only, monkeypatch, clock, make_rep, make_admin, make_account,
        make_round, make_bid):
    """Scoring reads each bidder's standing once; a deactivation that commits after that read
    and before the scoring commits must not be missed: the scoring would record the rep as
    free to hold accounts and propose them, and the next bidder could then only win by an
    override with a written reason, as if management departed from the score."""
    admin, leaving, other = make_admin(), make_rep(name="Leaving Rep"), make_rep()
    round_ = make_round(accounts=[make_account(owner=make_rep())],
                        closes_at=clock() + timedelta(hours=1))
    listing = round_.listings[0]
    strong = make_bid(leaving, listing, revenue=900_000)
    make_bid(other, listing, revenue=200_000)
    clock.advance(hours=1)
    pause = Pause(monkeypatch, adjudication, "active_bids_of_round")
    scorer = Side(app, lambda own: adjudication.score_closed_round(own, round_.id, clock()))
    pause.wait()
    deactivator = Side(app, rep_saved(admin, leaving, clock(), status=RepStatus.ACTIVE,
                                      is_active=False))
    deactivator.done_or_waiting(app)
    deactivated_first = not deactivator.thread.is_alive()
    pause.resume()
    assert scorer.join() is True
    deactivated = deactivator.join()
    assert not isinstance(deactivated, Exception), deactivated
    reload(session)
    score = session.scalars(select(BidScore).where(BidScore.bid_id == strong.id)).one()
    if deactivated_first:
        assert score.inputs["unavailable"] == "inactive", score.inputs
        assert not score.is_proposed_winner
    else:  # it waited for the scoring, which read the rep as they stood until it committed
        assert score.inputs["unavailable"] == "", score.inputs
    assert not session.get(User, leaving.id).is_active


def test_an_appeal_upheld_while_the_winner_is_deactivated(
        app, session, postgresql_only, monkeypatch, clock, make_rep, make_manager,
        make_admin, scored):
    """Both send the same award back to decision: it goes back once, and neither side fails."""
    manager, admin = make_manager(), make_admin()
    winner, loser = make_rep(name="Leaving Rep"), make_rep(name="Appellant")
    round_, _owner = scored([winner, loser], manager=manager)
    listing_id = round_.listings[0].id
    # Decided for the leaving rep whatever the lottery ranked first: the appellant lost.
    test_departed_winners.award(session, manager, listing_id, winner, clock())
    round_ = session.get(Round, round_.id)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    reload(session)
    appeal = appeals.file_appeal(session, session.get(User, loser.id), listing_id,
                                 ground="My plan was stronger and my record is better.",
                                 now=clock())
    appeal_id, appeal_version = appeal.id, appeal.version
    reload(session)
    pause = Pause(monkeypatch, appeals, "reopen")
    answerer = Side(app, lambda own: appeals.answer_appeal(
        own, own.get(User, manager.id), appeal_id, upheld=True,
        answer="Upheld: the award is decided again.", expected_version=appeal_version,
        now=clock()))
    pause.wait()
    deactivator = Side(app, rep_saved(admin, winner, clock(), status=RepStatus.LEFT,
                                      is_active=True))
    deactivator.done_or_waiting(app)
    pause.resume()
    answered, deactivated = answerer.join(), deactivator.join()
    assert not isinstance(answered, Exception), answered
    assert not isinstance(deactivated, Exception), deactivated
    assert deactivated.sent_back == []
    reload(session)
    assert session.get(Listing, listing_id).status == ListingStatus.LISTED
    assert undecided_for_the_departed(session) == []
    assert actions(session).count("appeal.upheld") == 1
    assert actions(session).count("listing.winner_unavailable") == 0
    assert notices(session, "award_refused") == []
    assert session.get(Account, session.get(Listing, listing_id).account_id).owner_id != winner.id


def test_a_winner_marked_left_while_the_results_take_effect(
        app, session, postgresql_only, monkeypatch, clock, make_rep, make_manager,
        make_admin, scored):
    """The scheduled application at the end of the window and the user form marking the
    winner as left: the award goes back to decision once, or took effect before the rep
    left; never both, and never in force for a rep who had left."""
    manager, admin = make_manager(), make_admin()
    winner = make_rep(name="Leaving Rep")
    round_, owner = scored([winner, make_rep()], manager=manager)
    listing_id = round_.listings[0].id
    decide_for(session, manager, listing_id, winner, clock())(session)
    round_ = session.get(Round, round_.id)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    reload(session)
    ends = session.get(Round, round_.id).standstill_ends_at
    pause = Pause(monkeypatch, users, "sponsored_account_ids")  # rounds and rep locked
    leaver = Side(app, rep_saved(admin, winner, ends, status=RepStatus.LEFT,
                                 is_active=True))
    pause.wait()
    applier = Side(app, lambda own: appeals.apply_due_listings(own, ends))
    applier.done_or_waiting(app)
    pause.resume()
    left, applied = leaver.join(), applier.join()
    assert not isinstance(left, Exception), left
    assert applied == [], applied
    assert [award.listing_id for award in left.sent_back] == [listing_id]
    reload(session)
    assert session.get(Account, session.get(Listing, listing_id).account_id).owner_id == owner.id
    assert session.get(Listing, listing_id).status == ListingStatus.LISTED
    assert undecided_for_the_departed(session) == []
    assert len(notices(session, "award_refused")) == 1
    assert actions(session).count("listing.apply_refused") == 0


def made_manager(admin, rep, now):
    """A side's use case: an admin saves the rep's user form with the KA manager role."""
    return lambda own: users.update_user(
        own, own.get(User, admin.id), rep.id, display_name=rep.display_name,
        role=Role.KA_MANAGER, branch_id=rep.branch_id, status=rep.status, is_active=True,
        now=now)


@pytest.mark.parametrize("first", ["transfer", "role change"])
def test_a_rep_made_a_manager_while_an_account_is_transferred_to_them(
        app, session, postgresql_only, monkeypatch, clock, make_rep, make_manager, make_admin,
        make_account, first):
    """Both take the rep's row: whichever comes second waits and sees the first. A transfer
    that came first leaves the rep holding the account, and the role change is refused; a role
    change that came first leaves no rep to receive it, and the transfer is refused. Never a
    manager holding an account."""
    manager, admin, rep = make_manager(), make_admin(), make_rep(name="Promoted Rep")
    account = make_account(owner=make_rep())
    def transfer(own):
        return transfer_account(
            own, own.get(User, manager.id), account_id=account.id, to_rep_id=rep.id,
            reason="Handed to a rep with room.",
            review_text="Handover done with the purchaser.", now=clock())
    if first == "transfer":
        led, trailed = raced(app, monkeypatch, (ownership, "refuse_unavailable_receivers"),
                             transfer, made_manager(admin, rep, clock()))
    else:
        led, trailed = raced(app, monkeypatch, (users, "accounts_held"),
                             made_manager(admin, rep, clock()), transfer)
    assert not isinstance(led, Exception), led
    assert isinstance(trailed, BidhubError), trailed
    reload(session)
    owner = session.get(Account, account.id).owner
    assert owner.role == Role.REP
    if first == "transfer":
        assert owner.id == rep.id and session.get(User, rep.id).role == Role.REP
    else:
        assert owner.id != rep.id and session.get(User, rep.id).role == Role.KA_MANAGER
    assert history_problems(session) == []
