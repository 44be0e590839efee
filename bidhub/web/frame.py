"""The page frame: everything from the end of the title to the page's content (the head's links,
the navigation, who is signed in, the language switch, the flashes).

Every full page renders it, and rendering it through Jinja cost a signed-in page more than the
page's own statements. So it is rendered once per kind of frame, with a marker in place of each
value that changes from one request to the next, and filled in per request. The kinds are told
apart by everything the markup branches on (the language, the mount point, the role, whether a
password change is owed, whether the user has a branch, which badges show); the values (the
token, the name, the branch's name, the badge counts, the page's own address) are escaped as
Jinja escapes them. A page with flashed messages is rendered whole: they are rare.
"""

from __future__ import annotations

import re
from typing import Any

from flask import current_app, g, get_flashed_messages, request, session
from flask_babel import get_locale
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape

from bidhub.models import Role
from bidhub.services.branches import branch_label
from bidhub.web.errors import form_page
from bidhub.web.nav import RepBadges, rep_badges

FRAME_TEMPLATE = "_frame.html"
FRAME_CACHE = "bidhub_page_frames"
FRAME_CACHE_LIMIT = 1_000
SIGNED_TOKENS = "bidhub_signed_csrf_tokens"
SIGNED_TOKENS_LIMIT = 10_000
SLOT = re.compile("\x00(\\w+)\x00")


def slot(name: str) -> str:
    """The marker that stands for the value `name` in a frame's kept markup."""
    return f"\x00{name}\x00"


def page_token() -> str:
    """The session's CSRF token, signed once per process and session.

    Tokens have no time limit here (WTF_CSRF_TIME_LIMIT is None: a token lives as long as its
    session), so a token signed earlier for this session's secret is exactly as good as a new
    one, and signing one cost a full page about a tenth of its time. The request's forms draw
    the same token, as `generate_csrf` would give them."""
    config = current_app.config
    field = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    if config.get("WTF_CSRF_TIME_LIMIT", 3600) is not None or field in g or field not in session:
        return generate_csrf()
    key = (config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key, session[field])
    cache = current_app.extensions[SIGNED_TOKENS]
    token = cache.get(key)
    if token is None:
        if len(cache) >= SIGNED_TOKENS_LIMIT:
            cache.clear()
        token = cache[key] = generate_csrf()
    else:
        setattr(g, field, token)
    return token


def language_switch_return() -> str:
    """Where the language switch brings the user back: this page's address (app.js follows
    it as htmx changes it), or, for a page drawn in answer to a form (a refused one), the
    page that shows the form again; none (the home page) if there is none."""
    if request.method in ("GET", "HEAD"):
        return request.full_path
    return form_page() or ""


def page_frame() -> Markup:
    user = current_user._get_current_object()
    values: dict[str, Any] = {
        "signed_in": user.is_authenticated, "role": None, "must_change_password": False,
        "has_branch": False, "badges": None, "user_name": "", "branch_label": "",
        "csrf": page_token(), "next_path": language_switch_return(),
        "flashes": get_flashed_messages(with_categories=True),
    }
    locale = get_locale()
    if values["signed_in"]:
        branch = user.branch
        values.update(role=user.role, must_change_password=user.must_change_password,
                      has_branch=branch is not None, user_name=user.display_name,
                      branch_label=branch_label(branch, locale) if branch is not None else "",
                      badges=rep_badges() if user.role == Role.REP else None)
    template = current_app.jinja_env.get_template(FRAME_TEMPLATE)
    if values["flashes"]:
        return Markup(template.render(values) + "\n")  # noqa: S704 (Jinja escaped it)
    badges = values["badges"]
    key = (request.script_root, str(locale), values["signed_in"], values["role"],
           values["must_change_password"], values["has_branch"],
           None if badges is None else (bool(badges.open_incidents), bool(badges.due_reviews)))
    cache = current_app.extensions[FRAME_CACHE]
    pieces = cache.get(key)
    if pieces is None:
        if len(cache) >= FRAME_CACHE_LIMIT:
            cache.clear()
        marked = dict(values, csrf=slot("csrf"), next_path=slot("next_path"),
                      user_name=slot("user_name"), branch_label=slot("branch_label"))
        if badges is not None:
            marked["badges"] = RepBadges(
                slot("open_incidents") if badges.open_incidents else 0,
                slot("due_reviews") if badges.due_reviews else 0)
        # The template drops its last newline (Jinja's default); the page needs it.
        pieces = cache[key] = SLOT.split(template.render(marked) + "\n")
    if badges is not None:
        values["open_incidents"], values["due_reviews"] = badges
    filled = pieces.copy()
    filled[1::2] = [escape(values[name]) for name in pieces[1::2]]
    return Markup("".join(filled))  # noqa: S704 (kept markup, escaped values)


def init_app(app: Any) -> None:
    app.extensions[FRAME_CACHE] = {}
    app.extensions[SIGNED_TOKENS] = {}
    app.jinja_env.globals["page_frame"] = page_frame
