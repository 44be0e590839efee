"""The standstill after results are announced (公示期): appeals, cancellations, taking effect.

A round whose rules set an appeal window is announced by `publish_results` and enters its
standstill: each listing keeps its decision (status decided) and nothing changes owner. During
the window a rep who had an active bid on a listing when the round closed may appeal its result
once, with a written ground; KA management answers each appeal. Upheld, the decision is removed
(the audit keeps it) and the listing goes back to decision; rejected, the decision stands.

Once the window has ended, `apply_due_listings` (the scheduler, every half minute and at
start-up) makes every decided listing whose appeals are all answered take effect: the transfer
goes through `change_owners` and its filing records the appeals. When no listing of the round
is left to take effect, the round's results are in force (results published); the round keeps
its announcement time as `results_published_at`.

Until a listing takes effect, management may cancel it, or the whole round, with a reason.
A cancelled listing never transfers; its bids stay as they are, sealed by the same rules as
any other bid of the round.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from bidhub.db import end_read, unit_of_work
from bidhub.domain.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    OwnerChangeRefused,
    PermissionDenied,
    ReceiverUnavailable,
)
from bidhub.domain.messages import dumps
from bidhub.domain.standstill import is_window_open
from bidhub.domain.text import N_, Text
from bidhub.domain.typed_text import short_writing, writes_less_than
from bidhub.models import (
    Appeal,
    AppealStatus,
    AuditEvent,
    Bid,
    BidStatus,
    Decision,
    Listing,
    ListingStatus,
    Role,
    Round,
    RoundStatus,
    User,
)
from bidhub.services.adjudication import award_changes, mark_applied
from bidhub.services.audit import record_audit
from bidhub.services.filings import check_reason
from bidhub.services.limits import MAX_REASON_LENGTH, MIN_REASON_LENGTH
from bidhub.services.loss_reviews import withdraw_unlost_review
from bidhub.services.notifications import notify
from bidhub.services.ownership import change_owners, lock_round, reopen
from bidhub.services.replays import (
    APPLY_REFUSED,
    DECISION_CHECK,
    decision_problems,
    load_scored_round,
)
from bidhub.services.rule_sets import parsed

MANAGEMENT_ROLES = (Role.KA_MANAGER, Role.ADMIN)
# Listings still waiting to take effect; every other status is final for a round's results.
WAITING_LISTING_STATUSES = (ListingStatus.LISTED, ListingStatus.DECIDED)
APPLIED_LISTING_STATUSES = (ListingStatus.AWARDED, ListingStatus.NOT_AWARDED)


def appeal_window_open(round_: Round, now: datetime) -> bool:
    """Whether the round's results are announced and still open to appeal."""
    return round_.status == RoundStatus.STANDSTILL and is_window_open(round_.standstill_ends_at,
                                                                      now)


def require_management(actor: User) -> None:
    if actor.role not in MANAGEMENT_ROLES:
        raise PermissionDenied(N_("Only KA management can do this."))


def check_text(text: str, field: str, too_short) -> str:
    text = text.strip()
    if writes_less_than(text, MIN_REASON_LENGTH):
        raise InvalidRequest(short_writing(too_short, text, MIN_REASON_LENGTH), field=field)
    if len(text) > MAX_REASON_LENGTH:
        raise InvalidRequest(N_("Write at most %(count)d characters.", count=MAX_REASON_LENGTH),
                             field=field)
    return text


def locked_listing(session: Session, listing_id: int) -> tuple[Listing, Round]:
    """The listing and its round, the round locked first (the order every use case keeps)."""
    listing = session.get(Listing, listing_id)
    if listing is None:
        raise NotFound(N_("No such listing."))
    round_ = lock_round(session, listing.round_id)
    session.refresh(listing)
    return listing, round_


# --- appeals ---------------------------------------------------------------------------------

