"""A round's review is kept per process for the rows it is worked out from: never stale."""

from bidhub.models import DecisionKind, Round
from bidhub.services import adjudication


def test_a_kept_review_follows_every_row_it_is_worked_out_from(session, clock, make_rep,
                                                               make_manager, make_account,
                                                               make_round, make_bid):
    manager = make_manager()
    first_rep, second_rep = make_rep(), make_rep()
    round_ = make_round(accounts=[make_account(owner=make_rep()) for _ in range(2)])
    for listing in round_.listings:
        make_bid(first_rep, listing)
        make_bid(second_rep, listing)
    clock.advance(days=8)
    assert adjudication.score_closed_round(session, round_.id, clock())
    round_ = session.get(Round, round_.id)
    seen = adjudication.review_round(session, round_)
    assert adjudication.review_round(session, round_) is seen
    listing_id = min(seen)
    assert seen[listing_id].decision is None

    adjudication.decide_listing(session, manager, listing_id, kind=DecisionKind.NO_AWARD,
                                bid_id=None, reason="Held back for the next round.", now=clock())
    decided = adjudication.review_round(session, round_)
    assert decided[listing_id].decision.kind == DecisionKind.NO_AWARD
    assert seen[listing_id].decision is None  # what was handed out is not changed

    first_rep.display_name = "Renamed after scoring"
    session.commit()
    renamed = adjudication.review_round(session, round_)
    assert {bid.rep.display_name for review in renamed.values() for bid in review.ranking} == {
        "Renamed after scoring", second_rep.display_name}


def test_a_round_too_large_to_keep_is_worked_out_on_every_view(session, clock, make_rep,
                                                               make_account, make_round,
                                                               make_bid, monkeypatch):
    round_ = make_round(accounts=[make_account(owner=make_rep()) for _ in range(2)])
    for listing in round_.listings:
        make_bid(make_rep(), listing)
    clock.advance(days=8)
    assert adjudication.score_closed_round(session, round_.id, clock())
    round_ = session.get(Round, round_.id)
    monkeypatch.setattr(adjudication, "_KEPT_REVIEWS_ROWS", 3)
    first = adjudication.review_round(session, round_)
    again = adjudication.review_round(session, round_)
    assert again is not first
    assert {listing_id: review.ranking for listing_id, review in again.items()} == {
        listing_id: review.ranking for listing_id, review in first.items()}
