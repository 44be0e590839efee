"""Read-only queries behind the list pages, each a fixed number of SQL statements."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import NamedTuple, Protocol, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Engine,
    Select,
    and_,
    bindparam,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.types import TypeEngine

from bidhub.config import Defaults
from bidhub.domain.collation import branch_order, name_key, person_order, width_folded
from bidhub.domain.errors import NotFound
from bidhub.domain.imports import id_key
from bidhub.domain.text import N_
from bidhub.models import (
    Account,
    Bid,
    BidScore,
    BidStatus,
    Branch,
    Decision,
    DecisionKind,
    ImportRun,
    Listing,
    ListingStatus,
    Role,
    Round,
    RoundStatus,
    User,
)
from bidhub.prepared_reads import PreparedRead
from bidhub.services.policies import announced_reason
from bidhub.services.rounds import LISTED_ROUND, ListedRound, listed_round
from bidhub.services.search_text import contains_all, like_pattern, search_words
from bidhub.services.track_records import (
    STANDING_IN_ROUND,
    Standing,
    standing_from_rows,
    standing_in_round_params,
)

T = TypeVar("T")

SORTS = {
    "value_desc": Account.annual_value_yuan.desc(),
    "value_asc": Account.annual_value_yuan.asc(),
    "name": Account.name_sort_key.asc(),
    # Groups each industry; their order (pinyin, not the database's byte order) is put right
    # in memory once the list is read (in_list_order).
    "industry": Account.industry.asc(),
}


def in_list_order(items: Iterable[T], criteria: ListingFilter, industry: Callable[[T], str],
                  listing_id: Callable[[T], int]) -> list[T]:
    """`items` (listings or rows of one round, read whole in the filter's order) in that
    order, by industry in pinyin order (domain.collation) when the filter sorts by industry,
    then by listing. The few distinct industries get their key once; no row is read again."""
    items = list(items)
    if _sort_of(criteria) != "industry":
        return items
    keys: dict[str, tuple] = {}

    def key(item: T) -> tuple:
        value = industry(item)
        found = keys.get(value)
        if found is None:
            found = keys[value] = name_key(value)
        return found, listing_id(item)

    return sorted(items, key=key)


@dataclass(frozen=True)
class ListingFilter:
    industry: str = ""
    ownership_type: str = ""
    branch_id: int | None = None
    min_value_yuan: int | None = None
    max_value_yuan: int | None = None
    search: str = ""
    sort: str = "value_desc"

    @functools.cached_property
    def words(self) -> list[list[str]]:
        """The search text's words (search_words), read once: a rep's list needs them for the
        statement's shape and again for its values."""
        return search_words(self.search)

    @property
    def conditions(self) -> tuple[bool, bool, bool, bool, bool, int]:
        """Which conditions are in use (industry, ownership, branch, lowest value, highest
        value) and how many words are searched for: the key of the statements built once
        per shape."""
        return (bool(self.industry), bool(self.ownership_type), bool(self.branch_id),
                self.min_value_yuan is not None, self.max_value_yuan is not None,
                len(self.words))

    @property
    def narrows(self) -> bool:
        """Whether the filter leaves any listing out (the sort only orders them)."""
        return any(self.conditions)


def announced_rounds(session: Session, now: datetime, limit: int = 10) -> list[Round]:
    """The latest rounds whose results are announced (中标公示), newest first."""
    return list(session.scalars(
        select(Round).where(Round.is_visible_to_reps_at(now),
                            Round.status.in_((RoundStatus.STANDSTILL,
                                              RoundStatus.RESULTS_PUBLISHED)))
        .order_by(Round.results_published_at.desc(), Round.id.desc()).limit(limit)))


def filtered_listings(round_id: int, criteria: ListingFilter) -> Select:
    query = (select(Listing).join(Listing.account).where(Listing.round_id == round_id)
             .options(selectinload(Listing.account).selectinload(Account.branch)))
    return _filtered(query, criteria)


def _filtered(query: Select, criteria: ListingFilter) -> Select:
    """`query`, which joins Listing to Account, narrowed and ordered by the filter."""
    if criteria.industry:
        query = query.where(Account.industry == criteria.industry)
    if criteria.ownership_type:
        query = query.where(Account.ownership_type == criteria.ownership_type)
    if criteria.branch_id:
        query = query.where(Account.branch_id == criteria.branch_id)
    if criteria.min_value_yuan is not None:
        query = query.where(Account.annual_value_yuan >= criteria.min_value_yuan)
    if criteria.max_value_yuan is not None:
        query = query.where(Account.annual_value_yuan <= criteria.max_value_yuan)
    if criteria.words:
        query = query.where(contains_all(criteria.words, Account.name, Account.external_id,
                                         folded=(Account.name_folded,)))
    return query.order_by(SORTS.get(criteria.sort, SORTS["value_desc"]), Listing.id)


class ListingRow(NamedTuple):
    """What a rep's list shows of one listing, its account and branch, as plain values."""

    id: int
    status: str
    account_id: int
    released_from_id: int | None
    name: str
    external_id: str
    industry: str
    ownership_type: str
    annual_value_yuan: int
    branch_id: int
    branch_code: str
    branch_name: str
    branch_name_zh: str | None
    own_bid_id: int | None  # the rep's active bid for it; never another rep's


def listings_for_rep(session: Session, round_: Round | ListedRound, rep: User,
                     criteria: ListingFilter) -> list[ListingRow]:
    """The round's listings under the filter, each with the id of this rep's active bid for
    it (None when there is none). One statement; plain rows: a list of a few hundred ORM
    objects cost more than the rest of the page."""
    statement = _rep_listing_query(*criteria.conditions).order_by(*_listing_order(criteria))
    params = {"round_id": round_.id, "rep_id": rep.id, **_filter_params(criteria)}
    # On the session's connection: the same transaction, without the ORM's per-statement work
    # (nothing here is an ORM object, and a read has nothing to flush).
    return in_list_order(
        (ListingRow._make(row) for row in session.connection().execute(statement, params).all()),
        criteria, _row_industry, _row_id)


class RepList(NamedTuple):
    """What a rep's list of a round reads: the round, the rep's standing in its accounts and
    its listings under the filter."""

    round: ListedRound
    standing: Standing
    rows: list[ListingRow]


def rep_list(session: Session, round_id: int, rep: User, criteria: ListingFilter,
             now: datetime, *, zone: str = Defaults.TIMEZONE) -> RepList:
    """The round as the rep's list shows it (plain values; NotFound when there is no such
    round), the rep's standing `now` in the round's accounts (standing_of with `round_id`;
    tenure counted in the department's time zone `zone`) and
    listings_for_rep's rows, in one statement: every page of the list and every filter asks
    for all three, and each statement is a round trip and a pass through the engine.

    The listings come whether or not reps may see the round: the caller asks the round."""
    # On the session's connection, flushed first as session.execute would (autoflush).
    if session.autoflush:
        session.flush()
    read = _rep_list_read(*criteria.conditions, _sort_of(criteria))
    rows = read.all(session.connection(), {
        "round_id": round_id, "rep_id": rep.id, **standing_in_round_params(rep, round_id, now),
        **_filter_params(criteria)})
    if not rows or rows[0][0] != _ROUND_PART:
        raise NotFound(N_("No such round."))
    first = rows[0]
    round_ = listed_round(first[1], first[5], first[2], first[15], first[16], first[10],
                          first[12], first[13], first[6], first[7])
    standing_rows = [(row[3], row[4], row[14], row[17]) for row in rows
                     if row[0] == _ROUND_PART]
    listings = in_list_order((ListingRow._make(row[1:15]) for row in rows[len(standing_rows):]),
                             criteria, _row_industry, _row_id)
    return RepList(round_, standing_from_rows(rep, now, standing_rows, zone=zone), listings)


_row_industry = attrgetter("industry")
_row_id = attrgetter("id")


def _filter_params(criteria: ListingFilter) -> dict[str, object]:
    params: dict[str, object] = {
        "industry": criteria.industry, "ownership_type": criteria.ownership_type,
        "branch_id": criteria.branch_id, "min_value": criteria.min_value_yuan,
        "max_value": criteria.max_value_yuan}
    # Each word as typed and folded (search_words), the same twice when folding changes
    # nothing; numbered as _rep_listing_query numbers them.
    for index, terms in enumerate(criteria.words):
        typed, folded = like_pattern(terms[0]), like_pattern(terms[-1])
        params.update({f"name_typed_{index}": typed, f"number_typed_{index}": typed,
                       f"name_folded_{index}": folded, f"number_folded_{index}": folded,
                       f"folded_name_{index}": folded})
    return params


def _sort_of(criteria: ListingFilter) -> str:
    """The filter's sort, or the list's default for one bidhub does not know."""
    return criteria.sort if criteria.sort in SORTS else "value_desc"


def _listing_order(criteria: ListingFilter) -> tuple:
    return SORTS[_sort_of(criteria)], Listing.id


@functools.lru_cache(maxsize=64)
def _rep_listing_query(industry: bool, ownership_type: bool, branch: bool, min_value: bool,
                       max_value: bool, words: int) -> Select:
    """The statement of listings_for_rep for the filters in use, unordered, with their values
    as bound parameters: built once per shape (building it cost more than running it)."""
    query = (select(Listing.id, Listing.status, Listing.account_id, Listing.released_from_id,
                    Account.name, Account.external_id, Account.industry, Account.ownership_type,
                    Account.annual_value_yuan, Account.branch_id, Branch.code, Branch.name,
                    Branch.name_zh, Bid.id)
             .select_from(Listing).join(Account, Account.id == Listing.account_id)
             .join(Branch, Branch.id == Account.branch_id)
             .outerjoin(Bid, and_(Bid.listing_id == Listing.id, Bid.rep_id == bindparam("rep_id"),
                                  Bid.status == BidStatus.ACTIVE))
             .where(Listing.round_id == bindparam("round_id"),
                    # One bound value each, not an expanding list: a statement with one is
                    # rewritten (its SQL searched and spliced) on every execution.
                    Listing.status.not_in([literal(ListingStatus.AWAITING_CONFIRMATION),
                                           literal(ListingStatus.REFUSED)])))
    # The same conditions and order as _filtered.
    if industry:
        query = query.where(Account.industry == bindparam("industry"))
    if ownership_type:
        query = query.where(Account.ownership_type == bindparam("ownership_type"))
    if branch:
        query = query.where(Account.branch_id == bindparam("branch_id"))
    if min_value:
        query = query.where(Account.annual_value_yuan >= bindparam("min_value"))
    if max_value:
        query = query.where(Account.annual_value_yuan <= bindparam("max_value"))
    for index in range(words):
        # As search_text.contains_all matches, with the patterns _filter_params makes.
        query = query.where(or_(*(column.ilike(bindparam(f"{name}_{form}_{index}"),
                                               escape="\\")
                                  for form in ("typed", "folded")
                                  for name, column in (("name", Account.name),
                                                       ("number", Account.external_id))),
                                Account.name_folded.ilike(bindparam(f"folded_name_{index}"),
                                                          escape="\\")))
    return query


# rep_list's statement: the round-and-standing rows (part 0, a row per release of one of the
# round's accounts by the rep, one at least) then the listings (part 1), in one UNION ALL of
# 19 columns. Each column holds values of one type in both parts (PostgreSQL asks that):
#
#   column  0     1       2       3           4                 5      6         7
#   part 0  part  round   status  held        open incidents    title  sha256    rules text
#   part 1  part  listing status  account id  released from id  name   number    industry
#
#   column  8          9      10         11           12           13            14
#   part 0  -          -      branch id  -            branch name  branch zh     account id
#   part 1  ownership  value  branch id  branch code  branch name  branch zh     own bid id
#
#   column  15        16         17           18
#   part 0  opens at  closes at  released at  -
#   part 1  -         -          -            name's sort key (pinyin order)
_ROUND_PART, _LISTING_PART = 0, 1
_ROUND_STANDING = STANDING_IN_ROUND.subquery("standing")
# Each of SORTS as a column of the statement and a direction.
_SORT_COLUMNS = {"value_desc": (9, "desc"), "value_asc": (9, "asc"), "name": (18, "asc"),
                 "industry": (7, "asc")}


@functools.lru_cache(maxsize=256)
def _rep_list_read(industry: bool, ownership_type: bool, branch: bool, min_value: bool,
                   max_value: bool, words: int, sort: str) -> PreparedRead:
    """rep_list's statement for the filters in use and the sort, as a read run on the driver's
    cursor: every view of a rep's list and every change of its filter runs it."""
    return PreparedRead(_rep_list_statement(industry, ownership_type, branch, min_value,
                                            max_value, words, sort))


def _rep_list_statement(industry: bool, ownership_type: bool, branch: bool, min_value: bool,
                        max_value: bool, words: int, sort: str) -> CompoundSelect:
    round_, standing = LISTED_ROUND.c, _ROUND_STANDING.c

    def nothing(type_: TypeEngine) -> ColumnElement:
        return cast(null(), type_)

    round_columns = (
        literal(_ROUND_PART), round_.id, round_.status, standing.held,
        standing.open_incidents, round_.title, round_.sha256, round_.text,
        nothing(Account.ownership_type.type), nothing(Account.annual_value_yuan.type),
        round_.id_1, nothing(Branch.code.type), round_.name, round_.name_zh,
        standing.account_id, round_.opens_at, round_.closes_at, standing.released_at,
        nothing(Account.name_sort_key.type))
    # Named by position: the union's columns (and its ORDER BY) take the first part's names.
    round_part = select(*(column.label(f"c{index}")
                          for index, column in enumerate(round_columns))
                        ).select_from(LISTED_ROUND.join(_ROUND_STANDING, true()))
    listings = _rep_listing_query(industry, ownership_type, branch, min_value, max_value,
                                  words)
    listing_part = listings.with_only_columns(
        literal(_LISTING_PART), *listings.selected_columns,
        *(nothing(Round.opens_at.type) for _ in range(3)), Account.name_sort_key,
        maintain_column_froms=True)
    statement = union_all(round_part, listing_part)
    columns = list(statement.selected_columns)
    index, direction = _SORT_COLUMNS[sort]
    return statement.order_by(columns[0], getattr(columns[index], direction)(), columns[1])


def bid_counts(session: Session, round_id: int) -> dict[int, int]:
    """Active bids per listing: all that management may know while a round is open."""
    return dict(session.execute(
        select(Bid.listing_id, func.count()).join(Listing)
        .where(Listing.round_id == round_id, Bid.status == BidStatus.ACTIVE)
        .group_by(Bid.listing_id)).all())


def decisions_of_round(session: Session, round_id: int) -> dict[int, Decision]:
    return {decision.listing_id: decision for decision in session.scalars(
        select(Decision).join(Listing).where(Listing.round_id == round_id)
        .options(selectinload(Decision.bid).selectinload(Bid.rep)))}


def own_bid_for(session: Session, rep: User, listing_id: int) -> Bid | None:
    """The rep's bid for the listing, withdrawn or not; None if they never bid."""
    return session.scalars(select(Bid).where(Bid.listing_id == listing_id,
                                             Bid.rep_id == rep.id)).first()


@dataclass(frozen=True)
class BranchChoice:
    """A branch in a filter menu: its id and its names (`branch_name` picks the language)."""

    id: int
    name: str
    name_zh: str | None


# KA management's filter menus of a round (filter_options) change only when its listings
# change (released, removed) or when accounts change industry, ownership or branch, which only
# an import does; branch names are read afresh each time. So each process keeps a round's
# menus under a fingerprint of the round's listings and of the import runs, read in the same
# statement as the branches: a change committed by any process changes the fingerprint, and no
# process serves the old menus after it. Kept per engine (a test's database is not another's)
# and per round, the latest only.
_menus: WeakKeyDictionary[Engine, dict[int, tuple[tuple, tuple[list, list, set[int]]]]] = (
    WeakKeyDictionary())
_menus_lock = threading.Lock()


# Built once (building it cost more than running it). The listings' account ids are summed
# too: SQLite may give a deleted last listing's id to the next one, of another account.
_MENU_FINGERPRINT = select(
    Branch.id, Branch.name, Branch.name_zh,
    select(func.count(Listing.id)).where(Listing.round_id == bindparam("round_a"))
    .scalar_subquery(),
    select(func.coalesce(func.sum(Listing.id), 0)).where(Listing.round_id == bindparam("round_b"))
    .scalar_subquery(),
    select(func.coalesce(func.sum(Listing.account_id), 0))
    .where(Listing.round_id == bindparam("round_c")).scalar_subquery(),
    select(func.count(ImportRun.id)).scalar_subquery(),
)


class MenuValues(Protocol):
    """What the filter menus read of a listed account (ListingRow, a reviewed round's
    ListedAccount)."""

    industry: str
    ownership_type: str
    branch_id: int
    branch_name: str
    branch_name_zh: str | None


def filter_options_of(accounts: Iterable[MenuValues]) -> dict[str, list]:
    """Values to offer in the filter menus of a list of `accounts`: each value once, the
    industries in pinyin order (domain.collation), the ownership types by code (the page
    orders them by label, in its language); branches as BranchChoice in a menu's order
    (branch_order).

    A rep's menus offer what the rep's whole list holds (its rows, unfiltered): a listing
    hidden from reps (awaiting its sponsor's confirmation, or refused) adds nothing, since a
    menu would otherwise name what it holds."""
    accounts = list(accounts)
    branches = {account.branch_id: BranchChoice(account.branch_id, account.branch_name,
                                                account.branch_name_zh)
                for account in accounts}
    return {"industries": sorted({account.industry for account in accounts}, key=name_key),
            "ownership_types": sorted({account.ownership_type for account in accounts}),
            "branches": sorted(branches.values(), key=branch_order)}


def filter_options(session: Session, round_id: int) -> dict[str, list]:
    """Values to offer in the filter menus of KA management's round page: those present in
    the round, whatever the status of their listing, ordered as filter_options_of orders
    them. (A scored round's page takes them from its review instead.)"""
    # On the session's connection, flushed first as session.execute would (autoflush): a
    # read of plain columns needs none of the ORM's per-statement work.
    if session.autoflush:
        session.flush()
    rows = session.connection().execute(_MENU_FINGERPRINT, {
        "round_a": round_id, "round_b": round_id, "round_c": round_id}).all()
    fingerprint = tuple(rows[0][3:]) if rows else None
    engine = session.get_bind()
    with _menus_lock:
        cached = _menus.get(engine, {}).get(round_id)
    if cached is not None and cached[0] == fingerprint:
        industries, ownership, branch_ids = cached[1]
    else:
        industries, ownership, branch_ids = _menus_of_round(session, round_id)
        if fingerprint is not None:
            with _menus_lock:
                _menus.setdefault(engine, {})[round_id] = (fingerprint,
                                                           (industries, ownership, branch_ids))
    return {"industries": list(industries), "ownership_types": list(ownership),
            "branches": sorted((BranchChoice(id=row[0], name=row[1], name_zh=row[2])
                                for row in rows if row[0] in branch_ids), key=branch_order)}


def _menus_of_round(session: Session, round_id: int) -> tuple[list, list, set[int]]:
    """The round's industries and ownership types (each sorted) and branch ids."""
    base = select(Account).join(Listing).where(Listing.round_id == round_id).subquery()
    industries = session.scalars(select(base.c.industry).distinct())
    ownership = session.scalars(select(base.c.ownership_type).distinct())
    branch_ids = session.scalars(select(base.c.branch_id).distinct())
    return sorted(industries, key=name_key), sorted(ownership), set(branch_ids)


def rounds_for_management(session: Session) -> list[tuple[Round, int, int]]:
    """Every round with its listing and active bid counts."""
    listing_counts = dict(session.execute(
        select(Listing.round_id, func.count()).group_by(Listing.round_id)).all())
    bid_totals = dict(session.execute(
        select(Listing.round_id, func.count(Bid.id)).join(Bid)
        .where(Bid.status == BidStatus.ACTIVE).group_by(Listing.round_id)).all())
    rounds = session.scalars(select(Round).order_by(Round.created_at.desc(), Round.id.desc()))
    return [(round_, listing_counts.get(round_.id, 0), bid_totals.get(round_.id, 0))
            for round_ in rounds]


def my_bids(session: Session, rep: User) -> list[Bid]:
    return list(session.scalars(
        select(Bid).where(Bid.rep_id == rep.id).order_by(Bid.submitted_at.desc())
        .options(selectinload(Bid.listing).selectinload(Listing.round),
                 selectinload(Bid.listing).selectinload(Listing.account),
                 selectinload(Bid.score))))


def find_account(session: Session, reference: str) -> Account | None:
    """An account by customer number or name, as typed: exactly, else the number in any case
    or width and the name in either width (ka-001757 and ＫＡ－００１７５７ are KA-001757, as an
    input method types them); None when nothing, or more than one account, reads so."""
    reference = reference.strip()
    if not reference:
        return None
    exact = session.scalars(select(Account).where(
        (Account.external_id == reference) | (Account.name == reference))).first()
    if exact is not None:
        return exact
    found = session.scalars(select(Account).where(
        (func.lower(Account.external_id) == id_key(reference))
        | (Account.name_folded == width_folded(reference))).limit(2)).all()
    return found[0] if len(found) == 1 else None


def require_account(session: Session, reference: str) -> Account:
    """The account by customer number or exact name, or a refusal aimed at the account field."""
    from bidhub.domain.errors import InvalidRequest

    account = find_account(session, reference)
    if account is None:
        raise InvalidRequest(N_("No account with that customer number or name."), field="account")
    return account


def active_reps(session: Session) -> list[User]:
    """The active reps, by name (domain.collation)."""
    return sorted(session.scalars(select(User).where(User.role == Role.REP, User.is_active)),
                  key=person_order)


@dataclass(frozen=True)
class AnnouncedListing:
    """One line of a round's announcement (中标公示): the account and what was decided."""

    listing: Listing
    decision: Decision
    winner_name: str | None  # None: no award
    winner_total: float | None
    followed_ranking: bool
    reason: str  # the written reason of an override or a no award; empty otherwise
    # Eligible bids whose total equals the winner's, the winner's included, when there are
    # several: the tie-breaks ordered them, and these numbers let anyone recompute the draw.
    tied_bid_ids: tuple[int, ...] = ()


def round_announcement(session: Session, round_id: int) -> list[AnnouncedListing]:
    """Every decided listing of a round with its winner, winning score and any written
    reason, by account name as menus order names (domain.collation: pinyin order), then by
    listing; the caller checks that results may be shown (policies)."""
    decisions = sorted(session.scalars(
        select(Decision).join(Listing).where(Listing.round_id == round_id)
        .options(selectinload(Decision.listing),
                 selectinload(Decision.bid).selectinload(Bid.rep),
                 selectinload(Decision.bid).selectinload(Bid.score))),
        key=lambda decision: (name_key(decision.listing.account.name), decision.listing_id))
    totals: dict[int, list[tuple[int, float]]] = {}
    for listing_id, bid_id, total in session.execute(
            select(Bid.listing_id, Bid.id, BidScore.total).join(BidScore).join(Listing)
            .where(Listing.round_id == round_id, BidScore.is_eligible)):
        totals.setdefault(listing_id, []).append((bid_id, total))

    def tied_with(decision: Decision) -> tuple[int, ...]:
        if decision.bid is None or decision.bid.score is None:
            return ()
        tied = sorted(bid_id for bid_id, total in totals.get(decision.listing_id, [])
                      if total == decision.bid.score.total)
        return tuple(tied) if len(tied) > 1 else ()

    return [AnnouncedListing(
        listing=decision.listing, decision=decision,
        winner_name=decision.bid.rep.display_name if decision.bid is not None else None,
        winner_total=(decision.bid.score.total if decision.bid is not None
                      and decision.bid.score is not None else None),
        followed_ranking=decision.kind == DecisionKind.ACCEPTED,
        reason=announced_reason(decision), tied_bid_ids=tied_with(decision))
        for decision in decisions]
