"""Tie-breaks: the registry of ways to order bids of one listing whose totals are equal.

Each entry maps a bid (and the round's lottery seed) to a sort key, smaller first; the rules'
`tie_break` list applies them in turn, and rules/README.md documents the same entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bidhub.domain.facts import BidFacts


@dataclass(frozen=True)
class TieBreak:
    """`description` says which bid ranks first; `key(bid, seed)` sorts it (smaller first)."""

    name: str
    description: str
    key: Callable[[BidFacts, int], Any]


def lottery_ticket(seed: int, bid_id: int) -> str:
    """The bid's lottery draw: anyone with the published seed can recompute it."""
    return hashlib.sha256(f"{seed}:{bid_id}".encode()).hexdigest()


TIE_BREAKS: dict[str, TieBreak] = {
    tie_break.name: tie_break for tie_break in (
        TieBreak("fewest_accounts_held",
                 "the bidder holding fewer accounts first (spreads the work)",
                 lambda bid, seed: bid.accounts_held),
        TieBreak("earliest_submission", "the earlier bid first",
                 lambda bid, seed: bid.submitted_at),
        TieBreak("lottery",
                 'a seeded draw: the bid\'s ticket is SHA-256 of `"<seed>:<bid id>"`, the '
                 "smaller ticket first. The seed is drawn when the round is scored and "
                 "published with it, so anyone can recompute the draw",
                 lambda bid, seed: lottery_ticket(seed, bid.bid_id)),
    )
}
DEFAULT_TIE_BREAK = ("fewest_accounts_held", "earliest_submission")
