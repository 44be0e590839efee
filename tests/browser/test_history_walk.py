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


def test_leaving_the_search_box_asks_for_nothing_more_and_adds_no_step(walk,
                                                                       live_server: LiveServer):
    """Typed text is asked for once, as it is typed: the change event of leaving the box
    asked for the same list again, and the second answer pushed a second step, so the first
    Back showed nothing different."""
    world = live_server.world
    rep = walk()
    page = rep.page
    rep.sign_in(world.rep)
    rep.goto(f"/rounds/{world.open_round_id}")
    searched: list[str] = []
    page.on("request", lambda request: "q=%E5%8C%97%E4%BA%AC" in request.url
            and searched.append(request.url))
    with page.expect_response(lambda response: "ownership=" in response.url):
        page.select_option("select[name=ownership]", world.filter_ownership)
    with page.expect_response(lambda response: "q=%E5%8C%97%E4%BA%AC" in response.url):
        page.fill("input[name=q]", "北京")
    page.keyboard.press("Tab")  # on to the industry menu, as a keyboard user goes
    expect(page.locator("select[name=industry]")).to_be_focused()
    page.wait_for_timeout(800)  # longer than the typing delay: any second request is sent
    assert len(searched) == 1, f"the search was asked for {len(searched)} times: {searched}"

    page.go_back()
    expect(page).not_to_have_url(re.compile("q=%E5%8C%97%E4%BA%AC"))
    expect(page.locator("input[name=q]")).to_have_value("")
    expect(page.locator("select[name=ownership]")).to_have_value(world.filter_ownership)
    rep.finish()


def test_leaving_the_directory_search_box_adds_no_step(walk, live_server: LiveServer):
    world = live_server.world
    manager = walk()
    page = manager.page
    manager.sign_in(world.manager)
    manager.goto("/manage/accounts")
    searched: list[str] = []
    page.on("request", lambda request: "q=%E5%8C%97%E4%BA%AC" in request.url
            and searched.append(request.url))
    with page.expect_response(lambda response: "q=%E5%8C%97%E4%BA%AC" in response.url):
        page.fill("input[name=q]", "北京")
    page.keyboard.press("Tab")
    page.wait_for_timeout(800)
    assert len(searched) == 1, f"the search was asked for {len(searched)} times: {searched}"
    page.go_back()
    expect(page).not_to_have_url(re.compile("q=%E5%8C%97%E4%BA%AC"))
    manager.finish()
