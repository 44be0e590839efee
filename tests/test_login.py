"""Signing in: throttling without lockout, one answer for every refusal, safe redirects, passwords."""

from __future__ import annotations

import html
import re
import sqlite3
import threading
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, make_url, select, text
from sqlalchemy.pool import NullPool

from bidhub.domain.errors import InvalidRequest
from bidhub.models import AuditEvent, LoginThrottle, User
from bidhub.services import adjudication, users
from bidhub.web.auth import safe_next
from tests.conftest import PASSWORD, login, reload

ATTACKER = "203.0.113.7"
OFFICE = "198.51.100.20"
REFUSAL = "Wrong username or password, or too many attempts; wait a moment and try again."
FREE_PER_ACCOUNT = 5
FREE_PER_ADDRESS = 8
FIRST_DELAY = timedelta(seconds=2)
MAX_DELAY = timedelta(minutes=5)


@pytest.fixture
def app_config(app_config):
    # Fewer free failures per address than the default keeps the scrypt dummy hashes few.
    return {**app_config, "LOGIN_FREE_FAILURES_PER_ACCOUNT": FREE_PER_ACCOUNT,
            "LOGIN_FREE_FAILURES_PER_ADDRESS": FREE_PER_ADDRESS,
            "LOGIN_FIRST_DELAY_SECONDS": FIRST_DELAY.total_seconds(),
            "LOGIN_MAX_DELAY_SECONDS": MAX_DELAY.total_seconds()}


class HashCalls:
    """Wraps the password check: counts every call and remembers which hash was checked."""

    def __init__(self, real, during=None) -> None:
        self.real, self.during = real, during
        self.hashes: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, stored_hash: str, password: str) -> bool:
        with self.lock:
            self.hashes.append(stored_hash)
        if self.during is not None:
            self.during()
        return self.real(stored_hash, password)

    def of(self, user: User) -> int:
        return sum(1 for stored in self.hashes if stored == user.password_hash)


@pytest.fixture
def hash_calls(monkeypatch):
    calls = HashCalls(users.check_password_hash)
    monkeypatch.setattr(users, "check_password_hash", calls)
    return calls


def attempt(client, username: str, password: str, address: str = ATTACKER, next_: str = ""):
    # The client stays at that address: sessions are bound to it (session_protection).
    client.environ_base["REMOTE_ADDR"] = address
    url = "/login" + (f"?next={next_}" if next_ else "")
    return client.post(url, data={"username": username, "password": password})


def refusal_of(response) -> str:
    assert response.status_code == 422, response.status_code
    match = re.search(r"Wrong username or password[^<]*", response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)[:1000]
    return match.group(0)


def test_failures_on_an_account_name_grow_a_wait_that_the_real_user_outlasts(
        app, make_rep, clock, hash_calls):
    rep = make_rep()
    attacker, real = app.test_client(), app.test_client()
    for _ in range(FREE_PER_ACCOUNT):
        assert refusal_of(attempt(attacker, rep.username, "wrong guess 1")) == REFUSAL
    # From another address, with the right password: refused until the wait is over.
    assert refusal_of(attempt(real, rep.username, PASSWORD, OFFICE)) == REFUSAL
    clock.advance(seconds=1)
    assert refusal_of(attempt(real, rep.username, PASSWORD, OFFICE)) == REFUSAL
    assert hash_calls.of(rep) == FREE_PER_ACCOUNT  # throttled attempts never check a password
    clock.advance(seconds=1)
    assert attempt(real, rep.username, PASSWORD, OFFICE).status_code == 302


