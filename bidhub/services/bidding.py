"""Reps' bids: submitting, editing and withdrawing, only while the round is open."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, joinedload
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.visitors import replacement_traverse

from bidhub.config import Defaults
from bidhub.db import WRITES_ALONE, in_unit_of_work, may_write_alone, unit_of_work
from bidhub.domain import metrics
from bidhub.domain.errors import (
    BidhubError,
    BidRejected,
    Conflict,
    NotEligible,
    NotFound,
    PermissionDenied,
)
from bidhub.domain.facts import (
    INACTIVE,
    INCIDENT_STATUSES_AGAINST_REP,
    LEFT,
    AccountFacts,
    BidFacts,
    RepHistory,
    unavailability,
)
from bidhub.domain.rules import RuleSet
from bidhub.domain.scoring import check_eligibility
from bidhub.domain.text import N_, Text
from bidhub.domain.typed_text import short_writing, writes_less_than
from bidhub.models import (
    Account,
    AccountabilityIncident,
    Bid,
    BidStatus,
    Branch,
    Filing,
    Listing,
    ListingStatus,
    RepStatus,
    Role,
    Round,
    RuleSetVersion,
    User,
)
from bidhub.services.bid_preferences import close_gap
from bidhub.services.limits import (
    MAX_PLAN_LENGTH,
    MAX_REVENUE_YUAN,
    MIN_PLAN_LENGTH,
    MIN_REVENUE_YUAN,
    SUBMISSION_KEY,
)
from bidhub.services.ownership import (
    is_postgresql,
    lock_reps,
    round_held_open,
    unavailable_receiver,
)
from bidhub.services.rule_sets import parsed
from bidhub.services.track_records import (
    SNAPSHOT_TEXT,
    hire_day,
    history_of_text,
    readable_snapshot,
    tenure_in_months,
)


def check_bid_content(account_plan: str, committed_revenue_yuan: int, visit_plan: str) -> None:
    if writes_less_than(account_plan, MIN_PLAN_LENGTH):
        raise BidRejected(short_writing(N_(
            "Describe your plan for the account (at least %(count)d characters).",
            count=MIN_PLAN_LENGTH), account_plan, MIN_PLAN_LENGTH), field="account_plan")
    if writes_less_than(visit_plan, MIN_PLAN_LENGTH):
        raise BidRejected(short_writing(N_(
            "Describe your visits in the first 90 days (at least %(count)d characters).",
            count=MIN_PLAN_LENGTH), visit_plan, MIN_PLAN_LENGTH), field="visit_plan")
    for field, text in (("account_plan", account_plan), ("visit_plan", visit_plan)):
        if len(text) > MAX_PLAN_LENGTH:
            raise BidRejected(N_("Keep it under %(count)s characters.",
                                 count=f"{MAX_PLAN_LENGTH:,}"), field=field)
    if not MIN_REVENUE_YUAN <= committed_revenue_yuan <= MAX_REVENUE_YUAN:
        raise BidRejected(N_("Enter a revenue between %(minimum)s and %(maximum)s yuan.",
                             minimum=f"{MIN_REVENUE_YUAN:,}", maximum=f"{MAX_REVENUE_YUAN:,}"),
                          field="committed_revenue_yuan")


def open_listing_for(session: Session, listing_id: int, now: datetime) -> Listing:
    # One query for the listing, its round (with the round's rules) and its account: each
    # is needed by the checks below, and lazy loads would cost a statement apiece.
    listing = session.scalars(select(Listing).where(Listing.id == listing_id)
                              .options(joinedload(Listing.round))).first()
    check_listing_open(listing, now)
    return listing


def check_listing_open(listing: Listing | None, now: datetime) -> None:
    if listing is None:
        raise NotFound(N_("No such listing."))
    check_open(is_visible=listing.round.is_visible_to_reps_at(now),
               is_open=listing.round.is_open_at(now), listing_status=listing.status)


def check_open(*, is_visible: bool, is_open: bool, listing_status: str) -> None:
    """Refuse a bid on a listing reps cannot see yet, whose round is not open or which is no
    longer listed; `is_visible` and `is_open` are the round's (Round's own rules)."""
    if not is_visible:
        raise NotFound(N_("No such listing."))
    if not is_open:
        raise BidRejected(N_("Bidding for this round closed at its deadline; bids are no longer "
                             "accepted."))
    if listing_status != ListingStatus.LISTED:
        raise BidRejected(N_("This account is not open for bids."))


class PlacedBid(NamedTuple):
    """A bid that is in: its id and its account's name (for the acknowledgement)."""

    bid_id: int
    account_name: str


