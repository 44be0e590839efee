"""Use cases racing on PostgreSQL, where row locks (not one writer at a time, as on SQLite)
keep the rules: one side is paused inside its transaction at the point where the other could
slip in, and the other runs meanwhile until it is done or waits for a lock."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from bidhub.db import engine_of
from bidhub.domain.errors import BidhubError
from bidhub.models import (
    Account,
    AuditEvent,
    Bid,
    BidScore,
    BidStatus,
    Listing,
    ListingStatus,
    ReleaseReason,
    Role,
    Round,
    RoundStatus,
    User,
)
from bidhub.services import adjudication, bid_preferences, bidding, rounds, sponsors, users
from tests.conftest import reload

WAIT_SECONDS = 20


@pytest.fixture
def postgresql_only(backend):
    if backend != "postgresql":
        pytest.skip("on SQLite BEGIN IMMEDIATE lets one writer in at a time; no race to pause")


def waiting_for_a_lock(app) -> bool:
    """Whether some other connection of this database waits for a lock."""
    with engine_of(app).connect() as connection:
        return bool(connection.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")).scalar())


class Side:
    """A use case run in a thread of its own, with its own session."""

    def __init__(self, app, call):
        self.factory = app.extensions["bidhub_sessionmaker"]
        self.result = None
        self.thread = threading.Thread(target=self.run, args=(call,), daemon=True)
        self.thread.start()

    def run(self, call):
        own = self.factory()
        try:
            self.result = call(own)
        except Exception as error:  # noqa: BLE001 - the test looks at it
            self.result = error
        finally:
            own.close()

    def done_or_waiting(self, app) -> None:
        """Return once the side finished or waits for a lock another transaction holds."""
        deadline = time.monotonic() + WAIT_SECONDS
        while self.thread.is_alive() and not waiting_for_a_lock(app):
            assert time.monotonic() < deadline, "the other side neither finished nor waited"
            time.sleep(0.01)

    def join(self):
        self.thread.join(WAIT_SECONDS)
        assert not self.thread.is_alive()
        return self.result


class Pause:
    """Wrap `module.name` so that its first call, once it returned, waits until `resume()`."""

    def __init__(self, monkeypatch, module, name):
        self.reached, self.go = threading.Event(), threading.Event()
        original = getattr(module, name)

        def paused(*args, **kwargs):
            result = original(*args, **kwargs)
            if not self.reached.is_set():
                self.reached.set()
                assert self.go.wait(WAIT_SECONDS)
            return result

        monkeypatch.setattr(module, name, paused)

    def wait(self):
        assert self.reached.wait(WAIT_SECONDS)

    def resume(self):
        self.go.set()



def raced(app, monkeypatch, paused_at, leading, trailing):
    """`leading` runs until it returns from `paused_at` (module, function name), then
    `trailing` runs until it finishes or waits for a lock, then `leading` goes on: each one's
    result, or the error it raised, in that order."""
    pause = Pause(monkeypatch, *paused_at)
    first = Side(app, leading)
    pause.wait()
    second = Side(app, trailing)
    second.done_or_waiting(app)
    pause.resume()
    return first.join(), second.join()

# --- bids and the deadline's scoring -------------------------------------------------------------

def rep_saved(admin, rep, now, *, status: str, is_active: bool):
    """A side's use case: an admin saves the rep's user form with this status and sign-in
    access, everything else as it was."""
    return lambda own: users.update_user(
        own, own.get(User, admin.id), rep.id, display_name=rep.display_name, role=Role.REP,
        branch_id=rep.branch_id, status=status, is_active=is_active, now=now)


@pytest.fixture
def closing_round(session, clock, make_rep, make_account, make_round, make_bid):
    """A published round with two listings and a bid for the first; its deadline is an hour
    away."""
    owner = make_rep()
    round_ = make_round(accounts=[make_account(owner=owner), make_account(owner=owner)],
                        closes_at=clock() + timedelta(hours=1))
    listing = round_.listings[0]
    first = make_bid(make_rep(), listing)
    return round_, listing, first


def score_at_deadline(round_):
    return lambda own: adjudication.score_closed_round(own, round_.id, round_.closes_at)


@pytest.mark.parametrize("alone", [False, True])
def test_a_bid_placed_while_the_round_is_scored_is_scored_or_refused(
        app, session, postgresql_only, monkeypatch, closing_round, make_rep, make_bid, alone):
    """A bid acknowledged a second before the deadline, while the scheduler scores the round,
    must be in the scoring; before, it was written beside a scored round and never scored.
    `alone`: the rep's track record is stored already (a bid of theirs made it), so the bid is
    written by one statement outside the write transaction."""
    round_, listing, _first = closing_round
    rep = make_rep()
    if alone:
        make_bid(rep, round_.listings[1])
    written_alone = []
    may_write_alone = bidding.may_write_alone
    monkeypatch.setattr(bidding, "may_write_alone",
                        lambda own: written_alone.append(may_write_alone(own)) or written_alone[-1])
    pause = Pause(monkeypatch, adjudication, "active_bids_of_round")
    scorer = Side(app, score_at_deadline(round_))
    pause.wait()
    written_alone.clear()
    bidder = Side(app, lambda own: bidding.place_bid(
        own, own.get(User, rep.id), listing.id, account_plan="A careful plan for this account.",
        committed_revenue_yuan=300_000, visit_plan="Visit the decision maker in week one.",
        submission_key=None, now=round_.closes_at - timedelta(seconds=1)))
    bidder.done_or_waiting(app)
    pause.resume()
    assert scorer.join() is True
    placed = bidder.join()
    assert any(written_alone) == alone
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.SCORED
    unscored = session.scalar(select(func.count()).select_from(Bid).outerjoin(BidScore)
                              .join(Listing).where(Listing.round_id == round_.id,
                                     Bid.status == BidStatus.ACTIVE, BidScore.bid_id.is_(None)))
    assert unscored == 0
    if not isinstance(placed, BidhubError):
        assert session.get(Bid, placed.bid_id).score is not None


@pytest.mark.parametrize("change", ["withdraw", "edit"])
def test_a_bid_withdrawn_or_edited_while_the_round_is_scored_is_refused_or_seen(
        app, session, postgresql_only, monkeypatch, closing_round, change):
    """A withdrawal (or an edit) a second before the deadline, while the round is scored, is
    either refused or seen by the scoring; before, a withdrawn bid could be scored, and win."""
    round_, _listing, first = closing_round
    rep_id, bid_id = first.rep_id, first.id
    at = round_.closes_at - timedelta(seconds=1)
    pause = Pause(monkeypatch, adjudication, "active_bids_of_round")
    scorer = Side(app, score_at_deadline(round_))
    pause.wait()
    if change == "withdraw":
        changer = Side(app, lambda own: bidding.withdraw_bid(own, own.get(User, rep_id), bid_id,
                                                             at))
    else:
        changer = Side(app, lambda own: bidding.update_bid(
            own, own.get(User, rep_id), bid_id, account_plan="A changed plan for the account.",
            committed_revenue_yuan=900_000, visit_plan="Visit the decision maker in week one.",
            expected_version=1, now=at))
    changer.done_or_waiting(app)
    pause.resume()
    assert scorer.join() is True
    changed = changer.join()
    reload(session)
    bid = session.get(Bid, bid_id)
    if change == "withdraw":
        assert (bid.status == BidStatus.WITHDRAWN) == (bid.score is None), changed
    else:
        # The scored bid is the bid as it stands: an edit is refused once scoring began.
        assert isinstance(changed, BidhubError), changed
        assert bid.committed_revenue_yuan == 300_000


def test_preferences_ranked_while_the_round_is_scored_are_refused_or_scored(
        app, session, postgresql_only, monkeypatch, closing_round, make_rep, make_bid):
    """A ranking of preferences a second before the deadline, while the round is scored, is
    refused or scored with; before, the stored ranks differed from the ones scored."""
    round_, listing, _first = closing_round
    rep = make_rep()
    bids = [make_bid(rep, listing), make_bid(rep, round_.listings[1])]
    ranks = {bids[1].id: 1, bids[0].id: 2}
    pause = Pause(monkeypatch, adjudication, "active_bids_of_round")
    scorer = Side(app, score_at_deadline(round_))
    pause.wait()
    ranker = Side(app, lambda own: bid_preferences.rank_preferences(
        own, own.get(User, rep.id), round_.id, ranks, round_.closes_at - timedelta(seconds=1)))
    ranker.done_or_waiting(app)
    pause.resume()
    assert scorer.join() is True
    ranked = ranker.join()
    reload(session)
    for bid in bids:
        bid = session.get(Bid, bid.id)
        assert bid.score.inputs["preference_rank"] == bid.preference_rank, ranked


# --- a draft round's list and its publication ------------------------------------------------

@pytest.fixture
def draft_round(session, clock, make_rep, make_account, make_round):
    """A draft round with one account listed, ready to publish."""
    return make_round(accounts=[make_account(owner=make_rep())], status=RoundStatus.DRAFT,
                      opens_at=clock(), closes_at=clock() + timedelta(days=3))


def publish(round_, manager, now):
    return lambda own: rounds.publish_round(own, own.get(User, manager.id), round_.id,
                                            expected_version=round_.version, now=now)


def test_an_account_released_while_the_round_is_published_waits_or_is_refused(
        app, session, postgresql_only, monkeypatch, clock, draft_round, make_manager,
        make_rep, make_account):
    """A sponsored account released into a draft round at the moment it is published: either
    the release comes first and publishing waits for the sponsor, or it comes after and is
    refused. Before, it was listed into the published round, its sponsor's answer pending."""
    manager = make_manager()
    account = make_account(owner=make_rep(), executive_sponsor="president")
    pause = Pause(monkeypatch, rounds, "lock_accounts")
    releaser = Side(app, lambda own: rounds.release_account(
        own, own.get(User, manager.id), draft_round.id, account_id=account.id,
        reason=ReleaseReason.NEGLECTED, note="", review_text="No visit in a year; the handover is done.",
        now=clock()))
    pause.wait()
    publisher = Side(app, publish(draft_round, manager, clock()))
    publisher.done_or_waiting(app)
    pause.resume()
    released, published = releaser.join(), publisher.join()
    reload(session)
    round_ = session.get(Round, draft_round.id)
    if round_.status == RoundStatus.PUBLISHED:
        assert isinstance(released, BidhubError), released
        assert [listing.status for listing in round_.listings] == [ListingStatus.LISTED]
    else:
        assert isinstance(published, BidhubError), published
        assert len(round_.listings) == 2


