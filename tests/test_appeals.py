"""The standstill after results are announced: appeals, cancellation, and taking effect once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from bidhub import create_app, scheduler
from bidhub.db import engine_of
from bidhub.domain.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    TransferRefused,
)
from bidhub.models import (
    Account,
    Appeal,
    AppealStatus,
    AuditEvent,
    Bid,
    BidStatus,
    Decision,
    DecisionKind,
    Filing,
    FilingKind,
    Listing,
    ListingStatus,
    Notification,
    Round,
    RoundStatus,
)
from bidhub.services import adjudication, appeals
from bidhub.services.filings import transfer_account
from bidhub.services.ledger import verify_ledger
from bidhub.services.rule_sets import adopt_rule_set, default_rules_path
from tests.conftest import START, reload, run_together
from tests.test_ledger_anchor import tamper

GROUND = "My plan covers the client's three plants; please read it again."
ANSWER = "We read the plan again; the ranking stands on the track record."
REASON = "The client is being merged into another group."
# START is Monday 09:00 in Beijing: three working days later is Thursday 09:00.
WINDOW_ENDS = START + timedelta(days=3)


def use_window(app, session, clock, days: int) -> None:
    """Rounds created from now on use the default rules with this appeal window."""
    default = default_rules_path(app.config).read_text("utf-8")
    assert "window_working_days = 3" in default
    adopt_rule_set(session, None, default.replace("window_working_days = 3",
                                                  f"window_working_days = {days}"),
                   "default", f"window {days}", clock())
    session.commit()


@pytest.fixture
def announce(session, clock, make_rep, make_manager, make_account, make_round, make_bid):
    """Announce a round whose listings each got a bid from every one of `bidders`, the
    ranking accepted (or, with `winner`, every listing decided for that bidder, so that the
    others lost and may appeal); the clock stays at the announcement (START)."""

    def make(bidders, *, listings: int = 1, owner=None, manager=None, winner=None):
        owner, manager = owner or make_rep(), manager or make_manager()
        accounts = [make_account(owner=owner) for _ in range(listings)]
        round_ = make_round(accounts=accounts, closes_at=clock() + timedelta(hours=1),
                            opens_at=clock() - timedelta(hours=2), manager=manager)
        for listing in round_.listings:
            for rep in bidders:
                make_bid(rep, listing)
        at = clock()
        clock.advance(hours=1)
        assert adjudication.score_closed_round(session, round_.id, clock())
        for listing in round_.listings:
            chosen = None if winner is None else session.scalars(select(Bid).where(
                Bid.listing_id == listing.id, Bid.rep_id == winner.id)).one()
            if chosen is None or chosen.score.is_proposed_winner:
                adjudication.decide_listing(session, manager, listing.id,
                                            kind=DecisionKind.ACCEPTED, bid_id=None, reason="",
                                            now=clock())
            else:
                adjudication.decide_listing(session, manager, listing.id,
                                            kind=DecisionKind.OVERRIDDEN, bid_id=chosen.id,
                                            reason="The account needs the rep who serves its "
                                                   "parent group.", now=clock())
        clock.set(at)
        round_ = session.get(Round, round_.id)
        adjudication.publish_results(session, manager, round_.id,
                                     expected_version=round_.version, now=clock())
        reload(session)
        return session.get(Round, round_.id)

    return make


def results_in_force(session, round_id: int) -> list[int]:
    """Apply an announced round's listings at the end of its window, as the scheduler would;
    the listings applied. Other test modules use it after publishing with the default rules."""
    reload(session)
    round_ = session.get(Round, round_id)
    assert round_.status == RoundStatus.STANDSTILL, round_.status
    applied = appeals.apply_due_listings(session, round_.standstill_ends_at)
    reload(session)
    return applied


def winner_of(session, listing_id: int) -> Bid:
    decision = session.scalars(select(Decision).where(Decision.listing_id == listing_id)).one()
    return decision.bid


def filings(session) -> list[Filing]:
    """The round awards filed (the factories file each new account's first owner too)."""
    return list(session.scalars(select(Filing).where(Filing.kind == FilingKind.ROUND_AWARD)
                                .order_by(Filing.seq)))


def owner_of(session, listing: Listing):
    return session.get(Account, listing.account_id).owner_id


def notices(session, kind: str) -> list[Notification]:
    return list(session.scalars(select(Notification).where(Notification.kind == kind)
                                .order_by(Notification.id)))


def actions(session) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


# --- the announcement and the window ------------------------------------------------------------

def test_announcing_starts_the_standstill_without_changing_any_owner(session, clock, make_rep,
                                                                      announce):
    owner = make_rep()
    round_ = announce([make_rep(), make_rep()], listings=2, owner=owner)
    assert round_.status == RoundStatus.STANDSTILL
    assert round_.results_published_at == START
    assert round_.standstill_ends_at == WINDOW_ENDS
    assert [listing.status for listing in round_.listings] == [ListingStatus.DECIDED] * 2
    assert all(listing.applied_at is None for listing in round_.listings)
    assert filings(session) == []
    assert all(owner_of(session, listing) == owner.id for listing in round_.listings)
    assert len(notices(session, "results_published")) == 4  # every bid is told its result
    assert "round.results_announced" in actions(session)
    assert appeals.appeal_window_open(round_, START)


def test_the_window_closes_exactly_at_its_end(session, clock, make_rep, announce):
    first, second = make_rep(), make_rep()
    round_ = announce([first, second])
    listing = round_.listings[0]
    assert appeals.appeal_window_open(round_, WINDOW_ENDS - timedelta(microseconds=1))
    assert not appeals.appeal_window_open(round_, WINDOW_ENDS)
    loser = next(rep for rep in (first, second)
                 if rep.id != winner_of(session, listing.id).rep_id)
    appeals.file_appeal(session, loser, listing.id, ground=GROUND,
                        now=WINDOW_ENDS - timedelta(seconds=1))
    winner = winner_of(session, listing.id).rep
    with pytest.raises(InvalidRequest, match="window for this round has closed"):
        appeals.file_appeal(session, winner, listing.id, ground=GROUND, now=WINDOW_ENDS)
    assert session.scalar(select(func.count()).select_from(Appeal)) == 1


def test_results_take_effect_at_the_end_of_the_window_not_before(session, clock, make_rep,
                                                                 announce):
    round_ = announce([make_rep(), make_rep()], listings=2)
    assert appeals.apply_due_listings(session, WINDOW_ENDS - timedelta(microseconds=1)) == []
    assert filings(session) == []
    applied = appeals.apply_due_listings(session, WINDOW_ENDS)
    assert applied == [listing.id for listing in round_.listings]
    reload(session)
    round_ = session.get(Round, round_.id)
    assert round_.status == RoundStatus.RESULTS_PUBLISHED
    assert round_.results_published_at == START  # the announcement time stays visible
    for listing in round_.listings:
        assert listing.status == ListingStatus.AWARDED and listing.applied_at == WINDOW_ENDS
        assert owner_of(session, listing) == winner_of(session, listing.id).rep_id
    assert [filing.listing_id for filing in filings(session)] == applied
    assert all(filing.appeals is None for filing in filings(session))
    assert verify_ledger(session).is_intact


def test_during_the_standstill_the_account_stays_on_the_market_and_counts_for_capacity(
        session, clock, make_rep, make_manager, announce):
    bidder = make_rep()
    round_ = announce([bidder])
    listing = round_.listings[0]
    with pytest.raises(TransferRefused):
        transfer_account(session, make_manager(), account_id=listing.account_id,
                         to_rep_id=make_rep().id, reason="Owner moves to another region.",
                         review_text="Handover planned with the client.", now=clock())
    from bidhub.services.ownership import commitments_of
    assert commitments_of(session, [bidder.id])[bidder.id].pending == 1


def test_publishing_twice_is_refused_during_the_standstill(session, clock, make_rep,
                                                           make_manager, announce):
    round_ = announce([make_rep()])
    with pytest.raises(Conflict, match="published already"):
        adjudication.publish_results(session, make_manager(), round_.id,
                                     expected_version=round_.version, now=clock())


# --- filing appeals ------------------------------------------------------------------------------

def test_one_appeal_per_bidder_per_listing(session, clock, make_rep, announce):
    first, second, winner = make_rep(), make_rep(), make_rep()
    round_ = announce([first, second, winner], listings=2, winner=winner)
    one, two = round_.listings
    appeal = appeals.file_appeal(session, first, one.id, ground=f"  {GROUND}  ", now=clock())
    assert (appeal.status, appeal.ground, appeal.filed_at) == (AppealStatus.PENDING, GROUND,
                                                                clock())
    with pytest.raises(Conflict, match="appealed this result already"):
        appeals.file_appeal(session, first, one.id, ground=GROUND + " Again.", now=clock())
    appeals.file_appeal(session, second, one.id, ground=GROUND, now=clock())
    appeals.file_appeal(session, first, two.id, ground=GROUND, now=clock())
    assert len(appeals.appeals_of_listing(session, one.id)) == 2
    assert [a.listing_id for a in appeals.pending_appeals(session, round_.id)] == [one.id,
                                                                                 one.id, two.id]
    # The database refuses a second appeal too, whatever path writes it.
    session.add(Appeal(listing_id=one.id, appellant_id=first.id, ground=GROUND, filed_at=clock()))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()
    assert actions(session).count("appeal.filed") == 3


def test_management_is_told_of_an_appeal(session, clock, make_rep, make_manager, announce):
    managers = [make_manager(), make_manager()]
    rep, winner = make_rep(), make_rep()
    round_ = announce([rep, winner], manager=managers[0], winner=winner)
    appeals.file_appeal(session, rep, round_.listings[0].id, ground=GROUND, now=clock())
    told = notices(session, "appeal_filed")
    assert {item.recipient_id for item in told} == {manager.id for manager in managers}
    assert told[0].link_endpoint == "manage.appeals"
    assert told[0].params["rep"] == rep.display_name


@pytest.mark.parametrize("who", ["stranger", "withdrawn", "manager"])
def test_only_a_rep_whose_bid_was_active_may_appeal(session, clock, make_rep, make_manager,
                                                     announce, who):
    bidder, withdrawn = make_rep(), make_rep()
    round_ = announce([bidder, withdrawn])
    listing = round_.listings[0]
    session.execute(update(Bid).where(Bid.rep_id == withdrawn.id)
                    .values(status=BidStatus.WITHDRAWN))
    session.commit()
    person = {"stranger": make_rep(), "withdrawn": withdrawn, "manager": make_manager()}[who]
    with pytest.raises(PermissionDenied, match="Only a rep who bid"):
        appeals.file_appeal(session, person, listing.id, ground=GROUND, now=clock())
    assert session.scalar(select(func.count()).select_from(Appeal)) == 0


def test_appeals_before_the_announcement_or_with_a_short_ground_are_refused(
        session, clock, make_rep, make_account, make_round, make_bid, announce):
    rep = make_rep()
    round_ = make_round(accounts=[make_account()], closes_at=clock() + timedelta(hours=1))
    make_bid(rep, round_.listings[0])
    with pytest.raises(InvalidRequest, match="not open to appeal"):
        appeals.file_appeal(session, rep, round_.listings[0].id, ground=GROUND, now=clock())
    winner = make_rep()
    announced = announce([rep, winner], winner=winner)
    with pytest.raises(InvalidRequest, match="at least 10 characters") as refused:
        appeals.file_appeal(session, rep, announced.listings[0].id, ground=" too short ",
                            now=clock())
    assert refused.value.field == "ground"
    with pytest.raises(NotFound):
        appeals.file_appeal(session, rep, 999_999, ground=GROUND, now=clock())
    assert session.scalar(select(func.count()).select_from(Appeal)) == 0


# --- answering ----------------------------------------------------------------------------------

def test_an_upheld_appeal_reopens_the_decision_and_it_is_decided_again(
        session, clock, make_rep, make_manager, announce):
    first, second = make_rep(), make_rep()
    manager = make_manager()
    round_ = announce([first, second], listings=2, manager=manager)
    listing, other = round_.listings
    old = winner_of(session, listing.id)
    loser_bid = session.scalars(select(Bid).where(Bid.listing_id == listing.id,
                                                  Bid.id != old.id)).one()
    appeal = appeals.file_appeal(session, loser_bid.rep, listing.id, ground=GROUND, now=clock())
    # Decisions are frozen during the standstill unless the listing goes back to decision.
    with pytest.raises(InvalidRequest, match="Decisions are taken after scoring"):
        adjudication.decide_listing(session, manager, other.id, kind=DecisionKind.NO_AWARD,
                                    bid_id=None, reason=REASON, now=clock(),
                                    expected_version=1)
    clock.advance(hours=2)
    answered = appeals.answer_appeal(session, manager, appeal.id, upheld=True, answer=ANSWER,
                                     expected_version=appeal.version, now=clock())
    assert (answered.status, answered.answer, answered.answered_by_id) == (
        AppealStatus.UPHELD, ANSWER, manager.id)
    reload(session)
    assert session.get(Listing, listing.id).status == ListingStatus.LISTED
    assert session.scalars(select(Decision).where(Decision.listing_id == listing.id)).first() is None
    audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "appeal.upheld")).one()
    assert audit.before["decision"]["bid"] == old.id  # the old decision is kept in the audit
    told = notices(session, "appeal_answered")
    assert [item.recipient_id for item in told] == [loser_bid.rep_id]
    assert told[0].link_args == {"bid_id": loser_bid.id} and "upheld" in told[0].msgid
    decision = adjudication.decide_listing(
        session, manager, listing.id, kind=DecisionKind.OVERRIDDEN, bid_id=loser_bid.id,
        reason="The appeal showed the plan covers every plant.", now=clock())
    assert decision.bid_id == loser_bid.id
    # Taking effect: the new decision, with the appeal and its answer in the filing.
    appeals.apply_due_listings(session, WINDOW_ENDS)
    reload(session)
    filing = session.scalars(select(Filing).where(Filing.listing_id == listing.id)).one()
    assert filing.to_rep_id == loser_bid.rep_id
    assert filing.override_reason == "The appeal showed the plan covers every plant."
    assert filing.appeals == [{"appellant_id": loser_bid.rep_id, "ground": GROUND,
                               "status": "upheld", "answer": ANSWER,
                               "answered_by_id": manager.id}]


