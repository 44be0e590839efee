"""`bidhub serve`: bidhub under gunicorn, configured from BIDHUB_* variables, no scheduler."""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from typing import Any

import click
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger

from bidhub.config import Defaults, environment_config
from bidhub.logs import configure_logging, formatter_for

SETTINGS = ("BIND", "WORKERS", "TIMEOUT", "GRACEFUL_TIMEOUT", "KEEPALIVE", "MAX_REQUESTS",
            "MAX_REQUESTS_JITTER", "LOG_FORMAT")


def default_workers() -> int:
    """2 x cores + 1 sync workers (gunicorn's rule of thumb): a sync worker serves one request
    at a time and spends part of it waiting on the database (PostgreSQL round trips, SQLite's
    write lock and fsync), so more workers than cores keep the cores busy, while each worker's
    memory stays modest. The cores are the ones this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 * (cores or 1) + 1


def serving_settings(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The defaults of bidhub/config.py overridden by BIDHUB_* variables; logs are JSON unless
    BIDHUB_LOG_FORMAT says text."""
    settings = {key: getattr(Defaults, key) for key in SETTINGS}
    settings["LOG_FORMAT"] = "json"
    settings.update({key: value for key, value in environment_config(environ).items()
                     if key in settings})
    if settings["WORKERS"] is None:
        settings["WORKERS"] = default_workers()
    formatter_for(settings["LOG_FORMAT"])  # refuses an unknown format before anything starts
    return settings


def gunicorn_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    log_format = settings["LOG_FORMAT"]

    class Logger(GunicornLogger):
        """gunicorn's own messages (start, workers, timeouts) in bidhub's log format."""

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for handler in self.error_log.handlers:
                handler.setFormatter(formatter_for(log_format))

    return {
        "bind": settings["BIND"],
        "workers": settings["WORKERS"],
        "worker_class": "sync",
        "timeout": settings["TIMEOUT"],
        "graceful_timeout": settings["GRACEFUL_TIMEOUT"],
        "keepalive": settings["KEEPALIVE"],
        "max_requests": settings["MAX_REQUESTS"],
        "max_requests_jitter": settings["MAX_REQUESTS_JITTER"],
        # The app writes the access line itself (bidhub.logs): it knows the request id and user.
        "accesslog": None,
        "errorlog": "-",
        "logger_class": Logger,
        # One app built in the master and forked: a broken configuration stops the start with
        # its message instead of failing every worker, and workers share its memory.
        "preload_app": True,
        "pre_fork": freeze_before_forking,
        "post_fork": forget_inherited_connections,
        "post_worker_init": freeze_once_loaded,
        "proc_name": "bidhub",
    }


def freeze_loaded_objects() -> None:
    """Leave what the app holds once loaded (modules, mappers, compiled statements,
    templates, translations: over 100,000 objects) out of the garbage collector's full
    collections. Each full collection otherwise walks them all, tens of milliseconds of a
    worker's processor time during which its request waits, and workers loaded alike reach
    theirs at about the same moment. Called in the master before it forks (so the workers
    share those pages rather than each touching them) and in each worker once its app is
    loaded; objects made later are collected as before."""
    gc.freeze()


def freeze_before_forking(_server: Any, _worker: Any) -> None:
    freeze_loaded_objects()


def freeze_once_loaded(_worker: Any) -> None:
    freeze_loaded_objects()


def forget_inherited_connections(server: Any, _worker: Any) -> None:
    """A worker must not share the master's database connections; it opens its own."""
    from bidhub.db import engine_of

    engine_of(server.app.wsgi()).dispose(close=False)


class Server(BaseApplication):
    """gunicorn on bidhub's app factory, without a command line or a config file of its own."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        # gunicorn 25.1 and later open a control socket at one path per user of the machine
        # ($XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl): a second `bidhub serve`
        # on the machine would take it over from the first. bidhub does not use it.
        if "control_socket_disable" in self.cfg.settings:
            self.cfg.set("control_socket_disable", True)

    def load(self):
        from bidhub.cli import create_app_or_exit, exit_unless_schema_current

        # The web processes never run the scheduler: `bidhub scheduler` does, apart.
        return exit_unless_schema_current(create_app_or_exit({"SCHEDULER_ENABLED": False}))


@click.command("serve")
def serve_command() -> None:
    """Serve bidhub with gunicorn (BIDHUB_BIND, default 127.0.0.1:8000). The scheduled jobs
    run apart, in `bidhub scheduler`."""
    try:
        settings = serving_settings()
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    configure_logging(settings["LOG_FORMAT"])
    Server(gunicorn_options(settings)).run()
