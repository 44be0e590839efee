"""The rows of the filing register's page, every cell worked out once in the page's language."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from flask import current_app, request
from flask_babel import get_locale
from markupsafe import Markup, escape

from bidhub.models import AppealStatus, FilingKind
from bidhub.services.filings import (
    GONE_INACTIVE,
    GONE_LEFT,
    BranchNames,
    RegisterLine,
    RepChoice,
    Surroundings,
)
from bidhub.web.i18n import gettext
from bidhub.web.labels import cached_label, label
from bidhub.web.listing_lines import url_with_id
from bidhub.web.rendering import (
    RUN_ON_LANGUAGES,
    branch_name,
    filing_reason,
    score,
    sentence_gap,
    stamp,
)


class FilingRow(NamedTuple):
    """Rows of the register's page, written out: the cells before and after the appeals the
    filing records (drawn by their template). A filter, url_for, gettext or even a template
    expression per cell cost more than the rest of the page: the cells are escaped here, and
    what repeats (times, branches, kinds, 'Won in round') is worked out once per distinct value.
    A run of rows without appeals is one FilingRow: `head` holds them all, one per line, and
    `tail` is empty. (A named tuple: built and read faster than a dataclass.)"""

    head: Markup
    appeals: list[dict[str, Any]] | None
    tail: Markup


# The rows' markup by the page's mount point and language and by everything a row shows (the
# line itself but its appeals, which its template draws): a row's markup depends on nothing
# else, so a kept row is never stale, and a filing is never changed, only its names may be
# (the key then differs). Kept per app, whose time zone and URLs the rows show.
ROW_CACHE = "bidhub_filing_rows"
ROW_CACHE_LIMIT = 4_000  # some 2 KB each: the demo's whole register in both languages
MENU_CACHE = "bidhub_filing_menus"
MENU_CACHE_LIMIT = 100
APPEALS = RegisterLine._fields.index("appeals")


def filter_menus(surroundings: Surroundings, args: Mapping[str, str]) -> dict[str, Markup]:
    """The register's branch and rep menus' options, with the choices `args` (the page's
    filters) made. Written here rather than by a loop in the template (the rep menu has an
    option per active rep and per rep the register names, 62 on the demo), and kept by the page's language, the choices read
    and the choices made: the same menus are drawn on every page."""
    key = (str(get_locale()), surroundings.branches, surroundings.reps, args.get("branch"),
           args.get("rep"))
    cache = current_app.extensions.setdefault(MENU_CACHE, {})
    menus = cache.get(key)
    if menus is None:
        if len(cache) >= MENU_CACHE_LIMIT:
            cache.clear()
        menus = cache[key] = {
            "branches": options(((branch.id, branch_name(branch))
                                 for branch in surroundings.branches), args.get("branch")),
            "reps": options(((rep.id, rep_choice_label(rep)) for rep in surroundings.reps),
                            args.get("rep"))}
    return menus


def rep_choice_label(rep: RepChoice) -> str:
    """A rep's name in the menu, marked when they left or were deactivated."""
    if rep.gone == GONE_LEFT:
        return gettext("%(name)s (left)") % {"name": rep.name}
    if rep.gone == GONE_INACTIVE:
        return gettext("%(name)s (deactivated)") % {"name": rep.name}
    return rep.name


def options(choices: Iterable[tuple[int, str]], chosen: str | None) -> Markup:
    """<option>s for (id, label) choices, the one whose id is `chosen` selected."""
    # Safe: the ids are integers and every label is escaped.
    return Markup("".join(  # noqa: S704
        f'<option value="{value}" {"selected" if str(value) == chosen else ""}>'
        f"{escape(label)}</option>" for value, label in choices))


def filing_rows(lines: Sequence[RegisterLine]) -> list[FilingRow]:
    """The page's rows for `lines` (filings.filing_register), in their order: a FilingRow per
    line with appeals, one per run of lines without."""
    cache = current_app.extensions.setdefault(ROW_CACHE, {})
    page = (request.script_root, str(get_locale()))
    keys = [(page, line[:APPEALS] + line[APPEALS + 1:]) for line in lines]
    drawn = [cache.get(key) for key in keys]
    if None in drawn:
        if len(cache) >= ROW_CACHE_LIMIT:
            cache.clear()
        missing = [index for index, row in enumerate(drawn) if row is None]
        for index, row in zip(missing, draw_rows([lines[index] for index in missing]),
                              strict=True):
            drawn[index] = cache[keys[index]] = row
    rows: list[FilingRow] = []
    run: list[str] = []
    for line, (whole, split) in zip(lines, drawn, strict=True):
        if line.appeals:
            if run:
                rows.append(FilingRow(Markup("\n".join(run)), None, Markup()))  # noqa: S704
                run = []
            # Safe: the row's markup was escaped as it was drawn.
            rows.append(FilingRow(Markup(whole[:split]), line.appeals,  # noqa: S704
                                  Markup(whole[split:])))  # noqa: S704
        else:
            run.append(whole)
    if run:
        # Safe: each row's markup was escaped as it was drawn.
        rows.append(FilingRow(Markup("\n".join(run)), None, Markup()))  # noqa: S704
    return rows