def test_a_rejected_appeal_leaves_the_decision_and_tells_the_appellant(
        session, clock, make_rep, make_manager, announce):
    rep, winner, manager = make_rep(), make_rep(), make_manager()
    round_ = announce([rep, winner], manager=manager, winner=winner)
    listing = round_.listings[0]
    decision = winner_of(session, listing.id)
    appeal = appeals.file_appeal(session, rep, listing.id, ground=GROUND, now=clock())
    version = appeal.version
    with pytest.raises(PermissionDenied):
        appeals.answer_appeal(session, rep, appeal.id, upheld=True, answer=ANSWER,
                              expected_version=version, now=clock())
    with pytest.raises(InvalidRequest, match="answer to the appellant") as short:
        appeals.answer_appeal(session, manager, appeal.id, upheld=False, answer="No.",
                              expected_version=version, now=clock())
    assert short.value.field == "answer"
    with pytest.raises(Conflict, match="changed since you opened it"):
        appeals.answer_appeal(session, manager, appeal.id, upheld=False, answer=ANSWER,
                              expected_version=version + 1, now=clock())
    appeals.answer_appeal(session, manager, appeal.id, upheld=False, answer=ANSWER,
                          expected_version=version, now=clock())
    with pytest.raises(Conflict, match="answered in the meantime"):
        appeals.answer_appeal(session, manager, appeal.id, upheld=True, answer=ANSWER,
                              expected_version=version + 1, now=clock())
    reload(session)
    assert session.get(Listing, listing.id).status == ListingStatus.DECIDED
    assert winner_of(session, listing.id).id == decision.id
    told = notices(session, "appeal_answered")
    assert [item.recipient_id for item in told] == [rep.id] and "rejected" in told[0].msgid
    assert appeals.pending_appeals(session) == []