def submit_bid(
    session: Session, rep: User, listing_id: int, *, account_plan: str,
    committed_revenue_yuan: int, visit_plan: str, submission_key: str | None, now: datetime,
    zone: str = Defaults.TIMEZONE,
) -> Bid:
    """Place a bid (see `place_bid`) and return it; a resubmitted form (same submission key)
    returns the bid it made before."""
    placed = place_bid(session, rep, listing_id, account_plan=account_plan,
                       committed_revenue_yuan=committed_revenue_yuan, visit_plan=visit_plan,
                       submission_key=submission_key, now=now, zone=zone)
    # Read back from the database: an earlier copy of a revived bid may sit in the session.
    return session.get(Bid, placed.bid_id, populate_existing=True)


def place_bid(
    session: Session, rep: User, listing_id: int, *, account_plan: str,
    committed_revenue_yuan: int, visit_plan: str, submission_key: str | None, now: datetime,
    zone: str = Defaults.TIMEZONE,
) -> PlacedBid:
    """Place a bid; a resubmitted form (same submission key) gives the bid it made before.
    The rep's tenure counts from the start of their hire day in the department's time zone
    `zone`.

    Every check reads inside the write transaction, so it holds at the moment of the bid; the
    reads are one plain statement and the write is one more, as that transaction is what
    concurrent bids queue for. The bid is written as the row the checks produced: no ORM
    object is built, flushed or reloaded for it.

    The checks and the track record are first worked out from that statement read before the
    write transaction, and the write transaction writes their row only if the statement, run
    again inside the write, gives exactly the row they were worked out from (one INSERT ...
    SELECT ... WHERE it does): concurrent bids then queue for one statement, not for the
    metrics. On PostgreSQL that statement is a transaction on its own (`may_write_alone`).
    Any change, a refusal or an unusual case is read and decided again in the write
    transaction, as without the early read.
    """
    content = _Content(account_plan, committed_revenue_yuan, visit_plan, submission_key or None)
    if content.submission_key is not None and not SUBMISSION_KEY.fullmatch(content.submission_key):
        # Not a key the form issued: stored, it would not fit its column on PostgreSQL.
        raise BidRejected(N_("The form expired. Reload the page and try again."))
    params = {"listing_id": listing_id, "rep_id": rep.id, "now": now,
              "submission_key": content.submission_key}
    department = ZoneInfo(zone)
    early = _checked_before_writing(session, rep, params, content, now, department)
    if early is not None and may_write_alone(session):
        # The statement that checks and writes is a transaction on its own on PostgreSQL: no
        # BEGIN or COMMIT round trip around it. If it finds anything changed it writes
        # nothing, and the write transaction below reads and decides again.
        try:
            placed = _write_if_unchanged(session.connection(), early, params, rep.id)
        except _PlacedConcurrently:
            session.rollback()
            return _placed_concurrently(session, rep, content.submission_key)
        except BaseException:
            session.rollback()
            raise
        if placed is not None:
            return placed
        early = None
    try:
        return _place_in_write_transaction(session, rep, listing_id, params, content, early,
                                           now, department)
    except _PlacedConcurrently:  # the write transaction is rolled back: read afresh
        return _placed_concurrently(session, rep, content.submission_key)


