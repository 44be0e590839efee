"""A manager publishes a scored round from its round page in a handful of browser actions, and
a rep who bid reads the announcement (中标公示) and the results notification in Chinese.

The default rules announce into a standstill window (公示期): the round page shows the window
and no account changes hands yet; the rep reads the window's end on the announcement and files
an appeal (申诉) there.

The round is built here, through the services, with three listings (two bidders, one bidder,
nobody), so that the walk decides one inline, accepts the rest in one go and publishes, while
the small world's own scored round stays undecided for the other walks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from bidhub.db import get_session
from bidhub.models import Listing, Round, RoundStatus
from bidhub.services import notifications
from bidhub.services.adjudication import score_closed_round
from tests.browser.conftest import CJK, LiveServer
from tests.browser.world import add_round_past_its_deadline, bid, by_username

ROUND_TITLE = "四月客户资源竞标"
ACCOUNTS = (("重庆山城物流有限公司", "物流", 1_100_000),   # two bidders: overridden inline
            ("厦门鹭岛电子商务有限公司", "互联网", 720_000),  # one bidder: accepted with the rest
            ("昆明春城农业发展有限公司", "农业", 260_000))    # nobody bid: no award by default
OVERRIDE_REASON = "客户明确希望由熟悉物流行业的销售继续跟进，经部门讨论后改判。"
APPEAL_GROUND = "我负责该客户的物流项目已有一年，承诺收入高于中标人，请复核改判理由。"
MAX_ACTIONS = 10  # the bound: publishing takes fewer than this many browser actions


@dataclass(frozen=True)
class PublishWorld:
    round_id: int
    listing_ids: tuple[int, ...]
    account_names: tuple[str, ...]


def build_round(server: LiveServer) -> PublishWorld:
    world = server.world
    with server.app.app_context():
        session = get_session()
        now = server.app.config["CLOCK"]()
        manager, rep, rival, leaver = (by_username(session, name) for name in (
            world.manager, world.rep, world.rival, "chenjing"))
        round_id, listing_ids, submitted = add_round_past_its_deadline(
            session, now, manager, leaver, ROUND_TITLE, ACCOUNTS, first_number=300)
        bid(session, rep, listing_ids[0], submitted)
        bid(session, rival, listing_ids[0], submitted + timedelta(hours=1))
        bid(session, rep, listing_ids[1], submitted + timedelta(hours=2))
        assert score_closed_round(session, round_id, now - timedelta(hours=11))
        return PublishWorld(round_id, tuple(listing_ids), tuple(name for name, *_ in ACCOUNTS))


@pytest.fixture(scope="module")
def publish_world(live_server) -> PublishWorld:
    return build_round(live_server)


def unread_of(server: LiveServer, username: str) -> int:
    with server.app.app_context():
        session = get_session()
        return notifications.unread_count(session, by_username(session, username))


def round_state(server: LiveServer, world: PublishWorld) -> tuple[str, list[str | None]]:
    """The round's status and its listings' owners' usernames."""
    with server.app.app_context():
        session = get_session()
        owners = [owner.username if (owner := session.get(Listing, listing_id).account.owner)
                  else None for listing_id in world.listing_ids]
        return session.get(Round, world.round_id).status, owners


def display_name(server: LiveServer, username: str) -> str:
    with server.app.app_context():
        return by_username(get_session(), username).display_name


