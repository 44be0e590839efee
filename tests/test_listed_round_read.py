"""The rep's list reads its round, the rep's standing and the listings in one statement: the same
answers as standing_of and listings_for_rep, and the shared reasons not to bid as
hindrances_in_round's."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bidhub.domain.errors import NotFound
from bidhub.models import Bid, BidStatus, Round, User
from bidhub.services import browse, policies
from bidhub.services.track_records import standing_of


def test_the_round_and_the_standing_read_together_equal_those_read_apart(
        session, clock, make_rep, make_manager, make_account, make_round):
    from bidhub.services.accountability import log_incident
    from bidhub.services.filings import transfer_account

    rep, other = make_rep(), make_rep()
    manager = make_manager()
    held = make_account(owner=rep)
    lost = make_account(owner=rep)
    transfer_account(session, manager, account_id=lost.id, to_rep_id=other.id,
                     reason="Owner left the company.",
                     review_text="Handover done; the client was told.", now=clock())
    for day in range(1, 4):  # three sightings
        log_incident(session, manager, account_id=held.id, competitor_site="zhaopin.example",
                     ad_type="banner", evidence_url="https://zhaopin.example/",
                     seen_at=clock() - timedelta(days=day), now=clock())
    released_from_rep = make_account(owner=rep)
    round_ = make_round(accounts=[make_account(), make_account(), released_from_rep,
                                  session.get(type(lost), lost.id)])
    round_ = session.get(Round, round_.id)
    rep = session.get(User, rep.id)

    listed, standing, rows = browse.rep_list(session, round_.id, rep, browse.ListingFilter(),
                                             clock())
    assert standing == standing_of(session, rep, clock(), round_id=round_.id)
    assert len(standing.released_at) == 2
    assert (listed.id, listed.title, listed.status, listed.opens_at, listed.closes_at,
            listed.branch, listed.rule_set.sha256, listed.rule_set.text) == (
        round_.id, round_.title, round_.status, round_.opens_at, round_.closes_at, None,
        round_.rule_set.sha256, round_.rule_set.text)
    assert rows == browse.listings_for_rep(session, listed, rep, browse.ListingFilter())
    assert len(rows) == 4
    # Filtered, sorted, or matching nothing: the same round and standing, the filter's rows.
    for criteria in (browse.ListingFilter(sort="name", industry=rows[0].industry),
                     browse.ListingFilter(sort="value_asc", search="no account is called this")):
        assert browse.rep_list(session, round_.id, rep, criteria, clock()) == (
            listed, standing, browse.listings_for_rep(session, listed, rep, criteria))
    assert browse.rep_list(session, round_.id, rep, browse.ListingFilter(search="nothing"),
                           clock()).rows == []
    shared = policies.shared_hindrances_in_round(rep, listed, standing, rows, clock())
    assert {listing_id: list(found) for listing_id, found in shared.items()} == (
        policies.hindrances_for(session, rep, round_.listings, clock()))
    # Listings with the same reasons share them: two plain accounts of one branch here.
    assert len({id(found) for found in shared.values()}) == 3

    # A rep with no incident, release or holding: nothing shared, nothing found.
    quiet = session.get(User, make_rep().id)
    _, quiet_standing, _ = browse.rep_list(session, round_.id, quiet, browse.ListingFilter(),
                                           clock())
    assert quiet_standing == standing_of(session, quiet, clock(), round_id=round_.id)
    assert policies.shared_hindrances_in_round(quiet, listed, quiet_standing, rows, clock()) == {}

    with pytest.raises(NotFound):
        browse.rep_list(session, round_.id + 1000, rep, browse.ListingFilter(), clock())


def test_a_kept_reasons_cell_is_the_one_its_messages_make(app):
    from bidhub.domain.text import Text
    from bidhub.web import listing_lines
    from bidhub.web.listing_lines import _reasons_cell

    def show(text):
        return "" if text is None else text.msgid % text.params

    def cell(months, remedy=None):
        return _reasons_cell(
            (policies.Hindrance(Text("%(months)s months <ago>", {"months": months}), remedy),),
            show, "en")

    with app.test_request_context("/"):
        # Equal parameters of another type read differently, and are kept apart.
        assert "6 months &lt;ago&gt;" in cell(6)
        assert "6.0 months &lt;ago&gt;" in cell(6.0)
        assert cell(6) == cell(6) and cell(6) != cell(7)
        assert "— later" in cell(6, Text("later"))
        # A parameter that is a message itself is translated afresh, not kept.
        kept = len(listing_lines._reason_cells)
        nested = Text("%(months)s months <ago>", {"months": Text("six")})
        assert "x" in _reasons_cell((policies.Hindrance(nested),), lambda text: "x", "en")
        assert len(listing_lines._reason_cells) == kept


NAMES = ["北京星辰科技有限公司", "Alpha 100% Co.", "alpha_co", "Beta Ltd", "北京星辰科技有限公司",
         "Ωmega", "上海云帆", "Beta Ltd"]
VALUES = [0, 120_000, 120_000, 5_000_000, 999, 2**31 - 1]  # the largest a column holds


@pytest.fixture
def varied_round(session, clock, make_rep, make_manager, make_branch, make_account, make_round,
                 make_bid):
    """A round whose accounts share names, values and industries, in two branches, with
    listings reps do not see, the rep's bids on some and a release of one to the rep."""
    from bidhub.models import Listing, ListingStatus
    from bidhub.services.filings import transfer_account

    rep, other = make_rep(), make_rep()
    north, south = make_branch(), make_branch("SH", "Shanghai")
    accounts = [make_account(name=name, branch=(north, south)[n % 2],
                             industry=("制造业", "Internet", "Retail")[n % 3],
                             ownership_type=("private", "state_owned")[n % 2],
                             annual_value_yuan=VALUES[n % len(VALUES)])
                for n, name in enumerate(NAMES)]
    released = make_account(owner=rep, name="Released Co.", branch=north)
    transfer_account(session, make_manager(), account_id=released.id, to_rep_id=other.id,
                     reason="Owner left the company.",
                     review_text="Handover done; the client was told.", now=clock())
    round_ = make_round(accounts=[*accounts, session.get(type(released), released.id)])
    listings = session.query(Listing).filter_by(round_id=round_.id).order_by(Listing.id).all()
    listings[2].status = ListingStatus.AWAITING_CONFIRMATION
    listings[5].status = ListingStatus.REFUSED
    session.commit()
    for listing in (listings[0], listings[3], listings[4]):
        make_bid(rep, listing)
    return session.get(Round, round_.id), session.get(User, rep.id), (north.id, south.id)