def test_a_listing_removed_while_the_round_is_published_goes_before_or_not_at_all(
        app, session, postgresql_only, monkeypatch, clock, draft_round, make_manager):
    """Removing the only listing of a draft round at the moment it is published: before, the
    round was published and then lost its list."""
    manager = make_manager()
    listing_id = draft_round.listings[0].id
    pause = Pause(monkeypatch, rounds, "withdraw_release_review")
    remover = Side(app, lambda own: rounds.remove_listing(own, own.get(User, manager.id),
                                                          listing_id, clock()))
    pause.wait()
    publisher = Side(app, publish(draft_round, manager, clock()))
    publisher.done_or_waiting(app)
    pause.resume()
    removed, published = remover.join(), publisher.join()
    reload(session)
    round_ = session.get(Round, draft_round.id)
    if round_.status == RoundStatus.PUBLISHED:
        assert isinstance(removed, BidhubError), removed
        assert len(round_.listings) == 1
    else:
        assert isinstance(published, BidhubError), published
        assert round_.listings == []


# --- executive sponsors --------------------------------------------------------------------------

def test_a_sponsor_deactivated_while_designated_is_refused_one_way_or_the_other(
        app, session, postgresql_only, monkeypatch, clock, make_user, make_manager, make_admin,
        make_account, make_rep):
    """Designating an executive at the moment an admin deactivates them: before, both went
    through, and the account's sponsor was someone who can no longer sign in to answer."""
    executive = make_user(Role.EXECUTIVE, name="王总")
    executive.executive_title = "president"
    session.commit()
    manager, admin = make_manager(), make_admin()
    account = make_account(owner=make_rep())
    pause = Pause(monkeypatch, sponsors, "waiting_for_sponsor")
    designator = Side(app, lambda own: sponsors.designate_sponsor(
        own, own.get(User, manager.id), account.id, executive.id, clock()))
    pause.wait()
    deactivator = Side(app, lambda own: users.update_user(
        own, own.get(User, admin.id), executive.id, display_name="王总", role=Role.EXECUTIVE,
        branch_id=None, status=executive.status, is_active=False, now=clock(),
        executive_title="president"))
    deactivator.done_or_waiting(app)
    pause.resume()
    designated, deactivated = designator.join(), deactivator.join()
    reload(session)
    sponsor_id = session.get(Account, account.id).sponsor_id
    if session.get(User, executive.id).is_active:
        assert isinstance(deactivated, BidhubError), deactivated
        assert sponsor_id == executive.id
    else:
        assert isinstance(designated, BidhubError), designated
        assert sponsor_id is None


