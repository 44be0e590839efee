"""A person's own preferences: the language bidhub speaks to them."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy.orm import Session

from bidhub.db import unit_of_work
from bidhub.domain.errors import InvalidRequest
from bidhub.domain.text import N_
from bidhub.models import User


def choose_language(session: Session, user: User, locale: str,
                    languages: Collection[str]) -> None:
    """Save the language `user` chose; pages follow it over the browser's wishes from now on."""
    if locale not in languages:
        raise InvalidRequest(N_("Choose one of the languages offered."), field="locale")
    with unit_of_work(session):
        user = session.get(User, user.id)
        user.locale = locale
