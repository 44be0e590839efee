"""The signed-in user is read as plain columns and made into the ORM object a query would give."""

from sqlalchemy import inspect

from bidhub.db import get_session
from bidhub.models import Role, User
from bidhub.web.auth import load_user
from tests.test_queries import counted_statements


def test_the_session_user_is_the_object_a_query_would_load(app, make_user):
    rep = make_user(Role.REP)
    token, branch_id, branch_name = rep.session_token, rep.branch_id, rep.branch.name
    with app.test_request_context():
        with counted_statements(app) as statements:
            user = load_user(token)
            assert (user.username, user.role, user.branch_id) == (rep.username, Role.REP, branch_id)
            assert user.branch.name == branch_name and user.hired_on == rep.hired_on
            assert user.created_at == rep.created_at  # typed as the column says, not text
        assert len(statements) == 1  # the branch came with it
        session = get_session()
        assert inspect(user).persistent and user in session
        assert not session.dirty and not session.new and not inspect(user).modified
        assert session.get(User, user.id) is user and session.get(type(user.branch), branch_id) is user.branch
        user.display_name = "改过的名字"
        assert user in session.dirty
        session.rollback()
        assert user.display_name == rep.display_name


def test_an_object_the_session_already_holds_is_the_one_returned(app, make_user):
    rep = make_user(Role.KA_MANAGER)
    with app.test_request_context():
        held = get_session().get(User, rep.id)
        assert load_user(rep.session_token) is held and held.branch is None


def test_no_user_for_an_unknown_token_or_a_deactivated_account(app, session, make_user):
    rep = make_user(Role.REP)
    with app.test_request_context():
        assert load_user("no such token") is None
    rep.is_active = False
    session.commit()
    with app.test_request_context():
        assert load_user(rep.session_token) is None
        assert not get_session().identity_map  # nothing half-attached for a refused session
