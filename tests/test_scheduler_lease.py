"""One active scheduler among many processes: the lease, takeover when the holder dies, and
jobs that run exactly once across it, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bidhub.clock import system_now
from bidhub.db import engine_of
from bidhub.models import AuditEvent, Bid, BidScore, Round, RoundStatus, SchedulerLease
from bidhub.scheduler import ADVISORY_LOCK_KEY, LEASE_NAME, Job, Lease, Scheduler
from tests.conftest import reload

LEASE_SECONDS = 2.0
# A loaded machine starts Python slowly; every wait is bounded and polls, so a quick one is quick.
START_TIMEOUT = 60.0
SLACK_SECONDS = 8.0


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def bidhub_command() -> list[str]:
    script = Path(sys.executable).with_name("bidhub")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from bidhub.cli import main; main()"]


def process_environment(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BIDHUB_")}
    env.update({"BIDHUB_DATABASE_URL": database_url, "BIDHUB_SECRET_KEY": "test-secret",
                "BIDHUB_LEDGER_KEY": "test-ledger-key",
                "BIDHUB_LEDGER_CHECKPOINT_FILE": str(tmp_path / "ledger-checkpoints.jsonl"),
                "BIDHUB_LOG_FORMAT": "json", **extra})
    return env


class SchedulerProcess:
    """A `bidhub scheduler` in a subprocess, its JSON log lines in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("w") as log_file:
            self.process = subprocess.Popen(  # noqa: S603
                [*bidhub_command(), "scheduler"], env=env, stdout=log_file,
                stderr=subprocess.STDOUT)

    def events(self) -> list[str]:
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "event" in entry:
                events.append(entry["event"])
        return events

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


def lease_row(session) -> SchedulerLease | None:
    reload(session)
    return session.get(SchedulerLease, LEASE_NAME)


def holder_pid(holder: str) -> int:
    return int(holder.split(":")[-2])


def scored_events(session, round_id: int) -> int:
    return len(session.scalars(select(AuditEvent).where(
        AuditEvent.action == "round.scored", AuditEvent.target == f"round:{round_id}")).all())


def due_round(make_round, make_account, make_rep, make_bid):
    """A round whose deadline has passed by the system clock, which the processes read."""
    round_ = make_round(accounts=[make_account()],
                        closes_at=datetime.now(UTC) - timedelta(seconds=1))
    make_bid(make_rep(), round_.listings[0])
    return round_


def while_schedulers_write(session, make):
    """`make()` again if SQLite refused it: the factories read before they write, and on SQLite
    a read transaction cannot become a write once a scheduler's heartbeat has committed."""
    for _attempt in range(10):
        reload(session)
        try:
            return make()
        except OperationalError:
            continue
    pytest.fail("the test database stayed locked")


def round_status(session, round_id: int) -> str:
    reload(session)
    return session.get(Round, round_id).status


