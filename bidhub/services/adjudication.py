"""After the deadline: scoring a round, KA management's decisions, and publishing results."""

from __future__ import annotations

import json
import secrets
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Integer,
    String,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from bidhub.config import Defaults
from bidhub.db import end_read, unit_of_work
from bidhub.domain import flags as second_look
from bidhub.domain.allocation import allocate
from bidhub.domain.errors import (
    CapacityExceeded,
    Conflict,
    InvalidRequest,
    NotFound,
    OwnerChangeRefused,
    ReceiverUnavailable,
    refuse_together,
)
from bidhub.domain.facts import INACTIVE, LEFT, NOT_REP
from bidhub.domain.messages import dumps
from bidhub.domain.rules import RuleSet
from bidhub.domain.scoring import score_round
from bidhub.domain.standstill import standstill_end
from bidhub.domain.text import COMMA, N_, Joined, Text
from bidhub.domain.tie_breaks import TIE_BREAKS
from bidhub.models import (
    Account,
    Bid,
    BidScore,
    BidStatus,
    Branch,
    Decision,
    DecisionKind,
    FilingKind,
    Listing,
    ListingStatus,
    RepStatus,
    Role,
    Round,
    RoundStatus,
    User,
)
from bidhub.prepared_reads import PreparedRead, in_ids
from bidhub.services import application_reviews
from bidhub.services.audit import record_audit
from bidhub.services.filings import check_reason
from bidhub.services.flags import (
    FACT_COLUMNS,
    FLAG_INPUT_PARTS,
    NO_AT,
    NO_TEXT,
    BidFlag,
    facts_of,
    flag_input_params,
    flag_inputs_of,
    flags_from,
    tag,
)
from bidhub.services.loss_reviews import withdraw_unlost_review
from bidhub.services.notifications import DECIDED_AGAIN, REVIEW_STARTED, notify
from bidhub.services.ownership import (
    OwnerChange,
    capacity_problems,
    change_owners,
    check_capacity,
    check_receiver,
    commitment_parts,
    commitments_from,
    is_postgresql,
    lock_accounts,
    lock_reps,
    lock_round,
    refusal_message,
    refuse_unavailable_receivers,
)
from bidhub.services.rule_sets import parsed
from bidhub.services.track_records import bid_facts, bid_facts_from_dict, bid_facts_to_dict

# The department's time zone when the caller names none: working days are counted in it, and
# reps' tenure from the start of their hire day there.
DEFAULT_ZONE = Defaults.TIMEZONE
# Why a decision is refused in a round that is not in adjudication (still open, cancelled,
# results published).
NOT_IN_ADJUDICATION = N_("Decisions are taken after scoring and before results are published.")


def active_bids_of_round(session: Session, round_id: int) -> list[Bid]:
    """The bids to score: active, on listings still in the round (a listing cancelled before
    the deadline keeps its bids, unscored, so it takes no rep's place in the allocation)."""
    return list(session.scalars(
        select(Bid).join(Listing).where(Listing.round_id == round_id,
                                        Listing.status != ListingStatus.CANCELLED,
                                        Bid.status == BidStatus.ACTIVE)
        .options(selectinload(Bid.rep), selectinload(Bid.listing).selectinload(Listing.account))
        .order_by(Bid.id)))


def score_closed_round(session: Session, round_id: int, now: datetime, *,
                       zone: str = DEFAULT_ZONE) -> bool:
    """Score a published round whose deadline has passed; False if there is nothing to do.

    Idempotent: the status only moves from published to scored once, so the scheduler, a
    start-up catch-up and a manager's button can all call it. A round whose rules ask for a
    blind review goes into review instead (True), and is scored here once its review is
    complete or closed early. The bidders' tenure counts in the department's time zone `zone`.
    """
    with unit_of_work(session):
        # Locked: the last review's submit, an early close and the scheduler may race here.
        round_ = lock_round(session, round_id)
        if round_ is None or round_.closes_at > now or round_.status not in (
                RoundStatus.PUBLISHED, RoundStatus.IN_REVIEW):
            return False
        rules = parsed(round_.rule_set)
        hold_bidders(session, round_.id)
        bids = active_bids_of_round(session, round_.id)
        if rules.review is not None and round_.status == RoundStatus.PUBLISHED and bids:
            application_reviews.start_review(session, round_, bids, now)
            notify(session, REVIEW_STARTED, round_, now)
            return True
        if (round_.status == RoundStatus.IN_REVIEW
                and not application_reviews.may_score_review(session, round_)):
            return False
        facts = bid_facts(session, bids, now, zone=zone)
        if rules.review is not None:
            facts = application_reviews.with_plan_reviews(session, rules.review, facts)
        scores = score_round(rules, facts)
        round_.lottery_seed = secrets.randbelow(2**31)
        allocation = allocate(rules, facts, scores, round_.lottery_seed)
        rank_of = {bid_id: position + 1 for ranking in allocation.rankings.values()
                   for position, bid_id in enumerate(ranking)}
        proposed = {bid_id for bid_id in allocation.awards.values() if bid_id is not None}
        for fact in facts:
            score = scores[fact.bid_id]
            session.add(BidScore(
                bid_id=fact.bid_id, rule_set_sha256=round_.rule_set.sha256,
                inputs=bid_facts_to_dict(fact), breakdown=score.to_dict(), total=score.total,
                is_eligible=score.is_eligible, rank=rank_of.get(fact.bid_id),
                # Kept as msgid and parameters, so it is shown in the reader's language. A
                # proposed winner's is the note saying whether ranked preferences decided it.
                not_awarded_reason=dumps(allocation.reasons.get(fact.bid_id)
                                         or allocation.notes.get(fact.bid_id, "")),
                is_proposed_winner=fact.bid_id in proposed))
        round_.status = RoundStatus.SCORED
        round_.scored_at = now
        record_audit(session, None, "round.scored", f"round:{round_.id}", now,
                     after={"bids": len(bids), "rule_set": round_.rule_set.sha256,
                            "lottery_seed": round_.lottery_seed,
                            "flagged": sorted(allocation.flagged)})
        return True


