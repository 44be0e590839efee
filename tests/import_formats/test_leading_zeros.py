"""Employee ids that differ only in leading zeros: Excel drops them when it opens a CSV
(001234 becomes 1234), and an earlier workbook may have given the bare number. A file naming a
rep so is read as the one rep bidhub has under that id, with a warning saying which; where two
reps could be meant, or the reps file names another person, nothing is guessed."""

from __future__ import annotations

from sqlalchemy import select

from bidhub.models import Account, AccountabilityIncident, Opportunity, User
from tests.conftest import reload

ROSTER = "员工编号,用户名,姓名,分公司,入职日期,状态\n"
ACCOUNTS = "客户编号,客户名称,行业,所有制,分公司,年度金额,所属销售\n"


def csv(text: str) -> bytes:
    return text.encode("utf-8")


def stored_reps(session) -> list[tuple[str, str, str]]:
    reload(session)
    return sorted(tuple(row) for row in session.execute(
        select(User.external_id, User.username, User.display_name).where(User.role == "rep")))


def warned(result) -> list[tuple[int, str, str, str]]:
    return [(problem.row, problem.column, problem.value, str(problem.reason))
            for problem in result.warnings]


def test_a_file_naming_an_owner_without_leading_zeros_names_the_rep(session, branches,
                                                                    run_import):
    result = run_import("reps", csv(ROSTER + "001234,zhaolei,赵磊,BJ,2020-01-01,在职\n"),
                        "花名册.csv")
    assert (result.status, result.added) == ("imported", 1)
    result = run_import("accounts", csv(
        ACCOUNTS + "KA-1,甲公司,互联网,民营,BJ,1200000,1234\n"
        "KA-2,乙公司,能源,国有,BJ,350000,1234\n"), "客户.csv")
    assert (result.status, result.added, result.problems) == ("imported", 2, [])
    assert warned(result) == [(2, "owner", "1234", "Read as 赵磊, employee id 001234: the ids "
                               "differ only in leading zeros, which Excel drops when it opens a "
                               "CSV.")]
    reload(session)
    rep_id = session.scalars(select(User.id).where(User.username == "zhaolei")).one()
    assert set(session.scalars(select(Account.owner_id))) == {rep_id}
    result = run_import("opportunities", csv(
        "商机编号,客户编号,销售,金额,阶段,创建日期\nOPP-1,KA-1,1234,300000,商务谈判,2026-01-05\n"),
        "商机.csv")
    assert (result.status, result.added, result.problems) == ("imported", 1, [])
    reload(session)
    assert session.scalars(select(Opportunity.rep_id)).one() == rep_id


def test_a_roster_giving_the_padded_id_updates_the_rep_stored_bare(session, branches,
                                                                  run_import):
    run_import("reps", csv(ROSTER + "1234,zhaolei,赵磊,BJ,2020-01-01,在职\n"), "花名册.csv")
    result = run_import("reps", csv(ROSTER + "001234,zhaolei,赵磊,SH,2020-01-01,在职\n"),
                        "花名册.csv")
    assert (result.status, result.added, result.updated, result.problems) == (
        "imported", 0, 1, [])
    assert [(row, column, value) for row, column, value, _ in warned(result)] == [
        (2, "external_id", "001234")]
    assert stored_reps(session) == [("1234", "zhaolei", "赵磊")]


def test_another_person_under_a_padded_id_is_not_taken_for_the_rep(session, branches,
                                                                   run_import):
    """Given with another username (or, in a file without usernames, another name), an id
    that differs only in leading zeros is another person's: a new rep, with a warning that
    names the rep it was not taken for, in case the file is wrong."""
    run_import("reps", csv(ROSTER + "1234,zhaolei,赵磊,BJ,2020-01-01,在职\n"), "花名册.csv")
    result = run_import("reps", csv(ROSTER + "001234,qianli,钱力,BJ,2021-01-01,在职\n"),
                        "花名册.csv")
    assert (result.status, result.added) == ("imported", 1)
    assert [(warning.row, warning.column, warning.value, str(warning.reason))
            for warning in result.warnings] == [
        (2, "external_id", "001234", "Read as a new rep: 赵磊's employee id 1234 differs from "
         "this one only in leading zeros, which Excel drops, but the username differs. If they "
         "are one person, correct the file and import it again.")]
    result = run_import("reps", csv("员工编号,姓名,分公司\n0001234,孙明,BJ\n"), "花名册.csv")
    assert (result.status, result.added, result.warnings) == ("imported", 1, [])
    assert stored_reps(session) == [("0001234", "0001234", "孙明"), ("001234", "qianli", "钱力"),
                                    ("1234", "zhaolei", "赵磊")]


