"""Plain rows behind the market's read pages, each from one statement built once."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session, aliased

from bidhub.models import (
    Account,
    Bid,
    BidScore,
    Branch,
    Contact,
    Decision,
    Listing,
    Round,
    User,
)
from bidhub.services.policies import BidOutcome, outcome_of

# These pages show a handful of rows; building, compiling and loading ORM objects for them cost
# more than the rest of the page. So the statements are built once, at import, with their
# parameters bound at each call, and their rows are read as plain values.


def _rows(session: Session, statement: Select, **params: Any) -> list:
    # The session's own connection and transaction, without the ORM's result handling: these
    # statements name columns only.
    return session.connection().execute(statement, params).all()


class BranchName(NamedTuple):
    """What `branch_name` reads of a branch."""

    name: str
    name_zh: str | None


class RoundLine(NamedTuple):
    """A round as these pages show it; `is_open_at` is the model's own rule."""

    id: int
    title: str
    status: str
    opens_at: datetime
    closes_at: datetime
    rule_set_id: int
    branch: BranchName | None

    is_open_at = Round.is_open_at


_ROUND_COLUMNS = (Round.id, Round.title, Round.status, Round.opens_at, Round.closes_at,
                  Round.rule_set_id, Branch.name, Branch.name_zh)


def _round_line(values: tuple) -> RoundLine:
    *dates, branch_name, branch_name_zh = values
    return RoundLine(*dates, BranchName(branch_name, branch_name_zh)
                     if branch_name is not None else None)


# --- the account page ---------------------------------------------------------------------------

class AccountProfile(NamedTuple):
    """An account's profile; `owner_name` is for those `policies.may_see_owner` lets see it."""

    id: int
    external_id: str
    name: str
    industry: str
    ownership_type: str
    annual_value_yuan: int
    executive_sponsor: str | None
    owner_id: int | None
    sponsor_id: int | None
    branch: BranchName
    owner_name: str | None


class KeyPerson(NamedTuple):
    role: str
    name: str
    title: str
    phone: str


class LatestListing(NamedTuple):
    """What `policies.accepts_bids` reads of a listing."""

    id: int
    status: str
    round: RoundLine


_LATER_LISTING = aliased(Listing)
_ROUND_BRANCH = aliased(Branch)
# The profile (with its branch and holder's name), the account's most recent listing with its
# round, and one row per key person (the profile repeated on each): one statement instead of
# three, since every statement is a round trip (on PostgreSQL a parse and a plan too) and the
# few rows cost less than that.
_ACCOUNT_PAGE = (
    select(Account.id, Account.external_id, Account.name, Account.industry,
           Account.ownership_type, Account.annual_value_yuan, Account.executive_sponsor,
           Account.owner_id, Account.sponsor_id, Branch.name, Branch.name_zh, User.display_name,
           Listing.id, Listing.status, Round.id, Round.title, Round.status, Round.opens_at,
           Round.closes_at, Round.rule_set_id, _ROUND_BRANCH.name, _ROUND_BRANCH.name_zh,
           Contact.id, Contact.role, Contact.name, Contact.title, Contact.phone)
    .join(Branch, Branch.id == Account.branch_id)
    .outerjoin(User, User.id == Account.owner_id)
    .outerjoin(Listing, Listing.id == select(func.max(_LATER_LISTING.id))
               .where(_LATER_LISTING.account_id == Account.id).scalar_subquery())
    .outerjoin(Round, Round.id == Listing.round_id)
    .outerjoin(_ROUND_BRANCH, _ROUND_BRANCH.id == Round.branch_id)
    .outerjoin(Contact, Contact.account_id == Account.id)
    .where(Account.id == bindparam("account_id"))
    .order_by(Contact.id))


class AccountPage(NamedTuple):
    profile: AccountProfile
    latest_listing: LatestListing | None  # whichever round it is in
    contacts: list[KeyPerson]  # in the order they were recorded


