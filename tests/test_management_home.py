"""Management's home page: what needs them now, each with a count and a link, in bounded queries."""

from __future__ import annotations

import re
from datetime import timedelta

from bidhub.models import (
    AccountabilityIncident,
    AccountReview,
    Appeal,
    AppealStatus,
    IncidentStatus,
    ListingStatus,
    LossReviewStatus,
    RoundStatus,
    TransferRequest,
    TransferRequestStatus,
)
from bidhub.services.capacity_board import Band, capacity_board, management_agenda
from tests.conftest import login
from tests.test_queries import statements_for


def count_in(page: str, item: str) -> int:
    match = re.search(rf'id="agenda-{item}"><strong class="count">(\d+)</strong>', page)
    assert match, item
    return int(match.group(1))


def test_nothing_waiting(client, make_manager, make_rep, give_accounts, session, clock):
    give_accounts(make_rep(), 35)  # inside the band
    agenda = management_agenda(session, clock())
    assert agenda.is_empty
    login(client, make_manager())
    page = client.get("/manage").get_data(as_text=True)
    assert 'id="nothing-waiting"' in page
    for item in ("rounds", "appeals", "confirmations", "explanations", "reviews", "above",
                 "below"):
        assert count_in(page, item) == 0
    assert page.count("nothing waiting") == 7


def incident(account, rep, clock, *, due_days: int, status=IncidentStatus.OPEN):
    return AccountabilityIncident(account_id=account.id, rep_id=rep.id,
                                  competitor_site="51job.com", ad_type="logo", seen_at=clock(),
                                  status=status,
                                  explanation_due_at=clock() + timedelta(days=due_days))


def review(account, rep, clock, *, due_days: int, status=LossReviewStatus.DUE):
    return AccountReview(account_id=account.id, rep_id=rep.id, reason="over_capacity",
                         created_at=clock(), status=status,
                         due_at=clock() + timedelta(days=due_days))


def busy_world(session, make_rep, make_manager, make_admin, make_account, give_accounts,
               make_round, make_bid, clock):
    """Two scored rounds, a pending and an answered appeal, a sponsored release and a sponsored
    transfer waiting, overdue and not-yet-due explanations and reviews, reps outside the band."""
    manager = make_manager()
    above, below, inside = make_rep(), make_rep(), make_rep()
    give_accounts(above, 41)
    give_accounts(inside, 30)
    give_accounts(below, 3)
    scored = [make_round(accounts=[make_account()], status=RoundStatus.SCORED,
                         title=f"Scored {n}") for n in (1, 2)]
    standstill = make_round(accounts=[make_account(), make_account()],
                            status=RoundStatus.STANDSTILL, title="In standstill")
    for listing in standstill.listings:  # announced: decided, waiting for its window to end
        listing.status = ListingStatus.DECIDED
    bid = make_bid(below, make_round(accounts=[make_account()]).listings[0])
    session.add_all([
        Appeal(listing_id=standstill.listings[0].id, appellant_id=below.id, ground="x" * 30,
               filed_at=clock(), status=AppealStatus.PENDING),
        Appeal(listing_id=standstill.listings[1].id, appellant_id=below.id, ground="y" * 30,
               filed_at=clock(), status=AppealStatus.REJECTED),
    ])
    awaiting = make_round(accounts=[make_account(owner=inside)], status=RoundStatus.DRAFT,
                          title="Sponsored draft")
    awaiting.listings[0].status = ListingStatus.AWAITING_CONFIRMATION
    sponsored = make_account(owner=inside)
    executive = make_admin()  # any user can stand as the sponsor row's person here
    session.add(TransferRequest(account_id=sponsored.id, from_rep_id=inside.id, to_rep_id=below.id,
                                sponsor_id=executive.id, reason="Moving", requested_by_id=manager.id,
                                requested_at=clock(), status=TransferRequestStatus.WAITING))
    watched = make_account(owner=above)
    session.add_all([
        incident(watched, above, clock, due_days=-1),
        incident(watched, above, clock, due_days=-3),
        incident(watched, above, clock, due_days=2),  # not due yet
        incident(watched, above, clock, due_days=-5, status=IncidentStatus.EXPLAINED),
        review(watched, above, clock, due_days=-1),
        review(watched, above, clock, due_days=4),  # not due yet
        review(watched, above, clock, due_days=-9, status=LossReviewStatus.SUBMITTED),
    ])
    session.commit()
    assert bid.id
    return {"manager": manager, "scored": scored, "standstill": standstill,
            "awaiting": awaiting}


def test_each_item_with_its_count_and_link(client, session, make_rep, make_manager, make_admin,
                                           make_account, give_accounts, make_round, make_bid,
                                           clock):
    world = busy_world(session, make_rep, make_manager, make_admin, make_account, give_accounts,
                       make_round, make_bid, clock)
    agenda = management_agenda(session, clock())
    assert agenda.rounds_to_decide_count == 2
    assert agenda.appeals_pending == 1
    assert agenda.oldest_appeal_round_id == world["standstill"].id
    assert (agenda.listings_awaiting_confirmation, agenda.transfers_waiting) == (1, 1)
    assert agenda.overdue_explanations == 2
    assert agenda.overdue_reviews == 1
    assert (agenda.reps_above, agenda.reps_below) == (1, 1)
    assert not agenda.is_empty

    login(client, world["manager"])
    page = client.get("/manage").get_data(as_text=True)
    assert 'id="nothing-waiting"' not in page
    assert (count_in(page, "rounds"), count_in(page, "appeals"),
            count_in(page, "confirmations"), count_in(page, "explanations"),
            count_in(page, "reviews"), count_in(page, "above"), count_in(page, "below")) == (
        2, 1, 2, 2, 1, 1, 1)
    for round_ in world["scored"]:
        assert f'href="/manage/rounds/{round_.id}"' in page and round_.title in page
    assert 'href="/board?band=above"' in page and 'href="/board?band=below"' in page
    assert "/manage/accountability?status=open" in page
    appeals = page[page.index('id="agenda-appeals"'):page.index('id="agenda-confirmations"')]
    assert "href=" in appeals  # the appeals page, or the round of the oldest appeal


