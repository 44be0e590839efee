"""A rep's ranked preferences: the use case, the form on "my bids", withdrawals that close the
gap, and a round scored with them that `rescore --verify` and the what-if reproduce."""

from __future__ import annotations

from datetime import timedelta

import pytest
from markupsafe import escape
from sqlalchemy import select

from bidhub import create_app
from bidhub.db import engine_of
from bidhub.domain.errors import BidRejected, InvalidRequest, NotFound, PermissionDenied
from bidhub.models import Bid, BidScore, Listing
from bidhub.services import adjudication
from bidhub.services.bid_preferences import rank_preferences
from bidhub.services.bidding import withdraw_bid
from bidhub.services.replays import verify_round, what_if
from bidhub.services.rule_sets import active_rule_set, adopt_rule_set, parsed
from tests.conftest import PASSWORD, csrf_token_from, login, reload


@pytest.fixture
def round_of_three(make_account, make_round, clock):
    return make_round(accounts=[make_account(name=f"Account {n}") for n in (1, 2, 3)],
                      closes_at=clock() + timedelta(hours=2))


@pytest.fixture
def three_bids(make_rep, make_bid, round_of_three):
    rep = make_rep()
    return rep, [make_bid(rep, listing) for listing in round_of_three.listings]


def ranks_of(session, bids) -> list[int | None]:
    reload(session)
    return [session.get(Bid, bid.id).preference_rank for bid in bids]


# --- the use case -------------------------------------------------------------------------


def test_a_rep_ranks_their_bids_and_an_unranked_bid_stays_unranked(session, clock, three_bids,
                                                                   round_of_three):
    rep, bids = three_bids
    shown = rank_preferences(session, rep, round_of_three.id, {bids[2].id: 1, bids[0].id: 2},
                             clock())
    assert [bid.id for bid in shown] == [bids[2].id, bids[0].id, bids[1].id]
    assert ranks_of(session, bids) == [2, None, 1]
    rank_preferences(session, rep, round_of_three.id, {bids[1].id: 1}, clock())
    assert ranks_of(session, bids) == [None, 1, None]


def test_ranking_is_refused_at_the_deadline_and_accepted_a_second_before(session, clock,
                                                                         three_bids,
                                                                         round_of_three):
    rep, bids = three_bids
    clock.set(round_of_three.closes_at - timedelta(seconds=1))
    rank_preferences(session, rep, round_of_three.id, {bids[0].id: 1}, clock())
    clock.set(round_of_three.closes_at)
    with pytest.raises(BidRejected, match="closed at its deadline"):
        rank_preferences(session, rep, round_of_three.id, {bids[1].id: 1}, clock())
    assert ranks_of(session, bids) == [1, None, None]


def test_another_reps_bid_or_a_bid_of_another_round_is_refused_and_nothing_changes(
        session, clock, three_bids, round_of_three, make_rep, make_bid, make_round,
        make_account, make_manager):
    rep, bids = three_bids
    other = make_rep()
    theirs = make_bid(other, round_of_three.listings[0])
    make_bid(other, round_of_three.listings[1])
    with pytest.raises(NotFound):
        rank_preferences(session, rep, round_of_three.id, {bids[0].id: 1, theirs.id: 2}, clock())
    elsewhere = make_bid(rep, make_round(accounts=[make_account()]).listings[0])
    with pytest.raises(NotFound):
        rank_preferences(session, rep, round_of_three.id, {bids[0].id: 1, elsewhere.id: 2},
                         clock())
    with pytest.raises(NotFound):
        rank_preferences(session, rep, 10**9, {bids[0].id: 1}, clock())
    with pytest.raises(PermissionDenied):
        rank_preferences(session, make_manager(), round_of_three.id, {bids[0].id: 1}, clock())
    assert ranks_of(session, [*bids, theirs]) == [None, None, None, None]


@pytest.mark.parametrize(("ranks", "field", "words"), [
    ((1, 3, None), 1, "1 to 2 without gaps: 2 is missing"),
    ((1, 1, 2), 1, "Two bids are ranked 1"),
    ((0, 1, None), 0, "1 to 2 without gaps: 2 is missing"),
    ((-1, None, None), 0, "1 to 1 without gaps: 1 is missing"),
    ((2, 3, 4), 2, "1 to 3 without gaps: 1 is missing"),
])
def test_gaps_repeats_and_numbers_out_of_range_name_the_field(session, clock, three_bids,
                                                              round_of_three, ranks, field,
                                                              words):
    rep, bids = three_bids
    rank_preferences(session, rep, round_of_three.id, {bids[0].id: 1}, clock())
    wanted = {bid.id: rank for bid, rank in zip(bids, ranks, strict=True) if rank is not None}
    with pytest.raises(InvalidRequest, match=words) as raised:
        rank_preferences(session, rep, round_of_three.id, wanted, clock())
    assert raised.value.field == f"rank-{bids[field].id}"
    assert ranks_of(session, bids) == [1, None, None]


