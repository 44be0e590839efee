"""Security headers on every response."""

from __future__ import annotations

from flask import Flask, Response

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
])

# Every response's, unless the view set its own.
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
)
# An HTML page's, unless the view set its own.
HTML_HEADERS = (("Cache-Control", "no-store"),)


def missing_headers(response: Response) -> list[tuple[str, str]]:
    """The security headers `response` lacks. Its headers' names are read once: setting each
    with Headers.setdefault looked for it with a search of the list that raised and caught a
    KeyError for every one missing, which is all of them on nearly every response."""
    present = set(response.headers.keys(lower=True))
    wanted = SECURITY_HEADERS + HTML_HEADERS if response.mimetype == "text/html" else SECURITY_HEADERS
    return [(name, value) for name, value in wanted if name.lower() not in present]


def init_app(app: Flask) -> None:
    @app.after_request
    def add_security_headers(response: Response) -> Response:
        response.headers.extend(missing_headers(response))
        return response
