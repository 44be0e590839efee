"""Re-running scored rounds: verifying stored results and previewing draft rules (what-if)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bidhub.domain.errors import InvalidRequest, NotFound
from bidhub.domain.facts import BidFacts
from bidhub.domain.messages import loads
from bidhub.domain.replay import TOLERANCE, Comparison, compare, replay
from bidhub.domain.reviews import PLAN_REVIEW
from bidhub.domain.rules import RuleSet
from bidhub.domain.scoring import ScoreBreakdown
from bidhub.domain.text import N_, Joined, Text
from bidhub.models import (
    Account,
    AuditEvent,
    Bid,
    BidScore,
    Decision,
    DecisionKind,
    Listing,
    Round,
    RoundStatus,
)
from bidhub.services.application_reviews import plan_reviews
from bidhub.services.rule_sets import parsed
from bidhub.services.track_records import bid_facts_from_dict

FINISHED = (RoundStatus.SCORED, RoundStatus.STANDSTILL, RoundStatus.RESULTS_PUBLISHED)
# What a listing sent back when its results were due to take effect failed, when its decision
# no longer matched what it was made from: the "check" of its listing.apply_refused audit
# event, and the award_refused notice's fourth element (appeals.refuse_mismatched_decision).
DECISION_CHECK = "decision"
APPLY_REFUSED = "listing.apply_refused"


@dataclass(frozen=True)
class StoredRound:
    round: Round
    bids: list[BidFacts]
    scores: dict[int, ScoreBreakdown]
    proposed: dict[int, int | None]  # listing -> the winner the rules proposed
    decided: dict[int, int | None]  # listing -> the winner management decided (if decided)
    rows: dict[int, Bid]


def load_scored_round(session: Session, round_id: int) -> StoredRound:
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise NotFound(N_("No such round."))
    if round_.status not in FINISHED:
        raise InvalidRequest(N_("Only rounds that have been scored can be replayed."))
    rows = list(session.scalars(
        select(Bid).join(BidScore).join(Listing).where(Listing.round_id == round_.id)
        .options(selectinload(Bid.score), selectinload(Bid.rep))))
    proposed: dict[int, int | None] = {listing.id: None for listing in round_.listings}
    for bid in rows:
        if bid.score.is_proposed_winner:
            proposed[bid.listing_id] = bid.id
    decided = {decision.listing_id: decision.bid_id for decision in session.scalars(
        select(Decision).join(Listing).where(Listing.round_id == round_.id))}
    return StoredRound(
        round=round_, bids=[bid_facts_from_dict(bid.score.inputs) for bid in rows],
        scores={bid.id: ScoreBreakdown.from_dict(bid.score.breakdown) for bid in rows},
        proposed=proposed, decided=decided, rows={bid.id: bid for bid in rows})


def what_if(session: Session, round_id: int, rules: RuleSet) -> tuple[StoredRound, Comparison]:
    """The round's stored bids re-scored under `rules`, against the rules' recorded proposal."""
    stored = load_scored_round(session, round_id)
    result = replay(rules, _with_listing_values(session, stored), stored.round.lottery_seed or 0)
    return stored, compare(stored.bids, stored.scores, stored.proposed, result)


def _with_listing_values(session: Session, stored: StoredRound) -> list[BidFacts]:
    """The stored bids, each listed account's annual value filled in from the account today
    where the stored inputs predate the value (which then reads 0), so that a value-aware
    what-if means something for past rounds. The what-if only: verify replays what was stored.
    """
    missing = {bid_id for bid_id, row in stored.rows.items()
               if "listing_value_yuan" not in row.score.inputs}
    if not missing:
        return stored.bids
    values = dict(session.execute(
        select(Listing.id, Account.annual_value_yuan).join(Account, Listing.account_id == Account.id)
        .where(Listing.round_id == stored.round.id)).all())
    return [replace(bid, listing_value_yuan=values[bid.listing_id]) if bid.bid_id in missing
            else bid for bid in stored.bids]


def verify_round(session: Session, round_id: int) -> list[Text]:
    """Differences between a round's stored results and a recomputation under its pinned rules."""
    stored = load_scored_round(session, round_id)
    rules = parsed(stored.round.rule_set)
    problems = []
    if rules.version_hash != stored.round.rule_set.sha256:
        problems.append(N_("the pinned rule text no longer hashes to the recorded version"))
    problems.extend(plan_review_differences(session, rules, stored))
    result = replay(rules, stored.bids, stored.round.lottery_seed or 0)
    for bid_id, recorded in stored.scores.items():
        stored_row = stored.rows[bid_id].score
        recomputed = result.scores[bid_id]
        if not recomputed.same_result(recorded) or recomputed.total != stored_row.total:
            problems.append(N_("bid %(bid)d: recorded total %(recorded)s, recomputed "
                               "%(recomputed)s", bid=bid_id, recorded=stored_row.total,
                               recomputed=recomputed.total))
        if stored_row.rule_set_sha256 != stored.round.rule_set.sha256:
            problems.append(N_("bid %(bid)d: scored under another rule version", bid=bid_id))
    for listing_id, bid_id in stored.proposed.items():
        recomputed = result.allocation.awards.get(listing_id)
        if recomputed != bid_id:
            problems.append(N_("listing %(listing)d: recorded proposal %(recorded)s, "
                               "recomputed %(recomputed)s", listing=listing_id, recorded=bid_id,
                               recomputed=recomputed))
    problems.extend(decision_differences(session, stored))
    # A decision refused for that reason was removed when its listing went back to decision;
    # the audit record is what is left of it, and it is reported for as long as it is kept.
    problems.extend(N_("%(problem)s (found when the results were due to take effect, at "
                       "%(at)s, and refused: it never took effect, and the audit log keeps "
                       "the decision as it was found)", problem=refused.problem,
                       at=f"{refused.refused_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
                    for refused in refused_decisions(session, stored.round.id))
    return problems


@dataclass(frozen=True)
class RefusedDecision:
    """A decision that no longer matched what it was made from when its listing was due to
    take effect, so it was refused and removed, as its audit record keeps it."""

    listing: Listing
    refused_at: datetime
    found: dict  # the decision as it was found: kind, bid, reason, decided_by, decided_at
    problem: Text | Joined | str  # what was wrong with it, as decision_problems said


def refused_decisions(session: Session, round_id: int) -> list[RefusedDecision]:
    """The round's decisions refused when the results were due to take effect because they
    no longer matched what they were made from, in the order they were refused."""
    listings = {f"listing:{listing.id}": listing for listing in session.scalars(
        select(Listing).where(Listing.round_id == round_id)
        .options(selectinload(Listing.account)))}
    if not listings:
        return []
    refused = []
    for target, at, before, after in session.execute(
            select(AuditEvent.target, AuditEvent.at, AuditEvent.before, AuditEvent.after)
            .where(AuditEvent.action == APPLY_REFUSED, AuditEvent.target.in_(list(listings)))
            .order_by(AuditEvent.id)):
        if (after or {}).get("check") != DECISION_CHECK:
            continue  # refused for capacity or a departed winner: the decision matched
        at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        refused.append(RefusedDecision(listings[target], at, (before or {}).get("decision") or {},
                                       loads(after.get("problem") or "")))
    return refused


def decision_differences(session: Session, stored: StoredRound) -> list[Text]:
    """Each decision of the round against what it was made from: an accepted ranking names
    the recorded proposal, no award names no bid, and an override names the bid its audited
    decision chose. A decision's winner edited in the database (during the appeal window,
    before it takes effect and is filed, say) is reported here at once."""
    return list(decision_problems(session, stored).values())


def decision_problems(session: Session, stored: StoredRound) -> dict[int, Text]:
    """`decision_differences` by listing id, in listing order: what is wrong with the
    listing's decision, for the listings whose decision does not match what it was made from.
    The results take effect only for decisions that match (appeals.apply_round)."""
    decisions = list(session.scalars(
        select(Decision).join(Listing).where(Listing.round_id == stored.round.id)
        .order_by(Decision.listing_id)))
    audited: dict[str, object] = {}
    for target, after in session.execute(
            select(AuditEvent.target, AuditEvent.after)
            .where(AuditEvent.action.like("decision.%"),
                   AuditEvent.target.in_([f"listing:{decision.listing_id}"
                                          for decision in decisions]))
            .order_by(AuditEvent.id)):
        audited[target] = (after or {}).get("bid")  # the latest decision recorded wins
    problems: dict[int, Text] = {}
    for decision in decisions:
        listing_id, bid_id = decision.listing_id, decision.bid_id
        if decision.kind == DecisionKind.ACCEPTED:
            expected = stored.proposed.get(listing_id)
        elif decision.kind == DecisionKind.NO_AWARD:
            expected = None
        elif decision.kind == DecisionKind.OVERRIDDEN:
            expected = audited.get(f"listing:{listing_id}")
        else:
            problems[listing_id] = N_("listing %(listing)d: the decision is of no known kind "
                                      "(%(kind)s)", listing=listing_id, kind=decision.kind)
            continue
        if bid_id != expected or (bid_id is not None and bid_id not in stored.rows):
            problems[listing_id] = N_("listing %(listing)d: the decision (%(kind)s) names bid "
                                      "%(decided)s, but what it was made from gives "
                                      "%(expected)s", listing=listing_id, kind=decision.kind,
                                      decided=bid_id, expected=expected)
    return problems


def plan_review_differences(session: Session, rules: RuleSet, stored: StoredRound) -> list[Text]:
    """Each bid's stored plan_review against the one its stored reviews give now, so that a
    review changed, added or deleted after scoring is reported."""
    if rules.review is None:
        return []
    again = plan_reviews(session, rules.review, [bid.bid_id for bid in stored.bids])
    problems = []
    for bid in stored.bids:
        recorded, recomputed = bid.metrics.get(PLAN_REVIEW), again[bid.bid_id]
        if (recorded is None) != (recomputed is None) or (
                recorded is not None and abs(recorded - recomputed) > TOLERANCE):
            problems.append(N_("bid %(bid)d: recorded plan review %(recorded)s, recomputed "
                               "from the stored reviews %(recomputed)s", bid=bid.bid_id,
                               recorded=recorded, recomputed=recomputed))
    return problems
