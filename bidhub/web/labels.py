"""Words for the codes the database stores: every code a person can see has its label here.

Templates print a code through the `label` filter (`{{ incident.status|label(IncidentStatus) }}`,
`{{ account.ownership_type|label('ownership') }}`), forms build their choices from these
mappings, so a raw value such as `ka_manager` or `round_award` never reaches a page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from flask import Flask
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from bidhub.domain.collation import name_key
from bidhub.domain.facts import STAGE_PROBABILITY, Stage
from bidhub.domain.metrics import METRICS
from bidhub.domain.preferences import PREFERENCE_BONUS
from bidhub.domain.reviews import PLAN_REVIEW
from bidhub.models import (
    AppealStatus,
    BidStatus,
    DecisionKind,
    DeliveryStatus,
    ExecutiveTitle,
    FilingKind,
    ImportStatus,
    IncidentStatus,
    ListingStatus,
    LossReviewStatus,
    ReleaseReason,
    RepStatus,
    Role,
    RoundStatus,
    TransferRequestStatus,
)
from bidhub.services.accountability import AdType, Outcome, PageArea
from bidhub.services.policies import BidOutcome
from bidhub.web.i18n import kept_with_catalogue

ROLE_LABELS = {Role.REP: _l("KA sales rep"), Role.KA_MANAGER: _l("KA manager"),
               Role.ADMIN: _l("Admin"), Role.EXECUTIVE: _l("Executive")}
REP_STATUS_LABELS = {RepStatus.ACTIVE: _l("Active"), RepStatus.ON_LEAVE: _l("On leave"),
                     RepStatus.LEFT: _l("Left the company")}
RELEASE_REASON_LABELS = {
    ReleaseReason.REP_LEFT: _l("Rep left the company"),
    ReleaseReason.OVER_CAPACITY: _l("Rep over capacity"),
    ReleaseReason.NEGLECTED: _l("Account neglected"),
    ReleaseReason.ACCOUNTABILITY: _l("Accountability (competitor ads)"),
    ReleaseReason.EXECUTIVE_DECISION: _l("Executive decision"),
    ReleaseReason.OTHER: _l("Other (say which)"),
}
ROUND_STATUS_LABELS = {RoundStatus.DRAFT: _l("Draft"), RoundStatus.PUBLISHED: _l("Published"),
                       RoundStatus.IN_REVIEW: _l("In blind review"),
                       RoundStatus.SCORED: _l("Scored, awaiting decisions"),
                       RoundStatus.STANDSTILL: _l("Announced, in the standstill window"),
                       RoundStatus.RESULTS_PUBLISHED: _l("Results announced"),
                       RoundStatus.CANCELLED: _l("Cancelled")}
LISTING_STATUS_LABELS = {
    ListingStatus.AWAITING_CONFIRMATION: _l("Awaiting the sponsor's confirmation"),
    ListingStatus.LISTED: _l("Listed"),
    ListingStatus.DECIDED: _l("Decided"),
    ListingStatus.AWARDED: _l("Awarded"),
    ListingStatus.NOT_AWARDED: _l("Not awarded"),
    ListingStatus.REFUSED: _l("Release refused by the sponsor"),
    ListingStatus.CANCELLED: _l("Cancelled"),
}
APPEAL_STATUS_LABELS = {AppealStatus.PENDING: _l("Awaiting an answer"),
                        AppealStatus.UPHELD: _l("Appeal upheld"),
                        AppealStatus.REJECTED: _l("Appeal rejected")}
# The two answers management gives an appeal, as the answer form offers them.
APPEAL_OUTCOME_LABELS = {
    AppealStatus.UPHELD: _l("Uphold: the listing goes back to decision"),
    AppealStatus.REJECTED: _l("Reject: the decision stands"),
}
BID_STATUS_LABELS = {BidStatus.ACTIVE: _l("Active bid"), BidStatus.WITHDRAWN: _l("Withdrawn")}
BID_OUTCOME_LABELS = {BidOutcome.WITHDRAWN: _l("Withdrawn"),
                      BidOutcome.NOT_DECIDED: _l("Awaiting results"),
                      BidOutcome.WON: _l("Won"), BidOutcome.LOST: _l("Not won")}
DECISION_KIND_LABELS = {DecisionKind.ACCEPTED: _l("Ranking accepted"),
                        DecisionKind.OVERRIDDEN: _l("Ranking overridden"),
                        DecisionKind.NO_AWARD: _l("No award")}
# What the manager chooses on the decision form: the same decisions, said as actions.
DECISION_CHOICE_LABELS = {DecisionKind.ACCEPTED: _l("Accept the ranking"),
                          DecisionKind.OVERRIDDEN: _l("Award to another eligible bidder"),
                          DecisionKind.NO_AWARD: _l("No award; re-release later")}
FILING_KIND_LABELS = {FilingKind.ROUND_AWARD: _l("Award in a bidding round"),
                      FilingKind.DIRECT_TRANSFER: _l("Direct transfer"),
                      FilingKind.CRM_IMPORT: _l("CRM import")}
LOSS_REVIEW_STATUS_LABELS = {LossReviewStatus.DUE: _l("Review due"),
                             LossReviewStatus.SUBMITTED: _l("Review submitted"),
                             LossReviewStatus.CLOSED: _l("Review closed"),
                             LossReviewStatus.WITHDRAWN: _l("Withdrawn: the account stayed")}
DELIVERY_STATUS_LABELS = {DeliveryStatus.PENDING: _l("Waiting to be sent"),
                          DeliveryStatus.SENT: _l("Sent"), DeliveryStatus.FAILED: _l("Not delivered")}
IMPORT_STATUS_LABELS = {ImportStatus.IMPORTED: _l("Imported"), ImportStatus.REFUSED: _l("Refused")}
INCIDENT_STATUS_LABELS = {IncidentStatus.OPEN: _l("Awaiting explanation"),
                          IncidentStatus.EXPLAINED: _l("Explained"),
                          IncidentStatus.ACCEPTED: _l("Explanation accepted"),
                          IncidentStatus.UPHELD: _l("Upheld")}
INCIDENT_OUTCOME_LABELS = {Outcome.ACCEPTED: _l("Accept the explanation"),
                           Outcome.UPHELD: _l("Uphold the incident")}
AD_TYPE_LABELS = {AdType.LOGO: _l("Logo"), AdType.BANNER: _l("Banner"),
                  AdType.TEXT: _l("Text ad"), AdType.JOB_POST: _l("Job post")}
PAGE_AREA_LABELS = {PageArea.HOME_PAGE: _l("Home page"),
                    PageArea.SPECIAL_SECTION: _l("Special section"),
                    PageArea.OTHER: _l("Other page")}
STAGE_LABELS = {Stage.POTENTIAL: _l("Potential customer"), Stage.INTENT: _l("Intent"),
                Stage.PROPOSAL: _l("Proposal"), Stage.NEGOTIATION: _l("Negotiation"),
                Stage.WON: _l("Closed-won"), Stage.LOST: _l("Lost")}
# The registry's metric labels (bidhub/domain/metrics.py), marked for the catalogue; a test
# keeps the English the same as the registry's.
METRIC_LABELS = {"win_rate": _l("Win rate"), "accounts_held": _l("Accounts held"),
                 "tenure_months": _l("Tenure (months)"),
                 "open_incidents": _l("Open accountability incidents"),
                 "stage_conversion": _l("Stage conversion"),
                 "forecast_accuracy": _l("Forecast accuracy"),
                 "weighted_pipeline": _l("Weighted pipeline"),
                 "revenue_attainment": _l("Revenue attainment"),
                 "industry_experience": _l("Industry experience"),
                 "capacity_headroom": _l("Capacity headroom"),
                 "accountability_incidents": _l("Accountability incidents"),
                 "retention": _l("Retention"),
                 "unreviewed_losses": _l("Unreviewed losses"),
                 "commitment_kept": _l("Commitments kept")}
# Over what each metric is worked out (the registry's windows), shown beside its value.
METRIC_WINDOWS = {"win_rate": _l("opportunities closed in the last 12 months"),
                  "accounts_held": _l("now"), "tenure_months": _l("since the hire date"),
                  "open_incidents": _l("open or upheld, all time"),
                  "stage_conversion": _l("opportunities opened in the last 12 months"),
                  "forecast_accuracy": _l("last 6 complete months with an actual"),
                  "weighted_pipeline": _l("opportunities open now"),
                  "revenue_attainment": _l("last 6 complete months with an actual"),
                  "industry_experience": _l("opportunities won in the last 24 months"),
                  "capacity_headroom": _l("below 40 accounts, now"),
                  "accountability_incidents": _l("seen in the last 6 months"),
                  "retention": _l("losses in the last 12 months"),
                  "unreviewed_losses": _l("losses in the last 12 months"),
                  "commitment_kept": _l("12 months after each award took effect")}


# plan_review is read from a round's blind review, not the track record (domain/reviews.py).
PLAN_REVIEW_LABEL = _l("Plan review")
# The breakdown line of ranked preferences in bonus mode; its raw value is the rep's choice.
PREFERENCE_BONUS_LABEL = _l("Preference bonus (choice)")
# The normaliser registry's labels (bidhub/domain/normalisers.py), likewise.
NORMALISER_LABELS = {"minmax": _l("Min-max over the round"), "cap": _l("Share of a cap"),
                     "logistic": _l("S-curve"), "rank": _l("Percentile rank in the round")}
# Codes stored as plain strings (the import parsers map the Chinese words onto them).
OWNERSHIP_LABELS = {"private": _l("Private"), "state_owned": _l("State-owned"),
                    "joint_venture": _l("Sino-foreign joint venture"),
                    "government": _l("Government agency"), "listed": _l("Listed company")}
SPONSOR_LABELS = {"president": _l("President"), "ka_vice_president": _l("KA vice-president"),
                  "branch_general_manager": _l("Branch general manager")}
TRANSFER_REQUEST_STATUS_LABELS = {
    TransferRequestStatus.WAITING: _l("Waiting for the sponsor"),
    TransferRequestStatus.ACCEPTED: _l("Accepted by the sponsor and filed"),
    TransferRequestStatus.REFUSED: _l("Refused by the sponsor"),
    TransferRequestStatus.WITHDRAWN: _l("Withdrawn"),
}
CONTACT_ROLE_LABELS = {"decision_maker": _l("Decision maker"), "user": _l("User"),
                       "purchaser": _l("Purchaser"), "contact": _l("Day-to-day contact")}

# Templates name a set of labels by its enum (a template global) or by one of these names.
LABELS: dict[Any, Mapping[str, Any]] = {
    Role: ROLE_LABELS, RepStatus: REP_STATUS_LABELS, ReleaseReason: RELEASE_REASON_LABELS,
    RoundStatus: ROUND_STATUS_LABELS, ListingStatus: LISTING_STATUS_LABELS,
    BidStatus: BID_STATUS_LABELS, BidOutcome: BID_OUTCOME_LABELS,
    DecisionKind: DECISION_KIND_LABELS, FilingKind: FILING_KIND_LABELS,
    ImportStatus: IMPORT_STATUS_LABELS, IncidentStatus: INCIDENT_STATUS_LABELS,
    DeliveryStatus: DELIVERY_STATUS_LABELS, AppealStatus: APPEAL_STATUS_LABELS,
    Outcome: INCIDENT_OUTCOME_LABELS, AdType: AD_TYPE_LABELS, PageArea: PAGE_AREA_LABELS,
    Stage: STAGE_LABELS, LossReviewStatus: LOSS_REVIEW_STATUS_LABELS,
    ExecutiveTitle: SPONSOR_LABELS, TransferRequestStatus: TRANSFER_REQUEST_STATUS_LABELS,
    "role": ROLE_LABELS, "rep_status": REP_STATUS_LABELS,
    "release_reason": RELEASE_REASON_LABELS, "round_status": ROUND_STATUS_LABELS,
    "listing_status": LISTING_STATUS_LABELS, "bid_status": BID_STATUS_LABELS,
    "bid_outcome": BID_OUTCOME_LABELS, "decision_kind": DECISION_KIND_LABELS,
    "filing_kind": FILING_KIND_LABELS, "import_status": IMPORT_STATUS_LABELS,
    "delivery_status": DELIVERY_STATUS_LABELS, "appeal_status": APPEAL_STATUS_LABELS,
    "incident_status": INCIDENT_STATUS_LABELS, "incident_outcome": INCIDENT_OUTCOME_LABELS,
    "ad_type": AD_TYPE_LABELS, "page_area": PAGE_AREA_LABELS, "stage": STAGE_LABELS,
    "ownership": OWNERSHIP_LABELS,
    "sponsor": SPONSOR_LABELS, "contact_role": CONTACT_ROLE_LABELS,
    "loss_review_status": LOSS_REVIEW_STATUS_LABELS,
}


def label(value: Any, kind: Any = None) -> str:
    """The label of a stored code in the page's language; an unknown code is shown as it is.

    `kind` is an enum or a name in LABELS; an enum member needs none. An unknown code is data
    (an ownership type from an old import, say) rather than a code of ours, so it is shown.
    """
    if value is None or value == "":
        return ""
    if kind is None and isinstance(value, Enum):
        kind = type(value)
    if kind is None:
        return _unambiguous_label(str(value))
    labels = LABELS.get(kind)
    if labels is None:
        raise KeyError(f"no labels for {kind!r}")
    text = labels.get(str(value.value if isinstance(value, Enum) else value))
    return str(value) if text is None else str(text)


def _unambiguous_label(value: str) -> str:
    """A code's label when only one set of labels knows it ("refused"), else the code."""
    found = {str(labels[value]) for kind, labels in LABELS.items()
             if isinstance(kind, type) and value in labels}
    return found.pop() if len(found) == 1 else value


