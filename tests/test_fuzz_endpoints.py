"""Every form and query-string endpoint fed generated hostile input: no 500, refusals write nothing.

The endpoints come from app.url_map, so a new route is fuzzed without editing this file (and a
route whose blueprint has no role here fails the test). The fields of each form are read from
the pages that show it, as a browser would see them; the CSRF token is a real one.
"""

from __future__ import annotations

import io
import os
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from werkzeug.exceptions import HTTPException

from bidhub.models import Account, Base, RoundStatus, RuleSetVersion
from bidhub.services.accountability import log_incident
from bidhub.services.adjudication import score_closed_round
from bidhub.services.application_reviews import name_reviewers
from bidhub.services.filings import transfer_account
from bidhub.services.imports import import_file
from tests.conftest import PASSWORD, csrf_token_from, reload

# 17 per endpoint keeps the run near a minute per database with over 1,000 requests; set
# BIDHUB_FUZZ_EXAMPLES for a deeper run (for example 120 gives about 7,000 per database).
EXAMPLES_PER_TARGET = int(os.environ.get("BIDHUB_FUZZ_EXAMPLES", "17"))
MIN_REQUESTS = 1_000

HOSTILE = [
    "", " ", "\x00", "a\x00b", "\x00" * 3, "\x1b[2J", "\x07", "\x08", "\x7f", "\x85", "\r", "\n",
    "\r\n", "line one\r\nline two", "\t", "tab\tinside", "²", "①", "١٢", "１２", "٣", "1_000",
    "-1", "0", "00", "+5", "1e3", "0x1f", str(2**31 - 1), str(2**31), str(2**63 - 1), str(2**63),
    str(2**64), "9" * 30, "9" * 400, "9" * 5000, "1e400", "-1e400", "1e-400", "Infinity",
    "-Infinity", "inf", "NaN", "sNaN", "0001-01-01", "9999-12-31", "0001-01-01T00:00",
    "9999-12-31T23:59", "2026-02-30", "2026-13-01", "２０２６-03-05", "0001-01-01T00:00:00",
    "=1+1", "+1+1", "-1+1", "@SUM(A1)", "=cmd|' /C calc'!A0", "\t=1", "\r=1", "'; DROP TABLE users;--",
    "%", "_", "%_%", "\\", "'", '"', "<script>alert(1)</script>", "{{ 7*7 }}", "../../etc/passwd",
    "\u202eevil", "\ufeff", "\u200b", "😀", "中文客户", "\ud7ff", "\uffff", "a" * 1_000,
    "b" * 10_001, "c" * 100_001, "/", "//evil.example", "http://evil.example/", "accepted",
    "overridden", "no_award", "upheld", "rep", "admin", "ka_manager", "active", "left",
]
QUERY_NAMES = ["branch", "rep", "min_value", "max_value", "q", "industry", "ownership", "sort",
               "page", "date_from", "date_to", "start", "status", "next", "owner", "band",
               "sponsored", "listed", "incidents",
               "account", "to_rep", "from_rep",
               # names that url_for reserves, should a view pass the query on to it
               "endpoint", "_scheme", "_method", "_external", "_anchor"]
EXTRA_FIELDS = {"version", "next", "id"}
PLAUSIBLE_TEXT = ["A careful plan for this account, with visits every two weeks.",
                  "2026-03-10T09:00", "2026-03-20T18:00", "2026-03-02", "300000", "1", "0",
                  "https://competitor.example.com", "logo", "value_desc", "name"]
# Values that pass a field's own checks, so that a request can get past validation with one or
# two hostile fields and reach the use case behind the form.
VALID_BY_NAME = {"title": "Spring round", "username": "fuzz-user", "display_name": "Fuzz User",
                 "password": "a long password 123", "new_password": "a long password 123",
                 "confirm": "a long password 123", "committed_revenue_yuan": "300000",
                 "opens_at": "2026-03-05T09:00", "closes_at": "2026-03-12T18:00",
                 "seen_at": "2026-03-02T08:00", "hired_on": "2024-01-15",
                 "competitor_site": "https://competitor.example.com"}