# --- taking effect ------------------------------------------------------------------------------

def test_a_pending_appeal_holds_only_its_listing(session, clock, make_rep, make_manager,
                                                 announce):
    rep, winner, manager = make_rep(), make_rep(), make_manager()
    round_ = announce([rep, winner], listings=2, manager=manager, winner=winner)
    held, free = round_.listings
    appeal = appeals.file_appeal(session, rep, held.id, ground=GROUND, now=clock())
    assert appeals.apply_due_listings(session, WINDOW_ENDS + timedelta(days=1)) == [free.id]
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.STANDSTILL
    assert session.get(Listing, held.id).status == ListingStatus.DECIDED
    assert [filing.listing_id for filing in filings(session)] == [free.id]
    appeals.answer_appeal(session, manager, appeal.id, upheld=False, answer=ANSWER,
                          expected_version=appeal.version, now=WINDOW_ENDS + timedelta(days=2))
    at = WINDOW_ENDS + timedelta(days=2, seconds=30)
    assert appeals.apply_due_listings(session, at) == [held.id]
    reload(session)
    round_ = session.get(Round, round_.id)
    assert round_.status == RoundStatus.RESULTS_PUBLISHED
    assert session.get(Listing, held.id).applied_at == at
    filing = filings(session)[-1]
    assert filing.listing_id == held.id
    assert filing.appeals == [{"appellant_id": rep.id, "ground": GROUND, "status": "rejected",
                               "answer": ANSWER, "answered_by_id": manager.id}]
    assert verify_ledger(session).is_intact


