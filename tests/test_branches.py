"""Branches: the service, its admin pages and CLI, and finding a branch by what a file says."""

from __future__ import annotations

import pytest
from flask import render_template_string
from sqlalchemy import select

from bidhub.domain.errors import InvalidRequest
from bidhub.models import AuditEvent, Branch
from bidhub.services.branches import create_branch, find_branch


@pytest.fixture
def shanghai(session, clock):
    return create_branch(session, None, "SH", "Shanghai", "上海", clock())


@pytest.mark.parametrize("value", ["SH", "sh", " Sh ", "Shanghai", "SHANGHAI ", "上海", " 上海"])
def test_find_branch_matches_code_name_or_chinese_name(session, clock, shanghai, value):
    create_branch(session, None, "BJ", "Beijing", "北京", clock())
    assert find_branch(session, value).id == shanghai.id


@pytest.mark.parametrize("value", ["", "  ", None, "Shang", "上", "BJ"])
def test_find_branch_finds_nothing_for_other_values(session, shanghai, value):
    assert find_branch(session, value) is None


def test_find_branch_prefers_the_code_and_refuses_to_guess_between_two(session, clock):
    # Older data may name two branches alike; the service keeps new ones apart.
    session.add_all([Branch(code="NORTH", name="Beijing"), Branch(code="N2", name="north"),
                     Branch(code="A", name="Same"), Branch(code="B", name="same")])
    session.commit()
    assert find_branch(session, "north").code == "NORTH"
    assert find_branch(session, "same") is None


def test_branch_name_filter_follows_the_page_language(app, session, shanghai):
    plain = Branch(code="GZ", name="Guangzhou")
    for locale, expected in (("zh_CN", "上海|Guangzhou"), ("en", "Shanghai|Guangzhou")):
        with app.test_request_context(headers={"Accept-Language": locale.replace("_", "-")}):
            from flask import session as web_session

            web_session["locale"] = locale
            assert render_template_string("{{ a|branch_name }}|{{ b|branch_name }}",
                                          a=shanghai, b=plain) == expected


def test_create_branch_is_audited(session, clock):
    branch = create_branch(session, None, " HZ ", " Hangzhou ", " 杭州 ", clock())
    assert (branch.code, branch.name, branch.name_zh, branch.is_active) == (
        "HZ", "Hangzhou", "杭州", True)
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "branch.created")).one()
    assert event.target == f"branch:{branch.id}"
    assert event.after == {"code": "HZ", "name": "Hangzhou", "name_zh": "杭州", "is_active": True}


def test_a_code_or_name_another_branch_answers_to_is_refused(session, shanghai, clock):
    for code, name, name_zh, field in (("sh", "Other", None, "code"),
                                       ("X1", "shanghai", None, "name"),
                                       ("X2", "Other", "上海", "name_zh"),
                                       ("上海", "Other", None, "code"),
                                       ("X3", "sh", None, "name")):
        with pytest.raises(InvalidRequest) as refused:
            create_branch(session, None, code, name, name_zh, clock())
        assert refused.value.field == field
    assert session.scalar(select(Branch.id).where(Branch.code != "SH")) is None
