"""How an import reads ids and cells: one identity for an id, invisible characters dropped."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bidhub.domain.imports import (
    MAX_YUAN,
    BadValue,
    clean_cell,
    clean_id,
    id_key,
    parse_date,
    parse_month,
    yuan_read,
)

IDS = st.text(alphabet=st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."), min_size=1,
              max_size=12)
INVISIBLE = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e", "\u00ad",
                             # A line break inside a cell: Alt+Enter in Excel, a wrapped paste.
                             "\n", "\r\n", "\u2028"])


def full_width(text: str) -> str:
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)


@settings(max_examples=200, deadline=None)
@given(IDS, st.lists(st.tuples(st.integers(0, 12), INVISIBLE), max_size=3),
       st.sampled_from([str.lower, str.upper, full_width, str]), st.sampled_from(["", " ", "\u3000"]))
def test_an_id_keeps_its_identity_in_any_case_width_or_with_invisible_characters(
        external_id, inserted, variant, space):
    written = variant(external_id)
    for position, char in inserted:
        written = written[:position] + char + written[position:]
    assert id_key(space + written + space) == id_key(external_id)


@settings(max_examples=200, deadline=None)
@given(IDS, IDS)
def test_ids_that_differ_other_than_in_case_are_different(first, second):
    if first.lower() != second.lower():
        assert id_key(first) != id_key(second)


def test_an_id_loses_the_line_breaks_of_its_cell():
    """An id typed with Alt+Enter in its cell is the same id: before, PZ-\\n0001 was stored
    beside PZ-0001, and the next export added it a second time."""
    assert clean_id("PZ-\n0001") == clean_id("PZ-\r\n0001") == clean_id("ＰＺ－\n０００１") \
        == "PZ-0001"
    assert id_key(" PZ-\n0001\n") == id_key("pz-0001")


def test_punctuation_in_an_id_is_significant_and_cells_lose_only_invisible_characters():
    assert len({id_key(value) for value in ("KA-20-11", "KA-2011", "ka_20_11")}) == 3
    assert id_key("KA-3001") == id_key("ka-3001") == id_key("ＫＡ－３００１")
    assert clean_cell("\ufeff 北京\u200b智联 \u3000") == "北京智联"
    assert clean_cell("ＡＢＣ") == "ＡＢＣ"  # names keep their width


def test_the_noise_of_a_computed_amount_is_not_a_fraction_of_a_yuan():
    from bidhub.domain.imports import cell_text, parse_yuan

    noisy = float("1320.0000000000002")  # Excel's =1200*1.1
    assert cell_text(noisy) == "1320" and parse_yuan(cell_text(noisy)) == 1320
    assert parse_yuan("1320.0000000000002") == 1320 and parse_yuan("1319.9999999999998") == 1320
    assert cell_text(float("0.30000000000000004")) == "0.3"
    assert parse_yuan(cell_text(float("0.35000000000000003")), 10_000) == 3_500
    assert yuan_read("1320.0000000000002") == (1320, False)  # noise, not a fraction
    for real_fraction, whole in (("1320.5", 1321), ("1320.01", 1320), ("1320.000002", 1320),
                                 ("0.5", 1), ("0.49", 0)):
        assert yuan_read(real_fraction) == (whole, True)


@pytest.mark.parametrize(("cell", "unit", "yuan"), [
    ("1,234,567.89", 1, 1_234_568), ("128,000.50", 1, 128_001), ("128,000.49", 1, 128_000),
    ("¥35,820.5", 1, 35_821), ("12.345678万", 1, 123_457), ("12.345678", 10_000, 123_457),
    ("0.00004", 10_000, 0), ("2147483647.4", 1, 2**31 - 1)])
def test_a_fraction_of_a_yuan_is_rounded_half_up_to_whole_yuan(cell, unit, yuan):
    assert yuan_read(cell, unit) == (yuan, True)


@pytest.mark.parametrize("cell", ["abc", "1e2", "-", "十二"])
def test_no_amount_in_a_column_of_wan_says_the_columns_unit(cell):
    """In a column read in 万元 a fraction is an amount (1.5 is 15,000 yuan): the refusal does
    not ask for a whole number of yuan, it names the column's unit."""
    with pytest.raises(BadValue) as refused:
        yuan_read(cell, 10_000)
    assert str(refused.value.message) == ("Not an amount; write a number of at least 0 (this "
                                          "column is read in units of 10,000 yuan).")
    with pytest.raises(BadValue, match="Not an amount in yuan; write a whole number"):
        yuan_read(cell)


