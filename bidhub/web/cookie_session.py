"""Flask's signed-cookie session, with its signing serializer made once per key set and each
cookie's contents verified once.

Flask builds a new URLSafeTimedSerializer, with its signer, on every request that opens or
saves the session; the keys change only when the app's configuration does, so one serializer
per key set serves every request (and a changed SECRET_KEY still gets its own).

A signed-in browser sends the same cookie with every request until its session changes, and
Flask checked its signature and decoded it each time. The contents a cookie was found to
carry are kept, by the key set and the cookie's exact text: only that text, signed by those
keys, gives them back, and its age is still checked against the session's lifetime on every
request, as the signature check would. Only contents made of plain values (strings, numbers,
booleans) are kept, since each request's session is a copy of them that it may change."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Request, current_app, g, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf
from itsdangerous import BadSignature, URLSafeTimedSerializer

KEPT_COOKIES_LIMIT = 10_000
PLAIN_VALUES = (str, int, float, bool, type(None))


class KeptSerializerSessionInterface(SecureCookieSessionInterface):
    def __init__(self) -> None:
        self._serializers: dict[tuple, URLSafeTimedSerializer | None] = {}
        self._opened: dict[tuple, tuple[dict[str, Any], int]] = {}

    @staticmethod
    def key_set(app: Flask) -> tuple:
        return (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        key = self.key_set(app)
        serializer = self._serializers.get(key)
        if serializer is None:
            serializer = super().get_signing_serializer(app)
            if len(self._serializers) >= 8:  # keys rotated many times in one process
                self._serializers.clear()
            self._serializers[key] = serializer
        return serializer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        value = request.cookies.get(self.get_cookie_name(app))
        if not value:
            return self.session_class()
        max_age = int(app.permanent_session_lifetime.total_seconds())
        key = (*self.key_set(app), value)
        kept = self._opened.get(key)
        if kept is not None:
            contents, signed_at = kept
            age = int(time.time()) - signed_at  # as itsdangerous's TimestampSigner counts it
            return self.session_class(contents if 0 <= age <= max_age else None)
        try:
            contents, signed = serializer.loads(value, max_age=max_age, return_timestamp=True)
        except BadSignature:
            return self.session_class()
        if isinstance(contents, dict) and all(type(item) in PLAIN_VALUES
                                              for item in contents.values()):
            if len(self._opened) >= KEPT_COOKIES_LIMIT:
                self._opened.clear()
            self._opened[key] = (contents, int(signed.timestamp()))
        return self.session_class(contents)


# In the session: its language was chosen with the switch by someone not signed in (on the
# login page), so signing in saves it on the user (auth.login).
LOGIN_PAGE_CHOICE = "locale_chosen_signed_out"


def fresh_session(saved_locale: str | None = None) -> None:
    """Clear the session (signing in or out) but keep the language: the user's saved one, else
    the one chosen with the switch, so the next page, the login page included, speaks it.

    The new session gets its CSRF secret at once, in the cookie this answer sets. Made later
    by the next page's first form, it would change the session, and that page would set the
    cookie again (and every page would, for a client that keeps the sign-in's cookie)."""
    locale = saved_locale or session.get("locale")
    session.clear()
    if locale in current_app.config["LANGUAGES"]:
        session["locale"] = locale
    # This request's token, if it made one, is signed from the secret just cleared.
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    generate_csrf()


def init_app(app: Flask) -> None:
    app.session_interface = KeptSerializerSessionInterface()
