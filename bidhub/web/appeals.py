"""What the pages show of the standstill window (公示期): appeals, answers and cancellations."""

from __future__ import annotations

from dataclasses import dataclass, field

from bidhub.clock import now
from bidhub.models import (
    Appeal,
    AppealStatus,
    Bid,
    BidStatus,
    Listing,
    ListingStatus,
    Round,
    RoundStatus,
    User,
)
from bidhub.services import appeals, policies, replays
from bidhub.services.policies import BidOutcome
from bidhub.services.rule_sets import parsed
from bidhub.web.forms import AppealForm, CancelForm
from bidhub.web.labels import APPEAL_OUTCOME_LABELS


def rep_appeals(session, rep: User, round_: Round, bids: list[Bid], *,
                form: AppealForm | None = None, form_listing_id: int | None = None,
                page: str = "bid") -> dict:
    """The window as a bidder sees it: its end, their appeals, and a form for each listing
    they bid for, did not win and have not appealed yet (only while the window is open)."""
    window_open = appeals.appeal_window_open(round_, now())
    mine: dict[int, Appeal] = {}
    for bid in bids:
        for appeal in appeals.appeals_of_listing(session, bid.listing_id):
            if appeal.appellant_id == rep.id:
                mine[bid.listing_id] = appeal
    forms: dict[int, AppealForm] = {}
    outcomes = policies.bid_outcomes(session, bids) if window_open else {}
    for bid in bids:
        refused = form is not None and bid.listing_id == form_listing_id
        # A refused form comes back with its message even where no new one would be offered.
        if not refused and (not window_open or bid.listing_id in mine
                            or bid.status != BidStatus.ACTIVE
                            or bid.listing.status != ListingStatus.DECIDED
                            or outcomes[bid.id] == BidOutcome.WON):
            continue
        shown = form if refused else AppealForm(formdata=None, page=page)
        # Several forms share a page: each textarea gets an id of its own for its label.
        shown.ground.id = shown.ground.label.field_id = f"ground-{bid.listing_id}"
        forms[bid.listing_id] = shown
    return {"in_standstill": round_.status == RoundStatus.STANDSTILL,
            "appeal_window_open": window_open, "my_appeals": mine, "appeal_forms": forms}


@dataclass
class ListingEffect:
    """One listing of a round in its window: whether it took effect, its appeals, what may
    still be done to it."""

    listing: Listing
    appeals: list[Appeal] = field(default_factory=list)

    @property
    def is_cancelled(self) -> bool:
        return self.listing.status == ListingStatus.CANCELLED

    @property
    def is_applied(self) -> bool:
        return self.listing.applied_at is not None

    @property
    def is_reopened(self) -> bool:
        """An upheld appeal sent it back to decision: the manager decides it again."""
        return not self.is_cancelled and self.listing.status == ListingStatus.LISTED

    @property
    def has_pending_appeal(self) -> bool:
        return any(appeal.status == AppealStatus.PENDING for appeal in self.appeals)

    @property
    def may_cancel(self) -> bool:
        return not (self.is_cancelled or self.is_applied)


def round_effects(session, round_: Round, listings: list[Listing]) -> dict:
    """The round page's standstill part: each listing's effect and appeals, the answer and
    cancellation forms."""
    in_window = round_.status == RoundStatus.STANDSTILL
    announced = in_window or round_.status in (RoundStatus.RESULTS_PUBLISHED,
                                               RoundStatus.CANCELLED)
    effects = {}
    if announced:
        of_listing = appeals.appeals_of_listings(session, [listing.id for listing in listings])
        effects = {listing.id: ListingEffect(listing, of_listing[listing.id])
                   for listing in listings}
    may_cancel_round = round_.status not in (RoundStatus.RESULTS_PUBLISHED,
                                             RoundStatus.CANCELLED)
    return {"in_standstill": in_window, "effects": effects,
            "appeal_window_open": appeals.appeal_window_open(round_, now()),
            "reopened": {listing_id for listing_id, effect in effects.items()
                         if in_window and effect.is_reopened},
            "changed_decisions": (appeals.sent_back_for_changed_decision(session, listings)
                                  if in_window else set()),
            # Kept for good: the audit record is all that is left of such a decision.
            "refused_decisions": (replays.refused_decisions(session, round_.id)
                                  if announced else []),
            "may_cancel_round": may_cancel_round, **answering()}


def announces_first(round_: Round) -> bool:
    """Whether publishing this round's results opens a standstill window instead of
    transferring at once (its pinned rules set an appeal window)."""
    return parsed(round_.rule_set).appeal_window_working_days > 0


def load_appeal(session, appeal_id: int) -> Appeal | None:
    return session.get(Appeal, appeal_id)


def is_upheld(outcome: str | None) -> bool:
    return outcome == AppealStatus.UPHELD


def reopened_in_standstill(listing: Listing) -> bool:
    """An upheld appeal sent the listing back to decision while its round is announced."""
    return (listing.round.status == RoundStatus.STANDSTILL
            and ListingEffect(listing).is_reopened)


def answering() -> dict:
    """What every page that shows an appeal's answer form needs besides the appeal."""
    return {"outcome_choices": [(str(value), str(text))
                                for value, text in APPEAL_OUTCOME_LABELS.items()]}


def cancel_form(version: int | None = None) -> CancelForm:
    return CancelForm(formdata=None, version="" if version is None else str(version))


def answered_appeals(session, rounds: list[Round]) -> list[Appeal]:
    """Answered appeals of the rounds still in their window, latest answer first."""
    found = [appeal for round_ in rounds if round_.status == RoundStatus.STANDSTILL
             for listing in round_.listings
             for appeal in appeals.appeals_of_listing(session, listing.id)
             if appeal.status != AppealStatus.PENDING]
    return sorted(found, key=lambda appeal: (appeal.answered_at or appeal.filed_at, appeal.id),
                  reverse=True)
