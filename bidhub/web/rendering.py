"""Rendering helpers: pages or their htmx partials, form errors as 422, htmx redirects, filters."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any

from babel.dates import get_timezone_location
from babel.lists import format_list
from flask import Flask, Response, current_app, make_response, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from markupsafe import Markup, escape

from bidhub.domain.metrics import METRICS
from bidhub.models import (
    AppealStatus,
    BidStatus,
    Branch,
    DecisionKind,
    DeliveryStatus,
    ExecutiveTitle,
    FilingKind,
    ImportStatus,
    IncidentStatus,
    ListingStatus,
    LossReviewStatus,
    ReleaseReason,
    RepStatus,
    Role,
    RoundStatus,
    TransferRequestStatus,
)
from bidhub.services import adjudication, policies
from bidhub.services.branches import branch_label
from bidhub.web import labels
from bidhub.web.access import reachable_endpoint
from bidhub.web.allocation_reasons import allocation_reason
from bidhub.web.i18n import (
    current_language,
    format_day,
    format_local_time,
    format_yuan,
    format_yuan_compact,
    gettext,
    html_lang,
    ngettext,
    translate,
    utc_to_local,
)


def is_htmx_partial_request() -> bool:
    """An htmx request that wants a fragment (not a boosted link or a history restore).

    Read from the WSGI environ, where the server put the headers: Headers.get raises and
    catches an exception for each header a request lacks, and most lack two of these three
    (every signed-in request asks, when its user is loaded)."""
    environ = request.environ
    return (environ.get("HTTP_HX_REQUEST") == "true"
            and environ.get("HTTP_HX_BOOSTED") != "true"
            and environ.get("HTTP_HX_HISTORY_RESTORE_REQUEST") != "true")


def render(template: str, status: int = 200, **context: Any) -> Response:
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response


def page_or_partial(page_template: str, partial_template: str, **context: Any) -> Response:
    """The whole page, or for an htmx request only the partial the page includes; the
    partial is told it stands alone (`partial`), to send what it changes outside itself."""
    partial = is_htmx_partial_request()
    return render(partial_template if partial else page_template, partial=partial, **context)


def render_form_errors(template: str, **context: Any) -> Response:
    """Re-render a form with its field messages; 422 so clients know nothing was saved."""
    return render(template, status=422, **context)


def hx_redirect(location: str, status: int = 200) -> Response:
    response = make_response("", status)
    response.headers["HX-Redirect"] = location
    return response


def redirect_after_post(location: str, *, event: str | None = None) -> Response:
    """303 for plain forms; HX-Redirect (with an optional past-tense event) for htmx."""
    from flask import redirect

    if request.headers.get("HX-Request") == "true":
        response = hx_redirect(location)
    else:
        response = redirect(location, code=303)
    if event:
        response.headers["HX-Trigger"] = event
    return response


def localtime(value: datetime | date | None, fmt: str | None = None) -> str:
    """An instant in the app's time zone in the page's style (2026年11月29日 14:30 or
    2026-11-29 14:30); a date, or `fmt` "date" (or "%Y-%m-%d"), gives the day only; any other
    `fmt` is a strftime pattern used as it is."""
    if value is None:
        return ""
    if not isinstance(value, datetime):
        return format_day(value)
    local = utc_to_local(value)
    if fmt in (None, "datetime", "date", DAY_PATTERN):
        return format_local_time(local, with_time=fmt not in ("date", DAY_PATTERN))
    return local.strftime(fmt)


DAY_PATTERN = "%Y-%m-%d"


def stamp(value: datetime | None) -> Markup:
    """`{{ instant|stamp }}`: `localtime` for a table cell of class "stamp": the day and the
    time each kept whole, so that a narrow table puts the time under the day instead of
    running past the screen."""
    if value is None:
        return Markup("")
    local = utc_to_local(value)
    return Markup(f"<span>{escape(format_day(local.date()))}</span> "  # noqa: S704 (escaped)
                  f"<span>{local:%H:%M}</span>")


def listed(items) -> str:
    """`{{ names|listed }}`: a list in the page's language (赢单率、阶段转化率和司龄 or "win rate,
    stage conversion, and tenure")."""
    return format_list([str(item) for item in items], locale=get_locale() or "en")


def decision_links(listings) -> Markup:
    """`{{ summary.undecided|decision_links }}`: each listing's account as a link to its row
    on the round page, one after another with the page's separator (、 or a comma); the
    separator is translated once, not once a listing. Written as plain text with each name
    escaped: Markup.format parses its pattern again for every link."""
    separator = str(escape(gettext(", ")))
    return Markup(separator.join(  # noqa: S704 (each name escaped)
        f'<a href="#decision-{int(listing.id)}">{escape(listing.account.name)}</a>'
        for listing in listings))


