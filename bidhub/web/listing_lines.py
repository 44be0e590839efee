"""The rows of a rep's list of a round, every cell worked out once in the page's language."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from flask import url_for
from flask_babel import get_locale

from bidhub.domain.text import Text
from bidhub.models import ListingStatus
from bidhub.services.branches import branch_label
from bidhub.services.browse import BranchChoice, ListingRow
from bidhub.services.policies import Hindrance
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


def listing_lines(rows: Sequence[ListingRow], hindrances: Mapping[int, Sequence[tuple[str, str]]],
                  takes_bids: bool) -> list[ListingLine]:
    """The lines for `rows` (browse.listings_for_rep), given the translated hindrances by
    listing and whether the round takes bids now."""
    account_url = url_with_id("market.account", "account_id")
    bid_url = url_with_id("market.bid_detail", "bid_id")
    place_bid_url = url_with_id("market.place_bid", "listing_id")
    chinese, locale = speaks_chinese(), get_locale()
    ownership: dict[str, str] = {}
    branches: dict[int, str] = {}
    lines = []
    listed = ListingStatus.LISTED
    for row in rows:
        if row.ownership_type not in ownership:
            ownership[row.ownership_type] = label(row.ownership_type, "ownership")
        if row.branch_id not in branches:
            branches[row.branch_id] = branch_label(
                BranchChoice(row.branch_id, row.branch_name, row.branch_name_zh), locale)
        value = row.annual_value_yuan
        lines.append(ListingLine(
            account_url=account_url(row.account_id), name=row.name,
            external_id=row.external_id, industry=row.industry,
            ownership=ownership[row.ownership_type], branch=branches[row.branch_id],
            value=format_yuan(value), value_compact=format_yuan_compact(value, chinese=chinese),
            bid_url=bid_url(row.own_bid_id) if row.own_bid_id is not None else "",
            hindrances=hindrances.get(row.id, ()),
            # accepts_bids (policies), for a row of a round whose openness is known.
            place_bid_url=place_bid_url(row.id) if takes_bids and row.status == listed else ""))
    return lines


def translated_hindrances(found: Mapping[int, Sequence[Hindrance]],
                          show: Callable[[Text | None], str]) -> dict[int, list[tuple[str, str]]]:
    """Each listing's reasons not to bid and what would lift them, in the page's language
    (`show` translates one message). A rep's reasons are mostly the same on every line (their
    capacity, their tenure), so each distinct one is translated once a page."""
    said: dict[tuple, tuple[str, str]] = {}

    def shown(item: Hindrance) -> tuple[str, str]:
        key = (_key(item.reason), _key(item.remedy))
        if key not in said:
            said[key] = (show(item.reason), show(item.remedy))
        return said[key]

    return {listing_id: [shown(item) for item in items] for listing_id, items in found.items()}


def _key(text: Text | None) -> tuple | None:
    """What makes two messages the same (Text's equality), cheaper to hash than Text."""
    return None if text is None else (text.msgid, tuple(text.params.items()))