def hold_bidders(session: Session, round_id: int) -> None:
    """Lock the rows of the round's bidders in share mode (FOR SHARE on PostgreSQL), in id
    order after the round's, until the scoring commits, and read them afresh: whether each may
    still hold accounts (`BidFacts.unavailable`) is read as it stays. A rep marked as left,
    deactivated or given another role (which locks the row to write it) is either committed
    before and scored so, or waits until the round is scored and has their pending awards sent
    back then; never committed while the scoring goes on to propose them as available. (On
    SQLite the write transaction excludes every other writer already.)"""
    if not is_postgresql(session):
        return
    bidders = (select(Bid.rep_id).join(Listing)
               .where(Listing.round_id == round_id, Bid.status == BidStatus.ACTIVE))
    session.scalars(select(User).where(User.id.in_(bidders)).order_by(User.id)
                    .with_for_update(read=True, of=User)
                    .execution_options(populate_existing=True)).all()


def close_due_rounds(session: Session, now: datetime, *, zone: str = DEFAULT_ZONE) -> list[int]:
    """Score every published round whose deadline has passed (scheduler and start-up); start
    the blind review of those whose rules ask for one, and score reviews that are complete
    (a catch-up: the last review's submit normally scores them)."""
    due = list(session.scalars(select(Round.id).where(
        Round.closes_at <= now, Round.status.in_([RoundStatus.PUBLISHED,
                                                  RoundStatus.IN_REVIEW]))
        .order_by(Round.id)))
    end_read(session)  # each round is scored in a transaction of its own
    return [round_id for round_id in due if score_closed_round(session, round_id, now, zone=zone)]


def ranked_bids(session: Session, listing_id: int) -> list[Bid]:
    """A scored listing's bids, best first; ineligible ones last."""
    bids = list(session.scalars(
        select(Bid).join(BidScore).where(Bid.listing_id == listing_id)
        .options(selectinload(Bid.score), selectinload(Bid.rep))))
    return sorted(bids, key=lambda bid: (bid.score.rank is None, bid.score.rank or 0, bid.id))


def decide_listing(
    session: Session, actor: User, listing_id: int, *, kind: str, bid_id: int | None,
    reason: str, now: datetime, expected_version: int | None = None,
) -> Decision:
    """Record management's decision for a listing.

    A first decision is an insert guarded by the one-decision-per-listing constraint and a
    conditional status change, so concurrent attempts give one success and conflicts for the
    rest. Changing a decision needs the version the manager saw (optimistic locking).
    """
    with unit_of_work(session):
        listing = session.get(Listing, listing_id)
        if listing is None:
            raise NotFound(N_("No such listing."))
        # The round's lock orders this decision against publishing and other decisions.
        round_ = lock_round(session, listing.round_id)
        if not may_decide(round_, listing):
            raise InvalidRequest(NOT_IN_ADJUDICATION)
        kind, chosen, reason = checked_decision(session, round_, listing.id, kind, bid_id,
                                                reason)
        decision = session.scalars(select(Decision).where(Decision.listing_id == listing.id)).first()
        if decision is None:
            changed = session.execute(
                update(Listing).where(Listing.id == listing.id, Listing.status == ListingStatus.LISTED)
                .values(status=ListingStatus.DECIDED).execution_options(synchronize_session=False))
            if changed.rowcount != 1:
                raise Conflict(N_("Someone else decided this listing first; reload to see it."))
            decision = Decision(listing_id=listing.id, kind=kind, bid_id=chosen.id if chosen else None,
                                reason=reason, decided_by_id=actor.id, decided_at=now)
            session.add(decision)
            try:
                session.flush()
            except IntegrityError as error:
                raise Conflict(N_("Someone else decided this listing first; reload to see it.")) from error
            before = None
        else:
            if expected_version is None or expected_version != decision.version:
                raise Conflict(N_("This listing was decided in the meantime; reload to see the "
                                  "decision before changing it."))
            before = {"kind": decision.kind, "bid": decision.bid_id, "reason": decision.reason}
            decision.kind, decision.bid_id, decision.reason = kind, chosen.id if chosen else None, reason
            decision.decided_by_id, decision.decided_at = actor.id, now
        if kind != DecisionKind.ACCEPTED or before is not None:
            record_audit(session, actor, f"decision.{kind}", f"listing:{listing.id}", now,
                         before=before, after={"bid": decision.bid_id, "reason": reason})
        if round_.status == RoundStatus.STANDSTILL:
            # The results are out: a listing sent back is announced again as it is decided.
            session.flush()
            notify(session, DECIDED_AGAIN, decision, now)
        return decision


def may_decide(round_: Round, listing: Listing) -> bool:
    """Decisions are open while a round is scored; during the standstill they are frozen, except
    for a listing sent back to decision (an upheld appeal, or an award refused at apply time)."""
    if round_.status == RoundStatus.SCORED:
        return True
    return round_.status == RoundStatus.STANDSTILL and listing.status == ListingStatus.LISTED


def checked_decision(session: Session, round_: Round, listing_id: int, kind: str,
                     bid_id: int | None, reason: str) -> tuple[str, Bid | None, str]:
    """The decision's kind, the bid it awards and its reason, checked: what is wrong with the
    bidder chosen (none, not eligible, unable to receive the account) and with the reason is
    refused together, so that the manager corrects both at once."""
    refusals: list[InvalidRequest] = []
    kind, chosen, reason = chosen_bid(ranked_bids(session, listing_id), kind, bid_id, reason,
                                      refusals)
    if chosen is not None:
        try:
            check_winner_capacity(session, round_, chosen, listing_id)
        except InvalidRequest as refusal:
            refusals.insert(0, refusal)  # the bidder's field comes before the reason's
    refuse_together(refusals)
    return kind, chosen, reason


