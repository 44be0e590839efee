"""KA management's work: releasing accounts, sponsored accounts, the register and its export."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask_babel import force_locale
from sqlalchemy import func, select

from bidhub.domain.errors import InvalidRequest
from bidhub.models import (
    AccountReview,
    AuditEvent,
    Listing,
    ListingStatus,
    Round,
    RoundStatus,
    User,
)
from bidhub.services import rounds
from bidhub.services.filings import transfer_account
from bidhub.web.i18n import translate
from tests.conftest import login, reload


@pytest.fixture
def draft_round(make_round, clock):
    return make_round(status=RoundStatus.DRAFT, closes_at=clock() + timedelta(days=5))


def release(session, manager, round_, account, *, reason="neglected", review="", note="",
            clock=None):
    return rounds.release_account(session, manager, round_.id, account_id=account.id,
                                  reason=reason, note=note, review_text=review, now=clock())


def test_releasing_a_held_account_needs_a_written_review(session, draft_round, make_manager,
                                                        make_rep, make_account, clock):
    manager, owner = make_manager(), make_rep()
    account = make_account(owner=owner)
    with pytest.raises(InvalidRequest, match="Write a review"):
        release(session, manager, draft_round, account, review="too short", clock=clock)
    listing = release(session, manager, draft_round, account,
                      review="No visit in five months; two complaints unanswered.", clock=clock)
    review = session.scalars(select(AccountReview)).one()
    assert (review.account_id, review.rep_id, review.written_by_id) == (
        account.id, owner.id, manager.id)
    assert listing.review_id == review.id and listing.released_from_id == owner.id


def test_other_as_a_reason_needs_the_reason_spelled_out(session, draft_round, make_manager,
                                                        make_account, clock):
    with pytest.raises(InvalidRequest, match="other reason"):
        release(session, make_manager(), draft_round, make_account(), reason="other", clock=clock)


def test_an_account_cannot_be_listed_in_two_active_rounds(session, draft_round, make_round,
                                                          make_manager, make_account, clock):
    account = make_account()
    other = make_round(status=RoundStatus.DRAFT)
    release(session, make_manager(), draft_round, account, clock=clock)
    with pytest.raises(InvalidRequest, match="already listed"):
        release(session, make_manager(), other, account, clock=clock)


def test_sponsored_accounts_wait_for_the_sponsor_or_an_admin_before_the_round_can_publish(
        session, draft_round, make_manager, make_admin, make_account, clock):
    manager = make_manager()
    account = make_account(executive_sponsor="president")
    listing = release(session, manager, draft_round, account, clock=clock)
    assert listing.status == ListingStatus.AWAITING_CONFIRMATION
    round_ = session.get(Round, draft_round.id)
    with pytest.raises(InvalidRequest, match="sponsor must first confirm"):
        rounds.publish_round(session, manager, round_.id, expected_version=round_.version,
                             now=clock())
    reload(session)
    with pytest.raises(Exception, match="or an admin standing in"):
        rounds.confirm_sponsored_listing(session, manager, listing.id, clock())
    rounds.confirm_sponsored_listing(session, make_admin(), listing.id, clock())
    round_ = session.get(Round, draft_round.id)
    rounds.publish_round(session, manager, round_.id, expected_version=round_.version,
                         now=clock())
    assert session.get(Round, round_.id).status == RoundStatus.PUBLISHED


def test_a_stale_publish_form_gets_a_conflict(app, session, draft_round, make_manager,
                                              make_account, clock):
    manager = make_manager()
    release(session, manager, draft_round, make_account(), clock=clock)
    client = app.test_client()
    login(client, manager)
    stale = session.get(Round, draft_round.id).version - 1
    response = client.post(f"/manage/rounds/{draft_round.id}/publish", data={"version": stale})
    assert response.status_code == 409


def test_the_round_form_rejects_a_deadline_before_the_opening(app, make_manager, login_as):
    client = login_as(make_manager())
    response = client.post("/manage/rounds/new", data={
        "title": "Backwards", "branch_id": "0", "opens_at": "2026-03-10T09:00",
        "closes_at": "2026-03-09T09:00"})
    assert response.status_code == 422
    assert "deadline must be after the opening" in response.get_data(as_text=True)


def test_deadlines_are_entered_in_local_time_and_stored_in_utc(app, session, make_manager,
                                                               login_as):
    client = login_as(make_manager())
    client.post("/manage/rounds/new", data={"title": "Local", "branch_id": "0",
                                           "opens_at": "2026-03-02T09:00",
                                           "closes_at": "2026-03-09T18:00"})
    round_ = session.scalars(select(Round)).one()
    assert round_.closes_at.isoformat() == "2026-03-09T10:00:00+00:00"


NEW_ROUND = {"title": "Spring round", "branch_id": "0", "opens_at": "2026-03-02T09:00",
             "closes_at": "2026-03-09T18:00"}


def form_key(html: str) -> str:
    return re.search(r'name="submission_key" type="hidden" value="([^"]+)"', html).group(1)


def round_audits(session) -> list[AuditEvent]:
    return session.scalars(select(AuditEvent).where(AuditEvent.action == "round.created")).all()


def test_the_new_round_form_sent_twice_creates_one_round(app, session, clock, make_manager,
                                                          login_as):
    """A double click or the browser resending the form: the second send gives the round the
    first created, even once its opening time has passed, and writes nothing."""
    client = login_as(make_manager())
    key = form_key(client.get("/manage/rounds/new").get_data(as_text=True))
    assert key != form_key(client.get("/manage/rounds/new").get_data(as_text=True))
    first = client.post("/manage/rounds/new", data={**NEW_ROUND, "submission_key": key})
    clock.advance(days=2)  # the opening time is in the past now
    again = client.post("/manage/rounds/new", data={**NEW_ROUND, "submission_key": key})
    assert first.status_code == again.status_code == 303
    assert first.headers["Location"] == again.headers["Location"]
    reload(session)
    [round_] = session.scalars(select(Round)).all()
    assert first.headers["Location"].endswith(f"/manage/rounds/{round_.id}")
    assert round_.submission_key == key and len(round_audits(session)) == 1
    another = client.post("/manage/rounds/new", data={
        **NEW_ROUND, "title": "Autumn round",
        "submission_key": form_key(client.get("/manage/rounds/new").get_data(as_text=True))})
    assert another.status_code == 303
    reload(session)
    assert len(session.scalars(select(Round)).all()) == 2


def test_a_round_s_times_are_kept_to_the_minute_as_they_are_shown(app, session, make_manager,
                                                                   login_as):
    """18:00:59 is shown as 18:00, and "bids at this minute and after are refused" must hold:
    the seconds are dropped when the round is created, and when its times are changed."""
    client = login_as(make_manager())
    created = client.post("/manage/rounds/new", data={
        **NEW_ROUND, "opens_at": "2026-03-02T09:00:30", "closes_at": "2026-03-09T18:00:59"})
    assert created.status_code == 303
    reload(session)
    round_ = session.scalars(select(Round)).one()
    shanghai = ZoneInfo("Asia/Shanghai")
    assert round_.closes_at.astimezone(shanghai) == datetime(2026, 3, 9, 18, 0, tzinfo=shanghai)
    assert round_.opens_at.astimezone(shanghai) == datetime(2026, 3, 2, 9, 0, tzinfo=shanghai)
    edited = client.post(f"/manage/rounds/{round_.id}/edit", data={
        "title": "Spring round", "opens_at": "2026-03-02T09:00",
        "closes_at": "2026-03-10T17:30:45", "version": round_.version})
    assert edited.status_code == 303
    reload(session)
    assert session.get(Round, round_.id).closes_at.astimezone(shanghai) == datetime(
        2026, 3, 10, 17, 30, tzinfo=shanghai)


def test_the_edit_page_of_a_published_round_goes_to_the_round_and_says_why(
        app, session, make_manager, make_round, make_account, login_as):
    round_ = make_round(accounts=[make_account()])
    client = login_as(make_manager())
    response = client.get(f"/manage/rounds/{round_.id}/edit")
    assert response.status_code == 302
    assert response.location.endswith(f"/manage/rounds/{round_.id}")
    page = client.get(response.location).get_data(as_text=True)
    assert "Only a draft round can be changed; this one is published." in page


def test_a_new_round_form_key_is_one_managers(app, session, make_manager, login_as):
    """A key another manager's form created a round with is refused, not answered with that
    manager's round; a key the form never issued is refused too. Nothing is created."""
    client = login_as(make_manager())
    key = form_key(client.get("/manage/rounds/new").get_data(as_text=True))
    client.post("/manage/rounds/new", data={**NEW_ROUND, "submission_key": key})
    other = login_as(make_manager())
    for forged in (key, "x" * 65, "no spaces allowed", "键"):
        response = other.post("/manage/rounds/new", data={**NEW_ROUND, "submission_key": forged},
                              headers={"Accept-Language": "zh-CN"})
        assert response.status_code == 422
        assert "表单已过期" in response.get_data(as_text=True)
    reload(session)
    assert len(session.scalars(select(Round)).all()) == 1 and len(round_audits(session)) == 1


