"""Executive sponsors (老板负责客户): designating them, their list, and their confirmations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from bidhub.db import unit_of_work
from bidhub.domain.collation import person_order
from bidhub.domain.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    OwnerChangeRefused,
    PermissionDenied,
)
from bidhub.domain.text import N_
from bidhub.domain.typed_text import short_writing, writes_less_than
from bidhub.models import (
    Account,
    AuditEvent,
    Filing,
    FilingKind,
    Listing,
    ListingStatus,
    Role,
    TransferRequest,
    TransferRequestStatus,
    User,
)
from bidhub.services.audit import record_audit
from bidhub.services.filings import rules_in_force
from bidhub.services.limits import MAX_REASON_LENGTH, MIN_REASON_LENGTH
from bidhub.services.loss_reviews import note_management_review
from bidhub.services.notifications import notify
from bidhub.services.ownership import (
    OwnerChange,
    change_owners,
    lock_accounts,
    may_receive_accounts,
    unfinished_listing_of,
)

MANAGEMENT_ROLES = (Role.KA_MANAGER, Role.ADMIN)
SPONSOR_ACTIONS = ("account.sponsor_designated", "account.sponsor_removed")


def executives(session: Session, *, active_only: bool = True) -> list[User]:
    """The executives, by name (the sponsor menus)."""
    query = select(User).where(User.role == Role.EXECUTIVE)
    if active_only:
        query = query.where(User.is_active)
    return sorted(session.scalars(query), key=person_order)


# --- designation --------------------------------------------------------------------------------

def designate_sponsor(session: Session, actor: User, account_id: int, sponsor_id: int | None,
                      now: datetime) -> Account:
    """Name the executive who sponsors an account, or (None) remove its sponsor.

    Not a filing: the register files ownership changes (who holds the account), and a sponsor
    holds nothing; the change is audited and shown in the account's sponsor history instead.
    """
    with unit_of_work(session):
        if actor.role not in MANAGEMENT_ROLES:
            raise PermissionDenied(N_("Only KA management can designate executive sponsors."))
        account = lock_accounts(session, [account_id]).get(account_id)
        if account is None:
            raise NotFound(N_("No such account."))
        if sponsor_id == account.sponsor_id and (sponsor_id is not None
                                                 or not account.executive_sponsor):
            raise InvalidRequest(N_("Nothing to change: this is already the account's sponsor."),
                                 field="sponsor")
        sponsor = None
        if sponsor_id is not None:
            sponsor = held_person(session, sponsor_id)
            if sponsor is None or sponsor.role != Role.EXECUTIVE or not sponsor.is_active:
                raise InvalidRequest(N_("Choose an executive who can sign in."), field="sponsor")
        if waiting_for_sponsor(session, account.id):
            raise Conflict(N_("A release or transfer of %(account)s waits for its sponsor's "
                              "answer; have it answered first.", account=account.name))
        before = {"sponsor": account.sponsor_id, "title": account.executive_sponsor}
        account.sponsor_id = sponsor.id if sponsor else None
        account.executive_sponsor = sponsor.executive_title if sponsor else None
        record_audit(session, actor,
                     "account.sponsor_designated" if sponsor else "account.sponsor_removed",
                     f"account:{account.id}", now, before=before,
                     after={"sponsor": account.sponsor_id, "title": account.executive_sponsor})
        return account


def held_person(session: Session, user_id: int) -> User | None:
    """The user, read afresh and locked in share mode (FOR SHARE on PostgreSQL) until the
    transaction ends: an admin's change of their role or deactivation (`users.update_user`,
    which locks the row to update it) waits for this use case, then sees what it did; one
    that came first is seen here."""
    return session.scalars(select(User).where(User.id == user_id)
                           .with_for_update(read=True, of=User)
                           .execution_options(populate_existing=True)).first()


def waiting_for_sponsor(session: Session, account_id: int) -> bool:
    """Whether a release or a transfer of the account waits for its sponsor's answer."""
    listing = session.scalar(select(Listing.id).where(
        Listing.account_id == account_id,
        Listing.status == ListingStatus.AWAITING_CONFIRMATION).limit(1))
    request = session.scalar(select(TransferRequest.id).where(
        TransferRequest.account_id == account_id,
        TransferRequest.status == TransferRequestStatus.WAITING).limit(1))
    return listing is not None or request is not None


