"""Free text (notes, reasons, plans, answers) is never cut by the browser: its fields carry no
maxlength, and the server refuses a text past the limit with the limit and the length sent,
saving nothing and showing the text again whole. Names and codes keep their maxlength."""

from __future__ import annotations

import html
import importlib
import pkgutil
import re

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

import bidhub.web
from bidhub.models import RuleSetVersion
from bidhub.services.rule_sets import active_rule_set
from bidhub.web.forms import LINE_LIMIT, Form, length_limit
from tests.conftest import reload


def every_form_class() -> list[type[Form]]:
    for module in pkgutil.iter_modules(bidhub.web.__path__):
        importlib.import_module(f"bidhub.web.{module.name}")
    found, waiting = [], list(Form.__subclasses__())
    while waiting:
        form_class = waiting.pop()
        found.append(form_class)
        waiting.extend(form_class.__subclasses__())
    return found


def limited_fields(app):
    """(form class, field name, limit) of every text field with a length limit."""
    fields = []
    with app.test_request_context():
        for form_class in every_form_class():
            try:
                form = form_class(formdata=None, meta={"csrf": False})
            except TypeError:
                continue  # a form built with its choices (ReviewersForm): no free text
            fields += [(form_class, field.name, length_limit(field)) for field in form
                       if length_limit(field) is not None]
    return fields


def test_free_text_carries_no_maxlength_and_names_keep_theirs(app):
    fields = limited_fields(app)
    free = [(form_class, name) for form_class, name, limit in fields if limit > LINE_LIMIT]
    short = [(form_class, name, limit) for form_class, name, limit in fields
             if limit <= LINE_LIMIT]
    names = {f"{form_class.__name__}.{name}" for form_class, name in free}
    assert {"RulesDraftForm.note", "DecisionForm.reason", "AppealForm.ground",
            "TransferForm.reason", "ReleaseForm.note"} <= names
    assert any(name == "username" for _, name, _ in short)
    with app.test_request_context():
        for form_class, name in free:
            rendered = str(form_class(formdata=None, meta={"csrf": False})[name]())
            assert "maxlength" not in rendered, (form_class.__name__, rendered)
        for form_class, name, limit in short:
            rendered = str(form_class(formdata=None, meta={"csrf": False})[name]())
            assert f'maxlength="{limit}"' in rendered, (form_class.__name__, rendered)


def test_free_text_past_its_limit_is_refused_with_both_lengths(app):
    with app.test_request_context():
        for form_class, name, limit in limited_fields(app):
            if limit <= LINE_LIMIT:
                continue
            sent = "字" * (limit + 7)
            form = form_class(formdata=MultiDict({name: sent}), meta={"csrf": False})
            form[name].validate(form)  # the field alone: other fields get their choices in views
            assert form[name].errors == [
                f"At most {limit:,} characters fit here; the text sent has {limit + 7:,}. "
                "Shorten it and send it again."], (form_class.__name__, name)
            assert form[name].data == sent  # shown again whole


def test_a_change_note_too_long_is_refused_whole_and_nothing_is_adopted(
        app, session, make_admin, login_as):
    client = login_as(make_admin())
    before = active_rule_set(session)
    draft = before.text.replace("cooldown_months = 6", "cooldown_months = 9")
    note = "规则调整说明。" * 150  # 1,050 characters, past the change note's 1,000
    page = client.get("/admin/rules").get_data(as_text=True)
    [note_input] = re.findall(r'<input[^>]*id="note"[^>]*>', page)
    assert "maxlength" not in note_input
    for language, refusal in (
            ("en", "At most 1,000 characters fit here; the text sent has 1,050. Shorten it and "
                   "send it again."),
            ("zh-CN", "此处最多 1,000 个字符，提交的文本有 1,050 个字符。请删减后重新提交。")):
        response = client.post("/admin/rules/adopt", headers={"Accept-Language": language},
                               data={"text": draft, "note": note,
                                     "expected_active_id": before.id})
        assert response.status_code == 422
        page = html.unescape(response.get_data(as_text=True))
        assert refusal in page
        assert f'value="{note}"' in page
    reload(session)
    assert session.scalars(select(RuleSetVersion)).all() == [before]
