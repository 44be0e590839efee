"""Every lost customer gets a written review (任何客户的丢失都要总结反省): each way an account
leaves a rep makes one due, the rep writes it, management closes it, the register lists them,
and unreviewed losses count in the track record and in scoring."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bidhub.db import unit_of_work
from bidhub.domain.facts import BidFacts
from bidhub.domain.rules import parse_rules
from bidhub.domain.scoring import score_round
from bidhub.models import (
    Account,
    AccountReview,
    AuditEvent,
    Filing,
    FilingKind,
    LossReviewStatus,
    Notification,
    RoundStatus,
    User,
)
from bidhub.services import adjudication, appeals, loss_reviews, rounds
from bidhub.services.filings import transfer_account
from bidhub.services.imports import import_file
from bidhub.services.ownership import OwnerChange, change_owners
from bidhub.services.policies import loss_review_days
from bidhub.services.track_records import snapshot_track_record
from tests.conftest import login, reload
from tests.test_demo import NOW as DEMO_NOW
from tests.test_demo import demo, demo_path  # noqa: F401 - the demo world, built once
from tests.test_imports import ORDER, sample_text

NOTE = "No visit in five months; two complaints unanswered."
WHAT = "The buyer changed and I did not meet the new one for months."
DIFFERENTLY = "Map every decision maker each quarter and visit the new ones at once."


def reviews(session, **where) -> list[AccountReview]:
    reload(session)
    query = select(AccountReview).order_by(AccountReview.id)
    for name, value in where.items():
        query = query.where(getattr(AccountReview, name) == value)
    return list(session.scalars(query))


def transfer(session, manager, account, to_rep, clock, review_text=NOTE):
    return transfer_account(session, manager, account_id=account.id, to_rep_id=to_rep.id,
                            reason="The client asked for a rep in its city.",
                            review_text=review_text, now=clock())


@pytest.fixture
def lost(session, make_manager, make_rep, make_account, clock):
    """A rep who lost one account by a direct transfer: their review is due."""
    manager, owner, other = make_manager(), make_rep(), make_rep()
    account = make_account(owner=owner)
    transfer(session, manager, account, other, clock)
    [review] = reviews(session)
    return {"manager": manager, "owner": owner, "other": other, "account": account,
            "review": review}


# --- one review for each way an account leaves a rep -------------------------------------------

def test_a_release_makes_the_review_due_from_the_rep_with_managements_note(
        session, make_round, make_manager, make_rep, make_account, clock):
    manager, owner = make_manager(), make_rep()
    account = make_account(owner=owner)
    draft = make_round(status=RoundStatus.DRAFT, closes_at=clock() + timedelta(days=5))
    listing = rounds.release_account(session, manager, draft.id, account_id=account.id,
                                     reason="neglected", note="", review_text=NOTE, now=clock())
    [review] = reviews(session)
    assert (review.rep_id, review.account_id, review.status, review.reason) == (
        owner.id, account.id, LossReviewStatus.DUE, "neglected")
    assert (review.written_by_id, review.review_text) == (manager.id, NOTE)
    assert review.due_at == clock() + timedelta(days=7) and review.filing_seq is None
    assert listing.review_id == review.id
    notice = session.scalars(select(Notification).where(
        Notification.kind == "loss_review_due")).one()
    assert notice.recipient_id == owner.id
    assert notice.link_endpoint == "reviews.detail" and notice.link_args == {
        "review_id": review.id}
    # Taking the listing back off the draft takes back the loss and its unwritten review.
    rounds.remove_listing(session, manager, listing.id, clock())
    assert reviews(session) == []


def test_a_direct_transfer_makes_one_review_due_tied_to_its_filing(lost, session):
    review = lost["review"]
    filing = session.scalars(select(Filing).where(Filing.account_id == lost["account"].id)
                             .order_by(Filing.seq.desc())).first()
    assert (review.rep_id, review.status, review.reason, review.filing_seq) == (
        lost["owner"].id, LossReviewStatus.DUE, FilingKind.DIRECT_TRANSFER, filing.seq)
    assert (review.written_by_id, review.review_text) == (lost["manager"].id, NOTE)
    assert session.scalar(select(func.count()).select_from(Notification).where(
        Notification.recipient_id == lost["owner"].id,
        Notification.kind == "loss_review_due")) == 1


def test_a_sponsored_transfer_makes_one_review_due_when_the_sponsor_accepts(
        session, make_user, make_manager, make_rep, make_account, clock):
    from bidhub.models import Role, TransferRequest
    from bidhub.services import sponsors

    president = make_user(Role.EXECUTIVE, name="王总")
    president.executive_title = "president"
    session.commit()
    manager, owner, other = make_manager(), make_rep(), make_rep()
    account = make_account(owner=owner)
    sponsors.designate_sponsor(session, manager, account.id, president.id, clock())
    request = transfer(session, manager, session.get(Account, account.id), other, clock)
    assert isinstance(request, TransferRequest)
    assert reviews(session) == []  # nothing moved yet, nothing lost
    clock.advance(days=2)
    sponsors.accept_transfer_request(session, session.get(User, president.id), request.id,
                                     "同意划转。", clock())
    [review] = reviews(session)
    assert (review.rep_id, review.status, review.reason) == (
        owner.id, LossReviewStatus.DUE, FilingKind.DIRECT_TRANSFER)
    assert (review.written_by_id, review.review_text) == (manager.id, NOTE)
    assert review.due_at == clock() + timedelta(days=7)


def test_an_award_elsewhere_makes_the_review_due_when_the_award_takes_effect(
        session, make_rep, make_manager, make_account, make_round, make_bid, clock):
    owner, winner, manager = make_rep(), make_rep(), make_manager()
    account = make_account(owner=owner)
    round_ = make_round(accounts=[account], closes_at=clock() + timedelta(hours=1))
    make_bid(winner, round_.listings[0])
    clock.advance(hours=2)
    assert adjudication.score_closed_round(session, round_.id, clock())
    reload(session)
    listing = round_.listings[0]
    adjudication.decide_listing(session, manager, listing.id, kind="accepted", bid_id=None,
                                reason="", now=clock())
    reload(session)
    round_ = session.get(type(round_), round_.id)
    adjudication.publish_results(session, manager, round_.id, expected_version=round_.version,
                                 now=clock())
    # With an appeal window in the rules the award takes effect when the window ends.
    appeals.apply_due_listings(session, clock() + timedelta(days=60))
    reload(session)
    assert session.get(Account, account.id).owner_id == winner.id
    [review] = reviews(session, rep_id=owner.id)
    filing = session.scalars(select(Filing).where(Filing.account_id == account.id,
                                                  Filing.kind == FilingKind.ROUND_AWARD)).one()
    assert (review.reason, review.filing_seq, review.status) == (
        FilingKind.ROUND_AWARD, filing.seq, LossReviewStatus.DUE)
    assert reviews(session, rep_id=winner.id) == []


def test_an_award_of_a_released_account_links_the_release_review_instead_of_a_second(
        session, make_round, make_manager, make_rep, make_account, clock):
    manager, owner, winner = make_manager(), make_rep(), make_rep()
    account = make_account(owner=owner)
    draft = make_round(status=RoundStatus.DRAFT, closes_at=clock() + timedelta(days=5))
    listing = rounds.release_account(session, manager, draft.id, account_id=account.id,
                                     reason="neglected", note="", review_text=NOTE, now=clock())
    reload(session)
    with unit_of_work(session):
        [filing] = change_owners(session, [OwnerChange(account.id, winner.id, listing_id=listing.id,
                                                       filing={
            "kind": FilingKind.ROUND_AWARD, "round_id": draft.id, "listing_id": listing.id,
            "reason": "Won", "decided_by_id": manager.id})], limit=40, now=clock())
        seq = filing.seq
    [review] = reviews(session)
    assert (review.id, review.filing_seq, review.reason) == (listing.review_id, seq, "neglected")


def test_an_import_moving_an_account_makes_a_review_due_and_a_first_load_none(
        session, make_branch, make_admin, clock):
    for code, name in (("BJ", "Beijing"), ("SH", "Shanghai"), ("GZ", "Guangzhou")):
        make_branch(code, name)
    admin = make_admin()

    def run(kind, text):
        result = import_file(session, admin, kind, f"{kind}.csv", text.encode("utf-8-sig"),
                             valid_rows_only=False, now=clock())
        assert result.status == "imported", result.problems

    for kind in ORDER:
        run(kind, sample_text(kind))
    assert session.scalar(select(func.count()).select_from(Filing)) > 0
    assert reviews(session) == []  # the first load records owners; nobody lost anything
    run("accounts", sample_text("accounts"))
    assert reviews(session) == []  # the same file again moves nothing
    moved = sample_text("accounts").replace('KA-2001,北京智联科技有限公司,互联网,民营,BJ,"1,200,000",R1001',
                                            'KA-2001,北京智联科技有限公司,互联网,民营,BJ,"1,200,000",R1002')
    assert moved != sample_text("accounts")
    run("accounts", moved)
    [review] = reviews(session)
    account = session.scalars(select(Account).where(Account.external_id == "KA-2001")).one()
    previous = session.scalars(select(User).where(User.external_id == "R1001")).one()
    assert (review.account_id, review.rep_id, review.reason) == (
        account.id, previous.id, FilingKind.CRM_IMPORT)
    assert review.due_at == clock() + timedelta(days=7)


def test_no_review_when_the_same_rep_keeps_the_account(session, make_rep, make_account,
                                                       make_manager, clock):
    owner = make_rep()
    account = make_account(owner=owner)  # a first load: no previous owner
    with unit_of_work(session):
        assert change_owners(session, [OwnerChange(account.id, owner.id, filing={
            "kind": FilingKind.CRM_IMPORT, "reason": "CRM import",
            "decided_by_id": owner.id})], limit=None, now=clock()) == []
    assert reviews(session) == []


# --- due dates -----------------------------------------------------------------------------------

def test_the_due_date_is_configurable(session, monkeypatch, make_manager, make_rep, make_account,
                                      clock):
    assert loss_review_days({}) == 7
    assert loss_review_days({"BIDHUB_LOSS_REVIEW_DAYS": "3"}) == 3
    for bad in ("0", "366", "-1", "seven", "3.5", "٣"):
        with pytest.raises(ValueError, match="BIDHUB_LOSS_REVIEW_DAYS"):
            loss_review_days({"BIDHUB_LOSS_REVIEW_DAYS": bad})
    monkeypatch.setenv("BIDHUB_LOSS_REVIEW_DAYS", "3")
    owner = make_rep()
    transfer(session, make_manager(), make_account(owner=owner), make_rep(), clock)
    [review] = reviews(session)
    assert review.due_at == clock() + timedelta(days=3)


def test_a_mistyped_due_days_setting_stops_the_start(app_config, monkeypatch):
    from bidhub import create_app

    monkeypatch.setenv("BIDHUB_LOSS_REVIEW_DAYS", "seven")
    with pytest.raises(ValueError, match="BIDHUB_LOSS_REVIEW_DAYS"):
        create_app(app_config)


def test_a_review_is_overdue_only_past_its_date_and_not_once_written(lost, session, clock):
    review = lost["review"]
    assert not loss_reviews.is_overdue(review, review.due_at)
    assert loss_reviews.is_overdue(review, review.due_at + timedelta(seconds=1))
    loss_reviews.submit_review(session, lost["owner"], review.id, what_happened=WHAT,
                               do_differently=DIFFERENTLY, expected_version=review.version,
                               now=clock() + timedelta(days=9))
    [review] = reviews(session)
    assert review.status == LossReviewStatus.SUBMITTED
    assert not loss_reviews.is_overdue(review, clock() + timedelta(days=30))


# --- the rep writes, management closes, through the pages ----------------------------------------

def test_the_rep_writes_the_review_and_management_closes_it(app, client, session, lost, clock):
    review, owner, manager = lost["review"], lost["owner"], lost["manager"]
    first_version = review.version
    login(client, owner)
    page = client.get("/my/reviews").get_data(as_text=True)
    assert lost["account"].name in page and f"/reviews/{review.id}" in page
    # The date a review fell due from, not the 已丢单 (deal lost) of an opportunity's stage: a
    # review of a release falls due while the account is still the rep's.
    chinese = client.get("/my/reviews", headers={"Accept-Language": "zh-CN"})
    assert "<th>发起时间</th>" in chinese.get_data(as_text=True)
    assert "已丢单" not in chinese.get_data(as_text=True)
    assert client.get(f"/reviews/{review.id}").status_code == 200
    # The due date is labelled as one, not with the status "review due" (总结待填写).
    detail = client.get(f"/reviews/{review.id}", headers={"Accept-Language": "zh-CN"}
                        ).get_data(as_text=True)
    assert "<dt>截止</dt>" in detail and "<dt>总结待填写</dt>" not in detail
    # Garbage: too short, nothing changes.
    response = client.post(f"/my/reviews/{review.id}", data={
        "what_happened": "short", "do_differently": "x", "version": str(review.version)})
    assert response.status_code == 422
    assert reviews(session)[0].status == LossReviewStatus.DUE
    response = client.post(f"/my/reviews/{review.id}", data={
        "what_happened": WHAT, "do_differently": DIFFERENTLY, "version": str(review.version)})
    assert response.status_code == 303
    [written] = reviews(session)
    assert (written.status, written.what_happened, written.do_differently) == (
        LossReviewStatus.SUBMITTED, WHAT, DIFFERENTLY)
    assert written.submitted_at == clock()
    # A form loaded before that submission is stale: 409, nothing overwritten.
    response = client.post(f"/my/reviews/{review.id}", data={
        "what_happened": WHAT + " Again.", "do_differently": DIFFERENTLY,
        "version": str(first_version)})
    assert response.status_code == 409
    assert reviews(session)[0].what_happened == WHAT
    # The form comes back with what was typed and the message, against the review as saved.
    stale = html.unescape(response.get_data(as_text=True))
    assert WHAT + " Again." in stale and 'name="what_happened"' in stale
    assert f'name="version" type="hidden" value="{reviews(session)[0].version}"' in stale
    # Still editable until closed.
    response = client.post(f"/my/reviews/{review.id}", data={
        "what_happened": WHAT + " Better.", "do_differently": DIFFERENTLY,
        "version": str(written.version)})
    assert response.status_code == 303
    [written] = reviews(session)
    assert written.what_happened == WHAT + " Better."
    # The rep cannot close it.
    assert client.post(f"/manage/reviews/{review.id}/close", data={
        "comment": "Looks fine to me.", "version": str(written.version)}).status_code == 403

    login(client, manager)
    page = client.get(f"/reviews/{review.id}").get_data(as_text=True)
    assert WHAT in page and NOTE in page and "comment" in page
    assert client.post(f"/manage/reviews/{review.id}/close", data={
        "comment": "ok", "version": str(written.version)}).status_code == 422
    assert client.post(f"/manage/reviews/{review.id}/close", data={
        "comment": "Agreed: quarterly mapping.", "version": str(written.version - 1)}
    ).status_code == 409
    assert reviews(session)[0].status == LossReviewStatus.SUBMITTED
    assert client.post(f"/manage/reviews/{review.id}/close", data={
        "comment": "Agreed: quarterly mapping.", "version": str(written.version)}
    ).status_code == 303
    [closed] = reviews(session)
    assert (closed.status, closed.manager_comment, closed.closed_by_id, closed.closed_at) == (
        LossReviewStatus.CLOSED, "Agreed: quarterly mapping.", manager.id, clock())
    actions = list(session.scalars(select(AuditEvent.action).where(
        AuditEvent.target == f"loss_review:{review.id}").order_by(AuditEvent.id)))
    assert actions == ["loss_review.submitted", "loss_review.submitted", "loss_review.closed"]

    login(client, owner)
    page = client.get(f"/reviews/{review.id}").get_data(as_text=True)
    assert "Agreed: quarterly mapping." in page
    response = client.post(f"/my/reviews/{review.id}", data={
        "what_happened": WHAT, "do_differently": DIFFERENTLY, "version": str(closed.version)})
    assert response.status_code == 422  # closed: no longer changes
    assert reviews(session)[0].what_happened == WHAT + " Better."


def test_only_a_submitted_review_can_be_closed(client, session, lost):
    review = lost["review"]
    login(client, lost["manager"])
    response = client.post(f"/manage/reviews/{review.id}/close", data={
        "comment": "Closing without the rep's review.", "version": str(review.version)})
    assert response.status_code == 422
    assert reviews(session)[0].status == LossReviewStatus.DUE


@pytest.mark.parametrize("gone", ["left", "deactivated"])
def test_a_review_owed_by_a_rep_who_left_can_be_closed_unwritten(client, session, lost, gone):
    owner = session.get(type(lost["owner"]), lost["owner"].id)
    if gone == "left":
        owner.status = "left"
    else:
        owner.is_active = False
    session.commit()
    review = lost["review"]
    login(client, lost["manager"])
    assert "/close" in client.get(f"/reviews/{review.id}").get_data(as_text=True)
    response = client.post(f"/manage/reviews/{review.id}/close", data={
        "comment": "The rep left before writing it; handover notes kept.",
        "version": str(review.version)})
    assert response.status_code in (302, 303)
    [closed] = reviews(session)
    assert (closed.status, closed.what_happened) == (LossReviewStatus.CLOSED, "")
    assert closed.manager_comment.startswith("The rep left")
    audit = session.scalars(select(AuditEvent).where(
        AuditEvent.action == "loss_review.closed")).one()
    assert audit.before == {"status": "due"}


def test_another_rep_can_neither_read_nor_write_a_review(client, session, lost, make_rep):
    review = lost["review"]
    login(client, lost["other"])
    assert client.get(f"/reviews/{review.id}").status_code == 404
    assert client.post(f"/my/reviews/{review.id}", data={
        "what_happened": WHAT, "do_differently": DIFFERENTLY,
        "version": str(review.version)}).status_code == 404
    assert client.get("/reviews/999999").status_code == 404
    assert reviews(session)[0].status == LossReviewStatus.DUE
    login(client, lost["manager"])
    assert client.post(f"/my/reviews/{review.id}", data={
        "what_happened": WHAT, "do_differently": DIFFERENTLY,
        "version": str(review.version)}).status_code == 403


def test_the_rep_sees_a_badge_with_the_reviews_due(client, lost):
    login(client, lost["owner"])
    page = client.get("/my/reviews").get_data(as_text=True)
    assert 'href="/my/reviews">' in page and 'badge-overridden">1<' in page


# --- the register ---------------------------------------------------------------------------------

@pytest.fixture
def register_world(session, make_branch, make_manager, make_rep, make_account, clock):
    """Reviews of two reps in two branches: one overdue, one due, one submitted, one closed."""
    manager = make_manager()
    beijing, shanghai = make_branch("BJ", "Beijing"), make_branch("SH", "Shanghai")
    rep_bj, rep_sh, taker = make_rep(branch=beijing), make_rep(branch=shanghai), make_rep()
    early = clock()
    for rep in (rep_bj, rep_bj, rep_sh, rep_sh):
        transfer(session, manager, make_account(owner=rep, branch=rep.branch), taker, clock)
        clock.advance(days=1)
    first, second, third, fourth = reviews(session)
    loss_reviews.submit_review(session, rep_sh, third.id, what_happened=WHAT,
                               do_differently=DIFFERENTLY, expected_version=third.version,
                               now=clock())
    loss_reviews.submit_review(session, rep_sh, fourth.id, what_happened=WHAT,
                               do_differently=DIFFERENTLY, expected_version=fourth.version,
                               now=clock())
    reload(session)
    fourth = session.get(AccountReview, fourth.id)
    loss_reviews.close_review(session, manager, fourth.id, comment="Agreed, well reviewed.",
                              expected_version=fourth.version, now=clock())
    clock.set(early + timedelta(days=7, hours=12))  # the first is overdue, the second not yet
    return {"manager": manager, "rep_bj": rep_bj, "rep_sh": rep_sh, "beijing": beijing,
            "shanghai": shanghai, "ids": [first.id, second.id, third.id, fourth.id]}


def test_the_register_counts_and_filters(session, register_world, clock):
    world = register_world
    first, second, third, fourth = world["ids"]
    everything = loss_reviews.review_register(session, loss_reviews.ReviewFilter(), clock())
    assert everything.counts == {"due": 2, "overdue": 1, "submitted": 1, "closed": 1}
    assert everything.total == 4
    assert [review.id for review in everything.reviews] == [first, second, third, fourth]

    def ids(**criteria):
        found = loss_reviews.review_register(session, loss_reviews.ReviewFilter(**criteria),
                                             clock())
        return [review.id for review in found.reviews]

    assert ids(status="overdue") == [first]
    assert ids(status="due") == [first, second]
    assert ids(status="submitted") == [third]
    assert ids(status="closed") == [fourth]
    assert ids(rep_id=world["rep_sh"].id) == [third, fourth]
    assert ids(branch_id=world["beijing"].id) == [first, second]
    assert ids(branch_id=world["beijing"].id, status="closed") == []
    paged = loss_reviews.review_register(session, loss_reviews.ReviewFilter(), clock(), page=2,
                                         per_page=3)
    assert (paged.page, paged.pages, [review.id for review in paged.reviews]) == (2, 2, [fourth])


def test_the_register_page_shows_the_filtered_reviews(client, session, register_world):
    world = register_world
    login(client, world["manager"])
    page = client.get("/manage/reviews", query_string={"status": "overdue"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    first, second, third, fourth = world["ids"]
    assert f'id="review-{first}"' in html and f'id="review-{second}"' not in html
    html = client.get("/manage/reviews", query_string={
        "branch": world["shanghai"].id}).get_data(as_text=True)
    assert f'id="review-{third}"' in html and f'id="review-{first}"' not in html
    for bad in ("nonsense", "-1", "9" * 40, "²"):
        assert client.get("/manage/reviews", query_string={
            "status": bad, "rep": bad, "branch": bad, "page": bad}).status_code == 200


def test_the_track_record_page_lists_the_reps_reviews(client, session, register_world):
    world = register_world
    login(client, world["manager"])
    html = client.get(f"/reps/{world['rep_sh'].id}").get_data(as_text=True)
    assert 'id="loss-reviews"' in html
    for review_id in world["ids"][2:]:
        assert f"/reviews/{review_id}" in html
    assert f"/reviews/{world['ids'][0]}" not in html


# --- the metric -----------------------------------------------------------------------------------

def test_unreviewed_losses_count_in_the_track_record_until_the_review_is_submitted(
        session, lost, make_account, clock):
    owner, review = lost["owner"], lost["review"]
    account = make_account()
    record = snapshot_track_record(session, session.get(User, owner.id), account, clock())
    assert record["unreviewed_losses"] == 1.0
    assert record["retention"] == 0.0  # held 0 after losing 1: 1 - 2/1, clipped
    loss_reviews.submit_review(session, owner, review.id, what_happened=WHAT,
                               do_differently=DIFFERENTLY, expected_version=review.version,
                               now=clock() + timedelta(hours=1))
    reload(session)
    owner = session.get(User, owner.id)
    # As of a moment before the review was written it was still unreviewed.
    assert snapshot_track_record(session, owner, account, clock())["unreviewed_losses"] == 1.0
    later = snapshot_track_record(session, owner, account, clock() + timedelta(hours=2))
    assert later["unreviewed_losses"] == 0.0


def test_an_old_closed_review_without_a_filing_still_counts_as_reviewed(
        session, make_rep, make_account, make_manager, clock):
    owner, taker = make_rep(), make_rep()
    account = make_account(owner=owner)
    make_account(owner=owner)
    transfer(session, make_manager(), account, taker, clock)
    [review] = reviews(session)
    # What migration 0006 made of a review written before loss reviews: closed, no filing.
    session.delete(review)
    session.add(AccountReview(account_id=account.id, rep_id=owner.id, reason="direct_transfer",
                              review_text=NOTE, created_at=clock(), filing_seq=None,
                              status=LossReviewStatus.CLOSED))
    session.commit()
    record = snapshot_track_record(session, session.get(User, owner.id), account,
                                   clock() + timedelta(minutes=1))
    assert record["unreviewed_losses"] == 0.0
    assert record["retention"] == pytest.approx(0.5)  # 1 - 1/(1 held + 1 lost)


def test_a_rule_can_score_unreviewed_losses(session, lost, make_rep, make_account, clock):
    careful = make_rep()
    make_account(owner=careful)
    account = make_account()
    records = {rep.id: snapshot_track_record(session, session.get(User, rep.id), account,
                                             clock())
               for rep in (lost["owner"], careful)}
    assert records[lost["owner"].id]["unreviewed_losses"] == 1.0
    assert records[careful.id]["unreviewed_losses"] == 0.0
    rules = parse_rules('[[factors]]\nmetric = "unreviewed_losses"\nweight = -1.0\n'
                        'normaliser = "cap"\ncap = 3\n')
    bids = [BidFacts(bid_id=n, rep_id=rep_id, listing_id=1, submitted_at=clock(),
                     metrics=records[rep_id], accounts_held=0, tenure_months=24.0,
                     open_incidents=0, rep_branch="BJ", listing_branch="BJ")
            for n, rep_id in enumerate(records, start=1)]
    scores = score_round(rules, bids)
    assert scores[2].total > scores[1].total
    assert scores[1].factors[0].metric == "unreviewed_losses"


# --- the demo ---------------------------------------------------------------------------------------

def test_the_demo_has_reviews_due_overdue_submitted_and_closed(demo):  # noqa: F811
    found = list(demo.scalars(select(AccountReview)))
    by_status = {status: [review for review in found if review.status == status]
                 for status in LossReviewStatus}
    due = by_status[LossReviewStatus.DUE]
    assert any(loss_reviews.is_overdue(review, DEMO_NOW) for review in due)
    assert any(not loss_reviews.is_overdue(review, DEMO_NOW) for review in due)
    assert by_status[LossReviewStatus.SUBMITTED]
    assert all(review.what_happened for review in by_status[LossReviewStatus.SUBMITTED])
    closed = by_status[LossReviewStatus.CLOSED]
    assert closed and all(review.manager_comment and review.closed_by_id for review in closed)


def released_and_closed(session, make_round, make_manager, make_rep, make_account, clock,
                        *, bidder=None):
    """An account released from its rep into a round that is published, then scored."""
    manager, owner = make_manager(), make_rep()
    account = make_account(owner=owner)
    draft = make_round(status=RoundStatus.DRAFT, closes_at=clock() + timedelta(hours=2))
    listing = rounds.release_account(session, manager, draft.id, account_id=account.id,
                                     reason="neglected", note="", review_text=NOTE, now=clock())
    return manager, owner, account, draft, listing


@pytest.mark.parametrize("ending", ["cancelled", "not_awarded"])
def test_a_release_that_ends_with_the_account_kept_withdraws_its_unwritten_review(
        session, make_round, make_manager, make_rep, make_account, clock, ending):
    manager, owner, account, draft, listing = released_and_closed(
        session, make_round, make_manager, make_rep, make_account, clock)
    rounds.publish_round(session, manager, draft.id, expected_version=draft.version, now=clock())
    if ending == "cancelled":
        appeals.cancel_listing(session, manager, listing.id,
                               reason="The account stays with its rep after all.", now=clock())
    else:
        clock.advance(hours=3)
        adjudication.score_closed_round(session, draft.id, clock())
        reload(session)
        round_ = session.get(type(draft), draft.id)
        adjudication.publish_results(session, manager, round_.id,
                                     expected_version=round_.version, now=clock())
        appeals.apply_due_listings(session, clock() + timedelta(days=60))
    reload(session)
    [review] = reviews(session, rep_id=owner.id)
    assert session.get(Account, account.id).owner_id == owner.id
    assert review.status == LossReviewStatus.WITHDRAWN
    assert review.review_text == NOTE  # management's note on the release is kept
    assert loss_reviews.due_count(session, owner) == 0
    # Told the review was due, the rep is told it is not.
    assert session.scalars(select(Notification.recipient_id).where(
        Notification.kind == "loss_review_withdrawn")).all() == [owner.id]


def test_a_written_review_stays_when_the_release_is_cancelled(
        session, make_round, make_manager, make_rep, make_account, clock):
    manager, owner, account, draft, listing = released_and_closed(
        session, make_round, make_manager, make_rep, make_account, clock)
    [review] = reviews(session, rep_id=owner.id)
    loss_reviews.submit_review(session, owner, review.id, what_happened="W" * 30,
                               do_differently="D" * 30, expected_version=review.version,
                               now=clock())
    appeals.cancel_listing(session, manager, listing.id,
                           reason="The account stays with its rep after all.", now=clock())
    reload(session)
    [review] = reviews(session, rep_id=owner.id)
    assert review.status == LossReviewStatus.SUBMITTED
