"""Blind review (匿名评审) around the reviewers' pages: naming reviewers, the review's progress
and early close on the round page, bidders hidden until scoring, reviews shown after it."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from bidhub.models import Account, Bid, Listing, Role, Round, RoundStatus, User
from bidhub.services.adjudication import close_due_rounds, decide_listing, publish_results
from bidhub.services.application_reviews import (
    review_queue,
    reviewers_of,
    submit_review,
)
from tests.conftest import client_of, reload

# The bidder's identity: none of it may appear beside anything of the round until scoring.
IDENTITY = ("Zqx Bidder Marker", "zqx-bidder-login", "EMP-ZQX-77", "Zqx Branch Marker")
# Things of the round: on a page with the bidder's identity, they would tell who bid for what.
ROUND_MARKERS = ("Zqx Account Marker", "Zqx Round Marker", "ZQX-PLAN-MARKER")
NOTE_MARKER = "ZQX-NOTE-MARKER"

@pytest.fixture
def world(app, session, clock, make_branch, make_user, make_rep, make_manager, make_admin,
          make_account, make_round, make_bid, adopt_review_rules):
    """A published round under review rules with two named reviewers and three bids, one of
    them from a bidder whose name, login, employee id and branch are markers."""
    # A round made before the review rules were adopted keeps the rules without a review.
    plain = make_round(accounts=[make_account()], title="Plain round")
    adopt_review_rules()
    creator = make_manager(name="Round Creator")
    alpha, beta = make_manager(name="Reviewer Alpha"), make_manager(name="Reviewer Beta")
    outsider = make_manager(name="Manager Outsider")
    bidder = make_rep(name=IDENTITY[0], username=IDENTITY[1],
                      branch=make_branch("ZQX", IDENTITY[3]))
    bidder.external_id = IDENTITY[2]
    rival = make_rep(name="Rival Rep")
    marked, other = make_account(name=ROUND_MARKERS[0]), make_account(name="Other Account")
    deadline = clock() + timedelta(days=2)
    round_ = make_round(accounts=[marked, other], title=ROUND_MARKERS[1], closes_at=deadline,
                        manager=creator)
    listing_of = {listing.account_id: listing for listing in round_.listings}
    bid = make_bid(bidder, listing_of[marked.id], plan=f"Weekly visits. {ROUND_MARKERS[2]}",
                   revenue=987_654)
    make_bid(rival, listing_of[marked.id])
    make_bid(rival, listing_of[other.id])
    draft = make_round(accounts=[make_account()], status=RoundStatus.DRAFT, title="Draft round",
                       opens_at=clock() + timedelta(days=1), manager=creator)
    return {"app": app, "session": session, "clock": clock, "round": round_, "plain": plain,
            "draft": draft, "creator": creator, "alpha": alpha, "beta": beta,
            "outsider": outsider, "admin": make_admin(name="Admin Person"), "bidder": bidder,
            "rival": rival, "bid": bid, "marked_listing": listing_of[marked.id],
            "deadline": deadline}


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def name(world, *reviewers) -> None:
    response = client_of(world["app"], world["creator"]).post(
        f"/manage/rounds/{world['round'].id}/reviewers",
        data={"reviewer_ids": [str(user.id) for user in reviewers]})
    assert response.status_code == 303, text_of(response)[:2000]


def start_review(world) -> Round:
    name(world, world["alpha"], world["beta"])
    world["clock"].set(world["deadline"])
    close_due_rounds(world["session"], world["clock"]())
    reload(world["session"])
    round_ = world["session"].get(Round, world["round"].id)
    assert round_.status == RoundStatus.IN_REVIEW
    return round_


def review(world, reviewer, *, only_code: str | None = None, points: int = 4) -> None:
    session = world["session"]
    for item in review_queue(session, reviewer, world["round"].id):
        if only_code is None or item.code == only_code:
            submit_review(session, reviewer, world["round"].id, item.code,
                          {"plan_quality": points, "feasibility": 3},
                          f"{NOTE_MARKER} points {points}",
                          world["clock"]())
    reload(session)


def bidder_code(world) -> str:
    return world["session"].get(Bid, world["bid"].id).review_code


def score_by_reviews(world) -> None:
    start_review(world)
    review(world, world["alpha"])
    review(world, world["beta"], points=5)
    assert world["session"].get(Round, world["round"].id).status == RoundStatus.SCORED


def publish(world) -> None:
    session, manager = world["session"], world["creator"]
    for listing in session.scalars(select(Listing).where(Listing.round_id == world["round"].id)):
        decide_listing(session, manager, listing.id, kind="accepted", bid_id=None, reason="",
                       now=world["clock"]())
    round_ = session.get(Round, world["round"].id)
    publish_results(session, manager, round_.id, expected_version=round_.version,
                    now=world["clock"]())
    reload(session)


# --- naming the reviewers ------------------------------------------------------------------

def test_the_round_page_offers_active_managers_as_reviewers_before_the_deadline(world):
    page = text_of(client_of(world["app"], world["creator"]).get(
        f"/manage/rounds/{world['round'].id}"))
    assert "Name the reviewers" in page and "No reviewers named yet" in page
    boxes = re.findall(r'name="reviewer_ids" value="(\d+)"', page)
    managers = set(world["session"].scalars(select(User.id).where(User.role == Role.KA_MANAGER)))
    assert {world[who].id for who in ("creator", "alpha", "beta", "outsider")} <= managers
    assert set(map(int, boxes)) == managers  # no rep, no admin
    assert "Plan quality (1–5)" in page


def test_a_round_whose_rules_have_no_review_shows_no_review_card(world):
    client = client_of(world["app"], world["creator"])
    assert 'id="blind-review"' not in text_of(client.get(f"/manage/rounds/{world['plain'].id}"))
    response = client.post(f"/manage/rounds/{world['plain'].id}/reviewers",
                           data={"reviewer_ids": [str(world["alpha"].id)]})
    assert response.status_code == 422
    assert "This round's rules have no blind review" in text_of(response)
    assert reviewers_of(world["session"], world["plain"].id) == []


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_review_forms_posted_for_a_round_without_review_say_so_and_change_nothing(
        world, language):
    """Whatever the form holds: an empty or forged one was answered 422 with no message, the
    page having no review card to show the form's errors on."""
    session, plain = world["session"], world["plain"]
    client = client_of(world["app"], world["creator"])
    headers = {"Accept-Language": language}
    before = (plain.status, plain.version, plain.review_closed_at)
    reviewers = {"en": "This round's rules have no blind review, so it has no reviewers.",
                 "zh-CN": "本轮规则没有匿名评审，因此没有评审人。"}[language]
    closing = {"en": "This round's rules have no blind review.",
               "zh-CN": "本轮规则没有匿名评审。"}[language]
    for data in ({}, {"reviewer_ids": []}, {"reviewer_ids": ["abc"]},
                 {"reviewer_ids": [str(world["alpha"].id)]}):
        response = client.post(f"/manage/rounds/{plain.id}/reviewers", data=data,
                               headers=headers)
        assert response.status_code == 422, data
        assert reviewers in text_of(response), data
    for data in ({}, {"reason": ""}, {"reason": "short"},
                 {"reason": "The reviewers are away for the whole week."}):
        response = client.post(f"/manage/rounds/{plain.id}/review/close", data=data,
                               headers=headers)
        assert response.status_code == 422, data
        assert closing in text_of(response), data
    reload(session)
    plain = session.get(Round, plain.id)
    assert (plain.status, plain.version, plain.review_closed_at) == before
    assert reviewers_of(session, plain.id) == []


