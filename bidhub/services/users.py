"""People: creating users, roles and branches, passwords, and signing in with throttling."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, bindparam, case, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from bidhub.config import Defaults
from bidhub.db import end_read, unit_of_work
from bidhub.domain.collation import branch_order
from bidhub.domain.errors import Conflict, InvalidRequest, NotFound, refuse_together
from bidhub.domain.imports import EARLIEST_HIRE_DATE
from bidhub.domain.text import N_, Text
from bidhub.domain.typed_text import (
    username_key,
    username_problem,
    visible_text,
    without_format_characters,
)
from bidhub.models import (
    Account,
    AuditEvent,
    Branch,
    ExecutiveTitle,
    LoginThrottle,
    RepStatus,
    Role,
    Round,
    User,
)
from bidhub.services.audit import record_audit
from bidhub.services.branches import require_open_branch
from bidhub.services.departures import (
    PendingAward,
    lock_departing,
    send_back_awards,
    sends_awards_back,
)
from bidhub.services.limits import (
    MAX_DISPLAY_NAME_LENGTH,
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
)
from bidhub.services.notifications import notify
from bidhub.services.ownership import accounts_held
from bidhub.services.search_text import contains_all, search_words
from bidhub.services.track_records import forget_track_record_snapshots

PASSWORD_METHOD = "scrypt"  # noqa: S105 - a hashing method, not a password


@cache
def common_passwords() -> frozenset[str]:
    """The most common passwords (lowercase), shipped with the package in data/."""
    text = resources.files("bidhub").joinpath("data/common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip() for line in text.splitlines()
                     if line.strip() and not line.startswith("#"))


def check_password_rules(password: str, field: str = "password") -> None:
    """A new password's rules; the password is kept as typed (spaces and all), and a password
    typed at sign-in is never checked against them."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(N_("Use at least %(count)d characters.", count=MIN_PASSWORD_LENGTH),
                             field=field)
    if len(visible_characters(password)) < MIN_PASSWORD_LENGTH:
        # Eight spaces or zero-width spaces are typed, or pasted, without a thought.
        raise InvalidRequest(N_("Use at least %(count)d characters that are not spaces or "
                                "invisible characters.", count=MIN_PASSWORD_LENGTH), field=field)
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidRequest(N_("Use at most %(count)d characters.", count=MAX_PASSWORD_LENGTH),
                             field=field)
    if password.strip().lower() in common_passwords():
        raise InvalidRequest(N_("This is one of the most common passwords, the first ones an "
                                "attacker tries; choose another."), field=field)


def visible_characters(password: str) -> str:
    """The password less its whitespace and invisible formatting characters."""
    return without_format_characters("".join(password.split()))


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def user_snapshot(user: User) -> dict:
    return {"username": user.username, "display_name": user.display_name, "role": user.role,
            "branch_id": user.branch_id, "is_active": user.is_active, "status": user.status,
            "executive_title": user.executive_title,
            "hired_on": user.hired_on.isoformat() if user.hired_on else None}


