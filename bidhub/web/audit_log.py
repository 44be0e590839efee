"""The audit log (审计日志): every privileged change the services recorded, for KA management
and admins to read, filtered by kind, by who made it and by day."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

from flask import Blueprint, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from markupsafe import Markup

from bidhub.db import get_session
from bidhub.domain.collation import person_order
from bidhub.services.audit import (
    ACCOUNT_KEYS,
    AUDIT_AREAS,
    BID_KEYS,
    BRANCH_KEYS,
    LISTING_KEYS,
    MISSING,
    PERSON_KEYS,
    ROUND_KEYS,
    TARGET_KEYS,
    AuditFilter,
    AuditLine,
    AuditNames,
    audit_actors,
    audit_trail,
    target_of,
)
from bidhub.services.replays import DECISION_CHECK
from bidhub.web import params
from bidhub.web.access import managers
from bidhub.web.i18n import translate
from bidhub.web.imports import KIND_LABELS
from bidhub.web.labels import label, system_note
from bidhub.web.manage import parse_day
from bidhub.web.rendering import branch_name, localtime, page_or_partial

blueprint = Blueprint("audit", __name__)

PAGE_SIZE = 50
SYSTEM = "system"  # the actor filter's choice for what no person did (jobs, commands)

AREA_LABELS = {
    "rules": _l("Scoring rules"), "round": _l("Rounds"), "listing": _l("Listed accounts"),
    "decision": _l("Adjudication"), "appeal": _l("Appeals"), "account": _l("Accounts"),
    "transfer_request": _l("Transfer requests"), "sponsor": _l("Executive sponsors"),
    "incident": _l("Accountability incidents"), "loss_review": _l("Loss reviews"),
    "import": _l("Imports"), "import_mapping": _l("Import column mappings"),
    "user": _l("Users"), "branch": _l("Branches")}

# Every action the services record (a test reads them from the source); an action without
# a label, written by an older version, is shown as its code.
ACTION_LABELS = {
    "rules.adopted": _l("Rules adopted"),
    "round.created": _l("Round created"), "round.updated": _l("Round changed"),
    "round.published": _l("Round published"), "round.scored": _l("Round scored"),
    "round.review_started": _l("Blind review started"),
    "round.reviewers": _l("Reviewers changed"), "round.review_closed": _l("Blind review closed"),
    "round.accepted_unflagged": _l("Unflagged rankings accepted"),
    "round.results_announced": _l("Results announced; the standstill opened"),
    "round.results_published": _l("Results published"),
    "round.listings_applied": _l("Awards applied"),
    "round.results_in_force": _l("Results in force"), "round.cancelled": _l("Round cancelled"),
    "listing.released": _l("Account released for bidding"),
    "listing.removed": _l("Account taken off the list"),
    "listing.sponsor_confirmed": _l("Sponsor confirmed the release"),
    "listing.sponsor_refused": _l("Sponsor refused the release"),
    "listing.cancelled": _l("Bidding on the account cancelled"),
    "listing.winner_unavailable": _l("Winner can no longer take the account"),
    "listing.apply_refused": _l("Award could not be applied"),
    "decision.accepted": _l("Ranking accepted"), "decision.overridden": _l("Ranking overridden"),
    "decision.no_award": _l("No award"),
    "appeal.filed": _l("Appeal filed"), "appeal.upheld": _l("Appeal upheld"),
    "appeal.rejected": _l("Appeal rejected"),
    "account.transferred": _l("Account transferred"),
    "account.sponsor_designated": _l("Executive sponsor named"),
    "account.sponsor_removed": _l("Executive sponsor removed"),
    "transfer_request.created": _l("Transfer sent for the sponsor's confirmation"),
    "transfer_request.accepted": _l("Transfer confirmed"),
    "transfer_request.refused": _l("Transfer refused"),
    "sponsor.answer_denied": _l("Answer for a sponsor refused"),
    "incident.logged": _l("Incident logged"), "incident.explained": _l("Incident explained"),
    "incident.resolved": _l("Incident decided"),
    "loss_review.submitted": _l("Loss review submitted"),
    "loss_review.closed": _l("Loss review closed"),
    "import.imported": _l("File imported"), "import.refused": _l("Import refused"),
    "import_mapping.saved": _l("Column mapping saved"),
    "user.created": _l("User created"), "user.updated": _l("User changed"),
    "user.password_set": _l("Password set by an admin"),
    "user.password_changed": _l("Password changed"),
    "user.email_changed": _l("Email address changed"),
    "branch.created": _l("Branch created"), "branch.renamed": _l("Branch changed"),
    "branch.deactivated": _l("Branch deactivated"),
    "branch.reactivated": _l("Branch reactivated")}

# What a target's first word names, and the page it opens where management has one.
TARGET_LABELS = {
    "rule_set": _l("Rule set %(number)s"), "round": _l("Round %(number)s"),
    "listing": _l("Listed account %(number)s"), "account": _l("Account %(number)s"),
    "transfer_request": _l("Transfer request %(number)s"),
    "incident": _l("Incident %(number)s"), "loss_review": _l("Loss review %(number)s"),
    "import_run": _l("Import %(number)s"), "import_mapping": _l("Column mapping %(number)s"),
    "user": _l("User %(number)s"), "branch": _l("Branch %(number)s")}
# A target whose name the page knows is shown by its kind and that name alone: its record's
# number beside a round's title ("Round 8: Round 9 of 2026") reads as a contradiction, and
# the link leads to the record itself.
NAMED_TARGET_LABELS = {
    "round": _l("Round: %(name)s"), "listing": _l("Listed account: %(name)s"),
    "account": _l("Account: %(name)s"), "user": _l("User: %(name)s"),
    "branch": _l("Branch: %(name)s")}
# The names of the values the services record; a name not here is shown as it is recorded.
KEY_LABELS = {
    "account": _l("Account"), "rep": _l("Rep"), "from_rep": _l("From rep"),
    "to_rep": _l("To rep"), "owner": _l("Holder"), "sponsor": _l("Executive sponsor"),
    "round": _l("Round"), "reviewers": _l("Reviewers"), "bid": _l("Bid"),
    "reason": _l("Reason"), "status": _l("Status"), "note": _l("Note"),
    "kind": _l("Kind"), "listings": _l("Listings"), "bids": _l("Bids"),
    "opens_at": _l("Opens"), "closes_at": _l("Closes"), "announced_at": _l("Announced"),
    "standstill_ends_at": _l("Standstill ends"), "window_working_days": _l("Appeal window (working days)"),
    "lottery_seed": _l("Lottery seed"), "rule_set": _l("Rule set (SHA-256)"),
    "sha256": _l("SHA-256"), "filename": _l("File"), "rows_total": _l("Rows"),
    "added": _l("Added"), "updated": _l("Updated"), "unchanged": _l("Unchanged"),
    "skipped": _l("Skipped"), "problems": _l("Problems"), "applications": _l("Applications"),
    "flagged": _l("Flagged listings"), "no_bid_defaults": _l("Listings without a bid"),
    "filings": _l("Filings made"), "filing": _l("Filing number"), "appeal": _l("Appeal number"),
    "ground": _l("Ground"), "answer": _l("Answer"), "what_happened": _l("What happened"),
    "do_differently": _l("What they would do differently"), "manager_comment": _l("Manager's comment"),
    "site": _l("Site"), "ad_type": _l("Ad type"), "page_area": _l("Where on the site"),
    "evidence_url": _l("Evidence link"), "evidence_file": _l("Evidence file"),
    "seen_at": _l("Seen"), "late": _l("Explained late"), "username": _l("Username"),
    "display_name": _l("Name"), "role": _l("Role"), "branch_id": _l("Branch"),
    "is_active": _l("Can sign in"), "executive_title": _l("Executive title"),
    "hired_on": _l("Hire date"), "email": _l("Email"), "code": _l("Code"),
    "name": _l("Name (English)"), "name_zh": _l("Name (Chinese)"),
    "must_change_password": _l("Must change password"),
    "replaced_temporary_password": _l("Replaced a temporary password"),
    "stood_in": _l("An admin answered for the sponsor"), "problem": _l("Problem"),
    "check": _l("Check"), "decision": _l("Decision"), "decided_by": _l("Decided by"),
    "decided_at": _l("Decided at")}
# Names that mean another thing in another kind of change.
AREA_KEY_LABELS = {("round", "title"): _l("Round title"), ("decision", "bid"): _l("Winner"),
                   ("account", "title"): _l("Executive title")}

# Values that are codes, by the kind of change and the value's name: shown by their label.
CODED_VALUES = {("listing", "reason"): "release_reason", ("incident", "ad_type"): "ad_type",
                ("incident", "page_area"): "page_area", ("incident", "status"): "incident_status",
                ("decision", "kind"): "decision_kind", ("user", "role"): "role",
                ("user", "status"): "rep_status", ("loss_review", "status"): "loss_review_status",
                ("appeal", "status"): "appeal_status", ("round", "status"): "round_status",
                ("listing", "status"): "listing_status", ("user", "executive_title"): "sponsor",
                ("account", "title"): "sponsor", ("import", "kind"): KIND_LABELS,
                ("import_mapping", "kind"): KIND_LABELS, ("import", "status"): "import_status",
                ("listing", "check"): {DECISION_CHECK: _l("the decision, against what it was made from")}}
TARGET_PAGES = {"round": ("manage.round_detail", "round_id"),
                "listing": ("manage.listing", "listing_id"),
                "account": ("accounts.account", "account_id")}


@dataclass(frozen=True)
class Criteria:
    """The page's filters as read: those applied, as the menus and the pager's links carry
    them, and what could not be applied."""

    applied: AuditFilter
    args: dict[str, str]
    problems: list[str]


def criteria_from(args, actor_ids: set[int]) -> Criteria:
    """The filters of the query `args`; `actor_ids`: the people the menu offers. A value that
    is not one of the menus' choices, or no date, is said and left out."""
    problems, shown = [], {}

    def refuse(name: str) -> None:
        problems.append(_("“%(value)s” is not one of the choices in the list; the log is shown "
                          "without it.", value=params.quoted_arg(args, name)))

    area = params.text_arg(args, "area", 32).strip()
    if area in AUDIT_AREAS:
        shown["area"] = area
    elif area:
        refuse("area")
    actor = params.text_arg(args, "actor", 32).strip()
    actor_id = None if actor in ("", SYSTEM) else params.parse_id(actor)
    if actor == SYSTEM or actor_id in actor_ids:
        shown["actor"] = actor if actor == SYSTEM else str(actor_id)
    elif actor:
        refuse("actor")
        actor_id = None
    days = {}
    for name, days_after in (("date_from", 0), ("date_to", 1)):
        text = params.text_arg(args, name, 32).strip()
        days[name] = parse_day(text, days_after=days_after) if text else None
        if days[name] is not None:
            shown[name] = text
        elif text and params.day_of_any_year(text) is None:
            problems.append(_("“%(day)s” is no date; write it as YYYY-MM-DD. The log is shown "
                              "without it.", day=params.quoted_arg(args, name)))
        elif text:
            problems.append(_("“%(day)s” is outside the years %(first)d to %(last)d; the log is "
                              "shown without it.", day=params.quoted_arg(args, name),
                              first=params.MIN_YEAR,
                              last=params.MAX_YEAR))
    if (days["date_from"] is not None and days["date_to"] is not None
            and days["date_from"] >= days["date_to"]):
        problems.append(_("The first day is after the last, so no change can match; swap them."))
    return Criteria(AuditFilter(area=shown.get("area"), actor_id=actor_id,
                                by_system=actor == SYSTEM, date_from=days["date_from"],
                                date_to=days["date_to"]), shown, problems)