def _place_in_write_transaction(session: Session, rep: User, listing_id: int,
                                params: dict[str, Any], content: _Content,
                                early: _Checked | None, now: datetime,
                                department: tzinfo) -> PlacedBid:
    """place_bid's write transaction: checks read and decided at the moment of the bid."""
    # The signed-in user stays as loaded: the rep's row is read again below, in the write
    # transaction, by the statement that reads the listing.
    with unit_of_work(session, keep=(rep,)):
        session.flush()  # what session.execute would do first: the reads see pending rows
        connection = session.connection()
        hold_listing_round_open(session, listing_id)
        if early is not None:
            placed = _write_if_unchanged(connection, early, params, rep.id)
            if placed is not None:
                return placed
        found = connection.execute(_BID_READ, params).first()
        if found is None:  # no such listing (or no such user): decided by the fallbacks
            return _refuse_missing_listing(session, rep, content.submission_key)
        if found.rep_role != Role.REP:
            raise PermissionDenied(N_("Only reps bid."))
        if found.resent_id is not None:  # this form was sent before: the bid it made
            return _placed_before(session, found)
        row = _checked_row(session, rep.id, found, content, now, department)
        try:
            if found.earlier_id is None:
                bid_id = connection.execute(_INSERT_BID, {
                    **row, "listing_id": found.listing_id, "rep_id": rep.id}).scalar_one()
            else:  # withdrawn before: the same row comes back to life, unless a concurrent
                # request revived it first (on PostgreSQL both may have read it withdrawn)
                bid_id = found.earlier_id
                if connection.execute(_REVIVE_BID, {**row, "bid_id": bid_id}).rowcount != 1:
                    raise _PlacedConcurrently()
        except IntegrityError as error:  # a concurrent request placed it first
            raise _PlacedConcurrently() from error
        return PlacedBid(bid_id, found.account_name)


class _PlacedConcurrently(Exception):
    """A concurrent request placed (or revived) the rep's bid for the listing first."""


def _placed_concurrently(session: Session, rep: User, submission_key: str | None) -> PlacedBid:
    """The answer to a bid a concurrent request placed first: the bid, if that request was
    this same form sent twice (a double click: both copies read before either wrote), as a
    form sent again after its bid is answered; else the rep has already bid. Inside a
    caller's unit of work, which the clash has failed, nothing more is read."""
    if submission_key and not in_unit_of_work(session):
        earlier = session.execute(_RESENT_BID, {"rep_id": rep.id,
                                                "submission_key": submission_key}).first()
        if earlier is not None:
            return _resent(*earlier)
    raise already_bid()


class _Content(NamedTuple):
    """What the rep wrote in the bid form."""

    account_plan: str
    committed_revenue_yuan: int
    visit_plan: str
    submission_key: str | None


class _Checked(NamedTuple):
    """A bid's row worked out from `found`, the row `_BID_READ` gave before queueing."""

    found: Row
    row: dict[str, Any]


def _checked_before_writing(session: Session, rep: User, params: dict[str, Any],
                            content: _Content, now: datetime, zone: tzinfo) -> _Checked | None:
    """The bid's row from `_BID_READ` run before the write transaction; None where the
    checks are left to the write transaction alone: inside a unit of work already open, with
    changes not yet flushed, or for anything but a new or revived bid whose checks all pass
    and whose stored snapshot is read as it is (a missing one is rebuilt and stored)."""
    if in_unit_of_work(session) or session.new or session.dirty or session.deleted:
        return None
    found = session.connection().execute(_BID_READ, params).first()
    if (found is None or found.rep_role != Role.REP or found.resent_id is not None
            or not readable_snapshot(found.snapshot)):
        return None
    try:
        return _Checked(found, _checked_row(session, rep.id, found, content, now, zone))
    except BidhubError:  # refused now: decided again at the moment of the bid
        return None


def _write_if_unchanged(connection: Connection, early: _Checked, params: dict[str, Any],
                        rep_id: int) -> PlacedBid | None:
    """Write the bid worked out before the write transaction if `_BID_READ` still gives the
    row it was worked out from; None (nothing written) if it does not, or if the withdrawn
    bid to revive is not withdrawn any more."""
    found = early.found
    values = {**{f"read_{key}": value for key, value in params.items()},
              **{f"seen_{key}": value for key, value in found._mapping.items()},
              **{f"new_{key}": value for key, value in early.row.items()},
              "new_listing_id": found.listing_id, "new_rep_id": rep_id}
    alone = {WRITES_ALONE: True}
    if found.earlier_id is None:
        try:
            bid_id = connection.execute(_INSERT_IF_UNCHANGED, values,
                                        execution_options=alone).scalar()
        except IntegrityError as error:  # a concurrent request placed it first
            raise _PlacedConcurrently() from error
        return None if bid_id is None else PlacedBid(bid_id, found.account_name)
    revived = connection.execute(_REVIVE_IF_UNCHANGED, {**values, "bid_id": found.earlier_id},
                                 execution_options=alone)
    return PlacedBid(found.earlier_id, found.account_name) if revived.rowcount == 1 else None