def test_a_sponsored_release_confirmed_and_refused_at_once_takes_one_answer(
        app, session, postgresql_only, monkeypatch, clock, draft_round, make_manager,
        make_admin, make_rep, make_account):
    """The sponsor's confirmation and a refusal of the same release sent at once: one is
    taken and the other told it came too late. Before, both were acknowledged, and the later
    write decided whether the account went on the market."""
    manager, admin = make_manager(), make_admin()
    account = make_account(owner=make_rep(), executive_sponsor="president")
    listing = rounds.release_account(
        session, manager, draft_round.id, account_id=account.id,
        reason=ReleaseReason.NEGLECTED, note="",
        review_text="No visit in a year; the handover is done.", now=clock())
    assert listing.status == ListingStatus.AWAITING_CONFIRMATION
    listing_id = listing.id
    confirmed, refused = raced(
        app, monkeypatch, (rounds, "notify"),
        lambda own: rounds.confirm_sponsored_listing(own, own.get(User, admin.id), listing_id,
                                                     clock()),
        lambda own: rounds.refuse_sponsored_listing(own, own.get(User, admin.id), listing_id,
                                                    "不同意释放，客户关系正在恢复。", clock()))
    assert not isinstance(confirmed, BidhubError), confirmed
    assert isinstance(refused, BidhubError), refused
    reload(session)
    assert session.get(Listing, listing_id).status == ListingStatus.LISTED
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.target == f"listing:{listing_id}",
        AuditEvent.action.in_(["listing.sponsor_confirmed", "listing.sponsor_refused"]))) == 1