def test_each_further_failure_doubles_the_wait_up_to_a_cap_not_a_lockout(
        app, make_rep, clock, hash_calls):
    rep = make_rep()
    attacker, real = app.test_client(), app.test_client()
    for _ in range(FREE_PER_ACCOUNT):
        refusal_of(attempt(attacker, rep.username, "wrong guess 2"))
    waits, wait = [], FIRST_DELAY
    for _ in range(12):
        clock.advance(seconds=wait.total_seconds() - 1)
        before = hash_calls.of(rep)
        refusal_of(attempt(attacker, rep.username, "wrong guess 2"))
        assert hash_calls.of(rep) == before, "checked before the wait was over"
        clock.advance(seconds=1)
        refusal_of(attempt(attacker, rep.username, "wrong guess 2"))
        assert hash_calls.of(rep) == before + 1
        waits.append(wait)
        wait = min(wait * 2, MAX_DELAY)
    assert waits[:4] == [timedelta(seconds=s) for s in (2, 4, 8, 16)]
    assert max(waits) == MAX_DELAY < timedelta(minutes=15)
    # However long the attack went on, the real user waits out one capped delay at most.
    clock.advance(seconds=MAX_DELAY.total_seconds())
    assert attempt(real, rep.username, PASSWORD, OFFICE).status_code == 302


