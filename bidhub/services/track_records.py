"""Turning a rep's rows into domain facts: history for metrics, and bids for scoring."""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Select,
    Text,
    bindparam,
    cast,
    event,
    func,
    literal,
    null,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import get_history

from bidhub.config import Defaults
from bidhub.db import in_unit_of_work, unit_of_work
from bidhub.domain.eligibility import CheckedFacts
from bidhub.domain.facts import (
    INCIDENT_STATUSES_AGAINST_REP,
    AccountFacts,
    BidFacts,
    ForecastFact,
    IncidentFact,
    LostAccountFact,
    OpportunityFact,
    PromiseFact,
    RepHistory,
    Stage,
    StageChange,
    unavailability,
)
from bidhub.domain.history_snapshot import (
    SNAPSHOT_FORMAT,
    LossRecord,
    SnapshotFacts,
    SnapshotFormatError,
    history_at,
    history_from_snapshot,
    snapshot_document,
    snapshot_facts,
)
from bidhub.domain.metrics import day_start, months_between, months_since_day, track_record
from bidhub.models import (
    Account,
    AccountabilityIncident,
    AccountReview,
    Bid,
    Decision,
    Filing,
    Listing,
    ListingStatus,
    LossReviewStatus,
    MonthlyForecast,
    Opportunity,
    OpportunityStageChange,
    RepStatus,
    Role,
    TrackRecordSnapshot,
    User,
)


def accounts_held_by(session: Session, rep_ids: Iterable[int]) -> dict[int, int]:
    rep_ids = list(rep_ids)
    rows = session.execute(
        select(Account.owner_id, func.count()).where(Account.owner_id.in_(rep_ids))
        .group_by(Account.owner_id)
    )
    held = dict.fromkeys(rep_ids, 0)
    held.update({owner_id: count for owner_id, count in rows})
    return held


# A loss counts as reviewed once the rep's review is submitted; a closed one stays reviewed
# (reviews written before reps wrote their own were migrated as closed).
REVIEWED_STATUSES = frozenset({LossReviewStatus.SUBMITTED, LossReviewStatus.CLOSED})


def reviewed_at(review: AccountReview) -> datetime:
    """When the loss became reviewed: the rep's submission, else its closing or creation."""
    return review.submitted_at or review.closed_at or review.created_at


def is_reviewed(review: AccountReview, now: datetime) -> bool:
    return review.status in REVIEWED_STATUSES and reviewed_at(review) <= now


def reviewed_losses(session: Session, rep_ids: Iterable[int],
                    now: datetime) -> tuple[set[int], set[tuple[int, int]]]:
    """The losses reviewed by `now`: filing numbers, and (rep, account) pairs for reviews
    that name no filing (a release not yet awarded, or a review older than loss reviews)."""
    filings: set[int] = set()
    accounts: set[tuple[int, int]] = set()
    for review in session.scalars(select(AccountReview).where(
            AccountReview.rep_id.in_(list(rep_ids)),
            AccountReview.status.in_(sorted(REVIEWED_STATUSES)))):
        if not is_reviewed(review, now):
            continue
        if review.filing_seq is not None:
            filings.add(review.filing_seq)
        else:
            accounts.add((review.rep_id, review.account_id))
    return filings, accounts


def promises_of(session: Session, rep_ids: Iterable[int]) -> dict[int, list[PromiseFact]]:
    """Each rep's promises: the committed revenue of every bid of theirs that won, from the
    moment its award took effect (the decision's bid, on a listing applied as awarded); by
    start and bid id. Zero commitments are included: the metric leaves them out."""
    promises: dict[int, list[PromiseFact]] = defaultdict(list)
    for rep_id, bid_id, account_id, committed, applied_at in session.execute(
        select(Bid.rep_id, Bid.id, Listing.account_id, Bid.committed_revenue_yuan,
               Listing.applied_at)
        .join(Decision, Decision.bid_id == Bid.id)
        .join(Listing, Listing.id == Decision.listing_id)
        .where(Bid.rep_id.in_(sorted(set(rep_ids))), Listing.status == ListingStatus.AWARDED,
               Listing.applied_at.is_not(None))
        .order_by(Listing.applied_at, Bid.id)
    ):
        promises[rep_id].append(PromiseFact(bid_id, account_id, committed, applied_at))
    return promises


