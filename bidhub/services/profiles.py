"""A rep's track record page: holdings against capacity, funnel, forecasts, incidents,
promises, bids."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import (
    Float,
    Integer,
    Text,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from bidhub.config import Defaults
from bidhub.domain.errors import NotFound
from bidhub.domain.facts import AccountFacts
from bidhub.domain.metrics import (
    METRICS,
    ForecastRow,
    FunnelStep,
    PromiseRow,
    forecast_rows,
    promise_rows,
    track_record_figures,
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
    UTCDateTime,
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
    metric_counts: dict[str, dict[str, int]]  # the counts behind the rates, by metric
    open_by_stage: dict[str, int]
    funnel: list[FunnelStep]
    forecasts: list[ForecastRow]
    incidents: list[IncidentLine]  # newest first
    bids: list[BidLine]  # newest first
    promises: list[PromiseRow]  # newest first
    account_names: dict[int, str]  # by account id, for the promises' accounts
    loss_reviews: list[LossReviewLine]


class IncidentLine(NamedTuple):
    seen_at: datetime
    account_name: str
    competitor_site: str
    ad_type: str
    status: str


class LossReviewLine(NamedTuple):
    id: int
    created_at: datetime
    account_name: str
    reason: str
    due_at: datetime | None
    status: str


# The page's four readings (the rep's holdings, the active rules' text and the snapshot; the
# incidents; the bids with score and decision; the loss reviews) as one UNION ALL, built once
# and run on the session's connection: each statement is a round trip (on PostgreSQL also a
# parse and a plan), which cost more than these few rows. Every branch fills the same typed
# columns, tagged by `kind`; the first branch's types decode all rows (UTCDateTime included).
# Each section keeps its own order: incidents and bids newest first, loss reviews in the order
# of loss_reviews.reviews_of_rep (the ones due first, soonest date first, then the rest).
_STANDING, _INCIDENT, _BID, _LOSS_REVIEW = range(4)


def _none(type_):
    # Typed in the first branch: PostgreSQL types a union's columns branch by branch, and
    # two untyped NULLs would already make a text column.
    return cast(null(), type_)


def _order_only(type_):
    # A sort key the page never reads: typed for the database like _none, but given back as
    # it comes, without a datetime made of it on every row.
    return type_coerce(_none(type_), NullType())


def _kind(kind: int):
    return literal_column(str(kind), Integer).label("kind")


def _page_statement():
    rep_id = bindparam("rep_id")
    held = (select(func.count()).select_from(Account).where(Account.owner_id == rep_id)
            .scalar_subquery())
    rules = select(RuleSetVersion.text).where(RuleSetVersion.is_active).limit(1).scalar_subquery()
    number, moment, text_, real = Integer(), UTCDateTime(), Text(), Float()
    # kind, n1..n4, at1, at2, s1..s4, score, then the sort keys: flag, ascending, descending, id
    standing = select(
        _kind(_STANDING), held.label("n1"), _none(number).label("n2"), _none(number).label("n3"),
        _none(number).label("n4"), _none(moment).label("at1"), _none(moment).label("at2"),
        rules.label("s1"), SNAPSHOT_TEXT.label("s2"), _none(text_).label("s3"),
        _none(text_).label("s4"), _none(real).label("score"), _none(number).label("o_flag"),
        _order_only(moment).label("o_asc"), _order_only(moment).label("o_desc"),
        _none(number).label("o_id"))
    incidents = (
        select(_kind(_INCIDENT), null(), null(), null(), null(), AccountabilityIncident.seen_at,
               null(), Account.name, AccountabilityIncident.competitor_site,
               AccountabilityIncident.ad_type, AccountabilityIncident.status, null(), null(),
               null(), AccountabilityIncident.seen_at, null())
        .join(Account, Account.id == AccountabilityIncident.account_id)
        .where(AccountabilityIncident.rep_id == rep_id))
    # A listing has at most one decision (unique), a bid at most one score. They are scalar
    # subqueries rather than outer joins: PostgreSQL plans the union some 0.7 ms faster (of
    # 2.3 ms) without two more tables to order in the join.
    decision = Decision.listing_id == Bid.listing_id
    bids = (
        select(_kind(_BID), Bid.id, Listing.account_id,
               select(Decision.id).where(decision).scalar_subquery(),
               select(Decision.bid_id).where(decision).scalar_subquery(),
               Bid.submitted_at, null(), Bid.status, Account.name, Round.title, Round.status,
               select(BidScore.total).where(BidScore.bid_id == Bid.id).scalar_subquery(),
               null(), null(), Bid.submitted_at, null())
        .join(Listing, Listing.id == Bid.listing_id).join(Round, Round.id == Listing.round_id)
        .join(Account, Account.id == Listing.account_id)
        .where(Bid.rep_id == rep_id))
    reviews = (
        select(_kind(_LOSS_REVIEW), AccountReview.id, null(), null(), null(),
               AccountReview.created_at, AccountReview.due_at, Account.name,
               AccountReview.reason, AccountReview.status, null(), null(),
               case((AccountReview.status != LossReviewStatus.DUE, 1), else_=0),
               AccountReview.due_at, AccountReview.created_at, AccountReview.id)
        .join(Account, Account.id == AccountReview.account_id)
        .where(AccountReview.rep_id == rep_id))
    page = union_all(standing, incidents, bids, reviews)
    columns = page.selected_columns
    return page.order_by(columns.kind, columns.o_flag, columns.o_asc.asc(),
                         columns.o_desc.desc(), columns.o_id.desc())


_PAGE = _page_statement()


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


# A bid's line is a function of the values passed alone (the policies read nothing else), and a
# rep's page shows the same bids on every visit: a process keeps the lines it made.
@functools.lru_cache(maxsize=4096)
def _bid_line(bid_id: int, status: str, submitted_at: datetime, account_name: str,
              round_title: str, round_status: str, score_total: float | None,
              decision_id: int | None, decided_bid_id: int | None) -> BidLine:
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


class _PageRows(NamedTuple):
    held: int
    rules_text: str
    snapshot_text: str | None
    incidents: list[IncidentLine]
    bids: list[BidLine]
    account_names: dict[int, str]  # by account id, of the bids shown
    loss_reviews: list[LossReviewLine]


def _page_rows(session: Session, rep_id: int, include_sealed_bids: bool) -> _PageRows:
    held = rules_text = snapshot_text = None
    incidents, bids, account_names, reviews = [], [], {}, []
    # Unpacked by position: a row's attributes are looked up by name, a dozen times a row.
    for (kind, n1, n2, n3, n4, at1, at2, s1, s2, s3, s4, score, *_order) in (
            session.connection().execute(_PAGE, {"rep_id": rep_id}).all()):
        if kind == _BID:
            if include_sealed_bids or not bids_are_sealed(_Round(s4)):
                bids.append(_bid_line(n1, s1, at1, s2, s3, s4, score, n3, n4))
                account_names[n2] = s2
        elif kind == _LOSS_REVIEW:
            reviews.append(LossReviewLine(n1, at1, s1, s2, at2, s3))
        elif kind == _INCIDENT:
            incidents.append(IncidentLine(at1, s1, s2, s3, s4))
        else:
            held, rules_text, snapshot_text = n1, s1, s2
    return _PageRows(held, rules_text, snapshot_text, incidents, bids, account_names, reviews)


def rep_profile(session: Session, rep_id: int, now: datetime, *, include_sealed_bids: bool,
                zone: str = Defaults.TIMEZONE) -> RepProfile:
    """The rep's page. Bids in rounds still open are sealed: only the rep may see them.
    Tenure counts from the start of the hire day in the department's time zone `zone`."""
    rep = session.get(User, rep_id)
    if rep is None or rep.role != Role.REP:
        raise NotFound(N_("No such rep."))
    rows = _page_rows(session, rep.id, include_sealed_bids)
    history = history_from_text(session, rep, rows.snapshot_text, rows.held, now, zone=zone)
    rules = parsed(_Rules(rows.rules_text))
    # One computation for every figure shown: the rates, the counts beside them and the
    # funnel, as a bid placed now freezes them.
    figures = track_record_figures(history, NO_ACCOUNT, now)
    return RepProfile(
        rep=rep, accounts_held=rows.held,
        capacity_target=rules.eligibility.capacity_target,
        capacity_max=rules.eligibility.capacity_max,
        metrics=[(name, METRICS[name].label, value) for name, value in figures.record.items()
                 if name != "industry_experience"],
        metric_counts=figures.counts,
        open_by_stage={stage.value: count for stage, count in figures.open_by_stage.items()},
        funnel=figures.funnel, forecasts=forecast_rows(history, now, months=12),
        incidents=rows.incidents, bids=rows.bids,
        # A promise is a won bid (never sealed), so the bids just read name its account.
        promises=promise_rows(history, now)[::-1], account_names=rows.account_names,
        loss_reviews=rows.loss_reviews)
