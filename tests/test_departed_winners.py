"""An account never goes to a rep who left the company or was deactivated after the deadline:
deciding, publishing and the results taking effect after the standstill all check the winner
again, in the one ownership change, as it stands under its lock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bidhub import scheduler
from bidhub.domain.eligibility import Eligibility, check_bid
from bidhub.domain.errors import ReceiverUnavailable, TransferRefused
from bidhub.domain.facts import BidFacts
from bidhub.domain.scoring import ScoreBreakdown
from bidhub.domain.text import Text
from bidhub.models import (
    Account,
    Decision,
    DecisionKind,
    Filing,
    FilingKind,
    Listing,
    ListingStatus,
    RepStatus,
    Role,
    Round,
    RoundStatus,
)
from bidhub.services import adjudication, appeals
from bidhub.services.filings import transfer_account
from bidhub.services.imports import import_file
from bidhub.services.ledger import verify_ledger
from bidhub.services.ownership import OwnerChange, change_owners, pending_awards
from bidhub.services.replays import verify_round
from bidhub.services.track_records import bid_facts_from_dict, bid_facts_to_dict
from bidhub.services.users import update_user
from bidhub.web.i18n import translate
from tests.conftest import reload, user_form_fingerprint
from tests.test_appeals import actions, notices, use_window

REASON = "The winner left the company during the standstill window."


def award_filings(session) -> list[Filing]:
    return list(session.scalars(select(Filing).where(Filing.kind == FilingKind.ROUND_AWARD)
                                .order_by(Filing.seq)))


# How a rep departs, as `leave` and `leave_on_the_row` take it: leaving the company, or a
# user deactivated while the rep status stays active.
DEPARTURES = {"left": {}, "deactivated": {"status": RepStatus.ACTIVE, "is_active": False}}


def leave(session, admin, rep, clock, *, status: str = RepStatus.LEFT,
          is_active: bool = True) -> None:
    """An admin marks `rep` as left (or deactivates them) on the user form's use case."""
    update_user(session, admin, rep.id, display_name=rep.display_name, role=rep.role,
                branch_id=rep.branch_id, status=status, is_active=is_active, now=clock())
    reload(session)


def leave_on_the_row(session, rep, *, status: str = RepStatus.LEFT,
                     is_active: bool = True) -> None:
    """`rep` leaves (or is deactivated) written on the row alone: the user form and the reps
    import would send their pending awards back at once; this leaves them decided, for the
    checks at publishing and at the end of the window, which stand behind those."""
    rep = session.get(type(rep), rep.id)
    rep.status, rep.is_active = status, is_active
    session.commit()
    reload(session)


@pytest.fixture
def scored(session, clock, make_rep, make_manager, make_account, make_round, make_bid):
    """A scored round: each listing got a bid from every one of `bidders`, in that order of
    strength (the first has the longest plan and the highest commitment); the clock stays
    past the deadline."""

    def make(bidders, *, listings: int = 1, manager=None):
        owner, manager = make_rep(), manager or make_manager()
        round_ = make_round(accounts=[make_account(owner=owner) for _ in range(listings)],
                            closes_at=clock() + timedelta(hours=1),
                            opens_at=clock() - timedelta(hours=2), manager=manager)
        for listing in round_.listings:
            for rank, rep in enumerate(bidders):
                make_bid(rep, listing, revenue=900_000 - 100_000 * rank)
        clock.advance(hours=1)
        assert adjudication.score_closed_round(session, round_.id, clock())
        reload(session)
        return session.get(Round, round_.id), owner

    return make


def winner_bid(session, listing_id: int, rep) -> int:
    return next(bid.id for bid in adjudication.ranked_bids(session, listing_id)
                if bid.rep_id == rep.id)


def award(session, manager, listing_id: int, rep, now) -> None:
    """Award the listing to `rep`: accept the ranking if it proposes them, else override."""
    if proposed_rep(session, listing_id) == rep.id:
        adjudication.decide_listing(session, manager, listing_id, kind=DecisionKind.ACCEPTED,
                                    bid_id=None, reason="", now=now)
    else:
        adjudication.decide_listing(session, manager, listing_id, kind=DecisionKind.OVERRIDDEN,
                                    bid_id=winner_bid(session, listing_id, rep), reason=REASON,
                                    now=now)


def proposed_rep(session, listing_id: int) -> int:
    ranking = adjudication.ranked_bids(session, listing_id)
    return next(bid.rep_id for bid in ranking if bid.score.is_proposed_winner)


# --- scoring -----------------------------------------------------------------------------------

def scored_after_the_strongest_departs(session, clock, make_account, make_rep, make_round,
                                       make_bid, manager, admin, strongest, other, how):
    """A round of one account bid for by `strongest` and `other`, scored after `strongest`
    departs (`how`, as DEPARTURES names it) before the deadline: `other` is proposed, and
    `strongest`'s bid is ineligible. The round and that bid."""
    round_ = make_round(accounts=[make_account(owner=make_rep())],
                        closes_at=clock() + timedelta(hours=1),
                        opens_at=clock() - timedelta(hours=2), manager=manager)
    listing_id = round_.listings[0].id
    make_bid(strongest, round_.listings[0], revenue=900_000)
    make_bid(other, round_.listings[0], revenue=100_000)
    leave(session, admin, strongest, clock, **DEPARTURES[how])
    clock.advance(hours=1)
    assert adjudication.score_closed_round(session, round_.id, clock())
    reload(session)

    assert proposed_rep(session, listing_id) == other.id
    gone = next(bid for bid in adjudication.ranked_bids(session, listing_id)
                if bid.rep_id == strongest.id)
    assert not gone.score.is_eligible
    return round_, gone


