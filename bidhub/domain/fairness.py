"""Fairness across rounds (公平性): figures over past rounds, computed from plain facts.

Everything here is pure: the service loads the register, the scored bids and the decisions,
turns them into the facts below, and these functions give the figures the page and the CSV show.

Accounts held at a moment. An account changes owner only by a filing (an award, a direct
transfer, a CRM import's first load); releasing it into a round does not move it: it stays
its rep's while listed, until the award's filing. So the register alone says who held what at
any moment: the owner of an account at `t` is the `to_rep` of its last filing made at or
before `t` (by filing time, then sequence number). Values are today's `annual_value_yuan`:
an account's value is not kept over time.

Who is counted at a moment: every rep bidhub knew by then (created at or before it) who is
active today, and anyone else who held at least one account then (a rep who has since left
was counted while holding accounts; bidhub does not record the day a rep left).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from functools import cached_property

from bidhub.domain.allocation_methods import ALLOCATION_METHODS
from bidhub.domain.facts import BidFacts
from bidhub.domain.metrics import months_since_day
from bidhub.domain.tie_breaks import TIE_BREAKS

# The capacity band's three sides, as the capacity board names them.
BELOW, INSIDE, ABOVE = "below", "inside", "above"

# Tenure bands at a round's deadline, in months of 30.4375 days: under 12, 12 to 36, over 36.
TENURE_BANDS = ("under_12", "12_to_36", "over_36")
TENURE_BAND_LIMITS = (12, 36)

# A repeat winner: at least this many awards, and a share of all awards at least this many
# times their share of all bids. Two awards out of few bids is luck; the minimum keeps a rep
# who bid twice and won twice off the list.
REPEAT_WINNER_MIN_AWARDS = 3
REPEAT_WINNER_SHARE_RATIO = 2.0

GREEDY = "greedy"
LOTTERY = "lottery"


def band_of(held: int, target: int, maximum: int) -> str:
    """Below the target, inside target..maximum (both included), or above the maximum."""
    if held > maximum:
        return ABOVE
    if held < target:
        return BELOW
    return INSIDE


@dataclass(frozen=True)
class BandCounts:
    below: int = 0
    inside: int = 0
    above: int = 0

    @property
    def total(self) -> int:
        return self.below + self.inside + self.above


def band_counts(held: Iterable[int], target: int, maximum: int) -> BandCounts:
    counts = Counter(band_of(count, target, maximum) for count in held)
    return BandCounts(counts[BELOW], counts[INSIDE], counts[ABOVE])


def gini(values: Iterable[float]) -> float | None:
    """The Gini coefficient: 0 when everyone has the same, towards 1 when one has everything.

    Mean absolute difference over all ordered pairs divided by twice the mean, computed from
    the ascending order as 2 * sum(i * x_i) / (n * sum) - (n + 1) / n (i from 1). None for
    nobody; 0 when nobody has anything (all equal).
    """
    ordered = sorted(values)
    n, total = len(ordered), sum(ordered)
    if n == 0:
        return None
    if total == 0:
        return 0.0
    weighted = sum(index * value for index, value in enumerate(ordered, start=1))
    return round(2 * weighted / (n * total) - (n + 1) / n, 6) + 0.0


# --- holdings at moments ----------------------------------------------------------------------


@dataclass(frozen=True)
class Transfer:
    """One filing: `account_id` went from `from_rep_id` (None: unowned) to `to_rep_id` at `at`
    (`seq` orders equal times)."""

    seq: int
    account_id: int
    from_rep_id: int | None
    to_rep_id: int
    at: datetime


@dataclass(frozen=True)
class RepPresence:
    """A rep as the band counts see them: counted from `since` when active today, otherwise
    only while holding accounts."""

    rep_id: int
    since: datetime
    is_active: bool


@dataclass(frozen=True)
class Moment:
    """An instant; `inclusive` counts the filings made exactly then."""

    at: datetime
    inclusive: bool = True


@dataclass(frozen=True)
class Holdings:
    """Per counted rep: the accounts held and the summed annual value of them."""

    held: dict[int, int]
    value_yuan: dict[int, int]

    def bands(self, target: int, maximum: int) -> BandCounts:
        return band_counts(self.held.values(), target, maximum)

    def gini(self) -> float | None:
        return gini(self.value_yuan.values())


def _comes_before(transfer: Transfer, moment: Moment) -> bool:
    return transfer.at < moment.at or (moment.inclusive and transfer.at == moment.at)


def holdings_at(owners: Mapping[int, int | None], values: Mapping[int, int],
                transfers: Iterable[Transfer], reps: Iterable[RepPresence],
                moments: Sequence[Moment]) -> list[Holdings]:
    """What each counted rep held at each moment (in the order of `moments`).

    `owners` is every account's owner now, after all of `transfers`; `transfers` must hold at
    least every filing made after the earliest moment. The register is replayed backwards from
    today: undoing a filing gives the account back to its `from_rep` (the owner it had just
    before), which the ledger guarantees is the `to_rep` of the account's previous filing. So
    only the filings after the earliest moment are read, not the whole register.
    """
    undo = sorted(transfers, key=lambda transfer: (transfer.at, transfer.seq), reverse=True)
    presences = list(reps)
    owner = dict(owners)
    held: dict[int, int] = defaultdict(int)
    value: dict[int, int] = defaultdict(int)
    for account_id, rep_id in owner.items():
        if rep_id is not None:
            held[rep_id] += 1
            value[rep_id] += values.get(account_id, 0)
    result: dict[int, Holdings] = {}
    position = 0
    latest_first = sorted(range(len(moments)), reverse=True,
                          key=lambda index: (moments[index].at, moments[index].inclusive))
    for index in latest_first:
        moment = moments[index]
        while position < len(undo) and not _comes_before(undo[position], moment):
            transfer = undo[position]
            position += 1
            worth = values.get(transfer.account_id, 0)
            held[transfer.to_rep_id] -= 1
            value[transfer.to_rep_id] -= worth
            owner[transfer.account_id] = transfer.from_rep_id
            if transfer.from_rep_id is not None:
                held[transfer.from_rep_id] += 1
                value[transfer.from_rep_id] += worth
        counted = {presence.rep_id for presence in presences
                   if presence.is_active and presence.since <= moment.at}
        counted |= {rep_id for rep_id, count in held.items() if count > 0}
        result[index] = Holdings({rep_id: held.get(rep_id, 0) for rep_id in sorted(counted)},
                                 {rep_id: value.get(rep_id, 0) for rep_id in sorted(counted)})
    return [result[index] for index in range(len(moments))]


# --- rounds -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredBid:
    """A bid as its round's scoring stored it; `facts` are the stored inputs."""

    facts: BidFacts
    total: float
    is_eligible: bool
    rank: int | None
    is_proposed_winner: bool

    @property
    def bid_id(self) -> int:
        return self.facts.bid_id

    @property
    def rep_id(self) -> int:
        return self.facts.rep_id


