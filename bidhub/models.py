"""Typed SQLAlchemy models: the tables of bidhub. No business rules live here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ColumnElement,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    and_,
    func,
)
from sqlalchemy.ext.hybrid import hybrid_method
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates
from sqlalchemy.types import TypeDecorator

from bidhub.domain.collation import name_sort_bytes, width_folded

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def sort_key_of(column: str) -> Callable[[Any], bytes]:
    """The default of a name's sort key in an INSERT that names no key (a bulk insert of
    rows as dicts); objects get theirs when the name is set (`validates`)."""
    return lambda context: name_sort_bytes(context.get_current_parameters()[column])


def name_sort_key_column(column: str) -> Mapped[bytes | None]:
    """The name's place in pinyin order (domain.collation.name_sort_bytes), so that a query can
    order by it and take the first names itself. Always set (NULL only in a row written
    behind the app's back)."""
    return mapped_column(LargeBinary, default=sort_key_of(column), deferred=True)


def folded_name_column(column: str) -> Mapped[str | None]:
    """The name as a search reads it (domain.collation.width_folded), matched by what was
    typed, folded the same way (services.search_text): width-blind both ways. Set with the
    name (`validates`), or by default in an INSERT that names none."""
    return mapped_column(Text, deferred=True, default=lambda context: width_folded(
        context.get_current_parameters()[column]))


class UTCDateTime(TypeDecorator):
    """Stores aware datetimes as naive UTC and gives them back aware, on every database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; bidhub stores aware UTC datetimes only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def result_processor(self, dialect: Any, coltype: Any) -> Callable[[Any], datetime | None]:
        """The dialect's own conversion of a stored value (SQLite's text, say), then UTC as
        its zone: one call per value. TypeDecorator's `process_result_value` would add two
        calls to each, and a page reads hundreds of timestamps.

        The zone is set with `datetime.combine`, or for SQLite's ISO text by reading the text
        with "+00:00" after it: `replace(tzinfo=...)` parses its keyword arguments on every
        call and cost four times the parsing of the text itself. A text with an offset of its
        own is read as before (the offset replaced by UTC)."""
        parse = self.impl_instance.result_processor(dialect, coltype)
        combine = datetime.combine
        if parse is None:  # the driver's own datetimes (psycopg's), naive as stored
            def aware(value: datetime | None) -> datetime | None:
                return None if value is None else combine(value, value.time(), UTC)
        elif dialect.name == "sqlite":  # ISO text, which the dialect reads with fromisoformat
            fromisoformat = datetime.fromisoformat

            def aware(value: Any) -> datetime | None:
                if value is None:
                    return None
                try:
                    found = fromisoformat(value + "+00:00")
                except (TypeError, ValueError):  # not naive ISO text
                    found = None
                if found is not None and found.tzinfo is UTC:  # a date alone drops the offset
                    return found
                found = parse(value)
                return combine(found, found.time(), UTC)
        else:
            def aware(value: Any) -> datetime | None:
                if value is None:
                    return None
                found = parse(value)
                return combine(found, found.time(), UTC)
        return aware


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Role(StrEnum):
    REP = "rep"
    KA_MANAGER = "ka_manager"
    ADMIN = "admin"
    # The president, the KA vice-president and branch general managers: they sponsor accounts
    # (老板负责客户) and confirm their release or transfer; they bid for nothing.
    EXECUTIVE = "executive"


class ExecutiveTitle(StrEnum):
    PRESIDENT = "president"
    KA_VICE_PRESIDENT = "ka_vice_president"
    BRANCH_GENERAL_MANAGER = "branch_general_manager"


class RepStatus(StrEnum):
    ACTIVE = "active"
    ON_LEAVE = "on_leave"
    LEFT = "left"


class ReleaseReason(StrEnum):
    REP_LEFT = "rep_left"
    OVER_CAPACITY = "over_capacity"
    NEGLECTED = "neglected"
    ACCOUNTABILITY = "accountability"
    EXECUTIVE_DECISION = "executive_decision"
    OTHER = "other"


class RoundStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"  # visible from opens_at, open for bids until closes_at
    # Deadline passed and the round's rules ask for a blind review of the applications: named
    # reviewers score each application without seeing who wrote it; scoring waits for them.
    IN_REVIEW = "in_review"
    SCORED = "scored"  # deadline passed, bids scored, awaiting adjudication
    # Results announced (公示期): appeals may be filed until standstill_ends_at; no owner
    # changes yet. Each listing takes effect once the window ended and its appeals are answered.
    STANDSTILL = "standstill"
    RESULTS_PUBLISHED = "results_published"  # every listing took effect (or was cancelled)
    CANCELLED = "cancelled"  # stopped by management, with a reason, before taking effect


class ListingStatus(StrEnum):
    AWAITING_CONFIRMATION = "awaiting_confirmation"  # executive-sponsored, needs an admin
    LISTED = "listed"
    DECIDED = "decided"
    AWARDED = "awarded"
    NOT_AWARDED = "not_awarded"
    CANCELLED = "cancelled"  # withdrawn by management with a reason before it took effect
    REFUSED = "refused"  # the executive sponsor refused the release


class AppealStatus(StrEnum):
    PENDING = "pending"
    UPHELD = "upheld"  # the listing goes back to decision, with the answer
    REJECTED = "rejected"  # the decision stands; the appellant reads the answer


class TransferRequestStatus(StrEnum):
    WAITING = "waiting"  # for the executive sponsor's confirmation
    ACCEPTED = "accepted"  # confirmed and filed
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


class LossReviewStatus(StrEnum):
    DUE = "due"  # the rep who lost the account owes the review
    SUBMITTED = "submitted"  # written; management comments and closes it
    CLOSED = "closed"
    # The release that made it due ended with the account still the rep's (cancelled, refused
    # by the sponsor, or not awarded) before the rep wrote it: nothing was lost.
    WITHDRAWN = "withdrawn"


class BidStatus(StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


class DecisionKind(StrEnum):
    ACCEPTED = "accepted"  # the ranking's winner
    OVERRIDDEN = "overridden"  # another eligible bidder, with a reason
    NO_AWARD = "no_award"  # nobody wins; the account is re-released later, with a reason


class FilingKind(StrEnum):
    ROUND_AWARD = "round_award"
    DIRECT_TRANSFER = "direct_transfer"
    CRM_IMPORT = "crm_import"


class ImportStatus(StrEnum):
    IMPORTED = "imported"
    REFUSED = "refused"  # nothing was written; the run keeps the per-row report


class Branch(Base):
    __tablename__ = "branches"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    # The name in Chinese, shown when the page is in Chinese; files may use either name.
    name_zh: Mapped[str | None] = mapped_column(String(100))
    # A deactivated branch keeps its reps, accounts and history but takes no new ones.
    is_active: Mapped[bool] = mapped_column(default=True)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    display_name_sort_key: Mapped[bytes | None] = name_sort_key_column("display_name")
    display_name_folded: Mapped[str | None] = folded_name_column("display_name")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.REP)
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id"))
    is_active: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(String(16), default=RepStatus.ACTIVE)
    hired_on: Mapped[date | None] = mapped_column(Date)
    # Rotated on logout and password change so that every older session ends.
    session_token: Mapped[str] = mapped_column(String(64), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    failed_login_count: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # Set when an admin gives the user a temporary password; cleared by their own new one.
    must_change_password: Mapped[bool] = mapped_column(default=False)
    password_reset_at: Mapped[datetime | None]
    password_reset_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # The language the user chose in the header; None follows the browser.
    locale: Mapped[str | None] = mapped_column(String(16))
    # Where notifications are e-mailed when outside delivery is on; None: inbox only.
    email: Mapped[str | None] = mapped_column(String(254))
    # For executives: president | ka_vice_president | branch_general_manager (ExecutiveTitle).
    executive_title: Mapped[str | None] = mapped_column(String(32))

    branch: Mapped[Branch | None] = relationship(lazy="joined", foreign_keys=[branch_id])

    @validates("display_name")
    def _sorted_by_name(self, _key: str, display_name: str) -> str:
        self.display_name_sort_key = name_sort_bytes(display_name)
        self.display_name_folded = width_folded(display_name)
        return display_name

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return self.session_token

    @property
    def has_departed(self) -> bool:
        """Left the company or deactivated: works no accounts (a rep who left may still sign
        in, while their user is active, to withdraw their bids)."""
        return not self.is_active or self.status == RepStatus.LEFT


class LoginThrottle(Base):
    """Failed sign-ins counted per account name and per client address, with a growing delay."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)  # "user:NAME" | "addr:IP"
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime | None]
    blocked_until: Mapped[datetime | None]


