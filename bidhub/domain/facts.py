"""Frozen facts that the services hand to the domain: a rep's history and a bid as scored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from enum import StrEnum


class Stage(StrEnum):
    """Sales funnel stages (销售漏斗) in order; LOST ends an opportunity without a deal."""

    POTENTIAL = "potential"
    INTENT = "intent"
    PROPOSAL = "proposal"
    NEGOTIATION = "negotiation"
    WON = "won"
    LOST = "lost"


# Why a rep may no longer hold accounts, in the order checked: they left the company, their
# user was deactivated, or they are no rep (any more). The ownership change refuses such a
# receiver, and scoring records it for each bid (BidFacts.unavailable).
LEFT, INACTIVE, NOT_REP = "left", "inactive", "not_rep"


def unavailability(*, has_left: bool, is_active: bool, is_rep: bool) -> str:
    """LEFT, INACTIVE or NOT_REP when this person may not hold accounts, "" when they may (a
    rep on leave may: leave is temporary)."""
    if has_left:
        return LEFT
    if not is_active:
        return INACTIVE
    if not is_rep:
        return NOT_REP
    return ""


# Win probability of each open stage; stage x probability gives the weighted pipeline.
# 精耕细作: the handbook's 30 to 40 accounts per rep. Rule files set the band a round uses;
# these are the defaults they start from and the scale of the capacity_headroom metric.
HANDBOOK_CAPACITY_TARGET = 30
HANDBOOK_CAPACITY_MAX = 40

# Incidents that count against a rep: still awaiting an outcome, or upheld by management.
# Explained-and-accepted ones do not. Eligibility's count and the open_incidents metric read this.
INCIDENT_STATUSES_AGAINST_REP = frozenset({"open", "upheld"})

STAGE_PROBABILITY: dict[Stage, float] = {
    Stage.POTENTIAL: 0.10,
    Stage.INTENT: 0.30,
    Stage.PROPOSAL: 0.50,
    Stage.NEGOTIATION: 0.70,
    Stage.WON: 1.00,
    Stage.LOST: 0.0,
}

FUNNEL_ORDER: tuple[Stage, ...] = (
    Stage.POTENTIAL,
    Stage.INTENT,
    Stage.PROPOSAL,
    Stage.NEGOTIATION,
    Stage.WON,
)


@dataclass(frozen=True)
class StageChange:
    stage: Stage
    changed_at: datetime


@dataclass(frozen=True)
class OpportunityFact:
    """One opportunity of a rep; `history` lists every stage it entered, oldest first."""

    opportunity_id: int
    account_id: int
    industry: str
    amount_yuan: int
    stage: Stage
    opened_at: datetime
    closed_at: datetime | None = None
    history: tuple[StageChange, ...] = ()


@dataclass(frozen=True)
class ForecastFact:
    """A rep's revenue forecast and actual for one month (the first day of the month)."""

    month: date
    forecast_yuan: int
    actual_yuan: int | None
    # When the actual became known (None: not known, it counts at every moment); before it the
    # month has no actual. A corrected actual keeps the date it first became known.
    actual_known_at: datetime | None = None

    def actual_at(self, now: datetime) -> int | None:
        if self.actual_known_at is not None and self.actual_known_at > now:
            return None
        return self.actual_yuan


@dataclass(frozen=True)
class IncidentFact:
    """An accountability incident (问责): a held account advertising on a competitor's site."""

    incident_id: int
    account_id: int
    seen_at: datetime
    status: str  # open | explained | accepted | upheld
    resolved_at: datetime | None = None  # accepted or upheld then
    explained_at: datetime | None = None  # the rep's explanation filed then

    @classmethod
    def of_row(cls, incident_id: int, account_id: int, seen_at: datetime, status: str,
               resolved_at: datetime | None, explained_at: datetime | None,
               has_explanation: bool) -> IncidentFact:
        """The fact of a stored incident. An explanation without its date came with a CRM
        import, its date unknown: it stands from the sighting on, as an imported status does,
        and still once management decides the incident in bidhub (upheld, it stood explained
        before the decision, not open)."""
        if explained_at is None and has_explanation and status != "open":
            explained_at = seen_at
        return cls(incident_id, account_id, seen_at, status, resolved_at, explained_at)


@dataclass(frozen=True)
class LostAccountFact:
    """An account the rep held and lost; `is_reviewed` when a written review exists."""

    account_id: int
    lost_at: datetime
    is_reviewed: bool


@dataclass(frozen=True)
class PromiseFact:
    """A promise (承诺): the 12-month revenue a rep committed to in a bid that won, from the
    moment the award took effect (the listing applied with the rep as the new owner)."""

    bid_id: int
    account_id: int
    committed_revenue_yuan: int
    started_at: datetime


@dataclass(frozen=True)
class RepHistory:
    """Everything the metrics may look at for one rep, as of the moment they are computed.

    `hired_on` is a day of the department's calendar and `zone` the department's time zone:
    tenure counts from the start of that day there."""

    rep_id: int
    hired_on: date
    zone: tzinfo
    accounts_held: int
    opportunities: tuple[OpportunityFact, ...] = ()
    forecasts: tuple[ForecastFact, ...] = ()
    incidents: tuple[IncidentFact, ...] = ()
    lost_accounts: tuple[LostAccountFact, ...] = ()
    promises: tuple[PromiseFact, ...] = ()


@dataclass(frozen=True)
class AccountFacts:
    """The account a bid is for, as far as the metrics need it."""

    account_id: int
    industry: str
    branch: str
    annual_value_yuan: int


@dataclass(frozen=True, slots=True)
class BidFacts:
    """One bid as the scoring engine sees it.

    `metrics` is the frozen track record stored with the bid at submission (metric name ->
    value, None where the rep has no data). The other fields are read when the round is
    scored: holdings for capacity, branch and leave status, whether the rep may still hold
    accounts, and when the rep last released or lost this account (for the cooldown).
    """

    bid_id: int
    rep_id: int
    listing_id: int
    submitted_at: datetime
    metrics: dict[str, float | None]
    accounts_held: int
    tenure_months: float
    open_incidents: int
    rep_branch: str
    listing_branch: str
    is_on_leave: bool = False
    months_since_rep_released_account: float | None = None
    # The listed account's annual value (年价值) when the round was scored, for methods that
    # weigh awards by what the account is worth.
    listing_value_yuan: int = 0
    # The rep's own ranking of this bid among their bids in the round (1: first choice),
    # None when unranked; the rules' [preferences] decide whether it counts.
    preference_rank: int | None = None
    # Why the rep may no longer hold accounts when the round was scored (`unavailability`:
    # left, deactivated, no rep), "" when they may. Inputs stored before it was read give "":
    # their on-leave flag covered leaving, and they replay as they were scored.
    unavailable: str = ""
    # Whether `unavailable` fails `on_duty` whatever the rules say about leave (leave is not
    # departure: `exclude_on_leave = false` lets reps on leave win, never reps who left).
    # Scoring sets it; inputs stored before give False and replay as they were scored.
    is_departure_checked: bool = False
