"""New round, the browser's Back, Save again: one round, not two."""

from __future__ import annotations

from sqlalchemy import func, select

from bidhub.db import get_session
from bidhub.models import Round
from tests.browser.conftest import LiveServer


def rounds_titled(live_server: LiveServer, title: str) -> int:
    with live_server.app.app_context():
        return get_session().scalar(select(func.count()).select_from(Round)
                                    .where(Round.title == title))


def test_back_after_creating_a_round_and_save_again_creates_no_second_round(
        walk, live_server: LiveServer):
    manager = walk()
    page = manager.page
    manager.sign_in(live_server.world.manager)
    manager.goto("/manage/rounds/new")
    page.fill("input[name=title]", "返回再保存的轮次")
    with page.expect_navigation():
        page.click("main form button.primary")
    assert "/manage/rounds/" in page.url and page.url.rstrip("/").split("/")[-1].isdigit()
    created = page.url
    page.go_back()
    # The page is drawn afresh (no-store), with a new key; the browser puts the title back.
    assert page.input_value("input[name=title]") == "返回再保存的轮次"
    with page.expect_navigation():
        page.click("main form button.primary")
    assert page.url == created
    assert live_server.zh("You created this round already (the same title, branch and "
                          "deadline); nothing new was created.") in page.inner_text("body")
    assert rounds_titled(live_server, "返回再保存的轮次") == 1
    manager.finish()
