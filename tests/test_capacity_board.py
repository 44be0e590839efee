"""The capacity board: counts per band, a rep's accounts, releasing selected accounts, access."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bidhub.domain.errors import InvalidRequest
from bidhub.models import (
    AccountabilityIncident,
    AccountReview,
    Decision,
    DecisionKind,
    Listing,
    ListingStatus,
    Opportunity,
    OpportunityStageChange,
    ReleaseReason,
    RepStatus,
    RoundStatus,
)
from bidhub.services import capacity_board, rounds
from bidhub.services.capacity_board import Band
from tests.conftest import login, reload
from tests.test_queries import counted_statements, statements_for

REVIEW = "Held too many accounts; this one has had no visit in a year."


@pytest.fixture
def reps(make_rep, give_accounts, make_branch):
    """One rep above the band (42), one inside (35), one below (12), one in another branch."""
    above, inside, below = (make_rep(name="Above Rep"), make_rep(name="Inside Rep"),
                            make_rep(name="Below Rep"))
    other = make_rep(name="Shanghai Rep", branch=make_branch("SH", "Shanghai"))
    give_accounts(above, 42)
    give_accounts(inside, 35)
    give_accounts(below, 12)
    give_accounts(other, 29)
    return {"above": above, "inside": inside, "below": below, "other": other}


def decide_award(session, make_round, make_account, make_bid, clock, winner):
    """An award decided for `winner` in a scored round, not applied yet: an incoming account."""
    round_ = make_round(accounts=[make_account()])
    listing = round_.listings[0]
    bid = make_bid(winner, listing)
    round_.status = RoundStatus.SCORED
    listing.status = ListingStatus.DECIDED
    session.add(Decision(listing_id=listing.id, kind=DecisionKind.ACCEPTED, bid_id=bid.id,
                         decided_by_id=round_.created_by_id, decided_at=clock()))
    session.commit()
    return round_


def test_counts_per_band_follow_the_active_rules_with_incoming_awards_apart(
        session, reps, make_round, make_account, make_bid, clock):
    decide_award(session, make_round, make_account, make_bid, clock, reps["below"])
    board = capacity_board.capacity_board(session)
    assert (board.capacity.target, board.capacity.maximum) == (30, 40)
    by_rep = {load.rep.id: load for load in board.rows}
    above, inside, below = (by_rep[reps[name].id] for name in ("above", "inside", "below"))
    assert (above.held, above.band, above.distance) == (42, Band.ABOVE, 2)
    assert (inside.held, inside.band, inside.distance) == (35, Band.INSIDE, 0)
    # The decided award is counted apart as incoming, as ownership.py counts commitments.
    assert (below.held, below.incoming, below.band, below.distance) == (12, 1, Band.BELOW, 18)
    assert board.band_counts == {Band.ABOVE: 1, Band.BELOW: 2, Band.INSIDE: 1}
    # The ones needing action first: above, then below (the farthest first), then inside.
    assert [load.rep.display_name for load in board.rows] == [
        "Above Rep", "Below Rep", "Shanghai Rep", "Inside Rep"]


def test_filters_by_band_and_branch(session, reps):
    below = capacity_board.capacity_board(session, band=Band.BELOW)
    assert {load.rep.id for load in below.rows} == {reps["below"].id, reps["other"].id}
    shanghai = capacity_board.capacity_board(session, band=Band.BELOW,
                                             branch_id=reps["other"].branch_id)
    assert [load.rep.id for load in shanghai.rows] == [reps["other"].id]
    assert below.band_counts == shanghai.band_counts  # the summary covers everyone


def test_reps_who_left_or_were_deactivated_holding_accounts_are_listed_to_hand_over(
        session, client, reps, make_rep, give_accounts, make_manager):
    """Their accounts are worked by nobody: the board lists them apart, rather than leaving
    the deactivated out and counting the departed as short of the band."""
    departed, deactivated = make_rep(name="Departed Rep"), make_rep(name="Switched Off Rep")
    empty_handed = make_rep(name="Gone Empty Rep", status=RepStatus.LEFT)
    give_accounts(departed, 28)
    give_accounts(deactivated, 33)
    departed.status, deactivated.is_active = RepStatus.LEFT, False
    session.commit()
    board = capacity_board.capacity_board(session)
    assert [(load.rep.display_name, load.held) for load in board.departed] == [
        ("Switched Off Rep", 33), ("Departed Rep", 28)]
    assert not {departed.id, deactivated.id, empty_handed.id} & {
        load.rep.id for load in board.rows}
    assert board.band_counts == {Band.ABOVE: 1, Band.BELOW: 2, Band.INSIDE: 1}
    login(client, make_manager())
    page = client.get("/board", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    section = re.search(r'<section class="card" id="to-hand-over">(.*?)</section>', page,
                        re.S).group(1)
    assert "待移交的客户" in section and "Switched Off Rep" in section and "已停用" in section
    assert f"/board/reps/{departed.id}" in section and "Gone Empty Rep" not in page


def test_the_board_page_shows_bands_and_links_to_each_rep(client, reps, make_manager,
                                                          make_round):
    make_round(status=RoundStatus.DRAFT)
    login(client, make_manager())
    page = client.get("/board").get_data(as_text=True)
    assert page.index("Above Rep") < page.index("Below Rep") < page.index("Inside Rep")
    assert "2 above the maximum" in page and "18 short of the target" in page
    assert f"/board/reps/{reps['above'].id}" in page
    filtered = client.get("/board?band=above").get_data(as_text=True)
    assert "Above Rep" in filtered and "Inside Rep" not in filtered
    by_branch = client.get(f"/board?branch={reps['other'].branch_id}").get_data(as_text=True)
    assert "Shanghai Rep" in by_branch and "Above Rep" not in by_branch
    # A rep above the band: the release form proposes the over-capacity reason.
    above = client.get(f"/board/reps/{reps['above'].id}").get_data(as_text=True)
    assert re.search(r'<option[^>]*selected[^>]*value="over_capacity"', above)
    inside = client.get(f"/board/reps/{reps['inside'].id}").get_data(as_text=True)
    assert not re.search(r'<option[^>]*selected[^>]*value="over_capacity"', inside)


def test_reps_at_the_same_distance_from_the_band_are_in_pinyin_order(client, make_rep,
                                                                      make_manager):
    """Within a band and a distance, names as the menus order them (domain.collation), not in
    code point order (张 李 王 陈)."""
    for name in ("张伟", "李娜", "王芳", "陈静"):
        make_rep(name=name)  # no account: all four are 30 short of the target
    login(client, make_manager())
    page = client.get("/board", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    table = re.search(r'id="capacity-board">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r'<a href="/board/reps/\d+">([^<]*)</a>', table) == [
        "陈静", "李娜", "王芳", "张伟"]


def test_a_reps_accounts_of_the_same_value_are_in_pinyin_order(session, make_rep,
                                                               make_account):
    rep = make_rep()
    for name in ("张家口物流", "Beta Ltd", "李宁体育", "阿里巴巴", "陈氏集团"):
        make_account(owner=rep, name=name, annual_value_yuan=100_000)
    make_account(owner=rep, name="王府井百货", annual_value_yuan=900_000)
    assert [held.account.name for held in capacity_board.rep_accounts(session, rep.id).accounts
            ] == ["王府井百货", "Beta Ltd", "阿里巴巴", "陈氏集团", "李宁体育", "张家口物流"]


def test_a_reps_accounts_with_value_last_activity_incidents_and_listing(
        session, make_rep, make_account, make_manager, make_round, clock):
    rep, other = make_rep(), make_rep()
    big = make_account(owner=rep, annual_value_yuan=900_000, name="Big Co")
    quiet = make_account(owner=rep, annual_value_yuan=50_000, name="Quiet Co")
    listed = make_account(owner=rep, annual_value_yuan=70_000, name="Listed Co")
    make_account(owner=other, name="Not Mine Co")
    opened = clock() - timedelta(days=90)
    opportunity = Opportunity(account_id=big.id, rep_id=rep.id, amount_yuan=1, stage="intent",
                              opened_at=opened, closed_at=None)
    session.add(opportunity)
    session.flush()
    session.add(OpportunityStageChange(opportunity_id=opportunity.id, stage="intent",
                                       changed_at=clock() - timedelta(days=20)))
    # Another rep's later work on the account is not this rep's activity.
    session.add(Opportunity(account_id=big.id, rep_id=other.id, amount_yuan=1, stage="won",
                            opened_at=clock() - timedelta(days=5), closed_at=clock()))
    session.add(AccountabilityIncident(account_id=quiet.id, rep_id=rep.id,
                                       competitor_site="51job.com", ad_type="logo",
                                       seen_at=clock(), status="open"))
    session.commit()
    make_round(accounts=[listed], status=RoundStatus.DRAFT)
    holdings = capacity_board.rep_accounts(session, rep.id)
    assert [held.account.name for held in holdings.accounts] == ["Big Co", "Listed Co",
                                                                 "Quiet Co"]
    by_name = {held.account.name: held for held in holdings.accounts}
    assert by_name["Big Co"].last_activity_at == clock() - timedelta(days=20)
    assert by_name["Quiet Co"].last_activity_at is None
    assert by_name["Quiet Co"].open_incidents == 1
    assert by_name["Listed Co"].listing is not None and by_name["Big Co"].listing is None
    assert holdings.load.held == 3


def test_the_rep_page_has_a_transfer_link_and_a_bounded_statement_count(
        app, client, make_rep, give_accounts, make_manager, make_round):
    few, many = make_rep(), make_rep()
    give_accounts(few, 2)
    give_accounts(many, 45)
    make_round(status=RoundStatus.DRAFT, title="Spring draft")
    login(client, make_manager())
    page = client.get(f"/board/reps/{few.id}").get_data(as_text=True)
    assert "/manage/transfer?account=" in page and f"from_rep={few.id}" in page
    assert "Spring draft" in page
    assert statements_for(app, client, f"/board/reps/{few.id}") == statements_for(
        app, client, f"/board/reps/{many.id}")
    assert statements_for(app, client, "/board") < 15


def test_the_board_page_statement_count_does_not_grow_with_reps(app, client, make_rep,
                                                                give_accounts, make_manager):
    login(client, make_manager())
    give_accounts(make_rep(), 3)
    few = statements_for(app, client, "/board")
    for _ in range(15):
        give_accounts(make_rep(), 2)
    assert statements_for(app, client, "/board") == few


def release_form(round_id, account_ids, **overrides):
    return {"round_id": str(round_id), "reason": ReleaseReason.OVER_CAPACITY.value, "note": "",
            "review_text": REVIEW, "account_ids": [str(i) for i in account_ids], **overrides}


def test_releasing_selected_accounts_lists_them_all_in_the_draft_round(
        app, client, session, reps, make_manager, make_round):
    draft = make_round(status=RoundStatus.DRAFT)
    login(client, make_manager())
    chosen = capacity_board.rep_accounts(session, reps["above"].id).accounts[:2]
    ids = [held.account.id for held in chosen]
    response = client.post(f"/board/reps/{reps['above'].id}/release",
                           data=release_form(draft.id, ids))
    assert response.status_code == 303
    assert response.location.endswith(f"/manage/rounds/{draft.id}")
    reload(session)
    listings = session.scalars(select(Listing).where(Listing.round_id == draft.id)).all()
    assert sorted(listing.account_id for listing in listings) == sorted(ids)
    assert all(listing.review.review_text == REVIEW for listing in listings)
    assert {listing.release_reason for listing in listings} == {ReleaseReason.OVER_CAPACITY}
    page = client.get(f"/board/reps/{reps['above'].id}").get_data(as_text=True)
    assert draft.title in page  # shown as on the market now


def test_one_bad_account_releases_nothing_and_says_which(
        client, session, reps, make_manager, make_round, make_account):
    draft = make_round(status=RoundStatus.DRAFT)
    held = [h.account for h in capacity_board.rep_accounts(session, reps["above"].id).accounts]
    already = make_round(accounts=[held[2]], status=RoundStatus.DRAFT)
    assert already.id != draft.id
    login(client, make_manager())
    response = client.post(f"/board/reps/{reps['above'].id}/release",
                           data=release_form(draft.id, [held[0].id, held[1].id, held[2].id]))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Nothing was released" in page and held[2].name in page
    assert 'id="account-ids-error"' in page
    reload(session)
    assert session.scalar(select(func.count()).select_from(Listing)
                          .where(Listing.round_id == draft.id)) == 0
    assert session.scalar(select(func.count()).select_from(AccountReview)) == 0


def test_a_listed_account_a_missing_note_and_a_short_review_are_all_said_at_once(
        client, session, reps, make_manager, make_round):
    """The account already listed is named over the list, the note an "other" reason needs
    and the review's length on their fields, in one answer; nothing is released."""
    draft = make_round(status=RoundStatus.DRAFT)
    held = [h.account for h in capacity_board.rep_accounts(session, reps["above"].id).accounts]
    make_round(accounts=[held[0]], status=RoundStatus.DRAFT)
    login(client, make_manager())
    response = client.post(f"/board/reps/{reps['above'].id}/release",
                           data=release_form(draft.id, [held[0].id, held[1].id],
                                             reason=ReleaseReason.OTHER.value,
                                             review_text="too short"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert held[0].name in selection_error_of(page)
    assert "Nothing was released" in selection_error_of(page)
    assert "Say what the other reason is." in page and "Write a review" in page
    reload(session)
    assert session.scalar(select(func.count()).select_from(Listing)
                          .where(Listing.round_id == draft.id)) == 0
    assert session.scalar(select(func.count()).select_from(AccountReview)) == 0


def selection_error_of(page: str) -> str:
    return re.search(r'<p class="error" id="account-ids-error">(.*?)</p>', page, re.S).group(1)


def test_an_account_that_left_the_rep_since_the_page_was_shown_releases_nothing(
        client, session, reps, make_manager, make_round, clock):
    from bidhub.services.filings import transfer_account

    manager = make_manager()
    draft = make_round(status=RoundStatus.DRAFT)
    held = [h.account for h in capacity_board.rep_accounts(session, reps["above"].id).accounts]
    transfer_account(session, manager, account_id=held[1].id, to_rep_id=reps["below"].id,
                     reason="Handed over to a rep with room.", review_text=REVIEW, now=clock())
    login(client, manager)
    response = client.post(f"/board/reps/{reps['above'].id}/release",
                           data=release_form(draft.id, [held[0].id, held[1].id]))
    assert response.status_code == 409  # a stale page, drawn again as it is now
    page = response.get_data(as_text=True)
    assert "No longer held by this rep" in page and held[1].name in page
    assert f'value="{held[1].id}"' not in page and f'value="{held[0].id}"' in page
    # The list is redrawn already: the message says so rather than asking for a reload.
    message = selection_error_of(page)
    assert "Reload" not in message and "The list below shows the rep" in message
    reload(session)
    assert session.scalar(select(func.count()).select_from(Listing)
                          .where(Listing.round_id == draft.id)) == 0
    chinese = client.post(f"/board/reps/{reps['above'].id}/release",
                          data=release_form(draft.id, [held[0].id, held[1].id]),
                          headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    message = selection_error_of(chinese)
    assert "以下客户已不在该KA销售名下" in message and "下方列表已按当前情况更新" in message
    assert "刷新" not in message


def test_the_release_service_is_all_or_nothing(session, reps, make_manager, make_round, clock,
                                               make_account, make_branch):
    manager = make_manager()
    draft = make_round(status=RoundStatus.DRAFT)
    held = [h.account.id for h in capacity_board.rep_accounts(session, reps["above"].id).accounts]
    with pytest.raises(InvalidRequest) as refused:
        rounds.release_accounts(session, manager, draft.id, account_ids=[held[0], 2**31 - 1],
                                reason=ReleaseReason.OVER_CAPACITY, note="", review_text=REVIEW,
                                now=clock())
    assert refused.value.field == "account_ids"
    with pytest.raises(InvalidRequest) as short:
        rounds.release_accounts(session, manager, draft.id, account_ids=held[:3],
                                reason=ReleaseReason.OVER_CAPACITY, note="", review_text="short",
                                now=clock())
    assert short.value.field == "review_text"
    with pytest.raises(InvalidRequest) as none:
        rounds.release_accounts(session, manager, draft.id, account_ids=[],
                                reason=ReleaseReason.OVER_CAPACITY, note="", review_text=REVIEW,
                                now=clock())
    assert none.value.field == "account_ids"
    reload(session)
    assert session.scalar(select(func.count()).select_from(Listing)) == 0
    released = rounds.release_accounts(session, manager, draft.id, account_ids=held[:3],
                                       reason=ReleaseReason.OVER_CAPACITY, note="",
                                       review_text=REVIEW, now=clock())
    assert len(released) == 3


def test_release_form_errors_are_shown_on_their_fields(client, session, reps, make_manager,
                                                      make_round):
    draft = make_round(status=RoundStatus.DRAFT)
    published = make_round(status=RoundStatus.PUBLISHED)
    held = capacity_board.rep_accounts(session, reps["above"].id).accounts[0].account.id
    login(client, make_manager())
    url = f"/board/reps/{reps['above'].id}/release"
    short = client.post(url, data=release_form(draft.id, [held], review_text="too short"))
    assert short.status_code == 422 and "Write a review" in short.get_data(as_text=True)
    nothing = client.post(url, data=release_form(draft.id, []))
    assert nothing.status_code == 422
    assert "Choose at least one account" in nothing.get_data(as_text=True)
    # A round not offered in the form (published) is refused before the use case.
    assert client.post(url, data=release_form(published.id, [held])).status_code == 422
    reload(session)
    assert session.scalar(select(func.count()).select_from(Listing)
                          .where(Listing.round_id == draft.id)) == 0


@pytest.mark.parametrize("value", ["0", "-1", "²", "١", "9" * 30, "\x00", "abc", ""])
def test_hostile_account_ids_and_params_change_nothing(client, session, reps, make_manager,
                                                       make_round, value):
    draft = make_round(status=RoundStatus.DRAFT)
    held = capacity_board.rep_accounts(session, reps["above"].id).accounts[0].account.id
    login(client, make_manager())
    response = client.post(f"/board/reps/{reps['above'].id}/release",
                           data=release_form(draft.id, [str(held), value]))
    assert response.status_code == 422
    response = client.post(f"/board/reps/{reps['above'].id}/release",
                           data=release_form(value, [held]))
    assert response.status_code == 422
    for query in ({"band": value}, {"branch": value}, {"band": "above", "branch": value}):
        assert client.get("/board", query_string=query).status_code == 200
    reload(session)
    assert session.scalar(select(func.count()).select_from(Listing)
                          .where(Listing.round_id == draft.id)) == 0


def test_an_unknown_rep_is_not_found(client, make_manager, make_admin):
    manager = make_manager()
    login(client, manager)
    assert client.get("/board/reps/999999").status_code == 404
    assert client.get(f"/board/reps/{manager.id}").status_code == 404  # not a rep
    assert client.get(f"/board/reps/{2**31}").status_code == 404


def test_a_rep_sees_only_their_own_accounts(client, make_rep, make_account, make_round):
    rep, other = make_rep(), make_rep()
    mine = make_account(owner=rep, name="Mine Co")
    draft_listed = make_account(owner=rep, name="Planned Co")
    make_account(owner=other, name="Theirs Co")
    make_round(accounts=[draft_listed], status=RoundStatus.DRAFT, title="Secret draft")
    login(client, rep)
    page = client.get("/my/accounts").get_data(as_text=True)
    assert "Mine Co" in page and "Planned Co" in page and "Theirs Co" not in page
    assert "of a 30–40 band" in page and "28 short of the target" in page
    assert "Secret draft" not in page  # a draft round is management's plan, not yet public
    assert f'href="/accounts/{mine.id}"' in page
    assert 'href="/my/accounts"' in page  # the nav link
    assert client.get("/board").status_code == 403
    assert client.get(f"/board/reps/{rep.id}").status_code == 403
    assert client.get("/manage").status_code == 403


def test_management_is_sent_home_to_its_agenda(client, make_manager, make_admin):
    manager = make_manager()
    response = client.post("/login", data={"username": manager.username,
                                           "password": "correct horse battery"})
    assert response.location.endswith("/manage")
    assert client.get("/my/accounts").status_code == 403


def test_the_my_accounts_page_statement_count_does_not_grow(app, client, make_rep,
                                                            give_accounts):
    rep = make_rep()
    give_accounts(rep, 2)
    login(client, rep)
    few = statements_for(app, client, "/my/accounts")
    give_accounts(rep, 30)
    with counted_statements(app) as statements:
        assert client.get("/my/accounts").status_code == 200
    assert len(statements) == few


def test_the_demo_plans_reps_above_and_below_the_band():
    """The demo's CRM import loads owners as they are (a first load is not capped), so the board
    has reps to act on: some above the maximum and some below the target."""
    from bidhub.demo import plan_world
    from bidhub.domain.facts import HANDBOOK_CAPACITY_MAX, HANDBOOK_CAPACITY_TARGET

    holdings = [rep.holdings for rep in plan_world().reps]
    assert any(count > HANDBOOK_CAPACITY_MAX for count in holdings)
    assert any(count < HANDBOOK_CAPACITY_TARGET for count in holdings)