def chosen_bid(ranking: list[Bid], kind: str, bid_id: int | None, reason: str,
               refusals: list[InvalidRequest]) -> tuple[str, Bid | None, str]:
    """The decision's kind, the bid it awards (None for no award or a bidder refused) and its
    reason; what is wrong with the bidder or the reason is added to `refusals`.

    Overriding in favour of the proposed winner is accepting the ranking; a reason is required
    for an override or no award, and optional when the ranking is accepted.
    """
    proposed = next((bid for bid in ranking if bid.score.is_proposed_winner), None)
    if kind == DecisionKind.ACCEPTED:
        if proposed is None:
            raise InvalidRequest(N_("The ranking proposes no winner here; choose a bidder or no award "
                                    "and give a reason."), field="kind")
        return kind, proposed, reason.strip()
    if kind not in (DecisionKind.OVERRIDDEN, DecisionKind.NO_AWARD):
        raise InvalidRequest(N_("Choose a decision."), field="kind")
    chosen = None
    if kind == DecisionKind.OVERRIDDEN:
        chosen = next((bid for bid in ranking if bid.id == bid_id), None)
        if chosen is None:
            refusals.append(InvalidRequest(N_("Choose one of this listing's bidders."),
                                           field="bid_id"))
        elif not chosen.score.is_eligible:
            refusals.append(InvalidRequest(N_("%(rep)s is not eligible for this account.",
                                              rep=chosen.rep.display_name), field="bid_id"))
            chosen = None
        elif proposed is not None and chosen.id == proposed.id:
            return DecisionKind.ACCEPTED, chosen, reason.strip()
    try:
        reason = check_reason(reason)
    except InvalidRequest as refusal:
        refusals.append(refusal)
    return kind, chosen, reason


def check_winner_capacity(session: Session, round_: Round, chosen: Bid, listing_id: int) -> None:
    """A manager's choice goes to a rep who may still hold accounts (not one who left or was
    deactivated since the deadline), and obeys capacity, counting awards waiting in every
    round, and the per-round cap, as the allocation does."""
    rules = parsed(round_.rule_set)
    lock_reps(session, [chosen.rep_id])
    session.refresh(chosen.rep)  # as it stands under the lock
    try:
        check_receiver(chosen.rep, field="bid_id")
    except ReceiverUnavailable as error:
        raise ReceiverUnavailable(
            N_("%(problem)s Choose another bidder or no award, with a written reason.",
               problem=error.message), field="bid_id") from error
    check_capacity(session, chosen.rep, adding=1, limit=rules.eligibility.capacity_max,
                   excluding_listing_ids=[listing_id], field="bid_id")
    cap = rules.caps.max_awards_per_rep_per_round
    if cap is not None:
        others = session.scalar(
            select(func.count(Decision.id)).join(Listing, Decision.listing_id == Listing.id)
            .join(Bid, Decision.bid_id == Bid.id)
            .where(Listing.round_id == round_.id, Bid.rep_id == chosen.rep_id,
                   Decision.listing_id != listing_id))
        if others + 1 > cap:
            raise InvalidRequest(N_("%(rep)s already has %(awards)d award in this round; the "
                                    "cap is %(cap)d.", rep=chosen.rep.display_name,
                                    awards=others, cap=cap) if others == 1 else
                                 N_("%(rep)s already has %(awards)d awards in this round; the "
                                    "cap is %(cap)d.", rep=chosen.rep.display_name,
                                    awards=others, cap=cap), field="bid_id")


# Stored as the decision's reason for a listing nobody bid for; shown translated by the pages.
NO_BID_REASON = "Nobody bid for this account, so it is not awarded."


class Flag:
    """Why a proposed award needs a manager's look before it is accepted."""

    CAPACITY = "capacity"
    # The winner left the company or was deactivated (or is no rep) since the deadline.
    WINNER_UNAVAILABLE = "winner_unavailable"
    LOTTERY = "lottery"
    FEW_BIDS = "few_bids"
    # A bid deserves a second look (services/flags.py), shown per bid with its explanation.
    STALE_CRM = second_look.STALE_CRM
    METRIC_OUTLIER = second_look.METRIC_OUTLIER
    RESET_BY_ADMIN = second_look.RESET_BY_ADMIN


# The order a listing's second-look flags are listed in.
SECOND_LOOKS = (Flag.STALE_CRM, Flag.METRIC_OUTLIER, Flag.RESET_BY_ADMIN)


@dataclass(frozen=True)
class ListedAccount:
    id: int
    name: str
    external_id: str
    owner_id: int | None
    annual_value_yuan: int  # the list's default order
    # What the round page's filter menus offer (browse.filter_options_of).
    industry: str
    ownership_type: str
    branch_id: int
    branch_name: str
    branch_name_zh: str | None


@dataclass(frozen=True)
class ReviewedListing:
    """A listing as the round's pages show it after scoring, read as plain columns."""

    id: int
    account_id: int
    status: str
    applied_at: datetime | None
    cancel_reason: str
    account: ListedAccount


