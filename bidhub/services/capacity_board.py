"""The capacity board: reps against the 30-40 band, a rep's accounts, and management's agenda."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from bidhub.domain.collation import person_order
from bidhub.domain.eligibility import ELIGIBILITY_SETTINGS
from bidhub.domain.errors import NotFound
from bidhub.domain.text import N_
from bidhub.models import (
    Account,
    AccountabilityIncident,
    AccountReview,
    Appeal,
    AppealStatus,
    IncidentStatus,
    Listing,
    ListingStatus,
    LossReviewStatus,
    Opportunity,
    OpportunityStageChange,
    Role,
    Round,
    RoundStatus,
    TransferRequest,
    TransferRequestStatus,
    User,
)
from bidhub.services.accountability import RESOLVED_STATUSES
from bidhub.services.ownership import (
    UNFINISHED_LISTING_STATUSES,
    UNFINISHED_ROUND_STATUSES,
    commitments_of,
)
from bidhub.services.rule_sets import active_rule_set, parsed

# The agenda lists this many rounds by name; the count covers the rest.
AGENDA_ROUNDS_SHOWN = 10


class Band(StrEnum):
    ABOVE = "above"  # more than the maximum: accounts are neglected, some go back to market
    BELOW = "below"  # fewer than the target: room for more
    INSIDE = "inside"


# Reps needing action first: those over the maximum, then those short of the target.
BAND_ORDER = {Band.ABOVE: 0, Band.BELOW: 1, Band.INSIDE: 2}


@dataclass(frozen=True)
class CapacityBand:
    """The band from the active rules (capacity_target .. capacity_max)."""

    target: int
    maximum: int

    def band_of(self, held: int) -> Band:
        if held > self.maximum:
            return Band.ABOVE
        if held < self.target:
            return Band.BELOW
        return Band.INSIDE

    def distance(self, held: int) -> int:
        """How far outside the band `held` is (0 inside)."""
        return max(held - self.maximum, self.target - held, 0)


def capacity_band(session: Session) -> CapacityBand:
    version = active_rule_set(session)
    if version is None:
        return CapacityBand(ELIGIBILITY_SETTINGS["capacity_target"].default,
                            ELIGIBILITY_SETTINGS["capacity_max"].default)
    eligibility = parsed(version).eligibility
    return CapacityBand(eligibility.capacity_target, eligibility.capacity_max)


@dataclass(frozen=True)
class RepLoad:
    """A rep's count against the band: what they hold, and awards decided but not applied."""

    rep: User
    held: int
    incoming: int
    band: Band
    distance: int


@dataclass(frozen=True)
class Board:
    capacity: CapacityBand
    rows: list[RepLoad]  # after the filters, the ones needing action first
    band_counts: dict[Band, int]  # over every rep at work, before the filters
    # Reps who left or were deactivated and still hold accounts (or have awards coming), after
    # the branch filter: their accounts are to be handed over, whatever the band says.
    departed: list[RepLoad] = field(default_factory=list)


def rep_loads(session: Session, capacity: CapacityBand) -> list[RepLoad]:
    """The load of every rep at work (neither left nor deactivated: the reps the capacity
    board puts in its bands), counted as ownership.py counts it, needing action first."""
    reps = sorted((rep for rep in session.scalars(select(User).where(
        User.role == Role.REP, User.is_active)) if not rep.has_departed), key=person_order)
    return _loads(session, capacity, reps)


def _loads(session: Session, capacity: CapacityBand, reps: list[User]) -> list[RepLoad]:
    commitments = commitments_of(session, [rep.id for rep in reps])
    loads = [RepLoad(rep, commitments[rep.id].held, commitments[rep.id].pending,
                     capacity.band_of(commitments[rep.id].held),
                     capacity.distance(commitments[rep.id].held)) for rep in reps]
    # Stable sort: within a band the farthest from it first, then by name as menus order
    # names (domain.collation: pinyin order, then id).
    return sorted(loads, key=lambda load: (BAND_ORDER[load.band], -load.distance))


