"""The announcement of results (中标公示) and what a bidder sees: reasons, eligibility, deadline."""

from __future__ import annotations

import html
import math
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bidhub.models import Bid, DecisionKind, RepStatus, Round
from bidhub.services.adjudication import decide_listing, publish_results, score_closed_round
from tests.conftest import login, reload

OVERRIDE_REASON = "Steady Rep already serves the group's subsidiary in Tianjin."
NO_AWARD_REASON = "Nobody bid; the account goes back to its branch manager for now."
DECLINED_REASON = "The client asked to pause the account until its merger closes."
WHAT_WOULD_HAVE_CHANGED = "What would have changed the outcome"


@pytest.fixture
def world(session, clock, make_rep, make_manager, make_admin, make_account, make_round, make_bid,
          give_accounts, make_opportunities, make_branch):
    """A round with three listings: one overridden, one decided by the score, one no award."""
    manager = make_manager(name="Manager Zhou")
    strong, steady = make_rep(name="Strong Rep"), make_rep(name="Steady Rep")
    give_accounts(strong, 30)
    give_accounts(steady, 32)
    history = make_account()
    make_opportunities(strong, history, won=8, lost=2)
    make_opportunities(steady, history, won=3, lost=7)
    overridden = make_account(name="Override Holdings")
    by_score = make_account(name="Score Logistics")
    nobody = make_account(name="Nobody Textiles")
    declined = make_account(name="Declined Foods")
    deadline = clock() + timedelta(days=2)
    round_ = make_round(accounts=[overridden, by_score, nobody, declined], closes_at=deadline,
                        manager=manager, title="March reassignment")
    listing_of = {listing.account_id: listing for listing in round_.listings}
    bids = {(rep.display_name, account.id): make_bid(rep, listing_of[account.id])
            for rep in (strong, steady) for account in (overridden, by_score)}
    bids[("Steady Rep", declined.id)] = make_bid(steady, listing_of[declined.id])
    return {"session": session, "clock": clock, "round": round_, "manager": manager,
            "admin": make_admin(), "strong": strong, "steady": steady,
            "other_branch_rep": make_rep(name="Shanghai Rep",
                                         branch=make_branch("SH", "Shanghai")),
            "listings": {"overridden": listing_of[overridden.id],
                         "by_score": listing_of[by_score.id], "nobody": listing_of[nobody.id],
                         "declined": listing_of[declined.id]},
            "bids": {"strong_overridden": bids[("Strong Rep", overridden.id)],
                     "steady_overridden": bids[("Steady Rep", overridden.id)],
                     "steady_by_score": bids[("Steady Rep", by_score.id)],
                     "steady_declined": bids[("Steady Rep", declined.id)]},
            "deadline": deadline}


def score(world) -> None:
    world["clock"].set(world["deadline"])
    assert score_closed_round(world["session"], world["round"].id, world["clock"]())


def decide(world) -> None:
    session, manager, now = world["session"], world["manager"], world["clock"]()
    listings, bids = world["listings"], world["bids"]
    decide_listing(session, manager, listings["overridden"].id, kind=DecisionKind.OVERRIDDEN,
                   bid_id=bids["steady_overridden"].id, reason=OVERRIDE_REASON, now=now)
    decide_listing(session, manager, listings["by_score"].id, kind=DecisionKind.ACCEPTED,
                   bid_id=None, reason="", now=now)
    decide_listing(session, manager, listings["nobody"].id, kind=DecisionKind.NO_AWARD,
                   bid_id=None, reason=NO_AWARD_REASON, now=now)
    decide_listing(session, manager, listings["declined"].id, kind=DecisionKind.NO_AWARD,
                   bid_id=None, reason=DECLINED_REASON, now=now)


def publish(world) -> Round:
    session = world["session"]
    round_ = session.get(Round, world["round"].id)
    publish_results(session, world["manager"], round_.id, expected_version=round_.version,
                    now=world["clock"]())
    reload(session)
    return session.get(Round, round_.id)


@pytest.fixture
def published(world) -> dict:
    score(world)
    decide(world)
    world["round"] = publish(world)
    return world