def file_appeal(session: Session, rep: User, listing_id: int, *, ground: str,
                now: datetime) -> Appeal:
    """A bidder's appeal of a listing's announced result, during the window; one per listing.

    Only a rep whose bid was active when the round closed may appeal: a withdrawn bid was no
    longer competing, and nobody else took part. The winner has no result to appeal.
    """
    with unit_of_work(session):
        listing, round_ = locked_listing(session, listing_id)
        bid = session.scalars(select(Bid).where(
            Bid.listing_id == listing.id, Bid.rep_id == rep.id,
            Bid.status == BidStatus.ACTIVE)).first()
        if bid is None:
            raise PermissionDenied(N_("Only a rep who bid for this account can appeal its "
                                      "result."))
        if not appeal_window_open(round_, now):
            raise InvalidRequest(
                N_("The appeal window for this round has closed; its results can no longer be "
                   "appealed.") if round_.standstill_ends_at is not None
                else N_("This round's results are not open to appeal."))
        if listing.status != ListingStatus.DECIDED:
            raise InvalidRequest(
                N_("This account is back with KA management to decide again; there is no "
                   "result to appeal now.") if listing.status == ListingStatus.LISTED
                else N_("This listing was cancelled; there is no result to appeal."))
        if session.scalars(select(Decision.id).where(Decision.listing_id == listing.id,
                                                     Decision.bid_id == bid.id)).first():
            raise InvalidRequest(N_("You won this account: only a bidder who did not win it "
                                    "may appeal its result."))
        if session.scalars(select(Appeal.id).where(Appeal.listing_id == listing.id,
                                                   Appeal.appellant_id == rep.id)).first():
            raise Conflict(N_("You have appealed this result already; each bidder may appeal "
                              "a listing once."))
        ground = check_text(ground, "ground", N_(
            "Write the ground of your appeal (at least %(count)d characters).",
            count=MIN_REASON_LENGTH))
        appeal = Appeal(listing_id=listing.id, appellant_id=rep.id, ground=ground, filed_at=now,
                        status=AppealStatus.PENDING, answer="")
        session.add(appeal)
        try:
            session.flush()
        except IntegrityError as error:
            raise Conflict(N_("You have appealed this result already; each bidder may appeal "
                              "a listing once.")) from error
        record_audit(session, rep, "appeal.filed", f"listing:{listing.id}", now,
                     after={"appeal": appeal.id, "ground": ground})
        notify(session, "appeal_filed", appeal, now)
        return appeal


def answer_appeal(session: Session, actor: User, appeal_id: int, *, upheld: bool, answer: str,
                  expected_version: int, now: datetime) -> Appeal:
    """Management's answer. Upheld: the listing's decision is removed (the audit keeps it) and
    the listing goes back to decision, to be decided again during the standstill. Rejected:
    the decision stands. Either way the appellant reads the answer."""
    require_management(actor)
    with unit_of_work(session):
        appeal = session.get(Appeal, appeal_id)
        if appeal is None:
            raise NotFound(N_("No such appeal."))
        listing, _round = locked_listing(session, appeal.listing_id)
        session.refresh(appeal)
        if appeal.status != AppealStatus.PENDING:
            raise Conflict(N_("This appeal was answered in the meantime; reload to see the "
                              "answer."))
        if appeal.version != expected_version:
            raise Conflict(N_("This appeal changed since you opened it; reload it and try "
                              "again."))
        answer = check_text(answer, "answer", N_(
            "Write the answer to the appellant (at least %(count)d characters).",
            count=MIN_REASON_LENGTH))
        before = None
        if upheld:
            if listing.status not in WAITING_LISTING_STATUSES:
                raise InvalidRequest(N_("This listing took effect or was cancelled; it cannot "
                                        "go back to decision."), field="upheld")
            before = reopen(session, listing)
        appeal.status = AppealStatus.UPHELD if upheld else AppealStatus.REJECTED
        appeal.answer, appeal.answered_by_id, appeal.answered_at = answer, actor.id, now
        session.flush()
        record_audit(session, actor, f"appeal.{appeal.status}", f"listing:{listing.id}", now,
                     before=before, after={"appeal": appeal.id, "answer": answer})
        notify(session, "appeal_answered", appeal, now)
        return appeal


def pending_appeals(session: Session, round_id: int | None = None) -> list[Appeal]:
    """Appeals waiting for management's answer, oldest first (of one round, or all)."""
    query = (select(Appeal).join(Listing, Appeal.listing_id == Listing.id)
             .where(Appeal.status == AppealStatus.PENDING)
             .options(selectinload(Appeal.listing).selectinload(Listing.round),
                      selectinload(Appeal.appellant))
             .order_by(Appeal.filed_at, Appeal.id))
    if round_id is not None:
        query = query.where(Listing.round_id == round_id)
    return list(session.scalars(query))


def appeals_of_listing(session: Session, listing_id: int) -> list[Appeal]:
    return list(session.scalars(
        select(Appeal).where(Appeal.listing_id == listing_id)
        .options(selectinload(Appeal.appellant), selectinload(Appeal.answered_by))
        .order_by(Appeal.filed_at, Appeal.id)))


def appeals_of_listings(session: Session, listing_ids: Iterable[int]) -> dict[int, list[Appeal]]:
    """Each listing's appeals as `appeals_of_listing` gives them, by listing id, in a fixed
    number of statements whatever the number of listings."""
    found: dict[int, list[Appeal]] = {listing_id: [] for listing_id in listing_ids}
    if found:
        for appeal in session.scalars(
                select(Appeal).where(Appeal.listing_id.in_(sorted(found)))
                .options(selectinload(Appeal.appellant), selectinload(Appeal.answered_by))
                .order_by(Appeal.filed_at, Appeal.id)):
            found[appeal.listing_id].append(appeal)
    return found


