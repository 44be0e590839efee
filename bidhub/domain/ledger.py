"""The filing ledger: canonical hashing of filings and verification of the chain."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bidhub.domain.text import N_, Text

GENESIS_HASH = "0" * 64

# The fields of a filing that its hash covers, in the order they are documented.
HASHED_FIELDS = (
    "seq",
    "kind",
    "account_id",
    "from_rep_id",
    "to_rep_id",
    "round_id",
    "listing_id",
    "branch_id",
    "reason",
    "winner_score",
    "runner_up_score",
    "rule_set_sha256",
    "override_reason",
    "decided_by_id",
    "decided_at",
    "prev_hash",
)
# Fields added later: hashed only when a filing has them, so that older filings (where they
# are None) keep the hash they were filed with.
OPTIONAL_HASHED_FIELDS = (
    "appeals",  # the appeals on the listing and their answers, as filed
    "requested_by_id",  # who asked for a transfer that someone else decided
)


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, float):
        return f"{value:.6f}"
    return value


def filing_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical JSON of a filing's hashed fields (prev_hash included)."""
    payload = {name: _canonical_value(fields.get(name)) for name in HASHED_FIELDS}
    payload.update((name, fields[name]) for name in OPTIONAL_HASHED_FIELDS
                   if fields.get(name) is not None)
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LedgerBreak:
    seq: int
    problem: Text


def verify_chain(filings: Iterable[Mapping[str, Any]]) -> LedgerBreak | None:
    """The first broken link of filings given in seq order, or None when the chain holds."""
    expected_seq = 1
    prev_hash = GENESIS_HASH
    for filing in filings:
        seq = filing["seq"]
        if seq != expected_seq:
            return LedgerBreak(expected_seq, N_("filing %(seq)d is missing (found %(found)d "
                                                "next)", seq=expected_seq, found=seq))
        if filing["prev_hash"] != prev_hash:
            return LedgerBreak(seq, N_("does not link to the filing before it"))
        try:
            intact = filing_hash(filing) == filing["hash"]
        except (TypeError, ValueError):  # a value no filing is written with (bytes, say)
            intact = False
        if not intact:
            return LedgerBreak(seq, N_("content does not match its hash (edited after filing)"))
        prev_hash = filing["hash"]
        expected_seq += 1
    return None


def check_history(filings: Iterable[Mapping[str, Any]]) -> list[LedgerProblem]:
    """Filings, given in seq order, that do not follow from the ones before them.

    Each filing moves its account from the owner the filings before it leave it with (nobody,
    before the account's first filing) to someone else. A filing that names another previous
    owner, or gives the account to the rep who holds it already, records a change of owner that
    never happened: written beside `services.ownership.change_owners`, it can agree with the
    chain, the checkpoints and today's owners all the same.
    """
    held: dict[int, int | None] = {}
    problems = []
    for filing in filings:
        seq, account_id = filing["seq"], filing["account_id"]
        before = held.get(account_id)
        if filing["from_rep_id"] != before:
            problems.append(LedgerProblem(seq, N_(
                "filing %(seq)d moves account %(account)d from rep %(claimed)s, but the filings "
                "before it leave it with rep %(held)s: it records a change of owner that did "
                "not happen", seq=seq, account=account_id, claimed=filing["from_rep_id"],
                held=before), "owner"))
        elif filing["to_rep_id"] == before:
            problems.append(LedgerProblem(seq, N_(
                "filing %(seq)d gives account %(account)d to rep %(rep)s, who holds it already: "
                "it records no change of owner", seq=seq, account=account_id, rep=before),
                "owner"))
        held[account_id] = filing["to_rep_id"]
    return problems


def replay_owners(
    initial_owners: Mapping[int, int | None], filings: Iterable[Mapping[str, Any]]
) -> dict[int, int | None]:
    """Owners after applying every filing in order to the initial ownership."""
    owners = dict(initial_owners)
    for filing in filings:
        owners[filing["account_id"]] = filing["to_rep_id"]
    return owners


# --- anchoring the chain outside the database ------------------------------------------------

@dataclass(frozen=True)
class Checkpoint:
    """One line of the checkpoint file: a filing's sequence number and hash, with an HMAC.

    `register` names the database whose register the filing is in (the id it keeps, see
    services.ledger.REGISTER_MARKER), so that databases sharing a checkpoint file (a demo and a
    real one made in the same folder, say) are each checked against their own lines only.
    Lines written before registers had ids have none, and count for every register.
    """

    seq: int
    hash: str
    mac: str
    line: int = 0
    register: str | None = None

    def is_for(self, register: str | None) -> bool:
        return self.register is None or self.register == register