def test_an_amount_that_rounds_past_the_largest_is_too_large():
    with pytest.raises(BadValue, match="Too large"):
        yuan_read("2147483647.5")


@settings(max_examples=300, deadline=None)
@given(st.integers(0, MAX_YUAN), st.sampled_from([1.1, 1.3, 3.0, 7.0, 0.7]))
def test_an_amount_excel_computed_reads_as_the_whole_yuan_it_shows(yuan, factor):
    from bidhub.domain.imports import cell_text, parse_yuan

    computed = yuan * factor / factor  # a whole number, give or take the float's last digit
    assert parse_yuan(cell_text(computed)) == yuan


@pytest.mark.parametrize("written", [
    "2026-03-05", "2026/3/5", "2026-03-05 14:30", "2026-03-05T14:30:00", "2026/3/5 14:30",
    "2026年3月5日", "2026年03月05日", "2026年3月5日 14:30", "2026年3月5日 14:30:00",
    "２０２６－０３－０５", "２０２６／３／５", "２０２６年３月５日", "２０２６年３月５日\u3000１４：３０",
    "2026年3月5日\u300014:30", "2026年3月5号", "2026年03月05号 14:30", "２０２６年３月５号",
    "2026 年 3 月 5 日", "2026 年 03 月 05 日 14:30", "2026年 3月 5号", "２０２６\u3000年\u3000３\u3000月\u3000５\u3000日"])
def test_a_date_reads_however_an_export_writes_it(written):
    """Chinese Excel shows a date and time as 2026年3月5日 14:30; an input method types digits and
    dashes full-width; people typing a date by hand often write 号 for 日; typesetting (Word)
    puts spaces between the digits and the characters."""
    assert parse_date(written) == date(2026, 3, 5)


@pytest.mark.parametrize("written", ["3月5日", "2026年3月5", "yesterday", "2026年3月5号日",
                                     "0000-01-01", "2026 年 3 月 5", "2026 年 3 月 5 日 起"])
def test_what_is_not_a_date_is_refused(written):
    with pytest.raises(BadValue, match="Not a date"):
        parse_date(written)


@pytest.mark.parametrize(("written", "reason"), [
    ("2026年2月30日 14:30", "No such day: 2026-02 has 28 days."),
    ("２０２６－０２－３０", "No such day: 2026-02 has 28 days."),
    ("2028-02-30", "No such day: 2028-02 has 29 days."),
    ("2026年2月30号", "No such day: 2026-02 has 28 days."),
    ("2026/4/31", "No such day: 2026-04 has 30 days."),
    ("2026-03-00", "No such day: 2026-03 has 31 days."),
    ("20260431", "No such day: 2026-04 has 30 days."),
    ("2026年13月5日", "No such day: there is no month 13."),
    ("2026-00-05", "No such day: there is no month 0."),
])
def test_a_date_naming_no_day_says_why_rather_than_asking_for_its_own_form(written, reason):
    """2026-02-30 is written as asked: the slip is the day, and the reason says so."""
    with pytest.raises(BadValue) as refused:
        parse_date(written)
    assert str(refused.value.message) == reason


def test_a_month_reads_in_either_width():
    assert parse_month("２０２６－０３") == parse_month("2026年３月") == date(2026, 3, 1)


@pytest.mark.parametrize("written", ["2026年3月份", "２０２６年３月份", "2026年03月份", "2026-03",
                                     "202603", "2026/3", "2026年3月", "2026 年 3 月",
                                     "2026 年 03 月份"])
def test_a_month_reads_as_people_write_it(written):
    """2026年3月份 is how a forecast sheet typed by hand names its month."""
    assert parse_month(written) == date(2026, 3, 1)


@pytest.mark.parametrize("written", ["2026-13", "202613", "2026年13月", "2026年0月份"])
def test_a_month_that_does_not_exist_says_so(written):
    with pytest.raises(BadValue) as refused:
        parse_month(written)
    month = int(written.removesuffix("份").removesuffix("月")[-2:].lstrip("年-"))
    assert str(refused.value.message) == f"No such month: there is no month {month}."


@pytest.mark.parametrize("written", ["Jan-26", "26年1月", "2026年3月份份", "March",
                                     "2026 年 3 月 份 份"])
def test_what_is_not_a_month_is_refused(written):
    with pytest.raises(BadValue, match="Not a month"):
        parse_month(written)