@dataclass(frozen=True)
class ListingReview:
    """One listing of a scored round as management adjudicates it."""

    listing: ReviewedListing
    ranking: list[RankedBid]
    decision: RoundDecision | None
    flags: tuple[str, ...]
    # The second-look flags of this listing's bids, by bid id (bids without any left out).
    bid_flags: dict[int, tuple[BidFlag, ...]] = field(default_factory=dict)
    # The bidders who may no longer receive accounts (left, deactivated), and why the winner
    # (the decision's, or the proposed one while undecided) may not, if they may not.
    unavailable_rep_ids: frozenset[int] = frozenset()
    winner_refusal: Text | None = None

    def flagged_bids(self, kind: str) -> list[tuple[RankedBid, BidFlag]]:
        """The bids carrying a second-look flag of `kind`, best ranked first, with the flag."""
        return [(bid, found) for bid in self.ranking for found in self.bid_flags.get(bid.id, ())
                if found.kind == kind]

    @property
    def proposed(self) -> RankedBid | None:
        return next((bid for bid in self.ranking if bid.score.is_proposed_winner), None)

    @property
    def eligible(self) -> list[RankedBid]:
        return [bid for bid in self.ranking if bid.score.is_eligible]

    @property
    def runner_up(self) -> RankedBid | None:
        """The best eligible bid ranked below the proposed winner: the one it beat."""
        return runner_up_of(self.ranking, self.proposed)

    @property
    def passed_over(self) -> int:
        """How many eligible bids rank above the proposed winner: bids the allocation kept
        out of this listing (capacity, the per-round cap, a better total elsewhere); each
        bid's reason says which. 0 when the proposed winner ranks first."""
        proposed = self.proposed
        if proposed is None:
            return 0
        return next(index for index, bid in enumerate(self.ranking) if bid is proposed)

    @property
    def margin(self) -> float | None:
        """The proposed winner's lead over the runner-up, never negative: a better-ranked bid
        the allocation kept out (`passed_over`) is not one the winner beat."""
        proposed, runner_up = self.proposed, self.runner_up
        if proposed is None or runner_up is None:
            return None
        return proposed.score.total - runner_up.score.total

    @property
    def has_no_bids(self) -> bool:
        return not self.ranking

    @property
    def accepts_unflagged(self) -> bool:
        """Undecided, with a proposed winner and nothing for a manager to look at."""
        return self.decision is None and self.proposed is not None and not self.flags


def runner_up_of(ranking: Sequence[RankedBid], proposed: RankedBid | None) -> RankedBid | None:
    """The first eligible bid after the proposed winner in a ranking (best first, ineligible
    bids last), or None. Not the best other bid: the allocation may propose a bid below one
    it kept out of this listing."""
    if proposed is None:
        return None
    below = False
    for bid in ranking:
        if below:
            return bid if bid.score.is_eligible else None
        below = bid is proposed
    return None


def decided_by_lottery(rules: RuleSet, winner: RankedBid, runner_up: RankedBid | None) -> bool:
    """Whether only the rules' lottery separated the winner from the runner-up."""
    if runner_up is None or winner.score.total != runner_up.score.total:
        return False
    if "lottery" not in rules.tie_break:
        return False
    first, second = bid_facts_from_dict(winner.score.inputs), bid_facts_from_dict(
        runner_up.score.inputs)
    before_lottery = rules.tie_break[:rules.tie_break.index("lottery")]
    return all(TIE_BREAKS[name].key(first, 0) == TIE_BREAKS[name].key(second, 0)
               for name in before_lottery)


def review_round(session: Session, round_: Round, *,
                 zone: str = DEFAULT_ZONE) -> dict[int, ListingReview]:
    """Every listing of a scored round with its ranking, decision and flags, by listing id;
    the flags' branch distributions count the months of the department's time zone `zone`.

    Three statements whatever the number of listings. Read-only to callers: the answer is
    kept per process for the rows it was worked out from (`_reviews_from`).
    """
    if session.autoflush:
        # On the session's connection, flushed first as session.execute would (autoflush).
        session.flush()
    connection = session.connection()
    rules = parsed(round_.rule_set)
    # Plain tuples: they make the key, and a Row compares with another in Python.
    listing_rows = tuple(_LISTINGS.all(connection, {"round_id": round_.id}))
    scored = tuple(_SCORED_BIDS.all(connection, {"round_id": round_.id}))
    # The rep and whether proposed: _SCORED_BIDS' second and last columns.
    winner_ids = sorted({row[1] for row in scored if row[-1]})
    facts = tuple(_REVIEW_FACTS.all(connection, {
        **flag_input_params(round_, zone), "rep_ids": winner_ids,
        "tied_ids": lottery_candidates(rules, scored)}))
    key = (round_.rule_set.text, listing_rows, scored, facts)
    reviews = _KEPT_REVIEWS.get(key)
    if reviews is None:
        reviews = _reviews_from(rules, listing_rows, scored, facts, winner_ids)
        rows = len(listing_rows) + len(scored) + len(facts)
        if (len(_KEPT_REVIEWS) >= _KEPT_REVIEWS_LIMIT
                or sum(_KEPT_REVIEW_ROWS.values()) + rows > _KEPT_REVIEWS_ROWS):
            _KEPT_REVIEWS.clear()
            _KEPT_REVIEW_ROWS.clear()
        if rows <= _KEPT_REVIEWS_ROWS:
            _KEPT_REVIEWS[key] = reviews
            _KEPT_REVIEW_ROWS[id(reviews)] = rows
    return reviews


# review_round's answers by everything they are worked out from (the rule text and every row
# read: a changed decision, score, name, import or holding is a new key), so that a round's
# page seen again works out no ranking, flag or capacity check afresh. Bounded in entries and
# in rows held (a scored bid's row holds its frozen record): cleared when full, like the
# pages' fragments; a round too large to keep is worked out on every view.
_KEPT_REVIEWS: dict[tuple, dict[int, ListingReview]] = {}
_KEPT_REVIEW_ROWS: dict[int, int] = {}
_KEPT_REVIEWS_LIMIT = 16
_KEPT_REVIEWS_ROWS = 20_000