def rep_histories(session: Session, reps: list[User], now: datetime, *,
                  zone: str = Defaults.TIMEZONE) -> dict[int, RepHistory]:
    """Histories of several reps with a fixed number of queries; `zone` is the department's
    time zone, whose days tenure counts in."""
    rep_ids = [rep.id for rep in reps]
    held = accounts_held_by(session, rep_ids)
    opportunities: dict[int, list[OpportunityFact]] = defaultdict(list)
    for opportunity in session.scalars(
        select(Opportunity).where(Opportunity.rep_id.in_(rep_ids)).order_by(Opportunity.id)
        .options(selectinload(Opportunity.stage_changes), selectinload(Opportunity.account))
    ):
        # By id, and changes at one moment by id: the order metrics sum and pick in is fixed.
        opportunities[opportunity.rep_id].append(OpportunityFact(
            opportunity_id=opportunity.id, account_id=opportunity.account_id,
            industry=opportunity.account.industry, amount_yuan=opportunity.amount_yuan,
            stage=Stage(opportunity.stage), opened_at=opportunity.opened_at,
            closed_at=opportunity.closed_at,
            history=tuple(StageChange(Stage(change.stage), change.changed_at)
                          for change in sorted(opportunity.stage_changes,
                                               key=lambda change: (change.changed_at, change.id))),
        ))
    incidents: dict[int, list[IncidentFact]] = defaultdict(list)
    for incident in session.scalars(
        select(AccountabilityIncident).where(AccountabilityIncident.rep_id.in_(rep_ids))
        .order_by(AccountabilityIncident.id)  # the snapshot's order
    ):
        incidents[incident.rep_id].append(IncidentFact.of_row(
            incident.id, incident.account_id, incident.seen_at, incident.status,
            incident.resolved_at, incident.explained_at, bool(incident.explanation)))
    forecasts: dict[int, list[ForecastFact]] = defaultdict(list)
    for forecast in session.scalars(
        select(MonthlyForecast).where(MonthlyForecast.rep_id.in_(rep_ids))
        .order_by(MonthlyForecast.month)
    ):
        forecasts[forecast.rep_id].append(ForecastFact(forecast.month, forecast.forecast_yuan,
                                                       forecast.actual_yuan,
                                                       forecast.actual_known_at))
    reviewed_filings, reviewed_accounts = reviewed_losses(session, rep_ids, now)
    lost: dict[int, list[LostAccountFact]] = defaultdict(list)
    # By seq, as the snapshot stores them: without an order PostgreSQL may return a rep's
    # several losses in another order, and the two histories would differ.
    for filing in session.scalars(select(Filing).where(Filing.from_rep_id.in_(rep_ids))
                                  .order_by(Filing.seq)):
        lost[filing.from_rep_id].append(LostAccountFact(
            filing.account_id, filing.decided_at,
            filing.seq in reviewed_filings
            or (filing.from_rep_id, filing.account_id) in reviewed_accounts))
    promises = promises_of(session, rep_ids)
    department = ZoneInfo(zone)
    return {
        rep.id: RepHistory(
            rep_id=rep.id, hired_on=hire_day(rep, department), zone=department,
            accounts_held=held[rep.id], opportunities=tuple(opportunities[rep.id]),
            forecasts=tuple(forecasts[rep.id]), incidents=tuple(incidents[rep.id]),
            lost_accounts=tuple(lost[rep.id]), promises=tuple(promises[rep.id]))
        for rep in reps
    }


def forget_track_record_snapshots(session: Session, rep_ids: Iterable[int] | None = None) -> None:
    """Drop the stored snapshots of these reps (of every rep when None): their CRM rows changed,
    so the next use rebuilds them. Runs inside the caller's transaction.

    A dropped snapshot stays as a row without history whose version is bumped, so a rebuild
    running at the same moment from rows read before this change cannot store them: it
    stores only if the version it saw is unchanged (see `store_snapshots`)."""
    table = TrackRecordSnapshot.__table__
    if rep_ids is None:
        rep_ids = session.scalars(select(User.id).where(User.role == Role.REP)).all()
    rep_ids = sorted(set(rep_ids))  # one order for every writer: no deadlock between them
    for start in range(0, len(rep_ids), _BATCH):
        statement = _upsert(session, table).values(
            [{"rep_id": rep_id, "history": null(), "version": 1, "refreshed_at": None}
             for rep_id in rep_ids[start:start + _BATCH]])
        session.execute(statement.on_conflict_do_update(
            index_elements=[table.c.rep_id],
            set_={"history": null(), "refreshed_at": null(), "version": table.c.version + 1}))


_BATCH = 500


