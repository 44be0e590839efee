"""Fairness figures (公平性), worked by hand on small examples."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bidhub.domain.facts import BidFacts
from bidhub.domain.fairness import (
    AwardRate,
    BandCounts,
    ListingOutcome,
    Moment,
    RepeatWinner,
    RepPresence,
    RoundRules,
    ScoredBid,
    Transfer,
    award_rates,
    band_counts,
    band_of,
    decided_by_lottery,
    decisions_by_manager,
    gini,
    greedy_allocation,
    holdings_at,
    repeat_winners,
    round_figures,
    tenure_band,
)

T0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
RULES = RoundRules(capacity_target=30, capacity_max=40, max_awards_per_rep=1,
                   min_bids_per_listing=1,
                   tie_break=("fewest_accounts_held", "earliest_submission", "lottery"))


def test_gini_of_a_small_example_worked_by_hand():
    # Values 0, 10, 20, 30: mean 15. Unordered pairs differ by 10, 20, 30, 10, 20, 10 = 100,
    # so all ordered pairs sum to 200. G = 200 / (2 x n^2 x mean) = 200 / (2 x 16 x 15)
    # = 200 / 480 = 0.416667. The order of the values does not matter.
    assert gini([30, 0, 20, 10]) == pytest.approx(0.416667)
    # One rep holds everything among four: (n - 1) / n = 0.75.
    assert gini([0, 0, 0, 12]) == 0.75
    assert gini([5, 5, 5]) == 0.0
    assert gini([0, 0]) == 0.0  # nobody has anything: all equal
    assert gini([]) is None


def test_band_counts_use_the_band_inclusive_at_both_ends():
    # 0 and 29 are below 30; 30, 35 and 40 inside; 41 above 40.
    assert band_counts([29, 30, 35, 40, 41, 0], 30, 40) == BandCounts(below=2, inside=3, above=1)
    assert [band_of(held, 30, 40) for held in (29, 30, 40, 41)] == [
        "below", "inside", "inside", "above"]
    assert band_counts([], 30, 40).total == 0


def test_the_band_is_the_capacity_boards():
    from bidhub.services.capacity_board import CapacityBand

    board = CapacityBand(target=30, maximum=40)
    assert all(band_of(held, 30, 40) == board.band_of(held).value for held in range(0, 60))


def test_holdings_at_moments_replay_the_register():
    t1, t2, t3, t4 = (T0 + timedelta(days=days) for days in (1, 2, 3, 4))
    transfers = [Transfer(1, account_id=1, from_rep_id=None, to_rep_id=10, at=t1),
                 Transfer(2, account_id=2, from_rep_id=None, to_rep_id=10, at=t1),
                 Transfer(3, account_id=3, from_rep_id=None, to_rep_id=20, at=t2),
                 Transfer(4, account_id=1, from_rep_id=10, to_rep_id=20, at=t3),
                 # Rep 40 has left (not active): counted only while holding account 4.
                 Transfer(5, account_id=4, from_rep_id=None, to_rep_id=40, at=t1),
                 Transfer(6, account_id=4, from_rep_id=40, to_rep_id=10, at=t3)]
    owners = {1: 20, 2: 10, 3: 20, 4: 10, 5: None}  # today, after every filing
    values = {1: 100, 2: 50, 3: 10, 4: 7, 5: 1000}
    reps = [RepPresence(10, T0, True), RepPresence(20, T0, True),
            RepPresence(30, t4, True),  # joined later
            RepPresence(40, T0, False)]
    before_t2, at_t3, later = holdings_at(
        owners, values, transfers, reps,
        [Moment(t2, inclusive=False), Moment(t3), Moment(t4 + timedelta(hours=1))])
    # Just before t2: rep 10 holds accounts 1 and 2 (150), rep 20 nothing yet, rep 40 holds 4.
    assert before_t2.held == {10: 2, 20: 0, 40: 1}
    assert before_t2.value_yuan == {10: 150, 20: 0, 40: 7}
    # At t3 (inclusive): account 1 moved to 20, account 4 to 10; rep 40 holds nothing and has
    # left, so is no longer counted.
    assert at_t3.held == {10: 2, 20: 2}
    assert at_t3.value_yuan == {10: 57, 20: 110}
    # Rep 30 counts from t4, with nothing.
    assert later.held == {10: 2, 20: 2, 30: 0}
    assert later.bands(2, 3) == BandCounts(below=1, inside=2, above=0)
    # Values 0, 57, 110: sum(i x) = 57 x 2 + 110 x 3 = 444; G = 2 x 444 / (3 x 167) - 4/3.
    assert later.gini() == pytest.approx(2 * 444 / (3 * 167) - 4 / 3, abs=1e-6)
    # Only the filings after the earliest moment are needed.
    assert holdings_at(owners, values, [t for t in transfers if t.at >= t2], reps,
                       [Moment(t2, inclusive=False)]) == [before_t2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(1, 3), st.integers(0, 6)),
                max_size=25),
       st.lists(st.tuples(st.integers(0, 7), st.booleans()), min_size=1, max_size=4))
def test_replaying_backwards_from_today_equals_replaying_the_register_forwards(moves, asked):
    """A register of random filings (account, new owner, day), each recording the owner it took
    the account from; holdings at random moments against a plain forward replay."""
    owner: dict[int, int | None] = {}
    transfers = []
    for seq, (account_id, to_rep_id, day) in enumerate(sorted(moves, key=lambda m: m[2]), 1):
        if owner.get(account_id) == to_rep_id:
            continue
        transfers.append(Transfer(seq, account_id, owner.get(account_id), to_rep_id,
                                  T0 + timedelta(days=day)))
        owner[account_id] = to_rep_id
    values = {account_id: 10 * (account_id + 1) for account_id in range(5)}
    moments = [Moment(T0 + timedelta(days=day), inclusive) for day, inclusive in asked]
    reps = [RepPresence(rep_id, T0, True) for rep_id in (1, 2, 3)]
    found = holdings_at(owner, values, transfers, reps, moments)
    for moment, holdings in zip(moments, found, strict=True):
        then: dict[int, int] = {}
        for transfer in transfers:
            if transfer.at < moment.at or (moment.inclusive and transfer.at == moment.at):
                then[transfer.account_id] = transfer.to_rep_id
        assert holdings.held == {rep_id: sum(1 for held_by in then.values() if held_by == rep_id)
                                 for rep_id in (1, 2, 3)}
        assert holdings.value_yuan == {
            rep_id: sum(values[account] for account, held_by in then.items() if held_by == rep_id)
            for rep_id in (1, 2, 3)}


def bid(bid_id, rep_id, listing_id, total, rank, *, proposed=False, eligible=True, held=20,
        minutes=0, branch="BJ"):
    facts = BidFacts(bid_id=bid_id, rep_id=rep_id, listing_id=listing_id,
                     submitted_at=T0 + timedelta(minutes=minutes), metrics={},
                     accounts_held=held, tenure_months=24.0, open_incidents=0,
                     rep_branch=branch, listing_branch="BJ")
    return ScoredBid(facts, total, eligible, rank, proposed)


def three_listings() -> list[ListingOutcome]:
    """Rep A (1) tops listings 1 and 2 but the cap of one award per round sends listing 2 to
    C (3); listing 3 is a tie between B (2) and C that only the lottery separated."""
    return [
        ListingOutcome(1, (bid(1, 1, 1, 0.8, 1, proposed=True), bid(2, 2, 1, 0.6, 2)),
                       is_decided=True, awarded_bid_id=1, decided_by_id=100),  # accepted
        ListingOutcome(2, (bid(3, 1, 2, 0.9, 1), bid(4, 3, 2, 0.5, 2, proposed=True)),
                       is_decided=True, awarded_bid_id=None, decided_by_id=200),  # no award
        ListingOutcome(3, (bid(5, 2, 3, 0.7, 1, proposed=True), bid(6, 3, 3, 0.7, 2)),
                       is_decided=True, awarded_bid_id=6, decided_by_id=100),  # another bidder
    ]


def test_a_rounds_figures_worked_by_hand():
    listings = three_listings()
    before = holdings_at({}, {}, [], [RepPresence(rep, T0, True) for rep in (1, 2, 3)],
                         [Moment(T0)])[0]
    figures = round_figures(7, RULES, listings, before, None)
    assert figures.before == BandCounts(below=3)
    assert figures.after is None and figures.gini_after is None
    assert figures.bids == 6
    assert figures.decided == 3
    # Listing 1's best bid won; listing 2's best (bid 3) and listing 3's (bid 5) did not.
    assert (figures.top_ranked_won, figures.top_ranked_rate) == (1, pytest.approx(1 / 3, abs=1e-6))
    # Listing 2: proposed bid 4, nothing awarded; listing 3: proposed bid 5, bid 6 awarded.
    assert figures.overridden == 2
    # Listing 3 only: equal totals (0.7), equal holdings (20), same submission time.
    assert figures.lottery_ties == 1
    # Chosen: bids 1 and 6 = 0.8 + 0.7. Greedy: listing 1 to A (0.8); listing 2: A is at its
    # cap, so C (0.5); listing 3 to B (0.7): 2.0 for three awards, as the rules proposed.
    assert (figures.chosen.awards, figures.chosen.total) == (2, 1.5)
    assert (figures.greedy.awards, figures.greedy.total) == (3, 2.0)
    assert (figures.proposed.awards, figures.proposed.total) == (3, 2.0)


def test_greedy_respects_capacity_and_the_minimum_bids_from_the_stored_facts():
    # Rep 1 holds 40 (the maximum): greedy cannot give them anything, so listing 1 goes to rep 2.
    listings = [ListingOutcome(1, (bid(1, 1, 1, 0.9, 1, held=40), bid(2, 2, 1, 0.4, 2)),
                               is_decided=True),
                ListingOutcome(2, (bid(3, 3, 2, 0.8, 1),), is_decided=True)]
    assert greedy_allocation(RULES, listings).total == 1.2
    two_needed = RoundRules(30, 40, None, 2, RULES.tie_break)
    # With two eligible bids required, listing 2 (one bid) is left to management.
    assert greedy_allocation(two_needed, listings).total == 0.4


def test_the_lottery_decided_only_when_every_earlier_tie_break_is_equal():
    winner = bid(1, 1, 1, 0.7, 1, proposed=True)
    assert decided_by_lottery(RULES.tie_break, winner, bid(2, 2, 1, 0.7, 2))
    # Fewer accounts held decided it, not the lottery.
    assert not decided_by_lottery(RULES.tie_break, winner, bid(2, 2, 1, 0.7, 2, held=25))
    # The earlier submission decided it.
    assert not decided_by_lottery(RULES.tie_break, winner, bid(2, 2, 1, 0.7, 2, minutes=5))
    assert not decided_by_lottery(RULES.tie_break, winner, bid(2, 2, 1, 0.69, 2))
    assert not decided_by_lottery(("earliest_submission",), winner, bid(2, 2, 1, 0.7, 2))
    assert not decided_by_lottery(RULES.tie_break, winner, None)


def test_override_rates_per_manager():
    listings = [*three_listings(),
                # No proposal (too few eligible bids): management chose, nothing to override.
                ListingOutcome(4, (bid(7, 2, 4, 0.3, 1),), is_decided=True, awarded_bid_id=7,
                               decided_by_id=200)]
    first, second = decisions_by_manager(listings)
    # Manager 100: listing 1 accepted, listing 3 another bidder: 1 of 2 overridden.
    assert (first.manager_id, first.decided, first.accepted, first.other_bidder,
            first.no_award, first.override_rate, first.top_ranked_won) == (
        100, 2, 1, 1, 0, 0.5, 1)
    # Manager 200: listing 2 no award: 1 of 1; listing 4 had no proposal and is not counted.
    assert (second.manager_id, second.decided, second.no_award, second.override_rate) == (
        200, 1, 1, 1.0)


def test_award_rates_per_key():
    rates = award_rates([("BJ", True), ("BJ", False), ("SH", False), ("BJ", True)],
                        order=("GZ",))
    assert rates == [AwardRate("GZ", 0, 0), AwardRate("BJ", 3, 2), AwardRate("SH", 1, 0)]
    assert [entry.rate for entry in rates] == [None, pytest.approx(2 / 3, abs=1e-6), 0.0]


def test_tenure_bands_at_the_deadline():
    deadline = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    # 365 days = 11.99 months of 30.4375 days: still under a year.
    assert tenure_band(date(2025, 3, 2), deadline, UTC) == "under_12"
    assert tenure_band(date(2025, 2, 28), deadline, UTC) == "12_to_36"  # 367 days: 12.06 months
    assert tenure_band(date(2023, 3, 4), deadline, UTC) == "12_to_36"  # 1094 days: 35.94 months
    assert tenure_band(date(2023, 3, 1), deadline, UTC) == "over_36"  # 1097 days: 36.04 months
    assert tenure_band(date(2027, 1, 1), deadline, UTC) == "under_12"  # hired after: 0


def test_tenure_bands_count_from_midnight_of_the_hire_day_in_the_zone():
    beijing = ZoneInfo("Asia/Shanghai")
    # 2 March 2026 begins at 16:00 UTC on 1 March in Beijing: 366 days after 1 March 2025
    # began there, a year (12.02 months); counted from midnight UTC, still 365 days.
    assert tenure_band(date(2025, 3, 1), datetime(2026, 3, 1, 15, 59, 59, tzinfo=UTC),
                       beijing) == "under_12"
    assert tenure_band(date(2025, 3, 1), datetime(2026, 3, 1, 16, 0, tzinfo=UTC),
                       beijing) == "12_to_36"


def test_repeat_winners_need_twice_their_bid_share_and_three_awards():
    bids = ([(1, True)] * 3 + [(1, False)]          # 4 bids, 3 awards
            + [(2, True)] + [(2, False)] * 9        # 10 bids, 1 award
            + [(3, False)] * 6                      # 6 bids, none
            + [(4, True)] * 2)                      # 2 bids, 2 awards: too few awards
    # 22 bids, 6 awards. Rep 1: 3/6 = 0.5 of awards against 4/22 = 0.1818 of bids: 2.75x.
    # Rep 4 has 3.67x but only 2 awards; rep 2 has 0.37x.
    assert repeat_winners(bids) == [RepeatWinner(1, 4, 3, 4 / 22, 0.5)]
    assert repeat_winners(bids)[0].ratio == pytest.approx(2.75)
    # Exactly twice counts: 5 of 20 bids (0.25) and 3 of 6 awards (0.5).
    exact = [(1, True)] * 3 + [(1, False)] * 2 + [(2, True)] * 3 + [(2, False)] * 12
    assert [entry.rep_id for entry in repeat_winners(exact)] == [1]
    assert repeat_winners([(1, False), (2, False)]) == []
