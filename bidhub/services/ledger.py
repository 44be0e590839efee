"""The filing register's anchor outside the database: checkpoints, and verifying against them."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import String, event, select, type_coerce
from sqlalchemy.orm import Session, sessionmaker

from bidhub.domain.ledger import (
    HASHED_FIELDS,
    OPTIONAL_HASHED_FIELDS,
    Checkpoint,
    LedgerProblem,
    check_against_checkpoints,
    check_history,
    check_owners,
    checkpoints_of_register,
    older_runs,
    owner_mismatches,
    sign_checkpoint,
    verify_chain,
)
from bidhub.domain.text import N_
from bidhub.models import Account, Filing, InstanceMarker, User

log = logging.getLogger(__name__)

ANCHOR_INFO_KEY = "bidhub_ledger_anchor"
PENDING_INFO_KEY = "bidhub_unanchored_filings"
REGISTER_INFO_KEY = "bidhub_ledger_register"
# The instance marker holding the register's id: random, made with the database (migration
# 0011), written into each checkpoint line so that databases sharing a checkpoint file are
# each checked against their own lines.
REGISTER_MARKER = "ledger_register"
REGISTER_ID = select(InstanceMarker.value).where(InstanceMarker.name == REGISTER_MARKER)


class CheckpointStore:
    """An append-only file of signed (seq, hash) lines, one per filing, kept outside the database.

    Anyone who can rewrite the database but not this file (or the copy a manager keeps of the
    head shown on the register page) cannot delete the newest filings or re-hash a forged chain
    unnoticed. The HMAC key lives beside the file, never in the database.
    """

    def __init__(self, path: str | Path, key: bytes) -> None:
        self.path = Path(path)
        self.key = key

    def append(self, filings: list[tuple[int, str]], now: datetime,
               register: str | None = None) -> None:
        if not filings:
            return
        lines = []
        for seq, filing_hash in sorted(filings):
            checkpoint = sign_checkpoint(self.key, seq, filing_hash, register)
            line = {"seq": seq, "hash": filing_hash, "mac": checkpoint.mac,
                    "at": now.astimezone(UTC).isoformat(timespec="seconds")}
            if register is not None:
                line["register"] = register
            lines.append(json.dumps(line, separators=(",", ":")) + "\n")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            # Several workers append at once; the lock keeps each batch's lines together.
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            os.write(descriptor, "".join(lines).encode("ascii"))
            os.fsync(descriptor)
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)

    def read(self) -> tuple[list[Checkpoint], list[LedgerProblem]]:
        """Every checkpoint in the file, and a problem for each line that cannot be read."""
        if not self.path.exists():
            return [], []
        checkpoints, problems = [], []
        try:
            with self.path.open("r", encoding="ascii", errors="replace") as lines:
                for number, line in enumerate(lines, start=1):
                    if not line.strip():
                        continue
                    try:
                        checkpoints.append(checkpoint_of(json.loads(line), number))
                    except (ValueError, KeyError, TypeError):
                        problems.append(LedgerProblem(None, N_("checkpoint line %(line)d is not "
                                                               "readable", line=number),
                                                      "checkpoint"))
        except OSError as error:  # a folder, or a file this user may not read
            return [], [LedgerProblem(None, N_(
                "the checkpoint file %(path)s cannot be read: %(reason)s", path=str(self.path),
                reason=str(error.strerror or error)), "checkpoint")]
        return checkpoints, problems

    # The newest checkpoints are at the end; the register page reads only this much of it.
    HEAD_WINDOW_BYTES = 64 * 1024

    def head(self, register: str | None = None) -> Checkpoint | None:
        """The newest checkpoint line naming `register` (or, for None, naming none), read
        from the end of the file (which only ever grows). Lines written before lines named
        their register may be another database's: `register_checkpoint` sorts them out.

        The register page shows it on every request, so each process keeps the last head it
        read with the file's identity, size and modification time, and reads the file again
        only when one of them changed."""
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return None
        seen = (status.st_ino, status.st_size, status.st_mtime_ns)
        kept = _heads_read.get((self.path, register))
        if kept is not None and kept[0] == seen:
            return kept[1]
        newest = self._read_head(register)
        _heads_read[(self.path, register)] = (seen, newest)
        return newest

    def _read_head(self, register: str | None) -> Checkpoint | None:
        with self.path.open("rb") as checkpoints:
            size = checkpoints.seek(0, os.SEEK_END)
            checkpoints.seek(max(0, size - self.HEAD_WINDOW_BYTES))
            tail = checkpoints.read().decode("ascii", errors="replace").splitlines()
        if size > self.HEAD_WINDOW_BYTES:
            tail = tail[1:]  # the first line of the window may be cut
        newest = None
        for line in tail:
            try:
                checkpoint = checkpoint_of(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue
            if checkpoint.register == register and (newest is None
                                                    or checkpoint.seq > newest.seq):
                newest = checkpoint
        if newest is None and size > self.HEAD_WINDOW_BYTES:
            # The end of the file is another register's: read all of it.
            newest = max((checkpoint for checkpoint in self.read()[0]
                          if checkpoint.register == register),
                         key=lambda checkpoint: checkpoint.seq, default=None)
        return newest


def checkpoint_of(record: dict, line: int = 0) -> Checkpoint:
    """A checkpoint line as read (ValueError, KeyError or TypeError when it is not one)."""
    register = record.get("register")
    if register is not None and not isinstance(register, str):
        raise TypeError(register)
    return Checkpoint(int(record["seq"]), str(record["hash"]), str(record["mac"]), line,
                      register)


# The newest checkpoint of each file and register this process read, with the file's
# (inode, size, mtime).
_heads_read: dict[tuple[Path, str | None],
                  tuple[tuple[int, int, int], Checkpoint | None]] = {}


def ledger_key(configured: str | None, instance_path: str) -> bytes:
    """The HMAC key: BIDHUB_LEDGER_KEY, or a key file in the instance folder made on first use."""
    if configured:
        return configured.encode("utf-8")
    path = Path(instance_path) / "ledger_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as key_file:
                key_file.write(secrets.token_hex(32))
    return path.read_text().strip().encode("utf-8")


def ledger_anchor_of_config(app) -> CheckpointStore:
    """The app's checkpoint store, from LEDGER_CHECKPOINT_FILE and LEDGER_KEY, wired into
    every session the app opens (web, CLI and scheduler alike)."""
    path = app.config.get("LEDGER_CHECKPOINT_FILE") or str(
        Path(app.instance_path) / "ledger-checkpoints.jsonl")
    store = CheckpointStore(path, ledger_key(app.config.get("LEDGER_KEY"), app.instance_path))
    anchor_sessions(app.extensions["bidhub_sessionmaker"], store)
    app.extensions["bidhub_ledger_anchor"] = store
    return store


def anchor_sessions(factory: sessionmaker, store: CheckpointStore) -> None:
    """Make every session of `factory` write a checkpoint for each filing it commits."""
    factory.kw.setdefault("info", {})[ANCHOR_INFO_KEY] = store

    @event.listens_for(factory, "after_commit")
    def write_checkpoints(session: Session) -> None:
        pending = session.info.pop(PENDING_INFO_KEY, None)
        if not pending:
            return
        try:
            store.append(pending, datetime.now(UTC), session.info.get(REGISTER_INFO_KEY))
        except OSError:
            # The filings are committed; verify-ledger will report the gap in the checkpoints.
            log.exception("could not write ledger checkpoints for filings %s", pending)

    @event.listens_for(factory, "after_rollback")
    def forget_rolled_back(session: Session) -> None:
        session.info.pop(PENDING_INFO_KEY, None)


def note_new_filing(session: Session, seq: int, filing_hash: str) -> None:
    """Remember a filing written in this transaction, to checkpoint it once it is committed
    with the register's id (read once per session: a database keeps its id)."""
    if REGISTER_INFO_KEY not in session.info:
        session.info[REGISTER_INFO_KEY] = session.scalar(REGISTER_ID)
    session.info.setdefault(PENDING_INFO_KEY, []).append((seq, filing_hash))