def test_an_id_two_reps_could_be_is_not_guessed(session, branches, run_import):
    run_import("reps", csv(ROSTER + "01234,zhaolei,赵磊,BJ,2020-01-01,在职\n"
                           "001234,qianli,钱力,BJ,2021-01-01,在职\n"), "花名册.csv")
    result = run_import("accounts", csv(ACCOUNTS + "KA-1,甲公司,互联网,民营,BJ,1200000,1234\n"),
                        "客户.csv")
    assert result.status == "refused"
    assert [(problem.row, problem.column, str(problem.reason)) for problem in result.problems] == [
        (2, "owner", "No rep with this employee id, username or name.")]
    reload(session)
    assert session.scalars(select(Account)).all() == []


def test_a_username_written_as_given_comes_before_an_id_without_its_zeros(session, branches,
                                                                       run_import):
    run_import("reps", csv(ROSTER + "R-9,1234,钱力,BJ,2021-01-01,在职\n"
                           "001234,zhaolei,赵磊,BJ,2020-01-01,在职\n"), "花名册.csv")
    result = run_import("accounts", csv(ACCOUNTS + "KA-1,甲公司,互联网,民营,BJ,1200000,1234\n"),
                        "客户.csv")
    assert (result.status, result.added, result.warnings) == ("imported", 1, [])
    reload(session)
    owner = session.scalars(select(User.username).join(Account, Account.owner_id == User.id)).one()
    assert owner == "1234"


# Customer numbers lose their leading zeros the same way.

INCIDENTS = "事件编号,客户编号,销售,竞争对手网站,发现日期,广告类型,页面位置,证据链接,状态,说明\n"


def stored_accounts(session) -> list[tuple[str, str, int]]:
    reload(session)
    return sorted(tuple(row) for row in session.execute(
        select(Account.external_id, Account.name, Account.annual_value_yuan)))


def test_an_accounts_file_without_leading_zeros_updates_the_account_instead_of_adding_one(
        session, branches, run_import):
    run_import("reps", csv(ROSTER + "R-1,zhaolei,赵磊,BJ,2020-01-01,在职\n"), "花名册.csv")
    result = run_import("accounts", csv(ACCOUNTS + "001234,甲公司,互联网,民营,BJ,1200000,R-1\n"),
                        "客户.csv")
    assert (result.status, result.added) == ("imported", 1)
    result = run_import("accounts", csv(ACCOUNTS + "1234,甲公司,互联网,民营,BJ,1300000,R-1\n"),
                        "客户.csv")
    assert (result.status, result.added, result.updated, result.problems) == (
        "imported", 0, 1, [])
    assert warned(result) == [(2, "external_id", "1234", "Read as 甲公司, account 001234: the ids "
                               "differ only in leading zeros, which Excel drops when it opens a "
                               "CSV.")]
    assert stored_accounts(session) == [("001234", "甲公司", 1300000)]


def test_another_name_under_an_id_without_its_zeros_is_another_account(session, branches,
                                                                       run_import):
    run_import("accounts", csv(ACCOUNTS + "001234,甲公司,互联网,民营,BJ,1200000,\n"), "客户.csv")
    result = run_import("accounts", csv(ACCOUNTS + "1234,乙公司,能源,国有,BJ,350000,\n"),
                        "客户.csv")
    assert (result.status, result.added, result.warnings) == ("imported", 1, [])
    assert stored_accounts(session) == [("001234", "甲公司", 1200000), ("1234", "乙公司", 350000)]


def test_opportunities_and_incidents_naming_an_account_without_its_zeros_name_it(
        session, branches, run_import, clock):
    run_import("reps", csv(ROSTER + "R-1,zhaolei,赵磊,BJ,2020-01-01,在职\n"), "花名册.csv")
    run_import("accounts", csv(ACCOUNTS + "001234,甲公司,互联网,民营,BJ,1200000,R-1\n"
                               "KA-0007,乙公司,能源,国有,BJ,350000,R-1\n"), "客户.csv")
    result = run_import("opportunities", csv(
        "商机编号,客户编号,销售,金额,阶段,创建日期\n"
        "OPP-1,1234,R-1,300000,商务谈判,2026-01-05\nOPP-2,1234,R-1,500000,初步接洽,2026-01-06\n"
        "OPP-3,KA-7,R-1,80000,初步接洽,2026-01-07\n"), "商机.csv")
    assert (result.status, result.added, result.problems) == ("imported", 3, [])
    assert [(row, column, value) for row, column, value, _ in warned(result)] == [
        (2, "account", "1234"), (4, "account", "KA-7")]
    reload(session)
    accounts = dict(session.execute(select(Opportunity.external_id, Account.external_id)
                                    .join(Account, Opportunity.account_id == Account.id)).all())
    assert accounts == {"OPP-1": "001234", "OPP-2": "001234", "OPP-3": "KA-0007"}
    seen = clock().date().isoformat()
    result = run_import("incidents", csv(
        INCIDENTS + f"INC-1,KA-7,R-1,www.rival.example,{seen},logo,首页,,open,\n"), "事件.csv")
    assert (result.status, result.added, result.problems) == ("imported", 1, [])
    assert [(row, column, value) for row, column, value, _ in warned(result)] == [
        (2, "account", "KA-7")]
    reload(session)
    assert session.scalars(select(Account.external_id).join(
        AccountabilityIncident, AccountabilityIncident.account_id == Account.id)).one() == "KA-0007"


