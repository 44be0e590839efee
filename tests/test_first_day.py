"""A department's first day, from an empty database, through the README's commands and pages.

`bidhub init`, the first admin (`bidhub create-user`), branches (`bidhub import branches`),
then the department's own CRM exports as they are (tests/data/first_day: headers unlike the
samples, a reps file without usernames in GBK, amounts in 万元, an Excel workbook), mapped on
the web for one file and with --map / --mapping on the command line for the others; then a
manager created on the admin page opens a round, and a rep signs in with the username made from
their employee id and bids in it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bidhub.models import (
    Account,
    AccountabilityIncident,
    Bid,
    Branch,
    Filing,
    ImportMapping,
    Listing,
    MonthlyForecast,
    Opportunity,
    Round,
    RoundStatus,
    User,
)
from tests.conftest import release_on_round_page, reload

DATA = Path(__file__).resolve().parent / "data" / "first_day"
ADMIN_PASSWORD = "first day admin passphrase"


def local(instant) -> str:
    return instant.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M")


def sign_in(app, username: str, password: str):
    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client, response


def replace_temporary_password(app, username: str, temporary: str, own: str):
    """Sign in with a password an admin set, which leads to the password form first; replace
    it, and sign in again with one's own: the client and that sign-in's answer."""
    client, response = sign_in(app, username, temporary)
    assert response.location == "/password"
    response = client.post("/password", data={
        "current_password": temporary, "new_password": own, "confirm": own})
    assert response.status_code == 302
    return sign_in(app, username, own)


def cli(runner, *args: str, exit_code: int = 0) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == exit_code, result.output
    return result.output


def mapping_form(page: str) -> dict[str, str]:
    """The mapping step's selects as the browser posts them, with the suggested fields."""
    form = {}
    for name, options in re.findall(
            r'<select id="[^"]+" name="(column-\d+)">(.*?)</select>', page, re.DOTALL):
        chosen = re.search(r'<option value="([^"]*)" selected', options)
        form[name] = chosen.group(1) if chosen else ""
    return form


