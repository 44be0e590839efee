"""What a rep filtered survives: the address carries the filters, so a reload and a shared
link show the same list with the same values in the form, at 1366 and 390 px in zh-CN; the
filter form works without JavaScript too (a plain GET of the full page)."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import update

from bidhub.db import get_session
from bidhub.models import User
from tests.browser.conftest import NARROW, WIDE, LiveServer, Walker


def shown(walker: Walker) -> list[str]:
    return walker.page.locator("#listings tbody tr td.name a").all_inner_texts()


def test_a_filtered_list_comes_back_from_its_address(walk, live_server: LiveServer):
    world = live_server.world
    rep = walk()
    page = rep.page
    rep.sign_in(world.rep)
    rep.goto(f"/rounds/{world.open_round_id}")
    every = shown(rep)
    # Account numbers typed with a Chinese input method's full-width letters.
    with page.expect_response(lambda response: "q=" in response.url):
        page.fill("input[name=q]", "ＫＡ－")
    expect(page.locator("#listings tbody tr")).to_have_count(len(every))
    with page.expect_response(lambda response: "q=%E5%8C%97%E4%BA%AC" in response.url):
        page.fill("input[name=q]", "北京")
    with page.expect_response(lambda response: "sort=name" in response.url):
        page.select_option("select[name=sort]", "name")
    expect(page).to_have_url(re.compile(r"q=%E5%8C%97%E4%BA%AC.*sort=name"))
    filtered = shown(rep)
    rep.check(len(filtered) == 2 and all("北京" in name for name in filtered),
              f"searching 北京 shows {filtered}")
    address = page.url

    for size in (WIDE, NARROW):
        page.set_viewport_size(size)
        page.reload()
        rep.check(shown(rep) == filtered, f"at {size['width']} px a reload shows {shown(rep)}")
        expect(page.locator("input[name=q]")).to_have_value("北京")
        expect(page.locator("select[name=sort]")).to_have_value("name")
        rep.expect_chinese("Search", "Sort")
    rep.shoot("filtered-round-listings", fits_narrow=True)

    friend = walk()  # the link sent to someone else
    friend.sign_in(world.rival)
    friend.page.goto(address)
    friend.check(shown(friend) == filtered, f"the shared link shows {shown(friend)}")
    expect(friend.page.locator("input[name=q]")).to_have_value("北京")
    rep.finish()
    friend.finish()


def test_the_filter_form_without_javascript_asks_for_the_full_page(browser,
                                                                   live_server: LiveServer):
    world = live_server.world
    context = browser.new_context(locale="zh-CN", viewport=NARROW, java_script_enabled=False)
    try:
        rep = Walker(context.new_page(), live_server)
        page = rep.page
        rep.sign_in(world.rep)
        rep.goto(f"/rounds/{world.open_round_id}")
        page.select_option("select[name=ownership]", world.filter_ownership)
        with page.expect_navigation():
            page.click("form.filters button")
        expect(page).to_have_url(re.compile(f"ownership={world.filter_ownership}"))
        expect(page.locator("#listings tbody tr")).to_have_count(1)
        expect(page.locator("select[name=ownership]")).to_have_value(world.filter_ownership)
        rep.check(page.locator("header").count() == 1, "the answer is not the full page")
        rep.finish()
    finally:
        context.close()


def test_switching_the_language_keeps_the_filters(walk, live_server: LiveServer):
    """The list filtered through htmx, then shown in English and back in Chinese: the same
    address, list and form values each time (the switch follows the address htmx pushed)."""
    world = live_server.world
    rep = walk()
    page = rep.page
    rep.sign_in(world.rep)
    rep.goto(f"/rounds/{world.open_round_id}")
    with page.expect_response(lambda response: "q=%E5%8C%97%E4%BA%AC" in response.url):
        page.fill("input[name=q]", "北京")
    with page.expect_response(lambda response: "sort=name" in response.url):
        page.select_option("select[name=sort]", "name")
    filtered = shown(rep)
    try:
        for code, lang in (("en", "en"), ("zh_CN", "zh-CN")):
            page.click(f".language-switch button[value={code}]")
            expect(page.locator("html")).to_have_attribute("lang", lang)
            expect(page).to_have_url(re.compile(r"q=%E5%8C%97%E4%BA%AC.*sort=name"))
            rep.check(shown(rep) == filtered, f"in {lang} the list shows {shown(rep)}")
            expect(page.locator("input[name=q]")).to_have_value("北京")
            expect(page.locator("select[name=sort]")).to_have_value("name")
    finally:  # the walks after this one see the rep's pages in their browser's language
        with live_server.app.app_context():
            session = get_session()
            session.execute(update(User).where(User.username == world.rep).values(locale=None))
            session.commit()
    rep.finish()
