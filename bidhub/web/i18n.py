"""Language and time zone of the person looking at a page."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, date, datetime
from functools import cache, lru_cache
from gettext import NullTranslations
from pathlib import Path
from typing import TypeVar
from weakref import WeakKeyDictionary
from zoneinfo import ZoneInfo

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, current_app, g, has_app_context, has_request_context, request, session
from flask_babel import get_locale, get_translations
from flask_babel import gettext as _
from flask_login import current_user

from bidhub.domain.errors import BidhubError, InvalidRequest
from bidhub.domain.messages import loads as stored_message
from bidhub.domain.text import Joined, Text, render

log = logging.getLogger(__name__)

# A .mo written within this many seconds before its .po counts as compiled from it: installing
# a wheel writes both files in an arbitrary order, a moment apart.
COMPILED_TOLERANCE_SECONDS = 2.0


def select_locale() -> Locale | None:
    """The page's language: the user's saved choice, else the session's (the switch on the
    login page), else the browser's Accept-Language, else DEFAULT_LOCALE. A Locale made once
    per code: Flask-Babel would parse a code, or DEFAULT_LOCALE, again on every request."""
    if not has_request_context():
        return None
    config = current_app.config
    languages = config["LANGUAGES"]
    if current_user.is_authenticated and current_user.locale in languages:
        return babel_locale(current_user.locale)
    chosen = session.get("locale")
    if chosen in languages:
        return babel_locale(chosen)
    return babel_locale(best_language(request.accept_languages, languages)
                        or config["BABEL_DEFAULT_LOCALE"])


def best_language(accepted: Iterable[tuple[str, float]], languages: Collection[str]) -> str | None:
    """The first of the browser's languages, by preference, that bidhub speaks.

    A region bidhub lacks falls back to its language (en-GB is en, zh-TW and zh-Hans-CN are
    zh_CN) before the next preference is tried; Werkzeug's best_match would give en-GB,
    zh-CN;q=0.5 Chinese because only zh-CN matches exactly.
    """
    by_tag: dict[str, str] = {}
    for language in languages:
        tag = language.replace("_", "-").lower()
        by_tag.setdefault(tag, language)
        by_tag.setdefault(tag.split("-")[0], language)
    for value, quality in accepted:
        if quality <= 0:
            continue
        tag = value.replace("_", "-").lower()
        match = by_tag.get(tag) or by_tag.get(tag.split("-")[0])
        if match is not None:
            return match
    return None


def current_language() -> str:
    """The entry of LANGUAGES the page speaks ("zh_CN", "en"); Babel's own name for Chinese
    is zh_Hans_CN, which is also the catalogue's directory name."""
    locale = get_locale()
    for code in current_app.config["LANGUAGES"]:
        if babel_locale(code) == locale:
            return code
    return current_app.config["DEFAULT_LOCALE"]


@cache
def babel_locale(code: str) -> Locale:
    return Locale.parse(code)


def html_lang() -> str:
    """The page's language for `<html lang>`: zh-CN or en."""
    return current_language().replace("_", "-")


def translate(message: Text | Joined | BidhubError | str) -> str:
    """A message from the domain or a service, in the language of the page being rendered,
    its dates in the page's style (with_local_dates)."""
    if isinstance(message, BidhubError):
        message = message.message
    elif isinstance(message, str):
        message = stored_message(message)  # a reason stored as msgid and parameters
    return render(with_local_dates(message), gettext)


def with_local_dates(message: Text | Joined | str) -> Text | Joined | str:
    """The message with its dates as the page shows them (2026年11月29日, 2026年11月29日 14:30):
    a `date`, a `datetime` (in local time), and a parameter named *_on or *_at that holds one
    in ISO form, as a message kept as JSON must (a notification's, an import report's)."""
    if isinstance(message, Joined):
        return Joined([with_local_dates(part) for part in message.parts], message.separator)
    if not isinstance(message, Text) or not message.params:
        return message
    return Text(message.msgid, {name: _shown_parameter(name, value)
                                for name, value in message.params.items()})


def _shown_parameter(name: str, value: object) -> object:
    if isinstance(value, Text | Joined):
        return with_local_dates(value)
    if isinstance(value, str) and name.endswith(("_at", "_on")):
        try:
            value = (datetime.fromisoformat(value) if name.endswith("_at")
                     else date.fromisoformat(value))
        except ValueError:
            return value
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # stored instants are UTC
    if isinstance(value, datetime):
        return format_local_time(utc_to_local(value))
    if isinstance(value, date):
        return format_day(value)
    return value