# Languages whose sentences run on after their full stop (。) with no space between them.
RUN_ON_LANGUAGES = frozenset({"zh", "ja"})


def sentence_gap() -> str:
    """What follows a sentence or a label before the next: a space in English, nothing after
    a Chinese 。 or ：."""
    locale = get_locale()
    return "" if locale is not None and locale.language in RUN_ON_LANGUAGES else " "


def sentences(*parts) -> Markup:
    """`{{ sentences(hint, more) }}`: sentences one after another, the empty ones left out:
    with a space between them in English, with none after a Chinese 。. Markup.join escapes
    every part that is not markup already."""
    return escape(sentence_gap()).join(part for part in parts if part)


def yuan(value: int | float | None) -> str:
    return "—" if value is None else format_yuan(value)


def yuan_compact(value: int | float | None) -> str:
    """`{{ amount|yuan_compact }}`: 120万 on a Chinese page, ¥1.2M on an English one."""
    return "—" if value is None else format_yuan_compact(value)


def score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


# Templates compare against these, never against string literals (tests/test_templates.py).
TEMPLATE_ENUMS = {enum.__name__: enum for enum in (
    Role, RepStatus, ReleaseReason, RoundStatus, ListingStatus, BidStatus, DecisionKind, FilingKind,
    IncidentStatus, ImportStatus, DeliveryStatus, policies.BidOutcome, LossReviewStatus,
    ExecutiveTitle, TransferRequestStatus, AppealStatus)}

# Templates ask the same named policies as the views do.
TEMPLATE_POLICIES = {function.__name__: function for function in (
    policies.bids_are_sealed, policies.results_are_published, policies.awaits_scoring,
    policies.accepts_bids, policies.may_see_owner)}


PERCENT_UNITS = ("share", "ratio")


def metric_value(value: float | None, name: str) -> str:
    """A metric's value in its registered unit; a name no longer registered shows the number."""
    metric = METRICS.get(name)
    unit = metric.unit if metric is not None else ""
    if value is None:
        return "—"
    if unit in PERCENT_UNITS:
        return percent(value)
    if unit == "yuan":
        return yuan(value)
    if unit in COUNT_UNITS:
        return whole_number(value)
    return decimal_number(value)


def metric_amount(value: float | None, name: str) -> str:
    """`{{ value|metric_amount(name) }}`: a metric's value with its unit in words where it has
    one ("1,234 accounts", "5.98 months"); shares, ratios and yuan as metric_value writes
    them. The messages come through the page's kept catalogue (bidhub.web.i18n): a track
    record shows a dozen of them."""
    unit = getattr(METRICS.get(name), "unit", "")
    if value is None:
        return metric_value(value, name)
    if unit == "accounts":
        return (ngettext("%(count)s account", "%(count)s accounts", round(value))
                % {"count": whole_number(value)})
    if unit == "incidents":
        return (ngettext("%(count)s incident", "%(count)s incidents", round(value))
                % {"count": whole_number(value)})
    if unit == "months":
        # As many digits as metric_value gives: 5.98 months must not read as 6.
        return gettext("%(months)s months") % {"months": metric_value(value, name)}
    return metric_value(value, name)


# Metrics that count things: shown as whole numbers, whatever their size.
COUNT_UNITS = ("accounts", "incidents")
CENT = Decimal("0.01")


def whole_number(value: float) -> str:
    """A count with its thousands grouped (1,234), as amounts of yuan are in both languages."""
    return f"{round(value):,}"


def decimal_number(value: float) -> str:
    """Two decimals at most, the thousands grouped (1,273.99; 5.98; 24), never rounded up to a
    whole number the value has not reached: 5.999 months with the company reads 5.99, not the
    6 a minimum of six months asks for."""
    exact = Decimal(repr(value))
    shown = exact.quantize(CENT, rounding=ROUND_HALF_EVEN)
    if shown.to_integral_value(ROUND_FLOOR) > exact.to_integral_value(ROUND_FLOOR):
        shown = exact.quantize(CENT, rounding=ROUND_FLOOR)
    text = f"{shown or Decimal(0):,.2f}"
    return text.rstrip("0").rstrip(".")


def branch_name(branch: Branch | None) -> str:
    """`{{ branch|branch_name }}`: the Chinese name on a Chinese page, else the name."""
    return branch_label(branch, get_locale())


