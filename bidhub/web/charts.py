"""Small server-rendered SVG charts: geometry computed here, drawn by templates/profiles/rep.html."""

from __future__ import annotations

from dataclasses import dataclass

CHART_HEIGHT = 160
BAR_WIDTH = 14


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    value: int | None
    kind: str  # forecast | actual


@dataclass(frozen=True)
class MonthBars:
    label: str
    x: float
    bars: tuple[Bar, ...]


def forecast_chart(rows, height: int = CHART_HEIGHT) -> tuple[list[MonthBars], int]:
    """Forecast and actual bars per month, scaled to the largest value; and the chart width."""
    peak = max([value for row in rows for value in (row.forecast_yuan, row.actual_yuan)
                if value] or [1])
    months = []
    for index, row in enumerate(rows):
        x = 10 + index * (2 * BAR_WIDTH + 12)
        bars = []
        for offset, (kind, value) in enumerate((("forecast", row.forecast_yuan),
                                                ("actual", row.actual_yuan))):
            bar_height = 0 if not value else max(1.0, value / peak * (height - 20))
            bars.append(Bar(x + offset * BAR_WIDTH, height - bar_height, bar_height, value, kind))
        months.append(MonthBars(row.month.strftime("%m"), x + BAR_WIDTH, tuple(bars)))
    width = 20 + len(rows) * (2 * BAR_WIDTH + 12)
    return months, width


def capacity_gauge(held: int, target: int, maximum: int, width: int = 320) -> dict:
    """Positions on a 0..max+5 scale for the held count, the target and the maximum."""
    scale = width / (maximum + 5)
    return {"width": width, "held": min(held, maximum + 5) * scale, "target": target * scale,
            "maximum": maximum * scale, "over": held > maximum, "in_band": target <= held <= maximum}
