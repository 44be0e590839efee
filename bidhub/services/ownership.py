"""The one place where an account changes owner: locks, capacity, and the filing, together.

Publishing results, direct transfers, CRM imports and releases all move accounts through
`change_owners`, inside the caller's write transaction. The invariants it keeps, whatever screen
led there: no rep ends up holding more accounts than the limit, counting what they hold now plus
every award decided for them in any round and not yet in force (announced awards in their
standstill included); and no account goes to anyone who may not hold accounts: a rep who left
the company or was deactivated, or a user who is no rep. A rep on leave may: leave is temporary,
and whether a bid from a rep on leave may win is the round's rules' question, answered at its
deadline (`exclude_on_leave`).

Locks, in one order so that two use cases never wait for each other in a circle: the round row
(when a round is involved), then account rows by id, then rep rows by id, then the ledger. On
SQLite the write transaction's BEGIN IMMEDIATE already serialises every writer, and
`with_for_update` adds nothing; on PostgreSQL the row locks do the work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, select, text
from sqlalchemy.orm import Session

from bidhub.domain.errors import CapacityExceeded, ReceiverUnavailable
from bidhub.domain.facts import INACTIVE, LEFT, unavailability
from bidhub.domain.ledger import GENESIS_HASH, filing_hash
from bidhub.domain.text import N_, Joined, Text
from bidhub.models import (
    Account,
    Bid,
    Decision,
    Filing,
    Listing,
    ListingStatus,
    RepStatus,
    Role,
    Round,
    RoundStatus,
    User,
)
from bidhub.prepared_reads import in_ids
from bidhub.services.ledger import note_new_filing
from bidhub.services.loss_reviews import review_losses

# pg_advisory_xact_lock key that serialises appends to the filing register.
LEDGER_LOCK_KEY = 0x626964687562  # "bidhub"
# A round in its standstill has announced awards not yet in force: its accounts are still on
# the market, and the awards count against their winners' capacity (`pending_awards`). A
# round in blind review is on the market too: its bids wait for scoring.
UNFINISHED_ROUND_STATUSES = (RoundStatus.DRAFT, RoundStatus.PUBLISHED, RoundStatus.IN_REVIEW,
                             RoundStatus.SCORED, RoundStatus.STANDSTILL)
UNFINISHED_LISTING_STATUSES = (ListingStatus.AWAITING_CONFIRMATION, ListingStatus.LISTED,
                               ListingStatus.DECIDED)


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lock_round(session: Session, round_id: int) -> Round | None:
    """The round, read afresh and locked for the rest of the transaction."""
    return session.scalars(
        select(Round).where(Round.id == round_id).with_for_update(of=Round)
        .execution_options(populate_existing=True)).first()


def round_held_open(round_id: Any) -> Select:
    """The round (`round_id`: a value or an expression) while it is published, locked in share
    mode (FOR KEY SHARE on PostgreSQL) until the transaction ends.

    Scoring locks the round (`lock_round`, FOR UPDATE) before it reads the bids and marks it
    scored. A bid, an edit, a withdrawal or a ranking of preferences that holds the round open
    is therefore either in before scoring reads (which waits for it to commit), or waits until
    the round is scored, finds it no longer published and is refused: none is acknowledged and
    then left out of, or changed behind, the scoring. Those holding it do not wait for each
    other. On SQLite the write transaction already excludes the scoring's.
    """
    return (select(Round.id).where(Round.id == round_id, Round.status == RoundStatus.PUBLISHED)
            .with_for_update(read=True, key_share=True))


def hold_round_open(session: Session, round_id: int) -> None:
    """`round_held_open` in the write transaction, before reading whether the round is open:
    what is read after it is the round as it stays until the transaction ends. (SQLite's
    write transaction excludes the scoring's already: nothing to run there.)"""
    if is_postgresql(session):
        session.execute(round_held_open(round_id))


def lock_accounts(session: Session, account_ids: Iterable[int]) -> dict[int, Account]:
    """The accounts, read afresh (current owner included) and locked, in id order."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    accounts = session.scalars(
        select(Account).where(Account.id.in_(ids)).order_by(Account.id)
        .with_for_update(of=Account).execution_options(populate_existing=True))
    return {account.id: account for account in accounts}


def lock_reps(session: Session, rep_ids: Iterable[int | None]) -> None:
    """Lock the reps' rows so that nobody else counts or changes their holdings meanwhile."""
    ids = sorted({rep_id for rep_id in rep_ids if rep_id is not None})
    if ids and is_postgresql(session):
        session.execute(select(User.id).where(User.id.in_(ids)).order_by(User.id)
                        .with_for_update())


# Built once: composing them cost more than running them. Run through the session, which
# flushes first, so that a use case's own unflushed changes are counted.
_HELD = (select(Account.owner_id, func.count())
         .where(in_ids(Account.owner_id, "rep_ids"))
         .group_by(Account.owner_id))
_PENDING = (select(Bid.rep_id, func.count(Decision.id))
            .join(Bid, Decision.bid_id == Bid.id)
            .join(Listing, Decision.listing_id == Listing.id)
            .where(Listing.status == ListingStatus.DECIDED, in_ids(Bid.rep_id, "rep_ids"))
            .group_by(Bid.rep_id))
_PENDING_ELSEWHERE = _PENDING.where(
    Decision.listing_id.not_in(bindparam("excluded", expanding=True)))


def accounts_held(session: Session, rep_ids: Iterable[int]) -> dict[int, int]:
    ids = sorted(set(rep_ids))
    held = dict.fromkeys(ids, 0)
    if ids:
        held.update(session.execute(_HELD, {"rep_ids": ids}).all())
    return held


def pending_awards(session: Session, rep_ids: Iterable[int],
                   excluding_listing_ids: Iterable[int] = ()) -> dict[int, int]:
    """Awards decided for each rep in any round and not in force yet: undecided rounds, and
    announced ones in their standstill (a listing stays decided until it takes effect)."""
    ids = sorted(set(rep_ids))
    pending = dict.fromkeys(ids, 0)
    if not ids:
        return pending
    excluded = sorted(set(excluding_listing_ids))
    if excluded:
        rows = session.execute(_PENDING_ELSEWHERE, {"rep_ids": ids, "excluded": excluded})
    else:
        rows = session.execute(_PENDING, {"rep_ids": ids})
    pending.update(rows.all())
    return pending


@dataclass(frozen=True)
class Commitments:
    """What a rep holds now and what is awarded to them but not yet in force."""

    held: int
    pending: int

    @property
    def total(self) -> int:
        return self.held + self.pending


def commitments_of(session: Session, rep_ids: Iterable[int],
                   excluding_listing_ids: Iterable[int] = ()) -> dict[int, Commitments]:
    ids = sorted(set(rep_ids))
    held = accounts_held(session, ids)
    pending = pending_awards(session, ids, excluding_listing_ids)
    return {rep_id: Commitments(held[rep_id], pending[rep_id]) for rep_id in ids}


HELD_ROW, PENDING_ROW = "held", "pending"


def commitment_parts(tag: Callable[[str], Any], *padding: Any) -> tuple[Select, Select]:
    """commitments_of's two counts (of the reps in the parameter `rep_ids`) as parts of a
    caller's UNION ALL of tagged rows: (tag(kind), rep id, count, *padding), so that a page
    reads them beside what else it shows in one statement; `commitments_from` reads them."""
    return (_HELD.with_only_columns(tag(HELD_ROW), Account.owner_id, func.count(), *padding),
            _PENDING.with_only_columns(tag(PENDING_ROW), Bid.rep_id, func.count(Decision.id),
                                       *padding))


def commitments_from(rep_ids: Iterable[int], rows: Iterable[Sequence]) -> dict[int, Commitments]:
    """commitments_of's answer from rows of `commitment_parts` (others' rows are skipped)."""
    held = dict.fromkeys(rep_ids, 0)
    pending = dict(held)
    for row in rows:
        if row[0] == HELD_ROW:
            held[row[1]] = row[2]
        elif row[0] == PENDING_ROW:
            pending[row[1]] = row[2]
    return {rep_id: Commitments(held[rep_id], pending[rep_id]) for rep_id in sorted(held)}


def capacity_message(name: str | Text, commitments: Commitments, adding: int,
                     limit: int) -> Text:
    params = {"name": name, "held": commitments.held, "pending": commitments.pending,
              "adding": adding, "limit": limit}
    # Whole sentences, one per case, so that each language words them its own way.
    if commitments.pending:
        if adding == 1:
            return N_("%(name)s holds %(held)d accounts and %(pending)d award(s) waiting to be "
                      "published; one more would exceed the maximum of %(limit)d.", **params)
        return N_("%(name)s holds %(held)d accounts and %(pending)d award(s) waiting to be "
                  "published; %(adding)d more would exceed the maximum of %(limit)d.", **params)
    if adding == 1:
        return N_("%(name)s holds %(held)d accounts; one more would exceed the maximum of "
                  "%(limit)d.", **params)
    return N_("%(name)s holds %(held)d accounts; %(adding)d more would exceed the maximum of "
              "%(limit)d.", **params)


def check_capacity(session: Session, rep: User, *, adding: int, limit: int,
                   excluding_listing_ids: Iterable[int] = (), field: str | None = None) -> None:
    """Refuse when `rep`, with `adding` more accounts, would pass the limit.

    The caller has locked the rep (`lock_reps`) in this write transaction.
    """
    commitments = commitments_of(session, [rep.id], excluding_listing_ids)[rep.id]
    if commitments.total + adding > limit:
        raise CapacityExceeded(capacity_message(rep.display_name, commitments, adding, limit),
                               field=field)


def unavailable_receiver(*, role: str, is_active: bool, status: str) -> str | None:
    """LEFT, INACTIVE or NOT_REP (`unavailability`, in that order) when this user may not
    receive an account, None when they may: only a rep who is still with the company and not
    deactivated holds accounts (a rep on leave may)."""
    return unavailability(has_left=status == RepStatus.LEFT, is_active=is_active,
                          is_rep=role == Role.REP) or None


def refusal_message(name: str | Text, why: str) -> Text:
    """The sentence saying that `name` may not receive accounts, and why."""
    if why == LEFT:
        return N_("%(rep)s has left and cannot receive accounts.", rep=name)
    if why == INACTIVE:
        return N_("%(rep)s is deactivated and cannot receive accounts.", rep=name)
    return N_("%(rep)s is not a rep and cannot receive accounts.", rep=name)


def receiver_refusal(name: str | Text, *, role: str, is_active: bool, status: str) -> Text | None:
    """Why this user may not receive an account, or None when they may."""
    why = unavailable_receiver(role=role, is_active=is_active, status=status)
    return None if why is None else refusal_message(name, why)


def may_receive_accounts(user: User) -> bool:
    return receiver_refusal(user.display_name, role=user.role, is_active=user.is_active,
                            status=user.status) is None


def check_receiver(rep: User, *, field: str | None = None) -> None:
    """Refuse when `rep` may not receive an account (`receiver_refusal`). The caller has
    locked the rep (`lock_reps`) and read them afresh in this write transaction."""
    refusal = receiver_refusal(rep.display_name, role=rep.role, is_active=rep.is_active,
                               status=rep.status)
    if refusal is not None:
        raise ReceiverUnavailable(refusal, field=field)


def unfinished_listing_of(session: Session, account_id: int) -> Listing | None:
    """The listing that puts this account on the market now, if any."""
    return session.scalars(
        select(Listing).join(Round).where(Listing.account_id == account_id,
                                          Round.status.in_(UNFINISHED_ROUND_STATUSES),
                                          Listing.status.in_(UNFINISHED_LISTING_STATUSES))
        .order_by(Listing.id)).first()


def reopen(session: Session, listing: Listing) -> dict | None:
    """Send a listing back to decision; what its removed decision was, for the audit."""
    decision = session.scalars(select(Decision).where(Decision.listing_id == listing.id)).first()
    listing.status = ListingStatus.LISTED
    if decision is None:
        return None
    before = {"decision": {"kind": decision.kind, "bid": decision.bid_id,
                           "reason": decision.reason, "decided_by": decision.decided_by_id,
                           "decided_at": decision.decided_at.isoformat()}}
    session.delete(decision)
    session.flush()
    return before


def append_filings(session: Session, filings: Sequence[dict], *, now: datetime) -> list[Filing]:
    """Write the next filings of the chain, in the order given, each naming the one before.

    The sequence numbers are taken under the ledger lock (PostgreSQL) or the write transaction
    (SQLite), so two transfers at the same moment never claim the same number. The chain's end
    is read once and the rows written in one flush, however many there are (a CRM import files
    thousands of first owners at once).
    """
    if not filings:
        return []
    if is_postgresql(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LEDGER_LOCK_KEY})
    last = session.execute(select(Filing.seq, Filing.hash).order_by(Filing.seq.desc())
                           .limit(1)).first()
    seq, prev_hash = (last.seq + 1, last.hash) if last else (1, GENESIS_HASH)
    decided_at = now.astimezone(UTC)
    written = []
    for fields in filings:
        values = {"override_reason": "", "winner_score": None, "runner_up_score": None,
                  "round_id": None, "listing_id": None, "rule_set_sha256": None,
                  **fields, "seq": seq, "prev_hash": prev_hash, "decided_at": decided_at}
        values = {name: round(value, 6) if isinstance(value, float) else value
                  for name, value in values.items()}
        filing = Filing(**values, hash=filing_hash(values))
        written.append(filing)
        seq, prev_hash = seq + 1, filing.hash
    session.add_all(written)
    session.flush()
    for filing in written:
        note_new_filing(session, filing.seq, filing.hash)
    return written


