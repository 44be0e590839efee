"""A manager decides inline on a round page opened before another manager cancelled the round:
the page says why nothing happened, in Chinese, above the table, and the row stays as it was.

The round is built here, through the services, so that cancelling it leaves the small world's
own rounds to the other walks.
"""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from bidhub.db import get_session
from bidhub.models import Decision, Round, RoundStatus
from bidhub.services.adjudication import NOT_IN_ADJUDICATION, score_closed_round
from bidhub.services.appeals import cancel_round
from tests.browser.conftest import CJK
from tests.browser.world import add_round_past_its_deadline, bid, by_username

ROUND_TITLE = "五月客户资源竞标"
ACCOUNTS = (("哈尔滨冰城机械制造有限公司", "制造", 880_000),)
CANCEL_REASON = "释放清单有误，本轮作废后重新发布。"


def test_an_inline_decision_in_a_round_cancelled_meanwhile_says_why(walk, live_server):
    world = live_server.world
    with live_server.app.app_context():
        session = get_session()
        now = live_server.app.config["CLOCK"]()
        manager, rep, rival, leaver = (by_username(session, name) for name in (
            world.manager, world.rep, world.rival, "chenjing"))
        round_id, (listing_id,), submitted = add_round_past_its_deadline(
            session, now, manager, leaver, ROUND_TITLE, ACCOUNTS, first_number=700)
        bid(session, rep, listing_id, submitted)
        bid(session, rival, listing_id, submitted + timedelta(hours=1))
        assert score_closed_round(session, round_id, now - timedelta(hours=11))

    walker = walk()
    page = walker.page
    walker.sign_in(world.manager)
    walker.goto(f"/manage/rounds/{round_id}")
    row = page.locator(f"#decision-{listing_id}")
    accept = row.locator("form button").first
    expect(accept).to_be_visible()

    with live_server.app.app_context():  # another manager cancels the round meanwhile
        session = get_session()
        round_ = session.get(Round, round_id)
        cancel_round(session, by_username(session, world.manager), round_id,
                     reason=CANCEL_REASON, expected_version=round_.version,
                     now=live_server.app.config["CLOCK"]())

    path = f"/manage/listings/{listing_id}/decide"
    with walker.expecting(409, path), page.expect_response(
            lambda response: path in response.url) as answered:
        accept.click()
    assert answered.value.status == 409
    error = page.locator("#flashes .flash-error")
    expect(error).to_contain_text(live_server.zh(str(NOT_IN_ADJUDICATION)))
    walker.check(bool(CJK.search(error.inner_text())), f"not Chinese: {error.inner_text()!r}")
    expect(row).to_be_visible()  # the row was not replaced by the answer
    walker.shoot("decision-in-cancelled-round")
    with live_server.app.app_context():
        session = get_session()
        assert session.get(Round, round_id).status == RoundStatus.CANCELLED
        assert session.scalars(select(Decision).where(Decision.listing_id == listing_id)
                               ).all() == []
    walker.finish()