def test_named_reviewers_are_saved_and_listed(world):
    name(world, world["beta"], world["alpha"])
    reload(world["session"])
    assert [user.id for user in reviewers_of(world["session"], world["round"].id)] == [
        world["alpha"].id, world["beta"].id]
    page = text_of(client_of(world["app"], world["admin"]).get(
        f"/manage/rounds/{world['round'].id}"))
    assert "Reviewers: Reviewer Alpha, Reviewer Beta" in re.sub(r"<[^>]+>", "", page)
    chinese = text_of(client_of(world["app"], world["admin"]).get(
        f"/manage/rounds/{world['round'].id}", headers={"Accept-Language": "zh-CN"}))
    assert "评审人：Reviewer Alpha、Reviewer Beta" in re.sub(r"<[^>]+>", "", chinese)
    assert re.search(rf'value="{world["alpha"].id}" checked', page)
    assert not re.search(rf'value="{world["outsider"].id}" checked', page)


def test_a_draft_round_takes_reviewers_too(world):
    client = client_of(world["app"], world["creator"])
    response = client.post(f"/manage/rounds/{world['draft'].id}/reviewers",
                           data={"reviewer_ids": [str(world["outsider"].id)]})
    assert response.status_code == 303
    reload(world["session"])
    assert reviewers_of(world["session"], world["draft"].id) == [world["outsider"]]


