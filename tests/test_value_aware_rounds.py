"""Value-aware allocation on stored rounds: scoring with it, `rescore --verify`, the what-if."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bidhub.domain.rules import parse_rules
from bidhub.models import Bid, BidScore, Listing
from bidhub.services import adjudication
from bidhub.services.replays import verify_round, what_if
from bidhub.services.rule_sets import active_rule_set, adopt_rule_set, parsed

CHEAP, VALUABLE = 10_000, 500_000


def one_award(text: str) -> str:
    """The given rules with one award per rep and round: the strong rep can take only one of
    the two accounts."""
    return text.replace("max_awards_per_rep_per_round = 3", "max_awards_per_rep_per_round = 1")


def value_aware(text: str) -> str:
    return one_award(text).replace('method = "greedy"', 'method = "value_aware"')


@pytest.fixture
def contest(session, clock, make_rep, make_account, make_round, make_bid, make_opportunities):
    """Build a round: a cheap account (released first) and a valuable one. Strong (win rate
    0.9) bids on both, Middle (0.6) on the valuable one, Weak (0.2) on the cheap one."""

    def build(rules_text: str | None = None):
        if rules_text is not None:
            adopt_rule_set(session, None, rules_text, "value-aware", "test", clock())
            session.commit()
        history = make_account()
        reps = {name: make_rep(name=f"{name} Rep") for name in ("Strong", "Middle", "Weak")}
        for name, won in (("Strong", 9), ("Middle", 6), ("Weak", 2)):
            make_opportunities(reps[name], history, won=won, lost=10 - won)
        cheap = make_account(name="Cheap Account", annual_value_yuan=CHEAP)
        valuable = make_account(name="Valuable Account", annual_value_yuan=VALUABLE)
        round_ = make_round(accounts=[cheap, valuable], closes_at=clock() + timedelta(hours=1))
        by_account = {listing.account_id: listing for listing in round_.listings}
        bids = {
            ("Strong", "cheap"): make_bid(reps["Strong"], by_account[cheap.id]),
            ("Strong", "valuable"): make_bid(reps["Strong"], by_account[valuable.id]),
            ("Middle", "valuable"): make_bid(reps["Middle"], by_account[valuable.id]),
            ("Weak", "cheap"): make_bid(reps["Weak"], by_account[cheap.id]),
        }
        clock.advance(hours=1)
        assert adjudication.score_closed_round(session, round_.id, clock())
        return round_, {key: bid.id for key, bid in bids.items()}

    return build


def proposed(session, round_id: int) -> set[int]:
    return set(session.scalars(
        select(Bid.id).join(BidScore).join(Listing)
        .where(Listing.round_id == round_id, BidScore.is_proposed_winner)))


def test_a_round_under_value_aware_rules_is_scored_with_it_and_verifies(app, session, contest):
    text = value_aware(active_rule_set(session).text)
    round_, bids = contest(text)
    assert parsed(round_.rule_set).allocation == "value_aware"
    # Strong's one award goes to the account worth 50 times more; Weak takes the cheap one.
    assert proposed(session, round_.id) == {bids["Strong", "valuable"], bids["Weak", "cheap"]}
    inputs = session.get(BidScore, bids["Strong", "valuable"]).inputs
    assert inputs["listing_value_yuan"] == VALUABLE
    assert verify_round(session, round_.id) == []
    result = app.test_cli_runner().invoke(args=["rescore", "--verify", str(round_.id)])
    assert result.exit_code == 0, result.output
    assert "reproduce exactly" in result.output


def test_the_what_if_shows_how_value_aware_would_have_changed_a_past_round(
        app, session, contest, make_admin, login_as):
    greedy_text = one_award(active_rule_set(session).text)
    round_, bids = contest(greedy_text)
    # Greedy gives the cheap listing (released first) to Strong, the valuable one to Middle.
    before = {bids["Strong", "cheap"], bids["Middle", "valuable"]}
    assert proposed(session, round_.id) == before
    # A round scored before the value was stored with the bids: inputs without the key.
    for row in session.scalars(select(BidScore).where(BidScore.bid_id.in_(bids.values()))):
        session.execute(update(BidScore).where(BidScore.bid_id == row.bid_id).values(
            inputs={key: value for key, value in row.inputs.items()
                    if key != "listing_value_yuan"}))
    session.commit()
    session.expire_all()
    # verify replays exactly what was stored (no value, and greedy does not need one) ...
    assert verify_round(session, round_.id) == []
    # ... and the what-if fills the value in from the account, so value_aware moves Strong.
    _, comparison = what_if(session, round_.id, parse_rules(value_aware(greedy_text)))
    changes = {change.before_bid_id: change.after_bid_id for change in comparison.award_changes}
    assert changes == {bids["Strong", "cheap"]: bids["Weak", "cheap"],
                       bids["Middle", "valuable"]: bids["Strong", "valuable"]}
    # Without the values every account would be worth 0 and value_aware would decide like
    # optimal: the same awards as greedy here, so the fill is what makes the difference.
    _, unvalued = what_if(session, round_.id, parse_rules(
        value_aware(greedy_text).replace('method = "value_aware"', 'method = "optimal"')))
    assert unvalued.award_changes == ()
    client = login_as(make_admin())
    html = client.post("/admin/rules/what-if", data={
        "text": value_aware(greedy_text), "round_id": round_.id}).get_data(as_text=True)
    assert "2 awards would change" in html
    assert "Strong Rep" in html and "Weak Rep" in html and "Middle Rep" in html
