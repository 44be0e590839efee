"""Each limit on what people type is defined once: the form and the service refuse alike."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from werkzeug.datastructures import MultiDict

from bidhub.config import Defaults
from bidhub.domain.eligibility import ELIGIBILITY_SETTINGS
from bidhub.domain.errors import InvalidRequest
from bidhub.domain.rules import MAX_ABS_WEIGHT, RuleError, parse_rules
from bidhub.models import RoundStatus
from bidhub.services import accountability, bidding, filings, imports, limits, rounds, users
from bidhub.services.filings import transfer_account
from bidhub.web.accountability import AccountabilityReleaseForm, ExplanationForm
from bidhub.web.forms import BidForm, TransferForm, UserForm, rules_settings_form
from tests.conftest import login

ROOT = Path(__file__).resolve().parent.parent
PLAN = "p" * limits.MIN_PLAN_LENGTH
VISIT = "v" * limits.MIN_PLAN_LENGTH


def form_errors(app, form_class, data: dict) -> dict[str, list[str]]:
    with app.test_request_context(method="POST", data=data):
        form = form_class(formdata=MultiDict(data))
        form.validate()
        return {name: [str(error) for error in errors] for name, errors in form.errors.items()}


def field_errors(app, form_class, name: str, value: str) -> list[str]:
    """One field's messages; the form's other fields (select choices, ids) play no part."""
    with app.test_request_context(method="POST"):
        form = form_class(formdata=MultiDict({name: value}))
        form[name].validate(form)
        return [str(error) for error in form[name].errors]


def numbers_in(message: str) -> set[int]:
    return {int(number) for number in re.findall(r"\d+", message.replace(",", ""))}


def test_the_services_use_the_one_definition_of_each_limit():
    assert rounds.MIN_REVIEW_LENGTH is limits.MIN_REVIEW_LENGTH
    assert filings.MIN_REVIEW_LENGTH is limits.MIN_REVIEW_LENGTH
    assert filings.MIN_REASON_LENGTH is limits.MIN_REASON_LENGTH
    assert accountability.MIN_EXPLANATION_LENGTH is limits.MIN_EXPLANATION_LENGTH
    assert users.MIN_PASSWORD_LENGTH is limits.MIN_PASSWORD_LENGTH
    assert users.MAX_PASSWORD_LENGTH is limits.MAX_PASSWORD_LENGTH
    assert bidding.MIN_PLAN_LENGTH is limits.MIN_PLAN_LENGTH


@pytest.mark.parametrize("field", ["account_plan", "visit_plan"])
def test_a_plan_one_character_short_is_refused_by_form_and_service_with_the_same_number(
        app, field):
    short = "x" * (limits.MIN_PLAN_LENGTH - 1)
    data = {"account_plan": PLAN, "visit_plan": VISIT, "committed_revenue_yuan": "1000"}
    assert form_errors(app, BidForm, data) == {}
    errors = form_errors(app, BidForm, data | {field: short})
    assert list(errors) == [field]
    assert limits.MIN_PLAN_LENGTH in numbers_in(errors[field][0])

    plans = {"account_plan": PLAN, "visit_plan": VISIT} | {field: short}
    with pytest.raises(InvalidRequest) as refused:
        bidding.check_bid_content(plans["account_plan"], 1000, plans["visit_plan"])
    assert refused.value.field == field
    assert limits.MIN_PLAN_LENGTH in numbers_in(str(refused.value))
    bidding.check_bid_content(PLAN, 1000, VISIT)


def test_a_plan_of_spaces_counts_as_empty_in_the_service():
    padded = " " * limits.MIN_PLAN_LENGTH + "short"
    with pytest.raises(InvalidRequest):
        bidding.check_bid_content(padded, 1000, VISIT)


def test_revenue_above_the_limit_is_refused_by_form_and_service(app):
    data = {"account_plan": PLAN, "visit_plan": VISIT,
            "committed_revenue_yuan": str(limits.MAX_REVENUE_YUAN + 1)}
    assert list(form_errors(app, BidForm, data)) == ["committed_revenue_yuan"]
    with pytest.raises(InvalidRequest):
        bidding.check_bid_content(PLAN, limits.MAX_REVENUE_YUAN + 1, VISIT)
    bidding.check_bid_content(PLAN, limits.MAX_REVENUE_YUAN, VISIT)


@pytest.fixture
def held_account(make_rep, make_account):
    return make_account(owner=make_rep())


def test_release_and_transfer_ask_the_same_review_length(
        session, clock, make_round, make_manager, make_rep, held_account):
    short = "r" * (limits.MIN_REVIEW_LENGTH - 1)
    manager = make_manager()
    draft = make_round(status=RoundStatus.DRAFT, closes_at=clock() + timedelta(days=5))
    with pytest.raises(InvalidRequest) as release_refused:
        rounds.release_account(session, manager, draft.id, account_id=held_account.id,
                               reason="neglected", note="", review_text=short, now=clock())
    session.rollback()
    with pytest.raises(InvalidRequest) as transfer_refused:
        transfer_account(session, manager, account_id=held_account.id, to_rep_id=make_rep().id,
                         reason="Owner left the company.", review_text=short, now=clock())
    session.rollback()
    for refused in (release_refused.value, transfer_refused.value):
        assert refused.field == "review_text"
        assert limits.MIN_REVIEW_LENGTH in numbers_in(str(refused))

    enough = "r" * limits.MIN_REVIEW_LENGTH
    transfer_account(session, manager, account_id=held_account.id, to_rep_id=make_rep().id,
                     reason="Owner left the company.", review_text=enough, now=clock())


def test_the_review_forms_state_and_check_the_services_length(app):
    short = "r" * (limits.MIN_REVIEW_LENGTH - 1)
    [error] = field_errors(app, AccountabilityReleaseForm, "review_text", short)
    assert limits.MIN_REVIEW_LENGTH in numbers_in(error)
    with app.test_request_context():
        for form_class in (TransferForm, AccountabilityReleaseForm):
            description = str(form_class().review_text.description)
            assert limits.MIN_REVIEW_LENGTH in numbers_in(description)


def test_the_transfer_reason_length_is_the_services(
        app, session, clock, make_manager, make_rep, held_account):
    short = "t" * (limits.MIN_REASON_LENGTH - 1)
    [error] = field_errors(app, TransferForm, "reason", short)
    assert limits.MIN_REASON_LENGTH in numbers_in(error)
    with pytest.raises(InvalidRequest) as refused:
        transfer_account(session, make_manager(), account_id=held_account.id,
                         to_rep_id=make_rep().id,
                         reason=short, review_text="r" * limits.MIN_REVIEW_LENGTH, now=clock())
    assert limits.MIN_REASON_LENGTH in numbers_in(str(refused.value))


def test_the_explanation_and_password_forms_use_the_services_minimum(app):
    [error] = field_errors(app, ExplanationForm, "explanation",
                           "e" * (limits.MIN_EXPLANATION_LENGTH - 1))
    assert limits.MIN_EXPLANATION_LENGTH in numbers_in(error)
    [error] = field_errors(app, UserForm, "password", "p" * (limits.MIN_PASSWORD_LENGTH - 1))
    assert limits.MIN_PASSWORD_LENGTH in numbers_in(error)
    with pytest.raises(InvalidRequest) as refused:
        users.check_password_rules("p" * (limits.MIN_PASSWORD_LENGTH - 1))
    assert limits.MIN_PASSWORD_LENGTH in numbers_in(str(refused.value))


def weight_rules(weight: float) -> str:
    return (ROOT / "rules" / "default.toml").read_text("utf-8").replace(
        "weight = ", f"weight = {weight!r}  # ", 1)


def test_the_settings_form_bounds_factor_weights_where_the_rule_parser_does(app):
    assert limits.MAX_FACTOR_WEIGHT == MAX_ABS_WEIGHT
    parse_rules(weight_rules(MAX_ABS_WEIGHT))
    with pytest.raises(RuleError, match=f"{MAX_ABS_WEIGHT:g}"):
        parse_rules(weight_rules(MAX_ABS_WEIGHT + 1))

    rules = parse_rules(weight_rules(1.0))
    with app.test_request_context(method="POST"):
        form = rules_settings_form(rules)
        weight_field = form.weight_0
        [bound] = [validator for validator in weight_field.validators
                   if hasattr(validator, "max")]
        assert (bound.min, bound.max) == (-MAX_ABS_WEIGHT, MAX_ABS_WEIGHT)


def test_the_time_zone_is_written_once_in_the_configuration():
    assert imports.DEFAULT_ZONE == Defaults.TIMEZONE
    written = [path.relative_to(ROOT).as_posix() for path in (ROOT / "bidhub").rglob("*.py")
               if Defaults.TIMEZONE in path.read_text("utf-8")]
    assert written == ["bidhub/config.py"]


def test_the_capacity_fallback_is_the_rule_registrys_default_and_the_default_rule_files():
    default_rules = parse_rules((ROOT / "rules" / "default.toml").read_text("utf-8"))
    fallback = filings.DEFAULT_CAPACITY_MAX
    assert fallback == ELIGIBILITY_SETTINGS["capacity_max"].default
    assert fallback == default_rules.eligibility.capacity_max


def test_the_pages_state_the_lengths_the_services_ask(client, make_rep, make_account, make_round):
    rep = make_rep()
    round_ = make_round(accounts=[make_account()])
    login(client, rep)
    password_page = client.get("/password").get_data(as_text=True)
    assert f"At least {limits.MIN_PASSWORD_LENGTH} characters" in password_page
    bid_page = client.get(f"/listings/{round_.listings[0].id}/bid").get_data(as_text=True)
    assert f"At least {limits.MIN_PLAN_LENGTH} characters" in bid_page
    assert f'minlength="{limits.MIN_PLAN_LENGTH}"' in bid_page


def test_a_name_and_a_title_are_as_long_as_their_columns_in_form_and_service(
        app, session, clock, make_branch, make_manager):
    """The forms stopped them; the command line (create-user) reached the use case, and
    PostgreSQL refused a name past its column with a failed write."""
    from bidhub.models import Round, User
    from bidhub.web.forms import RoundForm

    assert User.__table__.c.display_name.type.length == limits.MAX_DISPLAY_NAME_LENGTH
    assert Round.__table__.c.title.type.length == limits.MAX_ROUND_TITLE_LENGTH
    name = "名" * (limits.MAX_DISPLAY_NAME_LENGTH + 1)
    title = "期" * (limits.MAX_ROUND_TITLE_LENGTH + 1)
    assert field_errors(app, UserForm, "display_name", name)
    assert field_errors(app, RoundForm, "title", title)
    branch = make_branch()
    with pytest.raises(InvalidRequest) as refused:
        users.create_user(session, None, username="long", display_name=name,
                          password="a long password 123", role="rep", branch_id=branch.id,
                          now=clock())
    assert refused.value.field == "display_name"
    assert limits.MAX_DISPLAY_NAME_LENGTH in numbers_in(str(refused.value))
    session.rollback()
    manager = make_manager()
    with pytest.raises(InvalidRequest) as refused:
        rounds.create_round(session, manager, title=title, branch_id=None,
                            opens_at=clock() + timedelta(days=1),
                            closes_at=clock() + timedelta(days=8), now=clock())
    assert refused.value.field == "title"
    session.rollback()
    user = users.create_user(session, None, username="long", display_name=name[:-1],
                             password="a long password 123", role="rep", branch_id=branch.id,
                             now=clock())
    assert user.display_name == name[:-1]
    rounds.create_round(session, manager, title=title[:-1], branch_id=None,
                        opens_at=clock() + timedelta(days=1),
                        closes_at=clock() + timedelta(days=8), now=clock())


def test_create_user_on_the_command_line_refuses_a_name_too_long(app, session, make_branch):
    from sqlalchemy import func, select

    from bidhub.models import User

    make_branch()
    result = app.test_cli_runner().invoke(args=[
        "create-user", "--username", "long", "--name", "名" * (limits.MAX_DISPLAY_NAME_LENGTH + 1),
        "--role", "rep", "--branch", "BJ", "--password", "a long password 123"])
    assert result.exit_code != 0 and "Use at most 100 characters." in result.output, result.output
    session.rollback()
    assert session.scalar(select(func.count()).select_from(User)) == 0
