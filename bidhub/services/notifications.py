"""Notifications: who is told of which event, the inbox, and delivery outside the app.

An event becomes inbox items through `notify(session, kind, subject, now)`, called inside the
use case where the event happens, so the items commit (or roll back) with it. Each kind is a
`Kind` in the `KINDS` registry: what identifies one event of it, and who gets which message
about it. Adding a kind (an appeal filed or answered, say) is one entry there plus the
one-line `notify` call in the use case.

Exactly once: an event is claimed in `notification_events` and each item is unique per
recipient and event, both written insert-if-absent, so a scheduler job that runs twice or on
two instances never tells anybody twice.

An item's text is an English msgid with parameters, rendered in the reader's language when it
is shown; a parameter whose name ends in `_at` is a UTC instant (ISO text), shown in local time.

Delivery outside the app (e-mail, a webhook) is off unless configured. When it is on, an
outbox row is written with the item, in the same transaction; `send_due_deliveries`, run by
the scheduler and never by the request that caused the event, sends them with retries.
"""

from __future__ import annotations

import contextlib
import json
import smtplib
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from math import ceil
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, selectinload, sessionmaker

from bidhub.db import end_read, unit_of_work
from bidhub.domain.errors import InvalidRequest, NotFound, PermissionDenied
from bidhub.domain.facts import NOT_REP, unavailability
from bidhub.domain.text import N_, Text
from bidhub.models import (
    AccountabilityIncident,
    AccountReview,
    Appeal,
    AppealStatus,
    Bid,
    BidStatus,
    Decision,
    DeliveryStatus,
    IncidentStatus,
    Listing,
    ListingStatus,
    Notification,
    NotificationDelivery,
    NotificationEvent,
    RepStatus,
    Role,
    Round,
    RoundReviewer,
    RoundStatus,
    TransferRequest,
    TransferRequestStatus,
    User,
)
from bidhub.services.audit import record_audit
from bidhub.services.rule_sets import parsed

CHANNELS_INFO_KEY = "bidhub_notification_channels"
PER_PAGE = 20
INSERT_CHUNK = 500
# Deliveries: a claimed delivery is not taken by another run for this long (a send that
# hangs ends well before, at SEND_TIMEOUT_SECONDS); failed attempts wait longer each time.
CLAIM_LEASE = timedelta(minutes=10)
SEND_TIMEOUT_SECONDS = 15
MAX_ATTEMPTS = 8
MAX_RETRY_DELAY = timedelta(hours=6)
DELIVERIES_PER_RUN = 100
# A run starts no send after this long, so that a mail server that is slow or does not answer
# (each attempt may wait SEND_TIMEOUT_SECONDS) holds up the scheduler's other jobs, such as
# scoring a round at its deadline, by this and one send at most; the rest waits for the next run.
SEND_BUDGET_SECONDS = 20


# --- what an event says, to whom ---------------------------------------------------------------

@dataclass(frozen=True)
class Link:
    """The page to act on: an endpoint and its arguments (URLs are built when shown)."""

    endpoint: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    recipient_id: int
    text: Text
    link: Link
    part: str = ""  # tells apart several items of one event for one recipient


@dataclass(frozen=True)
class Kind:
    name: str
    audience: str  # who is told, in words (README and tests read it)
    event: Callable[[Any], str]  # the subject's identity: one event per value
    messages: Callable[[Session, Any], Iterable[Message]]


def instant(value: datetime) -> str:
    """A UTC instant as a message parameter (its name must end in `_at`)."""
    return value.isoformat()


def reps_who_may_bid(session: Session, round_: Round) -> list[User]:
    """The reps a round is for: active reps, on duty if the round's rules exclude those on
    leave, and of the round's branch if its rules allow only one's own branch's accounts."""
    policy = parsed(round_.rule_set).eligibility
    query = select(User).where(User.role == Role.REP, User.is_active,
                               User.status != RepStatus.LEFT)
    if policy.exclude_on_leave:
        query = query.where(User.status == RepStatus.ACTIVE)
    if policy.same_branch_only and round_.branch_id is not None:
        query = query.where(User.branch_id == round_.branch_id)
    return list(session.scalars(query.order_by(User.id)))


def active_users_with_role(session: Session, role: Role) -> list[User]:
    return list(session.scalars(select(User).where(User.role == role, User.is_active)
                                .order_by(User.id)))


