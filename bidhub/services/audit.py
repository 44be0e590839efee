"""The audit trail of privileged changes: recorded by the services, read by KA management."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bidhub.models import Account, AuditEvent, Bid, Branch, Listing, Round, User

# What an action's first word names (`round.published`: a round). The trail is filtered by
# these; an action of another kind is still listed, under none of them.
AUDIT_AREAS = ("rules", "round", "listing", "decision", "appeal", "account", "transfer_request",
               "sponsor", "incident", "loss_review", "import", "import_mapping", "user",
               "branch")


def record_audit(
    session: Session,
    actor: User | None,
    action: str,
    target: str,
    now: datetime,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    session.add(AuditEvent(actor_id=actor.id if actor else None, action=action, target=target,
                           before=before, after=after, at=now))


@dataclass(frozen=True)
class AuditFilter:
    """Which events to read: an area of AUDIT_AREAS, one actor or the system's own jobs
    (`by_system`), and [date_from, date_to) in UTC; None is no limit."""

    area: str | None = None
    actor_id: int | None = None
    by_system: bool = False
    date_from: datetime | None = None
    date_to: datetime | None = None


@dataclass(frozen=True)
class AuditChange:
    """One value an event records: `before` and `after` as stored, MISSING where that side
    does not name it."""

    key: str
    before: Any
    after: Any


MISSING = object()  # an AuditChange side that the event does not record


@dataclass(frozen=True)
class AuditLine:
    id: int
    at: datetime
    actor_id: int | None  # None: a scheduled job or a command, not a person
    actor_name: str | None
    action: str
    target: str
    changes: tuple[AuditChange, ...]

    @property
    def area(self) -> str:
        """What the action's first word names (`round` for `round.published`)."""
        return self.action.partition(".")[0]


# Values that are ids, by what they name (an id or a list of ids): the trail reads their
# names, so that a line says who and what rather than numbers.
PERSON_KEYS = frozenset({"rep", "from_rep", "to_rep", "owner", "sponsor", "reviewers",
                         "decided_by"})
ACCOUNT_KEYS = frozenset({"account"})
ROUND_KEYS = frozenset({"round"})
BRANCH_KEYS = frozenset({"branch_id"})
BID_KEYS = frozenset({"bid"})
# Values that list listings by id (a count of them, under "listings", is a number alone).
LISTING_KEYS = frozenset({"listings", "no_bid_defaults", "flagged"})
# What a target's first word names (`round:12`), by the values that name the same.
TARGET_KEYS = {"user": PERSON_KEYS, "account": ACCOUNT_KEYS, "round": ROUND_KEYS,
               "branch": BRANCH_KEYS}


@dataclass(frozen=True)
class AuditNames:
    """What the ids in a page of the trail name: people, accounts, rounds, branches, and
    bids by their rep."""

    people: dict[int, str]
    accounts: dict[int, Account]
    rounds: dict[int, str]
    branches: dict[int, Branch]
    bidders: dict[int, str]
    listed: dict[int, Account]  # listing id -> its account


@dataclass(frozen=True)
class AuditTrail:
    lines: list[AuditLine]
    total: int
    names: AuditNames


def audit_trail(session: Session, criteria: AuditFilter, *, limit: int,
                offset: int = 0) -> AuditTrail:
    """The events `criteria` selects, newest first (those of one instant in the order they
    were written, last first)."""
    conditions = []
    if criteria.area is not None:
        conditions.append(AuditEvent.action.startswith(f"{criteria.area}.", autoescape=True))
    if criteria.by_system:
        conditions.append(AuditEvent.actor_id.is_(None))
    elif criteria.actor_id is not None:
        conditions.append(AuditEvent.actor_id == criteria.actor_id)
    if criteria.date_from is not None:
        conditions.append(AuditEvent.at >= criteria.date_from)
    if criteria.date_to is not None:
        conditions.append(AuditEvent.at < criteria.date_to)
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*conditions))
    rows = session.execute(
        select(AuditEvent, User.display_name).outerjoin(User, User.id == AuditEvent.actor_id)
        .where(*conditions).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(limit).offset(offset))
    lines = [AuditLine(event.id, event.at, event.actor_id, name, event.action, event.target,
                       changes_of(event.before, event.after)) for event, name in rows]
    return AuditTrail(lines, total or 0, names_in(session, lines))


