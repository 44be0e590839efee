"""One whole round through the web: create, release, publish, bid, close, adjudicate, announce,
and the results taking effect after the appeal window."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bidhub import scheduler
from bidhub.models import Account, Bid, Filing, FilingKind, Listing, Round, RoundStatus
from tests.conftest import login, release_on_round_page, reload


def local(dt) -> str:
    return dt.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M")


def test_a_full_round_from_creation_to_filings(app, session, clock, make_manager, make_rep,
                                               make_account, give_accounts, make_opportunities):
    manager = make_manager(name="Manager Zhou")
    old_owner = make_rep(name="Leaving Rep")
    strong = make_rep(name="Strong Rep")
    steady = make_rep(name="Steady Rep")
    full = make_rep(name="Full Rep")
    give_accounts(full, 40)
    give_accounts(strong, 30)
    give_accounts(steady, 32)
    first = make_account(owner=old_owner, name="北京星河科技有限公司", contacts=True)
    second = make_account(owner=old_owner, name="上海蓝海物流集团")
    history = make_account(owner=None)
    make_opportunities(strong, history, won=8, lost=2)
    make_opportunities(steady, history, won=3, lost=7)

    managers_client = app.test_client()
    login(managers_client, manager)
    deadline = clock() + timedelta(days=3)
    response = managers_client.post("/manage/rounds/new", data={
        "title": "March reassignment", "branch_id": "0",
        "opens_at": local(clock()), "closes_at": local(deadline)})
    assert response.status_code == 303
    round_ = session.scalars(select(Round)).one()
    assert round_.status == RoundStatus.DRAFT
    for account in (first, second):
        response = release_on_round_page(managers_client, round_.id, {
            "account": account.external_id, "reason": "neglected", "note": "",
            "review_text": "The rep left the company at the end of February."})
        assert response.status_code == 303, response.get_data(as_text=True)
    response = managers_client.post(f"/manage/rounds/{round_.id}/publish",
                                    data={"version": str(round_.version)})
    assert response.status_code == 303
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.PUBLISHED
    listing_first, listing_second = session.scalars(select(Listing).order_by(Listing.id)).all()

    def rep_client(rep):
        client = app.test_client()
        login(client, rep)
        return client

    clients = {rep.id: rep_client(rep) for rep in (strong, steady, full)}
    page = clients[strong.id].get(f"/rounds/{round_.id}")
    assert "北京星河科技有限公司" in page.get_data(as_text=True)
    profile = clients[strong.id].get(f"/accounts/{first.id}").get_data(as_text=True)
    assert "张总" in profile and "Decision maker" in profile

    def bid(rep, listing, plan):
        return clients[rep.id].post(f"/listings/{listing.id}/bid", data={
            "account_plan": plan, "committed_revenue_yuan": "500000",
            "visit_plan": "Meet the decision maker and the purchaser in week one.",
            "submission_key": f"{rep.id}-{listing.id}"})

    first_bid = bid(strong, listing_first, "STRONG-PLAN-TEXT grow recruitment spend")
    assert first_bid.status_code == 303, re.findall(r"error\">([^<]*)|<p>([^<]*)</p>", first_bid.get_data(as_text=True))
    assert bid(steady, listing_first, "STEADY-PLAN-TEXT steady service plan").status_code == 303
    assert bid(strong, listing_second, "STRONG-SECOND-PLAN for the logistics group").status_code == 303
    assert bid(steady, listing_second, "STEADY-SECOND-PLAN for the logistics group").status_code == 303
    refused = bid(full, listing_first, "FULL-PLAN-TEXT would like this one too")
    assert refused.status_code == 422
    assert "holds 40 accounts" in refused.get_data(as_text=True)
    assert session.scalars(select(Bid).where(Bid.rep_id == full.id)).all() == []

    # The deadline passes; a form loaded earlier is refused.
    clock.set(deadline)
    late = bid(full, listing_second, "FULL-LATE-PLAN after the deadline passed")
    assert late.status_code == 422
    assert "closed" in late.get_data(as_text=True)

    response = managers_client.post(f"/manage/rounds/{round_.id}/score", data={})
    assert response.status_code == 303
    ranking_page = managers_client.get(f"/manage/listings/{listing_first.id}")
    html = ranking_page.get_data(as_text=True)
    assert ranking_page.status_code == 200
    assert "Strong Rep" in html and "Steady Rep" in html
    assert "Win rate" in html  # the per-factor breakdown
    # Override the first listing in favour of the steady rep; accept the second.
    reload(session)
    response = managers_client.post(f"/manage/listings/{listing_first.id}/decide", data={
        "kind": "overridden", "bid_id": str(bids_for(session, listing_first, steady).id),
        "reason": "Steady Rep already serves the group's subsidiary."})
    assert response.status_code == 303, response.get_data(as_text=True)
    response = managers_client.post(f"/manage/listings/{listing_second.id}/decide",
                                    data={"kind": "accepted", "reason": ""})
    assert response.status_code == 303, response.get_data(as_text=True)
    reload(session)
    response = managers_client.post(f"/manage/rounds/{round_.id}/publish-results",
                                    data={"version": str(session.get(Round, round_.id).version)})
    assert response.status_code == 303

    # Announced (公示): nothing changes hands during the appeal window; when it ends, the
    # scheduler's job makes the results take effect and files them.
    reload(session)
    announced = session.get(Round, round_.id)
    assert announced.status == RoundStatus.STANDSTILL
    assert session.get(Account, first.id).owner_id == old_owner.id
    clock.set(announced.standstill_ends_at)
    assert len(scheduler.apply_due_listings_job(app)) == 2
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.RESULTS_PUBLISHED
    assert session.get(Account, first.id).owner_id == steady.id
    second_winner = session.get(Account, second.id).owner_id
    assert second_winner == strong.id  # the stronger track record wins on the ranking
    filings = session.scalars(select(Filing).where(Filing.kind == FilingKind.ROUND_AWARD)
                              .order_by(Filing.seq)).all()
    assert len(filings) == 2
    overridden, accepted = filings
    assert (overridden.account_id, overridden.from_rep_id, overridden.to_rep_id) == (
        first.id, old_owner.id, steady.id)
    assert overridden.override_reason == "Steady Rep already serves the group's subsidiary."
    assert overridden.round_id == round_.id and overridden.decided_by_id == manager.id
    assert overridden.rule_set_sha256 == round_.rule_set.sha256
    assert overridden.winner_score is not None and overridden.runner_up_score is not None
    assert overridden.winner_score < overridden.runner_up_score  # the override passed a higher score
    assert (accepted.account_id, accepted.to_rep_id, accepted.override_reason) == (
        second.id, strong.id, "")
    assert accepted.winner_score >= accepted.runner_up_score
    assert accepted.prev_hash == overridden.hash

    # The losing rep sees their own score and rank, and not the winner's bid text.
    loser_bid = bids_for(session, listing_second, steady)
    result = clients[steady.id].get(f"/bids/{loser_bid.id}").get_data(as_text=True)
    assert "Another rep won this account." in result
    assert "rank 2 of 2" in result
    assert "STEADY-SECOND-PLAN" in result
    assert "STRONG-SECOND-PLAN" not in result
    winner_total = f"{bids_for(session, listing_second, strong).score.total:.3f}"
    assert winner_total in result


def bids_for(session, listing, rep) -> Bid:
    return session.scalars(select(Bid).where(Bid.listing_id == listing.id,
                                             Bid.rep_id == rep.id)).one()
