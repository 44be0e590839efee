"""Fairness across rounds (公平性): loads the register, scores and decisions for the figures.

A fixed number of queries whatever the number of rounds, bids or filings: every announced
round's listings, scored bids and decisions are read in one statement each, the filings since
the first announcement and the accounts' owners and values in one each, and
bidhub/domain/fairness.py computes the figures.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bidhub.config import Defaults
from bidhub.domain.eligibility import ELIGIBILITY_SETTINGS
from bidhub.domain.facts import BidFacts
from bidhub.domain.fairness import (
    REPEAT_WINNER_MIN_AWARDS,
    REPEAT_WINNER_SHARE_RATIO,
    TENURE_BANDS,
    AwardRate,
    BandCounts,
    ListingOutcome,
    ManagerDecisions,
    Moment,
    RepeatWinner,
    RepPresence,
    RoundFigures,
    RoundRules,
    ScoredBid,
    Transfer,
    award_rates,
    decisions_by_manager,
    holdings_at,
    repeat_winners,
    round_figures,
    tenure_band,
)
from bidhub.domain.rules import RuleSet
from bidhub.models import (
    Account,
    Bid,
    BidScore,
    Branch,
    Decision,
    Filing,
    Listing,
    ListingStatus,
    Role,
    Round,
    RoundStatus,
    User,
)
from bidhub.services.rule_sets import active_rule_set, parsed
from bidhub.services.track_records import hire_day

# Rounds whose results were announced: their decisions are known (and, once published, in
# effect). Cancelled rounds and rounds still being decided are left out.
ANNOUNCED = (RoundStatus.STANDSTILL, RoundStatus.RESULTS_PUBLISHED)
# Listings that went through bidding: not cancelled, not refused by the sponsor.
BID_ON = (ListingStatus.LISTED, ListingStatus.DECIDED, ListingStatus.AWARDED,
          ListingStatus.NOT_AWARDED)


@dataclass(frozen=True)
class RoundRow:
    round: Round
    figures: RoundFigures


@dataclass(frozen=True)
class FairnessReport:
    rounds: list[RoundRow]  # oldest announcement first
    now_band: tuple[int, int]
    now: BandCounts
    gini_now: float | None
    by_branch: list[tuple[Branch | None, AwardRate]]
    by_tenure: list[AwardRate]
    managers: list[tuple[str, ManagerDecisions]]
    repeat_winners: list[tuple[str, RepeatWinner]]
    repeat_min_awards: int = REPEAT_WINNER_MIN_AWARDS
    repeat_share_ratio: float = REPEAT_WINNER_SHARE_RATIO

    @property
    def lottery_ties(self) -> int:
        return sum(row.figures.lottery_ties for row in self.rounds)

    @property
    def overridden(self) -> int:
        return sum(row.figures.overridden for row in self.rounds)


def round_rules(rules: RuleSet) -> RoundRules:
    return RoundRules(capacity_target=rules.eligibility.capacity_target,
                      capacity_max=rules.eligibility.capacity_max,
                      max_awards_per_rep=rules.caps.max_awards_per_rep_per_round,
                      min_bids_per_listing=rules.min_bids_per_listing,
                      tie_break=rules.tie_break)


def now_band(session: Session) -> tuple[int, int]:
    """Today's band: the active rules' (as the capacity board uses), else the defaults."""
    version = active_rule_set(session)
    if version is None:
        return (ELIGIBILITY_SETTINGS["capacity_target"].default,
                ELIGIBILITY_SETTINGS["capacity_max"].default)
    eligibility = parsed(version).eligibility
    return eligibility.capacity_target, eligibility.capacity_max


def announced_rounds(session: Session) -> list[Round]:
    return list(session.scalars(
        select(Round).where(Round.status.in_(ANNOUNCED))
        .order_by(Round.results_published_at, Round.id)))


def listing_outcomes(session: Session) -> dict[int, list[ListingOutcome]]:
    """Round id -> its bid-on listings, each with its scored bids and decision."""
    listings = session.execute(
        select(Listing.id, Listing.round_id).join(Round)
        .where(Round.status.in_(ANNOUNCED), Listing.status.in_(BID_ON))
        .order_by(Listing.id)).all()
    bids: dict[int, list[ScoredBid]] = defaultdict(list)
    # Only the stored inputs the figures read (the tie-breaks read holdings and submission
    # time, the rates the branch), taken out of the JSON by the database: decoding every bid's
    # whole frozen track record was most of the page's time.
    for row in session.execute(
        select(Bid.id, Bid.rep_id, Bid.listing_id, Bid.submitted_at,
               BidScore.inputs["accounts_held"].as_integer(),
               BidScore.inputs["rep_branch"].as_string(), BidScore.total, BidScore.is_eligible,
               BidScore.rank, BidScore.is_proposed_winner)
        .join(BidScore, BidScore.bid_id == Bid.id).join(Listing, Bid.listing_id == Listing.id)
        .join(Round, Listing.round_id == Round.id)
        .where(Round.status.in_(ANNOUNCED), Listing.status.in_(BID_ON)).order_by(Bid.id)
    ):
        bid_id, rep_id, listing_id, submitted_at, held, branch, *score = row
        facts = BidFacts(bid_id=bid_id, rep_id=rep_id, listing_id=listing_id,
                         submitted_at=submitted_at, metrics={}, accounts_held=held or 0,
                         tenure_months=0.0, open_incidents=0, rep_branch=branch or "",
                         listing_branch="")
        bids[listing_id].append(ScoredBid(facts, *score))
    decisions = {listing_id: (bid_id, decided_by) for listing_id, bid_id, decided_by in
                 session.execute(select(Decision.listing_id, Decision.bid_id,
                                        Decision.decided_by_id)
                                 .join(Listing, Decision.listing_id == Listing.id)
                                 .join(Round, Listing.round_id == Round.id)
                                 .where(Round.status.in_(ANNOUNCED)))}
    outcomes: dict[int, list[ListingOutcome]] = defaultdict(list)
    for listing_id, round_id in listings:
        decision = decisions.get(listing_id)
        outcomes[round_id].append(ListingOutcome(
            listing_id, tuple(bids[listing_id]), is_decided=decision is not None,
            awarded_bid_id=decision[0] if decision else None,
            decided_by_id=decision[1] if decision else None))
    return outcomes


def register_facts(session: Session, since: datetime | None
                   ) -> tuple[list[Transfer], dict[int, datetime]]:
    """The filings made at or after `since` (None: none), and when each round's last transfer
    was filed. Older filings are not needed: holdings are replayed back from today's owners."""
    transfers, last_of_round = [], {}
    if since is None:
        return transfers, last_of_round
    for seq, account_id, from_rep_id, to_rep_id, at, round_id in session.execute(
            select(Filing.seq, Filing.account_id, Filing.from_rep_id, Filing.to_rep_id,
                   Filing.decided_at, Filing.round_id).where(Filing.decided_at >= since)):
        transfers.append(Transfer(seq, account_id, from_rep_id, to_rep_id, at))
        if round_id is not None and (round_id not in last_of_round
                                     or at > last_of_round[round_id]):
            last_of_round[round_id] = at
    return transfers, last_of_round