def checkpoint_mac(key: bytes, seq: int, filing_hash_: str, register: str | None = None) -> str:
    """The HMAC of a line: over its register too, when it names one, so that a line cannot
    be moved to another register."""
    message = f"{seq}:{filing_hash_}" if register is None else f"{register}:{seq}:{filing_hash_}"
    return hmac.new(key, message.encode("ascii"), hashlib.sha256).hexdigest()


def sign_checkpoint(key: bytes, seq: int, filing_hash_: str,
                    register: str | None = None) -> Checkpoint:
    return Checkpoint(seq, filing_hash_, checkpoint_mac(key, seq, filing_hash_, register),
                      register=register)


@dataclass(frozen=True)
class LedgerProblem:
    """Something wrong with the register; `seq` is the filing it concerns, when there is one."""

    seq: int | None
    problem: Text
    kind: str = "chain"  # chain | checkpoint | owner

    @property
    def names_its_filing(self) -> bool:
        """Whether the message itself says which filing (`filing %(seq)d is missing`)."""
        params = getattr(self.problem, "params", {})
        return self.seq is not None and self.seq in (params.get("seq"), params.get("first"))


def check_against_checkpoints(
    key: bytes, chain: Mapping[int, str], checkpoints: Iterable[Checkpoint],
    register: str | None = None,
) -> list[LedgerProblem]:
    """Compare the filings in the database (seq -> hash) with the checkpoints kept outside it.

    A checkpoint whose HMAC does not verify was not written by bidhub. Only the lines of the
    database's `register` (and lines that name none) are compared: a checkpointed filing
    that is missing means filings were deleted (the first missing one is named); a
    checkpointed filing with another hash means the chain was rewritten and re-hashed from
    there on. A register with filings and no line of its own, in a file holding other
    registers' lines, was replaced or given another id: its whole chain is unanchored. A
    filing without a checkpoint was added behind the app's back (the database refuses changes
    to filings, not new ones), or its checkpoint could not be written: the first is named.
    """
    problems: list[LedgerProblem] = []
    signed = []
    for checkpoint in checkpoints:
        if not hmac.compare_digest(checkpoint_mac(key, checkpoint.seq, checkpoint.hash,
                                                  checkpoint.register), checkpoint.mac):
            problems.append(LedgerProblem(
                checkpoint.seq, N_("checkpoint line %(line)d has a wrong HMAC (not written "
                                   "with this installation's key)", line=checkpoint.line),
                "checkpoint"))
            continue
        signed.append(checkpoint)
    own = checkpoints_of_register(chain, signed, register)
    others = len(signed) - len(own)
    trusted = {checkpoint.seq: checkpoint.hash for checkpoint in own}
    runs = len(older_runs(signed))
    if not chain and not trusted and runs > 1:
        # Which run was this register's cannot be told without a filing to match: say so
        # rather than call it intact (it may have been wiped) or tampered with.
        problems.append(LedgerProblem(1, N_(
            "the register has no filings, but the checkpoint file holds filings of %(runs)d "
            "databases written by an older version, which did not name their register: if "
            "this database had filings, they were deleted", runs=runs), "checkpoint"))
    if not trusted and chain and others:
        problems.append(LedgerProblem(
            min(chain), N_("no checkpoint is kept for this database's register (%(register)s):"
                           " the checkpoint file holds %(others)d checkpoints of other "
                           "registers only, so filings %(first)d to %(last)d are not "
                           "anchored outside the database (it was replaced, or its "
                           "register's id was changed)", register=register or "none",
                           others=others, first=min(chain), last=max(chain)),
            "checkpoint"))
        return problems
    problems.extend(unanchored(chain, trusted))
    if not trusted:
        return problems
    missing = sorted(seq for seq in trusted if seq not in chain)
    if missing:
        last_in_database = max(chain, default=0)
        first = min(missing)
        if first > last_in_database:
            first = last_in_database + 1
        problems.append(LedgerProblem(
            first, N_("filing %(seq)d is missing: checkpoints record filings up to %(last)d, "
                      "the database has filings up to %(database_last)d", seq=first,
                      last=max(trusted), database_last=last_in_database)
            if last_in_database else
            N_("filing %(seq)d is missing: checkpoints record filings up to %(last)d, the "
               "database has none", seq=first, last=max(trusted)),
            "checkpoint"))
    differing = sorted(seq for seq, expected in trusted.items()
                       if seq in chain and chain[seq] != expected)
    if differing:
        problems.append(LedgerProblem(
            differing[0], N_("filing %(seq)d differs from its checkpoint (the chain was "
                             "rewritten from here on)", seq=differing[0]), "checkpoint"))
    return problems


