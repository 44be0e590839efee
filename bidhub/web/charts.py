"""Small server-rendered SVG charts: geometry computed here, drawn here (the forecast chart's
marks) or by templates/profiles/rep.html (its frame, the capacity gauge)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import NamedTuple

from markupsafe import Markup, escape

CHART_HEIGHT = 160
BAR_WIDTH = 14


# Tuples rather than frozen dataclasses: two dozen bars a page, and a frozen dataclass sets
# each field through object.__setattr__.
class Bar(NamedTuple):
    x: float
    y: float
    height: float
    value: int | None
    kind: str  # forecast | actual
    title: str


class MonthBars(NamedTuple):
    label: str
    x: float
    bars: tuple[Bar, ...]


def forecast_chart(rows, describe: Callable[[str, int | None], str],
                   height: int = CHART_HEIGHT,
                   month_label: Callable[[date], str] = lambda month: month.strftime("%m"),
                   ) -> tuple[list[MonthBars], int]:
    """Forecast and actual bars per month, scaled to the largest value, each titled by
    `describe(kind, value)` and labelled `month_label(month)`; and the chart width."""
    peak = max([value for row in rows for value in (row.forecast_yuan, row.actual_yuan)
                if value] or [1])
    months = []
    for index, row in enumerate(rows):
        x = 10 + index * (2 * BAR_WIDTH + 12)
        bars = []
        for offset, (kind, value) in enumerate((("forecast", row.forecast_yuan),
                                                ("actual", row.actual_yuan))):
            bar_height = 0 if not value else max(1.0, value / peak * (height - 20))
            bars.append(Bar(x + offset * BAR_WIDTH, height - bar_height, bar_height, value, kind,
                            describe(kind, value)))
        months.append(MonthBars(month_label(row.month), x + BAR_WIDTH, tuple(bars)))
    width = 20 + len(rows) * (2 * BAR_WIDTH + 12)
    return months, width


def chart_marks(months: list[MonthBars]) -> Markup:
    """The forecast chart's bars and month labels as SVG elements, a line each, indented as
    the page's template lays them out. Two dozen bars of five values each cost ten times as
    much drawn value by value in the template; only the titles and labels are text."""
    lines = []
    for month in months:
        for bar in month.bars:
            lines.append(f'        <rect x="{bar.x}" y="{bar.y}" width="13" height="{bar.height}"'
                         f' class="bar-{bar.kind}"><title>{escape(bar.title)}</title></rect>')
        lines.append(f'      <text x="{month.x}" y="176" class="chart-label"'
                     f' text-anchor="middle">{escape(month.label)}</text>')
    # Safe: the lines hold numbers computed here, a kind from this module and escaped text.
    return Markup("\n".join(lines))  # noqa: S704


def capacity_gauge(held: int, target: int, maximum: int, width: int = 320) -> dict:
    """Positions on a 0..max+5 scale for the held count, the target and the maximum."""
    scale = width / (maximum + 5)
    return {"width": width, "held": min(held, maximum + 5) * scale, "target": target * scale,
            "maximum": maximum * scale, "over": held > maximum, "in_band": target <= held <= maximum}
