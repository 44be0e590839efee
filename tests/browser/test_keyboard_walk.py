"""The main forms used with the keyboard alone: after a refused answer, the focus is on the
field to correct, with what was typed kept, whether the page was loaded again (a bid) or only
the form's table row was swapped (a manager's decision). Those two walks write nothing; the
walk through accepted decisions works on a round of its own."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from bidhub.db import get_session
from bidhub.services import notifications
from bidhub.services.adjudication import score_closed_round
from tests.browser.conftest import LiveServer
from tests.browser.world import add_notifications, add_round_past_its_deadline, bid, by_username

PLAN = "第一个月拜访采购人和决策人，推动年度框架合同续签。"
VISITS = "第一周拜访采购人，第二周拜访决策人，第四周提交方案。"
SHORT_REASON = "太短"
APP_JS = Path(__file__).resolve().parents[2] / "bidhub" / "static" / "app.js"


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


DECIDED_ROUND = "六月客户资源竞标"
DECIDED_ACCOUNTS = (("长沙湘江传媒有限公司", "传媒", 800_000),
                    ("福州闽江物流有限公司", "物流", 700_000))
OVERRIDE_REASON = "客户希望由熟悉传媒行业的销售继续跟进，经部门讨论后改判。"
PASSWORD_RESET = ("An admin reset your password at %(reset_at)s; you will choose a new one "
                  "when you sign in. If you did not ask for it, tell KA management.")


@pytest.fixture(scope="module")
def round_to_decide(live_server: LiveServer) -> tuple[int, list[int]]:
    """A scored round of its own, two listings with two bidders each, nothing decided."""
    world = live_server.world
    with live_server.app.app_context():
        session = get_session()
        now = live_server.app.config["CLOCK"]()
        manager, leaver = by_username(session, world.manager), by_username(session, "chenjing")
        round_id, listing_ids, bids_from = add_round_past_its_deadline(
            session, now, manager, leaver, DECIDED_ROUND, DECIDED_ACCOUNTS, first_number=500)
        for n, name in enumerate((world.rep, world.rival)):
            for m, listing_id in enumerate(listing_ids):
                bid(session, by_username(session, name), listing_id,
                    bids_from + timedelta(hours=n, minutes=m))
        assert score_closed_round(session, round_id, now - timedelta(hours=11))
        return round_id, listing_ids


def test_a_decision_taken_keeps_the_focus_in_its_row(walk, live_server: LiveServer,
                                                      round_to_decide):
    """Accepting or overriding swaps the row for its decided self; the keyboard stays there
    rather than falling back to the top of the page, so the next row is a few Tabs away."""
    round_id, listing_ids = round_to_decide
    manager = walk()
    page = manager.page
    manager.sign_in(live_server.world.manager)
    manager.goto(f"/manage/rounds/{round_id}")
    accepted, overridden = (f"decision-{listing_id}" for listing_id in listing_ids)

    page.locator(f"#{accepted} button.primary").focus()
    with page.expect_response(lambda response: "/decide" in response.url) as answer:
        page.keyboard.press("Enter")
    assert answer.value.status == 200
    expect(page.locator(f"#{accepted}")).to_contain_text(live_server.zh("Ranking accepted"))
    # The focus is in the decided row, not back on the page's body.
    expect(page.locator(f"#{accepted} :focus")).to_have_count(1)

    row = page.locator(f"#{overridden}")
    row.locator("details summary").first.focus()
    page.keyboard.press("Enter")  # opens the override
    page.keyboard.press("Tab")
    expect(page.locator(f"#override-bid-{listing_ids[1]}")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.type(OVERRIDE_REASON)
    page.keyboard.press("Tab")
    with page.expect_response(lambda response: "/decide" in response.url) as answer:
        page.keyboard.press("Enter")
    assert answer.value.status == 200
    expect(row).to_contain_text(OVERRIDE_REASON)
    expect(row.locator(":focus")).to_have_count(1)
    manager.finish()


def test_an_item_marked_read_keeps_the_focus_and_the_count_follows(walk,
                                                                  live_server: LiveServer):
    """Marking an item read swaps it, and its answer makes the header's count load again: the
    focus stays on the item whichever answer settles first, and the heading's "Mark all read"
    counts the items left."""
    world = live_server.world
    with live_server.app.app_context():
        session = get_session()
        now = live_server.app.config["CLOCK"]()
        add_notifications(session, by_username(session, world.rep), now, "password_reset",
                          PASSWORD_RESET, {"reset_at": notifications.instant(now)},
                          "auth.password", [f"keyboard-walk:{n}" for n in range(2)])
    rep = walk()
    page = rep.page
    rep.sign_in(world.rep)
    rep.goto("/notifications")
    mark_all = page.locator("#mark-all-read button")
    unread = int("".join(filter(str.isdigit, mark_all.inner_text())))
    assert unread >= 2
    item = page.locator("section.notification.unread").first
    item_id = item.get_attribute("id")
    item.locator("form[hx-post] button").focus()
    with page.expect_response(lambda response: response.url.endswith("/read")) as answer:
        page.keyboard.press("Enter")
    assert answer.value.status == 200
    expect(page.locator(f"#{item_id}")).not_to_have_class("card notification unread")
    expect(page.locator(f"#{item_id} :focus")).to_have_count(1)
    expect(mark_all).to_contain_text(f"（{unread - 1}）")
    rep.finish()


def refused_radio_group(app) -> str:
    """A RadioField as the field macro draws it when refused (the decision's kind left empty)."""
    from bidhub.web.forms import DecisionForm

    with app.test_request_context("/", method="POST", data={"kind": ""}):
        form = DecisionForm(meta={"csrf": False})
        form.bid_id.choices = []
        assert form.validate() is False and form.kind.errors
        return str(app.jinja_env.get_template("_macros.html").module.field(form.kind))


@pytest.mark.parametrize("group", ["appeal answer", "field macro"])
def test_a_refused_radio_group_puts_the_focus_on_its_first_radio(browser, live_server, group):
    # The appeal answer's fieldset, and a RadioField as the field macro draws it: a fieldset
    # too, with its legend, marked invalid and described by its error.
    markup = ('<fieldset aria-invalid="true"><legend>Answer</legend>'
              '<label><input type="radio" id="kind-0" name="outcome" value="upheld"> Upheld</label>'
              '<label><input type="radio" name="outcome" value="rejected"> Rejected</label>'
              '</fieldset>') if group == "appeal answer" else refused_radio_group(live_server.app)
    page = browser.new_page()
    try:
        page.set_content(f'<form>{markup}<textarea id="answer">An answer</textarea></form>')
        page.add_script_tag(path=str(APP_JS))
        expect(page.locator("#kind-0")).to_be_focused()
    finally:
        page.close()