class InstanceMarker(Base):
    """A fact about this database itself, such as "the demo built it"."""

    __tablename__ = "instance_markers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class SchedulerLease(Base):
    """Which scheduler process runs the scheduled jobs, and when it last said it was alive.

    On PostgreSQL the holder also keeps an advisory lock; on SQLite the lease itself is the lock
    and another scheduler takes it over once the heartbeat is older than the lease's lifetime."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint("annual_value_yuan >= 0", name="annual_value_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    name_sort_key: Mapped[bytes | None] = name_sort_key_column("name")
    name_folded: Mapped[str | None] = folded_name_column("name")
    industry: Mapped[str] = mapped_column(String(64), index=True)
    ownership_type: Mapped[str] = mapped_column(String(32), index=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"), index=True)
    annual_value_yuan: Mapped[int] = mapped_column(default=0)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    # president | ka_vice_president | branch_general_manager; None when no executive sponsor
    executive_sponsor: Mapped[str | None] = mapped_column(String(32))
    # The executive (a user with the executive role) who sponsors the account, as a person.
    sponsor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime]

    branch: Mapped[Branch] = relationship(lazy="joined")
    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    sponsor: Mapped[User | None] = relationship(foreign_keys=[sponsor_id])
    contacts: Mapped[list[Contact]] = relationship(back_populates="account", order_by="Contact.id")

    @validates("name")
    def _sorted_by_name(self, _key: str, name: str) -> str:
        self.name_sort_key = name_sort_bytes(name)
        self.name_folded = width_folded(name)
        return name


class Contact(Base):
    """A key person at an account, by role (决策人, 使用人, 采购人, 接口人)."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    role: Mapped[str] = mapped_column(String(32))  # decision_maker | user | purchaser | contact
    name: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")

    account: Mapped[Account] = relationship(back_populates="contacts")


