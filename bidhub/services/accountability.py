"""The accountability workflow (销售监控问责制度).

KA management watches competitors' recruitment sites. When an account held by a rep is seen
advertising there, management logs an incident against the account's current owner. The rep
owes an explanation form (问责客户说明表) within EXPLANATION_DAYS; management then accepts the
explanation or upholds the incident. A report covers every two-week period, and an account
whose rep has had REPEAT_UPHELD_COUNT incidents upheld on it within REPEAT_WINDOW_DAYS can be
released into a draft bidding round in one action.

Decisions made here (and shown on the pages):
- Days open run from the sighting (`seen_at`) until the resolution, or until `now` while
  unresolved; whole days, rounded down.
- A rep may still explain after the due date; the incident is then *overdue*: an incident is
  overdue when its explanation came, or is still missing, after `explanation_due_at`.
- Management can accept only an explanation that was given; it can uphold an explained
  incident at any time, and an unexplained one only once the due date has passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bidhub.db import unit_of_work
from bidhub.domain.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from bidhub.domain.text import N_
from bidhub.models import (
    Account,
    AccountabilityIncident,
    IncidentStatus,
    Listing,
    ReleaseReason,
    Role,
    Round,
    RoundStatus,
    User,
)
from bidhub.services import rounds
from bidhub.services.audit import record_audit
from bidhub.services.limits import MIN_EXPLANATION_LENGTH
from bidhub.services.notifications import notify
from bidhub.services.ownership import lock_accounts

# The rep has this many days after the incident is logged to file the explanation form.
EXPLANATION_DAYS = 7
# Repeated incidents: this many upheld against the account's current owner, on that account,
# seen within the last REPEAT_WINDOW_DAYS (12 months), make the account releasable.
REPEAT_UPHELD_COUNT = 2
REPEAT_WINDOW_DAYS = 365
# Two-week report periods start on Mondays, every 14 days counted from this Monday.
PERIOD_ANCHOR = date(2024, 1, 1)
PERIOD_DAYS = 14


class AdType(StrEnum):
    LOGO = "logo"
    BANNER = "banner"
    JOB_POST = "job_post"


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # the explanation is accepted; the incident does not count
    UPHELD = "upheld"  # the incident counts against the rep


RESOLVED_STATUSES = (IncidentStatus.ACCEPTED, IncidentStatus.UPHELD)


# --- pure helpers ---------------------------------------------------------------------------

def two_week_period(day: date) -> tuple[date, date]:
    """The two-week report period containing `day`: (first Monday, the Monday after it ends).

    Periods follow each other every 14 days from PERIOD_ANCHOR (a Monday); the end is
    exclusive, so a period is `start <= day < end`.
    """
    offset = (day - PERIOD_ANCHOR).days // PERIOD_DAYS  # floor division works before the anchor
    start = PERIOD_ANCHOR + timedelta(days=offset * PERIOD_DAYS)
    return start, start + timedelta(days=PERIOD_DAYS)


def neighbouring_periods(start: date) -> tuple[date, date]:
    """The first days of the period before and the period after the one starting at `start`."""
    return start - timedelta(days=PERIOD_DAYS), start + timedelta(days=PERIOD_DAYS)


def days_open(incident: AccountabilityIncident, now: datetime) -> int:
    """Whole days from the sighting until the resolution, or until `now` while unresolved."""
    until = incident.resolved_at or now
    return max(0, (until - incident.seen_at).days)


def awaits_explanation(incident: AccountabilityIncident) -> bool:
    """The rep still owes the explanation form: the inbox offers it and the nav counts it."""
    return incident.status == IncidentStatus.OPEN


def is_overdue(incident: AccountabilityIncident, now: datetime) -> bool:
    """The explanation came, or is still missing, after the due date."""
    if incident.explanation_due_at is None:
        return False
    if incident.explained_at is not None:
        return incident.explained_at > incident.explanation_due_at
    if incident.status in RESOLVED_STATUSES:  # upheld unexplained: overdue as of the resolution
        return (incident.resolved_at or now) > incident.explanation_due_at
    return now > incident.explanation_due_at


# --- use cases ------------------------------------------------------------------------------

def require_manager(user: User) -> None:
    if user.role not in (Role.KA_MANAGER, Role.ADMIN):
        raise PermissionDenied(N_("Only KA management can do this."))


def load_incident(session: Session, incident_id: int) -> AccountabilityIncident:
    incident = session.get(AccountabilityIncident, incident_id)
    if incident is None:
        raise NotFound(N_("No such accountability incident."))
    return incident


def log_incident(
    session: Session, manager: User, *, account_id: int, competitor_site: str, ad_type: str,
    seen_at: datetime, now: datetime,
) -> AccountabilityIncident:
    """Record a competitor-ad sighting against the account's current owner."""
    with unit_of_work(session):
        require_manager(manager)
        account = session.get(Account, account_id)
        if account is None:
            raise InvalidRequest(N_("No such account."), field="account")
        if account.owner_id is None:
            raise InvalidRequest(N_("%(account)s has no rep, so nobody can be held accountable "
                                    "for it.", account=account.name), field="account")
        site = competitor_site.strip()
        if not site:
            raise InvalidRequest(N_("Name the competitor's site."), field="competitor_site")
        if ad_type not in set(AdType):
            raise InvalidRequest(N_("Choose the kind of ad (logo, banner or job post)."), field="ad_type")
        if seen_at > now:
            raise InvalidRequest(N_("The sighting cannot be in the future."), field="seen_at")
        incident = AccountabilityIncident(
            account_id=account.id, rep_id=account.owner_id, competitor_site=site, ad_type=ad_type,
            seen_at=seen_at, status=IncidentStatus.OPEN,
            explanation_due_at=now + timedelta(days=EXPLANATION_DAYS), logged_by_id=manager.id)
        session.add(incident)
        session.flush()
        record_audit(session, manager, "incident.logged", f"incident:{incident.id}", now,
                     after={"account": account.id, "rep": account.owner_id, "site": site,
                            "ad_type": ad_type, "seen_at": seen_at.isoformat()})
        notify(session, "incident_logged", incident, now)
        return incident


