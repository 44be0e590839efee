"""A rep, a manager and an admin walk their main pages in chromium with the browser set to zh-CN.

Each page must say it is Chinese (`<html lang="zh-CN">`) and show the catalogue's Chinese for
its navigation and headings; the switch to English must hold across pages and sign-ins; every
main page is photographed at 1366 and 390 px wide (test-artifacts/screenshots/, or
$BIDHUB_TEST_ARTIFACTS/screenshots/); the console stays free of errors except the 422s the
walk provokes on purpose.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import CJK

REP_NAV = ("Bidding rounds", "My bids", "Accountability", "My track record")
MANAGER_NAV = ("Rounds", "Transfer", "Filing register", "Accountability", "Reps")
ADMIN_NAV = ("Users", "Imports", "Rules", "Confirmations")


def test_a_rep_walks_their_pages_in_chinese(walk, live_server):
    world = live_server.world
    rep = walk()
    page = rep.page
    rep.goto("/login")
    rep.expect_chinese("Sign in to bidhub")
    rep.shoot("login")

    rep.sign_in(world.rep)
    assert page.url.endswith("/rounds")
    rep.expect_chinese(*REP_NAV)
    rep.shoot("rep-rounds", fits_narrow=True)

    with page.expect_navigation():
        page.click(f"a[href='/rounds/{world.open_round_id}']")
    rep.expect_chinese("Search", "Industry", "Annual value", "Bid")
    rep.shoot("rep-round", fits_narrow=True)
    rows = page.locator("#listings tbody tr")
    every_listing = rows.count()
    # The filter asks for the list only (an htmx partial) and keeps the page.
    with page.expect_response(lambda response: f"/rounds/{world.open_round_id}?" in response.url
                              and "ownership=" in response.url) as filtered:
        page.select_option("select[name=ownership]", world.filter_ownership)
    assert filtered.value.status == 200
    assert filtered.value.request.headers.get("hx-request") == "true"
    expect(rows).to_have_count(1)
    assert every_listing > 1
    # The filter is in the address, so it survives a reload.
    expect(page).to_have_url(re.compile(f"ownership={world.filter_ownership}"))
    rep.expect_chinese("Annual value")

    page.locator("#listings tbody tr a").first.click()
    page.wait_for_url(re.compile(r"/accounts/\d+$"))
    rep.expect_chinese("Key people")
    rep.shoot("rep-account")

    bid_path = f"/listings/{world.listing_to_bid_id}/bid"
    rep.goto(bid_path)
    rep.expect_chinese("Bid application", "Submit bid")
    rep.shoot("rep-bid-form", fits_narrow=True)
    page.fill("textarea[name=account_plan]", "x")
    page.fill("input[name=committed_revenue_yuan]", "")
    page.fill("textarea[name=visit_plan]", "")
    with rep.expecting(422, bid_path), page.expect_navigation() as refused:
        page.click("form[method=post] button.primary")
    assert refused.value.status == 422
    errors = page.locator(".error, .form-errors").all_inner_texts()
    assert errors, "the refused bid shows no error"
    rep.check(all(CJK.search(error) for error in errors), f"errors not in Chinese: {errors}")
    rep.expect_chinese("Bid application")
    rep.shoot("rep-bid-form-refused", fits_narrow=True)

    page.fill("textarea[name=account_plan]",
              "拜访决策人，了解全年招聘计划，三个月内签下年度合作并扩大到校园招聘。")
    page.fill("input[name=committed_revenue_yuan]", "800000")
    page.fill("textarea[name=visit_plan]", "第一周拜访总经理，第二周与人力资源部确定方案。")
    with page.expect_navigation() as accepted:
        page.click("form[method=post] button.primary")
    assert accepted.value.status == 200 and page.url.endswith("/my/bids")
    rep.expect_chinese("My bids")
    flashes = page.locator(".flash-success").all_inner_texts()
    rep.check(bool(flashes) and all(CJK.search(text) for text in flashes),
              f"the bid's confirmation is not in Chinese: {flashes}")
    rep.shoot("rep-my-bids")

    with page.expect_navigation():
        page.click("nav a[href='/my/track-record']")
    rep.expect_chinese("My track record", "Accounts held", "Sales funnel", "Forecast against actual")
    rep.shoot("rep-track-record", fits_narrow=True)

    with page.expect_navigation():
        page.click("nav a[href='/my/accountability']")
    rep.expect_chinese("My accountability incidents", "File explanation")
    rep.shoot("rep-accountability")
    # The refused bid reached the page's listeners, and only `expecting` excuses it.
    assert (422, rep.url(bid_path)) in rep.failed_responses
    rep.finish()


def test_a_manager_walks_their_pages_in_chinese(walk, live_server):
    world = live_server.world
    manager = walk()
    page = manager.page
    manager.sign_in(world.manager)
    assert page.url.endswith("/manage")  # management's home page: what needs them now
    manager.expect_chinese(*MANAGER_NAV, "What needs you now", "Fairness across rounds")
    manager.shoot("manager-home")
    with page.expect_navigation():
        page.click("nav.mainnav a[href='/manage/rounds']")
    manager.expect_chinese(*MANAGER_NAV, "Bidding rounds")
    manager.shoot("manager-rounds")

    with page.expect_navigation():
        page.click(f"a[href='/manage/rounds/{world.closed_round_id}']")
    manager.expect_chinese("Publish results", "Deadline")
    manager.shoot("manager-closed-round")

    manager.goto(f"/manage/listings/{world.scored_listing_id}")
    manager.expect_chinese("Ranking", "Decision")
    manager.shoot("manager-decision")

    with page.expect_navigation():
        page.click("nav a[href='/manage/filings']")
    manager.expect_chinese("Filing register", "Export CSV")
    manager.shoot("manager-filings")
    with page.expect_response(lambda response: "/manage/filings?" in response.url) as filtered:
        page.select_option("select[name=branch]", index=1)
    assert filtered.value.status == 200
    assert filtered.value.request.headers.get("hx-request") == "true"
    expect(page).to_have_url(re.compile(r"branch=\d+"))
    manager.expect_chinese("Filing register")

    with page.expect_navigation():
        page.click("nav a[href='/manage/transfer']")
    manager.expect_chinese("Transfer an account", "Review the transfer")
    manager.shoot("manager-transfer")

    manager.goto("/manage/accountability/report")
    manager.expect_chinese("Two-weekly accountability report")
    manager.shoot("manager-accountability-report", fits_narrow=True)
    # The period under way holds the world's incident: its totals per rep and per branch
    # stack in one column on a phone, each as wide as the page.
    with page.expect_navigation():
        page.get_by_role("link", name=live_server.zh("Next period")).click()
    expect(page.locator("#totals-by-rep")).to_be_visible()
    manager.shoot("manager-accountability-report-current", fits_narrow=True)
    manager.finish()


def test_an_admin_sees_users_and_rules_in_chinese(walk, live_server):
    admin = walk()
    page = admin.page
    admin.sign_in(live_server.world.admin)
    admin.expect_chinese(*ADMIN_NAV, "Users")
    admin.shoot("admin-users")
    with page.expect_navigation():
        page.click("nav a[href='/admin/rules']")
    admin.expect_chinese("Scoring rules", "Versions")
    admin.shoot("admin-rules", fits_narrow=True)
    admin.finish()


def test_the_switch_to_english_is_remembered(walk, live_server):
    world = live_server.world
    first = walk()
    page = first.page
    first.sign_in(world.switcher)
    first.expect_chinese(*REP_NAV)
    with page.expect_navigation():
        page.locator("header").get_by_role("button", name="English").click()
    first.expect_english(*REP_NAV)
    with page.expect_navigation():
        page.click("nav a[href='/my/bids']")
    first.expect_english("My bids")
    first.shoot("rep-my-bids-english")
    first.sign_out()
    first.expect_english("Sign in to bidhub")
    first.sign_in(world.switcher)
    first.expect_english(*REP_NAV)
    first.finish()

    # Another browser, still asking for zh-CN and holding no cookie: once signed in, the
    # choice saved with the user wins over the browser's language.
    second = walk()
    second.sign_in(world.switcher)
    second.expect_english(*REP_NAV)
    with second.page.expect_navigation():
        second.page.locator("header").get_by_role("button", name="中文").click()
    second.expect_chinese(*REP_NAV)
    second.finish()
