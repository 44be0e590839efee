"""Serving: `bidhub serve` under gunicorn, its settings, request ids and structured logs."""

from __future__ import annotations

import gc
import importlib.util
import json
import logging
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from flask import g
from gunicorn.config import Config

from bidhub.logs import REQUEST_ID_HEADER, JsonFormatter, TextFormatter
from bidhub.serving import default_workers, gunicorn_options, serving_settings
from tests.conftest import login
from tests.test_scheduler_lease import bidhub_command, process_environment, wait_for

GENERATED_ID_LENGTH = 32


def request_lines(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "bidhub.request"]


# --- request ids ----------------------------------------------------------------------------

def test_a_sane_request_id_is_echoed(client):
    response = client.get("/login", headers={REQUEST_ID_HEADER: "lb-7f3a9c:01"})
    assert response.headers[REQUEST_ID_HEADER] == "lb-7f3a9c:01"


def test_a_request_id_is_generated_when_none_is_given(client):
    first = client.get("/login").headers[REQUEST_ID_HEADER]
    second = client.get("/login").headers[REQUEST_ID_HEADER]
    assert len(first) == GENERATED_ID_LENGTH and int(first, 16) >= 0
    assert first != second


@pytest.mark.parametrize("garbage", ["x" * 129, "a b", "<script>", '"}{"', "-leading-dash",
                                     "ünïcode"])
def test_a_garbage_request_id_is_replaced(client, garbage):
    response = client.get("/login", headers={REQUEST_ID_HEADER: garbage})
    replaced = response.headers[REQUEST_ID_HEADER]
    assert replaced != garbage and len(replaced) == GENERATED_ID_LENGTH


def test_error_pages_carry_the_request_id_too(client):
    response = client.get("/no-such-page", headers={REQUEST_ID_HEADER: "missing-1"})
    assert response.status_code == 404
    assert response.headers[REQUEST_ID_HEADER] == "missing-1"


# --- one structured line per request ----------------------------------------------------------

def test_each_request_is_logged_once_with_its_id_status_duration_and_user(
        client, make_rep, caplog):
    rep = make_rep()
    login(client, rep)
    caplog.set_level(logging.INFO, logger="bidhub.request")
    caplog.clear()
    response = client.get("/rounds", headers={REQUEST_ID_HEADER: "req-1"})
    assert response.status_code == 200
    (record,) = request_lines(caplog)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["request_id"] == "req-1"
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/rounds", 200)
    assert entry["level"] == "INFO" and entry["time"].endswith("+00:00")
    assert entry["duration_ms"] >= 0
    assert entry["user_id"] == rep.id
    assert entry["remote_addr"] == "127.0.0.1"


def test_an_anonymous_request_has_no_user(client, caplog):
    caplog.set_level(logging.INFO, logger="bidhub.request")
    client.get("/login")
    (record,) = request_lines(caplog)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["user_id"] is None and entry["status"] == 200


def test_app_log_records_inside_a_request_carry_its_id(app):
    record = logging.makeLogRecord({"name": "bidhub.services", "levelno": logging.WARNING,
                                    "levelname": "WARNING", "msg": "ledger %s", "args": ("ok",)})
    with app.test_request_context("/"):
        g.request_id = "inside-1"
        entry = json.loads(JsonFormatter().format(record))
        text = TextFormatter().format(record)
    assert entry["request_id"] == "inside-1" and entry["message"] == "ledger ok"
    assert text.endswith("[request_id=inside-1]")
    outside = json.loads(JsonFormatter().format(record))
    assert "request_id" not in outside


# --- settings ---------------------------------------------------------------------------------

def test_serve_settings_default_to_the_core_count_and_read_the_environment():
    defaults = serving_settings({})
    assert defaults["BIND"] == "127.0.0.1:8000"
    assert defaults["WORKERS"] == default_workers() >= 3
    assert defaults["LOG_FORMAT"] == "json"
    options = gunicorn_options(defaults)
    assert options["worker_class"] == "sync"
    assert options["accesslog"] is None  # the app writes the structured access line
    assert options["max_requests"] > 0 and options["max_requests_jitter"] > 0
    chosen = serving_settings({"BIDHUB_BIND": "0.0.0.0:9000", "BIDHUB_WORKERS": "3",
                               "BIDHUB_TIMEOUT": "60", "BIDHUB_LOG_FORMAT": "text"})
    assert (chosen["BIND"], chosen["WORKERS"], chosen["TIMEOUT"], chosen["LOG_FORMAT"]) == (
        "0.0.0.0:9000", 3, 60, "text")