def test_the_wait_doubles_from_the_first_delay_to_the_cap_even_for_huge_counts():
    policy = users.LoginPolicy(first_delay=FIRST_DELAY, max_delay=MAX_DELAY)
    assert [policy.delay_after(n, 5).total_seconds() for n in range(3, 14)] == [
        0, 0, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert policy.delay_after(10**9, 5) == MAX_DELAY


def test_failures_from_one_address_throttle_it_for_every_name_but_not_other_addresses(
        app, make_rep, clock, hash_calls):
    rep = make_rep()
    attacker, colleague = app.test_client(), app.test_client()
    for n in range(FREE_PER_ADDRESS):
        refusal_of(attempt(attacker, f"guess{n}", "wrong guess 3"))
    # A name never tried before, right password, same address: waits like everyone there.
    assert refusal_of(attempt(attacker, rep.username, PASSWORD)) == REFUSAL
    assert hash_calls.of(rep) == 0
    assert attempt(colleague, rep.username, PASSWORD, OFFICE).status_code == 302
    clock.advance(seconds=FIRST_DELAY.total_seconds() - 1)
    refusal_of(attempt(attacker, "guess-late", "wrong guess 3"))
    clock.advance(seconds=1)
    refusal_of(attempt(attacker, "guess-late", "wrong guess 3"))  # checked: the wait doubles
    clock.advance(seconds=2 * FIRST_DELAY.total_seconds() - 1)
    assert refusal_of(attempt(attacker, rep.username, PASSWORD)) == REFUSAL
    clock.advance(seconds=1)
    assert attempt(app.test_client(), rep.username, PASSWORD, ATTACKER).status_code == 302


def test_colleagues_signing_in_from_one_address_never_add_up(app, make_rep, hash_calls):
    reps = [make_rep() for _ in range(FREE_PER_ADDRESS + 2)]
    for rep in reps:
        assert attempt(app.test_client(), rep.username, PASSWORD, OFFICE).status_code == 302
    refusal_of(attempt(app.test_client(), reps[0].username, "a typo here", OFFICE))
    assert attempt(app.test_client(), reps[0].username, PASSWORD, OFFICE).status_code == 302


def test_unknown_wrong_and_throttled_get_one_answer_and_one_hash_each(
        app, session, make_rep, make_user, hash_calls):
    rep = make_rep()
    inactive = make_user(username="gone")
    inactive.is_active = False
    session.commit()
    client = app.test_client()

    def refused(username: str, password: str, address: str) -> tuple[str, int, str]:
        before = len(hash_calls.hashes)
        response = attempt(client, username, password, address)
        assert len(hash_calls.hashes) == before + 1, "every refusal hashes exactly once"
        return refusal_of(response), response.status_code, hash_calls.hashes[-1]

    unknown = refused("nobody-here", "wrong guess 4", "192.0.2.1")
    wrong = refused(rep.username, "wrong guess 4", "192.0.2.2")
    deactivated = refused("gone", PASSWORD, "192.0.2.3")
    for _ in range(FREE_PER_ACCOUNT - 1):
        refused(rep.username, "wrong guess 4", "192.0.2.4")
    throttled = refused(rep.username, PASSWORD, "192.0.2.5")
    assert unknown[:2] == wrong[:2] == deactivated[:2] == throttled[:2] == (REFUSAL, 422)
    assert wrong[2] == rep.password_hash
    assert unknown[2] == deactivated[2] == throttled[2] == users.DUMMY_HASH
    # The dummy hash costs what a real one does: same method, same parameters.
    assert users.DUMMY_HASH.split("$")[0] == users.hash_password("x" * 12).split("$")[0]


def test_unknown_names_are_throttled_like_real_ones(app, make_rep, hash_calls):
    client = app.test_client()
    rep = make_rep()
    answers = []
    for username in ("nobody-at-all", rep.username):
        for n in range(FREE_PER_ACCOUNT + 1):
            answers.append(refusal_of(attempt(client, username, "wrong guess 5", f"192.0.2.{n}")))
    assert set(answers) == {REFUSAL}
    assert hash_calls.of(rep) == FREE_PER_ACCOUNT


def open_write_lock_probe(app, backend: str):
    """A check, run while a password is hashed, that no write lock is held by the sign-in."""
    url = make_url(app.config["DATABASE_URL"])
    if backend == "sqlite":
        def probe() -> None:
            connection = sqlite3.connect(url.database, timeout=0)
            try:
                connection.execute("BEGIN IMMEDIATE")  # fails at once if a writer holds the lock
                connection.rollback()
            finally:
                connection.close()
        return probe, lambda: None
    engine = create_engine(url, poolclass=NullPool)

    def probe() -> None:
        with engine.connect() as connection:
            connection.execute(text("SET lock_timeout = '200ms'"))
            connection.execute(text("UPDATE login_throttles SET failures = failures"))
            connection.execute(text("UPDATE users SET display_name = display_name"))
            connection.rollback()
    return probe, engine.dispose


def test_passwords_are_hashed_outside_the_write_transaction(app, session, backend, make_rep,
                                                             make_admin, clock, monkeypatch):
    rep = make_rep()
    probe, close = open_write_lock_probe(app, backend)
    probes = []

    def probing() -> None:
        probe()
        probes.append(1)

    monkeypatch.setattr(users, "check_password_hash",
                        HashCalls(users.check_password_hash, during=probing))
    real_generate = users.generate_password_hash
    monkeypatch.setattr(users, "generate_password_hash",
                        lambda *args, **kwargs: (probing(), real_generate(*args, **kwargs))[1])
    try:
        refusal_of(attempt(app.test_client(), rep.username, "wrong guess 6"))
        client = app.test_client()
        assert attempt(client, rep.username, PASSWORD, OFFICE).status_code == 302
        assert client.post("/password", data={
            "current_password": PASSWORD, "new_password": "a brand new passphrase",
            "confirm": "a brand new passphrase"}).location == "/login"
        users.set_password(session, make_admin(), rep.id, "temporary passphrase 7", clock())
    finally:
        close()
    assert len(probes) == 5  # two sign-ins, current and new password, the admin's reset


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_twenty_parallel_wrong_passwords_check_at_most_the_configured_number(
        app, make_rep, hash_calls):
    rep = make_rep()
    clients = [app.test_client() for _ in range(20)]
    barrier, statuses, lock = threading.Barrier(len(clients)), [], threading.Lock()

    def guess(index: int) -> None:
        barrier.wait()
        response = attempt(clients[index], rep.username, f"parallel guess {index}",
                           f"192.0.2.{index + 1}")
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=guess, args=(index,)) for index in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(statuses) == [422] * 20
    assert hash_calls.of(rep) <= FREE_PER_ACCOUNT
    assert hash_calls.of(rep) == FREE_PER_ACCOUNT  # the free ones are all used, no more
    assert len(hash_calls.hashes) == 20  # the rest hashed the dummy: same time for each


def test_a_throttle_row_records_failures_and_the_wait(app, session, make_rep, clock):
    rep = make_rep()
    for _ in range(FREE_PER_ACCOUNT):
        refusal_of(attempt(app.test_client(), rep.username, "wrong guess 8"))
    reload(session)
    row = session.get(LoginThrottle, f"user:{rep.username}")
    assert row.failures == FREE_PER_ACCOUNT and row.last_failure_at == clock()
    assert row.blocked_until == clock() + FIRST_DELAY
    assert session.get(LoginThrottle, f"addr:{ATTACKER}").failures == FREE_PER_ACCOUNT
    assert attempt(app.test_client(), rep.username.upper(), PASSWORD, OFFICE).status_code == 422
    clock.advance(seconds=2)
    assert attempt(app.test_client(), rep.username, PASSWORD, OFFICE).status_code == 302
    reload(session)
    row = session.get(LoginThrottle, f"user:{rep.username}")
    assert row.failures == 0 and row.blocked_until is None


