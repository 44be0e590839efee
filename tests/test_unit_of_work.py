"""Units of work: a use case commits once, composes with others and rolls back on any error."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError

from bidhub.db import UnitOfWorkFailed, in_unit_of_work, unit_of_work
from bidhub.domain.errors import InvalidRequest
from bidhub.models import (
    AccountabilityIncident,
    AccountReview,
    AuditEvent,
    Listing,
    ReleaseReason,
    Round,
    RoundStatus,
    User,
)
from bidhub.services import rounds
from bidhub.services.accountability import (
    explain_incident,
    log_incident,
    release_for_accountability,
    resolve_incident,
)
from bidhub.services.rounds import create_round, release_account

REVIEW = "Two competitor campaigns in three months; the rep never visited the client."
EXPLANATION = "客户总部统一投放，分公司未告知；已约见人事总监，下月恢复合作。"


@pytest.fixture
def commits(session):
    """The commits the test session makes from now on (what it read so far is let go)."""
    session.rollback()
    made: list[int] = []

    def count(_session) -> None:
        made.append(1)

    event.listen(session, "after_commit", count)
    yield made
    event.remove(session, "after_commit", count)


def start_counting(session, commits: list[int]) -> None:
    """Forget the commits so far and end the open read, whose end would count as a commit."""
    session.rollback()
    commits.clear()


def count_of(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def new_round(session, manager, clock, title="Q3 reshuffle") -> Round:
    return create_round(session, manager, title=title, branch_id=None,
                        opens_at=clock() + timedelta(days=1), closes_at=clock() + timedelta(days=8),
                        now=clock())


def release(session, manager, round_id, account_id, clock,
            reason=ReleaseReason.NEGLECTED) -> Listing:
    return release_account(session, manager, round_id, account_id=account_id, reason=reason,
                           note="", review_text=REVIEW, now=clock())


def test_a_use_case_called_inside_another_commits_once(session, commits, make_manager, make_rep,
                                                        make_account, clock):
    manager, account = make_manager(), make_account(owner=make_rep())
    start_counting(session, commits)
    with unit_of_work(session):
        round_ = new_round(session, manager, clock)
        assert in_unit_of_work(session) and not commits  # the inner use case did not commit
        listing = release(session, manager, round_.id, account.id, clock)
    assert len(commits) == 1
    assert not in_unit_of_work(session)
    session.rollback()
    assert session.get(Listing, listing.id).round_id == round_.id


def test_a_failure_in_the_inner_use_case_rolls_back_the_outer_part_too(
        session, commits, make_manager, make_rep, make_account, clock):
    manager, account = make_manager(), make_account(owner=make_rep())
    rounds_before, audits_before = count_of(session, Round), count_of(session, AuditEvent)
    start_counting(session, commits)
    with pytest.raises(InvalidRequest, match="release reason"), unit_of_work(session):
        new_round(session, manager, clock)  # written and flushed by the outer part
        assert count_of(session, Round) == rounds_before + 1
        release(session, manager, session.scalars(select(Round.id)).first(), account.id, clock,
                reason="no-such-reason")
    assert commits == []
    # No reload: the session was rolled back for the caller and sees nothing of either part.
    assert (count_of(session, Round), count_of(session, AuditEvent)) == (rounds_before,
                                                                       audits_before)
    assert count_of(session, Listing) == 0


def test_an_outer_body_that_swallows_an_inner_failure_cannot_commit(
        session, commits, make_manager, make_rep, make_account, clock):
    manager, account = make_manager(), make_account(owner=make_rep())
    rounds_before = count_of(session, Round)
    start_counting(session, commits)
    with pytest.raises(UnitOfWorkFailed), unit_of_work(session):
        round_ = new_round(session, manager, clock)
        with contextlib.suppress(InvalidRequest):  # caught, but the unit knows it failed
            release(session, manager, round_.id, account.id, clock, reason="no-such-reason")
    assert commits == []
    assert count_of(session, Round) == rounds_before


def test_a_refused_use_case_leaves_the_session_usable_with_nothing_written(
        session, commits, make_manager, make_rep, make_account, clock, monkeypatch):
    manager, account = make_manager(), make_account(owner=make_rep())
    round_id, account_id = make_round_draft(session, manager, clock).id, account.id
    start_counting(session, commits)

    def fail_after_writing(*_args, **_kwargs):
        # The review and the listing are flushed by now: a failure here must take them back.
        assert count_of(session, Listing) == 1
        raise RuntimeError("audit store unavailable")

    with monkeypatch.context() as patched:
        patched.setattr(rounds, "record_audit", fail_after_writing)
        with pytest.raises(RuntimeError, match="audit store"):
            release(session, manager, round_id, account_id, clock)
    assert commits == [] and not session.in_transaction()
    assert (count_of(session, Listing), count_of(session, AccountReview)) == (0, 0)
    listing = release(session, manager, round_id, account_id, clock)  # no manual rollback first
    session.rollback()
    assert session.get(Listing, listing.id).account_id == account_id


def test_a_failed_commit_is_rolled_back_too(session, commits, make_admin):
    taken = make_admin().username
    users_before = count_of(session, User)
    start_counting(session, commits)
    with pytest.raises(IntegrityError), unit_of_work(session):
        clone = User(username=taken, display_name="Clone", password_hash="x", role="admin",
                     is_active=True, session_token="clone-token", failed_login_count=0,
                     created_at=session.scalars(select(User.created_at)).first())
        session.add(clone)  # flushed only by the commit, which the unique username refuses
    assert commits == []
    assert count_of(session, User) == users_before


def make_round_draft(session, manager, clock) -> Round:
    round_ = new_round(session, manager, clock, title="Accountability round")
    session.rollback()
    assert round_.status == RoundStatus.DRAFT
    return round_


def upheld_twice(session, manager, account, clock) -> None:
    for days_ago in (20, 10):
        incident = log_incident(session, manager, account_id=account.id,
                                competitor_site="智联招聘 zhaopin.com", ad_type="banner",
                                evidence_url="https://www.zhaopin.com/",
                                seen_at=clock() - timedelta(days=days_ago), now=clock())
        explain_incident(session, account.owner, incident.id, explanation=EXPLANATION,
                         now=clock())
        incident = session.get(AccountabilityIncident, incident.id)
        resolve_incident(session, manager, incident.id, outcome="upheld",
                         note="No convincing explanation given.",
                         expected_version=incident.version, now=clock())


def test_release_for_accountability_is_one_transaction(session, commits, make_manager, make_rep,
                                                       make_account, clock):
    manager, rep = make_manager(), make_rep()
    account = make_account(owner=rep)
    upheld_twice(session, manager, account, clock)
    round_id, account_id = make_round_draft(session, manager, clock).id, account.id
    rep_id = rep.id
    start_counting(session, commits)
    listing = release_for_accountability(session, manager, account_id, round_id=round_id,
                                         expected_owner_id=rep_id, review_text=REVIEW,
                                         now=clock())
    assert len(commits) == 1  # the count of upheld incidents and the release, together
    session.rollback()
    listing = session.get(Listing, listing.id)
    assert (listing.release_reason, listing.released_from_id) == ("accountability", rep.id)
    assert session.get(AccountReview, listing.review_id).review_text == REVIEW


def test_a_failed_accountability_release_leaves_nothing(session, commits, make_manager, make_rep,
                                                        make_account, clock, monkeypatch):
    manager, account = make_manager(), make_account(owner=make_rep())
    upheld_twice(session, manager, account, clock)
    round_id, account_id = make_round_draft(session, manager, clock).id, account.id
    owner_id = account.owner_id
    audits_before = count_of(session, AuditEvent)
    start_counting(session, commits)

    def fail(*_args, **_kwargs):
        raise RuntimeError("audit store unavailable")

    with monkeypatch.context() as patched:
        patched.setattr(rounds, "record_audit", fail)
        with pytest.raises(RuntimeError, match="audit store"):
            release_for_accountability(session, manager, account_id, round_id=round_id,
                                       expected_owner_id=owner_id, review_text=REVIEW,
                                       now=clock())
    assert commits == []
    assert (count_of(session, Listing), count_of(session, AccountReview),
            count_of(session, AuditEvent)) == (0, 0, audits_before)


def test_sqlite_writers_queue_on_a_private_lock_file_beside_the_database(app, backend):
    """A unit of work waits on the lock file while another writer holds it (before its own
    BEGIN IMMEDIATE, so it never sleeps in SQLite's busy handler), and goes ahead as soon as
    the lock is let go."""
    import os
    import stat
    import threading

    from bidhub.db import WRITER_LOCKS, engine_of, queued_writer

    engine = engine_of(app)
    if backend != "sqlite":
        assert engine not in WRITER_LOCKS  # PostgreSQL's writers lock rows, not a file
        return
    first, second = app.extensions["bidhub_sessionmaker"](), app.extensions["bidhub_sessionmaker"]()
    entered, done = threading.Event(), threading.Event()

    def write_after_the_first() -> None:
        with unit_of_work(second):
            entered.set()
        done.set()

    with queued_writer(first):  # the queue alone: SQLite itself is not locked meanwhile
        waiting = threading.Thread(target=write_after_the_first)
        waiting.start()
        assert not entered.wait(0.5)
    assert done.wait(30)
    waiting.join()
    first.close()
    second.close()
    assert stat.S_IMODE(os.stat(WRITER_LOCKS[engine]).st_mode) == 0o600


def test_a_thread_at_the_head_of_the_writer_queue_does_not_wait_behind_itself(app, backend):
    """A second session's unit of work inside the first's, in the same thread, goes straight
    on instead of waiting for a lock its own thread holds (which would never be let go)."""
    from bidhub.db import queued_writer

    if backend != "sqlite":
        return
    first, second = app.extensions["bidhub_sessionmaker"](), app.extensions["bidhub_sessionmaker"]()
    reached = []
    with queued_writer(first), queued_writer(second):
        reached.append(True)
    assert reached == [True]
    first.close()
    second.close()


def test_a_writer_queued_too_long_goes_on_to_sqlites_own_lock(app, backend, monkeypatch):
    """The queue waits at most as long as SQLite's busy timeout; then the writer goes on and
    SQLite's lock decides, as it did before the queue existed."""
    import fcntl
    import os

    from bidhub import db
    from bidhub.db import WRITER_LOCKS, engine_of, queued_writer

    if backend != "sqlite":
        return
    monkeypatch.setattr(db, "WRITER_QUEUE_TIMEOUT_SECONDS", 0.05)
    holder = os.open(WRITER_LOCKS[engine_of(app)], os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    session = app.extensions["bidhub_sessionmaker"]()
    try:
        with queued_writer(session):
            pass  # reached although the lock file stayed taken
    finally:
        os.close(holder)
        session.close()