def page(app, user, url: str):
    client = app.test_client()
    login(client, user)
    return client.get(url)


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_the_announcement_shows_winners_scores_reasons_and_the_seed(app, published):
    session, round_ = published["session"], published["round"]
    strong_bid = session.get(Bid, published["bids"]["strong_overridden"].id)
    steady_bid = session.get(Bid, published["bids"]["steady_overridden"].id)
    assert strong_bid.score.rank == 1 and steady_bid.score.rank == 2  # the override passed rank 1
    score_winner = session.scalars(select(Bid).where(
        Bid.listing_id == published["listings"]["by_score"].id, Bid.rep_id == published[
            "strong"].id)).one()
    assert score_winner.score.rank == 1

    response = page(app, published["steady"], f"/rounds/{round_.id}/results")
    assert response.status_code == 200
    body = text_of(response)
    rows = {name: row for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
            for name in ("Override Holdings", "Score Logistics", "Nobody Textiles") if name in row}
    assert "Steady Rep" in rows["Override Holdings"]
    assert f"{steady_bid.score.total:.3f}" in rows["Override Holdings"]
    assert "Override of the ranking" in rows["Override Holdings"]
    assert OVERRIDE_REASON in rows["Override Holdings"]
    assert "Strong Rep" in rows["Score Logistics"]
    assert f"{score_winner.score.total:.3f}" in rows["Score Logistics"]
    assert "Followed the ranking" in rows["Score Logistics"]
    assert "no award" in rows["Nobody Textiles"] and NO_AWARD_REASON in rows["Nobody Textiles"]
    assert DECLINED_REASON in body
    assert round_.lottery_seed is not None
    assert f'<code class="seed">{round_.lottery_seed}</code>' in body
    assert "SHA-256" in body and "the bidder holding fewer accounts first" in body
    # When it was announced, in the badge's word (the results may still be in their window).
    assert f"announced {round_.results_published_at.astimezone(ZoneInfo('Asia/Shanghai')):%Y}" in body
    # Bid content stays with its bidder even after publication.
    assert "A careful plan for this account." not in body


@pytest.mark.parametrize("who", ["strong", "steady", "other_branch_rep", "manager", "admin"])
def test_everyone_who_may_see_the_round_sees_the_announcement(app, published, who):
    response = page(app, published[who], f"/rounds/{published['round'].id}/results")
    assert response.status_code == 200
    assert OVERRIDE_REASON in text_of(response)


def test_signed_out_visitors_are_sent_to_sign_in(app, published):
    response = app.test_client().get(f"/rounds/{published['round'].id}/results")
    assert response.status_code == 302 and "/login" in response.location


@pytest.mark.parametrize("who", ["strong", "other_branch_rep", "manager", "admin"])
def test_no_announcement_before_results_are_published(app, world, who):
    url = f"/rounds/{world['round'].id}/results"
    stages = [lambda: None, lambda: score(world), lambda: decide(world)]  # open, scored, decided
    for advance in stages:
        advance()
        response = page(app, world[who], url)
        assert response.status_code == 404, response.status_code
        assert OVERRIDE_REASON not in text_of(response)
        assert "Steady Rep" not in text_of(response)
    assert page(app, world[who], "/rounds/999999/results").status_code == 404


def test_the_announcement_is_linked_from_the_rounds_list_the_round_and_the_bid(app, published):
    round_id = published["round"].id
    link = f"/rounds/{round_id}/results"
    bid_id = published["bids"]["steady_by_score"].id
    for url in ("/rounds", f"/rounds/{round_id}", f"/bids/{bid_id}"):
        assert link in page(app, published["steady"], url).get_data(as_text=True), url


def test_the_rep_who_lost_to_an_override_reads_the_reason_not_a_score_gap(app, published):
    bid_id = published["bids"]["strong_overridden"].id
    body = text_of(page(app, published["strong"], f"/bids/{bid_id}"))
    assert "Another rep won this account." in body
    assert OVERRIDE_REASON in body
    assert WHAT_WOULD_HAVE_CHANGED not in body


def test_the_rep_who_lost_on_the_score_still_sees_what_would_have_changed(app, published):
    bid_id = published["bids"]["steady_by_score"].id
    body = text_of(page(app, published["steady"], f"/bids/{bid_id}"))
    assert "Another rep won this account." in body
    assert WHAT_WOULD_HAVE_CHANGED in body
    assert OVERRIDE_REASON not in body


def test_a_bidder_on_a_listing_without_award_reads_its_reason(app, published):
    bid_id = published["bids"]["steady_declined"].id
    body = text_of(page(app, published["steady"], f"/bids/{bid_id}"))
    assert "Nobody was awarded this account" in body
    assert DECLINED_REASON in body and WHAT_WOULD_HAVE_CHANGED not in body


def test_the_overriding_winner_sees_no_gap_table_either(app, published):
    bid_id = published["bids"]["steady_overridden"].id
    body = text_of(page(app, published["steady"], f"/bids/{bid_id}"))
    assert "You won this account." in body and WHAT_WOULD_HAVE_CHANGED not in body


