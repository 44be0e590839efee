"""Adjudicating a whole round from its page: inline decisions, accepting every unflagged
proposal at once, the no-bid default and publishing after one summary."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bidhub.models import (
    Account,
    Decision,
    DecisionKind,
    Filing,
    FilingKind,
    Listing,
    ListingStatus,
    Round,
    RoundStatus,
)
from bidhub.services import adjudication, users
from tests.conftest import login, reload
from tests.test_appeals import results_in_force
from tests.test_queries import statements_for

HTMX = {"HX-Request": "true"}


@pytest.fixture
def scored(app, session, clock, make_manager, make_rep, make_admin, make_account, make_round,
           make_bid, give_accounts):
    """A scored round: two plain listings, one nobody bid for, one whose bidder's password an
    admin reset during the round, and one whose winner has since reached capacity."""
    manager, admin = make_manager(), make_admin()
    ann, bob, cid, dan = (make_rep(name=name) for name in ("Ann", "Bob", "Cid", "Dan"))
    leaving = make_rep(name="Leaving")
    accounts = [make_account(owner=leaving, name=f"Account {n}") for n in range(1, 6)]
    round_ = make_round(accounts=accounts, manager=manager)
    plain1, plain2, nobody, reset, full = sorted(round_.listings, key=lambda item: item.id)
    for listing in (plain1, plain2):
        make_bid(ann, listing)
    clock.advance(minutes=5)  # equal scores, but the earlier bid wins: no lottery
    for listing in (plain1, plain2):
        make_bid(bob, listing)
    make_bid(cid, reset)
    make_bid(bob, reset)
    make_bid(dan, full)
    users.set_password(session, admin, cid.id, "a temporary password 2026", now=clock())
    clock.advance(days=8)
    assert adjudication.score_closed_round(session, round_.id, clock())
    give_accounts(dan, 40)  # since scoring, Dan has filled up
    client = app.test_client()
    login(client, manager)
    reload(session)
    return {"round": round_, "client": client, "manager": manager, "plain1": plain1,
            "plain2": plain2, "nobody": nobody, "reset": reset, "full": full,
            "reps": {"ann": ann, "bob": bob, "cid": cid, "dan": dan}}


def decision_of(session, listing) -> Decision | None:
    reload(session)
    return session.scalars(select(Decision).where(Decision.listing_id == listing.id)).first()


def other_bidder(session, listing):
    review = adjudication.review_round(session, session.get(Round, listing.round_id))[listing.id]
    return next(bid for bid in review.eligible if bid is not review.proposed)


def test_the_round_page_shows_proposals_flags_and_the_no_bid_default(session, scored):
    html = scored["client"].get(f"/manage/rounds/{scored['round'].id}").get_data(as_text=True)
    rows = {listing: row_of(html, scored[listing]) for listing in
            ("plain1", "plain2", "nobody", "reset", "full")}
    assert "password was reset by an admin" in rows["reset"]
    assert "capacity" in rows["full"] and "Dan" in rows["full"]
    for plain in ("plain1", "plain2"):
        assert "badge-overridden" not in rows[plain]  # no flag
        assert re.search(r"\d\.\d{3}", rows[plain])  # score and margin
    assert "Nobody bid for this account" in rows["nobody"]
    assert 'name="kind"' not in rows["nobody"]  # nothing to decide there
    # Undecided listings remain, so publishing is not offered; the summary says what is left.
    assert "publish-results" not in html
    assert "4 listings are still undecided" in html


def test_the_round_pages_asides_are_in_the_pages_brackets(scored):
    """The summary's count of listings nobody bid for, the no-bid note and the override menu's
    scores: （…） straight after the text on a Chinese page, " (…)" on an English one."""
    client, round_id = scored["client"], scored["round"].id
    for language, summary, note, option in (
            ("zh-CN", "1 个竞标客户不授予（其中 1 个无人竞标）", "因此不授予。（公示结果时记录）",
             r">#2 Bob（\d\.\d{3}）</option>"),
            ("en", "1 listing without award (1 nobody bid for)",
             "so it is not awarded. (recorded when", r">#2 Bob \(\d\.\d{3}\)</option>")):
        html = client.get(f"/manage/rounds/{round_id}",
                          headers={"Accept-Language": language}).get_data(as_text=True)
        assert summary in re.search(r'id="publish-summary".*?</section>', html, re.S).group(0)
        assert note in row_of(html, scored["nobody"])
        assert re.search(option, html), language


def row_of(html: str, listing) -> str:
    match = re.search(rf'<tr id="decision-{listing.id}".*?</tr>', html, re.S)
    assert match, f"no row for listing {listing.id}"
    return match.group(0)


def test_inline_accept_swaps_only_the_row(session, scored):
    listing = scored["plain1"]
    response = scored["client"].post(f"/manage/listings/{listing.id}/decide",
                                     data={"kind": "accepted"}, headers=HTMX)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith(f'<tr id="decision-{listing.id}"')
    assert "badge-accepted" in body and "<html" not in body
    assert decision_of(session, listing).kind == DecisionKind.ACCEPTED


def test_deciding_the_last_listing_inline_offers_publishing(session, scored):
    client = scored["client"]
    for name in ("plain1", "plain2", "reset"):
        response = client.post(f"/manage/listings/{scored[name].id}/decide",
                               data={"kind": "accepted"}, headers=HTMX)
        assert "publish-results" not in response.get_data(as_text=True)
    response = client.post(f"/manage/listings/{scored['full'].id}/decide", headers=HTMX,
                           data={"kind": "no_award", "reason": "Dan is at capacity now."})
    body = response.get_data(as_text=True)
    summary = re.search(r'<section[^>]*id="publish-summary".*?</section>', body, re.S).group(0)
    assert 'hx-swap-oob="true"' in summary and "publish-results" in summary


def accept_all_link(html: str) -> str:
    match = re.search(r'<[^>]*id="accept-unflagged"[^>]*>.*?</(a|span)>', html, re.S)
    assert match, "no Accept-every-unflagged element"
    return match.group(0)


def test_the_accept_all_count_follows_inline_decisions(session, scored):
    """The heading's "Accept every proposed award with no flag (N)…" travels along with each
    inline decision (out of band), so its count is the rows left, not the page's first."""
    client, round_id = scored["client"], scored["round"].id
    page = client.get(f"/manage/rounds/{round_id}").get_data(as_text=True)
    assert "(2)…" in accept_all_link(page)  # plain1 and plain2
    body = client.post(f"/manage/listings/{scored['plain1'].id}/decide",
                       data={"kind": "accepted"}, headers=HTMX).get_data(as_text=True)
    link = accept_all_link(body)
    assert 'hx-swap-oob="true"' in link
    assert "Accept the 1 proposed award with no flag…" in link
    body = client.post(f"/manage/listings/{scored['plain2'].id}/decide",
                       data={"kind": "accepted"}, headers=HTMX).get_data(as_text=True)
    link = accept_all_link(body)
    assert 'hx-swap-oob="true"' in link
    assert "/accept-unflagged" not in link  # none left: nothing to offer