def edit_fingerprint(user: User) -> str:
    """What an admin's edit form saw of the user (`user_snapshot`), as a short digest: a form
    that carries it back is refused once any of those details changed (another admin's save,
    a reps import), instead of quietly undoing that change."""
    seen = json.dumps(user_snapshot(user), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(seen.encode()).hexdigest()[:32]


def check_role(role: str, branch_id: int | None, executive_title: str | None) -> str | None:
    """The executive title the user keeps (None unless an executive), or why it cannot be."""
    if role not in set(Role):
        raise InvalidRequest(N_("Unknown role '%(role)s'.", role=role), field="role")
    if role == Role.REP and branch_id is None:
        raise InvalidRequest(N_("A rep belongs to a branch."), field="branch_id")
    if role != Role.EXECUTIVE:
        return None
    if executive_title not in set(ExecutiveTitle):
        raise InvalidRequest(N_("Choose the executive's title."), field="executive_title")
    if executive_title == ExecutiveTitle.BRANCH_GENERAL_MANAGER and branch_id is None:
        raise InvalidRequest(N_("A branch general manager belongs to a branch."),
                             field="branch_id")
    return executive_title


# `update_user`'s hire date when the caller gives none: the user keeps theirs.
KEEP_HIRE_DATE: Any = object()



def check_hire_date(hired_on: date | None, now: datetime, zone: str = Defaults.TIMEZONE) -> None:
    """InvalidRequest on the hire date unless it is from EARLIEST_HIRE_DATE to today, the day
    `now` falls on in the department's time zone `zone`: a day not yet come is no hire (tenure
    counted from it would be negative, 9999-12-31 a placeholder). No date is no problem. The
    users page and `bidhub create-user` judge by this rule; `build_user` applies it,
    `update_user` to a hire date it changes, and a reps import to a new or changed one."""
    refusal = hire_date_refusal(hired_on, now, zone)
    if refusal is not None:
        raise InvalidRequest(refusal, field="hired_on")


def hire_date_refusal(hired_on: date | None, now: datetime,
                      zone: str = Defaults.TIMEZONE) -> Text | None:
    """Why `check_hire_date` refuses the hire date, or None."""
    if hired_on is None:
        return None
    today = now.astimezone(ZoneInfo(zone)).date()
    if EARLIEST_HIRE_DATE <= hired_on <= today:
        return None
    return N_("Enter a hire date between %(earliest)s and today, %(today)s.",
              earliest=EARLIEST_HIRE_DATE, today=today)


def build_user(
    username: str, display_name: str, password: str, role: str, branch_id: int | None,
    now: datetime, hired_on: date | None = None, status: str = RepStatus.ACTIVE,
    executive_title: str | None = None, zone: str = Defaults.TIMEZONE,
) -> User:
    """A new User row, checked but not added; for use cases and bulk loads alike. `zone`: the
    department's time zone, whose today is the latest hire date (check_hire_date). Every field
    refused is refused at once (`new_user_refusals`)."""
    refuse_together(new_user_refusals(username, display_name, password, role, branch_id, now,
                                      hired_on, executive_title, zone))
    display_name = checked_display_name(display_name)
    executive_title = check_role(role, branch_id, executive_title)
    return User(username=checked_username(username), display_name=display_name,
                password_hash=hash_password(password), role=role, branch_id=branch_id,
                executive_title=executive_title,
                hired_on=hired_on, status=status, is_active=True,
                session_token=new_session_token(), failed_login_count=0, created_at=now)


def new_user_refusals(
    username: str, display_name: str, password: str, role: str, branch_id: int | None,
    now: datetime, hired_on: date | None = None, executive_title: str | None = None,
    zone: str = Defaults.TIMEZONE,
) -> list[InvalidRequest]:
    """Why each field of a new user is refused, if it is: all of them, so that a form shows
    every problem in one answer."""
    refusals: list[InvalidRequest] = []
    for check in (lambda: check_password_rules(password),
                  lambda: checked_display_name(display_name),
                  lambda: check_role(role, branch_id, executive_title),
                  lambda: check_hire_date(hired_on, now, zone),
                  lambda: checked_username(username)):
        try:
            check()
        except InvalidRequest as refusal:
            refusals.append(refusal)
    return refusals


def checked_display_name(display_name: str) -> str:
    """A person's name as stored: what can be seen of it, which must not be empty."""
    display_name = visible_text(display_name)
    if not display_name:
        raise InvalidRequest(N_("Give the person's name."), field="display_name")
    if len(display_name) > MAX_DISPLAY_NAME_LENGTH:
        raise InvalidRequest(N_("Use at most %(n)d characters.", n=MAX_DISPLAY_NAME_LENGTH),
                             field="display_name")
    return display_name


def create_user(
    session: Session, actor: User | None, *, username: str, display_name: str, password: str,
    role: str, branch_id: int | None, now: datetime, hired_on: date | None = None,
    executive_title: str | None = None, zone: str = Defaults.TIMEZONE,
) -> User:
    # Built (and its password hashed) before the write transaction, which then stays short.
    user = build_user(username, display_name, password, role, branch_id, now, hired_on,
                      executive_title=executive_title, zone=zone)
    # A password an admin chose for someone else is temporary, as a reset's is; one typed at
    # the command line (actor None: the first admin's own, or the operator's) is not.
    user.must_change_password = actor is not None
    with unit_of_work(session):
        if user.branch_id is not None:
            require_open_branch(session, user.branch_id)
        if session.scalars(select(User).where(User.username == user.username)).first():
            raise InvalidRequest(N_("The username '%(username)s' is taken.",
                                    username=user.username), field="username")
        session.add(user)
        try:
            session.flush()
        except IntegrityError as error:
            raise InvalidRequest(N_("The username '%(username)s' is taken.",
                                    username=user.username), field="username") from error
        record_audit(session, actor, "user.created", f"user:{user.id}", now,
                     after=user_snapshot(user))
        return user


@dataclass(frozen=True)
class UserUpdate:
    user: User
    # Awards sent back to decision: the rep left, was deactivated or is no rep any more.
    sent_back: list[PendingAward]


def update_user(
    session: Session, actor: User, user_id: int, *, display_name: str, role: str,
    branch_id: int | None, status: str, is_active: bool, now: datetime,
    executive_title: str | None = None, expected: str | None = None,
    hired_on: date | None = KEEP_HIRE_DATE, zone: str = Defaults.TIMEZONE,
) -> UserUpdate:
    """Change a user's name, role, branch, status, whether they may sign in, and hire date.

    `expected`: the `edit_fingerprint` the edit form was drawn with; if the user's details
    changed since, nothing is written (Conflict), so that a form opened before another admin
    marked the rep as left cannot set them back to active unseen.

    `hired_on`: the new hire date (None: none known, tenure counts from the day the user was
    added), left as it is when not given. A changed one is judged by `check_hire_date` in the
    department's time zone `zone`; one kept as stored is not, so a date an import wrote is no
    bar to marking its rep as left. A changed hire date changes the rep's tenure: their stored
    track-record snapshot is dropped (`forget_track_record_snapshots`), as a reps import that
    changes it drops it, and a bid placed after this freezes a track record whose tenure counts
    from the new day; a bid placed before keeps the one it froze, while the tenure check at
    scoring reads the hire date as it is then.

    Marking a rep as left, deactivating them or giving them another role sends their awards
    not yet in force back to decision at once (`departures`), in this transaction, as none of
    them may receive accounts; `UserUpdate.sent_back` names them. Another role is refused
    while the rep still holds accounts: those are transferred or released first.
    """
    display_name = checked_display_name(display_name)
    with unit_of_work(session):
        departing = sends_awards_back(role=role, is_active=is_active, status=status)
        # The rounds of their pending awards, then their row: the order every use case locks in.
        locked_rounds = lock_departing(session, [user_id]) if departing else set()
        # Locked before the accounts they sponsor are counted: a designation in progress
        # (which holds the row, `sponsors.held_person`) is counted, or waits and sees this.
        user = session.scalars(select(User).where(User.id == user_id).with_for_update(of=User)
                               .execution_options(populate_existing=True)).first()
        if user is None:
            raise NotFound(N_("No such user."))
        if expected is not None and expected != edit_fingerprint(user):
            raise Conflict(N_("%(name)s's details changed after this form was opened; nothing "
                              "was saved. The form now shows them as they are: make your "
                              "change again.", name=user.display_name))
        executive_title = check_role(role, branch_id, executive_title)
        new_hire_date = hired_on is not KEEP_HIRE_DATE and hired_on != user.hired_on
        if new_hire_date:
            check_hire_date(hired_on, now, zone)
        sponsored = sponsored_account_ids(session, user.id)
        if sponsored and (role != Role.EXECUTIVE or not is_active):
            raise InvalidRequest(N_("%(name)s sponsors %(count)d accounts; designate another "
                                    "sponsor for them first.", name=user.display_name,
                                    count=len(sponsored)), field="role")
        if user.role == Role.REP and role != Role.REP:
            # Only a rep holds accounts, and every move of one is filed: the accounts are
            # handed on first, through the transfer or a release, not left with a manager.
            # Counted under the row lock every owner change takes on the reps it moves
            # accounts to (`ownership.lock_reps`): an account given to them meanwhile is
            # counted here, and one given after this commits is refused there.
            held = accounts_held(session, [user.id])[user.id]
            if held:
                raise InvalidRequest(N_(
                    "%(name)s still holds %(count)d account(s), and only a rep may hold "
                    "accounts; nothing was saved. Transfer them to other reps or release them "
                    "into a round first (%(name)s's accounts on the capacity board), then "
                    "change the role.", name=user.display_name, count=held), field="role")
        if user.id == actor.id and not is_active:
            raise InvalidRequest(N_("You cannot deactivate yourself: another admin must."),
                                 field="is_active")
        if user.id == actor.id and role != Role.ADMIN:
            raise InvalidRequest(N_("You cannot remove your own admin access."), field="role")
        if branch_id is not None and branch_id != user.branch_id:
            require_open_branch(session, branch_id)  # staying in a deactivated branch is fine
        before = user_snapshot(user)
        user.display_name, user.role, user.branch_id = display_name, role, branch_id
        user.status, user.is_active = status, is_active
        if sponsored and user.executive_title != executive_title:
            # The accounts' title follows the person, for the rules and imports that read it.
            session.execute(update(Account).where(Account.id.in_(sponsored))
                            .values(executive_sponsor=executive_title))
        user.executive_title = executive_title
        if new_hire_date:
            user.hired_on = hired_on
            if Role.REP in (before["role"], role):
                forget_track_record_snapshots(session, [user.id])  # as a reps import does
        if not is_active or before["role"] != role:
            user.session_token = new_session_token()  # their open sessions end now
        record_audit(session, actor, "user.updated", f"user:{user.id}", now, before=before,
                     after=user_snapshot(user))
        sent_back = (send_back_awards(session, actor, user, locked_rounds, now) if departing
                     else [])
        return UserUpdate(user, sent_back)


MAX_USER_QUERY_LENGTH = 100  # what the users list's search box takes


def find_users(session: Session, *, query: str = "", role: str | None = None,
               branch_id: int | None = None) -> list[User]:
    """Users whose name, username, employee id or email contains every word of `query` (in
    any case and width), of `role` and in the branch `branch_id` when given; unordered."""
    conditions = []
    words = search_words(query, MAX_USER_QUERY_LENGTH)
    if words:
        conditions.append(contains_all(words, User.display_name, User.username,
                                       User.external_id, User.email,
                                       folded=(User.display_name_folded,)))
    if role is not None:
        conditions.append(User.role == role)
    if branch_id is not None:
        conditions.append(User.branch_id == branch_id)
    return list(session.scalars(select(User).where(*conditions)))


def sponsored_account_ids(session: Session, user_id: int) -> list[int]:
    return list(session.scalars(select(Account.id).where(Account.sponsor_id == user_id)))


def change_password(
    session: Session, user: User, current_password: str, new_password: str, now: datetime
) -> None:
    """The user replaces their password (a temporary one set by an admin included)."""
    stored_hash = _stored_password_hash(session, user.id)
    # Hashing is slow: it happens before the write transaction, which then only writes.
    if stored_hash is None or not check_password_hash(stored_hash, current_password):
        raise InvalidRequest(N_("The current password is not right."), field="current_password")
    check_password_rules(new_password, field="new_password")
    if new_password == current_password:
        raise InvalidRequest(N_("Choose a password different from the current one."),
                             field="new_password")
    new_hash = hash_password(new_password)
    with unit_of_work(session):
        user = session.get(User, user.id)
        if user.password_hash != stored_hash:
            raise InvalidRequest(N_("Your password was changed meanwhile; sign in again."),
                                 field="current_password")
        was_temporary = user.must_change_password
        user.password_hash = new_hash
        user.session_token = new_session_token()
        user.must_change_password = False
        record_audit(session, user, "user.password_changed", f"user:{user.id}", now,
                     after={"replaced_temporary_password": was_temporary})


def set_password(session: Session, admin: User, user_id: int, new_password: str,
                 now: datetime) -> User:
    """An admin gives a user a temporary password, which the user must replace at sign-in.

    The reset is audited and dated on the user, so the user is told at sign-in and management
    sees it on that rep's bids in any round that was open at the time.
    """
    check_password_rules(new_password, field="new_password")
    new_hash = hash_password(new_password)
    with unit_of_work(session):
        user = session.get(User, user_id)
        if user is None:
            raise NotFound(N_("No such user."))
        user.password_hash = new_hash
        user.session_token = new_session_token()  # sessions under the old password end
        user.must_change_password = True
        user.password_reset_at, user.password_reset_by_id = now, admin.id
        # The admin vouches for the account: the user signs in now, whatever was tried on the name.
        session.execute(delete(LoginThrottle).where(LoginThrottle.key == account_key(user.username)))
        record_audit(session, admin, "user.password_set", f"user:{user.id}", now,
                     after={"must_change_password": True})
        notify(session, "password_reset", user, now)
        return user


def password_resets_among(targets) -> Select:
    """The audit targets ("user:<id>") among `targets` (a list or a subquery) whose password
    an admin set between the parameters `opened_at` (included) and `closes_at`."""
    return select(AuditEvent.target).where(
        AuditEvent.action == "user.password_set", AuditEvent.target.in_(targets),
        AuditEvent.at >= bindparam("opened_at"), AuditEvent.at < bindparam("closes_at"))


# Built once: composing it cost more than running it.
_RESETS = password_resets_among(bindparam("targets", expanding=True))


def reps_with_password_reset_during_round(
    session: Session, round_: Round, rep_ids: Iterable[int]
) -> set[int]:
    """Which of these reps had their password reset by an admin while the round was open.

    An admin who sets a rep's password can sign in as that rep and read the rep's sealed
    bids, so management is shown every such reset at adjudication. A round is open from its
    opening time (or its publication, if later) until its deadline.
    """
    if round_.published_at is None:
        return set()
    opened_at = max(round_.opens_at, round_.published_at)
    targets = {f"user:{rep_id}": rep_id for rep_id in rep_ids}
    if not targets:
        return set()
    reset_targets = session.scalars(_RESETS, {"targets": sorted(targets), "opened_at": opened_at,
                                              "closes_at": round_.closes_at})
    return {targets[target] for target in reset_targets}


def end_sessions(session: Session, user: User) -> None:
    """Log the user out everywhere by rotating the token their sessions carry."""
    with unit_of_work(session):
        user = session.get(User, user.id)
        user.session_token = new_session_token()


# Signing in. Failed attempts are counted per account name (known or not, so the answer never
# tells which names exist) and per client address. Past a number of free failures each further
# failure doubles a wait, up to a cap: an attacker slows down, the real user is never locked
# out for long. An attempt is counted before its password is checked, in a short transaction
# that refuses it if either counter is waiting, so parallel attempts cannot all slip through;
# a right password takes its count back. The slow hash runs between transactions.

LOGIN_REFUSED = N_("Wrong username or password, or too many attempts; wait a moment and try "
                   "again.")


class LoginRefused(InvalidRequest):
    """Unknown user, wrong password or throttled: deliberately indistinguishable."""


class _AttemptNotCounted(Exception):
    """A counter is waiting: the attempt's transaction is rolled back, nothing is counted."""


@dataclass(frozen=True)
class LoginPolicy:
    free_failures_per_account: int = 5
    free_failures_per_address: int = 20
    first_delay: timedelta = timedelta(seconds=2)
    max_delay: timedelta = timedelta(minutes=5)
    forget_failures_after: timedelta = timedelta(hours=24)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LoginPolicy:
        return cls(
            free_failures_per_account=int(config["LOGIN_FREE_FAILURES_PER_ACCOUNT"]),
            free_failures_per_address=int(config["LOGIN_FREE_FAILURES_PER_ADDRESS"]),
            first_delay=timedelta(seconds=config["LOGIN_FIRST_DELAY_SECONDS"]),
            max_delay=timedelta(seconds=config["LOGIN_MAX_DELAY_SECONDS"]),
            forget_failures_after=timedelta(minutes=config["LOGIN_FORGET_FAILURES_AFTER_MINUTES"]))

    def delay_after(self, failures: int, free_failures: int) -> timedelta:
        """How long a counter waits after its `failures`-th failure."""
        if failures < free_failures:
            return timedelta(0)
        delay = self.first_delay
        for _ in range(failures - free_failures):
            if delay >= self.max_delay:
                break  # stop before a huge count could overflow timedelta
            delay *= 2
        return min(delay, self.max_delay)


def normalise_username(username: str) -> str:
    """The username as stored and compared, from what was typed (username_key): signing in
    with ＲＥＰ01 or " Rep01 " finds rep01."""
    return username_key(username)


def checked_username(username: str) -> str:
    """A new username as stored, or InvalidRequest saying which rule it breaks."""
    username = normalise_username(username)
    problem = username_problem(username)
    if problem is not None:
        raise InvalidRequest(problem, field="username")
    return username


def account_key(username: str) -> str:
    return _throttle_key("user", normalise_username(username))


def address_key(address: str | None) -> str:
    return _throttle_key("addr", address or "unknown")


def _throttle_key(kind: str, value: str) -> str:
    # Control characters (a NUL above all, which PostgreSQL refuses) never name a real user.
    cleaned = "".join(char if char.isprintable() else "?" for char in value)
    return f"{kind}:{cleaned[:150]}"


def authenticate(
    session: Session, username: str, password: str, address: str | None, now: datetime,
    policy: LoginPolicy | None = None,
) -> User:
    """The user with these credentials, or LoginRefused with one message for every failure."""
    policy = policy or LoginPolicy()
    name = normalise_username(username)
    user_key, addr_key = account_key(name), address_key(address)

    allowed = True
    try:
        with unit_of_work(session):
            user = None
            if "\x00" not in name:
                user = session.scalars(select(User).where(User.username == name)).first()
            user_id = user.id if user is not None and user.is_active else None
            stored_hash = user.password_hash if user_id is not None else DUMMY_HASH
            if not (_count_attempt(session, user_key, policy.free_failures_per_account,
                                   policy, now)
                    and _count_attempt(session, addr_key, policy.free_failures_per_address,
                                       policy, now)):
                raise _AttemptNotCounted
    except _AttemptNotCounted:
        allowed = False  # a waiting counter: rolled back, this attempt is not counted anywhere

    # Unknown names and throttled attempts hash too, so that every refusal takes as long.
    matches = check_password_hash(stored_hash if allowed else DUMMY_HASH, password)
    if not (allowed and user_id is not None and matches):
        raise LoginRefused(LOGIN_REFUSED)

    with unit_of_work(session):
        user = session.get(User, user_id)
        if user is None or not user.is_active or user.password_hash != stored_hash:
            raise LoginRefused(LOGIN_REFUSED)  # changed while the password was checked: it is gone
        _forget_failures(session, user_key)
        _take_back_attempt(session, addr_key, policy.free_failures_per_address)
        session.execute(delete(LoginThrottle).where(
            LoginThrottle.last_failure_at < now - policy.forget_failures_after,
            or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until <= now)))
        return user