def capacity_board(session: Session, *, band: Band | None = None,
                   branch_id: int | None = None) -> Board:
    capacity = capacity_band(session)
    reps = sorted(session.scalars(select(User).where(User.role == Role.REP)), key=person_order)
    loads = _loads(session, capacity, reps)
    at_work = [load for load in loads if not load.rep.has_departed]
    counts = dict.fromkeys(Band, 0)
    for load in at_work:
        counts[load.band] += 1
    rows = [load for load in at_work
            if (band is None or load.band == band)
            and (branch_id is None or load.rep.branch_id == branch_id)]
    departed = sorted((load for load in loads if load.rep.has_departed
                       and (load.held or load.incoming)
                       and (branch_id is None or load.rep.branch_id == branch_id)),
                      key=lambda load: -load.held)
    return Board(capacity, rows, counts, departed)


@dataclass(frozen=True)
class HeldAccount:
    """One account a rep holds, with what management needs to decide about it."""

    account: Account
    last_activity_at: datetime | None  # the rep's newest opportunity opened, moved or closed
    open_incidents: int
    listing: Listing | None  # the listing that has it on the market now, if any


@dataclass(frozen=True)
class RepAccounts:
    capacity: CapacityBand
    load: RepLoad
    accounts: list[HeldAccount]


def load_rep(session: Session, rep_id: int) -> User:
    rep = session.get(User, rep_id)
    if rep is None or rep.role != Role.REP:
        raise NotFound(N_("No such rep."))
    return rep


def rep_accounts(session: Session, rep_id: int) -> RepAccounts:
    """The rep's accounts, by value, with a fixed number of statements however many they hold."""
    rep = load_rep(session, rep_id)
    capacity = capacity_band(session)
    commitments = commitments_of(session, [rep.id])[rep.id]
    load = RepLoad(rep, commitments.held, commitments.pending, capacity.band_of(commitments.held),
                   capacity.distance(commitments.held))
    accounts = list(session.scalars(
        select(Account).where(Account.owner_id == rep.id)
        .order_by(Account.annual_value_yuan.desc(), Account.name_sort_key, Account.id)))
    ids = [account.id for account in accounts]
    activity = last_activity(session, rep.id, ids)
    incidents = open_incidents_by_account(session, ids)
    listings = unfinished_listings(session, ids)
    return RepAccounts(capacity, load, [HeldAccount(account, activity.get(account.id),
                                          incidents.get(account.id, 0), listings.get(account.id))
                              for account in accounts])


def last_activity(session: Session, rep_id: int, account_ids: Iterable[int]) -> dict[int, datetime]:
    """The newest date the rep opened, moved or closed an opportunity, per account."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    newest: dict[int, datetime] = {}
    mine = (Opportunity.rep_id == rep_id, Opportunity.account_id.in_(ids))
    rows = [*session.execute(
        select(Opportunity.account_id, func.max(Opportunity.opened_at), func.max(Opportunity.closed_at))
        .where(*mine).group_by(Opportunity.account_id)).all(),
        *((account_id, changed_at, None) for account_id, changed_at in session.execute(
            select(Opportunity.account_id, func.max(OpportunityStageChange.changed_at))
            .join(Opportunity, OpportunityStageChange.opportunity_id == Opportunity.id)
            .where(*mine).group_by(Opportunity.account_id)).all())]
    for account_id, *moments in rows:
        for moment in moments:
            if moment is None:
                continue
            if moment.tzinfo is None:  # should an aggregate ever skip the column's type
                moment = moment.replace(tzinfo=UTC)
            if account_id not in newest or moment > newest[account_id]:
                newest[account_id] = moment
    return newest


def open_incidents_by_account(session: Session, account_ids: Iterable[int]) -> dict[int, int]:
    """Incidents not yet resolved by management (open or explained), per account."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    return dict(session.execute(
        select(AccountabilityIncident.account_id, func.count())
        .where(AccountabilityIncident.account_id.in_(ids),
               AccountabilityIncident.status.not_in(RESOLVED_STATUSES))
        .group_by(AccountabilityIncident.account_id)).all())