def test_tampering_with_a_filed_appeal_answer_is_detected(app, backend, session, clock,
                                                          make_rep, make_manager, announce):
    rep, winner, manager = make_rep(), make_rep(), make_manager()
    round_ = announce([rep, winner], manager=manager, winner=winner)
    listing = round_.listings[0]
    appeal = appeals.file_appeal(session, rep, listing.id, ground=GROUND, now=clock())
    appeals.answer_appeal(session, manager, appeal.id, upheld=False, answer=ANSWER,
                          expected_version=appeal.version, now=clock())
    appeals.apply_due_listings(session, WINDOW_ENDS)
    reload(session)
    filing = filings(session)[0]
    assert verify_ledger(session).is_intact
    edited = ("REPLACE(CAST(appeals AS TEXT), 'the ranking stands', 'the account is yours')")
    tamper(app, backend, f"UPDATE filings SET appeals = "
           f"{edited + '::json' if backend == 'postgresql' else edited} WHERE seq = {filing.seq}")
    reload(session)
    assert "the account is yours" in session.get(Filing, filing.seq).appeals[0]["answer"]
    report = verify_ledger(session)
    assert not report.is_intact
    assert report.first_problem.seq == filing.seq
    assert "hash" in str(report.first_problem.problem)


def other_bid(session, listing_id: int, bid_id: int) -> Bid:
    return next(bid for bid in session.scalars(select(Bid).where(Bid.listing_id == listing_id))
                if bid.id != bid_id)


@pytest.mark.parametrize("kind", [DecisionKind.ACCEPTED, DecisionKind.OVERRIDDEN])
def test_a_decided_winner_changed_behind_the_apps_back_is_reported_during_the_window(
        app, session, clock, make_rep, make_manager, make_account, make_round, make_bid,
        kind):
    """The announced winner is what reps may appeal; a decision's bid edited by SQL during the
    window is reported by rescore --verify at once, not found (or not) once it took effect."""
    from bidhub.services.replays import verify_round

    manager = make_manager()
    round_ = make_round(accounts=[make_account(owner=make_rep())],
                        closes_at=clock() + timedelta(hours=1),
                        opens_at=clock() - timedelta(hours=2), manager=manager)
    listing = round_.listings[0]
    for rep in (make_rep(), make_rep(), make_rep()):
        make_bid(rep, listing)
    at = clock()
    clock.advance(hours=1)
    assert adjudication.score_closed_round(session, round_.id, clock())
    proposed = next(bid for bid in adjudication.ranked_bids(session, listing.id)
                    if bid.score.is_proposed_winner)
    chosen = None if kind == DecisionKind.ACCEPTED else other_bid(session, listing.id, proposed.id).id
    adjudication.decide_listing(session, manager, listing.id, kind=kind, bid_id=chosen,
                                reason="" if chosen is None else "Knows the client's plants.",
                                now=clock())
    clock.set(at)
    round_ = session.get(Round, round_.id)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    reload(session)
    assert verify_round(session, round_.id) == []

    decided = winner_of(session, listing.id)
    forged = next(bid for bid in session.scalars(select(Bid).where(Bid.listing_id == listing.id))
                  if bid.id not in (decided.id, proposed.id))
    with engine_of(app).begin() as connection:
        connection.execute(update(Decision).where(Decision.listing_id == listing.id)
                           .values(bid_id=forged.id))
    reload(session)
    problems = [str(problem) for problem in verify_round(session, round_.id)]
    assert problems and all(f"listing {listing.id}" in problem for problem in problems), problems
    # Left alone, the forged award never takes effect: it goes back to decision, unfiled.
    owner = owner_of(session, listing)
    assert appeals.apply_due_listings(session, WINDOW_ENDS) == []
    reload(session)
    assert session.get(Listing, listing.id).status == ListingStatus.LISTED
    assert owner_of(session, listing) == owner and filings(session) == []
    assert verify_ledger(session).is_intact


