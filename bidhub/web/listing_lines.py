"""The rows of a rep's list of a round, every cell worked out once in the page's language."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from flask import url_for
from flask_babel import get_locale

from bidhub.models import Listing
from bidhub.services.branches import branch_label
from bidhub.services.policies import accepts_bids
from bidhub.web.i18n import format_yuan, format_yuan_compact, speaks_chinese
from bidhub.web.labels import label

# A number no id reaches, put where the id goes in one url_for; see `url_with_id`.
ID_PLACEHOLDER = 987_654_321_012


class ListingLine(NamedTuple):
    """One row of the list. A round lists up to a few hundred accounts, and a filter or
    url_for per cell cost more than the rest of the page; here each is done once a page.
    (A named tuple: built and read faster than a dataclass, and rows are many.)"""

    account_url: str
    name: str
    external_id: str
    industry: str
    ownership: str
    branch: str
    value: str  # in full, the cell's title
    value_compact: str
    bid_url: str  # the rep's active bid; "" when there is none
    hindrances: Sequence[tuple[str, str]]  # reasons not to bid, and what would lift each
    place_bid_url: str  # "" when the listing takes no bids


def url_with_id(endpoint: str, name: str) -> Callable[[int], str]:
    """`url_for(endpoint, **{name: id})` for many ids at the cost of one url_for call."""
    before, found, after = url_for(endpoint, **{name: ID_PLACEHOLDER}).rpartition(
        str(ID_PLACEHOLDER))
    if not found:  # a rule that does not put the id in the path as it is
        return lambda value: url_for(endpoint, **{name: value})
    return lambda value: f"{before}{int(value)}{after}"


def listing_lines(listings: Sequence[Listing], own_bid_ids: Mapping[int, int],
                  hindrances: Mapping[int, Sequence[tuple[str, str]]], now: datetime
                  ) -> list[ListingLine]:
    """The rows for `listings` (with their accounts and branches loaded), given the rep's
    active bid ids by listing and the translated hindrances by listing."""
    account_url = url_with_id("market.account", "account_id")
    bid_url = url_with_id("market.bid_detail", "bid_id")
    place_bid_url = url_with_id("market.place_bid", "listing_id")
    chinese, locale = speaks_chinese(), get_locale()
    ownership: dict[str, str] = {}
    branches: dict[int, str] = {}
    lines = []
    for listing in listings:
        account = listing.account
        if account.ownership_type not in ownership:
            ownership[account.ownership_type] = label(account.ownership_type, "ownership")
        if account.branch_id not in branches:
            branches[account.branch_id] = branch_label(account.branch, locale)
        bid_id = own_bid_ids.get(listing.id)
        lines.append(ListingLine(
            account_url=account_url(account.id), name=account.name,
            external_id=account.external_id, industry=account.industry,
            ownership=ownership[account.ownership_type], branch=branches[account.branch_id],
            value=format_yuan(account.annual_value_yuan),
            value_compact=format_yuan_compact(account.annual_value_yuan, chinese=chinese),
            bid_url=bid_url(bid_id) if bid_id is not None else "",
            hindrances=hindrances.get(listing.id, ()),
            place_bid_url=place_bid_url(listing.id) if accepts_bids(listing, now) else ""))
    return lines
