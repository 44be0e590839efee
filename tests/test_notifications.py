"""Notifications: who is told of each event, once; the inbox; e-mail and webhook delivery."""

from __future__ import annotations

import email
import email.policy
import json
import re
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import select

from bidhub.models import (
    AccountabilityIncident,
    Appeal,
    Bid,
    DecisionKind,
    DeliveryStatus,
    Notification,
    NotificationDelivery,
    Role,
    Round,
    RoundStatus,
    User,
)
from bidhub.scheduler import deliveries_job, round_notices_job
from bidhub.services import notifications
from bidhub.services.accountability import explain_incident, log_incident, resolve_incident
from bidhub.services.adjudication import decide_listing, publish_results, score_closed_round
from bidhub.services.appeals import answer_appeal, file_appeal
from bidhub.services.filings import transfer_account
from bidhub.services.rounds import (
    publish_round,
    refuse_sponsored_listing,
    release_account,
    remove_listing,
)
from bidhub.services.users import set_password
from tests.conftest import login, reload

REASON = "Decided by management after reading every bid in full."
EXPLANATION = "The customer ran one banner on a partner's behalf; we are talking to them."


# --- a department to notify -------------------------------------------------------------------

@pytest.fixture
def world(session, make_branch, make_rep, make_manager, make_admin, make_account, make_user):
    beijing, shanghai = make_branch(), make_branch("SH", "Shanghai")
    people = {
        "rep_a": make_rep(branch=beijing, username="rep_a"),
        "rep_b": make_rep(branch=beijing, username="rep_b"),
        "rep_c": make_rep(branch=shanghai, username="rep_c"),
        "on_leave": make_rep(branch=beijing, username="on_leave", status="on_leave"),
        "gone": make_rep(branch=beijing, username="gone"),
        "manager1": make_manager(username="manager1"),
        "manager2": make_manager(username="manager2"),
        "admin1": make_admin(username="admin1"),
        "admin2": make_admin(username="admin2"),
        "president": make_user(Role.EXECUTIVE, username="president"),
    }
    people["president"].executive_title = "president"
    people["gone"].is_active = False
    session.commit()
    people["held"] = make_account(owner=people["rep_a"], name="Held Co.")
    people["free"] = [make_account(owner=None, branch=beijing, name=f"Free {n} Co.")
                      for n in range(3)]
    people["sponsored"] = make_account(owner=None, branch=beijing, name="Sponsored Co.",
                                       executive_sponsor="president")
    # Sponsored by a person: its release and its transfer wait for her.
    people["her_account"] = make_account(owner=people["rep_a"], branch=beijing,
                                         name="Her Co.", executive_sponsor="president")
    people["her_account"].sponsor_id = people["president"].id
    session.commit()
    return people


def inbox_items(session) -> dict[int, tuple[str, str, str]]:
    """Every notification by id: (recipient's username, kind, English text)."""
    reload(session)
    rows = session.execute(select(Notification, User.username)
                           .join(User, Notification.recipient_id == User.id)).all()
    return {notification.id: (username, notification.kind,
                              str(notifications_text(notification)))
            for notification, username in rows}


def notifications_text(notification: Notification) -> str:
    from bidhub.domain.text import Text

    return str(Text(notification.msgid, notification.params))


# Each event: what happens first (not counted), the event itself, and exactly who is told what.
@dataclass
class Event:
    name: str
    prepare: object
    act: object
    expected: dict[str, list[tuple[str, str]]]  # username -> [(kind, text fragment)]


EVERY_REP = ("rep_a", "rep_b", "rep_c")


def nothing(w, session, clock, app):
    return None


def draft_round_past_opening(w, session, clock, app):
    return w["make_round"](status=RoundStatus.DRAFT, accounts=w["free"][:1],
                           manager=w["manager1"], opens_at=clock() - timedelta(hours=1),
                           title="Spring round")


def publish(w, session, clock, app, round_):
    publish_round(session, w["manager1"], round_.id, expected_version=round_.version,
                  now=clock())


def round_opening_later(w, session, clock, app):
    round_ = w["make_round"](accounts=w["free"][:1], manager=w["manager1"],
                             opens_at=clock() + timedelta(hours=1), title="Spring round")
    assert round_notices_job(app, clock()) == []  # published, not open yet: nobody is told
    return round_


def opening_time_reached(w, session, clock, app, round_):
    clock.advance(hours=2)
    round_notices_job(app, clock())
    round_notices_job(app, clock())  # a second run (or instance) tells nobody again


def scored_round(w, session, clock, app):
    round_ = w["make_round"](accounts=w["free"], manager=w["manager1"], title="Spring round",
                             closes_at=clock() + timedelta(days=2))
    first, second, _third = round_.listings
    w["make_bid"](w["rep_a"], first)
    bid_b = w["make_bid"](w["rep_b"], first)
    w["make_bid"](w["rep_c"], second)
    clock.advance(days=3)
    assert score_closed_round(session, round_.id, clock())
    reload(session)
    # Overriding in favour of the proposed winner is accepting: either way rep_b wins.
    decide_listing(session, w["manager1"], first.id, kind=DecisionKind.OVERRIDDEN,
                   bid_id=bid_b.id, reason=REASON, now=clock())
    for listing in (second, _third):
        decide_listing(session, w["manager1"], listing.id, kind=DecisionKind.NO_AWARD,
                       bid_id=None, reason=REASON, now=clock())
    reload(session)
    return session.get(type(round_), round_.id)


