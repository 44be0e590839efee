"""Usernames: one form for what people type, a rule for what a username may be, and the same
answer from the users page, the command line, reps imports and the sign-in page."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import func, select

from bidhub.demo import EXECUTIVES, NAMED_REPS, STAFF
from bidhub.domain.errors import InvalidRequest
from bidhub.domain.typed_text import username_key, username_problem
from bidhub.models import User
from bidhub.services import users
from bidhub.services.imports import import_file
from tests.conftest import PASSWORD, login, reload

RULE = "A username uses only letters, digits and . _ - @, without spaces."
NEW_PASSWORD = "a long password 1"


def user_count(session) -> int:
    reload(session)
    return session.scalar(select(func.count()).select_from(User))


def new_user(client, branch, username: str, display_name: str = "New Rep"):
    return client.post("/admin/users/new", data={
        "username": username, "display_name": display_name, "password": NEW_PASSWORD,
        "role": "rep", "branch_id": str(branch.id)})


@pytest.mark.parametrize(("typed", "stored"), [
    ("rep01", "rep01"), (" Rep01 ", "rep01"), ("ＲＥＰ01", "rep01"), ("ｒｅｐ０１", "rep01"),
    ("rep01\u200b", "rep01"), ("\ufeffrep\u200d01\u202e", "rep01"), ("\u3000rep01\u00a0", "rep01"),
    ("王伟", "王伟"), ("li.na-2@bj_x", "li.na-2@bj_x"),
])
def test_a_username_is_kept_in_one_form(typed, stored):
    assert username_key(typed) == stored == users.normalise_username(typed)
    assert username_problem(stored) is None


@pytest.mark.parametrize("username", [
    "user name", "rep\u3000x", "😀", "rep😀", "<script>", "a/b", "a+b", "o'brien", "a,b", "#1",
])
def test_a_username_outside_the_rule_is_named_as_such(username):
    assert username_problem(username_key(username)) == RULE


def test_every_demo_username_keeps_to_the_rule():
    names = [name for name, *_ in STAFF] + [name for name, *_ in EXECUTIVES] + [*NAMED_REPS]
    assert all(username_key(name) == name and username_problem(name) is None for name in names)


@pytest.mark.parametrize(("username", "refusal"), [
    *((blank, "Fill in this field.") for blank in ("   ", "\u200b\u200b\u200b",
                                                        "\u3000\u00a0")),
    *((outside, RULE) for outside in ("user name", "😀😀", "rep#1", "<script>alert(1)</script>",
                                      "rep\u3000two"))])
def test_a_blank_username_or_one_outside_the_rule_is_refused_on_the_form(
        session, make_admin, make_branch, login_as, username, refusal):
    client = login_as(make_admin())
    before = user_count(session)
    response = new_user(client, make_branch(), username)
    assert response.status_code == 422
    assert refusal in html.unescape(response.get_data(as_text=True))
    assert user_count(session) == before


@pytest.mark.parametrize("look_alike", ["rep01\u200b", "ｒｅｐ01", "ＲＥＰ０１", "\u2066rep01\u2069"])
def test_a_look_alike_of_a_username_is_the_username_and_is_taken(
        session, make_admin, make_rep, make_branch, login_as, look_alike):
    make_rep(username="rep01")
    client = login_as(make_admin())
    before = user_count(session)
    response = new_user(client, make_branch(), look_alike)
    assert response.status_code == 422
    assert "The username &#39;rep01&#39; is taken." in response.get_data(as_text=True)
    assert user_count(session) == before


def test_a_full_width_username_is_stored_in_its_plain_form(session, make_admin, make_branch,
                                                           login_as):
    client = login_as(make_admin())
    response = new_user(client, make_branch(), "ＮＥＷ_ｒｅｐ\u200b")
    assert response.status_code == 303
    reload(session)
    assert session.scalars(select(User.username).where(User.display_name == "New Rep")).one() \
        == "new_rep"


@pytest.mark.parametrize("typed", ["ＲＥＰ01", " Rep01 ", "rep01\u200b", "\ufeffrep01"])
def test_signing_in_finds_the_username_however_it_is_typed(app, make_rep, typed):
    make_rep(username="rep01")
    response = app.test_client().post("/login", data={"username": typed, "password": PASSWORD})
    assert response.status_code == 302


@pytest.mark.parametrize(("username", "message"), [
    ("   ", "Give a username."), ("\u200b", "Give a username."), ("user name", RULE),
    ("😀", RULE), ("x" * 65, "Use at most 64 characters."),
])
def test_the_use_case_refuses_what_the_form_refuses(session, clock, make_branch, username,
                                                    message):
    # The command line (bidhub create-user) calls it without a form.
    before = user_count(session)
    with pytest.raises(InvalidRequest) as refused:
        users.create_user(session, None, username=username, display_name="New Rep",
                          password=NEW_PASSWORD, role="rep", branch_id=make_branch().id,
                          now=clock())
    assert refused.value.field == "username" and str(refused.value) == message
    assert user_count(session) == before


def test_a_reps_import_keeps_to_the_rules(session, clock, make_admin, make_branch):
    make_branch()
    admin = make_admin()
    rows = ["external_id,username,name,branch",
            "R-1,imp_zw\u200b,Plain Name,BJ",  # stored without the zero-width space
            "R-2,ＩＭＰ_ｆｗ,\u3000李\u200b娜 ,BJ",  # full-width, name with invisible characters
            "R-3,imp name,Spaced Username,BJ",
            "R-4,imp_blank_name,\u200b\u200b\u200b,BJ",
            "R-5,\u200b,Blank Username,BJ"]
    data = ("\r\n".join(rows) + "\r\n").encode("utf-8")
    result = import_file(session, admin, "reps", "reps.csv", data, valid_rows_only=True,
                         now=clock())
    problems = {(problem.row, problem.column): str(problem.reason) for problem in result.problems}
    assert problems == {(4, "username"): RULE, (5, "name"): "A value is required.",
                        (6, "username"): "A value is required."}
    reload(session)
    stored = dict(session.execute(select(User.username, User.display_name)
                                  .where(User.external_id.is_not(None))).all())
    assert stored == {"imp_zw": "Plain Name", "imp_fw": "李娜"}


def test_a_made_username_keeps_to_the_rule(session, clock, make_admin, make_branch):
    make_branch()
    data = "external_id,name,branch\r\nR 7,Spaced Id,BJ\r\nＲ８,Full Width Id,BJ\r\n".encode()
    result = import_file(session, make_admin(), "reps", "reps.csv", data, valid_rows_only=True,
                         now=clock())
    assert [(problem.row, problem.column, str(problem.reason)) for problem in result.problems] \
        == [(2, "external_id", RULE)]
    reload(session)
    # The id is read as NFKC leaves it, as every import reads ids.
    assert session.scalars(select(User.username).where(User.external_id == "R8")).one() == "r8"


def test_an_imported_rep_signs_in_once_an_admin_sets_a_password(app, session, clock,
                                                                make_admin, make_branch):
    make_branch()
    admin = make_admin()
    import_file(session, admin, "reps", "reps.csv",
                "external_id,username,name,branch\r\nR-9,ｗａｎｇ.ｗｅｉ,王伟,BJ\r\n".encode(),
                valid_rows_only=False, now=clock())
    reload(session)
    rep = session.scalars(select(User).where(User.username == "wang.wei")).one()
    users.set_password(session, admin, rep.id, NEW_PASSWORD, clock())
    client = app.test_client()
    assert client.post("/login", data={"username": "WANG.WEI",
                                       "password": NEW_PASSWORD}).status_code == 302
    login(app.test_client(), rep, NEW_PASSWORD)