def unfinished_listings(session: Session, account_ids: Iterable[int]) -> dict[int, Listing]:
    """The listing that has each account on the market now (as ownership.py defines it)."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    listings = session.scalars(
        select(Listing).join(Round).where(Listing.account_id.in_(ids),
                                          Round.status.in_(UNFINISHED_ROUND_STATUSES),
                                          Listing.status.in_(UNFINISHED_LISTING_STATUSES))
        .order_by(Listing.id.desc()))
    return {listing.account_id: listing for listing in listings}


def draft_rounds(session: Session) -> list[Round]:
    """The rounds accounts can still be released into, newest first."""
    return list(session.scalars(select(Round).where(Round.status == RoundStatus.DRAFT)
                                .order_by(Round.created_at.desc(), Round.id.desc())))


@dataclass(frozen=True)
class Agenda:
    """What needs KA management now, each with a count (management's home page)."""

    rounds_to_decide: list[Round]  # the oldest deadlines first, at most AGENDA_ROUNDS_SHOWN
    rounds_to_decide_count: int
    appeals_pending: int
    oldest_appeal_round_id: int | None
    listings_awaiting_confirmation: int
    oldest_awaiting_round_id: int | None
    transfers_waiting: int
    overdue_explanations: int
    overdue_reviews: int
    reps_above: int
    reps_below: int
    capacity: CapacityBand

    @property
    def is_empty(self) -> bool:
        return not (self.rounds_to_decide_count or self.appeals_pending
                    or self.listings_awaiting_confirmation or self.transfers_waiting
                    or self.overdue_explanations or self.overdue_reviews or self.reps_above
                    or self.reps_below)


def count_of(session: Session, query) -> int:
    return session.scalar(query) or 0


def management_agenda(session: Session, now: datetime) -> Agenda:
    """Everything on management's plate now, with a fixed number of statements."""
    # Scored rounds, and rounds in their standstill window with a listing an upheld appeal or a
    # refused award sent back to decision (listed again: decided inline on the round page).
    reopened = select(Listing.id).where(Listing.round_id == Round.id,
                                        Listing.status == ListingStatus.LISTED).exists()
    scored = select(Round).where(or_(Round.status == RoundStatus.SCORED,
                                     and_(Round.status == RoundStatus.STANDSTILL, reopened)))
    rounds = list(session.scalars(scored.order_by(Round.closes_at, Round.id)
                                  .limit(AGENDA_ROUNDS_SHOWN)))
    pending_appeals = (select(Listing.round_id).join(Appeal, Appeal.listing_id == Listing.id)
                       .where(Appeal.status == AppealStatus.PENDING))
    awaiting = select(Listing.round_id).where(
        Listing.status == ListingStatus.AWAITING_CONFIRMATION)
    capacity = capacity_band(session)
    bands = [load.band for load in rep_loads(session, capacity)]
    return Agenda(
        rounds_to_decide=rounds,
        rounds_to_decide_count=count_of(session, select(func.count()).select_from(
            scored.subquery())),
        appeals_pending=count_of(session, select(func.count()).select_from(
            pending_appeals.subquery())),
        oldest_appeal_round_id=session.scalar(pending_appeals.order_by(Appeal.filed_at,
                                                                       Appeal.id).limit(1)),
        listings_awaiting_confirmation=count_of(session, select(func.count()).select_from(
            awaiting.subquery())),
        oldest_awaiting_round_id=session.scalar(awaiting.order_by(Listing.created_at,
                                                                  Listing.id).limit(1)),
        transfers_waiting=count_of(session, select(func.count()).select_from(TransferRequest)
                                   .where(TransferRequest.status
                                          == TransferRequestStatus.WAITING)),
        overdue_explanations=count_of(session, select(func.count()).select_from(
            AccountabilityIncident).where(
                AccountabilityIncident.status == IncidentStatus.OPEN,
                AccountabilityIncident.explanation_due_at < now)),
        overdue_reviews=count_of(session, select(func.count()).select_from(AccountReview).where(
            AccountReview.status == LossReviewStatus.DUE, AccountReview.due_at < now)),
        reps_above=bands.count(Band.ABOVE), reps_below=bands.count(Band.BELOW),
        capacity=capacity)
