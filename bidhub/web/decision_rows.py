"""The round page's adjudication rows as plain values, worked out in one pass per page.

The table repeats the same lookups for every listing (the proposed bid, the margin, each flag's
bidders and notes, the override choices, two URLs); done by the template row by row they were
most of the page's rendering time. The template only places these values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from flask import url_for
from markupsafe import Markup

from bidhub.models import DecisionKind
from bidhub.services.adjudication import ListingReview, RoundDecision
from bidhub.web.i18n import translate
from bidhub.web.rendering import score

# A listing id no round reaches: its digits mark where a URL carries the id.
_MARKER = 9_876_543_210


class FlagBadge(NamedTuple):
    flag: str
    label: str
    # The flagged bidders and why, one per line; None for a flag of the listing, not of a bid.
    title: Markup | None


class OverrideChoice(NamedTuple):
    bid_id: int
    rank: int | str
    name: str
    total: str


class DecisionRow(NamedTuple):
    """One listing's row of the adjudication table (a tuple: a page builds one per listing)."""

    listing_id: int
    href: str
    action: str
    name: str
    external_id: str
    bid_count: int
    badges: list[FlagBadge]
    proposed_name: str
    proposed_total: str
    margin: str
    decision: RoundDecision | None
    decision_label: str
    has_no_bids: bool
    can_decide: bool
    # Offered only when deciding: accepting the proposed winner, another eligible bidder, none.
    may_accept: bool
    others: list[OverrideChoice]
    may_refuse: bool


class _ListingUrl:
    """An endpoint's URL for any listing id, built by `url_for` once per page."""

    def __init__(self, endpoint: str) -> None:
        self.before, _, self.after = url_for(endpoint, listing_id=_MARKER).partition(
            str(_MARKER))

    def __call__(self, listing_id: int) -> str:
        return f"{self.before}{listing_id}{self.after}"


def decision_rows(reviews: Iterable[ListingReview], text, *, can_decide: bool,
                  reopened: Iterable[int] = ()) -> list[DecisionRow]:
    """The rows of these reviews, in their order; `text` holds the labels translated once
    (manage.decision_row_text). In the standstill window only a listing an upheld appeal sent
    back (`reopened`) is decided again."""
    listing_url, decide_url = _ListingUrl("manage.listing"), _ListingUrl("manage.decide")
    reopened = set(reopened)
    rows = []
    for review in reviews:
        listing, decision, proposed = review.listing, review.decision, review.proposed
        # ListingReview.margin and the override's choices, from one pass over the ranking.
        others = [bid for bid in review.eligible if bid is not proposed]
        margin = (proposed.score.total - max(bid.score.total for bid in others)
                  if proposed is not None and others else None)
        deciding = (can_decide or listing.id in reopened) and not review.has_no_bids
        rows.append(DecisionRow(
            listing_id=listing.id, href=listing_url(listing.id), action=decide_url(listing.id),
            name=listing.account.name, external_id=listing.account.external_id,
            bid_count=len(review.ranking), badges=_badges(review, text),
            proposed_name=proposed.rep.display_name if proposed else "—",
            proposed_total=score(proposed.score.total) if proposed else "—",
            margin=score(margin) if margin is not None else "—",
            decision=decision,
            decision_label=text.kinds[decision.kind] if decision is not None else "",
            has_no_bids=review.has_no_bids, can_decide=deciding,
            may_accept=deciding and proposed is not None and not (
                decision is not None and decision.kind == DecisionKind.ACCEPTED),
            others=[OverrideChoice(bid.id, bid.score.rank or "—", bid.rep.display_name,
                                   score(bid.score.total))
                    for bid in others] if deciding else [],
            may_refuse=deciding and not (
                decision is not None and decision.kind == DecisionKind.NO_AWARD)))
    return rows


def _badges(review: ListingReview, text) -> list[FlagBadge]:
    badges = []
    for flag in review.flags:
        flagged = review.flagged_bids(flag)
        title = Markup("&#10;").join(
            Markup("{}: {}").format(bid.rep.display_name, translate(found.note))
            for bid, found in flagged) if flagged else None
        badges.append(FlagBadge(flag, text.flags[flag], title))
    return badges