def test_a_decision_changed_behind_the_apps_back_never_takes_effect(
        app, session, clock, login_as, make_rep, make_manager, announce):
    """At the end of the window the round's decisions are checked as rescore --verify checks
    them: a forged one is refused (nothing moves, nothing is filed), the audit keeps it and
    why, KA management is told and the round page says so; the rest of the round applies."""
    from bidhub.domain.messages import loads
    from bidhub.domain.text import Text
    from bidhub.services.replays import verify_round
    from bidhub.web.i18n import translate

    manager, owner = make_manager(), make_rep()
    strong, weak = make_rep(), make_rep()
    round_ = announce([strong, weak], listings=2, owner=owner, manager=manager)
    forged_listing, kept = round_.listings
    decided = winner_of(session, forged_listing.id)
    forged = next(bid for bid in session.scalars(
        select(Bid).where(Bid.listing_id == forged_listing.id)) if bid.id != decided.id)
    with engine_of(app).begin() as connection:
        connection.execute(update(Decision).where(Decision.listing_id == forged_listing.id)
                           .values(bid_id=forged.id))
    reload(session)

    assert appeals.apply_due_listings(session, WINDOW_ENDS) == [kept.id]
    reload(session)
    assert session.get(Listing, forged_listing.id).status == ListingStatus.LISTED
    assert owner_of(session, forged_listing) == owner.id
    assert [filing.listing_id for filing in filings(session)] == [kept.id]
    assert session.get(Listing, kept.id).status == ListingStatus.AWARDED
    assert session.get(Round, round_.id).status == RoundStatus.STANDSTILL
    [event] = session.scalars(select(AuditEvent).where(
        AuditEvent.action == "listing.apply_refused")).all()
    assert event.target == f"listing:{forged_listing.id}" and event.after["check"] == "decision"
    assert event.before["decision"]["bid"] == forged.id
    problem = str(loads(event.after["problem"]))
    assert problem.startswith(f"listing {forged_listing.id}: the decision (accepted) names bid "
                              f"{forged.id}, but what it was made from gives {decided.id}")
    [told] = notices(session, "award_refused")
    assert told.recipient_id == manager.id
    assert "no longer matches what it was made from" in str(Text(told.msgid, told.params))
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert "与裁定依据不再一致" in str(translate(Text(told.msgid, told.params)))
    # A second run finds nothing more to do and says nothing twice.
    assert appeals.apply_due_listings(session, WINDOW_ENDS + timedelta(minutes=1)) == []
    assert actions(session).count("listing.apply_refused") == 1

    client = login_as(manager)
    for language, words in (("en", "its decision was changed outside bidhub"),
                            ("zh-CN", "其裁定在 bidhub 之外被改动")):
        page = client.get(f"/manage/rounds/{round_.id}",
                          headers={"Accept-Language": language}).get_data(as_text=True)
        assert f'id="changed-decision-{forged_listing.id}"' in page
        assert words in page
        assert f'id="changed-decision-{kept.id}"' not in page

    # Decided again, it takes effect at the next run and the round's results are in force.
    adjudication.decide_listing(session, manager, forged_listing.id, kind=DecisionKind.ACCEPTED,
                                bid_id=None, reason="", now=WINDOW_ENDS)
    assert appeals.apply_due_listings(session, WINDOW_ENDS + timedelta(minutes=2)) == [
        forged_listing.id]
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.RESULTS_PUBLISHED
    assert owner_of(session, forged_listing) == decided.rep_id
    # The decision in force reproduces; the one refused is still reported, from the audit.
    [reported] = [str(problem) for problem in verify_round(session, round_.id)]
    assert reported.startswith(problem + " (found when the results were due to take effect")
    assert verify_ledger(session).is_intact


