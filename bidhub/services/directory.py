"""The account directory (大客户信息库): search and filters, and one account's whole history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased, selectinload

from bidhub.domain.collation import branch_order, name_key, person_order
from bidhub.domain.errors import NotFound
from bidhub.domain.facts import HANDBOOK_CAPACITY_MAX, HANDBOOK_CAPACITY_TARGET
from bidhub.domain.text import N_
from bidhub.models import (
    Account,
    AccountabilityIncident,
    AccountReview,
    Appeal,
    Bid,
    Branch,
    Contact,
    Decision,
    Filing,
    Listing,
    Round,
    User,
)
from bidhub.services.accountability import RESOLVED_STATUSES
from bidhub.services.loss_reviews import is_overdue
from bidhub.services.ownership import UNFINISHED_LISTING_STATUSES, UNFINISHED_ROUND_STATUSES
from bidhub.services.rule_sets import active_rule_set, parsed
from bidhub.services.search_text import contains_all, search_words

# Annual value bands as a KA department talks about its accounts (5万以下, 5万–10万, ...):
# most accounts spend tens of thousands a year and a few spend millions. Lower bound
# inclusive, upper bound exclusive; None is open.
VALUE_BANDS: dict[str, tuple[int | None, int | None]] = {
    "under_50k": (None, 50_000),
    "50k_100k": (50_000, 100_000),
    "100k_300k": (100_000, 300_000),
    "300k_1m": (300_000, 1_000_000),
    "1m_up": (1_000_000, None),
}
PAGE_SIZE = 50
# The handbook's order of an account's key people: 决策人, 使用人, 采购人, 接口人.
CONTACT_ROLE_ORDER = ("decision_maker", "user", "purchaser", "contact")

Owner = aliased(User, name="owner")
Sponsor = aliased(User, name="sponsor")

# When the account came to its present owner: the newest filing that gave it to them.
HELD_SINCE = (select(func.max(Filing.decided_at))
              .where(Filing.account_id == Account.id, Filing.to_rep_id == Account.owner_id)
              .correlate(Account).scalar_subquery())
IS_LISTED = exists(
    select(Listing.id).join(Round, Listing.round_id == Round.id)
    .where(Listing.account_id == Account.id, Round.status.in_(UNFINISHED_ROUND_STATUSES),
           Listing.status.in_(UNFINISHED_LISTING_STATUSES))).correlate(Account)
# Open: still waiting for the rep's explanation or for management's outcome.
OPEN_INCIDENTS = (select(func.count(AccountabilityIncident.id))
                  .where(AccountabilityIncident.account_id == Account.id,
                         AccountabilityIncident.status.not_in(RESOLVED_STATUSES))
                  .correlate(Account).scalar_subquery())
IS_SPONSORED = or_(Account.sponsor_id.is_not(None),
                   and_(Account.executive_sponsor.is_not(None), Account.executive_sponsor != ""))

# Names in pinyin order (domain.collation), as the transfer pickers list them, the same on
# every database. Branches too, in their menus' order (branch_order): directory_query puts
# each branch's place there from branch_places.
SORTS = {"name": Account.name_sort_key, "value": Account.annual_value_yuan,
         "owner": Owner.display_name_sort_key,
         "branch": Account.branch_id, "held_since": HELD_SINCE}


@dataclass(frozen=True)
class DirectoryFilter:
    search: str = ""
    branch_id: int | None = None
    industry: str = ""
    ownership_type: str = ""
    owner_id: int | None = None
    value_band: str = ""
    is_sponsored: bool | None = None
    is_listed: bool | None = None
    has_open_incidents: bool | None = None
    sort: str = "name"  # a key of SORTS, or a key with a leading "-" for descending


@dataclass(frozen=True)
class DirectoryRow:
    account_id: int
    external_id: str
    name: str
    industry: str
    ownership_type: str
    branch: Branch
    annual_value_yuan: int
    owner_id: int | None
    owner_name: str | None
    held_since: datetime | None
    sponsor_name: str | None  # the executive as a person
    sponsor_title: str | None  # the legacy title code, when no person is named
    is_listed: bool
    open_incidents: int

    @property
    def is_sponsored(self) -> bool:
        return bool(self.sponsor_name or self.sponsor_title)


@dataclass(frozen=True)
class DirectoryOptions:
    branches: list[Branch]
    industries: list[str]
    ownership_types: list[str]
    owners: list[User]


def is_valid_sort(sort: str) -> bool:
    return sort.removeprefix("-") in SORTS


def filtered(query: Select, criteria: DirectoryFilter) -> Select:
    if words := search_words(criteria.search):
        query = query.where(contains_all(words, Account.name, Account.external_id,
                                         folded=(Account.name_folded,)))
    if criteria.branch_id is not None:
        query = query.where(Account.branch_id == criteria.branch_id)
    if criteria.industry:
        query = query.where(Account.industry == criteria.industry)
    if criteria.ownership_type:
        query = query.where(Account.ownership_type == criteria.ownership_type)
    if criteria.owner_id is not None:
        query = query.where(Account.owner_id == criteria.owner_id)
    if criteria.value_band in VALUE_BANDS:
        low, high = VALUE_BANDS[criteria.value_band]
        if low is not None:
            query = query.where(Account.annual_value_yuan >= low)
        if high is not None:
            query = query.where(Account.annual_value_yuan < high)
    for wanted, condition in ((criteria.is_sponsored, IS_SPONSORED),
                              (criteria.is_listed, IS_LISTED),
                              (criteria.has_open_incidents, OPEN_INCIDENTS > 0)):
        if wanted is not None:
            query = query.where(condition if wanted else ~condition)
    return query


def branch_places(session: Session) -> dict[int, int]:
    """Each branch's place in a menu (domain.collation.branch_order: pinyin order of its
    Chinese name), by id: worked out here for the few branches there are, so that the
    database can order and page accounts by it the same on every database."""
    branches = session.execute(select(Branch.id, Branch.name, Branch.name_zh)).all()
    return {branch.id: place for place, branch in enumerate(sorted(branches, key=branch_order))}


def directory_query(criteria: DirectoryFilter,
                    branch_place: Mapping[int, int] | None = None) -> Select:
    """The directory's statement; sorted by branch, `branch_place` (branch_places) orders."""
    key = criteria.sort if is_valid_sort(criteria.sort) else "name"
    column = SORTS[key.removeprefix("-")]
    if key.removeprefix("-") == "branch" and branch_place:
        column = case(dict(branch_place), value=Account.branch_id, else_=len(branch_place))
    # Empty owners and dates sort last either way; the account id keeps pages stable.
    ordering = column.desc().nulls_last() if key.startswith("-") else column.asc().nulls_last()
    query = (select(Account, Owner.display_name, HELD_SINCE.label("held_since"),
                    Sponsor.display_name, IS_LISTED.label("is_listed"),
                    OPEN_INCIDENTS.label("open_incidents"))
             .join(Branch, Account.branch_id == Branch.id)
             .outerjoin(Owner, Account.owner_id == Owner.id)
             .outerjoin(Sponsor, Account.sponsor_id == Sponsor.id))
    return filtered(query, criteria).order_by(ordering, Account.id)