def test_a_nul_in_the_username_is_refused_like_any_wrong_login(app, session, make_rep, clock):
    assert attempt(app.test_client(), "rep\x00one", "wrong guess 9").status_code == 422
    with pytest.raises(users.LoginRefused):
        users.authenticate(session, "rep\x00one", "wrong guess 9", "192.0.2.9\x00", clock())
    assert "\x00" not in users.account_key("rep\x00one")


@pytest.mark.parametrize("target", [
    "/rounds\r\nSet-Cookie: stolen=1", "/rounds\nLocation: https://evil.example/",
"/\\evil.example", "/rounds\x00", "//evil.example",
    "https://evil.example/", "javascript:alert(1)",
])
def test_a_hostile_next_after_login_is_refused_and_never_a_500(client, make_rep, target):
    rep = make_rep()
    response = client.post("/login", query_string={"next": target},
                           data={"username": rep.username, "password": PASSWORD})
    assert response.status_code == 302
    assert response.location == "/rounds"
    assert "stolen" not in str(response.headers)


def test_safe_next_keeps_paths_on_this_site():
    assert safe_next("/rounds?page=2") == "/rounds?page=2"
    assert safe_next("/rounds\r\n") is None and safe_next("/\\x") is None
    assert safe_next("/a\tb") is None and safe_next(None) is None


COMMON_REFUSAL = "This is one of the most common passwords"
BLANK_PASSWORDS = [" " * 12, "\u200b" * 20, "\u3000" * 10, "\u2003 \u00a0\ufeff" * 6,
                   "ab \u200b\u200b cd \u2060\u2060 e"]
BLANK_REFUSAL = "Use at least 8 characters that are not spaces or invisible characters."


@pytest.mark.parametrize(("password", "refusal"), [
    *((common, COMMON_REFUSAL) for common in ("password1", "iloveyou1", "qwerty123",
                                              "Password123", " 12345678 ")),
    *((blank, BLANK_REFUSAL) for blank in BLANK_PASSWORDS)])
def test_a_common_or_blank_password_is_refused_wherever_a_password_is_set(
        app, session, make_admin, make_rep, clock, login_as, password, refusal):
    """The most common passwords, and passwords of spaces or invisible characters."""
    admin = make_admin()
    with pytest.raises(InvalidRequest) as refused:
        users.create_user(session, admin, username="newbie", display_name="New",
                          password=password, role="ka_manager", branch_id=None, now=clock())
    assert refused.value.field == "password" and str(refused.value).startswith(refusal)
    rep = make_rep()
    response = login_as(admin).post(f"/admin/users/{rep.id}/password",
                                    data={"new_password": password})
    assert response.status_code == 422
    assert refusal in html.unescape(response.get_data(as_text=True))
    rep_client = app.test_client()
    login(rep_client, rep)
    response = rep_client.post("/password", data={"current_password": PASSWORD,
                                                  "new_password": password, "confirm": password})
    assert response.status_code == 422
    assert refusal in html.unescape(response.get_data(as_text=True))
    reload(session)
    assert session.get(User, rep.id).password_hash == rep.password_hash


def test_spaces_count_in_a_password_that_has_enough_other_characters(app, session, make_admin,
                                                                       make_rep, clock):
    # Kept and checked as typed: signing in never strips or cleans the password.
    rep = make_rep()
    users.set_password(session, make_admin(), rep.id, "  a b c d e f g h  ", clock())
    client = app.test_client()
    for typed in ("a b c d e f g h", "abcdefgh", "  a b c d e f g h"):
        assert attempt(client, rep.username, typed, OFFICE).status_code == 422
    assert attempt(client, rep.username, "  a b c d e f g h  ", OFFICE).status_code == 302