# Flask-Babel finds the request's catalogue afresh on every call (six context lookups and a
# Locale formatted to a string, a few microseconds each time), and a page asks for a few dozen
# messages, some many times. So a request finds its catalogue once, and what a catalogue says
# of a msgid is kept beside it for the life of the process: Flask-Babel loads each catalogue
# once per process and never changes it, so this is as fresh as Flask-Babel itself. The
# request's choice follows the locale object Flask-Babel holds for it: force_locale (a
# notification in its recipient's language) and refresh() replace that object, which makes
# the next call look the catalogue up again, so a message is never served in the wrong language.
_said_by_catalogue: WeakKeyDictionary[NullTranslations, dict] = WeakKeyDictionary()
T = TypeVar("T")


def page_catalogue() -> tuple[NullTranslations, dict] | None:
    """The catalogue of the page being rendered and what it has said so far (msgid ->
    translation, and whatever else its callers key by it); None outside a request or before
    Flask-Babel has chosen the language."""
    if not has_request_context():
        return None
    babel_state = g.get("_flask_babel")
    locale = getattr(babel_state, "babel_locale", None)
    if locale is None:
        return None
    chosen = getattr(babel_state, "bidhub_catalogue", None)
    if chosen is None or chosen[0] is not locale:
        translations = get_translations()
        said = _said_by_catalogue.get(translations)
        if said is None:
            said = _said_by_catalogue[translations] = {}
        chosen = babel_state.bidhub_catalogue = (locale, translations, said)
    return chosen[1], chosen[2]


def kept_with_catalogue(key: object, build: Callable[[], T]) -> T:
    """What `build` makes from the page's language alone (translated labels, say), made once
    per catalogue and kept beside it, since a catalogue never changes in a process; built
    afresh outside a request. `key` must not be a string (msgids are). Read-only to callers."""
    catalogue = page_catalogue()
    if catalogue is None and has_request_context():
        get_locale()  # Flask-Babel chooses the page's language on first use
        catalogue = page_catalogue()
    if catalogue is None:
        return build()
    said = catalogue[1]
    value = said.get(key)
    if value is None:
        value = said[key] = build()
    return value


def gettext(msgid: str) -> str:
    """The message `msgid` (no parameters) in the page's language, unformatted."""
    catalogue = page_catalogue()
    if catalogue is None:
        return get_translations().ugettext(msgid)
    translations, said = catalogue
    translated = said.get(msgid)
    if translated is None:
        translated = said[msgid] = translations.ugettext(msgid)
    return translated


def ngettext(singular: str, plural: str, number: int) -> str:
    """The singular or plural message for `number` in the page's language, unformatted."""
    catalogue = page_catalogue()
    translations = get_translations() if catalogue is None else catalogue[0]
    return translations.ungettext(singular, plural, number)


def init_app(app: Flask) -> None:
    """Templates translate through the kept translations. Jinja's newstyle gettext passes the
    callables the bare message and does the %-formatting itself, so keeping them is exact."""
    app.jinja_env.install_gettext_callables(gettext, ngettext, newstyle=True)


def page_locale() -> Locale:
    """The Babel locale of the page being rendered; outside a request (an e-mail from the
    scheduler, say) the default language's, outside the app English."""
    locale = get_locale()
    if locale is not None:
        return locale
    return babel_locale(current_app.config["DEFAULT_LOCALE"] if has_app_context() else "en")


def speaks_chinese() -> bool:
    # Asked for every date and amount a page formats: the locale Flask-Babel holds for the
    # request (force_locale's included) is read directly, as page_catalogue does.
    if has_request_context():
        locale = getattr(g.get("_flask_babel"), "babel_locale", None)
        if locale is not None:
            return locale.language == "zh"
    return page_locale().language == "zh"


# Dates, times and amounts are formatted here rather than with Babel's format_* functions:
# those take 30-140 µs a call, and a listing formats a few thousand cells. The two languages'
# styles are fixed: 2026年11月29日 14:30 and ¥1,200,000 / 120万 in Chinese, 2026-11-29 14:30
# and ¥1,200,000 / ¥1.2M in English (both group thousands with commas).
def format_day(day: date) -> str:
    if speaks_chinese():
        return f"{day.year}年{day.month}月{day.day}日"
    return day.isoformat()


