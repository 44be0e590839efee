"""Rule sets: the rule file on disk, stored versions, and the version new rounds use."""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Callable, Mapping, MutableMapping, MutableSequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bidhub.db import unit_of_work
from bidhub.domain.errors import Conflict, InvalidRequest
from bidhub.domain.rules import (
    MAX_RULE_BYTES,
    RuleError,
    RuleProblem,
    RuleSet,
    decode_rule_bytes,
    more_problems,
    parse_new_rules,
    parse_rules,
    read_rule_data,
    rules_too_large,
)
from bidhub.domain.text import N_, Joined, Text
from bidhub.models import AuditEvent, RuleSetVersion, User

ADOPTED = "rules.adopted"  # the audit action of an adoption


class RuleFileError(Exception):
    """The default rule file cannot be used: one paragraph naming the file, keys and reasons.

    It stops start-up, so it reads as a sentence an operator can act on, not a traceback.
    """

    def __init__(self, path: Path, error: RuleError) -> None:
        problems = [str(problem) for problem in error.problems]
        if error.more:
            problems.append(str(more_problems(error.more)))
        super().__init__(
            f"bidhub will not start: the default rule file {path} cannot be used: "
            f"{'; '.join(problems)}. Fix the file (rules/README.md explains every key) or "
            "point BIDHUB_RULES_DIR at a folder with a valid default.toml.")
        self.path = path
        self.error = error


def default_rules_path(config: Mapping[str, Any]) -> Path:
    return Path(config["RULES_DIR"]) / config["DEFAULT_RULES_FILE"]


