"""Structured logs: a request id on every request, one line per request, JSON or text."""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
# An id from a proxy or load balancer is kept when it looks like one (a UUID, a hex or
# base64 token, a trace id); anything else could forge or break log lines and is replaced.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/=@-]{0,127}")
LOG_FORMATS = ("json", "text")
request_log = logging.getLogger("bidhub.request")

# Attributes every LogRecord has; anything else on a record was passed with `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def sane_request_id(value: str | None) -> str | None:
    if value and SANE_REQUEST_ID.fullmatch(value):
        return value
    return None


def new_request_id() -> str:
    return secrets.token_hex(16)


def current_request_id() -> str | None:
    if has_request_context():
        return g.get("request_id")
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id inside a
    request, and whatever the call passed with `extra=`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with the request id appended inside a request."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None) or current_request_id()
        return f"{line} [request_id={request_id}]" if request_id else line


def formatter_for(log_format: str) -> logging.Formatter:
    if log_format not in LOG_FORMATS:
        raise ValueError(f"BIDHUB_LOG_FORMAT is {log_format!r}; use json or text.")
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Send every log record of this process to stdout in `log_format` (the long-running
    commands call this; tests and one-off commands keep Python's defaults)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter_for(log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def start_request() -> None:
    g.request_id = sane_request_id(request.headers.get(REQUEST_ID_HEADER)) or new_request_id()
    g.request_started = time.perf_counter()


def finish_request(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id is None:  # a response made before start_request ran
        return response
    response.headers[REQUEST_ID_HEADER] = request_id
    if request_log.isEnabledFor(logging.INFO):
        # The user Flask-Login already loaded for this request, if any: never a query of its own.
        user = g.get("_login_user")
        request_log.info("%s %s %s", request.method, request.path, response.status_code, extra={
            "request_id": request_id,
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - g.request_started) * 1000, 2),
            "user_id": getattr(user, "id", None),
            "remote_addr": request.remote_addr,
        })
    return response


def init_app(app: Flask) -> None:
    # Registered before the blueprints, so it runs before any hook that may answer early.
    app.before_request(start_request)
    app.after_request(finish_request)
