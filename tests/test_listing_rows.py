"""The rep's list of a round reads plain rows and the rep's standing once a page; what it shows
of each listing must equal what the per-listing answers (hindrances_for, bid_facts) say."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from bidhub.models import Bid, Round, User
from bidhub.services import browse, policies
from bidhub.services.track_records import bid_facts, prospect_facts, standing_of


def test_rows_and_standing_give_what_the_listing_objects_give(
        session, clock, make_rep, make_manager, make_account, make_round, make_bid):
    from bidhub.services.accountability import log_incident
    from bidhub.services.filings import transfer_account

    rep, other = make_rep(), make_rep()
    manager = make_manager()
    held = make_account(owner=rep)
    lost = make_account(owner=rep)
    transfer_account(session, manager, account_id=lost.id, to_rep_id=other.id,
                     reason="Owner left the company.",
                     review_text="Handover done; the client was told.", now=clock())
    for day in range(1, 4):  # one more than the default rules allow; three sightings
        log_incident(session, manager, account_id=held.id, competitor_site="zhaopin.example",
                     ad_type="banner", evidence_url="https://zhaopin.example/",
                     seen_at=clock() - timedelta(days=day), now=clock())
    released_from_rep = make_account(owner=rep)
    round_ = make_round(accounts=[make_account(), make_account(annual_value_yuan=9_000_000),
                                  released_from_rep, session.get(type(lost), lost.id)])
    round_ = session.get(Round, round_.id)
    rep = session.get(User, rep.id)

    rows = browse.listings_for_rep(session, round_, rep, browse.ListingFilter())
    assert {row.id for row in rows} == {listing.id for listing in round_.listings}
    by_rows = policies.hindrances_in_round(session, rep, round_, rows, clock())
    by_listings = policies.hindrances_for(session, rep, round_.listings, clock())
    assert by_rows == by_listings
    assert len(by_rows) == 4  # incidents everywhere; the released and the lost one cool down
    released = next(row for row in rows if row.account_id == released_from_rep.id)
    assert len(by_rows[released.id]) == 3  # released from the rep, incidents, cooldown
    # Closed to the rep for good in this round: no remedy promises otherwise (the cooldown's
    # "wait until" would end after the round). The account lost to another rep may be bid for
    # once the cooldown ends, and says when.
    assert [hindrance.remedy for hindrance in by_rows[released.id]] == [None, None, None]
    lost_row = next(row for row in rows if row.account_id == lost.id)
    assert any(hindrance.remedy is not None for hindrance in by_rows[lost_row.id])

    # A stored bid's facts, read one bid at a time, are the prospect's but for the bid itself.
    bidder = make_rep()
    listing = round_.listings[1]
    bid = session.get(Bid, make_bid(bidder, listing).id)
    bidder = session.get(User, bidder.id)
    [stored] = bid_facts(session, [bid], clock())
    prospect = prospect_facts(standing_of(session, bidder, clock(), round_id=round_.id),
                              listing.id, listing.account_id, listing.account.branch.code,
                              listing.account.annual_value_yuan, clock())
    assert dataclasses.replace(stored, bid_id=0, submitted_at=clock(), metrics={},
                               preference_rank=None) == prospect
