"""The rows of a rep's list of a round, written out once in the page's language."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from flask import url_for
from flask_babel import get_locale
from markupsafe import Markup, escape

from bidhub.domain.text import Text
from bidhub.models import ListingStatus
from bidhub.services.branches import branch_label
from bidhub.services.browse import SORTS, BranchChoice, ListingFilter, ListingRow
from bidhub.services.policies import Hindrance
from bidhub.web.i18n import (
    format_yuan,
    format_yuan_compact,
    gettext,
    kept_with_catalogue,
    ngettext,
    speaks_chinese,
)
from bidhub.web.labels import cached_label, label

# A number no id reaches, put where the id goes in one url_for; see `url_with_id`.
ID_PLACEHOLDER = 987_654_321_012


def url_with_id(endpoint: str, name: str) -> Callable[[int], str]:
    """`url_for(endpoint, **{name: id})` for many ids at the cost of one url_for call."""
    before, found, after = url_for(endpoint, **{name: ID_PLACEHOLDER}).rpartition(
        str(ID_PLACEHOLDER))
    if not found:  # a rule that does not put the id in the path as it is
        return lambda value: url_for(endpoint, **{name: value})
    return lambda value: f"{before}{int(value)}{after}"


# The list's fixed words, escaped, kept per catalogue (see listing_section).
_SECTION_WORDS = object()


def _section_words() -> tuple[str, str]:
    head = "".join(f"<th{cls}>{escape(word)}</th>" for cls, word in (
        ("", gettext("Account")), ("", gettext("Industry")), ("", gettext("Ownership")),
        ("", gettext("Branch")), (' class="num"', gettext("Annual value")),
        ("", gettext("Your bid"))))
    return head, escape(gettext("No account matches these filters."))


def listing_section(lines: Sequence[Markup], filter_errors: Mapping[str, str]) -> Markup:
    """The list (#listings: what the filter form's htmx request swaps) around `lines`
    (listing_lines), with the filter's errors: written here like its rows, so that the
    filter's partial needs no template at all."""
    head, empty = kept_with_catalogue(_SECTION_WORDS, _section_words)
    errors = "".join(f'<p class="flash flash-error" role="alert">{escape(message)}</p>'
                     for message in filter_errors.values())
    count = escape(ngettext("%(num)d account", "%(num)d accounts", len(lines))
                   % {"num": len(lines)})
    if lines:
        body = ('  <div class="table-scroll"><table class="grid">\n'
                f"    <thead><tr>{head}</tr></thead>\n    <tbody>\n{''.join(lines)}"
                "    </tbody>\n  </table></div>\n")
    else:
        body = f'  <p class="empty">{empty}</p>\n'
    # Safe: the rows come escaped from listing_lines, every other text is escaped here.
    return Markup(  # noqa: S704
        f'<section id="listings" class="listings">\n{errors}  <p class="count">{count}</p>\n'
        f"{body}</section>")


def _escaped_url_with_id(endpoint: str, name: str) -> Callable[[int], str]:
    """url_with_id's URLs, escaped for HTML (the id is a number: the rest is escaped once)."""
    before, found, after = url_for(endpoint, **{name: ID_PLACEHOLDER}).rpartition(
        str(ID_PLACEHOLDER))
    if not found:
        return lambda value: escape(url_for(endpoint, **{name: value}))
    before, after = escape(before), escape(after)
    return lambda value: f"{before}{int(value)}{after}"


def listing_lines(rows: Sequence[ListingRow], hindrances: Mapping[int, Sequence[tuple[str, str]]],
                  takes_bids: bool) -> list[Markup]:
    """The table rows (<tr>…</tr>, as _listings.html placed them) for `rows`
    (browse.listings_for_rep), given the translated hindrances by listing and whether the
    round takes bids now. A round lists up to a few hundred accounts, and a template
    expression, filter or url_for per cell cost more than the rest of the page: every text is
    escaped here, and what repeats (ownership and branch labels, the last cell's words and a
    rep's reasons not to bid, mostly the same on every line) is worked out once a page."""
    account_url = _escaped_url_with_id("market.account", "account_id")
    bid_url = _escaped_url_with_id("market.bid_detail", "bid_id")
    place_bid_url = _escaped_url_with_id("market.place_bid", "listing_id")
    chinese, locale = speaks_chinese(), get_locale()
    your_bid = escape(gettext("your bid"))
    bid = escape(gettext("Bid"))
    ownership: dict[str, Markup] = {}
    branches: dict[int, Markup] = {}
    industries: dict[str, Markup] = {}
    not_eligible: dict[tuple, str] = {}
    listed = ListingStatus.LISTED
    lines = []
    for row in rows:
        if row.ownership_type not in ownership:
            ownership[row.ownership_type] = escape(label(row.ownership_type, "ownership"))
        if row.branch_id not in branches:
            branches[row.branch_id] = escape(branch_label(
                BranchChoice(row.branch_id, row.branch_name, row.branch_name_zh), locale))
        if row.industry not in industries:
            industries[row.industry] = escape(row.industry)
        if row.own_bid_id is not None:  # their bid instead of any reason not to bid
            last = f'<a href="{bid_url(row.own_bid_id)}">{your_bid}</a>\n'
        elif reasons := tuple(hindrances.get(row.id, ())):
            last = not_eligible.get(reasons)
            if last is None:
                last = not_eligible[reasons] = _not_eligible_cell(reasons)
        # accepts_bids (policies), for a row of a round whose openness is known.
        elif takes_bids and row.status == listed:
            last = f'<a class="button small" href="{place_bid_url(row.id)}">{bid}</a>\n'
        else:
            last = '<span class="muted">—</span>'
        value = row.annual_value_yuan
        # Safe: every text is escaped, here or where it was kept; the amounts are figures
        # with ¥, 万, 亿, K, M or B, which need no escaping.
        lines.append(Markup(  # noqa: S704
            f'      <tr>\n'
            f'        <td class="name"><a href="{account_url(row.account_id)}">'
            f'{escape(row.name)}</a> <small class="muted">{escape(row.external_id)}</small></td>\n'
            f'        <td class="term">{industries[row.industry]}</td>\n'
            f'        <td class="term">{ownership[row.ownership_type]}</td>\n'
            f'        <td class="name">{branches[row.branch_id]}</td>\n'
            f'        <td class="num" title="{format_yuan(value)}">'
            f'{format_yuan_compact(value, chinese=chinese)}</td>\n'
            f'        <td>\n{last}        </td>\n'
            f'      </tr>\n'))
    return lines


def _not_eligible_cell(reasons: Sequence[tuple[str, str]]) -> str:
    """The last cell of a listing the rep may not bid for: each reason and its remedy."""
    hints = "".join(
        f'<span class="hint">{escape(reason)}{f" — {escape(remedy)}" if remedy else ""}</span>'
        for reason, remedy in reasons)
    return (f'            <div class="not-eligible"><strong>{escape(gettext("Not eligible"))}'
            f'</strong>\n{hints}</div>\n')


def translated_hindrances(found: Mapping[int, Sequence[Hindrance]],
                          show: Callable[[Text | None], str]) -> dict[int, list[tuple[str, str]]]:
    """Each listing's reasons not to bid and what would lift them, in the page's language
    (`show` translates one message). A rep's reasons are mostly the same on every line (their
    capacity, their tenure), so each distinct one is translated once a page."""
    said: dict[tuple, tuple[str, str]] = {}

    def shown(item: Hindrance) -> tuple[str, str]:
        key = (_key(item.reason), _key(item.remedy))
        if key not in said:
            said[key] = (show(item.reason), show(item.remedy))
        return said[key]

    return {listing_id: [shown(item) for item in items] for listing_id, items in found.items()}


def _key(text: Text | None) -> tuple | None:
    """What makes two messages the same (Text's equality), cheaper to hash than Text."""
    return None if text is None else (text.msgid, tuple(text.params.items()))


# The filter form's fixed words, escaped, kept per catalogue (see filter_form).
_FILTER_WORDS = object()


def _filter_words() -> dict[str, Markup]:
    return {key: escape(text) for key, text in (
        ("search", gettext("Search")), ("name_or_number", gettext("name or number")),
        ("any", gettext("Any")), ("industry", gettext("Industry")),
        ("ownership", gettext("Ownership")), ("branch", gettext("Branch")),
        ("value_from", gettext("Annual value from")), ("wan", gettext("e.g. 10万")),
        ("to", gettext("to")), ("sort", gettext("Sort")), ("filter", gettext("Filter")),
        ("sort_value_desc", gettext("Value, highest first")),
        ("sort_value_asc", gettext("Value, lowest first")),
        ("sort_name", gettext("Name")), ("sort_industry", gettext("Industry")))}


def filter_form(path: str, criteria: ListingFilter, options: Mapping[str, list]) -> Markup:
    """The listing filters' form (as _filters.html drew it) for a round's list at `path`, with
    `criteria` filled in and `options` (browse.filter_options) offered. Its words are kept per
    language, its options written here: a template expression and escape per option and
    word cost more than the list's rows."""
    word = kept_with_catalogue(_FILTER_WORDS, _filter_words)
    any_ = f'<option value="">{word["any"]}</option>\n'
    locale = get_locale()
    industries = "".join(
        f"<option {'selected' if industry == criteria.industry else ''}>{escape(industry)}"
        "</option>" for industry in options["industries"])
    ownership = _options((code, cached_label(code, "ownership"), code == criteria.ownership_type)
                         for code in options["ownership_types"])
    branches = _options((branch.id, branch_label(branch, locale), branch.id == criteria.branch_id)
                        for branch in options["branches"])
    sorts = "".join(
        f'      <option value="{key}" {"selected" if key == criteria.sort else ""}>'
        f"{word['sort_' + key]}</option>\n" for key in SORTS)
    low, high = ("" if value is None else value
                 for value in (criteria.min_value_yuan, criteria.max_value_yuan))
    # Safe: every text is escaped, the words where they were kept; the amounts are integers.
    return Markup(  # noqa: S704
        f'<form class="filters" method="get" hx-get="{escape(path)}" hx-target="#listings" '
        'hx-swap="outerHTML"\n'
        '      hx-trigger="change, input changed delay:400ms from:input[type=search], input '
        'changed delay:400ms from:input[inputmode=numeric]"\n'
        '      hx-push-url="true" hx-indicator="#listings">\n'
        f'  <label>{word["search"]} <input type="search" name="q" '
        f'value="{escape(criteria.search)}" placeholder="{word["name_or_number"]}"></label>\n'
        f'  <label>{word["industry"]}\n    <select name="industry">{any_}{industries}'
        '    </select></label>\n'
        f'  <label>{word["ownership"]}\n    <select name="ownership">{any_}{ownership}'
        '    </select></label>\n'
        f'  <label>{word["branch"]}\n    <select name="branch">{any_}{branches}'
        '    </select></label>\n'
        f'  <label>{word["value_from"]} <input inputmode="numeric" name="min_value" '
        f'size="9" placeholder="{word["wan"]}" value="{low}"></label>\n'
        f'  <label>{word["to"]} <input inputmode="numeric" name="max_value" size="9" '
        f'value="{high}"></label>\n'
        f'  <label>{word["sort"]}\n    <select name="sort">\n{sorts}    </select></label>\n'
        f'  <noscript><button>{word["filter"]}</button></noscript>\n'
        "</form>")


def _options(choices: Iterable[tuple[object, str, bool]]) -> str:
    """<option>s with a value, for (value, label, chosen) choices."""
    return "".join(f'<option value="{escape(value)}" {"selected" if chosen else ""}>'
                   f"{escape(text)}</option>" for value, text, chosen in choices)