@pytest.mark.parametrize(("written", "code"), [
    ("民企", "private"), ("民营企业", "private"), ("国有控股", "state_owned"),
    ("地方国企", "state_owned"), ("中央企业", "state_owned"), ("中外合资企业", "joint_venture"),
    ("政府单位", "government"), ("事业单位", "government"), ("上市公司", "listed"),
])
def test_an_ownership_type_reads_as_crms_write_it(written, code):
    from bidhub.domain.imports import OWNERSHIP_TYPES, choice

    assert choice(OWNERSHIP_TYPES)(written) == code


def test_an_unknown_choice_is_told_the_values_as_a_crm_writes_them():
    """Reps and managers read 民营 and 离职 in their exports, not bidhub's codes; the names
    are those the pages use (中外合资, 上市公司)."""
    from bidhub.domain.imports import OWNERSHIP_TYPES, REP_STATUSES, choice

    with pytest.raises(BadValue) as refused:
        choice(OWNERSHIP_TYPES)("外资")
    assert refused.value.message.params["codes"] == (
        "民营 (private), 国有 (state_owned), 中外合资 (joint_venture), 政府机关 (government), "
        "上市公司 (listed)")
    with pytest.raises(BadValue) as refused:
        choice(REP_STATUSES)("退休")
    assert refused.value.message.params["codes"] == "在职 (active), 休假 (on_leave), 离职 (left)"


@pytest.mark.parametrize(("cell", "yuan"), [
    ("1.2亿", 120_000_000), ("1.2亿元", 120_000_000), ("3百万", 3_000_000),
    ("3百万元", 3_000_000), ("2千万", 20_000_000), ("2千万元", 20_000_000),
    ("1.5十万元", 150_000), ("120万", 1_200_000), ("800千元", 800_000), ("¥1.2亿", 120_000_000),
    ("1.5千", 1_500), ("８００千", 800_000),
])
def test_a_cell_takes_the_units_a_column_name_takes(cell, yuan):
    from bidhub.domain.imports import parse_yuan

    assert parse_yuan(cell) == yuan


@pytest.mark.parametrize("cell", [
    "2026-03-05 14:30", "2026/3/5 14:30:00.000", "2026-03-05T14:30:00+08:00",
    "2026-03-05T14:30:00Z", "2026年3月5日 星期四 14:30:00", "2026/3/5 下午 2:30",
    "2026/3/5 2:30 PM", "2026-03-05 14时30分", "２０２６－０３－０５ １４：３０", "2026-03-05 Thu",
    "2026-03-05 (周四)", "2026-03-05 14:30:00 +0800",
])
def test_a_day_with_its_time_or_weekday_reads_as_the_day(cell):
    assert parse_date(cell) == date(2026, 3, 5)


@pytest.mark.parametrize(("cell", "day"), [
    ("2026-03-05T23:30:00Z", date(2026, 3, 6)),  # 07:30 on the 6th in Beijing
    ("2026-03-05T16:30:00.000Z", date(2026, 3, 6)),
    ("2026-03-05T15:59:59Z", date(2026, 3, 5)),
    ("2026-03-05 16:00 UTC", date(2026, 3, 6)),
    ("2026-03-05T23:30:00-05:00", date(2026, 3, 6)),
    ("2026-03-05T14:30:00+08:00", date(2026, 3, 5)),
    ("2026-03-05 17:00 GMT+8", date(2026, 3, 5)),
    ("2026-03-05 17:00 UTC+08:00", date(2026, 3, 5)),
    ("2026/3/5 下午 4:30 GMT", date(2026, 3, 6)),
    ("2026/3/5 4:30 PM +0000", date(2026, 3, 6)),
    ("2026-03-05 凌晨 12:30 UTC", date(2026, 3, 5)),
    ("2026-03-05 16时30分 Z", date(2026, 3, 6)),
    ("2026-03-05T23:30:00", date(2026, 3, 5)),  # no zone written: the day as written
    ("2026-03-05 23:30 星期四", date(2026, 3, 5)),
])
def test_a_moment_written_with_its_zone_reads_as_the_departments_day(cell, day):
    """A CRM that exports moments in UTC writes a deal closed at 07:30 in Beijing on 6 March
    as 2026-03-05T23:30:00Z; the department's day is the 6th. Without a zone (the department
    not given) the day is the one written."""
    shanghai = ZoneInfo("Asia/Shanghai")
    assert parse_date(cell, zone=shanghai) == day
    assert parse_date(cell) == date(2026, 3, 5)