@pytest.mark.parametrize(("how", "reason", "chinese"), [
    ("left", "has left the company and cannot receive accounts", "已离职"),
    ("deactivated", "deactivated and cannot receive accounts", "已停用"),
])
def test_a_rep_who_left_or_was_deactivated_before_the_deadline_is_ineligible_at_scoring(
        app, session, clock, make_rep, make_manager, make_admin, make_account, make_round,
        make_bid, how, reason, chinese):
    """A deactivated user may keep the rep status "active": scoring reads both, so the
    ranking proposes a rep who may receive the account, and says why the other may not."""
    manager, admin = make_manager(), make_admin()
    strongest, other = make_rep(name="Departing Rep"), make_rep(name="Staying Rep")
    round_, gone = scored_after_the_strongest_departs(
        session, clock, make_account, make_rep, make_round, make_bid, manager, admin, strongest,
        other, how)
    listing_id = round_.listings[0].id
    [failed] = ScoreBreakdown.from_dict(gone.score.breakdown).failed_checks
    assert (failed.name, str(failed.reason)) == ("on_duty", reason)
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert chinese in str(translate(failed.reason))
    review = adjudication.review_round(session, session.get(Round, round_.id))[listing_id]
    assert adjudication.Flag.WINNER_UNAVAILABLE not in review.flags
    # The fact is stored with the bid's inputs: the round replays as it was scored.
    assert gone.score.inputs["unavailable"] == ("left" if how == "left" else "inactive")
    assert verify_round(session, round_.id) == []


def test_inputs_stored_before_availability_was_read_replay_as_they_were_scored():
    """A bid scored before scoring read whether the rep may hold accounts has no such input:
    its on-leave flag alone decided, with the reason it was given then."""
    facts = BidFacts(bid_id=1, rep_id=2, listing_id=3, submitted_at=datetime(2026, 1, 5, tzinfo=UTC),
                     metrics={}, accounts_held=3, tenure_months=12.0, open_incidents=0,
                     rep_branch="BJ", listing_branch="BJ", is_on_leave=True)
    stored = bid_facts_to_dict(facts)
    del stored["unavailable"]
    [check] = [check for check in check_bid(Eligibility(), bid_facts_from_dict(stored))
               if check.name == "on_duty"]
    assert (check.passed, str(check.reason)) == (False, "on leave or no longer with the company")


def adopt_leave_blind_rules(app, session, clock) -> None:
    """Rounds made from now on are pinned to the default rules with `exclude_on_leave` off."""
    from bidhub.services.rule_sets import adopt_rule_set, default_rules_path

    text = default_rules_path(app.config).read_text("utf-8")
    assert "exclude_on_leave = true" in text
    adopt_rule_set(session, None, text.replace("exclude_on_leave = true", "exclude_on_leave = false"),
                   "leave does not count", "", clock())
    session.commit()


@pytest.mark.parametrize(("how", "reason"), [
    ("left", "has left the company and cannot receive accounts"),
    ("deactivated", "deactivated and cannot receive accounts"),
])
def test_with_leave_not_counted_a_rep_who_left_is_still_never_proposed(
        app, session, clock, make_rep, make_manager, make_admin, make_account, make_round,
        make_bid, give_accounts, how, reason):
    """`exclude_on_leave = false` lets reps on leave win; it never lets a rep who left the
    company or was deactivated be proposed for an account they could not receive."""
    adopt_leave_blind_rules(app, session, clock)
    manager, admin = make_manager(), make_admin()
    strongest, other = make_rep(name="Departing Rep"), make_rep(name="Staying Rep")
    give_accounts(other, 30)  # less room to cultivate: the departing rep scores higher
    round_, gone = scored_after_the_strongest_departs(
        session, clock, make_account, make_rep, make_round, make_bid, manager, admin, strongest,
        other, how)
    listing_id = round_.listings[0].id
    [failed] = ScoreBreakdown.from_dict(gone.score.breakdown).failed_checks
    assert (failed.name, str(failed.reason)) == ("on_duty", reason)
    review = adjudication.review_round(session, session.get(Round, round_.id))[listing_id]
    assert adjudication.Flag.WINNER_UNAVAILABLE not in review.flags
    assert review.accepts_unflagged
    # The staying rep's breakdown lists no leave check: leave does not count under these rules.
    staying = next(bid for bid in adjudication.ranked_bids(session, listing_id)
                   if bid.rep_id == other.id)
    assert "on_duty" not in {check["name"] for check in staying.score.breakdown["checks"]}
    assert verify_round(session, round_.id) == []


def test_with_leave_not_counted_a_rep_on_leave_may_still_be_proposed(
        app, session, clock, make_rep, make_manager, make_admin, make_account, make_round,
        make_bid, give_accounts):
    adopt_leave_blind_rules(app, session, clock)
    manager, admin = make_manager(), make_admin()
    resting, other = make_rep(name="Resting Rep"), make_rep(name="Working Rep")
    give_accounts(other, 30)
    round_ = make_round(accounts=[make_account(owner=make_rep())],
                        closes_at=clock() + timedelta(hours=1),
                        opens_at=clock() - timedelta(hours=2), manager=manager)
    listing_id = round_.listings[0].id
    make_bid(resting, round_.listings[0], revenue=900_000)
    make_bid(other, round_.listings[0], revenue=100_000)
    leave(session, admin, resting, clock, status=RepStatus.ON_LEAVE)
    clock.advance(hours=1)
    assert adjudication.score_closed_round(session, round_.id, clock())
    reload(session)

    assert proposed_rep(session, listing_id) == resting.id
    assert verify_round(session, round_.id) == []


