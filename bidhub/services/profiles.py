"""A rep's track record page: holdings against capacity, funnel, forecasts, incidents,
promises, bids."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, select
from sqlalchemy.orm import Session, joinedload

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
from bidhub.models import Account, AccountabilityIncident, Bid, Listing, Role, Round, User
from bidhub.services.policies import BidOutcome, bid_outcomes, bids_are_sealed
from bidhub.services.rule_sets import active_rule_set, parsed
from bidhub.services.track_records import stored_histories

# The profile's metrics do not depend on a particular account; industry experience does.
NO_ACCOUNT = AccountFacts(account_id=0, industry="", branch="", annual_value_yuan=0)


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
    bids: list[Bid]
    outcomes: dict[int, BidOutcome]  # by bid id, from the decision record
    promises: list[PromiseRow]  # newest first
    account_names: dict[int, str]  # by account id, for the promises' accounts


def rep_profile(session: Session, rep_id: int, now: datetime, *,
                include_sealed_bids: bool) -> RepProfile:
    """The rep's page. Bids in rounds still open are sealed: only the rep may see them."""
    rep = session.get(User, rep_id)
    if rep is None or rep.role != Role.REP:
        raise NotFound(N_("No such rep."))
    history = stored_histories(session, [rep], now)[rep.id]
    rules = parsed(active_rule_set(session))
    record = track_record(history, NO_ACCOUNT, now)
    incidents = list(session.execute(
        select(AccountabilityIncident.seen_at, Account.name.label("account_name"),
               AccountabilityIncident.competitor_site, AccountabilityIncident.ad_type,
               AccountabilityIncident.status)
        .join(Account, Account.id == AccountabilityIncident.account_id)
        .where(AccountabilityIncident.rep_id == rep.id)
        .order_by(AccountabilityIncident.seen_at.desc())))
    # One query; a round's rules (their whole text) and branch are not shown here.
    round_path = joinedload(Bid.listing, innerjoin=True).joinedload(Listing.round, innerjoin=True)
    bids = list(session.scalars(
        select(Bid).where(Bid.rep_id == rep.id).order_by(Bid.submitted_at.desc())
        .options(round_path.lazyload(Round.rule_set), round_path.lazyload(Round.branch),
                 joinedload(Bid.score))))
    if not include_sealed_bids:
        bids = [bid for bid in bids if not bids_are_sealed(bid.listing.round)]
    # A promise is a won bid (never sealed), so the bids just read name its account: no query
    # of its own.
    account_names = {bid.listing.account_id: bid.listing.account.name for bid in bids}
    return RepProfile(
        rep=rep, accounts_held=history.accounts_held,
        capacity_target=rules.eligibility.capacity_target,
        capacity_max=rules.eligibility.capacity_max,
        metrics=[(name, METRICS[name].label, value) for name, value in record.items()
                 if name != "industry_experience"],
        open_by_stage={stage.value: count for stage, count in funnel_counts(history, now).items()},
        funnel=funnel_conversion(history, now), forecasts=forecast_rows(history, now, months=12),
        incidents=incidents, bids=bids, outcomes=bid_outcomes(session, bids),
        promises=promise_rows(history, now)[::-1], account_names=account_names)