# --- cancellation ----------------------------------------------------------------------------

def cancel_listing(session: Session, actor: User, listing_id: int, *, reason: str,
                   now: datetime) -> Listing:
    """Withdraw one listing, with a reason, before it takes effect; it never transfers."""
    require_management(actor)
    with unit_of_work(session):
        listing, _round = locked_listing(session, listing_id)
        reason = check_reason(reason)
        if listing.status == ListingStatus.CANCELLED:
            raise Conflict(N_("This listing was cancelled already."))
        if listing.status in APPLIED_LISTING_STATUSES or listing.applied_at is not None:
            raise InvalidRequest(N_("This listing took effect already; a transfer that is "
                                    "filed is changed only by another transfer."))
        if listing.status == ListingStatus.REFUSED:
            raise InvalidRequest(N_("The sponsor refused this release; there is nothing to "
                                    "cancel."))
        before = {"status": listing.status}
        mark_cancelled(listing, actor, reason, now)
        record_audit(session, actor, "listing.cancelled", f"listing:{listing.id}", now,
                     before=before, after={"reason": reason})
        return listing


def mark_cancelled(listing: Listing, actor: User, reason: str, now: datetime) -> None:
    listing.status = ListingStatus.CANCELLED
    listing.cancelled_at, listing.cancelled_by_id, listing.cancel_reason = now, actor.id, reason
    withdraw_unlost_review(listing, now)


def cancel_round(session: Session, actor: User, round_id: int, *, reason: str,
                 expected_version: int, now: datetime) -> Round:
    """Stop a round, with a reason, before its results are in force: every listing not yet
    applied is cancelled with it. Listings that took effect already stay filed."""
    require_management(actor)
    with unit_of_work(session):
        round_ = lock_round(session, round_id)
        if round_ is None:
            raise NotFound(N_("No such round."))
        reason = check_reason(reason)
        if round_.status == RoundStatus.CANCELLED:
            raise Conflict(N_("This round was cancelled already."))
        if round_.status == RoundStatus.RESULTS_PUBLISHED:
            raise InvalidRequest(N_("This round's results are in force already; a transfer "
                                    "that is filed is changed only by another transfer."))
        if round_.version != expected_version:
            raise Conflict(N_("Someone else changed this round; reload it and try again."))
        cancelled = []
        for listing in round_.listings:
            if listing.status in APPLIED_LISTING_STATUSES or listing.status in (
                    ListingStatus.CANCELLED, ListingStatus.REFUSED):
                continue
            mark_cancelled(listing, actor, reason, now)
            cancelled.append(listing.id)
        before = {"status": round_.status}
        round_.status = RoundStatus.CANCELLED
        round_.cancelled_at, round_.cancelled_by_id, round_.cancel_reason = now, actor.id, reason
        record_audit(session, actor, "round.cancelled", f"round:{round_.id}", now,
                     before=before, after={"reason": reason, "listings": cancelled})
        return round_


# --- taking effect ---------------------------------------------------------------------------

def apply_due_listings(session: Session, now: datetime) -> list[int]:
    """Make every listing whose window ended and whose appeals are answered take effect; the
    ids of the listings applied. The scheduler runs it, and so does start-up (catch-up)."""
    due = list(session.scalars(select(Round.id).where(
        Round.status == RoundStatus.STANDSTILL, Round.standstill_ends_at <= now)
        .order_by(Round.id)))
    end_read(session)  # each round in a transaction of its own
    applied: list[int] = []
    for round_id in due:
        applied += apply_round(session, round_id, now)
    return applied


def appeals_record(appeals: list[Appeal]) -> list[dict] | None:
    """The appeals as the filing records them (None when there were none)."""
    return [{"appellant_id": appeal.appellant_id, "ground": appeal.ground,
             "status": appeal.status, "answer": appeal.answer,
             "answered_by_id": appeal.answered_by_id} for appeal in appeals] or None


