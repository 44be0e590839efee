"""Real-browser fixtures: a live server on a frozen clock, Debian's chromium, and a page walker.

The browser is Debian's chromium (`apt-get install -y chromium fonts-noto-cjk`; `.ci/run`
installs it). Playwright's own browser downloads are not used. Without chromium these tests
are skipped with what to install, as the PostgreSQL runs are without a server; `.ci/run` sets
BIDHUB_REQUIRE_BROWSER=1, which turns a missing browser into a failure, so CI always walks.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask_babel import force_locale, gettext
from playwright.sync_api import Browser, Page, sync_playwright
from werkzeug.serving import WSGIRequestHandler, make_server

from bidhub import create_app
from bidhub.clock import FrozenClock
from bidhub.db import engine_of, get_session, upgrade_database
from bidhub.services.rule_sets import default_rules_path, ensure_active_rule_set
from tests.browser.world import PASSWORD, World, build_world
from tests.conftest import SCREENSHOTS, START

CHROMIUM = os.environ.get("BIDHUB_CHROMIUM", "/usr/bin/chromium")
WIDE = {"width": 1366, "height": 900}
NARROW = {"width": 390, "height": 844}
CJK = re.compile(r"[\u3400-\u9fff]")
# The message chromium logs for an HTTP error response; the URL is in the message's location.
HTTP_ERROR = re.compile(r"status of (\d{3})")
# What htmx logs of an error answer it does not swap in: the status and the path asked.
HTMX_ERROR = re.compile(r"Response Status Error Code (\d{3}) from (/[^\s,]*)")
# The header's words that stay as they are in Chinese: the product's name and the switch's label.
HEADER_WORDS = {"bidhub", "English"}


@dataclass
class LiveServer:
    url: str
    app: object
    world: World

    def zh(self, msgid: str) -> str:
        """The zh_CN catalogue's translation of `msgid`, as the server renders it."""
        with self.app.test_request_context(), force_locale("zh_CN"):
            return gettext(msgid)


class QuietRequestHandler(WSGIRequestHandler):
    """Keeps the request log of the walk out of the test output; failures name their URL."""

    def log_request(self, *args, **kwargs) -> None:
        pass


