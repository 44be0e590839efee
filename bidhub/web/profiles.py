"""Reps' track-record pages: a rep sees their own; KA management and admins see anyone's."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from flask import Blueprint, abort, current_app, render_template, request
from flask_babel import format_date, get_locale
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup, escape

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.facts import Stage
from bidhub.domain.metrics import METRICS
from bidhub.models import IncidentStatus, Role, RoundStatus
from bidhub.services import forecasts, policies
from bidhub.services.branches import list_branches
from bidhub.services.browse import active_reps
from bidhub.services.loss_reviews import is_overdue
from bidhub.services.policies import BidOutcome
from bidhub.services.profiles import IN_REVIEW, SEALED, rep_profile
from bidhub.services.track_records import accounts_held_by
from bidhub.web import params
from bidhub.web.access import managers, signed_in
from bidhub.web.charts import capacity_gauge, chart_marks, forecast_chart
from bidhub.web.i18n import gettext, kept_with_catalogue, ngettext
from bidhub.web.labels import (
    FILING_KIND_LABELS,
    LOSS_REVIEW_STATUS_LABELS,
    METRIC_WINDOWS,
    RELEASE_REASON_LABELS,
    AdType,
    cached_label,
    label,
    metric_label,
    stage_label,
)
from bidhub.web.rendering import (
    DAY_PATTERN,
    branch_name,
    localtime,
    metric_amount,
    percent,
    render,
    score,
    template_url_for,
    yuan,
)
from bidhub.web.reviews import reason_label

blueprint = Blueprint("profiles", __name__)
T = TypeVar("T")


@blueprint.route("/reps/<int:rep_id>")
@signed_in
def rep(rep_id: int):
    if not policies.may_see_profile_of(current_user, rep_id):
        abort(404)
    return track_record_page(rep_id)


@blueprint.route("/my/track-record")
@signed_in
def mine():
    # The page itself rather than a redirect to /reps/<id>: one request instead of two.
    if current_user.role != Role.REP:
        abort(404)
    return track_record_page(current_user.id)


def track_record_page(rep_id: int):
    current = now()
    profile = rep_profile(get_session(), rep_id, current,
                          include_sealed_bids=policies.sees_sealed_bids_of(current_user, rep_id),
                          zone=current_app.config["TIMEZONE"])
    labels = page_labels()
    kept = KeptRows(str(get_locale()))
    chart = kept("chart", tuple(profile.forecasts),
                 lambda: drawn_chart(profile.forecasts, labels["bar_titles"]))
    overdue = tuple(is_overdue(review, current) for review in profile.loss_reviews)
    promises_shown = tuple(profile.promises)
    page = {
        "profile": profile, "chart_marks": chart[0], "chart_width": chart[1],
        "bid_rows": kept("bids", tuple(profile.bids),
                         lambda: bid_rows(profile.bids, labels["bid_results"])),
        "metric_rows": metric_rows(profile.metrics, profile.metric_counts, labels),
        "funnel_rows": funnel_rows(profile.funnel, profile.open_by_stage, labels),
        "loss_review_rows": kept(
            "reviews", (tuple(profile.loss_reviews), overdue),
            lambda: loss_review_rows(profile.loss_reviews, labels, overdue)),
        "incident_rows": kept("incidents", tuple(profile.incidents),
                              lambda: incident_rows(profile.incidents)),
        "promise_rows": kept(
            "promises", (promises_shown, tuple(profile.account_names.get(promise.account_id)
                                               for promise in promises_shown)),
            lambda: promise_rows(profile.promises, profile.account_names, labels)),
        "has_forecasts": any(row.forecast_yuan for row in profile.forecasts),
        "gauge": capacity_gauge(profile.accounts_held, profile.capacity_target,
                                profile.capacity_max)}
    content = kept("content", content_key(page),
                   lambda: Markup(render_template("profiles/_track_record.html", **page)))  # noqa: S704
    return render("profiles/rep.html", profile=profile, content=content)


def content_key(page: dict) -> tuple:
    """Everything _track_record.html shows besides the page's language and mount point: the
    viewer's kind, the rep's name, branch, hire date and status, the holdings against the
    band, and each section's rows (their markup, whether there are any)."""
    profile, rep = page["profile"], page["profile"].rep
    return (current_user.role == Role.REP, rep.display_name, branch_name(rep.branch),
            rep.hired_on, rep.status, profile.accounts_held, profile.capacity_target,
            profile.capacity_max, page["metric_rows"], page["funnel_rows"],
            page["has_forecasts"], page["chart_width"], page["chart_marks"],
            bool(profile.incidents), page["incident_rows"], bool(profile.loss_reviews),
            page["loss_review_rows"], bool(profile.promises), page["promise_rows"],
            bool(profile.bids), page["bid_rows"])


