"""Rule files: strict parsing and validation of a scoring policy written in TOML.

`parse_rules(text)` returns a frozen RuleSet or raises RuleError listing every problem at
once (key path, line, plain reason). Nothing in a rule file is executed: metrics, normalisers,
eligibility checks, tie-breaks and allocation methods are chosen by name from registries, and
[eligibility] is read from the settings its registered checks declare. This module imports
those registries and nothing that scores or allocates. Every key and default is documented in
rules/README.md. Rule texts are hostile input: `decode_rule_bytes` and `parse_rules` bound
size, encoding, nesting and number length before the TOML parser sees the text, so any input
gives a RuleSet or a RuleError, never another exception.
"""

from __future__ import annotations

import bisect
import codecs
import difflib
import hashlib
import json
import math
import re
import tomllib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from bidhub.domain.allocation_methods import ALLOCATION_METHODS, DEFAULT_ALLOCATION_METHOD
from bidhub.domain.eligibility import (
    ELIGIBILITY_CHECKS,
    ELIGIBILITY_SETTINGS,
    MAX_COUNT,
    Eligibility,
    Setting,
)
from bidhub.domain.facts import HANDBOOK_CAPACITY_MAX
from bidhub.domain.flags import FlagRules
from bidhub.domain.metrics import METRICS
from bidhub.domain.normalisers import NORMALISERS, Normaliser
from bidhub.domain.preferences import BONUS, PREFERENCE_MODES, Preferences
from bidhub.domain.reviews import (
    MAX_CRITERIA,
    MAX_POINTS,
    MAX_REVIEWS_PER_BID,
    PLAN_REVIEW,
    PLAN_REVIEW_METRIC,
    ReviewCriterion,
    ReviewRules,
)
from bidhub.domain.text import N_, Text
from bidhub.domain.tie_breaks import DEFAULT_TIE_BREAK, TIE_BREAKS

DEFAULT_NORMALISER = "minmax"
# Far beyond any sensible policy; keeps exact integer arithmetic in the optimal allocation.
MAX_ABS_WEIGHT = 1000.0
# Contributions and totals carry 6 decimals (scoring.DECIMALS; scoring imports this module, so
# a test keeps the two equal), and a weight of at most half a millionth rounds every
# contribution to 0. New rule text refuses one (parse_new_rules); versions stored before keep
# reading as they were adopted.
SCORE_DECIMALS = 6
MIN_COUNTED_WEIGHT = Decimal(5).scaleb(-SCORE_DECIMALS - 1)
# Limits on what a rule text may hold (rules/README.md, "Limits"). A real policy is about
# 3 KB, three levels deep, with numbers of a few digits; the limits are far above that and far
# below what could exhaust memory, the TOML parser's recursion or a database integer.
MAX_RULE_BYTES = 64 * 1024
MAX_NESTING = 16  # tables and lists inside one another (a rule file needs 3)
MAX_NUMBER_CHARS = 50  # characters in one written number, underscores and sign included
MAX_ABS_PARAM = 1e12  # a normaliser's cap or midpoint (metrics in yuan can be large)
MAX_PROBLEMS = 50  # problems listed one by one; the rest are counted
MAX_NAME_LENGTH = 100  # a rule set's name is stored with each version, in a column this wide
RULE_ENCODINGS = "UTF-8 (with or without a byte order mark) or GBK/GB18030"
# The path of a problem the TOML reader found: the text cannot be read, so no key is named; its
# message says the line and column itself.
SYNTAX_PATH = "(syntax)"


# Where a problem is that no key path names: the file as a whole, and its TOML syntax. The
# path stays as written ("(syntax)"); these are how a page shows it, in its language.
PLACE_LABELS = {"(file)": N_("(file)"), SYNTAX_PATH: N_("(syntax)")}


@dataclass(frozen=True)
class RuleProblem:
    """A problem at a key path (and line); `message` is the reason, translated where shown."""

    path: str
    line: int | None
    message: Text

    @property
    def is_syntax(self) -> bool:
        """A syntax error: no key to name, and the message already says where."""
        return self.path == SYNTAX_PATH

    def place(self) -> Text | str:
        """The key path as written, or the translated label of a place that has none."""
        return PLACE_LABELS.get(self.path, self.path)

    def text(self) -> Text:
        """The problem as one line: key path, line and reason. A syntax error is its reason
        alone, which already says the line and column."""
        if self.is_syntax:
            return self.message
        if self.line:
            return N_("%(path)s (line %(line)d): %(message)s", path=self.place(), line=self.line,
                      message=self.message)
        return N_("%(path)s: %(message)s", path=self.place(), message=self.message)

    def __str__(self) -> str:
        return str(self.text())


class RuleError(Exception):
    """A rule text that cannot be used, with its problems (one per line).

    `problems` holds the first MAX_PROBLEMS; `more` counts the rest, so a hostile file with
    thousands of mistakes still gives a readable answer.
    """

    def __init__(self, problems: Iterable[RuleProblem]) -> None:
        problems = list(problems)
        self.problems = problems[:MAX_PROBLEMS]
        self.more = len(problems) - len(self.problems)
        lines = [str(problem) for problem in self.problems]
        if self.more:
            lines.append(str(more_problems(self.more)))
        super().__init__("\n".join(lines))


def more_problems(count: int) -> Text:
    if count == 1:
        return N_("and %(count)s more problem", count=f"{count:,}")
    return N_("and %(count)s more problems", count=f"{count:,}")


def _refuse(path: str, message: Text, line: int | None = None) -> RuleError:
    return RuleError([RuleProblem(path, line, message)])


def _shown(text: str, limit: int = 60) -> str:
    """A name taken from the rule text, shortened so that a hostile one cannot flood a page."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


@dataclass(frozen=True)
class Factor:
    """weight x normaliser(metric); `params` holds the normaliser's settings, defaults filled."""

    metric: str
    weight: float
    normaliser: str = DEFAULT_NORMALISER
    params: dict[str, float] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Caps:
    max_awards_per_rep_per_round: int | None = None  # None: no cap beyond capacity


@dataclass(frozen=True)
class RuleSet:
    name: str
    description: str
    eligibility: Eligibility
    factors: tuple[Factor, ...]
    caps: Caps
    tie_break: tuple[str, ...]
    allocation: str  # the allocation method, a name in ALLOCATION_METHODS
    min_bids_per_listing: int
    text: str
    version_hash: str
    # Working days between announcing results and their taking effect, for appeals; 0: none.
    # A rule file without [appeals] has no window, so rule versions stored before it keep
    # publishing as they did.
    appeal_window_working_days: int = 0
    # Valid but probably unintended settings (a reward for incidents, say); never block.
    warnings: tuple[RuleProblem, ...] = ()
    # The blind review of applications between the deadline and scoring; None: no review.
    review: ReviewRules | None = None
    # When a bid deserves a second look before adjudication ([flags]); never changes scores.
    flags: FlagRules = FlagRules()
    # How the reps' ranked preferences count ([preferences]); by default they do not.
    preferences: Preferences = Preferences()


# --- canonical form ----------------------------------------------------------------------