@dataclass(frozen=True)
class OwnerChange:
    """One account to move to `to_rep_id`, and what its filing says about why."""

    account_id: int
    to_rep_id: int
    filing: dict = field(default_factory=dict)  # kind, reason, decided_by_id, round fields...
    listing_id: int | None = None  # the decided award this change carries out, if any


@dataclass(frozen=True)
class CapacityProblem:
    account_id: int
    listing_id: int | None
    rep_id: int
    message: Text


def capacity_problems(session: Session, changes: Sequence[OwnerChange],
                      accounts: dict[int, Account], limit: int) -> list[CapacityProblem]:
    """The changes that would take their rep past the limit once all of `changes` are done.

    A rep's count after the changes is what they hold now, plus what they gain, minus what
    they give up here, plus awards waiting in other listings.
    """
    gains: dict[int, list[OwnerChange]] = {}
    losses: dict[int, int] = {}
    for change in changes:
        owner_id = accounts[change.account_id].owner_id
        if owner_id == change.to_rep_id:
            continue
        gains.setdefault(change.to_rep_id, []).append(change)
        if owner_id is not None:
            losses[owner_id] = losses.get(owner_id, 0) + 1
    if not gains:
        return []
    carried_out = [change.listing_id for change in changes if change.listing_id is not None]
    commitments = commitments_of(session, gains, carried_out)
    names = dict(session.execute(select(User.id, User.display_name)
                                 .where(User.id.in_(sorted(gains)))).all())
    problems = []
    for rep_id, gained in sorted(gains.items()):
        now_committed = commitments[rep_id]
        after = now_committed.total + len(gained) - losses.get(rep_id, 0)
        if after > limit:
            name = names[rep_id] if rep_id in names else N_("rep %(id)d", id=rep_id)
            message = capacity_message(name, now_committed, len(gained) - losses.get(rep_id, 0),
                                       limit)
            problems.extend(CapacityProblem(change.account_id, change.listing_id, rep_id, message)
                            for change in gained)
    return problems