# The markup of the page's tables and chart is kept per app, by the page's mount point and
# language and by every value it shows (the rows themselves): a rep's bids, incidents, reviews,
# promises and forecasts change seldom, and their rows cost more to write than the rest of the
# page.
# A changed row is another key, so a kept one is never stale. The metrics and the funnel
# depend on the moment (a rep's tenure grows by the second) and are written every time.
KEPT_ROWS = "bidhub_track_record_rows"
KEPT_ROWS_LIMIT = 2_000
# Bounded by what it holds too: a rep's whole page is one entry, and a department with long bid
# histories would otherwise keep a hundred megabytes or more in each worker before the count
# cleared it. The keys hold the rows the markup was written from, about as much again.
KEPT_ROWS_MAX_CHARACTERS = 4_000_000


def markup_size(kept: object) -> int:
    """The characters of markup in a kept value (markup, or a tuple holding some)."""
    if isinstance(kept, str):
        return len(kept)
    if isinstance(kept, tuple):
        return sum(markup_size(part) for part in kept)
    return 0


class KeptMarkup:
    """The process's kept markup, with the characters it holds."""

    def __init__(self) -> None:
        self.entries: dict[tuple, Any] = {}
        self.characters = 0

    def keep(self, key: tuple, kept: T) -> T:
        size = markup_size(kept)
        if (len(self.entries) >= KEPT_ROWS_LIMIT
                or self.characters + size > KEPT_ROWS_MAX_CHARACTERS):
            self.entries.clear()
            self.characters = 0
        self.entries[key] = kept
        self.characters += size
        return kept


class KeptRows:
    """Markup kept by section and the values it shows, for the page being rendered."""

    def __init__(self, locale: str) -> None:
        self.page = (request.script_root, locale)
        self.cache = current_app.extensions.setdefault(KEPT_ROWS, KeptMarkup())

    def __call__(self, section: str, values: tuple, draw: Callable[[], T]) -> T:
        key = (self.page, section, values)
        found = self.cache.entries.get(key)
        if found is None:
            found = self.cache.keep(key, draw())
        return found


def drawn_chart(forecasts, bar_titles: dict) -> tuple[Markup, int]:
    """The forecast chart's marks and width."""
    # A month as the page's language names it: 12月 on a Chinese page, Dec on an English one.
    months, width = forecast_chart(
        forecasts, lambda kind, value: bar_titles[kind] % {"value": yuan(value)},
        month_label=lambda month: format_date(month, "MMM"))
    return chart_marks(months), width


# The tables' rows below are written here rather than cell by cell in the template: with a
# filter, a lookup and an escape per cell they cost more than the rest of the page. Each
# function gives the rows exactly as the template laid them out, every text escaped.
# Safe (noqa: S704): every value put in the markup went through escape().

def metric_rows(metrics, counts: dict, labels: dict) -> Markup:
    names, no_data = labels["metrics"], labels["no_data"]
    rows = []
    for name, _label, value in metrics:
        shown = (f'<span class="muted">{escape(no_data)}</span>\n' if value is None
                 else escape(metric_amount(value, name)))
        rows.append(f'      <tr><th class="term">{escape(names[name])}</th><td class="num">\n'
                    f'{shown}</td><td class="muted wrap">{escape(metric_basis(name, counts))}</td>'
                    f'</tr>')
    return Markup("\n".join(rows))  # noqa: S704


def metric_basis(name: str, counts: dict[str, dict[str, int]]) -> str:
    """How a metric was worked out: its window and, for a rate, the counts behind it.

    Every message comes through the page's kept catalogue (bidhub.web.i18n), as the rows'
    other labels do: a page shows a dozen metrics, each with two or three messages."""
    text = kept_with_catalogue(("metric window", name),
                               lambda: str(METRIC_WINDOWS.get(name) or ""))
    found = counts.get(name)
    if not found:
        return text
    if name in ("win_rate", "stage_conversion"):
        behind = gettext("%(won)d won of %(closed)d closed") % found
    elif name == "forecast_accuracy":
        months = {"num": found["months"]}
        behind = ngettext("%(num)d month", "%(num)d months", months["num"]) % months
    elif name == "revenue_attainment":
        behind = gettext("actual %(actual)s of forecast %(forecast)s") % {
            "actual": yuan(found["actual_yuan"]), "forecast": yuan(found["forecast_yuan"])}
    elif name == "retention":
        behind = gettext(
            "%(held)d held, %(lost)d lost (%(unreviewed)d without a review)") % found
    else:
        return text
    return gettext("%(window)s: %(counts)s") % {"window": text, "counts": behind}


