"""Accountability as the handbook defines it: only accounts with no won deal, evidence, due
dates, and the two-weekly report (问责客户报表) with its totals."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import stat
from datetime import UTC, date, datetime, timedelta
from html import unescape
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from bidhub.domain.errors import InvalidRequest
from bidhub.models import AccountabilityIncident, Opportunity, OpportunityStageChange
from bidhub.services import accountability
from bidhub.services.accountability import (
    MAX_EVIDENCE_BYTES,
    explain_incident,
    last_complete_period,
    log_incident,
    resolve_incident,
)
from bidhub.services.imports import import_file
from bidhub.services.policies import AccountabilityPolicy, accountability_policy
from tests.conftest import login, reload

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
WEBP = b"RIFF\x20\x00\x00\x00WEBPVP8 " + b"\x00" * 64
GIF = b"GIF89a" + b"\x00" * 64
EXPLANATION = "客户总部统一投放，分公司未告知；已约见人事总监，下月恢复合作。"


@pytest.fixture
def app_config(app_config, tmp_path):
    return {**app_config, "EVIDENCE_FOLDER": str(tmp_path / "evidence")}


@pytest.fixture
def evidence_folder(app_config) -> Path:
    return Path(app_config["EVIDENCE_FOLDER"])


@pytest.fixture
def won_deal(session, clock):
    """A deal won on `account`, `days` before the clock, for `amount` yuan."""

    def make(account, *, days: int, amount: int = 260_000, stage: str = "won",
             dated: bool = True) -> Opportunity:
        won_at = clock() - timedelta(days=days)
        opportunity = Opportunity(account_id=account.id, rep_id=account.owner_id,
                                  amount_yuan=amount, stage=stage,
                                  opened_at=won_at - timedelta(days=60),
                                  closed_at=won_at if dated else None)
        session.add(opportunity)
        session.flush()
        if not dated:  # the CRM gave no close date, only the history
            session.add(OpportunityStageChange(opportunity_id=opportunity.id, stage=stage,
                                               changed_at=won_at))
        session.commit()
        return opportunity

    return make


def form(account, **changes) -> dict:
    return {"account": account.external_id, "competitor_site": "51job.com", "ad_type": "banner",
            "page_area": "home_page", "seen_at": "2026-03-01T10:00",
            "evidence_url": "https://www.51job.com/", **changes}


def incident_count(session) -> int:
    reload(session)
    return session.scalar(select(func.count()).select_from(AccountabilityIncident))


def log(session, manager, account, clock, **changes):
    arguments = {"competitor_site": "智联招聘 zhaopin.com", "ad_type": "banner",
                 "evidence_url": "https://www.zhaopin.com/", "seen_at": clock(), "now": clock(),
                 **changes}
    return log_incident(session, manager, account_id=account.id, **arguments)


# --- the condition: no won deal with us in the window -----------------------------------------

def test_an_account_with_a_deal_won_inside_the_window_is_refused_with_the_deal(
        app, session, make_manager, make_rep, make_account, won_deal, clock, login_as):
    account = make_account(owner=make_rep(), name="北京智联科技有限公司")
    won_deal(account, days=30, amount=300_000)
    client = login_as(make_manager())
    response = client.post("/manage/accountability/log", data=form(account))
    assert response.status_code == 422
    page = unescape(response.get_data(as_text=True))
    assert "北京智联科技有限公司 placed an order with us: a deal of 300,000 yuan won on " \
           "2026-01-31, within the last 12 months" in page
    assert re.search(r'<div class="field has-error">\s*<label for="account"', page)
    assert incident_count(session) == 0


def test_the_refusal_names_the_deals_day_in_the_configured_time_zone(
        app, session, make_manager, make_admin, make_rep, make_account, clock, login_as):
    # Won at 03:00 UTC on 31 January: still 30 January in New York, 31 January in Shanghai.
    app.config["TIMEZONE"] = "America/New_York"
    rep = make_rep(username="wangfang")
    account = make_account(owner=rep, name="时区客户")
    won = datetime(2026, 1, 31, 3, 0, tzinfo=UTC)
    session.add(Opportunity(account_id=account.id, rep_id=rep.id, amount_yuan=50_000,
                            stage="won", opened_at=won - timedelta(days=60), closed_at=won))
    session.commit()
    page = unescape(login_as(make_manager()).post(
        "/manage/accountability/log", data=form(account)).get_data(as_text=True))
    assert "a deal of 50,000 yuan won on 2026-01-30," in page
    result = import_file(session, make_admin(), "incidents", "incidents.csv", incidents_csv(
        f"INC-1,{account.external_id},wangfang,51job.com,2026-02-20,横幅,首页,"),
        valid_rows_only=False, now=clock(), zone="America/New_York")
    [problem] = result.problems
    assert "won on 2026-01-30," in str(problem.reason)
    assert incident_count(session) == 0


def test_just_outside_the_window_the_incident_is_logged(session, make_manager, make_rep,
                                                        make_account, won_deal, clock):
    account = make_account(owner=make_rep())
    # Twelve calendar months before 2026-03-02 09:00 is 2025-03-02 09:00; one day more is out.
    won_deal(account, days=366)
    incident = log(session, make_manager(), account, clock)
    assert incident.account_id == account.id
    inside = make_account(owner=make_rep())
    won_deal(inside, days=365)  # 2025-03-02: on the window's first day, still inside
    with pytest.raises(InvalidRequest, match="placed an order with us"):
        log(session, make_manager(), inside, clock)


def test_a_deal_won_again_after_it_was_re_opened_is_an_order_from_its_second_win(
        session, make_manager, make_rep, make_account, clock):
    """Won 400 days ago, re-opened, won again 30 days ago, no close date: the account placed
    an order with us a month ago, as the track record counts the deal (won since then)."""
    account = make_account(owner=make_rep())
    deal = Opportunity(account_id=account.id, rep_id=account.owner_id, amount_yuan=90_000,
                       stage="won", opened_at=clock() - timedelta(days=420), closed_at=None)
    session.add(deal)
    session.flush()
    session.add_all(OpportunityStageChange(opportunity_id=deal.id, stage=stage,
                                           changed_at=clock() - timedelta(days=days))
                    for stage, days in (("potential", 420), ("won", 400),
                                        ("negotiation", 380), ("won", 30)))
    session.commit()
    with pytest.raises(InvalidRequest, match="placed an order with us"):
        log(session, make_manager(), account, clock)
    assert incident_count(session) == 0


def test_lost_and_open_deals_are_no_order_and_an_undated_win_counts(
        session, make_manager, make_rep, make_account, won_deal, clock):
    manager = make_manager()
    account = make_account(owner=make_rep())
    won_deal(account, days=10, stage="lost")
    won_deal(account, days=10, stage="negotiation")
    assert log(session, manager, account, clock).id
    undated = make_account(owner=make_rep(), name="Undated Win Co.")
    won_deal(undated, days=20, dated=False)  # won per its history 20 days ago
    with pytest.raises(InvalidRequest, match="won on 2026-02-10"):
        log(session, manager, undated, clock)
    reload(session)
    never_dated = make_account(owner=make_rep())
    session.add(Opportunity(account_id=never_dated.id, rep_id=never_dated.owner_id,
                            amount_yuan=1, stage="won", opened_at=clock() - timedelta(days=900),
                            closed_at=None))
    session.commit()
    with pytest.raises(InvalidRequest, match="an unknown date"):
        log(session, manager, never_dated, clock)


def test_the_window_is_configurable(app, session, make_manager, make_rep, make_account, won_deal,
                                    clock, login_as):
    account = make_account(owner=make_rep())
    won_deal(account, days=500)  # about 16 months ago
    with pytest.raises(InvalidRequest, match="within the last 24 months"):
        log(session, make_manager(), account, clock,
            policy=AccountabilityPolicy(won_deal_months=24))
    reload(session)
    app.config["ACCOUNTABILITY_WON_DEAL_MONTHS"] = 24
    client = login_as(make_manager())
    refused = client.post("/manage/accountability/log", data=form(account))
    assert refused.status_code == 422 and "within the last 24 months" in refused.get_data(
        as_text=True)
    assert "a deal won in the last 24 months is refused" in client.get(
        "/manage/accountability").get_data(as_text=True)
    app.config["ACCOUNTABILITY_WON_DEAL_MONTHS"] = 12
    assert client.post("/manage/accountability/log", data=form(account)).status_code == 303
    assert incident_count(session) == 1


def test_the_policy_reads_the_config_then_the_environment_and_refuses_nonsense():
    assert accountability_policy({}, environ={}) == AccountabilityPolicy(12, 7)
    assert accountability_policy({}, environ={"BIDHUB_ACCOUNTABILITY_WON_DEAL_MONTHS": "18",
                                              "BIDHUB_ACCOUNTABILITY_EXPLANATION_DAYS": "5"}) \
        == AccountabilityPolicy(18, 5)
    assert accountability_policy({"ACCOUNTABILITY_WON_DEAL_MONTHS": 6},
                                 environ={"BIDHUB_ACCOUNTABILITY_WON_DEAL_MONTHS": "18"}) \
        == AccountabilityPolicy(6, 7)
    for bad in ("0", "twelve", "1.5", "-3", "1000"):
        with pytest.raises(ValueError, match="ACCOUNTABILITY_WON_DEAL_MONTHS"):
            accountability_policy({}, environ={"BIDHUB_ACCOUNTABILITY_WON_DEAL_MONTHS": bad})


def incidents_csv(*rows: str) -> bytes:
    header = "事件编号,客户编号,销售,竞争对手网站,发现日期,广告类型,广告位置,截图链接\r\n"
    return (header + "".join(row + "\r\n" for row in rows)).encode("utf-8-sig")


def test_the_import_refuses_an_account_with_a_won_deal_naming_row_and_column(
        session, make_admin, make_rep, make_account, won_deal, clock):
    rep = make_rep(username="wangfang")
    clean, ordered = make_account(owner=rep), make_account(owner=rep, name="有订单公司")
    won_deal(ordered, days=40, amount=88_000)
    data = incidents_csv(
        f"INC-1,{clean.external_id},wangfang,51job.com,2026-02-20,横幅,首页,https://51job.com/a",
        f"INC-2,{ordered.external_id},wangfang,51job.com,2026-02-21,标志,专题,")
    result = import_file(session, make_admin(), "incidents", "incidents.csv", data,
                         valid_rows_only=False, now=clock())
    assert result.status == "refused"
    [problem] = result.problems
    assert (problem.row, problem.column, problem.value) == (3, "account", ordered.external_id)
    assert "a deal of 88,000 yuan won on 2026-01-21" in str(problem.reason)
    assert incident_count(session) == 0  # all or nothing: the clean row is not written either



def test_an_ad_elsewhere_than_the_home_page_or_a_special_section_is_no_incident(
        app, session, make_manager, make_admin, make_rep, make_account, clock, login_as):
    """The handbook watches a competitor's home page and special sections: an ad seen on
    another page of the site holds nobody accountable, on the form, in the use case or in a
    CRM file."""
    rep, manager = make_rep(username="wangfang"), make_manager()
    account = make_account(owner=rep)
    client = login_as(manager)
    page = client.get("/manage/accountability", headers={"Accept-Language": "zh-CN"}
                      ).get_data(as_text=True)
    offered = re.search(r'<select[^>]*name="page_area".*?</select>', page, re.S).group(0)
    assert "首页" in offered and "专题" in offered and "其他" not in offered
    refused = client.post("/manage/accountability/log", data=form(account, page_area="other"))
    assert refused.status_code == 422
    with pytest.raises(InvalidRequest, match="ad elsewhere on the site is not an incident"):
        log(session, manager, account, clock, page_area="other")
    data = incidents_csv(
        f"INC-1,{account.external_id},wangfang,51job.com,2026-02-20,横幅,首页,https://51job.com/a",
        f"INC-2,{account.external_id},wangfang,51job.com,2026-02-21,标志,其他页面,",
        f"INC-3,{account.external_id},wangfang,51job.com,2026-02-21,标志,其他,")
    result = import_file(session, make_admin(), "incidents", "incidents.csv", data,
                         valid_rows_only=False, now=clock())
    assert result.status == "refused"
    assert [(problem.row, problem.column) for problem in result.problems] == [
        (3, "page_area"), (4, "page_area")]
    assert all("not an incident" in str(problem.reason) for problem in result.problems)
    assert incident_count(session) == 0


def test_the_window_counts_months_on_the_departments_calendar(session, make_manager, make_admin,
                                                               make_rep, make_account):
    # 00:30 on 29 February 2028 in Beijing is still 28 February in UTC. Twelve months before
    # it on Beijing's calendar is 00:30 on 28 February 2027 there (16:30 UTC on the 27th), so a
    # deal won at 16:00 Beijing time that day (08:00 UTC) is inside the window; counted on UTC
    # clocks the window would begin at 16:30 UTC on 28 February 2027 and miss it.
    beijing = ZoneInfo("Asia/Shanghai")
    now = datetime(2028, 2, 29, 0, 30, tzinfo=beijing).astimezone(UTC)  # as the app passes it
    rep = make_rep(username="wangfang")
    account = make_account(owner=rep, name="北京闰年科技有限公司")
    won = datetime(2027, 2, 28, 16, 0, tzinfo=beijing)
    session.add(Opportunity(account_id=account.id, rep_id=rep.id, amount_yuan=66_000,
                            stage="won", opened_at=won - timedelta(days=60), closed_at=won))
    session.commit()
    with pytest.raises(InvalidRequest, match="a deal of 66,000 yuan won on 2027-02-28, within "
                                             "the last 12 months"):
        log_incident(session, make_manager(), account_id=account.id,
                     competitor_site="51job.com", ad_type="banner",
                     evidence_url="https://www.51job.com/", seen_at=now, now=now,
                     zone="Asia/Shanghai")
    reload(session)
    result = import_file(session, make_admin(), "incidents", "incidents.csv", incidents_csv(
        f"INC-1,{account.external_id},wangfang,51job.com,2028-02-20,横幅,首页,"),
        valid_rows_only=False, now=now, zone="Asia/Shanghai")
    [problem] = result.problems
    assert "won on 2027-02-28," in str(problem.reason)
    assert incident_count(session) == 0

# --- evidence --------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "ftp://files.example/ad",
    "file:///etc/passwd", "http://", "www.51job.com/no-scheme", "https://a.example/" + "x" * 500,
    "https://a.example/with space",
])
def test_evidence_links_other_than_http_and_https_are_refused(
        app, session, make_manager, make_rep, make_account, login_as, url):
    account = make_account(owner=make_rep())
    client = login_as(make_manager())
    response = client.post("/manage/accountability/log", data=form(account, evidence_url=url))
    assert response.status_code == 422
    assert incident_count(session) == 0


def test_some_evidence_is_required(app, session, make_manager, make_rep, make_account, login_as,
                                   clock):
    account = make_account(owner=make_rep())
    client = login_as(make_manager())
    response = client.post("/manage/accountability/log", data=form(account, evidence_url=""))
    assert response.status_code == 422
    assert "a link to the ad or a screenshot" in response.get_data(as_text=True)
    with pytest.raises(InvalidRequest, match="a link to the ad or a screenshot"):
        log(session, make_manager(), account, clock, evidence_url="")
    assert incident_count(session) == 0


def post_image(client, account, data: bytes, filename: str, **changes):
    # Encoded in memory: the test client would otherwise spool a big body to a file it leaks.
    boundary, body = encode_multipart(form(
        account, evidence_url="", evidence_image=FileStorage(io.BytesIO(data), filename),
        **changes))
    return client.post("/manage/accountability/log", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}",
                       headers={"Referer": "http://localhost/manage/accountability"})


@pytest.mark.parametrize(("data", "kind"), [(PNG, "png"), (JPEG, "jpg"), (WEBP, "webp")])
def test_a_screenshot_is_recognised_by_its_bytes_and_stored_0600_under_its_hash(
        app, session, make_manager, make_rep, make_account, login_as, evidence_folder, data,
        kind):
    account = make_account(owner=make_rep())
    client = login_as(make_manager())
    # The name says text; the bytes say image: the bytes decide.
    response = post_image(client, account, data, "../../notes.txt")
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    incident = session.scalars(select(AccountabilityIncident)).one()
    name = f"{hashlib.sha256(data).hexdigest()}.{kind}"
    assert incident.evidence_file == name and incident.evidence_url == ""
    stored = evidence_folder / name
    assert stored.read_bytes() == data
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert sorted(path.name for path in evidence_folder.iterdir()) == [name]


@pytest.mark.parametrize(("data", "filename"), [
    (GIF, "shot.png"), (b"<html><script>alert(1)</script></html>", "shot.png"),
    (b"%PDF-1.4", "shot.jpg"), (b"", "empty.png"),
])
def test_anything_but_png_jpeg_or_webp_is_refused(app, session, make_manager, make_rep,
                                                  make_account, login_as, evidence_folder, data,
                                                  filename):
    account = make_account(owner=make_rep())
    client = login_as(make_manager())
    response = post_image(client, account, data, filename)
    assert response.status_code == 422
    assert incident_count(session) == 0
    assert not evidence_folder.exists() or not any(evidence_folder.iterdir())


def test_a_screenshot_over_the_limit_is_refused(app, session, make_manager, make_rep,
                                                make_account, login_as, evidence_folder):
    account = make_account(owner=make_rep())
    client = login_as(make_manager())
    too_big = PNG + b"\x00" * (MAX_EVIDENCE_BYTES - len(PNG) + 1)
    response = post_image(client, account, too_big, "big.png")
    assert response.status_code == 422
    assert "at most 4 MB" in response.get_data(as_text=True)
    # Past the app's request limit the upload is refused before it is read: 413.
    huge = PNG + b"\x00" * app.config["MAX_CONTENT_LENGTH"]
    refused = post_image(client, account, huge, "huge.png")
    assert refused.status_code == 413
    page = refused.get_data(as_text=True)
    assert "choose a smaller file" in page and "remove columns" not in page
    assert 'href="/manage/accountability">Open the page again</a>' in page
    assert incident_count(session) == 0
    assert not evidence_folder.exists() or not any(evidence_folder.iterdir())


def test_a_screenshot_is_served_safely_to_management_and_its_rep_only(
        app, session, make_manager, make_admin, make_rep, make_account, clock, login_as):
    rep = make_rep()
    account = make_account(owner=rep)
    manager = make_manager()
    client = login_as(manager)
    assert post_image(client, account, PNG, "shot.png").status_code == 303
    incident = session.scalars(select(AccountabilityIncident)).one()
    url = f"/accountability/incidents/{incident.id}/evidence"
    assert url in client.get("/manage/accountability").get_data(as_text=True)
    for viewer in (manager, make_admin(), rep):
        viewer_client = app.test_client()
        login(viewer_client, viewer)
        response = viewer_client.get(url)
        assert response.status_code == 200, viewer.role
        assert response.get_data() == PNG
        assert response.mimetype == "image/png"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Disposition"].startswith("inline")
        assert "no-store" in response.headers["Cache-Control"]
    stranger = app.test_client()
    login(stranger, make_rep())
    assert stranger.get(url).status_code == 404
    anonymous = app.test_client().get(url)
    assert anonymous.status_code == 302 and "/login" in anonymous.location
    # An incident with a link only has no file to serve.
    other = log(session, manager, make_account(owner=rep), clock)
    assert client.get(f"/accountability/incidents/{other.id}/evidence").status_code == 404


def test_a_stored_name_that_is_not_a_hash_is_never_served(session, make_manager, make_rep,
                                                          make_account, clock, evidence_folder):
    incident = log(session, make_manager(), make_account(owner=make_rep()), clock)
    evidence_folder.mkdir(parents=True)
    (evidence_folder / "secret.png").write_bytes(PNG)
    for name in ("secret.png", "../secret.png", "/etc/passwd", "a" * 64 + ".svg"):
        incident.evidence_file = name
        assert accountability.evidence_file(evidence_folder, incident) is None


# --- page area and ad type -------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "message"), [
    ({"page_area": "sidebar"}, "Choose one of the listed options."),
    ({"page_area": ""}, "Choose one of the listed options."),
    ({"ad_type": "job_post"}, "Choose one of the listed options."),  # older incidents keep it
    ({"ad_type": "popup"}, "Choose one of the listed options."),
])
def test_page_area_and_ad_type_must_be_offered_values(app, session, make_manager, make_rep,
                                                      make_account, login_as, changes, message):
    account = make_account(owner=make_rep())
    client = login_as(make_manager())
    response = client.post("/manage/accountability/log", data=form(account, **changes))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert incident_count(session) == 0


def test_page_area_and_ad_type_are_stored_and_shown(app, session, make_manager, make_rep,
                                                    make_account, clock, login_as):
    rep = make_rep()
    manager = make_manager()
    client = login_as(manager)
    response = client.post("/manage/accountability/log", data=form(
        make_account(owner=rep), page_area="special_section", ad_type="text"))
    assert response.status_code == 303
    incident = session.scalars(select(AccountabilityIncident)).one()
    assert (incident.page_area, incident.ad_type) == ("special_section", "text")
    page = client.get("/manage/accountability").get_data(as_text=True)
    assert "Special section" in page and "Text ad" in page
    with pytest.raises(InvalidRequest, match="where the ad ran"):
        log(session, manager, make_account(owner=rep), clock, page_area="footer")
    reload(session)
    with pytest.raises(InvalidRequest, match="logo, banner or text"):
        log(session, manager, make_account(owner=rep), clock, ad_type="job_post")
    reload(session)
    legacy = log(session, manager, make_account(owner=rep), clock)
    legacy.ad_type = "job_post"  # as stored before the handbook's kinds
    session.commit()
    assert "Job post" in client.get("/manage/accountability").get_data(as_text=True)


# --- due dates and overdue -------------------------------------------------------------------

def test_a_logged_incident_is_due_the_configured_days_after_it_was_logged(
        app, session, make_manager, make_rep, make_account, clock, login_as):
    rep = make_rep()
    client = login_as(make_manager())
    assert client.post("/manage/accountability/log",
                       data=form(make_account(owner=rep))).status_code == 303
    first = session.scalars(select(AccountabilityIncident)).one()
    assert first.explanation_due_at == clock() + timedelta(days=7)
    app.config["ACCOUNTABILITY_EXPLANATION_DAYS"] = 3
    assert client.post("/manage/accountability/log",
                       data=form(make_account(owner=rep))).status_code == 303
    reload(session)
    second = session.scalars(select(AccountabilityIncident)
                             .where(AccountabilityIncident.id != first.id)).one()
    assert second.explanation_due_at == clock() + timedelta(days=3)


def test_imported_incidents_are_due_from_their_sighting_and_show_overdue(
        app, session, make_admin, make_manager, make_rep, make_account, clock, login_as,
        monkeypatch):
    rep = make_rep(username="lina", name="李娜")
    fresh, old = make_account(owner=rep, name="新鲜公司"), make_account(owner=rep, name="逾期公司")
    data = incidents_csv(
        f"INC-1,{fresh.external_id},lina,51job.com,2026-02-28,文字广告,专题,https://51job.com/x",
        f"INC-2,{old.external_id},lina,51job.com,2026-02-10,logo,首页,")
    result = import_file(session, make_admin(), "incidents", "incidents.csv", data,
                         valid_rows_only=False, now=clock())
    assert result.status == "imported", result.problems
    reload(session)
    by_id = {incident.external_id: incident
             for incident in session.scalars(select(AccountabilityIncident))}
    # 2026-02-28 local midnight is 2026-02-27 16:00 UTC; seven days later.
    assert by_id["INC-1"].explanation_due_at == datetime(2026, 3, 6, 16, 0, tzinfo=UTC)
    assert by_id["INC-2"].explanation_due_at == datetime(2026, 2, 16, 16, 0, tzinfo=UTC)
    assert (by_id["INC-1"].page_area, by_id["INC-1"].ad_type,
            by_id["INC-1"].evidence_url) == ("special_section", "text", "https://51job.com/x")
    assert accountability.is_overdue(by_id["INC-2"], clock())
    assert not accountability.is_overdue(by_id["INC-1"], clock())

    def overdue_rows(page: str) -> set[str]:
        rows = re.findall(r'<(?:tr|section class="card") id="incident-\d+">(.*?)</(?:tr|section)>',
                          page, re.S)
        return {name for row in rows for name in ("新鲜公司", "逾期公司")
                if name in row and ">Overdue<" in row}

    manager_page = login_as(make_manager()).get("/manage/accountability").get_data(as_text=True)
    assert overdue_rows(manager_page) == {"逾期公司"}
    inbox = app.test_client()
    login(inbox, rep)
    assert overdue_rows(inbox.get("/my/accountability").get_data(as_text=True)) == {"逾期公司"}

    monkeypatch.setenv("BIDHUB_ACCOUNTABILITY_EXPLANATION_DAYS", "2")
    third = make_account(owner=rep)
    result = import_file(session, make_admin(), "incidents", "more.csv", incidents_csv(
        f"INC-3,{third.external_id},lina,51job.com,2026-02-28,banner,首页,"),
        valid_rows_only=False, now=clock())
    assert result.status == "imported"
    reload(session)
    assert session.scalars(select(AccountabilityIncident).where(
        AccountabilityIncident.external_id == "INC-3")).one().explanation_due_at == datetime(
        2026, 3, 1, 16, 0, tzinfo=UTC)


# --- the two-weekly report -------------------------------------------------------------------

@pytest.mark.parametrize(("today", "start"), [
    (date(2026, 3, 2), date(2026, 2, 9)),    # a period's second Monday: the one before is done
    (date(2026, 3, 8), date(2026, 2, 9)),    # the last day of a period: it is not over yet
    (date(2026, 3, 9), date(2026, 2, 23)),   # the next Monday: the period just ended
    (date(2026, 2, 23), date(2026, 2, 9)),
])
def test_the_last_complete_period(today, start):
    assert last_complete_period(today) == (start, start + timedelta(days=14))


@pytest.mark.parametrize(("instant", "shown"), [
    (datetime(2026, 3, 8, 15, 59, tzinfo=UTC), ("2026-02-09", "2026-02-22")),  # Sun 23:59 local
    (datetime(2026, 3, 8, 16, 0, tzinfo=UTC), ("2026-02-23", "2026-03-08")),   # Mon 00:00 local
])
def test_the_report_opens_on_the_last_complete_period_by_the_local_clock(
        app, make_manager, clock, login_as, instant, shown):
    clock.set(instant)
    page = login_as(make_manager()).get("/manage/accountability/report").get_data(as_text=True)
    heading = re.search(r"<h1>.*?</h1>", page, re.S).group(0)
    assert shown[0] in heading and shown[1] in heading
    assert "the report opens on the last complete period" in page
    assert "period-not-over" not in page


def test_a_period_not_over_says_so_and_navigation_walks_periods(app, make_manager, login_as):
    client = login_as(make_manager())
    page = client.get("/manage/accountability/report?start=2026-03-02").get_data(as_text=True)
    assert "period-not-over" in page
    assert "start=2026-02-09" in page and "start=2026-03-09" in page
    assert 'href="/manage/accountability/report"' in page  # back to the last complete period


@pytest.fixture
def report_world(session, make_manager, make_rep, make_account, make_branch, clock):
    """Incidents in the period 2026-02-09 .. 02-22 (and one outside), for two reps in two
    branches; the clock then stands at Monday 2026-03-02."""
    manager = make_manager()
    beijing, shanghai = make_branch("BJ", "Beijing"), make_branch("SH", "Shanghai")
    wang, li = make_rep(name="王伟", branch=beijing), make_rep(name="李娜", branch=shanghai)
    start = clock()
    clock.set(datetime(2026, 2, 10, 2, 0, tzinfo=UTC))

    def sighting(rep, branch, *, explain=False, outcome=None):
        incident = log(session, manager, make_account(owner=rep, branch=branch), clock)
        if explain:
            explain_incident(session, rep, incident.id, explanation=EXPLANATION, now=clock())
        if outcome:
            reload(session)
            version = session.get(AccountabilityIncident, incident.id).version
            resolve_incident(session, manager, incident.id, outcome=outcome, note="Noted.",
                             expected_version=version, now=clock())
        return incident

    sighting(wang, beijing, explain=True, outcome="accepted")
    sighting(wang, beijing, explain=True, outcome="upheld")
    sighting(wang, shanghai)  # a Shanghai account held by a Beijing rep: counts for Shanghai
    sighting(li, shanghai, explain=True)
    clock.set(datetime(2026, 2, 20, 2, 0, tzinfo=UTC))
    sighting(li, shanghai)
    clock.set(datetime(2026, 2, 23, 2, 0, tzinfo=UTC))
    sighting(li, shanghai)  # the next period
    clock.set(start)
    return {"wang": wang, "li": li}


def test_the_report_totals_per_rep_and_per_branch(session, report_world, clock):
    report = accountability.two_weekly_report(
        session, datetime(2026, 2, 8, 16, 0, tzinfo=UTC), datetime(2026, 2, 22, 16, 0, tzinfo=UTC),
        now=clock())
    reps = {rep.display_name: totals.counts() for rep, totals in report.by_rep}
    # (logged, explained, accepted, upheld, overdue); due 7 days after logging, now 03-02.
    assert reps == {"王伟": (3, 2, 1, 1, 1), "李娜": (2, 1, 0, 0, 1)}
    branches = {branch.code: totals.counts() for branch, totals in report.by_branch}
    assert branches == {"BJ": (2, 2, 1, 1, 0), "SH": (3, 1, 0, 0, 2)}
    assert report.total.counts() == (5, 3, 1, 1, 2)
    assert [name for name, _ in sorted(reps.items())] == [rep.display_name
                                                         for rep, _ in report.by_rep]


def test_incidents_imported_decided_count_as_explained_and_stop_counting_days(
        app, session, make_admin, make_manager, make_rep, make_account, clock, login_as):
    """A CRM file brings incidents already explained or decided, with no day for either: the
    report counts their explanations, and their days open are unknown, not still running."""
    rep = make_rep(username="lina", name="李娜")
    accounts = [make_account(owner=rep) for _ in range(5)]
    header = "事件编号,客户编号,销售,竞争对手网站,发现日期,广告类型,广告位置,状态,说明\r\n"
    rows = [("INC-1", "已说明", "客户在我方的合同下月续签。"),
            ("INC-2", "已接受", "广告是对方集团投放的，与本分公司无关。"),
            ("INC-3", "成立", "确实未及时跟进。"),
            ("INC-4", "成立", ""),
            ("INC-5", "待说明", "")]
    data = (header + "".join(
        f"{external_id},{account.external_id},lina,51job.com,2026-02-10,横幅,首页,{status},"
        f"{text}\r\n" for (external_id, status, text), account in zip(rows, accounts, strict=True))
    ).encode("utf-8")
    result = import_file(session, make_admin(), "incidents", "incidents.csv", data,
                         valid_rows_only=False, now=clock())
    assert result.status == "imported", result.problems
    report = accountability.two_weekly_report(
        session, datetime(2026, 2, 8, 16, 0, tzinfo=UTC), datetime(2026, 2, 22, 16, 0, tzinfo=UTC),
        now=clock())
    # (logged, explained, accepted, upheld, overdue): INC-4 was upheld unexplained, and INC-5
    # still waits, past its due date (02-17 + 7 days local, the clock stands at 03-02).
    assert report.total.counts() == (5, 3, 1, 2, 2)
    days = {row.incident.external_id: row.days_open for row in report.rows}
    assert days == {"INC-1": 20, "INC-2": None, "INC-3": None, "INC-4": None, "INC-5": 20}

    client = login_as(make_manager())
    page = client.get("/manage/accountability/report?start=2026-02-09",
                      headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    cells = {external_id: re.search(
        rf'<tr id="incident-{incident_id}">.*?<td class="num">(.*?)</td>', page, re.S).group(1)
        for external_id, incident_id in ((row.incident.external_id, row.incident.id)
                                         for row in report.rows)}
    assert "处理日期未知" in cells["INC-2"] and ">—<" in cells["INC-2"]
    assert cells["INC-1"].strip() == "20"


def page_totals(page: str, section: str) -> list[list[str]]:
    table = re.search(rf'id="{section}">(.*?)</table>', page, re.S).group(1)
    return [[unescape(re.sub(r"<[^>]+>", "", cell)).strip()
             for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)][1:]  # without the header


def test_the_csv_has_the_same_rows_and_totals_as_the_page(app, report_world, make_manager,
                                                          login_as):
    client = login_as(make_manager())
    page = client.get("/manage/accountability/report").get_data(as_text=True)  # 02-09 .. 02-22
    assert "2026-02-22" in re.search(r"<h1>.*?</h1>", page, re.S).group(0)
    response = client.get("/manage/accountability/report.csv")
    assert response.headers["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    blank = rows.index([])
    second = rows.index([], blank + 1)
    incidents, reps, branches = rows[1:blank], rows[blank + 2:second], rows[second + 2:]
    page_ids = re.findall(r'<tr id="incident-(\d+)">', re.search(
        r'id="report-incidents">(.*?)</table>', page, re.S).group(1))
    assert [row[0] for row in incidents] == page_ids and len(page_ids) == 5
    by_rep = page_totals(page, "totals-by-rep")
    by_branch = page_totals(page, "totals-by-branch")
    assert by_rep[-1] == by_branch[-1] == ["All", "5", "3", "1", "1", "2"]
    assert reps == [["Rep", *row] for row in by_rep[:-1]] + [["All", "", *by_rep[-1][1:]]]
    assert branches == ([["Branch", *row] for row in by_branch[:-1]]
                        + [["All", "", *by_branch[-1][1:]]])
    counts = ["Logged", "Explained", "Accepted", "Upheld", "Overdue"]
    assert rows[blank + 1] == ["Totals", "Rep", *counts]
    assert rows[second + 1] == ["Totals", "Branch", *counts]


def test_the_csv_heads_the_branch_totals_with_branch_not_a_persons_name(
        app, report_world, make_manager, login_as):
    """A branch is not a person: its totals are not headed 姓名 (a person's name)."""
    client = login_as(make_manager())
    for language, rep, branch in (("zh_CN", "KA销售", "分公司"), ("en", "Rep", "Branch")):
        response = client.get(f"/manage/accountability/report.csv?lang={language}")
        rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
        headings = [rows[index + 1] for index, row in enumerate(rows) if row == []]
        assert [heading[1] for heading in headings] == [rep, branch]
        assert "姓名" not in {cell for heading in headings for cell in heading}
        branch_rows = rows[rows.index(headings[1]) + 1:-1]
        assert {row[0] for row in branch_rows} == {branch}
        assert sorted(row[1] for row in branch_rows) == ["Beijing", "Shanghai"]


def test_the_totals_list_reps_and_branches_in_pinyin_order(
        app, session, make_manager, make_rep, make_account, make_branch, clock, login_as):
    """As the menus list them (domain.collation): code point order would be 张 李 王 陈, and
    by code 北京 广州 总部 上海."""
    manager = make_manager()
    branches = []
    for code, name, name_zh in (("SH", "Shanghai", "上海"), ("HQ", "Headquarters", "总部"),
                                ("GZ", "Guangzhou", "广州"), ("BJ", "Beijing", "北京")):
        branch = make_branch(code, name)
        branch.name_zh = name_zh
        branches.append(branch)
    session.commit()
    start = clock()
    clock.set(datetime(2026, 2, 10, 2, 0, tzinfo=UTC))
    for branch, name in zip(branches, ("张伟", "李娜", "王芳", "陈静"), strict=True):
        log(session, manager, make_account(owner=make_rep(name=name, branch=branch),
                                           branch=branch), clock)
    clock.set(start)
    client = login_as(manager)
    page = client.get("/manage/accountability/report",
                      headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert [row[0] for row in page_totals(page, "totals-by-rep")[:-1]] == [
        "陈静", "李娜", "王芳", "张伟"]
    assert [row[0] for row in page_totals(page, "totals-by-branch")[:-1]] == [
        "北京", "广州", "上海", "总部"]
    page = client.get("/manage/accountability/report").get_data(as_text=True)
    assert [row[0] for row in page_totals(page, "totals-by-branch")[:-1]] == [
        "Beijing", "Guangzhou", "Shanghai", "Headquarters"]


def test_a_mistyped_setting_stops_start_up(app_config):
    from bidhub import create_app

    with pytest.raises(ValueError, match="ACCOUNTABILITY_EXPLANATION_DAYS"):
        create_app({**app_config, "ACCOUNTABILITY_EXPLANATION_DAYS": "seven"})