def explain_incident(
    session: Session, rep: User, incident_id: int, *, explanation: str, now: datetime,
) -> AccountabilityIncident:
    """The owning rep files the explanation form; accepted late too, but then shown overdue."""
    with unit_of_work(session):
        incident = load_incident(session, incident_id)
        if incident.rep_id != rep.id:
            raise NotFound(N_("No such accountability incident."))  # others' incidents do not exist
        if not awaits_explanation(incident):
            raise Conflict(N_("This incident was already explained."))
        text = explanation.strip()
        if len(text) < MIN_EXPLANATION_LENGTH:
            raise InvalidRequest(N_("Explain what happened (at least %(count)d characters).",
                                    count=MIN_EXPLANATION_LENGTH), field="explanation")
        incident.explanation = text
        incident.explained_at = now
        incident.status = IncidentStatus.EXPLAINED
        record_audit(session, rep, "incident.explained", f"incident:{incident.id}", now,
                     after={"late": is_overdue(incident, now)})
        notify(session, "explanation_submitted", incident, now)
        return incident


def resolve_incident(
    session: Session, manager: User, incident_id: int, *, outcome: str, note: str,
    expected_version: int, now: datetime,
) -> AccountabilityIncident:
    """Management accepts the explanation or upholds the incident (with a note)."""
    with unit_of_work(session):
        require_manager(manager)
        incident = load_incident(session, incident_id)
        if incident.version != expected_version:
            raise Conflict(N_("Someone else changed this incident; reload it and try again."))
        if incident.status in RESOLVED_STATUSES:
            raise Conflict(N_("This incident is already resolved."))
        if outcome not in set(Outcome):
            raise InvalidRequest(N_("Choose whether to accept the explanation or uphold the incident."),
                                 field="outcome")
        if incident.status == IncidentStatus.OPEN:
            if outcome == Outcome.ACCEPTED:
                raise InvalidRequest(N_("There is no explanation to accept yet."), field="outcome")
            if incident.explanation_due_at is not None and now <= incident.explanation_due_at:
                raise InvalidRequest(N_("The rep still has until the due date to explain; an "
                                        "unexplained incident can be upheld only after it."),
                                     field="outcome")
        if outcome == Outcome.UPHELD and not note.strip():
            raise InvalidRequest(N_("Say why the incident is upheld."), field="note")
        before = {"status": incident.status}
        incident.status = IncidentStatus(outcome)
        incident.resolution_note = note.strip()
        incident.resolved_by_id = manager.id
        incident.resolved_at = now
        record_audit(session, manager, "incident.resolved", f"incident:{incident.id}", now,
                     before=before, after={"status": incident.status, "note": incident.resolution_note})
        notify(session, "incident_decided", incident, now)
        return incident