def test_inputs_stored_before_departures_always_counted_replay_as_they_were_scored():
    """A bid scored while `exclude_on_leave = false` let a departed rep pass has inputs without
    the marker: it replays as it was scored (passing), so the stored round still verifies."""
    facts = BidFacts(bid_id=1, rep_id=2, listing_id=3, submitted_at=datetime(2026, 1, 5, tzinfo=UTC),
                     metrics={}, accounts_held=3, tenure_months=12.0, open_incidents=0,
                     rep_branch="BJ", listing_branch="BJ", is_on_leave=True, unavailable="left")
    stored = bid_facts_to_dict(facts)
    stored.pop("is_departure_checked", None)
    leave_blind = Eligibility(exclude_on_leave=False)
    assert [check.name for check in check_bid(leave_blind, bid_facts_from_dict(stored))] == [
        "capacity"]
    checked = bid_facts_from_dict({**stored, "is_departure_checked": True})
    assert [(check.name, check.passed) for check in check_bid(leave_blind, checked)] == [
        ("capacity", True), ("on_duty", False)]


# --- deciding ----------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["left", "deactivated"])
def test_a_winner_who_left_after_scoring_cannot_be_awarded(
        session, clock, make_rep, make_manager, make_admin, scored, how):
    manager, admin = make_manager(), make_admin()
    first, second = make_rep(name="Departing Rep"), make_rep(name="Staying Rep")
    round_, _owner = scored([first, second], manager=manager)
    listing_id = round_.listings[0].id
    winner = session.get(type(first), proposed_rep(session, listing_id))
    other = second if winner.id == first.id else first
    leave(session, admin, winner, clock, **DEPARTURES[how])

    # The round page's review flags it and says why; accepting it in bulk leaves it out.
    review = adjudication.review_round(session, session.get(Round, round_.id))[listing_id]
    assert adjudication.Flag.WINNER_UNAVAILABLE in review.flags
    assert winner.display_name in str(review.winner_refusal)
    assert adjudication.unflagged_listing_ids({listing_id: review}) == []

    for kind, bid_id, reason in ((DecisionKind.ACCEPTED, None, ""),
                                 (DecisionKind.OVERRIDDEN, winner_bid(session, listing_id, winner),
                                  REASON)):
        with pytest.raises(ReceiverUnavailable) as refused:
            adjudication.decide_listing(session, manager, listing_id, kind=kind, bid_id=bid_id,
                                        reason=reason, now=clock())
        message = str(refused.value.message)
        assert winner.display_name in message and "Choose another bidder" in message
        assert refused.value.field == "bid_id"
        reload(session)
        assert session.scalars(select(Decision)).all() == []

    # Management decides again: another bidder, with a written reason.
    decision = adjudication.decide_listing(
        session, manager, listing_id, kind=DecisionKind.OVERRIDDEN,
        bid_id=winner_bid(session, listing_id, other), reason=REASON, now=clock())
    assert decision.kind == DecisionKind.OVERRIDDEN
    review = adjudication.review_round(session, session.get(Round, round_.id))[listing_id]
    assert review.winner_refusal is None
    assert adjudication.Flag.WINNER_UNAVAILABLE not in review.flags


def test_a_rep_on_leave_may_still_be_awarded(session, clock, make_rep, make_manager,
                                             make_admin, scored):
    """Leave is temporary: whether a bid from a rep on leave may win is the rules' question at
    the deadline (exclude_on_leave), not the ownership change's."""
    manager, admin = make_manager(), make_admin()
    rep = make_rep()
    round_, _owner = scored([rep], manager=manager)
    leave(session, admin, rep, clock, status=RepStatus.ON_LEAVE)
    listing_id = round_.listings[0].id
    assert adjudication.review_round(
        session, session.get(Round, round_.id))[listing_id].winner_refusal is None
    adjudication.decide_listing(session, manager, listing_id, kind=DecisionKind.ACCEPTED,
                                bid_id=None, reason="", now=clock())
    round_ = session.get(Round, round_.id)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    reload(session)
    assert appeals.apply_due_listings(session, clock() + timedelta(days=7)) == [listing_id]
    reload(session)
    assert session.get(Account, session.get(Listing, listing_id).account_id).owner_id == rep.id