def test_the_new_round_form_saved_again_after_back_creates_no_second_round(
        app, session, clock, make_manager, make_branch, login_as):
    """Back to the New round form draws it afresh, with a new key, and the browser puts back
    what the manager typed: saved again, it leads to the round made first, says so, and
    writes nothing. Another title, branch or deadline is another round."""
    manager = make_manager()
    client = login_as(manager)
    first = client.post("/manage/rounds/new", data={
        **NEW_ROUND, "submission_key": form_key(client.get("/manage/rounds/new").get_data(as_text=True))})
    clock.advance(minutes=3)  # the redrawn form's opening time defaults to a later minute
    again = client.post("/manage/rounds/new", data={
        **NEW_ROUND, "opens_at": "2026-03-02T09:03",
        "submission_key": form_key(client.get("/manage/rounds/new").get_data(as_text=True))},
        headers={"Accept-Language": "zh-CN"})
    assert first.status_code == again.status_code == 303
    assert again.headers["Location"] == first.headers["Location"]
    shown = client.get(again.headers["Location"], headers={"Accept-Language": "zh-CN"})
    assert "你已创建过这个轮次（标题、分公司和截止时间都相同），未新建轮次。" in shown.get_data(as_text=True)
    reload(session)
    assert session.scalar(select(func.count()).select_from(Round)) == 1
    assert len(round_audits(session)) == 1
    for changed in ({"title": "Autumn round"}, {"closes_at": "2026-03-10T18:00"},
                    {"branch_id": str(make_branch().id)}):
        made = client.post("/manage/rounds/new", data={
            **NEW_ROUND, **changed,
            "submission_key": form_key(client.get("/manage/rounds/new").get_data(as_text=True))})
        assert made.status_code == 303 and made.headers["Location"] != first.headers["Location"]
    reload(session)
    assert session.scalar(select(func.count()).select_from(Round)) == 4