@pytest.mark.parametrize("picked, message", [
    ([], "Name at least one reviewer."),
    (["abc"], "Choose the reviewers from the list of active KA managers."),
    (["1e3"], "Choose the reviewers from the list of active KA managers."),
    ([str(2**70)], "Choose the reviewers from the list of active KA managers."),
    (["bidder"], "Choose the reviewers from the list of active KA managers."),
    (["admin"], "Choose the reviewers from the list of active KA managers."),
    (["alpha", "rival"], "Choose the reviewers from the list of active KA managers."),
])
def test_bad_picks_are_refused_with_a_message_and_change_nothing(world, picked, message):
    name(world, world["outsider"])
    values = [str(world[value].id) if value in world else value for value in picked]
    response = client_of(world["app"], world["creator"]).post(
        f"/manage/rounds/{world['round'].id}/reviewers", data={"reviewer_ids": values})
    assert response.status_code == 422
    page = text_of(response)
    assert message in page and 'id="blind-review"' in page
    reload(world["session"])
    assert reviewers_of(world["session"], world["round"].id) == [world["outsider"]]


def test_a_deactivated_manager_is_refused(world):
    world["beta"].is_active = False
    world["session"].commit()
    response = client_of(world["app"], world["creator"]).post(
        f"/manage/rounds/{world['round'].id}/reviewers",
        data={"reviewer_ids": [str(world["beta"].id)]})
    assert response.status_code == 422
    assert "Choose the reviewers from the list of active KA managers." in text_of(response)


def test_during_the_review_reviewers_may_be_added_not_removed(world):
    start_review(world)
    client = client_of(world["app"], world["creator"])
    url = f"/manage/rounds/{world['round'].id}/reviewers"
    removed = client.post(url, data={"reviewer_ids": [str(world["alpha"].id)]})
    assert removed.status_code == 422
    assert "reviewers can be added but not removed" in text_of(removed)
    added = client.post(url, data={"reviewer_ids": [
        str(world[who].id) for who in ("alpha", "beta", "outsider")]})
    assert added.status_code == 303
    reload(world["session"])
    assert len(reviewers_of(world["session"], world["round"].id)) == 3


# --- the review's progress and its early close -----------------------------------------------

def test_the_round_page_shows_the_reviews_progress_in_counts_only(world):
    start_review(world)
    review(world, world["alpha"], only_code=bidder_code(world))
    page = text_of(client_of(world["app"], world["creator"]).get(
        f"/manage/rounds/{world['round'].id}"))
    assert "In blind review" in page
    assert "0 of 3 applications have their reviews." in page
    rows = re.findall(r'<td class="name">([^<]+)</td><td class="num">([^<]+)</td>', page)
    assert ("Reviewer Alpha", "1 of 3") in rows and ("Reviewer Beta", "0 of 3") in rows
    assert "Close the review early" in page
    assert NOTE_MARKER not in page and "plan_quality" not in page
    for marker in IDENTITY:
        assert marker not in page


def test_closing_the_review_early_needs_a_reason(world):
    start_review(world)
    review(world, world["alpha"], only_code=bidder_code(world))
    client = client_of(world["app"], world["creator"])
    url = f"/manage/rounds/{world['round'].id}/review/close"
    for reason in ("", "   ", " " * 40, "too short"):
        response = client.post(url, data={"reason": reason})
        assert response.status_code == 422, reason
        page = text_of(response)
        assert 'id="close-review"' in page and 'class="error"' in page, reason
        reload(world["session"])
        round_ = world["session"].get(Round, world["round"].id)
        assert round_.status == RoundStatus.IN_REVIEW and round_.review_closed_at is None

    reason = "Beta is on leave until the end of the month."
    response = client.post(url, data={"reason": reason})
    assert response.status_code == 303
    reload(world["session"])
    round_ = world["session"].get(Round, world["round"].id)
    assert round_.status == RoundStatus.SCORED and round_.review_close_reason == reason
    page = text_of(client.get(f"/manage/rounds/{world['round'].id}"))
    assert "Round Creator closed the review early on" in page and reason in page
    assert re.search(r"closed the review early on [^<]*: <span class=\"prose\">", page)
    chinese = text_of(client.get(f"/manage/rounds/{world['round'].id}",
                                 headers={"Accept-Language": "zh-CN"}))
    assert re.search(r"提前结束了评审，理由：<span class=\"prose\">", chinese)
    assert "1 of 3" in page  # Alpha's one review, still counted after scoring
    assert "Close the review early" not in page and "Name the reviewers" not in page


