"""The standstill window's pages: a bidder's appeal, management's answers, cancellations, filings."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bidhub.models import (
    Appeal,
    AppealStatus,
    DecisionKind,
    Filing,
    Listing,
    ListingStatus,
    Round,
    RoundStatus,
)
from bidhub.services.adjudication import decide_listing, publish_results, score_closed_round
from bidhub.services.appeals import answer_appeal, apply_due_listings, file_appeal
from tests.conftest import client_of, reload

GROUND = "My plan commits twice the revenue and I already serve their Tianjin office."
ANSWER = "The winner's account plan covers all three sites; the decision stands."


@pytest.fixture
def world(session, clock, make_rep, make_manager, make_admin, make_account, make_round, make_bid):
    """A round announced into its standstill window: two listings, two bidders on each."""
    manager = make_manager(name="Manager Zhou")
    first, second = make_rep(name="First Rep"), make_rep(name="Second Rep")
    bystander = make_rep(name="Bystander Rep")
    harbour, textiles = make_account(name="Harbour Logistics"), make_account(name="Silk Textiles")
    deadline = clock() + timedelta(days=2)
    round_ = make_round(accounts=[harbour, textiles], closes_at=deadline, manager=manager,
                        title="March reassignment")
    listing_of = {listing.account_id: listing for listing in round_.listings}
    bids = {(rep.display_name, name): make_bid(rep, listing_of[account.id])
            for rep in (first, second)
            for name, account in (("harbour", harbour), ("textiles", textiles))}
    clock.set(deadline)
    assert score_closed_round(session, round_.id, clock())
    # One rep wins both listings (the ranking's winner of the first), so that the other lost
    # both and may appeal each: a winner has no result to appeal.
    winner = next(rep for rep in (first, second)
                  if session.merge(bids[(rep.display_name, "harbour")]).score.is_proposed_winner)
    for name, account in (("harbour", harbour), ("textiles", textiles)):
        bid = session.merge(bids[(winner.display_name, name)])
        if bid.score.is_proposed_winner:
            decide_listing(session, manager, listing_of[account.id].id,
                           kind=DecisionKind.ACCEPTED, bid_id=None, reason="", now=clock())
        else:
            decide_listing(session, manager, listing_of[account.id].id,
                           kind=DecisionKind.OVERRIDDEN, bid_id=bid.id,
                           reason="One rep serves both of these sister companies.", now=clock())
    reload(session)
    round_ = session.get(Round, round_.id)
    publish_results(session, manager, round_.id, expected_version=round_.version, now=clock())
    reload(session)
    round_ = session.get(Round, round_.id)
    assert round_.status == RoundStatus.STANDSTILL and round_.standstill_ends_at > clock()
    return {"session": session, "clock": clock, "round": round_, "manager": manager,
            "admin": make_admin(), "first": first, "second": second, "bystander": bystander,
            "harbour": listing_of[harbour.id], "textiles": listing_of[textiles.id], "bids": bids}


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def appeal_count(session) -> int:
    reload(session)
    return session.scalar(select(func.count()).select_from(Appeal))


def loser_of(world, listing_key: str):
    """The bidder who did not win `listing_key`, and their bid."""
    session = world["session"]
    for name in ("First Rep", "Second Rep"):
        bid = session.merge(world["bids"][(name, listing_key)])
        if not bid.score.is_proposed_winner:
            return world["first" if name == "First Rep" else "second"], bid
    raise AssertionError("every bidder won")


def appeal_of(world, listing_key: str = "harbour") -> Appeal:
    rep, _bid = loser_of(world, listing_key)
    return file_appeal(world["session"], rep, world[listing_key].id, ground=GROUND,
                       now=world["clock"]())


def test_a_bidder_sees_the_window_and_the_appeal_form_on_both_pages(app, world):
    rep, bid = loser_of(world, "harbour")
    client = client_of(app, rep)
    for url in (f"/bids/{bid.id}", f"/rounds/{world['round'].id}/results"):
        response = client.get(url)
        body = text_of(response)
        assert response.status_code == 200, url
        assert "Standstill window" in body and 'class="countdown"' in body
        assert world["round"].standstill_ends_at.isoformat() in body
        assert f'action="/listings/{world["harbour"].id}/appeal"' in body
        assert "File an appeal" in body
    assert "Announced, in the standstill window" in text_of(
        client.get(f"/rounds/{world['round'].id}/results"))


@pytest.mark.parametrize("who", ["bystander", "manager", "admin"])
def test_only_bidders_are_offered_the_form(app, world, who):
    body = text_of(client_of(app, world[who]).get(f"/rounds/{world['round'].id}/results"))
    assert "Standstill window" in body
    assert "/appeal" not in body and "File an appeal" not in body


def test_filing_an_appeal_shows_it_and_takes_the_form_away(app, world):
    rep, bid = loser_of(world, "harbour")
    client = client_of(app, rep)
    response = client.post(f"/listings/{world['harbour'].id}/appeal",
                           data={"ground": GROUND, "page": "bid"})
    assert response.status_code == 303 and response.location.endswith(f"/bids/{bid.id}")
    assert appeal_count(world["session"]) == 1
    body = text_of(client.get(f"/bids/{bid.id}"))
    assert "Your appeal" in body and GROUND in body and "Awaiting an answer" in body
    assert f'action="/listings/{world["harbour"].id}/appeal"' not in body
    # The same rep's other listing still offers its own form on the announcement.
    results = text_of(client.get(f"/rounds/{world['round'].id}/results"))
    assert f'action="/listings/{world["textiles"].id}/appeal"' in results
    assert f'action="/listings/{world["harbour"].id}/appeal"' not in results


@pytest.mark.parametrize("ground", ["", "   ", "too short", "ground\x00with a NUL byte in it",
                                    "x" * 5_001])
def test_a_bad_ground_is_refused_with_its_message_and_nothing_written(app, world, ground):
    rep, bid = loser_of(world, "harbour")
    response = client_of(app, rep).post(f"/listings/{world['harbour'].id}/appeal",
                                        data={"ground": ground, "page": "bid"})
    assert response.status_code == 422
    body = text_of(response)
    assert 'class="error"' in body and f'id="ground-{world["harbour"].id}"' in body
    assert appeal_count(world["session"]) == 0


def test_a_refusal_from_the_results_page_comes_back_there(app, world):
    rep, _bid = loser_of(world, "harbour")
    response = client_of(app, rep).post(f"/listings/{world['harbour'].id}/appeal",
                                        data={"ground": "short", "page": "results"})
    assert response.status_code == 422
    assert "Announcement of results" in text_of(response)
    assert appeal_count(world["session"]) == 0


def test_one_appeal_per_bidder_per_listing(app, world):
    rep, _bid = loser_of(world, "harbour")
    client = client_of(app, rep)
    url = f"/listings/{world['harbour'].id}/appeal"
    assert client.post(url, data={"ground": GROUND, "page": "bid"}).status_code == 303
    again = client.post(url, data={"ground": GROUND + " Again.", "page": "bid"})
    assert again.status_code == 422
    assert "appealed this result already" in text_of(again)
    assert appeal_count(world["session"]) == 1


def winner_of(world, listing_key: str):
    """The bidder who won `listing_key`, and their bid."""
    loser, _bid = loser_of(world, listing_key)
    winner = world["second" if loser.id == world["first"].id else "first"]
    return winner, world["session"].merge(world["bids"][(winner.display_name, listing_key)])


def test_the_winner_is_offered_no_appeal_and_one_sent_is_refused(app, world):
    winner, bid = winner_of(world, "harbour")
    client = client_of(app, winner)
    for url in (f"/bids/{bid.id}", f"/rounds/{world['round'].id}/results"):
        body = text_of(client.get(url))
        assert "Standstill window" in body and "/appeal" not in body, url
    response = client.post(f"/listings/{world['harbour'].id}/appeal",
                           data={"ground": GROUND, "page": "bid"})
    assert response.status_code == 422
    assert "You won this account: only a bidder who did not win it may appeal" in text_of(
        response)
    assert appeal_count(world["session"]) == 0


def test_an_appeal_sent_after_the_window_says_why_on_the_bid_page(app, world):
    """A form opened before the window ended and sent after it: the bid page no longer offers
    an appeal, and the refusal is shown all the same."""
    rep, bid = loser_of(world, "harbour")
    ends = world["round"].standstill_ends_at
    world["clock"].set(ends + timedelta(days=1))
    apply_due_listings(world["session"], world["clock"]())
    reload(world["session"])
    assert world["session"].get(Round, world["round"].id).status != RoundStatus.STANDSTILL
    response = client_of(app, rep).post(f"/listings/{world['harbour'].id}/appeal",
                                        data={"ground": GROUND, "page": "bid"})
    assert response.status_code == 422
    assert "The appeal window for this round has closed" in text_of(response)
    assert appeal_count(world["session"]) == 0


def test_after_an_upheld_appeal_no_bidder_reads_that_another_rep_won(app, world):
    appeal = appeal_of(world)
    answer_appeal(world["session"], world["manager"], appeal.id, upheld=True,
                  answer="Upheld: the capacity count was wrong; we decide again.",
                  expected_version=appeal.version, now=world["clock"]())
    for rep, bid in (loser_of(world, "harbour"), winner_of(world, "harbour")):
        body = text_of(client_of(app, rep).get(f"/bids/{bid.id}"))
        assert "KA management is deciding this account again" in body
        assert "Another rep won this account." not in body
        assert "You won this account." not in body


def test_a_rep_who_did_not_bid_cannot_appeal(app, world):
    response = client_of(app, world["bystander"]).post(
        f"/listings/{world['harbour'].id}/appeal", data={"ground": GROUND, "page": "results"})
    assert response.status_code == 422
    assert "Only a rep who bid for this account can appeal" in text_of(response)
    assert appeal_count(world["session"]) == 0


def test_after_the_window_there_is_no_form_and_a_clear_sentence(app, world):
    rep, bid = loser_of(world, "harbour")
    world["clock"].set(world["round"].standstill_ends_at)
    client = client_of(app, rep)
    body = text_of(client.get(f"/bids/{bid.id}"))
    assert "/appeal" not in body
    assert "appeals are no longer accepted" in body
    response = client.post(f"/listings/{world['harbour'].id}/appeal",
                           data={"ground": GROUND, "page": "bid"})
    assert response.status_code == 422 and "appeal window for this round has closed" in text_of(
        response)
    assert appeal_count(world["session"]) == 0


def test_management_lists_pending_appeals_and_rejects_one(app, world):
    appeal = appeal_of(world)
    client = client_of(app, world["manager"])
    page = text_of(client.get("/manage/appeals"))
    assert GROUND in page and "Harbour Logistics" in page
    assert f'action="/manage/appeals/{appeal.id}/answer"' in page
    response = client.post(f"/manage/appeals/{appeal.id}/answer", data={
        "outcome": AppealStatus.REJECTED.value, "answer": ANSWER, "version": appeal.version})
    assert response.status_code == 303
    reload(world["session"])
    appeal = world["session"].get(Appeal, appeal.id)
    assert appeal.status == AppealStatus.REJECTED and appeal.answer == ANSWER
    after = text_of(client.get("/manage/appeals"))
    assert "No appeal is waiting for an answer." in after and ANSWER in after
    # The appellant reads the answer on their bid page and on the announcement.
    rep, bid = loser_of(world, "harbour")
    rep_client = client_of(app, rep)
    for url in (f"/bids/{bid.id}", f"/rounds/{world['round'].id}/results"):
        body = text_of(rep_client.get(url))
        assert ANSWER in body and "Appeal rejected" in body, url


def test_upholding_inline_sends_the_listing_back_to_decision(app, world):
    appeal = appeal_of(world)
    client = client_of(app, world["manager"])
    response = client.post(f"/manage/appeals/{appeal.id}/answer", headers={"HX-Request": "true"},
                           data={"outcome": AppealStatus.UPHELD.value,
                                 "answer": "Upheld: the capacity count was wrong; we decide again.",
                                 "version": appeal.version})
    assert response.status_code == 200
    row = text_of(response)
    assert row.startswith(f'<tr id="appeal-{appeal.id}"') and "Appeal upheld" in row
    assert f'href="/manage/listings/{world["harbour"].id}"' in row and "Decide again" in row
    # The page's heading follows: no appeal waits any more.
    assert ('<template><h2 id="pending-appeals-count" hx-swap-oob="true">0 appeals awaiting '
            'an answer</h2>') in row
    reload(world["session"])
    assert world["session"].get(Listing, world["harbour"].id).status == ListingStatus.LISTED
    round_page = text_of(client.get(f"/manage/rounds/{world['round'].id}"))
    assert "Back to decision" in round_page
    # Said at the top of the card, with a link, whatever its row's place in the table.
    summary = re.search(r'<p class="flash flash-error" id="reopened">(.*?)</p>', round_page,
                        re.S).group(1)
    assert "1 account is back to decision after an upheld appeal; decide it again:" in summary
    assert f'href="/manage/listings/{world["harbour"].id}"' in summary
    assert "Silk Textiles" not in summary
    assert f'action="/manage/listings/{world["harbour"].id}/decide"' in round_page
    assert f'action="/manage/listings/{world["textiles"].id}/decide"' not in round_page
    listing_page = text_of(client.get(f"/manage/listings/{world['harbour'].id}"))
    assert f'action="/manage/listings/{world["harbour"].id}/decide"' in listing_page


def test_a_refused_inline_decision_after_an_upheld_appeal_keeps_the_row_s_forms(app, world):
    """The round page decides the reopened listing inline: a refusal (a reason too short) comes
    back as the row with its message and what was typed, not a row without any form."""
    appeal = appeal_of(world)
    answer_appeal(world["session"], world["manager"], appeal.id, upheld=True,
                  answer="Upheld: the capacity count was wrong; we decide again.",
                  expected_version=appeal.version, now=world["clock"]())
    listing_id = world["harbour"].id
    _rep, other = loser_of(world, "harbour")
    client = client_of(app, world["manager"])
    response = client.post(f"/manage/listings/{listing_id}/decide", headers={"HX-Request": "true"},
                           data={"kind": DecisionKind.OVERRIDDEN.value, "bid_id": other.id,
                                 "reason": "short"})
    assert response.status_code == 422
    row = text_of(response)
    assert f'action="/manage/listings/{listing_id}/decide"' in row
    assert 'class="error"' in row and ">short</textarea>" in row


def test_the_appellant_reads_that_the_listing_was_decided_again(app, world):
    """Upheld, the bid page says the listing is decided again; once it is, it says the result
    shown is the new decision, not that one is still to come."""
    appeal = appeal_of(world)
    answer_appeal(world["session"], world["manager"], appeal.id, upheld=True,
                  answer="Upheld: the capacity count was wrong; we decide again.",
                  expected_version=appeal.version, now=world["clock"]())
    rep, bid = loser_of(world, "harbour")
    client = client_of(app, rep)
    waiting = "KA management decides this listing again, and the new decision is announced here"
    decided = "KA management has decided this listing again: the result shown here is the new"
    body = text_of(client.get(f"/bids/{bid.id}"))
    assert waiting in body and decided not in body
    decide_listing(world["session"], world["manager"], world["harbour"].id,
                   kind=DecisionKind.OVERRIDDEN, bid_id=bid.id, reason=REASON_FOR_APPELLANT,
                   now=world["clock"]())
    body = text_of(client.get(f"/bids/{bid.id}"))
    assert decided in body and waiting not in body
    chinese = text_of(client.get(f"/bids/{bid.id}", headers={"Accept-Language": "zh-CN"}))
    assert "KA销售管理部已重新裁定该客户：此处显示的是新的裁定结果" in chinese


REASON_FOR_APPELLANT = "The appellant's plan covers every site of the account."


@pytest.mark.parametrize("data", [{}, {"outcome": "upheld"}, {"outcome": "maybe", "answer": ANSWER},
                                  {"outcome": "rejected", "answer": "  "},
                                  {"outcome": "rejected", "answer": "no\x00pe, see the plan"}])
def test_an_incomplete_answer_is_refused_and_the_appeal_stays_pending(app, world, data):
    appeal = appeal_of(world)
    client = client_of(app, world["manager"])
    for headers in ({}, {"HX-Request": "true"}):
        response = client.post(f"/manage/appeals/{appeal.id}/answer", headers=headers,
                               data={**data, "version": appeal.version})
        assert response.status_code == 422
        assert 'class="error"' in text_of(response) or "form-errors" in text_of(response)
    reload(world["session"])
    assert world["session"].get(Appeal, appeal.id).status == AppealStatus.PENDING


def test_the_round_page_shows_the_window_appeals_and_effects(app, world):
    appeal_of(world)
    body = text_of(client_of(app, world["manager"]).get(f"/manage/rounds/{world['round'].id}"))
    assert "Standstill window and appeals" in body and 'class="countdown"' in body
    assert GROUND[:40] in body
    assert "Pending: waiting for the answer to its appeal" in body
    assert "Pending: takes effect when the window ends" in body
    assert f'action="/manage/listings/{world["textiles"].id}/cancel"' in body
    assert f'action="/manage/rounds/{world["round"].id}/cancel"' in body
    assert "Announced, in the standstill window" in body


def test_cancelling_a_listing_needs_a_reason_and_is_shown(app, world):
    client = client_of(app, world["manager"])
    url = f"/manage/listings/{world['textiles'].id}/cancel"
    refused = client.post(url, data={"reason": "no"})
    assert refused.status_code == 422 and 'class="error"' in text_of(refused)
    reload(world["session"])
    assert world["session"].get(Listing, world["textiles"].id).status != ListingStatus.CANCELLED
    reason = "The client merged into a group account held by the branch."
    assert client.post(url, data={"reason": reason}).status_code == 303
    reload(world["session"])
    listing = world["session"].get(Listing, world["textiles"].id)
    assert listing.status == ListingStatus.CANCELLED and listing.cancel_reason == reason
    body = text_of(client.get(f"/manage/rounds/{world['round'].id}"))
    assert reason in body and f'action="{url}"' not in body
    # The bidders see the cancellation instead of a form.
    rep, bid = loser_of(world, "textiles")
    rep_page = text_of(client_of(app, rep).get(f"/bids/{bid.id}"))
    assert reason in rep_page and "/appeal" not in rep_page


def test_cancelling_the_round_needs_a_reason_and_its_version(app, world):
    client = client_of(app, world["manager"])
    round_ = world["round"]
    url = f"/manage/rounds/{round_.id}/cancel"
    assert client.post(url, data={"reason": "", "version": round_.version}).status_code == 422
    reason = "The reorganisation of the northern branches redraws every territory."
    assert client.post(url, data={"reason": reason, "version": round_.version}).status_code == 303
    reload(world["session"])
    assert world["session"].get(Round, round_.id).status == RoundStatus.CANCELLED
    body = text_of(client.get(f"/manage/rounds/{round_.id}"))
    assert reason in body and "Cancelled" in body and f'action="{url}"' not in body
    # The reason, in the manager's own words and punctuation, ends the notice.
    assert f"nothing in it takes effect. The reason given: {reason}" in body
    chinese = text_of(client.get(f"/manage/rounds/{round_.id}",
                                 headers={"Accept-Language": "zh-CN"}))
    assert f"本轮任何结果均不生效。取消原因：{reason}" in chinese and f"{reason}。" not in chinese


def rejected_and_in_force(world) -> None:
    """The harbour appeal answered (rejected), and the listing in force once the window ends."""
    session, clock = world["session"], world["clock"]
    appeal = appeal_of(world)
    answer_appeal(session, world["manager"], appeal.id, upheld=False, answer=ANSWER,
                  expected_version=appeal.version, now=clock())
    clock.set(world["round"].standstill_ends_at + timedelta(minutes=1))
    assert apply_due_listings(session, clock())


def test_the_filing_register_shows_a_filing_s_appeals(app, world):
    session = world["session"]
    rejected_and_in_force(world)
    reload(session)
    filing = session.scalars(select(Filing).where(
        Filing.account_id == world["harbour"].account_id)).one()
    assert filing.appeals and filing.appeals[0]["answer"] == ANSWER
    body = text_of(client_of(app, world["manager"]).get("/manage/filings"))
    assert GROUND in body and ANSWER in body and "Appeal rejected" in body
    appellant, _bid = loser_of(world, "harbour")
    assert appellant.display_name in body


def test_a_filed_appeals_answer_names_who_gave_it_in_the_pages_brackets(app, world):
    rejected_and_in_force(world)
    client = client_of(app, world["manager"])
    chinese = text_of(client.get("/manage/filings", headers={"Accept-Language": "zh-CN"}))
    assert f"{ANSWER}（Manager Zhou）" in chinese
    english = text_of(client.get("/manage/filings", headers={"Accept-Language": "en"}))
    assert f"{ANSWER} (Manager Zhou)" in english


def test_the_reps_round_list_names_the_window_and_a_cancellation(app, world):
    client = client_of(app, world["bystander"])
    body = text_of(client.get("/rounds"))
    assert "Announced, in the standstill window" in body
    assert f'href="/rounds/{world["round"].id}/results"' in body
    round_ = world["round"]
    assert client_of(app, world["manager"]).post(f"/manage/rounds/{round_.id}/cancel", data={
        "reason": "The territories are redrawn this quarter.",
        "version": round_.version}).status_code == 303
    body = text_of(client.get("/rounds"))
    assert "Cancelled" in body and "closed, awaiting results" not in body


def test_the_demo_announces_a_round_with_an_appeal_waiting(app, session, clock, make_rep,
                                                           make_manager, make_account,
                                                           make_round, make_bid):
    from bidhub.demo import DEMO_APPEAL_GROUND, announce_with_an_appeal

    manager = make_manager()
    reps = [make_rep(), make_rep()]
    accounts = [make_account(), make_account()]
    deadline = clock() + timedelta(days=2)
    round_ = make_round(accounts=accounts, closes_at=deadline, manager=manager)
    for listing in round_.listings:
        for rep in reps:
            make_bid(rep, listing)
    clock.set(deadline)
    assert score_closed_round(session, round_.id, clock())
    announced_at = clock()
    clock.advance(days=1)
    announce_with_an_appeal(session, manager, round_.id, announced_at, clock())
    reload(session)
    round_ = session.get(Round, round_.id)
    assert round_.status == RoundStatus.STANDSTILL and round_.standstill_ends_at > clock()
    [appeal] = session.scalars(select(Appeal)).all()
    assert appeal.status == AppealStatus.PENDING and appeal.ground == DEMO_APPEAL_GROUND
    page = text_of(client_of(app, manager).get("/manage/appeals"))
    assert DEMO_APPEAL_GROUND in page and f"/manage/appeals/{appeal.id}/answer" in page


def refused_answers(client, appeal, answer: str):
    """`answer` posted with no outcome chosen, as the full page's form and as the row's (htmx):
    yields (response, the appeal's row, its outcome fieldset) for each."""
    for headers in ({}, {"HX-Request": "true"}):
        response = client.post(f"/manage/appeals/{appeal.id}/answer", headers=headers,
                               data={"answer": answer, "version": appeal.version})
        row = re.search(rf'<tr id="appeal-{appeal.id}">.*?</tr>', text_of(response), re.S).group(0)
        yield response, row, re.search(r"<fieldset[^>]*>.*?</fieldset>", row, re.S).group(0)


def test_an_answer_without_its_outcome_marks_the_radio_group_not_the_answer(app, world):
    """The radio group is what to correct: it is marked invalid with its error beside it, and
    the answer typed (which was fine) is not, so the focus does not go there."""
    appeal = appeal_of(world)
    for response, row, fieldset in refused_answers(client_of(app, world["manager"]), appeal,
                                                   ANSWER):
        assert response.status_code == 422
        opening = fieldset[:fieldset.index(">") + 1]
        assert 'aria-invalid="true"' in opening
        error_id = re.search(r'aria-describedby="([^"]+)"', opening).group(1)
        assert re.search(rf'<p class="error" id="{error_id}">Choose one of the listed options.</p>',
                         fieldset)
        assert row.index('aria-invalid="true"') == row.index(opening) + opening.index("aria-invalid")
        assert re.search(r"<textarea[^>]*aria-invalid", row) is None
        assert ANSWER in row
    reload(world["session"])
    assert world["session"].get(Appeal, appeal.id).status == AppealStatus.PENDING


def test_an_answer_without_its_outcome_and_too_short_shows_both_errors_at_once(app, world):
    """Neither an outcome chosen nor enough written: the radio group and the answer each say
    what is wrong in the same refusal, the page's and the row's, not the length only on the
    next try."""
    from bidhub.services.limits import MIN_REASON_LENGTH

    appeal = appeal_of(world)
    short = "x" * (MIN_REASON_LENGTH - 1)
    for response, row, fieldset in refused_answers(client_of(app, world["manager"]), appeal,
                                                   short):
        assert response.status_code == 422
        assert "Choose one of the listed options." in fieldset
        answer = row[row.index(f'<label for="answer-{appeal.id}">'):row.index("</textarea>")]
        assert 'aria-invalid="true"' in answer
        errors = re.findall(r'<p class="error">([^<]*)</p>', row[row.index("</textarea>"):])
        assert any(f"t least {MIN_REASON_LENGTH} characters" in error for error in errors), errors
    reload(world["session"])
    assert world["session"].get(Appeal, appeal.id).status == AppealStatus.PENDING


# --- the pages offer an appeal exactly when file_appeal takes it ---------------------------


@pytest.mark.parametrize("moment", ["in the window", "after the window"])
@pytest.mark.parametrize("listing_state", ["decided", "appealed", "cancelled"])
@pytest.mark.parametrize("standing", ["active", "left"])
def test_the_pages_offer_an_appeal_exactly_when_it_would_be_taken(app, world, moment,
                                                                  listing_state, standing):
    """The window (open or ended), the listing (decided, appealed by the rep already,
    cancelled) and the rep's standing (an appeal does not ask for one) each decide whether
    file_appeal takes an appeal; the bid's page and the results page show its form exactly
    then."""
    from bidhub.domain.errors import BidhubError
    from bidhub.models import RepStatus
    from bidhub.services.appeals import cancel_listing
    from tests.test_departed_winners import leave_on_the_row

    session, clock = world["session"], world["clock"]
    rep, bid = loser_of(world, "harbour")
    listing_id = world["harbour"].id
    if listing_state == "appealed":
        appeal_of(world, "harbour")
    elif listing_state == "cancelled":
        cancel_listing(session, world["manager"], listing_id,
                       reason="The client merged into a group account held by the branch.",
                       now=clock())
    if standing == "left":
        leave_on_the_row(session, rep, status=RepStatus.LEFT)
    if moment == "after the window":
        clock.set(world["round"].standstill_ends_at + timedelta(seconds=1))
    reload(session)
    client = client_of(app, session.get(type(rep), rep.id))
    pages = [client.get(f"/bids/{bid.id}"), client.get(f"/rounds/{world['round'].id}/results")]
    assert [page.status_code for page in pages] == [200, 200]
    offered = [f'action="/listings/{listing_id}/appeal"' in text_of(page) for page in pages]
    try:
        file_appeal(session, session.get(type(rep), rep.id), listing_id, ground=GROUND,
                    now=clock())
        taken = True
    except BidhubError:
        taken = False
    assert taken == (moment == "in the window" and listing_state == "decided")
    assert offered == [taken, taken]