def _checked_row(session: Session, rep_id: int, found: Row, content: _Content,
                 now: datetime, zone: tzinfo) -> dict[str, Any]:
    """The bid's row if every check passes on what `_BID_READ` read (refusals raise); tenure
    counts in the department's time zone `zone`."""
    check_open(is_visible=found.is_visible, is_open=Round.is_open_at(found, now),
               listing_status=found.listing_status)
    check_bid_content(content.account_plan, content.committed_revenue_yuan, content.visit_plan)
    if found.earlier_status == BidStatus.ACTIVE:
        raise already_bid()
    if found.released_from_id == rep_id:
        raise BidRejected(N_("This account was released from you; you cannot bid for it."))
    track_record = metrics.track_record(
        rep_history_at_bid(session, rep_id, found, now, zone),
        AccountFacts(account_id=found.account_id, industry=found.industry,
                     branch=found.account_branch, annual_value_yuan=found.annual_value_yuan),
        now)
    check_eligible(parsed(_StoredRules(found.rules_text)),
                   bid_facts_at_bid(rep_id, found, track_record, now, zone))
    return {"account_plan": content.account_plan.strip(),
            "visit_plan": content.visit_plan.strip(),
            "committed_revenue_yuan": content.committed_revenue_yuan,
            "track_record": track_record, "status": BidStatus.ACTIVE, "submitted_at": now,
            "updated_at": now, "withdrawn_at": None, "submission_key": content.submission_key}


def already_bid() -> BidRejected:
    return BidRejected(N_("You have already bid for this account; edit your bid instead."))


def _refuse_missing_listing(session: Session, rep: User, submission_key: str | None) -> PlacedBid:
    """The answer when `_BID_READ` found no row, in the order the checks run: a non-rep is
    refused, a form sent before gives its bid, else there is no such listing."""
    role = session.scalar(select(User.role).where(User.id == rep.id))
    if role != Role.REP:
        raise PermissionDenied(N_("Only reps bid."))
    if submission_key:
        earlier = session.execute(_RESENT_BID, {"rep_id": rep.id,
                                                "submission_key": submission_key}).first()
        if earlier is not None:
            return _resent(*earlier)
    raise NotFound(N_("No such listing."))


def _placed_before(session: Session, found: Row) -> PlacedBid:
    if found.resent_id == found.earlier_id:  # the same listing: its row is read already
        return _resent(found.resent_id, found.account_name, found.earlier_status)
    # The key was sent with another listing's form before: that bid, with its own account.
    return _resent(*session.execute(_BID_WITH_ACCOUNT, {"bid_id": found.resent_id}).one())


def _resent(bid_id: int, account_name: str, status: str) -> PlacedBid:
    """The answer to a form sent again: the bid it placed, unless the rep has withdrawn that
    bid since. Then nothing changes, and the rep is told so rather than that the bid is in:
    sending an old form again does not undo a withdrawal."""
    if status == BidStatus.WITHDRAWN:
        raise BidRejected(N_("This form was sent before, and you have since withdrawn the bid "
                             "it placed; nothing was changed. To bid again, open the bid form "
                             "anew."))
    return PlacedBid(bid_id, account_name)


class _StoredRules(NamedTuple):
    """A round's rule text as `rule_sets.parsed` reads a stored version (parsed once per
    process per text)."""

    text: str


def _round_of(listing_id: BindParameter) -> Any:
    """The listing's round id, as a scalar subquery."""
    return select(Listing.round_id).where(Listing.id == listing_id).scalar_subquery()


_HOLD_ROUND_OPEN = round_held_open(_round_of(bindparam("listing_id")))


def hold_listing_round_open(session: Session, listing_id: int) -> None:
    """`hold_round_open` for the listing's round, before reading whether it is open."""
    if is_postgresql(session):
        session.execute(_HOLD_ROUND_OPEN, {"listing_id": listing_id})


