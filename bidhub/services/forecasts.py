"""The department's monthly forecasts (月度预测): each rep forecasts a month's revenue and the
department sums the forecasts; once a CRM import brings a rep's actual for the month, the
actuals are summed beside them and compared with the same reps' forecasts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from bidhub.domain.collation import person_order
from bidhub.models import Branch, MonthlyForecast, User

MONTHS_SHOWN = 12


@dataclass(frozen=True)
class MonthTotal:
    """One month's forecasts, summed over the reps who forecast it."""

    month: date  # the month's first day
    reps: int  # reps with a forecast for the month
    forecast_yuan: int  # their forecasts, summed
    reported: int  # of them, the reps whose actual is known
    actual_yuan: int  # the known actuals, summed
    reported_forecast_yuan: int  # the forecasts of the reps whose actual is known, summed

    @property
    def attainment(self) -> float | None:
        """The known actuals against the same reps' forecasts; None when no actual is known
        or those forecasts sum to 0."""
        if not self.reported or not self.reported_forecast_yuan:
            return None
        return self.actual_yuan / self.reported_forecast_yuan


@dataclass(frozen=True)
class RepForecast:
    """One rep's forecast for a month, and the actual once known."""

    rep: User
    branch: Branch | None
    forecast_yuan: int
    actual_yuan: int | None

    @property
    def difference_yuan(self) -> int | None:
        return None if self.actual_yuan is None else self.actual_yuan - self.forecast_yuan


def department_forecasts(session: Session, *, branch_id: int | None = None,
                         months: int = MONTHS_SHOWN) -> list[MonthTotal]:
    """The newest `months` months anyone forecast, newest first, summed over every rep's
    forecast (over the reps of `branch_id` only, when given), reps who left included: the
    month's forecast was theirs."""
    known = MonthlyForecast.actual_yuan.is_not(None)
    query = (select(MonthlyForecast.month, func.count(MonthlyForecast.id),
                    func.sum(MonthlyForecast.forecast_yuan), func.count(MonthlyForecast.actual_yuan),
                    func.coalesce(func.sum(MonthlyForecast.actual_yuan), 0),
                    func.coalesce(func.sum(case((known, MonthlyForecast.forecast_yuan),
                                                else_=0)), 0))
             .join(User, User.id == MonthlyForecast.rep_id)
             .group_by(MonthlyForecast.month).order_by(MonthlyForecast.month.desc())
             .limit(months))
    if branch_id is not None:
        query = query.where(User.branch_id == branch_id)
    return [MonthTotal(month, reps, int(forecast), reported, int(actual), int(reported_forecast))
            for month, reps, forecast, reported, actual, reported_forecast
            in session.execute(query)]


def month_forecasts(session: Session, month: date, *,
                    branch_id: int | None = None) -> list[RepForecast]:
    """Each rep's forecast for `month` (its first day), in a menu's order of names."""
    query = (select(MonthlyForecast, User).join(User, User.id == MonthlyForecast.rep_id)
             .where(MonthlyForecast.month == month))
    if branch_id is not None:
        query = query.where(User.branch_id == branch_id)
    rows = [RepForecast(rep, rep.branch, forecast.forecast_yuan, forecast.actual_yuan)
            for forecast, rep in session.execute(query)]
    return sorted(rows, key=lambda row: person_order(row.rep))
