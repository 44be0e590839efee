"""Column mapping on import: suggestion, preview, saved mappings, units, warnings, CLI flags."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bidhub.domain.imports import (
    Problem,
    check_mapping,
    exact_mapping,
    header_unit,
    headers_key,
    mapping_needed,
    parse_yuan,
    suggest_mapping,
)
from bidhub.domain.text import Text
from bidhub.models import (
    Account,
    AuditEvent,
    Branch,
    ImportMapping,
    ImportRun,
    MonthlyForecast,
    Opportunity,
    User,
)
from bidhub.services.imports import MappingNeeded, import_file, propose_mapping
from tests.conftest import reload

REPS_HEADERS = "销售编号,姓名,所属分公司,入职日期,在职状态"
REPS_ROWS = ["S1001,王芳,北京,2021-03-15,在职", "S1002,李军,BJ,2019-07-01,在职",
             "S1003,张伟,上海,2020-05-10,离职"]
ACCOUNT_HEADERS = "客户编号,客户名称,行业,企业性质,所属分公司,年度金额(万元),负责销售,高管负责人"
ACCOUNT_ROWS = ["KA-1,北京智联科技,互联网,民营,BJ,120,S1001,",
                "KA-2,华北电力集团,能源,国有企业,北京,350.5,S1002,总裁"]


OPPORTUNITY_HEADERS = "商机编号,客户名称,销售姓名,商机金额,销售阶段,创建日期"


def csv_of(headers: str, rows: list[str], encoding: str = "utf-8-sig") -> bytes:
    return ("\n".join([headers, *rows]) + "\n").encode(encoding)


def xlsx_of(headers: str, rows: list[str]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for record in [headers, *rows]:
        sheet.append(record.split(","))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def suggested(kind: str, headers: str) -> dict[str, str | None]:
    return {match.column: match.field for match in suggest_mapping(kind, headers.split(","))}


# When the opportunities exports below are imported: after the days their deals were opened
# and closed, which a file imported earlier would have refused as days not yet come.
EXPORTED_IN_THE_AUTUMN = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


def imported_by_the_suggestion(session, admin, kind: str, name: str, data: bytes, now):
    """The file imported with the mapping bidhub suggests for it (it must need one)."""
    with pytest.raises(MappingNeeded) as raised:
        import_file(session, admin, kind, name, data, valid_rows_only=False, now=now)
    mapping = {match.column: match.field for match in raised.value.suggestion}
    return import_file(session, admin, kind, name, data, valid_rows_only=False, now=now,
                       mapping=mapping)


@pytest.fixture
def branches(make_branch, session):
    made = {code: make_branch(code, name) for code, name in (("BJ", "Beijing"),
                                                              ("SH", "Shanghai"))}
    made["BJ"].name_zh, made["SH"].name_zh = "北京", "上海"
    session.commit()
    return made


@pytest.fixture
def admin(make_admin):
    return make_admin()


@pytest.fixture
def uploads(app, tmp_path):
    app.config["IMPORT_UPLOAD_FOLDER"] = str(tmp_path / "uploads")
    return tmp_path / "uploads"


def counts(session) -> dict[str, int]:
    reload(session)
    return {table.__name__: session.scalar(select(func.count()).select_from(table))
            for table in (User, Account, ImportRun, ImportMapping, MonthlyForecast, Branch)}


# --- the suggestion -------------------------------------------------------------------------------

def test_synonyms_suggest_the_fields_real_exports_name_differently():
    assert suggested("reps", REPS_HEADERS) == {
        "销售编号": "external_id", "姓名": "name", "所属分公司": "branch",
        "入职日期": "hire_date", "在职状态": "status"}
    assert suggested("accounts", ACCOUNT_HEADERS) == {
        "客户编号": "external_id", "客户名称": "name", "行业": "industry",
        "企业性质": "ownership_type", "所属分公司": "branch",
        "年度金额(万元)": "annual_value_yuan", "负责销售": "owner",
        "高管负责人": "executive_sponsor"}
    english = suggested("reps", "Employee ID,Full Name,Branch,Hire Date,Employment Status")
    assert english == {"Employee ID": "external_id", "Full Name": "name", "Branch": "branch",
                       "Hire Date": "hire_date", "Employment Status": "status"}


def test_a_column_naming_the_account_or_rep_by_name_is_suggested_below_an_id_column():
    # An opportunities export from a CRM names the customer and the rep; the import reads a
    # value no account or rep has as its id as a name only one of them has.
    assert suggested("opportunities", OPPORTUNITY_HEADERS) == {
        "商机编号": "external_id", "客户名称": "account", "销售姓名": "rep",
        "商机金额": "amount_yuan", "销售阶段": "stage", "创建日期": "opened"}
    # With the id as well, the id keeps the field, wherever its column is.
    both = suggested("opportunities", "客户名称,商机编号,客户编号,销售姓名,所属销售,金额,阶段,创建日期")
    assert (both["客户编号"], both["客户名称"]) == ("account", None)
    assert (both["所属销售"], both["销售姓名"]) == ("rep", None)
    assert suggested("accounts", "客户编号,客户名称,销售姓名")["销售姓名"] == "owner"
    assert suggested("incidents", "事件编号,客户名称")["客户名称"] == "account"


def test_full_width_brackets_letters_and_spaces_do_not_matter():
    assert suggested("accounts", "年度金额（万元）,ＫＡ客户编号")["年度金额（万元）"] == (
        "annual_value_yuan")
    assert header_unit("年度金额（万元）") == 10_000 and header_unit("年度金额(元)") == 1
    assert header_unit("年销售额 万元") == 10_000 and header_unit("金额") == 1


def test_the_column_of_the_rep_s_id_keeps_the_field_beside_the_one_of_the_rep_s_name():
    # CRMs head the person's name 负责人 (跟进人, 客户经理, 商机所有人) and give the id beside it.
    for headers in ("商机编号,客户编号,负责人,负责人工号,销售阶段,金额,创建日期",
                    "商机编号,客户编号,负责人工号,负责人,销售阶段,金额,创建日期"):
        both = suggested("opportunities", headers)
        assert (both["负责人工号"], both["负责人"]) == ("rep", None), headers
    english = suggested("opportunities", "Opportunity No,Account,Owner Name,Owner ID,Stage")
    assert (english["Owner ID"], english["Owner Name"]) == ("rep", None)
    # The name column is left out, not offered for a field it only resembles (高管负责人).
    accounts = suggested("accounts", "客户编号,客户名称,负责人,负责人工号,年度金额")
    assert (accounts["负责人工号"], accounts["负责人"]) == ("owner", None)
    # Alone, the name column is suggested: the import reads a name only one rep has.
    assert suggested("opportunities", "商机编号,客户编号,商机所有人,阶段")["商机所有人"] == "rep"
    assert suggested("accounts", "客户编号,客户名称,负责人")["负责人"] == "owner"
    assert suggested("forecasts", "跟进人编号,月份,预测金额")["跟进人编号"] == "rep"


def test_a_planned_or_expected_day_is_not_suggested_as_the_day_something_happened():
    days = suggested("opportunities", "商机编号,客户编号,销售,阶段,金额,创建时间,预计成交日期,"
                                      "计划关闭日期,实际成交日期")
    assert (days["预计成交日期"], days["计划关闭日期"], days["实际成交日期"]) == (
        None, None, "closed")
    assert days["创建时间"] == "opened"
    english = suggested("opportunities", "Deal ID,Account,Rep ID,Stage,Expected Close Date,"
                                         "Close Date")
    assert (english["Expected Close Date"], english["Close Date"]) == (None, "closed")
    assert suggested("reps", "员工编号,姓名,分公司,预计入职日期")["预计入职日期"] is None
    # An expected amount is still the deal's amount.
    assert suggested("opportunities", "商机编号,预计金额(万元)")["预计金额(万元)"] == "amount_yuan"


def test_a_crm_export_with_ids_beside_names_and_expected_days_imports_by_the_suggestion(
        session, branches, admin, make_rep, make_account):
    # Two reps with the same name, as 王芳 often is: only the id column tells them apart. The
    # open deal's 预计成交日期 is no closed date. 谈判/审核 is 销售易's name for negotiation.
    first = make_rep(username="wangfang", name="王芳", branch=branches["BJ"])
    second = make_rep(username="wangfang2", name="王芳", branch=branches["SH"])
    first.external_id, second.external_id = "S1001", "S2001"
    session.commit()
    account = make_account(name="北京智联科技有限公司", branch=branches["BJ"])
    headers = ("商机编号,客户编号,客户名称,负责人,负责人工号,销售阶段,预计金额(万元),预计成交日期,"
               "实际成交日期,创建时间")
    data = xlsx_of(headers, [
        f"OPP-1,{account.external_id},北京智联科技有限公司,王芳,S1001,谈判/审核,120.5,2026-12-20,,"
        "2026-09-01 09:30:00",
        f"OPP-2,{account.external_id},北京智联科技有限公司,王芳,S2001,赢单,80,2026-08-01,2026-08-15,"
        "2026-06-02 14:05:00"])
    # The expected day of the open deal is still to come when the file is imported.
    result = imported_by_the_suggestion(session, admin, "opportunities", "商机.xlsx", data,
                                        EXPORTED_IN_THE_AUTUMN)
    assert (result.status, result.added, result.problems) == ("imported", 2, [])
    stored = session.scalars(select(Opportunity).order_by(Opportunity.external_id)).all()
    # Midnight in Beijing is 16:00 UTC the day before.
    assert [(found.external_id, found.rep_id, found.stage, found.amount_yuan, found.closed_at)
            for found in stored] == [
        ("OPP-1", first.id, "negotiation", 1_205_000, None),
        ("OPP-2", second.id, "won", 800_000, datetime(2026, 8, 14, 16, 0, tzinfo=UTC))]


def test_an_hr_export_giving_the_department_imports_reps_into_its_branch(session, branches,
                                                                           admin, clock):
    # 部门 is suggested for the branch (below a branch column, which keeps it), and the
    # import takes the branch that one level of the path names.
    assert suggested("reps", "工号,姓名,部门,分公司")["分公司"] == "branch"
    assert suggested("reps", "工号,姓名,部门,分公司")["部门"] is None
    data = csv_of("工号,姓名,部门,职位,入职日期,手机,状态",
                  ["S1001,王芳,华北大区/北京分公司/KA一部,大客户经理,2021-03-15,13800000000,在职",
                   "S1002,李军,华东大区 > 上海分公司 > KA二部,大客户经理,2019-07-01,,在职"])
    result = imported_by_the_suggestion(session, admin, "reps", "花名册.csv", data, clock())
    assert (result.status, result.added, result.problems) == ("imported", 2, [])
    reload(session)
    stored = session.scalars(select(User).where(User.external_id.in_(["S1001", "S1002"]))
                             .order_by(User.external_id)).all()
    assert [(rep.display_name, rep.branch.code) for rep in stored] == [("王芳", "BJ"),
                                                                       ("李军", "SH")]


def test_similar_names_are_suggested_and_unlike_ones_are_not():
    matches = {match.column: match for match in suggest_mapping(
        "accounts", ["客户全称名", "年销售总额(万元)", "负责高管人", "备注"])}
    assert matches["客户全称名"].field == "name" and matches["客户全称名"].how == "similar"
    assert matches["年销售总额(万元)"].field == "annual_value_yuan"
    assert matches["负责高管人"].field == "executive_sponsor"
    assert matches["备注"].field is None


def test_one_field_per_column_and_an_exact_name_wins():
    matches = suggest_mapping("reps", ["销售编号", "员工编号", "姓名"])
    fields = [match.field for match in matches]
    assert fields.count("external_id") == 1
    # 员工编号 is the field's accepted header: it keeps the field; 销售编号 is only a synonym.
    assert {match.column: match.field for match in matches}["员工编号"] == "external_id"


def test_files_with_exact_headers_need_no_mapping_and_others_do():
    assert not mapping_needed("reps", ["员工编号", "用户名", "姓名", "分公司", "入职日期", "状态"])
    assert not mapping_needed("reps", ["员工编号", "用户名", "姓名", "分公司", "备用列"])
    assert mapping_needed("reps", REPS_HEADERS.split(","))
    assert mapping_needed("accounts", ACCOUNT_HEADERS.split(","))


def test_a_template_marking_columns_to_fill_still_names_them_exactly():
    assert not mapping_needed("reps", ["*员工编号", "*用户名", "姓名*", "分公司（必填）",
                                       "入职日期(选填)", "【状态】"])
    assert exact_mapping("accounts", ["*客户名称", "客户编号(必填)*"]) == {
        "*客户名称": "name", "客户编号(必填)*": "external_id"}
    # A bracket that says something else is part of the name, as before.
    assert exact_mapping("accounts", ["客户名称(全称)"]) == {}


def test_a_file_with_marked_column_names_imports_without_a_mapping(session, branches, admin,
                                                                    clock):
    data = csv_of("*员工编号,*用户名,*姓名,*分公司,入职日期（选填）,状态（选填）",
                  ["S1001,wangfang,王芳,BJ,2021-03-15,在职"])
    result = import_file(session, admin, "reps", "reps.csv", data, valid_rows_only=False,
                         now=clock())
    assert (result.status, result.added) == ("imported", 1), result.problems
    reload(session)
    rep = session.scalars(select(User).where(User.username == "wangfang")).one()
    assert (rep.display_name, rep.branch.code, rep.hired_on.isoformat()) == (
        "王芳", "BJ", "2021-03-15")


# --- units and amounts ------------------------------------------------------------------------

@pytest.mark.parametrize(("cell", "unit", "yuan"), [
    ("1,200,000", 1, 1_200_000), ("¥1,200,000", 1, 1_200_000), ("￥1,200,000", 1, 1_200_000),
    ("120万", 1, 1_200_000), ("1.2万元", 1, 12_000), ("1.2", 10_000, 12_000),
    ("350.5", 10_000, 3_505_000), ("5000元", 10_000, 5_000), ("120万", 10_000, 1_200_000),
    ("１２０万", 1, 1_200_000), ("12.5", 1_000, 12_500),
])
def test_amounts_in_yuan_and_in_wan(cell, unit, yuan):
    assert parse_yuan(cell, unit) == yuan


@pytest.mark.parametrize("currency", ["¥", "￥", "RMB", "rmb", "CNY", "cny", "ＣＮＹ", "人民币",
                                      "yuan"])
def test_a_currency_a_column_name_may_carry_a_cell_may_carry_too(currency):
    """年度金额(CNY) is read in yuan, so CNY 1,000 is 1,000 yuan as RMB 1000 is."""
    assert header_unit(f"年度金额({currency})") == 1
    assert header_unit(f"年度金额({currency}万元)") == 10_000
    for cell in (f"{currency}1,000", f"{currency} 1,000", f"1,000 {currency}", f"{currency}1000元"):
        assert parse_yuan(cell) == 1_000, cell
    assert parse_yuan(f"{currency} 1.2万") == parse_yuan(f"1.2万元{currency}") == 12_000
    assert parse_yuan(f"{currency} 1.2", 10_000) == 12_000


@pytest.mark.parametrize(("cell", "yuan"), [
    ("1 200 000", 1_200_000), ("1\u00a0200", 1_200), ("¥ 1,200", 1_200), ("120 万", 1_200_000),
    ("1,200,000.00", 1_200_000), ("CNY 1.2 万元", 12_000)])
def test_digits_grouped_by_three_read_with_commas_or_spaces(cell, yuan):
    assert parse_yuan(cell) == yuan


@pytest.mark.parametrize("cell", ["12,00", "1,2345", "1,2,3", "12 00", "1,200 000", "0,5万"])
def test_digits_grouped_otherwise_are_refused_not_read_as_one_number(cell):
    """12,00 may be twelve with a decimal comma; reading it as 1,200 would store 100 times the
    amount."""
    from bidhub.domain.imports import BadValue

    with pytest.raises(BadValue, match="group its digits by three"):
        parse_yuan(cell)


@pytest.mark.parametrize("cell", ["abc", "-5", "1e5", "USD 1,000", "$1,000", "1200.", ".5",
                                  "HK$1000", "1000美元", "CNY-5", "¥¥"])
def test_what_is_no_amount_in_yuan_is_refused(cell):
    from bidhub.domain.imports import BadValue

    with pytest.raises(BadValue):
        parse_yuan(cell)


@pytest.mark.parametrize(("header", "unit"), [
    ("年度金额(万元)", 10_000), ("年度金额（万元）", 10_000), ("年度金额【万元】", 10_000),
    ("年度金额(万)", 10_000), ("年销售额 万元", 10_000), ("年度金额(千元)", 1_000),
    ("年度金额(元)", 1), ("年度金额(人民币)", 1), ("金额（￥）", 1), ("Amount (RMB)", 1),
    ("金额", 1), ("annual value yuan", 1), ("年度金额(含税)", 1),
    ("年度金额(单位:万元)", 10_000), ("年度金额（单位：万元）", 10_000),
    ("年度金额(万元)*", 10_000), ("年度金额(万元人民币)", 10_000), ("年度金额(RMB万元)", 10_000),
    ("年度金额（万元/年）", 10_000), ("年度金额万", 10_000), ("年度金额/万元", 10_000),
    ("年度金额（百万元）", 1_000_000), ("年度金额(亿元)", 100_000_000),
    ("年度金额（万元）（含税）", 10_000), ("年度金额（单位：元）*", 1),
])
def test_units_in_headers_are_read_however_the_header_writes_them(header, unit):
    assert header_unit(header) == unit


@pytest.mark.parametrize("header", ["年度金额(分)", "金额（分）", "年度金额(单位:分)",
                                    "年度金额(人民币分)", "年度金额【分】*", "Amount (fen)"])
def test_a_column_in_fen_is_read_as_fen_not_as_yuan(header):
    """A payment system's 金额(分) holds a hundredth of a yuan per unit: read as yuan, every
    amount would be stored 100 times too large."""
    from bidhub.domain.imports import FEN

    assert header_unit(header) == FEN


@pytest.mark.parametrize(("cell", "yuan"), [
    ("123450", 1_235), ("123449", 1_234), ("123,450", 1_235), ("¥123,450", 1_235),
    ("123450.00", 1_235), ("0", 0), ("49", 0), ("50", 1), ("１２３４５０", 1_235),
    ("120万", 1_200_000), ("1,234元", 1_234), ("214748364749", 2**31 - 1)])
def test_amounts_in_fen_are_stored_in_whole_yuan_rounded_half_up(cell, yuan):
    """A cell that names its own unit (120万, 1,234元) is read in that unit, as in any column."""
    from bidhub.domain.imports import FEN

    assert parse_yuan(cell, FEN) == yuan


@pytest.mark.parametrize(("cell", "reason"), [
    ("12.5", "whole numbers"), ("abc", "Not an amount in fen"), ("-5", "Not an amount in fen"),
    ("12,00", "group its digits by three"), ("214748364750", "Too large"),
    ("9" * 40, "Too large"), ("USD 100", "Not an amount in fen")])
def test_amounts_in_fen_that_are_not_whole_fen_are_refused(cell, reason):
    from bidhub.domain.imports import FEN, BadValue

    with pytest.raises(BadValue, match=reason):
        parse_yuan(cell, FEN)


@pytest.mark.parametrize(("header", "unit"), [
    ("金额(角)", "角"), ("年度金额(cents)", "cents"), ("年度金额（毛）", "毛")])
def test_other_fractions_of_a_yuan_are_refused_not_read_as_yuan(header, unit):
    from bidhub.domain.imports import BadValue

    with pytest.raises(BadValue, match=f"names the unit '{unit}'"):
        header_unit(header)


def test_fen_outside_brackets_is_part_of_a_name_not_a_unit():
    """分摊金额 is an apportioned amount, in yuan."""
    assert header_unit("分摊金额") == 1 and header_unit("分公司年度金额(万元)") == 10_000


@pytest.mark.parametrize(("header", "unit"), [
    ("年度金额(美元)", "美元"), ("年度金额USD", "usd"), ("年度金额(万美元)", "万美元"),
    ("年度金额(万元,含税)", "万元,含税"),
])
def test_a_unit_bidhub_does_not_read_is_refused_naming_the_column(header, unit):
    from bidhub.domain.imports import BadValue

    with pytest.raises(BadValue) as refused:
        header_unit(header)
    assert f"The column '{header}' names the unit '{unit}'" in str(refused.value)
    mapping = {**suggested("accounts", ACCOUNT_HEADERS), "年度金额(万元)": ""}
    headers = ACCOUNT_HEADERS.replace("年度金额(万元)", header)
    check = check_mapping("accounts", headers.split(","),
                          {**mapping, header: "annual_value_yuan"})
    assert not check.usable and header in str(check.errors[0])


@pytest.mark.parametrize("header", ["年度金额（单位：万元）", "年度金额(万元)*", "年度金额(RMB万元)",
                                    "年度金额万", "年度金额（百万元）", "年度金额(亿元)"])
def test_amounts_under_any_unit_header_are_stored_in_yuan(session, branches, admin, clock,
                                                          header):
    import_file(session, admin, "reps", "reps.csv", csv_of(REPS_HEADERS, REPS_ROWS),
                valid_rows_only=False, now=clock(), mapping=suggested("reps", REPS_HEADERS))
    headers = ACCOUNT_HEADERS.replace("年度金额(万元)", header)
    mapping = {**suggested("accounts", ACCOUNT_HEADERS), "年度金额(万元)": "",
               header: "annual_value_yuan"}
    del mapping["年度金额(万元)"]
    result = import_file(session, admin, "accounts", "accounts.csv",
                         csv_of(headers, ["KA-1,北京智联科技,互联网,民营,BJ,1.2,S1001,"]),
                         valid_rows_only=False, now=clock(), mapping=mapping)
    assert result.status == "imported", result.problems
    reload(session)
    unit = header_unit(header)
    assert session.scalar(select(Account.annual_value_yuan)) == 12 * unit // 10
    assert session.get(ImportRun, result.run_id).report["units"] == {"annual_value_yuan": unit}


def test_an_accounts_file_in_fen_stores_whole_yuan_and_says_so(session, branches, admin,
                                                                clock, login_as, uploads):
    import_file(session, admin, "reps", "reps.csv", csv_of(REPS_HEADERS, REPS_ROWS),
                valid_rows_only=False, now=clock(), mapping=suggested("reps", REPS_HEADERS))
    header = "年度金额(分)"
    headers = ACCOUNT_HEADERS.replace("年度金额(万元)", header)
    mapping = {**suggested("accounts", ACCOUNT_HEADERS), header: "annual_value_yuan"}
    del mapping["年度金额(万元)"]
    result = import_file(session, admin, "accounts", "accounts.csv",
                         csv_of(headers, ["KA-1,北京智联科技,互联网,民营,BJ,12345650,S1001,",
                                          "KA-2,上海云帆,制造,国企,BJ,\"1,234,549\",S1001,"]),
                         valid_rows_only=False, now=clock(), mapping=mapping)
    assert result.status == "imported", result.problems
    reload(session)
    assert dict(session.execute(select(Account.external_id, Account.annual_value_yuan)).all()) == {
        "KA-1": 123_457, "KA-2": 12_345}
    assert session.get(ImportRun, result.run_id).report["units"] == {"annual_value_yuan": 0.01}
    report = page_text(login_as(admin).get(f"/admin/imports/{result.run_id}", headers=CHINESE)
                       .get_data(as_text=True))
    assert "年度金额已按分读取，并四舍五入存为整元。" in report


def test_amounts_with_fen_are_stored_rounded_to_yuan_and_the_report_says_so(
        session, branches, admin, clock, login_as, uploads):
    """A CRM's amounts carry fen (1,234,567.89): each is stored in whole yuan, rounded half
    up, and the report says how many in which column; whole amounts are not counted."""
    import_file(session, admin, "reps", "reps.csv", csv_of(REPS_HEADERS, REPS_ROWS),
                valid_rows_only=False, now=clock(), mapping=suggested("reps", REPS_HEADERS))
    headers = ACCOUNT_HEADERS.replace("年度金额(万元)", "年度金额")
    mapping = {**suggested("accounts", ACCOUNT_HEADERS), "年度金额": "annual_value_yuan"}
    del mapping["年度金额(万元)"]
    result = import_file(session, admin, "accounts", "accounts.csv",
                         csv_of(headers, ["KA-1,北京智联科技,互联网,民营,BJ,\"1,234,567.89\",S1001,",
                                          "KA-2,上海云帆,制造,国企,BJ,128000.50,S1001,",
                                          "KA-3,广州恒通,物流,民营,BJ,99000.00,S1001,"]),
                         valid_rows_only=False, now=clock(), mapping=mapping)
    assert result.status == "imported", result.problems
    assert result.rounded == {"annual_value_yuan": 2}
    reload(session)
    assert dict(session.execute(select(Account.external_id, Account.annual_value_yuan)).all()) == {
        "KA-1": 1_234_568, "KA-2": 128_001, "KA-3": 99_000}
    report = page_text(login_as(admin).get(f"/admin/imports/{result.run_id}", headers=CHINESE)
                       .get_data(as_text=True))
    assert "年度金额 中有 2 个金额带有不足一元的部分，已四舍五入存为整元。" in report, report


def test_the_mapping_preview_and_the_import_read_a_rep_merged_down_over_accounts(
        session, branches, admin, clock, login_as, uploads):
    """A roster with the rep's name merged down over the accounts they hold: the preview shows
    the rep on each account, and each account is stored with that owner."""
    from tests.import_formats.conftest import xlsx_of as workbook_of

    import_file(session, admin, "reps", "reps.csv", csv_of(REPS_HEADERS, REPS_ROWS),
                valid_rows_only=False, now=clock(), mapping=suggested("reps", REPS_HEADERS))
    client = login_as(admin)
    records = [ACCOUNT_HEADERS.split(","),
               ["KA-1", "甲公司", "互联网", "民营", "BJ", "1.2", "S1001", ""],
               ["KA-2", "乙公司", "能源", "国有", "BJ", "3.5", "", ""],
               ["KA-3", "丙公司", "物流", "民营", "BJ", "0.8", "", ""]]
    location = upload(client, "accounts", workbook_of(records, merged=["G2:G4"]),
                      "accounts.xlsx").location
    page = client.get(location, headers=CHINESE).get_data(as_text=True)
    preview = page[page.index("<h2>预览</h2>"):]
    assert preview.count("S1001") == 3, preview
    response = client.post(location, data=form_of(page))
    assert response.status_code == 303 and re.search(r"/admin/imports/\d+$", response.location)
    report = page_text(client.get(response.location, headers=CHINESE).get_data(as_text=True))
    assert "向下合并的单元格已按 Excel 的显示，对其覆盖的每一行读取同一个值：负责销售" in report
    reload(session)
    owners = session.execute(select(Account.external_id, User.external_id)
                             .join(User, User.id == Account.owner_id)).all()
    assert sorted(owners) == [("KA-1", "S1001"), ("KA-2", "S1001"), ("KA-3", "S1001")]


def test_the_mapping_step_and_the_report_say_which_rows_the_workbook_hides(
        session, branches, admin, clock, login_as, uploads):
    """A roster filtered in Excel before it was saved: the rows the filter hides are in the
    file and are imported; the mapping step says so before the import, the report after."""
    from tests.import_formats.conftest import saved, xlsx_workbook

    import_file(session, admin, "reps", "reps.csv", csv_of(REPS_HEADERS, REPS_ROWS),
                valid_rows_only=False, now=clock(), mapping=suggested("reps", REPS_HEADERS))
    client = login_as(admin)
    workbook = xlsx_workbook([ACCOUNT_HEADERS.split(","),
                              ["KA-1", "甲公司", "互联网", "民营", "BJ", "1.2", "S1001", ""],
                              ["KA-2", "乙公司", "能源", "国有", "BJ", "3.5", "S1001", ""],
                              ["KA-3", "丙公司", "物流", "民营", "BJ", "0.8", "S1001", ""],
                              ["KA-4", "丁公司", "汽车", "民营", "BJ", "2.0", "S1001", ""]])
    for number in (3, 4):
        workbook.active.row_dimensions[number].hidden = True
    location = upload(client, "accounts", saved(workbook), "accounts.xlsx").location
    page = client.get(location, headers=CHINESE).get_data(as_text=True)
    assert ("列名下方有 2 行在工作簿中被隐藏（手动隐藏、折叠的分组或筛选）。这些行会与其他行一样导入"
            in page_text(page))
    response = client.post(location, data=form_of(page))
    assert response.status_code == 303 and re.search(r"/admin/imports/\d+$", response.location)
    report = page_text(client.get(response.location, headers=CHINESE).get_data(as_text=True))
    assert ("表格中有 2 行在工作簿中被隐藏（手动隐藏、折叠的分组或筛选），已与其他行一样读取：第 3–4 行。"
            in report), report
    english = page_text(client.get(response.location, headers=ENGLISH).get_data(as_text=True))
    assert "2 rows of the table are hidden in the workbook" in english
    reload(session)
    assert session.scalar(select(func.count()).select_from(Account)) == 4


def test_the_mapping_step_says_a_column_in_fen_is_rounded_to_yuan(session, branches, admin,
                                                                  login_as, uploads):
    client = login_as(admin)
    accounts = csv_of("客户编号,客户名称,行业,企业性质,所属分公司,年度金额(分)",
                      ["KA-1,甲公司,互联网,私企,BJ,123450"])
    mapping = client.get(upload(client, "accounts", accounts).location, headers=CHINESE)
    assert "年度金额按分读取，四舍五入存为整元：文件中的 123,450 将存为 1,235 元。" in page_text(
        mapping.get_data(as_text=True))


def test_a_file_whose_amount_column_names_an_unknown_unit_is_not_imported(session, branches,
                                                                        admin, clock):
    from bidhub.domain.errors import InvalidRequest
    from bidhub.domain.imports import RowReader

    header = "annual_value_yuan(美元)"
    text = (f"external_id,name,industry,ownership_type,branch,{header}\n"
            "KA-1,北京智联科技,互联网,民营,BJ,12\n")
    before = counts(session)
    with pytest.raises(InvalidRequest) as refused:
        import_file(session, admin, "accounts", "a.csv", text.encode(), valid_rows_only=False,
                    now=clock(), mapping={header: "annual_value_yuan"})
    assert f"The column '{header}' names the unit '美元'" in str(refused.value)
    assert counts(session) == before
    reader = RowReader("accounts", text.splitlines()[0].split(","), mapping={
        **{name: name for name in ("external_id", "name", "industry", "ownership_type",
                                   "branch")}, header: "annual_value_yuan"})
    assert [(problem.row, str(problem.reason)) for problem in reader.parsed.problems] == [
        (1, str(refused.value))]


# --- the service: mapping needed, given, saved -----------------------------------------------------

def test_a_file_needing_a_mapping_raises_and_writes_nothing(session, branches, admin, clock):
    before = counts(session)
    with pytest.raises(MappingNeeded) as raised:
        import_file(session, admin, "reps", "reps.csv", csv_of(REPS_HEADERS, REPS_ROWS),
                    valid_rows_only=False, now=clock())
    assert {match.column: match.field for match in raised.value.suggestion}["销售编号"] == (
        "external_id")
    assert raised.value.check.usable
    assert counts(session) == before


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "xlsx"])
def test_a_confirmed_mapping_imports_converts_and_is_saved(session, branches, admin, clock,
                                                          encoding):
    mapping = suggested("reps", REPS_HEADERS)
    data = (xlsx_of(REPS_HEADERS, REPS_ROWS) if encoding == "xlsx"
            else csv_of(REPS_HEADERS, REPS_ROWS, encoding))
    name = "reps.xlsx" if encoding == "xlsx" else "reps.csv"
    result = import_file(session, admin, "reps", name, data, valid_rows_only=False,
                         now=clock(), mapping=mapping)
    assert (result.status, result.added, result.rows_total) == ("imported", 3, 3), (
        result.problems)
    assert result.generated_usernames
    reload(session)
    reps = {user.username: user for user in session.scalars(
        select(User).where(User.external_id.is_not(None)))}
    assert set(reps) == {"s1001", "s1002", "s1003"}
    # Branches matched by Chinese name and by code; 离职 read as left.
    assert reps["s1001"].branch.code == "BJ" and reps["s1003"].branch.code == "SH"
    assert reps["s1003"].status == "left" and not reps["s1003"].is_active
    saved = session.scalars(select(ImportMapping)).one()
    assert saved.kind == "reps" and saved.columns == mapping
    assert saved.headers_key == headers_key(REPS_HEADERS.split(","))
    assert saved.saved_by_id == admin.id
    assert session.scalars(select(AuditEvent).where(
        AuditEvent.action == "import_mapping.saved")).one()
    run = session.get(ImportRun, result.run_id)
    assert run.report["generated_usernames"] and run.report["mapping"]["销售编号"] == (
        "external_id")


def test_an_opportunities_export_naming_accounts_and_reps_imports_by_the_suggestion(
        session, branches, admin, make_rep, make_account):
    rep = make_rep(username="wangfang", name="王芳", branch=branches["BJ"])
    account = make_account(name="北京智联科技有限公司", branch=branches["BJ"])
    data = csv_of(OPPORTUNITY_HEADERS, ["OPP-1,北京智联科技有限公司,王芳,120000,谈判,2026-09-01",
                                        "OPP-2,北京智联科技有限公司,王芳,80000,已成交,2026-08-15"],
                  "gbk")
    result = imported_by_the_suggestion(session, admin, "opportunities", "商机.csv", data,
                                        EXPORTED_IN_THE_AUTUMN)
    assert (result.status, result.added, result.problems) == ("imported", 2, [])
    stored = session.scalars(select(Opportunity).order_by(Opportunity.external_id)).all()
    assert [(found.external_id, found.account_id, found.rep_id) for found in stored] == [
        ("OPP-1", account.id, rep.id), ("OPP-2", account.id, rep.id)]


def test_a_saved_mapping_is_used_for_the_same_headers(session, branches, admin, clock):
    import_file(session, admin, "reps", "reps.csv", csv_of(REPS_HEADERS, REPS_ROWS),
                valid_rows_only=False, now=clock(), mapping=suggested("reps", REPS_HEADERS))
    changed = [REPS_ROWS[0].replace("王芳", "王芳芳"), *REPS_ROWS[1:]]
    clock.advance(minutes=5)
    result = import_file(session, admin, "reps", "reps-2.csv", csv_of(REPS_HEADERS, changed),
                         valid_rows_only=False, now=clock())
    assert (result.status, result.updated, result.unchanged) == ("imported", 1, 2)
    assert result.saved_mapping_by == admin.display_name
    assert result.saved_mapping_at is not None
    reload(session)
    # The generated username is kept for reps bidhub already knows.
    assert session.scalars(select(User).where(User.external_id == "S1001")).one().username == (
        "s1001")
    # Another kind with the same headers does not get it.
    with pytest.raises(MappingNeeded):
        import_file(session, admin, "incidents", "x.csv", csv_of(REPS_HEADERS, REPS_ROWS),
                    valid_rows_only=False, now=clock())


def test_units_in_headers_are_converted_to_yuan(session, branches, admin, clock):
    import_file(session, admin, "reps", "reps.csv", csv_of(REPS_HEADERS, REPS_ROWS),
                valid_rows_only=False, now=clock(), mapping=suggested("reps", REPS_HEADERS))
    result = import_file(session, admin, "accounts", "accounts.csv",
                         csv_of(ACCOUNT_HEADERS, ACCOUNT_ROWS), valid_rows_only=False,
                         now=clock(), mapping=suggested("accounts", ACCOUNT_HEADERS))
    assert (result.status, result.added) == ("imported", 2), result.problems
    reload(session)
    values = dict(session.execute(select(Account.external_id, Account.annual_value_yuan)).all())
    assert values == {"KA-1": 1_200_000, "KA-2": 3_505_000}
    account = session.scalars(select(Account).where(Account.external_id == "KA-2")).one()
    assert account.executive_sponsor == "president" and account.branch.code == "BJ"
    assert session.get(ImportRun, result.run_id).report["units"] == {
        "annual_value_yuan": 10_000}


def test_an_unmapped_important_column_must_be_acknowledged(session, branches, admin, clock):
    import_file(session, admin, "reps", "reps.csv", csv_of(REPS_HEADERS, REPS_ROWS),
                valid_rows_only=False, now=clock(), mapping=suggested("reps", REPS_HEADERS))
    mapping = {**suggested("accounts", ACCOUNT_HEADERS), "高管负责人": ""}
    check = check_mapping("accounts", ACCOUNT_HEADERS.split(","), mapping)
    assert [(warning.column, warning.field) for warning in check.warnings] == [
        ("高管负责人", "executive_sponsor")]
    before = counts(session)
    data = csv_of(ACCOUNT_HEADERS, ACCOUNT_ROWS)
    from bidhub.domain.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as refused:
        import_file(session, admin, "accounts", "a.csv", data, valid_rows_only=False,
                    now=clock(), mapping=mapping)
    assert "高管负责人" in str(refused.value) and "executive_sponsor" in str(refused.value)
    assert counts(session) == before
    result = import_file(session, admin, "accounts", "a.csv", data, valid_rows_only=False,
                         now=clock(), mapping=mapping, acknowledged=["高管负责人"])
    assert result.status == "imported" and result.ignored_columns == ["高管负责人"]
    reload(session)
    saved = session.scalars(select(ImportMapping).where(ImportMapping.kind == "accounts")).one()
    assert saved.acknowledged == ["高管负责人"]


def test_the_preview_shows_rows_as_stored_with_problems_per_cell(session, branches):
    rows = [*ACCOUNT_ROWS, "KA-3,坏数据,制造,未知性质,BJ,十万,S1001,"]
    proposal = propose_mapping(session, "accounts", "a.csv", csv_of(ACCOUNT_HEADERS, rows))
    assert proposal.needed and proposal.saved is None and proposal.rows_total == 3
    assert proposal.check.units == {"annual_value_yuan": 10_000}
    first = {cell.field: cell for cell in proposal.preview[0].cells}
    assert first["annual_value_yuan"].value == "1,200,000" and first["annual_value_yuan"].raw == (
        "120")
    assert first["ownership_type"].value == "private"  # shown by its label on the page
    third = {cell.field: cell for cell in proposal.preview[2].cells}
    assert proposal.preview[2].number == 4
    assert isinstance(third["ownership_type"].problem, Text)
    assert "Unknown value" in third["ownership_type"].problem
    assert "Not an amount" in third["annual_value_yuan"].problem
    changed = propose_mapping(session, "accounts", "a.csv", csv_of(ACCOUNT_HEADERS, rows),
                              columns={**proposal.columns, "客户名称": ""})
    assert changed.check.missing == ["name"]


def test_the_preview_counts_no_totals_row_among_the_rows_to_store(session, branches):
    rows = [ACCOUNT_ROWS[0], ",小计,,,,120,,", ACCOUNT_ROWS[1],
            "KA-3,合计科技有限公司,互联网,民营,BJ,80,S1001,", "KA-4,小计,互联网,民营,BJ,1,S1001,",
            "合　计：,,,,,550.5,,", "共计,3家,,,,,,"]
    proposal = propose_mapping(session, "accounts", "a.csv", csv_of(ACCOUNT_HEADERS, rows))
    assert [row.number for row in proposal.preview] == [2, 4, 5, 6]
    assert proposal.rows_total == 4  # a row with an id is a row, whatever its name says
    # Mapped to the id, the names make 小计 a totals row: the count follows the mapping.
    by_name = propose_mapping(session, "accounts", "a.csv", csv_of(ACCOUNT_HEADERS, rows),
                              columns={**proposal.columns, "客户编号": "",
                                       "客户名称": "external_id"})
    assert [row.number for row in by_name.preview] == [2, 4, 5]
    assert by_name.rows_total == 3


@pytest.mark.parametrize("totals", ["Grand total,,,,,470.5,,", "Subtotal,,,,,120,,",
                                    "ＧＲＡＮＤ　ＴＯＴＡＬ,,,,,470.5,,", '"合计 | 2家",,,,,470.5,,',
                                    "合计：2家,,,,,470.5,,", ",Total: 2,,,,470.5,,"])
def test_the_preview_counts_no_totals_row_as_crm_exports_write_it(session, branches, totals):
    rows = [ACCOUNT_ROWS[0], totals, ACCOUNT_ROWS[1], totals]
    proposal = propose_mapping(session, "accounts", "a.csv", csv_of(ACCOUNT_HEADERS, rows))
    assert [row.number for row in proposal.preview] == [2, 4]
    assert proposal.rows_total == 2


def test_the_row_count_is_right_when_a_required_column_is_missing(session, branches, admin,
                                                                  clock):
    result = import_file(session, admin, "reps", "r.csv",
                         csv_of("员工编号,用户名,分公司", ["R1,a,BJ", "R2,b,BJ", ""]),
                         valid_rows_only=False, now=clock())
    assert result.status == "refused" and result.rows_total == 2
    assert session.get(ImportRun, result.run_id).rows_total == 2


def test_generated_usernames_that_collide_are_refused_clearly(session, branches, admin,
                                                              make_manager, clock):
    make_manager(username="s9")
    headers = "员工编号,姓名,分公司"
    result = import_file(session, admin, "reps", "r.csv",
                         csv_of(headers, ["S1,甲,BJ", "s1,乙,BJ", "S9,丙,BJ"]),
                         valid_rows_only=False, now=clock())
    assert result.status == "refused"
    reasons = {(problem.row, problem.column): str(problem.reason)
               for problem in result.problems}
    assert "made from this employee id is also row 2's" in reasons[3, "username"]
    assert "s9, made from the employee id, belongs to another user" in reasons[4, "username"]


REPEATED = ("The column name '%s' is used 2 times (columns %s), so bidhub cannot tell which "
            "column to read. Rename the columns so that each name is used once, and import the "
            "file again.")


def test_a_column_name_used_twice_is_refused_naming_it_and_asking_for_a_rename(
        session, branches, admin, clock):
    """A CRM exports the owner's id and name both as 所属销售: which one is the owner?"""
    headers = "客户编号,客户名称,行业,所有制,分公司,年度金额,所属销售,所属销售"
    rows = ["KA-1,北京智联科技,互联网,民营,BJ,1200000,S1001,王芳"]
    result = import_file(session, admin, "accounts", "accounts.csv", csv_of(headers, rows),
                         valid_rows_only=False, now=clock())
    reload(session)
    assert result.status == "refused"
    assert session.scalar(select(func.count()).select_from(Account)) == 0
    assert [(problem.row, problem.column, str(problem.reason)) for problem in result.problems] == [
        (1, "所属销售", REPEATED % ("所属销售", "G, H"))]