@pytest.mark.parametrize("cell", [
    "2026-03-05T25:00:00Z", "2026-03-05T14:75Z", "2026-03-05 14:30 +2500",
])
def test_a_moment_with_a_zone_and_no_such_time_is_not_a_date(cell):
    with pytest.raises(BadValue, match="Not a date"):
        parse_date(cell, zone=ZoneInfo("Asia/Shanghai"))


def test_a_month_and_a_stage_history_read_moments_in_the_departments_zone():
    from bidhub.domain.imports import parse_month, parse_stage_history

    shanghai = ZoneInfo("Asia/Shanghai")
    assert parse_month("2026-03-31T20:00:00Z", zone=shanghai) == date(2026, 4, 1)
    assert parse_stage_history("intent:2026-03-01;won:2026-03-31T20:00:00Z", zone=shanghai) == (
        ("intent", date(2026, 3, 1)), ("won", date(2026, 4, 1)))
    with pytest.raises(BadValue, match="Enter a date between"):
        parse_date("2100-12-31T20:00:00Z", zone=shanghai)  # 2101 in Beijing


@pytest.mark.parametrize("cell", [
    "2026-03-05 至 2026-04-01", "2026-03-05 ~ 2026-04-01", "2026-03-05 - 2026-04-01",
    "2026-03-05 foo", "2026-03-05 14:30 foo", "2026-03-05 T",
])
def test_a_range_or_a_note_after_a_day_is_not_a_date(cell):
    """A range must not pass for its first day, nor a note for the day it follows."""
    with pytest.raises(BadValue, match="Not a date"):
        parse_date(cell)


# --- cells a CRM wrote as Excel's text formula ------------------------------------------------

@pytest.mark.parametrize(("line", "cells"), [
    ('="KA-2001",="001234",="6222021234567890123"', ["KA-2001", "001234", "6222021234567890123"]),
    ('"=""KA-2001""","=""1,200,000""",plain', ["KA-2001", "1,200,000", "plain"]),
    ('="say ""hi""",="",=""""', ['say "hi"', "", '"']),
    ('=SUM(A1:A3),=1+2,x="y",="open', ["=SUM(A1:A3)", "=1+2", 'x="y"', '="open']),
    ('="KA-2001"\t="001234"', ["KA-2001", "001234"]),
])
def test_a_csv_cell_written_as_excels_text_formula_reads_as_the_text_excel_shows(line, cells):
    """CRMs write ="00123" so that Excel keeps an id's leading zeros and last digits; any other
    formula is left as written (bidhub evaluates none)."""
    from bidhub.domain.imports import csv_rows

    header = "a\tb" if "\t" in line else ",".join("abcd"[:len(cells)])
    records = list(csv_rows(f"{header}\r\n{line}\r\n".encode()))
    assert records[1] == cells


def test_column_names_written_as_text_formulas_read_as_their_text():
    from bidhub.domain.imports import csv_rows

    records = list(csv_rows('="客户编号",="客户名称"\r\n="KA-1",北京\r\n'.encode("gbk")))
    assert records == [["客户编号", "客户名称"], ["KA-1", "北京"]]


@pytest.mark.parametrize(("written", "code"), [
    ("在职", "active"), ("在岗", "active"), ("试用", "active"), ("试用期", "active"),
    ("正式", "active"), ("Active", "active"), ("休假", "on_leave"), ("请假", "on_leave"),
    ("产假", "on_leave"), ("病假", "on_leave"), ("停薪留职", "on_leave"), ("ON_LEAVE", "on_leave"),
    ("离职", "left"), ("已离职", "left"), ("left", "left"),
])
def test_a_reps_status_reads_as_hr_exports_write_it(written, code):
    """A rep on probation (试用期) is employed and may bid; maternity or sick leave is leave."""
    from bidhub.domain.imports import REP_STATUSES, choice

    assert choice(REP_STATUSES)(written) == code


