"""Track-record metrics: pure functions of a rep's history, named in a registry the rules use.

Conventions every metric follows:

- Everything is "as of `now`": facts dated after `now` are ignored (an opportunity opened
  later, a stage change, incident or loss seen later). An opportunity stood at `now` in the
  stage its history last entered by then (`standing_at`): one won or lost after `now` was
  still open, one won before `now` and lost after it was won, one lost and re-opened after
  `now` was lost.
- "The last N months" is the closed interval [the same time N calendar months before
  `now` on the department's calendar (`RepHistory.zone`), `now`]; the day is clamped to the end of a shorter month (31 March minus one month is
  28/29 February). A "complete month" is a calendar month that ended before the month
  holding `now` began, on the department's calendar (`RepHistory.zone`).
- A metric returns None when the rep has no data for it (a new rep, or nothing in the
  window), so the scoring engine's missing-data rule applies instead of a made-up 0 or 1.
  A real bad result (every opportunity lost) is 0.0, not None.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from itertools import pairwise
from operator import attrgetter
from typing import NamedTuple

from bidhub.domain.facts import (
    FUNNEL_ORDER,
    HANDBOOK_CAPACITY_MAX,
    INCIDENT_STATUSES_AGAINST_REP,
    STAGE_PROBABILITY,
    AccountFacts,
    IncidentFact,
    OpportunityFact,
    PromiseFact,
    RepHistory,
    Stage,
)

MetricFunction = Callable[[RepHistory, AccountFacts, datetime], float | None]

# Per the handbook every lost customer gets a written review; an unreviewed loss counts twice.
UNREVIEWED_LOSS_WEIGHT = 2
# Revenue attainment above this is clipped, so one windfall cannot dominate a score.
MAX_ATTAINMENT = 2.0
# A promise (承诺) covers the 12 months after the award took effect. Kept above this share
# counts as this share: over-delivering on one promise may make up for a small shortfall on
# another, not for a promise missed by half.
PROMISE_MONTHS = 12
MAX_COMMITMENT_KEPT = 1.2

OPEN_STAGES: tuple[Stage, ...] = FUNNEL_ORDER[:-1]
CLOSED_STAGES = frozenset({Stage.WON, Stage.LOST})
_FUNNEL_RANK = {stage: rank for rank, stage in enumerate(FUNNEL_ORDER)}


@dataclass(frozen=True)
class Metric:
    """A named metric: what it measures, over which window, and what it does without data.

    `higher_is_better` is None where the direction is for the rules to decide (accounts held).
    """

    name: str
    label: str
    formula: str
    window: str
    when_missing: str
    compute: MetricFunction
    unit: str = ""
    higher_is_better: bool | None = None


class FunnelStep(NamedTuple):
    """One step of the funnel: how many opportunities reached `from_stage`, how many of them
    went on to `to_stage` (or further), and advanced / entered (None when none entered)."""

    from_stage: Stage
    to_stage: Stage
    entered: int
    advanced: int
    rate: float | None


class PromiseRow(NamedTuple):
    """One promise as of `now`. `ended_at` is when the rep lost the account before the 12
    months were over (the promise stops counting there), else None; `kept` is actual /
    expected capped at MAX_COMMITMENT_KEPT, None before a whole month has elapsed."""

    bid_id: int
    account_id: int
    started_at: datetime
    committed_revenue_yuan: int
    months_elapsed: int
    actual_yuan: int
    expected_yuan: float
    kept: float | None
    ended_at: datetime | None


class ForecastRow(NamedTuple):
    """One complete month of forecast vs. actual; `abs_pct_error` is the error that
    forecast_accuracy averages (None when the month is not usable)."""

    month: date
    forecast_yuan: int | None
    actual_yuan: int | None
    abs_pct_error: float | None


# --- time -------------------------------------------------------------------------------


# The month the checks and the metrics count in: whole days elapsed over this.
DAYS_PER_MONTH = 30.4375


def months_between(start: datetime, end: datetime) -> float:
    return (end - start).days / DAYS_PER_MONTH


def day_start(day: date, zone: tzinfo) -> datetime:
    """The moment `day` begins in `zone`, as a time in that zone."""
    return datetime.combine(day, time(), tzinfo=zone)


def months_since_day(day: date, now: datetime, zone: tzinfo) -> float:
    """Months (of 30.4375 days) from the start of `day` in `zone` until `now`, 0 before it.

    Whole days are counted as the zone's clocks show them (`now` read in the zone, against
    midnight of `day`): the count steps at midnight there, as the department counts days, also
    across a change of the clocks."""
    local = now.astimezone(zone).replace(tzinfo=None)
    return max(0.0, months_between(datetime.combine(day, time()), local))


def months_before(moment: datetime, months: int) -> datetime:
    """The same instant `months` calendar months earlier, the day clamped to the month's end."""
    year, month_index = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    day = min(moment.day, calendar.monthrange(year, month_index + 1)[1])
    return moment.replace(year=year, month=month_index + 1, day=day)