def test_a_mapping_cannot_name_a_column_whose_name_is_used_twice():
    headers = [*ACCOUNT_HEADERS.split(","), "负责销售", "备注", "备注"]
    check = check_mapping("accounts", headers, suggested("accounts", ",".join(headers)))
    assert check.repeated == ["负责销售"] and not check.usable  # 备注 is not read: no matter
    assert [str(error) for error in check.errors] == [REPEATED % ("负责销售", "G, I")]
    assert check.warnings == []  # not "looks like 'owner' but is not imported"
    check = check_mapping("accounts", headers, {**suggested("accounts", ",".join(headers)),
                                                "负责销售": ""})
    assert [str(error) for error in check.errors] == [REPEATED % ("负责销售", "G, I")]


def test_the_cli_suggests_no_mapping_for_a_file_whose_column_names_repeat(
        app, session, branches, admin, tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_bytes(csv_of(ACCOUNT_HEADERS + ",负责销售", [row + ",王芳" for row in ACCOUNT_ROWS]))
    before = counts(session)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["import", "accounts", str(path), "--by", admin.username])
    assert result.exit_code == 1
    assert REPEATED % ("负责销售", "G, I") in result.output
    assert "--map" not in result.output and "[columns]" not in result.output
    result = runner.invoke(args=["import", "accounts", str(path), "--by", admin.username,
                                 "--map", "负责销售=owner", "--map", "企业性质=ownership_type"])
    assert result.exit_code == 1 and REPEATED % ("负责销售", "G, I") in result.output
    assert counts(session) == before


