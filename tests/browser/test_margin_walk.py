"""The margin column when the allocation kept a better-ranked bid out of an account: its note
explains the figure without pushing the decision out of sight.

The round is built here, through the services: four listings, three bidders on each. The
best of them wins the first three and is kept out of the fourth by the per-round cap
(max_awards_per_rep_per_round = 3), so the fourth is proposed to the second-ranked bid and its
margin is over the third, with a note saying why. The note must wrap inside its cell: on a
1366 px screen the row's decision (Accept, Override) stays in view without scrolling the table
sideways, as it does in every other row.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from bidhub.db import get_session
from bidhub.services import adjudication
from bidhub.services.adjudication import score_closed_round
from bidhub.services.rounds import load_round
from tests.browser.conftest import LiveServer
from tests.browser.world import add_round_past_its_deadline, bid, by_username

ROUND_TITLE = "五月客户资源竞标"
ACCOUNTS = (("沈阳北方重工有限公司", "制造业", 1_500_000),
            ("大连海港国际物流有限公司", "物流", 1_300_000),
            ("济南泉城软件有限公司", "互联网", 900_000),
            ("合肥庐州新能源科技有限公司", "制造业", 650_000))
NOTE = ("lead over the next bid below; the allocation kept the %(num)d bid ranked above it out "
        "of this account (see details)")


@pytest.fixture(scope="module")
def passed_over(live_server: LiveServer) -> tuple[int, int]:
    """The round's id and the listing whose best bid the allocation kept out."""
    world = live_server.world
    with live_server.app.app_context():
        session = get_session()
        now = live_server.app.config["CLOCK"]()
        manager, leaver = by_username(session, world.manager), by_username(session, "chenjing")
        bidders = [by_username(session, name) for name in (world.rep, world.rival,
                                                           world.switcher)]
        round_id, listing_ids, bids_from = add_round_past_its_deadline(
            session, now, manager, leaver, ROUND_TITLE, ACCOUNTS, first_number=400)
        for n, rep in enumerate(bidders):
            for m, listing_id in enumerate(listing_ids):
                bid(session, rep, listing_id, bids_from + timedelta(hours=n, minutes=m))
        assert score_closed_round(session, round_id, now - timedelta(hours=11))
        reviews = adjudication.review_round(session, load_round(session, round_id))
        kept_out = [listing_id for listing_id in listing_ids if reviews[listing_id].passed_over]
        assert len(kept_out) == 1 and reviews[kept_out[0]].runner_up is not None, (
            "the per-round cap should keep the best bidder out of exactly one listing")
        return round_id, kept_out[0]


def test_the_margin_note_wraps_and_the_decision_stays_in_view(walk, live_server, passed_over):
    round_id, listing_id = passed_over
    manager = walk()
    page = manager.page
    manager.sign_in(live_server.world.manager)
    manager.goto(f"/manage/rounds/{round_id}")
    note = live_server.zh(NOTE) % {"num": 1}
    row = page.locator(f"#decision-{listing_id}")
    manager.check(note in row.inner_text(), f"the row does not explain its margin: {note!r}")
    box = row.locator(
        "xpath=ancestor::div[contains(@class, 'table-scroll')]")
    overflow = box.evaluate("box => box.scrollWidth - box.clientWidth")
    manager.check(overflow <= 1, f"the decisions table is {overflow} px wider than its box at "
                                 "1366 px: the note pushes the decision out of sight")
    accept = row.locator("button.primary")
    inside = accept.evaluate("""button => {
        const box = button.closest('.table-scroll').getBoundingClientRect();
        const own = button.getBoundingClientRect();
        return own.left >= box.left && own.right <= box.right; }""")
    manager.check(inside, "the row's Accept button is outside the table's visible box")
    manager.shoot("margin-note-round")

    manager.goto(f"/manage/rounds/{round_id}/accept-unflagged")
    confirmation = page.locator("#to-accept").locator(
        "xpath=ancestor::div[contains(@class, 'table-scroll')]")
    if page.locator(f"#to-accept tr[data-listing='{listing_id}']").count():
        overflow = confirmation.evaluate("box => box.scrollWidth - box.clientWidth")
        manager.check(overflow <= 1, f"the accept-all table is {overflow} px wider than its "
                                     "box at 1366 px")
    manager.shoot("margin-note-accept-unflagged")
    manager.finish()