def test_a_department_starts_from_an_empty_database(app, session, clock, tmp_path):
    app.config["IMPORT_UPLOAD_FOLDER"] = str(tmp_path / "uploads")
    runner = app.test_cli_runner()
    for table in (User, Branch, Account):
        assert session.scalar(select(func.count()).select_from(table)) == 0

    # 1. The database and the first admin.
    assert "Database ready." in cli(runner, "init")
    cli(runner, "create-user", "--username", "admin", "--name", "管理员", "--role", "admin",
        "--password", ADMIN_PASSWORD)

    # 2. Branches, from a file (code, name, Chinese name).
    out = cli(runner, "import", "branches", str(DATA / "branches.csv"), "--by", "admin")
    assert "imported" in out and "added 2" in out

    # 3. Reps on the web: GBK, no username column, branches by name; the mapping step.
    admin_client, _ = sign_in(app, "admin", ADMIN_PASSWORD)
    response = admin_client.post("/admin/imports/", data={
        "kind": "reps", "file": ((DATA / "reps.csv").open("rb"), "reps.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 303 and "/admin/imports/map?token=" in response.location
    step = admin_client.get(response.location).get_data(as_text=True)
    assert "r1001" in step  # the username rule is stated on the page
    form = mapping_form(step)
    assert sorted(form.values()) == ["branch", "external_id", "hire_date", "name", "status"]
    response = admin_client.post(response.location, data=form)
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    report = admin_client.get(response.location).get_data(as_text=True)
    assert "made from their employee ids" in report
    reload(session)
    reps = {user.username: user for user in session.scalars(
        select(User).where(User.external_id.is_not(None)))}
    assert set(reps) == {"s001", "s002", "s003", "s004"}
    assert reps["s003"].branch.code == "SH" and not reps["s004"].is_active

    # 4. Accounts from an Excel workbook, amounts in 万元, with a mapping file.
    out = cli(runner, "import", "accounts", str(DATA / "accounts.xlsx"), "--by", "admin",
              exit_code=1)
    assert "--map" in out and "[columns]" in out  # a mapping is needed: it is suggested
    out = cli(runner, "import", "accounts", str(DATA / "accounts.xlsx"), "--by", "admin",
              "--mapping", str(DATA / "accounts.toml"))
    assert "added 5" in out
    reload(session)
    accounts = {account.external_id: account for account in session.scalars(select(Account))}
    assert accounts["KA-001"].annual_value_yuan == 1_200_000
    assert accounts["KA-002"].annual_value_yuan == 3_505_000
    assert accounts["KA-002"].executive_sponsor == "president"
    assert accounts["KA-003"].branch.code == "SH" and accounts["KA-001"].owner.username == "s001"
    assert session.scalar(select(func.count()).select_from(Filing)) == 3  # first owners filed

    # 5. Opportunities, forecasts and incidents with --map flags.
    out = cli(runner, "import", "opportunities", str(DATA / "opportunities.csv"), "--by",
              "admin", "--map", "销售工号=rep", "--map", "商机金额(万元)=amount_yuan",
              "--map", "销售阶段=stage")
    assert "added 4" in out
    out = cli(runner, "import", "forecasts", str(DATA / "forecasts.csv"), "--by", "admin",
              "--map", "销售编号=rep", "--map", "预测金额(万元)=forecast_yuan",
              "--map", "实际完成(万元)=actual_yuan")
    assert "added 3" in out
    out = cli(runner, "import", "incidents", str(DATA / "incidents.csv"), "--by", "admin",
              "--map", "销售编号=rep", "--map", "竞品网站=competitor_site",
              "--map", "广告形式=ad_type", "--map", "处理状态=status")
    assert "added 1" in out
    reload(session)
    assert session.scalars(select(Opportunity).where(
        Opportunity.external_id == "OPP-02")).one().amount_yuan == 500_000
    assert set(session.scalars(select(MonthlyForecast.actual_yuan))) == {280_000, None, 215_000}
    assert session.scalar(select(func.count()).select_from(AccountabilityIncident)) == 1
    assert session.scalar(select(func.count()).select_from(ImportMapping)) == 5

    # 6. The admin creates a manager and gives a rep a password, on the admin pages.
    branch_sh = session.scalars(select(Branch).where(Branch.code == "SH")).one()
    response = admin_client.post("/admin/users/new", data={
        "username": "zhou", "display_name": "周经理", "password": "manager passphrase one",
        "role": "ka_manager", "branch_id": str(branch_sh.id), "hired_on": "2020-01-06"})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    rep = reps["s001"]
    response = admin_client.post(f"/admin/users/{rep.id}/password",
                                 data={"new_password": "temporary passphrase 1"})
    assert response.status_code == 303

    # 7. The manager replaces the password the admin chose, then opens a round with two
    # accounts nobody holds.
    manager_client, response = replace_temporary_password(
        app, "zhou", "manager passphrase one", "zhou's own passphrase")
    assert response.location == "/manage"
    deadline = clock() + timedelta(days=3)
    response = manager_client.post("/manage/rounds/new", data={
        "title": "第一轮客户竞标", "branch_id": "0", "opens_at": local(clock()),
        "closes_at": local(deadline)})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    reload(session)
    round_ = session.scalars(select(Round)).one()
    for external_id in ("KA-004", "KA-005"):
        response = release_on_round_page(manager_client, round_.id, {
            "account": external_id, "reason": "other", "note": "首次上线，未分配客户",
            "review_text": ""})
        assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    response = manager_client.post(f"/manage/rounds/{round_.id}/publish",
                                   data={"version": str(round_.version)})
    assert response.status_code == 303
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.PUBLISHED

    # 8. The rep signs in with the generated username, replaces the temporary password, bids.
    rep_client, response = replace_temporary_password(
        app, "s001", "temporary passphrase 1", "wang fang passphrase")
    assert response.location == "/rounds"
    page = rep_client.get(f"/rounds/{round_.id}").get_data(as_text=True)
    assert "上海申城零售有限公司" in page
    listing = session.scalars(select(Listing).join(Account).where(
        Account.external_id == "KA-004")).one()

    def bid():
        return rep_client.post(f"/listings/{listing.id}/bid", data={
            "account_plan": "Grow the retail group's recruitment spend across Shanghai stores.",
            "committed_revenue_yuan": "500000",
            "visit_plan": "Meet the HR director and the purchaser in the first week.",
            "submission_key": "first-day-bid"})

    response = bid()
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    reload(session)
    placed = session.scalars(select(Bid).where(Bid.rep_id == rep.id)).one()
    assert placed.listing_id == listing.id
    # The deadline is the server's (the injected clock): at it, a bid is refused.
    clock.set(deadline)
    late = rep_client.post(f"/listings/{listing.id}/bid", data={
        "account_plan": "A second try after the deadline has passed, refused.",
        "committed_revenue_yuan": "500000", "visit_plan": "Too late to visit anyone now.",
        "submission_key": "late-bid"})
    assert late.status_code in (403, 409, 422)
    reload(session)
    assert session.scalar(select(func.count()).select_from(Bid)) == 1