@dataclass(frozen=True)
class ListingOutcome:
    """A listing of an announced round: its scored bids, and management's decision.

    `is_decided` is False only for a listing nobody decided (it had no decision when the
    results were announced); `awarded_bid_id` is None for no award. The ranking, proposal and
    award are computed once per listing (every figure of the round asks for them).
    """

    listing_id: int
    bids: tuple[ScoredBid, ...]
    is_decided: bool
    awarded_bid_id: int | None = None
    decided_by_id: int | None = None

    @cached_property
    def ranked_eligible(self) -> list[ScoredBid]:
        return sorted((bid for bid in self.bids if bid.is_eligible),
                      key=lambda bid: (bid.rank is None, bid.rank or 0, bid.bid_id))

    @cached_property
    def proposed(self) -> ScoredBid | None:
        return next((bid for bid in self.bids if bid.is_proposed_winner), None)

    @cached_property
    def top_ranked(self) -> ScoredBid | None:
        ranked = self.ranked_eligible
        return ranked[0] if ranked else None

    @cached_property
    def awarded(self) -> ScoredBid | None:
        return next((bid for bid in self.bids if bid.bid_id == self.awarded_bid_id), None)

    @property
    def is_overridden(self) -> bool:
        """Management decided otherwise than the ranking proposed (another bidder or none)."""
        proposed = self.proposed
        return (self.is_decided and proposed is not None
                and self.awarded_bid_id != proposed.bid_id)


@dataclass(frozen=True)
class RoundRules:
    """What of a round's pinned rules the figures need."""

    capacity_target: int
    capacity_max: int
    max_awards_per_rep: int | None
    min_bids_per_listing: int
    tie_break: tuple[str, ...]