# Bidding is friendlier: eligibility before writing, what is scored, the deadline.

@pytest.fixture
def open_round(session, make_account, make_round, clock):
    round_ = make_round(accounts=[make_account(name="Open Account Co")],
                        closes_at=clock() + timedelta(days=1, hours=2, minutes=5))
    return round_


def test_a_full_rep_sees_why_and_what_would_help_instead_of_the_bid_button(
        app, session, open_round, make_rep, give_accounts):
    full = make_rep(name="Full Rep")
    give_accounts(full, 40)
    listing = open_round.listings[0]
    body = text_of(page(app, full, f"/rounds/{open_round.id}"))
    assert "Not eligible" in body
    assert "holds 40 accounts; the maximum is 40" in body
    assert "To bid, hold fewer than 40: release 1 of your accounts" in body
    assert f"/listings/{listing.id}/bid" not in body

    form_page = text_of(page(app, full, f"/listings/{listing.id}/bid"))
    assert "You are not eligible to bid for this account" in form_page
    assert 'name="account_plan"' not in form_page

    client = app.test_client()
    login(client, full)
    refused = client.post(f"/listings/{listing.id}/bid", data={
        "account_plan": "A careful plan for this account, with visits.",
        "committed_revenue_yuan": "300000", "visit_plan": "Visit the decision maker in week one.",
        "submission_key": "full-rep-direct-post"})
    assert refused.status_code == 422
    assert "holds 40 accounts" in text_of(refused)
    assert session.scalars(select(Bid).where(Bid.rep_id == full.id)).all() == []


def test_a_reason_every_listing_gives_is_said_once_above_the_list(
        app, session, make_account, make_round, make_rep, make_bid, give_accounts, clock):
    """A full rep's capacity bars every listing: said once above the list, each row marked
    and pointing there. Before, every row repeated the whole reason and its remedy, which
    squeezed the other columns and ran past the table's edge. A row the rep bid for before
    filling up still shows their bid; the htmx partial says it the same way."""
    full = make_rep(name="Full Rep")
    accounts = [make_account(name=f"Account {number}") for number in range(4)]
    round_ = make_round(accounts=accounts, closes_at=clock() + timedelta(days=2))
    bid = make_bid(full, round_.listings[3])
    give_accounts(full, 40)
    client = app.test_client()
    login(client, full)
    for headers in ({}, {"HX-Request": "true"}):
        body = client.get(f"/rounds/{round_.id}", headers=headers).get_data(as_text=True)
        barred = re.findall(r'<div class="flash flash-info barred" role="note">(.*?)</div>',
                            body, re.S)
        assert len(barred) == 1 and "holds 40 accounts; the maximum is 40" in barred[0]
        assert "To bid, hold fewer than 40" in barred[0]
        assert body.count("holds 40 accounts") == 1
        assert body.count("Why: above the list.") == 3
        assert f"/bids/{bid.id}" in body  # their bid, not a reason


def test_a_reason_only_some_listings_give_stays_on_their_rows(
        app, session, make_account, make_round, make_rep, make_manager, clock):
    """A rep who gave one account up in the cooldown may still bid for the others: no note
    above the list, the reason on its row alone."""
    from bidhub.services.filings import transfer_account

    rep = make_rep(name="Cooling Rep")
    given_up = make_account(owner=rep)
    transfer_account(session, make_manager(), account_id=given_up.id, to_rep_id=make_rep().id,
                     reason="Owner left the company.",
                     review_text="Handover done; the client was told.", now=clock())
    round_ = make_round(accounts=[given_up, make_account()], closes_at=clock() + timedelta(days=2))
    body = page(app, rep, f"/rounds/{round_.id}").get_data(as_text=True)
    assert "barred" not in body and "Why: above the list." not in body
    assert body.count('<div class="not-eligible">') == 1
    assert f"/listings/{round_.listings[1].id}/bid" in body


def test_a_new_rep_is_told_from_when_they_may_bid(app, open_round, make_rep, clock):
    newcomer = make_rep(name="New Rep", hired_on=(clock() - timedelta(days=30)).date())
    body = text_of(page(app, newcomer, f"/rounds/{open_round.id}"))
    assert "months with the company; at least 3 required" in body
    assert "Wait until" in body
    assert f"/listings/{open_round.listings[0].id}/bid" not in body