def _count_attempt(session: Session, key: str, free_failures: int, policy: LoginPolicy,
                   now: datetime) -> bool:
    """Count one attempt against `key` unless its wait is running; False if it is.

    One conditional UPDATE decides and counts, so that on PostgreSQL concurrent attempts
    queue on the row lock and each sees the count the previous one left.
    """
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(LoginThrottle).values(key=key, failures=0)
                    .on_conflict_do_nothing(index_elements=["key"]))
    forgotten = or_(LoginThrottle.last_failure_at.is_(None),
                    LoginThrottle.last_failure_at < now - policy.forget_failures_after)
    failures = session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.key == key,
               or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until <= now))
        .values(failures=case((forgotten, 1), else_=LoginThrottle.failures + 1),
                last_failure_at=now)
        .returning(LoginThrottle.failures)
        .execution_options(synchronize_session=False)).scalar_one_or_none()
    if failures is None:
        return False
    delay = policy.delay_after(failures, free_failures)
    if delay:
        session.execute(update(LoginThrottle).where(LoginThrottle.key == key)
                        .values(blocked_until=now + delay)
                        .execution_options(synchronize_session=False))
    return True


def _forget_failures(session: Session, key: str) -> None:
    session.execute(update(LoginThrottle).where(LoginThrottle.key == key)
                    .values(failures=0, blocked_until=None)
                    .execution_options(synchronize_session=False))