def metric_label(name: str) -> str:
    """A metric's label in the page's language; a metric no longer registered shows its name."""
    text = METRIC_LABELS.get(name)
    if text is not None:
        return str(text)
    if name == PLAN_REVIEW:
        return str(PLAN_REVIEW_LABEL)
    if name == PREFERENCE_BONUS:
        return str(PREFERENCE_BONUS_LABEL)
    metric = METRICS.get(name)
    return name if metric is None else str(metric.label)


def normaliser_label(name: str) -> str:
    """A normaliser's label in the page's language; one no longer registered shows its name."""
    text = NORMALISER_LABELS.get(name)
    return name if text is None else str(text)


def stage_label(stage: Stage | str) -> str:
    """A funnel stage with its win probability, e.g. "Intent (30%)"; lost has none."""
    stage = Stage(stage)
    name = label(stage, Stage)
    if stage is Stage.LOST:
        return name
    return _("%(stage)s (%(probability)d%%)", stage=name,
             probability=round(STAGE_PROBABILITY[stage] * 100))


# Notes bidhub writes itself (bidhub/services/rule_sets.py), shown in the page's language;
# a note a person wrote is shown as written.
SYSTEM_NOTES = {"initial rules": _l("initial rules")}


def system_note(note: str | None) -> str:
    text = SYSTEM_NOTES.get(note or "")
    return (note or "") if text is None else str(text)


