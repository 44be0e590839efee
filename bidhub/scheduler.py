"""Scheduled work: closing rounds whose deadline passed, through the same use case as the button."""

from __future__ import annotations

import logging

from flask import Flask

from bidhub.db import get_session

log = logging.getLogger(__name__)
CLOSE_ROUNDS_EVERY_SECONDS = 30


def close_due_rounds_job(app: Flask) -> list[int]:
    from bidhub.services.adjudication import close_due_rounds

    with app.app_context():
        now = app.config["CLOCK"]()
        scored = close_due_rounds(get_session(), now)
        if scored:
            log.info("scored rounds %s after their deadline", scored)
        return scored


def start(app: Flask):
    """Catch up on deadlines missed while down, then check every half minute."""
    from apscheduler.schedulers.background import BackgroundScheduler

    close_due_rounds_job(app)
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(close_due_rounds_job, "interval", seconds=CLOSE_ROUNDS_EVERY_SECONDS,
                      args=[app], id="close_due_rounds", max_instances=1, coalesce=True)
    scheduler.start()
    app.extensions["bidhub_scheduler"] = scheduler
    return scheduler


def init_app(app: Flask) -> None:
    if app.config.get("SCHEDULER_ENABLED"):
        start(app)