def test_a_listing_nobody_bid_for_offers_no_decision(session, scored):
    html = scored["client"].get(f"/manage/listings/{scored['nobody'].id}").get_data(as_text=True)
    assert "Nobody bid for this account" in html
    assert "recorded as not awarded" in html
    assert 'name="kind"' not in html


def test_a_tie_only_the_lottery_broke_is_flagged(app, session, clock, make_manager, make_rep,
                                                 make_account, make_round, make_bid):
    manager = make_manager()
    round_ = make_round(accounts=[make_account()], manager=manager)
    for rep in (make_rep(), make_rep()):
        make_bid(rep, round_.listings[0])  # same score, same holdings, same instant
    clock.advance(days=8)
    adjudication.score_closed_round(session, round_.id, clock())
    reload(session)
    review = adjudication.review_round(session, session.get(Round, round_.id))
    assert review[round_.listings[0].id].flags == (adjudication.Flag.LOTTERY,)
    assert review[round_.listings[0].id].margin == 0
    client = app.test_client()
    login(client, manager)
    assert "Tie decided by the lottery" in client.get(
        f"/manage/rounds/{round_.id}").get_data(as_text=True)


def test_an_inline_accept_past_capacity_is_refused_in_the_row(session, scored):
    listing = scored["full"]
    response = scored["client"].post(f"/manage/listings/{listing.id}/decide",
                                     data={"kind": "accepted"}, headers=HTMX)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith(f'<tr id="decision-{listing.id}"')
    assert "holds 40 accounts" in body
    assert decision_of(session, listing) is None


