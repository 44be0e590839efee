"""Flags before adjudication: the scored bids of a round that deserve a second look, and why.

Three reasons, one place: the CRM data behind the bid's frozen track record was older than the
rules' [flags] stale_crm_days; a scored metric lies far outside the bidder's branch; an admin
reset the bidder's password while the round was open. Read once the round is scored (before,
bids are sealed), never stored, and never an input to scoring or the ranking.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, String, bindparam, cast, literal_column, null, select, union_all
from sqlalchemy.orm import Session, aliased

from bidhub.config import Defaults
from bidhub.domain.flags import (
    METRIC_OUTLIER,
    RESET_BY_ADMIN,
    STALE_CRM,
    TRACK_RECORD_IMPORT_KINDS,
    FlagRules,
    Outlier,
    Spread,
    crm_age,
    distribution_since,
    is_stale,
    outlier,
    spread_of,
)
from bidhub.domain.metrics import METRICS
from bidhub.domain.rules import RuleSet
from bidhub.domain.scoring import finite_number
from bidhub.domain.text import N_, Text
from bidhub.models import (
    AuditEvent,
    Bid,
    BidScore,
    ImportRun,
    ImportStatus,
    Listing,
    Round,
    User,
)
from bidhub.services.rule_sets import parsed
from bidhub.services.users import password_resets_among

RESET_BY_ADMIN_NOTE = N_("An admin set this rep's password while the round was open, and could "
                         "have signed in as the rep; see the audit trail.")


@dataclass(frozen=True)
class BidFlag:
    """One reason to look at a bid again: its kind (a badge) and its explanation."""

    kind: str
    note: Text


class BidFacts(NamedTuple):
    """What the flags read of one bid: who bid, from which branch, when, with what record."""

    bid_id: int
    rep_id: int
    branch_id: int | None
    submitted_at: datetime
    track_record: Mapping


# What the flags read of a bid, as columns a caller may select beside its own (the record as
# its stored text: see `facts_of`).
FACT_COLUMNS = (Bid.id, Bid.rep_id, User.branch_id, Bid.submitted_at,
                cast(Bid.track_record, String).label("track_record"))


def tag(kind: str):
    """A constant text written in the SQL: the kind of a part of FLAG_INPUT_PARTS' shape
    (its first column), or a value compared with."""
    return literal_column(f"'{kind}'", String)


# Built once: composing a statement costs more than running it on a round of this size.
_FACTS = select(*FACT_COLUMNS).join(User, User.id == Bid.rep_id)
_SCORED_IN_ROUND = (_FACTS.join(BidScore, BidScore.bid_id == Bid.id)
                    .join(Listing, Listing.id == Bid.listing_id)
                    .where(Listing.round_id == bindparam("round_id")))
_SCORED_IN_LISTING = _SCORED_IN_ROUND.where(Listing.id == bindparam("listing_id"))
_CRM_IMPORTS = (select(ImportRun.finished_at)
                # The kinds written in the SQL, so that the statement binds no list.
                .where(ImportRun.kind.in_([tag(kind) for kind in TRACK_RECORD_IMPORT_KINDS]),
                       ImportRun.status == ImportStatus.IMPORTED,
                       ImportRun.finished_at.is_not(None))
                .order_by(ImportRun.finished_at))
# Every rep's latest bid's frozen record in a window, one index seek per rep
# (ix_bids_rep_submitted) rather than numbering every bid of the window; a rep's bids
# submitted at the same instant froze the same data, so the first one counts. Read as a
# column of each user (NULL for a user with no bid in the window, skipped by
# `flag_inputs_of`): joining bids on the latest one's id made PostgreSQL hash every bid.
_EARLIER = aliased(Bid)
_LATEST_RECORD = (select(cast(_EARLIER.track_record, String))
                  .where(_EARLIER.rep_id == User.id, _EARLIER.submitted_at > bindparam("since"),
                         _EARLIER.submitted_at <= bindparam("until"))
                  .order_by(_EARLIER.submitted_at.desc(), _EARLIER.id).limit(1)
                  .correlate(User).scalar_subquery())

# What the flags read besides the bids, as one statement of tagged rows (kind, id, count, at,
# text) that a caller may extend with its own parts of that shape: one round trip instead of
# three. The first part gives the columns their types.
_NO_ID = cast(null(), Integer)
NO_AT, NO_TEXT = cast(null(), ImportRun.finished_at.type), cast(null(), String)
IMPORT_ROW, RESET_ROW, REFERENCE_ROW = "import", "reset", "reference"


# The round's bidders whose password an admin set while the round was open (the audit event
# names its target "user:<id>"): its bidders are read in the statement, so that it binds no
# list, and its length and its plan stay the same whoever bid.
_ROUND_BIDDER_TARGETS = (select(literal_column("'user:'", String) + cast(Bid.rep_id, String))
                         .join(Listing, Listing.id == Bid.listing_id)
                         .where(Listing.round_id == bindparam("round_id")))
_RESET_TARGETS = password_resets_among(_ROUND_BIDDER_TARGETS)

FLAG_INPUT_PARTS = (
    _CRM_IMPORTS.with_only_columns(tag(IMPORT_ROW), _NO_ID, _NO_ID, ImportRun.finished_at,
                                   NO_TEXT).order_by(None),
    _RESET_TARGETS.with_only_columns(tag(RESET_ROW), _NO_ID, _NO_ID, NO_AT, AuditEvent.target),
    select(tag(REFERENCE_ROW), User.branch_id, _NO_ID, NO_AT, _LATEST_RECORD)
    .select_from(User),
)
_FLAG_INPUTS = union_all(*FLAG_INPUT_PARTS)


class FlagInputs(NamedTuple):
    """What a round's flags read besides its bids: when each CRM import a track record is
    computed from finished, in order; the bidders whose password an admin set while the
    round was open; the branch and the frozen record's text of every rep's latest bid in the
    distribution window before the round's deadline, of reps in a branch, in a stable order
    (the branches' reference bids)."""

    imports: tuple[datetime, ...]
    resets: frozenset[int]
    reference: tuple[tuple[int, str], ...]


def flag_input_params(round_: Round, zone: str = Defaults.TIMEZONE) -> dict:
    """The parameters of FLAG_INPUT_PARTS for the round; the distribution window's months are
    those of the department's time zone `zone`."""
    # The window of reps_with_password_reset_during_round: from the round's opening (or its
    # publication, if later) until its deadline; a round never published was never open.
    opened = None if round_.published_at is None else max(round_.opens_at, round_.published_at)
    return {"round_id": round_.id, "opened_at": opened or round_.closes_at,
            "closes_at": round_.closes_at,
            "since": distribution_since(round_.closes_at, ZoneInfo(zone)),
            "until": round_.closes_at}


def flag_inputs_of(rows) -> FlagInputs:
    """FlagInputs from the rows of FLAG_INPUT_PARTS (others' rows are skipped)."""
    imports, resets, reference = [], set(), []
    for kind, id_, _count, at, text in rows:
        if kind == IMPORT_ROW:
            imports.append(at)
        elif kind == RESET_ROW:
            resets.add(int(text.removeprefix("user:")))
        elif kind == REFERENCE_ROW and id_ is not None and text is not None:
            reference.append((id_, text))
    return FlagInputs(tuple(sorted(imports)), frozenset(resets), tuple(sorted(reference)))


def second_look_flags(session: Session, round_: Round, listing_id: int | None = None, *,
                      zone: str = Defaults.TIMEZONE) -> dict[int, tuple[BidFlag, ...]]:
    """The flags of the round's scored bids (of one listing, if given), by bid id; bids with
    none are left out. `zone` is the department's time zone, whose months the branches'
    distribution window counts."""
    if listing_id is None:
        rows = _read(session, _SCORED_IN_ROUND, round_id=round_.id)
    else:
        rows = _read(session, _SCORED_IN_LISTING, round_id=round_.id, listing_id=listing_id)
    return flags_of_bids(session, round_, [facts_of(row) for row in rows], zone=zone)


def facts_of(row) -> BidFacts:
    """A bid's facts from a row that starts with FACT_COLUMNS."""
    bid_id, rep_id, branch_id, submitted_at, record = row[:5]
    return BidFacts(bid_id, rep_id, branch_id, submitted_at, _frozen_record(record))


@lru_cache(maxsize=8192)
def _frozen_record(text: str | None) -> Mapping:
    """A frozen track record from its stored JSON text, read-only. Keyed by the text itself,
    so it can never answer for a record that changed; decoding every record on every view
    of a round was a sixth of the round page's time."""
    return MappingProxyType(json.loads(text) or {} if text else {})


def _read(session: Session, statement, **params) -> list:
    return session.connection().execute(statement, params).all()


def flags_of_bids(session: Session, round_: Round, bids: list[BidFacts],
                  inputs: FlagInputs | None = None, *,
                  zone: str = Defaults.TIMEZONE) -> dict[int, tuple[BidFlag, ...]]:
    """The flags of these scored bids of the round, by bid id; bids with none are left out.

    One statement whatever the number of bids (the CRM imports' finishing times, every rep's
    latest bid before the deadline for the branches' distributions, the password resets:
    FLAG_INPUT_PARTS), none when the caller read `inputs` with its own; the caller reads the
    bids, usually with what else it shows of them."""
    if not bids:
        return {}
    if inputs is None:
        inputs = flag_inputs_of(_read(session, _FLAG_INPUTS, **flag_input_params(round_, zone)))
    return flags_from(parsed(round_.rule_set), bids, inputs)


def flags_from(rules: RuleSet, bids: list[BidFacts],
               inputs: FlagInputs) -> dict[int, tuple[BidFlag, ...]]:
    """flags_of_bids' answer from what it reads."""
    imports, resets = inputs.imports, inputs.resets
    reachable = _reachable_from(inputs.reference, tuple(_scored_metrics(rules)), rules.flags)
    flags: dict[int, tuple[BidFlag, ...]] = {}
    for bid in sorted(bids, key=lambda bid: bid.bid_id):
        found = []
        # The newest CRM import finished at or before the submission froze its track record.
        last_import_at = imports[position - 1] if (
            position := bisect_right(imports, bid.submitted_at)) else None
        if imports and is_stale(bid.submitted_at, last_import_at, rules.flags.stale_crm_days):
            found.append(BidFlag(STALE_CRM, _stale_note(bid.submitted_at, last_import_at,
                                                        rules.flags)))
        found.extend(BidFlag(METRIC_OUTLIER, _outlier_note(found_outlier))
                     for found_outlier in _outliers(bid, reachable, rules.flags))
        if bid.rep_id in resets:
            found.append(BidFlag(RESET_BY_ADMIN, RESET_BY_ADMIN_NOTE))
        if found:
            flags[bid.bid_id] = tuple(found)
    return flags


@lru_cache(maxsize=32)
def _reachable_from(reference: tuple[tuple[int, str | None], ...], metrics: tuple[str, ...],
                    flag_rules: FlagRules) -> dict[int, list[tuple[str, Spread, float]]]:
    """`_reachable` of the branches' spreads of these reference bids. Kept per process keyed
    by everything it is computed from (each bid's branch and record text, the scored
    metrics, the rules' flags section), so a changed bid, branch or rule is a new key;
    read-only to callers."""
    return _reachable(_spreads([(branch_id, _frozen_record(record))
                                for branch_id, record in reference], list(metrics)),
                      flag_rules)


def _scored_metrics(rules: RuleSet) -> list[str]:
    """The track-record metrics the rules score (with a weight); plan_review is not one."""
    return [factor.metric for factor in rules.factors
            if factor.weight != 0 and factor.metric in METRICS]


def _spreads(reference: list[tuple[int, Mapping]],
             metrics: list[str]) -> dict[int, dict[str, Spread]]:
    """Each branch's spread of each scored metric over its reps' latest frozen values (the
    reference bids' branches and records), by branch id and metric; a branch too small for
    the rules is kept (`outlier` says no)."""
    values: dict[int, dict[str, list[float | None]]] = defaultdict(lambda: defaultdict(list))
    for branch_id, record in reference:
        for metric in metrics:
            values[branch_id][metric].append(finite_number(record.get(metric)))
    return {branch_id: {metric: spread for metric, listed in by_metric.items()
                        if (spread := spread_of(listed)) is not None}
            for branch_id, by_metric in values.items()}


# Below this relative margin, rounding cannot make `outlier` disagree with the check below.
_REACH_MARGIN = 1e-9


def _reachable(spreads: dict[int, dict[str, Spread]],
               flag_rules: FlagRules) -> dict[int, list[tuple[str, Spread, float]]]:
    """Each branch's spreads that can make an outlier, with the distance from the median
    within which no value is one (a little inside `outlier`'s own bound): most values of
    most bids are that close and skip `outlier`; the rest are judged by it."""
    return {branch_id: [(metric, spread,
                         flag_rules.outlier_mads * spread.mad * (1 - _REACH_MARGIN))
                        for metric, spread in by_metric.items()
                        if spread.size >= flag_rules.outlier_min_sample and spread.mad > 0]
            for branch_id, by_metric in spreads.items()}


def _outliers(bid: BidFacts, reachable: dict[int, list[tuple[str, Spread, float]]],
              flag_rules: FlagRules) -> list[Outlier]:
    found = []
    for metric, spread, reach in reachable.get(bid.branch_id, ()):
        value = bid.track_record.get(metric)
        if isinstance(value, int | float) and abs(value - spread.median) <= reach:
            continue
        result = outlier(metric, finite_number(value), spread, flag_rules)
        if result is not None:
            found.append(result)
    return found


def _stale_note(submitted_at: datetime, last_import_at: datetime | None,
                flag_rules: FlagRules) -> Text:
    age = crm_age(submitted_at, last_import_at)
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
