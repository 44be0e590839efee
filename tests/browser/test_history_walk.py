"""The back button after filtering: each step of a filtered list comes back with the filter
form showing the filter its list was drawn with."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import LiveServer


def test_back_after_two_filters_shows_the_first_filter_in_its_form(walk,
                                                                    live_server: LiveServer):
    world = live_server.world
    rep = walk()
    page = rep.page
    rep.sign_in(world.rep)
    rep.goto(f"/rounds/{world.open_round_id}")
    rows = page.locator("#listings tbody tr")
    every_listing = rows.count()
    with page.expect_response(lambda response: "ownership=" in response.url):
        page.select_option("select[name=ownership]", world.filter_ownership)
    expect(rows).to_have_count(1)
    with page.expect_response(lambda response: "q=%E6%97%A0" in response.url):
        page.fill("input[name=q]", "无此客户")
    expect(page).to_have_url(re.compile("q=%E6%97%A0"))
    expect(page.locator("#listings tbody tr td a")).to_have_count(0)

    page.go_back()
    expect(page).to_have_url(re.compile(f"ownership={world.filter_ownership}&"))
    expect(page).not_to_have_url(re.compile("q=%E6%97%A0"))
    expect(rows).to_have_count(1)
    expect(page.locator("select[name=ownership]")).to_have_value(world.filter_ownership)
    expect(page.locator("input[name=q]")).to_have_value("")

    page.go_back()
    expect(rows).to_have_count(every_listing)
    expect(page.locator("select[name=ownership]")).to_have_value("")
    rep.finish()