def test_a_manager_publishes_inline_and_a_rep_reads_the_announcement(walk, live_server,
                                                                     publish_world):
    world = live_server.world
    round_path = f"/manage/rounds/{publish_world.round_id}"
    contested, single, unbid = publish_world.listing_ids
    unread_before = unread_of(live_server, world.rep)
    _status, owners_before = round_state(live_server, publish_world)

    manager = walk()
    page = manager.page
    manager.sign_in(world.manager)  # signing in is not part of publishing, so it is not counted
    actions = 0

    def act() -> None:
        nonlocal actions
        actions += 1

    manager.goto(round_path)
    act()
    manager.expect_chinese("Publishing the results", "Proposed winner", "Lead over the next bid")
    # Nobody bid for the third listing: it is "no award" already, with no form to fill.
    unbid_row = page.locator(f"#decision-{unbid}")
    expect(unbid_row).to_contain_text(live_server.zh(
        "Nobody bid for this account, so it is not awarded."))
    expect(unbid_row.locator("form")).to_have_count(0)
    expect(page.locator("#publish-summary form")).to_have_count(0)  # two listings undecided
    manager.shoot("publish-round-undecided")

    # Inline (htmx): override the contested listing's proposed winner, with a written reason.
    row = page.locator(f"#decision-{contested}")
    proposed = row.locator("td").nth(2).inner_text().strip()
    names = {display_name(live_server, world.rep), display_name(live_server, world.rival)}
    assert proposed in names, f"proposed winner {proposed!r}"
    (winner,) = names - {proposed}
    row.locator("details summary").first.click()
    act()
    row.locator("textarea[name=reason]").first.fill(OVERRIDE_REASON)
    act()
    with page.expect_response(lambda response: f"/listings/{contested}/decide" in response.url
                              ) as decided:
        row.locator("details form button").first.click()
        act()
    assert decided.value.status == 200
    assert decided.value.request.headers.get("hx-request") == "true"
    assert page.url.endswith(round_path), "the inline decision left the round page"
    row = page.locator(f"#decision-{contested}")
    expect(row).to_contain_text(OVERRIDE_REASON)

    # Accept every unflagged proposal: the confirmation lists exactly the single-bid listing.
    with page.expect_navigation():
        page.click(f"a[href='{round_path}/accept-unflagged']")
        act()
    manager.expect_chinese("Accept every proposed award that has no flag")
    expect(page.locator("#to-accept tbody tr")).to_have_count(1)
    expect(page.locator(f"#to-accept tr[data-listing='{single}']")).to_have_count(1)
    manager.shoot("publish-accept-unflagged")
    with page.expect_navigation():
        page.click("form[method=post] button.primary")
        act()
    assert page.url.endswith(round_path)

    # The summary: 1 award, 1 override, 1 without award (nobody bid), 2 transfers; one confirmation.
    summary = page.locator("#publish-summary")
    expect(summary.locator("form")).to_have_count(1)
    summary_text = summary.inner_text()
    manager.check(all(digit in summary_text for digit in "12"), f"summary: {summary_text!r}")
    manager.shoot("publish-summary")
    dialogs: list[str] = []

    def confirm(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    with page.expect_navigation():
        summary.locator("button.primary").click()
        act()
    assert len(dialogs) == 1 and CJK.search(dialogs[0]), f"confirmation: {dialogs}"
    actions += len(dialogs)  # accepting the browser's confirmation is an action too
    assert page.url.endswith(round_path)
    flashes = page.locator(".flash-success").all_inner_texts()
    manager.check(bool(flashes) and all(CJK.search(text) for text in flashes),
                  f"publishing's confirmation is not in Chinese: {flashes}")
    expect(page.locator(".flash-error")).to_have_count(0)
    expect(page.locator("#publish-summary form")).to_have_count(0)
    # Announced, not in force: the round page shows the window and nothing changed hands.
    status, owners_after = round_state(live_server, publish_world)
    assert status == RoundStatus.STANDSTILL and owners_after == owners_before
    manager.expect_chinese("Standstill window and appeals",
                           "Pending: takes effect when the window ends")
    expect(page.locator("#standstill .countdown")).to_have_count(1)
    manager.shoot("publish-published")
    assert actions < MAX_ACTIONS, f"publishing took {actions} browser actions"
    manager.finish()

    # A rep who bid: the header counts the new notification, the inbox lists the results.
    rep = walk()
    rep_page = rep.page
    rep.sign_in(world.rep)
    unread_after = unread_of(live_server, world.rep)
    assert unread_after > unread_before
    badge = rep_page.locator("#unread-count .badge")
    expect(badge).to_have_text(str(unread_after))
    with rep_page.expect_navigation():
        rep_page.click("#inbox-link")
    rep.expect_chinese("Notifications")
    items = rep_page.locator(".notification.unread")
    results_items = items.filter(has_text=publish_world.account_names[0])
    expect(results_items).to_have_count(1)
    rep.check(bool(CJK.search(results_items.inner_text()))
              and ROUND_TITLE in results_items.inner_text(),
              f"the results notification: {results_items.inner_text()!r}")
    expect(items.filter(has_text=publish_world.account_names[1])).to_have_count(1)
    rep.shoot("publish-rep-inbox")

    # The announcement, in Chinese: every listing with its winner, the override's reason, the seed.
    rep.goto(f"/rounds/{publish_world.round_id}/results")
    rep.expect_chinese("Announcement of results", "Winner", "Winning score",
                       "Override of the ranking", "Followed the ranking", "How ties are decided")
    announcement = rep_page.locator("#announcement tbody tr")
    expect(announcement).to_have_count(3)
    expect(announcement.filter(has_text=publish_world.account_names[0])).to_contain_text(winner)
    expect(announcement.filter(has_text=publish_world.account_names[0])).to_contain_text(
        OVERRIDE_REASON)
    expect(announcement.filter(has_text=publish_world.account_names[1])).to_contain_text(
        display_name(live_server, world.rep))
    expect(announcement.filter(has_text=publish_world.account_names[2])).to_contain_text(
        live_server.zh("no award"))
    expect(rep_page.locator("#ties code.seed")).to_have_text(re.compile(r"^\d+$"))
    # The standstill window: its end counts down; each of the rep's bids is listed, and the one
    # they did not win can be appealed.
    rep.expect_chinese("Standstill window", "Your bids in this round", "File an appeal")
    expect(rep_page.locator(".standstill-window .countdown")).to_have_count(1)
    appeals = rep_page.locator("#my-appeals .appeal")
    expect(appeals).to_have_count(2)
    rep.shoot("publish-rep-announcement", fits_narrow=True)

    # Filing an appeal on the contested listing from the announcement.
    contested_appeal = rep_page.locator(f"#appeal-{contested}")
    contested_appeal.locator("summary").click()
    contested_appeal.locator("textarea[name=ground]").fill(APPEAL_GROUND)
    with rep_page.expect_navigation():
        contested_appeal.locator("form button").click()
    assert rep_page.url.endswith(f"/rounds/{publish_world.round_id}/results")
    contested_appeal = rep_page.locator(f"#appeal-{contested}")
    expect(contested_appeal).to_contain_text(APPEAL_GROUND)
    expect(contested_appeal).to_contain_text(live_server.zh("Awaiting an answer"))
    expect(contested_appeal.locator("form")).to_have_count(0)
    # The rep won the single-bid listing: the winner has no result to appeal.
    expect(rep_page.locator(f"#appeal-{single} form")).to_have_count(0)
    rep.expect_chinese("Your appeal")
    rep.shoot("publish-rep-appealed", fits_narrow=True)
    rep.finish()
