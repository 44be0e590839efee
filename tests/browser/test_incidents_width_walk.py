"""The accountability page on a laptop's screen (1366 px), in Chinese and in English: the
incidents table fits its box, so the manager's resolve form (its outcome, its note and its
button) is in view without scrolling the table sideways."""

from __future__ import annotations

import pytest

from tests.browser.conftest import LiveServer


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_the_resolve_form_is_in_view(walk, live_server: LiveServer, locale):
    manager = walk(locale)
    page = manager.page
    manager.sign_in(live_server.world.manager)
    manager.goto("/manage/accountability")
    box = page.locator("#incidents .table-scroll")
    widths = box.evaluate("element => [element.scrollWidth, element.clientWidth]")
    manager.check(widths[0] <= widths[1] + 1,
                  f"the incidents table is {widths[0]} px wide in a box of {widths[1]} px")
    manager.check(page.locator("#incidents form button").count() >= 1,
                  "no incident offers its resolve form")
    right = page.locator("#incidents form select").first.evaluate(
        "select => select.getBoundingClientRect().right")
    edge = box.evaluate("element => element.getBoundingClientRect().right")
    manager.check(right <= edge + 1, f"the outcome's menu ends at {right} px, past the box's "
                  f"edge at {edge} px")
    manager.finish()
