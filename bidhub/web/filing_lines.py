"""The rows of the filing register's page, every cell worked out once in the page's language."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from markupsafe import Markup, escape
from sqlalchemy.orm import Session

from bidhub.models import FilingKind
from bidhub.services.filings import (
    BranchNames,
    RegisterLine,
    register_branches,
    register_reps,
)
from bidhub.web.i18n import gettext
from bidhub.web.labels import cached_label
from bidhub.web.listing_lines import url_with_id
from bidhub.web.rendering import branch_name, localtime, score


class FilingRow(NamedTuple):
    """One row of the register's page, written out: the cells before and after the appeals the
    filing records (drawn by their template). A filter, url_for, gettext or even a template
    expression per cell cost more than the rest of the page: the cells are escaped here, and
    what repeats (times, branches, kinds, 'Won in round') is worked out once per distinct value.
    (A named tuple: built and read faster than a dataclass.)"""

    head: Markup
    appeals: list[dict[str, Any]] | None
    tail: Markup


def filter_menus(session: Session, args: Mapping[str, str]) -> dict[str, Markup]:
    """The register's branch and rep menus' options, with the choices `args` (the page's
    filters) made. Written here rather than by a loop in the template: the rep menu has an
    option per active rep (62 on the demo), and the template's attribute look-ups and escapes
    per option cost a millisecond a page."""
    return {"branches": options(((branch.id, branch_name(branch))
                                 for branch in register_branches(session)), args.get("branch")),
            "reps": options(register_reps(session), args.get("rep"))}


def options(choices: Iterable[tuple[int, str]], chosen: str | None) -> Markup:
    """<option>s for (id, label) choices, the one whose id is `chosen` selected."""
    # Safe: the ids are integers and every label is escaped.
    return Markup("".join(  # noqa: S704
        f'<option value="{value}" {"selected" if str(value) == chosen else ""}>'
        f"{escape(label)}</option>" for value, label in choices))


def filing_rows(lines: Sequence[RegisterLine]) -> list[FilingRow]:
    """The page's rows for `lines` (filings.filing_register), in their order."""
    account_url = url_with_id("accounts.account", "account_id")
    won_in = gettext("Won in round “%(title)s”")
    override = escape(gettext("Override:"))
    filed: dict[datetime, str] = {}  # a round's awards and an import's filings share one time
    branches: dict[BranchNames | None, str] = {}
    kinds: dict[str, str] = {}
    won: dict[str, str] = {}
    rows = []
    for line in lines:
        if line.decided_at not in filed:
            filed[line.decided_at] = escape(localtime(line.decided_at))
        if line.branch not in branches:
            branches[line.branch] = escape(branch_name(line.branch))
        if line.kind not in kinds:
            kinds[line.kind] = escape(cached_label(line.kind, FilingKind))
        title = line.round_title
        if line.kind == FilingKind.ROUND_AWARD and title is not None:
            if title not in won:
                won[title] = escape(won_in % {"title": title})
            reason = won[title]
        elif line.kind == FilingKind.CRM_IMPORT:
            reason = kinds[line.kind]
        else:
            reason = escape(line.reason)
        if line.override_reason:
            reason = f"{reason}<br><em>{override} {escape(line.override_reason)}</em>"
        rows.append(FilingRow(Markup(  # noqa: S704 (every text cell is escaped)
            f'      <tr>\n        <td class="num">{line.seq}</td>\n'
            f"        <td>{filed[line.decided_at]}</td>\n"
            f'        <td class="name"><a href="{escape(account_url(line.account_id))}">'
            f"{escape(line.account_name)}</a> "
            f'<small class="muted">{branches[line.branch]}</small></td>\n'
            f'        <td class="name">{escape(line.from_rep_name or "—")}</td>\n'
            f'        <td class="name">{escape(line.to_rep_name)}</td>\n'
            f"        <td>{escape(title) if title is not None else kinds[line.kind]}</td>\n"
            f'        <td class="wrap">{reason}'), line.appeals, Markup(  # noqa: S704
            f'</td>\n        <td class="num">{score(line.winner_score)} / '
            f"{score(line.runner_up_score)}</td>\n"
            f"        <td>{rules_cell(line.rule_set_sha256)}</td>\n"
            f'        <td class="name">{escape(line.decided_by_name)}</td>\n      </tr>')))
    return rows


def rules_cell(sha256: str | None) -> str:
    """The rule set's hash, shortened, with the whole of it as the title; nothing without one."""
    return f'<code title="{escape(sha256)}">{escape(sha256[:12])}</code>' if sha256 else ""
