"""KA management's account directory (大客户信息库) and the history page of each account."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, abort, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.errors import NotFound
from bidhub.services import directory
from bidhub.services.directory import DirectoryFilter
from bidhub.web import params
from bidhub.web.access import managers
from bidhub.web.csv_export import csv_response, export_language
from bidhub.web.i18n import utc_to_local
from bidhub.web.labels import label
from bidhub.web.rendering import branch_name, page_or_partial, render

blueprint = Blueprint("accounts", __name__, url_prefix="/manage")

MAX_SEARCH_CHARS = 100
MAX_PAGE = 100_000
# Every query parameter the directory reads, so links carry the filters and nothing else
# (url_for would read `endpoint` or `_scheme` as instructions).
FILTER_NAMES = ("q", "branch", "industry", "ownership", "owner", "band", "sponsored", "listed",
                "incidents", "sort")
YES_NO = {"yes": True, "no": False, "": None}

VALUE_BAND_LABELS = {"under_50k": _l("Under ¥50,000"), "50k_100k": _l("¥50,000 to 100,000"),
                     "100k_300k": _l("¥100,000 to 300,000"),
                     "300k_1m": _l("¥300,000 to 1,000,000"), "1m_up": _l("¥1,000,000 and over")}
SORT_LABELS = {"name": _l("Account"), "value": _l("Annual value"), "owner": _l("Held by"),
               "branch": _l("Branch"), "held_since": _l("Held since")}


def directory_filter_from(args: Mapping[str, str]) -> tuple[DirectoryFilter, list[str]]:
    """The filter asked for, and a message for each value that is not one (left out)."""
    errors: list[str] = []

    def row_id(name: str, what: str) -> int | None:
        text = params.text_arg(args, name, 32).strip()
        if not text:
            return None
        value = params.parse_id(text)
        if value is None:
            errors.append(_("Choose the %(what)s from the list; “%(value)s” is not one.",
                            what=what, value=params.quoted_arg(args, name)))
        return value

    def yes_no(name: str, what: str) -> bool | None:
        text = params.text_arg(args, name, 32).strip()
        if text not in YES_NO:
            errors.append(_("%(what)s is yes or no; “%(value)s” is neither.", what=what,
                            value=params.quoted_arg(args, name)))
            return None
        return YES_NO[text]

    band = params.text_arg(args, "band", 32).strip()
    if band and band not in directory.VALUE_BANDS:
        errors.append(_("Choose the value band from the list; “%(value)s” is not one.",
                        value=params.quoted_arg(args, "band")))
        band = ""
    sort = params.text_arg(args, "sort", 32).strip() or "name"
    if not directory.is_valid_sort(sort):
        errors.append(_("The list cannot be sorted by “%(value)s”; it is sorted by name.",
                        value=params.quoted_arg(args, "sort")))
        sort = "name"
    criteria = DirectoryFilter(
        search=params.text_arg(args, "q", MAX_SEARCH_CHARS),
        branch_id=row_id("branch", _("branch")), industry=params.text_arg(args, "industry", 64),
        ownership_type=params.text_arg(args, "ownership", 32),
        owner_id=row_id("owner", _("rep")), value_band=band,
        is_sponsored=yes_no("sponsored", _("Sponsored")),
        is_listed=yes_no("listed", _("Listed in an unfinished round")),
        has_open_incidents=yes_no("incidents", _("Open incidents")), sort=sort)
    return criteria, errors


def filter_args(args: Mapping[str, str]) -> dict[str, str]:
    """The directory's filters to carry into its links (export, pages, sorting)."""
    return {name: params.text_arg(args, name, MAX_SEARCH_CHARS) for name in FILTER_NAMES
            if args.get(name)}


def sort_links(args: dict[str, str], current: str) -> dict[str, str]:
    """For each sortable column, the sort its header link asks for: the other direction when
    the list is sorted by it, else ascending (highest first for value)."""
    links = {}
    for key in directory.SORTS:
        default = "-" + key if key == "value" else key
        links[key] = ("-" + key if current == key else key) if current.removeprefix("-") == key \
            else default
    return links


@blueprint.route("/accounts")
@managers
def directory_page():
    session = get_session()
    criteria, errors = directory_filter_from(request.args)
    page = min(params.int_arg(request.args, "page", minimum=1) or 1, MAX_PAGE)
    total = directory.count_accounts(session, criteria)
    pages = max(1, -(-total // directory.PAGE_SIZE))
    page = min(page, pages)
    rows = directory.find_accounts(session, criteria, limit=directory.PAGE_SIZE,
                                   offset=(page - 1) * directory.PAGE_SIZE)
    args = filter_args(request.args)
    return page_or_partial(
        "accounts/directory.html", "accounts/_rows.html", rows=rows, total=total, page=page,
        pages=pages, args=args, criteria=criteria, errors=errors,
        options=directory.directory_options(session), bands=VALUE_BAND_LABELS,
        sort_labels=SORT_LABELS, sort_links=sort_links(args, criteria.sort))


CSV_COLUMNS = (_l("Account number"), _l("Account"), _l("Industry"), _l("Ownership"),
               _l("Branch"), _l("Annual value (yuan)"), _l("Held by"), _l("Held since (local)"),
               _l("Executive sponsor"), _l("Listed in an unfinished round"),
               _l("Open incidents"))


@blueprint.route("/accounts.csv")
@managers
def directory_csv():
    session = get_session()
    criteria, errors = directory_filter_from(request.args)
    if errors:
        # A file that silently ignored a filter would be taken for what was asked.
        return render("accounts/directory.html", status=422, rows=[], total=0, page=1, pages=1,
                      args=filter_args(request.args), criteria=criteria, errors=errors,
                      options=directory.directory_options(session), bands=VALUE_BAND_LABELS,
                      sort_labels=SORT_LABELS, sort_links=sort_links({}, criteria.sort))
    rows = directory.find_accounts(session, criteria)
    with export_language():
        yes, no = _("yes"), _("no")
        records = ([
            row.external_id, row.name, row.industry, label(row.ownership_type, "ownership"),
            branch_name(row.branch), row.annual_value_yuan, row.owner_name or "",
            utc_to_local(row.held_since).strftime("%Y-%m-%d %H:%M") if row.held_since else "",
            row.sponsor_name or label(row.sponsor_title, "sponsor"),
            yes if row.is_listed else no, row.open_incidents] for row in rows)
        stamp = utc_to_local(now()).strftime("%Y%m%d-%H%M")
        return csv_response(f"bidhub-accounts-{stamp}.csv", CSV_COLUMNS, records)


@blueprint.route("/accounts/<int:account_id>")
@managers
def account(account_id: int):
    try:
        history = directory.account_history(get_session(), account_id, now())
    except NotFound:
        abort(404)
    return render("accounts/account.html", history=history, account=history.account)