def publish_the_results(w, session, clock, app, round_):
    publish_results(session, w["manager1"], round_.id, expected_version=round_.version,
                    now=clock())


def log(w, session, clock, app, _ctx=None):
    return log_incident(session, w["manager1"], account_id=w["held"].id,
                        competitor_site="zhaopin.example", ad_type="banner", seen_at=clock(),
                        evidence_url="https://zhaopin.example/", now=clock())


def logged_and_explained(w, session, clock, app):
    incident = log(w, session, clock, app)
    explain_incident(session, w["rep_a"], incident.id, explanation=EXPLANATION, now=clock())
    return incident


def explain(w, session, clock, app, incident):
    explain_incident(session, w["rep_a"], incident.id, explanation=EXPLANATION, now=clock())


def uphold(w, session, clock, app, incident):
    incident = session.get(AccountabilityIncident, incident.id)
    resolve_incident(session, w["manager2"], incident.id, outcome="upheld",
                     note="Second banner this quarter.", expected_version=incident.version,
                     now=clock())


def draft_round(w, session, clock, app):
    return w["make_round"](status=RoundStatus.DRAFT, manager=w["manager1"],
                           title="Spring round")


def release_sponsored(w, session, clock, app, round_):
    release_account(session, w["manager1"], round_.id, account_id=w["sponsored"].id,
                    reason="neglected", note="", review_text="", now=clock())


def release_her_account(w, session, clock, app, round_):
    release_account(session, w["manager1"], round_.id, account_id=w["her_account"].id,
                    reason="neglected", note="", review_text=REASON, now=clock())


def held_account_released(w, session, clock, app):
    round_ = draft_round(w, session, clock, app)
    return release_account(session, w["manager1"], round_.id, account_id=w["held"].id,
                           reason="neglected", note="", review_text=REASON, now=clock())


def remove_the_listing(w, session, clock, app, listing):
    remove_listing(session, w["manager1"], listing.id, clock())


def her_account_waiting_for_its_sponsor(w, session, clock, app):
    round_ = draft_round(w, session, clock, app)
    release_her_account(w, session, clock, app, round_)
    reload(session)
    return session.get(Round, round_.id).listings[0]


def sponsor_refuses(w, session, clock, app, listing):
    refuse_sponsored_listing(session, w["president"], listing.id,
                             note="Rep A keeps this client for now.", now=clock())


def transfer_her_account(w, session, clock, app, _ctx):
    transfer_account(session, w["manager1"], account_id=w["her_account"].id,
                     to_rep_id=w["rep_b"].id, reason="Rep A moves to another region.",
                     review_text=REASON, now=clock())


def transfer_held(w, session, clock, app, _ctx):
    transfer_account(session, w["manager1"], account_id=w["held"].id, to_rep_id=w["rep_b"].id,
                     reason="Rep A moves to another region.", review_text=REASON, now=clock())


def announced_round(w, session, clock, app):
    round_ = scored_round(w, session, clock, app)
    publish_the_results(w, session, clock, app, round_)
    reload(session)
    assert session.get(Round, round_.id).status == RoundStatus.STANDSTILL
    return round_


def appeal(w, session, clock, app, round_):
    return file_appeal(session, w["rep_a"], round_.listings[0].id,
                       ground="My plan for this account was the stronger one by far.",
                       now=clock())


def announced_and_appealed(w, session, clock, app):
    return appeal(w, session, clock, app, announced_round(w, session, clock, app))


def reject(w, session, clock, app, filed):
    filed = session.get(Appeal, filed.id)
    answer_appeal(session, w["manager2"], filed.id, upheld=False,
                  answer="The override's reason stands.", expected_version=filed.version,
                  now=clock())


def appealed_and_upheld(w, session, clock, app):
    filed = session.get(Appeal, announced_and_appealed(w, session, clock, app).id)
    answer_appeal(session, w["manager2"], filed.id, upheld=True,
                  answer="Your plan deserves a second look.", expected_version=filed.version,
                  now=clock())
    reload(session)
    return session.get(Appeal, filed.id).listing


def decide_again_for_the_appellant(w, session, clock, app, listing):
    appellant_bid = session.scalars(select(Bid).where(Bid.listing_id == listing.id,
                                                      Bid.rep_id == w["rep_a"].id)).one()
    decide_listing(session, w["manager1"], listing.id, kind=DecisionKind.OVERRIDDEN,
                   bid_id=appellant_bid.id, reason=REASON, now=clock())


def reset_password(w, session, clock, app, _ctx):
    set_password(session, w["admin1"], w["rep_b"].id, "a brand new long password", clock())