def test_one_bid_has_nothing_to_rank(session, clock, make_rep, make_bid, round_of_three):
    rep = make_rep()
    bid = make_bid(rep, round_of_three.listings[0])
    with pytest.raises(InvalidRequest, match="at least 2 active bids"):
        rank_preferences(session, rep, round_of_three.id, {bid.id: 1}, clock())


def test_withdrawing_a_ranked_bid_closes_the_gap(session, clock, three_bids, round_of_three):
    rep, bids = three_bids
    rank_preferences(session, rep, round_of_three.id,
                     {bids[0].id: 2, bids[1].id: 1, bids[2].id: 3}, clock())
    withdraw_bid(session, rep, bids[1].id, clock())
    assert ranks_of(session, bids) == [1, None, 2]
    withdraw_bid(session, rep, bids[2].id, clock())
    assert ranks_of(session, bids) == [1, None, None]


def test_withdrawing_an_unranked_bid_leaves_the_ranking_alone(session, clock, three_bids,
                                                              round_of_three):
    rep, bids = three_bids
    rank_preferences(session, rep, round_of_three.id, {bids[0].id: 2, bids[2].id: 1}, clock())
    withdraw_bid(session, rep, bids[1].id, clock())
    assert ranks_of(session, bids) == [2, None, 1]


# --- the page ----------------------------------------------------------------------------


def post_ranks(client, round_id: int, fields: dict[str, str], token: str | None = None):
    if token is None:
        token = csrf_token_from(client.get("/my/bids").get_data(as_text=True))
    return client.post(f"/my/rounds/{round_id}/preferences",
                       data={"csrf_token": token, **fields})


def test_the_form_on_my_bids_saves_a_ranking(session, client, login_as, three_bids,
                                             round_of_three):
    rep, bids = three_bids
    login_as(rep)
    page = client.get("/my/bids").get_data(as_text=True)
    assert f'id="ranking-{round_of_three.id}"' in page and f'name="rank-{bids[0].id}"' in page
    response = post_ranks(client, round_of_three.id, {f"rank-{bids[0].id}": "2",
                                                      f"rank-{bids[1].id}": "1",
                                                      f"rank-{bids[2].id}": ""})
    assert response.status_code == 303
    assert ranks_of(session, bids) == [2, 1, None]
    page = client.get("/my/bids").get_data(as_text=True)
    assert "Your ranking is saved" in page
    assert '<option value="1" selected>' in page and '<option value="2" selected>' in page