def test_inline_override_needs_a_reason(session, scored):
    listing = scored["plain1"]
    other = other_bidder(session, listing)
    refused = scored["client"].post(f"/manage/listings/{listing.id}/decide", headers=HTMX,
                                    data={"kind": "overridden", "bid_id": str(other.id),
                                          "reason": ""})
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    assert body.lstrip().startswith(f'<tr id="decision-{listing.id}"')
    assert 'class="error"' in body and "Write the reason" in body
    assert decision_of(session, listing) is None
    response = scored["client"].post(f"/manage/listings/{listing.id}/decide", headers=HTMX,
                                     data={"kind": "overridden", "bid_id": str(other.id),
                                           "reason": "Serves the group's subsidiary already."})
    assert response.status_code == 200
    decision = decision_of(session, listing)
    assert (decision.kind, decision.bid_id) == (DecisionKind.OVERRIDDEN, other.id)


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "inline"])
def test_an_override_without_a_bidder_or_enough_reason_shows_both_errors_at_once(
        session, scored, headers):
    """No bidder chosen and too short a reason: both fields say so in the same refusal, not
    the reason only once a bidder is chosen."""
    listing = scored["plain1"]
    refused = scored["client"].post(f"/manage/listings/{listing.id}/decide", headers=headers,
                                    data={"kind": "overridden", "bid_id": "0", "reason": "Better"})
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    assert "Choose one of this listing&#39;s bidders." in body
    assert "Write the reason (at least 10 characters)." in body
    assert decision_of(session, listing) is None


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "inline"])
def test_an_override_to_a_full_bidder_with_too_short_a_reason_shows_both_errors_at_once(
        session, scored, give_accounts, headers):
    """The bidder chosen has filled up since scoring and the reason is too short: the
    capacity refusal and the reason's both come back, not one per try."""
    listing = scored["plain1"]
    other = other_bidder(session, listing)
    give_accounts(other.rep, 40)
    refused = scored["client"].post(f"/manage/listings/{listing.id}/decide", headers=headers,
                                    data={"kind": "overridden", "bid_id": str(other.id),
                                          "reason": "Better"})
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    assert "holds 40 accounts" in body
    assert "Write the reason (at least 10 characters)." in body
    assert decision_of(session, listing) is None


def test_inline_no_award_needs_a_reason_and_plain_forms_redirect(session, scored):
    listing = scored["plain2"]
    refused = scored["client"].post(f"/manage/listings/{listing.id}/decide", headers=HTMX,
                                    data={"kind": "no_award", "reason": "no"})
    assert refused.status_code == 422 and "Write the reason" in refused.get_data(as_text=True)
    assert decision_of(session, listing) is None
    # Without JavaScript the same form posts normally and comes back to the round page.
    response = scored["client"].post(f"/manage/listings/{listing.id}/decide",
                                     data={"kind": "no_award",
                                           "reason": "The customer asked to wait a quarter."})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/manage/rounds/{scored['round'].id}")
    assert decision_of(session, listing).kind == DecisionKind.NO_AWARD