@dataclass(frozen=True)
class ReceiverProblem:
    account_id: int
    listing_id: int | None
    rep_id: int
    message: Text


def receiver_problems(session: Session, changes: Sequence[OwnerChange],
                      accounts: dict[int, Account]) -> list[ReceiverProblem]:
    """The changes that would give an account to someone who may not hold accounts (who left,
    was deactivated or is no rep), read afresh; the caller has locked the reps."""
    moving = [change for change in changes
              if accounts[change.account_id].owner_id != change.to_rep_id]
    if not moving:
        return []
    refusals = {
        rep_id: receiver_refusal(name, role=role, is_active=is_active, status=status)
        for rep_id, name, role, is_active, status in session.execute(
            select(User.id, User.display_name, User.role, User.is_active, User.status)
            .where(User.id.in_(sorted({change.to_rep_id for change in moving}))))}
    return [ReceiverProblem(change.account_id, change.listing_id, change.to_rep_id,
                            refusals[change.to_rep_id])
            for change in moving if refusals.get(change.to_rep_id) is not None]


def refuse_unavailable_receivers(session: Session, changes: Sequence[OwnerChange],
                                 accounts: dict[int, Account]) -> None:
    """Raise `ReceiverUnavailable` naming each change that `receiver_problems` finds."""
    problems = receiver_problems(session, changes, accounts)
    if problems:
        raise ReceiverUnavailable(Joined(dict.fromkeys(problem.message for problem in problems),
                                         separator=" "), problems=problems)


