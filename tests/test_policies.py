"""Each business question has one answer, given by bidhub.services.policies, on every page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bidhub.models import (
    Account,
    AccountabilityIncident,
    Bid,
    Decision,
    IncidentStatus,
    Listing,
    ListingStatus,
    Round,
    RoundStatus,
    User,
)
from bidhub.services import adjudication, policies
from bidhub.services.bidding import withdraw_bid
from bidhub.services.filings import transfer_account
from bidhub.services.policies import BidOutcome
from bidhub.web.rendering import localtime
from tests.conftest import reload
from tests.test_appeals import results_in_force


@pytest.fixture
def scored_round(session, clock, make_rep, make_account, make_round, make_bid):
    """A scored round whose one listing was bid for by `bidders`; the clock is past its
    deadline."""

    def make(bidders, *, owner=None):
        account = make_account(owner=owner or make_rep())
        round_ = make_round(accounts=[account], closes_at=clock() + timedelta(hours=1))
        for rep in bidders:
            make_bid(rep, round_.listings[0])
        clock.advance(hours=2)
        assert adjudication.score_closed_round(session, round_.id, clock())
        return session.get(Round, round_.id)

    return make


def decide_and_publish(session, clock, manager, round_, *, kind="accepted", reason=""):
    [listing] = round_.listings
    adjudication.decide_listing(session, manager, listing.id, kind=kind, bid_id=None,
                                reason=reason, now=clock())
    reload(session)
    round_ = session.get(Round, round_.id)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    # The default rules' appeal window: the results take effect when it ends.
    results_in_force(session, round_.id)
    clock.set(session.get(Round, round_.id).standstill_ends_at)
    return session.scalars(select(Decision).where(Decision.listing_id == listing.id)).one()


def bids_of(session, listing_id):
    return list(session.scalars(select(Bid).where(Bid.listing_id == listing_id)
                                .order_by(Bid.id)))


def test_award_then_transfer_the_winners_profile_and_bid_page_agree_it_was_won(
        app, session, clock, make_rep, make_manager, scored_round, login_as):
    manager = make_manager()
    round_ = scored_round([make_rep(), make_rep()])
    decision = decide_and_publish(session, clock, manager, round_)
    winning_bid = decision.bid
    winner = winning_bid.rep
    [listing] = round_.listings
    assert session.get(Account, listing.account_id).owner_id == winner.id

    clock.advance(days=1)
    successor = make_rep()
    transfer_account(session, manager, account_id=listing.account_id, to_rep_id=successor.id,
                     reason="Owner moves to another region.",
                     review_text="Handover planned with the client.", now=clock())
    reload(session)
    assert session.get(Account, listing.account_id).owner_id == successor.id

    assert policies.bid_outcome(session, session.get(Bid, winning_bid.id)) == BidOutcome.WON

    client = login_as(winner)
    bid_page = client.get(f"/bids/{winning_bid.id}").get_data(as_text=True)
    assert "You won this account." in bid_page
    profile = client.get(f"/reps/{winner.id}").get_data(as_text=True)
    assert '<span class="badge badge-open">Won</span>' in profile
    assert "Not won" not in profile
    my_bids = client.get("/my/bids").get_data(as_text=True)
    assert '<span class="badge badge-open">Won</span>' in my_bids
    assert "Not won" not in my_bids

    client.post("/logout")
    managers_view = login_as(manager).get(f"/reps/{winner.id}").get_data(as_text=True)
    assert '<span class="badge badge-open">Won</span>' in managers_view
    assert "Not won" not in managers_view


def test_the_loser_is_told_lost_everywhere_even_after_the_account_comes_to_them(
        app, session, clock, make_rep, make_manager, scored_round, login_as):
    manager = make_manager()
    round_ = scored_round([make_rep(), make_rep()])
    decision = decide_and_publish(session, clock, manager, round_)
    [losing_bid] = [bid for bid in bids_of(session, round_.listings[0].id)
                    if bid.id != decision.bid_id]
    loser = losing_bid.rep
    clock.advance(days=1)
    transfer_account(session, manager, account_id=round_.listings[0].account_id,
                     to_rep_id=loser.id, reason="Owner moves to another region.",
                     review_text="Handover planned with the client.", now=clock())
    reload(session)
    assert policies.bid_outcome(session, session.get(Bid, losing_bid.id)) == BidOutcome.LOST
    client = login_as(loser)
    assert "Another rep won this account." in client.get(f"/bids/{losing_bid.id}").get_data(
        as_text=True)
    profile = client.get(f"/reps/{loser.id}").get_data(as_text=True)
    assert "Not won" in profile
    assert '<span class="badge badge-open">Won</span>' not in profile
    my_bids = client.get("/my/bids").get_data(as_text=True)
    assert "Not won" in my_bids
    assert '<span class="badge badge-open">Won</span>' not in my_bids


def test_outcomes_follow_the_decision_record_and_stay_untold_until_published(
        session, clock, make_rep, make_manager, scored_round):
    manager = make_manager()
    first, second, third = make_rep(), make_rep(), make_rep()
    round_ = scored_round([first, second, third])
    [listing] = round_.listings
    bids = bids_of(session, listing.id)
    assert set(policies.bid_outcomes(session, bids).values()) == {BidOutcome.NOT_DECIDED}

    adjudication.decide_listing(session, manager, listing.id, kind="accepted", bid_id=None,
                                reason="", now=clock())
    reload(session)
    bids = bids_of(session, listing.id)
    # Decided but not published: a rep may not learn anything yet.
    assert set(policies.bid_outcomes(session, bids).values()) == {BidOutcome.NOT_DECIDED}
    assert policies.rep_result(session, bids[0]) is None

    round_ = session.get(Round, round_.id)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    reload(session)
    bids = bids_of(session, listing.id)
    outcomes = policies.bid_outcomes(session, bids)
    decision = session.scalars(select(Decision).where(Decision.listing_id == listing.id)).one()
    assert outcomes[decision.bid_id] == BidOutcome.WON
    assert sorted(outcomes.values()) == sorted([BidOutcome.WON, BidOutcome.LOST,
                                                BidOutcome.LOST])
    loser = next(bid for bid in bids if bid.id != decision.bid_id)
    result = policies.rep_result(session, loser)
    assert result is not None and not result.won and not result.no_award
    assert result.bidders == 3 and result.winner_total == decision.bid.score.total


def test_a_withdrawn_bid_is_withdrawn_and_a_no_award_is_lost_for_everyone(
        session, clock, make_rep, make_manager, make_account, make_round, make_bid):
    manager = make_manager()
    stays, leaves = make_rep(), make_rep()
    round_ = make_round(accounts=[make_account(owner=make_rep())],
                        closes_at=clock() + timedelta(hours=1))
    [listing] = round_.listings
    kept = make_bid(stays, listing)
    gone = make_bid(leaves, listing)
    withdraw_bid(session, leaves, gone.id, clock())
    reload(session)
    assert policies.bid_outcome(session, session.get(Bid, gone.id)) == BidOutcome.WITHDRAWN
    clock.advance(hours=2)
    assert adjudication.score_closed_round(session, round_.id, clock())
    reload(session)
    adjudication.decide_listing(session, manager, listing.id, kind="no_award", bid_id=None,
                                reason="Nobody showed a credible plan for this account.",
                                now=clock())
    reload(session)
    round_ = session.get(Round, round_.id)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    reload(session)
    kept = session.get(Bid, kept.id)
    assert policies.bid_outcome(session, kept) == BidOutcome.LOST
    result = policies.rep_result(session, kept)
    assert result is not None and result.no_award and not result.won
    assert policies.bid_outcome(session, session.get(Bid, gone.id)) == BidOutcome.WITHDRAWN


@pytest.mark.parametrize(("status", "sealed"), [
    (RoundStatus.DRAFT, True), (RoundStatus.PUBLISHED, True),
    (RoundStatus.SCORED, False), (RoundStatus.RESULTS_PUBLISHED, False)])
def test_bids_are_sealed_until_the_round_is_scored(status, sealed):
    assert policies.bids_are_sealed(Round(status=status)) is sealed
    assert policies.results_are_published(Round(status=status)) is (
        status == RoundStatus.RESULTS_PUBLISHED)


def test_a_round_awaits_scoring_from_its_deadline_until_it_is_scored(clock):
    deadline = clock()
    published = Round(status=RoundStatus.PUBLISHED, closes_at=deadline)
    assert not policies.awaits_scoring(published, deadline - timedelta(seconds=1))
    assert policies.awaits_scoring(published, deadline)
    assert not policies.awaits_scoring(Round(status=RoundStatus.SCORED, closes_at=deadline),
                                       deadline + timedelta(days=1))


def test_a_listing_accepts_bids_only_while_listed_and_before_the_deadline(
        session, clock, make_account, make_round):
    round_ = make_round(accounts=[make_account(), make_account()],
                        closes_at=clock() + timedelta(hours=1))
    listed, other = round_.listings
    other.status = ListingStatus.DECIDED
    assert policies.accepts_bids(listed, clock())
    assert not policies.accepts_bids(other, clock())
    assert not policies.accepts_bids(listed, clock() + timedelta(hours=1))
    draft = make_round(accounts=[make_account()], status=RoundStatus.DRAFT)
    assert not policies.accepts_bids(draft.listings[0], clock())


def test_which_accounts_a_rep_may_see(session, clock, make_rep, make_manager, make_account,
                                      make_round):
    rep, other = make_rep(), make_rep()
    own = make_account(owner=rep)
    unlisted = make_account(owner=other)
    listed = make_account(owner=other)
    in_draft = make_account(owner=other)
    not_yet_open = make_account(owner=other)
    make_round(accounts=[listed])
    make_round(accounts=[in_draft], status=RoundStatus.DRAFT)
    make_round(accounts=[not_yet_open], opens_at=clock() + timedelta(hours=1))
    now = clock()
    visible = {account.id for account in (own, unlisted, listed, in_draft, not_yet_open)
               if policies.rep_may_see_account(session, rep, account, now)}
    assert visible == {own.id, listed.id}
    manager = make_manager()
    assert all(policies.rep_may_see_account(session, manager, account, now)
               for account in (own, unlisted, listed, in_draft, not_yet_open))
    assert policies.may_see_owner(rep, own) and not policies.may_see_owner(rep, listed)
    assert policies.may_see_owner(manager, listed)


def test_the_account_page_follows_the_visibility_policy(app, session, make_rep, make_account,
                                                          make_round, login_as):
    rep, other = make_rep(), make_rep()
    listed, unlisted = make_account(owner=other), make_account(owner=other)
    make_round(accounts=[listed])
    client = login_as(rep)
    page = client.get(f"/accounts/{listed.id}")
    assert page.status_code == 200
    assert other.display_name not in page.get_data(as_text=True)
    assert client.get(f"/accounts/{unlisted.id}").status_code == 404
    assert session.scalar(select(Listing.id).where(Listing.account_id == listed.id))


def test_who_may_see_a_reps_profile_and_its_sealed_bids(make_rep, make_manager, make_admin):
    rep, other, manager, admin = make_rep(), make_rep(), make_manager(), make_admin()
    assert policies.may_see_profile_of(rep, rep.id)
    assert not policies.may_see_profile_of(rep, other.id)
    assert policies.may_see_profile_of(manager, rep.id)
    assert policies.may_see_profile_of(admin, rep.id)
    assert policies.sees_sealed_bids_of(rep, rep.id)
    assert not any(policies.sees_sealed_bids_of(viewer, rep.id)
                   for viewer in (other, manager, admin))


def test_open_incidents_are_counted_alike_by_eligibility_and_by_the_metric(
        session, clock, make_rep, make_manager, make_account, make_round, make_bid):
    """Eligibility counts in SQL (services/track_records.py), the metric in Python
    (domain/metrics.py); for every status they must agree on what counts against a rep."""
    from bidhub.domain.metrics import METRICS
    from bidhub.services.accountability import log_incident
    from bidhub.services.profiles import NO_ACCOUNT
    from bidhub.services.track_records import bid_facts, rep_histories

    rep = make_rep()
    held = make_account(owner=rep)
    round_ = make_round(accounts=[make_account(owner=make_rep())])
    bid = make_bid(rep, round_.listings[0])
    incident = log_incident(session, make_manager(), account_id=held.id,
                            competitor_site="zhaopin.example", ad_type="banner",
                            evidence_url="https://zhaopin.example/",
                            seen_at=clock() - timedelta(days=1), now=clock())
    counted = {}
    for status in IncidentStatus:
        incident.status = status
        session.commit()
        reload(session)
        [facts] = bid_facts(session, [session.get(Bid, bid.id)], clock())
        history = rep_histories(session, [session.get(User, rep.id)], clock())[rep.id]
        metric = METRICS["open_incidents"].compute(history, NO_ACCOUNT, clock())
        assert facts.open_incidents == metric, status
        counted[status] = facts.open_incidents
        incident = session.get(AccountabilityIncident, incident.id)
    assert counted == {IncidentStatus.OPEN: 1, IncidentStatus.EXPLAINED: 0,
                       IncidentStatus.ACCEPTED: 0, IncidentStatus.UPHELD: 1}


def test_a_bid_result_names_the_moment_of_its_track_record_and_of_its_eligibility(
        app, session, clock, make_rep, make_manager, scored_round, login_as):
    """Tenure shows twice on a result, from two moments: the score table's raw value is the
    track record frozen when the bid was placed, the eligibility line was checked when the
    round was scored. Each says which, in both languages."""
    rep = make_rep()
    round_ = scored_round([rep, make_rep()])
    decide_and_publish(session, clock, make_manager(), round_)
    bid = session.scalars(select(Bid).where(Bid.rep_id == rep.id)).one()
    client = login_as(rep)
    for language, recorded, checked in (
            ("en", "Raw values are the track record frozen when the bid was placed, ",
             "Eligibility as checked when the round was scored, "),
            ("zh-CN", "原始值为提交竞标申请时（", "资格按本轮评分时（")):
        page = client.get(f"/bids/{bid.id}", headers={"Accept-Language": language}
                          ).get_data(as_text=True)
        table, checks = page.index('<table class="breakdown">'), page.index('<ul class="checks">')
        assert recorded in page[:table] and checked in page[table:checks], language
    english = client.get(f"/bids/{bid.id}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    with app.test_request_context(headers={"Accept-Language": "en"}):
        placed, scored = localtime(bid.submitted_at), localtime(round_.scored_at)
    assert placed != scored
    assert f"frozen when the bid was placed, {placed}." in english
    assert f"checked when the round was scored, {scored}:" in english