class Opportunity(Base):
    __tablename__ = "opportunities"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    amount_yuan: Mapped[int]
    stage: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]

    account: Mapped[Account] = relationship()
    stage_changes: Mapped[list[OpportunityStageChange]] = relationship(
        order_by="OpportunityStageChange.changed_at"
    )


class OpportunityStageChange(Base):
    __tablename__ = "opportunity_stage_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime]


class IncidentStatus(StrEnum):
    OPEN = "open"  # logged; the rep owes an explanation
    EXPLAINED = "explained"  # the rep filed the explanation form (问责客户说明表)
    ACCEPTED = "accepted"  # management accepted the explanation
    UPHELD = "upheld"  # management upheld the incident against the rep


class AccountabilityIncident(Base):
    """A held account seen advertising on a competitor's site (销售监控问责)."""

    __tablename__ = "accountability_incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    competitor_site: Mapped[str] = mapped_column(String(200))
    ad_type: Mapped[str] = mapped_column(String(16))  # logo | banner | job_post
    # Where on the competitor's site: home_page | special_section | other.
    page_area: Mapped[str] = mapped_column(String(24), default="home_page")
    evidence_url: Mapped[str] = mapped_column(String(500), default="")
    # An uploaded screenshot, stored under the instance folder by its content hash.
    evidence_file: Mapped[str] = mapped_column(String(255), default="")
    seen_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default=IncidentStatus.OPEN, index=True)
    explanation: Mapped[str] = mapped_column(Text, default="")
    explanation_due_at: Mapped[datetime | None]
    explained_at: Mapped[datetime | None]
    logged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolution_note: Mapped[str] = mapped_column(Text, default="")
    resolved_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1)

    account: Mapped[Account] = relationship(lazy="joined")
    rep: Mapped[User] = relationship(foreign_keys=[rep_id], lazy="joined")

    __mapper_args__ = {"version_id_col": version}