LONG_ENOUGH = "A careful plan for this account, with visits every two weeks."
HOSTILE_IDS = ["0", "00", "-1", str(2**31), str(2**63), str(2**64), "9" * 30, "9" * 400, "²",
               "①", "٣", "1e3", "%00", "%0A", "1%00"]
# Blueprints and endpoints by the user that can reach their forms ("own": a rep whose only
# requests are signing out and changing their own password).
ROLE_OF_BLUEPRINT = {"market": "rep", "manage": "manager", "admin": "admin", "rules": "admin",
                     "imports": "admin", "accountability": "manager", "profiles": "manager",
                     "auth": "own", "notifications": "rep", "language": "rep",
                     "accounts": "manager",
                     "board": "manager", "reviews": "manager", "sponsors": "admin",
                     "fairness": "manager", "round_reviews": "manager",
                     "application_reviews": "manager", "audit": "manager"}
ROLE_OF_ENDPOINT = {"auth.login": "anonymous", "health.healthz": "anonymous",
                    "accountability.inbox": "rep",
                    "accountability.explain": "rep", "profiles.mine": "rep",
                    "board.my_accounts": "rep",
                    "notifications.set_user_email": "admin", "reviews.mine": "rep",
                    "reviews.write": "rep"}
# Refusals that are recorded on purpose: a failed sign-in counts against the account and the
# address, and a refused import keeps its report.
RECORDED_REFUSALS = {"auth.login": {"login_throttles"}, "imports.upload": {"import_runs"}}


@pytest.fixture
def app_config(app_config):
    return {**app_config, "WTF_CSRF_ENABLED": True}


@dataclass
class Target:
    endpoint: str
    rule: str
    method: str
    role: str
    arguments: tuple[str, ...]
    fields: set[str] = field(default_factory=set)
    has_form: bool = False  # some page shows a form aimed at it

    @property
    def name(self) -> str:
        return f"{self.method} {self.rule}"