# The write transaction's statements, built once: a statement built per bid costs more CPU
# than the database spends answering it, and concurrent bids queue for this transaction.
# `_BID_READ` reads, in one statement, the listing with its account and round (the round's
# status and times under the names Round.is_open_at reads, its visibility by the model's own
# SQL rule, its rule text), what eligibility reads about the rep (`bid_facts` for one bid:
# holdings, open incidents, when they last gave the listing's account up by a release and by
# a transfer), the rep's own row, their stored snapshot as text, their earlier bid for this
# listing and the bid this form made if it was sent before (submission keys are unique).
_RELEASED = aliased(Listing)
_REP_BRANCH = aliased(Branch)
_ACCOUNT_BRANCH = aliased(Branch)
_EARLIER = aliased(Bid)
_RESENT = aliased(Bid)
_BID_READ = select(
    Listing.id.label("listing_id"), Listing.status.label("listing_status"),
    Listing.released_from_id, Listing.account_id, Account.name.label("account_name"),
    Account.industry, Account.annual_value_yuan, _ACCOUNT_BRANCH.code.label("account_branch"),
    Round.status, Round.opens_at, Round.closes_at,
    Round.is_visible_to_reps_at(bindparam("now")).label("is_visible"),
    RuleSetVersion.text.label("rules_text"),
    select(func.count()).select_from(Account).where(Account.owner_id == bindparam("rep_id"))
    .scalar_subquery().label("held"),
    select(func.count()).select_from(AccountabilityIncident)
    .where(AccountabilityIncident.rep_id == bindparam("rep_id"),
           or_(*(AccountabilityIncident.status == status
                 for status in sorted(INCIDENT_STATUSES_AGAINST_REP))),
           AccountabilityIncident.seen_at <= bindparam("now"))
    .scalar_subquery().label("open_incidents"),
    select(func.max(_RELEASED.created_at))
    .where(_RELEASED.released_from_id == bindparam("rep_id"),
           _RELEASED.account_id == Listing.account_id)
    .scalar_subquery().label("released_at"),
    select(func.max(Filing.decided_at))
    .where(Filing.from_rep_id == bindparam("rep_id"), Filing.account_id == Listing.account_id)
    .scalar_subquery().label("transferred_at"),
    User.role.label("rep_role"), User.status.label("rep_status"),
    User.is_active.label("rep_is_active"), User.hired_on,
    User.created_at, _REP_BRANCH.code.label("rep_branch"),
    SNAPSHOT_TEXT.label("snapshot"),
    _EARLIER.id.label("earlier_id"), _EARLIER.status.label("earlier_status"),
    select(_RESENT.id).where(_RESENT.rep_id == bindparam("rep_id"),
                             _RESENT.submission_key == bindparam("submission_key"))
    .scalar_subquery().label("resent_id"),
).select_from(Listing).join(Account, Account.id == Listing.account_id).join(
    _ACCOUNT_BRANCH, _ACCOUNT_BRANCH.id == Account.branch_id,
).join(Round, Round.id == Listing.round_id).join(
    RuleSetVersion, RuleSetVersion.id == Round.rule_set_id,
).join(User, User.id == bindparam("rep_id")).outerjoin(
    _REP_BRANCH, _REP_BRANCH.id == User.branch_id,
).outerjoin(
    _EARLIER, and_(_EARLIER.listing_id == Listing.id, _EARLIER.rep_id == bindparam("rep_id")),
).where(Listing.id == bindparam("listing_id"))
_BID_WITH_ACCOUNT = select(Bid.id, Account.name, Bid.status).join(
    Listing, Listing.id == Bid.listing_id).join(
    Account, Account.id == Listing.account_id).where(Bid.id == bindparam("bid_id"))
_RESENT_BID = select(Bid.id, Account.name, Bid.status).join(
    Listing, Listing.id == Bid.listing_id).join(
    Account, Account.id == Listing.account_id).where(
    Bid.rep_id == bindparam("rep_id"), Bid.submission_key == bindparam("submission_key"))
_BIDS = Bid.__table__
_INSERT_BID = insert(_BIDS).returning(_BIDS.c.id)
_BID_VALUES = ("account_plan", "visit_plan", "committed_revenue_yuan", "track_record", "status",
               "submitted_at", "updated_at", "withdrawn_at", "submission_key")