def test_two_scheduler_processes_one_active_takeover_and_each_round_closed_once(
        app, session, database_url, tmp_path, make_round, make_account, make_rep, make_bid):
    first_round = due_round(make_round, make_account, make_rep, make_bid)
    env = process_environment(database_url, tmp_path,
                              BIDHUB_SCHEDULER_LEASE_SECONDS=str(LEASE_SECONDS))
    processes = [SchedulerProcess(env, tmp_path / f"scheduler-{n}.log") for n in (1, 2)]
    try:
        # Both start; exactly one becomes active, the other stands by.
        wait_for(lambda: all(process.events() for process in processes), START_TIMEOUT,
                 "both schedulers to report active or standby")
        holder = wait_for(lambda: (row := lease_row(session)) and row.holder, START_TIMEOUT,
                          "the lease to be taken")
        by_pid = {process.process.pid: process for process in processes}
        active = by_pid[holder_pid(holder)]
        (standby,) = [process for process in processes if process is not active]
        assert active.events()[0] == "scheduler.active"
        assert "scheduler.active" not in standby.events()
        assert standby.events()[0] == "scheduler.standby"

        # The active one closes the round that came due while nobody ran.
        wait_for(lambda: round_status(session, first_round.id) == RoundStatus.SCORED,
                 START_TIMEOUT, "the due round to be scored")

        # A second round comes due, and the holder dies without a word.
        second_round = while_schedulers_write(
            session, lambda: due_round(make_round, make_account, make_rep, make_bid))
        os.kill(active.process.pid, signal.SIGKILL)
        active.process.wait(timeout=30)
        wait_for(lambda: "scheduler.active" in standby.events(),
                 LEASE_SECONDS + SLACK_SECONDS, "the standby to take over")
        assert holder_pid(lease_row(session).holder) == standby.process.pid
        wait_for(lambda: round_status(session, second_round.id) == RoundStatus.SCORED,
                 SLACK_SECONDS, "the second round to be scored after the takeover")

        # Exactly once: one scoring event and one score per bid, whoever closed it.
        reload(session)
        for round_ in (first_round, second_round):
            assert scored_events(session, round_.id) == 1
            listing = session.get(Round, round_.id).listings[0]
            assert len(session.scalars(select(BidScore).join(Bid).where(
                Bid.listing_id == listing.id)).all()) == 1

        # Stopped politely, the active scheduler gives the lease up at once.
        standby.process.send_signal(signal.SIGTERM)
        assert standby.process.wait(timeout=30) == 0
        assert standby.events()[-1] == "scheduler.stopped"
        assert lease_row(session) is None
    finally:
        for process in processes:
            process.stop()


def test_the_lease_has_an_advisory_lock_key_of_its_own():
    from bidhub.services.ownership import LEDGER_LOCK_KEY

    # Sharing the filing register's key would make a scheduler block every award it files.
    assert ADVISORY_LOCK_KEY != LEDGER_LOCK_KEY


def recording_job(runs: list[str]) -> Job:
    return Job("record", lambda _app: runs.append("ran"), every_seconds=0)


def test_one_lease_among_many_and_given_up_on_release(app):
    first = Lease(engine_of(app), "first", LEASE_SECONDS)
    second = Lease(engine_of(app), "second", LEASE_SECONDS)
    try:
        assert first.hold()
        assert not second.hold()
        assert first.hold()  # renewing the heartbeat keeps it
        first.release()
        assert second.hold()
        assert not first.hold()
    finally:
        first.release()
        second.release()


def test_jobs_stop_when_the_lease_is_lost(app, session, backend, tmp_path):
    runs: list[str] = []
    scheduler = Scheduler(app, jobs=(recording_job(runs),),
                          lease=Lease(engine_of(app), "lost", LEASE_SECONDS))
    later = Lease(engine_of(app), "later", LEASE_SECONDS,
                  now=lambda: system_now() + timedelta(seconds=LEASE_SECONDS + 1))
    try:
        assert scheduler.beat()
        scheduler.run_due_jobs()
        assert runs == ["ran"]
        if backend == "sqlite":
            # The holder stalled past its lifetime (seen from the later clock): taken over.
            assert later.hold()
        else:
            # The connection that holds the advisory lock is gone: so is the lock.
            scheduler.lease.lock_connection.invalidate()
        assert not scheduler.beat()
        scheduler.run_due_jobs()
        assert runs == ["ran"]
        assert not scheduler.holds_lease()
    finally:
        scheduler.lease.release()
        later.release()


def test_a_lease_not_renewed_in_time_stops_jobs_before_anyone_could_take_over(app):
    runs: list[str] = []
    scheduler = Scheduler(app, jobs=(recording_job(runs),),
                          lease=Lease(engine_of(app), "slow", LEASE_SECONDS))
    try:
        assert scheduler.beat()
        scheduler.valid_until = time.monotonic() - 0.001  # its last renewal is too old now
        scheduler.run_due_jobs()
        assert runs == []
    finally:
        scheduler.lease.release()


