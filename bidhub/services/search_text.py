"""What a search box looks for: the typed text read one way by every list and picker."""

from __future__ import annotations

import unicodedata

from sqlalchemy import ColumnElement, case, or_


def search_terms(text: str, max_length: int | None = None) -> list[str]:
    """The text as typed and, when it differs, its NFKC form; nothing for blank text.

    A Chinese input method gives full-width digits, letters and spaces (ＫＡ０１２), which NFKC
    turns into the ASCII that account numbers and usernames use; the typed form still matches
    names written with full-width brackets (（集团）). `max_length` bounds what was typed.
    """
    typed = text.strip()[:max_length].strip()
    if not typed:
        return []
    folded = unicodedata.normalize("NFKC", typed).strip()
    return [typed] if folded in ("", typed) else [typed, folded]


def escaped(term: str) -> str:
    """`term` for a LIKE pattern with "\\" as the escape: % and _ match themselves."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_pattern(term: str) -> str:
    """A LIKE pattern that matches `term` anywhere; % and _ in it are matched as themselves."""
    return f"%{escaped(term)}%"


def contains(terms: list[str], *columns) -> ColumnElement[bool]:
    """One of `columns` holds one of `terms`, case aside (search_terms gives the terms)."""
    return or_(*(column.ilike(like_pattern(term), escape="\\")
                 for term in terms for column in columns))


def closeness(terms: list[str], *columns) -> ColumnElement[int]:
    """How well a match fits what was typed, best first: 0 when a column is one of `terms`,
    1 when one begins with it, 2 when one only contains it (case aside, as `contains`)."""
    return case((or_(*(column.ilike(escaped(term), escape="\\")
                       for term in terms for column in columns)), 0),
                (or_(*(column.ilike(f"{escaped(term)}%", escape="\\")
                       for term in terms for column in columns)), 1),
                else_=2)
