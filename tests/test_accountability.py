"""The accountability workflow (销售监控问责): log, explain, resolve, report, release."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from bidhub.domain.errors import InvalidRequest
from bidhub.models import (
    AccountabilityIncident,
    AccountReview,
    AuditEvent,
    IncidentStatus,
    Listing,
    RoundStatus,
)
from bidhub.services import accountability
from bidhub.services.accountability import (
    EXPLANATION_DAYS,
    explain_incident,
    log_incident,
    resolve_incident,
    two_week_period,
)
from tests.conftest import login, reload

EXPLANATION = "客户总部统一投放，分公司未告知；已约见人事总监，下月恢复合作。"


def incident_of(session, incident_id) -> AccountabilityIncident:
    reload(session)
    return session.get(AccountabilityIncident, incident_id)


def log(session, manager, account, clock, *, seen_at=None, site="智联招聘 zhaopin.com"):
    return log_incident(session, manager, account_id=account.id, competitor_site=site,
                        ad_type="banner", evidence_url="https://www.zhaopin.com/",
                        seen_at=seen_at or clock(), now=clock())


def uphold(session, manager, incident, clock, note="No convincing explanation given."):
    incident = incident_of(session, incident.id)
    if incident.status == IncidentStatus.OPEN:
        explain_incident(session, incident.rep, incident.id, explanation=EXPLANATION, now=clock())
        incident = incident_of(session, incident.id)
    return resolve_incident(session, manager, incident.id, outcome="upheld", note=note,
                            expected_version=incident.version, now=clock())


def test_a_rep_s_incidents_list_what_waits_for_them_first_the_most_urgent_on_top(
        session, make_manager, make_rep, make_account, clock):
    from bidhub.services.accountability import incidents_of_rep

    manager, rep = make_manager(), make_rep()
    explained = log(session, manager, make_account(owner=rep), clock, site="a.example")
    explain_incident(session, rep, explained.id, explanation=EXPLANATION, now=clock())
    clock.advance(days=1)
    later = log(session, manager, make_account(owner=rep), clock, site="b.example")
    clock.advance(days=1)
    latest = log(session, manager, make_account(owner=rep), clock, site="c.example")
    reload(session)
    assert [incident.id for incident in incidents_of_rep(session, rep)] == [
        later.id, latest.id, explained.id]


def test_the_whole_cycle_through_the_pages(app, session, make_manager, make_rep, make_account,
                                           clock):
    manager, rep = make_manager(), make_rep(name="王伟")
    account = make_account(owner=rep, name="广州云帆科技有限公司")
    boss = app.test_client()
    login(boss, manager)
    response = boss.post("/manage/accountability/log", data={
        "account": account.external_id, "competitor_site": "51job.com", "ad_type": "logo",
        "page_area": "home_page", "evidence_url": "https://www.51job.com/",
        "seen_at": "2026-03-01T10:00"})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    incident = session.scalars(select(AccountabilityIncident)).one()
    assert (incident.rep_id, incident.status, incident.logged_by_id) == (
        rep.id, IncidentStatus.OPEN, manager.id)
    assert incident.explanation_due_at == clock() + timedelta(days=EXPLANATION_DAYS)
    assert incident.seen_at.isoformat() == "2026-03-01T02:00:00+00:00"  # entered in local time

    seller = app.test_client()
    login(seller, rep)
    inbox = seller.get("/my/accountability").get_data(as_text=True)
    assert "广州云帆科技有限公司" in inbox and "51job.com" in inbox
    assert "2026-03-09 09:00" in inbox  # the due date, local time
    assert "Accountability" in inbox and 'badge badge-overridden">1<' in inbox  # nav count

    too_short = seller.post(f"/my/accountability/{incident.id}/explain",
                            data={"explanation": "Sorry."})
    assert too_short.status_code == 422
    clock.advance(days=2)
    response = seller.post(f"/my/accountability/{incident.id}/explain",
                           data={"explanation": EXPLANATION})
    assert response.status_code == 303
    incident = incident_of(session, incident.id)
    assert incident.status == IncidentStatus.EXPLAINED and incident.explained_at == clock()
    assert not accountability.is_overdue(incident, clock())
    again = seller.post(f"/my/accountability/{incident.id}/explain",
                        data={"explanation": EXPLANATION})
    assert again.status_code == 409

    page = boss.get("/manage/accountability?status=explained").get_data(as_text=True)
    assert EXPLANATION in page and "王伟" in page
    assert "广州云帆科技有限公司" not in boss.get(
        "/manage/accountability?status=open").get_data(as_text=True)
    response = boss.post(f"/manage/accountability/incidents/{incident.id}/resolve",
                         data={"outcome": "accepted", "note": "",
                               "version": str(incident.version)})
    assert response.status_code == 303
    incident = incident_of(session, incident.id)
    assert (incident.status, incident.resolved_by_id, incident.resolved_at) == (
        IncidentStatus.ACCEPTED, manager.id, clock())
    actions = set(session.scalars(select(AuditEvent.action).where(
        AuditEvent.target == f"incident:{incident.id}")))
    assert actions == {"incident.logged", "incident.explained", "incident.resolved"}


def test_management_upholds_with_a_note(app, session, make_manager, make_rep, make_account, clock,
                                        login_as):
    manager, rep = make_manager(), make_rep()
    incident = log(session, manager, make_account(owner=rep), clock)
    explain_incident(session, rep, incident.id, explanation=EXPLANATION, now=clock())
    version = incident_of(session, incident.id).version
    client = login_as(manager)
    url = f"/manage/accountability/incidents/{incident.id}/resolve"
    without_note = client.post(url, data={"outcome": "upheld", "version": str(version)})
    assert without_note.status_code == 422
    assert "Say why the incident is upheld" in without_note.get_data(as_text=True)
    response = client.post(url, data={"outcome": "upheld", "version": str(version),
                                      "note": "Third sighting this quarter."})
    assert response.status_code == 303
    incident = incident_of(session, incident.id)
    assert incident.status == IncidentStatus.UPHELD
    assert incident.resolution_note == "Third sighting this quarter."


def test_another_rep_can_neither_see_nor_explain_an_incident(app, session, make_manager, make_rep,
                                                             make_account, clock, login_as):
    owner = make_rep()
    incident = log(session, make_manager(), make_account(owner=owner, name="Hidden Corp"), clock)
    client = login_as(make_rep())
    assert "Hidden Corp" not in client.get("/my/accountability").get_data(as_text=True)
    response = client.post(f"/my/accountability/{incident.id}/explain",
                           data={"explanation": EXPLANATION})
    assert response.status_code == 404
    assert client.post("/my/accountability/999999/explain",
                       data={"explanation": EXPLANATION}).status_code == 404
    assert incident_of(session, incident.id).status == IncidentStatus.OPEN


def test_a_stale_resolve_form_gets_a_conflict(app, session, make_manager, make_rep, make_account,
                                              clock, login_as):
    manager, rep = make_manager(), make_rep()
    incident = log(session, manager, make_account(owner=rep), clock)
    stale = incident_of(session, incident.id).version
    explain_incident(session, rep, incident.id, explanation=EXPLANATION, now=clock())
    client = login_as(manager)
    response = client.post(f"/manage/accountability/incidents/{incident.id}/resolve",
                           data={"outcome": "accepted", "version": str(stale)})
    assert response.status_code == 409
    assert incident_of(session, incident.id).status == IncidentStatus.EXPLAINED
    # The page leads back to the incident as it stands now, not only to the start page.
    page = client.post(f"/manage/accountability/incidents/{incident.id}/resolve",
                       data={"outcome": "accepted", "version": str(stale)},
                       headers={"Referer": f"http://localhost/manage/accountability?open={incident.id}"}
                       ).get_data(as_text=True)
    assert f'href="/manage/accountability?open={incident.id}">Open the page again</a>' in page
    elsewhere = client.post(f"/manage/accountability/incidents/{incident.id}/resolve",
                            data={"outcome": "accepted", "version": str(stale)},
                            headers={"Referer": "https://evil.example/manage/accountability"}
                            ).get_data(as_text=True)
    assert "Open the page again" not in elsewhere


def test_an_account_without_a_rep_cannot_be_logged(app, session, make_manager, make_account,
                                                   login_as):
    account = make_account(owner=None, name="Nobody's Account")
    client = login_as(make_manager())
    response = client.post("/manage/accountability/log", data={
        "account": "Nobody's Account", "competitor_site": "51job.com", "ad_type": "banner",
        "page_area": "home_page", "evidence_url": "https://www.51job.com/",
        "seen_at": "2026-03-01T10:00"})
    assert response.status_code == 422
    assert "has no rep" in response.get_data(as_text=True)
    unknown = client.post("/manage/accountability/log", data={
        "account": "No Such Co.", "competitor_site": "51job.com", "ad_type": "banner",
        "seen_at": "2026-03-01T10:00"})
    assert unknown.status_code == 422
    assert session.scalars(select(AccountabilityIncident)).first() is None
    assert account.id


def test_an_unexplained_incident_is_upheld_only_after_its_due_date(session, make_manager,
                                                                    make_rep, make_account, clock):
    manager = make_manager()
    incident = log(session, manager, make_account(owner=make_rep()), clock)
    version = incident_of(session, incident.id).version
    with pytest.raises(InvalidRequest, match="no explanation to accept"):
        resolve_incident(session, manager, incident.id, outcome="accepted", note="",
                         expected_version=version, now=clock())
    reload(session)
    with pytest.raises(InvalidRequest, match="until the due date"):
        resolve_incident(session, manager, incident.id, outcome="upheld", note="Silent.",
                         expected_version=version, now=clock())
    reload(session)
    clock.advance(days=EXPLANATION_DAYS + 1)
    resolved = resolve_incident(session, manager, incident.id, outcome="upheld",
                                note="No explanation filed.", expected_version=version,
                                now=clock())
    assert resolved.status == IncidentStatus.UPHELD
    assert accountability.is_overdue(resolved, clock())


def test_a_late_explanation_is_taken_but_shows_overdue(app, session, make_manager, make_rep,
                                                       make_account, clock, login_as):
    rep = make_rep()
    incident = log(session, make_manager(), make_account(owner=rep), clock)
    clock.advance(days=EXPLANATION_DAYS + 2)
    client = login_as(rep)
    assert "overdue" in client.get("/my/accountability").get_data(as_text=True)
    response = client.post(f"/my/accountability/{incident.id}/explain",
                           data={"explanation": EXPLANATION})
    assert response.status_code == 303
    incident = incident_of(session, incident.id)
    assert incident.status == IncidentStatus.EXPLAINED
    assert accountability.is_overdue(incident, clock())


def test_an_explanation_imported_without_its_date_is_neither_blank_dated_nor_overdue(
        session, make_manager, make_rep, make_account, clock, login_as):
    """A CRM export may carry an incident already explained without saying when: the list
    shows the explanation without an empty "Explained" date, and does not call it overdue."""
    manager = make_manager()
    incident = log(session, manager, make_account(owner=make_rep()), clock)
    incident = incident_of(session, incident.id)
    incident.status, incident.explanation = IncidentStatus.EXPLAINED, EXPLANATION
    session.commit()
    clock.advance(days=EXPLANATION_DAYS + 5)
    assert not accountability.is_overdue(incident_of(session, incident.id), clock())
    page = login_as(manager).get("/manage/accountability").get_data(as_text=True)
    row = page[page.index(f'id="incident-{incident.id}"'):].split("</tr>")[0]
    assert EXPLANATION in row
    assert '<small class="muted">Explained' not in row and "overdue" not in row


@pytest.mark.parametrize(("day", "start"), [
    (date(2024, 1, 1), date(2024, 1, 1)),     # the anchor Monday
    (date(2024, 1, 14), date(2024, 1, 1)),    # the Sunday ending the first period
    (date(2024, 1, 15), date(2024, 1, 15)),   # the next period's Monday
    (date(2023, 12, 31), date(2023, 12, 18)),  # before the anchor
    (date(2026, 3, 2), date(2026, 2, 23)),    # a Monday in the second week of its period
    (date(2026, 3, 8), date(2026, 2, 23)),
    (date(2026, 3, 9), date(2026, 3, 9)),
])
def test_two_week_periods_start_on_every_other_monday(day, start):
    assert two_week_period(day) == (start, start + timedelta(days=14))
    assert start.weekday() == 0
    assert accountability.neighbouring_periods(start) == (start - timedelta(days=14),
                                                          start + timedelta(days=14))


def test_every_day_falls_in_exactly_one_period():
    day = date(2025, 12, 1)
    for _ in range(60):
        start, end = two_week_period(day)
        assert start <= day < end and (end - start).days == 14
        assert two_week_period(start) == (start, end)
        day += timedelta(days=1)


def test_the_report_lists_the_periods_incidents_with_days_open(
        app, session, make_manager, make_rep, make_account, clock, login_as):
    manager, rep = make_manager(), make_rep(name="李娜")
    account = make_account(owner=rep, name="深圳星河电子有限公司")
    # The clock is Monday 2026-03-02 09:00 local; its period runs 2026-02-23 .. 2026-03-08.
    inside = log(session, manager, account, clock, seen_at=clock() - timedelta(days=6))
    explained = log(session, manager, account, clock, seen_at=clock() - timedelta(days=1))
    before = log(session, manager, make_account(owner=rep, name="Earlier Co."), clock,
                 seen_at=clock() - timedelta(days=8))
    explain_incident(session, rep, explained.id, explanation=EXPLANATION, now=clock())
    reload(session)
    resolve_incident(session, manager, explained.id, outcome="accepted", note="",
                     expected_version=incident_of(session, explained.id).version, now=clock())
    clock.advance(days=3)

    rows = accountability.accountability_report(
        session, clock() - timedelta(days=9), clock() + timedelta(days=5), now=clock())
    by_id = {row.incident.id: row for row in rows}
    assert set(by_id) == {inside.id, explained.id}
    assert by_id[inside.id].days_open == 9 and not by_id[inside.id].overdue
    assert by_id[explained.id].days_open == 1  # stopped at the resolution
    assert before.id not in by_id

    client = login_as(manager)
    page = client.get("/manage/accountability/report?start=2026-02-25").get_data(as_text=True)
    assert "2026-02-23" in page and "2026-03-08" in page
    assert "深圳星河电子有限公司" in page and "李娜" in page and "Earlier Co." not in page
    assert "start=2026-02-09" in page and "start=2026-03-09" in page  # previous / next
    current = client.get("/manage/accountability/report").get_data(as_text=True)
    # Now 2026-03-05: the period holding today is not over, so the report opens on the one
    # before it, the last complete period.
    assert "2026-02-09" in current and "2026-02-22" in current and "Earlier Co." in current
    earlier = client.get("/manage/accountability/report?start=2026-02-09").get_data(as_text=True)
    assert "Earlier Co." in earlier and "深圳星河电子有限公司" not in earlier


def test_the_report_exports_csv_with_a_bom_and_chinese_names(app, session, make_manager, make_rep,
                                                             make_account, clock, login_as):
    manager, rep = make_manager(), make_rep(name="王伟")
    log(session, manager, make_account(owner=rep, name="广州云帆科技有限公司"), clock,
        seen_at=clock() - timedelta(days=2))
    client = login_as(manager)
    response = client.get("/manage/accountability/report.csv?start=2026-03-02")
    assert response.mimetype == "text/csv"
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][0] == "Incident" and rows[0][3] == "Account"
    assert rows[2] == []  # one incident, then the totals
    assert rows[1][3] == "广州云帆科技有限公司" and rows[1][5] == "王伟"
    assert rows[1][14] == "2" and rows[1][15] == "no"


@pytest.fixture
def draft_round(make_round, clock):
    return make_round(status=RoundStatus.DRAFT, closes_at=clock() + timedelta(days=10))


def test_repeated_upheld_incidents_release_the_account_into_a_draft_round(
        app, session, draft_round, make_manager, make_rep, make_account, clock, login_as):
    manager, rep = make_manager(), make_rep()
    account = make_account(owner=rep, name="Repeat Offender Ltd.")
    uphold(session, manager, log(session, manager, account, clock), clock)
    client = login_as(manager)
    review = "Two competitor campaigns in three months; the rep never visited."

    page = client.get("/manage/accountability").get_data(as_text=True)
    assert f"/manage/accountability/accounts/{account.id}/release" not in page
    refused = client.post(f"/manage/accountability/accounts/{account.id}/release",
                          data={"round_id": str(draft_round.id), "owner": str(rep.id),
                                "review_text": review})
    assert refused.status_code == 422
    assert "1 upheld incident" in refused.get_data(as_text=True)
    assert session.scalars(select(Listing)).first() is None

    uphold(session, manager, log(session, manager, account, clock,
                                 seen_at=clock() - timedelta(days=1)), clock)
    page = client.get("/manage/accountability").get_data(as_text=True)
    assert f"/manage/accountability/accounts/{account.id}/release" in page
    response = client.post(f"/manage/accountability/accounts/{account.id}/release",
                           data={"round_id": str(draft_round.id), "owner": str(rep.id),
                                 "review_text": review})
    assert response.status_code == 303
    assert response.location.endswith(f"/manage/rounds/{draft_round.id}")
    reload(session)
    listing = session.scalars(select(Listing)).one()
    assert (listing.round_id, listing.account_id, listing.release_reason,
            listing.released_from_id) == (draft_round.id, account.id, "accountability", rep.id)
    assert session.get(AccountReview, listing.review_id).review_text == review


def test_a_release_drawn_before_the_account_changed_owner_is_refused_and_changes_nothing(
        app, session, draft_round, make_manager, make_rep, make_account, clock, login_as):
    """The card named the rep the review is written about; if the account moved since (here
    back to a rep who also has two upheld incidents on it, so the count alone lets it through),
    the release is refused with 409 and the page drawn again: no listing, no review due from
    the new owner with text about the old one."""
    from bidhub.models import Account
    from bidhub.services.filings import transfer_account

    manager, shown_rep, new_owner = make_manager(), make_rep(name="王伟"), make_rep(name="李娜")
    account = make_account(owner=new_owner, name="Repeat Offender Ltd.")
    for rep in (new_owner, shown_rep):
        if session.get(Account, account.id).owner_id != rep.id:
            transfer_account(session, manager, account_id=account.id, to_rep_id=rep.id,
                             reason="Handed over to the rep covering the district.",
                             review_text="Handover done; the client was told.", now=clock())
        for days in (3, 2):
            uphold(session, manager, log(session, manager, account, clock,
                                         seen_at=clock() - timedelta(days=days)), clock)
    client = login_as(manager)
    page = client.get("/manage/accountability").get_data(as_text=True)
    assert f'name="owner" type="hidden" value="{shown_rep.id}"' in page
    transfer_account(session, manager, account_id=account.id, to_rep_id=new_owner.id,
                     reason="Handed back to the rep covering the district.",
                     review_text="Handover done; the client was told.", now=clock())
    reviews = session.query(AccountReview).count()

    response = client.post(f"/manage/accountability/accounts/{account.id}/release",
                           data={"round_id": str(draft_round.id), "owner": str(shown_rep.id),
                                 "review_text": "王伟 never visited after two campaigns."})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "changed owner after this page was drawn" in page and "李娜" in page
    assert f'name="owner" type="hidden" value="{new_owner.id}"' in page  # drawn again
    reload(session)
    assert session.scalars(select(Listing)).first() is None
    assert session.query(AccountReview).count() == reviews

    # The form as it is drawn now releases the account from its present owner.
    response = client.post(f"/manage/accountability/accounts/{account.id}/release",
                           data={"round_id": str(draft_round.id), "owner": str(new_owner.id),
                                 "review_text": "李娜 let the client advertise with a rival."})
    assert response.status_code == 303
    reload(session)
    assert session.scalars(select(Listing)).one().released_from_id == new_owner.id


def test_a_release_form_without_the_owner_it_was_drawn_with_is_refused(
        app, session, draft_round, make_manager, make_rep, make_account, clock, login_as):
    manager, rep = make_manager(), make_rep()
    account = make_account(owner=rep)
    for days in (3, 2):
        uphold(session, manager, log(session, manager, account, clock,
                                     seen_at=clock() - timedelta(days=days)), clock)
    client = login_as(manager)
    for owner in ({}, {"owner": "x"}, {"owner": "none"}):
        response = client.post(f"/manage/accountability/accounts/{account.id}/release",
                               data={"round_id": str(draft_round.id), **owner,
                                     "review_text": "Two campaigns; the rep never visited."})
        assert response.status_code in (409, 422)
    assert session.scalars(select(Listing)).first() is None


def test_old_or_other_reps_upheld_incidents_do_not_count(session, draft_round, make_manager,
                                                         make_rep, make_account, clock):
    manager, first, second = make_manager(), make_rep(), make_rep()
    account = make_account(owner=first)
    uphold(session, manager, log(session, manager, account, clock,
                                 seen_at=clock() - timedelta(days=400)), clock)
    uphold(session, manager, log(session, manager, account, clock), clock)
    assert accountability.upheld_count(session, account, clock()) == 1  # one is too old
    with pytest.raises(InvalidRequest, match="1 upheld incident"):
        accountability.release_for_accountability(
            session, manager, account.id, round_id=draft_round.id, expected_owner_id=first.id,
            review_text="Long enough review text for the release.", now=clock())
    reload(session)
    account = session.get(type(account), account.id)
    account.owner_id = second.id
    session.commit()
    assert accountability.upheld_count(session, account, clock()) == 0
    assert accountability.accounts_due_for_release(session, clock()) == []


def test_the_same_sighting_sent_twice_is_one_incident(session, make_manager, make_rep,
                                                       make_account, clock, login_as):
    """A double click on the log form must not hold the rep to account twice for one ad."""
    manager, rep = make_manager(), make_rep()
    account = make_account(owner=rep)
    client = login_as(manager)
    form = {"account": account.external_id, "competitor_site": "智联招聘 zhaopin.com",
            "ad_type": "banner", "page_area": "home_page", "seen_at": "2026-03-02T08:00",
            "evidence_url": "https://www.zhaopin.com/"}
    for _ in range(2):
        response = client.post("/manage/accountability/log", data=form)
        assert response.status_code == 303
    reload(session)
    [incident] = session.scalars(select(AccountabilityIncident)).all()
    assert len(session.scalars(select(AuditEvent).where(
        AuditEvent.action == "incident.logged")).all()) == 1
    assert log(session, manager, account, clock, seen_at=incident.seen_at,
               site=incident.competitor_site).id == incident.id

    response = client.post("/manage/accountability/log", data={**form,
                                                               "seen_at": "2026-03-02T08:30"})
    assert response.status_code == 303
    reload(session)
    assert len(session.scalars(select(AccountabilityIncident)).all()) == 2


def test_accounts_due_for_release_are_in_pinyin_order(session, make_manager, make_rep,
                                                     make_account, clock):
    from bidhub.domain.collation import name_key

    manager, rep = make_manager(), make_rep()
    names = ["张家口物流", "Beta Ltd", "李宁体育", "阿里巴巴", "陈氏集团"]
    for name in names:
        account = make_account(owner=rep, name=name)
        for days in (3, 2):
            uphold(session, manager, log(session, manager, account, clock,
                                         seen_at=clock() - timedelta(days=days)), clock)
    assert [account.name for account, _count in accountability.accounts_due_for_release(
        session, clock())] == sorted(names, key=name_key)