URL_CACHE = "bidhub_template_urls"
URL_CACHE_LIMIT = 50_000


def template_url_for(endpoint: str, **values: Any) -> str:
    """`url_for` for templates, remembered per app: a page's rows link to the same few
    endpoints with different ids, and Werkzeug's URL building costs more than the rest of a
    row. Only a URL that depends on nothing but its arguments and the app's mount point is
    kept: none relative to the current blueprint, external, anchored or with a list argument."""
    if endpoint.startswith(".") or not all(
            type(value) in (int, str) and not name.startswith("_") for name, value in values.items()):
        return url_for(endpoint, **values)
    key = (request.script_root, endpoint, *sorted(values.items()))
    cache = current_app.extensions[URL_CACHE]
    url = cache.get(key)
    if url is None:
        if len(cache) >= URL_CACHE_LIMIT:
            cache.clear()
        url = cache[key] = url_for(endpoint, **values)
    return url


FRAGMENT_CACHE = "bidhub_template_fragments"
FRAGMENT_CACHE_LIMIT = 1_000


def keep(*key: Any, caller: Callable[[], Markup]) -> Markup:
    """`{% call keep(name, ...) %}...{% endcall %}`: a fragment rendered once per app for its
    key, the page's language and the app's mount point, for markup that depends on nothing
    else (the navigation's links for a role, say); whatever else the fragment shows must be in
    the key."""
    full_key = (request.script_root, str(get_locale()), *key)
    cache = current_app.extensions[FRAGMENT_CACHE]
    fragment = cache.get(full_key)
    if fragment is None:
        if len(cache) >= FRAGMENT_CACHE_LIMIT:
            # The oldest goes, not all: fragments keyed by a request's values (a pager's page
            # and filters) then wear out one another, not every page's navigation. Another
            # thread may have removed it first.
            with contextlib.suppress(RuntimeError, StopIteration, KeyError):
                del cache[next(iter(cache))]
        fragment = cache[full_key] = caller()  # a macro's output: Markup already
    return fragment


_COMMAND = re.compile(r"`([^`]+)`")


def with_commands(text: str) -> Markup:
    """`{{ _("... run `bidhub verify-ledger`.")|with_commands }}`: a message naming a command
    in backticks, as the README writes it, with the command set as code and the rest escaped."""
    return Markup(_COMMAND.sub(r"<code>\1</code>", str(escape(text))))  # noqa: S704 (escaped)


def init_app(app: Flask) -> None:
    app.extensions[URL_CACHE] = {}
    app.extensions[FRAGMENT_CACHE] = {}
    app.jinja_env.globals["keep"] = keep
    app.jinja_env.globals["url_for"] = template_url_for
    app.jinja_env.filters.update(localtime=localtime, stamp=stamp, yuan=yuan, score=score,
                                 percent=percent, metric_value=metric_value,
                                 metric_amount=metric_amount, translate=translate)
    app.jinja_env.filters.update(branch_name=branch_name, yuan_compact=yuan_compact,
                                 decision_reason=decision_reason, listed=listed,
                                 decision_links=decision_links, with_commands=with_commands,
                                 allocation_reason=allocation_reason)
    app.jinja_env.globals.update(get_locale=get_locale, **TEMPLATE_ENUMS, **TEMPLATE_POLICIES)
    app.jinja_env.globals.update(html_lang=html_lang, current_language=current_language,
                                 reachable_endpoint=reachable_endpoint, sentences=sentences,
                                 filing_reason=filing_reason)
    labels.init_app(app)
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    @app.context_processor
    def page_context() -> dict[str, Any]:
        from bidhub.clock import now

        return {"now": now(), "timezone_name": zone_name(app.config["TIMEZONE"], str(get_locale()))}


def decision_reason(reason: str | None) -> str | None:
    """A decision's written reason; the one bidhub writes itself is shown in the page's language."""
    return _("Nobody bid for this account, so it is not awarded.") if reason == adjudication.NO_BID_REASON else reason


def filing_reason(kind: str, reason: str, round_title: str | None) -> str:
    """A filing's reason as pages show it: a round award's, which bidhub writes itself and the
    filing keeps in English ("Won in round “…”", adjudication.award_changes), in the page's
    language; any other as it was written."""
    if kind == FilingKind.ROUND_AWARD and round_title is not None:
        return _("Won in round “%(title)s”", title=round_title)
    return reason


@lru_cache(maxsize=32)
def zone_name(zone: str, locale: str) -> str:
    """The app's time zone as people call it ("中国（上海）时间", "China (Shanghai) Time")."""
    return get_timezone_location(zone, locale=locale)