def account_page(session: Session, account_id: int) -> AccountPage | None:
    """What the account page shows of an account; None if there is no such account."""
    found = _rows(session, _ACCOUNT_PAGE, account_id=account_id)
    if not found:
        return None
    first = found[0]
    listing_id, listing_status = first[12:14]
    listing = (None if listing_id is None
               else LatestListing(listing_id, listing_status, _round_line(first[14:22])))
    return AccountPage(
        AccountProfile(*first[:9], BranchName(*first[9:11]), first[11]), listing,
        [KeyPerson(*row[23:]) for row in found if row[22] is not None])


# --- a rep's bids ---------------------------------------------------------------------------

class ListingOfBid(NamedTuple):
    """What the ranking forms (bid_preferences) read of a bid's listing."""

    id: int
    status: str
    round_id: int
    round: RoundLine


class Decided(NamedTuple):
    """What `policies.outcome_of` reads of a listing's decision."""

    bid_id: int | None


class BidLine(NamedTuple):
    """One of the rep's own bids, as their list shows it.

    `score_total` is the stored score, which the page shows only once results are published
    (`policies.results_are_published`), as it did with the bid's ORM object.
    """

    id: int
    status: str
    submitted_at: datetime
    preference_rank: int | None
    listing_id: int
    listing: ListingOfBid
    account_name: str
    is_scored: bool
    score_total: float | None
    decision: Decided | None

    @property
    def round(self) -> RoundLine:
        return self.listing.round


_MY_BIDS = (
    select(Bid.id, Bid.status, Bid.submitted_at, Bid.preference_rank, Bid.listing_id,
           Listing.status, Account.name, BidScore.bid_id, BidScore.total, Decision.id,
           Decision.bid_id, *_ROUND_COLUMNS)
    .join(Listing, Listing.id == Bid.listing_id).join(Account, Account.id == Listing.account_id)
    .join(Round, Round.id == Listing.round_id).outerjoin(Branch, Branch.id == Round.branch_id)
    .outerjoin(BidScore, BidScore.bid_id == Bid.id)
    .outerjoin(Decision, Decision.listing_id == Listing.id)
    .where(Bid.rep_id == bindparam("rep_id"))
    .order_by(Bid.submitted_at.desc()))


def my_bids(session: Session, rep: User) -> list[BidLine]:
    """The rep's own bids, newest first, each with its round, account name, score and
    decision; never another rep's bid."""
    lines = []
    rounds: dict[int, RoundLine] = {}
    for (bid_id, status, submitted_at, rank, listing_id, listing_status, account_name,
         scored_bid_id, total, decision_id, decided_bid_id, *round_values) in _rows(
            session, _MY_BIDS, rep_id=rep.id):
        if round_values[0] not in rounds:
            rounds[round_values[0]] = _round_line(round_values)
        round_ = rounds[round_values[0]]
        lines.append(BidLine(
            bid_id, status, submitted_at, rank, listing_id,
            ListingOfBid(listing_id, listing_status, round_.id, round_), account_name,
            scored_bid_id is not None, total,
            Decided(decided_bid_id) if decision_id is not None else None))
    return lines


def bid_outcomes(lines: list[BidLine]) -> dict[int, BidOutcome]:
    """`policies.outcome_of` of each bid, by bid id, from the decisions read with the bids."""
    return {line.id: outcome_of(line, line.decision) for line in lines}


# --- the rounds list ----------------------------------------------------------------------------

_VISIBLE_ROUNDS = (
    select(*_ROUND_COLUMNS).outerjoin(Branch, Branch.id == Round.branch_id)
    .where(Round.is_visible_to_reps_at(bindparam("now")))
    .order_by(Round.closes_at.desc()))


def rounds_visible_to_reps(session: Session, now: datetime) -> list[RoundLine]:
    return [_round_line(values) for values in _rows(session, _VISIBLE_ROUNDS, now=now)]
