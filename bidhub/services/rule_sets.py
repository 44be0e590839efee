"""Rule sets: the rule file on disk, stored versions, and the version new rounds use."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bidhub.db import begin_write
from bidhub.domain.errors import Conflict, InvalidRequest
from bidhub.domain.rules import RuleError, RuleProblem, RuleSet, parse_rules
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
    """The rules of a stored version; bids, decisions and transfers all ask, so parse once."""
    return _parse_stored(version.text)


@functools.lru_cache(maxsize=64)
def _parse_stored(text: str) -> RuleSet:
    # Safe to share: parse_rules is pure and RuleSet is frozen; stored texts never change.
    return parse_rules(text)


def rule_versions(session: Session) -> list[RuleSetVersion]:
    return list(session.scalars(select(RuleSetVersion).order_by(RuleSetVersion.id.desc())))


def check_rules_text(text: str) -> list[RuleProblem]:
    """Every problem in a draft, or an empty list when it can be adopted."""
    try:
        parse_rules(text)
    except RuleError as error:
        return error.problems
    return []


def rules_diff(before: str, after: str) -> list[str]:
    return list(difflib.unified_diff(before.splitlines(), after.splitlines(), "active", "draft",
                                     lineterm=""))


def adopt_rules(
    session: Session, actor: User, text: str, note: str, *, expected_active_id: int | None,
    now: datetime,
) -> RuleSetVersion:
    """Make `text` the rules for new rounds; a stale editor (another adoption since) gets 409."""
    begin_write(session)
    current = active_rule_set(session)
    if (current.id if current else None) != expected_active_id:
        raise Conflict("Someone adopted other rules since you started; review the new active "
                       "rules before adopting yours.")
    if not note.strip():
        raise InvalidRequest("Say what changed and why in the change note.", field="note")
    try:
        version = adopt_rule_set(session, actor, text, parse_rules(text).name, note.strip(), now)
    except RuleError as error:
        session.rollback()
        raise InvalidRequest("The draft has problems: " + "; ".join(
            str(problem) for problem in error.problems), field="text") from error
    session.commit()
    return version


# The settings an admin can tune on the rules form, by key path, with the type each takes.
TUNABLE_SETTINGS = {
    "eligibility.capacity_max": int,
    "eligibility.capacity_target": int,
    "eligibility.min_tenure_months": float,
    "eligibility.max_open_incidents": int,
    "eligibility.cooldown_months": float,
    "caps.max_awards_per_rep_per_round": int,
    "allocation.min_bids_per_listing": int,
}


def settings_of(rules: RuleSet) -> dict[str, Any]:
    """Current values of the tunable settings and of every factor weight."""
    values = {
        "eligibility.capacity_max": rules.eligibility.capacity_max,
        "eligibility.capacity_target": rules.eligibility.capacity_target,
        "eligibility.min_tenure_months": rules.eligibility.min_tenure_months,
        "eligibility.max_open_incidents": rules.eligibility.max_open_incidents,
        "eligibility.cooldown_months": rules.eligibility.cooldown_months,
        "caps.max_awards_per_rep_per_round": rules.caps.max_awards_per_rep_per_round,
        "allocation.min_bids_per_listing": rules.min_bids_per_listing,
        "allocation.method": rules.allocation,
    }
    for index, factor in enumerate(rules.factors):
        values[f"factors[{index}].weight"] = factor.weight
    return values


def apply_settings(text: str, settings: Mapping[str, Any]) -> str:
    """The rule text with the given settings changed (key path -> value; None removes a key).

    The result is regenerated TOML: comments of the original are not kept, which is why the
    rules page shows it as a draft to review, check and replay before adopting.
    """
    import tomllib

    import tomli_w

    data = tomllib.loads(text)
    for path, value in settings.items():
        if path.startswith("factors["):
            index = int(path[len("factors["):path.index("]")])
            data["factors"][index]["weight"] = value
            continue
        section, key = path.split(".")
        table = data.setdefault(section, {})
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return tomli_w.dumps(data)
