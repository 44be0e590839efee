"""Fixtures: a fresh migrated database per test, an injectable clock, and make_* factories."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from werkzeug.security import generate_password_hash

from bidhub import create_app
from bidhub.clock import FrozenClock
from bidhub.db import engine_of, get_session, make_engine, upgrade_database
from bidhub.models import (
    Account,
    Bid,
    Branch,
    Contact,
    FilingKind,
    Listing,
    ListingStatus,
    Opportunity,
    Role,
    Round,
    RoundStatus,
    User,
)
from bidhub.services.ownership import OwnerChange, change_owners
from bidhub.services.rule_sets import default_rules_path, ensure_active_rule_set
from bidhub.services.users import new_session_token

PASSWORD = "correct horse battery"
# A cheap hash keeps factories fast; the app itself hashes with scrypt.
PASSWORD_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Beijing
# Where the browser walks (tests/browser) put their screenshots.
ARTIFACTS = Path(os.environ.get("BIDHUB_TEST_ARTIFACTS",
                                Path(__file__).resolve().parent.parent / "test-artifacts"))
SCREENSHOTS = ARTIFACTS / "screenshots"
# When this run began: the summary counts the screenshots written since, whichever process
# (pytest-xdist's workers run the walks) wrote them.
RUN_STARTED = time.time()


def pytest_terminal_summary(terminalreporter) -> None:
    written = [path for path in SCREENSHOTS.glob("*.png")
               if path.stat().st_mtime >= RUN_STARTED] if SCREENSHOTS.is_dir() else []
    if written:
        terminalreporter.write_line(f"browser screenshots: {len(written)} files in {SCREENSHOTS}")


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory) -> Path:
    """One database migrated to head; each test gets a copy of the file."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_database(engine)
    engine.dispose()
    return path


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


def postgres_test_url() -> str | None:
    return os.environ.get("BIDHUB_TEST_POSTGRES_URL") or None


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    """The database a test runs on: every test that touches the database runs on both.

    PostgreSQL runs when BIDHUB_TEST_POSTGRES_URL names a server (.ci/run starts one);
    without it those runs are skipped.
    """
    if request.param == "postgresql" and not postgres_test_url():
        pytest.skip("set BIDHUB_TEST_POSTGRES_URL to run on PostgreSQL (.ci/run does)")
    return request.param


