"""PreparedRead: the same rows as SQLAlchemy's own execution, seen by the engine's cursor
listeners, and SQLAlchemy's errors when the driver or the binding fails."""

from __future__ import annotations

import itertools
from datetime import timedelta, timezone

import pytest
from sqlalchemy import Integer, bindparam, column, event, literal, select, table
from sqlalchemy.exc import DBAPIError, StatementError

from bidhub.db import engine_of
from bidhub.models import Bid, Branch, Listing, Role, User
from bidhub.prepared_reads import PreparedRead, in_ids
from bidhub.services import browse
from bidhub.services.flags import flag_input_params
from bidhub.web.auth import USER_BY_SESSION_TOKEN, USER_WITH_BADGES_BY_SESSION_TOKEN


def both_ways(connection, read: PreparedRead, params: dict) -> tuple[list, list]:
    """The read's rows, then SQLAlchemy's own rows of the same statement, as tuples."""
    return (read.all(connection, params),
            [tuple(row) for row in connection.execute(read.statement, params).all()])


def test_the_signed_in_users_reads_give_sqlalchemys_rows(app, session, make_user, make_branch,
                                                         clock):
    branch = make_branch("SH", "上海")
    rep = make_user(Role.REP, branch=branch, name="张三")
    rep.locked_until = clock() + timedelta(minutes=5)  # a timestamp beside NULL ones
    rep.locale, rep.email = "zh_CN", None
    manager = make_user(Role.KA_MANAGER)  # no branch: the outer join's NULLs
    session.commit()
    connection = session.connection()
    for user in (rep, manager):
        for read in (USER_BY_SESSION_TOKEN, USER_WITH_BADGES_BY_SESSION_TOKEN):
            fast, own = both_ways(connection, read, {"token": user.session_token})
            assert fast == own and len(fast) == 1
            assert [type(value) for value in fast[0]] == [type(value) for value in own[0]]
    assert USER_BY_SESSION_TOKEN.first(connection, {"token": "no such token"}) is None
    row = USER_BY_SESSION_TOKEN.first(connection, {"token": rep.session_token})
    assert rep.locked_until in row and rep.created_at in row  # aware datetimes, as stored


def test_a_reps_list_read_gives_sqlalchemys_rows_for_every_filter_and_sort(
        session, make_rep, make_account, make_round, make_branch, clock):
    rep = make_rep()
    other_branch = make_branch("GZ", "广州")
    accounts = [make_account(name="华东客户", annual_value_yuan=500_000),
                make_account(name="a_b%客户", annual_value_yuan=20_000, industry="制造业"),
                make_account(name="Alpha", annual_value_yuan=0, ownership_type="state"),
                make_account(name="客户乙", annual_value_yuan=9_000_000, branch=other_branch)]
    round_ = make_round(accounts=accounts)
    connection = session.connection()
    checked = 0
    for industry, ownership, branch, low, high in itertools.product((False, True), repeat=5):
        for search in ("", "%", "_", "客户", "a"):
            for sort in sorted(browse.SORTS):
                criteria = browse.ListingFilter(
                    industry="Internet" if industry else "",
                    ownership_type="private" if ownership else "",
                    branch_id=other_branch.id if branch else None,
                    min_value_yuan=10_000 if low else None,
                    max_value_yuan=600_000 if high else None, search=search, sort=sort)
                read = browse._rep_list_read(*criteria.conditions, browse._sort_of(criteria))
                params = {"round_id": round_.id, "rep_id": rep.id,
                          **browse.standing_in_round_params(rep, round_.id, clock()),
                          **browse._filter_params(criteria)}
                fast, own = both_ways(connection, read, params)
                assert fast == own and fast  # the round's row at least
                checked += len(fast)
    assert checked > 32 * 5 * len(browse.SORTS)  # listings came, not only the round's rows


def test_the_engines_cursor_listeners_see_the_read(app, session, make_user):
    rep = make_user(Role.REP)
    seen = []

    def before(_connection, _cursor, statement, parameters, context, executemany):
        seen.append(("before", statement, context, executemany))

    def after(_connection, _cursor, statement, _parameters, _context, _executemany):
        seen.append(("after", statement))

    engine = engine_of(app)
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        USER_BY_SESSION_TOKEN.first(session.connection(), {"token": rep.session_token})
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    statements = [entry for entry in seen if entry[1].lstrip().startswith("SELECT users.id")]
    assert [entry[0] for entry in statements] == ["before", "after"]
    assert statements[0][2:] == (None, False)  # no execution context; one set of parameters


def test_a_statement_sqlalchemy_rewrites_per_execution_is_refused(session):
    expanding = PreparedRead(select(User.id).where(User.id.in_(bindparam("ids", expanding=True))))
    with pytest.raises(ValueError, match="expanding"):
        expanding.all(session.connection(), {"ids": [1, 2]})
    literal_list = PreparedRead(select(User.id).where(User.role.in_([Role.REP, Role.ADMIN])))
    with pytest.raises(ValueError, match="expanding"):
        literal_list.all(session.connection(), {})