def decided_by_lottery(tie_break: Sequence[str], winner: ScoredBid,
                       runner_up: ScoredBid | None) -> bool:
    """Whether only the lottery separated the two: equal totals and equal keys for every
    tie-break the rules apply before the lottery (the round page's lottery flag, replayed from
    the stored scores: bidhub stores the ranking, not which tie-break decided it)."""
    if runner_up is None or winner.total != runner_up.total or LOTTERY not in tie_break:
        return False
    before = tie_break[:list(tie_break).index(LOTTERY)]
    return all(TIE_BREAKS[name].key(winner.facts, 0) == TIE_BREAKS[name].key(runner_up.facts, 0)
               for name in before)


def lottery_ties(rules: RoundRules, listings: Iterable[ListingOutcome]) -> int:
    """Listings whose proposed winner the lottery chose over the best other eligible bid."""
    count = 0
    for listing in listings:
        proposed = listing.proposed
        if proposed is None:
            continue
        others = [bid for bid in listing.ranked_eligible if bid.bid_id != proposed.bid_id]
        if decided_by_lottery(rules.tie_break, proposed, others[0] if others else None):
            count += 1
    return count


@dataclass(frozen=True)
class Allocated:
    awards: int
    total: float


def _allocated(bids: Iterable[ScoredBid]) -> Allocated:
    chosen = list(bids)
    return Allocated(len(chosen), round(sum(bid.total for bid in chosen), 6) + 0.0)


def greedy_allocation(rules: RoundRules, listings: Sequence[ListingOutcome]) -> Allocated:
    """What greedy would have awarded from the stored scores and ranks, under the round's
    capacity, cap and minimum bids: the allocation's own greedy method over the stored
    rankings (a rep's holdings are the highest their stored bids show, as allocate takes)."""
    facts = {bid.bid_id: bid.facts for listing in listings for bid in listing.bids}
    totals = {bid.bid_id: bid for listing in listings for bid in listing.bids}
    held: dict[int, int] = {}
    for fact in facts.values():
        held[fact.rep_id] = max(held.get(fact.rep_id, fact.accounts_held), fact.accounts_held)
    limit = {rep_id: max(0, rules.capacity_max - count) for rep_id, count in held.items()}
    if rules.max_awards_per_rep is not None:
        limit = {rep_id: min(room, rules.max_awards_per_rep) for rep_id, room in limit.items()}
    minimum = max(rules.min_bids_per_listing, 1)
    contested = {}
    for listing in listings:
        ranked = [(bid.bid_id, bid.facts.rep_id, round(bid.total * 10**6),
                   bid.facts.listing_value_yuan) for bid in listing.ranked_eligible]
        if len(ranked) >= minimum:
            contested[listing.listing_id] = ranked
    awards = ALLOCATION_METHODS[GREEDY].award(contested, limit)
    return _allocated(totals[bid_id] for bid_id in awards.values())


@dataclass(frozen=True)
class RoundFigures:
    """One announced round's figures. `after` and `gini_after` are None while its results
    have not all taken effect (the appeal window)."""

    round_id: int
    band: tuple[int, int]
    before: BandCounts
    after: BandCounts | None
    gini_before: float | None
    gini_after: float | None
    bids: int
    decided: int  # listings with an eligible bid, decided
    top_ranked_won: int
    overridden: int
    lottery_ties: int
    chosen: Allocated
    proposed: Allocated
    greedy: Allocated

    @property
    def top_ranked_rate(self) -> float | None:
        return rate(self.top_ranked_won, self.decided)


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 6)


def round_figures(round_id: int, rules: RoundRules, listings: Sequence[ListingOutcome],
                  before: Holdings, after: Holdings | None) -> RoundFigures:
    decided = [listing for listing in listings
               if listing.is_decided and listing.top_ranked is not None]
    return RoundFigures(
        round_id=round_id, band=(rules.capacity_target, rules.capacity_max),
        before=before.bands(rules.capacity_target, rules.capacity_max),
        after=None if after is None else after.bands(rules.capacity_target, rules.capacity_max),
        gini_before=before.gini(), gini_after=None if after is None else after.gini(),
        bids=sum(len(listing.bids) for listing in listings),
        decided=len(decided),
        top_ranked_won=sum(1 for listing in decided
                           if listing.awarded_bid_id == listing.top_ranked.bid_id),
        overridden=sum(1 for listing in listings if listing.is_overridden),
        lottery_ties=lottery_ties(rules, listings),
        chosen=_allocated(bid for listing in listings if (bid := listing.awarded) is not None),
        proposed=_allocated(bid for listing in listings if (bid := listing.proposed) is not None),
        greedy=greedy_allocation(rules, listings))


