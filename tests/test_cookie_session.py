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


def test_a_kept_cookie_still_ages_out_with_the_sessions_lifetime(app, client, make_user, monkeypatch):
    from bidhub.web import cookie_session

    login(client, make_user(Role.REP))
    assert signed_in(client) and signed_in(client)  # the second one reads the kept contents
    lifetime = int(app.permanent_session_lifetime.total_seconds())
    later = cookie_session.time.time() + lifetime + 2
    monkeypatch.setattr(cookie_session, "time", type("Later", (), {"time": staticmethod(lambda: later)}))
    assert not signed_in(client)


def test_a_request_that_changes_its_session_leaves_the_old_cookies_contents_alone(
        app, client, make_user):
    login(client, make_user(Role.REP))
    assert 'lang="zh-CN"' in client.get("/my/bids").get_data(as_text=True)
    before = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert client.post("/language", data={"locale": "en", "next": "/my/bids"}).status_code in (302, 303)
    assert 'lang="en"' in client.get("/my/bids").get_data(as_text=True)
    client.set_cookie(before.key, before.value)  # the cookie from before the switch
    assert 'lang="zh-CN"' in client.get("/my/bids").get_data(as_text=True)
