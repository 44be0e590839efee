"""Benchmark: bidhub's main pages against a bare Flask page under gunicorn, then a bid burst.

Run: python bench/web.py [--duration 5] [--burst-seconds 10] [--clients 50]
     (needs wrk: `apt-get install -y wrk`; gunicorn comes with bidhub's dependencies)
     BIDHUB_BENCH_POSTGRES_URL=postgresql+psycopg://user:pw@127.0.0.1:5432/any python bench/web.py
     adds a PostgreSQL run after the SQLite one (the role must be allowed to create databases:
     each run builds a throw-away database beside the one named, and drops it afterwards).

For each database it builds the demo world (`bidhub demo --no-serve`) into a temporary
instance folder (or a new PostgreSQL database) and starts gunicorn (2 sync workers on a free
loopback port) serving bidhub and, in the same server, a bare Flask page answering "ok"
(mounted under /__bench/bare by this script only). It prints the machine (processor, cores,
Python: bench/machine.py), then
1. per page, as wrk -t2 -c16 sees it over three interleaved rounds (the bare page first in each
   round): req/s (median of the rounds), latency p50/p99 (of the median round), the ratio to
   the bare page measured in the same round (median of the rounds) and whether it meets the
   issue's target (the rep's listing page >= 0.10, its htmx partial >= 0.20, others >= 0.08).
   Before timing, each page is fetched once with the same cookie and User-Agent and must answer
   200 with its expected content (wrk counts a redirect to the login page as a success), and
   wrk's non-2xx/3xx count is printed beside it. Beside each page, the processor time per
   request (median of the rounds) of gunicorn's workers and, on a PostgreSQL server running
   on this machine, of the server's processes serving the bench's database, read from /proc:
   where a page's cost goes on the two cores that wrk, gunicorn and the database share;
2. a bid burst, on a gunicorn of its own with as many sync workers as `bidhub serve` starts
   by default on this machine (2 x cores + 1; --burst-workers N to choose): a bid waits on
   the database (SQLite's one writer, PostgreSQL's WAL flush at commit) and production runs
   the served default, not the pages' fixed 2 workers. A round of --listings accounts is
   created and published through bidhub's services, the reps' track-record snapshots are
   warmed as the scheduler would
   (`bidhub refresh-track-records`), and --clients reps, each signed in through the real login
   form, fetch the bid form once for its CSRF token and then post real bid forms for distinct
   listings for --burst-seconds. It prints acknowledged bids/s (acknowledged = the 303 to
   "my bids" that the route answers a stored bid with), the processor time per POST of the
   workers and of a local PostgreSQL server (as for the pages), POST latency p50/p95/p99, 5xx and
   other non-success counts, and lost bids (acknowledged but not in the database afterwards).
The machine's other load shows in every figure: compare ratios, and rerun on a quiet machine.
Takes about 3 to 4 minutes per database with the defaults.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402

BARE_PREFIX = "/__bench/bare"
USER_AGENT = "bidhub-bench/1.0"
PASSWORD = "bidhub-demo"  # every demo user's (bidhub.demo.DEMO_PASSWORD)
TARGETS = {"listing page, full": 0.10, "listing page, htmx partial": 0.20}
OTHER_TARGET = 0.08
BURST_TARGET = {"sqlite": 300, "postgresql": 250}
BURST_P99_TARGET_MS = 300


# --- the server ------------------------------------------------------------------------------

def bench_app():
    """gunicorn's app: bidhub, and a bare Flask page beside it measured in the same server."""
    from flask import Flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from bidhub import create_app

    bare = Flask("bare")

    @bare.route("/")
    def ok():
        return "ok"

    app = create_app()
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {BARE_PREFIX: bare})
    return app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Served:
    port: int
    pid: int  # gunicorn's master: its children are the workers