def _upsert(session: Session, table):
    """INSERT .. ON CONFLICT for this session's database (both dialects spell it alike)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql_insert(table)
    return sqlite_insert(table)


# --- rebuilding a snapshot from the rows, without ORM objects ----------------------------


def snapshot_documents(session: Session, rep_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The snapshot documents of these reps, read from the rows with seven plain queries."""
    rep_ids = sorted(set(rep_ids))
    changes: dict[int, list[StageChange]] = defaultdict(list)
    for opportunity_id, stage, changed_at in session.execute(
        select(OpportunityStageChange.opportunity_id, OpportunityStageChange.stage,
               OpportunityStageChange.changed_at)
        .join(Opportunity, Opportunity.id == OpportunityStageChange.opportunity_id)
        .where(Opportunity.rep_id.in_(rep_ids))
        .order_by(OpportunityStageChange.changed_at, OpportunityStageChange.id)
    ):
        changes[opportunity_id].append(StageChange(Stage(stage), changed_at))
    opportunities: dict[int, list[OpportunityFact]] = defaultdict(list)
    for row in session.execute(
        select(Opportunity.id, Opportunity.rep_id, Opportunity.account_id, Account.industry,
               Opportunity.amount_yuan, Opportunity.stage, Opportunity.opened_at,
               Opportunity.closed_at)
        .join(Account, Account.id == Opportunity.account_id)
        .where(Opportunity.rep_id.in_(rep_ids)).order_by(Opportunity.id)
    ):
        opportunities[row.rep_id].append(OpportunityFact(
            row.id, row.account_id, row.industry, row.amount_yuan, Stage(row.stage),
            row.opened_at, row.closed_at, tuple(changes[row.id])))
    forecasts: dict[int, list[ForecastFact]] = defaultdict(list)
    for rep_id, month, forecast_yuan, actual_yuan, known_at in session.execute(
        select(MonthlyForecast.rep_id, MonthlyForecast.month, MonthlyForecast.forecast_yuan,
               MonthlyForecast.actual_yuan, MonthlyForecast.actual_known_at)
        .where(MonthlyForecast.rep_id.in_(rep_ids)).order_by(MonthlyForecast.month)
    ):
        forecasts[rep_id].append(ForecastFact(month, forecast_yuan, actual_yuan, known_at))
    incidents: dict[int, list[IncidentFact]] = defaultdict(list)
    for row in session.execute(
        select(AccountabilityIncident.id, AccountabilityIncident.rep_id,
               AccountabilityIncident.account_id, AccountabilityIncident.seen_at,
               AccountabilityIncident.status, AccountabilityIncident.resolved_at,
               AccountabilityIncident.explained_at,
               (AccountabilityIncident.explanation != "").label("has_explanation"))
        .where(AccountabilityIncident.rep_id.in_(rep_ids)).order_by(AccountabilityIncident.id)
    ):
        incidents[row.rep_id].append(IncidentFact.of_row(
            row.id, row.account_id, row.seen_at, row.status, row.resolved_at,
            row.explained_at, bool(row.has_explanation)))
    losses = _loss_records(session, rep_ids)
    promises = promises_of(session, rep_ids)
    return {rep_id: snapshot_document(opportunities[rep_id], forecasts[rep_id],
                                      incidents[rep_id], losses[rep_id], promises[rep_id])
            for rep_id in rep_ids}


def _loss_records(session: Session, rep_ids: list[int]) -> dict[int, list[LossRecord]]:
    """Each filing that took an account from a rep, with the earliest moment a review of it
    counts as written: a submitted or closed review naming the filing, or naming the account
    without a filing (as `reviewed_losses` matches them)."""
    by_filing: dict[int, datetime] = {}
    by_account: dict[tuple[int, int], datetime] = {}
    for row in session.execute(
        select(AccountReview.rep_id, AccountReview.account_id, AccountReview.filing_seq,
               AccountReview.submitted_at, AccountReview.closed_at, AccountReview.created_at)
        .where(AccountReview.rep_id.in_(rep_ids),
               AccountReview.status.in_(sorted(REVIEWED_STATUSES)))
    ):
        at = row.submitted_at or row.closed_at or row.created_at
        if row.filing_seq is not None:
            key = (row.rep_id, row.filing_seq)
            by_filing[key] = min(at, by_filing.get(key, at))
        else:
            key = (row.rep_id, row.account_id)
            by_account[key] = min(at, by_account.get(key, at))
    losses: dict[int, list[LossRecord]] = defaultdict(list)
    for seq, rep_id, account_id, decided_at in session.execute(
        select(Filing.seq, Filing.from_rep_id, Filing.account_id, Filing.decided_at)
        .where(Filing.from_rep_id.in_(rep_ids)).order_by(Filing.seq)
    ):
        times = [at for at in (by_filing.get((rep_id, seq)),
                               by_account.get((rep_id, account_id))) if at is not None]
        losses[rep_id].append(LossRecord(account_id, decided_at, min(times, default=None)))
    return losses


