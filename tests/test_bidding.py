"""A rep's own bids: one per account, edits and withdrawals, and clear refusals."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bidhub.domain.errors import BidRejected, Conflict
from bidhub.models import Bid
from bidhub.services.bidding import update_bid, withdraw_bid
from tests.conftest import reload, run_together


@pytest.fixture
def listing(make_account, make_round):
    return make_round(accounts=[make_account()]).listings[0]


def test_a_second_bid_for_the_same_account_is_refused_with_a_message(make_rep, listing, make_bid):
    rep = make_rep()
    make_bid(rep, listing)
    with pytest.raises(BidRejected, match="already bid for this account"):
        make_bid(rep, listing)


def test_the_rep_an_account_was_released_from_cannot_bid_for_it(make_rep, make_account,
                                                                 make_round, make_bid):
    owner = make_rep()
    round_ = make_round(accounts=[make_account(owner=owner)])
    with pytest.raises(BidRejected, match="released from you"):
        make_bid(owner, round_.listings[0])


def test_withdraw_then_bid_again(session, make_rep, listing, make_bid, clock):
    rep = make_rep()
    bid = make_bid(rep, listing)
    withdraw_bid(session, rep, bid.id, clock())
    assert session.get(Bid, bid.id).status == "withdrawn"
    again = make_bid(rep, listing, plan="A better plan the second time round.")
    assert again.id == bid.id and again.status == "active"


def test_the_edit_page_of_a_withdrawn_bid_says_so_and_offers_a_new_bid(
        session, make_rep, listing, make_bid, clock, login_as):
    rep = make_rep()
    bid = make_bid(rep, listing)
    withdraw_bid(session, rep, bid.id, clock())
    page = login_as(rep).get(f"/bids/{bid.id}/edit", headers={"Accept-Language": "zh-CN"}
                             ).get_data(as_text=True)
    assert 'id="withdrawn"' in page and "这份竞标申请已撤回" in page
    assert f'href="/listings/{listing.id}/bid"' in page
    assert 'name="account_plan"' not in page


def test_a_rep_cannot_touch_another_reps_bid(session, make_rep, listing, make_bid, clock):
    owner, intruder = make_rep(), make_rep()
    bid = make_bid(owner, listing)
    with pytest.raises(Exception, match="No such bid"):
        update_bid(session, intruder, bid.id, account_plan="Hijacked plan text here.",
                   committed_revenue_yuan=1, visit_plan="Hijacked visits text.",
                   expected_version=bid.version, now=clock())


def test_the_track_record_is_frozen_with_the_bid(session, make_rep, listing, make_bid,
                                                 make_account, make_opportunities):
    rep = make_rep()
    make_opportunities(rep, make_account(), won=3, lost=1)
    bid = make_bid(rep, listing)
    assert bid.track_record["win_rate"] == pytest.approx(0.75)
    make_opportunities(rep, make_account(), won=0, lost=5)
    reload(session)
    stored = session.scalars(select(Bid)).one()
    assert stored.track_record["win_rate"] == pytest.approx(0.75)


def test_bid_form_errors_come_back_on_the_fields(app, make_rep, listing, login_as):
    client = login_as(make_rep())
    response = client.post(f"/listings/{listing.id}/bid", data={
        "account_plan": "short", "committed_revenue_yuan": "-5", "visit_plan": ""})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "At least 20 characters are needed here; the text sent has 5." in html
    assert "Enter an amount between ¥1 and ¥2,000,000,000." in html


ZERO_TYPED = ("0", "00", "¥0", "0元", "0万", "0.00", "-0")


def test_a_commitment_of_nothing_is_refused_on_the_field_and_nothing_is_stored(
        app, session, clock, make_rep, listing, make_bid, login_as):
    """A committed revenue of ¥0 promises the account nothing (and commitment_kept would leave
    it out): the bid form and the edit form refuse it on the field, in Chinese, and neither
    a bid nor a change is written. ¥1 is the least a rep can commit."""
    rep = make_rep()
    client = login_as(rep)
    form = {"account_plan": "先拜访决策人，了解招聘需求，三个月内提出年度合作方案。",
            "visit_plan": "第一周拜访总经理，第二周与人力资源部确定合作方案。"}
    chinese = {"Accept-Language": "zh-CN"}
    for typed in ZERO_TYPED:
        refused = client.post(f"/listings/{listing.id}/bid", headers=chinese,
                              data={**form, "committed_revenue_yuan": typed})
        assert refused.status_code == 422, typed
        assert "请填写 1元 至 20亿元 之间的金额。" in refused.get_data(as_text=True), typed
    reload(session)
    assert session.scalars(select(Bid)).first() is None

    bid = make_bid(rep, listing)
    for typed in ZERO_TYPED:
        refused = client.post(f"/bids/{bid.id}/edit", headers=chinese,
                              data={**form, "committed_revenue_yuan": typed})
        assert refused.status_code == 422, typed
        assert "请填写 1元 至 20亿元 之间的金额。" in refused.get_data(as_text=True), typed
    reload(session)
    assert session.get(Bid, bid.id).committed_revenue_yuan == 300_000
    for amount in (0, -1):
        with pytest.raises(BidRejected) as rejected:
            update_bid(session, rep, bid.id, account_plan=form["account_plan"],
                       committed_revenue_yuan=amount, visit_plan=form["visit_plan"],
                       expected_version=session.get(Bid, bid.id).version, now=clock())
        assert rejected.value.field == "committed_revenue_yuan"
    reload(session)
    assert session.get(Bid, bid.id).committed_revenue_yuan == 300_000
    assert client.post(f"/bids/{bid.id}/edit",
                       data={**form, "committed_revenue_yuan": "1", "version": "1"}
                       ).status_code == 303
    reload(session)
    assert session.get(Bid, bid.id).committed_revenue_yuan == 1


def test_the_edit_form_gives_the_new_bid_forms_help(make_rep, listing, make_bid, login_as):
    """Editing a bid is filling in the same three fields: the same hints (12万 is 120000), the
    account and the time left, and that the frozen track record is what stays scored."""
    rep = make_rep()
    bid = make_bid(rep, listing)
    client = login_as(rep)
    page = client.get(f"/bids/{bid.id}/edit").get_data(as_text=True)
    new_bid = client.get(f"/listings/{listing.id}/bid").get_data(as_text=True)
    for hint in ("How you will grow this account", "12万 is 120000",
                 "Who you will visit in the first 90 days"):
        assert hint in page, hint
    assert f'href="/accounts/{listing.account.id}"' in page
    assert 'class="countdown"' in page and 'class="countdown"' in new_bid
    assert "Your track record stays as it was frozen when you submitted the bid" in page
    page = client.get(f"/bids/{bid.id}/edit", headers={"Accept-Language": "zh-CN"})
    text = page.get_data(as_text=True)
    assert "你的业绩档案仍以提交竞标时冻结的为准" in text and "12万" in text


# --- an edit form opened before another save ----------------------------------------------------

EDIT = {"account_plan": "先拜访决策人，了解招聘需求，三个月内提出年度合作方案。",
        "visit_plan": "第一周拜访总经理，第二周与人力资源部确定合作方案。"}


def edit_form_version(client, bid_id: int) -> str:
    page = client.get(f"/bids/{bid_id}/edit").get_data(as_text=True)
    match = re.search(r'name="version" type="hidden" value="(\d+)"', page)
    assert match, "the edit form carries no version"
    return match.group(1)


def test_an_edit_from_a_tab_opened_before_another_save_keeps_what_was_typed_and_saves_nothing(
        session, make_rep, listing, make_bid, login_as):
    rep = make_rep()
    bid = make_bid(rep, listing)
    client = login_as(rep)
    first_tab, second_tab = edit_form_version(client, bid.id), edit_form_version(client, bid.id)
    assert first_tab == second_tab == "1"
    saved = client.post(f"/bids/{bid.id}/edit", data={
        **EDIT, "committed_revenue_yuan": "500000", "version": first_tab})
    assert saved.status_code == 303

    typed = {"account_plan": "第二个标签页里写的计划：先梳理对方的招聘渠道。",
             "visit_plan": "第二个标签页里的拜访计划：第三周回访人力资源总监。",
             "committed_revenue_yuan": "800000"}
    stale = client.post(f"/bids/{bid.id}/edit", headers={"Accept-Language": "zh-CN"},
                        data={**typed, "version": second_tab})
    assert stale.status_code == 409
    page = stale.get_data(as_text=True)
    assert "你已在别处（另一个标签页或设备）保存过这份竞标" in page
    assert typed["account_plan"] in page and typed["visit_plan"] in page and "800000" in page
    start = page.index('id="saved-now"')
    saved_now = page[start:page.index("<form", start)]
    assert EDIT["account_plan"] in saved_now and "500,000" in saved_now
    reload(session)
    stored = session.get(Bid, bid.id)
    assert (stored.account_plan, stored.committed_revenue_yuan, stored.version) == (
        EDIT["account_plan"], 500_000, 2)

    # The form came back with the version it was checked against: saving it again is knowing.
    again = re.search(r'name="version" type="hidden" value="(\d+)"', page).group(1)
    assert again == "2"
    assert client.post(f"/bids/{bid.id}/edit", data={**typed, "version": again}
                       ).status_code == 303
    reload(session)
    stored = session.get(Bid, bid.id)
    assert (stored.account_plan, stored.committed_revenue_yuan, stored.version) == (
        typed["account_plan"], 800_000, 3)


@pytest.mark.parametrize("version", [None, "", "abc", "-1", "0", "2", "99999999999999999999"])
def test_an_edit_that_names_no_current_version_changes_nothing(
        session, make_rep, listing, make_bid, login_as, version):
    rep = make_rep()
    bid = make_bid(rep, listing)
    data = {**EDIT, "committed_revenue_yuan": "700000"}
    if version is not None:
        data["version"] = version
    assert login_as(rep).post(f"/bids/{bid.id}/edit", data=data).status_code == 409
    reload(session)
    stored = session.get(Bid, bid.id)
    assert (stored.committed_revenue_yuan, stored.version) == (300_000, 1)


def test_a_new_bid_over_a_withdrawn_one_outdates_the_old_edit_form(
        session, make_rep, listing, make_bid, login_as, clock):
    rep = make_rep()
    bid = make_bid(rep, listing)
    client = login_as(rep)
    old_form = edit_form_version(client, bid.id)
    withdraw_bid(session, rep, bid.id, clock())
    again = make_bid(rep, listing, plan="A new plan, written after the withdrawal.")
    assert again.id == bid.id
    assert client.post(f"/bids/{bid.id}/edit", data={
        **EDIT, "committed_revenue_yuan": "700000", "version": old_form}).status_code == 409
    reload(session)
    stored = session.get(Bid, bid.id)
    assert stored.account_plan == "A new plan, written after the withdrawal."
    assert stored.version == 2


def test_two_edits_sent_at_once_from_one_version_save_one(app, session, make_rep, listing,
                                                          make_bid, clock):
    rep = make_rep()
    bid = make_bid(rep, listing)
    factory = app.extensions["bidhub_sessionmaker"]

    def edit(plan: str):
        def call():
            own = factory()
            try:
                return update_bid(own, own.get(type(rep), rep.id), bid.id, account_plan=plan,
                                  committed_revenue_yuan=400_000,
                                  visit_plan="Visit the decision maker in week one.",
                                  expected_version=1, now=clock()).version
            finally:
                own.close()
        return call

    plans = [f"Plan number {index}, written in its own tab." for index in range(4)]
    results = run_together([edit(plan) for plan in plans])
    assert sorted(map(type, results), key=str).count(int) == 1, results
    assert all(isinstance(result, Conflict) for result in results if not isinstance(result, int))
    reload(session)
    stored = session.get(Bid, bid.id)
    assert stored.version == 2
    assert stored.account_plan == plans[next(index for index, result in enumerate(results)
                                             if isinstance(result, int))]