def _round_opened(session: Session, round_: Round) -> Iterator[Message]:
    text = N_("Round “%(round)s” is open for bids until %(closes_at)s.",
              round=round_.title, closes_at=instant(round_.closes_at))
    link = Link("market.round_listings", {"round_id": round_.id})
    for rep in reps_who_may_bid(session, round_):
        yield Message(rep.id, text, link)


def _deadline_reminder(with_bids: str, without_bids: str):
    def messages(session: Session, round_: Round) -> Iterator[Message]:
        bids = dict(session.execute(
            select(Bid.rep_id, func.count()).join(Listing)
            .where(Listing.round_id == round_.id, Bid.status == BidStatus.ACTIVE)
            .group_by(Bid.rep_id)).all())
        link = Link("market.round_listings", {"round_id": round_.id})
        for rep in reps_who_may_bid(session, round_):
            count = bids.get(rep.id, 0)
            msgid = with_bids if count else without_bids
            yield Message(rep.id, Text(msgid, {"round": round_.title, "count": count,
                                               "closes_at": instant(round_.closes_at)}), link)

    return messages


def _results_published(session: Session, round_: Round) -> Iterator[Message]:
    bids = session.scalars(
        select(Bid).join(Listing).where(Listing.round_id == round_.id,
                                        Bid.status == BidStatus.ACTIVE)
        .options(selectinload(Bid.listing).selectinload(Listing.account)).order_by(Bid.id))
    decisions = {decision.listing_id: decision for decision in session.scalars(
        select(Decision).join(Listing).where(Listing.round_id == round_.id))}
    for bid in bids:
        decision = decisions.get(bid.listing_id)
        params = {"account": bid.listing.account.name, "round": round_.title}
        if decision is None or decision.bid_id is None:
            text = N_("Nobody was awarded %(account)s in round “%(round)s”.", **params)
        elif decision.bid_id == bid.id:
            text = N_("You won %(account)s in round “%(round)s”.", **params)
        else:
            text = N_("%(account)s in round “%(round)s” went to another bidder.", **params)
        yield Message(bid.rep_id, text, Link("market.bid_detail", {"bid_id": bid.id}),
                      part=f"bid:{bid.id}")


def _decided_again(session: Session, decision: Decision) -> Iterator[Message]:
    """A listing an upheld appeal or a refused award sent back, decided again in the standstill
    window: its bidders learn the new result, as they learnt the first one."""
    listing = decision.listing
    params = {"account": listing.account.name, "round": listing.round.title}
    for bid in session.scalars(select(Bid).where(Bid.listing_id == listing.id,
                                                 Bid.status == BidStatus.ACTIVE).order_by(Bid.id)):
        if decision.bid_id is None:
            text = N_("%(account)s in round “%(round)s” was decided again: nobody was awarded "
                      "it.", **params)
        elif decision.bid_id == bid.id:
            text = N_("%(account)s in round “%(round)s” was decided again: you won it.",
                      **params)
        else:
            text = N_("%(account)s in round “%(round)s” was decided again: it went to another "
                      "bidder.", **params)
        yield Message(bid.rep_id, text, Link("market.bid_detail", {"bid_id": bid.id}),
                      part=f"bid:{bid.id}")


def _review_started(session: Session, round_: Round) -> Iterator[Message]:
    text = N_("Round “%(round)s” is in blind review: you are named to score its applications "
              "under their codes.", round=round_.title)
    link = Link("application_reviews.queue", {"round_id": round_.id})
    for reviewer in session.scalars(
            select(User).join(RoundReviewer, RoundReviewer.reviewer_id == User.id)
            .where(RoundReviewer.round_id == round_.id, User.is_active).order_by(User.id)):
        yield Message(reviewer.id, text, link)


def _incident_logged(session: Session, incident: AccountabilityIncident) -> Iterator[Message]:
    yield Message(incident.rep_id, N_(
        "%(account)s was seen advertising on %(site)s; explain it by %(due_at)s.",
        account=incident.account.name, site=incident.competitor_site,
        due_at=instant(incident.explanation_due_at or incident.seen_at)),
        Link("accountability.inbox"))


def _incident_decided(session: Session, incident: AccountabilityIncident) -> Iterator[Message]:
    params = {"account": incident.account.name, "site": incident.competitor_site}
    if incident.status == IncidentStatus.UPHELD:
        text = N_("The incident for %(account)s (%(site)s) was upheld against you: %(note)s",
                  note=incident.resolution_note, **params)
    else:
        text = N_("Your explanation for %(account)s (%(site)s) was accepted.", **params)
    yield Message(incident.rep_id, text, Link("accountability.inbox"))