def test_a_password_set_before_the_rule_still_signs_in(app, session, make_rep):
    rep = make_rep()
    reload(session)
    session.get(User, rep.id).password_hash = users.hash_password(" " * 12)
    session.commit()
    client = app.test_client()
    assert attempt(client, rep.username, " " * 11, OFFICE).status_code == 422
    assert attempt(client, rep.username, " " * 12, OFFICE).status_code == 302


def test_the_common_password_list_ships_with_the_package():
    listed = users.common_passwords()
    assert len(listed) > 5000 and "password" in listed and "correct horse battery" not in listed
    assert all(len(password) >= users.MIN_PASSWORD_LENGTH for password in listed)


def test_after_an_admin_reset_the_user_must_choose_a_new_password_first(
        app, session, make_admin, make_rep, login_as, clock):
    rep = make_rep()
    admin = make_admin()
    admin_client = login_as(admin)
    assert admin_client.post(f"/admin/users/{rep.id}/password",
                             data={"new_password": "temporary passphrase"}).status_code == 303
    reload(session)
    event = session.scalars(select(AuditEvent).where(
        AuditEvent.action == "user.password_set")).one()
    assert event.actor_id == admin.id and event.target == f"user:{rep.id}" and event.at == clock()
    stored = session.get(User, rep.id)
    assert stored.must_change_password and stored.password_reset_at == clock()
    assert stored.password_reset_by_id == admin.id

    rep_client = app.test_client()
    response = login(rep_client, rep, "temporary passphrase")
    assert response.location == "/password"
    assert rep_client.get("/rounds").location == "/password"
    assert rep_client.get("/my/bids").location == "/password"
    assert rep_client.get("/rounds", headers={"HX-Request": "true"}).headers["HX-Redirect"] \
        == "/password"
    page = rep_client.get("/password").get_data(as_text=True)
    assert "An admin reset your password on 2026-03-02 09:00; choose a new one." in page
    same = rep_client.post("/password", data={"current_password": "temporary passphrase",
                                              "new_password": "temporary passphrase",
                                              "confirm": "temporary passphrase"})
    assert same.status_code == 422 and "different from the current one" in same.get_data(True)
    assert rep_client.post("/password", data={
        "current_password": "temporary passphrase", "new_password": "my own passphrase",
        "confirm": "my own passphrase"}).status_code == 302
    fresh = app.test_client()
    assert login(fresh, rep, "my own passphrase").location == "/rounds"
    assert fresh.get("/rounds").status_code == 200
    reload(session)
    assert not session.get(User, rep.id).must_change_password
    changed = session.scalars(select(AuditEvent).where(
        AuditEvent.action == "user.password_changed")).one()
    assert changed.after == {"replaced_temporary_password": True}


def test_a_reset_during_an_open_round_is_shown_on_that_reps_bids_at_adjudication(
        app, session, clock, make_rep, make_admin, make_manager, make_account, make_round,
        make_bid, login_as):
    admin, manager = make_admin(), make_manager()
    reset_in_round, reset_before, untouched = make_rep(), make_rep(), make_rep()
    users.set_password(session, admin, reset_before.id, "temporary passphrase", clock())
    clock.advance(hours=1)
    round_ = make_round(accounts=[make_account()], opens_at=clock(),
                        closes_at=clock() + timedelta(hours=2))
    listing = round_.listings[0]
    for rep in (reset_in_round, reset_before, untouched):
        make_bid(rep, listing)
    clock.advance(hours=1)
    users.set_password(session, admin, reset_in_round.id, "temporary passphrase", clock())
    clock.advance(hours=1)
    users.set_password(session, admin, untouched.id, "temporary passphrase", clock())  # closed
    assert adjudication.score_closed_round(session, round_.id, clock())

    rep_ids = [reset_in_round.id, reset_before.id, untouched.id]
    assert users.reps_with_password_reset_during_round(session, round_, rep_ids) \
        == {reset_in_round.id}
    page = login_as(manager).get(f"/manage/listings/{listing.id}").get_data(as_text=True)
    flagged = [row for row in page.split("<tr")[1:]
               if "Password reset by an admin during the round" in row]
    assert len(flagged) == 1 and f">{reset_in_round.display_name}</a>" in flagged[0]
