"""The manager's round page reads its round as plain columns (rounds.round_to_show): the same
objects, with the same values, as the ORM's load_round gives, in one statement."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from bidhub.domain.errors import NotFound
from bidhub.models import Branch, Round, RuleSetVersion
from bidhub.services.rounds import load_round, round_to_show
from tests.test_queries import counted_statements


def columns(instance) -> dict:
    return {column.key: getattr(instance, column.key)
            for column in type(instance).__mapper__.column_attrs}


@pytest.mark.parametrize("with_branch", [True, False])
def test_a_round_read_for_a_page_equals_the_round_the_orm_loads(app, session, make_round,
                                                                 make_branch, with_branch):
    round_ = make_round(title="第一轮 round")
    if with_branch:
        round_.branch_id = make_branch("SH", "Shanghai").id
        session.commit()
    shown_in, loaded_in = (app.extensions["bidhub_sessionmaker"]() for _ in range(2))
    try:
        with counted_statements(app) as statements:
            shown = round_to_show(shown_in, round_.id)
            branch, rule_set = shown.branch, shown.rule_set
            assert rule_set.text
        assert len(statements) == 1
        loaded = load_round(loaded_in, round_.id)
        assert columns(shown) == columns(loaded)
        assert (branch is None) == (not with_branch)
        if with_branch:
            assert isinstance(branch, Branch) and columns(branch) == columns(loaded.branch)
        assert isinstance(rule_set, RuleSetVersion)
        assert columns(rule_set) == columns(loaded.rule_set)
        # In the session as if loaded: unchanged, and written like a loaded round when changed.
        assert inspect(shown).persistent and not shown_in.dirty
        version = shown.version
        shown.title = "renamed"
        shown_in.commit()
        assert shown.version == version + 1
        assert session.scalar(Round.__table__.select().with_only_columns(
            Round.title).where(Round.id == round_.id)) == "renamed"
    finally:
        shown_in.close()
        loaded_in.close()


def test_a_round_already_in_the_session_is_the_one_given(session, make_round):
    round_ = make_round()
    loaded = session.get(Round, round_.id)
    assert round_to_show(session, round_.id) is loaded


def test_no_such_round(session, make_round):
    round_ = make_round()
    with pytest.raises(NotFound):
        round_to_show(session, round_.id + 1000)