def test_an_eligible_rep_gets_the_button_what_is_scored_and_the_deadline(app, open_round,
                                                                         make_rep):
    rep = make_rep()
    listing = open_round.listings[0]
    body = text_of(page(app, rep, f"/rounds/{open_round.id}"))
    assert f"/listings/{listing.id}/bid" in body and "Not eligible" not in body
    assert "1 d 2 h 5 min left" in body
    deadline = open_round.closes_at.isoformat()
    assert f'class="countdown" data-deadline="{deadline}"' in body

    form_page = text_of(page(app, rep, f"/listings/{listing.id}/bid"))
    assert 'name="account_plan"' in form_page
    assert "Scored: your track record" in form_page and "Win rate" in form_page
    assert "Not scored: your account plan, committed revenue and visit plan" in form_page
    assert "1 d 2 h 5 min left" in form_page


def test_a_waiting_reps_remedy_names_one_instant_whenever_it_is_read_and_is_drawn_once(
        app, session, open_round, make_rep, make_manager, make_account, clock):
    from bidhub.services.filings import transfer_account
    from bidhub.services.policies import months_counted_at
    from bidhub.web import listing_lines

    newcomer = make_rep(name="New Rep", hired_on=(clock() - timedelta(days=30)).date())
    # An account the newcomer gave up a day ago, listed in the round: it cools down.
    given_up = make_account(owner=newcomer)
    clock.set(clock().replace(second=41, microsecond=500) - timedelta(hours=13))
    transfer_account(session, make_manager(), account_id=given_up.id, to_rep_id=make_rep().id,
                     reason="Owner left the company.",
                     review_text="Handover done; the client was told.", now=clock())
    released_at = clock()
    clock.advance(hours=13)
    open_round.listings[0].account_id = given_up.id
    session.commit()
    client = app.test_client()
    login(client, newcomer)

    def remedies() -> str:
        body = client.get(f"/rounds/{open_round.id}").get_data(as_text=True)
        return "".join(re.findall(r'<div class="not-eligible">.*?</div>', body, re.S))

    first = remedies()
    # Tenure counts from the start of the hire day in the department's time zone.
    zone = ZoneInfo(app.config["TIMEZONE"])
    hired = datetime(*newcomer.hired_on.timetuple()[:3], tzinfo=zone)
    for instant in (months_counted_at(hired, 3), months_counted_at(released_at, 6)):
        local = instant.astimezone(zone)
        assert f"Wait until {local:%Y-%m-%d %H:%M}" in html.unescape(first)
    kept = len(listing_lines._reason_cells)
    for step in ({"seconds": 50}, {"seconds": 10}, {"hours": 7}, {"hours": 4, "minutes": 3}):
        clock.advance(**step)  # the same minute, the next, later that day, the next day
        assert remedies() == first
    assert len(listing_lines._reason_cells) == kept


def test_a_rep_on_leave_is_told_what_lifts_it(app, open_round, make_rep):
    body = text_of(page(app, make_rep(status=RepStatus.ON_LEAVE), f"/rounds/{open_round.id}"))
    assert "on leave or no longer with the company" in body
    assert "once KA management records their return" in body
    assert f"/listings/{open_round.listings[0].id}/bid" not in body


def test_a_rep_cannot_bid_for_an_account_released_from_them(app, make_rep, make_account,
                                                            make_round):
    leaver = make_rep()
    round_ = make_round(accounts=[make_account(owner=leaver)])
    body = text_of(page(app, leaver, f"/rounds/{round_.id}"))
    assert "This account was released from you; you cannot bid for it." in body
    assert f"/listings/{round_.listings[0].id}/bid" not in body


@pytest.mark.parametrize("months", [3, 6, 0.5, 2.9999, 0])
def test_a_wait_ends_at_the_first_minute_the_check_counts_the_months(clock, months):
    # The remedy's instant is when the check's count (whole days since the start, 30.4375 to
    # a month, rounded to 4 decimals as the facts are) first reaches the minimum, to the next
    # whole minute; it depends on the start alone.
    from bidhub.domain.metrics import months_between
    from bidhub.services.policies import months_counted_at

    for start in (clock() - timedelta(days=30, hours=5, seconds=17, microseconds=250),
                  clock().replace(hour=0, minute=0, second=0, microsecond=0)):
        when = months_counted_at(start, months)
        assert when.second == 0 and when.microsecond == 0 and isinstance(when.date(), date)
        assert round(months_between(start, when), 4) >= months
        if when - timedelta(minutes=1) >= start:
            assert round(months_between(start, when - timedelta(minutes=1)), 4) < months
        assert when - start < timedelta(days=math.ceil(months * 30.4375), minutes=1)


