"""The rows of a rep's list of a round, written out once in the page's language."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from flask import current_app, url_for
from flask_babel import get_locale
from markupsafe import Markup, escape

from bidhub.domain.text import Text
from bidhub.models import ListingStatus, RoundStatus
from bidhub.services.branches import branch_label
from bidhub.services.browse import SORTS, BranchChoice, ListingFilter, ListingRow
from bidhub.services.policies import Hindrance, results_are_published
from bidhub.services.rounds import ListedRound
from bidhub.web.i18n import (
    format_yuan,
    format_yuan_compact,
    gettext,
    kept_with_catalogue,
    ngettext,
    speaks_chinese,
)
from bidhub.web.labels import cached_label, handbook_term, in_label_order, label
from bidhub.web.rendering import localtime, template_url_for

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


def listing_section(lines: Sequence[Markup], filter_errors: Mapping[str, str],
                    barred: Markup | None = None) -> Markup:
    """The list (#listings: what the filter form's htmx request swaps) around `lines`
    (listing_lines), with the filter's errors and `barred` (barred_note: why the rep may bid
    for none of them): written here like its rows, so that the filter's partial needs no
    template at all."""
    head, empty = kept_with_catalogue(_SECTION_WORDS, _section_words)
    errors = "".join(f'<p class="flash flash-error" role="alert">{escape(message)}</p>'
                     for message in filter_errors.values()) + (barred or "")
    count = escape(ngettext("%(num)d account", "%(num)d accounts", len(lines))
                   % {"num": len(lines)})
    if lines:
        body = ('  <div class="table-scroll"><table class="grid listings-table">\n'
                f"    <thead><tr>{head}</tr></thead>\n    <tbody>\n{''.join(lines)}"
                "    </tbody>\n  </table></div>\n")
    else:
        body = f'  <p class="empty">{empty}</p>\n'
    # Safe: the rows come escaped from listing_lines, every other text is escaped here.
    return Markup(  # noqa: S704
        f'<section id="listings" class="listings">\n{errors}  <p class="count">{count}</p>\n'
        f"{body}</section>")


def _escaped_url_parts(endpoint: str, name: str) -> tuple[str, str] | None:
    """What comes before and after the id in `endpoint`'s URL (the id is a number: the rest
    is escaped once), or None when the rule does not put the id in the path as it is."""
    before, found, after = template_url_for(endpoint, **{name: ID_PLACEHOLDER}).rpartition(
        str(ID_PLACEHOLDER))
    return (escape(before), escape(after)) if found else None


def _escaped_url_with_id(endpoint: str, name: str) -> Callable[[int], str]:
    """url_with_id's URLs, escaped for HTML."""
    parts = _escaped_url_parts(endpoint, name)
    if parts is None:
        return lambda value: escape(url_for(endpoint, **{name: value}))
    before, after = parts
    return lambda value: f"{before}{int(value)}{after}"


# A row's cells but the last, kept per process by the language, the account links' URL and
# every value they show (the row's own columns are the key, so an import or an edit that
# changes one makes a new key instead of a stale row); at most ROW_CELLS_LIMIT a language.
_row_cells: dict[tuple[str, str], dict[tuple, str]] = {}
ROW_CELLS_LIMIT = 20_000


def shared_by_all(rows: Sequence[ListingRow],
                  hindrances: Mapping[int, Sequence[Hindrance]]) -> tuple[Hindrance, ...]:
    """The reasons not to bid that every row the rep has not bid for gives (their capacity,
    tenure, incidents, leave: the rep's own, not the account's), in the first row's order;
    none unless there are at least two such rows. The list says them once, above its rows
    (barred_note), rather than on each of them."""
    waiting = [row for row in rows if row.own_bid_id is None]
    if len(waiting) < 2 or any(row.id not in hindrances for row in waiting):
        return ()
    distinct = {id(reasons): reasons for reasons in (hindrances[row.id] for row in waiting)}
    first, *others = distinct.values()
    return tuple(item for item in first if all(item in reasons for reasons in others))


def barred_note(shared: Sequence[Hindrance], show: Callable[[Text | None], str]) -> Markup | None:
    """Why the rep may bid for none of the listed accounts (`shared_by_all`), said once."""
    if not shared:
        return None
    hints = _hints([(show(item.reason), show(item.remedy)) for item in shared])
    # Safe: every text is escaped here.
    return Markup(  # noqa: S704
        f'<div class="flash flash-info barred" role="note"><strong>'
        f'{escape(gettext("You cannot bid for the accounts of this list for now:"))}</strong>'
        f"{hints}</div>\n")