# --- rates over all rounds ----------------------------------------------------------------------


def tenure_band(hired_on: date, deadline: datetime, zone: tzinfo) -> str:
    """The tenure band of a rep hired on `hired_on` (a day in the department's time zone
    `zone`), at a round's deadline."""
    months = months_since_day(hired_on, deadline, zone)
    if months < TENURE_BAND_LIMITS[0]:
        return TENURE_BANDS[0]
    if months <= TENURE_BAND_LIMITS[1]:
        return TENURE_BANDS[1]
    return TENURE_BANDS[2]


@dataclass(frozen=True)
class AwardRate:
    key: str
    placed: int
    won: int

    @property
    def rate(self) -> float | None:
        return rate(self.won, self.placed)


def award_rates(bids: Iterable[tuple[str, bool]],
                order: Sequence[str] = ()) -> list[AwardRate]:
    """Bids won / bids placed per key, from (key, won) pairs; keys in `order` first (shown
    even without bids), then the others sorted."""
    placed: Counter[str] = Counter()
    won: Counter[str] = Counter()
    for key, is_won in bids:
        placed[key] += 1
        won[key] += is_won
    keys = list(order) + sorted(key for key in placed if key not in order)
    return [AwardRate(key, placed[key], won[key]) for key in keys]


@dataclass
class ManagerDecisions:
    """A manager's decisions on listings where the ranking proposed a winner."""

    manager_id: int
    decided: int = 0
    accepted: int = 0
    other_bidder: int = 0
    no_award: int = 0
    top_ranked_won: int = 0

    @property
    def overridden(self) -> int:
        return self.other_bidder + self.no_award

    @property
    def override_rate(self) -> float | None:
        return rate(self.overridden, self.decided)


def decisions_by_manager(listings: Iterable[ListingOutcome]) -> list[ManagerDecisions]:
    """Per manager who decided: how often they accepted the ranking's proposal and how often
    they overrode it (another bidder, or no award). Listings without a proposal (too few
    eligible bids, nobody bid) are not counted: there was no ranking to follow."""
    figures: dict[int, ManagerDecisions] = {}
    for listing in listings:
        proposed = listing.proposed
        if not listing.is_decided or proposed is None or listing.decided_by_id is None:
            continue
        entry = figures.setdefault(listing.decided_by_id,
                                   ManagerDecisions(listing.decided_by_id))
        entry.decided += 1
        top = listing.top_ranked
        entry.top_ranked_won += top is not None and listing.awarded_bid_id == top.bid_id
        if listing.awarded_bid_id == proposed.bid_id:
            entry.accepted += 1
        elif listing.awarded_bid_id is None:
            entry.no_award += 1
        else:
            entry.other_bidder += 1
    return sorted(figures.values(), key=lambda entry: (-entry.decided, entry.manager_id))


@dataclass(frozen=True)
class RepeatWinner:
    rep_id: int
    bids: int
    awards: int
    bid_share: float
    award_share: float

    @property
    def ratio(self) -> float:
        return round(self.award_share / self.bid_share, 6)


def repeat_winners(bids: Iterable[tuple[int, bool]], *,
                   min_awards: int = REPEAT_WINNER_MIN_AWARDS,
                   share_ratio: float = REPEAT_WINNER_SHARE_RATIO) -> list[RepeatWinner]:
    """Reps whose share of all awards is at least `share_ratio` times their share of all bids,
    with at least `min_awards` awards, from (rep id, won) pairs; the most lopsided first."""
    placed: Counter[int] = Counter()
    won: Counter[int] = Counter()
    for rep_id, is_won in bids:
        placed[rep_id] += 1
        won[rep_id] += is_won
    all_bids, all_awards = sum(placed.values()), sum(won.values())
    if all_awards == 0:
        return []
    found = []
    for rep_id, count in placed.items():
        awards = won[rep_id]
        bid_share, award_share = count / all_bids, awards / all_awards
        # award_share >= ratio x bid_share, cross-multiplied so that 2x exactly counts.
        if awards >= min_awards and awards * all_bids >= share_ratio * count * all_awards:
            found.append(RepeatWinner(rep_id, count, awards, bid_share, award_share))
    return sorted(found, key=lambda entry: (-entry.ratio, entry.rep_id))