class PostgresDatabases:
    """Per-test PostgreSQL databases, each a copy of one template migrated once per run.

    Copying the template takes the server a few hundred milliseconds, about as long as a
    short test runs; the next copy is made in a thread of its own while the current test
    runs, so that a test waits only for what is left of it."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.admin_engine = create_engine(self.url, isolation_level="AUTOCOMMIT",
                                          poolclass=NullPool)
        self.prefix = f"{self.url.database}_test_{os.getpid()}"
        self.template = f"{self.prefix}_template"
        self.counter = itertools.count(1)
        self.created: list[str] = []
        self.drop_leftovers()
        self.execute(f'CREATE DATABASE "{self.template}"')
        engine = make_engine(self.url_of(self.template))
        upgrade_database(engine)
        engine.dispose()
        self.copier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="template-copy")
        self.next_copy: Future[str] = self.copier.submit(self.copy_template)

    def url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def execute(self, statement: str) -> None:
        with self.admin_engine.connect() as connection:
            connection.execute(text(statement))

    def drop(self, name: str) -> bool:
        """Drop a test database; False when the server is still busy with it (autovacuum, say),
        in which case the end of the run tries again."""
        for _attempt in range(3):
            try:
                self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return True
            except DBAPIError:
                time.sleep(0.2)
        return False

    def copy_template(self) -> str:
        name = f"{self.prefix}_{next(self.counter)}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return name

    def new(self) -> str:
        """A fresh copy of the template: the one made ahead, and the next one started."""
        name = self.next_copy.result()
        self.next_copy = self.copier.submit(self.copy_template)
        return self.url_of(name)

    def drop_leftovers(self) -> None:
        """Databases an interrupted earlier run of this process id left behind."""
        with self.admin_engine.connect() as connection:
            names = connection.execute(text(
                "SELECT datname FROM pg_database WHERE datname LIKE :prefix"),
                {"prefix": f"{self.prefix}%"}).scalars().all()
        for name in names:
            self.drop(name)

    def drop_all(self) -> None:
        self.copier.shutdown(wait=True)
        for name in [*self.created, self.template]:
            self.drop(name)
        self.admin_engine.dispose()


@pytest.fixture(scope="session")
def postgres_databases():
    url = postgres_test_url()
    if url is None:
        pytest.skip("set BIDHUB_TEST_POSTGRES_URL to run on PostgreSQL (.ci/run does)")
    databases = PostgresDatabases(url)
    yield databases
    databases.drop_all()


@pytest.fixture
def database_url(request, backend, migrated_template, tmp_path) -> str:
    if backend == "postgresql":
        databases = request.getfixturevalue("postgres_databases")
        url = databases.new()
        yield url
        name = make_url(url).database
        if databases.drop(name):
            databases.created.remove(name)
        return
    path = tmp_path / "bidhub.sqlite3"
    shutil.copy(migrated_template, path)
    yield f"sqlite:///{path}"


@pytest.fixture
def app_config(database_url, clock, tmp_path) -> dict:
    # Tests assert English page text; bidhub's default for people is Chinese (tests/test_i18n.py).
    return {"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": database_url,
            "DEFAULT_LOCALE": "en",
            "CLOCK": clock, "WTF_CSRF_ENABLED": False, "SCHEDULER_ENABLED": False,
            "LEDGER_CHECKPOINT_FILE": str(tmp_path / "ledger-checkpoints.jsonl"),
            "LEDGER_KEY": "test-ledger-key",
            # Uploads waiting for their column mapping stay in the test's own folder.
            "IMPORT_UPLOAD_FOLDER": str(tmp_path / "import-uploads")}


@pytest.fixture
def app(app_config):
    """The app, with no context left pushed: every request gets its own, as in production."""
    app = create_app(app_config)
    with app.app_context():
        session = get_session()
        ensure_active_rule_set(session, default_rules_path(app.config).read_text("utf-8"),
                               app_config["CLOCK"]())
        session.commit()
    yield app
    engine_of(app).dispose()


@pytest.fixture
def session(app):
    """The test's own database session; `reload(session)` sees what requests wrote since."""
    session = app.extensions["bidhub_sessionmaker"]()
    yield session
    session.close()


def reload(session) -> None:
    """Forget what the test session has loaded, so it sees what requests wrote since."""
    session.rollback()
    session.expire_all()


@pytest.fixture
def client(app):
    return app.test_client()