def test_another_managers_round_of_the_same_title_is_not_the_same_round(
        session, clock, make_manager):
    """Only the manager's own drafts are the form they filled in before."""
    times = {"opens_at": clock() + timedelta(hours=1), "closes_at": clock() + timedelta(days=7)}
    made = [rounds.create_round(session, make_manager(), title="Spring", branch_id=None,
                                now=clock(), **times) for _ in range(2)]
    assert made[0].id != made[1].id
    with pytest.raises(rounds.RoundCreatedAlready) as refused:
        rounds.create_round(session, session.get(User, made[1].created_by_id), title="Spring", branch_id=None,
                            now=clock(), **times)
    assert refused.value.round_id == made[1].id
    assert session.scalar(select(func.count()).select_from(Round)) == 2


def test_a_round_created_by_the_service_twice_with_one_key_is_one_round(session, clock,
                                                                          make_manager):
    manager = make_manager()
    made = [rounds.create_round(session, manager, title="Twice", branch_id=None,
                                opens_at=clock() + timedelta(hours=1),
                                closes_at=clock() + timedelta(days=7), now=clock(),
                                submission_key="the-form") for _ in range(2)]
    assert made[0].id == made[1].id
    assert session.scalar(select(func.count()).select_from(Round)) == 1


def test_the_register_exports_csv_with_a_bom_and_chinese_names(app, session, make_manager, make_rep,
                                                               make_account, clock, login_as):
    manager = make_manager(name="周经理")
    account = make_account(owner=make_rep(), name="广州云帆科技有限公司")
    transfer_account(session, manager, account_id=account.id, to_rep_id=make_rep(name="王伟").id,
                     reason="原销售离职，客户划转。", review_text="离职交接完成，客户无投诉，新销售已与客户见面确认。",
                     now=clock())
    client = login_as(manager)
    response = client.get("/manage/filings.csv")
    assert response.mimetype == "text/csv"
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][0] == "No."
    assert rows[1][4] == "广州云帆科技有限公司" and rows[1][7] == "王伟"
    page = client.get("/manage/filings").get_data(as_text=True)
    assert "广州云帆科技有限公司" in page


