"""Flags before adjudication: when a bid's frozen track record deserves a second look.

Two pure tests, configured by the rules' [flags] section (rules/README.md, "Flags before
adjudication"): CRM data too old when the bid froze its track record, and a metric far outside
the distribution of the bidder's branch. Flags never change a score or a ranking; they ask KA
management to look before accepting. The services read the import history and the frozen
track records; this module only judges them.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from bidhub.domain.metrics import months_before

# The kinds of flag a bid can carry (the adjudication pages' badges); stored nowhere.
STALE_CRM = "stale_crm"
METRIC_OUTLIER = "metric_outlier"
RESET_BY_ADMIN = "reset_by_admin"

# The CRM exports a track record is computed from (bidhub.domain.imports.ImportKind values):
# funnel and win rates from opportunities, accuracy and attainment from forecasts, the
# accountability metrics from incidents.
TRACK_RECORD_IMPORT_KINDS = ("opportunities", "forecasts", "incidents")

# A median absolute deviation times this is comparable with a standard deviation (for
# normally distributed values the two agree), so `outlier_mads` reads like "standard
# deviations, measured robustly".
MAD_TO_SIGMA = 1.4826
# The window of bids whose frozen track records make a branch's distribution.
DISTRIBUTION_MONTHS = 12


@dataclass(frozen=True)
class FlagRules:
    """The rules' [flags] section; the defaults apply to rule files without one."""

    stale_crm_days: int = 30
    outlier_mads: float = 3.5
    outlier_min_sample: int = 8


def distribution_since(closes_at: datetime, zone: tzinfo) -> datetime:
    """Where the window of the branches' distributions begins: DISTRIBUTION_MONTHS calendar
    months before the round's deadline on the department's calendar (`zone`), as the track
    record's windows count them; the same instant given in `closes_at`'s zone."""
    return months_before(closes_at.astimezone(zone),
                         DISTRIBUTION_MONTHS).astimezone(closes_at.tzinfo)


def crm_age(submitted_at: datetime, last_import_at: datetime | None) -> timedelta | None:
    """How old the CRM data was when the bid froze its track record; None: no import before."""
    if last_import_at is None:
        return None
    return submitted_at - last_import_at


def is_stale(submitted_at: datetime, last_import_at: datetime | None, days: int) -> bool:
    """Whether the newest CRM import finished at or before the submission is more than `days`
    days older than it (exactly `days` days is not stale), or there was none."""
    age = crm_age(submitted_at, last_import_at)
    return age is None or age > timedelta(days=days)


@dataclass(frozen=True)
class Spread:
    """A robust picture of a distribution: its median, its normalised MAD and its size."""

    median: float
    mad: float
    size: int


def spread_of(values: Iterable[float | None]) -> Spread | None:
    """Median and normalised median absolute deviation of the values that are not None;
    None when there are none."""
    present = [float(value) for value in values if value is not None]
    if not present:
        return None
    median = statistics.median(present)
    mad = statistics.median(abs(value - median) for value in present) * MAD_TO_SIGMA
    return Spread(median, mad, len(present))


@dataclass(frozen=True)
class Outlier:
    """A metric value far from its branch's median; `distance` is signed, in normalised MADs."""

    metric: str
    value: float
    median: float
    distance: float
    sample: int

    @property
    def is_above(self) -> bool:
        return self.distance > 0


def outlier(metric: str, value: float | None, spread: Spread | None,
            rules: FlagRules) -> Outlier | None:
    """The outlier `value` is, if it is one: further than `rules.outlier_mads` normalised MADs
    from the median of a sample of at least `rules.outlier_min_sample`. A missing value, too
    small a sample or a distribution without spread (MAD 0) is never an outlier."""
    if value is None or spread is None or spread.size < rules.outlier_min_sample:
        return None
    if spread.mad <= 0:
        return None
    distance = (float(value) - spread.median) / spread.mad
    if abs(distance) <= rules.outlier_mads:
        return None
    return Outlier(metric, float(value), spread.median, distance, spread.size)