class MonthlyForecast(Base):
    """A rep's revenue forecast for a month (月度预测) and, once known, the actual."""

    __tablename__ = "monthly_forecasts"
    __table_args__ = (UniqueConstraint("rep_id", "month"),
                      CheckConstraint("forecast_yuan >= 0", name="forecast_not_negative"))

    id: Mapped[int] = mapped_column(primary_key=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    month: Mapped[date] = mapped_column(Date)  # the first day of the month
    forecast_yuan: Mapped[int]
    actual_yuan: Mapped[int | None]
    # When the actual came with a CRM import (None: stored before bidhub kept the date); the
    # track record at an earlier moment reads the month without it.
    actual_known_at: Mapped[datetime | None]


class ImportRun(Base):
    """One file imported (or refused): who, what, the counts and the per-row report."""

    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16))  # running | imported | refused | failed
    rows_total: Mapped[int] = mapped_column(default=0)
    rows_done: Mapped[int] = mapped_column(default=0)
    added: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class ImportMapping(Base):
    """How the columns of one kind of file map onto bidhub's fields, saved when an admin
    confirms it and reused for the next file of that kind with the same headers."""

    __tablename__ = "import_mappings"
    __table_args__ = (UniqueConstraint("kind", "headers_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    # SHA-256 of the file's normalised header row, in order.
    headers_key: Mapped[str] = mapped_column(String(64))
    headers: Mapped[list[str]] = mapped_column(JSON)
    # file column -> field name; a column mapped to nothing is left out.
    columns: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Important columns the admin saw unmapped and chose to go without.
    acknowledged: Mapped[list[str]] = mapped_column(JSON, default=list)
    saved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    saved_at: Mapped[datetime]


class AccountReview(Base):
    """The review kept when an account leaves its rep (任何客户的丢失都要总结反省).

    Management's note on why the account leaves (review_text, written at release or transfer)
    and the loss review due from the rep who lost it (what happened, what they would do
    differently), which management comments on and closes.
    """

    __tablename__ = "account_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    written_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String(32))
    review_text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    # The filing that moved the account away, when the loss was a change of owner.
    # (A plain number: filings already point at listings, which point at reviews.)
    filing_seq: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16), default=LossReviewStatus.DUE, index=True)
    due_at: Mapped[datetime | None]
    what_happened: Mapped[str] = mapped_column(Text, default="")
    do_differently: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime | None]
    manager_comment: Mapped[str] = mapped_column(Text, default="")
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1)

    written_by: Mapped[User | None] = relationship(foreign_keys=[written_by_id])
    rep: Mapped[User] = relationship(foreign_keys=[rep_id])
    closed_by: Mapped[User | None] = relationship(foreign_keys=[closed_by_id])
    account: Mapped[Account] = relationship(foreign_keys=[account_id])

    __mapper_args__ = {"version_id_col": version}


