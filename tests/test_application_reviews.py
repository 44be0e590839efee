"""Blind review of applications (匿名评审): the round's review step, reviews, scoring and pages."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from bidhub.domain.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from bidhub.models import ApplicationReview, AuditEvent, Bid, BidScore, Round, RoundStatus
from bidhub.services import application_reviews as reviews
from bidhub.services.adjudication import close_due_rounds, score_closed_round
from bidhub.services.replays import verify_round, what_if
from bidhub.services.rule_sets import adopt_rule_set
from tests.conftest import csrf_token_from, login, reload, run_together

RULES = Path(__file__).parents[1] / "rules" / "default.toml"
REVIEW_SECTION = """
[[factors]]
metric = "plan_review"
weight = 0.30
normaliser = "minmax"

[review]
min_reviews_per_bid = 2
show_reviewer_names = false

[[review.criteria]]
name = "plan_quality"
label = "经营计划质量"
min = 1
max = 5

[[review.criteria]]
name = "feasibility"
label = "承诺可行性"
min = 1
max = 5
"""
MARKER = "BLINDMARK9q"
GOOD = {"plan_quality": 4, "feasibility": 3}
TRACK_MARKER = 98_765_431


def review_rules_text(weight: str = "0.30", show_names: bool = False) -> str:
    section = REVIEW_SECTION.replace("weight = 0.30", f"weight = {weight}")
    if show_names:
        section = section.replace("show_reviewer_names = false", "show_reviewer_names = true")
    return RULES.read_text(encoding="utf-8") + section


@pytest.fixture
def review_world(session, clock, make_manager, make_admin, make_rep, make_branch, make_account,
                 make_round, make_bid, give_accounts):
    """A published round under review rules, three bids from marked reps, two reviewers."""
    adopt_rule_set(session, None, review_rules_text(), "with review", "blind review", clock())
    session.commit()
    branch = make_branch(f"M{MARKER[-3:]}", f"Branch {MARKER}")
    first = make_rep(name=f"Rep {MARKER}", username=f"rep.{MARKER.lower()}", branch=branch)
    first.external_id = f"E{MARKER}"
    second = make_rep(name="Second Rep")
    give_accounts(first, 31)
    give_accounts(second, 33)
    accounts = [make_account(name="星河科技有限公司", annual_value_yuan=480_000),
                make_account(name="蓝海物流集团", annual_value_yuan=260_000)]
    round_ = make_round(accounts=accounts, closes_at=clock() + timedelta(days=2))
    a, b = round_.listings
    bids = [make_bid(first, a, plan="A plan for the energy account, quarterly reviews."),
            make_bid(second, a, plan="Another plan: visits every two weeks."),
            make_bid(first, b, plan="Logistics plan with a pilot in Tianjin.")]
    for bid in (bids[0], bids[2]):  # a track-record value nobody else has
        bid.track_record = {**bid.track_record, "weighted_pipeline": TRACK_MARKER}
    session.commit()
    reviewers = [make_manager(name="Reviewer Li"), make_manager(name="Reviewer Wang")]
    outsider, admin = make_manager(name="Not named"), make_admin()
    reviews.name_reviewers(session, outsider, round_.id, [r.id for r in reviewers], clock())
    return {"round": round_, "bids": bids, "reps": [first, second], "reviewers": reviewers,
            "outsider": outsider, "admin": admin, "branch": branch}


def into_review(session, clock, world) -> Round:
    clock.advance(days=3)
    assert close_due_rounds(session, clock()) == [world["round"].id]
    reload(session)
    round_ = session.get(Round, world["round"].id)
    assert round_.status == RoundStatus.IN_REVIEW
    return round_


def codes(session, world) -> list[str]:
    reload(session)
    return [session.get(Bid, bid.id).review_code for bid in world["bids"]]


def review_all(session, clock, reviewer, round_id, codes_, scores=GOOD):
    for code in codes_:
        reviews.submit_review(session, reviewer, round_id, code, scores,
                              "Solid plan, visits are concrete.", clock())


# --- the round's flow ---------------------------------------------------------------------


def test_past_the_deadline_the_round_waits_in_review_with_a_code_per_bid(session, clock,
                                                                          review_world):
    round_ = into_review(session, clock, review_world)
    found = codes(session, review_world)
    assert all(re.fullmatch(r"[A-Z2-9]{6}", code) for code in found)
    assert len(set(found)) == 3
    assert session.scalars(select(BidScore)).all() == []
    assert reviews.review_progress(session, round_.id).complete_count == 0
    # The scheduler comes back: still waiting, nothing scored.
    assert close_due_rounds(session, clock.advance(minutes=1)) == []
    assert session.get(Round, round_.id).status == RoundStatus.IN_REVIEW


def test_scoring_waits_for_the_minimum_and_the_last_review_scores_once(session, clock,
                                                                      review_world):
    round_ = into_review(session, clock, review_world)
    first, second = review_world["reviewers"]
    found = codes(session, review_world)
    review_all(session, clock, first, round_.id, found)
    review_all(session, clock, second, round_.id, found[:2])
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.IN_REVIEW
    progress = reviews.review_progress(session, round_.id)
    assert (progress.bid_count, progress.complete_count) == (3, 2)
    assert sorted(count for _, count in progress.by_reviewer) == [2, 3]
    reviews.submit_review(session, second, round_.id, found[2], {"plan_quality": 2,
                          "feasibility": 5}, "Pilot is vague but feasible.", clock())
    reload(session)
    scored = session.get(Round, round_.id)
    assert scored.status == RoundStatus.SCORED and scored.scored_at == clock()
    stored = {score.bid_id: score for score in session.scalars(select(BidScore))}
    assert len(stored) == 3
    third = review_world["bids"][2].id
    assert stored[third].inputs["metrics"]["plan_review"] == pytest.approx((3.5 + 3.5) / 2)
    factors = {factor["metric"] for factor in stored[third].breakdown["factors"]}
    assert "plan_review" in factors
    # Scored exactly once: neither the scheduler nor another call scores it again.
    assert close_due_rounds(session, clock.advance(minutes=1)) == []
    assert score_closed_round(session, round_.id, clock()) is False
    assert len(session.scalars(select(BidScore)).all()) == 3
    assert session.scalars(select(AuditEvent).where(
        AuditEvent.action == "round.scored")).all().__len__() == 1


def test_the_scheduler_scores_a_review_that_became_complete(session, clock, review_world):
    round_ = into_review(session, clock, review_world)
    found = codes(session, review_world)
    for reviewer in review_world["reviewers"]:
        for code in found:
            session.add(ApplicationReview(
                bid_id=session.scalars(select(Bid.id).where(Bid.review_code == code)).one(),
                reviewer_id=reviewer.id, scores=GOOD, note="Written while down.",
                submitted_at=clock()))
    session.commit()
    assert close_due_rounds(session, clock.advance(minutes=1)) == [round_.id]
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.SCORED


def test_closing_early_needs_a_reason_and_scores_with_the_reviews_so_far(session, clock,
                                                                        review_world):
    round_ = into_review(session, clock, review_world)
    first = review_world["reviewers"][0]
    found = codes(session, review_world)
    reviews.submit_review(session, first, round_.id, found[0], GOOD, "Concrete, measurable.",
                          clock())
    for reason in ("", "   ", "\t\n "):
        with pytest.raises(InvalidRequest) as refused:
            reviews.close_review(session, review_world["outsider"], round_.id, reason, clock())
        assert refused.value.field == "reason"
        reload(session)
        unchanged = session.get(Round, round_.id)
        assert unchanged.status == RoundStatus.IN_REVIEW and unchanged.review_closed_at is None
    with pytest.raises(PermissionDenied):
        reviews.close_review(session, review_world["reps"][0], round_.id,
                             "Wang is on leave for two weeks.", clock())
    reviews.close_review(session, review_world["outsider"], round_.id,
                         "Reviewer Wang is on leave for two weeks.", clock())
    reload(session)
    closed = session.get(Round, round_.id)
    assert closed.status == RoundStatus.SCORED
    assert closed.review_close_reason == "Reviewer Wang is on leave for two weeks."
    inputs = {score.bid_id: score.inputs["metrics"]["plan_review"]
              for score in session.scalars(select(BidScore))}
    assert inputs[review_world["bids"][0].id] == 3.5
    assert inputs[review_world["bids"][1].id] is None  # not reviewed: the missing-data rule
    progress = reviews.review_progress(session, round_.id)
    assert progress.closed_early and progress.closed_by.id == review_world["outsider"].id
    with pytest.raises(InvalidRequest):
        reviews.close_review(session, review_world["outsider"], round_.id,
                             "A second close of the same review.", clock())


def test_a_review_is_checked_and_written_once(session, clock, review_world):
    round_ = into_review(session, clock, review_world)
    first = review_world["reviewers"][0]
    code = codes(session, review_world)[0]
    cases = [({"plan_quality": 6, "feasibility": 3}, "plan_quality"),
             ({"plan_quality": 0, "feasibility": 3}, "plan_quality"),
             ({"plan_quality": 4}, "feasibility"),
             ({"plan_quality": "4.5", "feasibility": 3}, "plan_quality"),
             ({"plan_quality": True, "feasibility": 3}, "plan_quality"),
             ({**GOOD, "charm": 5}, "charm")]
    for scores, field in cases:
        with pytest.raises(InvalidRequest) as refused:
            reviews.submit_review(session, first, round_.id, code, scores, "Fine plan here.",
                                  clock())
        assert refused.value.field == field, scores
    for note in ("", "   ", "ok"):
        with pytest.raises(InvalidRequest) as refused:
            reviews.submit_review(session, first, round_.id, code, GOOD, note, clock())
        assert refused.value.field == "note"
    with pytest.raises(NotFound):
        reviews.submit_review(session, first, round_.id, "NOCODE", GOOD, "Fine plan here.",
                              clock())
    assert session.scalars(select(ApplicationReview)).all() == []
    reviews.submit_review(session, first, round_.id, code, GOOD, "Fine plan here.", clock())
    with pytest.raises(Conflict):
        reviews.submit_review(session, first, round_.id, code, {"plan_quality": 1,
                              "feasibility": 1}, "Changed my mind.", clock())
    assert [r.scores for r in session.scalars(select(ApplicationReview))] == [GOOD]


def test_only_named_reviewers_review(session, clock, review_world):
    round_ = into_review(session, clock, review_world)
    code = codes(session, review_world)[0]
    for who in (review_world["outsider"], review_world["admin"], review_world["reps"][0]):
        with pytest.raises(PermissionDenied):
            reviews.review_queue(session, who, round_.id)
        with pytest.raises(PermissionDenied):
            reviews.submit_review(session, who, round_.id, code, GOOD, "Fine plan here.",
                                  clock())
    assert reviews.rounds_to_review(session, review_world["outsider"]) == []
    [entry] = reviews.rounds_to_review(session, review_world["reviewers"][0])
    assert (entry.application_count, entry.left) == (3, 3)


def test_reviews_are_pinned_once_the_round_is_scored(session, clock, review_world):
    round_ = into_review(session, clock, review_world)
    first = review_world["reviewers"][0]
    found = codes(session, review_world)
    reviews.close_review(session, review_world["outsider"], round_.id,
                         "The deadline for the review passed.", clock())
    with pytest.raises(InvalidRequest):
        reviews.submit_review(session, first, round_.id, found[0], GOOD, "Too late a note.",
                              clock())
    assert session.scalars(select(ApplicationReview)).all() == []


def test_reviewers_see_others_scores_only_after_their_own(session, clock, review_world):
    round_ = into_review(session, clock, review_world)
    first, second = review_world["reviewers"]
    code = codes(session, review_world)[0]
    reviews.submit_review(session, first, round_.id, code, GOOD, "First reviewer's view.",
                          clock())
    item = reviews.review_item(session, second, round_.id, code)
    assert item.my_review is None and item.others == []
    reviews.submit_review(session, second, round_.id, code, {"plan_quality": 2,
                          "feasibility": 2}, "Second reviewer's view.", clock())
    item = reviews.review_item(session, second, round_.id, code)
    [other] = item.others
    assert other.scores == GOOD and other.note == "First reviewer's view."
    assert other.reviewer_name is None  # the rules keep reviewers' names hidden
    assert other.mean == 3.5


def test_naming_reviewers(session, clock, review_world, make_manager, make_rep):
    round_ = review_world["round"]
    manager = review_world["outsider"]
    first, second = review_world["reviewers"]
    assert [user.id for user in reviews.reviewers_of(session, round_.id)] == [first.id, second.id]
    with pytest.raises(InvalidRequest):
        reviews.name_reviewers(session, manager, round_.id, [], clock())
    with pytest.raises(InvalidRequest):
        reviews.name_reviewers(session, manager, round_.id, [make_rep().id], clock())
    with pytest.raises(InvalidRequest):
        reviews.name_reviewers(session, manager, round_.id, [first.id, 999_999], clock())
    with pytest.raises(PermissionDenied):
        reviews.name_reviewers(session, review_world["reps"][0], round_.id, [first.id], clock())
    assert [u.id for u in reviews.name_reviewers(session, manager, round_.id, [first.id],
                                                 clock())] == [first.id]
    reviews.name_reviewers(session, manager, round_.id, [first.id, second.id], clock())
    into_review(session, clock, review_world)
    with pytest.raises(InvalidRequest):
        reviews.name_reviewers(session, manager, round_.id, [first.id], clock())
    third = make_manager(name="Added late")
    assert len(reviews.name_reviewers(session, manager, round_.id,
                                      [first.id, second.id, third.id], clock())) == 3


# --- replays ------------------------------------------------------------------------------


def scored_with_reviews(session, clock, world) -> Round:
    round_ = into_review(session, clock, world)
    found = codes(session, world)
    first, second = world["reviewers"]
    review_all(session, clock, first, round_.id, found, {"plan_quality": 5, "feasibility": 4})
    for code, points in zip(found, (1, 5, 3), strict=True):
        reviews.submit_review(session, second, round_.id, code,
                              {"plan_quality": points, "feasibility": points},
                              "Scored on the plan's detail.", clock())
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.SCORED
    return round_


def test_rescore_verify_reproduces_a_reviewed_round_and_reports_a_tampered_review(
        app, session, clock, review_world):
    round_ = scored_with_reviews(session, clock, review_world)
    assert verify_round(session, round_.id) == []
    result = app.test_cli_runner().invoke(args=["rescore", "--verify", str(round_.id)])
    assert result.exit_code == 0, result.output
    target = review_world["bids"][1].id
    session.execute(text("UPDATE application_reviews SET scores = :scores WHERE bid_id = :bid "
                         "AND reviewer_id = :reviewer"),
                    {"scores": '{"plan_quality": 1, "feasibility": 1}', "bid": target,
                     "reviewer": review_world["reviewers"][0].id})
    session.commit()
    reload(session)
    problems = [str(problem) for problem in verify_round(session, round_.id)]
    assert any(f"bid {target}: recorded plan review" in problem for problem in problems)
    result = app.test_cli_runner().invoke(args=["rescore", "--verify", str(round_.id)])
    assert result.exit_code == 1
    assert f"bid {target}: recorded plan review" in result.output


def test_the_what_if_replays_a_reviewed_round_with_another_plan_review_weight(
        session, clock, review_world):
    from bidhub.domain.rules import parse_rules

    round_ = scored_with_reviews(session, clock, review_world)
    same = parse_rules(review_rules_text())
    _, comparison = what_if(session, round_.id, same)
    assert comparison.changed_scores == () and comparison.award_changes == ()
    heavier = parse_rules(review_rules_text(weight="3.0"))
    _, comparison = what_if(session, round_.id, heavier)
    changed = {change.bid_id: change for change in comparison.changed_scores}
    # plan_review 4.5 (bid 0) against 4.5 (bid 1)... and 3.5 (bid 2): a heavier weight moves
    # every bid whose normalised plan_review is above 0.
    assert changed, comparison
    for change in changed.values():
        assert change.after > change.before


def test_the_rules_admins_what_if_page_works_on_a_reviewed_round(app, session, clock,
                                                                  review_world):
    round_ = scored_with_reviews(session, clock, review_world)
    client = app.test_client()
    login(client, review_world["admin"])
    same = client.post("/admin/rules/what-if", data={
        "text": review_rules_text(), "round_id": str(round_.id)}).get_data(as_text=True)
    assert "0 awards would change" in same and "0 scores would change" in same
    heavier = client.post("/admin/rules/what-if", data={
        "text": review_rules_text(weight="3.0"), "round_id": str(round_.id)})
    assert heavier.status_code == 200
    assert re.search(r"[1-9]\d* scores? would change", heavier.get_data(as_text=True))


# --- what reps see ------------------------------------------------------------------------


def test_reps_see_scores_and_notes_after_publication_only(session, clock, review_world):
    from bidhub.models import DecisionKind, Listing
    from bidhub.services.adjudication import decide_listing, publish_results

    round_ = scored_with_reviews(session, clock, review_world)
    rep, other = review_world["reps"]
    bid = review_world["bids"][0]
    with pytest.raises(PermissionDenied):
        reviews.reviews_for_bid(session, rep, bid.id)
    with pytest.raises(PermissionDenied):
        reviews.reviews_for_bid(session, other, bid.id)
    shown = reviews.reviews_for_bid(session, review_world["outsider"], bid.id)
    assert sorted(review.reviewer_name for review in shown) == ["Reviewer Li", "Reviewer Wang"]
    manager = review_world["outsider"]
    for listing in session.scalars(select(Listing).where(Listing.round_id == round_.id)):
        decide_listing(session, manager, listing.id, kind=DecisionKind.ACCEPTED, bid_id=None,
                       reason="", now=clock())
    reload(session)
    publish_results(session, manager, round_.id,
                    expected_version=session.get(Round, round_.id).version, now=clock())
    reload(session)
    mine = reviews.reviews_for_bid(session, rep, bid.id)
    assert sorted(review.scores["plan_quality"] for review in mine) == [1, 5]
    assert all(review.reviewer_name is None and review.note for review in mine)
    with pytest.raises(PermissionDenied):
        reviews.reviews_for_bid(session, other, bid.id)
    by_bid = reviews.reviews_of_round(session, round_.id)
    assert sorted(by_bid) == sorted(bid.id for bid in review_world["bids"])


def test_managers_see_no_reviews_before_scoring(session, clock, review_world):
    round_ = into_review(session, clock, review_world)
    code = codes(session, review_world)[0]
    reviews.submit_review(session, review_world["reviewers"][0], round_.id, code, GOOD,
                          "Solid and concrete.", clock())
    assert reviews.reviews_for_bid(session, review_world["outsider"],
                                   review_world["bids"][0].id) == []


# --- the reviewer's pages -------------------------------------------------------------------


def identity_markers(session, world) -> list[str]:
    rep = world["reps"][0]
    return [MARKER, rep.username, rep.external_id, world["branch"].name, world["branch"].code,
            str(TRACK_MARKER), f"{TRACK_MARKER:,}", "98.8", "9,877"]


def assert_blind(body: str, markers: list[str], bid_ids: list[int], where: str) -> None:
    for marker in markers:
        assert marker not in body, (marker, where)
    for bid_id in bid_ids:
        assert f"/bids/{bid_id}" not in body and f"bid-{bid_id}\"" not in body, where
    assert "bid_id" not in body, where
    assert "Second Rep" not in body, where


def test_no_reviewer_page_shows_who_wrote_an_application(app, session, clock, review_world):
    round_ = into_review(session, clock, review_world)
    found = codes(session, review_world)
    markers = identity_markers(session, review_world)
    bid_ids = [bid.id for bid in review_world["bids"]]
    reviewer = review_world["reviewers"][0]
    client = app.test_client()
    login(client, reviewer)
    pages = ["/review/", f"/review/rounds/{round_.id}", f"/review/rounds/{round_.id}?show=todo",
             *(f"/review/rounds/{round_.id}/{code}" for code in found)]
    for url in pages:
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get(url, headers=headers)
            assert response.status_code == 200, url
            assert_blind(response.get_data(as_text=True), markers, bid_ids, url)
    page = client.get(f"/review/rounds/{round_.id}/{found[0]}").get_data(as_text=True)
    assert "经营计划质量" in page and "A plan for the energy account" in page
    token = csrf_token_from(page)
    # Garbage re-renders the form with its errors, still blind.
    for data in ({"criterion_plan_quality": "9", "criterion_feasibility": "x", "note": ""},
                 {"criterion_plan_quality": "", "note": "\x00" * 3},
                 {"criterion_plan_quality": "3", "criterion_feasibility": "3", "note": "ok"},
                 {"criterion_plan_quality": "²", "criterion_feasibility": "①",
                  "note": "Clear plan with numbers."}):
        response = client.post(f"/review/rounds/{round_.id}/{found[0]}",
                               data={"csrf_token": token, **data})
        assert response.status_code == 422, data
        assert_blind(response.get_data(as_text=True), markers, bid_ids, str(data))
    assert session.scalars(select(ApplicationReview)).all() == []
    response = client.post(f"/review/rounds/{round_.id}/{found[0]}", data={
        "csrf_token": token, "criterion_plan_quality": "4", "criterion_feasibility": "3",
        "note": "Clear plan with numbers."})
    assert response.status_code == 303
    after = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Clear plan with numbers." in after
    assert_blind(after, markers, bid_ids, "after submitting")
    # Submitting twice: refused, re-rendered without identity.
    response = client.post(f"/review/rounds/{round_.id}/{found[0]}", data={
        "csrf_token": token, "criterion_plan_quality": "1", "criterion_feasibility": "1",
        "note": "Second attempt at it."})
    assert response.status_code in (409, 422)
    assert_blind(response.get_data(as_text=True), markers, bid_ids, "second submit")


def test_the_review_page_hides_others_scores_until_the_reviewer_submits(app, session, clock,
                                                                        review_world):
    round_ = into_review(session, clock, review_world)
    code = codes(session, review_world)[0]
    first, second = review_world["reviewers"]
    reviews.submit_review(session, first, round_.id, code, GOOD, "NOTE-OF-THE-FIRST reviewer.",
                          clock())
    client = app.test_client()
    login(client, second)
    page = client.get(f"/review/rounds/{round_.id}/{code}").get_data(as_text=True)
    assert "NOTE-OF-THE-FIRST" not in page and 'id="other-reviews"' not in page
    response = client.post(f"/review/rounds/{round_.id}/{code}", data={
        "csrf_token": csrf_token_from(page), "criterion_plan_quality": "2",
        "criterion_feasibility": "2", "note": "Thin on visits."})
    assert response.status_code == 303
    page = client.get(f"/review/rounds/{round_.id}/{code}").get_data(as_text=True)
    assert "NOTE-OF-THE-FIRST" in page


def test_reviewer_pages_refuse_anyone_not_named(app, session, clock, review_world):
    round_ = into_review(session, clock, review_world)
    code = codes(session, review_world)[0]
    for who in ("outsider", "admin"):
        client = app.test_client()
        login(client, review_world[who])
        assert client.get(f"/review/rounds/{round_.id}").status_code == 403
        assert client.get(f"/review/rounds/{round_.id}/{code}").status_code == 403
        page = client.get("/review/").get_data(as_text=True)
        assert client.post(f"/review/rounds/{round_.id}/{code}", data={
            "csrf_token": csrf_token_from(page), "criterion_plan_quality": "3",
            "criterion_feasibility": "3", "note": "Not mine to write."}).status_code == 403
    client = app.test_client()
    login(client, review_world["reps"][0])
    assert client.get("/review/").status_code == 403
    assert client.get(f"/review/rounds/{round_.id}/{code}").status_code == 403
    assert session.scalars(select(ApplicationReview)).all() == []
    reviewer = app.test_client()
    login(reviewer, review_world["reviewers"][0])
    assert reviewer.get(f"/review/rounds/{round_.id}/NOCODE").status_code == 404
    assert reviewer.get("/review/rounds/999999").status_code == 404


def test_the_last_review_through_the_page_scores_the_round(app, session, clock, review_world):
    round_ = into_review(session, clock, review_world)
    found = codes(session, review_world)
    first, second = review_world["reviewers"]
    review_all(session, clock, first, round_.id, found)
    review_all(session, clock, second, round_.id, found[:2])
    client = app.test_client()
    login(client, second)
    page = client.get(f"/review/rounds/{round_.id}/{found[2]}").get_data(as_text=True)
    response = client.post(f"/review/rounds/{round_.id}/{found[2]}", data={
        "csrf_token": csrf_token_from(page), "criterion_plan_quality": "5",
        "criterion_feasibility": "4", "note": "Strong pilot design."})
    assert response.status_code == 303
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.SCORED
    # The queue stays readable, the form is gone: reviews are pinned.
    page = client.get(f"/review/rounds/{round_.id}").get_data(as_text=True)
    assert found[2] in page
    page = client.get(f"/review/rounds/{round_.id}/{found[2]}").get_data(as_text=True)
    assert "<form method=\"post\" action=\"/review" not in page


def test_the_queue_reads_a_fixed_number_of_statements(app, session, clock, review_world,
                                                      make_rep, make_account, make_bid):
    from tests.test_queries import statements_for

    round_ = review_world["round"]
    client = app.test_client()
    login(client, review_world["reviewers"][0])
    into_review(session, clock, review_world)
    few = statements_for(app, client, f"/review/rounds/{round_.id}")
    found = codes(session, review_world)
    review_all(session, clock, review_world["reviewers"][1], round_.id, found[:2])
    review_all(session, clock, review_world["reviewers"][0], round_.id, found[:2])
    assert statements_for(app, client, f"/review/rounds/{round_.id}") == few
    assert statements_for(app, client, f"/review/rounds/{round_.id}/{found[0]}") <= few + 2
    assert few <= 8  # 7 when this was written


# --- exactly once, under races and through the scheduler's job ---------------------------------


def test_the_last_reviews_racing_with_the_scheduler_score_the_round_once(app, session, clock,
                                                                       review_world):
    round_ = into_review(session, clock, review_world)
    found = codes(session, review_world)
    first, second = review_world["reviewers"]
    review_all(session, clock, first, round_.id, found)
    review_all(session, clock, second, round_.id, found[:1])
    factory = app.extensions["bidhub_sessionmaker"]
    reviewer_id = second.id

    def in_own_session(call):
        def run():
            own = factory()
            try:
                return call(own)
            finally:
                own.close()
        return run

    def submit(code):
        return in_own_session(lambda own: reviews.submit_review(
            own, own.get(type(second), reviewer_id), round_.id, code, GOOD,
            "Raced to the finish.", clock()).id)

    scheduler_run = in_own_session(lambda own: close_due_rounds(own, clock()))
    results = run_together([submit(found[1]), submit(found[2]), scheduler_run, scheduler_run])
    assert not any(isinstance(result, Exception) for result in results), results
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.SCORED
    assert len(session.scalars(select(BidScore)).all()) == 3
    assert len(session.scalars(select(AuditEvent).where(
        AuditEvent.action == "round.scored")).all()) == 1


def test_the_scheduler_job_starts_the_review_and_scores_it_when_complete(app, session, clock,
                                                                        review_world):
    from bidhub.scheduler import close_due_rounds_job

    round_id = review_world["round"].id
    assert close_due_rounds_job(app, clock()) == []  # before the deadline: nothing
    clock.advance(days=3)
    assert close_due_rounds_job(app, clock()) == [round_id]
    reload(session)
    assert session.get(Round, round_id).status == RoundStatus.IN_REVIEW
    assert close_due_rounds_job(app, clock()) == []  # waiting for the reviews
    found = codes(session, review_world)
    for reviewer in review_world["reviewers"]:
        for code in found:
            session.add(ApplicationReview(
                bid_id=session.scalars(select(Bid.id).where(Bid.review_code == code)).one(),
                reviewer_id=reviewer.id, scores=GOOD, note="Complete while the job slept.",
                submitted_at=clock()))
    session.commit()
    assert close_due_rounds_job(app, clock()) == [round_id]
    reload(session)
    assert session.get(Round, round_id).status == RoundStatus.SCORED
    assert close_due_rounds_job(app, clock()) == []


def test_an_account_in_review_stays_on_the_market(session, clock, review_world, make_rep):
    """Neither a direct transfer nor another round can take an account whose bids wait for
    their review."""
    from bidhub.domain.errors import TransferRefused
    from bidhub.services.filings import transfer_account
    from bidhub.services.ownership import unfinished_listing_of

    round_ = into_review(session, clock, review_world)
    listing = round_.listings[0]
    assert unfinished_listing_of(session, listing.account_id).id == listing.id
    with pytest.raises(TransferRefused):
        transfer_account(session, review_world["outsider"], account_id=listing.account_id,
                         to_rep_id=make_rep().id, reason="Moving it while under review.",
                         review_text="", now=clock())


def test_reviewers_are_listed_in_pinyin_order(session, clock, review_world, make_manager):
    """The round's reviewers and the review's progress list names as every menu does, on
    every database: 陈 李 王 张, not the code points' 张 李 王 陈."""
    from bidhub.domain.collation import name_key

    named = [make_manager(name=name) for name in ("张伟", "李娜", "王芳", "陈静", "Anna")]
    round_id = review_world["round"].id
    reviews.name_reviewers(session, review_world["outsider"], round_id,
                           [*(r.id for r in review_world["reviewers"]), *(r.id for r in named)],
                           clock())
    expected = sorted(["张伟", "李娜", "王芳", "陈静", "Anna", "Reviewer Li", "Reviewer Wang"],
                      key=name_key)
    assert [user.display_name for user in reviews.reviewers_of(session, round_id)] == expected
    progress = reviews.review_progress(session, round_id)
    assert [user.display_name for user, _count in progress.by_reviewer] == expected


def test_a_score_out_of_range_is_said_with_a_short_note_in_one_answer(app, session, clock,
                                                                      review_world):
    """A reviewer who typed both wrong learns of both at once: the score's range beside the
    note's length, not the range only after the note is mended."""
    round_ = into_review(session, clock, review_world)
    code = codes(session, review_world)[0]
    client = app.test_client()
    login(client, review_world["reviewers"][0])
    url = f"/review/rounds/{round_.id}/{code}"
    token = csrf_token_from(client.get(url).get_data(as_text=True))
    for typed, said in (("0", "经营计划质量的评分范围是 1 到 5 分，不能是 0 分。"),
                        ("NaN", "请为经营计划质量打分，范围 1 到 5 分。")):
        response = client.post(url, headers={"Accept-Language": "zh-CN"}, data={
            "csrf_token": token, "criterion_plan_quality": typed, "criterion_feasibility": "4",
            "note": "评审意见"})
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert said in page, typed
        assert "至少" in page and "5" in page  # the note's length, in the same answer
    assert session.scalars(select(ApplicationReview)).all() == []
