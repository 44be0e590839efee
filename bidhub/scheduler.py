"""Scheduled work: closing rounds, results taking effect after their standstill, notices."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Flask

from bidhub.db import get_session

log = logging.getLogger(__name__)
CLOSE_ROUNDS_EVERY_SECONDS = 30
APPLY_LISTINGS_EVERY_SECONDS = 30
DELIVERIES_EVERY_SECONDS = 20


def close_due_rounds_job(app: Flask) -> list[int]:
    from bidhub.services.adjudication import close_due_rounds

    with app.app_context():
        now = app.config["CLOCK"]()
        scored = close_due_rounds(get_session(), now)
        if scored:
            log.info("scored rounds %s after their deadline", scored)
        return scored


def apply_due_listings_job(app: Flask, now: datetime | None = None) -> list[int]:
    """Results whose appeal window ended, with every appeal answered, take effect: filed once,
    whichever process or restart gets there first."""
    from bidhub.services.appeals import apply_due_listings

    with app.app_context():
        applied = apply_due_listings(get_session(), now or app.config["CLOCK"]())
        if applied:
            log.info("listings %s took effect after their standstill", applied)
        return applied


def round_notices_job(app: Flask, now: datetime | None = None) -> list[str]:
    """Tell reps a round opened and that its deadline is 24 hours, then 1 hour, away; once."""
    from bidhub.services.notifications import notify_due_rounds

    with app.app_context():
        return notify_due_rounds(get_session(), now or app.config["CLOCK"]())


def deliveries_job(app: Flask, now: datetime | None = None):
    """Send notifications by e-mail and webhook, retrying failures; never inside a request."""
    from bidhub.web.notifications import send_deliveries

    with app.app_context():
        return send_deliveries(app, now or app.config["CLOCK"]())


def start(app: Flask):
    """Catch up on deadlines and standstills that ended while down, then check every half
    minute."""
    from apscheduler.schedulers.background import BackgroundScheduler

    close_due_rounds_job(app)
    apply_due_listings_job(app)
    round_notices_job(app)
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(close_due_rounds_job, "interval", seconds=CLOSE_ROUNDS_EVERY_SECONDS,
                      args=[app], id="close_due_rounds", max_instances=1, coalesce=True)
    scheduler.add_job(apply_due_listings_job, "interval", seconds=APPLY_LISTINGS_EVERY_SECONDS,
                      args=[app], id="apply_due_listings", max_instances=1, coalesce=True)
    scheduler.add_job(round_notices_job, "interval", seconds=CLOSE_ROUNDS_EVERY_SECONDS,
                      args=[app], id="round_notices", max_instances=1, coalesce=True)
    scheduler.add_job(deliveries_job, "interval", seconds=DELIVERIES_EVERY_SECONDS,
                      args=[app], id="deliveries", max_instances=1, coalesce=True)
    scheduler.start()
    app.extensions["bidhub_scheduler"] = scheduler
    return scheduler


def init_app(app: Flask) -> None:
    if app.config.get("SCHEDULER_ENABLED"):
        start(app)
