"""Promises (承诺兑现): a won bid's commitment against the account's revenue, on the track record."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest

from bidhub.db import unit_of_work
from bidhub.domain.metrics import months_after
from bidhub.models import Bid, DecisionKind, Opportunity, Round, TrackRecordSnapshot
from bidhub.services.adjudication import decide_listing, publish_results, score_closed_round
from bidhub.services.appeals import apply_round
from bidhub.services.track_records import (
    fresh_track_record,
    rep_histories,
    stored_histories,
)
from tests.conftest import login, reload, stored_bid_of
from tests.test_queries import statements_for

NO_PROMISES = "No promises yet"


@pytest.fixture
def win(session, clock, make_round, make_bid, make_manager, make_account, make_rep):
    """`win(rep, [(account, committed), ...])`: the rep wins each account through bids,
    scoring, decisions and results; the awards take effect when the standstill ends (the
    clock is left there). The round."""

    def make(rep, wins) -> Round:
        manager = make_manager()
        market = make_round(accounts=[account for account, _ in wins], manager=manager,
                            closes_at=clock() + timedelta(hours=1))
        committed = {account.id: revenue for account, revenue in wins}
        for listing in market.listings:
            stored_bid_of(session, make_bid, rep, listing, committed[listing.account_id])
        clock.advance(hours=2)
        assert score_closed_round(session, market.id, clock())
        for listing in market.listings:
            decide_listing(session, manager, listing.id, kind=DecisionKind.ACCEPTED,
                           bid_id=None, reason="", now=clock())
        reload(session)
        market = session.get(Round, market.id)
        publish_results(session, manager, market.id, expected_version=market.version,
                        now=clock())
        reload(session)
        market = session.get(Round, market.id)
        clock.set(market.standstill_ends_at)
        assert len(apply_round(session, market.id, clock())) == len(wins)
        reload(session)
        return session.get(Round, market.id)

    return make


def won_deal(session, rep, account, amount, at):
    session.add(Opportunity(account_id=account.id, rep_id=rep.id, amount_yuan=amount,
                            stage="won", opened_at=at - timedelta(days=20), closed_at=at))
    session.commit()


def page_text(app, user, url) -> str:
    client = app.test_client()
    login(client, user)
    response = client.get(url, headers={"Accept-Language": "en"})
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def promises_section(text: str) -> str:
    return re.search(r'<section class="card" id="promises">(.*?)</section>', text, re.S).group(1)


def cells(row_html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row_html, re.S)]


def test_the_track_record_lists_each_promise_with_its_figures(
        app, session, clock, win, make_rep, make_manager, make_account):
    rep = make_rep(name="Promise Rep")
    big = make_account(name="Big Promise Co.", owner=make_rep())
    zero = make_account(name="Zero Promise Co.", owner=make_rep())
    win(rep, [(big, 1_000_000), (zero, 0)])
    start = clock()
    won_deal(session, rep, big, 100_000, start + timedelta(days=20))
    won_deal(session, rep, big, 200_000, start + timedelta(days=120))
    won_deal(session, rep, big, 900_000, start - timedelta(days=1))  # before the promise
    clock.set(months_after(start, 6))
    for viewer, url in ((rep, "/my/track-record"), (make_manager(), f"/reps/{rep.id}")):
        section = promises_section(page_text(app, viewer, url))
        rows = re.findall(r"<tr><td class=\"name\">(.*?)</tr>", section, re.S)
        # A zero commitment is not a promise; 6 months: expected 500,000, kept 300,000 / that.
        assert [cells('<td class="name">' + row) for row in rows] == [[
            "Big Promise Co.", start.date().isoformat(), "¥1,000,000", "6", "¥300,000",
            "¥500,000", "60%"]]
        assert NO_PROMISES not in section
    # The metric the rules can score says the same.
    assert fresh_track_record(session, rep, big, clock())["commitment_kept"] == pytest.approx(0.6)


def test_a_rep_without_promises_sees_the_empty_state_and_no_data(app, make_rep):
    rep = make_rep()
    text = page_text(app, rep, "/my/track-record")
    assert NO_PROMISES in promises_section(text)
    row = re.search(r"Commitments kept</th><td class=\"num\">(.*?)</td>", text, re.S).group(1)
    assert "no data" in row


def test_a_promise_younger_than_a_month_is_listed_without_a_kept_share(
        app, clock, win, make_rep, make_account):
    rep = make_rep()
    win(rep, [(make_account(name="Young Promise Co.", owner=make_rep()), 600_000)])
    clock.advance(days=10)
    section = promises_section(page_text(app, rep, "/my/track-record"))
    assert "Young Promise Co." in section and "under a month" in section


def dropped(session, rep) -> bool:
    reload(session)
    row = session.get(TrackRecordSnapshot, rep.id)
    return row is not None and row.history is None


def warm(session, reps, clock) -> None:
    reload(session)
    with unit_of_work(session):
        stored_histories(session, reps, clock())
    assert not any(dropped(session, rep) for rep in reps)


def test_an_award_taking_effect_or_a_changed_commitment_drops_the_winners_snapshot(
        session, clock, make_round, make_bid, make_manager, make_account, make_rep):
    rep, other = make_rep(), make_rep()
    account = make_account(owner=other)
    manager = make_manager()
    market = make_round(accounts=[account], manager=manager,
                        closes_at=clock() + timedelta(hours=1))
    bid = make_bid(rep, market.listings[0], revenue=800_000)
    clock.advance(hours=2)
    assert score_closed_round(session, market.id, clock())
    decide_listing(session, manager, market.listings[0].id, kind=DecisionKind.ACCEPTED,
                   bid_id=None, reason="", now=clock())
    reload(session)
    market = session.get(Round, market.id)
    publish_results(session, manager, market.id, expected_version=market.version, now=clock())
    reload(session)
    market = session.get(Round, market.id)
    clock.set(market.standstill_ends_at)
    warm(session, [rep, other], clock)
    apply_round(session, market.id, clock())
    assert dropped(session, rep)
    assert stored_histories(session, [rep], clock()) == rep_histories(session, [rep], clock())
    [promise] = rep_histories(session, [rep], clock())[rep.id].promises
    assert (promise.bid_id, promise.committed_revenue_yuan, promise.started_at) == (
        bid.id, 800_000, clock())
    # A commitment corrected behind the use cases (a data fix) is a changed promise too.
    warm(session, [rep], clock)
    session.get(Bid, bid.id).committed_revenue_yuan = 900_000
    session.commit()
    assert dropped(session, rep)
    assert stored_histories(session, [rep], clock()) == rep_histories(session, [rep], clock())


def test_placing_a_bid_does_not_drop_the_bidders_snapshot(
        session, clock, make_round, make_bid, make_account, make_rep):
    rep = make_rep()
    market = make_round(accounts=[make_account()])
    warm(session, [rep], clock)
    make_bid(rep, market.listings[0])
    assert not dropped(session, rep)


def test_the_promises_do_not_add_statements_to_the_track_record_page(
        app, session, clock, win, make_rep, make_manager, make_account):
    from bidhub.services.track_records import refresh_track_records

    one, three = make_rep(), make_rep()
    win(one, [(make_account(owner=make_rep()), 500_000)])
    win(three, [(make_account(owner=make_rep()), 500_000 + n) for n in range(3)])
    refresh_track_records(session, clock())
    session.rollback()
    client = app.test_client()
    login(client, make_manager())
    few = statements_for(app, client, f"/reps/{one.id}")
    assert statements_for(app, client, f"/reps/{three.id}") == few
    assert few <= 11  # the bound of tests/test_queries.py's track-record pages


def test_a_bid_freezes_commitment_kept_and_a_rule_can_score_it(
        session, clock, win, make_rep, make_round, make_bid, make_account):
    from bidhub.domain.facts import BidFacts
    from bidhub.domain.rules import parse_rules
    from bidhub.domain.scoring import score_round

    keeper, misser, newcomer = make_rep(), make_rep(), make_rep()
    kept_account = make_account(owner=make_rep())
    missed_account = make_account(owner=make_rep())
    win(keeper, [(kept_account, 1_200_000)])
    start = clock()
    win(misser, [(missed_account, 1_200_000)])
    won_deal(session, keeper, kept_account, 400_000, start + timedelta(days=40))
    won_deal(session, misser, missed_account, 100_000, clock() + timedelta(days=40))
    clock.set(months_after(clock(), 4))
    market = make_round(accounts=[make_account()])
    bids = [make_bid(rep, market.listings[0]) for rep in (keeper, misser, newcomer)]
    frozen = [session.get(Bid, bid.id).track_record["commitment_kept"] for bid in bids]
    # 4 months: expected 400,000; 400,000 won -> 1.0, 100,000 -> 0.25; no promise -> no data.
    assert frozen == [pytest.approx(1.0), pytest.approx(0.25), None]
    rules = parse_rules('[[factors]]\nmetric = "commitment_kept"\nweight = 1.0\n'
                        'normaliser = "cap"\ncap = 1.2\n')
    facts = [BidFacts(bid_id=bid.id, rep_id=bid.rep_id, listing_id=1, submitted_at=clock(),
                      metrics=session.get(Bid, bid.id).track_record, accounts_held=0,
                      tenure_months=24.0, open_incidents=0, rep_branch="BJ",
                      listing_branch="BJ") for bid in bids]
    scores = score_round(rules, facts)
    totals = [scores[bid.id].total for bid in bids]
    assert totals[0] > totals[1]
    # The newcomer has no promise: the missing-data rule (the median of the others) applies.
    assert totals[1] <= totals[2] <= totals[0]