def test_a_refused_decision_stays_reported_after_the_listing_is_decided_again(
        app, session, clock, login_as, make_rep, make_manager, announce):
    """Once refused, the forged decision is gone from the decisions table; rescore --verify
    and the round page still report it from the audit record, after the listing is decided
    again and after the round's results are all in force, so the evidence does not vanish."""
    manager, owner = make_manager(), make_rep()
    strong, weak = make_rep(), make_rep()
    round_ = announce([strong, weak], listings=2, owner=owner, manager=manager)
    forged_listing, kept = round_.listings
    decided = winner_of(session, forged_listing.id)
    forged = next(bid for bid in session.scalars(
        select(Bid).where(Bid.listing_id == forged_listing.id)) if bid.id != decided.id)
    with engine_of(app).begin() as connection:
        connection.execute(update(Decision).where(Decision.listing_id == forged_listing.id)
                           .values(bid_id=forged.id))
    reload(session)
    assert appeals.apply_due_listings(session, WINDOW_ENDS) == [kept.id]
    adjudication.decide_listing(session, manager, forged_listing.id, kind=DecisionKind.ACCEPTED,
                                bid_id=None, reason="", now=WINDOW_ENDS)
    assert appeals.apply_due_listings(session, WINDOW_ENDS + timedelta(minutes=2)) == [
        forged_listing.id]
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.RESULTS_PUBLISHED

    found = (f"listing {forged_listing.id}: the decision (accepted) names bid {forged.id}, but "
             f"what it was made from gives {decided.id}")
    result = app.test_cli_runner().invoke(args=["rescore", "--verify", str(round_.id)])
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line == (f"{found} (found when the results were due to take effect, at "
                    f"{WINDOW_ENDS.astimezone(UTC):%Y-%m-%d %H:%M} UTC, and refused: it never "
                    "took effect, and the audit log keeps the decision as it was found)")
    assert f"listing {kept.id}" not in result.output

    client = login_as(manager)
    page = client.get(f"/manage/rounds/{round_.id}").get_data(as_text=True)
    section = page[page.index('id="refused-decisions"'):]
    section = section[:section.index("</section>")]
    assert forged_listing.account.name in section and kept.account.name not in section
    assert found in section
    assert "changed outside bidhub" in section
    chinese = client.get(f"/manage/rounds/{round_.id}", headers={"Accept-Language": "zh-CN"}
                         ).get_data(as_text=True)
    section = chinese[chinese.index('id="refused-decisions"'):]
    assert "在 bidhub 之外被改动" in section[:section.index("</section>")]
    # A filter that leaves the listing out of the table leaves the record on the page.
    filtered = client.get(f"/manage/rounds/{round_.id}?q=no-such-account-anywhere"
                          ).get_data(as_text=True)
    assert f'id="effect-{forged_listing.id}"' not in filtered
    assert 'id="refused-decisions"' in filtered


def test_a_round_without_a_refused_decision_shows_no_such_section(
        app, session, login_as, make_rep, make_manager, announce):
    manager = make_manager()
    round_ = announce([make_rep()], manager=manager)
    assert appeals.apply_due_listings(session, WINDOW_ENDS) == [round_.listings[0].id]
    page = login_as(manager).get(f"/manage/rounds/{round_.id}").get_data(as_text=True)
    assert 'id="refused-decisions"' not in page


def test_a_listing_with_no_award_takes_effect_without_a_filing(session, clock, make_rep,
                                                               make_manager, make_account,
                                                               make_round, make_bid):
    manager = make_manager()
    round_ = make_round(accounts=[make_account(), make_account()],
                        closes_at=clock() + timedelta(hours=1))
    make_bid(make_rep(), round_.listings[0])
    clock.advance(hours=1)
    adjudication.score_closed_round(session, round_.id, clock())
    adjudication.decide_listing(session, manager, round_.listings[0].id,
                                kind=DecisionKind.NO_AWARD, bid_id=None, reason=REASON,
                                now=clock())
    round_ = session.get(Round, round_.id)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    reload(session)
    ends = session.get(Round, round_.id).standstill_ends_at
    assert len(appeals.apply_due_listings(session, ends)) == 2
    reload(session)
    assert [listing.status for listing in session.get(Round, round_.id).listings] == [
        ListingStatus.NOT_AWARDED] * 2  # the no-bid default too
    assert filings(session) == []


def test_an_award_past_capacity_at_apply_time_goes_back_to_decision(
        session, clock, make_rep, make_manager, give_accounts, announce):
    winner, manager = make_rep(), make_manager()
    give_accounts(winner, 38)
    round_ = announce([winner], listings=2, manager=manager)
    # A CRM import records owners as the CRM has them, whatever the count: the winner now holds
    # one account more than the two announced awards leave room for.
    give_accounts(winner, 1)
    applied = appeals.apply_due_listings(session, WINDOW_ENDS)
    reload(session)
    # The first award counts the second, still waiting, so it is the one refused.
    second, first = session.get(Round, round_.id).listings
    assert applied == [first.id]
    assert second.status == ListingStatus.LISTED
    assert session.get(Account, second.account_id).owner_id != winner.id
    assert session.get(Round, round_.id).status == RoundStatus.STANDSTILL
    assert "listing.apply_refused" in actions(session)
    told = notices(session, "award_refused")
    assert [item.recipient_id for item in told] == [manager.id]
    # Management decides it again during the standstill; the next run applies it.
    adjudication.decide_listing(session, manager, second.id, kind=DecisionKind.NO_AWARD,
                                bid_id=None, reason="The winner is at capacity now.",
                                now=WINDOW_ENDS)
    assert appeals.apply_due_listings(session, WINDOW_ENDS + timedelta(seconds=30)) == [second.id]
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.RESULTS_PUBLISHED