@contextmanager
def serving(folder: Path) -> Iterator[LiveServer]:
    """The app on 127.0.0.1 and a free port, over a fresh SQLite file in `folder` holding the
    small world (world.py), its clock frozen at START.

    CSRF stays on, as in production: the browser submits the real forms.
    """
    clock = FrozenClock(START)
    app = create_app({"SECRET_KEY": "browser-test-secret",
                      "DATABASE_URL": f"sqlite:///{folder / 'bidhub.sqlite3'}",
                      "CLOCK": clock, "SCHEDULER_ENABLED": False,
                      "LEDGER_CHECKPOINT_FILE": str(folder / "ledger-checkpoints.jsonl"),
                      "LEDGER_KEY": "browser-test-ledger-key"})
    upgrade_database(engine_of(app))
    with app.app_context():
        session = get_session()
        ensure_active_rule_set(session, default_rules_path(app.config).read_text("utf-8"), clock())
        session.commit()
        world = build_world(session, clock())
    server = make_server("127.0.0.1", 0, app, threaded=True,
                         request_handler=QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="browser-live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app, world)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        engine_of(app).dispose()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> Iterator[LiveServer]:
    """The server the walks share (`serving`). A walk that must change what the others see
    starts its own."""
    with serving(tmp_path_factory.mktemp("browser")) as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        message = (f"The browser tests drive Debian's chromium, and {CHROMIUM} does not exist. "
                   "Install it with `apt-get install -y chromium fonts-noto-cjk` (.ci/run does), "
                   "or point BIDHUB_CHROMIUM at a chromium binary.")
        if os.environ.get("BIDHUB_REQUIRE_BROWSER") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


@dataclass
class Walker:
    """One browser context and page, with what went wrong collected rather than raised at once,
    so that a walk still visits (and photographs) every page and reports every problem."""

    page: Page
    server: LiveServer
    problems: list[str] = field(default_factory=list)
    console_errors: list[tuple[str, str]] = field(default_factory=list)
    failed_responses: list[tuple[int, str]] = field(default_factory=list)
    deliberate: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("console", self.on_console)
        self.page.on("pageerror", lambda error: self.console_errors.append(
            (f"uncaught: {error}", self.page.url)))
        self.page.on("response", lambda response: response.status >= 400
                     and self.failed_responses.append((response.status, response.url)))

    def on_console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append((message.text, message.location.get("url", "")))

    def url(self, path: str) -> str:
        return self.server.url + path

    def goto(self, path: str) -> None:
        response = self.page.goto(self.url(path))
        assert response is not None and response.status == 200, (
            f"GET {path}: {response.status if response else 'no response'}")

    def sign_in(self, username: str) -> None:
        self.goto("/login")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", PASSWORD)
        with self.page.expect_navigation():
            self.page.click("form button[type=submit], form button.primary")
        assert "/login" not in self.page.url, f"{username} could not sign in"

    def sign_out(self) -> None:
        with self.page.expect_navigation():
            self.page.click("header form[action='/logout'] button")

    @contextmanager
    def expecting(self, status: int, path: str):
        """A response with `status` for `path` that the test provokes on purpose."""
        self.deliberate.append((status, self.url(path)))
        yield

    # --- checks that are collected, not raised --------------------------------------------

    def check(self, condition: bool, problem: str) -> bool:
        if not condition:
            self.problems.append(f"{self.page.url}: {problem}")
        return condition

    def lang(self) -> str:
        return self.page.get_attribute("html", "lang") or ""

    def expect_chinese(self, *msgids: str) -> None:
        """The page says it is Chinese and shows the catalogue's Chinese for each msgid."""
        self.check(self.lang() == "zh-CN", f'<html lang="{self.lang()}">, expected zh-CN')
        text = self.page.inner_text("body")
        for msgid in msgids:
            chinese = self.server.zh(msgid)
            if self.check(chinese != msgid and CJK.search(chinese) is not None,
                          f"the zh_CN catalogue has no translation for {msgid!r}"):
                self.check(chinese in text, f"{chinese!r} ({msgid!r}) is not on the page")
        words = [word for word in re.findall(r"[A-Za-z]{3,}", self.page.inner_text("header"))
                 if word not in HEADER_WORDS]
        self.check(not words, f"English words in the header: {words}")

    def expect_english(self, *msgids: str) -> None:
        self.check(self.lang() == "en", f'<html lang="{self.lang()}">, expected en')
        text = self.page.inner_text("body")
        for msgid in msgids:
            self.check(msgid in text, f"{msgid!r} is not on the page")

    def shoot(self, name: str, *, fits_narrow: bool = False) -> None:
        """Screenshots at 1366 and 390 px wide; with `fits_narrow`, the page must not scroll
        sideways at 390 px (wide tables scroll inside their own box)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for size in (WIDE, NARROW):
            self.page.set_viewport_size(size)
            path = SCREENSHOTS / f"{name}-{size['width']}.png"
            self.page.screenshot(path=str(path), full_page=True)
            if fits_narrow and size is NARROW:
                width = self.page.evaluate("document.documentElement.scrollWidth")
                self.check(width <= NARROW["width"] + 1,
                           f"{name} at 390 px is {width} px wide: the page scrolls sideways")
        self.page.set_viewport_size(WIDE)

    def unexpected_console_errors(self) -> list[str]:
        def deliberate(status: int, url: str) -> bool:
            return (status, url.split("?")[0]) in {(s, u.split("?")[0]) for s, u in self.deliberate}

        errors = []
        for text, url in self.console_errors:
            match = HTTP_ERROR.search(text)
            if match and deliberate(int(match.group(1)), url):
                continue
            match = HTMX_ERROR.search(text)
            if not (match and deliberate(int(match.group(1)), self.url(match.group(2)))):
                errors.append(f"console: {text} ({url})")
        errors += [f"response {status}: {url}" for status, url in self.failed_responses
                   if not deliberate(status, url)]
        return errors

    def finish(self) -> None:
        problems = self.problems + self.unexpected_console_errors()
        assert not problems, "\n".join(problems)


@contextmanager
def walkers(browser: Browser, server: LiveServer) -> Iterator[Callable[..., Walker]]:
    """Opens fresh browser contexts (zh-CN unless told otherwise) on `server`, a walker on
    each; closes them at the end."""
    contexts = []

    def open_walker(locale: str = "zh-CN") -> Walker:
        context = browser.new_context(locale=locale, viewport=WIDE)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return Walker(context.new_page(), server)

    try:
        yield open_walker
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def walk(browser, live_server) -> Iterator[Callable[..., Walker]]:
    """Opens a fresh browser context (zh-CN unless told otherwise) and a walker on it."""
    with walkers(browser, live_server) as open_walker:
        yield open_walker