def store_snapshots(session: Session, documents: dict[int, dict[str, Any]],
                    seen: dict[int, int], now: datetime) -> None:
    """Store rebuilt documents, each only where the snapshot is still as it was seen before
    the rows were read: absent (insert, unless someone stored or dropped it meanwhile), or
    dropped (or of an old format) at version `seen[rep_id]`: a concurrent drop has bumped the
    version since, and then nothing is stored."""
    table = TrackRecordSnapshot.__table__
    fresh = [{"rep_id": rep_id, "history": document, "version": 0, "refreshed_at": now}
             for rep_id, document in documents.items() if rep_id not in seen]
    if fresh:
        session.execute(_upsert(session, table).values(fresh)
                        .on_conflict_do_nothing(index_elements=[table.c.rep_id]))
    dropped = [{"key": rep_id, "seen": seen[rep_id], "document": document, "at": now}
               for rep_id, document in documents.items() if rep_id in seen]
    if dropped:
        session.connection().execute(
            update(table).where(table.c.rep_id == bindparam("key"),
                                table.c.version == bindparam("seen"))
            .values(history=bindparam("document", type_=table.c.history.type),
                    refreshed_at=bindparam("at", type_=table.c.refreshed_at.type)),
            dropped)


def _stored(session: Session, rep_ids: list[int]) -> tuple[dict[int, dict], dict[int, int]]:
    """(readable documents by rep, version of each snapshot row that has none)."""
    documents, dropped = {}, {}
    for rep_id, document, version in session.execute(
        select(TrackRecordSnapshot.rep_id, TrackRecordSnapshot.history,
               TrackRecordSnapshot.version).where(TrackRecordSnapshot.rep_id.in_(rep_ids))
    ):
        if isinstance(document, dict) and document.get("format") == SNAPSHOT_FORMAT:
            documents[rep_id] = document
        else:
            dropped[rep_id] = version
    return documents, dropped


def _rebuild(session: Session, rep_ids: list[int], now: datetime) -> dict[int, dict]:
    """Read the snapshot versions, then the rows, then store: in this order, so that a change
    committed after the versions were read makes the store a no-op."""
    documents, dropped = _stored(session, rep_ids)
    missing = [rep_id for rep_id in rep_ids if rep_id not in documents]
    if missing:
        rebuilt = snapshot_documents(session, missing)
        try:
            with session.begin_nested():
                store_snapshots(session, rebuilt, dropped, now)
        except OperationalError:
            pass  # the database is busy: the rebuilt documents still serve this use
        documents.update(rebuilt)
    return documents


def stored_documents(session: Session, rep_ids: Iterable[int], now: datetime) -> dict[int, dict]:
    """The snapshot documents of these reps; missing ones are rebuilt from the rows.

    Inside a use case (a bid) the rebuilt ones are stored in its transaction. A read (a page)
    keeps them in memory only: a GET writes nothing, and a page's read transaction cannot
    safely turn into a write on SQLite. The scheduled refresh stores them for the next page.
    """
    rep_ids = sorted(set(rep_ids))
    if in_unit_of_work(session):
        return _rebuild(session, rep_ids, now)
    documents, _dropped = _stored(session, rep_ids)
    missing = [rep_id for rep_id in rep_ids if rep_id not in documents]
    if missing:
        documents.update(snapshot_documents(session, missing))
    return documents


def stored_histories(session: Session, reps: list[User], now: datetime, *,
                     zone: str = Defaults.TIMEZONE) -> dict[int, RepHistory]:
    """Histories of several reps as `rep_histories` gives them, from the stored snapshots."""
    documents = stored_documents(session, [rep.id for rep in reps], now)
    held = accounts_held_by(session, [rep.id for rep in reps])
    department = ZoneInfo(zone)
    return {rep.id: history_from_snapshot(documents[rep.id], rep_id=rep.id,
                                          hired_on=hire_day(rep, department), zone=department,
                                          accounts_held=held[rep.id], now=now)
            for rep in reps}


# A rep's snapshot as its stored text (NULL when dropped or missing), as a column for a page's
# own statement: a text read before is not decoded again (see `history_from_text`).
SNAPSHOT_TEXT = (select(cast(TrackRecordSnapshot.history, Text))
                 .where(TrackRecordSnapshot.rep_id == bindparam("rep_id")).scalar_subquery())


def history_from_text(session: Session, rep: User, text: str | None, accounts_held: int,
                      now: datetime, *, zone: str = Defaults.TIMEZONE) -> RepHistory:
    """The rep's history as `stored_histories` gives it, from their snapshot's text as
    SNAPSHOT_TEXT read it; a dropped, missing or unreadable snapshot is rebuilt from the rows
    as `stored_documents` does."""
    department = ZoneInfo(zone)
    return history_of_text(session, text, rep_id=rep.id, hired_on=hire_day(rep, department),
                           zone=department, accounts_held=accounts_held, now=now)