EVENTS = [
    Event("round published after its opening time", draft_round_past_opening, publish,
          {rep: [("round_opened", "Round “Spring round” is open for bids")]
           for rep in EVERY_REP}),
    Event("published round reaching its opening time", round_opening_later,
          opening_time_reached,
          {rep: [("round_opened", "Round “Spring round” is open for bids")]
           for rep in EVERY_REP}),
    Event("results published", scored_round, publish_the_results, {
        "rep_a": [("results_published", "Free 0 Co. in round “Spring round” went to another")],
        "rep_b": [("results_published", "You won Free 0 Co. in round “Spring round”")],
        "rep_c": [("results_published", "Nobody was awarded Free 1 Co.")]}),
    Event("incident logged", nothing, log, {
        "rep_a": [("incident_logged", "Held Co. was seen advertising on zhaopin.example")]}),
    Event("explanation submitted", log, explain, {
        manager: [("explanation_submitted", "explained the incident for Held Co.")]
        for manager in ("manager1", "manager2")}),
    Event("incident decided", logged_and_explained, uphold, {
        "rep_a": [("incident_decided", "was upheld against you: Second banner this quarter.")]}),
    Event("sponsored release waiting for confirmation", draft_round, release_sponsored, {
        admin: [("sponsored_release", "Sponsored Co. has an executive sponsor")]
        for admin in ("admin1", "admin2")}),
    Event("sponsored release waiting for its sponsor", draft_round, release_her_account, {
        "president": [("sponsored_release", "Her Co. has an executive sponsor")],
        "rep_a": [("loss_review_due", "Her Co. is released from you into a bidding round; it stays yours")]}),
    Event("released account taken off the draft round", held_account_released,
          remove_the_listing, {
              "rep_a": [("loss_review_withdrawn", "Held Co. stays yours: its release ended")]}),
    Event("sponsored release refused by its sponsor", her_account_waiting_for_its_sponsor,
          sponsor_refuses, {
              "manager1": [("sponsor_answered_release", "The sponsor refused the release of "
                                                        "Her Co.")],
              "rep_a": [("loss_review_withdrawn", "Her Co. stays yours: its release ended")]}),
    Event("sponsored transfer waiting for its sponsor", nothing, transfer_her_account, {
        "president": [("sponsored_transfer", "asks to transfer Her Co., which you sponsor")]}),
    Event("account transferred away from its rep", nothing, transfer_held, {
        "rep_a": [("loss_review_due", "Held Co. has left you")]}),
    Event("appeal filed", announced_round, appeal, {
        manager: [("appeal_filed", "appealed the result for Free 0 Co.")]
        for manager in ("manager1", "manager2")}),
    Event("appeal answered", announced_and_appealed, reject, {
        "rep_a": [("appeal_answered", "was rejected; the result stands")]}),
    Event("listing decided again after an upheld appeal", appealed_and_upheld,
          decide_again_for_the_appellant, {
              "rep_a": [("decided_again", "Free 0 Co. in round “Spring round” was decided "
                                          "again: you won it.")],
              "rep_b": [("decided_again", "was decided again: it went to another bidder.")]}),
    Event("password reset by an admin", nothing, reset_password, {
        "rep_b": [("password_reset", "An admin reset your password")]}),
]


@pytest.mark.parametrize("event", EVENTS, ids=[event.name for event in EVENTS])
def test_each_event_tells_exactly_the_right_people(app, session, clock, world, make_round,
                                                   make_bid, event):
    w = {**world, "make_round": make_round, "make_bid": make_bid}
    context = event.prepare(w, session, clock, app)
    before = set(inbox_items(session))
    event.act(w, session, clock, app, context)
    new = {key: item for key, item in inbox_items(session).items() if key not in before}
    told: dict[str, list[tuple[str, str]]] = {}
    for username, kind, text in new.values():
        told.setdefault(username, []).append((kind, text))
    assert sorted(told) == sorted(event.expected), told
    for username, expected in event.expected.items():
        assert len(told[username]) == len(expected), (username, told[username])
        for (kind, fragment), (told_kind, text) in zip(expected, sorted(told[username]),
                                                       strict=True):
            assert (told_kind, fragment in text) == (kind, True), (username, text)


def test_every_kind_has_an_audience_and_is_told_by_some_use_case():
    assert set(notifications.KINDS) == {
        "round_opened", "deadline_in_24_hours", "deadline_in_1_hour", "results_published",
        "incident_logged", "incident_decided", "explanation_submitted", "sponsored_release",
        "sponsored_transfer", "sponsor_answered_release", "sponsor_answered_transfer",
        "password_reset", "appeal_filed", "appeal_answered", "award_refused", "loss_review_due",
        "loss_review_withdrawn", "review_started", "decided_again"}
    assert all(kind.audience for kind in notifications.KINDS.values())


# --- reminders --------------------------------------------------------------------------------

def reminders(session, kind: str) -> dict[str, str]:
    return {username: text for username, item_kind, text in inbox_items(session).values()
            if item_kind == kind}