def test_the_register_filters_by_rep(app, session, make_manager, make_rep, make_account, clock,
                                     login_as):
    manager = make_manager()
    first, second = make_rep(name="First Receiver"), make_rep(name="Second Receiver")
    for receiver in (first, second):
        account = make_account(owner=make_rep(), name=f"Account for {receiver.display_name}")
        transfer_account(session, manager, account_id=account.id, to_rep_id=receiver.id,
                         reason="Owner left the company.", review_text="Handover done; the client was told.",
                         now=clock())
    client = login_as(manager)
    page = client.get(f"/manage/filings?rep={first.id}", headers={"HX-Request": "true"})
    html = page.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="filings">')
    assert "Account for First Receiver" in html and "Account for Second Receiver" not in html
    assert page.headers["Vary"] == "HX-Request" or "HX-Request" in page.headers["Vary"]


def test_the_listing_filter_answers_htmx_with_the_partial_and_plain_get_with_the_page(
        app, make_rep, make_account, make_round, login_as):
    round_ = make_round(accounts=[make_account(industry="Finance", name="Bank A"),
                                  make_account(industry="Retail", name="Shop B")])
    client = login_as(make_rep())
    partial = client.get(f"/rounds/{round_.id}?industry=Finance",
                         headers={"HX-Request": "true"}).get_data(as_text=True)
    assert partial.lstrip().startswith('<section id="listings"')
    assert "Bank A" in partial and "Shop B" not in partial
    page = client.get(f"/rounds/{round_.id}?industry=Retail").get_data(as_text=True)
    assert "<html" in page and "Shop B" in page and "Bank A" not in page
    boosted = client.get(f"/rounds/{round_.id}", headers={"HX-Request": "true",
                                                           "HX-History-Restore-Request": "true"})
    assert "<html" in boosted.get_data(as_text=True)


def menu_of(page: str, name: str) -> list[str]:
    """The options of the filter menu `name` on a page, as their labels read."""
    menu = page.split(f'name="{name}"', 1)[1].split("</select>", 1)[0]
    return re.findall(r"<option[^>]*>([^<]*)</option>", menu)[1:]  # after "any"


def test_a_reps_filter_menus_offer_what_their_whole_list_holds(
        app, session, make_rep, make_manager, make_branch, make_account, make_round, login_as):
    north, south = make_branch("N", "North"), make_branch("S", "South")
    manager = make_manager()
    round_ = make_round(manager=manager, accounts=[
        make_account(industry="Retail", ownership_type="state", branch=south),
        make_account(industry="Finance", ownership_type="private", branch=north),
        make_account(industry="Mining", ownership_type="foreign", branch=make_branch(
            "H", "Hidden Branch")),
        make_account(industry="Shipping", ownership_type="foreign", branch=south)])
    # Awaiting its sponsor's confirmation, and refused by one: reps do not see these two.
    session.get(Listing, round_.listings[2].id).status = ListingStatus.AWAITING_CONFIRMATION
    session.get(Listing, round_.listings[3].id).status = ListingStatus.REFUSED
    session.commit()
    client = login_as(make_rep())
    for path in (f"/rounds/{round_.id}", f"/rounds/{round_.id}?sort=name",
                 # Filtered, the list holds one listing; the menus still offer the rest.
                 f"/rounds/{round_.id}?industry=Finance&branch={north.id}",
                 f"/rounds/{round_.id}?q=nothing-matches"):
        page = client.get(path).get_data(as_text=True)
        assert menu_of(page, "industry") == ["Finance", "Retail"], path
        assert menu_of(page, "branch") == ["North", "South"], path
        assert len(menu_of(page, "ownership")) == 2, path
        assert "Mining" not in page and "Hidden Branch" not in page and "Shipping" not in page
    # KA management's page offers every listing's values, whatever their status.
    page = login_as(manager).get(f"/manage/rounds/{round_.id}").get_data(as_text=True)
    assert menu_of(page, "industry") == ["Finance", "Mining", "Retail", "Shipping"]
    assert menu_of(page, "branch") == ["Hidden Branch", "North", "South"]