def history_of_text(session: Session, text: str | None, *, rep_id: int, hired_on: date,
                    zone: tzinfo, accounts_held: int, now: datetime) -> RepHistory:
    """`history_from_text` for a caller that read the rep's hire day (`hire_day`) and
    holdings itself."""
    facts = None if text is None else _snapshot_facts_of(text)
    if facts is None:
        facts = snapshot_facts(stored_documents(session, [rep_id], now)[rep_id])
    return history_at(facts, rep_id=rep_id, hired_on=hired_on, zone=zone,
                      accounts_held=accounts_held, now=now)


def readable_snapshot(text: str | None) -> bool:
    """Whether `history_of_text` reads the rep's history from this text alone (no rows)."""
    return text is not None and _snapshot_facts_of(text) is not None


@functools.lru_cache(maxsize=256)
def _snapshot_facts_of(text: str) -> SnapshotFacts | None:
    # The facts are a function of the text alone (nothing that depends on `now` or on other
    # rows), so a process keeps them per text: a changed snapshot is another text, and a
    # stale one can never be served. None: a text this code cannot read (it is rebuilt).
    try:
        return snapshot_facts(json.loads(text))
    except (SnapshotFormatError, ValueError):
        return None


def refresh_track_records(session: Session, now: datetime, *, batch: int = 200) -> int:
    """Rebuild the missing snapshots of active reps, a batch per transaction; how many."""
    rebuilt, after = 0, 0
    # Current: not dropped, and of this code's format (a deploy that changes it rebuilds all).
    stored = select(TrackRecordSnapshot.rep_id).where(
        TrackRecordSnapshot.history.is_not(None),
        TrackRecordSnapshot.history["format"].as_integer() == SNAPSHOT_FORMAT)
    while True:
        with unit_of_work(session):
            rep_ids = list(session.scalars(
                select(User.id).where(User.role == Role.REP, User.is_active, User.id > after,
                                      User.id.not_in(stored))
                .order_by(User.id).limit(batch)))
            if rep_ids:
                _rebuild(session, rep_ids, now)
        rebuilt += len(rep_ids)
        if len(rep_ids) < batch:
            return rebuilt
        after = rep_ids[-1]


# --- dropping snapshots where their rows change ------------------------------------------

# The rows a snapshot is built from, and the column naming each one's rep.
_REP_COLUMN = {Opportunity: "rep_id", MonthlyForecast: "rep_id",
               AccountabilityIncident: "rep_id", AccountReview: "rep_id", Filing: "from_rep_id"}


def _reps_of(instance: Any, column: str) -> set[int]:
    """The rep the row names now and, if that changed in this flush, the one it named before."""
    return _values_of(instance, column)


def _values_of(instance: Any, column: str) -> set[int]:
    """The value of `column` now and, if this flush changed it, before (None left out).

    get_history, not inspect(instance).attrs: that builds and keeps an AttributeState for
    every attribute of every row flushed, for as long as the session holds the row."""
    history = get_history(instance, column)
    return {value for value in (*history.sum(), getattr(instance, column)) if value is not None}


def _promise_changes(instance: Any, is_new: bool, bids: set[int], listings: set[int]) -> None:
    """Collect what a flushed row changes about promises: a decision's bid, a bid's
    commitment, a listing's award taking effect (its status or applied_at). A new bid or
    listing has no decision yet, so placing bids and releasing accounts costs nothing here."""
    kind = type(instance)
    if kind is Decision:
        bids |= _values_of(instance, "bid_id")
    elif is_new:
        return
    elif kind is Bid and get_history(instance, "committed_revenue_yuan").has_changes():
        bids.add(instance.id)
    elif kind is Listing and (get_history(instance, "status").has_changes()
                              or get_history(instance, "applied_at").has_changes()):
        listings.add(instance.id)


def _reps_with_changed_promises(session: Session, bids: set[int],
                                listings: set[int]) -> set[int]:
    """The bidders of these bids whose listing took effect, and of the bids these listings'
    decisions chose: a promise exists only once an award took effect."""
    if not bids and not listings:
        return set()
    return set(session.scalars(
        select(Bid.rep_id).join(Listing, Listing.id == Bid.listing_id)
        .outerjoin(Decision, Decision.bid_id == Bid.id)
        .where((Bid.id.in_(sorted(bids)) & Listing.applied_at.is_not(None))
               | Decision.listing_id.in_(sorted(listings)))))