def funnel_rows(steps, open_by_stage: dict, labels: dict) -> Markup:
    stages = labels["stages"]
    rows = []
    for step in steps:
        rows.append(
            f'      <tr><td class="term">{escape(stages[step.from_stage])} → '
            f'{escape(stages[step.to_stage])}</td>\n'
            f'      <td class="num">{open_by_stage.get(step.from_stage.value, 0)}</td>\n'
            f'      <td class="num">{step.entered}</td><td class="num">{step.advanced}</td>\n'
            '      <td class="num"><span class="meter"><svg width="40" height="8" '
            'viewBox="0 0 60 8" aria-hidden="true"><rect width="60" height="8" '
            f'class="gauge-track"/><rect width="{(step.rate or 0) * 60}" height="8" '
            f'class="gauge-held"/></svg></span> {escape(percent(step.rate))}</td></tr>')
    return Markup("\n".join(rows))  # noqa: S704


def loss_review_rows(reviews, labels: dict, late: tuple[bool, ...]) -> Markup:
    reasons, statuses = labels["review_reasons"], labels["review_statuses"]
    overdue = Markup('<span class="badge badge-overdue">%s</span>\n') % labels["overdue"]
    rows = []
    for review, is_late in zip(reviews, late, strict=True):
        reason = reasons.get(review.reason) or reason_label(review)
        due = localtime(review.due_at, DAY_PATTERN) if review.due_at else "—"
        if is_late:
            status = overdue
        else:
            status = (Markup('<span class="badge badge-%s">%s</span>')
                      % (review.status, statuses[review.status]))
        link = template_url_for("reviews.detail", review_id=review.id)
        rows.append(f'      <tr><td>{escape(localtime(review.created_at, DAY_PATTERN))}</td>'
                    f'<td class="name"><a href="{escape(link)}">{escape(review.account_name)}'
                    f'</a></td><td class="term">{escape(reason)}</td><td>{escape(due)}</td>'
                    f'<td>{status}</td></tr>')
    return Markup("\n".join(rows))  # noqa: S704


def incident_rows(incidents) -> Markup:
    rows = []
    for incident in incidents:
        rows.append(
            f'      <tr><td>{escape(localtime(incident.seen_at, DAY_PATTERN))}</td>'
            f'<td class="name">{escape(incident.account_name)}</td>'
            f'<td>{escape(incident.competitor_site)}</td>'
            f'<td class="term">{escape(cached_label(incident.ad_type, AdType))}</td>'
            f'<td><span class="badge badge-{escape(incident.status)}">'
            f'{escape(cached_label(incident.status, IncidentStatus))}</span></td></tr>')
    return Markup("\n".join(rows))  # noqa: S704


def promise_rows(promises, account_names: dict, labels: dict) -> Markup:
    lost, under_a_month = escape(labels["account_lost"]), escape(labels["under_a_month"])
    rows = []
    for promise in promises:
        ended = ("" if not promise.ended_at else Markup(' <span class="muted">%s</span>')
                 % (lost % {"date": localtime(promise.ended_at, DAY_PATTERN)}))
        kept = (Markup('<span class="muted">%s</span>') % under_a_month
                if promise.kept is None else escape(percent(promise.kept)))
        rows.append(
            f'      <tr><td class="name">{escape(account_names.get(promise.account_id, "—"))}'
            f'</td>\n      <td>{escape(localtime(promise.started_at, DAY_PATTERN))}</td>\n'
            f'      <td class="num">{escape(yuan(promise.committed_revenue_yuan))}</td>\n'
            f'      <td class="num">{escape(promise.months_elapsed)}{ended}</td>\n'
            f'      <td class="num">{escape(yuan(promise.actual_yuan))}</td>\n'
            f'      <td class="num">{escape(yuan(promise.expected_yuan))}</td>\n'
            f'      <td class="num">{kept}</td></tr>')
    return Markup("\n".join(rows))  # noqa: S704


