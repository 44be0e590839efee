"""List pages issue a bounded number of SQL statements, however many rows they show."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event, select

from bidhub.db import engine_of
from bidhub.models import Filing
from tests.conftest import login


@contextmanager
def counted_statements(app):
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = engine_of(app)
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def statements_for(app, client, url) -> int:
    client.get(url)  # the first request of a session loads what later ones reuse
    with counted_statements(app) as statements:
        response = client.get(url)
        assert response.status_code == 200
    return len(statements)


def test_listing_pages_do_not_grow_queries_with_rows(app, make_rep, make_manager, make_account,
                                                     make_round, make_bid, login_as):
    rep, manager = make_rep(), make_manager()
    small = make_round(accounts=[make_account(contacts=True) for _ in range(3)])
    large = make_round(accounts=[make_account(contacts=True) for _ in range(60)])
    for listing in small.listings[:2] + large.listings[:40]:
        make_bid(rep, listing)
    rep_client = login_as(rep)
    assert statements_for(app, rep_client, f"/rounds/{small.id}") == statements_for(
        app, rep_client, f"/rounds/{large.id}")
    manager_client = app.test_client()
    login(manager_client, manager)
    assert statements_for(app, manager_client, f"/manage/rounds/{small.id}") == statements_for(
        app, manager_client, f"/manage/rounds/{large.id}")
    assert statements_for(app, manager_client, "/manage/rounds") < 15
    assert statements_for(app, rep_client, "/my/bids") < 15


def test_the_filing_register_does_not_grow_queries_with_rows(app, session, make_rep, make_manager,
                                                             make_account, clock, login_as):
    from bidhub.services.filings import transfer_account

    manager = make_manager()
    client = login_as(manager)

    def transfer_one():
        account = make_account(owner=make_rep())
        transfer_account(session, manager, account_id=account.id, to_rep_id=make_rep().id,
                         reason="Owner left the company.", review_text="Handover done; the client was told.",
                         now=clock())

    transfer_one()
    few = statements_for(app, client, "/manage/filings")
    for _ in range(29):
        transfer_one()
    assert len(session.scalars(select(Filing)).all()) == 60  # each first owner is filed too
    assert statements_for(app, client, "/manage/filings") == few


def test_a_bid_costs_a_fixed_number_of_statements(app, make_rep, make_account, make_round,
                                                  make_bid, login_as):
    rep = make_rep()
    small = make_round(accounts=[make_account() for _ in range(3)])
    large = make_round(accounts=[make_account() for _ in range(40)])
    for listing in large.listings[:30]:
        make_bid(rep, listing)
    client = login_as(rep)

    def statements_for_bid(listing) -> int:
        form = {"account_plan": "A careful plan for this account.",
                "committed_revenue_yuan": "300000", "visit_plan": "Visits in the first 90 days.",
                "submission_key": f"key-{listing.id}"}
        with counted_statements(app) as statements:
            response = client.post(f"/listings/{listing.id}/bid", data=form)
            assert response.status_code == 303, response.get_data(as_text=True)[:500]
        return len(statements)

    statements_for_bid(small.listings[0])  # the first bid may store what later ones reuse
    few = statements_for_bid(small.listings[1])
    assert statements_for_bid(large.listings[35]) == few
    assert few <= 15  # 13 when this was written
