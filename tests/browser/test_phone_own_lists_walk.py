"""A rep on a phone: their own bids and loss reviews are cards at 390 px, each fact and its
link in view without scrolling sideways; at 1366 px they are still tables."""

from __future__ import annotations

from tests.browser.conftest import NARROW, WIDE, LiveServer

# Each row's cells against the viewport, and how wide the page is.
CELLS = """(table) => {
    const rows = [...document.querySelectorAll(`#${table} tbody tr`)];
    return {
        cells: rows.flatMap(row => [...row.children].map(cell => {
            const own = cell.getBoundingClientRect();
            return {left: own.left, right: own.right, text: cell.innerText.trim()};
        })),
        links: rows.map(row => row.querySelectorAll('a').length),
        pageWidth: document.documentElement.scrollWidth,
        headerShown: getComputedStyle(document.querySelector(`#${table} thead`)).display
            !== 'none',
    };
}"""


def check_cards(person, table: str, path: str) -> None:
    page = person.page
    page.set_viewport_size(NARROW)
    person.goto(path)
    layout = page.evaluate(CELLS, table)
    person.check(len(layout["links"]) >= 1, f"{path} lists no row")
    for cell in layout["cells"]:
        person.check(cell["left"] >= 0 and cell["right"] <= NARROW["width"] + 1,
                     f"{path}: {cell['text']!r} lies at {cell['left']:.0f}–{cell['right']:.0f} "
                     f"px, outside the 390 px screen")
    person.check(all(links >= 1 for links in layout["links"]), f"{path}: a row has no link")
    person.check(layout["pageWidth"] <= NARROW["width"] + 1,
                 f"{path} is {layout['pageWidth']} px wide at 390 px")
    person.check(not layout["headerShown"], f"{path} keeps its header row at 390 px")
    person.shoot(f"phone-{table}", fits_narrow=True)
    page.set_viewport_size(WIDE)
    person.goto(path)
    person.check(page.evaluate(CELLS, table)["headerShown"],
                 f"at 1366 px {path} lost its header row")


def test_a_reps_bids_and_loss_reviews_are_cards_on_a_phone(walk, live_server: LiveServer):
    rep = walk()
    rep.sign_in(live_server.world.rep)
    check_cards(rep, "my-bids", "/my/bids")
    rep.finish()
    switcher = walk()
    switcher.sign_in(live_server.world.switcher)
    check_cards(switcher, "my-reviews", "/my/reviews")
    switcher.finish()


def test_the_rounds_list_and_a_reps_accounts_are_cards_on_a_phone(walk, live_server: LiveServer):
    """Before, at 390 px the rounds list kept each round's deadline and state off to the side
    and My accounts cut the annual value mid-number."""
    rep = walk()
    rep.sign_in(live_server.world.rep)
    check_cards(rep, "rounds", "/rounds")
    check_cards(rep, "my-accounts", "/my/accounts")
    rep.finish()
