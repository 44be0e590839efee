"""Flask's signed-cookie session, with its signing serializer made once per key set.

Flask builds a new URLSafeTimedSerializer, with its signer, on every request that opens or
saves the session; the keys change only when the app's configuration does, so one serializer
per key set serves every request (and a changed SECRET_KEY still gets its own)."""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


class KeptSerializerSessionInterface(SecureCookieSessionInterface):
    def __init__(self) -> None:
        self._serializers: dict[tuple, URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        key = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        serializer = self._serializers.get(key)
        if serializer is None:
            serializer = super().get_signing_serializer(app)
            if len(self._serializers) >= 8:  # keys rotated many times in one process
                self._serializers.clear()
            self._serializers[key] = serializer
        return serializer


def init_app(app: Flask) -> None:
    app.session_interface = KeptSerializerSessionInterface()
