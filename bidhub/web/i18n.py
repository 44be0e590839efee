"""Language and time zone of the person looking at a page."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import current_app, request, session
from flask_babel import gettext as _

from bidhub.domain.errors import BidhubError, InvalidRequest
from bidhub.domain.text import Joined, Text, render


def select_locale() -> str | None:
    chosen = session.get("locale")
    if chosen in current_app.config["LANGUAGES"]:
        return chosen
    return request.accept_languages.best_match(current_app.config["LANGUAGES"])


def translate(message: Text | Joined | BidhubError | str) -> str:
    """A message from the domain or a service, in the language of the page being rendered."""
    if isinstance(message, BidhubError):
        message = message.message
    return render(message, _)


def select_timezone() -> str:
    return current_app.config["TIMEZONE"]


def local_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["TIMEZONE"])


def local_to_utc(naive_local: datetime) -> datetime:
    """A date and time entered in the app's time zone, as an aware UTC instant.

    Forms and query parsing keep dates within sensible years; this refuses the rest (years
    near 1 or 9999 overflow when the offset is applied) instead of failing with a 500.
    """
    try:
        return naive_local.replace(tzinfo=local_zone()).astimezone(UTC)
    except (OverflowError, ValueError) as error:
        raise InvalidRequest(_("That date is out of range.")) from error


def utc_to_local(instant: datetime) -> datetime:
    return instant.astimezone(local_zone())
