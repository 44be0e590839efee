"""A manager on a phone, in English: a scored round's page keeps its heading actions on the
390 px screen. The longest of them, "Accept every proposed award with no flag (N)…", is built
here on a round of its own: one listing, one bidder, so its proposed award has no flag.
"""

from __future__ import annotations

from datetime import timedelta

from bidhub.db import get_session
from bidhub.services.adjudication import score_closed_round
from tests.browser.conftest import NARROW, LiveServer
from tests.browser.world import add_round_past_its_deadline, bid, by_username

ROUND_TITLE = "七月客户资源竞标"
ACCOUNTS = (("南昌赣江农业科技有限公司", "农业", 450_000),
            ("太原晋阳煤化工有限公司", "能源", 420_000))


def test_a_scored_rounds_actions_fit_a_phone_in_english(walk, live_server: LiveServer):
    world = live_server.world
    with live_server.app.app_context():
        session = get_session()
        now = live_server.app.config["CLOCK"]()
        manager, leaver = by_username(session, world.manager), by_username(session, "chenjing")
        round_id, listing_ids, bids_from = add_round_past_its_deadline(
            session, now, manager, leaver, ROUND_TITLE, ACCOUNTS, first_number=600)
        for minutes, listing_id in enumerate(listing_ids):
            bid(session, by_username(session, world.rep), listing_id,
                bids_from + timedelta(minutes=minutes))
        assert score_closed_round(session, round_id, now - timedelta(hours=11))
    walker = walk(locale="en")
    page = walker.page
    walker.sign_in(world.manager)
    page.set_viewport_size(NARROW)
    walker.goto(f"/manage/rounds/{round_id}")
    accept_all = page.locator(f".heading-row a[href$='/rounds/{round_id}/accept-unflagged']")
    walker.check(accept_all.count() == 1, "the round offers no Accept-every-unflagged link")
    box = accept_all.bounding_box()
    on_screen = box is not None and box["x"] >= 0 and box["x"] + box["width"] <= NARROW["width"] + 1
    walker.check(on_screen, f"the Accept-every-unflagged link lies at {box}, off the 390 px screen")
    walker.shoot("phone-scored-round-en", fits_narrow=True)
    walker.finish()