class RuleSetVersion(Base):
    __tablename__ = "rule_set_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, default="")
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    is_active: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class Round(Base):
    __tablename__ = "rounds"
    __table_args__ = (CheckConstraint("closes_at > opens_at", name="closes_after_opening"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id"))
    opens_at: Mapped[datetime]
    closes_at: Mapped[datetime] = mapped_column(index=True)
    rule_set_id: Mapped[int] = mapped_column(ForeignKey("rule_set_versions.id"))
    status: Mapped[str] = mapped_column(String(20), default=RoundStatus.DRAFT, index=True)
    lottery_seed: Mapped[int | None]
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None]
    scored_at: Mapped[datetime | None]
    results_published_at: Mapped[datetime | None]
    # The end of the appeal window (公示期), set when results are announced; None: no window.
    standstill_ends_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancel_reason: Mapped[str] = mapped_column(Text, default="")
    # Management may end a blind review before every application has its minimum of reviews,
    # with a written reason; scoring then uses the reviews submitted so far.
    review_closed_at: Mapped[datetime | None]
    review_closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    review_close_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The one-time key of the form that created the round: sent again, it creates nothing.
    submission_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    version: Mapped[int] = mapped_column(default=1)

    branch: Mapped[Branch | None] = relationship(lazy="joined")
    rule_set: Mapped[RuleSetVersion] = relationship(lazy="joined")
    listings: Mapped[list[Listing]] = relationship(back_populates="round", order_by="Listing.id")

    __mapper_args__ = {"version_id_col": version}

    def is_open_at(self, now: datetime) -> bool:
        return self.status == RoundStatus.PUBLISHED and self.opens_at <= now < self.closes_at

    @hybrid_method
    def is_visible_to_reps_at(self, now: datetime) -> bool:
        return self.status != RoundStatus.DRAFT and self.opens_at <= now

    @is_visible_to_reps_at.inplace.expression
    @classmethod
    def _is_visible_to_reps_at_sql(cls, now: datetime) -> ColumnElement[bool]:
        # The same rule as a SQL condition, for queries over many rounds.
        return and_(cls.status != RoundStatus.DRAFT, cls.opens_at <= now)


class Listing(Base):
    """An account released into a round, open for bids."""

    __tablename__ = "listings"
    __table_args__ = (UniqueConstraint("round_id", "account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    # Indexed: a rep's list reads the accounts released from the rep on every view.
    released_from_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    release_reason: Mapped[str] = mapped_column(String(32))
    release_note: Mapped[str] = mapped_column(Text, default="")
    review_id: Mapped[int | None] = mapped_column(ForeignKey("account_reviews.id"))
    status: Mapped[str] = mapped_column(String(24), default=ListingStatus.LISTED)
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    released_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    # The sponsor's (or a standing-in admin's) note on confirming or refusing the release.
    confirmation_note: Mapped[str] = mapped_column(Text, default="")
    confirmation_stood_in: Mapped[bool] = mapped_column(default=False)
    # When the decision took effect (the transfer filed, or the no-award recorded).
    applied_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancel_reason: Mapped[str] = mapped_column(Text, default="")

    round: Mapped[Round] = relationship(back_populates="listings")
    account: Mapped[Account] = relationship(lazy="joined")
    released_from: Mapped[User | None] = relationship(foreign_keys=[released_from_id])
    review: Mapped[AccountReview | None] = relationship()


class Bid(Base):
    """A rep's bid application (竞标申请表) for one listing."""

    __tablename__ = "bids"
    __table_args__ = (
        UniqueConstraint("listing_id", "rep_id"),
        CheckConstraint("committed_revenue_yuan >= 0", name="revenue_not_negative"),
        CheckConstraint("preference_rank IS NULL OR preference_rank >= 1",
                        name="preference_rank_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"), index=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    account_plan: Mapped[str] = mapped_column(Text)
    committed_revenue_yuan: Mapped[int]
    visit_plan: Mapped[str] = mapped_column(Text)
    # The rep's track record (metric name -> value) frozen at submission; what the rules score.
    track_record: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=BidStatus.ACTIVE)
    submitted_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]
    submission_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    # What reviewers of a blind review see instead of the bidder: random, set when the review
    # starts, so neither the bid id nor the submission order leads back to the rep.
    review_code: Mapped[str | None] = mapped_column(String(16), unique=True)
    # The rep's ranking of this bid among their bids in the round: 1 is their first choice;
    # None when they did not rank it. The round's rules decide whether and how it counts.
    preference_rank: Mapped[int | None]
    # Raised by every change of the bid's content (an edit, or a new bid over a withdrawn
    # one): an edit form carries the version it showed, and a save from an older one is
    # refused (`bidding.update_bid`). Ranking and withdrawing leave it as it is.
    version: Mapped[int] = mapped_column(default=1)

    listing: Mapped[Listing] = relationship()
    rep: Mapped[User] = relationship()
    score: Mapped[BidScore | None] = relationship(back_populates="bid", uselist=False)


class BidScore(Base):
    """The score a bid received when its round closed, with the inputs and the breakdown."""

    __tablename__ = "bid_scores"

    bid_id: Mapped[int] = mapped_column(ForeignKey("bids.id"), primary_key=True)
    rule_set_sha256: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[dict[str, Any]]
    breakdown: Mapped[dict[str, Any]]
    total: Mapped[float] = mapped_column(Float)
    is_eligible: Mapped[bool]
    rank: Mapped[int | None]
    not_awarded_reason: Mapped[str] = mapped_column(Text, default="")
    is_proposed_winner: Mapped[bool] = mapped_column(default=False)

    bid: Mapped[Bid] = relationship(back_populates="score")


class RoundReviewer(Base):
    """A KA manager named to review a round's applications blind (匿名评审)."""

    __tablename__ = "round_reviewers"

    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), primary_key=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    named_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    named_at: Mapped[datetime]

    reviewer: Mapped[User] = relationship(foreign_keys=[reviewer_id])


class ApplicationReview(Base):
    """One reviewer's scores (criterion name -> points, as the round's rules define them) and
    note on one bid application. Written once, before the round is scored; pinned after."""

    __tablename__ = "application_reviews"
    __table_args__ = (UniqueConstraint("bid_id", "reviewer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bid_id: Mapped[int] = mapped_column(ForeignKey("bids.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    scores: Mapped[dict[str, Any]]
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    submitted_at: Mapped[datetime]

    bid: Mapped[Bid] = relationship()
    reviewer: Mapped[User] = relationship()


class Decision(Base):
    """KA management's adjudication of one listing; at most one per listing."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    bid_id: Mapped[int | None] = mapped_column(ForeignKey("bids.id"))
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(default=1)

    listing: Mapped[Listing] = relationship()
    bid: Mapped[Bid | None] = relationship()
    decided_by: Mapped[User] = relationship()

    __mapper_args__ = {"version_id_col": version}


class Filing(Base):
    """One transfer of an account, filed with KA management (备案). Append-only, hash-chained."""

    __tablename__ = "filings"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(24))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    from_rep_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    to_rep_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"))
    listing_id: Mapped[int | None] = mapped_column(ForeignKey("listings.id"), unique=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    winner_score: Mapped[float | None] = mapped_column(Float)
    runner_up_score: Mapped[float | None] = mapped_column(Float)
    rule_set_sha256: Mapped[str | None] = mapped_column(String(64))
    override_reason: Mapped[str] = mapped_column(Text, default="")
    decided_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # Who asked for a transfer that someone else decided: the manager whose transfer of a
    # sponsored account the sponsor (decided_by) accepted. None when the decider acted alone.
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime] = mapped_column(index=True)
    # The appeals filed on the listing and their answers, as the filing records them (a list
    # of {appellant_id, ground, status, answer, answered_by_id}); None when there were none.
    appeals: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    account: Mapped[Account] = relationship(lazy="joined")
    from_rep: Mapped[User | None] = relationship(foreign_keys=[from_rep_id], lazy="joined")
    to_rep: Mapped[User] = relationship(foreign_keys=[to_rep_id], lazy="joined")
    decided_by: Mapped[User] = relationship(foreign_keys=[decided_by_id], lazy="joined")
    requested_by: Mapped[User | None] = relationship(foreign_keys=[requested_by_id])
    round: Mapped[Round | None] = relationship(lazy="joined")
    branch: Mapped[Branch] = relationship(lazy="joined")


class Appeal(Base):
    """A bidder's challenge (申诉) of a listing's announced result, and management's answer."""

    __tablename__ = "appeals"
    __table_args__ = (UniqueConstraint("listing_id", "appellant_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"), index=True)
    appellant_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    ground: Mapped[str] = mapped_column(Text)
    filed_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default=AppealStatus.PENDING, index=True)
    answer: Mapped[str] = mapped_column(Text, default="")
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answered_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1)

    listing: Mapped[Listing] = relationship()
    appellant: Mapped[User] = relationship(foreign_keys=[appellant_id])
    answered_by: Mapped[User | None] = relationship(foreign_keys=[answered_by_id])

    __mapper_args__ = {"version_id_col": version}


class TransferRequest(Base):
    """A direct transfer of a sponsored account, waiting for its executive sponsor."""

    __tablename__ = "transfer_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    from_rep_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    to_rep_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    sponsor_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    review_text: Mapped[str] = mapped_column(Text, default="")
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default=TransferRequestStatus.WAITING,
                                        index=True)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answered_at: Mapped[datetime | None]
    answer_note: Mapped[str] = mapped_column(Text, default="")
    stood_in: Mapped[bool] = mapped_column(default=False)  # an admin answered for the sponsor
    filing_seq: Mapped[int | None] = mapped_column(ForeignKey("filings.seq"))
    version: Mapped[int] = mapped_column(default=1)

    account: Mapped[Account] = relationship()
    from_rep: Mapped[User | None] = relationship(foreign_keys=[from_rep_id])
    to_rep: Mapped[User] = relationship(foreign_keys=[to_rep_id])
    sponsor: Mapped[User] = relationship(foreign_keys=[sponsor_id])
    requested_by: Mapped[User] = relationship(foreign_keys=[requested_by_id])
    answered_by: Mapped[User | None] = relationship(foreign_keys=[answered_by_id])

    __mapper_args__ = {"version_id_col": version}


