"""The last listing decided inline brings the publish button with it (out of band), and that
button publishes: the answer's row is parsed as part of a table, where a form would be dropped
and the button left outside it, doing nothing."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect

from bidhub.db import get_session
from bidhub.models import Round, RoundStatus
from bidhub.services.adjudication import score_closed_round
from tests.browser.conftest import LiveServer
from tests.browser.world import add_round_past_its_deadline, bid, by_username

ROUND_TITLE = "五月客户资源竞标"
ACCOUNTS = (("合肥巢湖新材料有限公司", "制造业", 480_000),)


def build_round(server: LiveServer) -> tuple[int, int]:
    world = server.world
    with server.app.app_context():
        session = get_session()
        now = server.app.config["CLOCK"]()
        manager, rep, leaver = (by_username(session, name)
                                for name in (world.manager, world.rep, "chenjing"))
        round_id, (listing_id,), submitted = add_round_past_its_deadline(
            session, now, manager, leaver, ROUND_TITLE, ACCOUNTS, first_number=800)
        bid(session, rep, listing_id, submitted)
        assert score_closed_round(session, round_id, now - timedelta(hours=11))
        return round_id, listing_id


def test_the_publish_button_an_inline_decision_brings_publishes(walk, live_server: LiveServer):
    round_id, listing_id = build_round(live_server)
    manager = walk()
    page = manager.page
    manager.sign_in(live_server.world.manager)
    manager.goto(f"/manage/rounds/{round_id}")
    expect(page.locator("#publish-summary button")).to_have_count(0)

    with page.expect_response(lambda response: f"/listings/{listing_id}/decide" in response.url):
        page.locator(f"#decision-{listing_id} button.primary").click()
    button = page.locator("#publish-summary button.primary")
    expect(button).to_have_count(1)
    expect(page.locator("#publish-summary form button.primary")).to_have_count(1)
    expect(page.locator("#publish-summary form input[name=csrf_token]")).to_have_count(1)

    dialogs: list[str] = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    with page.expect_navigation():
        button.click()
    assert len(dialogs) == 1
    expect(page.locator(".flash-success")).to_have_count(1)
    with live_server.app.app_context():
        assert get_session().get(Round, round_id).status == RoundStatus.STANDSTILL
    manager.finish()
