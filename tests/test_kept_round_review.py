"""A round's review is kept per process for the rows it is worked out from: never stale; and
what it reads of the bids a lottery may have separated."""

from dataclasses import replace
from pathlib import Path

from bidhub.domain.rules import parse_rules
from bidhub.models import DecisionKind, Round
from bidhub.services import adjudication

DEFAULT_RULES = (Path(__file__).resolve().parent.parent / "rules" / "default.toml").read_text(
    encoding="utf-8")


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


def scored_row(bid_id, listing_id, total, *, eligible=True, proposed=False):
    """A row shaped like _SCORED_BIDS': bid, rep, branch, submitted, record, listing, name,
    total, rank, eligible, proposed winner."""
    return (bid_id, bid_id + 100, None, None, "{}", listing_id, f"Rep {bid_id}", total, None,
            eligible, proposed)


def test_lottery_candidates_are_the_proposed_winners_with_an_eligible_equal_total():
    rules = parse_rules(DEFAULT_RULES)
    assert "lottery" in rules.tie_break
    rows = [
        # listing 1: the winner ties one eligible bid; an ineligible bid ties too
        scored_row(1, 1, 80.0, proposed=True), scored_row(2, 1, 80.0),
        scored_row(3, 1, 80.0, eligible=False), scored_row(4, 1, 60.0),
        # listing 2: a clear winner; two others tie below it
        scored_row(5, 2, 90.0, proposed=True), scored_row(6, 2, 70.0), scored_row(7, 2, 70.0),
        # listing 3: no proposed winner, equal totals
        scored_row(8, 3, 50.0), scored_row(9, 3, 50.0),
        # listing 4: the winner (optimal may propose a lower total) ties two others
        scored_row(10, 4, 95.0), scored_row(11, 4, 75.0, proposed=True),
        scored_row(12, 4, 75.0), scored_row(13, 4, 75.0),
    ]
    assert adjudication.lottery_candidates(rules, rows) == [1, 2, 11, 12, 13]
    assert adjudication.lottery_candidates(rules, list(reversed(rows))) == [1, 2, 11, 12, 13]
    without_lottery = replace(rules, tie_break=("fewest_accounts_held",))
    assert adjudication.lottery_candidates(without_lottery, rows) == []


def test_a_tie_an_earlier_tie_break_decided_is_not_the_lotterys(session, clock, make_rep,
                                                                make_account, make_round,
                                                                make_bid):
    round_ = make_round(accounts=[make_account()])
    early, late = make_rep(), make_rep()
    make_bid(early, round_.listings[0])
    clock.advance(minutes=5)
    make_bid(late, round_.listings[0])  # same score and holdings, submitted later
    clock.advance(days=8)
    assert adjudication.score_closed_round(session, round_.id, clock())
    review = adjudication.review_round(session, session.get(Round, round_.id))
    listed = review[round_.listings[0].id]
    assert listed.margin == 0 and listed.proposed.rep_id == early.id
    assert adjudication.Flag.LOTTERY not in listed.flags
    # the frozen inputs of both tied bids were read
    assert {bid.id for bid in listed.ranking if bid.score.inputs is not None} == {
        bid.id for bid in listed.ranking}
