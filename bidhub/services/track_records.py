"""Turning a rep's rows into domain facts: history for metrics, and bids for scoring."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, selectinload

from bidhub.domain.facts import (
    INCIDENT_STATUSES_AGAINST_REP,
    AccountFacts,
    BidFacts,
    ForecastFact,
    IncidentFact,
    LostAccountFact,
    OpportunityFact,
    RepHistory,
    Stage,
    StageChange,
)
from bidhub.domain.metrics import months_between, track_record
from bidhub.models import (
    Account,
    AccountabilityIncident,
    AccountReview,
    Bid,
    Filing,
    Listing,
    LossReviewStatus,
    MonthlyForecast,
    Opportunity,
    RepStatus,
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


def rep_histories(session: Session, reps: list[User], now: datetime) -> dict[int, RepHistory]:
    """Histories of several reps with a fixed number of queries."""
    rep_ids = [rep.id for rep in reps]
    held = accounts_held_by(session, rep_ids)
    opportunities: dict[int, list[OpportunityFact]] = defaultdict(list)
    for opportunity in session.scalars(
        select(Opportunity).where(Opportunity.rep_id.in_(rep_ids))
        .options(selectinload(Opportunity.stage_changes), selectinload(Opportunity.account))
    ):
        opportunities[opportunity.rep_id].append(OpportunityFact(
            opportunity_id=opportunity.id, account_id=opportunity.account_id,
            industry=opportunity.account.industry, amount_yuan=opportunity.amount_yuan,
            stage=Stage(opportunity.stage), opened_at=opportunity.opened_at,
            closed_at=opportunity.closed_at,
            history=tuple(StageChange(Stage(change.stage), change.changed_at)
                          for change in opportunity.stage_changes),
        ))
    incidents: dict[int, list[IncidentFact]] = defaultdict(list)
    for incident in session.scalars(
        select(AccountabilityIncident).where(AccountabilityIncident.rep_id.in_(rep_ids))
    ):
        incidents[incident.rep_id].append(IncidentFact(
            incident.id, incident.account_id, incident.seen_at, incident.status,
            incident.resolved_at))
    forecasts: dict[int, list[ForecastFact]] = defaultdict(list)
    for forecast in session.scalars(
        select(MonthlyForecast).where(MonthlyForecast.rep_id.in_(rep_ids))
        .order_by(MonthlyForecast.month)
    ):
        forecasts[forecast.rep_id].append(ForecastFact(forecast.month, forecast.forecast_yuan,
                                                       forecast.actual_yuan))
    reviewed_filings, reviewed_accounts = reviewed_losses(session, rep_ids, now)
    lost: dict[int, list[LostAccountFact]] = defaultdict(list)
    for filing in session.scalars(select(Filing).where(Filing.from_rep_id.in_(rep_ids))):
        lost[filing.from_rep_id].append(LostAccountFact(
            filing.account_id, filing.decided_at,
            filing.seq in reviewed_filings
            or (filing.from_rep_id, filing.account_id) in reviewed_accounts))
    return {
        rep.id: RepHistory(
            rep_id=rep.id, hired_on=rep.hired_on or rep.created_at.date(),
            accounts_held=held[rep.id], opportunities=tuple(opportunities[rep.id]),
            forecasts=tuple(forecasts[rep.id]), incidents=tuple(incidents[rep.id]),
            lost_accounts=tuple(lost[rep.id]))
        for rep in reps
    }


def forget_track_record_snapshots(session: Session, rep_ids: Iterable[int] | None = None) -> None:
    """Drop the stored snapshots of these reps (of every rep when None): their CRM rows changed,
    so the next use rebuilds them. Runs inside the caller's transaction."""
    statement = delete(TrackRecordSnapshot)
    if rep_ids is not None:
        statement = statement.where(TrackRecordSnapshot.rep_id.in_(list(rep_ids)))
    session.execute(statement)


def account_facts(account: Account) -> AccountFacts:
    return AccountFacts(account_id=account.id, industry=account.industry,
                        branch=account.branch.code, annual_value_yuan=account.annual_value_yuan)


def snapshot_track_record(
    session: Session, rep: User, account: Account, now: datetime
) -> dict[str, float | None]:
    history = rep_histories(session, [rep], now)[rep.id]
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


def tenure_in_months(rep: User, now: datetime) -> float:
    hired_on: date = rep.hired_on or rep.created_at.date()
    return max(0.0, months_between(datetime(hired_on.year, hired_on.month, hired_on.day,
                                            tzinfo=now.tzinfo), now))


def bid_facts(
    session: Session, bids: list[Bid], now: datetime) -> list[BidFacts]:
    """Bids as the scoring engine sees them: frozen track record plus facts read `now`."""
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
            tenure_months=round(tenure_in_months(rep, now), 4),
            open_incidents=open_incidents.get(rep.id, 0),
            rep_branch=rep.branch.code if rep.branch else "",
            listing_branch=listing.account.branch.code,
            is_on_leave=rep.status != RepStatus.ACTIVE,
            months_since_rep_released_account=(
                None if released_at is None else round(months_between(released_at, now), 4)),
        ))
    return facts


def bid_facts_to_dict(facts: BidFacts) -> dict:
    return {
        "bid_id": facts.bid_id, "rep_id": facts.rep_id, "listing_id": facts.listing_id,
        "submitted_at": facts.submitted_at.isoformat(), "metrics": facts.metrics,
        "accounts_held": facts.accounts_held, "tenure_months": facts.tenure_months,
        "open_incidents": facts.open_incidents, "rep_branch": facts.rep_branch,
        "listing_branch": facts.listing_branch, "is_on_leave": facts.is_on_leave,
        "months_since_rep_released_account": facts.months_since_rep_released_account,
    }


def bid_facts_from_dict(data: dict) -> BidFacts:
    return BidFacts(**{**data, "submitted_at": datetime.fromisoformat(data["submitted_at"])})
