"""Hostile input: huge ids, look-alike digits, far-off years, non-finite numbers, control chars."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from wtforms.validators import NumberRange

from bidhub.models import AccountabilityIncident, Bid, Round, RoundStatus, User
from bidhub.services.accountability import log_incident
from bidhub.services.rule_sets import active_rule_set, parsed
from bidhub.web import params
from bidhub.web.forms import rules_settings_form
from bidhub.web.params import parse_yuan
from tests.conftest import PASSWORD, login, reload

HUGE_IDS = [str(2**31), str(2**63), str(2**64), "9" * 30, "9" * 400, "0", "00", "٣", "²", "①",
            "-1", "1e3"]
LOOKALIKE_NUMBERS = ["²", "①", "٣", "１２", "1_000", "9" * 400, str(2**63), "-1", " ", "1e3"]
SEARCH_TEXT = ["\x00", "a\x00", "\x1b", "%", "_"]
FAR_OFF_DAYS = ["0001-01-01", "1899-12-31", "9999-12-31", "2101-01-01"]


def count(session, model) -> int:
    reload(session)
    return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def world(session, clock, make_rep, make_manager, make_admin, make_account, make_round):
    rep = make_rep()
    manager = make_manager()
    admin = make_admin()
    accounts = [make_account(owner=make_rep()) for _ in range(2)]
    open_round = make_round(accounts=accounts, manager=manager)
    draft = make_round(status=RoundStatus.DRAFT, manager=manager,
                       opens_at=clock() + timedelta(days=1))
    incident = log_incident(session, manager, account_id=accounts[0].id,
                            competitor_site="https://example.com", ad_type="logo",
                            evidence_url="https://example.com/ad",
                            seen_at=clock() - timedelta(hours=2), now=clock())
    return {"rep": rep, "manager": manager, "admin": admin, "open_round": open_round,
            "draft": draft, "listing": open_round.listings[0], "incident": incident}


# --- the helper ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text", LOOKALIKE_NUMBERS + ["", None, "12a", "+", "0x10"])
def test_parse_int_takes_ascii_digits_only(text):
    assert params.parse_int(text) is None


def test_parse_int_bounds_and_ids():
    assert params.parse_int(" 42 ") == 42
    assert params.parse_int("7", maximum=6) is None
    assert params.parse_int("-5", minimum=-10) == -5
    assert params.parse_id("0") is None
    assert params.parse_id(str(2**31 - 1)) == 2**31 - 1
    assert params.parse_id(str(2**31)) is None
    assert params.parse_id(str(2**63)) is None
    assert params.parse_version("²") == -1
    assert params.parse_version("3") == 3


@pytest.mark.parametrize("text", FAR_OFF_DAYS + ["2026-02-30", "２０２６-01-01", "2026-1-1", "x"])
def test_parse_day_refuses_malformed_and_far_off_days(text):
    assert params.parse_day(text) is None


def test_parse_day_and_clean_text():
    assert str(params.parse_day("2026-03-02")) == "2026-03-02"
    assert params.clean_text("a\x00b\x1bc\nd", 100) == "abcd"
    assert params.clean_text("abcdef", 3) == "abc"
    assert params.control_characters("a\tb\r\n", multiline=True) == []
    assert params.control_characters("a\tb\x00", multiline=True) == ["\x00"]
    assert params.control_characters("a\tb") == ["\t"]


# --- path ids ------------------------------------------------------------------------------------

def id_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.arguments and rule.endpoint != "static":
            yield rule


def test_every_route_argument_uses_a_bounded_converter(app):
    for rule in id_routes(app):
        for name, converter in rule._converters.items():
            assert isinstance(converter, params.IdConverter | params.CodeConverter), (
                rule.rule, name)


def test_review_codes_outside_their_alphabet_or_width_match_no_route(client, world):
    login(client, world["manager"])
    round_id = world["open_round"].id
    for code in ("Ａ1", "AB-CD", "A" * 17, "%00", "١٢٣"):
        assert client.get(f"/review/rounds/{round_id}/{code}").status_code == 404, code
        assert client.post(f"/review/rounds/{round_id}/{code}").status_code == 404, code


def test_path_ids_out_of_range_are_not_found(app, client, world):
    login(client, world["admin"])
    for rule, huge in itertools.product(id_routes(app), HUGE_IDS):
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<int:{argument}>", huge)
        method = "get" if "GET" in rule.methods else "post"
        response = getattr(client, method)(path)
        assert response.status_code == 404, (path, response.status_code)


def test_largest_id_is_a_plain_not_found(client, world):
    login(client, world["manager"])
    assert client.get(f"/manage/rounds/{params.MAX_ID}").status_code == 404


# --- look-alike digits in query strings and hidden fields ----------------------------------------

def test_market_filters_ignore_lookalike_digits(client, world):
    login(client, world["rep"])
    for value in LOOKALIKE_NUMBERS:
        response = client.get(f"/rounds/{world['open_round'].id}", query_string={
            "branch": value, "min_value": value, "max_value": value, "q": value})
        assert response.status_code == 200


def test_management_filters_ignore_lookalike_digits(client, world):
    login(client, world["manager"])
    round_id = world["open_round"].id
    paths = (f"/manage/rounds/{round_id}", "/manage/filings", "/manage/filings.csv",
             "/manage/accountability/report", "/manage/accountability/report.csv",
             "/manage/reviews", "/board", "/manage")
    for value, path in itertools.product(LOOKALIKE_NUMBERS, paths):
        query = {"branch": value, "rep": value, "min_value": value, "max_value": value,
                 "page": value, "start": value, "date_from": value, "date_to": value,
                 "band": value}
        response = client.get(path, query_string=query)
        # The register's export refuses filters it cannot apply rather than ignore them.
        expected = 422 if path == "/manage/filings.csv" and value.strip() else 200
        assert response.status_code == expected, (path, response.status_code)


@pytest.mark.parametrize("value", ["²", "①", str(2**63), "9" * 400])
def test_lookalike_versions_are_refused_without_a_change(client, session, world, value):
    login(client, world["manager"])
    draft = world["draft"]
    response = client.post(f"/manage/rounds/{draft.id}/publish", data={"version": value})
    assert response.status_code in (409, 422)
    reload(session)
    assert session.get(Round, draft.id).status == RoundStatus.DRAFT

    response = client.post(f"/manage/rounds/{draft.id}/edit", data={
        "title": "Renamed", "branch_id": "0", "opens_at": "2026-03-05T09:00",
        "closes_at": "2026-03-12T18:00", "version": value})
    assert response.status_code in (409, 422)
    assert session.get(Round, draft.id).title != "Renamed"

    incident = world["incident"]
    response = client.post(f"/manage/accountability/incidents/{incident.id}/resolve",
                           data={"outcome": "upheld", "note": "No answer.", "version": value})
    assert response.status_code in (409, 422)
    reload(session)
    assert session.get(AccountabilityIncident, incident.id).status == "open"


def test_lookalike_expected_rule_set_is_no_500(client, session, world):
    login(client, world["admin"])
    text = active_rule_set(session).text
    response = client.post("/admin/rules/adopt", data={"text": text, "note": "same",
                                                       "expected_active_id": "²"})
    assert response.status_code < 500


def test_lookalike_or_oversized_revenue_in_a_bid_is_a_field_error(client, session, world):
    login(client, world["rep"])
    # Full-width digits are digits in an amount (１２万 is 120,000, as the i18n tests read it).
    for value in [*(number for number in LOOKALIKE_NUMBERS if number != "１２"),
                  "3000000000", "-5"]:
        response = client.post(f"/listings/{world['listing'].id}/bid", data={
            "account_plan": "A careful plan for this account.", "committed_revenue_yuan": value,
            "visit_plan": "Visit the decision maker in week one."})
        assert response.status_code == 422, value
    assert count(session, Bid) == 0


# --- far-off years -------------------------------------------------------------------------------

def test_round_times_in_far_off_years_are_field_errors(client, session, world):
    login(client, world["manager"])
    before = count(session, Round)
    for opens, closes in [pair for day in FAR_OFF_DAYS for pair in (
            (f"{day}T00:00", "2026-03-12T18:00"), ("2026-03-05T09:00", f"{day}T23:59"))]:
        response = client.post("/manage/rounds/new", data={
            "title": "Far off", "branch_id": "0", "opens_at": opens, "closes_at": closes})
        assert response.status_code == 422
        assert "between the years" in response.get_data(as_text=True)
        draft = world["draft"]
        response = client.post(f"/manage/rounds/{draft.id}/edit", data={
            "title": "Far off", "branch_id": "0", "opens_at": opens, "closes_at": closes,
            "version": str(draft.version)})
        assert response.status_code == 422
    assert count(session, Round) == before
    assert session.get(Round, world["draft"].id).title != "Far off"


def test_sightings_in_far_off_years_are_field_errors(client, session, world):
    login(client, world["manager"])
    before = count(session, AccountabilityIncident)
    account = world["listing"].account
    for day in FAR_OFF_DAYS:
        response = client.post("/manage/accountability/log", data={
            "account": account.external_id, "competitor_site": "https://example.com",
            "ad_type": "logo", "seen_at": f"{day}T00:00"})
        assert response.status_code == 422
        assert "between the years" in response.get_data(as_text=True)
    assert count(session, AccountabilityIncident) == before


def test_far_off_days_in_filters_and_reports_are_ignored(client, world):
    login(client, world["manager"])
    for day in FAR_OFF_DAYS:
        for path, query in (("/manage/filings", {"date_from": day, "date_to": day}),
                            ("/manage/filings.csv", {"date_from": day, "date_to": day}),
                            ("/manage/accountability/report", {"start": day}),
                            ("/manage/accountability/report.csv", {"start": day})):
            response = client.get(path, query_string=query)
            expected = 422 if path == "/manage/filings.csv" else 200
            assert response.status_code == expected, (path, response.status_code)


def test_hire_date_in_a_far_off_year_is_a_field_error(client, session, world):
    login(client, world["admin"])
    before = count(session, User)
    response = client.post("/admin/users/new", data={
        "username": "newrep", "display_name": "New Rep", "password": "a long password 1",
        "role": "rep", "branch_id": "0", "hired_on": "0001-01-01"})
    assert response.status_code == 422
    assert count(session, User) == before


# --- impossible days and times -----------------------------------------------------------------

IMPOSSIBLE_TIMES = ["2026-02-30T09:00", "2026-03-05T25:00", "2026-13-01T09:00",
                    "2026-03-05T09:60", "31/12/2026 18:00", "tomorrow"]
IMPOSSIBLE_DAYS = ["2026-02-30", "2026-04-31", "2026-13-01", "31/12/2026", "tomorrow"]
DATETIME_HELP = {"en": "Enter the date and time as year-month-day hour:minute, for example "
                       "2026-12-31 18:00.",
                 "zh-CN": "请按 年-月-日 时:分 填写日期和时间，例如 2026-12-31 18:00。"}
DATE_HELP = {"en": "Enter the date as year-month-day, for example 2026-12-31.",
             "zh-CN": "请按 年-月-日 填写日期，例如 2026-12-31。"}


def test_every_date_field_names_the_form_it_takes(app):
    """WTForms' own "Not a valid datetime value." does not say what to type."""
    from flask_babel import force_locale
    from werkzeug.datastructures import MultiDict
    from wtforms import DateField, DateTimeField
    from wtforms.fields.core import UnboundField

    from bidhub.web.review_panels import ReviewersForm

    extra = {ReviewersForm: {"candidates": []}}
    checked = set()
    for form_class in form_classes():
        for name in dir(form_class):
            unbound = getattr(form_class, name, None)
            if not (isinstance(unbound, UnboundField)
                    and issubclass(unbound.field_class, DateTimeField)):
                continue
            day_only = issubclass(unbound.field_class, DateField)
            values = IMPOSSIBLE_DAYS if day_only else IMPOSSIBLE_TIMES
            for value, locale in itertools.product(values, ("en", "zh_CN")):
                with app.test_request_context(method="POST"), force_locale(locale):
                    form = form_class(formdata=MultiDict({name: value}),
                                      **extra.get(form_class, {}))
                    form[name].validate(form)
                    help_text = (DATE_HELP if day_only else DATETIME_HELP)[
                        "en" if locale == "en" else "zh-CN"]
                    assert [str(error) for error in form[name].errors] == [help_text], (
                        form_class.__name__, name, value, locale)
            checked.add((form_class.__name__, name))
    assert {("RoundForm", "opens_at"), ("RoundForm", "closes_at"), ("IncidentForm", "seen_at"),
            ("NewUserForm", "hired_on")} <= checked


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_an_impossible_round_time_says_what_to_type_and_changes_nothing(
        client, session, world, language):
    login(client, world["manager"])
    before = count(session, Round)
    draft = world["draft"]
    for opens, closes in [pair for value in IMPOSSIBLE_TIMES for pair in (
            (value, "2026-03-12T18:00"), ("2026-03-05T09:00", value))]:
        for path, extra in (("/manage/rounds/new", {}),
                            (f"/manage/rounds/{draft.id}/edit", {"version": str(draft.version)})):
            response = client.post(path, data={
                "title": "Impossible", "branch_id": "0", "opens_at": opens, "closes_at": closes,
                **extra}, headers={"Accept-Language": language})
            page = response.get_data(as_text=True)
            assert response.status_code == 422, (path, opens, closes)
            assert DATETIME_HELP[language] in page, (path, opens, closes)
            assert "Not a valid" not in page and "不是有效的日期" not in page
    assert count(session, Round) == before
    assert session.get(Round, draft.id).title != "Impossible"


