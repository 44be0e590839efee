"""Text as people type it: invisible formatting characters and surrounding spaces removed.

A value made only of zero-width spaces or of spaces looks empty on every page, in exports and
in the filing register, so it must count as empty wherever a value is required. Usernames are
stricter still: a name that looks like another (full-width letters, an invisible character)
would let one person pass for another.
"""

from __future__ import annotations

import re
import unicodedata

from bidhub.domain.text import N_, Text

# Unicode's invisible formatting characters (general category Cf, Unicode 15.1): the soft
# hyphen, Arabic and Syriac number signs, zero-width spaces and joiners, direction marks,
# bidi embeddings, overrides and isolates, invisible operators, the byte-order mark,
# interlinear annotation marks, script-specific format controls and the tag characters.
# Written as ranges so that one compiled expression finds them at C speed;
# tests/test_typed_text.py checks the class against the running Python's unicodedata.
FORMAT_CHARACTERS = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]")


def without_format_characters(text: str) -> str:
    """`text` less its invisible formatting characters (FORMAT_CHARACTERS)."""
    return FORMAT_CHARACTERS.sub("", text)


def visible_text(text: str | None) -> str:
    """What a person can see of `text`: formatting characters removed, surrounding
    whitespace (ideographic and no-break spaces included) stripped; "" for None."""
    if not text:
        return ""
    return without_format_characters(text).strip()


# Besides letters (any script) and digits, the characters a username may hold: those of
# e-mail addresses and employee ids.
USERNAME_PUNCTUATION = frozenset("._-@")
MAX_USERNAME_LENGTH = 64


def short_writing(message: Text, text: str | None, minimum: int) -> Text:
    """The refusal of `text` as too little writing for `minimum` (writes_less_than): `message`,
    which names the minimum, and where the text has that many characters, but too few letters
    or digits among them, a sentence saying what does not count."""
    if len(visible_text(text)) < minimum:
        return message
    return N_("%(message)s Emoji, punctuation and spaces alone do not count: at least "
              "%(letters)d of the characters must be letters or digits.", message=message,
              letters=-(-minimum // 4))


def writes_less_than(text: str | None, minimum: int) -> bool:
    """Whether `text` is too little writing for a minimum of `minimum` characters: fewer
    characters than that once invisible ones and the spaces around it are left out, or fewer
    letters or digits (of any script) than a quarter of the minimum, rounded up, so that
    twenty emoji or ten full stops are no reason. Read only as far as it takes."""
    visible = visible_text(text)
    if len(visible) < minimum:
        return True
    needed = -(-minimum // 4)
    written = 0
    for character in visible:
        if character.isalnum():
            written += 1
            if written >= needed:
                return False
    return written < needed


def username_key(username: str) -> str:
    """A username as it is stored and signed in with: NFKC-normalised (full-width ＲＥＰ01 is
    REP01), invisible characters and surrounding whitespace removed, in lower case."""
    return visible_text(unicodedata.normalize("NFKC", username)).lower()


def username_problem(username: str) -> Text | None:
    """Why a username (as username_key gives it) cannot be one, or None."""
    if not username:
        return N_("Give a username.")
    if len(username) > MAX_USERNAME_LENGTH:
        return N_("Use at most %(count)d characters.", count=MAX_USERNAME_LENGTH)
    if not all(char.isalpha() or unicodedata.category(char) == "Nd"
               or char in USERNAME_PUNCTUATION for char in username):
        return N_("A username uses only letters, digits and . _ - @, without spaces.")
    return None