def test_a_driver_error_is_sqlalchemys_error(session):
    missing = PreparedRead(select(column("id")).select_from(table("no_such_table")))
    with pytest.raises(DBAPIError):
        missing.all(session.connection(), {})


def test_a_value_its_type_refuses_is_refused_as_sqlalchemy_refuses_it(session, clock):
    naive = clock().replace(tzinfo=None)
    read = PreparedRead(select(User.id).where(User.created_at <= bindparam("at", type_=User.created_at.type)))
    with pytest.raises(StatementError, match="naive datetime"):
        read.all(session.connection(), {"at": naive})
    with pytest.raises(StatementError):  # a parameter left out
        read.all(session.connection(), {})


def test_values_go_through_their_types_and_the_statements_own_values_stay(
        session, make_user, make_rep, make_account, make_round, clock):
    rep = make_rep()
    round_ = make_round(accounts=[make_account()])
    listing = round_.listings[0]
    read = PreparedRead(
        select(Listing.id, literal(7, Integer), Branch.code, Bid.id)
        .select_from(Listing).join(User, User.id == bindparam("rep_id"))
        .outerjoin(Branch, Branch.id == User.branch_id)
        .outerjoin(Bid, Bid.listing_id == Listing.id)
        .where(Listing.round_id == bindparam("round_id"),
               User.created_at >= bindparam("at", type_=User.created_at.type)))
    # The very instant the rep was created, written in Beijing time: stored as naive UTC, so
    # it compares equal only once its type has converted it.
    at = rep.created_at.astimezone(timezone(timedelta(hours=8)))
    params = {"rep_id": rep.id, "round_id": round_.id, "at": at}
    fast, own = both_ways(session.connection(), read, params)
    assert fast == own == [(listing.id, 7, rep.branch.code, None)]
    later = {**params, "at": at + timedelta(microseconds=1)}
    assert read.all(session.connection(), later) == [] == session.execute(read.statement, later).all()


def test_the_round_pages_reads_give_sqlalchemys_rows(session, clock, make_rep, make_manager,
                                                     make_account, make_round, make_bid):
    from bidhub.models import DecisionKind, Round
    from bidhub.services import adjudication, rounds

    manager, holder = make_manager(), make_rep()
    bidders = [make_rep(name="王五"), make_rep()]
    round_ = make_round(accounts=[make_account(owner=holder, name="北方客户"),
                                  make_account(annual_value_yuan=0), make_account()])
    for listing in round_.listings[:2]:  # the third listing has no bid: the outer joins' NULLs
        for rep in bidders:
            make_bid(rep, listing)
    clock.advance(days=8)
    assert adjudication.score_closed_round(session, round_.id, clock())
    adjudication.decide_listing(session, manager, round_.listings[1].id,
                                kind=DecisionKind.NO_AWARD, bid_id=None,
                                reason="Held back for the next round.", now=clock())
    round_id = session.get(Round, round_.id).id
    connection = session.connection()
    for read, expected_rows in ((rounds._ROUND_TO_SHOW, 1), (adjudication._LISTINGS, 3),
                                (adjudication._SCORED_BIDS, 4)):
        fast, own = both_ways(connection, read, {"round_id": round_id})
        assert fast == own and len(fast) == expected_rows
        assert [[type(value) for value in row] for row in fast] == [
            [type(value) for value in row] for row in own]
    # The flags' and capacity checks' facts, with the winners' commitments and tied inputs.
    bids = adjudication._SCORED_BIDS.all(connection, {"round_id": round_id})
    params = {**flag_input_params(session.get(Round, round_id)),
              "rep_ids": [holder.id] + [rep.id for rep in bidders], "tied_ids": [row[0] for row in bids]}
    fast, own = both_ways(connection, adjudication._REVIEW_FACTS, params)
    assert sorted(fast, key=repr) == sorted(own, key=repr)
    assert [row[1:3] for row in fast if row[0] == "held"] == [(holder.id, 1)]
    assert sorted(row[1] for row in fast if row[0] == "scored_inputs") == sorted(
        row[0] for row in bids)


def test_a_list_of_ids_is_one_parameter_whatever_its_length(app, session, make_user):
    """in_ids matches exactly the ids given, none for an empty list, through the driver's
    cursor and through SQLAlchemy, with the same SQL for every length."""
    users_ = [make_user(Role.REP) for _ in range(4)]
    read = PreparedRead(select(User.id).where(in_ids(User.id, "ids")).order_by(User.id))
    sent = []

    def before(_connection, _cursor, statement, *_args):
        sent.append(statement)

    engine = engine_of(app)
    event.listen(engine, "before_cursor_execute", before)
    try:
        for ids in ([], [users_[2].id], [users_[3].id, users_[0].id, 10**9], [user.id for user in users_]):
            fast, own = both_ways(session.connection(), read, {"ids": ids})
            expected = sorted(set(ids) & {user.id for user in users_})
            assert fast == own == [(user_id,) for user_id in expected]
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert len(sent) == 8 and len(set(sent)) == 1
