"""Scheduled work (closing rounds, results taking effect, notices, deliveries), run by exactly
one scheduler at a time among any number of processes, through a lease in the database."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import click
from flask import Flask
from sqlalchemy import create_engine, delete, insert, or_, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from bidhub.clock import system_now
from bidhub.db import IMMEDIATE, engine_of, get_session, schema_problem
from bidhub.models import SchedulerLease

log = logging.getLogger(__name__)
CLOSE_ROUNDS_EVERY_SECONDS = 30
APPLY_LISTINGS_EVERY_SECONDS = 30
DELIVERIES_EVERY_SECONDS = 20
TRACK_RECORDS_EVERY_SECONDS = 60
LEASE_NAME = "scheduler"
# PostgreSQL advisory lock key of the active scheduler: "bidhubsc" in ASCII (the filing
# register's appends use "bidhub", services/ownership.py).
ADVISORY_LOCK_KEY = 0x6269646875627363
# pg_locks shows a bigint advisory key as its high and low halves (objsubid 1).
STILL_LOCKED = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND objsubid = 1"
    " AND ((classid::bigint << 32) | objid::bigint) = :key)")


def close_due_rounds_job(app: Flask, now: datetime | None = None) -> list[int]:
    from bidhub.services.adjudication import close_due_rounds

    with app.app_context():
        scored = close_due_rounds(get_session(), now or app.config["CLOCK"](),
                                  zone=app.config["TIMEZONE"])
        if scored:
            log.info("scored rounds %s after their deadline", scored)
        return scored


def apply_due_listings_job(app: Flask, now: datetime | None = None) -> list[int]:
    """Results whose appeal window ended, with every appeal answered, take effect: filed once,
    whichever process or restart gets there first."""
    from bidhub.services.appeals import apply_due_listings

    with app.app_context():
        applied = apply_due_listings(get_session(), now or app.config["CLOCK"]())
        if applied:
            log.info("listings %s took effect after their standstill", applied)
        return applied


def round_notices_job(app: Flask, now: datetime | None = None) -> list[str]:
    """Tell reps a round opened and that its deadline is 24 hours, then 1 hour, away; once."""
    from bidhub.services.notifications import notify_due_rounds

    with app.app_context():
        return notify_due_rounds(get_session(), now or app.config["CLOCK"]())


def deliveries_job(app: Flask, now: datetime | None = None):
    """Send notifications by e-mail and webhook, retrying failures; never inside a request."""
    from bidhub.web.notifications import send_deliveries

    with app.app_context():
        return send_deliveries(app, now or app.config["CLOCK"]())


def track_records_job(app: Flask, now: datetime | None = None) -> int:
    """Rebuild the track-record snapshots that changes dropped, so bids and pages find them."""
    from bidhub.services.track_records import refresh_track_records

    with app.app_context():
        return refresh_track_records(get_session(), now or app.config["CLOCK"]())


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[..., Any]  # run(app, now=None); `now` defaults to the app's clock
    every_seconds: float


# Every job is idempotent, so a takeover that repeats one a moment after the old scheduler ran
# it changes nothing; the lease keeps them from running side by side in the first place.
JOBS = (
    Job("close_due_rounds", close_due_rounds_job, CLOSE_ROUNDS_EVERY_SECONDS),
    Job("apply_due_listings", apply_due_listings_job, APPLY_LISTINGS_EVERY_SECONDS),
    Job("round_notices", round_notices_job, CLOSE_ROUNDS_EVERY_SECONDS),
    Job("deliveries", deliveries_job, DELIVERIES_EVERY_SECONDS),
    Job("track_records", track_records_job, TRACK_RECORDS_EVERY_SECONDS),
)


def holder_name() -> str:
    """Who holds the lease, as an operator reads it in /healthz: host, process, and a random
    tail, since two schedulers in one process (or a reused pid) must not pass for one."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    """The right to run the jobs. On PostgreSQL an advisory lock held by a connection of its
    own, which the server releases when the process dies; on SQLite the scheduler_leases row,
    taken over once its heartbeat is older than the lease's lifetime. The active scheduler
    writes the heartbeat to the row on both, so /healthz can tell its age.

    Lease times are the system clock's: they are compared between processes, which a test's
    frozen app clock would break."""

    def __init__(self, engine: Engine, holder: str, lifetime_seconds: float,
                 now: Callable[[], datetime] = system_now) -> None:
        self.engine = engine
        self.holder = holder
        self.lifetime = timedelta(seconds=lifetime_seconds)
        self.now = now
        self.is_postgresql = engine.dialect.name == "postgresql"
        self.lock_connection: Connection | None = None
        self.acquired_at: datetime | None = None

    def hold(self) -> bool:
        """Take the lease or keep it, writing the heartbeat; False while another has it."""
        try:
            held = self._hold_lock() if self.is_postgresql else self._hold_row()
        except SQLAlchemyError:
            log.warning("scheduler lease: the database did not answer", exc_info=True)
            held = False
        if not held:
            self._drop_lock_connection()
            self.acquired_at = None
        return held

    def release(self) -> None:
        """Give the lease up at once, so a standby need not wait for it to expire."""
        try:
            if self.acquired_at is not None:
                with self.engine.begin() as connection:
                    connection.execute(delete(SchedulerLease).where(
                        SchedulerLease.name == LEASE_NAME, SchedulerLease.holder == self.holder))
        except SQLAlchemyError:
            log.warning("scheduler lease: could not release it", exc_info=True)
        finally:
            self._drop_lock_connection()
            self.acquired_at = None

    def _hold_lock(self) -> bool:
        if self.lock_connection is None and not self._take_advisory_lock():
            return False
        # Asked each time: a connection that dropped and was opened again holds no lock.
        if not self.lock_connection.scalar(STILL_LOCKED, {"key": ADVISORY_LOCK_KEY}):
            return False
        self._write_heartbeat(self.lock_connection)
        return True

    def _take_advisory_lock(self) -> bool:
        # Not from the app's pool: closing a pooled connection would keep the session's lock.
        engine = create_engine(self.engine.url, poolclass=NullPool)
        self.lock_connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        seconds = max(1, int(self.lifetime.total_seconds() / 3))
        # The server notices a vanished host (no FIN) by keepalives within about the lifetime.
        for setting, value in (("tcp_keepalives_idle", seconds),
                               ("tcp_keepalives_interval", seconds),
                               ("tcp_keepalives_count", 2)):
            self.lock_connection.execute(text("SELECT set_config(:setting, :value, false)"),
                                         {"setting": setting, "value": str(value)})
        if not self.lock_connection.scalar(text("SELECT pg_try_advisory_lock(:key)"),
                                           {"key": ADVISORY_LOCK_KEY}):
            return False  # hold() closes the connection
        self.acquired_at = self.now()
        return True

    def _write_heartbeat(self, connection: Connection) -> None:
        now = self.now()
        values = {"holder": self.holder, "acquired_at": self.acquired_at or now,
                  "heartbeat_at": now}
        written = connection.execute(update(SchedulerLease).where(
            SchedulerLease.name == LEASE_NAME).values(**values)).rowcount
        if not written:
            connection.execute(insert(SchedulerLease).values(name=LEASE_NAME, **values))

    def _hold_row(self) -> bool:
        now = self.now()
        values = {"holder": self.holder, "acquired_at": self.acquired_at or now,
                  "heartbeat_at": now}
        try:
            with self.engine.connect().execution_options(**{IMMEDIATE: True}) as connection, \
                    connection.begin():
                # Ours, or free because its holder stopped beating: a conditional update, so
                # of two standbys that both see it expired only one takes it.
                taken = connection.execute(update(SchedulerLease).where(
                    SchedulerLease.name == LEASE_NAME,
                    or_(SchedulerLease.holder == self.holder,
                        SchedulerLease.heartbeat_at < now - self.lifetime)).values(**values))
                if not taken.rowcount:
                    connection.execute(insert(SchedulerLease).values(name=LEASE_NAME, **values))
        except IntegrityError:  # the row exists and is someone else's
            return False
        self.acquired_at = values["acquired_at"]
        return True

    def _drop_lock_connection(self) -> None:
        connection, self.lock_connection = self.lock_connection, None
        if connection is not None:
            try:
                connection.close()
            except SQLAlchemyError:
                log.debug("scheduler lease: closing a broken lock connection", exc_info=True)
            connection.engine.dispose()


class Scheduler:
    """Runs JOBS while this process holds the lease and stands by otherwise: a heartbeat
    thread takes or renews the lease every quarter of its lifetime, and jobs run only while
    the last renewal is recent enough that no standby can have taken over since."""

    def __init__(self, app: Flask, jobs: tuple[Job, ...] = JOBS,
                 lease: Lease | None = None) -> None:
        self.app = app
        self.jobs = jobs
        lifetime = float(app.config["SCHEDULER_LEASE_SECONDS"])
        self.lease = lease or Lease(engine_of(app), holder_name(), lifetime)
        self.beat_seconds = max(lifetime / 4, 0.05)
        self.trusted_seconds = lifetime - self.beat_seconds
        self.valid_until = 0.0  # time.monotonic(): the lease is surely ours until then
        self.is_active: bool | None = None  # as last logged
        self.next_run: dict[str, float] = {}
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def holds_lease(self) -> bool:
        return time.monotonic() < self.valid_until

    def beat(self) -> bool:
        """Take or renew the lease once; log when this process becomes active or standby."""
        started = time.monotonic()
        held = self.lease.hold()
        self.valid_until = started + self.trusted_seconds if held else 0.0
        if held != self.is_active:
            if held:
                self.next_run.clear()  # catch up at once on what came due while nobody ran
            self.is_active = held
            state = "active" if held else "standby"
            log.info("scheduler %s is %s", self.lease.holder, state,
                     extra={"event": f"scheduler.{state}", "holder": self.lease.holder})
        return held

    def run_due_jobs(self) -> None:
        for job in self.jobs:
            # Checked before each job: a lease lost during the previous one stops the rest.
            if self.stopping.is_set() or not self.holds_lease():
                return
            if time.monotonic() < self.next_run.get(job.name, 0.0):
                continue
            self.next_run[job.name] = time.monotonic() + job.every_seconds
            try:
                job.run(self.app)
            except Exception:  # one failing job must not stop the others or the scheduler
                log.exception("scheduled job %s failed", job.name, extra={"job": job.name})

    def keep_beating(self) -> None:
        try:
            while not self.stopping.wait(self.beat_seconds):
                try:
                    self.beat()
                except Exception:  # whatever went wrong, stand by and try again next beat
                    self.valid_until = 0.0
                    log.exception("scheduler lease: the heartbeat failed")
        finally:
            self.valid_until = 0.0
            self.lease.release()

    def keep_running_jobs(self) -> None:
        tick = min(1.0, self.beat_seconds)
        while not self.stopping.is_set():
            self.run_due_jobs()
            self.stopping.wait(tick)

    def start_threads(self) -> None:
        for target, name in ((self.keep_beating, "bidhub-scheduler-lease"),
                             (self.keep_running_jobs, "bidhub-scheduler-jobs")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def shutdown(self, wait: bool = True) -> None:
        """Stop running jobs and give the lease up (once the heartbeat thread has stopped)."""
        self.stopping.set()
        if not self.threads:
            self.lease.release()
        if wait:
            for thread in self.threads:
                thread.join()

    def run_forever(self) -> None:
        """The `bidhub scheduler` process: until SIGTERM or Ctrl+C."""
        signal.signal(signal.SIGTERM, lambda _signum, _frame: self.stopping.set())
        self.beat()
        self.start_threads()
        try:
            while not self.stopping.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.shutdown()
            log.info("scheduler %s stopped and gave up the lease", self.lease.holder,
                     extra={"event": "scheduler.stopped", "holder": self.lease.holder})


def start(app: Flask) -> Scheduler:
    """Run the scheduler inside this process (`bidhub demo`, BIDHUB_SCHEDULER_ENABLED): when
    the lease is free, catch up at once on deadlines and standstills that ended while down,
    then keep going in the background. One per app: `bidhub demo` with
    BIDHUB_SCHEDULER_ENABLED set finds the one the app started."""
    running = app.extensions.get("bidhub_scheduler")
    if running is not None:
        return running
    scheduler = Scheduler(app)
    if scheduler.beat():
        scheduler.run_due_jobs()
    scheduler.start_threads()
    app.extensions["bidhub_scheduler"] = scheduler
    return scheduler


def init_app(app: Flask) -> None:
    """Start the scheduler with the app where BIDHUB_SCHEDULER_ENABLED says so, unless the
    database answers and is not at the newest migration: the command or server that made the
    app then says what to do and stops, where a scheduler would log its jobs failing on missing
    tables first. A database that does not answer yet leaves it to the scheduler's retries."""
    if not app.config.get("SCHEDULER_ENABLED"):
        return
    problem = schema_problem(engine_of(app))
    if problem is not None and problem.reachable:
        return
    start(app)


@click.command("scheduler")
def scheduler_command() -> None:
    """Run the scheduled jobs in the foreground. Start as many as you like: one is active,
    the others stand by and take over when it stops."""
    from bidhub.cli import create_app_or_exit, exit_unless_schema_current
    from bidhub.config import environment_config
    from bidhub.logs import configure_logging

    try:
        configure_logging(environment_config().get("LOG_FORMAT", "json"))
    except ValueError as error:  # a setting that cannot be read: say which, not a traceback
        raise click.ClickException(str(error)) from error
    app = exit_unless_schema_current(create_app_or_exit({"SCHEDULER_ENABLED": False}))
    Scheduler(app).run_forever()