def confirmation(client, round_id) -> tuple[str, dict[str, str]]:
    response = client.get(f"/manage/rounds/{round_id}/accept-unflagged")
    assert response.status_code == 200, response.status_code
    html = response.get_data(as_text=True)
    fields = dict(re.findall(r'name="(listing_ids|version)" type="hidden" value="([^"]*)"', html))
    return html, fields


def test_accept_all_unflagged_decides_exactly_the_set_it_showed(session, scored):
    round_id = scored["round"].id
    html, fields = confirmation(scored["client"], round_id)
    to_accept = re.search(r'id="to-accept".*?</table>', html, re.S).group(0)
    left = re.search(r'id="left-flagged".*?</ul>', html, re.S).group(0)
    for name in ("plain1", "plain2"):
        assert f'data-listing="{scored[name].id}"' in to_accept
    for name in ("reset", "full"):
        assert f'data-listing="{scored[name].id}"' in left
    assert f'data-listing="{scored["nobody"].id}"' not in html
    assert fields["listing_ids"] == f"{scored['plain1'].id},{scored['plain2'].id}"
    response = scored["client"].post(f"/manage/rounds/{round_id}/accept-unflagged", data=fields)
    assert response.status_code == 303
    for name in ("plain1", "plain2"):
        assert decision_of(session, scored[name]).kind == DecisionKind.ACCEPTED
    for name in ("reset", "full", "nobody"):
        assert decision_of(session, scored[name]) is None


def test_a_stale_confirmation_is_refused_and_decides_nothing(session, scored):
    round_id = scored["round"].id
    _, fields = confirmation(scored["client"], round_id)
    # Someone else decides one of the listings meanwhile.
    other = scored["client"].post(f"/manage/listings/{scored['plain1'].id}/decide",
                                  data={"kind": "no_award",
                                        "reason": "The customer asked to wait a quarter."})
    assert other.status_code == 303
    response = scored["client"].post(f"/manage/rounds/{round_id}/accept-unflagged", data=fields)
    assert response.status_code == 409
    assert decision_of(session, scored["plain2"]) is None
    # A confirmation of another round version, or of a set it never showed, is refused too.
    _, fields = confirmation(scored["client"], round_id)
    for tampered in ({**fields, "version": str(int(fields["version"]) + 1)},
                     {**fields, "listing_ids": f"{fields['listing_ids']},{scored['full'].id}"},
                     {**fields, "listing_ids": "not,numbers"}):
        response = scored["client"].post(f"/manage/rounds/{round_id}/accept-unflagged",
                                         data=tampered)
        assert response.status_code == 409
    assert decision_of(session, scored["plain2"]) is None
    assert decision_of(session, scored["full"]) is None


