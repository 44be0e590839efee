"""A rep's track record page: holdings against capacity, funnel, forecasts, incidents,
promises, bids."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Row, bindparam, func, select
from sqlalchemy.orm import Session

from bidhub.domain.errors import NotFound
from bidhub.domain.facts import AccountFacts
from bidhub.domain.metrics import (
    METRICS,
    ForecastRow,
    FunnelStep,
    PromiseRow,
    forecast_rows,
    funnel_conversion,
    funnel_counts,
    promise_rows,
    track_record,
)
from bidhub.domain.text import N_
from bidhub.models import (
    Account,
    AccountabilityIncident,
    AccountReview,
    Bid,
    BidScore,
    Decision,
    Listing,
    LossReviewStatus,
    Role,
    Round,
    RoundStatus,
    RuleSetVersion,
    User,
)
from bidhub.services.policies import BidOutcome, bids_are_sealed, outcome_of, results_are_published
from bidhub.services.rule_sets import parsed
from bidhub.services.track_records import SNAPSHOT_TEXT, history_from_text

# The profile's metrics do not depend on a particular account; industry experience does.
NO_ACCOUNT = AccountFacts(account_id=0, industry="", branch="", annual_value_yuan=0)


class BidLine(NamedTuple):
    """One row of the bids table. `score` is None where no score may be shown; `result` is
    a BidOutcome, or `IN_REVIEW` / `SEALED` where the round says more than the outcome."""

    account_name: str
    round_title: str
    submitted_at: datetime
    score: float | None
    result: str


IN_REVIEW = "in_review"
SEALED = "sealed"


@dataclass(frozen=True)
class RepProfile:
    rep: User
    accounts_held: int
    capacity_target: int
    capacity_max: int
    metrics: list[tuple[str, str, float | None]]  # name, label, value
    open_by_stage: dict[str, int]
    funnel: list[FunnelStep]
    forecasts: list[ForecastRow]
    incidents: list[Row]  # seen_at, account_name, competitor_site, ad_type, status
    bids: list[BidLine]  # newest first
    promises: list[PromiseRow]  # newest first
    account_names: dict[int, str]  # by account id, for the promises' accounts
    loss_reviews: list[Row]  # id, created_at, account_name, reason, due_at, status


# Built once and run on the session's connection: the page is read far more often than
# anything else, and building a statement (or the ORM's handling of one) costs more than
# running it here.
_STANDING = select(
    select(func.count()).select_from(Account).where(Account.owner_id == bindparam("rep_id"))
    .scalar_subquery(),
    select(RuleSetVersion.text).where(RuleSetVersion.is_active).limit(1).scalar_subquery(),
    SNAPSHOT_TEXT)
_INCIDENTS = (
    select(AccountabilityIncident.seen_at, Account.name.label("account_name"),
           AccountabilityIncident.competitor_site, AccountabilityIncident.ad_type,
           AccountabilityIncident.status)
    .join(Account, Account.id == AccountabilityIncident.account_id)
    .where(AccountabilityIncident.rep_id == bindparam("rep_id"))
    .order_by(AccountabilityIncident.seen_at.desc()))
# In the order of loss_reviews.reviews_of_rep: the ones due first (soonest date first), then
# the rest.
_LOSS_REVIEWS = (
    select(AccountReview.id, AccountReview.created_at, Account.name.label("account_name"),
           AccountReview.reason, AccountReview.due_at, AccountReview.status)
    .join(Account, Account.id == AccountReview.account_id)
    .where(AccountReview.rep_id == bindparam("rep_id"))
    .order_by(AccountReview.status != LossReviewStatus.DUE, AccountReview.due_at.asc(),
              AccountReview.created_at.desc(), AccountReview.id.desc()))
# A listing has at most one decision (unique), a bid at most one score.
_BIDS = (
    select(Bid.id, Bid.status, Bid.submitted_at, Listing.account_id,
           Account.name.label("account_name"), Round.title.label("round_title"),
           Round.status.label("round_status"), BidScore.total.label("score_total"),
           Decision.id.label("decision_id"), Decision.bid_id.label("decided_bid_id"))
    .join(Listing, Listing.id == Bid.listing_id).join(Round, Round.id == Listing.round_id)
    .join(Account, Account.id == Listing.account_id)
    .outerjoin(BidScore, BidScore.bid_id == Bid.id)
    .outerjoin(Decision, Decision.listing_id == Bid.listing_id)
    .where(Bid.rep_id == bindparam("rep_id"))
    .order_by(Bid.submitted_at.desc()))


# The policies read a round's status, a bid's status, id and round, a decision's bid: these
# carry just that from a plain row, so the page asks the same policies as every other page.
class _Round(NamedTuple):
    status: str


class _Listing(NamedTuple):
    round: _Round


class _Bid(NamedTuple):
    id: int
    status: str
    listing: _Listing


class _Decision(NamedTuple):
    bid_id: int | None


class _Rules(NamedTuple):
    text: str  # all `parsed` reads of a stored version


def _bid_line(row: Row) -> BidLine:
    # Unpacked by position: a row's attributes are looked up by name, a dozen times a row.
    (bid_id, status, submitted_at, _account_id, account_name, round_title, round_status,
     score_total, decision_id, decided_bid_id) = row
    round_ = _Round(round_status)
    outcome = outcome_of(_Bid(bid_id, status, _Listing(round_)),
                         None if decision_id is None else _Decision(decided_bid_id))
    if outcome == BidOutcome.WITHDRAWN:
        result = outcome
    elif round_.status == RoundStatus.IN_REVIEW:
        result = IN_REVIEW
    elif bids_are_sealed(round_):
        result = SEALED
    else:
        result = outcome
    score = score_total if results_are_published(round_) else None
    return BidLine(account_name, round_title, submitted_at, score, result)


def rep_profile(session: Session, rep_id: int, now: datetime, *,
                include_sealed_bids: bool) -> RepProfile:
    """The rep's page. Bids in rounds still open are sealed: only the rep may see them."""
    rep = session.get(User, rep_id)
    if rep is None or rep.role != Role.REP:
        raise NotFound(N_("No such rep."))
    connection = session.connection()
    held, rules_text, snapshot_text = connection.execute(_STANDING, {"rep_id": rep.id}).one()
    history = history_from_text(session, rep, snapshot_text, held, now)
    rules = parsed(_Rules(rules_text))
    record = track_record(history, NO_ACCOUNT, now)
    incidents = connection.execute(_INCIDENTS, {"rep_id": rep.id}).all()
    rows = connection.execute(_BIDS, {"rep_id": rep.id}).all()
    if not include_sealed_bids:
        rows = [row for row in rows if not bids_are_sealed(_Round(row.round_status))]
    # A promise is a won bid (never sealed), so the bids just read name its account: no query
    # of its own.
    account_names = {row.account_id: row.account_name for row in rows}
    return RepProfile(
        rep=rep, accounts_held=held,
        capacity_target=rules.eligibility.capacity_target,
        capacity_max=rules.eligibility.capacity_max,
        metrics=[(name, METRICS[name].label, value) for name, value in record.items()
                 if name != "industry_experience"],
        open_by_stage={stage.value: count for stage, count in funnel_counts(history, now).items()},
        funnel=funnel_conversion(history, now), forecasts=forecast_rows(history, now, months=12),
        incidents=incidents, bids=[_bid_line(row) for row in rows],
        promises=promise_rows(history, now)[::-1], account_names=account_names,
        loss_reviews=connection.execute(_LOSS_REVIEWS, {"rep_id": rep.id}).all())