def find_accounts(session: Session, criteria: DirectoryFilter, *, limit: int | None = None,
                  offset: int = 0) -> list[DirectoryRow]:
    """The accounts under the filter in the asked order: one statement, whatever the count."""
    sorts_by_branch = criteria.sort.removeprefix("-") == "branch"
    query = directory_query(criteria, branch_places(session) if sorts_by_branch else None)
    if limit is not None:
        query = query.limit(limit).offset(offset)
    return [DirectoryRow(
        account_id=account.id, external_id=account.external_id, name=account.name,
        industry=account.industry, ownership_type=account.ownership_type, branch=account.branch,
        annual_value_yuan=account.annual_value_yuan, owner_id=account.owner_id,
        owner_name=owner_name, held_since=held_since, sponsor_name=sponsor_name,
        sponsor_title=None if sponsor_name else (account.executive_sponsor or None),
        is_listed=bool(is_listed), open_incidents=open_incidents or 0)
        for account, owner_name, held_since, sponsor_name, is_listed, open_incidents
        in session.execute(query)]


def count_accounts(session: Session, criteria: DirectoryFilter) -> int:
    query = filtered(select(Account.id).join(Branch, Account.branch_id == Branch.id),
                     criteria)
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def directory_options(session: Session) -> DirectoryOptions:
    """The choices the filters offer: the values present in the book, and every rep; names
    in pinyin order (domain.collation), the ownership types by code (the page orders them by
    label, in its language)."""
    return DirectoryOptions(
        branches=sorted(session.scalars(select(Branch)), key=branch_order),
        industries=sorted(session.scalars(select(Account.industry).distinct()), key=name_key),
        ownership_types=list(session.scalars(select(Account.ownership_type).distinct()
                                             .order_by(Account.ownership_type))),
        owners=sorted(session.scalars(select(User).where(User.id.in_(
            select(Account.owner_id).where(Account.owner_id.is_not(None))))),
            key=person_order))


# --- one account ---------------------------------------------------------------------------

@dataclass(frozen=True)
class FilingEvent:
    at: datetime
    filing: Filing
    template = "accounts/_event_filing.html"


@dataclass(frozen=True)
class ListingEvent:
    """A round the account was listed in, with what came of it."""

    at: datetime
    listing: Listing
    round: Round
    decision: Decision | None
    winner_name: str | None  # None: nobody won (yet)
    appeals: list[Appeal]
    template = "accounts/_event_listing.html"


@dataclass(frozen=True)
class IncidentEvent:
    at: datetime
    incident: AccountabilityIncident
    template = "accounts/_event_incident.html"


