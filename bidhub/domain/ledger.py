"""The filing ledger: canonical hashing of filings and verification of the chain."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, float):
        return f"{value:.6f}"
    return value


def filing_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical JSON of a filing's hashed fields (prev_hash included)."""
    payload = {name: _canonical_value(fields.get(name)) for name in HASHED_FIELDS}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LedgerBreak:
    seq: int
    problem: str


def verify_chain(filings: Iterable[Mapping[str, Any]]) -> LedgerBreak | None:
    """The first broken link of filings given in seq order, or None when the chain holds."""
    expected_seq = 1
    prev_hash = GENESIS_HASH
    for filing in filings:
        seq = filing["seq"]
        if seq != expected_seq:
            return LedgerBreak(expected_seq, f"filing {expected_seq} is missing (found {seq} next)")
        if filing["prev_hash"] != prev_hash:
            return LedgerBreak(seq, "does not link to the filing before it")
        if filing_hash(filing) != filing["hash"]:
            return LedgerBreak(seq, "content does not match its hash (edited after filing)")
        prev_hash = filing["hash"]
        expected_seq += 1
    return None


def replay_owners(
    initial_owners: Mapping[int, int | None], filings: Iterable[Mapping[str, Any]]
) -> dict[int, int | None]:
    """Owners after applying every filing in order to the initial ownership."""
    owners = dict(initial_owners)
    for filing in filings:
        owners[filing["account_id"]] = filing["to_rep_id"]
    return owners
