"""Messages for people, written once in English and translated where they are shown.

The domain and the services cannot reach the request's language, so they do not translate:
they raise and return `Text`, an English msgid with named parameters. The web layer
translates it with the catalogue (`bidhub.web.i18n.translate`); `str()` gives the English, for
logs, the CLI and tests. `N_` marks the msgid for extraction (`pybabel extract -k N_`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


class Text:
    """An English message with `%(name)s` parameters; parameters may be `Text` themselves."""

    __slots__ = ("msgid", "params")

    def __init__(self, msgid: str, params: Mapping[str, Any] | None = None) -> None:
        self.msgid = msgid
        self.params = dict(params or {})

    def render(self, gettext: Callable[[str], str]) -> str:
        """The message in the language `gettext` translates into."""
        translated = gettext(self.msgid)
        if not self.params:
            return translated
        values = {name: render(value, gettext) if isinstance(value, Text | Joined) else value
                  for name, value in self.params.items()}
        return translated % values

    def __str__(self) -> str:
        return self.render(_identity)

    def __repr__(self) -> str:
        return f"Text({self.msgid!r}, {self.params!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Text):
            return (self.msgid, self.params) == (other.msgid, other.params)
        if isinstance(other, str):
            return str(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))

    def __contains__(self, fragment: str) -> bool:
        return fragment in str(self)


class Joined:
    """Several messages shown as one, each translated, joined by a separator. The list
    separators (COMMA, SEMICOLON) are translated too: Chinese lists names with 、 and
    clauses with ；, not with the English comma and semicolon."""

    __slots__ = ("parts", "separator")

    def __init__(self, parts: Iterable[Text | str], separator: str = "; ") -> None:
        self.parts = list(parts)
        self.separator = separator

    def render(self, gettext: Callable[[str], str]) -> str:
        separator = (gettext(self.separator) if self.separator in TRANSLATED_SEPARATORS
                     else self.separator)
        return separator.join(render(part, gettext) for part in self.parts)

    def __str__(self) -> str:
        return self.render(_identity)

    def __repr__(self) -> str:
        return f"Joined({self.parts!r}, {self.separator!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Joined):
            return (self.parts, self.separator) == (other.parts, other.separator)
        if isinstance(other, str):
            return str(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))

    def __contains__(self, fragment: str) -> bool:
        return fragment in str(self)


def N_(msgid: str, **params: Any) -> Text:  # noqa: N802 - the gettext convention for a marker
    """Mark an English msgid for the catalogue, with its named parameters."""
    return Text(msgid, params)


# A list of names (A, B, C) and of clauses (A; B); each is a msgid of its own.
COMMA = N_(", ").msgid
SEMICOLON = N_("; ").msgid
TRANSLATED_SEPARATORS = frozenset({COMMA, SEMICOLON})


def render(message: Text | Joined | str, gettext: Callable[[str], str]) -> str:
    """A message for a person: translated if it is a `Text`, as it is if it is plain text."""
    if isinstance(message, Text | Joined):
        return message.render(gettext)
    return str(message)


def _identity(msgid: str) -> str:
    return msgid