@contextmanager
def gunicorn(env: dict[str, str], log_path: Path, workers: int = 2):
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "sync",
               "--bind", f"127.0.0.1:{port}", "--pythonpath", str(ROOT), "--timeout", "60",
               "--config", str(ROOT / "bench" / "gunicorn_config.py"), "bench.web:bench_app()"]
    help_text = subprocess.run([sys.executable, "-m", "gunicorn", "--help"], capture_output=True,
                               text=True, check=False).stdout
    if "--no-control-socket" in help_text:
        # Newer gunicorns open a control socket at one path per user, shared by every server.
        command.insert(-1, "--no-control-socket")
    with open(log_path, "ab") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            with suppress(OSError):
                if Client(port).get(BARE_PREFIX + "/").status == 200:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not start; see {log_path}")
            time.sleep(0.2)
        yield Served(port, server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- a small HTTP client (http.client, keep-alive when the server allows it) -----------------

@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str


class Client:
    """One connection and one cookie jar; fast enough to drive a burst from threads."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def request(self, method: str, path: str, body: str | None = None,
                headers: dict[str, str] | None = None, *, keep_cookies: bool = True) -> Answer:
        sent = {"User-Agent": USER_AGENT, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = self.cookie_header()
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.connection.request(method, path, body=body, headers=sent)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # A sync worker closed the kept-alive connection: ask once more on a new one.
            self.connection.close()
            self.connection.request(method, path, body=body, headers=sent)
            response = self.connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        if response.getheader("Connection", "").lower() == "close":
            self.connection.close()
        if keep_cookies:
            for header in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = header.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        return Answer(response.status, response.headers, text)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        return self.request("GET", path, headers=headers)

    def post_form(self, path: str, fields: dict[str, str], **options) -> Answer:
        return self.request("POST", path, urllib.parse.urlencode(fields), **options)

    def login(self, username: str) -> None:
        token = csrf_token(self.get("/login").body)
        answer = self.post_form("/login", {"csrf_token": token, "username": username,
                                           "password": PASSWORD})
        if answer.status != 302:
            raise SystemExit(f"signing in as {username} answered {answer.status}")


class BidPoster:
    """Posts forms as a browser would, on a connection of its own each (a sync worker closes
    every connection after its answer), and reads only the status and Location of the answer.

    The burst's clients run on the server's cores: http.client's parsing of every answer's
    headers cost about as much CPU as a tenth of the server's work on the bid.
    """

    def __init__(self, port: int, cookie_header: str) -> None:
        self.port = port
        self.head = (f"Host: 127.0.0.1:{port}\r\nUser-Agent: {USER_AGENT}\r\n"
                     f"Cookie: {cookie_header}\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\n")

    def post(self, path: str, body: str) -> tuple[int, str]:
        data = body.encode("ascii")
        request = (f"POST {path} HTTP/1.1\r\n{self.head}Content-Length: {len(data)}\r\n"
                   "Connection: close\r\n\r\n").encode("latin-1") + data
        chunks = []
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as connection:
            connection.sendall(request)
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        head = b"".join(chunks).partition(b"\r\n\r\n")[0].decode("latin-1")
        status_line, _, headers = head.partition("\r\n")
        location = LOCATION.search(headers)
        return int(status_line.split(" ", 2)[1]), location.group(1).strip() if location else ""


LOCATION = re.compile(r"^location:(.*)$", re.IGNORECASE | re.MULTILINE)
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def csrf_token(html: str) -> str:
    found = CSRF.search(html)
    if not found:
        raise SystemExit("no CSRF token in the page")
    return found.group(1) or found.group(2)


# --- pages under wrk -------------------------------------------------------------------------

@dataclass(frozen=True)
class Page:
    name: str
    path: str
    user: str | None  # None: no cookie (the bare page)
    expect: str  # text the 200 answer must contain
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    non_success: int
    socket_errors: int
    requests: int  # answered in the run


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_duration_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()
    return float(number) * UNITS_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    """The figures this bench prints, from `wrk --latency` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    latency = dict(re.findall(r"^\s*(50|99)(?:\.0+)?%\s+(\S+)\s*$", output, re.MULTILINE))
    if set(latency) != {"50", "99"}:
        raise ValueError(f"no latency distribution in wrk's output:\n{output}")
    non_success = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    requests = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    if requests is None:
        raise ValueError(f"no request count in wrk's output:\n{output}")
    return WrkResult(rps=rps, p50_ms=parse_duration_ms(latency["50"]),
                     p99_ms=parse_duration_ms(latency["99"]),
                     non_success=int(non_success.group(1)) if non_success else 0,
                     socket_errors=sum(map(int, errors.groups())) if errors else 0,
                     requests=int(requests.group(1)))


def run_wrk(port: int, page: Page, cookie: str | None, seconds: int) -> WrkResult:
    command = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "--timeout", "10s",
               "-H", f"User-Agent: {USER_AGENT}"]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    for name, value in page.headers:
        command += ["-H", f"{name}: {value}"]
    command.append(f"http://127.0.0.1:{port}{page.path}")
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def check_page(port: int, page: Page, cookies: dict[str, dict[str, str]]) -> None:
    client = Client(port)
    client.cookies = dict(cookies.get(page.user, {}))
    answer = client.request("GET", page.path, headers=dict(page.headers), keep_cookies=False)
    if answer.status != 200 or page.expect not in answer.body:
        raise SystemExit(f"{page.name} ({page.path}) answered {answer.status} without "
                         f"{page.expect!r}: refusing to time it")