def test_reminders_come_24_hours_and_1_hour_before_the_deadline_once_each(
        app, session, clock, world, make_round, make_bid):
    round_ = make_round(accounts=world["free"][:2], manager=world["manager1"],
                        title="Spring round", opens_at=clock() - timedelta(days=1),
                        closes_at=clock() + timedelta(hours=30))
    make_bid(world["rep_a"], round_.listings[0])
    make_bid(world["rep_a"], round_.listings[1])
    round_notices_job(app, clock())
    assert reminders(session, "deadline_in_24_hours") == {}
    assert set(reminders(session, "round_opened")) == set(EVERY_REP)

    clock.advance(hours=6, seconds=1)  # 23:59:59 before the deadline
    for _run in range(2):
        round_notices_job(app, clock())
    day = reminders(session, "deadline_in_24_hours")
    assert set(day) == set(EVERY_REP)
    assert "closes within 24 hours" in day["rep_a"]
    assert "You have bid for 2 of its accounts" in day["rep_a"]
    assert "You have not bid in it" in day["rep_b"]
    make_bid(world["rep_b"], round_.listings[0])

    clock.advance(hours=23)  # 59:59 before the deadline
    round_notices_job(app, clock())
    round_notices_job(app, clock())
    hour = reminders(session, "deadline_in_1_hour")
    assert set(hour) == set(EVERY_REP)
    assert "closes within the hour" in hour["rep_b"]
    assert "You have bid for 1 of its accounts" in hour["rep_b"]
    assert "You have not bid in it" in hour["rep_c"]
    counts = {}
    for username, kind, _text in inbox_items(session).values():
        counts[username, kind] = counts.get((username, kind), 0) + 1
    assert set(counts.values()) == {1}  # no duplicates of anything

    clock.advance(hours=2)  # past the deadline: nothing more
    before = len(inbox_items(session))
    round_notices_job(app, clock())
    assert len(inbox_items(session)) == before


def test_a_round_that_opens_within_24_hours_of_its_deadline_skips_that_reminder(
        app, session, clock, world, make_round):
    make_round(accounts=world["free"][:1], manager=world["manager1"],
               opens_at=clock() - timedelta(hours=1), closes_at=clock() + timedelta(hours=5))
    round_notices_job(app, clock())
    assert set(reminders(session, "round_opened")) == set(EVERY_REP)
    assert reminders(session, "deadline_in_24_hours") == {}
    clock.advance(hours=4, minutes=30)
    round_notices_job(app, clock())
    assert set(reminders(session, "deadline_in_1_hour")) == set(EVERY_REP)


def test_a_round_missed_while_down_past_its_deadline_is_not_announced(
        app, session, clock, world, make_round):
    make_round(accounts=world["free"][:1], manager=world["manager1"],
               opens_at=clock() + timedelta(hours=1), closes_at=clock() + timedelta(hours=2))
    clock.advance(hours=3)
    assert round_notices_job(app, clock()) == []
    assert inbox_items(session) == {}


# --- the inbox --------------------------------------------------------------------------------

@pytest.fixture
def rep_with_items(session, clock, world):
    for n in range(25):
        log_incident(session, world["manager1"], account_id=world["held"].id,
                     competitor_site=f"site{n}.example", ad_type="logo", seen_at=clock(),
                     evidence_url=f"https://site{n}.example/", now=clock())
        clock.advance(minutes=1)
    return world["rep_a"]


def test_the_unread_count_partial_and_the_header_that_polls_it(app, rep_with_items, world):
    client = app.test_client()
    login(client, rep_with_items)
    partial = client.get("/notifications/unread-count", headers={"HX-Request": "true"})
    assert partial.status_code == 200
    assert ">25</span>" in partial.get_data(as_text=True)
    assert "<html" not in partial.get_data(as_text=True)
    page = client.get("/notifications").get_data(as_text=True)
    assert 'hx-get="/notifications/unread-count"' in page
    assert "every 30s" in page and "notifications-read from:body" in page
    other = app.test_client()
    login(other, world["rep_b"])
    assert other.get("/notifications/unread-count").get_data(as_text=True).strip() == ""


def test_the_inbox_is_newest_first_paginated_and_marks_read(app, session, rep_with_items,
                                                            world):
    client = app.test_client()
    login(client, rep_with_items)
    first = client.get("/notifications").get_data(as_text=True)
    assert "site24.example" in first and "site5.example" in first
    assert "site4.example" not in first  # 20 a page
    assert first.index("site24.example") < first.index("site23.example")
    assert "Page 1 of 2" in first
    second = client.get("/notifications?page=2").get_data(as_text=True)
    assert "site0.example" in second and "site24.example" not in second

    newest = notifications.inbox(session, rep_with_items).items[0]
    opened = client.post(f"/notifications/{newest.id}/open")
    assert opened.status_code == 303 and opened.location.endswith("/my/accountability")
    reload(session)
    assert session.get(Notification, newest.id).read_at is not None
    assert notifications.unread_count(session, rep_with_items) == 24

    another = notifications.inbox(session, rep_with_items).items[1]
    marked = client.post(f"/notifications/{another.id}/read", headers={"HX-Request": "true"})
    assert marked.status_code == 200
    assert marked.headers["HX-Trigger"] == "notifications-read"
    assert f'id="notification-{another.id}"' in marked.get_data(as_text=True)
    reload(session)
    assert notifications.unread_count(session, rep_with_items) == 23

    done = client.post("/notifications/read-all")
    assert done.status_code == 303
    reload(session)
    assert notifications.unread_count(session, rep_with_items) == 0
    assert client.get("/notifications/unread-count").get_data(as_text=True).strip() == ""

    # Someone else's items do not exist for this user.
    other = app.test_client()
    login(other, world["rep_b"])
    assert other.post(f"/notifications/{newest.id}/open").status_code == 404
    assert other.post(f"/notifications/{newest.id}/read").status_code == 404


