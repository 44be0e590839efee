"""Why a bid was not proposed, as a page shows it: the round's other listings by name.

An allocation reason names the listings a rep wins elsewhere in the round as "#<listing id>"
(`_listing_list` in bidhub/domain/allocation.py), and it is stored so with the bid's score. A
listing id is shown nowhere else, so a page puts the listed account's name in its place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from bidhub.domain.messages import loads
from bidhub.domain.text import Joined, Text
from bidhub.models import Account, Listing
from bidhub.web.i18n import translate

LISTING_MENTION = re.compile(r"#([0-9]+)")

Message = Text | Joined | str


def mentioned_listings(message: Message) -> set[int]:
    """The listing ids a reason names, each a whole parameter or part of its own."""
    if isinstance(message, Text):
        return set().union(*(mentioned_listings(value) for value in message.params.values()
                             if isinstance(value, Text | Joined | str)))
    if isinstance(message, Joined):
        return set().union(*(mentioned_listings(part) for part in message.parts))
    mention = LISTING_MENTION.fullmatch(message)
    return {int(mention.group(1))} if mention else set()


def with_listing_names(message: Message, names: Mapping[int, str]) -> Message:
    """The reason with each listing it names as its account's name, where `names` has it."""
    if isinstance(message, Text):
        return Text(message.msgid, {name: with_listing_names(value, names)
                                    if isinstance(value, Text | Joined | str) else value
                                    for name, value in message.params.items()})
    if isinstance(message, Joined):
        return Joined([with_listing_names(part, names) for part in message.parts],
                      message.separator)
    mention = LISTING_MENTION.fullmatch(message)
    return names.get(int(mention.group(1)), message) if mention else message


def listing_names(session: Session, round_id: int, stored: Iterable[str | None]
                  ) -> dict[int, str]:
    """Listing id -> its account's name, for the listings of the round that the stored reasons
    name (no statement when none does)."""
    mentioned = set().union(*(mentioned_listings(loads(reason)) for reason in stored if reason))
    if not mentioned:
        return {}
    return dict(session.execute(
        select(Listing.id, Account.name).join(Account, Account.id == Listing.account_id)
        .where(Listing.round_id == round_id, Listing.id.in_(sorted(mentioned)))).all())


def allocation_reason(stored: str, names: Mapping[int, str]) -> str:
    """A stored reason in the page's language, the listings it names by their accounts."""
    return translate(with_listing_names(loads(stored), names))
