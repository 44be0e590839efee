"""The page frame is kept per kind of frame and filled per request: whatever it keeps must never
carry one request's values into another's page."""

from __future__ import annotations

import re

from bidhub.models import Role
from bidhub.web.frame import FRAME_CACHE, SIGNED_TOKENS
from tests.conftest import login, reload
from tests.test_loss_reviews import transfer


def who(page: str) -> str:
    return re.search(r'<span class="name">(.*?)</span>', page).group(1)


def badge_of(page: str, href: str) -> str | None:
    found = re.search(rf'<a href="{href}">[^<]*(?: <span class="badge badge-overridden">(\d+)</span>)?</a>',
                      page)
    assert found, href
    return found.group(1)


def test_reps_with_the_same_kind_of_frame_each_see_their_own_name_escaped(
        app, client, make_rep, make_branch):
    beijing = make_branch("BJ", "北京")
    first = make_rep(branch=beijing, name='<b>王 & "伟"</b>')
    second = make_rep(branch=beijing, name="李娜")
    login(client, first)
    page = client.get("/my/bids").get_data(as_text=True)
    assert who(page) == "&lt;b&gt;王 &amp; &#34;伟&#34;&lt;/b&gt; · KA sales rep · 北京"
    assert 'name="next" value="/my/bids?"' in page
    kinds = len(app.extensions[FRAME_CACHE])
    login(client, second)
    page = client.get("/my/bids?status=active&x=%3Cscript%3E").get_data(as_text=True)
    assert who(page) == "李娜 · KA sales rep · 北京" and "王" not in page
    assert 'name="next" value="/my/bids?status=active&amp;x=%3Cscript%3E"' in page
    assert len(app.extensions[FRAME_CACHE]) == kinds  # the same kind: the kept frame was reused


def test_a_renamed_branch_and_a_new_role_show_at_once(app, session, client, make_user, make_branch):
    branch = make_branch("SH", "上海")
    user = make_user(Role.KA_MANAGER, branch=branch, name="周经理")
    login(client, user)
    assert who(client.get("/manage/rounds").get_data(as_text=True)) == "周经理 · KA manager · 上海"
    branch.name = "浦东"
    session.commit()
    assert who(client.get("/manage/rounds").get_data(as_text=True)) == "周经理 · KA manager · 浦东"
    user.role = Role.ADMIN
    session.commit()
    page = client.get("/admin/users").get_data(as_text=True)
    assert who(page) == "周经理 · Admin · 浦东" and 'href="/admin/branches"' in page


def test_badge_counts_are_the_requests_own(session, client, make_manager, make_rep,
                                           make_account, clock):
    manager, one_due, two_due, taker = make_manager(), make_rep(), make_rep(), make_rep()
    for rep in (one_due, two_due, two_due):
        transfer(session, manager, make_account(owner=rep), taker, clock)
    reload(session)
    for rep, due in ((two_due, "2"), (one_due, "1"), (taker, None)):  # the last: nothing due
        login(client, rep)
        assert badge_of(client.get("/my/bids").get_data(as_text=True), "/my/reviews") == due


def test_a_flashed_message_shows_once_in_the_frame(client, make_rep):
    rep = make_rep()
    login(client, rep)
    with client.session_transaction() as cookie:
        cookie["_flashes"] = [("success", "<已保存>")]
    page = client.get("/my/bids").get_data(as_text=True)
    assert '<p class="flash flash-success">&lt;已保存&gt;</p>' in page
    assert "flash-success" not in client.get("/my/bids").get_data(as_text=True)


def test_the_kept_token_is_the_sessions_own_and_is_accepted(app_config, make_rep):
    from bidhub import create_app
    from bidhub.db import engine_of
    from tests.conftest import PASSWORD, csrf_token_from

    guarded = create_app({**app_config, "WTF_CSRF_ENABLED": True})
    try:
        tokens = {}
        for name in ("first", "second"):
            client = guarded.test_client()
            page = client.get("/login").get_data(as_text=True)
            assert client.post("/login", data={"username": make_rep().username, "password": PASSWORD,
                                                "csrf_token": csrf_token_from(page)}).status_code == 302
            drawn = [csrf_token_from(client.get("/my/bids").get_data(as_text=True)) for _ in range(2)]
            assert drawn[0] == drawn[1]
            tokens[name] = (client, drawn[0])
        (first, first_token), (second, second_token) = tokens["first"], tokens["second"]
        assert first_token != second_token
        assert set(guarded.extensions[SIGNED_TOKENS].values()) == {first_token, second_token}
        switch = {"locale": "en", "next": "/my/bids"}
        assert second.post("/language", data={**switch, "csrf_token": first_token}).status_code == 400
        assert second.post("/language", data={**switch, "csrf_token": second_token}).status_code in (302, 303)
        assert first.post("/language", data={**switch, "csrf_token": first_token}).status_code in (302, 303)
    finally:
        engine_of(guarded).dispose()


def test_a_full_fragment_cache_lets_go_of_its_oldest_fragment_only(app, monkeypatch):
    from markupsafe import escape

    from bidhub.web import rendering

    monkeypatch.setattr(rendering, "FRAGMENT_CACHE_LIMIT", 3)
    with app.test_request_context():
        for name in ("nav", "pager-1", "pager-2", "pager-3"):
            rendering.keep(name, caller=lambda name=name: escape(name))
        kept = [key[-1] for key in app.extensions[rendering.FRAGMENT_CACHE]]
    assert kept == ["pager-1", "pager-2", "pager-3"]