# --- cancellation -------------------------------------------------------------------------------

def test_a_cancelled_listing_never_transfers(session, clock, make_rep, make_manager, announce):
    manager = make_manager()
    round_ = announce([make_rep()], listings=2, manager=manager)
    cancelled, kept = round_.listings
    with pytest.raises(PermissionDenied):
        appeals.cancel_listing(session, make_rep(), cancelled.id, reason=REASON, now=clock())
    with pytest.raises(InvalidRequest, match="reason"):
        appeals.cancel_listing(session, manager, cancelled.id, reason="short", now=clock())
    listing = appeals.cancel_listing(session, manager, cancelled.id, reason=REASON, now=clock())
    assert (listing.status, listing.cancelled_at, listing.cancelled_by_id,
            listing.cancel_reason) == (ListingStatus.CANCELLED, clock(), manager.id, REASON)
    with pytest.raises(Conflict, match="cancelled already"):
        appeals.cancel_listing(session, manager, cancelled.id, reason=REASON, now=clock())
    assert appeals.apply_due_listings(session, WINDOW_ENDS) == [kept.id]
    reload(session)
    assert [filing.listing_id for filing in filings(session)] == [kept.id]
    assert session.get(Round, round_.id).status == RoundStatus.RESULTS_PUBLISHED
    with pytest.raises(InvalidRequest, match="took effect already"):
        appeals.cancel_listing(session, manager, kept.id, reason=REASON, now=WINDOW_ENDS)
    assert "listing.cancelled" in actions(session)


def test_a_cancelled_round_never_transfers_and_an_applied_one_cannot_be_cancelled(
        session, clock, make_rep, make_manager, announce):
    manager = make_manager()
    round_ = announce([make_rep()], listings=2, manager=manager)
    with pytest.raises(Conflict, match="changed this round"):
        appeals.cancel_round(session, manager, round_.id, reason=REASON,
                             expected_version=round_.version + 1, now=clock())
    cancelled = appeals.cancel_round(session, manager, round_.id, reason=REASON,
                                     expected_version=round_.version, now=clock())
    assert (cancelled.status, cancelled.cancel_reason) == (RoundStatus.CANCELLED, REASON)
    assert [listing.status for listing in cancelled.listings] == [ListingStatus.CANCELLED] * 2
    assert appeals.apply_due_listings(session, WINDOW_ENDS) == []
    assert filings(session) == []
    other = announce([make_rep()], manager=manager)
    appeals.apply_due_listings(session, WINDOW_ENDS)
    reload(session)
    other = session.get(Round, other.id)
    with pytest.raises(InvalidRequest, match="in force already"):
        appeals.cancel_round(session, manager, other.id, reason=REASON,
                             expected_version=other.version, now=WINDOW_ENDS)
    assert actions(session).count("round.cancelled") == 1


def test_a_round_can_be_cancelled_before_its_results(session, clock, make_manager, make_account,
                                                      make_round):
    manager = make_manager()
    round_ = make_round(accounts=[make_account()])
    appeals.cancel_round(session, manager, round_.id, reason=REASON,
                         expected_version=round_.version, now=clock())
    reload(session)
    assert session.get(Listing, round_.listings[0].id).status == ListingStatus.CANCELLED


# --- exactly once: the scheduler, a restart, two at once ----------------------------------------

def test_the_scheduler_job_applies_once(app, session, clock, make_rep, announce):
    round_ = announce([make_rep()])
    clock.set(WINDOW_ENDS + timedelta(days=5))  # the service was down when the window ended
    assert scheduler.apply_due_listings_job(app) == [round_.listings[0].id]
    assert scheduler.apply_due_listings_job(app) == []
    reload(session)
    assert len(filings(session)) == 1


def test_a_restart_catches_up_exactly_once(app, app_config, session, clock, make_rep, announce):
    round_ = announce([make_rep()], listings=2)
    clock.set(WINDOW_ENDS + timedelta(days=5))
    second_app = create_app(app_config)  # a second instance, or the service restarted
    started = []
    try:
        started.append(scheduler.start(app))
        started.append(scheduler.start(second_app))
        started.append(scheduler.start(app))
    finally:
        for running in started:
            running.shutdown()  # its threads give the lease up before the engine goes
        engine_of(second_app).dispose()
    reload(session)
    assert sorted(filing.listing_id for filing in filings(session)) == [
        listing.id for listing in round_.listings]
    assert session.get(Round, round_.id).status == RoundStatus.RESULTS_PUBLISHED
    assert actions(session).count("round.listings_applied") == 1