def listing_lines(rows: Sequence[ListingRow], hindrances: Mapping[int, Sequence[Hindrance]],
                  show: Callable[[Text | None], str], takes_bids: bool,
                  shared: Sequence[Hindrance] = ()) -> list[Markup]:
    """The table rows (<tr>…</tr>, which listing_section places) for `rows`
    (browse.listings_for_rep), given each listing's reasons not to bid
    (policies.shared_hindrances_in_round: one tuple for the listings that share them), `show`
    translating a reason, and whether the round takes bids now. A round lists up to a few
    hundred accounts, and a template expression, filter or url_for per cell cost more than
    the rest of the page: every text is escaped here; what a row shows of its account is
    written once per process and language, and what repeats for the rep (the last cell's
    words, their reasons not to bid) once a page. The reasons in `shared` (shared_by_all),
    which the list says once above the rows, are left out of the rows."""
    account_parts = _escaped_url_parts("market.account", "account_id")
    bid_url = _escaped_url_with_id("market.bid_detail", "bid_id")
    place_bid_url = _escaped_url_with_id("market.place_bid", "listing_id")
    locale = get_locale()
    kept_key = (str(locale), "" if account_parts is None else "#".join(account_parts))
    cells = _row_cells.get(kept_key)
    if cells is None or len(cells) >= ROW_CELLS_LIMIT:
        cells = _row_cells[kept_key] = {}
    headings, your_bid, bid = kept_with_catalogue(_ROW_WORDS, _row_words)
    not_eligible: dict[int, str] = {}  # id of a shared tuple of reasons -> the cell
    listed = ListingStatus.LISTED
    lines = []
    for row in rows:
        key = row[2:13]  # every column the cells show, the account's id first
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = _account_cells(row, account_parts, locale, headings)
        if row.own_bid_id is not None:  # their bid instead of any reason not to bid
            last = f'<a href="{bid_url(row.own_bid_id)}">{your_bid}</a>\n'
        elif reasons := hindrances.get(row.id):
            last = not_eligible.get(id(reasons))
            if last is None:
                own = [item for item in reasons if item not in shared] if shared else reasons
                last = not_eligible[id(reasons)] = (
                    _reasons_cell(own, show, kept_key[0]) if own
                    else _not_eligible_cell([(gettext("Why: above the list."), "")]))
        # accepts_bids (policies), for a row of a round whose openness is known.
        elif takes_bids and row.status == listed:
            last = f'<a class="button small" href="{place_bid_url(row.id)}">{bid}</a>\n'
        else:
            last = '<span class="muted">—</span>'
        # Safe: the cells are escaped where they were written, the last cell here.
        lines.append(Markup(f"{cell}{last}        </td>\n      </tr>\n"))  # noqa: S704
    return lines


# The rows' fixed words, escaped, kept per catalogue (see listing_lines).
_ROW_WORDS = object()


def _row_words() -> tuple[tuple[str, ...], str, str]:
    """Each cell's heading, which a phone shows above the value (app.css: .listings-table),
    and the last cell's links' words."""
    headings = tuple(escape(word) for word in (
        gettext("Industry"), gettext("Ownership"), gettext("Branch"), gettext("Annual value"),
        gettext("Your bid")))
    return headings, escape(gettext("your bid")), escape(gettext("Bid"))


def _account_cells(row: ListingRow, account_parts: tuple[str, str] | None, locale: object,
                   headings: tuple[str, ...]) -> str:
    """A row's markup up to its last cell's content: the account's name, number, industry,
    ownership, branch and value, every text escaped; each cell but the name carries its
    column's escaped heading (`headings`), which a phone shows in place of the header row."""
    industry, ownership, branch_heading, value_heading, your_bid = headings
    account_url = (escape(url_for("market.account", account_id=row.account_id))
                   if account_parts is None
                   else f"{account_parts[0]}{int(row.account_id)}{account_parts[1]}")
    branch = branch_label(BranchChoice(row.branch_id, row.branch_name, row.branch_name_zh),
                          locale)
    value = row.annual_value_yuan
    # The amounts are figures with ¥, 万, 亿, K, M or B, which need no escaping.
    return (f'      <tr>\n'
            f'        <td class="name"><a href="{account_url}">'
            f'{escape(row.name)}</a> <small class="muted">{escape(row.external_id)}</small></td>\n'
            f'        <td class="term" data-label="{industry}">{escape(row.industry)}</td>\n'
            f'        <td class="term" data-label="{ownership}">'
            f'{escape(label(row.ownership_type, "ownership"))}</td>\n'
            f'        <td class="name" data-label="{branch_heading}">{escape(branch)}</td>\n'
            f'        <td class="num" data-label="{value_heading}" title="{format_yuan(value)}">'
            f'{format_yuan_compact(value, chinese=speaks_chinese())}</td>\n'
            f'        <td class="action" data-label="{your_bid}">\n')