def names_in(session: Session, lines: list[AuditLine]) -> AuditNames:
    """The names of the ids the lines' values and targets hold, one statement for each
    kind."""
    wanted: dict[frozenset[str], set[int]] = {
        keys: set() for keys in (PERSON_KEYS, ACCOUNT_KEYS, ROUND_KEYS, BRANCH_KEYS, BID_KEYS)}
    listing_ids: set[int] = set()
    for line in lines:
        kind, number = target_of(line.target)
        if number is not None and kind in TARGET_KEYS:
            wanted[TARGET_KEYS[kind]].add(number)
        elif number is not None and kind == "listing":
            listing_ids.add(number)
        for change in line.changes:
            for key, value in (*named_values(change.key, change.before),
                               *named_values(change.key, change.after)):
                for keys, ids in wanted.items():
                    if key in keys:
                        ids.update(ids_in(value))
                if key in LISTING_KEYS and isinstance(value, list):
                    listing_ids.update(ids_in(value))

    def read(model, ids: set[int]) -> dict[int, Any]:
        return {row.id: row for row in session.scalars(select(model).where(model.id.in_(ids)))
                } if ids else {}

    return AuditNames(
        people={user.id: user.display_name for user in read(User, wanted[PERSON_KEYS]).values()},
        accounts=read(Account, wanted[ACCOUNT_KEYS]),
        rounds={round_.id: round_.title for round_ in read(Round, wanted[ROUND_KEYS]).values()},
        branches=read(Branch, wanted[BRANCH_KEYS]),
        bidders=dict(session.execute(
            select(Bid.id, User.display_name).join(User, User.id == Bid.rep_id)
            .where(Bid.id.in_(wanted[BID_KEYS]))).all()) if wanted[BID_KEYS] else {},
        listed=dict(session.execute(
            select(Listing.id, Account).join(Account, Account.id == Listing.account_id)
            .where(Listing.id.in_(listing_ids))).all()) if listing_ids else {})


def target_of(target: str) -> tuple[str, int | None]:
    """A target's kind and id (`round:12`: round, 12); None for a target without one."""
    kind, _sep, number = target.partition(":")
    return kind, int(number) if number.isascii() and number.isdigit() else None


def named_values(key: str, value: Any) -> list[tuple[str, Any]]:
    """`key` and `value`, and the values a recorded record holds (a decision, say), each with
    its name."""
    if isinstance(value, dict):
        return [pair for inner, held in value.items() for pair in named_values(inner, held)]
    return [(key, value)]


def ids_in(value: Any) -> set[int]:
    """The ids a recorded value holds: an id, or a list of them."""
    values = value if isinstance(value, list) else [value]
    return {item for item in values if isinstance(item, int) and not isinstance(item, bool)}


def audit_actors(session: Session) -> list[User]:
    """Everyone the trail names as acting, for the trail's filter."""
    return list(session.scalars(select(User).where(
        User.id.in_(select(AuditEvent.actor_id).where(AuditEvent.actor_id.is_not(None))))))


def changes_of(before: dict[str, Any] | None, after: dict[str, Any] | None
               ) -> tuple[AuditChange, ...]:
    """What an event records, value by value: where it has both sides, only the values that
    differ (the rest was recorded as context and did not change); otherwise every value of
    the side it has. Keys in the order the event names them, `before`'s first."""
    before, after = before or {}, after or {}
    keys = list(before) + [key for key in after if key not in before]
    both = bool(before) and bool(after)
    return tuple(AuditChange(key, before.get(key, MISSING), after.get(key, MISSING))
                 for key in keys
                 if not (both and key in before and key in after and before[key] == after[key]))