def test_a_round_time_typed_as_the_message_asks_is_taken(client, session, world):
    """Where a browser shows a text box, the form the message names is accepted."""
    login(client, world["manager"])
    before = count(session, Round)
    response = client.post("/manage/rounds/new", data={
        "title": "Typed by hand", "branch_id": "0", "opens_at": "2026-03-05 09:00",
        "closes_at": "2026-03-12 18:00"})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    assert count(session, Round) == before + 1


def test_an_impossible_hire_date_says_what_to_type_in_chinese(client, session, world):
    login(client, world["admin"])
    before = count(session, User)
    response = client.post("/admin/users/new", data={
        "username": "newrep", "display_name": "New Rep", "password": "a long password 1",
        "role": "rep", "branch_id": "0", "hired_on": "2026-02-30"},
        headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 422
    assert DATE_HELP["zh-CN"] in response.get_data(as_text=True)
    assert count(session, User) == before


# --- rule settings ------------------------------------------------------------------------------

def settings_data(app, session) -> dict:
    with app.test_request_context():
        form = rules_settings_form(parsed(active_rule_set(session)))
        return {field.name: field._value() for field in form if field.name != "csrf_token"}


def test_rule_settings_refuse_non_finite_and_huge_numbers(app, client, session, world):
    login(client, world["admin"])
    data = settings_data(app, session)
    values = ["Infinity", "-Infinity", "inf", "NaN", "sNaN", "1e400", "-1e400", "1e13", "²",
              "9" * 400]
    names = ("min_tenure_months", "cooldown_months", "weight_0", "capacity_max",
             "max_open_incidents")
    for value, name in itertools.product(values, names):
        response = client.post("/admin/rules/settings", data={**data, name: value})
        assert response.status_code == 422, (name, value, response.status_code)
    response = client.post("/admin/rules/settings", data=data)
    assert response.status_code == 200


def field_errors(page: str, name: str) -> list[str]:
    """The error messages shown with the field `name` (_macros.html's field)."""
    match = re.search(rf'id="{name}"(.*?)</div>', page, re.S)
    return re.findall(r'<p class="error">(.*?)</p>', match.group(1)) if match else []


def test_a_number_that_is_not_one_gets_one_message_naming_the_fields_own_range(
        app, client, session, world):
    login(client, world["admin"])
    data = settings_data(app, session)
    with app.test_request_context():
        form = rules_settings_form(parsed(active_rule_set(session)))
    capacity = next(v for v in form.capacity_max.validators if isinstance(v, NumberRange))
    tenure = next(v for v in form.min_tenure_months.validators if isinstance(v, NumberRange))
    page = client.post("/admin/rules/settings", data={**data, "capacity_max": "abc"}
                       ).get_data(as_text=True)
    assert field_errors(page, "capacity_max") == [
        f"Enter a whole number in digits 0-9, between {capacity.min:,} and {capacity.max:,}."]
    page = client.post("/admin/rules/settings", data={**data, "min_tenure_months": "NaN"}
                       ).get_data(as_text=True)
    assert field_errors(page, "min_tenure_months") == [
        f"Enter a number between {tenure.min:,} and {tenure.max:,}."]


def test_full_width_digits_read_as_digits_in_every_number_field(app, client, session, world):
    """Chinese input methods type １０: a whole-number field takes it as a decimal one does."""
    login(client, world["admin"])
    data = settings_data(app, session)
    for name in ("capacity_max", "min_tenure_months"):
        response = client.post("/admin/rules/settings", data={**data, name: "３５"})
        assert response.status_code == 200, name
    assert parse_yuan("１２００００") == parse_yuan("１２万") == 120_000


def test_an_amount_typed_with_w_for_wan_reads_as_wan():
    """10w is how people type 10万 in a hurry; before, the list's filter called it no amount."""
    assert parse_yuan("10w") == parse_yuan("10W") == parse_yuan("10 w") == 100_000
    assert parse_yuan("1.5w") == 15_000 and parse_yuan("-2w") == -20_000
    for not_an_amount in ("w", "10ww", "10wan", "10w元", "1.23456w"):
        assert parse_yuan(not_an_amount) is None, not_an_amount


# --- control characters -----------------------------------------------------------------------

def test_anonymous_login_with_control_characters_is_a_field_error(client, world):
    for bad in ["\x00", "a\x00b", "\x1b[31m", "\x7f", "\x85"]:
        response = client.post("/login", data={"username": bad, "password": PASSWORD})
        assert response.status_code == 422
        assert "Control characters" in response.get_data(as_text=True)
        response = client.post("/login", data={"username": world["rep"].username,
                                               "password": PASSWORD + bad})
        assert response.status_code == 422


@pytest.mark.parametrize("bad", ["\x00", "\x1b"])
def test_control_characters_in_forms_change_nothing(client, session, world, bad):
    login(client, world["manager"])
    before = count(session, Round)
    response = client.post("/manage/rounds/new", data={
        "title": f"Spring{bad} round", "branch_id": "0", "opens_at": "2026-03-05T09:00",
        "closes_at": "2026-03-12T18:00"})
    assert response.status_code == 422
    assert count(session, Round) == before
    page = response.get_data(as_text=True)
    assert 'value="Spring round"' in page and bad not in page

    login(client, world["rep"])
    response = client.post(f"/listings/{world['listing'].id}/bid", data={
        "account_plan": f"A careful plan {bad} for this account.",
        "committed_revenue_yuan": "300000", "visit_plan": "Visit the decision maker first."})
    assert response.status_code == 422
    assert count(session, Bid) == 0


def test_multi_line_text_keeps_tabs_and_line_breaks(client, session, world):
    login(client, world["rep"])
    response = client.post(f"/listings/{world['listing'].id}/bid", data={
        "account_plan": "Step one:\tcall.\r\nStep two:\tvisit the plant.",
        "committed_revenue_yuan": "300000", "visit_plan": "Visit the decision maker first."})
    assert response.status_code == 303
    assert count(session, Bid) == 1


def test_control_characters_in_search_boxes_are_dropped(client, world):
    round_id = world["open_round"].id
    login(client, world["rep"])
    for bad in SEARCH_TEXT:
        response = client.get(f"/rounds/{round_id}", query_string={
            "q": bad, "industry": bad, "ownership": bad, "sort": bad})
        assert response.status_code == 200, bad
    login(client, world["manager"])
    for bad in SEARCH_TEXT:
        response = client.get(f"/manage/rounds/{round_id}",
                              query_string={"q": bad, "industry": bad, "status": bad})
        assert response.status_code == 200, bad
        response = client.get("/manage/accountability", query_string={"status": bad})
        assert response.status_code == 200, bad
        response = client.get("/manage/reviews", query_string={"status": bad, "rep": bad,
                                                               "branch": bad, "page": bad})
        assert response.status_code == 200, bad


def test_query_names_that_url_for_reserves_do_not_break_the_register(client, world):
    login(client, world["manager"])
    for query in ("endpoint=x", "_scheme=javascript", "_method=DELETE", "_external=1",
                  "_anchor=x", "page=2&endpoint=x&branch=1"):
        for path in ("/manage/filings", "/manage/filings.csv"):
            response = client.get(f"{path}?{query}")
            assert response.status_code == 200, (path, query, response.status_code)


def test_select_ids_beyond_the_database_range_are_refused(client, session, world):
    login(client, world["admin"])
    text = active_rule_set(session).text
    for value in (str(2**31), "9" * 30, "٣", "²"):
        response = client.post("/admin/rules/what-if", data={"text": text, "round_id": value})
        assert response.status_code == 200, value
        assert "Choose a round to replay." in response.get_data(as_text=True)
    login(client, world["manager"])
    before = count(session, Round)
    for value in (str(2**31), "9" * 30, "٣"):
        response = client.post("/manage/rounds/new", data={
            "title": "Spring round", "branch_id": value, "opens_at": "2026-03-05T09:00",
            "closes_at": "2026-03-12T18:00"})
        assert response.status_code == 422, value
        for path in ("/manage/transfer/summary", "/manage/transfer"):
            response = client.post(path, data={
                "account": str(world["listing"].account_id), "to_rep": value, "owner": "none",
                "reason": "Moving it for a good reason."})
            assert response.status_code == 422, (path, value)
        for name in ("account", "to_rep", "from_rep"):
            response = client.get("/manage/transfer/picks", query_string={name: value})
            assert response.status_code == 400, (name, value)
    assert count(session, Round) == before


# --- select fields -------------------------------------------------------------------------------

# Selects that take any value and leave it to a validator or the use case, whose messages name
# what is allowed: the reviewers (validate_reviewer_ids); an executive's title, which the use
# case reads for the executive role only ("Choose the executive's title.") and a form may leave
# out for the others; and a review's points per criterion (domain/reviews.py, "Score the plan
# from 1 to 5."), on a form made per round's rules.
SELECTS_JUDGED_ELSEWHERE = {("ReviewersForm", "reviewer_ids"),
                            ("NewUserForm", "executive_title"),
                            ("UserEditForm", "executive_title")}
GARBAGE_CHOICES = ["abc", "-1", "0.5", "999999", str(2**63), "²", "<b>x</b>"]


def form_classes():
    """Every form class of the app, but those made inside a function (per round's rules)."""
    from bidhub.web.forms import Form

    found, stack = [], [Form]
    while stack:
        for subclass in stack.pop().__subclasses__():
            stack.append(subclass)
            if "<locals>" not in subclass.__qualname__:
                found.append(subclass)
    return found


def select_fields(form_class):
    from wtforms import SelectField
    from wtforms.fields.core import UnboundField

    for name in dir(form_class):
        unbound = getattr(form_class, name, None)
        if isinstance(unbound, UnboundField) and issubclass(unbound.field_class, SelectField):
            yield name, unbound


def test_every_select_refuses_a_value_it_does_not_offer_with_one_clear_message(app):
    from werkzeug.datastructures import MultiDict
    from wtforms.fields.choices import SelectChoice

    from bidhub.web.review_panels import ReviewersForm

    extra = {ReviewersForm: {"candidates": []}}
    checked = set()
    for form_class in form_classes():
        for name, unbound in select_fields(form_class):
            if not unbound.kwargs.get("validate_choice", True):
                assert (form_class.__name__, name) in SELECTS_JUDGED_ELSEWHERE, name
                continue
            for value in GARBAGE_CHOICES:
                with app.test_request_context(method="POST"):
                    form = form_class(formdata=MultiDict({name: value}),
                                      **extra.get(form_class, {}))
                    for other, _unbound in select_fields(form_class):
                        if form[other].choices is None:  # the view offers the rows there are
                            form[other].choices = [SelectChoice(0, "—"), SelectChoice(7, "7")]
                    form.validate()
                    assert [str(error) for error in form[name].errors] == [
                        "Choose one of the listed options."], (form_class.__name__, name, value)
            checked.add((form_class.__name__, name))
    assert {("UserForm", "branch_id"), ("NewUserForm", "branch_id"),
            ("DesignateForm", "sponsor"), ("RoundForm", "branch_id"), ("DecisionForm", "kind"),
            ("ImportForm", "kind"), ("IncidentForm", "ad_type")} <= checked
    assert len(checked) >= 20


def test_tampered_selects_on_admin_and_management_forms_get_the_clear_message_in_chinese(
        client, session, world, make_account):
    login(client, world["admin"])
    users = count(session, User)
    for value in ("-1", "abc", "999999"):
        response = client.post("/admin/users/new", data={
            "username": "newrep", "display_name": "New Rep", "password": PASSWORD,
            "role": "rep", "branch_id": value}, headers={"Accept-Language": "zh-CN"})
        page = response.get_data(as_text=True)
        assert response.status_code == 422 and "请从列表中选择。" in page, value
        assert "无法转化" not in page and "不是有效的选择" not in page
    assert count(session, User) == users
    account = make_account()
    login(client, world["manager"])
    for value in ("abc", "-1", "999999"):
        response = client.post(f"/sponsors/accounts/{account.id}", data={"sponsor": value},
                               headers={"Accept-Language": "zh-CN"})
        assert response.status_code == 422 and "请从列表中选择。" in response.get_data(
            as_text=True), value
    reload(session)
    assert session.get(type(account), account.id).sponsor_id is None


def test_the_control_characters_refused_are_exactly_unicodes_cc():
    import sys
    import unicodedata

    every = "".join(chr(code) for code in range(sys.maxunicode + 1) if not 0xD800 <= code <= 0xDFFF)
    cc = [char for char in every if unicodedata.category(char) == "Cc"]
    assert params.control_characters(every) == cc and len(cc) == 65
    assert params.control_characters(every, multiline=True) == [c for c in cc if c not in "\t\r\n"]
    assert params.clean_text("a\x00b\u0085c\u200bd\t", 100) == "abc\u200bd"


# --- the bid form's one-time key --------------------------------------------------------------

@pytest.mark.parametrize("key", ["k" * 65, "k" * 5_000, "é" * 8, "a b", "<x>"])
def test_a_bid_key_the_form_never_issued_is_refused_without_a_write(client, session, world, key):
    """The key was stored as sent: past its column's 64 characters that failed on PostgreSQL."""
    login(client, world["rep"])
    data = {"account_plan": "A careful plan for this account.", "committed_revenue_yuan": "300000",
            "visit_plan": "Visit the decision maker in week one.", "submission_key": key}
    for _ in range(2):
        response = client.post(f"/listings/{world['listing'].id}/bid", data=data)
        assert response.status_code == 422
        assert "The form expired. Reload the page and try again." in response.get_data(
            as_text=True)
    assert count(session, Bid) == 0
    response = client.post(f"/listings/{world['listing'].id}/bid",
                           data={**data, "submission_key": "Ab_-" * 16})
    assert response.status_code == 303
    assert count(session, Bid) == 1


# --- hidden fields sent back unreadable ----------------------------------------------------------

def test_a_hidden_field_sent_back_with_a_control_character_is_said_for_the_whole_form(
        client, session, world, make_bid):
    """A one-time key, a version or an `expected` fingerprint nobody types comes back with a
    control character: the form is refused (422), nothing changes, and the page says so where
    the person sending it can read it, not on a field the page never shows."""
    rep, manager, admin = world["rep"], world["manager"], world["admin"]
    bid = make_bid(rep, world["listing"])
    incident = world["incident"]
    said = "表单已过期，请刷新页面后重试。"
    cases = [
        (rep, f"/bids/{bid.id}/edit", {
            "account_plan": "先拜访决策人，了解招聘需求，三个月内提出年度合作方案。",
            "visit_plan": "第一周拜访总经理，第二周与人力资源部确定合作方案。",
            "committed_revenue_yuan": "500000", "version": "1", "submission_key": "a\x00"}),
        (manager, "/manage/rounds/new", {
            "title": "春季补充轮", "branch_id": "0", "opens_at": "2026-03-05T09:00",
            "closes_at": "2026-03-12T18:00", "submission_key": "\x00"}),
        (manager, f"/manage/accountability/incidents/{incident.id}/resolve", {
            "outcome": "upheld", "note": "No answer was given in time.", "version": "1\x00"}),
        (admin, f"/admin/users/{rep.id}", {
            "display_name": "改过的名字", "role": "rep", "branch_id": "0", "expected": "a\x00"}),
    ]
    before = {model: count(session, model) for model in (Round, AccountabilityIncident)}
    for user, url, data in cases:
        login(client, user)
        response = client.post(url, data=data, headers={"Accept-Language": "zh-CN"})
        assert response.status_code == 422, url
        page = response.get_data(as_text=True)
        assert re.search(r'<div class="form-errors" role="alert">\s*<p>' + said, page), url
    reload(session)
    assert {model: count(session, model) for model in before} == before
    assert session.get(AccountabilityIncident, incident.id).status == "open"
    assert session.get(User, rep.id).display_name != "改过的名字"
    assert session.get(Bid, bid.id).committed_revenue_yuan == 300_000