def is_chinese_page() -> bool:
    return str(get_locale() or "").startswith("zh")


def handbook_term(term: str) -> Markup:
    """The handbook's Chinese word beside an English heading; a Chinese page already says it."""
    if is_chinese_page():
        return Markup("")
    return Markup('<small lang="zh-CN">{}</small>').format(escape(term))


# Keys of labels among the page catalogue's kept translations (i18n.page_catalogue); no msgid
# is a tuple that starts with this.
_LABEL = object()


def cached_label(value: Any, kind: Any = None) -> str:
    """`label`, kept with the page's catalogue: a label depends only on the code and the
    language, and a list shows the same few codes on every row."""
    # An enum member names its own kind: "active" is a rep's status or a bid's.
    key = (_LABEL, type(value) if kind is None and isinstance(value, Enum) else kind, str(value))
    return kept_with_catalogue(key, lambda: label(value, kind))


def in_label_order(codes: Iterable[Any], kind: Any = None) -> list[Any]:
    """`codes` (the ownership types a menu offers, say) ordered by their labels in the page's
    language, as menus order names (domain.collation): pinyin order on a Chinese page,
    alphabetical on an English one; then by code."""
    return sorted(codes, key=lambda code: (name_key(cached_label(code, kind)), str(code)))


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(label=cached_label, label_order=in_label_order,
                                 stage_label=stage_label,
                                 metric_label=metric_label, system_note=system_note)
    app.jinja_env.globals.update(handbook_term=handbook_term, Stage=Stage, AdType=AdType,
                                 PageArea=PageArea)