def change_owners(
    session: Session, changes: Sequence[OwnerChange], *, limit: int | None, now: datetime,
    accounts: dict[int, Account] | None = None,
) -> list[Filing]:
    """Move every account in `changes` and file each move; all or nothing.

    Locks the accounts (unless the caller did, passing them) and every rep who gains or loses,
    refuses with `ReceiverUnavailable` naming each rep who may not hold accounts (who left or
    was deactivated, read afresh under the lock), and with `CapacityExceeded` naming each rep
    past `limit` (None: a first load, which records the CRM's owners as they are), then writes
    owners and filings. The caller's transaction commits them together; a refusal has written
    nothing.
    """
    if accounts is None:
        accounts = lock_accounts(session, [change.account_id for change in changes])
    lock_reps(session, [change.to_rep_id for change in changes]
              + [accounts[change.account_id].owner_id for change in changes])
    refuse_unavailable_receivers(session, changes, accounts)
    if limit is not None:
        problems = capacity_problems(session, changes, accounts, limit)
        if problems:
            raise CapacityExceeded(Joined(dict.fromkeys(problem.message for problem in problems),
                                          separator=" "),
                                   problems=problems)
    moves = []
    for change in changes:
        account = accounts[change.account_id]
        from_rep_id = account.owner_id
        if from_rep_id == change.to_rep_id:
            continue
        account.owner_id = change.to_rep_id
        moves.append({"account_id": account.id, "from_rep_id": from_rep_id,
                      "to_rep_id": change.to_rep_id, "branch_id": account.branch_id,
                      **change.filing})
    filings = append_filings(session, moves, now=now)
    # Every lost customer gets a written review: whichever way the account left its rep.
    review_losses(session, filings, now)
    return filings