def months_after(moment: datetime, months: int) -> datetime:
    """The same instant `months` calendar months later, the day clamped to the month's end."""
    return months_before(moment, -months)


def whole_months(start: datetime, end: datetime, most: int) -> int:
    """Calendar months from `start` to `end` that are complete (the same instant `n` months
    on is at or before `end`), at most `most`; 0 when `end` is before `start`."""
    count = 0
    while count < most and months_after(start, count + 1) <= end:
        count += 1
    return count


def complete_months(now: datetime, count: int) -> list[date]:
    """First days of the `count` calendar months before the month holding `now`, oldest first."""
    index = now.year * 12 + now.month - 1
    months = []
    for back in range(count, 0, -1):
        year, month_index = divmod(index - back, 12)
        months.append(date(year, month_index + 1, 1))
    return months


def window_start(history: RepHistory, now: datetime, months: int) -> datetime:
    """Where "the last `months` months" up to `now` begins: the same time of day `months`
    calendar months earlier on the department's calendar (`history.zone`), as a CRM export's
    dates are read there. Given in `now`'s zone: the same instant, and comparing it with the
    history's times (in UTC) then needs no conversion of each of them."""
    return months_before(now.astimezone(history.zone), months).astimezone(now.tzinfo)


def _within(moment: datetime | None, since: datetime, now: datetime) -> bool:
    return moment is not None and since <= moment <= now


# --- opportunities as of `now` ----------------------------------------------------------


_CHANGED_AT = attrgetter("changed_at")


def _entered(opportunity: OpportunityFact) -> list:
    """The history's stage changes, oldest first (changes at one moment in the order given)."""
    return sorted(opportunity.history, key=_CHANGED_AT)


def closed_at(opportunity: OpportunityFact) -> datetime | None:
    """When a won or lost opportunity closed: `closed_at`, else the date its history last
    entered its final stage (a deal lost, re-opened and lost again closed the second time);
    None for an open opportunity or an unknown date."""
    if opportunity.stage not in CLOSED_STAGES:
        return None
    if opportunity.closed_at is not None:
        return opportunity.closed_at
    return last_entered(opportunity.history, opportunity.stage)


def last_entered(changes: Iterable, stage: Stage) -> datetime | None:
    """When a deal's stage history (changes with `stage` and `changed_at`) last entered
    `stage`: the start of its last run of that stage, so a deal won, re-opened and won again
    was won the second time; None if the history never entered it."""
    return _last_entry(sorted(changes, key=_CHANGED_AT), stage)


def _last_entry(changes: list, stage: Stage) -> datetime | None:
    """When the last run of `stage` in these changes (oldest first) began; None without one."""
    found = None
    for change in reversed(changes):
        if change.stage == stage:
            found = change.changed_at
        elif found is not None:
            break
    return found


class StageAt(NamedTuple):
    """Where an opportunity stood at a moment, and since when if it stood closed (None for an
    open stage, or a close date nobody knows)."""

    stage: Stage
    closed_at: datetime | None


