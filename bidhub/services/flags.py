"""Flags before adjudication: the scored bids of a round that deserve a second look, and why.

Three reasons, one place: the CRM data behind the bid's frozen track record was older than the
rules' [flags] stale_crm_days; a scored metric lies far outside the bidder's branch; an admin
reset the bidder's password while the round was open. Read once the round is scored (before,
bids are sealed), never stored, and never an input to scoring or the ranking.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select, true
from sqlalchemy.orm import Session

from bidhub.domain.flags import (
    DISTRIBUTION_MONTHS,
    METRIC_OUTLIER,
    RESET_BY_ADMIN,
    STALE_CRM,
    TRACK_RECORD_IMPORT_KINDS,
    FlagRules,
    Outlier,
    Spread,
    crm_age,
    is_stale,
    outlier,
    spread_of,
)
from bidhub.domain.metrics import METRICS, months_before
from bidhub.domain.rules import RuleSet
from bidhub.domain.text import N_, Text
from bidhub.models import Bid, BidScore, ImportRun, ImportStatus, Listing, Round, User
from bidhub.services.rule_sets import parsed
from bidhub.services.users import reps_with_password_reset_during_round

RESET_BY_ADMIN_NOTE = N_("An admin set this rep's password while the round was open, and could "
                         "have signed in as the rep; see the audit trail.")


@dataclass(frozen=True)
class BidFlag:
    """One reason to look at a bid again: its kind (a badge) and its explanation."""

    kind: str
    note: Text


@dataclass(frozen=True)
class _Row:
    bid_id: int
    rep_id: int
    branch_id: int | None
    submitted_at: datetime
    track_record: dict
    last_import_at: datetime | None


def second_look_flags(session: Session, round_: Round,
                      listing_id: int | None = None) -> dict[int, tuple[BidFlag, ...]]:
    """The flags of the round's scored bids (of one listing, if given), by bid id; bids with
    none are left out. Two statements whatever the number of bids: the bids with their last
    CRM import, beside the bids that make the branches' distributions; the password resets."""
    rules = parsed(round_.rule_set)
    rows, reference, ever_imported = _read(session, round_, listing_id)
    resets = reps_with_password_reset_during_round(session, round_, {row.rep_id for row in rows})
    spreads = _spreads(reference, _scored_metrics(rules))
    flags: dict[int, tuple[BidFlag, ...]] = {}
    for row in rows:
        found = []
        if ever_imported and is_stale(row.submitted_at, row.last_import_at,
                                      rules.flags.stale_crm_days):
            found.append(BidFlag(STALE_CRM, _stale_note(row, rules.flags)))
        found.extend(BidFlag(METRIC_OUTLIER, _outlier_note(found_outlier))
                     for found_outlier in _outliers(row, spreads, rules.flags))
        if row.rep_id in resets:
            found.append(BidFlag(RESET_BY_ADMIN, RESET_BY_ADMIN_NOTE))
        if found:
            flags[row.bid_id] = tuple(found)
    return flags