def bid_rows(lines, results: dict) -> Markup:
    """The bids table's rows, three lines each as the page's template lays them out: a rep's
    few dozen rows of five cells cost several times as much drawn cell by cell in the
    template. Every text is escaped here."""
    rows = []
    for line in lines:
        result = escape(results[line.result])
        if line.result == BidOutcome.WON:
            result = Markup('<span class="badge badge-open">%s</span>') % result
        rows.append(f'      <tr><td class="name">{escape(line.account_name)}</td>'
                    f'<td>{escape(line.round_title)}</td>'
                    f'<td>{escape(localtime(line.submitted_at))}</td>\n'
                    f'      <td class="num">{escape(score(line.score))}</td>\n'
                    f'      <td>{result}</td></tr>')
    return Markup("\n".join(rows))  # noqa: S704


# The key of this page's labels among the page catalogue's kept translations.
_PAGE_LABELS = object()


def page_labels() -> dict:
    """The page's fixed labels (metrics, funnel stages, bid results, chart bar titles) in the
    page's language. They depend on the language alone, so they are kept with the page's
    catalogue (i18n.page_catalogue) instead of being translated row by row on every request."""
    return kept_with_catalogue(_PAGE_LABELS, _page_labels)


def _page_labels() -> dict:
    return {
        "metrics": {name: metric_label(name) for name in METRICS},
        "stages": {stage: stage_label(stage) for stage in Stage},
        "bid_results": {BidOutcome.WITHDRAWN: _("Withdrawn"),
                        IN_REVIEW: label(RoundStatus.IN_REVIEW, RoundStatus),
                        SEALED: _("Sealed until the deadline"),
                        BidOutcome.NOT_DECIDED: _("Awaiting results"), BidOutcome.WON: _("Won"),
                        BidOutcome.LOST: _("Not won")},
        "bar_titles": {"forecast": _("forecast %(value)s"), "actual": _("actual %(value)s")},
        "no_data": _("no data"),
        "overdue": _("Overdue"),
        "account_lost": _("(account lost %(date)s)"), "under_a_month": _("under a month"),
        # What reviews.reason_label and review_statuses say of the loss reviews' codes.
        "review_reasons": {code: str(text) for code, text
                           in {**FILING_KIND_LABELS, **RELEASE_REASON_LABELS}.items()},
        "review_statuses": {status: str(text)
                            for status, text in LOSS_REVIEW_STATUS_LABELS.items()},
    }


@blueprint.route("/reps")
@managers
def reps():
    session = get_session()
    people = active_reps(session)
    return render("profiles/reps.html", reps=people,
                  held=accounts_held_by(session, [rep.id for rep in people]))


MONTH_PATTERN = re.compile(r"(\d{4})-(\d{2})")


def parse_month(text: str) -> date | None:
    """A YYYY-MM month as its first day, or None."""
    found = MONTH_PATTERN.fullmatch(text)
    if found is None or not 1 <= int(found.group(2)) <= 12:
        return None
    year = int(found.group(1))
    return date(year, int(found.group(2)), 1) if params.is_sensible_year(year) else None


@blueprint.route("/reps/forecasts")
@managers
def forecasts_page():
    """The department's monthly forecasts (月度预测), summed per month, for a branch or all;
    with `month`, each rep's forecast and actual for that month."""
    session = get_session()
    branches = list_branches(session)
    branch_text = params.text_arg(request.args, "branch", 32).strip()
    branch_id = params.id_arg(request.args, "branch")
    if branch_id is not None and all(branch.id != branch_id for branch in branches):
        branch_id = None
    month_text = params.text_arg(request.args, "month", 32).strip()
    month = parse_month(month_text) if month_text else None
    problems = []
    if branch_text and branch_id is None:
        problems.append(_("“%(value)s” is not one of the branches; the forecasts of every "
                          "branch are shown.", value=params.quoted_arg(request.args, "branch")))
    if month_text and month is None:
        problems.append(_("“%(value)s” is no month; write it as YYYY-MM.",
                          value=params.quoted_arg(request.args, "month")))
    return render("profiles/forecasts.html", branches=branches, branch_id=branch_id,
                  totals=forecasts.department_forecasts(session, branch_id=branch_id),
                  month=month, problems=problems,
                  rows=(forecasts.month_forecasts(session, month, branch_id=branch_id)
                        if month is not None else []))