def _take_back_attempt(session: Session, key: str, free_failures: int) -> None:
    """Uncount a successful attempt, so that colleagues behind one address never add up."""
    remaining = case((LoginThrottle.failures > 0, LoginThrottle.failures - 1), else_=0)
    session.execute(
        update(LoginThrottle).where(LoginThrottle.key == key)
        .values(failures=remaining,
                blocked_until=case((remaining < free_failures, None),
                                   else_=LoginThrottle.blocked_until))
        .execution_options(synchronize_session=False))


def _stored_password_hash(session: Session, user_id: int) -> str | None:
    stored = session.scalar(select(User.password_hash).where(User.id == user_id))
    end_read(session)  # no transaction stays open while the password is hashed
    return stored


DUMMY_HASH = generate_password_hash("not-a-real-password", method=PASSWORD_METHOD)


def branches(session: Session) -> list[Branch]:
    """Every branch, in a menu's order (pinyin order of the Chinese names; domain.collation)."""
    return sorted(session.scalars(select(Branch)), key=branch_order)


def ensure_branch(session: Session, code: str, name: str, name_zh: str | None = None) -> Branch:
    branch = session.scalars(select(Branch).where(Branch.code == code)).first()
    if branch is None:
        branch = Branch(code=code, name=name, name_zh=name_zh)
        session.add(branch)
        session.flush()
    return branch