def standing_at(opportunity: OpportunityFact, now: datetime) -> StageAt | None:
    """Where the opportunity stood at `now`; None if it had not been opened by then.

    The stage history tells: the deal stood in the stage its history last entered by `now`
    (potential before the first change). Its current stage counts from its close date for a
    won or lost deal (from the start if the date is unknown), and from the last change for an
    open one: so a deal won and later lost stood in won between the two, and a deal lost and
    re-opened stood in lost until it was re-opened. Where the close date is after `now` but
    the history shows nothing later, the deal had not reached its final stage yet and stood
    in the last other stage its history entered.
    """
    if opportunity.opened_at > now:
        return None
    changes = _entered(opportunity)
    final = opportunity.stage
    # `closed_at`, read off the changes already in order
    closed = None if final not in CLOSED_STAGES else (
        opportunity.closed_at if opportunity.closed_at is not None
        else _last_entry(changes, final))
    ahead = bool(changes) and changes[-1].changed_at > now  # any change after `now`
    reached_final = final not in CLOSED_STAGES or closed is None or closed <= now
    if not ahead and reached_final:
        return StageAt(final, closed)
    # The final stage had not been entered by `now` (or was left again after it): read the
    # history up to `now`.
    earlier = [change for change in changes if change.changed_at <= now
               and (ahead or change.stage is not final)]
    stage = earlier[-1].stage if earlier else Stage.POTENTIAL
    if stage not in CLOSED_STAGES:
        return StageAt(stage, None)
    return StageAt(stage, _last_entry(earlier, stage))


def stage_at(opportunity: OpportunityFact, now: datetime) -> Stage | None:
    """The stage the opportunity was in at `now` (`standing_at`); None if it had not been
    opened by then."""
    standing = standing_at(opportunity, now)
    return None if standing is None else standing.stage


def furthest_stage(opportunity: OpportunityFact, now: datetime) -> Stage | None:
    """The furthest funnel stage the opportunity had reached by `now` (won counts as every
    stage); one whose history entered won by `now` reached won, even if it was lost later (a
    deal won and then lost); any other lost one reached the furthest open stage in its
    history, at least potential. The funnel and stage conversion both read this."""
    current = stage_at(opportunity, now)
    if current is None or current is Stage.WON:
        return current
    if any(change.stage is Stage.WON and change.changed_at <= now
           for change in opportunity.history):
        return Stage.WON
    reached = [change.stage for change in opportunity.history
               if change.changed_at <= now and change.stage in OPEN_STAGES]
    if current is not Stage.LOST:
        reached.append(current)
    return max(reached, key=_FUNNEL_RANK.__getitem__, default=Stage.POTENTIAL)


def _opportunities_by(history: RepHistory, now: datetime) -> list[OpportunityFact]:
    return [opp for opp in history.opportunities if opp.opened_at <= now]


def _closed_in_window(history: RepHistory, since: datetime, now: datetime):
    """(opportunity, stage) for opportunities that stood won or lost at `now` and closed so
    within [since, now] (`standing_at`: a deal won and lost after `now` was won then)."""
    for opportunity in history.opportunities:
        standing = standing_at(opportunity, now)
        if (standing is not None and standing.stage in CLOSED_STAGES
                and _within(standing.closed_at, since, now)):
            yield opportunity, standing.stage


def funnel_counts(history: RepHistory, now: datetime) -> dict[Stage, int]:
    """How many of the rep's opportunities sit in each open stage at `now` (all four stages,
    in funnel order, zeros included); no window: an old open opportunity is still open."""
    counts = dict.fromkeys(OPEN_STAGES, 0)
    for opportunity in history.opportunities:
        stage = stage_at(opportunity, now)
        if stage in counts:
            counts[stage] += 1
    return counts


def funnel_conversion(history: RepHistory, now: datetime, months: int = 12) -> list[FunnelStep]:
    """Stage-to-stage conversion over opportunities opened in the last `months` months.

    For each consecutive pair of FUNNEL_ORDER: entered = opportunities whose furthest stage
    by `now` is `from_stage` or later; advanced = those whose furthest stage is `to_stage` or
    later (skipping a stage counts as passing it, and a deal won and later lost reached won,
    as stage conversion counts it: `furthest_stage`); rate = advanced / entered, None when
    nothing entered. Opportunities still open are included, so a young pipeline shows low
    rates on this page; the stage_conversion metric counts closed ones only.
    """
    since = window_start(history, now, months)
    reached = [furthest_stage(opp, now) for opp in history.opportunities
               if _within(opp.opened_at, since, now)]
    ranks = [_FUNNEL_RANK[stage] for stage in reached if stage is not None]
    steps = []
    for rank, (from_stage, to_stage) in enumerate(pairwise(FUNNEL_ORDER)):
        entered = sum(1 for value in ranks if value >= rank)
        advanced = sum(1 for value in ranks if value >= rank + 1)
        steps.append(FunnelStep(from_stage, to_stage, entered, advanced,
                                advanced / entered if entered else None))
    return steps