def _reviews_from(rules: RuleSet, listing_rows, scored, facts,
                  winner_ids: list[int]) -> dict[int, ListingReview]:
    """review_round's answer from its rows."""
    listings, decisions = _listings_and_decisions(listing_rows)
    rankings = ranked_bids_of_round(rules, scored, {
        row[1]: row[-1] for row in facts if row[0] == SCORED_INPUTS_ROW})
    # The flags read the bids' frozen records from the rows the ranking was built from.
    bid_flags = flags_from(rules, [facts_of(row) for row in scored], flag_inputs_of(facts))
    winners = {listing.id: winner_of(rankings[listing.id], decisions.get(listing.id))
               for listing in listings}
    commitments = commitments_from(winner_ids, facts)
    unavailable = {row[1]: row[4] for row in facts if row[0] == UNAVAILABLE_ROW}
    names = {bid.rep_id: bid.rep.display_name for ranking in rankings.values() for bid in ranking}
    in_round = Counter(rep_id for rep_id in winners.values() if rep_id is not None)
    decided_here = Counter(decision.bid.rep_id for listing_id, decision in decisions.items()
                           if decision.bid is not None and listing_id in winners)
    reviews = {}
    for listing in listings:
        ranking, decision = rankings[listing.id], decisions.get(listing.id)
        flags = []
        proposed = next((bid for bid in ranking if bid.score.is_proposed_winner), None)
        if proposed is not None:
            rep_id = proposed.rep_id
            # Every award in this round counted once, this listing's included, as publishing will.
            counted_here = 1 if winners[listing.id] == rep_id else 0
            pending_elsewhere = commitments[rep_id].pending - decided_here[rep_id]
            total = commitments[rep_id].held + max(pending_elsewhere, 0) + in_round[rep_id]
            total += 1 - counted_here
            cap = rules.caps.max_awards_per_rep_per_round
            if total > rules.eligibility.capacity_max or (
                    cap is not None and in_round[rep_id] + 1 - counted_here > cap):
                flags.append(Flag.CAPACITY)
            if decided_by_lottery(rules, proposed, runner_up_of(ranking, proposed)):
                flags.append(Flag.LOTTERY)
        if ranking and sum(1 for bid in ranking if bid.score.is_eligible) < max(
                rules.min_bids_per_listing, 1):
            flags.append(Flag.FEW_BIDS)
        flagged = {bid.id: bid_flags[bid.id] for bid in ranking if bid.id in bid_flags}
        kinds = {found.kind for listed in flagged.values() for found in listed}
        flags.extend(kind for kind in SECOND_LOOKS if kind in kinds)
        winner_refusal = None
        if winners[listing.id] in unavailable:
            winner_refusal = refusal_message(names.get(winners[listing.id], ""),
                                             unavailable[winners[listing.id]])
            flags.insert(0, Flag.WINNER_UNAVAILABLE)
        reviews[listing.id] = ListingReview(
            listing, ranking, decision, tuple(flags), flagged,
            frozenset(bid.rep_id for bid in ranking if bid.rep_id in unavailable),
            winner_refusal)
    return reviews


class RankedRep(NamedTuple):
    id: int
    display_name: str


class RankedScore(NamedTuple):
    total: float
    rank: int | None
    is_eligible: bool
    is_proposed_winner: bool
    # The frozen track record, read only for the bids a lottery check compares.
    inputs: dict[str, Any] | None = None


class RankedBid(NamedTuple):
    """A scored bid as adjudication shows it, read as plain columns: building ORM objects for
    every bid and its rep, and decoding each score's JSON, was most of the review's cost
    (tuples: a round's page builds three for each of its bids)."""

    id: int
    listing_id: int
    rep_id: int
    rep: RankedRep
    score: RankedScore


# Built once: composing a statement costs more than running it on a round of this size.
# The round's listings with their accounts and decisions (each with its winner's name).
_LISTINGS = PreparedRead(
    select(Listing.id, Listing.account_id, Listing.status, Listing.applied_at,
           Listing.cancel_reason, Account.name, Account.external_id, Account.owner_id,
           Account.annual_value_yuan, Decision.id, Decision.kind, Decision.bid_id, Decision.reason, Decision.version,
           Bid.rep_id, User.display_name, Account.industry, Account.ownership_type,
           Account.branch_id, Branch.name, Branch.name_zh)
    .join(Account, Account.id == Listing.account_id)
    .join(Branch, Branch.id == Account.branch_id)
    .outerjoin(Decision, Decision.listing_id == Listing.id)
    .outerjoin(Bid, Bid.id == Decision.bid_id).outerjoin(User, User.id == Bid.rep_id)
    .where(Listing.round_id == bindparam("round_id")).order_by(Listing.id))
_SCORED_BIDS = PreparedRead(
    select(*FACT_COLUMNS, Bid.listing_id, User.display_name, BidScore.total,
           BidScore.rank, BidScore.is_eligible, BidScore.is_proposed_winner)
    .join(BidScore, BidScore.bid_id == Bid.id).join(Listing, Listing.id == Bid.listing_id)
    .join(User, User.id == Bid.rep_id).where(Listing.round_id == bindparam("round_id")))
SCORED_INPUTS_ROW = "scored_inputs"
# The round's bidders who may no longer receive accounts, as (tag, rep id, NULL, NULL, why):
# why is LEFT, INACTIVE or NOT_REP, in `unavailable_receiver`'s order. Read with the flags'
# inputs, so that a rep who leaves changes the rows the kept review is keyed on.
UNAVAILABLE_ROW = "unavailable"
_UNAVAILABLE_BIDDERS = (
    select(tag(UNAVAILABLE_ROW), User.id, cast(null(), Integer), NO_AT,
           case((User.status == RepStatus.LEFT, literal_column(f"'{LEFT}'", String)),
                (User.is_active.is_(False), literal_column(f"'{INACTIVE}'", String)),
                else_=literal_column(f"'{NOT_REP}'", String)))
    .where(User.id.in_(select(Bid.rep_id).join(Listing, Listing.id == Bid.listing_id)
                       .where(Listing.round_id == bindparam("round_id"))),
           or_(User.status == RepStatus.LEFT, User.is_active.is_(False),
               User.role != Role.REP)))
# What the flags and the capacity checks read besides the bids, in one statement: the flags'
# inputs, the proposed winners' commitments (the parameter `rep_ids`), the bidders who may no
# longer receive accounts and the frozen inputs of the bids `lottery_candidates` names (the
# parameter `tied_ids`), as (tag, bid id, NULL, NULL, inputs).
_REVIEW_FACTS = PreparedRead(union_all(
    *FLAG_INPUT_PARTS, *commitment_parts(tag, NO_AT, NO_TEXT), _UNAVAILABLE_BIDDERS,
    select(tag(SCORED_INPUTS_ROW), BidScore.bid_id, cast(null(), Integer), NO_AT,
           cast(BidScore.inputs, String))
    .where(in_ids(BidScore.bid_id, "tied_ids"))))