def test_the_round_page_flags_the_winner_and_offers_only_who_may_receive(
        session, clock, login_as, make_rep, make_manager, make_admin, scored):
    manager, admin = make_manager(), make_admin()
    first, second = make_rep(name="Gone Rep"), make_rep(name="Here Rep")
    round_, _owner = scored([first, second], manager=manager)
    listing_id = round_.listings[0].id
    winner = session.get(type(first), proposed_rep(session, listing_id))
    leave(session, admin, winner, clock)
    client = login_as(manager)
    page = client.get(f"/manage/rounds/{round_.id}").get_data(as_text=True)
    row = page[page.index(f'id="decision-{listing_id}"'):]
    row = row[:row.index("</tr>")]
    assert 'data-flag="winner_unavailable"' in row
    assert f'name="kind" value="{DecisionKind.ACCEPTED.value}"' not in row  # no Accept button
    override = row[row.index("<select"):row.index("</select>")]
    assert winner.display_name not in override
    # A stale page's Accept is refused in its row, with the reason, and decides nothing.
    response = client.post(f"/manage/listings/{listing_id}/decide",
                           data={"kind": DecisionKind.ACCEPTED.value},
                           headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert (f"{winner.display_name} has left and cannot receive accounts. Choose another "
            "bidder or no award" in response.get_data(as_text=True))
    reload(session)
    assert session.scalars(select(Decision)).all() == []


# --- publishing --------------------------------------------------------------------------------

@pytest.mark.parametrize("window", [0, 3])
def test_publishing_refuses_an_award_to_a_rep_who_left_after_the_decision(
        app, session, clock, make_rep, make_manager, make_admin, scored, window):
    use_window(app, session, clock, window)
    manager = make_manager()
    reps = make_rep(name="Departing Rep"), make_rep(name="Staying Rep")
    round_, owner = scored(reps, listings=2, manager=manager)
    first, second = round_.listings
    # Whoever the ranking proposes for the first listing leaves; the other gets the second.
    departing = next(rep for rep in reps if rep.id == proposed_rep(session, first.id))
    staying = next(rep for rep in reps if rep is not departing)
    award(session, manager, first.id, departing, clock())
    award(session, manager, second.id, staying, clock())
    leave_on_the_row(session, departing)

    round_ = session.get(Round, round_.id)
    summary = adjudication.publish_summary(session, round_,
                                           adjudication.review_round(session, round_))
    assert not summary.can_publish
    assert [listing.id for listing, _message in summary.unavailable] == [first.id]
    with pytest.raises(ReceiverUnavailable) as refused:
        adjudication.publish_results(session, manager, round_.id,
                                     expected_version=round_.version, now=clock())
    message = str(refused.value.message)
    assert "Nothing was published" in message and departing.display_name in message
    assert f"listing {first.id}" in message
    reload(session)
    round_ = session.get(Round, round_.id)
    assert round_.status == RoundStatus.SCORED and round_.results_published_at is None
    assert {session.get(Account, listing.account_id).owner_id
            for listing in round_.listings} == {owner.id}
    assert award_filings(session) == []

    # Decided again (no award, with a reason), the round publishes.
    decision = session.scalars(select(Decision).where(Decision.listing_id == first.id)).one()
    adjudication.decide_listing(session, manager, first.id, kind=DecisionKind.NO_AWARD,
                                bid_id=None, reason=REASON, now=clock(),
                                expected_version=decision.version)
    round_ = session.get(Round, round_.id)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    reload(session)
    assert session.get(Round, round_.id).status in (RoundStatus.RESULTS_PUBLISHED,
                                                    RoundStatus.STANDSTILL)


def test_the_publishing_summary_names_the_award_on_the_round_page(
        session, clock, login_as, make_rep, make_manager, make_admin, scored):
    manager = make_manager()
    rep = make_rep(name="Departing Rep")
    round_, _owner = scored([rep], manager=manager)
    listing_id = round_.listings[0].id
    adjudication.decide_listing(session, manager, listing_id, kind=DecisionKind.ACCEPTED,
                                bid_id=None, reason="", now=clock())
    leave_on_the_row(session, rep, status=RepStatus.ACTIVE, is_active=False)
    page = login_as(manager).get(f"/manage/rounds/{round_.id}").get_data(as_text=True)
    summary = page[page.index('id="publish-summary"'):]
    summary = summary[:summary.index("</section>")]
    assert 'id="unavailable-winners"' in summary
    assert "Departing Rep is deactivated and cannot receive accounts." in summary
    assert "Publish results" not in summary
    # The account and why, joined with the page's colon.
    assert re.search(r"</a>: Departing Rep", summary)
    page = login_as(manager).get(f"/manage/rounds/{round_.id}",
                                 headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    summary = page[page.index('id="unavailable-winners"'):]
    summary = summary[:summary.index("</ul>")]
    assert re.search(r"</a>：Departing Rep", summary) and "</a>: " not in summary


# --- taking effect after the standstill ----------------------------------------------------------

@pytest.mark.parametrize("how", ["left", "deactivated"])
def test_the_scheduled_application_sends_a_departed_winners_award_back_and_applies_the_rest(
        app, session, clock, make_rep, make_manager, make_admin, scored, how):
    manager = make_manager()
    departing, staying = make_rep(name="Departing Rep"), make_rep(name="Staying Rep")
    round_, owner = scored([departing, staying], listings=3, manager=manager)
    listings = round_.listings
    # The first and the last go to the departing rep, the middle one to the other.
    for listing, rep in zip(listings, (departing, staying, departing), strict=True):
        award(session, manager, listing.id, rep, clock())
    round_ = session.get(Round, round_.id)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.STANDSTILL
    # During the window the rep leaves the company, written on the row alone (the user form
    # and the reps import send the awards back at once: below).
    clock.advance(days=1)
    leave_on_the_row(session, departing, **DEPARTURES[how])
    ends = session.get(Round, round_.id).standstill_ends_at

    applied = scheduler.apply_due_listings_job(app, ends)
    reload(session)
    first, middle, last = (session.get(Listing, listing.id) for listing in listings)
    assert applied == [middle.id]
    assert middle.status == ListingStatus.AWARDED
    assert session.get(Account, middle.account_id).owner_id == staying.id
    for listing in (first, last):
        assert listing.status == ListingStatus.LISTED  # back to decision
        assert session.get(Account, listing.account_id).owner_id == owner.id
        assert session.scalars(select(Decision).where(Decision.listing_id == listing.id)).first() is None
    assert session.get(Round, round_.id).status == RoundStatus.STANDSTILL
    assert [filing.listing_id for filing in award_filings(session)] == [middle.id]
    assert actions(session).count("listing.apply_refused") == 2
    told = notices(session, "award_refused")
    assert {item.recipient_id for item in told} == {manager.id}
    assert all(item.params["rep"] == "Departing Rep" for item in told)
    assert "离职" in translate_item(app, told[0])
    assert verify_ledger(session).is_intact
    # A second run changes nothing.
    assert scheduler.apply_due_listings_job(app, ends + timedelta(seconds=30)) == []

    # Management decides both again, during the standstill: another bidder, and no award.
    adjudication.decide_listing(session, manager, first.id, kind=DecisionKind.OVERRIDDEN,
                                bid_id=winner_bid(session, first.id, staying), reason=REASON,
                                now=ends)
    adjudication.decide_listing(session, manager, last.id, kind=DecisionKind.NO_AWARD,
                                bid_id=None, reason=REASON, now=ends)
    assert sorted(scheduler.apply_due_listings_job(app, ends + timedelta(minutes=1))) == [
        first.id, last.id]
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.RESULTS_PUBLISHED
    assert session.get(Account, first.account_id).owner_id == staying.id
    assert session.get(Account, last.account_id).owner_id == owner.id
    assert all(session.get(Account, listing.account_id).owner_id != departing.id
               for listing in listings)
    assert verify_ledger(session).is_intact


# --- marking a rep as left or deactivating them --------------------------------------------------

@pytest.mark.parametrize("how", ["left", "deactivated"])
@pytest.mark.parametrize("stage", ["decided", "announced"])
def test_marking_a_winner_left_sends_their_pending_awards_back_at_once(
        app, session, clock, make_rep, make_manager, make_admin, scored, how, stage):
    """An award decided for a rep waits until it takes effect (the round unpublished, or in
    its standstill). When the rep leaves or is deactivated meanwhile, KA management decides
    those accounts again at once, instead of learning at the end of the window."""
    manager, admin = make_manager(), make_admin()
    departing, staying = make_rep(name="Departing Rep"), make_rep(name="Staying Rep")
    round_, owner = scored([departing, staying], listings=3, manager=manager)
    listings = round_.listings
    for listing, rep in zip(listings, (departing, staying, departing), strict=True):
        award(session, manager, listing.id, rep, clock())
    if stage == "announced":
        round_ = session.get(Round, round_.id)
        adjudication.publish_results(session, manager, round_.id,
                                     expected_version=round_.version, now=clock())
        reload(session)
        assert session.get(Round, round_.id).status == RoundStatus.STANDSTILL
        clock.advance(days=1)
    status, is_active = ((RepStatus.LEFT, True) if how == "left"
                         else (RepStatus.ACTIVE, False))
    update = update_user(session, admin, departing.id, display_name=departing.display_name,
                         role=departing.role, branch_id=departing.branch_id, status=status,
                         is_active=is_active, now=clock())
    first, middle, last = (listing.id for listing in listings)
    assert [award.listing_id for award in update.sent_back] == [first, last]
    reload(session)
    for listing_id in (first, last):
        assert session.get(Listing, listing_id).status == ListingStatus.LISTED
        assert session.scalars(select(Decision).where(Decision.listing_id == listing_id)).first() is None
    assert session.get(Listing, middle).status == ListingStatus.DECIDED
    assert pending_awards(session, [departing.id]) == {departing.id: 0}
    assert actions(session).count("listing.winner_unavailable") == 2
    told = notices(session, "award_refused")
    assert len(told) == 2 and {item.recipient_id for item in told} == {manager.id}
    assert all(item.params["rep"] == "Departing Rep" for item in told)
    assert "离职" in translate_item(app, told[0])
    # Saving the user again finds nothing left to send back.
    again = update_user(session, admin, departing.id, display_name=departing.display_name,
                        role=departing.role, branch_id=departing.branch_id, status=status,
                        is_active=is_active, now=clock())
    assert again.sent_back == [] and len(notices(session, "award_refused")) == 2

    # Management decides both again: another bidder, and no award; nothing goes to the rep.
    adjudication.decide_listing(session, manager, first, kind=DecisionKind.OVERRIDDEN,
                                bid_id=winner_bid(session, first, staying), reason=REASON,
                                now=clock())
    adjudication.decide_listing(session, manager, last, kind=DecisionKind.NO_AWARD,
                                bid_id=None, reason=REASON, now=clock())
    round_ = session.get(Round, round_.id)
    if stage == "decided":
        adjudication.publish_results(session, manager, round_.id,
                                     expected_version=round_.version, now=clock())
    reload(session)
    ends = session.get(Round, round_.id).standstill_ends_at
    assert sorted(scheduler.apply_due_listings_job(app, ends)) == [first, middle, last]
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.RESULTS_PUBLISHED
    assert session.get(Account, session.get(Listing, first).account_id).owner_id == staying.id
    assert session.get(Account, session.get(Listing, last).account_id).owner_id == owner.id
    assert actions(session).count("listing.apply_refused") == 0
    assert verify_ledger(session).is_intact


@pytest.mark.parametrize("stage", ["decided", "announced"])
def test_giving_a_winner_another_role_sends_their_pending_awards_back_at_once(
        app, session, clock, make_rep, make_manager, make_admin, scored, stage):
    """Somebody who is no rep any more cannot receive accounts either: made a KA manager, the
    rep's awards not yet in force go back to decision then, not at the end of the window, and
    KA management is told why in words that fit a change of role."""
    manager, admin = make_manager(), make_admin()
    promoted, staying = make_rep(name="Promoted Rep"), make_rep(name="Staying Rep")
    round_, owner = scored([promoted, staying], listings=2, manager=manager)
    first, second = (listing.id for listing in round_.listings)
    award(session, manager, first, promoted, clock())
    award(session, manager, second, staying, clock())
    if stage == "announced":
        round_ = session.get(Round, round_.id)
        adjudication.publish_results(session, manager, round_.id,
                                     expected_version=round_.version, now=clock())
        reload(session)
        assert session.get(Round, round_.id).status == RoundStatus.STANDSTILL
    update = update_user(session, admin, promoted.id, display_name=promoted.display_name,
                         role=Role.KA_MANAGER, branch_id=promoted.branch_id,
                         status=promoted.status, is_active=True, now=clock())
    assert [award.listing_id for award in update.sent_back] == [first]
    reload(session)
    assert session.get(Listing, first).status == ListingStatus.LISTED
    assert session.scalars(select(Decision).where(Decision.listing_id == first)).first() is None
    assert session.get(Listing, second).status == ListingStatus.DECIDED
    assert pending_awards(session, [promoted.id]) == {promoted.id: 0}
    assert actions(session).count("listing.winner_unavailable") == 1
    # KA management is told, the rep made a KA manager now among it.
    notes = notices(session, "award_refused")
    assert {item.recipient_id for item in notes} == {manager.id, promoted.id}
    told = next(item for item in notes if item.recipient_id == manager.id)
    assert told.params["rep"] == "Promoted Rep"
    english = str(Text(told.msgid, told.params))
    assert "Promoted Rep is no longer a rep and cannot receive accounts" in english
    assert "left" not in english and "deactivated" not in english
    chinese = translate_item(app, told)
    assert "Promoted Rep已不是KA销售，不能接收客户" in chinese
    assert "离职" not in chinese and "停用" not in chinese


def test_a_winner_put_on_leave_keeps_their_pending_awards(session, clock, make_rep,
                                                         make_manager, make_admin, scored):
    manager, admin = make_manager(), make_admin()
    rep = make_rep()
    round_, _owner = scored([rep], manager=manager)
    listing_id = round_.listings[0].id
    award(session, manager, listing_id, rep, clock())
    update = update_user(session, admin, rep.id, display_name=rep.display_name, role=rep.role,
                         branch_id=rep.branch_id, status=RepStatus.ON_LEAVE, is_active=True,
                         now=clock())
    assert update.sent_back == []
    reload(session)
    assert session.get(Listing, listing_id).status == ListingStatus.DECIDED
    assert notices(session, "award_refused") == []


def test_the_user_form_lists_the_pending_awards_and_says_what_saving_does(
        session, clock, login_as, make_rep, make_manager, make_admin, scored):
    manager, admin = make_manager(), make_admin()
    rep, other = make_rep(name="Departing Rep"), make_rep(name="Other Rep")
    nobody = make_rep()  # no award waiting
    round_, _owner = scored([rep, other], listings=2, manager=manager)
    first, second = round_.listings
    award(session, manager, first.id, rep, clock())
    award(session, manager, second.id, other, clock())
    client = login_as(admin)
    page = client.get(f"/admin/users/{rep.id}").get_data(as_text=True)
    warning = page[page.index('id="pending-awards"'):]
    warning = warning[:warning.index("</div>")]
    assert "1 award decided for Departing Rep is not yet in force." in warning
    assert first.account.name in warning and f"#decision-{first.id}" in warning
    assert second.account.name not in warning
    assert "sends these back to KA management to decide again at once" in warning
    assert 'id="open-bids-hint"' in page
    assert 'id="pending-awards"' not in client.get(f"/admin/users/{nobody.id}").get_data(
        as_text=True)

    response = client.post(f"/admin/users/{rep.id}", data={
        "display_name": rep.display_name, "role": rep.role, "branch_id": rep.branch_id or 0,
        "status": RepStatus.LEFT, "is_active": "y",
        "expected": user_form_fingerprint(client, rep.id)}, follow_redirects=True)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert ("1 award of Departing Rep not yet in force went back to KA management to "
            "decide again, and KA management was told: " in text)
    assert f"{first.account.name} in round “{round_.title}”" in text
    reload(session)
    assert session.get(Listing, first.id).status == ListingStatus.LISTED
    assert session.get(Listing, second.id).status == ListingStatus.DECIDED


def test_the_pending_awards_notice_is_punctuated_in_the_pages_language(
        session, clock, login_as, make_rep, make_manager, make_admin, scored):
    """In Chinese the notice's two sentences run on after 。 and each award reads
    “轮次”轮中的客户, as the message after saving does; in English a space parts them."""
    manager, admin = make_manager(), make_admin()
    rep = make_rep(name="Departing Rep")
    round_, _owner = scored([rep], manager=manager)
    listing = round_.listings[0]
    award(session, manager, listing.id, rep, clock())
    client = login_as(admin)

    def notice(language: str) -> str:
        page = client.get(f"/admin/users/{rep.id}", headers={
            "Accept-Language": language}).get_data(as_text=True)
        found = page[page.index('id="pending-awards"'):]
        return found[:found.index("</div>")]

    link = (f'<a href="/manage/rounds/{round_.id}#decision-{listing.id}">'
            f"{listing.account.name}</a>")
    chinese = notice("zh-CN")
    assert "尚未生效。</strong>将其" in chinese and "。 " not in chinese
    assert f"<li>“{round_.title}”轮中的{link}</li>" in chinese
    english = notice("en")
    assert "not yet in force.</strong> Marking them" in english
    assert f"<li>{link} in round “{round_.title}”</li>" in english


def test_the_user_form_sends_the_awards_back_when_the_role_changes(
        session, clock, login_as, make_rep, make_manager, make_admin, scored):
    manager, admin = make_manager(), make_admin()
    rep = make_rep(name="Promoted Rep")
    round_, _owner = scored([rep], manager=manager)
    listing = round_.listings[0]
    award(session, manager, listing.id, rep, clock())
    client = login_as(admin)
    page = client.get(f"/admin/users/{rep.id}", headers={"Accept-Language": "zh-CN"}
                      ).get_data(as_text=True)
    warning = page[page.index('id="pending-awards"'):]
    assert "将其标记为离职、停用或改为KA销售以外的角色后" in warning[:warning.index("</div>")]
    page = client.get(f"/admin/users/{rep.id}").get_data(as_text=True)
    assert "giving them a role other than rep sends these back" in page
    response = client.post(f"/admin/users/{rep.id}", data={
        "display_name": rep.display_name, "role": Role.KA_MANAGER,
        "branch_id": rep.branch_id or 0, "status": rep.status, "is_active": "y",
        "expected": user_form_fingerprint(client, rep.id)}, follow_redirects=True)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert ("1 award of Promoted Rep not yet in force went back to KA management to "
            "decide again, and KA management was told: " in text)
    reload(session)
    assert session.get(type(rep), rep.id).role == Role.KA_MANAGER
    assert session.get(Listing, listing.id).status == ListingStatus.LISTED
    assert manager.id in {item.recipient_id for item in notices(session, "award_refused")}


def test_a_reps_import_marking_a_winner_left_sends_their_pending_awards_back(
        app, session, clock, make_rep, make_manager, make_admin, scored):
    """The CRM's reps file is the other way a rep is marked as left: it does what the user
    form does, in the import's transaction."""
    manager, admin = make_manager(), make_admin()
    departing, staying = make_rep(name="Departing Rep"), make_rep(name="Staying Rep")
    round_, _owner = scored([departing, staying], listings=2, manager=manager)
    first, second = (listing.id for listing in round_.listings)
    award(session, manager, first, departing, clock())
    award(session, manager, second, staying, clock())
    round_ = session.get(Round, round_.id)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    reload(session)
    departing, staying = (session.get(type(rep), rep.id) for rep in (departing, staying))
    rows = [f"R90{rep.id},{rep.username},{rep.display_name},{rep.branch.code},2020-01-06,{status}"
            for rep, status in ((departing, "离职"), (staying, "在职"))]
    data = "员工编号,用户名,姓名,分公司,入职日期,状态\n" + "\n".join(rows) + "\n"
    result = import_file(session, admin, "reps", "reps.csv", data.encode("utf-8"),
                         valid_rows_only=False, now=clock())
    assert result.status == "imported", result.problems
    reload(session)
    assert (session.get(type(departing), departing.id).status,
            session.get(type(departing), departing.id).is_active) == (RepStatus.LEFT, False)
    assert session.get(Listing, first).status == ListingStatus.LISTED
    assert session.get(Listing, second).status == ListingStatus.DECIDED
    told = notices(session, "award_refused")
    assert [item.params["rep"] for item in told] == ["Departing Rep"]
    assert actions(session).count("listing.winner_unavailable") == 1


def translate_item(app, item) -> str:
    from bidhub.domain.text import Text

    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        return str(translate(Text(item.msgid, item.params)))


# --- the one ownership change --------------------------------------------------------------------

def test_the_ownership_change_refuses_a_rep_who_left_and_writes_nothing(
        session, clock, make_rep, make_account):
    owner, gone, on_leave = make_rep(), make_rep(name="Gone Rep"), make_rep()
    account = make_account(owner=owner)
    gone.status, on_leave.status = RepStatus.LEFT, RepStatus.ON_LEAVE
    session.commit()
    before = session.scalar(select(Filing.seq).order_by(Filing.seq.desc()).limit(1))
    with pytest.raises(ReceiverUnavailable) as refused:
        change_owners(session, [OwnerChange(account.id, gone.id, filing={
            "kind": FilingKind.DIRECT_TRANSFER, "reason": "test", "decided_by_id": owner.id})],
            limit=40, now=clock())
    assert str(refused.value.message) == "Gone Rep has left and cannot receive accounts."
    session.rollback()
    assert session.get(Account, account.id).owner_id == owner.id
    assert session.scalar(select(Filing.seq).order_by(Filing.seq.desc()).limit(1)) == before
    change_owners(session, [OwnerChange(account.id, on_leave.id, filing={
        "kind": FilingKind.DIRECT_TRANSFER, "reason": "test", "decided_by_id": owner.id})],
        limit=40, now=clock())
    session.commit()
    assert session.get(Account, account.id).owner_id == on_leave.id


def test_a_direct_transfer_to_a_rep_marked_left_is_refused(session, clock, make_rep,
                                                          make_manager, make_account):
    owner, gone = make_rep(), make_rep()
    gone.status = RepStatus.LEFT  # still able to sign in: the status alone decides
    session.commit()
    account = make_account(owner=owner)
    with pytest.raises(TransferRefused) as refused:
        transfer_account(session, make_manager(), account_id=account.id, to_rep_id=gone.id,
                         reason="Moving the account to a colleague.",
                         review_text="The rep asked to hand this account over.", now=clock())
    assert refused.value.field == "to_rep"
    reload(session)
    assert session.get(Account, account.id).owner_id == owner.id


# --- bidding -----------------------------------------------------------------------------------

def test_with_leave_not_counted_a_rep_who_left_cannot_bid_and_is_told_why(
        app, session, clock, make_rep, make_account, make_round):
    """`exclude_on_leave = false` lets a rep on leave bid; a rep marked as left (their user
    still active) is refused where the bid is written, nothing stored, and the rep's list
    says why instead of offering the form."""
    from bidhub.domain.errors import NotEligible
    from bidhub.models import Bid
    from bidhub.services import policies
    from bidhub.services.bidding import submit_bid
    from bidhub.services.browse import ListingFilter, listings_for_rep
    from tests.conftest import login

    adopt_leave_blind_rules(app, session, clock)
    gone = make_rep(name="Departed Rep", status=RepStatus.LEFT)
    away = make_rep(name="Away Rep", status=RepStatus.ON_LEAVE)
    round_ = make_round(accounts=[make_account()], closes_at=clock() + timedelta(days=1))
    listing = round_.listings[0]
    assert gone.is_active

    def bid(rep):
        return submit_bid(session, rep, listing.id, account_plan="A careful plan for this account.",
                          committed_revenue_yuan=300_000,
                          visit_plan="Visit the decision maker in week one.",
                          submission_key=None, now=clock())

    with pytest.raises(NotEligible) as refused:
        bid(gone)
    assert [str(reason) for reason in refused.value.reasons] == [
        "has left the company and cannot receive accounts"]
    session.rollback()
    assert session.scalars(select(Bid).where(Bid.rep_id == gone.id)).all() == []
    assert bid(away).rep_id == away.id  # leave is not departure

    # The hints say the same, without a remedy that speaks of leave, on both reads of them.
    round_, gone = session.get(Round, round_.id), session.get(type(gone), gone.id)
    rows = listings_for_rep(session, round_, gone, ListingFilter())
    for found in (policies.hindrances_for(session, gone, round_.listings, clock()),
                  policies.hindrances_in_round(session, gone, round_, rows, clock())):
        assert [(str(item.reason), item.remedy) for item in found[listing.id]] == [
            ("has left the company and cannot receive accounts", None)]
    away = session.get(type(away), away.id)
    assert policies.hindrances_for(session, away, round_.listings, clock()) == {}

    client = app.test_client()
    login(client, gone)
    zh = {"Accept-Language": "zh-CN"}
    body = client.get(f"/rounds/{round_.id}", headers=zh).get_data(as_text=True)
    assert "已离职，不能接收客户" in body
    assert f"/listings/{listing.id}/bid" not in body
    response = client.post(f"/listings/{listing.id}/bid", headers=zh, data={
        "account_plan": "A careful plan for this account, with visits.",
        "committed_revenue_yuan": "300000", "visit_plan": "Visit the decision maker in week one.",
        "submission_key": "departed-rep-direct-post"})
    assert response.status_code == 422
    assert "已离职，不能接收客户" in response.get_data(as_text=True)
    reload(session)
    assert session.scalars(select(Bid).where(Bid.rep_id == gone.id)).all() == []


EDITED = {"account_plan": "A different plan, written after leaving the company.",
          "committed_revenue_yuan": 990_000,
          "visit_plan": "Visit everyone in the first week, again and again."}


@pytest.mark.parametrize(("how", "message"), [
    ("left", "You have left the company and cannot receive accounts"),
    ("deactivated", "Your user was deactivated and you cannot receive accounts"),
])
def test_a_rep_who_departed_cannot_edit_a_bid_placed_before_and_may_withdraw_it(
        session, clock, make_rep, make_admin, make_account, make_round, make_bid, how, message):
    """The bid was placed while the rep was on duty; once they left or were deactivated the
    edit is refused where the bid is written, with the check scoring applies, and nothing
    changes. Withdrawing it, which gives them nothing, is still theirs to do."""
    from bidhub.domain.errors import BidRejected
    from bidhub.models import Bid, BidStatus
    from bidhub.services.bidding import update_bid, withdraw_bid

    admin, rep = make_admin(), make_rep(name="Departing Rep")
    round_ = make_round(accounts=[make_account()], closes_at=clock() + timedelta(days=1))
    bid = make_bid(rep, round_.listings[0], revenue=300_000)
    before = (bid.account_plan, bid.visit_plan, bid.committed_revenue_yuan, bid.updated_at)
    clock.advance(hours=1)
    leave(session, admin, rep, clock, **DEPARTURES[how])
    rep = session.get(type(rep), rep.id)

    with pytest.raises(BidRejected) as refused:
        update_bid(session, rep, bid.id, **EDITED, expected_version=bid.version, now=clock())
    assert message in str(refused.value.message)
    assert "you may still withdraw it" in str(refused.value.message)
    reload(session)
    stored = session.get(Bid, bid.id)
    assert (stored.account_plan, stored.visit_plan, stored.committed_revenue_yuan,
            stored.updated_at) == before

    withdrawn = withdraw_bid(session, session.get(type(rep), rep.id), bid.id, clock())
    assert withdrawn.status == BidStatus.WITHDRAWN


def test_a_rep_on_leave_may_still_edit_their_bid(session, clock, make_rep, make_admin,
                                                make_account, make_round, make_bid):
    from bidhub.services.bidding import update_bid

    admin, rep = make_admin(), make_rep()
    round_ = make_round(accounts=[make_account()], closes_at=clock() + timedelta(days=1))
    bid = make_bid(rep, round_.listings[0])
    leave(session, admin, rep, clock, status=RepStatus.ON_LEAVE)
    edited = update_bid(session, session.get(type(rep), rep.id), bid.id, **EDITED,
                        expected_version=bid.version, now=clock())
    assert edited.committed_revenue_yuan == 990_000


def test_the_edit_page_of_a_rep_who_left_says_why_and_saves_nothing(
        app, session, clock, make_rep, make_admin, make_account, make_round, make_bid):
    from bidhub.models import Bid
    from tests.conftest import login

    admin, rep = make_admin(), make_rep(name="Departing Rep")
    round_ = make_round(accounts=[make_account()], closes_at=clock() + timedelta(days=1))
    bid = make_bid(rep, round_.listings[0], revenue=300_000)
    leave(session, admin, rep, clock)  # left; the user stays active and may sign in
    client = app.test_client()
    login(client, rep)
    zh = {"Accept-Language": "zh-CN"}
    page = client.get(f"/bids/{bid.id}/edit", headers=zh).get_data(as_text=True)
    assert "你已离职，不能接收客户，竞标不能再修改；仍可撤回。" in page
    assert "<form method=\"post\" novalidate>" not in page
    detail = client.get(f"/bids/{bid.id}", headers=zh).get_data(as_text=True)
    assert "你已离职，不能接收客户，竞标不能再修改；仍可撤回。" in detail
    assert f"/bids/{bid.id}/edit" not in detail and f"/bids/{bid.id}/withdraw" in detail
    response = client.post(f"/bids/{bid.id}/edit", headers=zh, data={
        **EDITED, "committed_revenue_yuan": "990000"})
    assert response.status_code == 422
    assert "你已离职，不能接收客户，竞标不能再修改；仍可撤回。" in response.get_data(as_text=True)
    english = client.post(f"/bids/{bid.id}/edit", data={
        **EDITED, "committed_revenue_yuan": "990000"}).get_data(as_text=True)
    assert ("You have left the company and cannot receive accounts, so your bid can no longer "
            "be edited; you may still withdraw it.") in english
    reload(session)
    assert session.get(Bid, bid.id).committed_revenue_yuan == 300_000
