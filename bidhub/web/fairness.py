"""The fairness page (公平性) and its CSV: bands, Gini, award and override rates over rounds."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from bidhub.clock import now
from bidhub.db import get_session
from bidhub.domain.fairness import BandCounts
from bidhub.services.fairness import FairnessReport, RoundRow, fairness_report
from bidhub.web.access import managers
from bidhub.web.csv_export import csv_response, export_language
from bidhub.web.i18n import format_day, utc_to_local
from bidhub.web.rendering import branch_name, render

blueprint = Blueprint("fairness", __name__)

TENURE_LABELS = {"under_12": _l("under 12 months"), "12_to_36": _l("12 to 36 months"),
                 "over_36": _l("over 36 months")}
# Fill colours of the band chart, one per side of the band (presentation attributes: the CSP
# allows no inline style).
BAND_COLOURS = {"below": "#9fb3d9", "inside": "#2f9e5f", "above": "#c8453b"}
BAND_LABELS = {"below": _l("Below the band"), "inside": _l("Inside the band"),
               "above": _l("Above the band")}

CHART_HEIGHT = 160
COLUMN_WIDTH = 22
COLUMN_GAP = 14
CHART_TOP = 10


@dataclass(frozen=True)
class Segment:
    band: str
    y: float
    height: float
    count: int


@dataclass(frozen=True)
class Column:
    label: str  # under the column: the round's announcement day, or "now"
    name: str  # in its tooltip: the round's title and day
    x: float
    segments: tuple[Segment, ...]
    is_now: bool = False


@dataclass(frozen=True)
class Point:
    label: str
    name: str
    x: float
    y: float
    value: float


@dataclass(frozen=True)
class ChartEntry:
    """A round (or today) as the charts show it: `label` under its column, `name` in the
    tooltips."""

    label: str
    name: str


def band_columns(points: list[tuple[ChartEntry, BandCounts, bool]]
                 ) -> tuple[list[Column], int]:
    """Stacked columns (below at the bottom, then inside, then above) scaled to the largest
    total; and the chart's width."""
    peak = max([counts.total for _label, counts, _is_now in points] or [1]) or 1
    columns = []
    for index, (entry, counts, is_now) in enumerate(points):
        x = 10 + index * (COLUMN_WIDTH + COLUMN_GAP)
        bottom = float(CHART_HEIGHT)
        segments = []
        for band, count in (("below", counts.below), ("inside", counts.inside),
                            ("above", counts.above)):
            height = count / peak * (CHART_HEIGHT - CHART_TOP)
            bottom -= height
            segments.append(Segment(band, round(bottom, 2), round(height, 2), count))
        columns.append(Column(entry.label, entry.name, x, tuple(segments), is_now))
    return columns, 20 + len(points) * (COLUMN_WIDTH + COLUMN_GAP)


def gini_points(points: list[tuple[ChartEntry, float | None]]) -> tuple[list[Point], int]:
    """Points on a 0..1 scale (the Gini's range), one per round that has a figure."""
    placed = []
    for index, (entry, value) in enumerate(points):
        if value is None:
            continue
        x = 10 + index * (COLUMN_WIDTH + COLUMN_GAP) + COLUMN_WIDTH / 2
        y = CHART_HEIGHT - value * (CHART_HEIGHT - CHART_TOP)
        placed.append(Point(entry.label, entry.name, x, round(y, 2), value))
    return placed, 20 + len(points) * (COLUMN_WIDTH + COLUMN_GAP)


def shown_after(row: RoundRow) -> BandCounts:
    """A round's counts once in effect; while its appeal window runs, the counts before it."""
    return row.figures.after if row.figures.after is not None else row.figures.before


def chart_entry(row: RoundRow) -> ChartEntry:
    """A round under its column by the day it announced its results, as the table below the
    charts dates it (month and day, which a column has room for); its title in the tooltips."""
    day = utc_to_local(row.round.results_published_at).date()
    return ChartEntry(f"{day:%m-%d}", _("%(text)s (%(note)s)", text=row.round.title,
                                         note=format_day(day)))