def checkpoint_store(session: Session) -> CheckpointStore | None:
    return session.info.get(ANCHOR_INFO_KEY)


@dataclass
class LedgerReport:
    filings: int = 0
    checkpoints: int = 0
    problems: list[LedgerProblem] = field(default_factory=list)

    @property
    def is_intact(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> LedgerProblem | None:
        """The earliest break in the register itself; owners that no longer match their
        filings are usually its consequence, so they come first only when nothing else is."""
        def earliest(problems: list[LedgerProblem]) -> LedgerProblem | None:
            numbered = [problem for problem in problems if problem.seq is not None]
            return min(numbered, key=lambda problem: problem.seq, default=None) or (
                problems[0] if problems else None)

        return (earliest([problem for problem in self.problems if problem.kind != "owner"])
                or earliest(self.problems))


def verify_ledger(session: Session, store: CheckpointStore | None = None) -> LedgerReport:
    """Check the register: its hash chain, the checkpoints outside the database, that each
    filing moves its account from the owner the filings before it give (`check_history`), and
    that replaying every filing over unowned accounts gives each account's owner today."""
    store = store or checkpoint_store(session)
    report = LedgerReport()
    rows = filings_as_stored(session)
    report.filings = len(rows)
    broken = verify_chain(rows)
    if broken is not None:
        report.problems.append(LedgerProblem(broken.seq, broken.problem))
    if store is not None:
        checkpoints, unreadable = store.read()
        register = session.scalar(REGISTER_ID)
        chain = {row["seq"]: row["hash"] for row in rows}
        report.checkpoints = len(checkpoints_of_register(chain, checkpoints, register))
        report.problems.extend(unreadable)
        report.problems.extend(check_against_checkpoints(store.key, chain, checkpoints,
                                                         register))
    report.problems.extend(check_history(rows))
    replayed: dict[int, int | None] = {}
    last_filing_of: dict[int, int] = {}
    for row in rows:
        replayed[row["account_id"]] = row["to_rep_id"]
        last_filing_of[row["account_id"]] = row["seq"]
    current = {account_id: owner_id for account_id, owner_id in session.execute(
        select(Account.id, Account.owner_id)) if owner_id is not None or account_id in replayed}
    replayed = {account_id: replayed.get(account_id) for account_id in current}
    mismatches = owner_mismatches(replayed, current)
    accounts, reps = names_of_owners(session, mismatches)
    report.problems.extend(check_owners(
        replayed, current, last_filing_of,
        account_name=lambda account_id: accounts.get(account_id, str(account_id)),
        rep_name=lambda rep_id: reps.get(rep_id, str(rep_id))))
    session.rollback()
    return report


def names_of_owners(session: Session, mismatches) -> tuple[dict[int, str], dict[int, str]]:
    """The accounts (number and name) and the reps (name and username) that owner mismatches
    name, so that a report says who and which, not ids."""
    account_ids = {account_id for account_id, _actual, _expected in mismatches}
    rep_ids = {rep_id for _account, *owners in mismatches for rep_id in owners
               if rep_id is not None}
    accounts = {account_id: f"{number} {name}" for account_id, number, name in session.execute(
        select(Account.id, Account.external_id, Account.name)
        .where(Account.id.in_(account_ids)))} if account_ids else {}
    reps = {rep_id: f"{name} ({username})" for rep_id, name, username in session.execute(
        select(User.id, User.display_name, User.username).where(User.id.in_(rep_ids)))
            } if rep_ids else {}
    return accounts, reps


FILING_FIELDS = select(*(getattr(Filing, name) for name in HASHED_FIELDS
                         + OPTIONAL_HASHED_FIELDS + ("hash",))).order_by(Filing.seq)
# The same fields as the database holds them, none read as its type.
FILING_FIELDS_AS_STORED = select(*(type_coerce(getattr(Filing, name), String).label(name)
                                   for name in HASHED_FIELDS + OPTIONAL_HASHED_FIELDS
                                   + ("hash",))).order_by(Filing.seq)


def filings_as_stored(session: Session) -> list:
    """Every filing's hashed fields and hash, in seq order.

    SQLite keeps whatever a column is given, so a filing edited behind the app's back may
    hold a value no filing is written with (text where its time belongs, a broken JSON
    document) that cannot be read as its type. Such a filing is read as stored instead, which
    its hash does not match: it is reported at its number rather than ending the check."""
    try:
        return list(session.execute(FILING_FIELDS).mappings())
    except (TypeError, ValueError):
        session.rollback()
    rows = []
    for seq in session.scalars(select(Filing.seq).order_by(Filing.seq)).all():
        try:
            rows.extend(session.execute(FILING_FIELDS.where(Filing.seq == seq)).mappings())
        except (TypeError, ValueError):
            rows.extend(session.execute(
                FILING_FIELDS_AS_STORED.where(Filing.seq == seq)).mappings())
    return rows


@dataclass(frozen=True)
class LedgerHead:
    """The newest filing in the database, and the newest checkpoint kept outside it."""

    seq: int
    hash: str
    checkpoint: Checkpoint | None

    @property
    def is_anchored(self) -> bool:
        return self.checkpoint is not None and (self.checkpoint.seq, self.checkpoint.hash) == (
            self.seq, self.hash)

    @property
    def lost_filings(self) -> bool:
        """The checkpoints record filings past the database's newest: those were deleted."""
        return self.checkpoint is not None and self.checkpoint.seq > self.seq

    @property
    def rewritten(self) -> bool:
        """The newest filing's checkpoint records another hash: the filing was rewritten."""
        return (self.checkpoint is not None and self.checkpoint.seq == self.seq
                and self.checkpoint.hash != self.hash)


def ledger_head(session: Session) -> LedgerHead | None:
    """What a manager keeps a copy of: the register's head, to compare with later."""
    newest = session.execute(NEWEST_FILING).first()
    if newest is None:
        return None
    seq, filing_hash, register = newest
    store = checkpoint_store(session)
    return LedgerHead(seq, filing_hash, None if store is None else register_checkpoint(
        session, store, register, (seq, filing_hash)))


def register_checkpoint(session: Session, store: CheckpointStore, register: str | None,
                        newest: tuple[int, str]) -> Checkpoint | None:
    """The newest checkpoint of this database's register, whose newest filing is `newest`
    (seq, hash), as verify-ledger counts its lines: the newest line naming the register, or,
    when none does, the newest of the lines written before lines named their register that
    are this register's (`checkpoints_of_register`); None when no line is. A file several
    databases shared then holds one run of such lines per database, and another database's
    run, which may go further, is never taken for this one's head."""
    if register is not None:
        own = store.head(register)
        if own is not None:  # lines naming the register come after any it wrote unnamed
            return own
    try:
        status = store.path.stat()
    except FileNotFoundError:
        return None
    # Read again when the file changes or the register gets a filing (which run is this
    # register's depends on its filings).
    seen = (status.st_ino, status.st_size, status.st_mtime_ns, newest)
    kept = _older_heads_read.get((store.path, register))
    if kept is not None and kept[0] == seen:
        return kept[1]
    checkpoints = store.read()[0]
    runs = older_runs(checkpoints)
    # One run is this register's whatever it records; with several, its filings say which.
    chain = ({} if len(runs) < 2 else
             dict(session.execute(select(Filing.seq, Filing.hash)).all()))
    head = max((checkpoint for checkpoint in checkpoints_of_register(chain, checkpoints, register)
                if checkpoint.register is None), key=lambda checkpoint: checkpoint.seq,
               default=None)
    _older_heads_read[(store.path, register)] = (seen, head)
    return head


# The newest older line of each file and register this process found, with what it was found
# from: the file's (inode, size, mtime) and the register's newest filing.
_older_heads_read: dict[tuple[Path, str | None],
                        tuple[tuple[int, int, int, tuple[int, str]], Checkpoint | None]] = {}


# Built once: the register page asks for its head on every request, and building the select
# and its cache key cost more than SQLite took to answer it. The register's id comes with it.
NEWEST_FILING = select(Filing.seq, Filing.hash, REGISTER_ID.scalar_subquery()).order_by(
    Filing.seq.desc()).limit(1)


def set_aside_checkpoints(store: CheckpointStore, now: datetime) -> Path | None:
    """Move an earlier database's checkpoints out of the way of a new, empty register, when
    the file holds lines written before registers had ids (they would count for the new
    register too). Lines that name their register stay where they are: the new register is
    checked against its own lines only, and another database's anchor is left in place.

    Only for a database that is known to be new (the demo building into an empty one): the old
    file is kept, renamed, never deleted.
    """
    if not store.path.exists() or store.path.stat().st_size == 0:
        return None
    if all(checkpoint.register is not None for checkpoint in store.read()[0]):
        return None
    kept = store.path.with_name(f"{store.path.name}.before-{now:%Y%m%d-%H%M%S}")
    store.path.rename(kept)
    return kept