@blueprint.route("/manage/audit")
@managers
def trail():
    session = get_session()
    actors = sorted(audit_actors(session), key=person_order)
    criteria = criteria_from(request.args, {person.id for person in actors})
    page = min(params.int_arg(request.args, "page", minimum=1) or 1, 100_000)
    found = audit_trail(session, criteria.applied, limit=PAGE_SIZE,
                        offset=(page - 1) * PAGE_SIZE)
    if not found.lines and found.total and page > 1:
        page = (found.total + PAGE_SIZE - 1) // PAGE_SIZE
        found = audit_trail(session, criteria.applied, limit=PAGE_SIZE,
                            offset=(page - 1) * PAGE_SIZE)
    return page_or_partial(
        "audit/trail.html", "audit/_lines.html", lines=found.lines, total=found.total,
        page=page, pages=max(1, (found.total + PAGE_SIZE - 1) // PAGE_SIZE),
        args=criteria.args, problems=criteria.problems,
        areas=[(area, AREA_LABELS[area]) for area in AUDIT_AREAS],
        actors=actors, system=SYSTEM,
        action_label=action_label, target_link=partial(target_link, found.names),
        key_label=key_label,
        shown_value=partial(shown_value, found.names), MISSING=MISSING)


def action_label(line: AuditLine) -> str:
    label = ACTION_LABELS.get(line.action)
    return str(label) if label is not None else line.action


def target_link(names: AuditNames, target: str) -> Markup:
    """`round:12` as "Round: its title" (as "Round 12" when the page knows no name for it), a
    link where management has a page for it; a target of another kind as it is recorded."""
    kind, number = target_of(target)
    label_ = TARGET_LABELS.get(kind)
    if label_ is None or number is None:
        return Markup("{}").format(target)
    if kind == "listing":
        account = names.listed.get(number)
        name = None if account is None else account_name(account)
    else:
        name_of = namer(names, TARGET_KEYS[kind]) if kind in TARGET_KEYS else None
        name = None if name_of is None else name_of(number)
    named = NAMED_TARGET_LABELS.get(kind)
    text = (str(label_) % {"number": number} if name is None or named is None
            else str(named) % {"name": name})
    page = TARGET_PAGES.get(kind)
    if page is None:
        return Markup("{}").format(text)
    endpoint, argument = page
    return Markup('<a href="{}">{}</a>').format(url_for(endpoint, **{argument: number}), text)


def account_name(account) -> str:
    return f"{account.name}（{account.external_id}）"


def key_label(area: str, key: str) -> str:
    """A recorded value's name; `area` is the kind of change (`round` for `round.created`)."""
    text = AREA_KEY_LABELS.get((area, key)) or KEY_LABELS.get(key)
    return key if text is None else str(text)


def shown_value(names: AuditNames, area: str, key: str, value: Any) -> str:
    """A recorded value as text: a person, account, round or branch by its name, a code by
    its label, an instant or a day in the page's style, a message or a note bidhub wrote in
    the page's language, yes/no, — for nothing, a record as its values with their names
    (a decision's under `decision`), other text as it is, anything else as JSON (lists keep
    their shape, Chinese unescaped)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, dict):
        inner = key if key in AUDIT_AREAS else area
        return "；".join(f"{key_label(inner, name)}：{shown_value(names, inner, name, held)}"
                        for name, held in value.items())
    named = named_value(names, key, value)
    if named is not None:
        return named
    if isinstance(value, str):
        return coded_value(area, key, value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# At most this many listings named in one value; the rest are counted.
NAMED_LISTINGS = 10


def named_value(names: AuditNames, key: str, value: Any) -> str | None:
    """An id (or a list of them) as what it names; an id that names nothing now keeps its
    number. None for a value of another key."""
    if key in LISTING_KEYS and isinstance(value, list):
        return named_listings(names, value)
    name = namer(names, key)
    if name is None:
        return None
    if isinstance(value, list):
        return "、".join(named_one(name, item) for item in value) if value else "—"
    return named_one(name, value)


def namer(names: AuditNames, keys: str | frozenset[str]) -> Callable[[int], str | None] | None:
    """What gives the name of an id held under `keys` (a value's name, or one of the key sets
    of bidhub.services.audit), or None when such ids name nothing."""
    def held(key_set: frozenset[str]) -> bool:
        return keys == key_set if isinstance(keys, frozenset) else keys in key_set

    if held(PERSON_KEYS):
        return names.people.get
    if held(ROUND_KEYS):
        return names.rounds.get
    if held(ACCOUNT_KEYS):
        return lambda number: (None if (account := names.accounts.get(number)) is None
                               else account_name(account))
    if held(BRANCH_KEYS):
        return lambda number: (None if (branch := names.branches.get(number)) is None
                               else branch_name(branch))
    if held(BID_KEYS):
        return lambda number: (None if (rep := names.bidders.get(number)) is None
                               else _("%(rep)s's bid (No. %(number)d)", rep=rep, number=number))
    return None


def named_listings(names: AuditNames, listing_ids: list) -> str:
    """Listings by their accounts' names, the first NAMED_LISTINGS of them; — for none."""
    if not listing_ids:
        return "—"

    def name(number: int) -> str | None:
        account = names.listed.get(number)
        return None if account is None else account_name(account)

    shown = "、".join(named_one(name, number) for number in listing_ids[:NAMED_LISTINGS])
    more = len(listing_ids) - NAMED_LISTINGS
    return shown if more <= 0 else ngettext("%(names)s and %(num)d more",
                                            "%(names)s and %(num)d more", more, names=shown)


def named_one(name: Callable[[int], str | None], value: Any) -> str:
    found = name(value) if isinstance(value, int) and not isinstance(value, bool) else None
    return str(value) if found is None else found


def coded_value(area: str, key: str, value: str) -> str:
    """Recorded text: a code by its label, an ISO instant or day in the page's style, a
    message or a note bidhub wrote in the page's language; other text as it is."""
    coded = CODED_VALUES.get((area, key))
    if isinstance(coded, str):
        return label(value, coded)
    if coded is not None:
        return str(coded.get(value, value))
    if key == "note":
        return system_note(value)
    if key == "problem":
        return translate(value)
    if key.endswith("_at") or key == "hired_on":
        try:
            moment = (datetime.fromisoformat(value) if key.endswith("_at")
                      else date.fromisoformat(value))
        except ValueError:
            return value
        return localtime(moment)
    return value