def test_accepting_the_set_is_one_transaction(session, scored, clock, monkeypatch):
    from bidhub.domain.errors import InvalidRequest
    from bidhub.domain.text import N_

    decide, calls = adjudication.decide_listing, []

    def decide_then_fail(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 2:
            raise InvalidRequest(N_("Choose a decision."))
        return decide(*args, **kwargs)

    monkeypatch.setattr(adjudication, "decide_listing", decide_then_fail)
    round_ = session.get(Round, scored["round"].id)
    wanted = [scored["plain1"].id, scored["plain2"].id]
    with pytest.raises(InvalidRequest):
        adjudication.accept_unflagged(session, scored["manager"], round_.id,
                                      listing_ids=wanted, expected_version=round_.version,
                                      now=clock())
    assert calls == wanted
    assert decision_of(session, scored["plain1"]) is None  # the first acceptance rolled back


def test_publishing_shows_a_summary_and_publishes_with_one_confirmation(session, scored):
    client, round_id = scored["client"], scored["round"].id
    _, fields = confirmation(client, round_id)
    assert client.post(f"/manage/rounds/{round_id}/accept-unflagged",
                       data=fields).status_code == 303
    reset_other = other_bidder(session, scored["reset"])
    assert client.post(f"/manage/listings/{scored['reset'].id}/decide", data={
        "kind": "overridden", "bid_id": str(reset_other.id),
        "reason": "The reset rep's bid cannot be trusted."}).status_code == 303
    assert client.post(f"/manage/listings/{scored['full'].id}/decide", data={
        "kind": "no_award", "reason": "Dan is at capacity since scoring."}).status_code == 303
    html = client.get(f"/manage/rounds/{round_id}").get_data(as_text=True)
    summary = re.search(r'id="publish-summary".*?</section>', html, re.S).group(0)
    assert "2 awards following the ranking" in summary
    assert "1 override" in summary
    assert "2 listings without award" in summary and "1 nobody bid for" in summary
    assert "3 transfers will be filed" in summary
    assert "undecided" not in summary
    assert summary.count("data-confirm") == 1
    version = re.search(r'name="version" type="hidden" value="(\d+)"', summary).group(1)
    response = client.post(f"/manage/rounds/{round_id}/publish-results",
                           data={"version": version})
    assert response.status_code == 303
    reload(session)
    # The default rules announce the results; they take effect when the appeal window ends.
    assert session.get(Round, round_id).status == RoundStatus.STANDSTILL
    awards = select(Filing).where(Filing.round_id == round_id,
                                  Filing.kind == FilingKind.ROUND_AWARD)
    assert session.scalars(awards).all() == []
    results_in_force(session, round_id)
    assert session.get(Round, round_id).status == RoundStatus.RESULTS_PUBLISHED
    filings = session.scalars(awards).all()
    assert len(filings) == 3
    default = decision_of(session, scored["nobody"])
    assert (default.kind, default.bid_id, default.reason, default.decided_by_id) == (
        DecisionKind.NO_AWARD, None, adjudication.NO_BID_REASON, scored["manager"].id)
    statuses = {listing.id: listing.status for listing in session.scalars(
        select(Listing).where(Listing.round_id == round_id))}
    assert statuses[scored["nobody"].id] == ListingStatus.NOT_AWARDED
    assert statuses[scored["full"].id] == ListingStatus.NOT_AWARDED
    assert statuses[scored["plain1"].id] == ListingStatus.AWARDED
    leaving_accounts = session.scalars(select(Account).where(
        Account.id == scored["nobody"].account_id)).one()
    assert leaving_accounts.owner_id is not None  # nobody bid: the account stays where it was


def test_publishing_is_not_offered_when_an_award_would_now_pass_capacity(session, scored,
                                                                         give_accounts):
    client, round_id = scored["client"], scored["round"].id
    for name in ("plain1", "plain2", "reset"):
        assert client.post(f"/manage/listings/{scored[name].id}/decide",
                           data={"kind": "accepted"}).status_code == 303
    assert client.post(f"/manage/listings/{scored['full'].id}/decide", data={
        "kind": "no_award", "reason": "Dan is at capacity since scoring."}).status_code == 303
    winner = decision_of(session, scored["reset"]).bid.rep
    give_accounts(winner, 40)
    html = client.get(f"/manage/rounds/{round_id}").get_data(as_text=True)
    summary = re.search(r'id="publish-summary".*?</section>', html, re.S).group(0)
    assert "past capacity" in summary and "holds 40 accounts" in summary
    assert "publish-results" not in summary


def test_the_scored_round_page_does_not_grow_queries_with_listings(
        app, session, clock, make_manager, make_rep, make_account, make_round, make_bid):
    manager = make_manager()
    reps = [make_rep() for _ in range(3)]
    small = make_round(accounts=[make_account() for _ in range(3)], manager=manager)
    large = make_round(accounts=[make_account() for _ in range(15)], manager=manager)
    for round_ in (small, large):
        for position, listing in enumerate(round_.listings[:-1]):
            make_bid(reps[position % 3], listing)
            make_bid(reps[(position + 1) % 3], listing)
    clock.advance(days=8)
    adjudication.close_due_rounds(session, clock())
    client = app.test_client()
    login(client, manager)
    assert statements_for(app, client, f"/manage/rounds/{small.id}") == statements_for(
        app, client, f"/manage/rounds/{large.id}")


def test_the_summary_lists_the_undecided_accounts_in_the_pages_language(scored):
    """In Chinese the undecided accounts are listed with 、, not with the English comma."""
    page = scored["client"].get(f"/manage/rounds/{scored['round'].id}",
                                headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    summary = re.search(r'<section class="card" id="publish-summary".*?</section>', page, re.S)
    assert re.search(r"Account \d</a>、<a", summary.group(0))
    assert "</a>, <a" not in summary.group(0)


def test_the_undecided_accounts_are_linked_to_their_rows_with_their_names_escaped(session,
                                                                                  scored):
    listing = scored["plain1"]
    listing.account.name = "<b>Bold</b> & Co"
    session.commit()
    page = scored["client"].get(f"/manage/rounds/{scored['round'].id}").get_data(as_text=True)
    summary = re.search(r'<section class="card" id="publish-summary".*?</section>', page,
                        re.S).group(0)
    assert (f'<a href="#decision-{listing.id}">&lt;b&gt;Bold&lt;/b&gt; &amp; Co</a>'
            in summary)
    assert "<b>Bold" not in page


def test_an_account_and_its_flags_are_punctuated_in_the_pages_language(scored):
    """The flagged listings left for the manager read “Account 4：……” in Chinese, not with
    the English colon; in English they keep it."""
    path = f"/manage/rounds/{scored['round'].id}/accept-unflagged"
    chinese = scored["client"].get(path, headers={"Accept-Language": "zh-CN"})
    left = re.search(r'id="left-flagged".*?</ul>', chinese.get_data(as_text=True), re.S).group(0)
    assert re.search(rf'data-listing="{scored["full"].id}">Account \d：\S', left)
    assert ": " not in left
    english = scored["client"].get(path, headers={"Accept-Language": "en"})
    left = re.search(r'id="left-flagged".*?</ul>', english.get_data(as_text=True), re.S).group(0)
    assert re.search(rf'data-listing="{scored["full"].id}">Account \d: \S', left)


@pytest.fixture
def top_scorer_placed_elsewhere(app, session, clock, make_manager, make_rep, make_account,
                                make_round, make_bid, make_opportunities, give_accounts):
    """A round where the best bidder on both listings has room for one more account: the
    allocation gives them Alpha, so Beta goes to the second-ranked bid. `second_won` is the
    record (of 10) of the third bidder on Beta; 5 ties it with the second, at the same
    instant."""

    def build(second_won: int) -> dict:
        history = make_account()
        best, mid, other, weak = (make_rep(name=name) for name in ("Best", "Mid", "Other",
                                                                   "Weak"))
        make_opportunities(best, history, won=9, lost=1)
        make_opportunities(mid, history, won=5, lost=5)
        make_opportunities(other, history, won=second_won, lost=10 - second_won)
        make_opportunities(weak, history, won=1, lost=9)
        give_accounts(best, 39)  # one below capacity_max
        manager = make_manager()
        round_ = make_round(accounts=[make_account(name="Alpha"), make_account(name="Beta")],
                            manager=manager)
        alpha, beta = sorted(round_.listings, key=lambda listing: listing.id)
        for rep in (best, mid, weak):
            make_bid(rep, alpha)
        for rep in (best, mid, other):
            make_bid(rep, beta)
        clock.advance(days=8)
        assert adjudication.score_closed_round(session, round_.id, clock())
        reload(session)
        client = app.test_client()
        login(client, manager)
        review = adjudication.review_round(session, session.get(Round, round_.id))
        return {"round": round_, "client": client, "alpha": review[alpha.id],
                "beta": review[beta.id], "reps": {"best": best, "mid": mid}}

    return build


def test_the_margin_is_over_the_bid_below_the_winner_not_one_the_allocation_kept_out(
        top_scorer_placed_elsewhere):
    world = top_scorer_placed_elsewhere(second_won=2)
    beta = world["beta"]
    first, second, third = beta.ranking
    assert first.rep_id == world["reps"]["best"].id and not first.score.is_proposed_winner
    assert beta.proposed is second and second.rep_id == world["reps"]["mid"].id
    assert beta.passed_over == 1 and beta.runner_up is third and beta.margin > 0
    assert beta.margin == second.score.total - third.score.total
    assert world["alpha"].passed_over == 0 and world["alpha"].margin > 0
    for language, note in (("en", "lead over the next bid below; the allocation kept the 1 "
                                  "bid ranked above it out of this account"),
                           ("zh-CN", "领先排在其后的下一个竞标的分差；排名更靠前的 1 个竞标按分配规则"
                                     "未获得此客户")):
        html = world["client"].get(f"/manage/rounds/{world['round'].id}",
                                   headers={"Accept-Language": language}).get_data(as_text=True)
        row = row_of(html, beta.listing)
        assert re.findall(r'<td class="num">([^<]*)', row)[2] == f"{beta.margin:.3f}"
        assert note in row
        assert note not in row_of(html, world["alpha"].listing)
        confirmation = world["client"].get(
            f"/manage/rounds/{world['round'].id}/accept-unflagged",
            headers={"Accept-Language": language}).get_data(as_text=True)
        assert note in confirmation and "-0." not in confirmation
        # The column is named for what it measures: the winner may be ranked 2nd, so the lead
        # is over the next bid below it, not over the runner-up.
        heading = {"en": "Lead over the next bid", "zh-CN": "领先下一名"}[language]
        for page in (html, confirmation):
            assert f'<th class="num">{heading}</th>' in page
            assert "runner-up" not in page and "第二名" not in page


def test_a_tie_with_the_bid_below_the_winner_is_the_lotterys(top_scorer_placed_elsewhere):
    beta = top_scorer_placed_elsewhere(second_won=5)["beta"]
    assert beta.passed_over == 1 and beta.margin == 0
    assert beta.proposed.score.total == beta.runner_up.score.total
    assert adjudication.Flag.LOTTERY in beta.flags


def test_accepting_every_unflagged_award_locks_the_winners_in_id_order_first(
        session, clock, monkeypatch, make_manager, make_rep, make_account, make_round,
        make_bid):
    """Every use case locks reps in id order. Locked one acceptance at a time in listing
    order, two rounds accepted at once with winners in common could each hold the rep the
    other waits for; so all the winners are locked first, in one statement, in id order."""
    from datetime import timedelta

    manager, first_rep, second_rep = make_manager(), make_rep(), make_rep()
    round_ = make_round(accounts=[make_account(owner=make_rep()) for _ in range(2)],
                        closes_at=clock() + timedelta(hours=1),
                        opens_at=clock() - timedelta(hours=2), manager=manager)
    early, late = sorted(round_.listings, key=lambda listing: listing.id)
    make_bid(second_rep, early)  # the higher rep id wins the listing decided first
    make_bid(first_rep, late)
    clock.advance(hours=1)
    assert adjudication.score_closed_round(session, round_.id, clock())
    reload(session)
    locked: list[list[int]] = []
    lock_reps = adjudication.lock_reps

    def recording(own, rep_ids):
        locked.append(sorted({rep_id for rep_id in rep_ids if rep_id is not None}))
        return lock_reps(own, rep_ids)

    monkeypatch.setattr(adjudication, "lock_reps", recording)
    round_ = session.get(Round, round_.id)
    assert adjudication.accept_unflagged(
        session, manager, round_.id, listing_ids=[early.id, late.id],
        expected_version=round_.version, now=clock()) == [early.id, late.id]
    assert locked[0] == sorted([first_rep.id, second_rep.id])