def apply_round(session: Session, round_id: int, now: datetime) -> list[int]:
    """One standstill round: its listings ready to take effect do, once.

    The round's lock makes a second scheduler (another process, or a restart's catch-up) wait,
    then find the listings applied and do nothing. A listing whose winner may no longer receive
    accounts (left the company or was deactivated during the window), or whose award would now
    take its winner past capacity, is sent back to decision (audited, management told): its
    refused change wrote nothing, and the others go on.
    """
    with unit_of_work(session):
        round_ = lock_round(session, round_id)
        if round_ is None or round_.status != RoundStatus.STANDSTILL or not (
                round_.standstill_ends_at <= now):
            return []
        listings = list(session.scalars(
            select(Listing).where(Listing.round_id == round_.id)
            .execution_options(populate_existing=True).order_by(Listing.id)))
        appeals: dict[int, list[Appeal]] = {}
        for appeal in session.scalars(
                select(Appeal).join(Listing, Appeal.listing_id == Listing.id)
                .where(Listing.round_id == round_.id).order_by(Appeal.filed_at, Appeal.id)
                .execution_options(populate_existing=True)):
            appeals.setdefault(appeal.listing_id, []).append(appeal)
        ready = [listing for listing in listings if listing.status == ListingStatus.DECIDED
                 and all(appeal.status != AppealStatus.PENDING
                         for appeal in appeals.get(listing.id, []))]
        # Read afresh: a decision changed in the database since the session read it must be
        # checked, and applied, as it stands now.
        decisions = {decision.listing_id: decision for decision in session.scalars(
            select(Decision).where(Decision.listing_id.in_([listing.id for listing in ready]))
            .execution_options(populate_existing=True))}
        if ready:
            # A decision that no longer matches what it was made from (changed behind the
            # app's back) never takes effect: rescore --verify's check, before anything moves.
            mismatched = decision_problems(session, load_scored_round(session, round_.id))
            for listing in [listing for listing in ready if listing.id in mismatched]:
                refuse_mismatched_decision(session, listing, mismatched[listing.id], now)
                ready.remove(listing)
        records = {listing.id: appeals_record(appeals.get(listing.id, [])) for listing in ready}
        changes = {change.listing_id: change for change in award_changes(
            session, round_, ready, decisions, records)}
        limit = parsed(round_.rule_set).eligibility.capacity_max
        applied = []
        for listing in ready:
            if listing.id in changes:
                try:
                    change_owners(session, [changes[listing.id]], limit=limit, now=now)
                except OwnerChangeRefused as error:
                    refuse_at_apply(session, round_, listing, error, now)
                    continue
            mark_applied(listing, decisions[listing.id], now)
            session.flush()  # the next listing's capacity counts this one as held
            applied.append(listing.id)
        if applied:
            record_audit(session, None, "round.listings_applied", f"round:{round_.id}", now,
                         after={"listings": applied})
        if not any(listing.status in WAITING_LISTING_STATUSES for listing in listings):
            round_.status = RoundStatus.RESULTS_PUBLISHED
            record_audit(session, None, "round.results_in_force", f"round:{round_.id}", now,
                         after={"announced_at": round_.results_published_at.isoformat()})
        return applied


def refuse_mismatched_decision(session: Session, listing: Listing, problem: Text,
                               now: datetime) -> None:
    """A decision that no longer matches what it was made from goes back to management to
    decide again: nothing of it takes effect, the audit keeps the decision as it was found
    and why it was refused, and KA management is told."""
    before = reopen(session, listing)
    record_audit(session, None, APPLY_REFUSED, f"listing:{listing.id}", now,
                 before=before, after={"problem": dumps(problem), "check": DECISION_CHECK})
    notify(session, "award_refused", (listing, now, None, DECISION_CHECK), now)


def sent_back_for_changed_decision(session: Session, listings: Iterable[Listing]) -> set[int]:
    """The listings among `listings` that wait for a new decision because the one they had
    no longer matched what it was made from when they were due to take effect (the latest
    refusal at apply time of a listing still back to decision says so)."""
    waiting = {listing.id for listing in listings if listing.status == ListingStatus.LISTED}
    if not waiting:
        return set()
    latest: dict[str, object] = {}
    for target, after in session.execute(
            select(AuditEvent.target, AuditEvent.after)
            .where(AuditEvent.action == APPLY_REFUSED,
                   AuditEvent.target.in_([f"listing:{listing_id}" for listing_id in waiting]))
            .order_by(AuditEvent.id)):
        latest[target] = (after or {}).get("check")
    return {listing_id for listing_id in waiting
            if latest.get(f"listing:{listing_id}") == DECISION_CHECK}


def refuse_at_apply(session: Session, round_: Round, listing: Listing,
                    error: OwnerChangeRefused, now: datetime) -> None:
    """An award that cannot take effect any more goes back to management to decide again."""
    before = reopen(session, listing)
    record_audit(session, None, APPLY_REFUSED, f"listing:{listing.id}", now,
                 before=before, after={"problem": dumps(error.message)})
    # The winner who may no longer receive accounts is named; otherwise capacity refused it.
    gone = (session.get(User, error.problems[0].rep_id)
            if isinstance(error, ReceiverUnavailable) and error.problems else None)
    notify(session, "award_refused", (listing, now, gone), now)