def _explanation_submitted(session: Session,
                           incident: AccountabilityIncident) -> Iterator[Message]:
    text = N_("%(rep)s explained the incident for %(account)s (%(site)s); accept it or uphold "
              "the incident.", rep=incident.rep.display_name, account=incident.account.name,
              site=incident.competitor_site)
    for manager in active_users_with_role(session, Role.KA_MANAGER):
        yield Message(manager.id, text, Link("accountability.incidents"))


def sponsor_or_admins(session: Session, sponsor: User | None) -> list[User]:
    """Who answers for a sponsor: the person, or the admins standing in when there is none."""
    if sponsor is not None and sponsor.is_active:
        return [sponsor]
    return active_users_with_role(session, Role.ADMIN)


def _sponsored_release(session: Session, listing: Listing) -> Iterator[Message]:
    text = N_("%(account)s has an executive sponsor; its release into round “%(round)s” waits "
              "for the sponsor's confirmation.", account=listing.account.name,
              round=listing.round.title)
    for person in sponsor_or_admins(session, listing.account.sponsor):
        yield Message(person.id, text, Link("sponsors.confirmations"))


def _sponsored_transfer(session: Session, request: TransferRequest) -> Iterator[Message]:
    text = N_("%(requester)s asks to transfer %(account)s, which you sponsor, from %(from_rep)s "
              "to %(to_rep)s; it waits for your confirmation.",
              requester=request.requested_by.display_name, account=request.account.name,
              from_rep=request.from_rep.display_name if request.from_rep else "—",
              to_rep=request.to_rep.display_name)
    for person in sponsor_or_admins(session, request.sponsor):
        yield Message(person.id, text, Link("sponsors.confirmations"))


def _sponsor_answered_release(session: Session, listing: Listing) -> Iterator[Message]:
    params = {"account": listing.account.name, "round": listing.round.title,
              "note": listing.confirmation_note or "—"}
    if listing.status == ListingStatus.REFUSED:
        text = N_("The sponsor refused the release of %(account)s into round “%(round)s”: "
                  "%(note)s", **params)
    else:
        text = N_("The sponsor confirmed the release of %(account)s into round “%(round)s” "
                  "(%(note)s).", **params)
    yield Message(listing.released_by_id, text,
                  Link("manage.round_detail", {"round_id": listing.round_id}))


def _sponsor_answered_transfer(session: Session, request: TransferRequest) -> Iterator[Message]:
    params = {"account": request.account.name, "to_rep": request.to_rep.display_name,
              "note": request.answer_note or "—"}
    if request.status == TransferRequestStatus.ACCEPTED:
        text = N_("The sponsor accepted the transfer of %(account)s to %(to_rep)s; it is filed "
                  "(%(note)s).", **params)
    else:
        text = N_("The sponsor refused the transfer of %(account)s to %(to_rep)s: %(note)s",
                  **params)
    yield Message(request.requested_by_id, text, Link("sponsors.accounts"))


def _loss_review_due(session: Session, review: AccountReview) -> Iterator[Message]:
    params = {"account": review.account.name, "due_at": instant(review.due_at or review.created_at)}
    if review.filing_seq is None:  # due at the release: the account is still the rep's
        text = N_("%(account)s is released from you into a bidding round; it stays yours until "
                  "the round's results take effect. Write its loss review (what happened, what "
                  "you would do differently) by %(due_at)s.", **params)
    else:
        text = N_("%(account)s has left you; write its loss review (what happened, what you "
                  "would do differently) by %(due_at)s.", **params)
    yield Message(review.rep_id, text, Link("reviews.detail", {"review_id": review.id}))


def _loss_review_withdrawn(session: Session, review: AccountReview) -> Iterator[Message]:
    yield Message(review.rep_id, N_(
        "%(account)s stays yours: its release ended without moving it, so its loss review is "
        "no longer due.", account=review.account.name), Link("reviews.mine"))


def _password_reset(session: Session, user: User) -> Iterator[Message]:
    yield Message(user.id, N_("An admin reset your password at %(reset_at)s; you will choose a "
                              "new one when you sign in. If you did not ask for it, tell KA "
                              "management.", reset_at=instant(user.password_reset_at)),
                  Link("auth.password"))


def round_management(session: Session) -> list[User]:
    """KA managers, who adjudicate rounds; the admins when there is no active one."""
    return (active_users_with_role(session, Role.KA_MANAGER)
            or active_users_with_role(session, Role.ADMIN))


