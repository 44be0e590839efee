"""bench/web.py reads wrk's figures right (no timing here: the bench itself measures)."""

from __future__ import annotations

import pytest

from bench.web import parse_duration_ms, parse_wrk, percentile

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