def test_a_round_not_in_review_cannot_be_closed(world):
    response = client_of(world["app"], world["creator"]).post(
        f"/manage/rounds/{world['round'].id}/review/close",
        data={"reason": "The review should end now, please."})
    assert response.status_code == 422
    assert "Only a round in blind review can have its review closed." in text_of(response)
    reload(world["session"])
    assert world["session"].get(Round, world["round"].id).status == RoundStatus.PUBLISHED


def test_the_review_routes_are_for_management_only(world):
    rep = client_of(world["app"], world["rival"])
    for url in (f"/manage/rounds/{world['round'].id}/reviewers",
                f"/manage/rounds/{world['round'].id}/review/close"):
        assert rep.post(url, data={"reviewer_ids": [str(world["rival"].id)],
                                   "reason": "Rep tries to close it."}).status_code == 403
    missing = client_of(world["app"], world["creator"])
    assert missing.post("/manage/rounds/999999/reviewers",
                        data={"reviewer_ids": [str(world["alpha"].id)]}).status_code == 404


# --- bidders stay hidden until scoring -----------------------------------------------------

def route_ids(world) -> dict[str, object]:
    session = world["session"]
    return {"round_id": world["round"].id, "listing_id": world["marked_listing"].id,
            "bid_id": world["bid"].id, "account_id": world["marked_listing"].account_id,
            "user_id": world["bidder"].id, "rep_id": world["bidder"].id,
            "branch_id": world["bidder"].branch_id, "code": bidder_code(world),
            "version_id": world["round"].rule_set_id,
            "notification_id": 1, "token": "none",
            "account_number": session.get(Account, world["marked_listing"].account_id
                                          ).external_id}


def url_of(rule, ids) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda match: str(ids.get(match.group(1), 1)),
                  rule.rule)


@pytest.mark.parametrize("who", ["alpha", "outsider", "admin", "rival"])
def test_no_page_ties_a_bidder_to_a_round_in_review(world, who):
    """Every GET page, fragment and export, as a named reviewer, another manager, an admin and
    another bidder: none shows the bidder's name, login or employee id together with the
    round, its account, the plan or a review. (Branch names are in every branch menu; the
    round's own pages are checked for the branch below.)"""
    start_review(world)
    review(world, world["alpha"], only_code=bidder_code(world))
    ids = route_ids(world)
    client = client_of(world["app"], world[who])
    seen = 0
    for rule in world["app"].url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in ("static", "auth.logout"):
            continue
        url = url_of(rule, ids)
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get(url, headers=headers)
            assert response.status_code < 500, url
            body = text_of(response)
            shown = [marker for marker in IDENTITY[:3] if marker in body]
            tied = [marker for marker in (*ROUND_MARKERS, NOTE_MARKER, "987,654")
                    if marker in body]
            assert not (shown and tied), (who, url, shown, tied)
            seen += 1
    assert seen > 100


def test_management_pages_name_no_bidder_of_a_round_in_review(world):
    """The round's pages name no bidder (no branch either); the pages about people (the
    capacity board, the register, the reps) say nothing of the round."""
    start_review(world)
    client = client_of(world["app"], world["admin"])
    round_id, listing_id = world["round"].id, world["marked_listing"].id
    for url in (f"/manage/rounds/{round_id}", f"/manage/listings/{listing_id}",
                f"/manage/rounds/{round_id}?q=Zqx", "/manage/rounds", "/manage",
                "/manage/fairness", "/manage/fairness.csv", "/manage/appeals"):
        response = client.get(url)
        assert response.status_code == 200, url
        body = text_of(response)
        assert not [marker for marker in (*IDENTITY, "Rival Rep") if marker in body], url
    bidder = world["bidder"].id
    for url in ("/board", "/board?band=below", f"/board/reps/{bidder}", "/manage/filings",
                "/manage/filings.csv", "/reps", f"/reps/{bidder}"):
        response = client.get(url)
        assert response.status_code == 200, url
        body = text_of(response)
        assert not [marker for marker in (*ROUND_MARKERS, "987,654") if marker in body], url


# --- after scoring: management sees reviews with the bidders -------------------------------