def _appeal_filed(session: Session, appeal: Appeal) -> Iterator[Message]:
    round_ = appeal.listing.round
    text = N_("%(rep)s appealed the result for %(account)s in round “%(round)s”; answer it "
              "before the results can take effect.", rep=appeal.appellant.display_name,
              account=appeal.listing.account.name, round=round_.title)
    for person in round_management(session):
        yield Message(person.id, text, Link("manage.appeals"))


def _appeal_answered(session: Session, appeal: Appeal) -> Iterator[Message]:
    params = {"account": appeal.listing.account.name, "round": appeal.listing.round.title,
              "answer": appeal.answer}
    if appeal.status == AppealStatus.UPHELD:
        text = N_("Your appeal for %(account)s in round “%(round)s” was upheld; KA management "
                  "decides the account again: %(answer)s", **params)
    else:
        text = N_("Your appeal for %(account)s in round “%(round)s” was rejected; the result "
                  "stands: %(answer)s", **params)
    bid_id = session.scalars(select(Bid.id).where(Bid.listing_id == appeal.listing_id,
                                                  Bid.rep_id == appeal.appellant_id)).first()
    yield Message(appeal.appellant_id, text, Link("market.bid_detail", {"bid_id": bid_id}))


def _award_refused(session: Session, refused: tuple) -> Iterator[Message]:
    """`refused`: the listing, when, and its winner if they may no longer receive accounts
    (None: the award would pass capacity), then, when its decision no longer matched what it
    was made from, "decision" (replays.DECISION_CHECK)."""
    listing, gone = refused[0], refused[2]
    why = (unavailability(has_left=gone.status == RepStatus.LEFT, is_active=gone.is_active,
                          is_rep=gone.role == Role.REP) if gone is not None else None)
    if refused[3:] == ("decision",):
        text = N_("The award of %(account)s in round “%(round)s” did not take effect: its "
                  "decision was changed outside bidhub and no longer matches what it was made "
                  "from (the audit log keeps it). Decide it again.",
                  account=listing.account.name, round=listing.round.title)
    elif why == NOT_REP:
        text = N_("The award of %(account)s in round “%(round)s” could not take effect: its "
                  "winner %(rep)s is no longer a rep and cannot receive accounts. Decide it "
                  "again: another bidder, or no award.",
                  account=listing.account.name, round=listing.round.title,
                  rep=gone.display_name)
    elif gone is not None:
        text = N_("The award of %(account)s in round “%(round)s” could not take effect: its "
                  "winner %(rep)s has left the company or was deactivated and cannot receive "
                  "accounts. Decide it again: another bidder, or no award.",
                  account=listing.account.name, round=listing.round.title,
                  rep=gone.display_name)
    else:
        text = N_("The award of %(account)s in round “%(round)s” could not take effect: its "
                  "winner would pass capacity. Decide it again.", account=listing.account.name,
                  round=listing.round.title)
    for person in round_management(session):
        yield Message(person.id, text, Link("manage.round_detail", {"round_id": listing.round_id}))


REMINDER_24_HOURS = "deadline_in_24_hours"
REMINDER_1_HOUR = "deadline_in_1_hour"
ROUND_OPENED = "round_opened"
REVIEW_STARTED = "review_started"
DECIDED_AGAIN = "decided_again"

KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind(ROUND_OPENED, "reps who may bid in the round",
         lambda round_: f"round:{round_.id}", _round_opened),
    Kind(REMINDER_24_HOURS, "reps who may bid in the round, saying whether they have bid",
         lambda round_: f"round:{round_.id}", _deadline_reminder(
             N_("Round “%(round)s” closes within 24 hours, at %(closes_at)s. You have bid for "
                "%(count)d of its accounts.").msgid,
             N_("Round “%(round)s” closes within 24 hours, at %(closes_at)s. You have not bid "
                "in it.").msgid)),
    Kind(REMINDER_1_HOUR, "reps who may bid in the round, saying whether they have bid",
         lambda round_: f"round:{round_.id}", _deadline_reminder(
             N_("Round “%(round)s” closes within the hour, at %(closes_at)s. You have bid for "
                "%(count)d of its accounts.").msgid,
             N_("Round “%(round)s” closes within the hour, at %(closes_at)s. You have not bid "
                "in it.").msgid)),
    Kind("results_published", "every bidder: won, lost or no award, one item per bid",
         lambda round_: f"round:{round_.id}", _results_published),
    Kind(DECIDED_AGAIN, "every bidder of a listing decided again in the standstill window "
         "(after an upheld appeal or a refused award): won, lost or no award, one item per bid",
         lambda decision: f"listing:{decision.listing_id}:{instant(decision.decided_at)}",
         _decided_again),
    Kind(REVIEW_STARTED, "the reviewers named on the round, when it enters its blind review",
         lambda round_: f"round:{round_.id}", _review_started),
    Kind("incident_logged", "the rep held accountable",
         lambda incident: f"incident:{incident.id}", _incident_logged),
    Kind("incident_decided", "the rep held accountable",
         lambda incident: f"incident:{incident.id}", _incident_decided),
    Kind("explanation_submitted", "KA managers",
         lambda incident: f"incident:{incident.id}", _explanation_submitted),
    Kind("sponsored_release", "the account's executive sponsor (admins when no person is named)",
         lambda listing: f"listing:{listing.id}", _sponsored_release),
    Kind("sponsored_transfer", "the account's executive sponsor (admins when no person is named)",
         lambda request: f"transfer_request:{request.id}", _sponsored_transfer),
    Kind("sponsor_answered_release", "whoever released the account",
         lambda listing: f"listing:{listing.id}", _sponsor_answered_release),
    Kind("sponsor_answered_transfer", "whoever asked for the transfer",
         lambda request: f"transfer_request:{request.id}", _sponsor_answered_transfer),
    Kind("password_reset", "the user whose password was reset",
         lambda user: f"user:{user.id}:{instant(user.password_reset_at)}", _password_reset),
    Kind("appeal_filed", "KA managers (admins when there is none)",
         lambda appeal: f"appeal:{appeal.id}", _appeal_filed),
    Kind("appeal_answered", "the appellant",
         lambda appeal: f"appeal:{appeal.id}", _appeal_answered),
    Kind("award_refused", "KA managers (admins when there is none): an announced award that "
         "would pass capacity, or whose winner left, was deactivated or is no rep any more, "
         "when it takes effect goes back to decision; so does an award not yet in force whose "
         "winner is marked as left, deactivated or given another role on the user form, and "
         "an announced award whose decision no longer matches what it was made from",
         lambda refused: f"listing:{refused[0].id}:{instant(refused[1])}", _award_refused),
    Kind("loss_review_due", "the rep who lost the account",
         lambda review: f"review:{review.id}", _loss_review_due),
    Kind("loss_review_withdrawn", "the rep whose released account stays theirs",
         lambda review: f"review:{review.id}", _loss_review_withdrawn),
)}

# The reminders before a round's deadline, latest last: each is due from its lead time before
# the deadline until the next one's (or the deadline), for rounds already open by then.
REMINDERS = ((REMINDER_24_HOURS, timedelta(hours=24)), (REMINDER_1_HOUR, timedelta(hours=1)))


# --- writing events ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Channels:
    """Which outside deliveries are on (from the app's configuration)."""

    email: bool = False
    webhook: bool = False


def configure_channels(factory: sessionmaker, channels: Channels) -> None:
    """Tell every session of `factory` which outbox rows to write with a notification."""
    factory.kw.setdefault("info", {})[CHANNELS_INFO_KEY] = channels


def _insert(session: Session):
    return (postgresql_insert if session.get_bind().dialect.name == "postgresql"
            else sqlite_insert)


