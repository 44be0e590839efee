"""Configuration defaults, overridden by BIDHUB_* environment variables or a mapping in tests."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from bidhub.clock import system_now

# Files bidhub needs at run time ship inside the package, so a wheel install finds them too.
PACKAGE_DIR = Path(__file__).resolve().parent


class Defaults:
    DATABASE_URL: str | None = None  # None: a SQLite file in the instance folder
    # The filing register's checkpoints and their HMAC key live outside the database.
    LEDGER_CHECKPOINT_FILE: str | None = None  # None: instance/ledger-checkpoints.jsonl
    LEDGER_KEY: str | None = None  # None: generated once into instance/ledger_key
    RULES_DIR = str(PACKAGE_DIR / "rules")  # rules/default.toml in a clone links to it
    DEFAULT_RULES_FILE = "default.toml"
    TIMEZONE = "Asia/Shanghai"
    # The language of a page when neither the user's saved choice nor the browser names one;
    # Flask-Babel's BABEL_DEFAULT_LOCALE follows it (bidhub.configure).
    DEFAULT_LOCALE = "zh_CN"
    LANGUAGES = ("zh_CN", "en")
    CLOCK = staticmethod(system_now)
    SCHEDULER_ENABLED = False
    # One scheduler runs the jobs at a time; a standby takes over once the active one's
    # heartbeat is this old (on PostgreSQL as soon as its advisory lock is released).
    SCHEDULER_LEASE_SECONDS = 60.0
    # /healthz answers 503 when the scheduler's heartbeat is older; None: report the age only.
    HEALTH_MAX_HEARTBEAT_SECONDS: float | None = None
    LOG_FORMAT = "text"  # json or text; `bidhub serve` and `bidhub scheduler` default to json
    # `bidhub serve` (gunicorn, sync workers). WORKERS None: 2 x cores + 1.
    BIND = "127.0.0.1:8000"
    WORKERS: int | None = None
    TIMEOUT = 30
    GRACEFUL_TIMEOUT = 30
    KEEPALIVE = 2
    MAX_REQUESTS = 2000
    MAX_REQUESTS_JITTER = 200
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    MAX_CONTENT_LENGTH = 5 * 1024 * 1024
    IMPORT_PROGRESS_MIN_BYTES = 256 * 1024  # larger uploads show progress as they import
    # Failed sign-ins are throttled per account name and per client address (request.remote_addr;
    # behind a reverse proxy wrap the app in werkzeug's ProxyFix, or every client shares one).
    # After the free failures each further failure doubles the wait, up to the cap.
    LOGIN_FREE_FAILURES_PER_ACCOUNT = 5
    LOGIN_FREE_FAILURES_PER_ADDRESS = 20  # an office behind one NAT address shares this
    LOGIN_FIRST_DELAY_SECONDS = 2
    LOGIN_MAX_DELAY_SECONDS = 300
    LOGIN_FORGET_FAILURES_AFTER_MINUTES = 24 * 60
    # Notifications outside the app, off unless configured: e-mail needs SMTP_HOST, the
    # webhook (a WeCom or DingTalk group bot, say) needs WEBHOOK_URL. PUBLIC_URL makes their
    # links absolute.
    SMTP_HOST: str | None = None
    SMTP_PORT = 25
    SMTP_USER: str | None = None
    SMTP_PASSWORD: str | None = None
    SMTP_FROM = "bidhub@localhost"
    SMTP_STARTTLS = False
    WEBHOOK_URL: str | None = None
    PUBLIC_URL = ""
    TESTING = False


# Environment variables that override a default, and how to read each.
ENVIRONMENT_OVERRIDES = {
    "DATABASE_URL": str,
    "LEDGER_CHECKPOINT_FILE": str,
    "LEDGER_KEY": str,
    "RULES_DIR": str,
    "TIMEZONE": str,
    "DEFAULT_LOCALE": str,
    "SECRET_KEY": str,
    "SCHEDULER_ENABLED": lambda value: value.lower() in {"1", "true", "yes", "on"},
    "SCHEDULER_LEASE_SECONDS": float,
    "HEALTH_MAX_HEARTBEAT_SECONDS": float,
    "LOG_FORMAT": str,
    "BIND": str,
    "WORKERS": int,
    "TIMEOUT": int,
    "GRACEFUL_TIMEOUT": int,
    "KEEPALIVE": int,
    "MAX_REQUESTS": int,
    "MAX_REQUESTS_JITTER": int,
    "SESSION_COOKIE_SECURE": lambda value: value.lower() in {"1", "true", "yes", "on"},
    "SMTP_HOST": str,
    "SMTP_PORT": int,
    "SMTP_USER": str,
    "SMTP_PASSWORD": str,
    "SMTP_FROM": str,
    "SMTP_STARTTLS": lambda value: value.lower() in {"1", "true", "yes", "on"},
    "WEBHOOK_URL": str,
    "PUBLIC_URL": str,
}


class ConfigError(ValueError):
    """A setting bidhub cannot work with: one sentence naming the variable and what it takes.

    It stops start-up, so every command says it instead of ending in a traceback."""


def environment_config(environ: dict[str, str] | os._Environ[str] = os.environ) -> dict:
    overrides = {}
    for key, parse in ENVIRONMENT_OVERRIDES.items():
        value = environ.get(f"BIDHUB_{key}")
        if value is not None:
            try:
                overrides[key] = parse(value)
            except ValueError:
                raise ConfigError(f"BIDHUB_{key} is {value!r}, which is not a valid value "
                                  "for it.") from None
    return overrides


def instance_secret_key(instance_path: str) -> str:
    """The secret key kept in the instance folder, generated on first start; never in code."""
    path = Path(instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        # Created 0600 in one step: a write-then-chmod leaves the key readable for a moment.
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:  # another process started at the same moment and wrote it
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as file:
        file.write(key)
    return key
