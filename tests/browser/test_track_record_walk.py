"""A rep's track record on a laptop's screen: each metric's basis (its window and the counts
behind it) wraps inside the card, rather than running past its edge, cut off, in a table that
has to be scrolled sideways to read the end of a sentence."""

from __future__ import annotations

import pytest

from tests.browser.conftest import LiveServer


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_the_metrics_basis_is_read_without_scrolling(walk, live_server: LiveServer, locale):
    rep = walk(locale)
    page = rep.page
    rep.sign_in(live_server.world.rep)
    rep.goto("/my/track-record")
    box = page.locator(".table-scroll:has(th.term)").first
    widths = box.evaluate("element => [element.scrollWidth, element.clientWidth]")
    rep.check(widths[0] <= widths[1] + 1,
              f"the metrics table is {widths[0]} px wide in a box of {widths[1]} px")
    rep.finish()