# The last cell of a listing the rep may not bid for, kept per process by `show` (a pure
# function of a message, the language and the time zone), the language, the time zone and each
# reason's and remedy's English and parameters; reps mostly share a few (capacity, leave). At
# most REASON_CELLS_LIMIT: a wait's end is each rep's own instant.
_reason_cells: dict[tuple, str] = {}
REASON_CELLS_LIMIT = 2_000
_PLAIN_PARAMETERS = (int, float, str, datetime, type(None))


def _reasons_cell(reasons: Sequence[Hindrance], show: Callable[[Text | None], str],
                  language: str) -> str:
    texts = [text for item in reasons for text in (item.reason, item.remedy)]
    if not all(text is None or all(isinstance(value, _PLAIN_PARAMETERS)
                                   for value in text.params.values()) for text in texts):
        return _not_eligible_cell([(show(item.reason), show(item.remedy)) for item in reasons])
    # A parameter's type is in the key: 6 and 6.0 are equal keys but may read differently.
    key = (show, language, current_app.config["TIMEZONE"], *(
        None if text is None else (text.msgid, *((name, type(value), value)
                                                 for name, value in text.params.items()))
        for text in texts))
    cell = _reason_cells.get(key)
    if cell is None:
        if len(_reason_cells) >= REASON_CELLS_LIMIT:
            _reason_cells.clear()
        cell = _reason_cells[key] = _not_eligible_cell(
            [(show(item.reason), show(item.remedy)) for item in reasons])
    return cell


def _not_eligible_cell(reasons: Sequence[tuple[str, str]]) -> str:
    """The last cell of a listing the rep may not bid for: each reason and its remedy."""
    return (f'            <div class="not-eligible"><strong>{escape(gettext("Not eligible"))}'
            f'</strong>\n{_hints(reasons)}</div>\n')


def _hints(reasons: Sequence[tuple[str, str]]) -> str:
    """Each reason and its remedy (if any), escaped, a line each."""
    return "".join(
        f'<span class="hint">{escape(reason)}{f" — {escape(remedy)}" if remedy else ""}</span>'
        for reason, remedy in reasons)


# The heading's fixed words, escaped, kept per catalogue (see round_heading).
_HEADING_WORDS = object()


def _heading_words() -> dict[str, str]:
    return {key: escape(text) for key, text in (
        ("rounds", gettext("Bidding rounds")), ("all_branches", gettext("All branches")),
        # Kept with its placeholder; round_heading puts the emphasised date in.
        ("deadline", gettext("Deadline %(when)s")), ("open", gettext("Open for bids")),
        ("closed", gettext("Bidding closed")), ("rules", gettext("Rules")),
        ("announcement", gettext("Announcement of results")),
        ("left", gettext("{days} d {hours} h {minutes} min left")),
        ("passed", gettext("the deadline has passed")))}


def round_heading(round_: ListedRound, is_open: bool, now: datetime) -> Markup:
    """The rep's list's heading (as round.html drew it): the way back to the rounds, the
    round's title, branch, deadline, state and rules, the countdown while it is open and the
    link to its announcement once there is one. Its words are kept per language."""
    word = kept_with_catalogue(_HEADING_WORDS, _heading_words)
    if is_open:
        state = f'<span class="badge badge-open">{word["open"]}</span>'
    elif round_.status == RoundStatus.IN_REVIEW:  # as the status_badge macro draws it
        state = (f'<span class="badge badge-{escape(round_.status)}">'
                 f"{escape(cached_label(round_.status, RoundStatus))}</span>\n")
    else:
        state = f'<span class="badge badge-closed">{word["closed"]}</span>'
    countdown = (
        f'· <span class="countdown" data-deadline="{escape(round_.closes_at.isoformat())}" '
        f'data-now="{escape(now.isoformat())}" data-left="{word["left"]}" '
        f'data-passed="{word["passed"]}">{escape(time_left_at(round_.closes_at, now))}</span>'
        if is_open else "")
    announcement = (
        f'<p><a class="button" href="{escape(template_url_for("market.round_results", round_id=round_.id))}">'
        f'{word["announcement"]}</a> {handbook_term("中标公示")}</p>'
        if results_are_published(round_) else "")
    branch = (escape(branch_label(round_.branch, get_locale())) if round_.branch
              else word["all_branches"])
    sha256 = escape(round_.rule_set.sha256)
    deadline = Markup(word["deadline"]) % {  # noqa: S704 (kept escaped; the date is escaped here)
        "when": Markup("<strong>{}</strong>").format(localtime(round_.closes_at))}
    # Safe: every text is escaped, here or where it was kept.
    return Markup(  # noqa: S704
        f'<p class="crumbs"><a href="{escape(template_url_for("market.rounds"))}">'
        f'{word["rounds"]}</a> ›</p>\n'
        f"<h1>{escape(round_.title)}</h1>\n"
        '<p class="meta">\n'
        f"  {branch} ·\n"
        f'  {deadline} ·\n'
        f'{state}  · {word["rules"]} <code title="{sha256}">{sha256[:12]}</code>\n'
        f"{countdown}</p>\n{announcement}")


