"""A direct transfer before it is filed: type-ahead lookups, what it would change, its confirmation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from bidhub.db import unit_of_work
from bidhub.domain.errors import Conflict, NotFound
from bidhub.domain.text import N_, Text
from bidhub.domain.typed_text import short_writing, writes_less_than
from bidhub.models import Account, Filing, Listing, RepStatus, Role, TransferRequest, User
from bidhub.services.filings import (
    DEFAULT_CAPACITY_MAX,
    already_waiting_message,
    listed_refusal,
    transfer_account,
    transfer_waiting_for_sponsor,
)
from bidhub.services.limits import MIN_REVIEW_LENGTH
from bidhub.services.ownership import (
    capacity_message,
    commitments_of,
    lock_accounts,
    may_receive_accounts,
    unfinished_listing_of,
)
from bidhub.services.rule_sets import active_rule_set, parsed
from bidhub.services.search_text import closeness, contains_all, search_terms, search_words

# A type-ahead list is for picking, not browsing: a few lines, and the query narrows it.
MAX_SUGGESTIONS = 10
MAX_QUERY_LENGTH = 100
DEFAULT_CAPACITY_TARGET = 30


class Band(StrEnum):
    """Where a rep's count of accounts stands against the capacity band (30-40)."""

    BELOW = "below"
    INSIDE = "inside"
    ABOVE = "above"


def band_of(count: int, target: int, maximum: int) -> Band:
    if count < target:
        return Band.BELOW
    return Band.ABOVE if count > maximum else Band.INSIDE


@dataclass(frozen=True)
class CountChange:
    """A rep's accounts (held plus awards not yet published) now and after the transfer."""

    rep: User
    held: int
    pending: int
    after: int
    band_after: Band

    @property
    def now(self) -> int:
        return self.held + self.pending


@dataclass(frozen=True)
class TransferPreview:
    """What transferring `account` to `to_rep` would do, and what stands in its way today.

    `problems` maps a form field to the refusal the transfer would meet now; the service checks
    again, under its locks, when the transfer is confirmed.
    """

    account: Account
    to_rep: User
    owner: CountChange | None  # None: the account has no owner now
    receiver: CountChange
    capacity_target: int
    capacity_max: int
    listing: Listing | None  # the unfinished round's listing that holds the account
    sponsor: User | None  # the executive sponsor whose confirmation the transfer waits for
    # An executive sponsor known only by title (no person designated): only an admin moves it.
    sponsor_title: str | None
    problems: dict[str, Text]

    @property
    def owner_id(self) -> int | None:
        return self.owner.rep.id if self.owner else None


def search_accounts(session: Session, query: str, *, owner_id: int | None = None,
                    limit: int = MAX_SUGGESTIONS) -> list[Account]:
    """Accounts whose name or customer number contains `query` (any script), the best
    `limit` of them as the database picks them: a customer number or name that is what was
    typed, then those that begin with it, then those that contain it; each group by name in
    pinyin order (domain.collation), then id.

    With `owner_id`, only that rep's accounts; an empty query then lists them.
    """
    statement = select(Account)
    if owner_id is not None:
        statement = statement.where(Account.owner_id == owner_id)
    elif not search_terms(query):
        return []
    order = [Account.name_sort_key, Account.id]
    if words := search_words(query, MAX_QUERY_LENGTH):
        searched = (Account.external_id, Account.name)
        folded = (Account.name_folded,)  # width-blind both ways (search_terms)
        statement = statement.where(contains_all(words, *searched, folded=folded))
        order.insert(0, closeness(search_terms(query, MAX_QUERY_LENGTH), *searched,
                                  folded=folded))
    return list(session.scalars(statement.order_by(*order).limit(limit)))


def search_reps(session: Session, query: str, *, limit: int = MAX_SUGGESTIONS) -> list[User]:
    """Active reps whose name, username or employee id contains `query`, the best `limit` of
    them as the database picks them: one of those that is what was typed, then those that
    begin with it, then those that contain it; each group by name in pinyin order, then id."""
    words = search_words(query, MAX_QUERY_LENGTH)
    if not words:
        return []
    terms = search_terms(query, MAX_QUERY_LENGTH)
    searched = (User.display_name, User.username, User.external_id)
    folded = (User.display_name_folded,)  # width-blind both ways (search_terms)
    return list(session.scalars(
        select(User).where(User.role == Role.REP, User.is_active, User.status != RepStatus.LEFT,
                           contains_all(words, *searched, folded=folded))
        .order_by(closeness(terms, *searched, folded=folded), User.display_name_sort_key,
                  User.id)
        .limit(limit)))


