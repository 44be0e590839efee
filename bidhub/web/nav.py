"""The navigation's badges: a rep's open incidents and due loss reviews, read in one statement."""

from __future__ import annotations

import contextlib
from typing import NamedTuple

from flask import Flask, g
from flask_login import current_user
from sqlalchemy import select

from bidhub.db import get_session
from bidhub.models import Role, User
from bidhub.services.accountability import OPEN_INCIDENT_COUNT, open_incident_count
from bidhub.services.loss_reviews import DUE_REVIEW_COUNT, due_review_count


class RepBadges(NamedTuple):
    open_incidents: int
    due_reviews: int


REP_BADGES = select(OPEN_INCIDENT_COUNT.scalar_subquery(), DUE_REVIEW_COUNT.scalar_subquery())
# The same counts as columns of a statement that reads the user (`users` in its FROM): the
# signed-in user's row brings them on a request that draws the navigation (`keep_badges`).
BADGES_OF_USER = (open_incident_count(User.id).scalar_subquery(),
                  due_review_count(User.id).scalar_subquery())


def keep_badges(open_incidents: int | None, due_reviews: int | None) -> None:
    """The signed-in rep's badge counts, read with the user at the start of this request."""
    g.rep_badges = RepBadges(open_incidents or 0, due_reviews or 0)


def rep_badges() -> RepBadges | None:
    """The signed-in rep's badge counts (once per request); None when not a rep, or when the
    database fails, since the error page must still render."""
    if not current_user.is_authenticated or current_user.role != Role.REP:
        return None
    if "rep_badges" not in g:
        g.rep_badges = None
        with contextlib.suppress(Exception):
            # On the connection: plain columns need none of the ORM's per-statement work.
            row = get_session().connection().execute(REP_BADGES, {"rep_id": current_user.id}).one()
            g.rep_badges = RepBadges(row[0] or 0, row[1] or 0)
    return g.rep_badges


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(rep_badges=rep_badges)
