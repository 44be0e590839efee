"""The round page's release of one account, typed by name or customer number: the page first
shows who holds it (the rep the review is about) and releases only on confirmation, carrying
that owner; if the account changed hands in between, nothing is released (409)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bidhub.domain.errors import BidhubError, Conflict
from bidhub.models import AccountReview, Listing, RoundStatus, User
from bidhub.services import ownership, rounds
from bidhub.services.filings import transfer_account
from tests import test_round_races
from tests.conftest import release_on_round_page, reload
from tests.test_round_races import raced

REVIEW = "The rep has not visited the client since the spring."
HANDOVER = "Handover done; the client was told."
postgresql_only = test_round_races.postgresql_only


@pytest.fixture
def draft(make_round, clock):
    return make_round(status=RoundStatus.DRAFT, closes_at=clock() + timedelta(days=10))


def hidden(page: str, name: str) -> str | None:
    found = re.search(rf'name="{name}" type="hidden" value="([^"]*)"', page)
    return found.group(1) if found else None


def listings(session) -> int:
    return session.scalar(select(func.count()).select_from(Listing))


def test_the_page_shows_the_owner_first_and_releases_on_confirmation(
        session, draft, make_manager, make_rep, make_account, login_as):
    manager, owner = make_manager(), make_rep(name="王伟")
    account = make_account(owner=owner, name="北京星河科技有限公司")
    client = login_as(manager)
    data = {"account": account.external_id, "reason": "neglected", "note": "",
            "review_text": REVIEW}
    response = client.post(f"/manage/rounds/{draft.id}/release", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "held by 王伟" in page and "Confirm the release" in page
    assert "due from them. Check that this is the account you mean" in page
    chinese = client.post(f"/manage/rounds/{draft.id}/release", data=data,
                          headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert re.search(r"丢失总结由王伟撰写。请核对", chinese), "no space after 。"
    assert (hidden(page, "shown_account"), hidden(page, "owner")) == (str(account.id),
                                                                      str(owner.id))
    reload(session)
    assert listings(session) == 0 and session.query(AccountReview).count() == 0

    response = client.post(f"/manage/rounds/{draft.id}/release",
                           data={**data, "shown_account": str(account.id),
                                 "owner": str(owner.id)})
    assert response.status_code == 303
    reload(session)
    assert session.scalars(select(Listing)).one().released_from_id == owner.id


def test_the_preview_of_a_sponsored_account_says_the_release_waits_for_the_sponsor(
        session, draft, make_manager, make_rep, make_account, login_as):
    owner = make_rep(name="王伟")
    account = make_account(owner=owner, executive_sponsor="president")
    plain = make_account(owner=owner)
    client = login_as(make_manager())
    data = {"reason": "neglected", "note": "", "review_text": REVIEW}
    page = client.post(f"/manage/rounds/{draft.id}/release", headers={
        "Accept-Language": "zh-CN"}, data={**data, "account": account.external_id}).get_data(
        as_text=True)
    assert re.search(r"丢失总结由王伟撰写。该客户有老板负责人总裁：释放需等其确认，在其确认或拒绝"
                     r"之前，本轮次不能发布。请核对", page), page
    page = client.post(f"/manage/rounds/{draft.id}/release",
                       data={**data, "account": plain.external_id}).get_data(as_text=True)
    assert "executive sponsor" not in page


def test_an_account_that_changed_owner_after_the_preview_is_not_released(
        session, draft, make_manager, make_rep, make_account, clock, login_as):
    """The preview named the rep the review is about; a transfer in between makes the
    confirmation stale: 409, nothing released, the preview drawn again with the new owner."""
    manager, shown, new_owner = make_manager(), make_rep(name="王伟"), make_rep(name="李娜")
    account = make_account(owner=shown, name="北京星河科技有限公司")
    client = login_as(manager)
    data = {"account": account.name, "reason": "neglected", "note": "", "review_text": REVIEW}
    page = client.post(f"/manage/rounds/{draft.id}/release", data=data).get_data(as_text=True)
    confirm = {**data, "shown_account": hidden(page, "shown_account"),
               "owner": hidden(page, "owner")}
    transfer_account(session, manager, account_id=account.id, to_rep_id=new_owner.id,
                     reason="Handed over to the rep covering the district.",
                     review_text=HANDOVER, now=clock())
    reviews = session.query(AccountReview).count()

    response = client.post(f"/manage/rounds/{draft.id}/release", data=confirm)
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "changed owner after this page was drawn" in page and "held by 李娜" in page
    assert hidden(page, "owner") == str(new_owner.id)
    reload(session)
    assert listings(session) == 0 and session.query(AccountReview).count() == reviews
    chinese = client.post(f"/manage/rounds/{draft.id}/release", data=confirm,
                          headers={"Accept-Language": "zh-CN"})
    assert chinese.status_code == 409 and "所属销售已变更" in chinese.get_data(as_text=True)

    response = client.post(f"/manage/rounds/{draft.id}/release",
                           data={**confirm, "owner": hidden(page, "owner")})
    assert response.status_code == 303
    reload(session)
    assert session.scalars(select(Listing)).one().released_from_id == new_owner.id


def test_another_account_typed_after_the_preview_is_previewed_again(
        session, draft, make_manager, make_rep, make_account, login_as):
    manager, first_owner, second_owner = make_manager(), make_rep(), make_rep(name="李娜")
    first = make_account(owner=first_owner)
    second = make_account(owner=second_owner, name="上海蓝海物流集团")
    client = login_as(manager)
    response = client.post(f"/manage/rounds/{draft.id}/release", data={
        "account": second.name, "reason": "neglected", "review_text": REVIEW,
        "shown_account": str(first.id), "owner": str(first_owner.id)})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "held by 李娜" in page
    assert hidden(page, "shown_account") == str(second.id)
    reload(session)
    assert listings(session) == 0


@pytest.mark.parametrize("owner", ["", "x", "-1", "99999999999999999999"])
def test_a_confirmation_without_a_readable_owner_releases_nothing(
        session, draft, make_manager, make_rep, make_account, login_as, owner):
    manager = make_manager()
    account = make_account(owner=make_rep())
    client = login_as(manager)
    response = client.post(f"/manage/rounds/{draft.id}/release", data={
        "account": account.external_id, "reason": "neglected", "review_text": REVIEW,
        "shown_account": str(account.id), "owner": owner})
    assert response.status_code in (200, 409, 422)
    reload(session)
    assert listings(session) == 0


def test_the_service_refuses_a_release_for_an_owner_who_no_longer_holds_it(
        session, draft, make_manager, make_rep, make_account, clock):
    manager, shown = make_manager(), make_rep()
    account = make_account(owner=shown)
    transfer_account(session, manager, account_id=account.id, to_rep_id=make_rep().id,
                     reason="Handed over to the rep covering the district.",
                     review_text=HANDOVER, now=clock())
    with pytest.raises(Conflict, match="changed owner"):
        rounds.release_account(session, manager, draft.id, account_id=account.id,
                               reason="neglected", note="", review_text=REVIEW, now=clock(),
                               expected_owner_id=shown.id)
    reload(session)
    assert listings(session) == 0


@pytest.mark.parametrize("first", ["transfer", "release"])
def test_a_release_and_a_transfer_of_the_same_account_at_once(
        app, session, postgresql_only, monkeypatch, draft, make_manager, make_rep, make_account,
        clock, first):
    """Both lock the account: whichever comes second waits and sees the first. A transfer
    first makes the release stale (refused); a release first lists the account, and the
    transfer is refused. Never a listing whose review is about someone who no longer held
    the account."""
    manager, shown, receiver = make_manager(), make_rep(), make_rep()
    account = make_account(owner=shown)

    def transfer(own):
        return transfer_account(own, own.get(User, manager.id), account_id=account.id,
                                to_rep_id=receiver.id, reason="Handed to a rep with room.",
                                review_text=HANDOVER, now=clock())

    def release(own):
        return rounds.release_account(own, own.get(User, manager.id), draft.id,
                                      account_id=account.id, reason="neglected", note="",
                                      review_text=REVIEW, now=clock(),
                                      expected_owner_id=shown.id)

    if first == "transfer":
        led, trailed = raced(app, monkeypatch, (ownership, "refuse_unavailable_receivers"),
                             transfer, release)
    else:
        led, trailed = raced(app, monkeypatch, (rounds, "open_release_review"), release,
                             transfer)
    assert not isinstance(led, Exception), led
    assert isinstance(trailed, BidhubError), trailed
    reload(session)
    released = session.scalars(select(Listing)).all()
    if first == "transfer":
        assert isinstance(trailed, Conflict) and released == []
    else:
        assert [listing.released_from_id for listing in released] == [shown.id]
        assert session.get(type(account), account.id).owner_id == shown.id


def test_the_helper_releases_through_both_steps(session, draft, make_manager, make_rep,
                                                make_account, login_as):
    account = make_account(owner=make_rep())
    response = release_on_round_page(login_as(make_manager()), draft.id, {
        "account": account.external_id, "reason": "neglected", "review_text": REVIEW})
    assert response.status_code == 303
    reload(session)
    assert listings(session) == 1


@pytest.mark.parametrize("standing", ["active", "on_leave", "left", "deactivated"])
def test_rep_left_is_a_reason_only_for_a_rep_who_left(session, draft, make_manager, make_rep,
                                                      make_account, login_as, standing):
    """The reason goes into the rep's loss review and the filing: "rep left" is refused for a
    rep who is still with the company, on the page and in the use case, and nothing is
    released; an account with no rep may carry it."""
    owner = make_rep(name="王伟")
    account, unheld = make_account(owner=owner), make_account()
    if standing in ("on_leave", "left"):
        owner.status = standing
    owner.is_active = standing != "deactivated"
    session.commit()
    manager = make_manager()
    data = {"account": account.external_id, "reason": "rep_left", "note": "",
            "review_text": REVIEW, "shown_account": str(account.id), "owner": str(owner.id)}
    response = login_as(manager).post(f"/manage/rounds/{draft.id}/release", data=data,
                                      headers={"Accept-Language": "zh-CN"})
    departed = standing in ("left", "deactivated")
    assert response.status_code == (303 if departed else 422)
    if not departed:
        assert "王伟并未离职：请选择符合实际的原因。" in response.get_data(as_text=True)
        with pytest.raises(BidhubError, match="has not left the company"):
            rounds.release_account(session, manager, draft.id, account_id=account.id,
                                   reason="rep_left", note="", review_text=REVIEW,
                                   now=draft.created_at)
    reload(session)
    assert listings(session) == (1 if departed else 0)
    rounds.release_account(session, manager, draft.id, account_id=unheld.id, reason="rep_left",
                           note="", review_text="", now=draft.created_at)
    reload(session)
    assert listings(session) == (2 if departed else 1)

@pytest.mark.parametrize("confirming", [False, True], ids=["first post", "confirmation"])
def test_an_other_reason_without_a_note_and_a_short_review_show_both_errors_at_once(
        session, draft, make_manager, make_rep, make_account, login_as, confirming):
    """The note an "other" reason needs and the review's length are both refused in the same
    answer, on the first post and on the confirmation, not one per try; nothing is written."""
    owner = make_rep()
    account = make_account(owner=owner)
    data = {"account": account.external_id, "reason": "other", "note": " ",
            "review_text": "Too short."}
    if confirming:
        data |= {"shown_account": str(account.id), "owner": str(owner.id)}
    client = login_as(make_manager())
    for headers, said in (({}, ("Say what the other reason is.",
                                "Write a review of why the account leaves")),
                          ({"Accept-Language": "zh-CN"}, ("请写明具体的其他原因。", "请写明该客户离开"))):
        response = client.post(f"/manage/rounds/{draft.id}/release", data=data,
                               headers=headers)
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert all(words in page for words in said), said
    reload(session)
    assert listings(session) == 0 and session.query(AccountReview).count() == 0


def test_an_account_listed_elsewhere_with_an_other_reason_and_no_note_shows_both_errors(
        session, draft, make_round, make_manager, make_account, login_as):
    account = make_account()
    make_round(status=RoundStatus.DRAFT, accounts=[account], title="春季轮")
    response = login_as(make_manager()).post(
        f"/manage/rounds/{draft.id}/release",
        data={"account": account.external_id, "reason": "other", "note": ""})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "is already listed in round “春季轮”" in page
    assert "Say what the other reason is." in page
    reload(session)
    assert listings(session) == 1
