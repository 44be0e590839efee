"""A rep reads a long notification whole, on a phone and on a desktop, in Chinese and in
English: its text wraps inside its card beside the "Mark read" button, instead of running
past the card's edge."""

from __future__ import annotations

import pytest

from bidhub.db import get_session
from bidhub.services import notifications
from tests.browser.conftest import NARROW, WIDE, LiveServer
from tests.browser.world import add_notifications, by_username

LOSS_REVIEW_DUE = ("%(account)s is released from you into a bidding round; it stays yours until "
                   "the round's results take effect. Write its loss review (what happened, "
                   "what you would do differently) by %(due_at)s.")
ACCOUNT = "内蒙古自治区呼和浩特市赛罕区新能源汽车零部件产业园区管理委员会"


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_a_long_notification_wraps_inside_its_card(walk, live_server: LiveServer, locale):
    world = live_server.world
    with live_server.app.app_context():
        session = get_session()
        now = live_server.app.config["CLOCK"]()
        [notice_id] = add_notifications(
            session, by_username(session, world.rep), now, "loss_review_due", LOSS_REVIEW_DUE,
            {"account": ACCOUNT, "due_at": notifications.instant(now)}, "market.my_bids",
            [f"notification-walk:{locale}"])
    rep = walk(locale=locale)
    page = rep.page
    rep.sign_in(world.rep)
    rep.goto("/notifications")
    item = page.locator(f"#notification-{notice_id}")
    rep.check(ACCOUNT in item.inner_text(), "the inbox does not list the long notification")
    for size in (WIDE, NARROW):
        page.set_viewport_size(size)
        card = item.bounding_box()
        text = item.locator("button.link").bounding_box()
        mark_read = item.locator("form[hx-post] button").bounding_box()
        rep.check(item.evaluate("card => card.scrollWidth <= card.clientWidth"),
                  f"at {size['width']} px the notification runs past its card")
        rep.check(text["x"] + text["width"] <= card["x"] + card["width"],
                  f"at {size['width']} px the notification's text ends at "
                  f"{text['x'] + text['width']}, past its card's edge at "
                  f"{card['x'] + card['width']}")
        rep.check(mark_read["x"] + mark_read["width"] <= card["x"] + card["width"],
                  f"at {size['width']} px the Mark read button lies past its card's edge")
        if size is WIDE:
            rep.check(text["height"] > 30 or locale == "en",
                      "at 1366 px the long Chinese notification does not wrap")
            rep.check(mark_read["x"] > text["x"] + text["width"],
                      "at 1366 px the Mark read button is not beside the notification's text")
    rep.shoot(f"long-notification-{locale}", fits_narrow=True)
    rep.finish()