# --- forecasts --------------------------------------------------------------------------


def month_error(forecast_yuan: int | None, actual_yuan: int | None) -> float | None:
    """|actual - forecast| / forecast, capped at 1 (a miss of 100% or more is a miss).

    Forecast 0: actual 0 is a perfect month (0.0), any actual is a full miss (1.0).
    None (the month is skipped) when the forecast or the actual is missing.
    """
    if forecast_yuan is None or actual_yuan is None:
        return None
    if forecast_yuan <= 0:
        return 0.0 if actual_yuan == 0 else 1.0
    return min(1.0, abs(actual_yuan - forecast_yuan) / forecast_yuan)


def forecast_rows(history: RepHistory, now: datetime, months: int = 6) -> list[ForecastRow]:
    """One row per complete month in the window, oldest first, gaps included (None values).

    Several facts for one month are added together (the actual is known if any is);
    a fact's month is read as its calendar month whatever its day. Months are the
    department's (`history.zone`): from 00:00 on the 1st there, the month before is complete.
    """
    wanted = complete_months(now.astimezone(history.zone), months)
    forecast: dict[date, int] = {}
    actual: dict[date, int] = {}
    for fact in history.forecasts:
        month = fact.month.replace(day=1)
        forecast[month] = forecast.get(month, 0) + fact.forecast_yuan
        known = fact.actual_at(now)
        if known is not None:
            actual[month] = actual.get(month, 0) + known
    return [ForecastRow(month, forecast.get(month), actual.get(month),
                        month_error(forecast.get(month), actual.get(month)))
            for month in wanted]


def _usable_months(history: RepHistory, now: datetime) -> list[ForecastRow]:
    return [row for row in forecast_rows(history, now) if row.abs_pct_error is not None]


# --- promises ---------------------------------------------------------------------------


def _promise_row(promise: PromiseFact, won: list[tuple[OpportunityFact, datetime]],
                 losses: list[datetime], now: datetime, zone: tzinfo) -> PromiseRow:
    # Months are counted on the department's calendar, as the other windows are: a promise
    # made at 00:30 on 1 March Beijing time is a month old at 00:30 on 1 April there.
    start = promise.started_at.astimezone(zone)
    ended_at = min((lost_at for lost_at in losses if start < lost_at <= now), default=None)
    end = min(now, months_after(start, PROMISE_MONTHS), ended_at or now)
    months = whole_months(start, end, PROMISE_MONTHS)
    actual = sum(opportunity.amount_yuan for opportunity, won_at in won
                 if start <= won_at <= end)
    expected = promise.committed_revenue_yuan * months / PROMISE_MONTHS
    kept = None if months == 0 else min(MAX_COMMITMENT_KEPT, actual / expected)
    return PromiseRow(promise.bid_id, promise.account_id, promise.started_at,
                      promise.committed_revenue_yuan, months, actual, expected, kept, ended_at)


def promise_rows(history: RepHistory, now: datetime) -> list[PromiseRow]:
    """Each promise started by `now` with a commitment above 0, oldest first, as of `now`.

    The actual revenue is the rep's own opportunities on the account won (closed-won by
    `now`) within [start, end], where end is the earliest of `now`, 12 months after the start
    and the moment the rep lost the account. Expected so far is committed x whole calendar
    months elapsed to that end (at most 12) / 12, on the department's calendar
    (`history.zone`).
    """
    promises = sorted((promise for promise in history.promises
                       if promise.committed_revenue_yuan > 0 and promise.started_at <= now),
                      key=lambda promise: (promise.started_at, promise.bid_id))
    accounts = {promise.account_id for promise in promises}
    won: dict[int, list[tuple[OpportunityFact, datetime]]] = {account_id: []
                                                              for account_id in accounts}
    for opportunity in history.opportunities:
        standing = standing_at(opportunity, now) if opportunity.account_id in won else None
        if (standing is not None and standing.stage is Stage.WON
                and standing.closed_at is not None):
            won[opportunity.account_id].append((opportunity, standing.closed_at))
    losses: dict[int, list[datetime]] = {account_id: [] for account_id in accounts}
    for loss in history.lost_accounts:
        if loss.account_id in losses:
            losses[loss.account_id].append(loss.lost_at)
    return [_promise_row(promise, won[promise.account_id], losses[promise.account_id], now,
                         history.zone)
            for promise in promises]


