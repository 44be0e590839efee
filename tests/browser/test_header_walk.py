"""The header keeps to one line on a 1366 px screen, for every role in English and in Chinese.

A manager's and an admin's menus are the longest; at 1366 px by 768 the header's name, menu and
account block (who is signed in and the language switch, above the account's links) must sit on
one row, the menu on a single line, every item of it shown: nothing hidden to make it fit. The
executive is made here, so that the shared world stays as the other walks expect it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bidhub.db import get_session, unit_of_work
from bidhub.models import ExecutiveTitle, Role, User
from bidhub.services.users import new_session_token
from tests.browser.conftest import LiveServer
from tests.browser.world import PASSWORD_HASH

EXECUTIVE = ("header-president", "刘振华")
LAPTOP = {"width": 1366, "height": 768}
# The header's blocks (the name, the menu, who is signed in with the language switch) and the
# menu's links, as the browser drew them. One line: some height runs through every block (the
# lowest top is above the highest bottom) and the menu's box is as tall as its tallest link.
MEASURE = """() => {
  const header = document.querySelector("header.topbar");
  const shown = (element) => element.getClientRects().length > 0;
  const box = (element) => element.getBoundingClientRect();
  const named = (element) => ({text: element.textContent.trim().replace(/\\s+/g, " "),
                               top: box(element).top, bottom: box(element).bottom,
                               height: box(element).height});
  const nav = header.querySelector("nav.mainnav");
  return {
    blocks: [...header.children].filter(shown).map(named),
    links: nav ? [...nav.querySelectorAll(":scope > a")].filter(shown).map(named) : [],
    nav: nav ? box(nav).height : 0,
    hidden: [...header.querySelectorAll("a, button")].filter((element) => !shown(element))
      .map((element) => element.textContent.trim()),
    scroll: document.documentElement.scrollWidth,
  };
}"""


def add_executive(server: LiveServer) -> str:
    username, name = EXECUTIVE
    with server.app.app_context():
        session = get_session()
        if session.scalars(select(User).where(User.username == username)).first() is None:
            now = server.app.config["CLOCK"]()
            with unit_of_work(session):
                session.add(User(username=username, display_name=name,
                                 password_hash=PASSWORD_HASH, role=Role.EXECUTIVE,
                                 executive_title=ExecutiveTitle.PRESIDENT, is_active=True,
                                 status="active", session_token=new_session_token(),
                                 failed_login_count=0, created_at=now - timedelta(days=300)))
    return username


def header_problems(measured: dict) -> list[str]:
    problems = []
    blocks, links = measured["blocks"], measured["links"]
    lowest = max(blocks, key=lambda block: block["top"])
    highest = min(blocks, key=lambda block: block["bottom"])
    if lowest["top"] >= highest["bottom"]:
        problems.append(f"{lowest['text'][:30]!r} is on a line below {highest['text'][:30]!r}")
    tallest = max((link["height"] for link in links), default=0)
    if links and measured["nav"] > tallest + 1:
        below = [link["text"] for link in links if link["top"] >= links[0]["bottom"]]
        problems.append(f"the menu is {measured['nav']:.0f} px tall, its links {tallest:.0f} px: "
                        f"{below} wrap onto a second line")
    if measured["hidden"]:
        problems.append(f"hidden: {measured['hidden']}")
    if measured["scroll"] > LAPTOP["width"]:
        problems.append(f"the page is {measured['scroll']} px wide")
    return problems


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_the_header_is_one_line_at_1366_px_for_every_role(walk, live_server, locale):
    world = live_server.world
    found = {}
    for username in (world.rep, world.manager, world.admin, add_executive(live_server)):
        walker = walk(locale)
        walker.page.set_viewport_size(LAPTOP)
        walker.sign_in(username)
        expected = "en" if locale == "en" else "zh-CN"
        assert walker.lang() == expected, (username, walker.lang())
        if problems := header_problems(walker.page.evaluate(MEASURE)):
            found[username] = problems
        walker.finish()
    assert not found, "\n".join(f"{username} ({locale}): {'; '.join(problems)}"
                                for username, problems in found.items())
