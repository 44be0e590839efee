"""Plain rows behind the market's read pages, each from one statement built once."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

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


_PROFILE = (
    select(Account.id, Account.external_id, Account.name, Account.industry,
           Account.ownership_type, Account.annual_value_yuan, Account.executive_sponsor,
           Account.owner_id, Account.sponsor_id, Branch.name, Branch.name_zh, User.display_name)
    .join(Branch, Branch.id == Account.branch_id)
    .outerjoin(User, User.id == Account.owner_id)
    .where(Account.id == bindparam("account_id")))

_CONTACTS = (select(Contact.role, Contact.name, Contact.title, Contact.phone)
             .where(Contact.account_id == bindparam("account_id")).order_by(Contact.id))


def account_profile(session: Session, account_id: int) -> AccountProfile | None:
    found = _rows(session, _PROFILE, account_id=account_id)
    if not found:
        return None
    *facts, branch_name, branch_name_zh, owner_name = found[0]
    return AccountProfile(*facts, BranchName(branch_name, branch_name_zh), owner_name)


def contacts_of(session: Session, account_id: int) -> list:
    """The account's key people (role, name, title, phone) in the order they were recorded."""
    return _rows(session, _CONTACTS, account_id=account_id)


class LatestListing(NamedTuple):
    """What `policies.accepts_bids` reads of a listing."""

    id: int
    status: str
    round: RoundLine


_LATEST_LISTING = (
    select(Listing.id, Listing.status, *_ROUND_COLUMNS)
    .join(Round, Round.id == Listing.round_id).outerjoin(Branch, Branch.id == Round.branch_id)
    .where(Listing.account_id == bindparam("account_id"))
    .order_by(Listing.id.desc()).limit(1))


def latest_listing_of(session: Session, account_id: int) -> LatestListing | None:
    """The account's most recent listing, whichever round it is in, with its round."""
    found = _rows(session, _LATEST_LISTING, account_id=account_id)
    if not found:
        return None
    listing_id, status, *round_values = found[0]
    return LatestListing(listing_id, status, _round_line(round_values))


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