def test_stored_reasons_are_translatable_messages():
    problem = Problem(3, "hire_date", "x", Text("Not a date; write it as YYYY-MM-DD."))
    stored = problem.as_dict()
    assert stored["reason"] == "Not a date; write it as YYYY-MM-DD."
    assert stored["message"] == {"msgid": "Not a date; write it as YYYY-MM-DD.", "params": {}}
    rebuilt = Problem.from_dict(stored)
    assert isinstance(rebuilt.reason, Text) and rebuilt == problem
    assert Problem.from_dict({"row": 1, "column": "", "value": "", "reason": "old"}).reason == (
        "old")


# --- branches -----------------------------------------------------------------------------------

def test_the_branches_kind_creates_and_renames_branches_audited(session, admin, clock):
    data = csv_of("分公司编码,分公司名称,中文名称", ["BJ,Beijing,北京", "SH,Shanghai,上海"])
    result = import_file(session, admin, "branches", "b.csv", data, valid_rows_only=False,
                         now=clock())
    assert (result.status, result.added) == ("imported", 2), result.problems
    renamed = csv_of("分公司编码,分公司名称,中文名称", ["BJ,Beijing,北京", "sh,Shanghai HQ,上海"])
    result = import_file(session, admin, "branches", "b.csv", renamed, valid_rows_only=False,
                         now=clock())
    assert (result.added, result.updated, result.unchanged) == (0, 1, 1)
    reload(session)
    assert {branch.code: (branch.name, branch.name_zh)
            for branch in session.scalars(select(Branch))} == {
        "BJ": ("Beijing", "北京"), "SH": ("Shanghai HQ", "上海")}
    actions = [event.action for event in session.scalars(
        select(AuditEvent).where(AuditEvent.target.like("branch:%")))]
    assert sorted(actions) == ["branch.created", "branch.created", "branch.renamed"]
    clash = csv_of("分公司编码,分公司名称", ["GZ,上海"])
    result = import_file(session, admin, "branches", "b.csv", clash, valid_rows_only=False,
                         now=clock())
    assert result.status == "refused" and "already known as" in result.problems[0].reason


