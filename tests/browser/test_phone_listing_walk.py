"""A rep on a phone: the open round's list keeps each account's bid link, or why the rep
cannot bid, in view at 390 px without scrolling the table sideways; at 1366 px it is still a
table with its header row.
"""

from __future__ import annotations

from tests.browser.conftest import NARROW, WIDE, LiveServer

# Where each row's last cell (the rep's action) lies against the viewport, and how much the
# list's box or the page scrolls sideways.
LAYOUT = """() => {
    const rows = [...document.querySelectorAll('#listings tbody tr')];
    const box = document.querySelector('#listings .table-scroll');
    return {
        actions: rows.map(row => {
            const own = row.lastElementChild.getBoundingClientRect();
            return {left: own.left, right: own.right, text: row.lastElementChild.innerText.trim()};
        }),
        names: [...document.querySelectorAll('#listings tbody td.name a')].map(link => {
            const own = link.getBoundingClientRect();
            return {right: own.right, text: link.innerText.trim()};
        }),
        boxOverflow: box.scrollWidth - box.clientWidth,
        pageWidth: document.documentElement.scrollWidth,
        headerShown: getComputedStyle(document.querySelector('#listings thead')).display !== 'none',
    };
}"""


def test_a_reps_action_on_each_listing_is_in_view_on_a_phone(walk, live_server: LiveServer):
    rep = walk()
    page = rep.page
    rep.sign_in(live_server.world.rep)
    page.set_viewport_size(NARROW)
    rep.goto(f"/rounds/{live_server.world.open_round_id}")
    layout = page.evaluate(LAYOUT)
    rep.check(len(layout["actions"]) >= 2, f"the open round lists {len(layout['actions'])} rows")
    for action in layout["actions"]:
        rep.check(action["text"] != "", "a row's last cell is empty")
        rep.check(action["left"] >= 0 and action["right"] <= NARROW["width"] + 1,
                  f"the rep's action {action['text']!r} lies at {action['left']:.0f}–"
                  f"{action['right']:.0f} px, outside the 390 px screen")
    for name in layout["names"]:
        rep.check(name["right"] <= NARROW["width"] + 1,
                  f"the name {name['text']!r} runs to {name['right']:.0f} px, off the 390 px screen")
    rep.check(layout["boxOverflow"] <= 1,
              f"the list scrolls {layout['boxOverflow']} px sideways at 390 px")
    rep.check(layout["pageWidth"] <= NARROW["width"] + 1,
              f"the page is {layout['pageWidth']} px wide at 390 px")
    # Other walks share the server and may have bid already: a row offers the bid link or
    # the rep's bid.
    links = page.locator("#listings tbody tr > td:last-child a")
    rep.check(links.count() >= 1 and links.first.is_visible(),
              "no row offers a visible bid link or the rep's bid")
    rep.shoot("phone-round-listings", fits_narrow=True)

    page.set_viewport_size(WIDE)
    rep.goto(f"/rounds/{live_server.world.open_round_id}")
    wide = page.evaluate(LAYOUT)
    rep.check(wide["headerShown"], "at 1366 px the list lost its header row")
    rep.check(page.evaluate("getComputedStyle(document.querySelector('#listings tbody tr'))"
                            ".display") == "table-row", "at 1366 px the list is not a table")
    rep.finish()