def reps_with_changed_history(session: Session) -> set[int]:
    """The reps whose snapshot rows this flush writes, changes or deletes."""
    reps: set[int] = set()
    opportunities: set[int] = set()
    accounts: set[int] = set()
    bids: set[int] = set()
    listings: set[int] = set()
    # Each of session.new and session.dirty walks every object the session holds: asked once,
    # not once per object (a CRM import flushes thousands of new rows at a time).
    new, dirty = session.new, session.dirty
    for instance in (*new, *dirty, *session.deleted):
        kind = type(instance)
        if instance in dirty and not session.is_modified(instance):
            continue
        _promise_changes(instance, instance in new, bids, listings)
        if kind in _REP_COLUMN:
            reps |= _reps_of(instance, _REP_COLUMN[kind])
        elif kind is OpportunityStageChange:
            history = get_history(instance, "opportunity_id")
            opportunities.update(value for value in (*history.sum(), instance.opportunity_id)
                                 if value is not None)
        elif kind is Account and get_history(instance, "industry").has_changes():
            accounts.add(instance.id)  # an opportunity's industry is its account's
    if opportunities or accounts:
        reps.update(session.scalars(select(Opportunity.rep_id).where(
            Opportunity.id.in_(sorted(opportunities))
            | Opportunity.account_id.in_(sorted(accounts)))))
    return reps | _reps_with_changed_promises(session, bids, listings)


@event.listens_for(Session, "after_flush")
def _forget_changed_histories(session: Session, _flush_context: Any) -> None:
    # After the flush, so new rows have their ids and the reps they name exist; the attribute
    # histories still show what the flush changed. Same transaction as the change.
    reps = reps_with_changed_history(session)
    if reps:
        forget_track_record_snapshots(session, reps)


def account_facts(account: Account) -> AccountFacts:
    return AccountFacts(account_id=account.id, industry=account.industry,
                        branch=account.branch.code, annual_value_yuan=account.annual_value_yuan)


def fresh_track_record(
    session: Session, rep: User, account: Account, now: datetime, *,
    zone: str = Defaults.TIMEZONE,
) -> dict[str, float | None]:
    """The track record worked out from the rows themselves (what the snapshot must equal)."""
    history = rep_histories(session, [rep], now, zone=zone)[rep.id]
    return track_record(history, account_facts(account), now)


def snapshot_track_record(
    session: Session, rep: User, account: Account, now: datetime, *,
    zone: str = Defaults.TIMEZONE,
) -> dict[str, float | None]:
    """The track record a bid freezes, from the rep's stored snapshot (rebuilt if missing)."""
    history = stored_histories(session, [rep], now, zone=zone)[rep.id]
    return track_record(history, account_facts(account), now)


def last_release_by(session: Session, rep_ids: Iterable[int], account_ids: Iterable[int]) -> dict:
    """When each rep last gave up each account (released from them or transferred away)."""
    rep_ids, account_ids = list(rep_ids), list(account_ids)
    latest: dict[tuple[int, int], datetime] = {}
    for rep_id, account_id, at in session.execute(
        select(Listing.released_from_id, Listing.account_id, Listing.created_at)
        .where(Listing.released_from_id.in_(rep_ids), Listing.account_id.in_(account_ids))
    ):
        key = (rep_id, account_id)
        latest[key] = max(at, latest.get(key, at))
    for rep_id, account_id, at in session.execute(
        select(Filing.from_rep_id, Filing.account_id, Filing.decided_at)
        .where(Filing.from_rep_id.in_(rep_ids), Filing.account_id.in_(account_ids))
    ):
        key = (rep_id, account_id)
        latest[key] = max(at, latest.get(key, at))
    return latest


def unavailable(rep: User) -> str:
    """Why the rep may no longer hold accounts (`unavailability`), "" when they may."""
    return unavailability(has_left=rep.status == RepStatus.LEFT, is_active=rep.is_active,
                          is_rep=rep.role == Role.REP)


def hire_day(rep: Any, zone: tzinfo) -> date:
    """The day a rep's tenure counts from, in the department's time zone `zone`: their hiring
    date, else the day (there) their user was made. `rep` is a User or a row with its
    `hired_on` and `created_at`."""
    return rep.hired_on or rep.created_at.astimezone(zone).date()


def tenure_counted_from(rep: Any, zone: tzinfo) -> datetime:
    """The moment a rep's tenure is counted from: the start of their hire day (`hire_day`) in
    the department's time zone `zone`, as a time in that zone."""
    return day_start(hire_day(rep, zone), zone)


def tenure_in_months(rep: Any, now: datetime, zone: tzinfo) -> float:
    """The rep's tenure at `now`, in months, counted as the metric and the checks count it."""
    return months_since_day(hire_day(rep, zone), now, zone)