class FormReader(HTMLParser):
    """The forms of a page: where each posts to and the names and values of its fields.

    An htmx element that posts by itself sends the fields of its form, or of the form it
    includes (hx-include="#id"), as htmx does.
    """

    def __init__(self, page_path: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page_path = page_path
        self.forms: list[tuple[str, str, set[str]]] = []
        self.by_id: dict[str, set[str]] = defaultdict(set)
        self.values: dict[str, set[str]] = defaultdict(set)
        self.current: tuple[str, str, set[str]] | None = None
        self.textarea: str | None = None
        self.select: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            action = attributes.get("action") or attributes.get("hx-post") or attributes.get(
                "hx-get") or self.page_path
            names = self.by_id[attributes["id"]] if attributes.get("id") else set()
            self.current = ((attributes.get("method") or "get").upper(), action, names)
            self.forms.append(self.current)
        elif tag in ("input", "select", "textarea", "button") and attributes.get("name"):
            name = attributes["name"]
            if self.current is not None:
                self.current[2].add(name)
            if attributes.get("value") is not None:
                self.values[name].add(attributes["value"])
            self.textarea = name if tag == "textarea" else None
            self.select = name if tag == "select" else self.select
        elif tag == "option" and self.select:
            self.values[self.select].add(attributes.get("value") or "")
        if attributes.get("hx-post") and tag != "form":
            include = attributes.get("hx-include", "")
            names = (self.current[2] if self.current is not None
                     else self.by_id[include[1:]] if include.startswith("#") else set())
            self.forms.append(("POST", attributes["hx-post"], names))

    def handle_data(self, data):
        if self.textarea and data.strip():
            self.values[self.textarea].add(data[:2_000])

    def handle_endtag(self, tag):
        if tag == "form":
            self.current = None
        elif tag == "textarea":
            self.textarea = None
        elif tag == "select":
            self.select = None


@pytest.fixture
def world(session, clock, make_branch, make_rep, make_manager, make_admin, make_account,
          make_round, make_bid, give_accounts, adopt_review_rules):
    """Users of every role, a draft, an open and a scored round with bids, a round in blind
    review, and an incident."""
    make_branch()
    make_branch("SH", "Shanghai")
    rep, other, victim, own = make_rep(), make_rep(), make_rep(), make_rep()
    manager, admin = make_manager(), make_admin()
    give_accounts(rep, 3)
    accounts = [make_account(owner=other, executive_sponsor="Mr Wang" if n == 5 else None)
                for n in range(7)]
    draft = make_round(status=RoundStatus.DRAFT, accounts=accounts[:2], manager=manager,
                       opens_at=clock() + timedelta(days=1))
    open_round = make_round(accounts=accounts[2:4], manager=manager)
    closing = make_round(accounts=accounts[4:6], manager=manager,
                         closes_at=clock() + timedelta(hours=1))
    make_bid(rep, open_round.listings[0])
    make_bid(rep, open_round.listings[1])  # two bids to rank: the form on "my bids"
    make_bid(rep, closing.listings[0])
    make_bid(victim, closing.listings[0])
    make_bid(victim, closing.listings[1])
    held = session.scalars(select(Account).where(Account.owner_id == rep.id)).first()
    log_incident(session, manager, account_id=held.id, competitor_site="https://x.example",
                 ad_type="logo", evidence_url="https://x.example/ad",
                 seen_at=clock() - timedelta(hours=3), now=clock())
    # A loss review due from `rep`, so the review pages answer for a real one.
    lost = session.scalars(select(Account).where(Account.owner_id == rep.id)
                           .order_by(Account.id.desc())).first()
    transfer_account(session, manager, account_id=lost.id, to_rep_id=other.id,
                     reason="The client asked for a new rep.",
                     review_text="Visits stopped after the reorganisation.", now=clock())
    import_file(session, admin, "reps", "reps.csv",
                b"external_id,username,name,branch\r\nR-900,imported,Imported Rep,BJ\r\n"
, valid_rows_only=False, now=clock())
    # Made last: the rounds above keep the rules without a review. Its page offers the
    # reviewers' form and the review's early close.
    adopt_review_rules()
    reviewed = make_round(accounts=[make_account(owner=other)], manager=manager,
                          closes_at=clock() + timedelta(hours=1))
    make_bid(victim, reviewed.listings[0])
    name_reviewers(session, manager, reviewed.id, [manager.id], clock())
    clock.advance(hours=2)
    assert score_closed_round(session, closing.id, clock())
    assert score_closed_round(session, reviewed.id, clock())  # into blind review
    reload(session)
    return {"rep": rep, "manager": manager, "admin": admin, "victim": victim, "own": own,
            "rounds": [draft.id, open_round.id, closing.id, reviewed.id],
            "account_numbers": [account.external_id for account in accounts]}


def valid_ids(session, world) -> dict[str, list[int]]:
    """Ids each path argument can name, so that some requests get past the lookup."""
    from bidhub.models import (
        AccountabilityIncident,
        AccountReview,
        Appeal,
        Bid,
        Branch,
        ImportRun,
        Listing,
        Notification,
        TransferRequest,
    )

    reload(session)
    ids = lambda model: list(session.scalars(select(model.id).order_by(model.id)))  # noqa: E731
    return {
        "round_id": world["rounds"], "listing_id": ids(Listing), "account_id": ids(Account),
        "bid_id": ids(Bid), "user_id": [world["victim"].id],
        "rep_id": [world["rep"].id, world["victim"].id], "incident_id": ids(AccountabilityIncident),
        "version_id": ids(RuleSetVersion), "run_id": ids(ImportRun) or [1],
        "branch_id": ids(Branch),
        "notification_id": ids(Notification),
        "appeal_id": ids(Appeal) or [1],
        "review_id": ids(AccountReview) or [1],
        "request_id": ids(TransferRequest) or [1],
        # The blind review's codes (the manager reviews the round in review) and a made-up one.
        "code": [*session.scalars(select(Bid.review_code).where(Bid.review_code.is_not(None))
                                  .order_by(Bid.review_code)), "NOCODE"],
    }


class Clients:
    """One signed-in test client per role, signed in again when a request signed it out."""

    def __init__(self, app, world) -> None:
        self.app, self.world = app, world
        self.clients: dict[str, object] = {}
        self.tokens: dict[str, str] = {}

    def get(self, role: str):
        if role not in self.clients:
            # Failed sign-ins are fuzzed from an address of their own, so that throttling
            # them does not stop the other users from signing in again.
            client = self.app.test_client()
            client.environ_base["REMOTE_ADDR"] = ("203.0.113.9" if role == "anonymous"
                                                  else "127.0.0.1")
            if role != "anonymous":
                response = client.post("/login", data={
                    "username": self.world[role].username, "password": PASSWORD,
                    "csrf_token": csrf_token_from(client.get("/login").get_data(as_text=True))})
                assert response.status_code == 302, response.get_data(as_text=True)[:300]
            page = client.get("/login" if role == "anonymous" else "/password")
            self.tokens[role] = csrf_token_from(page.get_data(as_text=True))
            self.clients[role] = client
        return self.clients[role], self.tokens[role]

    def forget(self, role: str) -> None:
        self.clients.pop(role, None)


def row_counts(session) -> dict[str, int]:
    reload(session)
    tables = sorted(Base.metadata.tables)
    counts = session.execute(text("SELECT " + ", ".join(
        f'(SELECT count(*) FROM "{name}")' for name in tables))).one()  # noqa: S608
    return dict(zip(tables, counts, strict=True))


def targets_of(app) -> list[Target]:
    targets = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        blueprint = rule.endpoint.split(".")[0]
        role = ROLE_OF_ENDPOINT.get(rule.endpoint) or ROLE_OF_BLUEPRINT.get(blueprint)
        assert role, f"no role to fuzz {rule.endpoint} with: add its blueprint to ROLE_OF_BLUEPRINT"
        for method in sorted(rule.methods & {"GET", "POST"}):
            targets.append(Target(rule.endpoint, rule.rule, method, role,
                                  tuple(sorted(rule.arguments))))
    return targets


def path_of(target: Target, arguments: dict[str, str]) -> str:
    path = target.rule
    for name, value in arguments.items():
        value = value if value.startswith("%") or "%" in value else quote(value, safe="")
        path = path.replace(f"<int:{name}>", value).replace(f"<code:{name}>", value)
    return path


def read_forms(app, clients: Clients, targets: list[Target], ids) -> dict[str, set[str]]:
    """Visit every page as its role; give each POST target the fields of the forms aimed at it."""
    adapter = app.url_map.bind("localhost")
    by_endpoint = {(target.endpoint, target.method): target for target in targets}
    values: dict[str, set[str]] = defaultdict(set)
    for target in targets:
        if target.method != "GET":
            continue
        for choice in range(min(8, max((len(ids[name]) for name in target.arguments),
                                       default=1))):
            arguments = {name: str(ids[name][choice % len(ids[name])])
                         for name in target.arguments}
            client, _token = clients.get(target.role)
            path = path_of(target, arguments)
            response = client.get(path)
            if response.status_code != 200 or "html" not in response.content_type:
                continue
            reader = FormReader(path)
            reader.feed(response.get_data(as_text=True))
            for name, seen in reader.values.items():
                values[name] |= seen
            for method, action, names in reader.forms:
                try:
                    endpoint, _args = adapter.match(urlsplit(action).path, method=method)
                except HTTPException:
                    continue
                if (endpoint, method) in by_endpoint:
                    by_endpoint[endpoint, method].fields |= names
                    by_endpoint[endpoint, method].has_form = True
            if not target.arguments:
                break
    every_field = set().union(*(target.fields for target in targets if target.method == "POST"))
    for target in targets:
        if target.method == "POST" and not target.has_form:
            target.fields = set(every_field)
        target.fields.discard("csrf_token")
    return values


def value_strategy(name: str, seen: dict[str, set[str]]):
    plausible = sorted(seen.get(name, set())) + PLAUSIBLE_TEXT
    hostile = st.sampled_from(HOSTILE)
    return st.one_of(
        st.sampled_from(plausible),
        hostile,
        st.tuples(st.sampled_from(plausible), hostile).map("".join),
        st.text(max_size=40),
    )


def valid_value(name: str, seen: dict[str, set[str]], world) -> str:
    if name == "account":
        return world["account_numbers"][-1]
    if name in VALID_BY_NAME:
        return VALID_BY_NAME[name]
    candidates = sorted(value for value in seen.get(name, ()) if value.strip())
    return candidates[0] if candidates else LONG_ENOUGH


def request_strategy(target: Target, ids, seen, world):
    # A POST also gets fields its form does not have, as a hand-made request would.
    names = (sorted((target.fields | EXTRA_FIELDS) - {"file"}) if target.method == "POST"
             else QUERY_NAMES)
    # Three in four path ids name a row, so that most requests reach the form behind them.
    path_arguments = st.fixed_dictionaries({
        name: st.sampled_from(HOSTILE_IDS + [str(value) for value in ids[name]] * (
            3 * len(HOSTILE_IDS) // len(ids[name]) + 1))
        for name in target.arguments})
    free = st.fixed_dictionaries({}, optional={
        name: value_strategy(name, seen) for name in names})
    # Mostly valid: each field keeps a value that passes its checks three times in four.
    mostly_valid = st.fixed_dictionaries({
        name: st.one_of(*[st.just(valid_value(name, seen, world))] * 3,
                        value_strategy(name, seen))
        for name in names})
    fields = st.one_of(free, mostly_valid) if target.method == "POST" else free
    upload = st.none()
    if "file" in target.fields:
        upload = st.one_of(st.tuples(
            st.one_of(st.binary(max_size=300), st.sampled_from(HOSTILE).map(
                lambda cell: (f"external_id,username,name,branch,hire_date\r\n"
                              f"R-{len(cell)},{cell},{cell},BJ,{cell}\r\n")
                .encode("utf-8", "replace"))),
            st.sampled_from(["reps.csv", "a\x00.csv", "x.xlsx", "", "../../etc/passwd",
                             "报表.csv", "a" * 300])), st.none())
    return st.tuples(path_arguments, fields, upload, st.booleans())


def test_generated_hostile_input_never_gives_a_500_and_refusals_write_nothing(
        app, session, world, backend):
    clients = Clients(app, world)
    targets = targets_of(app)
    ids = valid_ids(session, world)
    seen = read_forms(app, clients, targets, ids)
    sent: dict[str, int] = defaultdict(int)
    started = time.monotonic()

    def sender(target: Target):
        def send(case):
            path_arguments, fields, upload, as_htmx = case
            role = target.role
            client, token = clients.get(role)
            path = path_of(target, path_arguments)
            headers = {"HX-Request": "true"} if as_htmx else {}
            before = row_counts(session)
            if target.method == "GET":
                response = client.get(path, query_string=fields, headers=headers)
            else:
                data = {**fields, "csrf_token": token}
                if upload is not None:
                    content, filename = upload
                    data["file"] = (io.BytesIO(content), filename)
                response = client.post(path, data=data, headers=headers,
                                       content_type="multipart/form-data")
            sent[target.name] += 1
            body = response.get_data()
            assert response.status_code < 500, (target.name, path, fields, body[:300])
            if response.status_code >= 400:
                after = row_counts(session)
                allowed = RECORDED_REFUSALS.get(target.endpoint, set())
                changed = {name for name in before if before[name] != after[name]} - allowed
                assert not changed, (target.name, path, fields, response.status_code, changed)
            if target.endpoint == "auth.logout" or (
                    response.status_code in (302, 303, 401)
                    and "/login" in (response.headers.get("Location") or "")
                    or "HX-Redirect" in response.headers and "/login" in response.headers[
                        "HX-Redirect"]):
                clients.forget(role)

        return send

    for target in targets:
        run = settings(max_examples=EXAMPLES_PER_TARGET, deadline=None, database=None,
                       phases=[Phase.explicit, Phase.generate, Phase.shrink],
                       suppress_health_check=list(HealthCheck))(
            seed(zlib.crc32(target.name.encode()))(
                given(request_strategy(target, ids, seen, world))(sender(target))))
        run()

    total = sum(sent.values())
    assert total >= MIN_REQUESTS, sent
    assert all(sent[target.name] >= EXAMPLES_PER_TARGET // 2 for target in targets), sent
    print(f"{backend}: {total} requests to {len(targets)} targets in "
          f"{time.monotonic() - started:.1f} s")