criteria_of = st.builds(
    browse.ListingFilter,
    industry=st.sampled_from(["", "制造业", "Internet", "Retail", "Mining"]),
    ownership_type=st.sampled_from(["", "private", "state_owned", "foreign"]),
    branch_id=st.sampled_from([None, 0, 1, 999_999]),  # 0 and 1: the round's branches
    min_value_yuan=st.sampled_from([None, *VALUES, 120_001]),
    max_value_yuan=st.sampled_from([None, *VALUES, 119_999]),
    search=st.sampled_from(["", "北京", "alpha", "%", "_", "100%", "Beta", "KA-", "zzz"]),
    sort=st.sampled_from([*browse.SORTS, "not a sort"]))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(criteria=criteria_of)
def test_the_one_statement_list_equals_its_readings_apart_for_any_filter(
        session, clock, varied_round, criteria):
    """rep_list against two other paths: the rows and standing read apart, and the ORM
    query behind KA management's list (filtered_listings) for which listings, in which order."""
    from bidhub.models import ListingStatus

    round_, rep, branch_ids = varied_round
    if criteria.branch_id in (0, 1):
        criteria = dataclasses.replace(criteria, branch_id=branch_ids[criteria.branch_id])
    own = {bid.listing_id: bid.id for bid in session.scalars(
        select(Bid).where(Bid.rep_id == rep.id, Bid.status == BidStatus.ACTIVE))}
    # Most filters leave a row or none: the whole list in the same order is checked too.
    for each in (criteria, browse.ListingFilter(sort=criteria.sort)):
        listed, standing, rows = browse.rep_list(session, round_.id, rep, each, clock())
        assert standing == standing_of(session, rep, clock(), round_id=round_.id)
        assert (listed.id, listed.title, listed.closes_at) == (round_.id, round_.title,
                                                                round_.closes_at)
        assert rows == browse.listings_for_rep(session, listed, rep, each)
        shown = [listing.id for listing in session.scalars(browse.filtered_listings(round_.id, each))
                 if listing.status not in (ListingStatus.AWAITING_CONFIRMATION,
                                           ListingStatus.REFUSED)]
        assert [row.id for row in rows] == shown
        assert [row.own_bid_id for row in rows] == [own.get(row.id) for row in rows]


def test_a_list_sorted_by_name_is_in_pinyin_order(session, clock, make_rep, make_account,
                                                  make_round):
    """The rep's list and management's rows of a round order names as the directory and the
    pickers do (domain.collation), on every database."""
    from bidhub.domain.collation import name_key

    names = ["张家口物流", "Beta Ltd", "阿里巴巴", "alpha Co", "陈氏集团", "李宁体育", "王府井百货"]
    round_ = session.get(Round, make_round(accounts=[make_account(name=name)
                                                     for name in names]).id)
    rep = session.get(User, make_rep().id)
    criteria = browse.ListingFilter(sort="name")
    listed, _, rows = browse.rep_list(session, round_.id, rep, criteria, clock())
    assert [row.name for row in rows] == sorted(names, key=name_key)
    assert browse.listings_for_rep(session, listed, rep, criteria) == rows
    assert [listing.account.name for listing in session.scalars(
        browse.filtered_listings(round_.id, criteria))] == sorted(names, key=name_key)
