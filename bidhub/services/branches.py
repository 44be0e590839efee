"""Branches (分公司): creating, renaming, deactivating them, and finding one by what a file says."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bidhub.db import unit_of_work
from bidhub.domain.errors import InvalidRequest, NotFound
from bidhub.domain.text import N_
from bidhub.models import Account, Branch, Role, User
from bidhub.services.audit import record_audit
from bidhub.services.limits import MAX_BRANCH_CODE_LENGTH, MAX_BRANCH_NAME_LENGTH

# A code is typed in files and on the command line, so it keeps to characters every export,
# shell and URL carries unchanged.
CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]+")


def branch_key(value: str | None) -> str:
    """How files and forms compare branch codes and names: trimmed, case-insensitive."""
    return (value or "").strip().casefold()


def branch_label(branch: Branch | None, locale: object) -> str:
    """The branch's name in the page's language: the Chinese name on a Chinese page, if it has one."""
    if branch is None:
        return ""
    if branch.name_zh and str(locale or "").lower().startswith("zh"):
        return branch.name_zh
    return branch.name


# What exports write after a branch's name (北京分公司, Beijing Branch) and bidhub's names may
# leave out, or the other way round.
BRANCH_WORDS = ("分公司", "分部", "branchoffice", "branch")


def bare_branch_key(value: str | None) -> str:
    """A branch's code or name as `branch_key` compares it, in any width and spacing, without
    a trailing 分公司, 分部 or Branch (北京分公司 and 北京, Beijing Branch and Beijing)."""
    key = "".join(unicodedata.normalize("NFKC", value or "").casefold().split())
    for word in BRANCH_WORDS:
        if key.endswith(word) and len(key) > len(word):
            return key[:-len(word)]
    return key


def match_branch(branches: Iterable[Branch], value: str | None) -> Branch | None:
    """The branch a file's cell means: by code first, then by name, then by Chinese name; then
    the same in any width and spacing and without a trailing 分公司, 分部 or Branch.

    Codes and names are kept apart by `create_branch`, but older data may not be; a value that
    names two branches the same way matches neither rather than a guess.
    """
    if not branch_key(value):
        return None
    branches = list(branches)
    for key_of in (branch_key, bare_branch_key):
        key = key_of(value)
        for attribute in ("code", "name", "name_zh"):
            found = [branch for branch in branches if key_of(getattr(branch, attribute)) == key]
            if len(found) == 1:
                return found[0]
            if found:
                return None
    return None


# What separates the levels of the department path an HR or CRM export may give for a
# branch (华北大区/北京分公司/KA一部, 销售中心 > 北京分公司). Not the ASCII hyphen: codes may
# hold one (BJ-2 is a code, not BJ).
PATH_SEPARATORS = re.compile(r"[/／\\|｜>＞→—－]")


def match_branch_in_path(branches: Iterable[Branch], value: str | None) -> Branch | None:
    """The one branch the levels of a department path name (each level as `match_branch`
    reads it), or None: when no level names a branch, or levels name different ones."""
    levels = [level for level in PATH_SEPARATORS.split(value or "") if level.strip()]
    if len(levels) < 2:
        return None
    branches = list(branches)
    named = {found.id: found for level in levels
             if (found := match_branch(branches, level)) is not None}
    return next(iter(named.values())) if len(named) == 1 else None


def find_branch(session: Session, value: str | None) -> Branch | None:
    """The branch whose code, name or Chinese name is `value` (trimmed, any case), or None.

    A deactivated branch is found too (its existing reps and accounts still name it); code
    that puts a new rep or account in it checks `is_active` (see `require_open_branch`). For
    many rows at once, load the branches once and call `match_branch`.
    """
    # Branches are few; comparing in Python folds case the same way for every script and
    # database (SQLite's lower() leaves non-ASCII letters alone).
    return match_branch(session.scalars(select(Branch).order_by(Branch.id)), value)


def list_branches(session: Session) -> list[Branch]:
    return list(session.scalars(select(Branch).order_by(Branch.code)))


def branch_counts(session: Session) -> dict[int, tuple[int, int]]:
    """For each branch id: how many reps and accounts it has."""
    users = dict(session.execute(
        select(User.branch_id, func.count()).where(User.role == Role.REP,
                                                   User.branch_id.is_not(None))
        .group_by(User.branch_id)).all())
    accounts = dict(session.execute(
        select(Account.branch_id, func.count()).group_by(Account.branch_id)).all())
    return {branch_id: (users.get(branch_id, 0), accounts.get(branch_id, 0))
            for branch_id in {*users, *accounts}}


def require_open_branch(session: Session, branch_id: int, field: str = "branch_id") -> Branch:
    """The branch, if new reps, accounts and rounds may be put in it."""
    branch = session.get(Branch, branch_id)
    if branch is None:
        raise InvalidRequest(N_("No such branch."), field=field)
    if not branch.is_active:
        raise InvalidRequest(N_("The branch %(branch)s is deactivated; it takes no new reps, "
                                "accounts or rounds.", branch=branch.name), field=field)
    return branch


def branch_snapshot(branch: Branch) -> dict:
    return {"code": branch.code, "name": branch.name, "name_zh": branch.name_zh,
            "is_active": branch.is_active}


def create_branch(
    session: Session, actor: User | None, code: str, name: str, name_zh: str | None,
    now: datetime,
) -> Branch:
    code = _checked_code(code)
    name, name_zh = _checked_names(name, name_zh)
    with unit_of_work(session):
        others = list(session.scalars(select(Branch)))
        _check_distinct(others, "code", code)
        _check_distinct(others, "name", name)
        if name_zh is not None:
            _check_distinct(others, "name_zh", name_zh)
        branch = Branch(code=code, name=name, name_zh=name_zh, is_active=True)
        session.add(branch)
        session.flush()
        record_audit(session, actor, "branch.created", f"branch:{branch.id}", now,
                     after=branch_snapshot(branch))
        return branch


def rename_branch(
    session: Session, actor: User, branch_id: int, name: str, name_zh: str | None,
    now: datetime,
) -> Branch:
    """New names for a branch; its code stays, since files and past imports refer to it."""
    name, name_zh = _checked_names(name, name_zh)
    with unit_of_work(session):
        branch = _load(session, branch_id)
        others = [other for other in session.scalars(select(Branch)) if other.id != branch.id]
        _check_distinct(others, "name", name)
        if name_zh is not None:
            _check_distinct(others, "name_zh", name_zh)
        before = branch_snapshot(branch)
        branch.name, branch.name_zh = name, name_zh
        if before != branch_snapshot(branch):
            record_audit(session, actor, "branch.renamed", f"branch:{branch.id}", now,
                         before=before, after=branch_snapshot(branch))
        return branch


def deactivate_branch(session: Session, actor: User, branch_id: int, now: datetime) -> Branch:
    """The branch keeps its reps, accounts and history but takes no new ones."""
    return _set_active(session, actor, branch_id, False, now)


def reactivate_branch(session: Session, actor: User, branch_id: int, now: datetime) -> Branch:
    return _set_active(session, actor, branch_id, True, now)


def _set_active(session: Session, actor: User, branch_id: int, is_active: bool,
                now: datetime) -> Branch:
    with unit_of_work(session):
        branch = _load(session, branch_id)
        if branch.is_active == is_active:
            return branch  # a repeated click changes nothing and audits nothing
        before = branch_snapshot(branch)
        branch.is_active = is_active
        action = "branch.reactivated" if is_active else "branch.deactivated"
        record_audit(session, actor, action, f"branch:{branch.id}", now, before=before,
                     after=branch_snapshot(branch))
        return branch


def _load(session: Session, branch_id: int) -> Branch:
    branch = session.get(Branch, branch_id)
    if branch is None:
        raise NotFound(N_("No such branch."))
    return branch


def _checked_code(code: str) -> str:
    code = (code or "").strip()
    if not code:
        raise InvalidRequest(N_("Give the branch a code."), field="code")
    if len(code) > MAX_BRANCH_CODE_LENGTH:
        raise InvalidRequest(N_("Use at most %(n)d characters.", n=MAX_BRANCH_CODE_LENGTH),
                             field="code")
    if not CODE_PATTERN.fullmatch(code):
        raise InvalidRequest(N_("A code uses only letters A-Z, digits, '-' and '_'."),
                             field="code")
    # Codes compare in any case; stored in capitals, as the hint and the files write them.
    return code.upper()


def _checked_names(name: str, name_zh: str | None) -> tuple[str, str | None]:
    name = _checked_name(name, "name")
    if not name:
        raise InvalidRequest(N_("Give the branch a name."), field="name")
    return name, _checked_name(name_zh, "name_zh") or None


def _checked_name(value: str | None, field: str) -> str:
    value = (value or "").strip()
    if len(value) > MAX_BRANCH_NAME_LENGTH:
        raise InvalidRequest(N_("Use at most %(n)d characters.", n=MAX_BRANCH_NAME_LENGTH),
                             field=field)
    if any(not char.isprintable() for char in value):
        raise InvalidRequest(N_("A name cannot contain control characters."), field=field)
    return value


def _check_distinct(others: list[Branch], field: str, value: str) -> None:
    """Refuse a code or name that another branch already answers to.

    Files name a branch by its code, its name or its Chinese name, so each of these must
    point at one branch only.
    """
    key = branch_key(value)
    for other in others:
        if key in {branch_key(other.code), branch_key(other.name), branch_key(other.name_zh)}:
            raise InvalidRequest(N_("The branch %(code)s is already known as '%(value)s'; "
                                    "files could not tell the two apart.",
                                    code=other.code, value=value), field=field)
