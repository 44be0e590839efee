"""Management's wide tables on a laptop's screen (1366 px), in Chinese and in English, with a
round's awards filed under a title such as managers give their rounds: the filing register shows
every column, up to the rules a filing was decided by and who decided it, and the fairness page
its table of announced rounds, without scrolling either table sideways.

The round is announced and takes effect here, on a server of this module's own, so that the
shared world's rounds and owners stay as the other walks expect them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from bidhub.db import get_session
from bidhub.models import DecisionKind, Round, RoundStatus
from bidhub.services.adjudication import (
    decide_listing,
    publish_results,
    ranked_bids,
    score_closed_round,
)
from bidhub.services.appeals import apply_due_listings
from tests.browser.conftest import LiveServer, serving, walkers
from tests.browser.world import add_round_past_its_deadline, bid, by_username

ROUND_TITLE = "第9期客户资源竞标（全国）"
ACCOUNTS = (("北京鸿航软件有限公司", "互联网", 1_200_000),
            ("杭州瑞拓生物科技集团股份有限公司", "医药", 900_000),
            ("东莞达航信息技术集团有限公司", "制造业", 640_000))
OVERRIDE_REASON = "排名第一的销售下月调往渠道部，无法保证全年跟进；改由排名第二的销售中标。"


@pytest.fixture(scope="module")
def register_server(tmp_path_factory) -> Iterator[LiveServer]:
    with serving(tmp_path_factory.mktemp("register")) as server:
        award_round(server)
        yield server


def award_round(server: LiveServer) -> None:
    """Every account of a round goes to one of two bidders, one of them by an override; the
    round is announced and its results take effect at the end of the appeal window."""
    world = server.world
    with server.app.app_context():
        session = get_session()
        now = server.app.config["CLOCK"]()
        manager, rep, rival, leaver = (by_username(session, name) for name in (
            world.manager, world.rep, world.rival, "chenjing"))
        round_id, listing_ids, submitted = add_round_past_its_deadline(
            session, now, manager, leaver, ROUND_TITLE, ACCOUNTS, first_number=400)
        for listing_id in listing_ids:
            bid(session, rep, listing_id, submitted)
            bid(session, rival, listing_id, submitted + timedelta(hours=1))
        decided_at = now - timedelta(hours=11)
        assert score_closed_round(session, round_id, decided_at)
        for n, listing_id in enumerate(listing_ids):
            if n == 0:
                runner_up = ranked_bids(session, listing_id)[1]
                decide_listing(session, manager, listing_id, kind=DecisionKind.OVERRIDDEN,
                               bid_id=runner_up.id, reason=OVERRIDE_REASON, now=decided_at)
            else:
                decide_listing(session, manager, listing_id, kind=DecisionKind.ACCEPTED,
                               bid_id=None, reason="", now=decided_at)
        round_ = session.get(Round, round_id)
        publish_results(session, manager, round_id, expected_version=round_.version,
                        now=decided_at)
        round_ = session.get(Round, round_id)
        assert round_.status == RoundStatus.STANDSTILL, round_.status
        assert len(apply_due_listings(session, round_.standstill_ends_at)) == len(ACCOUNTS)


def rep_id(server: LiveServer) -> int:
    with server.app.app_context():
        return by_username(get_session(), server.world.rep).id


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_the_register_shows_who_decided_without_scrolling(browser, register_server, locale):
    with walkers(browser, register_server) as open_walker:
        manager = open_walker(locale)
        manager.sign_in(register_server.world.manager)
        manager.goto("/manage/filings")
        page = manager.page
        manager.check(page.locator("table.filings tbody tr", has_text=ROUND_TITLE).count()
                      == len(ACCOUNTS), f"the register does not list the {len(ACCOUNTS)} awards")
        box = page.locator(".table-scroll:has(table.filings)")
        widths = box.evaluate("element => [element.scrollWidth, element.clientWidth]")
        manager.check(widths[0] <= widths[1] + 1,
                      f"the register's table is {widths[0]} px wide in a box of {widths[1]} px")
        # The last column, who decided, ends inside the box, where it can be read.
        last = page.locator("table.filings tbody tr").first.locator("td").last
        right = last.evaluate("cell => cell.getBoundingClientRect().right")
        edge = box.evaluate("element => element.getBoundingClientRect().right")
        manager.check(right <= edge + 1, f"who decided ends at {right} px, past the box's "
                      f"edge at {edge} px")
        # Filtered to one rep (the world's one very long company name is another rep's), a
        # company name of ordinary length stays on one line: the columns that wrap well (the
        # time, the round's title) give up their width first.
        manager.goto(f"/manage/filings?rep={rep_id(register_server)}")
        for row in page.locator("table.filings tbody tr").all():
            link = row.locator("td").nth(2).locator("a")
            lines = link.evaluate("a => a.getClientRects().length")
            manager.check(lines == 1, f"{link.inner_text()} is broken over {lines} lines")
        manager.shoot(f"register-width-{locale}")
        manager.finish()


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_the_fairness_table_fits_a_laptop_screen(browser, register_server, locale):
    """The fairness page's table of announced rounds (seventeen columns of figures) fits its box;
    English headings wrap at their spaces to let it."""
    with walkers(browser, register_server) as open_walker:
        manager = open_walker(locale)
        manager.sign_in(register_server.world.manager)
        manager.goto("/manage/fairness")
        page = manager.page
        box = page.locator(".table-scroll:has-text('" + ROUND_TITLE + "')")
        manager.check(box.count() == 1, "the fairness table does not list the announced round")
        widths = box.evaluate("element => [element.scrollWidth, element.clientWidth]")
        manager.check(widths[0] <= widths[1] + 1,
                      f"the fairness table is {widths[0]} px wide in a box of {widths[1]} px")
        manager.finish()