def read_rule_file(path: Path | str) -> str:
    """The text of a rule file: at most MAX_RULE_BYTES, UTF-8 or GBK; RuleError otherwise."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_RULE_BYTES + 1)  # a huge file is never read whole
            size = os.fstat(file.fileno()).st_size
    except OSError as error:
        raise RuleError([RuleProblem("(file)", None, N_(
            "cannot be read: %(reason)s", reason=str(error.strerror or error)))]) from error
    if len(data) > MAX_RULE_BYTES:
        raise rules_too_large(max(size, len(data)))
    return decode_rule_bytes(data)


def load_default_rules(config: Mapping[str, Any]) -> RuleSet:
    """The default rules, parsed at start-up; RuleFileError when they cannot be used.

    The file is the text a new database adopts (`ensure_active_rule_set`), so it gets the
    checks new rule text gets in the editor (`parse_new_rules`), and fails here, at start,
    with the key, rather than being adopted with a weight that counts for nothing."""
    path = default_rules_path(config)
    try:
        return parse_new_rules(read_rule_file(path))
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
        # rules.text, not text: a byte order mark pasted into the draft is not stored.
        version = RuleSetVersion(sha256=rules.version_hash, name=name, text=rules.text, note=note,
                                 author_id=actor.id if actor else None, created_at=now)
        session.add(version)
    if previous is not None and previous is not version:
        previous.is_active = False
        # Written before the other is marked: the database holds at most one version in
        # force (a unique index), and SQLAlchemy would otherwise update in id order.
        session.flush()
    version.is_active = True
    session.flush()
    record_audit(session, actor, ADOPTED, f"rule_set:{version.id}", now,
                 before={"sha256": previous.sha256} if previous else None,
                 after={"sha256": version.sha256, "note": note})
    return version


def ensure_active_rule_set(session: Session, default_text: str, now: datetime) -> RuleSetVersion:
    """The active version; on a new database, the default rule file becomes it (RuleError,
    nothing adopted, when that text fails the checks new rule text must pass). No commit."""
    version = active_rule_set(session)
    if version is None:
        parse_new_rules(default_text)
        version = adopt_rule_set(session, None, default_text, "default", "initial rules", now)
    return version


def parsed(version: RuleSetVersion) -> RuleSet:
    """The rules of a stored version; bids, decisions and transfers all ask, so parse once."""
    return _parse_stored(version.text)


@functools.lru_cache(maxsize=64)
def _parse_stored(text: str) -> RuleSet:
    # Safe to share: parse_rules is pure and RuleSet is frozen; stored texts never change.
    return parse_rules(text)


@dataclass(frozen=True)
class Adoption:
    """One adoption, as the audit trail recorded it: which version became the rules for new
    rounds, when, by whom (None: bidhub itself, for the initial rules) and why."""

    version: RuleSetVersion
    at: datetime
    actor: User | None
    note: str


def rule_adoptions(session: Session) -> list[Adoption]:
    """Every adoption, newest first. Going back to an earlier version is an adoption of its
    own, so a version adopted twice is listed twice, each time with its own moment, admin and
    note (the version's row keeps those of its first adoption)."""
    versions = {version.id: version for version in session.scalars(select(RuleSetVersion))}
    adoptions = []
    for event, actor in session.execute(
            select(AuditEvent, User).outerjoin(User, User.id == AuditEvent.actor_id)
            .where(AuditEvent.action == ADOPTED).order_by(AuditEvent.id.desc())):
        version = versions.get(_version_id(event.target))
        if version is not None:
            adoptions.append(Adoption(version, event.at, actor, (event.after or {}).get(
                "note", "")))
    audited = {adoption.version.id for adoption in adoptions}
    # A version stored without an audited adoption is still listed, from its own row.
    adoptions.extend(Adoption(version, version.created_at,
                              session.get(User, version.author_id) if version.author_id else None,
                              version.note)
                     for version in sorted(versions.values(), key=lambda version: -version.id)
                     if version.id not in audited)
    return adoptions


def _version_id(target: str) -> int | None:
    prefix, _, number = target.partition(":")
    return int(number) if prefix == "rule_set" and number.isdigit() else None


@dataclass(frozen=True)
class RuleCheck:
    """What a check of a draft found: the rules, or the first problems and how many more."""

    rules: RuleSet | None
    problems: tuple[RuleProblem, ...] = ()
    more: int = 0  # problems beyond those listed

    @property
    def count(self) -> int:
        return len(self.problems) + self.more

    def lines(self) -> list[Text]:
        """One line per listed problem, then "and N more problems" if some were left out. A
        syntax error is its reason alone, which says the line and column, as the page shows it."""
        return [problem.text() for problem in self.problems] + (
            [more_problems(self.more)] if self.more else [])


def check_rules_text(text: str) -> RuleCheck:
    """The parsed draft, or its problems (the first MAX_PROBLEMS and a count of the rest).

    A draft is new rule text: it must pass the checks stored versions are spared."""
    try:
        return RuleCheck(parse_new_rules(text))
    except RuleError as error:
        return RuleCheck(None, tuple(error.problems), error.more)


def rules_diff(before: str, after: str, names: tuple[str, str] = ("active", "draft")
               ) -> list[str]:
    """The draft's changes to the active text as a unified diff; `names` head its two sides
    (the page passes them in its language)."""
    if len(after) > MAX_RULE_BYTES:
        return []  # refused for its size anyway; diffing it would only cost time
    return list(difflib.unified_diff(before.splitlines(), after.splitlines(), *names,
                                     lineterm=""))


def adopt_rules(
    session: Session, actor: User, text: str, note: str, *, expected_active_id: int | None,
    now: datetime,
) -> RuleSetVersion:
    """Make `text` the rules for new rounds; a stale editor (another adoption since) gets 409."""
    with unit_of_work(session):
        # Locked: a second admin adopting at the same moment waits here until the first has
        # committed, then finds other rules in force and is told so (on SQLite the write
        # transaction already lets one writer in at a time).
        current = session.scalars(select(RuleSetVersion).where(RuleSetVersion.is_active)
                                  .with_for_update()).first()
        if (current.id if current else None) != expected_active_id:
            raise Conflict(N_("Someone adopted other rules since you started; review the new active "
                              "rules before adopting yours."))
        if not note.strip():
            raise InvalidRequest(N_("Say what changed and why in the change note."), field="note")
        try:
            rules = parse_new_rules(text)
        except RuleError as error:
            raise InvalidRequest(N_("The draft has problems: %(problems)s", problems=Joined(
                RuleCheck(None, tuple(error.problems), error.more).lines())),
                field="text") from error
        if current is not None and rules.version_hash == current.sha256:
            # Adopting it would keep the stored text (the draft's own comments are dropped)
            # and audit a change that changed nothing.
            raise InvalidRequest(N_("These are the rules in force already: comments and layout "
                                    "do not make a new version, so there is nothing to adopt."),
                                 field="text")
        return adopt_rule_set(session, actor, text, rules.name, note.strip(), now)


def write_settings(text: str, settings: Mapping[str, Any], weights: Mapping[str, float]) -> str:
    """The draft `text` with the numbers changed in the settings form written into it.

    `settings` maps a key path ("eligibility.capacity_max") to its value (None removes the
    key), `weights` a metric to the weight of the factor scoring it, wherever the draft has
    that factor. Only what the admin changed is given, so everything else stays as the draft
    has it, its comments and layout included: the values are changed in place (tomlkit), so
    that the draft's diff against the rules in force shows the numbers changed and nothing
    else. A draft whose layout cannot be edited in place is written afresh from its values,
    without its comments. InvalidRequest, and the draft left as it is, when it cannot be read
    as TOML or no longer scores such a metric.
    """
    if not settings and not weights:
        return text
    try:
        read_rule_data(text)  # the limits every reading of a rule file keeps (size, nesting)
    except RuleError as error:
        raise _not_written(error.problems, error.more) from error
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        document = tomlkit.parse(text)
        _write_numbers(document, settings, weights, tomlkit.table)
        return tomlkit.dumps(document)
    except TOMLKitError:
        import tomli_w

        data = read_rule_data(text)
        _write_numbers(data, settings, weights, dict)
        return tomli_w.dumps(data)


def _write_numbers(data: MutableMapping[str, Any], settings: Mapping[str, Any],
                   weights: Mapping[str, float], new_table: Callable[[], Any]) -> None:
    """write_settings' changes made in `data` (a tomlkit document or plain TOML data), a
    missing section made with `new_table`; InvalidRequest when one has nowhere to go."""
    factors = data.get("factors")
    problems = []
    for metric, weight in weights.items():
        factor = next((factor for factor in factors if isinstance(factor, MutableMapping)
                       and factor.get("metric") == metric), None) if isinstance(
            factors, MutableSequence) else None
        if factor is None:
            problems.append(RuleProblem("factors", None, N_(
                "the draft has no factor scoring %(metric)s any more, so the weight set for it "
                "in the form has nowhere to go", metric=metric)))
        else:
            factor["weight"] = weight
    for path, value in settings.items():
        section, key = path.split(".")
        if value is None and section not in data:
            continue  # nothing to remove
        if section not in data:
            data[section] = new_table()
        table = data[section]
        if not isinstance(table, MutableMapping):
            problems.append(RuleProblem(section, None, N_(
                "is not a table in the draft, so %(key)s cannot be written into it", key=key)))
        elif value is None:
            table.pop(key, None)
        else:
            table[key] = value
    if problems:
        raise _not_written(problems)


def _not_written(problems: list[RuleProblem], more: int = 0) -> InvalidRequest:
    return InvalidRequest(N_("The numbers were not written into your draft, which is kept as "
                             "it was: %(problems)s", problems=Joined(
                                 RuleCheck(None, tuple(problems), more).lines())))