def test_an_account_id_two_accounts_could_be_is_not_guessed(session, branches, run_import):
    run_import("reps", csv(ROSTER + "R-1,zhaolei,赵磊,BJ,2020-01-01,在职\n"), "花名册.csv")
    run_import("accounts", csv(ACCOUNTS + "01234,甲公司,互联网,民营,BJ,1200000,R-1\n"
                               "001234,乙公司,能源,国有,BJ,350000,R-1\n"), "客户.csv")
    result = run_import("opportunities", csv(
        "商机编号,客户编号,销售,金额,阶段,创建日期\nOPP-1,1234,R-1,300000,商务谈判,2026-01-05\n"),
        "商机.csv")
    assert result.status == "refused"
    assert [(problem.row, problem.column, str(problem.reason)) for problem in result.problems] == [
        (2, "account", "No account with this external id or name.")]
    result = run_import("accounts", csv(ACCOUNTS + "1234,甲公司,互联网,民营,BJ,1300000,R-1\n"),
                        "客户.csv")
    assert (result.status, result.added, result.warnings) == ("imported", 1, [])


# Two rows of one file naming the same stored rep or account, one without its leading zeros:
# the later would overwrite the earlier, so the file is refused at the later row.

def problems(result) -> list[tuple[int, str, str, str]]:
    return [(problem.row, problem.column, problem.value, str(problem.reason))
            for problem in result.problems]


def test_a_roster_naming_a_rep_twice_with_and_without_zeros_is_refused(session, branches,
                                                                       run_import):
    run_import("reps", csv("员工编号,姓名,分公司,入职日期,状态\n"
                           "001234,赵磊,BJ,2020-01-01,在职\n"), "花名册.csv")
    before = stored_reps(session)
    result = run_import("reps", csv("员工编号,姓名,分公司,入职日期,状态\n"
                                    "001234,赵磊,BJ,2020-01-01,在职\n"
                                    "1234,赵磊,SH,2020-01-01,离职\n"), "花名册.csv")
    assert result.status == "refused"
    assert problems(result) == [(3, "external_id", "1234", "Row 2 names the same one: the ids "
                                 "differ only in leading zeros, which Excel drops; each "
                                 "external_id may appear only once.")]
    assert stored_reps(session) == before
    reload(session)
    assert session.scalars(select(User.status).where(User.role == "rep")).one() == "active"


def test_an_accounts_file_naming_an_account_twice_with_and_without_zeros_is_refused(
        session, branches, run_import):
    """Rows far enough apart to fall in two of the import's batches are told apart too."""
    run_import("reps", csv(ROSTER + "R-1,zhaolei,赵磊,BJ,2020-01-01,在职\n"), "花名册.csv")
    run_import("accounts", csv(ACCOUNTS + "KA-0007,乙公司,能源,国有,BJ,350000,R-1\n"), "客户.csv")
    filler = "".join(f"KA-9{number:05d},丙公司{number},能源,国有,BJ,1000,R-1\n"
                     for number in range(1, 2_500))
    for text in (ACCOUNTS + "KA-7,乙公司,能源,国有,BJ,360000,R-1\n"
                 "KA-0007,乙公司,能源,国有,BJ,370000,R-1\n",
                 ACCOUNTS + "KA-0007,乙公司,能源,国有,BJ,360000,R-1\n" + filler
                 + "KA-007,乙公司,能源,国有,BJ,370000,R-1\n"):
        result = run_import("accounts", csv(text), "客户.csv")
        assert result.status == "refused"
        rows = text.count("\n")
        assert [(row, value) for row, _column, value, _reason in problems(result)] == [
            (3, "KA-0007") if rows == 3 else (rows, "KA-007")]
        assert stored_accounts(session) == [("KA-0007", "乙公司", 350000)]