def test_after_scoring_the_listing_page_shows_each_bids_reviews_with_the_bidder(world):
    start_review(world)
    client = client_of(world["app"], world["creator"])
    listing_url = f"/manage/listings/{world['marked_listing'].id}"
    assert NOTE_MARKER not in text_of(client.get(listing_url))
    review(world, world["alpha"])
    review(world, world["beta"], points=5)
    page = text_of(client.get(listing_url))
    assert IDENTITY[0] in page and "Rival Rep" in page
    assert f"{NOTE_MARKER} points 4" in page and f"{NOTE_MARKER} points 5" in page
    assert "Reviewer Alpha" in page and "Reviewer Beta" in page
    assert "Plan quality" in page and "Feasibility" in page
    assert "3.50" in page and "4.00" in page  # (4+3)/2 and (5+3)/2


# --- the rep's view ------------------------------------------------------------------------

def bid_page(world) -> str:
    response = client_of(world["app"], world["bidder"]).get(f"/bids/{world['bid'].id}")
    assert response.status_code == 200
    return text_of(response)


def test_the_rep_sees_the_reviews_of_their_application_only_after_publication(world):
    start_review(world)
    page = bid_page(world)
    assert "applications are in blind review" in page and "In blind review" in page
    review(world, world["alpha"])
    assert NOTE_MARKER not in bid_page(world)
    review(world, world["beta"], points=5)
    page = bid_page(world)  # scored, not yet published
    assert NOTE_MARKER not in page and "How reviewers scored" not in page
    publish(world)
    page = bid_page(world)
    assert "How reviewers scored your application" in page
    assert f"{NOTE_MARKER} points 4" in page and f"{NOTE_MARKER} points 5" in page
    assert "Reviewer Alpha" not in page and "Reviewer Beta" not in page  # not who wrote them
    assert "Mean of the reviews <strong>3.75</strong>" in page  # (3.5 + 4.0) / 2
    assert "Plan quality" in page and "Feasibility" in page


def test_reviewer_names_are_shown_to_the_rep_when_the_rules_say_so(world, make_round,
                                                                   make_account, make_bid,
                                                                   adopt_review_rules):
    adopt_review_rules(show_names=True)
    round_ = make_round(accounts=[make_account()], closes_at=world["deadline"],
                        manager=world["creator"], title="Named round")
    bid = make_bid(world["bidder"], round_.listings[0])
    world.update(round=round_, bid=bid)
    score_by_reviews(world)
    publish(world)
    page = bid_page(world)
    assert "Reviewer Alpha" in page and "Reviewer Beta" in page