def release_for_accountability(
    session: Session, manager: User, account_id: int, *, round_id: int, review_text: str,
    now: datetime,
) -> Listing:
    """Release an account with repeated upheld incidents into a draft round.

    One transaction: the account is locked before its incidents are counted, so the owner
    the count is about is still the owner when the release is written.
    """
    with unit_of_work(session):
        require_manager(manager)
        account = lock_accounts(session, [account_id]).get(account_id)
        if account is None:
            raise NotFound(N_("No such account."))
        upheld = upheld_count(session, account, now)
        if upheld < REPEAT_UPHELD_COUNT:
            raise InvalidRequest(N_(
                "%(account)s has %(upheld)d upheld incident(s) against its rep in the last 12 "
                "months; %(needed)d are needed to release it for accountability.",
                account=account.name, upheld=upheld, needed=REPEAT_UPHELD_COUNT))
        return rounds.release_account(
            session, manager, round_id, account_id=account.id, reason=ReleaseReason.ACCOUNTABILITY,
            note=f"{upheld} upheld accountability incidents in 12 months", review_text=review_text,
            now=now)


# --- queries --------------------------------------------------------------------------------

def upheld_count(session: Session, account: Account, now: datetime) -> int:
    """Upheld incidents on the account against its current owner within the repeat window."""
    if account.owner_id is None:
        return 0
    return session.scalar(
        select(func.count()).select_from(AccountabilityIncident).where(
            AccountabilityIncident.account_id == account.id,
            AccountabilityIncident.rep_id == account.owner_id,
            AccountabilityIncident.status == IncidentStatus.UPHELD,
            AccountabilityIncident.seen_at > now - timedelta(days=REPEAT_WINDOW_DAYS),
            AccountabilityIncident.seen_at <= now)) or 0


def accounts_due_for_release(session: Session, now: datetime) -> list[tuple[Account, int]]:
    """Accounts whose current owner has REPEAT_UPHELD_COUNT or more upheld incidents on them."""
    counts = (
        select(AccountabilityIncident.account_id, func.count().label("upheld"))
        .join(Account, Account.id == AccountabilityIncident.account_id)
        .where(AccountabilityIncident.rep_id == Account.owner_id,
               AccountabilityIncident.status == IncidentStatus.UPHELD,
               AccountabilityIncident.seen_at > now - timedelta(days=REPEAT_WINDOW_DAYS),
               AccountabilityIncident.seen_at <= now)
        .group_by(AccountabilityIncident.account_id)
        .having(func.count() >= REPEAT_UPHELD_COUNT)
        .subquery())
    rows = session.execute(select(Account, counts.c.upheld)
                           .join(counts, counts.c.account_id == Account.id)
                           .order_by(Account.name)).all()
    return [(account, upheld) for account, upheld in rows]


def draft_rounds(session: Session) -> list[Round]:
    return list(session.scalars(select(Round).where(Round.status == RoundStatus.DRAFT)
                                .order_by(Round.created_at.desc(), Round.id.desc())))


def incidents_for_management(session: Session, status: str = "") -> list[AccountabilityIncident]:
    query = select(AccountabilityIncident)
    if status:
        query = query.where(AccountabilityIncident.status == status)
    return list(session.scalars(query.order_by(AccountabilityIncident.seen_at.desc(),
                                               AccountabilityIncident.id.desc())))


def incidents_of_rep(session: Session, rep: User) -> list[AccountabilityIncident]:
    return list(session.scalars(
        select(AccountabilityIncident).where(AccountabilityIncident.rep_id == rep.id)
        .order_by(AccountabilityIncident.explanation_due_at.desc(),
                  AccountabilityIncident.id.desc())))


def open_incident_count(session: Session, rep: User) -> int:
    """How many of the rep's incidents await an explanation (awaits_explanation, in SQL)."""
    return session.scalar(
        select(func.count()).select_from(AccountabilityIncident).where(
            AccountabilityIncident.rep_id == rep.id,
            AccountabilityIncident.status == IncidentStatus.OPEN)) or 0


def own_incident(session: Session, rep: User, incident_id: int) -> AccountabilityIncident:
    incident = session.get(AccountabilityIncident, incident_id)
    if incident is None or incident.rep_id != rep.id:
        raise NotFound(N_("No such accountability incident."))
    return incident


@dataclass(frozen=True)
class ReportRow:
    incident: AccountabilityIncident
    days_open: int
    overdue: bool


def accountability_report(session: Session, period_start: datetime, period_end: datetime, *,
                          now: datetime) -> list[ReportRow]:
    """Every incident seen in [period_start, period_end), with days open and the overdue flag."""
    incidents = session.scalars(
        select(AccountabilityIncident)
        .where(AccountabilityIncident.seen_at >= period_start,
               AccountabilityIncident.seen_at < period_end)
        .order_by(AccountabilityIncident.seen_at, AccountabilityIncident.id))
    return [ReportRow(incident, days_open(incident, now), is_overdue(incident, now))
            for incident in incidents]