def test_the_apply_command_puts_due_results_in_force_once(app, session, clock, make_rep,
                                                          announce):
    round_ = announce([make_rep()], listings=2)
    runner = app.test_cli_runner()
    early = runner.invoke(args=["apply-due-results"])
    assert early.exit_code == 0 and "none" in early.output
    clock.set(WINDOW_ENDS + timedelta(minutes=1))
    applied = runner.invoke(args=["apply-due-results"])
    assert applied.exit_code == 0
    assert applied.output.strip().endswith(", ".join(str(listing.id)
                                                     for listing in round_.listings))
    again = runner.invoke(args=["apply-due-results"])
    assert "none" in again.output
    reload(session)
    assert len(filings(session)) == 2


def test_two_schedulers_at_once_file_each_listing_once(app, session, clock, make_rep, announce):
    round_ = announce([make_rep(), make_rep()], listings=3)
    factory = app.extensions["bidhub_sessionmaker"]

    def apply():
        own = factory()
        try:
            return appeals.apply_due_listings(own, WINDOW_ENDS)
        finally:
            own.close()

    results = run_together([apply, apply, apply])
    assert not any(isinstance(result, Exception) for result in results), results
    assert sorted(sum(results, [])) == [listing.id for listing in round_.listings]
    reload(session)
    assert len(filings(session)) == 3
    assert verify_ledger(session).is_intact


# --- no window: today's behaviour ---------------------------------------------------------------

def test_without_a_window_publishing_transfers_at_once(app, session, clock, make_rep, announce):
    use_window(app, session, clock, 0)
    bidder = make_rep()
    round_ = announce([bidder])
    listing = round_.listings[0]
    assert round_.status == RoundStatus.RESULTS_PUBLISHED and round_.standstill_ends_at is None
    assert "round.results_announced" not in actions(session)
    assert listing.status == ListingStatus.AWARDED and listing.applied_at == START
    assert owner_of(session, listing) == bidder.id
    assert [filing.appeals for filing in filings(session)] == [None]
    assert not appeals.appeal_window_open(round_, START)
    with pytest.raises(InvalidRequest, match="not open to appeal"):
        appeals.file_appeal(session, bidder, listing.id, ground=GROUND, now=clock())
    assert "round.results_published" in actions(session)


def test_the_window_is_counted_in_working_days_of_the_configured_zone(app, session, clock,
                                                                      make_rep, announce):
    use_window(app, session, clock, 1)
    clock.set(datetime(2026, 3, 6, 9, 0, tzinfo=UTC))  # Friday 17:00 in Beijing
    round_ = announce([make_rep()])
    assert round_.standstill_ends_at == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)  # Monday 17:00



def test_the_same_appeal_twice_at_once_is_filed_once(app, session, clock, make_rep, announce):
    rep, winner = make_rep(), make_rep()
    round_ = announce([rep, winner], winner=winner)
    listing_id = round_.listings[0].id
    factory = app.extensions["bidhub_sessionmaker"]

    def file():
        own = factory()
        try:
            return appeals.file_appeal(own, own.get(type(rep), rep.id), listing_id,
                                       ground=GROUND, now=START)
        finally:
            own.close()

    results = run_together([file, file, file])
    assert sorted(type(result).__name__ for result in results) == ["Appeal", "Conflict",
                                                                   "Conflict"]
    reload(session)
    assert session.scalar(select(func.count()).select_from(Appeal)) == 1
    assert len(notices(session, "appeal_filed")) >= 1


def test_an_overlong_ground_is_refused(session, clock, make_rep, announce):
    rep, winner = make_rep(), make_rep()
    round_ = announce([rep, winner], winner=winner)
    with pytest.raises(InvalidRequest, match="at most 5000 characters") as refused:
        appeals.file_appeal(session, rep, round_.listings[0].id, ground="x" * 5001, now=clock())
    assert refused.value.field == "ground"


def test_a_cancelled_listing_with_a_pending_appeal_does_not_hold_the_round(
        session, clock, make_rep, make_manager, announce):
    rep, winner, manager = make_rep(), make_rep(), make_manager()
    round_ = announce([rep, winner], listings=2, manager=manager, winner=winner)
    held, other = round_.listings
    appeals.file_appeal(session, rep, held.id, ground=GROUND, now=clock())
    appeals.cancel_listing(session, manager, held.id, reason=REASON, now=clock())
    assert appeals.apply_due_listings(session, WINDOW_ENDS) == [other.id]
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.RESULTS_PUBLISHED
    assert session.get(Listing, held.id).status == ListingStatus.CANCELLED


def test_a_listing_cancelled_before_the_deadline_is_not_scored(
        session, clock, make_rep, make_manager, make_account, make_round, make_bid):
    rep, manager = make_rep(), make_manager()
    round_ = make_round(accounts=[make_account(), make_account()],
                        closes_at=clock() + timedelta(hours=1))
    cancelled, kept = round_.listings
    make_bid(rep, cancelled)
    make_bid(rep, kept)
    appeals.cancel_listing(session, manager, cancelled.id, reason=REASON, now=clock())
    clock.advance(hours=1)
    assert adjudication.score_closed_round(session, round_.id, clock())
    reload(session)
    scored = {bid.listing_id: bid.score for bid in session.scalars(select(Bid))}
    assert scored[cancelled.id] is None  # the bid stays, unscored
    assert scored[kept.id].is_proposed_winner
