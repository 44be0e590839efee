"""The accountability workflow (销售监控问责制度).

KA management watches competitors' recruitment sites. When an account held by a rep is seen
advertising there, management logs an incident against the account's current owner. The rep
owes an explanation form (问责客户说明表) within EXPLANATION_DAYS; management then accepts the
explanation or upholds the incident. A report covers every two-week period, and an account
whose rep has had REPEAT_UPHELD_COUNT incidents upheld on it within REPEAT_WINDOW_DAYS can be
released into a draft bidding round in one action.

Decisions made here (and shown on the pages):
- Days open run from the sighting (`seen_at`) until the resolution, or until `now` while
  unresolved; whole days, rounded down. An incident a CRM file brought in already decided
  has no day of resolution: its days open are unknown, not still counting.
- An incident counts as explained when its explanation was recorded, or when it came from a
  CRM file explained, accepted, or upheld with an explanation (on a day nobody recorded).
- A rep may still explain after the due date; the incident is then *overdue*: an incident is
  overdue when its explanation came, or is still missing, after `explanation_due_at`.
- Management can accept only an explanation that was given; it can uphold an explained
  incident at any time, and an unexplained one only once the due date has passed.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session

from bidhub.config import Defaults
from bidhub.db import unit_of_work
from bidhub.domain.collation import branch_order, person_order
from bidhub.domain.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from bidhub.domain.text import N_, Text
from bidhub.domain.typed_text import short_writing, writes_less_than
from bidhub.models import (
    Account,
    AccountabilityIncident,
    Branch,
    IncidentStatus,
    Listing,
    Opportunity,
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
from bidhub.services.policies import AccountabilityPolicy, recent_won_deal, won_at

# The default policy (services/policies.py); the app's settings can change both numbers.
DEFAULT_POLICY = AccountabilityPolicy()
# The rep has this many days after the incident is logged to file the explanation form.
EXPLANATION_DAYS = DEFAULT_POLICY.explanation_days
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
    TEXT = "text"  # a text ad or text link (文字广告)
    JOB_POST = "job_post"  # recorded before the handbook's kinds were adopted; no longer offered


# The kinds of ad the handbook watches for; JOB_POST stays readable on older incidents.
OFFERED_AD_TYPES = (AdType.LOGO, AdType.BANNER, AdType.TEXT)


class PageArea(StrEnum):
    """Where on the competitor's site the ad ran; the handbook watches the first two."""

    HOME_PAGE = "home_page"
    SPECIAL_SECTION = "special_section"
    OTHER = "other"  # recorded before only the handbook's places were taken; stays readable


# The places the handbook holds a rep accountable for: a competitor's home page and its special
# sections. An ad seen anywhere else is not an incident.
WATCHED_PAGE_AREAS = (PageArea.HOME_PAGE, PageArea.SPECIAL_SECTION)
UNWATCHED_PAGE_AREA = N_("Only an ad on a competitor's home page or special section makes the "
                         "rep accountable; an ad elsewhere on the site is not an incident.")


# Evidence: a link (the column holds 500 characters) or a screenshot kept in the instance
# folder under its SHA-256, so a stored name never comes from the person uploading it.
MAX_EVIDENCE_URL_LENGTH = 500
MAX_EVIDENCE_BYTES = 4 * 1024 * 1024  # below the app's 5 MB request limit, which answers 413
EVIDENCE_MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
EVIDENCE_NAME = re.compile(r"[0-9a-f]{64}\.(png|jpg|webp)")


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


def last_complete_period(today: date) -> tuple[date, date]:
    """The latest period that has ended by `today`: the one before the period holding it."""
    start, _end = two_week_period(today)
    return two_week_period(start - timedelta(days=1))


def neighbouring_periods(start: date) -> tuple[date, date]:
    """The first days of the period before and the period after the one starting at `start`."""
    return start - timedelta(days=PERIOD_DAYS), start + timedelta(days=PERIOD_DAYS)


def days_open(incident: AccountabilityIncident, now: datetime) -> int | None:
    """Whole days from the sighting until the resolution, or until `now` while unresolved;
    None for an incident resolved on a day nobody recorded (brought in decided by an import)."""
    if incident.resolved_at is None and incident.status in RESOLVED_STATUSES:
        return None
    until = incident.resolved_at or now
    return max(0, (until - incident.seen_at).days)