def test_a_gap_is_shown_again_with_its_message_and_nothing_is_saved(session, client, login_as,
                                                                    three_bids,
                                                                    round_of_three):
    rep, bids = three_bids
    login_as(rep)
    response = post_ranks(client, round_of_three.id, {f"rank-{bids[0].id}": "1",
                                                      f"rank-{bids[1].id}": "3"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "without gaps: 2 is missing" in page
    assert 'aria-invalid="true"' in page and '<option value="3" selected>' in page
    assert ranks_of(session, bids) == [None, None, None]


@pytest.mark.parametrize("fields", [
    {"rank-{0}": "one"}, {"rank-{0}": "1.5"}, {"rank-{0}": "9" * 40}, {"rank-{0}": "²"},
    {"rank-{0}": "-1"}, {"rank-99999999": "1"}, {"rank-abc": "1", "rank-{0}": "1"},
    {"rank-{0}": "1", "rank-{1}": "1"}, {"rank-" + "9" * 30: "1"}, {"rank-²": "1"},
])
def test_garbage_is_never_a_server_error_and_changes_nothing(session, client, login_as,
                                                             three_bids, round_of_three,
                                                             fields):
    rep, bids = three_bids
    login_as(rep)
    data = {name.format(bids[0].id, bids[1].id): value for name, value in fields.items()}
    response = post_ranks(client, round_of_three.id, data)
    assert response.status_code in (303, 404, 422), response.status_code
    if response.status_code != 303:
        assert ranks_of(session, bids) == [None, None, None]


def test_another_reps_bids_and_closed_rounds_are_refused_on_the_page(session, client, login_as,
                                                                     three_bids,
                                                                     round_of_three, make_rep,
                                                                     clock):
    rep, bids = three_bids
    login_as(make_rep())
    token = csrf_token_from(client.get("/my/bids").get_data(as_text=True))
    response = post_ranks(client, round_of_three.id, {f"rank-{bids[0].id}": "1"}, token)
    assert response.status_code == 404
    client.post("/logout", data={"csrf_token": token})
    login_as(rep)
    token = csrf_token_from(client.get("/my/bids").get_data(as_text=True))
    clock.set(round_of_three.closes_at)
    response = post_ranks(client, round_of_three.id, {f"rank-{bids[0].id}": "1"}, token)
    assert response.status_code == 422 and "closed at its deadline" in response.get_data(
        as_text=True)
    assert ranks_of(session, bids) == [None, None, None]
    assert f'id="ranking-{round_of_three.id}"' not in client.get("/my/bids").get_data(
        as_text=True)


def test_a_post_without_the_csrf_token_is_refused(session, app, app_config, three_bids,
                                                  round_of_three):
    rep, bids = three_bids
    guarded = create_app({**app_config, "WTF_CSRF_ENABLED": True})
    client = guarded.test_client()
    try:
        token = csrf_token_from(client.get("/login").get_data(as_text=True))
        client.post("/login", data={"username": rep.username, "password": PASSWORD,
                                    "csrf_token": token})
        response = client.post(f"/my/rounds/{round_of_three.id}/preferences",
                               data={f"rank-{bids[0].id}": "1", f"rank-{bids[1].id}": "2"})
        assert response.status_code == 400
        assert ranks_of(session, bids) == [None, None, None]
    finally:
        engine_of(guarded).dispose()


# --- scoring, rescore --verify and the what-if --------------------------------------------


def with_preferences(text: str, section: str) -> str:
    """The given rules with one award per rep and round, and a [preferences] section."""
    return (text.replace("max_awards_per_rep_per_round = 3", "max_awards_per_rep_per_round = 1")
            + f"\n[preferences]\n{section}\n")


@pytest.fixture
def preferred_round(session, clock, make_rep, make_account, make_round, make_bid,
                    make_opportunities):
    """Strong (win rate 0.9) bids on two accounts, ranks the second first and may win one;
    Middle (0.6) bids on the first, Weak (0.6) on the second."""

    def build(section: str):
        adopt_rule_set(session, None, with_preferences(active_rule_set(session).text, section),
                       "preferences", "test", clock())
        session.commit()
        history = make_account()
        reps = {name: make_rep(name=f"{name} Rep") for name in ("Strong", "Middle", "Weak")}
        for name, won in (("Strong", 9), ("Middle", 6), ("Weak", 6)):
            make_opportunities(reps[name], history, won=won, lost=10 - won)
        first, second = make_account(name="First Account"), make_account(name="Second Account")
        round_ = make_round(accounts=[first, second], closes_at=clock() + timedelta(hours=1))
        listing = {item.account_id: item for item in round_.listings}
        bids = {"Strong first": make_bid(reps["Strong"], listing[first.id]),
                "Strong second": make_bid(reps["Strong"], listing[second.id]),
                "Middle": make_bid(reps["Middle"], listing[first.id]),
                "Weak": make_bid(reps["Weak"], listing[second.id])}
        rank_preferences(session, reps["Strong"], round_.id,
                         {bids["Strong second"].id: 1, bids["Strong first"].id: 2}, clock())
        clock.advance(hours=1)
        assert adjudication.score_closed_round(session, round_.id, clock())
        return round_, {key: bid.id for key, bid in bids.items()}

    return build


def proposed(session, round_id: int) -> set[int]:
    return set(session.scalars(
        select(Bid.id).join(BidScore).join(Listing)
        .where(Listing.round_id == round_id, BidScore.is_proposed_winner)))


@pytest.mark.parametrize("section", ['mode = "tie_break"', 'mode = "bonus"\nbonus = 0.05'])
def test_a_round_scored_with_preferences_gives_the_first_choice_and_verifies(
        app, session, preferred_round, section):
    round_, bids = preferred_round(section)
    assert proposed(session, round_.id) == {bids["Strong second"], bids["Middle"]}
    stored = session.get(BidScore, bids["Strong second"])
    assert stored.inputs["preference_rank"] == 1
    assert "ranked preferences decided this award" in stored.not_awarded_reason
    assert "ranked higher" in session.get(BidScore, bids["Strong first"]).not_awarded_reason
    assert verify_round(session, round_.id) == []
    result = app.test_cli_runner().invoke(args=["rescore", "--verify", str(round_.id)])
    assert result.exit_code == 0 and "reproduce exactly" in result.output, result.output


def test_the_what_if_shows_what_ignoring_preferences_would_have_changed(
        session, preferred_round, make_admin, login_as):
    round_, bids = preferred_round('mode = "bonus"\nbonus = 0.05')
    breakdown = session.get(BidScore, bids["Strong second"]).breakdown
    assert breakdown["factors"][-1]["metric"] == "preference_bonus"
    ignored = parsed(round_.rule_set).text.replace('mode = "bonus"\nbonus = 0.05',
                                                   'mode = "ignored"')
    from bidhub.domain.rules import parse_rules

    _, comparison = what_if(session, round_.id, parse_rules(ignored))
    assert {(change.before_bid_id, change.after_bid_id) for change in comparison.award_changes
            } == {(bids["Middle"], bids["Strong first"]), (bids["Strong second"], bids["Weak"])}
    assert {change.bid_id for change in comparison.changed_scores} == {
        bids["Strong second"], bids["Middle"], bids["Weak"]}


def test_the_ranking_form_speaks_chinese(app, session, three_bids, round_of_three):
    from tests.test_i18n import ALLOWED_WORDS, english_words, visible_text

    rep, bids = three_bids
    client = app.test_client()
    login(client, rep)
    page = client.get("/my/bids", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    start = page.rindex("<section", 0, page.index(f'id="ranking-{round_of_three.id}"'))
    section = page[start:page.index("</section>", start)]
    assert "保存排序" in section and "未排序" in section
    data = {word for bid in bids for word in bid.listing.account.name.split()}
    data |= set(round_of_three.title.split())
    assert english_words(visible_text(section), ALLOWED_WORDS | frozenset(data)) == {}


def test_after_publication_the_rep_sees_the_bonus_line_and_why_a_preference_decided(
        session, clock, preferred_round, make_manager, login_as):
    from bidhub.models import DecisionKind, Round
    from bidhub.services.adjudication import decide_listing, publish_results

    round_, bids = preferred_round('mode = "bonus"\nbonus = 0.05')
    manager = make_manager()
    for listing in round_.listings:
        decide_listing(session, manager, listing.id, kind=DecisionKind.ACCEPTED, bid_id=None,
                       reason="", now=clock())
    reload(session)
    round_ = session.get(Round, round_.id)
    publish_results(session, manager, round_.id, expected_version=round_.version, now=clock())
    reload(session)
    strong = session.get(Bid, bids["Strong second"]).rep
    client = login_as(strong)
    won = client.get(f"/bids/{bids['Strong second']}").get_data(as_text=True)
    assert "Preference bonus (choice)" in won and "+0.050" in won
    assert "ranked preferences decided this award" in won
    lost = client.get(f"/bids/{bids['Strong first']}").get_data(as_text=True)
    won_account = session.get(Bid, bids["Strong second"]).listing.account.name
    assert f"you won {escape(won_account)}, which you ranked higher" in lost


def test_management_sees_no_ranking_while_the_round_is_open(session, clock, three_bids,
                                                            round_of_three, make_manager,
                                                            login_as):
    rep, bids = three_bids
    rank_preferences(session, rep, round_of_three.id, {bids[0].id: 1, bids[1].id: 2}, clock())
    client = login_as(make_manager())
    for url in (f"/manage/rounds/{round_of_three.id}",
                f"/manage/listings/{round_of_three.listings[0].id}"):
        page = client.get(url).get_data(as_text=True)
        assert "choice" not in page.lower() and "rank-" not in page and "preference" not in page


# --- a rep who left or was deactivated ---------------------------------------------------


@pytest.mark.parametrize(("how", "message"), [
    ("left", "You have left the company and cannot receive accounts"),
    ("deactivated", "Your user was deactivated and you cannot receive accounts"),
])
def test_a_rep_who_departed_cannot_rank_their_bids_and_may_withdraw_them(
        session, clock, make_admin, three_bids, round_of_three, how, message):
    """A ranking is part of the bid: refused as an edit of the bid is, nothing changes, and
    withdrawing stays theirs to do (and still closes the gap)."""
    from tests.test_departed_winners import DEPARTURES, leave

    rep, bids = three_bids
    rank_preferences(session, rep, round_of_three.id, {bids[0].id: 1, bids[1].id: 2}, clock())
    leave(session, make_admin(), rep, clock, **DEPARTURES[how])
    with pytest.raises(BidRejected) as refused:
        rank_preferences(session, session.get(type(rep), rep.id), round_of_three.id,
                         {bids[2].id: 1}, clock())
    assert message in str(refused.value.message)
    assert "you may still withdraw them" in str(refused.value.message)
    assert ranks_of(session, bids) == [1, 2, None]
    withdraw_bid(session, session.get(type(rep), rep.id), bids[0].id, clock())
    assert ranks_of(session, bids) == [None, 1, None]


def test_a_rep_on_leave_may_still_rank_their_bids(session, clock, make_admin, three_bids,
                                                  round_of_three):
    from bidhub.models import RepStatus
    from tests.test_departed_winners import leave

    rep, bids = three_bids
    leave(session, make_admin(), rep, clock, status=RepStatus.ON_LEAVE)
    rank_preferences(session, session.get(type(rep), rep.id), round_of_three.id,
                     {bids[2].id: 1}, clock())
    assert ranks_of(session, bids) == [None, None, 1]


def test_the_pages_of_a_rep_who_left_offer_no_edit_and_no_ranking(
        session, client, login_as, make_admin, clock, three_bids, round_of_three):
    from tests.test_departed_winners import leave

    rep, bids = three_bids
    admin = make_admin()
    login_as(rep)
    token = csrf_token_from(client.get("/my/bids").get_data(as_text=True))
    leave(session, admin, rep, clock)  # left; the user stays active and may sign in
    zh = {"Accept-Language": "zh-CN"}
    listing_id = bids[0].listing_id
    form_page = client.get(f"/listings/{listing_id}/bid", headers=zh).get_data(as_text=True)
    assert f"/bids/{bids[0].id}/edit" not in form_page
    assert "你已离职，不能接收客户，竞标不能再修改；仍可撤回。" in form_page
    assert f'href="/bids/{bids[0].id}"' in form_page  # where the withdrawal is
    my_bids = client.get("/my/bids", headers=zh).get_data(as_text=True)
    assert f'id="ranking-{round_of_three.id}"' not in my_bids
    assert "你已离职，不能接收客户，竞标不能再排序；仍可撤回。" in my_bids
    response = client.post(f"/my/rounds/{round_of_three.id}/preferences", headers=zh,
                           data={"csrf_token": token, f"rank-{bids[0].id}": "1"})
    assert response.status_code == 422
    assert "竞标不能再排序" in response.get_data(as_text=True)
    assert ranks_of(session, bids) == [None, None, None]


# --- "my bids" offers a ranking exactly when the use case takes it ------------------------


@pytest.mark.parametrize("moment", ["open", "after the deadline"])
@pytest.mark.parametrize("change", ["none", "one bid withdrawn", "two listings cancelled"])
@pytest.mark.parametrize("standing", ["active", "on leave", "left"])
def test_my_bids_offers_a_ranking_exactly_when_it_would_be_taken(
        session, client, login_as, make_admin, make_manager, clock, three_bids, round_of_three,
        moment, change, standing):
    """The round's state (open or past its deadline), the bids left to rank (a withdrawal
    leaves two, two cancelled listings one) and the rep's standing each decide whether
    rank_preferences takes a ranking; the page shows the round's form exactly then."""
    from bidhub.domain.errors import BidhubError
    from bidhub.models import RepStatus
    from bidhub.services.appeals import cancel_listing
    from tests.test_departed_winners import leave

    rep, bids = three_bids
    if change == "one bid withdrawn":
        withdraw_bid(session, rep, bids[0].id, clock())
    elif change == "two listings cancelled":
        for bid in bids[:2]:
            cancel_listing(session, make_manager(), bid.listing_id,
                           reason="The customer asked to stay with the team for now.",
                           now=clock())
    if standing != "active":
        leave(session, make_admin(), rep, clock,
              status=RepStatus.ON_LEAVE if standing == "on leave" else RepStatus.LEFT)
    if moment != "open":
        clock.set(round_of_three.closes_at + timedelta(days=1))
    reload(session)
    login_as(session.get(type(rep), rep.id))
    page = client.get("/my/bids")
    assert page.status_code == 200
    offered = f"/my/rounds/{round_of_three.id}/preferences" in page.get_data(as_text=True)
    rankable = [bid.id for bid in bids[1:]] if change != "two listings cancelled" else [bids[2].id]
    try:
        rank_preferences(session, session.get(type(rep), rep.id), round_of_three.id,
                         {bid_id: rank for rank, bid_id in enumerate(rankable, start=1)},
                         clock())
        taken = True
    except BidhubError:
        taken = False
    assert taken == (moment == "open" and change != "two listings cancelled"
                     and standing != "left")
    assert offered == taken