def _read(session: Session, round_: Round,
          listing_id: int | None) -> tuple[list[_Row], list[_Row], bool]:
    """The round's scored bids; every rep's latest bid in the distribution window (the
    reference); whether a CRM export of the track record's kinds was ever imported."""
    crm_runs = (ImportRun.kind.in_(TRACK_RECORD_IMPORT_KINDS),
                ImportRun.status == ImportStatus.IMPORTED, ImportRun.finished_at.is_not(None))
    last_import = (select(func.max(ImportRun.finished_at))
                   .where(*crm_runs, ImportRun.finished_at <= Bid.submitted_at)
                   .correlate(Bid).scalar_subquery())
    ever_imported = select(ImportRun.id).where(*crm_runs).exists()
    since = months_before(round_.closes_at, DISTRIBUTION_MONTHS)
    latest = (select(Bid.rep_id, func.max(Bid.submitted_at).label("at"))
              .where(Bid.submitted_at > since, Bid.submitted_at <= round_.closes_at)
              .group_by(Bid.rep_id).subquery())
    in_round = and_(Listing.round_id == round_.id, BidScore.bid_id.is_not(None),
                    Listing.id == listing_id if listing_id is not None else true())
    result = session.execute(
        select(Bid.id, Bid.rep_id, User.branch_id, Bid.submitted_at, Bid.track_record,
               last_import.label("last_import_at"), case((in_round, 1), else_=0).label("in_round"),
               case((latest.c.rep_id.is_not(None), 1), else_=0).label("is_reference"),
               ever_imported.label("ever_imported"))
        .join(User, User.id == Bid.rep_id).join(Listing, Listing.id == Bid.listing_id)
        .outerjoin(BidScore, BidScore.bid_id == Bid.id)
        .outerjoin(latest, and_(latest.c.rep_id == Bid.rep_id, latest.c.at == Bid.submitted_at))
        .where(or_(in_round, latest.c.rep_id.is_not(None)))
        .order_by(Bid.id)).all()
    rows, reference, seen_reps = [], [], set()
    for found in result:
        row = _Row(found.id, found.rep_id, found.branch_id, found.submitted_at,
                   found.track_record or {}, found.last_import_at)
        if found.in_round:
            rows.append(row)
        # A rep's bids submitted at the same instant froze the same data: one counts.
        if found.is_reference and row.rep_id not in seen_reps:
            seen_reps.add(row.rep_id)
            reference.append(row)
    return rows, reference, bool(result) and bool(result[0].ever_imported)


def _scored_metrics(rules: RuleSet) -> list[str]:
    """The track-record metrics the rules score (with a weight); plan_review is not one."""
    return [factor.metric for factor in rules.factors
            if factor.weight != 0 and factor.metric in METRICS]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _spreads(reference: list[_Row], metrics: list[str]) -> dict[int, dict[str, Spread]]:
    """Each branch's spread of each scored metric over its reps' latest frozen values, by
    branch id and metric; a branch too small for the rules is kept (`outlier` says no)."""
    values: dict[int, dict[str, list[float | None]]] = defaultdict(lambda: defaultdict(list))
    for row in reference:
        if row.branch_id is None:
            continue
        for metric in metrics:
            values[row.branch_id][metric].append(_number(row.track_record.get(metric)))
    return {branch_id: {metric: spread for metric, listed in by_metric.items()
                        if (spread := spread_of(listed)) is not None}
            for branch_id, by_metric in values.items()}


def _outliers(row: _Row, spreads: dict[int, dict[str, Spread]],
              flag_rules: FlagRules) -> list[Outlier]:
    found = []
    for metric, spread in spreads.get(row.branch_id, {}).items():
        result = outlier(metric, _number(row.track_record.get(metric)), spread, flag_rules)
        if result is not None:
            found.append(result)
    return found


def _stale_note(row: _Row, flag_rules: FlagRules) -> Text:
    age = crm_age(row.submitted_at, row.last_import_at)
    if age is None:
        return N_("No CRM export of opportunities, forecasts or incidents had been imported "
                  "when this bid was submitted, so its track record holds no CRM data.")
    return N_("The newest CRM import (opportunities, forecasts or incidents) was %(days)s days "
              "old when this bid was submitted; the rules allow %(limit)d.",
              days=f"{age.total_seconds() / 86400:.1f}", limit=flag_rules.stale_crm_days)


def _shown(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"


def _outlier_note(found: Outlier) -> Text:
    label = Text(METRICS[found.metric].label)  # the registry's labels are in the catalogue
    values = {"metric": label, "value": _shown(found.value), "median": _shown(found.median),
              "distance": f"{abs(found.distance):.1f}", "reps": found.sample}
    if found.is_above:
        return N_("%(metric)s is %(value)s, far above the branch's median of %(median)s "
                  "(%(distance)s MADs, among %(reps)d reps' latest bids).", **values)
    return N_("%(metric)s is %(value)s, far below the branch's median of %(median)s "
              "(%(distance)s MADs, among %(reps)d reps' latest bids).", **values)
