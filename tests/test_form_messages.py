"""Every form's field errors read in the project's words, numbers shown as elsewhere."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from wtforms.fields.core import UnboundField

import bidhub.web
from bidhub.domain.reviews import ReviewCriterion, ReviewRules
from bidhub.domain.rules import parse_rules
from bidhub.web.forms import Form, rules_settings_form
from tests.conftest import login

RULES = Path(__file__).resolve().parents[1] / "rules" / "default.toml"
# Where validators come from whose messages, when none is given, are WTForms' own.
DEFAULT_MESSAGE_MODULES = ("wtforms.validators", "flask_wtf.file")


def every_form_class() -> list[type]:
    for module in pkgutil.iter_modules(bidhub.web.__path__):
        importlib.import_module(f"bidhub.web.{module.name}")
    found, waiting = [], [Form]
    while waiting:
        cls = waiting.pop()
        found.append(cls)
        waiting.extend(cls.__subclasses__())
    return found


def class_validators(cls: type):
    for name in dir(cls):
        field = getattr(cls, name, None)
        if isinstance(field, UnboundField):
            given = field.kwargs.get("validators") or (field.args[1] if len(field.args) > 1
                                                       else ())
            for validator in given or ():
                yield f"{cls.__module__}.{cls.__qualname__}.{name}", validator


def shows_default_message(validator) -> bool:
    """A validator without a message of its own whose check is WTForms' (or Flask-WTF's):
    it would say "This field is required." or "Number must be between 1 and 1000."
    """
    return (getattr(validator, "message", "") is None
            and type(validator).__call__.__module__ in DEFAULT_MESSAGE_MODULES)


def built_forms(app):
    """The forms built from data (the rule settings, a round's review form), as pages do."""
    from bidhub.web.application_reviews import review_form

    rules = parse_rules(RULES.read_text(encoding="utf-8"))
    review = ReviewRules(criteria=(ReviewCriterion("fit", "Fit", 1, 5),), min_reviews_per_bid=1)
    with app.test_request_context():
        for form in (rules_settings_form(rules), review_form(review)):
            for field in form:
                for validator in field.validators:
                    yield f"{type(form).__qualname__}.{field.name}", validator


def test_no_form_field_shows_a_wtforms_default_message(app):
    classes = every_form_class()
    assert len(classes) > 20  # the walk found the app's forms
    offenders = sorted({where for cls in classes for where, validator in class_validators(cls)
                        if shows_default_message(validator)}
                       | {where for where, validator in built_forms(app)
                          if shows_default_message(validator)})
    assert offenders == []


@pytest.mark.parametrize(("language", "required", "short"), [
    ("en", "Fill in this field.",
     "At least 10 characters are needed here; the text sent has 5. Add to it and send it again."),
    ("zh-CN", "请填写此项。", "此处至少需要 10 个字符，提交的文本有 5 个字符。请补充后重新提交。"),
])
def test_a_missing_or_short_text_reads_as_the_other_messages(session, login_as, make_manager,
                                                             language, required, short):
    client = login_as(make_manager())
    response = client.post("/manage/transfer/summary", data={
        "account": "", "to_rep": "", "reason": "short"},
        headers={"Accept-Language": language})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert short in page
    response = client.post("/manage/transfer/summary", data={"account": "1", "reason": ""},
                           headers={"Accept-Language": language})
    assert required in response.get_data(as_text=True)


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "Enter a whole number between 1 and 1,000."),
    ("zh-CN", "请输入 1 到 1,000 之间的整数。"),
])
def test_a_count_out_of_range_names_its_bounds_grouped(session, make_admin, language, expected,
                                                       app):
    client = app.test_client()
    login(client, make_admin())
    page = client.get("/admin/rules").get_data(as_text=True)
    form = re.search(r'<form[^>]*action="/admin/rules/settings".*?</form>', page, re.S).group(0)
    data = dict(re.findall(r'name="([^"]+)"[^>]*value="([^"]*)"', form))
    response = client.post("/admin/rules/settings",
                           data={**data, "max_awards_per_rep_per_round": "5000"},
                           headers={"Accept-Language": language})
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert expected in text, re.findall(r'<p class="error"[^>]*>([^<]*)', text)