def was_explained(incident: AccountabilityIncident) -> bool:
    """The rep's explanation was given: recorded with its moment, or brought in by an import
    as explained, accepted, or upheld with an explanation, on a day nobody recorded."""
    if incident.explained_at is not None:
        return True
    if incident.status in (IncidentStatus.EXPLAINED, IncidentStatus.ACCEPTED):
        return True
    return incident.status == IncidentStatus.UPHELD and bool(incident.explanation)


def awaits_explanation(incident: AccountabilityIncident) -> bool:
    """The rep still owes the explanation form: the inbox offers it and the nav counts it."""
    return incident.status == IncidentStatus.OPEN


def is_overdue(incident: AccountabilityIncident, now: datetime) -> bool:
    """The explanation came, or is still missing, after the due date."""
    if incident.explanation_due_at is None:
        return False
    if incident.explained_at is not None:
        return incident.explained_at > incident.explanation_due_at
    if was_explained(incident):
        return False  # explained on a day nobody recorded (an import): nothing says it was late
    if incident.status in RESOLVED_STATUSES:  # upheld unexplained: overdue as of the resolution
        return (incident.resolved_at or now) > incident.explanation_due_at
    return now > incident.explanation_due_at


def image_kind(data: bytes) -> str | None:
    """The evidence file's type from its first bytes (never its name): png, jpg, webp or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def checked_evidence_url(url: str) -> str:
    """The link as stored: http or https with a host, within the column's length."""
    url = url.strip()
    if not url:
        return ""
    if len(url) > MAX_EVIDENCE_URL_LENGTH:
        raise InvalidRequest(N_("The evidence link is too long (at most %(count)d characters).",
                                count=MAX_EVIDENCE_URL_LENGTH), field="evidence_url")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or any(
            character.isspace() or ord(character) < 32 for character in url):
        raise InvalidRequest(N_("The evidence link must be a web address starting with "
                                "http:// or https://."), field="evidence_url")
    return url