def format_local_time(local: datetime, *, with_time: bool = True) -> str:
    """A date and time already in the app's time zone, in the page's style."""
    day = format_day(local.date())
    return f"{day} {local:%H:%M}" if with_time else day


def format_yuan(value: int | float) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}¥{abs(value):,.0f}"


# Compact units, largest first: Chinese counts in 万 (10^4) and 亿 (10^8).
COMPACT_UNITS = {"zh": ((10**8, "亿"), (10**4, "万")),
                 "en": ((10**9, "B"), (10**6, "M"), (10**3, "K"))}
COMPACT_DIGITS = 3  # significant digits a compact figure keeps


def format_yuan_compact(value: int | float, *, chinese: bool | None = None) -> str:
    """An amount for a glance: 120万 or 1.23亿 on a Chinese page, ¥1.2M on an English one;
    small amounts in full (¥9,500). `chinese` says which, for a caller formatting many."""
    whole = round(abs(value))
    sign = "-" if value < 0 else ""
    rounded = round_significant(whole, COMPACT_DIGITS)
    if chinese is None:
        chinese = speaks_chinese()
    for size, suffix in COMPACT_UNITS["zh" if chinese else "en"]:
        if rounded >= size:
            figure = f"{rounded / size:,.2f}".rstrip("0").rstrip(".")
            return f"{sign}{figure}{suffix}" if chinese else f"{sign}¥{figure}{suffix}"
    return format_yuan(value)


def format_yuan_exact(value: int, *, chinese: bool | None = None) -> str:
    """A whole amount to the yuan, as a limit is read: 20亿元, 2.5亿元 or 3,500万元 on a Chinese
    page (in 元 when no unit fits it: 9,500元), ¥2,000,000,000 on an English one. Nothing is
    rounded away, as format_yuan_compact does."""
    if chinese is None:
        chinese = speaks_chinese()
    if not chinese:
        return format_yuan(value)
    whole = int(value)
    sign = "-" if whole < 0 else ""
    for size, suffix in COMPACT_UNITS["zh"]:
        # A figure in the unit with at most two decimals, else the next, smaller unit.
        if abs(whole) >= size and abs(whole) * 100 % size == 0:
            figure = f"{abs(whole) / size:,.2f}".rstrip("0").rstrip(".")
            return f"{sign}{figure}{suffix}元"
    return f"{sign}{abs(whole):,}元"


def round_significant(value: int, digits: int) -> int:
    """`value` (>= 0) rounded half up to its first `digits` digits: 1234567 -> 1230000."""
    excess = len(str(value)) - digits
    if excess <= 0:
        return value
    factor = 10**excess
    return (value + factor // 2) // factor * factor


def select_timezone() -> str:
    return current_app.config["TIMEZONE"]


def local_zone() -> ZoneInfo:
    return zone_named(current_app.config["TIMEZONE"])


@lru_cache(maxsize=8)
def zone_named(name: str) -> ZoneInfo:
    return ZoneInfo(name)


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


def translation_directories(app: Flask) -> str:
    """Where the compiled catalogues are: the package's, or a fresh compile in the instance
    folder when a .mo is missing or older than its .po (a clone whose .po changed after
    `pip install -e .`, a checkout that was never built)."""
    source = Path(app.root_path) / "translations"
    sources = sorted(source.glob("*/LC_MESSAGES/*.po"))
    if all(is_compiled(po, po.with_suffix(".mo")) for po in sources):
        return str(source)
    target = Path(app.instance_path) / "translations"
    try:
        for po in sources:
            mo = target / po.relative_to(source).with_suffix(".mo")
            if not is_compiled(po, mo):
                compile_catalogue(po, mo)
    except OSError as error:
        log.warning("Could not compile the translations into %s (%s); pages may show English.",
                    target, error)
        return str(source)
    return str(target)


def is_compiled(po: Path, mo: Path) -> bool:
    try:
        return mo.stat().st_mtime >= po.stat().st_mtime - COMPILED_TOLERANCE_SECONDS
    except FileNotFoundError:
        return False


def compile_catalogue(po: Path, mo: Path) -> None:
    """Compile `po` into `mo`, replacing it in one step: other processes may be starting too."""
    with po.open("rb") as po_file:
        catalogue = read_po(po_file, locale=po.parent.parent.name)
    mo.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=mo.parent, suffix=".mo.tmp")
    try:
        with os.fdopen(descriptor, "wb") as mo_file:
            write_mo(mo_file, catalogue)
        os.replace(temporary, mo)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