class TrackRecordSnapshot(Base):
    """A rep's history as the metrics read it (opportunities, forecasts, incidents, losses),
    stored so that a bid or a page need not rebuild it from the CRM rows. Deleted whenever one
    of those rows changes; rebuilt on next use or by the scheduled refresh."""

    __tablename__ = "track_record_snapshots"

    rep_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    # NULL marks a dropped snapshot (a tombstone) rather than a deleted row, and every drop
    # bumps `version`: a rebuild that read the rows before a concurrent change stores its
    # history only if the version it saw is still there, so it cannot resurrect stale rows.
    history: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(default=0, server_default="0")
    refreshed_at: Mapped[datetime | None]


class AuditEvent(Base):
    """A privileged change: who did what to which object, before and after, when."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(100))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[datetime]


# Imports match external ids in any case: lower(external_id) is looked up by index.
Index("ix_accounts_external_id_lower", func.lower(Account.external_id))
Index("ix_opportunities_external_id_lower", func.lower(Opportunity.external_id))
Index("ix_accountability_incidents_external_id_lower",
      func.lower(AccountabilityIncident.external_id))
# At most one rule set is the one new rounds use, whatever writes it.
Index("uq_rule_set_versions_active", RuleSetVersion.is_active, unique=True,
      sqlite_where=RuleSetVersion.is_active, postgresql_where=RuleSetVersion.is_active)
Index("ix_bids_listing_status", Bid.listing_id, Bid.status)
# Each rep's latest bid before an instant (the flags' reference bids): a seek per rep.
Index("ix_bids_rep_submitted", Bid.rep_id, Bid.submitted_at)
# Events of one kind in a time window (the password resets during a round that its flags
# read on every view of the round): the audit trail only grows.
Index("ix_audit_events_action_at", AuditEvent.action, AuditEvent.at)


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt
    SENT = "sent"
    FAILED = "failed"  # gave up after the last attempt; last_error says why


class NotificationEvent(Base):
    """An event that notifications were made for, so that it is announced once however often
    (or on however many instances) the job that notices it runs."""

    __tablename__ = "notification_events"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)  # "kind:subject"
    created_at: Mapped[datetime]


class Notification(Base):
    """One item in a user's inbox; its text is a msgid and parameters, rendered when read."""

    __tablename__ = "notifications"
    # The idempotency key: one item per recipient and event.
    __table_args__ = (UniqueConstraint("recipient_id", "event_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(48))
    event_key: Mapped[str] = mapped_column(String(160))
    msgid: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The page to act on, as an endpoint and its arguments, built into a URL when shown.
    link_endpoint: Mapped[str] = mapped_column(String(64), default="")
    link_args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None]

    recipient: Mapped[User] = relationship()


class NotificationDelivery(Base):
    """The outbox: a notification to send outside the app, written with the notification and
    sent later by the scheduler, with retries."""

    __tablename__ = "notification_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    address: Mapped[str] = mapped_column(String(254), default="")  # the e-mail address
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    notification: Mapped[Notification] = relationship()


Index("ix_notifications_recipient_read", Notification.recipient_id, Notification.read_at)
Index("ix_notification_deliveries_due", NotificationDelivery.status,
      NotificationDelivery.next_attempt_at)
