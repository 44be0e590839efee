"""Error pages, and the mapping from use-case errors to HTTP answers."""

from __future__ import annotations

import contextlib
import logging
from urllib.parse import urlsplit

from flask import Flask, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from bidhub.db import get_session, is_lost_race
from bidhub.domain.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from bidhub.domain.rules import MAX_RULE_BYTES
from bidhub.web.auth import safe_next
from bidhub.web.i18n import translate
from bidhub.web.rendering import render

log = logging.getLogger(__name__)

TITLES = {
    400: _l("Bad request"),
    403: _l("Not allowed"),
    404: _l("Not found"),
    405: _l("Method not allowed"),
    409: _l("Changed in the meantime"),
    413: _l("Too large"),
    422: _l("Not accepted"),
    500: _l("Something went wrong"),
}
# Werkzeug's own descriptions are English only; these say the same in the page's language.
HTTP_MESSAGES = {
    400: _l("The request could not be understood. Reload the page and try again."),
    403: _l("You may not see this page."),
    404: _l("There is no such page, or it is not open to you."),
    405: _l("This address does not take that kind of request."),
}


def error_page(status: int, message: str, way_on: tuple[str, str] | None = None):
    """The error's page (or fragment, for htmx); `way_on` is a link (address, words) to what
    the person should do next, shown before the way back to the start page."""
    # The page must render even when the database is what failed.
    with contextlib.suppress(Exception):
        get_session().rollback()
    if request.headers.get("HX-Request") == "true":
        return render("_error_fragment.html", status=status, message=message,
                      title=str(TITLES.get(status, _l("Error"))))
    return render("error.html", status=status, message=message, way_on=way_on,
                  title=str(TITLES.get(status, _l("Error"))))


def form_page() -> str | None:
    """Where a refused form can be opened again: its own address when that shows the form,
    else the page of this site it was sent from (the Referer, same-origin only)."""
    rule = request.url_rule
    if rule is not None and "GET" in (rule.methods or ()):
        return request.path
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc != request.host:
        return None
    return safe_next(referrer.path + (f"?{referrer.query}" if referrer.query else ""))


def form_again() -> tuple[str, str] | None:
    """For a form refused as a whole (changed in the meantime, too large): a link to open it
    again, as it stands now (`form_page`); None for anything but a POST, or without a page."""
    if request.method != "POST":
        return None
    page = form_page()
    return (page, _("Open the page again")) if page else None


def csrf_refusal():
    """A form whose token does not match the session: the session ended (signed out, or the
    cookie is gone) or the form was drawn for an earlier one. Reloading the answer only sends
    the same form again, so the page says what helps and links to it."""
    page = form_page()
    if not current_user.is_authenticated:
        return error_page(400, _("Your session has ended, so nothing was saved. Sign in again, "
                                 "then send the form again."),
                          (url_for("auth.login", next=page), _("Sign in")))
    return error_page(400, _("This form was opened before you last signed in, or sent from "
                             "another site, so nothing was saved. Open the page again and "
                             "send it again."),
                      (page, _("Open the page again")) if page else None)


def init_app(app: Flask) -> None:
    @app.errorhandler(NotFound)
    def not_found(error):
        return error_page(404, translate(error))

    @app.errorhandler(PermissionDenied)
    def forbidden(error):
        return error_page(403, translate(error))

    @app.errorhandler(Conflict)
    @app.errorhandler(StaleDataError)
    def conflict(error):
        message = translate(error) if isinstance(error, Conflict) else _(
            "Someone else changed this in the meantime; reload and try again.")
        return error_page(409, message, form_again())

    @app.errorhandler(IntegrityError)
    @app.errorhandler(OperationalError)
    def lost_race(error):
        # A unique key taken at the same moment, or PostgreSQL ending one of two transactions
        # that waited for each other: the request lost a race, and its transaction rolled back.
        if isinstance(error, OperationalError) and not is_lost_race(error):
            raise error
        # Said in the log too: a deadlock or a unique key taken twice is worth knowing about.
        log.warning("%s %s lost a race with another transaction: %s", request.method,
                    request.path, str(error.orig).splitlines()[0] if error.orig else error)
        return error_page(409, _("Someone else changed this at the same moment; nothing was "
                                 "saved. Reload and try again."), form_again())

    @app.errorhandler(InvalidRequest)
    def invalid(error):
        return error_page(422, translate(error))

    @app.errorhandler(CSRFError)
    def csrf_failed(error):
        return csrf_refusal()

    for status in (400, 403, 404, 405):
        app.register_error_handler(status, lambda error, status=status: error_page(
            status, str(HTTP_MESSAGES[status])))

    @app.errorhandler(413)
    def too_large(error):
        size = f"{(app.config.get('MAX_CONTENT_LENGTH') or 0) / (1024 * 1024):g}"
        if request.blueprint == "imports":
            return error_page(413, _("The upload is larger than the limit of %(size)s MiB. "
                                     "Nothing was saved; split the file or remove columns and "
                                     "try again.", size=size), form_again())
        if request.blueprint == "rules":
            # A pasted draft, not a file: name the rules' own limit, as a draft read whole is.
            return error_page(413, _("The draft sent is larger than the limit of %(size)s MiB "
                                     "for a request, so it was not read; a rule file may hold "
                                     "at most %(maximum)s bytes (%(kib)d KiB). Nothing was "
                                     "saved.", size=size, maximum=f"{MAX_RULE_BYTES:,}",
                                     kib=MAX_RULE_BYTES // 1024), form_again())
        # A screenshot or another attachment: the advice for a CRM export does not apply.
        return error_page(413, _("The upload is larger than the limit of %(size)s MiB. Nothing "
                                 "was saved; go back and choose a smaller file.", size=size),
                          form_again())

    @app.errorhandler(500)
    def server_error(error):
        return error_page(500, _("The error was logged. Nothing was saved."))