# A new bid over a withdrawn one is new content: an edit form of the old one is out of date.
_NEXT_VERSION = {_BIDS.c.version: _BIDS.c.version + 1}
_REVIVE_BID = update(_BIDS).where(
    _BIDS.c.id == bindparam("bid_id"), _BIDS.c.status == BidStatus.WITHDRAWN).values(
    {**{column: bindparam(column) for column in _BID_VALUES}, **_NEXT_VERSION})
# The write of a bid worked out before its write transaction: `_BID_READ` again, as a
# subquery, must give every column as it was read (`seen_<column>`, NULL matching NULL).
# Its parameters are renamed (`read_<name>`): an UPDATE of bids keeps the names of bids'
# columns (rep_id, listing_id, submission_key) for the values it sets. OFFSET 0 keeps
# PostgreSQL from pulling the subquery up into the comparisons, which made planning the
# statement cost about four times its execution (and each pooled connection plans it about
# ten times before it keeps a plan: a cold worker's first bids waited on that).
_SEEN = replacement_traverse(_BID_READ, {}, lambda element: bindparam(
    f"read_{element.key}", type_=element.type)
    if isinstance(element, BindParameter) and not element.unique else None,
).offset(literal_column("0")).subquery()
_UNCHANGED = exists(select(literal(1)).select_from(_SEEN).where(and_(*(
    column.is_not_distinct_from(bindparam(f"seen_{column.key}", type_=column.type))
    for column in _SEEN.c))))
_NEW = {column: bindparam(f"new_{column}", type_=_BIDS.c[column].type)
        for column in (*_BID_VALUES, "listing_id", "rep_id")}
# Checked with the round held open, as in the write transaction: a statement that waited
# for the scoring finds the round scored and writes nothing (it is decided again there).
_HELD_OPEN = exists(round_held_open(_round_of(bindparam("read_listing_id"))))
_INSERT_IF_UNCHANGED = insert(_BIDS).from_select(
    list(_NEW), select(*_NEW.values()).where(_HELD_OPEN, _UNCHANGED)).returning(_BIDS.c.id)
_REVIVE_IF_UNCHANGED = update(_BIDS).where(
    _BIDS.c.id == bindparam("bid_id"), _BIDS.c.status == BidStatus.WITHDRAWN, _HELD_OPEN,
    _UNCHANGED,
).values({**{column: _NEW[column] for column in _BID_VALUES}, **_NEXT_VERSION})


def rep_history_at_bid(session: Session, rep_id: int, found: Row, now: datetime,
                       zone: tzinfo) -> RepHistory:
    """The rep's history from their stored snapshot, as `stored_histories` gives it (with the
    rep's row, holdings and snapshot text as `_BID_READ` read them); a dropped or missing
    snapshot is rebuilt and stored first."""
    return history_of_text(session, found.snapshot, rep_id=rep_id,
                           hired_on=hire_day(found, zone), zone=zone,
                           accounts_held=found.held, now=now)


def bid_facts_at_bid(rep_id: int, found: Row, track_record: dict[str, float | None],
                     now: datetime, zone: tzinfo) -> BidFacts:
    """The bid about to be written as `bid_facts` gives it, from what `_BID_READ` read."""
    given_up = [at for at in (found.released_at, found.transferred_at) if at is not None]
    released_at = max(given_up, default=None)
    return BidFacts(
        bid_id=0,  # not written yet; no eligibility check reads it
        rep_id=rep_id, listing_id=found.listing_id, submitted_at=now,
        metrics=dict(track_record), accounts_held=found.held,
        tenure_months=round(tenure_in_months(found, now, zone), 4),  # its hired_on, created_at
        open_incidents=found.open_incidents,
        rep_branch=found.rep_branch or "",
        listing_branch=found.account_branch,
        is_on_leave=found.rep_status != RepStatus.ACTIVE,
        unavailable=unavailability(has_left=found.rep_status == RepStatus.LEFT,
                                   is_active=found.rep_is_active,
                                   is_rep=found.rep_role == Role.REP),
        # As scoring will check it: a rep who left may never bid, whatever the rules say
        # about leave.
        is_departure_checked=True,
        months_since_rep_released_account=(
            None if released_at is None else round(metrics.months_between(released_at, now), 4)),
        listing_value_yuan=found.annual_value_yuan,
        preference_rank=None,  # a new or revived bid is unranked (withdrawing unranks it)
    )