def fairness_report(session: Session, now: datetime, *,
                    zone: str = Defaults.TIMEZONE) -> FairnessReport:
    """Every announced round's fairness figures, today's, and the rates over all of them;
    tenure at a deadline counts from the start of the hire day in the department's time zone
    `zone`."""
    rounds = announced_rounds(session)
    outcomes = listing_outcomes(session)
    transfers, last_of_round = register_facts(
        session, min((round_.results_published_at for round_ in rounds), default=None))
    owners, values = {}, {}
    for account_id, owner_id, value_yuan in session.execute(
            select(Account.id, Account.owner_id, Account.annual_value_yuan)):
        owners[account_id], values[account_id] = owner_id, value_yuan
    users = session.execute(select(User.id, User.display_name, User.role, User.is_active,
                                   User.created_at, User.hired_on)).all()
    presences = [RepPresence(user.id, user.created_at, user.role == Role.REP and user.is_active)
                 for user in users]
    moments = [Moment(now)]
    for round_ in rounds:
        moments.append(Moment(round_.results_published_at, inclusive=False))
        moments.append(Moment(last_of_round.get(round_.id, round_.results_published_at)))
    holdings = holdings_at(owners, values, transfers, presences, moments)
    band = now_band(session)
    rows = []
    for index, round_ in enumerate(rounds):
        before, after = holdings[1 + 2 * index], holdings[2 + 2 * index]
        in_effect = round_.status == RoundStatus.RESULTS_PUBLISHED
        rows.append(RoundRow(round_, round_figures(
            round_.id, round_rules(parsed(round_.rule_set)), outcomes.get(round_.id, []),
            before, after if in_effect else None)))
    names = {user.id: user.display_name for user in users}
    department = ZoneInfo(zone)
    hired = {user.id: hire_day(user, department) for user in users}

    def band_at_deadline(round_: Round, rep_id: int) -> str:
        deadline = round_.closes_at
        return tenure_band(hired.get(rep_id, deadline.astimezone(department).date()), deadline,
                           department)

    every = [(round_, listing, bid) for round_ in rounds for listing in outcomes.get(round_.id, [])
             for bid in listing.bids]
    branches = {branch.code: branch for branch in session.scalars(select(Branch))}
    by_code = award_rates((bid.facts.rep_branch, bid.bid_id == listing.awarded_bid_id)
                          for _round, listing, bid in every)
    return FairnessReport(
        rounds=rows, now_band=band, now=holdings[0].bands(*band), gini_now=holdings[0].gini(),
        by_branch=[(branches.get(entry.key), entry) for entry in by_code],
        by_tenure=award_rates(((band_at_deadline(round_, bid.rep_id),
                                bid.bid_id == listing.awarded_bid_id)
                               for round_, listing, bid in every), order=TENURE_BANDS),
        managers=[(names.get(entry.manager_id, ""), entry) for entry in decisions_by_manager(
            listing for listings in outcomes.values() for listing in listings)],
        repeat_winners=[(names.get(entry.rep_id, ""), entry) for entry in repeat_winners(
            (bid.rep_id, bid.bid_id == listing.awarded_bid_id)
            for _round, listing, bid in every)])