def test_a_tie_is_announced_with_the_bids_that_anyone_can_redraw(app, session, clock, make_rep,
                                                                 make_manager, make_account,
                                                                 make_round, make_bid):
    from bidhub.domain.tie_breaks import lottery_ticket

    # Twins: same record, same holdings, bids at the same instant, so only the lottery decides.
    manager, first, second = make_manager(), make_rep(name="Twin A"), make_rep(name="Twin B")
    round_ = make_round(accounts=[make_account(name="Tied Co")], manager=manager,
                        closes_at=clock() + timedelta(days=1))
    listing = round_.listings[0]
    bids = [make_bid(first, listing), make_bid(second, listing)]
    clock.advance(days=1)
    assert score_closed_round(session, round_.id, clock())
    decide_listing(session, manager, listing.id, kind=DecisionKind.ACCEPTED, bid_id=None,
                   reason="", now=clock())
    round_ = session.get(Round, round_.id)
    publish_results(session, manager, round_.id, expected_version=round_.version, now=clock())
    reload(session)
    round_ = session.get(Round, round_.id)
    body = text_of(page(app, first, f"/rounds/{round_.id}/results"))
    ids = sorted(bid.id for bid in bids)
    assert f"Tie between bids {ids[0]}, {ids[1]}" in body
    # The published seed and the published rule give the winner the announcement names.
    redrawn = min(ids, key=lambda bid_id: lottery_ticket(round_.lottery_seed, bid_id))
    winner = {bid.id: bid.rep.display_name for bid in bids}[redrawn]
    row = next(row for row in re.findall(r"<tr>(.*?)</tr>", body, re.S) if "Tied Co" in row)
    assert winner in row


def test_the_announcement_lists_accounts_in_pinyin_order(app, session, clock, make_manager,
                                                          make_account, make_round):
    """By account name as the menus order names (domain.collation), not in code point order
    (张 李 王 陈)."""
    manager = make_manager()
    names = ["张氏物流", "李记餐饮", "王牌科技", "陈氏集团"]
    round_ = make_round(accounts=[make_account(name=name) for name in names], manager=manager,
                        closes_at=clock() + timedelta(days=1))
    clock.advance(days=1)
    assert score_closed_round(session, round_.id, clock())
    for listing in round_.listings:
        decide_listing(session, manager, listing.id, kind=DecisionKind.NO_AWARD, bid_id=None,
                       reason=NO_AWARD_REASON, now=clock())
    round_ = session.get(Round, round_.id)
    publish_results(session, manager, round_.id, expected_version=round_.version, now=clock())
    reload(session)
    body = text_of(page(app, manager, f"/rounds/{round_.id}/results"))
    table = re.search(r'id="announcement"(.*?)</table>', body, re.S).group(1)
    assert re.findall(r'<td class="name">(\S+) <small', table) == [
        "陈氏集团", "李记餐饮", "王牌科技", "张氏物流"]


def test_eligibility_on_every_row_adds_no_query_per_row(app, make_rep, make_account, make_round,
                                                       give_accounts, login_as):
    from tests.test_queries import statements_for

    full = make_rep()
    give_accounts(full, 40)
    small = make_round(accounts=[make_account() for _ in range(3)])
    large = make_round(accounts=[make_account() for _ in range(30)])
    client = login_as(full)
    assert "Not eligible" in client.get(f"/rounds/{large.id}").get_data(as_text=True)
    assert statements_for(app, client, f"/rounds/{small.id}") == statements_for(
        app, client, f"/rounds/{large.id}")


def test_the_standard_no_bid_reason_is_announced_in_the_readers_language(app, world):
    score(world)
    session, manager, now = world["session"], world["manager"], world["clock"]()
    listings = world["listings"]
    decide_listing(session, manager, listings["overridden"].id, kind=DecisionKind.ACCEPTED,
                   bid_id=None, reason="", now=now)
    decide_listing(session, manager, listings["by_score"].id, kind=DecisionKind.ACCEPTED,
                   bid_id=None, reason="", now=now)
    decide_listing(session, manager, listings["declined"].id, kind=DecisionKind.NO_AWARD,
                   bid_id=None, reason=DECLINED_REASON, now=now)
    round_ = publish(world)  # the listing nobody bid for gets bidhub's standard reason
    client = app.test_client()
    login(client, world["steady"])
    chinese = text_of(client.get(f"/rounds/{round_.id}/results",
                                 headers={"Accept-Language": "zh-CN"}))
    assert "没有人竞标该客户，因此不授予。" in chinese
    assert "Nobody bid for this account" not in chinese
    english = text_of(client.get(f"/rounds/{round_.id}/results"))
    assert "Nobody bid for this account, so it is not awarded." in english
