"""People: creating users, roles and branches, passwords, and logging in with throttling."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from bidhub.db import begin_write
from bidhub.domain.errors import InvalidRequest, NotFound
from bidhub.models import Branch, RepStatus, Role, User
from bidhub.services.audit import record_audit

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
PASSWORD_METHOD = "scrypt"  # noqa: S105 - a hashing method, not a password


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(f"Use at least {MIN_PASSWORD_LENGTH} characters.", field="password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidRequest(f"Use at most {MAX_PASSWORD_LENGTH} characters.", field="password")


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def user_snapshot(user: User) -> dict:
    return {"username": user.username, "display_name": user.display_name, "role": user.role,
            "branch_id": user.branch_id, "is_active": user.is_active, "status": user.status}


def build_user(
    username: str, display_name: str, password: str, role: str, branch_id: int | None,
    now: datetime, hired_on: date | None = None, status: str = RepStatus.ACTIVE,
) -> User:
    """A new User row, checked but not added; for use cases and bulk loads alike."""
    check_password_rules(password)
    if role not in set(Role):
        raise InvalidRequest(f"Unknown role '{role}'.", field="role")
    if role == Role.REP and branch_id is None:
        raise InvalidRequest("A rep belongs to a branch.", field="branch_id")
    return User(username=username.strip().lower(), display_name=display_name.strip(),
                password_hash=hash_password(password), role=role, branch_id=branch_id,
                hired_on=hired_on, status=status, is_active=True,
                session_token=new_session_token(), failed_login_count=0, created_at=now)


def create_user(
    session: Session, actor: User | None, *, username: str, display_name: str, password: str,
    role: str, branch_id: int | None, now: datetime, hired_on: date | None = None,
) -> User:
    begin_write(session)
    user = build_user(username, display_name, password, role, branch_id, now, hired_on)
    if session.scalars(select(User).where(User.username == user.username)).first():
        session.rollback()
        raise InvalidRequest(f"The username '{user.username}' is taken.", field="username")
    session.add(user)
    try:
        session.flush()
    except IntegrityError as error:
        session.rollback()
        raise InvalidRequest(f"The username '{user.username}' is taken.", field="username") from error
    record_audit(session, actor, "user.created", f"user:{user.id}", now, after=user_snapshot(user))
    session.commit()
    return user


def update_user(
    session: Session, actor: User, user_id: int, *, display_name: str, role: str,
    branch_id: int | None, status: str, is_active: bool, now: datetime,
) -> User:
    begin_write(session)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    if role not in set(Role):
        raise InvalidRequest(f"Unknown role '{role}'.", field="role")
    if role == Role.REP and branch_id is None:
        raise InvalidRequest("A rep belongs to a branch.", field="branch_id")
    if user.id == actor.id and (not is_active or role != Role.ADMIN):
        raise InvalidRequest("You cannot remove your own admin access.", field="role")
    before = user_snapshot(user)
    user.display_name, user.role, user.branch_id = display_name.strip(), role, branch_id
    user.status, user.is_active = status, is_active
    if not is_active or before["role"] != role:
        user.session_token = new_session_token()  # their open sessions end now
    record_audit(session, actor, "user.updated", f"user:{user.id}", now, before=before,
                 after=user_snapshot(user))
    session.commit()
    return user


def change_password(
    session: Session, user: User, current_password: str, new_password: str, now: datetime
) -> None:
    begin_write(session)
    user = session.get(User, user.id)
    if not check_password_hash(user.password_hash, current_password):
        raise InvalidRequest("The current password is not right.", field="current_password")
    try:
        check_password_rules(new_password)
    except InvalidRequest as error:
        raise InvalidRequest(str(error), field="new_password") from error
    user.password_hash = hash_password(new_password)
    user.session_token = new_session_token()
    record_audit(session, user, "user.password_changed", f"user:{user.id}", now)
    session.commit()


def set_password(session: Session, admin: User, user_id: int, new_password: str,
                 now: datetime) -> User:
    """An admin gives a user a new password (imported reps arrive without a usable one)."""
    begin_write(session)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    try:
        check_password_rules(new_password)
    except InvalidRequest as error:
        raise InvalidRequest(str(error), field="new_password") from error
    user.password_hash = hash_password(new_password)
    user.session_token = new_session_token()  # sessions under the old password end
    user.failed_login_count, user.locked_until = 0, None
    record_audit(session, admin, "user.password_set", f"user:{user.id}", now)
    session.commit()
    return user


def end_sessions(session: Session, user: User) -> None:
    """Log the user out everywhere by rotating the token their sessions carry."""
    begin_write(session)
    user = session.get(User, user.id)
    user.session_token = new_session_token()
    session.commit()


class LoginRefused(InvalidRequest):
    pass


def authenticate(
    session: Session, username: str, password: str, now: datetime,
    max_failures: int = 5, lockout: timedelta = timedelta(minutes=15),
) -> User:
    """The user with these credentials; failures are counted and lock the account for a while."""
    begin_write(session)
    user = session.scalars(select(User).where(User.username == username.strip().lower())).first()
    if user is None or not user.is_active:
        # Hash anyway so that unknown names take as long as wrong passwords.
        check_password_hash(DUMMY_HASH, password)
        session.commit()
        raise LoginRefused("Wrong username or password.")
    if user.locked_until is not None and user.locked_until > now:
        session.commit()
        raise LoginRefused("Too many failed attempts. Try again in a few minutes.")
    if not check_password_hash(user.password_hash, password):
        user.failed_login_count += 1
        if user.failed_login_count >= max_failures:
            user.locked_until = now + lockout
            user.failed_login_count = 0
        session.commit()
        raise LoginRefused("Wrong username or password.")
    user.failed_login_count = 0
    user.locked_until = None
    session.commit()
    return user


DUMMY_HASH = generate_password_hash("not-a-real-password", method=PASSWORD_METHOD)


def branches(session: Session) -> list[Branch]:
    return list(session.scalars(select(Branch).order_by(Branch.name)))


def ensure_branch(session: Session, code: str, name: str) -> Branch:
    branch = session.scalars(select(Branch).where(Branch.code == code)).first()
    if branch is None:
        branch = Branch(code=code, name=name)
        session.add(branch)
        session.flush()
    return branch