def reasons() -> Callable[[RegisterLine], str]:
    """A filing's reason as the register's page and its export both give it, in the page's
    language: a round's award is "Won in round …" (the reason stored in English), a CRM
    import's is its kind, any other the reason written."""
    imported = cached_label(FilingKind.CRM_IMPORT, FilingKind)
    won: dict[str, str] = {}  # a round's awards share one

    def reason(line: RegisterLine) -> str:
        title = line.round_title
        if line.kind == FilingKind.ROUND_AWARD and title is not None:
            if title not in won:
                won[title] = filing_reason(line.kind, line.reason, title)
            return won[title]
        if line.kind == FilingKind.CRM_IMPORT:
            return imported
        return line.reason

    return reason


def appeals_text(appeals: Sequence[Mapping[str, Any]] | None, people: Mapping[int, str]) -> str:
    """The appeals a filing records, as plain text in the page's language: one line each, with
    the appellant, the outcome, the ground, the answer and who answered (the page shows the
    same under the filing's reason)."""
    locale = get_locale()
    gap = "" if locale is not None and locale.language in RUN_ON_LANGUAGES else " "
    lines = []
    for entry in appeals or ():
        parts = [gettext("%(appellant)s (%(status)s):") % {
            "appellant": people.get(entry.get("appellant_id"), "—"),
            "status": label(entry.get("status"), AppealStatus)}, entry.get("ground") or ""]
        if entry.get("answer"):
            parts += [gettext("Answer:"), entry["answer"]]
        if entry.get("answered_by_id"):
            parts.append(gettext("(%(name)s)") % {
                "name": people.get(entry["answered_by_id"], "—")})
        lines.append(gap.join(part for part in parts if part))
    return "\n".join(lines)


def draw_rows(lines: Sequence[RegisterLine]) -> list[tuple[str, int]]:
    """Each line's markup in the page's language, and where its appeals go in it."""
    account_url = url_with_id("accounts.account", "account_id")
    reason_of = reasons()
    override = f"{escape(gettext('Override:'))}{sentence_gap()}"
    filed: dict[datetime, str] = {}  # a round's awards and an import's filings share one time
    branches: dict[BranchNames | None, str] = {}
    kinds: dict[str, str] = {}
    shared: dict[tuple[str, str | None], str] = {}  # reasons not written for each filing
    drawn = []
    for line in lines:
        if line.decided_at not in filed:
            filed[line.decided_at] = stamp(line.decided_at)
        if line.branch not in branches:
            branches[line.branch] = escape(branch_name(line.branch))
        if line.kind not in kinds:
            kinds[line.kind] = escape(cached_label(line.kind, FilingKind))
        title = line.round_title
        if (line.kind == FilingKind.ROUND_AWARD and title is not None
                or line.kind == FilingKind.CRM_IMPORT):
            key = (line.kind, title)
            if key not in shared:
                shared[key] = escape(reason_of(line))
            reason = shared[key]
        else:
            reason = escape(line.reason)
        if line.override_reason:
            reason = f"{reason}<br><em>{override}{escape(line.override_reason)}</em>"
        head = Markup(  # noqa: S704 (every text cell is escaped)
            f'      <tr>\n        <td class="num">{line.seq}</td>\n'
            f'        <td class="stamp">{filed[line.decided_at]}</td>\n'
            '        <td class="name account-name">'
            f'<a href="{escape(account_url(line.account_id))}">'
            f"{escape(line.account_name)}</a> "
            f'<small class="muted">{branches[line.branch]}</small></td>\n'
            f'        <td class="name">{escape(line.from_rep_name or "—")}</td>\n'
            f'        <td class="name">{escape(line.to_rep_name)}</td>\n'
            f'        <td class="title">{escape(title) if title is not None else kinds[line.kind]}'
            "</td>\n"
            f'        <td class="wrap">{reason}')
        tail = Markup(  # noqa: S704
            f'</td>\n        <td class="num">{score(line.winner_score)} / '
            f"{score(line.runner_up_score)}</td>\n"
            f"        <td>{rules_cell(line.rule_set_sha256)}</td>\n"
            f'        <td class="name">{escape(line.decided_by_name)}{requested(line)}</td>\n'
            f"      </tr>")
        drawn.append((f"{head}{tail}", len(head)))
    return drawn


def requested(line: RegisterLine) -> str:
    """Who asked for the transfer, under the one who decided it; nothing when they are one."""
    if line.requested_by_name is None:
        return ""
    return (f'<br><small class="muted">'
            f"{escape(gettext('requested by %(name)s') % {'name': line.requested_by_name})}"
            f"</small>")


def rules_cell(sha256: str | None) -> str:
    """The rule set's hash, shortened, with the whole of it as the title; nothing without one."""
    return f'<code title="{escape(sha256)}">{escape(sha256[:12])}</code>' if sha256 else ""