def bid_facts(session: Session, bids: list[Bid], now: datetime, *,
              zone: str = Defaults.TIMEZONE) -> list[BidFacts]:
    """Bids as the scoring engine sees them: frozen track record plus facts read `now`;
    tenure counts in the department's time zone `zone`."""
    department = ZoneInfo(zone)
    reps = {bid.rep_id: bid.rep for bid in bids}
    held = accounts_held_by(session, reps)
    open_incidents = dict(session.execute(
        select(AccountabilityIncident.rep_id, func.count())
        .where(AccountabilityIncident.rep_id.in_(list(reps)),
               AccountabilityIncident.status.in_(sorted(INCIDENT_STATUSES_AGAINST_REP)),
               AccountabilityIncident.seen_at <= now)
        .group_by(AccountabilityIncident.rep_id)).all())
    releases = last_release_by(session, reps, {bid.listing.account_id for bid in bids})
    facts = []
    for bid in bids:
        rep, listing = bid.rep, bid.listing
        released_at = releases.get((rep.id, listing.account_id))
        facts.append(BidFacts(
            bid_id=bid.id, rep_id=rep.id, listing_id=listing.id, submitted_at=bid.submitted_at,
            metrics=dict(bid.track_record), accounts_held=held.get(rep.id, 0),
            tenure_months=round(tenure_in_months(rep, now, department), 4),
            open_incidents=open_incidents.get(rep.id, 0),
            rep_branch=rep.branch.code if rep.branch else "",
            listing_branch=listing.account.branch.code,
            is_on_leave=rep.status != RepStatus.ACTIVE,
            unavailable=unavailable(rep), is_departure_checked=True,
            months_since_rep_released_account=(
                None if released_at is None else round(months_between(released_at, now), 4)),
            listing_value_yuan=listing.account.annual_value_yuan,
            preference_rank=bid.preference_rank,
        ))
    return facts


@dataclass(frozen=True)
class Standing:
    """What `bid_facts` reads of one rep that is the same for every listing: a page checking
    many listings for one rep reads it once (`standing_of`) and builds each listing's facts
    with `prospect_facts`, which gives what bid_facts gives for a bid not yet stored."""

    rep_id: int
    accounts_held: int
    tenure_months: float
    open_incidents: int
    rep_branch: str
    is_on_leave: bool
    unavailable: str
    released_at: dict[int, datetime]  # account id -> when the rep last gave it up
    tenure_counted_from: datetime  # tenure_counted_from(rep, zone): where tenure counts from


def _standing(accounts_a: Any, accounts_b: Any) -> Select:
    """The rep's holdings and open incidents, then when they gave up each of the accounts
    (released from them into a round, or transferred away from them, as last_release_by
    reads them): one row per release with the counts on each, or one row of counts and no
    release."""
    counts = select(
        select(func.count()).select_from(Account).where(Account.owner_id == bindparam("rep_a"))
        .scalar_subquery().label("held"),
        select(func.count()).select_from(AccountabilityIncident)
        .where(AccountabilityIncident.rep_id == bindparam("rep_b"),
               # One bound value each, not an expanding list: a statement with one is
               # rewritten (its SQL searched and spliced) on every execution.
               AccountabilityIncident.status.in_(
                   [literal(status) for status in sorted(INCIDENT_STATUSES_AGAINST_REP)]),
               AccountabilityIncident.seen_at <= bindparam("now")).scalar_subquery()
        .label("open_incidents")).subquery("counts")
    releases = union_all(
        select(Listing.account_id, Listing.created_at.label("released_at"))
        .where(Listing.released_from_id == bindparam("rep_c"), Listing.account_id.in_(accounts_a)),
        select(Filing.account_id, Filing.decided_at)
        .where(Filing.from_rep_id == bindparam("rep_d"), Filing.account_id.in_(accounts_b))
    ).subquery("releases")
    return (select(counts.c.held, counts.c.open_incidents, releases.c.account_id,
                   releases.c.released_at)
            .select_from(counts.outerjoin(releases, true())))


# Built once: building a statement costs several times what running it does here, and a page
# asks for one rep's standing on every request.
_STANDING_WITH_ACCOUNTS = _standing(bindparam("accounts_a", expanding=True),
                                    bindparam("accounts_b", expanding=True))
STANDING_IN_ROUND = _standing(
    select(Listing.account_id).where(Listing.round_id == bindparam("round_a")),
    select(Listing.account_id).where(Listing.round_id == bindparam("round_b")))