# --- the metrics ------------------------------------------------------------------------


def win_rate(history: RepHistory, account: AccountFacts, now: datetime) -> float | None:
    """won / (won + lost) over opportunities closed in the last 12 months.

    None when none closed in the window; every one lost is 0.0.
    """
    return _share(_win_counts(history, now))


def _share(counts: dict[str, int]) -> float | None:
    """won / closed from a rate's counts; None when nothing closed."""
    if not counts["closed"]:
        return None
    return counts["won"] / counts["closed"]


def _win_counts(history: RepHistory, now: datetime) -> dict[str, int]:
    """won, and closed (won + lost), over opportunities closed in the last 12 months."""
    outcomes = [stage for _, stage in _closed_in_window(history, window_start(history, now, 12),
                                                         now)]
    return {"won": outcomes.count(Stage.WON), "closed": len(outcomes)}


def accounts_held(history: RepHistory, account: AccountFacts, now: datetime) -> float | None:
    """Accounts the rep holds now; never missing (a new rep holds 0)."""
    return float(history.accounts_held)


def tenure_months(history: RepHistory, account: AccountFacts, now: datetime) -> float | None:
    """Months (of 30.4375 days) since the start of the hire day in the department's time
    zone, 0 for a hire date after `now`."""
    return months_since_day(history.hired_on, now, history.zone)


def incident_status_at(incident: IncidentFact, now: datetime) -> str:
    """The incident's status at `now`: its decision (accepted or upheld) from when it was
    made, the rep's explanation from when it was filed, open before. A status whose date is
    not known (an imported one) holds throughout, as a close date nobody knows does; so does
    the explanation behind an accepted one (only an explanation is accepted)."""
    if incident.resolved_at is None or incident.resolved_at <= now:
        status = incident.status
        if status != "explained" or incident.explained_at is None:
            return status
    if incident.explained_at is not None:
        return "explained" if incident.explained_at <= now else "open"
    return "explained" if incident.status == "accepted" else "open"


def open_incidents(history: RepHistory, account: AccountFacts, now: datetime) -> float | None:
    """Incidents seen by `now` that stood open or upheld at `now` (`incident_status_at`: one
    explained or accepted later still stood open then), all time; never missing."""
    return float(sum(1 for incident in history.incidents
                     if incident.seen_at <= now
                     and incident_status_at(incident, now) in INCIDENT_STATUSES_AGAINST_REP))


def stage_conversion(history: RepHistory, account: AccountFacts, now: datetime) -> float | None:
    """won / closed opportunities that reached intent or later, over opportunities opened in
    the last 12 months and won or lost by `now`.

    Opportunities lost while still potential are left out (qualifying a lead out early is
    not a failed conversion), and open ones are left out (they have not had their chance).
    One lost with no stage history is counted: the file does not say it was lost at
    potential, and a CRM export of current stages alone would otherwise count only wins.
    A deal won and later lost reached won (`furthest_stage`, as the funnel counts it), so it
    counts here, as not won. One number rather than a mean of per-stage rates: with monotone
    counts the product of the step rates telescopes to a single ratio. None when no such
    opportunity exists.
    """
    return _share(_conversion_counts(history, now))


def _conversion_counts(history: RepHistory, now: datetime) -> dict[str, int]:
    """won and closed over the opportunities stage_conversion reads."""
    since = window_start(history, now, 12)
    won = qualified = 0
    for opportunity in history.opportunities:
        if not _within(opportunity.opened_at, since, now):
            continue
        current = stage_at(opportunity, now)
        if current not in CLOSED_STAGES:
            continue
        # A deal won and later lost reached closed-won, past intent: it counts, as not won.
        # A deal lost with no stage history counts too: how far it got is unknown, and leaving
        # every such loss out would read a file of current stages alone as 100% conversion.
        furthest = furthest_stage(opportunity, now)
        if (furthest is None or _FUNNEL_RANK[furthest] < _FUNNEL_RANK[Stage.INTENT]) and (
                opportunity.history or current is not Stage.LOST):
            continue
        qualified += 1
        if current is Stage.WON:
            won += 1
    return {"won": won, "closed": qualified}