def test_marking_one_read_inline_updates_the_mark_all_count(app, session, rep_with_items):
    """The heading's "Mark all read (N)" travels along (out of band) with an item marked read
    inline, so it counts the items left; with none left it is gone."""
    client = app.test_client()
    login(client, rep_with_items)
    assert "Mark all read (25)" in client.get("/notifications").get_data(as_text=True)
    items = notifications.inbox(session, rep_with_items, per_page=25).items
    body = client.post(f"/notifications/{items[0].id}/read",
                       headers={"HX-Request": "true"}).get_data(as_text=True)
    mark_all = re.search(r'<form[^>]*id="mark-all-read".*?</form>', body, re.S)
    assert mark_all and 'hx-swap-oob="true"' in mark_all.group(0)
    assert "Mark all read (24)" in mark_all.group(0)
    for item in items[1:]:
        body = client.post(f"/notifications/{item.id}/read",
                           headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Mark all read" not in body
    assert re.search(r'<span id="mark-all-read" hx-swap-oob="true" hidden>', body)


def test_marking_all_read_counts_one_item_in_the_singular(app, session, rep_with_items):
    client = app.test_client()
    login(client, rep_with_items)
    for item in notifications.inbox(session, rep_with_items, per_page=25).items[1:]:
        client.post(f"/notifications/{item.id}/read", headers={"HX-Request": "true"})
    page = client.post("/notifications/read-all", follow_redirects=True).get_data(as_text=True)
    assert "Marked 1 notification read." in page
    reload(session)
    assert notifications.unread_count(session, rep_with_items) == 0


@pytest.mark.parametrize("role", ["manager1", "admin1", "rep_c"])
def test_every_role_has_an_inbox(app, world, role):
    client = app.test_client()
    login(client, world[role])
    page = client.get("/notifications")
    assert page.status_code == 200
    assert "Nothing yet" in page.get_data(as_text=True)


# --- delivery outside the app -----------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpServer:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[email.message.EmailMessage] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        return "250 Message accepted for delivery"


class WebhookReceiver:
    """A group bot's endpoint on 127.0.0.1: records what is posted; down until started."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/robot/send?key=test"
        self.posts: list[dict] = []
        self.server: HTTPServer | None = None

    def start(self) -> None:
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook
                body = self.rfile.read(int(self.headers["Content-Length"]))
                posts.append(json.loads(body))
                answer = b'{"errcode": 0, "errmsg": "ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def smtp_server():
    server = SmtpServer()
    server.controller.start()
    yield server
    server.controller.stop()


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def outside(request):
    """Outside delivery for the app under test: none unless a test asks for a channel."""
    channel = getattr(request, "param", None)
    if channel == "smtp":
        server = request.getfixturevalue("smtp_server")
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": server.port,
                "SMTP_FROM": "bidhub@example.com", "PUBLIC_URL": "https://bidhub.example.com"}
    if channel == "webhook":
        return {"WEBHOOK_URL": request.getfixturevalue("webhook").url}
    return {}


@pytest.fixture
def app_config(app_config, outside):
    return {**app_config, **outside}


def deliveries(session) -> list[NotificationDelivery]:
    reload(session)
    return list(session.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id)))


def test_nothing_goes_outside_unless_configured(app, session, clock, world):
    reset_password(world, session, clock, app, None)
    assert inbox_items(session)
    assert deliveries(session) == []
    assert deliveries_job(app, clock()).sent == 0


@pytest.mark.parametrize("outside", ["smtp"], indirect=True)
def test_email_is_sent_by_the_job_to_users_with_an_address(app, session, clock, world,
                                                           smtp_server):
    notifications.set_notification_email(session, world["rep_b"], world["rep_b"].id,
                                         "rep.b@example.com", clock())
    reset_password(world, session, clock, app, None)  # to rep_b, who has an address
    log(world, session, clock, app)  # to rep_a, who has none: inbox only
    assert [(item.channel, item.address) for item in deliveries(session)] == [
        ("email", "rep.b@example.com")]
    assert smtp_server.messages == []  # nothing is sent by the use case itself

    report = deliveries_job(app, clock())
    assert (report.sent, report.retrying, report.failed) == (1, 0, 0)
    [message] = smtp_server.messages
    assert message["To"] == "rep.b@example.com" and message["From"] == "bidhub@example.com"
    assert message["Subject"].startswith("bidhub: An admin reset your password")
    body = message.get_content()
    assert "An admin reset your password" in body
    assert "https://bidhub.example.com/password" in body
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts, delivery.sent_at) == (
        DeliveryStatus.SENT, 1, clock())
    assert deliveries_job(app, clock()).sent == 0  # sent once


@pytest.mark.parametrize("outside", ["smtp"], indirect=True)
def test_the_inbox_form_sets_the_address_and_refuses_a_malformed_one(app, session, world,
                                                                      smtp_server):
    client = app.test_client()
    login(client, world["rep_c"])
    assert "E-mail address for notifications" in client.get("/notifications").get_data(
        as_text=True)
    refused = client.post("/notifications/email", data={"email": "not an address"})
    assert refused.status_code == 422
    assert session.get(User, world["rep_c"].id).email is None
    assert client.post("/notifications/email",
                       data={"email": "rep.c@example.com"}).status_code == 303
    reload(session)
    assert session.get(User, world["rep_c"].id).email == "rep.c@example.com"


@pytest.mark.parametrize("outside", ["webhook"], indirect=True)
def test_the_webhook_is_retried_until_it_answers_and_never_blocks_the_request(
        app, session, clock, world, webhook):
    admin = app.test_client()
    login(admin, world["admin1"])
    # The receiver is down: the admin's request that causes the event is unaffected.
    response = admin.post(f"/admin/users/{world['rep_b'].id}/password",
                          data={"new_password": "a brand new long password"})
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    [delivery] = deliveries(session)
    assert (delivery.channel, delivery.status, delivery.attempts) == (
        "webhook", DeliveryStatus.PENDING, 0)

    report = deliveries_job(app, clock())
    assert (report.sent, report.retrying) == (0, 1)
    [delivery] = deliveries(session)
    assert delivery.attempts == 1 and delivery.status == DeliveryStatus.PENDING
    assert "Connection refused" in delivery.last_error or "URLError" in delivery.last_error
    assert delivery.next_attempt_at == clock() + notifications.retry_delay(1)
    assert deliveries_job(app, clock()).retrying == 0  # not due again yet

    webhook.start()
    clock.advance(minutes=1)
    report = deliveries_job(app, clock())
    assert (report.sent, report.retrying) == (1, 0)
    [post] = webhook.posts
    assert post["msgtype"] == "text"
    assert post["text"]["content"].startswith(f"@{world['rep_b'].display_name} An admin reset")
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)


@pytest.mark.parametrize("outside", ["webhook"], indirect=True)
def test_a_delivery_that_keeps_failing_is_given_up_with_its_error(app, session, clock, world,
                                                                  webhook):
    reset_password(world, session, clock, app, None)
    for _attempt in range(notifications.MAX_ATTEMPTS):
        deliveries_job(app, clock())
        clock.advance(hours=7)
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED,
                                                    notifications.MAX_ATTEMPTS)
    assert delivery.last_error
    webhook.start()
    assert deliveries_job(app, clock()).sent == 0
    assert webhook.posts == []


def test_retry_delays_grow_and_are_capped():
    delays = [notifications.retry_delay(attempt) for attempt in range(1, 12)]
    assert delays[:4] == [timedelta(minutes=minutes) for minutes in (1, 2, 4, 8)]
    assert delays == sorted(delays) and delays[-1] == notifications.MAX_RETRY_DELAY


def test_an_item_reads_in_the_readers_language_in_the_inbox_and_outside(app, session, clock,
                                                                         world):
    from bidhub.web.notifications import outgoing_renderer

    chinese, english = world["rep_a"], world["rep_b"]
    chinese.locale, english.locale = "zh_CN", "en"
    # A message the catalogue already translates stands in for any notification's msgid.
    for user in (chinese, english):
        session.add(Notification(recipient_id=user.id, kind="round_opened",
                                 event_key=f"test:{user.id}", msgid="Bidding rounds",
                                 params={}, link_endpoint="market.rounds", link_args={},
                                 created_at=clock()))
    session.commit()
    client = app.test_client()
    login(client, chinese)
    assert "竞标轮次" in client.get("/notifications").get_data(as_text=True)
    with app.app_context():
        render = outgoing_renderer(app)
        by_user = {item.recipient_id: render(item)
                   for item in session.scalars(select(Notification))}
    assert by_user[chinese.id].webhook_text.startswith(f"@{chinese.display_name} 竞标轮次")
    assert by_user[chinese.id].body.startswith("竞标轮次")
    assert by_user[english.id].body.startswith("Bidding rounds")
    assert by_user[english.id].webhook_text.endswith("/rounds")


@pytest.mark.parametrize("outside", ["webhook"], indirect=True)
def test_a_message_that_cannot_be_rendered_is_recorded_and_does_not_hold_up_the_others(
        app, session, clock, world, webhook):
    webhook.start()
    broken = Notification(recipient_id=world["rep_a"].id, kind="round_opened",
                          event_key="test:broken", msgid="Round %(missing)s opened.",
                          params={"round": "Spring"}, link_endpoint="market.rounds", link_args={},
                          created_at=clock())
    session.add(broken)
    session.flush()
    session.add(NotificationDelivery(notification_id=broken.id, channel="webhook",
                                     next_attempt_at=clock(), created_at=clock()))
    session.commit()
    reset_password(world, session, clock, app, None)
    report = deliveries_job(app, clock())
    assert (report.sent, report.retrying) == (1, 1)
    failed, sent = deliveries(session)
    assert "could not render" in failed.last_error and failed.attempts == 1
    assert sent.status == DeliveryStatus.SENT
    assert "An admin reset your password" in webhook.posts[0]["text"]["content"]


def test_a_user_who_owes_a_new_password_is_not_polled_then_finds_the_reset_in_the_inbox(
        app, session, clock, world):
    reset_password(world, session, clock, app, None)
    client = app.test_client()
    login(client, world["rep_b"], "a brand new long password")
    # Every other request goes back to the password page; polling from it would loop.
    assert "/notifications/unread-count" not in client.get("/password").get_data(as_text=True)
    changed = client.post("/password", data={
        "current_password": "a brand new long password",
        "new_password": "yet another long password", "confirm": "yet another long password"})
    assert changed.status_code in (302, 303)
    login(client, world["rep_b"], "yet another long password")
    page = client.get("/notifications").get_data(as_text=True)
    assert 'hx-get="/notifications/unread-count"' in page
    assert "An admin reset your password" in page


def test_an_admin_sets_anyones_address_and_nobody_else_can(app, session, clock, world):
    admin = app.test_client()
    login(admin, world["admin1"])
    rep_id = world["rep_a"].id
    page = admin.get(f"/admin/users/{rep_id}").get_data(as_text=True)
    assert f'action="/notifications/users/{rep_id}/email"' in page
    refused = admin.post(f"/notifications/users/{rep_id}/email", data={"email": "a@b@c"},
                         follow_redirects=True)
    assert "Enter an e-mail address" in refused.get_data(as_text=True)
    refused = admin.post(f"/notifications/users/{rep_id}/email",
                         data={"email": "a@example.com\x00"}, follow_redirects=True)
    page = refused.get_data(as_text=True)
    assert "cannot contain control characters" in page and "removed below" not in page
    reload(session)
    assert session.get(User, rep_id).email is None
    saved = admin.post(f"/notifications/users/{rep_id}/email", data={"email": "a@example.com"})
    assert saved.status_code == 303 and saved.location.endswith(f"/admin/users/{rep_id}")
    reload(session)
    assert session.get(User, rep_id).email == "a@example.com"
    assert admin.post("/notifications/users/999999/email",
                      data={"email": "a@example.com"}).status_code == 404
    rep = app.test_client()
    login(rep, world["rep_b"])
    assert rep.post(f"/notifications/users/{rep_id}/email",
                    data={"email": "x@example.com"}).status_code == 403
    with pytest.raises(notifications.PermissionDenied):
        notifications.set_notification_email(session, world["manager1"], rep_id,
                                             "x@example.com", clock())


def test_an_address_too_long_for_the_admin_form_is_refused_whole_not_cut(app, session, world):
    """A browser cuts a paste at a maxlength without a word, which would save another address
    (a@example.com…x cut to a@example.co…): the field sets none, and the form refuses the
    address with both lengths, saving nothing, as the inbox's own form does."""
    admin = app.test_client()
    login(admin, world["admin1"])
    rep_id = world["rep_a"].id
    page = admin.get(f"/admin/users/{rep_id}").get_data(as_text=True)
    field = page[page.index('id="email"'):]
    assert "maxlength" not in field[:field.index(">")]
    address = "a" * 240 + "@example.com.cn"
    refused = admin.post(f"/notifications/users/{rep_id}/email", data={"email": address},
                         follow_redirects=True).get_data(as_text=True)
    assert "At most 254 characters" in refused and "255" in refused
    reload(session)
    assert session.get(User, rep_id).email is None


def test_two_instances_running_the_job_at_once_tell_each_rep_once(app, session, clock, world,
                                                                  make_round):
    make_round(accounts=world["free"][:1], manager=world["manager1"], title="Spring round",
               opens_at=clock() - timedelta(hours=5), closes_at=clock() + timedelta(hours=20))
    barrier = threading.Barrier(4)
    errors = []

    def instance():
        try:
            barrier.wait()
            round_notices_job(app, clock())  # its own app context, session and connection
        except Exception as error:  # reported below; a thread's exception is otherwise lost
            errors.append(error)

    threads = [threading.Thread(target=instance) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    told = [(username, kind) for username, kind, _text in inbox_items(session).values()]
    assert sorted(told) == sorted([(rep, "round_opened") for rep in EVERY_REP]
                                  + [(rep, "deadline_in_24_hours") for rep in EVERY_REP])


@pytest.mark.parametrize(("settings", "told"), [
    ({}, EVERY_REP),
    ({"same_branch_only = false": "same_branch_only = true"}, ("rep_a", "rep_b")),
    ({"exclude_on_leave = true": "exclude_on_leave = false"}, (*EVERY_REP, "on_leave")),
])
def test_a_round_is_announced_to_the_reps_its_rules_let_bid(app, session, clock, world,
                                                             settings, told):
    from bidhub.services.rule_sets import active_rule_set, adopt_rule_set, default_rules_path

    text = default_rules_path(app.config).read_text("utf-8")
    for old, new in settings.items():
        assert old in text
        text = text.replace(old, new)
    adopt_rule_set(session, None, text, "test rules", "", clock())
    session.commit()
    beijing = world["rep_a"].branch
    round_ = Round(title="Beijing round", branch_id=beijing.id, opens_at=clock(),
                   closes_at=clock() + timedelta(days=2), rule_set_id=active_rule_set(session).id,
                   status=RoundStatus.PUBLISHED, created_by_id=world["manager1"].id,
                   created_at=clock(), published_at=clock())
    session.add(round_)
    session.commit()
    round_notices_job(app, clock())
    assert sorted(reminders(session, "round_opened")) == sorted(told)


def test_the_open_button_says_open_not_the_stage_tables_open_in_chinese(app, rep_with_items):
    """"Open" is a verb on the inbox and a state in the track record's stage table: two
    messages, so that each has its own Chinese word."""
    client = app.test_client()
    login(client, rep_with_items)
    client.post("/language", data={"locale": "zh_CN", "next": "/notifications"})
    page = client.get("/notifications").get_data(as_text=True)
    assert 'title="打开此通知"' in page
    assert 'title="在途"' not in page


@pytest.mark.parametrize("address", ["name@example.com", "a.b+c@mail.example.cn", "王伟@例子.中国",
                                     "o'neil_2@sub-1.example.com", "x{y}~z@example.com"])
def test_an_address_with_a_name_and_a_dotted_domain_is_an_address(address):
    assert notifications.is_email_address(address)


@pytest.mark.parametrize("address", [
    "a@b", "a@b.", "a@.cn", "a@b..cn", "@example.com", "a@b@example.com", "a b@example.com",
    "a@exa\u200bmple.com", "a@example.com\x00", "x" * 250 + "@example.com", "",
    # each would make an address header name another recipient, or none
    "a,x@example.com", "a;x@example.com", "<x>@example.com", '"a"@example.com',
    "a(b)@example.com", "a:b@example.com", "a\\b@example.com", "a@example.com,b@example.com",
    # dots only between parts of the name; hyphens only inside a label
    ".a@example.com", "a.@example.com", "a..b@example.com", "a@-example.com", "a@example-.com",
    "a@exa_mple.com"])
def test_anything_else_is_not(address):
    assert not notifications.is_email_address(address)


@pytest.mark.parametrize("outside", ["smtp"], indirect=True)
def test_no_email_goes_to_a_user_who_left_after_it_was_queued(app, session, clock, world,
                                                             smtp_server):
    notifications.set_notification_email(session, world["rep_b"], world["rep_b"].id,
                                         "rep.b@example.com", clock())
    reset_password(world, session, clock, app, None)  # queued while rep_b works here
    rep_b = session.get(User, world["rep_b"].id)
    rep_b.status, rep_b.is_active = "left", False
    session.commit()

    report = deliveries_job(app, clock())
    assert (report.sent, report.retrying, report.failed) == (0, 0, 1)
    assert smtp_server.messages == []
    [delivery] = deliveries(session)
    assert delivery.status == DeliveryStatus.FAILED
    assert "left or was deactivated" in delivery.last_error
    assert inbox_items(session)  # the inbox keeps the item


def test_a_slow_receiving_end_holds_the_scheduler_up_for_one_budget_at_most(
        session, clock, world):
    """Each send may wait SEND_TIMEOUT_SECONDS on a mail server that does not answer; the run
    stops starting sends after its budget, so the other jobs (scoring at the deadline) wait
    for that and one send, not for every row due; the rest stay due for the next run."""
    import time

    for number in range(5):
        notification = Notification(recipient_id=world["rep_a"].id, kind="round_opened",
                                    event_key=f"test:slow:{number}", msgid="Bidding rounds",
                                    params={}, link_endpoint="market.rounds", link_args={},
                                    created_at=clock())
        session.add(notification)
        session.flush()
        session.add(NotificationDelivery(
            notification_id=notification.id, channel="webhook", address="",
            status=DeliveryStatus.PENDING, attempts=0, last_error="",
            next_attempt_at=clock(), created_at=clock()))
    session.commit()

    class SlowTransport:
        def send(self, channel, address, outgoing):
            time.sleep(0.3)

    render = lambda _notification: notifications.Outgoing("subject", "body", "text")  # noqa: E731
    report = notifications.send_due_deliveries(session, clock(), SlowTransport(), render,
                                               budget_seconds=0.5)
    assert report.sent == 2
    assert [item.status for item in deliveries(session)].count(DeliveryStatus.PENDING) == 3
    report = notifications.send_due_deliveries(session, clock(), SlowTransport(), render,
                                               budget_seconds=5)
    assert report.sent == 3