def standing_of(session: Session, rep: User, now: datetime, *,
                account_ids: Iterable[int] = (), round_id: int | None = None,
                zone: str = Defaults.TIMEZONE) -> Standing:
    """The rep's standing `now`, with their last release of each of `account_ids`, or of each
    account listed in round `round_id`; tenure counts in the department's time zone `zone`.
    One statement, whatever the number of accounts."""
    # On the session's connection, flushed first as session.execute would (autoflush): the
    # same answers without the ORM's per-statement work (these are plain rows).
    if session.autoflush:
        session.flush()
    if round_id is not None:
        statement = STANDING_IN_ROUND
        params = standing_in_round_params(rep, round_id, now)
    else:
        params = {"rep_a": rep.id, "rep_b": rep.id, "rep_c": rep.id, "rep_d": rep.id, "now": now}
        statement = _STANDING_WITH_ACCOUNTS
        accounts = sorted(set(account_ids))
        params.update(accounts_a=accounts, accounts_b=accounts)
    return standing_from_rows(rep, now, session.connection().execute(statement, params).all(),
                              zone=zone)


def standing_in_round_params(rep: User, round_id: int, now: datetime) -> dict[str, Any]:
    """The parameters of STANDING_IN_ROUND (a statement may hold it as a subquery)."""
    return {"rep_a": rep.id, "rep_b": rep.id, "rep_c": rep.id, "rep_d": rep.id, "now": now,
            "round_a": round_id, "round_b": round_id}


def standing_from_rows(rep: User, now: datetime, rows: Sequence[Sequence[Any]], *,
                       zone: str = Defaults.TIMEZONE) -> Standing:
    """The rep's standing from the rows of a standing statement (held, open incidents, account
    id, released at; one row at least), which may end other columns' rows; tenure counts in
    the department's time zone `zone`."""
    held, open_incidents = rows[0][-4:-2]  # the counts are on every row, and there is one
    released_at: dict[int, datetime] = {}
    for row in rows:
        account_id, at = row[-2:]
        if account_id is not None:
            released_at[account_id] = max(at, released_at.get(account_id, at))
    department = ZoneInfo(zone)
    return Standing(rep_id=rep.id, accounts_held=held or 0,
                    tenure_months=round(tenure_in_months(rep, now, department), 4),
                    open_incidents=open_incidents or 0,
                    rep_branch=rep.branch.code if rep.branch else "",
                    is_on_leave=rep.status != RepStatus.ACTIVE, unavailable=unavailable(rep),
                    released_at=released_at,
                    tenure_counted_from=tenure_counted_from(rep, department))


def prospect_facts(standing: Standing, listing_id: int, account_id: int, listing_branch: str,
                   listing_value_yuan: int, now: datetime) -> BidFacts:
    """The facts of a bid the rep would place now for the listing (no track record: the
    eligibility checks read none), equal to bid_facts' for such a bid."""
    return BidFacts(
        bid_id=0, rep_id=standing.rep_id, listing_id=listing_id, submitted_at=now, metrics={},
        accounts_held=standing.accounts_held, tenure_months=standing.tenure_months,
        open_incidents=standing.open_incidents, rep_branch=standing.rep_branch,
        listing_branch=listing_branch, is_on_leave=standing.is_on_leave,
        months_since_rep_released_account=_months_since_release(standing, account_id, now),
        listing_value_yuan=listing_value_yuan, preference_rank=None,
        unavailable=standing.unavailable, is_departure_checked=True)


def prospect_checked_facts(standing: Standing, account_id: int, listing_branch: str,
                           now: datetime) -> CheckedFacts:
    """What the eligibility checks read of prospect_facts' bid, the same values."""
    return CheckedFacts(
        standing.accounts_held, standing.tenure_months, standing.open_incidents,
        standing.rep_branch, listing_branch, standing.is_on_leave,
        _months_since_release(standing, account_id, now), standing.unavailable, True)


def _months_since_release(standing: Standing, account_id: int, now: datetime) -> float | None:
    released_at = standing.released_at.get(account_id)
    return None if released_at is None else round(months_between(released_at, now), 4)


def bid_facts_to_dict(facts: BidFacts) -> dict:
    return {
        "bid_id": facts.bid_id, "rep_id": facts.rep_id, "listing_id": facts.listing_id,
        "submitted_at": facts.submitted_at.isoformat(), "metrics": facts.metrics,
        "accounts_held": facts.accounts_held, "tenure_months": facts.tenure_months,
        "open_incidents": facts.open_incidents, "rep_branch": facts.rep_branch,
        "listing_branch": facts.listing_branch, "is_on_leave": facts.is_on_leave,
        "months_since_rep_released_account": facts.months_since_rep_released_account,
        "listing_value_yuan": facts.listing_value_yuan, "preference_rank": facts.preference_rank,
        "unavailable": facts.unavailable, "is_departure_checked": facts.is_departure_checked,
    }


def bid_facts_from_dict(data: dict) -> BidFacts:
    return BidFacts(**{**data, "submitted_at": datetime.fromisoformat(data["submitted_at"])})