def forecast_accuracy(history: RepHistory, account: AccountFacts, now: datetime) -> float | None:
    """1 - mean monthly error over the last 6 complete months, in 0..1.

    A month's error is |actual - forecast| / forecast capped at 1; forecast 0 with actual 0
    is 0 (perfect), forecast 0 with any actual is 1. Months without an actual or without a
    forecast are skipped; None when no month is usable.
    """
    return _accuracy(_usable_months(history, now))


def _accuracy(months: list[ForecastRow]) -> float | None:
    errors = [row.abs_pct_error for row in months]
    if not errors:
        return None
    return min(1.0, max(0.0, 1.0 - sum(errors) / len(errors)))


def revenue_attainment(history: RepHistory, account: AccountFacts,
                       now: datetime) -> float | None:
    """sum(actual) / sum(forecast) over the last 6 complete months that have both, clipped to
    0..2; None when those forecasts sum to 0 (no usable month, or only zero forecasts)."""
    return _attainment(_forecast_sums(_usable_months(history, now)))


def _forecast_sums(months: list[ForecastRow]) -> dict[str, int]:
    """The usable months, and their actuals and forecasts added up."""
    return {"months": len(months), "actual_yuan": sum(row.actual_yuan or 0 for row in months),
            "forecast_yuan": sum(row.forecast_yuan or 0 for row in months)}


def _attainment(sums: dict[str, int]) -> float | None:
    if sums["forecast_yuan"] <= 0:
        return None
    return min(MAX_ATTAINMENT, max(0.0, sums["actual_yuan"] / sums["forecast_yuan"]))


def weighted_pipeline(history: RepHistory, account: AccountFacts,
                      now: datetime) -> float | None:
    """sum(amount_yuan x STAGE_PROBABILITY[stage]) over opportunities open at `now`, in yuan.

    No window. 0.0 when the rep has opportunities but none open; None when the rep has never
    had an opportunity (a new rep is not scored as having an empty pipeline).
    """
    opened = _opportunities_by(history, now)
    if not opened:
        return None
    total = 0.0
    for opportunity in opened:
        stage = stage_at(opportunity, now)
        if stage in OPEN_STAGES:
            total += opportunity.amount_yuan * STAGE_PROBABILITY[stage]
    return total


def _industry_key(industry: str) -> str:
    return industry.strip().casefold()


def industry_experience(history: RepHistory, account: AccountFacts,
                        now: datetime) -> float | None:
    """won amount in account.industry / all won amount, over opportunities won in the last
    24 months (industries compared ignoring case and surrounding spaces), in 0..1.

    None when the rep won no revenue in the window, or the account has no industry.
    """
    target = _industry_key(account.industry)
    if not target:
        return None
    total = in_industry = 0
    for opportunity, stage in _closed_in_window(history, window_start(history, now, 24), now):
        if stage is not Stage.WON:
            continue
        total += opportunity.amount_yuan
        if _industry_key(opportunity.industry) == target:
            in_industry += opportunity.amount_yuan
    if total <= 0:
        return None
    return in_industry / total


def capacity_headroom(history: RepHistory, account: AccountFacts,
                      now: datetime) -> float | None:
    """max(0, 40 - accounts held now): free places below the handbook's usual maximum of 40,
    in accounts. Never missing; the rules decide how much headroom matters."""
    return float(max(0, HANDBOOK_CAPACITY_MAX - history.accounts_held))


def accountability_incidents(history: RepHistory, account: AccountFacts,
                             now: datetime) -> float | None:
    """Count of incidents seen in the last 6 months, any status.

    None when there was nothing to watch: the rep holds no account now, lost none in the
    window and had no incident in it (a rep without accounts cannot earn a clean record).
    """
    since = window_start(history, now, 6)
    seen = sum(1 for incident in history.incidents if _within(incident.seen_at, since, now))
    lost = any(_within(loss.lost_at, since, now) for loss in history.lost_accounts)
    if not seen and not lost and history.accounts_held == 0:
        return None
    return float(seen)