def lottery_candidates(rules: RuleSet, rows) -> list[int]:
    """The scored bids (rows of _SCORED_BIDS) whose frozen inputs `decided_by_lottery` may
    compare: when the rules draw lots, every proposed winner with another eligible bid of the
    same total on its listing, and those bids.

    Found from the rows already read, so that only these few bids' inputs are read, where a
    window over every scored bid (counting equal totals per listing) sorted them all on each
    view of the round."""
    if "lottery" not in rules.tie_break:
        return []
    # _SCORED_BIDS' columns: 5 listing id, 7 total, 9 eligible, 10 proposed winner
    proposed = {row[5]: row for row in rows if row[10]}
    tied = {row[0] for row in rows if row[9] and not row[10] and row[5] in proposed
            and row[7] == proposed[row[5]][7]}
    tied.update(proposed[row[5]][0] for row in rows if row[0] in tied)
    return sorted(tied)


def ranked_bids_of_round(rules: RuleSet, rows,
                         inputs_of: Mapping[int, str]) -> dict[int, list[RankedBid]]:
    """Each listing's scored bids (rows of _SCORED_BIDS), best first and ineligible ones last,
    by listing id; the inputs of a proposed winner and its runner-up with equal totals when
    the rules draw lots, for `decided_by_lottery`, from `inputs_of` (bid id -> inputs as
    stored, for at least the bids `lottery_candidates` names)."""
    reps: dict[int, RankedRep] = {}
    by_listing: dict[int, list[RankedBid]] = defaultdict(list)
    # The columns in _SCORED_BIDS' order; the flags' facts are not the ranking's.
    for (bid_id, rep_id, _branch_id, _submitted_at, _record, listing_id, name, total, rank,
         is_eligible, is_proposed_winner) in rows:
        rep = reps.get(rep_id) or reps.setdefault(rep_id, RankedRep(rep_id, name))
        by_listing[listing_id].append(RankedBid(
            bid_id, listing_id, rep_id, rep,
            RankedScore(total, rank, is_eligible, is_proposed_winner)))
    tied: set[int] = set()
    for listed in by_listing.values():
        listed.sort(key=lambda bid: (bid.score.rank is None, bid.score.rank or 0, bid.id))
        if "lottery" in rules.tie_break:
            proposed = next((bid for bid in listed if bid.score.is_proposed_winner), None)
            runner_up = runner_up_of(listed, proposed)
            if runner_up is not None and runner_up.score.total == proposed.score.total:
                tied |= {proposed.id, runner_up.id}
    if tied:
        for listed in by_listing.values():
            listed[:] = [bid._replace(score=bid.score._replace(
                inputs=json.loads(inputs_of[bid.id]))) if bid.id in tied else bid
                for bid in listed]
    return by_listing


@dataclass(frozen=True)
class DecidedBid:
    """The bid a decision awards, by whom."""

    id: int
    rep_id: int
    rep: RankedRep


@dataclass(frozen=True)
class RoundDecision:
    """A listing's decision as the round's pages show it, with the winning bid's rep."""

    id: int
    listing_id: int
    kind: str
    bid_id: int | None
    reason: str
    version: int
    bid: DecidedBid | None


def _listings_and_decisions(
        rows) -> tuple[list[ReviewedListing], dict[int, RoundDecision]]:
    """The round's listings in id order, and their decisions by listing id, from the rows of
    _LISTINGS."""
    listings, decisions = [], {}
    for (listing_id, account_id, status, applied_at, cancel_reason, name, external_id, owner_id,
         annual_value, decision_id, kind, bid_id, reason, version, rep_id, rep_name, industry,
         ownership_type, branch_id, branch_name, branch_name_zh) in rows:
        listings.append(ReviewedListing(
            listing_id, account_id, status, applied_at, cancel_reason,
            ListedAccount(account_id, name, external_id, owner_id, annual_value, industry,
                          ownership_type, branch_id, branch_name, branch_name_zh)))
        if decision_id is not None:
            decisions[listing_id] = RoundDecision(
                decision_id, listing_id, kind, bid_id, reason, version,
                None if bid_id is None else DecidedBid(bid_id, rep_id,
                                                       RankedRep(rep_id, rep_name)))
    return listings, decisions


def winner_of(ranking: list[RankedBid], decision: RoundDecision | None) -> int | None:
    """The rep who gets the listing if the round were published now: the decision's winner,
    or the proposed one while undecided."""
    if decision is not None:
        return decision.bid.rep_id if decision.bid is not None else None
    proposed = next((bid for bid in ranking if bid.score.is_proposed_winner), None)
    return proposed.rep_id if proposed is not None else None


@dataclass(frozen=True)
class PublishSummary:
    """What publishing the results will do, or what is left before it can."""

    awards: int
    overrides: int
    without_award: int
    no_bid_defaults: int
    transfers: int
    undecided: list[ReviewedListing]
    over_capacity: list[tuple[ReviewedListing, Text]]
    # Awards to reps who may no longer receive accounts (left or deactivated), with why.
    unavailable: list[tuple[ReviewedListing, Text]] = field(default_factory=list)

    @property
    def can_publish(self) -> bool:
        return not self.undecided and not self.over_capacity and not self.unavailable