def item_text(page: str, item: str) -> str:
    """The words after an agenda item's count, up to its link or its sub-list."""
    match = re.search(rf'id="agenda-{item}"><strong class="count">\d+</strong> ([^<]+?)\s*<',
                      page)
    assert match, item
    return match.group(1).strip()


def test_each_item_reads_in_the_singular_for_one(client, session, make_rep, make_manager,
                                                 make_admin, make_account, give_accounts,
                                                 make_round, make_bid, clock):
    """"1 appeal to answer", not "1 appeals to answer"; Chinese has one form for any count."""
    world = busy_world(session, make_rep, make_manager, make_admin, make_account, give_accounts,
                       make_round, make_bid, clock)
    login(client, world["manager"])
    page = client.get("/manage").get_data(as_text=True)
    assert {item: item_text(page, item) for item in (
        "rounds", "appeals", "confirmations", "explanations", "reviews", "above", "below")} == {
        "rounds": "rounds to decide", "appeals": "appeal to answer",
        "confirmations": "confirmations waiting", "explanations": "overdue incident explanations",
        "reviews": "overdue loss review", "above": "rep above 40 accounts",
        "below": "rep below 30 accounts"}
    chinese = client.get("/manage", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert (item_text(chinese, "appeals"), item_text(chinese, "rounds")) == (
        "条申诉待答复", "个竞标轮次待裁定")
    assert item_text(chinese, "above") == "名KA销售客户数超过 40 个"


def test_a_listing_sent_back_to_decision_in_the_standstill_window_is_a_round_to_decide(
        client, session, make_manager, make_account, make_round, clock):
    """An upheld appeal sends a listing back to decision while its round is in its window: the
    round is on the list of rounds to decide until that listing is decided again."""
    announced = make_round(accounts=[make_account(), make_account()],
                           status=RoundStatus.STANDSTILL, title="Appealed round")
    for listing in announced.listings:
        listing.status = ListingStatus.DECIDED
    session.commit()
    assert management_agenda(session, clock()).rounds_to_decide_count == 0
    announced.listings[0].status = ListingStatus.LISTED  # sent back by an upheld appeal
    session.commit()
    agenda = management_agenda(session, clock())
    assert agenda.rounds_to_decide_count == 1 and agenda.rounds_to_decide[0].id == announced.id
    login(client, make_manager())
    page = client.get("/manage").get_data(as_text=True)
    assert count_in(page, "rounds") == 1 and f'href="/manage/rounds/{announced.id}"' in page


def test_the_home_page_queries_do_not_grow_with_the_work(app, client, session, make_rep,
                                                         make_manager, make_admin, make_account,
                                                         give_accounts, make_round, make_bid,
                                                         clock):
    manager = make_manager()
    login(client, manager)
    make_round(accounts=[make_account()], status=RoundStatus.SCORED)
    give_accounts(make_rep(), 2)
    few = statements_for(app, client, "/manage")
    busy_world(session, make_rep, make_manager, make_admin, make_account, give_accounts,
               make_round, make_bid, clock)
    for _ in range(12):
        make_round(accounts=[make_account()], status=RoundStatus.SCORED)
    many = statements_for(app, client, "/manage")
    assert many == few
    assert many < 25


def test_only_management_reaches_it(client, make_rep, make_admin):
    rep = make_rep()
    login(client, rep)
    assert client.get("/manage").status_code == 403
    client.post("/logout")
    assert client.get("/manage").status_code == 302
    admin_client = client
    login(admin_client, make_admin())
    assert admin_client.get("/manage").status_code == 200


def test_reps_who_left_holding_accounts_are_not_counted_in_the_bands(
        client, session, make_manager, make_rep, give_accounts, clock):
    """The home page counts the reps the capacity board's bands hold: a rep marked as left
    (whose user may still sign in) or deactivated is listed there under accounts to hand
    over, so the home page's "below" and "above" leave them out as well."""
    below, above, left_below, left_above, deactivated = (make_rep() for _ in range(5))
    for rep, held in ((below, 12), (above, 41), (left_below, 20), (left_above, 42),
                      (deactivated, 10)):
        give_accounts(rep, held)
    left_below.status = left_above.status = "left"
    deactivated.is_active = False
    session.commit()
    agenda = management_agenda(session, clock())
    assert (agenda.reps_below, agenda.reps_above) == (1, 1)
    login(client, make_manager())
    page = client.get("/manage").get_data(as_text=True)
    assert (count_in(page, "below"), count_in(page, "above")) == (1, 1)
    board = capacity_board(session)
    assert (board.band_counts[Band.BELOW], board.band_counts[Band.ABOVE]) == (1, 1)