def retention(history: RepHistory, account: AccountFacts, now: datetime) -> float | None:
    """1 - weighted losses / (accounts held now + accounts lost), over losses in the last
    12 months, clipped to 0..1. A loss counts 1 with the rep's written review (submitted by
    `now`, or closed) and 2 without.

    None only when the rep holds nothing now and lost nothing in the window (nothing to keep).
    """
    return _retained(_retention_counts(history, now))


def _retention_counts(history: RepHistory, now: datetime) -> dict[str, int]:
    """Accounts held now, accounts lost in the last 12 months, and those of them whose review
    the rep had not written by `now`."""
    since = window_start(history, now, 12)
    losses = [loss for loss in history.lost_accounts if _within(loss.lost_at, since, now)]
    return {"held": history.accounts_held, "lost": len(losses),
            "unreviewed": sum(1 for loss in losses if not loss.is_reviewed)}


def _retained(counts: dict[str, int]) -> float | None:
    base = counts["held"] + counts["lost"]
    if base == 0:
        return None
    weighted = (counts["lost"] - counts["unreviewed"]
                + UNREVIEWED_LOSS_WEIGHT * counts["unreviewed"])
    return max(0.0, 1.0 - weighted / base)


def unreviewed_losses(history: RepHistory, account: AccountFacts,
                      now: datetime) -> float | None:
    """Losses in the last 12 months whose review the rep had not written by `now`.

    The same losses as retention, so the two agree; a loss whose review is due but not yet
    overdue counts too (the review is what the handbook asks for, not its deadline). Never
    missing: a rep who lost nothing has 0 unreviewed losses.
    """
    return float(_retention_counts(history, now)["unreviewed"])


def commitment_kept(history: RepHistory, account: AccountFacts, now: datetime) -> float | None:
    """How well the rep kept their promises: each promise's kept (actual / expected so far,
    capped at 1.2) averaged with its expected so far as the weight, over promises at least
    one whole month old; in 0..1.2.

    The weight makes a large promise count more than a small one, and a promise that has
    run 12 months more than one a month old (which says little yet). None when the rep has
    no promise a month old (a rep who never won, or only with a zero commitment).
    """
    rows = [row for row in promise_rows(history, now) if row.kept is not None]
    if not rows:
        return None
    return (sum(row.kept * row.expected_yuan for row in rows)
            / sum(row.expected_yuan for row in rows))


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("win_rate", "Win rate",
               "won / (won + lost) over opportunities closed in the window",
               "last 12 months", "None (no closed opportunities)",
               win_rate, unit="share", higher_is_better=True),
        Metric("accounts_held", "Accounts held", "accounts the rep owns now",
               "now", "never missing", accounts_held, unit="accounts"),
        Metric("tenure_months", "Tenure (months)", "months since the hire date",
               "since hire", "never missing", tenure_months, unit="months",
               higher_is_better=True),
        Metric("open_incidents", "Open accountability incidents",
               "incidents still open or upheld", "all time", "never missing", open_incidents,
               unit="incidents", higher_is_better=False),
        Metric("stage_conversion", "Stage conversion",
               "won / closed opportunities that reached intent or later (a loss with no "
               "stage history counts: how far it got is unknown)",
               "opportunities opened in the last 12 months",
               "None (no closed opportunity past potential)", stage_conversion,
               unit="share", higher_is_better=True),
        Metric("forecast_accuracy", "Forecast accuracy",
               "1 - mean(min(1, |actual - forecast| / forecast)); forecast 0: actual 0 -> "
               "error 0, else 1",
               "last 6 complete months; months without an actual are skipped",
               "None (no month with both forecast and actual)", forecast_accuracy,
               unit="share", higher_is_better=True),
        Metric("weighted_pipeline", "Weighted pipeline",
               "sum of amount x stage probability over open opportunities",
               "open now", "None (never had an opportunity); 0 when none is open",
               weighted_pipeline, unit="yuan", higher_is_better=True),
        Metric("revenue_attainment", "Revenue attainment",
               "sum(actual) / sum(forecast), clipped to 0..2",
               "last 6 complete months with an actual",
               "None (forecasts sum to 0 or no usable month)", revenue_attainment,
               unit="ratio", higher_is_better=True),
        Metric("industry_experience", "Industry experience",
               "won revenue in the account's industry / all won revenue",
               "opportunities won in the last 24 months",
               "None (no won revenue, or the account has no industry)", industry_experience,
               unit="share", higher_is_better=True),
        Metric("capacity_headroom", "Capacity headroom",
               f"max(0, {HANDBOOK_CAPACITY_MAX} - accounts held now)", "now", "never missing", capacity_headroom,
               unit="accounts", higher_is_better=True),
        Metric("accountability_incidents", "Accountability incidents",
               "incidents seen, any status", "last 6 months",
               "None (holds no account, lost none and no incident in the window)",
               accountability_incidents, unit="incidents", higher_is_better=False),
        Metric("retention", "Retention",
               "1 - (lost reviewed + 2 x lost unreviewed) / (held now + lost), clipped to 0..1",
               "losses in the last 12 months",
               "None (holds nothing and lost nothing in the window)", retention,
               unit="share", higher_is_better=True),
        Metric("unreviewed_losses", "Unreviewed losses",
               "accounts lost without the rep's written review (submitted or closed)",
               "losses in the last 12 months", "never missing", unreviewed_losses,
               unit="accounts", higher_is_better=False),
        Metric("commitment_kept", "Commitments kept",
               f"Σ(kept × expected) / Σ expected over promises; kept = actual / expected, "
               f"capped at {MAX_COMMITMENT_KEPT:g}; expected = committed × whole months "
               f"elapsed (at most {PROMISE_MONTHS}) / {PROMISE_MONTHS}",
               "the 12 months after each award took effect (until the rep lost the account)",
               "None (no promise a whole month old)", commitment_kept,
               unit="ratio", higher_is_better=True),
    )
}


