"""The language switch in the page header (中文 / English)."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from bidhub.db import get_session
from bidhub.services.preferences import choose_language
from bidhub.web.access import public
from bidhub.web.auth import safe_next
from bidhub.web.cookie_session import LOGIN_PAGE_CHOICE

blueprint = Blueprint("language", __name__)


@blueprint.route("/language", methods=["POST"])
@public
def switch():
    """Remember the chosen language: on the user when signed in, in the session always.

    A POST with the CSRF token like every other change. The session's copy serves the login
    page and is carried through signing in: a choice made there before signing in is saved on
    the user then (LOGIN_PAGE_CHOICE); otherwise the user's saved choice wins over it.
    """
    locale = request.form.get("locale", "")
    if locale not in current_app.config["LANGUAGES"]:
        flash(_("Choose one of the languages offered."), "error")
    else:
        if current_user.is_authenticated:
            choose_language(get_session(), current_user, locale, current_app.config["LANGUAGES"])
        else:
            session[LOGIN_PAGE_CHOICE] = True
        session["locale"] = locale
    return redirect(safe_next(request.form.get("next")) or url_for("auth.index"), code=303)
