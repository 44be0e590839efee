"""The main forms used with the keyboard alone: after a refused answer, the focus is on the
field to correct, with what was typed kept, whether the page was loaded again (a bid) or only
the form's table row was swapped (a manager's decision). Neither walk writes anything."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import LiveServer

PLAN = "第一个月拜访采购人和决策人，推动年度框架合同续签。"
VISITS = "第一周拜访采购人，第二周拜访决策人，第四周提交方案。"
SHORT_REASON = "太短"


def focused(page) -> str:
    return page.evaluate("document.activeElement ? document.activeElement.id : ''")


def test_a_refused_bid_puts_the_focus_on_the_field_to_correct(walk, live_server: LiveServer):
    world = live_server.world
    rep = walk()
    page = rep.page
    rep.sign_in(world.rep)
    # A listing the rep has not bid for yet (another walk bids for one).
    rep.goto(f"/rounds/{world.open_round_id}")
    bid_path = page.locator("#listings a[href$='/bid']").first.get_attribute("href")
    rep.goto(bid_path)
    page.focus("#account_plan")
    page.keyboard.type(PLAN)
    page.keyboard.press("Tab")
    page.keyboard.type("十二万")  # not an amount: refused
    page.keyboard.press("Tab")
    page.keyboard.type(VISITS)
    page.keyboard.press("Tab")
    with rep.expecting(422, bid_path), page.expect_navigation() as refused:
        page.keyboard.press("Enter")
    assert refused.value.status == 422
    expect(page.locator("#committed_revenue_yuan")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#committed_revenue_yuan")).to_be_focused()
    expect(page.locator("#committed_revenue_yuan")).to_have_value("十二万")
    expect(page.locator("#account_plan")).to_have_value(PLAN)
    # The correction goes straight into the field.
    page.keyboard.press("Control+A")
    page.keyboard.type("12万")
    expect(page.locator("#committed_revenue_yuan")).to_have_value("12万")
    rep.finish()


def test_a_refused_decision_puts_the_focus_on_its_written_reason(walk, live_server: LiveServer):
    world = live_server.world
    manager = walk()
    page = manager.page
    manager.sign_in(world.manager)
    manager.goto(f"/manage/rounds/{world.closed_round_id}")
    row = page.locator("tr[id^=decision-]").filter(has=page.locator("details select")).first
    row_id = row.get_attribute("id")
    listing_id = row_id.removeprefix("decision-")
    row.locator("details summary").first.focus()
    page.keyboard.press("Enter")  # opens the override
    page.keyboard.press("Tab")
    expect(page.locator(f"#override-bid-{listing_id}")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.type(SHORT_REASON)
    page.keyboard.press("Tab")
    decide_path = f"/manage/listings/{listing_id}/decide"
    with manager.expecting(422, decide_path), page.expect_response(
            lambda response: decide_path in response.url) as refused:
        page.keyboard.press("Enter")
    assert refused.value.status == 422
    reason = page.locator(f"#override-reason-{listing_id}")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(reason).to_be_focused()
    expect(reason).to_have_value(SHORT_REASON)
    expect(page.locator(f"#{row_id} .error")).to_contain_text("请写明理由")
    manager.finish()
