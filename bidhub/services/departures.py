"""A rep who leaves the company, is deactivated or is given another role: their awards not
yet in force go back to decision at once.

An award decided for a rep stays pending until it takes effect: while its round is scored and
unpublished, and through the standstill window after the results are announced. A rep who may
no longer hold accounts cannot receive it (`ownership.change_owners` refuses); rather than let
it wait for the end of the window to be refused, marking the rep as left, deactivating them or
making them anything but a rep sends each such award back to KA management to decide again,
with the message the scheduled application sends, in the same transaction as the change of the
rep.

Their bids in rounds still open stay as they are: bids are sealed and only their bidder may
change them before the deadline. Scoring finds them ineligible (`on_duty`), saying why.

Locks, in the order every use case keeps (`ownership`): the rounds holding the rep's pending
awards, then the rep's row (`lock_departing`), before the caller writes it (the user form, or
the reps import for every rep its file marks as left). A decision for the rep holds their row
until it commits, so once the row is locked no award for them can appear in a round not
locked; one that appeared while the rounds were being locked is found then, and the locks are
taken again in order rather than the round's locked after the rep's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bidhub.domain.errors import Conflict
from bidhub.domain.messages import dumps
from bidhub.domain.text import N_
from bidhub.models import Account, Bid, Decision, Listing, ListingStatus, Round, User
from bidhub.services.audit import record_audit
from bidhub.services.notifications import notify
from bidhub.services.ownership import (
    is_postgresql,
    lock_reps,
    lock_round,
    refusal_message,
    reopen,
    unavailable_receiver,
)


@dataclass(frozen=True)
class PendingAward:
    """An award decided for a rep and not yet in force."""

    listing_id: int
    round_id: int
    round_title: str
    account_name: str
    round_status: str


# Built once. The same awards `ownership.pending_awards` counts: a decided listing whose
# decision names one of the rep's bids.
_PENDING_AWARDS = (
    select(Listing.id, Listing.round_id, Round.title, Account.name, Round.status)
    .join(Decision, Decision.listing_id == Listing.id).join(Bid, Decision.bid_id == Bid.id)
    .join(Round, Round.id == Listing.round_id).join(Account, Account.id == Listing.account_id)
    .where(Bid.rep_id == bindparam("rep_id"), Listing.status == ListingStatus.DECIDED)
    .order_by(Listing.round_id, Listing.id))


def pending_awards_of(session: Session, rep_id: int) -> list[PendingAward]:
    """The rep's awards decided and not yet in force, by round then listing."""
    return [PendingAward(*row) for row in session.execute(_PENDING_AWARDS, {"rep_id": rep_id})]


def sends_awards_back(*, role: str, is_active: bool, status: str) -> bool:
    """Whether a user in this state has their pending awards sent back: they left the company,
    were deactivated or are no rep any more, and so may not receive accounts (a rep on leave
    keeps theirs)."""
    return unavailable_receiver(role=role, is_active=is_active, status=status) is not None


def lock_rounds_of_awards(session: Session, rep_ids: Iterable[int]) -> set[int]:
    """Lock the rounds holding the reps' pending awards, in id order, before the reps are
    locked or written; the ids locked."""
    round_ids = sorted({award.round_id for rep_id in sorted(set(rep_ids))
                        for award in pending_awards_of(session, rep_id)})
    for round_id in round_ids:
        lock_round(session, round_id)
    return set(round_ids)


def rounds_of_awards(session: Session, rep_ids: Iterable[int]) -> set[int]:
    """The rounds holding the reps' pending awards."""
    return {award.round_id for rep_id in sorted(set(rep_ids))
            for award in pending_awards_of(session, rep_id)}


def lock_departing(session: Session, rep_ids: Iterable[int]) -> set[int]:
    """Lock the rounds holding the reps' pending awards, in id order, then the reps' rows; the
    round ids locked, which hold every pending award of theirs until the transaction ends.

    A manager deciding an award for one of them holds the rep's row from before the decision is
    written until it commits: locking the rows waits for it, and the award may then sit in a
    round not locked. Locking that round now, after the rep, could wait in a circle with a
    decision holding the round and waiting for the rep; instead the locks are given back (to a
    savepoint) and taken again in order, the new round among them. Each attempt again finds a
    round more, and rounds are finitely many. (On SQLite the write transaction excludes every
    other writer already.)"""
    ids = sorted(set(rep_ids))
    if not ids or not is_postgresql(session):
        return lock_rounds_of_awards(session, ids)
    wanted: set[int] = set()
    while True:
        savepoint = session.begin_nested()
        wanted |= rounds_of_awards(session, ids)
        for round_id in sorted(wanted):
            lock_round(session, round_id)
        lock_reps(session, ids)
        missing = rounds_of_awards(session, ids) - wanted
        if not missing:
            savepoint.commit()
            return wanted
        savepoint.rollback()
        wanted |= missing


def send_back_awards(session: Session, actor: User | None, rep: User, locked_round_ids: set[int],
                     now: datetime, *, refuse_unlocked: bool = True) -> list[PendingAward]:
    """Send every pending award of `rep`, who may no longer hold accounts, back to decision:
    the decision removed (the audit keeps it), KA management told. The caller locked the
    rounds and then the rep in this write transaction (`lock_departing`), so that every award
    is in a round locked. Should one not be, it is refused with Conflict, and nothing is
    written; or, with `refuse_unlocked` False (an import, which does not start again for one
    rep), left to be refused when it would take effect."""
    why = unavailable_receiver(role=rep.role, is_active=rep.is_active, status=rep.status)
    awards = pending_awards_of(session, rep.id)
    unlocked = [award for award in awards if award.round_id not in locked_round_ids]
    if unlocked and refuse_unlocked:
        raise Conflict(N_("An award was decided for %(name)s meanwhile; save again to send it "
                          "back to decision too.", name=rep.display_name))
    awards = [award for award in awards if award.round_id in locked_round_ids]
    problem = dumps(refusal_message(rep.display_name, why))
    for award in awards:
        listing = session.get(Listing, award.listing_id)
        before = reopen(session, listing)
        record_audit(session, actor, "listing.winner_unavailable", f"listing:{listing.id}", now,
                     before=before, after={"rep": rep.id, "problem": problem})
        notify(session, "award_refused", (listing, now, rep), now)
    return awards