def publish_summary(session: Session, round_: Round,
                    reviews: dict[int, ListingReview]) -> PublishSummary:
    """The counts publishing will produce, and what would make it refuse (undecided
    listings, awards past capacity now, awards to reps who left or were deactivated), so
    that it is only offered when it will succeed."""
    live = [review for review in reviews.values()
            if review.listing.status in (ListingStatus.LISTED, ListingStatus.DECIDED)]
    awards = [review for review in live
              if review.decision is not None and review.decision.bid is not None]
    # The same check publishing makes, over the same changes.
    problems = capacity_problems(
        session, [OwnerChange(review.listing.account_id, review.decision.bid.rep_id,
                              listing_id=review.listing.id) for review in awards],
        {review.listing.account_id: review.listing.account for review in awards},
        parsed(round_.rule_set).eligibility.capacity_max)
    blocked = {problem.listing_id: problem.message for problem in problems}
    kinds = Counter(review.decision.kind for review in live if review.decision is not None)
    defaults = sum(1 for review in live if review.decision is None and review.has_no_bids)
    transfers = sum(1 for review in live if review.decision is not None
                    and review.decision.bid is not None
                    and review.decision.bid.rep_id != review.listing.account.owner_id)
    return PublishSummary(
        awards=kinds[DecisionKind.ACCEPTED], overrides=kinds[DecisionKind.OVERRIDDEN],
        without_award=kinds[DecisionKind.NO_AWARD] + defaults, no_bid_defaults=defaults,
        transfers=transfers,
        undecided=[review.listing for review in live
                   if review.decision is None and not review.has_no_bids],
        over_capacity=[(review.listing, blocked[review.listing.id]) for review in awards
                       if review.listing.id in blocked],
        unavailable=[(review.listing, review.winner_refusal) for review in awards
                     if review.winner_refusal is not None])


def unflagged_listing_ids(reviews: dict[int, ListingReview]) -> list[int]:
    return sorted(listing_id for listing_id, review in reviews.items()
                  if review.accepts_unflagged)


def accept_unflagged(session: Session, actor: User, round_id: int, *, listing_ids: list[int],
                     expected_version: int, now: datetime,
                     zone: str = DEFAULT_ZONE) -> list[int]:
    """Accept the proposed award of exactly `listing_ids`, the set the manager confirmed (the
    flags read in the department's time zone `zone`, as the page that offered it).

    One transaction: if the round changed or the unflagged undecided set is no longer that
    set, nothing is decided. Each acceptance goes through `decide_listing`, with its locks and
    capacity check.
    """
    with unit_of_work(session):
        round_ = lock_round(session, round_id)
        if round_ is None:
            raise NotFound(N_("No such round."))
        if round_.status != RoundStatus.SCORED:
            raise InvalidRequest(NOT_IN_ADJUDICATION)
        reviews = review_round(session, round_, zone=zone)
        current = unflagged_listing_ids(reviews)
        if round_.version != expected_version or current != sorted(set(listing_ids)):
            raise Conflict(N_("The listings to accept changed since you confirmed them; nothing "
                              "was decided. Review the new list and confirm again."))
        # Every winner's row at once, in id order, as every use case locks reps: locked one
        # acceptance at a time, in listing order, two rounds accepted at once with winners in
        # common could each hold the rep the other waits for.
        lock_reps(session, [reviews[listing_id].proposed.rep_id for listing_id in current])
        for listing_id in current:
            decide_listing(session, actor, listing_id, kind=DecisionKind.ACCEPTED, bid_id=None,
                           reason="", now=now)
        record_audit(session, actor, "round.accepted_unflagged", f"round:{round_.id}", now,
                     after={"listings": current})
        return current


def publish_results(session: Session, actor: User, round_id: int, *, expected_version: int,
                    now: datetime, zone: str = DEFAULT_ZONE) -> list[int]:
    """Announce a scored round's results; the filings' sequence numbers when they took effect.

    With an appeal window in the round's rules, the results are announced (公示): the round
    enters its standstill until the end of the window, decisions are frozen and nothing
    changes owner yet ([] is returned); `apply_due_listings` makes each listing take effect
    later. Without a window, every awarded account is transferred and filed at once, in this
    transaction. Either way every award is checked again at once: if any goes to a rep who
    may no longer receive accounts (who left or was deactivated since the deadline) or would
    take its rep past the limit, nothing is published and the refusal lists those listings.
    """
    with unit_of_work(session):
        round_ = lock_round(session, round_id)
        if round_ is None:
            raise NotFound(N_("No such round."))
        if round_.status != RoundStatus.SCORED:
            raise Conflict(N_("Results can be published once, after scoring; this round's are "
                              "published already.")
                           if round_.status in (RoundStatus.RESULTS_PUBLISHED,
                                                RoundStatus.STANDSTILL)
                           else N_("Results can be published once, after scoring."))
        if round_.version != expected_version:
            raise Conflict(N_("Someone else changed this round; reload it and try again."))
        rules = parsed(round_.rule_set)
        listings = [listing for listing in round_.listings
                    if listing.status in (ListingStatus.LISTED, ListingStatus.DECIDED)]
        decisions, defaults = decisions_with_defaults(session, actor, round_, listings, now)
        changes = award_changes(session, round_, listings, decisions)
        window = rules.appeal_window_working_days
        try:
            if window:
                accounts = lock_accounts(session, [change.account_id for change in changes])
                lock_reps(session, [change.to_rep_id for change in changes]
                          + [account.owner_id for account in accounts.values()])
                refuse_unavailable_receivers(session, changes, accounts)
                problems = capacity_problems(session, changes, accounts,
                                             rules.eligibility.capacity_max)
                if problems:
                    raise CapacityExceeded(Joined(dict.fromkeys(problem.message
                                                                for problem in problems),
                                                  separator=" "), problems=problems)
                filings = []
            else:
                filings = change_owners(session, changes,
                                        limit=rules.eligibility.capacity_max, now=now)
        except OwnerChangeRefused as error:
            names = {listing.id: listing.account.name for listing in listings}
            broken = sorted({problem.listing_id for problem in error.problems})
            listed = Joined([N_("%(account)s (listing %(listing)d)", account=names[listing_id],
                                listing=listing_id) for listing_id in broken])
            if isinstance(error, ReceiverUnavailable):
                raise ReceiverUnavailable(
                    N_("Nothing was published: these awards go to reps who can no longer "
                       "receive accounts; decide them again (another bidder, or no award): "
                       "%(listings)s. %(problems)s", listings=listed, problems=error.message),
                    problems=error.problems) from error
            raise CapacityExceeded(
                N_("Nothing was published: these awards would take a rep past capacity; decide "
                   "them again: %(listings)s. %(problems)s", listings=listed,
                   problems=error.message),
                problems=error.problems) from error
        filed = [filing.seq for filing in filings]
        # The announcement time stays the round's results time, whenever the results take effect.
        round_.results_published_at = now
        if window:
            for listing in listings:
                listing.status = ListingStatus.DECIDED
            round_.status = RoundStatus.STANDSTILL
            round_.standstill_ends_at = standstill_end(now, window, ZoneInfo(zone))
            record_audit(session, actor, "round.results_announced", f"round:{round_.id}", now,
                         after={"standstill_ends_at": round_.standstill_ends_at.isoformat(),
                                "window_working_days": window,
                                "no_bid_defaults": [listing.id for listing in defaults]})
        else:
            for listing in listings:
                mark_applied(listing, decisions[listing.id], now)
            round_.status = RoundStatus.RESULTS_PUBLISHED
            record_audit(session, actor, "round.results_published", f"round:{round_.id}", now,
                         after={"filings": filed,
                                "no_bid_defaults": [listing.id for listing in defaults]})
        notify(session, "results_published", round_, now)
        return filed