@pytest.mark.parametrize(("written", "code"), [
    ("潜在客户", "potential"), ("初步接洽", "potential"), ("意向客户", "intent"),
    ("需求确认", "intent"), ("方案阶段", "proposal"), ("方案报价", "proposal"), ("报价", "proposal"),
    ("商务谈判", "negotiation"), ("谈判审核", "negotiation"), ("销售实现", "won"), ("赢单", "won"),
    ("已成交", "won"), ("签约", "won"), ("已签约", "won"), ("Closed Won", "won"),
    ("输单", "lost"), ("已输单", "lost"), ("丢单", "lost"), ("已丢单", "lost"),
    ("Closed Lost", "lost"), ("closed-lost", "lost"),
    # 销售易 and 纷享销客's default stages, with the marks between their words.
    ("验证客户", "potential"), ("需求确定", "intent"), ("方案/报价", "proposal"),
    ("方案／报价", "proposal"), ("谈判/审核", "negotiation"), ("谈判、审核", "negotiation"),
    # Salesforce's, folded onto the funnel in their order.
    ("Prospecting", "potential"), ("Qualification", "potential"), ("资格审查", "potential"),
    ("Needs Analysis", "intent"), ("Value Proposition", "intent"),
    ("Id. Decision Makers", "intent"), ("Perception Analysis", "intent"), ("感知分析", "intent"),
    ("Proposal/Price Quote", "proposal"), ("提案/报价", "proposal"),
    ("Negotiation/Review", "negotiation"), ("谈判/审查", "negotiation"),
    ("结束并赢单", "won"), ("结束并输单", "lost"),
])
def test_a_stage_reads_as_crms_name_it(written, code):
    """The funnel's five stages and a loss, as Chinese CRMs and Closed Won / Closed Lost name
    them."""
    from bidhub.domain.imports import STAGES, choice

    assert choice(STAGES)(written) == code


@pytest.mark.parametrize("written", ["无效", "暂停", "方案?报价", "赢率 20%", "/", ""])
def test_a_stage_bidhub_does_not_know_is_refused_naming_the_stages_it_reads(written):
    from bidhub.domain.imports import BadValue, parse_stage

    with pytest.raises(BadValue) as refused:
        parse_stage(written)
    assert "潜在客户 (potential)" in str(refused.value.message)


@pytest.mark.parametrize(("written", "code"), [
    ("商务谈判(70%)", "negotiation"), ("商务谈判（70％）", "negotiation"), ("意向客户30%", "intent"),
    ("意向客户 30%", "intent"), ("潜在客户-10%", "potential"), ("方案阶段 [50%]", "proposal"),
    ("赢单(100%)", "won"), ("丢单(0%)", "lost"), ("30%", "intent"), ("70 %", "negotiation"),
    ("１００％", "won"),
])
def test_a_stage_reads_with_its_probability_or_by_it_alone(written, code):
    """CRM exports write a stage with the handbook's probability beside it, or the probability
    in its place: 10% potential, 30% intent, 50% proposal, 70% negotiation, 100% won."""
    from bidhub.domain.imports import parse_stage

    assert parse_stage(written) == code


@pytest.mark.parametrize(("written", "message"), [
    ("商务谈判(50%)", "商务谈判 (negotiation) has a probability of 70% in the funnel, not 50%."),
    ("45%", "No funnel stage has a probability of 45%: the stages are 10%, 30%, 50%, 70% and "
            "100% (won)."),
])
def test_a_probability_that_is_not_the_stages_is_refused_naming_the_right_one(written, message):
    from bidhub.domain.imports import BadValue, parse_stage

    with pytest.raises(BadValue) as refused:
        parse_stage(written)
    assert str(refused.value.message) == message


def test_no_two_values_of_a_coded_field_compare_alike():
    """Every alias of every coded field reads as one code only, once compared as a value is."""
    from bidhub.domain import imports

    for values in (imports.REP_STATUSES, imports.OWNERSHIP_TYPES, imports.EXECUTIVE_SPONSORS,
                   imports.STAGES, imports.AD_TYPES, imports.PAGE_AREAS,
                   imports.INCIDENT_STATUSES):
        codes: dict[str, str] = {}
        for alias, code in values.items():
            assert codes.setdefault(imports.choice_key(alias), code) == code, alias


@pytest.mark.parametrize("written", ["-3", "-3万", "- 3", "-1,200", "-3.5万", "－５"])
def test_an_amount_below_zero_is_refused_as_below_zero(written):
    """Not as "not an amount": the number is read, and it is its sign that is wrong."""
    from bidhub.domain.imports import BadValue, parse_yuan

    with pytest.raises(BadValue) as refused:
        parse_yuan(written, 10_000)
    assert str(refused.value.message) == "An amount cannot be below 0; write 0 or more."


@pytest.mark.parametrize("written", ["-", "(100)", "--3", "-abc"])
def test_a_lone_sign_or_accounting_brackets_stay_no_amount(written):
    from bidhub.domain.imports import BadValue, parse_yuan

    with pytest.raises(BadValue) as refused:
        parse_yuan(written)
    assert str(refused.value.message).startswith("Not an amount in yuan")