def test_reps_see_the_review_state_where_they_see_the_round(world):
    start_review(world)
    client = client_of(world["app"], world["bidder"])
    for url in ("/rounds", f"/rounds/{world['round'].id}", "/my/bids", "/my/track-record"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "In blind review" in text_of(response), url
    manager = client_of(world["app"], world["creator"])
    assert "In blind review" in text_of(manager.get("/manage/rounds"))
    for url in ("/manage", "/board", "/notifications"):
        assert manager.get(url).status_code == 200, url


def test_the_review_card_and_the_reps_view_speak_chinese(world):
    from tests.test_i18n import ALLOWED_WORDS, english_words, visible_text

    start_review(world)
    chinese = {"Accept-Language": "zh-CN"}
    # The world's names and data (users, accounts, branches, criteria), not interface words.
    data = frozenset({"Round", "Creator", "Reviewer", "Alpha", "Beta", "Manager", "Outsider",
                      "Admin", "Person", "Rival", "Rep", "Account", "Other", "Marker", "Zqx",
                      "Plan", "quality", "Feasibility", "Draft", "round", "Plain", "reviewed",
                      "Ka", "Internet", "Beijing", "Bidder", "Branch"})
    pages = []
    manager = client_of(world["app"], world["creator"])
    pages.append(manager.get(f"/manage/rounds/{world['round'].id}", headers=chinese))
    response = manager.post(f"/manage/rounds/{world['round'].id}/review/close",
                            data={"reason": ""}, headers=chinese)
    assert response.status_code == 422
    pages.append(response)
    rep = client_of(world["app"], world["bidder"])
    for url in ("/rounds", f"/rounds/{world['round'].id}", "/my/bids",
                f"/bids/{world['bid'].id}"):
        pages.append(rep.get(url, headers=chinese))
    assert "匿名评审中" in pages[2].get_data(as_text=True)
    review(world, world["alpha"])
    review(world, world["beta"])
    publish(world)
    pages.append(rep.get(f"/bids/{world['bid'].id}", headers=chinese))
    pages.append(manager.get(f"/manage/listings/{world['marked_listing'].id}", headers=chinese))
    for response in pages:
        words = english_words(visible_text(response.get_data(as_text=True)),
                              ALLOWED_WORDS | data | {"ZQX", "PLAN", "MARKER", "NOTE", "points",
                                                      "Weekly", "visits", "careful", "plan",
                                                      "this", "account", "Visit", "the",
                                                      "decision", "maker", "in", "week",
                                                      "one", "Co", "Ltd", "for", "A"})
        assert not words, (response.request.path, words)


# --- a fixed number of statements ----------------------------------------------------------

def test_the_review_card_and_the_reviews_do_not_grow_queries_with_rows(
        app, session, clock, make_rep, make_manager, make_account, make_round, make_bid,
        adopt_review_rules):
    from bidhub.services.application_reviews import close_review, name_reviewers
    from tests.test_queries import statements_for

    adopt_review_rules()
    managers = [make_manager() for _ in range(4)]
    reps = [make_rep() for _ in range(3)]
    deadline = clock() + timedelta(days=1)
    small = make_round(accounts=[make_account() for _ in range(2)], closes_at=deadline,
                       manager=managers[0])
    large = make_round(accounts=[make_account() for _ in range(12)], closes_at=deadline,
                       manager=managers[0])
    for round_, bidders, reviewers in ((small, reps[:1], managers[:1]), (large, reps, managers)):
        for listing in round_.listings:
            for rep in bidders:
                make_bid(rep, listing)
        name_reviewers(session, managers[0], round_.id, [user.id for user in reviewers],
                       clock())
    clock.set(deadline)
    close_due_rounds(session, clock())
    for round_ in (small, large):
        for item in review_queue(session, managers[0], round_.id):
            submit_review(session, managers[0], round_.id, item.code,
                          {"plan_quality": 3, "feasibility": 4}, "A plan worth trying.",
                          clock())
    client = client_of(app, managers[1])
    few = statements_for(app, client, f"/manage/rounds/{small.id}")
    assert statements_for(app, client, f"/manage/rounds/{large.id}") == few
    for round_ in (small, large):
        close_review(session, managers[0], round_.id, "The second reviewer is away.", clock())
    reload(session)
    few = statements_for(app, client, f"/manage/listings/{small.listings[0].id}")
    assert statements_for(app, client, f"/manage/listings/{large.listings[0].id}") == few
    # The scored round's page: the review card's own statements (the adjudication table's
    # flags are bounded in tests/test_queries.py).
    assert review_statements(app, client, small.id) == review_statements(app, client, large.id)


def review_statements(app, client, round_id: int) -> list[str]:
    from tests.test_queries import counted_statements

    client.get(f"/manage/rounds/{round_id}")
    with counted_statements(app) as statements:
        assert client.get(f"/manage/rounds/{round_id}").status_code == 200
    mine = [statement for statement in statements
            if "round_reviewers" in statement or "application_reviews" in statement]
    assert mine
    return mine


def test_the_named_reviewers_are_told_when_the_review_starts(world):
    start_review(world)
    close_due_rounds(world["session"], world["clock"]())  # nothing new: told once
    told = "is in blind review: you are named to score its applications"
    for who, expected in (("alpha", 1), ("beta", 1), ("outsider", 0), ("bidder", 0)):
        page = text_of(client_of(world["app"], world[who]).get("/notifications"))
        assert page.count(told) == expected, who


def test_the_score_button_says_the_round_went_into_review(world):
    name(world, world["alpha"], world["beta"])
    world["clock"].set(world["deadline"])
    client = client_of(world["app"], world["creator"])
    response = client.post(f"/manage/rounds/{world['round'].id}/score", follow_redirects=True)
    assert "The applications are now in blind review." in text_of(response)
    reload(world["session"])
    assert world["session"].get(Round, world["round"].id).status == RoundStatus.IN_REVIEW


def labelled_ids(page: str) -> list[str]:
    """The ids of a page's visible form controls (hidden inputs carry no label)."""
    return [found.group(2) for found in re.finditer(
        r'<(input|select|textarea)\b(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', page)]


def test_each_reason_box_of_a_round_page_has_its_own_id(world):
    """The cancellation's reason shared the id "reason" with the release form's reason (a
    draft) and the early close's (a round in review): its label then put the focus, and a
    screen reader's name, on the other form's box."""
    client = client_of(world["app"], world["creator"])
    start_review(world)
    for round_ in (world["draft"], world["round"]):
        page = client.get(f"/manage/rounds/{round_.id}").get_data(as_text=True)
        ids = labelled_ids(page)
        assert len(ids) == len(set(ids)), sorted(ids)
        assert 'for="cancel-reason"' in page and 'id="cancel-reason"' in page