def test_workers_leave_what_the_app_loaded_out_of_full_collections():
    """`bidhub serve` (and bench/web.py's servers) freeze the loaded app in the master before
    it forks and in each worker once loaded: the collector's full collections then walk only
    what requests made since. gunicorn takes the hooks (it checks each one's arguments)."""
    options = gunicorn_options(serving_settings({}))
    bench_config = importlib.util.spec_from_file_location(
        "bench_gunicorn_config", Path(__file__).resolve().parents[1] / "bench" / "gunicorn_config.py")
    bench = importlib.util.module_from_spec(bench_config)
    bench_config.loader.exec_module(bench)
    config = Config()
    config.set("pre_fork", options["pre_fork"])
    config.set("post_worker_init", options["post_worker_init"])
    config.set("post_worker_init", bench.post_worker_init)
    try:
        for freeze in (lambda: options["pre_fork"](None, None),
                       lambda: options["post_worker_init"](None),
                       lambda: bench.post_worker_init(None)):
            gc.unfreeze()
            loaded = [[] for _ in range(100)]
            freeze()
            assert gc.get_freeze_count() >= len(loaded)
    finally:
        gc.unfreeze()


def test_the_server_opens_no_control_socket():
    """gunicorn 25.1 and later open one at a path per user of the machine, which a second
    instance on it would take over from the first."""
    from bidhub.serving import Server

    server = Server.__new__(Server)
    server.options = gunicorn_options(serving_settings({}))
    server.cfg = Config()
    server.load_config()
    if "control_socket_disable" in server.cfg.settings:
        assert server.cfg.control_socket_disable is True

def test_an_unknown_log_format_is_refused():
    with pytest.raises(ValueError, match="json or text"):
        serving_settings({"BIDHUB_LOG_FORMAT": "xml"})


def test_an_unreadable_setting_is_named():
    with pytest.raises(ValueError, match="BIDHUB_WORKERS is 'many'"):
        serving_settings({"BIDHUB_WORKERS": "many"})


# --- `bidhub serve` starts and answers ----------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str, headers: dict[str, str] | None = None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),  # noqa: S310
                                    timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
    except OSError:
        return None


def test_bidhub_serve_starts_answers_and_logs_json(tmp_path):
    database_url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    port = free_port()
    env = process_environment(database_url, tmp_path, BIDHUB_BIND=f"127.0.0.1:{port}",
                              BIDHUB_WORKERS="2")
    init = subprocess.run([*bidhub_command(), "init"], env=env, capture_output=True,  # noqa: S603
                          text=True, timeout=120, check=False)
    assert init.returncode == 0, init.stderr
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log_file:
        server = subprocess.Popen([*bidhub_command(), "serve"], env=env,  # noqa: S603
                                  stdout=log_file, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        status, headers, body = wait_for(lambda: fetch(f"{base}/healthz"), 60,
                                         "bidhub serve to answer /healthz")
        assert status == 200, body
        health = json.loads(body)
        assert health["migrations"]["ok"] is True
        assert health["scheduler"]["holder"] is None  # the web processes never run it
        status, headers, body = fetch(f"{base}/login", {REQUEST_ID_HEADER: "smoke-1"})
        assert status == 200 and headers[REQUEST_ID_HEADER] == "smoke-1"
        assert b"bidhub" in body
    finally:
        server.send_signal(signal.SIGTERM)
        stopped = server.wait(timeout=60)
    assert stopped == 0  # a graceful stop
    entries = []
    for line in log_path.read_text(errors="replace").splitlines():
        entry = json.loads(line)  # every line is JSON: gunicorn's own, the app's, the access
        entries.append(entry)
    access = [entry for entry in entries if entry.get("path") == "/login"]
    assert len(access) == 1
    assert access[0]["request_id"] == "smoke-1" and access[0]["status"] == 200
    assert access[0]["logger"] == "bidhub.request" and access[0]["duration_ms"] >= 0
    assert any(entry["logger"].startswith("gunicorn") for entry in entries)
    # No control socket: a second `bidhub serve` on the machine would take it over.
    assert not any("Control socket" in entry.get("message", "") for entry in entries), entries
