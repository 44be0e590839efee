"""Structured logs: a request id on every request, one line per request, JSON or text."""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from typing import Any

from flask import Flask, Response, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"
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


def utc_time(created: float) -> str:
    """ISO 8601 in UTC with milliseconds, e.g. 2026-11-30T07:55:01.123+00:00."""
    seconds = int(created)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            + f".{int((created - seconds) * 1000):03d}+00:00")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id inside a
    request, and whatever the call passed with `extra=`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key in record.__dict__.keys() - _RECORD_ATTRIBUTES - entry.keys():
            entry[key] = record.__dict__[key]
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
    # Alembic announces each of its plugins as it loads them (reading the migrations' head
    # does): nothing an operator acts on.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def start_request() -> None:
    # The proxies `request` and `g` cost a lookup on every use: each is resolved once here.
    current = request._get_current_object()
    context = g._get_current_object()
    context.request_id = (sane_request_id(current.environ.get(REQUEST_ID_ENVIRON))
                          or new_request_id())
    context.request_started = time.perf_counter()


def finish_request(response: Response) -> Response:
    context = g._get_current_object()
    request_id = getattr(context, "request_id", None)
    if request_id is None:  # a response made before start_request ran
        return response
    response.headers[REQUEST_ID_HEADER] = request_id
    if request_log.isEnabledFor(logging.INFO):
        current = request._get_current_object()
        # The user Flask-Login already loaded for this request, if any: never a query of its own.
        user = getattr(context, "_login_user", None)
        method, path, status = current.method, current.path, response.status_code
        # Made and handled directly: logging's search of the stack for the caller would cost
        # more than the rest of the line, and the caller is always this function.
        request_log.handle(request_log.makeRecord(
            request_log.name, logging.INFO, __file__, 0, "%s %s %s", (method, path, status),
            None, extra={
                "request_id": request_id, "method": method, "path": path, "status": status,
                "duration_ms": round((time.perf_counter() - context.request_started) * 1000, 2),
                "user_id": getattr(user, "id", None), "remote_addr": current.remote_addr,
            }))
    return response


def init_app(app: Flask) -> None:
    # Registered before the blueprints, so it runs before any hook that may answer early.
    app.before_request(start_request)
    app.after_request(finish_request)