def test_a_failing_job_does_not_stop_the_others(app, caplog):
    runs: list[str] = []

    def broken(_app):
        raise RuntimeError("boom")

    scheduler = Scheduler(app, jobs=(Job("broken", broken, 0), recording_job(runs)),
                          lease=Lease(engine_of(app), "robust", LEASE_SECONDS))
    try:
        assert scheduler.beat()
        scheduler.run_due_jobs()
        assert runs == ["ran"]
        assert "scheduled job broken failed" in caplog.text
    finally:
        scheduler.lease.release()


def test_the_in_process_scheduler_of_the_demo_goes_through_the_same_lease(
        app, session, clock, make_round, make_account):
    from bidhub import scheduler as scheduler_module

    app.config["SCHEDULER_LEASE_SECONDS"] = 1.0
    due = make_round(accounts=[make_account()], closes_at=clock() - timedelta(minutes=1))
    other = Lease(engine_of(app), "a bidhub scheduler process", 60)
    running = None
    try:
        assert other.hold()
        running = scheduler_module.start(app)  # what `bidhub demo` does
        assert not running.holds_lease()
        assert round_status(session, due.id) == RoundStatus.PUBLISHED  # standing by: no catch-up
        other.release()  # the other scheduler stops
        wait_for(lambda: round_status(session, due.id) == RoundStatus.SCORED, SLACK_SECONDS,
                 "the in-process scheduler to take over and catch up")
        assert holder_pid(lease_row(session).holder) == os.getpid()
    finally:
        other.release()
        if running is not None:
            running.shutdown()


def test_an_app_runs_one_scheduler_however_often_it_is_started(app):
    """`bidhub demo` starts the scheduler of an app that BIDHUB_SCHEDULER_ENABLED may have
    started already: the second start finds the first, not a second scheduler beside it."""
    from bidhub import scheduler as scheduler_module

    running = scheduler_module.start(app)
    try:
        assert scheduler_module.start(app) is running
        assert app.extensions["bidhub_scheduler"] is running
    finally:
        running.shutdown()


def test_a_one_off_command_runs_no_scheduler_whatever_the_setting_says(
        app, session, database_url, tmp_path, make_round, make_account, make_rep, make_bid):
    """BIDHUB_SCHEDULER_ENABLED is for the server `bidhub run` starts: a one-off command run
    with the same settings runs no scheduled job and leaves no lease behind, which would keep
    the scheduler meant to run the jobs standing by until it expired."""
    due = due_round(make_round, make_account, make_rep, make_bid)
    env = process_environment(database_url, tmp_path, BIDHUB_SCHEDULER_ENABLED="1")
    done = subprocess.run([*bidhub_command(), "branches", "list"], env=env,  # noqa: S603
                          capture_output=True, text=True, timeout=START_TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert lease_row(session) is None
    assert round_status(session, due.id) == RoundStatus.PUBLISHED


def test_bidhub_run_runs_the_scheduled_jobs_where_the_setting_asks_for_them(
        app, session, database_url, tmp_path, make_round, make_account, make_rep, make_bid):
    due = due_round(make_round, make_account, make_rep, make_bid)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = process_environment(database_url, tmp_path, BIDHUB_SCHEDULER_ENABLED="1")
    with (tmp_path / "run.log").open("w") as log_file:
        server = subprocess.Popen([*bidhub_command(), "run", "--port", str(port)],  # noqa: S603
                                  env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        holder = wait_for(lambda: (row := lease_row(session)) and row.holder, START_TIMEOUT,
                          "`bidhub run` to take the lease")
        assert holder_pid(holder) == server.pid
        wait_for(lambda: round_status(session, due.id) == RoundStatus.SCORED, SLACK_SECONDS,
                 "the round that came due to be scored")
    finally:
        server.terminate()
        server.wait(timeout=30)
