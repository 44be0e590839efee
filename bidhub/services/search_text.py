"""What a search box looks for: the typed text read one way by every list and picker."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, case, or_

from bidhub.domain.collation import width_folded
from bidhub.domain.typed_text import without_format_characters


def search_terms(text: str, max_length: int | None = None) -> list[str]:
    """The text as typed and, when it differs, its NFKC form; nothing for blank text.

    A Chinese input method gives full-width digits, letters and spaces (ＫＡ０１２), which NFKC
    turns into the ASCII that account numbers and usernames use; the typed form still matches
    names written with full-width brackets (（集团）). The folded form, last, is the one to
    match against a name stored folded the same way (Account.name_folded): half-width input
    then finds full-width names too. `max_length` bounds what was typed.
    """
    typed = text.strip()[:max_length].strip()
    if not typed:
        return []
    folded = width_folded(typed).strip()
    return [typed] if folded in ("", typed) else [typed, folded]


def search_words(text: str, max_length: int | None = None) -> list[list[str]]:
    """The text's words, split at its spaces (an input method's full-width ones too), each as
    search_terms reads it; nothing for blank text. A row is found when it holds every word,
    in any order: "北京 联启" finds 北京联启科技有限公司, as "联启 北京" does. Invisible
    formatting characters (a zero-width space pasted from a chat, say) are no part of a word:
    no stored name keeps them."""
    typed = without_format_characters(text).strip()[:max_length].strip()
    return [search_terms(word) for word in dict.fromkeys(typed.split())]


def escaped(term: str) -> str:
    """`term` for a LIKE pattern with "\\" as the escape: % and _ match themselves."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_pattern(term: str) -> str:
    """A LIKE pattern that matches `term` anywhere; % and _ in it are matched as themselves."""
    return f"%{escaped(term)}%"


def _pairs(terms: list[str], columns: Sequence, folded: Sequence) -> list[tuple[str, object]]:
    """Each term with each column it is matched against: every term with `columns`, and the
    folded term (the last) with `folded`, columns that hold a text folded as search_terms
    folds (width_folded)."""
    return ([(term, column) for term in terms for column in columns]
            + [(terms[-1], column) for column in folded])


def contains(terms: list[str], *columns, folded: Sequence = ()) -> ColumnElement[bool]:
    """One of `columns` holds one of `terms`, or one of the `folded` columns the folded term,
    case aside (search_terms gives the terms)."""
    return or_(*(column.ilike(like_pattern(term), escape="\\")
                 for term, column in _pairs(terms, columns, folded)))


def contains_all(words: list[list[str]], *columns,
                 folded: Sequence = ()) -> ColumnElement[bool]:
    """Every word of `words` (search_words gives them) is in one of `columns`, each as
    `contains` finds it."""
    return and_(*(contains(terms, *columns, folded=folded) for terms in words))


def closeness(terms: list[str], *columns, folded: Sequence = ()) -> ColumnElement[int]:
    """How well a match fits what was typed, best first: 0 when a column is one of `terms`,
    1 when one begins with it, 2 when one only contains it (case aside, as `contains`)."""
    pairs = _pairs(terms, columns, folded)
    return case((or_(*(column.ilike(escaped(term), escape="\\") for term, column in pairs)), 0),
                (or_(*(column.ilike(f"{escaped(term)}%", escape="\\")
                       for term, column in pairs)), 1),
                else_=2)