def test_a_withdrawal_sent_twice_at_once_moves_the_later_choices_up_once(
        app, session, postgresql_only, monkeypatch, clock, make_rep, make_account, make_round,
        make_bid):
    """A withdrawal resent (a double click, two tabs) while the first is still in progress:
    before, both moved the rep's later choices up, and two bids ended with the same rank."""
    owner, rep = make_rep(), make_rep()
    round_ = make_round(accounts=[make_account(owner=owner) for _ in range(3)])
    bids = [make_bid(rep, listing) for listing in round_.listings]
    bid_preferences.rank_preferences(session, rep, round_.id,
                                     {bid.id: rank for rank, bid in enumerate(bids, 1)}, clock())
    first = bids[0].id
    pause = Pause(monkeypatch, bidding, "open_listing_for")
    withdraw = lambda own: bidding.withdraw_bid(own, own.get(User, rep.id), first,  # noqa: E731
                                                clock())
    paused = Side(app, withdraw)
    pause.wait()
    again = Side(app, withdraw)
    again.done_or_waiting(app)
    pause.resume()
    results = [paused.join(), again.join()]
    assert not any(isinstance(result, Exception) for result in results), results
    reload(session)
    assert [session.get(Bid, bid.id).preference_rank for bid in bids] == [None, 1, 2]


