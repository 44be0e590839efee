"""The signed session cookie: one serializer per key set, and a key change still takes effect."""

from bidhub.models import Role
from tests.conftest import login


def signed_in(client, cookie=None) -> bool:
    """Whether the client's session cookie (or `cookie`, the one it had then) signs a user in."""
    if cookie is not None:  # a refused cookie is replaced by the answer's fresh session
        client.set_cookie(cookie.key, cookie.value)
    return client.get("/my/bids").status_code == 200


def test_a_session_survives_requests_and_ends_when_the_key_changes(app, client, make_user):
    login(client, make_user(Role.REP))
    assert signed_in(client) and signed_in(client)
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])

    old_key = app.secret_key
    app.secret_key = "another key"
    assert not signed_in(client, cookie)  # signed with the old key: no longer a session

    app.config["SECRET_KEY_FALLBACKS"] = [old_key]
    assert signed_in(client, cookie)  # the old key, kept as a fallback, still verifies it

    app.config["SECRET_KEY_FALLBACKS"] = []
    assert not signed_in(client, cookie)


def test_a_tampered_cookie_is_no_session(app, client, make_user):
    login(client, make_user(Role.REP))
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    client.set_cookie(cookie.key, cookie.value[:-2] + ("AA" if cookie.value[-2:] != "AA" else "BB"))
    assert not signed_in(client)