def _claim_event(session: Session, key: str, now: datetime) -> bool:
    """Record the event; False if it was recorded before (by this or another process)."""
    claimed = session.execute(
        _insert(session)(NotificationEvent).values(key=key, created_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(NotificationEvent.key)).scalar_one_or_none()
    return claimed is not None


def notify(session: Session, kind_name: str, subject: Any, now: datetime) -> int:
    """Tell the kind's recipients of this event, once; the number of items written.

    Runs inside the caller's unit of work, so the items are written with the event.
    """
    with unit_of_work(session):
        kind = KINDS[kind_name]
        event = f"{kind.name}:{kind.event(subject)}"
        if not _claim_event(session, event, now):
            return 0
        rows = [{"recipient_id": message.recipient_id, "kind": kind.name,
                 "event_key": f"{event}:{message.part}" if message.part else event,
                 "msgid": message.text.msgid, "params": message.text.params,
                 "link_endpoint": message.link.endpoint, "link_args": message.link.args,
                 "created_at": now}
                for message in kind.messages(session, subject)]
        written = []
        for start in range(0, len(rows), INSERT_CHUNK):
            written += session.execute(
                _insert(session)(Notification).values(rows[start:start + INSERT_CHUNK])
                .on_conflict_do_nothing(index_elements=["recipient_id", "event_key"])
                .returning(Notification.id, Notification.recipient_id)).all()
        queue_deliveries(session, written, now)
        return len(written)


def queue_deliveries(session: Session, written: list[tuple[int, int]], now: datetime) -> None:
    """The outbox rows for new items, for each channel that is on."""
    channels = session.info.get(CHANNELS_INFO_KEY) or Channels()
    if not written or not (channels.email or channels.webhook):
        return
    addresses = {}
    if channels.email:
        addresses = dict(session.execute(
            select(User.id, User.email).where(User.id.in_({user_id for _id, user_id in written}),
                                              User.email.is_not(None), User.email != "")).all())
    deliveries = []
    for notification_id, recipient_id in written:
        if recipient_id in addresses:
            deliveries.append({"channel": "email", "address": addresses[recipient_id],
                               "notification_id": notification_id})
        if channels.webhook:
            deliveries.append({"channel": "webhook", "address": "",
                               "notification_id": notification_id})
    if deliveries:
        session.execute(_insert(session)(NotificationDelivery).values([
            {**delivery, "status": DeliveryStatus.PENDING, "attempts": 0, "last_error": "",
             "next_attempt_at": now, "created_at": now} for delivery in deliveries]))


def round_published(session: Session, round_: Round, now: datetime) -> None:
    """A round published with its opening time already past opens now."""
    if round_.status == RoundStatus.PUBLISHED and round_.opens_at <= now < round_.closes_at:
        notify(session, ROUND_OPENED, round_, now)


def due_round_notices(round_: Round, now: datetime) -> list[str]:
    """The kinds of notice a published round is due at `now`: opened, then the reminders."""
    if not round_.opens_at <= now < round_.closes_at:
        return []
    due = [ROUND_OPENED]
    thresholds = [round_.closes_at - lead for _kind, lead in REMINDERS] + [round_.closes_at]
    for (kind, _lead), starts, ends in zip(REMINDERS, thresholds, thresholds[1:], strict=False):
        if starts <= now < ends and round_.opens_at <= starts:
            due.append(kind)
    return due


def notify_due_rounds(session: Session, now: datetime) -> list[str]:
    """Round opened and deadline reminders that are due (the scheduler, every half minute).

    Each event is told once: events already recorded are skipped with one query, and one
    claimed meanwhile by another instance is skipped by `notify`.
    """
    rounds = session.scalars(select(Round).where(Round.status == RoundStatus.PUBLISHED,
                                                 Round.opens_at <= now, Round.closes_at > now))
    candidates = {f"{kind}:{KINDS[kind].event(round_)}": (kind, round_.id)
                  for round_ in rounds for kind in due_round_notices(round_, now)}
    if candidates:
        done = set(session.scalars(select(NotificationEvent.key)
                                   .where(NotificationEvent.key.in_(candidates))))
        candidates = {key: value for key, value in candidates.items() if key not in done}
    end_read(session)
    told = []
    for key, (kind, round_id) in sorted(candidates.items()):
        with unit_of_work(session):
            round_ = session.get(Round, round_id)
            if kind in due_round_notices(round_, now) and round_.status == RoundStatus.PUBLISHED:
                notify(session, kind, round_, now)
                told.append(key)
    return told


# --- the inbox --------------------------------------------------------------------------------

@dataclass(frozen=True)
class InboxPage:
    items: list[Notification]
    page: int
    pages: int
    total: int
    unread: int


def inbox(session: Session, user: User, page: int = 1, per_page: int = PER_PAGE) -> InboxPage:
    """The user's items, newest first, one page of them."""
    total = session.scalar(select(func.count()).select_from(Notification)
                           .where(Notification.recipient_id == user.id)) or 0
    pages = max(1, ceil(total / per_page))
    page = min(max(1, page), pages)
    items = list(session.scalars(
        select(Notification).where(Notification.recipient_id == user.id)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
        .limit(per_page).offset((page - 1) * per_page)))
    return InboxPage(items, page, pages, total, unread_count(session, user))


def unread_count(session: Session, user: User) -> int:
    return session.scalar(select(func.count()).select_from(Notification).where(
        Notification.recipient_id == user.id, Notification.read_at.is_(None))) or 0


def own_notification(session: Session, user: User, notification_id: int) -> Notification:
    notification = session.get(Notification, notification_id)
    if notification is None or notification.recipient_id != user.id:
        raise NotFound(N_("No such notification."))  # others' items do not exist
    return notification


def mark_read(session: Session, user: User, notification_id: int, now: datetime) -> Notification:
    """Mark one of the user's items read (opening it does too); already read stays as it was."""
    with unit_of_work(session):
        notification = own_notification(session, user, notification_id)
        if notification.read_at is None:
            notification.read_at = now
        return notification


def mark_all_read(session: Session, user: User, now: datetime) -> int:
    with unit_of_work(session):
        return session.execute(
            update(Notification).where(Notification.recipient_id == user.id,
                                       Notification.read_at.is_(None))
            .values(read_at=now).execution_options(synchronize_session=False)).rowcount


MAX_EMAIL_LENGTH = 254


# What a mailbox name may hold besides letters and digits (RFC 5322's atext, and dots between
# them): never a comma, semicolon, angle bracket, quote or parenthesis, which an address header
# reads as the end of one address, a second address or a display name.
MAILBOX_NAME_MARKS = frozenset("!#$%&'*+-/=?^_`{|}~")


def is_email_address(address: str) -> bool:
    """One @ between a mailbox name and a domain of dot-separated labels (name@example.com).

    The name is letters, digits, `MAILBOX_NAME_MARKS` and single dots between them; each label
    of the domain is letters, digits and inner hyphens. Letters may be Chinese (王伟@例子.中国).
    A domain without a dot (a@b) names no mail server. So an address is always exactly one
    recipient: "a,x@example.com" or "<x>@example.com" would make an address header name
    another."""
    if len(address) > MAX_EMAIL_LENGTH or address.count("@") != 1:
        return False
    name, domain = address.split("@")
    labels = domain.split(".")
    return (bool(name) and all(part and all(char.isalnum() or char in MAILBOX_NAME_MARKS
                                             for char in part) for part in name.split("."))
            and len(labels) > 1
            and all(label and label[0] != "-" and label[-1] != "-"
                    and all(char.isalnum() or char == "-" for char in label) for label in labels))


def set_notification_email(session: Session, actor: User, user_id: int, email: str,
                           now: datetime) -> User:
    """The address a user's notifications are e-mailed to, set by the user or an admin; empty
    turns e-mail off."""
    address = email.strip()
    if address and not is_email_address(address):
        raise InvalidRequest(N_("Enter an e-mail address such as name@example.com, or leave it "
                                "empty."), field="email")
    with unit_of_work(session):
        if actor.id != user_id and actor.role != Role.ADMIN:
            raise PermissionDenied(N_("Only an admin can set another person's e-mail address."))
        user = session.get(User, user_id)
        if user is None:
            raise NotFound(N_("No such user."))
        before = {"email": user.email}
        user.email = address or None
        record_audit(session, actor, "user.email_changed", f"user:{user.id}", now,
                     before=before, after={"email": user.email})
        return user


# --- delivery outside the app -----------------------------------------------------------------

class DeliveryFailed(Exception):
    """The receiving end refused or did not answer as expected."""


class RecipientGone(Exception):
    """The recipient left or was deactivated after the delivery was queued: not sent."""


@dataclass(frozen=True)
class Outgoing:
    """A notification rendered for outside delivery, in the recipient's language."""

    subject: str
    body: str
    webhook_text: str


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    user: str | None = None
    password: str | None = None
    sender: str = "bidhub@localhost"
    starttls: bool = False


@dataclass(frozen=True)
class Transport:
    """How deliveries leave: SMTP for e-mail and an HTTP POST for the webhook."""

    smtp: SmtpSettings | None = None
    webhook_url: str | None = None

    def send(self, channel: str, address: str, outgoing: Outgoing) -> None:
        if channel == "email":
            self.send_email(address, outgoing)
        elif channel == "webhook":
            self.post_webhook(outgoing.webhook_text)
        else:
            raise DeliveryFailed(f"unknown channel {channel!r}")

    def send_email(self, address: str, outgoing: Outgoing) -> None:
        if self.smtp is None:
            raise DeliveryFailed("e-mail is not configured (BIDHUB_SMTP_HOST)")
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = (self.smtp.sender, address,
                                                              outgoing.subject)
        message.set_content(outgoing.body)
        with smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=SEND_TIMEOUT_SECONDS) as smtp:
            if self.smtp.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.smtp.user:
                smtp.login(self.smtp.user, self.smtp.password or "")
            smtp.send_message(message, to_addrs=[address])

    def post_webhook(self, text: str) -> None:
        """Post the text the way WeCom and DingTalk group bots take it."""
        if not self.webhook_url or not self.webhook_url.startswith(("http://", "https://")):
            raise DeliveryFailed("the webhook is not configured (BIDHUB_WEBHOOK_URL, http or https)")
        body = json.dumps({"msgtype": "text", "text": {"content": text}},
                          ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            self.webhook_url, data=body, method="POST",
            headers={"Content-Type": "application/json; charset=utf-8"})
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_SECONDS) as response:  # noqa: S310
            answer = response.read(64 * 1024)
        # The bots answer 200 with {"errcode": N, "errmsg": ...} when they refuse a message.
        with contextlib.suppress(ValueError, AttributeError):
            errcode = json.loads(answer).get("errcode", 0)
            if errcode:
                raise DeliveryFailed(f"the webhook refused the message: {answer[:300]!r}")


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt: 1, 2, 4 ... minutes, capped."""
    return min(timedelta(minutes=2 ** min(attempts - 1, 20)), MAX_RETRY_DELAY)


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0


def send_due_deliveries(session: Session, now: datetime, transport: Transport,
                        render: Callable[[Notification], Outgoing],
                        limit: int = DELIVERIES_PER_RUN,
                        budget_seconds: float = SEND_BUDGET_SECONDS) -> DeliveryReport:
    """Send the outbox rows that are due; a failure is retried later, up to MAX_ATTEMPTS.

    No transaction stays open while sending. Each row is first claimed with a conditional
    update (it is then not due for CLAIM_LEASE), so two runs never send it twice. No send
    starts after `budget_seconds`: the rows left stay due for the next run. A row whose
    recipient has left or was deactivated since is not sent (failed, saying why).
    """
    stop_at = time.monotonic() + budget_seconds
    due = session.execute(
        select(NotificationDelivery.id, NotificationDelivery.attempts)
        .where(NotificationDelivery.status == DeliveryStatus.PENDING,
               NotificationDelivery.next_attempt_at <= now)
        .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id)
        .limit(limit)).all()
    end_read(session)
    report = DeliveryReport()
    for delivery_id, attempts in due:
        if time.monotonic() >= stop_at:
            break
        outgoing = _claim_delivery(session, delivery_id, attempts, now, render)
        if outgoing is None:
            continue
        channel, address, message = outgoing
        if isinstance(message, RecipientGone):
            _record_attempt(session, delivery_id, attempts, str(message), now, final=True)
            report.failed += 1
            continue
        error = ""
        try:
            if isinstance(message, Exception):
                raise message
            transport.send(channel, address, message)
        except Exception as failure:  # whatever goes wrong is kept on the row and retried
            error = f"{type(failure).__name__}: {failure}"[:2000]
        status = _record_attempt(session, delivery_id, attempts, error, now)
        if status == DeliveryStatus.SENT:
            report.sent += 1
        elif status == DeliveryStatus.FAILED:
            report.failed += 1
        else:
            report.retrying += 1
    return report


def _claim_delivery(session: Session, delivery_id: int, attempts: int, now: datetime,
                    render: Callable[[Notification], Outgoing]):
    with unit_of_work(session):
        claimed = session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.id == delivery_id,
                   NotificationDelivery.status == DeliveryStatus.PENDING,
                   NotificationDelivery.attempts == attempts,
                   NotificationDelivery.next_attempt_at <= now)
            .values(next_attempt_at=now + CLAIM_LEASE)
            .execution_options(synchronize_session=False)).rowcount
        if claimed != 1:
            return None
        delivery = session.get(NotificationDelivery, delivery_id)
        recipient = delivery.notification.recipient
        if not recipient.is_active or recipient.status == RepStatus.LEFT:
            # Queued before they went: their inbox keeps the item, nothing goes outside.
            return delivery.channel, delivery.address, RecipientGone(
                "not sent: the recipient has left or was deactivated since it was queued")
        try:
            message: Outgoing | Exception = render(delivery.notification)
        except Exception as error:  # a broken catalogue entry, say: one row never blocks others
            message = DeliveryFailed(f"could not render the message: {error!r}")
        return delivery.channel, delivery.address, message


def _record_attempt(session: Session, delivery_id: int, attempts: int, error: str,
                    now: datetime, final: bool = False) -> str:
    tried = attempts + 1
    if not error:
        status, values = DeliveryStatus.SENT, {"sent_at": now, "last_error": ""}
    elif final or tried >= MAX_ATTEMPTS:
        status, values = DeliveryStatus.FAILED, {"last_error": error}
    else:
        status, values = DeliveryStatus.PENDING, {"last_error": error,
                                                  "next_attempt_at": now + retry_delay(tried)}
    with unit_of_work(session):
        session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.id == delivery_id,
                   NotificationDelivery.attempts == attempts)
            .values(attempts=tried, status=status, **values)
            .execution_options(synchronize_session=False))
    return status