def _canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def _hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(data).encode("utf-8")).hexdigest()


def canonical_hash(text: str) -> str:
    """SHA-256 hex of the parsed TOML as sorted compact JSON: comments and layout do not count.

    Raises RuleError (with the line) when the text is not TOML or breaks a limit.
    """
    return _hash(_load(text))


# --- bytes to text, and limits checked before parsing ----------------------------------

_UTF16_32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE,
                  codecs.BOM_UTF16_BE)


def rules_too_large(size: int) -> RuleError:
    """The refusal of a rule text of `size` bytes (more than MAX_RULE_BYTES)."""
    return _refuse("(file)", N_("the rules are %(size)s bytes; a rule file may hold at most "
                                "%(maximum)s bytes (%(kib)d KiB)", size=f"{size:,}",
                                maximum=f"{MAX_RULE_BYTES:,}", kib=MAX_RULE_BYTES // 1024))


def decode_rule_bytes(data: bytes) -> str:
    """The text of a rule file's bytes: UTF-8 (a byte order mark is dropped) or GBK/GB18030.

    Editors on Chinese Windows save GBK by default, so it is accepted rather than refused;
    anything else raises RuleError saying how to save the file.
    """
    if len(data) > MAX_RULE_BYTES:
        raise rules_too_large(len(data))
    if data.startswith(_UTF16_32_BOMS):
        raise _refuse("(file)", N_("the file is saved as UTF-16 or UTF-32; save it as UTF-8 "
                                   "(accepted: %(encodings)s)", encodings=RULE_ENCODINGS))
    if b"\x00" in data:
        raise _refuse("(file)", N_("the file contains NUL bytes, so it is not a text file (or "
                                   "it is UTF-16); save it as UTF-8 (accepted: %(encodings)s)",
                                   encodings=RULE_ENCODINGS),
                      data.count(b"\n", 0, data.index(b"\x00")) + 1)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _undecodable(data, error, N_("the file starts with a UTF-8 byte order mark "
                                               "but is not UTF-8")) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError:
            raise _undecodable(data, utf8_error,
                               N_("the file is neither UTF-8 nor GBK/GB18030")) from None


def _undecodable(data: bytes, error: UnicodeDecodeError, reason: Text) -> RuleError:
    byte = data[error.start]
    return _refuse("(file)", N_("%(reason)s (byte %(byte)s cannot be read); save it as UTF-8 "
                                "(accepted: %(encodings)s)", reason=reason,
                                byte=f"0x{byte:02X}", encodings=RULE_ENCODINGS),
                   data.count(b"\n", 0, error.start) + 1)


def _without_bom(text: str) -> str:
    # A byte order mark pasted into the editor, or left by a decoder, is not part of the TOML.
    return text[1:] if text.startswith("\ufeff") else text


# Strings and comments are skipped whole, so brackets and digits inside them do not count.
# A multi-line string may end with up to two extra quotes that belong to its content.
_SKIPPED = (
    # Multi-line strings; one left open runs to the end, which keeps the scan linear.
    r'"""(?:\\[\s\S]|[^\\])*?(?:"{3,5}|\Z)',
    r"'''[\s\S]*?(?:'{3,5}|\Z)",
    r'"(?:\\.|[^"\\\n])*"?',  # basic string (to the end of the line if unclosed)
    r"'[^'\n]*'?",  # literal string
    r"#[^\n]*",  # comment
    r"[A-Za-z_][\w-]*",  # a bare word: a key, true, false, inf, nan
)
_TOKEN = re.compile(
    f"(?P<skip>{'|'.join(_SKIPPED)})|(?P<open>[\\[{{])|(?P<close>[\\]}}])"
    r"|(?P<number>[+-]?[0-9][\w.:+-]*)|(?P<dot>\.)|(?P<end>[=,\n])")


class _Lines:
    """Line numbers and key paths of positions in a text, for problems found before parsing."""

    def __init__(self, text: str) -> None:
        self.text = text
        index = _line_index(text)
        self.starts = sorted({line: path for path, line in sorted(
            index.items(), key=lambda item: len(item[0]))}.items())

    def line(self, position: int) -> int:
        return self.text.count("\n", 0, position) + 1

    def path(self, line: int) -> str:
        """The key written on `line`, else the table it is in."""
        found = bisect.bisect_right(self.starts, (line, "\uffff")) - 1
        return _shown(self.starts[found][1], 120) if found >= 0 else "(file)"


class _ShapeScan:
    """Collects the limits a text breaks, token by token, without parsing it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines: _Lines | None = None
        self.problems: list[RuleProblem] = []
        self.broken: set[str] = set()

    def problem(self, statement_at: int, at: int, message: Text, once: str = "") -> None:
        if once in self.broken:
            return
        if once:
            self.broken.add(once)
        self.lines = self.lines or _Lines(self.text)
        self.problems.append(RuleProblem(self.lines.path(self.lines.line(statement_at)),
                                         self.lines.line(at), message))

    def run(self) -> list[RuleProblem]:
        depth, statement_at, new_line, dots = 0, 0, True, 0
        for token in _TOKEN.finditer(self.text):
            kind, at = token.lastgroup, token.start()
            if depth == 0 and new_line and kind != "end":
                statement_at, new_line = at, False  # problems name the key of this statement
            if kind in ("dot", "number"):
                # tomllib takes quadratic time over the parts of one dotted key.
                dots += token.group().count(".")
                if dots >= MAX_NESTING:
                    self.problem(statement_at, at, N_("a dotted key with more than %(count)d "
                                 "parts; a rule file needs two", count=MAX_NESTING), once="dots")
            elif kind != "skip":
                dots = 0
            if kind == "end" and depth == 0 and token.group() == "\n":
                new_line = True
            if kind == "open":
                depth += 1
                if depth > MAX_NESTING:
                    self.problem(statement_at, at, N_("nested more than %(count)d levels "
                                 "deep (tables and lists inside one another); a rule file "
                                 "needs three", count=MAX_NESTING), once="depth")
            elif kind == "close":
                depth = max(0, depth - 1)
            elif kind == "number" and len(token.group()) > MAX_NUMBER_CHARS:
                self.problem(statement_at, at, N_(
                    "a number written with %(count)s characters; numbers in rule files have at "
                    "most %(maximum)d", count=f"{len(token.group()):,}",
                    maximum=MAX_NUMBER_CHARS))
        return self.problems


def _check_shape(text: str) -> None:
    """Refuse text too big, deep or long-numbered before tomllib recurses or reads digits."""
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_RULE_BYTES:
        raise rules_too_large(size)
    if problems := _ShapeScan(text).run():
        raise RuleError(problems)


def _refuse_control_characters(text: str) -> None:
    """Refuse a control character that TOML does not allow anywhere (UNREADABLE_CONTROL), where
    it is: tomllib names only the place it stopped reading, with a reason about something else
    ("expected a newline"). The rules page's editor refuses the same characters."""
    control = UNREADABLE_CONTROL.search(text)
    if control is None:
        return
    line = text.count("\n", 0, control.start()) + 1
    column = control.start() - (text.rfind("\n", 0, control.start()) + 1) + 1
    raise _refuse(SYNTAX_PATH, N_("line %(line)d, column %(column)d holds the control character "
                                  "U+%(code)s, which a rule file may not hold; remove it",
                                  line=line, column=column, code=f"{ord(control.group()):04X}"),
                  line)


def _deepest(data: dict[str, Any]) -> tuple[int, str]:
    """How deep the parsed values nest, and the top-level key where it is deepest.

    Dotted keys (a.b.c = 1) nest without brackets, so this looks at the parsed values; it
    walks with a list, not recursion, for the same reason the check exists.
    """
    deepest, where = 0, ""
    stack: list[tuple[Any, int, str]] = [(value, 1, key) for key, value in data.items()]
    while stack:
        value, depth, key = stack.pop()
        if depth > deepest:
            deepest, where = depth, key
        if depth > MAX_NESTING:
            continue
        if isinstance(value, dict):
            stack.extend((item, depth + 1, key) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1, key) for item in value)
    return deepest, where


def _first_line(index: dict[str, int], key: str) -> int | None:
    """The first line writing `key` or anything inside it."""
    lines = [line for path, line in index.items()
             if path == key or path.startswith((f"{key}.", f"{key}["))]
    return min(lines, default=None)


def read_rule_data(text: str) -> dict[str, Any]:
    """The TOML of a rule text as read, before any key is checked; RuleError (with the line)
    when it is not TOML or breaks a limit. For rewriting a draft, not for scoring."""
    return _load(text)


def _load(text: str) -> dict[str, Any]:
    text = _without_bom(text)
    _check_shape(text)
    _refuse_control_characters(text)
    try:
        data = tomllib.loads(text)
    except (RecursionError, ValueError) as error:
        if isinstance(error, tomllib.TOMLDecodeError):
            raise _syntax_problem(error, text) from error
        # The checks above should make these impossible; if one slips through, it is still
        # the rule text's fault and gets a plain answer.
        raise _refuse("(file)", N_("the rules are too deeply nested or hold a number too "
                                   "large to read")) from error
    deepest, where = _deepest(data)
    if deepest > MAX_NESTING:
        raise _refuse(_shown(where, 120), N_("nested more than %(count)d levels deep "
                      "(tables, lists and dotted keys inside one another); a rule file needs "
                      "three", count=MAX_NESTING), _first_line(_line_index(text), where))
    return data


# tomllib's reasons are English only; each known one is said again as a message of our own,
# so that a Chinese page explains it in Chinese. The pattern reads tomllib's wording (its
# {key} and {char!r} parts become parameters); a reason not listed keeps tomllib's text.
_TOML_REASONS: tuple[tuple[re.Pattern[str], Text], ...] = tuple(
    (re.compile(pattern, re.S), message) for pattern, message in (
        (r"Invalid statement", N_("this line is not a statement: write key = value, [table] "
                                  "or [[table]]")),
        (r"Expected newline or end of document after a statement",
         N_("more text after a complete statement: write each key = value on its own line")),
        (r"Expected '=' after a key in a key/value pair", N_("'=' is missing after the key")),
        (r"Expected '\]' at the end of a table declaration",
         N_("the table header is missing its closing ']'")),
        (r"Expected '\]\]' at the end of an array declaration",
         N_("the [[table]] header is missing its closing ']]'")),
        (r"Expected (?P<expected>.+)", N_("%(expected)s is missing here")),
        (r"Found invalid character (?P<character>.+)",
         N_("the character %(character)s is not allowed here")),
        (r"Cannot declare (?P<key>.+) twice", N_("the table %(key)s is written twice")),
        (r"Cannot overwrite a value", N_("this key already has a value; write each key once")),
        (r"Cannot mutate immutable namespace (?P<key>.+)",
         N_("%(key)s is written inline (in {} or []) and cannot be added to here")),
        (r"Cannot redefine namespace (?P<key>.+)",
         N_("%(key)s is already defined and cannot be defined again here")),
        (r"Invalid initial character for a key part",
         N_("a key cannot start with this character")),
        (r"Unclosed array", N_("a list is not closed with ']'")),
        (r"Duplicate inline table key (?P<key>.+)",
         N_("the key %(key)s is written twice in one inline table")),
        (r"Unclosed inline table", N_("an inline table is not closed with '}'")),
        (r"Unescaped '\\' in a string",
         N_("a backslash in a string starts no valid escape; write \\\\ for one backslash")),
        (r"Invalid hex value", N_("a \\u or \\U escape in a string is not valid")),
        (r"Escaped character is not a Unicode scalar value",
         N_("an escape in a string names no valid character")),
        (r"Unterminated string", N_("a string is not closed with its quote")),
        (r"Illegal character (?P<character>.+)",
         N_("the character %(character)s is not allowed in a string")),
        (r"Invalid date or datetime", N_("the date or time is not valid")),
        (r"Invalid value", N_("not a valid value (text needs quotes, as in name = \"text\")")),
    ))
_AT = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")


def _toml_key(written: str) -> str:
    """tomllib names a key as a tuple of its parts ("('caps', 'x')"); people write caps.x."""
    parts = re.findall(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", written)
    if written.startswith(("(", "'", '"')) and parts:
        return _shown(".".join(single or double for single, double in parts), 120)
    return _shown(written, 120)


def _toml_reason(reason: str) -> Text:
    for pattern, message in _TOML_REASONS:
        if match := pattern.fullmatch(reason):
            params = {name: _toml_key(value) if name == "key" else _shown(value, 60)
                      for name, value in match.groupdict().items()}
            return Text(message.msgid, params) if params else message
    return N_("%(reason)s (the TOML reader's words)", reason=_shown(reason, 200))


# What a Chinese input method types in place of TOML's signs: the full-width forms of ASCII
# (U+FF01 to U+FF5E, ASCII moved up by 0xFEE0), the ideographic space, Chinese quotation marks,
# the enumeration comma, the full stop and the lenticular brackets.
_HALF_WIDTH = {**{chr(code): chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)},
               "\u3000": " ", "\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'",
               "\u3001": ",", "\u3002": ".", "\u3010": "[", "\u3011": "]"}
# tomllib's reasons where a key (or the '=' after it) was expected.
_WHERE_A_KEY_IS = ("Invalid statement", "Invalid initial character for a key part",
                   "Expected '=' after a key in a key/value pair")
_BARE_KEY_CHARACTER = re.compile(r"[A-Za-z0-9_-]")
_UNQUOTED_KEY = re.compile(r"[^\s=.\[\]\"'#]+")


def _typed_in_chinese(text: str, line: int, column: int, reason: str) -> Text | None:
    """The reason for a syntax error at a character a Chinese input method typed (a full-width
    sign or digit, or a Chinese key without quotes), which tomllib's reason would not name."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines) or not 1 <= column <= len(lines[line - 1]):
        return None
    written = lines[line - 1]
    character = written[column - 1]
    if character in _HALF_WIDTH:
        shown = character if character.isprintable() else f"\\u{ord(character):04x}"
        return N_("the full-width character '%(character)s' is not TOML: write the half-width "
                  "'%(ascii)s' instead (switch the input method to half-width)",
                  character=shown, ascii=_HALF_WIDTH[character])
    if reason in _WHERE_A_KEY_IS and not character.isascii() and character.isprintable():
        start = column - 1
        while start and _BARE_KEY_CHARACTER.fullmatch(written[start - 1]):
            start -= 1
        key = _UNQUOTED_KEY.match(written, start)
        return N_('the key %(key)s is written without quotes, so it may only hold A-Z, a-z, '
                  '0-9, _ and -: write it in quotes, as "%(key)s"',
                  key=_shown(key.group() if key else character, 60))
    return None


# --- a key or table written twice ---------------------------------------------------------
# tomllib refuses a key written twice as "Cannot overwrite a value", naming neither the key nor
# its table, at the place where it stopped reading (the end of the value, or of the text). The
# statement holding that place is found again and its key resolved against the table headers
# above it, so the problem names the key path, the line it is written on and the line where it
# was first written. The text up to that statement has been read as TOML, so the statements and
# their keys there are well formed.
_KEY_PART = r"""[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*'"""
_DOTTED_KEY = rf"(?:{_KEY_PART})(?:[ \t]*\.[ \t]*(?:{_KEY_PART}))*"
_STATEMENT = re.compile(rf"\[\[[ \t]*(?P<array>{_DOTTED_KEY})[ \t]*\]\]"
                        rf"|\[[ \t]*(?P<table>{_DOTTED_KEY})[ \t]*\]|(?P<key>{_DOTTED_KEY})[ \t]*=")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_WRITTEN_TWICE = re.compile(r"Cannot overwrite a value|Cannot declare .+ twice", re.S)

# A resolved key path: its parts, with the index of each [[array]] entry after the array's name.
_Path = tuple[str | int, ...]


def _statement_starts(text: str) -> list[int]:
    """Where each top-level statement (key = value, [table], [[table]]) starts, in order."""
    starts, depth, new_line = [], 0, True
    for token in _TOKEN.finditer(text):
        kind = token.lastgroup
        if depth == 0 and new_line and kind != "end":
            new_line = False
            if not token.group().startswith("#"):
                starts.append(token.start())
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth = max(0, depth - 1)
        elif kind == "end" and depth == 0 and token.group() == "\n":
            new_line = True
    return starts


def _key_parts(written: str) -> tuple[str, ...]:
    """The parts of a dotted key as written (bare, "basic" or 'literal'), unquoted."""
    parts = []
    for part in re.findall(_KEY_PART, written):
        if part.startswith('"'):
            part = tomllib.loads(f"k = {part}")["k"]  # its escapes, read as TOML reads them
        elif part.startswith("'"):
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)


def _path_text(path: _Path) -> str:
    """factors[1].weight; a part that is not a bare key is shown in quotes."""
    shown = ""
    for part in path:
        if isinstance(part, int):
            shown += f"[{part}]"
        else:
            written = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            shown += f".{written}" if shown else written
    return _shown(shown, 120)


def _in_arrays(parts: tuple[str, ...], arrays: dict[_Path, int]) -> _Path:
    """A header's key with the current entry of each [[array]] it goes through."""
    path: _Path = ()
    for part in parts:
        path = (*path, part)
        if path in arrays:
            path = (*path, arrays[path] - 1)
    return path


def _written_twice(text: str, offset: int) -> RuleError | None:
    """The key or table of the statement holding `offset`, named with where it was first
    written; None when the statement or the earlier one cannot be found."""
    starts = _statement_starts(text)
    last = bisect.bisect_right(starts, offset) - 1
    table: _Path = ()
    arrays: dict[_Path, int] = {}
    written: list[tuple[_Path, int, str]] = []  # path, line, and "key", "table" or "array"
    line, counted = 1, 0
    for start in starts[:last + 1]:
        statement = _STATEMENT.match(text, start)
        if statement is None:
            return None
        line, counted = line + text.count("\n", counted, start), start
        if statement["array"]:
            parts = _key_parts(statement["array"])
            name = (*_in_arrays(parts[:-1], arrays), parts[-1])
            arrays[name] = arrays.get(name, 0) + 1
            table = path = (*name, arrays[name] - 1)
        elif statement["table"]:
            # [factors] after [[factors]] is not an entry of the list, but a clash with it.
            parts = _key_parts(statement["table"])
            table = path = (*_in_arrays(parts[:-1], arrays), parts[-1])
        else:
            path = (*table, *_key_parts(statement["key"]))
        written.append((path, line, next(kind for kind in ("array", "table", "key")
                                         if statement[kind])))
    if not written:
        return None
    path, line, kind = written.pop()
    named = _path_text(path[:-1] if kind == "array" else path)
    for other, first, other_kind in written:
        if other == path and other_kind == kind == "table":
            return _refuse(named, N_("the table %(table)s is written twice (first at line "
                                     "%(first)d); write each table once, with all its keys "
                                     "under it", table=named, first=first), line)
        if other == path and other_kind == kind == "key":
            if table:
                return _refuse(named, N_(
                    "the key %(key)s is written twice in the table %(table)s (first at line "
                    "%(first)d); write each key once", key=_path_text(path[len(table):]),
                    table=_path_text(table), first=first), line)
            return _refuse(named, N_("the key %(key)s is written twice at the top level "
                                     "(first at line %(first)d); write each key once",
                                     key=named, first=first), line)
        if other == path and kind == "key":
            return _refuse(named, N_("%(key)s is already a table (line %(first)d), so it "
                                     "cannot also have a value", key=named, first=first), line)
        if other_kind == "key" and path[:len(other)] == other:
            return _refuse(named, N_("%(key)s already has a value (line %(first)d), so it "
                                     "cannot also be a table", key=_path_text(other),
                                     first=first), line)
        if kind == "table" and other_kind == "key" and other[:len(path)] == path:
            return _refuse(named, N_(
                "%(key)s is already made by the dotted key %(other)s (line %(first)d), so it "
                "cannot also be written as [%(key)s]", key=named, other=_path_text(other),
                first=first), line)
        if kind == "array" and other_kind == "table" and other == path[:-1]:
            return _refuse(_path_text(other), N_(
                "%(key)s is already a [%(key)s] table (line %(first)d), so it cannot also be "
                "written as [[%(key)s]]", key=_path_text(other), first=first), line)
        if kind == "table" and other_kind == "array" and other[:-1] == path:
            return _refuse(named, N_(
                "%(key)s is already a list of [[%(key)s]] tables (line %(first)d), so it "
                "cannot also be written as [%(key)s]", key=named, first=first), line)
    return None


def _offset(text: str, line: int, column: int) -> int:
    """The position of a line and column as tomllib counts them (from 1)."""
    start = 0
    for _ in range(line - 1):
        start = text.index("\n", start) + 1
    return start + max(column - 1, 0)


def _syntax_problem(error: tomllib.TOMLDecodeError, text: str) -> RuleError:
    """A syntax error in the page's language, with the line and column where the reader
    stopped (Python 3.14 keeps them as attributes; before, they are in the message)."""
    message = str(error)
    found = _AT.search(message)
    reason = getattr(error, "msg", None) or (message[:found.start()] if found else message)
    line, column = getattr(error, "lineno", None), getattr(error, "colno", None)
    if line is None and found and found.group(1):
        line, column = int(found.group(1)), int(found.group(2))
    explained = _toml_reason(reason.strip())
    if line is not None and found and not found.group(1):  # 3.14 counts the end as a place
        line = None
    if _WRITTEN_TWICE.fullmatch(reason.strip()):
        try:
            offset = len(text) if line is None else _offset(text, line, column or 0)
            named = _written_twice(text, offset)
        except (ValueError, LookupError):  # TOMLDecodeError is a ValueError
            named = None  # where tomllib stopped is not where this reading of the text looks
        if named is not None:
            return named
    if line is None:
        last = text.count("\n") + 1 - text.endswith("\n")
        return _refuse(SYNTAX_PATH, N_("not valid TOML at the end of the text: %(reason)s",
                                      reason=explained), max(last, 1))
    explained = _typed_in_chinese(text, line, column or 0, reason.strip()) or explained
    return _refuse(SYNTAX_PATH, N_("not valid TOML at line %(line)d, column %(column)d: "
                                  "%(reason)s", line=line, column=column or 0,
                                  reason=explained), line)


# --- reading values while collecting problems -------------------------------------------

_ARRAY_HEADER = re.compile(r"^\[\[\s*([^\]]+?)\s*\]\]")
_TABLE_HEADER = re.compile(r"^\[\s*([^\]]+?)\s*\]")
_ASSIGNMENT = re.compile(r"""^((?:[\w-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[\w-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _dotted(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))


def _line_index(text: str) -> dict[str, int]:
    """Key path -> the first line writing it: `eligibility`, `factors[1].weight`, `name`.

    A line-based scan, good for the way rule files are written (one key per line); keys
    inside multi-line strings could mislead it, which only costs a line number.
    """
    index: dict[str, int] = {}
    table = ""
    arrays: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if match := _ARRAY_HEADER.match(line):
            name = _dotted(match.group(1))
            position = arrays.get(name, 0)
            arrays[name] = position + 1
            table = f"{name}[{position}]"
            index.setdefault(name, number)
            index.setdefault(table, number)
        elif match := _TABLE_HEADER.match(line):
            table = _dotted(match.group(1))
            index.setdefault(table, number)
        elif match := _ASSIGNMENT.match(line):
            # A dotted key (foo.bar = 1) writes each table on its way too: eligibility.foo is
            # on this line, not on the [eligibility] header's.
            path = table
            for part in _dotted(match.group(1)).split("."):
                path = f"{path}.{part}" if path else part
                index.setdefault(path, number)
    return index


def type_name(value: Any) -> Text | str:
    if isinstance(value, bool):
        return N_("true/false")
    if isinstance(value, int):
        return N_("a whole number")
    if isinstance(value, float):
        return N_("a number")
    if isinstance(value, str):
        return N_("a string")
    if isinstance(value, list):
        return N_("a list")
    if isinstance(value, dict):
        return N_("a table")
    if isinstance(value, datetime | date | time):
        return N_("a date or time")
    return type(value).__name__


def _known(name: str, known: Iterable[str]) -> Text:
    """ "(did you mean 'x'? known: a, b)" for an unknown name."""
    known = sorted(known)
    # A very long name is never close to a registered one; comparing it would only cost time.
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6) if len(name) < 100 else []
    names = ", ".join(known) if known else N_("none")
    if close:
        return N_("(did you mean '%(close)s'? known: %(known)s)", close=close[0], known=names)
    return N_("(known: %(known)s)", known=names)


class _Checker:
    """Reads values out of the parsed TOML, noting every problem instead of stopping."""

    def __init__(self, text: str) -> None:
        self.lines = _line_index(text)
        self.problems: list[RuleProblem] = []
        self.warnings: list[RuleProblem] = []

    def line_of(self, path: str) -> int | None:
        """The line of `path`, else of the nearest enclosing table or array entry."""
        while path:
            if path in self.lines:
                return self.lines[path]
            if path.endswith("]"):
                path = path[:path.rindex("[")]
            elif "." in path:
                path = path[:path.rindex(".")]
            else:
                return None
        return None

    def problem(self, path: str, message: Text) -> None:
        self.problems.append(RuleProblem(_shown(path, 120), self.line_of(path), message))

    def warning(self, path: str, message: Text) -> None:
        self.warnings.append(RuleProblem(_shown(path, 120), self.line_of(path), message))

    def table(self, data: dict[str, Any], name: str, known: Iterable[str]) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            self.problem(name, N_("expected a table [%(name)s], got %(type)s", name=name,
                                  type=type_name(value)))
            return {}
        self.unknown_keys(value, known, name)
        return value

    def unknown_keys(self, table: dict[str, Any], known: Iterable[str], prefix: str) -> None:
        known = sorted(known)
        for key in table:
            if key not in known:
                self.problem(f"{prefix}.{key}" if prefix else key,
                             N_("unknown key '%(key)s' %(known)s", key=_shown(key),
                                known=_known(key, known)))

    def number(self, table: dict[str, Any], key: str, prefix: str, default: Any, *,
               minimum: float | None = None, above: float | None = None,
               maximum: float | None = None, whole: bool = False) -> Any:
        """The number at `key`, `default` when absent or wrong (the problem is noted)."""
        if key not in table:
            return default
        value = table[key]
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(path, N_("expected a whole number, got %(type)s", type=type_name(value))
                         if whole else
                         N_("expected a number, got %(type)s", type=type_name(value)))
            return default
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(path, N_("expected a finite number, got %(value)s", value=value))
            return default
        if whole and not isinstance(value, int):
            self.problem(path, N_("expected a whole number, got %(value)s", value=value))
            return default
        if minimum is not None and value < minimum:
            self.problem(path, N_("must be at least %(minimum)g, got %(value)s",
                                  minimum=minimum, value=value))
            return default
        if above is not None and value <= above:
            self.problem(path, N_("must be above %(minimum)g, got %(value)s", minimum=above,
                                  value=value))
            return default
        if maximum is not None and value > maximum:
            self.problem(path, N_("must be at most %(maximum)s, got %(value)s",
                                  maximum=f"{maximum:,g}", value=value))
            return default
        return value

    def boolean(self, table: dict[str, Any], key: str, prefix: str, default: bool) -> bool:
        if key not in table:
            return default
        value = table[key]
        if not isinstance(value, bool):
            self.problem(f"{prefix}.{key}", N_("expected true or false, got %(type)s",
                                               type=type_name(value)))
            return default
        return value

    def string(self, table: dict[str, Any], key: str, prefix: str,
               default: str | None) -> str | None:
        if key not in table:
            return default
        value = table[key]
        if not isinstance(value, str):
            self.problem(f"{prefix}.{key}" if prefix else key,
                         N_("expected a string, got %(type)s", type=type_name(value)))
            return None
        control = CONTROL_CHARACTER.search(value)
        if control:
            # A TOML escape such as \u0000 puts one in; PostgreSQL cannot store NUL.
            self.problem(f"{prefix}.{key}" if prefix else key,
                         N_("contains the control character U+%(code)s; remove it",
                            code=f"{ord(control.group()):04X}"))
            return None
        return value


# Control characters other than tab and line breaks, which a string may hold.
CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# The control characters TOML allows nowhere, not even in a comment (tab and line breaks aside).
# The C1 ones are TOML in a comment: a rule file adopted with one there still reads.
UNREADABLE_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# --- the sections -----------------------------------------------------------------------

TOP_LEVEL_KEYS = ("name", "description", "tie_break", "eligibility", "factors", "caps",
                  "allocation", "appeals", "review", "flags", "preferences")
ELIGIBILITY_KEYS = tuple(ELIGIBILITY_SETTINGS)
CAPS_KEYS = ("max_awards_per_rep_per_round",)
ALLOCATION_KEYS = ("method", "min_bids_per_listing")
APPEALS_KEYS = ("window_working_days",)
PREFERENCES_KEYS = ("mode", "bonus")
# Four working weeks: a longer standstill holds accounts out of work for too long.
MAX_APPEAL_WINDOW_WORKING_DAYS = 20
FACTOR_BASE_KEYS = ("metric", "weight", "normaliser")
FLAGS_KEYS = ("stale_crm_days", "outlier_mads", "outlier_min_sample")
# Ten years: beyond that the staleness flag means nothing; a median of fewer than 3 values
# has no spread worth the name.
MAX_STALE_CRM_DAYS = 3650
MAX_OUTLIER_MADS = 100
MIN_OUTLIER_SAMPLE = 3
REVIEW_KEYS = ("criteria", "min_reviews_per_bid", "show_reviewer_names")
REVIEW_CRITERION_KEYS = ("name", "label", "min", "max")
_CRITERION_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def _factor_keys() -> list[str]:
    params = {param.name for normaliser in NORMALISERS.values() for param in normaliser.params}
    return [*FACTOR_BASE_KEYS, *sorted(params)]


def _setting(check: _Checker, section: dict[str, Any], setting: Setting) -> tuple[Any, bool]:
    """The value of one [eligibility] setting (its default when absent or wrong), and whether
    what was written is usable."""
    if setting.kind == "boolean":
        value = check.boolean(section, setting.key, "eligibility", None)
    else:
        value = check.number(section, setting.key, "eligibility", None,
                             minimum=setting.minimum, maximum=setting.maximum,
                             whole=setting.kind == "whole")
    written_ok = setting.key not in section or value is not None
    return (setting.default if value is None else value), written_ok


def _eligibility(check: _Checker, data: dict[str, Any]) -> Eligibility:
    """[eligibility], read setting by setting from the checks registered in eligibility.py."""
    section = check.table(data, "eligibility", ELIGIBILITY_KEYS)
    values: dict[str, Any] = {}
    for rule in ELIGIBILITY_CHECKS.values():
        all_ok = True
        for setting in rule.settings:
            values[setting.key], written_ok = _setting(check, section, setting)
            all_ok = all_ok and written_ok
        if all_ok and rule.conflict and (message := rule.conflict(values)):
            key = next((key for key in rule.keys if key in section), rule.keys[0])
            check.problem(f"eligibility.{key}", message)
    return Eligibility(**values)


def _factor(check: _Checker, raw: dict[str, Any], prefix: str,
            metrics: dict[str, Any]) -> Factor | None:
    """One [[factors]] entry; None when it is too broken to use (problems are noted)."""
    check.unknown_keys(raw, _factor_keys(), prefix)
    metric = _factor_metric(check, raw, prefix, metrics)
    weight = _factor_weight(check, raw, prefix)
    normaliser = _factor_normaliser(check, raw, prefix)
    if normaliser is None:
        return None
    params = _factor_params(check, raw, prefix, normaliser)
    if metric is None or weight is None or params is None:
        return None
    factor = Factor(metric, float(weight), normaliser.name, params)
    _warn_against_direction(check, f"{prefix}.weight", factor, weight, metrics[metric])
    return factor


def _factor_metric(check: _Checker, raw: dict[str, Any], prefix: str,
                   metrics: dict[str, Any]) -> str | None:
    """The factor's metric, a name in `metrics`; None when missing or unknown (noted)."""
    metric = check.string(raw, "metric", prefix, None)
    if "metric" not in raw:
        check.problem(f"{prefix}.metric", N_("missing: name the metric this factor scores"))
        return None
    if metric == PLAN_REVIEW and metric not in metrics:
        check.problem(f"{prefix}.metric", N_(
            "plan_review scores the blind review of applications, and these rules have no "
            "[review] section: add one with its criteria, or score another metric"))
        return None
    if metric is not None and metric not in metrics:
        check.problem(f"{prefix}.metric", N_("unknown metric '%(name)s' %(known)s",
                                             name=_shown(metric), known=_known(metric, metrics)))
        return None
    return metric


def _factor_weight(check: _Checker, raw: dict[str, Any], prefix: str) -> float | None:
    """The factor's weight as written, within MAX_ABS_WEIGHT; None when unusable (noted)."""
    if "weight" not in raw:
        check.problem(f"{prefix}.weight", N_("missing: give the factor a weight (negative for "
                                             "a penalty)"))
    weight = check.number(raw, "weight", prefix, None)
    if weight is not None and abs(weight) > MAX_ABS_WEIGHT:
        check.problem(f"{prefix}.weight", N_("must be between -%(maximum)g and %(maximum)g, "
                                             "got %(weight)g", maximum=MAX_ABS_WEIGHT,
                                             weight=weight))
        return None
    return weight


def _factor_normaliser(check: _Checker, raw: dict[str, Any], prefix: str) -> Normaliser | None:
    """The factor's normaliser from NORMALISERS (minmax when not given); None when unknown."""
    name = check.string(raw, "normaliser", prefix, DEFAULT_NORMALISER)
    normaliser = NORMALISERS.get(name) if name is not None else None
    if name is not None and normaliser is None:
        check.problem(f"{prefix}.normaliser", N_("unknown normaliser '%(name)s' %(known)s",
                                                 name=_shown(name),
                                                 known=_known(name, NORMALISERS)))
    return normaliser


def _factor_params(check: _Checker, raw: dict[str, Any], prefix: str,
                   normaliser: Normaliser) -> dict[str, float] | None:
    """The normaliser's settings, defaults filled; None when one is missing or wrong (noted).

    A setting of another normaliser is refused rather than silently ignored.
    """
    takes = {param.name for param in normaliser.params}
    for key in raw:
        if key not in FACTOR_BASE_KEYS and key not in takes and key in _factor_keys():
            check.problem(f"{prefix}.{key}", N_(
                "the %(normaliser)s normaliser does not use %(key)s (it takes: %(takes)s)",
                normaliser=normaliser.name, key=key,
                takes=", ".join(sorted(takes)) or N_("nothing")))
    params: dict[str, float] = {}
    usable = True
    for param in normaliser.params:
        if param.name not in raw:
            if param.default is None:
                check.problem(f"{prefix}.{param.name}", N_(
                    "the %(normaliser)s normaliser needs %(setting)s",
                    normaliser=normaliser.name, setting=param.description))
                usable = False
            else:
                params[param.name] = param.default
            continue
        value = check.number(raw, param.name, prefix, None,
                             above=0 if param.must_be_positive else None,
                             minimum=None if param.must_be_positive else -MAX_ABS_PARAM,
                             maximum=MAX_ABS_PARAM)
        if value is None:
            usable = False
        else:
            params[param.name] = float(value)
    return params if usable else None


def _warn_against_direction(check: _Checker, path: str, factor: Factor, weight: float,
                            metric: Any) -> None:
    """Warn when the weight's sign rewards the worse rep on a metric with a direction."""
    direction = getattr(metric, "higher_is_better", None)
    if direction is False and factor.weight > 0:
        check.warning(path, N_("%(metric)s: less is better, but the weight %(weight)g is "
                               "positive, so more %(metric)s raises the score; use a negative "
                               "weight for a penalty", metric=factor.metric, weight=weight))
    elif direction is True and factor.weight < 0:
        check.warning(path, N_("%(metric)s: more is better, but the weight %(weight)g is "
                               "negative, so more %(metric)s lowers the score",
                               metric=factor.metric, weight=weight))


def _factors(check: _Checker, data: dict[str, Any],
             has_review: bool = False) -> tuple[Factor, ...]:
    raw_factors = data.get("factors", [])
    if not isinstance(raw_factors, list) or not all(isinstance(f, dict) for f in raw_factors):
        check.problem("factors", N_("expected [[factors]] tables (one per factor), got "
                                    "%(type)s", type=type_name(raw_factors)))
        return ()
    if not raw_factors:
        check.problem("factors", N_("missing: at least one [[factors]] entry is needed to "
                                    "rank bids"))
        return ()
    factors: list[Factor] = []
    first_use: dict[str, int] = {}
    metrics = {**METRICS, PLAN_REVIEW: PLAN_REVIEW_METRIC} if has_review else METRICS
    for index, raw in enumerate(raw_factors):
        factor = _factor(check, raw, f"factors[{index}]", metrics)
        if factor is None:
            continue
        if factor.metric in first_use:
            check.problem(f"factors[{index}].metric", N_(
                "metric '%(metric)s' is already scored by factors[%(index)d]; combine them",
                metric=factor.metric, index=first_use[factor.metric]))
        first_use.setdefault(factor.metric, index)
        factors.append(factor)
    if len(factors) == len(raw_factors) and all(factor.weight == 0 for factor in factors):
        check.problem("factors", N_("all weights are zero, so every bid would score the same"))
    return tuple(factors)


def _flags(check: _Checker, data: dict[str, Any]) -> FlagRules:
    """[flags]: when a bid deserves a second look before adjudication; defaults when absent."""
    section = check.table(data, "flags", FLAGS_KEYS)
    default = FlagRules()
    return FlagRules(
        stale_crm_days=check.number(section, "stale_crm_days", "flags", default.stale_crm_days,
                                    minimum=1, maximum=MAX_STALE_CRM_DAYS, whole=True),
        outlier_mads=float(check.number(section, "outlier_mads", "flags", default.outlier_mads,
                                        above=0, maximum=MAX_OUTLIER_MADS)),
        outlier_min_sample=check.number(section, "outlier_min_sample", "flags",
                                        default.outlier_min_sample, minimum=MIN_OUTLIER_SAMPLE,
                                        maximum=MAX_COUNT, whole=True))


def _review(check: _Checker, data: dict[str, Any]) -> ReviewRules | None:
    """[review]: the blind review of applications; None when the rules have no such section."""
    if "review" not in data:
        return None
    section = check.table(data, "review", REVIEW_KEYS)
    if not isinstance(data["review"], dict):
        return None
    minimum = check.number(section, "min_reviews_per_bid", "review", 1, minimum=1,
                           maximum=MAX_REVIEWS_PER_BID, whole=True)
    show_names = check.boolean(section, "show_reviewer_names", "review", False)
    raw = section.get("criteria", [])
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        check.problem("review.criteria", N_(
            "expected [[review.criteria]] tables (one per criterion), got %(type)s",
            type=type_name(raw)))
        return None
    if not raw:
        check.problem("review.criteria", N_("missing: at least one [[review.criteria]] entry "
                                            "says what reviewers score"))
    elif len(raw) > MAX_CRITERIA:
        check.problem("review.criteria", N_("at most %(count)d criteria; reviewers score each "
                                            "one for every application", count=MAX_CRITERIA))
    criteria = [_criterion(check, item, f"review.criteria[{index}]")
                for index, item in enumerate(raw[:MAX_CRITERIA])]
    seen: set[str] = set()
    for index, criterion in enumerate(criteria):
        if criterion is not None and criterion.name in seen:
            check.problem(f"review.criteria[{index}].name", N_(
                "criterion '%(name)s' is listed twice", name=criterion.name))
        if criterion is not None:
            seen.add(criterion.name)
    return ReviewRules(tuple(criterion for criterion in criteria if criterion is not None),
                       minimum, show_names)


def _criterion(check: _Checker, raw: dict[str, Any], prefix: str) -> ReviewCriterion | None:
    """One [[review.criteria]] entry: a name, a label and a range of whole points."""
    check.unknown_keys(raw, REVIEW_CRITERION_KEYS, prefix)
    name = check.string(raw, "name", prefix, None)
    if "name" not in raw:
        check.problem(f"{prefix}.name", N_("missing: name the criterion (e.g. plan_quality)"))
    elif name is not None and not _CRITERION_NAME.fullmatch(name):
        check.problem(f"{prefix}.name", N_(
            "'%(name)s' is not a criterion name: lower-case letters, digits and _ , starting "
            "with a letter, at most 40 characters", name=_shown(name)))
        name = None
    label = check.string(raw, "label", prefix, name)
    if label is not None and not label.strip():
        check.problem(f"{prefix}.label", N_("the label is what reviewers read: write one"))
    low = check.number(raw, "min", prefix, None, minimum=0, maximum=MAX_POINTS, whole=True)
    high = check.number(raw, "max", prefix, None, minimum=0, maximum=MAX_POINTS, whole=True)
    for key in ("min", "max"):
        if key not in raw:
            check.problem(f"{prefix}.{key}", N_("missing: give the criterion's lowest and "
                                                "highest points (e.g. min = 1, max = 5)"))
    if low is not None and high is not None and high <= low:
        check.problem(f"{prefix}.max", N_("must be above min (%(low)d), got %(high)d",
                                          low=low, high=high))
        return None
    if name is None or label is None or not label.strip() or low is None or high is None:
        return None
    return ReviewCriterion(name, label.strip(), low, high)


def _preferences(check: _Checker, data: dict[str, Any]) -> Preferences:
    """[preferences]: how the reps' rankings of their own bids count (preferences.py)."""
    section = check.table(data, "preferences", PREFERENCES_KEYS)
    mode = check.string(section, "mode", "preferences", Preferences.mode)
    if mode is not None and mode not in PREFERENCE_MODES:
        check.problem("preferences.mode", N_("unknown preference mode '%(name)s' %(known)s",
                                             name=_shown(mode),
                                             known=_known(mode, PREFERENCE_MODES)))
        mode = None
    bonus = check.number(section, "bonus", "preferences", None, minimum=0.000001,
                         maximum=MAX_ABS_WEIGHT)
    if mode == BONUS and "bonus" not in section:
        check.problem("preferences.bonus", N_("missing: the bonus mode needs the bonus of a "
                                              "first choice, e.g. bonus = 0.05"))
    elif "bonus" in section and mode is not None and mode != BONUS:
        check.problem("preferences.bonus", N_('used only with mode = "bonus" (the mode is '
                                              '"%(mode)s")', mode=mode))
    return Preferences(mode or Preferences.mode, float(bonus or 0.0))


def _tie_break(check: _Checker, data: dict[str, Any]) -> tuple[str, ...]:
    if "tie_break" not in data:
        return DEFAULT_TIE_BREAK
    value = data["tie_break"]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        check.problem("tie_break", N_('expected a list of names, e.g. %(example)s',
                                      example='["fewest_accounts_held", '
                                              '"earliest_submission", "lottery"]'))
        return DEFAULT_TIE_BREAK
    if not value:
        check.problem("tie_break", N_("list at least one tie-break %(known)s",
                                      known=_known("", TIE_BREAKS)))
    for item in value:
        if item not in TIE_BREAKS:
            check.problem("tie_break", N_("unknown tie-break '%(name)s' %(known)s",
                                          name=_shown(item), known=_known(item, TIE_BREAKS)))
    for item in sorted(name for name, times in Counter(value).items() if times > 1):
        check.problem("tie_break", N_("'%(name)s' is listed twice; each tie-break may appear "
                                      "once", name=_shown(item)))
    return tuple(value)


@dataclass(frozen=True)
class _Written:
    """A float as written in the rule text, and its exact value (1e-400 is not 0 here)."""

    text: str
    value: Decimal


def _written_float(text: str) -> _Written:
    try:
        return _Written(text, Decimal(text))
    except InvalidOperation:  # not reached: tomllib passes only what it read as a float
        return _Written(text, Decimal("NaN"))


def _weights_too_small(check: _Checker, text: str) -> None:
    """New rule text only: a weight that is not 0 but too small for any contribution to
    count, which would otherwise score nothing without the "all weights are zero" refusal."""
    factors = tomllib.loads(text, parse_float=_written_float).get("factors")
    if not isinstance(factors, list):
        return
    for index, raw in enumerate(factors):
        weight = raw.get("weight") if isinstance(raw, dict) else None
        if (isinstance(weight, _Written) and weight.value.is_finite() and weight.value != 0
                and abs(weight.value) <= MIN_COUNTED_WEIGHT):
            check.problem(f"factors[{index}].weight", N_(
                "the weight %(weight)s is too small to count: contributions and totals carry "
                "%(decimals)d decimals, so a weight between -%(limit)s and %(limit)s makes "
                "every contribution 0; write 0 to leave the factor out of the total, or a "
                "weight of at least %(least)s", weight=weight.text,
                decimals=SCORE_DECIMALS, limit=f"{MIN_COUNTED_WEIGHT:f}",
                least=f"{Decimal(1).scaleb(-SCORE_DECIMALS):f}"))


def _beyond_the_handbook(check: _Checker, eligibility: Eligibility) -> None:
    """The handbook's 30-40 accounts per rep binds: new rules may hold reps to fewer than 40,
    never let them hold more. A version adopted before this check keeps its rules."""
    if eligibility.capacity_max > HANDBOOK_CAPACITY_MAX:
        check.problem("eligibility.capacity_max", N_(
            "the handbook allows a rep at most %(maximum)d accounts, and no award or transfer "
            "may take a rep past it; got %(value)s", maximum=HANDBOOK_CAPACITY_MAX,
            value=eligibility.capacity_max))


def parse_new_rules(text: str) -> RuleSet:
    """parse_rules for rule text that is new (a draft, a file to adopt), with the checks that
    only new text must pass: a weight too small to count. Stored versions are read with
    parse_rules, so a version adopted before a check existed keeps its rules and hash."""
    return _parse(text, is_new=True)


def parse_rules(text: str) -> RuleSet:
    """The rule set in `text`, or RuleError listing its problems (key path, line, reason).

    A leading byte order mark is dropped; `RuleSet.text` is the text without it.
    """
    return _parse(text, is_new=False)


def _parse(text: str, *, is_new: bool) -> RuleSet:
    text = _without_bom(text)
    data = _load(text)
    check = _Checker(text)
    check.unknown_keys(data, TOP_LEVEL_KEYS, "")
    name = check.string(data, "name", "", "unnamed rules")
    if name is not None and len(name) > MAX_NAME_LENGTH:
        check.problem("name", N_("at most %(count)d characters, got %(length)d",
                                 count=MAX_NAME_LENGTH, length=len(name)))
    description = check.string(data, "description", "", "")
    eligibility = _eligibility(check, data)
    factors = _factors(check, data, has_review="review" in data)

    caps_section = check.table(data, "caps", CAPS_KEYS)
    caps = Caps(check.number(caps_section, "max_awards_per_rep_per_round", "caps", None,
                             minimum=1, maximum=MAX_COUNT, whole=True))

    tie_break = _tie_break(check, data)

    section = check.table(data, "allocation", ALLOCATION_KEYS)
    method = check.string(section, "method", "allocation", DEFAULT_ALLOCATION_METHOD)
    if method is not None and method not in ALLOCATION_METHODS:
        check.problem("allocation.method", N_("unknown allocation method '%(name)s' %(known)s",
                                              name=_shown(method),
                                              known=_known(method, ALLOCATION_METHODS)))
    min_bids = check.number(section, "min_bids_per_listing", "allocation", 1, minimum=0,
                            maximum=MAX_COUNT, whole=True)

    appeals = check.table(data, "appeals", APPEALS_KEYS)
    window = check.number(appeals, "window_working_days", "appeals", 0, minimum=0,
                          maximum=MAX_APPEAL_WINDOW_WORKING_DAYS, whole=True)
    review = _review(check, data)
    flags = _flags(check, data)
    preferences = _preferences(check, data)
    if is_new:
        _weights_too_small(check, text)
        _beyond_the_handbook(check, eligibility)

    if check.problems:
        raise RuleError(sorted(check.problems, key=_file_order))
    return RuleSet(name=name, description=description, eligibility=eligibility,
                   factors=factors, caps=caps, tie_break=tie_break, allocation=method,
                   min_bids_per_listing=min_bids, text=text, version_hash=_hash(data),
                   appeal_window_working_days=window, review=review, flags=flags,
                   preferences=preferences,
                   warnings=tuple(sorted(check.warnings, key=_file_order)))


def _file_order(problem: RuleProblem) -> tuple[bool, int]:
    # Stable sort: problems without a line keep their order, after the located ones.
    return (problem.line is None, problem.line or 0)
