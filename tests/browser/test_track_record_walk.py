"""A rep's track record on a laptop's screen: each metric's basis (its window and the counts
behind it) wraps inside the card, rather than running past its edge, cut off, in a table that
has to be scrolled sideways to read the end of a sentence."""

from __future__ import annotations

import pytest

from tests.browser.conftest import NARROW, LiveServer


@pytest.mark.parametrize(("locale", "viewport"), [("zh-CN", None), ("en-US", None),
                                                   ("zh-CN", NARROW)])
def test_the_metrics_basis_is_read_without_scrolling(walk, live_server: LiveServer, locale,
                                                     viewport):
    """On a phone too: there each basis goes under its metric's name and value."""
    rep = walk(locale)
    page = rep.page
    if viewport is not None:
        page.set_viewport_size(viewport)
    rep.sign_in(live_server.world.rep)
    rep.goto("/my/track-record")
    box = page.locator(".table-scroll:has(th.term)").first
    widths = box.evaluate("element => [element.scrollWidth, element.clientWidth]")
    rep.check(widths[0] <= widths[1] + 1,
              f"the metrics table is {widths[0]} px wide in a box of {widths[1]} px")
    rep.finish()