def checked_evidence_image(data: bytes) -> str:
    """The screenshot's type; refused when it is too big or not a PNG, JPEG or WebP image."""
    if len(data) > MAX_EVIDENCE_BYTES:
        raise InvalidRequest(N_("The screenshot is too big: at most %(megabytes)d MB.",
                                megabytes=MAX_EVIDENCE_BYTES // (1024 * 1024)),
                             field="evidence_image")
    kind = image_kind(data)
    if kind is None:
        raise InvalidRequest(N_("The screenshot must be a PNG, JPEG or WebP image."),
                             field="evidence_image")
    return kind


def store_evidence(folder: Path, data: bytes, kind: str) -> str:
    """Write the screenshot as <sha256>.<kind>, readable by the app's user only (0600)."""
    name = f"{hashlib.sha256(data).hexdigest()}.{kind}"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    try:
        # Created 0600 in one step; the same content is the same file, so a copy is kept once.
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return name
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    return name


def evidence_file(folder: Path, incident: AccountabilityIncident) -> tuple[Path, str] | None:
    """The incident's stored screenshot and its media type; None when there is none."""
    match = EVIDENCE_NAME.fullmatch(incident.evidence_file or "")
    if match is None:
        return None
    path = folder / match.group(0)
    return (path, EVIDENCE_MEDIA_TYPES[match.group(1)]) if path.is_file() else None


def won_deal_refusal(account: Account, deal: Opportunity, policy: AccountabilityPolicy,
                     zone: ZoneInfo) -> Text:
    """Why an account with a recent won deal cannot be held to account, naming the deal.

    The day is the department's (`zone`), as an ISO date in a parameter named *_on, which the
    page shows in its own style (web.i18n.with_local_dates): an import report keeps the
    message as JSON."""
    when = won_at(deal)
    day = (when.astimezone(zone).date().isoformat() if when
           else N_("an unknown date"))
    return N_("%(account)s placed an order with us: a deal of %(amount)s yuan won on "
              "%(won_on)s, within the last %(months)d months. Accountability applies only to "
              "accounts with no won deal in that window.", account=account.name,
              amount=f"{deal.amount_yuan:,}", won_on=day, months=policy.won_deal_months)


def explanation_due(logged_at: datetime, policy: AccountabilityPolicy) -> datetime:
    """When the explanation form is due: the logged (or, imported, seen) time plus the days."""
    return logged_at + timedelta(days=policy.explanation_days)


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
    seen_at: datetime, now: datetime, page_area: str = PageArea.HOME_PAGE,
    evidence_url: str = "", evidence_image: bytes | None = None,
    evidence_folder: Path | None = None, policy: AccountabilityPolicy = DEFAULT_POLICY,
    zone: str = Defaults.TIMEZONE,
) -> AccountabilityIncident:
    """Record a competitor-ad sighting against the account's current owner.

    Only an account with no deal won with us in the policy's window can be held to account
    (the handbook's rule); the sighting needs evidence, a link or a screenshot, or both.
    `zone` is the department's time zone, the one a refusal names the deal's day in.
    A sighting already logged (the same account, rep, site, kind of ad, place and moment, as
    a form sent twice gives) is not logged again: the incident logged before is returned, so
    that one ad never counts twice against the rep.
    """
    with unit_of_work(session):
        require_manager(manager)
        # Locked: two copies of one form sent at once must not both find no earlier sighting.
        account = lock_accounts(session, [account_id]).get(account_id)
        if account is None:
            raise InvalidRequest(N_("No such account."), field="account")
        if account.owner_id is None:
            raise InvalidRequest(N_("%(account)s has no rep, so nobody can be held accountable "
                                    "for it.", account=account.name), field="account")
        deal = recent_won_deal(session, account.id, now, policy, ZoneInfo(zone))
        if deal is not None:
            raise InvalidRequest(won_deal_refusal(account, deal, policy, ZoneInfo(zone)),
                                 field="account")
        site = competitor_site.strip()
        if not site:
            raise InvalidRequest(N_("Name the competitor's site."), field="competitor_site")
        if ad_type not in OFFERED_AD_TYPES:
            raise InvalidRequest(N_("Choose the kind of ad (logo, banner or text)."),
                                 field="ad_type")
        if page_area == PageArea.OTHER:
            raise InvalidRequest(UNWATCHED_PAGE_AREA, field="page_area")
        if page_area not in WATCHED_PAGE_AREAS:
            raise InvalidRequest(N_("Choose where the ad ran (home page or special section)."),
                                 field="page_area")
        if seen_at > now:
            raise InvalidRequest(N_("The sighting cannot be in the future."), field="seen_at")
        url = checked_evidence_url(evidence_url)
        kind = checked_evidence_image(evidence_image) if evidence_image else None
        if not url and kind is None:
            raise InvalidRequest(N_("Give the evidence: a link to the ad or a screenshot."),
                                 field="evidence_url")
        if kind is not None and evidence_folder is None:
            raise InvalidRequest(N_("Screenshots cannot be stored here; give a link instead."),
                                 field="evidence_image")
        logged = session.scalars(select(AccountabilityIncident).where(
            AccountabilityIncident.account_id == account.id,
            AccountabilityIncident.rep_id == account.owner_id,
            AccountabilityIncident.competitor_site == site,
            AccountabilityIncident.ad_type == ad_type,
            AccountabilityIncident.page_area == page_area,
            AccountabilityIncident.seen_at == seen_at)).first()
        if logged is not None:
            return logged
        stored = store_evidence(evidence_folder, evidence_image, kind) if kind else ""
        incident = AccountabilityIncident(
            account_id=account.id, rep_id=account.owner_id, competitor_site=site, ad_type=ad_type,
            page_area=page_area, evidence_url=url, evidence_file=stored,
            seen_at=seen_at, status=IncidentStatus.OPEN,
            explanation_due_at=explanation_due(now, policy), logged_by_id=manager.id)
        session.add(incident)
        session.flush()
        record_audit(session, manager, "incident.logged", f"incident:{incident.id}", now,
                     after={"account": account.id, "rep": account.owner_id, "site": site,
                            "ad_type": ad_type, "page_area": page_area, "evidence_url": url,
                            "evidence_file": stored, "seen_at": seen_at.isoformat()})
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
        if writes_less_than(text, MIN_EXPLANATION_LENGTH):
            raise InvalidRequest(short_writing(N_(
                "Explain what happened (at least %(count)d characters).",
                count=MIN_EXPLANATION_LENGTH), text, MIN_EXPLANATION_LENGTH), field="explanation")
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
    session: Session, manager: User, account_id: int, *, round_id: int,
    expected_owner_id: int | None, review_text: str, now: datetime,
) -> Listing:
    """Release an account with repeated upheld incidents into a draft round.

    `expected_owner_id`: the owner the page showed, whom the review is written about. If the
    account changed hands since, nothing is released (Conflict): the count could still let it
    through (the new owner may have upheld incidents on it too), and the review would fall due
    from the new owner with text about the old one.

    One transaction: the account is locked before its owner is compared and its incidents are
    counted, so that owner is still the owner when the release is written (the round first,
    the order every use case locks in).
    """
    with unit_of_work(session):
        require_manager(manager)
        rounds.load_round(session, round_id, lock=True)
        account = lock_accounts(session, [account_id]).get(account_id)
        if account is None:
            raise NotFound(N_("No such account."))
        if account.owner_id != expected_owner_id:
            raise rounds.owner_changed(account)
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
                           .order_by(Account.name_sort_key, Account.id)).all()
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
    """A rep's incidents, those awaiting their explanation first, the one due soonest (or most
    overdue) at the top; then the others, the latest due first."""
    incidents = list(session.scalars(
        select(AccountabilityIncident).where(AccountabilityIncident.rep_id == rep.id)
        .order_by(AccountabilityIncident.explanation_due_at.desc(),
                  AccountabilityIncident.id.desc())))
    waiting = sorted((incident for incident in incidents if awaits_explanation(incident)),
                     key=lambda incident: (incident.explanation_due_at is None,
                                           incident.explanation_due_at or incident.seen_at,
                                           incident.id))
    return waiting + [incident for incident in incidents if not awaits_explanation(incident)]