def find_account(session: Session, account_id: int | None) -> Account | None:
    return session.get(Account, account_id) if account_id else None


def find_active_rep(session: Session, rep_id: int | None) -> User | None:
    """The rep, when `rep_id` names an active one (only they can receive an account)."""
    rep = session.get(User, rep_id) if rep_id else None
    return rep if rep is not None and may_receive_accounts(rep) else None


def find_rep(session: Session, rep_id: int | None) -> User | None:
    rep = session.get(User, rep_id) if rep_id else None
    return rep if rep is not None and rep.role == Role.REP else None


def capacity_band(session: Session) -> tuple[int, int]:
    """(target, maximum) of the rules in force, as transfer_account reads the maximum."""
    version = active_rule_set(session)
    if version is None:
        return DEFAULT_CAPACITY_TARGET, DEFAULT_CAPACITY_MAX
    eligibility = parsed(version).eligibility
    return eligibility.capacity_target, eligibility.capacity_max


def counts_of(session: Session, reps: list[User]) -> dict[int, int]:
    """Each rep's accounts held plus awards not yet published, as capacity counts them."""
    return {rep_id: commitments.total
            for rep_id, commitments in commitments_of(session, [rep.id for rep in reps]).items()}


def preview_transfer(session: Session, account: Account, to_rep: User,
                     review_text: str | None = None) -> TransferPreview:
    """Read, without changing anything, what moving `account` to `to_rep` would do.

    With `review_text`, a review too short for an account that leaves its rep is a problem too.
    """
    target, maximum = capacity_band(session)
    owner = account.owner
    ids = [to_rep.id] + ([owner.id] if owner is not None else [])
    commitments = commitments_of(session, ids)
    moving = owner is None or owner.id != to_rep.id

    def change(rep: User, delta: int) -> CountChange:
        current = commitments[rep.id]
        after = current.total + delta
        return CountChange(rep, current.held, current.pending, after,
                           band_of(after, target, maximum))

    receiver = change(to_rep, 1 if moving else 0)
    problems: dict[str, Text] = {}
    listing = unfinished_listing_of(session, account.id)
    if listing is not None:
        problems["account"] = listed_refusal(listing)
    elif account.sponsor_id is not None and transfer_waiting_for_sponsor(session, account.id):
        # The sponsor answers one request at a time: a second would be refused on confirmation.
        problems["account"] = already_waiting_message(account)
    if not moving:
        problems["to_rep"] = N_("%(rep)s already holds %(account)s.", rep=to_rep.display_name,
                                account=account.name)
    elif receiver.after > maximum:
        problems["to_rep"] = capacity_message(to_rep.display_name, commitments[to_rep.id], 1,
                                              maximum)
    if (review_text is not None and owner is not None and moving
            and writes_less_than(review_text, MIN_REVIEW_LENGTH)):
        problems["review_text"] = short_writing(N_(
            "Write a review of why the account leaves its rep (at least %(count)d characters).",
            count=MIN_REVIEW_LENGTH), review_text, MIN_REVIEW_LENGTH)
    return TransferPreview(
        account=account, to_rep=to_rep,
        owner=change(owner, -1 if moving else 0) if owner is not None else None,
        receiver=receiver, capacity_target=target, capacity_max=maximum, listing=listing,
        sponsor=account.sponsor,
        sponsor_title=None if account.sponsor is not None else account.executive_sponsor or None,
        problems=problems)


def confirm_transfer(
    session: Session, actor: User, *, account_id: int, to_rep_id: int,
    expected_owner_id: int | None, reason: str, review_text: str, now: datetime,
) -> Filing | TransferRequest:
    """Make the transfer the manager confirmed on its summary, if the account is as shown there.

    The summary named the owner the account had then; when someone moved the account since,
    the counts and the review it showed are wrong, so the confirmation is refused, not applied.
    """
    with unit_of_work(session):
        account = lock_accounts(session, [account_id]).get(account_id)
        if account is None:
            raise NotFound(N_("No such account."))
        if account.owner_id != expected_owner_id:
            if account.owner is None:
                raise Conflict(N_("%(account)s changed owner after this summary was shown: it "
                                  "has no owner now. Check what the transfer changes now, below, "
                                  "and review it again.",
                                  account=account.name))
            raise Conflict(N_("%(account)s changed owner after this summary was shown: it is "
                              "now held by %(owner)s. Check what the transfer changes now, "
                              "below, and review it again.",
                              account=account.name, owner=account.owner.display_name))
        return transfer_account(session, actor, account_id=account_id, to_rep_id=to_rep_id,
                                reason=reason, review_text=review_text, now=now)