def decisions_with_defaults(
    session: Session, actor: User, round_: Round, listings: list[Listing], now: datetime,
) -> tuple[dict[int, Decision], list[Listing]]:
    """Every listing's decision, by listing id, with the no-bid default written for listings
    nobody bid for; refuses while any listing with bids is undecided."""
    decisions = {decision.listing_id: decision for decision in session.scalars(
        select(Decision).join(Listing).where(Listing.round_id == round_.id))}
    # A listing nobody bid for has nothing to decide: it is recorded as not awarded, by
    # whoever publishes, with the standard reason the round page showed them.
    scored = set(session.scalars(select(Bid.listing_id).join(BidScore).join(Listing)
                                 .where(Listing.round_id == round_.id)))
    defaults = [listing for listing in listings
                if listing.id not in decisions and listing.id not in scored]
    for listing in defaults:
        decisions[listing.id] = Decision(
            listing_id=listing.id, kind=DecisionKind.NO_AWARD, bid_id=None,
            reason=NO_BID_REASON, decided_by_id=actor.id, decided_at=now)
        session.add(decisions[listing.id])
    undecided = [listing.account.name for listing in listings if listing.id not in decisions]
    if undecided:
        shown = Joined([Joined(undecided[:5], separator=COMMA), "…" if len(undecided) > 5 else ""],
                       separator="")  # names: data
        raise InvalidRequest(N_("Decide every listing first; %(count)d still open: "
                                "%(accounts)s", count=len(undecided), accounts=shown))
    return decisions, defaults


def award_changes(session: Session, round_: Round, listings: list[Listing],
                  decisions: dict[int, Decision],
                  appeals: dict[int, list[dict]] | None = None) -> list[OwnerChange]:
    """The owner change each awarding decision makes, with what its filing records.

    `appeals` holds, by listing id, the appeals to record in the filing (None: none filed).
    The runner-up score is the best of the other eligible bids the winner was weighed against:
    all of them, except those ranked above the rules' proposed winner, which the allocation
    kept out of this listing (capacity, the per-round cap, a better total elsewhere). So an
    accepted ranking's runner-up is the next bid below the winner, and an override's is the
    best score it passed over.
    """
    eligible: dict[int, list[tuple[int, float, int | None, bool]]] = defaultdict(list)
    for listing_id, bid_id, total, rank, proposed in session.execute(
        select(Bid.listing_id, Bid.id, BidScore.total, BidScore.rank,
               BidScore.is_proposed_winner).join(BidScore)
        .join(Listing).where(Listing.round_id == round_.id, BidScore.is_eligible)
    ):
        eligible[listing_id].append((bid_id, total, rank, proposed))
    changes = []
    for listing in listings:
        decision = decisions[listing.id]
        if decision.bid_id is None:
            continue
        winner = decision.bid
        runner_up_score = max((total for bid_id, total, rank in weighed_against(
            eligible[listing.id]) if bid_id != winner.id), default=None)
        changes.append(OwnerChange(listing.account_id, winner.rep_id, listing_id=listing.id,
                                   filing={
            "kind": FilingKind.ROUND_AWARD, "round_id": round_.id, "listing_id": listing.id,
            "reason": f"Won in round “{round_.title}”", "winner_score": winner.score.total,
            "runner_up_score": runner_up_score, "rule_set_sha256": round_.rule_set.sha256,
            "override_reason": (decision.reason if decision.kind == DecisionKind.OVERRIDDEN
                                else ""),
            "decided_by_id": decision.decided_by_id,
            "appeals": (appeals or {}).get(listing.id)}))
    return changes


def weighed_against(eligible: list[tuple[int, float, int | None, bool]]
                    ) -> list[tuple[int, float, int | None]]:
    """A listing's eligible bids (id, total, rank, proposed) without those ranked above the
    proposed winner (none left out when nobody was proposed)."""
    proposed_rank = next((rank for _id, _total, rank, proposed in eligible if proposed), None)
    return [(bid_id, total, rank) for bid_id, total, rank, _proposed in eligible
            if proposed_rank is None or rank is None or rank >= proposed_rank]


def mark_applied(listing: Listing, decision: Decision, now: datetime) -> None:
    """The listing's decision took effect: awarded (filed) or not awarded."""
    listing.status = (ListingStatus.AWARDED if decision.bid_id is not None
                      else ListingStatus.NOT_AWARDED)
    listing.applied_at = now
    if decision.bid_id is None:
        withdraw_unlost_review(listing, now)