# --- the web mapping step -------------------------------------------------------------------------

def upload(client, kind: str, data: bytes, filename: str = "file.csv"):
    return client.post("/admin/imports/", data={"kind": kind,
                                                "file": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data")


def form_of(page: str) -> dict[str, str]:
    """The mapping form's selects with their selected options, as the browser would post."""
    form = {}
    for name, body in re.findall(r'<select id="[^"]+" name="(column-\d+)">(.*?)</select>', page,
                                 re.DOTALL):
        selected = re.search(r'<option value="([^"]*)" selected', body)
        form[name] = selected.group(1) if selected else ""
    return form


def test_the_upload_goes_to_the_mapping_step_and_confirming_imports(
        session, branches, admin, login_as, uploads):
    client = login_as(admin)
    response = upload(client, "reps", csv_of(REPS_HEADERS, REPS_ROWS, "gbk"), "销售.csv")
    assert response.status_code == 303 and "/admin/imports/map?token=" in response.location
    page = client.get(response.location).get_data(as_text=True)
    assert "销售编号" in page and "r1001" in page  # the username rule is stated
    assert "s1001" in page  # the preview shows the generated username
    form = form_of(page)
    assert list(form.values()) == ["external_id", "name", "branch", "hire_date", "status"]
    assert len(list(uploads.iterdir())) == 2
    response = client.post(response.location, data=form)
    assert response.status_code == 303 and re.search(r"/admin/imports/\d+$", response.location)
    report = client.get(response.location).get_data(as_text=True)
    assert "销售编号 → Employee id" in report and "external_id" not in report
    assert list(uploads.iterdir()) == []  # the waiting file is gone
    reload(session)
    assert session.scalar(select(func.count()).select_from(User).where(
        User.external_id.is_not(None))) == 3
    # The same headers again: the mapping step says whose saved mapping it offers.
    response = upload(client, "reps", csv_of(REPS_HEADERS, REPS_ROWS))
    page = client.get(response.location).get_data(as_text=True)
    assert "Using the mapping saved on" in page and admin.display_name in page


def test_a_saved_mapping_is_offered_under_this_file_s_way_of_writing_its_headers(
        session, branches, admin, login_as, uploads):
    """The same header row written otherwise (full-width brackets, a trailing space) finds the
    saved mapping: its menus show the saved choices under this file's headers, and confirming
    them as shown imports."""
    client = login_as(admin)
    run_reps = upload(client, "reps", csv_of(REPS_HEADERS, REPS_ROWS), "销售.csv")
    client.post(run_reps.location, data=form_of(client.get(run_reps.location).get_data(
        as_text=True)))
    response = upload(client, "accounts", csv_of(ACCOUNT_HEADERS, ACCOUNT_ROWS))
    page = client.get(response.location).get_data(as_text=True)
    assert client.post(response.location, data=form_of(page)).status_code == 303
    written_otherwise = ACCOUNT_HEADERS.replace("年度金额(万元)", "年度金额（万元） ")
    response = upload(client, "accounts", csv_of(written_otherwise, ACCOUNT_ROWS))
    page = client.get(response.location).get_data(as_text=True)
    assert "Using the mapping saved on" in page
    form = form_of(page)
    assert form["column-5"] == "annual_value_yuan"
    confirmed = client.post(response.location, data=form)
    assert confirmed.status_code == 303 and re.search(r"/admin/imports/\d+$", confirmed.location)
    reload(session)
    assert dict(session.execute(select(Account.external_id, Account.annual_value_yuan)).all()
                ) == {"KA-1": 1_200_000, "KA-2": 3_505_000}


def test_the_mapping_step_says_which_rows_above_the_column_names_it_skips(
        session, branches, admin, login_as, uploads):
    client = login_as(admin)
    data = ("2026年11月销售清单\r\n导出时间：,2026-11-28\r\n".encode("gbk")
            + csv_of(REPS_HEADERS, REPS_ROWS, "gbk"))
    response = upload(client, "reps", data, "销售.csv")
    page = client.get(response.location).get_data(as_text=True)
    assert "Row 1 (2026年11月销售清单) is above the column names and is skipped." in page
    assert "Row 2 (导出时间：2026-11-28) is above the column names and is skipped." in page
    assert list(form_of(page).values()) == ["external_id", "name", "branch", "hire_date",
                                            "status"]
    client.post("/language", data={"locale": "zh_CN", "next": response.location})
    page = client.get(response.location).get_data(as_text=True)
    assert "第 1 行（2026年11月销售清单）在列名上方，导入时跳过。" in page
    response = client.post(response.location, data=form_of(page))
    assert response.status_code == 303 and re.search(r"/admin/imports/\d+$", response.location)
    reload(session)
    assert session.scalar(select(func.count()).select_from(User).where(
        User.external_id.is_not(None))) == 3


def test_a_similar_names_likeness_is_in_the_pages_brackets(session, branches, admin, login_as,
                                                         uploads):
    client = login_as(admin)
    headers = ACCOUNT_HEADERS.replace("客户名称", "客户全称名")
    location = upload(client, "accounts", csv_of(headers, ACCOUNT_ROWS)).location
    chinese = client.get(location, headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert re.search(r"名称相近（\d+%）", chinese) and not re.search(r"名称相近 \(", chinese)
    english = client.get(location, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert re.search(r"a similar name \(\d+%\)", english)


def test_ignored_columns_follow_their_label_as_a_list_in_the_pages_style(
        session, branches, admin, login_as, uploads):
    """"忽略的列：备注和备用列": no space after the Chinese colon, and the names listed as a
    Chinese list, not "备注, 备用列"."""
    client = login_as(admin)
    zh, en = {"Accept-Language": "zh-CN"}, {"Accept-Language": "en"}
    mapped = upload(client, "reps", csv_of(f"{REPS_HEADERS},备注,备用列",
                                           [f"{row},," for row in REPS_ROWS])).location
    assert "忽略的列：备注和备用列" in client.get(mapped, headers=zh).get_data(as_text=True)
    assert "Ignored columns: 备注 and 备用列" in client.get(mapped, headers=en).get_data(
        as_text=True)
    imported = upload(client, "reps", csv_of("员工编号,用户名,姓名,分公司,备注,备用列",
                                             ["R1001,r1001,王芳,BJ,,"])).location
    report = client.get(imported, headers=zh).get_data(as_text=True)
    assert "已忽略的列（此类数据不识别）：备注和备用列" in report
    report = client.get(imported, headers=en).get_data(as_text=True)
    assert "Columns ignored (not known for this kind): 备注 and 备用列" in report


def test_an_unknown_value_is_told_the_accepted_ones_in_the_pages_punctuation(
        session, branches, admin, clock, login_as):
    """"民营（private）、国有（state_owned）……" on a Chinese page, "民营 (private), 国有
    (state_owned), ..." on an English one and in the English kept with the report."""
    data = csv_of("客户编号,客户名称,行业,所有制,分公司,年度金额", ["KA-1,甲公司,互联网,私企,BJ,100000"])
    result = import_file(session, admin, "accounts", "a.csv", data, valid_rows_only=False,
                         now=clock())
    assert result.status == "refused"
    assert str(result.problems[0].reason).startswith(
        "Unknown value; use one of: 民营 (private), 国有 (state_owned), ")
    client = login_as(admin)
    chinese = client.get(f"/admin/imports/{result.run_id}",
                         headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "请使用以下之一：民营（private）、国有（state_owned）、" in chinese
    english = client.get(f"/admin/imports/{result.run_id}",
                         headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "use one of: 民营 (private), 国有 (state_owned), " in english


def test_the_preview_follows_the_selects(session, branches, admin, login_as, uploads):
    client = login_as(admin)
    location = upload(client, "accounts", csv_of(ACCOUNT_HEADERS, ACCOUNT_ROWS)).location
    form = form_of(client.get(location).get_data(as_text=True))
    preview = location.replace("/map?", "/map/preview?")
    response = client.post(preview, data=form, headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="mapping-check"' in html
    assert "1,200,000" in html and "<html" not in html
    assert "State-owned" in html and "state_owned" not in html  # codes shown by their labels
    form["column-7"] = ""  # 高管负责人 left out
    html = client.post(preview, data=form).get_data(as_text=True)
    assert 'name="ack"' in html and "高管负责人" in html


def test_the_incidents_preview_shows_where_the_ad_ran_by_its_label(session, branches, admin,
                                                                   login_as, uploads):
    """专题 and 首页 are read as codes; the preview says them as the page's language does, as
    it says the kind of ad, not special_section."""
    client = login_as(admin)
    data = csv_of("事件编号,客户编号,销售,竞品网址,发现日期,广告形式,投放位置,备忘",
                  ["INC-1,KA-2001,R1001,51job.com,2026-02-20,横幅,专题,x",
                   "INC-2,KA-2001,R1001,51job.com,2026-02-21,标志,首页,y"])
    location = upload(client, "incidents", data).location
    page = client.get(location, headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "专题" in page and "首页" in page
    assert "special_section" not in page and "home_page" not in page


def test_an_unacknowledged_important_column_is_refused_on_the_web_then_accepted(
        session, branches, admin, login_as, uploads, clock):
    import_file(session, admin, "reps", "reps.csv", csv_of(REPS_HEADERS, REPS_ROWS),
                valid_rows_only=False, now=clock(), mapping=suggested("reps", REPS_HEADERS))
    client = login_as(admin)
    location = upload(client, "accounts", csv_of(ACCOUNT_HEADERS, ACCOUNT_ROWS)).location
    form = {**form_of(client.get(location).get_data(as_text=True)), "column-7": ""}
    before = counts(session)
    response = client.post(location, data=form)
    assert response.status_code == 422
    assert "looks like &#39;Executive sponsor&#39;" in response.get_data(as_text=True)
    assert counts(session) == before
    response = client.post(location, data={**form, "ack": "7"})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    reload(session)
    assert session.scalar(select(func.count()).select_from(Account)) == 2


@pytest.mark.parametrize(("change", "message"), [
    ({"column-0": "no_such_field"}, "is not a field of this kind"),
    ({"column-1": "external_id"}, "are both mapped to"),
    ({"column-99": "name"}, "a column the file does not have"),
    ({"column-x": "name"}, "a column the file does not have"),
    # More digits than int() reads (4,300): a ValueError, once a 500.
    ({"column-" + "9" * 5_000: "name"}, "a column the file does not have"),
    ({"ack": "9" * 5_000}, "a column the file does not have"),
    ({"column-²": "name"}, "a column the file does not have"),
    ({"column-1": ""}, "required field"),
])
def test_a_garbage_mapping_is_a_clear_422_and_changes_nothing(session, branches, admin,
                                                              login_as, uploads, change, message):
    client = login_as(admin)
    location = upload(client, "reps", csv_of(REPS_HEADERS, REPS_ROWS)).location
    form = form_of(client.get(location).get_data(as_text=True))
    before = counts(session)
    response = client.post(location, data={**form, **change})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True).replace("&#39;", "'")
    assert counts(session) == before
    assert len(list(uploads.iterdir())) == 2  # still waiting for a good mapping


CHINESE = {"Accept-Language": "zh-CN"}
ENGLISH = {"Accept-Language": "en"}


def page_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_every_field_of_every_kind_has_a_label():
    from bidhub.domain.imports import COLUMNS
    from bidhub.web.imports import FIELD_LABELS

    assert {kind: set(labels) for kind, labels in FIELD_LABELS.items()} == {
        kind: {column.name for column in columns} for kind, columns in COLUMNS.items()}


def test_the_report_and_the_mapping_step_name_fields_by_their_labels_in_chinese(
        session, branches, admin, login_as, uploads):
    client = login_as(admin)
    # A reps file read by its exact headers, with a username twice.
    reps = csv_of("员工编号,用户名,姓名,分公司", ["R1,zhang,张三,BJ", "R2,zhang,李四,BJ"])
    report = page_text(client.get(upload(client, "reps", reps).location,
                                  headers=CHINESE).get_data(as_text=True))
    assert "3 用户名 zhang" in report and "每个用户名只能出现一次" in report
    # An accounts file through the mapping step, with an amount in 万元 and bad cells.
    accounts = csv_of("客户编号,客户名称,行业,企业性质,所属分公司,年度金额(万元)",
                      ["KA-1,甲公司,互联网,私企,BJ,abc"])
    location = upload(client, "accounts", accounts).location
    mapping = client.get(location, headers=CHINESE).get_data(as_text=True)
    assert "所属分公司" in mapping and ">分公司 *</option>" in mapping
    assert "<th>年度金额</th>" in mapping and "年度金额按 10,000 元为单位读取" in page_text(mapping)
    response = client.post(location, data=form_of(mapping), headers=CHINESE)
    report = page_text(client.get(response.location, headers=CHINESE).get_data(as_text=True))
    assert "读取的列：所属分公司 → 分公司、年度金额(万元) → 年度金额" in report
    assert "年度金额已按 10,000 元为单位读取" in report
    assert "2 企业性质 私企" in report and "2 年度金额 abc" in report
    for page in (mapping, report):
        for key in ("external_id", "username", "annual_value_yuan", "ownership_type", "branch"):
            assert key not in page_text(page), key
    # English names them in English.
    english = client.get(response.location).get_data(as_text=True)
    assert "客户编号 → Account id" in english and "Annual value" in english


def test_a_forged_or_foreign_token_is_a_422(session, branches, admin, make_admin, login_as,
                                            uploads, app, clock):
    client = login_as(admin)
    location = upload(client, "reps", csv_of(REPS_HEADERS, REPS_ROWS)).location
    form = form_of(client.get(location).get_data(as_text=True))
    other = app.test_client()
    from tests.conftest import login

    login(other, make_admin())
    before = counts(session)
    real = location.rsplit("token=", 1)[1]
    for forged in ("A" * 43, "../../secret_key", "x", "", real[:-1] + ("A" if real[-1] != "A"
                                                                         else "B")):
        for path in ("/admin/imports/map", "/admin/imports/map/preview"):
            response = client.post(path, query_string={"token": forged}, data=form)
            assert response.status_code == 422, (path, forged)
            assert "unknown or has expired" in response.get_data(as_text=True)
    assert other.post(location, data=form).status_code == 422
    clock.advance(hours=2)  # expired
    assert client.post(location, data=form).status_code == 422
    assert counts(session) == before


# --- the command line ---------------------------------------------------------------------------

def test_the_cli_prints_the_suggested_mapping_and_imports_nothing(app, session, branches,
                                                                  admin, tmp_path):
    path = tmp_path / "reps.csv"
    path.write_bytes(csv_of(REPS_HEADERS, REPS_ROWS, "gbk"))
    before = counts(session)
    result = app.test_cli_runner().invoke(args=["import", "reps", str(path), "--by",
                                                admin.username])
    assert result.exit_code == 1
    assert "--map '销售编号=external_id'" in result.output
    assert '"所属分公司" = "branch"' in result.output and "[columns]" in result.output
    assert counts(session) == before


def test_the_cli_takes_map_flags_and_reuses_the_saved_mapping(app, session, branches, admin,
                                                              tmp_path):
    path = tmp_path / "reps.csv"
    path.write_bytes(csv_of(REPS_HEADERS, REPS_ROWS))
    runner = app.test_cli_runner()
    flags = ["--map", "销售编号=external_id", "--map", "所属分公司=branch",
             "--map", "在职状态=status"]
    result = runner.invoke(args=["import", "reps", str(path), "--by", admin.username, *flags])
    assert result.exit_code == 0, result.output
    assert "added 3" in result.output and "made from the employee ids" in result.output
    result = runner.invoke(args=["import", "reps", str(path), "--by", admin.username])
    assert result.exit_code == 0, result.output
    assert "Using the mapping saved on" in result.output and "unchanged 3" in result.output


def test_a_mapped_column_may_be_named_in_another_width_or_case(app, session, branches, admin,
                                                               tmp_path, clock):
    """Excel in Chinese writes 年度金额（万元）; a command line types 年度金额(万元)."""
    import_file(session, admin, "reps", "reps.csv", csv_of(REPS_HEADERS, REPS_ROWS),
                valid_rows_only=False, now=clock(), mapping=suggested("reps", REPS_HEADERS))
    path = tmp_path / "accounts.csv"
    path.write_bytes(csv_of(ACCOUNT_HEADERS.replace("(万元)", "（万元）"), ACCOUNT_ROWS))
    result = app.test_cli_runner().invoke(args=[
        "import", "accounts", str(path), "--by", admin.username,
        "--map", "企业性质=ownership_type", "--map", "所属分公司=branch",
        "--map", "年度金额(万元)=annual_value_yuan", "--map", "负责销售=owner",
        "--ack", "高管负责人"])
    assert result.exit_code == 0, result.output
    reload(session)
    assert dict(session.execute(select(Account.external_id, Account.annual_value_yuan)).all()) == {
        "KA-1": 1_200_000, "KA-2": 3_505_000}


def test_the_cli_takes_a_toml_mapping_and_ack(app, session, branches, admin, tmp_path, clock):
    import_file(session, admin, "reps", "reps.csv", csv_of(REPS_HEADERS, REPS_ROWS),
                valid_rows_only=False, now=clock(), mapping=suggested("reps", REPS_HEADERS))
    data = tmp_path / "accounts.xlsx"
    data.write_bytes(xlsx_of(ACCOUNT_HEADERS, ACCOUNT_ROWS))
    mapping = tmp_path / "accounts.toml"
    mapping.write_text('[columns]\n"企业性质" = "ownership_type"\n"所属分公司" = "branch"\n'
                       '"年度金额(万元)" = "annual_value_yuan"\n"负责销售" = "owner"\n'
                       '"高管负责人" = "-"\n', encoding="utf-8")
    runner = app.test_cli_runner()
    base = ["import", "accounts", str(data), "--by", admin.username, "--mapping", str(mapping)]
    result = runner.invoke(args=base)
    assert result.exit_code == 1 and "高管负责人" in result.output and "--ack" in result.output
    assert session.scalar(select(func.count()).select_from(Account)) == 0
    result = runner.invoke(args=[*base, "--ack", "高管负责人"])
    assert result.exit_code == 0, result.output
    reload(session)
    assert dict(session.execute(select(Account.external_id, Account.annual_value_yuan)).all()) == {
        "KA-1": 1_200_000, "KA-2": 3_505_000}
    bad = tmp_path / "bad.toml"
    bad.write_text("columns = 3\n", encoding="utf-8")
    result = runner.invoke(args=["import", "accounts", str(data), "--by", admin.username,
                                 "--mapping", str(bad)])
    assert result.exit_code == 2 and "[columns]" in result.output
