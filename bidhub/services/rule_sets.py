"""Rule sets: the rule file on disk, stored versions, and the version new rounds use."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bidhub.domain.rules import RuleError, RuleSet, parse_rules
from bidhub.models import RuleSetVersion, User


class RuleFileError(Exception):
    """A rule file on disk that does not parse; names the file and every problem."""

    def __init__(self, path: Path, error: RuleError) -> None:
        super().__init__(f"{path}: the rules are invalid and bidhub will not start:\n{error}")
        self.path = path
        self.error = error


def default_rules_path(config: Mapping[str, Any]) -> Path:
    return Path(config["RULES_DIR"]) / config["DEFAULT_RULES_FILE"]


def load_default_rules(config: Mapping[str, Any]) -> RuleSet:
    path = default_rules_path(config)
    text = path.read_text(encoding="utf-8")
    try:
        return parse_rules(text)
    except RuleError as error:
        raise RuleFileError(path, error) from error


def active_rule_set(session: Session) -> RuleSetVersion | None:
    return session.scalars(select(RuleSetVersion).where(RuleSetVersion.is_active)).first()


def adopt_rule_set(
    session: Session, actor: User | None, text: str, name: str, note: str, now: datetime
) -> RuleSetVersion:
    """Store `text` as a version (if new) and make it the one new rounds use. No commit."""
    from bidhub.services.audit import record_audit

    rules = parse_rules(text)
    version = session.scalars(
        select(RuleSetVersion).where(RuleSetVersion.sha256 == rules.version_hash)
    ).first()
    previous = active_rule_set(session)
    if version is None:
        version = RuleSetVersion(sha256=rules.version_hash, name=name, text=text, note=note,
                                 author_id=actor.id if actor else None, created_at=now)
        session.add(version)
    if previous is not None and previous is not version:
        previous.is_active = False
    version.is_active = True
    session.flush()
    record_audit(session, actor, "rules.adopted", f"rule_set:{version.id}", now,
                 before={"sha256": previous.sha256} if previous else None,
                 after={"sha256": version.sha256, "note": note})
    return version


def ensure_active_rule_set(session: Session, default_text: str, now: datetime) -> RuleSetVersion:
    """The active version; on a new database, the default rule file becomes it. No commit."""
    version = active_rule_set(session)
    if version is None:
        version = adopt_rule_set(session, None, default_text, "default", "initial rules", now)
    return version


def parsed(version: RuleSetVersion) -> RuleSet:
    return parse_rules(version.text)