@dataclass(frozen=True)
class SponsorChange:
    """One designation or removal, read back from the audit trail."""

    at: datetime
    by: str
    before: User | str | None  # the person, or the bare title an import gave
    after: User | str | None


def sponsor_history(session: Session, account_id: int) -> list[SponsorChange]:
    events = list(session.scalars(select(AuditEvent).where(
        AuditEvent.target == f"account:{account_id}", AuditEvent.action.in_(SPONSOR_ACTIONS))
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())))
    ids = {event.actor_id for event in events} | {
        (side or {}).get("sponsor") for event in events for side in (event.before, event.after)}
    people = {user.id: user for user in session.scalars(
        select(User).where(User.id.in_({i for i in ids if i is not None})))}

    def who(side: dict | None) -> User | str | None:
        side = side or {}
        return people.get(side.get("sponsor")) or side.get("title")

    return [SponsorChange(at=event.at, by=people[event.actor_id].display_name
                          if event.actor_id in people else "",
                          before=who(event.before), after=who(event.after)) for event in events]


# --- the list -----------------------------------------------------------------------------------

def sponsored_accounts(session: Session, viewer: User, *,
                       sponsor_id: int | None = None) -> list[Account]:
    """Every sponsored account for management; an executive's own for an executive."""
    if viewer.role == Role.EXECUTIVE:
        sponsor_id = viewer.id
    elif viewer.role not in MANAGEMENT_ROLES:
        raise PermissionDenied(N_("Only KA management and executives see the sponsored accounts."))
    query = (select(Account).options(selectinload(Account.owner), selectinload(Account.sponsor))
             .order_by(Account.annual_value_yuan.desc(), Account.id))
    if sponsor_id is not None:
        query = query.where(Account.sponsor_id == sponsor_id)
    else:
        query = query.where(or_(Account.sponsor_id.is_not(None),
                                Account.executive_sponsor.is_not(None)))
    return list(session.scalars(query))


# --- confirmations ------------------------------------------------------------------------------

def answering_as(session: Session, actor: User, sponsor_id: int | None, target: str,
                 now: datetime) -> bool:
    """Whether `actor` answers standing in for the sponsor (an admin); refuses anyone else.

    A refused attempt is audited in a transaction of its own: it changes nothing else.
    """
    if actor.role == Role.EXECUTIVE and sponsor_id is not None and actor.id == sponsor_id:
        return False
    if actor.role == Role.ADMIN:
        return True
    with unit_of_work(session):
        record_audit(session, actor, "sponsor.answer_denied", target, now,
                     after={"sponsor": sponsor_id})
    raise PermissionDenied(N_("Only the account's executive sponsor, or an admin standing in, "
                              "can answer this."))


def check_answer_note(note: str, *, required: bool) -> str:
    note = note.strip()
    if len(note) > MAX_REASON_LENGTH:
        raise InvalidRequest(N_("Use at most %(count)d characters.", count=MAX_REASON_LENGTH),
                             field="note")
    if required and writes_less_than(note, MIN_REASON_LENGTH):
        raise InvalidRequest(short_writing(N_(
            "Say why you refuse (at least %(count)d characters).", count=MIN_REASON_LENGTH),
            note, MIN_REASON_LENGTH), field="note")
    return note


@dataclass(frozen=True)
class Waiting:
    releases: list[Listing]
    transfers: list[TransferRequest]

    def __len__(self) -> int:
        return len(self.releases) + len(self.transfers)


def waiting_confirmations(session: Session, viewer: User) -> Waiting:
    """What waits for `viewer`'s answer: an executive's own; everything for an admin."""
    releases = (select(Listing).join(Account, Listing.account_id == Account.id)
                .where(Listing.status == ListingStatus.AWAITING_CONFIRMATION)
                .options(selectinload(Listing.round), selectinload(Listing.review),
                         selectinload(Listing.released_from))
                .order_by(Listing.created_at, Listing.id))
    transfers = (select(TransferRequest)
                 .where(TransferRequest.status == TransferRequestStatus.WAITING)
                 .options(selectinload(TransferRequest.account),
                          selectinload(TransferRequest.from_rep),
                          selectinload(TransferRequest.to_rep),
                          selectinload(TransferRequest.sponsor),
                          selectinload(TransferRequest.requested_by))
                 .order_by(TransferRequest.requested_at, TransferRequest.id))
    if viewer.role == Role.EXECUTIVE:
        releases = releases.where(Account.sponsor_id == viewer.id)
        transfers = transfers.where(TransferRequest.sponsor_id == viewer.id)
    elif viewer.role != Role.ADMIN:
        return Waiting([], [])
    return Waiting(list(session.scalars(releases)), list(session.scalars(transfers)))