def checkpoints_of_register(chain: Mapping[int, str], checkpoints: Iterable[Checkpoint],
                            register: str | None) -> list[Checkpoint]:
    """The checkpoints (in file order) that record the filings of `register`, whose filings
    are `chain` (seq -> hash): its own lines, and the lines written before lines named their
    register.

    Those older lines have no register. A file that one database wrote holds each filing
    number once among them; one that several databases made in the same folder shared (a demo,
    then a real database) holds a run of them per database, each run starting where a number
    comes again. With several runs, the runs of this register are those that record one of its
    filings as it is; a run that records none is another database's. A single run is this
    register's whatever it records, as it always was, so a wiped or rewritten register is
    still found against it; and a register whose filings match no run at all has, when it has
    no line of its own either, no checkpoint (reported as such)."""
    checkpoints = list(checkpoints)
    runs = older_runs(checkpoints)
    older: set[int] = set()  # ids of the older lines that are this register's
    for run in runs:
        if len(runs) == 1 or any(chain.get(line.seq) == line.hash for line in run):
            older.update(id(line) for line in run)
    return [checkpoint for checkpoint in checkpoints
            if checkpoint.register == register and checkpoint.register is not None
            or id(checkpoint) in older]


def older_runs(checkpoints: Iterable[Checkpoint]) -> list[list[Checkpoint]]:
    """The lines without a register, in file order, cut into one run per database that wrote
    them: a run ends where a filing number it holds comes again."""
    runs: list[list[Checkpoint]] = []
    seen: set[int] = set()
    for checkpoint in checkpoints:
        if checkpoint.register is not None:
            continue
        if not runs or checkpoint.seq in seen:
            runs.append([])
            seen = set()
        runs[-1].append(checkpoint)
        seen.add(checkpoint.seq)
    return runs


# The runs of unanchored filings named one by one; any after them are named together.
RUNS_NAMED = 5


def unanchored(chain: Mapping[int, str], trusted: Mapping[int, str]) -> list[LedgerProblem]:
    """The filings that no checkpoint records, a problem per run of consecutive filings: the
    first RUNS_NAMED runs each by their filings, any later ones together by the filings they
    lie between."""
    missing = sorted(seq for seq in chain if seq not in trusted)
    if not missing:
        return []
    runs = [[missing[0], missing[0]]]
    for seq in missing[1:]:
        if seq == runs[-1][1] + 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    problems = []
    for first, last in runs[:RUNS_NAMED]:
        if first == last:
            problem = N_("filing %(seq)d has no checkpoint outside the database: it was added "
                         "behind the app's back, or its checkpoint could not be written (see the "
                         "log)", seq=first)
        else:
            problem = N_("filings %(first)d to %(last)d have no checkpoint outside the database:"
                         " they were added behind the app's back, or their checkpoints could not"
                         " be written (see the log)", first=first, last=last)
        problems.append(LedgerProblem(first, problem, "checkpoint"))
    if len(runs) > RUNS_NAMED:
        first, last = runs[RUNS_NAMED][0], runs[-1][1]
        problems.append(LedgerProblem(first, N_(
            "between filings %(first)d and %(last)d, further filings have no checkpoint outside "
            "the database either", first=first, last=last), "checkpoint"))
    return problems


def owner_mismatches(replayed: Mapping[int, int | None], current: Mapping[int, int | None]
                     ) -> list[tuple[int, int | None, int | None]]:
    """(account, its owner in the database, the owner its filings give) for each account whose
    two owners differ, by account id."""
    return [(account_id, current.get(account_id), replayed.get(account_id))
            for account_id in sorted(set(replayed) | set(current))
            if replayed.get(account_id) != current.get(account_id)]


def check_owners(
    replayed: Mapping[int, int | None], current: Mapping[int, int | None],
    last_filing_of: Mapping[int, int], account_name: Callable[[int], str] = str,
    rep_name: Callable[[int], str] = str,
) -> list[LedgerProblem]:
    """Accounts whose owner in the database is not the one their filings give; the account
    and the reps as `account_name` and `rep_name` give them (their ids by default)."""
    problems = []
    for account_id, actual, expected in owner_mismatches(replayed, current):
        names = {"account": account_name(account_id)}
        if actual is None:
            message = N_("account %(account)s is held by no rep in the database, but its "
                         "filings give it to %(expected)s: its holder was changed without a "
                         "filing", expected=rep_name(expected), **names)
        elif expected is None:
            message = N_("account %(account)s is held by %(actual)s in the database, but its "
                         "filings give it to no rep: its holder was changed without a filing",
                         actual=rep_name(actual), **names)
        else:
            message = N_("account %(account)s is held by %(actual)s in the database, but its "
                         "filings give it to %(expected)s: its holder was changed without a "
                         "filing", actual=rep_name(actual), expected=rep_name(expected), **names)
        problems.append(LedgerProblem(last_filing_of.get(account_id), message, "owner"))
    return problems
