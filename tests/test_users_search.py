"""The admin's users list: a search box (name, username, employee id or email, in any case
and width), a role and a branch pick the users; what cannot be applied is said."""

from __future__ import annotations

import html
import re

import pytest

from bidhub.models import Role
from tests.conftest import login


def listed(client, query: str = "") -> list[str]:
    response = client.get(f"/admin/users{query}")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    return [html.unescape(name) for name in re.findall(
        r'<td class="name"><a href="/admin/users/\d+">([^<]*)</a>', body)]


@pytest.fixture
def admin_client(app, session, make_admin, make_rep, make_manager, make_branch):
    admin = make_admin(name="Admin Chen")
    shanghai = make_branch("SH", "Shanghai")
    wang = make_rep(name="王伟", username="wangwei")
    wang.external_id, wang.email = "E-1001", "wang.wei@example.com"
    make_rep(name="Ｌｉ Ｎａ", username="lina", branch=shanghai)
    make_manager(name="Zhou Jianguo", username="zhoujg")
    session.commit()
    client = app.test_client()
    login(client, admin)
    return client


@pytest.mark.parametrize("query, names", [
    ("", ["王伟", "Ｌｉ Ｎａ", "Zhou Jianguo", "Admin Chen"]),
    ("?q=王", ["王伟"]),
    ("?q=WANGWEI", ["王伟"]),
    ("?q=e-1001", ["王伟"]),
    ("?q=example.com", ["王伟"]),
    ("?q=li na", ["Ｌｉ Ｎａ"]),  # full-width letters, typed half-width
    ("?q=zhou+jg", ["Zhou Jianguo"]),  # each word in any of the fields
    ("?q=zhou+xyz", []),  # but every word somewhere
    ("?role=ka_manager", ["Zhou Jianguo"]),
    ("?role=rep&q=li", ["Ｌｉ Ｎａ"]),
    ("?q=王%E2%80%8B", ["王伟"]),  # a zero-width space pasted with the name is no part of it
    ("?q=%EF%BB%BFwang%E2%80%AE", ["王伟"]),
])
def test_the_search_and_the_role_pick_users(admin_client, query, names):
    assert sorted(listed(admin_client, query)) == sorted(names)


def test_the_branch_picks_its_users(admin_client, session):
    from sqlalchemy import select

    from bidhub.models import Branch
    shanghai = session.scalars(select(Branch).where(Branch.code == "SH")).one()
    assert listed(admin_client, f"?branch={shanghai.id}") == ["Ｌｉ Ｎａ"]


@pytest.mark.parametrize("query, value", [("?role=boss", "boss"), ("?branch=abc", "abc"),
                                          ("?branch=99999", "99999")])
def test_a_filter_that_cannot_be_applied_is_said_and_the_list_is_shown_without_it(
        admin_client, query, value):
    response = admin_client.get(f"/admin/users{query}")
    assert response.status_code == 200
    body = html.unescape(response.get_data(as_text=True))
    assert f"“{value}” is not one of the choices in the list" in body
    assert len(listed(admin_client, query)) == 4


def test_the_htmx_filter_answers_with_the_rows_alone(admin_client):
    response = admin_client.get("/admin/users?q=zhou", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="user-rows">')
    assert "1 user" in body and "Zhou Jianguo" in body
    assert "<html" not in body


def test_no_match_says_so(admin_client):
    body = admin_client.get("/admin/users?q=nobody-here").get_data(as_text=True)
    assert "No users match." in body and "0 users" in body


def test_roles_in_the_menu_are_every_role():
    from bidhub.web.labels import ROLE_LABELS
    assert set(ROLE_LABELS) == set(Role)


def test_a_search_past_its_limit_searches_its_start_and_says_so(admin_client):
    query = "wangwei" + "x" * 120
    response = admin_client.get("/admin/users", query_string={"q": query})
    body = html.unescape(response.get_data(as_text=True))
    assert ("The search text is longer than 100 characters; only its first 100 are searched "
            "for.") in body
    assert f'value="{query[:100]}"' in body
    assert listed(admin_client, "?q=" + "wangwei" + "x" * 93) == []


def test_the_search_box_shows_the_text_without_invisible_controls(admin_client):
    body = admin_client.get("/admin/users?q=%E2%80%AEwang").get_data(as_text=True)
    assert 'value="wang"' in body and "\u202e" not in body
