"""CSRF (htmx included), headers, passwords, login throttling and session lifetimes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask_babel import force_locale, gettext

from bidhub import create_app
from bidhub.clock import FrozenClock
from bidhub.db import engine_of
from tests.conftest import PASSWORD, START, csrf_token_from, login, reload


@pytest.fixture
def csrf_client(app, app_config):
    app = create_app({**app_config, "WTF_CSRF_ENABLED": True})
    yield app.test_client()
    engine_of(app).dispose()  # its PostgreSQL connections would otherwise outlive the test


def test_a_post_without_the_token_is_refused(csrf_client, make_manager):
    manager = make_manager()
    page = csrf_client.get("/login")
    token = csrf_token_from(page.get_data(as_text=True))
    response = csrf_client.post("/login", data={"username": manager.username,
                                                "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    refused = csrf_client.post("/manage/rounds/new", data={"title": "No token"})
    assert refused.status_code == 400
    assert "nothing was saved" in refused.get_data(as_text=True)


def test_htmx_posts_carry_the_token_in_a_header(csrf_client, make_rep, make_account, make_round):
    rep = make_rep()
    round_ = make_round(accounts=[make_account()])
    page = csrf_client.get("/login").get_data(as_text=True)
    csrf_client.post("/login", data={"username": rep.username, "password": PASSWORD,
                                     "csrf_token": csrf_token_from(page)})
    listing_id = round_.listings[0].id
    form_page = csrf_client.get(f"/listings/{listing_id}/bid").get_data(as_text=True)
    header_token = csrf_token_from(form_page.split("<body", 1)[1])
    data = {"account_plan": "An htmx-submitted plan for this account.",
            "committed_revenue_yuan": "1000", "visit_plan": "Visits in the first week."}
    without = csrf_client.post(f"/listings/{listing_id}/bid", data=data,
                               headers={"HX-Request": "true"})
    assert without.status_code == 400
    with_token = csrf_client.post(f"/listings/{listing_id}/bid", data=data,
                                  headers={"HX-Request": "true", "X-CSRFToken": header_token})
    assert with_token.status_code == 200
    assert with_token.headers["HX-Redirect"] == "/my/bids"
    assert with_token.headers["HX-Trigger"] == "bid-placed"


def test_the_cookie_a_sign_in_or_out_sets_serves_the_pages_after_it(
        csrf_client, make_rep, make_account, make_round):
    """Signing in starts a session that already holds its CSRF secret: the pages after it
    draw forms without setting the cookie again, and their tokens are accepted; so are the
    tokens of the session signing out starts."""
    rep = make_rep()
    round_ = make_round(accounts=[make_account()])
    listing_id = round_.listings[0].id
    login_page = csrf_client.get("/login")
    signed_in = csrf_client.post("/login", data={
        "username": rep.username, "password": PASSWORD,
        "csrf_token": csrf_token_from(login_page.get_data(as_text=True))})
    assert signed_in.status_code == 302 and "Set-Cookie" in signed_in.headers
    for path in ("/rounds", f"/listings/{listing_id}/bid", "/my/bids"):
        page = csrf_client.get(path)
        assert page.status_code == 200
        assert "Set-Cookie" not in page.headers, path
    form_page = csrf_client.get(f"/listings/{listing_id}/bid").get_data(as_text=True)
    placed = csrf_client.post(f"/listings/{listing_id}/bid", data={
        "account_plan": "A plan for this account, sent with the page's token.",
        "committed_revenue_yuan": "1000", "visit_plan": "Visits in the first week.",
        "csrf_token": csrf_token_from(form_page)})
    assert placed.status_code == 303 and placed.headers["Location"] == "/my/bids"

    signed_out = csrf_client.post("/logout", data={
        "csrf_token": csrf_token_from(csrf_client.get("/my/bids").get_data(as_text=True))})
    assert signed_out.status_code == 302
    login_page = csrf_client.get("/login")  # it shows the farewell, taking it out of the cookie
    again = csrf_client.post("/login", data={
        "username": rep.username, "password": PASSWORD,
        "csrf_token": csrf_token_from(login_page.get_data(as_text=True))})
    assert again.status_code == 302 and again.headers["Location"] == "/rounds"


def test_every_page_sends_the_security_headers(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"]


def test_a_get_never_changes_state(app, client, make_rep):
    rep = make_rep()
    assert client.get("/logout").status_code == 405
    login(client, rep)
    assert client.get("/rounds").status_code == 200


def test_login_attempts_are_throttled_per_account(client, make_rep, clock):
    rep = make_rep()
    for _ in range(5):
        response = client.post("/login", data={"username": rep.username, "password": "wrong-pass"})
        assert response.status_code == 422
    throttled = client.post("/login", data={"username": rep.username, "password": PASSWORD})
    assert throttled.status_code == 422
    assert "too many attempts" in throttled.get_data(as_text=True)
    clock.advance(seconds=2)  # a short wait, not a lockout (tests/test_login.py has the rest)
    assert client.post("/login", data={"username": rep.username,
                                       "password": PASSWORD}).status_code == 302


def test_passwords_are_hashed_with_scrypt_and_long_ones_work(app, session, make_admin, clock):
    from bidhub.services.users import create_user

    long_password = "a very long passphrase " * 20
    user = create_user(session, make_admin(), username="longpass", display_name="Long",
                       password=long_password, role="ka_manager", branch_id=None, now=clock())
    assert user.password_hash.startswith("scrypt:")
    client = app.test_client()
    assert client.post("/login", data={"username": "longpass",
                                       "password": long_password}).status_code == 302


def test_short_passwords_are_refused(session, make_admin, clock):
    from bidhub.domain.errors import InvalidRequest
    from bidhub.services.users import create_user

    with pytest.raises(InvalidRequest, match="at least 8"):
        create_user(session, make_admin(), username="short", display_name="Short",
                    password="1234567", role="ka_manager", branch_id=None, now=clock())


def test_logout_ends_every_session_of_the_user(app, make_rep):
    rep = make_rep()
    first, second = app.test_client(), app.test_client()
    login(first, rep)
    login(second, rep)
    assert second.get("/rounds").status_code == 200
    first.post("/logout")
    assert second.get("/rounds").status_code == 302


def test_a_password_change_ends_old_sessions(app, make_rep):
    rep = make_rep()
    first, second = app.test_client(), app.test_client()
    login(first, rep)
    login(second, rep)
    response = first.post("/password", data={"current_password": PASSWORD,
                                             "new_password": "new password 123",
                                             "confirm": "new password 123"})
    assert response.status_code == 302
    assert second.get("/rounds").status_code == 302
    assert app.test_client().post("/login", data={"username": rep.username,
                                                  "password": "new password 123"}).status_code == 302


def test_session_cookie_is_httponly_and_samesite(client, make_rep):
    rep = make_rep()
    response = client.post("/login", data={"username": rep.username, "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_a_login_redirect_never_leaves_the_site(client, make_rep):
    rep = make_rep()
    response = client.post("/login?next=https://evil.example/", data={
        "username": rep.username, "password": PASSWORD})
    assert response.location == "/rounds"


def test_a_resubmitted_bid_form_creates_nothing_new(app, session, make_rep, make_account,
                                                    make_round, login_as):
    from sqlalchemy import func, select

    from bidhub.models import Bid

    rep = make_rep()
    round_ = make_round(accounts=[make_account()])
    client = login_as(rep)
    data = {"account_plan": "Plan submitted twice by a double click.",
            "committed_revenue_yuan": "1000", "visit_plan": "Visits in the first week.",
            "submission_key": "same-key-twice"}
    first = client.post(f"/listings/{round_.listings[0].id}/bid", data=data)
    second = client.post(f"/listings/{round_.listings[0].id}/bid", data=data)
    assert first.status_code == second.status_code == 303
    reload(session)
    assert session.scalar(select(func.count()).select_from(Bid)) == 1


def test_a_bid_form_sent_again_after_its_bid_was_withdrawn_says_so(app, session, make_rep,
                                                                    make_account, make_round,
                                                                    login_as):
    """Back and resend after a withdrawal: the old form brings nothing back and is not
    answered as a bid submitted; a form opened anew bids again."""
    from sqlalchemy import select

    from bidhub.models import Bid

    rep = make_rep()
    round_ = make_round(accounts=[make_account()])
    listing_id = round_.listings[0].id
    client = login_as(rep)
    data = {"account_plan": "Plan submitted, withdrawn, then sent again.",
            "committed_revenue_yuan": "1000", "visit_plan": "Visits in the first week.",
            "submission_key": "sent-then-withdrawn"}
    assert client.post(f"/listings/{listing_id}/bid", data=data).status_code == 303
    reload(session)
    bid_id = session.scalars(select(Bid.id)).one()
    assert client.post(f"/bids/{bid_id}/withdraw").status_code == 303
    again = client.post(f"/listings/{listing_id}/bid", data=data)
    assert again.status_code == 422
    assert "you have since withdrawn the bid it placed; nothing was changed" in again.get_data(
        as_text=True)
    reload(session)
    assert session.scalars(select(Bid.status)).all() == ["withdrawn"]
    anew = client.post(f"/listings/{listing_id}/bid", data={**data, "submission_key": "fresh"})
    assert anew.status_code == 303
    reload(session)
    assert session.scalars(select(Bid.status)).all() == ["active"]


def test_frozen_clock_starts_where_the_tests_expect():
    assert FrozenClock(START)() == START
    assert FrozenClock(START).advance(seconds=1) == START + timedelta(seconds=1)


SIGNED_OUT = ("Your session has ended, so nothing was saved. Sign in again, then send the form "
              "again.")
STALE_FORM = ("This form was opened before you last signed in, or sent from another site, so "
              "nothing was saved. Open the page again and send it again.")


def in_chinese(app, msgid: str) -> str:
    with app.test_request_context(), force_locale("zh_CN"):
        return gettext(msgid)


def test_a_form_sent_after_the_session_ended_says_to_sign_in_again(csrf_client, make_rep,
                                                                   make_account, make_round):
    """Reloading the refused answer sends the same stale form again: the page says what does
    help, and leads to the sign-in that comes back to the form."""
    make_rep()
    listing_id = make_round(accounts=[make_account()]).listings[0].id
    refused = csrf_client.post(f"/listings/{listing_id}/bid", data={
        "account_plan": "计划", "csrf_token": "from-an-ended-session"},
        headers={"Accept-Language": "zh-CN"})
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert in_chinese(csrf_client.application, SIGNED_OUT) in page
    assert f'href="/login?next=/listings/{listing_id}/bid"' in page


def test_a_stale_form_of_a_signed_in_user_leads_back_to_its_page(csrf_client, make_rep,
                                                                  make_account, make_round):
    rep = make_rep()
    round_ = make_round(accounts=[make_account()])
    page = csrf_client.get("/login").get_data(as_text=True)
    csrf_client.post("/login", data={"username": rep.username, "password": PASSWORD,
                                     "csrf_token": csrf_token_from(page)})
    # A POST-only address: the way back is the page the form was on.
    refused = csrf_client.post("/bids/1/withdraw", data={"csrf_token": "drawn-before-sign-in"},
                               headers={"Referer": f"http://localhost/rounds/{round_.id}"})
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert STALE_FORM in page  # in the rep's own language, English
    assert f'href="/rounds/{round_.id}"' in page
    # From another site, there is no page of ours to go back to.
    refused = csrf_client.post("/bids/1/withdraw", data={"csrf_token": "x"},
                               headers={"Referer": "https://elsewhere.example/rounds/1"})
    assert "elsewhere.example" not in refused.get_data(as_text=True)