@dataclass(frozen=True)
class ReviewEvent:
    at: datetime
    review: AccountReview
    is_overdue: bool
    template = "accounts/_event_review.html"


TimelineEvent = FilingEvent | ListingEvent | IncidentEvent | ReviewEvent


@dataclass(frozen=True)
class OwnerLoad:
    """The owner's number of accounts against the band the active rules set (30-40)."""

    held: int
    target: int
    maximum: int

    @property
    def is_below(self) -> bool:
        return self.held < self.target

    @property
    def is_above(self) -> bool:
        return self.held > self.maximum


@dataclass(frozen=True)
class AccountHistory:
    account: Account
    contacts: list[tuple[str, list[Contact]]]  # by role, in the handbook's order
    owner_load: OwnerLoad | None
    held_since: datetime | None
    timeline: list[TimelineEvent]  # newest first


def capacity_band(session: Session) -> tuple[int, int]:
    version = active_rule_set(session)
    if version is None:
        return HANDBOOK_CAPACITY_TARGET, HANDBOOK_CAPACITY_MAX
    eligibility = parsed(version).eligibility
    return eligibility.capacity_target, eligibility.capacity_max


def contacts_by_role(contacts: Sequence[Contact]) -> list[tuple[str, list[Contact]]]:
    roles = list(CONTACT_ROLE_ORDER) + sorted({contact.role for contact in contacts}
                                              - set(CONTACT_ROLE_ORDER))
    return [(role, people) for role in roles
            if (people := [contact for contact in contacts if contact.role == role])]


def listing_events(session: Session, account_id: int) -> list[ListingEvent]:
    listings = list(session.scalars(
        select(Listing).where(Listing.account_id == account_id)
        .options(selectinload(Listing.round), selectinload(Listing.released_from))))
    ids = [listing.id for listing in listings]
    decisions = {decision.listing_id: decision for decision in session.scalars(
        select(Decision).where(Decision.listing_id.in_(ids))
        .options(selectinload(Decision.bid).selectinload(Bid.rep),
                 selectinload(Decision.decided_by)))} if ids else {}
    appeals: dict[int, list[Appeal]] = {}
    for appeal in (session.scalars(
            select(Appeal).where(Appeal.listing_id.in_(ids)).order_by(Appeal.filed_at)
            .options(selectinload(Appeal.appellant), selectinload(Appeal.answered_by)))
            if ids else ()):
        appeals.setdefault(appeal.listing_id, []).append(appeal)
    events = []
    for listing in listings:
        decision = decisions.get(listing.id)
        winner = decision.bid.rep.display_name if decision and decision.bid else None
        events.append(ListingEvent(at=listing.created_at, listing=listing, round=listing.round,
                                   decision=decision, winner_name=winner,
                                   appeals=appeals.get(listing.id, [])))
    return events


def account_history(session: Session, account_id: int, now: datetime) -> AccountHistory:
    """The management page of one account: profile, people, owner, sponsor and one timeline
    of filings, rounds, incidents and loss reviews, newest first, in a fixed number of
    statements."""
    account = session.scalars(
        select(Account).where(Account.id == account_id)
        .options(selectinload(Account.owner), selectinload(Account.sponsor),
                 selectinload(Account.contacts))).first()
    if account is None:
        raise NotFound(N_("No such account."))
    owner_load = None
    if account.owner_id is not None:
        held = session.scalar(select(func.count()).select_from(Account)
                              .where(Account.owner_id == account.owner_id)) or 0
        target, maximum = capacity_band(session)
        owner_load = OwnerLoad(held=held, target=target, maximum=maximum)
    filings = list(session.scalars(select(Filing).where(Filing.account_id == account.id)
                                   .options(selectinload(Filing.requested_by))))
    incidents = list(session.scalars(
        select(AccountabilityIncident).where(AccountabilityIncident.account_id == account.id)))
    reviews = list(session.scalars(
        select(AccountReview).where(AccountReview.account_id == account.id)
        .options(selectinload(AccountReview.rep), selectinload(AccountReview.closed_by),
                 selectinload(AccountReview.written_by))))
    timeline: list[TimelineEvent] = [
        *(FilingEvent(at=filing.decided_at, filing=filing) for filing in filings),
        *listing_events(session, account.id),
        *(IncidentEvent(at=incident.seen_at, incident=incident) for incident in incidents),
        *(ReviewEvent(at=review.created_at, review=review, is_overdue=is_overdue(review, now))
          for review in reviews),
    ]
    # Newest first; at the same instant a filing comes before what led to it.
    order = {FilingEvent: 0, ReviewEvent: 1, ListingEvent: 2, IncidentEvent: 3}
    timeline.sort(key=lambda event: (-event.at.timestamp(), order[type(event)]))
    held_since = max((filing.decided_at for filing in filings
                      if filing.to_rep_id == account.owner_id), default=None)
    return AccountHistory(account=account, contacts=contacts_by_role(account.contacts),
                          owner_load=owner_load, held_since=held_since, timeline=timeline)