def test_a_withdrawal_and_a_new_ranking_at_once_leave_distinct_ranks(
        app, session, postgresql_only, monkeypatch, clock, make_rep, make_account, make_round,
        make_bid):
    """A withdrawal while the rep saves a new ranking in another tab: before, the withdrawal
    closed the gap at the rank it had read, not at the one the ranking left."""
    owner, rep = make_rep(), make_rep()
    round_ = make_round(accounts=[make_account(owner=owner) for _ in range(3)])
    bids = [make_bid(rep, listing) for listing in round_.listings]
    bid_preferences.rank_preferences(session, rep, round_.id,
                                     {bid.id: rank for rank, bid in enumerate(bids, 1)}, clock())
    pause = Pause(monkeypatch, bidding, "open_listing_for")
    withdrawal = Side(app, lambda own: bidding.withdraw_bid(own, own.get(User, rep.id),
                                                            bids[0].id, clock()))
    pause.wait()
    ranking = Side(app, lambda own: bid_preferences.rank_preferences(
        own, own.get(User, rep.id), round_.id, {bids[0].id: 3, bids[1].id: 1, bids[2].id: 2},
        clock()))
    ranking.done_or_waiting(app)
    pause.resume()
    withdrawal.join()
    ranking.join()
    reload(session)
    ranks = [session.get(Bid, bid.id).preference_rank for bid in bids[1:]]
    assert sorted(ranks) == [1, 2]


# --- a winner leaving -----------------------------------------------------------------------------

def test_a_winner_deactivated_while_the_results_are_announced_has_the_award_sent_back(
        app, session, postgresql_only, monkeypatch, clock, make_rep, make_manager, make_admin,
        make_account, make_round, make_bid):
    """An admin deactivates the winner while a manager announces the round's results: the
    deactivation waits for the round, then sends the announced award back to decision. Its
    rounds are locked before the rep, as publishing locks them, so neither waits in a circle."""
    manager, admin, winner = make_manager(), make_admin(), make_rep()
    round_ = make_round(accounts=[make_account(owner=make_rep())],
                        closes_at=clock() + timedelta(hours=1), manager=manager)
    listing_id = round_.listings[0].id
    make_bid(winner, round_.listings[0])
    clock.advance(hours=1)
    assert adjudication.score_closed_round(session, round_.id, clock())
    adjudication.decide_listing(session, manager, listing_id, kind="accepted", bid_id=None,
                                reason="", now=clock())
    version = session.get(Round, round_.id).version
    pause = Pause(monkeypatch, adjudication, "decisions_with_defaults")
    publisher = Side(app, lambda own: adjudication.publish_results(
        own, own.get(User, manager.id), round_.id, expected_version=version, now=clock()))
    pause.wait()
    deactivator = Side(app, rep_saved(admin, winner, clock(), status=winner.status,
                                      is_active=False))
    deactivator.done_or_waiting(app)
    pause.resume()
    assert publisher.join() == []
    deactivated = deactivator.join()
    assert not isinstance(deactivated, Exception), deactivated
    assert [award.listing_id for award in deactivated.sent_back] == [listing_id]
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.STANDSTILL
    assert session.get(Listing, listing_id).status == ListingStatus.LISTED
    assert not session.get(User, winner.id).is_active


# --- the New round form sent twice at once ---------------------------------------------------