def login(client, user: User, password: str = PASSWORD):
    response = client.post("/login", data={"username": user.username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response


def client_of(app, user: User):
    """A test client of its own, signed in as `user`: for pages several people use at once."""
    client = app.test_client()
    login(client, user)
    return client


def release_on_round_page(client, round_id: int, data: dict):
    """Release one account from the round page as a manager does: the first post shows who
    holds it, the second confirms with what it showed. The confirmation's response, or the
    first one when that was no preview (a refusal)."""
    import re

    path = f"/manage/rounds/{round_id}/release"
    shown = client.post(path, data=data)
    page = shown.get_data(as_text=True)
    fields = dict(re.findall(r'name="(shown_account|owner)" type="hidden" value="([^"]*)"',
                             page))
    if shown.status_code != 200 or not fields.get("shown_account"):
        return shown
    return client.post(path, data={**data, **fields})


@pytest.fixture
def login_as(client):
    def log_in(user: User):
        login(client, user)
        return client

    return log_in


_sequence = itertools.count(1)


@pytest.fixture
def make_branch(session):
    def make(code: str = "BJ", name: str = "Beijing") -> Branch:
        from sqlalchemy import select

        branch = session.scalars(select(Branch).where(Branch.code == code)).first()
        if branch is None:
            branch = Branch(code=code, name=name)
            session.add(branch)
            session.commit()
        return branch

    return make


@pytest.fixture
def make_user(session, make_branch, clock):
    def make(role: str = Role.REP, *, username: str | None = None, branch: Branch | None = None,
             hired_on: date | None = None, status: str = "active", name: str | None = None) -> User:
        n = next(_sequence)
        if branch is None and role == Role.REP:
            branch = make_branch()
        user = User(username=username or f"{role}{n}", display_name=name or f"{role.title()} {n}",
                    password_hash=PASSWORD_HASH, role=role,
                    branch_id=branch.id if branch else None, is_active=True, status=status,
                    hired_on=hired_on or (clock() - timedelta(days=3 * 365)).date(),
                    session_token=new_session_token(), failed_login_count=0,
                    created_at=clock())
        session.add(user)
        session.commit()
        return user

    return make


@pytest.fixture
def make_rep(make_user):
    def make(**kwargs) -> User:
        return make_user(Role.REP, **kwargs)

    return make


@pytest.fixture
def make_manager(make_user):
    def make(**kwargs) -> User:
        return make_user(Role.KA_MANAGER, **kwargs)

    return make


@pytest.fixture
def make_admin(make_user):
    def make(**kwargs) -> User:
        return make_user(Role.ADMIN, **kwargs)

    return make


@pytest.fixture
def make_account(session, make_branch, clock):
    def make(*, owner: User | None = None, branch: Branch | None = None, name: str | None = None,
             industry: str = "Internet", ownership_type: str = "private",
             annual_value_yuan: int = 120_000, executive_sponsor: str | None = None,
             contacts: bool = False) -> Account:
        n = next(_sequence)
        branch = branch or make_branch()
        account = Account(external_id=f"KA-{n:06d}", name=name or f"Account {n} Co., Ltd.",
                          industry=industry, ownership_type=ownership_type, branch_id=branch.id,
                          annual_value_yuan=annual_value_yuan, owner_id=None,
                          executive_sponsor=executive_sponsor, created_at=clock())
        session.add(account)
        session.flush()
        if owner is not None:
            # Owners arrive as they do in production: filed, as a CRM import's first load.
            change_owners(session, [OwnerChange(account.id, owner.id, filing={
                "kind": FilingKind.CRM_IMPORT, "reason": "CRM import",
                "decided_by_id": owner.id})], limit=None, now=clock(),
                accounts={account.id: account})
        if contacts:
            session.add_all([
                Contact(account_id=account.id, role="decision_maker", name="张总", title="CEO"),
                Contact(account_id=account.id, role="purchaser", name="李经理", title="HR"),
            ])
        session.commit()
        return account

    return make


@pytest.fixture
def give_accounts(make_account):
    """Make `rep` hold `count` more accounts."""

    def give(rep: User, count: int) -> None:
        for _ in range(count):
            make_account(owner=rep)

    return give


@pytest.fixture
def make_opportunities(session, clock):
    """Closed opportunities for a rep: `won` won and `lost` lost within the last year."""

    def make(rep: User, account: Account, *, won: int = 0, lost: int = 0) -> None:
        closed_at = clock() - timedelta(days=30)
        for stage, count in (("won", won), ("lost", lost)):
            for _ in range(count):
                session.add(Opportunity(account_id=account.id, rep_id=rep.id, amount_yuan=50_000,
                                        stage=stage, opened_at=closed_at - timedelta(days=60),
                                        closed_at=closed_at))
        session.commit()

    return make


@pytest.fixture
def make_round(session, make_manager, clock):
    """A round in the given state, with listings for `accounts`, written directly."""

    def make(*, accounts: list[Account] = (), status: str = RoundStatus.PUBLISHED,
             opens_at: datetime | None = None, closes_at: datetime | None = None,
             manager: User | None = None, title: str | None = None) -> Round:
        from bidhub.services.rule_sets import active_rule_set

        manager = manager or make_manager()
        opens_at = opens_at or clock() - timedelta(hours=1)
        round_ = Round(title=title or f"Round {next(_sequence)}", opens_at=opens_at,
                       closes_at=closes_at or clock() + timedelta(days=7),
                       rule_set_id=active_rule_set(session).id, status=status,
                       created_by_id=manager.id, created_at=opens_at,
                       published_at=opens_at if status != RoundStatus.DRAFT else None)
        session.add(round_)
        session.flush()
        for account in accounts:
            session.add(Listing(round_id=round_.id, account_id=account.id,
                                released_from_id=account.owner_id, release_reason="rep_left",
                                status=ListingStatus.LISTED, released_by_id=manager.id,
                                created_at=opens_at))
        session.commit()
        return round_

    return make


def stored_bid_of(session, make_bid, rep: User, listing: Listing, revenue: int) -> Bid:
    """A bid committing `revenue`, where 0 stands for a bid stored before a ¥0 commitment was
    refused: placed with ¥1 through the real use case, then given the 0 it was stored with, so
    that the pages and metrics that read such bids are still tested."""
    bid = make_bid(rep, listing, revenue=revenue or 1)
    if revenue == 0:
        session.execute(text("UPDATE bids SET committed_revenue_yuan = 0 WHERE id = :id"),
                        {"id": bid.id})
        session.commit()
        session.expire_all()
    return bid


@pytest.fixture
def make_bid(session, clock):
    """A bid written through the real use case, at the clock's time."""
    from bidhub.services.bidding import submit_bid

    def make(rep: User, listing: Listing, *, plan: str = "A careful plan for this account.",
             revenue: int = 300_000) -> Bid:
        return submit_bid(session, rep, listing.id, account_plan=plan,
                          committed_revenue_yuan=revenue,
                          visit_plan="Visit the decision maker in week one.",
                          submission_key=None, now=clock())

    return make



@pytest.fixture
def capped_round(session, clock, make_manager, make_rep, make_account, make_round, make_bid,
                 make_opportunities):
    """A scored round under one award per rep and round: "Strong Rep" is proposed for the
    first listing and kept out of the second by the cap ("Weak" bids on both too). The first
    listing's account has markup in its name."""
    from types import SimpleNamespace

    from bidhub.services.adjudication import score_closed_round
    from bidhub.services.rule_sets import active_rule_set, adopt_rule_set

    adopt_rule_set(session, None, active_rule_set(session).text.replace(
        "max_awards_per_rep_per_round = 3", "max_awards_per_rep_per_round = 1"), "one award",
        "", clock())
    session.commit()
    manager, strong, weak = make_manager(), make_rep(name="Strong Rep"), make_rep(name="Weak")
    history = make_account()
    make_opportunities(strong, history, won=9, lost=1)
    make_opportunities(weak, history, won=2, lost=8)
    round_ = make_round(accounts=[make_account(name="<b>东方</b> & 西方集团"), make_account()],
                        manager=manager, closes_at=clock() + timedelta(hours=1))
    first, second = sorted(round_.listings, key=lambda listing: listing.id)
    bids = {(rep.id, listing.id): make_bid(rep, listing)
            for rep in (strong, weak) for listing in (first, second)}
    clock.advance(hours=1)
    assert score_closed_round(session, round_.id, clock())
    return SimpleNamespace(manager=manager, strong=strong, weak=weak, round=round_,
                           first=first, second=second, bids=bids,
                           capped_bid=bids[strong.id, second.id])


REVIEW_RULES = """
[review]
min_reviews_per_bid = 2
show_reviewer_names = {show_names}

[[review.criteria]]
name = "plan_quality"
label = "Plan quality"
min = 1
max = 5

[[review.criteria]]
name = "feasibility"
label = "Feasibility"
min = 1
max = 5

[[factors]]
metric = "plan_review"
weight = 0.2
normaliser = "minmax"
"""


@pytest.fixture
def adopt_review_rules(app, session, clock):
    """Make the default rules plus a blind review (two criteria, 1-5, two reviews per bid,
    plan_review weighted 0.2) the rules that rounds made from now on are pinned to."""
    from bidhub.services.rule_sets import adopt_rule_set

    def adopt(*, show_names: bool = False):
        text = default_rules_path(app.config).read_text("utf-8") + REVIEW_RULES.format(
            show_names=str(show_names).lower())
        version = adopt_rule_set(session, None, text, "reviewed", "blind review", clock())
        session.commit()
        return version

    return adopt


def user_form_fingerprint(client, user_id: int) -> str:
    """The `expected` fingerprint the admin's user form carries, as the page draws it now."""
    page = client.get(f"/admin/users/{user_id}").get_data(as_text=True)
    match = re.search(r'name="expected"[^>]*value="([^"]*)"', page)
    assert match, "no fingerprint on the user form"
    return match.group(1)


def csrf_token_from(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'"X-CSRFToken": "([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def run_together(calls):
    """Start every call at the same moment, each in its own thread (a race with separate
    connections); their results, or the errors they raised, in order."""
    results = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(index, call):
        barrier.wait()
        try:
            results[index] = call()
        except Exception as error:  # noqa: BLE001 - reported by the assertions
            results[index] = error

    threads = [threading.Thread(target=run, args=(index, call))
               for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
