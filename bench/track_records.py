"""Benchmark: the track-record pages and the stored snapshot, in-process on the demo database.

Run: python bench/track_records.py [--database sqlite:///path] [--requests 300] [--profile]

Uses the demo database (BIDHUB_DATABASE_URL, or --database; build it with `bidhub demo
--no-serve`). With the Flask test client, logged in, it times a bare page that returns "ok"
and the two track-record pages, interleaved in the same process: rep01's own page
(/my/track-record) and a manager looking at rep01 (/reps/<id>). Prints min and median CPU ms per
request and the ratio of the bare page's median to the page's (higher is better, 1.0 = bare).
Then, outside HTTP: rebuilding one rep's history from the rows against reading the stored
snapshot, and the per-bid track-record call (fresh computation against the snapshot).
--profile prints the top of a cProfile of 200 manager page requests instead.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from bidhub import create_app  # noqa: E402
from bidhub.db import get_session  # noqa: E402
from bidhub.models import Account, User  # noqa: E402

PASSWORD = "bidhub-demo"


def logged_in(app, username: str):
    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    if response.status_code != 302:
        raise SystemExit(f"could not log in as {username}: {response.status_code}")
    return client


# Process CPU time, not wall time: the machine is shared, and a request waiting for a core
# would count another process's work. Everything here runs in this one thread.
clock = time.process_time


def timed(client, url: str) -> float:
    started = clock()
    response = client.get(url, follow_redirects=True)  # /my/track-record may redirect
    elapsed = clock() - started
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}")
    return elapsed * 1000


def pages(app, rep_id: int) -> dict[str, tuple]:
    rep, manager = logged_in(app, "rep01"), logged_in(app, "manager")
    return {"bare page": (rep, "/bench-bare"),
            "rep01 /my/track-record": (rep, "/my/track-record"),
            f"manager /reps/{rep_id}": (manager, f"/reps/{rep_id}")}


def measure_pages(app, rep_id: int, requests: int) -> None:
    targets = pages(app, rep_id)
    times: dict[str, list[float]] = {name: [] for name in targets}
    for client, url in targets.values():
        for _ in range(20):  # warm caches, templates and the snapshot
            timed(client, url)
    for _ in range(requests):
        for name, (client, url) in targets.items():
            times[name].append(timed(client, url))
    bare = statistics.median(times["bare page"])
    print(f"{'page':<28} {'min ms':>8} {'median ms':>10} {'ratio to bare':>14}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<28} {min(values):>8.2f} {median:>10.2f} {bare / median:>14.3f}")


def measure_services(app, rep_id: int, requests: int) -> None:
    from bidhub.clock import now
    from bidhub.services import track_records

    with app.app_context():
        session = get_session()
        rep = session.get(User, rep_id)
        account = session.scalars(select(Account).limit(1)).one()
        moment = now()
        calls = {
            "fresh history from rows": lambda: track_records.rep_histories(session, [rep],
                                                                           moment),
            "history from snapshot": lambda: track_records.stored_histories(session, [rep],
                                                                            moment),
            "bid's record, fresh": lambda: track_records.fresh_track_record(
                session, rep, account, moment),
            "bid's record, snapshot": lambda: track_records.snapshot_track_record(
                session, rep, account, moment),
        }
        calls["history from snapshot"]()  # stores it if missing
        session.commit()
        print(f"\n{'per call (rep01)':<28} {'min ms':>8} {'median ms':>10}")
        for name, call in calls.items():
            values = []
            for _ in range(max(20, requests // 3)):
                started = clock()
                call()
                values.append((clock() - started) * 1000)
                session.rollback()
            print(f"{name:<28} {min(values):>8.2f} {statistics.median(values):>10.2f}")


def profile(app, rep_id: int) -> None:
    client, url = pages(app, rep_id)[f"manager /reps/{rep_id}"]
    for _ in range(20):
        timed(client, url)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(200):
        timed(client, url)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=os.environ.get("BIDHUB_DATABASE_URL"))
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--pages-only", action="store_true")
    args = parser.parse_args()
    config = {"SCHEDULER_ENABLED": False, "WTF_CSRF_ENABLED": False}
    if args.database:
        config["DATABASE_URL"] = args.database
    app = create_app(config)
    app.add_url_rule("/bench-bare", "bench_bare", lambda: "ok")
    with app.app_context():
        rep_id = get_session().scalars(select(User.id).where(User.username == "rep01")).one()
    if args.profile:
        profile(app, rep_id)
        return
    measure_pages(app, rep_id, args.requests)
    if not args.pages_only:
        measure_services(app, rep_id, args.requests)


if __name__ == "__main__":
    main()
