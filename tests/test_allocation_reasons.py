"""A bid's reason for not being proposed names the accounts its rep wins elsewhere in the round,
not their listing ids, on the manager's listing page and on the rep's bid page."""

from __future__ import annotations

import pytest

from bidhub.domain.allocation import _elsewhere
from bidhub.domain.messages import dumps
from bidhub.domain.text import N_, Joined
from bidhub.models import BidScore
from bidhub.services import adjudication
from bidhub.web.allocation_reasons import mentioned_listings, with_listing_names
from tests.conftest import login, reload


def test_the_listings_a_reason_names_are_its_whole_mentions():
    wins = _elsewhere([45, 43, 44], None)
    assert mentioned_listings(wins) == {43, 44, 45}
    assert mentioned_listings(_elsewhere([7], None)) == {7}
    assert mentioned_listings(_elsewhere([], None)) == set()
    # Only a parameter or part that is a mention and nothing else: "#" in prose is prose.
    prose = N_("%(text)s (%(note)s)", text="rank #2 of 5", note=Joined(["#x", "##3", "# 4"]))
    assert mentioned_listings(prose) == set()


def test_named_listings_read_as_their_accounts_and_the_others_stay():
    wins = _elsewhere([43, 44, 45], None)
    named = with_listing_names(wins, {43: "华北电力集团", 45: "北京智联科技有限公司"})
    assert str(named) == "wins 华北电力集团, #44 and 北京智联科技有限公司 in this round"
    assert str(wins) == "wins #43, #44 and #45 in this round"  # the stored reason is unchanged
    assert with_listing_names("#43", {43: "华北电力集团"}) == "华北电力集团"
    assert with_listing_names("plain text", {43: "华北电力集团"}) == "plain text"


@pytest.fixture
def capped(session, capped_round):
    assert f"#{capped_round.first.id}" in session.get(
        BidScore, capped_round.capped_bid.id).not_awarded_reason
    return capped_round


def in_english_then_chinese(app, user, path: str) -> tuple[str, str]:
    """The page at `path` as `user` reads it in English, then after switching to Chinese."""
    client = app.test_client()
    login(client, user)
    english = client.get(path).get_data(as_text=True)
    client.post("/language", data={"locale": "zh_CN", "next": "/"})
    return english, client.get(path).get_data(as_text=True)


def test_the_manager_reads_the_account_the_capped_rep_wins(app, capped):
    html, chinese = in_english_then_chinese(app, capped.manager,
                                            f"/manage/listings/{capped.second.id}")
    assert ("per-round cap of 1 award reached (wins &lt;b&gt;东方&lt;/b&gt; &amp; 西方集团 in "
            "this round)") in html
    assert f"#{capped.first.id} in this round" not in html
    assert "（在本轮中标&lt;b&gt;东方&lt;/b&gt; &amp; 西方集团）" in chinese


def test_the_rep_reads_the_account_they_win_once_results_are_announced(app, session, clock,
                                                                       capped):
    """The reason is introduced as the rules' allocation's: KA management's decisions, shown
    above it, may have differed from it."""
    for listing in (capped.first, capped.second):
        adjudication.decide_listing(session, capped.manager, listing.id, kind="accepted",
                                    bid_id=None, reason="", now=clock())
    reload(session)
    adjudication.publish_results(session, capped.manager, capped.round.id,
                                 expected_version=capped.round.version, now=clock())
    html, chinese = in_english_then_chinese(app, capped.strong, f"/bids/{capped.capped_bid.id}")
    assert ("Why the rules' allocation did not propose your bid: per-round cap of 1 award "
            "reached (wins &lt;b&gt;东方&lt;/b&gt; &amp; 西方集团 in this round)") in html
    assert f"#{capped.first.id}" not in html
    assert ("按规则分配未将你拟为中标人的原因：已达到每轮最多中标 1 个的上限"
            "（在本轮中标&lt;b&gt;东方&lt;/b&gt; &amp; 西方集团）") in chinese


def test_a_reason_naming_a_listing_of_another_round_keeps_its_number(app, session, capped,
                                                                     make_round, make_account):
    """Only the round's own listings are named: a mention the round does not hold (a reason
    written by hand, say) stays as it was stored."""
    other = make_round(accounts=[make_account(name="别的轮次的客户")])
    score = session.get(BidScore, capped.capped_bid.id)
    score.not_awarded_reason = dumps(_elsewhere([other.listings[0].id], None))
    session.commit()
    client = app.test_client()
    login(client, capped.manager)
    html = client.get(f"/manage/listings/{capped.second.id}").get_data(as_text=True)
    assert f"wins #{other.listings[0].id} in this round" in html
    assert "别的轮次的客户" not in html


def test_the_filed_runner_up_is_a_bid_the_winner_was_weighed_against(session, clock, capped):
    """An accepted ranking files as its runner-up the next eligible bid below the winner, not
    the better bid the per-round cap kept out of the listing (the register would read as an
    award to a lower score with no reason); an override files the best score it passed."""
    from sqlalchemy import select

    from bidhub.models import Decision, DecisionKind, Round

    strong, weak = capped.strong, capped.weak
    first, second = capped.first, capped.second
    for listing in (first, second):
        adjudication.decide_listing(session, capped.manager, listing.id,
                                    kind=DecisionKind.ACCEPTED, bid_id=None, reason="",
                                    now=clock())
    reload(session)

    def filed() -> dict[int, tuple[int, float, float | None]]:
        decisions = {decision.listing_id: decision for decision in session.scalars(select(
            Decision).where(Decision.listing_id.in_([first.id, second.id])))}
        round_ = session.get(Round, capped.round.id)
        listings = sorted(round_.listings, key=lambda listing: listing.id)
        return {change.listing_id: (change.to_rep_id, change.filing["winner_score"],
                                    change.filing["runner_up_score"])
                for change in adjudication.award_changes(session, round_, listings, decisions)}

    def total(rep, listing) -> float:
        return session.get(BidScore, capped.bids[rep.id, listing.id].id).total

    assert total(strong, second) > total(weak, second)  # the cap kept the better bid out
    assert filed() == {first.id: (strong.id, total(strong, first), total(weak, first)),
                       second.id: (weak.id, total(weak, second), None)}

    def version_of(listing) -> int:
        reload(session)
        return session.scalars(select(Decision).where(Decision.listing_id == listing.id)
                               ).one().version

    adjudication.decide_listing(session, capped.manager, second.id, kind=DecisionKind.NO_AWARD,
                                bid_id=None, reason="The client is being merged into a group.",
                                expected_version=version_of(second), now=clock())
    adjudication.decide_listing(session, capped.manager, first.id,
                                kind=DecisionKind.OVERRIDDEN, bid_id=capped.bids[weak.id,
                                                                                 first.id].id,
                                reason="The client asked for the rep who knows its plant.",
                                expected_version=version_of(first), now=clock())
    reload(session)
    assert filed()[first.id] == (weak.id, total(weak, first), total(strong, first))
