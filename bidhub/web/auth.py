"""Signing in and out, the session's user, and changing one's password."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from sqlalchemy import bindparam, select
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from bidhub.clock import now
from bidhub.db import attached, columns_of, get_session, values_by_model
from bidhub.domain.errors import InvalidRequest
from bidhub.extensions import login_manager
from bidhub.models import Branch, Role, User
from bidhub.prepared_reads import PreparedRead
from bidhub.services import users
from bidhub.services.preferences import choose_language
from bidhub.web.access import public, signed_in
from bidhub.web.cookie_session import LOGIN_PAGE_CHOICE, fresh_session
from bidhub.web.forms import LoginForm, PasswordForm
from bidhub.web.nav import BADGES_OF_USER, keep_badges
from bidhub.web.rendering import hx_redirect, is_htmx_partial_request, render, render_form_errors

blueprint = Blueprint("auth", __name__)


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please sign in to see this page.")
    login_manager.session_protection = "strong"
    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(unauthorized)


# Built once: every signed-in request runs it, and building a statement costs more than
# SQLAlchemy's cached compilation of it. Plain columns, the user's and their branch's: the
# frame shows both.
_USER_BY_SESSION_TOKEN = (
    select(*columns_of(User, Branch))
    .outerjoin(Branch, Branch.id == User.branch_id)
    .where(User.session_token == bindparam("token")).limit(1))
USER_BY_SESSION_TOKEN = PreparedRead(_USER_BY_SESSION_TOKEN)
# The same row with a rep's badge counts, for a request that draws the navigation: the frame
# then reads no statement of its own.
USER_WITH_BADGES_BY_SESSION_TOKEN = PreparedRead(
    _USER_BY_SESSION_TOKEN.add_columns(*BADGES_OF_USER))


def load_user(session_token: str) -> User | None:
    """The active user whose session this is, as an ORM object of the request's session.

    Every signed-in request loads one user; the ORM's loading machinery cost more than the
    rest of a small page's statements, so the row is read as plain columns and the objects
    are made from it as a query would make them (unmodified, their branch loaded)."""
    session = get_session()
    # A full page that is drawn (a GET, not an htmx fragment) shows a rep's badges.
    draws_navigation = request.method == "GET" and not is_htmx_partial_request()
    read = USER_WITH_BADGES_BY_SESSION_TOKEN if draws_navigation else USER_BY_SESSION_TOKEN
    row = read.first(session.connection(), {"token": session_token})
    if row is None:
        return None
    user_values, branch_values = values_by_model(row, User, Branch)
    if not user_values["is_active"]:
        return None
    if draws_navigation and user_values["role"] == Role.REP:
        keep_badges(*row[-len(BADGES_OF_USER):])
    branch = None if branch_values is None else attached(session, Branch, branch_values)
    user = session.identity_map.get(identity_key(User, user_values["id"]))
    if user is None:
        user = attached(session, User, user_values)
        set_committed_value(user, "branch", branch)
    return user


def unauthorized():
    target = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
    if request.headers.get("HX-Request") == "true":
        return hx_redirect(target, status=401)
    if request.accept_mimetypes.best == "application/json":
        return {"error": "sign in first"}, 401
    flash(login_manager.login_message, "info")
    return redirect(target)


def home_for(user: User) -> str:
    if user.role == Role.REP:
        return url_for("market.rounds")
    if user.role == Role.KA_MANAGER:
        return url_for("board.home")
    if user.role == Role.EXECUTIVE:
        return url_for("sponsors.confirmations")
    return url_for("admin.users")


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None.

    Browsers read a backslash as a slash ("/\\evil" is "//evil", another host), and a control
    character such as CR/LF would break the Location header, so both are refused outright.
    """
    if not target or not target.isprintable() or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


# Pages a user who must replace a temporary password may still reach.
PASSWORD_CHANGE_ENDPOINTS = frozenset({"auth.password", "auth.logout", "language.switch",
                                       "static"})


@blueprint.before_app_request
def require_password_change():
    """Send a user whose password an admin reset to the change-password page, from anywhere."""
    if request.endpoint is None or request.endpoint in PASSWORD_CHANGE_ENDPOINTS:
        return None
    if not current_user.is_authenticated or not current_user.must_change_password:
        return None
    target = url_for("auth.password")
    if request.headers.get("HX-Request") == "true":
        return hx_redirect(target)
    return redirect(target)


@blueprint.route("/")
@public
def index():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    return redirect(url_for("auth.login"))


@blueprint.route("/login", methods=["GET", "POST"])
@public
def login():
    form = LoginForm()
    if form.validate_on_submit():
        try:
            # The client's own address; behind a proxy only once ProxyFix vouches for it.
            user = users.authenticate(
                get_session(), form.username.data, form.password.data, request.remote_addr,
                now(), users.LoginPolicy.from_config(current_app.config))
        except users.LoginRefused:
            form.form_errors.append(_("Wrong username or password, or too many attempts; "
                                      "wait a moment and try again."))
            return render_form_errors("auth/login.html", form=form)
        chosen = session.get("locale")
        if session.get(LOGIN_PAGE_CHOICE) and chosen != user.locale:
            # The language picked on the login page just now is the person's choice.
            choose_language(get_session(), user, chosen, current_app.config["LANGUAGES"])
            user = get_session().get(User, user.id)
        fresh_session(user.locale)  # a new session on every login, in the person's language
        login_user(user)
        if user.must_change_password:
            return redirect(url_for("auth.password"))
        return redirect(safe_next(request.args.get("next")) or home_for(user))
    if form.is_submitted():
        return render_form_errors("auth/login.html", form=form)
    return render("auth/login.html", form=form)


@blueprint.route("/logout", methods=["POST"])
@signed_in
def logout():
    users.end_sessions(get_session(), current_user)
    logout_user()
    fresh_session()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))


@blueprint.route("/password", methods=["GET", "POST"])
@signed_in
def password():
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            users.change_password(get_session(), current_user, form.current_password.data,
                                  form.new_password.data, now())
        except InvalidRequest as error:
            form.add_error(error)
            return render_form_errors("auth/password.html", form=form)
        logout_user()
        fresh_session()
        flash(_("Password changed. Sign in again with the new one."), "success")
        return redirect(url_for("auth.login"))
    if form.is_submitted():
        return render_form_errors("auth/password.html", form=form)
    return render("auth/password.html", form=form)