class TrackRecordFigures(NamedTuple):
    """Everything a rep's track record shows at a moment, from one reading of the history:
    every metric as a bid freezes it, the counts behind the rates (each rate is worked out
    from the counts given here), the open opportunities by stage and the funnel."""

    record: dict[str, float | None]
    counts: dict[str, dict[str, int]]
    open_by_stage: dict[Stage, int]
    funnel: list[FunnelStep]


# The metrics worked out from counts the track record shows beside them: from those counts,
# so that a figure and its "n of m" cannot tell two stories.
_FROM_COUNTS: dict[str, Callable[[dict[str, dict[str, int]]], float | None]] = {
    "win_rate": lambda counts: _share(counts["win_rate"]),
    "stage_conversion": lambda counts: _share(counts["stage_conversion"]),
    "revenue_attainment": lambda counts: _attainment(counts["revenue_attainment"]),
    "retention": lambda counts: _retained(counts["retention"]),
    "unreviewed_losses": lambda counts: float(counts["retention"]["unreviewed"]),
}


def _counts(history: RepHistory, now: datetime,
            ) -> tuple[dict[str, dict[str, int]], list[ForecastRow]]:
    """The counts behind the rates, and the forecast months they counted."""
    months = _usable_months(history, now)
    return {
        "win_rate": _win_counts(history, now),
        "stage_conversion": _conversion_counts(history, now),
        "forecast_accuracy": {"months": len(months)},
        "revenue_attainment": _forecast_sums(months),
        "retention": _retention_counts(history, now),
    }, months


def _record_and_counts(history: RepHistory, account: AccountFacts, now: datetime,
                       ) -> tuple[dict[str, float | None], dict[str, dict[str, int]]]:
    counts, months = _counts(history, now)
    record: dict[str, float | None] = {}
    for name, metric in METRICS.items():
        if name in _FROM_COUNTS:
            record[name] = _FROM_COUNTS[name](counts)
        elif name == "forecast_accuracy":
            record[name] = _accuracy(months)  # the months counted, read once
        else:
            record[name] = metric.compute(history, account, now)
    return record, counts


def track_record_figures(history: RepHistory, account: AccountFacts,
                         now: datetime) -> TrackRecordFigures:
    """The track record at `now` with the counts and the funnel shown beside it: the page
    shows these, and a bid placed at `now` freezes `record`."""
    record, counts = _record_and_counts(history, account, now)
    return TrackRecordFigures(record, counts, funnel_counts(history, now),
                              funnel_conversion(history, now))


def track_record(history: RepHistory, account: AccountFacts, now: datetime) -> dict[str, float | None]:
    """Every registered metric for this rep and account, as stored with a bid."""
    return _record_and_counts(history, account, now)[0]