def test_a_scored_rounds_filter_menus_come_from_its_review_and_follow_renames(
        app, session, clock, make_rep, make_manager, make_admin, make_branch, make_account,
        make_round, make_bid, login_as):
    from bidhub.services import adjudication
    from bidhub.services.branches import rename_branch

    north, south = make_branch("N", "North"), make_branch("S", "South")
    manager, admin = make_manager(), make_admin()
    round_ = make_round(manager=manager, accounts=[
        make_account(industry="Retail", branch=south),
        make_account(industry="Mining", branch=north)])
    make_bid(make_rep(), round_.listings[0])
    session.get(Listing, round_.listings[1].id).status = ListingStatus.REFUSED
    session.commit()
    clock.advance(days=8)
    assert adjudication.score_closed_round(session, round_.id, clock())
    session.rollback()  # no read left open in the test's session while requests write
    client = login_as(manager)
    page = client.get(f"/manage/rounds/{round_.id}").get_data(as_text=True)
    assert menu_of(page, "industry") == ["Mining", "Retail"]
    assert menu_of(page, "branch") == ["North", "South"]
    rename_branch(session, admin, north.id, "Beijing North", None, clock())
    page = client.get(f"/manage/rounds/{round_.id}").get_data(as_text=True)
    assert menu_of(page, "branch") == ["Beijing North", "South"]
    filtered = client.get(f"/manage/rounds/{round_.id}?industry=Retail").get_data(as_text=True)
    assert menu_of(filtered, "industry") == ["Mining", "Retail"]


def test_a_draft_round_is_invisible_to_reps(app, make_rep, make_account, make_round, login_as):
    round_ = make_round(accounts=[make_account(name="Secret Draft Account")],
                        status=RoundStatus.DRAFT)
    client = login_as(make_rep())
    assert client.get(f"/rounds/{round_.id}").status_code == 404
    assert "Secret Draft Account" not in client.get("/rounds").get_data(as_text=True)


def test_removing_an_account_from_a_draft_round_asks_first(app, make_manager, make_account,
                                                           make_round, login_as):
    """Publishing, cancelling and announcing ask before they act; removing a listing, which
    withdraws its release and the loss review asked for it, now asks too."""
    round_ = make_round(accounts=[make_account()], status=RoundStatus.DRAFT)
    body = login_as(make_manager()).get(f"/manage/rounds/{round_.id}").get_data(as_text=True)
    listing_id = round_.listings[0].id
    form = re.search(rf'<form method="post" action="/manage/listings/{listing_id}/remove"[^>]*>',
                     body).group(0)
    assert 'data-confirm="Remove this account from the round?' in form


def test_listings_survive_in_the_round_they_were_released_into(session, draft_round, make_manager,
                                                               make_account, clock):
    listing = release(session, make_manager(), draft_round, make_account(), clock=clock)
    assert session.get(Listing, listing.id).round_id == draft_round.id


def test_the_accounts_waiting_for_their_sponsor_are_listed_in_the_pages_language(
        app, session, draft_round, make_manager, make_account, clock):
    """Names in a refusal are listed with 、 in Chinese, not with the English comma."""
    manager = make_manager()
    for name in ("甲公司", "乙公司"):
        release(session, manager, draft_round, make_account(name=name,
                                                            executive_sponsor="president"),
                clock=clock)
    round_ = session.get(Round, draft_round.id)
    with pytest.raises(InvalidRequest) as refused:
        rounds.publish_round(session, manager, round_.id, expected_version=round_.version,
                             now=clock())
    assert "甲公司, 乙公司" in str(refused.value.message)
    with app.test_request_context(), force_locale("zh_CN"):
        assert "甲公司、乙公司" in translate(refused.value)


def test_a_round_that_cannot_be_published_yet_says_why_on_its_page(
        app, session, draft_round, make_manager, make_account, clock):
    """Publishing a round whose sponsored release waits for its sponsor brings the manager back
    to the round page with the reason, not to a bare error page under the form's address."""
    manager = make_manager()
    release(session, manager, draft_round, make_account(name="甲公司",
                                                        executive_sponsor="president"),
            clock=clock)
    client = app.test_client()
    login(client, manager)
    version = session.get(Round, draft_round.id).version
    response = client.post(f"/manage/rounds/{draft_round.id}/publish",
                           data={"version": version})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/manage/rounds/{draft_round.id}")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert re.search(r'class="flash flash-error"[^>]*>[^<]*sponsor must first confirm[^<]*甲公司',
                     page)
    reload(session)
    assert session.get(Round, draft_round.id).status == RoundStatus.DRAFT
