"""A manager transfers an account in a real browser: type-ahead picks with the keyboard, the
preview of both reps' counts, the summary, and the confirmation that files it (in Chinese).

The walk's two reps and their account are made here, so that the shared world's counts stay as
the other walks expect them.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from bidhub.db import get_session, unit_of_work
from bidhub.models import Branch, Filing, FilingKind, Role, User
from bidhub.services.ownership import OwnerChange, change_owners
from bidhub.services.users import new_session_token
from tests.browser.conftest import LiveServer
from tests.browser.world import PASSWORD_HASH, add_account

ACCOUNT = "哈尔滨冰城制药有限公司"
FROM_REP, TO_REP = ("黄晓明", "transfer-from"), ("郑丽华", "transfer-to")
REASON = "原销售调往华南区，客户交由同分公司销售跟进。"
REVIEW = "原销售近两个季度拜访不足，交接时已与客户采购人当面说明。"


def build(server: LiveServer) -> dict[str, int]:
    with server.app.app_context():
        session = get_session()
        now = server.app.config["CLOCK"]()
        branch = session.scalars(select(Branch).order_by(Branch.id)).first()
        with unit_of_work(session):
            reps = [User(username=username, display_name=name, password_hash=PASSWORD_HASH,
                         role=Role.REP, branch_id=branch.id, is_active=True, status="active",
                         session_token=new_session_token(), failed_login_count=0,
                         created_at=now - timedelta(days=300), external_id=f"E-90{n}")
                    for n, (name, username) in enumerate((FROM_REP, TO_REP))]
            session.add_all(reps)
            session.flush()
        account = add_account(session, ACCOUNT, "医药", "private", 640_000, branch, 900,
                              now - timedelta(days=200))
        with unit_of_work(session):
            change_owners(session, [OwnerChange(account.id, reps[0].id, filing={
                "kind": FilingKind.CRM_IMPORT, "reason": "CRM import",
                "decided_by_id": reps[0].id})], limit=None, now=now - timedelta(days=200))
        return {"account_id": account.id, "from_id": reps[0].id, "to_id": reps[1].id}


@pytest.fixture(scope="module")
def transfer_world(live_server) -> dict[str, int]:
    return build(live_server)


def direct_transfers(server: LiveServer) -> int:
    with server.app.app_context():
        return get_session().scalar(select(func.count()).select_from(Filing).where(
            Filing.kind == FilingKind.DIRECT_TRANSFER))


def test_a_manager_transfers_an_account_with_type_ahead_and_a_summary(walk, live_server,
                                                                      transfer_world):
    manager = walk()
    page = manager.page
    manager.sign_in(live_server.world.manager)
    manager.goto("/manage/transfer")
    manager.expect_chinese("Transfer an account", "Review the transfer")
    expect(page.locator("select")).to_have_count(0)  # no dropdown, nobody preselected

    # The account: Chinese text typed, the first suggestion picked with the keyboard.
    with page.expect_response(lambda response: "/manage/transfer/accounts" in response.url):
        page.locator("#transfer-account-q").press_sequentially("冰城制药", delay=30)
    expect(page.locator("#transfer-account-results button")).to_have_count(1)
    expect(page.locator("#transfer-account-results")).to_contain_text(FROM_REP[0])
    manager.shoot("manager-transfer-type-ahead")
    page.keyboard.press("Tab")
    with page.expect_response(lambda response: "/manage/transfer/picks" in response.url):
        page.keyboard.press("Enter")
    expect(page.locator("#transfer-picks input[name=account]")).to_have_value(
        str(transfer_world["account_id"]))

    # The rep: by employee id, clicked; the preview then shows both reps' counts.
    rep_search = page.locator("#transfer-rep-q")
    expect(rep_search).to_be_focused()
    with page.expect_response(lambda response: "/manage/transfer/reps" in response.url):
        rep_search.press_sequentially("E-901", delay=30)
    expect(page.locator("#transfer-rep-results button")).to_have_count(1)
    with page.expect_response(lambda response: "/manage/transfer/picks" in response.url):
        page.locator("#transfer-rep-results button").click()
    preview = page.locator("#transfer-preview")
    expect(preview).to_contain_text(live_server.zh("What the transfer changes"))
    expect(preview).to_contain_text(FROM_REP[0])
    expect(preview).to_contain_text(TO_REP[0])
    manager.shoot("manager-transfer-preview")

    page.fill("textarea[name=reason]", REASON)
    page.fill("textarea[name=review_text]", REVIEW)
    before = direct_transfers(live_server)
    with page.expect_navigation():
        page.click("button.primary")
    manager.expect_chinese("Confirm the transfer", "Confirm and file")
    summary = page.locator("#transfer-summary")
    expect(summary).to_contain_text(f"{FROM_REP[0]}：1 → 0")
    expect(summary).to_contain_text(f"{TO_REP[0]}：0 → 1")
    expect(summary).to_contain_text(REASON)
    manager.shoot("manager-transfer-summary")
    assert direct_transfers(live_server) == before, "the summary filed something"

    with page.expect_navigation():
        page.click("button.primary")
    assert direct_transfers(live_server) == before + 1
    assert "/manage/filings" in page.url
    expect(page.locator("#flashes")).to_contain_text("划转已备案")
    expect(page.locator("#filings")).to_contain_text(ACCOUNT)
    problems = manager.problems + manager.unexpected_console_errors()
    assert not problems, "\n".join(problems)