def charts(report: FairnessReport) -> dict:
    today = ChartEntry(_("now"), _("now"))
    entries = [chart_entry(row) for row in report.rounds]
    columns, width = band_columns(
        [(entry, shown_after(row), False) for entry, row in zip(entries, report.rounds,
                                                               strict=True)]
        + [(today, report.now, True)])
    points, _width = gini_points(
        [(entry, row.figures.gini_after) for entry, row in zip(entries, report.rounds,
                                                              strict=True)]
        + [(today, report.gini_now)])
    return {"columns": columns, "points": points, "width": width, "height": CHART_HEIGHT,
            "polyline": " ".join(f"{point.x},{point.y}" for point in points),
            "colours": BAND_COLOURS, "band_labels": BAND_LABELS}


@blueprint.route("/manage/fairness")
@managers
def fairness():
    report = fairness_report(get_session(), now(), zone=current_app.config["TIMEZONE"])
    return render("fairness/fairness.html", report=report, chart=charts(report),
                  tenure_labels=TENURE_LABELS)


ROUND_COLUMNS = (
    _l("Round"), _l("Round title"), _l("Announced"), _l("Band"),
    _l("Below before"), _l("Inside before"), _l("Above before"),
    _l("Below after"), _l("Inside after"), _l("Above after"), _l("Gini before"),
    _l("Gini after"), _l("Bids"), _l("Listings decided"), _l("Top-ranked bid won"),
    _l("Overridden"), _l("Ties decided by the lottery"), _l("Awards"), _l("Chosen total score"),
    _l("Rules' proposal total score"), _l("Greedy awards"), _l("Greedy total score"))


def round_record(row: RoundRow) -> list:
    figures = row.figures
    after = figures.after
    return [row.round.id, row.round.title,
            utc_to_local(row.round.results_published_at).strftime("%Y-%m-%d %H:%M"),
            f"{figures.band[0]}-{figures.band[1]}",
        figures.before.below, figures.before.inside, figures.before.above,
        *((after.below, after.inside, after.above) if after else ("", "", "")),
        figures.gini_before, figures.gini_after, figures.bids, figures.decided,
        figures.top_ranked_won, figures.overridden, figures.lottery_ties, figures.chosen.awards,
        figures.chosen.total, figures.proposed.total, figures.greedy.awards,
        figures.greedy.total]


def trailing_records(report: FairnessReport) -> list[list]:
    """The tables below the rounds: today, award rates, managers, repeat winners."""
    records: list[list] = [
        [], [_("Now"), _("Band"), _("Below"), _("Inside"), _("Above"), _("Gini")],
        [_("Now"), f"{report.now_band[0]}-{report.now_band[1]}", report.now.below,
         report.now.inside, report.now.above, report.gini_now],
        [], [_("Branch"), _("Bids placed"), _("Bids won"), _("Award rate")]]
    records += [[branch_name(branch) if branch else _("No branch"), entry.placed, entry.won,
                 entry.rate] for branch, entry in report.by_branch]
    records += [[], [_("Tenure at the deadline"), _("Bids placed"), _("Bids won"),
                     _("Award rate")]]
    records += [[str(TENURE_LABELS.get(entry.key, entry.key)), entry.placed, entry.won,
                 entry.rate] for entry in report.by_tenure]
    records += [[], [_("Manager"), _("Decisions with a proposal"), _("Ranking accepted"),
                     _("Another bidder"), _("No award"), _("Override rate"),
                     _("Top-ranked bid won")]]
    records += [[name, entry.decided, entry.accepted, entry.other_bidder, entry.no_award,
                 entry.override_rate, entry.top_ranked_won] for name, entry in report.managers]
    records += [[], [_("Repeat winner"), _("Bids"), _("Awards"), _("Share of bids"),
                     _("Share of awards")]]
    records += [[name, entry.bids, entry.awards, round(entry.bid_share, 6),
                 round(entry.award_share, 6)]
                for name, entry in report.repeat_winners]
    return records


@blueprint.route("/manage/fairness.csv")
@managers
def fairness_csv():
    report = fairness_report(get_session(), now(), zone=current_app.config["TIMEZONE"])
    with export_language():
        return csv_response(f"bidhub-fairness-{utc_to_local(now()):%Y%m%d-%H%M}.csv",
                            [str(column) for column in ROUND_COLUMNS],
                            [round_record(row) for row in report.rounds],
                            trailing_records(report))