def test_the_new_round_form_sent_twice_at_once_creates_one_round(
        app, session, postgresql_only, monkeypatch, clock, make_manager):
    """Both sends look for a round made with the form's key before either has committed one:
    the second waits on the key's unique index, then answers with the first one's round."""
    manager = make_manager()
    pause = Pause(monkeypatch, rounds, "record_audit")  # the first has written its round

    def create(own):
        return rounds.create_round(own, own.get(User, manager.id), title="Spring round",
                                   branch_id=None, opens_at=clock() + timedelta(hours=1),
                                   closes_at=clock() + timedelta(days=7), now=clock(),
                                   submission_key="one-form").id

    first = Side(app, create)
    pause.wait()
    second = Side(app, create)
    second.done_or_waiting(app)
    pause.resume()
    first_id, second_id = first.join(), second.join()
    assert first_id == second_id, (first_id, second_id)
    reload(session)
    assert session.scalar(select(func.count()).select_from(Round)) == 1


def test_the_new_round_form_saved_again_twice_at_once_after_back_creates_one_round(
        app, session, postgresql_only, monkeypatch, clock, make_manager):
    """Two sends of the form after Back carry two keys: the second waits on the manager's row
    locked by the first, then finds the draft the first made and is refused with it."""
    manager = make_manager()
    pause = Pause(monkeypatch, rounds, "record_audit")  # the first has written its round

    def create(key):
        def run(own):
            try:
                return rounds.create_round(own, own.get(User, manager.id), title="Spring round",
                                           branch_id=None, opens_at=clock() + timedelta(hours=1),
                                           closes_at=clock() + timedelta(days=7), now=clock(),
                                           submission_key=key).id
            except rounds.RoundCreatedAlready as refused:
                return refused.round_id
        return run

    first = Side(app, create("first-form"))
    pause.wait()
    second = Side(app, create("form-after-back"))
    second.done_or_waiting(app)
    pause.resume()
    first_id, second_id = first.join(), second.join()
    assert first_id == second_id, (first_id, second_id)
    reload(session)
    assert session.scalar(select(func.count()).select_from(Round)) == 1


def test_an_accountability_release_and_a_transfer_at_once_release_from_the_owner_shown(
        app, session, postgresql_only, monkeypatch, clock, make_manager, make_rep,
        make_account, make_round):
    """The release compares the owner its page showed with the locked account: a transfer
    sent meanwhile waits for it (and is then refused, the account being listed), so the loss
    review is due from the rep the review was written about."""
    from bidhub.models import AccountReview
    from bidhub.services import accountability, filings
    from tests.test_accountability import log, uphold

    manager, shown, other = make_manager(), make_rep(), make_rep()
    account = make_account(owner=shown)
    for days in (3, 2):
        uphold(session, manager, log(session, manager, account, clock,
                                     seen_at=clock() - timedelta(days=days)), clock)
    draft = make_round(status=RoundStatus.DRAFT, closes_at=clock() + timedelta(days=10))
    pause = Pause(monkeypatch, accountability, "lock_accounts")
    releaser = Side(app, lambda own: accountability.release_for_accountability(
        own, own.get(User, manager.id), account.id, round_id=draft.id,
        expected_owner_id=shown.id, review_text="Two campaigns; the rep never visited.",
        now=clock()))
    pause.wait()
    transferrer = Side(app, lambda own: filings.transfer_account(
        own, own.get(User, manager.id), account_id=account.id, to_rep_id=other.id,
        reason="Handed over to the rep covering the district.",
        review_text="Handover done; the client was told.", now=clock()))
    transferrer.done_or_waiting(app)
    assert transferrer.thread.is_alive(), "the transfer went ahead under the release's lock"
    pause.resume()
    released, transferred = releaser.join(), transferrer.join()
    assert not isinstance(released, BaseException), released
    assert isinstance(transferred, BidhubError), transferred
    reload(session)
    listing = session.scalars(select(Listing)).one()
    assert listing.released_from_id == shown.id
    assert session.get(AccountReview, listing.review_id).rep_id == shown.id
    assert session.get(Account, account.id).owner_id == shown.id