# How many of a rep's incidents await an explanation (awaits_explanation, in SQL); built once,
# since the navigation asks on every rep's page.
def open_incident_count(rep_id) -> Select:
    """The count of a rep's open incidents; `rep_id` a bound parameter or a column (then
    correlated to the statement it is a column of)."""
    return select(func.count()).select_from(AccountabilityIncident).where(
        AccountabilityIncident.rep_id == rep_id,
        AccountabilityIncident.status == IncidentStatus.OPEN)


OPEN_INCIDENT_COUNT = open_incident_count(bindparam("rep_id"))



def viewable_incident(session: Session, user: User, incident_id: int) -> AccountabilityIncident:
    """Management sees every incident, a rep only their own (others' do not exist for them)."""
    if user.role in (Role.KA_MANAGER, Role.ADMIN):
        return load_incident(session, incident_id)
    return own_incident(session, user, incident_id)


def own_incident(session: Session, rep: User, incident_id: int) -> AccountabilityIncident:
    incident = session.get(AccountabilityIncident, incident_id)
    if incident is None or incident.rep_id != rep.id:
        raise NotFound(N_("No such accountability incident."))
    return incident


@dataclass(frozen=True)
class ReportRow:
    incident: AccountabilityIncident
    days_open: int | None  # None: resolved on a day nobody recorded (see days_open)
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


@dataclass(frozen=True)
class Totals:
    """Counts over a report's incidents: logged in the period, explained (on time or late),
    explanation accepted, upheld, and overdue (see is_overdue)."""

    logged: int = 0
    explained: int = 0
    accepted: int = 0
    upheld: int = 0
    overdue: int = 0

    def counting(self, row: ReportRow) -> Totals:
        incident = row.incident
        return Totals(logged=self.logged + 1,
                      explained=self.explained + was_explained(incident),
                      accepted=self.accepted + (incident.status == IncidentStatus.ACCEPTED),
                      upheld=self.upheld + (incident.status == IncidentStatus.UPHELD),
                      overdue=self.overdue + row.overdue)

    def counts(self) -> tuple[int, int, int, int, int]:
        return (self.logged, self.explained, self.accepted, self.upheld, self.overdue)


@dataclass(frozen=True)
class Report:
    """The two-weekly report (问责客户报表): its incidents and their totals per rep and per
    branch of the account, both in a menu's order (domain.collation: pinyin order by name,
    then id; accounts without a branch last), and overall."""

    rows: list[ReportRow]
    by_rep: list[tuple[User, Totals]]
    by_branch: list[tuple[Branch | None, Totals]]
    total: Totals


def report_totals(rows: list[ReportRow]) -> Report:
    reps: dict[int, tuple[User, Totals]] = {}
    branches: dict[int | None, tuple[Branch | None, Totals]] = {}
    total = Totals()
    for row in rows:
        rep, branch = row.incident.rep, row.incident.account.branch
        reps[rep.id] = (rep, reps.get(rep.id, (rep, Totals()))[1].counting(row))
        key = branch.id if branch is not None else None
        branches[key] = (branch, branches.get(key, (branch, Totals()))[1].counting(row))
        total = total.counting(row)
    return Report(
        rows=rows,
        by_rep=sorted(reps.values(), key=lambda pair: person_order(pair[0])),
        by_branch=sorted(branches.values(), key=lambda pair: (
            pair[0] is None, () if pair[0] is None else branch_order(pair[0]))),
        total=total)


def two_weekly_report(session: Session, period_start: datetime, period_end: datetime, *,
                      now: datetime) -> Report:
    return report_totals(accountability_report(session, period_start, period_end, now=now))
