"""One named answer to each question the business asks of a round, a bid or an account."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import Session, selectinload

from bidhub.config import Defaults
from bidhub.domain.eligibility import CheckedFacts, checks_applied
from bidhub.domain.facts import BidFacts, Stage
from bidhub.domain.metrics import DAYS_PER_MONTH, last_entered, months_before
from bidhub.domain.rules import RuleSet
from bidhub.domain.scoring import ScoreBreakdown, check_eligibility, factor_gaps
from bidhub.domain.text import N_, Text
from bidhub.models import (
    Account,
    Bid,
    BidStatus,
    Decision,
    DecisionKind,
    Listing,
    ListingStatus,
    Opportunity,
    Role,
    Round,
    RoundStatus,
    User,
)
from bidhub.services.rule_sets import parsed
from bidhub.services.track_records import (
    Standing,
    prospect_checked_facts,
    prospect_facts,
    standing_of,
)

# Until a round is scored its bids are sealed: nobody but the bidder sees one, management
# included (managers see only a count). Scoring happens at the deadline, so past the deadline
# but not yet scored is still sealed; so is a blind review, where reviewers see the plans
# under a code and nobody sees who wrote them until the round is scored.
SEALED_ROUND_STATUSES = (RoundStatus.DRAFT, RoundStatus.PUBLISHED, RoundStatus.IN_REVIEW)
# Every lost customer gets a written review (任何客户的丢失都要总结反省): the rep who lost an
# account owes it within this many days of the loss (a release, transfer, award elsewhere or
# CRM import moving the account). bidhub's policy, like the accountability explanation's 7
# days; the BIDHUB_LOSS_REVIEW_DAYS environment variable (1 to 365) overrides it.
LOSS_REVIEW_DAYS = 7
LOSS_REVIEW_DAYS_ALLOWED = range(1, 366)


def loss_review_days(environ: Mapping[str, str] = os.environ) -> int:
    """Days the rep has to write a loss review; a bad override stops with ValueError."""
    raw = environ.get("BIDHUB_LOSS_REVIEW_DAYS")
    if raw is None:
        return LOSS_REVIEW_DAYS
    value = int(raw) if raw.strip().isascii() and raw.strip().isdigit() else None
    if value not in LOSS_REVIEW_DAYS_ALLOWED:
        raise ValueError(f"BIDHUB_LOSS_REVIEW_DAYS must be a whole number from 1 to 365, "
                         f"not {raw!r}")
    return value


class BidOutcome(StrEnum):
    """What became of a bid, read from the decision record (never from today's owner)."""

    WITHDRAWN = "withdrawn"
    NOT_DECIDED = "not_decided"  # results not published yet, so nothing may be told
    WON = "won"
    LOST = "lost"


def bids_are_sealed(round_: Round) -> bool:
    return round_.status in SEALED_ROUND_STATUSES


def results_are_published(round_: Round) -> bool:
    """Only once results are published may a rep learn a score, a rank or an outcome.

    Announced results are published from the start of the standstill: the point of the
    announcement (公示) is that bidders read them, and may appeal, before they take effect.
    """
    return round_.status in (RoundStatus.STANDSTILL, RoundStatus.RESULTS_PUBLISHED)


def awaits_scoring(round_: Round, now: datetime) -> bool:
    """Past its deadline but not scored yet (the scheduler or a manager's button scores it)."""
    return round_.status == RoundStatus.PUBLISHED and round_.closes_at <= now


def accepts_bids(listing: Listing, now: datetime) -> bool:
    """A listing takes bids while its round is open (server clock) and it is still listed."""
    return listing.round.is_open_at(now) and listing.status == ListingStatus.LISTED


def outcome_of(bid: Bid, decision: Decision | None) -> BidOutcome:
    """The bid's outcome given its listing's decision (None when there is none)."""
    if bid.status == BidStatus.WITHDRAWN:
        return BidOutcome.WITHDRAWN
    if decision is None or not results_are_published(bid.listing.round):
        return BidOutcome.NOT_DECIDED
    return BidOutcome.WON if decision.bid_id == bid.id else BidOutcome.LOST


def decisions_for(session: Session, bids: Iterable[Bid]) -> dict[int, Decision]:
    """The decision of each bid's listing, by listing id, in one query."""
    listing_ids = {bid.listing_id for bid in bids}
    if not listing_ids:
        return {}
    return {decision.listing_id: decision for decision in session.scalars(
        select(Decision).where(Decision.listing_id.in_(listing_ids)))}


def bid_outcomes(session: Session, bids: Iterable[Bid]) -> dict[int, BidOutcome]:
    """outcome_of for many bids, by bid id, in one query."""
    bids = list(bids)
    decisions = decisions_for(session, bids)
    return {bid.id: outcome_of(bid, decisions.get(bid.listing_id)) for bid in bids}


def bid_outcome(session: Session, bid: Bid) -> BidOutcome:
    return bid_outcomes(session, [bid])[bid.id]


# Built once: the account page asks on every view, and building the statement cost more than
# running it.
_LISTED_WHERE_REPS_SEE = select(exists().where(
    Listing.account_id == bindparam("account_id"), Listing.round_id == Round.id,
    Round.is_visible_to_reps_at(bindparam("now"))))


def rep_may_see_account(session: Session, user: User, account: Account, now: datetime) -> bool:
    """Management sees every account; a rep sees the accounts they hold and those listed in a
    round that reps can see (current or past), nothing else; an executive, those they sponsor.
    (`account`: anything with the id, owner_id and sponsor_id of one.)"""
    if may_see_owner(user, account):
        return True
    if user.role == Role.EXECUTIVE:
        return False
    return bool(session.connection().execute(
        _LISTED_WHERE_REPS_SEE, {"account_id": account.id, "now": now}).scalar())


def may_see_owner(user: User, account: Account) -> bool:
    """Who holds an account is for management and the holder, not for reps bidding on it (an
    executive sees it on the accounts they sponsor)."""
    if user.role == Role.EXECUTIVE:
        return account.sponsor_id == user.id
    return user.role != Role.REP or account.owner_id == user.id


def may_see_profile_of(user: User, rep_id: int) -> bool:
    """A rep sees their own track record; management sees every rep's."""
    return user.role in (Role.KA_MANAGER, Role.ADMIN) or user.id == rep_id


def sees_sealed_bids_of(user: User, rep_id: int) -> bool:
    """Bids in rounds not yet scored are shown to their bidder only, never to management."""
    return user.id == rep_id


@dataclass(frozen=True)
class RepResult:
    """What a rep may know of a published result: their own breakdown and rank, how many bid,
    the winner's total and where they fell short. Never another bidder's name or content."""

    outcome: BidOutcome
    breakdown: ScoreBreakdown
    rank: int | None
    bidders: int
    winner_total: float | None
    gaps: list
    decision_kind: str | None
    no_award: bool  # decided that nobody wins; the account is released again later
    # The written reason of an override or a no award, which every bidder may read (it is
    # announced with the results); empty when the ranking was followed.
    decision_reason: str = ""
    # The winner was the top-ranked bidder and management followed the ranking: only then did
    # the score decide, so only then is "what would have changed the outcome" true.
    score_decided: bool = False

    @property
    def won(self) -> bool:
        return self.outcome == BidOutcome.WON

    @property
    def deciding_again(self) -> bool:
        """Published, yet without a decision: an upheld appeal sent the listing back."""
        return self.outcome == BidOutcome.NOT_DECIDED


def score_decided(decision: Decision | None) -> bool:
    """The ranking's top bidder won because management accepted the ranking."""
    return (decision is not None and decision.kind == DecisionKind.ACCEPTED
            and decision.bid is not None and decision.bid.score is not None
            and decision.bid.score.rank == 1)


def announced_reason(decision: Decision | None) -> str:
    """The reason published with a decision: an override's or a no award's, never a note
    written when accepting the ranking."""
    if decision is None or decision.kind == DecisionKind.ACCEPTED:
        return ""
    return decision.reason


def rep_result(session: Session, bid: Bid) -> RepResult | None:
    """The bidder's view of the result; None until results are published or if never scored."""
    if not results_are_published(bid.listing.round) or bid.score is None:
        return None
    decision = decisions_for(session, [bid]).get(bid.listing_id)
    outcome = outcome_of(bid, decision)
    mine = ScoreBreakdown.from_dict(bid.score.breakdown)
    winner_bid = decision.bid if decision is not None else None
    gaps, winner_total = [], None
    decided_by_score = score_decided(decision)
    if winner_bid is not None and winner_bid.score is not None:
        winner_total = winner_bid.score.total
        if outcome != BidOutcome.WON and decided_by_score:
            gaps = factor_gaps(mine, ScoreBreakdown.from_dict(winner_bid.score.breakdown))
    bidders = session.scalars(select(Bid.id).where(Bid.listing_id == bid.listing_id,
                                                   Bid.status == BidStatus.ACTIVE)).all()
    return RepResult(outcome=outcome, breakdown=mine, rank=bid.score.rank, bidders=len(bidders),
                     winner_total=winner_total, gaps=gaps,
                     decision_kind=decision.kind if decision is not None else None,
                     no_award=decision is not None and decision.bid_id is None,
                     decision_reason=announced_reason(decision), score_decided=decided_by_score)


def may_see_round(user: User, round_: Round, now: datetime) -> bool:
    """Management sees every round; a rep (or an executive, who reads announcements) sees the
    rounds reps can see (one rule, on Round)."""
    return user.role in (Role.KA_MANAGER, Role.ADMIN) or round_.is_visible_to_reps_at(now)


def may_see_results(user: User, round_: Round, now: datetime) -> bool:
    """The announcement (中标公示) is for everyone who may see the round, and only once its
    results are published: before that, nobody may learn that results exist."""
    return results_are_published(round_) and may_see_round(user, round_, now)


RELEASED_FROM_YOU = N_("This account was released from you; you cannot bid for it.")


@dataclass(frozen=True)
class Hindrance:
    """One reason a rep may not bid for a listing, and what would lift it where that is
    computable. `remedy` parameters named `*_at` are UTC instants for the page to format."""

    reason: Text
    remedy: Text | None = None


def months_counted_at(start: datetime, months: float) -> datetime:
    """The first instant at which the checks count `months` months since `start`, to the next
    whole minute (a remedy is read to the minute, and never names a minute too early), in UTC.

    The checks count whole days elapsed since `start` (months_between) and the facts round
    the months to 4 decimals; so the instant is `start` plus the fewest whole days that make
    the count reach `months`. Days are added on the clocks of `start`'s time zone, as tenure's
    days are counted from its start in the department's zone (tenure_counted_from), so the
    wait ends at midnight there. It depends on `start` alone: every view until then names the
    same instant, whatever the time of day it is seen at."""
    days = max(0, math.ceil(months * DAYS_PER_MONTH) - 1)
    while round(days / DAYS_PER_MONTH, 4) < months:
        days += 1
    moment = start + timedelta(days=days)
    whole_minute = moment.replace(second=0, microsecond=0)
    if whole_minute != moment:
        whole_minute += timedelta(minutes=1)
    return whole_minute.astimezone(UTC)


def _remedy(name: str, rules: RuleSet, facts: BidFacts | CheckedFacts,
            tenure_counted_from: datetime, released_at: datetime | None) -> Text | None:
    """What would lift the failed check `name`, from the same facts the check read and the
    instants they count from: the rep's tenure's start and when they gave up the account."""
    policy = rules.eligibility
    if name == "capacity":
        # A win adds an account: bidding takes fewer than the maximum, not the maximum itself.
        return N_("To bid, hold fewer than %(maximum)d: release %(count)d of your accounts, or "
                  "wait until one is transferred away.",
                  count=facts.accounts_held - policy.capacity_max + 1, maximum=policy.capacity_max)
    if name == "tenure":
        return N_("Wait until %(eligible_at)s, when you reach %(minimum)g months with the "
                  "company.", minimum=policy.min_tenure_months,
                  eligible_at=months_counted_at(tenure_counted_from,
                                                policy.min_tenure_months))
    if name == "accountability":
        return N_("Have %(count)d of your open accountability incidents explained and "
                  "accepted.", count=facts.open_incidents - policy.max_open_incidents)
    if name == "cooldown" and released_at is not None:
        return N_("Wait until %(eligible_at)s, when the cooldown ends.",
                  eligible_at=months_counted_at(released_at, policy.cooldown_months))
    if name == "on_duty" and not facts.unavailable:  # leave ends; leaving the company does not
        return N_("Reps on leave may bid again once KA management records their return.")
    return None  # the branch check: nothing the rep can change


def hindrances_for(session: Session, rep: User, listings: Iterable[Listing], now: datetime, *,
                   zone: str = Defaults.TIMEZONE) -> dict[int, list[Hindrance]]:
    """Why `rep` may not bid for each listing that takes bids, by listing id (listings the rep
    may bid for are left out). The checks are the ones submit_bid applies (the rules'
    eligibility, and no bid for an account released from oneself), read with a fixed number
    of queries however many listings there are; tenure counts in the department's time zone
    `zone`."""
    listings = [listing for listing in listings if accepts_bids(listing, now)]
    if rep.role != Role.REP or not listings:
        return {}
    standing = standing_of(session, rep, now,
                           account_ids=[listing.account_id for listing in listings], zone=zone)
    found: dict[int, list[Hindrance]] = {}
    for listing in listings:
        hindrances = _hindrances(
            parsed(listing.round.rule_set), standing, listing.released_from_id,
            prospect_facts(standing, listing.id, listing.account_id, listing.account.branch.code,
                           listing.account.annual_value_yuan, now),
            standing.released_at.get(listing.account_id))
        if hindrances:
            found[listing.id] = hindrances
    return found


def hindrances_in_round(session: Session, rep: User, round_: Round, rows: Iterable[Any],
                        now: datetime, *, zone: str = Defaults.TIMEZONE
                        ) -> dict[int, list[Hindrance]]:
    """hindrances_for over plain rows of one round's listings (browse.ListingRow: id, status,
    account_id, released_from_id, branch_code), without loading them."""
    if rep.role != Role.REP or not round_.is_open_at(now):
        return {}
    rows = [row for row in rows if row.status == ListingStatus.LISTED]
    if not rows:
        return {}
    standing = standing_of(session, rep, now, round_id=round_.id, zone=zone)
    return {listing_id: list(hindrances) for listing_id, hindrances
            in shared_hindrances_in_round(rep, round_, standing, rows, now).items()}


def shared_hindrances_in_round(rep: User, round_: Any, standing: Standing, rows: Iterable[Any],
                               now: datetime) -> dict[int, tuple[Hindrance, ...]]:
    """hindrances_in_round from the rep's `standing` in the round (read with it), listings
    with the same reasons sharing one tuple, so that a page works out each distinct answer
    (its translation, its markup) once."""
    if rep.role != Role.REP or not round_.is_open_at(now):
        return {}
    rules = parsed(round_.rule_set)
    # The rep's standing is the same on every line and most lines differ only in what the
    # checks do not read (the account, its value), so each distinct set of facts is checked
    # once: a round of 200 listings has a handful. A listing whose account the rep never gave
    # up differs from another only by its branch.
    said: dict[tuple[CheckedFacts, bool, datetime | None], tuple[Hindrance, ...]] = {}
    by_branch: dict[str, tuple[Hindrance, ...]] = {}
    found: dict[int, tuple[Hindrance, ...]] = {}
    listed, rep_id, released_at = ListingStatus.LISTED, standing.rep_id, standing.released_at
    for row in rows:
        if row.status != listed:
            continue
        plain = row.released_from_id != rep_id and row.account_id not in released_at
        hindrances = by_branch.get(row.branch_code) if plain else None
        if hindrances is None:
            key = (prospect_checked_facts(standing, row.account_id, row.branch_code, now),
                   row.released_from_id == rep_id, released_at.get(row.account_id))
            hindrances = said.get(key)
            if hindrances is None:
                hindrances = said[key] = tuple(_checked_hindrances(
                    rules, *key, standing.tenure_counted_from))
            if plain:
                by_branch[row.branch_code] = hindrances
        if hindrances:
            found[row.id] = hindrances
    return found


def _checked_hindrances(rules: RuleSet, facts: CheckedFacts, released_from_rep: bool,
                        released_at: datetime | None,
                        tenure_counted_from: datetime) -> list[Hindrance]:
    """_hindrances for the checks `rules` apply to a bid (checks_applied), from CheckedFacts."""
    hindrances = [Hindrance(RELEASED_FROM_YOU)] if released_from_rep else []
    for rule in checks_applied(rules.eligibility, facts):
        passed, reason = rule.check(rules.eligibility, facts)
        if not passed:
            # Released from this rep, the listing stays closed to them whatever they do: a
            # remedy (wait for the cooldown) would promise what never comes in this round.
            hindrances.append(Hindrance(reason, None if released_from_rep else _remedy(
                rule.name, rules, facts, tenure_counted_from, released_at)))
    return hindrances


def _hindrances(rules: RuleSet, standing: Standing, released_from_id: int | None,
                facts: BidFacts, released_at: datetime | None) -> list[Hindrance]:
    """Why the rep may not bid, from the facts of a bid for the listing; `released_at`: when
    the rep last gave up its account, if ever."""
    released_from_rep = released_from_id == standing.rep_id
    hindrances = [Hindrance(RELEASED_FROM_YOU)] if released_from_rep else []
    # As in _checked_hindrances: no remedy on a listing that stays closed to the rep.
    hindrances += [Hindrance(check.reason, None if released_from_rep else _remedy(
                       check.name, rules, facts, standing.tenure_counted_from, released_at))
                   for check in check_eligibility(rules, facts) if not check.passed]
    return hindrances


# --- accountability (销售监控问责) -------------------------------------------------------------

@dataclass(frozen=True)
class AccountabilityPolicy:
    """The handbook's accountability rule as configured: only an account that placed no order
    with us (no deal won within `won_deal_months`) can be held to account, and the rep owes
    the explanation form within `explanation_days` of the sighting being logged."""

    won_deal_months: int = 12
    explanation_days: int = 7


# Setting -> the config key (and BIDHUB_<key> environment variable) that overrides it, with
# the values that make sense.
ACCOUNTABILITY_SETTINGS = {
    "won_deal_months": ("ACCOUNTABILITY_WON_DEAL_MONTHS", range(1, 121)),
    "explanation_days": ("ACCOUNTABILITY_EXPLANATION_DAYS", range(1, 366)),
}


def accountability_policy(config: Mapping[str, Any] | None = None,
                          environ: Mapping[str, str] = os.environ) -> AccountabilityPolicy:
    """The policy in force: the app's config wins, then the environment, then the defaults.

    A value that is not a whole number in range stops with ValueError naming the setting, so
    a typo never silently turns the rule off."""
    values = {}
    for name, (key, allowed) in ACCOUNTABILITY_SETTINGS.items():
        raw = (config or {}).get(key)
        if raw is None:
            raw = environ.get(f"BIDHUB_{key}")
        if raw is None:
            continue
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value = None
        if value not in allowed:
            raise ValueError(f"{key} must be a whole number from {allowed.start} to "
                             f"{allowed.stop - 1}, not {raw!r}")
        values[name] = value
    return AccountabilityPolicy(**values)


def won_at(opportunity: Opportunity) -> datetime | None:
    """When a won deal was won: its close date, else the day its history last entered won
    (`last_entered`, as the track record reads the deal: won again after it was re-opened,
    it was won the second time)."""
    if opportunity.closed_at is not None:
        return opportunity.closed_at
    return last_entered(opportunity.stage_changes, Stage.WON)


def recent_won_deals(session: Session, account_ids: Iterable[int], now: datetime,
                     policy: AccountabilityPolicy, zone: tzinfo) -> dict[int, Opportunity]:
    """The latest deal won on each account within the window (metrics' "won": stage won, won
    from its close date on), by account id; an account that placed no order with us in the
    window is left out. A won deal without any date counts as recent: nothing shows it is
    older.

    The window's months are the department's calendar months (`zone`), as the track record's
    windows and the CRM's dates are."""
    since = months_before(now.astimezone(zone), policy.won_deal_months)
    latest: dict[int, tuple[datetime, Opportunity]] = {}
    ids = sorted(set(account_ids))
    for start in range(0, len(ids), 500):
        for opportunity in session.scalars(
                select(Opportunity).where(Opportunity.account_id.in_(ids[start:start + 500]),
                                          Opportunity.stage == Stage.WON)
                .options(selectinload(Opportunity.stage_changes))):
            when = won_at(opportunity) or now
            if since <= when <= now and (opportunity.account_id not in latest
                                         or when > latest[opportunity.account_id][0]):
                latest[opportunity.account_id] = (when, opportunity)
    return {account_id: opportunity for account_id, (_when, opportunity) in latest.items()}


def recent_won_deal(session: Session, account_id: int, now: datetime,
                    policy: AccountabilityPolicy, zone: tzinfo) -> Opportunity | None:
    """The latest deal won on the account within the window, or None (recent_won_deals)."""
    return recent_won_deals(session, [account_id], now, policy, zone).get(account_id)
