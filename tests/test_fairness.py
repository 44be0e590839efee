"""The fairness page (公平性) and its CSV on a small history built through the real use cases."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from bidhub.models import BidScore, Role
from bidhub.services.adjudication import decide_listing, publish_results, score_closed_round
from bidhub.services.fairness import fairness_report
from bidhub.services.rule_sets import adopt_rule_set, default_rules_path
from tests.conftest import login, reload
from tests.test_queries import counted_statements

OVERRIDE_REASON = "The client asked for the rep who already serves its parent company."


@pytest.fixture
def small_band(app, session, clock):
    """Rules with a band of 2 to 3 accounts and no appeal window, so that a handful of
    accounts crosses it and results take effect at once."""
    text = default_rules_path(app.config).read_text("utf-8")
    for old, new in (("capacity_max = 40", "capacity_max = 3"),
                     ("capacity_target = 30", "capacity_target = 2"),
                     ("window_working_days = 3", "window_working_days = 0")):
        assert old in text
        text = text.replace(old, new)
    adopt_rule_set(session, None, text, "small band", "fairness tests", clock())
    session.commit()


def run_round(session, clock, make_round, manager, accounts, bidders, decide, title=None):
    """A round through its life: bids at one moment, scored after the deadline, each listing
    decided by `decide(listing, ranking)` -> (kind, bid id), results published."""
    from bidhub.services.bidding import submit_bid

    round_ = make_round(accounts=accounts, manager=manager, title=title,
                        closes_at=clock() + timedelta(days=7))
    for listing, reps in zip(round_.listings, bidders, strict=True):
        for rep in reps:
            submit_bid(session, rep, listing.id, account_plan="A careful plan for this account.",
                       committed_revenue_yuan=300_000,
                       visit_plan="Visit the decision maker in week one.", submission_key=None,
                       now=clock())
    clock.advance(days=8)
    assert score_closed_round(session, round_.id, clock())
    for listing in round_.listings:
        ranking = session.execute(
            select(BidScore).join(BidScore.bid).where(BidScore.bid.has(listing_id=listing.id))
            .order_by(BidScore.rank)).scalars().all()
        kind, bid_id = decide(listing, ranking)
        decide_listing(session, manager, listing.id, kind=kind, bid_id=bid_id,
                       reason=OVERRIDE_REASON if kind != "accepted" else "", now=clock())
    clock.advance(hours=1)
    reload(session)
    publish_results(session, manager, round_.id, expected_version=round_.version, now=clock())
    clock.advance(days=1)
    return round_


@pytest.fixture
def history(session, clock, small_band, make_rep, make_manager, make_admin, make_account,
            make_branch, make_round):
    """Rep A holds four accounts (400k, 300k, 200k, 100k), B and C one each (100k), D (new, in
    Shanghai) none. One round releases A's 400k and 300k accounts: B and C bid for the first at
    the same moment with the same holdings and no history (a tie only the lottery separates),
    D alone for the second. The manager overrides the first to the lottery's loser and accepts
    the second."""
    a, b, c = make_rep(name="A"), make_rep(name="B"), make_rep(name="C")
    d = make_rep(name="D", branch=make_branch("SH", "Shanghai"),
                 hired_on=(clock() - timedelta(days=180)).date())
    top, second = (make_account(owner=a, annual_value_yuan=value) for value in (400_000, 300_000))
    for value in (200_000, 100_000):
        make_account(owner=a, annual_value_yuan=value)
    make_account(owner=b, annual_value_yuan=100_000)
    make_account(owner=c, annual_value_yuan=100_000)
    manager = make_manager(name="Manager Zhou")
    clock.advance(hours=1)
    chosen = {}

    def decide(listing, ranking):
        if listing.account_id == top.id:
            loser = next(score for score in ranking if not score.is_proposed_winner)
            chosen["winner"] = next(score for score in ranking if score.is_proposed_winner)
            chosen["loser"] = loser
            return "overridden", loser.bid_id
        return "accepted", None

    round_ = run_round(session, clock, make_round, manager, [top, second], [[b, c], [d]], decide,
                       title="三月客户资源竞标")
    return SimpleNamespace(a=a, b=b, c=c, d=d, manager=manager, admin=make_admin(),
                           round=round_, **chosen)


def test_figures_on_a_small_history_match_the_hand_computed_ones(session, clock, history):
    report = fairness_report(session, clock())
    (row,) = report.rounds
    figures = row.figures
    assert figures.band == (2, 3)
    # Before: A 4 (above 3), B 1, C 1, D 0 (below 2). Managers and admins are not reps.
    assert (figures.before.below, figures.before.inside, figures.before.above) == (3, 0, 1)
    # After: A 2, the override's winner 2 (inside); the other 1 and D 1 (below).
    assert (figures.after.below, figures.after.inside, figures.after.above) == (2, 2, 0)
    # Before, in thousands: 0, 100, 100, 1000: sum 1200, sum(i x) = 200 + 300 + 4000 = 4500,
    # G = 2 x 4500 / (4 x 1200) - 5/4 = 0.625. After: 100 (the loser's... the other's own),
    # 300 (D), 300 (A), 500 (the override's winner): sum(i x) = 100 + 600 + 900 + 2000 = 3600,
    # G = 7200 / 4800 - 1.25 = 0.25.
    assert figures.gini_before == pytest.approx(0.625)
    assert figures.gini_after == pytest.approx(0.25)
    assert (figures.bids, figures.decided, figures.top_ranked_won) == (3, 2, 1)
    assert (figures.overridden, figures.lottery_ties) == (1, 1)
    # B and C scored the same, so the override costs nothing against greedy.
    assert history.winner.total == history.loser.total
    assert figures.chosen.awards == figures.greedy.awards == 2
    assert figures.chosen.total == pytest.approx(figures.greedy.total)
    assert (report.now.below, report.now.inside, report.now.above) == (2, 2, 0)
    assert report.gini_now == pytest.approx(0.25)
    rates = {branch.code: (entry.placed, entry.won) for branch, entry in report.by_branch}
    assert rates == {"BJ": (2, 1), "SH": (1, 1)}
    assert [(entry.key, entry.placed, entry.won) for entry in report.by_tenure] == [
        ("under_12", 1, 1), ("12_to_36", 0, 0), ("over_36", 2, 1)]
    ((name, manager),) = report.managers
    assert (name, manager.decided, manager.accepted, manager.other_bidder,
            manager.override_rate) == ("Manager Zhou", 2, 1, 1, 0.5)
    assert report.repeat_winners == []  # D won 1 of 1, but one award is not a pattern


def test_the_charts_name_each_round_as_the_table_does(app, history):
    """Under each column, the day the round announced its results (month and day, the table's
    date); in the tooltips, the round's title and that day. Not the round's database id, which
    the page shows nowhere else."""
    from zoneinfo import ZoneInfo

    published = history.round.results_published_at
    day = published.astimezone(ZoneInfo(app.config["TIMEZONE"])).date()
    client = app.test_client()
    login(client, history.manager)
    html = client.get("/manage/fairness").get_data(as_text=True)
    band = html.split('id="band-chart"', 1)[1].split("</section>", 1)[0]
    gini = html.split('id="gini-chart"', 1)[1].split("</section>", 1)[0]
    for chart in (band, gini):
        assert f'text-anchor="middle">{day:%m-%d}</text>' in chart
        assert f">#{history.round.id}<" not in chart
        assert f"三月客户资源竞标 ({day.isoformat()})" in chart
    assert "Below the band: " in band

    client.post("/language", data={"locale": "zh_CN", "next": "/manage/fairness"})
    chinese = client.get("/manage/fairness").get_data(as_text=True)
    assert f"三月客户资源竞标（{day.year}年{day.month}月{day.day}日）" in chinese
    assert f'text-anchor="middle">{day:%m-%d}</text>' in chinese


@pytest.mark.parametrize("who", ["manager", "admin"])
def test_management_reads_the_page_and_the_csv(app, history, who):
    client = app.test_client()
    login(client, getattr(history, who))
    page = client.get("/manage/fairness")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'id="fairness-round-{history.round.id}"' in html
    assert 'id="band-chart"' in html and 'id="gini-chart"' in html and "<polyline" in html
    assert "Manager Zhou" in html
    response = client.get("/manage/fairness.csv?lang=en")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:4] == ["Round", "Round title", "Announced", "Band"]
    first = dict(zip(rows[0], rows[1], strict=True))
    assert (first["Below before"], first["Above before"], first["Inside after"]) == ("3", "1", "2")
    assert (first["Gini after"], first["Ties decided by the lottery"]) == ("0.25", "1")
    assert ["Now", "2-3", "2", "2", "0", "0.25"] in rows
    assert ["Manager Zhou", "2", "1", "1", "0", "0.5", "1"] in rows
    chinese = client.get("/manage/fairness.csv?lang=zh_CN").get_data().decode("utf-8-sig")
    assert chinese.startswith("轮次,")


def test_the_csv_neutralises_formulas_in_titles_and_names(app, session, clock, small_band,
                                                         make_rep, make_manager, make_account,
                                                         make_round):
    rep = make_rep(name="=HYPERLINK(\"x\")")
    manager = make_manager(name="@SUM(A1)")
    account = make_account(owner=make_rep())
    round_ = run_round(session, clock, make_round, manager, [account], [[rep]],
                       lambda listing, ranking: ("accepted", None))
    round_.title = "+cmd|' /C calc'!A0"
    session.commit()
    client = app.test_client()
    login(client, manager)
    rows = list(csv.reader(io.StringIO(
        client.get("/manage/fairness.csv?lang=en").get_data().decode("utf-8-sig"))))
    assert rows[1][1] == "'+cmd|' /C calc'!A0"
    assert any(row and row[0] == "'@SUM(A1)" for row in rows)


@pytest.mark.parametrize("role", [Role.REP, Role.EXECUTIVE])
def test_reps_and_executives_are_refused(app, make_user, role):
    client = app.test_client()
    login(client, make_user(role))
    assert client.get("/manage/fairness").status_code == 403
    assert client.get("/manage/fairness.csv").status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(client):
    for url in ("/manage/fairness", "/manage/fairness.csv"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.location


def test_without_announced_rounds_the_page_says_so(app, make_manager, make_rep, make_account):
    make_account(owner=make_rep())
    client = app.test_client()
    login(client, make_manager())
    html = client.get("/manage/fairness").get_data(as_text=True)
    assert 'id="no-rounds"' in html and 'id="now-below">1<' in html
    rows = list(csv.reader(io.StringIO(
        client.get("/manage/fairness.csv?lang=en").get_data().decode("utf-8-sig"))))
    assert len(rows) > 2 and rows[1] == []  # the header, then straight to today's figures


def test_the_management_home_links_the_page(app, make_manager):
    client = app.test_client()
    login(client, make_manager())
    assert 'href="/manage/fairness"' in client.get("/manage").get_data(as_text=True)


def test_the_page_speaks_chinese(app, history):
    from tests.test_i18n import ALLOWED_WORDS, english_words, visible_text

    client = app.test_client()
    login(client, history.manager)
    html = client.get("/manage/fairness", headers={"Accept-Language": "zh-CN"},
                      follow_redirects=True).get_data(as_text=True)
    # The test's own data may show: the manager's and reps' names, branch codes and names.
    allowed = ALLOWED_WORDS | {"Manager", "Zhou", "BJ", "SH", "Shanghai", "Beijing"}
    assert "公平性" in html
    assert english_words(visible_text(html), allowed) == {}


def test_the_page_query_count_does_not_grow_with_rounds(app, session, clock, history,
                                                        make_rep, make_account, make_round):
    client = app.test_client()
    login(client, history.manager)

    def statements(url):
        client.get(url)
        with counted_statements(app) as seen:
            assert client.get(url).status_code == 200
        return len(seen)

    one_round = statements("/manage/fairness"), statements("/manage/fairness.csv")
    for _ in range(3):
        reps = [make_rep(hired_on=date(2020, 1, 1)) for _ in range(2)]
        accounts = [make_account(owner=make_rep()) for _ in range(3)]
        run_round(session, clock, make_round, history.manager, accounts,
                  [reps, reps, reps[:1]], lambda listing, ranking: ("accepted", None))
    assert len(fairness_report(session, clock()).rounds) == 4
    assert (statements("/manage/fairness"), statements("/manage/fairness.csv")) == one_round
    assert one_round[0] <= 15