def load_waiting_request(session: Session, request_id: int,
                         expected_version: int | None = None) -> TransferRequest:
    request = session.get(TransferRequest, request_id)
    if request is None:
        raise NotFound(N_("No such transfer request."))
    if request.status != TransferRequestStatus.WAITING or (
            expected_version is not None and request.version != expected_version):
        # The confirmations page is drawn again under this message, without the transfer
        # once it is answered: reloading would only send the same answer again.
        raise Conflict(N_("This transfer was answered in the meantime; your answer was not "
                          "recorded. The page shows what still waits for you."))
    return request


def accept_transfer_request(session: Session, actor: User, request_id: int, note: str,
                            now: datetime, expected_version: int | None = None) -> Filing:
    """The sponsor (or an admin standing in) agrees: the transfer is filed now, within the
    capacity that holds now, or refused with the reason and nothing changes."""
    request = load_waiting_request(session, request_id, expected_version)
    stood_in = answering_as(session, actor, request.sponsor_id, f"transfer_request:{request.id}",
                            now)
    note = check_answer_note(note, required=False)
    with unit_of_work(session):
        account = lock_accounts(session, [request.account_id])[request.account_id]
        request = load_waiting_request(session, request_id, expected_version)
        to_rep = request.to_rep
        if not may_receive_accounts(to_rep):
            raise InvalidRequest(N_("%(rep)s can no longer receive accounts; refuse the transfer.",
                                    rep=to_rep.display_name))
        if account.owner_id != request.from_rep_id:
            raise Conflict(N_("%(account)s changed hands since the transfer was asked for; "
                              "refuse it and ask again.", account=account.name))
        listing = unfinished_listing_of(session, account.id)
        if listing is not None:
            raise Conflict(N_("%(account)s is listed in round “%(title)s” meanwhile; it is "
                              "decided there.", account=account.name, title=listing.round.title))
        rules = rules_in_force(session)
        try:
            [filing] = change_owners(
                session, [OwnerChange(account.id, to_rep.id, filing={
                    "kind": FilingKind.DIRECT_TRANSFER, "reason": request.reason,
                    # Nothing moves until the sponsor agrees: the answer is the decision,
                    # and the manager who asked is named beside it.
                    "decided_by_id": actor.id, "requested_by_id": request.requested_by_id,
                    "rule_set_sha256": rules.sha256})],
                limit=rules.capacity_max, now=now, accounts={account.id: account})
        except OwnerChangeRefused as error:
            raise type(error)(N_("Not filed: %(problem)s Nothing changed.",
                                 problem=error.message)) from error
        # change_owners made the loss review due from the rep; it carries the request's note.
        note_management_review(session, filing, written_by_id=request.requested_by_id,
                               review_text=request.review_text)
        request.status = TransferRequestStatus.ACCEPTED
        request.answered_by_id, request.answered_at = actor.id, now
        request.answer_note, request.stood_in = note, stood_in
        request.filing_seq = filing.seq
        record_audit(session, actor, "transfer_request.accepted", f"transfer_request:{request.id}",
                     now, before={"owner": request.from_rep_id},
                     after={"owner": to_rep.id, "filing": filing.seq, "stood_in": stood_in,
                            "sponsor": request.sponsor_id, "note": note})
        notify(session, "sponsor_answered_transfer", request, now)
        return filing


def refuse_transfer_request(session: Session, actor: User, request_id: int, note: str,
                            now: datetime, expected_version: int | None = None) -> TransferRequest:
    request = load_waiting_request(session, request_id, expected_version)
    stood_in = answering_as(session, actor, request.sponsor_id, f"transfer_request:{request.id}",
                            now)
    note = check_answer_note(note, required=True)
    with unit_of_work(session):
        request = load_waiting_request(session, request_id, expected_version)
        request.status = TransferRequestStatus.REFUSED
        request.answered_by_id, request.answered_at = actor.id, now
        request.answer_note, request.stood_in = note, stood_in
        record_audit(session, actor, "transfer_request.refused", f"transfer_request:{request.id}",
                     now, after={"stood_in": stood_in, "sponsor": request.sponsor_id, "note": note})
        notify(session, "sponsor_answered_transfer", request, now)
        return request