def time_left_at(deadline: datetime, now: datetime) -> str:
    """The time until `deadline` in whole minutes, as the live countdown in app.js words it."""
    seconds = (deadline - now).total_seconds()
    if seconds <= 0:
        return gettext("the deadline has passed")
    minutes = int(seconds // 60)
    return gettext("{days} d {hours} h {minutes} min left").format(
        days=minutes // 1440, hours=minutes // 60 % 24, minutes=minutes % 60)


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
        ("sort_name", gettext("Account name")), ("sort_industry", gettext("Industry")))}


def filter_form(path: str, criteria: ListingFilter, options: Mapping[str, list],
                amounts: Mapping[str, str]) -> Markup:
    """The listing filters' form (as _filters.html drew it) for a round's list at `path`, with
    `criteria` filled in, the amounts (min_value, max_value) as they were typed, so that one
    refused can be corrected, and `options` (browse.filter_options) offered. Its words are
    kept per language, its options written here: a template expression and escape per option
    and word cost more than the list's rows."""
    word = kept_with_catalogue(_FILTER_WORDS, _filter_words)
    any_ = f'<option value="">{word["any"]}</option>\n'
    industries, ownership, branches, sorts = _menus_of(criteria, options, word)
    low, high = (escape(amounts.get(name, "")) for name in ("min_value", "max_value"))
    # Safe: every text is escaped, the words where they were kept.
    return Markup(  # noqa: S704
        f'<form class="filters" method="get" hx-get="{escape(path)}" hx-target="#listings" '
        'hx-swap="outerHTML"\n'
        '      hx-trigger="change from:(form.filters select), input changed delay:400ms '
        'from:input[type=search], input changed delay:400ms from:input[inputmode=numeric]"\n'
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


# The menus' options, kept per process by the language, every option offered (the branches
# with their names) and the choices made; at most MENUS_LIMIT.
_menus: dict[tuple, tuple[str, str, str, str]] = {}
MENUS_LIMIT = 1_000


def _menus_of(criteria: ListingFilter, options: Mapping[str, list], word: Mapping[str, str]
              ) -> tuple[str, str, str, str]:
    """The industry, ownership, branch and sort menus' options, `criteria`'s chosen."""
    locale = get_locale()
    key = (str(locale), tuple(options["industries"]), tuple(options["ownership_types"]),
           tuple(options["branches"]), criteria.industry, criteria.ownership_type,
           criteria.branch_id, criteria.sort)
    menus = _menus.get(key)
    if menus is not None:
        return menus
    industries = "".join(
        f"<option {'selected' if industry == criteria.industry else ''}>{escape(industry)}"
        "</option>" for industry in options["industries"])
    ownership = _options((code, cached_label(code, "ownership"), code == criteria.ownership_type)
                         for code in in_label_order(options["ownership_types"], "ownership"))
    branches = _options((branch.id, branch_label(branch, locale), branch.id == criteria.branch_id)
                        for branch in options["branches"])
    sorts = "".join(
        f'      <option value="{key}" {"selected" if key == criteria.sort else ""}>'
        f"{word['sort_' + key]}</option>\n" for key in SORTS)
    if len(_menus) >= MENUS_LIMIT:
        _menus.clear()
    _menus[key] = (industries, ownership, branches, sorts)
    return _menus[key]


def _options(choices: Iterable[tuple[object, str, bool]]) -> str:
    """<option>s with a value, for (value, label, chosen) choices."""
    return "".join(f'<option value="{escape(value)}" {"selected" if chosen else ""}>'
                   f"{escape(text)}</option>" for value, text, chosen in choices)
