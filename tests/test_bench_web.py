"""bench/web.py reads wrk's figures and the processes' CPU time right (no timing here: the
bench itself measures)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.web import (
    CLOCK_TICKS,
    CpuMeter,
    cpu_seconds,
    libpq_url,
    parent_of,
    parse_duration_ms,
    parse_wrk,
    percentile,
)

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:8000/rounds/2
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    28.44ms    6.46ms  80.56ms   87.28%
    Req/Sec   281.99     26.63   330.00     80.00%
  Latency Distribution
     50%   27.43ms
     75%   29.97ms
     90%   35.55ms
     99%    1.02s
  2818 requests in 5.01s, 41.17MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:    562.47
Transfer/sec:      8.22MB
"""


def test_wrk_output_gives_rate_latencies_and_failures():
    result = parse_wrk(WRK_OUTPUT)
    assert result.rps == 562.47
    assert result.p50_ms == 27.43
    assert result.p99_ms == 1020.0
    assert result.non_success == 4
    assert result.socket_errors == 3
    assert result.requests == 2818


def test_wrk_output_without_failures_counts_none():
    clean = "\n".join(line for line in WRK_OUTPUT.splitlines()
                      if "Socket errors" not in line and "Non-2xx" not in line)
    result = parse_wrk(clean)
    assert (result.non_success, result.socket_errors) == (0, 0)


def test_wrk_output_without_a_latency_distribution_is_refused():
    with pytest.raises(ValueError, match="latency distribution"):
        parse_wrk(WRK_OUTPUT.split("  Latency Distribution")[0] + "Requests/sec:  1.0\n")


@pytest.mark.parametrize(("text", "ms"), [("850.00us", 0.85), ("3.20ms", 3.2), ("1.50s", 1500.0),
                                          ("2.00m", 120_000.0)])
def test_wrk_durations_in_milliseconds(text, ms):
    assert parse_duration_ms(text) == pytest.approx(ms)


def test_percentiles_of_burst_latencies():
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.50) == 51.0
    assert percentile(values, 0.99) == 100.0
    assert percentile([], 0.5) != percentile([], 0.5)  # nan: no POST answered


def test_wrk_output_without_a_request_count_is_refused():
    with pytest.raises(ValueError, match="request count"):
        parse_wrk("\n".join(line for line in WRK_OUTPUT.splitlines() if "requests in" not in line))


def test_a_stat_line_gives_the_parent_and_the_cpu_seconds_whatever_the_process_is_called():
    # pid (name) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
    # stime ...; a name may hold spaces and parentheses
    line = "4242 (gunicorn: (worker) 1) S 4200 4200 4200 0 -1 4194560 10 0 0 0 250 50 0 0 20"
    assert parent_of(line) == 4200
    assert cpu_seconds(line) == pytest.approx(300 / CLOCK_TICKS)


def test_cpu_spent_counts_a_process_started_between_snapshots_and_unknown_stays_unknown():
    before = {1: 2.0, 2: 5.0}
    after = {1: 2.5, 2: 5.25, 3: 0.25}  # 3 started in between; a process gone is not counted
    assert CpuMeter.spent(before, after) == pytest.approx(1.0)
    assert CpuMeter.spent(None, after) is None and CpuMeter.spent(before, None) is None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_meter_reads_the_cpu_time_of_a_servers_children():
    """This process standing in for gunicorn's master: a child that works for a while shows
    that time, and an SQLite database has no server of its own to measure."""
    meter = CpuMeter(gunicorn_pid=os.getpid(), database_url="sqlite:///unused")
    working = ("import sys, time\n"
               "end = time.process_time() + 0.3\n"
               "while time.process_time() < end: pass\n"
               "sys.stdout.write('done\\n'); sys.stdout.flush(); sys.stdin.read()")
    with subprocess.Popen([sys.executable, "-c", working], stdin=subprocess.PIPE,  # noqa: S603
                          stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout.readline() == "done\n"  # worked, and still running
            workers, database = meter.snapshot()
        finally:
            child.stdin.close()
        assert child.pid in workers and workers[child.pid] >= 0.2
        assert database is None


def test_the_meter_finds_the_server_process_of_each_session_on_the_database(postgres_databases):
    """On a PostgreSQL server on this machine (as .ci/run starts it), each client session on
    the bench's database is a process whose CPU time the meter reads; its own session is not
    counted, nor a session on another database."""
    import psycopg

    url = postgres_databases.new()
    dsn = libpq_url(url)
    meter = CpuMeter(gunicorn_pid=os.getpid(), database_url=url)
    with psycopg.connect(dsn, autocommit=True) as first, \
            psycopg.connect(dsn, autocommit=True) as second:
        first.execute("SELECT count(*) FROM generate_series(1, 200000)").fetchone()
        pids = {first.info.backend_pid, second.info.backend_pid}
        if not all(Path(f"/proc/{pid}").exists() for pid in pids):
            pytest.skip("the PostgreSQL server runs on another machine")
        _workers, database = meter.snapshot()
        assert set(database) == pids
        assert all(seconds >= 0 for seconds in database.values())
