"""Executive sponsors (老板负责客户): the executive role, designation, the list, confirmations."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bidhub.domain.errors import (
    CapacityExceeded,
    Conflict,
    InvalidRequest,
    PermissionDenied,
    TransferRefused,
)
from bidhub.models import (
    Account,
    AccountReview,
    AuditEvent,
    Filing,
    FilingKind,
    Listing,
    ListingStatus,
    Notification,
    Role,
    RoundStatus,
    TransferRequest,
    TransferRequestStatus,
    User,
)
from bidhub.services import rounds, sponsors, users
from bidhub.services.filings import transfer_account
from bidhub.services.imports import import_file
from bidhub.services.ownership import OwnerChange, change_owners
from tests.conftest import login, reload
from tests.test_i18n import english_words, visible_text

REASON = "The rep moves to the Shanghai team."
REVIEW = "Handover planned with the client's purchaser."


@pytest.fixture
def make_executive(session, make_user, make_branch):
    def make(title: str = "president", *, branch=None, name: str | None = None,
             username: str | None = None) -> User:
        if title == "branch_general_manager" and branch is None:
            branch = make_branch()
        person = make_user(Role.EXECUTIVE, branch=branch, name=name, username=username)
        person.executive_title = title
        session.commit()
        return person

    return make


@pytest.fixture
def sponsored(session, clock, make_rep, make_manager, make_executive, make_account):
    """An account held by a rep and sponsored by the president, designated by a manager."""
    president, vice = make_executive("president", name="王总"), make_executive(
        "ka_vice_president", name="李副总")
    manager, owner = make_manager(), make_rep()
    account = make_account(owner=owner, name="华北电力集团", annual_value_yuan=2_000_000)
    sponsors.designate_sponsor(session, manager, account.id, president.id, clock())
    return {"president": president, "vice": vice, "manager": manager, "owner": owner,
            "account": account}


def audit(session, action: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                .order_by(AuditEvent.id)))


def inbox_of(session, user: User) -> list[Notification]:
    return list(session.scalars(select(Notification).where(Notification.recipient_id == user.id)))


def release(session, manager, account, make_round, clock) -> Listing:
    round_ = make_round(status=RoundStatus.DRAFT, closes_at=clock() + timedelta(days=5))
    return rounds.release_account(session, manager, round_.id, account_id=account.id,
                                  reason="neglected", note="", review_text=REVIEW, now=clock())


# --- the executive role --------------------------------------------------------------------------

def test_an_executive_needs_a_title_and_a_branch_gm_a_branch(session, make_admin, make_branch,
                                                             clock):
    admin = make_admin()
    with pytest.raises(InvalidRequest, match="executive's title") as refused:
        users.create_user(session, admin, username="boss", display_name="王总",
                          password="a long password 1", role=Role.EXECUTIVE, branch_id=None,
                          now=clock())
    assert refused.value.field == "executive_title"
    with pytest.raises(InvalidRequest, match="branch general manager belongs") as refused:
        users.create_user(session, admin, username="gm", display_name="赵总",
                          password="a long password 1", role=Role.EXECUTIVE, branch_id=None,
                          executive_title="branch_general_manager", now=clock())
    assert refused.value.field == "branch_id"
    gm = users.create_user(session, admin, username="gm_bj", display_name="赵总",
                           password="a long password 1", role=Role.EXECUTIVE,
                           branch_id=make_branch().id, executive_title="branch_general_manager",
                           now=clock())
    assert gm.executive_title == "branch_general_manager"
    rep = users.create_user(session, admin, username="rep", display_name="张三",
                            password="a long password 1", role=Role.REP,
                            branch_id=make_branch().id, executive_title="president", now=clock())
    assert rep.executive_title is None  # only executives carry a title


def test_an_admin_creates_an_executive_who_signs_in_to_their_confirmations(app, client, session,
                                                                           make_admin):
    login(client, make_admin())
    response = client.post("/admin/users/new", data={
        "username": "president", "display_name": "王建国", "password": "a long password 1",
        "role": "executive", "executive_title": "", "branch_id": "0"})
    assert response.status_code == 422 and "title" in response.get_data(as_text=True)
    response = client.post("/admin/users/new", data={
        "username": "president", "display_name": "王建国", "password": "a long password 1",
        "role": "executive", "executive_title": "president", "branch_id": "0"})
    assert response.status_code == 303
    reload(session)
    person = session.scalars(select(User).where(User.username == "president")).one()
    assert (person.role, person.executive_title) == ("executive", "president")
    other = app.test_client()
    response = other.post("/login", data={"username": "president",
                                          "password": "a long password 1"})
    # The admin chose the password: it is replaced first, then the executive's home opens.
    assert response.status_code == 302 and response.location.endswith("/password")
    response = other.post("/password", data={
        "current_password": "a long password 1", "new_password": "王建国's own passphrase",
        "confirm": "王建国's own passphrase"})
    assert response.status_code == 302
    response = other.post("/login", data={"username": "president",
                                          "password": "王建国's own passphrase"})
    assert response.status_code == 302 and response.location.endswith("/confirmations")
    assert other.get("/confirmations").status_code == 200


def test_an_executive_sees_only_their_confirmations_the_announcements_and_their_accounts(
        app, session, clock, sponsored, make_rep, make_account, make_round, make_bid):
    president = sponsored["president"]
    client = app.test_client()
    login(client, president)
    for path in ("/rounds", "/my/bids", "/manage/rounds", "/admin/users", "/reps",
                 f"/sponsors/accounts/{sponsored['account'].id}"):
        assert client.get(path).status_code == 403, path
    assert client.get(f"/reps/{sponsored['owner'].id}").status_code == 404
    assert client.get(f"/accounts/{sponsored['account'].id}").status_code == 200
    assert client.get(f"/accounts/{make_account().id}").status_code == 404
    # The announcement of a round's results (中标公示) is readable like any rep's.
    round_ = make_round(accounts=[make_account(owner=None)],
                        status=RoundStatus.RESULTS_PUBLISHED,
                        opens_at=clock() - timedelta(days=10), closes_at=clock() - timedelta(days=3))
    results = client.get(f"/rounds/{round_.id}/results")
    assert results.status_code == 200
    # Every link the announcement offers an executive opens for them.
    for path in set(re.findall(r'href="(/[^"]*)"', results.get_data(as_text=True))):
        if not path.startswith("/static/"):
            assert client.get(path, follow_redirects=True).status_code == 200, path


def test_an_executive_cannot_bid(session, sponsored, make_round, make_account, clock):
    from bidhub.services import bidding

    round_ = make_round(accounts=[make_account(owner=None)])
    with pytest.raises(PermissionDenied, match="Only reps"):
        bidding.submit_bid(session, sponsored["president"], round_.listings[0].id,
                           account_plan="x" * 40, committed_revenue_yuan=100_000,
                           visit_plan="y" * 40, submission_key=None, now=clock())


def test_an_executive_who_sponsors_accounts_keeps_the_role_and_titles_follow_the_person(
        session, clock, sponsored, make_admin):
    admin, president = make_admin(), sponsored["president"]
    with pytest.raises(InvalidRequest, match="sponsors 1 accounts"):
        users.update_user(session, admin, president.id, display_name="王总", role=Role.REP,
                          branch_id=sponsored["owner"].branch_id, status="active",
                          is_active=True, now=clock())
    reload(session)
    users.update_user(session, admin, president.id, display_name="王总", role=Role.EXECUTIVE,
                      branch_id=None, status="active", is_active=True,
                      executive_title="ka_vice_president", now=clock())
    reload(session)
    assert session.get(Account, sponsored["account"].id).executive_sponsor == "ka_vice_president"


# --- designation and the list -------------------------------------------------------------------

def test_designation_and_removal_are_audited_and_kept_in_the_history(session, clock, sponsored,
                                                                     make_rep):
    account, manager = sponsored["account"], sponsored["manager"]
    assert (account.sponsor_id, account.executive_sponsor) == (sponsored["president"].id,
                                                               "president")
    with pytest.raises(PermissionDenied):
        sponsors.designate_sponsor(session, make_rep(), account.id, None, clock())
    reload(session)
    with pytest.raises(InvalidRequest, match="executive"):
        sponsors.designate_sponsor(session, manager, account.id, make_rep().id, clock())
    reload(session)
    sponsors.designate_sponsor(session, manager, account.id, sponsored["vice"].id, clock())
    sponsors.designate_sponsor(session, manager, account.id, None, clock())
    reload(session)
    account = session.get(Account, account.id)
    assert (account.sponsor_id, account.executive_sponsor) == (None, None)
    designated = audit(session, "account.sponsor_designated")
    assert [event.after["sponsor"] for event in designated] == [sponsored["president"].id,
                                                                sponsored["vice"].id]
    [removed] = audit(session, "account.sponsor_removed")
    assert removed.before == {"sponsor": sponsored["vice"].id, "title": "ka_vice_president"}
    assert removed.actor_id == manager.id
    history = sponsors.sponsor_history(session, account.id)
    assert [(change.before, change.after) for change in history] == [
        (sponsored["vice"], None), (sponsored["president"], sponsored["vice"]),
        (None, sponsored["president"])]
    # Designation is not an ownership change: nothing is filed for it.
    assert session.scalar(select(func.count()).select_from(Filing)) == 1


def test_designating_on_the_sponsor_page(app, client, session, sponsored):
    login(client, sponsored["manager"])
    url = f"/sponsors/accounts/{sponsored['account'].id}"
    page = client.get(url).get_data(as_text=True)
    assert "王总" in page and "李副总" in page
    response = client.post(url, data={"sponsor": str(sponsored["vice"].id)})
    assert response.status_code == 303
    assert "李副总" in client.get(url).get_data(as_text=True)
    assert client.post(url, data={"sponsor": "99999"}).status_code == 422
    reload(session)
    assert session.get(Account, sponsored["account"].id).sponsor_id == sponsored["vice"].id


def test_the_list_of_sponsored_accounts_and_its_filter(app, client, session, clock, sponsored,
                                                       make_account, make_rep):
    manager = sponsored["manager"]
    other = make_account(owner=make_rep(name="刘洋"), name="南方航空")
    sponsors.designate_sponsor(session, manager, other.id, sponsored["vice"].id, clock())
    make_account(name="Unsponsored Co.")
    make_account(name="Title Only Co.", executive_sponsor="president")
    login(client, manager)
    page = client.get("/sponsors").get_data(as_text=True)
    for text in ("华北电力集团", "南方航空", "Title Only Co.", "王总", "李副总", "刘洋"):
        assert text in page
    assert "Unsponsored Co." not in page
    page = client.get(f"/sponsors?sponsor={sponsored['vice'].id}").get_data(as_text=True)
    assert "南方航空" in page and "华北电力集团" not in page
    # An executive sees only their own, whatever the filter asks.
    executive = app.test_client()
    login(executive, sponsored["president"])
    page = executive.get(f"/sponsors?sponsor={sponsored['vice'].id}").get_data(as_text=True)
    assert "华北电力集团" in page and "南方航空" not in page
    rep = app.test_client()
    login(rep, sponsored["owner"])
    assert rep.get("/sponsors").status_code == 403


def test_the_list_page_queries_do_not_grow_with_the_accounts(app, client, session, clock,
                                                             sponsored, make_account, make_rep):
    from sqlalchemy import event

    for n in range(15):
        account = make_account(owner=make_rep(), name=f"Sponsored {n}")
        sponsors.designate_sponsor(session, sponsored["manager"], account.id,
                                   sponsored["vice"].id, clock())
    login(client, sponsored["manager"])
    engine = session.get_bind()
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert client.get("/sponsors").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(statements) < 20


# --- confirming a release -------------------------------------------------------------------------

def test_a_release_waits_for_its_sponsor_who_is_notified_and_accepts(session, clock, sponsored,
                                                                     make_round, make_admin):
    admin = make_admin()
    listing = release(session, sponsored["manager"], sponsored["account"], make_round, clock)
    assert listing.status == ListingStatus.AWAITING_CONFIRMATION
    reload(session)
    assert [item.kind for item in inbox_of(session, sponsored["president"])] == [
        "sponsored_release"]
    assert inbox_of(session, admin) == []  # a person is named: the admins are not asked
    waiting = sponsors.waiting_confirmations(session, sponsored["president"])
    assert [item.id for item in waiting.releases] == [listing.id]
    assert len(sponsors.waiting_confirmations(session, sponsored["vice"])) == 0
    rounds.confirm_sponsored_listing(session, sponsored["president"], listing.id, clock(),
                                     note="Agreed; keep me informed.")
    reload(session)
    listing = session.get(Listing, listing.id)
    assert listing.status == ListingStatus.LISTED
    assert (listing.confirmed_by_id, listing.confirmation_stood_in, listing.confirmation_note) == (
        sponsored["president"].id, False, "Agreed; keep me informed.")
    [event] = audit(session, "listing.sponsor_confirmed")
    assert event.after["stood_in"] is False and event.actor_id == sponsored["president"].id
    assert [item.kind for item in inbox_of(session, sponsored["manager"])] == [
        "sponsor_answered_release"]


def test_another_sponsor_is_refused_and_the_attempt_is_audited(session, clock, sponsored,
                                                               make_round, make_manager):
    listing = release(session, sponsored["manager"], sponsored["account"], make_round, clock)
    for intruder in (sponsored["vice"], make_manager()):
        with pytest.raises(PermissionDenied, match="executive sponsor"):
            rounds.confirm_sponsored_listing(session, intruder, listing.id, clock())
        reload(session)
    with pytest.raises(PermissionDenied):
        rounds.refuse_sponsored_listing(session, sponsored["vice"], listing.id,
                                        "Not my account at all.", clock())
    reload(session)
    assert session.get(Listing, listing.id).status == ListingStatus.AWAITING_CONFIRMATION
    denied = audit(session, "sponsor.answer_denied")
    assert [event.actor_id for event in denied] == [sponsored["vice"].id,
                                                    denied[1].actor_id, sponsored["vice"].id]
    assert denied[0].target == f"listing:{listing.id}"


def test_a_refused_release_needs_a_note_and_is_not_biddable(session, clock, sponsored,
                                                            make_round):
    listing = release(session, sponsored["manager"], sponsored["account"], make_round, clock)
    with pytest.raises(InvalidRequest, match="Say why") as refused:
        rounds.refuse_sponsored_listing(session, sponsored["president"], listing.id, "no",
                                        clock())
    assert refused.value.field == "note"
    reload(session)
    rounds.refuse_sponsored_listing(session, sponsored["president"], listing.id,
                                    "The client renews next month; keep the rep.", clock())
    reload(session)
    listing = session.get(Listing, listing.id)
    assert listing.status == ListingStatus.REFUSED
    assert listing.confirmation_note == "The client renews next month; keep the rep."
    [told] = inbox_of(session, sponsored["manager"])
    assert told.kind == "sponsor_answered_release" and "refused" in told.msgid
    with pytest.raises(Conflict):
        rounds.confirm_sponsored_listing(session, sponsored["president"], listing.id, clock())


def test_an_admin_standing_in_is_recorded(session, clock, sponsored, make_round, make_admin,
                                          make_account):
    listing = release(session, sponsored["manager"], sponsored["account"], make_round, clock)
    admin = make_admin()
    rounds.confirm_sponsored_listing(session, admin, listing.id, clock())
    reload(session)
    listing = session.get(Listing, listing.id)
    assert (listing.confirmed_by_id, listing.confirmation_stood_in) == (admin.id, True)
    # With only a title (no person designated), the admins are asked, and answer standing in.
    titled = make_account(name="Title Only Co.", executive_sponsor="president")
    other = release(session, sponsored["manager"], titled, make_round, clock)
    reload(session)
    assert [item.kind for item in inbox_of(session, admin)] == ["sponsored_release"]
    assert [item.id for item in sponsors.waiting_confirmations(session, admin).releases] == [
        other.id]
    with pytest.raises(PermissionDenied):
        rounds.confirm_sponsored_listing(session, sponsored["president"], other.id, clock())


def test_the_confirmations_page_answers_with_forms(app, client, session, clock, sponsored,
                                                   make_round):
    listing = release(session, sponsored["manager"], sponsored["account"], make_round, clock)
    login(client, sponsored["president"])
    page = client.get("/confirmations").get_data(as_text=True)
    assert "华北电力集团" in page and f"/confirmations/releases/{listing.id}" in page
    assert f'id="release-{listing.id}-answer"' in page  # each row's fields have their own ids
    # Nothing is chosen until the sponsor chooses: the form as drawn accepts nothing.
    answer = re.search(rf'<select id="release-{listing.id}-answer"[^>]*>(.*?)</select>', page)
    assert answer and answer.group(1).startswith('<option value="">Choose</option>'), page
    assert "selected" not in answer.group(1)
    response = client.post(f"/confirmations/releases/{listing.id}",
                           data={f"release-{listing.id}-answer": "",
                                 f"release-{listing.id}-note": ""})
    assert response.status_code == 422 and "Choose one of the listed options." in response.get_data(
        as_text=True)
    reload(session)
    assert session.get(Listing, listing.id).status == ListingStatus.AWAITING_CONFIRMATION
    response = client.post(f"/confirmations/releases/{listing.id}",
                           data={f"release-{listing.id}-answer": "refuse",
                                 f"release-{listing.id}-note": ""})
    assert response.status_code == 422 and "Say why" in response.get_data(as_text=True)
    response = client.post(f"/confirmations/releases/{listing.id}",
                           data={f"release-{listing.id}-answer": "accept",
                                 f"release-{listing.id}-note": ""})
    assert response.status_code == 303
    reload(session)
    assert session.get(Listing, listing.id).status == ListingStatus.LISTED
    other = app.test_client()
    login(other, sponsored["vice"])
    assert "华北电力集团" not in other.get("/confirmations").get_data(as_text=True)


# --- confirming a transfer -----------------------------------------------------------------------

def ask_transfer(session, sponsored, to_rep, clock) -> TransferRequest:
    return transfer_account(session, sponsored["manager"], account_id=sponsored["account"].id,
                            to_rep_id=to_rep.id, reason=REASON, review_text=REVIEW, now=clock())


def test_a_sponsored_transfer_waits_and_is_filed_when_the_sponsor_accepts(
        session, clock, sponsored, make_rep):
    receiver = make_rep(name="王伟")
    filings_before = session.scalar(select(func.count()).select_from(Filing))
    request = ask_transfer(session, sponsored, receiver, clock)
    assert isinstance(request, TransferRequest) and request.status == TransferRequestStatus.WAITING
    reload(session)
    assert session.scalar(select(func.count()).select_from(Filing)) == filings_before
    assert session.get(Account, sponsored["account"].id).owner_id == sponsored["owner"].id
    [told] = inbox_of(session, sponsored["president"])
    assert told.kind == "sponsored_transfer"
    with pytest.raises(TransferRefused, match="already waits"):
        ask_transfer(session, sponsored, receiver, clock)
    reload(session)
    with pytest.raises(PermissionDenied):
        sponsors.accept_transfer_request(session, sponsored["vice"], request.id, "", clock())
    reload(session)
    filing = sponsors.accept_transfer_request(session, sponsored["president"], request.id,
                                              "Fine by me.", clock())
    reload(session)
    assert (filing.from_rep_id, filing.to_rep_id, filing.kind) == (
        sponsored["owner"].id, receiver.id, "direct_transfer")
    request = session.get(TransferRequest, request.id)
    assert (request.status, request.filing_seq, request.stood_in, request.answer_note) == (
        TransferRequestStatus.ACCEPTED, filing.seq, False, "Fine by me.")
    assert session.get(Account, sponsored["account"].id).owner_id == receiver.id
    review = session.scalars(select(AccountReview).where(
        AccountReview.filing_seq == filing.seq)).one()  # the loss review, due from the rep
    assert (review.rep_id, review.review_text) == (sponsored["owner"].id, REVIEW)
    assert [event.actor_id for event in audit(session, "transfer_request.accepted")] == [
        sponsored["president"].id]
    assert [item.kind for item in inbox_of(session, sponsored["manager"])] == [
        "sponsor_answered_transfer"]


def test_the_sponsors_acceptance_is_the_decision_the_filing_names(app, session, clock,
                                                                  sponsored, make_rep,
                                                                  make_admin, make_account):
    """Nothing moves until the sponsor agrees: the sponsor decided, the manager asked. The
    filing names both, and so do the register's page, its export and the account's history."""
    request = ask_transfer(session, sponsored, make_rep(name="王伟"), clock)
    reload(session)
    filing = sponsors.accept_transfer_request(session, sponsored["president"], request.id, "",
                                              clock())
    reload(session)
    filing = session.get(Filing, filing.seq)
    assert (filing.decided_by_id, filing.requested_by_id) == (
        sponsored["president"].id, sponsored["manager"].id)
    # An admin standing in decides in the sponsor's place: the filing names the admin.
    admin = make_admin(name="Admin Standing In")
    second_account = make_account(owner=sponsored["owner"], name="华东能源集团")
    sponsors.designate_sponsor(session, sponsored["manager"], second_account.id,
                               sponsored["president"].id, clock())
    other = ask_transfer(session, {**sponsored, "account": second_account}, make_rep(), clock)
    reload(session)
    second = sponsors.accept_transfer_request(session, admin, other.id, "", clock())
    reload(session)
    second = session.get(Filing, second.seq)
    assert (second.decided_by_id, second.requested_by_id) == (admin.id, sponsored["manager"].id)
    # A manager's own transfer of an account without a sponsor is theirs alone.
    plain = transfer_account(session, sponsored["manager"],
                             account_id=make_account(owner=make_rep()).id,
                             to_rep_id=make_rep().id, reason=REASON, review_text=REVIEW,
                             now=clock())
    reload(session)
    plain = session.get(Filing, plain.seq)
    assert (plain.decided_by_id, plain.requested_by_id) == (sponsored["manager"].id, None)
    # The requester is covered by the filing's hash; filings without one keep theirs.
    from bidhub.services.ledger import verify_ledger
    assert verify_ledger(session).is_intact

    client = app.test_client()
    login(client, sponsored["manager"])
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    page = client.get("/manage/filings").get_data(as_text=True)
    row = next(row for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)
               if f'<td class="num">{filing.seq}</td>' in row)
    decided = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[-1]
    assert sponsored["president"].display_name in decided
    assert f"requested by {sponsored['manager'].display_name}" in decided
    import csv
    import io
    rows = list(csv.reader(io.StringIO(client.get("/manage/filings.csv").get_data()
                                       .decode("utf-8-sig"), newline="")))
    column = {name: index for index, name in enumerate(rows[0])}
    by_seq = {row[0]: row for row in rows[1:] if row}
    line = by_seq[str(filing.seq)]
    assert line[column["Decided by"]] == sponsored["president"].display_name
    assert line[column["Requested by"]] == sponsored["manager"].display_name
    assert by_seq[str(plain.seq)][column["Requested by"]] == ""
    history = client.get(f"/manage/accounts/{sponsored['account'].id}").get_data(as_text=True)
    assert (f"Decided by {sponsored['president'].display_name}, requested by "
            f"{sponsored['manager'].display_name}") in history
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    chinese = client.get("/manage/filings.csv").get_data().decode("utf-8-sig")
    assert "申请人" in chinese.splitlines()[0]
    page = client.get("/manage/filings").get_data(as_text=True)
    assert f"申请人：{sponsored['manager'].display_name}" in page


def test_capacity_is_checked_again_when_the_sponsor_accepts(session, clock, sponsored, make_rep,
                                                            give_accounts):
    receiver = make_rep()
    give_accounts(receiver, 39)
    request = ask_transfer(session, sponsored, receiver, clock)
    give_accounts(receiver, 1)  # meanwhile the receiver reached the maximum
    reload(session)
    with pytest.raises(CapacityExceeded, match="Nothing changed"):
        sponsors.accept_transfer_request(session, sponsored["president"], request.id, "",
                                         clock())
    reload(session)
    assert session.get(TransferRequest, request.id).status == TransferRequestStatus.WAITING
    assert session.get(Account, sponsored["account"].id).owner_id == sponsored["owner"].id


def test_a_refused_transfer_changes_no_owner(app, client, session, clock, sponsored, make_rep,
                                             make_admin):
    request = ask_transfer(session, sponsored, make_rep(), clock)
    admin = make_admin()
    login(client, admin)
    page = client.get("/confirmations").get_data(as_text=True)
    assert f"/confirmations/transfers/{request.id}" in page
    response = client.post(f"/confirmations/transfers/{request.id}",
                           data={f"transfer-{request.id}-answer": "refuse",
                                 f"transfer-{request.id}-note": "The client asked to keep the rep.",
                                 f"transfer-{request.id}-version": str(request.version)})
    assert response.status_code == 303
    reload(session)
    request = session.get(TransferRequest, request.id)
    assert (request.status, request.stood_in, request.answered_by_id) == (
        TransferRequestStatus.REFUSED, True, admin.id)
    assert session.get(Account, sponsored["account"].id).owner_id == sponsored["owner"].id
    # The answer is given once: a second one, from a page loaded before, is a conflict.
    response = client.post(f"/confirmations/transfers/{request.id}",
                           data={f"transfer-{request.id}-answer": "accept",
                                 f"transfer-{request.id}-version": "1"})
    assert response.status_code == 409


def test_an_answer_sent_after_another_shows_the_list_as_it_is_now(
        app, client, session, clock, sponsored, make_rep, make_admin):
    """The sponsor and an admin answer the same transfer from pages loaded before: the second
    answer gets the confirmations page drawn again, which no longer lists the transfer, with
    a message that says so; reloading would only send the same answer again."""
    request = ask_transfer(session, sponsored, make_rep(), clock)
    sponsors.refuse_transfer_request(session, make_admin(), request.id,
                                     "The client asked to keep the rep.", clock(),
                                     expected_version=request.version)
    login(client, sponsored["president"])
    answer = {f"transfer-{request.id}-answer": "accept",
              f"transfer-{request.id}-version": str(request.version)}
    for language, expected in (
            ("en", "This transfer was answered in the meantime; your answer was not recorded. "
                   "The page shows what still waits for you."),
            ("zh-CN", "这项划转已在此期间被答复，您的答复未被记录。页面上列出的是仍在等待您答复的事项。")):
        response = client.post(f"/confirmations/transfers/{request.id}", data=answer,
                               headers={"Accept-Language": language})
        assert response.status_code == 409
        page = response.get_data(as_text=True)
        assert re.findall(r'<p class="flash flash-error">([^<]*)</p>', page) == [expected]
        assert 'id="waiting-transfers"' not in page  # nothing else waits: the list is current
    reload(session)
    assert session.get(TransferRequest, request.id).status == TransferRequestStatus.REFUSED


def test_a_title_only_sponsor_needs_a_designation_or_an_admin(session, clock, make_rep,
                                                              make_manager, make_admin,
                                                              make_account):
    account = make_account(owner=make_rep(), executive_sponsor="president")
    receiver = make_rep()
    with pytest.raises(TransferRefused, match="designate the sponsor"):
        transfer_account(session, make_manager(), account_id=account.id, to_rep_id=receiver.id,
                         reason=REASON, review_text=REVIEW, now=clock())
    reload(session)
    filing = transfer_account(session, make_admin(), account_id=account.id,
                              to_rep_id=receiver.id, reason=REASON, review_text=REVIEW,
                              now=clock())
    assert filing.to_rep_id == receiver.id
    [event] = audit(session, "account.transferred")
    assert event.after["stood_in"] is True


def test_a_sponsor_cannot_change_while_an_answer_is_waiting(session, clock, sponsored, make_rep):
    ask_transfer(session, sponsored, make_rep(), clock)
    with pytest.raises(Conflict, match="waits for its sponsor"):
        sponsors.designate_sponsor(session, sponsored["manager"], sponsored["account"].id,
                                   sponsored["vice"].id, clock())


# --- the accounts import's sponsor column ---------------------------------------------------------

ACCOUNTS_HEADER = "客户编号,客户名称,行业,所有制,分公司,年度金额,所属销售,老板负责\n"


def test_the_import_reads_the_sponsor_as_a_person_or_a_title(app, session, clock, make_admin,
                                                             make_branch, make_executive):
    beijing = make_branch("BJ", "Beijing")
    make_branch("SH", "Shanghai")
    president = make_executive("president", name="王建国", username="president")
    gm_bj = make_executive("branch_general_manager", branch=beijing, name="赵北京",
                           username="gm_bj")
    vice = make_executive("ka_vice_president", name="李副总", username="kavp")
    vice.external_id = "E9002"
    make_executive("ka_vice_president", name="孙副总")  # two VPs: the title names nobody
    session.commit()
    data = (ACCOUNTS_HEADER
            + "KA-1,华北电力集团,能源,国企,BJ,2000000,,总裁\n"
            + "KA-2,北京银行,金融,国企,BJ,1500000,,分公司总经理\n"
            + "KA-3,上海汽车,制造,国企,SH,1500000,,分公司总经理\n"
            + "KA-4,南方航空,交通,国企,BJ,1200000,,E9002\n"
            + "KA-5,中信证券,金融,国企,BJ,1200000,,赵北京\n"
            + "KA-6,招商银行,金融,国企,BJ,1200000,,副总裁\n"
            + "KA-7,平安保险,金融,国企,BJ,1200000,,\n").encode()
    admin = make_admin()
    result = import_file(session, admin, "accounts", "accounts.csv", data,
                         valid_rows_only=False, now=clock())
    assert result.status == "imported", result.problems
    reload(session)
    got = {account.external_id: (account.sponsor_id, account.executive_sponsor)
           for account in session.scalars(select(Account))}
    assert got == {
        "KA-1": (president.id, "president"),
        "KA-2": (gm_bj.id, "branch_general_manager"),
        "KA-3": (None, "branch_general_manager"),  # Shanghai has no GM in bidhub: title kept
        "KA-4": (vice.id, "ka_vice_president"),
        "KA-5": (gm_bj.id, "branch_general_manager"),
        "KA-6": (None, "ka_vice_president"),
        "KA-7": (None, None),
    }
    # The titles kept without a person are reported, row by row, on the import's report.
    assert [(warning.row, warning.value) for warning in result.warnings] == [
        (4, "branch_general_manager"), (7, "ka_vice_president")]
    assert "2 executives hold this title" in str(result.warnings[1].reason)
    admin_client = app.test_client()
    login(admin_client, admin)
    page = admin_client.get(f"/admin/imports/{result.run_id}").get_data(as_text=True)
    assert "import-warnings" in page and "0 executives hold this title" in page


def test_the_import_refuses_a_sponsor_nobody_is(session, clock, make_admin, make_branch):
    make_branch("BJ", "Beijing")
    data = (ACCOUNTS_HEADER + "KA-1,华北电力集团,能源,国企,BJ,2000000,,张无忌\n").encode()
    result = import_file(session, make_admin(), "accounts", "accounts.csv", data,
                         valid_rows_only=False, now=clock())
    assert result.status == "refused"
    [problem] = result.problems
    assert problem.column == "executive_sponsor" and "No executive" in str(problem.reason)


@pytest.mark.parametrize("waiting", ["transfer", "release"])
def test_the_import_cannot_change_a_sponsor_while_an_answer_is_waiting(
        session, clock, sponsored, make_rep, make_admin, make_round, waiting):
    """As on the sponsor page: the answer waiting is the designated sponsor's to give. Before,
    an import moved the sponsorship under it, and the former sponsor still answered."""
    account = sponsored["account"]
    if waiting == "transfer":
        ask_transfer(session, sponsored, make_rep(), clock)
    else:
        release(session, sponsored["manager"], account, make_round, clock)
    data = (ACCOUNTS_HEADER + f"{account.external_id},{account.name},{account.industry},"
            f"{account.ownership_type},{account.branch.code},{account.annual_value_yuan},"
            f"{sponsored['owner'].username},李副总\n").encode()
    result = import_file(session, make_admin(), "accounts", "accounts.csv", data,
                         valid_rows_only=False, now=clock())
    assert result.status == "refused", result
    [problem] = result.problems
    assert problem.column == "executive_sponsor" and "waits for its sponsor" in str(problem.reason)
    reload(session)
    assert session.get(Account, account.id).sponsor_id == sponsored["president"].id


# --- the pages in Chinese ------------------------------------------------------------------------

def test_the_sponsor_pages_speak_chinese(app, session, clock, sponsored, make_rep, make_round,
                                         make_admin):
    release(session, sponsored["manager"], sponsored["account"], make_round, clock)
    other = sponsors.designate_sponsor(session, sponsored["manager"],
                                       make_sponsored_account(session, sponsored, make_rep).id,
                                       sponsored["president"].id, clock())
    transfer_account(session, sponsored["manager"], account_id=other.id,
                     to_rep_id=make_rep(name="王伟").id, reason=REASON, review_text=REVIEW,
                     now=clock())
    data = frozenset({"KA", "Ka", "Manager", "Rep", "Co", "Ltd", "Account", "Beijing",
                      "Executive", "Admin",
                      "Round", "BJ", "The", "rep", "moves", "to", "the", "Shanghai", "team",
                      "Handover", "planned", "with", "client", "purchaser", "bidhub", "English",
                      "s"})
    pages = {sponsored["president"]: ["/confirmations", "/sponsors"],
             make_admin(): ["/confirmations", "/sponsors",
                            f"/sponsors/accounts/{sponsored['account'].id}",
                            "/admin/users/new"]}
    for person, paths in pages.items():
        client = app.test_client()
        login(client, person)
        for path in paths:
            response = client.get(path, headers={"Accept-Language": "zh-CN"})
            assert response.status_code == 200, path
            words = english_words(visible_text(response.get_data(as_text=True)), data)
            assert not words, (path, words)


def make_sponsored_account(session, sponsored, make_rep) -> Account:
    account = Account(external_id="KA-SPONSOR-2", name="南方航空", industry="交通",
                      ownership_type="state_owned", branch_id=sponsored["owner"].branch_id,
                      annual_value_yuan=1_500_000, owner_id=None,
                      created_at=sponsored["account"].created_at)
    session.add(account)
    session.commit()
    owner = make_rep(name="刘洋")
    change_owners(session, [OwnerChange(account.id, owner.id, filing={
        "kind": FilingKind.CRM_IMPORT, "reason": "CRM import", "decided_by_id": owner.id})],
        limit=None, now=account.created_at)
    session.commit()
    return account


def test_an_executive_finds_the_announcements_on_their_confirmations_page(
        client, session, make_user, make_manager, make_round, clock):
    from bidhub.models import Role

    president = make_user(Role.EXECUTIVE, username="president_reader")
    president.executive_title = "president"
    announced = make_round(status=RoundStatus.STANDSTILL, title="Announced round",
                           closes_at=clock() - timedelta(days=1),
                           opens_at=clock() - timedelta(days=8))
    announced.results_published_at = clock() - timedelta(hours=2)
    make_round(status=RoundStatus.PUBLISHED, title="Open round")
    session.commit()
    login(client, president)
    page = client.get("/confirmations").get_data(as_text=True)
    assert f"/rounds/{announced.id}/results" in page
    assert "Open round" not in page
    assert client.get(f"/rounds/{announced.id}/results").status_code == 200