def check_eligible(rules: RuleSet, facts: BidFacts) -> None:
    failed = [check.reason for check in check_eligibility(rules, facts) if not check.passed]
    if failed:
        raise NotEligible(failed)


def own_bid(session: Session, rep: User, bid_id: int) -> Bid:
    bid = session.get(Bid, bid_id)
    if bid is None or bid.rep_id != rep.id:
        raise NotFound(N_("No such bid."))
    return bid


def lock_bid(session: Session, bid: Bid) -> None:
    """Read the bid again, locked until the transaction ends, in the order rankings lock in:
    after its round is held open (scoring, which locks the round first, then writes rows
    naming the bid) and its rep (`bid_preferences.rank_preferences` locks the rep, then
    writes the bids). A withdrawal sent twice at once then runs once: the second finds the
    bid withdrawn, instead of moving the rep's later choices up a second time from the rank
    it read before; and a withdrawal closes the gap at the rank a ranking left, not at the
    one it read before. (SQLite's write transaction lets one in at a time already.)"""
    if is_postgresql(session):
        lock_reps(session, [bid.rep_id])
        session.scalars(select(Bid).where(Bid.id == bid.id)
                        .with_for_update(key_share=True, of=Bid)
                        .execution_options(populate_existing=True)).one()


def update_bid(
    session: Session, rep: User, bid_id: int, *, account_plan: str, committed_revenue_yuan: int,
    visit_plan: str, expected_version: int | None, now: datetime,
) -> Bid:
    """The rep's new content for their active bid. `expected_version`: the bid's version
    the edit form showed; a save from a form opened before another save of the bid (a
    second tab) is refused with `Conflict`, and so is one that names no version."""
    with unit_of_work(session):
        bid = own_bid(session, rep, bid_id)
        hold_listing_round_open(session, bid.listing_id)
        lock_bid(session, bid)  # the rep's row too: a departure saved meanwhile waits or is seen
        if bid.status != BidStatus.ACTIVE:
            raise BidRejected(N_("This bid was withdrawn; submit a new one instead."))
        open_listing_for(session, bid.listing_id, now)
        refusal = edit_refusal(*session.execute(
            select(User.role, User.is_active, User.status).where(User.id == rep.id)).one())
        if refusal is not None:
            raise BidRejected(refusal)
        if expected_version is None or bid.version != expected_version:
            raise Conflict(N_("You saved this bid elsewhere (another tab or device) since "
                              "you opened this page. Below is what you typed here, above "
                              "what is saved now; save again to replace it."))
        check_bid_content(account_plan, committed_revenue_yuan, visit_plan)
        bid.account_plan, bid.visit_plan = account_plan.strip(), visit_plan.strip()
        bid.committed_revenue_yuan = committed_revenue_yuan
        bid.updated_at, bid.version = now, bid.version + 1
        return bid


def edit_refusal(role: str, is_active: bool, status: str) -> Text | None:
    """Why a rep may no longer edit their bid, or None when they may: one who left, was
    deactivated or is no rep any more, as the `on_duty` check (`unavailability`) finds them
    when a bid is placed or scored. A rep on leave may edit, as they may bid. Withdrawing
    stays open to them: it takes out a bid that could not win and gives them nothing."""
    why = unavailable_receiver(role=role, is_active=is_active, status=status)
    if why is None:
        return None
    if why == LEFT:
        return N_("You have left the company and cannot receive accounts, so your bid can no "
                  "longer be edited; you may still withdraw it.")
    if why == INACTIVE:
        return N_("Your user was deactivated and you cannot receive accounts, so your bid can "
                  "no longer be edited; you may still withdraw it.")
    return N_("You are no longer a rep and cannot receive accounts, so your bid can no longer "
              "be edited; you may still withdraw it.")


def withdraw_bid(session: Session, rep: User, bid_id: int, now: datetime) -> Bid:
    with unit_of_work(session):
        bid = own_bid(session, rep, bid_id)
        hold_listing_round_open(session, bid.listing_id)
        lock_bid(session, bid)
        open_listing_for(session, bid.listing_id, now)
        if bid.status == BidStatus.WITHDRAWN:
            return bid
        close_gap(session, bid)  # the rep's later choices move up, in this transaction
        bid.status, bid.withdrawn_at, bid.updated_at = BidStatus.WITHDRAWN, now, now
        return bid