def demo_pages(database_url: str) -> list[Page]:
    """The issue's pages, with ids found on this demo database."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from bidhub.models import Listing, Round, RoundStatus, User

    engine = create_engine(database_url)
    with Session(engine) as session:
        open_round = session.scalars(select(Round).where(Round.status == RoundStatus.PUBLISHED)
                                     .order_by(Round.id)).first()
        closed_round = session.scalars(select(Round).where(Round.status == RoundStatus.SCORED)
                                       .order_by(Round.id)).first()
        listing = session.scalars(select(Listing).where(Listing.round_id == open_round.id)
                                  .order_by(Listing.id)).first()
        account_id = listing.account_id
        rep_id = session.scalars(select(User.id).where(User.username == "rep01")).one()
    engine.dispose()
    return [
        Page("listing page, full", f"/rounds/{open_round.id}", "rep01", 'id="listings"'),
        Page("listing page, htmx partial", f"/rounds/{open_round.id}?sort=name", "rep01",
             'id="listings"', (("HX-Request", "true"),)),
        Page("account page", f"/accounts/{account_id}", "rep01", "<h1"),
        Page("manager's closed round", f"/manage/rounds/{closed_round.id}", "manager", "<h1"),
        Page("filing register", "/manage/filings", "manager", "<h1"),
        Page("rep's track record", f"/reps/{rep_id}", "rep01", "<h1"),
    ]


# --- where a page's processor time goes ------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(stat_line: str) -> float:
    """User plus system CPU seconds from a /proc/<pid>/stat line (the process's name, in
    parentheses, may hold spaces: the fields are counted after its closing one)."""
    fields = stat_line.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def parent_of(stat_line: str) -> int:
    return int(stat_line.rsplit(")", 1)[1].split()[1])


def read_stat(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone, or no /proc on this system
        return None


class CpuMeter:
    """The CPU time that gunicorn's workers and, on PostgreSQL, the server processes serving
    the bench's database have used, read from /proc: what each request costs the machine
    beside wrk's own work and the kernel's. The database server's share is left out (None)
    where its processes are not this machine's (a server elsewhere) or /proc is missing."""

    def __init__(self, gunicorn_pid: int, database_url: str) -> None:
        self.gunicorn_pid = gunicorn_pid
        self.postgres_dsn = (libpq_url(database_url) if database_url.startswith("postgresql")
                             else None)

    def workers(self) -> list[int]:
        found = []
        for entry in Path("/proc").glob("[0-9]*"):
            stat = read_stat(int(entry.name))
            if stat is not None and parent_of(stat) == self.gunicorn_pid:
                found.append(int(entry.name))
        return found

    def database_processes(self) -> list[int]:
        """The server processes of the clients' sessions on the bench's database (not this
        one's) that run on this machine (a process of that number here that is not
        PostgreSQL's is not one)."""
        import psycopg

        with psycopg.connect(self.postgres_dsn, autocommit=True) as connection:
            pids = [row[0] for row in connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")]
        local = []
        for pid in pids:
            with suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"postgres"):
                    local.append(pid)
        return local

    def snapshot(self) -> tuple[dict[int, float], dict[int, float] | None]:
        """CPU seconds so far per worker, and per database server process (None: unknown)."""
        workers = {pid: cpu_seconds(stat) for pid in self.workers()
                   if (stat := read_stat(pid)) is not None}
        if self.postgres_dsn is None:
            return workers, None
        database = {pid: cpu_seconds(stat) for pid in self.database_processes()
                    if (stat := read_stat(pid)) is not None}
        return workers, database or None

    @staticmethod
    def spent(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
        """Seconds used between two snapshots by the processes of the later one (a process
        started in between counts from its start)."""
        if before is None or after is None:
            return None
        return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


@dataclass
class PageRun:
    result: WrkResult
    ratio: float  # to the bare page of the same round
    worker_ms: float | None  # gunicorn's workers' CPU per request
    database_ms: float | None  # the database server's CPU per request (PostgreSQL, local)


def measured_run(port: int, page: Page, cookie: str | None, seconds: int,
                 meter: CpuMeter | None) -> tuple[WrkResult, float | None, float | None]:
    """wrk's figures for `page`, with the CPU milliseconds per request of the workers and
    of the database server (None where not measured)."""
    before = meter.snapshot() if meter else (None, None)
    result = run_wrk(port, page, cookie, seconds)
    after = meter.snapshot() if meter else (None, None)
    answered = max(result.requests, 1)
    worker_s, database_s = (CpuMeter.spent(before[index], after[index]) for index in (0, 1))
    return (result, None if worker_s is None else worker_s * 1000 / answered,
            None if database_s is None else database_s * 1000 / answered)


def median_of(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def bench_pages(served: Served, database_url: str, seconds: int, rounds: int) -> None:
    port = served.port
    meter = CpuMeter(served.pid, database_url) if Path("/proc/self/stat").exists() else None
    pages = demo_pages(database_url)
    bare = Page("bare Flask page", BARE_PREFIX + "/", None, "ok")
    cookies = {}
    for username in ("rep01", "manager"):
        client = Client(port)
        client.login(username)
        cookies[username] = dict(client.cookies)
    for page in [bare, *pages]:
        check_page(port, page, cookies)
    results: dict[str, list[PageRun]] = {page.name: [] for page in pages}
    bare_runs = []
    for round_number in range(1, rounds + 1):
        base, worker_ms, database_ms = measured_run(port, bare, None, seconds, meter)
        bare_runs.append(PageRun(base, 1.0, worker_ms, database_ms))
        print(f"  round {round_number}: bare {base.rps:,.0f} req/s", flush=True)
        for page in pages:
            cookie = "; ".join(f"{k}={v}" for k, v in cookies[page.user].items())
            result, worker_ms, database_ms = measured_run(port, page, cookie, seconds, meter)
            results[page.name].append(PageRun(result, result.rps / base.rps, worker_ms,
                                              database_ms))
        for page in [bare, *pages]:  # still signed in, still the page (not a redirect)?
            check_page(port, page, cookies)
    print("\n  CPU ms/req: processor time per request (median of the rounds) of gunicorn's "
          "workers and of the\n  database server's processes (PostgreSQL on this machine; "
          "SQLite runs inside the workers)")
    print(f"\n  {'page':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>7} "
          f"{'target':>7} {'workers':>8} {'database':>9}  non-2xx")
    for name, runs in [(bare.name, bare_runs), *results.items()]:
        median_run = sorted(runs, key=lambda run: run.result.rps)[len(runs) // 2].result
        ratio = statistics.median(run.ratio for run in runs)
        bad = sum(run.result.non_success + run.result.socket_errors for run in runs)
        worker_ms = median_of([run.worker_ms for run in runs])
        database_ms = median_of([run.database_ms for run in runs])
        if name == bare.name:
            target_text, verdict = "", ""
        else:
            target = TARGETS.get(name, OTHER_TARGET)
            target_text, verdict = f"{target:.2f}", "meets" if ratio >= target else "BELOW"
        print(f"  {name:<28} {statistics.median(run.result.rps for run in runs):>8,.0f} "
              f"{median_run.p50_ms:>8.2f} {median_run.p99_ms:>8.2f} {ratio:>7.3f} "
              f"{target_text:>7} {milliseconds(worker_ms):>8} {milliseconds(database_ms):>9}"
              f"  {bad}  {verdict}".rstrip())


# --- the bid burst ---------------------------------------------------------------------------

@dataclass
class BurstPlan:
    round_id: int
    pairs: dict[str, list[int]]  # rep username -> listing ids they may bid for, in bid order
    added_reps: int


def prepare_burst_round(listing_count: int, clients: int) -> BurstPlan:
    """A published round of `listing_count` accounts and `clients` reps eligible for them,
    made through bidhub's own use cases, as a manager would."""
    from sqlalchemy import func, select

    from bidhub import create_app
    from bidhub.db import get_session
    from bidhub.models import Account, Listing, ListingStatus, ReleaseReason, Role, User
    from bidhub.services import policies, rounds, users
    from bidhub.services.ownership import unfinished_listing_of

    app = create_app()
    with app.app_context():
        session = get_session()
        now = app.config["CLOCK"]()
        manager = session.scalars(select(User).where(User.username == "manager")).one()
        round_ = rounds.create_round(session, manager, title="压测竞标轮次", branch_id=None,
                                     opens_at=now - timedelta(minutes=1),
                                     closes_at=now + timedelta(hours=3), now=now)
        # Free accounts first (no loss review), then held ones; none an executive sponsors,
        # since those wait for the sponsor's confirmation.
        candidates = session.scalars(
            select(Account).where(Account.sponsor_id.is_(None),
                                  Account.executive_sponsor.is_(None))
            .order_by(Account.owner_id.is_not(None), Account.id)).all()
        chosen = [account.id for account in candidates
                  if unfinished_listing_of(session, account.id) is None][:listing_count]
        rounds.release_accounts(
            session, manager, round_.id, account_ids=chosen, reason=ReleaseReason.OTHER,
            note="压测：批量释放用于竞标压力测试",
            review_text="压测：该客户释放用于竞标压力测试，不代表对原负责销售的评价。", now=now)
        round_ = rounds.load_round(session, round_.id)
        round_ = rounds.publish_round(session, manager, round_.id,
                                      expected_version=round_.version, now=now)
        listings = session.scalars(select(Listing).where(
            Listing.round_id == round_.id, Listing.status == ListingStatus.LISTED)).all()
        eligible: dict[str, list[int]] = {}
        reps = session.scalars(select(User).where(User.role == Role.REP, User.is_active.is_(True))
                               .order_by(User.username)).all()
        for rep in reps:
            hindered = policies.hindrances_for(session, rep, listings, now)
            allowed = [listing.id for listing in listings if listing.id not in hindered]
            if len(allowed) >= len(listings) // 2:
                eligible[rep.username] = allowed
        added = 0
        branch_id = session.scalar(select(func.min(User.branch_id)).where(User.role == Role.REP))
        while len(eligible) < clients:
            added += 1
            username = f"bench{added:02d}"
            rep = users.create_user(session, None, username=username, display_name=f"压测{added}",
                                    password=PASSWORD, role=Role.REP, branch_id=branch_id,
                                    now=now, hired_on=(now - timedelta(days=900)).date())
            eligible[username] = [listing.id for listing in listings]
        chosen_reps = sorted(eligible, key=lambda name: -len(eligible[name]))[:clients]
        pairs = {}
        for number, username in enumerate(chosen_reps):
            order = list(eligible[username])
            random.Random(number).shuffle(order)
            pairs[username] = order
        return BurstPlan(round_id=round_.id, pairs=pairs, added_reps=added)


def warm_track_records(env: dict[str, str]) -> str:
    done = subprocess.run(["bidhub", "refresh-track-records"], env=env, capture_output=True,
                          text=True)
    if done.returncode == 0:
        return "warmed with `bidhub refresh-track-records`"
    if "No such command" in done.stderr:
        return "NOT warmed: `bidhub refresh-track-records` does not exist yet"
    return f"NOT warmed: `bidhub refresh-track-records` failed ({done.stderr.strip()[-200:]})"


@dataclass
class BurstTally:
    latencies_ms: list[float] = field(default_factory=list)
    acknowledged: list[tuple[str, int]] = field(default_factory=list)
    server_errors: int = 0
    other: dict[int, int] = field(default_factory=dict)
    ran_out: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


PLAN_TEXT = "压测：季度拜访客户决策层，梳理采购计划并提交解决方案，争取年度框架协议。"
VISIT_TEXT = "压测：第一个月拜访采购与IT负责人，第二个月安排技术交流，第三个月商务谈判。"


def burst_client(port: int, username: str, listing_ids: list[int], start: threading.Barrier,
                 stop_at: list[float], tally: BurstTally) -> None:
    try:
        client = Client(port)
        client.login(username)
        form = client.get(f"/listings/{listing_ids[0]}/bid")
        if form.status != 200 or 'name="submission_key"' not in form.body:
            raise SystemExit(f"{username}'s bid form answered {form.status} without the form")
        token = csrf_token(form.body)
    except BaseException as error:
        with tally.lock:
            tally.failures.append(f"{username}: {error}")
        start.abort()  # the burst cannot be run as planned: say why now, not at the timeout
        raise
    latencies, acknowledged, errors, other = [], [], 0, {}
    poster = BidPoster(port, client.cookie_header())
    # The same fields as the form has, the texts encoded once: only the amount and the
    # one-time key change from bid to bid.
    fixed = urllib.parse.urlencode({"csrf_token": token, "account_plan": PLAN_TEXT,
                                    "visit_plan": VISIT_TEXT})
    start.wait()
    remaining = iter(listing_ids)
    for listing_id in remaining:
        if time.perf_counter() >= stop_at[0]:
            break
        body = (f"{fixed}&committed_revenue_yuan={random.randint(100_000, 5_000_000)}"
                f"&submission_key={secrets.token_urlsafe(24)}")
        began = time.perf_counter()
        # The session cookie is not updated: each acknowledgement flashes a message into the
        # session, which a browser would pop on the page it is redirected to.
        status, location = poster.post(f"/listings/{listing_id}/bid", body)
        latencies.append((time.perf_counter() - began) * 1000)
        if status == 303 and location.endswith("/my/bids"):
            acknowledged.append((username, listing_id))
        elif status >= 500:
            errors += 1
        else:
            other[status] = other.get(status, 0) + 1
    else:
        with tally.lock:
            tally.ran_out += 1
    with tally.lock:
        tally.latencies_ms += latencies
        tally.acknowledged += acknowledged
        tally.server_errors += errors
        for status, count in other.items():
            tally.other[status] = tally.other.get(status, 0) + count


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def stored_bids(database_url: str, round_id: int) -> set[tuple[str, int]]:
    from sqlalchemy import create_engine, select

    from bidhub.models import Bid, BidStatus, Listing, User

    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(User.username, Bid.listing_id).join(Bid, Bid.rep_id == User.id)
            .join(Listing, Listing.id == Bid.listing_id)
            .where(Listing.round_id == round_id, Bid.status == BidStatus.ACTIVE)).all()
    engine.dispose()
    return {(username, listing_id) for username, listing_id in rows}


def bench_burst(served: Served, env: dict[str, str], database_url: str, backend: str,
                args: argparse.Namespace) -> None:
    port = served.port
    plan = prepare_burst_round(args.listings, args.clients)
    print(f"  round {plan.round_id}: {args.listings} listings, {len(plan.pairs)} reps "
          f"({plan.added_reps} bench reps added to make up the eligible number)")
    print(f"  track records: {warm_track_records(env)}", flush=True)
    tally = BurstTally()
    start = threading.Barrier(len(plan.pairs) + 1)
    stop_at = [float("inf")]
    threads = [threading.Thread(target=burst_client, daemon=True,
                                args=(port, username, listing_ids, start, stop_at, tally))
               for username, listing_ids in plan.pairs.items()]
    for thread in threads:
        thread.start()
    try:
        start.wait(timeout=300)
    except threading.BrokenBarrierError:
        raise SystemExit("the burst's clients could not get ready: "
                         + ("; ".join(tally.failures) or "timed out after 300 s")) from None
    meter = CpuMeter(served.pid, database_url)
    before = meter.snapshot()
    began, client_cpu = time.perf_counter(), time.process_time()
    stop_at[0] = began + args.burst_seconds
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    client_cpu = time.process_time() - client_cpu
    after = meter.snapshot()
    stored = stored_bids(database_url, plan.round_id)
    acknowledged = set(tally.acknowledged)
    lost = len(acknowledged - stored)
    rate = len(acknowledged) / elapsed
    p99 = percentile(tally.latencies_ms, 0.99)
    print(f"  {len(tally.latencies_ms)} POSTs in {elapsed:.1f} s from {len(threads)} clients "
          f"(the clients used {client_cpu:.1f} s of CPU, on the server's cores)")
    print(f"  acknowledged bids/s {rate:,.0f} (target >= {BURST_TARGET[backend]})")
    posts = max(len(tally.latencies_ms), 1)
    worker_s, database_s = (CpuMeter.spent(before[index], after[index]) for index in (0, 1))
    print(f"  CPU ms per POST: workers {milliseconds(worker_s * 1000 / posts)}, database "
          f"{milliseconds(None if database_s is None else database_s * 1000 / posts)}")
    print(f"  POST latency ms: p50 {percentile(tally.latencies_ms, 0.50):.0f}, "
          f"p95 {percentile(tally.latencies_ms, 0.95):.0f}, p99 {p99:.0f} "
          f"(target <= {BURST_P99_TARGET_MS})")
    print(f"  5xx {tally.server_errors}; other non-success {dict(sorted(tally.other.items()))}; "
          f"lost {lost}; stored without acknowledgement {len(stored - acknowledged)}")
    if tally.ran_out:
        print(f"  {tally.ran_out} clients ran out of listings: raise --listings")
    met = (rate >= BURST_TARGET[backend] and p99 <= BURST_P99_TARGET_MS
           and tally.server_errors == 0 and lost == 0)
    print(f"  bid burst {'meets' if met else 'is BELOW'} the issue's target")


# --- one database ----------------------------------------------------------------------------

def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (postgresql+psycopg://...) as psycopg.connect takes it."""
    from sqlalchemy import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def server_setting(connection, setting: str) -> str:
    """A PostgreSQL setting as SHOW prints it, or why it could not be read: a role without
    pg_read_all_settings may not read some (shared_preload_libraries among them)."""
    import psycopg

    try:
        return connection.execute(f"SHOW {setting}").fetchone()[0]
    except psycopg.errors.InsufficientPrivilege:
        return "unknown (this role may not read it)"


@contextmanager
def postgres_database(url: str):
    """A new, empty database on the server `url` names; dropped afterwards."""
    import psycopg
    from sqlalchemy import make_url

    base = make_url(url)
    name = f"bidhub_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin_dsn = libpq_url(url)
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        settings = {setting: server_setting(connection, setting)
                    for setting in ("server_version", "fsync", "synchronous_commit",
                                    "shared_preload_libraries")}
        connection.execute(f'CREATE DATABASE "{name}"')
    # What the figures depend on: a server that skips flushing its log to disk commits faster;
    # a library loaded into every backend (pg_stat_statements, say) works on every statement.
    print(f"\n== postgresql: server {settings['server_version']}, fsync {settings['fsync']}, "
          f"synchronous_commit {settings['synchronous_commit']}, preloaded libraries: "
          f"{settings['shared_preload_libraries'] or 'none'} ==", flush=True)
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def folder_keys(folder: Path) -> tuple[str, str]:
    """The secret and ledger keys of the instance in `folder`, made once (a kept folder is
    reused by a later run, so its keys must stay those its register was written with)."""
    path = folder / "bench-keys"
    if not path.exists():
        path.write_text(f"{secrets.token_hex(32)} {secrets.token_hex(32)}")
    secret, ledger = path.read_text().split()
    return secret, ledger


def run_backend(backend: str, database_url: str, folder: Path, args: argparse.Namespace) -> None:
    from bidhub.serving import default_workers

    secret, ledger = folder_keys(folder)
    env = {**os.environ, "BIDHUB_DATABASE_URL": database_url,
           "BIDHUB_SECRET_KEY": secret, "BIDHUB_LEDGER_KEY": ledger,
           "BIDHUB_LEDGER_CHECKPOINT_FILE": str(folder / "ledger-checkpoints.jsonl"),
           "BIDHUB_SCHEDULER_ENABLED": "0"}
    os.environ.update({key: env[key] for key in env if key.startswith("BIDHUB_")})
    print(f"\n== {backend}: building the demo world (or finding it built) ==", flush=True)
    started = time.perf_counter()
    subprocess.run(["bidhub", "demo", "--no-serve"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
    if not args.burst_only:
        with gunicorn(env, folder / "gunicorn.log") as served:
            print(f"\n== {backend}: pages (wrk -t2 -c16 -d{args.duration}s, {args.rounds} "
                  f"interleaved rounds, gunicorn 2 sync workers) ==", flush=True)
            bench_pages(served, database_url, args.duration, args.rounds)
    if not args.pages_only:
        workers = args.burst_workers or default_workers()
        with gunicorn(env, folder / "gunicorn.log", workers=workers) as served:
            print(f"\n== {backend}: bid burst ({args.clients} clients, {args.burst_seconds} s, "
                  f"gunicorn {workers} sync workers"
                  f"{'' if args.burst_workers else ', as bidhub serve starts by default'}) ==",
                  flush=True)
            bench_burst(served, env, database_url, backend, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst-seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--listings", type=int, default=200,
                        help="accounts in the burst's round (each client bids once per listing)")
    parser.add_argument("--burst-workers", type=int,
                        help="gunicorn workers for the burst (default: as many as `bidhub "
                        "serve` starts on this machine)")
    parser.add_argument("--pages-only", action="store_true")
    parser.add_argument("--burst-only", action="store_true")
    parser.add_argument("--only", choices=["sqlite", "postgresql"],
                        help="run on this database alone")
    parser.add_argument("--sqlite-folder", help="build the SQLite demo here and keep it; a "
                        "folder kept by an earlier run is reused as it is (each burst adds a "
                        "round to it)")
    args = parser.parse_args()
    if shutil.which("wrk") is None and not args.burst_only:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    print(machine.describe(), flush=True)
    with tempfile.TemporaryDirectory(prefix="bidhub-bench-") as folder:
        if args.only != "postgresql":
            sqlite_folder = Path(args.sqlite_folder or Path(folder) / "sqlite")
            sqlite_folder.mkdir(exist_ok=True)
            run_backend("sqlite", f"sqlite:///{sqlite_folder / 'bidhub.sqlite3'}", sqlite_folder,
                        args)
        postgres_url = os.environ.get("BIDHUB_BENCH_POSTGRES_URL")
        if args.only == "postgresql" and not postgres_url:
            raise SystemExit("set BIDHUB_BENCH_POSTGRES_URL to run on PostgreSQL")
        if postgres_url and args.only != "sqlite":
            postgres_folder = Path(folder) / "postgresql"
            postgres_folder.mkdir()
            with postgres_database(postgres_url) as url:
                run_backend("postgresql", url, postgres_folder, args)


if __name__ == "__main__":
    main()
