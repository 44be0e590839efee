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
    """One row of the register's page. A filter, url_for or gettext per cell cost more than
    the rest of the page: here each is done once per distinct value a page shows.
    (A named tuple: built and read faster than a dataclass.)"""

    seq: int
    filed: str
    account_url: str
    account_name: str
    branch: str
    from_rep_name: str | None
    to_rep_name: str
    round: str  # the round's title, or the kind of filing when no round made it
    reason: str
    override_reason: str
    appeals: list[dict[str, Any]] | None
    scores: str
    rule_set_sha256: str | None
    decided_by_name: str


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
    filed: dict[datetime, str] = {}  # a round's awards and an import's filings share one time
    branches: dict[BranchNames | None, str] = {}
    kinds: dict[str, str] = {}
    won: dict[str, str] = {}
    rows = []
    for line in lines:
        if line.decided_at not in filed:
            filed[line.decided_at] = localtime(line.decided_at)
        if line.branch not in branches:
            branches[line.branch] = branch_name(line.branch)
        if line.kind not in kinds:
            kinds[line.kind] = cached_label(line.kind, FilingKind)
        title = line.round_title
        if line.kind == FilingKind.ROUND_AWARD and title is not None:
            if title not in won:
                won[title] = won_in % {"title": title}
            reason = won[title]
        elif line.kind == FilingKind.CRM_IMPORT:
            reason = kinds[line.kind]
        else:
            reason = line.reason
        rows.append(FilingRow(
            line.seq, filed[line.decided_at], account_url(line.account_id), line.account_name,
            branches[line.branch], line.from_rep_name, line.to_rep_name,
            title if title is not None else kinds[line.kind], reason, line.override_reason,
            line.appeals, f"{score(line.winner_score)} / {score(line.runner_up_score)}",
            line.rule_set_sha256, line.decided_by_name))
    return rows
